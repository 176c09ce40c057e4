/* `portcullis keys`: the authorization server's signing keys in the store
 * (<server.state_dir>/portcullis.db): list them, rotate them, and create
 * the key-encryption key (KEK) that seals their private parts. */
#include "as/keys.h"
#include "cli/commands.h"
#include "core/config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const char keys_usage[] =
    "usage: portcullis keys <command> -c CONFIG\n"
    "\n"
    "The authorization server's signing keys, kept in <server.state_dir>/portcullis.db\n"
    "with their private parts sealed under the KEK (as.kek_file or " PC_KEK_ENV ").\n"
    "\n"
    "commands:\n"
    "  list      one line per key: kid, alg, state, created, activated, retire_after\n"
    "  rotate    next key signs, the active key retires, a new next key is published\n"
    "  init-kek  create as.kek_file with a random KEK if it does not exist\n"
    "\n"
    "Run 'portcullis keys <command> --help' for details.\n";

static const char list_usage[] =
    "usage: portcullis keys list -c CONFIG\n"
    "\n"
    "List the signing keys: kid, alg, state (next, active, retired), and when each\n"
    "was created, activated and is unpublished (retire_after), in UTC. Needs no KEK.\n"
    "\n"
    "  -c, --config FILE   the config file (required)\n"
    "  -h, --help          this help\n";

static const char rotate_usage[] =
    "usage: portcullis keys rotate -c CONFIG\n"
    "\n"
    "Rotate the signing keys: the next key (published since the last rotation)\n"
    "becomes active; the active key retires and stays published for\n"
    "as.max_access_token_lifetime + as.clock_skew, so tokens it signed still verify;\n"
    "a new next key of as.signing_alg is made and published. Retired keys past\n"
    "their time are deleted. A change of as.signing_alg signs from the second\n"
    "rotation on. A running server picks the change up when it reloads (SIGHUP).\n"
    "\n"
    "  -c, --config FILE   the config file (required)\n"
    "  -h, --help          this help\n";

static const char init_kek_usage[] =
    "usage: portcullis keys init-kek -c CONFIG\n"
    "\n"
    "Create the file named by as.kek_file holding a random 256-bit KEK (64 hex\n"
    "characters, mode 0600). An existing file is left unchanged. Back the file up:\n"
    "without it the signing keys in the store cannot be opened.\n"
    "\n"
    "  -c, --config FILE   the config file (required)\n"
    "  -h, --help          this help\n";

struct keys_cli {
    const char *cmd;
    const char *usage;
    const char *config;
    pc_config *cfg; /* owned */
};

static int usage_error(const struct keys_cli *cli, const char *msg, const char *arg)
{
    fprintf(stderr, "portcullis keys %s: %s%s%s%s\n", cli->cmd, msg, arg ? " '" : "",
            arg ? arg : "", arg ? "'" : "");
    fprintf(stderr, "Try 'portcullis keys %s --help'.\n", cli->cmd);
    return PC_EXIT_USAGE;
}

static int fail(void)
{
    fprintf(stderr, "portcullis: %s\n", pc_errmsg());
    return PC_EXIT_FAIL;
}

static int parse_args(struct keys_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 0;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': cli->config = optarg; break;
        case 'h': fputs(cli->usage, stdout); return PC_EXIT_OK;
        case ':': return usage_error(cli, "missing value for option", argv[optind - 1]);
        default: return usage_error(cli, "unknown option", argv[optind - 1]);
        }
    }
    if (cli->config == NULL) return usage_error(cli, "-c CONFIG is required", NULL);
    if (optind < argc) return usage_error(cli, "unexpected argument", argv[optind]);
    return -1;
}

static pc_result open_store(const pc_config *cfg, pc_store **st)
{
    const char *dir = cfg->state_dir ? cfg->state_dir : ".";
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/portcullis.db", dir);
    PC_ENSURE(n > 0 && (size_t)n < sizeof path, PC_ERR_USAGE, "server.state_dir is too long");
    PC_ENSURE(mkdir(dir, 0700) == 0 || errno == EEXIST, PC_ERR_IO, "cannot create %s: %s", dir,
              strerror(errno));
    return pc_store_open(path, st);
}

/* ISO 8601 UTC, or "-" for 0 (never). */
static const char *iso(int64_t t, char buf[32])
{
    struct tm tm;
    time_t tt = (time_t)t;
    if (t == 0 || gmtime_r(&tt, &tm) == NULL) return "-";
    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

static const char *state_name(pc_key_state s)
{
    switch (s) {
    case PC_KEY_NEXT: return "next";
    case PC_KEY_ACTIVE: return "active";
    case PC_KEY_RETIRED: return "retired";
    default: return "?";
    }
}

static void free_keys(pc_store_key **keys, size_t n)
{
    for (size_t i = 0; i < n; i++) pc_store_key_free(keys[i]);
    free(keys);
}

static int run_list(struct keys_cli *cli)
{
    pc_store *st = NULL;
    pc_store_key **keys = NULL;
    size_t n = 0;
    pc_result r = open_store(cli->cfg, &st);
    if (pc_ok(r)) r = pc_store_key_list(st, &keys, &n);
    pc_store_close(st);
    if (!pc_ok(r)) return fail();
    if (n == 0) {
        fputs("no signing keys yet (the server makes them on first start, or run "
              "'portcullis keys rotate')\n",
              stderr);
        return PC_EXIT_OK;
    }
    printf("%-24s %-6s %-8s %-20s %-20s %s\n", "KID", "ALG", "STATE", "CREATED", "ACTIVATED",
           "RETIRE_AFTER");
    for (size_t i = 0; i < n; i++) {
        char c[32], a[32], ra[32];
        printf("%-24s %-6s %-8s %-20s %-20s %s\n", keys[i]->kid, keys[i]->alg,
               state_name(keys[i]->state), iso(keys[i]->created_at, c),
               iso(keys[i]->activated_at, a), iso(keys[i]->retire_after, ra));
    }
    free_keys(keys, n);
    return PC_EXIT_OK;
}

static void print_rotation(pc_store_key **keys, size_t n, int64_t now)
{
    char t[32];
    for (size_t i = 0; i < n; i++)
        if (keys[i]->state == PC_KEY_ACTIVE)
            printf("active key: %s (%s), signs from the server's next reload\n", keys[i]->kid,
                   keys[i]->alg);
    for (size_t i = 0; i < n; i++)
        if (keys[i]->state == PC_KEY_NEXT)
            printf("next key:   %s (%s), published now, signs after the next rotation\n",
                   keys[i]->kid, keys[i]->alg);
    for (size_t i = 0; i < n; i++)
        if (keys[i]->state == PC_KEY_RETIRED && keys[i]->retire_after > now)
            printf("retired:    %s, published until %s\n", keys[i]->kid,
                   iso(keys[i]->retire_after, t));
    puts("Reload a running server now (SIGHUP) so it signs with the new active key.");
}

/* Seconds, rounded up: a retired key must outlive every token it signed. */
static uint32_t ms_to_s(uint32_t ms)
{
    return ms / 1000u + (ms % 1000u != 0);
}

static int run_rotate(struct keys_cli *cli)
{
    const pc_as_config *as = &cli->cfg->as;
    if (!as->enabled) {
        pc_fail(PC_ERR_USAGE, "%s has no 'as' section: the authorization server is off",
                cli->config);
        return fail();
    }
    pc_jws_alg alg = pc_jws_alg_parse(pc_str_c(as->signing_alg ? as->signing_alg : "ES256"));
    pc_kek kek;
    pc_result r = pc_kek_load(as->kek_file, &kek);
    if (!pc_ok(r)) return fail();
    pc_store *st = NULL;
    pc_store_key **keys = NULL;
    size_t n = 0;
    int64_t now = (int64_t)time(NULL);
    r = open_store(cli->cfg, &st);
    if (pc_ok(r))
        r = pc_keys_rotate(st, &kek, alg, ms_to_s(as->max_access_token_lifetime_ms),
                           ms_to_s(as->clock_skew_ms), now);
    pc_kek_wipe(&kek);
    if (pc_ok(r)) r = pc_store_key_list(st, &keys, &n);
    pc_store_close(st);
    if (!pc_ok(r)) return fail();
    print_rotation(keys, n, now);
    free_keys(keys, n);
    return PC_EXIT_OK;
}

static int run_init_kek(struct keys_cli *cli)
{
    const char *file = cli->cfg->as.kek_file;
    if (file == NULL) {
        pc_fail(PC_ERR_USAGE, "%s sets no as.kek_file (the KEK then comes from " PC_KEK_ENV ")",
                cli->config);
        return fail();
    }
    struct stat sb;
    if (lstat(file, &sb) == 0) {
        printf("%s exists; left unchanged\n", file);
        return PC_EXIT_OK;
    }
    /* The KEK usually sits in state_dir, which may not exist yet on a
     * first run; make that one level (0700), as the store does. */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", file);
    char *slash = strrchr(dir, '/');
    if (slash != NULL && slash != dir) {
        *slash = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            pc_fail(PC_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
            return fail();
        }
    }
    if (!pc_ok(pc_kek_create(file))) return fail();
    printf("created %s (mode 0600); back it up: the signing keys cannot be opened without it\n",
           file);
    return PC_EXIT_OK;
}

struct subcmd {
    const char *name;
    const char *usage;
    int (*run)(struct keys_cli *cli);
};

static const struct subcmd subcmds[] = {
    {"list", list_usage, run_list},
    {"rotate", rotate_usage, run_rotate},
    {"init-kek", init_kek_usage, run_init_kek},
};

static int run(const struct subcmd *sc, int argc, char **argv)
{
    struct keys_cli cli = {.cmd = sc->name, .usage = sc->usage};
    int status = parse_args(&cli, argc, argv);
    if (status >= 0) return status;
    if (!pc_ok(pc_config_load(cli.config, &cli.cfg))) return fail();
    status = sc->run(&cli);
    pc_config_free(cli.cfg);
    return status;
}

int pc_cmd_keys(int argc, char **argv)
{
    if (argc < 2) {
        fputs(keys_usage, stderr);
        return PC_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(keys_usage, stdout);
        return PC_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof subcmds / sizeof subcmds[0]; i++)
        if (strcmp(argv[1], subcmds[i].name) == 0) return run(&subcmds[i], argc - 1, argv + 1);
    fprintf(stderr, "portcullis keys: unknown command '%s'\n\n%s", argv[1], keys_usage);
    return PC_EXIT_USAGE;
}
