/* JWS compact serialization (RFC 7515) with a strict algorithm allow-list
 * (RFC 8725 JWT BCP; FAPI 2.0 §5.4: PS256, ES256, EdDSA only).
 *
 * Parsing is separate from verification so callers can look at the header
 * (kid, typ, jwk) to pick the key first. Nothing in a header is trusted
 * before the signature verifies with a key the caller chose. */
#ifndef PC_JOSE_JWS_H
#define PC_JOSE_JWS_H

#include "core/result.h"
#include "core/str.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdint.h>

/* Longest compact JWS we parse: an access token or an assertion is a few
 * hundred bytes; a DPoP proof with an RSA jwk about 1.5 KiB. */
#define PC_JWS_MAX_LEN 8192
/* JSON nesting we accept in a JWS header or payload. */
#define PC_JWS_MAX_JSON_DEPTH 8

typedef enum pc_jws_alg {
    PC_ALG_UNKNOWN = 0,
    PC_ALG_NONE = 1 << 0,  /* recognised only to be refused */
    PC_ALG_HS256 = 1 << 1, /* recognised only to be refused */
    PC_ALG_RS256 = 1 << 2, /* recognised; never allowed under FAPI */
    PC_ALG_ES256 = 1 << 3,
    PC_ALG_PS256 = 1 << 4,
    PC_ALG_EDDSA = 1 << 5, /* Ed25519 only */
} pc_jws_alg;

/* The FAPI 2.0 allow-list. */
#define PC_ALGS_FAPI (PC_ALG_ES256 | PC_ALG_PS256 | PC_ALG_EDDSA)

pc_jws_alg pc_jws_alg_parse(pc_str name);
const char *pc_jws_alg_name(pc_jws_alg alg);

typedef struct pc_jws {
    pc_str signing_input;  /* header.payload, points into the input, which
                              must outlive this struct */
    json_t *header;        /* a reference; read-only: a parsed header may be
                              shared with a per-thread cache of headers */
    json_t *payload;       /* owned; always a JSON object after a parse */
    pc_jws_alg alg;
    const char *kid;       /* from header, NULL if absent; owned by header */
    const char *typ;       /* from header, NULL if absent */
    uint8_t sig[1024];     /* decoded signature */
    size_t sig_len;
} pc_jws;

/* Parse a compact JWS: three base64url parts, a JSON object header with a
 * string "alg", a JSON object payload. Refuses "crit" (we understand no
 * extensions, RFC 7515 §4.1.11), an alg pc_jws_alg_parse does not know,
 * duplicate member names, a non-string kid or typ, a kid longer than
 * PC_JWK_MAX_KID, oversize input, and deep JSON (all PC_ERR_PROTO). An
 * empty signature parses so that verify can refuse "none" by name. On
 * failure *out is left cleared. */
PC_MUST_USE pc_result pc_jws_parse(pc_str compact, pc_jws *out);
void pc_jws_clear(pc_jws *jws);
/* Verify with key, if jws->alg is in allowed and matches the key type
 * (ES256 needs a P-256 key, PS256 and RS256 RSA, EdDSA Ed25519). PC_ERR_DENY
 * when the signature does not verify, has the wrong length for its alg, the
 * alg is not allowed or the key type does not match. "none" and HS256 are
 * refused whatever allowed says. Thread-safe with a key shared between
 * threads. */
PC_MUST_USE pc_result pc_jws_verify(const pc_jws *jws, EVP_PKEY *key, unsigned allowed);
/* Sign payload into a compact JWS (malloc'd, NUL-terminated). The header
 * is {"alg":..., "typ": typ (if not NULL), "kid": kid (if not NULL)} plus
 * the members of extra_header (if not NULL, e.g. a "jwk"), in that order,
 * compact. Only the PC_ALGS_FAPI algorithms sign (PC_ERR_USAGE otherwise,
 * or when the key type does not match); extra_header may not set alg, typ,
 * kid or crit. */
PC_MUST_USE pc_result pc_jws_sign(pc_jws_alg alg, EVP_PKEY *key, const char *kid,
                                  const char *typ, const json_t *extra_header,
                                  const json_t *payload, char **out, size_t *out_len);

/* A signer prepared once for a key, alg, kid and typ: the key type is
 * checked and the header {"alg", "typ", "kid"} encoded at init, so that a
 * signature costs the payload's base64url and the signature itself. The
 * key is borrowed: it must outlive the signer. */
typedef struct pc_jws_signer {
    pc_jws_alg alg;
    EVP_PKEY *key;
    char *header_b64; /* owned */
    size_t header_len;
} pc_jws_signer;

/* The same checks as pc_jws_sign (PC_ERR_USAGE). On failure *s is cleared. */
PC_MUST_USE pc_result pc_jws_signer_init(pc_jws_signer *s, pc_jws_alg alg, EVP_PKEY *key,
                                         const char *kid, const char *typ);
void pc_jws_signer_clear(pc_jws_signer *s);
/* Sign len bytes of payload text (JSON the caller made; not parsed or
 * checked here) into a compact JWS (malloc'd, NUL-terminated). Thread-safe
 * with a signer shared between threads. */
PC_MUST_USE pc_result pc_jws_signer_sign(const pc_jws_signer *s, const char *payload, size_t len,
                                         char **out, size_t *out_len);

#endif
