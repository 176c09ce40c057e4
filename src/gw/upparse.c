/* The raw upstream client's answer reader (see upparse.h). http-parser
 * does the parsing; here are where the pieces land, the limits, and the
 * buffer that holds the head while the body is copied out. */
#include "gw/upparse.h"

#include <stdlib.h>
#include <string.h>

static pc_gw_upparse *parse_of(http_parser *hp) { return hp->data; }

static int on_msg_begin(http_parser *hp)
{
    pc_gw_upparse *p = parse_of(hp);
    p->n_hdrs = 0;
    p->last_value = false;
    p->head_done = false;
    p->body_len = 0;
    return 0;
}

static int on_hfield(http_parser *hp, const char *at, size_t len)
{
    pc_gw_upparse *p = parse_of(hp);
    if (p->head_done) return 0; /* trailers: dropped */
    uint32_t off = (uint32_t)(at - p->rbuf);
    if (p->n_hdrs > 0 && !p->last_value) {
        /* The name continues in this read (the buffer is contiguous). */
        pc_gw_hdr_at *h = &p->hdrs[p->n_hdrs - 1];
        if (off != h->name + h->name_len) return -1;
        h->name_len += (uint32_t)len;
        h->value = h->name + h->name_len;
        return 0;
    }
    if (p->n_hdrs == PC_GW_UPSTREAM_MAX_HEADER_COUNT) {
        p->too_large = true;
        return -1;
    }
    if (p->n_hdrs == p->hdrs_cap) {
        size_t cap = p->hdrs_cap ? p->hdrs_cap * 2 : 32;
        pc_gw_hdr_at *h = realloc(p->hdrs, cap * sizeof *h);
        if (h == NULL) return -1;
        p->hdrs = h;
        pc_gw_uphdr *hp2 = realloc(p->hptr, cap * sizeof *hp2);
        if (hp2 == NULL) return -1;
        p->hptr = hp2;
        p->hdrs_cap = cap;
    }
    /* A header without a value has an empty one, at the end of its name. */
    p->hdrs[p->n_hdrs++] = (pc_gw_hdr_at){off, (uint32_t)len, off + (uint32_t)len, 0};
    p->last_value = false;
    return 0;
}

static int on_hvalue(http_parser *hp, const char *at, size_t len)
{
    pc_gw_upparse *p = parse_of(hp);
    if (p->head_done || p->n_hdrs == 0) return 0;
    pc_gw_hdr_at *h = &p->hdrs[p->n_hdrs - 1];
    uint32_t off = (uint32_t)(at - p->rbuf);
    if (!p->last_value) h->value = off;
    else if (off != h->value + h->value_len) return -1; /* obs-fold: refused (RFC 9112 §5.2) */
    h->value_len += (uint32_t)len;
    p->last_value = true;
    return 0;
}

static int on_hdone(http_parser *hp)
{
    pc_gw_upparse *p = parse_of(hp);
    p->head_done = true;
    /* The head stays in the buffer up to here (each name and value plus
     * the byte after it, which becomes its NUL); body bytes come after. */
    size_t keep = 0;
    for (size_t i = 0; i < p->n_hdrs; i++) {
        size_t e = (size_t)p->hdrs[i].value + p->hdrs[i].value_len + 1;
        size_t en = (size_t)p->hdrs[i].name + p->hdrs[i].name_len + 1;
        if (e > keep) keep = e;
        if (en > keep) keep = en;
    }
    p->keep = keep;
    if (keep > PC_GW_UPSTREAM_MAX_HEADERS) {
        p->too_large = true;
        return -1;
    }
    /* 1 = no body (RFC 9110 §9.3.2: a HEAD answer has none, whatever its
     * Content-Length says); 1xx answers have none either. */
    return p->head && hp->status_code >= 200 ? 1 : 0;
}

static int on_body_data(http_parser *hp, const char *at, size_t len)
{
    pc_gw_upparse *p = parse_of(hp);
    size_t max = p->max_body;
    if (len > max || p->body_len > max - len) {
        p->too_large = true;
        return -1;
    }
    if (p->body_len + len > p->body_cap) {
        size_t cap = p->body_cap ? p->body_cap : 1024;
        while (cap < p->body_len + len) cap *= 2;
        if (cap > max) cap = max;
        char *b = realloc(p->body, cap);
        if (b == NULL) return -1;
        p->body = b;
        p->body_cap = cap;
    }
    memcpy(p->body + p->body_len, at, len);
    p->body_len += len;
    return 0;
}

static int on_msg_done(http_parser *hp)
{
    pc_gw_upparse *p = parse_of(hp);
    if (hp->status_code >= 100 && hp->status_code < 200 && hp->status_code != 101) {
        /* An interim answer (103 Early Hints): not passed on; the final
         * answer follows. */
        p->head_done = false;
        p->n_hdrs = 0;
        return 0;
    }
    p->msg_done = true;
    p->keep_alive = http_should_keep_alive(hp) != 0;
    http_parser_pause(hp, 1); /* bytes after the answer are not ours */
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_msg_begin,
    .on_header_field = on_hfield,
    .on_header_value = on_hvalue,
    .on_headers_complete = on_hdone,
    .on_body = on_body_data,
    .on_message_complete = on_msg_done,
};

void pc_gw_upparse_start(pc_gw_upparse *p, bool head, size_t max_body)
{
    http_parser_init(&p->hp, HTTP_RESPONSE);
    p->hp.data = p;
    p->rlen = 0;
    p->keep = 0;
    p->n_hdrs = 0;
    p->head = head;
    p->max_body = max_body;
    p->last_value = p->head_done = p->msg_done = p->got_bytes = p->too_large = false;
    p->keep_alive = false;
    p->body_len = 0;
}

char *pc_gw_upparse_room(pc_gw_upparse *p, size_t *len)
{
    *len = 0;
    if (p->rcap - p->rlen < 1024) {
        size_t cap = p->rcap ? p->rcap * 2 : 4096;
        if (cap > PC_GW_UPSTREAM_MAX_HEADERS + PC_GW_UPSTREAM_READ)
            cap = PC_GW_UPSTREAM_MAX_HEADERS + PC_GW_UPSTREAM_READ;
        if (cap > p->rcap) {
            char *b = realloc(p->rbuf, cap);
            if (b != NULL) {
                p->rbuf = b;
                p->rcap = cap;
            }
        }
    }
    if (p->rcap <= p->rlen) return NULL;
    *len = p->rcap - p->rlen;
    return p->rbuf + p->rlen;
}

pc_gw_upp_status pc_gw_upparse_feed(pc_gw_upparse *p, size_t n, bool *trailing)
{
    *trailing = false;
    p->got_bytes = true;
    char *data = p->rbuf + p->rlen;
    p->rlen += n;
    size_t used = http_parser_execute(&p->hp, &settings, data, n);
    if (p->msg_done) {
        *trailing = used != n;
        return PC_GW_UPP_DONE;
    }
    if (HTTP_PARSER_ERRNO(&p->hp) != HPE_OK)
        return p->too_large ? PC_GW_UPP_TOO_LARGE : PC_GW_UPP_BROKEN;
    if (p->head_done) p->rlen = p->keep; /* the body was copied out */
    else if (p->rlen > PC_GW_UPSTREAM_MAX_HEADERS) return PC_GW_UPP_TOO_LARGE;
    return PC_GW_UPP_MORE;
}

pc_gw_upp_status pc_gw_upparse_eof(pc_gw_upparse *p)
{
    /* EOF ends an answer delimited by the close (no length). */
    if (p->got_bytes && !p->msg_done) http_parser_execute(&p->hp, &settings, NULL, 0);
    return p->msg_done ? PC_GW_UPP_DONE : PC_GW_UPP_BROKEN;
}

bool pc_gw_upparse_answer(pc_gw_upparse *p, pc_gw_upresp *out)
{
    for (size_t i = 0; i < p->n_hdrs; i++) {
        pc_gw_hdr_at *h = &p->hdrs[i];
        p->rbuf[h->name + h->name_len] = '\0';
        p->rbuf[h->value + h->value_len] = '\0';
        p->hptr[i] = (pc_gw_uphdr){p->rbuf + h->name, p->rbuf + h->value};
    }
    *out = (pc_gw_upresp){(int)p->hp.status_code, p->hptr, p->n_hdrs, p->body, p->body_len};
    return out->status >= 200 && out->status <= 599;
}

void pc_gw_upparse_trim(pc_gw_upparse *p)
{
    if (p->body_cap <= PC_GW_UPSTREAM_KEEP_BODY) return;
    free(p->body);
    p->body = NULL;
    p->body_cap = 0;
}

void pc_gw_upparse_free(pc_gw_upparse *p)
{
    free(p->rbuf);
    free(p->hdrs);
    free(p->hptr);
    free(p->body);
    memset(p, 0, sizeof *p);
}
