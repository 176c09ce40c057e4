/* `portcullis pki`: the development PKI from the command line.
 *
 * Exit status follows the error's category: command-line mistakes and
 * values the PKI code refuses as malformed (PC_ERR_USAGE: a bad --subject,
 * --san or --key-type) exit 2; everything else that fails (a file exists,
 * no CA yet, an OpenSSL failure) exits 1. */
#include "cli/commands.h"

#include <stddef.h> /* pki.h uses size_t without including it */

#include "jose/thumbprint.h"
#include "pki/pki.h"

#include <errno.h>
#include <getopt.h>
#include <openssl/pem.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_DIR "./var/pki"
#define DEFAULT_KEY_TYPE "p256"

static const char pki_usage[] =
    "usage: portcullis pki <command> [options]\n"
    "\n"
    "Development PKI: a CA, server and client certificates and their keys.\n"
    "Not for production: keys are written unencrypted (mode 0600).\n"
    "\n"
    "commands:\n"
    "  init          create the CA (DIR/ca.pem, DIR/ca.key)\n"
    "  issue-server  issue a server certificate signed by the CA\n"
    "  issue-client  issue a client certificate (signed by the CA, or self-signed)\n"
    "  thumbprint    print a certificate's x5t#S256 thumbprint (RFC 8705)\n"
    "\n"
    "Run 'portcullis pki <command> --help' for a command's options.\n";

#define COMMON_OPTS(days)                                                                          \
    "  --dir DIR        PKI directory (default " DEFAULT_DIR ")\n"                                 \
    "  --key-type T     p256 (default), p384, rsa2048, rsa3072 or ed25519\n"                       \
    "  --days N         validity in days (default " days ")\n"                                     \
    "  --force          replace existing files\n"                                                  \
    "  --help           show this help\n"

static const char init_usage[] =
    "usage: portcullis pki init [--dir DIR] [--key-type T] [--days N] [--subject DN] [--force]\n"
    "\n"
    "Create a self-signed development CA: DIR/ca.pem and DIR/ca.key.\n"
    "\n"
    "  --subject DN     CA subject (default \"CN=portcullis development CA,O=portcullis dev\")\n"
    COMMON_OPTS("3650");

static const char server_usage[] =
    "usage: portcullis pki issue-server [--dir DIR] [--name NAME] [--subject DN] [--san SAN]...\n"
    "                                   [--key-type T] [--days N] [--force]\n"
    "\n"
    "Issue a server certificate signed by the CA in DIR: DIR/NAME.pem, DIR/NAME.key.\n"
    "\n"
    "  --name NAME      file name stem (default server)\n"
    "  --subject DN     subject, e.g. \"CN=api.example.com,O=Example\" (default CN=NAME)\n"
    "  --san SAN        DNS:name, IP:addr, URI:uri or email:addr; repeatable\n"
    "                   (default DNS:localhost, IP:127.0.0.1, IP:::1)\n" COMMON_OPTS("365");

static const char client_usage[] =
    "usage: portcullis pki issue-client [--dir DIR] --name NAME [--subject DN] [--san SAN]...\n"
    "                                   [--key-type T] [--days N] [--self-signed] [--force]\n"
    "\n"
    "Issue a client certificate for mutual TLS (RFC 8705): DIR/NAME.pem, DIR/NAME.key.\n"
    "\n"
    "  --name NAME      file name stem (required)\n"
    "  --subject DN     subject, e.g. \"CN=acme client,O=Acme Ltd,C=GB\" (default CN=NAME)\n"
    "  --san SAN        DNS:name, IP:addr, URI:uri or email:addr; repeatable\n"
    "  --self-signed    sign with the client's own key (self_signed_tls_client_auth);\n"
    "                   needs no CA\n" COMMON_OPTS("365");

static const char thumbprint_usage[] =
    "usage: portcullis pki thumbprint FILE.pem\n"
    "\n"
    "Print the x5t#S256 thumbprint of a PEM certificate: base64url(SHA-256(DER)),\n"
    "the value of an access token's cnf claim (RFC 8705 §3.1).\n";

/* The parsed command line of one subcommand. */
struct pki_cli {
    const char *cmd;   /* "init", "issue-server", ... */
    const char *usage; /* its help text */
    pc_pki_issue opts;
    const char *key_type_name;
    bool self_signed;
    const char **sans; /* owned: calloc'd with room for every argument */
};

/* The options each subcommand takes. The val of each is a letter that is
 * not in the short-option string, so only the long forms are accepted. */
#define OPT_DIR {"dir", required_argument, NULL, 'd'}
#define OPT_NAME {"name", required_argument, NULL, 'n'}
#define OPT_SUBJECT {"subject", required_argument, NULL, 's'}
#define OPT_SAN {"san", required_argument, NULL, 'a'}
#define OPT_KEY_TYPE {"key-type", required_argument, NULL, 'k'}
#define OPT_DAYS {"days", required_argument, NULL, 'D'}
#define OPT_FORCE {"force", no_argument, NULL, 'f'}
#define OPT_SELF_SIGNED {"self-signed", no_argument, NULL, 'S'}
#define OPT_HELP {"help", no_argument, NULL, 'h'}
#define OPT_END {NULL, 0, NULL, 0}

static const struct option init_opts[] = {OPT_DIR,  OPT_SUBJECT, OPT_KEY_TYPE, OPT_DAYS,
                                           OPT_FORCE, OPT_HELP,  OPT_END};
static const struct option server_opts[] = {OPT_DIR,  OPT_NAME,  OPT_SUBJECT, OPT_SAN, OPT_KEY_TYPE,
                                            OPT_DAYS, OPT_FORCE, OPT_HELP,    OPT_END};
static const struct option client_opts[] = {
    OPT_DIR,  OPT_NAME,  OPT_SUBJECT,     OPT_SAN, OPT_KEY_TYPE,
    OPT_DAYS, OPT_FORCE, OPT_SELF_SIGNED, OPT_HELP, OPT_END};
static const struct option help_opts[] = {OPT_HELP, OPT_END};

static void print_usage(const struct pki_cli *cli, FILE *out)
{
    fputs(cli->usage, out);
}

static int usage_error(const struct pki_cli *cli, const char *msg, const char *arg)
{
    fprintf(stderr, "portcullis pki %s: %s%s%s%s\n", cli->cmd, msg, arg ? " '" : "",
            arg ? arg : "", arg ? "'" : "");
    fprintf(stderr, "Try 'portcullis pki %s --help'.\n", cli->cmd);
    return PC_EXIT_USAGE;
}

static int fail(pc_result r)
{
    fprintf(stderr, "portcullis: %s\n", pc_errmsg());
    return r.err == PC_ERR_USAGE ? PC_EXIT_USAGE : PC_EXIT_FAIL;
}

/* A positive whole number. 0 would mean "the default" to the PKI code, so
 * it is refused here rather than silently replaced; the upper bound is the
 * PKI code's to enforce. */
static bool parse_days(const char *s, uint32_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || v < 1 || v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

/* getopt_long leaves no single place that names the bad option: a long
 * one is the argument just consumed, a short one is only in optopt. */
static int unknown_option(const struct pki_cli *cli, char **argv)
{
    const char *arg = argv[optind - 1];
    char short_opt[3] = {'-', (char)optopt, '\0'};
    bool is_long = strncmp(arg, "--", 2) == 0;
    return usage_error(cli, "unknown option", is_long || optopt == 0 ? arg : short_opt);
}

/* Apply one option; returns -1 to go on, or an exit status. */
static int apply_opt(struct pki_cli *cli, int c, char **argv)
{
    switch (c) {
    case 'd': cli->opts.dir = optarg; return -1;
    case 'n': cli->opts.name = optarg; return -1;
    case 's': cli->opts.subject = optarg; return -1;
    case 'a': cli->sans[cli->opts.n_sans++] = optarg; return -1;
    case 'k': cli->key_type_name = optarg; return -1;
    case 'f': cli->opts.overwrite = true; return -1;
    case 'S': cli->self_signed = true; return -1;
    case 'D':
        if (!parse_days(optarg, &cli->opts.days))
            return usage_error(cli, "--days takes a positive whole number, not", optarg);
        return -1;
    case 'h': print_usage(cli, stdout); return PC_EXIT_OK;
    case ':': return usage_error(cli, "missing value for option", argv[optind - 1]);
    default: return unknown_option(cli, argv);
    }
}

/* Parse argv (argv[0] is the subcommand). Returns -1 when the command
 * should run, or the exit status to return at once (--help, a mistake).
 * Positional arguments are left at argv[optind..]. */
static int parse_args(struct pki_cli *cli, const struct option *opts, int argc, char **argv)
{
    optind = 0; /* glibc: start afresh, even if getopt ran before */
    opterr = 0; /* our own messages name the subcommand */
    int c;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        int status = apply_opt(cli, c, argv);
        if (status >= 0) return status;
    }
    pc_result r = pc_key_type_parse(cli->key_type_name, &cli->opts.key_type);
    if (!pc_ok(r)) return usage_error(cli, pc_errmsg(), NULL);
    return -1;
}

/* One "wrote" line for the certificate: its subject in RFC 4514 form and
 * its thumbprint, so that a client's x5t#S256 can be pasted into config. */
static pc_result describe_cert(const char *path, char *subject, size_t cap,
                               char tp[PC_X5T_S256_BUF])
{
    FILE *f = fopen(path, "re");
    PC_ENSURE(f != NULL, PC_ERR_IO, "cannot read %s: %s", path, strerror(errno));
    X509 *cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (cert == NULL) return pc_fail_ossl(path);
    BIO *mem = BIO_new(BIO_s_mem());
    pc_result r = PC_OK;
    if (mem == NULL || X509_NAME_print_ex(mem, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) < 0)
        r = pc_fail_ossl("printing the subject");
    if (pc_ok(r)) {
        int n = BIO_read(mem, subject, (int)cap - 1);
        subject[n > 0 ? n : 0] = '\0';
        r = pc_x5t_s256(cert, tp);
    }
    BIO_free(mem);
    X509_free(cert);
    return r;
}

static int report(const struct pki_cli *cli, const char *name)
{
    char cert_path[4096], key_path[4096], subject[1024], tp[PC_X5T_S256_BUF];
    snprintf(cert_path, sizeof cert_path, "%s/%s.pem", cli->opts.dir, name);
    snprintf(key_path, sizeof key_path, "%s/%s.key", cli->opts.dir, name);
    pc_result r = describe_cert(cert_path, subject, sizeof subject, tp);
    if (!pc_ok(r)) return fail(r);
    printf("wrote %s (subject %s, x5t#S256 %s)\n", cert_path, subject, tp);
    printf("wrote %s (%s private key, mode 0600)\n", key_path, cli->key_type_name);
    return PC_EXIT_OK;
}

static int run_issue(struct pki_cli *cli, const struct option *opts, int argc, char **argv)
{
    int status = parse_args(cli, opts, argc, argv);
    if (status >= 0) return status;
    if (optind < argc) return usage_error(cli, "unexpected argument", argv[optind]);

    pc_result r;
    const char *name = cli->opts.name;
    if (strcmp(cli->cmd, "init") == 0) {
        name = "ca";
        r = pc_pki_init(&cli->opts);
    } else if (strcmp(cli->cmd, "issue-server") == 0) {
        r = pc_pki_issue_server(&cli->opts);
    } else {
        if (name == NULL) return usage_error(cli, "--name is required", NULL);
        r = cli->self_signed ? pc_pki_issue_self_signed(&cli->opts)
                             : pc_pki_issue_client(&cli->opts);
    }
    if (!pc_ok(r)) return fail(r);
    return report(cli, name);
}

static int run_thumbprint(struct pki_cli *cli, int argc, char **argv)
{
    int status = parse_args(cli, help_opts, argc, argv);
    if (status >= 0) return status;
    if (optind >= argc) return usage_error(cli, "a certificate file is required", NULL);
    if (optind + 1 < argc) return usage_error(cli, "unexpected argument", argv[optind + 1]);

    const char *path = argv[optind];
    FILE *f = fopen(path, "re");
    if (f == NULL) return fail(pc_fail(PC_ERR_IO, "cannot read %s: %s", path, strerror(errno)));
    X509 *cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (cert == NULL) {
        char what[4200];
        snprintf(what, sizeof what, "cannot load %s as a PEM certificate", path);
        return fail(pc_fail_ossl(what));
    }
    char tp[PC_X5T_S256_BUF];
    pc_result r = pc_x5t_s256(cert, tp);
    X509_free(cert);
    if (!pc_ok(r)) return fail(r);
    printf("%s\n", tp);
    return PC_EXIT_OK;
}

struct subcmd {
    const char *name;
    const char *usage;
    const struct option *opts; /* NULL: the thumbprint command */
};

static const struct subcmd subcmds[] = {
    {"init", init_usage, init_opts},
    {"issue-server", server_usage, server_opts},
    {"issue-client", client_usage, client_opts},
    {"thumbprint", thumbprint_usage, NULL},
};

static const struct subcmd *find_subcmd(const char *name)
{
    for (size_t i = 0; i < sizeof subcmds / sizeof subcmds[0]; i++)
        if (strcmp(subcmds[i].name, name) == 0) return &subcmds[i];
    return NULL;
}

static int run(const struct subcmd *sc, const char **sans, int argc, char **argv)
{
    struct pki_cli cli = {
        .cmd = sc->name,
        .usage = sc->usage,
        .opts = {.dir = DEFAULT_DIR, .sans = sans},
        .key_type_name = DEFAULT_KEY_TYPE,
        .sans = sans,
    };
    if (strcmp(sc->name, "issue-server") == 0) cli.opts.name = "server";
    if (sc->opts == NULL) return run_thumbprint(&cli, argc, argv);
    return run_issue(&cli, sc->opts, argc, argv);
}

int pc_cmd_pki(int argc, char **argv)
{
    if (argc < 2) {
        fputs(pki_usage, stderr);
        return PC_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(pki_usage, stdout);
        return PC_EXIT_OK;
    }
    const struct subcmd *sc = find_subcmd(argv[1]);
    if (sc == NULL) {
        fprintf(stderr, "portcullis pki: unknown command '%s'\n\n%s", argv[1], pki_usage);
        return PC_EXIT_USAGE;
    }
    /* Every option value is one argument, so argc bounds the --san count. */
    const char **sans = calloc((size_t)argc, sizeof *sans);
    if (sans == NULL) {
        fputs("portcullis: out of memory\n", stderr);
        return PC_EXIT_FAIL;
    }
    int status = run(sc, sans, argc - 1, argv + 1);
    free(sans);
    return status;
}
