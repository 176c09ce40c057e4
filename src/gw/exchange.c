/* One exchange with an upstream, asynchronously, on this worker's pool.
 *
 * The request (line, headers, body) is built once, as bytes. Then:
 *
 *   http://  -> the raw client (upstream.c): sent on a pooled socket, or
 *            queued until one is free; route timer armed
 *   https:// -> an evhttp request on a pooled connection, route timer
 *            armed (and, on a connection not yet known good, a connect
 *            timer: not connected by then -> 502, the upstream is
 *            unreachable)
 *   done  -> succeed(): status, filtered headers and body -> pc_respond
 *   error -> 502 (refused, reset, malformed, too large, not connected in
 *            time) / 504 (timeout); but a reused keep-alive connection the
 *            upstream had already closed (EOF before any answer) is
 *            retried once on a fresh connection when the method is
 *            idempotent (RFC 9110 §9.2.2)
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
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Longest upstream request-target we build (base path + target). */
#define PC_GW_MAX_TARGET 8192u

typedef struct exchange {
    pc_request *r;                 /* the client's request; valid until answered/aborted */
    const pc_gw_route *rt;
    pc_gw_identity id;             /* claims referenced */
    enum evhttp_cmd_type type;
    pc_gw_buf msg;                 /* the request as sent: line, headers, CRLF, body */
    size_t target_off, target_len; /* in msg */
    size_t hdrs_off, hdrs_len;     /* the header lines built by proxy.c, in msg */
    struct event *timer;           /* the route timeout, or a pending evhttp retry */
    int64_t deadline_ms;           /* monotonic */
    bool retried;
    /* http:// upstreams: the raw client. */
    pc_gw_upreq q;
    /* https:// upstreams: evhttp. */
    pc_gw_upconn *uc;              /* NULL when nothing is in flight */
    struct evhttp_request *ureq;   /* owned by evhttp while in flight */
    struct event *connect_timer;   /* connect_timeout on a connection not yet proven */
    enum evhttp_request_error error;
    bool have_error;
    bool reused;                   /* in flight on a connection that served before */
    bool retry_pending;
    bool in_make;                  /* inside evhttp_make_request */
    bool answered_in_make;         /* answered from a callback inside make */
    char iid[PC_GW_MAX_INTERACTION_ID + 1];
} exchange;

void pc_gw_buf_add(pc_gw_buf *b, const void *data, size_t len)
{
    if (b->oom || len == 0) return;
    if (len > b->cap - b->len) {
        /* 4 KiB first: a request head with an ~800-byte token and the
         * identity headers does not fit 1 KiB, and each doubling copies. */
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->len < len) {
            if (cap > SIZE_MAX / 2) {
                b->oom = true;
                return;
            }
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
}

static void exchange_free(exchange *x)
{
    if (x->timer) event_free(x->timer);
    if (x->connect_timer) event_free(x->connect_timer);
    json_decref(x->id.claims);
    free(x->msg.p);
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
static bool copy_headers(pc_request *r, const pc_gw_upresp *u, const char **ctype)
{
    pc_str connection = PC_STR_NULL;
    *ctype = NULL;
    for (size_t i = 0; i < u->n_headers; i++) {
        pc_str name = pc_str_c(u->headers[i].name);
        if (connection.ptr == NULL && pc_str_eq_lit_ci(name, "connection"))
            connection = pc_str_c(u->headers[i].value);
        else if (*ctype == NULL && pc_str_eq_lit_ci(name, "content-type"))
            *ctype = u->headers[i].value;
    }
    if (*ctype && !pc_field_value_ok(pc_str_c(*ctype))) return false;
    if (u->n_headers > PC_GW_UPSTREAM_MAX_HEADER_COUNT) return false;
    bool pass_on[PC_GW_UPSTREAM_MAX_HEADER_COUNT];
    size_t used = 0;
    for (size_t i = 0; i < u->n_headers; i++) {
        const pc_gw_uphdr *h = &u->headers[i];
        pc_str name = pc_str_c(h->name);
        pass_on[i] = pc_gw_forward_response_header(name, connection);
        if (!pass_on[i]) continue;
        pc_str value = pc_str_c(h->value);
        used += name.len + value.len + 4;
        if (used > PC_GW_MAX_RESPONSE_HEADER_BYTES || !pc_field_value_ok(value)) return false;
    }
    for (size_t i = 0; i < u->n_headers; i++)
        if (pass_on[i]) pc_response_header(r, u->headers[i].name, pc_str_c(u->headers[i].value));
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

/* The upstream answered (any status): pass its answer on and end the
 * exchange. Nothing is in flight any more; the timers are stopped. */
static void succeed(exchange *x, const pc_gw_upresp *u)
{
    pc_request *r = x->r;
    pc_gw_observe_status(x->rt, &x->id, u->status);
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
    pc_response_header(r, "x-fapi-interaction-id", pc_str_c(iid));
    if (nonce[0]) pc_response_header(r, "DPoP-Nonce", pc_str_c(nonce));
    /* pc_respond copies the body before returning; the client's buffers
     * are reused after this callback. */
    pc_respond(r, u->status, ctype, u->body_len ? u->body : NULL, u->body_len);
}

/* ---- http:// upstreams: the raw client ------------------------------------------ */

static void on_raw_done(pc_gw_upreq *q, pc_gw_upstatus st, const pc_gw_upresp *resp)
{
    exchange *x = (exchange *)(void *)((char *)q - offsetof(exchange, q));
    if (st == PC_GW_UP_OK) {
        evtimer_del(x->timer);
        succeed(x, resp);
        return;
    }
    if (st == PC_GW_UP_CLOSED && q->reused && !x->retried && idempotent(x->type)) {
        /* The upstream closed an idle keep-alive connection as we sent on
         * it: once more, on a new connection, within the same timer. */
        x->retried = true;
        q->fresh = true;
        if (pc_gw_up_send(pc_request_base(x->r), x->rt->up, q)) return;
    }
    evtimer_del(x->timer);
    switch (st) {
    case PC_GW_UP_CONNECT_TIMEOUT:
        fail(x, 502, "upstream_connect_timeout", "the upstream could not be reached in time");
        break;
    case PC_GW_UP_TOO_LARGE:
        fail(x, 502, "upstream_too_large", "the upstream's response is too large");
        break;
    default:
        fail(x, 502, "upstream_unreachable", "the upstream could not be reached or answered badly");
        break;
    }
}

/* ---- https:// upstreams: evhttp --------------------------------------------------- */

static void on_done(struct evhttp_request *u, void *arg)
{
    exchange *x = arg;
    int code = u ? evhttp_request_get_response_code(u) : 0;
    bool ok = u != NULL && code >= 200 && code <= 599;
    pc_gw_upconn_done(x->uc, ok);
    x->uc = NULL;
    x->ureq = NULL; /* evhttp frees it after this callback */
    evtimer_del(x->connect_timer);
    pc_gw_uphdr *hs = NULL;
    size_t n = 0;
    if (ok) {
        struct evkeyvalq *in = evhttp_request_get_input_headers(u);
        for (struct evkeyval *kv = in->tqh_first; kv; kv = kv->next.tqe_next) n++;
        hs = n ? calloc(n, sizeof *hs) : NULL;
        ok = n == 0 || hs != NULL;
        n = 0;
        for (struct evkeyval *kv = in->tqh_first; ok && kv; kv = kv->next.tqe_next)
            hs[n++] = (pc_gw_uphdr){kv->key, kv->value};
    }
    if (ok) {
        evtimer_del(x->timer);
        struct evbuffer *body = evhttp_request_get_input_buffer(u);
        size_t len = evbuffer_get_length(body);
        const char *data = len ? (const char *)evbuffer_pullup(body, -1) : NULL;
        pc_gw_upresp resp = {code, hs, n, data, data ? len : 0};
        succeed(x, &resp);
        free(hs);
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

/* The header lines of x->msg into evhttp's list. */
static bool evhttp_headers(exchange *x, struct evkeyvalq *out)
{
    char *copy = malloc(x->hdrs_len + 1);
    if (copy == NULL) return false;
    memcpy(copy, x->msg.p + x->hdrs_off, x->hdrs_len);
    copy[x->hdrs_len] = '\0';
    bool ok = true;
    for (char *line = copy; ok && *line;) {
        char *eol = strstr(line, "\r\n");
        char *colon = strstr(line, ": ");
        if (eol == NULL || colon == NULL || colon > eol) break; /* built by proxy.c: cannot happen */
        *eol = '\0';
        *colon = '\0';
        ok = evhttp_add_header(out, line, colon + 2) == 0;
        line = eol + 2;
    }
    free(copy);
    return ok;
}

/* Send x's request on a pooled evhttp connection. false: nothing is in
 * flight and the caller answers. */
static bool dispatch_evhttp(exchange *x)
{
    pc_request *r = x->r;
    char *target = malloc(x->target_len + 1);
    pc_gw_upconn *uc = target ? pc_gw_upconn_get(pc_request_base(r), x->rt->up) : NULL;
    struct evhttp_request *u = uc ? evhttp_request_new(on_done, x) : NULL;
    if (u == NULL) {
        free(target);
        return false;
    }
    memcpy(target, x->msg.p + x->target_off, x->target_len);
    target[x->target_len] = '\0';
    evhttp_request_set_error_cb(u, on_error);
    const pc_http_req *h = pc_request_http(r);
    if (!evhttp_headers(x, evhttp_request_get_output_headers(u)) ||
        (h->body_len && evbuffer_add(evhttp_request_get_output_buffer(u), h->body, h->body_len) != 0)) {
        evhttp_request_free(u);
        free(target);
        return false;
    }
    x->reused = pc_gw_upconn_reused(uc);
    x->have_error = false;
    struct evhttp_connection *evcon = pc_gw_upconn_evcon(uc);
    evhttp_connection_set_max_body_size(evcon, (ev_ssize_t)pc_request_config(r)->limits.max_body_bytes);
    x->uc = uc;
    x->ureq = u;
    x->in_make = true;
    int rc = evhttp_make_request(evcon, u, x->type, target);
    x->in_make = false;
    free(target);
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

/* ---- both ------------------------------------------------------------------------- */

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    exchange *x = arg;
    if (x->retry_pending) {
        x->retry_pending = false;
        int64_t left = x->deadline_ms - pc_gw_mono_ms();
        if (left > 0 && dispatch_evhttp(x)) {
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
    /* Not inside an upstream callback, so cancelling is allowed; the
     * request's callbacks will not run. */
    pc_gw_up_cancel(&x->q);
    if (x->ureq) evhttp_cancel_request(x->ureq);
    if (x->uc) pc_gw_upconn_done(x->uc, false);
    x->uc = NULL;
    x->ureq = NULL;
    if (x->connect_timer) evtimer_del(x->connect_timer);
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
    pc_gw_up_cancel(&x->q);
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

static void put_uint(pc_gw_buf *b, size_t v)
{
    char tmp[24];
    char *p = tmp + sizeof tmp;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    pc_gw_buf_add(b, p, (size_t)(tmp + sizeof tmp - p));
}

/* The request as bytes: "METHOD base+target HTTP/1.1", the headers of
 * proxy.c, Content-Length, the body. */
static bool build_request(exchange *x, const pc_http_req *h)
{
    pc_gw_buf *b = &x->msg;
    const char *base = x->rt->up->base_path;
    size_t blen = strlen(base);
    pc_gw_buf_add(b, h->method.ptr, h->method.len);
    pc_gw_buf_add(b, " ", 1);
    x->target_off = b->len;
    pc_gw_buf_add(b, base, blen);
    pc_gw_buf_add(b, h->target.ptr, h->target.len);
    x->target_len = b->len - x->target_off;
    pc_gw_buf_add(b, " HTTP/1.1\r\n", 11);
    x->hdrs_off = b->len;
    pc_gw_build_upstream_headers(x->r, x->rt, &x->id, x->iid, b);
    x->hdrs_len = b->len - x->hdrs_off;
    /* RFC 9110 §8.6: a body's length, and 0 for a method that expects
     * one (evhttp did the same). */
    if (h->body_len || x->type == EVHTTP_REQ_POST || x->type == EVHTTP_REQ_PUT ||
        x->type == EVHTTP_REQ_PATCH) {
        pc_gw_buf_add(b, "Content-Length: ", 16);
        put_uint(b, h->body_len);
        pc_gw_buf_add(b, "\r\n", 2);
    }
    pc_gw_buf_add(b, "\r\n", 2);
    if (h->body_len) pc_gw_buf_add(b, h->body, h->body_len);
    return !b->oom;
}

void pc_gw_exchange_start(pc_request *r, const pc_gw_route *rt, const pc_gw_identity *id,
                          const char *iid)
{
    const pc_http_req *h = pc_request_http(r);
    enum evhttp_cmd_type type;
    if (!method_type(h->method, &type) || strlen(rt->up->base_path) + h->target.len >= PC_GW_MAX_TARGET) {
        pc_gw_respond_problem(r, iid, 501, "method_not_proxied", "this method is not proxied");
        return;
    }
    exchange *x = calloc(1, sizeof *x);
    if (x == NULL) {
        pc_gw_respond_problem(r, iid, 502, "upstream_pool", "out of memory");
        return;
    }
    x->type = type;
    x->r = r;
    x->rt = rt;
    x->id = *id;
    x->id.claims = json_incref(id->claims); /* the borrowed strings stay valid */
    size_t il = strnlen(iid, sizeof x->iid - 1);
    memcpy(x->iid, iid, il);
    x->iid[il] = '\0';
    x->deadline_ms = pc_gw_mono_ms() + rt->timeout_ms;
    x->timer = evtimer_new(pc_request_base(r), on_timer, x);
    bool https = rt->up->https;
    if (https) x->connect_timer = evtimer_new(pc_request_base(r), on_connect_timer, x);
    bool ok = x->timer != NULL && (!https || x->connect_timer != NULL) && build_request(x, h);
    if (ok && !https) {
        x->q.msg = x->msg.p;
        x->q.msg_len = x->msg.len;
        x->q.max_body = pc_request_config(r)->limits.max_body_bytes;
        x->q.head = type == EVHTTP_REQ_HEAD;
        x->q.done = on_raw_done;
        ok = pc_gw_up_send(pc_request_base(r), rt->up, &x->q);
    } else if (ok) {
        ok = dispatch_evhttp(x);
    }
    if (!ok) {
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
