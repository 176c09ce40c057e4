/* One client connection: TLS on non-blocking OpenSSL driven straight from
 * libevent (PERF-NOTES: faster than bufferevent_openssl), HTTP/1.1
 * keep-alive with pipelining answered in order.
 *
 * conn_run() drives the state machine until it has to wait, then sets the
 * event interest for what it waits on. Every event callback ends up there,
 * and a connection is freed only at the end of conn_run, so no code below
 * it touches a freed connection. */
#include "core/log.h"
#include "net/internal.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Extra room in the input buffer beyond the head limit, for reading body
 * and pipelined bytes. */
#define READ_CHUNK 16384u

static void conn_run(pc_conn *c);

static void log_conn_event(pc_conn *c, pc_log_level level, const char *event, const char *detail)
{
    pc_logline l;
    if (!pc_log_begin(&l, level, event)) return;
    pc_log_uint(&l, "conn", c->id);
    pc_log_cstr(&l, "peer", c->peer_str);
    if (detail) pc_log_cstr(&l, "detail", detail);
    pc_log_end(&l);
}

static void arm_timer(pc_conn *c, const struct timeval *tv) { evtimer_add(c->ev_timer, tv); }

static void set_interest(pc_conn *c, bool want_read, bool want_write)
{
    if (want_read != c->read_armed) {
        if (want_read)
            event_add(c->ev_read, NULL);
        else
            event_del(c->ev_read);
        c->read_armed = want_read;
    }
    if (want_write != c->write_armed) {
        if (want_write)
            event_add(c->ev_write, NULL);
        else
            event_del(c->ev_write);
        c->write_armed = want_write;
    }
}

static void conn_free(pc_conn *c)
{
    pc_worker *w = c->w;
    if (c->req.abort) {
        /* A handler still owns the request: tell it, once, before the
         * connection and the request go away. */
        void (*abort)(void *) = c->req.abort;
        c->req.abort = NULL;
        abort(c->req.abort_arg);
    }
    if (c->ev_read) event_free(c->ev_read);
    if (c->ev_write) event_free(c->ev_write);
    if (c->ev_timer) event_free(c->ev_timer);
    if (c->ssl) {
        /* A best-effort close_notify: never wait for the peer's. */
        if (SSL_is_init_finished(c->ssl)) SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
    }
    ERR_clear_error();
    if (c->fd >= 0) close(c->fd);
    if (c->counted) pc_connlimit_release(w->srv->connlimit, &c->ip);
    if (c->refuse_status) atomic_fetch_sub(&w->srv->n_refusing, 1);
    pc_tls_peer_clear(&c->peer);
    if (c->rx_ready) pc_http_rx_free(&c->rx);
    pc_spares_give(&w->spare_in, c->in, c->in_block);
    pc_spares_give(&w->spare_out, c->out, c->out_cap);
    free(c->req.hdrs);
    free(c->log_fields);
    if (c->rt) pc_runtime_unref(c->rt);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    w->n_conns--;
    free(c);
    if (w->draining && w->n_conns == 0) event_base_loopexit(w->base, NULL);
}

/* The input block: the bytes (in_cap of them), then, 16-aligned, the
 * request's header index. Both are lent together (spares.c), so an idle
 * connection holds neither. */
static size_t index_offset(size_t in_cap) { return (in_cap + 15) & ~(size_t)15; }

static void lend_header_index(pc_conn *c)
{
    pc_http_rx_lend_headers(&c->rx, c->in ? (pc_header *)(void *)(c->in + index_offset(c->in_cap)) : NULL);
}

/* Size the input block and make the parser from the connection's runtime.
 * The block itself is taken when there is something to read and given back
 * while the connection is idle (see finish_request): 10,000 idle
 * keep-alive connections must not hold 34 KiB each. */
static bool conn_buffers(pc_conn *c)
{
    const pc_limits_config *lim = &c->rt->cfg->limits;
    size_t cap = (size_t)lim->max_header_bytes + READ_CHUNK;
    if (cap < c->in_len) cap = c->in_len; /* keep pipelined bytes */
    size_t block = index_offset(cap) + (size_t)lim->max_header_count * sizeof(pc_header);
    if (c->in != NULL) {
        char *in = realloc(c->in, block);
        if (in == NULL) return false;
        c->in = in;
    }
    c->in_cap = cap;
    c->in_block = block;
    if (c->rx_ready) pc_http_rx_free(&c->rx);
    c->rx_ready = pc_ok(pc_http_rx_init_lent(&c->rx, lim));
    lend_header_index(c);
    return c->rx_ready;
}

/* Between requests, move to the worker's newest runtime (after a reload). */
static bool conn_refresh_runtime(pc_conn *c)
{
    if (c->rt == c->w->rt) return true;
    pc_runtime_unref(c->rt);
    c->rt = c->w->rt;
    pc_runtime_ref(c->rt);
    return conn_buffers(c);
}

static void on_event(evutil_socket_t fd, short what, void *arg);
static void on_timer(evutil_socket_t fd, short what, void *arg);

void pc_conn_accept(pc_worker *w, int fd, const struct sockaddr *sa, socklen_t salen)
{
    pc_server *srv = w->srv;
    const pc_limits_config *lim = &w->rt->cfg->limits;
    pc_conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        close(fd);
        return;
    }
    c->fd = fd;
    c->w = w;
    c->id = atomic_fetch_add(&srv->conn_ids, 1) + 1;
    memcpy(&c->peer_addr, sa, salen < sizeof c->peer_addr ? salen : sizeof c->peer_addr);
    pc_ip_key_from_sockaddr(sa, &c->ip);
    char host[48] = "?";
    unsigned port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)sa;
        evutil_inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
        snprintf(c->peer_str, sizeof c->peer_str, "%s:%u", host, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const void *)sa;
        evutil_inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
        snprintf(c->peer_str, sizeof c->peer_str, "[%s]:%u", host, port);
    }
    snprintf(c->peer_ip, sizeof c->peer_ip, "%s", host);

    c->next = w->conns;
    if (w->conns) w->conns->prev = c;
    w->conns = c;
    w->n_conns++;

    pc_connlimit_verdict v =
        pc_connlimit_acquire(srv->connlimit, &c->ip, lim->max_connections, lim->max_connections_per_ip);
    if (v == PC_CONN_ADMIT) {
        c->counted = true;
    } else {
        const char *why = v == PC_CONN_OVER_TOTAL ? "max_connections" : "max_connections_per_ip";
        /* Answer a refused connection with a status, so the client knows
         * why, but only a few at a time: past that, refusing must stay
         * cheaper than serving. */
        if (atomic_fetch_add(&srv->n_refusing, 1) >= PC_MAX_REFUSING_CONNECTIONS) {
            atomic_fetch_sub(&srv->n_refusing, 1);
            log_conn_event(c, PC_LOG_WARN, "conn_refused", why);
            c->ssl = NULL;
            conn_free(c);
            return;
        }
        c->refuse_status = v == PC_CONN_OVER_TOTAL ? 503 : 429;
        c->req.error_reason = why;
        log_conn_event(c, PC_LOG_WARN, "conn_over_limit", why);
    }

    c->rt = w->rt;
    pc_runtime_ref(c->rt);
    c->ssl = SSL_new(c->rt->ssl_ctx);
    c->ev_read = event_new(w->base, fd, EV_READ | EV_PERSIST, on_event, c);
    c->ev_write = event_new(w->base, fd, EV_WRITE | EV_PERSIST, on_event, c);
    c->ev_timer = evtimer_new(w->base, on_timer, c);
    if (!c->ssl || !c->ev_read || !c->ev_write || !c->ev_timer || SSL_set_fd(c->ssl, fd) != 1 ||
        !conn_buffers(c)) {
        log_conn_event(c, PC_LOG_ERROR, "conn_setup_failed", "out of memory");
        conn_free(c);
        return;
    }
    SSL_set_accept_state(c->ssl);
    c->state = CONN_HANDSHAKE;
    /* The header timeout covers the handshake and the first request's head. */
    arm_timer(c, w->tv_header);
    conn_run(c);
}

/* ---- response path ------------------------------------------------------ */

/* The fields of an access line that are the connection's. */
static void conn_log_fields(pc_conn *c, pc_logline *l)
{
    pc_log_uint(l, "conn", c->id);
    pc_log_cstr(l, "peer", c->peer_str);
    if (c->peer.present) {
        pc_log_cstr(l, "client_subject", c->peer.subject);
        pc_log_cstr(l, "client_x5t#S256", c->peer.x5t_s256);
        pc_log_bool(l, "client_ca_verified", c->peer.ca_verified);
    }
}

static void access_log(pc_conn *c)
{
    pc_request *r = &c->req;
    pc_logline l;
    if (!c->rt->cfg->access_log || !pc_log_access_begin(&l)) return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t us = (int64_t)(now.tv_sec - r->start.tv_sec) * 1000000 +
                 (now.tv_nsec - r->start.tv_nsec) / 1000;
    const pc_http_req *h = &c->rx.req;
    pc_log_cstr(&l, "req", r->id);
    if (h->method.len) pc_log_str(&l, "method", h->method);
    /* The path only: a query string may carry secrets (and FAPI forbids
     * tokens there, so one that does is an attack we must not store). */
    if (h->path.len) pc_log_str(&l, "path", h->path);
    pc_log_cstr(&l, "route", r->match.template);
    pc_log_int(&l, "status", r->status);
    pc_log_uint(&l, "bytes", r->resp_body_bytes);
    pc_log_millis(&l, "latency_ms", us > 0 ? (uint64_t)us : 0);
    if (c->log_fields == NULL && SSL_is_init_finished(c->ssl)) {
        /* Rendered once per connection (after the handshake, when the
         * client certificate is known), copied into each line after. */
        pc_logline f;
        pc_log_fragment_begin(&f);
        conn_log_fields(c, &f);
        c->log_fields = pc_log_fragment_take(&f, &c->log_fields_len);
    }
    if (c->log_fields != NULL)
        pc_log_fragment(&l, c->log_fields, c->log_fields_len);
    else
        conn_log_fields(c, &l);
    if (r->error_reason) pc_log_cstr(&l, "reason", r->error_reason);
    pc_log_end(&l);
}

static void request_begin(pc_conn *c)
{
    pc_worker *w = c->w;
    pc_request *r = &c->req;
    const char *reason = r->error_reason; /* a refusal decided at accept */
    char *hdrs = r->hdrs;                 /* the header buffer is reused */
    size_t hdrs_cap = r->hdrs_cap;
    memset(r, 0, sizeof *r);
    r->c = c;
    r->error_reason = reason;
    r->hdrs = hdrs;
    r->hdrs_cap = hdrs_cap;
    /* 12 hex digits of worker prefix, then 12 of the sequence number. */
    static const char hex[] = "0123456789abcdef";
    uint64_t seq = ++w->req_seq;
    memcpy(r->id, w->req_prefix, 12);
    for (int i = 23; i >= 12; i--, seq >>= 4) r->id[i] = hex[seq & 15];
    r->id[24] = '\0';
    clock_gettime(CLOCK_MONOTONIC, &r->start);
}

/* Called by pc_respond once c->out holds the response. */
static void response_ready(pc_conn *c)
{
    c->state = CONN_WRITING;
    if (!c->in_run) conn_run(c);
}

void pc_response_header(pc_request *r, const char *name, pc_str value)
{
    size_t nlen = strlen(name);
    bool ok = nlen > 0;
    for (size_t i = 0; i < nlen && ok; i++) ok = name[i] > 32 && name[i] < 127 && name[i] != ':';
    ok = ok && pc_field_value_ok(value);
    size_t need = r->hdrs_len + nlen + value.len + 4;
    if (ok && need > r->hdrs_cap && need <= PC_MAX_RESPONSE_HEADER_BYTES) {
        size_t cap = r->hdrs_cap ? r->hdrs_cap : 512;
        while (cap < need) cap *= 2;
        if (cap > PC_MAX_RESPONSE_HEADER_BYTES) cap = PC_MAX_RESPONSE_HEADER_BYTES;
        char *h = realloc(r->hdrs, cap);
        if (h) {
            r->hdrs = h;
            r->hdrs_cap = cap;
        }
    }
    if (!ok || need > r->hdrs_cap) {
        /* Never let a value split the response, nor drop a header
         * silently: refuse the whole answer. */
        r->hdrs_bad = true;
        return;
    }
    memcpy(r->hdrs + r->hdrs_len, name, nlen);
    r->hdrs_len += nlen;
    memcpy(r->hdrs + r->hdrs_len, ": ", 2);
    r->hdrs_len += 2;
    if (value.len) memcpy(r->hdrs + r->hdrs_len, value.ptr, value.len);
    r->hdrs_len += value.len;
    memcpy(r->hdrs + r->hdrs_len, "\r\n", 2);
    r->hdrs_len += 2;
}

void pc_respond(pc_request *r, int status, const char *content_type, const char *body, size_t len)
{
    pc_conn *c = r->c;
    r->abort = NULL; /* answered: nothing left to abort */
    if (r->hdrs_bad) {
        r->hdrs_len = 0;
        r->hdrs_bad = false;
        r->error_reason = "unsafe_response_header";
        pc_respond_problem(r, 500, "the handler produced an unsafe response header");
        return;
    }
    r->status = status;
    r->resp_body_bytes = c->rx.req.is_head ? 0 : len;
    pc_response_build(c, status, content_type, body, len, c->rx.req.is_head);
    response_ready(c);
}

/* FAPI resource-server tests expect x-fapi-interaction-id on every answer:
 * the gateway sets it on what it answers, and the core does on the
 * refusals it makes before a handler runs (bad requests, limits, 404/405).
 * A client's own id is echoed if it is a plausible one (1-64 of
 * [A-Za-z0-9-], as the gateway accepts); otherwise a UUID v4 is made. */
static void interaction_id(pc_conn *c)
{
    pc_str v = PC_STR_NULL;
    if (pc_http_rx_headers_done(&c->rx)) v = pc_http_header(&c->rx.req, "x-fapi-interaction-id");
    bool ok = v.ptr != NULL && v.len > 0 && v.len <= 64;
    for (size_t i = 0; ok && i < v.len; i++) {
        char ch = v.ptr[i];
        ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
             ch == '-';
    }
    if (ok) {
        pc_response_header(&c->req, "x-fapi-interaction-id", v);
        return;
    }
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1) return;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 (RFC 9562 §5.4) */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* variant 10 */
    static const char hex[] = "0123456789abcdef";
    char u[37];
    size_t o = 0;
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) u[o++] = '-';
        u[o++] = hex[b[i] >> 4];
        u[o++] = hex[b[i] & 15];
    }
    pc_response_header(&c->req, "x-fapi-interaction-id", (pc_str){u, o});
}

static void respond_error(pc_conn *c, int status, const char *reason, const char *detail)
{
    /* Every refusal leaves a warn-level record, whatever the access log
     * level: these are what an operator looks for after an attack. */
    pc_logline l;
    if (pc_log_begin(&l, PC_LOG_WARN, "request_refused")) {
        pc_log_cstr(&l, "req", c->req.id);
        pc_log_uint(&l, "conn", c->id);
        pc_log_cstr(&l, "peer", c->peer_str);
        pc_log_int(&l, "status", status);
        pc_log_cstr(&l, "reason", reason);
        pc_log_end(&l);
    }
    /* After a protocol error the byte stream can no longer be trusted to
     * frame another request: always close (RFC 9112 §9.6). */
    c->close_after = true;
    c->req.error_reason = reason;
    interaction_id(c);
    if (status == 405 && c->req.match.allow[0])
        pc_response_header(&c->req, "Allow", pc_str_c(c->req.match.allow));
    pc_respond_problem(&c->req, status, detail);
}

/* ---- request path ------------------------------------------------------- */

static const char *limit_detail(pc_conn *c, int status, char *buf, size_t n)
{
    const pc_limits_config *lim = &c->rt->cfg->limits;
    switch (status) {
    case 431:
        if (c->rx.error_reason && strcmp(c->rx.error_reason, "header_count") == 0)
            snprintf(buf, n, "more than %u header fields (server.limits.header_count)",
                     lim->max_header_count);
        else
            snprintf(buf, n, "request line and headers exceed %u bytes (server.limits.header_bytes)",
                     lim->max_header_bytes);
        return buf;
    case 413:
        snprintf(buf, n, "request body exceeds %u bytes (server.limits.body_bytes)",
                 lim->max_body_bytes);
        return buf;
    default:
        snprintf(buf, n, "malformed request: %s", c->rx.error_reason ? c->rx.error_reason : "?");
        return buf;
    }
}

static void dispatch(pc_conn *c)
{
    pc_request *r = &c->req;
    const pc_http_req *h = &c->rx.req;
    if (!h->keep_alive || c->w->draining ||
        ++c->n_requests >= c->rt->cfg->limits.max_requests_per_connection)
        c->close_after = true;
    if (c->refuse_status) {
        respond_error(c, c->refuse_status, r->error_reason,
                      c->refuse_status == 503 ? "the server is at its connection limit "
                                                "(server.limits.max_connections)"
                                              : "too many connections from your address "
                                                "(server.limits.max_connections_per_ip)");
        return;
    }
    if (!pc_http_path_is_safe(h->path)) {
        respond_error(c, 400, "unsafe_path",
                      "the path has a dot segment or an encoded '/', '\\' or NUL");
        return;
    }
    switch (pc_router_match(c->rt->router, h->method, h->path, &r->match)) {
    case PC_ROUTE_FOUND:
        break;
    case PC_ROUTE_METHOD_NOT_ALLOWED:
        r->error_reason = "method_not_allowed";
        interaction_id(c);
        pc_response_header(r, "Allow", pc_str_c(r->match.allow));
        pc_respond_problem(r, 405, "this path does not accept this method");
        return;
    default:
        r->error_reason = "no_route";
        interaction_id(c);
        pc_respond_problem(r, 404, "no route matches this path");
        return;
    }
    r->handler = r->match.handler_data;
    c->state = CONN_HANDLING;
    r->handler->fn(r, r->handler->data);
}

/* Read and parse until a request is complete (dispatched) or we must wait.
 * Returns false when conn_run should stop and wait for an event. */
static bool read_step(pc_conn *c)
{
    pc_worker *w = c->w;
    for (;;) {
        if (c->parse_off < c->in_len) {
            size_t used = 0;
            bool was_started = pc_http_rx_started(&c->rx);
            pc_http_status st =
                pc_http_rx_feed(&c->rx, c->in + c->parse_off, c->in_len - c->parse_off, &used);
            c->parse_off += used;
            bool arm_header = false;
            if (!was_started && pc_http_rx_started(&c->rx) && !c->request_started) {
                c->request_started = true;
                request_begin(c);
                /* The first request's head shares the timer armed at
                 * accept, so a slow handshake does not buy a second window.
                 * Armed below, only if the head is not complete already
                 * (the common case is a whole request in one read). */
                arm_header = c->n_requests > 0;
            }
            if (st == PC_HTTP_REQUEST) {
                if (!c->request_started) request_begin(c);
                evtimer_del(c->ev_timer);
                dispatch(c);
                return true;
            }
            if (st == PC_HTTP_ERROR) {
                char detail[160];
                int status = c->rx.error_status;
                if (!c->request_started) request_begin(c);
                evtimer_del(c->ev_timer);
                respond_error(c, status, c->rx.error_reason,
                              limit_detail(c, status, detail, sizeof detail));
                return true;
            }
            if (arm_header) arm_timer(c, w->tv_header);
            if (pc_http_rx_headers_done(&c->rx)) {
                /* Body bytes were copied out by the parser: drop them so
                 * the buffer holds only the head. */
                c->in_len = c->parse_off;
                arm_timer(c, w->tv_body);
                if (c->rx.expect_continue && !c->sent_continue) {
                    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                    c->sent_continue = true;
                    /* Tiny and before any response bytes: if it cannot be
                     * written at once the client simply sends the body
                     * after its own timeout (RFC 9110 §10.1.1). */
                    (void)SSL_write(c->ssl, cont, (int)sizeof cont - 1);
                    ERR_clear_error();
                }
            }
        }
        if (c->parse_off == c->in_len && c->responded && !SSL_has_pending(c->ssl)) {
            /* Right after a response with nothing buffered, the client is
             * most likely waiting for it: skip the read(2) that would only
             * say EAGAIN and let the (level-triggered) event tell us. */
            c->responded = false;
            set_interest(c, true, false);
            return false;
        }
        c->responded = false;
        if (c->in_len == c->in_cap) {
            /* Cannot happen while the head limit is below the buffer size;
             * refuse rather than spin. */
            c->rx.error_reason = "buffer_full";
            respond_error(c, 431, "buffer_full", "request head too large");
            return true;
        }
        /* Between requests with nothing buffered: a connection that sat
         * idle across a reload reads its next request under the newest
         * runtime (finish_request moved it to the runtime of that moment,
         * which may since have been replaced). Without this, every idle
         * keep-alive connection would serve one more request under the
         * old config: a client or route a reload removed included. */
        if (c->in_len == 0 && !c->request_started && !pc_http_rx_started(&c->rx) &&
            !conn_refresh_runtime(c)) {
            c->state = CONN_CLOSING;
            return true;
        }
        if (c->in == NULL) {
            if ((c->in = pc_spares_take(&c->w->spare_in, c->in_block)) == NULL) {
                c->state = CONN_CLOSING; /* out of memory: drop, do not half-answer */
                return true;
            }
            lend_header_index(c);
        }
        int n = SSL_read(c->ssl, c->in + c->in_len, (int)(c->in_cap - c->in_len));
        if (n > 0) {
            c->in_len += (size_t)n;
            continue;
        }
        int err = SSL_get_error(c->ssl, n);
        if (err == SSL_ERROR_WANT_READ) {
            set_interest(c, true, false);
            return false;
        }
        if (err == SSL_ERROR_WANT_WRITE) {
            set_interest(c, false, true);
            return false;
        }
        /* Clean close, reset or TLS error: nothing to answer. */
        if (pc_http_rx_started(&c->rx))
            log_conn_event(c, PC_LOG_INFO, "conn_closed_mid_request",
                           err == SSL_ERROR_ZERO_RETURN ? "close_notify" : "eof_or_error");
        ERR_clear_error();
        c->state = CONN_CLOSING;
        return true;
    }
}

static void finish_request(pc_conn *c)
{
    access_log(c);
    c->out_len = c->out_off = 0;
    if (c->close_after || c->w->draining) {
        c->state = CONN_CLOSING;
        return;
    }
    /* Keep pipelined bytes: move them to the front for the next request.
     * With none, give the buffers back while the connection idles. */
    size_t rest = c->in_len - c->parse_off;
    if (rest) {
        memmove(c->in, c->in + c->parse_off, rest);
    } else {
        pc_spares_give(&c->w->spare_in, c->in, c->in_block);
        c->in = NULL;
        lend_header_index(c); /* none while idle */
        pc_spares_give(&c->w->spare_out, c->out, c->out_cap);
        c->out = NULL;
        c->out_cap = 0;
        /* Small (512 B to start): glibc's per-thread cache makes taking
         * one again cheap, and idle connections hold none. */
        free(c->req.hdrs);
        c->req.hdrs = NULL;
        c->req.hdrs_cap = 0;
    }
    c->in_len = rest;
    c->parse_off = 0;
    pc_http_rx_reset(&c->rx);
    c->sent_continue = false;
    c->request_started = false;
    c->req.error_reason = NULL;
    if (!conn_refresh_runtime(c)) {
        c->state = CONN_CLOSING;
        return;
    }
    c->state = CONN_READING;
    c->responded = true;
    arm_timer(c, c->w->tv_idle);
}

static bool write_step(pc_conn *c)
{
    while (c->out_off < c->out_len) {
        int n = SSL_write(c->ssl, c->out + c->out_off, (int)(c->out_len - c->out_off));
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        int err = SSL_get_error(c->ssl, n);
        if (err == SSL_ERROR_WANT_WRITE) {
            /* A client that does not read its response gets the body
             * timeout, not forever. */
            arm_timer(c, c->w->tv_body);
            set_interest(c, false, true);
            return false;
        }
        if (err == SSL_ERROR_WANT_READ) {
            set_interest(c, true, false);
            return false;
        }
        ERR_clear_error();
        c->state = CONN_CLOSING;
        return true;
    }
    finish_request(c);
    return true;
}

static bool handshake_step(pc_conn *c)
{
    int n = SSL_do_handshake(c->ssl);
    if (n == 1) {
        if (!pc_ok(pc_tls_peer_load(c->ssl, &c->peer))) {
            log_conn_event(c, PC_LOG_ERROR, "peer_cert_unreadable", pc_errmsg());
            c->state = CONN_CLOSING;
            return true;
        }
        c->state = CONN_READING;
        return true;
    }
    int err = SSL_get_error(c->ssl, n);
    if (err == SSL_ERROR_WANT_READ) {
        set_interest(c, true, false);
        return false;
    }
    if (err == SSL_ERROR_WANT_WRITE) {
        set_interest(c, false, true);
        return false;
    }
    if (pc_log_enabled(PC_LOG_INFO)) {
        char detail[200] = "connection closed";
        unsigned long e = ERR_peek_error();
        if (e) ERR_error_string_n(e, detail, sizeof detail);
        long vr = SSL_get_verify_result(c->ssl);
        pc_logline l;
        if (pc_log_begin(&l, PC_LOG_INFO, "tls_handshake_failed")) {
            pc_log_uint(&l, "conn", c->id);
            pc_log_cstr(&l, "peer", c->peer_str);
            pc_log_cstr(&l, "detail", detail);
            if (vr != X509_V_OK) pc_log_cstr(&l, "verify", X509_verify_cert_error_string(vr));
            pc_log_end(&l);
        }
    }
    ERR_clear_error();
    c->state = CONN_CLOSING;
    return true;
}

static void conn_run(pc_conn *c)
{
    c->in_run = true;
    for (;;) {
        bool go_on;
        switch (c->state) {
        case CONN_HANDSHAKE:
            go_on = handshake_step(c);
            break;
        case CONN_READING:
            go_on = read_step(c);
            break;
        case CONN_WRITING:
            go_on = write_step(c);
            break;
        case CONN_HANDLING:
            /* The handler answers later. Reading stops meanwhile, so that
             * pipelined bytes wait in the socket, but lazily: the read
             * event is removed only if it fires (on_event), which saves
             * two epoll_ctl calls per proxied request. */
            if (c->write_armed) set_interest(c, c->read_armed, false);
            go_on = false;
            break;
        case CONN_CLOSING:
            conn_free(c);
            return;
        default:
            pc_fatal("connection %llu in impossible state %d", (unsigned long long)c->id,
                     (int)c->state);
        }
        if (!go_on) break;
    }
    c->in_run = false;
}

static void on_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    pc_conn *c = arg;
    if (c->state == CONN_HANDLING) {
        /* Bytes arrived while a handler owns the request: stop listening
         * until it answers (see CONN_HANDLING in conn_run). */
        if (what & EV_READ) set_interest(c, false, c->write_armed);
        return;
    }
    conn_run(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pc_conn *c = arg;
    /* Responding below must not run the connection from inside this
     * callback's switch: conn_run at the end does it once. */
    c->in_run = true;
    switch (c->state) {
    case CONN_HANDSHAKE:
        log_conn_event(c, PC_LOG_INFO, "handshake_timeout", NULL);
        c->state = CONN_CLOSING;
        break;
    case CONN_READING:
        if (pc_http_rx_headers_done(&c->rx) || pc_http_rx_started(&c->rx) || c->n_requests == 0) {
            /* Slowloris: a head (or body) that does not arrive in time. */
            if (!c->request_started) request_begin(c);
            const char *reason = pc_http_rx_headers_done(&c->rx) ? "body_timeout" : "header_timeout";
            respond_error(c, 408, reason,
                          pc_http_rx_headers_done(&c->rx)
                              ? "the request body did not arrive in time (server.limits.body_timeout)"
                              : "the request head did not arrive in time (server.limits.header_timeout)");
        } else {
            log_conn_event(c, PC_LOG_DEBUG, "idle_timeout", NULL);
            c->state = CONN_CLOSING;
        }
        break;
    case CONN_WRITING:
        log_conn_event(c, PC_LOG_INFO, "write_timeout", NULL);
        c->state = CONN_CLOSING;
        break;
    default:
        break;
    }
    c->in_run = false;
    conn_run(c);
}

void pc_conn_drain(pc_conn *c)
{
    /* Idle connections go at once; a request under way finishes, then its
     * connection closes (finish_request checks w->draining). */
    bool idle = c->state == CONN_HANDSHAKE ||
                (c->state == CONN_READING && !pc_http_rx_started(&c->rx));
    c->close_after = true;
    if (idle) pc_conn_close_now(c);
}

void pc_conn_close_now(pc_conn *c)
{
    c->state = CONN_CLOSING;
    if (!c->in_run) conn_run(c);
}
