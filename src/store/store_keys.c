/* The signing_keys table. The private key arrives sealed (as/keys.c); the
 * store never sees key material in the clear. */
#include "store/store_impl.h"

#include <stdlib.h>
#include <string.h>

void pc_store_key_free(pc_store_key *k)
{
    if (k == NULL) return;
    free(k->sealed);
    free(k->public_jwk);
    free(k);
}

pc_result pc_store_key_put(pc_store *st, const pc_store_key *k)
{
    PC_ENSURE(k->kid[0] != '\0' && k->sealed != NULL && k->sealed_len > 0 && k->public_jwk,
              PC_ERR_INTERNAL, "store %s: key put without kid, sealed key or public JWK",
              st->path);
    PC_ENSURE(k->state >= PC_KEY_NEXT && k->state <= PC_KEY_RETIRED, PC_ERR_INTERNAL,
              "store %s: key %s: bad state %d", st->path, k->kid, (int)k->state);
    sqlite3_stmt *s = NULL;
    PC_GUARD(pc_store_stmt(st, PC_STMT_KEY_PUT, &s));
    sqlite3_bind_text(s, 1, k->kid, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, k->alg, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 3, (int)k->state);
    sqlite3_bind_int64(s, 4, k->created_at);
    sqlite3_bind_int64(s, 5, k->activated_at);
    sqlite3_bind_int64(s, 6, k->retire_after);
    sqlite3_bind_blob64(s, 7, k->sealed, k->sealed_len, SQLITE_STATIC);
    sqlite3_bind_text(s, 8, k->public_jwk, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    pc_store_done(s);
    if (rc == SQLITE_DONE) return PC_OK;
    if ((rc & 0xff) == SQLITE_CONSTRAINT)
        return pc_fail(PC_ERR_IO, "store %s: key %s already exists", st->path, k->kid);
    return pc_store_fail_db(st, "key put");
}

/* Copy a text column into a fixed field; false if absent or too long. */
static bool copy_field(sqlite3_stmt *s, int col, char *dst, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    if (t == NULL || strlen((const char *)t) >= cap) return false;
    memcpy(dst, t, strlen((const char *)t) + 1);
    return true;
}

static pc_result read_key(pc_store *st, sqlite3_stmt *s, pc_store_key **out)
{
    pc_store_key *k = calloc(1, sizeof *k);
    PC_ENSURE(k != NULL, PC_ERR_INTERNAL, "store %s: out of memory", st->path);
    int state = sqlite3_column_int(s, 2);
    if (!copy_field(s, 0, k->kid, sizeof k->kid) || !copy_field(s, 1, k->alg, sizeof k->alg) ||
        state < PC_KEY_NEXT || state > PC_KEY_RETIRED) {
        pc_store_key_free(k);
        return pc_fail(PC_ERR_IO, "store %s: malformed signing key row", st->path);
    }
    k->state = (pc_key_state)state;
    k->created_at = sqlite3_column_int64(s, 3);
    k->activated_at = sqlite3_column_int64(s, 4);
    k->retire_after = sqlite3_column_int64(s, 5);
    /* Read the blob before its length (sqlite3_column_blob docs). */
    const void *blob = sqlite3_column_blob(s, 6);
    int blen = sqlite3_column_bytes(s, 6);
    if (blob != NULL && blen > 0) {
        k->sealed = malloc((size_t)blen);
        if (k->sealed != NULL) memcpy(k->sealed, blob, (size_t)blen);
        k->sealed_len = (size_t)blen;
    }
    pc_result r = PC_OK;
    if (blen > 0 && k->sealed == NULL)
        r = pc_fail(PC_ERR_INTERNAL, "store %s: out of memory", st->path);
    if (pc_ok(r)) r = pc_store_col_text(st, s, 7, &k->public_jwk);
    if (!pc_ok(r)) {
        pc_store_key_free(k);
        return r;
    }
    *out = k;
    return PC_OK;
}

static pc_result append(pc_store *st, pc_store_key ***list, size_t *n, size_t *cap,
                        pc_store_key *k)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        pc_store_key **grown = realloc(*list, ncap * sizeof *grown);
        PC_ENSURE(grown != NULL, PC_ERR_INTERNAL, "store %s: out of memory", st->path);
        *list = grown;
        *cap = ncap;
    }
    (*list)[(*n)++] = k;
    return PC_OK;
}

pc_result pc_store_key_list(pc_store *st, pc_store_key ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *s = NULL;
    PC_GUARD(pc_store_stmt(st, PC_STMT_KEY_LIST, &s));
    pc_store_key **list = NULL;
    size_t count = 0, cap = 0;
    pc_result r = PC_OK;
    int rc = SQLITE_DONE;
    while (pc_ok(r) && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        pc_store_key *k = NULL;
        r = read_key(st, s, &k);
        if (pc_ok(r)) r = append(st, &list, &count, &cap, k);
        if (!pc_ok(r)) pc_store_key_free(k);
    }
    if (pc_ok(r) && rc != SQLITE_DONE) r = pc_store_fail_db(st, "key list");
    pc_store_done(s);
    if (!pc_ok(r)) {
        for (size_t i = 0; i < count; i++) pc_store_key_free(list[i]);
        free(list);
        return r;
    }
    *out = list;
    *n = count;
    return PC_OK;
}

pc_result pc_store_key_set_state(pc_store *st, const char *kid, pc_key_state state,
                                 int64_t activated_at, int64_t retire_after)
{
    PC_ENSURE(state >= PC_KEY_NEXT && state <= PC_KEY_RETIRED, PC_ERR_INTERNAL,
              "store %s: key %s: bad state %d", st->path, kid, (int)state);
    sqlite3_stmt *s = NULL;
    PC_GUARD(pc_store_stmt(st, PC_STMT_KEY_SET_STATE, &s));
    sqlite3_bind_text(s, 1, kid, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, (int)state);
    sqlite3_bind_int64(s, 3, activated_at);
    sqlite3_bind_int64(s, 4, retire_after);
    PC_GUARD(pc_store_exec(st, s, "key set state"));
    PC_ENSURE(sqlite3_changes(st->db) > 0, PC_ERR_DENY, "unknown key");
    return PC_OK;
}

pc_result pc_store_key_purge(pc_store *st, int64_t now)
{
    sqlite3_stmt *s = NULL;
    PC_GUARD(pc_store_stmt(st, PC_STMT_KEY_PURGE, &s));
    sqlite3_bind_int(s, 1, (int)PC_KEY_RETIRED);
    sqlite3_bind_int64(s, 2, now);
    return pc_store_exec(st, s, "key purge");
}
