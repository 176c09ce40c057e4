/* The embedded store: SQLite 3 in WAL mode, one file under
 * server.state_dir (portcullis.db). Durable state only: registered clients,
 * signing keys (private parts encrypted by the caller), revoked token ids.
 *
 * A pc_store is one SQLite connection and is used by one thread at a time.
 * The server opens one for its main thread; the CLI opens its own; WAL lets
 * the CLI write while the server reads, and pc_store_data_version tells the
 * server cheaply that someone else changed something. */
#ifndef PC_STORE_STORE_H
#define PC_STORE_STORE_H

#include "core/result.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pc_store pc_store;

/* Open (creating if needed, file mode 0600) and migrate the schema. */
PC_MUST_USE pc_result pc_store_open(const char *path, pc_store **out);
void pc_store_close(pc_store *st);
/* SQLite's PRAGMA data_version: changes when another connection commits. */
PC_MUST_USE pc_result pc_store_data_version(pc_store *st, int64_t *out);

/* One write transaction around several calls (key rotation). BEGIN
 * IMMEDIATE takes the write lock at once, waiting up to the busy timeout,
 * so a read-then-write sequence cannot fail half-way on a lock upgrade.
 * Not nestable. Rollback is safe to call when no transaction is open. */
PC_MUST_USE pc_result pc_store_begin(pc_store *st);
PC_MUST_USE pc_result pc_store_commit(pc_store *st);
void pc_store_rollback(pc_store *st);

/* ---- clients: RFC 7591 metadata kept as a JSON object text ------------ */

typedef struct pc_store_client {
    char *client_id;
    char *metadata_json; /* the RFC 7591 client metadata, validated by as/clients.c */
    char *source;        /* "config" (seeded at start) or "cli" */
    int64_t created_at;  /* unix seconds */
    int64_t updated_at;
} pc_store_client;

void pc_store_client_free(pc_store_client *c);
/* Insert or replace by client_id. */
PC_MUST_USE pc_result pc_store_client_put(pc_store *st, const char *client_id,
                                          const char *metadata_json, const char *source);
/* PC_ERR_DENY with "unknown client" if absent. */
PC_MUST_USE pc_result pc_store_client_get(pc_store *st, const char *client_id,
                                          pc_store_client **out);
/* All clients ordered by client_id; free each and the array. */
PC_MUST_USE pc_result pc_store_client_list(pc_store *st, pc_store_client ***out, size_t *n);
/* PC_ERR_DENY if absent. */
PC_MUST_USE pc_result pc_store_client_delete(pc_store *st, const char *client_id);

/* ---- signing keys -------------------------------------------------------- */

typedef enum pc_key_state {
    PC_KEY_NEXT = 0, /* published, not yet signing (rotation pre-publishes) */
    PC_KEY_ACTIVE,   /* the one key that signs */
    PC_KEY_RETIRED,  /* published until retire_after, never signs */
} pc_key_state;

typedef struct pc_store_key {
    char kid[64];
    char alg[16];         /* "ES256", "PS256", "EdDSA" */
    pc_key_state state;
    int64_t created_at;
    int64_t activated_at; /* 0 if never */
    int64_t retire_after; /* unpublish after this (unix s); 0 = not retired */
    uint8_t *sealed;      /* encrypted private key (as/keys.c format) */
    size_t sealed_len;
    char *public_jwk;     /* JSON text of the public JWK */
} pc_store_key;

void pc_store_key_free(pc_store_key *k);
/* Insert a new key. Fails if the kid exists: a kid names one key for life,
 * and silently replacing key material under a published kid would break
 * every verifier that cached it. */
PC_MUST_USE pc_result pc_store_key_put(pc_store *st, const pc_store_key *k);
/* All keys, newest first. */
PC_MUST_USE pc_result pc_store_key_list(pc_store *st, pc_store_key ***out, size_t *n);
/* PC_ERR_DENY with "unknown key" if absent. */
PC_MUST_USE pc_result pc_store_key_set_state(pc_store *st, const char *kid, pc_key_state state,
                                             int64_t activated_at, int64_t retire_after);
/* Delete retired keys whose retire_after has passed. */
PC_MUST_USE pc_result pc_store_key_purge(pc_store *st, int64_t now);

/* ---- revoked tokens -------------------------------------------------------- */

/* Record a revoked token id until its expiry (unix s). Idempotent. */
PC_MUST_USE pc_result pc_store_revoke(pc_store *st, const char *jti, int64_t exp);
PC_MUST_USE pc_result pc_store_is_revoked(pc_store *st, const char *jti, bool *out);
/* Delete revocations whose token has expired anyway. */
PC_MUST_USE pc_result pc_store_revoke_purge(pc_store *st, int64_t now);
/* Call fn for each unexpired revoked jti (to fill in-memory sets at start).
 * fn must not call back into this store. */
PC_MUST_USE pc_result pc_store_revoked_each(pc_store *st, int64_t now,
                                            void (*fn)(const char *jti, int64_t exp, void *arg),
                                            void *arg);

#endif
