/* JSON text written directly, for documents whose shape we fix (an access
 * token's claims): no json_t tree, no json_dumps. Building the claims with
 * json_pack and dumping them cost more than a third of the token endpoint's
 * work besides the signature.
 *
 * The output is byte for byte what json_dumps(JSON_COMPACT) gives for the
 * same members in the same order: strings are escaped as jansson escapes
 * them (", \, \b \f \n \r \t, other controls as \u00XX, everything else
 * as is) and must be valid UTF-8, as json_string requires. */
#ifndef PC_JOSE_JSONW_H
#define PC_JOSE_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pc_jsonw {
    char *buf;
    size_t cap; /* bytes of buf, room for the NUL included */
    size_t len; /* bytes written, NUL excluded */
    bool ok;    /* false after an overflow or invalid UTF-8; writes stop */
} pc_jsonw;

/* The most a string of n bytes takes quoted and escaped. */
#define PC_JSONW_STRING_MAX(n) (6 * (n) + 2)

void pc_jsonw_init(pc_jsonw *w, char *buf, size_t cap);
/* Bytes as they are (punctuation, member names we know to need no escape). */
void pc_jsonw_raw(pc_jsonw *w, const char *s, size_t n);
#define pc_jsonw_lit(w, lit) pc_jsonw_raw((w), (lit), sizeof(lit) - 1)
/* A quoted, escaped string; invalid UTF-8 clears ok. */
void pc_jsonw_string(pc_jsonw *w, const char *s, size_t n);
void pc_jsonw_int(pc_jsonw *w, int64_t v);

#endif
