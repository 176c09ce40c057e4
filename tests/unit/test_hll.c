/* HyperLogLog and SipHash: exact counts in the small-set mode, a bounded
 * error in the dense mode, a cached estimate that moves only on change,
 * and SipHash against the reference vectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "detect/hll.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const uint64_t K[2] = {0x0706050403020100ull, 0x0f0e0d0c0b0a0908ull};

static void test_siphash_reference_vectors(void **state)
{
    (void)state;
    /* SipHash-2-4, key 00..0f, messages 00..(n-1): the paper's vectors. */
    unsigned char m[16];
    for (int i = 0; i < 16; i++) m[i] = (unsigned char)i;
    assert_true(pc_siphash(K, m, 0, 2, 4) == 0x726fdb47dd0e0e31ull);
    assert_true(pc_siphash(K, m, 1, 2, 4) == 0x74f839c593dc67fdull);
    assert_true(pc_siphash(K, m, 15, 2, 4) == 0xa129ca6149be45e5ull);
    /* The keyed hash depends on the key. */
    const uint64_t k2[2] = {1, 2};
    assert_true(pc_hash64(K, "abc", 3) != pc_hash64(k2, "abc", 3));
}

static void test_exact_mode_counts_exactly(void **state)
{
    (void)state;
    pc_hll h;
    pc_hll_clear(&h);
    assert_int_equal(pc_hll_count(&h), 0);
    char id[32];
    for (int i = 0; i < (int)PC_HLL_EXACT; i++) {
        snprintf(id, sizeof id, "id-%d", i);
        assert_true(pc_hll_add(&h, pc_hash64(K, id, strlen(id))));
        assert_int_equal(pc_hll_count(&h), i + 1);
        /* A repeat changes nothing. */
        assert_false(pc_hll_add(&h, pc_hash64(K, id, strlen(id))));
        assert_int_equal(pc_hll_count(&h), i + 1);
    }
    /* One more: dense mode, never below what was counted exactly. */
    (void)pc_hll_add(&h, pc_hash64(K, "one-more", 8));
    assert_true(h.n == PC_HLL_DENSE);
    assert_true(pc_hll_count(&h) >= PC_HLL_EXACT + 1);
    assert_true(pc_hll_count(&h) < 80);
    pc_hll_clear(&h);
    assert_int_equal(pc_hll_count(&h), 0);
}

static void test_dense_error_is_bounded(void **state)
{
    (void)state;
    /* Standard error 6.5%; allow 4 sigma (26%) at each size, and the mean
     * relative error over many sketches must be near zero (unbiased). */
    const unsigned sizes[] = {65, 100, 300, 1000, 5000, 50000, 500000};
    char id[32];
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        double sum_err = 0;
        int trials = sizes[si] > 10000 ? 3 : 40;
        for (int t = 0; t < trials; t++) {
            pc_hll h;
            pc_hll_clear(&h);
            for (unsigned i = 0; i < sizes[si]; i++) {
                snprintf(id, sizeof id, "%d/%u", t, i);
                (void)pc_hll_add(&h, pc_hash64(K, id, strlen(id)));
            }
            double err = ((double)pc_hll_count(&h) - sizes[si]) / sizes[si];
            assert_true(fabs(err) < 0.26);
            sum_err += err;
        }
        if (trials >= 40) assert_true(fabs(sum_err / trials) < 0.04);
    }
}

static void test_estimate_monotone_and_cached(void **state)
{
    (void)state;
    pc_hll h;
    pc_hll_clear(&h);
    char id[32];
    uint32_t prev = 0;
    for (int i = 0; i < 3000; i++) {
        snprintf(id, sizeof id, "m%d", i);
        uint64_t x = pc_hash64(K, id, strlen(id));
        uint32_t before = pc_hll_count(&h);
        bool changed = pc_hll_add(&h, x);
        if (!changed) assert_int_equal(pc_hll_count(&h), before);
        assert_true(pc_hll_count(&h) >= prev);
        prev = pc_hll_count(&h);
        /* Adding the same again never changes anything. */
        assert_false(pc_hll_add(&h, x));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_siphash_reference_vectors),
        cmocka_unit_test(test_exact_mode_counts_exactly),
        cmocka_unit_test(test_dense_error_is_bounded),
        cmocka_unit_test(test_estimate_monotone_and_cached),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
