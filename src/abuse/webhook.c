/* The alert webhook: a thread with its own event loop POSTs each alert as
 * JSON to detect.webhook.url. Workers only queue (a bounded ring under a
 * mutex) and wake the thread: a slow or dead receiver never holds up a
 * request. A full queue drops the newest alert and counts it; every alert
 * is in the log anyway. One connection per alert (alerts are rare, and a
 * fresh connection never meets a half-closed keep-alive one). https is
 * verified against detect.webhook.ca and the URL's host name. */
#include "abuse/internal.h"
#include "core/log.h"

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>

/* Alerts waiting to be sent; beyond this they are dropped (and counted). */
#define PC_ABUSE_WEBHOOK_QUEUE 256u

struct pc_abuse_webhook {
    pthread_t thread;
    struct event_base *base;
    struct event *ev_wake;
    SSL_CTX *ssl_ctx;           /* https only */
    bool https;
    char *url, *host, *path;    /* owned copies */
    uint16_t port;
    uint32_t timeout_ms;
    pthread_mutex_t mu;         /* guards the ring */
    char *ring[PC_ABUSE_WEBHOOK_QUEUE];
    size_t head, count;
    _Atomic uint64_t sent, failed, dropped;
};

typedef struct post {
    pc_abuse_webhook *w;
    struct evhttp_connection *evcon;
} post;

static void free_conn(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    evhttp_connection_free(arg);
}

static void on_done(struct evhttp_request *req, void *arg)
{
    post *p = arg;
    int code = req ? evhttp_request_get_response_code(req) : 0;
    if (code >= 200 && code < 300) {
        atomic_fetch_add(&p->w->sent, 1);
    } else {
        atomic_fetch_add(&p->w->failed, 1);
        pc_logline l;
        if (pc_log_begin(&l, PC_LOG_WARN, "webhook_failed")) {
            pc_log_cstr(&l, "url", p->w->url);
            pc_log_int(&l, "status", code);
            pc_log_end(&l);
        }
    }
    /* Freed from the loop, not inside its own request's callback. */
    struct timeval now = {0, 0};
    if (event_base_once(p->w->base, -1, EV_TIMEOUT, free_conn, p->evcon, &now) != 0)
        evhttp_connection_free_on_completion(p->evcon);
    free(p);
}

static struct evhttp_connection *connect_to(pc_abuse_webhook *w)
{
    if (!w->https)
        return evhttp_connection_base_new(w->base, NULL, w->host, w->port);
    SSL *ssl = SSL_new(w->ssl_ctx);
    if (ssl == NULL) return NULL;
    if (SSL_set1_host(ssl, w->host) != 1 || SSL_set_tlsext_host_name(ssl, w->host) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        w->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        SSL_free(ssl);
        return NULL;
    }
    struct evhttp_connection *c =
        evhttp_connection_base_bufferevent_new(w->base, NULL, bev, w->host, w->port);
    if (c == NULL) bufferevent_free(bev);
    return c;
}

static void send_one(pc_abuse_webhook *w, char *json)
{
    post *p = calloc(1, sizeof *p);
    struct evhttp_request *req = NULL;
    if (p) {
        p->w = w;
        p->evcon = connect_to(w);
    }
    if (p && p->evcon) req = evhttp_request_new(on_done, p);
    if (req == NULL) {
        if (p && p->evcon) evhttp_connection_free(p->evcon);
        free(p);
        free(json);
        atomic_fetch_add(&w->failed, 1);
        return;
    }
    struct timeval tv = {(time_t)(w->timeout_ms / 1000u), (suseconds_t)(w->timeout_ms % 1000u) * 1000};
    evhttp_connection_set_timeout_tv(p->evcon, &tv);
    evhttp_connection_set_retries(p->evcon, 0);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char host[300];
    snprintf(host, sizeof host, "%s:%u", w->host, (unsigned)w->port);
    evhttp_add_header(h, "Host", host);
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "Connection", "close");
    evbuffer_add(evhttp_request_get_output_buffer(req), json, strlen(json));
    free(json);
    const char *path = w->path[0] ? w->path : "/";
    if (evhttp_make_request(p->evcon, req, EVHTTP_REQ_POST, path) != 0) {
        /* Not taken: libevent freed the request; the connection is ours. */
        evhttp_connection_free(p->evcon);
        free(p);
        atomic_fetch_add(&w->failed, 1);
    }
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pc_abuse_webhook *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        char *json = NULL;
        if (w->count) {
            json = w->ring[w->head];
            w->ring[w->head] = NULL;
            w->head = (w->head + 1) % PC_ABUSE_WEBHOOK_QUEUE;
            w->count--;
        }
        pthread_mutex_unlock(&w->mu);
        if (json == NULL) return;
        send_one(w, json);
    }
}

void pc_abuse_webhook_post(pc_abuse_webhook *w, const char *json, size_t len)
{
    char *copy = malloc(len + 1);
    if (copy == NULL) {
        atomic_fetch_add(&w->dropped, 1);
        return;
    }
    memcpy(copy, json, len);
    copy[len] = '\0';
    pthread_mutex_lock(&w->mu);
    bool queued = w->count < PC_ABUSE_WEBHOOK_QUEUE;
    if (queued) {
        w->ring[(w->head + w->count) % PC_ABUSE_WEBHOOK_QUEUE] = copy;
        w->count++;
    }
    pthread_mutex_unlock(&w->mu);
    if (!queued) {
        free(copy);
        atomic_fetch_add(&w->dropped, 1);
        return;
    }
    event_active(w->ev_wake, EV_READ, 0);
}

void pc_abuse_webhook_stats(pc_abuse_webhook *w, uint64_t *sent, uint64_t *failed,
                            uint64_t *dropped)
{
    *sent = w ? atomic_load(&w->sent) : 0;
    *failed = w ? atomic_load(&w->failed) : 0;
    *dropped = w ? atomic_load(&w->dropped) : 0;
}

static void *run(void *arg)
{
    pc_abuse_webhook *w = arg;
    /* The wake event has no fd and no timeout, so it does not count as
     * pending: without this flag the loop would return at once. */
    event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static void webhook_free(pc_abuse_webhook *w)
{
    if (w->ev_wake) event_free(w->ev_wake);
    if (w->base) event_base_free(w->base);
    if (w->ssl_ctx) SSL_CTX_free(w->ssl_ctx);
    for (size_t i = 0; i < PC_ABUSE_WEBHOOK_QUEUE; i++) free(w->ring[i]);
    free(w->url);
    free(w->host);
    free(w->path);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

pc_result pc_abuse_webhook_start(const pc_detect_config *c, pc_abuse_webhook **out)
{
    *out = NULL;
    pc_abuse_webhook *w = calloc(1, sizeof *w);
    PC_ENSURE(w != NULL, PC_ERR_INTERNAL, "out of memory");
    pthread_mutex_init(&w->mu, NULL);
    w->timeout_ms = c->webhook_timeout_ms;
    w->https = c->webhook_https;
    w->port = c->webhook_port;
    w->url = strdup(c->webhook_url);
    w->host = strdup(c->webhook_host);
    w->path = strdup(c->webhook_path ? c->webhook_path : "");
    bool ok = w->url && w->host && w->path;
    if (ok && w->https) {
        w->ssl_ctx = SSL_CTX_new(TLS_client_method());
        ok = w->ssl_ctx != NULL &&
             SSL_CTX_load_verify_locations(w->ssl_ctx, c->webhook_ca, NULL) == 1 &&
             SSL_CTX_set_min_proto_version(w->ssl_ctx, TLS1_2_VERSION) == 1;
        if (ok) SSL_CTX_set_verify(w->ssl_ctx, SSL_VERIFY_PEER, NULL);
        ERR_clear_error();
    }
    if (ok) w->base = event_base_new();
    if (w->base) w->ev_wake = event_new(w->base, -1, EV_PERSIST, on_wake, w);
    ok = ok && w->ev_wake != NULL && event_add(w->ev_wake, NULL) == 0 &&
         pthread_create(&w->thread, NULL, run, w) == 0;
    if (!ok) {
        webhook_free(w);
        return pc_fail(PC_ERR_USAGE, "detect.webhook: cannot start the poster for %s%s%s",
                       c->webhook_url, c->webhook_ca ? " with CA " : "",
                       c->webhook_ca ? c->webhook_ca : "");
    }
    *out = w;
    return PC_OK;
}

void pc_abuse_webhook_stop(pc_abuse_webhook *w)
{
    if (w == NULL) return;
    event_base_loopexit(w->base, NULL);
    pthread_join(w->thread, NULL);
    webhook_free(w);
}
