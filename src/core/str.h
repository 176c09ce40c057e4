/* Bytes travel with their length (ngx_str_t, h2o_iovec_t). Wire data is
 * never strlen'd. */
#ifndef PC_CORE_STR_H
#define PC_CORE_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct pc_str {
    const char *ptr;
    size_t len;
} pc_str;

#define PC_STR(lit) ((pc_str){(lit), sizeof(lit) - 1})
#define PC_STR_NULL ((pc_str){NULL, 0})

static inline pc_str pc_str_c(const char *s) { return (pc_str){s, s ? strlen(s) : 0}; }

bool pc_str_eq(pc_str a, pc_str b);
/* ASCII case-insensitive equality of n bytes. */
bool pc_mem_eq_ci(const char *a, const char *b, size_t n);
/* ASCII case-insensitive equality (header names, auth schemes). Inline so
 * that a length mismatch, the common case when a header name is tested
 * against a list, costs one comparison and no call. */
static inline bool pc_str_eq_ci(pc_str a, pc_str b) { return a.len == b.len && pc_mem_eq_ci(a.ptr, b.ptr, a.len); }
/* Inline so that strlen of a literal folds to a constant. */
static inline bool pc_str_eq_lit_ci(pc_str a, const char *lit)
{
    size_t n = strlen(lit);
    return a.len == n && pc_mem_eq_ci(a.ptr, lit, n);
}
/* Eight bytes at a time (the "has a byte less than n" and "has a zero
 * byte" word tricks): exact as to whether some byte of w matches, so a
 * scanner can skip words for which both say no and look at the others
 * byte by byte. Long header values and log lines are scanned this way. */
#define PC_WORD_ONES 0x0101010101010101u
#define PC_WORD_HIGHS 0x8080808080808080u
/* Some byte of w is below n (n <= 128). */
static inline bool pc_word_has_less(uint64_t w, unsigned n)
{
    return ((w - PC_WORD_ONES * n) & ~w & PC_WORD_HIGHS) != 0;
}
/* Some byte of w equals b. */
static inline bool pc_word_has_byte(uint64_t w, unsigned char b)
{
    uint64_t x = w ^ (PC_WORD_ONES * b);
    return ((x - PC_WORD_ONES) & ~x & PC_WORD_HIGHS) != 0;
}
/* Some byte of w is 0x80 or above. */
static inline bool pc_word_has_high(uint64_t w) { return (w & PC_WORD_HIGHS) != 0; }

/* An HTTP field value as RFC 9110 §5.5 has it: VCHAR, obs-text, SP and
 * HTAB; no other control byte and no DEL. The one rule for every header
 * value that crosses the server, in either direction (CR, LF or NUL in a
 * value would split or cut a message). Eight bytes at a time: long
 * Authorization and DPoP values are on every request. */
bool pc_field_value_ok(pc_str v);

/* The value of a hex digit (either case), or -1. */
static inline int pc_hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}
/* Constant-time equality for secrets: the time depends only on the lengths. */
bool pc_ct_eq(const void *a, size_t alen, const void *b, size_t blen);
/* Wipe a secret so the compiler cannot elide it. */
void pc_wipe(void *p, size_t n);

#endif
