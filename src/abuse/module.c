/* The abuse module: shared state made once and kept across reloads (a
 * SIGHUP must neither refill a bucket nor release a quarantine), and per
 * runtime the config's policies, the admin routes and the revoke hook. */
#include "abuse/internal.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t pc_abuse_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* On whenever anything uses it: policies, detectors, the admin API, or the
 * token endpoint's failure limits. */
static bool abuse_enabled(const pc_config *cfg)
{
    return cfg->n_rate_limits > 0 || cfg->detect.enabled || cfg->admin.n_clients > 0 ||
           cfg->as.enabled;
}

static void det_config(const pc_detect_config *c, pc_det_config *out)
{
    pc_det_config_defaults(out);
    out->learning_ms = c->learning_ms;
    out->max_keys = c->max_keys;
    out->enumeration.enabled = c->enumeration.enabled;
    out->enumeration.window_ms = c->enumeration.window_ms;
    out->enumeration.max_distinct = c->enumeration.max_distinct;
    out->enumeration.baseline_factor = c->enumeration.baseline_factor;
    out->enumeration.min_distinct = c->enumeration.min_distinct;
    out->enumeration.sequential_run = c->enumeration.sequential_run;
    out->enumeration.sequential_gap = c->enumeration.sequential_gap;
    out->enumeration.ordered_run = c->enumeration.ordered_run;
    out->enumeration.scan_fraction = c->enumeration.scan_fraction;
    out->enumeration.scan_ratio = c->enumeration.scan_ratio;
    out->probing.enabled = c->probing.enabled;
    out->probing.window_ms = c->probing.window_ms;
    out->probing.min_requests = c->probing.min_requests;
    out->probing.max_ratio = c->probing.max_ratio;
    out->volume.enabled = c->volume.enabled;
    out->volume.interval_ms = c->volume.interval_ms;
    out->volume.alpha = c->volume.alpha;
    out->volume.z_threshold = c->volume.z_threshold;
    out->volume.min_count = c->volume.min_count;
    out->volume.min_factor = c->volume.min_factor;
    out->credentials.enabled = c->credentials.enabled;
    out->credentials.window_ms = c->credentials.window_ms;
    out->credentials.max_auth_failures = c->credentials.max_auth_failures;
    out->credentials.max_dpop_replays = c->credentials.max_dpop_replays;
    out->credentials.max_binding_mismatches = c->credentials.max_binding_mismatches;
    out->credentials.max_new_certs = c->credentials.max_new_certs;
    out->credentials.max_new_ips = c->credentials.max_new_ips;
}

static void abuse_stop(void *p)
{
    pc_abuse_shared *sh = p;
    if (sh == NULL) return;
    pc_abuse_webhook_stop(sh->webhook);
    pc_rl_free(sh->rl);
    pc_rl_free(sh->failures);
    pc_det_free(sh->det);
    pc_sanctions_free(sh->sanctions);
    pthread_mutex_destroy(&sh->counters_mu);
    free(sh);
}

static pc_result abuse_start(const pc_config *cfg, void **out)
{
    pc_abuse_shared *sh = calloc(1, sizeof *sh);
    PC_ENSURE(sh != NULL, PC_ERR_INTERNAL, "out of memory");
    pthread_mutex_init(&sh->counters_mu, NULL);
    pc_result r = pc_rl_new(PC_ABUSE_RATE_KEYS, &sh->rl);
    if (pc_ok(r)) r = pc_rl_new(PC_ABUSE_FAILURE_KEYS, &sh->failures);
    if (pc_ok(r)) r = pc_sanctions_new(PC_ABUSE_MAX_SANCTIONS, &sh->sanctions);
    /* The detectors' thresholds and the webhook are read at start: their
     * state is shaped by them, so changing them takes a restart. */
    if (pc_ok(r) && cfg->detect.enabled) {
        pc_det_config dc;
        det_config(&cfg->detect, &dc);
        r = pc_det_new(&dc, &sh->det);
    }
    if (pc_ok(r) && cfg->detect.enabled && cfg->detect.webhook_url != NULL)
        r = pc_abuse_webhook_start(&cfg->detect, &sh->webhook);
    if (!pc_ok(r)) {
        abuse_stop(sh);
        return r;
    }
    *out = sh;
    return PC_OK;
}

static void abuse_free(void *p)
{
    pc_abuse *a = p;
    if (a == NULL) return;
    free(a->policies);
    free(a->counters);
    free(a);
}

/* The refusal counter of a policy name, kept across reloads. */
static policy_counter *counter_for(pc_abuse_shared *sh, const char *name)
{
    pthread_mutex_lock(&sh->counters_mu);
    policy_counter *c = NULL;
    for (size_t i = 0; i < sh->n_policies && c == NULL; i++)
        if (strcmp(sh->policies[i].name, name) == 0) c = &sh->policies[i];
    if (c == NULL && sh->n_policies < PC_ABUSE_MAX_POLICY_COUNTERS) {
        c = &sh->policies[sh->n_policies++];
        snprintf(c->name, sizeof c->name, "%s", name);
    }
    pthread_mutex_unlock(&sh->counters_mu);
    return c;
}

static pc_result build_state(const pc_config *cfg, pc_abuse *a, pc_route_sink *sink)
{
    a->cfg = cfg;
    PC_ENSURE(!cfg->detect.enabled || a->sh->det != NULL, PC_ERR_USAGE,
              "detect: was added by a reload; the detectors start on a restart");
    size_t n = cfg->n_rate_limits;
    a->policies = calloc(n ? n : 1, sizeof *a->policies);
    a->counters = calloc(n ? n : 1, sizeof *a->counters);
    PC_ENSURE(a->policies != NULL && a->counters != NULL, PC_ERR_INTERNAL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const pc_rate_limit_config *p = &cfg->rate_limits[i];
        a->policies[i] = (pc_rl_policy){.name = p->name,
                                        .quota = p->quota,
                                        .window_s = p->window_ms / 1000u,
                                        .burst = p->burst};
        a->counters[i] = counter_for(a->sh, p->name);
    }
    return pc_abuse_admin_routes(a, sink);
}

static pc_result abuse_build(const pc_config *cfg, void *shared, pc_route_sink *sink, void **out)
{
    pc_abuse *a = calloc(1, sizeof *a);
    PC_ENSURE(a != NULL, PC_ERR_INTERNAL, "out of memory");
    a->sh = shared;
    pc_result r = build_state(cfg, a, sink);
    if (!pc_ok(r)) {
        abuse_free(a);
        return r;
    }
    pc_logline l;
    if (pc_log_begin(&l, PC_LOG_INFO, "abuse_ready")) {
        pc_log_uint(&l, "rate_limit_policies", cfg->n_rate_limits);
        pc_log_bool(&l, "detectors", cfg->detect.enabled);
        pc_log_bool(&l, "webhook", a->sh->webhook != NULL);
        pc_log_uint(&l, "admin_clients", cfg->admin.n_clients);
        pc_log_end(&l);
    }
    *out = a;
    return PC_OK;
}

void pc_abuse_set_revoker(pc_abuse *a, pc_abuse_revoke_fn fn, void *arg)
{
    a->revoke = fn;
    a->revoke_arg = arg;
}

bool pc_abuse_detecting(const pc_abuse *a) { return a->cfg->detect.enabled && a->sh->det; }

const pc_module pc_abuse_module = {
    .name = "abuse",
    .enabled = abuse_enabled,
    .start = abuse_start,
    .stop = abuse_stop,
    .build = abuse_build,
    .free = abuse_free,
};
