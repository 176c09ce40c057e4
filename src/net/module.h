/* Modules: the authorization server, the gateway and later layers plug
 * their endpoints into the server through this interface, so that net/
 * never includes a layer above it. The CLI registers modules before
 * pc_server_run.
 *
 * A module has two lifetimes:
 *   - shared state, made once at server start and kept across reloads
 *     (replay caches, revocation sets, counters: anything a reload must
 *     not reset, or an attacker would reload-by-SIGHUP their way past it);
 *   - per-runtime state, built from each config (on start and on every
 *     SIGHUP), which registers the module's routes. It is freed when the
 *     last connection using that runtime is gone. */
#ifndef PC_NET_MODULE_H
#define PC_NET_MODULE_H

#include "core/config.h"
#include "net/server.h"

typedef struct pc_route_sink pc_route_sink;

/* Register a route for this runtime. data must live as long as the
 * module's runtime state. */
PC_MUST_USE pc_result pc_route_sink_add(pc_route_sink *sink, const char *method,
                                        const char *path, pc_handler_fn fn, void *data,
                                        const char *name);

/* The state another module built for this same runtime (modules build in
 * registration order), or NULL if that module is absent or disabled. Lets
 * the gateway verify the in-process AS's tokens with the AS's own keys
 * and revocation list. */
void *pc_route_sink_module_state(pc_route_sink *sink, const char *module_name);

typedef struct pc_module {
    const char *name;
    /* Is this module configured at all? (e.g. the AS when `as:` exists) */
    bool (*enabled)(const pc_config *cfg);
    /* Once, at server start. */
    PC_MUST_USE pc_result (*start)(const pc_config *cfg, void **shared);
    void (*stop)(void *shared);
    /* For each runtime: build state and add routes. */
    PC_MUST_USE pc_result (*build)(const pc_config *cfg, void *shared, pc_route_sink *sink,
                                   void **state);
    void (*free)(void *state);
} pc_module;

#define PC_MAX_MODULES 8

/* Register a module (before pc_server_run). */
PC_MUST_USE pc_result pc_server_add_module(const pc_module *m);

#endif
