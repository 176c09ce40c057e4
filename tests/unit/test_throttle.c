/* Failure throttle: per-key counts in one-minute windows, fixed memory,
 * over-counting at worst. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "as/throttle.h"

#include <stdio.h>
#include <string.h>

static void test_counts_and_windows(void **state)
{
    (void)state;
    pc_throttle *t = NULL;
    assert_true(pc_ok(pc_throttle_new(&t)));
    const int64_t now = 1800000000 - 1800000000 % PC_THROTTLE_WINDOW_S + 5;
    for (int i = 0; i < 7; i++) pc_throttle_hit(t, PC_STR("client-a"), now);
    assert_int_equal(pc_throttle_count(t, PC_STR("client-a"), now), 7);
    assert_int_equal(pc_throttle_count(t, PC_STR("client-b"), now), 0);
    /* A new window starts from zero. */
    assert_int_equal(pc_throttle_count(t, PC_STR("client-a"), now + PC_THROTTLE_WINDOW_S), 0);
    assert_int_equal(pc_throttle_retry_after(now), PC_THROTTLE_WINDOW_S - 5);
    pc_throttle_free(t);
}

static void test_many_keys_never_undercount(void **state)
{
    (void)state;
    /* 100,000 keys in 2 x 4096 slots: collisions may over-count a key,
     * never under-count it, so a brute force is never let through. */
    pc_throttle *t = NULL;
    assert_true(pc_ok(pc_throttle_new(&t)));
    char k[32];
    for (int i = 0; i < 100000; i++) {
        snprintf(k, sizeof k, "ip-%d", i);
        pc_throttle_hit(t, pc_str_c(k), 100);
    }
    for (int i = 0; i < 100000; i += 997) {
        snprintf(k, sizeof k, "ip-%d", i);
        assert_true(pc_throttle_count(t, pc_str_c(k), 100) >= 1);
    }
    pc_throttle_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_and_windows),
        cmocka_unit_test(test_many_keys_never_undercount),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
