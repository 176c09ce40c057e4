/* Router: templates, specificity, 404 vs 405, parameters, bad templates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "net/router.h"

#include <stdio.h>
#include <string.h>

static int tags[8];

static pc_router *make(void)
{
    pc_router *r = NULL;
    assert_true(pc_ok(pc_router_new(&r)));
    assert_true(pc_ok(pc_router_add(r, "GET", "/accounts/{id}", &tags[0])));
    assert_true(pc_ok(pc_router_add(r, "GET", "/accounts/mine", &tags[1])));
    assert_true(pc_ok(pc_router_add(r, "POST", "/accounts/{id}", &tags[2])));
    assert_true(pc_ok(pc_router_add(r, "GET", "/accounts/{id}/tx/{tx}", &tags[3])));
    assert_true(pc_ok(pc_router_add(r, "*", "/any", &tags[4])));
    assert_true(pc_ok(pc_router_add(r, "GET", "/", &tags[5])));
    return r;
}

static pc_route_outcome match(pc_router *r, const char *m, const char *p, pc_route_match *out)
{
    return pc_router_match(r, pc_str_c(m), pc_str_c(p), out);
}

static void test_params_and_specificity(void **state)
{
    (void)state;
    pc_router *r = make();
    pc_route_match m;
    assert_int_equal(match(r, "GET", "/accounts/42", &m), PC_ROUTE_FOUND);
    assert_ptr_equal(m.handler_data, &tags[0]);
    assert_int_equal(m.n_params, 1);
    pc_str id = pc_route_param(&m, "id");
    assert_int_equal(id.len, 2);
    assert_memory_equal(id.ptr, "42", 2);
    assert_null(pc_route_param(&m, "nope").ptr);
    /* A literal beats a parameter in the same position. */
    assert_int_equal(match(r, "GET", "/accounts/mine", &m), PC_ROUTE_FOUND);
    assert_ptr_equal(m.handler_data, &tags[1]);
    assert_string_equal(m.template, "/accounts/mine");
    assert_int_equal(match(r, "GET", "/accounts/7/tx/abc", &m), PC_ROUTE_FOUND);
    assert_ptr_equal(m.handler_data, &tags[3]);
    assert_memory_equal(pc_route_param(&m, "tx").ptr, "abc", 3);
    assert_int_equal(match(r, "GET", "/", &m), PC_ROUTE_FOUND);
    assert_ptr_equal(m.handler_data, &tags[5]);
    pc_router_free(r);
}

static void test_method_rules(void **state)
{
    (void)state;
    pc_router *r = make();
    pc_route_match m;
    assert_int_equal(match(r, "POST", "/accounts/1", &m), PC_ROUTE_FOUND);
    assert_ptr_equal(m.handler_data, &tags[2]);
    /* HEAD is served by GET routes. */
    assert_int_equal(match(r, "HEAD", "/accounts/1", &m), PC_ROUTE_FOUND);
    assert_ptr_equal(m.handler_data, &tags[0]);
    assert_int_equal(match(r, "DELETE", "/accounts/1", &m), PC_ROUTE_METHOD_NOT_ALLOWED);
    assert_non_null(strstr(m.allow, "GET"));
    assert_non_null(strstr(m.allow, "POST"));
    assert_non_null(strstr(m.allow, "HEAD"));
    assert_int_equal(match(r, "PATCH", "/any", &m), PC_ROUTE_FOUND);
    pc_router_free(r);
}

static void test_not_found(void **state)
{
    (void)state;
    pc_router *r = make();
    pc_route_match m;
    assert_int_equal(match(r, "GET", "/accounts", &m), PC_ROUTE_NOT_FOUND);
    /* A parameter never matches an empty segment. */
    assert_int_equal(match(r, "GET", "/accounts/", &m), PC_ROUTE_NOT_FOUND);
    assert_int_equal(match(r, "GET", "/accounts/1/tx", &m), PC_ROUTE_NOT_FOUND);
    assert_int_equal(match(r, "GET", "/accounts/1/tx/2/3", &m), PC_ROUTE_NOT_FOUND);
    assert_int_equal(match(r, "GET", "", &m), PC_ROUTE_NOT_FOUND);
    assert_int_equal(match(r, "GET", "accounts/1", &m), PC_ROUTE_NOT_FOUND);
    /* Case matters in paths. */
    assert_int_equal(match(r, "GET", "/Accounts/1", &m), PC_ROUTE_NOT_FOUND);
    /* More segments than any template may have. */
    char deep[256] = "";
    for (int i = 0; i < 40; i++) strcat(deep, "/a");
    assert_int_equal(match(r, "GET", deep, &m), PC_ROUTE_NOT_FOUND);
    pc_router_free(r);
}

static void test_bad_templates(void **state)
{
    (void)state;
    pc_router *r = NULL;
    assert_true(pc_ok(pc_router_new(&r)));
    const char *bad[] = {"accounts", "/a/{}", "/a/{1x}", "/a/{id}/b/{id}", "/a/x{id}",
                         "/a/../b", "/a/./b", "/a/{i-d}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pc_result res = pc_router_add(r, "GET", bad[i], NULL);
        assert_int_equal(res.err, PC_ERR_USAGE);
        assert_non_null(strstr(pc_errmsg(), bad[i]));
    }
    char why[160];
    assert_false(pc_router_template_ok("/{a}/{a}", why, sizeof why));
    assert_true(pc_router_template_ok("/v1/{a}/{b_2}", why, sizeof why));
    /* Duplicates are refused, including with other parameter names. */
    assert_true(pc_ok(pc_router_add(r, "GET", "/x/{id}", NULL)));
    assert_int_equal(pc_router_add(r, "GET", "/x/{other}", NULL).err, PC_ERR_USAGE);
    assert_true(pc_ok(pc_router_add(r, "PUT", "/x/{other}", NULL)));
    pc_router_free(r);
}

static void test_too_many_segments_and_params(void **state)
{
    (void)state;
    pc_router *r = NULL;
    assert_true(pc_ok(pc_router_new(&r)));
    char t[1024] = "";
    for (unsigned i = 0; i <= PC_MAX_PATH_SEGMENTS; i++) strcat(t, "/s");
    assert_int_equal(pc_router_add(r, "GET", t, NULL).err, PC_ERR_USAGE);
    t[0] = '\0';
    for (unsigned i = 0; i <= PC_MAX_ROUTE_PARAMS; i++) {
        char seg[16];
        snprintf(seg, sizeof seg, "/{p%u}", i);
        strcat(t, seg);
    }
    assert_int_equal(pc_router_add(r, "GET", t, NULL).err, PC_ERR_USAGE);
    pc_router_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params_and_specificity),
        cmocka_unit_test(test_method_rules),
        cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_bad_templates),
        cmocka_unit_test(test_too_many_segments_and_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
