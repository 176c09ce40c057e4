/* GCRA rate limiter: quota, burst, refill, headers, fallback, eviction
 * that keeps a limited key limited, and exact counts across threads. All
 * on a clock the test controls. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "detect/ratelimit.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define SEC 1000000LL

static void test_quota_then_refill(void **state)
{
    (void)state;
    pc_ratelimit *rl = NULL;
    assert_true(pc_ok(pc_rl_new(1024, &rl)));
    pc_rl_policy p = {"per-client", 10, 60, 0}; /* 10 per minute, burst 10 */
    int64_t t = 1000 * SEC;
    for (int i = 0; i < 10; i++) {
        pc_rl_result r = pc_rl_check(rl, PC_STR("client-a"), &p, t);
        assert_true(r.allowed);
        assert_int_equal(r.remaining, 9 - i);
    }
    pc_rl_result r = pc_rl_check(rl, PC_STR("client-a"), &p, t);
    assert_false(r.allowed);
    assert_int_equal(r.remaining, 0);
    assert_int_equal(r.retry_after_s, 6); /* one request's share: 60 s / 10 */
    /* Another key is untouched. */
    assert_true(pc_rl_check(rl, PC_STR("client-b"), &p, t).allowed);
    /* After 6 s exactly one more is allowed; after the window, all again. */
    assert_true(pc_rl_check(rl, PC_STR("client-a"), &p, t + 6 * SEC).allowed);
    assert_false(pc_rl_check(rl, PC_STR("client-a"), &p, t + 6 * SEC).allowed);
    r = pc_rl_check(rl, PC_STR("client-a"), &p, t + 200 * SEC);
    assert_true(r.allowed);
    assert_int_equal(r.remaining, 9);
    pc_rl_free(rl);
}

static void test_burst_and_headers(void **state)
{
    (void)state;
    pc_ratelimit *rl = NULL;
    assert_true(pc_ok(pc_rl_new(1024, &rl)));
    pc_rl_policy p = {"tight", 100, 10, 5}; /* 10/s sustained, bursts of 5 */
    int64_t t = 50 * SEC;
    int allowed = 0;
    for (int i = 0; i < 20; i++) allowed += pc_rl_check(rl, PC_STR("k"), &p, t).allowed;
    assert_int_equal(allowed, 5);
    pc_rl_result r = pc_rl_check(rl, PC_STR("k"), &p, t + SEC);
    assert_true(r.allowed);
    char pol[64], st[64];
    pc_rl_format(&p, &r, pol, sizeof pol, st, sizeof st);
    assert_string_equal(pol, "\"tight\";q=100;w=10");
    char want[64];
    snprintf(want, sizeof want, "\"tight\";r=%u;t=%u", r.remaining, r.reset_s);
    assert_string_equal(st, want);
    pc_rl_free(rl);
}

static void test_bad_keys_fail_closed(void **state)
{
    (void)state;
    pc_ratelimit *rl = NULL;
    assert_true(pc_ok(pc_rl_new(1024, &rl)));
    pc_rl_policy p = {"x", 3, 60, 0};
    char big[PC_RL_MAX_KEY + 10];
    memset(big, 'a', sizeof big);
    int allowed = 0;
    /* Distinct over-long keys all land on one fallback bucket. */
    for (int i = 0; i < 10; i++) {
        big[0] = (char)('a' + i);
        pc_rl_result r = pc_rl_check(rl, (pc_str){big, sizeof big}, &p, 10 * SEC);
        assert_true(r.fallback);
        allowed += r.allowed;
    }
    assert_int_equal(allowed, 3);
    assert_false(pc_rl_check(rl, PC_STR(""), &p, 10 * SEC).allowed);
    pc_rl_free(rl);
}

static void test_eviction_keeps_limited_keys_limited(void **state)
{
    (void)state;
    /* A tiny table: 64 shards x 2 keys. */
    pc_ratelimit *rl = NULL;
    assert_true(pc_ok(pc_rl_new(64, &rl)));
    pc_rl_policy p = {"x", 5, 60, 0};
    int64_t t = 100 * SEC;
    for (int i = 0; i < 5; i++) assert_true(pc_rl_check(rl, PC_STR("abuser"), &p, t).allowed);
    assert_false(pc_rl_check(rl, PC_STR("abuser"), &p, t).allowed);
    /* Flood with fresh keys until the abuser has surely been evicted. */
    char k[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(k, sizeof k, "flood-%d", i);
        (void)pc_rl_check(rl, pc_str_c(k), &p, t);
    }
    assert_true(pc_rl_keys(rl) <= 64 * 2);
    /* Back again within the window: still refused, not a fresh bucket. */
    assert_false(pc_rl_check(rl, PC_STR("abuser"), &p, t + SEC).allowed);
    pc_rl_free(rl);
}

typedef struct {
    pc_ratelimit *rl;
    const pc_rl_policy *p;
    int allowed;
} targ;

static void *worker(void *a)
{
    targ *x = a;
    for (int i = 0; i < 500; i++) x->allowed += pc_rl_check(x->rl, PC_STR("shared"), x->p, 7 * SEC).allowed;
    return NULL;
}

static void test_threads_share_one_bucket(void **state)
{
    (void)state;
    /* A client spreading requests over worker threads gets its quota once. */
    pc_ratelimit *rl = NULL;
    assert_true(pc_ok(pc_rl_new(1024, &rl)));
    pc_rl_policy p = {"x", 100, 60, 0};
    pthread_t th[4];
    targ a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (targ){rl, &p, 0};
        pthread_create(&th[i], NULL, worker, &a[i]);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += a[i].allowed;
    }
    assert_int_equal(total, 100);
    pc_rl_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quota_then_refill),
        cmocka_unit_test(test_burst_and_headers),
        cmocka_unit_test(test_bad_keys_fail_closed),
        cmocka_unit_test(test_eviction_keeps_limited_keys_limited),
        cmocka_unit_test(test_threads_share_one_bucket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
