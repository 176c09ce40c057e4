/* The client registry: RFC 7591 client metadata, validated, and the parsed
 * form the token endpoint uses on every request.
 *
 * FAPI 2.0 §5.3.2.1: confidential clients only, authenticated by mTLS
 * (RFC 8705 tls_client_auth / self_signed_tls_client_auth) or
 * private_key_jwt (RFC 7523). No client secrets exist in this model. */
#ifndef PC_AS_CLIENTS_H
#define PC_AS_CLIENTS_H

#include "core/config.h"
#include "core/result.h"
#include "jose/jwk.h"
#include "store/store.h"

#include <jansson.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdint.h>

#define PC_CLIENT_MAX_ID 128        /* client_id length */
#define PC_CLIENT_MAX_SCOPES 64     /* scopes a client may hold */
#define PC_CLIENT_MAX_REDIRECTS 16  /* redirect_uris */
#define PC_CLIENT_MAX_METADATA (64u * 1024u) /* metadata JSON bytes */
#define PC_CLIENT_MAX_SCOPE_LEN 256 /* one scope-token */
#define PC_CLIENT_MAX_URI 2048      /* a redirect_uri or jwks_uri */
/* access_token_lifetime (seconds), a portcullis extension: at most a day;
 * the server's as.max_access_token_lifetime caps it further. */
#define PC_CLIENT_MAX_TOKEN_LIFETIME_S 86400

typedef enum pc_client_auth {
    PC_AUTH_NONE = 0,
    PC_AUTH_TLS_CLIENT,        /* tls_client_auth */
    PC_AUTH_SELF_SIGNED_TLS,   /* self_signed_tls_client_auth */
    PC_AUTH_PRIVATE_KEY_JWT,   /* private_key_jwt */
} pc_client_auth;

typedef enum pc_grant {
    PC_GRANT_CLIENT_CREDENTIALS = 1 << 0,
    PC_GRANT_AUTHORIZATION_CODE = 1 << 1,
    PC_GRANT_REFRESH_TOKEN = 1 << 2,
} pc_grant;

/* One registered client, parsed. Immutable once built; shared read-only by
 * all worker threads (the EVP_PKEYs in jwks are only used for verifying). */
typedef struct pc_client {
    char client_id[PC_CLIENT_MAX_ID + 1];
    pc_client_auth auth;
    /* tls_client_auth: exactly one of these is set (RFC 8705 §2.1.2). */
    char *tls_subject_dn;   /* RFC 4514 string */
    X509_NAME *tls_subject_name; /* the same, parsed once at load (owned) */
    char *tls_san_dns, *tls_san_uri, *tls_san_ip, *tls_san_email;
    pc_jwks jwks;           /* private_key_jwt and self_signed_tls_client_auth keys */
    char *jwks_uri;         /* kept, not fetched yet */
    char *scopes[PC_CLIENT_MAX_SCOPES];
    size_t n_scopes;
    unsigned grants;        /* pc_grant bits */
    char *redirect_uris[PC_CLIENT_MAX_REDIRECTS];
    size_t n_redirect_uris;
    bool dpop_bound;        /* dpop_bound_access_tokens */
    uint32_t access_token_lifetime_s; /* 0 = server default; capped by the server max */
    json_t *metadata;       /* the validated RFC 7591 object (for show/list) */
} pc_client;

const char *pc_client_auth_name(pc_client_auth a);
/* Validate RFC 7591 metadata and build a client. Refuses client_secret_*,
 * "none", unknown auth methods, tls_client_auth without exactly one subject
 * field, private_key_jwt/self_signed without jwks (or jwks_uri), unknown
 * grant types, redirect URIs that are not https (loopback http allowed,
 * RFC 8252 §7.3), more than the limits above. Messages name the member. */
PC_MUST_USE pc_result pc_client_from_metadata(const json_t *metadata, pc_client **out);
void pc_client_free(pc_client *c);
/* True if the client may hold this scope. */
bool pc_client_has_scope(const pc_client *c, const char *scope, size_t len);

/* An immutable snapshot of all clients, looked up by id (hash table). */
typedef struct pc_client_set pc_client_set;
PC_MUST_USE pc_result pc_client_set_load(pc_store *st, pc_client_set **out);
const pc_client *pc_client_set_find(const pc_client_set *set, const char *id, size_t len);
size_t pc_client_set_count(const pc_client_set *set);
void pc_client_set_free(pc_client_set *set);

/* Store the clients declared in config (as.clients) with source "config",
 * replacing what was stored under their ids (a CLI client of the same id
 * included: the config wins), and delete "config" clients the config no
 * longer declares, all in one transaction. A seed that does not validate
 * fails the whole call with "as.clients (line N): <member>: ..." so the
 * server refuses to start on a config mistake. Call before
 * pc_client_set_load. */
PC_MUST_USE pc_result pc_client_seed(pc_store *st, const pc_as_client_seed *seeds, size_t n);

#endif
