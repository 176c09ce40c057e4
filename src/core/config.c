/* The config schema: which keys exist, their defaults and their ranges.
 * docs/configuration.md is the reference for operators; keep the two in
 * step. Generic YAML walking lives in config_yaml.c, typed values in
 * config_values.c and routes in config_routes.c. */
#include "core/config.h"
#include "core/config_impl.h"
#include "core/limits.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Open connections: past a million the process runs out of descriptors
 * and kernel memory long before this check matters. */
#define CONFIG_MAX_CONNECTIONS_MAX 1000000u
/* Timeouts: one millisecond to one day. A longer timeout is a leak. */
#define CONFIG_TIMEOUT_MIN_MS 1u
#define CONFIG_TIMEOUT_MAX_MS (24u * 60u * 60u * 1000u)

#define GOT_CAP (4u * PC_CONFIG_MAX_QUOTE + 8u)
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* ---- names ------------------------------------------------------------- */

static const char *const cert_mode_names[] = {
    [PC_CLIENT_CERT_OFF] = "off",
    [PC_CLIENT_CERT_OPTIONAL] = "optional",
    [PC_CLIENT_CERT_REQUIRED] = "required",
    [PC_CLIENT_CERT_OPTIONAL_NO_CA] = "optional_no_ca",
};

static const char *const log_level_names[] = {
    [PC_LOG_DEBUG] = "debug",
    [PC_LOG_INFO] = "info",
    [PC_LOG_WARN] = "warn",
    [PC_LOG_ERROR] = "error",
};

const char *pc_client_cert_mode_name(pc_client_cert_mode m)
{
    if ((size_t)m >= N_OF(cert_mode_names)) return "unknown";
    return cert_mode_names[m];
}

const char *pc_log_level_name(pc_log_level l)
{
    if ((size_t)l >= N_OF(log_level_names)) return "unknown";
    return log_level_names[l];
}

/* ---- server.listen ----------------------------------------------------- */

/* host:port, where host is an IPv4 literal, a bracketed IPv6 literal or
 * "*" (all IPv4 addresses). Names are refused: a listener bound to what a
 * resolver said at start-up changes with DNS, and an operator should see
 * the address being bound. */
static bool split_listen(const char *s, char *host, size_t cap, const char **port)
{
    const char *colon = NULL;
    const char *h = s;
    size_t hlen = 0;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':') return false;
        h = s + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL) return false;
        hlen = (size_t)(colon - s);
    }
    if (hlen == 0 || hlen >= cap) return false;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = colon + 1;
    return true;
}

static bool valid_host(char *host, bool bracketed)
{
    unsigned char addr[16];
    if (bracketed) return inet_pton(AF_INET6, host, addr) == 1;
    if (strcmp(host, "*") == 0) {
        strcpy(host, "0.0.0.0");
        return true;
    }
    return inet_pton(AF_INET, host, addr) == 1;
}

static pc_result parse_listen(pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                              pc_config *cfg)
{
    static const char expected[] = "host:port like 127.0.0.1:8443, [::1]:8443 or *:8443";
    char got[GOT_CAP];
    const char *s = NULL;
    const char *port_text = NULL;
    char host[64];
    uint32_t port = 0;
    PC_GUARD(pc_cfg_text(d, n, path, expected, &s));
    pc_cfg_describe(n, got, sizeof got);
    if (!split_listen(s, host, sizeof host, &port_text) || !valid_host(host, s[0] == '['))
        return pc_cfg_fail(d, n, path, "expected %s (an IP address, not a name), got %s",
                           expected, got);
    if (!pc_ok(pc_cfg_parse_uint(port_text, &port)) || port < 1 || port > 65535)
        return pc_cfg_fail(d, n, path, "expected a port from 1 to 65535 after the colon, got %s",
                           got);
    PC_GUARD(pc_cfg_strdup(host, &cfg->listen_host));
    cfg->listen_port = (uint16_t)port;
    return PC_OK;
}

/* ---- server.public_url ------------------------------------------------- */

static bool valid_public_url(const char *s)
{
    static const char scheme[] = "https://";
    if (strncmp(s, scheme, sizeof scheme - 1) != 0) return false;
    const char *rest = s + sizeof scheme - 1;
    if (rest[0] == '\0' || rest[0] == '/') return false;
    /* The URL is a base that paths are appended to: a query or fragment
     * would end up in the middle of every URL built from it. */
    return strpbrk(rest, "?# ") == NULL;
}

static pc_result parse_public_url(pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                                  pc_config *cfg)
{
    PC_GUARD(pc_cfg_string(d, n, path, &cfg->public_url));
    if (!valid_public_url(cfg->public_url)) {
        char got[GOT_CAP];
        pc_cfg_describe(n, got, sizeof got);
        return pc_cfg_fail(d, n, path,
                           "expected an https:// URL like https://api.example.com, got %s", got);
    }
    /* Stored without a trailing slash so callers can append "/path". The
     * scheme check above guarantees a host, so this stops before it. */
    size_t len = strlen(cfg->public_url);
    while (len > 0 && cfg->public_url[len - 1] == '/') cfg->public_url[--len] = '\0';
    return PC_OK;
}

/* ---- server.tls -------------------------------------------------------- */

enum { TLS_CERT, TLS_KEY, TLS_CLIENT_CA, TLS_CLIENT_CERT, TLS_MIN_VERSION, N_TLS };
static const char *const tls_keys[N_TLS] = {
    [TLS_CERT] = "cert",
    [TLS_KEY] = "key",
    [TLS_CLIENT_CA] = "client_ca",
    [TLS_CLIENT_CERT] = "client_cert",
    [TLS_MIN_VERSION] = "min_version",
};

static pc_result parse_client_ca(pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                                 pc_tls_config *tls)
{
    if (n->type != YAML_SEQUENCE_NODE) {
        tls->client_ca_files = calloc(1, sizeof *tls->client_ca_files);
        PC_ENSURE(tls->client_ca_files != NULL, PC_ERR_INTERNAL, "out of memory");
        tls->n_client_ca_files = 1;
        return pc_cfg_string(d, n, path, &tls->client_ca_files[0]);
    }
    size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count == 0)
        return pc_cfg_fail(d, n, path,
                           "expected a file name or a list of file names, got an empty list");
    tls->client_ca_files = calloc(count, sizeof *tls->client_ca_files);
    PC_ENSURE(tls->client_ca_files != NULL, PC_ERR_INTERNAL, "out of memory");
    tls->n_client_ca_files = count;
    for (size_t i = 0; i < count; i++) {
        char item[PC_CONFIG_MAX_PATH];
        pc_cfg_path_index(item, sizeof item, path, i);
        yaml_node_t *v = pc_cfg_node(d, n->data.sequence.items.start[i]);
        PC_GUARD(pc_cfg_string(d, v, item, &tls->client_ca_files[i]));
    }
    return PC_OK;
}

static pc_result parse_tls_enums(pc_cfg_doc *d, yaml_node_t **v, const char *path,
                                 pc_tls_config *tls)
{
    /* "1.2" quoted or not: a plain 1.2 is the same text to us. */
    static const char *const versions[] = {"1.2", "1.3"};
    char sub[PC_CONFIG_MAX_PATH];
    int i = 0;
    if (v[TLS_CLIENT_CERT] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, tls_keys[TLS_CLIENT_CERT]);
        PC_GUARD(pc_cfg_enum(d, v[TLS_CLIENT_CERT], sub, cert_mode_names,
                             N_OF(cert_mode_names), &i));
        tls->client_cert = (pc_client_cert_mode)i;
    }
    if (v[TLS_MIN_VERSION] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, tls_keys[TLS_MIN_VERSION]);
        PC_GUARD(pc_cfg_enum(d, v[TLS_MIN_VERSION], sub, versions, N_OF(versions), &i));
        tls->min_version = i == 0 ? 12 : 13;
    }
    return PC_OK;
}

static pc_result parse_tls(pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                           pc_tls_config *tls)
{
    yaml_node_t *v[N_TLS];
    char sub[PC_CONFIG_MAX_PATH];
    PC_GUARD(pc_cfg_map(d, n, path, tls_keys, N_TLS, v));
    PC_GUARD(pc_cfg_require(d, n, path, tls_keys[TLS_CERT], v[TLS_CERT]));
    PC_GUARD(pc_cfg_require(d, n, path, tls_keys[TLS_KEY], v[TLS_KEY]));
    pc_cfg_path(sub, sizeof sub, path, tls_keys[TLS_CERT]);
    PC_GUARD(pc_cfg_string(d, v[TLS_CERT], sub, &tls->cert_file));
    pc_cfg_path(sub, sizeof sub, path, tls_keys[TLS_KEY]);
    PC_GUARD(pc_cfg_string(d, v[TLS_KEY], sub, &tls->key_file));
    tls->cert_line = (int)v[TLS_CERT]->start_mark.line + 1;
    tls->cert_col = (int)v[TLS_CERT]->start_mark.column + 1;
    tls->key_line = (int)v[TLS_KEY]->start_mark.line + 1;
    tls->key_col = (int)v[TLS_KEY]->start_mark.column + 1;
    if (v[TLS_CLIENT_CA] != NULL) {
        tls->ca_line = (int)v[TLS_CLIENT_CA]->start_mark.line + 1;
        tls->ca_col = (int)v[TLS_CLIENT_CA]->start_mark.column + 1;
        pc_cfg_path(sub, sizeof sub, path, tls_keys[TLS_CLIENT_CA]);
        PC_GUARD(parse_client_ca(d, v[TLS_CLIENT_CA], sub, tls));
    }
    PC_GUARD(parse_tls_enums(d, v, path, tls));
    /* Verifying a client certificate needs something to verify it against;
     * without a CA every certificate would fail, or worse, be trusted. */
    bool needs_ca = tls->client_cert == PC_CLIENT_CERT_OPTIONAL ||
                    tls->client_cert == PC_CLIENT_CERT_REQUIRED;
    if (needs_ca && tls->n_client_ca_files == 0)
        return pc_cfg_fail(d, n, path,
                           "missing required key \"client_ca\" (client_cert: %s needs it)",
                           pc_client_cert_mode_name(tls->client_cert));
    return PC_OK;
}

/* ---- server.limits ----------------------------------------------------- */

enum {
    LIM_HEADER_BYTES,
    LIM_HEADER_COUNT,
    LIM_BODY_BYTES,
    LIM_HEADER_TIMEOUT,
    LIM_BODY_TIMEOUT,
    LIM_IDLE_TIMEOUT,
    LIM_SHUTDOWN_TIMEOUT,
    LIM_MAX_CONNECTIONS,
    LIM_MAX_CONNECTIONS_PER_IP,
    LIM_MAX_REQUESTS_PER_CONNECTION,
    N_LIM
};
static const char *const limit_keys[N_LIM] = {
    [LIM_HEADER_BYTES] = "header_bytes",
    [LIM_HEADER_COUNT] = "header_count",
    [LIM_BODY_BYTES] = "body_bytes",
    [LIM_HEADER_TIMEOUT] = "header_timeout",
    [LIM_BODY_TIMEOUT] = "body_timeout",
    [LIM_IDLE_TIMEOUT] = "idle_timeout",
    [LIM_SHUTDOWN_TIMEOUT] = "shutdown_timeout",
    [LIM_MAX_CONNECTIONS] = "max_connections",
    [LIM_MAX_CONNECTIONS_PER_IP] = "max_connections_per_ip",
    [LIM_MAX_REQUESTS_PER_CONNECTION] = "max_requests_per_connection",
};

typedef enum { KIND_SIZE, KIND_DURATION, KIND_COUNT } limit_kind;

typedef struct limit_rule {
    limit_kind kind;
    uint32_t min, max;
    size_t offset; /* of the uint32_t field in pc_limits_config */
} limit_rule;

#define RULE(k, lo, hi, field) {(k), (lo), (hi), offsetof(pc_limits_config, field)}
static const limit_rule limit_rules[N_LIM] = {
    [LIM_HEADER_BYTES] = RULE(KIND_SIZE, 1024u, PC_MAX_HEADER_BYTES_MAX, max_header_bytes),
    [LIM_HEADER_COUNT] = RULE(KIND_COUNT, 1u, PC_MAX_HEADER_COUNT_MAX, max_header_count),
    [LIM_BODY_BYTES] = RULE(KIND_SIZE, 0u, PC_MAX_BODY_BYTES_MAX, max_body_bytes),
    [LIM_HEADER_TIMEOUT] = RULE(KIND_DURATION, CONFIG_TIMEOUT_MIN_MS, CONFIG_TIMEOUT_MAX_MS,
                                header_timeout_ms),
    [LIM_BODY_TIMEOUT] = RULE(KIND_DURATION, CONFIG_TIMEOUT_MIN_MS, CONFIG_TIMEOUT_MAX_MS,
                              body_timeout_ms),
    [LIM_IDLE_TIMEOUT] = RULE(KIND_DURATION, CONFIG_TIMEOUT_MIN_MS, CONFIG_TIMEOUT_MAX_MS,
                              idle_timeout_ms),
    [LIM_SHUTDOWN_TIMEOUT] = RULE(KIND_DURATION, CONFIG_TIMEOUT_MIN_MS, CONFIG_TIMEOUT_MAX_MS,
                                  shutdown_timeout_ms),
    [LIM_MAX_CONNECTIONS] = RULE(KIND_COUNT, 1u, CONFIG_MAX_CONNECTIONS_MAX, max_connections),
    [LIM_MAX_CONNECTIONS_PER_IP] = RULE(KIND_COUNT, 1u, CONFIG_MAX_CONNECTIONS_MAX,
                                        max_connections_per_ip),
    [LIM_MAX_REQUESTS_PER_CONNECTION] = RULE(KIND_COUNT, 1u, UINT32_MAX,
                                             max_requests_per_connection),
};

static uint32_t *limit_field(pc_limits_config *lim, size_t offset)
{
    /* offset comes from offsetof on a uint32_t member, so it is aligned. */
    return (uint32_t *)(void *)((char *)lim + offset);
}

static pc_result parse_limit(pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                             const limit_rule *r, pc_limits_config *lim)
{
    uint32_t *out = limit_field(lim, r->offset);
    switch (r->kind) {
    case KIND_SIZE: return pc_cfg_size(d, n, path, r->min, r->max, out);
    case KIND_DURATION: return pc_cfg_duration(d, n, path, r->min, r->max, out);
    case KIND_COUNT: return pc_cfg_uint(d, n, path, r->min, r->max, out);
    default: pc_fatal("config: limit kind %d", (int)r->kind);
    }
}

static pc_result parse_limits(pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                              pc_limits_config *lim)
{
    yaml_node_t *v[N_LIM];
    char sub[PC_CONFIG_MAX_PATH];
    PC_GUARD(pc_cfg_map(d, n, path, limit_keys, N_LIM, v));
    for (size_t i = 0; i < N_LIM; i++) {
        if (v[i] == NULL) continue;
        pc_cfg_path(sub, sizeof sub, path, limit_keys[i]);
        PC_GUARD(parse_limit(d, v[i], sub, &limit_rules[i], lim));
    }
    if (lim->max_connections_per_ip <= lim->max_connections) return PC_OK;
    /* The per-IP default only yields to a smaller overall limit; a per-IP
     * limit the operator wrote above the overall one is a mistake. */
    if (v[LIM_MAX_CONNECTIONS_PER_IP] == NULL) {
        lim->max_connections_per_ip = lim->max_connections;
        return PC_OK;
    }
    pc_cfg_path(sub, sizeof sub, path, limit_keys[LIM_MAX_CONNECTIONS_PER_IP]);
    return pc_cfg_fail(d, v[LIM_MAX_CONNECTIONS_PER_IP], sub,
                       "expected at most max_connections (%u), got %u",
                       (unsigned)lim->max_connections, (unsigned)lim->max_connections_per_ip);
}

/* ---- server ------------------------------------------------------------ */

enum { SRV_LISTEN, SRV_WORKERS, SRV_STATE_DIR, SRV_PUBLIC_URL, SRV_TLS, SRV_LIMITS, N_SRV };
static const char *const server_keys[N_SRV] = {
    [SRV_LISTEN] = "listen",       [SRV_WORKERS] = "workers", [SRV_STATE_DIR] = "state_dir",
    [SRV_PUBLIC_URL] = "public_url", [SRV_TLS] = "tls",       [SRV_LIMITS] = "limits",
};

static pc_result parse_server(pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                              pc_config *cfg)
{
    yaml_node_t *v[N_SRV];
    char sub[PC_CONFIG_MAX_PATH];
    PC_GUARD(pc_cfg_map(d, n, path, server_keys, N_SRV, v));
    PC_GUARD(pc_cfg_require(d, n, path, server_keys[SRV_LISTEN], v[SRV_LISTEN]));
    PC_GUARD(pc_cfg_require(d, n, path, server_keys[SRV_TLS], v[SRV_TLS]));
    pc_cfg_path(sub, sizeof sub, path, server_keys[SRV_LISTEN]);
    PC_GUARD(parse_listen(d, v[SRV_LISTEN], sub, cfg));
    if (v[SRV_WORKERS] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, server_keys[SRV_WORKERS]);
        PC_GUARD(pc_cfg_uint(d, v[SRV_WORKERS], sub, 0, PC_MAX_WORKERS, &cfg->workers));
    }
    if (v[SRV_STATE_DIR] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, server_keys[SRV_STATE_DIR]);
        PC_GUARD(pc_cfg_string(d, v[SRV_STATE_DIR], sub, &cfg->state_dir));
    }
    if (v[SRV_PUBLIC_URL] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, server_keys[SRV_PUBLIC_URL]);
        PC_GUARD(parse_public_url(d, v[SRV_PUBLIC_URL], sub, cfg));
    }
    pc_cfg_path(sub, sizeof sub, path, server_keys[SRV_TLS]);
    PC_GUARD(parse_tls(d, v[SRV_TLS], sub, &cfg->tls));
    if (v[SRV_LIMITS] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, server_keys[SRV_LIMITS]);
        PC_GUARD(parse_limits(d, v[SRV_LIMITS], sub, &cfg->limits));
    }
    return PC_OK;
}

/* ---- log --------------------------------------------------------------- */

enum { LOG_LEVEL, LOG_ACCESS, LOG_FILE, N_LOG };
static const char *const log_keys[N_LOG] = {
    [LOG_LEVEL] = "level", [LOG_ACCESS] = "access", [LOG_FILE] = "file"};

static pc_result parse_log(pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                           pc_config *cfg)
{
    yaml_node_t *v[N_LOG];
    char sub[PC_CONFIG_MAX_PATH];
    PC_GUARD(pc_cfg_map(d, n, path, log_keys, N_LOG, v));
    if (v[LOG_LEVEL] != NULL) {
        int level = 0;
        pc_cfg_path(sub, sizeof sub, path, log_keys[LOG_LEVEL]);
        PC_GUARD(pc_cfg_enum(d, v[LOG_LEVEL], sub, log_level_names, N_OF(log_level_names),
                             &level));
        cfg->log_level = (pc_log_level)level;
    }
    if (v[LOG_ACCESS] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, log_keys[LOG_ACCESS]);
        PC_GUARD(pc_cfg_bool(d, v[LOG_ACCESS], sub, &cfg->access_log));
    }
    if (v[LOG_FILE] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, log_keys[LOG_FILE]);
        PC_GUARD(pc_cfg_string(d, v[LOG_FILE], sub, &cfg->log_file));
        /* "-" is stderr, which the log layer spells NULL. */
        if (strcmp(cfg->log_file, "-") == 0) {
            free(cfg->log_file);
            cfg->log_file = NULL;
        }
    }
    return PC_OK;
}

/* ---- the document ------------------------------------------------------ */

enum {
    ROOT_SERVER, ROOT_LOG, ROOT_ROUTES, ROOT_AS, ROOT_UPSTREAMS, ROOT_GATEWAY, ROOT_RATE_LIMITS,
    ROOT_DETECT, ROOT_ADMIN, N_ROOT
};
static const char *const root_keys[N_ROOT] = {
    [ROOT_SERVER] = "server",       [ROOT_LOG] = "log",
    [ROOT_ROUTES] = "routes",       [ROOT_AS] = "as",
    [ROOT_UPSTREAMS] = "upstreams", [ROOT_GATEWAY] = "gateway",
    [ROOT_RATE_LIMITS] = "rate_limits", [ROOT_DETECT] = "detect",
    [ROOT_ADMIN] = "admin"};

static pc_result parse_root(pc_cfg_doc *d, pc_config *cfg)
{
    yaml_node_t *root = pc_cfg_root(d);
    yaml_node_t *v[N_ROOT];
    PC_ENSURE(root != NULL, PC_ERR_USAGE,
              "%s:1:1: missing required key \"server\" (the file is empty)", d->name);
    PC_GUARD(pc_cfg_map(d, root, "", root_keys, N_ROOT, v));
    PC_GUARD(pc_cfg_require(d, root, "", root_keys[ROOT_SERVER], v[ROOT_SERVER]));
    PC_GUARD(parse_server(d, v[ROOT_SERVER], root_keys[ROOT_SERVER], cfg));
    if (v[ROOT_LOG] != NULL) PC_GUARD(parse_log(d, v[ROOT_LOG], root_keys[ROOT_LOG], cfg));
    /* Policies first: as and routes name them. */
    if (v[ROOT_RATE_LIMITS] != NULL) PC_GUARD(pc_cfg_rate_limits(d, v[ROOT_RATE_LIMITS], cfg));
    if (v[ROOT_AS] != NULL)
        PC_GUARD(pc_cfg_as(d, v[ROOT_AS], root_keys[ROOT_AS], cfg, &cfg->as));
    /* Routes come after as, upstreams and gateway: a gateway route names
     * an upstream and takes its default audience from as.resources. */
    if (v[ROOT_UPSTREAMS] != NULL) PC_GUARD(pc_cfg_upstreams(d, v[ROOT_UPSTREAMS], cfg));
    if (v[ROOT_GATEWAY] != NULL) PC_GUARD(pc_cfg_gateway(d, v[ROOT_GATEWAY], cfg));
    if (v[ROOT_ROUTES] != NULL) PC_GUARD(pc_cfg_routes(d, v[ROOT_ROUTES], cfg));
    if (v[ROOT_DETECT] != NULL) PC_GUARD(pc_cfg_detect(d, v[ROOT_DETECT], cfg));
    if (v[ROOT_ADMIN] != NULL) PC_GUARD(pc_cfg_admin(d, v[ROOT_ADMIN], cfg));
    return pc_cfg_gw_finish(cfg);
}

static pc_result set_defaults(pc_config *cfg, const char *name)
{
    cfg->workers = 0;
    cfg->tls.client_cert = PC_CLIENT_CERT_OFF;
    cfg->tls.min_version = 12;
    cfg->limits = (pc_limits_config){
        .max_header_bytes = PC_DEFAULT_MAX_HEADER_BYTES,
        .max_header_count = PC_DEFAULT_MAX_HEADER_COUNT,
        .max_body_bytes = PC_DEFAULT_MAX_BODY_BYTES,
        .header_timeout_ms = PC_DEFAULT_HEADER_TIMEOUT_MS,
        .body_timeout_ms = PC_DEFAULT_BODY_TIMEOUT_MS,
        .idle_timeout_ms = PC_DEFAULT_IDLE_TIMEOUT_MS,
        .shutdown_timeout_ms = PC_DEFAULT_SHUTDOWN_TIMEOUT_MS,
        .max_connections = PC_DEFAULT_MAX_CONNECTIONS,
        .max_connections_per_ip = PC_DEFAULT_MAX_CONNECTIONS_PER_IP,
        .max_requests_per_connection = PC_DEFAULT_MAX_REQUESTS_PER_CONNECTION,
    };
    cfg->log_level = PC_LOG_INFO;
    cfg->access_log = true;
    cfg->log_file = NULL;
    pc_cfg_as_defaults(&cfg->as);
    pc_cfg_gw_defaults(cfg);
    pc_cfg_abuse_defaults(cfg);
    PC_GUARD(pc_cfg_strdup(name, &cfg->path));
    return pc_cfg_strdup("./var", &cfg->state_dir);
}

pc_result pc_config_parse(const char *name, const char *data, size_t len, pc_config **out)
{
    *out = NULL;
    if (name == NULL) name = "config";
    PC_ENSURE(data != NULL || len == 0, PC_ERR_USAGE, "%s: no config data", name);
    pc_config *cfg = calloc(1, sizeof *cfg);
    PC_ENSURE(cfg != NULL, PC_ERR_INTERNAL, "out of memory reading the config");
    pc_cfg_doc d;
    pc_result r = set_defaults(cfg, name);
    if (pc_ok(r)) r = pc_cfg_open(&d, name, data != NULL ? data : "", len);
    if (pc_ok(r)) {
        r = parse_root(&d, cfg);
        pc_cfg_close(&d);
    }
    cfg->tls.source = cfg->path;
    if (!pc_ok(r)) {
        pc_config_free(cfg);
        return r;
    }
    *out = cfg;
    return PC_OK;
}

/* ---- files ------------------------------------------------------------- */

/* Read a whole regular file of at most PC_MAX_CONFIG_BYTES. One byte more
 * is asked for so a file that is too big (or grew) is noticed. */
static pc_result read_config_file(const char *path, char **data, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    PC_ENSURE(fd >= 0, PC_ERR_IO, "%s: cannot open config: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return pc_fail(PC_ERR_IO, "%s: cannot read config: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode) || st.st_size > (off_t)PC_MAX_CONFIG_BYTES) {
        close(fd);
        return pc_fail(PC_ERR_USAGE, "%s: %s", path,
                       S_ISREG(st.st_mode) ? "config is larger than the 4MiB limit"
                                           : "config is not a regular file");
    }
    char *buf = malloc(PC_MAX_CONFIG_BYTES + 1u);
    if (buf == NULL) {
        close(fd);
        return pc_fail(PC_ERR_INTERNAL, "out of memory reading the config");
    }
    size_t have = 0;
    while (have <= PC_MAX_CONFIG_BYTES) {
        ssize_t got = read(fd, buf + have, PC_MAX_CONFIG_BYTES + 1u - have);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) {
            if (got == 0) break;
            int e = errno;
            free(buf);
            close(fd);
            return pc_fail(PC_ERR_IO, "%s: cannot read config: %s", path, strerror(e));
        }
        have += (size_t)got;
    }
    close(fd);
    *data = buf;
    *len = have;
    return PC_OK;
}

pc_result pc_config_load(const char *path, pc_config **out)
{
    *out = NULL;
    PC_ENSURE(path != NULL && path[0] != '\0', PC_ERR_USAGE, "no config file given");
    char *data = NULL;
    size_t len = 0;
    PC_GUARD(read_config_file(path, &data, &len));
    /* A file past the limit is refused by pc_config_parse with its size. */
    pc_result r = pc_config_parse(path, data, len, out);
    free(data);
    return r;
}

/* ---- freeing ----------------------------------------------------------- */

static void free_route(pc_route_config *r)
{
    free(r->method);
    free(r->path);
    free(r->content_type);
    free(r->body);
    free(r->rate_limits);
    pc_cfg_route_gw_free(r);
}

void pc_config_free(pc_config *cfg)
{
    if (cfg == NULL) return;
    free(cfg->path);
    free(cfg->listen_host);
    free(cfg->state_dir);
    free(cfg->public_url);
    free(cfg->tls.cert_file);
    free(cfg->tls.key_file);
    for (size_t i = 0; i < cfg->tls.n_client_ca_files; i++) free(cfg->tls.client_ca_files[i]);
    free(cfg->tls.client_ca_files);
    free(cfg->log_file);
    for (size_t i = 0; i < cfg->n_routes; i++) free_route(&cfg->routes[i]);
    free(cfg->routes);
    for (size_t i = 0; i < cfg->n_gw_routes; i++) free_route(&cfg->gw_routes[i]);
    free(cfg->gw_routes);
    pc_cfg_gw_free(cfg);
    pc_cfg_as_free(&cfg->as);
    pc_cfg_abuse_free(cfg);
    free(cfg);
}
