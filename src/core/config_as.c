/* The `as:` section: the authorization server. Clients are RFC 7591
 * metadata written as YAML; each is converted to a JSON object text here
 * (validated later by as/clients.c, which reports the client's line). A
 * `jwks_file` member is a portcullis extension: the file's JSON is read
 * and put in as `jwks`, so configs need not inline keys. */
#include "core/config.h"
#include "core/config_impl.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))
/* A JWKS file is a handful of public keys. */
#define PC_CONFIG_MAX_JWKS_FILE (64u * 1024u)
/* Clients seeded from one config. */
#define PC_CONFIG_MAX_CLIENTS 10000u
/* Scopes and resources listed in one config. */
#define PC_CONFIG_MAX_LIST 1024u

enum {
    AS_ISSUER,
    AS_PROFILE,
    AS_SIGNING_ALG,
    AS_KEK_FILE,
    AS_LIFETIME,
    AS_MAX_LIFETIME,
    AS_ASSERTION_MAX,
    AS_SKEW,
    AS_FAILURES,
    AS_FAILURES_IP,
    AS_RATE_LIMITS,
    AS_SCOPES,
    AS_RESOURCES,
    AS_DPOP,
    AS_CLIENTS,
    N_AS
};
static const char *const as_keys[N_AS] = {
    [AS_ISSUER] = "issuer",
    [AS_PROFILE] = "profile",
    [AS_SIGNING_ALG] = "signing_alg",
    [AS_KEK_FILE] = "kek_file",
    [AS_LIFETIME] = "access_token_lifetime",
    [AS_MAX_LIFETIME] = "max_access_token_lifetime",
    [AS_ASSERTION_MAX] = "assertion_max_lifetime",
    [AS_SKEW] = "clock_skew",
    [AS_FAILURES] = "auth_failures_per_minute",
    [AS_FAILURES_IP] = "auth_failures_per_minute_per_ip",
    [AS_RATE_LIMITS] = "rate_limits",
    [AS_SCOPES] = "scopes",
    [AS_RESOURCES] = "resources",
    [AS_DPOP] = "dpop",
    [AS_CLIENTS] = "clients",
};

enum { DPOP_PROOF_LIFETIME, DPOP_NONCE, DPOP_NONCE_SECRET, N_DPOP };
static const char *const dpop_keys[N_DPOP] = {
    [DPOP_PROOF_LIFETIME] = "proof_lifetime",
    [DPOP_NONCE] = "nonce",
    [DPOP_NONCE_SECRET] = "nonce_secret_file",
};

static const char *const profiles[] = {"fapi2", "compat"};
static const char *const algs[] = {"ES256", "PS256", "EdDSA"};

void pc_cfg_as_defaults(pc_as_config *ac)
{
    memset(ac, 0, sizeof *ac);
    ac->profile = PC_AS_PROFILE_FAPI2;
    ac->access_token_lifetime_ms = 300u * 1000u;
    ac->max_access_token_lifetime_ms = 3600u * 1000u;
    ac->assertion_max_lifetime_ms = 60u * 1000u;
    ac->clock_skew_ms = 10u * 1000u;
    ac->dpop_proof_lifetime_ms = 60u * 1000u;
    ac->auth_failures_per_minute = 10;
    ac->auth_failures_per_minute_per_ip = 30;
}

void pc_cfg_as_free(pc_as_config *ac)
{
    free(ac->issuer);
    free(ac->signing_alg);
    free(ac->kek_file);
    free(ac->dpop_nonce_secret_file);
    for (size_t i = 0; i < ac->n_scopes; i++) free(ac->scopes[i]);
    free(ac->scopes);
    for (size_t i = 0; i < ac->n_resources; i++) free(ac->resources[i]);
    free(ac->resources);
    for (size_t i = 0; i < ac->n_clients; i++) {
        free(ac->clients[i].client_id);
        free(ac->clients[i].metadata_json);
    }
    free(ac->clients);
    free(ac->rate_limits);
}

/* https://host[:port][/path], no query, fragment or trailing slash: the
 * issuer identifier is compared byte for byte (RFC 8414 §2, §3.3), so we
 * refuse the forms that invite near-misses instead of rewriting them. */
static pc_result parse_issuer(pc_cfg_doc *d, const yaml_node_t *n, const char *path, char **out)
{
    PC_GUARD(pc_cfg_string(d, n, path, out));
    const char *s = *out;
    size_t len = strlen(s);
    if (strncmp(s, "https://", 8) != 0 || len <= 8 || s[8] == '/' ||
        strpbrk(s, "?# ") != NULL || s[len - 1] == '/')
        return pc_cfg_fail(d, n, path,
                           "expected an https URL with no query, fragment or trailing slash, "
                           "like https://as.example.com");
    return PC_OK;
}

static pc_result parse_list(pc_cfg_doc *d, const yaml_node_t *n, const char *path, bool uri,
                            char ***out, size_t *count)
{
    if (n->type != YAML_SEQUENCE_NODE) return pc_cfg_fail(d, n, path, "expected a list");
    size_t c = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (c > PC_CONFIG_MAX_LIST) return pc_cfg_fail(d, n, path, "more than %u items", PC_CONFIG_MAX_LIST);
    *out = calloc(c ? c : 1, sizeof **out);
    PC_ENSURE(*out != NULL, PC_ERR_INTERNAL, "out of memory reading the config");
    for (size_t i = 0; i < c; i++) {
        char item[PC_CONFIG_MAX_PATH];
        pc_cfg_path_index(item, sizeof item, path, i);
        yaml_node_t *v = pc_cfg_node(d, n->data.sequence.items.start[i]);
        PC_GUARD(pc_cfg_string(d, v, item, &(*out)[i]));
        *count = i + 1;
        const char *s = (*out)[i];
        if (uri ? strstr(s, "://") == NULL || strpbrk(s, " #") != NULL
                : strpbrk(s, " \"\\") != NULL)
            return pc_cfg_fail(d, v, item,
                               uri ? "expected an absolute URI without a fragment"
                                   : "expected a scope token (no spaces, quotes or backslashes)");
    }
    return PC_OK;
}

/* YAML -> JSON for client metadata. Plain scalars true/false become
 * booleans and plain decimal integers numbers; everything else is a
 * string (quote a value to keep it a string). */
static pc_result to_json(pc_cfg_doc *d, const yaml_node_t *n, const char *path, int depth,
                         json_t **out)
{
    if (depth > 8) return pc_cfg_fail(d, n, path, "nested too deeply");
    if (n->type == YAML_SCALAR_NODE) {
        const char *s = (const char *)n->data.scalar.value;
        bool plain = n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        if (pc_cfg_is_null(n)) return pc_cfg_fail(d, n, path, "expected a value, got nothing");
        if (plain && strcmp(s, "true") == 0) *out = json_true();
        else if (plain && strcmp(s, "false") == 0) *out = json_false();
        else {
            uint32_t v;
            if (plain && s[0] >= '0' && s[0] <= '9' && pc_ok(pc_cfg_parse_uint(s, &v)))
                *out = json_integer(v);
            else
                *out = json_stringn(s, n->data.scalar.length);
        }
        if (*out == NULL) return pc_cfg_fail(d, n, path, "expected UTF-8 text");
        return PC_OK;
    }
    if (n->type == YAML_SEQUENCE_NODE) {
        json_t *a = json_array();
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
            char item[PC_CONFIG_MAX_PATH];
            pc_cfg_path_index(item, sizeof item, path, (size_t)(it - n->data.sequence.items.start));
            json_t *v = NULL;
            pc_result r = to_json(d, pc_cfg_node(d, *it), item, depth + 1, &v);
            if (!pc_ok(r)) {
                json_decref(a);
                return r;
            }
            json_array_append_new(a, v);
        }
        *out = a;
        return PC_OK;
    }
    json_t *o = json_object();
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = pc_cfg_node(d, p->key);
        if (k->type != YAML_SCALAR_NODE) {
            json_decref(o);
            return pc_cfg_fail(d, k, path, "expected a key");
        }
        const char *key = (const char *)k->data.scalar.value;
        char sub[PC_CONFIG_MAX_PATH];
        pc_cfg_path(sub, sizeof sub, path, key);
        if (json_object_get(o, key)) {
            json_decref(o);
            return pc_cfg_fail(d, k, sub, "duplicate key");
        }
        json_t *v = NULL;
        pc_result r = to_json(d, pc_cfg_node(d, p->value), sub, depth + 1, &v);
        if (!pc_ok(r)) {
            json_decref(o);
            return r;
        }
        json_object_set_new(o, key, v);
    }
    *out = o;
    return PC_OK;
}

static pc_result inline_jwks_file(pc_cfg_doc *d, const yaml_node_t *client, const char *path,
                                  json_t *md)
{
    json_t *f = json_object_get(md, "jwks_file");
    if (f == NULL) return PC_OK;
    /* Point errors at the jwks_file value. */
    const yaml_node_t *at = client;
    for (yaml_node_pair_t *p = client->data.mapping.pairs.start; p < client->data.mapping.pairs.top; p++) {
        yaml_node_t *k = pc_cfg_node(d, p->key);
        if (strcmp((const char *)k->data.scalar.value, "jwks_file") == 0) at = pc_cfg_node(d, p->value);
    }
    char sub[PC_CONFIG_MAX_PATH];
    pc_cfg_path(sub, sizeof sub, path, "jwks_file");
    if (!json_is_string(f)) return pc_cfg_fail(d, at, sub, "expected a file name");
    if (json_object_get(md, "jwks") || json_object_get(md, "jwks_uri"))
        return pc_cfg_fail(d, at, sub, "give one of jwks, jwks_uri or jwks_file");
    json_error_t err;
    json_t *jwks = json_load_file(json_string_value(f), JSON_REJECT_DUPLICATES, &err);
    if (jwks == NULL)
        return pc_cfg_fail(d, at, sub, "cannot read JWKS %s: %s (line %d)", json_string_value(f),
                           err.text, err.line);
    if (!json_is_object(jwks) || json_dumpb(jwks, NULL, 0, 0) > PC_CONFIG_MAX_JWKS_FILE) {
        json_decref(jwks);
        return pc_cfg_fail(d, at, sub, "expected a JWKS object ({\"keys\":[...]}) under 64KiB");
    }
    json_object_set_new(md, "jwks", jwks);
    json_object_del(md, "jwks_file");
    return PC_OK;
}

static pc_result parse_clients(pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                               pc_as_config *ac)
{
    if (n->type != YAML_SEQUENCE_NODE) return pc_cfg_fail(d, n, path, "expected a list of clients");
    size_t c = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (c > PC_CONFIG_MAX_CLIENTS)
        return pc_cfg_fail(d, n, path, "more than %u clients", PC_CONFIG_MAX_CLIENTS);
    ac->clients = calloc(c ? c : 1, sizeof *ac->clients);
    PC_ENSURE(ac->clients != NULL, PC_ERR_INTERNAL, "out of memory reading the config");
    for (size_t i = 0; i < c; i++) {
        char item[PC_CONFIG_MAX_PATH];
        pc_cfg_path_index(item, sizeof item, path, i);
        yaml_node_t *v = pc_cfg_node(d, n->data.sequence.items.start[i]);
        if (v->type != YAML_MAPPING_NODE)
            return pc_cfg_fail(d, v, item, "expected a client (a mapping of RFC 7591 metadata)");
        json_t *md = NULL;
        PC_GUARD(to_json(d, v, item, 0, &md));
        pc_result r = inline_jwks_file(d, v, item, md);
        const json_t *id = json_object_get(md, "client_id");
        if (pc_ok(r) && !json_is_string(id))
            r = pc_cfg_fail(d, v, item, "missing required key \"client_id\"");
        for (size_t k = 0; pc_ok(r) && k < i; k++)
            if (strcmp(ac->clients[k].client_id, json_string_value(id)) == 0)
                r = pc_cfg_fail(d, v, item, "client_id %s is also declared at line %d",
                                json_string_value(id), ac->clients[k].line);
        if (pc_ok(r)) {
            pc_as_client_seed *s = &ac->clients[i];
            s->line = (int)v->start_mark.line + 1;
            s->client_id = strdup(json_string_value(id));
            s->metadata_json = json_dumps(md, JSON_COMPACT | JSON_SORT_KEYS);
            ac->n_clients = i + 1;
            if (!s->client_id || !s->metadata_json)
                r = pc_fail(PC_ERR_INTERNAL, "out of memory reading the config");
        }
        json_decref(md);
        PC_GUARD(r);
    }
    return PC_OK;
}

static pc_result parse_dpop(pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                            pc_as_config *ac)
{
    yaml_node_t *v[N_DPOP];
    char sub[PC_CONFIG_MAX_PATH];
    PC_GUARD(pc_cfg_map(d, n, path, dpop_keys, N_DPOP, v));
    if (v[DPOP_PROOF_LIFETIME]) {
        pc_cfg_path(sub, sizeof sub, path, dpop_keys[DPOP_PROOF_LIFETIME]);
        PC_GUARD(pc_cfg_duration(d, v[DPOP_PROOF_LIFETIME], sub, 1000, 600000,
                                 &ac->dpop_proof_lifetime_ms));
    }
    if (v[DPOP_NONCE]) {
        pc_cfg_path(sub, sizeof sub, path, dpop_keys[DPOP_NONCE]);
        PC_GUARD(pc_cfg_bool(d, v[DPOP_NONCE], sub, &ac->dpop_nonce));
    }
    if (v[DPOP_NONCE_SECRET]) {
        pc_cfg_path(sub, sizeof sub, path, dpop_keys[DPOP_NONCE_SECRET]);
        PC_GUARD(pc_cfg_string(d, v[DPOP_NONCE_SECRET], sub, &ac->dpop_nonce_secret_file));
    }
    return PC_OK;
}

static pc_result parse_durations(pc_cfg_doc *d, yaml_node_t **v, const char *path,
                                 pc_as_config *ac)
{
    char sub[PC_CONFIG_MAX_PATH];
    static const struct {
        int key;
        uint32_t min, max;
        size_t off;
    } durs[] = {
        {AS_LIFETIME, 1000, 86400000, offsetof(pc_as_config, access_token_lifetime_ms)},
        {AS_MAX_LIFETIME, 1000, 86400000, offsetof(pc_as_config, max_access_token_lifetime_ms)},
        {AS_ASSERTION_MAX, 1000, 600000, offsetof(pc_as_config, assertion_max_lifetime_ms)},
        /* FAPI 2.0 §5.3.2.1-13: never accept 60 s or more in the future. */
        {AS_SKEW, 0, 59000, offsetof(pc_as_config, clock_skew_ms)},
    };
    for (size_t i = 0; i < N_OF(durs); i++) {
        if (!v[durs[i].key]) continue;
        pc_cfg_path(sub, sizeof sub, path, as_keys[durs[i].key]);
        PC_GUARD(pc_cfg_duration(d, v[durs[i].key], sub, durs[i].min, durs[i].max,
                                 (uint32_t *)(void *)((char *)ac + durs[i].off)));
    }
    if (ac->access_token_lifetime_ms > ac->max_access_token_lifetime_ms)
        return pc_cfg_fail(d, v[AS_LIFETIME] ? v[AS_LIFETIME] : v[AS_MAX_LIFETIME], path,
                           "access_token_lifetime is above max_access_token_lifetime");
    return PC_OK;
}

pc_result pc_cfg_as(pc_cfg_doc *d, const yaml_node_t *n, const char *path, const pc_config *cfg,
                    pc_as_config *ac)
{
    yaml_node_t *v[N_AS];
    char sub[PC_CONFIG_MAX_PATH];
    int idx = 0;
    PC_GUARD(pc_cfg_map(d, n, path, as_keys, N_AS, v));
    PC_GUARD(pc_cfg_require(d, n, path, as_keys[AS_ISSUER], v[AS_ISSUER]));
    ac->enabled = true;
    pc_cfg_path(sub, sizeof sub, path, as_keys[AS_ISSUER]);
    PC_GUARD(parse_issuer(d, v[AS_ISSUER], sub, &ac->issuer));
    if (v[AS_PROFILE]) {
        pc_cfg_path(sub, sizeof sub, path, as_keys[AS_PROFILE]);
        PC_GUARD(pc_cfg_enum(d, v[AS_PROFILE], sub, profiles, N_OF(profiles), &idx));
        ac->profile = (pc_as_profile)idx;
    }
    idx = 0;
    if (v[AS_SIGNING_ALG]) {
        pc_cfg_path(sub, sizeof sub, path, as_keys[AS_SIGNING_ALG]);
        PC_GUARD(pc_cfg_enum(d, v[AS_SIGNING_ALG], sub, algs, N_OF(algs), &idx));
    }
    PC_GUARD(pc_cfg_strdup(algs[idx], &ac->signing_alg));
    if (v[AS_KEK_FILE]) {
        pc_cfg_path(sub, sizeof sub, path, as_keys[AS_KEK_FILE]);
        PC_GUARD(pc_cfg_string(d, v[AS_KEK_FILE], sub, &ac->kek_file));
    }
    PC_GUARD(parse_durations(d, v, path, ac));
    if (v[AS_FAILURES]) {
        pc_cfg_path(sub, sizeof sub, path, as_keys[AS_FAILURES]);
        PC_GUARD(pc_cfg_uint(d, v[AS_FAILURES], sub, 1, 1000000, &ac->auth_failures_per_minute));
    }
    if (v[AS_FAILURES_IP]) {
        pc_cfg_path(sub, sizeof sub, path, as_keys[AS_FAILURES_IP]);
        PC_GUARD(pc_cfg_uint(d, v[AS_FAILURES_IP], sub, 1, 1000000,
                             &ac->auth_failures_per_minute_per_ip));
    }
    if (v[AS_RATE_LIMITS]) {
        pc_cfg_path(sub, sizeof sub, path, as_keys[AS_RATE_LIMITS]);
        PC_GUARD(pc_cfg_policy_refs(d, v[AS_RATE_LIMITS], sub, cfg, &ac->rate_limits,
                                    &ac->n_rate_limits));
    }
    if (v[AS_SCOPES]) {
        pc_cfg_path(sub, sizeof sub, path, as_keys[AS_SCOPES]);
        PC_GUARD(parse_list(d, v[AS_SCOPES], sub, false, &ac->scopes, &ac->n_scopes));
    }
    if (v[AS_RESOURCES]) {
        pc_cfg_path(sub, sizeof sub, path, as_keys[AS_RESOURCES]);
        PC_GUARD(parse_list(d, v[AS_RESOURCES], sub, true, &ac->resources, &ac->n_resources));
    }
    if (v[AS_DPOP]) {
        pc_cfg_path(sub, sizeof sub, path, as_keys[AS_DPOP]);
        PC_GUARD(parse_dpop(d, v[AS_DPOP], sub, ac));
    }
    if (v[AS_CLIENTS]) {
        pc_cfg_path(sub, sizeof sub, path, as_keys[AS_CLIENTS]);
        PC_GUARD(parse_clients(d, v[AS_CLIENTS], sub, ac));
    }
    return PC_OK;
}
