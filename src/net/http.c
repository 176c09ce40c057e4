/* HTTP/1.1 request glue over http-parser, with the limits and smuggling
 * defences of RFC 9112:
 *
 *   HTTP-message = start-line CRLF *( field-line CRLF ) CRLF [ message-body ]
 *   field-line   = field-name ":" OWS field-value OWS
 *
 * http-parser does the parsing (strict mode). Around it we:
 *   - find the end of the head ourselves first, so that the head size limit
 *     (431) holds however the bytes arrive, and refuse obs-fold (RFC 9112
 *     §5.2), bare LF line ends and NUL anywhere in the head (400);
 *   - count header fields (431);
 *   - refuse Content-Length together with Transfer-Encoding, a repeated
 *     Content-Length or Transfer-Encoding, and any transfer coding but
 *     "chunked" (RFC 9112 §6.1, §6.3: the request-smuggling vectors);
 *   - refuse a missing or repeated Host on HTTP/1.1 (RFC 9112 §3.2);
 *   - bound the body (413), declared or chunked. */
#include "core/str.h"
#include "net/http.h"

#include "core/limits.h"

#include <stdlib.h>
#include <string.h>

static int fail(pc_http_rx *rx, int status, const char *reason)
{
    if (rx->error_status == 0) {
        rx->error_status = status;
        rx->error_reason = reason;
    }
    return -1;
}

static pc_http_rx *rx_of(http_parser *p) { return (pc_http_rx *)p->data; }

/* Extend s with [at, at+len) when the bytes are contiguous with it (a field
 * split across two reads); otherwise start it at at. */
static void extend(pc_str *s, const char *at, size_t len)
{
    if (s->ptr != NULL && s->ptr + s->len == at)
        s->len += len;
    else {
        s->ptr = at;
        s->len = len;
    }
}

static int on_message_begin(http_parser *p)
{
    (void)p;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    extend(&rx_of(p)->req.target, at, len);
    return 0;
}

/* RFC 9110 §5.6.2 tchar, as a table: every byte of every header name. */
static const bool tchar[256] = {
    ['0' ... '9'] = true, ['a' ... 'z'] = true, ['A' ... 'Z'] = true,
    ['!'] = true, ['#'] = true, ['$'] = true, ['%'] = true, ['&'] = true, ['\''] = true,
    ['*'] = true, ['+'] = true, ['-'] = true, ['.'] = true, ['^'] = true, ['_'] = true,
    ['`'] = true, ['|'] = true, ['~'] = true,
};

static bool is_tchar(unsigned char c) { return tchar[c]; }

/* Checks that need the whole field: run when the next field starts or the
 * head ends. */
static int finish_header(pc_http_rx *rx)
{
    if (rx->req.n_headers == 0) return 0;
    pc_header *h = &rx->headers[rx->req.n_headers - 1];
    while (h->value.len > 0 &&
           (h->value.ptr[h->value.len - 1] == ' ' || h->value.ptr[h->value.len - 1] == '\t'))
        h->value.len--;
    if (h->name.len == 0) return fail(rx, 400, "empty_header_name");
    for (size_t i = 0; i < h->name.len; i++)
        if (!is_tchar((unsigned char)h->name.ptr[i])) return fail(rx, 400, "invalid_header_name");
    if (!pc_field_value_ok(h->value)) return fail(rx, 400, "invalid_header_value");

    if (pc_str_eq_lit_ci(h->name, "content-length")) {
        if (rx->seen_cl) return fail(rx, 400, "duplicate_content_length");
        rx->seen_cl = true;
    } else if (pc_str_eq_lit_ci(h->name, "transfer-encoding")) {
        if (rx->seen_te) return fail(rx, 400, "duplicate_transfer_encoding");
        rx->seen_te = true;
        if (!pc_str_eq_lit_ci(h->value, "chunked"))
            return fail(rx, 501, "unsupported_transfer_encoding");
    } else if (pc_str_eq_lit_ci(h->name, "host")) {
        if (rx->seen_host) return fail(rx, 400, "duplicate_host");
        rx->seen_host = true;
        rx->req.host = h->value;
    } else if (pc_str_eq_lit_ci(h->name, "expect")) {
        if (!pc_str_eq_lit_ci(h->value, "100-continue")) return fail(rx, 417, "unsupported_expect");
        rx->expect_continue = true;
    }
    if (rx->seen_cl && rx->seen_te) return fail(rx, 400, "content_length_with_transfer_encoding");
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    pc_http_rx *rx = rx_of(p);
    if (rx->in_header_value || rx->req.n_headers == 0) {
        if (finish_header(rx) != 0) return -1;
        if (rx->req.n_headers >= rx->limits->max_header_count)
            return fail(rx, 431, "header_count");
        pc_header *h = &rx->headers[rx->req.n_headers++];
        h->name = (pc_str){at, len};
        h->value = (pc_str){NULL, 0};
        rx->in_header_value = false;
        return 0;
    }
    extend(&rx->headers[rx->req.n_headers - 1].name, at, len);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    pc_http_rx *rx = rx_of(p);
    if (rx->req.n_headers == 0) return fail(rx, 400, "header_value_without_name");
    extend(&rx->headers[rx->req.n_headers - 1].value, at, len);
    rx->in_header_value = true;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    pc_http_rx *rx = rx_of(p);
    pc_http_req *req = &rx->req;
    if (finish_header(rx) != 0) return -1;
    rx->headers_done = true;
    if (p->http_major != 1) return fail(rx, 505, "http_version");
    req->http_major = p->http_major;
    req->http_minor = p->http_minor;
    if (p->method == HTTP_CONNECT) return fail(rx, 501, "connect_not_supported");
    req->method = pc_str_c(http_method_str((enum http_method)p->method));
    req->is_head = p->method == HTTP_HEAD;
    if (req->target.len == 0 || req->target.ptr[0] != '/')
        return fail(rx, 400, "request_target_not_origin_form");
    const char *q = memchr(req->target.ptr, '?', req->target.len);
    if (q) {
        req->path = (pc_str){req->target.ptr, (size_t)(q - req->target.ptr)};
        req->query = (pc_str){q + 1, req->target.len - req->path.len - 1};
    } else {
        req->path = req->target;
    }
    if (p->http_minor >= 1 && !rx->seen_host) return fail(rx, 400, "missing_host");
    if (rx->seen_cl && p->content_length > rx->limits->max_body_bytes)
        return fail(rx, 413, "body_bytes");
    req->keep_alive = http_should_keep_alive(p) != 0;
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    pc_http_rx *rx = rx_of(p);
    if (len > rx->limits->max_body_bytes - rx->req.body_len) return fail(rx, 413, "body_bytes");
    size_t need = rx->req.body_len + len;
    if (need > rx->body_cap) {
        /* Grow geometrically, never past the limit: the size comes from
         * bytes received, not from a length the peer declared. */
        size_t cap = rx->body_cap ? rx->body_cap : 4096;
        while (cap < need) cap *= 2;
        if (cap > rx->limits->max_body_bytes) cap = rx->limits->max_body_bytes;
        char *nb = realloc(rx->body, cap);
        if (nb == NULL) return fail(rx, 503, "out_of_memory");
        rx->body = nb;
        rx->body_cap = cap;
    }
    memcpy(rx->body + rx->req.body_len, at, len);
    rx->req.body_len = need;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    pc_http_rx *rx = rx_of(p);
    rx->message_done = true;
    rx->req.body = rx->req.body_len ? rx->body : NULL;
    /* Stop here so that pipelined requests are answered one at a time. */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

pc_result pc_http_rx_init(pc_http_rx *rx, const pc_limits_config *limits)
{
    memset(rx, 0, sizeof *rx);
    rx->limits = limits;
    rx->headers = calloc(limits->max_header_count, sizeof *rx->headers);
    PC_ENSURE(rx->headers != NULL, PC_ERR_INTERNAL, "out of memory for headers");
    pc_http_rx_reset(rx);
    return PC_OK;
}

pc_result pc_http_rx_init_lent(pc_http_rx *rx, const pc_limits_config *limits)
{
    memset(rx, 0, sizeof *rx);
    rx->limits = limits;
    rx->headers_lent = true;
    pc_http_rx_reset(rx);
    return PC_OK;
}

void pc_http_rx_lend_headers(pc_http_rx *rx, pc_header *headers)
{
    rx->headers = headers;
    rx->req.headers = headers;
}

void pc_http_rx_free(pc_http_rx *rx)
{
    if (!rx->headers_lent) free(rx->headers);
    free(rx->body);
    rx->headers = NULL;
    rx->body = NULL;
}

void pc_http_rx_reset(pc_http_rx *rx)
{
    http_parser_init(&rx->parser, HTTP_REQUEST);
    rx->parser.data = rx;
    memset(&rx->req, 0, sizeof rx->req);
    rx->req.headers = rx->headers;
    rx->header_bytes = 0;
    rx->head_start = NULL;
    rx->in_header_value = false;
    rx->line_checked = false;
    rx->headers_done = false;
    rx->message_done = false;
    rx->expect_continue = false;
    rx->seen_cl = rx->seen_te = rx->seen_host = false;
    rx->error_status = 0;
    rx->error_reason = NULL;
    /* Drop the body buffer between requests: an idle connection holds
     * nothing it does not need. */
    if (rx->body_cap > 0) {
        free(rx->body);
        rx->body = NULL;
        rx->body_cap = 0;
    }
}

bool pc_http_rx_started(const pc_http_rx *rx) { return rx->head_start != NULL; }

/* RFC 9112 §3: request-line = method SP request-target SP HTTP-version,
 * exactly one SP between the parts. http-parser tolerates runs of spaces;
 * a lenient parser in front of a strict one is how request lines get
 * smuggled past filters, so anything else is refused (§3: MUST NOT be
 * autocorrected). */
static bool request_line_ok(const char *line, size_t len)
{
    size_t spaces = 0;
    if (len == 0 || line[0] == ' ' || line[len - 1] == ' ') return false;
    for (size_t i = 0; i < len; i++) {
        if (line[i] == '\t') return false;
        if (line[i] != ' ') continue;
        if (line[i + 1] == ' ') return false;
        spaces++;
    }
    return spaces == 2;
}

/* Scan new head bytes [from, to) (absolute offsets from head_start) for the
 * blank line that ends the head. Returns the head length including the
 * final CRLF CRLF, 0 if not found yet, or -1 (error set). */
static long scan_head(pc_http_rx *rx, size_t from, size_t to)
{
    const char *h = rx->head_start;
    /* memchr (vectorised in libc) finds the NULs and the line ends; a byte
     * loop over a head with an 800-byte token was a measurable part of a
     * proxied request. */
    const char *nul = memchr(h + from, '\0', to - from);
    size_t end = nul ? (size_t)(nul - h) : to;
    for (size_t i = from; i < end; i++) {
        const char *lf = memchr(h + i, '\n', end - i);
        if (lf == NULL) break;
        i = (size_t)(lf - h);
        if (i == 0 || h[i - 1] != '\r') return fail(rx, 400, "bare_lf");
        if (!rx->line_checked) {
            rx->line_checked = true;
            if (!request_line_ok(h, i - 1)) return fail(rx, 400, "malformed_request_line");
        }
        if (i + 1 < to && (h[i + 1] == ' ' || h[i + 1] == '\t')) return fail(rx, 400, "obs_fold");
        if (i >= 3 && h[i - 2] == '\n' && h[i - 3] == '\r') return (long)(i + 1);
    }
    if (nul) return fail(rx, 400, "nul_in_head");
    return 0;
}

static pc_http_status parser_error(pc_http_rx *rx)
{
    if (rx->error_status == 0) {
        enum http_errno e = HTTP_PARSER_ERRNO(&rx->parser);
        rx->error_status = 400;
        rx->error_reason = http_errno_name(e);
        if (e == HPE_INVALID_METHOD) rx->error_status = 501;
    }
    return PC_HTTP_ERROR;
}

pc_http_status pc_http_rx_feed(pc_http_rx *rx, const char *data, size_t len, size_t *consumed)
{
    size_t skipped = 0;
    *consumed = 0;
    if (rx->error_status) return PC_HTTP_ERROR;
    if (len == 0) return PC_HTTP_NEED_MORE; /* 0 would mean EOF to http-parser */
    if (rx->headers == NULL) {
        fail(rx, 500, "no_header_index"); /* a caller that forgot to lend it */
        return PC_HTTP_ERROR;
    }
    if (rx->head_start == NULL) {
        /* RFC 9112 §2.2: ignore empty lines before the request-line. */
        while (skipped + 1 < len && data[skipped] == '\r' && data[skipped + 1] == '\n')
            skipped += 2;
        if (skipped == len || (skipped + 1 == len && data[skipped] == '\r')) {
            *consumed = skipped;
            return PC_HTTP_NEED_MORE;
        }
        rx->head_start = data + skipped;
    }
    data += skipped;
    len -= skipped;

    size_t feed = len;
    if (!rx->headers_done) {
        size_t before = rx->header_bytes;
        size_t after = before + len;
        /* Rescan the last 3 bytes of the previous feed so a terminator split
         * across reads is found. */
        long head = scan_head(rx, before >= 3 ? before - 3 : 0, after);
        if (head < 0) return PC_HTTP_ERROR;
        size_t limit = rx->limits->max_header_bytes;
        if ((head == 0 && after > limit) || (size_t)head > limit) {
            rx->error_status = 431;
            rx->error_reason = "header_bytes";
            return PC_HTTP_ERROR;
        }
        rx->header_bytes = head ? (size_t)head : after;
    }

    size_t n = http_parser_execute(&rx->parser, &settings, data, feed);
    *consumed = skipped + n;
    if (rx->error_status) return PC_HTTP_ERROR;
    enum http_errno e = HTTP_PARSER_ERRNO(&rx->parser);
    if (rx->message_done) {
        if (e == HPE_PAUSED) http_parser_pause(&rx->parser, 0);
        /* An Upgrade request stops http-parser after the head; we do not
         * switch protocols, so the connection closes after the answer. */
        if (rx->parser.upgrade) rx->req.keep_alive = false;
        return PC_HTTP_REQUEST;
    }
    if (e != HPE_OK) return parser_error(rx);
    return PC_HTTP_NEED_MORE;
}

pc_str pc_http_header(const pc_http_req *req, const char *name)
{
    pc_str n = pc_str_c(name);
    for (size_t i = 0; i < req->n_headers; i++)
        if (pc_str_eq_ci(req->headers[i].name, n)) return req->headers[i].value;
    return PC_STR_NULL;
}

bool pc_http_path_is_safe(pc_str path)
{
    if (path.len == 0 || path.ptr[0] != '/') return false;
    size_t seg_start = 1;
    for (size_t i = 0; i <= path.len; i++) {
        if (i < path.len && path.ptr[i] == '%') {
            if (i + 2 >= path.len) return false;
            int hi = pc_hexval(path.ptr[i + 1]), lo = pc_hexval(path.ptr[i + 2]);
            if (hi < 0 || lo < 0) return false;
            int c = hi * 16 + lo;
            /* An encoded separator or NUL would let the upstream see a
             * different path than the one we routed. */
            if (c == '/' || c == '\\' || c == 0) return false;
        }
        if (i < path.len && path.ptr[i] == '\\') return false;
        if (i == path.len || path.ptr[i] == '/') {
            pc_str seg = {path.ptr + seg_start, i - seg_start};
            /* Dot segments, raw or encoded (RFC 3986 §3.3, §6.2.2.2). */
            if (pc_str_eq(seg, PC_STR(".")) || pc_str_eq(seg, PC_STR("..")) ||
                pc_str_eq_lit_ci(seg, "%2e") || pc_str_eq_lit_ci(seg, "%2e%2e") ||
                pc_str_eq_lit_ci(seg, ".%2e") || pc_str_eq_lit_ci(seg, "%2e."))
                return false;
            seg_start = i + 1;
        }
    }
    return true;
}

const char *pc_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}
