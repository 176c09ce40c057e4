/* core/str.h: the word-at-a-time byte tests against a byte loop, over
 * words built from the values around every threshold they are used with;
 * pc_field_value_ok on examples and against a byte loop at every offset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/str.h"

#include <string.h>

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

#define S(lit) ((pc_str){lit, sizeof lit - 1})

static void test_field_value_ok(void **state)
{
    (void)state;
    assert_true(pc_field_value_ok(S("")));
    assert_true(pc_field_value_ok(S("text/html; charset=utf-8")));
    assert_true(pc_field_value_ok(S("a\tb")));
    assert_true(pc_field_value_ok(S("caf\xc3\xa9"))); /* obs-text passes */
    assert_false(pc_field_value_ok(S("a\r\nX-Evil: 1")));
    assert_false(pc_field_value_ok(S("a\nb")));
    assert_false(pc_field_value_ok(S("a\x7f")));
    assert_false(pc_field_value_ok(S("\x01")));
    assert_false(pc_field_value_ok(S("a\0b"))); /* a NUL inside the length */
}

/* Every bad byte at every offset of values up to 40 bytes long, so both
 * the eight-at-a-time part and the tail are covered, against a byte loop. */
static void test_field_value_ok_matches_bytes(void **state)
{
    (void)state;
    static const unsigned char probe[] = {0x00, 0x01, 0x09, 0x0a, 0x0d, 0x1f, 0x20, 0x7e, 0x7f, 0x80, 0xff};
    char buf[40];
    for (size_t len = 1; len <= sizeof buf; len++) {
        for (size_t at = 0; at < len; at++) {
            for (size_t k = 0; k < sizeof probe; k++) {
                memset(buf, 'x', len);
                buf[at] = (char)probe[k];
                unsigned char c = probe[k];
                bool want = c == 0x09 || (c >= 0x20 && c != 0x7f);
                assert_int_equal(pc_field_value_ok((pc_str){buf, len}), want);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_word_tests_match_bytes),
        cmocka_unit_test(test_field_value_ok),
        cmocka_unit_test(test_field_value_ok_matches_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
