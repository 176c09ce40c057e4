/* The admin API and the metrics, for the certificates in admin.clients
 * only (mTLS: the connection's certificate thumbprint must be listed;
 * server.tls.client_cert must ask for certificates):
 *
 *   GET    /admin/quarantines              active quarantines and throttles
 *   POST   /admin/quarantines/{client_id}  quarantine now (reason "operator")
 *   DELETE /admin/quarantines/{client_id}  release (and forget its detector state)
 *   GET    /metrics                        Prometheus text format
 *
 * `portcullis quarantine list|release` is a client of the first three. */
#include "abuse/internal.h"
#include "core/log.h"
#include "core/str.h"
#include "net/router.h"
#include "net/server.h"
#include "net/tls.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Quarantines listed in one answer. */
#define PC_ABUSE_MAX_LISTED 4096u
/* Bytes of the metrics page. */
#define PC_ABUSE_METRICS_CAP 16384u

static bool admin_ok(pc_request *r, const pc_abuse *a)
{
    const pc_tls_peer *peer = pc_request_peer(r);
    bool ok = false;
    if (peer != NULL && peer->present && peer->x5t_s256[0]) {
        size_t n = strlen(peer->x5t_s256);
        for (size_t i = 0; i < a->cfg->admin.n_clients; i++) {
            const char *c = a->cfg->admin.clients[i];
            ok |= pc_ct_eq(c, strlen(c), peer->x5t_s256, n);
        }
    }
    if (!ok) {
        pc_logline l;
        if (pc_log_begin(&l, PC_LOG_WARN, "admin_refused")) {
            pc_log_cstr(&l, "req", pc_request_id(r));
            pc_log_cstr(&l, "ip", pc_request_peer_ip(r));
            pc_log_cstr(&l, "cert", peer && peer->present ? peer->x5t_s256 : "");
            pc_log_end(&l);
        }
        pc_response_header(r, "Cache-Control", PC_STR("no-store"));
        pc_respond_problem(r, 403,
                           "the admin API needs a client certificate listed in admin.clients");
    }
    return ok;
}

static void respond_json(pc_request *r, int status, json_t *o)
{
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (text == NULL) {
        pc_respond_problem(r, 500, "out of memory");
        return;
    }
    pc_response_header(r, "Cache-Control", PC_STR("no-store"));
    pc_respond(r, status, "application/json", text, strlen(text));
    free(text);
}

/* The {client_id} path parameter, percent-decoded; false if malformed,
 * empty, too long, or holding control characters. */
static bool client_param(pc_request *r, char out[PC_SANCTION_MAX_CLIENT + 1])
{
    pc_str v = pc_route_param(pc_request_route(r), "client_id");
    size_t o = 0;
    for (size_t i = 0; i < v.len; i++) {
        int c = (unsigned char)v.ptr[i];
        if (c == '%') {
            int hi = i + 2 < v.len ? pc_hexval(v.ptr[i + 1]) : -1;
            int lo = i + 2 < v.len ? pc_hexval(v.ptr[i + 2]) : -1;
            if (hi < 0 || lo < 0) return false;
            c = hi * 16 + lo;
            i += 2;
        }
        if (c < 0x20 || c == 0x7f || o == PC_SANCTION_MAX_CLIENT) return false;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return o > 0;
}

static void list_quarantines(pc_request *r, void *data)
{
    pc_abuse *a = data;
    if (!admin_ok(r, a)) return;
    pc_sanction *list = calloc(PC_ABUSE_MAX_LISTED, sizeof *list);
    if (list == NULL) {
        pc_respond_problem(r, 500, "out of memory");
        return;
    }
    int64_t now = pc_abuse_now_us();
    size_t n = pc_sanctions_list(a->sh->sanctions, now, list, PC_ABUSE_MAX_LISTED);
    json_t *arr = json_array();
    for (size_t i = 0; i < n && arr; i++) {
        const pc_sanction *s = &list[i];
        json_t *o = json_pack("{s:s,s:s,s:b}", "client_id", s->client_id, "reason", s->reason,
                              "quarantined", s->quarantine_until_us > now);
        if (o && s->quarantine_until_us > now) {
            json_object_set_new(o, "since", json_integer(s->quarantined_at_us / 1000000));
            json_object_set_new(o, "until", json_integer(s->quarantine_until_us / 1000000));
        }
        if (o && s->throttle_until_us > now) {
            json_object_set_new(o, "throttled_until", json_integer(s->throttle_until_us / 1000000));
            json_object_set_new(o, "throttle_factor", json_real(s->throttle_factor));
        }
        if (o) json_array_append_new(arr, o);
    }
    free(list);
    respond_json(r, 200, json_pack("{s:o*}", "quarantines", arr));
}

static void change_quarantine(pc_request *r, void *data)
{
    pc_abuse *a = data;
    if (!admin_ok(r, a)) return;
    char client[PC_SANCTION_MAX_CLIENT + 1];
    if (!client_param(r, client)) {
        pc_respond_problem(r, 400, "expected a client_id in the path");
        return;
    }
    pc_str cid = pc_str_c(client);
    bool release = pc_str_eq_lit_ci(pc_request_http(r)->method, "DELETE");
    int64_t now = pc_abuse_now_us();
    bool had = false;
    if (release) {
        had = pc_sanctions_release(a->sh->sanctions, cid, now);
        /* Learning starts afresh: the state that fired would fire again. */
        if (a->sh->det) {
            char key[PC_DET_MAX_KEY];
            int n = snprintf(key, sizeof key, "c:%s", client);
            if (n > 0 && (size_t)n < sizeof key) pc_det_forget(a->sh->det, (pc_str){key, (size_t)n});
        }
    } else {
        pc_sanctions_quarantine(a->sh->sanctions, cid, "operator", now,
                                (int64_t)a->cfg->detect.quarantine_ms * 1000);
    }
    pc_logline l;
    if (pc_log_begin(&l, PC_LOG_WARN, release ? "quarantine_released" : "quarantine_added")) {
        pc_log_cstr(&l, "req", pc_request_id(r));
        pc_log_cstr(&l, "client_id", client);
        pc_log_cstr(&l, "by", pc_request_peer(r)->x5t_s256);
        if (release) pc_log_bool(&l, "was_sanctioned", had);
        pc_log_end(&l);
    }
    if (release && !had) {
        pc_respond_problem(r, 404, "that client is not quarantined or throttled");
        return;
    }
    respond_json(r, 200, json_pack("{s:s,s:b}", "client_id", client, "quarantined", !release));
}

static void put(char *buf, size_t cap, size_t *len, const char *fmt, ...) PC_PRINTF(4, 5);
static void put(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n > 0 && (size_t)n < cap - *len) *len += (size_t)n;
}

static void metrics(pc_request *r, void *data)
{
    static const char *const actions[PC_ABUSE_ACTIONS] = {"log", "alert", "throttle",
                                                          "quarantine", "revoke"};
    pc_abuse *a = data;
    if (!admin_ok(r, a)) return;
    char *b = malloc(PC_ABUSE_METRICS_CAP);
    if (b == NULL) {
        pc_respond_problem(r, 500, "out of memory");
        return;
    }
    size_t n = 0, cap = PC_ABUSE_METRICS_CAP;
    pc_abuse_shared *sh = a->sh;
    put(b, cap, &n, "# HELP portcullis_detect_actions_total Detector actions taken.\n"
                    "# TYPE portcullis_detect_actions_total counter\n");
    for (int k = 0; k < PC_DET_KINDS; k++)
        for (int i = 0; i < PC_ABUSE_ACTIONS; i++)
            put(b, cap, &n, "portcullis_detect_actions_total{detector=\"%s\",action=\"%s\"} %llu\n",
                pc_det_kind_name((pc_det_kind)k), actions[i],
                (unsigned long long)atomic_load(&sh->actions[k][i]));
    put(b, cap, &n, "# HELP portcullis_ratelimit_refusals_total Requests refused by a rate-limit policy.\n"
                    "# TYPE portcullis_ratelimit_refusals_total counter\n");
    pthread_mutex_lock(&sh->counters_mu);
    size_t np = sh->n_policies;
    pthread_mutex_unlock(&sh->counters_mu);
    for (size_t i = 0; i < np; i++)
        put(b, cap, &n, "portcullis_ratelimit_refusals_total{policy=\"%s\"} %llu\n",
            sh->policies[i].name, (unsigned long long)atomic_load(&sh->policies[i].refused));
    uint64_t sent, failed, dropped;
    pc_abuse_webhook_stats(sh->webhook, &sent, &failed, &dropped);
    int64_t now = pc_abuse_now_us();
    size_t listed = 0;
    /* Count active quarantines without copying them all. */
    pc_sanction *list = calloc(PC_ABUSE_MAX_LISTED, sizeof *list);
    if (list) listed = pc_sanctions_list(sh->sanctions, now, list, PC_ABUSE_MAX_LISTED);
    size_t quarantined = 0;
    for (size_t i = 0; i < listed; i++) quarantined += list[i].quarantine_until_us > now;
    free(list);
    put(b, cap, &n,
        "# TYPE portcullis_auth_failure_refusals_total counter\n"
        "portcullis_auth_failure_refusals_total %llu\n"
        "# TYPE portcullis_quarantine_refusals_total counter\n"
        "portcullis_quarantine_refusals_total %llu\n"
        "# TYPE portcullis_revocations_by_detector_total counter\n"
        "portcullis_revocations_by_detector_total %llu\n"
        "# TYPE portcullis_quarantined_clients gauge\n"
        "portcullis_quarantined_clients %zu\n"
        "# TYPE portcullis_ratelimit_keys gauge\n"
        "portcullis_ratelimit_keys %zu\n"
        "# TYPE portcullis_detect_keys gauge\n"
        "portcullis_detect_keys %zu\n"
        "# TYPE portcullis_webhook_alerts_total counter\n"
        "portcullis_webhook_alerts_total{outcome=\"sent\"} %llu\n"
        "portcullis_webhook_alerts_total{outcome=\"failed\"} %llu\n"
        "portcullis_webhook_alerts_total{outcome=\"dropped\"} %llu\n",
        (unsigned long long)atomic_load(&sh->auth_refused),
        (unsigned long long)atomic_load(&sh->quarantine_refused),
        (unsigned long long)atomic_load(&sh->revoked), quarantined, pc_rl_keys(sh->rl),
        sh->det ? pc_det_keys(sh->det) : 0, (unsigned long long)sent,
        (unsigned long long)failed, (unsigned long long)dropped);
    pc_response_header(r, "Cache-Control", PC_STR("no-store"));
    pc_respond(r, 200, "text/plain; version=0.0.4; charset=utf-8", b, n);
    free(b);
}

pc_result pc_abuse_admin_routes(pc_abuse *a, pc_route_sink *sink)
{
    if (a->cfg->admin.n_clients == 0) return PC_OK;
    PC_GUARD(pc_route_sink_add(sink, "GET", "/admin/quarantines", list_quarantines, a,
                               "admin_quarantines"));
    PC_GUARD(pc_route_sink_add(sink, "POST", "/admin/quarantines/{client_id}", change_quarantine,
                               a, "admin_quarantine"));
    PC_GUARD(pc_route_sink_add(sink, "DELETE", "/admin/quarantines/{client_id}",
                               change_quarantine, a, "admin_release"));
    return pc_route_sink_add(sink, "GET", "/metrics", metrics, a, "metrics");
}
