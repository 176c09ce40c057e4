/* Form decoding: strict percent-decoding, duplicates, limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "as/form.h"

#include <stdio.h>
#include <string.h>

static void ok(const char *body, pc_form *f)
{
    pc_result r = pc_form_parse(body, strlen(body), f);
    if (!pc_ok(r)) fail_msg("'%s' refused: %s", body, pc_errmsg());
}

static void bad(const char *body, const char *msg_part)
{
    pc_form f;
    pc_result r = pc_form_parse(body, strlen(body), &f);
    if (pc_ok(r)) fail_msg("'%s' accepted", body);
    assert_int_equal(r.err, PC_ERR_PROTO);
    if (msg_part && !strstr(pc_errmsg(), msg_part))
        fail_msg("'%s': message '%s' lacks '%s'", body, pc_errmsg(), msg_part);
}

static void test_decoding(void **state)
{
    (void)state;
    pc_form f;
    ok("grant_type=client_credentials&scope=a+b%20c&x=&resource=https%3A%2F%2Fapi.example%2F", &f);
    assert_int_equal(f.n, 4);
    assert_string_equal(pc_form_get(&f, "grant_type").ptr, "client_credentials");
    assert_string_equal(pc_form_get(&f, "scope").ptr, "a b c");
    assert_int_equal(pc_form_get(&f, "x").len, 0);
    assert_non_null(pc_form_get(&f, "x").ptr);
    assert_string_equal(pc_form_get(&f, "resource").ptr, "https://api.example/");
    assert_null(pc_form_get(&f, "missing").ptr);
    pc_form_free(&f);
    ok("", &f);
    assert_int_equal(f.n, 0);
    pc_form_free(&f);
    ok("a=1&&b=2&", &f);
    assert_int_equal(f.n, 2);
    pc_form_free(&f);
    ok("resource=https%3A%2F%2Fa&resource=https%3A%2F%2Fb", &f); /* RFC 8707 §2 */
    assert_int_equal(pc_form_count(&f, "resource"), 2);
    assert_string_equal(pc_form_get(&f, "resource").ptr, "https://a");
    pc_form_free(&f);
    ok("a=%C3%A9", &f); /* UTF-8 passes through as bytes */
    assert_int_equal(pc_form_get(&f, "a").len, 2);
    pc_form_free(&f);
}

static void test_refusals(void **state)
{
    (void)state;
    bad("scope=a&scope=b", "more than once");
    bad("a=%zz", "field 'a'"); /* regression: the name was read after free */
    bad("a=%2", "percent");
    bad("a=%", "percent");
    bad("a=%00", "percent");
    bad("a=\x01", "percent");
    bad("novalue", "'='");
    bad("=x", "empty");
    bad("%3D=1&%3D=2", "more than once");
    char many[1024] = "";
    for (int i = 0; i <= PC_FORM_MAX_FIELDS; i++) {
        char p[16];
        snprintf(p, sizeof p, "f%d=1&", i);
        strcat(many, p);
    }
    bad(many, "more than");
    char longname[128];
    memset(longname, 'n', PC_FORM_MAX_NAME + 1);
    strcpy(longname + PC_FORM_MAX_NAME + 1, "=1");
    bad(longname, "name");
    /* A JSON body is not a form. */
    bad("{\"grant_type\":\"client_credentials\"}", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decoding),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
