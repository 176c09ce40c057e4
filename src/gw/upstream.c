/* Per-worker keep-alive pools of upstream connections: for http://
 * upstreams our own client on non-blocking sockets (below, "the raw
 * client"); for https:// ones, and for the JWKS fetcher, libevent's evhttp
 * client (https through bufferevent_openssl with the upstream's CA and a
 * host name check).
 *
 * A pool belongs to one worker thread and lives as long as the thread: it
 * is keyed by what makes connections interchangeable (URL, CA file,
 * timeouts), so a reload that keeps an upstream keeps its warm
 * connections. The pools are freed by a thread-specific-data destructor
 * when the worker thread ends, which is after its event loop stopped and
 * before the server frees the loop (net/server.c joins the threads first).
 *
 * A pool holds up to max_idle evhttp connection objects. Each carries one
 * exchange at a time; when all are busy, a new request queues on the least
 * loaded one (evhttp sends queued requests in order), and the request's
 * own timer bounds the wait.
 *
 * The raw client keeps up to max_idle sockets per pool. Each carries one
 * exchange at a time; when all are busy, requests wait in the pool's queue
 * (first come, first served) for the next one to come free. A socket's
 * read event stays armed from connect to close, so a keep-alive exchange
 * costs one send() and one or more read()s, and no epoll_ctl; an idle
 * socket the upstream closes is noticed at once and dropped. */
#include "core/log.h"
#include "gw/internal.h"

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The constants of the raw client's reader are in upparse.h. */

struct pc_gw_upconn {
    struct pc_gw_pool *pool;
    struct evhttp_connection *evcon; /* owned */
    unsigned inflight;
    bool dead;      /* failed or was cancelled: replace before reuse */
    bool proven;    /* completed an exchange: connect phase is over */
};

struct pc_gw_rawconn {
    struct pc_gw_pool *pool;
    int fd;                      /* -1: the slot is free */
    struct event *rev;           /* EV_READ|EV_PERSIST, from open to close */
    struct event *wev;           /* connect completion, the rest of a short send */
    struct event *ctimer;        /* connect_timeout */
    pc_gw_upreq *q;              /* in flight, or NULL */
    pc_gw_rawconn *inext, *iprev; /* the pool's idle list */
    bool idle;
    bool connecting;
    bool served;                 /* completed an exchange: keep-alive reuse */
    bool pending_err;            /* a failed connect or send, reported from the loop */
    int err;
    size_t out_off;              /* bytes of q->msg sent */
    pc_gw_upparse rd;            /* the answer (upparse.c) */
};

typedef struct pc_gw_pool {
    struct pc_gw_pool *next;
    char *key;                  /* owned: for logs */
    char *url, *ca_file, *cert_file; /* owned copies: what makes connections interchangeable */
    uint32_t connect_ms, timeout_ms;
    char *host;                 /* owned */
    uint16_t port;
    bool https;
    SSL_CTX *ssl_ctx;           /* owned; https only */
    struct event_base *base;    /* the worker's */
    struct timeval io_tv;
    uint32_t max_body;
    size_t n, cap;
    pc_gw_upconn *conns;        /* cap slots, n in use */
    /* The raw client (http:// only). */
    struct sockaddr_storage addr;
    socklen_t addr_len;         /* 0: not resolved yet */
    pc_gw_rawconn *raw;         /* cap slots, allocated on first use */
    size_t raw_open;            /* slots with a socket */
    pc_gw_rawconn *idle_head;   /* most recently used first */
    pc_gw_upreq *wait_head, *wait_tail;
} pc_gw_pool;

typedef struct worker_pools {
    pc_gw_pool *head;
} worker_pools;

static pthread_key_t pools_key;
static pthread_once_t pools_once = PTHREAD_ONCE_INIT;

static void raw_free(pc_gw_rawconn *c);

static void pool_free(pc_gw_pool *p)
{
    p->wait_head = p->wait_tail = NULL; /* none: every client connection is gone */
    for (size_t i = 0; p->raw && i < p->cap; i++) raw_free(&p->raw[i]);
    free(p->raw);
    for (size_t i = 0; i < p->n; i++)
        if (p->conns[i].evcon) evhttp_connection_free(p->conns[i].evcon);
    /* evhttp_connection_free cancels queued requests without callbacks;
     * none can be queued here: pools are freed only after the worker's
     * loop has stopped and every client connection is gone. */
    free(p->conns);
    SSL_CTX_free(p->ssl_ctx);
    free(p->key);
    free(p->url);
    free(p->ca_file);
    free(p->cert_file);
    free(p->host);
    free(p);
}

static void pools_destroy(void *arg)
{
    worker_pools *wp = arg;
    while (wp->head) {
        pc_gw_pool *p = wp->head;
        wp->head = p->next;
        pool_free(p);
    }
    free(wp);
}

static void pools_init(void) { (void)pthread_key_create(&pools_key, pools_destroy); }

static struct timeval tv_ms(uint32_t ms)
{
    return (struct timeval){.tv_sec = (time_t)(ms / 1000u), .tv_usec = (suseconds_t)(ms % 1000u) * 1000};
}

static SSL_CTX *client_ctx(const pc_upstream_config *up)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_load_verify_locations(ctx, up->ca_file, NULL) != 1) {
        pc_log_msg(PC_LOG_ERROR, "upstream_ca_failed", "upstream %s: cannot load ca %s",
                   up->name, up->ca_file);
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return NULL;
    }
    /* A client certificate, for an upstream that authenticates us by mTLS
     * (the remote AS's introspection endpoint, RFC 8705 §2). */
    if (up->cert_file && (SSL_CTX_use_certificate_chain_file(ctx, up->cert_file) != 1 ||
                          SSL_CTX_use_PrivateKey_file(ctx, up->key_file, SSL_FILETYPE_PEM) != 1 ||
                          SSL_CTX_check_private_key(ctx) != 1)) {
        pc_log_msg(PC_LOG_ERROR, "upstream_cert_failed", "upstream %s: cannot load cert %s / key %s",
                   up->name, up->cert_file, up->key_file);
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static void make_key(const pc_upstream_config *up, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s|%s|%s|%u|%u|%u", up->url, up->ca_file ? up->ca_file : "",
             up->cert_file ? up->cert_file : "",
             (unsigned)up->connect_timeout_ms, (unsigned)up->timeout_ms, (unsigned)up->max_idle);
}

static bool same_or_both_null(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool pool_matches(const pc_gw_pool *p, const pc_upstream_config *up)
{
    return p->connect_ms == up->connect_timeout_ms && p->timeout_ms == up->timeout_ms &&
           p->cap == up->max_idle && strcmp(p->url, up->url) == 0 &&
           same_or_both_null(p->ca_file, up->ca_file) && same_or_both_null(p->cert_file, up->cert_file);
}

static pc_gw_pool *pool_find(struct event_base *base, const pc_upstream_config *up)
{
    (void)pthread_once(&pools_once, pools_init);
    worker_pools *wp = pthread_getspecific(pools_key);
    if (wp == NULL) {
        wp = calloc(1, sizeof *wp);
        if (wp == NULL || pthread_setspecific(pools_key, wp) != 0) {
            free(wp);
            return NULL;
        }
    }
    /* The common case, the pool this upstream used last on this worker,
     * is found without formatting a key: compare the fields instead. */
    for (pc_gw_pool *p = wp->head; p; p = p->next)
        if (p->base == base && pool_matches(p, up)) return p;
    char key[2048];
    make_key(up, key, sizeof key);
    pc_gw_pool *p = calloc(1, sizeof *p);
    if (p == NULL) return NULL;
    p->key = strdup(key);
    p->url = strdup(up->url);
    p->ca_file = up->ca_file ? strdup(up->ca_file) : NULL;
    p->cert_file = up->cert_file ? strdup(up->cert_file) : NULL;
    p->connect_ms = up->connect_timeout_ms;
    p->timeout_ms = up->timeout_ms;
    p->host = strdup(up->host);
    p->port = up->port;
    p->https = up->https;
    p->base = base;
    p->io_tv = tv_ms(up->timeout_ms);
    p->cap = up->max_idle;
    p->conns = calloc(p->cap, sizeof *p->conns);
    if (p->https) p->ssl_ctx = client_ctx(up);
    if (!p->key || !p->url || !p->host || !p->conns || (up->ca_file && !p->ca_file) ||
        (up->cert_file && !p->cert_file) || (p->https && !p->ssl_ctx)) {
        pool_free(p);
        return NULL;
    }
    p->next = wp->head;
    wp->head = p;
    return p;
}

static struct evhttp_connection *open_https(pc_gw_pool *p)
{
    SSL *ssl = SSL_new(p->ssl_ctx);
    if (ssl == NULL) return NULL;
    /* RFC 9525 / RFC 6125: the certificate must name the host we dialled;
     * SNI so a shared front end picks the right certificate. */
    if (SSL_set1_host(ssl, p->host) != 1 || SSL_set_tlsext_host_name(ssl, p->host) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        p->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (bev == NULL) {
        SSL_free(ssl);
        return NULL;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    struct evhttp_connection *evcon =
        evhttp_connection_base_bufferevent_new(p->base, NULL, bev, p->host, p->port);
    if (evcon == NULL) bufferevent_free(bev);
    return evcon;
}

static bool open_conn(pc_gw_pool *p, pc_gw_upconn *uc)
{
    uc->pool = p;
    uc->inflight = 0;
    uc->dead = false;
    uc->proven = false;
    uc->evcon = p->https ? open_https(p) : evhttp_connection_base_new(p->base, NULL, p->host, p->port);
    if (uc->evcon == NULL) {
        /* Out of memory or descriptors: leave the slot for a later try. */
        uc->dead = true;
        return false;
    }
    /* The inactivity timeout is the upstream's; connecting is bounded by
     * the exchange's connect timer (exchange.c), the whole exchange by its
     * route timer. */
    evhttp_connection_set_timeout_tv(uc->evcon, &p->io_tv);
    evhttp_connection_set_retries(uc->evcon, 0);
    evhttp_connection_set_max_headers_size(uc->evcon, PC_GW_UPSTREAM_MAX_HEADERS);
    return true;
}

pc_gw_upconn *pc_gw_upconn_get(struct event_base *base, const pc_upstream_config *up)
{
    pc_gw_pool *p = pool_find(base, up);
    if (p == NULL) return NULL;
    pc_gw_upconn *best = NULL;
    for (size_t i = 0; i < p->n; i++) {
        pc_gw_upconn *uc = &p->conns[i];
        if (uc->dead && uc->inflight == 0) {
            /* A failed https connection cannot reconnect with its used SSL
             * object, and a failed http one has nothing worth keeping. */
            if (uc->evcon) evhttp_connection_free(uc->evcon);
            uc->evcon = NULL;
            if (!open_conn(p, uc)) return NULL;
        }
        if (uc->dead) continue;
        if (uc->inflight == 0) return uc;
        if (best == NULL || uc->inflight < best->inflight) best = uc;
    }
    if (p->n < p->cap) {
        pc_gw_upconn *uc = &p->conns[p->n];
        p->n++; /* the slot counts even if opening fails: it is retried */
        return open_conn(p, uc) ? uc : NULL;
    }
    return best;
}

bool pc_gw_upconn_reused(const pc_gw_upconn *uc) { return uc->proven; }

struct evhttp_connection *pc_gw_upconn_evcon(pc_gw_upconn *uc)
{
    uc->inflight++;
    return uc->evcon;
}

void pc_gw_upconn_done(pc_gw_upconn *uc, bool ok)
{
    if (uc->inflight > 0) uc->inflight--;
    if (!ok) {
        uc->dead = true;
        return;
    }
    uc->proven = true;
}

bool pc_gw_upconn_connected(pc_gw_upconn *uc)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(uc->evcon);
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    /* A socket still connecting has no peer yet (ENOTCONN). */
    return fd >= 0 && getpeername(fd, (struct sockaddr *)&ss, &len) == 0;
}

/* ---- the raw client (http:// upstreams) ------------------------------------------ */

static void raw_close(pc_gw_rawconn *c);
static void raw_attach(pc_gw_rawconn *c, pc_gw_upreq *q);
static bool raw_open_slot(pc_gw_rawconn *c);

static void raw_free(pc_gw_rawconn *c)
{
    if (c->fd >= 0) raw_close(c);
    pc_gw_upparse_free(&c->rd);
}

static void idle_push(pc_gw_rawconn *c)
{
    pc_gw_pool *p = c->pool;
    c->iprev = NULL;
    c->inext = p->idle_head;
    if (p->idle_head) p->idle_head->iprev = c;
    p->idle_head = c;
    c->idle = true;
}

static void idle_remove(pc_gw_rawconn *c)
{
    if (!c->idle) return;
    if (c->iprev) c->iprev->inext = c->inext;
    else c->pool->idle_head = c->inext;
    if (c->inext) c->inext->iprev = c->iprev;
    c->inext = c->iprev = NULL;
    c->idle = false;
}

static void wait_push(pc_gw_pool *p, pc_gw_upreq *q)
{
    q->pool = p;
    q->waiting = true;
    q->wnext = NULL;
    q->wprev = p->wait_tail;
    if (p->wait_tail) p->wait_tail->wnext = q;
    else p->wait_head = q;
    p->wait_tail = q;
}

static void wait_remove(pc_gw_upreq *q)
{
    pc_gw_pool *p = q->pool;
    if (q->wprev) q->wprev->wnext = q->wnext;
    else p->wait_head = q->wnext;
    if (q->wnext) q->wnext->wprev = q->wprev;
    else p->wait_tail = q->wprev;
    q->wnext = q->wprev = NULL;
    q->waiting = false;
}

static pc_gw_upreq *wait_pop(pc_gw_pool *p)
{
    pc_gw_upreq *q = p->wait_head;
    if (q) wait_remove(q);
    return q;
}

/* Report an error from the loop rather than from the caller's stack. */
static void raw_defer_error(pc_gw_rawconn *c, int err)
{
    c->pending_err = true;
    c->err = err;
    event_active(c->rev, EV_READ, 1);
}

/* Send what is left of the request; a short send waits for EV_WRITE. */
static void raw_send(pc_gw_rawconn *c)
{
    pc_gw_upreq *q = c->q;
    while (c->out_off < q->msg_len) {
        ssize_t n = send(c->fd, q->msg + c->out_off, q->msg_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            event_add(c->wev, NULL);
            return;
        }
        raw_defer_error(c, n < 0 ? errno : EPIPE);
        return;
    }
    if (event_pending(c->wev, EV_WRITE, NULL)) event_del(c->wev);
}

/* Close the socket and free the slot; a waiting request gets a new
 * connection in it. Callbacks are not called. */
static void raw_close(pc_gw_rawconn *c)
{
    pc_gw_pool *p = c->pool;
    idle_remove(c);
    if (c->rev) event_free(c->rev);
    if (c->wev) event_free(c->wev);
    if (c->ctimer) event_free(c->ctimer);
    c->rev = c->wev = c->ctimer = NULL;
    if (c->fd >= 0) {
        close(c->fd);
        p->raw_open--;
    }
    c->fd = -1;
    c->q = NULL;
    c->connecting = c->served = c->pending_err = false;
    pc_gw_upparse_trim(&c->rd);
    if (p->wait_head == NULL) return;
    /* A slot is free now: open a connection for the first waiting request. */
    if (!raw_open_slot(c)) return; /* it waits on, bounded by its timer */
    raw_attach(c, wait_pop(p));
}

static void raw_fail(pc_gw_rawconn *c, pc_gw_upstatus st)
{
    pc_gw_upreq *q = c->q;
    if (q) q->conn = NULL;
    c->q = NULL;
    raw_close(c);
    if (q) q->done(q, st, NULL);
}

/* The exchange on c is over and c may carry another. */
static void raw_release(pc_gw_rawconn *c)
{
    pc_gw_pool *p = c->pool;
    pc_gw_upparse_trim(&c->rd);
    if (p->wait_head && p->wait_head->fresh) {
        raw_close(c); /* reopens for that request */
        return;
    }
    pc_gw_upreq *q = wait_pop(p);
    if (q) raw_attach(c, q);
    else idle_push(c);
}

/* A whole answer: hand it over, then keep or close the connection. */
static void raw_deliver(pc_gw_rawconn *c, bool reusable)
{
    pc_gw_upreq *q = c->q;
    pc_gw_upresp resp;
    if (!pc_gw_upparse_answer(&c->rd, &resp)) {
        raw_fail(c, PC_GW_UP_BROKEN);
        return;
    }
    reusable = reusable && c->rd.keep_alive && c->out_off == q->msg_len;
    q->conn = NULL;
    c->q = NULL;
    c->served = true;
    /* c is neither idle nor in flight while done runs: a request made
     * from inside it (a pipelined one) cannot take c from under us. */
    q->done(q, PC_GW_UP_OK, &resp);
    if (reusable) raw_release(c);
    else raw_close(c);
}

static void on_raw_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    pc_gw_rawconn *c = arg;
    if (c->q == NULL) {
        /* Idle (or opened for a request since cancelled): the upstream
         * closed it, reset it or sent what nobody asked for. */
        raw_close(c);
        return;
    }
    if (c->pending_err || c->connecting) {
        int err = c->err;
        socklen_t el = sizeof err;
        if (!c->pending_err && (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err == 0))
            return; /* spurious */
        raw_fail(c, c->connecting ? PC_GW_UP_CONNECT_FAILED
                    : c->rd.got_bytes ? PC_GW_UP_BROKEN
                                      : PC_GW_UP_CLOSED);
        return;
    }
    size_t room = 0;
    char *at = pc_gw_upparse_room(&c->rd, &room);
    if (at == NULL) {
        raw_fail(c, PC_GW_UP_TOO_LARGE);
        return;
    }
    ssize_t n = read(fd, at, room);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
        raw_fail(c, c->rd.got_bytes ? PC_GW_UP_BROKEN : PC_GW_UP_CLOSED);
        return;
    }
    if (n == 0) {
        if (pc_gw_upparse_eof(&c->rd) == PC_GW_UPP_DONE) raw_deliver(c, false);
        else raw_fail(c, c->rd.got_bytes ? PC_GW_UP_BROKEN : PC_GW_UP_CLOSED);
        return;
    }
    bool trailing = false;
    switch (pc_gw_upparse_feed(&c->rd, (size_t)n, &trailing)) {
    case PC_GW_UPP_DONE: raw_deliver(c, !trailing); return;
    case PC_GW_UPP_BROKEN: raw_fail(c, PC_GW_UP_BROKEN); return;
    case PC_GW_UPP_TOO_LARGE: raw_fail(c, PC_GW_UP_TOO_LARGE); return;
    case PC_GW_UPP_MORE: return;
    }
}

static void on_raw_write(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    pc_gw_rawconn *c = arg;
    if (c->connecting) {
        int err = 0;
        socklen_t el = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0) err = errno;
        if (err == EINPROGRESS) {
            event_add(c->wev, NULL);
            return;
        }
        if (err != 0) {
            raw_fail(c, PC_GW_UP_CONNECT_FAILED);
            return;
        }
        c->connecting = false;
        event_del(c->ctimer);
        if (c->q == NULL) {
            /* Its request was cancelled meanwhile: keep it for the next. */
            raw_release(c);
            return;
        }
    }
    if (c->q) raw_send(c);
}

static void on_raw_connect_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pc_gw_rawconn *c = arg;
    if (c->connecting) raw_fail(c, PC_GW_UP_CONNECT_TIMEOUT);
}

static bool raw_resolve(pc_gw_pool *p)
{
    if (p->addr_len) return true;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)p->port);
    /* http:// upstreams are loopback addresses or localhost (config):
     * resolved once per pool, from /etc/hosts at worst. */
    if (getaddrinfo(p->host, port, &hints, &res) != 0 || res == NULL) {
        pc_log_msg(PC_LOG_ERROR, "upstream_resolve_failed", "upstream %s: cannot resolve", p->host);
        return false;
    }
    if (res->ai_addrlen <= sizeof p->addr) {
        memcpy(&p->addr, res->ai_addr, res->ai_addrlen);
        p->addr_len = res->ai_addrlen;
    }
    freeaddrinfo(res);
    return p->addr_len != 0;
}

/* A new socket in the free slot c, connecting. false: none could be made
 * (no descriptors, no memory). */
static bool raw_open_slot(pc_gw_rawconn *c)
{
    pc_gw_pool *p = c->pool;
    if (!raw_resolve(p)) return false;
    int fd = socket(p->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        pc_log_msg(PC_LOG_ERROR, "upstream_socket_failed", "upstream %s: socket: %s", p->host,
                   strerror(errno));
        return false;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->rev = event_new(p->base, fd, EV_READ | EV_PERSIST, on_raw_read, c);
    c->wev = event_new(p->base, fd, EV_WRITE, on_raw_write, c);
    c->ctimer = evtimer_new(p->base, on_raw_connect_timeout, c);
    if (c->rev == NULL || c->wev == NULL || c->ctimer == NULL || event_add(c->rev, NULL) != 0) {
        if (c->rev) event_free(c->rev);
        if (c->wev) event_free(c->wev);
        if (c->ctimer) event_free(c->ctimer);
        c->rev = c->wev = c->ctimer = NULL;
        close(fd);
        return false;
    }
    c->fd = fd;
    p->raw_open++;
    c->served = false;
    c->pending_err = false;
    c->connecting = true;
    if (connect(fd, (struct sockaddr *)&p->addr, p->addr_len) == 0) {
        c->connecting = false;
    } else if (errno == EINPROGRESS || errno == EINTR) {
        struct timeval tv = tv_ms(p->connect_ms);
        event_add(c->wev, NULL);
        evtimer_add(c->ctimer, &tv);
    } else {
        raw_defer_error(c, errno); /* refused at once: reported from the loop */
    }
    return true;
}

static void raw_attach(pc_gw_rawconn *c, pc_gw_upreq *q)
{
    idle_remove(c);
    c->q = q;
    q->conn = c;
    q->reused = c->served;
    pc_gw_upparse_start(&c->rd, q->head, q->max_body);
    c->out_off = 0;
    if (!c->connecting && !c->pending_err) raw_send(c);
}

bool pc_gw_up_send(struct event_base *base, const pc_upstream_config *up, pc_gw_upreq *q)
{
    q->conn = NULL;
    q->waiting = false;
    q->reused = false;
    pc_gw_pool *p = pool_find(base, up);
    if (p == NULL) return false;
    if (p->raw == NULL) {
        p->raw = calloc(p->cap, sizeof *p->raw);
        if (p->raw == NULL) return false;
        for (size_t i = 0; i < p->cap; i++) {
            p->raw[i].pool = p;
            p->raw[i].fd = -1;
        }
    }
    if (p->idle_head && !q->fresh) {
        raw_attach(p->idle_head, q);
        return true;
    }
    if (p->raw_open == p->cap && p->idle_head) raw_close(p->idle_head); /* fresh: make room */
    if (p->raw_open < p->cap) {
        pc_gw_rawconn *c = NULL;
        for (size_t i = 0; i < p->cap && c == NULL; i++)
            if (p->raw[i].fd < 0) c = &p->raw[i];
        if (c == NULL || !raw_open_slot(c)) return false;
        raw_attach(c, q);
        return true;
    }
    wait_push(p, q);
    return true;
}

void pc_gw_up_cancel(pc_gw_upreq *q)
{
    if (q->waiting) {
        wait_remove(q);
        return;
    }
    pc_gw_rawconn *c = q->conn;
    if (c == NULL) return;
    q->conn = NULL;
    c->q = NULL;
    /* Half an exchange cannot be resumed: a connection still connecting
     * is kept (on_raw_write makes it idle), any other is closed. */
    if (c->connecting && !c->pending_err) return;
    raw_close(c);
}
