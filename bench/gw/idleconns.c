/* bench/gw/idleconns.c: open N keep-alive TLS connections and leave them idle.
 *
 * For the memory figure of bench/gw/run.sh: the server's RSS at N idle
 * keep-alive TLS connections. Each connection does a full TLS handshake
 * (optionally presenting a client certificate), sends one request, reads
 * the whole response, and is then left open and idle. The client then frees
 * its OpenSSL state for the connection (SSL_free sends nothing: no
 * close_notify) and keeps only the socket, so 10,000 connections cost this
 * process almost nothing; the server still holds a live TLS connection.
 *
 * When every connection has been tried it writes one line to --ready-file
 * ("ok N failed M non2xx K") and then waits, with all sockets open, until it
 * gets SIGTERM/SIGINT or --hold seconds pass; then it closes them and exits.
 *
 *   idleconns --connect 127.0.0.1:PORT --host localhost:PORT --path /api/ok
 *             [--header 'Authorization: Bearer ...'] [--cert F --key F]
 *             --count 10000 --threads 4 --ready-file F [--hold 120]
 *
 * Build: cc -O2 -pthread idleconns.c -o idleconns -lssl -lcrypto
 * The caller raises `ulimit -n` above N.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in addr;
static SSL_CTX *ctx;
static char *request;
static size_t request_len;
static int count = 10000, nthreads = 4;
static atomic_int next_conn, n_ok, n_failed, n_non2xx;
static int *fds;
static char first_error[256];
static pthread_mutex_t err_mu = PTHREAD_MUTEX_INITIALIZER;
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void note_error(const char *what)
{
    pthread_mutex_lock(&err_mu);
    if (!first_error[0]) {
        unsigned long e = ERR_peek_last_error();
        char buf[160] = "";
        if (e) ERR_error_string_n(e, buf, sizeof buf);
        snprintf(first_error, sizeof first_error, "%s%s%s%s%s", what, errno ? ": " : "",
                 errno ? strerror(errno) : "", buf[0] ? ": " : "", buf);
    }
    pthread_mutex_unlock(&err_mu);
}

/* One connection: handshake, one request, the whole response. Returns the
 * socket (left open) or -1. */
static int one(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        note_error("socket");
        return -1;
    }
    struct timeval tv = {.tv_sec = 15};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one_ = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one_, sizeof one_);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        note_error("connect");
        close(fd);
        return -1;
    }
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd); /* a socket BIO with BIO_NOCLOSE: SSL_free keeps fd */
    SSL_set_tlsext_host_name(ssl, "localhost");
    char buf[16384];
    size_t have = 0;
    long want = -1; /* total bytes of the response once the head is in */
    if (SSL_connect(ssl) != 1) {
        note_error("handshake");
        goto fail;
    }
    if (SSL_write(ssl, request, (int)request_len) != (int)request_len) {
        note_error("write");
        goto fail;
    }
    for (;;) {
        if (have == sizeof buf) {
            note_error("response head too large");
            goto fail;
        }
        int n = SSL_read(ssl, buf + have, (int)(sizeof buf - have));
        if (n <= 0) {
            note_error("read");
            goto fail;
        }
        have += (size_t)n;
        if (want < 0) {
            char *end = memmem(buf, have, "\r\n\r\n", 4);
            if (!end) continue;
            long cl = 0;
            for (char *p = buf; p < end;) {
                char *eol = memmem(p, (size_t)(end - p) + 2, "\r\n", 2);
                if (!eol) break;
                if (eol - p > 15 && strncasecmp(p, "content-length:", 15) == 0) cl = strtol(p + 15, NULL, 10);
                p = eol + 2;
            }
            want = (long)(end + 4 - buf) + cl;
        }
        if ((long)have >= want) break;
    }
    if (have < 12 || buf[9] != '2') {
        atomic_fetch_add(&n_non2xx, 1);
        pthread_mutex_lock(&err_mu);
        if (!first_error[0]) {
            size_t l = have < 120 ? have : 120;
            snprintf(first_error, sizeof first_error, "non-2xx: %.*s", (int)l, buf);
            for (char *q = first_error; *q; q++)
                if (*q == '\r' || *q == '\n') *q = ' ';
        }
        pthread_mutex_unlock(&err_mu);
    }
    SSL_free(ssl); /* no shutdown: the connection stays open on both sides */
    return fd;
fail:
    SSL_free(ssl);
    close(fd);
    return -1;
}

static void *worker(void *arg)
{
    (void)arg;
    int i;
    while (!stop && (i = atomic_fetch_add(&next_conn, 1)) < count) {
        fds[i] = one();
        atomic_fetch_add(fds[i] >= 0 ? &n_ok : &n_failed, 1);
    }
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: idleconns --connect IP:PORT --host HOST --path P [--header H]... "
                    "[--cert F --key F] [--count N] [--threads T] --ready-file F [--hold S]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *connect_to = NULL, *host = "localhost", *path = "/", *cert = NULL, *key = NULL;
    const char *ready = NULL;
    int hold = 120;
    size_t hcap = 4096, hlen = 0;
    char *headers = calloc(1, hcap);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--connect")) connect_to = v;
        else if (!strcmp(a, "--host")) host = v;
        else if (!strcmp(a, "--path")) path = v;
        else if (!strcmp(a, "--cert")) cert = v;
        else if (!strcmp(a, "--key")) key = v;
        else if (!strcmp(a, "--count")) count = atoi(v);
        else if (!strcmp(a, "--threads")) nthreads = atoi(v);
        else if (!strcmp(a, "--ready-file")) ready = v;
        else if (!strcmp(a, "--hold")) hold = atoi(v);
        else if (!strcmp(a, "--header")) {
            size_t l = strlen(v);
            while (hlen + l + 3 > hcap) headers = realloc(headers, hcap *= 2);
            memcpy(headers + hlen, v, l);
            memcpy(headers + hlen + l, "\r\n", 3);
            hlen += l + 2;
        } else usage();
    }
    if (!connect_to || !ready || count < 1 || nthreads < 1) usage();
    char ip[64];
    const char *colon = strrchr(connect_to, ':');
    if (!colon || (size_t)(colon - connect_to) >= sizeof ip) usage();
    memcpy(ip, connect_to, (size_t)(colon - connect_to));
    ip[colon - connect_to] = 0;
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, ip, &addr.sin_addr) != 1) usage();

    request_len = (size_t)asprintf(&request, "GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", path, host, headers);
    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL); /* our own server; its CPU is what matters */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (cert && (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
                 SSL_CTX_use_PrivateKey_file(ctx, key ? key : cert, SSL_FILETYPE_PEM) != 1)) {
        ERR_print_errors_fp(stderr);
        return 2;
    }
    fds = malloc(sizeof *fds * (size_t)count);
    for (int i = 0; i < count; i++) fds[i] = -1;
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_t *th = calloc((size_t)nthreads, sizeof *th);
    for (int i = 0; i < nthreads; i++) pthread_create(&th[i], NULL, worker, NULL);
    for (int i = 0; i < nthreads; i++) pthread_join(th[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;

    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", ready);
    FILE *f = fopen(tmp, "w");
    if (!f) return 2;
    fprintf(f, "ok %d failed %d non2xx %d seconds %.2f first_error %s\n", (int)n_ok, (int)n_failed,
            (int)n_non2xx, secs, first_error[0] ? first_error : "-");
    fclose(f);
    rename(tmp, ready);

    for (int s = 0; s < hold * 10 && !stop; s++) usleep(100000);
    for (int i = 0; i < count; i++)
        if (fds[i] >= 0) close(fds[i]);
    return 0;
}
