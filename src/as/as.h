/* The authorization server module (FAPI 2.0 Security Profile §5.3.2):
 * token endpoint (client_credentials), introspection, revocation,
 * discovery metadata and JWKS. Registered by the CLI with
 * pc_server_add_module(&pc_as_module); enabled by an `as:` config section. */
#ifndef PC_AS_AS_H
#define PC_AS_AS_H

#include "net/module.h"

#include "core/str.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

extern const pc_module pc_as_module;

typedef enum pc_as_token_state {
    PC_TOKEN_ACTIVE = 0,
    PC_TOKEN_INVALID,  /* not ours, malformed, bad signature, wrong typ or iss */
    PC_TOKEN_EXPIRED,
    PC_TOKEN_REVOKED,
} pc_as_token_state;

/* For a gateway in the same process: check an access token this AS issued,
 * with the AS's published keys and its revocation list (so a revocation
 * takes effect at once). as_state is what pc_route_sink_module_state(sink,
 * "as") returned. On PC_TOKEN_ACTIVE (and EXPIRED/REVOKED) *claims is the
 * token's payload; the caller decrefs it. */
pc_as_token_state pc_as_verify_token(void *as_state, pc_str token, int64_t now, json_t **claims);
/* Has this AS revoked the token with this jti? A set lookup only, for a
 * gateway's verified-token cache: every cache hit must still see a
 * revocation at once (FAPI 2.0 §5.3.4-3). */
bool pc_as_token_revoked(void *as_state, pc_str jti, int64_t now);

/* Were all of this token's client's tokens revoked since it was issued
 * (the detectors' revoke action)? For the gateway's cache hits, with
 * pc_as_token_revoked. */
bool pc_as_token_client_revoked(void *as_state, const json_t *claims);
/* Revoke every live token of a client (pc_abuse_revoke_fn). */
void pc_as_revoke_client(void *as_state, pc_str client_id);

#endif
