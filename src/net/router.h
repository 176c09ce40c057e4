/* Router: method plus path template with named parameters.
 *
 *   /accounts/{id}/transactions/{tx}
 *
 * A template segment is a literal or {name}; a {name} matches one whole
 * non-empty segment. When several routes match, the most specific wins:
 * compared segment by segment from the left, a literal beats a parameter.
 * A path that matches no template is 404; one that matches a template
 * registered only for other methods is 405 with the Allow list. A HEAD
 * request matches a GET route. Matching is linear in the route count, which
 * is fastest for the tens of routes a gateway has; a trie can replace it
 * behind this interface if configs grow to thousands. */
#ifndef PC_NET_ROUTER_H
#define PC_NET_ROUTER_H

#include "core/limits.h"
#include "core/result.h"
#include "core/str.h"

#include <stddef.h>

typedef struct pc_router pc_router;

typedef enum pc_route_outcome {
    PC_ROUTE_FOUND = 0,
    PC_ROUTE_NOT_FOUND,
    PC_ROUTE_METHOD_NOT_ALLOWED,
} pc_route_outcome;

typedef struct pc_route_match {
    void *handler_data;   /* what pc_router_add was given */
    const char *template; /* the matched route's template, for logs */
    size_t n_params;
    pc_str param_names[PC_MAX_ROUTE_PARAMS];
    pc_str param_values[PC_MAX_ROUTE_PARAMS]; /* raw, still percent-encoded */
    char allow[128];      /* for 405: "GET, HEAD, POST" */
} pc_route_match;

PC_MUST_USE pc_result pc_router_new(pc_router **out);
void pc_router_free(pc_router *r);
/* method: "GET", ... or "*". Fails with PC_ERR_USAGE on a bad template or a
 * duplicate (method, template). */
PC_MUST_USE pc_result pc_router_add(pc_router *r, const char *method, const char *tmpl,
                                    void *handler_data);
pc_route_outcome pc_router_match(const pc_router *r, pc_str method, pc_str path,
                                 pc_route_match *m);
/* The value of a named parameter of a match, or a NULL pc_str. */
pc_str pc_route_param(const pc_route_match *m, const char *name);
/* True if tmpl is a valid template (used by the config checker). */
bool pc_router_template_ok(const char *tmpl, char *why, size_t why_len);

#endif
