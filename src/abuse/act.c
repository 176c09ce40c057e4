/* Detector inputs, and what happens when a detector fires: one structured
 * alert line (detector, key, client, evidence, actions), a counter per
 * detector and action, and the actions configured for that detector:
 *   log        the line only
 *   alert      the line, and the webhook (when configured)
 *   throttle   the client's rate-limit quotas x detect.throttle_factor
 *              for detect.throttle_period
 *   quarantine refused at the gateway and the token endpoint for
 *              detect.quarantine_period
 *   revoke     every live token of the client revoked (in-process AS)
 * A subject's finding ("s:" key) acts on the client that presented it. */
#include "abuse/internal.h"
#include "core/log.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const action_names[PC_ABUSE_ACTIONS] = {"log", "alert", "throttle",
                                                           "quarantine", "revoke"};

static unsigned actions_of(const pc_detect_config *c, pc_det_kind k)
{
    switch (k) {
    case PC_DET_ENUMERATION: return c->enumeration.actions;
    case PC_DET_PROBING: return c->probing.actions;
    case PC_DET_VOLUME: return c->volume.actions;
    case PC_DET_CREDENTIALS: return c->credentials.actions;
    default: return PC_ACT_LOG;
    }
}

/* The webhook's body: the alert line's fields as one JSON object, built
 * with jansson (the evidence and the action list are our own JSON text). */
static void post_alert(pc_abuse *a, pc_str key, pc_str client_id, const pc_det_finding *f,
                       const char *actions_json, int64_t now)
{
    json_t *o = json_pack("{s:s,s:I,s:s,s:s%,s:s%,s:o?,s:o?}", "event", "detect_alert", "ts",
                          (json_int_t)(now / 1000000), "detector", pc_det_kind_name(f->kind),
                          "key", key.ptr, key.len, "client_id", client_id.ptr ? client_id.ptr : "",
                          client_id.len, "actions", json_loads(actions_json, 0, NULL), "evidence",
                          json_loads(f->evidence[0] ? f->evidence : "{}", 0, NULL));
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (body) pc_abuse_webhook_post(a->sh->webhook, body, strlen(body));
    free(body);
}

static void act(pc_abuse *a, pc_str key, pc_str client_id, const pc_det_finding *f, int64_t now,
                unsigned allowed)
{
    const pc_detect_config *c = &a->cfg->detect;
    unsigned acts = (actions_of(c, f->kind) & allowed) | PC_ACT_LOG;
    /* revoke needs the AS in this process (the default asks for it). */
    if (a->revoke == NULL) acts &= ~(unsigned)PC_ACT_REVOKE;
    char list[96];
    size_t ll = 0;
    list[0] = '\0';
    for (int i = 0; i < PC_ABUSE_ACTIONS; i++) {
        if (!(acts & (1u << i))) continue;
        atomic_fetch_add(&a->sh->actions[f->kind][i], 1);
        ll += (size_t)snprintf(list + ll, sizeof list - ll, "%s\"%s\"", ll ? "," : "",
                               action_names[i]);
    }
    int64_t until = 0;
    if (acts & PC_ACT_THROTTLE && client_id.len) {
        pc_sanctions_throttle(a->sh->sanctions, client_id, c->throttle_factor, now,
                              (int64_t)c->throttle_ms * 1000);
        until = now + (int64_t)c->throttle_ms * 1000;
    }
    if (acts & PC_ACT_QUARANTINE && client_id.len) {
        pc_sanctions_quarantine(a->sh->sanctions, client_id, pc_det_kind_name(f->kind), now,
                                (int64_t)c->quarantine_ms * 1000);
        until = now + (int64_t)c->quarantine_ms * 1000;
    }
    if (acts & PC_ACT_REVOKE && client_id.len && a->revoke) {
        a->revoke(a->revoke_arg, client_id);
        atomic_fetch_add(&a->sh->revoked, 1);
    }
    char actions_json[100];
    snprintf(actions_json, sizeof actions_json, "[%s]", list);
    pc_logline l;
    if (pc_log_begin(&l, PC_LOG_WARN, "detect_alert")) {
        pc_log_cstr(&l, "detector", pc_det_kind_name(f->kind));
        pc_log_str(&l, "key", key);
        pc_log_str(&l, "client_id", client_id);
        pc_log_json(&l, "actions", actions_json);
        pc_log_json(&l, "evidence", f->evidence[0] ? f->evidence : "{}");
        if (until) pc_log_int(&l, "until", until / 1000000);
        pc_log_end(&l);
    }
    if (acts & PC_ACT_ALERT && a->sh->webhook) post_alert(a, key, client_id, f, actions_json, now);
}

/* "c:<client_id>" or "s:<sub>"; false when it would not fit (the caller
 * then uses the client key alone). */
static bool make_key(char *buf, size_t cap, char tag, pc_str v, pc_str *out)
{
    if (v.len == 0 || v.len + 2 > cap || v.len + 2 > PC_DET_MAX_KEY) return false;
    buf[0] = tag;
    buf[1] = ':';
    memcpy(buf + 2, v.ptr, v.len);
    *out = (pc_str){buf, v.len + 2};
    return true;
}

#define ALL_ACTIONS (PC_ACT_LOG | PC_ACT_ALERT | PC_ACT_THROTTLE | PC_ACT_QUARANTINE | PC_ACT_REVOKE)

static void act_all(pc_abuse *a, pc_str key, pc_str client_id, const pc_det_finding *f, size_t n,
                    int64_t now)
{
    for (size_t i = 0; i < n; i++) act(a, key, client_id, &f[i], now, ALL_ACTIONS);
}

void pc_abuse_on_request(pc_abuse *a, const pc_abuse_who *w, const pc_det_request *rq)
{
    if (!pc_abuse_detecting(a)) return;
    int64_t now = pc_abuse_now_us();
    char kb[PC_DET_MAX_KEY];
    pc_str key;
    pc_det_finding f[PC_DET_KINDS];
    if (make_key(kb, sizeof kb, 'c', w->client_id, &key))
        act_all(a, key, w->client_id, f, pc_det_on_request(a->sh->det, key, rq, now, f), now);
    /* The subject too, when a token names one other than its client. */
    if (w->sub.len && !pc_str_eq(w->sub, w->client_id) && make_key(kb, sizeof kb, 's', w->sub, &key))
        act_all(a, key, w->client_id, f, pc_det_on_request(a->sh->det, key, rq, now, f), now);
}

void pc_abuse_on_status(pc_abuse *a, pc_str client_id, pc_str sub, int status)
{
    if (!pc_abuse_detecting(a)) return;
    int64_t now = pc_abuse_now_us();
    char kb[PC_DET_MAX_KEY];
    pc_str key;
    pc_det_finding f[PC_DET_KINDS];
    if (make_key(kb, sizeof kb, 'c', client_id, &key))
        act_all(a, key, client_id, f, pc_det_on_response(a->sh->det, key, status, now, f), now);
    if (sub.len && !pc_str_eq(sub, client_id) && make_key(kb, sizeof kb, 's', sub, &key))
        act_all(a, key, client_id, f, pc_det_on_response(a->sh->det, key, status, now, f), now);
}

void pc_abuse_on_credential(pc_abuse *a, pc_str client_id, pc_det_cred_event ev, pc_str value)
{
    if (!pc_abuse_detecting(a)) return;
    int64_t now = pc_abuse_now_us();
    char kb[PC_DET_MAX_KEY];
    pc_str key;
    pc_det_finding f[PC_DET_KINDS];
    if (!make_key(kb, sizeof kb, 'c', client_id, &key)) return;
    size_t n = pc_det_on_credential(a->sh->det, key, ev, value, now, f);
    /* Failed authentications name a client_id the caller merely claims:
     * letting them quarantine or revoke would hand anyone a lever against
     * any partner. They alert; the failure limits block the attempts. */
    unsigned allowed = ev == PC_DET_AUTH_FAILURE
                           ? ALL_ACTIONS & ~(unsigned)(PC_ACT_QUARANTINE | PC_ACT_REVOKE | PC_ACT_THROTTLE)
                           : ALL_ACTIONS;
    for (size_t i = 0; i < n; i++) act(a, key, client_id, &f[i], now, allowed);
}
