/* Client metadata (RFC 7591 under FAPI 2.0 rules): a valid client for each
 * authentication method, every refusal (the message must name the member),
 * the set loaded from the store, and config seeding. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "as/clients.h"

#include <dirent.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- helpers --------------------------------------------------------------- */

/* A {"keys":[...]} object with one fresh public key. */
static json_t *jwks_one(const char *type)
{
    EVP_PKEY *k = strcmp(type, "EC") == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")
                                          : EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_non_null(k);
    json_t *jwk = NULL;
    assert_true(pc_ok(pc_jwk_public_json(k, "k1", NULL, "sig", &jwk)));
    EVP_PKEY_free(k);
    return json_pack("{s:[o]}", "keys", jwk);
}

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (j == NULL) fail_msg("test JSON: %s: %s", e.text, text);
    return j;
}

/* A valid mTLS client to start each refusal from. */
static json_t *mtls_base(void)
{
    return parse("{\"client_id\":\"acme-1\",\"token_endpoint_auth_method\":\"tls_client_auth\","
                 "\"tls_client_auth_subject_dn\":\"CN=acme,O=Acme Ltd,C=GB\","
                 "\"scope\":\"accounts payments\"}");
}

static pc_client *accept_md(json_t *md)
{
    pc_client *c = NULL;
    pc_result r = pc_client_from_metadata(md, &c);
    if (!pc_ok(r)) fail_msg("refused: %s", pc_errmsg());
    json_decref(md);
    return c;
}

/* Refused, and the message contains want (the member's name). */
static void refuse(json_t *md, const char *want)
{
    pc_client *c = (pc_client *)1;
    pc_result r = pc_client_from_metadata(md, &c);
    if (pc_ok(r)) fail_msg("accepted, expected a refusal naming %s", want);
    assert_null(c);
    if (strstr(pc_errmsg(), want) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", pc_errmsg(), want);
    if (getenv("PC_TEST_VERBOSE") != NULL) print_message("refused: %s\n", pc_errmsg());
    json_decref(md);
}

/* The base with one member set (JSON value text) or removed (NULL). */
static json_t *with(json_t *md, const char *member, const char *value_json)
{
    if (value_json == NULL)
        json_object_del(md, member);
    else
        json_object_set_new(md, member, parse(value_json));
    return md;
}

/* ---- valid clients ------------------------------------------------------------ */

static void test_valid_tls_client_auth(void **state)
{
    (void)state;
    pc_client *c = accept_md(mtls_base());
    assert_string_equal(c->client_id, "acme-1");
    assert_int_equal(c->auth, PC_AUTH_TLS_CLIENT);
    assert_string_equal(pc_client_auth_name(c->auth), "tls_client_auth");
    assert_string_equal(c->tls_subject_dn, "CN=acme,O=Acme Ltd,C=GB");
    assert_null(c->tls_san_dns);
    assert_int_equal(c->n_scopes, 2);
    assert_true(pc_client_has_scope(c, "accounts", 8));
    assert_true(pc_client_has_scope(c, "payments", 8));
    assert_false(pc_client_has_scope(c, "Accounts", 8)); /* exact */
    assert_false(pc_client_has_scope(c, "account", 7));
    assert_false(pc_client_has_scope(c, "accounts ", 9));
    assert_int_equal(c->grants, PC_GRANT_CLIENT_CREDENTIALS); /* the default */
    assert_false(c->dpop_bound);
    assert_int_equal(c->access_token_lifetime_s, 0);
    assert_int_equal(c->jwks.n, 0);
    assert_non_null(c->metadata);
    pc_client_free(c);

    /* Each of the SAN forms, alone. */
    static const char *const sans[][2] = {
        {"tls_client_auth_san_dns", "\"client.acme.example\""},
        {"tls_client_auth_san_uri", "\"https://acme.example/client\""},
        {"tls_client_auth_san_ip", "\"192.0.2.7\""},
        {"tls_client_auth_san_ip", "\"2001:db8::7\""},
        {"tls_client_auth_san_email", "\"ops@acme.example\""},
    };
    for (size_t i = 0; i < sizeof sans / sizeof sans[0]; i++) {
        json_t *md = with(mtls_base(), "tls_client_auth_subject_dn", NULL);
        c = accept_md(with(md, sans[i][0], sans[i][1]));
        pc_client_free(c);
    }
}

static void test_valid_self_signed(void **state)
{
    (void)state;
    json_t *md = parse("{\"client_id\":\"self.signed_~x\","
                       "\"token_endpoint_auth_method\":\"self_signed_tls_client_auth\","
                       "\"dpop_bound_access_tokens\":true,\"access_token_lifetime\":600}");
    json_object_set_new(md, "jwks", jwks_one("EC"));
    pc_client *c = accept_md(md);
    assert_int_equal(c->auth, PC_AUTH_SELF_SIGNED_TLS);
    assert_int_equal(c->jwks.n, 1);
    assert_true(c->dpop_bound);
    assert_int_equal(c->access_token_lifetime_s, 600);
    assert_int_equal(c->n_scopes, 0);
    pc_client_free(c);
}

static void test_valid_private_key_jwt(void **state)
{
    (void)state;
    json_t *md = parse(
        "{\"client_id\":\"pkj\",\"token_endpoint_auth_method\":\"private_key_jwt\","
        "\"grant_types\":[\"authorization_code\",\"refresh_token\",\"client_credentials\"],"
        "\"response_types\":[\"code\"],"
        "\"redirect_uris\":[\"https://app.example/cb\",\"http://127.0.0.1:8080/cb\","
        "\"http://[::1]/cb\",\"http://localhost:9/cb?x=1\",\"HTTPS://APP.example:443\"],"
        "\"client_name\":\"Unknown members are kept\",\"x_custom\":{\"a\":1}}");
    json_object_set_new(md, "jwks", jwks_one("OKP"));
    pc_client *c = accept_md(md);
    assert_int_equal(c->auth, PC_AUTH_PRIVATE_KEY_JWT);
    assert_int_equal(c->grants, PC_GRANT_AUTHORIZATION_CODE | PC_GRANT_REFRESH_TOKEN |
                                    PC_GRANT_CLIENT_CREDENTIALS);
    assert_int_equal(c->n_redirect_uris, 5);
    assert_string_equal(c->redirect_uris[1], "http://127.0.0.1:8080/cb");
    assert_non_null(json_object_get(c->metadata, "x_custom"));
    assert_non_null(pc_jwks_find(&c->jwks, "k1"));
    pc_client_free(c);

    /* jwks_uri instead of jwks: kept, not fetched. */
    c = accept_md(parse("{\"client_id\":\"pkj2\",\"token_endpoint_auth_method\":"
                        "\"private_key_jwt\",\"jwks_uri\":\"https://app.example/jwks.json\"}"));
    assert_string_equal(c->jwks_uri, "https://app.example/jwks.json");
    assert_int_equal(c->jwks.n, 0);
    pc_client_free(c);
}

/* ---- refusals ---------------------------------------------------------------- */

static void test_refuse_shape_and_client_id(void **state)
{
    (void)state;
    refuse(parse("[]"), "object");
    refuse(with(mtls_base(), "client_id", NULL), "client_id");
    refuse(with(mtls_base(), "client_id", "42"), "client_id");
    refuse(with(mtls_base(), "client_id", "\"\""), "client_id");
    refuse(with(mtls_base(), "client_id", "\"has space\""), "client_id");
    refuse(with(mtls_base(), "client_id", "\"slash/no\""), "client_id");
    refuse(with(mtls_base(), "client_id", "\"caf\\u00e9\""), "client_id");
    refuse(with(mtls_base(), "client_id", "\"abc\\u0000def\""), "client_id");
    char id[200];
    memset(id, 'a', 129);
    snprintf(id + 129, sizeof id - 129, "\"");
    char quoted[210];
    snprintf(quoted, sizeof quoted, "\"%s", id);
    refuse(with(mtls_base(), "client_id", quoted), "client_id");
    id[128] = '"';
    id[129] = '\0';
    snprintf(quoted, sizeof quoted, "\"%s", id); /* exactly 128: fine */
    pc_client_free(accept_md(with(mtls_base(), "client_id", quoted)));
}

static void test_refuse_auth_methods(void **state)
{
    (void)state;
    static const char *const forbidden[] = {"\"client_secret_basic\"", "\"client_secret_post\"",
                                            "\"client_secret_jwt\"", "\"none\""};
    for (size_t i = 0; i < sizeof forbidden / sizeof forbidden[0]; i++) {
        refuse(with(mtls_base(), "token_endpoint_auth_method", forbidden[i]),
               "token_endpoint_auth_method");
        /* The message names the methods that are allowed. */
        json_t *md = with(mtls_base(), "token_endpoint_auth_method", forbidden[i]);
        refuse(md, "tls_client_auth, self_signed_tls_client_auth or private_key_jwt");
    }
    refuse(with(mtls_base(), "token_endpoint_auth_method", "\"tls_client_auth_x\""),
           "token_endpoint_auth_method");
    refuse(with(mtls_base(), "token_endpoint_auth_method", "\"bad\\u0001value\""),
           "bad?value");
    refuse(with(mtls_base(), "token_endpoint_auth_method", NULL), "token_endpoint_auth_method");
    refuse(with(mtls_base(), "token_endpoint_auth_method", "true"), "token_endpoint_auth_method");
}

static void test_refuse_tls_subject(void **state)
{
    (void)state;
    /* None. */
    refuse(with(mtls_base(), "tls_client_auth_subject_dn", NULL), "tls_client_auth_subject_dn");
    /* Two. */
    json_t *md = with(mtls_base(), "tls_client_auth_san_dns", "\"x.example\"");
    refuse(md, "tls_client_auth_san_dns");
    md = with(mtls_base(), "tls_client_auth_san_email", "\"a@b\"");
    refuse(md, "exactly one");
    /* Malformed values. */
    json_t *b = with(mtls_base(), "tls_client_auth_subject_dn", NULL);
    refuse(with(b, "tls_client_auth_san_ip", "\"300.1.1.1\""), "tls_client_auth_san_ip");
    b = with(mtls_base(), "tls_client_auth_subject_dn", NULL);
    refuse(with(b, "tls_client_auth_san_email", "\"nobody\""), "tls_client_auth_san_email");
    b = with(mtls_base(), "tls_client_auth_subject_dn", NULL);
    refuse(with(b, "tls_client_auth_san_uri", "\"nocolon\""), "tls_client_auth_san_uri");
    refuse(with(mtls_base(), "tls_client_auth_subject_dn", "\"\""), "tls_client_auth_subject_dn");
    refuse(with(mtls_base(), "tls_client_auth_subject_dn", "7"), "tls_client_auth_subject_dn");
}

static void test_refuse_keys(void **state)
{
    (void)state;
    json_t *md = parse("{\"client_id\":\"p\",\"token_endpoint_auth_method\":\"private_key_jwt\"}");
    refuse(json_deep_copy(md), "jwks");
    json_t *m2 = json_deep_copy(md);
    json_object_set_new(m2, "token_endpoint_auth_method",
                        json_string("self_signed_tls_client_auth"));
    refuse(m2, "jwks");
    refuse(with(json_deep_copy(md), "jwks", "{\"keys\":[]}"), "jwks");
    refuse(with(json_deep_copy(md), "jwks", "[]"), "jwks");
    refuse(with(json_deep_copy(md), "jwks", "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\"}]}"),
           "jwks");
    /* A symmetric key is never a client key. */
    refuse(with(json_deep_copy(md), "jwks", "{\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAA\"}]}"),
           "jwks");
    /* Only unsupported key types: nothing usable. */
    refuse(with(json_deep_copy(md), "jwks",
                "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-521\",\"x\":\"AA\",\"y\":\"AA\"}]}"),
           "jwks");
    refuse(with(json_deep_copy(md), "jwks_uri", "\"http://app.example/jwks\""), "jwks_uri");
    refuse(with(json_deep_copy(md), "jwks_uri", "\"https://app.example/j#frag\""), "jwks_uri");
    refuse(with(json_deep_copy(md), "jwks_uri", "\"https://user@app.example/j\""), "jwks_uri");
    refuse(with(json_deep_copy(md), "jwks_uri", "\"https:///j\""), "jwks_uri");
    refuse(with(json_deep_copy(md), "jwks_uri", "1"), "jwks_uri");
    /* Both jwks and jwks_uri (RFC 7591 §2). */
    json_t *both = with(json_deep_copy(md), "jwks_uri", "\"https://app.example/jwks\"");
    json_object_set_new(both, "jwks", jwks_one("EC"));
    refuse(both, "jwks_uri");
    /* A private key in jwks. */
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    json_t *jwk = NULL;
    assert_true(pc_ok(pc_jwk_public_json(k, "k", NULL, NULL, &jwk)));
    uint8_t raw[32];
    size_t rl = sizeof raw;
    assert_int_equal(EVP_PKEY_get_raw_private_key(k, raw, &rl), 1);
    char d[64];
    size_t dl = 0;
    assert_true(pc_ok(pc_b64url_encode(raw, rl, d, sizeof d, &dl)));
    json_object_set_new(jwk, "d", json_string(d));
    EVP_PKEY_free(k);
    json_t *priv = json_deep_copy(md);
    json_object_set_new(priv, "jwks", json_pack("{s:[o]}", "keys", jwk));
    refuse(priv, "jwks");
    json_decref(md);
}

static void test_refuse_scope(void **state)
{
    (void)state;
    refuse(with(mtls_base(), "scope", "[\"a\"]"), "scope");
    refuse(with(mtls_base(), "scope", "\"\""), "scope");
    refuse(with(mtls_base(), "scope", "\"a  b\""), "scope");
    refuse(with(mtls_base(), "scope", "\" a\""), "scope");
    refuse(with(mtls_base(), "scope", "\"a \""), "scope");
    refuse(with(mtls_base(), "scope", "\"a\\tb\""), "scope");
    refuse(with(mtls_base(), "scope", "\"quo\\\"te\""), "scope");
    refuse(with(mtls_base(), "scope", "\"back\\\\slash\""), "scope");
    refuse(with(mtls_base(), "scope", "\"caf\\u00e9\""), "scope");
    refuse(with(mtls_base(), "scope", "\"a b a\""), "scope");
    /* Too many. */
    char many[1024] = "\"";
    for (int i = 0; i <= PC_CLIENT_MAX_SCOPES; i++) {
        char one[16];
        snprintf(one, sizeof one, "%ss%d", i ? " " : "", i);
        strcat(many, one);
    }
    strcat(many, "\"");
    refuse(with(mtls_base(), "scope", many), "scope");
    /* The full NQCHAR range is fine. */
    pc_client *c = accept_md(with(mtls_base(), "scope", "\"!#[]~ urn:x:y/z?q=1&r\""));
    assert_int_equal(c->n_scopes, 2);
    pc_client_free(c);
}

static void test_refuse_grants(void **state)
{
    (void)state;
    refuse(with(mtls_base(), "grant_types", "[\"password\"]"), "password");
    refuse(with(mtls_base(), "grant_types", "[\"client_credentials\",\"password\"]"),
           "grant_types");
    refuse(with(mtls_base(), "grant_types", "[\"implicit\"]"), "implicit");
    refuse(with(mtls_base(), "grant_types", "[\"implicit\"]"), "grant_types");
    refuse(with(mtls_base(), "grant_types", "[\"urn:ietf:params:oauth:grant-type:device_code\"]"),
           "grant_types");
    refuse(with(mtls_base(), "grant_types", "[]"), "grant_types");
    refuse(with(mtls_base(), "grant_types", "\"client_credentials\""), "grant_types");
    refuse(with(mtls_base(), "grant_types", "[1]"), "grant_types");
    refuse(with(mtls_base(), "response_types", "[\"token\"]"), "response_types");
    refuse(with(mtls_base(), "response_types", "[\"code id_token\"]"), "response_types");
}

static void test_refuse_redirect_uris(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "[\"http://app.example/cb\"]",          /* http, not loopback */
        "[\"http://127.0.0.2/cb\"]",            /* not exactly loopback */
        "[\"http://localhost.evil.example/\"]", /* a prefix is not the host */
        "[\"http://127.0.0.1@evil.example/\"]", /* userinfo */
        "[\"https://app.example/cb#frag\"]",    /* fragment */
        "[\"https://app.example/c b\"]",        /* space */
        "[\"ftp://app.example/\"]",
        "[\"app.example/cb\"]",
        "[\"https://\"]",
        "[\"https://app.example:/cb\"]",
        "[\"https://app.example:8x/cb\"]",
        "[\"https://[::1/cb\"]",
        "[\"https://app.example/cb\\u0000evil\"]",
        "[42]",
        "\"https://app.example/cb\"",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        refuse(with(mtls_base(), "redirect_uris", bad[i]), "redirect_uris");
    char many[2048] = "[";
    for (int i = 0; i <= PC_CLIENT_MAX_REDIRECTS; i++) {
        char one[64];
        snprintf(one, sizeof one, "%s\"https://a.example/%d\"", i ? "," : "", i);
        strcat(many, one);
    }
    strcat(many, "]");
    refuse(with(mtls_base(), "redirect_uris", many), "redirect_uris");
}

static void test_refuse_token_options(void **state)
{
    (void)state;
    refuse(with(mtls_base(), "dpop_bound_access_tokens", "\"true\""), "dpop_bound_access_tokens");
    refuse(with(mtls_base(), "dpop_bound_access_tokens", "1"), "dpop_bound_access_tokens");
    refuse(with(mtls_base(), "access_token_lifetime", "0"), "access_token_lifetime");
    refuse(with(mtls_base(), "access_token_lifetime", "86401"), "access_token_lifetime");
    refuse(with(mtls_base(), "access_token_lifetime", "-5"), "access_token_lifetime");
    refuse(with(mtls_base(), "access_token_lifetime", "300.0"), "access_token_lifetime");
    refuse(with(mtls_base(), "access_token_lifetime", "\"300\""), "access_token_lifetime");
    pc_client *c = accept_md(with(mtls_base(), "access_token_lifetime", "86400"));
    assert_int_equal(c->access_token_lifetime_s, 86400);
    pc_client_free(c);
}

/* ---- the set, from the store ---------------------------------------------------- */

struct fx {
    char dir[64];
    char db[128];
    pc_store *st;
};

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof *fx);
    if (fx == NULL) return -1;
    snprintf(fx->dir, sizeof fx->dir, "/tmp/pc_test_clients_XXXXXX");
    if (mkdtemp(fx->dir) == NULL) return -1;
    snprintf(fx->db, sizeof fx->db, "%s/portcullis.db", fx->dir);
    if (!pc_ok(pc_store_open(fx->db, &fx->st))) return -1;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    pc_store_close(fx->st);
    DIR *d = opendir(fx->dir);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", fx->dir, e->d_name);
        unlink(p);
    }
    if (d != NULL) closedir(d);
    rmdir(fx->dir);
    free(fx);
    return 0;
}

static void put_mtls(pc_store *st, const char *id, const char *source)
{
    char text[512];
    snprintf(text, sizeof text,
             "{\"client_id\":\"%s\",\"token_endpoint_auth_method\":\"tls_client_auth\","
             "\"tls_client_auth_san_dns\":\"%s.example\"}",
             id, id);
    assert_true(pc_ok(pc_store_client_put(st, id, text, source)));
}

static void test_set_load_and_find(void **state)
{
    struct fx *fx = *state;
    pc_client_set *set = NULL;
    assert_true(pc_ok(pc_client_set_load(fx->st, &set)));
    assert_int_equal(pc_client_set_count(set), 0);
    assert_null(pc_client_set_find(set, "a", 1));
    pc_client_set_free(set);

    put_mtls(fx->st, "alpha", "cli");
    put_mtls(fx->st, "beta", "config");
    /* Stored rows that no longer validate are skipped, not fatal. */
    assert_true(pc_ok(pc_store_client_put(fx->st, "broken", "{not json", "cli")));
    assert_true(pc_ok(pc_store_client_put(
        fx->st, "secretive",
        "{\"client_id\":\"secretive\",\"token_endpoint_auth_method\":\"client_secret_basic\"}",
        "cli")));
    put_mtls(fx->st, "gamma", "cli");
    assert_true(pc_ok(pc_store_client_put( /* the row's id and the metadata's differ */
        fx->st, "delta",
        "{\"client_id\":\"gamma\",\"token_endpoint_auth_method\":\"tls_client_auth\","
        "\"tls_client_auth_san_dns\":\"x\"}",
        "cli")));

    assert_true(pc_ok(pc_client_set_load(fx->st, &set)));
    assert_int_equal(pc_client_set_count(set), 3);
    const pc_client *c = pc_client_set_find(set, "beta", 4);
    assert_non_null(c);
    assert_string_equal(c->client_id, "beta");
    assert_string_equal(c->tls_san_dns, "beta.example");
    /* Lengths are honoured: a prefix, a longer string, an embedded NUL. */
    assert_non_null(pc_client_set_find(set, "alphabet", 5));
    assert_null(pc_client_set_find(set, "alph", 4));
    assert_null(pc_client_set_find(set, "alpha\0", 6));
    assert_null(pc_client_set_find(set, "broken", 6));
    assert_null(pc_client_set_find(set, "secretive", 9));
    assert_null(pc_client_set_find(set, "delta", 5));
    assert_null(pc_client_set_find(set, "", 0));
    assert_null(pc_client_set_find(NULL, "alpha", 5));
    pc_client_set_free(set);
}

static void test_set_many_clients(void **state)
{
    struct fx *fx = *state;
    enum { N = 2000 };
    assert_true(pc_ok(pc_store_begin(fx->st)));
    for (int i = 0; i < N; i++) {
        char id[32];
        snprintf(id, sizeof id, "client-%05d", i);
        put_mtls(fx->st, id, "cli");
    }
    assert_true(pc_ok(pc_store_commit(fx->st)));
    pc_client_set *set = NULL;
    assert_true(pc_ok(pc_client_set_load(fx->st, &set)));
    assert_int_equal(pc_client_set_count(set), N);
    for (int i = 0; i < N; i++) {
        char id[32];
        int len = snprintf(id, sizeof id, "client-%05d", i);
        const pc_client *c = pc_client_set_find(set, id, (size_t)len);
        assert_non_null(c);
        assert_string_equal(c->client_id, id);
        snprintf(id, sizeof id, "client-%05d", i + N); /* absent */
        assert_null(pc_client_set_find(set, id, (size_t)len));
    }
    pc_client_set_free(set);
}

static void test_seed_from_config(void **state)
{
    struct fx *fx = *state;
    put_mtls(fx->st, "cli-one", "cli");
    put_mtls(fx->st, "old-config", "config");
    char a[] = "seed-a", b[] = "cli-one";
    char ma[] = "{\"client_id\":\"seed-a\",\"token_endpoint_auth_method\":\"tls_client_auth\","
                "\"tls_client_auth_san_dns\":\"a.example\",\"scope\":\"x\"}";
    char mb[] = "{\"client_id\":\"cli-one\",\"token_endpoint_auth_method\":\"tls_client_auth\","
                "\"tls_client_auth_san_dns\":\"b.example\"}";
    pc_as_client_seed seeds[] = {{a, ma, 10}, {b, mb, 20}};
    assert_true(pc_ok(pc_client_seed(fx->st, seeds, 2)));

    pc_store_client *row = NULL;
    assert_true(pc_ok(pc_store_client_get(fx->st, "seed-a", &row)));
    assert_string_equal(row->source, "config");
    pc_store_client_free(row);
    assert_true(pc_ok(pc_store_client_get(fx->st, "cli-one", &row)));
    assert_string_equal(row->source, "config"); /* the config wins */
    pc_store_client_free(row);
    /* A config client the config no longer declares is gone. */
    assert_int_equal(pc_store_client_get(fx->st, "old-config", &row).err, PC_ERR_DENY);

    /* A bad seed fails the call with its line, and changes nothing. */
    char mc[] = "{\"client_id\":\"seed-c\",\"token_endpoint_auth_method\":\"client_secret_post\"}";
    char c_id[] = "seed-c";
    pc_as_client_seed bad[] = {{c_id, mc, 33}};
    pc_result r = pc_client_seed(fx->st, bad, 1);
    assert_false(pc_ok(r));
    assert_non_null(strstr(pc_errmsg(), "line 33"));
    assert_non_null(strstr(pc_errmsg(), "token_endpoint_auth_method"));
    assert_true(pc_ok(pc_store_client_get(fx->st, "seed-a", &row)));
    pc_store_client_free(row);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_tls_client_auth),
        cmocka_unit_test(test_valid_self_signed),
        cmocka_unit_test(test_valid_private_key_jwt),
        cmocka_unit_test(test_refuse_shape_and_client_id),
        cmocka_unit_test(test_refuse_auth_methods),
        cmocka_unit_test(test_refuse_tls_subject),
        cmocka_unit_test(test_refuse_keys),
        cmocka_unit_test(test_refuse_scope),
        cmocka_unit_test(test_refuse_grants),
        cmocka_unit_test(test_refuse_redirect_uris),
        cmocka_unit_test(test_refuse_token_options),
        cmocka_unit_test_setup_teardown(test_set_load_and_find, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_many_clients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seed_from_config, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
