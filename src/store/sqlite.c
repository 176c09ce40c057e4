/* The store's connection: open, schema migration, transactions, and the
 * statement cache the table files (store_clients.c, store_keys.c,
 * store_revoked.c) share.
 *
 * One pc_store is one SQLite connection opened NOMUTEX: the caller keeps it
 * to one thread at a time (store.h), so SQLite's per-connection mutex would
 * only cost. WAL lets the CLI write while the server reads. */
#include "store/store_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Wait this long for another connection's write lock before giving up
 * (the CLI and the server share the file). */
#define STORE_BUSY_TIMEOUT_MS 5000

/* The schema, one step per version. Step i takes PRAGMA user_version from
 * i to i + 1, inside the same transaction, so a crash mid-migration leaves
 * the old version whole. Never edit a shipped step: add one. STRICT tables
 * make SQLite refuse a value of the wrong type instead of storing it. */
static const char *const migrations[] = {
    /* 0 -> 1: the first schema. */
    "CREATE TABLE clients ("
    "  client_id TEXT PRIMARY KEY,"
    "  metadata TEXT NOT NULL,"
    "  source TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL"
    ") STRICT;"
    "CREATE TABLE signing_keys ("
    "  kid TEXT PRIMARY KEY,"
    "  alg TEXT NOT NULL,"
    "  state INTEGER NOT NULL CHECK (state IN (0, 1, 2)),"
    "  created_at INTEGER NOT NULL,"
    "  activated_at INTEGER NOT NULL DEFAULT 0,"
    "  retire_after INTEGER NOT NULL DEFAULT 0,"
    "  sealed BLOB NOT NULL,"
    "  public_jwk TEXT NOT NULL"
    ") STRICT;"
    "CREATE TABLE revoked ("
    "  jti TEXT PRIMARY KEY,"
    "  exp INTEGER NOT NULL"
    ") STRICT;"
    "CREATE INDEX revoked_exp ON revoked (exp);"
    "PRAGMA user_version = 1;",
};
#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

/* Indexed by pc_stmt_id. Every value reaches SQLite as a bound parameter. */
static const char *const stmt_sql[PC_STMT_COUNT] = {
    [PC_STMT_DATA_VERSION] = "PRAGMA data_version",
    [PC_STMT_BEGIN] = "BEGIN IMMEDIATE",
    [PC_STMT_COMMIT] = "COMMIT",
    [PC_STMT_ROLLBACK] = "ROLLBACK",
    [PC_STMT_CLIENT_PUT] =
        "INSERT INTO clients (client_id, metadata, source, created_at, updated_at)"
        " VALUES (?1, ?2, ?3, ?4, ?4)"
        " ON CONFLICT (client_id) DO UPDATE SET metadata = excluded.metadata,"
        " source = excluded.source, updated_at = excluded.updated_at",
    [PC_STMT_CLIENT_GET] = "SELECT client_id, metadata, source, created_at, updated_at"
                           " FROM clients WHERE client_id = ?1",
    [PC_STMT_CLIENT_LIST] = "SELECT client_id, metadata, source, created_at, updated_at"
                            " FROM clients ORDER BY client_id",
    [PC_STMT_CLIENT_DELETE] = "DELETE FROM clients WHERE client_id = ?1",
    [PC_STMT_KEY_PUT] =
        "INSERT INTO signing_keys (kid, alg, state, created_at, activated_at, retire_after,"
        " sealed, public_jwk) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [PC_STMT_KEY_LIST] = "SELECT kid, alg, state, created_at, activated_at, retire_after,"
                         " sealed, public_jwk FROM signing_keys"
                         " ORDER BY created_at DESC, rowid DESC",
    [PC_STMT_KEY_SET_STATE] = "UPDATE signing_keys SET state = ?2, activated_at = ?3,"
                              " retire_after = ?4 WHERE kid = ?1",
    [PC_STMT_KEY_PURGE] = "DELETE FROM signing_keys WHERE state = ?1"
                          " AND retire_after <= ?2",
    [PC_STMT_REVOKE] = "INSERT INTO revoked (jti, exp) VALUES (?1, ?2)"
                       " ON CONFLICT (jti) DO UPDATE SET exp = max(exp, excluded.exp)",
    [PC_STMT_IS_REVOKED] = "SELECT 1 FROM revoked WHERE jti = ?1",
    [PC_STMT_REVOKE_PURGE] = "DELETE FROM revoked WHERE exp <= ?1",
    [PC_STMT_REVOKED_EACH] = "SELECT jti, exp FROM revoked WHERE exp > ?1",
};

pc_result pc_store_fail_db(pc_store *st, const char *what)
{
    return pc_fail(PC_ERR_IO, "store %s: %s%s%s", st->path, what ? what : "",
                   what ? ": " : "", sqlite3_errmsg(st->db));
}

pc_result pc_store_stmt(pc_store *st, pc_stmt_id id, sqlite3_stmt **out)
{
    if (st->stmts[id] == NULL) {
        int rc = sqlite3_prepare_v3(st->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                    &st->stmts[id], NULL);
        if (rc != SQLITE_OK) return pc_store_fail_db(st, "prepare");
    }
    sqlite3_reset(st->stmts[id]);
    sqlite3_clear_bindings(st->stmts[id]);
    *out = st->stmts[id];
    return PC_OK;
}

void pc_store_done(sqlite3_stmt *stmt)
{
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
}

pc_result pc_store_exec(pc_store *st, sqlite3_stmt *stmt, const char *what)
{
    int rc = sqlite3_step(stmt);
    pc_result r = PC_OK;
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) r = pc_store_fail_db(st, what);
    pc_store_done(stmt);
    return r;
}

pc_result pc_store_col_text(pc_store *st, sqlite3_stmt *stmt, int col, char **out)
{
    const unsigned char *t = sqlite3_column_text(stmt, col);
    *out = strdup(t ? (const char *)t : "");
    PC_ENSURE(*out != NULL, PC_ERR_INTERNAL, "store %s: out of memory", st->path);
    return PC_OK;
}

/* Create the file ourselves so it is born 0600: SQLite would create it
 * with 0644 less the umask, and the store holds client registrations and
 * (sealed) signing keys. SQLite gives the -wal and -shm files the mode of
 * the database file. An existing file that is group/world accessible is
 * tightened rather than refused: nothing in it is plaintext secret, and the
 * operator asked for a store at this path. */
static pc_result create_file(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    PC_ENSURE(fd >= 0, PC_ERR_IO, "store %s: %s", path, strerror(errno));
    struct stat sb;
    pc_result r = PC_OK;
    if (fstat(fd, &sb) != 0)
        r = pc_fail(PC_ERR_IO, "store %s: %s", path, strerror(errno));
    else if (!S_ISREG(sb.st_mode))
        r = pc_fail(PC_ERR_IO, "store %s: not a regular file", path);
    else if ((sb.st_mode & 077) != 0 && fchmod(fd, 0600) != 0)
        r = pc_fail(PC_ERR_IO, "store %s: chmod 600: %s", path, strerror(errno));
    close(fd);
    return r;
}

/* Run one constant statement (a PRAGMA or migration step). */
static pc_result exec_sql(pc_store *st, const char *sql, const char *what)
{
    char *err = NULL;
    if (sqlite3_exec(st->db, sql, NULL, NULL, &err) == SQLITE_OK) return PC_OK;
    pc_result r = pc_fail(PC_ERR_IO, "store %s: %s: %s", st->path, what,
                          err ? err : sqlite3_errmsg(st->db));
    sqlite3_free(err);
    return r;
}

/* journal_mode answers with the mode it ended up in; some file systems
 * (no shared memory) cannot do WAL, and we rely on it for CLI + server. */
static pc_result enable_wal(pc_store *st)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(st->db, "PRAGMA journal_mode=WAL", -1, &s, NULL) != SQLITE_OK)
        return pc_store_fail_db(st, "journal_mode");
    int rc = sqlite3_step(s);
    const unsigned char *mode = rc == SQLITE_ROW ? sqlite3_column_text(s, 0) : NULL;
    pc_result r = PC_OK;
    if (rc != SQLITE_ROW)
        r = pc_store_fail_db(st, "journal_mode");
    else if (mode == NULL || strcmp((const char *)mode, "wal") != 0)
        r = pc_fail(PC_ERR_IO, "store %s: cannot use WAL journal mode (got %s)", st->path,
                    mode ? (const char *)mode : "nothing");
    sqlite3_finalize(s);
    return r;
}

static pc_result configure(pc_store *st)
{
    /* Defensive mode stops SQL from corrupting the file on purpose
     * (writable_schema and friends); no schema may run untrusted functions. */
    sqlite3_db_config(st->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    sqlite3_db_config(st->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
    sqlite3_extended_result_codes(st->db, 1);
    if (sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS) != SQLITE_OK)
        return pc_store_fail_db(st, "busy_timeout");
    PC_GUARD(enable_wal(st));
    /* NORMAL in WAL mode is durable except for the last commits before a
     * power loss, never corrupt; FULL would fsync on every revocation. */
    PC_GUARD(exec_sql(st, "PRAGMA synchronous=NORMAL", "synchronous"));
    return exec_sql(st, "PRAGMA foreign_keys=ON", "foreign_keys");
}

static pc_result read_version(pc_store *st, int *out)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
        return pc_store_fail_db(st, "user_version");
    pc_result r = PC_OK;
    if (sqlite3_step(s) == SQLITE_ROW)
        *out = sqlite3_column_int(s, 0);
    else
        r = pc_store_fail_db(st, "user_version");
    sqlite3_finalize(s);
    return r;
}

static pc_result migrate_locked(pc_store *st)
{
    int version = 0;
    PC_GUARD(read_version(st, &version));
    PC_ENSURE(version >= 0 && version <= SCHEMA_VERSION, PC_ERR_IO,
              "store %s: schema version %d is newer than this portcullis knows (%d); "
              "use a newer portcullis",
              st->path, version, SCHEMA_VERSION);
    for (int v = version; v < SCHEMA_VERSION; v++) PC_GUARD(exec_sql(st, migrations[v], "migrate"));
    return PC_OK;
}

/* The version is read again inside the write transaction, so two
 * processes opening a new store at once cannot both run step 0. A store
 * already at this version takes no write lock (the usual open). */
static pc_result migrate(pc_store *st)
{
    int version = 0;
    PC_GUARD(read_version(st, &version));
    if (version == SCHEMA_VERSION) return PC_OK;
    PC_GUARD(pc_store_begin(st));
    pc_result r = migrate_locked(st);
    if (!pc_ok(r)) {
        pc_store_rollback(st);
        return r;
    }
    return pc_store_commit(st);
}

pc_result pc_store_open(const char *path, pc_store **out)
{
    *out = NULL;
    PC_ENSURE(path != NULL && path[0] != '\0', PC_ERR_USAGE, "store: no path");
    PC_GUARD(create_file(path));
    pc_store *st = calloc(1, sizeof *st);
    PC_ENSURE(st != NULL, PC_ERR_INTERNAL, "store %s: out of memory", path);
    st->path = strdup(path);
    if (st->path == NULL) {
        free(st);
        return pc_fail(PC_ERR_INTERNAL, "store %s: out of memory", path);
    }
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW |
                SQLITE_OPEN_EXRESCODE;
    pc_result r = PC_OK;
    if (sqlite3_open_v2(path, &st->db, flags, NULL) != SQLITE_OK)
        r = st->db ? pc_store_fail_db(st, "open")
                   : pc_fail(PC_ERR_INTERNAL, "store %s: out of memory", path);
    if (pc_ok(r)) r = configure(st);
    if (pc_ok(r)) r = migrate(st);
    if (!pc_ok(r)) {
        pc_store_close(st);
        return r;
    }
    *out = st;
    return PC_OK;
}

void pc_store_close(pc_store *st)
{
    if (st == NULL) return;
    if (st->in_txn) pc_store_rollback(st);
    for (int i = 0; i < PC_STMT_COUNT; i++) sqlite3_finalize(st->stmts[i]);
    sqlite3_close(st->db); /* NULL is a no-op */
    free(st->path);
    free(st);
}

pc_result pc_store_data_version(pc_store *st, int64_t *out)
{
    sqlite3_stmt *s = NULL;
    PC_GUARD(pc_store_stmt(st, PC_STMT_DATA_VERSION, &s));
    pc_result r = PC_OK;
    if (sqlite3_step(s) == SQLITE_ROW)
        *out = sqlite3_column_int64(s, 0);
    else
        r = pc_store_fail_db(st, "data_version");
    pc_store_done(s);
    return r;
}

pc_result pc_store_begin(pc_store *st)
{
    PC_ENSURE(!st->in_txn, PC_ERR_INTERNAL, "store %s: transaction already open", st->path);
    sqlite3_stmt *s = NULL;
    PC_GUARD(pc_store_stmt(st, PC_STMT_BEGIN, &s));
    PC_GUARD(pc_store_exec(st, s, "begin"));
    st->in_txn = true;
    return PC_OK;
}

pc_result pc_store_commit(pc_store *st)
{
    PC_ENSURE(st->in_txn, PC_ERR_INTERNAL, "store %s: no transaction to commit", st->path);
    sqlite3_stmt *s = NULL;
    pc_result r = pc_store_stmt(st, PC_STMT_COMMIT, &s);
    if (pc_ok(r)) r = pc_store_exec(st, s, "commit");
    if (!pc_ok(r)) {
        pc_store_rollback(st);
        return r;
    }
    st->in_txn = false;
    return PC_OK;
}

void pc_store_rollback(pc_store *st)
{
    if (st == NULL || !st->in_txn) return;
    st->in_txn = false;
    /* The failure being rolled back is the one worth reporting; a failed
     * ROLLBACK (nothing open after an automatic rollback) adds nothing. */
    if (sqlite3_get_autocommit(st->db)) return;
    sqlite3_stmt *s = NULL;
    if (pc_ok(pc_store_stmt(st, PC_STMT_ROLLBACK, &s))) {
        sqlite3_step(s);
        pc_store_done(s);
    }
}
