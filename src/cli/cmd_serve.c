/* portcullis serve -c FILE and portcullis check -c FILE. */
#include "abuse/abuse.h"
#include "as/as.h"
#include "as/clients.h"
#include "gw/gw.h"
#include "cli/commands.h"
#include "core/config.h"
#include "core/log.h"
#include "net/router.h"
#include "net/server.h"
#include "net/tls.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static int parse_config_arg(int argc, char **argv, const char *usage, const char **path)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *path = NULL;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            *path = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return -1;
        default:
            fputs(usage, stderr);
            return PC_EXIT_USAGE;
        }
    }
    if (*path == NULL || optind != argc) {
        fputs(usage, stderr);
        return PC_EXIT_USAGE;
    }
    return PC_EXIT_OK;
}

static const char serve_usage[] =
    "usage: portcullis serve -c FILE\n"
    "\n"
    "Run the server with the YAML config FILE (see docs/configuration.md).\n"
    "Logs are JSON lines on stderr or log.file.\n"
    "\n"
    "Signals:\n"
    "  SIGHUP   reload the config and certificates; established connections stay\n"
    "  SIGTERM  stop accepting, finish in-flight requests (server.limits.shutdown_timeout),\n"
    "           then exit; a second SIGTERM closes everything at once\n"
    "\n"
    "options:\n"
    "  -c, --config FILE   the config file (required)\n"
    "  -h, --help          this help\n";

int pc_cmd_serve(int argc, char **argv)
{
    const char *path;
    int rc = parse_config_arg(argc, argv, serve_usage, &path);
    if (rc < 0) return PC_EXIT_OK;
    if (rc != PC_EXIT_OK) return rc;
    pc_config *cfg = NULL;
    if (!pc_ok(pc_config_load(path, &cfg))) {
        fprintf(stderr, "portcullis: %s\n", pc_errmsg());
        return PC_EXIT_FAIL;
    }
    if (!pc_ok(pc_log_open(cfg->log_file, cfg->log_level))) {
        fprintf(stderr, "portcullis: %s\n", pc_errmsg());
        pc_config_free(cfg);
        return PC_EXIT_FAIL;
    }
    /* Abuse resistance first: the AS and the gateway read its state for
     * the same runtime (failure and rate limits, quarantines, detectors). */
    pc_result r = pc_server_add_module(&pc_abuse_module);
    if (pc_ok(r)) r = pc_server_add_module(&pc_as_module);
    /* After the AS: the gateway reads the AS's state for this runtime. */
    if (pc_ok(r)) r = pc_server_add_module(&pc_gw_module);
    if (pc_ok(r)) r = pc_server_run(cfg); /* takes cfg */
    else pc_config_free(cfg);
    if (!pc_ok(r)) {
        pc_log_msg(PC_LOG_ERROR, "server_failed", "%s", pc_errmsg());
        fprintf(stderr, "portcullis: %s\n", pc_errmsg());
        pc_log_close();
        return PC_EXIT_FAIL;
    }
    pc_log_close();
    return PC_EXIT_OK;
}

static const char check_usage[] =
    "usage: portcullis check -c FILE\n"
    "\n"
    "Validate the config FILE: its YAML, every key and value, the route\n"
    "templates, and that the TLS certificate, key and CA files load and\n"
    "match. Prints 'FILE: ok' and exits 0, or prints FILE:LINE:COL: what is\n"
    "wrong and exits 1.\n"
    "\n"
    "options:\n"
    "  -c, --config FILE   the config file (required)\n"
    "  -h, --help          this help\n";

int pc_cmd_check(int argc, char **argv)
{
    const char *path;
    int rc = parse_config_arg(argc, argv, check_usage, &path);
    if (rc < 0) return PC_EXIT_OK;
    if (rc != PC_EXIT_OK) return rc;
    pc_config *cfg = NULL;
    if (!pc_ok(pc_config_load(path, &cfg))) {
        fprintf(stderr, "portcullis: %s\n", pc_errmsg());
        return PC_EXIT_FAIL;
    }
    /* Build what serve would build, so check catches what serve would. */
    SSL_CTX *ctx = NULL;
    pc_result r = pc_tls_server_ctx(&cfg->tls, &ctx);
    SSL_CTX_free(ctx);
    pc_router *router = NULL;
    if (pc_ok(r)) r = pc_router_new(&router);
    for (size_t i = 0; pc_ok(r) && i < cfg->n_routes; i++) {
        r = pc_router_add(router, cfg->routes[i].method, cfg->routes[i].path, NULL);
        if (!pc_ok(r)) r = pc_fail(r.err, "%s:%d: %s", path, cfg->routes[i].line, pc_errmsg());
    }
    pc_router_free(router);
    /* Client metadata too, as serve would refuse it (as/clients.c). */
    for (size_t i = 0; pc_ok(r) && i < cfg->as.n_clients; i++) {
        const pc_as_client_seed *seed = &cfg->as.clients[i];
        json_error_t jerr;
        json_t *md = json_loads(seed->metadata_json, 0, &jerr);
        pc_client *c = NULL;
        r = md ? pc_client_from_metadata(md, &c) : pc_fail(PC_ERR_USAGE, "%s", jerr.text);
        if (!pc_ok(r))
            r = pc_fail(r.err, "%s:%d: as.clients[%zu]: %s", path, seed->line, i, pc_errmsg());
        pc_client_free(c);
        json_decref(md);
    }
    pc_config_free(cfg);
    if (!pc_ok(r)) {
        fprintf(stderr, "portcullis: %s\n", pc_errmsg());
        return PC_EXIT_FAIL;
    }
    printf("%s: ok\n", path);
    return PC_EXIT_OK;
}
