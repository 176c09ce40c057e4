/* RFC 6749 §5.2 error responses and no-store JSON answers. */
#include "as/as_internal.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t pc_as_now(void) { return (int64_t)time(NULL); }

void pc_as_json(pc_request *r, int status, const char *json, size_t len)
{
    /* RFC 6749 §5.1: token responses MUST NOT be cached. */
    pc_response_header(r, "Cache-Control", PC_STR("no-store"));
    pc_response_header(r, "Pragma", PC_STR("no-cache"));
    pc_respond(r, status, "application/json", json, len);
}

void pc_as_error(pc_request *r, int status, const char *error, const char *fmt, ...)
{
    char desc[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(desc, sizeof desc, fmt, ap);
    va_end(ap);
    /* error_description is limited to %x20-21 / %x23-5B / %x5D-7E (RFC 6749
     * §5.2): replace anything else so a quote or a byte from the request
     * can never escape into the response. */
    for (char *p = desc; *p; p++)
        if (*p < 0x20 || *p > 0x7e || *p == '"' || *p == '\\') *p = '\'';
    char body[640];
    int n = snprintf(body, sizeof body, "{\"error\":\"%s\",\"error_description\":\"%s\"}", error, desc);
    size_t len = (size_t)n < sizeof body ? (size_t)n : sizeof body - 1;
    pc_as_json(r, status, body, len);
}
