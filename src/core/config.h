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
    /* Where each file was named, so errors loading them say file:line:col. */
    const char *source;         /* borrowed: the config's path */
    int cert_line, cert_col, key_line, key_col, ca_line, ca_col;
} pc_tls_config;

typedef enum pc_route_kind {
    PC_ROUTE_STATIC = 0, /* a fixed response from config */
    PC_ROUTE_WHOAMI,     /* echoes the verified client identity as JSON */
    PC_ROUTE_UPSTREAM,   /* the gateway: token checks, then proxy (docs/gateway.md) */
} pc_route_kind;

/* Which sender constraint a gateway route accepts (docs/gateway.md). A
 * token with no cnf at all (a plain bearer token) is never accepted. */
typedef enum pc_gw_binding {
    PC_GW_BIND_ANY = 0, /* whatever the token is bound to: mTLS or DPoP */
    PC_GW_BIND_MTLS,    /* cnf.x5t#S256 only (RFC 8705 §3) */
    PC_GW_BIND_DPOP,    /* cnf.jkt only (RFC 9449 §6) */
} pc_gw_binding;

/* routes[].auth: what a gateway route requires of the access token. */
typedef struct pc_route_auth {
    bool enabled;        /* an auth: mapping was given */
    char **scopes;       /* every one must be in the token's scope */
    size_t n_scopes;
    pc_gw_binding binding;
    char *audience;      /* must be in aud; default as.resources[0] */
    /* auth.introspection: always: every token's claims come from the AS's
     * RFC 7662 answer (remote AS); auto (false): a JWT is verified
     * locally, an opaque token introspected. */
    bool introspect_always;
    int introspection_line; /* where auth.introspection was set, for errors */
} pc_route_auth;

typedef struct pc_route_config {
    char *method;        /* "GET", "POST", ... or "*" for any */
    char *path;          /* template: "/accounts/{id}" */
    pc_route_kind kind;
    /* PC_ROUTE_STATIC */
    int status;          /* 200 by default */
    char *content_type;  /* "application/json" by default */
    char *body;          /* "" by default */
    size_t body_len;
    /* PC_ROUTE_UPSTREAM */
    char *upstream;      /* the upstreams: name */
    size_t upstream_index; /* into pc_config.upstreams, resolved at load */
    uint32_t timeout_ms; /* routes[].timeout; 0 = the upstream's timeout */
    pc_route_auth auth;
    /* Abuse resistance (docs/abuse-resistance.md), upstream routes only: */
    bool identifier;     /* routes[].identifier: path parameters feed the enumeration detector */
    uint32_t max_distinct; /* routes[].max_distinct: that detector's cap here; 0 = detect's */
    size_t *rate_limits; /* routes[].rate_limits: indices into pc_config.rate_limits */
    size_t n_rate_limits;
    int line;            /* where the route was declared, for errors */
} pc_route_config;

/* What a rate-limit key is made of (rate_limits.NAME.key), combined. */
enum {
    PC_RL_KEY_CLIENT = 1u << 0, /* the token's client_id (token endpoint: the client's) */
    PC_RL_KEY_SUB = 1u << 1,    /* the token's sub */
    PC_RL_KEY_IP = 1u << 2,     /* the client's address */
    PC_RL_KEY_ROUTE = 1u << 3,  /* the route's method and template */
};

/* rate_limits.NAME: one GCRA policy. */
typedef struct pc_rate_limit_config {
    char *name;
    uint32_t quota;       /* requests per window */
    uint32_t window_ms;
    uint32_t burst;       /* back-to-back allowance; default quota */
    unsigned key;         /* PC_RL_KEY_* bits, at least one */
    int line;
} pc_rate_limit_config;

/* What a detector does when it fires (detect.*.actions), combined. Every
 * action writes the alert line and counts; alert also POSTs the webhook. */
enum {
    PC_ACT_LOG = 1u << 0,
    PC_ACT_ALERT = 1u << 1,
    PC_ACT_THROTTLE = 1u << 2,
    PC_ACT_QUARANTINE = 1u << 3,
    PC_ACT_REVOKE = 1u << 4,
};

/* detect: the behavioural detectors (see detect/detect.h for the
 * meaning of each threshold). Absent section: detectors off. */
typedef struct pc_detect_config {
    bool enabled;
    uint32_t learning_ms, max_keys;
    uint32_t quarantine_ms;        /* detect.quarantine_period: 1h */
    uint32_t throttle_ms;          /* detect.throttle_period: 15m */
    double throttle_factor;        /* detect.throttle_factor: 0.25 */
    char *webhook_url;             /* detect.webhook.url, or NULL */
    bool webhook_https;            /* ... split: scheme, host, port, path */
    char *webhook_host;
    uint16_t webhook_port;
    char *webhook_path;            /* "" for none */
    char *webhook_ca;              /* detect.webhook.ca: for https */
    uint32_t webhook_timeout_ms;   /* detect.webhook.timeout: 5s */
    struct {
        bool enabled; unsigned actions;
        uint32_t window_ms, max_distinct, min_distinct, sequential_run, sequential_gap,
            ordered_run;
        double baseline_factor, scan_fraction, scan_ratio;
    } enumeration;
    struct {
        bool enabled; unsigned actions;
        uint32_t window_ms, min_requests;
        double max_ratio;
    } probing;
    struct {
        bool enabled; unsigned actions;
        uint32_t interval_ms, min_count;
        double alpha, z_threshold, min_factor;
    } volume;
    struct {
        bool enabled; unsigned actions;
        uint32_t window_ms, max_auth_failures, max_dpop_replays, max_binding_mismatches,
            max_new_certs, max_new_ips;
    } credentials;
} pc_detect_config;

/* admin: who may use the admin API (/admin/...) and /metrics. */
typedef struct pc_admin_config {
    char **clients;      /* admin.clients: certificate thumbprints (x5t#S256) */
    size_t n_clients;
} pc_admin_config;

/* upstreams.NAME: where a gateway route's requests go. */
typedef struct pc_upstream_config {
    char *name;
    char *url;                  /* as written, without a trailing slash */
    bool https;
    char *host;                 /* IP literal or name (https only) */
    uint16_t port;
    char *base_path;            /* path prefix from the URL, "" for none */
    char *ca_file;              /* upstreams.NAME.ca: required for https */
    char *cert_file;            /* client certificate to present (introspection), or NULL */
    char *key_file;
    uint32_t connect_timeout_ms;/* default 2s */
    uint32_t timeout_ms;        /* default 10s: whole exchange */
    uint32_t max_idle;          /* keep-alive connections per worker, default 32 */
    int line;
} pc_upstream_config;

/* gateway: settings shared by all gateway routes. */
typedef struct pc_gw_config {
    char *external_url;          /* for DPoP htu; default public_url or https://listen */
    uint32_t dpop_proof_lifetime_ms; /* gateway.dpop.proof_lifetime: 60s */
    uint32_t dpop_skew_ms;       /* gateway.dpop.clock_skew: 10s */
    bool dpop_nonce;             /* gateway.dpop.nonce: false */
    char *dpop_nonce_secret_file;/* gateway.dpop.nonce_secret_file, or NULL */
    bool client_cert_header;     /* gateway.client_cert_header.enabled (RFC 9440) */
    char *client_cert_header_name; /* default "Client-Cert" */
    char **trusted_proxies;      /* CIDRs, default 127.0.0.1/32 */
    size_t n_trusted_proxies;
    /* gateway.remote_as: verify tokens of an AS in another process with
     * its published keys (JWKS), instead of the in-process AS. */
    bool remote;
    char *remote_issuer;         /* tokens' iss must equal this */
    bool remote_keys;            /* a jwks_url is set: JWTs are verified here */
    pc_upstream_config remote_jwks; /* url (+ ca) of its jwks_uri; name "jwks"; ca also without */
    uint32_t remote_refresh_ms;  /* scheduled refetch, default 10m */
    uint32_t remote_min_refetch_ms; /* unknown kid: at most one fetch per this, default 30s */
    /* gateway.remote_as.introspection: ask the remote AS (RFC 7662) whether
     * a token is still active, authenticating with mTLS (tls_client_auth). */
    bool introspect;
    pc_upstream_config introspection; /* url, ca, cert, key; name "introspection" */
    char *introspection_client_id;
    uint32_t introspection_cache_ms;  /* how long an answer is reused, default 5s */
    uint32_t introspection_max_in_flight; /* questions awaiting an answer, per worker, default 64 */
} pc_gw_config;

typedef enum pc_as_profile {
    PC_AS_PROFILE_FAPI2 = 0, /* FAPI 2.0 Security Profile, strict (default) */
    PC_AS_PROFILE_COMPAT,    /* loosens only what docs/configuration.md lists */
} pc_as_profile;

/* A client seeded from config: its RFC 7591 metadata, converted from the
 * YAML mapping to JSON text; validated by as/clients.c at start. */
typedef struct pc_as_client_seed {
    char *client_id;      /* copy of metadata.client_id */
    char *metadata_json;  /* JSON object text */
    int line;             /* where the client was declared */
} pc_as_client_seed;

/* as: the authorization server. Absent section = the AS is off. */
typedef struct pc_as_config {
    bool enabled;
    char *issuer;                   /* as.issuer: https URL, no trailing slash */
    pc_as_profile profile;          /* as.profile: fapi2 | compat */
    char *signing_alg;              /* as.signing_alg: ES256 | PS256 | EdDSA */
    char *kek_file;                 /* as.kek_file, or NULL: PORTCULLIS_KEK */
    uint32_t access_token_lifetime_ms;     /* as.access_token_lifetime: 300s */
    uint32_t max_access_token_lifetime_ms; /* as.max_access_token_lifetime: 3600s */
    uint32_t assertion_max_lifetime_ms;    /* as.assertion_max_lifetime: 60s */
    uint32_t clock_skew_ms;                /* as.clock_skew: 10s, below 60s */
    uint32_t dpop_proof_lifetime_ms;       /* as.dpop.proof_lifetime: 60s */
    bool dpop_nonce;                       /* as.dpop.nonce: false */
    char *dpop_nonce_secret_file;          /* as.dpop.nonce_secret_file, or NULL */
    char **scopes;                  /* as.scopes: scopes the AS knows */
    size_t n_scopes;
    char **resources;               /* as.resources: allowed audiences; [0] is the default */
    size_t n_resources;
    uint32_t auth_failures_per_minute;     /* as.auth_failures_per_minute: 10, per client_id */
    uint32_t auth_failures_per_minute_per_ip; /* as.auth_failures_per_minute_per_ip: 30 */
    size_t *rate_limits;            /* as.rate_limits: policies on every token request */
    size_t n_rate_limits;
    pc_as_client_seed *clients;     /* as.clients */
    size_t n_clients;
} pc_as_config;

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
    pc_as_config as;
    pc_upstream_config *upstreams; /* upstreams: */
    size_t n_upstreams;
    pc_route_config *gw_routes; /* the upstream: routes, moved out of routes[] */
    size_t n_gw_routes;
    pc_gw_config gw;
    pc_rate_limit_config *rate_limits; /* rate_limits: */
    size_t n_rate_limits;
    pc_detect_config detect;
    pc_admin_config admin;
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
