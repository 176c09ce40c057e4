#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_fd = 2;
static _Atomic int log_level = PC_LOG_INFO;

/* Per-thread access log buffer. Lines are whole: a flush never splits one,
 * and O_APPEND makes each write land at the end of the file. */
static _Thread_local char access_buf[PC_ACCESS_LOG_BUFFER];
static _Thread_local size_t access_len;

pc_result pc_log_open(const char *path, pc_log_level level)
{
    atomic_store(&log_level, (int)level);
    if (path == NULL || strcmp(path, "-") == 0) {
        log_fd = 2;
        return PC_OK;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    PC_ENSURE(fd >= 0, PC_ERR_IO, "log file %s: %s", path, strerror(errno));
    if (log_fd > 2) close(log_fd);
    log_fd = fd;
    return PC_OK;
}

void pc_log_set_level(pc_log_level level) { atomic_store(&log_level, (int)level); }

bool pc_log_enabled(pc_log_level level) { return (int)level >= atomic_load(&log_level); }

void pc_log_close(void)
{
    pc_log_flush_thread();
    if (log_fd > 2) close(log_fd);
    log_fd = 2;
}

static void put_raw(pc_logline *l, const char *s, size_t n)
{
    /* Reserve room for the closing "}\n" and a truncation marker. */
    size_t room = sizeof l->buf - 32;
    if (l->len + n > room) {
        n = l->len < room ? room - l->len : 0;
        l->truncated = true;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid
 * (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf) return 0;
    return len;
}

/* True when one of the 8 bytes in w may need escaping: below 0x20, '"',
 * '\\', 0x7f or above (word-at-a-time "has byte" tricks; exact as to
 * whether some byte matches). Access lines are mostly plain ASCII, so
 * put_escaped skips 8 bytes at a time until a suspect word. */
static bool word_needs_escape(uint64_t w)
{
    return pc_word_has_less(w, 0x20) || pc_word_has_high(w) || pc_word_has_byte(w, '"') ||
           pc_word_has_byte(w, '\\') || pc_word_has_byte(w, 0x7f);
}

static void put_escaped(pc_logline *l, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[6];
    size_t start = 0, next_word = 0;
    for (size_t i = 0; i < n; i++) {
        if (i >= next_word && i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, sizeof w);
            if (!word_needs_escape(w)) {
                i += 7;
                continue;
            }
            next_word = i + 8; /* this word byte by byte, then words again */
        }
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x7f) continue;
        if (c >= 0x80) {
            /* Valid UTF-8 passes through whole; an invalid byte becomes
             * U+FFFD, so the line stays valid JSON in UTF-8. */
            size_t ul = utf8_len((const unsigned char *)s + i, n - i);
            if (ul) {
                i += ul - 1;
                continue;
            }
            put_raw(l, s + start, i - start);
            start = i + 1;
            put_raw(l, "\\ufffd", 6);
            continue;
        }
        put_raw(l, s + start, i - start);
        start = i + 1;
        if (c == '"' || c == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)c;
            put_raw(l, tmp, 2);
        } else {
            /* Control bytes are escaped, so a hostile header can never
             * break the line. */
            tmp[0] = '\\';
            tmp[1] = 'u';
            tmp[2] = '0';
            tmp[3] = '0';
            tmp[4] = hex[c >> 4];
            tmp[5] = hex[c & 15];
            put_raw(l, tmp, 6);
        }
    }
    put_raw(l, s + start, n - start);
}

static void put_key(pc_logline *l, const char *key)
{
    put_raw(l, ",\"", 2);
    put_raw(l, key, strlen(key));
    put_raw(l, "\":", 2);
}

/* A field is kept only if it fit whole, so a truncated line is still valid
 * JSON: the fields that fit, then "truncated":true. */
static void field_done(pc_logline *l)
{
    if (!l->truncated) l->good = l->len;
}

static const char *level_names[] = {"debug", "info", "warn", "error"};

/* The timestamp up to the seconds changes once a second: format it then,
 * per thread, and add the milliseconds by hand (printf-style formatting was
 * the largest cost of an access line). */
static _Thread_local time_t ts_sec = -1;
static _Thread_local char ts_prefix[32]; /* {"ts":"2026-12-04T16:22:49. */
static _Thread_local size_t ts_prefix_len;

static void begin(pc_logline *l, pc_log_level level, const char *event)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != ts_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        int n = snprintf(ts_prefix, sizeof ts_prefix, "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.",
                         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                         tm.tm_sec);
        ts_prefix_len = (size_t)n;
        ts_sec = ts.tv_sec;
    }
    l->len = 0;
    l->good = 0;
    l->truncated = false;
    put_raw(l, ts_prefix, ts_prefix_len);
    long ms = ts.tv_nsec / 1000000;
    char tail[40];
    tail[0] = (char)('0' + ms / 100);
    tail[1] = (char)('0' + ms / 10 % 10);
    tail[2] = (char)('0' + ms % 10);
    memcpy(tail + 3, "Z\",\"level\":\"", 13);
    put_raw(l, tail, 15);
    put_raw(l, level_names[level], strlen(level_names[level]));
    put_raw(l, "\"", 1);
    put_key(l, "event");
    put_raw(l, "\"", 1);
    put_escaped(l, event, strlen(event));
    put_raw(l, "\"", 1);
    field_done(l);
}

bool pc_log_begin(pc_logline *l, pc_log_level level, const char *event)
{
    if (!pc_log_enabled(level)) return false;
    l->access = false;
    begin(l, level, event);
    return true;
}

bool pc_log_access_begin(pc_logline *l)
{
    /* Access lines follow log.access, not log.level: an operator who
     * quiets info events still wants one line per request. */
    l->access = true;
    begin(l, PC_LOG_INFO, "access");
    return true;
}

void pc_log_str(pc_logline *l, const char *key, pc_str val)
{
    put_key(l, key);
    if (val.ptr == NULL) {
        put_raw(l, "null", 4);
        field_done(l);
        return;
    }
    put_raw(l, "\"", 1);
    put_escaped(l, val.ptr, val.len);
    put_raw(l, "\"", 1);
    field_done(l);
}

void pc_log_cstr(pc_logline *l, const char *key, const char *val)
{
    pc_log_str(l, key, val ? pc_str_c(val) : PC_STR_NULL);
}

/* Decimal digits of v, right-aligned in buf[0..32); returns the start. */
static char *utoa(uint64_t v, char buf[32])
{
    char *p = buf + 32;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return p;
}

void pc_log_int(pc_logline *l, const char *key, int64_t val)
{
    char tmp[32];
    uint64_t mag = val < 0 ? (uint64_t)0 - (uint64_t)val : (uint64_t)val;
    char *p = utoa(mag, tmp);
    if (val < 0) *--p = '-';
    put_key(l, key);
    put_raw(l, p, (size_t)(tmp + 32 - p));
    field_done(l);
}

void pc_log_uint(pc_logline *l, const char *key, uint64_t val)
{
    char tmp[32];
    char *p = utoa(val, tmp);
    put_key(l, key);
    put_raw(l, p, (size_t)(tmp + 32 - p));
    field_done(l);
}

void pc_log_millis(pc_logline *l, const char *key, uint64_t micros)
{
    char tmp[40];
    char *p = utoa(micros / 1000, tmp);
    size_t n = (size_t)(tmp + 32 - p);
    memmove(tmp, p, n);
    uint64_t f = micros % 1000;
    tmp[n] = '.';
    tmp[n + 1] = (char)('0' + f / 100);
    tmp[n + 2] = (char)('0' + f / 10 % 10);
    tmp[n + 3] = (char)('0' + f % 10);
    put_key(l, key);
    put_raw(l, tmp, n + 4);
    field_done(l);
}

void pc_log_json(pc_logline *l, const char *key, const char *json)
{
    put_key(l, key);
    put_raw(l, json, strlen(json));
    field_done(l);
}

void pc_log_bool(pc_logline *l, const char *key, bool val)
{
    put_key(l, key);
    put_raw(l, val ? "true" : "false", val ? 4 : 5);
    field_done(l);
}

void pc_log_redacted(pc_logline *l, const char *key, pc_str secret)
{
    char tmp[48];
    size_t show = secret.len < 8 ? 0 : 8; /* short secrets show nothing */
    int n = snprintf(tmp, sizeof tmp, "%.*s...(%zu)", (int)show, secret.ptr ? secret.ptr : "",
                     secret.len);
    put_key(l, key);
    put_raw(l, "\"", 1);
    put_escaped(l, tmp, (size_t)n);
    put_raw(l, "\"", 1);
    field_done(l);
}

static void write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(log_fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return; /* nowhere left to report a logging failure */
        }
        p += w;
        n -= (size_t)w;
    }
}

void pc_log_fragment_begin(pc_logline *l)
{
    l->len = l->good = 0;
    l->truncated = false;
    l->access = false;
}

char *pc_log_fragment_take(const pc_logline *l, size_t *len)
{
    char *f = malloc(l->good ? l->good : 1);
    if (f != NULL) memcpy(f, l->buf, l->good);
    *len = f != NULL ? l->good : 0;
    return f;
}

void pc_log_fragment(pc_logline *l, const char *fields, size_t len)
{
    put_raw(l, fields, len);
    field_done(l);
}

void pc_log_flush_thread(void)
{
    if (access_len == 0) return;
    write_all(access_buf, access_len);
    access_len = 0;
}

void pc_log_end(pc_logline *l)
{
    if (l->truncated) {
        l->len = l->good;
        memcpy(l->buf + l->len, ",\"truncated\":true", 17);
        l->len += 17;
    }
    /* put_raw reserved room for these two bytes. */
    l->buf[l->len++] = '}';
    l->buf[l->len++] = '\n';
    if (!l->access) {
        write_all(l->buf, l->len);
        return;
    }
    if (access_len + l->len > sizeof access_buf) pc_log_flush_thread();
    memcpy(access_buf + access_len, l->buf, l->len);
    access_len += l->len;
}

void pc_log_msg(pc_log_level level, const char *event, const char *fmt, ...)
{
    pc_logline l;
    char msg[1024];
    if (!pc_log_begin(&l, level, event)) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pc_log_cstr(&l, "msg", msg);
    pc_log_end(&l);
}
