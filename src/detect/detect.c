/* The detectors' shared table: one det_state per key, sharded by a keyed
 * hash of the key with a mutex per shard, at most max_keys keys (split
 * evenly over the shards), the least recently used evicted. Entries are
 * allocated on a key's first event, not up front (max_keys x 4 KiB would
 * be hundreds of MiB for keys that never come).
 *
 * An evicted key starts afresh: learning again, counts at zero. Keys are
 * client_ids and subjects, which a client cannot mint by the thousand, so
 * eviction is not a way out for an abuser; the sanctions table, not this
 * one, carries the consequences of a finding. Out of memory for a new key:
 * that event is not analysed (detection never refuses traffic itself). */
#include "detect/det_internal.h"

#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SHARDS 64u
#define FALLBACK_KEY "\001fallback" /* unusable keys share this one (fail closed) */

typedef struct det_entry {
    struct det_entry *hnext;         /* hash chain */
    struct det_entry *lprev, *lnext; /* LRU list, most recent at the head */
    uint64_t hash;
    uint8_t len;
    char key[PC_DET_MAX_KEY];
    det_state st;
} det_entry;

_Static_assert(sizeof(det_state) <= PC_DET_MAX_STATE_BYTES, "detector state over 4 KiB per key");
_Static_assert(sizeof(det_entry) <= PC_DET_MAX_STATE_BYTES,
               "detector entry (state, key, links) over 4 KiB per key");
_Static_assert(PC_DET_MAX_KEY <= 255, "key length kept in a byte");
_Static_assert(PC_DET_MAX_ID <= 255, "identifier length kept in a byte");

typedef struct det_shard {
    pthread_mutex_t mu;
    det_entry **buckets;
    size_t nbuckets; /* power of two */
    det_entry *head, *tail;
    size_t n, cap;
} det_shard;

struct pc_detector {
    pc_det_config cfg;
    uint64_t seed[2];
    det_shard shards[SHARDS];
};

const char *pc_det_kind_name(pc_det_kind k)
{
    switch (k) {
    case PC_DET_ENUMERATION: return "enumeration";
    case PC_DET_PROBING: return "probing";
    case PC_DET_VOLUME: return "volume";
    case PC_DET_CREDENTIALS: return "credentials";
    default: return "unknown";
    }
}

void pc_det_config_defaults(pc_det_config *c)
{
    memset(c, 0, sizeof *c);
    c->learning_ms = 10 * 60 * 1000;
    c->max_keys = 65536;
    c->enumeration.enabled = true;
    c->enumeration.window_ms = 5 * 60 * 1000;
    c->enumeration.max_distinct = 300;
    c->enumeration.baseline_factor = 4;
    c->enumeration.min_distinct = 50;
    c->enumeration.sequential_run = 20;
    c->enumeration.sequential_gap = 16;
    c->enumeration.ordered_run = 60;
    c->enumeration.scan_fraction = 0.5;
    c->enumeration.scan_ratio = 0.9;
    c->probing.enabled = true;
    c->probing.window_ms = 5 * 60 * 1000;
    c->probing.min_requests = 40;
    c->probing.max_ratio = 0.5;
    c->volume.enabled = true;
    c->volume.interval_ms = 10 * 1000;
    c->volume.alpha = 0.1;
    c->volume.z_threshold = 6;
    c->volume.min_count = 100;
    c->volume.min_factor = 8;
    c->credentials.enabled = true;
    c->credentials.window_ms = 5 * 60 * 1000;
    c->credentials.max_auth_failures = 10;
    c->credentials.max_dpop_replays = 3;
    c->credentials.max_binding_mismatches = 3;
    c->credentials.max_new_certs = 3;
    c->credentials.max_new_ips = 20;
}

static pc_result check_config(const pc_det_config *c)
{
    PC_ENSURE(c->max_keys > 0, PC_ERR_USAGE, "detectors: max_keys must be positive");
    PC_ENSURE(!c->enumeration.enabled || c->enumeration.window_ms > 0, PC_ERR_USAGE,
              "detectors: enumeration window must be positive");
    PC_ENSURE(!c->probing.enabled || c->probing.window_ms > 0, PC_ERR_USAGE,
              "detectors: probing window must be positive");
    PC_ENSURE(!c->volume.enabled || c->volume.interval_ms > 0, PC_ERR_USAGE,
              "detectors: volume interval must be positive");
    PC_ENSURE(!c->volume.enabled || (c->volume.alpha > 0 && c->volume.alpha <= 1), PC_ERR_USAGE,
              "detectors: volume alpha must be in (0, 1]");
    PC_ENSURE(!c->credentials.enabled || c->credentials.window_ms > 0, PC_ERR_USAGE,
              "detectors: credentials window must be positive");
    return PC_OK;
}

pc_result pc_det_new(const pc_det_config *cfg, pc_detector **out)
{
    PC_GUARD(check_config(cfg));
    pc_detector *d = calloc(1, sizeof *d);
    PC_ENSURE(d != NULL, PC_ERR_INTERNAL, "out of memory");
    d->cfg = *cfg;
    size_t per = cfg->max_keys / SHARDS + (cfg->max_keys % SHARDS ? 1 : 0);
    size_t nb = 16;
    while (nb < per) nb *= 2;
    for (size_t i = 0; i < SHARDS; i++) {
        det_shard *s = &d->shards[i];
        pthread_mutex_init(&s->mu, NULL);
        s->buckets = calloc(nb, sizeof *s->buckets);
        s->nbuckets = nb;
        s->cap = per;
        if (s->buckets == NULL) {
            pc_det_free(d);
            return pc_fail(PC_ERR_INTERNAL, "out of memory for the detectors");
        }
    }
    if (RAND_bytes((unsigned char *)d->seed, sizeof d->seed) != 1) {
        pc_det_free(d);
        return pc_fail_ossl("RAND_bytes");
    }
    *out = d;
    return PC_OK;
}

void pc_det_free(pc_detector *d)
{
    if (d == NULL) return;
    for (size_t i = 0; i < SHARDS; i++) {
        det_shard *s = &d->shards[i];
        for (det_entry *e = s->head, *n; e; e = n) {
            n = e->lnext;
            free(e);
        }
        free(s->buckets);
        pthread_mutex_destroy(&s->mu);
    }
    free(d);
}

static void lru_unlink(det_shard *s, det_entry *e)
{
    if (e->lprev) e->lprev->lnext = e->lnext; else s->head = e->lnext;
    if (e->lnext) e->lnext->lprev = e->lprev; else s->tail = e->lprev;
    e->lprev = e->lnext = NULL;
}

static void lru_push(det_shard *s, det_entry *e)
{
    e->lnext = s->head;
    e->lprev = NULL;
    if (s->head) s->head->lprev = e;
    s->head = e;
    if (s->tail == NULL) s->tail = e;
}

static void drop(det_shard *s, det_entry *e)
{
    lru_unlink(s, e);
    det_entry **pp = &s->buckets[e->hash & (s->nbuckets - 1)];
    while (*pp != e) pp = &(*pp)->hnext;
    *pp = e->hnext;
    s->n--;
    free(e);
}

static pc_str usable(pc_str key)
{
    if (key.ptr == NULL || key.len == 0 || key.len > PC_DET_MAX_KEY) return PC_STR(FALLBACK_KEY);
    return key;
}

static det_shard *shard_of(pc_detector *d, pc_str key, uint64_t *h)
{
    *h = pc_hash64(d->seed, key.ptr, key.len);
    return &d->shards[*h % SHARDS];
}

static det_entry *find(det_shard *s, uint64_t h, pc_str key)
{
    for (det_entry *e = s->buckets[h & (s->nbuckets - 1)]; e; e = e->hnext)
        if (e->hash == h && e->len == key.len && memcmp(e->key, key.ptr, key.len) == 0) return e;
    return NULL;
}

/* The key's entry, created if new, moved to the LRU head. Shard locked. */
static det_entry *touch(det_shard *s, uint64_t h, pc_str key, int64_t now)
{
    det_entry *e = find(s, h, key);
    if (e != NULL) {
        if (s->head != e) {
            lru_unlink(s, e);
            lru_push(s, e);
        }
        return e;
    }
    if (s->n >= s->cap && s->tail != NULL) drop(s, s->tail);
    e = calloc(1, sizeof *e);
    if (e == NULL) return NULL;
    e->hash = h;
    e->len = (uint8_t)key.len;
    memcpy(e->key, key.ptr, key.len);
    e->st.first_us = now;
    det_entry **pp = &s->buckets[h & (s->nbuckets - 1)];
    e->hnext = *pp;
    *pp = e;
    lru_push(s, e);
    s->n++;
    return e;
}

static int64_t window_us(const pc_det_config *c, pc_det_kind k)
{
    switch (k) {
    case PC_DET_ENUMERATION: return (int64_t)c->enumeration.window_ms * 1000;
    case PC_DET_PROBING: return (int64_t)c->probing.window_ms * 1000;
    case PC_DET_VOLUME: return (int64_t)c->volume.interval_ms * 1000;
    default: return (int64_t)c->credentials.window_ms * 1000;
    }
}

/* Where a detector writes its evidence: nowhere while in cooldown. */
#define EVBUF(st, k, now) ((now) < (st)->quiet_until[(k)] ? NULL : ev)

/* A rule held for kind: report it unless the key is in that detector's
 * cooldown, and start one. */
static size_t report(const pc_det_config *c, det_state *st, pc_det_kind k, const char *ev,
                     int64_t now, pc_det_finding *out)
{
    if (now < st->quiet_until[k]) return 0;
    st->quiet_until[k] = now + window_us(c, k);
    out->kind = k;
    size_t n = strlen(ev);
    if (n >= sizeof out->evidence) n = sizeof out->evidence - 1;
    memcpy(out->evidence, ev, n);
    out->evidence[n] = '\0';
    return 1;
}

size_t pc_det_on_request(pc_detector *d, pc_str key, const pc_det_request *rq, int64_t now_us,
                         pc_det_finding out[PC_DET_KINDS])
{
    const pc_det_config *c = &d->cfg;
    bool want_enum = c->enumeration.enabled && rq != NULL && rq->identifier.len > 0;
    if (!want_enum && !c->volume.enabled) return 0;
    key = usable(key);
    uint64_t h;
    det_shard *s = shard_of(d, key, &h);
    char ev[PC_DET_EVIDENCE_BYTES];
    size_t n = 0;
    pthread_mutex_lock(&s->mu);
    det_entry *e = touch(s, h, key, now_us);
    if (e != NULL) {
        det_state *st = &e->st;
        int64_t age = now_us - st->first_us;
        if (want_enum && pc_det_enum_update(&st->en, c, d->seed, now_us, age, rq,
                                            EVBUF(st, PC_DET_ENUMERATION, now_us), sizeof ev))
            n += report(c, st, PC_DET_ENUMERATION, ev, now_us, &out[n]);
        if (c->volume.enabled &&
            pc_det_volume_update(&st->vo, c, now_us, age, EVBUF(st, PC_DET_VOLUME, now_us),
                                 sizeof ev))
            n += report(c, st, PC_DET_VOLUME, ev, now_us, &out[n]);
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

size_t pc_det_on_response(pc_detector *d, pc_str key, int status, int64_t now_us,
                          pc_det_finding out[PC_DET_KINDS])
{
    const pc_det_config *c = &d->cfg;
    if (!c->probing.enabled) return 0;
    key = usable(key);
    uint64_t h;
    det_shard *s = shard_of(d, key, &h);
    char ev[PC_DET_EVIDENCE_BYTES];
    size_t n = 0;
    pthread_mutex_lock(&s->mu);
    det_entry *e = touch(s, h, key, now_us);
    if (e != NULL && pc_det_probe_update(&e->st.pr, c, now_us, status,
                                         EVBUF(&e->st, PC_DET_PROBING, now_us), sizeof ev))
        n += report(c, &e->st, PC_DET_PROBING, ev, now_us, &out[n]);
    pthread_mutex_unlock(&s->mu);
    return n;
}

size_t pc_det_on_credential(pc_detector *d, pc_str key, pc_det_cred_event what, pc_str value,
                            int64_t now_us, pc_det_finding out[PC_DET_KINDS])
{
    const pc_det_config *c = &d->cfg;
    if (!c->credentials.enabled) return 0;
    key = usable(key);
    uint64_t h;
    det_shard *s = shard_of(d, key, &h);
    char ev[PC_DET_EVIDENCE_BYTES];
    size_t n = 0;
    pthread_mutex_lock(&s->mu);
    det_entry *e = touch(s, h, key, now_us);
    if (e != NULL) {
        int64_t age = now_us - e->st.first_us;
        if (pc_det_cred_update(&e->st.cr, c, d->seed, now_us, age, what, value,
                               EVBUF(&e->st, PC_DET_CREDENTIALS, now_us), sizeof ev))
            n += report(c, &e->st, PC_DET_CREDENTIALS, ev, now_us, &out[n]);
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

void pc_det_forget(pc_detector *d, pc_str key)
{
    key = usable(key);
    uint64_t h;
    det_shard *s = shard_of(d, key, &h);
    pthread_mutex_lock(&s->mu);
    det_entry *e = find(s, h, key);
    if (e != NULL) drop(s, e);
    pthread_mutex_unlock(&s->mu);
}

size_t pc_det_keys(pc_detector *d)
{
    size_t n = 0;
    for (size_t i = 0; i < SHARDS; i++) {
        pthread_mutex_lock(&d->shards[i].mu);
        n += d->shards[i].n;
        pthread_mutex_unlock(&d->shards[i].mu);
    }
    return n;
}

size_t pc_det_state_bytes(void)
{
    return sizeof(det_entry);
}
