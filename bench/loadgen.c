/* loadgen: a small HTTPS/1.1 load generator for portcullis' benchmarks.
 *
 * Why not wrk: wrk cannot present a TLS client certificate, and portcullis
 * is an mTLS server, so the interesting cases need one. Later benchmarks also
 * need a different header set on each request (tokens, DPoP proofs), prepared
 * in advance so that the generator spends no time making them.
 *
 * Design: T threads, each with its own event_base and its own share of the
 * connections; nothing is shared between threads on the request path except
 * the read-only SSL_CTX and request templates (plus one relaxed atomic
 * counter when a headers file is used, or one per block of lines when
 * single-use lines are handed out). Each connection is a small state
 * machine driving a non-blocking SSL object straight from libevent fd events
 * (no bufferevents: fewer copies and allocations). One request is in flight
 * per connection. Latency goes into a fixed log-linear histogram per thread;
 * the histograms are merged at the end.
 *
 * Modes:
 *   keepalive  each connection sends requests back to back;
 *   handshake  every request on a new TCP+TLS connection with
 *              "Connection: close" and no session resumption, so the rate
 *              is that of full handshakes.
 *
 * Requests completing inside [start+warmup, start+warmup+duration] are
 * counted; the rest are not.
 *
 * Single-use requests (--bodies-file, --headers-file with --no-wrap): some
 * requests may be sent once only (a client assertion's or a DPoP proof's
 * jti is single use). Then request i uses line i of each such file, never
 * line i mod n: each thread claims blocks of LINE_BLOCK consecutive line
 * numbers from a global counter and hands them to its connections in turn,
 * so no two requests of the run share a line. When the lines run out, the
 * run stops there (measured window shortened, "lines_exhausted" reported)
 * rather than wrap around and send replays. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* ---- limits ------------------------------------------------------------ */

/* Response head buffer per connection; also the read buffer for bodies,
 * which are counted and discarded, never stored. */
#define RBUF_CAP (16u * 1024u)
#define MAX_HEADER_LINE (64u * 1024u)    /* one headers-file line */
#define MAX_HEADERS_FILE (1024u * 1024u * 1024u)
#define MAX_BODY_FILE (64u * 1024u * 1024u)
#define MAX_BODIES_FILE (2048ull * 1024u * 1024u) /* one body per line */
#define MAX_BODY_LINE (1024u * 1024u)
#define LINE_BLOCK 32u /* single-use lines a thread claims at a time */
#define STATUS_CODES 600u /* status codes counted one by one: 0..599 */
#define MAX_CONNECTIONS 100000u
#define MAX_THREADS 256u
#define RECONNECT_DELAY_MS 10  /* after an error: do not spin on a dead server */
#define DRAIN_TIMEOUT_MS 1000  /* handshake mode: wait this long for the server's close */

/* ---- histogram: log-linear, 32 linear sub-buckets per power of two -------
 * Values are nanoseconds. Below 64 ns each value has its own bucket; above,
 * relative resolution is 1/32 (about 3%). 42 octaves reach ~2^46 ns (19 h),
 * far beyond any request; larger values land in the last bucket. */
#define H_SUB_BITS 5u
#define H_SUB (1u << H_SUB_BITS)
#define H_BUCKETS (H_SUB * 42u)

static unsigned hist_index(uint64_t v)
{
    if (v < H_SUB) return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - H_SUB_BITS;
    uint64_t idx = (uint64_t)shift * H_SUB + (v >> shift);
    return idx < H_BUCKETS ? (unsigned)idx : H_BUCKETS - 1u;
}

/* Midpoint of a bucket, the value reported for a percentile in it. */
static double hist_value(unsigned idx)
{
    if (idx < 2u * H_SUB) return (double)idx;
    unsigned shift = idx / H_SUB - 1u;
    uint64_t low = (uint64_t)(idx % H_SUB + H_SUB) << shift;
    return (double)low + (double)((1ull << shift) - 1u) / 2.0;
}

/* ---- options --------------------------------------------------------------- */

enum mode { MODE_KEEPALIVE, MODE_HANDSHAKE };

struct options {
    char *url;
    char host[256];  /* without brackets */
    char port[8];
    char *path;
    unsigned connections;
    unsigned threads;
    double duration;
    double warmup;
    double timeout;
    uint64_t requests; /* 0: no limit */
    enum mode mode;
    const char *cert, *key, *cacert;
    bool insecure;
    int tls_version; /* 0 negotiate, 12, 13 */
    const char *headers_file;
    const char *method;
    const char *body_file;
    const char *bodies_file;
    bool no_wrap;          /* headers file lines are single use too */
    const char *connect_to; /* connect here instead of resolving the URL host */
    bool json;
};

static struct options opt = {
    .connections = 64,
    .threads = 2,
    .duration = 10.0,
    .warmup = 1.0,
    .timeout = 10.0,
    .mode = MODE_KEEPALIVE,
    .method = "GET",
};

/* ---- request templates (read-only after start-up) ---------------------------
 * A request is prefix + header block i + suffix. The prefix holds the request
 * line, Host, Connection and Content-Length; the suffix the blank line and
 * the body. Building one is three memcpy calls into the connection's buffer. */
struct reqset {
    char *prefix;
    size_t prefix_len;
    char **hdr;
    size_t *hdr_len;
    size_t nhdr;
    char *suffix;
    size_t suffix_len;
    /* --bodies-file: per line, "Content-Length: N\r\n\r\n" + body, prepared
     * at start-up in one buffer; replaces the suffix (and the prefix then
     * has no Content-Length). */
    char *bodies;
    size_t *body_off;
    size_t *body_len;
    size_t nbody;
    size_t max_len;
};

static struct reqset rq;
static atomic_uint_fast64_t next_hdr; /* global request index: line i mod n */

/* Single-use lines: whether requests draw line numbers from line_claim, how
 * many lines there are, and whether they ran out. */
static bool use_lines;
static uint64_t line_count;
static atomic_uint_fast64_t line_claim;
static atomic_bool lines_exhausted;
static atomic_uint_fast64_t lines_exhausted_ns;

/* ---- shared run state -------------------------------------------------------- */

static SSL_CTX *ssl_ctx;
static struct sockaddr_storage server_addr;
static socklen_t server_addr_len;
static uint64_t t_start_ns, t_warm_ns, t_end_ns;

enum err_kind { E_CONNECT, E_TLS, E_IO, E_TIMEOUT, E_PROTO, E_N };
static const char *const err_names[E_N] = {"connect", "tls", "io", "timeout", "protocol"};

struct stats {
    uint64_t requests;       /* completed inside the measured window */
    uint64_t requests_total; /* completed at any time, warm-up included: lets a
                                caller divide CPU measured around the whole run */
    uint64_t non2xx;
    uint64_t status_class[6]; /* [1..5]: 1xx..5xx; [0]: other */
    uint64_t status_code[STATUS_CODES]; /* by code; >= 600 in [0] */
    uint64_t errors[E_N];
    uint64_t handshakes;
    uint64_t drain_timeouts;
    uint64_t max_ns;
    uint64_t hist[H_BUCKETS];
};

enum cstate {
    S_IDLE,       /* no socket; waiting for the reconnect timer or stopped */
    S_CONNECTING, /* TCP connect in progress */
    S_HANDSHAKE,  /* TLS handshake */
    S_WRITING,    /* sending the request */
    S_READING,    /* reading the response */
    S_DRAIN,      /* response done; waiting for the server's close */
};

enum body_mode { B_NONE, B_LENGTH, B_CHUNKED, B_EOF };
enum chunk_state { CH_SIZE, CH_EXT, CH_DATA, CH_DATA_END, CH_TRAILER };

struct worker;

struct conn {
    struct worker *w;
    struct event *ev;
    int fd;
    SSL *ssl;
    enum cstate state;
    const struct timeval *watch_tv; /* the timeout the event is armed with */
    uint64_t t_req; /* when the current request started (ns) */
    bool write_waited; /* this request's write had to wait for the socket */
    char *wbuf;
    size_t wlen, woff;
    /* response parsing */
    char rbuf[RBUF_CAP];
    size_t rlen;       /* bytes of head accumulated */
    bool in_body;
    bool server_close; /* "Connection: close" seen */
    bool got_bytes;    /* any byte of this response received */
    int status;
    enum body_mode bmode;
    uint64_t remain;   /* B_LENGTH / CH_DATA: bytes left */
    enum chunk_state cst;
    unsigned line_len; /* chunk-size or trailer line length so far */
    bool size_digits;
};

struct worker {
    unsigned id;
    pthread_t thread;
    struct event_base *base;
    struct event *end_ev;
    const struct timeval *tv_io; /* common timeouts: O(1) per add */
    const struct timeval *tv_drain;
    const struct timeval *tv_retry;
    struct conn *conns;
    unsigned nconns;
    uint64_t quota; /* measured requests this thread stops after; 0: none */
    uint64_t t_finish;
    bool stopping;
    bool traced;    /* the message callback was installed on one SSL */
    uint64_t line_next, line_end; /* claimed single-use lines [next, end) */
    uint64_t lines_used;
    struct stats st;
    /* observed once, for the summary */
    atomic_bool cert_requested;
    char proto[32];
    char cipher[64];
    char first_error[256];
    char first_non2xx[256]; /* status line and the start of the body */
};

static struct worker *workers;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "loadgen: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(2);
}

static void die_ssl(const char *what)
{
    char buf[256];
    unsigned long e = ERR_get_error();
    ERR_error_string_n(e, buf, sizeof buf);
    die(what, e ? buf : NULL);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (!p) die("out of memory", NULL);
    return p;
}

static void note_error(struct worker *w, enum err_kind kind, const char *detail)
{
    uint64_t t = now_ns();
    if (t >= t_warm_ns && t <= t_end_ns) w->st.errors[kind]++;
    /* Keep the first message so a failing run says why. */
    if (!w->first_error[0])
        snprintf(w->first_error, sizeof w->first_error, "%s: %s", err_names[kind],
                 detail && *detail ? detail : "(no detail)");
}

/* ---- connection state machine ----------------------------------------------- */

static void conn_cb(evutil_socket_t fd, short what, void *arg);
static void conn_run(struct conn *c);
static void conn_connect(struct conn *c);

/* Register a connected socket once for both directions, edge-triggered and
 * persistent: the state machine always runs until OpenSSL says it would
 * block, which is what edge triggering needs, and in exchange there is no
 * epoll_ctl per request. The timeout restarts on every activation, so it
 * is an inactivity timeout. */
static void conn_watch(struct conn *c, const struct timeval *tv)
{
    event_assign(c->ev, c->w->base, c->fd, EV_READ | EV_WRITE | EV_ET | EV_PERSIST, conn_cb, c);
    event_add(c->ev, tv);
    c->watch_tv = tv;
}

/* Change the inactivity timeout of a watched socket (no epoll change). */
static void conn_set_timeout(struct conn *c, const struct timeval *tv)
{
    if (c->watch_tv == tv) return;
    event_add(c->ev, tv);
    c->watch_tv = tv;
}

/* A socket-less connection waits for the reconnect timer. */
static void conn_retry_later(struct conn *c)
{
    event_assign(c->ev, c->w->base, -1, 0, conn_cb, c);
    event_add(c->ev, c->w->tv_retry);
    c->watch_tv = NULL;
}

static void conn_close(struct conn *c, bool abortive)
{
    event_del(c->ev);
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        if (abortive) {
            /* RST instead of FIN: leaves no TIME_WAIT behind on our side. */
            struct linger l = {.l_onoff = 1, .l_linger = 0};
            (void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        }
        close(c->fd);
        c->fd = -1;
    }
    c->state = S_IDLE;
}

static void conn_fail(struct conn *c, enum err_kind kind, const char *detail)
{
    note_error(c->w, kind, detail);
    ERR_clear_error();
    conn_close(c, true);
    if (c->w->stopping) return;
    conn_retry_later(c);
}

static void conn_fail_ssl(struct conn *c, enum err_kind kind, int sys_errno)
{
    char buf[200];
    unsigned long e = ERR_peek_error();
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    else if (sys_errno)
        snprintf(buf, sizeof buf, "%s", strerror(sys_errno));
    else
        snprintf(buf, sizeof buf, "connection closed by peer");
    conn_fail(c, kind, buf);
}

/* The next single-use line number for this thread, or UINT64_MAX when the
 * lines have run out. A thread claims LINE_BLOCK numbers at a time, so the
 * shared counter is touched once per block, and no number is handed out
 * twice. */
static uint64_t next_line(struct worker *w)
{
    if (w->line_next == w->line_end) {
        uint64_t b = atomic_fetch_add_explicit(&line_claim, LINE_BLOCK, memory_order_relaxed);
        if (b >= line_count) return UINT64_MAX;
        w->line_next = b;
        w->line_end = line_count - b > LINE_BLOCK ? b + LINE_BLOCK : line_count;
    }
    w->lines_used++;
    return w->line_next++;
}

/* No single-use line left: this thread stops, and the others stop at their
 * next request. The run ends here instead of replaying lines. */
static void lines_out(struct worker *w)
{
    uint64_t t = now_ns();
    if (!atomic_exchange(&lines_exhausted, true)) atomic_store(&lines_exhausted_ns, t);
    w->t_finish = t;
    w->stopping = true;
    event_base_loopbreak(w->base);
}

/* Install the next request and switch to writing. Returns false if the
 * single-use lines ran out (the worker is then stopping). */
static bool start_request(struct conn *c)
{
    size_t i = 0;
    if (use_lines) {
        uint64_t l = atomic_load_explicit(&lines_exhausted, memory_order_relaxed)
                         ? UINT64_MAX
                         : next_line(c->w);
        if (l == UINT64_MAX) {
            lines_out(c->w);
            return false;
        }
        i = (size_t)l;
    } else if (rq.nhdr > 1) {
        i = (size_t)(atomic_fetch_add_explicit(&next_hdr, 1, memory_order_relaxed) % rq.nhdr);
    }
    char *p = c->wbuf;
    memcpy(p, rq.prefix, rq.prefix_len);
    p += rq.prefix_len;
    if (rq.nhdr) {
        size_t h = i < rq.nhdr ? i : i % rq.nhdr; /* wraps only without --no-wrap */
        memcpy(p, rq.hdr[h], rq.hdr_len[h]);
        p += rq.hdr_len[h];
    }
    if (rq.nbody) {
        memcpy(p, rq.bodies + rq.body_off[i], rq.body_len[i]);
        p += rq.body_len[i];
    } else {
        memcpy(p, rq.suffix, rq.suffix_len);
        p += rq.suffix_len;
    }
    c->wlen = (size_t)(p - c->wbuf);
    c->woff = 0;
    c->write_waited = false;
    c->rlen = 0;
    c->in_body = false;
    c->server_close = false;
    c->got_bytes = false;
    c->status = 0;
    if (opt.mode == MODE_KEEPALIVE) c->t_req = now_ns();
    c->state = S_WRITING;
    return true;
}

/* Case-insensitive: does header line [p, p+n) have the given name? Returns
 * the value (leading spaces skipped) or NULL. */
static const char *header_value(const char *p, size_t n, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    if (n <= nl || p[nl] != ':' || strncasecmp(p, name, nl) != 0) return NULL;
    const char *v = p + nl + 1;
    const char *end = p + n;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t')) end--;
    *vlen = (size_t)(end - v);
    return v;
}

static bool contains_token(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok);
    for (size_t i = 0; i + tl <= n; i++)
        if (strncasecmp(v + i, tok, tl) == 0) return true;
    return false;
}

/* Parse the response head in c->rbuf[0, head_len). Sets status and body
 * framing. Returns false if it is not a response we understand. */
static bool parse_head(struct conn *c, size_t head_len)
{
    const char *p = c->rbuf;
    const char *end = p + head_len;
    /* "HTTP/1.x NNN" */
    if (head_len < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ') return false;
    if (p[9] < '0' || p[9] > '9' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9')
        return false;
    c->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    bool http10 = p[7] == '0';
    bool have_len = false, chunked = false, keep_alive = false;
    uint64_t len = 0;
    const char *line = memchr(p, '\n', head_len);
    if (!line) return false;
    line++;
    while (line < end) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        if (!nl) break;
        size_t n = (size_t)(nl - line);
        if (n && line[n - 1] == '\r') n--;
        if (n == 0) break;
        size_t vl;
        const char *v;
        if ((v = header_value(line, n, "content-length", &vl))) {
            if (vl == 0 || vl > 18) return false;
            len = 0;
            for (size_t i = 0; i < vl; i++) {
                if (v[i] < '0' || v[i] > '9') return false;
                len = len * 10 + (uint64_t)(v[i] - '0');
            }
            have_len = true;
        } else if ((v = header_value(line, n, "transfer-encoding", &vl))) {
            chunked = contains_token(v, vl, "chunked");
        } else if ((v = header_value(line, n, "connection", &vl))) {
            if (contains_token(v, vl, "close")) c->server_close = true;
            if (contains_token(v, vl, "keep-alive")) keep_alive = true;
        }
        line = nl + 1;
    }
    if (http10 && !keep_alive) c->server_close = true;
    if (strcmp(opt.method, "HEAD") == 0 || c->status / 100 == 1 || c->status == 204 ||
        c->status == 304) {
        c->bmode = B_NONE;
    } else if (chunked) {
        c->bmode = B_CHUNKED;
        c->cst = CH_SIZE;
        c->remain = 0;
        c->line_len = 0;
        c->size_digits = false;
    } else if (have_len) {
        c->bmode = len ? B_LENGTH : B_NONE;
        c->remain = len;
    } else {
        c->bmode = B_EOF;
        c->server_close = true;
    }
    return true;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Consume body bytes. Returns bytes used, sets *done at the end of the
 * body; -1 on a framing error. */
static long body_feed(struct conn *c, const char *p, size_t n, bool *done)
{
    size_t i = 0;
    *done = false;
    switch (c->bmode) {
    case B_NONE:
        *done = true;
        return 0;
    case B_EOF:
        return (long)n;
    case B_LENGTH: {
        size_t take = n < c->remain ? n : (size_t)c->remain;
        c->remain -= take;
        *done = c->remain == 0;
        return (long)take;
    }
    case B_CHUNKED:
        break;
    }
    while (i < n) {
        char ch = p[i];
        switch (c->cst) {
        case CH_SIZE: {
            int h = hexval(ch);
            if (h >= 0) {
                if (c->remain >> 56) return -1;
                c->remain = c->remain * 16 + (uint64_t)h;
                c->size_digits = true;
                i++;
                break;
            }
            if (!c->size_digits) return -1;
            c->cst = CH_EXT;
            break; /* re-examine ch in CH_EXT */
        }
        case CH_EXT:
            /* chunk extensions and the CR are skipped up to the LF */
            if (++c->line_len > 4096) return -1;
            i++;
            if (ch == '\n') {
                c->line_len = 0;
                c->size_digits = false;
                c->cst = c->remain ? CH_DATA : CH_TRAILER;
            }
            break;
        case CH_DATA: {
            size_t take = n - i < c->remain ? n - i : (size_t)c->remain;
            c->remain -= take;
            i += take;
            if (c->remain == 0) c->cst = CH_DATA_END;
            break;
        }
        case CH_DATA_END:
            /* the CRLF after chunk data */
            i++;
            if (ch == '\n') {
                c->cst = CH_SIZE;
                c->line_len = 0;
            } else if (ch != '\r') {
                return -1;
            }
            break;
        case CH_TRAILER:
            i++;
            if (ch == '\n') {
                if (c->line_len == 0) {
                    *done = true;
                    return (long)i;
                }
                c->line_len = 0;
            } else if (ch != '\r') {
                if (++c->line_len > 8192) return -1;
            }
            break;
        }
    }
    return (long)i;
}

enum resp_result { R_MORE, R_DONE, R_ERROR };

/* Keep the first non-2xx response's status and what came of its body with
 * the head (printable bytes only), so a failing run says why. Called when
 * the head has been parsed, while rbuf still holds exactly what came in. */
static void note_non2xx(struct conn *c)
{
    struct worker *w = c->w;
    size_t o = (size_t)snprintf(w->first_non2xx, sizeof w->first_non2xx, "%d", c->status);
    const char *h = c->rlen >= 4 ? memmem(c->rbuf, c->rlen, "\r\n\r\n", 4) : NULL;
    if (!h) return;
    const char *b = h + 4, *end = c->rbuf + c->rlen;
    if (b < end && o + 1 < sizeof w->first_non2xx) w->first_non2xx[o++] = ' ';
    for (; b < end && o + 1 < sizeof w->first_non2xx; b++)
        w->first_non2xx[o++] = (*b >= 0x20 && *b < 0x7f) ? *b : '.';
    w->first_non2xx[o] = '\0';
}

/* Find the end of the head in the accumulated bytes; parse it; feed the rest
 * to the body. Interim 1xx responses are skipped. */
static enum resp_result head_progress(struct conn *c, size_t old_len)
{
    for (;;) {
        size_t from = old_len > 3 ? old_len - 3 : 0;
        const char *hit = NULL;
        if (c->rlen >= 4)
            hit = memmem(c->rbuf + from, c->rlen - from, "\r\n\r\n", 4);
        if (!hit) return c->rlen >= RBUF_CAP ? R_ERROR : R_MORE;
        size_t head_len = (size_t)(hit - c->rbuf) + 4;
        if (!parse_head(c, head_len)) return R_ERROR;
        size_t rest = c->rlen - head_len;
        if (c->status / 100 == 1 && c->status != 101) {
            memmove(c->rbuf, c->rbuf + head_len, rest);
            c->rlen = rest;
            c->server_close = false;
            old_len = 0;
            continue;
        }
        c->in_body = true;
        if ((c->status < 200 || c->status > 299) && !c->w->first_non2xx[0]) note_non2xx(c);
        bool done;
        long used = body_feed(c, c->rbuf + head_len, rest, &done);
        if (used < 0) return R_ERROR;
        if (done) return (size_t)used == rest ? R_DONE : R_ERROR; /* nothing pipelined */
        return R_MORE;
    }
}

/* A response was read completely. Returns false if the worker stopped. */
static bool response_done(struct conn *c)
{
    struct worker *w = c->w;
    uint64_t t = now_ns();
    w->st.requests_total++;
    if (t >= t_warm_ns && t <= t_end_ns) {
        struct stats *s = &w->st;
        uint64_t d = t - c->t_req;
        s->requests++;
        s->hist[hist_index(d)]++;
        if (d > s->max_ns) s->max_ns = d;
        unsigned cls = (unsigned)c->status / 100u;
        s->status_class[cls <= 5 ? cls : 0]++;
        s->status_code[(unsigned)c->status < STATUS_CODES ? (unsigned)c->status : 0]++;
        if (c->status < 200 || c->status > 299) s->non2xx++;
        if (w->quota && s->requests >= w->quota) {
            w->t_finish = t;
            w->stopping = true;
            event_base_loopbreak(w->base);
            return false;
        }
    }
    return true;
}

static void msg_trace(int write_p, int version, int content_type, const void *buf, size_t len,
                      SSL *ssl, void *arg)
{
    struct worker *w = arg;
    (void)version;
    (void)ssl;
    /* handshake message type 13: CertificateRequest (TLS 1.2 and 1.3) */
    if (!write_p && content_type == SSL3_RT_HANDSHAKE && len > 0 &&
        ((const unsigned char *)buf)[0] == 13)
        atomic_store(&w->cert_requested, true);
}

static void conn_connect(struct conn *c)
{
    struct worker *w = c->w;
    if (w->stopping) return;
    if (opt.mode == MODE_HANDSHAKE) c->t_req = now_ns();
    c->fd = socket(server_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        conn_fail(c, E_CONNECT, strerror(errno));
        return;
    }
    int one = 1;
    (void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int rc = connect(c->fd, (const struct sockaddr *)&server_addr, server_addr_len);
    if (rc != 0 && errno != EINPROGRESS) {
        conn_fail(c, E_CONNECT, strerror(errno));
        return;
    }
    c->state = S_CONNECTING;
    conn_watch(c, w->tv_io);
    if (rc == 0) conn_run(c); /* else the socket turns writable when connected */
}

/* Begin TLS on a connected socket. */
static bool conn_tls_start(struct conn *c)
{
    struct worker *w = c->w;
    c->ssl = SSL_new(ssl_ctx);
    if (!c->ssl || !SSL_set_fd(c->ssl, c->fd)) {
        conn_fail_ssl(c, E_TLS, 0);
        return false;
    }
    SSL_set_connect_state(c->ssl);
    if (!w->traced) {
        /* Watch one handshake per thread for a CertificateRequest, so the
         * summary can say whether the server asked for a client certificate. */
        w->traced = true;
        SSL_set_msg_callback(c->ssl, msg_trace);
        SSL_set_msg_callback_arg(c->ssl, w);
    }
    c->state = S_HANDSHAKE;
    return true;
}

static void handshake_done(struct conn *c)
{
    struct worker *w = c->w;
    uint64_t t = now_ns();
    if (t >= t_warm_ns && t <= t_end_ns) w->st.handshakes++;
    if (!w->proto[0]) {
        snprintf(w->proto, sizeof w->proto, "%s", SSL_get_version(c->ssl));
        snprintf(w->cipher, sizeof w->cipher, "%s", SSL_get_cipher_name(c->ssl));
    }
    SSL_set_msg_callback(c->ssl, NULL); /* only the handshake is of interest */
}

/* Map an SSL failure to what to wait for: EV_READ / EV_WRITE, 0 for a clean
 * end of stream, -1 for an error (the error queue is left for the caller). */
static int ssl_wait(struct conn *c, int r, int *sys_errno)
{
    *sys_errno = 0;
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        return EV_READ;
    case SSL_ERROR_WANT_WRITE:
        return EV_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        *sys_errno = errno;
        /* With SSL_OP_IGNORE_UNEXPECTED_EOF a bare FIN is ZERO_RETURN, so
         * this is a real socket error (typically a reset). */
        return -1;
    default:
        return -1;
    }
}

static void conn_run(struct conn *c)
{
    struct worker *w = c->w;
    int r, want, se;
    for (;;) {
        switch (c->state) {
        case S_IDLE:
            return;
        case S_CONNECTING: {
            int err = 0;
            socklen_t el = sizeof err;
            if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0) err = errno;
            if (err) {
                conn_fail(c, E_CONNECT, strerror(err));
                return;
            }
            if (!conn_tls_start(c)) return;
            break;
        }
        case S_HANDSHAKE:
            ERR_clear_error();
            r = SSL_do_handshake(c->ssl);
            if (r == 1) {
                handshake_done(c);
                if (!start_request(c)) return;
                break;
            }
            want = ssl_wait(c, r, &se);
            if (want > 0) return;
            conn_fail_ssl(c, E_TLS, se);
            return;
        case S_WRITING:
            ERR_clear_error();
            r = SSL_write(c->ssl, c->wbuf + c->woff, (int)(c->wlen - c->woff));
            if (r > 0) {
                c->woff += (size_t)r;
                if (c->woff < c->wlen) break;
                c->state = S_READING;
                /* The answer cannot be there yet: wait for its edge rather
                 * than spend a read(2) that would only say EAGAIN. Not so
                 * if the write had to wait, as the answer may then have
                 * come in, its edge spent, while we were still writing. */
                if (!c->write_waited && !SSL_has_pending(c->ssl)) return;
                break;
            }
            want = ssl_wait(c, r, &se);
            if (want > 0) {
                c->write_waited = true;
                return;
            }
            conn_fail_ssl(c, E_IO, se);
            return;
        case S_READING: {
            char *dst = c->in_body ? c->rbuf : c->rbuf + c->rlen;
            size_t cap = c->in_body ? RBUF_CAP : RBUF_CAP - c->rlen;
            ERR_clear_error();
            r = SSL_read(c->ssl, dst, (int)cap);
            enum resp_result rr;
            if (r > 0) {
                c->got_bytes = true;
                if (c->in_body) {
                    bool done;
                    long used = body_feed(c, dst, (size_t)r, &done);
                    rr = used < 0 || (done && used != r) ? R_ERROR : done ? R_DONE : R_MORE;
                } else {
                    size_t old = c->rlen;
                    c->rlen += (size_t)r;
                    rr = head_progress(c, old);
                }
                if (rr == R_ERROR) {
                    conn_fail(c, E_PROTO, "malformed or oversized response");
                    return;
                }
                if (rr == R_MORE) break;
                if (!response_done(c)) return;
                if (opt.mode == MODE_HANDSHAKE || c->server_close) {
                    c->state = S_DRAIN;
                } else if (!start_request(c)) {
                    return;
                }
                break;
            }
            want = ssl_wait(c, r, &se);
            if (want > 0) return;
            if (want == 0 && c->in_body && c->bmode == B_EOF) {
                /* body delimited by the close */
                if (!response_done(c)) return;
                conn_close(c, false);
                conn_connect(c);
                return;
            }
            if (want == 0) {
                conn_fail(c, E_IO, c->got_bytes ? "connection closed mid-response"
                                                : "connection closed before the response");
                return;
            }
            conn_fail_ssl(c, E_IO, se);
            return;
        }
        case S_DRAIN: {
            /* Wait for the server to close first so the TIME_WAIT state
             * stays on its side, not on our ephemeral ports. */
            char sink[512];
            ERR_clear_error();
            r = SSL_read(c->ssl, sink, sizeof sink);
            if (r > 0) break; /* unexpected bytes: ignore, keep draining */
            want = ssl_wait(c, r, &se);
            if (want > 0) {
                conn_set_timeout(c, w->tv_drain);
                return;
            }
            ERR_clear_error();
            conn_close(c, false);
            conn_connect(c);
            return;
        }
        }
    }
}

static void conn_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    if (c->w->stopping) return;
    if (what & EV_TIMEOUT) {
        switch (c->state) {
        case S_IDLE:
            conn_connect(c); /* reconnect timer */
            return;
        case S_DRAIN:
            /* the server kept the connection open: close it ourselves */
            c->w->st.drain_timeouts++;
            conn_close(c, true);
            conn_connect(c);
            return;
        default:
            conn_fail(c, E_TIMEOUT, "no progress within --timeout");
            return;
        }
    }
    conn_run(c);
}

static void end_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    (void)fd;
    (void)what;
    w->t_finish = t_end_ns;
    w->stopping = true;
    event_base_loopbreak(w->base);
}

static struct timeval tv_from_ms(uint64_t ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint64_t now = now_ns();
    uint64_t left = t_end_ns > now ? t_end_ns - now : 0;
    struct timeval tv_end = {.tv_sec = (time_t)(left / 1000000000ull),
                             .tv_usec = (suseconds_t)(left % 1000000000ull / 1000)};
    event_add(w->end_ev, &tv_end);
    for (unsigned i = 0; i < w->nconns; i++) conn_connect(&w->conns[i]);
    event_base_dispatch(w->base);
    if (!w->t_finish) w->t_finish = now_ns();
    for (unsigned i = 0; i < w->nconns; i++) conn_close(&w->conns[i], true);
    return NULL;
}

static void worker_init(struct worker *w, unsigned id, unsigned nconns, uint64_t quota)
{
    w->id = id;
    w->nconns = nconns;
    w->quota = quota;
    struct event_config *cfg = event_config_new();
    if (!cfg) die("event_config_new failed", NULL);
    /* One thread per base: no locking. The changelist folds the del+add
     * that re-arming a one-shot event does into at most one epoll_ctl. */
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK | EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    w->base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (!w->base) die("event_base_new failed", NULL);
    struct timeval tv = tv_from_ms((uint64_t)(opt.timeout * 1000.0));
    w->tv_io = event_base_init_common_timeout(w->base, &tv);
    tv = tv_from_ms(DRAIN_TIMEOUT_MS);
    w->tv_drain = event_base_init_common_timeout(w->base, &tv);
    tv = tv_from_ms(RECONNECT_DELAY_MS);
    w->tv_retry = event_base_init_common_timeout(w->base, &tv);
    w->end_ev = evtimer_new(w->base, end_cb, w);
    if (!w->end_ev) die("evtimer_new failed", NULL);
    w->conns = xcalloc(nconns, sizeof *w->conns);
    for (unsigned i = 0; i < nconns; i++) {
        struct conn *c = &w->conns[i];
        c->w = w;
        c->fd = -1;
        c->state = S_IDLE;
        c->wbuf = xcalloc(1, rq.max_len);
        c->ev = event_new(w->base, -1, 0, conn_cb, c);
        if (!c->ev) die("event_new failed", NULL);
    }
}

static void worker_free(struct worker *w)
{
    for (unsigned i = 0; i < w->nconns; i++) {
        event_free(w->conns[i].ev);
        free(w->conns[i].wbuf);
    }
    free(w->conns);
    event_free(w->end_ev);
    event_base_free(w->base);
}

/* ---- start-up: files, TLS, address ------------------------------------------ */

static char *read_file(const char *path, size_t cap, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) die(path, strerror(errno));
    size_t size = 0, alloc = 4096;
    char *buf = xcalloc(1, alloc + 1);
    for (;;) {
        if (size == alloc) {
            if (alloc >= cap) die(path, "file too large");
            alloc = alloc * 2 > cap ? cap : alloc * 2;
            char *nb = realloc(buf, alloc + 1);
            if (!nb) die("out of memory", NULL);
            buf = nb;
        }
        size_t n = fread(buf + size, 1, alloc - size, f);
        if (n == 0) break;
        size += n;
    }
    if (ferror(f)) die(path, "read error");
    fclose(f);
    buf[size] = '\0';
    *len = size;
    return buf;
}

/* One headers-file line -> a header block: literal "\n" becomes CRLF, "\\"
 * a backslash; a final CRLF is appended. Each header must contain ':'. */
static char *convert_header_line(const char *line, size_t n, size_t *out_len, size_t lineno)
{
    char *out = xcalloc(1, 2 * n + 3);
    size_t o = 0, field_start = 0;
    for (size_t i = 0; i < n; i++) {
        if (line[i] == '\\' && i + 1 < n && (line[i + 1] == 'n' || line[i + 1] == '\\')) {
            if (line[i + 1] == '\\') {
                out[o++] = '\\';
            } else {
                if (!memchr(out + field_start, ':', o - field_start) || o == field_start) {
                    fprintf(stderr, "loadgen: headers file line %zu: a header has no ':'\n",
                            lineno);
                    exit(2);
                }
                out[o++] = '\r';
                out[o++] = '\n';
                field_start = o;
            }
            i++;
            continue;
        }
        out[o++] = line[i];
    }
    if (o == field_start) {
        /* a trailing "\n" left an empty field: accept it as the block end */
        *out_len = o;
        return out;
    }
    if (!memchr(out + field_start, ':', o - field_start)) {
        fprintf(stderr, "loadgen: headers file line %zu: a header has no ':'\n", lineno);
        exit(2);
    }
    out[o++] = '\r';
    out[o++] = '\n';
    *out_len = o;
    return out;
}

static void load_headers(const char *path)
{
    size_t len;
    char *data = read_file(path, MAX_HEADERS_FILE, &len);
    size_t cap = 1024;
    rq.hdr = xcalloc(cap, sizeof *rq.hdr);
    rq.hdr_len = xcalloc(cap, sizeof *rq.hdr_len);
    size_t lineno = 0;
    for (char *p = data; p < data + len;) {
        char *nl = memchr(p, '\n', (size_t)(data + len - p));
        char *end = nl ? nl : data + len;
        lineno++;
        size_t n = (size_t)(end - p);
        if (n && p[n - 1] == '\r') n--;
        if (n > MAX_HEADER_LINE) {
            fprintf(stderr, "loadgen: headers file line %zu longer than %u bytes\n", lineno,
                    MAX_HEADER_LINE);
            exit(2);
        }
        if (n) {
            if (rq.nhdr == cap) {
                cap *= 2;
                char **nh = realloc(rq.hdr, cap * sizeof *rq.hdr);
                size_t *nlen = realloc(rq.hdr_len, cap * sizeof *rq.hdr_len);
                if (!nh || !nlen) die("out of memory", NULL);
                rq.hdr = nh;
                rq.hdr_len = nlen;
            }
            rq.hdr[rq.nhdr] = convert_header_line(p, n, &rq.hdr_len[rq.nhdr], lineno);
            rq.nhdr++;
        }
        p = end + 1;
    }
    free(data);
    if (rq.nhdr == 0) die(path, "no header lines");
}

/* --bodies-file: one body per line (blank lines skipped; a final CR is
 * dropped). Each line becomes "Content-Length: N\r\n\r\n" + body in one
 * buffer, so a request is still three memcpy calls. */
static void load_bodies(const char *path)
{
    size_t len;
    char *data = read_file(path, MAX_BODIES_FILE, &len);
    size_t lines = 0;
    for (char *p = data; p < data + len;) {
        char *nl = memchr(p, '\n', (size_t)(data + len - p));
        char *end = nl ? nl : data + len;
        size_t n = (size_t)(end - p);
        if (n && p[n - 1] == '\r') n--;
        if (n) lines++;
        p = end + 1;
    }
    if (lines == 0) die(path, "no body lines");
    rq.body_off = xcalloc(lines, sizeof *rq.body_off);
    rq.body_len = xcalloc(lines, sizeof *rq.body_len);
    size_t cap = len + lines * 48u; /* "Content-Length: " + digits + 2 CRLF < 48 */
    rq.bodies = malloc(cap);
    if (!rq.bodies) die("out of memory", NULL);
    size_t o = 0, lineno = 0;
    for (char *p = data; p < data + len;) {
        char *nl = memchr(p, '\n', (size_t)(data + len - p));
        char *end = nl ? nl : data + len;
        size_t n = (size_t)(end - p);
        lineno++;
        if (n && p[n - 1] == '\r') n--;
        if (n > MAX_BODY_LINE) {
            fprintf(stderr, "loadgen: bodies file line %zu longer than %u bytes\n", lineno,
                    MAX_BODY_LINE);
            exit(2);
        }
        if (n) {
            size_t off = o;
            o += (size_t)snprintf(rq.bodies + o, cap - o, "Content-Length: %zu\r\n\r\n", n);
            memcpy(rq.bodies + o, p, n);
            o += n;
            rq.body_off[rq.nbody] = off;
            rq.body_len[rq.nbody] = o - off;
            rq.nbody++;
        }
        p = end + 1;
    }
    free(data);
}

static void build_requests(void)
{
    char *body = NULL;
    size_t body_len = 0;
    if (opt.body_file) body = read_file(opt.body_file, MAX_BODY_FILE, &body_len);
    /* With --bodies-file each line carries its own Content-Length. */
    bool want_length = !rq.nbody && (opt.body_file || strcmp(opt.method, "POST") == 0 ||
                                     strcmp(opt.method, "PUT") == 0 ||
                                     strcmp(opt.method, "PATCH") == 0);
    bool v6 = strchr(opt.host, ':') != NULL;
    char hostport[300];
    if (strcmp(opt.port, "443") == 0)
        snprintf(hostport, sizeof hostport, v6 ? "[%s]" : "%s", opt.host);
    else
        snprintf(hostport, sizeof hostport, v6 ? "[%s]:%s" : "%s:%s", opt.host, opt.port);
    char clen[64] = "";
    if (want_length) snprintf(clen, sizeof clen, "Content-Length: %zu\r\n", body_len);
    size_t plen = strlen(opt.method) + strlen(opt.path) + strlen(hostport) + strlen(clen) + 64;
    rq.prefix = xcalloc(1, plen);
    int n = snprintf(rq.prefix, plen, "%s %s HTTP/1.1\r\nHost: %s\r\n%s%s", opt.method,
                     opt.path, hostport,
                     opt.mode == MODE_HANDSHAKE ? "Connection: close\r\n" : "", clen);
    if (n < 0 || (size_t)n >= plen) die("request line too long", NULL);
    rq.prefix_len = (size_t)n;
    rq.suffix = xcalloc(1, body_len + 3);
    memcpy(rq.suffix, "\r\n", 2);
    if (body_len) memcpy(rq.suffix + 2, body, body_len);
    rq.suffix_len = 2 + body_len;
    free(body);
    size_t maxh = 0;
    for (size_t i = 0; i < rq.nhdr; i++)
        if (rq.hdr_len[i] > maxh) maxh = rq.hdr_len[i];
    size_t maxb = rq.suffix_len;
    for (size_t i = 0; i < rq.nbody; i++)
        if (rq.body_len[i] > maxb) maxb = rq.body_len[i];
    rq.max_len = rq.prefix_len + maxh + maxb;
    if (rq.max_len > INT_MAX) die("request too large", NULL);
}

static void setup_tls(void)
{
    ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (!ssl_ctx) die_ssl("SSL_CTX_new");
    int minv = TLS1_2_VERSION, maxv = TLS1_3_VERSION;
    if (opt.tls_version == 12) minv = maxv = TLS1_2_VERSION;
    if (opt.tls_version == 13) minv = maxv = TLS1_3_VERSION;
    if (!SSL_CTX_set_min_proto_version(ssl_ctx, minv) ||
        !SSL_CTX_set_max_proto_version(ssl_ctx, maxv))
        die_ssl("setting the TLS version");
    /* Every handshake is a full one: no client session cache, no tickets
     * requested in TLS 1.2 (TLS 1.3 servers may still send tickets; they are
     * dropped, never used). */
    SSL_CTX_set_session_cache_mode(ssl_ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ssl_ctx, SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                  SSL_MODE_AUTO_RETRY);
    /* Read ahead: one read(2) can bring a whole response plus any tickets. */
    SSL_CTX_set_read_ahead(ssl_ctx, 1);
    if (opt.cert || opt.key) {
        if (!opt.cert || !opt.key) die("--cert and --key go together", NULL);
        if (SSL_CTX_use_certificate_chain_file(ssl_ctx, opt.cert) != 1) die_ssl(opt.cert);
        if (SSL_CTX_use_PrivateKey_file(ssl_ctx, opt.key, SSL_FILETYPE_PEM) != 1)
            die_ssl(opt.key);
        if (SSL_CTX_check_private_key(ssl_ctx) != 1) die_ssl("client key does not match cert");
    }
    if (opt.insecure) {
        SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_NONE, NULL);
        return;
    }
    if (opt.cacert) {
        if (SSL_CTX_load_verify_locations(ssl_ctx, opt.cacert, NULL) != 1) die_ssl(opt.cacert);
    } else if (SSL_CTX_set_default_verify_paths(ssl_ctx) != 1) {
        die_ssl("loading the system CA store");
    }
    SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_PEER, NULL);
    /* Check the name in the URL against the certificate, as a client should.
     * Set once on the context; SSL_new copies it. */
    X509_VERIFY_PARAM *vp = SSL_CTX_get0_param(ssl_ctx);
    unsigned char ipbuf[16];
    bool is_ip = inet_pton(AF_INET, opt.host, ipbuf) == 1 || inet_pton(AF_INET6, opt.host, ipbuf) == 1;
    int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, opt.host)
                   : X509_VERIFY_PARAM_set1_host(vp, opt.host, 0);
    if (ok != 1) die_ssl("setting the expected server name");
}

static void parse_url(void)
{
    const char *u = opt.url;
    if (strncasecmp(u, "https://", 8) != 0) die("--url must start with https://", opt.url);
    u += 8;
    const char *slash = strchr(u, '/');
    size_t authlen = slash ? (size_t)(slash - u) : strlen(u);
    char auth[sizeof opt.host];
    if (authlen == 0 || authlen >= sizeof auth) die("bad host in --url", opt.url);
    memcpy(auth, u, authlen);
    auth[authlen] = '\0';
    char *port = NULL;
    if (auth[0] == '[') {
        char *rb = strchr(auth, ']');
        if (!rb) die("bad IPv6 host in --url", opt.url);
        *rb = '\0';
        snprintf(opt.host, sizeof opt.host, "%s", auth + 1);
        if (rb[1] == ':') port = rb + 2;
        else if (rb[1]) die("bad host in --url", opt.url);
    } else {
        char *colon = strrchr(auth, ':');
        if (colon) {
            *colon = '\0';
            port = colon + 1;
        }
        snprintf(opt.host, sizeof opt.host, "%s", auth);
    }
    if (port) {
        char *end;
        unsigned long p = strtoul(port, &end, 10);
        if (!*port || *end || p == 0 || p > 65535) die("bad port in --url", opt.url);
        snprintf(opt.port, sizeof opt.port, "%lu", p);
    } else {
        snprintf(opt.port, sizeof opt.port, "443");
    }
    opt.path = xcalloc(1, slash ? strlen(slash) + 1 : 2);
    strcpy(opt.path, slash ? slash : "/");
    for (const char *p = opt.path; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f) die("bad character in --url path", opt.url);
}

static void resolve(void)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    /* --connect-to: the URL's host still goes into Host and is checked
     * against the server certificate; only the address comes from here. */
    const char *host = opt.connect_to ? opt.connect_to : opt.host;
    int rc = getaddrinfo(host, opt.port, &hints, &res);
    if (rc != 0 || !res) die(host, gai_strerror(rc));
    memcpy(&server_addr, res->ai_addr, res->ai_addrlen);
    server_addr_len = res->ai_addrlen;
    freeaddrinfo(res);
}

/* ---- command line ------------------------------------------------------------- */

static void usage(FILE *out)
{
    fputs("usage: loadgen --url https://HOST:PORT/PATH [options]\n"
          "  --connections N     total connections, spread over threads (64)\n"
          "  --threads T         threads, one event loop each (2)\n"
          "  --duration S        measured seconds (10)\n"
          "  --warmup S          seconds run first and not counted (1)\n"
          "  --requests N        stop after N measured requests\n"
          "  --mode M            keepalive | handshake (keepalive)\n"
          "  --cert F --key F    present this client certificate\n"
          "  --cacert F          verify the server against this CA\n"
          "  --insecure          do not verify the server\n"
          "  --tls12 | --tls13   pin the TLS version (default: negotiate)\n"
          "  --headers-file F    one header block per line, \\n between headers;\n"
          "                      request i uses line i mod lines\n"
          "  --no-wrap           headers-file lines are single use: request i uses\n"
          "                      line i, and the run stops when they run out\n"
          "  --method M          request method (GET)\n"
          "  --body-file F       request body, sent with Content-Length\n"
          "  --bodies-file F     one request body per line, each used once (request i\n"
          "                      uses line i); the run stops when they run out\n"
          "  --connect-to ADDR   connect to ADDR instead of the URL's host (which\n"
          "                      still goes in Host and is checked in the certificate)\n"
          "  --timeout S         per-step I/O timeout (10)\n"
          "  --json              print one JSON object on stdout (summary on stderr)\n",
          out);
}

static double parse_seconds(const char *s, const char *name, double min)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || !*s || *end || !(v >= min) || v > 86400.0) die("bad value for", name);
    return v;
}

static uint64_t parse_count(const char *s, const char *name, uint64_t min, uint64_t max)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || !*s || *end || *s == '-' || v < min || v > max) die("bad value for", name);
    return v;
}

enum {
    O_URL = 256, O_CONNS, O_THREADS, O_DURATION, O_REQUESTS, O_WARMUP, O_MODE, O_CERT,
    O_KEY, O_CACERT, O_INSECURE, O_TLS12, O_TLS13, O_HEADERS, O_METHOD, O_BODY, O_JSON,
    O_TIMEOUT, O_HELP, O_BODIES, O_NOWRAP, O_CONNECT_TO
};

static void parse_args(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"url", required_argument, NULL, O_URL},
        {"connections", required_argument, NULL, O_CONNS},
        {"threads", required_argument, NULL, O_THREADS},
        {"duration", required_argument, NULL, O_DURATION},
        {"requests", required_argument, NULL, O_REQUESTS},
        {"warmup", required_argument, NULL, O_WARMUP},
        {"mode", required_argument, NULL, O_MODE},
        {"cert", required_argument, NULL, O_CERT},
        {"key", required_argument, NULL, O_KEY},
        {"cacert", required_argument, NULL, O_CACERT},
        {"insecure", no_argument, NULL, O_INSECURE},
        {"tls12", no_argument, NULL, O_TLS12},
        {"tls13", no_argument, NULL, O_TLS13},
        {"headers-file", required_argument, NULL, O_HEADERS},
        {"method", required_argument, NULL, O_METHOD},
        {"body-file", required_argument, NULL, O_BODY},
        {"bodies-file", required_argument, NULL, O_BODIES},
        {"no-wrap", no_argument, NULL, O_NOWRAP},
        {"connect-to", required_argument, NULL, O_CONNECT_TO},
        {"json", no_argument, NULL, O_JSON},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "k", longopts, NULL)) != -1) {
        switch (ch) {
        case O_URL: opt.url = optarg; break;
        case O_CONNS:
            opt.connections = (unsigned)parse_count(optarg, "--connections", 1, MAX_CONNECTIONS);
            break;
        case O_THREADS:
            opt.threads = (unsigned)parse_count(optarg, "--threads", 1, MAX_THREADS);
            break;
        case O_DURATION: opt.duration = parse_seconds(optarg, "--duration", 0.001); break;
        case O_REQUESTS:
            opt.requests = parse_count(optarg, "--requests", 1, UINT64_MAX / 2);
            break;
        case O_WARMUP: opt.warmup = parse_seconds(optarg, "--warmup", 0.0); break;
        case O_TIMEOUT: opt.timeout = parse_seconds(optarg, "--timeout", 0.001); break;
        case O_MODE:
            if (strcmp(optarg, "keepalive") == 0) opt.mode = MODE_KEEPALIVE;
            else if (strcmp(optarg, "handshake") == 0) opt.mode = MODE_HANDSHAKE;
            else die("--mode must be keepalive or handshake", optarg);
            break;
        case O_CERT: opt.cert = optarg; break;
        case O_KEY: opt.key = optarg; break;
        case O_CACERT: opt.cacert = optarg; break;
        case 'k':
        case O_INSECURE: opt.insecure = true; break;
        case O_TLS12: opt.tls_version = 12; break;
        case O_TLS13: opt.tls_version = 13; break;
        case O_HEADERS: opt.headers_file = optarg; break;
        case O_METHOD:
            for (const char *p = optarg; *p; p++)
                if (*p < 'A' || *p > 'Z') die("--method must be upper-case letters", optarg);
            if (!*optarg || strlen(optarg) > 32) die("bad --method", optarg);
            opt.method = optarg;
            break;
        case O_BODY: opt.body_file = optarg; break;
        case O_BODIES: opt.bodies_file = optarg; break;
        case O_NOWRAP: opt.no_wrap = true; break;
        case O_CONNECT_TO:
            if (!*optarg) die("bad --connect-to", optarg);
            opt.connect_to = optarg;
            break;
        case O_JSON: opt.json = true; break;
        case O_HELP: usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind != argc) {
        usage(stderr);
        exit(2);
    }
    if (!opt.url) {
        usage(stderr);
        exit(2);
    }
    if (opt.body_file && opt.bodies_file) die("--body-file and --bodies-file exclude each other", NULL);
    if (opt.no_wrap && !opt.headers_file) die("--no-wrap needs --headers-file", NULL);
    if (opt.threads > opt.connections) opt.threads = opt.connections;
    if (opt.requests && opt.threads > opt.requests) opt.threads = (unsigned)opt.requests;
}

/* ---- results ------------------------------------------------------------------ */

static double percentile_us(const struct stats *s, double q)
{
    if (s->requests == 0) return 0.0;
    uint64_t rank = (uint64_t)((double)s->requests * q);
    if (rank >= s->requests) rank = s->requests - 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < H_BUCKETS; i++) {
        seen += s->hist[i];
        if (seen > rank) {
            double v = hist_value(i);
            if (v > (double)s->max_ns) v = (double)s->max_ns;
            return v / 1000.0;
        }
    }
    return (double)s->max_ns / 1000.0;
}

/* A JSON string of printable ASCII (what first_non2xx holds). */
static void json_str(FILE *f, const char *v)
{
    fputc('"', f);
    for (; *v; v++) {
        if (*v == '"' || *v == '\\') fputc('\\', f);
        fputc((unsigned char)*v >= 0x20 && (unsigned char)*v < 0x7f ? *v : '.', f);
    }
    fputc('"', f);
}

static uint64_t report(void)
{
    struct stats tot;
    memset(&tot, 0, sizeof tot);
    uint64_t finish = 0;
    bool cert_requested = false;
    const char *proto = "", *cipher = "", *first_error = "", *first_non2xx = "";
    uint64_t lines_used = 0;
    for (unsigned t = 0; t < opt.threads; t++) {
        const struct worker *w = &workers[t];
        const struct stats *s = &w->st;
        tot.requests += s->requests;
        tot.requests_total += s->requests_total;
        tot.non2xx += s->non2xx;
        for (unsigned i = 0; i < 6; i++) tot.status_class[i] += s->status_class[i];
        for (unsigned i = 0; i < STATUS_CODES; i++) tot.status_code[i] += s->status_code[i];
        lines_used += w->lines_used;
        if (!first_non2xx[0] && w->first_non2xx[0]) first_non2xx = w->first_non2xx;
        for (unsigned i = 0; i < E_N; i++) tot.errors[i] += s->errors[i];
        tot.handshakes += s->handshakes;
        tot.drain_timeouts += s->drain_timeouts;
        if (s->max_ns > tot.max_ns) tot.max_ns = s->max_ns;
        for (unsigned i = 0; i < H_BUCKETS; i++) tot.hist[i] += s->hist[i];
        if (w->t_finish > finish) finish = w->t_finish;
        if (atomic_load(&w->cert_requested)) cert_requested = true;
        if (!proto[0] && w->proto[0]) {
            proto = w->proto;
            cipher = w->cipher;
        }
        if (!first_error[0] && w->first_error[0]) first_error = w->first_error;
    }
    uint64_t errors = 0;
    for (unsigned i = 0; i < E_N; i++) errors += tot.errors[i];
    /* With --requests the run may end early; otherwise the window is exact. */
    double seconds = opt.duration;
    if (finish > t_warm_ns && finish < t_end_ns) seconds = (double)(finish - t_warm_ns) / 1e9;
    double rps = seconds > 0 ? (double)tot.requests / seconds : 0.0;
    double p50 = percentile_us(&tot, 0.50), p90 = percentile_us(&tot, 0.90),
           p99 = percentile_us(&tot, 0.99), mx = (double)tot.max_ns / 1000.0;

    struct rusage ru;
    double client_cpu = 0.0;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        client_cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;

    FILE *out = opt.json ? stderr : stdout;
    fprintf(out, "loadgen: %s %s, %u connections, %u threads, %.3f s measured after %.1f s warm-up\n",
            opt.mode == MODE_KEEPALIVE ? "keepalive" : "handshake", opt.url, opt.connections,
            opt.threads, seconds, opt.warmup);
    fprintf(out, "  tls          %s %s, client certificate %s, server %s one\n",
            proto[0] ? proto : "-", cipher[0] ? cipher : "-", opt.cert ? "presented" : "not presented",
            cert_requested ? "requested" : "did not request");
    fprintf(out, "  requests     %" PRIu64 " (%.1f req/s)\n", tot.requests, rps);
    fprintf(out, "  handshakes   %" PRIu64 "\n", tot.handshakes);
    fprintf(out, "  status       1xx %" PRIu64 ", 2xx %" PRIu64 ", 3xx %" PRIu64 ", 4xx %" PRIu64
                 ", 5xx %" PRIu64 ", other %" PRIu64 "\n",
            tot.status_class[1], tot.status_class[2], tot.status_class[3], tot.status_class[4],
            tot.status_class[5], tot.status_class[0]);
    fprintf(out, "  codes       ");
    for (unsigned i = 1; i < STATUS_CODES; i++)
        if (tot.status_code[i]) fprintf(out, " %u=%" PRIu64, i, tot.status_code[i]);
    if (tot.status_code[0]) fprintf(out, " other=%" PRIu64, tot.status_code[0]);
    fputc('\n', out);
    if (first_non2xx[0]) fprintf(out, "  first non-2xx %s\n", first_non2xx);
    fprintf(out, "  errors       %" PRIu64, errors);
    for (unsigned i = 0; i < E_N; i++)
        if (tot.errors[i]) fprintf(out, " %s=%" PRIu64, err_names[i], tot.errors[i]);
    fputc('\n', out);
    if (first_error[0]) fprintf(out, "  first error  %s\n", first_error);
    if (tot.drain_timeouts)
        fprintf(out, "  note         %" PRIu64 " connections not closed by the server within %d ms\n",
                tot.drain_timeouts, DRAIN_TIMEOUT_MS);
    fprintf(out, "  whole run    %" PRIu64 " requests with warm-up, load generator CPU %.2f s\n",
            tot.requests_total, client_cpu);
    fprintf(out, "  latency us   p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n", p50, p90, p99, mx);
    bool exhausted = atomic_load(&lines_exhausted);
    double exhausted_at = exhausted ? (double)(atomic_load(&lines_exhausted_ns) - t_start_ns) / 1e9 : 0.0;
    if (use_lines) {
        fprintf(out, "  lines        %" PRIu64 " of %" PRIu64 " single-use lines sent\n", lines_used,
                line_count);
        if (exhausted)
            fprintf(out, "  NOTE         the single-use lines ran out %.3f s into the run (warm-up "
                         "included): the run stopped there instead of replaying them; "
                         "supply more lines for a full-length run\n",
                    exhausted_at);
    }
    if (opt.json) {
        printf("{\"requests\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"non2xx\":%" PRIu64
               ",\"seconds\":%.3f,\"rps\":%.1f,\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f"
               ",\"max_us\":%.1f,\"handshakes\":%" PRIu64 ",\"requests_total\":%" PRIu64
               ",\"client_cpu_s\":%.3f,\"cert_requested\":%s,\"protocol\":\"%s\""
               ",\"cipher\":\"%s\"",
               tot.requests, errors, tot.non2xx, seconds, rps, p50, p90, p99, mx, tot.handshakes,
               tot.requests_total, client_cpu, cert_requested ? "true" : "false", proto, cipher);
        /* status codes of the requests counted in "requests"; "other" for
         * codes outside 0-599 */
        printf(",\"status_counts\":{");
        bool first = true;
        for (unsigned i = 1; i < STATUS_CODES; i++) {
            if (!tot.status_code[i]) continue;
            printf("%s\"%u\":%" PRIu64, first ? "" : ",", i, tot.status_code[i]);
            first = false;
        }
        if (tot.status_code[0]) printf("%s\"other\":%" PRIu64, first ? "" : ",", tot.status_code[0]);
        printf("},\"first_non2xx\":");
        json_str(stdout, first_non2xx);
        if (use_lines)
            printf(",\"lines_total\":%" PRIu64 ",\"lines_used\":%" PRIu64
                   ",\"lines_exhausted\":%s,\"lines_exhausted_at_s\":%.3f",
                   line_count, lines_used, exhausted ? "true" : "false", exhausted_at);
        printf("}\n");
    }
    fflush(stdout);
    return tot.requests;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    parse_url();
    /* A write to a socket the server has reset must not kill us. */
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (opt.headers_file) load_headers(opt.headers_file);
    if (opt.bodies_file) load_bodies(opt.bodies_file);
    use_lines = opt.bodies_file || opt.no_wrap;
    if (opt.bodies_file) line_count = rq.nbody;
    if (opt.no_wrap && (!line_count || rq.nhdr < line_count)) line_count = rq.nhdr;
    build_requests();
    setup_tls();
    resolve();

    workers = xcalloc(opt.threads, sizeof *workers);
    for (unsigned t = 0; t < opt.threads; t++) {
        unsigned n = opt.connections / opt.threads + (t < opt.connections % opt.threads);
        uint64_t quota = 0;
        if (opt.requests)
            quota = opt.requests / opt.threads + (t < opt.requests % opt.threads);
        if (opt.requests && quota == 0) n = 0;
        worker_init(&workers[t], t, n, quota);
    }
    t_start_ns = now_ns();
    t_warm_ns = t_start_ns + (uint64_t)(opt.warmup * 1e9);
    t_end_ns = t_warm_ns + (uint64_t)(opt.duration * 1e9);
    for (unsigned t = 0; t < opt.threads; t++)
        if (pthread_create(&workers[t].thread, NULL, worker_main, &workers[t]) != 0)
            die("pthread_create failed", NULL);
    for (unsigned t = 0; t < opt.threads; t++) pthread_join(workers[t].thread, NULL);

    /* Exit status 1 when nothing completed, so a script notices a dead run. */
    int status = report() ? 0 : 1;

    for (unsigned t = 0; t < opt.threads; t++) worker_free(&workers[t]);
    free(workers);
    SSL_CTX_free(ssl_ctx);
    for (size_t i = 0; i < rq.nhdr; i++) free(rq.hdr[i]);
    free(rq.hdr);
    free(rq.hdr_len);
    free(rq.prefix);
    free(rq.suffix);
    free(rq.bodies);
    free(rq.body_off);
    free(rq.body_len);
    free(opt.path);
    return status;
}
