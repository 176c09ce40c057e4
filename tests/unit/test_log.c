/* JSON log lines: escaping, UTF-8, truncation, redaction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/log.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[] = "/tmp/pc-log-XXXXXX";

static json_t *last_line(void)
{
    pc_log_flush_thread();
    FILE *f = fopen(path, "r");
    char buf[8192], last[8192] = "";
    while (fgets(buf, sizeof buf, f)) strcpy(last, buf);
    fclose(f);
    json_error_t e;
    json_t *j = json_loads(last, 0, &e);
    if (!j) fail_msg("not JSON: %s (%s)", last, e.text);
    return j;
}

static int setup(void **state)
{
    (void)state;
    int fd = mkstemp(path);
    close(fd);
    return pc_ok(pc_log_open(path, PC_LOG_DEBUG)) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    pc_log_close();
    unlink(path);
    return 0;
}

static void test_escaping_and_utf8(void **state)
{
    (void)state;
    pc_logline l;
    assert_true(pc_log_begin(&l, PC_LOG_WARN, "ev"));
    pc_log_cstr(&l, "quote", "a\"b\\c\n\x01");
    pc_log_cstr(&l, "utf8", "caf\xc3\xa9 \xc2\xa7");
    pc_log_cstr(&l, "bad", "x\xff\xc3y");
    pc_log_int(&l, "neg", -42);
    pc_log_uint(&l, "big", 4294967296000ull);
    pc_log_millis(&l, "ms", 1234567);
    pc_log_end(&l);
    json_t *j = last_line();
    assert_string_equal(json_string_value(json_object_get(j, "level")), "warn");
    assert_string_equal(json_string_value(json_object_get(j, "event")), "ev");
    assert_string_equal(json_string_value(json_object_get(j, "quote")), "a\"b\\c\n\x01");
    assert_string_equal(json_string_value(json_object_get(j, "utf8")), "caf\xc3\xa9 \xc2\xa7");
    assert_string_equal(json_string_value(json_object_get(j, "bad")), "x\xef\xbf\xbd\xef\xbf\xbdy");
    assert_int_equal(json_integer_value(json_object_get(j, "neg")), -42);
    assert_true(json_real_value(json_object_get(j, "ms")) > 1234.566 &&
                json_real_value(json_object_get(j, "ms")) < 1234.568);
    json_decref(j);
}

/* put_escaped skips clean 8-byte words: a byte needing escape at any
 * position of a long value, and valid UTF-8 straddling a word boundary,
 * must come back exactly (jansson decodes the line). */
/* Log v as a string field and read it back from the log line. */
static void assert_logged_back(const char *v)
{
    pc_logline l;
    assert_true(pc_log_begin(&l, PC_LOG_WARN, "ev"));
    pc_log_cstr(&l, "v", v);
    pc_log_end(&l);
    json_t *j = last_line();
    assert_string_equal(json_string_value(json_object_get(j, "v")), v);
    json_decref(j);
}

static void test_escaping_every_position(void **state)
{
    (void)state;
    const char specials[] = {'"', '\\', '\n', '\x01', '\x1f', '\x7f'};
    for (size_t k = 0; k < sizeof specials; k++) {
        for (size_t pos = 0; pos < 40; pos++) {
            char v[41];
            memset(v, 'a', 40);
            v[40] = '\0';
            v[pos] = specials[k];
            assert_logged_back(v);
        }
    }
    for (size_t pos = 0; pos < 20; pos++) {
        char v[32];
        memset(v, 'b', 24);
        memcpy(v + pos, "\xe2\x82\xac", 3); /* U+20AC, 3 bytes */
        v[24] = '\0';
        assert_logged_back(v);
    }
}

static void test_truncation_keeps_json(void **state)
{
    (void)state;
    char big[PC_MAX_LOG_LINE];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    pc_logline l;
    assert_true(pc_log_begin(&l, PC_LOG_ERROR, "big"));
    pc_log_cstr(&l, "small", "kept");
    pc_log_cstr(&l, "huge", big);
    pc_log_end(&l);
    json_t *j = last_line();
    assert_string_equal(json_string_value(json_object_get(j, "small")), "kept");
    assert_null(json_object_get(j, "huge"));
    assert_true(json_is_true(json_object_get(j, "truncated")));
    json_decref(j);
}

/* Fields rendered once as a fragment read back like fields added one by
 * one; a fragment that does not fit is left out whole. */
static void test_fragment(void **state)
{
    (void)state;
    pc_logline f;
    pc_log_fragment_begin(&f);
    pc_log_uint(&f, "conn", 7);
    pc_log_cstr(&f, "peer", "127.0.0.1:5\"");
    pc_log_bool(&f, "verified", true);
    size_t len;
    char *frag = pc_log_fragment_take(&f, &len);
    assert_non_null(frag);
    pc_logline l;
    assert_true(pc_log_begin(&l, PC_LOG_WARN, "ev"));
    pc_log_cstr(&l, "before", "x");
    pc_log_fragment(&l, frag, len);
    pc_log_cstr(&l, "after", "y");
    pc_log_end(&l);
    json_t *j = last_line();
    assert_int_equal(json_integer_value(json_object_get(j, "conn")), 7);
    assert_string_equal(json_string_value(json_object_get(j, "peer")), "127.0.0.1:5\"");
    assert_true(json_is_true(json_object_get(j, "verified")));
    assert_string_equal(json_string_value(json_object_get(j, "after")), "y");
    json_decref(j);

    char big[PC_MAX_LOG_LINE];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    /* A value that leaves less and less room: the fragment is in whole
     * or not at all, and for some lengths the value fits but it does not. */
    bool left_out = false;
    for (size_t skip = 0; skip < 300; skip++) {
        assert_true(pc_log_begin(&l, PC_LOG_WARN, "ev"));
        pc_log_cstr(&l, "big", big + skip);
        pc_log_fragment(&l, frag, len);
        pc_log_end(&l);
        j = last_line();
        bool conn = json_object_get(j, "conn") != NULL, peer = json_object_get(j, "peer") != NULL,
             verified = json_object_get(j, "verified") != NULL;
        assert_true(conn == peer && peer == verified);
        if (!conn && json_object_get(j, "big") != NULL) left_out = true;
        json_decref(j);
    }
    assert_true(left_out);
    free(frag);
}

static void test_redaction_and_levels(void **state)
{
    (void)state;
    pc_logline l;
    assert_true(pc_log_begin(&l, PC_LOG_INFO, "r"));
    pc_log_redacted(&l, "token", PC_STR("eyJhbGciOiJFUzI1NiJ9.secretpayload.sig"));
    pc_log_redacted(&l, "short", PC_STR("abc"));
    pc_log_end(&l);
    json_t *j = last_line();
    assert_string_equal(json_string_value(json_object_get(j, "token")), "eyJhbGci...(38)");
    assert_string_equal(json_string_value(json_object_get(j, "short")), "...(3)");
    json_decref(j);
    pc_log_set_level(PC_LOG_WARN);
    assert_false(pc_log_begin(&l, PC_LOG_INFO, "dropped"));
    /* Access lines follow log.access, not the level. */
    assert_true(pc_log_access_begin(&l));
    pc_log_end(&l);
    pc_log_set_level(PC_LOG_DEBUG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escaping_and_utf8),
        cmocka_unit_test(test_escaping_every_position),
        cmocka_unit_test(test_truncation_keeps_json),
        cmocka_unit_test(test_fragment),
        cmocka_unit_test(test_redaction_and_levels),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
