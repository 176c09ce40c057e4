/* The remote AS's JWKS: a fetcher thread with its own event loop (see
 * jwks.h). The fetch uses the gateway's upstream client (upstream.c), so
 * https is verified against the configured CA and host name. */
#include "gw/jwks.h"
#include "core/log.h"
#include "gw/internal.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A JWKS is a handful of public keys; an RSA key is under 1 KiB. */
#define PC_GW_MAX_JWKS_BYTES (256u * 1024u)

struct pc_gw_jwks {
    pthread_t thread;
    struct event_base *base;
    struct event *ev_wake;       /* activated from workers: fetch now */
    struct event *ev_timer;      /* scheduled refresh */
    pc_upstream_config up;       /* owned copies of the strings */
    char *issuer;
    uint32_t refresh_ms, min_refetch_ms;
    pthread_mutex_t mu;          /* guards current, last_fetch_ms, in_flight, ended */
    pc_gw_keyset *current;       /* one reference */
    int64_t last_fetch_ms;       /* monotonic, start of the last fetch */
    bool in_flight;
    _Atomic uint64_t ended;      /* fetches ended; written under mu */
    uint64_t fetches;            /* fetcher thread only */
    pc_gw_upconn *uc;            /* fetcher thread only */
};

const char *pc_gw_jwks_issuer(const pc_gw_jwks *j) { return j->issuer; }

static bool same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

bool pc_gw_jwks_same(const pc_gw_jwks *j, const pc_gw_config *g)
{
    return same_str(j->issuer, g->remote_issuer) && same_str(j->up.url, g->remote_jwks.url) &&
           same_str(j->up.ca_file, g->remote_jwks.ca_file);
}

void pc_gw_keyset_release(pc_gw_keyset *ks)
{
    if (ks == NULL || atomic_fetch_sub(&ks->refs, 1) != 1) return;
    pc_jwks_clear(&ks->set);
    free(ks);
}

pc_gw_keyset *pc_gw_jwks_acquire(pc_gw_jwks *j)
{
    pthread_mutex_lock(&j->mu);
    pc_gw_keyset *ks = j->current;
    if (ks) atomic_fetch_add(&ks->refs, 1);
    pthread_mutex_unlock(&j->mu);
    return ks;
}

/* Claim the right to fetch; force skips the min_refetch interval. True
 * when this call claimed it; *running: a fetch runs now (claimed here or
 * before); *ended_before: the fetches ended so far (both may be NULL). */
static bool claim_fetch(pc_gw_jwks *j, bool force, bool *running, uint64_t *ended_before)
{
    int64_t now = pc_gw_mono_ms();
    pthread_mutex_lock(&j->mu);
    bool go = !j->in_flight && (force || now - j->last_fetch_ms >= (int64_t)j->min_refetch_ms);
    if (go) {
        j->in_flight = true;
        j->last_fetch_ms = now;
    }
    if (running) *running = j->in_flight;
    if (ended_before) *ended_before = atomic_load(&j->ended);
    pthread_mutex_unlock(&j->mu);
    return go;
}

bool pc_gw_jwks_want_refresh(pc_gw_jwks *j, uint64_t *ended_before)
{
    bool running = false;
    if (claim_fetch(j, false, &running, ended_before)) event_active(j->ev_wake, EV_READ, 0);
    return running;
}

uint64_t pc_gw_jwks_fetches_ended(pc_gw_jwks *j) { return atomic_load(&j->ended); }

uint32_t pc_gw_jwks_fetch_timeout_ms(const pc_gw_jwks *j)
{
    return j->up.connect_timeout_ms + j->up.timeout_ms;
}

static void publish(pc_gw_jwks *j, pc_gw_keyset *ks)
{
    pthread_mutex_lock(&j->mu);
    pc_gw_keyset *old = j->current;
    if (ks) j->current = ks;
    j->in_flight = false;
    atomic_fetch_add(&j->ended, 1);
    pthread_mutex_unlock(&j->mu);
    if (ks) pc_gw_keyset_release(old);
}

static pc_gw_keyset *parse_jwks(struct evhttp_request *req)
{
    struct evbuffer *b = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(b);
    const char *data = len ? (const char *)evbuffer_pullup(b, -1) : NULL;
    json_error_t err;
    json_t *doc = data ? json_loadb(data, len, JSON_REJECT_DUPLICATES, &err) : NULL;
    pc_gw_keyset *ks = doc ? calloc(1, sizeof *ks) : NULL;
    if (ks && !pc_ok(pc_jwks_from_json(doc, &ks->set))) {
        free(ks);
        ks = NULL;
    }
    if (ks) atomic_init(&ks->refs, 1);
    json_decref(doc);
    return ks;
}

static void on_fetched(struct evhttp_request *req, void *arg)
{
    pc_gw_jwks *j = arg;
    int code = req ? evhttp_request_get_response_code(req) : 0;
    pc_gw_keyset *ks = code == 200 ? parse_jwks(req) : NULL;
    pc_gw_upconn_done(j->uc, code != 0);
    j->uc = NULL;
    pc_logline l;
    if (pc_log_begin(&l, ks ? PC_LOG_INFO : PC_LOG_WARN, ks ? "jwks_fetched" : "jwks_fetch_failed")) {
        pc_log_cstr(&l, "url", j->up.url);
        pc_log_int(&l, "status", code);
        pc_log_uint(&l, "fetches", j->fetches);
        if (ks) pc_log_uint(&l, "keys", ks->set.n);
        pc_log_end(&l);
    }
    publish(j, ks);
}

static void fetch(pc_gw_jwks *j)
{
    j->fetches++;
    const char *path = j->up.base_path[0] ? j->up.base_path : "/";
    j->uc = pc_gw_upconn_get(j->base, &j->up);
    struct evhttp_request *req = j->uc ? evhttp_request_new(on_fetched, j) : NULL;
    if (req == NULL) {
        pc_log_msg(PC_LOG_WARN, "jwks_fetch_failed", "no connection to %s", j->up.url);
        if (j->uc) pc_gw_upconn_done(j->uc, false);
        j->uc = NULL;
        publish(j, NULL);
        return;
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char host[300];
    snprintf(host, sizeof host, "%s:%u", j->up.host, (unsigned)j->up.port);
    evhttp_add_header(h, "Host", host);
    evhttp_add_header(h, "Accept", "application/jwk-set+json, application/json");
    struct evhttp_connection *evcon = pc_gw_upconn_evcon(j->uc);
    evhttp_connection_set_max_body_size(evcon, PC_GW_MAX_JWKS_BYTES);
    if (evhttp_make_request(evcon, req, EVHTTP_REQ_GET, path) != 0 && j->uc != NULL) {
        /* Not taken and not called back: nothing is in flight. */
        pc_gw_upconn_done(j->uc, false);
        j->uc = NULL;
        publish(j, NULL);
    }
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    fetch(arg);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pc_gw_jwks *j = arg;
    if (claim_fetch(j, true, NULL, NULL)) fetch(j);
}

static void *run(void *arg)
{
    pc_gw_jwks *j = arg;
    event_base_dispatch(j->base);
    /* Leaving the thread frees its upstream pool (upstream.c), while the
     * base still exists; stop() frees the base after the join. */
    return NULL;
}

static void jwks_free(pc_gw_jwks *j)
{
    if (j->ev_wake) event_free(j->ev_wake);
    if (j->ev_timer) event_free(j->ev_timer);
    if (j->base) event_base_free(j->base);
    pc_gw_keyset_release(j->current);
    free(j->up.name);
    free(j->up.url);
    free(j->up.host);
    free(j->up.base_path);
    free(j->up.ca_file);
    free(j->issuer);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

pc_result pc_gw_jwks_start(const pc_gw_config *g, pc_gw_jwks **out)
{
    *out = NULL;
    pc_gw_jwks *j = calloc(1, sizeof *j);
    PC_ENSURE(j != NULL, PC_ERR_INTERNAL, "out of memory");
    pthread_mutex_init(&j->mu, NULL);
    j->up = g->remote_jwks;
    j->up.name = dup_or_null(g->remote_jwks.name);
    j->up.url = dup_or_null(g->remote_jwks.url);
    j->up.host = dup_or_null(g->remote_jwks.host);
    j->up.base_path = dup_or_null(g->remote_jwks.base_path);
    j->up.ca_file = dup_or_null(g->remote_jwks.ca_file);
    j->up.cert_file = NULL; /* the JWKS is public: no client certificate */
    j->up.key_file = NULL;
    j->issuer = dup_or_null(g->remote_issuer);
    j->refresh_ms = g->remote_refresh_ms;
    j->min_refetch_ms = g->remote_min_refetch_ms;
    j->base = event_base_new();
    if (j->base) {
        j->ev_wake = event_new(j->base, -1, EV_PERSIST, on_wake, j);
        j->ev_timer = event_new(j->base, -1, EV_PERSIST, on_timer, j);
    }
    bool ok = j->up.name && j->up.url && j->up.host && j->up.base_path && j->issuer &&
              (j->up.ca_file || !g->remote_jwks.ca_file) && j->ev_wake && j->ev_timer;
    if (ok) {
        struct timeval tv = {(time_t)(j->refresh_ms / 1000u), (suseconds_t)(j->refresh_ms % 1000u) * 1000};
        /* A persistent event with no fd is only ever activated by hand;
         * adding it keeps the loop running while idle. */
        event_add(j->ev_wake, NULL);
        event_add(j->ev_timer, &tv);
        (void)claim_fetch(j, true, NULL, NULL);
        event_active(j->ev_wake, EV_READ, 0); /* the first fetch, at once */
        ok = pthread_create(&j->thread, NULL, run, j) == 0;
    }
    if (!ok) {
        jwks_free(j);
        return pc_fail(PC_ERR_INTERNAL, "gateway.remote_as: cannot start the JWKS fetcher");
    }
    *out = j;
    return PC_OK;
}

void pc_gw_jwks_stop(pc_gw_jwks *j)
{
    if (j == NULL) return;
    event_base_loopexit(j->base, NULL);
    pthread_join(j->thread, NULL);
    jwks_free(j);
}
