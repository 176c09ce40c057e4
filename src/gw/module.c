/* The gateway as a server module: shared state made once (the DPoP jti
 * replay cache and the nonce secret), per-runtime state (routes, trusted
 * proxy ranges) built on start and on every reload. */
#include "abuse/abuse.h"
#include "as/as.h"
#include "core/log.h"
#include "gw/internal.h"
#include "gw/jwks.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* "upstreams." + a name of at most 64 + ".ca" */
#define PC_GW_MAX_KEY_NAME 96

int64_t pc_gw_now(void) { return (int64_t)time(NULL); }

int64_t pc_gw_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool gw_enabled(const pc_config *cfg) { return cfg->n_gw_routes > 0; }

static void gw_stop(void *p)
{
    pc_gw_shared *sh = p;
    if (sh == NULL) return;
    pc_gw_jwks_stop(sh->jwks);
    pc_replay_free(sh->dpop_jti);
    pc_wipe(&sh->noncer, sizeof sh->noncer);
    free(sh);
}

static pc_result gw_start(const pc_config *cfg, void **out)
{
    pc_gw_shared *sh = calloc(1, sizeof *sh);
    PC_ENSURE(sh != NULL, PC_ERR_INTERNAL, "out of memory");
    /* The nonce secret is read once: a reload that changed the file would
     * invalidate every nonce in flight; restart to rotate it. */
    pc_result r = pc_replay_new(PC_REPLAY_DEFAULT_CAPACITY, &sh->dpop_jti);
    if (pc_ok(r)) r = pc_dpop_noncer_init(&sh->noncer, cfg->gw.dpop_nonce_secret_file);
    /* The fetcher thread and its settings live as long as the server:
     * changing gateway.remote_as needs a restart (a reload keeps it). */
    if (pc_ok(r) && cfg->gw.remote_keys) r = pc_gw_jwks_start(&cfg->gw, &sh->jwks);
    if (!pc_ok(r)) {
        gw_stop(sh);
        return r;
    }
    *out = sh;
    return PC_OK;
}

static void gw_free(void *p)
{
    pc_gw *gw = p;
    if (gw == NULL) return;
    for (size_t i = 0; gw->routes && i < gw->n_routes; i++) free(gw->routes[i].label);
    free(gw->routes);
    free(gw);
}

/* An https upstream's CA file must load now, so a typo fails the start
 * or the reload with its location instead of every request with a 502. */
static pc_result check_ca(const pc_config *cfg, const pc_upstream_config *u, const char *key)
{
    if (!u->https) return PC_OK;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    PC_ENSURE(ctx != NULL, PC_ERR_INTERNAL, "out of memory");
    int ok = SSL_CTX_load_verify_locations(ctx, u->ca_file, NULL);
    int cert_ok = u->cert_file == NULL ||
                  (SSL_CTX_use_certificate_chain_file(ctx, u->cert_file) == 1 &&
                   SSL_CTX_use_PrivateKey_file(ctx, u->key_file, SSL_FILETYPE_PEM) == 1 &&
                   SSL_CTX_check_private_key(ctx) == 1);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    PC_ENSURE(ok == 1, PC_ERR_USAGE, "%s:%d: %s: cannot load CA certificates from %s",
              cfg->path ? cfg->path : "config", u->line, key, u->ca_file);
    PC_ENSURE(cert_ok, PC_ERR_USAGE, "%s:%d: %s: cannot load the client certificate %s with key %s",
              cfg->path ? cfg->path : "config", u->line, key, u->cert_file, u->key_file);
    return PC_OK;
}

/* Runtime generations start at 1; 0 means "no entry" in the token cache. */
static _Atomic uint64_t generations;

static pc_result build_state(const pc_config *cfg, pc_gw *gw, pc_route_sink *sink)
{
    gw->cfg = cfg;
    gw->generation = atomic_fetch_add(&generations, 1) + 1;
    gw->as = pc_route_sink_module_state(sink, "as");
    gw->abuse = pc_route_sink_module_state(sink, "abuse");
    /* The fetcher was started with the config of the server's start: a
     * reload may drop gateway.remote_as but not add or change it. */
    PC_ENSURE(!cfg->gw.remote ||
                  (cfg->gw.remote_keys ? gw->sh->jwks != NULL && pc_gw_jwks_same(gw->sh->jwks, &cfg->gw)
                                       : gw->sh->jwks == NULL),
              PC_ERR_USAGE, "gateway.remote_as changed: it takes effect on a restart, not a reload");
    /* A remote AS, when configured, is the one tokens come from. */
    if (cfg->gw.remote) gw->as = NULL;
    for (size_t i = 0; i < cfg->gw.n_trusted_proxies && gw->n_proxies < PC_GW_MAX_PROXIES; i++)
        PC_GUARD(pc_gw_cidr_parse(cfg->gw.trusted_proxies[i], &gw->proxies[gw->n_proxies++]));
    for (size_t i = 0; i < cfg->n_upstreams; i++) {
        char key[PC_GW_MAX_KEY_NAME];
        snprintf(key, sizeof key, "upstreams.%s.ca", cfg->upstreams[i].name);
        PC_GUARD(check_ca(cfg, &cfg->upstreams[i], key));
    }
    if (cfg->gw.remote_keys) PC_GUARD(check_ca(cfg, &cfg->gw.remote_jwks, "gateway.remote_as.ca"));
    if (cfg->gw.introspect)
        PC_GUARD(check_ca(cfg, &cfg->gw.introspection, "gateway.remote_as.introspection"));
    gw->routes = calloc(cfg->n_gw_routes, sizeof *gw->routes);
    PC_ENSURE(gw->routes != NULL, PC_ERR_INTERNAL, "out of memory");
    for (size_t i = 0; i < cfg->n_gw_routes; i++) {
        const pc_route_config *rc = &cfg->gw_routes[i];
        pc_gw_route *rt = &gw->routes[gw->n_routes++];
        rt->gw = gw;
        rt->rc = rc;
        rt->up = &cfg->upstreams[rc->upstream_index];
        rt->timeout_ms = rc->timeout_ms ? rc->timeout_ms : rt->up->timeout_ms;
        size_t ll = strlen(rc->method) + strlen(rc->path) + 2;
        rt->label = malloc(ll);
        PC_ENSURE(rt->label != NULL, PC_ERR_INTERNAL, "out of memory");
        snprintf(rt->label, ll, "%s %s", rc->method, rc->path);
        rt->slot = (uint32_t)i;
        if ((rc->n_rate_limits || rc->identifier) && gw->abuse == NULL)
            return pc_fail(PC_ERR_INTERNAL, "the abuse module must be registered before the gateway");
        /* Tokens come only from the in-process AS today; a route that asks
         * for auth without one could never admit anybody. Refuse the
         * config instead of failing every request (remote JWKS is later). */
        if (rc->auth.enabled && gw->as == NULL && !cfg->gw.remote)
            return pc_fail(PC_ERR_USAGE,
                           "%s:%d: route %s %s has auth: but there is no as: section or "
                           "gateway.remote_as to verify tokens with",
                           cfg->path ? cfg->path : "config", rc->line, rc->method, rc->path);
        /* With a remote AS, `always` means asking its introspection
         * endpoint; without one configured every request would fail. (The
         * in-process AS is consulted on every request anyway.) */
        if (rc->auth.introspect_always && gw->as == NULL && !cfg->gw.introspect)
            return pc_fail(PC_ERR_USAGE,
                           "%s:%d: route %s %s has auth.introspection: always but "
                           "gateway.remote_as has no introspection endpoint",
                           cfg->path ? cfg->path : "config", rc->auth.introspection_line,
                           rc->method, rc->path);
        pc_result r = pc_route_sink_add(sink, rc->method, rc->path, pc_gw_handle, rt, "gateway");
        if (!pc_ok(r))
            return pc_fail(PC_ERR_USAGE, "%s:%d: %s", cfg->path ? cfg->path : "config", rc->line,
                           pc_errmsg());
    }
    return PC_OK;
}

static pc_result gw_build(const pc_config *cfg, void *shared, pc_route_sink *sink, void **out)
{
    pc_gw *gw = calloc(1, sizeof *gw);
    PC_ENSURE(gw != NULL, PC_ERR_INTERNAL, "out of memory");
    gw->sh = shared;
    pc_result r = build_state(cfg, gw, sink);
    if (!pc_ok(r)) {
        gw_free(gw);
        return r;
    }
    pc_logline l;
    if (pc_log_begin(&l, PC_LOG_INFO, "gateway_ready")) {
        pc_log_uint(&l, "routes", gw->n_routes);
        pc_log_uint(&l, "upstreams", cfg->n_upstreams);
        pc_log_cstr(&l, "external_url", cfg->gw.external_url);
        pc_log_bool(&l, "in_process_as", gw->as != NULL);
        if (cfg->gw.remote) pc_log_cstr(&l, "remote_issuer", cfg->gw.remote_issuer);
        pc_log_end(&l);
    }
    *out = gw;
    return PC_OK;
}

const pc_module pc_gw_module = {
    .name = "gateway",
    .enabled = gw_enabled,
    .start = gw_start,
    .stop = gw_stop,
    .build = gw_build,
    .free = gw_free,
};
