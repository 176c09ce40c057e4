/* libFuzzer target for the config loader: YAML bytes -> pc_config_parse.
 *
 * Any input must either parse or fail with a located message; neither may
 * leak, crash or read out of bounds. A config that parses is checked
 * against the invariants the rest of the server relies on, so a loader
 * bug that lets a bad value through aborts here instead of in a worker. */
#include "core/config.h"
#include "core/limits.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_route(const pc_route_config *r)
{
    if (r->method == NULL || r->path == NULL || r->path[0] != '/') abort();
    if (r->content_type == NULL || r->body == NULL || r->line < 1) abort();
    if (r->status < 100 || r->status > 599) abort();
    if (strchr(r->content_type, '\r') != NULL || strchr(r->content_type, '\n') != NULL) abort();
}

static void check(const pc_config *c)
{
    if (c->listen_host == NULL || c->listen_port == 0 || c->state_dir == NULL) abort();
    if (c->tls.cert_file == NULL || c->tls.key_file == NULL) abort();
    if (c->tls.min_version != 12 && c->tls.min_version != 13) abort();
    if ((c->tls.client_cert == PC_CLIENT_CERT_OPTIONAL ||
         c->tls.client_cert == PC_CLIENT_CERT_REQUIRED) &&
        c->tls.n_client_ca_files == 0)
        abort();
    if (c->workers > PC_MAX_WORKERS || c->n_routes > PC_MAX_ROUTES) abort();
    if (c->limits.max_header_bytes > PC_MAX_HEADER_BYTES_MAX ||
        c->limits.max_header_count > PC_MAX_HEADER_COUNT_MAX ||
        c->limits.max_body_bytes > PC_MAX_BODY_BYTES_MAX ||
        c->limits.max_connections_per_ip > c->limits.max_connections)
        abort();
    for (size_t i = 0; i < c->n_routes; i++) check_route(&c->routes[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pc_config *cfg = NULL;
    pc_result r = pc_config_parse("fuzz.yaml", (const char *)data, size, &cfg);
    if (pc_ok(r)) {
        check(cfg);
        pc_config_free(cfg);
    } else if (cfg != NULL || pc_errmsg()[0] == '\0') {
        abort();
    }
    return 0;
}
