/* The clients table: RFC 7591 metadata as JSON text, keyed by client_id.
 * The store does not validate the metadata; as/clients.c does, before a
 * put and again when it loads (a stored client that no longer validates is
 * skipped there, not here). */
#include "store/store_impl.h"

#include <stdlib.h>
#include <time.h>

void pc_store_client_free(pc_store_client *c)
{
    if (c == NULL) return;
    free(c->client_id);
    free(c->metadata_json);
    free(c->source);
    free(c);
}

pc_result pc_store_client_put(pc_store *st, const char *client_id, const char *metadata_json,
                              const char *source)
{
    PC_ENSURE(client_id && metadata_json && source, PC_ERR_INTERNAL,
              "store %s: client put without id, metadata or source", st->path);
    sqlite3_stmt *s = NULL;
    PC_GUARD(pc_store_stmt(st, PC_STMT_CLIENT_PUT, &s));
    sqlite3_bind_text(s, 1, client_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, metadata_json, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, source, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, (sqlite3_int64)time(NULL));
    return pc_store_exec(st, s, "client put");
}

/* One row of the SELECT in PC_STMT_CLIENT_GET / _LIST. */
static pc_result read_row(pc_store *st, sqlite3_stmt *s, pc_store_client **out)
{
    pc_store_client *c = calloc(1, sizeof *c);
    PC_ENSURE(c != NULL, PC_ERR_INTERNAL, "store %s: out of memory", st->path);
    pc_result r = pc_store_col_text(st, s, 0, &c->client_id);
    if (pc_ok(r)) r = pc_store_col_text(st, s, 1, &c->metadata_json);
    if (pc_ok(r)) r = pc_store_col_text(st, s, 2, &c->source);
    if (!pc_ok(r)) {
        pc_store_client_free(c);
        return r;
    }
    c->created_at = sqlite3_column_int64(s, 3);
    c->updated_at = sqlite3_column_int64(s, 4);
    *out = c;
    return PC_OK;
}

pc_result pc_store_client_get(pc_store *st, const char *client_id, pc_store_client **out)
{
    *out = NULL;
    sqlite3_stmt *s = NULL;
    PC_GUARD(pc_store_stmt(st, PC_STMT_CLIENT_GET, &s));
    sqlite3_bind_text(s, 1, client_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    pc_result r;
    if (rc == SQLITE_ROW)
        r = read_row(st, s, out);
    else if (rc == SQLITE_DONE)
        r = pc_fail(PC_ERR_DENY, "unknown client");
    else
        r = pc_store_fail_db(st, "client get");
    pc_store_done(s);
    return r;
}

static void free_list(pc_store_client **list, size_t n)
{
    for (size_t i = 0; i < n; i++) pc_store_client_free(list[i]);
    free(list);
}

/* Append to a doubling array; the row count is not known up front. */
static pc_result append(pc_store *st, pc_store_client ***list, size_t *n, size_t *cap,
                        pc_store_client *c)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        pc_store_client **grown = realloc(*list, ncap * sizeof *grown);
        PC_ENSURE(grown != NULL, PC_ERR_INTERNAL, "store %s: out of memory", st->path);
        *list = grown;
        *cap = ncap;
    }
    (*list)[(*n)++] = c;
    return PC_OK;
}

pc_result pc_store_client_list(pc_store *st, pc_store_client ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *s = NULL;
    PC_GUARD(pc_store_stmt(st, PC_STMT_CLIENT_LIST, &s));
    pc_store_client **list = NULL;
    size_t count = 0, cap = 0;
    pc_result r = PC_OK;
    int rc = SQLITE_DONE;
    while (pc_ok(r) && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        pc_store_client *c = NULL;
        r = read_row(st, s, &c);
        if (pc_ok(r)) r = append(st, &list, &count, &cap, c);
        if (!pc_ok(r)) pc_store_client_free(c);
    }
    if (pc_ok(r) && rc != SQLITE_DONE) r = pc_store_fail_db(st, "client list");
    pc_store_done(s);
    if (!pc_ok(r)) {
        free_list(list, count);
        return r;
    }
    *out = list;
    *n = count;
    return PC_OK;
}

pc_result pc_store_client_delete(pc_store *st, const char *client_id)
{
    sqlite3_stmt *s = NULL;
    PC_GUARD(pc_store_stmt(st, PC_STMT_CLIENT_DELETE, &s));
    sqlite3_bind_text(s, 1, client_id, -1, SQLITE_STATIC);
    PC_GUARD(pc_store_exec(st, s, "client delete"));
    PC_ENSURE(sqlite3_changes(st->db) > 0, PC_ERR_DENY, "unknown client");
    return PC_OK;
}
