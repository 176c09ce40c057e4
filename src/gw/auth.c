/* The token checks of a gateway route, in the order FAPI 2.0 §5.3.4 and
 * the RFCs imply:
 *
 *   credentials only in the Authorization header      (§5.3.4-1, -2)
 *   token: signature, typ, iss, exp, revocation       (§5.3.4-3; as.h)
 *          nbf, aud = the route's audience            (RFC 9068 §4, RFC 8707)
 *   binding: cnf.x5t#S256 = this certificate          (RFC 8705 §3)
 *            cnf.jkt = a fresh DPoP proof's key       (RFC 9449 §7)
 *   scope ⊇ the route's scopes                         (§5.3.4-4)
 *
 * The claims come from the token itself (a JWT: the in-process AS, or a
 * remote AS's keys) or, for an opaque token or an `introspection: always`
 * route with a remote AS, from the AS's RFC 7662 answer (introspect.c,
 * which continues here in pc_gw_claims_then_proxy once it has the answer);
 * the checks after that are the same.
 *
 * Refusals are 401 with WWW-Authenticate (RFC 6750 §3, RFC 9449 §7.1) or
 * 403 insufficient_scope naming the scope; they never carry upstream
 * content (the upstream is not called). Logs carry the token's jti when
 * it has one (an opaque token's answer may not), never the token. Binding
 * is in binding.c, the refusals in challenge.c. */
#include "as/as.h"
#include "gw/internal.h"
#include "gw/jwks.h"
#include "gw/tokcache.h"
#include "jose/jws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *pc_gw_claim_str(const json_t *claims, const char *name)
{
    const json_t *v = json_object_get(claims, name);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static bool aud_contains(const json_t *aud, const char *want)
{
    if (json_is_string(aud)) return strcmp(json_string_value(aud), want) == 0;
    size_t i;
    const json_t *v;
    json_array_foreach(aud, i, v) if (json_is_string(v) && strcmp(json_string_value(v), want) == 0) return true;
    return false;
}

static bool read_credentials(pc_request *r, const pc_gw_route *rt, const char *iid, pc_gw_creds *c)
{
    const pc_http_req *h = pc_request_http(r);
    pc_gw_challenge ch = rt->rc->auth.binding == PC_GW_BIND_MTLS   ? PC_GW_CH_BEARER
                         : rt->rc->auth.binding == PC_GW_BIND_DPOP ? PC_GW_CH_DPOP
                                                                   : PC_GW_CH_BOTH;
    size_t count = 0;
    pc_str value = PC_STR_NULL;
    for (size_t i = 0; i < h->n_headers; i++)
        if (pc_str_eq_lit_ci(h->headers[i].name, "authorization")) {
            value = h->headers[i].value;
            count++;
        }
    if (count == 0) {
        /* RFC 6750 §3.1: no credentials, no error code. */
        pc_gw_refusal f = {401, ch, NULL, "an access token is required", NULL, false};
        return pc_gw_refuse(r, rt, &f, iid, NULL);
    }
    if (count > 1) {
        pc_gw_refusal f = {400, ch, "invalid_request", "more than one Authorization header", NULL, false};
        return pc_gw_refuse(r, rt, &f, iid, NULL);
    }
    if (!pc_ok(pc_gw_parse_authorization(value, &c->scheme, &c->token))) {
        pc_gw_refusal f = {401, ch, "invalid_token", pc_errmsg(), NULL, false};
        return pc_gw_refuse(r, rt, &f, iid, NULL);
    }
    return true;
}

/* A token of the remote AS (gateway.remote_as), checked as RFC 9068 §4
 * says: the key named by kid in the AS's JWKS (an unknown kid asks for a
 * refetch, rate limited), an allowed alg that fits the key, typ at+jwt,
 * iss, exp. Revocation of a remote token is not visible here.
 *
 * *keys_coming (when wait is given): the kid is unknown, the token is
 * otherwise one of the AS's (typ, iss), and a fetch of the keys is
 * running; the caller may wait for it to end (fetches_ended passes
 * *wait->ended_before) and look again. */
typedef struct key_wait {
    bool keys_coming;
    uint64_t ended_before;
} key_wait;

static pc_as_token_state remote_verify(const pc_gw *gw, pc_str token, int64_t now, json_t **claims,
                                       key_wait *wait)
{
    *claims = NULL;
    pc_jws jws;
    if (token.len > PC_JWS_MAX_LEN || !pc_ok(pc_jws_parse(token, &jws))) return PC_TOKEN_INVALID;
    pc_gw_keyset *ks = pc_gw_jwks_acquire(gw->sh->jwks);
    const pc_jwk *k = ks && jws.kid ? pc_jwks_find(&ks->set, jws.kid) : NULL;
    pc_as_token_state st = PC_TOKEN_INVALID;
    const json_t *iss = json_object_get(jws.payload, "iss");
    const json_t *exp = json_object_get(jws.payload, "exp");
    if (k == NULL && jws.kid != NULL) {
        uint64_t ended_before = 0;
        bool running = pc_gw_jwks_want_refresh(gw->sh->jwks, &ended_before);
        if (wait != NULL && running && jws.typ && strcmp(jws.typ, "at+jwt") == 0 &&
            json_is_string(iss) && strcmp(json_string_value(iss), pc_gw_jwks_issuer(gw->sh->jwks)) == 0) {
            wait->keys_coming = true;
            wait->ended_before = ended_before;
        }
    }
    if (k && (k->alg[0] == '\0' || strcmp(k->alg, pc_jws_alg_name(jws.alg)) == 0) &&
        jws.typ && strcmp(jws.typ, "at+jwt") == 0 && pc_ok(pc_jws_verify(&jws, k->pkey, PC_ALGS_FAPI)) &&
        json_is_string(iss) && strcmp(json_string_value(iss), pc_gw_jwks_issuer(gw->sh->jwks)) == 0 &&
        json_is_integer(exp) && json_is_string(json_object_get(jws.payload, "jti"))) {
        st = json_integer_value(exp) <= now ? PC_TOKEN_EXPIRED : PC_TOKEN_ACTIVE;
        *claims = json_incref(jws.payload);
    }
    pc_gw_keyset_release(ks);
    pc_jws_clear(&jws);
    return st;
}

static bool cache_get(const pc_gw *gw, const pc_gw_creds *c, int64_t now, json_t **claims)
{
    *claims = NULL;
    return c->hashed && pc_gw_tokcache_get_key(gw->generation, c->token_sha256, now, claims);
}

static void cache_put(const pc_gw *gw, const pc_gw_creds *c, json_t *claims)
{
    const json_t *exp = json_object_get(claims, "exp");
    if (c->hashed && json_is_integer(exp))
        pc_gw_tokcache_put_key(gw->generation, c->token_sha256, (int64_t)json_integer_value(exp),
                               claims);
}

/* The AS's verdict on the token, from this worker's cache when the token
 * was verified before. A hit skips only the signature work: revocation is
 * asked of the AS on every request, so it takes effect at once
 * (FAPI 2.0 §5.3.4-3, FAPI-NOTES pain point 13). */
static pc_as_token_state lookup_token(const pc_gw *gw, const pc_gw_creds *c, int64_t now,
                                      json_t **claims, key_wait *wait)
{
    pc_str token = c->token;
    if (gw->as == NULL) {
        if (cache_get(gw, c, now, claims)) return PC_TOKEN_ACTIVE;
        pc_as_token_state st = remote_verify(gw, token, now, claims, wait);
        if (st == PC_TOKEN_ACTIVE) cache_put(gw, c, *claims);
        return st;
    }
    if (cache_get(gw, c, now, claims)) {
        const json_t *jti = json_object_get(*claims, "jti");
        if (!json_is_string(jti)) return PC_TOKEN_INVALID;
        pc_str j = {json_string_value(jti), json_string_length(jti)};
        return pc_as_token_revoked(gw->as, j, now) || pc_as_token_client_revoked(gw->as, *claims)
                   ? PC_TOKEN_REVOKED
                   : PC_TOKEN_ACTIVE;
    }
    pc_as_token_state st = pc_as_verify_token(gw->as, token, now, claims);
    if (st == PC_TOKEN_ACTIVE) cache_put(gw, c, *claims);
    return st;
}

/* The refusal's text for a token state; NULL for an active token. */
static const char *token_state_why(pc_as_token_state st)
{
    switch (st) {
    case PC_TOKEN_ACTIVE: return NULL;
    case PC_TOKEN_EXPIRED: return "the access token has expired";
    case PC_TOKEN_REVOKED: return "the access token has been revoked";
    default: return "the access token is not valid";
    }
}

/* The claims of an active token (from the AS, its keys or introspection)
 * against the route: nbf with skew, aud holds the route's audience. */
static bool check_claims(pc_request *r, const pc_gw_route *rt, const char *iid, const pc_gw_creds *c,
                         const char *why, pc_gw_identity *id)
{
    pc_gw_challenge ch = c->scheme == PC_GW_SCHEME_DPOP ? PC_GW_CH_DPOP : PC_GW_CH_BEARER;
    int64_t now = pc_gw_now();
    const json_t *claims = id->claims;
    const json_t *nbf = json_object_get(claims, "nbf");
    uint32_t skew = rt->gw->cfg->gw.dpop_skew_ms / 1000u;
    if (why == NULL && nbf != NULL && (!json_is_integer(nbf) || json_integer_value(nbf) > now + skew))
        why = "the access token is not valid yet";
    if (why == NULL && !aud_contains(json_object_get(claims, "aud"), rt->rc->auth.audience))
        why = "the access token is not meant for this resource (aud)";
    id->jti = pc_gw_claim_str(claims, "jti");
    if (why != NULL) {
        pc_gw_refusal f = {401, ch, "invalid_token", why, NULL, false};
        return pc_gw_refuse(r, rt, &f, iid, id->jti);
    }
    id->client_id = pc_gw_claim_str(claims, "client_id");
    id->sub = pc_gw_claim_str(claims, "sub");
    id->scope = pc_gw_claim_str(claims, "scope");
    return true;
}

static bool check_scope(pc_request *r, const pc_gw_route *rt, const char *iid, const pc_gw_creds *c,
                        const pc_gw_identity *id)
{
    const pc_route_auth *a = &rt->rc->auth;
    const char *missing = NULL;
    if (pc_gw_scope_covers(pc_str_c(id->scope), a->scopes, a->n_scopes, &missing)) return true;
    char need[512];
    size_t o = 0;
    need[0] = '\0';
    for (size_t i = 0; i < a->n_scopes; i++) {
        int n = snprintf(need + o, sizeof need - o, "%s%s", i ? " " : "", a->scopes[i]);
        if (n < 0 || (size_t)n >= sizeof need - o) break;
        o += (size_t)n;
    }
    char desc[160];
    snprintf(desc, sizeof desc, "the access token lacks the scope %s", missing);
    /* RFC 6750 §3.1: 403 insufficient_scope, naming the scope needed. */
    pc_gw_refusal f = {403, c->scheme == PC_GW_SCHEME_DPOP ? PC_GW_CH_DPOP : PC_GW_CH_BEARER, "insufficient_scope",
                 desc, need, false};
    pc_gw_observe_status(rt, id, 403); /* probing: reaching for what it may not have */
    return pc_gw_refuse(r, rt, &f, iid, id->jti);
}

void pc_gw_claims_then_proxy(pc_request *r, const pc_gw_route *rt, const char *iid,
                             const pc_gw_creds *c, json_t *claims, const char *why, bool confirm)
{
    pc_gw_identity id;
    memset(&id, 0, sizeof id);
    id.claims = claims;
    if (!check_claims(r, rt, iid, c, why, &id) || !pc_gw_check_binding(r, rt, iid, c, &id) ||
        !check_scope(r, rt, iid, c, &id)) {
        pc_gw_identity_clear(&id);
        return;
    }
    id.token = c->token;
    id.token_hashed = c->hashed;
    memcpy(id.token_sha256, c->token_sha256, sizeof id.token_sha256);
    if (pc_gw_guard(r, rt, &id, iid)) {
        if (confirm) pc_gw_introspect_then_proxy(r, rt, &id, iid);
        else pc_gw_exchange_start(r, rt, &id, iid);
    }
    pc_gw_identity_clear(&id);
}

/* A JWT, verified here. may_wait: a token whose kid the remote AS's keys
 * lack while a fetch of them runs (key rotation) waits for the fetch
 * (keywait.c) instead of being refused, then comes back through
 * pc_gw_keys_fetched, which does not wait again. */
static void verify_then_proxy(pc_request *r, const pc_gw_route *rt, const char *iid,
                              const pc_gw_creds *c, bool may_wait)
{
    const pc_gw *gw = rt->gw;
    json_t *claims = NULL;
    key_wait wait = {false, 0};
    pc_as_token_state st = lookup_token(gw, c, pc_gw_now(), &claims, may_wait ? &wait : NULL);
    if (wait.keys_coming && pc_gw_wait_for_keys(r, rt, iid, c, wait.ended_before)) {
        json_decref(claims);
        return;
    }
    /* A JWT of a remote AS verified here still has to be confirmed active
     * there (revocation, FAPI 2.0 §5.3.4-3) when introspection is set. */
    bool confirm = gw->as == NULL && gw->cfg->gw.introspect;
    pc_gw_claims_then_proxy(r, rt, iid, c, claims, token_state_why(st), confirm);
}

void pc_gw_authorize_then_proxy(pc_request *r, const pc_gw_route *rt, const char *iid)
{
    pc_gw_creds c = {PC_GW_SCHEME_NONE, PC_STR_NULL, false, {0}};
    if (!read_credentials(r, rt, iid, &c)) return;
    c.hashed = pc_gw_token_sha256(c.token, c.token_sha256);
    const pc_gw *gw = rt->gw;
    /* A remote AS with introspection: an opaque token, or any token on an
     * `introspection: always` route, is what the AS's answer says. */
    bool remote_introspection = gw->as == NULL && gw->cfg->gw.introspect;
    if (remote_introspection && (rt->rc->auth.introspect_always || gw->sh->jwks == NULL ||
                                 !pc_gw_token_is_jwt(c.token))) {
        pc_gw_introspect_claims(r, rt, iid, &c);
        return;
    }
    verify_then_proxy(r, rt, iid, &c, true);
}

void pc_gw_keys_fetched(pc_request *r, const pc_gw_route *rt, const char *iid, const pc_gw_creds *c)
{
    verify_then_proxy(r, rt, iid, c, false);
}

void pc_gw_identity_clear(pc_gw_identity *id)
{
    json_decref(id->claims);
    memset(id, 0, sizeof *id);
}
