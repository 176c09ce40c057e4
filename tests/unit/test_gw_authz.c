/* Unit tests for the gateway's credential parsing (src/gw/authz.c): the
 * Authorization header, access_token parameters, scope coverage and
 * challenge text. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "gw/authz.h"

#include <stdlib.h>
#include <string.h>

#define S(lit) PC_STR(lit)

static void parse_ok(const char *v, pc_gw_scheme want, const char *token)
{
    pc_gw_scheme s;
    pc_str t;
    if (!pc_ok(pc_gw_parse_authorization(pc_str_c(v), &s, &t)))
        fail_msg("refused %s: %s", v, pc_errmsg());
    assert_int_equal(s, want);
    assert_int_equal(t.len, strlen(token));
    assert_memory_equal(t.ptr, token, t.len);
}

static void parse_bad(const char *v, size_t len)
{
    pc_gw_scheme s;
    pc_str t;
    pc_result r = pc_gw_parse_authorization((pc_str){v, len}, &s, &t);
    if (pc_ok(r)) fail_msg("accepted %.*s", (int)len, v);
    assert_int_equal(r.err, PC_ERR_PROTO);
    assert_null(t.ptr);
}

static void test_schemes(void **state)
{
    (void)state;
    parse_ok("Bearer abc.def.ghi", PC_GW_SCHEME_BEARER, "abc.def.ghi");
    parse_ok("bearer abc", PC_GW_SCHEME_BEARER, "abc");
    parse_ok("BEARER abc", PC_GW_SCHEME_BEARER, "abc");
    parse_ok("DPoP a-b_c~d+e/f==", PC_GW_SCHEME_DPOP, "a-b_c~d+e/f==");
    parse_ok("DPOP x", PC_GW_SCHEME_DPOP, "x");
    parse_ok("dpop   x", PC_GW_SCHEME_DPOP, "x"); /* 1*SP */
}

static void test_refused(void **state)
{
    (void)state;
    const char *bad[] = {"", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearerabc",
                         "Bearer a b", "Bearer a,b", "Bearer \"abc\"", "Bearer =abc", "Bearer ==",
                         "Bearer abc=d", "Token abc", "Bearer\tabc", " Bearer abc",
                         "DPoP a;b", "Bearer abc realm=x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) parse_bad(bad[i], strlen(bad[i]));
    parse_bad("Bearer a\0b", 10);
}

static void test_token_length_limit(void **state)
{
    (void)state;
    size_t n = 7 + PC_GW_MAX_TOKEN + 1;
    char *v = malloc(n + 1);
    memcpy(v, "Bearer ", 7);
    memset(v + 7, 'a', PC_GW_MAX_TOKEN + 1);
    v[n] = '\0';
    parse_bad(v, n);
    v[n - 1] = '\0';
    pc_gw_scheme s;
    pc_str t;
    assert_true(pc_ok(pc_gw_parse_authorization((pc_str){v, n - 1}, &s, &t)));
    assert_int_equal(t.len, PC_GW_MAX_TOKEN);
    free(v);
}

static void test_access_token_param(void **state)
{
    (void)state;
    assert_true(pc_gw_has_access_token_param(S("access_token=abc")));
    assert_true(pc_gw_has_access_token_param(S("a=1&access_token=abc")));
    assert_true(pc_gw_has_access_token_param(S("a=1;access_token")));
    assert_true(pc_gw_has_access_token_param(S("ACCESS_TOKEN=x")));
    assert_true(pc_gw_has_access_token_param(S("access%5Ftoken=x")));
    assert_true(pc_gw_has_access_token_param(S("%61ccess_token=x")));
    assert_true(pc_gw_has_access_token_param(S("x=1&access_token=")));
    assert_false(pc_gw_has_access_token_param(PC_STR_NULL));
    assert_false(pc_gw_has_access_token_param(S("")));
    assert_false(pc_gw_has_access_token_param(S("my_access_token=x")));
    assert_false(pc_gw_has_access_token_param(S("access_tokens=x")));
    assert_false(pc_gw_has_access_token_param(S("x=access_token")));
    assert_false(pc_gw_has_access_token_param(S("access_token%")));
    assert_false(pc_gw_has_access_token_param(S("&&&=")));
}

static void test_scope(void **state)
{
    (void)state;
    char *req2[] = {"accounts", "payments"};
    char *req1[] = {"accounts"};
    const char *missing = NULL;
    assert_true(pc_gw_scope_covers(S("accounts payments"), req2, 2, &missing));
    assert_null(missing);
    assert_true(pc_gw_scope_covers(S("payments admin accounts"), req2, 2, &missing));
    assert_true(pc_gw_scope_covers(S("anything"), req2, 0, &missing));
    assert_true(pc_gw_scope_covers(PC_STR_NULL, req2, 0, &missing));
    assert_false(pc_gw_scope_covers(S("accounts"), req2, 2, &missing));
    assert_string_equal(missing, "payments");
    assert_false(pc_gw_scope_covers(S("accountsx payments"), req2, 2, &missing));
    assert_string_equal(missing, "accounts");
    assert_false(pc_gw_scope_covers(S("Accounts"), req1, 1, &missing)); /* case-sensitive */
    assert_false(pc_gw_scope_covers(S("account"), req1, 1, &missing));
    assert_false(pc_gw_scope_covers(PC_STR_NULL, req1, 1, &missing));
    assert_false(pc_gw_scope_covers(S(""), req1, 1, &missing));
    assert_true(pc_gw_scope_covers(S("  accounts  "), req1, 1, &missing));
}

static void test_challenge_text(void **state)
{
    (void)state;
    char out[16];
    pc_gw_challenge_text("a \"quoted\" \\ ok", out, sizeof out);
    assert_string_equal(out, "a quoted  ok");
    pc_gw_challenge_text("line\r\nbreak", out, sizeof out);
    assert_string_equal(out, "linebreak");
    pc_gw_challenge_text("0123456789abcdefghij", out, sizeof out);
    assert_string_equal(out, "0123456789abcde");
    pc_gw_challenge_text(NULL, out, sizeof out);
    assert_string_equal(out, "");
}

static void test_token_is_jwt(void **state)
{
    (void)state;
    assert_true(pc_gw_token_is_jwt(PC_STR("a.b.c")));
    assert_true(pc_gw_token_is_jwt(PC_STR("..")));
    assert_false(pc_gw_token_is_jwt(PC_STR("abc")));
    assert_false(pc_gw_token_is_jwt(PC_STR("a.b")));
    assert_false(pc_gw_token_is_jwt(PC_STR("a.b.c.d")));      /* JWE compact is opaque to us */
    assert_false(pc_gw_token_is_jwt(PC_STR("a.b.c.d.e")));
    assert_false(pc_gw_token_is_jwt(PC_STR("")));
    assert_false(pc_gw_token_is_jwt(PC_STR_NULL));
    /* only the first len bytes count */
    assert_true(pc_gw_token_is_jwt((pc_str){"a.b.c.d", 5}));
}

static void test_introspection_refusal(void **state)
{
    (void)state;
    const char *iss = "https://as.example";
    const int64_t now = 1000;
    struct {
        const char *answer; /* NULL: inactive */
        const char *why;    /* NULL: admitted; else a part of the refusal */
    } cases[] = {
        {NULL, "not active"},
        {"{\"active\":true}", NULL},
        {"{\"active\":true,\"iss\":\"https://as.example\",\"exp\":1001,\"token_type\":\"Bearer\"}", NULL},
        {"{\"active\":true,\"token_type\":\"dpop\"}", NULL},
        {"{\"active\":true,\"iss\":\"https://as.example/\"}", "not valid"},
        {"{\"active\":true,\"iss\":7}", "not valid"},
        {"{\"active\":true,\"token_type\":\"refresh_token\"}", "not valid"},
        {"{\"active\":true,\"token_type\":null}", "not valid"},
        {"{\"active\":true,\"exp\":1000}", "expired"},
        {"{\"active\":true,\"exp\":\"2000\"}", "not valid"},
        {"{\"active\":true,\"exp\":1000.5}", "not valid"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *a = cases[i].answer ? json_loads(cases[i].answer, 0, NULL) : NULL;
        if (cases[i].answer) assert_non_null(a);
        const char *why = pc_gw_introspection_refusal(a, iss, now);
        if (cases[i].why == NULL) {
            if (why != NULL) fail_msg("case %zu: refused: %s", i, why);
        } else {
            if (why == NULL || strstr(why, cases[i].why) == NULL)
                fail_msg("case %zu: expected \"%s\", got %s", i, cases[i].why, why ? why : "NULL");
        }
        json_decref(a);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schemes),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_token_length_limit),
        cmocka_unit_test(test_access_token_param),
        cmocka_unit_test(test_scope),
        cmocka_unit_test(test_challenge_text),
        cmocka_unit_test(test_token_is_jwt),
        cmocka_unit_test(test_introspection_refusal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
