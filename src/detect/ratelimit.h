/* Rate limiting by GCRA (the generic cell rate algorithm, as in ATM's
 * traffic policing and in most modern limiters): one 64-bit "theoretical
 * arrival time" per key, so state is constant-size per key and a check is
 * O(1).
 *
 * Groundwork for the abuse-resistance issue: this is the algorithm, the
 * shared state and the header format; wiring it to gateway routes and the
 * token endpoint comes with that issue.
 *
 * Shared by all workers (one client's connections land on different
 * threads): keys are sharded by a keyed hash, a mutex per shard. Bounded:
 * each shard holds a fixed number of keys and evicts the least recently
 * used. A key is held as a 64-bit keyed hash (SipHash, random key), never
 * as its text, with 32-bit indices for the hash chain and the LRU list in
 * one entry array per shard: 32 bytes a key, under 40 with the index and
 * the remembered array (pc_rl_bytes_per_key; the bound is 64).
 * Eviction must not hand an abusive key a fresh full bucket, so an
 * evicted key's arrival time is folded into a fixed-size "remembered" array
 * (max per slot) that a re-created key starts from: a key can only come
 * back at least as limited as it left (another key sharing that slot may
 * start limited too: the error is towards refusing, and it fades as the
 * remembered time passes). Keys too long or empty count against
 * one shared fallback bucket (kept apart from the table, never evicted),
 * never against no limit (fail closed). */
#ifndef PC_DETECT_RATELIMIT_H
#define PC_DETECT_RATELIMIT_H

#include "core/result.h"
#include "core/str.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest key we keep (e.g. "client_id|ip|route"); longer ones share the
 * fallback bucket. */
#define PC_RL_MAX_KEY 128
/* Default number of keys held (under 40 bytes each, all structures included). */
#define PC_RL_DEFAULT_KEYS (1u << 20)

typedef struct pc_rl_policy {
    const char *name;   /* for the RateLimit-Policy header, e.g. "per-client" */
    uint32_t quota;     /* requests per window */
    uint32_t window_s;  /* seconds */
    uint32_t burst;     /* requests allowed back to back; 0 = quota */
} pc_rl_policy;

typedef struct pc_rl_result {
    bool allowed;
    uint32_t remaining;     /* requests left now */
    uint32_t reset_s;       /* seconds until the quota is whole again */
    uint32_t retry_after_s; /* when refused: seconds until one is allowed */
    bool fallback;          /* the key was unusable: counted on the fallback bucket */
} pc_rl_result;

typedef struct pc_ratelimit pc_ratelimit;

PC_MUST_USE pc_result pc_rl_new(size_t max_keys, pc_ratelimit **out);
void pc_rl_free(pc_ratelimit *rl);
/* Count one request for key under policy at now_us (microseconds, any
 * monotonic origin; tests pass their own clock). */
pc_rl_result pc_rl_check(pc_ratelimit *rl, pc_str key, const pc_rl_policy *p, int64_t now_us);
/* Would one more request for key be allowed at now_us? Counts nothing
 * and creates no state (the token endpoint's failure limits: look before
 * authenticating, count only failures). remaining is the number allowed
 * now, this one included; when refused, retry_after_s is as for check. */
pc_rl_result pc_rl_peek(pc_ratelimit *rl, pc_str key, const pc_rl_policy *p, int64_t now_us);
/* Keys currently held. */
size_t pc_rl_keys(pc_ratelimit *rl);
/* Bytes of state per key held, all structures included (the bound
 * is 64 at 1,000,000 keys). */
size_t pc_rl_bytes_per_key(const pc_ratelimit *rl);

/* The draft-ietf-httpapi-ratelimit-headers fields:
 *   RateLimit-Policy: "name";q=100;w=60
 *   RateLimit: "name";r=12;t=40 */
void pc_rl_format(const pc_rl_policy *p, const pc_rl_result *r, char *policy, size_t policy_cap,
                  char *state, size_t state_cap);

#endif
