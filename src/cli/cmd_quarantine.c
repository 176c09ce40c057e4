/* portcullis quarantine list|release|add: a client of the admin API
 * (/admin/quarantines, src/abuse/admin.c) over mTLS with an admin
 * certificate (admin.clients). The defaults match `make run`'s layout
 * (./var/pki) so the command works there without options. */
#include "cli/commands.h"

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <getopt.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The admin API answers in milliseconds; this is for a dead server. */
#define QUARANTINE_TIMEOUT_S 10
#define QUARANTINE_MAX_ANSWER (4u * 1024u * 1024u)

static const char usage[] =
    "usage: portcullis quarantine list [options]\n"
    "       portcullis quarantine release CLIENT_ID [options]\n"
    "       portcullis quarantine add CLIENT_ID [options]\n"
    "\n"
    "Lists, lifts or imposes quarantines (docs/abuse-resistance.md) through the\n"
    "admin API of a running server, authenticating with an admin certificate\n"
    "(one whose thumbprint is in admin.clients).\n"
    "\n"
    "options:\n"
    "  --url URL     the server (default https://localhost:8443)\n"
    "  --cert FILE   admin client certificate (default var/pki/admin.pem)\n"
    "  --key FILE    its key (default var/pki/admin.key)\n"
    "  --ca FILE     CA to verify the server (default var/pki/ca.pem)\n"
    "  --json        print the server's JSON answer as is\n";

typedef struct call {
    struct event_base *base;
    int status;
    char *body;
    size_t len;
} call;

static void on_done(struct evhttp_request *req, void *arg)
{
    call *c = arg;
    c->status = req ? evhttp_request_get_response_code(req) : 0;
    if (req) {
        struct evbuffer *b = evhttp_request_get_input_buffer(req);
        c->len = evbuffer_get_length(b);
        c->body = malloc(c->len + 1);
        if (c->body) {
            evbuffer_remove(b, c->body, c->len);
            c->body[c->len] = '\0';
        }
    }
    event_base_loopexit(c->base, NULL);
}

/* https://host[:port] -> host, port. */
static bool split_url(const char *url, char *host, size_t cap, int *port)
{
    if (strncmp(url, "https://", 8) != 0) return false;
    const char *h = url + 8;
    const char *end = h + strcspn(h, "/");
    const char *colon = memchr(h, ':', (size_t)(end - h));
    size_t hl = (size_t)((colon ? colon : end) - h);
    if (hl == 0 || hl >= cap) return false;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = colon ? atoi(colon + 1) : 443;
    return *port > 0 && *port < 65536;
}

static int request(const char *url, const char *cert, const char *key, const char *ca,
                   enum evhttp_cmd_type method, const char *path, call *c)
{
    char host[256];
    int port = 0;
    if (!split_url(url, host, sizeof host, &port)) {
        fprintf(stderr, "portcullis quarantine: --url: expected https://host[:port], got %s\n", url);
        return PC_EXIT_USAGE;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL || SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1 ||
        SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        fprintf(stderr, "portcullis quarantine: cannot load %s, %s or %s: %s\n", ca, cert, key,
                ERR_reason_error_string(ERR_get_error()));
        SSL_CTX_free(ctx);
        return PC_EXIT_FAIL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    int rc = PC_EXIT_FAIL;
    c->base = event_base_new();
    SSL *ssl = c->base ? SSL_new(ctx) : NULL;
    struct evhttp_connection *evcon = NULL;
    if (ssl && SSL_set1_host(ssl, host) == 1 && SSL_set_tlsext_host_name(ssl, host) == 1) {
        struct bufferevent *bev = bufferevent_openssl_socket_new(
            c->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
        if (bev) {
            ssl = NULL; /* owned by bev */
            evcon = evhttp_connection_base_bufferevent_new(c->base, NULL, bev, host, (ev_uint16_t)port);
            if (evcon == NULL) bufferevent_free(bev);
        }
    }
    struct evhttp_request *req = evcon ? evhttp_request_new(on_done, c) : NULL;
    if (req) {
        evhttp_connection_set_timeout(evcon, QUARANTINE_TIMEOUT_S);
        evhttp_connection_set_max_body_size(evcon, QUARANTINE_MAX_ANSWER);
        char hosthdr[300];
        snprintf(hosthdr, sizeof hosthdr, "%s:%d", host, port);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Host", hosthdr);
        if (evhttp_make_request(evcon, req, method, path) == 0) {
            event_base_dispatch(c->base);
            rc = PC_EXIT_OK;
        }
    }
    if (evcon) evhttp_connection_free(evcon);
    if (ssl) SSL_free(ssl);
    if (c->base) event_base_free(c->base);
    SSL_CTX_free(ctx);
    if (rc == PC_EXIT_OK && c->status == 0) {
        fprintf(stderr, "portcullis quarantine: no answer from %s\n", url);
        rc = PC_EXIT_FAIL;
    }
    return rc;
}

static void fmt_time(json_int_t t, char *buf, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int print_list(const call *c)
{
    json_error_t err;
    json_t *doc = json_loadb(c->body, c->len, 0, &err);
    json_t *arr = json_object_get(doc, "quarantines");
    if (!json_is_array(arr)) {
        fprintf(stderr, "portcullis quarantine: unexpected answer: %.200s\n", c->body);
        json_decref(doc);
        return PC_EXIT_FAIL;
    }
    if (json_array_size(arr) == 0) printf("no client is quarantined or throttled\n");
    else printf("%-32s %-12s %-21s %-21s %s\n", "CLIENT_ID", "REASON", "SINCE", "UNTIL",
                "THROTTLED UNTIL");
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) {
        char since[32] = "-", until[32] = "-", thr[32] = "-";
        if (json_is_integer(json_object_get(e, "since")))
            fmt_time(json_integer_value(json_object_get(e, "since")), since, sizeof since);
        if (json_is_integer(json_object_get(e, "until")))
            fmt_time(json_integer_value(json_object_get(e, "until")), until, sizeof until);
        if (json_is_integer(json_object_get(e, "throttled_until")))
            fmt_time(json_integer_value(json_object_get(e, "throttled_until")), thr, sizeof thr);
        printf("%-32s %-12s %-21s %-21s %s\n", json_string_value(json_object_get(e, "client_id")),
               json_string_value(json_object_get(e, "reason")), since, until, thr);
    }
    json_decref(doc);
    return PC_EXIT_OK;
}

/* Percent-encode a client_id for the path (RFC 3986 unreserved kept). */
static bool encode(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        bool plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                     (*p >= '0' && *p <= '9') || strchr("-._~", *p) != NULL;
        if (o + 4 >= cap) return false;
        if (plain) out[o++] = (char)*p;
        else o += (size_t)snprintf(out + o, cap - o, "%%%02X", *p);
    }
    out[o] = '\0';
    return o > 0;
}

int pc_cmd_quarantine(int argc, char **argv)
{
    const char *url = "https://localhost:8443", *cert = "var/pki/admin.pem",
               *key = "var/pki/admin.key", *ca = "var/pki/ca.pem";
    bool raw = false;
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'}, {"cert", required_argument, NULL, 'c'},
        {"key", required_argument, NULL, 'k'}, {"ca", required_argument, NULL, 'a'},
        {"json", no_argument, NULL, 'j'},      {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'u': url = optarg; break;
        case 'c': cert = optarg; break;
        case 'k': key = optarg; break;
        case 'a': ca = optarg; break;
        case 'j': raw = true; break;
        case 'h': fputs(usage, stdout); return PC_EXIT_OK;
        default: fputs(usage, stderr); return PC_EXIT_USAGE;
        }
    }
    int rest = argc - optind;
    const char *verb = rest > 0 ? argv[optind] : NULL;
    bool list = verb && strcmp(verb, "list") == 0 && rest == 1;
    bool release = verb && strcmp(verb, "release") == 0 && rest == 2;
    bool add = verb && strcmp(verb, "add") == 0 && rest == 2;
    if (!list && !release && !add) {
        fputs(usage, stderr);
        return PC_EXIT_USAGE;
    }
    char path[512] = "/admin/quarantines";
    if (!list) {
        char enc[400];
        if (!encode(argv[optind + 1], enc, sizeof enc)) {
            fprintf(stderr, "portcullis quarantine: client_id is empty or too long\n");
            return PC_EXIT_USAGE;
        }
        snprintf(path, sizeof path, "/admin/quarantines/%s", enc);
    }
    call c = {0};
    int rc = request(url, cert, key, ca,
                     list ? EVHTTP_REQ_GET : release ? EVHTTP_REQ_DELETE : EVHTTP_REQ_POST, path,
                     &c);
    if (rc != PC_EXIT_OK) return rc;
    if (raw || c.status != 200) {
        if (c.status != 200)
            fprintf(stderr, "portcullis quarantine: %d from the server\n", c.status);
        fwrite(c.body ? c.body : "", 1, c.len, c.status == 200 ? stdout : stderr);
        fputc('\n', c.status == 200 ? stdout : stderr);
        free(c.body);
        return c.status == 200 ? PC_EXIT_OK : PC_EXIT_FAIL;
    }
    if (list) rc = print_list(&c);
    else printf("%s %s\n", argv[optind + 1], release ? "released" : "quarantined");
    free(c.body);
    return rc;
}
