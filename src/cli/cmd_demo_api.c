/* portcullis demo-api: a small plain-HTTP API to put behind the gateway
 * (docs/gateway.md). It serves fake customer records by service tag and
 * fake accounts, and echoes the identity headers the gateway set, so a
 * curl through the gateway shows the whole path: client certificate ->
 * token -> gateway -> records.
 *
 * Service tags are 7 characters of [0-9A-Z]. Record i's tag is
 * base36((i * MULT + OFFSET) mod 36^7): a bijection, so the N tags are
 * distinct, spread over the space (guessing one is a 1 in 780000 shot at
 * N = 100000) and a tag is checked by inverting the map, with no table.
 *
 * Vehicles (the tracking route) are V + 6 decimal digits, V000000 up to
 * V(N-1) for --vehicles N; each one drives round its own circle, so its
 * position changes with the time of the request. */
#include "cli/commands.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define DEMO_TAG_LEN 7
#define DEMO_SPACE 78364164096ULL /* 36^7 */
#define DEMO_MULT 2862933557ULL   /* odd and not a multiple of 3: coprime to 36^7 */
#define DEMO_OFFSET 1234567891ULL
#define DEMO_DEFAULT_RECORDS 100000u
#define DEMO_MAX_RECORDS 10000000u
#define DEMO_DEFAULT_VEHICLES 1000u
#define DEMO_MAX_VEHICLES 1000000u /* V + 6 digits */
#define DEMO_MAX_ID 64
/* Request bodies the demo reads (for /echo). */
#define DEMO_MAX_BODY (1024 * 1024)

static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

typedef struct demo {
    struct event_base *base;
    uint64_t records;
    uint64_t vehicles;
    uint64_t inverse; /* DEMO_MULT^-1 mod DEMO_SPACE */
} demo;

static uint64_t mulmod(uint64_t a, uint64_t b, uint64_t m)
{
    return (uint64_t)(((unsigned __int128)a * b) % m);
}

/* Extended Euclid: the inverse of a modulo m (a and m coprime). */
static uint64_t inverse_mod(uint64_t a, uint64_t m)
{
    __int128 t = 0, nt = 1, r = (__int128)m, nr = (__int128)a;
    while (nr != 0) {
        __int128 q = r / nr, tmp = t - q * nt;
        t = nt;
        nt = tmp;
        tmp = r - q * nr;
        r = nr;
        nr = tmp;
    }
    if (t < 0) t += (__int128)m;
    return (uint64_t)t;
}

static void tag_of(uint64_t i, char out[DEMO_TAG_LEN + 1])
{
    uint64_t x = (mulmod(i, DEMO_MULT, DEMO_SPACE) + DEMO_OFFSET) % DEMO_SPACE;
    for (int k = DEMO_TAG_LEN - 1; k >= 0; k--) {
        out[k] = alphabet[x % 36];
        x /= 36;
    }
    out[DEMO_TAG_LEN] = '\0';
}

/* The record index of a tag, or -1 if it is not one of ours. */
static int64_t index_of(const demo *d, const char *tag)
{
    if (strlen(tag) != DEMO_TAG_LEN) return -1;
    uint64_t x = 0;
    for (int k = 0; k < DEMO_TAG_LEN; k++) {
        const char *p = tag[k] ? strchr(alphabet, tag[k]) : NULL;
        if (p == NULL) return -1;
        x = x * 36 + (uint64_t)(p - alphabet);
    }
    uint64_t i = mulmod((x + DEMO_SPACE - DEMO_OFFSET) % DEMO_SPACE, d->inverse, DEMO_SPACE);
    return i < d->records ? (int64_t)i : -1;
}

/* ---- responses -------------------------------------------------------------- */

static void send_json(struct evhttp_request *req, int code, json_t *body)
{
    char *s = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(10));
    json_decref(body);
    struct evbuffer *out = evbuffer_new();
    if (s) evbuffer_add(out, s, strlen(s));
    free(s);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, code, code == 200 ? "OK" : code == 404 ? "Not Found" : "Error", out);
    evbuffer_free(out);
}

static bool echoed_header(const char *name)
{
    static const char *const prefixes[] = {"x-portcullis-", "x-forwarded-", "client-cert",
                                           "x-client-cert"};
    static const char *const exact[] = {"forwarded", "x-fapi-interaction-id", "x-request-id",
                                        "authorization", "dpop"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (strncasecmp(name, prefixes[i], strlen(prefixes[i])) == 0) return true;
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        if (strcasecmp(name, exact[i]) == 0) return true;
    return false;
}

/* What the gateway told us: the identity and forwarding headers (as a list
 * per name, so a spoofed duplicate shows up). Authorization and DPoP are
 * reported only as present, never echoed. */
static json_t *seen_by_upstream(struct evhttp_request *req)
{
    json_t *o = json_object();
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    for (struct evkeyval *kv = h->tqh_first; kv; kv = kv->next.tqe_next) {
        if (!echoed_header(kv->key)) continue;
        char lower[128];
        size_t n = strlen(kv->key);
        if (n >= sizeof lower) continue;
        for (size_t i = 0; i <= n; i++)
            lower[i] = (char)((kv->key[i] >= 'A' && kv->key[i] <= 'Z') ? kv->key[i] + 32 : kv->key[i]);
        bool secret = strcmp(lower, "authorization") == 0 || strcmp(lower, "dpop") == 0;
        json_t *list = json_object_get(o, lower);
        if (list == NULL) {
            list = json_array();
            json_object_set_new(o, lower, list);
        }
        json_array_append_new(list, json_string(secret ? "(present)" : kv->value));
    }
    return o;
}

static json_t *customer(int64_t i, const char *tag)
{
    static const char *const first[] = {"Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald",
                                        "Frances", "Ken", "Radia", "Tim", "Hedy", "Niklaus"};
    static const char *const last[] = {"Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov",
                                       "Knuth", "Allen", "Thompson", "Perlman", "Berners-Lee"};
    static const char *const streets[] = {"Mill Lane", "Station Road", "Church Street",
                                          "High Street", "Park Avenue", "Harbour Way"};
    static const char *const towns[] = {"Leeds", "Bristol", "Dundee", "Cardiff", "York", "Bath"};
    static const char *const products[] = {"current account", "savings account", "mortgage",
                                           "credit card", "business account", "ISA"};
    uint64_t h = (uint64_t)i * 0x9E3779B97F4A7C15ULL;
    const char *f = first[(h >> 7) % 12], *l = last[(h >> 17) % 10];
    char name[64], email[96], addr[128];
    snprintf(name, sizeof name, "%s %s", f, l);
    snprintf(email, sizeof email, "%c.%s%u@example.com", f[0] | 0x20, l, (unsigned)(i % 1000));
    for (char *p = email; *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p + 32);
    snprintf(addr, sizeof addr, "%u %s, %s", (unsigned)((h >> 27) % 200 + 1),
             streets[(h >> 37) % 6], towns[(h >> 47) % 6]);
    return json_pack("{s:s, s:s, s:s, s:s, s:s}", "service_tag", tag, "name", name, "email",
                     email, "address", addr, "product", products[(h >> 53) % 6]);
}

static bool id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > DEMO_MAX_ID) return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '-' || s[i] == '_'))
            return false;
    return true;
}

static json_t *account(const char *id)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = id; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    char balance[32];
    snprintf(balance, sizeof balance, "%u.%02u", (unsigned)(h % 100000), (unsigned)(h >> 40) % 100);
    return json_pack("{s:s, s:s, s:s, s:s}", "account_id", id, "balance", balance, "currency",
                     "GBP", "status", (h >> 20) % 10 == 0 ? "closed" : "open");
}

/* The vehicle number of "V" + 6 digits below d->vehicles, or -1. */
static int64_t vehicle_of(const demo *d, const char *id)
{
    if (id[0] != 'V') return -1;
    int64_t v = 0;
    for (int k = 1; k <= 6; k++) {
        if (id[k] < '0' || id[k] > '9') return -1;
        v = v * 10 + (id[k] - '0');
    }
    return id[7] == '\0' && (uint64_t)v < d->vehicles ? v : -1;
}

/* Where vehicle v is now: it drives round a circle of its own (1 to 9 km
 * across, somewhere within ~50 km of 53.8N 1.55W) at 20 to 80 km/h. */
static json_t *position(int64_t v, const char *id)
{
    uint64_t h = (uint64_t)(v + 1) * 0x9E3779B97F4A7C15ULL;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    double radius_km = 0.5 + (double)((h >> 8) % 4000) / 1000.0;
    double speed_kmh = 20.0 + (double)((h >> 24) % 60);
    double lat0 = 53.8 + ((double)((h >> 32) % 1000) - 500.0) / 1100.0;
    double lon0 = -1.55 + ((double)((h >> 44) % 1000) - 500.0) / 650.0;
    double angle = fmod(now * speed_kmh / 3600.0 / radius_km + (double)(h % 628) / 100.0,
                        2.0 * M_PI);
    double lat = lat0 + radius_km * sin(angle) / 111.0;
    double lon = lon0 + radius_km * cos(angle) / (111.0 * cos(lat0 * M_PI / 180.0));
    double heading = fmod(450.0 - angle * 180.0 / M_PI, 360.0); /* tangent, clockwise from north */
    char when[32];
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_pack("{s:s, s:f, s:f, s:f, s:f, s:s}", "vehicle_id", id, "lat",
                     round(lat * 1e6) / 1e6, "lon", round(lon * 1e6) / 1e6, "speed_kmh",
                     speed_kmh, "heading", round(heading * 10.0) / 10.0, "at", when);
}

/* Every header as received (names lower-cased, a list per name), with
 * credentials reported only as present. */
static json_t *all_headers(struct evhttp_request *req)
{
    json_t *o = json_object();
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    for (struct evkeyval *kv = h->tqh_first; kv; kv = kv->next.tqe_next) {
        char lower[128];
        size_t n = strlen(kv->key);
        if (n >= sizeof lower) continue;
        for (size_t i = 0; i <= n; i++)
            lower[i] = (char)((kv->key[i] >= 'A' && kv->key[i] <= 'Z') ? kv->key[i] + 32 : kv->key[i]);
        bool secret = strcmp(lower, "authorization") == 0 || strcmp(lower, "dpop") == 0;
        json_t *list = json_object_get(o, lower);
        if (list == NULL) {
            list = json_array();
            json_object_set_new(o, lower, list);
        }
        json_array_append_new(list, json_string(secret ? "(present)" : kv->value));
    }
    return o;
}

static json_t *echo(struct evhttp_request *req, const char *path)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    json_t *o = json_pack("{s:i, s:s, s:o}", "body_bytes", (json_int_t)n, "path", path,
                          "headers", all_headers(req));
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    if (q) json_object_set_new(o, "query", json_string(q));
    if (n <= DEMO_MAX_BODY) {
        const char *b = (const char *)evbuffer_pullup(in, -1);
        json_object_set_new(o, "body", json_stringn(b ? b : "", n));
    }
    static const char *const methods[] = {"GET", "POST", "HEAD", "PUT", "DELETE",
                                          "OPTIONS", "TRACE", "CONNECT", "PATCH"};
    int cmd = (int)evhttp_request_get_command(req);
    for (int i = 0; i < 9; i++)
        if (cmd == 1 << i) json_object_set_new(o, "method", json_string(methods[i]));
    return o;
}

static void handle(struct evhttp_request *req, void *arg)
{
    demo *d = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (path == NULL) path = "/";
    json_t *body = NULL;
    int code = 200;
    bool get = evhttp_request_get_command(req) == EVHTTP_REQ_GET;
    if (strcmp(path, "/healthz") == 0) {
        body = json_pack("{s:s}", "status", "ok");
    } else if (get && strncmp(path, "/customers/", 11) == 0) {
        int64_t i = index_of(d, path + 11);
        body = i >= 0 ? customer(i, path + 11) : json_pack("{s:s}", "error", "no such customer");
        code = i >= 0 ? 200 : 404;
    } else if (get && strncmp(path, "/vehicles/", 10) == 0) {
        /* /vehicles/{id}/position */
        char id[9];
        const char *rest = path + 10, *slash = strchr(rest, '/');
        int64_t v = -1;
        if (slash && (size_t)(slash - rest) < sizeof id && strcmp(slash, "/position") == 0) {
            memcpy(id, rest, (size_t)(slash - rest));
            id[slash - rest] = '\0';
            v = vehicle_of(d, id);
        }
        body = v >= 0 ? position(v, id) : json_pack("{s:s}", "error", "no such vehicle");
        code = v >= 0 ? 200 : 404;
    } else if (get && strncmp(path, "/accounts/", 10) == 0 && id_ok(path + 10)) {
        body = account(path + 10);
    } else if (strcmp(path, "/echo") == 0 || strncmp(path, "/echo/", 6) == 0) {
        body = echo(req, path);
    } else {
        body = json_pack("{s:s}", "error", "not found");
        code = 404;
    }
    if (body == NULL) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    json_object_set_new(body, "seen_by_upstream", seen_by_upstream(req));
    send_json(req, code, body);
}

/* ---- command ---------------------------------------------------------------- */

static const char usage[] =
    "usage: portcullis demo-api [--listen HOST:PORT] [--records N] [--vehicles N]\n"
    "\n"
    "A plain-HTTP demo API to put behind the gateway (docs/gateway.md):\n"
    "  GET /customers/{service_tag}  a fake customer (7-character tags; --first-tags lists some)\n"
    "  GET /vehicles/{id}/position   where a fake vehicle is now (ids V000000 to V + 6 digits\n"
    "                                below --vehicles; the position moves with time)\n"
    "  GET /accounts/{id}            a fake account\n"
    "  *   /echo[/...]               method, path and body as received\n"
    "  GET /healthz\n"
    "Every answer has seen_by_upstream: the identity and forwarding headers received.\n"
    "\n"
    "options:\n"
    "  --listen HOST:PORT  where to listen (default 127.0.0.1:9000; an IP address)\n"
    "  --records N         how many customers exist (default 100000)\n"
    "  --vehicles N        how many vehicles exist (default 1000, at most 1000000)\n"
    "  --first-tags K      print the first K service tags and exit\n"
    "  -h, --help          this help\n";

static void on_signal(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopexit(arg, NULL);
}

static int split_hostport(const char *s, char *host, size_t cap, uint16_t *port)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || (size_t)(colon - s) >= cap || colon == s) return -1;
    size_t hl = (size_t)(colon - s);
    const char *h = s;
    if (s[0] == '[' && colon[-1] == ']') h++, hl -= 2;
    memcpy(host, h, hl);
    host[hl] = '\0';
    char *end = NULL;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (*end != '\0' || p == 0 || p > 65535) return -1;
    *port = (uint16_t)p;
    unsigned char a[16];
    return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1 ? 0 : -1;
}

static int serve(demo *d, const char *host, uint16_t port)
{
    int rc = PC_EXIT_FAIL;
    d->base = event_base_new();
    struct evhttp *http = d->base ? evhttp_new(d->base) : NULL;
    struct event *sigterm = d->base ? evsignal_new(d->base, SIGTERM, on_signal, d->base) : NULL;
    struct event *sigint = d->base ? evsignal_new(d->base, SIGINT, on_signal, d->base) : NULL;
    if (http && sigterm && sigint) {
        evhttp_set_gencb(http, handle, d);
        evhttp_set_max_body_size(http, DEMO_MAX_BODY);
        evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                             EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                             EVHTTP_REQ_PATCH | EVHTTP_REQ_OPTIONS);
        event_add(sigterm, NULL);
        event_add(sigint, NULL);
        if (evhttp_bind_socket(http, host, port) == 0) {
            printf("demo-api listening on %s:%u with %llu customers\n", host, (unsigned)port,
                   (unsigned long long)d->records);
            fflush(stdout);
            event_base_dispatch(d->base);
            rc = PC_EXIT_OK;
        } else {
            fprintf(stderr, "portcullis demo-api: cannot listen on %s:%u\n", host, (unsigned)port);
        }
    }
    if (sigterm) event_free(sigterm);
    if (sigint) event_free(sigint);
    if (http) evhttp_free(http);
    if (d->base) event_base_free(d->base);
    return rc;
}

int pc_cmd_demo_api(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"records", required_argument, NULL, 'n'},
        {"first-tags", required_argument, NULL, 't'},
        {"vehicles", required_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *listen = "127.0.0.1:9000";
    demo d = {.records = DEMO_DEFAULT_RECORDS,
              .vehicles = DEMO_DEFAULT_VEHICLES,
              .inverse = inverse_mod(DEMO_MULT, DEMO_SPACE)};
    unsigned long first = 0;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (ch) {
        case 'l': listen = optarg; break;
        case 'n':
            d.records = strtoull(optarg, &end, 10);
            if (*end != '\0' || d.records == 0 || d.records > DEMO_MAX_RECORDS) {
                fprintf(stderr, "portcullis demo-api: --records must be 1 to %u\n",
                        DEMO_MAX_RECORDS);
                return PC_EXIT_USAGE;
            }
            break;
        case 'v':
            d.vehicles = strtoull(optarg, &end, 10);
            if (*end != '\0' || d.vehicles == 0 || d.vehicles > DEMO_MAX_VEHICLES) {
                fprintf(stderr, "portcullis demo-api: --vehicles must be 1 to %u\n",
                        DEMO_MAX_VEHICLES);
                return PC_EXIT_USAGE;
            }
            break;
        case 't':
            first = strtoul(optarg, &end, 10);
            if (*end != '\0') first = 0;
            break;
        case 'h': fputs(usage, stdout); return PC_EXIT_OK;
        default: fputs(usage, stderr); return PC_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fputs(usage, stderr);
        return PC_EXIT_USAGE;
    }
    if (first > 0) {
        for (unsigned long i = 0; i < first && i < d.records; i++) {
            char tag[DEMO_TAG_LEN + 1];
            tag_of(i, tag);
            puts(tag);
        }
        return PC_EXIT_OK;
    }
    char host[64];
    uint16_t port = 0;
    if (split_hostport(listen, host, sizeof host, &port) != 0) {
        fprintf(stderr, "portcullis demo-api: --listen expects IP:PORT, got %s\n", listen);
        return PC_EXIT_USAGE;
    }
    return serve(&d, host, port);
}
