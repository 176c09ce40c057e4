/* RFC 7662 introspection at a remote AS (gateway.remote_as.introspection),
 * in two uses:
 *
 *  - claims: an opaque token, or any token of an `introspection: always`
 *    route, is what the AS's answer says it is; the answer's claims then
 *    go through the same checks as a JWT's (nbf, aud, binding against
 *    cnf, scope);
 *  - confirm: a JWT verified here against the AS's keys is confirmed
 *    still active, so that a revocation there reaches this gateway within
 *    the cache time (FAPI 2.0 §5.3.4-3; FAPI-NOTES pain point 13).
 *
 * The gateway authenticates to the AS with its client certificate
 * (RFC 8705 §2). Answers, with their claims, are kept per worker for
 * introspection.cache, keyed by the SHA-256 of the token. The AS
 * unreachable or answering badly fails closed: 503, never a pass. */
#include "core/log.h"
#include "gw/internal.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Cached answers per worker: introspection answers live seconds, so a
 * small table holds every token a worker sees in that time. */
#define PC_GW_INTROSPECT_SLOTS 1024u
/* An introspection response is a small JSON object. */
#define PC_GW_MAX_INTROSPECTION_BYTES (64u * 1024u)

typedef struct answer {
    uint8_t key[32];
    uint64_t generation; /* 0: empty */
    int64_t until_ms;
    json_t *claims;      /* the answer of an active token (owned); NULL: inactive */
} answer;

typedef struct answers {
    answer slots[PC_GW_INTROSPECT_SLOTS];
} answers;

static pthread_key_t answers_key;
static pthread_once_t answers_once = PTHREAD_ONCE_INIT;

static void answers_free(void *p)
{
    answers *a = p;
    for (size_t i = 0; i < PC_GW_INTROSPECT_SLOTS; i++) json_decref(a->slots[i].claims);
    free(a);
}

static void answers_init(void) { (void)pthread_key_create(&answers_key, answers_free); }

static answers *this_answers(bool create)
{
    (void)pthread_once(&answers_once, answers_init);
    answers *a = pthread_getspecific(answers_key);
    if (a == NULL && create) {
        a = calloc(1, sizeof *a);
        if (a && pthread_setspecific(answers_key, a) != 0) {
            free(a);
            a = NULL;
        }
    }
    return a;
}

static answer *slot_for(answers *a, const uint8_t key[32])
{
    uint32_t i;
    memcpy(&i, key, sizeof i); /* a SHA-256 prefix is uniform */
    return &a->slots[i % PC_GW_INTROSPECT_SLOTS];
}

/* This worker's recent answer for the token, or NULL. */
static const answer *cached(const pc_gw *gw, const uint8_t key[32])
{
    answers *all = this_answers(false);
    const answer *a = all ? slot_for(all, key) : NULL;
    if (a && a->generation == gw->generation && memcmp(a->key, key, sizeof a->key) == 0 &&
        a->until_ms > pc_gw_mono_ms())
        return a;
    return NULL;
}

static void remember(const pc_gw *gw, const uint8_t key[32], const json_t *claims)
{
    uint32_t cache_ms = gw->cfg->gw.introspection_cache_ms;
    answers *all = cache_ms > 0 ? this_answers(true) : NULL;
    if (all == NULL) return;
    answer *a = slot_for(all, key);
    json_decref(a->claims);
    memcpy(a->key, key, sizeof a->key);
    a->generation = gw->generation;
    a->until_ms = pc_gw_mono_ms() + cache_ms;
    a->claims = json_incref((json_t *)claims);
}

/* Questions this worker has sent and not yet seen end
 * (gateway.remote_as.introspection.max_in_flight). */
static _Thread_local uint32_t in_flight;

/* Why this answer does not admit its token now, or NULL (authz.c). */
static const char *answer_why(const pc_gw_route *rt, const json_t *claims)
{
    return pc_gw_introspection_refusal(claims, rt->gw->cfg->gw.remote_issuer, pc_gw_now());
}

typedef struct query {
    pc_request *r;
    const pc_gw_route *rt;
    bool confirm;                  /* a JWT checked here: only `active` matters */
    pc_gw_identity id;             /* confirm: what the checks made (claims referenced) */
    pc_gw_creds creds;             /* claims: the credentials (token points into r) */
    uint8_t key[32];
    pc_gw_upconn *uc;
    struct evhttp_request *ureq;
    struct event *timer;
    bool in_make, answered_in_make;
    bool counted;                  /* counted in in_flight */
    char iid[PC_GW_MAX_INTERACTION_ID + 1];
} query;

static void query_free(query *q)
{
    if (q->counted) in_flight--;
    if (q->timer) event_free(q->timer);
    json_decref(q->id.claims);
    free(q);
}

static void refuse_inactive(pc_request *r, const pc_gw_route *rt, const pc_gw_identity *id,
                            const char *iid)
{
    bool dpop = json_object_get(json_object_get(id->claims, "cnf"), "jkt") != NULL;
    pc_gw_refusal f = {401, dpop ? PC_GW_CH_DPOP : PC_GW_CH_BEARER, "invalid_token",
                       "the access token is not active (revoked)", NULL, false};
    (void)pc_gw_refuse(r, rt, &f, iid, id->jti);
}

static void refuse_unconfirmed(pc_request *r, const char *iid)
{
    pc_gw_respond_problem(r, iid, 503, "introspection_failed",
                          "the authorization server could not confirm the token; retry");
}

/* Hand the request on (to the checks, the exchange or a refusal) and end
 * the query. outcome: 1 active (claims, taken), 0 inactive, -1 no usable
 * answer. */
static void conclude(query *q, int outcome, json_t *claims)
{
    pc_request *r = q->r;
    const pc_gw_route *rt = q->rt;
    bool confirm = q->confirm;
    pc_gw_identity id = q->id;
    id.claims = json_incref(q->id.claims);
    pc_gw_creds creds = q->creds;
    char iid[sizeof q->iid];
    memcpy(iid, q->iid, sizeof iid);
    pc_request_set_abort(r, NULL, NULL);
    if (q->in_make) q->answered_in_make = true;
    else query_free(q);
    if (outcome < 0) {
        refuse_unconfirmed(r, iid);
        json_decref(claims);
    } else if (!confirm) {
        pc_gw_claims_then_proxy(r, rt, iid, &creds, claims, answer_why(rt, claims),
                                false);
    } else {
        json_decref(claims);
        if (outcome > 0) pc_gw_exchange_start(r, rt, &id, iid);
        else refuse_inactive(r, rt, &id, iid);
    }
    json_decref(id.claims);
}

/* 1 active (*claims: the answer), 0 inactive, -1 no usable answer: not a
 * 200 JSON object with a boolean `active` (RFC 7662 §2.2). */
static int parse_answer(struct evhttp_request *u, json_t **claims)
{
    *claims = NULL;
    if (u == NULL || evhttp_request_get_response_code(u) != 200) return -1;
    struct evbuffer *b = evhttp_request_get_input_buffer(u);
    size_t len = evbuffer_get_length(b);
    const char *data = len ? (const char *)evbuffer_pullup(b, -1) : NULL;
    json_error_t err;
    json_t *o = data ? json_loadb(data, len, JSON_REJECT_DUPLICATES, &err) : NULL;
    const json_t *active = json_object_get(o, "active");
    int res = json_is_object(o) && json_is_boolean(active) ? (json_is_true(active) ? 1 : 0) : -1;
    if (res == 1) *claims = o;
    else json_decref(o);
    return res;
}

static void on_answer(struct evhttp_request *u, void *arg)
{
    query *q = arg;
    json_t *claims = NULL;
    int res = parse_answer(u, &claims);
    pc_gw_upconn_done(q->uc, res >= 0);
    q->uc = NULL;
    q->ureq = NULL;
    evtimer_del(q->timer);
    if (res >= 0) remember(q->rt->gw, q->key, claims);
    pc_logline l;
    if (res < 0 && pc_log_begin(&l, PC_LOG_WARN, "introspection_failed")) {
        pc_log_cstr(&l, "req", pc_request_id(q->r));
        pc_log_int(&l, "status", u ? evhttp_request_get_response_code(u) : 0);
        pc_log_end(&l);
    }
    conclude(q, res, claims);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    query *q = arg;
    if (q->ureq) evhttp_cancel_request(q->ureq);
    if (q->uc) pc_gw_upconn_done(q->uc, false);
    q->uc = NULL;
    q->ureq = NULL;
    conclude(q, -1, NULL);
}

static void on_abort(void *arg)
{
    query *q = arg;
    if (q->ureq) evhttp_cancel_request(q->ureq);
    if (q->uc) pc_gw_upconn_done(q->uc, false);
    query_free(q);
}

static bool send_query(query *q, pc_str token)
{
    const pc_gw_config *g = &q->rt->gw->cfg->gw;
    const pc_upstream_config *up = &g->introspection;
    pc_gw_upconn *uc = pc_gw_upconn_get(pc_request_base(q->r), up);
    struct evhttp_request *u = uc ? evhttp_request_new(on_answer, q) : NULL;
    if (u == NULL) return false;
    struct evkeyvalq *h = evhttp_request_get_output_headers(u);
    char host[300];
    snprintf(host, sizeof host, "%s:%u", up->host, (unsigned)up->port);
    evhttp_add_header(h, "Host", host);
    evhttp_add_header(h, "Content-Type", "application/x-www-form-urlencoded");
    evhttp_add_header(h, "Accept", "application/json");
    /* The token is token68 (no '&', '=' only as trailing padding) and the
     * client_id unreserved characters (config), so no escaping is needed
     * except for '+' and '/' and '=', which a form decoder would alter. */
    struct evbuffer *body = evhttp_request_get_output_buffer(u);
    evbuffer_add_printf(body, "token_type_hint=access_token&client_id=%s&token=",
                        g->introspection_client_id);
    for (size_t i = 0; i < token.len; i++) {
        char c = token.ptr[i];
        if (c == '+' || c == '/' || c == '=') evbuffer_add_printf(body, "%%%02X", (unsigned)c);
        else evbuffer_add(body, &c, 1);
    }
    struct evhttp_connection *evcon = pc_gw_upconn_evcon(uc);
    evhttp_connection_set_max_body_size(evcon, PC_GW_MAX_INTROSPECTION_BYTES);
    q->uc = uc;
    q->ureq = u;
    q->in_make = true;
    int rc = evhttp_make_request(evcon, u, EVHTTP_REQ_POST, up->base_path[0] ? up->base_path : "/");
    q->in_make = false;
    if (rc != 0 && q->ureq == u) {
        pc_gw_upconn_done(uc, false);
        q->uc = NULL;
        q->ureq = NULL;
        return false;
    }
    return true;
}

/* Ask the AS about the token; the answer continues in conclude. Answers
 * 503 itself when the question cannot be sent. */
static void ask(query *q, pc_str token)
{
    pc_request *r = q->r;
    if (in_flight >= q->rt->gw->cfg->gw.introspection_max_in_flight) {
        char iid[sizeof q->iid];
        memcpy(iid, q->iid, sizeof iid);
        query_free(q);
        pc_logline l;
        if (pc_log_begin(&l, PC_LOG_WARN, "introspection_busy")) {
            pc_log_cstr(&l, "req", pc_request_id(r));
            pc_log_uint(&l, "in_flight", in_flight);
            pc_log_end(&l);
        }
        pc_response_header(r, "Retry-After", PC_STR("1"));
        pc_gw_respond_problem(r, iid, 503, "introspection_busy",
                              "too many tokens awaiting the authorization server's answer; retry");
        return;
    }
    in_flight++;
    q->counted = true;
    q->timer = evtimer_new(pc_request_base(r), on_timeout, q);
    if (q->timer == NULL || !send_query(q, token)) {
        char iid[sizeof q->iid];
        memcpy(iid, q->iid, sizeof iid);
        query_free(q);
        pc_gw_respond_problem(r, iid, 503, "introspection_failed",
                              "the authorization server could not be reached");
        return;
    }
    if (q->answered_in_make) {
        query_free(q);
        return;
    }
    pc_request_set_abort(r, on_abort, q);
    uint32_t ms = q->rt->gw->cfg->gw.introspection.timeout_ms;
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000u), .tv_usec = (suseconds_t)(ms % 1000u) * 1000};
    evtimer_add(q->timer, &tv);
}

static query *query_new(pc_request *r, const pc_gw_route *rt, const char *iid, const uint8_t key[32])
{
    query *q = calloc(1, sizeof *q);
    if (q == NULL) {
        pc_gw_respond_problem(r, iid, 503, "introspection_failed", "out of memory");
        return NULL;
    }
    q->r = r;
    q->rt = rt;
    snprintf(q->iid, sizeof q->iid, "%s", iid);
    memcpy(q->key, key, sizeof q->key);
    return q;
}

void pc_gw_introspect_then_proxy(pc_request *r, const pc_gw_route *rt, const pc_gw_identity *id,
                                 const char *iid)
{
    /* Keyed by the token's SHA-256, made once by the checks. */
    if (!id->token_hashed) {
        pc_gw_respond_problem(r, iid, 503, "introspection_failed", "could not hash the token");
        return;
    }
    const answer *a = cached(rt->gw, id->token_sha256);
    if (a != NULL) {
        if (a->claims != NULL) pc_gw_exchange_start(r, rt, id, iid);
        else refuse_inactive(r, rt, id, iid);
        return;
    }
    query *q = query_new(r, rt, iid, id->token_sha256);
    if (q == NULL) return;
    q->confirm = true;
    q->id = *id;
    q->id.claims = json_incref(id->claims);
    ask(q, id->token);
}

void pc_gw_introspect_claims(pc_request *r, const pc_gw_route *rt, const char *iid,
                             const pc_gw_creds *c)
{
    if (!c->hashed) {
        pc_gw_respond_problem(r, iid, 503, "introspection_failed", "could not hash the token");
        return;
    }
    const answer *a = cached(rt->gw, c->token_sha256);
    if (a != NULL) {
        json_t *claims = json_incref(a->claims);
        pc_gw_claims_then_proxy(r, rt, iid, c, claims, answer_why(rt, claims), false);
        return;
    }
    query *q = query_new(r, rt, iid, c->token_sha256);
    if (q == NULL) return;
    q->creds = *c;
    ask(q, c->token);
}
