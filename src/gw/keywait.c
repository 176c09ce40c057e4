/* Requests waiting for the remote AS's keys. When an AS rotates its
 * signing key, the first tokens under the new kid can reach the gateway
 * before its scheduled refetch of the JWKS; the unknown kid starts a fetch
 * (jwks.c, at most one per min_refetch), and rather than refusing the
 * request that brought it (which a client would see as a spurious 401 on
 * a valid token), the request waits on its worker until that fetch ends,
 * then is verified again, once.
 *
 * Waiting is polled: a short timer per waiting request looks at the
 * fetcher's count of ended fetches (an atomic), so no signal has to cross
 * from the fetcher thread to the workers' loops. Waiters are few (only
 * while a fetch runs, bounded per worker), and a fetch on loopback or a
 * LAN ends within milliseconds. */
#include "gw/internal.h"
#include "gw/jwks.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Requests a worker holds while a key fetch runs; past it, a token with an
 * unknown kid is refused at once, as it would be without waiting. A flood
 * of made-up kids thus parks at most this many requests per worker, for at
 * most one fetch. */
#define PC_GW_MAX_KEY_WAITERS 64u
/* How often a waiter looks whether the fetch has ended. */
#define PC_GW_KEY_WAIT_POLL_MS 2

static _Thread_local uint32_t waiting;

typedef struct waiter {
    pc_request *r;
    const pc_gw_route *rt;
    pc_gw_creds creds;             /* the token points into r */
    uint64_t ended_before;
    int64_t deadline_ms;
    struct event *timer;
    char iid[PC_GW_MAX_INTERACTION_ID + 1];
} waiter;

static void waiter_free(waiter *w)
{
    if (w->timer) event_free(w->timer);
    waiting--;
    free(w);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    waiter *w = arg;
    pc_gw_jwks *jwks = w->rt->gw->sh->jwks;
    if (pc_gw_jwks_fetches_ended(jwks) == w->ended_before && pc_gw_mono_ms() < w->deadline_ms) return;
    pc_request *r = w->r;
    const pc_gw_route *rt = w->rt;
    pc_gw_creds c = w->creds;
    char iid[sizeof w->iid];
    memcpy(iid, w->iid, sizeof iid);
    pc_request_set_abort(r, NULL, NULL);
    waiter_free(w);
    pc_gw_keys_fetched(r, rt, iid, &c);
}

static void on_abort(void *arg) { waiter_free(arg); }

bool pc_gw_wait_for_keys(pc_request *r, const pc_gw_route *rt, const char *iid,
                         const pc_gw_creds *c, uint64_t ended_before)
{
    if (waiting >= PC_GW_MAX_KEY_WAITERS) return false;
    waiter *w = calloc(1, sizeof *w);
    if (w == NULL) return false;
    waiting++;
    w->r = r;
    w->rt = rt;
    w->creds = *c;
    w->ended_before = ended_before;
    /* The fetch ends, with keys or without, within its own timeout. */
    w->deadline_ms = pc_gw_mono_ms() + (int64_t)pc_gw_jwks_fetch_timeout_ms(rt->gw->sh->jwks) + 100;
    snprintf(w->iid, sizeof w->iid, "%s", iid);
    w->timer = event_new(pc_request_base(r), -1, EV_PERSIST, on_tick, w);
    struct timeval tv = {0, PC_GW_KEY_WAIT_POLL_MS * 1000};
    if (w->timer == NULL || event_add(w->timer, &tv) != 0) {
        waiter_free(w);
        return false;
    }
    pc_request_set_abort(r, on_abort, w);
    return true;
}
