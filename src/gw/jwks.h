/* Keys of a remote authorization server (gateway.remote_as): its JWKS,
 * fetched by a thread of the gateway's own from the AS's jwks_uri and
 * published to the workers as an immutable, reference-counted snapshot.
 *
 * Fetched at start, then every `refresh`, and when a worker meets a kid it
 * does not know (key rotation, envoy#14557) -- but at most once per
 * `min_refetch`, so a flood of tokens with made-up kids costs at most one
 * fetch per interval (lua-resty-openidc#468). A failed fetch keeps the
 * previous keys. */
#ifndef PC_GW_JWKS_H
#define PC_GW_JWKS_H

#include "core/config.h"
#include "jose/jwk.h"

#include <stdatomic.h>
#include <stdint.h>

typedef struct pc_gw_keyset {
    _Atomic int refs;
    pc_jwks set;
} pc_gw_keyset;

typedef struct pc_gw_jwks pc_gw_jwks;

/* Copy what is needed from g (kept across reloads) and start the thread. */
PC_MUST_USE pc_result pc_gw_jwks_start(const pc_gw_config *g, pc_gw_jwks **out);
void pc_gw_jwks_stop(pc_gw_jwks *j);
/* The current keys (NULL before the first successful fetch); release
 * what acquire returned. */
pc_gw_keyset *pc_gw_jwks_acquire(pc_gw_jwks *j);
void pc_gw_keyset_release(pc_gw_keyset *ks);
/* A worker met an unknown kid: fetch now unless a fetch is running or the
 * last one started less than min_refetch ago. True when a fetch is running
 * now (started by this call or before it): the caller may wait until
 * pc_gw_jwks_fetches_ended passes *ended_before, then look again. */
bool pc_gw_jwks_want_refresh(pc_gw_jwks *j, uint64_t *ended_before);
/* How many fetches have ended, with new keys or not. Any thread. */
uint64_t pc_gw_jwks_fetches_ended(pc_gw_jwks *j);
/* The longest a fetch can take (connect and read timeout), ms. */
uint32_t pc_gw_jwks_fetch_timeout_ms(const pc_gw_jwks *j);
/* Was j started with the same issuer, URL and CA as g says? */
bool pc_gw_jwks_same(const pc_gw_jwks *j, const pc_gw_config *g);
/* The issuer tokens must name. */
const char *pc_gw_jwks_issuer(const pc_gw_jwks *j);

#endif
