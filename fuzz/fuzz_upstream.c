/* Fuzz the raw upstream client's answer reader (gw/upparse.c) the way a
 * connection drives it: an upstream is only as trusted as the network
 * path to it, so its answer is untrusted bytes.
 *
 * Input: one flags byte (bit 0: the request was a HEAD; bits 1-7: the
 * body limit, in units of 64 bytes), then the answer, delivered in reads
 * whose sizes come from the answer's own bytes (so splits fall at
 * fuzzer-chosen places), each no larger than the room the reader offers.
 * Two exchanges run on one reader, as on a kept-alive connection, and the
 * second starts from where the first left its buffers. Every answer the
 * reader calls whole must keep the promises upstream.c and exchange.c
 * rely on. */
#include "gw/upparse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_answer(pc_gw_upparse *p, bool head, size_t max_body)
{
    pc_gw_upresp r;
    if (!pc_gw_upparse_answer(p, &r)) return;
    if (r.status < 200 || r.status > 599) abort();
    if (r.n_headers > PC_GW_UPSTREAM_MAX_HEADER_COUNT) abort();
    if (r.body_len > max_body) abort();
    if (head && r.body_len != 0) abort();
    size_t total = 0;
    for (size_t i = 0; i < r.n_headers; i++) {
        /* Names and values are NUL-terminated inside the reader's buffer. */
        const char *n = r.headers[i].name, *v = r.headers[i].value;
        if (n < p->rbuf || n >= p->rbuf + p->rcap || v < p->rbuf || v >= p->rbuf + p->rcap) abort();
        size_t nl = strnlen(n, (size_t)(p->rbuf + p->rcap - n));
        size_t vl = strnlen(v, (size_t)(p->rbuf + p->rcap - v));
        if (n + nl >= p->rbuf + p->rcap || v + vl >= p->rbuf + p->rcap) abort();
        total += nl + vl;
    }
    if (total > PC_GW_UPSTREAM_MAX_HEADERS) abort();
    volatile char sink = 0;
    if (r.body_len) sink ^= r.body[0] ^ r.body[r.body_len - 1];
    (void)sink;
}

/* One exchange: feed from *pos until an answer, an error or the input
 * ends (then EOF). */
static void exchange(pc_gw_upparse *p, const uint8_t *in, size_t len, size_t *pos, bool head,
                     size_t max_body)
{
    pc_gw_upparse_start(p, head, max_body);
    for (;;) {
        size_t room = 0;
        char *at = pc_gw_upparse_room(p, &room);
        if (at == NULL) return; /* too large: the connection fails */
        if (room == 0) abort();
        if (*pos >= len) {
            if (pc_gw_upparse_eof(p) == PC_GW_UPP_DONE) check_answer(p, head, max_body);
            return;
        }
        /* The next read's size: 1 + the byte at pos, bounded by the room. */
        size_t want = 1 + (size_t)in[*pos] * 7;
        if (want > room) want = room;
        if (want > len - *pos) want = len - *pos;
        memcpy(at, in + *pos, want);
        *pos += want;
        bool trailing = false;
        switch (pc_gw_upparse_feed(p, want, &trailing)) {
        case PC_GW_UPP_MORE: break;
        case PC_GW_UPP_DONE: check_answer(p, head, max_body); return;
        case PC_GW_UPP_BROKEN:
        case PC_GW_UPP_TOO_LARGE: return;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    bool head = data[0] & 1;
    size_t max_body = (size_t)(data[0] >> 1) * 64;
    pc_gw_upparse p;
    memset(&p, 0, sizeof p);
    size_t pos = 0;
    exchange(&p, data + 1, size - 1, &pos, head, max_body);
    exchange(&p, data + 1, size - 1, &pos, !head, max_body);
    pc_gw_upparse_trim(&p);
    pc_gw_upparse_free(&p);
    return 0;
}
