/* DPoP proof validation (RFC 9449 §4.3), shared by the token endpoint and
 * the gateway. The caller supplies what the proof must match; this checks
 * the proof's form, signature and claims and returns the key thumbprint
 * (cnf.jkt) and jti. The single-use check of the jti is the caller's
 * (pc_replay, keyed by (jkt, jti)), done only after everything here
 * passed, so a bad proof never burns a jti (sourcebot#1395 review). */
#ifndef PC_JOSE_DPOP_H
#define PC_JOSE_DPOP_H

#include "core/result.h"
#include "core/str.h"
#include "jose/jwk.h"

#include <stdbool.h>
#include <stdint.h>

#define PC_DPOP_MAX_JTI 256  /* bytes of a proof's jti we accept */
#define PC_DPOP_MAX_URL 2048 /* bytes of an htu we normalise */

typedef struct pc_dpop_check {
    pc_str method;        /* the request's method: htm must equal it */
    pc_str url;           /* the URL the request was sent to (external view) */
    pc_str access_token;  /* set at a resource server: ath must match it */
    /* Optional: SHA-256 of access_token, when the caller already has it
     * (the gateway's token cache is keyed by it); NULL: hashed here. */
    const uint8_t *access_token_sha256;
    int64_t now;          /* unix seconds */
    uint32_t max_age_s;   /* iat no older than this */
    uint32_t skew_s;      /* iat no further in the future than this */
    unsigned allowed_algs;/* pc_jws_alg bits */
    /* Server nonces (RFC 9449 §8): when set, the proof must carry a nonce
     * that nonce_ok accepts. */
    bool (*nonce_ok)(void *arg, pc_str nonce, int64_t now);
    void *nonce_arg;
} pc_dpop_check;

typedef struct pc_dpop_proof {
    char jkt[PC_JWK_THUMBPRINT_BUF]; /* RFC 7638 thumbprint of the proof key */
    char jti[PC_DPOP_MAX_JTI + 1];
    int64_t iat;
    bool need_nonce;      /* failed only for a missing or stale nonce */
} pc_dpop_proof;

/* PC_OK, or PC_ERR_PROTO with a message (an invalid_dpop_proof), or
 * PC_ERR_DENY with out->need_nonce set (answer use_dpop_nonce). */
PC_MUST_USE pc_result pc_dpop_verify(pc_str proof, const pc_dpop_check *chk, pc_dpop_proof *out);

/* Stateless server nonces (RFC 9449 §8, §9): no store, so every worker
 * and every instance sharing the secret agrees. A nonce is
 *   base64url(HMAC-SHA256(secret, "portcullis-dpop-nonce" || step)[0..16])
 * with step = now / PC_DPOP_NONCE_STEP_S; one from the current or the
 * previous step is accepted, so a nonce lives one to two steps. */
#define PC_DPOP_NONCE_STEP_S 120
#define PC_DPOP_NONCE_SECRET 32
#define PC_DPOP_NONCE_LEN 22 /* base64url of 16 bytes */

typedef struct pc_dpop_noncer {
    uint8_t secret[PC_DPOP_NONCE_SECRET];
} pc_dpop_noncer;

/* Secret from a file of 64 hex characters (mode 0600), or random when
 * file is NULL (fine for one instance; several need a shared file). */
PC_MUST_USE pc_result pc_dpop_noncer_init(pc_dpop_noncer *n, const char *file);
void pc_dpop_nonce_make(const pc_dpop_noncer *n, int64_t now, char out[PC_DPOP_NONCE_LEN + 1]);
/* Matches pc_dpop_check.nonce_ok; arg is the pc_dpop_noncer. */
bool pc_dpop_nonce_ok(void *arg, pc_str nonce, int64_t now);

/* Normalise an http(s) URL for htu comparison (RFC 9449 §4.3 point 9,
 * RFC 3986 §6.2.2 and §6.2.3): lower-case scheme and host, no default
 * port, empty path as "/", percent-escapes upper-cased and unreserved ones
 * decoded, query and fragment removed. */
PC_MUST_USE pc_result pc_dpop_normalize_url(pc_str url, char *out, size_t cap, size_t *out_len);

#endif
