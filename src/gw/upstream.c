/* Per-worker keep-alive pools of upstream connections (libevent's evhttp
 * client: http, and https through bufferevent_openssl with the upstream's
 * CA and a host name check).
 *
 * A pool belongs to one worker thread and lives as long as the thread: it
 * is keyed by what makes connections interchangeable (URL, CA file,
 * timeouts), so a reload that keeps an upstream keeps its warm
 * connections. The pools are freed by a thread-specific-data destructor
 * when the worker thread ends, which is after its event loop stopped and
 * before the server frees the loop (net/server.c joins the threads first).
 *
 * A pool holds up to max_idle connection objects. Each carries one
 * exchange at a time; when all are busy, a new request queues on the least
 * loaded one (evhttp sends queued requests in order), and the request's
 * own timer bounds the wait. */
#include "core/log.h"
#include "gw/internal.h"

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Upstream response bodies we buffer are bounded by the body limit; the
 * head by this (evhttp refuses longer heads). */
#define PC_GW_UPSTREAM_MAX_HEADERS (16u * 1024u)

struct pc_gw_upconn {
    struct pc_gw_pool *pool;
    struct evhttp_connection *evcon; /* owned */
    unsigned inflight;
    bool dead;      /* failed or was cancelled: replace before reuse */
    bool proven;    /* completed an exchange: connect phase is over */
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
} pc_gw_pool;

typedef struct worker_pools {
    pc_gw_pool *head;
} worker_pools;

static pthread_key_t pools_key;
static pthread_once_t pools_once = PTHREAD_ONCE_INIT;

static void pool_free(pc_gw_pool *p)
{
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
