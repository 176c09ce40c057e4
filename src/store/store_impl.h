/* Private to src/store: the connection, its cached statements, and the
 * helpers every table file uses. */
#ifndef PC_STORE_STORE_IMPL_H
#define PC_STORE_STORE_IMPL_H

#include "store/store.h"

#include <sqlite3.h>

/* Every statement the store runs. Each is prepared once per connection, on
 * first use, and kept (SQLITE_PREPARE_PERSISTENT): the server asks the
 * store about revocations, and re-parsing SQL per call would be waste. */
typedef enum pc_stmt_id {
    PC_STMT_DATA_VERSION = 0,
    PC_STMT_BEGIN,
    PC_STMT_COMMIT,
    PC_STMT_ROLLBACK,
    PC_STMT_CLIENT_PUT,
    PC_STMT_CLIENT_GET,
    PC_STMT_CLIENT_LIST,
    PC_STMT_CLIENT_DELETE,
    PC_STMT_KEY_PUT,
    PC_STMT_KEY_LIST,
    PC_STMT_KEY_SET_STATE,
    PC_STMT_KEY_PURGE,
    PC_STMT_REVOKE,
    PC_STMT_IS_REVOKED,
    PC_STMT_REVOKE_PURGE,
    PC_STMT_REVOKED_EACH,
    PC_STMT_COUNT,
} pc_stmt_id;

struct pc_store {
    sqlite3 *db;
    char *path;                          /* owned, for messages */
    sqlite3_stmt *stmts[PC_STMT_COUNT];  /* owned; NULL until first use */
    bool in_txn;                         /* between pc_store_begin and commit/rollback */
};

/* "store <path>: <sqlite message>" as PC_ERR_IO. */
pc_result pc_store_fail_db(pc_store *st, const char *what);
/* The cached statement, reset and with no bindings, ready to bind. */
PC_MUST_USE pc_result pc_store_stmt(pc_store *st, pc_stmt_id id, sqlite3_stmt **out);
/* Reset after use so the statement releases its read snapshot at once
 * (WAL: a statement left mid-step pins the snapshot and blocks checkpoints). */
void pc_store_done(sqlite3_stmt *stmt);
/* Step a statement that returns no rows. */
PC_MUST_USE pc_result pc_store_exec(pc_store *st, sqlite3_stmt *stmt, const char *what);
/* Duplicate a text column (NULL column -> ""), or fail on allocation. */
PC_MUST_USE pc_result pc_store_col_text(pc_store *st, sqlite3_stmt *stmt, int col, char **out);

#endif
