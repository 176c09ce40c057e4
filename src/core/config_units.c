/* Numbers with units, as written in a config: "300s", "64KiB", "10000".
 *
 * The grammar is deliberately narrow:
 *
 *   duration = digits unit          unit = "ms" / "s" / "m" / "h"
 *   size     = digits [ unit ]      unit = "B" / "KB" / "KiB" / "MB" / "MiB"
 *                                          / "GB" / "GiB"
 *   digits   = 1*DIGIT
 *
 * No sign, no fraction, no spaces, no exponent: "1.5s", "-1s", "+1s" and
 * "10 s" are refused rather than guessed at. A duration needs its unit
 * because a bare "30" is read as seconds by some tools and milliseconds by
 * others. Every product is checked against UINT32_MAX before it is stored. */
#include "core/config_impl.h"

#include <stdio.h>
#include <string.h>

typedef struct unit {
    const char *name;
    uint64_t scale;
} unit;

static const unit duration_units[] = {
    {"ms", 1u},
    {"s", 1000u},
    {"m", 60u * 1000u},
    {"h", 60u * 60u * 1000u},
};

static const unit size_units[] = {
    {"B", 1u},
    {"KB", 1000u},
    {"KiB", 1024u},
    {"MB", 1000u * 1000u},
    {"MiB", 1024u * 1024u},
    {"GB", 1000u * 1000u * 1000u},
    {"GiB", 1024u * 1024u * 1024u},
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* Read 1*DIGIT at *p. Values past UINT32_MAX set *too_big rather than wrap,
 * and the digits are still consumed so the caller sees where they end. */
static bool read_digits(const char **p, uint64_t *out, bool *too_big)
{
    const char *s = *p;
    uint64_t v = 0;
    *too_big = false;
    while (*s >= '0' && *s <= '9') {
        if (v <= UINT32_MAX) v = v * 10u + (uint64_t)(*s - '0');
        if (v > UINT32_MAX) *too_big = true;
        s++;
    }
    if (s == *p) return false;
    *p = s;
    *out = v;
    return true;
}

static const unit *find_unit(const unit *units, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(units[i].name, name) == 0) return &units[i];
    return NULL;
}

static pc_result fail_got(const char *expected, const char *s)
{
    char got[4 * PC_CONFIG_MAX_QUOTE + 8];
    pc_cfg_quote(s, strlen(s), got, sizeof got);
    return pc_fail(PC_ERR_USAGE, "expected %s, got %s", expected, got);
}

pc_result pc_parse_duration_ms(const char *s, uint32_t *out_ms)
{
    static const char expected[] = "a duration like 1500ms, 300s, 5m or 2h";
    PC_ENSURE(s != NULL, PC_ERR_USAGE, "expected %s, got nothing", expected);
    const char *p = s;
    uint64_t v = 0;
    bool too_big = false;
    if (!read_digits(&p, &v, &too_big)) return fail_got(expected, s);
    if (*p == '\0')
        return fail_got("a duration with a unit (ms, s, m or h) like 300s", s);
    const unit *u = find_unit(duration_units, N_OF(duration_units), p);
    if (u == NULL) return fail_got(expected, s);
    /* Unless too_big, v <= UINT32_MAX and scale <= 3.6e6: the product fits. */
    if (too_big || v * u->scale > UINT32_MAX)
        return fail_got("a duration of at most 4294967295ms (about 49 days)", s);
    *out_ms = (uint32_t)(v * u->scale);
    return PC_OK;
}

pc_result pc_parse_size(const char *s, uint32_t *out_bytes)
{
    static const char expected[] = "a size like 64KiB or 1MiB";
    PC_ENSURE(s != NULL, PC_ERR_USAGE, "expected %s, got nothing", expected);
    const char *p = s;
    uint64_t v = 0;
    bool too_big = false;
    if (!read_digits(&p, &v, &too_big)) return fail_got(expected, s);
    uint64_t scale = 1;
    if (*p != '\0') {
        const unit *u = find_unit(size_units, N_OF(size_units), p);
        if (u == NULL) return fail_got(expected, s);
        scale = u->scale;
    }
    /* Unless too_big, v <= UINT32_MAX and scale <= 2^30: the product fits. */
    if (too_big || v * scale > UINT32_MAX)
        return fail_got("a size of at most 4294967295 bytes (4GiB - 1)", s);
    *out_bytes = (uint32_t)(v * scale);
    return PC_OK;
}

pc_result pc_cfg_parse_uint(const char *s, uint32_t *out)
{
    static const char expected[] = "a decimal integer";
    const char *p = s;
    uint64_t v = 0;
    bool too_big = false;
    if (!read_digits(&p, &v, &too_big) || *p != '\0') return fail_got(expected, s);
    /* YAML 1.1 reads "010" as octal 8; refuse it rather than disagree with
     * other tools about what the operator meant. */
    if (s[0] == '0' && s[1] != '\0')
        return fail_got("a decimal integer without leading zeros", s);
    if (too_big) return fail_got("an integer of at most 4294967295", s);
    *out = (uint32_t)v;
    return PC_OK;
}

/* Append to buf at *at, never past cap - 1; the caller terminates. */
static void put(char *buf, size_t cap, size_t *at, const char *s)
{
    for (; *s != '\0' && *at + 1 < cap; s++) buf[(*at)++] = *s;
}

void pc_cfg_quote(const char *s, size_t len, char *buf, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t at = 0;
    size_t n = len < PC_CONFIG_MAX_QUOTE ? len : PC_CONFIG_MAX_QUOTE;
    put(buf, cap, &at, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[5] = {(char)c, '\0', '\0', '\0', '\0'};
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            /* Control and non-ASCII bytes are shown as \xNN so a message
             * never carries a terminal escape or a broken UTF-8 sequence. */
            esc[0] = '\\';
            esc[1] = 'x';
            esc[2] = hex[c >> 4];
            esc[3] = hex[c & 15];
        }
        put(buf, cap, &at, esc);
    }
    put(buf, cap, &at, "\"");
    if (n < len) put(buf, cap, &at, "...");
    buf[at] = '\0';
}

static void format_in(uint32_t v, const unit *units, size_t n, char *buf, size_t cap)
{
    /* The largest unit that divides v evenly; units are sorted ascending
     * within each family, and the smallest always divides. */
    const unit *best = &units[0];
    for (size_t i = 1; i < n; i++)
        if (v != 0 && v % units[i].scale == 0 && units[i].scale > best->scale)
            best = &units[i];
    snprintf(buf, cap, "%u%s", (unsigned)(v / best->scale), best->name);
}

void pc_cfg_format_size(uint32_t bytes, char *buf, size_t cap)
{
    /* Binary units only: limits are powers of two. */
    static const unit binary[] = {{"B", 1u}, {"KiB", 1024u}, {"MiB", 1024u * 1024u},
                                  {"GiB", 1024u * 1024u * 1024u}};
    format_in(bytes, binary, N_OF(binary), buf, cap);
}

void pc_cfg_format_duration(uint32_t ms, char *buf, size_t cap)
{
    format_in(ms, duration_units, N_OF(duration_units), buf, cap);
}
