/* The revoked table: token ids (jti, RFC 7519 §4.1.7) revoked before
 * their expiry (RFC 7009). A row is only useful until the token would have
 * expired anyway, so each carries that exp and is purged after it. */
#include "store/store_impl.h"

pc_result pc_store_revoke(pc_store *st, const char *jti, int64_t exp)
{
    PC_ENSURE(jti != NULL && jti[0] != '\0', PC_ERR_INTERNAL, "store %s: revoke without jti",
              st->path);
    sqlite3_stmt *s = NULL;
    PC_GUARD(pc_store_stmt(st, PC_STMT_REVOKE, &s));
    sqlite3_bind_text(s, 1, jti, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, exp);
    return pc_store_exec(st, s, "revoke");
}

pc_result pc_store_is_revoked(pc_store *st, const char *jti, bool *out)
{
    *out = false;
    sqlite3_stmt *s = NULL;
    PC_GUARD(pc_store_stmt(st, PC_STMT_IS_REVOKED, &s));
    sqlite3_bind_text(s, 1, jti, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    pc_result r = PC_OK;
    if (rc == SQLITE_ROW)
        *out = true;
    else if (rc != SQLITE_DONE)
        r = pc_store_fail_db(st, "is revoked");
    pc_store_done(s);
    return r;
}

/* A token is expired at exp itself (RFC 7519 §4.1.4: "on or after"). */
pc_result pc_store_revoke_purge(pc_store *st, int64_t now)
{
    sqlite3_stmt *s = NULL;
    PC_GUARD(pc_store_stmt(st, PC_STMT_REVOKE_PURGE, &s));
    sqlite3_bind_int64(s, 1, now);
    return pc_store_exec(st, s, "revoke purge");
}

pc_result pc_store_revoked_each(pc_store *st, int64_t now,
                                void (*fn)(const char *jti, int64_t exp, void *arg), void *arg)
{
    sqlite3_stmt *s = NULL;
    PC_GUARD(pc_store_stmt(st, PC_STMT_REVOKED_EACH, &s));
    sqlite3_bind_int64(s, 1, now);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const unsigned char *jti = sqlite3_column_text(s, 0);
        if (jti != NULL) fn((const char *)jti, sqlite3_column_int64(s, 1), arg);
    }
    pc_result r = rc == SQLITE_DONE ? PC_OK : pc_store_fail_db(st, "revoked each");
    pc_store_done(s);
    return r;
}
