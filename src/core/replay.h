/* Single-use identifiers (JWT jti, DPoP proof jti): a set that remembers an
 * identifier until it expires and answers "seen" for a repeat.
 *
 * Shared by all worker threads: a replay may arrive on another worker, so a
 * per-worker cache would let it through (spring-security#18120). The set is
 * sharded by key hash with a mutex per shard. Keys are namespaced (the
 * client_id for assertions, the key thumbprint for DPoP, so one client
 * cannot burn another's jti) and stored as a 128-bit keyed hash, so memory
 * per entry is fixed whatever the jti length.
 *
 * Bounded: when live entries fill a shard, new identifiers are refused
 * (PC_REPLAY_FULL) rather than evicting one that has not expired, because
 * eviction would reopen a replay window. Callers fail closed on FULL.
 *
 * This is the in-process implementation of pc_replay_ops; a shared one
 * (Redis) for several instances plugs in behind the same ops. */
#ifndef PC_CORE_REPLAY_H
#define PC_CORE_REPLAY_H

#include "core/result.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Default capacity: 2^20 identifiers (about 24 MiB). A token endpoint at
 * 10k requests/s with 60 s windows holds 600k. */
#define PC_REPLAY_DEFAULT_CAPACITY (1u << 20)
#define PC_REPLAY_MAX_KEY 512 /* namespace + jti bytes we hash */

typedef enum pc_replay_verdict {
    PC_REPLAY_FRESH = 0, /* first use: recorded */
    PC_REPLAY_SEEN,      /* a replay: refuse */
    PC_REPLAY_FULL,      /* cannot record: refuse (fail closed) */
} pc_replay_verdict;

typedef struct pc_replay pc_replay;

typedef struct pc_replay_ops {
    pc_replay_verdict (*check)(void *impl, const char *ns, size_t ns_len, const char *id,
                               size_t id_len, int64_t expires_at, int64_t now);
    void (*free)(void *impl);
} pc_replay_ops;

PC_MUST_USE pc_result pc_replay_new(size_t capacity, pc_replay **out);
void pc_replay_free(pc_replay *rp);
/* Record (ns, id) until expires_at (unix seconds) unless already live. */
pc_replay_verdict pc_replay_check(pc_replay *rp, const char *ns, size_t ns_len, const char *id,
                                  size_t id_len, int64_t expires_at, int64_t now);
/* Is (ns, id) recorded and live? Records nothing (revocation lookups). */
bool pc_replay_peek(pc_replay *rp, const char *ns, size_t ns_len, const char *id, size_t id_len,
                    int64_t now);
/* Live entries (for metrics and tests). */
size_t pc_replay_count(pc_replay *rp, int64_t now);

#endif
