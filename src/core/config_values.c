/* One typed value from one YAML node. The schema, not the file, decides a
 * value's type: every scalar is read as text and then parsed, so quoting
 * never changes meaning ("64" and 64 are the same integer, "1.2" and 1.2
 * the same TLS version). A null (an empty value, ~ or null) is never taken
 * for a default: a key is either left out or given a value. */
#include "core/config_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for a quoted value: each byte may become \xNN, plus quotes and "...". */
#define GOT_CAP (4u * PC_CONFIG_MAX_QUOTE + 8u)

static pc_result fail_got(const pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                          const char *expected)
{
    char got[GOT_CAP];
    pc_cfg_describe(n, got, sizeof got);
    return pc_cfg_fail(d, n, path, "expected %s, got %s", expected, got);
}

/* Re-raise the message a units parser left with the node's location. The
 * message is copied first: pc_fail formats into the buffer it would read. */
static pc_result fail_relay(const pc_cfg_doc *d, const yaml_node_t *n, const char *path)
{
    char why[256];
    snprintf(why, sizeof why, "%s", pc_errmsg());
    return pc_cfg_fail(d, n, path, "%s", why);
}

pc_result pc_cfg_text(const pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                      const char *what, const char **out)
{
    if (n == NULL || n->type != YAML_SCALAR_NODE || pc_cfg_is_null(n))
        return fail_got(d, n, path, what);
    /* libyaml terminates every scalar, but a "\0" escape can put a NUL
     * inside one, which would silently cut a C string short. */
    if (memchr(n->data.scalar.value, '\0', n->data.scalar.length) != NULL)
        return fail_got(d, n, path, "a value without NUL bytes");
    *out = (const char *)n->data.scalar.value;
    return PC_OK;
}

pc_result pc_cfg_strdup(const char *s, char **out)
{
    char *copy = strdup(s);
    PC_ENSURE(copy != NULL, PC_ERR_INTERNAL, "out of memory reading the config");
    *out = copy;
    return PC_OK;
}

pc_result pc_cfg_string(const pc_cfg_doc *d, const yaml_node_t *n, const char *path, char **out)
{
    const char *s = NULL;
    PC_GUARD(pc_cfg_text(d, n, path, "a string", &s));
    if (s[0] == '\0') return fail_got(d, n, path, "a non-empty string");
    /* Control characters in a file name or header only ever hide
     * something, in a terminal or in a log line. */
    for (const char *p = s; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return fail_got(d, n, path, "a string without control characters");
    char *copy = NULL;
    PC_GUARD(pc_cfg_strdup(s, &copy));
    free(*out);
    *out = copy;
    return PC_OK;
}

pc_result pc_cfg_uint(const pc_cfg_doc *d, const yaml_node_t *n, const char *path, uint32_t min,
                      uint32_t max, uint32_t *out)
{
    char expected[64];
    snprintf(expected, sizeof expected, "an integer from %u to %u", (unsigned)min,
             (unsigned)max);
    const char *s = NULL;
    uint32_t v = 0;
    PC_GUARD(pc_cfg_text(d, n, path, expected, &s));
    if (!pc_ok(pc_cfg_parse_uint(s, &v))) return fail_relay(d, n, path);
    if (v < min || v > max) return fail_got(d, n, path, expected);
    *out = v;
    return PC_OK;
}

pc_result pc_cfg_bool(const pc_cfg_doc *d, const yaml_node_t *n, const char *path, bool *out)
{
    /* YAML 1.1 also reads yes/no/on/off as booleans, which has turned
     * country codes and "off" settings into false; only the two words that
     * mean nothing else are accepted. */
    static const char expected[] = "true or false (yes, no, on and off are not accepted)";
    const char *s = NULL;
    PC_GUARD(pc_cfg_text(d, n, path, expected, &s));
    if (strcmp(s, "true") == 0)
        *out = true;
    else if (strcmp(s, "false") == 0)
        *out = false;
    else
        return fail_got(d, n, path, expected);
    return PC_OK;
}

pc_result pc_cfg_size(const pc_cfg_doc *d, const yaml_node_t *n, const char *path, uint32_t min,
                      uint32_t max, uint32_t *out)
{
    const char *s = NULL;
    uint32_t v = 0;
    PC_GUARD(pc_cfg_text(d, n, path, "a size like 64KiB or 1MiB", &s));
    if (!pc_ok(pc_parse_size(s, &v))) return fail_relay(d, n, path);
    if (v < min || v > max) {
        char lo[32], hi[32], expected[96];
        pc_cfg_format_size(min, lo, sizeof lo);
        pc_cfg_format_size(max, hi, sizeof hi);
        snprintf(expected, sizeof expected, "a size from %s to %s", lo, hi);
        return fail_got(d, n, path, expected);
    }
    *out = v;
    return PC_OK;
}

pc_result pc_cfg_duration(const pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                          uint32_t min_ms, uint32_t max_ms, uint32_t *out)
{
    const char *s = NULL;
    uint32_t v = 0;
    PC_GUARD(pc_cfg_text(d, n, path, "a duration like 1500ms, 300s, 5m or 2h", &s));
    if (!pc_ok(pc_parse_duration_ms(s, &v))) return fail_relay(d, n, path);
    if (v < min_ms || v > max_ms) {
        char lo[32], hi[32], expected[96];
        pc_cfg_format_duration(min_ms, lo, sizeof lo);
        pc_cfg_format_duration(max_ms, hi, sizeof hi);
        snprintf(expected, sizeof expected, "a duration from %s to %s", lo, hi);
        return fail_got(d, n, path, expected);
    }
    *out = v;
    return PC_OK;
}

pc_result pc_cfg_enum(const pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                      const char *const *names, size_t count, int *out)
{
    char expected[160] = "one of ";
    size_t at = strlen(expected);
    for (size_t i = 0; i < count && at < sizeof expected; i++) {
        int w = snprintf(expected + at, sizeof expected - at, "%s%s", i > 0 ? ", " : "",
                         names[i]);
        if (w < 0) break;
        at += (size_t)w;
    }
    const char *s = NULL;
    PC_GUARD(pc_cfg_text(d, n, path, expected, &s));
    for (size_t i = 0; i < count; i++) {
        if (strcmp(s, names[i]) != 0) continue;
        *out = (int)i;
        return PC_OK;
    }
    return fail_got(d, n, path, expected);
}
