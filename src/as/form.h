/* application/x-www-form-urlencoded request bodies (WHATWG URL §5, as
 * RFC 6749 §B uses it), decoded strictly:
 *   - '&'-separated name=value pairs; '+' is a space; %XX is a byte;
 *   - a malformed %-escape, a %00 or raw control byte, or a name without
 *     '=' is an error (we do not guess what a client meant);
 *   - a parameter given twice is an error (RFC 6749 §3.1, §3.2: "MUST NOT
 *     be included more than once"), except `resource`, which RFC 8707 §2
 *     allows several times (the token endpoint then decides);
 *   - at most PC_FORM_MAX_FIELDS fields.
 * Decoded names and values are NUL-terminated in a buffer the form owns. */
#ifndef PC_AS_FORM_H
#define PC_AS_FORM_H

#include "core/result.h"
#include "core/str.h"

/* OAuth token requests carry fewer than 12 parameters. */
#define PC_FORM_MAX_FIELDS 32
/* Longest parameter name we accept. */
#define PC_FORM_MAX_NAME 64

typedef struct pc_form_field {
    pc_str name;
    pc_str value;
} pc_form_field;

typedef struct pc_form {
    pc_form_field fields[PC_FORM_MAX_FIELDS];
    size_t n;
    char *buf; /* owned: the decoded bytes */
    size_t buf_len;
} pc_form;

/* PC_ERR_PROTO with a message naming the problem on bad input. */
PC_MUST_USE pc_result pc_form_parse(const char *body, size_t len, pc_form *out);
void pc_form_free(pc_form *f);
/* The value of a field (the first, for `resource`), or a NULL pc_str if
 * absent. */
pc_str pc_form_get(const pc_form *f, const char *name);
/* How many times a field was given. */
size_t pc_form_count(const pc_form *f, const char *name);

#endif
