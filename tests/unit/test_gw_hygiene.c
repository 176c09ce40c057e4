/* Unit tests for the gateway's header hygiene (src/gw/hygiene.c): which
 * headers cross in each direction, Connection-listed names, interaction
 * ids and generated UUIDs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "gw/hygiene.h"

#include <string.h>

#define S(lit) PC_STR(lit)
static const pc_str cert = PC_STR("Client-Cert");

static bool fwd_req(const char *name, const char *connection)
{
    return pc_gw_forward_request_header(pc_str_c(name),
                                        connection ? pc_str_c(connection) : PC_STR_NULL, cert,
                                        true);
}

static void test_hop_by_hop(void **state)
{
    (void)state;
    const char *hop[] = {"Connection", "keep-alive", "TE", "Trailer", "Transfer-Encoding",
                         "UPGRADE", "Proxy-Authorization", "proxy-connection"};
    for (size_t i = 0; i < sizeof hop / sizeof hop[0]; i++) {
        assert_true(pc_gw_hop_by_hop(pc_str_c(hop[i])));
        assert_false(fwd_req(hop[i], NULL));
        assert_false(pc_gw_forward_response_header(pc_str_c(hop[i]), PC_STR_NULL));
    }
    assert_false(pc_gw_hop_by_hop(S("Accept")));
    assert_false(pc_gw_hop_by_hop(S("Tea")));
    assert_false(pc_gw_hop_by_hop(S("Proxy")));
    assert_false(pc_gw_hop_by_hop(S("")));
}

static void test_connection_list(void **state)
{
    (void)state;
    assert_true(pc_gw_connection_lists(S("keep-alive, X-Hop"), S("x-hop")));
    assert_true(pc_gw_connection_lists(S(" ,X-Hop ,"), S("X-HOP")));
    assert_true(pc_gw_connection_lists(S("a,\tb\t, c"), S("b")));
    assert_false(pc_gw_connection_lists(S("X-Hopper"), S("X-Hop")));
    assert_false(pc_gw_connection_lists(S("X-Ho"), S("X-Hop")));
    assert_false(pc_gw_connection_lists(PC_STR_NULL, S("X-Hop")));
    assert_false(pc_gw_connection_lists(S(",,,"), S("")));
    assert_false(fwd_req("X-Hop", "close, x-hop"));
    assert_true(fwd_req("X-Other", "close, x-hop"));
    assert_false(pc_gw_forward_response_header(S("X-Secret"), S("X-Secret")));
}

static void test_gateway_owned_stripped(void **state)
{
    (void)state;
    const char *owned[] = {"X-Forwarded-For", "x-forwarded-proto", "X-FORWARDED-HOST",
                           "Forwarded", "X-Client-Cert", "X-Client-Cert-Chain", "Client-Cert",
                           "client-cert-chain", "X-Portcullis-Client-Id", "x-portcullis-anything",
                           "X-Request-Id", "x-fapi-interaction-id", "X-Real-IP"};
    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++) {
        assert_true(pc_gw_gateway_owned(pc_str_c(owned[i]), cert));
        assert_false(fwd_req(owned[i], NULL));
    }
    /* a configured header name is owned too */
    assert_true(pc_gw_gateway_owned(S("X-SSL-Cert"), S("x-ssl-cert")));
    assert_false(pc_gw_gateway_owned(S("X-SSL-Cert"), PC_STR_NULL));
    assert_false(pc_gw_gateway_owned(S("X-Forwarded"), cert)); /* no dash: not the family */
    assert_false(pc_gw_gateway_owned(S("Accept"), cert));
}

static void test_request_headers_kept_or_set(void **state)
{
    (void)state;
    assert_true(fwd_req("Accept", NULL));
    assert_true(fwd_req("Content-Type", NULL));
    assert_true(fwd_req("x-fapi-customer-ip-address", NULL));
    assert_false(fwd_req("Host", NULL));
    assert_false(fwd_req("Content-Length", NULL));
    assert_false(fwd_req("Expect", NULL));
    /* credentials are consumed on auth: routes, passed on open ones */
    assert_false(fwd_req("Authorization", NULL));
    assert_false(fwd_req("DPoP", NULL));
    assert_true(pc_gw_forward_request_header(S("Authorization"), PC_STR_NULL, cert, false));
}

static void test_response_headers(void **state)
{
    (void)state;
    const char *dropped[] = {"Date", "Content-Length", "Content-Type", "X-Request-Id",
                             "x-fapi-interaction-id", "Transfer-Encoding", "Connection",
                             "DPoP-Nonce"};
    for (size_t i = 0; i < sizeof dropped / sizeof dropped[0]; i++)
        assert_false(pc_gw_forward_response_header(pc_str_c(dropped[i]), PC_STR_NULL));
    assert_true(pc_gw_forward_response_header(S("ETag"), PC_STR_NULL));
    assert_true(pc_gw_forward_response_header(S("Cache-Control"), PC_STR_NULL));
    assert_true(pc_gw_forward_response_header(S("X-RateLimit-Remaining"), PC_STR_NULL));
}

static void test_interaction_id(void **state)
{
    (void)state;
    assert_true(pc_gw_interaction_id_ok(S("c770aef3-6784-41f7-8e0e-ff5f97bddb3a")));
    assert_true(pc_gw_interaction_id_ok(S("A")));
    char max[PC_GW_MAX_INTERACTION_ID + 1];
    memset(max, 'a', sizeof max);
    assert_true(pc_gw_interaction_id_ok((pc_str){max, PC_GW_MAX_INTERACTION_ID}));
    assert_false(pc_gw_interaction_id_ok((pc_str){max, PC_GW_MAX_INTERACTION_ID + 1}));
    assert_false(pc_gw_interaction_id_ok(PC_STR_NULL));
    assert_false(pc_gw_interaction_id_ok(S("has space")));
    assert_false(pc_gw_interaction_id_ok(S("semi;colon")));
    assert_false(pc_gw_interaction_id_ok(S("new\nline")));
    assert_false(pc_gw_interaction_id_ok((pc_str){"a\0b", 3}));
}

static void test_forwarded_for(void **state)
{
    (void)state;
    assert_true(pc_gw_forwarded_for_ok(S("203.0.113.7")));
    assert_true(pc_gw_forwarded_for_ok(S("203.0.113.7, 10.0.0.1")));
    assert_true(pc_gw_forwarded_for_ok(S("2001:db8::1, 10.0.0.1")));
    assert_false(pc_gw_forwarded_for_ok(S("")));
    assert_false(pc_gw_forwarded_for_ok(S(", ,")));
    assert_false(pc_gw_forwarded_for_ok(S("unknown")));
    assert_false(pc_gw_forwarded_for_ok(S("1.2.3.4\r\nX-Evil: 1")));
    assert_false(pc_gw_forwarded_for_ok(S("1.2.3.4;x")));
    char big[PC_GW_MAX_FORWARDED_FOR + 1];
    memset(big, '1', sizeof big);
    assert_false(pc_gw_forwarded_for_ok((pc_str){big, sizeof big}));
    assert_true(pc_gw_forwarded_for_ok((pc_str){big, sizeof big - 1}));
}

static void test_uuid4(void **state)
{
    (void)state;
    char a[PC_GW_UUID_BUF], b[PC_GW_UUID_BUF];
    pc_gw_uuid4(a);
    pc_gw_uuid4(b);
    assert_int_equal(strlen(a), 36);
    assert_string_not_equal(a, b);
    assert_int_equal(a[8], '-');
    assert_int_equal(a[13], '-');
    assert_int_equal(a[14], '4');
    assert_non_null(strchr("89ab", a[19]));
    assert_true(pc_gw_interaction_id_ok(pc_str_c(a)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hop_by_hop),
        cmocka_unit_test(test_connection_list),
        cmocka_unit_test(test_gateway_owned_stripped),
        cmocka_unit_test(test_request_headers_kept_or_set),
        cmocka_unit_test(test_response_headers),
        cmocka_unit_test(test_interaction_id),
        cmocka_unit_test(test_forwarded_for),
        cmocka_unit_test(test_uuid4),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
