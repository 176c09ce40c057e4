#include "net/connlimit.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define SHARDS 64u /* power of two; enough that 2..64 workers rarely collide */

typedef struct entry {
    struct entry *next;
    pc_ip_key ip;
    uint32_t count;
} entry;

typedef struct shard {
    pthread_mutex_t mu;
    entry *buckets[256];
} shard;

struct pc_connlimit {
    _Atomic uint32_t total;
    shard shards[SHARDS];
};

pc_result pc_connlimit_new(pc_connlimit **out)
{
    pc_connlimit *cl = calloc(1, sizeof *cl);
    PC_ENSURE(cl != NULL, PC_ERR_INTERNAL, "out of memory");
    for (size_t i = 0; i < SHARDS; i++) pthread_mutex_init(&cl->shards[i].mu, NULL);
    *out = cl;
    return PC_OK;
}

void pc_connlimit_free(pc_connlimit *cl)
{
    if (cl == NULL) return;
    for (size_t i = 0; i < SHARDS; i++) {
        for (size_t b = 0; b < 256; b++) {
            entry *e = cl->shards[i].buckets[b];
            while (e) {
                entry *n = e->next;
                free(e);
                e = n;
            }
        }
        pthread_mutex_destroy(&cl->shards[i].mu);
    }
    free(cl);
}

void pc_ip_key_from_sockaddr(const struct sockaddr *sa, pc_ip_key *key)
{
    memset(key, 0, sizeof *key);
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        key->b[10] = 0xff;
        key->b[11] = 0xff;
        memcpy(key->b + 12, &in->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        memcpy(key->b, &in6->sin6_addr, 16);
    }
}

static uint32_t hash_ip(const pc_ip_key *ip)
{
    /* FNV-1a. Attackers choose their source IPs only within what they
     * control; a skewed bucket costs a longer chain, bounded by the
     * connection limit, not unbounded memory. */
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < 16; i++) h = (h ^ ip->b[i]) * 16777619u;
    return h;
}

static entry **find(shard *s, const pc_ip_key *ip, uint32_t h)
{
    entry **pp = &s->buckets[(h >> 8) & 255u];
    while (*pp && memcmp(&(*pp)->ip, ip, sizeof *ip) != 0) pp = &(*pp)->next;
    return pp;
}

pc_connlimit_verdict pc_connlimit_acquire(pc_connlimit *cl, const pc_ip_key *ip,
                                          uint32_t max_total, uint32_t max_per_ip)
{
    uint32_t t = atomic_fetch_add(&cl->total, 1);
    if (t >= max_total) {
        atomic_fetch_sub(&cl->total, 1);
        return PC_CONN_OVER_TOTAL;
    }
    uint32_t h = hash_ip(ip);
    shard *s = &cl->shards[h & (SHARDS - 1)];
    pthread_mutex_lock(&s->mu);
    entry **pp = find(s, ip, h);
    pc_connlimit_verdict v = PC_CONN_ADMIT;
    if (*pp == NULL) {
        entry *e = calloc(1, sizeof *e);
        if (e == NULL) {
            v = PC_CONN_OVER_TOTAL; /* fail closed */
        } else {
            e->ip = *ip;
            e->count = 1;
            *pp = e;
        }
    } else if ((*pp)->count >= max_per_ip) {
        v = PC_CONN_OVER_IP;
    } else {
        (*pp)->count++;
    }
    pthread_mutex_unlock(&s->mu);
    if (v != PC_CONN_ADMIT) atomic_fetch_sub(&cl->total, 1);
    return v;
}

void pc_connlimit_release(pc_connlimit *cl, const pc_ip_key *ip)
{
    uint32_t h = hash_ip(ip);
    shard *s = &cl->shards[h & (SHARDS - 1)];
    pthread_mutex_lock(&s->mu);
    entry **pp = find(s, ip, h);
    if (*pp != NULL && --(*pp)->count == 0) {
        entry *e = *pp;
        *pp = e->next;
        free(e);
    }
    pthread_mutex_unlock(&s->mu);
    atomic_fetch_sub(&cl->total, 1);
}

uint32_t pc_connlimit_total(pc_connlimit *cl) { return atomic_load(&cl->total); }

uint32_t pc_connlimit_of_ip(pc_connlimit *cl, const pc_ip_key *ip)
{
    uint32_t h = hash_ip(ip);
    shard *s = &cl->shards[h & (SHARDS - 1)];
    pthread_mutex_lock(&s->mu);
    entry **pp = find(s, ip, h);
    uint32_t n = *pp ? (*pp)->count : 0;
    pthread_mutex_unlock(&s->mu);
    return n;
}
