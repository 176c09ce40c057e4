/* The handler of an upstream: route. It runs the route's checks, then
 * sends the request to the upstream over this worker's pool and answers
 * with the upstream's response, asynchronously:
 *
 *   handler -> checks (auth.c) -> evhttp request on a pooled connection
 *           -> done: copy status, filtered headers and body -> pc_respond
 *           -> error: 502 (refused, reset, bad response) / 504 (timeout)
 *           -> timer: cancel the upstream request, 504
 *           -> abort (client connection gone): cancel, free, touch nothing
 *
 * A refusal or a failure never carries upstream content: either the
 * upstream was not called, or we answer with our own problem+json. */
#include "core/log.h"
#include "gw/internal.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest upstream request-target we build (base path + target). */
#define PC_GW_MAX_TARGET 8192u

typedef struct exchange {
    pc_request *r;                 /* NULL once answered or aborted */
    const pc_gw_route *rt;
    pc_gw_upconn *uc;
    struct evhttp_request *ureq;   /* owned by evhttp until done/cancel */
    struct event *timer;
    enum evhttp_request_error error;
    bool have_error;
    bool in_make;                  /* inside evhttp_make_request */
    bool finished;                 /* a callback ran during make */
    char iid[PC_GW_MAX_INTERACTION_ID + 1];
} exchange;

static void exchange_free(exchange *x)
{
    if (x->timer) event_free(x->timer);
    free(x);
}

static void respond_problem(pc_request *r, const char *iid, int status, const char *reason,
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

/* ---- the upstream's answer -------------------------------------------------------- */

static bool header_safe(const char *v)
{
    for (; *v; v++)
        if ((unsigned char)*v < 0x20 && *v != '\t') return false;
    return true;
}

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
    if (*ctype && !header_safe(*ctype)) return false;
    for (int pass = 0; pass < 2; pass++) {
        for (struct evkeyval *kv = in->tqh_first; kv; kv = kv->next.tqe_next) {
            pc_str name = pc_str_c(kv->key);
            if (!pc_gw_forward_response_header(name, connection)) continue;
            if (pass == 1) {
                pc_response_header(r, kv->key, pc_str_c(kv->value));
                continue;
            }
            used += name.len + strlen(kv->value) + 4;
            if (used > PC_GW_MAX_RESPONSE_HEADER_BYTES || !header_safe(kv->value)) return false;
        }
    }
    return true;
}

static void finish(exchange *x, struct evhttp_request *u)
{
    pc_request *r = x->r;
    char iid[sizeof x->iid];
    memcpy(iid, x->iid, sizeof iid);
    int code = u ? evhttp_request_get_response_code(u) : 0;
    bool ok = u != NULL && code >= 200 && code <= 599;
    pc_gw_upconn_done(x->uc, ok);
    pc_request_set_abort(r, NULL, NULL);
    x->r = NULL;
    if (!ok) {
        bool timeout = x->have_error && x->error == EVREQ_HTTP_TIMEOUT;
        bool too_long = x->have_error && x->error == EVREQ_HTTP_DATA_TOO_LONG;
        if (!x->in_make) exchange_free(x);
        if (timeout)
            respond_problem(r, iid, 504, "upstream_timeout", "the upstream did not answer in time");
        else
            respond_problem(r, iid, 502, too_long ? "upstream_too_large" : "upstream_unreachable",
                            too_long ? "the upstream's response is too large"
                                     : "the upstream could not be reached or answered badly");
        return;
    }
    if (!x->in_make) exchange_free(x);
    const char *ctype = NULL;
    if (!copy_headers(r, u, &ctype)) {
        respond_problem(r, iid, 502, "upstream_headers", "the upstream's response headers are too large or unsafe");
        return;
    }
    struct evbuffer *body = evhttp_request_get_input_buffer(u);
    size_t len = evbuffer_get_length(body);
    const char *data = len ? (const char *)evbuffer_pullup(body, -1) : NULL;
    pc_response_header(r, "x-fapi-interaction-id", pc_str_c(iid));
    /* pc_respond copies the body before returning; evhttp frees u after
     * this callback. */
    pc_respond(r, code, ctype, data, data ? len : 0);
}

static void on_done(struct evhttp_request *u, void *arg)
{
    exchange *x = arg;
    if (x->in_make) x->finished = true;
    if (x->r == NULL) return; /* cannot happen: cancel suppresses callbacks */
    finish(x, u);
}

static void on_error(enum evhttp_request_error err, void *arg)
{
    exchange *x = arg;
    x->error = err;
    x->have_error = true;
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    exchange *x = arg;
    pc_request *r = x->r;
    char iid[sizeof x->iid];
    memcpy(iid, x->iid, sizeof iid);
    /* Not inside an evhttp callback, so cancelling is allowed; the
     * request's callbacks will not run. */
    evhttp_cancel_request(x->ureq);
    pc_gw_upconn_done(x->uc, false);
    pc_request_set_abort(r, NULL, NULL);
    exchange_free(x);
    respond_problem(r, iid, 504, "upstream_timeout", "the upstream did not answer in time");
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
    evhttp_cancel_request(x->ureq);
    pc_gw_upconn_done(x->uc, false);
    exchange_free(x);
}

/* ---- the request to the upstream ----------------------------------------------- */

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

static void add_header(struct evkeyvalq *h, const char *name, pc_str v)
{
    char buf[2048];
    if (v.len >= sizeof buf) return;
    memcpy(buf, v.ptr, v.len);
    buf[v.len] = '\0';
    /* evhttp refuses CR and LF itself; claims are signed by our AS, but a
     * header is still no place for control characters. */
    if (header_safe(buf)) evhttp_add_header(h, name, buf);
}

static void add_identity(struct evkeyvalq *out, const pc_gw_identity *id)
{
    if (id->client_id) add_header(out, "X-Portcullis-Client-Id", pc_str_c(id->client_id));
    if (id->sub) add_header(out, "X-Portcullis-Subject", pc_str_c(id->sub));
    if (id->claims) add_header(out, "X-Portcullis-Scope", pc_str_c(id->scope ? id->scope : ""));
    if (id->x5t[0]) add_header(out, "X-Portcullis-Cert-Thumbprint", pc_str_c(id->x5t));
}

static void build_headers(pc_request *r, const pc_gw_route *rt, const pc_gw_identity *id,
                          const char *iid, struct evkeyvalq *out)
{
    const pc_http_req *h = pc_request_http(r);
    pc_str connection = pc_http_header(h, "connection");
    pc_str cert_header = pc_str_c(rt->gw->cfg->gw.client_cert_header_name);
    for (size_t i = 0; i < h->n_headers; i++) {
        char name[256];
        pc_str n = h->headers[i].name;
        if (n.len >= sizeof name ||
            !pc_gw_forward_request_header(n, connection, cert_header, rt->rc->auth.enabled))
            continue;
        memcpy(name, n.ptr, n.len);
        name[n.len] = '\0';
        add_header(out, name, h->headers[i].value);
    }
    char host[300];
    const pc_upstream_config *up = rt->up;
    bool v6 = strchr(up->host, ':') != NULL;
    snprintf(host, sizeof host, "%s%s%s:%u", v6 ? "[" : "", up->host, v6 ? "]" : "",
             (unsigned)up->port);
    evhttp_add_header(out, "Host", host);
    add_header(out, "X-Forwarded-For", pc_str_c(pc_request_peer_ip(r)));
    evhttp_add_header(out, "X-Forwarded-Proto", "https");
    if (h->host.len) add_header(out, "X-Forwarded-Host", h->host);
    add_header(out, "X-Request-Id", pc_str_c(pc_request_id(r)));
    add_header(out, "x-fapi-interaction-id", pc_str_c(iid));
    add_identity(out, id);
}

static bool refuse_token_params(pc_request *r, const char *iid)
{
    const pc_http_req *h = pc_request_http(r);
    bool in_query = pc_gw_has_access_token_param(h->query);
    pc_str ct = pc_http_header(h, "content-type");
    bool form = ct.len >= 33 && pc_str_eq_lit_ci((pc_str){ct.ptr, 33}, "application/x-www-form-urlencoded");
    bool in_body = form && pc_gw_has_access_token_param((pc_str){h->body, h->body ? h->body_len : 0});
    if (!in_query && !in_body) return false;
    /* FAPI 2.0 §5.3.4-2: never in the query string (RFC 6750 §2.3), and
     * not in a form body either (§2.2): refused outright, never ignored,
     * so the client learns and the token is not half-accepted. */
    char buf[200];
    snprintf(buf, sizeof buf,
             "Bearer error=\"invalid_request\", error_description=\"access tokens are accepted "
             "only in the Authorization header\"");
    pc_response_header(r, "WWW-Authenticate", pc_str_c(buf));
    pc_response_header(r, "x-fapi-interaction-id", pc_str_c(iid));
    pc_response_header(r, "Cache-Control", PC_STR("no-store"));
    static const char body[] = "{\"error\":\"invalid_request\",\"error_description\":\"access "
                               "tokens are accepted only in the Authorization header\"}";
    pc_respond(r, 400, "application/json", body, sizeof body - 1);
    return true;
}

static void interaction_id(pc_request *r, char out[PC_GW_MAX_INTERACTION_ID + 1])
{
    pc_str v = pc_http_header(pc_request_http(r), "x-fapi-interaction-id");
    if (pc_gw_interaction_id_ok(v)) {
        memcpy(out, v.ptr, v.len);
        out[v.len] = '\0';
        return;
    }
    char uuid[PC_GW_UUID_BUF];
    pc_gw_uuid4(uuid);
    memcpy(out, uuid, sizeof uuid);
}

static void send_upstream(pc_request *r, const pc_gw_route *rt, const pc_gw_identity *id,
                          const char *iid)
{
    const pc_http_req *h = pc_request_http(r);
    enum evhttp_cmd_type type;
    char target[PC_GW_MAX_TARGET];
    int tn = snprintf(target, sizeof target, "%s%.*s", rt->up->base_path, (int)h->target.len,
                      h->target.ptr);
    if (!method_type(h->method, &type) || tn < 0 || (size_t)tn >= sizeof target) {
        respond_problem(r, iid, 501, "method_not_proxied", "this method is not proxied");
        return;
    }
    exchange *x = calloc(1, sizeof *x);
    pc_gw_upconn *uc = x ? pc_gw_upconn_get(pc_request_base(r), rt->up) : NULL;
    struct evhttp_request *u = uc ? evhttp_request_new(on_done, x) : NULL;
    if (x) x->timer = evtimer_new(pc_request_base(r), on_timeout, x);
    if (u == NULL || x->timer == NULL) {
        if (u) evhttp_request_free(u);
        if (x) exchange_free(x);
        respond_problem(r, iid, 502, "upstream_pool", "no connection to the upstream");
        return;
    }
    x->r = r;
    x->rt = rt;
    x->uc = uc;
    x->ureq = u;
    snprintf(x->iid, sizeof x->iid, "%s", iid);
    evhttp_request_set_error_cb(u, on_error);
    build_headers(r, rt, id, iid, evhttp_request_get_output_headers(u));
    if (h->body_len) evbuffer_add(evhttp_request_get_output_buffer(u), h->body, h->body_len);
    struct evhttp_connection *evcon = pc_gw_upconn_evcon(uc);
    evhttp_connection_set_max_body_size(evcon, (ev_ssize_t)pc_request_config(r)->limits.max_body_bytes);
    pc_request_set_abort(r, on_abort, x);
    x->in_make = true;
    int rc = evhttp_make_request(evcon, u, type, target);
    x->in_make = false;
    if (x->finished) {
        /* Failed at once and already answered (finish skipped the free). */
        exchange_free(x);
        return;
    }
    if (rc != 0) {
        /* evhttp did not take the request and did not call us back. */
        pc_gw_upconn_done(uc, false);
        pc_request_set_abort(r, NULL, NULL);
        exchange_free(x);
        respond_problem(r, iid, 502, "upstream_unreachable", "the upstream could not be reached");
        return;
    }
    uint32_t ms = rt->timeout_ms;
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000u), .tv_usec = (suseconds_t)(ms % 1000u) * 1000};
    evtimer_add(x->timer, &tv);
}

void pc_gw_handle(pc_request *r, void *data)
{
    const pc_gw_route *rt = data;
    char iid[PC_GW_MAX_INTERACTION_ID + 1];
    interaction_id(r, iid);
    if (refuse_token_params(r, iid)) return;
    pc_gw_identity id;
    memset(&id, 0, sizeof id);
    if (rt->rc->auth.enabled && !pc_gw_authorize(r, rt, &id, iid)) return;
    if (!rt->rc->auth.enabled) (void)pc_gw_client_x5t(r, rt->gw, id.x5t);
    send_upstream(r, rt, &id, iid);
    pc_gw_identity_clear(&id);
}
