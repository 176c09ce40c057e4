/* Result type and guard macros: every fallible function returns pc_result.
 *
 * The pattern follows s2n-tls: code branches on failure so the happy path
 * reads straight down, and a failed check never falls through. A failure
 * carries a category (what kind of fault, which decides the HTTP status
 * class) and a thread-local message for the operator or the CLI. */
#ifndef PC_CORE_RESULT_H
#define PC_CORE_RESULT_H

#include <stdbool.h>

#define PC_MUST_USE __attribute__((warn_unused_result))
#define PC_PRINTF(f, a) __attribute__((format(printf, f, a)))

typedef enum pc_err {
    PC_ERR_NONE = 0,
    PC_ERR_BLOCKED,  /* would block: try again when ready (nginx NGX_AGAIN) */
    PC_ERR_PROTO,    /* the peer's fault: malformed or refused input (4xx) */
    PC_ERR_DENY,     /* well-formed but not allowed (401/403/429) */
    PC_ERR_INTERNAL, /* our fault or the system's (5xx) */
    PC_ERR_USAGE,    /* bad configuration or bad command-line use */
    PC_ERR_IO,       /* a file or socket operation failed */
    PC_ERR_CRYPTO,   /* an OpenSSL call failed */
} pc_err;

typedef struct pc_result {
    pc_err err;
} pc_result;

#define PC_OK ((pc_result){PC_ERR_NONE})

static inline bool pc_ok(pc_result r) { return r.err == PC_ERR_NONE; }

/* Record a failure with a message (thread-local, truncated at 512 bytes)
 * and return it. The message must never contain a secret. */
pc_result pc_fail(pc_err err, const char *fmt, ...) PC_PRINTF(2, 3);
/* The message of the last pc_fail on this thread ("" if none). */
const char *pc_errmsg(void);
const char *pc_err_name(pc_err err);

/* Propagate a failure from a callee. */
#define PC_GUARD(expr)                                                         \
    do {                                                                       \
        pc_result pc_guard_r_ = (expr);                                        \
        if (!pc_ok(pc_guard_r_)) return pc_guard_r_;                           \
    } while (0)

/* Fail with err and a message unless cond holds. */
#define PC_ENSURE(cond, err, ...)                                              \
    do {                                                                       \
        if (!(cond)) return pc_fail((err), __VA_ARGS__);                       \
    } while (0)

/* OpenSSL calls return 1 on success; anything else is a crypto failure.
 * The OpenSSL error queue is drained into the message. */
pc_result pc_fail_ossl(const char *what);
#define PC_GUARD_OSSL(expr, what)                                              \
    do {                                                                       \
        if ((expr) != 1) return pc_fail_ossl(what);                            \
    } while (0)

/* Impossible states abort (relayd's fatalx): continuing would be worse. */
_Noreturn void pc_fatal(const char *fmt, ...) PC_PRINTF(1, 2);

#endif
