/* x5t#S256 certificate thumbprints (RFC 8705 §3.1), the value a
 * certificate-bound access token carries in its "cnf" claim and that the
 * gateway recomputes for the client certificate of every request. */
#include "jose/thumbprint.h"

#include "jose/b64url.h"

#include <openssl/evp.h>
#include <pthread.h>

/* Fetching an algorithm looks it up in the provider store under a lock;
 * doing it once keeps that off the request path (OpenSSL 3 "performance"
 * guide: prefer explicit fetching over EVP_sha256() per call). The fetched
 * object lives until exit and is shared read-only by every thread. */
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256_md;

static void fetch_sha256(void) { sha256_md = EVP_MD_fetch(NULL, "SHA2-256", NULL); }

pc_result pc_x5t_s256(X509 *cert, char out[PC_X5T_S256_BUF])
{
    PC_ENSURE(cert != NULL, PC_ERR_INTERNAL, "x5t#S256: no certificate");
    PC_ENSURE(pthread_once(&sha256_once, fetch_sha256) == 0 && sha256_md != NULL,
              PC_ERR_CRYPTO, "x5t#S256: SHA-256 is not available from the OpenSSL providers");

    /* RFC 8705 §3.1 hashes the DER encoding. OpenSSL keeps the received
     * encoding of the signed part (tbsCertificate) of a parsed certificate,
     * so i2d_X509 reproduces the bytes that were signed rather than a
     * re-encoding of them. */
    unsigned char *der = NULL;
    int der_len = i2d_X509(cert, &der);
    if (der_len <= 0) return pc_fail_ossl("x5t#S256: DER-encoding the certificate");

    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    int ok = EVP_Digest(der, (size_t)der_len, digest, &digest_len, sha256_md, NULL);
    OPENSSL_free(der);
    if (ok != 1) return pc_fail_ossl("x5t#S256: SHA-256");
    PC_ENSURE(digest_len == 32, PC_ERR_INTERNAL, "x5t#S256: SHA-256 gave %u bytes", digest_len);

    size_t len = 0;
    PC_GUARD(pc_b64url_encode(digest, digest_len, out, PC_X5T_S256_BUF, &len));
    PC_ENSURE(len == PC_X5T_S256_LEN, PC_ERR_INTERNAL, "x5t#S256: encoded to %zu characters", len);
    return PC_OK;
}
