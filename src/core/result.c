#include "core/result.h"

#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char errmsg[512];

pc_result pc_fail(pc_err err, const char *fmt, ...)
{
    /* Format into a local buffer first: callers often pass pc_errmsg() as
     * an argument to add context, and formatting a buffer into itself is
     * undefined behaviour. */
    char tmp[sizeof errmsg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    memcpy(errmsg, tmp, sizeof errmsg);
    return (pc_result){err};
}

const char *pc_errmsg(void) { return errmsg; }

const char *pc_err_name(pc_err err)
{
    switch (err) {
    case PC_ERR_NONE: return "ok";
    case PC_ERR_BLOCKED: return "blocked";
    case PC_ERR_PROTO: return "protocol";
    case PC_ERR_DENY: return "denied";
    case PC_ERR_INTERNAL: return "internal";
    case PC_ERR_USAGE: return "usage";
    case PC_ERR_IO: return "io";
    case PC_ERR_CRYPTO: return "crypto";
    default: return "unknown";
    }
}

pc_result pc_fail_ossl(const char *what)
{
    char detail[256] = "no detail";
    unsigned long e = ERR_get_error();
    if (e != 0) ERR_error_string_n(e, detail, sizeof detail);
    ERR_clear_error();
    return pc_fail(PC_ERR_CRYPTO, "%s: %s", what, detail);
}

void pc_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("portcullis: fatal: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}
