/* Private to src/as: the module's state and the pieces its endpoints
 * share. */
#ifndef PC_AS_INTERNAL_H
#define PC_AS_INTERNAL_H

#include "as/as.h"
#include "as/clients.h"
#include "as/form.h"
#include "as/keys.h"
#include "core/config.h"
#include "core/replay.h"
#include "jose/dpop.h"
#include "net/server.h"
#include "store/store.h"

#include <pthread.h>
#include <stdatomic.h>

/* Longest access token, assertion or token parameter we look at. */
#define PC_AS_MAX_TOKEN_PARAM 8192
/* Longest client assertion jti we accept. */
#define PC_AS_MAX_JTI 256
/* Hard ceiling on any access token lifetime, whatever the config says. */
#define PC_AS_MAX_TOKEN_LIFETIME_S 86400u
/* Clients whose tokens were all revoked at once (revoke_client.c). */
#define PC_AS_MAX_CUTOFFS 1024u

typedef struct pc_as_cutoff {
    char client_id[PC_CLIENT_MAX_ID + 1]; /* "" = free */
    int64_t at;                           /* tokens issued at or before: revoked */
} pc_as_cutoff;

/* Kept across reloads: a SIGHUP must not reopen a replay window, forget a
 * revocation or reset a brute-force counter. */
typedef struct pc_as_shared {
    pc_replay *assertion_jti; /* namespace: client_id */
    pc_replay *dpop_jti;      /* namespace: proof key thumbprint (jkt) */
    pc_replay *revoked;       /* namespace: "" ; id: token jti; until token exp */
    pthread_mutex_t cutoff_mu;
    _Atomic size_t n_cutoffs;  /* 0: the common case, no lock taken */
    pc_as_cutoff cutoffs[PC_AS_MAX_CUTOFFS];
    pc_dpop_noncer noncer;    /* server DPoP nonces, when as.dpop.nonce */
    pthread_mutex_t store_mu; /* the store connection is used by one thread at a time */
    pc_store *store;
} pc_as_shared;

/* Built for each runtime; read-only while serving. */
typedef struct pc_abuse pc_abuse;

typedef struct pc_as {
    const pc_config *cfg;     /* borrowed: the runtime outlives this */
    const pc_as_config *ac;
    pc_as_shared *sh;
    pc_abuse *abuse;          /* rate limits, failure limits, quarantines, detectors */
    pc_client_set *clients;
    pc_keyring *keys;
    char *issuer;             /* as.issuer */
    char *token_url;          /* issuer + "/token" */
    char *metadata_json;      /* RFC 8414 document */
    size_t metadata_len;
    unsigned auth_methods;    /* bits of 1 << pc_client_auth enabled on this listener */
    uint32_t lifetime_s, max_lifetime_s, assertion_max_s, skew_s, dpop_max_age_s;
} pc_as;

/* oauth_error.c: RFC 6749 §5.2 error responses, always no-store. */
void pc_as_error(pc_request *r, int status, const char *error, const char *fmt, ...)
    PC_PRINTF(4, 5);
/* Successful JSON with no-store (RFC 6749 §5.1). */
void pc_as_json(pc_request *r, int status, const char *json, size_t len);
int64_t pc_as_now(void);

/* client_auth.c: authenticate the caller of /token, /introspect, /revoke.
 * On failure it has already answered (401 invalid_client, 429, 400) and
 * counted the failure. */
typedef struct pc_as_authn {
    const pc_client *client;
    pc_client_auth method;
} pc_as_authn;
PC_MUST_USE bool pc_as_authenticate(pc_as *as, pc_request *r, const pc_form *form,
                                    pc_as_authn *out);

/* Parse the body of a POST to an AS endpoint as a form, answering 400 on
 * a wrong content type or a malformed form. */
PC_MUST_USE bool pc_as_read_form(pc_request *r, pc_form *form);

/* mint.c: sign an RFC 9068 access token. */
typedef struct pc_as_grant {
    const pc_client *client;
    const char *scope;        /* space-separated, granted */
    const char *aud;
    const char *cnf_x5t;      /* set for mTLS binding */
    const char *cnf_jkt;      /* set for DPoP binding */
    uint32_t lifetime_s;
} pc_as_grant;
PC_MUST_USE pc_result pc_as_mint(pc_as *as, const pc_as_grant *g, int64_t now, char **token,
                                 size_t *token_len, char jti_out[32]);

/* Verify one of our own access tokens (introspection, revocation, the
 * in-process gateway): signature by a published key, typ at+jwt, iss,
 * exp. On success *claims is the payload (caller decrefs). */
pc_as_token_state pc_as_check_token(pc_as *as, pc_str token, int64_t now, json_t **claims);

/* revoke_client.c: has the token's client had every token revoked since
 * this one was issued? */
bool pc_as_client_cut_off(pc_as_shared *sh, const json_t *claims);

/* Endpoints. */
void pc_as_token_endpoint(pc_request *r, void *data);
void pc_as_introspect_endpoint(pc_request *r, void *data);
void pc_as_revoke_endpoint(pc_request *r, void *data);
void pc_as_metadata_endpoint(pc_request *r, void *data);
void pc_as_jwks_endpoint(pc_request *r, void *data);
PC_MUST_USE pc_result pc_as_build_metadata(pc_as *as);

#endif
