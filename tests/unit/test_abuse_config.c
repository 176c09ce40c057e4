/* Unit tests for the abuse-resistance config (src/core/config_abuse.c):
 * rate_limits, a route's identifier/max_distinct/rate_limits, as.rate_limits
 * and the failure limits, detect, admin; defaults, values and errors with
 * file:line:col. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/config.h"

#include <string.h>

/* Lines 1-8. */
#define BASE                                                                   \
    "server:\n"                                                                \
    "  listen: 127.0.0.1:8443\n"                                               \
    "  tls:\n"                                                                 \
    "    cert: c.pem\n"                                                        \
    "    key: k.pem\n"                                                         \
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
    pc_config *cfg = parse_ok(BASE);
    assert_false(cfg->detect.enabled);
    assert_int_equal(cfg->n_rate_limits, 0);
    assert_int_equal(cfg->as.auth_failures_per_minute, 10);
    assert_int_equal(cfg->as.auth_failures_per_minute_per_ip, 30);
    /* credentials revoke rather than quarantine (the victim's client_id) */
    assert_int_equal(cfg->detect.credentials.actions, PC_ACT_ALERT | PC_ACT_REVOKE);
    assert_int_equal(cfg->detect.enumeration.actions, PC_ACT_ALERT | PC_ACT_QUARANTINE);
    pc_config_free(cfg);
    cfg = parse_ok(BASE "detect:\n");
    assert_true(cfg->detect.enabled);
    assert_int_equal(cfg->detect.enumeration.max_distinct, 300);
    assert_int_equal(cfg->detect.quarantine_ms, 3600000);
    pc_config_free(cfg);
}

static void test_values(void **state)
{
    (void)state;
    pc_config *cfg = parse_ok(BASE
                              "rate_limits:\n"
                              "  partner: {quota: 20, window: 1s, burst: 40, key: [client_id, route]}\n"
                              "  per-ip: {quota: 600, window: 60s, key: [ip]}\n"
                              "routes:\n"
                              "  - method: GET\n"
                              "    path: /customers/{tag}\n"
                              "    upstream: demo\n"
                              "    identifier: true\n"
                              "    max_distinct: 100\n"
                              "    rate_limits: [per-ip, partner]\n"
                              "detect:\n"
                              "  learning_period: 60s\n"
                              "  throttle_factor: 0.5\n"
                              "  webhook: {url: 'http://127.0.0.1:9999/hook'}\n"
                              "  enumeration: {window: 1m, max_distinct: 50, baseline_factor: 2.5, actions: [log]}\n"
                              "  volume: {enabled: false}\n"
                              "admin:\n"
                              "  clients: [abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ]\n");
    assert_int_equal(cfg->n_rate_limits, 2);
    assert_string_equal(cfg->rate_limits[0].name, "partner");
    assert_int_equal(cfg->rate_limits[0].quota, 20);
    assert_int_equal(cfg->rate_limits[0].window_ms, 1000);
    assert_int_equal(cfg->rate_limits[0].burst, 40);
    assert_int_equal(cfg->rate_limits[0].key, PC_RL_KEY_CLIENT | PC_RL_KEY_ROUTE);
    assert_int_equal(cfg->rate_limits[1].burst, 600); /* default: quota */
    assert_int_equal(cfg->n_gw_routes, 1);
    const pc_route_config *r = &cfg->gw_routes[0];
    assert_true(r->identifier);
    assert_int_equal(r->max_distinct, 100);
    assert_int_equal(r->n_rate_limits, 2);
    assert_int_equal(r->rate_limits[0], 1);
    assert_int_equal(r->rate_limits[1], 0);
    assert_true(cfg->detect.enabled);
    assert_int_equal(cfg->detect.learning_ms, 60000);
    assert_true(cfg->detect.throttle_factor == 0.5);
    assert_string_equal(cfg->detect.webhook_host, "127.0.0.1");
    assert_int_equal(cfg->detect.webhook_port, 9999);
    assert_string_equal(cfg->detect.webhook_path, "/hook");
    assert_int_equal(cfg->detect.enumeration.window_ms, 60000);
    assert_true(cfg->detect.enumeration.baseline_factor == 2.5);
    assert_int_equal(cfg->detect.enumeration.actions, PC_ACT_LOG);
    assert_false(cfg->detect.volume.enabled);
    assert_int_equal(cfg->admin.n_clients, 1);
    pc_config_free(cfg);
}

static void test_errors(void **state)
{
    (void)state;
    expect_err(BASE "rate_limits:\n  p: {quota: 0, window: 1s, key: [ip]}\n",
               "t.yaml:10:14: rate_limits.p.quota: expected an integer from 1");
    expect_err(BASE "rate_limits:\n  p: {quota: 5, window: 1s}\n",
               "t.yaml:10:6: rate_limits.p: missing required key \"key\"");
    expect_err(BASE "rate_limits:\n  p: {quota: 5, window: 1s, key: [ip, ip]}\n",
               "t.yaml:10:39: rate_limits.p.key[1]: \"ip\" is listed twice");
    expect_err(BASE "rate_limits:\n  'a b': {quota: 5, window: 1s, key: [ip]}\n",
               "t.yaml:10:3: rate_limits: expected a policy name");
    expect_err(BASE "routes:\n  - {method: GET, path: '/a/{x}', upstream: demo, rate_limits: [p]}\n",
               "t.yaml:10:65: routes[0].rate_limits[0]: no policy named \"p\"");
    expect_err(BASE "routes:\n  - {method: GET, path: '/a/{x}', static: {}, identifier: true}\n",
               "t.yaml:10:59: routes[0]: identifier, max_distinct and rate_limits apply only");
    expect_err(BASE "routes:\n  - {method: GET, path: '/a/{x}', upstream: demo, max_distinct: 5}\n",
               "t.yaml:10:65: routes[0].max_distinct: applies only with identifier: true");
    expect_err(BASE "detect:\n  throttle_factor: 1.5\n",
               "t.yaml:10:20: detect.throttle_factor: expected a number from 0.001 to 1");
    expect_err(BASE "detect:\n  probing: {max_ratio: -1}\n",
               "t.yaml:10:24: detect.probing.max_ratio: expected a number from 0.01 to 1");
    expect_err(BASE "detect:\n  enumeration: {actions: [revoke]}\n",
               "t.yaml:10:27: detect.enumeration.actions[0]: revoke needs the authorization server");
    expect_err(BASE "detect:\n  webhook: {url: 'https://siem.example/x'}\n",
               "t.yaml:10:12: detect.webhook: an https webhook needs ca");
    expect_err(BASE "detect:\n  bogus: 1\n", "t.yaml:10:3: detect.bogus: unknown key; expected one of enabled");
    expect_err(BASE "admin:\n  clients: [short]\n",
               "t.yaml:10:13: admin.clients[0]: expected a certificate thumbprint");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
