/* JSON Web Keys (RFC 7517, RFC 7518 §6, RFC 8037) and their RFC 7638
 * thumbprints.
 *
 * A JWK is read in two steps: its members are checked and decoded (types,
 * lengths, minimal integers), then the OpenSSL key is built from the decoded
 * bytes. The thumbprint is computed from the member strings as received,
 * which the first step has proved canonical: strict base64url has exactly
 * one encoding per value, EC coordinates have a fixed length and RSA
 * integers have no leading zero octet, so the same key always gives the
 * same thumbprint.
 *
 * A DPoP proof carries a P-256 key on every request, so that path avoids
 * the DER decoder (PERF-NOTES: d2i_PUBKEY 111 µs) and instead duplicates a
 * P-256 template key and sets its public point (about 4 µs), which also
 * checks that the point is on the curve. */
#include "jose/jwk.h"

#include "core/str.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define P256_BYTES 32     /* a P-256 coordinate or private scalar, RFC 7518 §6.2.1.2 */
#define P256_POINT 65     /* 0x04 || x || y, SEC 1 §2.3.3 uncompressed form */
#define ED25519_BYTES 32  /* RFC 8032 §5.1.5 public and private keys */
#define RSA_MAX_BYTES (PC_JWK_RSA_MAX_BITS / 8)
/* OpenSSL itself refuses public exponents above 64 bits for moduli above
 * 3072 bits (OPENSSL_RSA_MAX_PUBEXP_BITS); we apply that to every size, as
 * a large exponent makes each verify slower for no benefit. */
#define RSA_MAX_E_BYTES 8
/* Canonical thumbprint input: the longest is RSA,
 * {"e":"<11>","kty":"RSA","n":"<1366>"}. */
#define THUMB_INPUT_MAX 1536
/* Base64url of the longest member we export (an RSA modulus). */
#define B64_MAX (PC_B64URL_ENCODED_LEN(RSA_MAX_BYTES) + 1)

/* Process-wide OpenSSL objects, made once and then only read: SHA-256
 * fetched once (a fetch per call costs about 0.2 µs, PERF-NOTES), and a
 * P-256 key holding only the group, which EC imports duplicate. */
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256_md;
static EVP_PKEY *p256_template;

static void init_objects(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA2-256", NULL);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"P-256", 0),
        OSSL_PARAM_construct_end(),
    };
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &p256_template, EVP_PKEY_KEY_PARAMETERS, params) != 1)
        p256_template = NULL;
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
}

static pc_result init(void)
{
    PC_ENSURE(pthread_once(&init_once, init_objects) == 0 && sha256_md != NULL &&
                  p256_template != NULL,
              PC_ERR_CRYPTO, "jwk: SHA-256 or P-256 is not available from the OpenSSL providers");
    return PC_OK;
}

/* A failure of OpenSSL on input the peer chose: its fault, not ours. */
static pc_result fail_ossl_proto(const char *what)
{
    pc_result r = pc_fail_ossl(what);
    r.err = PC_ERR_PROTO;
    return r;
}

/* ---- members ------------------------------------------------------------ */

/* The public members of a key as strings, as received or as exported.
 * Only those of its type are set. */
typedef struct key_members {
    pc_jwk_type type;
    pc_str x, y; /* EC (both), OKP (x) */
    pc_str n, e; /* RSA */
} key_members;

static pc_result opt_string(const json_t *obj, const char *name, pc_str *out)
{
    const json_t *v = json_object_get(obj, name);
    *out = PC_STR_NULL;
    if (v == NULL) return PC_OK;
    PC_ENSURE(json_is_string(v), PC_ERR_PROTO, "jwk: \"%s\" must be a string", name);
    *out = (pc_str){json_string_value(v), json_string_length(v)};
    return PC_OK;
}

static pc_result req_string(const json_t *obj, const char *name, pc_str *out)
{
    PC_GUARD(opt_string(obj, name, out));
    PC_ENSURE(out->ptr != NULL, PC_ERR_PROTO, "jwk: \"%s\" is missing", name);
    return PC_OK;
}

/* A member that must decode to exactly len bytes: EC coordinates and
 * private scalars (RFC 7518 §6.2.1.2, §6.2.2.1), OKP keys (RFC 8037 §2). */
static pc_result b64_exact(const json_t *obj, const char *name, uint8_t *out, size_t len,
                           pc_str *raw)
{
    pc_str s;
    PC_GUARD(req_string(obj, name, &s));
    size_t got = 0;
    bool ok = pc_ok(pc_b64url_decode(s.ptr, s.len, out, len, &got)) && got == len;
    PC_ENSURE(ok, PC_ERR_PROTO, "jwk: \"%s\" must be base64url of exactly %zu bytes", name, len);
    if (raw != NULL) *raw = s;
    return PC_OK;
}

/* A Base64urlUInt (RFC 7518 §2): 1..cap bytes, no leading zero octet
 * ("MUST utilize the minimum number of octets", §6.3.1.1). */
static pc_result b64_uint(const json_t *obj, const char *name, uint8_t *out, size_t cap,
                          size_t *len, pc_str *raw)
{
    pc_str s;
    PC_GUARD(req_string(obj, name, &s));
    bool ok = pc_ok(pc_b64url_decode(s.ptr, s.len, out, cap, len)) && *len > 0;
    PC_ENSURE(ok, PC_ERR_PROTO, "jwk: \"%s\" must be base64url of 1 to %zu bytes", name, cap);
    PC_ENSURE(out[0] != 0, PC_ERR_PROTO, "jwk: \"%s\" has a leading zero octet", name);
    if (raw != NULL) *raw = s;
    return PC_OK;
}

/* A peer-supplied name, made safe for an error message: at most 24
 * printable ASCII characters, anything else shown as '?'. */
static const char *printable(pc_str s, char buf[32])
{
    size_t n = s.len < 24 ? s.len : 24;
    for (size_t i = 0; i < n; i++)
        buf[i] = (s.ptr[i] >= 0x20 && s.ptr[i] < 0x7f && s.ptr[i] != '"') ? s.ptr[i] : '?';
    buf[n] = '\0';
    return buf;
}

/* kty and crv -> type. PC_JWK_NONE with PC_OK is a well-formed key of a
 * type we do not use (another curve, X25519, an unknown kty). */
static pc_result classify(const json_t *obj, pc_jwk_type *type)
{
    pc_str kty, crv;
    *type = PC_JWK_NONE;
    PC_ENSURE(json_is_object(obj), PC_ERR_PROTO, "jwk: not a JSON object");
    PC_GUARD(req_string(obj, "kty", &kty));
    /* A symmetric key in a key set is a shared secret sent in the clear, and
     * accepting one would open the HS256 confusion attack (RFC 8725 §2.1). */
    PC_ENSURE(!pc_str_eq(kty, PC_STR("oct")), PC_ERR_PROTO,
              "jwk: kty \"oct\" (a symmetric key) is never accepted");
    if (pc_str_eq(kty, PC_STR("RSA"))) {
        *type = PC_JWK_RSA;
        return PC_OK;
    }
    bool ec = pc_str_eq(kty, PC_STR("EC")), okp = pc_str_eq(kty, PC_STR("OKP"));
    if (!ec && !okp) return PC_OK;
    PC_GUARD(req_string(obj, "crv", &crv));
    if (ec && pc_str_eq(crv, PC_STR("P-256"))) *type = PC_JWK_EC_P256;
    if (okp && pc_str_eq(crv, PC_STR("Ed25519"))) *type = PC_JWK_ED25519;
    return PC_OK;
}

static pc_result fail_unsupported(const json_t *obj)
{
    char kb[32], cb[32];
    pc_str kty = PC_STR_NULL, crv = PC_STR_NULL;
    (void)opt_string(obj, "kty", &kty);
    (void)opt_string(obj, "crv", &crv);
    if (crv.ptr == NULL)
        return pc_fail(PC_ERR_PROTO, "jwk: unsupported kty \"%s\"", printable(kty, kb));
    return pc_fail(PC_ERR_PROTO, "jwk: unsupported kty \"%s\" with crv \"%s\"",
                   printable(kty, kb), printable(crv, cb));
}

/* RFC 7517 §8.1.1 names d (EC, OKP, RSA), p, q, dp, dq, qi, oth (RSA)
 * and k (oct) as private. */
static const char *const private_names[] = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"};
#define N_PRIVATE (sizeof private_names / sizeof private_names[0])

static bool private_belongs(pc_jwk_type type, const char *name)
{
    if (strcmp(name, "d") == 0) return true;
    /* Multi-prime keys ("oth") are not supported; "k" is only for oct. */
    if (strcmp(name, "oth") == 0 || strcmp(name, "k") == 0) return false;
    return type == PC_JWK_RSA;
}

static pc_result check_private_members(const json_t *obj, pc_jwk_type type,
                                       pc_jwk_private priv, bool *has_private)
{
    *has_private = false;
    for (size_t i = 0; i < N_PRIVATE; i++) {
        const char *name = private_names[i];
        if (json_object_get(obj, name) == NULL) continue;
        PC_ENSURE(priv == PC_JWK_PRIVATE_OK, PC_ERR_PROTO,
                  "jwk: private member \"%s\" where only a public key is accepted", name);
        PC_ENSURE(private_belongs(type, name), PC_ERR_PROTO,
                  "jwk: member \"%s\" is not supported in this kind of private key", name);
        *has_private = true;
    }
    return PC_OK;
}

static pc_result copy_meta(const json_t *obj, const char *name, char *dst, size_t cap)
{
    pc_str s;
    PC_GUARD(opt_string(obj, name, &s));
    if (s.ptr == NULL) return PC_OK;
    PC_ENSURE(s.len < cap, PC_ERR_PROTO, "jwk: \"%s\" is longer than %zu characters", name,
              cap - 1);
    /* A NUL inside would let "a\u0000b" match a lookup for "a". */
    PC_ENSURE(memchr(s.ptr, '\0', s.len) == NULL, PC_ERR_PROTO, "jwk: \"%s\" contains NUL", name);
    memcpy(dst, s.ptr, s.len);
    dst[s.len] = '\0';
    return PC_OK;
}

/* ---- RFC 7638 thumbprint ---------------------------------------------------- */

typedef struct text_buf {
    char *p;
    size_t len, cap;
    bool overflow;
} text_buf;

static void put(text_buf *b, pc_str s)
{
    if (b->overflow || s.len > b->cap - b->len) {
        b->overflow = true;
        return;
    }
    memcpy(b->p + b->len, s.ptr, s.len);
    b->len += s.len;
}

/* RFC 7638 §3.2: the required members only, in lexicographic order of
 * their names, no whitespace. The values are base64url strings and fixed
 * names, so no character needs JSON escaping. */
static pc_result thumbprint(const key_members *m, char out[PC_JWK_THUMBPRINT_BUF])
{
    char input[THUMB_INPUT_MAX];
    text_buf b = {input, 0, sizeof input, false};
    switch (m->type) {
    case PC_JWK_EC_P256:
        put(&b, PC_STR("{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\""));
        put(&b, m->x);
        put(&b, PC_STR("\",\"y\":\""));
        put(&b, m->y);
        break;
    case PC_JWK_RSA:
        put(&b, PC_STR("{\"e\":\""));
        put(&b, m->e);
        put(&b, PC_STR("\",\"kty\":\"RSA\",\"n\":\""));
        put(&b, m->n);
        break;
    case PC_JWK_ED25519:
        put(&b, PC_STR("{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\""));
        put(&b, m->x);
        break;
    default: return pc_fail(PC_ERR_INTERNAL, "jwk: thumbprint of an unsupported key type");
    }
    put(&b, PC_STR("\"}"));
    PC_ENSURE(!b.overflow, PC_ERR_INTERNAL, "jwk: thumbprint input too long");

    PC_GUARD(init());
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    PC_GUARD_OSSL(EVP_Digest(input, b.len, digest, &dlen, sha256_md, NULL), "jwk: SHA-256");
    PC_ENSURE(dlen == 32, PC_ERR_INTERNAL, "jwk: SHA-256 gave %u bytes", dlen);
    return pc_b64url_encode(digest, dlen, out, PC_JWK_THUMBPRINT_BUF, NULL);
}

/* ---- reading the public members ---------------------------------------- */

static pc_result ec_read(const json_t *obj, uint8_t pt[P256_POINT], key_members *m)
{
    pt[0] = 0x04;
    PC_GUARD(b64_exact(obj, "x", pt + 1, P256_BYTES, &m->x));
    PC_GUARD(b64_exact(obj, "y", pt + 1 + P256_BYTES, P256_BYTES, &m->y));
    return PC_OK;
}

static pc_result okp_read(const json_t *obj, uint8_t x[ED25519_BYTES], key_members *m)
{
    return b64_exact(obj, "x", x, ED25519_BYTES, &m->x);
}

static unsigned bit_length(const uint8_t *be, size_t len)
{
    unsigned top = 0;
    for (unsigned v = be[0]; v != 0; v >>= 1) top++;
    return (unsigned)(len - 1) * 8 + top;
}

/* n: [PC_JWK_RSA_MIN_BITS, PC_JWK_RSA_MAX_BITS] bits and odd (a modulus is
 * a product of odd primes; OpenSSL's Montgomery arithmetic needs it odd).
 * e: odd, at least 3 (e = 1 makes every "signature" verify), at most 64
 * bits. */
static pc_result rsa_check(const uint8_t *n, size_t n_len, const uint8_t *e, size_t e_len)
{
    unsigned bits = bit_length(n, n_len);
    PC_ENSURE(bits >= PC_JWK_RSA_MIN_BITS && bits <= PC_JWK_RSA_MAX_BITS, PC_ERR_PROTO,
              "jwk: RSA modulus of %u bits; %d to %d are accepted (FAPI 2.0 §5.4.1)", bits,
              PC_JWK_RSA_MIN_BITS, PC_JWK_RSA_MAX_BITS);
    PC_ENSURE(n[n_len - 1] & 1, PC_ERR_PROTO, "jwk: RSA modulus is even");
    PC_ENSURE((e[e_len - 1] & 1) && (e_len > 1 || e[0] >= 3), PC_ERR_PROTO,
              "jwk: RSA public exponent must be odd and at least 3");
    return PC_OK;
}

typedef struct rsa_pub {
    uint8_t n[RSA_MAX_BYTES], e[RSA_MAX_E_BYTES];
    size_t n_len, e_len;
} rsa_pub;

static pc_result rsa_read(const json_t *obj, rsa_pub *k, key_members *m)
{
    PC_GUARD(b64_uint(obj, "n", k->n, sizeof k->n, &k->n_len, &m->n));
    PC_GUARD(b64_uint(obj, "e", k->e, sizeof k->e, &k->e_len, &m->e));
    return rsa_check(k->n, k->n_len, k->e, k->e_len);
}

/* The public members of a supported key, checked; no key is built. */
static pc_result read_public(const json_t *obj, pc_jwk_type type, key_members *m)
{
    uint8_t pt[P256_POINT];
    rsa_pub rsa;
    m->type = type;
    switch (type) {
    case PC_JWK_EC_P256: return ec_read(obj, pt, m);
    case PC_JWK_ED25519: return okp_read(obj, pt, m);
    case PC_JWK_RSA: return rsa_read(obj, &rsa, m);
    default: return fail_unsupported(obj);
    }
}

/* ---- building keys ------------------------------------------------------------ */

static pc_result fromdata(const char *type, int selection, OSSL_PARAM *params, EVP_PKEY **out)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    bool ok = ctx != NULL && EVP_PKEY_fromdata_init(ctx) == 1 &&
              EVP_PKEY_fromdata(ctx, out, selection, params) == 1;
    EVP_PKEY_CTX_free(ctx);
    return ok ? PC_OK : fail_ossl_proto("jwk: building the key");
}

/* A private key must match its public members, or we would sign with one
 * key while publishing another. EVP_PKEY_check also checks ranges. */
static pc_result check_keypair(EVP_PKEY *pkey)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    bool ok = ctx != NULL && EVP_PKEY_check(ctx) == 1;
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    PC_ENSURE(ok, PC_ERR_PROTO, "jwk: the private key does not match its public members");
    return PC_OK;
}

/* Build from an OSSL_PARAM_BLD, then free it; private keys are checked. */
static pc_result build(const char *type, OSSL_PARAM_BLD *bld, bool pushed, bool priv,
                       EVP_PKEY **out)
{
    OSSL_PARAM *params = pushed ? OSSL_PARAM_BLD_to_param(bld) : NULL;
    OSSL_PARAM_BLD_free(bld);
    /* OSSL_PARAM_free clears the data of secure BIGNUMs before freeing it. */
    if (params == NULL) return pc_fail_ossl("jwk: key parameters");
    pc_result r = fromdata(type, priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params, out);
    OSSL_PARAM_free(params);
    if (pc_ok(r) && priv) r = check_keypair(*out);
    if (!pc_ok(r)) {
        EVP_PKEY_free(*out);
        *out = NULL;
    }
    return r;
}

static pc_result ec_public(const uint8_t pt[P256_POINT], EVP_PKEY **out)
{
    EVP_PKEY *k = EVP_PKEY_dup(p256_template);
    if (k == NULL) return pc_fail_ossl("jwk: copying the P-256 template");
    /* OpenSSL decodes the point and checks that it lies on the curve
     * (and that x, y < p); a point that does not is the peer's fault. */
    if (EVP_PKEY_set1_encoded_public_key(k, pt, P256_POINT) != 1) {
        EVP_PKEY_free(k);
        ERR_clear_error();
        return pc_fail(PC_ERR_PROTO, "jwk: the EC point is not on P-256");
    }
    *out = k;
    return PC_OK;
}

static pc_result ec_private(const json_t *obj, const uint8_t pt[P256_POINT], EVP_PKEY **out)
{
    uint8_t d[P256_BYTES];
    pc_result r = b64_exact(obj, "d", d, sizeof d, NULL);
    BIGNUM *bn = pc_ok(r) ? BN_bin2bn(d, sizeof d, BN_secure_new()) : NULL;
    OPENSSL_cleanse(d, sizeof d);
    if (!pc_ok(r)) return r;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    bool pushed = bn != NULL && bld != NULL &&
                  OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0) &&
                  OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, P256_POINT) &&
                  OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, bn);
    r = build("EC", bld, pushed, true, out);
    BN_clear_free(bn);
    return r;
}

static pc_result ec_from_json(const json_t *obj, bool priv, key_members *m, EVP_PKEY **out)
{
    uint8_t pt[P256_POINT];
    PC_GUARD(ec_read(obj, pt, m));
    return priv ? ec_private(obj, pt, out) : ec_public(pt, out);
}

static pc_result okp_private(const json_t *obj, const uint8_t x[ED25519_BYTES], EVP_PKEY **out)
{
    uint8_t d[ED25519_BYTES], pub[ED25519_BYTES];
    pc_result r = b64_exact(obj, "d", d, sizeof d, NULL);
    EVP_PKEY *k = pc_ok(r) ? EVP_PKEY_new_raw_private_key_ex(NULL, "ED25519", NULL, d, sizeof d)
                           : NULL;
    /* Wiped on every path: a failed decode may have written part of d. */
    OPENSSL_cleanse(d, sizeof d);
    if (!pc_ok(r)) return r;
    if (k == NULL) return pc_fail_ossl("jwk: building the Ed25519 key");
    size_t len = sizeof pub;
    /* The public key derives from d (RFC 8032 §5.1.5); it must be x. */
    if (EVP_PKEY_get_raw_public_key(k, pub, &len) != 1 || len != sizeof pub ||
        CRYPTO_memcmp(pub, x, sizeof pub) != 0) {
        EVP_PKEY_free(k);
        ERR_clear_error();
        return pc_fail(PC_ERR_PROTO, "jwk: the private key does not match its public members");
    }
    *out = k;
    return PC_OK;
}

static pc_result okp_from_json(const json_t *obj, bool priv, key_members *m, EVP_PKEY **out)
{
    uint8_t x[ED25519_BYTES];
    PC_GUARD(okp_read(obj, x, m));
    if (priv) return okp_private(obj, x, out);
    *out = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, x, sizeof x);
    return *out != NULL ? PC_OK : pc_fail_ossl("jwk: building the Ed25519 key");
}

/* JWK member -> OpenSSL parameter, in the order the members are read. */
static const struct {
    const char *jwk, *ossl;
} rsa_private[] = {
    {"d", OSSL_PKEY_PARAM_RSA_D},           {"p", OSSL_PKEY_PARAM_RSA_FACTOR1},
    {"q", OSSL_PKEY_PARAM_RSA_FACTOR2},     {"dp", OSSL_PKEY_PARAM_RSA_EXPONENT1},
    {"dq", OSSL_PKEY_PARAM_RSA_EXPONENT2},  {"qi", OSSL_PKEY_PARAM_RSA_COEFFICIENT1},
};
#define N_RSA_PRIVATE (sizeof rsa_private / sizeof rsa_private[0])

/* Decode one private integer into a secure BIGNUM and push it. The scratch
 * buffer is wiped whatever happens. */
static pc_result rsa_push_private(const json_t *obj, size_t i, size_t cap, OSSL_PARAM_BLD *bld,
                                  BIGNUM **bn)
{
    uint8_t buf[RSA_MAX_BYTES];
    size_t len = 0;
    pc_result r = b64_uint(obj, rsa_private[i].jwk, buf, cap, &len, NULL);
    if (pc_ok(r)) {
        *bn = BN_bin2bn(buf, (int)len, BN_secure_new());
        if (*bn == NULL || !OSSL_PARAM_BLD_push_BN(bld, rsa_private[i].ossl, *bn))
            r = pc_fail_ossl("jwk: RSA private parameters");
    }
    OPENSSL_cleanse(buf, sizeof buf);
    return r;
}

static pc_result rsa_push(const json_t *obj, const rsa_pub *k, bool priv, OSSL_PARAM_BLD *bld,
                          BIGNUM *bn[2 + N_RSA_PRIVATE])
{
    bn[0] = BN_bin2bn(k->n, (int)k->n_len, NULL);
    bn[1] = BN_bin2bn(k->e, (int)k->e_len, NULL);
    if (bn[0] == NULL || bn[1] == NULL ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn[0]) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn[1]))
        return pc_fail_ossl("jwk: RSA parameters");
    if (!priv) return PC_OK;
    /* RFC 7518 §6.3.2: a producer that includes any of p, q, dp, dq, qi
     * includes them all; we require them, since without the CRT values
     * every signature would take about four times as long. */
    for (size_t i = 0; i < N_RSA_PRIVATE; i++)
        PC_GUARD(rsa_push_private(obj, i, k->n_len, bld, &bn[2 + i]));
    return PC_OK;
}

static pc_result rsa_from_json(const json_t *obj, bool priv, key_members *m, EVP_PKEY **out)
{
    rsa_pub k;
    PC_GUARD(rsa_read(obj, &k, m));
    BIGNUM *bn[2 + N_RSA_PRIVATE] = {NULL};
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    pc_result r = bld != NULL ? rsa_push(obj, &k, priv, bld, bn)
                              : pc_fail_ossl("jwk: RSA parameters");
    if (pc_ok(r))
        r = build("RSA", bld, true, priv, out);
    else
        OSSL_PARAM_BLD_free(bld);
    for (size_t i = 0; i < sizeof bn / sizeof bn[0]; i++) BN_clear_free(bn[i]);
    return r;
}

/* ---- pc_jwk_from_json ----------------------------------------------------------- */

static pc_result from_json(const json_t *obj, pc_jwk_private priv, pc_jwk *out)
{
    pc_jwk_type type;
    bool has_private;
    key_members m = {0};
    PC_GUARD(classify(obj, &type));
    if (type == PC_JWK_NONE) return fail_unsupported(obj);
    PC_GUARD(check_private_members(obj, type, priv, &has_private));
    PC_GUARD(copy_meta(obj, "kid", out->kid, sizeof out->kid));
    PC_GUARD(copy_meta(obj, "alg", out->alg, sizeof out->alg));
    PC_GUARD(copy_meta(obj, "use", out->use, sizeof out->use));
    PC_GUARD(init());
    m.type = type;
    switch (type) {
    case PC_JWK_EC_P256: PC_GUARD(ec_from_json(obj, has_private, &m, &out->pkey)); break;
    case PC_JWK_RSA: PC_GUARD(rsa_from_json(obj, has_private, &m, &out->pkey)); break;
    case PC_JWK_ED25519: PC_GUARD(okp_from_json(obj, has_private, &m, &out->pkey)); break;
    default: return fail_unsupported(obj);
    }
    out->type = type;
    out->is_private = has_private;
    return thumbprint(&m, out->thumbprint);
}

pc_result pc_jwk_from_json(const json_t *obj, pc_jwk_private priv, pc_jwk *out)
{
    PC_ENSURE(out != NULL, PC_ERR_INTERNAL, "jwk: no output");
    memset(out, 0, sizeof *out);
    pc_result r = from_json(obj, priv, out);
    if (!pc_ok(r)) pc_jwk_clear(out);
    return r;
}

void pc_jwk_clear(pc_jwk *jwk)
{
    if (jwk == NULL) return;
    EVP_PKEY_free(jwk->pkey);
    memset(jwk, 0, sizeof *jwk);
}

pc_result pc_jwk_thumbprint_json(const json_t *obj, char out[PC_JWK_THUMBPRINT_BUF])
{
    pc_jwk_type type;
    key_members m = {0};
    PC_GUARD(classify(obj, &type));
    /* RFC 7638 §3.2.1: a private key's thumbprint is its public part's, so
     * private members are neither needed nor refused here. */
    PC_GUARD(read_public(obj, type, &m));
    return thumbprint(&m, out);
}

/* ---- exporting a key ------------------------------------------------------------ */

/* The algorithm family of a key. EVP_PKEY_get_id is a field read, while
 * EVP_PKEY_is_a compares names (0.2 µs each, and verify asks on every
 * call); keys of providers without a legacy id fall back to the names. */
static pc_jwk_type family(const EVP_PKEY *pkey)
{
    switch (EVP_PKEY_get_id(pkey)) {
    case EVP_PKEY_EC: return PC_JWK_EC_P256;
    case EVP_PKEY_RSA: return PC_JWK_RSA;
    case EVP_PKEY_ED25519: return PC_JWK_ED25519;
    case EVP_PKEY_KEYMGMT: break;
    default: return PC_JWK_NONE; /* RSA-PSS restricted keys, X25519, SM2, ... */
    }
    if (EVP_PKEY_is_a(pkey, "EC")) return PC_JWK_EC_P256;
    if (EVP_PKEY_is_a(pkey, "RSA")) return PC_JWK_RSA;
    if (EVP_PKEY_is_a(pkey, "ED25519")) return PC_JWK_ED25519;
    return PC_JWK_NONE;
}

pc_jwk_type pc_jwk_pkey_type(const EVP_PKEY *pkey)
{
    if (pkey == NULL) return PC_JWK_NONE;
    pc_jwk_type t = family(pkey);
    if (t == PC_JWK_RSA) {
        int bits = EVP_PKEY_get_bits(pkey);
        bool sized = bits >= PC_JWK_RSA_MIN_BITS && bits <= PC_JWK_RSA_MAX_BITS;
        return sized ? PC_JWK_RSA : PC_JWK_NONE;
    }
    if (t == PC_JWK_EC_P256) {
        /* Any curve is "EC"; secp256k1 has the same size as P-256, so only
         * the name tells them apart. OpenSSL reports P-256 as prime256v1. */
        char group[32];
        size_t len = 0;
        if (EVP_PKEY_get_group_name(pkey, group, sizeof group, &len) != 1) {
            ERR_clear_error();
            return PC_JWK_NONE;
        }
        bool p256 = strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0;
        return p256 ? PC_JWK_EC_P256 : PC_JWK_NONE;
    }
    return t;
}

/* The exported public members and the buffers that hold their strings. */
typedef struct exported {
    key_members m;
    char a[B64_MAX]; /* EC x, RSA n, OKP x */
    char b[B64_MAX]; /* EC y, RSA e */
} exported;

static pc_result encode_into(const uint8_t *raw, size_t len, char *buf, pc_str *out)
{
    size_t n = 0;
    PC_GUARD(pc_b64url_encode(raw, len, buf, B64_MAX, &n));
    *out = (pc_str){buf, n};
    return PC_OK;
}

static pc_result export_ec(const EVP_PKEY *pkey, exported *ex)
{
    uint8_t pt[P256_POINT];
    size_t len = 0;
    bool ok = EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pt,
                                              sizeof pt, &len) == 1 &&
              len == P256_POINT && pt[0] == 0x04;
    if (!ok) {
        /* A key whose point format is compressed encodes 33 bytes; read the
         * affine coordinates instead. */
        BIGNUM *x = NULL, *y = NULL;
        ok = EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X, &x) == 1 &&
             EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &y) == 1 &&
             BN_bn2binpad(x, pt + 1, P256_BYTES) == P256_BYTES &&
             BN_bn2binpad(y, pt + 1 + P256_BYTES, P256_BYTES) == P256_BYTES;
        BN_free(x);
        BN_free(y);
        if (!ok) return pc_fail_ossl("jwk: reading the EC public key");
    }
    PC_GUARD(encode_into(pt + 1, P256_BYTES, ex->a, &ex->m.x));
    return encode_into(pt + 1 + P256_BYTES, P256_BYTES, ex->b, &ex->m.y);
}

static pc_result export_bn(const EVP_PKEY *pkey, const char *param, char *buf, pc_str *out)
{
    BIGNUM *bn = NULL;
    uint8_t raw[RSA_MAX_BYTES];
    if (EVP_PKEY_get_bn_param(pkey, param, &bn) != 1) return pc_fail_ossl("jwk: reading RSA");
    int len = BN_num_bytes(bn);
    /* BN_bn2bin writes the minimal form RFC 7518 §6.3.1 asks for. */
    bool ok = len > 0 && (size_t)len <= sizeof raw && BN_bn2bin(bn, raw) == len;
    BN_free(bn);
    PC_ENSURE(ok, PC_ERR_INTERNAL, "jwk: RSA parameter %s out of range", param);
    return encode_into(raw, (size_t)len, buf, out);
}

static pc_result export_public(const EVP_PKEY *pkey, exported *ex)
{
    uint8_t raw[ED25519_BYTES];
    size_t len = sizeof raw;
    memset(&ex->m, 0, sizeof ex->m);
    ex->m.type = pc_jwk_pkey_type(pkey);
    switch (ex->m.type) {
    case PC_JWK_EC_P256: return export_ec(pkey, ex);
    case PC_JWK_RSA:
        PC_GUARD(export_bn(pkey, OSSL_PKEY_PARAM_RSA_N, ex->a, &ex->m.n));
        return export_bn(pkey, OSSL_PKEY_PARAM_RSA_E, ex->b, &ex->m.e);
    case PC_JWK_ED25519:
        if (EVP_PKEY_get_raw_public_key(pkey, raw, &len) != 1 || len != sizeof raw)
            return pc_fail_ossl("jwk: reading the Ed25519 public key");
        return encode_into(raw, len, ex->a, &ex->m.x);
    default:
        return pc_fail(PC_ERR_USAGE, "jwk: only P-256, Ed25519 and RSA keys of %d to %d bits "
                                     "can be exported",
                       PC_JWK_RSA_MIN_BITS, PC_JWK_RSA_MAX_BITS);
    }
}

static bool set_str(json_t *obj, const char *name, pc_str v)
{
    return json_object_set_new(obj, name, json_stringn(v.ptr, v.len)) == 0;
}

static bool set_opt(json_t *obj, const char *name, const char *v)
{
    return v == NULL || json_object_set_new(obj, name, json_string(v)) == 0;
}

static bool fill_public(json_t *o, const key_members *m)
{
    switch (m->type) {
    case PC_JWK_EC_P256:
        return set_str(o, "kty", PC_STR("EC")) && set_str(o, "crv", PC_STR("P-256")) &&
               set_str(o, "x", m->x) && set_str(o, "y", m->y);
    case PC_JWK_RSA:
        return set_str(o, "kty", PC_STR("RSA")) && set_str(o, "n", m->n) && set_str(o, "e", m->e);
    case PC_JWK_ED25519:
        return set_str(o, "kty", PC_STR("OKP")) && set_str(o, "crv", PC_STR("Ed25519")) &&
               set_str(o, "x", m->x);
    default: return false;
    }
}

pc_result pc_jwk_public_json(const EVP_PKEY *pkey, const char *kid, const char *alg,
                             const char *use, json_t **out)
{
    PC_ENSURE(out != NULL, PC_ERR_INTERNAL, "jwk: no output");
    *out = NULL;
    exported ex;
    PC_GUARD(export_public(pkey, &ex));
    json_t *o = json_object();
    /* json_string refuses invalid UTF-8, which makes set_opt fail. */
    bool ok = o != NULL && fill_public(o, &ex.m) && set_opt(o, "kid", kid) &&
              set_opt(o, "alg", alg) && set_opt(o, "use", use);
    if (!ok) {
        json_decref(o);
        return pc_fail(PC_ERR_INTERNAL, "jwk: building the JSON (out of memory or bad UTF-8)");
    }
    *out = o;
    return PC_OK;
}

pc_result pc_jwk_thumbprint_pkey(const EVP_PKEY *pkey, char out[PC_JWK_THUMBPRINT_BUF])
{
    exported ex;
    PC_GUARD(export_public(pkey, &ex));
    return thumbprint(&ex.m, out);
}

/* ---- key sets --------------------------------------------------------------- */

static pc_result jwks_add(const json_t *k, size_t i, pc_jwks *set)
{
    pc_jwk_type type;
    bool has_private;
    PC_ENSURE(json_is_object(k), PC_ERR_PROTO, "jwks: key %zu is not an object", i);
    PC_GUARD(classify(k, &type));
    /* Private members fail the set even on a key we would skip: the client
     * has published a private key. */
    PC_GUARD(check_private_members(k, type, PC_JWK_PUBLIC_ONLY, &has_private));
    if (type == PC_JWK_NONE) return PC_OK;
    PC_GUARD(pc_jwk_from_json(k, PC_JWK_PUBLIC_ONLY, &set->keys[set->n]));
    set->n++;
    return PC_OK;
}

pc_result pc_jwks_from_json(const json_t *obj, pc_jwks *out)
{
    PC_ENSURE(out != NULL, PC_ERR_INTERNAL, "jwks: no output");
    memset(out, 0, sizeof *out);
    PC_ENSURE(json_is_object(obj), PC_ERR_PROTO, "jwks: not a JSON object");
    const json_t *keys = json_object_get(obj, "keys");
    PC_ENSURE(json_is_array(keys), PC_ERR_PROTO, "jwks: \"keys\" must be an array");
    size_t n = json_array_size(keys);
    PC_ENSURE(n <= PC_JWKS_MAX_KEYS, PC_ERR_PROTO, "jwks: %zu keys, at most %d are accepted", n,
              PC_JWKS_MAX_KEYS);
    for (size_t i = 0; i < n; i++) {
        pc_result r = jwks_add(json_array_get(keys, i), i, out);
        if (pc_ok(r)) continue;
        /* Say which key; copy first, as the message buffer is the target. */
        char msg[400];
        snprintf(msg, sizeof msg, "%s", pc_errmsg());
        pc_jwks_clear(out);
        return pc_fail(r.err, "jwks: key %zu: %s", i, msg);
    }
    return PC_OK;
}

void pc_jwks_clear(pc_jwks *set)
{
    if (set == NULL) return;
    for (size_t i = 0; i < set->n && i < PC_JWKS_MAX_KEYS; i++) pc_jwk_clear(&set->keys[i]);
    set->n = 0;
}

static bool usable_for_sig(const pc_jwk *k)
{
    return k->use[0] == '\0' || strcmp(k->use, "sig") == 0;
}

const pc_jwk *pc_jwks_find(const pc_jwks *set, const char *kid)
{
    if (set == NULL) return NULL;
    bool any = kid == NULL || kid[0] == '\0';
    const pc_jwk *found = NULL;
    size_t hits = 0;
    for (size_t i = 0; i < set->n && i < PC_JWKS_MAX_KEYS; i++) {
        const pc_jwk *k = &set->keys[i];
        if (any ? !usable_for_sig(k) : strcmp(k->kid, kid) != 0) continue;
        hits++;
        found = k;
    }
    /* Two keys under one kid: picking by type or alg would be a guess an
     * attacker could steer, so the lookup fails instead. */
    if (hits != 1 || !usable_for_sig(found)) return NULL;
    return found;
}
