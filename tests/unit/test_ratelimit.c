/* GCRA rate limiter: quota, burst, refill, headers, fallback, eviction
 * that keeps a limited key limited, exact counts across threads, peek,
 * and the bytes-per-key bound. All on a clock the test controls. */
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

static void test_peek_counts_nothing(void **state)
{
    (void)state;
    pc_ratelimit *rl = NULL;
    assert_true(pc_ok(pc_rl_new(1024, &rl)));
    pc_rl_policy p = {"fail", 3, 60, 0}; /* 3 a minute: one per 20 s */
    int64_t t = 500 * SEC;
    /* Looking at a fresh key: allowed, the whole quota left, no state made. */
    for (int i = 0; i < 10; i++) {
        pc_rl_result r = pc_rl_peek(rl, PC_STR("who"), &p, t);
        assert_true(r.allowed);
        assert_int_equal(r.remaining, 3);
        assert_false(r.fallback);
    }
    assert_int_equal(pc_rl_keys(rl), 0);
    /* Counting: each check takes one, a peek in between takes none. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pc_rl_peek(rl, PC_STR("who"), &p, t).remaining, 3 - i);
        assert_true(pc_rl_check(rl, PC_STR("who"), &p, t).allowed);
    }
    assert_int_equal(pc_rl_keys(rl), 1);
    /* Exhausted: peek refuses with the same retry_after as check, and
     * refusing again and again by peek moves nothing. */
    pc_rl_result r = pc_rl_peek(rl, PC_STR("who"), &p, t);
    assert_false(r.allowed);
    assert_int_equal(r.remaining, 0);
    assert_int_equal(r.retry_after_s, 20);
    pc_rl_result c = pc_rl_check(rl, PC_STR("who"), &p, t);
    assert_false(c.allowed);
    assert_int_equal(c.retry_after_s, 20);
    assert_int_equal(pc_rl_peek(rl, PC_STR("who"), &p, t + 5 * SEC).retry_after_s, 15);
    /* 20 s on, exactly one is allowed again: peek says so twice, and only
     * the check that follows uses it. */
    assert_true(pc_rl_peek(rl, PC_STR("who"), &p, t + 20 * SEC).allowed);
    r = pc_rl_peek(rl, PC_STR("who"), &p, t + 20 * SEC);
    assert_true(r.allowed);
    assert_int_equal(r.remaining, 1);
    assert_true(pc_rl_check(rl, PC_STR("who"), &p, t + 20 * SEC).allowed);
    assert_false(pc_rl_peek(rl, PC_STR("who"), &p, t + 20 * SEC).allowed);
    /* Unusable keys are looked up on the fallback bucket, also uncounted. */
    char big[PC_RL_MAX_KEY + 1];
    memset(big, 'z', sizeof big);
    for (int i = 0; i < 5; i++) {
        r = pc_rl_peek(rl, (pc_str){big, sizeof big}, &p, t);
        assert_true(r.fallback);
        assert_true(r.allowed);
    }
    assert_true(pc_rl_check(rl, (pc_str){big, sizeof big}, &p, t).allowed);
    assert_int_equal(pc_rl_peek(rl, PC_STR(""), &p, t).remaining, 2);
    pc_rl_free(rl);
}

static void test_peek_remembers_evicted_keys(void **state)
{
    (void)state;
    /* A key evicted while limited is seen as limited by peek too. */
    pc_ratelimit *rl = NULL;
    assert_true(pc_ok(pc_rl_new(64, &rl)));
    pc_rl_policy p = {"x", 2, 60, 0};
    int64_t t = 100 * SEC;
    for (int i = 0; i < 2; i++) assert_true(pc_rl_check(rl, PC_STR("abuser"), &p, t).allowed);
    char k[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(k, sizeof k, "flood-%d", i);
        (void)pc_rl_check(rl, pc_str_c(k), &p, t);
    }
    pc_rl_result r = pc_rl_peek(rl, PC_STR("abuser"), &p, t + SEC);
    assert_false(r.allowed);
    assert_int_equal(r.retry_after_s, 29);
    pc_rl_free(rl);
}

static void test_bytes_per_key(void **state)
{
    (void)state;
    /* The bound: at most 64 bytes of state per key at 1,000,000
     * keys, everything allocated counted (tests/memory/rl_memory.c checks
     * the same by RSS on the release build). */
    pc_ratelimit *rl = NULL;
    assert_true(pc_ok(pc_rl_new(1000000, &rl)));
    size_t b = pc_rl_bytes_per_key(rl);
    assert_true(b >= 32); /* an entry alone is 32 */
    assert_true(b <= 64);
    pc_rl_free(rl);
    assert_true(pc_ok(pc_rl_new(PC_RL_DEFAULT_KEYS, &rl)));
    assert_true(pc_rl_bytes_per_key(rl) <= 64);
    pc_rl_free(rl);
    /* A tiny table is dominated by the fixed parts, and says so. */
    assert_true(pc_ok(pc_rl_new(64, &rl)));
    assert_true(pc_rl_bytes_per_key(rl) > 64);
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

/* Threads over overlapping keys: each does NROUNDS rounds over all NSHARED
 * shared keys and one key of its own per round, in a thread-specific order,
 * all at one instant. */
#define NTHREADS 4
#define NSHARED 16
#define NROUNDS 200

typedef struct {
    pc_ratelimit *rl;
    const pc_rl_policy *p;
    int id;
    int shared_allowed[NSHARED];
    int own_refused;
} oarg;

static void *overlap_worker(void *a)
{
    oarg *x = a;
    char k[32];
    for (int r = 0; r < NROUNDS; r++) {
        for (int j = 0; j < NSHARED; j++) {
            int kj = (j * (x->id + 1) * 5 + r) % NSHARED; /* 5 and 16 coprime: a permutation */
            snprintf(k, sizeof k, "shared-%d", kj);
            x->shared_allowed[kj] += pc_rl_check(x->rl, pc_str_c(k), x->p, 9 * SEC).allowed;
        }
        snprintf(k, sizeof k, "own-%d-%d", x->id, r);
        x->own_refused += !pc_rl_check(x->rl, pc_str_c(k), x->p, 9 * SEC).allowed;
    }
    return NULL;
}

static void run_overlap(size_t max_keys, bool exact)
{
    pc_ratelimit *rl = NULL;
    assert_true(pc_ok(pc_rl_new(max_keys, &rl)));
    pc_rl_policy p = {"x", 50, 60, 0};
    pthread_t th[NTHREADS];
    oarg a[NTHREADS];
    memset(a, 0, sizeof a);
    for (int i = 0; i < NTHREADS; i++) {
        a[i].rl = rl;
        a[i].p = &p;
        a[i].id = i;
        assert_int_equal(pthread_create(&th[i], NULL, overlap_worker, &a[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int j = 0; j < NSHARED; j++) {
        int total = 0;
        for (int i = 0; i < NTHREADS; i++) total += a[i].shared_allowed[j];
        if (exact) assert_int_equal(total, 50);
        else assert_true(total <= 50);
    }
    if (exact)
        for (int i = 0; i < NTHREADS; i++) assert_int_equal(a[i].own_refused, 0);
    assert_true(pc_rl_keys(rl) <= (max_keys + 63) / 64 * 64);
    pc_rl_free(rl);
}

static void test_threads_overlapping_keys(void **state)
{
    (void)state;
    /* Room for every key: each shared key's quota is given out exactly
     * once, whichever threads asked; every thread's own keys pass. */
    run_overlap(1 << 16, true);
    /* A table far too small (64 keys for 816): keys are evicted and made
     * again under contention, and still none gets more than its quota. */
    run_overlap(64, false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quota_then_refill),
        cmocka_unit_test(test_burst_and_headers),
        cmocka_unit_test(test_bad_keys_fail_closed),
        cmocka_unit_test(test_eviction_keeps_limited_keys_limited),
        cmocka_unit_test(test_threads_share_one_bucket),
        cmocka_unit_test(test_threads_overlapping_keys),
        cmocka_unit_test(test_peek_counts_nothing),
        cmocka_unit_test(test_peek_remembers_evicted_keys),
        cmocka_unit_test(test_bytes_per_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
