/* Unit tests for the config loader (src/core/config*.c): a full round
 * trip, defaults, each kind of error with its exact file:line:col, and the
 * duration and size parsers' edges. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/config.h"
#include "core/limits.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

/* The smallest valid config: lines 1-5. Error tests append from line 6. */
#define MIN_SERVER                                                             \
    "server:\n"                                                                \
    "  listen: 127.0.0.1:8443\n"                                               \
    "  tls:\n"                                                                 \
    "    cert: c.pem\n"                                                        \
    "    key: k.pem\n"

static pc_config *parse_ok(const char *yaml)
{
    pc_config *cfg = NULL;
    pc_result r = pc_config_parse("t.yaml", yaml, strlen(yaml), &cfg);
    if (!pc_ok(r)) fail_msg("unexpected failure: %s", pc_errmsg());
    assert_non_null(cfg);
    return cfg;
}

/* Parse yaml expecting failure with a message starting with want. */
static void expect_err(const char *yaml, const char *want)
{
    pc_config *cfg = (pc_config *)(uintptr_t)1;
    pc_result r = pc_config_parse("t.yaml", yaml, strlen(yaml), &cfg);
    if (pc_ok(r)) fail_msg("parsed, but wanted an error starting: %s", want);
    assert_null(cfg);
    assert_int_equal(r.err, PC_ERR_USAGE);
    if (strncmp(pc_errmsg(), want, strlen(want)) != 0)
        fail_msg("message:\n  %s\nwanted a message starting:\n  %s", pc_errmsg(), want);
}

/* ---- round trip and defaults ------------------------------------------- */

static const char full_config[] =
    "server:\n"
    "  listen: \"[::1]:9443\"\n"
    "  workers: 4\n"
    "  state_dir: /srv/portcullis\n"
    "  public_url: https://api.example.com/v1//\n"
    "  tls:\n"
    "    cert: var/pki/server.pem\n"
    "    key: var/pki/server.key\n"
    "    client_ca: [var/pki/ca.pem, var/pki/ca2.pem]\n"
    "    client_cert: required\n"
    "    min_version: 1.3\n"
    "  limits:\n"
    "    header_bytes: 32KiB\n"
    "    header_count: 100\n"
    "    body_bytes: 2MB\n"
    "    header_timeout: 1500ms\n"
    "    body_timeout: 1m\n"
    "    idle_timeout: 2h\n"
    "    shutdown_timeout: 5s\n"
    "    max_connections: 5000\n"
    "    max_connections_per_ip: 50\n"
    "    max_requests_per_connection: 1000\n"
    "log:\n"
    "  level: debug\n"
    "  access: false\n"
    "  file: /var/log/portcullis.log\n"
    "routes:\n"
    "  - method: GET\n"
    "    path: /accounts/{id}\n"
    "    static:\n"
    "      status: 201\n"
    "      content_type: text/plain; charset=utf-8\n"
    "      body: \"hi\\0there\"\n"
    "  - method: \"*\"\n"
    "    path: /whoami\n"
    "    handler: whoami\n";

static void check_full_server(const pc_config *c)
{
    assert_string_equal(c->path, "t.yaml");
    assert_string_equal(c->listen_host, "::1");
    assert_int_equal(c->listen_port, 9443);
    assert_int_equal(c->workers, 4);
    assert_string_equal(c->state_dir, "/srv/portcullis");
    assert_string_equal(c->public_url, "https://api.example.com/v1");
    assert_string_equal(c->tls.cert_file, "var/pki/server.pem");
    assert_string_equal(c->tls.key_file, "var/pki/server.key");
    assert_int_equal(c->tls.n_client_ca_files, 2);
    assert_string_equal(c->tls.client_ca_files[0], "var/pki/ca.pem");
    assert_string_equal(c->tls.client_ca_files[1], "var/pki/ca2.pem");
    assert_int_equal(c->tls.client_cert, PC_CLIENT_CERT_REQUIRED);
    assert_int_equal(c->tls.min_version, 13);
}

static void check_full_limits(const pc_limits_config *l)
{
    assert_int_equal(l->max_header_bytes, 32768);
    assert_int_equal(l->max_header_count, 100);
    assert_int_equal(l->max_body_bytes, 2000000);
    assert_int_equal(l->header_timeout_ms, 1500);
    assert_int_equal(l->body_timeout_ms, 60000);
    assert_int_equal(l->idle_timeout_ms, 7200000);
    assert_int_equal(l->shutdown_timeout_ms, 5000);
    assert_int_equal(l->max_connections, 5000);
    assert_int_equal(l->max_connections_per_ip, 50);
    assert_int_equal(l->max_requests_per_connection, 1000);
}

static void check_full_routes(const pc_config *c)
{
    assert_int_equal(c->n_routes, 2);
    const pc_route_config *r = &c->routes[0];
    assert_string_equal(r->method, "GET");
    assert_string_equal(r->path, "/accounts/{id}");
    assert_int_equal(r->kind, PC_ROUTE_STATIC);
    assert_int_equal(r->status, 201);
    assert_string_equal(r->content_type, "text/plain; charset=utf-8");
    assert_int_equal(r->body_len, 8);
    assert_memory_equal(r->body, "hi\0there", 9);
    assert_int_equal(r->line, 28);
    r = &c->routes[1];
    assert_string_equal(r->method, "*");
    assert_string_equal(r->path, "/whoami");
    assert_int_equal(r->kind, PC_ROUTE_WHOAMI);
    assert_int_equal(r->line, 34);
}

static void test_full_round_trip(void **state)
{
    pc_config *c = parse_ok(full_config);
    check_full_server(c);
    check_full_limits(&c->limits);
    assert_int_equal(c->log_level, PC_LOG_DEBUG);
    assert_false(c->access_log);
    assert_string_equal(c->log_file, "/var/log/portcullis.log");
    check_full_routes(c);
    pc_config_free(c);
}

static void test_defaults(void **state)
{
    pc_config *c = parse_ok(MIN_SERVER);
    assert_string_equal(c->listen_host, "127.0.0.1");
    assert_int_equal(c->listen_port, 8443);
    assert_int_equal(c->workers, 0);
    assert_string_equal(c->state_dir, "./var");
    assert_null(c->public_url);
    assert_int_equal(c->tls.n_client_ca_files, 0);
    assert_null(c->tls.client_ca_files);
    assert_int_equal(c->tls.client_cert, PC_CLIENT_CERT_OFF);
    assert_int_equal(c->tls.min_version, 12);
    assert_int_equal(c->limits.max_header_bytes, PC_DEFAULT_MAX_HEADER_BYTES);
    assert_int_equal(c->limits.max_header_count, PC_DEFAULT_MAX_HEADER_COUNT);
    assert_int_equal(c->limits.max_body_bytes, PC_DEFAULT_MAX_BODY_BYTES);
    assert_int_equal(c->limits.header_timeout_ms, PC_DEFAULT_HEADER_TIMEOUT_MS);
    assert_int_equal(c->limits.body_timeout_ms, PC_DEFAULT_BODY_TIMEOUT_MS);
    assert_int_equal(c->limits.idle_timeout_ms, PC_DEFAULT_IDLE_TIMEOUT_MS);
    assert_int_equal(c->limits.shutdown_timeout_ms, PC_DEFAULT_SHUTDOWN_TIMEOUT_MS);
    assert_int_equal(c->limits.max_connections, PC_DEFAULT_MAX_CONNECTIONS);
    assert_int_equal(c->limits.max_connections_per_ip, PC_DEFAULT_MAX_CONNECTIONS_PER_IP);
    assert_int_equal(c->limits.max_requests_per_connection,
                     PC_DEFAULT_MAX_REQUESTS_PER_CONNECTION);
    assert_int_equal(c->log_level, PC_LOG_INFO);
    assert_true(c->access_log);
    assert_null(c->log_file);
    assert_int_equal(c->n_routes, 0);
    assert_null(c->routes);
    pc_config_free(c);
}

static void test_route_defaults(void **state)
{
    pc_config *c = parse_ok(MIN_SERVER "routes:\n"
                                       "  - {method: POST, path: /, static: {}}\n"
                                       "  - {method: GET, path: /me, handler: whoami}\n");
    assert_int_equal(c->n_routes, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(c->routes[i].status, 200);
        assert_string_equal(c->routes[i].content_type, "application/json");
        assert_string_equal(c->routes[i].body, "");
        assert_int_equal(c->routes[i].body_len, 0);
        assert_int_equal(c->routes[i].line, 7 + (int)i);
    }
    assert_int_equal(c->routes[0].kind, PC_ROUTE_STATIC);
    assert_int_equal(c->routes[1].kind, PC_ROUTE_WHOAMI);
    pc_config_free(c);
}

static void test_listen_forms(void **state)
{
    pc_config *c = parse_ok("server:\n  listen: \"*:443\"\n  tls: {cert: c, key: k}\n");
    assert_string_equal(c->listen_host, "0.0.0.0");
    assert_int_equal(c->listen_port, 443);
    pc_config_free(c);
    c = parse_ok("server:\n  listen: '[::]:65535'\n  tls: {cert: c, key: k}\n");
    assert_string_equal(c->listen_host, "::");
    assert_int_equal(c->listen_port, 65535);
    pc_config_free(c);
    expect_err("server:\n  listen: localhost:8443\n  tls: {cert: c, key: k}\n",
               "t.yaml:2:11: server.listen: expected host:port like 127.0.0.1:8443");
    expect_err("server:\n  listen: ::1:8443\n  tls: {cert: c, key: k}\n",
               "t.yaml:2:11: server.listen: expected host:port");
    expect_err("server:\n  listen: 127.0.0.1\n  tls: {cert: c, key: k}\n",
               "t.yaml:2:11: server.listen: expected host:port");
    expect_err("server:\n  listen: 127.0.0.1:0\n  tls: {cert: c, key: k}\n",
               "t.yaml:2:11: server.listen: expected a port from 1 to 65535 after the colon, "
               "got \"127.0.0.1:0\"");
    expect_err("server:\n  listen: 127.0.0.1:65536\n  tls: {cert: c, key: k}\n",
               "t.yaml:2:11: server.listen: expected a port");
    expect_err("server:\n  listen: \"[::1]8443\"\n  tls: {cert: c, key: k}\n",
               "t.yaml:2:11: server.listen: expected host:port");
}

static void test_misc_values(void **state)
{
    pc_config *c = parse_ok(MIN_SERVER "    client_ca: ca.pem\n"
                                       "    client_cert: optional_no_ca\n"
                                       "    min_version: \"1.2\"\n"
                                       "  public_url: https://x.example\n"
                                       "log:\n  file: \"-\"\n  level: error\n");
    assert_int_equal(c->tls.n_client_ca_files, 1);
    assert_string_equal(c->tls.client_ca_files[0], "ca.pem");
    assert_int_equal(c->tls.client_cert, PC_CLIENT_CERT_OPTIONAL_NO_CA);
    assert_int_equal(c->tls.min_version, 12);
    assert_string_equal(c->public_url, "https://x.example");
    assert_null(c->log_file);
    assert_int_equal(c->log_level, PC_LOG_ERROR);
    pc_config_free(c);
    /* optional_no_ca needs no CA; a per-IP default yields to a lower total. */
    c = parse_ok(MIN_SERVER "    client_cert: optional_no_ca\n"
                            "  limits: {max_connections: 10, body_bytes: 0}\n");
    assert_int_equal(c->tls.n_client_ca_files, 0);
    assert_int_equal(c->limits.max_connections_per_ip, 10);
    assert_int_equal(c->limits.max_body_bytes, 0);
    pc_config_free(c);
}

static void test_names(void **state)
{
    assert_string_equal(pc_client_cert_mode_name(PC_CLIENT_CERT_OFF), "off");
    assert_string_equal(pc_client_cert_mode_name(PC_CLIENT_CERT_OPTIONAL_NO_CA),
                        "optional_no_ca");
    assert_string_equal(pc_client_cert_mode_name((pc_client_cert_mode)99), "unknown");
    assert_string_equal(pc_log_level_name(PC_LOG_WARN), "warn");
    assert_string_equal(pc_log_level_name((pc_log_level)99), "unknown");
}

/* ---- errors ------------------------------------------------------------ */

static void test_err_unknown_key(void **state)
{
    expect_err(MIN_SERVER "    cert_fiel: x.pem\n",
               "t.yaml:6:5: server.tls.cert_fiel: unknown key; expected one of cert, key, "
               "client_ca, client_cert, min_version");
    expect_err("sever:\n  listen: x\n",
               "t.yaml:1:1: sever: unknown key; expected one of server, log, routes");
    expect_err(MIN_SERVER "\"we ird\": 1\n", "t.yaml:6:1: \"we ird\": unknown key");
    expect_err(MIN_SERVER "routes:\n  - {method: GET, path: /, handler: whoami, x: 1}\n",
               "t.yaml:7:45: routes[0].x: unknown key; expected one of method, path, static, "
               "handler");
}

static void test_err_duplicate_key(void **state)
{
    expect_err(MIN_SERVER "  workers: 1\n  workers: 2\n",
               "t.yaml:7:3: server.workers: duplicate key; first set at line 6");
    expect_err(MIN_SERVER "log: {}\nlog: {}\n",
               "t.yaml:7:1: log: duplicate key; first set at line 6");
}

static void test_err_bad_duration(void **state)
{
    expect_err(MIN_SERVER "  limits:\n    header_timeout: 10\n",
               "t.yaml:7:21: server.limits.header_timeout: expected a duration with a unit "
               "(ms, s, m or h) like 300s, got \"10\"");
    expect_err(MIN_SERVER "  limits:\n    idle_timeout: 1.5s\n",
               "t.yaml:7:19: server.limits.idle_timeout: expected a duration like 1500ms, 300s, "
               "5m or 2h, got \"1.5s\"");
    expect_err(MIN_SERVER "  limits:\n    body_timeout: 0s\n",
               "t.yaml:7:19: server.limits.body_timeout: expected a duration from 1ms to 24h, "
               "got \"0s\"");
    expect_err(MIN_SERVER "  limits:\n    body_timeout: 25h\n",
               "t.yaml:7:19: server.limits.body_timeout: expected a duration from 1ms to 24h");
    expect_err(MIN_SERVER "  limits:\n    body_timeout: 99999999999h\n",
               "t.yaml:7:19: server.limits.body_timeout: expected a duration of at most");
}

static void test_err_bad_size(void **state)
{
    expect_err(MIN_SERVER "  limits:\n    body_bytes: lots\n",
               "t.yaml:7:17: server.limits.body_bytes: expected a size like 64KiB or 1MiB, got "
               "\"lots\"");
    expect_err(MIN_SERVER "  limits:\n    header_bytes: 512B\n",
               "t.yaml:7:19: server.limits.header_bytes: expected a size from 1KiB to 1MiB, got "
               "\"512B\"");
    expect_err(MIN_SERVER "  limits:\n    body_bytes: 65MiB\n",
               "t.yaml:7:17: server.limits.body_bytes: expected a size from 0B to 64MiB");
    expect_err(MIN_SERVER "  limits:\n    body_bytes: 4GiB\n",
               "t.yaml:7:17: server.limits.body_bytes: expected a size of at most 4294967295");
}

static void test_err_bad_enum(void **state)
{
    expect_err(MIN_SERVER "log:\n  level: verbose\n",
               "t.yaml:7:10: log.level: expected one of debug, info, warn, error, got "
               "\"verbose\"");
    expect_err(MIN_SERVER "    client_cert: maybe\n",
               "t.yaml:6:18: server.tls.client_cert: expected one of off, optional, required, "
               "optional_no_ca, got \"maybe\"");
    expect_err(MIN_SERVER "    min_version: 1.1\n",
               "t.yaml:6:18: server.tls.min_version: expected one of 1.2, 1.3, got \"1.1\"");
    expect_err(MIN_SERVER "log:\n  access: yes\n",
               "t.yaml:7:11: log.access: expected true or false (yes, no, on and off are not "
               "accepted), got \"yes\"");
    expect_err(MIN_SERVER "routes:\n  - {method: GET, path: /, handler: echo}\n",
               "t.yaml:7:37: routes[0].handler: expected one of whoami, got \"echo\"");
}

static void test_err_out_of_range(void **state)
{
    expect_err(MIN_SERVER "  workers: 257\n",
               "t.yaml:6:12: server.workers: expected an integer from 0 to 256, got \"257\"");
    expect_err(MIN_SERVER "  workers: -1\n",
               "t.yaml:6:12: server.workers: expected a decimal integer, got \"-1\"");
    expect_err(MIN_SERVER "  workers: 010\n",
               "t.yaml:6:12: server.workers: expected a decimal integer without leading zeros");
    expect_err(MIN_SERVER "  workers: 99999999999\n",
               "t.yaml:6:12: server.workers: expected an integer of at most 4294967295");
    expect_err(MIN_SERVER "  limits: {header_count: 0}\n",
               "t.yaml:6:26: server.limits.header_count: expected an integer from 1 to 1024");
    expect_err(MIN_SERVER "  limits: {max_connections: 10, max_connections_per_ip: 11}\n",
               "t.yaml:6:57: server.limits.max_connections_per_ip: expected at most "
               "max_connections (10), got 11");
    expect_err(MIN_SERVER "routes:\n  - {method: GET, path: /, static: {status: 600}}\n",
               "t.yaml:7:45: routes[0].static.status: expected an integer from 100 to 599");
}

static void test_err_missing_required(void **state)
{
    expect_err("server:\n  listen: 127.0.0.1:1\n",
               "t.yaml:2:3: server: missing required key \"tls\"");
    expect_err("log: {}\n", "t.yaml:1:1: missing required key \"server\"");
    expect_err("", "t.yaml:1:1: missing required key \"server\" (the file is empty)");
    expect_err("# only a comment\n", "t.yaml:1:1: missing required key \"server\"");
    expect_err("server:\n  listen: 127.0.0.1:1\n  tls:\n    cert: c\n",
               "t.yaml:4:5: server.tls: missing required key \"key\"");
    expect_err(MIN_SERVER "    client_cert: required\n",
               "t.yaml:4:5: server.tls: missing required key \"client_ca\" (client_cert: "
               "required needs it)");
    expect_err(MIN_SERVER "routes:\n  - method: GET\n    handler: whoami\n",
               "t.yaml:7:5: routes[0]: missing required key \"path\"");
}

static void test_err_wrong_type(void **state)
{
    expect_err("server:\n  listen: [a, b]\n  tls: {cert: c, key: k}\n",
               "t.yaml:2:11: server.listen: expected host:port like 127.0.0.1:8443, [::1]:8443 "
               "or *:8443, got a list");
    expect_err("server:\n  listen: 127.0.0.1:1\n  tls: yes\n",
               "t.yaml:3:8: server.tls: expected a mapping, got \"yes\"");
    expect_err(MIN_SERVER "routes: {a: b}\n",
               "t.yaml:6:9: routes: expected a list of routes, got a mapping");
    expect_err(MIN_SERVER "routes:\n  - GET /\n",
               "t.yaml:7:5: routes[0]: expected a mapping, got \"GET /\"");
    expect_err(MIN_SERVER "  state_dir:\n",
               "t.yaml:6:13: server.state_dir: expected a string, got nothing");
    expect_err(MIN_SERVER "  state_dir: ~\n",
               "t.yaml:6:14: server.state_dir: expected a string, got null");
    expect_err(MIN_SERVER "  state_dir: \"\"\n",
               "t.yaml:6:14: server.state_dir: expected a non-empty string, got \"\"");
    expect_err(MIN_SERVER "  state_dir: \"a\\x01b\"\n",
               "t.yaml:6:14: server.state_dir: expected a string without control characters, "
               "got \"a\\x01b\"");
    expect_err(MIN_SERVER "  state_dir: \"a\\0b\"\n",
               "t.yaml:6:14: server.state_dir: expected a value without NUL bytes");
    expect_err(MIN_SERVER "log:\n", "t.yaml:6:5: log: expected a mapping, got nothing");
    expect_err(MIN_SERVER "    client_ca: []\n",
               "t.yaml:6:16: server.tls.client_ca: expected a file name or a list of file names, "
               "got an empty list");
    expect_err(MIN_SERVER "    client_ca: [a, {b: c}]\n",
               "t.yaml:6:20: server.tls.client_ca[1]: expected a string, got a mapping");
    expect_err(MIN_SERVER "? [a]\n: b\n", "t.yaml:6:3: expected a key name, got a list");
    expect_err(MIN_SERVER "  public_url: http://x\n",
               "t.yaml:6:15: server.public_url: expected an https:// URL like "
               "https://api.example.com, got \"http://x\"");
    expect_err(MIN_SERVER "  public_url: https:///\n",
               "t.yaml:6:15: server.public_url: expected");
    expect_err(MIN_SERVER "  public_url: https://x/?a=b\n",
               "t.yaml:6:15: server.public_url: expected");
}

static void test_err_yaml_syntax(void **state)
{
    expect_err("server:\n  listen: [1, 2\n",
               "t.yaml:3:1: invalid YAML: did not find expected ',' or ']' (while parsing a "
               "flow sequence at line 2)");
    expect_err("server:\n  listen: a\n    b: c\n",
               "t.yaml:3:6: invalid YAML: mapping values are not allowed in this context");
    expect_err("server:\n\tlisten: x\n", "t.yaml:2:1: invalid YAML: found character that cannot "
                                         "start any token");
    expect_err("server: \"\xff\"\n", "t.yaml:1:10: invalid YAML: invalid leading UTF-8 octet "
                                     "(byte 0xff)");
}

static void test_err_yaml_features(void **state)
{
    expect_err("a: &x 1\nb: *x\n",
               "t.yaml:2:4: YAML aliases (*name) are not supported; write the value out");
    expect_err("server: !!map {}\n", "t.yaml:1:9: YAML tags (!...) are not supported");
    expect_err(MIN_SERVER "---\n" MIN_SERVER,
               "t.yaml:6:1: expected a single YAML document, found a second one");
    expect_err("a: [[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]\n",
               "t.yaml:1:19: YAML nested too deeply (more than 16 levels)");
    expect_err("- x\n", "t.yaml:1:1: expected a mapping, got a list");
}

static void test_err_duplicate_route(void **state)
{
    expect_err(MIN_SERVER "routes:\n"
                          "  - {method: GET, path: '/a/{id}', handler: whoami}\n"
                          "  - {method: POST, path: '/a/{id}', handler: whoami}\n"
                          "  - method: GET\n"
                          "    path: /a/{name}\n"
                          "    static: {}\n",
               "t.yaml:9:5: routes[2]: duplicate route GET /a/{name}; the same method and path "
               "were declared at line 7");
    /* The earliest repeat is reported, naming the route it repeats. */
    expect_err(MIN_SERVER "routes:\n"
                          "  - {method: GET, path: /x, handler: whoami}\n"
                          "  - {method: GET, path: /y, handler: whoami}\n"
                          "  - {method: GET, path: /y, handler: whoami}\n"
                          "  - {method: GET, path: /x, handler: whoami}\n"
                          "  - {method: GET, path: /x, handler: whoami}\n",
               "t.yaml:9:5: routes[2]: duplicate route GET /y; the same method and path were "
               "declared at line 8");
    expect_err(MIN_SERVER "routes:\n"
                          "  - {method: GET, path: /x, handler: whoami}\n"
                          "  - {method: PUT, path: /x, handler: whoami}\n"
                          "  - {method: GET, path: /x, handler: whoami}\n"
                          "  - {method: GET, path: /x, handler: whoami}\n",
               "t.yaml:9:5: routes[2]: duplicate route GET /x; the same method and path were "
               "declared at line 7");
    /* Same shape, different literal: not a duplicate. */
    pc_config *c = parse_ok(MIN_SERVER "routes:\n"
                                       "  - {method: GET, path: '/a/{id}', handler: whoami}\n"
                                       "  - {method: GET, path: '/a/{id}/b', handler: whoami}\n"
                                       "  - {method: GET, path: /a/b, handler: whoami}\n");
    assert_int_equal(c->n_routes, 3);
    pc_config_free(c);
}

static void route_path_err(const char *path, const char *why)
{
    char yaml[512], want[512];
    snprintf(yaml, sizeof yaml,
             MIN_SERVER "routes:\n  - {method: GET, handler: whoami, path: '%s'}\n", path);
    snprintf(want, sizeof want,
             "t.yaml:7:42: routes[0].path: expected a path template like /accounts/{id} (%s",
             why);
    expect_err(yaml, want);
}

static void test_err_bad_path_template(void **state)
{
    route_path_err("accounts", "it must start with \"/\"");
    route_path_err("/a//b", "empty segment");
    route_path_err("/a/", "empty segment");
    route_path_err("/a/{id", "a parameter is a whole segment");
    route_path_err("/a/{}", "a parameter is a whole segment");
    route_path_err("/a/{1x}", "a parameter is a whole segment");
    route_path_err("/a/x{id}", "a parameter is a whole segment {name}, not part of one");
    route_path_err("/a/{id}/b/{id}", "parameter {id} appears twice");
    route_path_err("/a/../b", "\".\" and \"..\" segments never reach a server");
    route_path_err("/a/%20", "character 37 is not allowed in a path");
    route_path_err("/a?b=c", "character 63 is not allowed");
    route_path_err("/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16/17/18/19/20/21/22/23/24/25/26/27/"
                   "28/29/30/31/32/33",
                   "more than 32 segments");
    route_path_err("/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}/{j}/{k}/{l}/{m}/{n}/{o}/{p}/{q}",
                   "more than 16 parameters");
    expect_err(MIN_SERVER "routes:\n  - {method: get, path: /, handler: whoami}\n",
               "t.yaml:7:14: routes[0].method: expected an upper-case HTTP method like GET or "
               "POST, or \"*\", got \"get\"");
    expect_err(MIN_SERVER "routes:\n  - {method: VERSION-CONTROLS, path: /, handler: whoami}\n",
               "t.yaml:7:14: routes[0].method: expected an upper-case HTTP method");
    expect_err(MIN_SERVER "routes:\n  - {method: G.T, path: /, handler: whoami}\n",
               "t.yaml:7:14: routes[0].method: expected an upper-case HTTP method");
    pc_config *c = parse_ok(MIN_SERVER "routes:\n"
                                       "  - {method: VERSION-CONTROL, path: /v, handler: whoami}\n"
                                       "  - {method: PROPFIND, path: '/a-b/~c/{_x1}/@d:e', "
                                       "handler: whoami}\n");
    pc_config_free(c);
}

static void test_err_static_and_handler(void **state)
{
    expect_err(MIN_SERVER "routes:\n  - {method: GET, path: /, handler: whoami, static: {}}\n",
               "t.yaml:7:5: routes[0]: expected exactly one of static or handler, got both");
    expect_err(MIN_SERVER "routes:\n  - {method: GET, path: /}\n",
               "t.yaml:7:5: routes[0]: expected exactly one of static or handler, got neither");
    expect_err(MIN_SERVER "routes:\n  - method: GET\n    path: /\n    static:\n",
               "t.yaml:9:12: routes[0].static: expected a mapping (write {} for all defaults), "
               "got nothing");
    expect_err(MIN_SERVER "routes:\n  - {method: GET, path: /, static: {content_type: json}}\n",
               "t.yaml:7:51: routes[0].static.content_type: expected a media type like "
               "application/json, got \"json\"");
    expect_err(MIN_SERVER "routes:\n  - {method: GET, path: /, static: {body: }}\n",
               "t.yaml:7:43: routes[0].static.body: expected a string (write '' for an empty "
               "body), got nothing");
}

static void test_err_too_many_routes(void **state)
{
    size_t n = PC_MAX_ROUTES + 1;
    size_t cap = strlen(MIN_SERVER) + 16 + n * 8;
    char *yaml = malloc(cap);
    assert_non_null(yaml);
    size_t at = (size_t)snprintf(yaml, cap, "%sroutes: [", MIN_SERVER);
    for (size_t i = 0; i < n; i++)
        at += (size_t)snprintf(yaml + at, cap - at, "%s{}", i ? "," : "");
    snprintf(yaml + at, cap - at, "]\n");
    expect_err(yaml, "t.yaml:6:9: routes: expected at most 4096 routes, got 4097");
    free(yaml);
}

static void test_err_oversize(void **state)
{
    size_t len = PC_MAX_CONFIG_BYTES + 1;
    char *big = malloc(len);
    assert_non_null(big);
    memset(big, '#', len);
    pc_config *cfg = NULL;
    pc_result r = pc_config_parse("t.yaml", big, len, &cfg);
    assert_false(pc_ok(r));
    assert_null(cfg);
    assert_string_equal(pc_errmsg(),
                        "t.yaml: config is 4194305 bytes; the limit is 4194304 (4MiB)");
    free(big);
}

static void test_err_too_many_nodes(void **state)
{
    /* Each "1," is a node; the bound trips before any node is built. */
    size_t n = 100001;
    char *yaml = malloc(8 + 2 * n + 4);
    assert_non_null(yaml);
    size_t at = (size_t)sprintf(yaml, "x: [");
    for (size_t i = 0; i < n; i++) at += (size_t)sprintf(yaml + at, "1,");
    sprintf(yaml + at, "]\n");
    pc_config *cfg = NULL;
    assert_false(pc_ok(pc_config_parse("t.yaml", yaml, strlen(yaml), &cfg)));
    assert_null(cfg);
    assert_non_null(strstr(pc_errmsg(), "t.yaml:1:"));
    assert_non_null(strstr(pc_errmsg(), ": too many YAML nodes (more than 100000)"));
    free(yaml);
}

static void test_parse_null_data(void **state)
{
    pc_config *cfg = NULL;
    assert_false(pc_ok(pc_config_parse(NULL, NULL, 0, &cfg)));
    assert_null(cfg);
    assert_string_equal(pc_errmsg(),
                        "config:1:1: missing required key \"server\" (the file is empty)");
    assert_false(pc_ok(pc_config_parse("t.yaml", NULL, 5, &cfg)));
    assert_string_equal(pc_errmsg(), "t.yaml: no config data");
}

/* ---- durations and sizes ----------------------------------------------- */

static void dur_ok(const char *s, uint32_t want)
{
    uint32_t v = 12345;
    if (!pc_ok(pc_parse_duration_ms(s, &v))) fail_msg("%s: %s", s, pc_errmsg());
    assert_int_equal(v, want);
}

static void dur_bad(const char *s)
{
    uint32_t v = 12345;
    if (pc_ok(pc_parse_duration_ms(s, &v))) fail_msg("duration \"%s\" was accepted", s);
    assert_int_equal(v, 12345);
    assert_non_null(strstr(pc_errmsg(), "expected"));
}

static void test_durations(void **state)
{
    dur_ok("0s", 0);
    dur_ok("0ms", 0);
    dur_ok("1500ms", 1500);
    dur_ok("300s", 300000);
    dur_ok("5m", 300000);
    dur_ok("2h", 7200000);
    dur_ok("007s", 7000);
    dur_ok("4294967295ms", UINT32_MAX);
    dur_ok("4294967s", 4294967000u);
    dur_ok("1193h", 1193u * 3600000u);
    dur_bad("4294967296ms");
    dur_bad("4294968s");
    dur_bad("1194h");
    dur_bad("99999999999999999999999s");
    dur_bad("10");
    dur_bad("10 s");
    dur_bad(" 10s");
    dur_bad("10s ");
    dur_bad("-1s");
    dur_bad("+1s");
    dur_bad("1.5s");
    dur_bad("1e3ms");
    dur_bad("s");
    dur_bad("");
    dur_bad("10S");
    dur_bad("10sec");
    dur_bad("10d");
    dur_bad("0x10s");
    dur_bad(NULL);
    uint32_t v = 0;
    assert_false(pc_ok(pc_parse_duration_ms("10", &v)));
    assert_string_equal(pc_errmsg(),
                        "expected a duration with a unit (ms, s, m or h) like 300s, got \"10\"");
}

static void size_ok(const char *s, uint32_t want)
{
    uint32_t v = 12345;
    if (!pc_ok(pc_parse_size(s, &v))) fail_msg("%s: %s", s, pc_errmsg());
    assert_int_equal(v, want);
}

static void size_bad(const char *s)
{
    uint32_t v = 12345;
    if (pc_ok(pc_parse_size(s, &v))) fail_msg("size \"%s\" was accepted", s);
    assert_int_equal(v, 12345);
}

static void test_sizes(void **state)
{
    size_ok("0", 0);
    size_ok("10", 10);
    size_ok("512B", 512);
    size_ok("64KiB", 65536);
    size_ok("64KB", 64000);
    size_ok("1MiB", 1048576);
    size_ok("1MB", 1000000);
    size_ok("1GiB", 1073741824);
    size_ok("3GiB", 3221225472u);
    size_ok("4GB", 4000000000u);
    size_ok("4294967295", UINT32_MAX);
    size_bad("4294967296");
    size_bad("4GiB");
    size_bad("5GB");
    size_bad("4194304KiB");
    size_bad("99999999999999999999999999");
    size_bad("KiB");
    size_bad("");
    size_bad("1 KiB");
    size_bad("-1");
    size_bad("+1");
    size_bad("1.5MiB");
    size_bad("1kib");
    size_bad("1K");
    size_bad("1TiB");
    size_bad(NULL);
    uint32_t v = 0;
    assert_false(pc_ok(pc_parse_size("lots", &v)));
    assert_string_equal(pc_errmsg(), "expected a size like 64KiB or 1MiB, got \"lots\"");
}

/* ---- files ------------------------------------------------------------- */

static void test_load_file(void **state)
{
    char path[] = "/tmp/pc_test_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *yaml = MIN_SERVER "  workers: 3\n";
    assert_int_equal(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
    close(fd);
    pc_config *c = NULL;
    if (!pc_ok(pc_config_load(path, &c))) fail_msg("%s", pc_errmsg());
    assert_string_equal(c->path, path);
    assert_int_equal(c->workers, 3);
    pc_config_free(c);

    fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "  bogus: 1\n", 11), 11);
    close(fd);
    c = (pc_config *)(uintptr_t)1;
    assert_false(pc_ok(pc_config_load(path, &c)));
    assert_null(c);
    char want[128];
    snprintf(want, sizeof want, "%s:7:3: server.bogus: unknown key", path);
    assert_memory_equal(pc_errmsg(), want, strlen(want));
    unlink(path);
}

static void test_load_missing(void **state)
{
    pc_config *c = (pc_config *)(uintptr_t)1;
    pc_result r = pc_config_load("/nonexistent/portcullis.yaml", &c);
    assert_false(pc_ok(r));
    assert_null(c);
    assert_int_equal(r.err, PC_ERR_IO);
    assert_string_equal(pc_errmsg(),
                        "/nonexistent/portcullis.yaml: cannot open config: No such file or "
                        "directory");
    r = pc_config_load("/tmp", &c);
    assert_false(pc_ok(r));
    assert_string_equal(pc_errmsg(), "/tmp: config is not a regular file");
    pc_config_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_round_trip),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_route_defaults),
        cmocka_unit_test(test_listen_forms),
        cmocka_unit_test(test_misc_values),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_err_unknown_key),
        cmocka_unit_test(test_err_duplicate_key),
        cmocka_unit_test(test_err_bad_duration),
        cmocka_unit_test(test_err_bad_size),
        cmocka_unit_test(test_err_bad_enum),
        cmocka_unit_test(test_err_out_of_range),
        cmocka_unit_test(test_err_missing_required),
        cmocka_unit_test(test_err_wrong_type),
        cmocka_unit_test(test_err_yaml_syntax),
        cmocka_unit_test(test_err_yaml_features),
        cmocka_unit_test(test_err_duplicate_route),
        cmocka_unit_test(test_err_bad_path_template),
        cmocka_unit_test(test_err_static_and_handler),
        cmocka_unit_test(test_err_too_many_routes),
        cmocka_unit_test(test_err_oversize),
        cmocka_unit_test(test_err_too_many_nodes),
        cmocka_unit_test(test_parse_null_data),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_load_missing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
