/* One exchange with an upstream, asynchronously, on this worker's pool:
 *
 *   start -> evhttp request on a pooled connection, route timer armed
 *            (and, on a connection not yet known good, a connect timer:
 *            not connected by then -> 502, the upstream is unreachable)
 *   done  -> copy status, filtered headers and body -> pc_respond
 *   error -> 502 (refused, reset, malformed, too large) / 504 (timeout);
 *            but a reused keep-alive connection the upstream had already
 *            closed (EOF before any answer) is retried once on a fresh
 *            connection when the method is idempotent (RFC 9110 §9.2.2)
 *   timer -> cancel the upstream request, 504
 *   abort (client connection gone) -> cancel, free, touch nothing
 *
 * A failure never carries upstream content: either nothing came back, or
 * we answer with our own problem+json. */
#include "core/log.h"
#include "gw/internal.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Longest upstream request-target we build (base path + target). */
#define PC_GW_MAX_TARGET 8192u

typedef struct exchange {
    pc_request *r;                 /* the client's request; valid until answered/aborted */
    const pc_gw_route *rt;
    pc_gw_identity id;             /* claims referenced (for a retry's headers) */
    enum evhttp_cmd_type type;
    char target[PC_GW_MAX_TARGET];
    pc_gw_upconn *uc;              /* NULL when nothing is in flight */
    struct evhttp_request *ureq;   /* owned by evhttp while in flight */
    struct event *timer;           /* the route timeout, or a pending retry */
    struct event *connect_timer;   /* connect_timeout on a connection not yet proven */
    int64_t deadline_ms;           /* monotonic */
    enum evhttp_request_error error;
    bool have_error;
    bool reused;                   /* in flight on a connection that served before */
    bool retried;
    bool retry_pending;
    bool in_make;                  /* inside evhttp_make_request */
    bool answered_in_make;         /* answered from a callback inside make */
    char iid[PC_GW_MAX_INTERACTION_ID + 1];
} exchange;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void exchange_free(exchange *x)
{
    if (x->timer) event_free(x->timer);
    if (x->connect_timer) event_free(x->connect_timer);
    json_decref(x->id.claims);
    free(x);
}

void pc_gw_respond_problem(pc_request *r, const char *iid, int status, const char *reason,
                           const char *detail)
{
    pc_logline l;
    if (pc_log_begin(&l, PC_LOG_WARN, "upstream_failed")) {
        pc_log_cstr(&l, "req", pc_request_id(r));
        pc_log_int(&l, "status", status);
        pc_log_cstr(&l, "reason", reason);
        pc_log_end(&l);
    }
    pc_response_header(r, "x-fapi-interaction-id", pc_str_c(iid));
    pc_respond_problem(r, status, detail);
}

/* Answer the client with a problem and end the exchange. */
static void fail(exchange *x, int status, const char *reason, const char *detail)
{
    pc_request *r = x->r;
    char iid[sizeof x->iid];
    memcpy(iid, x->iid, sizeof iid);
    pc_request_set_abort(r, NULL, NULL);
    if (x->in_make) x->answered_in_make = true;
    else exchange_free(x);
    pc_gw_respond_problem(r, iid, status, reason, detail);
}

/* ---- the upstream's answer ---------------------------------------------------- */

/* Copy the upstream's headers we pass on. A first pass checks size and
 * safety, so that on failure nothing of the upstream's has been added and
 * the 502 carries none of its content. */
static bool copy_headers(pc_request *r, struct evhttp_request *u, const char **ctype)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(u);
    const char *conn = evhttp_find_header(in, "Connection");
    pc_str connection = conn ? pc_str_c(conn) : PC_STR_NULL;
    size_t used = 0;
    *ctype = evhttp_find_header(in, "Content-Type");
    if (*ctype && !pc_gw_header_value_safe(*ctype)) return false;
    for (int pass = 0; pass < 2; pass++) {
        for (struct evkeyval *kv = in->tqh_first; kv; kv = kv->next.tqe_next) {
            pc_str name = pc_str_c(kv->key);
            if (!pc_gw_forward_response_header(name, connection)) continue;
            if (pass == 1) {
                pc_response_header(r, kv->key, pc_str_c(kv->value));
                continue;
            }
            used += name.len + strlen(kv->value) + 4;
            if (used > PC_GW_MAX_RESPONSE_HEADER_BYTES || !pc_gw_header_value_safe(kv->value)) return false;
        }
    }
    return true;
}

static bool idempotent(enum evhttp_cmd_type t)
{
    return t == EVHTTP_REQ_GET || t == EVHTTP_REQ_HEAD || t == EVHTTP_REQ_PUT ||
           t == EVHTTP_REQ_DELETE || t == EVHTTP_REQ_OPTIONS;
}

static void arm(exchange *x, int64_t ms)
{
    if (ms < 0) ms = 0;
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(x->timer, &tv);
}

static void succeed(exchange *x, struct evhttp_request *u, int code)
{
    pc_request *r = x->r;
    pc_gw_observe_status(x->rt, &x->id, code);
    char iid[sizeof x->iid];
    memcpy(iid, x->iid, sizeof iid);
    /* RFC 9449 §8.2: a fresh nonce on every answer, so a client never has
     * to fail a request to learn that the nonce moved on. */
    char nonce[PC_DPOP_NONCE_LEN + 1];
    nonce[0] = '\0';
    if (x->id.dpop_nonce) pc_dpop_nonce_make(&x->rt->gw->sh->noncer, pc_gw_now(), nonce);
    pc_request_set_abort(r, NULL, NULL);
    if (x->in_make) x->answered_in_make = true;
    else exchange_free(x);
    const char *ctype = NULL;
    if (!copy_headers(r, u, &ctype)) {
        pc_gw_respond_problem(r, iid, 502, "upstream_headers",
                              "the upstream's response headers are too large or unsafe");
        return;
    }
    struct evbuffer *body = evhttp_request_get_input_buffer(u);
    size_t len = evbuffer_get_length(body);
    const char *data = len ? (const char *)evbuffer_pullup(body, -1) : NULL;
    pc_response_header(r, "x-fapi-interaction-id", pc_str_c(iid));
    if (nonce[0]) pc_response_header(r, "DPoP-Nonce", pc_str_c(nonce));
    /* pc_respond copies the body before returning; evhttp frees u after
     * this callback. */
    pc_respond(r, code, ctype, data, data ? len : 0);
}

static void on_done(struct evhttp_request *u, void *arg)
{
    exchange *x = arg;
    int code = u ? evhttp_request_get_response_code(u) : 0;
    bool ok = u != NULL && code >= 200 && code <= 599;
    pc_gw_upconn_done(x->uc, ok);
    x->uc = NULL;
    x->ureq = NULL; /* evhttp frees it after this callback */
    evtimer_del(x->connect_timer);
    if (ok) {
        evtimer_del(x->timer);
        succeed(x, u, code);
        return;
    }
    bool timeout = x->have_error && x->error == EVREQ_HTTP_TIMEOUT;
    bool too_long = x->have_error && x->error == EVREQ_HTTP_DATA_TOO_LONG;
    bool eof = x->have_error && x->error == EVREQ_HTTP_EOF;
    if (eof && x->reused && !x->retried && idempotent(x->type)) {
        /* The upstream closed an idle keep-alive connection as we sent on
         * it. Retry from the event loop, not from inside this callback
         * (the pool may replace the connection evhttp is calling from). */
        x->retried = x->retry_pending = true;
        evtimer_del(x->timer);
        arm(x, 0);
        return;
    }
    evtimer_del(x->timer);
    if (timeout)
        fail(x, 504, "upstream_timeout", "the upstream did not answer in time");
    else
        fail(x, 502, too_long ? "upstream_too_large" : "upstream_unreachable",
             too_long ? "the upstream's response is too large"
                      : "the upstream could not be reached or answered badly");
}

static void on_error(enum evhttp_request_error err, void *arg)
{
    exchange *x = arg;
    x->error = err;
    x->have_error = true;
}

/* ---- sending ---------------------------------------------------------------------- */

/* Send x's request on a pooled connection. false: nothing is in flight
 * and the caller answers. */
static bool dispatch(exchange *x)
{
    pc_request *r = x->r;
    pc_gw_upconn *uc = pc_gw_upconn_get(pc_request_base(r), x->rt->up);
    struct evhttp_request *u = uc ? evhttp_request_new(on_done, x) : NULL;
    if (u == NULL) return false;
    evhttp_request_set_error_cb(u, on_error);
    pc_gw_build_upstream_headers(r, x->rt, &x->id, x->iid, evhttp_request_get_output_headers(u));
    const pc_http_req *h = pc_request_http(r);
    if (h->body_len) evbuffer_add(evhttp_request_get_output_buffer(u), h->body, h->body_len);
    x->reused = pc_gw_upconn_reused(uc);
    x->have_error = false;
    struct evhttp_connection *evcon = pc_gw_upconn_evcon(uc);
    evhttp_connection_set_max_body_size(evcon, (ev_ssize_t)pc_request_config(r)->limits.max_body_bytes);
    x->uc = uc;
    x->ureq = u;
    x->in_make = true;
    int rc = evhttp_make_request(evcon, u, x->type, x->target);
    x->in_make = false;
    if (rc != 0 && x->ureq == u) {
        /* evhttp did not take the request and did not call us back. */
        pc_gw_upconn_done(uc, false);
        x->uc = NULL;
        x->ureq = NULL;
        return false;
    }
    if (x->ureq == u && !x->reused) {
        uint32_t ms = x->rt->up->connect_timeout_ms;
        struct timeval tv = {.tv_sec = (time_t)(ms / 1000u), .tv_usec = (suseconds_t)(ms % 1000u) * 1000};
        evtimer_add(x->connect_timer, &tv);
    }
    return true;
}

static void on_connect_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    exchange *x = arg;
    if (x->ureq == NULL || pc_gw_upconn_connected(x->uc)) return;
    /* Still connecting after connect_timeout: the upstream is down or
     * black-holed. Not inside an evhttp callback: cancelling is allowed. */
    evhttp_cancel_request(x->ureq);
    pc_gw_upconn_done(x->uc, false);
    x->uc = NULL;
    x->ureq = NULL;
    evtimer_del(x->timer);
    fail(x, 502, "upstream_connect_timeout", "the upstream could not be reached in time");
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    exchange *x = arg;
    if (x->retry_pending) {
        x->retry_pending = false;
        int64_t left = x->deadline_ms - mono_ms();
        if (left > 0 && dispatch(x)) {
            if (x->answered_in_make) {
                exchange_free(x);
                return;
            }
            if (!x->retry_pending) arm(x, left);
            return;
        }
        if (left > 0) {
            fail(x, 502, "upstream_unreachable", "the upstream could not be reached");
            return;
        }
    }
    /* Not inside an evhttp callback, so cancelling is allowed; the
     * request's callbacks will not run. */
    if (x->ureq) evhttp_cancel_request(x->ureq);
    if (x->uc) pc_gw_upconn_done(x->uc, false);
    x->uc = NULL;
    x->ureq = NULL;
    evtimer_del(x->connect_timer);
    fail(x, 504, "upstream_timeout", "the upstream did not answer in time");
}

static void on_abort(void *arg)
{
    /* The client connection is going away: cancel the upstream exchange
     * and forget the request (it must not be touched after we return). */
    exchange *x = arg;
    pc_logline l;
    if (pc_log_begin(&l, PC_LOG_INFO, "upstream_cancelled")) {
        pc_log_cstr(&l, "interaction_id", x->iid);
        pc_log_cstr(&l, "upstream", x->rt->up->name);
        pc_log_end(&l);
    }
    if (x->ureq) evhttp_cancel_request(x->ureq);
    if (x->uc) pc_gw_upconn_done(x->uc, false);
    exchange_free(x);
}

static bool method_type(pc_str m, enum evhttp_cmd_type *out)
{
    static const struct {
        const char *name;
        enum evhttp_cmd_type type;
    } map[] = {{"GET", EVHTTP_REQ_GET},       {"POST", EVHTTP_REQ_POST},
               {"HEAD", EVHTTP_REQ_HEAD},     {"PUT", EVHTTP_REQ_PUT},
               {"DELETE", EVHTTP_REQ_DELETE}, {"OPTIONS", EVHTTP_REQ_OPTIONS},
               {"PATCH", EVHTTP_REQ_PATCH}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (pc_str_eq(m, pc_str_c(map[i].name))) {
            *out = map[i].type;
            return true;
        }
    return false;
}

void pc_gw_exchange_start(pc_request *r, const pc_gw_route *rt, const pc_gw_identity *id,
                          const char *iid)
{
    const pc_http_req *h = pc_request_http(r);
    exchange *x = calloc(1, sizeof *x);
    if (x == NULL) {
        pc_gw_respond_problem(r, iid, 502, "upstream_pool", "out of memory");
        return;
    }
    size_t blen = strlen(rt->up->base_path);
    bool fits = blen + h->target.len < sizeof x->target;
    if (fits) {
        memcpy(x->target, rt->up->base_path, blen);
        memcpy(x->target + blen, h->target.ptr, h->target.len);
        x->target[blen + h->target.len] = '\0';
    }
    if (!method_type(h->method, &x->type) || !fits) {
        free(x);
        pc_gw_respond_problem(r, iid, 501, "method_not_proxied", "this method is not proxied");
        return;
    }
    x->r = r;
    x->rt = rt;
    x->id = *id;
    x->id.claims = json_incref(id->claims); /* the borrowed strings stay valid */
    snprintf(x->iid, sizeof x->iid, "%s", iid);
    x->deadline_ms = mono_ms() + rt->timeout_ms;
    x->timer = evtimer_new(pc_request_base(r), on_timer, x);
    x->connect_timer = evtimer_new(pc_request_base(r), on_connect_timer, x);
    if (x->timer == NULL || x->connect_timer == NULL || !dispatch(x)) {
        exchange_free(x);
        pc_gw_respond_problem(r, iid, 502, "upstream_unreachable", "no connection to the upstream");
        return;
    }
    if (x->answered_in_make) {
        exchange_free(x);
        return;
    }
    pc_request_set_abort(r, on_abort, x);
    if (!x->retry_pending) arm(x, rt->timeout_ms);
}
