/* The gateway's config: `upstreams:`, the gateway defaults, and the
 * `upstream:`, `auth:` and `timeout:` keys of a route (the `gateway:`
 * section is config_gw_section.c). docs/gateway.md is the operator
 * reference; keep the two in step.
 *
 * An upstream is plain http only on loopback (the hop never leaves the
 * host, so there is nothing to protect it from); anything else is https
 * with a CA file, because identity headers and bodies must not cross a
 * network in clear text. */
#include "core/config.h"
#include "core/config_impl.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))
#define GOT_CAP (4u * PC_CONFIG_MAX_QUOTE + 8u)
/* Upstreams in one config: a gateway fronts tens of services. */
#define PC_CONFIG_MAX_UPSTREAMS 256u
/* An upstream name is an identifier routes refer to. */
#define PC_CONFIG_MAX_UPSTREAM_NAME 64u
/* Scopes one route may require; trusted proxy ranges. */
#define PC_CONFIG_MAX_GW_LIST 64u
/* Keep-alive connections per upstream per worker. */
#define PC_CONFIG_MAX_IDLE_MAX 4096u

#define DEFAULT_MAX_IDLE 32u
#define DEFAULT_DPOP_LIFETIME_MS 60000u
#define DEFAULT_DPOP_SKEW_MS 10000u
/* Remote AS keys: refetched on a schedule (Microsoft's guidance quoted in
 * kilork/openid#59 refreshes hourly; rotation here publishes the next key
 * ahead, so 10 minutes is ample), and on an unknown kid at most once per
 * 30 s (an unknown kid must not be an amplification lever:
 * lua-resty-openidc#468, Bdaya-Dev/oidc#332). */
#define DEFAULT_JWKS_REFRESH_MS (10u * 60u * 1000u)
#define DEFAULT_JWKS_MIN_REFETCH_MS 30000u
/* Introspection answers are reused this long: a revocation at a remote AS
 * reaches the gateway within it (DuendeArchive/IdentityServer4#1190: the
 * cache TTL is the revocation delay, so keep it short). */
#define DEFAULT_INTROSPECTION_CACHE_MS 5000u
/* Questions a worker may have waiting at the AS: a flood of made-up opaque
 * tokens (each one a question: no answer to reuse) must not become a flood
 * at the AS. Past it: 503, as when the AS is unreachable. */
#define DEFAULT_INTROSPECTION_MAX_IN_FLIGHT 64u

void pc_cfg_gw_defaults(pc_config *cfg)
{
    memset(&cfg->gw, 0, sizeof cfg->gw);
    cfg->gw.dpop_proof_lifetime_ms = DEFAULT_DPOP_LIFETIME_MS;
    cfg->gw.dpop_skew_ms = DEFAULT_DPOP_SKEW_MS;
    cfg->gw.remote_refresh_ms = DEFAULT_JWKS_REFRESH_MS;
    cfg->gw.remote_min_refetch_ms = DEFAULT_JWKS_MIN_REFETCH_MS;
    cfg->gw.introspection_cache_ms = DEFAULT_INTROSPECTION_CACHE_MS;
    cfg->gw.introspection_max_in_flight = DEFAULT_INTROSPECTION_MAX_IN_FLIGHT;
}

static void free_list(char **l, size_t n)
{
    for (size_t i = 0; i < n; i++) free(l[i]);
    free(l);
}

void pc_cfg_route_gw_free(pc_route_config *r)
{
    free(r->upstream);
    free_list(r->auth.scopes, r->auth.n_scopes);
    free(r->auth.audience);
}

void pc_cfg_gw_free(pc_config *cfg)
{
    for (size_t i = 0; i < cfg->n_upstreams; i++) pc_cfg_upstream_free(&cfg->upstreams[i]);
    free(cfg->upstreams);
    free(cfg->gw.external_url);
    free(cfg->gw.dpop_nonce_secret_file);
    free(cfg->gw.client_cert_header_name);
    free_list(cfg->gw.trusted_proxies, cfg->gw.n_trusted_proxies);
    free(cfg->gw.remote_issuer);
    pc_cfg_upstream_free(&cfg->gw.remote_jwks);
    pc_cfg_upstream_free(&cfg->gw.introspection);
    free(cfg->gw.introspection_client_id);
}

void pc_cfg_upstream_free(pc_upstream_config *u)
{
    free(u->name);
    free(u->url);
    free(u->host);
    free(u->base_path);
    free(u->ca_file);
    free(u->cert_file);
    free(u->key_file);
}

/* ---- a list of strings ------------------------------------------------------ */

pc_result pc_cfg_gw_strings(pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                               pc_cfg_gw_item_ok ok, const char *what, char ***out, size_t *count)
{
    if (n->type != YAML_SEQUENCE_NODE) {
        char got[GOT_CAP];
        pc_cfg_describe(n, got, sizeof got);
        return pc_cfg_fail(d, n, path, "expected a list of %s, got %s", what, got);
    }
    size_t c = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (c > PC_CONFIG_MAX_GW_LIST)
        return pc_cfg_fail(d, n, path, "expected at most %u items, got %zu",
                           PC_CONFIG_MAX_GW_LIST, c);
    *out = calloc(c ? c : 1, sizeof **out);
    PC_ENSURE(*out != NULL, PC_ERR_INTERNAL, "out of memory reading the config");
    for (size_t i = 0; i < c; i++) {
        char item[PC_CONFIG_MAX_PATH];
        pc_cfg_path_index(item, sizeof item, path, i);
        yaml_node_t *v = pc_cfg_node(d, n->data.sequence.items.start[i]);
        PC_GUARD(pc_cfg_string(d, v, item, &(*out)[i]));
        *count = i + 1;
        if (!ok((*out)[i])) {
            char got[GOT_CAP];
            pc_cfg_describe(v, got, sizeof got);
            return pc_cfg_fail(d, v, item, "expected %s, got %s", what, got);
        }
    }
    return PC_OK;
}

/* RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ) */
static bool scope_ok(const char *s)
{
    if (s[0] == '\0') return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x21 || c > 0x7e || c == '"' || c == '\\') return false;
    }
    return true;
}

/* addr/prefix, IPv4 or IPv6; a bare address means one host. */
bool pc_cfg_gw_cidr_ok(const char *s)
{
    char addr[64];
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    if (alen == 0 || alen >= sizeof addr) return false;
    memcpy(addr, s, alen);
    addr[alen] = '\0';
    unsigned char buf[16];
    unsigned max = 0;
    if (inet_pton(AF_INET, addr, buf) == 1) max = 32;
    else if (inet_pton(AF_INET6, addr, buf) == 1) max = 128;
    else return false;
    if (slash == NULL) return true;
    uint32_t bits = 0;
    return pc_ok(pc_cfg_parse_uint(slash + 1, &bits)) && bits <= max;
}

/* RFC 9110 §5.6.2 token characters, for a header name. */
bool pc_cfg_gw_header_name_ok(const char *s)
{
    if (s[0] == '\0') return false;
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *s) != NULL))
            return false;
    return true;
}

/* ---- upstream URLs ---------------------------------------------------------- */

static bool is_loopback(const char *host)
{
    unsigned char a[16];
    if (strcmp(host, "localhost") == 0) return true;
    if (inet_pton(AF_INET, host, a) == 1) return a[0] == 127;
    if (inet_pton(AF_INET6, host, a) == 1) {
        static const unsigned char one[16] = {[15] = 1};
        return memcmp(a, one, sizeof one) == 0;
    }
    return false;
}

static bool host_chars_ok(const char *h, size_t len)
{
    if (len == 0) return false;
    for (size_t i = 0; i < len; i++)
        if (!((h[i] >= 'a' && h[i] <= 'z') || (h[i] >= 'A' && h[i] <= 'Z') ||
              (h[i] >= '0' && h[i] <= '9') || h[i] == '.' || h[i] == '-'))
            return false;
    return true;
}

/* scheme "://" host [":" port] [path], no userinfo, query or fragment.
 * Fills u->https, host, port, base_path; why says what is wrong. */
bool pc_cfg_gw_split_url(const char *s, pc_upstream_config *u, char *why, size_t cap)
{
    const char *rest;
    if (strncmp(s, "http://", 7) == 0) rest = s + 7, u->https = false;
    else if (strncmp(s, "https://", 8) == 0) rest = s + 8, u->https = true;
    else return snprintf(why, cap, "the scheme must be http or https"), false;
    if (strlen(s) > PC_CONFIG_MAX_URL || strpbrk(rest, "?#@ ") != NULL)
        return snprintf(why, cap, "no user, query, fragment or spaces"), false;
    const char *hend;
    const char *h = rest;
    size_t hlen;
    if (rest[0] == '[') {
        hend = strchr(rest, ']');
        if (hend == NULL) return snprintf(why, cap, "unclosed ["), false;
        h = rest + 1;
        hlen = (size_t)(hend - h);
        hend++;
        unsigned char a[16];
        char tmp[64];
        if (hlen == 0 || hlen >= sizeof tmp) return snprintf(why, cap, "bad IPv6 address"), false;
        memcpy(tmp, h, hlen);
        tmp[hlen] = '\0';
        if (inet_pton(AF_INET6, tmp, a) != 1) return snprintf(why, cap, "bad IPv6 address"), false;
    } else {
        hend = rest + strcspn(rest, ":/");
        hlen = (size_t)(hend - rest);
        if (!host_chars_ok(h, hlen)) return snprintf(why, cap, "bad host"), false;
    }
    uint32_t port = u->https ? 443 : 80;
    const char *p = hend;
    if (*p == ':') {
        char num[8];
        size_t n = strcspn(p + 1, "/");
        if (n == 0 || n >= sizeof num) return snprintf(why, cap, "bad port"), false;
        memcpy(num, p + 1, n);
        num[n] = '\0';
        if (!pc_ok(pc_cfg_parse_uint(num, &port)) || port < 1 || port > 65535)
            return snprintf(why, cap, "the port must be 1 to 65535"), false;
        p += 1 + n;
    }
    if (*p != '\0' && *p != '/') return snprintf(why, cap, "bad host"), false;
    u->port = (uint16_t)port;
    u->host = strndup(h, hlen);
    size_t plen = strlen(p);
    while (plen > 0 && p[plen - 1] == '/') plen--; /* we append "/path" */
    u->base_path = strndup(p, plen);
    if (u->host == NULL || u->base_path == NULL) return snprintf(why, cap, "out of memory"), false;
    if (!u->https && !is_loopback(u->host))
        return snprintf(why, cap, "plain http only to loopback; use https with a ca"), false;
    return true;
}

/* ---- upstreams -------------------------------------------------------------- */

enum { UP_URL, UP_CA, UP_CONNECT_TIMEOUT, UP_TIMEOUT, UP_MAX_IDLE, N_UP };
static const char *const up_keys[N_UP] = {
    [UP_URL] = "url",
    [UP_CA] = "ca",
    [UP_CONNECT_TIMEOUT] = "connect_timeout",
    [UP_TIMEOUT] = "timeout",
    [UP_MAX_IDLE] = "max_idle",
};

static bool name_ok(const char *s, size_t len)
{
    if (len == 0 || len > PC_CONFIG_MAX_UPSTREAM_NAME) return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-'))
            return false;
    return true;
}

static pc_result parse_upstream(pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                                pc_upstream_config *u)
{
    yaml_node_t *v[N_UP];
    char sub[PC_CONFIG_MAX_PATH];
    u->connect_timeout_ms = PC_CONFIG_GW_CONNECT_TIMEOUT_MS;
    u->timeout_ms = PC_CONFIG_GW_UPSTREAM_TIMEOUT_MS;
    u->max_idle = DEFAULT_MAX_IDLE;
    u->line = (int)n->start_mark.line + 1;
    PC_GUARD(pc_cfg_map(d, n, path, up_keys, N_UP, v));
    PC_GUARD(pc_cfg_require(d, n, path, up_keys[UP_URL], v[UP_URL]));
    pc_cfg_path(sub, sizeof sub, path, up_keys[UP_URL]);
    PC_GUARD(pc_cfg_string(d, v[UP_URL], sub, &u->url));
    char why[96];
    if (!pc_cfg_gw_split_url(u->url, u, why, sizeof why)) {
        char got[GOT_CAP];
        pc_cfg_describe(v[UP_URL], got, sizeof got);
        return pc_cfg_fail(d, v[UP_URL], sub,
                           "expected http://127.0.0.1:PORT or https://HOST[:PORT] (%s), got %s",
                           why, got);
    }
    size_t ulen = strlen(u->url);
    while (ulen > 0 && u->url[ulen - 1] == '/') u->url[--ulen] = '\0';
    if (v[UP_CA] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, up_keys[UP_CA]);
        PC_GUARD(pc_cfg_string(d, v[UP_CA], sub, &u->ca_file));
    }
    if (u->https && u->ca_file == NULL)
        return pc_cfg_fail(d, n, path,
                           "missing required key \"ca\" (an https upstream is verified against it)");
    if (v[UP_CONNECT_TIMEOUT] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, up_keys[UP_CONNECT_TIMEOUT]);
        PC_GUARD(pc_cfg_duration(d, v[UP_CONNECT_TIMEOUT], sub, 1, PC_CONFIG_GW_TIMEOUT_MAX_MS,
                                 &u->connect_timeout_ms));
    }
    if (v[UP_TIMEOUT] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, up_keys[UP_TIMEOUT]);
        PC_GUARD(pc_cfg_duration(d, v[UP_TIMEOUT], sub, 1, PC_CONFIG_GW_TIMEOUT_MAX_MS,
                                 &u->timeout_ms));
    }
    if (v[UP_MAX_IDLE] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, up_keys[UP_MAX_IDLE]);
        PC_GUARD(pc_cfg_uint(d, v[UP_MAX_IDLE], sub, 1, PC_CONFIG_MAX_IDLE_MAX, &u->max_idle));
    }
    return PC_OK;
}

pc_result pc_cfg_upstreams(pc_cfg_doc *d, const yaml_node_t *n, pc_config *cfg)
{
    static const char path[] = "upstreams";
    if (n->type != YAML_MAPPING_NODE) {
        char got[GOT_CAP];
        pc_cfg_describe(n, got, sizeof got);
        return pc_cfg_fail(d, n, path, "expected a mapping of upstream names, got %s", got);
    }
    size_t c = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    if (c > PC_CONFIG_MAX_UPSTREAMS)
        return pc_cfg_fail(d, n, path, "expected at most %u upstreams, got %zu",
                           PC_CONFIG_MAX_UPSTREAMS, c);
    cfg->upstreams = calloc(c ? c : 1, sizeof *cfg->upstreams);
    PC_ENSURE(cfg->upstreams != NULL, PC_ERR_INTERNAL, "out of memory reading the config");
    for (size_t i = 0; i < c; i++) {
        yaml_node_pair_t *p = &n->data.mapping.pairs.start[i];
        yaml_node_t *k = pc_cfg_node(d, p->key);
        yaml_node_t *v = pc_cfg_node(d, p->value);
        if (k->type != YAML_SCALAR_NODE ||
            !name_ok((const char *)k->data.scalar.value, k->data.scalar.length))
            return pc_cfg_fail(d, k, path,
                               "expected an upstream name of letters, digits, '_' and '-'");
        const char *name = (const char *)k->data.scalar.value;
        for (size_t j = 0; j < i; j++)
            if (strcmp(cfg->upstreams[j].name, name) == 0)
                return pc_cfg_fail(d, k, path, "duplicate upstream \"%s\"", name);
        char sub[PC_CONFIG_MAX_PATH];
        pc_cfg_path(sub, sizeof sub, path, name);
        cfg->n_upstreams = i + 1;
        PC_GUARD(pc_cfg_strdup(name, &cfg->upstreams[i].name));
        PC_GUARD(parse_upstream(d, v, sub, &cfg->upstreams[i]));
    }
    return PC_OK;
}

/* ---- a route's upstream, auth and timeout ------------------------------------ */

enum { AU_SCOPES, AU_BINDING, AU_AUDIENCE, AU_INTROSPECTION, N_AU };
static const char *const au_keys[N_AU] = {[AU_SCOPES] = "scopes",
                                          [AU_BINDING] = "binding",
                                          [AU_AUDIENCE] = "audience",
                                          [AU_INTROSPECTION] = "introspection"};
static const char *const introspection_names[] = {"auto", "always"};
static const char *const binding_names[] = {
    [PC_GW_BIND_ANY] = "any", [PC_GW_BIND_MTLS] = "mtls", [PC_GW_BIND_DPOP] = "dpop"};

static pc_result parse_auth(pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                            const pc_config *cfg, pc_route_auth *a)
{
    yaml_node_t *v[N_AU];
    char sub[PC_CONFIG_MAX_PATH];
    a->enabled = true;
    if (pc_cfg_is_null(n))
        return pc_cfg_fail(d, n, path, "expected a mapping (write {} for all defaults), got nothing");
    PC_GUARD(pc_cfg_map(d, n, path, au_keys, N_AU, v));
    if (v[AU_SCOPES] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, au_keys[AU_SCOPES]);
        PC_GUARD(pc_cfg_gw_strings(d, v[AU_SCOPES], sub, scope_ok, "a scope token", &a->scopes,
                               &a->n_scopes));
    }
    if (v[AU_BINDING] != NULL) {
        int i = 0;
        pc_cfg_path(sub, sizeof sub, path, au_keys[AU_BINDING]);
        PC_GUARD(pc_cfg_enum(d, v[AU_BINDING], sub, binding_names, N_OF(binding_names), &i));
        a->binding = (pc_gw_binding)i;
    }
    if (v[AU_INTROSPECTION] != NULL) {
        int i = 0;
        pc_cfg_path(sub, sizeof sub, path, au_keys[AU_INTROSPECTION]);
        PC_GUARD(pc_cfg_enum(d, v[AU_INTROSPECTION], sub, introspection_names,
                             N_OF(introspection_names), &i));
        a->introspect_always = i == 1;
        a->introspection_line = (int)v[AU_INTROSPECTION]->start_mark.line + 1;
    }
    if (v[AU_AUDIENCE] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, au_keys[AU_AUDIENCE]);
        return pc_cfg_string(d, v[AU_AUDIENCE], sub, &a->audience);
    }
    /* RFC 8707 / RFC 9068 §4: a token must be meant for this resource. With
     * no audience to check, any token the AS issued for another API would
     * pass, so there is no "no audience" mode. */
    if (cfg->as.n_resources > 0) return pc_cfg_strdup(cfg->as.resources[0], &a->audience);
    return pc_cfg_fail(d, n, path,
                       "missing required key \"audience\" (no as.resources to default from)");
}

pc_result pc_cfg_route_upstream(pc_cfg_doc *d, const yaml_node_t *route,
                                const yaml_node_t *upstream, const yaml_node_t *auth,
                                const yaml_node_t *timeout, const char *path,
                                const pc_config *cfg, pc_route_config *r)
{
    char sub[PC_CONFIG_MAX_PATH];
    if (upstream == NULL) {
        const yaml_node_t *at = auth != NULL ? auth : timeout;
        return pc_cfg_fail(d, at, path, "%s applies only to an upstream: route",
                           auth != NULL ? "auth" : "timeout");
    }
    r->kind = PC_ROUTE_UPSTREAM;
    pc_cfg_path(sub, sizeof sub, path, "upstream");
    PC_GUARD(pc_cfg_string(d, upstream, sub, &r->upstream));
    bool found = false;
    for (size_t i = 0; i < cfg->n_upstreams && !found; i++) {
        found = strcmp(cfg->upstreams[i].name, r->upstream) == 0;
        if (found) r->upstream_index = i;
    }
    if (!found)
        return pc_cfg_fail(d, upstream, sub, "no upstream named \"%s\" in upstreams", r->upstream);
    if (timeout != NULL) {
        pc_cfg_path(sub, sizeof sub, path, "timeout");
        PC_GUARD(pc_cfg_duration(d, timeout, sub, 1, PC_CONFIG_GW_TIMEOUT_MAX_MS, &r->timeout_ms));
    }
    if (auth != NULL) {
        pc_cfg_path(sub, sizeof sub, path, "auth");
        PC_GUARD(parse_auth(d, auth, sub, cfg, &r->auth));
    }
    (void)route;
    return PC_OK;
}

/* ---- after every section ------------------------------------------------------ */

static pc_result default_external_url(pc_config *cfg)
{
    if (cfg->gw.external_url != NULL) return PC_OK;
    if (cfg->public_url != NULL) return pc_cfg_strdup(cfg->public_url, &cfg->gw.external_url);
    char buf[128];
    const char *h = cfg->listen_host ? cfg->listen_host : "127.0.0.1";
    bool v6 = strchr(h, ':') != NULL;
    snprintf(buf, sizeof buf, "https://%s%s%s:%u", v6 ? "[" : "", h, v6 ? "]" : "",
             (unsigned)cfg->listen_port);
    return pc_cfg_strdup(buf, &cfg->gw.external_url);
}

pc_result pc_cfg_gw_finish(pc_config *cfg)
{
    PC_GUARD(default_external_url(cfg));
    if (cfg->gw.client_cert_header_name == NULL)
        PC_GUARD(pc_cfg_strdup("Client-Cert", &cfg->gw.client_cert_header_name));
    if (cfg->gw.trusted_proxies == NULL) {
        cfg->gw.trusted_proxies = calloc(1, sizeof *cfg->gw.trusted_proxies);
        PC_ENSURE(cfg->gw.trusted_proxies != NULL, PC_ERR_INTERNAL, "out of memory");
        PC_GUARD(pc_cfg_strdup("127.0.0.1/32", &cfg->gw.trusted_proxies[0]));
        cfg->gw.n_trusted_proxies = 1;
    }
    size_t n_gw = 0;
    for (size_t i = 0; i < cfg->n_routes; i++) n_gw += cfg->routes[i].kind == PC_ROUTE_UPSTREAM;
    if (n_gw == 0) return PC_OK;
    cfg->gw_routes = calloc(n_gw, sizeof *cfg->gw_routes);
    PC_ENSURE(cfg->gw_routes != NULL, PC_ERR_INTERNAL, "out of memory reading the config");
    size_t keep = 0;
    for (size_t i = 0; i < cfg->n_routes; i++) {
        if (cfg->routes[i].kind == PC_ROUTE_UPSTREAM)
            cfg->gw_routes[cfg->n_gw_routes++] = cfg->routes[i];
        else
            cfg->routes[keep++] = cfg->routes[i];
    }
    cfg->n_routes = keep;
    return PC_OK;
}
