/* DPoP proof validation (RFC 9449 §4.3) and htu normalisation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "jose/b64url.h"
#include "jose/dpop.h"
#include "jose/jwk.h"
#include "jose/jws.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static EVP_PKEY *key;
static json_t *pubjwk;
static const int64_t NOW = 1800000000;

static int setup(void **state)
{
    (void)state;
    key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    return key && pc_ok(pc_jwk_public_json(key, NULL, NULL, NULL, &pubjwk)) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(key);
    json_decref(pubjwk);
    return 0;
}

static char *proof(const char *typ, json_t *jwk, json_t *claims)
{
    json_t *extra = json_object();
    if (jwk) json_object_set(extra, "jwk", jwk);
    char *out = NULL;
    size_t len = 0;
    assert_true(pc_ok(pc_jws_sign(PC_ALG_ES256, key, NULL, typ, extra, claims, &out, &len)));
    json_decref(extra);
    json_decref(claims);
    return out;
}

static json_t *claims(const char *htm, const char *htu, int64_t iat, const char *jti)
{
    return json_pack("{s:s,s:s,s:I,s:s}", "htm", htm, "htu", htu, "iat", (json_int_t)iat, "jti", jti);
}

static pc_dpop_check check(void)
{
    pc_dpop_check c = {
        .method = PC_STR("POST"),
        .url = PC_STR("https://as.example:8443/token"),
        .now = NOW,
        .max_age_s = 60,
        .skew_s = 10,
        .allowed_algs = PC_ALGS_FAPI,
    };
    return c;
}

static pc_result run(char *p, const pc_dpop_check *c, pc_dpop_proof *out)
{
    pc_result r = pc_dpop_verify(pc_str_c(p), c, out);
    free(p);
    return r;
}

static void test_valid_proof(void **state)
{
    (void)state;
    pc_dpop_check c = check();
    pc_dpop_proof out;
    char *p = proof("dpop+jwt", pubjwk, claims("POST", "https://as.example:8443/token", NOW, "j1"));
    assert_true(pc_ok(run(p, &c, &out)));
    char want[PC_JWK_THUMBPRINT_BUF];
    assert_true(pc_ok(pc_jwk_thumbprint_pkey(key, want)));
    assert_string_equal(out.jkt, want);
    assert_string_equal(out.jti, "j1");
    assert_int_equal(out.iat, NOW);
    /* Normalisation: case, default port, query and fragment. */
    c.url = PC_STR("https://as.example/token");
    p = proof("dpop+jwt", pubjwk, claims("POST", "HTTPS://AS.Example:443/token?x=1#f", NOW, "j2"));
    assert_true(pc_ok(run(p, &c, &out)));
}

static void expect_refused(char *p, pc_dpop_check *c, const char *msg)
{
    pc_dpop_proof out;
    pc_result r = run(p, c, &out);
    assert_false(pc_ok(r));
    if (msg && !strstr(pc_errmsg(), msg)) fail_msg("message '%s' lacks '%s'", pc_errmsg(), msg);
}

static void test_refusals(void **state)
{
    (void)state;
    pc_dpop_check c = check();
    const char *u = "https://as.example:8443/token";
    expect_refused(proof("dpop+jwt", pubjwk, claims("GET", u, NOW, "a")), &c, "htm");
    expect_refused(proof("dpop+jwt", pubjwk, claims("POST", "https://as.example:8443/other", NOW, "a")), &c, "htu");
    expect_refused(proof("dpop+jwt", pubjwk, claims("POST", "https://evil.example:8443/token", NOW, "a")), &c, "htu");
    expect_refused(proof("dpop+jwt", pubjwk, claims("POST", u, NOW - 61, "a")), &c, "too old");
    expect_refused(proof("dpop+jwt", pubjwk, claims("POST", u, NOW + 11, "a")), &c, "future");
    expect_refused(proof("JWT", pubjwk, claims("POST", u, NOW, "a")), &c, "typ");
    expect_refused(proof("dpop+jwt", NULL, claims("POST", u, NOW, "a")), &c, "jwk");
    /* A private key in the header is refused (RFC 9449 §4.3 point 6). */
    json_t *priv = json_deep_copy(pubjwk);
    json_object_set_new(priv, "d", json_string("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
    expect_refused(proof("dpop+jwt", priv, claims("POST", u, NOW, "a")), &c, "jwk");
    json_decref(priv);
    /* The header key is not the signing key: signature fails. */
    EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    json_t *ojwk = NULL;
    assert_true(pc_ok(pc_jwk_public_json(other, NULL, NULL, NULL, &ojwk)));
    expect_refused(proof("dpop+jwt", ojwk, claims("POST", u, NOW, "a")), &c, "signature");
    json_decref(ojwk);
    EVP_PKEY_free(other);
    /* Missing jti. */
    json_t *cl = json_pack("{s:s,s:s,s:I}", "htm", "POST", "htu", u, "iat", (json_int_t)NOW);
    expect_refused(proof("dpop+jwt", pubjwk, cl), &c, "jti");
    /* alg none: header {"alg":"none","typ":"dpop+jwt","jwk":..}, empty signature. */
    json_t *h = json_pack("{s:s,s:s,s:O}", "alg", "none", "typ", "dpop+jwt", "jwk", pubjwk);
    json_t *pl = claims("POST", u, NOW, "n");
    char *hs = json_dumps(h, JSON_COMPACT), *ps = json_dumps(pl, JSON_COMPACT);
    char hb[1024], pb[1024], tok[2100];
    size_t hl, pl2;
    assert_true(pc_ok(pc_b64url_encode((uint8_t *)hs, strlen(hs), hb, sizeof hb, &hl)));
    assert_true(pc_ok(pc_b64url_encode((uint8_t *)ps, strlen(ps), pb, sizeof pb, &pl2)));
    snprintf(tok, sizeof tok, "%s.%s.", hb, pb);
    free(hs);
    free(ps);
    json_decref(h);
    json_decref(pl);
    pc_dpop_proof out;
    assert_false(pc_ok(pc_dpop_verify(pc_str_c(tok), &c, &out)));
}

static void test_ath(void **state)
{
    (void)state;
    pc_dpop_check c = check();
    c.access_token = PC_STR("token-abc");
    const char *u = "https://as.example:8443/token";
    /* Without ath: refused when a token is presented. */
    expect_refused(proof("dpop+jwt", pubjwk, claims("POST", u, NOW, "a")), &c, "ath");
    /* ath = b64url(sha256("token-abc")) */
    uint8_t d[32];
    unsigned int dl;
    EVP_Digest("token-abc", 9, d, &dl, EVP_sha256(), NULL);
    char ath[64];
    size_t al;
    assert_true(pc_ok(pc_b64url_encode(d, dl, ath, sizeof ath, &al)));
    json_t *cl = claims("POST", u, NOW, "b");
    json_object_set_new(cl, "ath", json_string(ath));
    pc_dpop_proof out;
    assert_true(pc_ok(run(proof("dpop+jwt", pubjwk, cl), &c, &out)));
    cl = claims("POST", u, NOW, "c");
    json_object_set_new(cl, "ath", json_string("wrong"));
    expect_refused(proof("dpop+jwt", pubjwk, cl), &c, "ath");
    /* The caller's digest of the token (the gateway's cache key) is used
     * as given: the right one passes, another one is refused. */
    c.access_token_sha256 = d;
    cl = claims("POST", u, NOW, "d");
    json_object_set_new(cl, "ath", json_string(ath));
    assert_true(pc_ok(run(proof("dpop+jwt", pubjwk, cl), &c, &out)));
    uint8_t other[32];
    memcpy(other, d, sizeof other);
    other[0] ^= 1;
    c.access_token_sha256 = other;
    cl = claims("POST", u, NOW, "e");
    json_object_set_new(cl, "ath", json_string(ath));
    expect_refused(proof("dpop+jwt", pubjwk, cl), &c, "ath");
}

/* Proof keys are found again by the header's jwk object (headers are
 * cached by their bytes): repeated proofs under one header verify and
 * give the same jkt; a header whose jwk carries private members is still
 * refused in between, and a proof signed by another key under a copied
 * header still fails its signature. */
static void test_key_cache_by_header(void **state)
{
    (void)state;
    pc_dpop_check c = check();
    const char *u = "https://as.example:8443/token";
    char want[PC_JWK_THUMBPRINT_BUF];
    assert_true(pc_ok(pc_jwk_thumbprint_pkey(key, want)));
    for (int i = 0; i < 3; i++) {
        char jti[16];
        snprintf(jti, sizeof jti, "kc-%d", i);
        pc_dpop_proof out;
        assert_true(pc_ok(run(proof("dpop+jwt", pubjwk, claims("POST", u, NOW, jti)), &c, &out)));
        assert_string_equal(out.jkt, want);
        if (i == 1) {
            json_t *priv = json_deep_copy(pubjwk);
            json_object_set_new(priv, "d", json_string("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
            expect_refused(proof("dpop+jwt", priv, claims("POST", u, NOW, "kc-priv")), &c, "private");
            json_decref(priv);
        }
    }
    /* Same header bytes (the same jwk), signed with another key. */
    EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(other);
    EVP_PKEY *mine = key;
    key = other;
    char *forged = proof("dpop+jwt", pubjwk, claims("POST", u, NOW, "kc-forged"));
    key = mine;
    expect_refused(forged, &c, NULL);
    EVP_PKEY_free(other);
}

static bool nonce_is_n1(void *arg, pc_str nonce, int64_t now)
{
    (void)arg;
    (void)now;
    return pc_str_eq(nonce, PC_STR("n1"));
}

static void test_nonce(void **state)
{
    (void)state;
    pc_dpop_check c = check();
    c.nonce_ok = nonce_is_n1;
    const char *u = "https://as.example:8443/token";
    pc_dpop_proof out;
    pc_result r = run(proof("dpop+jwt", pubjwk, claims("POST", u, NOW, "a")), &c, &out);
    assert_int_equal(r.err, PC_ERR_DENY);
    assert_true(out.need_nonce);
    json_t *cl = claims("POST", u, NOW, "b");
    json_object_set_new(cl, "nonce", json_string("n1"));
    assert_true(pc_ok(run(proof("dpop+jwt", pubjwk, cl), &c, &out)));
}

static void test_stateless_nonce(void **state)
{
    (void)state;
    pc_dpop_noncer a, b;
    assert_true(pc_ok(pc_dpop_noncer_init(&a, NULL)));
    assert_true(pc_ok(pc_dpop_noncer_init(&b, NULL)));
    char n[PC_DPOP_NONCE_LEN + 1];
    pc_dpop_nonce_make(&a, NOW, n);
    assert_int_equal(strlen(n), PC_DPOP_NONCE_LEN);
    assert_true(pc_dpop_nonce_ok(&a, pc_str_c(n), NOW));
    assert_true(pc_dpop_nonce_ok(&a, pc_str_c(n), NOW + PC_DPOP_NONCE_STEP_S));
    assert_false(pc_dpop_nonce_ok(&a, pc_str_c(n), NOW + 2 * PC_DPOP_NONCE_STEP_S));
    /* Another secret (another deployment) does not accept it. */
    assert_false(pc_dpop_nonce_ok(&b, pc_str_c(n), NOW));
    assert_false(pc_dpop_nonce_ok(&a, PC_STR("short"), NOW));
    /* A shared secret file makes instances agree. */
    char path[] = "/tmp/pc-nonce-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";
    assert_int_equal(write(fd, hex, strlen(hex)), (ssize_t)strlen(hex));
    close(fd);
    assert_true(pc_ok(pc_dpop_noncer_init(&a, path)));
    assert_true(pc_ok(pc_dpop_noncer_init(&b, path)));
    pc_dpop_nonce_make(&a, NOW, n);
    assert_true(pc_dpop_nonce_ok(&b, pc_str_c(n), NOW));
    chmod(path, 0644);
    assert_false(pc_ok(pc_dpop_noncer_init(&a, path)));
    unlink(path);
}

static void norm(const char *in, const char *want)
{
    char out[512];
    size_t n;
    pc_result r = pc_dpop_normalize_url(pc_str_c(in), out, sizeof out, &n);
    if (want == NULL) {
        if (pc_ok(r)) fail_msg("%s normalised to %s, expected refusal", in, out);
        return;
    }
    if (!pc_ok(r)) fail_msg("%s refused: %s", in, pc_errmsg());
    assert_string_equal(out, want);
}

static void test_normalize(void **state)
{
    (void)state;
    norm("https://Example.COM", "https://example.com/");
    norm("HTTPS://example.com:443/a/b?q#f", "https://example.com/a/b");
    norm("http://example.com:80/", "http://example.com/");
    norm("https://example.com:8443/x", "https://example.com:8443/x");
    norm("https://example.com/%7euser/%2fx/%41", "https://example.com/~user/%2Fx/A");
    norm("https://[::1]:443/t", "https://[::1]/t");
    norm("https://[::1]:8443/t", "https://[::1]:8443/t");
    norm("ftp://example.com/", NULL);
    norm("https://user@example.com/", NULL);
    norm("https:///path", NULL);
    norm("https://example.com:99999/", NULL);
    norm("https://example.com:/", NULL);
    norm("https://example.com/%zz", NULL);
    norm("example.com/token", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_proof),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_ath),
        cmocka_unit_test(test_key_cache_by_header),
        cmocka_unit_test(test_nonce),
        cmocka_unit_test(test_stateless_nonce),
        cmocka_unit_test(test_normalize),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
