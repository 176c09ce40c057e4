/* Response serialisation. Every response carries Date (RFC 9110 §6.6.1;
 * the FAPI resource-server tests fail without it), Content-Length, and
 * Connection: close when we will close. */
#include "core/log.h"
#include "net/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void pc_worker_refresh_date(pc_worker *w)
{
    time_t now = time(NULL);
    if (now == w->date_sec) return;
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(w->date, sizeof w->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    w->date_sec = now;
}

/* The first size of a response buffer; it doubles from there. */
#define PC_OUT_FIRST 4096u

static bool ensure_out(pc_conn *c, size_t need)
{
    if (need <= c->out_cap) return true;
    if (c->out == NULL && need <= PC_OUT_FIRST) {
        /* The common case: a head and a small body fit the first size,
         * which the worker keeps spares of. */
        if ((c->out = pc_spares_take(&c->w->spare_out, PC_OUT_FIRST)) == NULL) return false;
        c->out_cap = PC_OUT_FIRST;
        return true;
    }
    size_t cap = c->out_cap ? c->out_cap : PC_OUT_FIRST;
    while (cap < need) cap *= 2;
    char *o = realloc(c->out, cap);
    if (o == NULL) return false;
    c->out = o;
    c->out_cap = cap;
    return true;
}

/* Append helpers for the response head: plain copies, because printf-style
 * formatting was the largest user-space cost per keep-alive request. */
static char *put(char *o, const char *s, size_t n)
{
    if (n == 0) return o; /* s may be NULL then (no extra headers yet) */
    memcpy(o, s, n);
    return o + n;
}
#define PUT_LIT(o, lit) put((o), (lit), sizeof(lit) - 1)

static char *put_uint(char *o, size_t v)
{
    char tmp[24];
    char *p = tmp + sizeof tmp;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return put(o, p, (size_t)(tmp + sizeof tmp - p));
}

void pc_response_build(pc_conn *c, int status, const char *ctype, const char *body, size_t len,
                       bool omit_body)
{
    pc_request *r = &c->req;
    pc_worker_refresh_date(c->w);
    if (status < 100 || status > 999) status = 500;
    const char *reason = pc_http_reason(status);
    size_t rl = strlen(reason), dl = strlen(c->w->date), il = strlen(r->id);
    size_t cl = ctype ? strlen(ctype) : 0;
    /* A HEAD response states the length GET would send (RFC 9110 §9.3.2)
     * and sends no body. */
    size_t body_len = omit_body ? 0 : len;
    size_t head_max = 160 + rl + dl + il + cl + r->hdrs_len;
    if (!ensure_out(c, head_max + body_len)) {
        /* Out of memory: drop the connection rather than send half. */
        c->out_len = c->out_off = 0;
        c->close_after = true;
        return;
    }
    char *o = c->out;
    o = PUT_LIT(o, "HTTP/1.1 ");
    *o++ = (char)('0' + status / 100);
    *o++ = (char)('0' + status / 10 % 10);
    *o++ = (char)('0' + status % 10);
    *o++ = ' ';
    o = put(o, reason, rl);
    o = PUT_LIT(o, "\r\nDate: ");
    o = put(o, c->w->date, dl);
    o = PUT_LIT(o, "\r\nContent-Length: ");
    o = put_uint(o, len);
    o = PUT_LIT(o, "\r\nX-Request-Id: ");
    o = put(o, r->id, il);
    o = PUT_LIT(o, "\r\n");
    if (ctype) {
        o = PUT_LIT(o, "Content-Type: ");
        o = put(o, ctype, cl);
        o = PUT_LIT(o, "\r\n");
    }
    if (c->close_after) o = PUT_LIT(o, "Connection: close\r\n");
    o = put(o, r->hdrs, r->hdrs_len);
    o = PUT_LIT(o, "\r\n");
    if (body_len) o = put(o, body, body_len);
    c->out_len = (size_t)(o - c->out);
    c->out_off = 0;
}

static void json_escape(char *out, size_t cap, const char *s)
{
    size_t o = 0;
    for (; *s && o + 7 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", ch);
        } else {
            out[o++] = (char)ch;
        }
    }
    out[o] = '\0';
}

void pc_respond_problem(pc_request *r, int status, const char *detail)
{
    /* RFC 9457 problem details; "about:blank" because the status says it
     * all and detail says which limit or rule. */
    char esc[512], body[1024];
    json_escape(esc, sizeof esc, detail ? detail : "");
    int n = snprintf(body, sizeof body,
                     "{\"type\":\"about:blank\",\"title\":\"%s\",\"status\":%d,\"detail\":\"%s\","
                     "\"request_id\":\"%s\"}",
                     pc_http_reason(status), status, esc, r->id);
    size_t len = (size_t)n < sizeof body ? (size_t)n : sizeof body - 1;
    pc_response_header(r, "Cache-Control", PC_STR("no-store"));
    pc_respond(r, status, "application/problem+json", body, len);
}
