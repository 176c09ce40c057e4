/* The gateway (resource-server side of FAPI 2.0, §5.3.4): for each
 * `upstream:` route it checks the access token (in-process, with the AS's
 * keys and revocation list), its sender constraint (mTLS certificate or
 * DPoP proof) and scopes, then proxies the request to the route's upstream
 * over a per-worker keep-alive pool. docs/gateway.md is the reference.
 *
 * Registered by the CLI after the AS module (it reads the AS's per-runtime
 * state): pc_server_add_module(&pc_gw_module). Enabled when the config has
 * at least one upstream: route. */
#ifndef PC_GW_GW_H
#define PC_GW_GW_H

#include "net/module.h"

extern const pc_module pc_gw_module;

#endif
