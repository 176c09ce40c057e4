/* `portcullis client`: register, list, show and remove OAuth clients in
 * the store (<server.state_dir>/portcullis.db). Metadata is RFC 7591 JSON,
 * validated exactly as the server validates it (as/clients.h) before it
 * is stored, so the CLI cannot store a client the server would refuse. */
#include "as/clients.h"
#include "cli/commands.h"
#include "core/config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char client_usage[] =
    "usage: portcullis client <command> -c CONFIG [options]\n"
    "\n"
    "Registered OAuth clients (RFC 7591 metadata) in <server.state_dir>/portcullis.db.\n"
    "\n"
    "commands:\n"
    "  add     -c CONFIG --metadata FILE.json|-   register or replace a client\n"
    "  list    -c CONFIG                          one line per client\n"
    "  show    -c CONFIG ID                       the client's metadata as JSON\n"
    "  remove  -c CONFIG ID                       delete a client\n"
    "\n"
    "A running server picks changes up when it reloads (SIGHUP).\n"
    "Run 'portcullis client <command> --help' for details.\n";

static const char add_usage[] =
    "usage: portcullis client add -c CONFIG --metadata FILE.json\n"
    "       portcullis client add -c CONFIG --metadata - < FILE.json\n"
    "\n"
    "Validate RFC 7591 client metadata and store it (replacing a client with the\n"
    "same client_id). Required: client_id and token_endpoint_auth_method, one of\n"
    "tls_client_auth (with exactly one tls_client_auth_subject_dn / _san_dns /\n"
    "_san_uri / _san_ip / _san_email), self_signed_tls_client_auth or\n"
    "private_key_jwt (both with jwks). Optional: scope, grant_types,\n"
    "redirect_uris, dpop_bound_access_tokens, access_token_lifetime.\n"
    "\n"
    "  -c, --config FILE     the config file (required)\n"
    "      --metadata FILE   the metadata JSON, or - for stdin (required)\n"
    "  -h, --help            this help\n";

static const char list_usage[] =
    "usage: portcullis client list -c CONFIG\n"
    "\n"
    "One line per client: client_id, authentication method, dpop, source, scopes.\n"
    "\n"
    "  -c, --config FILE   the config file (required)\n"
    "  -h, --help          this help\n";

static const char show_usage[] =
    "usage: portcullis client show -c CONFIG ID\n"
    "\n"
    "Print the stored metadata of client ID as indented JSON.\n"
    "\n"
    "  -c, --config FILE   the config file (required)\n"
    "  -h, --help          this help\n";

static const char remove_usage[] =
    "usage: portcullis client remove -c CONFIG ID\n"
    "\n"
    "Delete client ID. A client declared in the config (as.clients) comes back\n"
    "at the next server start unless it is removed there too.\n"
    "\n"
    "  -c, --config FILE   the config file (required)\n"
    "  -h, --help          this help\n";

/* The parsed command line of one subcommand. */
struct client_cli {
    const char *cmd;
    const char *usage;
    const char *config;
    const char *metadata; /* add only */
    const char *id;       /* show, remove */
};

static int usage_error(const struct client_cli *cli, const char *msg, const char *arg)
{
    fprintf(stderr, "portcullis client %s: %s%s%s%s\n", cli->cmd, msg, arg ? " '" : "",
            arg ? arg : "", arg ? "'" : "");
    fprintf(stderr, "Try 'portcullis client %s --help'.\n", cli->cmd);
    return PC_EXIT_USAGE;
}

static int fail(void)
{
    fprintf(stderr, "portcullis: %s\n", pc_errmsg());
    return PC_EXIT_FAIL;
}

/* Returns -1 when the command should run, or the exit status. */
static int parse_args(struct client_cli *cli, bool wants_id, int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"metadata", required_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 0; /* glibc: start afresh */
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': cli->config = optarg; break;
        case 'm':
            if (strcmp(cli->cmd, "add") != 0)
                return usage_error(cli, "unknown option", "--metadata");
            cli->metadata = optarg;
            break;
        case 'h': fputs(cli->usage, stdout); return PC_EXIT_OK;
        case ':': return usage_error(cli, "missing value for option", argv[optind - 1]);
        default: return usage_error(cli, "unknown option", argv[optind - 1]);
        }
    }
    if (cli->config == NULL) return usage_error(cli, "-c CONFIG is required", NULL);
    if (wants_id) {
        if (optind >= argc) return usage_error(cli, "a client ID is required", NULL);
        cli->id = argv[optind++];
    }
    if (optind < argc) return usage_error(cli, "unexpected argument", argv[optind]);
    return -1;
}

/* The store named by the config, its directory made (0700) if missing. */
static pc_result open_store(const char *config, pc_store **st)
{
    pc_config *cfg = NULL;
    PC_GUARD(pc_config_load(config, &cfg));
    const char *dir = cfg->state_dir ? cfg->state_dir : ".";
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/portcullis.db", dir);
    pc_result r = PC_OK;
    if (n < 0 || (size_t)n >= sizeof path)
        r = pc_fail(PC_ERR_USAGE, "server.state_dir is too long");
    else if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        r = pc_fail(PC_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
    pc_config_free(cfg);
    if (!pc_ok(r)) return r;
    return pc_store_open(path, st);
}

/* ---- add ----------------------------------------------------------------------- */

/* Read at most PC_CLIENT_MAX_METADATA bytes; more is refused, not cut. */
static pc_result read_metadata(const char *name, char **out, size_t *len)
{
    FILE *f = strcmp(name, "-") == 0 ? stdin : fopen(name, "re");
    PC_ENSURE(f != NULL, PC_ERR_IO, "cannot read %s: %s", name, strerror(errno));
    char *buf = malloc(PC_CLIENT_MAX_METADATA + 1);
    size_t n = buf ? fread(buf, 1, PC_CLIENT_MAX_METADATA + 1, f) : 0;
    bool err = ferror(f) != 0;
    if (f != stdin) fclose(f);
    pc_result r = PC_OK;
    if (buf == NULL)
        r = pc_fail(PC_ERR_INTERNAL, "out of memory");
    else if (err)
        r = pc_fail(PC_ERR_IO, "cannot read %s", name);
    else if (n > PC_CLIENT_MAX_METADATA)
        r = pc_fail(PC_ERR_USAGE, "%s: larger than %u bytes", name, PC_CLIENT_MAX_METADATA);
    if (!pc_ok(r)) {
        free(buf);
        return r;
    }
    *out = buf;
    *len = n;
    return PC_OK;
}

static pc_result load_client(const char *name, pc_client **out)
{
    char *buf = NULL;
    size_t len = 0;
    PC_GUARD(read_metadata(name, &buf, &len));
    json_error_t jerr;
    json_t *md = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    free(buf);
    PC_ENSURE(md != NULL, PC_ERR_USAGE, "%s:%d:%d: %s", strcmp(name, "-") ? name : "stdin",
              jerr.line, jerr.column, jerr.text);
    pc_result r = pc_client_from_metadata(md, out);
    json_decref(md);
    if (!pc_ok(r)) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", pc_errmsg()); /* pc_fail writes the same buffer */
        return pc_fail(r.err, "%s: %s", strcmp(name, "-") ? name : "stdin", msg);
    }
    return PC_OK;
}

static void print_notes(const pc_client *c, const pc_store_client *old)
{
    if (old != NULL && strcmp(old->source, "config") == 0)
        printf("note: %s is declared in the config (as.clients); the config's version "
               "replaces this one at the next server start\n",
               c->client_id);
    if (c->jwks_uri != NULL)
        printf("note: jwks_uri is stored but not fetched yet; until it is, this client "
               "cannot authenticate with keys from it (register them inline with jwks)\n");
}

static pc_result add_client(pc_store *st, const pc_client *c)
{
    pc_store_client *old = NULL;
    pc_result r = pc_store_client_get(st, c->client_id, &old);
    if (!pc_ok(r) && r.err != PC_ERR_DENY) return r;
    char *text = json_dumps(c->metadata, JSON_COMPACT);
    r = text ? pc_store_client_put(st, c->client_id, text, "cli")
             : pc_fail(PC_ERR_INTERNAL, "out of memory");
    free(text);
    if (pc_ok(r)) {
        printf("%s client %s (%s)\n", old ? "replaced" : "added", c->client_id,
               pc_client_auth_name(c->auth));
        print_notes(c, old);
    }
    pc_store_client_free(old);
    return r;
}

static int run_add(struct client_cli *cli)
{
    if (cli->metadata == NULL) return usage_error(cli, "--metadata FILE is required", NULL);
    pc_client *c = NULL;
    pc_result r = load_client(cli->metadata, &c);
    if (!pc_ok(r)) return fail();
    pc_store *st = NULL;
    r = open_store(cli->config, &st);
    if (pc_ok(r)) r = add_client(st, c);
    pc_store_close(st);
    pc_client_free(c);
    return pc_ok(r) ? PC_EXIT_OK : fail();
}

/* ---- list, show, remove ------------------------------------------------------------ */

static void print_row(const pc_store_client *row, int width)
{
    json_t *md = json_loads(row->metadata_json, JSON_REJECT_DUPLICATES, NULL);
    pc_client *c = NULL;
    pc_result r = md ? pc_client_from_metadata(md, &c)
                     : pc_fail(PC_ERR_PROTO, "stored metadata is not JSON");
    json_decref(md);
    if (!pc_ok(r)) {
        printf("%-*s  INVALID (the server skips it): %s\n", width, row->client_id, pc_errmsg());
        return;
    }
    printf("%-*s  %-27s  dpop=%-3s  source=%-6s  scope=", width, c->client_id,
           pc_client_auth_name(c->auth), c->dpop_bound ? "yes" : "no", row->source);
    for (size_t i = 0; i < c->n_scopes; i++) printf("%s%s", i ? " " : "", c->scopes[i]);
    puts(c->n_scopes ? "" : "-");
    pc_client_free(c);
}

static int run_list(struct client_cli *cli)
{
    pc_store *st = NULL;
    pc_store_client **rows = NULL;
    size_t n = 0;
    pc_result r = open_store(cli->config, &st);
    if (pc_ok(r)) r = pc_store_client_list(st, &rows, &n);
    pc_store_close(st);
    if (!pc_ok(r)) return fail();
    int width = 9;
    for (size_t i = 0; i < n; i++)
        if ((int)strlen(rows[i]->client_id) > width) width = (int)strlen(rows[i]->client_id);
    for (size_t i = 0; i < n; i++) print_row(rows[i], width);
    if (n == 0) fputs("no clients\n", stderr);
    for (size_t i = 0; i < n; i++) pc_store_client_free(rows[i]);
    free(rows);
    return PC_EXIT_OK;
}

static pc_result get_row(const struct client_cli *cli, pc_store_client **row)
{
    pc_store *st = NULL;
    PC_GUARD(open_store(cli->config, &st));
    pc_result r = pc_store_client_get(st, cli->id, row);
    pc_store_close(st);
    PC_ENSURE(r.err != PC_ERR_DENY, PC_ERR_DENY, "unknown client '%.*s'", PC_CLIENT_MAX_ID,
              cli->id);
    return r;
}

static int run_show(struct client_cli *cli)
{
    pc_store_client *row = NULL;
    if (!pc_ok(get_row(cli, &row))) return fail();
    json_t *md = json_loads(row->metadata_json, 0, NULL);
    char *text = md ? json_dumps(md, JSON_INDENT(2)) : NULL;
    /* A row that is not JSON (edited by hand) is shown as it is. */
    puts(text ? text : row->metadata_json);
    free(text);
    json_decref(md);
    pc_store_client_free(row);
    return PC_EXIT_OK;
}

static int run_remove(struct client_cli *cli)
{
    pc_store *st = NULL;
    pc_store_client *row = NULL;
    pc_result r = open_store(cli->config, &st);
    if (pc_ok(r)) r = pc_store_client_get(st, cli->id, &row);
    if (pc_ok(r)) r = pc_store_client_delete(st, cli->id);
    pc_store_close(st);
    if (r.err == PC_ERR_DENY)
        r = pc_fail(PC_ERR_DENY, "unknown client '%.*s'", PC_CLIENT_MAX_ID, cli->id);
    if (!pc_ok(r)) {
        pc_store_client_free(row);
        return fail();
    }
    printf("removed client %s\n", row->client_id);
    if (strcmp(row->source, "config") == 0)
        printf("note: %s is declared in the config (as.clients); it comes back at the next "
               "server start unless it is removed there\n",
               row->client_id);
    pc_store_client_free(row);
    return PC_EXIT_OK;
}

/* ---- dispatch ------------------------------------------------------------------------ */

struct subcmd {
    const char *name;
    const char *usage;
    bool wants_id;
    int (*run)(struct client_cli *cli);
};

static const struct subcmd subcmds[] = {
    {"add", add_usage, false, run_add},
    {"list", list_usage, false, run_list},
    {"show", show_usage, true, run_show},
    {"remove", remove_usage, true, run_remove},
};

int pc_cmd_client(int argc, char **argv)
{
    if (argc < 2) {
        fputs(client_usage, stderr);
        return PC_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(client_usage, stdout);
        return PC_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof subcmds / sizeof subcmds[0]; i++) {
        if (strcmp(argv[1], subcmds[i].name) != 0) continue;
        struct client_cli cli = {.cmd = subcmds[i].name, .usage = subcmds[i].usage};
        int status = parse_args(&cli, subcmds[i].wants_id, argc - 1, argv + 1);
        return status >= 0 ? status : subcmds[i].run(&cli);
    }
    fprintf(stderr, "portcullis client: unknown command '%s'\n\n%s", argv[1], client_usage);
    return PC_EXIT_USAGE;
}
