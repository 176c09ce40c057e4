/* The client set: every stored client, validated, in an open-addressing
 * hash table keyed by client_id, built once and then only read (shared by
 * all workers without locks). Also the config seeding that fills the
 * store's "config" clients.
 *
 * The keys of the table come from the operator (config or CLI), never from
 * a peer, so a plain FNV-1a hash is enough: a peer choosing lookup ids
 * cannot lengthen probe chains that registered ids did not already make. */
#include "as/clients.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>

typedef struct slot {
    pc_client *client; /* owned; NULL = empty */
    size_t id_len;
    uint64_t hash;
} slot;

struct pc_client_set {
    slot *slots; /* owned; cap entries */
    size_t cap;  /* a power of two, at least twice count */
    size_t count;
};

static uint64_t fnv1a(const char *s, size_t len)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Parse stored or seeded metadata text into a client. */
static pc_result client_from_text(const char *text, pc_client **out)
{
    *out = NULL;
    size_t len = strlen(text);
    PC_ENSURE(len <= PC_CLIENT_MAX_METADATA, PC_ERR_PROTO,
              "client metadata: larger than %u bytes", PC_CLIENT_MAX_METADATA);
    json_error_t jerr;
    json_t *md = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    PC_ENSURE(md != NULL, PC_ERR_PROTO, "client metadata: invalid JSON at line %d column %d: %s",
              jerr.line, jerr.column, jerr.text);
    pc_result r = pc_client_from_metadata(md, out);
    json_decref(md);
    return r;
}

/* Insert into a table with room (cap > count); duplicates are impossible
 * (client_id is the store's primary key) but are refused anyway. */
static bool insert(pc_client_set *set, pc_client *c)
{
    size_t len = strlen(c->client_id);
    uint64_t h = fnv1a(c->client_id, len);
    for (size_t i = (size_t)h & (set->cap - 1);; i = (i + 1) & (set->cap - 1)) {
        slot *s = &set->slots[i];
        if (s->client == NULL) {
            *s = (slot){c, len, h};
            set->count++;
            return true;
        }
        if (s->hash == h && s->id_len == len &&
            memcmp(s->client->client_id, c->client_id, len) == 0)
            return false;
    }
}

static pc_result alloc_set(size_t n, pc_client_set **out)
{
    pc_client_set *set = calloc(1, sizeof *set);
    PC_ENSURE(set != NULL, PC_ERR_INTERNAL, "clients: out of memory");
    set->cap = 8;
    while (set->cap < 2 * n) set->cap *= 2;
    set->slots = calloc(set->cap, sizeof *set->slots);
    if (set->slots == NULL) {
        free(set);
        return pc_fail(PC_ERR_INTERNAL, "clients: out of memory");
    }
    *out = set;
    return PC_OK;
}

/* One stored row into the set. A row that no longer validates (rules
 * tightened since it was stored, or an edit by hand) is skipped with a
 * warning: one bad registration must not take every client down. */
static pc_result add_row(pc_client_set *set, const pc_store_client *row)
{
    pc_client *c = NULL;
    pc_result r = client_from_text(row->metadata_json, &c);
    if (pc_ok(r) && strcmp(c->client_id, row->client_id) != 0)
        r = pc_fail(PC_ERR_PROTO, "client_id in the metadata differs from the stored id");
    if (!pc_ok(r)) {
        if (r.err == PC_ERR_INTERNAL) return r;
        pc_log_msg(PC_LOG_WARN, "client_skipped", "client %.128s (source %.16s) skipped: %s",
                   row->client_id, row->source, pc_errmsg());
        pc_client_free(c);
        return PC_OK;
    }
    if (!insert(set, c)) {
        pc_log_msg(PC_LOG_WARN, "client_skipped", "client %s skipped: duplicate id",
                   c->client_id);
        pc_client_free(c);
    }
    return PC_OK;
}

pc_result pc_client_set_load(pc_store *st, pc_client_set **out)
{
    *out = NULL;
    pc_store_client **rows = NULL;
    size_t n = 0;
    PC_GUARD(pc_store_client_list(st, &rows, &n));
    pc_client_set *set = NULL;
    pc_result r = alloc_set(n, &set);
    for (size_t i = 0; i < n && pc_ok(r); i++) r = add_row(set, rows[i]);
    for (size_t i = 0; i < n; i++) pc_store_client_free(rows[i]);
    free(rows);
    if (!pc_ok(r)) {
        pc_client_set_free(set);
        return r;
    }
    *out = set;
    return PC_OK;
}

const pc_client *pc_client_set_find(const pc_client_set *set, const char *id, size_t len)
{
    if (set == NULL || id == NULL || len == 0 || len > PC_CLIENT_MAX_ID) return NULL;
    uint64_t h = fnv1a(id, len);
    for (size_t i = (size_t)h & (set->cap - 1);; i = (i + 1) & (set->cap - 1)) {
        const slot *s = &set->slots[i];
        if (s->client == NULL) return NULL;
        if (s->hash == h && s->id_len == len && memcmp(s->client->client_id, id, len) == 0)
            return s->client;
    }
}

size_t pc_client_set_count(const pc_client_set *set)
{
    return set ? set->count : 0;
}

void pc_client_set_free(pc_client_set *set)
{
    if (set == NULL) return;
    for (size_t i = 0; i < set->cap; i++) pc_client_free(set->slots[i].client);
    free(set->slots);
    free(set);
}

/* ---- seeding from config ---------------------------------------------------- */

static bool in_seeds(const pc_as_client_seed *seeds, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (seeds[i].client_id != NULL && strcmp(seeds[i].client_id, id) == 0) return true;
    return false;
}

static pc_result put_seed(pc_store *st, const pc_as_client_seed *seed)
{
    pc_client *c = NULL;
    pc_result r = client_from_text(seed->metadata_json ? seed->metadata_json : "", &c);
    if (!pc_ok(r)) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s", pc_errmsg()); /* pc_fail writes the same buffer */
        return pc_fail(r.err, "as.clients (line %d): %s", seed->line, msg);
    }
    char *text = json_dumps(c->metadata, JSON_COMPACT);
    if (text == NULL) r = pc_fail(PC_ERR_INTERNAL, "clients: out of memory");
    if (pc_ok(r)) r = pc_store_client_put(st, c->client_id, text, "config");
    free(text);
    pc_client_free(c);
    return r;
}

/* Config clients that left the config leave the store; clients added with
 * the CLI are the CLI's to remove. */
static pc_result drop_stale(pc_store *st, const pc_as_client_seed *seeds, size_t n)
{
    pc_store_client **rows = NULL;
    size_t nrows = 0;
    PC_GUARD(pc_store_client_list(st, &rows, &nrows));
    pc_result r = PC_OK;
    for (size_t i = 0; i < nrows && pc_ok(r); i++)
        if (strcmp(rows[i]->source, "config") == 0 && !in_seeds(seeds, n, rows[i]->client_id))
            r = pc_store_client_delete(st, rows[i]->client_id);
    for (size_t i = 0; i < nrows; i++) pc_store_client_free(rows[i]);
    free(rows);
    return r;
}

pc_result pc_client_seed(pc_store *st, const pc_as_client_seed *seeds, size_t n)
{
    PC_GUARD(pc_store_begin(st));
    pc_result r = PC_OK;
    for (size_t i = 0; i < n && pc_ok(r); i++) r = put_seed(st, &seeds[i]);
    if (pc_ok(r)) r = drop_stale(st, seeds, n);
    if (!pc_ok(r)) {
        pc_store_rollback(st);
        return r;
    }
    return pc_store_commit(st);
}
