/* The `gateway:` section: external URL (DPoP htu), DPoP proof settings,
 * the RFC 9440 client-certificate header, and a remote AS's JWKS.
 * docs/gateway.md is the operator reference. Upstreams and the routes'
 * upstream:/auth: keys are in config_gw.c. */
#include "core/config.h"
#include "core/config_impl.h"

#include <stddef.h>
#include <string.h>

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))
#define GOT_CAP (4u * PC_CONFIG_MAX_QUOTE + 8u)

/* ---- gateway ---------------------------------------------------------------- */

enum { GW_EXTERNAL_URL, GW_DPOP, GW_CLIENT_CERT_HEADER, GW_REMOTE_AS, N_GW };
static const char *const gw_keys[N_GW] = {
    [GW_EXTERNAL_URL] = "external_url",
    [GW_DPOP] = "dpop",
    [GW_CLIENT_CERT_HEADER] = "client_cert_header",
    [GW_REMOTE_AS] = "remote_as",
};
enum { RA_ISSUER, RA_JWKS_URL, RA_CA, RA_REFRESH, RA_MIN_REFETCH, RA_TIMEOUT, RA_INTROSPECTION, N_RA };
static const char *const ra_keys[N_RA] = {
    [RA_ISSUER] = "issuer",       [RA_JWKS_URL] = "jwks_url",
    [RA_CA] = "ca",               [RA_REFRESH] = "refresh",
    [RA_MIN_REFETCH] = "min_refetch", [RA_TIMEOUT] = "timeout",
    [RA_INTROSPECTION] = "introspection",
};
enum { IN_URL, IN_CLIENT_ID, IN_CERT, IN_KEY, IN_CACHE, IN_MAX_IN_FLIGHT, N_IN };
static const char *const in_keys[N_IN] = {
    [IN_URL] = "url", [IN_CLIENT_ID] = "client_id", [IN_CERT] = "cert", [IN_KEY] = "key",
    [IN_CACHE] = "cache", [IN_MAX_IN_FLIGHT] = "max_in_flight",
};
enum { GD_LIFETIME, GD_SKEW, GD_NONCE, GD_NONCE_SECRET, N_GD };
static const char *const gd_keys[N_GD] = {
    [GD_LIFETIME] = "proof_lifetime",
    [GD_SKEW] = "clock_skew",
    [GD_NONCE] = "nonce",
    [GD_NONCE_SECRET] = "nonce_secret_file",
};
enum { CH_ENABLED, CH_NAME, CH_TRUSTED, N_CH };
static const char *const ch_keys[N_CH] = {
    [CH_ENABLED] = "enabled",
    [CH_NAME] = "name",
    [CH_TRUSTED] = "trusted_proxies",
};

static pc_result parse_external_url(pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                                    pc_gw_config *gw)
{
    PC_GUARD(pc_cfg_string(d, n, path, &gw->external_url));
    const char *s = gw->external_url;
    size_t len = strlen(s);
    /* A base that paths are appended to (RFC 9449 §4.3: htu has no query
     * or fragment), so none here either. */
    if (strncmp(s, "https://", 8) != 0 || len <= 8 || s[8] == '/' || strpbrk(s, "?# ") != NULL ||
        len > PC_CONFIG_MAX_URL) {
        char got[GOT_CAP];
        pc_cfg_describe(n, got, sizeof got);
        return pc_cfg_fail(d, n, path,
                           "expected an https:// URL like https://api.example.com, got %s", got);
    }
    while (len > 0 && gw->external_url[len - 1] == '/') gw->external_url[--len] = '\0';
    return PC_OK;
}

static pc_result parse_gw_dpop(pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                               pc_gw_config *gw)
{
    yaml_node_t *v[N_GD];
    char sub[PC_CONFIG_MAX_PATH];
    PC_GUARD(pc_cfg_map(d, n, path, gd_keys, N_GD, v));
    if (v[GD_LIFETIME] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, gd_keys[GD_LIFETIME]);
        PC_GUARD(pc_cfg_duration(d, v[GD_LIFETIME], sub, 1000, 600000,
                                 &gw->dpop_proof_lifetime_ms));
    }
    if (v[GD_SKEW] != NULL) {
        /* FAPI 2.0 §5.3.2.1-13: never 60 s or more into the future. */
        pc_cfg_path(sub, sizeof sub, path, gd_keys[GD_SKEW]);
        PC_GUARD(pc_cfg_duration(d, v[GD_SKEW], sub, 0, 59000, &gw->dpop_skew_ms));
    }
    if (v[GD_NONCE] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, gd_keys[GD_NONCE]);
        PC_GUARD(pc_cfg_bool(d, v[GD_NONCE], sub, &gw->dpop_nonce));
    }
    if (v[GD_NONCE_SECRET] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, gd_keys[GD_NONCE_SECRET]);
        PC_GUARD(pc_cfg_string(d, v[GD_NONCE_SECRET], sub, &gw->dpop_nonce_secret_file));
    }
    return PC_OK;
}

static pc_result parse_cert_header(pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                                   pc_gw_config *gw)
{
    yaml_node_t *v[N_CH];
    char sub[PC_CONFIG_MAX_PATH];
    PC_GUARD(pc_cfg_map(d, n, path, ch_keys, N_CH, v));
    if (v[CH_ENABLED] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, ch_keys[CH_ENABLED]);
        PC_GUARD(pc_cfg_bool(d, v[CH_ENABLED], sub, &gw->client_cert_header));
    }
    if (v[CH_NAME] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, ch_keys[CH_NAME]);
        PC_GUARD(pc_cfg_string(d, v[CH_NAME], sub, &gw->client_cert_header_name));
        if (!pc_cfg_gw_header_name_ok(gw->client_cert_header_name))
            return pc_cfg_fail(d, v[CH_NAME], sub, "expected a header name like Client-Cert");
    }
    if (v[CH_TRUSTED] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, ch_keys[CH_TRUSTED]);
        PC_GUARD(pc_cfg_gw_strings(d, v[CH_TRUSTED], sub, pc_cfg_gw_cidr_ok,
                               "an address or CIDR like 10.0.0.0/8", &gw->trusted_proxies,
                               &gw->n_trusted_proxies));
    }
    return PC_OK;
}

/* RFC 3986 unreserved: the client_id goes into a form body unescaped. */
static bool client_id_ok(const char *s)
{
    if (s[0] == '\0') return false;
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              strchr("-._~", *s) != NULL))
            return false;
    return true;
}

/* RFC 7662 introspection at the remote AS, authenticated with mTLS
 * (RFC 8705 §2, tls_client_auth): the gateway is a client of the AS. */
static pc_result parse_introspection(pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                                     const char *ca, uint32_t timeout_ms, pc_gw_config *gw)
{
    yaml_node_t *v[N_IN];
    char sub[PC_CONFIG_MAX_PATH];
    PC_GUARD(pc_cfg_map(d, n, path, in_keys, N_IN, v));
    for (size_t i = 0; i < 4; i++) PC_GUARD(pc_cfg_require(d, n, path, in_keys[i], v[i]));
    gw->introspect = true;
    pc_upstream_config *u = &gw->introspection;
    u->connect_timeout_ms = timeout_ms;
    u->timeout_ms = timeout_ms;
    u->max_idle = 4;
    u->line = (int)n->start_mark.line + 1;
    PC_GUARD(pc_cfg_strdup("introspection", &u->name));
    pc_cfg_path(sub, sizeof sub, path, in_keys[IN_URL]);
    PC_GUARD(pc_cfg_string(d, v[IN_URL], sub, &u->url));
    char why[96];
    if (!pc_cfg_gw_split_url(u->url, u, why, sizeof why) || !u->https)
        return pc_cfg_fail(d, v[IN_URL], sub,
                           "expected the https URL of the AS's introspection endpoint (%s)",
                           u->https ? why : "https is required: it carries tokens");
    if (ca == NULL)
        return pc_cfg_fail(d, n, path, "needs gateway.remote_as.ca to verify the AS's certificate");
    PC_GUARD(pc_cfg_strdup(ca, &u->ca_file));
    pc_cfg_path(sub, sizeof sub, path, in_keys[IN_CLIENT_ID]);
    PC_GUARD(pc_cfg_string(d, v[IN_CLIENT_ID], sub, &gw->introspection_client_id));
    if (!client_id_ok(gw->introspection_client_id))
        return pc_cfg_fail(d, v[IN_CLIENT_ID], sub, "expected a client_id of letters, digits and -._~");
    pc_cfg_path(sub, sizeof sub, path, in_keys[IN_CERT]);
    PC_GUARD(pc_cfg_string(d, v[IN_CERT], sub, &u->cert_file));
    pc_cfg_path(sub, sizeof sub, path, in_keys[IN_KEY]);
    PC_GUARD(pc_cfg_string(d, v[IN_KEY], sub, &u->key_file));
    if (v[IN_CACHE] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, in_keys[IN_CACHE]);
        PC_GUARD(pc_cfg_duration(d, v[IN_CACHE], sub, 0, 3600000, &gw->introspection_cache_ms));
    }
    if (v[IN_MAX_IN_FLIGHT] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, in_keys[IN_MAX_IN_FLIGHT]);
        PC_GUARD(pc_cfg_uint(d, v[IN_MAX_IN_FLIGHT], sub, 1, 100000, &gw->introspection_max_in_flight));
    }
    return PC_OK;
}

static pc_result parse_remote_as(pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                                 pc_gw_config *gw)
{
    yaml_node_t *v[N_RA];
    char sub[PC_CONFIG_MAX_PATH];
    PC_GUARD(pc_cfg_map(d, n, path, ra_keys, N_RA, v));
    PC_GUARD(pc_cfg_require(d, n, path, ra_keys[RA_ISSUER], v[RA_ISSUER]));
    /* Without keys the gateway can still ask the AS about every token
     * (an AS that issues only opaque tokens); without either it could
     * admit nobody. */
    if (v[RA_JWKS_URL] == NULL && v[RA_INTROSPECTION] == NULL)
        return pc_cfg_fail(d, n, path,
                           "missing required key \"jwks_url\" (or \"introspection\", for an AS "
                           "whose tokens are checked only by asking it)");
    gw->remote = true;
    pc_cfg_path(sub, sizeof sub, path, ra_keys[RA_ISSUER]);
    PC_GUARD(pc_cfg_string(d, v[RA_ISSUER], sub, &gw->remote_issuer));
    /* Compared byte for byte with iss (RFC 8414 §3.3, RFC 9068 §4). */
    if (strncmp(gw->remote_issuer, "https://", 8) != 0 || strpbrk(gw->remote_issuer, "?# ") != NULL)
        return pc_cfg_fail(d, v[RA_ISSUER], sub, "expected an https issuer URL with no query or fragment");
    pc_upstream_config *u = &gw->remote_jwks;
    u->connect_timeout_ms = PC_CONFIG_GW_CONNECT_TIMEOUT_MS;
    u->timeout_ms = PC_CONFIG_GW_UPSTREAM_TIMEOUT_MS;
    u->max_idle = 1;
    u->line = (int)n->start_mark.line + 1;
    PC_GUARD(pc_cfg_strdup("jwks", &u->name));
    if (v[RA_CA] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, ra_keys[RA_CA]);
        PC_GUARD(pc_cfg_string(d, v[RA_CA], sub, &u->ca_file));
    }
    if (v[RA_JWKS_URL] != NULL) {
        gw->remote_keys = true;
        pc_cfg_path(sub, sizeof sub, path, ra_keys[RA_JWKS_URL]);
        PC_GUARD(pc_cfg_string(d, v[RA_JWKS_URL], sub, &u->url));
        char why[96];
        if (!pc_cfg_gw_split_url(u->url, u, why, sizeof why))
            return pc_cfg_fail(d, v[RA_JWKS_URL], sub, "expected an https URL of the AS's jwks_uri (%s)", why);
        if (u->https && u->ca_file == NULL)
            return pc_cfg_fail(d, n, path, "missing required key \"ca\" (the JWKS is fetched over verified https)");
    }
    static const struct {
        int key;
        uint32_t min, max;
        size_t off;
    } durs[] = {
        {RA_REFRESH, 1000, 86400000, offsetof(pc_gw_config, remote_refresh_ms)},
        {RA_MIN_REFETCH, 0, 86400000, offsetof(pc_gw_config, remote_min_refetch_ms)},
    };
    for (size_t i = 0; i < N_OF(durs); i++) {
        if (v[durs[i].key] == NULL) continue;
        pc_cfg_path(sub, sizeof sub, path, ra_keys[durs[i].key]);
        PC_GUARD(pc_cfg_duration(d, v[durs[i].key], sub, durs[i].min, durs[i].max,
                                 (uint32_t *)(void *)((char *)gw + durs[i].off)));
    }
    if (v[RA_TIMEOUT] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, ra_keys[RA_TIMEOUT]);
        PC_GUARD(pc_cfg_duration(d, v[RA_TIMEOUT], sub, 1, PC_CONFIG_GW_TIMEOUT_MAX_MS, &u->timeout_ms));
        u->connect_timeout_ms = u->timeout_ms;
    }
    if (v[RA_INTROSPECTION] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, ra_keys[RA_INTROSPECTION]);
        PC_GUARD(parse_introspection(d, v[RA_INTROSPECTION], sub, u->ca_file, u->timeout_ms, gw));
    }
    return PC_OK;
}

pc_result pc_cfg_gateway(pc_cfg_doc *d, const yaml_node_t *n, pc_config *cfg)
{
    static const char path[] = "gateway";
    yaml_node_t *v[N_GW];
    char sub[PC_CONFIG_MAX_PATH];
    PC_GUARD(pc_cfg_map(d, n, path, gw_keys, N_GW, v));
    if (v[GW_EXTERNAL_URL] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, gw_keys[GW_EXTERNAL_URL]);
        PC_GUARD(parse_external_url(d, v[GW_EXTERNAL_URL], sub, &cfg->gw));
    }
    if (v[GW_DPOP] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, gw_keys[GW_DPOP]);
        PC_GUARD(parse_gw_dpop(d, v[GW_DPOP], sub, &cfg->gw));
    }
    if (v[GW_CLIENT_CERT_HEADER] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, gw_keys[GW_CLIENT_CERT_HEADER]);
        PC_GUARD(parse_cert_header(d, v[GW_CLIENT_CERT_HEADER], sub, &cfg->gw));
    }
    if (v[GW_REMOTE_AS] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, gw_keys[GW_REMOTE_AS]);
        PC_GUARD(parse_remote_as(d, v[GW_REMOTE_AS], sub, &cfg->gw));
    }
    return PC_OK;
}
