/* core/str.h: the word-at-a-time byte tests against a byte loop, over
 * words built from the values around every threshold they are used with. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/str.h"

static bool naive_less(uint64_t w, unsigned n)
{
    for (int i = 0; i < 8; i++)
        if (((w >> (8 * i)) & 0xff) < n) return true;
    return false;
}

static bool naive_byte(uint64_t w, unsigned char b)
{
    for (int i = 0; i < 8; i++)
        if (((w >> (8 * i)) & 0xff) == b) return true;
    return false;
}

static void test_word_tests_match_bytes(void **state)
{
    (void)state;
    static const unsigned char edge[] = {0x00, 0x01, 0x08, 0x09, 0x0a, 0x1f, 0x20, 0x21, 0x22,
                                         0x5b, 0x5c, 0x5d, 0x7e, 0x7f, 0x80, 0x81, 0x9f, 0xa0,
                                         0xfe, 0xff, 'a'};
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (int round = 0; round < 200000; round++) {
        uint64_t w = 0;
        for (int i = 0; i < 8; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w |= (uint64_t)edge[x % sizeof edge] << (8 * i);
        }
        assert_int_equal(pc_word_has_less(w, 0x20), naive_less(w, 0x20));
        assert_int_equal(pc_word_has_less(w, 1), naive_less(w, 1));
        assert_int_equal(pc_word_has_high(w), naive_less(~w, 0x80));
        for (size_t k = 0; k < sizeof edge; k++)
            assert_int_equal(pc_word_has_byte(w, edge[k]), naive_byte(w, edge[k]));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_word_tests_match_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
