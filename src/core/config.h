/* The configuration: YAML in, one immutable pc_config out.
 *
 * A pc_config is built whole by pc_config_load and never changed after; a
 * reload builds a new one and swaps it in (see net/server.h). Every string
 * in it is owned by the config and freed by pc_config_free.
 *
 * Schema and defaults: docs/configuration.md. Errors name file:line:column
 * and what was expected, e.g.
 *   portcullis.yaml:12:18: server.limits.body_bytes: expected a size like
 *   64KiB or 1MiB, got "lots" */
#ifndef PC_CORE_CONFIG_H
#define PC_CORE_CONFIG_H

#include "core/result.h"

#include <stddef.h>
#include <stdint.h>

typedef enum pc_client_cert_mode {
    PC_CLIENT_CERT_OFF = 0,      /* never request a certificate */
    PC_CLIENT_CERT_OPTIONAL,     /* request; verify against client_ca if sent */
    PC_CLIENT_CERT_REQUIRED,     /* request; refuse the handshake without a
                                    certificate verified against client_ca */
    PC_CLIENT_CERT_OPTIONAL_NO_CA, /* request; accept any certificate, CA
                                      verified or not (self-signed clients,
                                      pinned later by thumbprint) */
} pc_client_cert_mode;

typedef enum pc_log_level {
    PC_LOG_DEBUG = 0,
    PC_LOG_INFO,
    PC_LOG_WARN,
    PC_LOG_ERROR,
} pc_log_level;

typedef struct pc_limits_config {
    uint32_t max_header_bytes;      /* server.limits.header_bytes */
    uint32_t max_header_count;      /* server.limits.header_count */
    uint32_t max_body_bytes;        /* server.limits.body_bytes */
    uint32_t header_timeout_ms;     /* server.limits.header_timeout */
    uint32_t body_timeout_ms;       /* server.limits.body_timeout */
    uint32_t idle_timeout_ms;       /* server.limits.idle_timeout */
    uint32_t shutdown_timeout_ms;   /* server.limits.shutdown_timeout */
    uint32_t max_connections;       /* server.limits.max_connections */
    uint32_t max_connections_per_ip;/* server.limits.max_connections_per_ip */
    uint32_t max_requests_per_connection; /* server.limits.max_requests_per_connection */
} pc_limits_config;

typedef struct pc_tls_config {
    char *cert_file;            /* server.tls.cert: PEM chain, leaf first */
    char *key_file;             /* server.tls.key: PEM private key */
    char **client_ca_files;     /* server.tls.client_ca: PEM bundles */
    size_t n_client_ca_files;
    pc_client_cert_mode client_cert; /* server.tls.client_cert */
    int min_version;            /* server.tls.min_version: 12 or 13 */
} pc_tls_config;

typedef enum pc_route_kind {
    PC_ROUTE_STATIC = 0, /* a fixed response from config */
    PC_ROUTE_WHOAMI,     /* echoes the verified client identity as JSON */
} pc_route_kind;

typedef struct pc_route_config {
    char *method;        /* "GET", "POST", ... or "*" for any */
    char *path;          /* template: "/accounts/{id}" */
    pc_route_kind kind;
    /* PC_ROUTE_STATIC */
    int status;          /* 200 by default */
    char *content_type;  /* "application/json" by default */
    char *body;          /* "" by default */
    size_t body_len;
    int line;            /* where the route was declared, for errors */
} pc_route_config;

typedef struct pc_config {
    char *path;                 /* the file this was loaded from */
    char *listen_host;          /* server.listen, host part ("127.0.0.1", "::") */
    uint16_t listen_port;       /* server.listen, port part */
    uint32_t workers;           /* server.workers; 0 = one per core */
    char *state_dir;            /* server.state_dir: where keys and the store live */
    char *public_url;           /* server.public_url: external base URL, or NULL */
    pc_tls_config tls;
    pc_limits_config limits;
    pc_log_level log_level;     /* log.level */
    bool access_log;            /* log.access */
    char *log_file;             /* log.file: path, or NULL for stderr */
    pc_route_config *routes;
    size_t n_routes;
} pc_config;

/* Load and validate a config file. On failure *out is NULL and pc_errmsg()
 * says file:line:col: key: what was expected. */
PC_MUST_USE pc_result pc_config_load(const char *path, pc_config **out);
/* The same from bytes in memory; name is used in messages. */
PC_MUST_USE pc_result pc_config_parse(const char *name, const char *data, size_t len,
                                      pc_config **out);
void pc_config_free(pc_config *cfg);

/* "300s", "5m", "1500ms", "2h" -> milliseconds. Bare numbers are refused:
 * a unit is required so no one guesses. Range 0..UINT32_MAX ms. */
PC_MUST_USE pc_result pc_parse_duration_ms(const char *s, uint32_t *out_ms);
/* "64KiB", "1MiB", "512B", "2GiB" (binary) and "64KB" (decimal), or a bare
 * number of bytes. Range 0..UINT32_MAX bytes. */
PC_MUST_USE pc_result pc_parse_size(const char *s, uint32_t *out_bytes);

const char *pc_client_cert_mode_name(pc_client_cert_mode m);
const char *pc_log_level_name(pc_log_level l);

#endif
