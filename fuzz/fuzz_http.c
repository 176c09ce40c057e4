/* Fuzz the HTTP request glue the way a connection drives it: the input is
 * split at a fuzzer-chosen point into two reads, pipelined requests are
 * consumed one after another, and every request that parses must satisfy
 * the invariants the rest of the server relies on. */
#include "net/http.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_request(const pc_http_req *r)
{
    /* Everything the router and handlers read must be in bounds and sane. */
    if (r->path.len == 0 || r->path.ptr[0] != '/') abort();
    if (r->path.len > r->target.len) abort();
    for (size_t i = 0; i < r->n_headers; i++) {
        const pc_header *h = &r->headers[i];
        for (size_t j = 0; j < h->value.len; j++)
            if (h->value.ptr[j] == '\r' || h->value.ptr[j] == '\n' || h->value.ptr[j] == 0) abort();
    }
    volatile char sink = 0;
    if (r->body_len) sink ^= r->body[r->body_len - 1];
    (void)pc_http_path_is_safe(r->path);
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    pc_limits_config lim = {0};
    lim.max_header_bytes = 4096;
    lim.max_header_count = 32;
    lim.max_body_bytes = 4096;
    size_t split = data[0] % (size);
    /* The connection's buffer: one contiguous copy, fed in two parts. */
    char *buf = malloc(size);
    if (!buf) return 0;
    memcpy(buf, data + 1, size - 1);
    size_t len = size - 1;
    pc_http_rx rx;
    if (!pc_ok(pc_http_rx_init(&rx, &lim))) {
        free(buf);
        return 0;
    }
    size_t off = 0, avail = split < len ? split : len;
    for (int guard = 0; guard < 64; guard++) {
        size_t used = 0;
        pc_http_status st = pc_http_rx_feed(&rx, buf + off, avail - off, &used);
        if (used > avail - off) abort();
        off += used;
        if (st == PC_HTTP_ERROR) {
            if (rx.error_status < 400 || rx.error_status > 599) abort();
            break;
        }
        if (st == PC_HTTP_REQUEST) {
            check_request(&rx.req);
            pc_http_rx_reset(&rx);
            /* Bytes of the next request start at off: rebase like the
             * connection does by continuing from there. */
            if (off == len) break;
            if (avail < off) avail = off;
            continue;
        }
        if (avail == len) break;
        avail = len;
    }
    pc_http_rx_free(&rx);
    free(buf);
    return 0;
}
