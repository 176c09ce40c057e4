/* Direct JSON text (jose/jsonw.h): every string, integer and refusal is
 * checked against what jansson makes of the same value, since the access
 * token claims must stay byte for byte what json_dumps produced. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "jose/jsonw.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What jansson says of n bytes: NULL if json_stringn refuses them (invalid
 * UTF-8), else the dumped string (caller frees). */
static char *jansson_text(const char *s, size_t n)
{
    json_t *v = json_stringn(s, n);
    if (v == NULL) return NULL;
    char *out = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(v);
    assert_non_null(out);
    return out;
}

/* Ours and jansson's agree on s: the same text, or both refuse. */
static void same_as_jansson(const char *s, size_t n)
{
    char buf[PC_JSONW_STRING_MAX(64) + 1];
    assert_true(n <= 64);
    pc_jsonw w;
    pc_jsonw_init(&w, buf, sizeof buf);
    pc_jsonw_string(&w, s, n);
    char *want = jansson_text(s, n);
    if (want == NULL) {
        assert_false(w.ok);
        return;
    }
    if (!w.ok) fail_msg("refused what jansson takes (%zu bytes, first 0x%02x)", n,
                        n ? (unsigned char)s[0] : 0);
    assert_int_equal(w.len, strlen(want));
    assert_string_equal(buf, want);
    free(want);
}

static void test_ascii_and_escapes(void **state)
{
    (void)state;
    static const char *const plain[] = {"", "a", "https://localhost:8443", "accounts payments",
                                        "x5t#S256", "a/b", "~!@#$%^&*()[]{}<>?|",
                                        "\"", "\\", "\"\\\"", "tab\there", "cr\rlf\n"};
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        same_as_jansson(plain[i], strlen(plain[i]));
    /* Every byte below 0x80 on its own, NUL included (\u0000). */
    for (int c = 0; c < 0x80; c++) {
        char b = (char)c;
        same_as_jansson(&b, 1);
    }
    char buf[64];
    pc_jsonw w;
    pc_jsonw_init(&w, buf, sizeof buf);
    pc_jsonw_string(&w, "\x01\x1f\x7f", 3);
    assert_true(w.ok);
    assert_string_equal(buf, "\"\\u0001\\u001F\x7f\"");
}

static void test_utf8(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        bool valid;
    } cases[] = {
        {"\xc3\xa9", true},             /* é */
        {"\xe2\x82\xac", true},         /* € */
        {"\xf0\x9f\x94\x91", true},     /* U+1F511 */
        {"\xf4\x8f\xbf\xbf", true},     /* U+10FFFF */
        {"\xed\x9f\xbf", true},         /* U+D7FF */
        {"\xee\x80\x80", true},         /* U+E000 */
        {"\x80", false},                /* a lone continuation */
        {"\xc0\x80", false},            /* overlong NUL */
        {"\xc1\xbf", false},            /* overlong */
        {"\xe0\x80\x80", false},        /* overlong */
        {"\xe0\x9f\xbf", false},        /* overlong */
        {"\xf0\x8f\xbf\xbf", false},    /* overlong */
        {"\xed\xa0\x80", false},        /* a surrogate */
        {"\xed\xbf\xbf", false},        /* a surrogate */
        {"\xf4\x90\x80\x80", false},    /* above U+10FFFF */
        {"\xf5\x80\x80\x80", false},
        {"\xff", false},
        {"\xc3", false},                /* cut short */
        {"\xe2\x82", false},
        {"\xf0\x9f\x94", false},
        {"\xc3\x28", false},            /* a bad continuation */
        {"a\xc3\xa9z\xe2\x82\xac", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = strlen(cases[i].s);
        same_as_jansson(cases[i].s, n);
        char *j = jansson_text(cases[i].s, n);
        assert_int_equal(j != NULL, cases[i].valid);
        free(j);
    }
}

/* Random strings over bytes that matter (controls, quotes, leads and
 * continuations of every length, bytes never valid): ours and jansson's
 * must agree on each. */
static void test_random_against_jansson(void **state)
{
    (void)state;
    static const unsigned char pool[] = {0x00, 0x01, 0x08, 0x09, 0x0a, 0x1f, 0x20, '"',  '\\',
                                         '/',  'a',  0x7f, 0x80, 0x8f, 0x9f, 0xa0, 0xbf, 0xc0,
                                         0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff};
    uint32_t x = 2463534242u;
    for (int i = 0; i < 20000; i++) {
        char s[12];
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        size_t n = x % sizeof s;
        for (size_t k = 0; k < n; k++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            s[k] = (char)pool[x % sizeof pool];
        }
        same_as_jansson(s, n);
    }
}

static void test_int(void **state)
{
    (void)state;
    static const int64_t v[] = {0, 1, -1, 9, 10, 1796410861, -1796410861, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char buf[32], want[32];
        pc_jsonw w;
        pc_jsonw_init(&w, buf, sizeof buf);
        pc_jsonw_int(&w, v[i]);
        assert_true(w.ok);
        json_t *j = json_integer((json_int_t)v[i]);
        char *d = json_dumps(j, JSON_ENCODE_ANY);
        snprintf(want, sizeof want, "%s", d);
        free(d);
        json_decref(j);
        assert_string_equal(buf, want);
    }
}

/* An object written member by member is what json_dumps(JSON_COMPACT)
 * makes of the same object. */
static void test_object_matches_dumps(void **state)
{
    (void)state;
    char buf[256];
    pc_jsonw w;
    pc_jsonw_init(&w, buf, sizeof buf);
    pc_jsonw_lit(&w, "{\"iss\":");
    pc_jsonw_string(&w, "https://as.example", 18);
    pc_jsonw_lit(&w, ",\"exp\":");
    pc_jsonw_int(&w, 1700000300);
    pc_jsonw_lit(&w, ",\"cnf\":{\"jkt\":");
    pc_jsonw_string(&w, "a\"b", 3);
    pc_jsonw_lit(&w, "}}");
    assert_true(w.ok);
    json_t *o = json_pack("{s:s, s:I, s:{s:s}}", "iss", "https://as.example", "exp",
                          (json_int_t)1700000300, "cnf", "jkt", "a\"b");
    char *want = json_dumps(o, JSON_COMPACT);
    assert_string_equal(buf, want);
    assert_int_equal(w.len, strlen(want));
    free(want);
    json_decref(o);
}

/* Overflow clears ok, writes nothing past the buffer, and sticks. */
static void test_overflow(void **state)
{
    (void)state;
    char buf[8];
    pc_jsonw w;
    pc_jsonw_init(&w, buf, sizeof buf);
    pc_jsonw_lit(&w, "1234567");
    assert_true(w.ok);
    assert_string_equal(buf, "1234567");
    pc_jsonw_lit(&w, "8");
    assert_false(w.ok);
    assert_string_equal(buf, "1234567");
    pc_jsonw_init(&w, buf, sizeof buf);
    /* A string is refused unless its worst case fits: "ab" could take 14. */
    pc_jsonw_string(&w, "ab", 2);
    assert_false(w.ok);
    assert_string_equal(buf, "");
    pc_jsonw_int(&w, 1);
    assert_false(w.ok);
    /* Invalid UTF-8 leaves what was written before. */
    char big[64];
    pc_jsonw_init(&w, big, sizeof big);
    pc_jsonw_lit(&w, "{");
    pc_jsonw_string(&w, "ok\xff", 3);
    assert_false(w.ok);
    assert_string_equal(big, "{");
    pc_jsonw_init(&w, NULL, 0);
    assert_false(w.ok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ascii_and_escapes),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_random_against_jansson),
        cmocka_unit_test(test_int),
        cmocka_unit_test(test_object_matches_dumps),
        cmocka_unit_test(test_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
