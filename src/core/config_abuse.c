/* Abuse resistance in the config: `rate_limits:` (named GCRA policies),
 * `detect:` (the behavioural detectors and their actions), `admin:` (who
 * may use the admin API), and a route's identifier:, max_distinct: and
 * rate_limits: keys. docs/abuse-resistance.md is the operator reference;
 * keep the two in step. */
#include "core/config.h"
#include "core/config_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))
#define GOT_CAP (4u * PC_CONFIG_MAX_QUOTE + 8u)
/* Policies in one config, and names of them one route or endpoint lists. */
#define PC_CONFIG_MAX_POLICIES 64u
#define PC_CONFIG_MAX_POLICY_REFS 8u
#define PC_CONFIG_MAX_POLICY_NAME 64u
/* A policy's window: 1 s to a day, whole seconds. */
#define PC_CONFIG_MAX_WINDOW_MS (24u * 3600u * 1000u)
/* Detector keys held (each at most 4 KiB): 1M keys would be 4 GiB. */
#define PC_CONFIG_MAX_DETECT_KEYS (1u << 20)
/* Admin client thumbprints. */
#define PC_CONFIG_MAX_ADMINS 64u

void pc_cfg_abuse_defaults(pc_config *cfg)
{
    pc_detect_config *d = &cfg->detect;
    memset(d, 0, sizeof *d);
    d->learning_ms = 10u * 60u * 1000u;
    d->max_keys = 65536;
    d->quarantine_ms = 3600u * 1000u;
    d->throttle_ms = 15u * 60u * 1000u;
    d->throttle_factor = 0.25;
    d->webhook_timeout_ms = 5000;
    d->enumeration.enabled = true;
    d->enumeration.actions = PC_ACT_ALERT | PC_ACT_QUARANTINE;
    d->enumeration.window_ms = 5u * 60u * 1000u;
    d->enumeration.max_distinct = 300;
    d->enumeration.baseline_factor = 4.0;
    d->enumeration.min_distinct = 50;
    d->enumeration.sequential_run = 20;
    d->enumeration.sequential_gap = 16;
    d->enumeration.ordered_run = 60;
    d->enumeration.scan_fraction = 0.5;
    d->enumeration.scan_ratio = 0.9;
    d->probing.enabled = true;
    d->probing.actions = PC_ACT_ALERT | PC_ACT_THROTTLE;
    d->probing.window_ms = 5u * 60u * 1000u;
    d->probing.min_requests = 40;
    d->probing.max_ratio = 0.5;
    d->volume.enabled = true;
    d->volume.actions = PC_ACT_ALERT | PC_ACT_THROTTLE;
    d->volume.interval_ms = 10000;
    d->volume.alpha = 0.1;
    d->volume.z_threshold = 6.0;
    d->volume.min_count = 100;
    d->volume.min_factor = 8.0;
    d->credentials.enabled = true;
    /* Not quarantine: these events name the *victim* client (a stolen
     * token's client_id, the client_id a brute force guesses at), so
     * quarantining it would hand attackers a denial-of-service lever.
     * Revoking its live tokens kills a stolen one; the failure limits
     * already block the brute force. */
    d->credentials.actions = PC_ACT_ALERT | PC_ACT_REVOKE;
    d->credentials.window_ms = 5u * 60u * 1000u;
    d->credentials.max_auth_failures = 10;
    d->credentials.max_dpop_replays = 3;
    d->credentials.max_binding_mismatches = 3;
    d->credentials.max_new_certs = 3;
    d->credentials.max_new_ips = 20;
}

void pc_cfg_abuse_free(pc_config *cfg)
{
    for (size_t i = 0; i < cfg->n_rate_limits; i++) free(cfg->rate_limits[i].name);
    free(cfg->rate_limits);
    free(cfg->detect.webhook_url);
    free(cfg->detect.webhook_ca);
    free(cfg->detect.webhook_host);
    free(cfg->detect.webhook_path);
    for (size_t i = 0; i < cfg->admin.n_clients; i++) free(cfg->admin.clients[i]);
    free(cfg->admin.clients);
}

/* A decimal fraction or number in [min, max], e.g. 0.25 or 4. */
static pc_result parse_real(pc_cfg_doc *d, const yaml_node_t *n, const char *path, double min,
                            double max, double *out)
{
    const char *s = NULL;
    char what[64];
    snprintf(what, sizeof what, "a number from %g to %g", min, max);
    PC_GUARD(pc_cfg_text(d, n, path, what, &s));
    char *end = NULL;
    double v = strtod(s, &end);
    bool plain = s[0] != '\0' && strspn(s, "0123456789.") == strlen(s);
    if (!plain || end == NULL || *end != '\0' || !isfinite(v) || v < min || v > max) {
        char got[GOT_CAP];
        pc_cfg_describe(n, got, sizeof got);
        return pc_cfg_fail(d, n, path, "expected %s, got %s", what, got);
    }
    *out = v;
    return PC_OK;
}

/* ---- rate_limits: ------------------------------------------------------ */

enum { RL_QUOTA, RL_WINDOW, RL_BURST, RL_KEY, N_RL };
static const char *const rl_keys[N_RL] = {
    [RL_QUOTA] = "quota", [RL_WINDOW] = "window", [RL_BURST] = "burst", [RL_KEY] = "key"};
static const char *const key_names[] = {"client_id", "sub", "ip", "route"};
static const unsigned key_bits[] = {PC_RL_KEY_CLIENT, PC_RL_KEY_SUB, PC_RL_KEY_IP,
                                    PC_RL_KEY_ROUTE};

static bool policy_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > PC_CONFIG_MAX_POLICY_NAME) return false;
    /* It is written into the RateLimit headers as a quoted sf-string. */
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

static pc_result parse_key(pc_cfg_doc *d, const yaml_node_t *n, const char *path, unsigned *out)
{
    char got[GOT_CAP];
    if (n->type != YAML_SEQUENCE_NODE || n->data.sequence.items.top == n->data.sequence.items.start) {
        pc_cfg_describe(n, got, sizeof got);
        return pc_cfg_fail(d, n, path,
                           "expected a non-empty list of client_id, sub, ip, route, got %s", got);
    }
    unsigned bits = 0;
    size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    for (size_t i = 0; i < count; i++) {
        char sub[PC_CONFIG_MAX_PATH];
        pc_cfg_path_index(sub, sizeof sub, path, i);
        yaml_node_t *item = pc_cfg_node(d, n->data.sequence.items.start[i]);
        PC_ENSURE(item != NULL, PC_ERR_INTERNAL, "%s: YAML list item without a node", d->name);
        int k = 0;
        PC_GUARD(pc_cfg_enum(d, item, sub, key_names, N_OF(key_names), &k));
        if (bits & key_bits[k])
            return pc_cfg_fail(d, item, sub, "\"%s\" is listed twice", key_names[k]);
        bits |= key_bits[k];
    }
    *out = bits;
    return PC_OK;
}

static pc_result parse_policy(pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                              pc_rate_limit_config *p)
{
    yaml_node_t *v[N_RL];
    char sub[PC_CONFIG_MAX_PATH];
    p->line = (int)n->start_mark.line + 1;
    PC_GUARD(pc_cfg_map(d, n, path, rl_keys, N_RL, v));
    for (int k = 0; k < N_RL; k++)
        if (k != RL_BURST) PC_GUARD(pc_cfg_require(d, n, path, rl_keys[k], v[k]));
    pc_cfg_path(sub, sizeof sub, path, rl_keys[RL_QUOTA]);
    PC_GUARD(pc_cfg_uint(d, v[RL_QUOTA], sub, 1, 1000000000u, &p->quota));
    pc_cfg_path(sub, sizeof sub, path, rl_keys[RL_WINDOW]);
    PC_GUARD(pc_cfg_duration(d, v[RL_WINDOW], sub, 1000, PC_CONFIG_MAX_WINDOW_MS, &p->window_ms));
    /* The RateLimit headers speak whole seconds (w=, t=). */
    if (p->window_ms % 1000u != 0)
        return pc_cfg_fail(d, v[RL_WINDOW], sub, "expected whole seconds, like 1s or 60s");
    p->burst = p->quota;
    if (v[RL_BURST] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, rl_keys[RL_BURST]);
        PC_GUARD(pc_cfg_uint(d, v[RL_BURST], sub, 1, 1000000000u, &p->burst));
    }
    pc_cfg_path(sub, sizeof sub, path, rl_keys[RL_KEY]);
    return parse_key(d, v[RL_KEY], sub, &p->key);
}

pc_result pc_cfg_rate_limits(pc_cfg_doc *d, const yaml_node_t *n, pc_config *cfg)
{
    const char *path = "rate_limits";
    char got[GOT_CAP];
    if (n->type != YAML_MAPPING_NODE) {
        pc_cfg_describe(n, got, sizeof got);
        return pc_cfg_fail(d, n, path, "expected a mapping of policy names to policies, got %s",
                           got);
    }
    size_t count = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    if (count > PC_CONFIG_MAX_POLICIES)
        return pc_cfg_fail(d, n, path, "expected at most %u policies, got %zu",
                           (unsigned)PC_CONFIG_MAX_POLICIES, count);
    if (count == 0) return PC_OK;
    cfg->rate_limits = calloc(count, sizeof *cfg->rate_limits);
    PC_ENSURE(cfg->rate_limits != NULL, PC_ERR_INTERNAL, "out of memory reading the config");
    for (size_t i = 0; i < count; i++) {
        yaml_node_pair_t *pair = &n->data.mapping.pairs.start[i];
        yaml_node_t *k = pc_cfg_node(d, pair->key), *val = pc_cfg_node(d, pair->value);
        PC_ENSURE(k != NULL && val != NULL, PC_ERR_INTERNAL, "%s: YAML pair without nodes",
                  d->name);
        pc_rate_limit_config *p = &cfg->rate_limits[cfg->n_rate_limits++];
        PC_GUARD(pc_cfg_string(d, k, path, &p->name));
        if (!policy_name_ok(p->name)) {
            pc_cfg_describe(k, got, sizeof got);
            return pc_cfg_fail(d, k, path,
                               "expected a policy name of at most %u characters from "
                               "[A-Za-z0-9_.-], got %s",
                               (unsigned)PC_CONFIG_MAX_POLICY_NAME, got);
        }
        for (size_t j = 0; j + 1 < cfg->n_rate_limits; j++)
            if (strcmp(cfg->rate_limits[j].name, p->name) == 0)
                return pc_cfg_fail(d, k, path, "duplicate policy \"%s\"", p->name);
        char sub[PC_CONFIG_MAX_PATH];
        pc_cfg_path(sub, sizeof sub, path, p->name);
        PC_GUARD(parse_policy(d, val, sub, p));
    }
    return PC_OK;
}

pc_result pc_cfg_policy_refs(pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                             const pc_config *cfg, size_t **out, size_t *count)
{
    char got[GOT_CAP];
    size_t c = n->type == YAML_SEQUENCE_NODE
                   ? (size_t)(n->data.sequence.items.top - n->data.sequence.items.start)
                   : 0;
    if (n->type != YAML_SEQUENCE_NODE || c == 0 || c > PC_CONFIG_MAX_POLICY_REFS) {
        pc_cfg_describe(n, got, sizeof got);
        return pc_cfg_fail(d, n, path,
                           "expected a list of 1 to %u policy names from rate_limits, got %s",
                           (unsigned)PC_CONFIG_MAX_POLICY_REFS, got);
    }
    size_t *idx = calloc(c, sizeof *idx);
    PC_ENSURE(idx != NULL, PC_ERR_INTERNAL, "out of memory reading the config");
    free(*out);
    *out = idx;
    *count = 0;
    for (size_t i = 0; i < c; i++) {
        char sub[PC_CONFIG_MAX_PATH];
        pc_cfg_path_index(sub, sizeof sub, path, i);
        yaml_node_t *item = pc_cfg_node(d, n->data.sequence.items.start[i]);
        PC_ENSURE(item != NULL, PC_ERR_INTERNAL, "%s: YAML list item without a node", d->name);
        const char *name = NULL;
        PC_GUARD(pc_cfg_text(d, item, sub, "a policy name", &name));
        size_t j = 0;
        while (j < cfg->n_rate_limits && strcmp(cfg->rate_limits[j].name, name) != 0) j++;
        if (j == cfg->n_rate_limits)
            return pc_cfg_fail(d, item, sub, "no policy named \"%s\" in rate_limits", name);
        for (size_t k = 0; k < *count; k++)
            if (idx[k] == j) return pc_cfg_fail(d, item, sub, "policy \"%s\" is listed twice", name);
        idx[(*count)++] = j;
    }
    return PC_OK;
}

/* ---- a route's keys ------------------------------------------------------ */

pc_result pc_cfg_route_abuse(pc_cfg_doc *d, const yaml_node_t *route,
                             const yaml_node_t *identifier, const yaml_node_t *max_distinct,
                             const yaml_node_t *rate_limits, const char *path,
                             const pc_config *cfg, pc_route_config *r)
{
    char sub[PC_CONFIG_MAX_PATH];
    if (identifier != NULL) {
        pc_cfg_path(sub, sizeof sub, path, "identifier");
        PC_GUARD(pc_cfg_bool(d, identifier, sub, &r->identifier));
        if (r->identifier && strchr(r->path, '{') == NULL)
            return pc_cfg_fail(d, identifier, sub,
                               "the route's path %s has no {parameter} to count", r->path);
    }
    if (max_distinct != NULL) {
        pc_cfg_path(sub, sizeof sub, path, "max_distinct");
        if (!r->identifier)
            return pc_cfg_fail(d, max_distinct, sub, "applies only with identifier: true");
        PC_GUARD(pc_cfg_uint(d, max_distinct, sub, 1, 100000000u, &r->max_distinct));
    }
    if (rate_limits != NULL) {
        pc_cfg_path(sub, sizeof sub, path, "rate_limits");
        PC_GUARD(pc_cfg_policy_refs(d, rate_limits, sub, cfg, &r->rate_limits,
                                    &r->n_rate_limits));
    }
    (void)route;
    return PC_OK;
}

/* ---- detect: ------------------------------------------------------------- */

static const char *const action_names[] = {"log", "alert", "throttle", "quarantine", "revoke"};
static const unsigned action_bits[] = {PC_ACT_LOG, PC_ACT_ALERT, PC_ACT_THROTTLE,
                                       PC_ACT_QUARANTINE, PC_ACT_REVOKE};

static pc_result parse_actions(pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                               const pc_config *cfg, unsigned *out)
{
    char got[GOT_CAP];
    if (n->type != YAML_SEQUENCE_NODE || n->data.sequence.items.top == n->data.sequence.items.start) {
        pc_cfg_describe(n, got, sizeof got);
        return pc_cfg_fail(d, n, path,
                           "expected a non-empty list of log, alert, throttle, quarantine, "
                           "revoke, got %s",
                           got);
    }
    unsigned bits = 0;
    size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    for (size_t i = 0; i < count; i++) {
        char sub[PC_CONFIG_MAX_PATH];
        pc_cfg_path_index(sub, sizeof sub, path, i);
        yaml_node_t *item = pc_cfg_node(d, n->data.sequence.items.start[i]);
        PC_ENSURE(item != NULL, PC_ERR_INTERNAL, "%s: YAML list item without a node", d->name);
        int k = 0;
        PC_GUARD(pc_cfg_enum(d, item, sub, action_names, N_OF(action_names), &k));
        if (action_bits[k] == PC_ACT_REVOKE && !cfg->as.enabled)
            return pc_cfg_fail(d, item, sub,
                               "revoke needs the authorization server in this process (as:)");
        bits |= action_bits[k];
    }
    *out = bits;
    return PC_OK;
}

/* One detector's mapping: enabled, actions, then its own keys, each either
 * a duration (ms), a count or a real, written to the given field. */
typedef enum { F_DURATION, F_COUNT, F_REAL } field_kind;
typedef struct field {
    const char *key;
    field_kind kind;
    void *dst;
    double min, max;
} field;

/* One field's value at node, checked against its range. */
static pc_result parse_field(pc_cfg_doc *d, const yaml_node_t *node, const char *path,
                             const field *f)
{
    char sub[PC_CONFIG_MAX_PATH];
    pc_cfg_path(sub, sizeof sub, path, f->key);
    if (f->kind == F_DURATION)
        return pc_cfg_duration(d, node, sub, (uint32_t)f->min, (uint32_t)f->max, f->dst);
    if (f->kind == F_COUNT)
        return pc_cfg_uint(d, node, sub, (uint32_t)f->min, (uint32_t)f->max, f->dst);
    return parse_real(d, node, sub, f->min, f->max, f->dst);
}

#define MAX_FIELDS 10
static pc_result parse_detector(pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                                const pc_config *cfg, bool *enabled, unsigned *actions,
                                const field *fields, size_t n_fields)
{
    const char *keys[MAX_FIELDS + 2];
    yaml_node_t *v[MAX_FIELDS + 2];
    char sub[PC_CONFIG_MAX_PATH];
    keys[0] = "enabled";
    keys[1] = "actions";
    for (size_t i = 0; i < n_fields; i++) keys[i + 2] = fields[i].key;
    PC_GUARD(pc_cfg_map(d, n, path, keys, n_fields + 2, v));
    if (v[0] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, keys[0]);
        PC_GUARD(pc_cfg_bool(d, v[0], sub, enabled));
    }
    if (v[1] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, keys[1]);
        PC_GUARD(parse_actions(d, v[1], sub, cfg, actions));
    }
    for (size_t i = 0; i < n_fields; i++)
        if (v[i + 2] != NULL) PC_GUARD(parse_field(d, v[i + 2], path, &fields[i]));
    return PC_OK;
}

#define HOUR_MS (3600.0 * 1000.0)
#define DAY_MS (24.0 * HOUR_MS)

static pc_result parse_enumeration(pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                                   pc_config *cfg)
{
    pc_detect_config *c = &cfg->detect;
    const field f[] = {
        {"window", F_DURATION, &c->enumeration.window_ms, 1000, DAY_MS},
        {"max_distinct", F_COUNT, &c->enumeration.max_distinct, 1, 100000000},
        {"baseline_factor", F_REAL, &c->enumeration.baseline_factor, 1.0, 1000.0},
        {"min_distinct", F_COUNT, &c->enumeration.min_distinct, 1, 100000000},
        {"sequential_run", F_COUNT, &c->enumeration.sequential_run, 2, 100000},
        {"sequential_gap", F_COUNT, &c->enumeration.sequential_gap, 1, 1000000},
        {"ordered_run", F_COUNT, &c->enumeration.ordered_run, 2, 100000},
        {"scan_fraction", F_REAL, &c->enumeration.scan_fraction, 0.01, 1.0},
        {"scan_ratio", F_REAL, &c->enumeration.scan_ratio, 0.01, 1.0},
    };
    return parse_detector(d, n, path, cfg, &c->enumeration.enabled, &c->enumeration.actions, f,
                          N_OF(f));
}

static pc_result parse_probing(pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                               pc_config *cfg)
{
    pc_detect_config *c = &cfg->detect;
    const field f[] = {
        {"window", F_DURATION, &c->probing.window_ms, 1000, DAY_MS},
        {"min_requests", F_COUNT, &c->probing.min_requests, 1, 100000000},
        {"max_ratio", F_REAL, &c->probing.max_ratio, 0.01, 1.0},
    };
    return parse_detector(d, n, path, cfg, &c->probing.enabled, &c->probing.actions, f, N_OF(f));
}

static pc_result parse_volume(pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                              pc_config *cfg)
{
    pc_detect_config *c = &cfg->detect;
    const field f[] = {
        {"interval", F_DURATION, &c->volume.interval_ms, 100, HOUR_MS},
        {"alpha", F_REAL, &c->volume.alpha, 0.001, 1.0},
        {"z_threshold", F_REAL, &c->volume.z_threshold, 1.0, 1000.0},
        {"min_count", F_COUNT, &c->volume.min_count, 1, 100000000},
        {"min_factor", F_REAL, &c->volume.min_factor, 1.0, 1000.0},
    };
    return parse_detector(d, n, path, cfg, &c->volume.enabled, &c->volume.actions, f, N_OF(f));
}

static pc_result parse_credentials(pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                                   pc_config *cfg)
{
    pc_detect_config *c = &cfg->detect;
    const field f[] = {
        {"window", F_DURATION, &c->credentials.window_ms, 1000, DAY_MS},
        {"max_auth_failures", F_COUNT, &c->credentials.max_auth_failures, 0, 1000000},
        {"max_dpop_replays", F_COUNT, &c->credentials.max_dpop_replays, 0, 1000000},
        {"max_binding_mismatches", F_COUNT, &c->credentials.max_binding_mismatches, 0, 1000000},
        {"max_new_certs", F_COUNT, &c->credentials.max_new_certs, 0, 1000000},
        {"max_new_ips", F_COUNT, &c->credentials.max_new_ips, 0, 1000000},
    };
    return parse_detector(d, n, path, cfg, &c->credentials.enabled, &c->credentials.actions, f,
                          N_OF(f));
}

enum { WH_URL, WH_CA, WH_TIMEOUT, N_WH };
static const char *const webhook_keys[N_WH] = {
    [WH_URL] = "url", [WH_CA] = "ca", [WH_TIMEOUT] = "timeout"};

static pc_result parse_webhook(pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                               pc_config *cfg)
{
    yaml_node_t *v[N_WH];
    char sub[PC_CONFIG_MAX_PATH], why[128];
    pc_detect_config *c = &cfg->detect;
    PC_GUARD(pc_cfg_map(d, n, path, webhook_keys, N_WH, v));
    PC_GUARD(pc_cfg_require(d, n, path, webhook_keys[WH_URL], v[WH_URL]));
    pc_cfg_path(sub, sizeof sub, path, webhook_keys[WH_URL]);
    PC_GUARD(pc_cfg_string(d, v[WH_URL], sub, &c->webhook_url));
    pc_upstream_config u;
    memset(&u, 0, sizeof u);
    bool ok = strlen(c->webhook_url) <= PC_CONFIG_MAX_URL &&
              pc_cfg_gw_split_url(c->webhook_url, &u, why, sizeof why);
    bool https = u.https;
    if (ok) {
        c->webhook_https = u.https;
        c->webhook_port = u.port;
        c->webhook_host = u.host;
        c->webhook_path = u.base_path;
        u.host = u.base_path = NULL;
    }
    pc_cfg_upstream_free(&u);
    if (!ok) {
        char got[GOT_CAP];
        pc_cfg_describe(v[WH_URL], got, sizeof got);
        return pc_cfg_fail(d, v[WH_URL], sub, "expected an http(s) URL (%s), got %s", why, got);
    }
    if (v[WH_CA] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, webhook_keys[WH_CA]);
        PC_GUARD(pc_cfg_string(d, v[WH_CA], sub, &c->webhook_ca));
    }
    if (https && c->webhook_ca == NULL)
        return pc_cfg_fail(d, n, path, "an https webhook needs ca: the CA file to verify it");
    if (v[WH_TIMEOUT] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, webhook_keys[WH_TIMEOUT]);
        PC_GUARD(pc_cfg_duration(d, v[WH_TIMEOUT], sub, 1, 60000, &c->webhook_timeout_ms));
    }
    return PC_OK;
}

enum {
    DT_ENABLED, DT_LEARNING, DT_MAX_KEYS, DT_QUARANTINE, DT_THROTTLE_PERIOD, DT_THROTTLE_FACTOR,
    DT_WEBHOOK, DT_ENUMERATION, DT_PROBING, DT_VOLUME, DT_CREDENTIALS, N_DT
};
static const char *const detect_keys[N_DT] = {
    [DT_ENABLED] = "enabled",
    [DT_LEARNING] = "learning_period",
    [DT_MAX_KEYS] = "max_keys",
    [DT_QUARANTINE] = "quarantine_period",
    [DT_THROTTLE_PERIOD] = "throttle_period",
    [DT_THROTTLE_FACTOR] = "throttle_factor",
    [DT_WEBHOOK] = "webhook",
    [DT_ENUMERATION] = "enumeration",
    [DT_PROBING] = "probing",
    [DT_VOLUME] = "volume",
    [DT_CREDENTIALS] = "credentials",
};

pc_result pc_cfg_detect(pc_cfg_doc *d, const yaml_node_t *n, pc_config *cfg)
{
    const char *path = "detect";
    yaml_node_t *v[N_DT];
    char sub[PC_CONFIG_MAX_PATH];
    pc_detect_config *c = &cfg->detect;
    c->enabled = true;
    if (pc_cfg_is_null(n)) return PC_OK; /* `detect:` alone: every default */
    PC_GUARD(pc_cfg_map(d, n, path, detect_keys, N_DT, v));
    if (v[DT_ENABLED] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, detect_keys[DT_ENABLED]);
        PC_GUARD(pc_cfg_bool(d, v[DT_ENABLED], sub, &c->enabled));
    }
    const field f[] = {
        {"learning_period", F_DURATION, &c->learning_ms, 0, 30 * DAY_MS},
        {"max_keys", F_COUNT, &c->max_keys, 16, PC_CONFIG_MAX_DETECT_KEYS},
        {"quarantine_period", F_DURATION, &c->quarantine_ms, 1000, 30 * DAY_MS},
        {"throttle_period", F_DURATION, &c->throttle_ms, 1000, 30 * DAY_MS},
        {"throttle_factor", F_REAL, &c->throttle_factor, 0.001, 1.0},
    };
    for (size_t i = 0; i < N_OF(f); i++)
        if (v[DT_LEARNING + i] != NULL) PC_GUARD(parse_field(d, v[DT_LEARNING + i], path, &f[i]));
    if (v[DT_WEBHOOK] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, detect_keys[DT_WEBHOOK]);
        PC_GUARD(parse_webhook(d, v[DT_WEBHOOK], sub, cfg));
    }
    typedef pc_result (*parser)(pc_cfg_doc *, const yaml_node_t *, const char *, pc_config *);
    static const parser parsers[] = {parse_enumeration, parse_probing, parse_volume,
                                     parse_credentials};
    for (size_t i = 0; i < N_OF(parsers); i++) {
        yaml_node_t *node = v[DT_ENUMERATION + i];
        if (node == NULL) continue;
        pc_cfg_path(sub, sizeof sub, path, detect_keys[DT_ENUMERATION + i]);
        PC_GUARD(parsers[i](d, node, sub, cfg));
    }
    return PC_OK;
}

/* ---- admin: -------------------------------------------------------------- */

/* An x5t#S256: base64url of a SHA-256, 43 characters, no padding. */
static bool thumbprint_ok(const char *s)
{
    if (strlen(s) != 43) return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

enum { AD_CLIENTS, N_AD };
static const char *const admin_keys[N_AD] = {[AD_CLIENTS] = "clients"};

pc_result pc_cfg_admin(pc_cfg_doc *d, const yaml_node_t *n, pc_config *cfg)
{
    const char *path = "admin";
    yaml_node_t *v[N_AD];
    char sub[PC_CONFIG_MAX_PATH];
    PC_GUARD(pc_cfg_map(d, n, path, admin_keys, N_AD, v));
    PC_GUARD(pc_cfg_require(d, n, path, admin_keys[AD_CLIENTS], v[AD_CLIENTS]));
    pc_cfg_path(sub, sizeof sub, path, admin_keys[AD_CLIENTS]);
    PC_GUARD(pc_cfg_gw_strings(d, v[AD_CLIENTS], sub, thumbprint_ok,
                               "a certificate thumbprint (x5t#S256: 43 base64url characters; "
                               "portcullis pki thumbprint prints it)",
                               &cfg->admin.clients, &cfg->admin.n_clients));
    PC_ENSURE(cfg->admin.n_clients <= PC_CONFIG_MAX_ADMINS, PC_ERR_USAGE,
              "admin.clients: at most %u", (unsigned)PC_CONFIG_MAX_ADMINS);
    return PC_OK;
}
