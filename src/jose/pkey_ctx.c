#include "jose/pkey_ctx.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct entry {
    EVP_PKEY *key; /* identity only; the ctx holds the reference */
    pc_pkey_op op;
    int alg;
    EVP_PKEY_CTX *ctx;
} entry;

typedef struct cache {
    entry e[PC_PKEY_CTX_CACHE];
    unsigned next; /* round-robin victim */
} cache;

static pthread_key_t tls_key;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void destroy(void *p)
{
    cache *c = p;
    for (size_t i = 0; i < PC_PKEY_CTX_CACHE; i++) EVP_PKEY_CTX_free(c->e[i].ctx);
    free(c);
}

static void make_key(void) { (void)pthread_key_create(&tls_key, destroy); }

static cache *get_cache(void)
{
    pthread_once(&once, make_key);
    cache *c = pthread_getspecific(tls_key);
    if (c == NULL) {
        c = calloc(1, sizeof *c);
        if (c && pthread_setspecific(tls_key, c) != 0) {
            free(c);
            c = NULL;
        }
    }
    return c;
}

EVP_PKEY_CTX *pc_pkey_ctx_get(EVP_PKEY *key, pc_pkey_op op, int alg,
                              int (*setup)(EVP_PKEY_CTX *ctx, int alg))
{
    cache *c = get_cache();
    if (c != NULL)
        for (size_t i = 0; i < PC_PKEY_CTX_CACHE; i++)
            if (c->e[i].ctx && c->e[i].key == key && c->e[i].op == op && c->e[i].alg == alg)
                return c->e[i].ctx;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    int ok = ctx != NULL &&
             (op == PC_PKEY_SIGN ? EVP_PKEY_sign_init(ctx) : EVP_PKEY_verify_init(ctx)) == 1 &&
             setup(ctx, alg);
    if (!ok) {
        EVP_PKEY_CTX_free(ctx);
        return NULL;
    }
    if (c == NULL) { /* out of memory for the cache: fail rather than leak */
        EVP_PKEY_CTX_free(ctx);
        return NULL;
    }
    entry *v = &c->e[c->next];
    c->next = (c->next + 1) % PC_PKEY_CTX_CACHE;
    EVP_PKEY_CTX_free(v->ctx);
    *v = (entry){key, op, alg, ctx};
    return ctx;
}

void pc_pkey_ctx_drop(EVP_PKEY_CTX *ctx)
{
    cache *c = get_cache();
    for (size_t i = 0; c && i < PC_PKEY_CTX_CACHE; i++)
        if (c->e[i].ctx == ctx) {
            EVP_PKEY_CTX_free(ctx);
            c->e[i] = (entry){0};
            return;
        }
}
