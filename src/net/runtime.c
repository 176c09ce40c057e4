/* A runtime: what one config produces (TLS context, router, handlers,
 * module state), built whole so that a reload either fully succeeds or
 * changes nothing. */
#include "core/log.h"
#include "net/internal.h"

#include <stdlib.h>
#include <string.h>

pc_modules pc_registered_modules;

struct pc_route_sink {
    pc_runtime *rt;
};

pc_result pc_server_add_module(const pc_module *m)
{
    pc_modules *ms = &pc_registered_modules;
    PC_ENSURE(ms->n < PC_MAX_MODULES, PC_ERR_INTERNAL, "too many modules");
    ms->mods[ms->n++] = m;
    return PC_OK;
}

pc_result pc_modules_start(const pc_config *cfg)
{
    pc_modules *ms = &pc_registered_modules;
    for (size_t i = 0; i < ms->n; i++) {
        if (ms->started[i] || !ms->mods[i]->enabled(cfg)) continue;
        pc_result r = ms->mods[i]->start(cfg, &ms->shared[i]);
        if (!pc_ok(r)) return r;
        ms->started[i] = true;
    }
    return PC_OK;
}

void pc_modules_stop(void)
{
    pc_modules *ms = &pc_registered_modules;
    for (size_t i = 0; i < ms->n; i++) {
        if (ms->started[i]) ms->mods[i]->stop(ms->shared[i]);
        ms->started[i] = false;
        ms->shared[i] = NULL;
    }
}

static void runtime_free(pc_runtime *rt)
{
    if (rt == NULL) return;
    pc_router_free(rt->router);
    pc_modules *ms = &pc_registered_modules;
    for (size_t i = 0; i < ms->n; i++)
        if (rt->module_state[i]) ms->mods[i]->free(rt->module_state[i]);
    SSL_CTX_free(rt->ssl_ctx);
    free(rt->handlers);
    pc_config_free(rt->cfg);
    free(rt);
}

/* Handlers live in one array the router points into, so it is sized once
 * up front and never moves. */
static pc_result add_handler(pc_runtime *rt, const char *method, const char *path,
                             pc_handler h)
{
    PC_ENSURE(rt->n_handlers < rt->cap_handlers, PC_ERR_INTERNAL, "more routes than %zu",
              rt->cap_handlers);
    pc_handler *slot = &rt->handlers[rt->n_handlers];
    *slot = h;
    PC_GUARD(pc_router_add(rt->router, method, path, slot));
    rt->n_handlers++;
    return PC_OK;
}

pc_result pc_route_sink_add(pc_route_sink *sink, const char *method, const char *path,
                            pc_handler_fn fn, void *data, const char *name)
{
    return add_handler(sink->rt, method, path, (pc_handler){fn, data, name});
}

void *pc_route_sink_module_state(pc_route_sink *sink, const char *module_name)
{
    pc_modules *ms = &pc_registered_modules;
    for (size_t i = 0; i < ms->n; i++)
        if (strcmp(ms->mods[i]->name, module_name) == 0) return sink->rt->module_state[i];
    return NULL;
}

static pc_result add_config_routes(pc_runtime *rt, bool *healthz_taken)
{
    const pc_config *cfg = rt->cfg;
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const pc_route_config *rc = &cfg->routes[i];
        pc_handler h;
        switch (rc->kind) {
        case PC_ROUTE_STATIC:
            h = (pc_handler){pc_builtin_static, (void *)rc, "static"};
            break;
        case PC_ROUTE_WHOAMI:
            h = pc_builtin_whoami;
            break;
        default:
            return pc_fail(PC_ERR_USAGE, "%s:%d: unknown route kind",
                           cfg->path ? cfg->path : "config", rc->line);
        }
        pc_result r = add_handler(rt, rc->method, rc->path, h);
        if (!pc_ok(r))
            return pc_fail(PC_ERR_USAGE, "%s:%d: %s", cfg->path ? cfg->path : "config", rc->line,
                           pc_errmsg());
        if (strcmp(rc->path, "/healthz") == 0) *healthz_taken = true;
    }
    return PC_OK;
}

static pc_result add_routes(pc_runtime *rt)
{
    /* Modules register at most this many routes each. */
    enum { MODULE_ROUTES = 32 };
    rt->cap_handlers = rt->cfg->n_routes + 1 + PC_MAX_MODULES * MODULE_ROUTES;
    rt->handlers = calloc(rt->cap_handlers, sizeof *rt->handlers);
    PC_ENSURE(rt->handlers != NULL, PC_ERR_INTERNAL, "out of memory");
    bool healthz_taken = false;
    PC_GUARD(add_config_routes(rt, &healthz_taken));
    pc_modules *ms = &pc_registered_modules;
    pc_route_sink sink = {rt};
    for (size_t i = 0; i < ms->n; i++) {
        if (!ms->started[i] || !ms->mods[i]->enabled(rt->cfg)) continue;
        pc_result r = ms->mods[i]->build(rt->cfg, ms->shared[i], &sink, &rt->module_state[i]);
        if (!pc_ok(r)) return r;
    }
    if (!healthz_taken) PC_GUARD(add_handler(rt, "GET", "/healthz", pc_builtin_healthz));
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
    pc_result r = pc_modules_start(cfg); /* a module enabled by a reload starts now */
    if (pc_ok(r)) r = pc_tls_server_ctx(&cfg->tls, &rt->ssl_ctx);
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
