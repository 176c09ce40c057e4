/* Signing keys: the KEK (file and environment, and every refusal), sealing
 * (round trip per algorithm; wrong kid, wrong KEK and a flipped byte fail),
 * the keyring (first run, JWKS, sign then verify) and rotation. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "as/keys.h"
#include "jose/b64url.h"
#include "jose/jwk.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HEX_A "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define HEX_B "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

/* ---- fixture: a temp dir with a store ------------------------------------ */

struct fx {
    char dir[64];
    char db[128];
    pc_store *st;
    pc_kek kek;
};

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof *fx);
    if (fx == NULL) return -1;
    snprintf(fx->dir, sizeof fx->dir, "/tmp/pc_test_keys_XXXXXX");
    if (mkdtemp(fx->dir) == NULL) return -1;
    snprintf(fx->db, sizeof fx->db, "%s/portcullis.db", fx->dir);
    if (!pc_ok(pc_store_open(fx->db, &fx->st))) return -1;
    for (size_t i = 0; i < PC_KEK_BYTES; i++) fx->kek.key[i] = (uint8_t)i;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    pc_store_close(fx->st);
    remove_dir(fx->dir);
    free(fx);
    unsetenv(PC_KEK_ENV);
    return 0;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(chmod(path, mode), 0);
}

static void file_in(char *out, size_t cap, const struct fx *fx, const char *name)
{
    snprintf(out, cap, "%s/%s", fx->dir, name);
}

/* ---- KEK ----------------------------------------------------------------- */

static void test_kek_file_ok(void **state)
{
    struct fx *fx = *state;
    char p[160];
    file_in(p, sizeof p, fx, "kek");
    pc_kek k;
    write_file(p, HEX_A "\n", 0600);
    assert_true(pc_ok(pc_kek_load(p, &k)));
    assert_memory_equal(k.key, fx->kek.key, PC_KEK_BYTES);
    write_file(p, HEX_A, 0400); /* no newline, read-only */
    assert_true(pc_ok(pc_kek_load(p, &k)));
    assert_memory_equal(k.key, fx->kek.key, PC_KEK_BYTES);
    pc_kek_wipe(&k);
    uint8_t zero[PC_KEK_BYTES] = {0};
    assert_memory_equal(k.key, zero, PC_KEK_BYTES);
}

static void test_kek_file_bad_mode(void **state)
{
    struct fx *fx = *state;
    char p[160];
    file_in(p, sizeof p, fx, "kek");
    pc_kek k;
    static const mode_t modes[] = {0640, 0604, 0660, 0644, 0610};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        write_file(p, HEX_A "\n", modes[i]);
        pc_result r = pc_kek_load(p, &k);
        assert_false(pc_ok(r));
        assert_non_null(strstr(pc_errmsg(), "chmod 600"));
        assert_null(strstr(pc_errmsg(), "0a0b")); /* never the key */
    }
}

static void test_kek_file_bad_content(void **state)
{
    struct fx *fx = *state;
    char p[160];
    file_in(p, sizeof p, fx, "kek");
    pc_kek k;
    static const char *const bad[] = {
        "",                              /* empty */
        "0001020304\n",                  /* short */
        HEX_A "00\n",                    /* long */
        HEX_A "\n\n",                    /* two newlines */
        HEX_A " ",                       /* trailing space */
        "zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", /* not hex */
        "0x0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(p, bad[i], 0600);
        pc_result r = pc_kek_load(p, &k);
        assert_false(pc_ok(r));
        assert_non_null(strstr(pc_errmsg(), p));
    }
    /* Missing file and a directory. */
    char missing[160];
    file_in(missing, sizeof missing, fx, "absent");
    assert_false(pc_ok(pc_kek_load(missing, &k)));
    assert_false(pc_ok(pc_kek_load(fx->dir, &k)));
}

static void test_kek_env(void **state)
{
    struct fx *fx = *state;
    pc_kek k;
    unsetenv(PC_KEK_ENV);
    pc_result r = pc_kek_load(NULL, &k);
    assert_int_equal(r.err, PC_ERR_USAGE);
    assert_non_null(strstr(pc_errmsg(), PC_KEK_ENV));
    setenv(PC_KEK_ENV, HEX_A, 1);
    assert_true(pc_ok(pc_kek_load(NULL, &k)));
    assert_memory_equal(k.key, fx->kek.key, PC_KEK_BYTES);
    setenv(PC_KEK_ENV, "abcd", 1);
    assert_false(pc_ok(pc_kek_load(NULL, &k)));
    setenv(PC_KEK_ENV, HEX_A "\n", 1);
    assert_false(pc_ok(pc_kek_load(NULL, &k)));
    char bad[] = HEX_A;
    bad[10] = 'g';
    setenv(PC_KEK_ENV, bad, 1);
    assert_false(pc_ok(pc_kek_load(NULL, &k)));
    /* The file wins over the environment. */
    char p[160];
    file_in(p, sizeof p, fx, "kek");
    write_file(p, HEX_B "\n", 0600);
    setenv(PC_KEK_ENV, HEX_A, 1);
    assert_true(pc_ok(pc_kek_load(p, &k)));
    assert_int_equal(k.key[0], 0xff);
}

static void test_kek_create(void **state)
{
    struct fx *fx = *state;
    char p[160];
    file_in(p, sizeof p, fx, "new.kek");
    assert_true(pc_ok(pc_kek_create(p)));
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(sb.st_size, 65);
    pc_kek a, b;
    assert_true(pc_ok(pc_kek_load(p, &a)));
    /* Refuses to overwrite. */
    pc_result r = pc_kek_create(p);
    assert_false(pc_ok(r));
    assert_non_null(strstr(pc_errmsg(), "exists"));
    assert_true(pc_ok(pc_kek_load(p, &b)));
    assert_memory_equal(a.key, b.key, PC_KEK_BYTES);
    /* Two new KEKs differ. */
    char q[160];
    file_in(q, sizeof q, fx, "other.kek");
    assert_true(pc_ok(pc_kek_create(q)));
    assert_true(pc_ok(pc_kek_load(q, &b)));
    assert_memory_not_equal(a.key, b.key, PC_KEK_BYTES);
    assert_false(pc_ok(pc_kek_create("/nonexistent-dir-pc/kek")));
}

/* ---- seal / unseal ------------------------------------------------------------ */

static EVP_PKEY *gen(pc_jws_alg alg)
{
    EVP_PKEY *k = NULL;
    if (alg == PC_ALG_ES256) k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (alg == PC_ALG_PS256) k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    if (alg == PC_ALG_EDDSA) k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_non_null(k);
    return k;
}

static void seal_round_trip(struct fx *fx, pc_jws_alg alg)
{
    EVP_PKEY *k = gen(alg);
    uint8_t *sealed = NULL;
    size_t len = 0;
    assert_true(pc_ok(pc_key_seal(&fx->kek, "kid-1", k, &sealed, &len)));
    assert_true(len > 4 + 12 + 16);
    assert_memory_equal(sealed, "pck1", 4);

    EVP_PKEY *back = NULL;
    assert_true(pc_ok(pc_key_unseal(&fx->kek, "kid-1", sealed, len, &back)));
    assert_int_equal(EVP_PKEY_eq(k, back), 1);
    assert_int_equal(pc_jwk_pkey_type(back), pc_jwk_pkey_type(k));
    EVP_PKEY_free(back);

    /* Wrong kid: the AAD differs. */
    back = NULL;
    pc_result r = pc_key_unseal(&fx->kek, "kid-2", sealed, len, &back);
    assert_int_equal(r.err, PC_ERR_CRYPTO);
    assert_null(back);
    /* Wrong KEK. */
    pc_kek other = fx->kek;
    other.key[31] ^= 1;
    assert_false(pc_ok(pc_key_unseal(&other, "kid-1", sealed, len, &back)));
    assert_null(back);
    /* Every byte flipped in turn fails (magic, nonce, ciphertext, tag). */
    for (size_t i = 0; i < len; i++) {
        sealed[i] ^= 0x01;
        assert_false(pc_ok(pc_key_unseal(&fx->kek, "kid-1", sealed, len, &back)));
        assert_null(back);
        sealed[i] ^= 0x01;
    }
    /* Truncated. */
    assert_false(pc_ok(pc_key_unseal(&fx->kek, "kid-1", sealed, len - 1, &back)));
    assert_false(pc_ok(pc_key_unseal(&fx->kek, "kid-1", sealed, 4 + 12 + 16, &back)));
    assert_false(pc_ok(pc_key_unseal(&fx->kek, "kid-1", NULL, 0, &back)));
    /* Two seals of one key differ (fresh nonce). */
    uint8_t *again = NULL;
    size_t len2 = 0;
    assert_true(pc_ok(pc_key_seal(&fx->kek, "kid-1", k, &again, &len2)));
    assert_int_equal(len, len2);
    assert_memory_not_equal(sealed, again, len);
    free(again);
    free(sealed);
    EVP_PKEY_free(k);
}

static void test_seal_es256(void **state) { seal_round_trip(*state, PC_ALG_ES256); }
static void test_seal_ps256(void **state) { seal_round_trip(*state, PC_ALG_PS256); }
static void test_seal_eddsa(void **state) { seal_round_trip(*state, PC_ALG_EDDSA); }

/* ---- keyring ------------------------------------------------------------------ */

static void free_list(pc_store_key **l, size_t n)
{
    for (size_t i = 0; i < n; i++) pc_store_key_free(l[i]);
    free(l);
}

static const pc_store_key *with_state(pc_store_key **l, size_t n, pc_key_state s, size_t *count)
{
    const pc_store_key *found = NULL;
    *count = 0;
    for (size_t i = 0; i < n; i++)
        if (l[i]->state == s) {
            found = l[i];
            (*count)++;
        }
    return found;
}

static bool jwks_has_kid(const char *jwks, const char *kid)
{
    json_t *set = json_loads(jwks, 0, NULL);
    assert_non_null(set);
    bool found = false;
    size_t i;
    json_t *k;
    json_array_foreach(json_object_get(set, "keys"), i, k)
    {
        if (strcmp(json_string_value(json_object_get(k, "kid")), kid) == 0) found = true;
    }
    json_decref(set);
    return found;
}

/* Every JWK has kid, use "sig", alg, and no private member. */
static size_t check_jwks(const char *jwks, size_t len, const char *alg)
{
    assert_int_equal(strlen(jwks), len);
    json_t *set = json_loads(jwks, 0, NULL);
    assert_non_null(set);
    json_t *keys = json_object_get(set, "keys");
    assert_true(json_is_array(keys));
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k)
    {
        assert_true(json_is_string(json_object_get(k, "kid")));
        assert_string_equal(json_string_value(json_object_get(k, "use")), "sig");
        assert_string_equal(json_string_value(json_object_get(k, "alg")), alg);
        static const char *const priv[] = {"d", "p", "q", "dp", "dq", "qi", "k"};
        for (size_t j = 0; j < sizeof priv / sizeof priv[0]; j++)
            assert_null(json_object_get(k, priv[j]));
        /* It parses as a public JWK. */
        pc_jwk jwk;
        assert_true(pc_ok(pc_jwk_from_json(k, PC_JWK_PUBLIC_ONLY, &jwk)));
        pc_jwk_clear(&jwk);
    }
    size_t n = json_array_size(keys);
    json_decref(set);
    return n;
}

static void sign_and_verify(const pc_keyring *kr, pc_jws_alg alg)
{
    static const char claims[] = "{\"sub\":\"client-1\",\"exp\":2000000000}";
    char *jws = NULL;
    size_t len = 0;
    assert_true(pc_ok(
        pc_keyring_sign_access_token(kr, claims, sizeof claims - 1, &jws, &len)));
    assert_int_equal(strlen(jws), len);
    pc_jws parsed;
    assert_true(pc_ok(pc_jws_parse((pc_str){jws, len}, &parsed)));
    /* The claims are signed as given, byte for byte. */
    const char *dot = strchr(jws, '.');
    uint8_t pl[128];
    size_t pl_len = 0;
    assert_true(pc_ok(pc_b64url_decode(dot + 1, (size_t)(strchr(dot + 1, '.') - dot - 1), pl,
                                       sizeof pl, &pl_len)));
    assert_int_equal(pl_len, sizeof claims - 1);
    assert_memory_equal(pl, claims, pl_len);
    assert_int_equal(json_integer_value(json_object_get(parsed.payload, "exp")), 2000000000);
    assert_int_equal(parsed.alg, alg);
    assert_string_equal(parsed.kid, pc_keyring_active_kid(kr));
    assert_string_equal(parsed.typ, "at+jwt");
    pc_jws_alg kalg = PC_ALG_UNKNOWN;
    EVP_PKEY *pub = pc_keyring_public(kr, parsed.kid, &kalg);
    assert_non_null(pub);
    assert_int_equal(kalg, alg);
    assert_true(pc_ok(pc_jws_verify(&parsed, pub, PC_ALGS_FAPI)));
    pc_jws_clear(&parsed);

    /* And with the key as published in the JWKS (what outsiders use). */
    size_t jlen = 0;
    json_t *set = json_loads(pc_keyring_jwks_json(kr, &jlen), 0, NULL);
    pc_jwks keys;
    assert_true(pc_ok(pc_jwks_from_json(set, &keys)));
    const pc_jwk *k = pc_jwks_find(&keys, pc_keyring_active_kid(kr));
    assert_non_null(k);
    assert_true(pc_ok(pc_jws_parse((pc_str){jws, len}, &parsed)));
    assert_true(pc_ok(pc_jws_verify(&parsed, k->pkey, PC_ALGS_FAPI)));
    pc_jws_clear(&parsed);
    pc_jwks_clear(&keys);
    json_decref(set);
    free(jws);
}

static void first_run(struct fx *fx, pc_jws_alg alg)
{
    pc_keyring *kr = NULL;
    assert_true(pc_ok(pc_keyring_load(fx->st, &fx->kek, alg, &kr)));
    pc_store_key **l = NULL;
    size_t n = 0, count = 0;
    assert_true(pc_ok(pc_store_key_list(fx->st, &l, &n)));
    assert_int_equal(n, 2);
    const pc_store_key *active = with_state(l, n, PC_KEY_ACTIVE, &count);
    assert_int_equal(count, 1);
    const pc_store_key *next = with_state(l, n, PC_KEY_NEXT, &count);
    assert_int_equal(count, 1);
    assert_string_equal(pc_keyring_active_kid(kr), active->kid);
    assert_int_equal(strlen(active->kid), 22); /* base64url of 16 bytes */
    assert_string_equal(active->alg, pc_jws_alg_name(alg));
    assert_true(active->activated_at > 0);
    assert_int_equal(next->activated_at, 0);

    size_t len = 0;
    const char *jwks = pc_keyring_jwks_json(kr, &len);
    assert_int_equal(check_jwks(jwks, len, pc_jws_alg_name(alg)), 2);
    assert_true(jwks_has_kid(jwks, active->kid));
    assert_true(jwks_has_kid(jwks, next->kid));
    assert_non_null(pc_keyring_public(kr, next->kid, NULL));
    assert_null(pc_keyring_public(kr, "nope", NULL));
    assert_null(pc_keyring_public(kr, NULL, NULL));
    sign_and_verify(kr, alg);
    free_list(l, n);
    pc_keyring_free(kr);

    /* A second load makes nothing new and signs with the same key. */
    assert_true(pc_ok(pc_keyring_load(fx->st, &fx->kek, alg, &kr)));
    assert_true(pc_ok(pc_store_key_list(fx->st, &l, &n)));
    assert_int_equal(n, 2);
    const pc_store_key *a2 = with_state(l, n, PC_KEY_ACTIVE, &count);
    assert_string_equal(pc_keyring_active_kid(kr), a2->kid);
    free_list(l, n);
    pc_keyring_free(kr);
}

static void test_keyring_first_run_es256(void **state) { first_run(*state, PC_ALG_ES256); }
static void test_keyring_first_run_ps256(void **state) { first_run(*state, PC_ALG_PS256); }
static void test_keyring_first_run_eddsa(void **state) { first_run(*state, PC_ALG_EDDSA); }

static void test_keyring_wrong_kek_keeps_nothing(void **state)
{
    struct fx *fx = *state;
    pc_keyring *kr = NULL;
    assert_true(pc_ok(pc_keyring_load(fx->st, &fx->kek, PC_ALG_ES256, &kr)));
    pc_keyring_free(kr);
    pc_kek other = fx->kek;
    other.key[0] ^= 0x80;
    kr = NULL;
    pc_result r = pc_keyring_load(fx->st, &other, PC_ALG_ES256, &kr);
    assert_int_equal(r.err, PC_ERR_CRYPTO);
    assert_null(kr);
    assert_non_null(strstr(pc_errmsg(), "wrong KEK"));
    /* Rotation with the wrong KEK changes nothing either. */
    pc_store_key **before = NULL, **after = NULL;
    size_t nb = 0, na = 0;
    assert_true(pc_ok(pc_store_key_list(fx->st, &before, &nb)));
    assert_false(pc_ok(pc_keys_rotate(fx->st, &other, PC_ALG_ES256, 300, 10, time(NULL))));
    assert_true(pc_ok(pc_store_key_list(fx->st, &after, &na)));
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++) {
        assert_string_equal(after[i]->kid, before[i]->kid);
        assert_int_equal(after[i]->state, before[i]->state);
    }
    free_list(before, nb);
    free_list(after, na);
}

static void test_keyring_promotes_next_when_none_active(void **state)
{
    struct fx *fx = *state;
    pc_keyring *kr = NULL;
    assert_true(pc_ok(pc_keyring_load(fx->st, &fx->kek, PC_ALG_EDDSA, &kr)));
    char old_active[64];
    snprintf(old_active, sizeof old_active, "%s", pc_keyring_active_kid(kr));
    pc_keyring_free(kr);
    pc_store_key **l = NULL;
    size_t n = 0, count = 0;
    assert_true(pc_ok(pc_store_key_list(fx->st, &l, &n)));
    char next_kid[64];
    snprintf(next_kid, sizeof next_kid, "%s", with_state(l, n, PC_KEY_NEXT, &count)->kid);
    free_list(l, n);
    /* Retire the active key by hand (already past its time). */
    assert_true(pc_ok(pc_store_key_set_state(fx->st, old_active, PC_KEY_RETIRED, 1, 2)));
    assert_true(pc_ok(pc_keyring_load(fx->st, &fx->kek, PC_ALG_EDDSA, &kr)));
    assert_string_equal(pc_keyring_active_kid(kr), next_kid);
    /* The expired retired key is not published; a fresh NEXT is. */
    size_t len = 0;
    const char *jwks = pc_keyring_jwks_json(kr, &len);
    assert_false(jwks_has_kid(jwks, old_active));
    assert_int_equal(check_jwks(jwks, len, "EdDSA"), 2);
    assert_null(pc_keyring_public(kr, old_active, NULL));
    pc_keyring_free(kr);
}

static void test_keyring_refuses_swapped_public_jwk(void **state)
{
    struct fx *fx = *state;
    pc_keyring *kr = NULL;
    assert_true(pc_ok(pc_keyring_load(fx->st, &fx->kek, PC_ALG_ES256, &kr)));
    pc_keyring_free(kr);
    /* Someone with write access to the store replaces the published key
     * of the active kid with one of their own: the load must notice. */
    pc_store_key **l = NULL;
    size_t n = 0, count = 0;
    assert_true(pc_ok(pc_store_key_list(fx->st, &l, &n)));
    const pc_store_key *active = with_state(l, n, PC_KEY_ACTIVE, &count);
    EVP_PKEY *evil = gen(PC_ALG_ES256);
    json_t *jwk = NULL;
    assert_true(pc_ok(pc_jwk_public_json(evil, active->kid, "ES256", "sig", &jwk)));
    pc_store_key copy = *active;
    copy.public_jwk = json_dumps(jwk, JSON_COMPACT);
    json_decref(jwk);
    EVP_PKEY_free(evil);
    /* Replace the row: delete by purge after retiring, then put. */
    assert_true(pc_ok(pc_store_key_set_state(fx->st, copy.kid, PC_KEY_RETIRED, 1, 1)));
    assert_true(pc_ok(pc_store_key_purge(fx->st, 1)));
    assert_true(pc_ok(pc_store_key_put(fx->st, &copy)));
    free(copy.public_jwk);
    free_list(l, n);
    pc_result r = pc_keyring_load(fx->st, &fx->kek, PC_ALG_ES256, &kr);
    assert_false(pc_ok(r));
    assert_null(kr);
    assert_non_null(strstr(pc_errmsg(), "does not match"));
}

/* ---- rotation ------------------------------------------------------------------ */

static void test_rotate(void **state)
{
    struct fx *fx = *state;
    pc_keyring *kr = NULL;
    assert_true(pc_ok(pc_keyring_load(fx->st, &fx->kek, PC_ALG_ES256, &kr)));
    char a1[64], n1[64];
    snprintf(a1, sizeof a1, "%s", pc_keyring_active_kid(kr));
    pc_keyring_free(kr);
    pc_store_key **l = NULL;
    size_t n = 0, count = 0;
    assert_true(pc_ok(pc_store_key_list(fx->st, &l, &n)));
    snprintf(n1, sizeof n1, "%s", with_state(l, n, PC_KEY_NEXT, &count)->kid);
    free_list(l, n);

    int64_t now = (int64_t)time(NULL);
    assert_true(pc_ok(pc_keys_rotate(fx->st, &fx->kek, PC_ALG_ES256, 3600, 10, now)));
    assert_true(pc_ok(pc_store_key_list(fx->st, &l, &n)));
    assert_int_equal(n, 3);
    const pc_store_key *act = with_state(l, n, PC_KEY_ACTIVE, &count);
    assert_int_equal(count, 1);
    assert_string_equal(act->kid, n1); /* NEXT became ACTIVE */
    assert_int_equal(act->activated_at, now);
    const pc_store_key *ret = with_state(l, n, PC_KEY_RETIRED, &count);
    assert_int_equal(count, 1);
    assert_string_equal(ret->kid, a1); /* old ACTIVE retired */
    assert_int_equal(ret->retire_after, now + 3600 + 10);
    const pc_store_key *nx = with_state(l, n, PC_KEY_NEXT, &count);
    assert_int_equal(count, 1); /* a third key */
    assert_string_not_equal(nx->kid, a1);
    assert_string_not_equal(nx->kid, n1);
    char n2[64];
    snprintf(n2, sizeof n2, "%s", nx->kid);
    free_list(l, n);

    /* The reloaded keyring signs with the new key and still publishes the
     * retired one, so tokens it signed keep verifying. */
    assert_true(pc_ok(pc_keyring_load(fx->st, &fx->kek, PC_ALG_ES256, &kr)));
    assert_string_equal(pc_keyring_active_kid(kr), n1);
    size_t len = 0;
    const char *jwks = pc_keyring_jwks_json(kr, &len);
    assert_int_equal(check_jwks(jwks, len, "ES256"), 3);
    assert_true(jwks_has_kid(jwks, a1));
    assert_true(jwks_has_kid(jwks, n1));
    assert_true(jwks_has_kid(jwks, n2));
    pc_jws_alg alg;
    assert_non_null(pc_keyring_public(kr, a1, &alg));
    sign_and_verify(kr, PC_ALG_ES256);
    pc_keyring_free(kr);

    /* Rotating again after retire_after has passed purges the old key. */
    int64_t later = now + 3600 + 10;
    assert_true(pc_ok(pc_keys_rotate(fx->st, &fx->kek, PC_ALG_ES256, 3600, 10, later)));
    assert_true(pc_ok(pc_store_key_list(fx->st, &l, &n)));
    assert_int_equal(n, 3); /* n1 retired, n2 active, a new next; a1 gone */
    for (size_t i = 0; i < n; i++) assert_string_not_equal(l[i]->kid, a1);
    assert_string_equal(with_state(l, n, PC_KEY_ACTIVE, &count)->kid, n2);
    assert_string_equal(with_state(l, n, PC_KEY_RETIRED, &count)->kid, n1);
    free_list(l, n);
}

static void test_rotate_alg_change_takes_two(void **state)
{
    struct fx *fx = *state;
    pc_keyring *kr = NULL;
    assert_true(pc_ok(pc_keyring_load(fx->st, &fx->kek, PC_ALG_ES256, &kr)));
    pc_keyring_free(kr);
    int64_t now = (int64_t)time(NULL);
    assert_true(pc_ok(pc_keys_rotate(fx->st, &fx->kek, PC_ALG_EDDSA, 300, 10, now)));
    assert_true(pc_ok(pc_keyring_load(fx->st, &fx->kek, PC_ALG_EDDSA, &kr)));
    pc_jws_alg alg;
    assert_non_null(pc_keyring_public(kr, pc_keyring_active_kid(kr), &alg));
    assert_int_equal(alg, PC_ALG_ES256); /* the pre-published key */
    sign_and_verify(kr, PC_ALG_ES256);
    pc_keyring_free(kr);
    assert_true(pc_ok(pc_keys_rotate(fx->st, &fx->kek, PC_ALG_EDDSA, 300, 10, now + 1)));
    assert_true(pc_ok(pc_keyring_load(fx->st, &fx->kek, PC_ALG_EDDSA, &kr)));
    sign_and_verify(kr, PC_ALG_EDDSA);
    pc_keyring_free(kr);
}

static void test_rotate_empty_store(void **state)
{
    struct fx *fx = *state;
    int64_t now = (int64_t)time(NULL);
    assert_true(pc_ok(pc_keys_rotate(fx->st, &fx->kek, PC_ALG_PS256, 300, 10, now)));
    pc_store_key **l = NULL;
    size_t n = 0, count = 0;
    assert_true(pc_ok(pc_store_key_list(fx->st, &l, &n)));
    assert_int_equal(n, 2);
    assert_non_null(with_state(l, n, PC_KEY_ACTIVE, &count));
    assert_non_null(with_state(l, n, PC_KEY_NEXT, &count));
    free_list(l, n);
    assert_false(pc_ok(pc_keys_rotate(fx->st, &fx->kek, PC_ALG_RS256, 300, 10, now)));
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_kek_file_ok),
        T(test_kek_file_bad_mode),
        T(test_kek_file_bad_content),
        T(test_kek_env),
        T(test_kek_create),
        T(test_seal_es256),
        T(test_seal_ps256),
        T(test_seal_eddsa),
        T(test_keyring_first_run_es256),
        T(test_keyring_first_run_ps256),
        T(test_keyring_first_run_eddsa),
        T(test_keyring_wrong_kek_keeps_nothing),
        T(test_keyring_promotes_next_when_none_active),
        T(test_keyring_refuses_swapped_public_jwk),
        T(test_rotate),
        T(test_rotate_alg_change_takes_two),
        T(test_rotate_empty_store),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
