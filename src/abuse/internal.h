/* Private to src/abuse.
 *
 * module.c   the module: shared state (kept across reloads), per-runtime
 *            state, registration of the admin routes
 * limit.c    rate-limit keys, policies, RateLimit headers, 429; the token
 *            endpoint's failure limits
 * act.c      detector inputs and the actions on what fired: alert line,
 *            counters, webhook, throttle, quarantine, revoke
 * webhook.c  a thread that POSTs alerts to detect.webhook.url
 * admin.c    /admin/quarantines and /metrics */
#ifndef PC_ABUSE_INTERNAL_H
#define PC_ABUSE_INTERNAL_H

#include "abuse/abuse.h"
#include "core/config.h"
#include "detect/detect.h"
#include "detect/ratelimit.h"
#include "detect/sanctions.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/* Actions, in the order of the PC_ACT_* bits (core/config.h). */
#define PC_ABUSE_ACTIONS 5
/* Policies whose refusals are counted by name (config allows 64). */
#define PC_ABUSE_MAX_POLICY_COUNTERS 64
/* Quarantined clients held at once; beyond, the soonest to end is dropped. */
#define PC_ABUSE_MAX_SANCTIONS 65536
/* Keys the token endpoint's failure limiter holds. */
#define PC_ABUSE_FAILURE_KEYS (1u << 18)
/* Rate-limit keys held (the bound is measured at 1,000,000). */
#define PC_ABUSE_RATE_KEYS (1u << 20)

typedef struct pc_abuse_webhook pc_abuse_webhook;

typedef struct policy_counter {
    char name[72];
    _Atomic uint64_t refused;
} policy_counter;

typedef struct pc_abuse_shared {
    pc_ratelimit *rl;        /* rate_limits: policies */
    pc_ratelimit *failures;  /* the token endpoint's failure limits */
    pc_detector *det;        /* NULL when detect: was off at start */
    pc_sanctions *sanctions;
    pc_abuse_webhook *webhook; /* NULL without detect.webhook */
    pthread_mutex_t counters_mu; /* guards adding a policy counter */
    policy_counter policies[PC_ABUSE_MAX_POLICY_COUNTERS];
    size_t n_policies;
    _Atomic uint64_t actions[PC_DET_KINDS][PC_ABUSE_ACTIONS];
    _Atomic uint64_t auth_refused;      /* token requests refused by the failure limits */
    _Atomic uint64_t quarantine_refused;/* requests refused because quarantined */
    _Atomic uint64_t revoked;           /* revoke actions carried out */
} pc_abuse_shared;

struct pc_abuse {
    const pc_config *cfg;     /* borrowed: the runtime outlives this */
    pc_abuse_shared *sh;
    pc_rl_policy *policies;   /* one per cfg->rate_limits */
    policy_counter **counters;/* one per cfg->rate_limits */
    pc_abuse_revoke_fn revoke;
    void *revoke_arg;
};

/* Unix microseconds. */
int64_t pc_abuse_now_us(void);

/* ---- webhook.c ------------------------------------------------------------ */

PC_MUST_USE pc_result pc_abuse_webhook_start(const pc_detect_config *c, pc_abuse_webhook **out);
void pc_abuse_webhook_stop(pc_abuse_webhook *w);
/* Queue one alert (JSON text, copied); dropped (and counted) when the
 * queue is full, never blocking a worker. */
void pc_abuse_webhook_post(pc_abuse_webhook *w, const char *json, size_t len);
/* Sent, failed and dropped alerts, for /metrics. */
void pc_abuse_webhook_stats(pc_abuse_webhook *w, uint64_t *sent, uint64_t *failed,
                            uint64_t *dropped);

/* ---- admin.c -------------------------------------------------------------- */

PC_MUST_USE pc_result pc_abuse_admin_routes(pc_abuse *a, pc_route_sink *sink);

#endif
