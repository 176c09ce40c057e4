/* Open-connection accounting, overall and per client IP, shared by all
 * workers (a client's connections land on different worker threads, so a
 * per-worker count would let it hold workers x the limit).
 *
 * Counts live in a hash table sharded by IP with a mutex per shard; an
 * entry exists only while its IP has connections, so the table is bounded
 * by the overall connection limit. */
#ifndef PC_NET_CONNLIMIT_H
#define PC_NET_CONNLIMIT_H

#include "core/result.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct pc_connlimit pc_connlimit;

/* An IP as 16 bytes (IPv4 as ::ffff:a.b.c.d), the key of the table. */
typedef struct pc_ip_key {
    uint8_t b[16];
} pc_ip_key;

typedef enum pc_connlimit_verdict {
    PC_CONN_ADMIT = 0,
    PC_CONN_OVER_TOTAL, /* answer 503 */
    PC_CONN_OVER_IP,    /* answer 429 */
} pc_connlimit_verdict;

PC_MUST_USE pc_result pc_connlimit_new(pc_connlimit **out);
void pc_connlimit_free(pc_connlimit *cl);
void pc_ip_key_from_sockaddr(const struct sockaddr *sa, pc_ip_key *key);
/* Count a new connection if both limits allow it. The limits are passed
 * per call so that a reload applies to new connections at once. */
pc_connlimit_verdict pc_connlimit_acquire(pc_connlimit *cl, const pc_ip_key *ip,
                                          uint32_t max_total, uint32_t max_per_ip);
/* Release a connection that pc_connlimit_acquire admitted. */
void pc_connlimit_release(pc_connlimit *cl, const pc_ip_key *ip);
uint32_t pc_connlimit_total(pc_connlimit *cl);
uint32_t pc_connlimit_of_ip(pc_connlimit *cl, const pc_ip_key *ip);

#endif
