#include "detect/ratelimit.h"

#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHARDS 64u
#define REMEMBERED 4096u /* slots per shard for evicted keys' arrival times */
#define FALLBACK_KEY "\001fallback" /* not a key anyone can send: a control byte */

typedef struct entry {
    struct entry *hnext;          /* hash chain */
    struct entry *lprev, *lnext;  /* LRU list, most recent at the head */
    uint64_t hash;
    int64_t tat;                  /* theoretical arrival time, us */
    uint8_t len;
    char key[PC_RL_MAX_KEY];
} entry;

typedef struct shard {
    pthread_mutex_t mu;
    entry **buckets;
    size_t nbuckets;  /* power of two */
    entry *head, *tail;
    size_t n, cap;
    int64_t remembered[REMEMBERED];
} shard;

struct pc_ratelimit {
    shard shards[SHARDS];
    uint64_t seed[2];
};

pc_result pc_rl_new(size_t max_keys, pc_ratelimit **out)
{
    pc_ratelimit *rl = calloc(1, sizeof *rl);
    PC_ENSURE(rl != NULL, PC_ERR_INTERNAL, "out of memory");
    size_t per = max_keys / SHARDS + 1;
    size_t nb = 64;
    while (nb < per) nb *= 2;
    for (size_t i = 0; i < SHARDS; i++) {
        shard *s = &rl->shards[i];
        pthread_mutex_init(&s->mu, NULL);
        s->buckets = calloc(nb, sizeof *s->buckets);
        s->nbuckets = nb;
        s->cap = per;
        if (s->buckets == NULL) {
            pc_rl_free(rl);
            return pc_fail(PC_ERR_INTERNAL, "out of memory for the rate limiter");
        }
    }
    if (RAND_bytes((unsigned char *)rl->seed, sizeof rl->seed) != 1) {
        pc_rl_free(rl);
        return pc_fail_ossl("RAND_bytes");
    }
    *out = rl;
    return PC_OK;
}

void pc_rl_free(pc_ratelimit *rl)
{
    if (rl == NULL) return;
    for (size_t i = 0; i < SHARDS; i++) {
        shard *s = &rl->shards[i];
        for (entry *e = s->head, *n; e; e = n) {
            n = e->lnext;
            free(e);
        }
        free(s->buckets);
        pthread_mutex_destroy(&s->mu);
    }
    free(rl);
}

static uint64_t hash_key(const pc_ratelimit *rl, const char *k, size_t n)
{
    /* FNV-1a with a secret seed, then a final mix: keys cannot be chosen to
     * pile into one chain or one remembered slot. */
    uint64_t h = 1469598103934665603ull ^ rl->seed[0];
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)k[i]) * 1099511628211ull;
    h ^= rl->seed[1];
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

static void lru_unlink(shard *s, entry *e)
{
    if (e->lprev) e->lprev->lnext = e->lnext; else s->head = e->lnext;
    if (e->lnext) e->lnext->lprev = e->lprev; else s->tail = e->lprev;
    e->lprev = e->lnext = NULL;
}

static void lru_push(shard *s, entry *e)
{
    e->lnext = s->head;
    e->lprev = NULL;
    if (s->head) s->head->lprev = e;
    s->head = e;
    if (s->tail == NULL) s->tail = e;
}

static void evict_one(shard *s)
{
    entry *e = s->tail;
    if (e == NULL) return;
    lru_unlink(s, e);
    entry **pp = &s->buckets[e->hash & (s->nbuckets - 1)];
    while (*pp != e) pp = &(*pp)->hnext;
    *pp = e->hnext;
    /* Remember how limited it was, so it cannot come back fresh. */
    int64_t *slot = &s->remembered[(e->hash >> 20) % REMEMBERED];
    if (e->tat > *slot) *slot = e->tat;
    s->n--;
    free(e);
}

static entry *find_or_make(shard *s, uint64_t h, const char *k, size_t n, int64_t now)
{
    entry **pp = &s->buckets[h & (s->nbuckets - 1)];
    for (entry *e = *pp; e; e = e->hnext)
        if (e->hash == h && e->len == n && memcmp(e->key, k, n) == 0) return e;
    if (s->n >= s->cap) evict_one(s);
    entry *e = calloc(1, sizeof *e);
    if (e == NULL) return NULL;
    e->hash = h;
    e->len = (uint8_t)n;
    memcpy(e->key, k, n);
    int64_t rem = s->remembered[(h >> 20) % REMEMBERED];
    e->tat = rem > now ? rem : now;
    e->hnext = *pp;
    *pp = e;
    lru_push(s, e);
    s->n++;
    return e;
}

pc_rl_result pc_rl_check(pc_ratelimit *rl, pc_str key, const pc_rl_policy *p, int64_t now_us)
{
    pc_rl_result res = {0};
    if (key.len == 0 || key.len > PC_RL_MAX_KEY) {
        key = PC_STR(FALLBACK_KEY);
        res.fallback = true;
    }
    uint32_t quota = p->quota ? p->quota : 1;
    uint32_t burst = p->burst ? p->burst : quota;
    /* T: one request's share of the window; tau: how far ahead of now the
     * arrival time may run (burst - 1 requests' worth). */
    int64_t T = (int64_t)p->window_s * 1000000 / quota;
    if (T < 1) T = 1;
    int64_t tau = T * (int64_t)(burst - 1);
    uint64_t h = hash_key(rl, key.ptr, key.len);
    shard *s = &rl->shards[h % SHARDS];
    pthread_mutex_lock(&s->mu);
    entry *e = find_or_make(s, h, key.ptr, key.len, now_us);
    if (e == NULL) { /* out of memory: refuse, never let through unmetered */
        pthread_mutex_unlock(&s->mu);
        res.retry_after_s = 1;
        return res;
    }
    lru_unlink(s, e);
    lru_push(s, e);
    int64_t tat = e->tat > now_us ? e->tat : now_us;
    int64_t next = tat + T;
    if (next - now_us > tau + T) {
        int64_t wait = next - now_us - (tau + T);
        res.retry_after_s = (uint32_t)((wait + 999999) / 1000000);
        if (res.retry_after_s == 0) res.retry_after_s = 1;
        res.remaining = 0;
        res.reset_s = (uint32_t)((tat - now_us + 999999) / 1000000);
    } else {
        e->tat = next;
        res.allowed = true;
        res.remaining = (uint32_t)((tau + T - (next - now_us)) / T);
        res.reset_s = (uint32_t)((next - now_us + 999999) / 1000000);
    }
    pthread_mutex_unlock(&s->mu);
    return res;
}

size_t pc_rl_keys(pc_ratelimit *rl)
{
    size_t n = 0;
    for (size_t i = 0; i < SHARDS; i++) {
        pthread_mutex_lock(&rl->shards[i].mu);
        n += rl->shards[i].n;
        pthread_mutex_unlock(&rl->shards[i].mu);
    }
    return n;
}

void pc_rl_format(const pc_rl_policy *p, const pc_rl_result *r, char *policy, size_t policy_cap,
                  char *state, size_t state_cap)
{
    const char *name = p->name ? p->name : "default";
    snprintf(policy, policy_cap, "\"%s\";q=%u;w=%u", name, p->quota, p->window_s);
    snprintf(state, state_cap, "\"%s\";r=%u;t=%u", name, r->remaining, r->reset_s);
}
