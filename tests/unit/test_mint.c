/* Access token minting (src/as/mint.c): the claims are written as text
 * rather than built with json_pack and dumped, so each case here checks the
 * payload byte for byte against the json_pack + json_dumps of the same
 * grant, the way tokens were made before; and the token verifies with the
 * published key. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "as/as_internal.h"
#include "jose/b64url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct fx {
    char dir[64], db[128];
    pc_store *st;
    pc_as as;
    pc_client client;
};

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof *fx);
    if (fx == NULL) return -1;
    snprintf(fx->dir, sizeof fx->dir, "/tmp/pc_test_mint_XXXXXX");
    if (mkdtemp(fx->dir) == NULL) return -1;
    snprintf(fx->db, sizeof fx->db, "%s/portcullis.db", fx->dir);
    pc_kek kek;
    for (size_t i = 0; i < PC_KEK_BYTES; i++) kek.key[i] = (uint8_t)(i * 7);
    if (!pc_ok(pc_store_open(fx->db, &fx->st))) return -1;
    if (!pc_ok(pc_keyring_load(fx->st, &kek, PC_ALG_ES256, &fx->as.keys))) return -1;
    fx->as.issuer = "https://as.example:8443";
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    pc_keyring_free(fx->as.keys);
    pc_store_close(fx->st);
    char p[256];
    snprintf(p, sizeof p, "%s/portcullis.db", fx->dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/portcullis.db-wal", fx->dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/portcullis.db-shm", fx->dir);
    unlink(p);
    rmdir(fx->dir);
    free(fx);
    return 0;
}

/* The payload as mint.c made it before: json_pack, cnf and scope added,
 * json_dumps(JSON_COMPACT). */
static char *old_claims(const pc_as *as, const pc_as_grant *g, int64_t now, const char *jti)
{
    json_t *p = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:s}", "iss", as->issuer, "sub",
                          g->client->client_id, "aud", g->aud, "exp",
                          (json_int_t)(now + (int64_t)g->lifetime_s), "iat", (json_int_t)now,
                          "jti", jti, "client_id", g->client->client_id);
    assert_non_null(p);
    if (g->cnf_jkt || g->cnf_x5t) {
        json_t *cnf = json_object();
        if (g->cnf_jkt) json_object_set_new(cnf, "jkt", json_string(g->cnf_jkt));
        if (g->cnf_x5t) json_object_set_new(cnf, "x5t#S256", json_string(g->cnf_x5t));
        json_object_set_new(p, "cnf", cnf);
    }
    if (g->scope && g->scope[0]) json_object_set_new(p, "scope", json_string(g->scope));
    char *out = json_dumps(p, JSON_COMPACT);
    json_decref(p);
    return out;
}

static void mint_matches(struct fx *fx, const pc_as_grant *g)
{
    const int64_t now = 1796410561;
    char *token = NULL, jti[32];
    size_t len = 0;
    assert_true(pc_ok(pc_as_mint(&fx->as, g, now, &token, &len, jti)));
    assert_int_equal(strlen(token), len);
    assert_int_equal(strlen(jti), 22); /* 128 bits, base64url */
    /* The payload part, decoded, is the old text exactly. */
    const char *a = strchr(token, '.') + 1, *b = strchr(a, '.');
    uint8_t pl[8192];
    size_t pl_len = 0;
    assert_true(pc_ok(pc_b64url_decode(a, (size_t)(b - a), pl, sizeof pl, &pl_len)));
    char *want = old_claims(&fx->as, g, now, jti);
    assert_int_equal(pl_len, strlen(want));
    assert_memory_equal(pl, want, pl_len);
    free(want);
    /* And it is one of our valid access tokens. */
    pc_jws jws;
    assert_true(pc_ok(pc_jws_parse((pc_str){token, len}, &jws)));
    assert_string_equal(jws.typ, "at+jwt");
    assert_string_equal(jws.kid, pc_keyring_active_kid(fx->as.keys));
    pc_jws_alg alg;
    EVP_PKEY *pub = pc_keyring_public(fx->as.keys, jws.kid, &alg);
    assert_non_null(pub);
    assert_true(pc_ok(pc_jws_verify(&jws, pub, PC_ALGS_FAPI)));
    pc_jws_clear(&jws);
    free(token);
}

static void test_mint_claims(void **state)
{
    struct fx *fx = *state;
    snprintf(fx->client.client_id, sizeof fx->client.client_id, "bench-jwt");
    pc_as_grant g = {.client = &fx->client, .scope = "accounts payments",
                     .aud = "https://api.example", .lifetime_s = 300};
    mint_matches(fx, &g); /* unbound (compat profile) */
    g.cnf_x5t = "nxFmNhxV7yoh-yVajh56VkTzC6cd9gOIGFcvQbKIeyk";
    mint_matches(fx, &g);
    g.cnf_x5t = NULL;
    g.cnf_jkt = "SLUbWb7Djs--w7pfuHeYpAM03YOvu8GWrgOQTBMG5-k";
    mint_matches(fx, &g);
    g.cnf_x5t = "nxFmNhxV7yoh-yVajh56VkTzC6cd9gOIGFcvQbKIeyk"; /* both */
    mint_matches(fx, &g);
    g.scope = ""; /* no scope member */
    mint_matches(fx, &g);
    g.scope = NULL;
    g.lifetime_s = 86400;
    mint_matches(fx, &g);
}

/* Values that need escaping, and non-ASCII, come out as jansson wrote
 * them. */
static void test_mint_escapes(void **state)
{
    struct fx *fx = *state;
    snprintf(fx->client.client_id, sizeof fx->client.client_id, "odd \"client\"\\/\t\xc3\xa9");
    fx->as.issuer = "https://as.example/t\xe2\x82\xac" "nant";
    pc_as_grant g = {.client = &fx->client, .scope = "a b/c", .aud = "urn:x\x7f",
                     .cnf_x5t = "x", .lifetime_s = 60};
    mint_matches(fx, &g);
    /* A long scope does not fit the stack buffer: the heap is used. */
    char scope[2049];
    memset(scope, 'a', sizeof scope - 1);
    scope[sizeof scope - 1] = '\0';
    g.scope = scope;
    mint_matches(fx, &g);
}

/* Invalid UTF-8 in a claim fails the mint (json_pack failed the same way
 * before), and nothing is returned. */
static void test_mint_refuses_bad_utf8(void **state)
{
    struct fx *fx = *state;
    snprintf(fx->client.client_id, sizeof fx->client.client_id, "bad\xff");
    pc_as_grant g = {.client = &fx->client, .scope = "a", .aud = "https://api.example",
                     .lifetime_s = 60};
    char *token = NULL, jti[32];
    size_t len = 0;
    assert_int_equal(pc_as_mint(&fx->as, &g, 1796410561, &token, &len, jti).err, PC_ERR_INTERNAL);
    assert_null(token);
}

static void mint_jti(struct fx *fx, char jti[32])
{
    pc_as_grant g = {.client = &fx->client, .scope = "a", .aud = "https://api.example",
                     .lifetime_s = 60};
    char *token = NULL;
    size_t len = 0;
    assert_true(pc_ok(pc_as_mint(&fx->as, &g, 1796410561, &token, &len, jti)));
    free(token);
}

/* jtis come from a per-thread batch of CSPRNG bytes: across several
 * refills, none repeats, and each is 22 base64url characters (128 bits). */
static void test_jti_unique(void **state)
{
    struct fx *fx = *state;
    snprintf(fx->client.client_id, sizeof fx->client.client_id, "c");
    enum { N = 200 };
    static char seen[N][32];
    for (int i = 0; i < N; i++) {
        mint_jti(fx, seen[i]);
        assert_int_equal(strlen(seen[i]), 22);
        for (int k = 0; k < i; k++) assert_string_not_equal(seen[i], seen[k]);
    }
}

/* A forked child does not reuse the bytes its parent drew: the child's
 * next jti differs from the parent's next one. */
static void test_jti_after_fork(void **state)
{
    struct fx *fx = *state;
    snprintf(fx->client.client_id, sizeof fx->client.client_id, "c");
    char first[32], parent[32], child[32] = "";
    mint_jti(fx, first); /* the batch is drawn; most of it is left */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        char j[32];
        mint_jti(fx, j);
        ssize_t w = write(fds[1], j, sizeof j);
        _exit(w == (ssize_t)sizeof j ? 0 : 1);
    }
    close(fds[1]);
    assert_int_equal(read(fds[0], child, sizeof child), (ssize_t)sizeof child);
    close(fds[0]);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    mint_jti(fx, parent);
    assert_int_equal(strlen(child), 22);
    assert_string_not_equal(parent, child);
    assert_string_not_equal(first, child);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_mint_claims),
        T(test_mint_escapes),
        T(test_mint_refuses_bad_utf8),
        T(test_jti_unique),
        T(test_jti_after_fork),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
