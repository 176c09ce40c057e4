/* Private to src/core/config*.c: the schema walker the config loader is
 * built from. Nothing outside the config files includes this.
 *
 * config_units.c  number, duration and size text -> integers; quoting
 * config_yaml.c   bytes -> a bounded libyaml document; error locations;
 *                 mapping walks (unknown and duplicate keys)
 * config_values.c one typed value from one node (string, integer, ...)
 * config_routes.c the routes list and path templates
 * config_gw.c     upstreams and gateway routes; config_gw_section.c gateway:
 * config.c        the schema: which keys, which defaults, which ranges */
#ifndef PC_CORE_CONFIG_IMPL_H
#define PC_CORE_CONFIG_IMPL_H

#include "core/config.h"
#include "core/result.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

/* YAML nodes in one config (scalars, lists and mappings). A config with
 * PC_MAX_ROUTES routes needs about 45000; the bound keeps a hostile file
 * within PC_MAX_CONFIG_BYTES from costing hundreds of megabytes of nodes. */
#define PC_CONFIG_MAX_NODES 100000u
/* The longest dotted key path we print ("routes[4095].static.content_type"
 * fits with room to spare). */
#define PC_CONFIG_MAX_PATH 96u
/* Bytes of a bad value quoted back in an error message. */
#define PC_CONFIG_MAX_QUOTE 48u

/* A loaded document and the name its messages carry. */
typedef struct pc_cfg_doc {
    const char *name;     /* borrowed: the file name for messages */
    yaml_document_t doc;  /* owned once loaded; pc_cfg_close frees it */
    bool loaded;
} pc_cfg_doc;

/* ---- config_units.c ---------------------------------------------------- */

/* A decimal integer up to UINT32_MAX with no sign, no leading zero and no
 * spaces. On failure the message reads "expected ..., got \"...\"". */
PC_MUST_USE pc_result pc_cfg_parse_uint(const char *s, uint32_t *out);
/* Write s (len bytes) to buf as a double-quoted, escaped string, truncated
 * with "..." past PC_CONFIG_MAX_QUOTE bytes. Never fails; always terminates
 * buf (cap must be > 0). */
void pc_cfg_quote(const char *s, size_t len, char *buf, size_t cap);
/* Render a size or duration in the largest unit that divides it evenly
 * ("64KiB", "24h"), for range messages. */
void pc_cfg_format_size(uint32_t bytes, char *buf, size_t cap);
void pc_cfg_format_duration(uint32_t ms, char *buf, size_t cap);

/* ---- config_yaml.c ----------------------------------------------------- */

/* Parse data into d->doc, refusing oversize input, syntax errors, more than
 * one document, aliases, tags, nesting past PC_MAX_CONFIG_DEPTH and more
 * than PC_CONFIG_MAX_NODES nodes. On success the root may be NULL (an empty
 * file). On failure nothing is left to free. */
PC_MUST_USE pc_result pc_cfg_open(pc_cfg_doc *d, const char *name, const char *data,
                                  size_t len);
void pc_cfg_close(pc_cfg_doc *d);
yaml_node_t *pc_cfg_root(pc_cfg_doc *d);
/* The node at a libyaml index (from a pair or a sequence item). */
yaml_node_t *pc_cfg_node(pc_cfg_doc *d, int index);

/* Fail with "name:line:col: path: <message>" at node's start; an empty path
 * leaves out the "path: " part. */
PC_MUST_USE pc_result pc_cfg_fail(const pc_cfg_doc *d, const yaml_node_t *at, const char *path,
                                  const char *fmt, ...) PC_PRINTF(4, 5);
/* What a node holds, for "got ...": "\"lots\"", "a list", "a mapping" or
 * "nothing" (an empty or null scalar). */
void pc_cfg_describe(const yaml_node_t *n, char *buf, size_t cap);
/* True for a plain scalar YAML reads as null: empty, "~" or "null". */
bool pc_cfg_is_null(const yaml_node_t *n);

/* Join "parent" and "key" into "parent.key" (or "key" at the top). */
void pc_cfg_path(char *buf, size_t cap, const char *parent, const char *key);
/* Join "parent" and index into "parent[i]". */
void pc_cfg_path_index(char *buf, size_t cap, const char *parent, size_t i);

/* Walk a mapping whose keys must come from keys[0..n): every key a scalar,
 * known and not repeated. values[i] is set to the value of keys[i], or NULL
 * when absent. map must be a mapping or the walk fails with "expected
 * <what>". */
PC_MUST_USE pc_result pc_cfg_map(pc_cfg_doc *d, const yaml_node_t *map, const char *path,
                                 const char *const *keys, size_t n, yaml_node_t **values);
/* Fail at the mapping's start unless value is present. */
PC_MUST_USE pc_result pc_cfg_require(const pc_cfg_doc *d, const yaml_node_t *map,
                                     const char *path, const char *key,
                                     const yaml_node_t *value);

/* ---- config_values.c --------------------------------------------------- */

/* The scalar's text, refusing non-scalars, null and NUL bytes. what names
 * the expected value in the message ("a string", "a size like ..."). */
PC_MUST_USE pc_result pc_cfg_text(const pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                                  const char *what, const char **out);
/* A non-empty string with no control characters, copied. *out is replaced
 * (the old value freed) only on success. */
PC_MUST_USE pc_result pc_cfg_string(const pc_cfg_doc *d, const yaml_node_t *n,
                                    const char *path, char **out);
PC_MUST_USE pc_result pc_cfg_uint(const pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                                  uint32_t min, uint32_t max, uint32_t *out);
PC_MUST_USE pc_result pc_cfg_bool(const pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                                  bool *out);
PC_MUST_USE pc_result pc_cfg_size(const pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                                  uint32_t min, uint32_t max, uint32_t *out);
PC_MUST_USE pc_result pc_cfg_duration(const pc_cfg_doc *d, const yaml_node_t *n,
                                      const char *path, uint32_t min_ms, uint32_t max_ms,
                                      uint32_t *out);
/* One of names[0..n); *out is its index. */
PC_MUST_USE pc_result pc_cfg_enum(const pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                                  const char *const *names, size_t count, int *out);
/* strdup that reports failure as a pc_result. */
PC_MUST_USE pc_result pc_cfg_strdup(const char *s, char **out);

/* ---- config_routes.c --------------------------------------------------- */

/* Parse the routes list into cfg->routes / cfg->n_routes. On failure what
 * was allocated stays in cfg for pc_config_free. */
PC_MUST_USE pc_result pc_cfg_routes(pc_cfg_doc *d, const yaml_node_t *list, pc_config *cfg);

/* ---- config_as.c -------------------------------------------------------- */

void pc_cfg_as_defaults(pc_as_config *ac);
/* Parse the `as:` mapping; on failure what was allocated stays in ac for
 * pc_cfg_as_free. */
PC_MUST_USE pc_result pc_cfg_as(pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                                const pc_config *cfg, pc_as_config *ac);
void pc_cfg_as_free(pc_as_config *ac);

/* ---- config_gw.c -------------------------------------------------------- */

/* The gateway: `upstreams:`, `gateway:` and the `upstream:`/`auth:` keys of
 * a route (docs/gateway.md). Parsed before routes, so a route can name an
 * upstream and default its audience from as.resources. */
void pc_cfg_gw_defaults(pc_config *cfg);
PC_MUST_USE pc_result pc_cfg_upstreams(pc_cfg_doc *d, const yaml_node_t *n, pc_config *cfg);
PC_MUST_USE pc_result pc_cfg_gateway(pc_cfg_doc *d, const yaml_node_t *n, pc_config *cfg);
/* The upstream: / auth: / timeout: keys of one route (any may be NULL);
 * sets r->kind to PC_ROUTE_UPSTREAM. */
PC_MUST_USE pc_result pc_cfg_route_upstream(pc_cfg_doc *d, const yaml_node_t *route,
                                            const yaml_node_t *upstream, const yaml_node_t *auth,
                                            const yaml_node_t *timeout, const char *path,
                                            const pc_config *cfg, pc_route_config *r);
/* After every section: default gateway.external_url, and move the
 * PC_ROUTE_UPSTREAM routes from cfg->routes to cfg->gw_routes
 * (the gateway module registers them; net/ serves the rest). */
PC_MUST_USE pc_result pc_cfg_gw_finish(pc_config *cfg);
void pc_cfg_route_gw_free(pc_route_config *r);
void pc_cfg_gw_free(pc_config *cfg);
void pc_cfg_upstream_free(pc_upstream_config *u);

/* Shared by config_gw.c and config_gw_section.c. */
/* A URL we keep: a base, not a payload. */
#define PC_CONFIG_MAX_URL 1024u
/* Upstream timeouts: 1 ms to 10 minutes; the defaults. */
#define PC_CONFIG_GW_TIMEOUT_MAX_MS (600u * 1000u)
#define PC_CONFIG_GW_CONNECT_TIMEOUT_MS 2000u
#define PC_CONFIG_GW_UPSTREAM_TIMEOUT_MS 10000u
typedef bool (*pc_cfg_gw_item_ok)(const char *s);
/* A list of at most 64 strings, each accepted by ok ("expected <what>"). */
PC_MUST_USE pc_result pc_cfg_gw_strings(pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                                        pc_cfg_gw_item_ok ok, const char *what, char ***out,
                                        size_t *count);
bool pc_cfg_gw_cidr_ok(const char *s);
bool pc_cfg_gw_header_name_ok(const char *s);
/* http(s)://host[:port][/path] into u's https, host, port, base_path;
 * http only to loopback. why says what is wrong. */
bool pc_cfg_gw_split_url(const char *s, pc_upstream_config *u, char *why, size_t cap);

/* ---- config_abuse.c ---------------------------------------------------- */

/* `rate_limits:`, `detect:` and `admin:` (docs/abuse-resistance.md), and
 * the abuse keys of a route. rate_limits is parsed before as and routes,
 * which name its policies. */
void pc_cfg_abuse_defaults(pc_config *cfg);
PC_MUST_USE pc_result pc_cfg_rate_limits(pc_cfg_doc *d, const yaml_node_t *n, pc_config *cfg);
PC_MUST_USE pc_result pc_cfg_detect(pc_cfg_doc *d, const yaml_node_t *n, pc_config *cfg);
PC_MUST_USE pc_result pc_cfg_admin(pc_cfg_doc *d, const yaml_node_t *n, pc_config *cfg);
/* A list of policy names from rate_limits:, as indices. */
PC_MUST_USE pc_result pc_cfg_policy_refs(pc_cfg_doc *d, const yaml_node_t *n, const char *path,
                                         const pc_config *cfg, size_t **out, size_t *count);
/* A route's identifier: / max_distinct: / rate_limits: (any may be NULL). */
PC_MUST_USE pc_result pc_cfg_route_abuse(pc_cfg_doc *d, const yaml_node_t *route,
                                         const yaml_node_t *identifier,
                                         const yaml_node_t *max_distinct,
                                         const yaml_node_t *rate_limits, const char *path,
                                         const pc_config *cfg, pc_route_config *r);
void pc_cfg_abuse_free(pc_config *cfg);

#endif
