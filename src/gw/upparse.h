/* The raw upstream client's answer reader: an upstream's HTTP/1.1 answer,
 * read into one growing buffer and parsed by http-parser, with the limits
 * of a gateway that must not trust its upstream more than its clients
 * (a head of at most PC_GW_UPSTREAM_MAX_HEADERS bytes and
 * PC_GW_UPSTREAM_MAX_HEADER_COUNT headers, a body of at most max_body
 * bytes, no obs-fold, no interim answer passed on).
 *
 * No I/O here: the connection (upstream.c) reads into pc_gw_upparse_room
 * and reports the bytes with pc_gw_upparse_feed; fuzz/fuzz_upstream.c
 * drives the same calls from fuzzer input. */
#ifndef PC_GW_UPPARSE_H
#define PC_GW_UPPARSE_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The most headers an upstream answer may have, and the bytes of its head
 * (status line and headers); more is PC_GW_UP_TOO_LARGE (a 502). */
#define PC_GW_UPSTREAM_MAX_HEADER_COUNT 256u
#define PC_GW_UPSTREAM_MAX_HEADERS (16u * 1024u)
/* The reader reads at most this much at a time; its buffer grows from
 * 4 KiB to the head limit plus this. */
#define PC_GW_UPSTREAM_READ (16u * 1024u)
/* A body buffer larger than this is freed after its exchange rather than
 * kept for the next one. */
#define PC_GW_UPSTREAM_KEEP_BODY (64u * 1024u)

typedef struct pc_gw_uphdr {
    const char *name, *value; /* NUL-terminated, valid during the callback */
} pc_gw_uphdr;

/* An upstream's answer; everything points into the reader's buffers and
 * is valid until the reader is fed, started again or freed. */
typedef struct pc_gw_upresp {
    int status;
    const pc_gw_uphdr *headers;
    size_t n_headers;
    const char *body;
    size_t body_len;
} pc_gw_upresp;

/* Where a header of the answer is in the buffer (offsets: the buffer may
 * move when it grows). */
typedef struct pc_gw_hdr_at {
    uint32_t name, name_len, value, value_len;
} pc_gw_hdr_at;

typedef struct pc_gw_upparse {
    http_parser hp;
    char *rbuf; /* the answer's head, then a window for the body */
    size_t rlen, rcap;
    size_t keep; /* head bytes kept once the body starts */
    pc_gw_hdr_at *hdrs;
    pc_gw_uphdr *hptr;
    size_t n_hdrs, hdrs_cap;
    bool head;     /* the answer to a HEAD request: no body */
    size_t max_body;
    bool last_value; /* the last header callback was a value */
    bool head_done, msg_done, got_bytes, too_large, keep_alive;
    char *body;
    size_t body_len, body_cap;
} pc_gw_upparse;

typedef enum pc_gw_upp_status {
    PC_GW_UPP_MORE,      /* not a whole answer yet */
    PC_GW_UPP_DONE,      /* a whole answer: pc_gw_upparse_answer */
    PC_GW_UPP_BROKEN,    /* malformed, or cut short (at EOF) */
    PC_GW_UPP_TOO_LARGE, /* head or body over its limit */
} pc_gw_upp_status;

/* Ready for the answer to a new request (buffers are kept for reuse). */
void pc_gw_upparse_start(pc_gw_upparse *p, bool head, size_t max_body);
/* Where to read the next bytes into and how many fit (at least 1024, or
 * what is left under the limit); NULL when nothing fits (too large, or
 * out of memory). */
char *pc_gw_upparse_room(pc_gw_upparse *p, size_t *len);
/* n bytes (n > 0) were read into the room. On DONE, *trailing says whether
 * bytes came after the answer (the connection cannot be reused then). */
pc_gw_upp_status pc_gw_upparse_feed(pc_gw_upparse *p, size_t n, bool *trailing);
/* The upstream closed: DONE when that ends an answer delimited by the
 * close; else BROKEN (p->got_bytes says whether any answer had begun). */
pc_gw_upp_status pc_gw_upparse_eof(pc_gw_upparse *p);
/* After DONE: the answer, its names and values NUL-terminated in place.
 * false for a status outside 200-599 (101 is never asked for: Upgrade is
 * not forwarded), a broken answer. */
bool pc_gw_upparse_answer(pc_gw_upparse *p, pc_gw_upresp *out);
/* Let a large body buffer go between exchanges. */
void pc_gw_upparse_trim(pc_gw_upparse *p);
void pc_gw_upparse_free(pc_gw_upparse *p);

#endif
