/* JWS compact serialization (RFC 7515 §7.1) with the FAPI 2.0 algorithm
 * allow-list (FAPI 2.0 Security Profile §5.4, RFC 8725 JWT BCP §3.1).
 *
 *   compact = b64url(header) "." b64url(payload) "." b64url(signature)
 *
 * Nothing in the header decides which key verifies: the caller picks the key
 * and the set of acceptable algorithms, and the key's type must match the
 * alg. "none" and "HS256" are recognised only so that they can be refused
 * by name; a public key is never used as an HMAC secret (the classic
 * RS256 -> HS256 confusion, RFC 8725 §2.1).
 *
 * Verification hashes the signing input first and then verifies the digest
 * on an EVP_PKEY_CTX (PERF-NOTES: about 4 µs cheaper than EVP_DigestVerify),
 * with SHA-256 fetched once. */
#include "jose/jws.h"
#include "jose/pkey_ctx.h"

#include "jose/b64url.h"
#include "jose/jwk.h"

#include <openssl/err.h>
#include <openssl/rsa.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SHA256_BYTES 32
#define ES256_SIG_BYTES 64   /* r || s, 32 bytes each: RFC 7518 §3.4 */
#define EDDSA_SIG_BYTES 64   /* RFC 8032 §5.1.6 */
#define PSS_SALT_BYTES 32    /* RFC 7518 §3.5: the salt is as long as the hash */
/* DER of an ECDSA-Sig-Value for P-256: SEQUENCE { INTEGER r, INTEGER s },
 * each INTEGER at most 33 bytes (a leading 0x00 when the top bit is set):
 * 2 + 2 * (2 + 33) = 72. */
#define ES256_DER_MAX 72
/* The largest decoded header or payload. */
#define DECODED_MAX PC_B64URL_DECODED_MAX(PC_JWS_MAX_LEN)

static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256_md;

static void fetch_md(void) { sha256_md = EVP_MD_fetch(NULL, "SHA2-256", NULL); }

static pc_result sha256(pc_str in, uint8_t out[SHA256_BYTES])
{
    PC_ENSURE(pthread_once(&md_once, fetch_md) == 0 && sha256_md != NULL, PC_ERR_CRYPTO,
              "jws: SHA-256 is not available from the OpenSSL providers");
    unsigned int len = 0;
    PC_GUARD_OSSL(EVP_Digest(in.ptr, in.len, out, &len, sha256_md, NULL), "jws: SHA-256");
    PC_ENSURE(len == SHA256_BYTES, PC_ERR_INTERNAL, "jws: SHA-256 gave %u bytes", len);
    return PC_OK;
}

/* ---- algorithm names (RFC 7518 §3.1, RFC 8037 §3.1) ----------------------- */

static const struct {
    pc_jws_alg alg;
    pc_str name;
} alg_names[] = {
    {PC_ALG_NONE, PC_STR("none")},   {PC_ALG_HS256, PC_STR("HS256")},
    {PC_ALG_RS256, PC_STR("RS256")}, {PC_ALG_ES256, PC_STR("ES256")},
    {PC_ALG_PS256, PC_STR("PS256")}, {PC_ALG_EDDSA, PC_STR("EdDSA")},
};
#define N_ALGS (sizeof alg_names / sizeof alg_names[0])

pc_jws_alg pc_jws_alg_parse(pc_str name)
{
    /* Exact and case-sensitive: "None" or "es256" is not an algorithm
     * (RFC 7515 §4.1.1 values are case-sensitive). */
    for (size_t i = 0; i < N_ALGS; i++)
        if (pc_str_eq(name, alg_names[i].name)) return alg_names[i].alg;
    return PC_ALG_UNKNOWN;
}

const char *pc_jws_alg_name(pc_jws_alg alg)
{
    for (size_t i = 0; i < N_ALGS; i++)
        if (alg_names[i].alg == alg) return alg_names[i].name.ptr;
    return "unknown";
}

/* ---- parsing ---------------------------------------------------------------- */

/* Nesting of v, counting each object or array as one level; false as soon
 * as it passes the limit, so the walk itself never goes deeper. */
static bool depth_ok(json_t *v, int depth)
{
    if (!json_is_object(v) && !json_is_array(v)) return true;
    if (depth > PC_JWS_MAX_JSON_DEPTH) return false;
    const char *key;
    json_t *child;
    size_t i;
    if (json_is_object(v)) {
        json_object_foreach (v, key, child)
            if (!depth_ok(child, depth + 1)) return false;
    } else {
        json_array_foreach (v, i, child)
            if (!depth_ok(child, depth + 1)) return false;
    }
    return true;
}

/* Decode one base64url part and parse it as a JSON object. Duplicate member
 * names are refused: two "alg"s would let two parsers see two tokens (RFC
 * 7515 §5.2 lets an implementation reject them, RFC 8725 §3.11). The EOF
 * check stays on, so nothing may follow the object. */
static pc_result load_object(pc_str part, const char *what, json_t **out)
{
    uint8_t buf[DECODED_MAX];
    size_t len = 0;
    pc_result r = pc_b64url_decode(part.ptr, part.len, buf, sizeof buf, &len);
    PC_ENSURE(pc_ok(r), PC_ERR_PROTO, "jws: the %s is not base64url", what);
    json_error_t err;
    json_t *v = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &err);
    /* The position, not err.text: that quotes the input. */
    PC_ENSURE(v != NULL, PC_ERR_PROTO, "jws: the %s is not valid JSON (at byte %d)", what,
              err.position);
    if (!json_is_object(v) || !depth_ok(v, 1)) {
        bool obj = json_is_object(v);
        json_decref(v);
        return pc_fail(PC_ERR_PROTO, obj ? "jws: the %s nests deeper than %d levels"
                                         : "jws: the %s is not a JSON object",
                       what, PC_JWS_MAX_JSON_DEPTH);
    }
    *out = v;
    return PC_OK;
}

static pc_result opt_header_string(const json_t *h, const char *name, size_t max,
                                   const char **out)
{
    const json_t *v = json_object_get(h, name);
    *out = NULL;
    if (v == NULL) return PC_OK;
    PC_ENSURE(json_is_string(v), PC_ERR_PROTO, "jws: header \"%s\" must be a string", name);
    PC_ENSURE(json_string_length(v) <= max, PC_ERR_PROTO,
              "jws: header \"%s\" is longer than %zu characters", name, max);
    *out = json_string_value(v);
    return PC_OK;
}

/* RFC 7515 §4.1. jansson refuses "\u0000" inside strings (we do not pass
 * JSON_ALLOW_NUL), so these C strings carry their whole value. */
static pc_result read_header(pc_jws *jws)
{
    const json_t *h = jws->header;
    const json_t *alg = json_object_get(h, "alg");
    PC_ENSURE(json_is_string(alg), PC_ERR_PROTO, "jws: header \"alg\" must be a string");
    jws->alg = pc_jws_alg_parse((pc_str){json_string_value(alg), json_string_length(alg)});
    PC_ENSURE(jws->alg != PC_ALG_UNKNOWN, PC_ERR_PROTO, "jws: unsupported alg");
    /* §4.1.11: a recipient must understand every extension listed in
     * "crit"; we implement none, so any "crit" is refused. */
    PC_ENSURE(json_object_get(h, "crit") == NULL, PC_ERR_PROTO,
              "jws: header \"crit\" names extensions we do not implement");
    /* No key has a longer kid (jwk.h), so a longer one cannot match. */
    PC_GUARD(opt_header_string(h, "kid", PC_JWK_MAX_KID, &jws->kid));
    PC_GUARD(opt_header_string(h, "typ", PC_JWS_MAX_LEN, &jws->typ));
    /* "jku" and "x5u" are never fetched; "jwk" is for the caller to read. */
    return PC_OK;
}

/* Split at exactly two dots. */
static pc_result split(pc_str in, pc_str parts[3])
{
    const char *p = in.ptr, *end = in.ptr + in.len;
    for (int i = 0; i < 2; i++) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        PC_ENSURE(dot != NULL, PC_ERR_PROTO, "jws: compact form needs three parts");
        parts[i] = (pc_str){p, (size_t)(dot - p)};
        p = dot + 1;
    }
    parts[2] = (pc_str){p, (size_t)(end - p)};
    PC_ENSURE(memchr(p, '.', parts[2].len) == NULL, PC_ERR_PROTO,
              "jws: more than three parts (a JWE, or a forgery)");
    return PC_OK;
}

/* Parsed headers, per thread, keyed by their exact base64url bytes. A
 * client signs every assertion under the same header, and a DPoP key every
 * proof (the header holds the jwk), so the header's JSON parse (a third of
 * a JWS's jansson cost, the larger share of the token endpoint's work
 * outside the signatures) is done once per header, not per request. Only
 * headers that parsed and passed read_header are kept; a hit shares the
 * json_t (jansson's reference counts are atomic) and read_header runs
 * again on it, so a cached header is held to exactly the same checks. The
 * header is never modified after parsing (jws.h). */
#define HEADER_CACHE 16
#define HEADER_CACHE_MAX_B64 512 /* an ES256 DPoP header with its jwk is ~250 */

typedef struct header_entry {
    size_t len;
    char b64[HEADER_CACHE_MAX_B64];
    json_t *header;
} header_entry;

typedef struct header_cache {
    header_entry e[HEADER_CACHE];
    unsigned next;
} header_cache;

static pthread_key_t header_cache_tls;
static pthread_once_t header_cache_once = PTHREAD_ONCE_INIT;

static void header_cache_destroy(void *p)
{
    header_cache *hc = p;
    for (size_t i = 0; i < HEADER_CACHE; i++) json_decref(hc->e[i].header);
    free(hc);
}

static void header_cache_init(void)
{
    (void)pthread_key_create(&header_cache_tls, header_cache_destroy);
}

static header_cache *header_cache_get(void)
{
    if (pthread_once(&header_cache_once, header_cache_init) != 0) return NULL;
    header_cache *hc = pthread_getspecific(header_cache_tls);
    if (hc == NULL && (hc = calloc(1, sizeof *hc)) != NULL &&
        pthread_setspecific(header_cache_tls, hc) != 0) {
        free(hc);
        hc = NULL;
    }
    return hc;
}

static json_t *header_cached(header_cache *hc, pc_str b64)
{
    if (hc == NULL || b64.len > HEADER_CACHE_MAX_B64) return NULL;
    for (size_t i = 0; i < HEADER_CACHE; i++) {
        const header_entry *e = &hc->e[i];
        if (e->header && e->len == b64.len && memcmp(e->b64, b64.ptr, b64.len) == 0)
            return json_incref(e->header);
    }
    return NULL;
}

static void header_remember(header_cache *hc, pc_str b64, json_t *header)
{
    if (hc == NULL || b64.len > HEADER_CACHE_MAX_B64) return;
    header_entry *e = &hc->e[hc->next];
    hc->next = (hc->next + 1) % HEADER_CACHE;
    json_decref(e->header);
    memcpy(e->b64, b64.ptr, b64.len);
    e->len = b64.len;
    e->header = json_incref(header);
}

static pc_result parse_parts(pc_str compact, const pc_str parts[3], pc_jws *out)
{
    header_cache *hc = header_cache_get();
    out->header = header_cached(hc, parts[0]);
    if (out->header) {
        PC_GUARD(read_header(out));
    } else {
        PC_GUARD(load_object(parts[0], "header", &out->header));
        PC_GUARD(read_header(out));
        header_remember(hc, parts[0], out->header);
    }
    PC_GUARD(load_object(parts[1], "payload", &out->payload));
    /* An empty signature parses, so that "alg":"none" reaches verify and
     * is refused there by name rather than as a parse error. */
    pc_result r = pc_b64url_decode(parts[2].ptr, parts[2].len, out->sig, sizeof out->sig,
                                   &out->sig_len);
    PC_ENSURE(pc_ok(r), PC_ERR_PROTO, "jws: the signature is not base64url or too long");
    out->signing_input = (pc_str){compact.ptr, parts[0].len + 1 + parts[1].len};
    return PC_OK;
}

pc_result pc_jws_parse(pc_str compact, pc_jws *out)
{
    PC_ENSURE(out != NULL, PC_ERR_INTERNAL, "jws: no output");
    memset(out, 0, sizeof *out);
    PC_ENSURE(compact.ptr != NULL, PC_ERR_PROTO, "jws: empty");
    PC_ENSURE(compact.len <= PC_JWS_MAX_LEN, PC_ERR_PROTO,
              "jws: %zu bytes, more than the %d accepted", compact.len, PC_JWS_MAX_LEN);
    pc_str parts[3] = {PC_STR_NULL, PC_STR_NULL, PC_STR_NULL};
    PC_GUARD(split(compact, parts));
    pc_result r = parse_parts(compact, parts, out);
    if (!pc_ok(r)) pc_jws_clear(out);
    return r;
}

void pc_jws_clear(pc_jws *jws)
{
    if (jws == NULL) return;
    json_decref(jws->header);
    json_decref(jws->payload);
    memset(jws, 0, sizeof *jws);
}

/* ---- verifying --------------------------------------------------------------- */

/* The key type each alg needs (RFC 7518 §3.1, RFC 8037 §3.1). */
static pc_jwk_type key_type_for(pc_jws_alg alg)
{
    switch (alg) {
    case PC_ALG_ES256: return PC_JWK_EC_P256;
    case PC_ALG_PS256:
    case PC_ALG_RS256: return PC_JWK_RSA;
    case PC_ALG_EDDSA: return PC_JWK_ED25519;
    default: return PC_JWK_NONE;
    }
}

/* One DER INTEGER of a 32-byte unsigned big-endian value: minimal (no
 * leading zero bytes but one), with a 0x00 in front when the top bit is
 * set so that it stays positive (X.690 §8.3). Returns its length. */
static size_t der_uint32(const uint8_t v[32], uint8_t *out)
{
    size_t i = 0;
    while (i < 31 && v[i] == 0) i++;
    size_t n = 32 - i, pad = (v[i] & 0x80) ? 1 : 0;
    out[0] = 0x02;
    out[1] = (uint8_t)(n + pad);
    out[2] = 0x00;
    memcpy(out + 2 + pad, v + i, n);
    return 2 + pad + n;
}

/* RFC 7518 §3.4: JWS carries r || s; OpenSSL wants DER: SEQUENCE { INTEGER
 * r, INTEGER s }, at most 72 bytes, so every length is in short form.
 * Written here rather than through ECDSA_SIG and BIGNUMs (a few µs of
 * allocations per verify). */
static void es256_to_der(const uint8_t raw[ES256_SIG_BYTES], uint8_t der[ES256_DER_MAX],
                         size_t *der_len)
{
    size_t n = 2;
    n += der_uint32(raw, der + n);
    n += der_uint32(raw + 32, der + n);
    der[0] = 0x30;
    der[1] = (uint8_t)(n - 2);
    *der_len = n;
}

/* Padding and digests for an RSA alg: PS256 is RSASSA-PSS with SHA-256,
 * MGF1 with SHA-256 and a 32-byte salt, which a verify then requires
 * exactly (RFC 7518 §3.5); RS256 is RSASSA-PKCS1-v1_5 (§3.3). */
static bool rsa_setup(EVP_PKEY_CTX *ctx, pc_jws_alg alg)
{
    if (EVP_PKEY_CTX_set_signature_md(ctx, sha256_md) != 1) return false;
    if (alg == PC_ALG_RS256) return EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1;
    return EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) == 1 &&
           EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, sha256_md) == 1 &&
           EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, PSS_SALT_BYTES) == 1;
}

/* Context setup for pc_pkey_ctx_get: the key must be of the type the alg
 * needs (checked here, so once per cached context rather than on every
 * call: the check reads the curve name), and RSA needs its padding and
 * hash. */
static int ctx_setup(EVP_PKEY_CTX *ctx, int alg)
{
    if (pc_jwk_pkey_type(EVP_PKEY_CTX_get0_pkey(ctx)) != key_type_for((pc_jws_alg)alg)) return 0;
    return alg == PC_ALG_ES256 || rsa_setup(ctx, (pc_jws_alg)alg);
}

/* Verify sig over digest on ctx: 1 valid, 0 invalid, -1 error. */
static int verify_digest(EVP_PKEY_CTX *ctx, const uint8_t *sig, size_t sig_len,
                         const uint8_t digest[SHA256_BYTES])
{
    int v = EVP_PKEY_verify(ctx, sig, sig_len, digest, SHA256_BYTES);
    if (v < 0) pc_pkey_ctx_drop(ctx); /* an error may leave it unusable */
    return v == 1 ? 1 : (v == 0 ? 0 : -1);
}

static int verify_eddsa(EVP_PKEY *key, const pc_jws *jws)
{
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    int ok = -1;
    /* Ed25519 is one-shot and hashes internally (RFC 8032 §5.1.7): no md. */
    if (mctx != NULL && EVP_DigestVerifyInit_ex(mctx, NULL, NULL, NULL, NULL, key, NULL) == 1)
        ok = EVP_DigestVerify(mctx, jws->sig, jws->sig_len,
                              (const unsigned char *)jws->signing_input.ptr,
                              jws->signing_input.len) == 1;
    EVP_MD_CTX_free(mctx);
    return ok;
}

/* The signature length each alg has: anything else cannot verify. */
static bool sig_len_ok(const pc_jws *jws, EVP_PKEY *key)
{
    switch (jws->alg) {
    case PC_ALG_ES256: return jws->sig_len == ES256_SIG_BYTES;
    case PC_ALG_EDDSA: return jws->sig_len == EDDSA_SIG_BYTES;
    default: return jws->sig_len == (size_t)EVP_PKEY_get_size(key);
    }
}

/* ctx: this thread's verify context for the key (NULL for EdDSA). */
static int verify_sig(const pc_jws *jws, EVP_PKEY *key, EVP_PKEY_CTX *ctx)
{
    if (jws->alg == PC_ALG_EDDSA) return verify_eddsa(key, jws);
    uint8_t digest[SHA256_BYTES];
    if (!pc_ok(sha256(jws->signing_input, digest))) return -1;
    if (jws->alg != PC_ALG_ES256) return verify_digest(ctx, jws->sig, jws->sig_len, digest);
    uint8_t der[ES256_DER_MAX];
    size_t der_len = 0;
    es256_to_der(jws->sig, der, &der_len);
    return verify_digest(ctx, der, der_len, digest);
}

pc_result pc_jws_verify(const pc_jws *jws, EVP_PKEY *key, unsigned allowed)
{
    PC_ENSURE(jws != NULL && jws->header != NULL && key != NULL, PC_ERR_INTERNAL,
              "jws: verify without a parsed JWS or a key");
    const char *name = pc_jws_alg_name(jws->alg);
    /* RFC 8725 §3.1: an unsecured JWS is never accepted, and we hold no
     * shared secrets, so HS256 could only "verify" with a public key as
     * the HMAC secret, which is the confusion attack itself. Whatever the
     * caller allows. */
    PC_ENSURE(jws->alg != PC_ALG_NONE && jws->alg != PC_ALG_HS256 &&
                  jws->alg != PC_ALG_UNKNOWN,
              PC_ERR_DENY, "jws: alg %s is never accepted", name);
    PC_ENSURE((allowed & (unsigned)jws->alg) != 0, PC_ERR_DENY, "jws: alg %s is not allowed here",
              name);
    pc_jwk_type need = key_type_for(jws->alg);
    /* The context is cached per key and its setup checks the key type, so
     * a key that has verified before costs no type lookup. Without a
     * context, say why: the wrong type, or OpenSSL failed. */
    EVP_PKEY_CTX *ctx = NULL;
    if (need != PC_JWK_NONE && jws->alg != PC_ALG_EDDSA)
        ctx = pc_pkey_ctx_get(key, PC_PKEY_VERIFY, (int)jws->alg, ctx_setup);
    if (ctx == NULL) {
        bool fits = need != PC_JWK_NONE && pc_jwk_pkey_type(key) == need;
        if (!fits) ERR_clear_error();
        PC_ENSURE(fits, PC_ERR_DENY, "jws: the key is not of the type alg %s needs", name);
        if (jws->alg != PC_ALG_EDDSA) return pc_fail_ossl("jws: verifying");
    }
    PC_ENSURE(sig_len_ok(jws, key), PC_ERR_DENY, "jws: %s signature of %zu bytes is malformed",
              name, jws->sig_len);
    int ok = verify_sig(jws, key, ctx);
    if (ok < 0) return pc_fail_ossl("jws: verifying");
    if (ok == 1) return PC_OK;
    /* A bad signature leaves OpenSSL errors queued; they are not ours. */
    ERR_clear_error();
    return pc_fail(PC_ERR_DENY, "jws: the %s signature does not verify", name);
}

/* ---- signing ------------------------------------------------------------------ */

/* One DER INTEGER at *p (before end) into 32 bytes, left-padded: it must
 * be non-negative and fit. */
static bool der_read_uint32(const uint8_t **p, const uint8_t *end, uint8_t out[32])
{
    const uint8_t *q = *p;
    if (end - q < 3 || q[0] != 0x02) return false;
    size_t n = q[1];
    q += 2;
    if (n == 0 || n > (size_t)(end - q) || (q[0] & 0x80)) return false;
    const uint8_t *v = q;
    size_t vn = n;
    while (vn > 1 && v[0] == 0) {
        v++;
        vn--;
    }
    if (vn > 32) return false;
    memset(out, 0, 32 - vn);
    memcpy(out + 32 - vn, v, vn);
    *p = q + n;
    return true;
}

/* OpenSSL's DER ECDSA signature -> r || s, each left-padded to 32 bytes
 * (RFC 7518 §3.4). The DER is our own signer's, at most 72 bytes (short
 * lengths only); anything else is refused. */
static pc_result der_to_es256(const uint8_t *der, size_t len, uint8_t raw[ES256_SIG_BYTES])
{
    const uint8_t *p = der + 2, *end = der + len;
    bool ok = len >= 8 && len <= ES256_DER_MAX && der[0] == 0x30 && der[1] == len - 2 &&
              der_read_uint32(&p, end, raw) && der_read_uint32(&p, end, raw + 32) && p == end;
    PC_ENSURE(ok, PC_ERR_CRYPTO, "jws: our ECDSA signature is not the DER we expect");
    return PC_OK;
}

static pc_result sign_digest(EVP_PKEY *key, pc_jws_alg alg, pc_str input, uint8_t *sig,
                             size_t *sig_len)
{
    uint8_t digest[SHA256_BYTES];
    PC_GUARD(sha256(input, digest));
    EVP_PKEY_CTX *ctx = pc_pkey_ctx_get(key, PC_PKEY_SIGN, (int)alg, ctx_setup);
    if (ctx == NULL) return pc_fail_ossl("jws: signing context");
    if (EVP_PKEY_sign(ctx, sig, sig_len, digest, sizeof digest) != 1) {
        pc_pkey_ctx_drop(ctx);
        return pc_fail_ossl("jws: signing");
    }
    return PC_OK;
}

/* sig has room for 1024 bytes (an RSA-8192 signature). */
static pc_result sign_input(pc_jws_alg alg, EVP_PKEY *key, pc_str input, uint8_t *sig,
                            size_t *sig_len)
{
    if (alg == PC_ALG_ES256) {
        uint8_t der[ES256_DER_MAX];
        size_t der_len = sizeof der;
        PC_GUARD(sign_digest(key, alg, input, der, &der_len));
        *sig_len = ES256_SIG_BYTES;
        return der_to_es256(der, der_len, sig);
    }
    if (alg == PC_ALG_PS256) return sign_digest(key, alg, input, sig, sig_len);
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    bool ok = mctx != NULL &&
              EVP_DigestSignInit_ex(mctx, NULL, NULL, NULL, NULL, key, NULL) == 1 &&
              EVP_DigestSign(mctx, sig, sig_len, (const unsigned char *)input.ptr, input.len) == 1;
    EVP_MD_CTX_free(mctx);
    return ok ? PC_OK : pc_fail_ossl("jws: signing");
}

/* The members a caller may not set through extra_header: ours, and "crit"
 * (we would refuse our own token). */
static pc_result check_extra(const json_t *extra)
{
    if (extra == NULL) return PC_OK;
    PC_ENSURE(json_is_object(extra), PC_ERR_INTERNAL, "jws: extra header is not an object");
    static const char *const reserved[] = {"alg", "typ", "kid", "crit"};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        PC_ENSURE(json_object_get(extra, reserved[i]) == NULL, PC_ERR_INTERNAL,
                  "jws: extra header may not set \"%s\"", reserved[i]);
    return PC_OK;
}

/* {"alg":..,"typ":..,"kid":..,<extra members>} as compact JSON text. The
 * extra members are dumped with JSON_EMBED (no braces) and spliced in, so
 * the caller's objects are only read, never referenced from ours. */
static pc_result header_text(pc_jws_alg alg, const char *kid, const char *typ,
                             const json_t *extra, char **out)
{
    json_t *h = json_object();
    bool ok = h != NULL && json_object_set_new(h, "alg", json_string(pc_jws_alg_name(alg))) == 0 &&
              (typ == NULL || json_object_set_new(h, "typ", json_string(typ)) == 0) &&
              (kid == NULL || json_object_set_new(h, "kid", json_string(kid)) == 0);
    char *fixed = ok ? json_dumps(h, JSON_COMPACT) : NULL;
    json_decref(h);
    char *more = (fixed != NULL && extra != NULL && json_object_size(extra) > 0)
                     ? json_dumps(extra, JSON_COMPACT | JSON_EMBED)
                     : NULL;
    bool want_more = extra != NULL && json_object_size(extra) > 0;
    if (fixed == NULL || (want_more && more == NULL)) {
        free(fixed);
        free(more);
        return pc_fail(PC_ERR_INTERNAL, "jws: building the header (memory, or bad UTF-8)");
    }
    if (more == NULL) {
        *out = fixed;
        return PC_OK;
    }
    size_t flen = strlen(fixed), mlen = strlen(more);
    char *all = malloc(flen + mlen + 2);
    if (all != NULL) {
        memcpy(all, fixed, flen - 1); /* without the closing brace */
        all[flen - 1] = ',';
        memcpy(all + flen, more, mlen);
        memcpy(all + flen + mlen, "}", 2);
    }
    free(fixed);
    free(more);
    PC_ENSURE(all != NULL, PC_ERR_INTERNAL, "jws: out of memory");
    *out = all;
    return PC_OK;
}

/* b64(header) "." b64(payload) "." b64(signature) into one allocation
 * sized for the alg's signature (an ES256 token stays under 1 KiB, where
 * malloc is cheapest); the header comes already encoded. */
static pc_result assemble(pc_jws_alg alg, EVP_PKEY *key, const char *hdr_b64, size_t hlen,
                          const char *pl, size_t plen, char **out, size_t *out_len)
{
    uint8_t sig[1024];
    size_t sig_len = sizeof sig;
    PC_ENSURE(hlen < SIZE_MAX / 8 && plen < SIZE_MAX / 8, PC_ERR_INTERNAL, "jws: too large");
    int ksize = alg == PC_ALG_PS256   ? EVP_PKEY_get_size(key)
                : alg == PC_ALG_EDDSA ? EDDSA_SIG_BYTES
                                      : ES256_SIG_BYTES;
    PC_ENSURE(ksize > 0 && (size_t)ksize <= sizeof sig, PC_ERR_INTERNAL,
              "jws: unexpected signature size %d", ksize);
    size_t cap = hlen + PC_B64URL_ENCODED_LEN(plen) + PC_B64URL_ENCODED_LEN((size_t)ksize) + 3;
    char *buf = malloc(cap);
    PC_ENSURE(buf != NULL, PC_ERR_INTERNAL, "jws: out of memory");
    memcpy(buf, hdr_b64, hlen);
    size_t pos = hlen, n = 0;
    buf[pos++] = '.';
    pc_result r = pc_b64url_encode((const uint8_t *)pl, plen, buf + pos, cap - pos, &n);
    if (pc_ok(r)) {
        pos += n;
        r = sign_input(alg, key, (pc_str){buf, pos}, sig, &sig_len);
    }
    if (pc_ok(r)) {
        buf[pos++] = '.';
        r = pc_b64url_encode(sig, sig_len, buf + pos, cap - pos, &n);
    }
    if (!pc_ok(r)) {
        free(buf);
        return r;
    }
    *out = buf;
    *out_len = pos + n;
    return PC_OK;
}

/* The header's text, base64url-encoded (malloc'd). */
static pc_result header_b64(pc_jws_alg alg, const char *kid, const char *typ, const json_t *extra,
                            char **out, size_t *out_len)
{
    char *hdr = NULL;
    PC_GUARD(header_text(alg, kid, typ, extra, &hdr));
    size_t hlen = strlen(hdr), cap = PC_B64URL_ENCODED_LEN(hlen) + 1;
    char *b64 = malloc(cap);
    pc_result r = b64 != NULL ? pc_b64url_encode((const uint8_t *)hdr, hlen, b64, cap, out_len)
                              : pc_fail(PC_ERR_INTERNAL, "jws: out of memory");
    free(hdr);
    if (!pc_ok(r)) {
        free(b64);
        return r;
    }
    *out = b64;
    return PC_OK;
}

/* Only what FAPI 2.0 §5.4 lets a recipient accept, with a key of the
 * alg's type. */
static pc_result check_signing_key(pc_jws_alg alg, EVP_PKEY *key)
{
    PC_ENSURE(alg == PC_ALG_ES256 || alg == PC_ALG_PS256 || alg == PC_ALG_EDDSA, PC_ERR_USAGE,
              "jws: we do not sign with alg %s", pc_jws_alg_name(alg));
    PC_ENSURE(key != NULL && pc_jwk_pkey_type(key) == key_type_for(alg), PC_ERR_USAGE,
              "jws: the signing key is not of the type alg %s needs", pc_jws_alg_name(alg));
    return PC_OK;
}

pc_result pc_jws_sign(pc_jws_alg alg, EVP_PKEY *key, const char *kid, const char *typ,
                      const json_t *extra_header, const json_t *payload, char **out,
                      size_t *out_len)
{
    PC_ENSURE(out != NULL && out_len != NULL, PC_ERR_INTERNAL, "jws: no output");
    *out = NULL;
    *out_len = 0;
    PC_GUARD(check_signing_key(alg, key));
    PC_ENSURE(json_is_object(payload), PC_ERR_INTERNAL, "jws: the payload is not an object");
    PC_GUARD(check_extra(extra_header));
    char *hdr = NULL;
    size_t hlen = 0;
    PC_GUARD(header_b64(alg, kid, typ, extra_header, &hdr, &hlen));
    char *pl = json_dumps(payload, JSON_COMPACT);
    pc_result r = pl != NULL ? assemble(alg, key, hdr, hlen, pl, strlen(pl), out, out_len)
                             : pc_fail(PC_ERR_INTERNAL, "jws: dumping the payload");
    free(hdr);
    free(pl);
    return r;
}

pc_result pc_jws_signer_init(pc_jws_signer *s, pc_jws_alg alg, EVP_PKEY *key, const char *kid,
                             const char *typ)
{
    PC_ENSURE(s != NULL, PC_ERR_INTERNAL, "jws: no signer");
    memset(s, 0, sizeof *s);
    PC_GUARD(check_signing_key(alg, key));
    PC_GUARD(header_b64(alg, kid, typ, NULL, &s->header_b64, &s->header_len));
    s->alg = alg;
    s->key = key;
    return PC_OK;
}

void pc_jws_signer_clear(pc_jws_signer *s)
{
    if (s == NULL) return;
    free(s->header_b64);
    memset(s, 0, sizeof *s);
}

pc_result pc_jws_signer_sign(const pc_jws_signer *s, const char *payload, size_t len, char **out,
                             size_t *out_len)
{
    PC_ENSURE(out != NULL && out_len != NULL, PC_ERR_INTERNAL, "jws: no output");
    *out = NULL;
    *out_len = 0;
    PC_ENSURE(s != NULL && s->header_b64 != NULL && payload != NULL, PC_ERR_INTERNAL,
              "jws: signing without a prepared signer or a payload");
    return assemble(s->alg, s->key, s->header_b64, s->header_len, payload, len, out, out_len);
}
