/* HTTP/1.1 request reception: http-parser glue with our limits and the
 * request-smuggling defences. No sockets here, so it can be unit tested
 * and fuzzed on its own (fuzz/fuzz_http.c).
 *
 * The caller owns one contiguous input buffer and feeds it in order. All
 * pc_str fields of the request point into that buffer (or into rx->body),
 * so the caller keeps the bytes of the current request in place until it
 * has answered it. */
#ifndef PC_NET_HTTP_H
#define PC_NET_HTTP_H

#include "core/config.h"
#include "core/str.h"

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct pc_header {
    pc_str name;
    pc_str value;
} pc_header;

typedef struct pc_http_req {
    pc_str method;        /* upper case, e.g. "GET" */
    pc_str target;        /* the raw request-target (origin-form) */
    pc_str path;          /* target up to '?' */
    pc_str query;         /* after '?', without it; never logged */
    unsigned short http_major, http_minor;
    pc_header *headers;   /* rx->headers */
    size_t n_headers;
    pc_str host;
    const char *body;     /* rx->body, NULL if none */
    size_t body_len;
    bool keep_alive;      /* the client allows the connection to stay open */
    bool is_head;
} pc_http_req;

typedef enum pc_http_status {
    PC_HTTP_NEED_MORE = 0, /* all bytes consumed; feed more */
    PC_HTTP_REQUEST,       /* a whole request is in rx->req */
    PC_HTTP_ERROR,         /* refuse with rx->error_status; close after */
} pc_http_status;

typedef struct pc_http_rx {
    http_parser parser;
    const pc_limits_config *limits;
    pc_http_req req;
    pc_header *headers;       /* capacity limits->max_header_count */
    bool headers_lent;        /* the caller's memory (pc_http_rx_init_lent) */
    char *body;               /* grows up to limits->max_body_bytes; owned */
    size_t body_cap;
    size_t header_bytes;      /* bytes of this request's head so far */
    const char *head_start;   /* first byte of this request in the buffer */
    bool in_header_value;     /* last callback was a header value */
    bool line_checked;        /* the request-line passed request_line_ok */
    bool headers_done;
    bool message_done;
    bool expect_continue;     /* client sent Expect: 100-continue */
    bool seen_cl, seen_te, seen_host;
    int error_status;         /* 400, 408, 413, 431, 501, 505, ... */
    const char *error_reason; /* short machine-readable reason for logs */
} pc_http_rx;

PC_MUST_USE pc_result pc_http_rx_init(pc_http_rx *rx, const pc_limits_config *limits);
/* The same, but the header index (limits->max_header_count entries) is
 * lent by the caller per request rather than owned: the server keeps it in
 * the connection's input buffer, so that an idle connection holds neither.
 * Lend it before feeding a request's bytes; NULL takes it back between
 * requests. Feeding without one refuses the request (500). */
PC_MUST_USE pc_result pc_http_rx_init_lent(pc_http_rx *rx, const pc_limits_config *limits);
void pc_http_rx_lend_headers(pc_http_rx *rx, pc_header *headers);
void pc_http_rx_free(pc_http_rx *rx);
/* Forget the last request; the next byte fed starts a new one. */
void pc_http_rx_reset(pc_http_rx *rx);
/* Feed data[0..len). On return *consumed bytes were used; on
 * PC_HTTP_REQUEST the rest (pipelined bytes) belong to the next request.
 * data must be contiguous with the previous feed of the same request. */
pc_http_status pc_http_rx_feed(pc_http_rx *rx, const char *data, size_t len, size_t *consumed);
/* True once the head is complete (then the body, if any, is being read). */
static inline bool pc_http_rx_headers_done(const pc_http_rx *rx) { return rx->headers_done; }
/* True if a request has started (some byte of it has been fed). */
bool pc_http_rx_started(const pc_http_rx *rx);

/* The value of the first header with this name (case-insensitive), or a
 * NULL pc_str. */
pc_str pc_http_header(const pc_http_req *req, const char *name);

/* The reason phrase for a status code ("Not Found"). */
const char *pc_http_reason(int status);

/* Path checks shared by the router and the gateway: origin-form, no dot
 * segments (raw or percent-encoded), no encoded '/', '\\' or NUL. Returns
 * false for a path we refuse to route. */
bool pc_http_path_is_safe(pc_str path);

#endif
