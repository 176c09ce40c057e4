#include "detect/ratelimit.h"

#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHARDS 64u
#define SHARD_BITS 6u      /* log2(SHARDS): the shard is the top bits of the hash */
#define REMEMBERED 4096u   /* slots per shard for evicted keys' arrival times */
#define NIL 0u             /* index 0 of a shard's entry array is the LRU list head */

/* One key: 32 bytes. The key itself is not kept, only a 64-bit keyed hash
 * of it (SipHash-2-4 under a random per-process key, so nobody can choose
 * keys that collide with a victim's or pile into one chain). Two different
 * keys are confused only if their hashes are equal; within a shard the
 * top SHARD_BITS already agree, so 58 bits decide. With at most about
 * 16,000 keys per shard (1,000,000 in all), a lookup of a key not held
 * matches some held key with probability about 16,000 / 2^58 = 5.5e-14:
 * at a million lookups a second, about one false match a half-year, and
 * its only effect is that two keys share one bucket for a while (unaimed,
 * since the hash key is secret). Storing the key (up to 128 bytes) would
 * cost three times the whole budget. */
typedef struct entry {
    uint64_t hash;
    int64_t tat;          /* theoretical arrival time, us */
    uint32_t hnext;       /* hash chain, NIL-terminated */
    uint32_t lprev, lnext; /* LRU list through entry NIL, most recent first */
    uint32_t pad_;
} entry;

typedef struct shard {
    pthread_mutex_t mu;
    entry *e;          /* cap + 1 entries, one allocation; e[NIL] is the list head */
    uint32_t *buckets; /* nbuckets chain heads (entry indices), NIL = empty */
    uint32_t nbuckets; /* power of two */
    uint32_t n, cap;
    int64_t remembered[REMEMBERED];
} shard;

struct pc_ratelimit {
    shard shards[SHARDS];
    uint64_t sipkey[2];
    size_t max_keys;
    size_t bytes;            /* everything allocated for this instance */
    pthread_mutex_t fb_mu;   /* the fallback bucket: unusable keys, never evicted */
    int64_t fb_tat;
};

pc_result pc_rl_new(size_t max_keys, pc_ratelimit **out)
{
    PC_ENSURE(max_keys <= (size_t)SHARDS * (UINT32_MAX / 2), PC_ERR_INTERNAL,
              "rate limiter: too many keys");
    pc_ratelimit *rl = calloc(1, sizeof *rl);
    PC_ENSURE(rl != NULL, PC_ERR_INTERNAL, "out of memory");
    pthread_mutex_init(&rl->fb_mu, NULL);
    rl->max_keys = max_keys ? max_keys : 1;
    size_t per = (rl->max_keys + SHARDS - 1) / SHARDS;
    size_t nb = 64;
    while (nb < per) nb *= 2;
    rl->bytes = sizeof *rl;
    for (size_t i = 0; i < SHARDS; i++) {
        shard *s = &rl->shards[i];
        pthread_mutex_init(&s->mu, NULL);
        s->e = calloc(per + 1, sizeof *s->e);
        s->buckets = calloc(nb, sizeof *s->buckets);
        s->nbuckets = (uint32_t)nb;
        s->cap = (uint32_t)per;
        rl->bytes += (per + 1) * sizeof *s->e + nb * sizeof *s->buckets;
        if (s->e == NULL || s->buckets == NULL) {
            pc_rl_free(rl);
            return pc_fail(PC_ERR_INTERNAL, "out of memory for the rate limiter");
        }
    }
    if (RAND_bytes((unsigned char *)rl->sipkey, sizeof rl->sipkey) != 1) {
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
        free(s->e);
        free(s->buckets);
        pthread_mutex_destroy(&s->mu);
    }
    pthread_mutex_destroy(&rl->fb_mu);
    free(rl);
}

/* ---- SipHash-2-4 (Aumasson and Bernstein), 64-bit output ---------------- */

static inline uint64_t rotl64(uint64_t x, unsigned b) { return (x << b) | (x >> (64 - b)); }

static inline uint64_t load_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

#define SIPROUND(v0, v1, v2, v3)                                                                   \
    do {                                                                                           \
        v0 += v1; v1 = rotl64(v1, 13); v1 ^= v0; v0 = rotl64(v0, 32);                              \
        v2 += v3; v3 = rotl64(v3, 16); v3 ^= v2;                                                   \
        v0 += v3; v3 = rotl64(v3, 21); v3 ^= v0;                                                   \
        v2 += v1; v1 = rotl64(v1, 17); v1 ^= v2; v2 = rotl64(v2, 32);                              \
    } while (0)

static uint64_t siphash24(const uint64_t k[2], const char *data, size_t len)
{
    const unsigned char *p = (const unsigned char *)data;
    uint64_t v0 = k[0] ^ 0x736f6d6570736575ull;
    uint64_t v1 = k[1] ^ 0x646f72616e646f6dull;
    uint64_t v2 = k[0] ^ 0x6c7967656e657261ull;
    uint64_t v3 = k[1] ^ 0x7465646279746573ull;
    size_t whole = len & ~(size_t)7;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = load_le64(p + i);
        v3 ^= m;
        SIPROUND(v0, v1, v2, v3);
        SIPROUND(v0, v1, v2, v3);
        v0 ^= m;
    }
    uint64_t m = (uint64_t)(len & 0xff) << 56;
    for (size_t i = whole; i < len; i++) m |= (uint64_t)p[i] << (8 * (i - whole));
    v3 ^= m;
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    v0 ^= m;
    v2 ^= 0xff;
    for (int r = 0; r < 4; r++) SIPROUND(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}

/* Disjoint bits of the hash pick the shard (top bits), the chain (low
 * bits) and the remembered slot (bits 32..43), so keys sharing one do not
 * tend to share the others. */
static inline shard *shard_of(pc_ratelimit *rl, uint64_t h) { return &rl->shards[h >> (64 - SHARD_BITS)]; }
static inline uint32_t *chain_of(shard *s, uint64_t h) { return &s->buckets[h & (s->nbuckets - 1)]; }
static inline int64_t *remembered_of(shard *s, uint64_t h) { return &s->remembered[(h >> 32) % REMEMBERED]; }

static void lru_unlink(shard *s, uint32_t i)
{
    entry *e = &s->e[i];
    s->e[e->lprev].lnext = e->lnext;
    s->e[e->lnext].lprev = e->lprev;
}

static void lru_push(shard *s, uint32_t i)
{
    entry *head = &s->e[NIL];
    s->e[i].lprev = NIL;
    s->e[i].lnext = head->lnext;
    s->e[head->lnext].lprev = i;
    head->lnext = i;
}

static uint32_t find(shard *s, uint64_t h)
{
    for (uint32_t i = *chain_of(s, h); i != NIL; i = s->e[i].hnext)
        if (s->e[i].hash == h) return i;
    return NIL;
}

/* Drop the least recently used key and return its (now free) index. */
static uint32_t evict_one(shard *s)
{
    uint32_t i = s->e[NIL].lprev;
    entry *e = &s->e[i];
    lru_unlink(s, i);
    uint32_t *pp = chain_of(s, e->hash);
    while (*pp != i) pp = &s->e[*pp].hnext;
    *pp = e->hnext;
    /* Remember how limited it was, so it cannot come back fresh. */
    int64_t *slot = remembered_of(s, e->hash);
    if (e->tat > *slot) *slot = e->tat;
    return i;
}

/* Where a key not held starts: at least as limited as any evicted key that
 * shared its remembered slot. */
static int64_t start_tat(shard *s, uint64_t h, int64_t now)
{
    int64_t rem = *remembered_of(s, h);
    return rem > now ? rem : now;
}

static uint32_t find_or_make(shard *s, uint64_t h, int64_t now)
{
    uint32_t i = find(s, h);
    if (i != NIL) {
        lru_unlink(s, i);
        lru_push(s, i);
        return i;
    }
    if (s->n < s->cap) i = ++s->n; /* entries 1..cap, handed out once each */
    else i = evict_one(s);
    entry *e = &s->e[i];
    e->hash = h;
    e->tat = start_tat(s, h, now);
    uint32_t *head = chain_of(s, h);
    e->hnext = *head;
    *head = i;
    lru_push(s, i);
    return i;
}

/* The GCRA step on one arrival time. T: one request's share of the window;
 * tau: how far ahead of now the arrival time may run (burst - 1 requests'
 * worth). With commit, an allowed request advances *tat; without, this
 * only says whether one would be allowed and how much is left now. */
static pc_rl_result gcra(int64_t *tatp, const pc_rl_policy *p, int64_t now, bool commit)
{
    pc_rl_result res = {0};
    uint32_t quota = p->quota ? p->quota : 1;
    uint32_t burst = p->burst ? p->burst : quota;
    int64_t T = (int64_t)p->window_s * 1000000 / quota;
    if (T < 1) T = 1;
    int64_t tau = T * (int64_t)(burst - 1);
    int64_t tat = *tatp > now ? *tatp : now;
    int64_t next = tat + T;
    if (next - now > tau + T) {
        int64_t wait = next - now - (tau + T);
        res.retry_after_s = (uint32_t)((wait + 999999) / 1000000);
        if (res.retry_after_s == 0) res.retry_after_s = 1;
        res.remaining = 0;
        res.reset_s = (uint32_t)((tat - now + 999999) / 1000000);
    } else if (commit) {
        *tatp = next;
        res.allowed = true;
        res.remaining = (uint32_t)((tau + T - (next - now)) / T);
        res.reset_s = (uint32_t)((next - now + 999999) / 1000000);
    } else {
        res.allowed = true;
        res.remaining = (uint32_t)((tau + T - (tat - now)) / T);
        res.reset_s = (uint32_t)((tat - now + 999999) / 1000000);
    }
    return res;
}

static pc_rl_result fallback(pc_ratelimit *rl, const pc_rl_policy *p, int64_t now, bool commit)
{
    pthread_mutex_lock(&rl->fb_mu);
    pc_rl_result res = gcra(&rl->fb_tat, p, now, commit);
    pthread_mutex_unlock(&rl->fb_mu);
    res.fallback = true;
    return res;
}

static bool usable(pc_str key) { return key.len > 0 && key.len <= PC_RL_MAX_KEY; }

pc_rl_result pc_rl_check(pc_ratelimit *rl, pc_str key, const pc_rl_policy *p, int64_t now_us)
{
    if (!usable(key)) return fallback(rl, p, now_us, true);
    uint64_t h = siphash24(rl->sipkey, key.ptr, key.len);
    shard *s = shard_of(rl, h);
    pthread_mutex_lock(&s->mu);
    uint32_t i = find_or_make(s, h, now_us);
    pc_rl_result res = gcra(&s->e[i].tat, p, now_us, true);
    pthread_mutex_unlock(&s->mu);
    return res;
}

pc_rl_result pc_rl_peek(pc_ratelimit *rl, pc_str key, const pc_rl_policy *p, int64_t now_us)
{
    if (!usable(key)) return fallback(rl, p, now_us, false);
    uint64_t h = siphash24(rl->sipkey, key.ptr, key.len);
    shard *s = shard_of(rl, h);
    pthread_mutex_lock(&s->mu);
    /* A key not held is not created (a look costs no memory and evicts
     * nothing); it is judged from where it would start. */
    uint32_t i = find(s, h);
    int64_t tat = i != NIL ? s->e[i].tat : start_tat(s, h, now_us);
    pthread_mutex_unlock(&s->mu);
    return gcra(&tat, p, now_us, false);
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

size_t pc_rl_bytes_per_key(const pc_ratelimit *rl)
{
    return (rl->bytes + rl->max_keys - 1) / rl->max_keys;
}

void pc_rl_format(const pc_rl_policy *p, const pc_rl_result *r, char *policy, size_t policy_cap,
                  char *state, size_t state_cap)
{
    const char *name = p->name ? p->name : "default";
    snprintf(policy, policy_cap, "\"%s\";q=%u;w=%u", name, p->quota, p->window_s);
    snprintf(state, state_cap, "\"%s\";r=%u;t=%u", name, r->remaining, r->reset_s);
}
