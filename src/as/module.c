/* The AS as a server module: shared state made once, per-config state
 * (clients, keys, metadata) built on start and on every reload. */
#include "as/as.h"
#include "abuse/abuse.h"
#include "as/as_internal.h"
#include "core/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static bool as_enabled(const pc_config *cfg) { return cfg->as.enabled; }

static void revoked_into(const char *jti, int64_t exp, void *arg)
{
    (void)pc_replay_check(arg, "", 0, jti, strlen(jti), exp, pc_as_now());
}

static pc_result store_path(const pc_config *cfg, char *buf, size_t cap)
{
    const char *dir = cfg->state_dir ? cfg->state_dir : "./var";
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return pc_fail(PC_ERR_IO, "server.state_dir %s: %s", dir, strerror(errno));
    int n = snprintf(buf, cap, "%s/portcullis.db", dir);
    PC_ENSURE(n > 0 && (size_t)n < cap, PC_ERR_USAGE, "server.state_dir is too long");
    return PC_OK;
}

static void as_stop(void *p)
{
    pc_as_shared *sh = p;
    if (sh == NULL) return;
    pc_replay_free(sh->assertion_jti);
    pc_replay_free(sh->dpop_jti);
    pc_replay_free(sh->revoked);
    pthread_mutex_destroy(&sh->cutoff_mu);
    pc_store_close(sh->store);
    pthread_mutex_destroy(&sh->store_mu);
    free(sh);
}

static pc_result as_start(const pc_config *cfg, void **out)
{
    pc_as_shared *sh = calloc(1, sizeof *sh);
    PC_ENSURE(sh != NULL, PC_ERR_INTERNAL, "out of memory");
    pthread_mutex_init(&sh->store_mu, NULL);
    pthread_mutex_init(&sh->cutoff_mu, NULL);
    char path[4096];
    pc_result r = store_path(cfg, path, sizeof path);
    if (pc_ok(r)) r = pc_store_open(path, &sh->store);
    if (pc_ok(r)) r = pc_replay_new(PC_REPLAY_DEFAULT_CAPACITY, &sh->assertion_jti);
    if (pc_ok(r)) r = pc_replay_new(PC_REPLAY_DEFAULT_CAPACITY, &sh->dpop_jti);
    if (pc_ok(r)) r = pc_replay_new(PC_REPLAY_DEFAULT_CAPACITY, &sh->revoked);
    if (pc_ok(r)) r = pc_dpop_noncer_init(&sh->noncer, cfg->as.dpop_nonce_secret_file);
    if (pc_ok(r))
        r = pc_store_revoked_each(sh->store, pc_as_now(), revoked_into, sh->revoked);
    if (!pc_ok(r)) {
        as_stop(sh);
        return r;
    }
    *out = sh;
    return PC_OK;
}

/* Config clients are the source of truth for clients with source
 * "config": put each, and remove those the config no longer lists. */
static pc_result seed_clients(const pc_config *cfg, pc_store *st)
{
    const pc_as_config *ac = &cfg->as;
    for (size_t i = 0; i < ac->n_clients; i++) {
        json_error_t jerr;
        json_t *md = json_loads(ac->clients[i].metadata_json, 0, &jerr);
        pc_client *c = NULL;
        pc_result r = md ? pc_client_from_metadata(md, &c) : pc_fail(PC_ERR_USAGE, "%s", jerr.text);
        json_decref(md);
        pc_client_free(c);
        if (!pc_ok(r))
            return pc_fail(PC_ERR_USAGE, "%s:%d: as.clients[%zu]: %s", cfg->path ? cfg->path : "config",
                           ac->clients[i].line, i, pc_errmsg());
        PC_GUARD(pc_store_client_put(st, ac->clients[i].client_id, ac->clients[i].metadata_json,
                                     "config"));
    }
    pc_store_client **all = NULL;
    size_t n = 0;
    PC_GUARD(pc_store_client_list(st, &all, &n));
    pc_result r = PC_OK;
    for (size_t i = 0; i < n; i++) {
        bool listed = false;
        for (size_t k = 0; k < ac->n_clients && !listed; k++)
            listed = strcmp(all[i]->client_id, ac->clients[k].client_id) == 0;
        if (pc_ok(r) && !listed && strcmp(all[i]->source, "config") == 0)
            r = pc_store_client_delete(st, all[i]->client_id);
        pc_store_client_free(all[i]);
    }
    free(all);
    return r;
}

static unsigned enabled_methods(const pc_config *cfg)
{
    unsigned m = 1u << PC_AUTH_PRIVATE_KEY_JWT;
    switch (cfg->tls.client_cert) {
    case PC_CLIENT_CERT_OPTIONAL:
    case PC_CLIENT_CERT_REQUIRED:
        m |= 1u << PC_AUTH_TLS_CLIENT;
        break;
    case PC_CLIENT_CERT_OPTIONAL_NO_CA:
        m |= 1u << PC_AUTH_TLS_CLIENT;
        if (cfg->tls.n_client_ca_files == 0) m &= ~(1u << PC_AUTH_TLS_CLIENT);
        m |= 1u << PC_AUTH_SELF_SIGNED_TLS;
        break;
    default:
        break;
    }
    return m;
}

static void as_free(void *p)
{
    pc_as *as = p;
    if (as == NULL) return;
    pc_client_set_free(as->clients);
    pc_keyring_free(as->keys);
    free(as->issuer);
    free(as->token_url);
    free(as->metadata_json);
    free(as);
}

static pc_result build_state(const pc_config *cfg, pc_as_shared *sh, pc_as *as)
{
    const pc_as_config *ac = &cfg->as;
    as->cfg = cfg;
    as->ac = ac;
    as->sh = sh;
    as->issuer = strdup(ac->issuer);
    size_t n = strlen(ac->issuer) + sizeof "/token";
    as->token_url = malloc(n);
    PC_ENSURE(as->issuer && as->token_url, PC_ERR_INTERNAL, "out of memory");
    snprintf(as->token_url, n, "%s/token", ac->issuer);
    as->lifetime_s = ac->access_token_lifetime_ms / 1000;
    as->max_lifetime_s = ac->max_access_token_lifetime_ms / 1000;
    if (as->max_lifetime_s > PC_AS_MAX_TOKEN_LIFETIME_S) as->max_lifetime_s = PC_AS_MAX_TOKEN_LIFETIME_S;
    if (as->lifetime_s > as->max_lifetime_s) as->lifetime_s = as->max_lifetime_s;
    as->assertion_max_s = ac->assertion_max_lifetime_ms / 1000;
    as->skew_s = ac->clock_skew_ms / 1000;
    as->dpop_max_age_s = ac->dpop_proof_lifetime_ms / 1000;
    as->auth_methods = enabled_methods(cfg);

    pc_jws_alg alg = pc_jws_alg_parse(pc_str_c(ac->signing_alg));
    PC_ENSURE(alg & PC_ALGS_FAPI, PC_ERR_USAGE, "as.signing_alg %s is not ES256, PS256 or EdDSA",
              ac->signing_alg);
    pc_kek kek;
    PC_GUARD(pc_kek_load(ac->kek_file, &kek));
    pthread_mutex_lock(&sh->store_mu);
    pc_result r = seed_clients(cfg, sh->store);
    if (pc_ok(r)) r = pc_client_set_load(sh->store, &as->clients);
    if (pc_ok(r)) r = pc_keyring_load(sh->store, &kek, alg, &as->keys);
    pthread_mutex_unlock(&sh->store_mu);
    pc_kek_wipe(&kek);
    PC_GUARD(r);
    PC_GUARD(pc_as_build_metadata(as));
    pc_logline l;
    if (pc_log_begin(&l, PC_LOG_INFO, "as_ready")) {
        pc_log_cstr(&l, "issuer", as->issuer);
        pc_log_uint(&l, "clients", pc_client_set_count(as->clients));
        pc_log_cstr(&l, "signing_kid", pc_keyring_active_kid(as->keys));
        pc_log_end(&l);
    }
    return PC_OK;
}

static pc_result as_build(const pc_config *cfg, void *shared, pc_route_sink *sink, void **out)
{
    pc_as *as = calloc(1, sizeof *as);
    PC_ENSURE(as != NULL, PC_ERR_INTERNAL, "out of memory");
    pc_result r = build_state(cfg, shared, as);
    /* Failure limits, rate limits, quarantines and detectors: the abuse
     * module is registered before this one and is on whenever as: is. */
    as->abuse = pc_route_sink_module_state(sink, "abuse");
    if (pc_ok(r) && as->abuse == NULL)
        r = pc_fail(PC_ERR_INTERNAL, "the abuse module must be registered before the AS");
    if (pc_ok(r)) pc_abuse_set_revoker(as->abuse, pc_as_revoke_client, as);
    static const struct {
        const char *method, *path;
        pc_handler_fn fn;
        const char *name;
    } routes[] = {
        {"POST", "/token", pc_as_token_endpoint, "as_token"},
        {"POST", "/introspect", pc_as_introspect_endpoint, "as_introspect"},
        {"POST", "/revoke", pc_as_revoke_endpoint, "as_revoke"},
        {"GET", "/jwks", pc_as_jwks_endpoint, "as_jwks"},
        {"GET", "/.well-known/oauth-authorization-server", pc_as_metadata_endpoint, "as_metadata"},
        {"GET", "/.well-known/openid-configuration", pc_as_metadata_endpoint, "as_metadata"},
    };
    for (size_t i = 0; pc_ok(r) && i < sizeof routes / sizeof routes[0]; i++)
        r = pc_route_sink_add(sink, routes[i].method, routes[i].path, routes[i].fn, as,
                              routes[i].name);
    if (!pc_ok(r)) {
        as_free(as);
        return r;
    }
    *out = as;
    return PC_OK;
}

const pc_module pc_as_module = {
    .name = "as",
    .enabled = as_enabled,
    .start = as_start,
    .stop = as_stop,
    .build = as_build,
    .free = as_free,
};
