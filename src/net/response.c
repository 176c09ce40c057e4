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

static bool ensure_out(pc_conn *c, size_t need)
{
    if (need <= c->out_cap) return true;
    size_t cap = c->out_cap ? c->out_cap : 4096;
    while (cap < need) cap *= 2;
    char *o = realloc(c->out, cap);
    if (o == NULL) return false;
    c->out = o;
    c->out_cap = cap;
    return true;
}

void pc_response_build(pc_conn *c, int status, const char *ctype, const char *body, size_t len,
                       bool omit_body)
{
    pc_request *r = &c->req;
    pc_worker_refresh_date(c->w);
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\n"
                     "Date: %s\r\n"
                     "Content-Length: %zu\r\n"
                     "X-Request-Id: %s\r\n"
                     "%s%s%s"
                     "%s",
                     status, pc_http_reason(status), c->w->date, len, r->id,
                     ctype ? "Content-Type: " : "", ctype ? ctype : "", ctype ? "\r\n" : "",
                     c->close_after ? "Connection: close\r\n" : "");
    size_t hl = (size_t)n < sizeof head ? (size_t)n : sizeof head - 1;
    /* A HEAD response states the length GET would send (RFC 9110 §9.3.2)
     * and sends no body. */
    size_t body_len = omit_body ? 0 : len;
    size_t need = hl + r->hdrs_len + 2 + body_len;
    if (!ensure_out(c, need)) {
        /* Out of memory: drop the connection rather than send half. */
        c->out_len = c->out_off = 0;
        c->close_after = true;
        return;
    }
    memcpy(c->out, head, hl);
    memcpy(c->out + hl, r->hdrs, r->hdrs_len);
    memcpy(c->out + hl + r->hdrs_len, "\r\n", 2);
    if (body_len) memcpy(c->out + hl + r->hdrs_len + 2, body, body_len);
    c->out_len = need;
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
