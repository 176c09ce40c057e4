/* The per-worker verified-token cache (see tokcache.h). */
#include "gw/tokcache.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    uint8_t key[32];     /* SHA-256 of the token */
    uint64_t generation; /* 0: empty */
    int64_t exp;
    json_t *claims;      /* owned reference */
} entry;

typedef struct cache {
    entry slots[PC_GW_TOKEN_CACHE_SLOTS];
    EVP_MD_CTX *sha256; /* reused per request: EVP_Digest would allocate and free two contexts */
} cache;

static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

/* Runs when a worker thread ends: the claims are this thread's. */
static void cache_destroy(void *arg)
{
    cache *c = arg;
    for (size_t i = 0; i < PC_GW_TOKEN_CACHE_SLOTS; i++) json_decref(c->slots[i].claims);
    EVP_MD_CTX_free(c->sha256);
    free(c);
}

/* SHA-256 fetched once: EVP_sha256() costs an implicit fetch on every
 * call (about 0.2 µs, a fifth of a cached check). Never freed: one per
 * process. */
static EVP_MD *sha256_md;

static void cache_init(void)
{
    (void)pthread_key_create(&cache_key, cache_destroy);
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static cache *this_cache(bool create)
{
    (void)pthread_once(&cache_once, cache_init);
    cache *c = pthread_getspecific(cache_key);
    if (c == NULL && create) {
        c = calloc(1, sizeof *c);
        if (c != NULL && pthread_setspecific(cache_key, c) != 0) {
            free(c);
            c = NULL;
        }
    }
    return c;
}

bool pc_gw_token_sha256(pc_str token, uint8_t out[32])
{
    cache *c = this_cache(true);
    unsigned int len = 0;
    const EVP_MD *md = sha256_md ? sha256_md : EVP_sha256();
    if (c != NULL && c->sha256 == NULL) c->sha256 = EVP_MD_CTX_new();
    if (c == NULL || c->sha256 == NULL)
        return EVP_Digest(token.ptr, token.len, out, &len, md, NULL) == 1 && len == 32;
    return EVP_DigestInit_ex2(c->sha256, md, NULL) == 1 &&
           EVP_DigestUpdate(c->sha256, token.ptr, token.len) == 1 &&
           EVP_DigestFinal_ex(c->sha256, out, &len) == 1 && len == 32;
}

static entry *slot_of(cache *c, const uint8_t key[32])
{
    uint32_t i;
    memcpy(&i, key, sizeof i); /* a SHA-256 prefix is uniform */
    return &c->slots[i % PC_GW_TOKEN_CACHE_SLOTS];
}

bool pc_gw_tokcache_get_key(uint64_t generation, const uint8_t key[32], int64_t now,
                            json_t **claims)
{
    *claims = NULL;
    cache *c = this_cache(false);
    if (c == NULL || generation == 0) return false;
    entry *e = slot_of(c, key);
    /* Not a secret comparison: the key is a hash of what the caller holds,
     * and a hit only skips work the caller would redo identically. */
    if (e->generation != generation || memcmp(e->key, key, sizeof e->key) != 0 || e->exp <= now)
        return false;
    *claims = json_incref(e->claims);
    return true;
}

void pc_gw_tokcache_put_key(uint64_t generation, const uint8_t key[32], int64_t exp,
                            json_t *claims)
{
    cache *c = this_cache(true);
    if (c == NULL || generation == 0 || claims == NULL) return;
    entry *e = slot_of(c, key);
    json_decref(e->claims);
    memcpy(e->key, key, sizeof e->key);
    e->generation = generation;
    e->exp = exp;
    e->claims = json_incref(claims);
}

size_t pc_gw_tokcache_count(int64_t now)
{
    cache *c = this_cache(false);
    size_t n = 0;
    for (size_t i = 0; c != NULL && i < PC_GW_TOKEN_CACHE_SLOTS; i++)
        n += c->slots[i].generation != 0 && c->slots[i].exp > now;
    return n;
}
