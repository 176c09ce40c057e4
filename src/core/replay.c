#include "core/replay.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define SHARDS 64u
/* Rebuild a shard (dropping expired entries) when this full. */
#define LOAD_NUM 3u
#define LOAD_DEN 4u

typedef struct slot {
    uint64_t k0, k1; /* 128-bit keyed hash of ns || 0 || id */
    int64_t exp;     /* 0 = empty */
} slot;

typedef struct shard {
    pthread_mutex_t mu;
    slot *slots;
    size_t cap; /* power of two */
    size_t used; /* non-empty slots, live or expired */
    int64_t last_purge; /* at most one rebuild a second: a shard full of
                           live entries must not cost O(n) per request */
} shard;

struct pc_replay {
    shard shards[SHARDS];
    /* Set (release) before the first entry is published, never cleared: a
     * peek that finds it unset knows the set is empty and skips the keyed
     * hash. The revocation set is peeked on every gateway request and is
     * empty until something is revoked. */
    atomic_bool any;
    uint8_t hash_key[16]; /* random per process: keys cannot be aimed at a bucket */
};

pc_result pc_replay_new(size_t capacity, pc_replay **out)
{
    pc_replay *rp = calloc(1, sizeof *rp);
    PC_ENSURE(rp != NULL, PC_ERR_INTERNAL, "out of memory");
    size_t per = 64;
    while (per * SHARDS < capacity) per *= 2;
    for (size_t i = 0; i < SHARDS; i++) {
        pthread_mutex_init(&rp->shards[i].mu, NULL);
        rp->shards[i].slots = calloc(per, sizeof(slot));
        rp->shards[i].cap = per;
        if (rp->shards[i].slots == NULL) {
            pc_replay_free(rp);
            return pc_fail(PC_ERR_INTERNAL, "out of memory for the replay cache");
        }
    }
    if (RAND_bytes(rp->hash_key, sizeof rp->hash_key) != 1) {
        pc_replay_free(rp);
        return pc_fail_ossl("RAND_bytes");
    }
    *out = rp;
    return PC_OK;
}

void pc_replay_free(pc_replay *rp)
{
    if (rp == NULL) return;
    for (size_t i = 0; i < SHARDS; i++) {
        free(rp->shards[i].slots);
        pthread_mutex_destroy(&rp->shards[i].mu);
    }
    free(rp);
}

/* Fetched once: the implicit fetch of EVP_sha256() costs about 0.2 us a
 * call (PERF-NOTES). */
static EVP_MD *sha256_md;
static void fetch_sha256(void) { sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL); }

static const EVP_MD *sha256(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, fetch_sha256);
    return sha256_md;
}

/* SHA-256 over key || ns || 0 || id, first 128 bits. A keyed hash keeps the
 * table safe against chosen collisions; 128 bits make accidental equality
 * of two different identifiers negligible. */
static int digest(const pc_replay *rp, const char *ns, size_t ns_len, const char *id,
                  size_t id_len, uint64_t *k0, uint64_t *k1)
{
    uint8_t d[32];
    unsigned int dl = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    static const uint8_t zero = 0;
    int ok = ctx && EVP_DigestInit_ex(ctx, sha256(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, rp->hash_key, sizeof rp->hash_key) == 1 &&
             EVP_DigestUpdate(ctx, ns, ns_len) == 1 && EVP_DigestUpdate(ctx, &zero, 1) == 1 &&
             EVP_DigestUpdate(ctx, id, id_len) == 1 && EVP_DigestFinal_ex(ctx, d, &dl) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok) return -1;
    memcpy(k0, d, 8);
    memcpy(k1, d + 8, 8);
    return 0;
}

static void insert_slot(slot *slots, size_t cap, const slot *s)
{
    size_t mask = cap - 1;
    for (size_t i = (size_t)s->k0 & mask;; i = (i + 1) & mask) {
        if (slots[i].exp == 0) {
            slots[i] = *s;
            return;
        }
    }
}

/* Drop expired entries by rebuilding the shard's table. */
static void purge(shard *sh, int64_t now)
{
    slot *fresh = calloc(sh->cap, sizeof(slot));
    if (fresh == NULL) return; /* keep the old table; the caller may refuse */
    size_t used = 0;
    for (size_t i = 0; i < sh->cap; i++) {
        if (sh->slots[i].exp > now) {
            insert_slot(fresh, sh->cap, &sh->slots[i]);
            used++;
        }
    }
    free(sh->slots);
    sh->slots = fresh;
    sh->used = used;
}

pc_replay_verdict pc_replay_check(pc_replay *rp, const char *ns, size_t ns_len, const char *id,
                                  size_t id_len, int64_t expires_at, int64_t now)
{
    slot s;
    if (ns_len + id_len > PC_REPLAY_MAX_KEY || expires_at <= 0 ||
        digest(rp, ns, ns_len, id, id_len, &s.k0, &s.k1) != 0)
        return PC_REPLAY_FULL;
    s.exp = expires_at;
    shard *sh = &rp->shards[(s.k1 >> 7) & (SHARDS - 1)];
    pc_replay_verdict v = PC_REPLAY_FRESH;
    pthread_mutex_lock(&sh->mu);
    if ((sh->used + 1) * LOAD_DEN > sh->cap * LOAD_NUM && sh->last_purge != now) {
        sh->last_purge = now;
        purge(sh, now);
    }
    size_t mask = sh->cap - 1;
    size_t i = (size_t)s.k0 & mask;
    for (;; i = (i + 1) & mask) {
        slot *cur = &sh->slots[i];
        if (cur->exp == 0) {
            if ((sh->used + 1) * LOAD_DEN > sh->cap * LOAD_NUM) {
                v = PC_REPLAY_FULL;
            } else {
                atomic_store_explicit(&rp->any, true, memory_order_release);
                *cur = s;
                sh->used++;
            }
            break;
        }
        if (cur->k0 == s.k0 && cur->k1 == s.k1) {
            if (cur->exp > now) {
                v = PC_REPLAY_SEEN;
            } else {
                cur->exp = expires_at; /* an expired use: this one is new */
            }
            break;
        }
    }
    pthread_mutex_unlock(&sh->mu);
    return v;
}

bool pc_replay_peek(pc_replay *rp, const char *ns, size_t ns_len, const char *id, size_t id_len,
                    int64_t now)
{
    uint64_t k0, k1;
    if (!atomic_load_explicit(&rp->any, memory_order_acquire)) return false;
    if (ns_len + id_len > PC_REPLAY_MAX_KEY || digest(rp, ns, ns_len, id, id_len, &k0, &k1) != 0)
        return false;
    shard *sh = &rp->shards[(k1 >> 7) & (SHARDS - 1)];
    bool live = false;
    pthread_mutex_lock(&sh->mu);
    size_t mask = sh->cap - 1;
    for (size_t i = (size_t)k0 & mask;; i = (i + 1) & mask) {
        const slot *cur = &sh->slots[i];
        if (cur->exp == 0) break;
        if (cur->k0 == k0 && cur->k1 == k1) {
            live = cur->exp > now;
            break;
        }
    }
    pthread_mutex_unlock(&sh->mu);
    return live;
}

size_t pc_replay_count(pc_replay *rp, int64_t now)
{
    size_t n = 0;
    for (size_t i = 0; i < SHARDS; i++) {
        shard *sh = &rp->shards[i];
        pthread_mutex_lock(&sh->mu);
        for (size_t j = 0; j < sh->cap; j++) n += sh->slots[j].exp > now;
        pthread_mutex_unlock(&sh->mu);
    }
    return n;
}
