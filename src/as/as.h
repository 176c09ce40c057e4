/* The authorization server module (FAPI 2.0 Security Profile §5.3.2):
 * token endpoint (client_credentials), introspection, revocation,
 * discovery metadata and JWKS. Registered by the CLI with
 * pc_server_add_module(&pc_as_module); enabled by an `as:` config section. */
#ifndef PC_AS_AS_H
#define PC_AS_AS_H

#include "net/module.h"

extern const pc_module pc_as_module;

#endif
