/* portcullis: financial-grade API security. Entry point: dispatch to a
 * subcommand (src/cli/cmd_*.c). */
#include "cli/commands.h"

#include <stdio.h>
#include <string.h>

struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct subcommand subcommands[] = {
    {"serve", pc_cmd_serve, "run the server: serve -c FILE"},
    {"check", pc_cmd_check, "validate a config file and exit: check -c FILE"},
    {"pki", pc_cmd_pki, "development PKI: pki init|issue-server|issue-client"},
    {"client", pc_cmd_client, "OAuth clients: client add|list|show|remove"},
    {"keys", pc_cmd_keys, "signing keys: keys list|rotate|init-kek"},
    {"quarantine", pc_cmd_quarantine, "abuse quarantines: quarantine list|release|add CLIENT"},
    {"demo-api", pc_cmd_demo_api, "a demo upstream API for the gateway: demo-api --listen IP:PORT"},
    {"version", pc_cmd_version, "print the version and library versions"},
};

static void usage(FILE *out)
{
    fputs("usage: portcullis <command> [options]\n\ncommands:\n", out);
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        fprintf(out, "  %-10s %s\n", subcommands[i].name, subcommands[i].summary);
    fputs("\nRun 'portcullis <command> --help' for a command's options.\n", out);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return PC_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return PC_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) return pc_cmd_version(1, argv + 1);
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        if (strcmp(argv[1], subcommands[i].name) == 0)
            return subcommands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "portcullis: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return PC_EXIT_USAGE;
}
