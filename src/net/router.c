#include "net/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct segment {
    char *text;  /* literal text, or the parameter name; owned */
    size_t len;
    bool param;
} segment;

typedef struct route {
    char method[16];
    char *tmpl; /* owned */
    segment segs[PC_MAX_PATH_SEGMENTS];
    size_t n_segs;
    void *data;
} route;

struct pc_router {
    route *routes;
    size_t n, cap;
};

pc_result pc_router_new(pc_router **out)
{
    *out = calloc(1, sizeof **out);
    PC_ENSURE(*out != NULL, PC_ERR_INTERNAL, "out of memory");
    return PC_OK;
}

static void route_free(route *rt)
{
    for (size_t i = 0; i < rt->n_segs; i++) free(rt->segs[i].text);
    free(rt->tmpl);
}

void pc_router_free(pc_router *r)
{
    if (r == NULL) return;
    for (size_t i = 0; i < r->n; i++) route_free(&r->routes[i]);
    free(r->routes);
    free(r);
}

static bool name_ok(const char *s, size_t n)
{
    if (n == 0 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

/* Split a template into segments; on failure write why and return false. */
static bool compile(const char *tmpl, route *rt, char *why, size_t why_len)
{
    rt->n_segs = 0;
    if (tmpl[0] != '/') {
        snprintf(why, why_len, "must start with '/'");
        return false;
    }
    size_t n_params = 0;
    const char *p = tmpl + 1;
    for (;;) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (rt->n_segs == PC_MAX_PATH_SEGMENTS) {
            snprintf(why, why_len, "more than %u segments", PC_MAX_PATH_SEGMENTS);
            return false;
        }
        segment *s = &rt->segs[rt->n_segs];
        bool param = len >= 2 && p[0] == '{' && p[len - 1] == '}';
        const char *txt = param ? p + 1 : p;
        size_t tlen = param ? len - 2 : len;
        if (param && !name_ok(txt, tlen)) {
            snprintf(why, why_len, "parameter name '%.*s' must match [A-Za-z_][A-Za-z0-9_]*",
                     (int)tlen, txt);
            return false;
        }
        if (!param && (memchr(txt, '{', tlen) || memchr(txt, '}', tlen))) {
            snprintf(why, why_len, "a parameter must be a whole segment, like {id}");
            return false;
        }
        if (!param && ((tlen == 1 && txt[0] == '.') || (tlen == 2 && txt[0] == '.' && txt[1] == '.'))) {
            snprintf(why, why_len, "dot segments are not allowed");
            return false;
        }
        if (param) {
            for (size_t i = 0; i < rt->n_segs; i++)
                if (rt->segs[i].param && rt->segs[i].len == tlen &&
                    memcmp(rt->segs[i].text, txt, tlen) == 0) {
                    snprintf(why, why_len, "parameter {%.*s} appears twice", (int)tlen, txt);
                    return false;
                }
            if (++n_params > PC_MAX_ROUTE_PARAMS) {
                snprintf(why, why_len, "more than %u parameters", PC_MAX_ROUTE_PARAMS);
                return false;
            }
        }
        s->text = strndup(txt, tlen);
        if (s->text == NULL) {
            snprintf(why, why_len, "out of memory");
            return false;
        }
        s->len = tlen;
        s->param = param;
        rt->n_segs++;
        if (!end) break;
        p = end + 1;
    }
    return true;
}

bool pc_router_template_ok(const char *tmpl, char *why, size_t why_len)
{
    route rt = {0};
    bool ok = compile(tmpl, &rt, why, why_len);
    route_free(&rt);
    return ok;
}

static bool same_shape(const route *a, const route *b)
{
    if (a->n_segs != b->n_segs) return false;
    for (size_t i = 0; i < a->n_segs; i++) {
        if (a->segs[i].param != b->segs[i].param) return false;
        if (!a->segs[i].param && (a->segs[i].len != b->segs[i].len ||
                                  memcmp(a->segs[i].text, b->segs[i].text, a->segs[i].len) != 0))
            return false;
    }
    return true;
}

pc_result pc_router_add(pc_router *r, const char *method, const char *tmpl, void *handler_data)
{
    char why[160];
    PC_ENSURE(strlen(method) < sizeof r->routes[0].method, PC_ERR_USAGE, "method '%s' too long",
              method);
    PC_ENSURE(r->n < PC_MAX_ROUTES, PC_ERR_USAGE, "more than %u routes", PC_MAX_ROUTES);
    route rt = {0};
    if (!compile(tmpl, &rt, why, sizeof why)) {
        route_free(&rt);
        return pc_fail(PC_ERR_USAGE, "route template '%s': %s", tmpl, why);
    }
    for (size_t i = 0; i < r->n; i++) {
        if (strcmp(r->routes[i].method, method) == 0 && same_shape(&r->routes[i], &rt)) {
            route_free(&rt);
            return pc_fail(PC_ERR_USAGE, "route %s %s duplicates %s %s", method, tmpl,
                           r->routes[i].method, r->routes[i].tmpl);
        }
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 8;
        route *nr = realloc(r->routes, cap * sizeof *nr);
        if (nr == NULL) {
            route_free(&rt);
            return pc_fail(PC_ERR_INTERNAL, "out of memory");
        }
        r->routes = nr;
        r->cap = cap;
    }
    snprintf(rt.method, sizeof rt.method, "%s", method);
    rt.tmpl = strdup(tmpl);
    rt.data = handler_data;
    if (rt.tmpl == NULL) {
        route_free(&rt);
        return pc_fail(PC_ERR_INTERNAL, "out of memory");
    }
    r->routes[r->n++] = rt;
    return PC_OK;
}

/* Match path segments against a route. Returns a specificity score: a bit
 * per segment from the left, set for a literal match, so that comparing
 * scores compares specificity left to right. -1 for no match. */
static long long match_route(const route *rt, const pc_str *segs, size_t n)
{
    if (rt->n_segs != n) return -1;
    long long score = 0;
    for (size_t i = 0; i < n; i++) {
        const segment *s = &rt->segs[i];
        score <<= 1;
        if (s->param) {
            if (segs[i].len == 0) return -1;
            continue;
        }
        if (s->len != segs[i].len || memcmp(s->text, segs[i].ptr, s->len) != 0) return -1;
        score |= 1;
    }
    return score;
}

static bool method_ok(const route *rt, pc_str method)
{
    if (rt->method[0] == '*' && rt->method[1] == '\0') return true;
    pc_str rm = pc_str_c(rt->method);
    if (pc_str_eq(rm, method)) return true;
    return pc_str_eq(method, PC_STR("HEAD")) && pc_str_eq(rm, PC_STR("GET"));
}

static void add_allow(pc_route_match *m, const char *method)
{
    size_t len = strlen(m->allow);
    if (strstr(m->allow, method) != NULL) return;
    snprintf(m->allow + len, sizeof m->allow - len, "%s%s", len ? ", " : "", method);
}

pc_route_outcome pc_router_match(const pc_router *r, pc_str method, pc_str path, pc_route_match *m)
{
    pc_str segs[PC_MAX_PATH_SEGMENTS];
    size_t n = 0;
    m->allow[0] = '\0';
    m->n_params = 0;
    if (path.len == 0 || path.ptr[0] != '/') return PC_ROUTE_NOT_FOUND;
    size_t start = 1;
    for (size_t i = 1; i <= path.len; i++) {
        if (i < path.len && path.ptr[i] != '/') continue;
        if (n == PC_MAX_PATH_SEGMENTS) return PC_ROUTE_NOT_FOUND;
        segs[n++] = (pc_str){path.ptr + start, i - start};
        start = i + 1;
    }
    const route *best = NULL;
    long long best_score = -1;
    bool path_matched = false;
    for (size_t i = 0; i < r->n; i++) {
        long long score = match_route(&r->routes[i], segs, n);
        if (score < 0) continue;
        path_matched = true;
        if (!method_ok(&r->routes[i], method)) {
            add_allow(m, r->routes[i].method);
            if (strcmp(r->routes[i].method, "GET") == 0) add_allow(m, "HEAD");
            continue;
        }
        if (score > best_score) {
            best = &r->routes[i];
            best_score = score;
        }
    }
    if (best == NULL) return path_matched ? PC_ROUTE_METHOD_NOT_ALLOWED : PC_ROUTE_NOT_FOUND;
    m->handler_data = best->data;
    m->template = best->tmpl;
    for (size_t i = 0; i < n; i++) {
        if (!best->segs[i].param) continue;
        m->param_names[m->n_params] = (pc_str){best->segs[i].text, best->segs[i].len};
        m->param_values[m->n_params] = segs[i];
        m->n_params++;
    }
    return PC_ROUTE_FOUND;
}

pc_str pc_route_param(const pc_route_match *m, const char *name)
{
    pc_str n = pc_str_c(name);
    for (size_t i = 0; i < m->n_params; i++)
        if (pc_str_eq(m->param_names[i], n)) return m->param_values[i];
    return PC_STR_NULL;
}
