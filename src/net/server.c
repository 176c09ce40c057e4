/* Server lifecycle: listeners, worker threads, signals, reload and drain.
 *
 * Each worker owns an event_base and its own listening socket bound with
 * SO_REUSEPORT, so the kernel spreads new connections over the workers
 * and a connection stays on one thread for its whole life. The main thread
 * only handles signals: it builds a new runtime on SIGHUP and posts it to
 * the workers, and on SIGTERM posts a drain. */
#include "core/log.h"
#include "net/internal.h"

#include <errno.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

/* Accepts per wakeup per worker: enough to empty a burst, small enough that
 * established connections still get their turn. */
#define ACCEPT_BATCH 64
#define LISTEN_BACKLOG 1024

typedef struct server_main {
    pc_server srv;
    char *config_path;
    struct event *ev_term, *ev_int, *ev_hup, *ev_done, *ev_drain_timer;
    _Atomic unsigned workers_done;
} server_main;

static pc_result open_listener(const pc_config *cfg, int *out_fd)
{
    struct addrinfo hints = {0}, *ai = NULL;
    char port[8];
    snprintf(port, sizeof port, "%u", cfg->listen_port);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
    int gai = getaddrinfo(cfg->listen_host, port, &hints, &ai);
    PC_ENSURE(gai == 0, PC_ERR_USAGE, "server.listen %s:%u: %s", cfg->listen_host,
              cfg->listen_port, gai_strerror(gai));
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(ai);
        return pc_fail(PC_ERR_IO, "socket: %s", strerror(errno));
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        int e = errno;
        close(fd);
        freeaddrinfo(ai);
        return pc_fail(PC_ERR_IO, "listen on %s:%u: %s", cfg->listen_host, cfg->listen_port,
                       strerror(e));
    }
    freeaddrinfo(ai);
    *out_fd = fd;
    return PC_OK;
}

static void set_timeouts(pc_worker *w)
{
    const pc_limits_config *lim = &w->rt->cfg->limits;
    struct timeval tv;
    /* Common timeouts keep same-duration timers in a queue instead of the
     * heap: O(1) re-arming on every request. */
#define COMMON(ms, field)                                                                          \
    do {                                                                                           \
        tv.tv_sec = (ms) / 1000;                                                                   \
        tv.tv_usec = (suseconds_t)((ms) % 1000) * 1000;                                            \
        w->field = event_base_init_common_timeout(w->base, &tv);                                   \
    } while (0)
    if (w->tv_header_ms != lim->header_timeout_ms) COMMON(lim->header_timeout_ms, tv_header);
    if (w->tv_idle_ms != lim->idle_timeout_ms) COMMON(lim->idle_timeout_ms, tv_idle);
    if (w->tv_body_ms != lim->body_timeout_ms) COMMON(lim->body_timeout_ms, tv_body);
#undef COMMON
    w->tv_header_ms = lim->header_timeout_ms;
    w->tv_idle_ms = lim->idle_timeout_ms;
    w->tv_body_ms = lim->body_timeout_ms;
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    (void)what;
    pc_worker *w = arg;
    for (int i = 0; i < ACCEPT_BATCH && !w->draining; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
                errno == ECONNABORTED)
                return;
            /* EMFILE and friends: say so, at most once a second. */
            static _Thread_local time_t last;
            time_t now = time(NULL);
            if (now != last) {
                last = now;
                pc_log_msg(PC_LOG_ERROR, "accept_failed", "accept: %s", strerror(errno));
            }
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        pc_conn_accept(w, fd, (struct sockaddr *)&ss, sl);
    }
}

static void worker_begin_drain(pc_worker *w)
{
    if (w->draining) return;
    w->draining = true;
    if (w->ev_listen) {
        event_del(w->ev_listen);
        close(w->listen_fd);
        w->listen_fd = -1;
    }
    for (pc_conn *c = w->conns, *next; c; c = next) {
        next = c->next;
        pc_conn_drain(c);
    }
    if (w->n_conns == 0) event_base_loopexit(w->base, NULL);
}

static void on_control(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    pc_worker *w = arg;
    uint64_t posts;
    ssize_t got = read(fd, &posts, sizeof posts); /* resets the eventfd */
    (void)got; /* EAGAIN: an earlier call read it; the mailbox is the truth */
    pthread_mutex_lock(&w->mu);
    pc_runtime *rt = w->mail_rt;
    bool drain = w->mail_drain, stop = w->mail_stop;
    w->mail_rt = NULL;
    w->mail_drain = w->mail_stop = false;
    pthread_mutex_unlock(&w->mu);
    if (rt) {
        pc_runtime_unref(w->rt);
        w->rt = rt;
        set_timeouts(w);
    }
    if (drain) worker_begin_drain(w);
    if (stop) {
        w->draining = true;
        for (pc_conn *c = w->conns, *next; c; c = next) {
            next = c->next;
            pc_conn_close_now(c);
        }
        event_base_loopexit(w->base, NULL);
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pc_worker_refresh_date(arg);
    pc_log_flush_thread();
}

static void *worker_main(void *arg)
{
    pc_worker *w = arg;
    event_base_dispatch(w->base);
    pc_log_flush_thread();
    server_main *m = (server_main *)(void *)w->srv;
    atomic_fetch_add(&m->workers_done, 1);
    event_active(m->ev_done, EV_READ, 0);
    return NULL;
}

static void post(pc_worker *w, pc_runtime *rt, bool drain, bool stop)
{
    pthread_mutex_lock(&w->mu);
    if (rt) {
        if (w->mail_rt) pc_runtime_unref(w->mail_rt);
        w->mail_rt = rt;
    }
    w->mail_drain |= drain;
    w->mail_stop |= stop;
    pthread_mutex_unlock(&w->mu);
    /* An eventfd, not event_active(): the worker's base has no lock (see
     * setup_worker), so no other thread may touch it. A failed write can
     * only be EAGAIN, the counter full of posts not yet read. */
    uint64_t one = 1;
    ssize_t put = write(w->control_fd, &one, sizeof one);
    (void)put;
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    server_main *m = arg;
    if (atomic_load(&m->workers_done) == m->srv.n_workers) event_base_loopexit(m->srv.main_base, NULL);
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    server_main *m = arg;
    pc_log_msg(PC_LOG_WARN, "shutdown_timeout",
               "in-flight requests did not finish in time; closing them");
    for (unsigned i = 0; i < m->srv.n_workers; i++) post(&m->srv.workers[i], NULL, false, true);
}

static void on_terminate(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    server_main *m = arg;
    if (m->srv.draining) {
        pc_log_msg(PC_LOG_WARN, "shutdown_forced", "second signal %d: closing now", (int)sig);
        for (unsigned i = 0; i < m->srv.n_workers; i++) post(&m->srv.workers[i], NULL, false, true);
        return;
    }
    m->srv.draining = true;
    const pc_limits_config *lim = &m->srv.rt->cfg->limits;
    pc_logline l;
    if (pc_log_begin(&l, PC_LOG_INFO, "shutdown_begin")) {
        pc_log_int(&l, "signal", (int)sig);
        pc_log_uint(&l, "open_connections", pc_connlimit_total(m->srv.connlimit));
        pc_log_uint(&l, "drain_timeout_ms", lim->shutdown_timeout_ms);
        pc_log_end(&l);
    }
    for (unsigned i = 0; i < m->srv.n_workers; i++) post(&m->srv.workers[i], NULL, true, false);
    struct timeval tv = {(time_t)(lim->shutdown_timeout_ms / 1000),
                         (suseconds_t)(lim->shutdown_timeout_ms % 1000) * 1000};
    evtimer_add(m->ev_drain_timer, &tv);
}

static void on_reload(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    server_main *m = arg;
    if (m->srv.draining) return;
    pc_config *cfg = NULL;
    pc_runtime *rt = NULL;
    pc_result r = pc_config_load(m->config_path, &cfg);
    if (pc_ok(r)) r = pc_runtime_build(cfg, m->srv.generation + 1, &rt); /* takes cfg */
    if (!pc_ok(r)) {
        pc_log_msg(PC_LOG_ERROR, "reload_failed", "%s; keeping the running config", pc_errmsg());
        return;
    }
    const pc_config *old = m->srv.rt->cfg;
    if (strcmp(old->listen_host, rt->cfg->listen_host) != 0 ||
        old->listen_port != rt->cfg->listen_port || old->workers != rt->cfg->workers)
        pc_log_msg(PC_LOG_WARN, "reload_partial",
                   "server.listen and server.workers change only on restart; keeping %s:%u",
                   old->listen_host, old->listen_port);
    m->srv.generation++;
    pc_log_set_level(rt->cfg->log_level);
    for (unsigned i = 0; i < m->srv.n_workers; i++) {
        pc_runtime_ref(rt);
        post(&m->srv.workers[i], rt, false, false);
    }
    pc_runtime_unref(m->srv.rt);
    m->srv.rt = rt;
    pc_logline l;
    if (pc_log_begin(&l, PC_LOG_INFO, "reloaded")) {
        pc_log_uint(&l, "generation", m->srv.generation);
        pc_log_cstr(&l, "config", m->config_path);
        pc_log_end(&l);
    }
}

static pc_result setup_worker(server_main *m, pc_worker *w, unsigned id)
{
    pc_server *srv = &m->srv;
    w->id = id;
    w->srv = srv;
    w->listen_fd = -1;
    w->control_fd = -1;
    pthread_mutex_init(&w->mu, NULL);
    /* Only the worker's thread uses its base, so it goes without libevent's
     * lock: taking it on every event_add/del was about 1% of a proxied
     * request. Other threads reach the worker through control_fd. */
    struct event_config *ec = event_config_new();
    PC_ENSURE(ec != NULL, PC_ERR_INTERNAL, "event_config_new failed");
    event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
    w->base = event_base_new_with_config(ec);
    event_config_free(ec);
    PC_ENSURE(w->base != NULL, PC_ERR_INTERNAL, "event_base_new failed");
    w->control_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    PC_ENSURE(w->control_fd >= 0, PC_ERR_INTERNAL, "eventfd: %s", strerror(errno));
    w->rt = srv->rt;
    pc_runtime_ref(w->rt);
    set_timeouts(w);
    PC_GUARD(open_listener(srv->rt->cfg, &w->listen_fd));
    w->ev_listen = event_new(w->base, w->listen_fd, EV_READ | EV_PERSIST, on_accept, w);
    w->ev_control = event_new(w->base, w->control_fd, EV_READ | EV_PERSIST, on_control, w);
    w->ev_tick = event_new(w->base, -1, EV_PERSIST, on_tick, w);
    PC_ENSURE(w->ev_listen && w->ev_control && w->ev_tick, PC_ERR_INTERNAL, "event_new failed");
    struct timeval one = {1, 0};
    event_add(w->ev_listen, NULL);
    event_add(w->ev_control, NULL);
    event_add(w->ev_tick, &one);
    unsigned char rnd[6];
    PC_GUARD_OSSL(RAND_bytes(rnd, sizeof rnd), "RAND_bytes");
    for (size_t i = 0; i < sizeof rnd; i++) snprintf(w->req_prefix + 2 * i, 3, "%02x", rnd[i]);
    pc_worker_refresh_date(w);
    return PC_OK;
}

static void teardown(server_main *m)
{
    pc_server *srv = &m->srv;
    for (unsigned i = 0; srv->workers && i < srv->n_workers; i++) {
        pc_worker *w = &srv->workers[i];
        if (w->ev_listen) event_free(w->ev_listen);
        if (w->ev_control) event_free(w->ev_control);
        if (w->ev_tick) event_free(w->ev_tick);
        if (w->listen_fd >= 0) close(w->listen_fd);
        if (w->control_fd >= 0) close(w->control_fd);
        if (w->mail_rt) pc_runtime_unref(w->mail_rt);
        if (w->rt) pc_runtime_unref(w->rt);
        if (w->base) event_base_free(w->base);
        pc_spares_clear(&w->spare_in);
        pc_spares_clear(&w->spare_out);
        pthread_mutex_destroy(&w->mu);
    }
    free(srv->workers);
    if (m->ev_term) event_free(m->ev_term);
    if (m->ev_int) event_free(m->ev_int);
    if (m->ev_hup) event_free(m->ev_hup);
    if (m->ev_done) event_free(m->ev_done);
    if (m->ev_drain_timer) event_free(m->ev_drain_timer);
    if (srv->main_base) event_base_free(srv->main_base);
    if (srv->rt) pc_runtime_unref(srv->rt);
    pc_modules_stop();
    pc_connlimit_free(srv->connlimit);
    free(m->config_path);
}

static unsigned worker_count(const pc_config *cfg)
{
    if (cfg->workers) return cfg->workers;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (n > PC_MAX_WORKERS) n = PC_MAX_WORKERS;
    return (unsigned)n;
}

static pc_result start(server_main *m, pc_config *cfg)
{
    pc_server *srv = &m->srv;
    PC_ENSURE(evthread_use_pthreads() == 0, PC_ERR_INTERNAL, "libevent threading unavailable");
    m->config_path = cfg->path ? strdup(cfg->path) : NULL;
    PC_GUARD(pc_connlimit_new(&srv->connlimit));
    srv->generation = 1;
    PC_GUARD(pc_runtime_build(cfg, srv->generation, &srv->rt));
    srv->n_workers = worker_count(srv->rt->cfg);
    srv->main_base = event_base_new();
    srv->workers = calloc(srv->n_workers, sizeof *srv->workers);
    PC_ENSURE(srv->main_base && srv->workers, PC_ERR_INTERNAL, "out of memory");
    /* Not descriptor 0: teardown closes what a failed setup left open. */
    for (unsigned i = 0; i < srv->n_workers; i++) srv->workers[i].listen_fd = srv->workers[i].control_fd = -1;
    m->ev_term = evsignal_new(srv->main_base, SIGTERM, on_terminate, m);
    m->ev_int = evsignal_new(srv->main_base, SIGINT, on_terminate, m);
    m->ev_hup = evsignal_new(srv->main_base, SIGHUP, on_reload, m);
    m->ev_done = event_new(srv->main_base, -1, 0, on_done, m);
    m->ev_drain_timer = evtimer_new(srv->main_base, on_drain_timeout, m);
    PC_ENSURE(m->ev_term && m->ev_int && m->ev_hup && m->ev_done && m->ev_drain_timer,
              PC_ERR_INTERNAL, "event_new failed");
    event_add(m->ev_term, NULL);
    event_add(m->ev_int, NULL);
    event_add(m->ev_hup, NULL);
    for (unsigned i = 0; i < srv->n_workers; i++) PC_GUARD(setup_worker(m, &srv->workers[i], i));
    return PC_OK;
}

pc_result pc_server_run(pc_config *cfg)
{
    server_main *m = calloc(1, sizeof *m);
    if (m == NULL) {
        pc_config_free(cfg);
        return pc_fail(PC_ERR_INTERNAL, "out of memory");
    }
    signal(SIGPIPE, SIG_IGN);
    pc_result r = start(m, cfg);
    if (!pc_ok(r)) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", pc_errmsg());
        teardown(m);
        free(m);
        return pc_fail(r.err, "%s", msg);
    }
    pc_server *srv = &m->srv;
    /* Workers must not take the process's signals: block them before the
     * threads start (they inherit the mask), then unblock here. */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    unsigned started = 0;
    for (; started < srv->n_workers; started++)
        if (pthread_create(&srv->workers[started].thread, NULL, worker_main,
                           &srv->workers[started]) != 0)
            break;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (started < srv->n_workers) {
        pc_log_msg(PC_LOG_ERROR, "thread_start_failed", "started %u of %u workers", started,
                   srv->n_workers);
        for (unsigned i = 0; i < started; i++) post(&srv->workers[i], NULL, false, true);
        for (unsigned i = 0; i < started; i++) pthread_join(srv->workers[i].thread, NULL);
        teardown(m);
        free(m);
        return pc_fail(PC_ERR_INTERNAL, "could not start worker threads");
    }
    const pc_config *c = srv->rt->cfg;
    pc_logline l;
    if (pc_log_begin(&l, PC_LOG_INFO, "server_started")) {
        char listen[80];
        snprintf(listen, sizeof listen, "%s:%u", c->listen_host, c->listen_port);
        pc_log_cstr(&l, "listen", listen);
        pc_log_uint(&l, "workers", srv->n_workers);
        pc_log_cstr(&l, "client_cert", pc_client_cert_mode_name(c->tls.client_cert));
        pc_log_int(&l, "pid", (int64_t)getpid());
        pc_log_end(&l);
    }
    event_base_dispatch(srv->main_base);
    for (unsigned i = 0; i < srv->n_workers; i++) pthread_join(srv->workers[i].thread, NULL);
    pc_log_msg(PC_LOG_INFO, "shutdown_complete", "all workers stopped");
    teardown(m);
    free(m);
    return PC_OK;
}
