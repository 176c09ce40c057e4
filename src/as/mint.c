/* Access tokens: RFC 9068 JWTs, sender-constrained by cnf (RFC 8705 §3.1
 * x5t#S256, RFC 9449 §6.1 jkt). The jti has 128 bits from the CSPRNG
 * (FAPI 2.0 §5.4: at least 128 bits of entropy in every token). */
#include "as/as_internal.h"
#include "jose/b64url.h"
#include "jose/jsonw.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* The claims, in this order: iss, sub, aud, exp, iat, jti, client_id,
 * cnf (bound tokens only), scope (when not empty). The text is what
 * json_dumps(JSON_COMPACT) made of the same members before (jose/jsonw.h),
 * written directly: the token endpoint builds one per request. */
static pc_result claims_text(const pc_as *as, const pc_as_grant *g, int64_t now, const char *jti,
                             pc_jsonw *w)
{
    const char *cid = g->client->client_id;
    PC_ENSURE(as->issuer && cid && g->aud, PC_ERR_INTERNAL, "building a token: a claim is missing");
    pc_jsonw_lit(w, "{\"iss\":");
    pc_jsonw_string(w, as->issuer, strlen(as->issuer));
    pc_jsonw_lit(w, ",\"sub\":");
    pc_jsonw_string(w, cid, strlen(cid));
    pc_jsonw_lit(w, ",\"aud\":");
    pc_jsonw_string(w, g->aud, strlen(g->aud));
    pc_jsonw_lit(w, ",\"exp\":");
    pc_jsonw_int(w, now + (int64_t)g->lifetime_s);
    pc_jsonw_lit(w, ",\"iat\":");
    pc_jsonw_int(w, now);
    pc_jsonw_lit(w, ",\"jti\":");
    pc_jsonw_string(w, jti, strlen(jti));
    pc_jsonw_lit(w, ",\"client_id\":");
    pc_jsonw_string(w, cid, strlen(cid));
    /* cnf only for a bound token (RFC 7800 §3): an empty one would read as
     * "bound" to a resource server with no key to check. */
    if (g->cnf_jkt || g->cnf_x5t) {
        pc_jsonw_lit(w, ",\"cnf\":{");
        if (g->cnf_jkt) {
            pc_jsonw_lit(w, "\"jkt\":");
            pc_jsonw_string(w, g->cnf_jkt, strlen(g->cnf_jkt));
        }
        if (g->cnf_x5t) {
            if (g->cnf_jkt) pc_jsonw_lit(w, ",");
            pc_jsonw_lit(w, "\"x5t#S256\":");
            pc_jsonw_string(w, g->cnf_x5t, strlen(g->cnf_x5t));
        }
        pc_jsonw_lit(w, "}");
    }
    if (g->scope && g->scope[0]) {
        pc_jsonw_lit(w, ",\"scope\":");
        pc_jsonw_string(w, g->scope, strlen(g->scope));
    }
    pc_jsonw_lit(w, "}");
    PC_ENSURE(w->ok, PC_ERR_INTERNAL, "building a token: a claim is not valid UTF-8");
    return PC_OK;
}

/* Room claims_text needs at most. */
static size_t claims_cap(const pc_as *as, const pc_as_grant *g, const char *jti)
{
    const char *s[] = {as->issuer, g->client->client_id, g->aud, jti, g->client->client_id,
                       g->cnf_jkt, g->cnf_x5t, g->scope};
    size_t cap = 160; /* member names, punctuation, two integers, the NUL */
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
        if (s[i]) cap += PC_JSONW_STRING_MAX(strlen(s[i]));
    return cap;
}

/* jti randomness from the CSPRNG in batches. A RAND_bytes call costs
 * about 1.5 µs whatever its size (the DRBG lock, a fork check that is a
 * getpid system call, the generate), so each thread draws JTI_BATCH bytes
 * at once and hands them out, wiping each share as it goes. The bytes are
 * RAND_bytes output all the same; a jti is no secret (it is in the token).
 * A forked child must not hand out its parent's bytes again: the atfork
 * handler empties the buffer of the thread that forked, the only thread a
 * child has. */
#define JTI_BYTES 16
#define JTI_BATCH (32 * JTI_BYTES)

static _Thread_local struct {
    uint8_t b[JTI_BATCH];
    size_t left; /* unused bytes, at the end of b */
} jti_pool;
static pthread_once_t jti_once = PTHREAD_ONCE_INIT;

static void jti_pool_forget(void)
{
    OPENSSL_cleanse(jti_pool.b, sizeof jti_pool.b);
    jti_pool.left = 0;
}

static void jti_pool_init(void) { (void)pthread_atfork(NULL, NULL, jti_pool_forget); }

static pc_result jti_random(uint8_t out[JTI_BYTES])
{
    PC_ENSURE(pthread_once(&jti_once, jti_pool_init) == 0, PC_ERR_INTERNAL, "pthread_once");
    if (jti_pool.left < JTI_BYTES) {
        PC_GUARD_OSSL(RAND_bytes(jti_pool.b, sizeof jti_pool.b), "RAND_bytes");
        jti_pool.left = sizeof jti_pool.b;
    }
    uint8_t *p = jti_pool.b + sizeof jti_pool.b - jti_pool.left;
    memcpy(out, p, JTI_BYTES);
    OPENSSL_cleanse(p, JTI_BYTES);
    jti_pool.left -= JTI_BYTES;
    return PC_OK;
}

pc_result pc_as_mint(pc_as *as, const pc_as_grant *g, int64_t now, char **token,
                     size_t *token_len, char jti_out[32])
{
    uint8_t rnd[JTI_BYTES];
    size_t jl;
    PC_GUARD(jti_random(rnd));
    PC_GUARD(pc_b64url_encode(rnd, sizeof rnd, jti_out, 32, &jl));
    char stack[2048];
    size_t cap = claims_cap(as, g, jti_out);
    char *buf = cap <= sizeof stack ? stack : malloc(cap);
    PC_ENSURE(buf != NULL, PC_ERR_INTERNAL, "out of memory building a token");
    pc_jsonw w;
    pc_jsonw_init(&w, buf, cap);
    pc_result r = claims_text(as, g, now, jti_out, &w);
    if (pc_ok(r)) r = pc_keyring_sign_access_token(as->keys, buf, w.len, token, token_len);
    if (buf != stack) free(buf);
    return r;
}

pc_as_token_state pc_as_check_token(pc_as *as, pc_str token, int64_t now, json_t **claims)
{
    *claims = NULL;
    if (token.len == 0 || token.len > PC_AS_MAX_TOKEN_PARAM) return PC_TOKEN_INVALID;
    pc_jws jws;
    if (!pc_ok(pc_jws_parse(token, &jws))) return PC_TOKEN_INVALID;
    pc_as_token_state st = PC_TOKEN_INVALID;
    pc_jws_alg alg = PC_ALG_UNKNOWN;
    EVP_PKEY *key = jws.kid ? pc_keyring_public(as->keys, jws.kid, &alg) : NULL;
    const json_t *iss = json_object_get(jws.payload, "iss");
    const json_t *exp = json_object_get(jws.payload, "exp");
    const json_t *jti = json_object_get(jws.payload, "jti");
    /* typ at+jwt keeps other JWTs we sign (future ID tokens, JARM) from
     * passing as access tokens (RFC 9068 §4). */
    if (key && jws.alg == alg && jws.typ && strcmp(jws.typ, "at+jwt") == 0 &&
        pc_ok(pc_jws_verify(&jws, key, (unsigned)alg)) && json_is_string(iss) &&
        strcmp(json_string_value(iss), as->issuer) == 0 && json_is_integer(exp) &&
        json_is_string(jti)) {
        if (json_integer_value(exp) <= now)
            st = PC_TOKEN_EXPIRED;
        else if (pc_replay_peek(as->sh->revoked, "", 0, json_string_value(jti),
                                json_string_length(jti), now) ||
                 pc_as_client_cut_off(as->sh, jws.payload))
            st = PC_TOKEN_REVOKED;
        else
            st = PC_TOKEN_ACTIVE;
        *claims = json_incref(jws.payload);
    }
    pc_jws_clear(&jws);
    return st;
}

pc_as_token_state pc_as_verify_token(void *as_state, pc_str token, int64_t now, json_t **claims)
{
    return pc_as_check_token(as_state, token, now, claims);
}

bool pc_as_token_revoked(void *as_state, pc_str jti, int64_t now)
{
    pc_as *as = as_state;
    return pc_replay_peek(as->sh->revoked, "", 0, jti.ptr, jti.len, now);
}
