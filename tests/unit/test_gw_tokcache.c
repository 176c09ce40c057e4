/* Unit tests for the gateway's per-worker verified-token cache
 * (src/gw/tokcache.c): hits, expiry, generations, slot replacement,
 * reference counting and per-thread isolation. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "gw/tokcache.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define NOW 1700000000

/* By token, as the gateway does: the key is the token's SHA-256. */
static bool cache_get(uint64_t gen, pc_str token, int64_t now, json_t **claims)
{
    uint8_t key[32];
    *claims = NULL;
    return pc_gw_token_sha256(token, key) && pc_gw_tokcache_get_key(gen, key, now, claims);
}

static void cache_put(uint64_t gen, pc_str token, int64_t exp, json_t *claims)
{
    uint8_t key[32];
    assert_true(pc_gw_token_sha256(token, key));
    pc_gw_tokcache_put_key(gen, key, exp, claims);
}

static void test_hit_and_miss(void **state)
{
    (void)state;
    json_t *claims = json_pack("{s:s, s:I}", "jti", "j1", "exp", (json_int_t)(NOW + 60));
    json_t *got = NULL;
    assert_false(cache_get(1, PC_STR("tok-a"), NOW, &got));
    assert_null(got);
    cache_put(1, PC_STR("tok-a"), NOW + 60, claims);
    assert_true(cache_get(1, PC_STR("tok-a"), NOW, &got));
    assert_ptr_equal(got, claims);
    json_decref(got);
    /* a token differing in one byte, or a prefix, misses */
    assert_false(cache_get(1, PC_STR("tok-b"), NOW, &got));
    assert_false(cache_get(1, PC_STR("tok-"), NOW, &got));
    /* another runtime generation misses; 0 never hits */
    assert_false(cache_get(2, PC_STR("tok-a"), NOW, &got));
    assert_false(cache_get(0, PC_STR("tok-a"), NOW, &got));
    /* expiry: exp is the first second the token is no longer valid */
    assert_true(cache_get(1, PC_STR("tok-a"), NOW + 59, &got));
    json_decref(got);
    assert_false(cache_get(1, PC_STR("tok-a"), NOW + 60, &got));
    assert_int_equal(pc_gw_tokcache_count(NOW), 1);
    assert_int_equal(pc_gw_tokcache_count(NOW + 60), 0);
    json_decref(claims); /* the cache holds its own reference */
    assert_true(cache_get(1, PC_STR("tok-a"), NOW, &got));
    assert_string_equal(json_string_value(json_object_get(got, "jti")), "j1");
    json_decref(got);
}

static void test_bounded_replacement(void **state)
{
    (void)state;
    json_t *claims = json_object();
    char tok[32];
    for (unsigned i = 0; i < 3 * PC_GW_TOKEN_CACHE_SLOTS; i++) {
        snprintf(tok, sizeof tok, "token-%u", i);
        cache_put(7, pc_str_c(tok), NOW + 100, claims);
    }
    assert_true(pc_gw_tokcache_count(NOW) <= PC_GW_TOKEN_CACHE_SLOTS);
    /* the last one put is always there */
    json_t *got = NULL;
    assert_true(cache_get(7, pc_str_c(tok), NOW, &got));
    json_decref(got);
    json_decref(claims);
}

static void test_put_ignores_bad_input(void **state)
{
    (void)state;
    json_t *got = NULL;
    json_t *c = json_object();
    cache_put(0, PC_STR("gen0"), NOW + 10, c);
    json_decref(c);
    cache_put(3, PC_STR("noclaims"), NOW + 10, NULL);
    assert_false(cache_get(0, PC_STR("gen0"), NOW, &got));
    assert_false(cache_get(3, PC_STR("noclaims"), NOW, &got));
}

static void *other_thread(void *arg)
{
    json_t *got = NULL;
    /* per worker: another thread does not see this thread's entries */
    *(bool *)arg = cache_get(1, PC_STR("tok-a"), NOW, &got);
    json_decref(got);
    json_t *c = json_object();
    cache_put(1, PC_STR("thread-tok"), NOW + 5, c);
    json_decref(c);
    return NULL; /* the thread's cache is freed by its destructor */
}

static void test_per_thread(void **state)
{
    (void)state;
    json_t *c = json_object();
    cache_put(1, PC_STR("tok-a"), NOW + 60, c);
    json_decref(c);
    bool seen = true;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, other_thread, &seen), 0);
    pthread_join(t, NULL);
    assert_false(seen);
    json_t *got = NULL;
    assert_false(cache_get(1, PC_STR("thread-tok"), NOW, &got));
}

static void *run_all(void *arg)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_and_miss),
        cmocka_unit_test(test_bounded_replacement),
        cmocka_unit_test(test_put_ignores_bad_input),
        cmocka_unit_test(test_per_thread),
    };
    *(int *)arg = cmocka_run_group_tests(tests, NULL, NULL);
    return NULL;
}

int main(void)
{
    /* The tests run on a thread of their own, like a worker: its cache is
     * freed by the thread-exit destructor, which the leak checker sees. */
    int rc = 1;
    pthread_t t;
    if (pthread_create(&t, NULL, run_all, &rc) != 0) return 1;
    pthread_join(t, NULL);
    return rc;
}
