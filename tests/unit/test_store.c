/* The SQLite store: schema and migration, each table's operations, file
 * mode, and the data_version signal a second connection's write raises. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "store/store.h"

#include <dirent.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- fixture: a fresh directory per test ------------------------------- */

struct fx {
    char dir[64];
    char path[128];
    pc_store *st;
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
    snprintf(fx->dir, sizeof fx->dir, "/tmp/pc_test_store_XXXXXX");
    if (mkdtemp(fx->dir) == NULL) return -1;
    snprintf(fx->path, sizeof fx->path, "%s/portcullis.db", fx->dir);
    if (!pc_ok(pc_store_open(fx->path, &fx->st))) return -1;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    pc_store_close(fx->st);
    remove_dir(fx->dir);
    free(fx);
    return 0;
}

static int user_version(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int v = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

/* ---- open and migrate -------------------------------------------------- */

static void test_open_mode_0600(void **state)
{
    struct fx *fx = *state;
    struct stat sb;
    assert_int_equal(stat(fx->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    /* The WAL file, once written, inherits the mode. */
    assert_true(pc_ok(pc_store_revoke(fx->st, "j", 10)));
    char wal[160];
    snprintf(wal, sizeof wal, "%s-wal", fx->path);
    assert_int_equal(stat(wal, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
}

static void test_open_tightens_existing_mode(void **state)
{
    struct fx *fx = *state;
    pc_store_close(fx->st);
    fx->st = NULL;
    assert_int_equal(chmod(fx->path, 0644), 0);
    assert_true(pc_ok(pc_store_open(fx->path, &fx->st)));
    struct stat sb;
    assert_int_equal(stat(fx->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
}

static void test_migrate_twice_idempotent(void **state)
{
    struct fx *fx = *state;
    assert_true(pc_ok(pc_store_client_put(fx->st, "c1", "{}", "cli")));
    pc_store_close(fx->st);
    fx->st = NULL;
    int v = user_version(fx->path);
    assert_true(v >= 1);
    /* Reopen twice: migration runs no step again and keeps the data. */
    for (int i = 0; i < 2; i++) {
        assert_true(pc_ok(pc_store_open(fx->path, &fx->st)));
        pc_store_close(fx->st);
        fx->st = NULL;
        assert_int_equal(user_version(fx->path), v);
    }
    assert_true(pc_ok(pc_store_open(fx->path, &fx->st)));
    pc_store_client *c = NULL;
    assert_true(pc_ok(pc_store_client_get(fx->st, "c1", &c)));
    pc_store_client_free(c);
}

static void test_newer_schema_refused(void **state)
{
    struct fx *fx = *state;
    pc_store_close(fx->st);
    fx->st = NULL;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 999", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    pc_result r = pc_store_open(fx->path, &fx->st);
    assert_false(pc_ok(r));
    assert_null(fx->st);
    assert_int_equal(r.err, PC_ERR_IO);
    assert_non_null(strstr(pc_errmsg(), "newer"));
    assert_non_null(strstr(pc_errmsg(), fx->path));
}

static void test_open_bad_path(void **state)
{
    (void)state;
    pc_store *st = NULL;
    pc_result r = pc_store_open("/nonexistent-dir-pc/x.db", &st);
    assert_false(pc_ok(r));
    assert_null(st);
    assert_int_equal(r.err, PC_ERR_IO);
    assert_non_null(strstr(pc_errmsg(), "store /nonexistent-dir-pc/x.db"));
    r = pc_store_open("", &st);
    assert_false(pc_ok(r));
}

static void test_open_not_a_database(void **state)
{
    struct fx *fx = *state;
    char p[160];
    snprintf(p, sizeof p, "%s/junk.db", fx->dir);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    for (int i = 0; i < 200; i++) fputs("this is not a database file at all ", f);
    fclose(f);
    pc_store *st = NULL;
    pc_result r = pc_store_open(p, &st);
    assert_false(pc_ok(r));
    assert_null(st);
    assert_non_null(strstr(pc_errmsg(), "store "));
}

/* ---- clients ------------------------------------------------------------- */

static void test_client_crud(void **state)
{
    struct fx *fx = *state;
    pc_store_client *c = NULL;
    pc_result r = pc_store_client_get(fx->st, "absent", &c);
    assert_int_equal(r.err, PC_ERR_DENY);
    assert_string_equal(pc_errmsg(), "unknown client");
    assert_null(c);

    assert_true(pc_ok(pc_store_client_put(fx->st, "b", "{\"client_id\":\"b\"}", "cli")));
    assert_true(pc_ok(pc_store_client_put(fx->st, "a", "{\"client_id\":\"a\"}", "config")));
    assert_true(pc_ok(pc_store_client_get(fx->st, "a", &c)));
    assert_string_equal(c->client_id, "a");
    assert_string_equal(c->metadata_json, "{\"client_id\":\"a\"}");
    assert_string_equal(c->source, "config");
    assert_true(c->created_at > 0);
    assert_int_equal(c->created_at, c->updated_at);
    int64_t created = c->created_at;
    pc_store_client_free(c);

    /* Put again replaces metadata and source, keeps created_at. */
    assert_true(pc_ok(pc_store_client_put(fx->st, "a", "{\"client_id\":\"a\",\"x\":1}", "cli")));
    assert_true(pc_ok(pc_store_client_get(fx->st, "a", &c)));
    assert_string_equal(c->metadata_json, "{\"client_id\":\"a\",\"x\":1}");
    assert_string_equal(c->source, "cli");
    assert_int_equal(c->created_at, created);
    pc_store_client_free(c);

    pc_store_client **list = NULL;
    size_t n = 0;
    assert_true(pc_ok(pc_store_client_list(fx->st, &list, &n)));
    assert_int_equal(n, 2);
    assert_string_equal(list[0]->client_id, "a"); /* ordered by id */
    assert_string_equal(list[1]->client_id, "b");
    for (size_t i = 0; i < n; i++) pc_store_client_free(list[i]);
    free(list);

    assert_true(pc_ok(pc_store_client_delete(fx->st, "a")));
    r = pc_store_client_delete(fx->st, "a");
    assert_int_equal(r.err, PC_ERR_DENY);
    assert_true(pc_ok(pc_store_client_list(fx->st, &list, &n)));
    assert_int_equal(n, 1);
    pc_store_client_free(list[0]);
    free(list);
}

static void test_client_list_empty_and_many(void **state)
{
    struct fx *fx = *state;
    pc_store_client **list = NULL;
    size_t n = 99;
    assert_true(pc_ok(pc_store_client_list(fx->st, &list, &n)));
    assert_int_equal(n, 0);
    free(list);
    /* More rows than the list's first allocation; SQL metacharacters in
     * values are only data. */
    for (int i = 0; i < 100; i++) {
        char id[32];
        snprintf(id, sizeof id, "c%03d'\";--", i);
        assert_true(pc_ok(pc_store_client_put(fx->st, id, "{}", "cli")));
    }
    assert_true(pc_ok(pc_store_client_list(fx->st, &list, &n)));
    assert_int_equal(n, 100);
    assert_string_equal(list[42]->client_id, "c042'\";--");
    for (size_t i = 0; i < n; i++) pc_store_client_free(list[i]);
    free(list);
}

/* ---- signing keys ---------------------------------------------------------- */

static void put_key(pc_store *st, const char *kid, pc_key_state state, int64_t created)
{
    uint8_t sealed[8] = {'p', 'c', 'k', '1', 0, 1, 2, 3};
    pc_store_key k = {.state = state, .created_at = created, .sealed = sealed,
                      .sealed_len = sizeof sealed, .public_jwk = (char *)"{\"kty\":\"OKP\"}"};
    snprintf(k.kid, sizeof k.kid, "%s", kid);
    snprintf(k.alg, sizeof k.alg, "ES256");
    assert_true(pc_ok(pc_store_key_put(st, &k)));
}

static pc_store_key *find_key(pc_store_key **list, size_t n, const char *kid)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i]->kid, kid) == 0) return list[i];
    return NULL;
}

static void free_keys(pc_store_key **list, size_t n)
{
    for (size_t i = 0; i < n; i++) pc_store_key_free(list[i]);
    free(list);
}

static void test_keys_crud_and_states(void **state)
{
    struct fx *fx = *state;
    put_key(fx->st, "k1", PC_KEY_ACTIVE, 100);
    put_key(fx->st, "k2", PC_KEY_NEXT, 200);
    put_key(fx->st, "k3", PC_KEY_NEXT, 200); /* same second: later insert first */

    /* A kid names one key for life. */
    uint8_t b = 1;
    pc_store_key dup = {.kid = "k1", .alg = "ES256", .sealed = &b, .sealed_len = 1,
                        .public_jwk = (char *)"{}"};
    pc_result r = pc_store_key_put(fx->st, &dup);
    assert_false(pc_ok(r));
    assert_non_null(strstr(pc_errmsg(), "already exists"));

    pc_store_key **list = NULL;
    size_t n = 0;
    assert_true(pc_ok(pc_store_key_list(fx->st, &list, &n)));
    assert_int_equal(n, 3);
    assert_string_equal(list[0]->kid, "k3"); /* newest first */
    assert_string_equal(list[1]->kid, "k2");
    assert_string_equal(list[2]->kid, "k1");
    assert_int_equal(list[2]->state, PC_KEY_ACTIVE);
    assert_string_equal(list[2]->alg, "ES256");
    assert_int_equal(list[2]->sealed_len, 8);
    assert_memory_equal(list[2]->sealed, "pck1", 4);
    assert_string_equal(list[2]->public_jwk, "{\"kty\":\"OKP\"}");
    free_keys(list, n);

    assert_true(pc_ok(pc_store_key_set_state(fx->st, "k1", PC_KEY_RETIRED, 100, 1000)));
    assert_true(pc_ok(pc_store_key_set_state(fx->st, "k2", PC_KEY_ACTIVE, 500, 0)));
    r = pc_store_key_set_state(fx->st, "nope", PC_KEY_ACTIVE, 1, 0);
    assert_int_equal(r.err, PC_ERR_DENY);
    assert_false(pc_ok(pc_store_key_set_state(fx->st, "k2", (pc_key_state)7, 1, 0)));

    assert_true(pc_ok(pc_store_key_list(fx->st, &list, &n)));
    pc_store_key *k1 = find_key(list, n, "k1"), *k2 = find_key(list, n, "k2");
    assert_int_equal(k1->state, PC_KEY_RETIRED);
    assert_int_equal(k1->activated_at, 100);
    assert_int_equal(k1->retire_after, 1000);
    assert_int_equal(k2->state, PC_KEY_ACTIVE);
    assert_int_equal(k2->activated_at, 500);
    free_keys(list, n);

    /* Purge removes only retired keys whose time has passed. */
    assert_true(pc_ok(pc_store_key_purge(fx->st, 999)));
    assert_true(pc_ok(pc_store_key_list(fx->st, &list, &n)));
    assert_int_equal(n, 3);
    free_keys(list, n);
    assert_true(pc_ok(pc_store_key_purge(fx->st, 1000)));
    assert_true(pc_ok(pc_store_key_list(fx->st, &list, &n)));
    assert_int_equal(n, 2);
    assert_null(find_key(list, n, "k1"));
    free_keys(list, n);
    /* Active and next keys are never purged, whatever the time. */
    assert_true(pc_ok(pc_store_key_purge(fx->st, INT64_MAX)));
    assert_true(pc_ok(pc_store_key_list(fx->st, &list, &n)));
    assert_int_equal(n, 2);
    free_keys(list, n);
}

static void test_key_put_refuses_incomplete(void **state)
{
    struct fx *fx = *state;
    pc_store_key k = {.kid = "", .alg = "ES256"};
    assert_false(pc_ok(pc_store_key_put(fx->st, &k)));
    snprintf(k.kid, sizeof k.kid, "x");
    assert_false(pc_ok(pc_store_key_put(fx->st, &k))); /* no sealed key */
}

static void test_transaction_rollback_and_commit(void **state)
{
    struct fx *fx = *state;
    assert_true(pc_ok(pc_store_begin(fx->st)));
    assert_false(pc_ok(pc_store_begin(fx->st))); /* not nestable */
    put_key(fx->st, "t1", PC_KEY_NEXT, 1);
    pc_store_rollback(fx->st);
    pc_store_key **list = NULL;
    size_t n = 0;
    assert_true(pc_ok(pc_store_key_list(fx->st, &list, &n)));
    assert_int_equal(n, 0);
    free_keys(list, n);

    assert_true(pc_ok(pc_store_begin(fx->st)));
    put_key(fx->st, "t2", PC_KEY_NEXT, 1);
    assert_true(pc_ok(pc_store_commit(fx->st)));
    assert_false(pc_ok(pc_store_commit(fx->st))); /* nothing open */
    pc_store_rollback(fx->st);                    /* harmless */
    assert_true(pc_ok(pc_store_key_list(fx->st, &list, &n)));
    assert_int_equal(n, 1);
    free_keys(list, n);
}

/* ---- revocations ------------------------------------------------------------ */

struct seen {
    char jti[8][16];
    int64_t exp[8];
    int n;
};

static void collect(const char *jti, int64_t exp, void *arg)
{
    struct seen *s = arg;
    if (s->n < 8) {
        snprintf(s->jti[s->n], sizeof s->jti[0], "%s", jti);
        s->exp[s->n] = exp;
    }
    s->n++;
}

static void test_revocations(void **state)
{
    struct fx *fx = *state;
    bool rev = true;
    assert_true(pc_ok(pc_store_is_revoked(fx->st, "a", &rev)));
    assert_false(rev);
    assert_true(pc_ok(pc_store_revoke(fx->st, "a", 100)));
    assert_true(pc_ok(pc_store_revoke(fx->st, "a", 100))); /* idempotent */
    assert_true(pc_ok(pc_store_revoke(fx->st, "a", 50)));  /* never shortens */
    assert_true(pc_ok(pc_store_revoke(fx->st, "b", 200)));
    assert_false(pc_ok(pc_store_revoke(fx->st, "", 200)));
    assert_true(pc_ok(pc_store_is_revoked(fx->st, "a", &rev)));
    assert_true(rev);

    struct seen s = {0};
    assert_true(pc_ok(pc_store_revoked_each(fx->st, 0, collect, &s)));
    assert_int_equal(s.n, 2);
    for (int i = 0; i < 2; i++)
        if (strcmp(s.jti[i], "a") == 0) assert_int_equal(s.exp[i], 100);

    /* Only unexpired ones: a token is expired at exp itself. */
    memset(&s, 0, sizeof s);
    assert_true(pc_ok(pc_store_revoked_each(fx->st, 100, collect, &s)));
    assert_int_equal(s.n, 1);
    assert_string_equal(s.jti[0], "b");

    assert_true(pc_ok(pc_store_revoke_purge(fx->st, 100)));
    assert_true(pc_ok(pc_store_is_revoked(fx->st, "a", &rev)));
    assert_false(rev);
    assert_true(pc_ok(pc_store_is_revoked(fx->st, "b", &rev)));
    assert_true(rev);
}

/* ---- a second connection ------------------------------------------------------ */

static void test_data_version_after_other_write(void **state)
{
    struct fx *fx = *state;
    int64_t v1 = 0, v2 = 0, v3 = 0;
    assert_true(pc_ok(pc_store_data_version(fx->st, &v1)));
    /* Our own writes do not move it (SQLite: only other connections'). */
    assert_true(pc_ok(pc_store_revoke(fx->st, "mine", 10)));
    assert_true(pc_ok(pc_store_data_version(fx->st, &v2)));
    assert_int_equal(v1, v2);

    pc_store *other = NULL;
    assert_true(pc_ok(pc_store_open(fx->path, &other)));
    assert_true(pc_ok(pc_store_client_put(other, "from-cli", "{}", "cli")));
    assert_true(pc_ok(pc_store_data_version(fx->st, &v3)));
    assert_true(v3 != v2);
    /* And the write is visible here. */
    pc_store_client *c = NULL;
    assert_true(pc_ok(pc_store_client_get(fx->st, "from-cli", &c)));
    pc_store_client_free(c);
    pc_store_close(other);
}

static void test_reader_not_blocked_by_writer(void **state)
{
    struct fx *fx = *state;
    pc_store *other = NULL;
    assert_true(pc_ok(pc_store_open(fx->path, &other)));
    /* A reader is never blocked by a writer in WAL mode. */
    assert_true(pc_ok(pc_store_begin(other)));
    bool rev = true;
    assert_true(pc_ok(pc_store_is_revoked(fx->st, "x", &rev)));
    pc_store_rollback(other);
    pc_store_close(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_mode_0600, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_tightens_existing_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_twice_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test(test_open_bad_path),
        cmocka_unit_test_setup_teardown(test_open_not_a_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_crud, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_list_empty_and_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_crud_and_states, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_put_refuses_incomplete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transaction_rollback_and_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revocations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_data_version_after_other_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reader_not_blocked_by_writer, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
