/* Unit tests for the gateway's config (src/core/config_gw.c and the
 * upstream:/auth:/timeout: keys of routes): defaults, round trip, and
 * each error with its file:line:col. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/config.h"

#include <stdio.h>
#include <string.h>

/* Lines 1-5. */
#define MIN_SERVER                                                             \
    "server:\n"                                                                \
    "  listen: 127.0.0.1:8443\n"                                               \
    "  tls:\n"                                                                 \
    "    cert: c.pem\n"                                                        \
    "    key: k.pem\n"
/* Lines 6-8. */
#define DEMO_UPSTREAM                                                          \
    "upstreams:\n"                                                             \
    "  demo:\n"                                                                \
    "    url: http://127.0.0.1:9000\n"

static pc_config *parse_ok(const char *yaml)
{
    pc_config *cfg = NULL;
    if (!pc_ok(pc_config_parse("t.yaml", yaml, strlen(yaml), &cfg)))
        fail_msg("unexpected failure: %s", pc_errmsg());
    return cfg;
}

static void expect_err(const char *yaml, const char *want)
{
    pc_config *cfg = NULL;
    pc_result r = pc_config_parse("t.yaml", yaml, strlen(yaml), &cfg);
    if (pc_ok(r)) fail_msg("parsed, but wanted an error starting: %s", want);
    assert_null(cfg);
    if (strncmp(pc_errmsg(), want, strlen(want)) != 0)
        fail_msg("message:\n  %s\nwanted a message starting:\n  %s", pc_errmsg(), want);
}

static void test_defaults(void **state)
{
    (void)state;
    pc_config *cfg = parse_ok(MIN_SERVER DEMO_UPSTREAM
                              "routes:\n"
                              "  - {method: GET, path: /a, upstream: demo}\n"
                              "  - {method: GET, path: /hello, static: {}}\n");
    assert_int_equal(cfg->n_upstreams, 1);
    const pc_upstream_config *u = &cfg->upstreams[0];
    assert_string_equal(u->name, "demo");
    assert_false(u->https);
    assert_string_equal(u->host, "127.0.0.1");
    assert_int_equal(u->port, 9000);
    assert_string_equal(u->base_path, "");
    assert_int_equal(u->connect_timeout_ms, 2000);
    assert_int_equal(u->timeout_ms, 10000);
    assert_int_equal(u->max_idle, 32);
    /* the upstream route moved out of routes[] for the gateway module */
    assert_int_equal(cfg->n_routes, 1);
    assert_string_equal(cfg->routes[0].path, "/hello");
    assert_int_equal(cfg->n_gw_routes, 1);
    assert_int_equal(cfg->gw_routes[0].kind, PC_ROUTE_UPSTREAM);
    assert_false(cfg->gw_routes[0].auth.enabled);
    assert_int_equal(cfg->gw_routes[0].timeout_ms, 0);
    assert_string_equal(cfg->gw.external_url, "https://127.0.0.1:8443");
    assert_int_equal(cfg->gw.dpop_proof_lifetime_ms, 60000);
    assert_false(cfg->gw.dpop_nonce);
    assert_false(cfg->gw.client_cert_header);
    assert_string_equal(cfg->gw.client_cert_header_name, "Client-Cert");
    assert_int_equal(cfg->gw.n_trusted_proxies, 1);
    assert_string_equal(cfg->gw.trusted_proxies[0], "127.0.0.1/32");
    pc_config_free(cfg);
}

static void test_full(void **state)
{
    (void)state;
    pc_config *cfg = parse_ok(
        "server:\n"
        "  listen: 127.0.0.1:8443\n"
        "  public_url: https://api.example.com\n"
        "  tls: {cert: c.pem, key: k.pem}\n"
        "as:\n"
        "  issuer: https://as.example.com\n"
        "  resources: [https://api.example.com, https://other.example]\n"
        "upstreams:\n"
        "  accounts:\n"
        "    url: https://accounts.internal:8443/v1/\n"
        "    ca: internal-ca.pem\n"
        "    connect_timeout: 500ms\n"
        "    timeout: 3s\n"
        "    max_idle: 8\n"
        "  local: {url: 'http://[::1]:9000'}\n"
        "gateway:\n"
        "  external_url: https://gw.example.com/\n"
        "  dpop: {proof_lifetime: 30s, clock_skew: 5s, nonce: true}\n"
        "  client_cert_header:\n"
        "    enabled: true\n"
        "    name: X-SSL-Client-Cert\n"
        "    trusted_proxies: [10.0.0.0/8, '::1', 192.168.1.7]\n"
        "routes:\n"
        "  - method: GET\n"
        "    path: /accounts/{id}\n"
        "    upstream: accounts\n"
        "    timeout: 2s\n"
        "    auth: {scopes: [accounts, read], binding: mtls}\n"
        "  - {method: POST, path: /pay, upstream: local, auth: {binding: dpop, audience: "
        "'https://other.example'}}\n"
        "  - {method: GET, path: /open, upstream: local, auth: {introspection: always}}\n");
    const pc_upstream_config *u = &cfg->upstreams[0];
    assert_true(u->https);
    assert_string_equal(u->host, "accounts.internal");
    assert_int_equal(u->port, 8443);
    assert_string_equal(u->base_path, "/v1");
    assert_string_equal(u->url, "https://accounts.internal:8443/v1");
    assert_string_equal(u->ca_file, "internal-ca.pem");
    assert_int_equal(u->connect_timeout_ms, 500);
    assert_int_equal(u->timeout_ms, 3000);
    assert_int_equal(u->max_idle, 8);
    assert_string_equal(cfg->upstreams[1].host, "::1");
    assert_int_equal(cfg->upstreams[1].port, 9000);
    assert_string_equal(cfg->gw.external_url, "https://gw.example.com");
    assert_int_equal(cfg->gw.dpop_proof_lifetime_ms, 30000);
    assert_int_equal(cfg->gw.dpop_skew_ms, 5000);
    assert_true(cfg->gw.dpop_nonce);
    assert_true(cfg->gw.client_cert_header);
    assert_string_equal(cfg->gw.client_cert_header_name, "X-SSL-Client-Cert");
    assert_int_equal(cfg->gw.n_trusted_proxies, 3);
    assert_int_equal(cfg->n_gw_routes, 3);
    const pc_route_config *r = &cfg->gw_routes[0];
    assert_int_equal(r->upstream_index, 0);
    assert_int_equal(r->timeout_ms, 2000);
    assert_true(r->auth.enabled);
    assert_int_equal(r->auth.n_scopes, 2);
    assert_string_equal(r->auth.scopes[1], "read");
    assert_int_equal(r->auth.binding, PC_GW_BIND_MTLS);
    assert_string_equal(r->auth.audience, "https://api.example.com"); /* as.resources[0] */
    assert_int_equal(cfg->gw_routes[1].upstream_index, 1);
    assert_int_equal(cfg->gw_routes[1].auth.binding, PC_GW_BIND_DPOP);
    assert_string_equal(cfg->gw_routes[1].auth.audience, "https://other.example");
    assert_true(cfg->gw_routes[2].auth.enabled);
    assert_int_equal(cfg->gw_routes[2].auth.binding, PC_GW_BIND_ANY);
    assert_false(cfg->gw_routes[0].auth.introspect_always); /* auto by default */
    assert_true(cfg->gw_routes[2].auth.introspect_always);
    assert_int_equal(cfg->gw_routes[2].auth.introspection_line, 30);
    assert_int_equal(cfg->n_routes, 0);
    pc_config_free(cfg);
}

static void test_external_url_from_public_url(void **state)
{
    (void)state;
    pc_config *cfg = parse_ok("server:\n  listen: \"[::1]:9443\"\n  tls: {cert: c, key: k}\n");
    assert_string_equal(cfg->gw.external_url, "https://[::1]:9443");
    pc_config_free(cfg);
    cfg = parse_ok("server:\n  listen: 127.0.0.1:1\n  public_url: https://x.example/\n"
                   "  tls: {cert: c, key: k}\n");
    assert_string_equal(cfg->gw.external_url, "https://x.example");
    pc_config_free(cfg);
}

static void test_upstream_errors(void **state)
{
    (void)state;
    expect_err(MIN_SERVER "upstreams:\n  demo:\n    url: http://10.0.0.1:9000\n",
               "t.yaml:8:10: upstreams.demo.url: expected http://127.0.0.1:PORT or "
               "https://HOST[:PORT] (plain http only to loopback");
    expect_err(MIN_SERVER "upstreams:\n  demo:\n    url: https://api.internal\n",
               "t.yaml:8:5: upstreams.demo: missing required key \"ca\"");
    expect_err(MIN_SERVER "upstreams:\n  demo:\n    url: ftp://127.0.0.1\n",
               "t.yaml:8:10: upstreams.demo.url: expected http://127.0.0.1:PORT or "
               "https://HOST[:PORT] (the scheme must be http or https)");
    expect_err(MIN_SERVER "upstreams:\n  demo:\n    url: http://127.0.0.1:0\n",
               "t.yaml:8:10: upstreams.demo.url: expected");
    expect_err(MIN_SERVER "upstreams:\n  demo:\n    url: http://127.0.0.1/?q\n",
               "t.yaml:8:10: upstreams.demo.url: expected");
    expect_err(MIN_SERVER "upstreams:\n  demo:\n    url: http://user@127.0.0.1/\n",
               "t.yaml:8:10: upstreams.demo.url: expected");
    expect_err(MIN_SERVER "upstreams:\n  demo: {}\n",
               "t.yaml:7:9: upstreams.demo: missing required key \"url\"");
    expect_err(MIN_SERVER "upstreams:\n  demo: {url: 'http://127.0.0.1:1', max_idle: 0}\n",
               "t.yaml:7:47: upstreams.demo.max_idle:");
    expect_err(MIN_SERVER "upstreams:\n  demo: {url: 'http://127.0.0.1:1', timeout: 5}\n",
               "t.yaml:7:46: upstreams.demo.timeout:");
    expect_err(MIN_SERVER "upstreams:\n  demo: {url: 'http://127.0.0.1:1', colour: red}\n",
               "t.yaml:7:");
    expect_err(MIN_SERVER "upstreams:\n  bad name: {url: 'http://127.0.0.1:1'}\n",
               "t.yaml:7:3: upstreams: expected an upstream name");
    expect_err(MIN_SERVER "upstreams: [a]\n",
               "t.yaml:6:12: upstreams: expected a mapping of upstream names, got a list");
}

static void test_route_errors(void **state)
{
    (void)state;
    expect_err(MIN_SERVER DEMO_UPSTREAM "routes:\n  - {method: GET, path: /a, upstream: nope}\n",
               "t.yaml:10:39: routes[0].upstream: no upstream named \"nope\" in upstreams");
    expect_err(MIN_SERVER DEMO_UPSTREAM
               "routes:\n  - {method: GET, path: /a, static: {}, auth: {}}\n",
               "t.yaml:10:47: routes[0]: auth applies only to an upstream: route");
    expect_err(MIN_SERVER DEMO_UPSTREAM
               "routes:\n  - {method: GET, path: /a, handler: whoami, timeout: 1s}\n",
               "t.yaml:10:55: routes[0]: timeout applies only to an upstream: route");
    expect_err(MIN_SERVER DEMO_UPSTREAM
               "routes:\n  - {method: GET, path: /a, upstream: demo, static: {}}\n",
               "t.yaml:10:5: routes[0]: expected exactly one of static, handler or upstream");
    expect_err(MIN_SERVER DEMO_UPSTREAM
               "routes:\n  - {method: GET, path: /a, upstream: demo, auth: {}}\n",
               "t.yaml:10:51: routes[0].auth: missing required key \"audience\" (no "
               "as.resources to default from)");
    expect_err(MIN_SERVER DEMO_UPSTREAM
               "routes:\n  - {method: GET, path: /a, upstream: demo, auth: {audience: x, "
               "binding: bearer}}\n",
               "t.yaml:10:74: routes[0].auth.binding:");
    expect_err(MIN_SERVER DEMO_UPSTREAM
               "routes:\n  - {method: GET, path: /a, upstream: demo, auth: {audience: x, "
               "introspection: sometimes}}\n",
               "t.yaml:10:80: routes[0].auth.introspection: expected one of auto, always");
    expect_err(MIN_SERVER DEMO_UPSTREAM
               "routes:\n  - {method: GET, path: /a, upstream: demo, auth: {audience: x, "
               "scopes: ['a b']}}\n",
               "t.yaml:10:74: routes[0].auth.scopes[0]: expected a scope token");
    expect_err(MIN_SERVER DEMO_UPSTREAM
               "routes:\n  - {method: GET, path: /a, upstream: demo, auth: }\n",
               "t.yaml:10:");
    expect_err(MIN_SERVER DEMO_UPSTREAM
               "routes:\n  - {method: GET, path: /a, upstream: demo}\n"
               "  - {method: GET, path: /a, upstream: demo}\n",
               "t.yaml:11:5: routes[1]: duplicate route GET /a");
}

static void test_gateway_errors(void **state)
{
    (void)state;
    expect_err(MIN_SERVER "gateway:\n  external_url: http://x.example\n",
               "t.yaml:7:17: gateway.external_url: expected an https:// URL");
    expect_err(MIN_SERVER "gateway:\n  external_url: https://x.example/?a\n",
               "t.yaml:7:17: gateway.external_url: expected an https:// URL");
    expect_err(MIN_SERVER "gateway:\n  dpop: {proof_lifetime: 0s}\n",
               "t.yaml:7:26: gateway.dpop.proof_lifetime:");
    expect_err(MIN_SERVER "gateway:\n  dpop: {clock_skew: 60s}\n",
               "t.yaml:7:22: gateway.dpop.clock_skew:");
    expect_err(MIN_SERVER "gateway:\n  client_cert_header: {trusted_proxies: [10.0.0.0/33]}\n",
               "t.yaml:7:42: gateway.client_cert_header.trusted_proxies[0]: expected an "
               "address or CIDR");
    expect_err(MIN_SERVER "gateway:\n  client_cert_header: {trusted_proxies: [proxy.local]}\n",
               "t.yaml:7:42: gateway.client_cert_header.trusted_proxies[0]:");
    expect_err(MIN_SERVER "gateway:\n  client_cert_header: {name: 'Bad Name'}\n",
               "t.yaml:7:30: gateway.client_cert_header.name: expected a header name");
    expect_err(MIN_SERVER "gateway:\n  other: 1\n", "t.yaml:7:");
}

static void test_remote_as(void **state)
{
    (void)state;
    pc_config *cfg = parse_ok(MIN_SERVER
                              "gateway:\n"
                              "  remote_as:\n"
                              "    issuer: https://as.example.com\n"
                              "    jwks_url: https://as.example.com:8443/jwks\n"
                              "    ca: ca.pem\n"
                              "    min_refetch: 10s\n");
    assert_true(cfg->gw.remote);
    assert_string_equal(cfg->gw.remote_issuer, "https://as.example.com");
    assert_string_equal(cfg->gw.remote_jwks.host, "as.example.com");
    assert_int_equal(cfg->gw.remote_jwks.port, 8443);
    assert_string_equal(cfg->gw.remote_jwks.base_path, "/jwks");
    assert_string_equal(cfg->gw.remote_jwks.ca_file, "ca.pem");
    assert_int_equal(cfg->gw.remote_refresh_ms, 600000);
    assert_int_equal(cfg->gw.remote_min_refetch_ms, 10000);
    pc_config_free(cfg);
    cfg = parse_ok(MIN_SERVER
                   "gateway:\n"
                   "  remote_as:\n"
                   "    issuer: https://as.example.com\n"
                   "    jwks_url: https://as.example.com/jwks\n"
                   "    ca: ca.pem\n"
                   "    introspection:\n"
                   "      url: https://as.example.com/introspect\n"
                   "      client_id: gw-1\n"
                   "      cert: gw.pem\n"
                   "      key: gw.key\n");
    assert_true(cfg->gw.introspect);
    assert_string_equal(cfg->gw.introspection.base_path, "/introspect");
    assert_string_equal(cfg->gw.introspection.ca_file, "ca.pem");
    assert_string_equal(cfg->gw.introspection.cert_file, "gw.pem");
    assert_string_equal(cfg->gw.introspection_client_id, "gw-1");
    assert_int_equal(cfg->gw.introspection_cache_ms, 5000);
    assert_int_equal(cfg->gw.introspection_max_in_flight, 64); /* the default */
    pc_config_free(cfg);
    expect_err(MIN_SERVER "gateway:\n  remote_as: {issuer: 'https://a', jwks_url: 'https://a/j', "
               "ca: c, introspection: {url: 'https://a/i', client_id: x, cert: c, key: k, "
               "max_in_flight: 0}}\n",
               "t.yaml:7:");
    expect_err(MIN_SERVER "gateway:\n  remote_as: {issuer: 'https://a', jwks_url: 'https://a/j', "
               "ca: c, introspection: {url: 'http://127.0.0.1/i', client_id: x, cert: c, key: k}}\n",
               "t.yaml:7:");
    expect_err(MIN_SERVER "gateway:\n  remote_as: {issuer: 'https://a', jwks_url: 'https://a/j', "
               "ca: c, introspection: {url: 'https://a/i', client_id: 'a b', cert: c, key: k}}\n",
               "t.yaml:7:");
    expect_err(MIN_SERVER "gateway:\n  remote_as: {issuer: 'https://a', jwks_url: 'https://a/j', "
               "ca: c, introspection: {url: 'https://a/i', client_id: x}}\n",
               "t.yaml:7:");
    expect_err(MIN_SERVER "gateway:\n  remote_as: {issuer: 'https://a'}\n",
               "t.yaml:7:14: gateway.remote_as: missing required key \"jwks_url\" (or "
               "\"introspection\"");
    /* introspection alone: an AS whose tokens are only checked by asking it */
    cfg = parse_ok(MIN_SERVER "gateway:\n  remote_as: {issuer: 'https://a', ca: ca.pem, "
                   "introspection: {url: 'https://a/i', client_id: x, cert: c, key: k}}\n");
    assert_true(cfg->gw.remote);
    assert_false(cfg->gw.remote_keys);
    assert_true(cfg->gw.introspect);
    assert_string_equal(cfg->gw.introspection.ca_file, "ca.pem");
    pc_config_free(cfg);
    expect_err(MIN_SERVER "gateway:\n  remote_as: {issuer: 'https://a', jwks_url: 'https://a/jwks'}\n",
               "t.yaml:7:14: gateway.remote_as: missing required key \"ca\"");
    expect_err(MIN_SERVER "gateway:\n  remote_as: {issuer: 'http://a', jwks_url: 'http://127.0.0.1/j'}\n",
               "t.yaml:7:23: gateway.remote_as.issuer: expected an https issuer URL");
    expect_err(MIN_SERVER "gateway:\n  remote_as: {issuer: 'https://a', jwks_url: 'http://10.1.1.1/j'}\n",
               "t.yaml:7:46: gateway.remote_as.jwks_url: expected an https URL");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_external_url_from_public_url),
        cmocka_unit_test(test_upstream_errors),
        cmocka_unit_test(test_route_errors),
        cmocka_unit_test(test_gateway_errors),
        cmocka_unit_test(test_remote_as),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
