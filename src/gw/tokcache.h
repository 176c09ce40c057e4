/* The verified-token cache: per worker thread, so lookups take no lock
 * (DESIGN.md: per-worker state only for pure caches). A token whose
 * signature, typ and iss the AS verified is remembered, keyed by the
 * SHA-256 of the token, with its claims, until its exp; a repeated token
 * then costs a hash and a table probe instead of a signature
 * verification (envoy PR #14341). Everything that depends on the route or
 * the moment (revocation, aud, nbf, binding, scope) is still checked on
 * every request by the caller.
 *
 * Direct-mapped and bounded: PC_GW_TOKEN_CACHE_SLOTS entries per worker, a
 * new token replaces whatever shared its slot. Entries carry the
 * generation of the gateway runtime that verified them, so a reload (which
 * may change the AS's keys) starts from an empty cache. */
#ifndef PC_GW_TOKCACHE_H
#define PC_GW_TOKCACHE_H

#include "core/str.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* 4096 tokens per worker: a few MiB at most with their claims, and far
 * more distinct live tokens than one worker sees in a token lifetime at
 * the request rates we measure. */
#define PC_GW_TOKEN_CACHE_SLOTS 4096u

/* The cache key: SHA-256 of the token. Also what a DPoP proof's ath must
 * encode (RFC 9449 §4.2), so the gateway hashes a token once per request
 * and uses the digest for both. false if hashing failed. */
bool pc_gw_token_sha256(pc_str token, uint8_t out[32]);

/* By a key from pc_gw_token_sha256. On a hit (same generation, not
 * expired at now), *claims is a new reference the caller decrefs. */
bool pc_gw_tokcache_get_key(uint64_t generation, const uint8_t key[32], int64_t now,
                            json_t **claims);
/* Remember claims (a new reference is taken) until exp. */
void pc_gw_tokcache_put_key(uint64_t generation, const uint8_t key[32], int64_t exp,
                            json_t *claims);
/* Entries live in this thread's cache (tests). */
size_t pc_gw_tokcache_count(int64_t now);

#endif
