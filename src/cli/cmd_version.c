/* `portcullis version`: our version and the versions of the libraries we
 * run against, for bug reports. Runtime versions are printed where the
 * library offers them, since the shared library may be newer than the
 * headers we were built with. */
#include "cli/commands.h"

#include <event2/event.h>
#include <http_parser.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>

#define PORTCULLIS_VERSION "0.1.0"

static void usage(FILE *out)
{
    fputs("usage: portcullis version\n\n"
          "Print the portcullis version and the versions of the libraries it uses.\n",
          out);
}

int pc_cmd_version(int argc, char **argv)
{
    if (argc > 1) {
        if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
            usage(stdout);
            return PC_EXIT_OK;
        }
        fprintf(stderr, "portcullis version: unexpected argument '%s'\n", argv[1]);
        usage(stderr);
        return PC_EXIT_USAGE;
    }
    /* http_parser_version() packs major, minor and patch into one word
     * (http_parser.h). */
    unsigned long hp = http_parser_version();
    printf("portcullis " PORTCULLIS_VERSION "\n");
    printf("%s\n", OpenSSL_version(OPENSSL_VERSION));
    printf("libevent %s\n", event_get_version());
    printf("http-parser %lu.%lu.%lu\n", (hp >> 16) & 255, (hp >> 8) & 255, hp & 255);
    printf("jansson %s\n", JANSSON_VERSION);
    printf("libyaml %s\n", yaml_get_version_string());
    printf("sqlite %s\n", sqlite3_libversion());
    return fflush(stdout) == 0 ? PC_EXIT_OK : PC_EXIT_FAIL;
}
