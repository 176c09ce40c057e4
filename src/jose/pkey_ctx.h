/* Private to src/jose: signing and verifying contexts reused per thread.
 *
 * Making an EVP_PKEY_CTX and initialising it for sign or verify fetches the
 * algorithm from the provider each time (hash-table walks, string compares):
 * measured at about 15 us per ES256 signature on the token endpoint, more
 * than half the signature itself. A context stays valid for many sign or
 * verify calls once initialised, so each thread keeps a few, keyed by (key,
 * operation, alg). A cached context holds a reference to its key, so a
 * key freed elsewhere lives on until its context is evicted; its address is
 * therefore never reused while it is a cache key. */
#ifndef PC_JOSE_PKEY_CTX_H
#define PC_JOSE_PKEY_CTX_H

#include <openssl/evp.h>

/* Contexts per thread: the active signing key plus the client and DPoP
 * keys in flight (DPoP keys come from the per-thread proof-key cache of
 * the same size, so their contexts are reused too). */
#define PC_PKEY_CTX_CACHE 64

typedef enum pc_pkey_op { PC_PKEY_SIGN = 0, PC_PKEY_VERIFY = 1 } pc_pkey_op;

/* An initialised context for (key, op, alg), made with setup() when new
 * (setup returns false on failure). NULL on failure. Owned by the cache:
 * do not free; call pc_pkey_ctx_drop after an operation that errored. */
EVP_PKEY_CTX *pc_pkey_ctx_get(EVP_PKEY *key, pc_pkey_op op, int alg,
                              int (*setup)(EVP_PKEY_CTX *ctx, int alg));
void pc_pkey_ctx_drop(EVP_PKEY_CTX *ctx);

#endif
