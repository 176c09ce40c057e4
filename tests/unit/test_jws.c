/* JWS compact serialization (RFC 7515) with the FAPI 2.0 allow-list: the
 * RFC 7515 A.3 vector, sign/verify round trips for every algorithm we
 * sign with, and the attacks and malformations the parser and verifier
 * must refuse. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "jose/b64url.h"
#include "jose/jwk.h"
#include "jose/jws.h"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALL_ALGS 0xffffffffu

/* RFC 7515 Appendix A.3.1: the ES256 example (line breaks removed). */
static const char a3_jwk[] =
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
    "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}";
static const char a3_header[] = "eyJhbGciOiJFUzI1NiJ9";
static const char a3_payload[] =
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt"
    "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
static const char a3_sig[] =
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

/* RFC 8037 Appendix A.4: an EdDSA JWS whose payload is not JSON. */
static const char a4_jws[] =
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

/* Keys shared by the tests, made once (RSA generation is slow under ASan). */
static EVP_PKEY *ec_key, *ec_key2, *rsa_key, *ed_key;

static int make_keys(void **state)
{
    (void)state;
    ec_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    ec_key2 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    rsa_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    ed_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    return ec_key && ec_key2 && rsa_key && ed_key ? 0 : -1;
}

static int free_keys(void **state)
{
    (void)state;
    EVP_PKEY_free(ec_key);
    EVP_PKEY_free(ec_key2);
    EVP_PKEY_free(rsa_key);
    EVP_PKEY_free(ed_key);
    return 0;
}

/* ---- helpers ----------------------------------------------------------------- */

static char *b64(const void *data, size_t len)
{
    size_t cap = PC_B64URL_ENCODED_LEN(len) + 1;
    char *out = malloc(cap);
    assert_non_null(out);
    assert_true(pc_ok(pc_b64url_encode(data, len, out, cap, NULL)));
    return out;
}

/* header_json . payload_json . sig, each part encoded here. */
static char *make_jws(const char *header, const char *payload, const uint8_t *sig, size_t sig_len)
{
    char *h = b64(header, strlen(header)), *p = b64(payload, strlen(payload));
    char *s = b64(sig, sig_len);
    size_t len = strlen(h) + strlen(p) + strlen(s) + 3;
    char *out = malloc(len);
    assert_non_null(out);
    snprintf(out, len, "%s.%s.%s", h, p, s);
    free(h);
    free(p);
    free(s);
    return out;
}

static char *join3(const char *a, const char *b, const char *c)
{
    size_t len = strlen(a) + strlen(b) + strlen(c) + 3;
    char *out = malloc(len);
    assert_non_null(out);
    snprintf(out, len, "%s.%s.%s", a, b, c);
    return out;
}

static pc_err parse_err(const char *compact)
{
    pc_jws jws;
    pc_result r = pc_jws_parse(pc_str_c(compact), &jws);
    if (pc_ok(r)) pc_jws_clear(&jws);
    /* A refused parse leaves nothing behind. */
    else assert_null(jws.header);
    return r.err;
}

static pc_err verify_err(const char *compact, EVP_PKEY *key, unsigned allowed)
{
    pc_jws jws;
    pc_result r = pc_jws_parse(pc_str_c(compact), &jws);
    if (!pc_ok(r)) fail_msg("parse refused: %s", pc_errmsg());
    r = pc_jws_verify(&jws, key, allowed);
    pc_jws_clear(&jws);
    return r.err;
}

/* Headers are cached per thread by their exact bytes: a repeated header
 * gives the same alg, kid and typ; a refused header is refused every time
 * (never cached); a header shared with the cache outlives the JWS it was
 * parsed for (ASan would see a double free or a use after free); and more
 * distinct headers than the cache holds still parse right after eviction. */
static void test_header_cache(void **state)
{
    (void)state;
    const uint8_t sig[64] = {1};
    char *c1 = make_jws("{\"alg\":\"ES256\",\"kid\":\"k1\",\"typ\":\"JWT\"}", "{\"n\":1}", sig, 64);
    for (int round = 0; round < 3; round++) {
        pc_jws a, b;
        assert_true(pc_ok(pc_jws_parse(pc_str_c(c1), &a)));
        assert_true(pc_ok(pc_jws_parse(pc_str_c(c1), &b)));
        pc_jws_clear(&a); /* b's header must survive a's clear */
        assert_int_equal(b.alg, PC_ALG_ES256);
        assert_string_equal(b.kid, "k1");
        assert_string_equal(b.typ, "JWT");
        assert_int_equal(json_integer_value(json_object_get(b.payload, "n")), 1);
        pc_jws_clear(&b);
    }
    char *crit = make_jws("{\"alg\":\"ES256\",\"crit\":[\"x\"]}", "{}", sig, 64);
    assert_int_equal(parse_err(crit), PC_ERR_PROTO);
    assert_int_equal(parse_err(crit), PC_ERR_PROTO);
    /* 40 distinct kids: more than the cache holds. */
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 40; i++) {
            char h[64], kid[16];
            snprintf(kid, sizeof kid, "kid-%d", i);
            snprintf(h, sizeof h, "{\"alg\":\"ES256\",\"kid\":\"%s\"}", kid);
            char *c = make_jws(h, "{}", sig, 64);
            pc_jws j;
            assert_true(pc_ok(pc_jws_parse(pc_str_c(c), &j)));
            assert_string_equal(j.kid, kid);
            assert_null(j.typ);
            pc_jws_clear(&j);
            free(c);
        }
    free(c1);
    free(crit);
}

static char *sign(pc_jws_alg alg, EVP_PKEY *key, const char *kid, const char *typ,
                  const json_t *extra)
{
    json_t *payload = json_pack("{s:s,s:i}", "iss", "client", "iat", 1700000000);
    char *out = NULL;
    size_t len = 0;
    pc_result r = pc_jws_sign(alg, key, kid, typ, extra, payload, &out, &len);
    json_decref(payload);
    if (!pc_ok(r)) fail_msg("sign refused: %s", pc_errmsg());
    assert_int_equal(strlen(out), len);
    return out;
}

/* The decoded part i (0 header, 1 payload, 2 signature) of a compact JWS. */
static size_t part(const char *compact, int i, uint8_t *out, size_t cap)
{
    const char *p = compact;
    for (int k = 0; k < i; k++) p = strchr(p, '.') + 1;
    const char *end = strchr(p, '.');
    size_t len = end ? (size_t)(end - p) : strlen(p), n = 0;
    assert_true(pc_ok(pc_b64url_decode(p, len, out, cap, &n)));
    return n;
}

/* A compact JWS with its signature replaced by sig. */
static char *with_sig(const char *compact, const uint8_t *sig, size_t len)
{
    const char *dot = strrchr(compact, '.');
    char *s = b64(sig, len);
    size_t n = (size_t)(dot - compact) + 1;
    char *out = malloc(n + strlen(s) + 1);
    assert_non_null(out);
    memcpy(out, compact, n);
    strcpy(out + n, s);
    free(s);
    return out;
}

static EVP_PKEY *import(const char *jwk_text)
{
    json_t *o = json_loads(jwk_text, 0, NULL);
    pc_jwk k;
    assert_true(pc_ok(pc_jwk_from_json(o, PC_JWK_PUBLIC_ONLY, &k)));
    json_decref(o);
    return k.pkey; /* the caller owns it now */
}

/* ---- algorithm names ----------------------------------------------------------- */

static void test_alg_names(void **state)
{
    (void)state;
    assert_int_equal(pc_jws_alg_parse(PC_STR("ES256")), PC_ALG_ES256);
    assert_int_equal(pc_jws_alg_parse(PC_STR("PS256")), PC_ALG_PS256);
    assert_int_equal(pc_jws_alg_parse(PC_STR("EdDSA")), PC_ALG_EDDSA);
    assert_int_equal(pc_jws_alg_parse(PC_STR("RS256")), PC_ALG_RS256);
    assert_int_equal(pc_jws_alg_parse(PC_STR("HS256")), PC_ALG_HS256);
    assert_int_equal(pc_jws_alg_parse(PC_STR("none")), PC_ALG_NONE);
    static const char *const bad[] = {"None", "NONE", "es256", "ES256 ", " ES256", "EDDSA",
                                      "ES384", "ES256K", "Ed25519", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(pc_jws_alg_parse(pc_str_c(bad[i])), PC_ALG_UNKNOWN);
    assert_int_equal(pc_jws_alg_parse((pc_str){"ES256\0", 6}), PC_ALG_UNKNOWN);
    assert_int_equal(pc_jws_alg_parse(PC_STR_NULL), PC_ALG_UNKNOWN);
    assert_string_equal(pc_jws_alg_name(PC_ALG_EDDSA), "EdDSA");
    assert_string_equal(pc_jws_alg_name(PC_ALG_UNKNOWN), "unknown");
}

/* ---- known answer --------------------------------------------------------------- */

static void test_rfc7515_a3(void **state)
{
    (void)state;
    EVP_PKEY *key = import(a3_jwk);
    char *compact = join3(a3_header, a3_payload, a3_sig);
    pc_jws jws;
    assert_true(pc_ok(pc_jws_parse(pc_str_c(compact), &jws)));
    assert_int_equal(jws.alg, PC_ALG_ES256);
    assert_null(jws.kid);
    assert_null(jws.typ);
    assert_int_equal(jws.sig_len, 64);
    assert_int_equal(jws.signing_input.len, strlen(a3_header) + 1 + strlen(a3_payload));
    assert_ptr_equal(jws.signing_input.ptr, compact);
    assert_string_equal(json_string_value(json_object_get(jws.payload, "iss")), "joe");
    assert_true(pc_ok(pc_jws_verify(&jws, key, PC_ALGS_FAPI)));
    /* Allowed, but not in this call's list. */
    assert_int_equal(pc_jws_verify(&jws, key, PC_ALG_PS256 | PC_ALG_EDDSA).err, PC_ERR_DENY);
    assert_int_equal(pc_jws_verify(&jws, key, 0).err, PC_ERR_DENY);
    pc_jws_clear(&jws);
    free(compact);

    /* Tampered payload: "joe" -> "jod" keeps valid JSON. */
    uint8_t raw[256];
    size_t raw_len = 0;
    assert_true(pc_ok(pc_b64url_decode(a3_payload, strlen(a3_payload), raw, sizeof raw, &raw_len)));
    uint8_t *joe = memmem(raw, raw_len, "\"joe\"", 5);
    assert_non_null(joe);
    joe[3] = 'd';
    char *payload = b64(raw, raw_len);
    compact = join3(a3_header, payload, a3_sig);
    assert_int_equal(verify_err(compact, key, PC_ALGS_FAPI), PC_ERR_DENY);
    free(compact);
    free(payload);

    /* The last signature byte changed. */
    char sig[128];
    snprintf(sig, sizeof sig, "%s", a3_sig);
    sig[strlen(sig) - 1] = 'A';
    compact = join3(a3_header, a3_payload, sig);
    assert_int_equal(verify_err(compact, key, PC_ALGS_FAPI), PC_ERR_DENY);
    free(compact);
    EVP_PKEY_free(key);
}

/* ---- round trips ----------------------------------------------------------------- */

static void round_trip(pc_jws_alg alg, EVP_PKEY *key)
{
    /* A DPoP-style header: the public key travels in "jwk". */
    json_t *jwk = NULL;
    assert_true(pc_ok(pc_jwk_public_json(key, NULL, NULL, NULL, &jwk)));
    json_t *extra = json_pack("{s:o}", "jwk", jwk);
    char *compact = sign(alg, key, "kid-1", "dpop+jwt", extra);

    /* The header is compact and in the documented order. */
    uint8_t hdr[2048];
    size_t hlen = part(compact, 0, hdr, sizeof hdr);
    char *jwk_text = json_dumps(jwk, JSON_COMPACT);
    char want[2048];
    snprintf(want, sizeof want,
             "{\"alg\":\"%s\",\"typ\":\"dpop+jwt\",\"kid\":\"kid-1\",\"jwk\":%s}",
             pc_jws_alg_name(alg), jwk_text);
    assert_int_equal(hlen, strlen(want));
    assert_memory_equal(hdr, want, hlen);
    free(jwk_text);

    pc_jws jws;
    assert_true(pc_ok(pc_jws_parse(pc_str_c(compact), &jws)));
    assert_int_equal(jws.alg, alg);
    assert_string_equal(jws.kid, "kid-1");
    assert_string_equal(jws.typ, "dpop+jwt");
    assert_string_equal(json_string_value(json_object_get(jws.payload, "iss")), "client");
    assert_true(pc_ok(pc_jws_verify(&jws, key, PC_ALGS_FAPI)));
    /* Verify with the key the header carries, as a DPoP check does. */
    pc_jwk hk;
    const json_t *header_jwk = json_object_get(jws.header, "jwk");
    assert_true(pc_ok(pc_jwk_from_json(header_jwk, PC_JWK_PUBLIC_ONLY, &hk)));
    assert_true(pc_ok(pc_jws_verify(&jws, hk.pkey, PC_ALGS_FAPI)));
    /* Key type mismatch is a denial, whichever way round. */
    EVP_PKEY *others[] = {ec_key, rsa_key, ed_key};
    for (size_t i = 0; i < 3; i++)
        if (others[i] != key)
            assert_int_equal(pc_jws_verify(&jws, others[i], PC_ALGS_FAPI).err, PC_ERR_DENY);
    pc_jwk_clear(&hk);
    pc_jws_clear(&jws);

    /* Another valid payload under the same header and signature. */
    char *h = strndup(compact, (size_t)(strchr(compact, '.') - compact));
    const char *forged = "{\"iss\":\"attacker\",\"iat\":1700000000}";
    char *fp = b64(forged, strlen(forged));
    char *tampered = join3(h, fp, strrchr(compact, '.') + 1);
    assert_int_equal(verify_err(tampered, key, PC_ALGS_FAPI), PC_ERR_DENY);
    free(tampered);
    free(fp);
    free(h);
    free(compact);
    json_decref(extra);
}

static void test_round_trip_es256(void **state)
{
    (void)state;
    /* Many signatures so that r and s with leading zero bytes (1 in 256)
     * and high bits (1 in 2) go through the DER conversions both ways. */
    for (int i = 0; i < 300; i++) {
        char *c = sign(PC_ALG_ES256, ec_key, NULL, NULL, NULL);
        assert_int_equal(verify_err(c, ec_key, PC_ALGS_FAPI), PC_ERR_NONE);
        assert_int_equal(verify_err(c, ec_key2, PC_ALGS_FAPI), PC_ERR_DENY);
        free(c);
    }
    round_trip(PC_ALG_ES256, ec_key);
}

static void test_round_trip_ps256(void **state)
{
    (void)state;
    round_trip(PC_ALG_PS256, rsa_key);
    char *c = sign(PC_ALG_PS256, rsa_key, NULL, NULL, NULL);
    uint8_t sig[512];
    size_t len = part(c, 2, sig, sizeof sig);
    assert_int_equal(len, 256);
    /* One byte short or long. */
    char *bad = with_sig(c, sig, len - 1);
    assert_int_equal(verify_err(bad, rsa_key, PC_ALGS_FAPI), PC_ERR_DENY);
    free(bad);
    sig[len] = 0;
    bad = with_sig(c, sig, len + 1);
    assert_int_equal(verify_err(bad, rsa_key, PC_ALGS_FAPI), PC_ERR_DENY);
    free(bad);
    free(c);
}

static void test_round_trip_eddsa(void **state)
{
    (void)state;
    round_trip(PC_ALG_EDDSA, ed_key);
    char *c = sign(PC_ALG_EDDSA, ed_key, NULL, NULL, NULL);
    uint8_t sig[128];
    size_t len = part(c, 2, sig, sizeof sig);
    assert_int_equal(len, 64);
    char *bad = with_sig(c, sig, 63);
    assert_int_equal(verify_err(bad, ed_key, PC_ALGS_FAPI), PC_ERR_DENY);
    free(bad);
    sig[0] ^= 1;
    bad = with_sig(c, sig, 64);
    assert_int_equal(verify_err(bad, ed_key, PC_ALGS_FAPI), PC_ERR_DENY);
    free(bad);
    free(c);
    /* RFC 8037 A.4 signs a payload that is not JSON: refused at parse. */
    assert_int_equal(parse_err(a4_jws), PC_ERR_PROTO);
}

/* r and s with leading zero bytes, both ways through the hand-written DER:
 * signing (DER -> r||s) must give what OpenSSL's own decoder gives, which
 * the verify below checks independently through i2d_ECDSA_SIG, and
 * verifying (r||s -> DER) must accept them. Signs until each of r and s has
 * been seen with a leading zero byte (1 in 256 each). */
static void test_es256_leading_zeros(void **state)
{
    (void)state;
    EVP_MD *md = EVP_MD_fetch(NULL, "SHA2-256", NULL);
    assert_non_null(md);
    bool r0 = false, s0 = false, hi = false;
    for (int i = 0; i < 20000 && !(r0 && s0 && hi); i++) {
        char *c = sign(PC_ALG_ES256, ec_key, NULL, NULL, NULL);
        uint8_t sig[128];
        assert_int_equal(part(c, 2, sig, sizeof sig), 64);
        bool interesting = sig[0] == 0 || sig[32] == 0 || (i < 4 && (sig[0] & 0x80));
        r0 |= sig[0] == 0;
        s0 |= sig[32] == 0;
        hi |= (sig[0] & 0x80) != 0;
        if (interesting) {
            assert_int_equal(verify_err(c, ec_key, PC_ALGS_FAPI), PC_ERR_NONE);
            ECDSA_SIG *es = ECDSA_SIG_new();
            assert_int_equal(
                ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL)), 1);
            unsigned char *der = NULL;
            int der_len = i2d_ECDSA_SIG(es, &der);
            assert_true(der_len > 0);
            uint8_t digest[32];
            unsigned dl = 0;
            const char *last = strrchr(c, '.');
            assert_int_equal(EVP_Digest(c, (size_t)(last - c), digest, &dl, md, NULL), 1);
            EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(ec_key, NULL);
            assert_int_equal(EVP_PKEY_verify_init(ctx), 1);
            assert_int_equal(EVP_PKEY_verify(ctx, der, (size_t)der_len, digest, dl), 1);
            EVP_PKEY_CTX_free(ctx);
            OPENSSL_free(der);
            ECDSA_SIG_free(es);
        }
        free(c);
    }
    assert_true(r0 && s0 && hi);
    EVP_MD_free(md);
}

/* The prepared signer: the same header as pc_jws_sign, the payload text
 * signed as given, its refusals, and a verify that passes. */
static void test_signer(void **state)
{
    (void)state;
    pc_jws_signer s;
    assert_true(pc_ok(pc_jws_signer_init(&s, PC_ALG_ES256, ec_key, "k1", "at+jwt")));
    static const char claims[] = "{\"iss\":\"client\",\"iat\":1700000000}";
    char *out = NULL;
    size_t len = 0;
    assert_true(pc_ok(pc_jws_signer_sign(&s, claims, sizeof claims - 1, &out, &len)));
    assert_int_equal(strlen(out), len);
    assert_int_equal(verify_err(out, ec_key, PC_ALGS_FAPI), PC_ERR_NONE);
    assert_int_equal(verify_err(out, ec_key2, PC_ALGS_FAPI), PC_ERR_DENY);
    char *ref = sign(PC_ALG_ES256, ec_key, "k1", "at+jwt", NULL);
    /* Header and payload parts are those pc_jws_sign makes of the same
     * JSON (the signatures differ: ECDSA is randomised). */
    const char *d1 = strrchr(out, '.'), *d2 = strrchr(ref, '.');
    assert_int_equal(d1 - out, d2 - ref);
    assert_memory_equal(out, ref, (size_t)(d1 - out));
    uint8_t hdr[128];
    size_t hlen = part(out, 0, hdr, sizeof hdr);
    static const char want[] = "{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"k1\"}";
    assert_int_equal(hlen, sizeof want - 1);
    assert_memory_equal(hdr, want, hlen);
    free(ref);
    free(out);
    pc_jws_signer_clear(&s);
    pc_jws_signer_clear(&s); /* twice is harmless */

    /* The other algorithms, without kid or typ. */
    assert_true(pc_ok(pc_jws_signer_init(&s, PC_ALG_PS256, rsa_key, NULL, NULL)));
    assert_true(pc_ok(pc_jws_signer_sign(&s, claims, sizeof claims - 1, &out, &len)));
    assert_int_equal(verify_err(out, rsa_key, PC_ALGS_FAPI), PC_ERR_NONE);
    free(out);
    pc_jws_signer_clear(&s);
    assert_true(pc_ok(pc_jws_signer_init(&s, PC_ALG_EDDSA, ed_key, NULL, NULL)));
    assert_true(pc_ok(pc_jws_signer_sign(&s, claims, sizeof claims - 1, &out, &len)));
    assert_int_equal(verify_err(out, ed_key, PC_ALGS_FAPI), PC_ERR_NONE);
    free(out);
    pc_jws_signer_clear(&s);

    /* Refusals: as pc_jws_sign's, and the signer is left cleared. */
    assert_int_equal(pc_jws_signer_init(&s, PC_ALG_ES256, rsa_key, NULL, NULL).err, PC_ERR_USAGE);
    assert_null(s.header_b64);
    assert_int_equal(pc_jws_signer_init(&s, PC_ALG_RS256, rsa_key, NULL, NULL).err, PC_ERR_USAGE);
    assert_int_equal(pc_jws_signer_init(&s, PC_ALG_ES256, NULL, NULL, NULL).err, PC_ERR_USAGE);
    assert_int_equal(pc_jws_signer_sign(&s, claims, sizeof claims - 1, &out, &len).err,
                     PC_ERR_INTERNAL);
    assert_null(out);
}

/* The key type is checked once per cached verify context; a key of the
 * wrong type is still refused every time, by name, with no OpenSSL error
 * left queued, and a matching key verifies after it. */
static void test_verify_key_type_cached(void **state)
{
    (void)state;
    char *es = sign(PC_ALG_ES256, ec_key, NULL, NULL, NULL);
    char *ps = sign(PC_ALG_PS256, rsa_key, NULL, NULL, NULL);
    char *ed = sign(PC_ALG_EDDSA, ed_key, NULL, NULL, NULL);
    for (int i = 0; i < 3; i++) {
        ERR_clear_error();
        assert_int_equal(verify_err(es, rsa_key, PC_ALGS_FAPI), PC_ERR_DENY);
        assert_non_null(strstr(pc_errmsg(), "not of the type"));
        assert_int_equal(verify_err(es, ed_key, PC_ALGS_FAPI), PC_ERR_DENY);
        assert_int_equal(verify_err(ps, ec_key, PC_ALGS_FAPI), PC_ERR_DENY);
        assert_non_null(strstr(pc_errmsg(), "not of the type"));
        assert_int_equal(verify_err(ed, ec_key, PC_ALGS_FAPI), PC_ERR_DENY);
        assert_non_null(strstr(pc_errmsg(), "not of the type"));
        assert_int_equal(ERR_peek_error(), 0);
        assert_int_equal(verify_err(es, ec_key, PC_ALGS_FAPI), PC_ERR_NONE);
        assert_int_equal(verify_err(ps, rsa_key, PC_ALGS_FAPI), PC_ERR_NONE);
        assert_int_equal(verify_err(ed, ed_key, PC_ALGS_FAPI), PC_ERR_NONE);
    }
    /* A P-384 key is "EC" but not P-256. */
    EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    assert_non_null(p384);
    assert_int_equal(verify_err(es, p384, PC_ALGS_FAPI), PC_ERR_DENY);
    assert_non_null(strstr(pc_errmsg(), "not of the type"));
    EVP_PKEY_free(p384);
    free(es);
    free(ps);
    free(ed);
}

/* ---- attacks ---------------------------------------------------------------------- */

static void test_alg_none(void **state)
{
    (void)state;
    /* RFC 7519 §6.1's unsecured JWT shape, with an empty signature. */
    char *c = make_jws("{\"alg\":\"none\"}", "{\"sub\":\"admin\"}", NULL, 0);
    assert_int_equal(verify_err(c, ec_key, ALL_ALGS), PC_ERR_DENY);
    assert_int_equal(verify_err(c, ec_key, PC_ALG_NONE), PC_ERR_DENY);
    assert_non_null(strstr(pc_errmsg(), "never"));
    free(c);
    /* Also with some signature bytes. */
    uint8_t junk[64] = {1};
    c = make_jws("{\"alg\":\"none\"}", "{\"sub\":\"admin\"}", junk, sizeof junk);
    assert_int_equal(verify_err(c, ec_key, ALL_ALGS), PC_ERR_DENY);
    free(c);
    /* Other spellings of none are not even an algorithm. */
    c = make_jws("{\"alg\":\"None\"}", "{}", NULL, 0);
    assert_int_equal(parse_err(c), PC_ERR_PROTO);
    free(c);
}

/* HMAC-SHA256 of the signing input with key as the secret. */
static char *hs256_with(const uint8_t *key, size_t key_len)
{
    char *unsigned_jws = make_jws("{\"alg\":\"HS256\"}", "{\"sub\":\"admin\"}", NULL, 0);
    size_t input_len = strlen(unsigned_jws) - 1; /* without the last dot */
    uint8_t mac[32];
    size_t mac_len = 0;
    assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, key_len,
                              (const unsigned char *)unsigned_jws, input_len, mac, sizeof mac,
                              &mac_len));
    char *out = with_sig(unsigned_jws, mac, mac_len);
    free(unsigned_jws);
    return out;
}

static void test_hs256_confusion(void **state)
{
    (void)state;
    /* The attacker "signs" with the public key as the HMAC secret, in the
     * forms a naive verifier might feed to HMAC: PEM and DER. */
    EVP_PKEY *keys[] = {rsa_key, ec_key};
    for (size_t i = 0; i < 2; i++) {
        BIO *bio = BIO_new(BIO_s_mem());
        assert_int_equal(PEM_write_bio_PUBKEY(bio, keys[i]), 1);
        char *pem = NULL;
        long pem_len = BIO_get_mem_data(bio, &pem);
        char *c = hs256_with((const uint8_t *)pem, (size_t)pem_len);
        assert_int_equal(verify_err(c, keys[i], ALL_ALGS), PC_ERR_DENY);
        assert_int_equal(verify_err(c, keys[i], PC_ALG_HS256), PC_ERR_DENY);
        free(c);
        BIO_free(bio);

        unsigned char *der = NULL;
        int der_len = i2d_PUBKEY(keys[i], &der);
        assert_true(der_len > 0);
        c = hs256_with(der, (size_t)der_len);
        assert_int_equal(verify_err(c, keys[i], ALL_ALGS), PC_ERR_DENY);
        free(c);
        OPENSSL_free(der);
    }
}

/* RS256 made directly with OpenSSL (we do not sign it ourselves). */
static char *rs256(EVP_PKEY *key, int pss_salt)
{
    const char *hdr = pss_salt >= 0 ? "{\"alg\":\"PS256\"}" : "{\"alg\":\"RS256\"}";
    char *unsigned_jws = make_jws(hdr, "{\"sub\":\"x\"}", NULL, 0);
    size_t input_len = strlen(unsigned_jws) - 1;
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    uint8_t sig[512];
    size_t sig_len = sizeof sig;
    assert_int_equal(EVP_DigestSignInit(mctx, &pctx, EVP_sha256(), NULL, key), 1);
    if (pss_salt >= 0) {
        assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
        assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, pss_salt), 1);
    }
    assert_int_equal(EVP_DigestSign(mctx, sig, &sig_len, (const unsigned char *)unsigned_jws,
                                    input_len),
                     1);
    EVP_MD_CTX_free(mctx);
    char *out = with_sig(unsigned_jws, sig, sig_len);
    free(unsigned_jws);
    return out;
}

static void test_rs256_and_pss_salt(void **state)
{
    (void)state;
    char *c = rs256(rsa_key, -1);
    /* Not under FAPI 2.0 §5.4... */
    assert_int_equal(verify_err(c, rsa_key, PC_ALGS_FAPI), PC_ERR_DENY);
    /* ...but a caller may allow it explicitly. */
    assert_int_equal(verify_err(c, rsa_key, PC_ALGS_FAPI | PC_ALG_RS256), PC_ERR_NONE);
    assert_int_equal(verify_err(c, ec_key, PC_ALGS_FAPI | PC_ALG_RS256), PC_ERR_DENY);
    free(c);
    /* We do not produce RS256. */
    json_t *payload = json_object();
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(pc_jws_sign(PC_ALG_RS256, rsa_key, NULL, NULL, NULL, payload, &out, &len).err,
                     PC_ERR_USAGE);
    assert_null(out);

    /* PS256 made elsewhere with the RFC 7518 §3.5 salt verifies; other salt
     * lengths do not. */
    c = rs256(rsa_key, 32);
    assert_int_equal(verify_err(c, rsa_key, PC_ALGS_FAPI), PC_ERR_NONE);
    free(c);
    c = rs256(rsa_key, 20);
    assert_int_equal(verify_err(c, rsa_key, PC_ALGS_FAPI), PC_ERR_DENY);
    free(c);
    c = rs256(rsa_key, 0);
    assert_int_equal(verify_err(c, rsa_key, PC_ALGS_FAPI), PC_ERR_DENY);
    free(c);
    json_decref(payload);
}

static void test_es256_signature_forms(void **state)
{
    (void)state;
    char *c = sign(PC_ALG_ES256, ec_key, NULL, NULL, NULL);
    uint8_t sig[128];
    size_t len = part(c, 2, sig, sizeof sig);
    assert_int_equal(len, 64);

    /* 63 and 65 bytes. */
    char *bad = with_sig(c, sig, 63);
    assert_int_equal(verify_err(bad, ec_key, PC_ALGS_FAPI), PC_ERR_DENY);
    free(bad);
    sig[64] = 0;
    bad = with_sig(c, sig, 65);
    assert_int_equal(verify_err(bad, ec_key, PC_ALGS_FAPI), PC_ERR_DENY);
    free(bad);
    /* r = 0 and s = 0, and r = s = all ones (above the group order). */
    uint8_t zero[64] = {0}, ones[64];
    memset(ones, 0xff, sizeof ones);
    bad = with_sig(c, zero, 64);
    assert_int_equal(verify_err(bad, ec_key, PC_ALGS_FAPI), PC_ERR_DENY);
    free(bad);
    bad = with_sig(c, ones, 64);
    assert_int_equal(verify_err(bad, ec_key, PC_ALGS_FAPI), PC_ERR_DENY);
    free(bad);

    /* The same signature in DER, as OpenSSL emits it: a valid signature in
     * the wrong encoding is refused (RFC 7518 §3.4). */
    ECDSA_SIG *es = ECDSA_SIG_new();
    assert_int_equal(ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL)),
                     1);
    unsigned char *der = NULL;
    int der_len = i2d_ECDSA_SIG(es, &der);
    assert_true(der_len > 0);
    bad = with_sig(c, der, (size_t)der_len);
    assert_int_equal(verify_err(bad, ec_key, PC_ALGS_FAPI), PC_ERR_DENY);
    free(bad);
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    free(c);
}

static void test_sign_refusals(void **state)
{
    (void)state;
    json_t *payload = json_object();
    char *out = NULL;
    size_t len = 0;
    static const pc_jws_alg never[] = {PC_ALG_NONE, PC_ALG_HS256, PC_ALG_UNKNOWN};
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(pc_jws_sign(never[i], ec_key, NULL, NULL, NULL, payload, &out, &len).err,
                         PC_ERR_USAGE);
    /* A mask is not an algorithm. */
    pc_jws_alg mask = (pc_jws_alg)(PC_ALG_ES256 | PC_ALG_PS256);
    assert_int_equal(pc_jws_sign(mask, ec_key, NULL, NULL, NULL, payload, &out, &len).err,
                     PC_ERR_USAGE);
    /* Key of the wrong type for the alg. */
    assert_int_equal(pc_jws_sign(PC_ALG_ES256, rsa_key, NULL, NULL, NULL, payload, &out, &len).err,
                     PC_ERR_USAGE);
    assert_int_equal(pc_jws_sign(PC_ALG_PS256, ec_key, NULL, NULL, NULL, payload, &out, &len).err,
                     PC_ERR_USAGE);
    assert_int_equal(pc_jws_sign(PC_ALG_EDDSA, ec_key, NULL, NULL, NULL, payload, &out, &len).err,
                     PC_ERR_USAGE);
    /* A public key cannot sign. */
    json_t *pj = NULL;
    assert_true(pc_ok(pc_jwk_public_json(ec_key, NULL, NULL, NULL, &pj)));
    pc_jwk pub;
    assert_true(pc_ok(pc_jwk_from_json(pj, PC_JWK_PUBLIC_ONLY, &pub)));
    assert_int_equal(pc_jws_sign(PC_ALG_ES256, pub.pkey, NULL, NULL, NULL, payload, &out, &len).err,
                     PC_ERR_CRYPTO);
    pc_jwk_clear(&pub);
    json_decref(pj);
    /* The extra header cannot override ours or add crit. */
    static const char *const reserved[] = {"alg", "typ", "kid", "crit"};
    for (size_t i = 0; i < 4; i++) {
        json_t *extra = json_pack("{s:s}", reserved[i], "none");
        assert_false(pc_ok(pc_jws_sign(PC_ALG_ES256, ec_key, NULL, NULL, extra, payload, &out,
                                       &len)));
        json_decref(extra);
    }
    /* The payload must be an object. */
    json_t *arr = json_array();
    assert_false(pc_ok(pc_jws_sign(PC_ALG_ES256, ec_key, NULL, NULL, NULL, arr, &out, &len)));
    json_decref(arr);
    assert_null(out);
    /* An empty extra header adds nothing. */
    json_t *empty = json_object();
    assert_true(pc_ok(pc_jws_sign(PC_ALG_ES256, ec_key, NULL, NULL, empty, payload, &out, &len)));
    uint8_t hdr[64];
    size_t hlen = part(out, 0, hdr, sizeof hdr);
    assert_int_equal(hlen, strlen("{\"alg\":\"ES256\"}"));
    assert_memory_equal(hdr, "{\"alg\":\"ES256\"}", hlen);
    free(out);
    json_decref(empty);
    json_decref(payload);
}

/* ---- malformed input ------------------------------------------------------------ */

static void expect_parse_refused(const char *header, const char *payload, const char *want)
{
    uint8_t sig[64] = {0};
    char *c = make_jws(header, payload, sig, sizeof sig);
    assert_int_equal(parse_err(c), PC_ERR_PROTO);
    if (want != NULL && strstr(pc_errmsg(), want) == NULL)
        fail_msg("message \"%s\" does not mention \"%s\" (header %s)", pc_errmsg(), want, header);
    free(c);
}

/* An object nested depth levels deep: {"a":{"a":...{}}}. */
static char *nested(int depth)
{
    size_t cap = (size_t)depth * 6 + 64;
    char *s = malloc(cap);
    assert_non_null(s);
    size_t n = 0;
    for (int i = 1; i < depth; i++) n += (size_t)snprintf(s + n, cap - n, "{\"a\":");
    n += (size_t)snprintf(s + n, cap - n, "{}");
    for (int i = 1; i < depth; i++) n += (size_t)snprintf(s + n, cap - n, "}");
    return s;
}

static void test_header_refusals(void **state)
{
    (void)state;
    expect_parse_refused("{\"alg\":\"ES256\",\"alg\":\"none\"}", "{}", "not valid JSON");
    expect_parse_refused("{\"alg\":\"ES256\",\"jwk\":{\"x\":\"a\",\"x\":\"b\"}}", "{}", NULL);
    expect_parse_refused("{\"alg\":\"ES256\",\"crit\":[\"exp\"],\"exp\":1}", "{}", "crit");
    expect_parse_refused("{\"alg\":\"ES256\",\"crit\":[]}", "{}", "crit");
    expect_parse_refused("{\"alg\":\"ES256\",\"b64\":false,\"crit\":[\"b64\"]}", "{}", "crit");
    expect_parse_refused("{\"alg\":1}", "{}", "\"alg\"");
    expect_parse_refused("{\"typ\":\"JWT\"}", "{}", "\"alg\"");
    expect_parse_refused("{\"alg\":\"ES512\"}", "{}", "unsupported alg");
    expect_parse_refused("{\"alg\":\"ES256\",\"kid\":1}", "{}", "\"kid\"");
    expect_parse_refused("{\"alg\":\"ES256\",\"typ\":[\"JWT\"]}", "{}", "\"typ\"");
    expect_parse_refused("{\"alg\":\"ES256\",\"kid\":null}", "{}", "\"kid\"");
    char kid[300];
    memset(kid, 'k', 129);
    kid[129] = '\0';
    char hdr[400];
    snprintf(hdr, sizeof hdr, "{\"alg\":\"ES256\",\"kid\":\"%s\"}", kid);
    expect_parse_refused(hdr, "{}", "\"kid\"");
    /* Trailing bytes after the object (the EOF check is on), a header that
     * is an array, one that is a string, invalid UTF-8, an escaped NUL. */
    expect_parse_refused("{\"alg\":\"ES256\"}x", "{}", "header");
    expect_parse_refused("{\"alg\":\"ES256\"}{}", "{}", "header");
    expect_parse_refused("[\"alg\",\"ES256\"]", "{}", "not a JSON object");
    expect_parse_refused("\"ES256\"", "{}", "header");
    expect_parse_refused("{\"alg\":\"ES256\",\"x\":\"\xff\"}", "{}", "header");
    expect_parse_refused("{\"alg\":\"ES256\",\"kid\":\"a\\u0000b\"}", "{}", "header");
    expect_parse_refused("", "{}", "header");
    /* Whitespace inside JSON is fine; RFC 7515 A.1 has CR LF in its header. */
    uint8_t sig[64] = {0};
    char *c = make_jws("{\"typ\":\"JWT\",\r\n \"alg\":\"ES256\"}", "{ }", sig, sizeof sig);
    assert_int_equal(parse_err(c), PC_ERR_NONE);
    free(c);
    /* kid of exactly PC_JWK_MAX_KID. */
    kid[128] = '\0';
    snprintf(hdr, sizeof hdr, "{\"alg\":\"ES256\",\"kid\":\"%s\"}", kid);
    c = make_jws(hdr, "{}", sig, sizeof sig);
    assert_int_equal(parse_err(c), PC_ERR_NONE);
    free(c);
}

static void test_payload_and_depth(void **state)
{
    (void)state;
    expect_parse_refused("{\"alg\":\"ES256\"}", "[1,2]", "not a JSON object");
    expect_parse_refused("{\"alg\":\"ES256\"}", "\"text\"", "payload");
    expect_parse_refused("{\"alg\":\"ES256\"}", "", "payload");
    expect_parse_refused("{\"alg\":\"ES256\"}", "{\"a\":1,\"a\":2}", "payload");
    expect_parse_refused("{\"alg\":\"ES256\"}", "{\"a\":1} ,", "payload");

    /* PC_JWS_MAX_JSON_DEPTH levels pass, one more is refused, in the
     * header and in the payload, through objects and arrays. */
    uint8_t sig[64] = {0};
    char *ok_payload = nested(PC_JWS_MAX_JSON_DEPTH);
    char *c = make_jws("{\"alg\":\"ES256\"}", ok_payload, sig, sizeof sig);
    assert_int_equal(parse_err(c), PC_ERR_NONE);
    free(c);
    char *deep = nested(PC_JWS_MAX_JSON_DEPTH + 1);
    expect_parse_refused("{\"alg\":\"ES256\"}", deep, "deeper");
    /* The header object plus PC_JWS_MAX_JSON_DEPTH levels inside it. */
    char hdr[512];
    snprintf(hdr, sizeof hdr, "{\"alg\":\"ES256\",\"n\":%s}", ok_payload);
    expect_parse_refused(hdr, "{}", "deeper");
    expect_parse_refused("{\"alg\":\"ES256\"}", "{\"a\":[[[[[[[[1]]]]]]]]}", "deeper");
    c = make_jws("{\"alg\":\"ES256\"}", "{\"a\":[[[[[[[1]]]]]]]}", sig, sizeof sig);
    assert_int_equal(parse_err(c), PC_ERR_NONE);
    free(c);
    /* Far beyond: jansson's own limit, then ours. */
    char *very = malloc(5000);
    memset(very, '[', 2500);
    memset(very + 2500, ']', 2499);
    very[4999] = '\0';
    very[0] = '{';
    char *p = malloc(5100);
    snprintf(p, 5100, "{\"a\":%s}", very + 1);
    c = make_jws("{\"alg\":\"ES256\"}", p, NULL, 0);
    assert_int_equal(parse_err(c), PC_ERR_PROTO);
    free(c);
    free(p);
    free(very);
    free(ok_payload);
    free(deep);
}

static void test_structure(void **state)
{
    (void)state;
    char *good = sign(PC_ALG_ES256, ec_key, NULL, NULL, NULL);
    assert_int_equal(parse_err(good), PC_ERR_NONE);
    size_t len = strlen(good);
    char *buf = malloc(len + PC_JWS_MAX_LEN + 16);
    assert_non_null(buf);

    /* Four parts (a JWE has five), two parts, one. */
    snprintf(buf, len + 16, "%s.", good);
    assert_int_equal(parse_err(buf), PC_ERR_PROTO);
    snprintf(buf, len + 16, "%s.AAAA", good);
    assert_int_equal(parse_err(buf), PC_ERR_PROTO);
    snprintf(buf, len + 16, "%s", good);
    *strrchr(buf, '.') = '\0';
    assert_int_equal(parse_err(buf), PC_ERR_PROTO);
    assert_int_equal(parse_err("eyJhbGciOiJFUzI1NiJ9"), PC_ERR_PROTO);
    assert_int_equal(parse_err(""), PC_ERR_PROTO);
    assert_int_equal(parse_err(".."), PC_ERR_PROTO);
    assert_int_equal(parse_err("..."), PC_ERR_PROTO);
    pc_jws jws;
    assert_int_equal(pc_jws_parse(PC_STR_NULL, &jws).err, PC_ERR_PROTO);

    /* Padding, whitespace and the standard alphabet in any part. */
    const char *dot1 = strchr(good, '.'), *dot2 = strrchr(good, '.');
    size_t h = (size_t)(dot1 - good);
    snprintf(buf, len + 16, "%.*s=%s", (int)h, good, dot1);
    assert_int_equal(parse_err(buf), PC_ERR_PROTO);
    snprintf(buf, len + 16, "%s=", good);
    assert_int_equal(parse_err(buf), PC_ERR_PROTO);
    snprintf(buf, len + 16, " %s", good);
    assert_int_equal(parse_err(buf), PC_ERR_PROTO);
    snprintf(buf, len + 16, "%.*s\n%s", (int)(dot2 - good), good, dot2);
    assert_int_equal(parse_err(buf), PC_ERR_PROTO);
    snprintf(buf, len + 16, "%s", good);
    buf[len - 3] = '+';
    assert_int_equal(parse_err(buf), PC_ERR_PROTO);

    /* Oversize: one byte over the limit is refused before anything else;
     * a token of exactly the limit gets as far as its content. */
    memset(buf, 'A', PC_JWS_MAX_LEN + 1);
    memcpy(buf, good, len);
    buf[PC_JWS_MAX_LEN + 1] = '\0';
    assert_int_equal(parse_err(buf), PC_ERR_PROTO);
    assert_non_null(strstr(pc_errmsg(), "more than"));
    buf[PC_JWS_MAX_LEN] = '\0';
    assert_int_equal(parse_err(buf), PC_ERR_PROTO);
    assert_null(strstr(pc_errmsg(), "more than"));

    /* A signature longer than any we could check (RSA-8192 is 1024). */
    uint8_t big[1100];
    memset(big, 7, sizeof big);
    char *c = make_jws("{\"alg\":\"PS256\"}", "{}", big, sizeof big);
    assert_int_equal(parse_err(c), PC_ERR_PROTO);
    free(c);
    c = make_jws("{\"alg\":\"PS256\"}", "{}", big, 1024);
    assert_int_equal(parse_err(c), PC_ERR_NONE);
    assert_int_equal(verify_err(c, rsa_key, PC_ALGS_FAPI), PC_ERR_DENY);
    free(c);

    /* Bytes after a NUL are part of the input, not ignored. */
    pc_str with_nul = {good, len};
    char *copy = malloc(len + 2);
    memcpy(copy, good, len);
    copy[len] = '\0';
    copy[len + 1] = 'A';
    with_nul.ptr = copy;
    with_nul.len = len + 2;
    assert_int_equal(pc_jws_parse(with_nul, &jws).err, PC_ERR_PROTO);
    free(copy);
    free(buf);
    free(good);
    /* Clearing twice, or a NULL, is harmless; verify needs a parsed JWS. */
    memset(&jws, 0, sizeof jws);
    pc_jws_clear(&jws);
    pc_jws_clear(NULL);
    assert_int_equal(pc_jws_verify(&jws, ec_key, PC_ALGS_FAPI).err, PC_ERR_INTERNAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alg_names),
        cmocka_unit_test(test_header_cache),
        cmocka_unit_test(test_rfc7515_a3),
        cmocka_unit_test(test_round_trip_es256),
        cmocka_unit_test(test_round_trip_ps256),
        cmocka_unit_test(test_round_trip_eddsa),
        cmocka_unit_test(test_es256_leading_zeros),
        cmocka_unit_test(test_signer),
        cmocka_unit_test(test_verify_key_type_cached),
        cmocka_unit_test(test_alg_none),
        cmocka_unit_test(test_hs256_confusion),
        cmocka_unit_test(test_rs256_and_pss_salt),
        cmocka_unit_test(test_es256_signature_forms),
        cmocka_unit_test(test_sign_refusals),
        cmocka_unit_test(test_header_refusals),
        cmocka_unit_test(test_payload_and_depth),
        cmocka_unit_test(test_structure),
    };
    return cmocka_run_group_tests(tests, make_keys, free_keys);
}
