/* JSON Web Keys (RFC 7517, RFC 7518 §6, RFC 8037) and their thumbprints
 * (RFC 7638).
 *
 * Keys come from clients (registered jwks, DPoP proof headers), so parsing
 * is strict: required members present and of the right type and length,
 * EC points on the curve, RSA moduli of at least 2048 bits (FAPI 2.0 §5.4),
 * and no private members unless the caller asks for a private key. */
#ifndef PC_JOSE_JWK_H
#define PC_JOSE_JWK_H

#include "core/result.h"
#include "jose/b64url.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdbool.h>

/* RFC 7638 thumbprint: base64url(SHA-256), 43 characters + NUL. */
#define PC_JWK_THUMBPRINT_BUF 44
/* Longest kid we keep; longer ones are refused (a kid is an identifier,
 * not a payload). */
#define PC_JWK_MAX_KID 128
/* RSA modulus bounds in bits: FAPI 2.0 §5.4.1 says at least 2048; above
 * 8192 a verify is a CPU-exhaustion lever. */
#define PC_JWK_RSA_MIN_BITS 2048
#define PC_JWK_RSA_MAX_BITS 8192
/* Keys in one JWKS we accept from a client. */
#define PC_JWKS_MAX_KEYS 32

typedef enum pc_jwk_type {
    PC_JWK_NONE = 0,
    PC_JWK_EC_P256,   /* kty EC, crv P-256 */
    PC_JWK_RSA,       /* kty RSA */
    PC_JWK_ED25519,   /* kty OKP, crv Ed25519 */
} pc_jwk_type;

typedef struct pc_jwk {
    EVP_PKEY *pkey;                 /* owned */
    pc_jwk_type type;
    bool is_private;
    char kid[PC_JWK_MAX_KID + 1];   /* "" if absent */
    char alg[16];                   /* "" if absent */
    char use[8];                    /* "" if absent */
    char thumbprint[PC_JWK_THUMBPRINT_BUF]; /* RFC 7638, always set */
} pc_jwk;

typedef enum pc_jwk_private {
    PC_JWK_PUBLIC_ONLY = 0, /* refuse a JWK with private members ("d", "p", ...) */
    PC_JWK_PRIVATE_OK,      /* accept a private key (our own key store) */
} pc_jwk_private;

/* Parse one JWK object. On failure *out is left cleared (no key).
 * Refused with PC_ERR_PROTO: kty "oct" (symmetric keys are never accepted),
 * an unsupported kty or crv (the message names it), members of the wrong
 * JSON type or decoded length, an RSA modulus outside the bounds above or
 * not in minimal form (RFC 7518 §6.3.1.1), an exponent that is even, below
 * 3 or longer than 64 bits, an EC point not on P-256, a kid longer than
 * PC_JWK_MAX_KID, an alg longer than 15 or a use longer than 7 characters,
 * and private members under PC_JWK_PUBLIC_ONLY. A private key
 * (PC_JWK_PRIVATE_OK) must hold only the private members of its type (RSA:
 * d, p, q, dp, dq, qi, all of them; "oth" is refused) and must match its
 * public members. "x5u" and "jku" are ignored: nothing is ever fetched. */
PC_MUST_USE pc_result pc_jwk_from_json(const json_t *obj, pc_jwk_private priv, pc_jwk *out);
void pc_jwk_clear(pc_jwk *jwk);
/* The JWK type of a key: PC_JWK_NONE for anything we do not use (other
 * curves, RSA outside [PC_JWK_RSA_MIN_BITS, PC_JWK_RSA_MAX_BITS], RSA-PSS
 * restricted keys, X25519, ...). */
pc_jwk_type pc_jwk_pkey_type(const EVP_PKEY *pkey);
/* RFC 7638 thumbprint of a JWK object (only the required members, in
 * lexicographic order, no whitespace). */
PC_MUST_USE pc_result pc_jwk_thumbprint_json(const json_t *obj, char out[PC_JWK_THUMBPRINT_BUF]);
/* The public JWK of a key, with kid/alg/use when not NULL. */
PC_MUST_USE pc_result pc_jwk_public_json(const EVP_PKEY *pkey, const char *kid, const char *alg,
                                         const char *use, json_t **out);
/* RFC 7638 thumbprint of a key's public part. */
PC_MUST_USE pc_result pc_jwk_thumbprint_pkey(const EVP_PKEY *pkey,
                                             char out[PC_JWK_THUMBPRINT_BUF]);

typedef struct pc_jwks {
    pc_jwk keys[PC_JWKS_MAX_KEYS];
    size_t n;
} pc_jwks;

/* Parse {"keys":[...]} of public keys (PC_JWK_PUBLIC_ONLY); at most
 * PC_JWKS_MAX_KEYS entries, counting skipped ones. Well-formed keys of
 * unsupported types (an unknown kty, or a curve we do not use) are skipped;
 * anything else pc_jwk_from_json refuses fails the whole set, as do
 * private members on any entry and kty "oct" (a client that publishes a
 * secret has a problem we must not hide). The message names the entry's
 * index. Duplicate kids are accepted here; see pc_jwks_find. */
PC_MUST_USE pc_result pc_jwks_from_json(const json_t *obj, pc_jwks *out);
void pc_jwks_clear(pc_jwks *set);
/* Find a key by kid (or, when kid is NULL/"" and the set has exactly one
 * key usable for signatures, that key). NULL if none. A kid that more than
 * one key carries is ambiguous: find returns NULL rather than guess by key
 * type or alg. A key with "use" other than "sig" is never returned (RFC
 * 7517 §4.2). */
const pc_jwk *pc_jwks_find(const pc_jwks *set, const char *kid);

#endif
