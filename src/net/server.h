/* The server core: worker threads, each with its own libevent loop and its
 * own SO_REUSEPORT listener, TLS on non-blocking OpenSSL driven straight
 * from the loop's events, HTTP/1.1 keep-alive, and the request API that
 * handlers use.
 *
 * Lifecycle: pc_server_run loads nothing itself; it takes a config, builds
 * a runtime (TLS context, router), starts the workers and returns when the
 * server has stopped. SIGHUP rebuilds the runtime from the config file and
 * hands it to the workers: new connections and new requests use it, while
 * established connections keep their TLS session. SIGTERM and SIGINT drain:
 * stop accepting, finish in-flight requests (up to
 * server.limits.shutdown_timeout), then exit. */
#ifndef PC_NET_SERVER_H
#define PC_NET_SERVER_H

#include "core/config.h"
#include "net/http.h"
#include "net/router.h"
#include "net/tls.h"

#include <sys/socket.h>

struct event_base;

typedef struct pc_request pc_request;

/* A route handler. It answers with pc_respond* exactly once. */
typedef void (*pc_handler_fn)(pc_request *r, void *data);

typedef struct pc_handler {
    pc_handler_fn fn;
    void *data;       /* owned by the runtime's config or module */
    const char *name; /* for logs: "static", "whoami", "healthz" */
} pc_handler;

/* Request accessors: valid until the handler has responded. */
const pc_http_req *pc_request_http(const pc_request *r);
const pc_tls_peer *pc_request_peer(const pc_request *r);
const pc_route_match *pc_request_route(const pc_request *r);
const char *pc_request_id(const pc_request *r);
/* The client's IP address as text (no port). */
const char *pc_request_peer_ip(const pc_request *r);
const pc_config *pc_request_config(const pc_request *r);
/* "TLSv1.3" and the cipher suite name. */
const char *pc_request_tls_version(const pc_request *r);
const char *pc_request_tls_cipher(const pc_request *r);

/* Add a response header (before pc_respond). Names and values must be
 * header-safe; unsafe bytes make the response a 500, never a split header. */
void pc_response_header(pc_request *r, const char *name, pc_str value);
/* Send the response. body may be NULL when len is 0. */
void pc_respond(pc_request *r, int status, const char *content_type, const char *body,
                size_t len);
/* An RFC 9457 problem+json response with a human-readable detail. */
void pc_respond_problem(pc_request *r, int status, const char *detail);

/* Asynchronous handlers. A handler may return without responding and call
 * pc_respond later, from the same worker thread (e.g. from an upstream
 * callback on pc_request_base). Reading from the client stops meanwhile.
 * If the connection must close first (shutdown past its deadline), abort
 * is called once and the request must not be touched after it returns. */
void pc_request_set_abort(pc_request *r, void (*abort)(void *arg), void *arg);
/* The worker's event loop, for a handler's own events. */
struct event_base *pc_request_base(const pc_request *r);
/* Bytes of the connection's TLS peer address, and whether the request came
 * over a connection from addr (for trusted-proxy checks). */
const struct sockaddr *pc_request_peer_addr(const pc_request *r);

/* Run until SIGTERM/SIGINT. cfg is owned by the caller until the first
 * reload replaces it; after return the server has freed every runtime. */
PC_MUST_USE pc_result pc_server_run(pc_config *cfg);

#endif
