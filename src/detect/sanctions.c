/* Sanctions table: a chained hash table keyed by client_id (keyed SipHash,
 * so ids cannot be picked to share a chain) under one mutex. The per
 * request check is a hash and a chain walk: no allocation. Entries are
 * allocated when a sanction starts and freed when released, when found
 * expired by a writer, or when the table is full and a new client needs
 * room (the entry ending soonest goes: an expired one if there is any).
 *
 * client_ids longer than PC_SANCTION_MAX_CLIENT are kept by their first
 * PC_SANCTION_MAX_CLIENT bytes, at sanction and at check alike: two long
 * ids sharing that prefix share a sanction (the error is towards refusing). */
#include "detect/sanctions.h"
#include "detect/hll.h"

#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIN_FACTOR 0.001 /* factors are clamped into [MIN_FACTOR, 1] */

typedef struct sent {
    struct sent *next;
    uint64_t hash;
    size_t len;
    pc_sanction s;
} sent;

struct pc_sanctions {
    pthread_mutex_t mu;
    uint64_t seed[2];
    sent **buckets;
    size_t nbuckets; /* power of two */
    size_t n, cap;
};

pc_result pc_sanctions_new(size_t max_clients, pc_sanctions **out)
{
    PC_ENSURE(max_clients > 0, PC_ERR_USAGE, "sanctions: max_clients must be positive");
    pc_sanctions *t = calloc(1, sizeof *t);
    PC_ENSURE(t != NULL, PC_ERR_INTERNAL, "out of memory");
    size_t nb = 16;
    while (nb < max_clients && nb < ((size_t)1 << 24)) nb *= 2;
    t->buckets = calloc(nb, sizeof *t->buckets);
    t->nbuckets = nb;
    t->cap = max_clients;
    pthread_mutex_init(&t->mu, NULL);
    if (t->buckets == NULL) {
        pc_sanctions_free(t);
        return pc_fail(PC_ERR_INTERNAL, "out of memory for the sanctions table");
    }
    if (RAND_bytes((unsigned char *)t->seed, sizeof t->seed) != 1) {
        pc_sanctions_free(t);
        return pc_fail_ossl("RAND_bytes");
    }
    *out = t;
    return PC_OK;
}

void pc_sanctions_free(pc_sanctions *t)
{
    if (t == NULL) return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        for (sent *e = t->buckets[i], *n; e; e = n) {
            n = e->next;
            free(e);
        }
    }
    free(t->buckets);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

static pc_str clip(pc_str id)
{
    if (id.ptr == NULL) return (pc_str){"", 0};
    if (id.len > PC_SANCTION_MAX_CLIENT) id.len = PC_SANCTION_MAX_CLIENT;
    return id;
}

static sent *lookup(pc_sanctions *t, pc_str id, uint64_t h)
{
    for (sent *e = t->buckets[h & (t->nbuckets - 1)]; e; e = e->next)
        if (e->hash == h && e->len == id.len && memcmp(e->s.client_id, id.ptr, id.len) == 0)
            return e;
    return NULL;
}

static int64_t ends(const sent *e)
{
    int64_t q = e->s.quarantine_until_us, th = e->s.throttle_until_us;
    return q > th ? q : th;
}

static void unlink_free(pc_sanctions *t, sent *e)
{
    sent **pp = &t->buckets[e->hash & (t->nbuckets - 1)];
    while (*pp != e) pp = &(*pp)->next;
    *pp = e->next;
    t->n--;
    free(e);
}

static void drop_soonest(pc_sanctions *t)
{
    sent *victim = NULL;
    for (size_t i = 0; i < t->nbuckets; i++)
        for (sent *e = t->buckets[i]; e; e = e->next)
            if (victim == NULL || ends(e) < ends(victim)) victim = e;
    if (victim != NULL) unlink_free(t, victim);
}

/* The entry for id, made if new. Locked. NULL only when out of memory. */
static sent *get(pc_sanctions *t, pc_str id)
{
    uint64_t h = pc_hash64(t->seed, id.ptr, id.len);
    sent *e = lookup(t, id, h);
    if (e != NULL) return e;
    if (t->n >= t->cap) drop_soonest(t);
    e = calloc(1, sizeof *e);
    if (e == NULL) return NULL;
    e->hash = h;
    e->len = id.len;
    memcpy(e->s.client_id, id.ptr, id.len);
    e->s.throttle_factor = 1.0;
    sent **pp = &t->buckets[h & (t->nbuckets - 1)];
    e->next = *pp;
    *pp = e;
    t->n++;
    return e;
}

static int64_t add_sat(int64_t a, int64_t b)
{
    if (b < 0) b = 0;
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

void pc_sanctions_quarantine(pc_sanctions *t, pc_str client_id, const char *reason,
                             int64_t now_us, int64_t period_us)
{
    pc_str id = clip(client_id);
    int64_t until = add_sat(now_us, period_us);
    pthread_mutex_lock(&t->mu);
    sent *e = get(t, id);
    if (e != NULL) {
        pc_sanction *s = &e->s;
        if (s->quarantine_until_us <= now_us) { /* a new quarantine, not an extension */
            s->quarantined_at_us = now_us;
            s->quarantine_until_us = until;
            snprintf(s->reason, sizeof s->reason, "%s", reason ? reason : "");
        } else if (until > s->quarantine_until_us) {
            s->quarantine_until_us = until;
        }
    }
    pthread_mutex_unlock(&t->mu);
}

void pc_sanctions_throttle(pc_sanctions *t, pc_str client_id, double factor, int64_t now_us,
                           int64_t period_us)
{
    pc_str id = clip(client_id);
    if (!(factor >= MIN_FACTOR)) factor = MIN_FACTOR; /* NaN too */
    if (factor > 1) factor = 1;
    int64_t until = add_sat(now_us, period_us);
    pthread_mutex_lock(&t->mu);
    sent *e = get(t, id);
    if (e != NULL) {
        pc_sanction *s = &e->s;
        if (s->throttle_until_us <= now_us) {
            s->throttle_factor = factor;
            s->throttle_until_us = until;
        } else {
            if (factor < s->throttle_factor) s->throttle_factor = factor;
            if (until > s->throttle_until_us) s->throttle_until_us = until;
        }
    }
    pthread_mutex_unlock(&t->mu);
}

bool pc_sanctions_quarantined(pc_sanctions *t, pc_str client_id, int64_t now_us, int64_t *until_us)
{
    pc_str id = clip(client_id);
    uint64_t h = pc_hash64(t->seed, id.ptr, id.len);
    bool q = false;
    pthread_mutex_lock(&t->mu);
    sent *e = t->n ? lookup(t, id, h) : NULL;
    if (e != NULL && e->s.quarantine_until_us > now_us) {
        q = true;
        if (until_us != NULL) *until_us = e->s.quarantine_until_us;
    }
    pthread_mutex_unlock(&t->mu);
    return q;
}

double pc_sanctions_factor(pc_sanctions *t, pc_str client_id, int64_t now_us)
{
    pc_str id = clip(client_id);
    uint64_t h = pc_hash64(t->seed, id.ptr, id.len);
    double f = 1.0;
    pthread_mutex_lock(&t->mu);
    sent *e = t->n ? lookup(t, id, h) : NULL;
    if (e != NULL && e->s.throttle_until_us > now_us) f = e->s.throttle_factor;
    pthread_mutex_unlock(&t->mu);
    return f;
}

bool pc_sanctions_release(pc_sanctions *t, pc_str client_id, int64_t now_us)
{
    pc_str id = clip(client_id);
    uint64_t h = pc_hash64(t->seed, id.ptr, id.len);
    bool active = false;
    pthread_mutex_lock(&t->mu);
    sent *e = lookup(t, id, h);
    if (e != NULL) {
        active = ends(e) > now_us;
        unlink_free(t, e);
    }
    pthread_mutex_unlock(&t->mu);
    return active;
}

static int by_client(const void *a, const void *b)
{
    const sent *x = *(const sent *const *)a, *y = *(const sent *const *)b;
    size_t m = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s.client_id, y->s.client_id, m);
    if (c != 0) return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

size_t pc_sanctions_list(pc_sanctions *t, int64_t now_us, pc_sanction *out, size_t cap)
{
    size_t w = 0;
    pthread_mutex_lock(&t->mu);
    sent **all = t->n ? malloc(t->n * sizeof *all) : NULL;
    size_t k = 0;
    for (size_t i = 0; i < t->nbuckets; i++) {
        for (sent *e = t->buckets[i], *n; e; e = n) {
            n = e->next;
            if (ends(e) <= now_us) {
                unlink_free(t, e); /* expired: tidy up while we are here */
                continue;
            }
            if (all != NULL) all[k++] = e;
        }
    }
    if (all != NULL) {
        qsort(all, k, sizeof *all, by_client);
        for (size_t i = 0; i < k && w < cap; i++) {
            pc_sanction s = all[i]->s;
            /* Report only what is active now. */
            if (s.quarantine_until_us <= now_us) s.quarantined_at_us = s.quarantine_until_us = 0;
            if (s.throttle_until_us <= now_us) {
                s.throttle_until_us = 0;
                s.throttle_factor = 1.0;
            }
            out[w++] = s;
        }
        free(all);
    }
    pthread_mutex_unlock(&t->mu);
    return w;
}
