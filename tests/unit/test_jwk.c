/* JWK parsing and export (RFC 7517, RFC 7518 §6, RFC 8037) and RFC 7638
 * thumbprints: published vectors, round trips through OpenSSL keys, and
 * every refusal jwk.h promises. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "jose/b64url.h"
#include "jose/jwk.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* RFC 7638 §3.1: an RSA key and its thumbprint. */
static const char rfc7638_n[] =
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_"
    "BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-"
    "65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-"
    "bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
static const char rfc7638_thumb[] = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

/* RFC 7515 Appendix A.3: the ES256 example key. */
static const char a3_x[] = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
static const char a3_y[] = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
static const char a3_d[] = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI";

/* RFC 8037 Appendix A.1 (key) and A.3 (thumbprint). */
static const char ed_x[] = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
static const char ed_d[] = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
static const char ed_thumb[] = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";

static json_t *js(const char *text)
{
    json_error_t err;
    json_t *v = json_loads(text, 0, &err);
    if (v == NULL) fail_msg("test JSON does not parse: %s: %s", err.text, text);
    return v;
}

/* Format JSON text with printf and parse it. */
static json_t *jsf(const char *fmt, ...) PC_PRINTF(1, 2);
static json_t *jsf(const char *fmt, ...)
{
    char buf[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof buf);
    return js(buf);
}

/* The start of a P-256 JWK, for tests that add members. */
#define EC_HEAD "{\"kty\":\"EC\",\"crv\":\"P-256\","

static json_t *ec_json(const char *x, const char *y)
{
    return jsf(EC_HEAD "\"x\":\"%s\",\"y\":\"%s\"}", x, y);
}

/* Parse and expect a refusal with err; the message must contain want. */
static void expect_refused(json_t *obj, pc_jwk_private priv, pc_err err, const char *want)
{
    pc_jwk k;
    pc_result r = pc_jwk_from_json(obj, priv, &k);
    if (r.err != err) fail_msg("expected %s, got %s (%s)", pc_err_name(err), pc_err_name(r.err),
                               pc_errmsg());
    assert_null(k.pkey);
    if (want != NULL && strstr(pc_errmsg(), want) == NULL)
        fail_msg("message \"%s\" does not mention \"%s\"", pc_errmsg(), want);
    json_decref(obj);
}

static void expect_ok(json_t *obj, pc_jwk_private priv, pc_jwk *out)
{
    if (!pc_ok(pc_jwk_from_json(obj, priv, out))) fail_msg("refused: %s", pc_errmsg());
    assert_non_null(out->pkey);
    json_decref(obj);
}

/* base64url of a BIGNUM, minimal (or padded to pad bytes when pad > 0). */
static void bn_b64(const BIGNUM *bn, int pad, char *out, size_t cap)
{
    uint8_t raw[1100];
    int len = pad > 0 ? BN_bn2binpad(bn, raw, pad) : BN_bn2bin(bn, raw);
    assert_true(len > 0);
    assert_true(pc_ok(pc_b64url_encode(raw, (size_t)len, out, cap, NULL)));
}

static void param_b64(EVP_PKEY *k, const char *name, int pad, char *out, size_t cap)
{
    BIGNUM *bn = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(k, name, &bn), 1);
    bn_b64(bn, pad, out, cap);
    BN_clear_free(bn);
}

/* An RSA JWK made straight from OpenSSL's parameters (independent of the
 * exporter under test), with the private members when priv. */
static json_t *rsa_jwk(EVP_PKEY *k, bool priv)
{
    static const char *const names[] = {"n", "e", "d", "p", "q", "dp", "dq", "qi"};
    static const char *const params[] = {
        OSSL_PKEY_PARAM_RSA_N,         OSSL_PKEY_PARAM_RSA_E,         OSSL_PKEY_PARAM_RSA_D,
        OSSL_PKEY_PARAM_RSA_FACTOR1,   OSSL_PKEY_PARAM_RSA_FACTOR2,   OSSL_PKEY_PARAM_RSA_EXPONENT1,
        OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
    };
    json_t *o = json_pack("{s:s}", "kty", "RSA");
    for (size_t i = 0; i < (priv ? 8u : 2u); i++) {
        char b64[1400];
        param_b64(k, params[i], 0, b64, sizeof b64);
        json_object_set_new(o, names[i], json_string(b64));
    }
    return o;
}

static json_t *ec_private_jwk(EVP_PKEY *k)
{
    char x[64], y[64], d[64];
    param_b64(k, OSSL_PKEY_PARAM_EC_PUB_X, 32, x, sizeof x);
    param_b64(k, OSSL_PKEY_PARAM_EC_PUB_Y, 32, y, sizeof y);
    param_b64(k, OSSL_PKEY_PARAM_PRIV_KEY, 32, d, sizeof d);
    return jsf(EC_HEAD "\"x\":\"%s\",\"y\":\"%s\",\"d\":\"%s\"}", x, y, d);
}

/* ---- published vectors ------------------------------------------------------- */

static void test_rfc7638_vector(void **state)
{
    (void)state;
    json_t *o = jsf("{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\",\"alg\":\"RS256\","
                    "\"kid\":\"2011-04-29\"}",
                    rfc7638_n);
    char tp[PC_JWK_THUMBPRINT_BUF];
    assert_true(pc_ok(pc_jwk_thumbprint_json(o, tp)));
    assert_string_equal(tp, rfc7638_thumb);

    pc_jwk k;
    expect_ok(o, PC_JWK_PUBLIC_ONLY, &k);
    assert_int_equal(k.type, PC_JWK_RSA);
    assert_false(k.is_private);
    assert_string_equal(k.kid, "2011-04-29");
    assert_string_equal(k.alg, "RS256");
    assert_string_equal(k.use, "");
    assert_string_equal(k.thumbprint, rfc7638_thumb);
    assert_int_equal(EVP_PKEY_get_bits(k.pkey), 2048);
    /* Exporting the built key gives the same members back. */
    assert_true(pc_ok(pc_jwk_thumbprint_pkey(k.pkey, tp)));
    assert_string_equal(tp, rfc7638_thumb);
    json_t *pub = NULL;
    assert_true(pc_ok(pc_jwk_public_json(k.pkey, "2011-04-29", "RS256", "sig", &pub)));
    assert_string_equal(json_string_value(json_object_get(pub, "n")), rfc7638_n);
    assert_string_equal(json_string_value(json_object_get(pub, "e")), "AQAB");
    assert_string_equal(json_string_value(json_object_get(pub, "use")), "sig");
    json_decref(pub);
    pc_jwk_clear(&k);
    assert_null(k.pkey);
}

static void test_rfc8037_ed25519(void **state)
{
    (void)state;
    pc_jwk k;
    /* The private key of A.1, whose public part is x. */
    expect_ok(jsf("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"d\":\"%s\",\"x\":\"%s\"}", ed_d, ed_x),
              PC_JWK_PRIVATE_OK, &k);
    assert_int_equal(k.type, PC_JWK_ED25519);
    assert_true(k.is_private);
    assert_string_equal(k.thumbprint, ed_thumb);
    pc_jwk_clear(&k);

    expect_ok(jsf("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\"}", ed_x), PC_JWK_PUBLIC_ONLY,
              &k);
    assert_string_equal(k.thumbprint, ed_thumb);
    char tp[PC_JWK_THUMBPRINT_BUF];
    assert_true(pc_ok(pc_jwk_thumbprint_pkey(k.pkey, tp)));
    assert_string_equal(tp, ed_thumb);
    pc_jwk_clear(&k);

    /* The same d with another x does not match. */
    expect_refused(jsf("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"d\":\"%s\",\"x\":\"%s\"}", ed_d,
                       a3_x),
                   PC_JWK_PRIVATE_OK, PC_ERR_PROTO, "does not match");
}

static void test_rfc7515_a3_key(void **state)
{
    (void)state;
    pc_jwk pub, priv;
    expect_ok(ec_json(a3_x, a3_y), PC_JWK_PUBLIC_ONLY, &pub);
    assert_int_equal(pub.type, PC_JWK_EC_P256);
    assert_false(pub.is_private);
    assert_int_equal(pc_jwk_pkey_type(pub.pkey), PC_JWK_EC_P256);

    expect_ok(jsf(EC_HEAD "\"x\":\"%s\",\"y\":\"%s\",\"d\":\"%s\"}", a3_x,
                  a3_y, a3_d),
              PC_JWK_PRIVATE_OK, &priv);
    assert_true(priv.is_private);
    assert_string_equal(priv.thumbprint, pub.thumbprint);
    assert_int_equal(EVP_PKEY_eq(pub.pkey, priv.pkey), 1);

    /* The thumbprint of a private JWK is that of its public part
     * (RFC 7638 §3.2.1), without building a key. */
    json_t *o = jsf(EC_HEAD "\"x\":\"%s\",\"y\":\"%s\",\"d\":\"%s\"}",
                    a3_x, a3_y, a3_d);
    char tp[PC_JWK_THUMBPRINT_BUF];
    assert_true(pc_ok(pc_jwk_thumbprint_json(o, tp)));
    assert_string_equal(tp, pub.thumbprint);
    json_decref(o);

    /* Exported JSON has the same coordinates. */
    json_t *e = NULL;
    assert_true(pc_ok(pc_jwk_public_json(pub.pkey, NULL, NULL, NULL, &e)));
    assert_string_equal(json_string_value(json_object_get(e, "x")), a3_x);
    assert_string_equal(json_string_value(json_object_get(e, "y")), a3_y);
    assert_null(json_object_get(e, "kid"));
    assert_null(json_object_get(e, "d"));
    json_decref(e);
    pc_jwk_clear(&pub);
    pc_jwk_clear(&priv);

    /* A d that belongs to another point. */
    expect_refused(jsf(EC_HEAD "\"x\":\"%s\",\"y\":\"%s\",\"d\":\"%s\"}",
                       a3_x, a3_y, ed_d),
                   PC_JWK_PRIVATE_OK, PC_ERR_PROTO, NULL);
}

/* ---- round trips through generated keys ---------------------------------------- */

static void round_trip(EVP_PKEY *key, pc_jwk_type type)
{
    json_t *pub = NULL;
    assert_true(pc_ok(pc_jwk_public_json(key, "k1", "ES256", "sig", &pub)));
    assert_null(json_object_get(pub, "d"));
    char tp[PC_JWK_THUMBPRINT_BUF], tp_json[PC_JWK_THUMBPRINT_BUF];
    assert_true(pc_ok(pc_jwk_thumbprint_pkey(key, tp)));
    assert_true(pc_ok(pc_jwk_thumbprint_json(pub, tp_json)));
    assert_string_equal(tp, tp_json);
    assert_int_equal(strlen(tp), PC_JWK_THUMBPRINT_BUF - 1);

    pc_jwk k;
    expect_ok(pub, PC_JWK_PUBLIC_ONLY, &k);
    assert_int_equal(k.type, type);
    assert_string_equal(k.thumbprint, tp);
    assert_string_equal(k.kid, "k1");
    assert_string_equal(k.use, "sig");
    /* Same public key: EVP_PKEY_eq compares the public components. */
    assert_int_equal(EVP_PKEY_eq(k.pkey, key), 1);
    pc_jwk_clear(&k);
}

static void test_round_trip_ec(void **state)
{
    (void)state;
    for (int i = 0; i < 16; i++) {
        EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        assert_non_null(key);
        round_trip(key, PC_JWK_EC_P256);
        /* And as a private key (our own key store). */
        pc_jwk k;
        expect_ok(ec_private_jwk(key), PC_JWK_PRIVATE_OK, &k);
        assert_true(k.is_private);
        assert_int_equal(EVP_PKEY_eq(k.pkey, key), 1);
        pc_jwk_clear(&k);
        EVP_PKEY_free(key);
    }
}

static void test_round_trip_ed25519(void **state)
{
    (void)state;
    for (int i = 0; i < 8; i++) {
        EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        assert_non_null(key);
        round_trip(key, PC_JWK_ED25519);
        EVP_PKEY_free(key);
    }
}

static void test_round_trip_rsa(void **state)
{
    (void)state;
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    assert_non_null(key);
    round_trip(key, PC_JWK_RSA);

    pc_jwk k;
    expect_ok(rsa_jwk(key, true), PC_JWK_PRIVATE_OK, &k);
    assert_true(k.is_private);
    assert_int_equal(EVP_PKEY_eq(k.pkey, key), 1);
    pc_jwk_clear(&k);

    /* The private members are refused for a public key, one by one. */
    static const char *const priv_names[] = {"d", "p", "q", "dp", "dq", "qi"};
    for (size_t i = 0; i < 6; i++) {
        json_t *o = rsa_jwk(key, false);
        json_object_set_new(o, priv_names[i], json_string("AQAB"));
        expect_refused(o, PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO, priv_names[i]);
    }
    /* A private key needs all of the CRT members, and no "oth". */
    json_t *o = rsa_jwk(key, true);
    json_object_del(o, "qi");
    expect_refused(o, PC_JWK_PRIVATE_OK, PC_ERR_PROTO, "qi");
    o = rsa_jwk(key, true);
    json_object_set_new(o, "oth", json_array());
    expect_refused(o, PC_JWK_PRIVATE_OK, PC_ERR_PROTO, "oth");
    /* A d from another key does not match. */
    EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    json_t *od = rsa_jwk(other, true);
    o = rsa_jwk(key, true);
    json_object_set(o, "d", json_object_get(od, "d"));
    expect_refused(o, PC_JWK_PRIVATE_OK, PC_ERR_PROTO, NULL);
    json_decref(od);
    EVP_PKEY_free(other);
    EVP_PKEY_free(key);
}

/* ---- refusals ------------------------------------------------------------------ */

static void test_ec_refusals(void **state)
{
    (void)state;
    /* y with one bit changed: no longer on the curve. */
    char y[64];
    snprintf(y, sizeof y, "%s", a3_y);
    y[42] = '4';
    expect_refused(ec_json(a3_x, y), PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO, "not on P-256");
    /* x = 2^256 - 1 is beyond the field prime. */
    expect_refused(ec_json("__________________________________________8", a3_y),
                   PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO, NULL);
    /* 31 and 33 bytes. */
    expect_refused(ec_json("f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVA", a3_y),
                   PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO, "\"x\"");
    uint8_t raw33[33];
    char x33[64];
    memset(raw33, 0x11, sizeof raw33);
    assert_true(pc_ok(pc_b64url_encode(raw33, sizeof raw33, x33, sizeof x33, NULL)));
    expect_refused(ec_json(x33, a3_y), PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO, "\"x\"");
    /* Padding, the standard alphabet, a stray trailing bit. */
    char x[64];
    snprintf(x, sizeof x, "%s=", a3_x);
    expect_refused(ec_json(x, a3_y), PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO, "\"x\"");
    expect_refused(ec_json("f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVE+", a3_y),
                   PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO, "\"x\"");
    expect_refused(ec_json("f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEV", a3_y),
                   PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO, "\"x\"");
    /* Missing and mistyped members. */
    expect_refused(jsf(EC_HEAD "\"x\":\"%s\"}", a3_x),
                   PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO, "\"y\" is missing");
    expect_refused(jsf("{\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", a3_x, a3_y),
                   PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO, "\"crv\"");
    expect_refused(jsf(EC_HEAD "\"x\":7,\"y\":\"%s\"}", a3_y),
                   PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO, "\"x\" must be a string");
    expect_refused(jsf("{\"kty\":[\"EC\"],\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}", a3_x,
                       a3_y),
                   PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO, "\"kty\"");
    expect_refused(jsf("{\"kty\":\"EC\",\"crv\":256,\"x\":\"%s\",\"y\":\"%s\"}", a3_x, a3_y),
                   PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO, "\"crv\"");
    expect_refused(js("[1,2]"), PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO, "not a JSON object");
    /* Private EC material under PUBLIC_ONLY, and members that belong to
     * no EC key even when private keys are allowed. */
    expect_refused(jsf(EC_HEAD "\"x\":\"%s\",\"y\":\"%s\",\"d\":\"%s\"}",
                       a3_x, a3_y, a3_d),
                   PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO, "private member \"d\"");
    expect_refused(jsf(EC_HEAD "\"x\":\"%s\",\"y\":\"%s\",\"p\":\"AQAB\"}",
                       a3_x, a3_y),
                   PC_JWK_PRIVATE_OK, PC_ERR_PROTO, "\"p\"");
    /* d of the wrong length. */
    expect_refused(jsf(EC_HEAD "\"x\":\"%s\",\"y\":\"%s\",\"d\":\"AQAB\"}",
                       a3_x, a3_y),
                   PC_JWK_PRIVATE_OK, PC_ERR_PROTO, "\"d\"");
}

static void test_kty_refusals(void **state)
{
    (void)state;
    /* Symmetric keys: never, not even as a private key. */
    expect_refused(js("{\"kty\":\"oct\",\"k\":\"GawgguFyGrWKav7AX4VKUg\"}"), PC_JWK_PRIVATE_OK,
                   PC_ERR_PROTO, "oct");
    expect_refused(js("{\"kty\":\"oct\"}"), PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO, "oct");
    /* "k" on another key type is a private member. */
    expect_refused(jsf(EC_HEAD "\"x\":\"%s\",\"y\":\"%s\",\"k\":\"AA\"}",
                       a3_x, a3_y),
                   PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO, "\"k\"");
    /* Unknown types and curves are named in the message. */
    expect_refused(js("{\"kty\":\"XYZ\"}"), PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO, "\"XYZ\"");
    expect_refused(jsf("{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"%s\",\"y\":\"%s\"}", a3_x, a3_y),
                   PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO, "\"P-384\"");
    expect_refused(jsf("{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":\"%s\"}", ed_x),
                   PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO, "\"X25519\"");
    expect_refused(jsf("{\"kty\":\"OKP\",\"crv\":\"P-256\",\"x\":\"%s\"}", ed_x),
                   PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO, "\"OKP\"");
    /* Case matters (RFC 7517 §4.1). */
    expect_refused(jsf("{\"kty\":\"ec\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}", a3_x, a3_y),
                   PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO, "unsupported kty");
    /* A non-printable kty is not copied raw into the message. */
    expect_refused(js("{\"kty\":\"a\\nb\\\"c\"}"), PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO, "\"a?b?c\"");
    expect_refused(js("{\"crv\":\"P-256\"}"), PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO,
                   "\"kty\" is missing");
    char tp[PC_JWK_THUMBPRINT_BUF];
    json_t *o = js("{\"kty\":\"oct\",\"k\":\"AAAA\"}");
    assert_int_equal(pc_jwk_thumbprint_json(o, tp).err, PC_ERR_PROTO);
    json_decref(o);
    o = js("{\"kty\":\"XYZ\"}");
    assert_int_equal(pc_jwk_thumbprint_json(o, tp).err, PC_ERR_PROTO);
    json_decref(o);
}

static void test_metadata(void **state)
{
    (void)state;
    char kid[200];
    memset(kid, 'k', PC_JWK_MAX_KID);
    kid[PC_JWK_MAX_KID] = '\0';
    pc_jwk k;
    expect_ok(jsf(EC_HEAD "\"x\":\"%s\",\"y\":\"%s\",\"kid\":\"%s\","
                  "\"x5u\":\"https://attacker.example/x\",\"jku\":\"https://attacker.example/j\"}",
                  a3_x, a3_y, kid),
              PC_JWK_PUBLIC_ONLY, &k);
    assert_string_equal(k.kid, kid);
    pc_jwk_clear(&k);
    kid[PC_JWK_MAX_KID] = 'k';
    kid[PC_JWK_MAX_KID + 1] = '\0';
    expect_refused(jsf(EC_HEAD "\"x\":\"%s\",\"y\":\"%s\",\"kid\":\"%s\"}",
                       a3_x, a3_y, kid),
                   PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO, "\"kid\"");
    expect_refused(jsf(EC_HEAD "\"x\":\"%s\",\"y\":\"%s\",\"kid\":12}",
                       a3_x, a3_y),
                   PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO, "\"kid\"");
    expect_refused(jsf(EC_HEAD "\"x\":\"%s\",\"y\":\"%s\","
                       "\"alg\":\"ES256-and-then-some\"}",
                       a3_x, a3_y),
                   PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO, "\"alg\"");
    expect_refused(jsf(EC_HEAD "\"x\":\"%s\",\"y\":\"%s\","
                       "\"use\":\"signature\"}",
                       a3_x, a3_y),
                   PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO, "\"use\"");
    /* A kid with NUL inside would match a shorter kid. The loader must
     * allow NUL for this JSON to exist at all. */
    char text[512];
    snprintf(text, sizeof text,
             "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\",\"kid\":\"a\\u0000b\"}",
             a3_x, a3_y);
    json_t *o = json_loads(text, JSON_ALLOW_NUL, NULL);
    assert_non_null(o);
    expect_refused(o, PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO, "NUL");
}

/* RSA JWK text with given n and e members. */
static json_t *rsa_ne(const char *n, const char *e)
{
    return jsf("{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\"}", n, e);
}

static void test_rsa_refusals(void **state)
{
    (void)state;
    /* 1024 bits: FAPI 2.0 §5.4.1 needs 2048. */
    EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    assert_non_null(small);
    expect_refused(rsa_jwk(small, false), PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO, "1024 bits");
    json_t *e = NULL;
    assert_int_equal(pc_jwk_public_json(small, NULL, NULL, NULL, &e).err, PC_ERR_USAGE);
    assert_null(e);
    assert_int_equal(pc_jwk_pkey_type(small), PC_JWK_NONE);
    EVP_PKEY_free(small);

    /* e = 1 makes m^e = m: every "signature" verifies. Even e, e = 0, a
     * leading zero octet, more than 64 bits. */
    expect_refused(rsa_ne(rfc7638_n, "AQ"), PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO, "exponent");
    expect_refused(rsa_ne(rfc7638_n, "AQAA"), PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO, "exponent");
    expect_refused(rsa_ne(rfc7638_n, "AA"), PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO, "leading zero");
    expect_refused(rsa_ne(rfc7638_n, "AAEAAQ"), PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO, "leading zero");
    expect_refused(rsa_ne(rfc7638_n, "AQAAAAAAAAAB"), PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO, "\"e\"");
    expect_refused(rsa_ne(rfc7638_n, ""), PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO, "\"e\"");
    pc_jwk k;
    expect_ok(rsa_ne(rfc7638_n, "Aw"), PC_JWK_PUBLIC_ONLY, &k); /* e = 3 */
    pc_jwk_clear(&k);

    /* n with a leading zero octet: same number, another thumbprint, so
     * RFC 7518 §6.3.1.1 forbids it. */
    char n[1500];
    uint8_t raw[600];
    size_t len = 0;
    assert_true(pc_ok(pc_b64url_decode(rfc7638_n, strlen(rfc7638_n), raw + 1, sizeof raw - 1,
                                       &len)));
    raw[0] = 0;
    assert_true(pc_ok(pc_b64url_encode(raw, len + 1, n, sizeof n, NULL)));
    expect_refused(rsa_ne(n, "AQAB"), PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO, "leading zero");
    /* An even modulus. */
    raw[len] &= 0xfe;
    assert_true(pc_ok(pc_b64url_encode(raw + 1, len, n, sizeof n, NULL)));
    expect_refused(rsa_ne(n, "AQAB"), PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO, "even");
    /* Beyond 8192 bits: refused while decoding, before any arithmetic. */
    uint8_t big[1030];
    memset(big, 0xab, sizeof big);
    assert_true(pc_ok(pc_b64url_encode(big, sizeof big, n, sizeof n, NULL)));
    expect_refused(rsa_ne(n, "AQAB"), PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO, "\"n\"");
    expect_refused(js("{\"kty\":\"RSA\",\"e\":\"AQAB\"}"), PC_JWK_PUBLIC_ONLY, PC_ERR_PROTO,
                   "\"n\" is missing");
}

/* ---- key sets -------------------------------------------------------------------- */

static void test_jwks(void **state)
{
    (void)state;
    EVP_PKEY *k1 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *k2 = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    json_t *j1 = NULL, *j2 = NULL, *j3 = NULL;
    assert_true(pc_ok(pc_jwk_public_json(k1, "one", "ES256", "sig", &j1)));
    assert_true(pc_ok(pc_jwk_public_json(k2, "two", "EdDSA", NULL, &j2)));
    assert_true(pc_ok(pc_jwk_public_json(k1, "enc-key", NULL, "enc", &j3)));
    /* An unknown kty and an unused curve are skipped. */
    json_t *set = json_pack("{s:[O,O,O,{s:s},{s:s,s:s,s:s}]}", "keys", j1, j2, j3, "kty", "XYZ",
                            "kty", "OKP", "crv", "X25519", "x", ed_x);
    pc_jwks ks;
    assert_true(pc_ok(pc_jwks_from_json(set, &ks)));
    assert_int_equal(ks.n, 3);
    assert_non_null(pc_jwks_find(&ks, "one"));
    assert_int_equal(pc_jwks_find(&ks, "one")->type, PC_JWK_EC_P256);
    assert_int_equal(pc_jwks_find(&ks, "two")->type, PC_JWK_ED25519);
    assert_null(pc_jwks_find(&ks, "three"));
    assert_null(pc_jwks_find(&ks, "on"));
    /* "use":"enc" is never a verification key. */
    assert_null(pc_jwks_find(&ks, "enc-key"));
    /* No kid and two signature keys: which one is unknowable. */
    assert_null(pc_jwks_find(&ks, NULL));
    assert_null(pc_jwks_find(&ks, ""));
    pc_jwks_clear(&ks);
    assert_int_equal(ks.n, 0);
    json_decref(set);

    /* One signature key (and an encryption key): kid-less lookup finds it. */
    set = json_pack("{s:[O,O]}", "keys", j1, j3);
    assert_true(pc_ok(pc_jwks_from_json(set, &ks)));
    const pc_jwk *only = pc_jwks_find(&ks, NULL);
    assert_non_null(only);
    assert_string_equal(only->kid, "one");
    pc_jwks_clear(&ks);
    json_decref(set);

    /* A duplicate kid is accepted, and then ambiguous. */
    json_t *dup = json_deep_copy(j2);
    json_object_set_new(dup, "kid", json_string("one"));
    set = json_pack("{s:[O,o]}", "keys", j1, dup);
    assert_true(pc_ok(pc_jwks_from_json(set, &ks)));
    assert_int_equal(ks.n, 2);
    assert_null(pc_jwks_find(&ks, "one"));
    pc_jwks_clear(&ks);
    json_decref(set);

    /* A malformed key of a supported type fails the whole set, and the
     * message says which. */
    set = json_pack("{s:[O,{s:s,s:s,s:s}]}", "keys", j1, "kty", "EC", "crv", "P-256", "x", a3_x);
    assert_int_equal(pc_jwks_from_json(set, &ks).err, PC_ERR_PROTO);
    assert_int_equal(ks.n, 0);
    assert_non_null(strstr(pc_errmsg(), "key 1"));
    json_decref(set);
    /* So do a symmetric key, and private members even on a skipped type. */
    set = json_pack("{s:[O,{s:s,s:s}]}", "keys", j1, "kty", "oct", "k", "AAAA");
    assert_int_equal(pc_jwks_from_json(set, &ks).err, PC_ERR_PROTO);
    json_decref(set);
    set = json_pack("{s:[{s:s,s:s,s:s,s:s}]}", "keys", "kty", "OKP", "crv", "X25519", "x", ed_x,
                    "d", ed_d);
    assert_int_equal(pc_jwks_from_json(set, &ks).err, PC_ERR_PROTO);
    json_decref(set);

    /* Shape: keys must be an array of objects, at most PC_JWKS_MAX_KEYS. */
    set = js("{\"keys\":{}}");
    assert_int_equal(pc_jwks_from_json(set, &ks).err, PC_ERR_PROTO);
    json_decref(set);
    set = js("{\"keys\":[1]}");
    assert_int_equal(pc_jwks_from_json(set, &ks).err, PC_ERR_PROTO);
    json_decref(set);
    set = js("{\"kids\":[]}");
    assert_int_equal(pc_jwks_from_json(set, &ks).err, PC_ERR_PROTO);
    json_decref(set);
    set = js("{\"keys\":[]}");
    assert_true(pc_ok(pc_jwks_from_json(set, &ks)));
    assert_int_equal(ks.n, 0);
    assert_null(pc_jwks_find(&ks, NULL));
    json_decref(set);
    json_t *many = json_array();
    for (int i = 0; i <= PC_JWKS_MAX_KEYS; i++) json_array_append(many, j2);
    set = json_pack("{s:o}", "keys", many);
    assert_int_equal(pc_jwks_from_json(set, &ks).err, PC_ERR_PROTO);
    json_array_remove(many, 0);
    assert_true(pc_ok(pc_jwks_from_json(set, &ks)));
    assert_int_equal(ks.n, PC_JWKS_MAX_KEYS);
    pc_jwks_clear(&ks);
    json_decref(set);

    json_decref(j1);
    json_decref(j2);
    json_decref(j3);
    EVP_PKEY_free(k1);
    EVP_PKEY_free(k2);
}

static void test_pkey_type(void **state)
{
    (void)state;
    EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    EVP_PKEY *k256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "secp256k1");
    EVP_PKEY *x25519 = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    assert_int_equal(pc_jwk_pkey_type(p384), PC_JWK_NONE);
    /* Same size as P-256, another curve (ES256K is not ES256). */
    assert_int_equal(pc_jwk_pkey_type(k256), PC_JWK_NONE);
    assert_int_equal(pc_jwk_pkey_type(x25519), PC_JWK_NONE);
    assert_int_equal(pc_jwk_pkey_type(NULL), PC_JWK_NONE);
    char tp[PC_JWK_THUMBPRINT_BUF];
    assert_false(pc_ok(pc_jwk_thumbprint_pkey(k256, tp)));
    EVP_PKEY_free(p384);
    EVP_PKEY_free(k256);
    EVP_PKEY_free(x25519);
    /* Clearing twice, or a NULL, is harmless. */
    pc_jwk k;
    memset(&k, 0, sizeof k);
    pc_jwk_clear(&k);
    pc_jwk_clear(NULL);
    pc_jwks_clear(NULL);
    assert_null(pc_jwks_find(NULL, "x"));
}

/* The once-only setup and the template key under concurrent first use. */
static void *import_many(void *arg)
{
    (void)arg;
    json_t *o = ec_json(a3_x, a3_y);
    for (int i = 0; i < 200; i++) {
        pc_jwk k;
        if (!pc_ok(pc_jwk_from_json(o, PC_JWK_PUBLIC_ONLY, &k))) return (void *)1;
        pc_jwk_clear(&k);
    }
    json_decref(o);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    pthread_t t[4];
    for (int i = 0; i < 4; i++) assert_int_equal(pthread_create(&t[i], NULL, import_many, NULL), 0);
    for (int i = 0; i < 4; i++) {
        void *ret = (void *)1;
        assert_int_equal(pthread_join(t[i], &ret), 0);
        assert_null(ret);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_rfc7638_vector),
        cmocka_unit_test(test_rfc8037_ed25519),
        cmocka_unit_test(test_rfc7515_a3_key),
        cmocka_unit_test(test_round_trip_ec),
        cmocka_unit_test(test_round_trip_ed25519),
        cmocka_unit_test(test_round_trip_rsa),
        cmocka_unit_test(test_ec_refusals),
        cmocka_unit_test(test_kty_refusals),
        cmocka_unit_test(test_metadata),
        cmocka_unit_test(test_rsa_refusals),
        cmocka_unit_test(test_jwks),
        cmocka_unit_test(test_pkey_type),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
