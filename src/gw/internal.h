/* Private to src/gw: the module's state and the pieces its files share.
 *
 * module.c   shared state (DPoP jti replay cache, nonce secret) and the
 *            per-runtime state (routes, trusted proxies); registration
 * auth.c     credentials, token and scope checks (the order of the steps)
 * binding.c  mTLS and DPoP sender constraints; RFC 9440 from trusted proxies
 * challenge.c refusals with WWW-Authenticate
 * upstream.c per-worker keep-alive pools: our own client on raw sockets
 *            for http:// upstreams, evhttp client connections for https://
 * proxy.c    the route handler: checks, upstream request headers
 * exchange.c the asynchronous upstream exchange (timeouts, retry, abort)
 * tokcache.c per-worker verified-token cache
 * jwks.c     a remote AS's keys (gateway.remote_as), fetched by a thread
 * introspect.c RFC 7662 checks at a remote AS, cached per worker
 * guard.c    abuse resistance: quarantine, rate limits, detector inputs
 * hygiene.c, authz.c, peer.c  pure parsing helpers (unit tested, fuzzed) */
#ifndef PC_GW_INTERNAL_H
#define PC_GW_INTERNAL_H

#include "core/config.h"
#include "core/limits.h"
#include "core/replay.h"
#include "gw/authz.h"
#include "gw/gw.h"
#include "gw/hygiene.h"
#include "gw/peer.h"
#include "gw/upparse.h"
#include "jose/dpop.h"
#include "jose/thumbprint.h"
#include "net/server.h"

#include <jansson.h>
#include <netinet/in.h>
#include <stdint.h>

/* Trusted proxy ranges kept per runtime. */
#define PC_GW_MAX_PROXIES 64
/* Response header bytes we copy from an upstream. The server core keeps a
 * request's extra response headers up to PC_MAX_RESPONSE_HEADER_BYTES
 * (core/limits.h); we leave 1 KiB of that for what the gateway adds
 * (x-fapi-interaction-id, WWW-Authenticate, Cache-Control). An upstream
 * sending more gets a 502 rather than a truncated or refused answer. */
#define PC_GW_MAX_RESPONSE_HEADER_BYTES (PC_MAX_RESPONSE_HEADER_BYTES - 1024u)

/* Kept across reloads (net/module.h): a SIGHUP must not reopen a DPoP
 * replay window or change the nonce secret under clients' feet. */
typedef struct pc_gw_jwks pc_gw_jwks;

typedef struct pc_gw_shared {
    pc_replay *dpop_jti;      /* namespace: proof key thumbprint (jkt) */
    pc_dpop_noncer noncer;    /* gateway.dpop.nonce secret */
    pc_gw_jwks *jwks;         /* gateway.remote_as keys, or NULL */
} pc_gw_shared;

typedef struct pc_gw pc_gw;
typedef struct pc_abuse pc_abuse;

/* One upstream: route of a runtime. */
typedef struct pc_gw_route {
    pc_gw *gw;
    const pc_route_config *rc;     /* borrowed from the runtime's config */
    const pc_upstream_config *up;
    uint32_t timeout_ms;           /* route timeout, else the upstream's */
    char *label;                   /* "GET /customers/{tag}": rate-limit keys, logs */
    uint32_t slot;                 /* the enumeration detector's per-route slot */
} pc_gw_route;

/* Built for each runtime; read-only while serving. */
struct pc_gw {
    const pc_config *cfg;          /* borrowed: the runtime outlives this */
    pc_gw_shared *sh;
    void *as;                      /* the in-process AS's state, or NULL */
    pc_abuse *abuse;               /* rate limits, quarantines, detectors, or NULL */
    pc_gw_route *routes;
    size_t n_routes;
    pc_gw_cidr proxies[PC_GW_MAX_PROXIES];
    size_t n_proxies;
    uint64_t generation;           /* unique per runtime: token cache entries */
};

/* ---- auth.c ----------------------------------------------------------------- */

/* What the checks established, for the identity headers. */
typedef struct pc_gw_identity {
    json_t *claims;                /* owned; NULL when the route has no auth */
    const char *client_id, *sub, *scope, *jti; /* borrowed from claims */
    char x5t[PC_X5T_S256_BUF];     /* thumbprint of the certificate, "" if none */
    pc_str token;                  /* the access token; points into the request */
    bool token_hashed;             /* token_sha256 is set (pc_gw_authorize) */
    uint8_t token_sha256[32];      /* the token cache's and introspection cache's key */
    bool dpop_nonce;               /* a DPoP proof with a server nonce passed: send the
                                      current nonce with the answer (RFC 9449 §8.2) */
} pc_gw_identity;

/* The credentials of a request: scheme and token (points into the request). */
typedef struct pc_gw_creds {
    pc_gw_scheme scheme;
    pc_str token;
    /* SHA-256 of the token, made once per request: the verified-token
     * cache's key and, for DPoP, what the proof's ath must encode. */
    bool hashed;
    uint8_t token_sha256[32];
} pc_gw_creds;

/* A string claim, or NULL. */
const char *pc_gw_claim_str(const json_t *claims, const char *name);

/* ---- challenge.c ------------------------------------------------------------ */

typedef enum pc_gw_challenge { PC_GW_CH_BEARER, PC_GW_CH_DPOP, PC_GW_CH_BOTH } pc_gw_challenge;

typedef struct pc_gw_refusal {
    int status;
    pc_gw_challenge ch;
    const char *error;      /* NULL: no error attribute (no credentials sent) */
    const char *desc;
    const char *scope;      /* insufficient_scope: the scopes required */
    bool nonce;             /* use_dpop_nonce: send a fresh DPoP-Nonce */
} pc_gw_refusal;

/* Answer the refusal; returns false so callers can `return pc_gw_refuse(..)`. */
bool pc_gw_refuse(pc_request *r, const pc_gw_route *rt, const pc_gw_refusal *f, const char *iid,
                  const char *jti);

/* ---- binding.c -------------------------------------------------------------- */

/* The token's cnf against this request (scheme, certificate, DPoP proof)
 * and the route's binding; sets id->x5t. On refusal it has answered. */
PC_MUST_USE bool pc_gw_check_binding(pc_request *r, const pc_gw_route *rt, const char *iid,
                                     const pc_gw_creds *c, pc_gw_identity *id);

/* Run the route's checks (auth: routes), then the guard and the exchange.
 * A refusal is answered (401/403/400, with WWW-Authenticate and the
 * interaction id). May finish later, on this worker's loop, when the
 * token's claims come from the AS's introspection answer. */
void pc_gw_authorize_then_proxy(pc_request *r, const pc_gw_route *rt, const char *interaction_id);
/* The second half: the claims (taken; NULL when there are none) of an
 * active token, or why the token is refused (NULL: it is active), against
 * the route (nbf, aud, binding, scope), then the guard, then the exchange,
 * or first the AS's confirmation that the token is active (confirm). */
void pc_gw_claims_then_proxy(pc_request *r, const pc_gw_route *rt, const char *iid,
                             const pc_gw_creds *c, json_t *claims, const char *why, bool confirm);
void pc_gw_identity_clear(pc_gw_identity *id);
/* The remote AS's keys were fetched while r waited (keywait.c): verify its
 * JWT again, without waiting a second time, and go on. */
void pc_gw_keys_fetched(pc_request *r, const pc_gw_route *rt, const char *iid, const pc_gw_creds *c);

/* ---- keywait.c -------------------------------------------------------------- */

/* Park r until the running fetch of the remote AS's keys ends (the count
 * of ended fetches passes ended_before) or its timeout, then call
 * pc_gw_keys_fetched. false: not parked (too many waiting on this worker,
 * no memory); the caller goes on without the new keys. */
PC_MUST_USE bool pc_gw_wait_for_keys(pc_request *r, const pc_gw_route *rt, const char *iid,
                                     const pc_gw_creds *c, uint64_t ended_before);
/* Is addr (the connection's peer) inside a trusted proxy range? */
bool pc_gw_trusted_peer(const pc_gw *gw, const struct sockaddr *addr);
/* The thumbprint of the client certificate: the TLS connection's, or the
 * RFC 9440 header's when that mode is on and the peer is trusted. "" if
 * none; false if a header was present but malformed. */
bool pc_gw_client_x5t(pc_request *r, const pc_gw *gw, char out[PC_X5T_S256_BUF]);

/* ---- guard.c ---------------------------------------------------------------- */

/* After the token checks: quarantine, the route's rate limits (with the
 * RateLimit headers), the detectors' request inputs. On refusal it has
 * answered (403 client_quarantined, 429) and returns false. */
PC_MUST_USE bool pc_gw_guard(pc_request *r, const pc_gw_route *rt, const pc_gw_identity *id,
                             const char *iid);
/* The status answered for an identified request (probing detector). */
void pc_gw_observe_status(const pc_gw_route *rt, const pc_gw_identity *id, int status);
/* A credential event (binding mismatch, DPoP replay) for client_id (may be NULL). */
void pc_gw_observe_credential(const pc_gw_route *rt, const char *client_id, int ev);

/* ---- upstream.c ------------------------------------------------------------- */

struct evhttp_connection;
typedef struct pc_gw_upconn pc_gw_upconn;

/* A connection to up from this worker's pool (created on first use);
 * NULL with a logged reason if one cannot be made. Call
 * pc_gw_upconn_done once the exchange ends (answered, failed or
 * cancelled). */
pc_gw_upconn *pc_gw_upconn_get(struct event_base *base, const pc_upstream_config *up);
struct evhttp_connection *pc_gw_upconn_evcon(pc_gw_upconn *uc);
/* ok: the exchange completed with a response (the connection may be
 * kept); false: it failed or was cancelled (the connection is discarded
 * at its next use). */
void pc_gw_upconn_done(pc_gw_upconn *uc, bool ok);

/* Is the connection's socket connected (its TCP handshake done)? */
bool pc_gw_upconn_connected(pc_gw_upconn *uc);
/* Has this connection completed an exchange before (a reused keep-alive
 * connection, which the upstream may have closed meanwhile)? */
bool pc_gw_upconn_reused(const pc_gw_upconn *uc);

/* The client of http:// upstreams (loopback only, see docs/gateway.md):
 * non-blocking sockets kept per worker, the request written whole with
 * one send(), the answer parsed by http-parser, the read event of each
 * connection armed once for the connection's life. Callbacks run from
 * the worker's loop, never from inside pc_gw_up_send or pc_gw_up_cancel. */

typedef enum pc_gw_upstatus {
    PC_GW_UP_OK,
    PC_GW_UP_CLOSED,          /* closed or reset before any byte of an answer */
    PC_GW_UP_CONNECT_FAILED,  /* refused, unreachable, out of descriptors */
    PC_GW_UP_CONNECT_TIMEOUT, /* not connected within connect_timeout */
    PC_GW_UP_BROKEN,          /* cut or reset mid-answer, or a malformed answer */
    PC_GW_UP_TOO_LARGE,       /* head or body over its limit */
} pc_gw_upstatus;

typedef struct pc_gw_upreq pc_gw_upreq;
typedef struct pc_gw_rawconn pc_gw_rawconn;
struct pc_gw_pool;

struct pc_gw_upreq {
    /* Set by the caller before pc_gw_up_send. */
    const char *msg;           /* the whole request; kept until done or cancel */
    size_t msg_len;
    size_t max_body;           /* answers with a longer body: PC_GW_UP_TOO_LARGE */
    bool head;                 /* a HEAD request: the answer has no body */
    bool fresh;                /* send only on a newly opened connection */
    void (*done)(pc_gw_upreq *q, pc_gw_upstatus st, const pc_gw_upresp *resp);
    /* Set by upstream.c. */
    bool reused;               /* sent on a connection that served before */
    pc_gw_rawconn *conn;       /* in flight on it, or NULL */
    struct pc_gw_pool *pool;   /* waiting in its queue, when waiting */
    bool waiting;
    pc_gw_upreq *wnext, *wprev;
};

/* Send q on a connection of this worker's pool for up (http:// only), or
 * queue it until one is free (max_idle are busy). false: nothing was sent
 * (no memory, no socket) and done will not be called. Otherwise done is
 * called exactly once, later, unless q is cancelled first. */
PC_MUST_USE bool pc_gw_up_send(struct event_base *base, const pc_upstream_config *up,
                               pc_gw_upreq *q);
/* Forget q: leave the queue, or close the connection it is in flight on.
 * done is not called. */
void pc_gw_up_cancel(pc_gw_upreq *q);

/* A growing byte buffer (the upstream request). oom is sticky. */
typedef struct pc_gw_buf {
    char *p;
    size_t len, cap;
    bool oom;
} pc_gw_buf;

void pc_gw_buf_add(pc_gw_buf *b, const void *data, size_t len);

/* ---- proxy.c ---------------------------------------------------------------- */

/* The handler of every upstream: route; data is its pc_gw_route. */
void pc_gw_handle(pc_request *r, void *data);
/* The request headers for the upstream (hygiene applied, forwarding and
 * identity headers added), appended to out as "Name: value\r\n" lines. */
void pc_gw_build_upstream_headers(pc_request *r, const pc_gw_route *rt, const pc_gw_identity *id,
                                  const char *iid, pc_gw_buf *out);

/* ---- exchange.c ------------------------------------------------------------- */

/* Send r to the route's upstream and answer r with its response, now or
 * later (on this worker's loop). id's claims are referenced, not taken. */
void pc_gw_exchange_start(pc_request *r, const pc_gw_route *rt, const pc_gw_identity *id,
                          const char *iid);
/* ---- introspect.c ------------------------------------------------------------ */

/* After every local check of a JWT passed (remote AS with introspection):
 * ask the AS (or this worker's recent answer) whether the token is still
 * active, then start the exchange or refuse. id->token points into r. */
void pc_gw_introspect_then_proxy(pc_request *r, const pc_gw_route *rt, const pc_gw_identity *id,
                                 const char *iid);
/* An opaque token, or any token of an `introspection: always` route: its
 * claims are the AS's RFC 7662 answer (or this worker's recent copy of
 * it), checked as the AS's own answer, then pc_gw_claims_then_proxy. */
void pc_gw_introspect_claims(pc_request *r, const pc_gw_route *rt, const char *iid,
                             const pc_gw_creds *c);

/* A gateway problem+json answer with the interaction id, logged. */
void pc_gw_respond_problem(pc_request *r, const char *iid, int status, const char *reason,
                           const char *detail);

/* Unix seconds. */
int64_t pc_gw_now(void);
/* Monotonic milliseconds: deadlines and cache lifetimes. */
int64_t pc_gw_mono_ms(void);

#endif
