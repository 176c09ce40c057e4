/* From config bytes to a libyaml document, and the generic half of walking
 * it: where a node is, what it holds, and which keys a mapping may have.
 *
 * The bytes are parsed twice. A first pass over the event stream refuses
 * what the loader would make expensive or ambiguous (deep nesting, a flood
 * of nodes, aliases, tags, a second document) and stops at the first one,
 * before any node is built. Only then does yaml_parser_load build the
 * document that config.c walks. A config is a few kilobytes; the second
 * pass costs nothing worth saving. */
#include "core/config_impl.h"
#include "core/limits.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Keys in one schema mapping; server has the most, with 10. */
#define MAX_SCHEMA_KEYS 16u

typedef struct scan {
    const char *name;
    size_t depth;
    size_t nodes;
    size_t documents;
} scan;

static unsigned long line_of(yaml_mark_t m) { return (unsigned long)m.line + 1u; }
static unsigned long col_of(yaml_mark_t m) { return (unsigned long)m.column + 1u; }

/* Reader errors (bad UTF-8, control characters) carry a byte offset, not a
 * mark; count lines and characters up to it ourselves. */
static void offset_to_mark(const char *data, size_t len, size_t off, unsigned long *line,
                           unsigned long *col)
{
    *line = 1;
    *col = 1;
    if (off > len) off = len;
    for (size_t i = 0; i < off; i++) {
        unsigned char c = (unsigned char)data[i];
        if (c == '\n') {
            (*line)++;
            *col = 1;
        } else if ((c & 0xc0) != 0x80) {
            (*col)++;
        }
    }
}

static pc_result syntax_error(const char *name, const yaml_parser_t *p, const char *data,
                              size_t len)
{
    const char *problem = p->problem != NULL ? p->problem : "unknown error";
    if (p->error == YAML_MEMORY_ERROR)
        return pc_fail(PC_ERR_INTERNAL, "%s: out of memory while parsing YAML", name);
    if (p->error == YAML_READER_ERROR) {
        unsigned long line = 0, col = 0;
        offset_to_mark(data, len, p->problem_offset, &line, &col);
        return pc_fail(PC_ERR_USAGE, "%s:%lu:%lu: invalid YAML: %s (byte 0x%02x)", name, line,
                       col, problem, (unsigned)p->problem_value & 0xffu);
    }
    if (p->context != NULL)
        return pc_fail(PC_ERR_USAGE, "%s:%lu:%lu: invalid YAML: %s (%s at line %lu)", name,
                       line_of(p->problem_mark), col_of(p->problem_mark), problem, p->context,
                       line_of(p->context_mark));
    return pc_fail(PC_ERR_USAGE, "%s:%lu:%lu: invalid YAML: %s", name, line_of(p->problem_mark),
                   col_of(p->problem_mark), problem);
}

static pc_result scan_fail(const scan *s, const yaml_event_t *ev, const char *what)
{
    return pc_fail(PC_ERR_USAGE, "%s:%lu:%lu: %s", s->name, line_of(ev->start_mark),
                   col_of(ev->start_mark), what);
}

/* A node start: count it and refuse a tag. Tags would let a value claim a
 * type (!!binary, !!float) that the schema, not the file, decides. */
static pc_result scan_node(scan *s, const yaml_event_t *ev, const yaml_char_t *tag)
{
    if (++s->nodes > PC_CONFIG_MAX_NODES)
        return scan_fail(s, ev, "too many YAML nodes (more than 100000)");
    if (tag != NULL) return scan_fail(s, ev, "YAML tags (!...) are not supported");
    return PC_OK;
}

static pc_result scan_open(scan *s, const yaml_event_t *ev, const yaml_char_t *tag)
{
    if (++s->depth > PC_MAX_CONFIG_DEPTH)
        return scan_fail(s, ev, "YAML nested too deeply (more than 16 levels)");
    return scan_node(s, ev, tag);
}

static pc_result scan_event(scan *s, const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++s->documents > 1)
            return scan_fail(s, ev, "expected a single YAML document, found a second one");
        return PC_OK;
    case YAML_ALIAS_EVENT:
        /* The loader resolves an alias to a shared node, so one anchor can
         * stand for a whole subtree many times over; refusing aliases keeps
         * the document a tree whose size is the file's size. */
        return scan_fail(s, ev, "YAML aliases (*name) are not supported; write the value out");
    case YAML_SCALAR_EVENT: return scan_node(s, ev, ev->data.scalar.tag);
    case YAML_SEQUENCE_START_EVENT: return scan_open(s, ev, ev->data.sequence_start.tag);
    case YAML_MAPPING_START_EVENT: return scan_open(s, ev, ev->data.mapping_start.tag);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT: s->depth--; return PC_OK;
    default: return PC_OK;
    }
}

static pc_result init_parser(yaml_parser_t *p, const char *name, const char *data, size_t len)
{
    if (!yaml_parser_initialize(p))
        return pc_fail(PC_ERR_INTERNAL, "%s: out of memory while parsing YAML", name);
    yaml_parser_set_input_string(p, (const unsigned char *)data, len);
    /* A config is UTF-8; without this libyaml would also take UTF-16. */
    yaml_parser_set_encoding(p, YAML_UTF8_ENCODING);
    return PC_OK;
}

static pc_result prescan(const char *name, const char *data, size_t len)
{
    yaml_parser_t p;
    PC_GUARD(init_parser(&p, name, data, len));
    scan s = {.name = name};
    pc_result r = PC_OK;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            r = syntax_error(name, &p, data, len);
            break;
        }
        r = scan_event(&s, &ev);
        bool end = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
        if (!pc_ok(r) || end) break;
    }
    yaml_parser_delete(&p);
    return r;
}

pc_result pc_cfg_open(pc_cfg_doc *d, const char *name, const char *data, size_t len)
{
    memset(d, 0, sizeof *d);
    d->name = name;
    PC_ENSURE(len <= PC_MAX_CONFIG_BYTES, PC_ERR_USAGE,
              "%s: config is %zu bytes; the limit is %u (4MiB)", name, len,
              (unsigned)PC_MAX_CONFIG_BYTES);
    PC_GUARD(prescan(name, data, len));
    yaml_parser_t p;
    PC_GUARD(init_parser(&p, name, data, len));
    pc_result r = PC_OK;
    /* On failure yaml_parser_load frees what it built of the document. */
    if (yaml_parser_load(&p, &d->doc))
        d->loaded = true;
    else
        r = syntax_error(name, &p, data, len);
    yaml_parser_delete(&p);
    return r;
}

void pc_cfg_close(pc_cfg_doc *d)
{
    if (d->loaded) yaml_document_delete(&d->doc);
    d->loaded = false;
}

yaml_node_t *pc_cfg_root(pc_cfg_doc *d) { return yaml_document_get_root_node(&d->doc); }

yaml_node_t *pc_cfg_node(pc_cfg_doc *d, int index)
{
    return yaml_document_get_node(&d->doc, index);
}

pc_result pc_cfg_fail(const pc_cfg_doc *d, const yaml_node_t *at, const char *path,
                      const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    yaml_mark_t m = at != NULL ? at->start_mark : (yaml_mark_t){0, 0, 0};
    if (path[0] == '\0')
        return pc_fail(PC_ERR_USAGE, "%s:%lu:%lu: %s", d->name, line_of(m), col_of(m), msg);
    return pc_fail(PC_ERR_USAGE, "%s:%lu:%lu: %s: %s", d->name, line_of(m), col_of(m), path,
                   msg);
}

static bool scalar_is(const yaml_node_t *n, const char *s)
{
    size_t len = strlen(s);
    return n->data.scalar.length == len && memcmp(n->data.scalar.value, s, len) == 0;
}

bool pc_cfg_is_null(const yaml_node_t *n)
{
    if (n == NULL) return true;
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    return scalar_is(n, "") || scalar_is(n, "~") || scalar_is(n, "null") ||
           scalar_is(n, "Null") || scalar_is(n, "NULL");
}

void pc_cfg_describe(const yaml_node_t *n, char *buf, size_t cap)
{
    if (n == NULL) {
        snprintf(buf, cap, "nothing");
        return;
    }
    switch (n->type) {
    case YAML_SCALAR_NODE:
        if (pc_cfg_is_null(n))
            snprintf(buf, cap, "%s", n->data.scalar.length == 0 ? "nothing" : "null");
        else
            pc_cfg_quote((const char *)n->data.scalar.value, n->data.scalar.length, buf, cap);
        return;
    case YAML_SEQUENCE_NODE: snprintf(buf, cap, "a list"); return;
    case YAML_MAPPING_NODE: snprintf(buf, cap, "a mapping"); return;
    default: snprintf(buf, cap, "nothing"); return;
    }
}

void pc_cfg_path(char *buf, size_t cap, const char *parent, const char *key)
{
    if (parent[0] == '\0')
        snprintf(buf, cap, "%s", key);
    else
        snprintf(buf, cap, "%s.%s", parent, key);
}

void pc_cfg_path_index(char *buf, size_t cap, const char *parent, size_t i)
{
    snprintf(buf, cap, "%s[%zu]", parent, i);
}

/* A key as it goes into a path: as written when it is a plain identifier,
 * quoted otherwise so odd bytes never reach the message raw. */
static void key_text(const yaml_node_t *k, char *buf, size_t cap)
{
    const char *s = (const char *)k->data.scalar.value;
    size_t len = k->data.scalar.length;
    bool plain = len > 0 && len <= PC_CONFIG_MAX_QUOTE;
    for (size_t i = 0; plain && i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        plain = c > 0x20 && c < 0x7f && c != '"' && c != '\\';
    }
    if (plain)
        snprintf(buf, cap, "%.*s", (int)len, s);
    else
        pc_cfg_quote(s, len, buf, cap);
}

static pc_result unknown_key(const pc_cfg_doc *d, const yaml_node_t *k, const char *path,
                             const char *const *keys, size_t n)
{
    char list[256] = "";
    size_t at = 0;
    for (size_t i = 0; i < n && at < sizeof list; i++) {
        int w = snprintf(list + at, sizeof list - at, "%s%s", i > 0 ? ", " : "", keys[i]);
        if (w < 0) break;
        at += (size_t)w;
    }
    char name[4 * PC_CONFIG_MAX_QUOTE + 8];
    char full[PC_CONFIG_MAX_PATH + sizeof name];
    key_text(k, name, sizeof name);
    pc_cfg_path(full, sizeof full, path, name);
    return pc_cfg_fail(d, k, full, "unknown key; expected one of %s", list);
}

static pc_result check_key(const pc_cfg_doc *d, const yaml_node_t *k, const char *path)
{
    char got[4 * PC_CONFIG_MAX_QUOTE + 8];
    if (k->type == YAML_SCALAR_NODE && !pc_cfg_is_null(k)) return PC_OK;
    pc_cfg_describe(k, got, sizeof got);
    return pc_cfg_fail(d, k, path, "expected a key name, got %s", got);
}

/* Place one pair of a schema mapping into values[], refusing unknown and
 * repeated keys. */
static pc_result place_pair(pc_cfg_doc *d, const yaml_node_pair_t *pair, const char *path,
                            const char *const *keys, size_t n, yaml_node_t **values,
                            const yaml_node_t **first)
{
    yaml_node_t *k = pc_cfg_node(d, pair->key);
    yaml_node_t *v = pc_cfg_node(d, pair->value);
    PC_ENSURE(k != NULL && v != NULL, PC_ERR_INTERNAL, "%s: YAML pair without a node", d->name);
    PC_GUARD(check_key(d, k, path));
    for (size_t i = 0; i < n; i++) {
        if (!scalar_is(k, keys[i])) continue;
        if (values[i] != NULL) {
            char full[PC_CONFIG_MAX_PATH];
            pc_cfg_path(full, sizeof full, path, keys[i]);
            return pc_cfg_fail(d, k, full, "duplicate key; first set at line %lu",
                               line_of(first[i]->start_mark));
        }
        values[i] = v;
        first[i] = k;
        return PC_OK;
    }
    return unknown_key(d, k, path, keys, n);
}

pc_result pc_cfg_map(pc_cfg_doc *d, const yaml_node_t *map, const char *path,
                     const char *const *keys, size_t n, yaml_node_t **values)
{
    const yaml_node_t *first[MAX_SCHEMA_KEYS] = {NULL};
    if (n > MAX_SCHEMA_KEYS) pc_fatal("config schema mapping %s has %zu keys", path, n);
    for (size_t i = 0; i < n; i++) values[i] = NULL;
    if (map == NULL || map->type != YAML_MAPPING_NODE) {
        char got[4 * PC_CONFIG_MAX_QUOTE + 8];
        pc_cfg_describe(map, got, sizeof got);
        return pc_cfg_fail(d, map, path, "expected a mapping, got %s", got);
    }
    for (const yaml_node_pair_t *p = map->data.mapping.pairs.start;
         p < map->data.mapping.pairs.top; p++)
        PC_GUARD(place_pair(d, p, path, keys, n, values, first));
    return PC_OK;
}

pc_result pc_cfg_require(const pc_cfg_doc *d, const yaml_node_t *map, const char *path,
                         const char *key, const yaml_node_t *value)
{
    if (value != NULL) return PC_OK;
    return pc_cfg_fail(d, map, path, "missing required key \"%s\"", key);
}
