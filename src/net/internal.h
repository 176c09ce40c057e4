/* Private to src/net: the structures the server's files share. Handlers
 * see only server.h. */
#ifndef PC_NET_INTERNAL_H
#define PC_NET_INTERNAL_H

#include "core/config.h"
#include "net/connlimit.h"
#include "net/http.h"
#include "net/module.h"
#include "net/router.h"
#include "net/server.h"
#include "net/tls.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>

/* Everything a config produces, built whole before it is used and shared
 * read-only by the workers. Reference counted: the server and each worker
 * hold one, and so does each connection for its lifetime, so a reload never
 * frees what a connection still uses. */
typedef struct pc_runtime {
    _Atomic int refs;
    uint64_t generation;
    pc_config *cfg;       /* owned */
    SSL_CTX *ssl_ctx;     /* owned reference; SSL objects hold their own */
    pc_router *router;    /* owned; route data points into handlers[] */
    pc_handler *handlers; /* owned array */
    size_t n_handlers, cap_handlers;
    void *module_state[PC_MAX_MODULES]; /* from each module's build */
} pc_runtime;

/* The registered modules and their shared state (server lifetime). */
typedef struct pc_modules {
    const pc_module *mods[PC_MAX_MODULES];
    void *shared[PC_MAX_MODULES];
    bool started[PC_MAX_MODULES];
    size_t n;
} pc_modules;

extern pc_modules pc_registered_modules;

PC_MUST_USE pc_result pc_runtime_build(pc_config *cfg, uint64_t generation, pc_runtime **out);
PC_MUST_USE pc_result pc_modules_start(const pc_config *cfg);
void pc_modules_stop(void);
void pc_runtime_ref(pc_runtime *rt);
void pc_runtime_unref(pc_runtime *rt);

typedef struct pc_server pc_server;
typedef struct pc_conn pc_conn;

/* Spare buffers of one size, per worker (spares.c). A connection gives
 * its input and output buffers back after each request, so that an idle
 * keep-alive connection holds none; the next request on any connection of
 * the same worker takes one back instead of a malloc/free pair of 4-32 KiB
 * (glibc's per-thread cache stops at 1 KiB). At most PC_SPARE_BUFFERS of
 * each kind are kept; the rest are freed. */
#define PC_SPARE_BUFFERS 8
typedef struct pc_spares {
    char *buf[PC_SPARE_BUFFERS];
    size_t cap; /* the size of every buffer held */
    unsigned n;
} pc_spares;
char *pc_spares_take(pc_spares *s, size_t cap);
void pc_spares_give(pc_spares *s, char *buf, size_t cap);
void pc_spares_clear(pc_spares *s);

typedef struct pc_worker {
    unsigned id;
    pthread_t thread;
    pc_server *srv;
    struct event_base *base;
    int listen_fd;
    struct event *ev_listen;
    int control_fd;           /* eventfd: the main thread's post() rings it */
    struct event *ev_control; /* reads control_fd, then the mailbox */
    struct event *ev_tick;    /* once a second: access log flush */
    pthread_mutex_t mu;       /* guards the mailbox below */
    pc_runtime *mail_rt;      /* a new runtime to switch to */
    bool mail_drain, mail_stop;
    pc_runtime *rt;           /* current; one reference */
    bool draining;
    pc_conn *conns;           /* doubly linked list of live connections */
    size_t n_conns;
    uint64_t conn_seq;
    uint64_t req_seq;
    char req_prefix[13];      /* random per worker: request ids are unique */
    time_t date_sec;
    char date[40];            /* "Date: ..." header value, refreshed per second */
    pc_spares spare_in, spare_out; /* connection buffers between requests */
    const struct timeval *tv_header, *tv_idle, *tv_body; /* common timeouts */
    uint32_t tv_header_ms, tv_idle_ms, tv_body_ms;
} pc_worker;

struct pc_server {
    pc_worker *workers;
    unsigned n_workers;
    struct event_base *main_base;
    pc_runtime *rt;            /* the newest runtime; one reference */
    uint64_t generation;
    pc_connlimit *connlimit;
    _Atomic uint32_t n_refusing;
    _Atomic uint64_t conn_ids;
    bool draining;
};

typedef enum pc_conn_state {
    CONN_HANDSHAKE = 0,
    CONN_READING,
    CONN_HANDLING, /* a handler owns the request; waiting for pc_respond */
    CONN_WRITING,
    CONN_CLOSING,
} pc_conn_state;

struct pc_request {
    pc_conn *c;
    const pc_handler *handler;
    pc_route_match match;
    char id[32];
    char *hdrs;        /* extra response headers from pc_response_header; owned by
                          the connection, kept between requests, grown up to
                          PC_MAX_RESPONSE_HEADER_BYTES */
    size_t hdrs_len, hdrs_cap;
    bool hdrs_bad;     /* an unsafe header was refused: answer 500 */
    int status;
    size_t resp_body_bytes;
    const char *error_reason; /* set for refusals, logged */
    void (*abort)(void *arg); /* see pc_request_set_abort */
    void *abort_arg;
    struct timespec start;
};

struct pc_conn {
    pc_conn *prev, *next;
    pc_worker *w;
    pc_runtime *rt; /* one reference; the runtime this connection's buffers
                       and limits come from, refreshed between requests */
    uint64_t id;
    int fd;
    SSL *ssl;
    struct event *ev_read, *ev_write, *ev_timer;
    bool read_armed, write_armed, in_run;
    pc_conn_state state;
    struct sockaddr_storage peer_addr;
    char peer_str[64];   /* "ip:port" */
    char peer_ip[48];    /* "ip" */
    pc_ip_key ip;
    bool counted;        /* admitted by connlimit: release on close */
    int refuse_status;   /* 429/503 when over a connection limit */
    pc_tls_peer peer;
    char *in;            /* input buffer; the current head stays in place */
    size_t in_len, in_cap, parse_off;
    size_t in_block;     /* bytes allocated: in_cap, then the header index */
    pc_http_rx rx;
    bool rx_ready;
    bool sent_continue;
    bool request_started; /* the header timer for this request is armed */
    char *out;           /* response bytes */
    size_t out_len, out_cap, out_off;
    bool close_after;
    bool responded;      /* a response just finished; see read_step */
    uint32_t n_requests;
    char *log_fields;     /* this connection's access-log fields, rendered once */
    size_t log_fields_len;
    pc_request req;
};

/* conn.c */
void pc_conn_accept(pc_worker *w, int fd, const struct sockaddr *sa, socklen_t salen);
void pc_conn_drain(pc_conn *c);
void pc_conn_close_now(pc_conn *c);

/* response.c */
void pc_worker_refresh_date(pc_worker *w);
/* Serialise the head and body into c->out; omit_body for HEAD. */
void pc_response_build(pc_conn *c, int status, const char *ctype, const char *body, size_t len,
                       bool omit_body);

/* builtin.c: the handlers every server has. */
extern const pc_handler pc_builtin_healthz;
extern const pc_handler pc_builtin_whoami;
void pc_builtin_static(pc_request *r, void *data);

#endif
