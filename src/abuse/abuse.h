/* Abuse resistance as a server module: the glue between requests and the
 * pure machinery in detect/ (rate limiter, detectors, sanctions).
 *
 * It owns, for the life of the server (kept across reloads, so a SIGHUP
 * neither refills a bucket nor releases a quarantine):
 *   - the rate limiter shared by every worker (rate_limits: policies),
 *   - the token endpoint's failure limiter (per client_id and per IP),
 *   - the detectors' per-key state and the sanctions table,
 *   - the webhook poster and the action counters.
 * Per runtime it holds the config's policies and actions, and serves the
 * admin API (/admin/quarantines) and /metrics to admin.clients.
 *
 * The gateway and the token endpoint find it with
 * pc_route_sink_module_state(sink, "abuse") and call the functions below
 * from their handlers. docs/abuse-resistance.md is the operator's view. */
#ifndef PC_ABUSE_ABUSE_H
#define PC_ABUSE_ABUSE_H

#include "core/str.h"
#include "detect/detect.h"
#include "net/module.h"

#include <stdbool.h>
#include <stdint.h>

extern const pc_module pc_abuse_module;

typedef struct pc_abuse pc_abuse; /* per-runtime state */

/* Who a request is from, for rate-limit keys and detectors. Empty
 * strings where unknown (no token yet). */
typedef struct pc_abuse_who {
    pc_str client_id;
    pc_str sub;
    const char *ip;     /* the client's address, never NULL */
    const char *route;  /* "GET /customers/{tag}", or "POST /token" */
} pc_abuse_who;

/* Count the request against policies (indices into cfg->rate_limits).
 * Adds RateLimit-Policy and RateLimit to the response of r whatever the
 * outcome. When a policy refuses: answers 429 with Retry-After (and the
 * interaction id, if not NULL), counts it, and returns false. */
PC_MUST_USE bool pc_abuse_limit(pc_abuse *a, pc_request *r, const size_t *policies, size_t n,
                                const pc_abuse_who *w, const char *interaction_id);

/* Is the client quarantined? until_s: when it ends (unix seconds). */
bool pc_abuse_quarantined(pc_abuse *a, pc_str client_id, int64_t *until_s);

/* Detector inputs. Each runs the detectors for the client ("c:" key) and,
 * when it differs, the subject ("s:" key), then acts on what fired. */
void pc_abuse_on_request(pc_abuse *a, const pc_abuse_who *w, const pc_det_request *rq);
void pc_abuse_on_status(pc_abuse *a, pc_str client_id, pc_str sub, int status);
void pc_abuse_on_credential(pc_abuse *a, pc_str client_id, pc_det_cred_event ev, pc_str value);

/* The token endpoint's failure limits (as.auth_failures_per_minute per
 * client_id, as.auth_failures_per_minute_per_ip per address): may this
 * caller try to authenticate now? If not, retry_after_s says when. */
bool pc_abuse_auth_allowed(pc_abuse *a, pc_str client_id, const char *ip,
                           uint32_t *retry_after_s);
/* A failed client authentication: counts against both limits and feeds the
 * credentials detector. */
void pc_abuse_auth_failed(pc_abuse *a, pc_str client_id, const char *ip);

/* The revoke action: the in-process AS revokes every live token of a
 * client. Set by the AS when it builds (same runtime). */
typedef void (*pc_abuse_revoke_fn)(void *arg, pc_str client_id);
void pc_abuse_set_revoker(pc_abuse *a, pc_abuse_revoke_fn fn, void *arg);

/* Is the detect: section on? (callers skip building inputs when not) */
bool pc_abuse_detecting(const pc_abuse *a);

#endif
