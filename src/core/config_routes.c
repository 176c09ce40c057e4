/* routes: the list of route declarations and their path templates.
 *
 *   template = "/" / 1*( "/" segment )
 *   segment  = literal / "{" name "}"
 *   literal  = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "!" / "$" / "&"
 *                / "'" / "(" / ")" / "*" / "+" / "," / ";" / "=" / ":" / "@" )
 *   name     = ( ALPHA / "_" ) *( ALPHA / DIGIT / "_" )
 *
 * A literal is RFC 3986's pchar without pct-encoded: a template matches
 * the decoded path, so "%" in one would be ambiguous. "." and ".." are
 * refused because clients remove them before sending (RFC 3986 5.2.4), so
 * such a route could never match. Empty segments ("//", a trailing "/")
 * are refused for the same reason a router would have to guess. */
#include "core/config_impl.h"
#include "core/limits.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GOT_CAP (4u * PC_CONFIG_MAX_QUOTE + 8u)
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))
/* The longest method accepted. The router keeps a method in 16 bytes
 * (src/net/router.c), so a longer one would pass `portcullis check` and
 * then fail at start. Only a few rare WebDAV methods are longer. */
#define ROUTE_MAX_METHOD 15u

enum {
    RT_METHOD, RT_PATH, RT_STATIC, RT_HANDLER, RT_UPSTREAM, RT_AUTH, RT_TIMEOUT, RT_IDENTIFIER,
    RT_MAX_DISTINCT, RT_RATE_LIMITS, N_RT
};
static const char *const route_keys[N_RT] = {
    [RT_METHOD] = "method",     [RT_PATH] = "path", [RT_STATIC] = "static",
    [RT_HANDLER] = "handler",   [RT_UPSTREAM] = "upstream", [RT_AUTH] = "auth",
    [RT_TIMEOUT] = "timeout",   [RT_IDENTIFIER] = "identifier",
    [RT_MAX_DISTINCT] = "max_distinct", [RT_RATE_LIMITS] = "rate_limits"};

enum { ST_STATUS, ST_CONTENT_TYPE, ST_BODY, N_ST };
static const char *const static_keys[N_ST] = {
    [ST_STATUS] = "status", [ST_CONTENT_TYPE] = "content_type", [ST_BODY] = "body"};

/* Built-in handlers, indexed by the pc_route_kind they select. */
static const char *const handler_names[] = {"whoami"};
static const pc_route_kind handler_kinds[] = {PC_ROUTE_WHOAMI};

/* ---- templates --------------------------------------------------------- */

static bool is_alpha(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static bool is_literal_char(char c)
{
    return is_alpha(c) || is_digit(c) || (c != '\0' && strchr("-._~!$&'()*+,;=:@", c) != NULL);
}

static bool valid_param_name(const char *s, size_t len)
{
    if (len == 0 || !(is_alpha(s[0]) || s[0] == '_')) return false;
    for (size_t i = 1; i < len; i++)
        if (!(is_alpha(s[i]) || is_digit(s[i]) || s[i] == '_')) return false;
    return true;
}

typedef struct tmpl_scan {
    const char *names[PC_MAX_ROUTE_PARAMS];
    size_t lens[PC_MAX_ROUTE_PARAMS];
    size_t n_params;
    size_t n_segments;
} tmpl_scan;

static bool check_param(tmpl_scan *t, const char *seg, size_t len, char *why, size_t cap)
{
    const char *name = seg + 1;
    size_t nlen = len - 2;
    if (len < 2 || seg[len - 1] != '}' || !valid_param_name(name, nlen)) {
        snprintf(why, cap, "a parameter is a whole segment {name}, name [A-Za-z_][A-Za-z0-9_]*");
        return false;
    }
    for (size_t i = 0; i < t->n_params; i++) {
        if (t->lens[i] != nlen || memcmp(t->names[i], name, nlen) != 0) continue;
        snprintf(why, cap, "parameter {%.*s} appears twice", (int)nlen, name);
        return false;
    }
    if (t->n_params == PC_MAX_ROUTE_PARAMS) {
        snprintf(why, cap, "more than %u parameters", (unsigned)PC_MAX_ROUTE_PARAMS);
        return false;
    }
    t->names[t->n_params] = name;
    t->lens[t->n_params++] = nlen;
    return true;
}

static bool check_literal(const char *seg, size_t len, char *why, size_t cap)
{
    if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.')) {
        snprintf(why, cap, "\".\" and \"..\" segments never reach a server");
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (is_literal_char(seg[i])) continue;
        if (seg[i] == '{' || seg[i] == '}')
            snprintf(why, cap, "a parameter is a whole segment {name}, not part of one");
        else
            snprintf(why, cap, "character %u is not allowed in a path",
                     (unsigned)(unsigned char)seg[i]);
        return false;
    }
    return true;
}

static bool check_segment(tmpl_scan *t, const char *seg, size_t len, char *why, size_t cap)
{
    if (len == 0) {
        snprintf(why, cap, "empty segment: no \"//\" and no trailing \"/\"");
        return false;
    }
    if (++t->n_segments > PC_MAX_PATH_SEGMENTS) {
        snprintf(why, cap, "more than %u segments", (unsigned)PC_MAX_PATH_SEGMENTS);
        return false;
    }
    if (seg[0] == '{') return check_param(t, seg, len, why, cap);
    return check_literal(seg, len, why, cap);
}

/* True if s is a valid template; otherwise why says what is wrong. */
static bool check_template(const char *s, char *why, size_t cap)
{
    tmpl_scan t = {.n_params = 0};
    if (s[0] != '/') {
        snprintf(why, cap, "it must start with \"/\"");
        return false;
    }
    if (s[1] == '\0') return true;
    const char *seg = s + 1;
    for (;;) {
        const char *end = strchr(seg, '/');
        size_t len = end != NULL ? (size_t)(end - seg) : strlen(seg);
        if (!check_segment(&t, seg, len, why, cap)) return false;
        if (end == NULL) return true;
        seg = end + 1;
    }
}

/* Templates compare as if every "{name}" were a bare "{": two routes are
 * the same when they match the same paths, that is, when they differ at
 * most in parameter names. Literals never hold "{", so this is a total
 * order on what a template matches. Both templates are valid. */
static int template_cmp(const char *a, const char *b)
{
    for (;;) {
        if (*a != *b) return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
        if (*a == '\0') return 0;
        if (*a == '{') {
            a = strchr(a, '}');
            b = strchr(b, '}');
        }
        a++;
        b++;
    }
}

/* ---- one route --------------------------------------------------------- */

static bool valid_method(const char *s)
{
    size_t len = strlen(s);
    if (strcmp(s, "*") == 0) return true;
    if (len == 0 || len > ROUTE_MAX_METHOD || !(s[0] >= 'A' && s[0] <= 'Z')) return false;
    for (size_t i = 1; i < len; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || is_digit(s[i]) || s[i] == '-' || s[i] == '_'))
            return false;
    return true;
}

static pc_result parse_method(pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                              pc_route_config *r)
{
    PC_GUARD(pc_cfg_string(d, n, path, &r->method));
    if (valid_method(r->method)) return PC_OK;
    char got[GOT_CAP];
    pc_cfg_describe(n, got, sizeof got);
    return pc_cfg_fail(d, n, path,
                       "expected an upper-case HTTP method like GET or POST, or \"*\", got %s",
                       got);
}

static pc_result parse_template(pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                                pc_route_config *r)
{
    char why[96];
    PC_GUARD(pc_cfg_string(d, n, path, &r->path));
    if (check_template(r->path, why, sizeof why)) return PC_OK;
    char got[GOT_CAP];
    pc_cfg_describe(n, got, sizeof got);
    return pc_cfg_fail(d, n, path, "expected a path template like /accounts/{id} (%s), got %s",
                       why, got);
}

/* A Content-Type goes into a response header as written: printable ASCII
 * only, so it can never carry a CR or LF into the header block. */
static bool valid_content_type(const char *s)
{
    if (s[0] == ' ' || strchr(s, '/') == NULL) return false;
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e) return false;
    return true;
}

static pc_result parse_body(pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                            pc_route_config *r)
{
    /* The body is bytes with a length, so unlike other strings it may hold
     * a NUL ("\0" in a double-quoted scalar). */
    if (n->type != YAML_SCALAR_NODE || pc_cfg_is_null(n)) {
        char got[GOT_CAP];
        pc_cfg_describe(n, got, sizeof got);
        return pc_cfg_fail(d, n, path, "expected a string (write '' for an empty body), got %s",
                           got);
    }
    size_t len = n->data.scalar.length;
    char *body = malloc(len + 1);
    PC_ENSURE(body != NULL, PC_ERR_INTERNAL, "out of memory reading the config");
    memcpy(body, n->data.scalar.value, len);
    body[len] = '\0';
    free(r->body);
    r->body = body;
    r->body_len = len;
    return PC_OK;
}

static pc_result parse_static(pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                              pc_route_config *r)
{
    yaml_node_t *v[N_ST];
    char sub[PC_CONFIG_MAX_PATH];
    if (pc_cfg_is_null(n))
        return pc_cfg_fail(d, n, path,
                           "expected a mapping (write {} for all defaults), got nothing");
    PC_GUARD(pc_cfg_map(d, n, path, static_keys, N_ST, v));
    if (v[ST_STATUS] != NULL) {
        uint32_t status = 0;
        pc_cfg_path(sub, sizeof sub, path, static_keys[ST_STATUS]);
        PC_GUARD(pc_cfg_uint(d, v[ST_STATUS], sub, 100, 599, &status));
        r->status = (int)status;
    }
    if (v[ST_CONTENT_TYPE] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, static_keys[ST_CONTENT_TYPE]);
        PC_GUARD(pc_cfg_string(d, v[ST_CONTENT_TYPE], sub, &r->content_type));
        if (!valid_content_type(r->content_type)) {
            char got[GOT_CAP];
            pc_cfg_describe(v[ST_CONTENT_TYPE], got, sizeof got);
            return pc_cfg_fail(d, v[ST_CONTENT_TYPE], sub,
                               "expected a media type like application/json, got %s", got);
        }
    }
    if (v[ST_BODY] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, static_keys[ST_BODY]);
        PC_GUARD(parse_body(d, v[ST_BODY], sub, r));
    }
    return PC_OK;
}

static pc_result parse_action(pc_cfg_doc *d, const yaml_node_t *n, yaml_node_t **v,
                              const char *path, const pc_config *cfg, pc_route_config *r)
{
    char sub[PC_CONFIG_MAX_PATH];
    int actions = (v[RT_STATIC] != NULL) + (v[RT_HANDLER] != NULL) + (v[RT_UPSTREAM] != NULL);
    /* The gateway's upstream: is a third action; messages about the first
     * two keep their wording when no upstream: is involved. */
    if (actions != 1 && v[RT_UPSTREAM] == NULL)
        return pc_cfg_fail(d, n, path, "expected exactly one of static or handler, got %s",
                           v[RT_STATIC] == NULL ? "neither" : "both");
    if (actions != 1)
        return pc_cfg_fail(d, n, path,
                           "expected exactly one of static, handler or upstream, got more than one");
    if (v[RT_UPSTREAM] == NULL &&
        (v[RT_IDENTIFIER] != NULL || v[RT_MAX_DISTINCT] != NULL || v[RT_RATE_LIMITS] != NULL)) {
        const yaml_node_t *at = v[RT_IDENTIFIER] ? v[RT_IDENTIFIER]
                                : v[RT_MAX_DISTINCT] ? v[RT_MAX_DISTINCT] : v[RT_RATE_LIMITS];
        return pc_cfg_fail(d, at, path,
                           "identifier, max_distinct and rate_limits apply only to an upstream: "
                           "route");
    }
    if (v[RT_UPSTREAM] != NULL || v[RT_AUTH] != NULL || v[RT_TIMEOUT] != NULL) {
        PC_GUARD(pc_cfg_route_upstream(d, n, v[RT_UPSTREAM], v[RT_AUTH], v[RT_TIMEOUT], path, cfg,
                                       r));
        return pc_cfg_route_abuse(d, n, v[RT_IDENTIFIER], v[RT_MAX_DISTINCT], v[RT_RATE_LIMITS],
                                  path, cfg, r);
    }
    if (v[RT_STATIC] != NULL) {
        pc_cfg_path(sub, sizeof sub, path, route_keys[RT_STATIC]);
        r->kind = PC_ROUTE_STATIC;
        return parse_static(d, v[RT_STATIC], sub, r);
    }
    int i = 0;
    pc_cfg_path(sub, sizeof sub, path, route_keys[RT_HANDLER]);
    PC_GUARD(pc_cfg_enum(d, v[RT_HANDLER], sub, handler_names, N_OF(handler_names), &i));
    r->kind = handler_kinds[i];
    return PC_OK;
}

static pc_result parse_route(pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                             const pc_config *cfg, pc_route_config *r)
{
    yaml_node_t *v[N_RT];
    char sub[PC_CONFIG_MAX_PATH];
    /* Handler routes carry the static defaults too, so no reader of a
     * route ever meets a NULL content type or body. */
    r->line = (int)n->start_mark.line + 1;
    r->status = 200;
    PC_GUARD(pc_cfg_strdup("application/json", &r->content_type));
    PC_GUARD(pc_cfg_strdup("", &r->body));
    PC_GUARD(pc_cfg_map(d, n, path, route_keys, N_RT, v));
    PC_GUARD(pc_cfg_require(d, n, path, route_keys[RT_METHOD], v[RT_METHOD]));
    PC_GUARD(pc_cfg_require(d, n, path, route_keys[RT_PATH], v[RT_PATH]));
    pc_cfg_path(sub, sizeof sub, path, route_keys[RT_METHOD]);
    PC_GUARD(parse_method(d, v[RT_METHOD], sub, r));
    pc_cfg_path(sub, sizeof sub, path, route_keys[RT_PATH]);
    PC_GUARD(parse_template(d, v[RT_PATH], sub, r));
    return parse_action(d, n, v, path, cfg, r);
}

/* ---- the list ---------------------------------------------------------- */

/* Order routes by method, then template, then position in the file, so
 * duplicates sit next to each other with the first declared leading. */
static int route_cmp(const void *pa, const void *pb)
{
    const pc_route_config *a = *(const pc_route_config *const *)pa;
    const pc_route_config *b = *(const pc_route_config *const *)pb;
    int c = strcmp(a->method, b->method);
    if (c == 0) c = template_cmp(a->path, b->path);
    if (c == 0) c = a < b ? -1 : (a > b ? 1 : 0);
    return c;
}

static bool same_route(const pc_route_config *a, const pc_route_config *b)
{
    return strcmp(a->method, b->method) == 0 && template_cmp(a->path, b->path) == 0;
}

/* The duplicate declared earliest in the file, paired with the first
 * route it repeats; sorting keeps this O(n log n) for PC_MAX_ROUTES. */
static bool find_duplicate(pc_route_config **sorted, size_t n, const pc_route_config **dup,
                           const pc_route_config **first)
{
    *dup = NULL;
    const pc_route_config *group = sorted[0];
    for (size_t i = 1; i < n; i++) {
        if (!same_route(sorted[i - 1], sorted[i])) {
            group = sorted[i];
            continue;
        }
        if (*dup == NULL || sorted[i] < *dup) {
            *dup = sorted[i];
            *first = group;
        }
    }
    return *dup != NULL;
}

static pc_result check_duplicates(pc_cfg_doc *d, const yaml_node_t *list, pc_config *cfg)
{
    pc_route_config **sorted = calloc(cfg->n_routes, sizeof *sorted);
    PC_ENSURE(sorted != NULL, PC_ERR_INTERNAL, "out of memory reading the config");
    for (size_t i = 0; i < cfg->n_routes; i++) sorted[i] = &cfg->routes[i];
    qsort(sorted, cfg->n_routes, sizeof *sorted, route_cmp);
    const pc_route_config *dup = NULL, *first = NULL;
    bool found = find_duplicate(sorted, cfg->n_routes, &dup, &first);
    free(sorted);
    if (!found) return PC_OK;
    size_t i = (size_t)(dup - cfg->routes);
    char path[PC_CONFIG_MAX_PATH];
    pc_cfg_path_index(path, sizeof path, "routes", i);
    yaml_node_t *n = pc_cfg_node(d, list->data.sequence.items.start[i]);
    return pc_cfg_fail(d, n, path,
                       "duplicate route %s %s; the same method and path were declared at "
                       "line %d",
                       dup->method, dup->path, first->line);
}

pc_result pc_cfg_routes(pc_cfg_doc *d, const yaml_node_t *list, pc_config *cfg)
{
    if (list->type != YAML_SEQUENCE_NODE) {
        char got[GOT_CAP];
        pc_cfg_describe(list, got, sizeof got);
        return pc_cfg_fail(d, list, "routes", "expected a list of routes, got %s", got);
    }
    size_t count = (size_t)(list->data.sequence.items.top - list->data.sequence.items.start);
    if (count > PC_MAX_ROUTES)
        return pc_cfg_fail(d, list, "routes", "expected at most %u routes, got %zu",
                           (unsigned)PC_MAX_ROUTES, count);
    if (count == 0) return PC_OK;
    cfg->routes = calloc(count, sizeof *cfg->routes);
    PC_ENSURE(cfg->routes != NULL, PC_ERR_INTERNAL, "out of memory reading the config");
    cfg->n_routes = count;
    for (size_t i = 0; i < count; i++) {
        char path[PC_CONFIG_MAX_PATH];
        pc_cfg_path_index(path, sizeof path, "routes", i);
        yaml_node_t *n = pc_cfg_node(d, list->data.sequence.items.start[i]);
        PC_ENSURE(n != NULL, PC_ERR_INTERNAL, "%s: YAML list item without a node", d->name);
        PC_GUARD(parse_route(d, n, path, cfg, &cfg->routes[i]));
    }
    return check_duplicates(d, list, cfg);
}
