/* A runtime: what one config produces (TLS context, router, handlers),
 * built whole so that a reload either fully succeeds or changes nothing. */
#include "core/log.h"
#include "net/internal.h"

#include <stdlib.h>
#include <string.h>

static void runtime_free(pc_runtime *rt)
{
    if (rt == NULL) return;
    pc_router_free(rt->router);
    SSL_CTX_free(rt->ssl_ctx);
    free(rt->handlers);
    pc_config_free(rt->cfg);
    free(rt);
}

static pc_result add_routes(pc_runtime *rt)
{
    const pc_config *cfg = rt->cfg;
    /* One handler slot per configured route, plus the built-ins. The
     * router keeps pointers into this array, so it never grows later. */
    rt->handlers = calloc(cfg->n_routes + 1, sizeof *rt->handlers);
    PC_ENSURE(rt->handlers != NULL, PC_ERR_INTERNAL, "out of memory");
    bool healthz_taken = false;
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const pc_route_config *rc = &cfg->routes[i];
        pc_handler *h = &rt->handlers[rt->n_handlers++];
        switch (rc->kind) {
        case PC_ROUTE_STATIC:
            *h = (pc_handler){pc_builtin_static, (void *)rc, "static"};
            break;
        case PC_ROUTE_WHOAMI:
            *h = pc_builtin_whoami;
            break;
        default:
            return pc_fail(PC_ERR_USAGE, "%s:%d: unknown route kind", cfg->path ? cfg->path : "config",
                           rc->line);
        }
        pc_result r = pc_router_add(rt->router, rc->method, rc->path, h);
        if (!pc_ok(r))
            return pc_fail(PC_ERR_USAGE, "%s:%d: %s", cfg->path ? cfg->path : "config", rc->line,
                           pc_errmsg());
        if (strcmp(rc->path, "/healthz") == 0) healthz_taken = true;
    }
    if (!healthz_taken) {
        rt->handlers[rt->n_handlers] = pc_builtin_healthz;
        PC_GUARD(pc_router_add(rt->router, "GET", "/healthz", &rt->handlers[rt->n_handlers]));
        rt->n_handlers++;
    }
    return PC_OK;
}

pc_result pc_runtime_build(pc_config *cfg, uint64_t generation, pc_runtime **out)
{
    *out = NULL;
    pc_runtime *rt = calloc(1, sizeof *rt);
    if (rt == NULL) {
        pc_config_free(cfg);
        return pc_fail(PC_ERR_INTERNAL, "out of memory");
    }
    atomic_init(&rt->refs, 1);
    rt->generation = generation;
    rt->cfg = cfg;
    pc_result r = pc_tls_server_ctx(&cfg->tls, &rt->ssl_ctx);
    if (pc_ok(r)) r = pc_router_new(&rt->router);
    if (pc_ok(r)) r = add_routes(rt);
    if (!pc_ok(r)) {
        runtime_free(rt);
        return r;
    }
    *out = rt;
    return PC_OK;
}

void pc_runtime_ref(pc_runtime *rt) { atomic_fetch_add(&rt->refs, 1); }

void pc_runtime_unref(pc_runtime *rt)
{
    if (rt && atomic_fetch_sub(&rt->refs, 1) == 1) runtime_free(rt);
}
