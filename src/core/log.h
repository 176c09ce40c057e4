/* Structured logging: one JSON object per line.
 *
 *   {"ts":"2026-12-04T16:22:49.123Z","level":"warn","event":"limit_header_bytes",
 *    "conn":12,"req":"5f2c...","peer":"127.0.0.1:51234","status":431,...}
 *
 * Build a line with pc_log_begin / pc_log_* / pc_log_end. Values are JSON
 * escaped; a line is capped at PC_MAX_LOG_LINE bytes. Never pass a secret,
 * a whole token or a key: log a hash prefix or a jti instead (pc_log_redacted).
 *
 * Error and warning lines are written at once with one write(2). Access log
 * lines go through a per-thread buffer (pc_log_access_*), flushed when full,
 * once a second, and at exit, so the hot path makes no syscall per request. */
#ifndef PC_CORE_LOG_H
#define PC_CORE_LOG_H

#include "core/config.h"
#include "core/limits.h"
#include "core/str.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct pc_logline {
    char buf[PC_MAX_LOG_LINE];
    size_t len;
    size_t good; /* length up to the last field that fit whole */
    bool truncated;
    bool access; /* goes to the buffered access stream */
} pc_logline;

/* Open the log destination: path, or NULL / "-" for stderr. */
PC_MUST_USE pc_result pc_log_open(const char *path, pc_log_level level);
void pc_log_set_level(pc_log_level level);
bool pc_log_enabled(pc_log_level level);
void pc_log_close(void);

/* Start a line; returns false (and the caller skips the rest) when the
 * level is filtered out. */
bool pc_log_begin(pc_logline *l, pc_log_level level, const char *event);
/* Start an access log line (level info, event "access"), whatever
 * log.level says: whether to write access lines is log.access. */
bool pc_log_access_begin(pc_logline *l);
void pc_log_str(pc_logline *l, const char *key, pc_str val);
void pc_log_cstr(pc_logline *l, const char *key, const char *val);
void pc_log_int(pc_logline *l, const char *key, int64_t val);
void pc_log_uint(pc_logline *l, const char *key, uint64_t val);
void pc_log_bool(pc_logline *l, const char *key, bool val);
/* A duration given in microseconds, written as milliseconds with three
 * decimals ("latency_ms":0.062) without floating point. */
void pc_log_millis(pc_logline *l, const char *key, uint64_t micros);
/* Logs the first 8 characters of a secret-bearing value followed by "..."
 * and its length, so operators can correlate without the log holding it. */
void pc_log_redacted(pc_logline *l, const char *key, pc_str secret);
/* A JSON value written as is (an object our own code built, such as a
 * detector's evidence). The caller guarantees it is valid JSON; it is never
 * bytes from a request. */
void pc_log_json(pc_logline *l, const char *key, const char *json);
void pc_log_end(pc_logline *l);

/* Fields rendered once and added to many lines: a connection's own fields
 * (peer, client certificate) on each of its access lines. Begin an empty
 * line, add fields with the functions above, then pc_log_fragment_take
 * copies out what fit (malloc'd, NULL when out of memory). */
void pc_log_fragment_begin(pc_logline *l);
char *pc_log_fragment_take(const pc_logline *l, size_t *len);
/* Add such fields to a line, whole or not at all. */
void pc_log_fragment(pc_logline *l, const char *fields, size_t len);

/* One-call convenience for a line with a message. */
void pc_log_msg(pc_log_level level, const char *event, const char *fmt, ...) PC_PRINTF(3, 4);

/* Flush this thread's access buffer (call from a timer and before exit). */
void pc_log_flush_thread(void);

#endif
