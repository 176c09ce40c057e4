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
 * Refusals are 401 with WWW-Authenticate (RFC 6750 §3, RFC 9449 §7.1) or
 * 403 insufficient_scope naming the scope; they never carry upstream
 * content (the upstream is not called). Logs carry the token's jti or a
 * hash prefix, never the token. */
#include "as/as.h"
#include "core/log.h"
#include "gw/internal.h"
#include "gw/jwks.h"
#include "gw/tokcache.h"
#include "jose/jws.h"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The DPoP algorithms we accept, advertised in challenges (RFC 9449 §7.1). */
#define DPOP_ALGS "ES256 PS256 EdDSA"
/* Longest RFC 9440 Client-Cert value we decode: a certificate is 1-2 KiB. */
#define PC_GW_MAX_CERT_HEADER 16384u

typedef enum challenge { CH_BEARER, CH_DPOP, CH_BOTH } challenge;

typedef struct refusal {
    int status;
    challenge ch;
    const char *error;      /* NULL: no error attribute (no credentials sent) */
    const char *desc;
    const char *scope;      /* insufficient_scope: the scopes required */
    bool nonce;             /* use_dpop_nonce: send a fresh DPoP-Nonce */
} refusal;

static void add_challenge(pc_request *r, const char *scheme, const refusal *f, bool algs)
{
    char desc[256], scope[512], buf[1024];
    pc_gw_challenge_text(f->desc, desc, sizeof desc);
    pc_gw_challenge_text(f->scope, scope, sizeof scope);
    int n;
    if (f->error == NULL)
        n = snprintf(buf, sizeof buf, "%s%s", scheme, algs ? " algs=\"" DPOP_ALGS "\"" : "");
    else
        n = snprintf(buf, sizeof buf, "%s error=\"%s\", error_description=\"%s\"%s%s%s%s", scheme,
                     f->error, desc, f->scope ? ", scope=\"" : "", f->scope ? scope : "",
                     f->scope ? "\"" : "", algs ? ", algs=\"" DPOP_ALGS "\"" : "");
    if (n > 0) pc_response_header(r, "WWW-Authenticate", (pc_str){buf, strnlen(buf, sizeof buf)});
}

static bool refuse(pc_request *r, const pc_gw_route *rt, const refusal *f, const char *iid,
                   const char *jti)
{
    if (f->ch == CH_BEARER || f->ch == CH_BOTH) add_challenge(r, "Bearer", f, false);
    if (f->ch == CH_DPOP || f->ch == CH_BOTH) add_challenge(r, "DPoP", f, true);
    if (f->nonce) {
        char nonce[PC_DPOP_NONCE_LEN + 1];
        pc_dpop_nonce_make(&rt->gw->sh->noncer, pc_gw_now(), nonce);
        pc_response_header(r, "DPoP-Nonce", pc_str_c(nonce));
    }
    pc_response_header(r, "x-fapi-interaction-id", pc_str_c(iid));
    pc_response_header(r, "Cache-Control", PC_STR("no-store"));
    pc_logline l;
    if (pc_log_begin(&l, PC_LOG_INFO, "gateway_refused")) {
        pc_log_cstr(&l, "req", pc_request_id(r));
        pc_log_cstr(&l, "route", rt->rc->path);
        pc_log_int(&l, "status", f->status);
        pc_log_cstr(&l, "error", f->error ? f->error : "no_credentials");
        pc_log_cstr(&l, "detail", f->desc);
        if (jti) pc_log_cstr(&l, "jti", jti);
        pc_log_end(&l);
    }
    json_t *o = json_pack("{s:s, s:s}", "error", f->error ? f->error : "invalid_request",
                          "error_description", f->desc ? f->desc : "");
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    pc_respond(r, f->status, "application/json", s ? s : "{}", s ? strlen(s) : 2);
    free(s);
    return false;
}

void pc_gw_identity_clear(pc_gw_identity *id)
{
    json_decref(id->claims);
    memset(id, 0, sizeof *id);
}

/* ---- the client certificate ---------------------------------------------------- */

bool pc_gw_trusted_peer(const pc_gw *gw, const struct sockaddr *sa)
{
    uint8_t addr[16];
    int family = sa->sa_family;
    if (family == AF_INET) {
        memcpy(addr, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    } else if (family == AF_INET6) {
        const uint8_t *a6 = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a6, mapped, 12) == 0) {
            family = AF_INET;
            memcpy(addr, a6 + 12, 4);
        } else {
            memcpy(addr, a6, 16);
        }
    } else {
        return false;
    }
    for (size_t i = 0; i < gw->n_proxies; i++) {
        const pc_gw_cidr *c = &gw->proxies[i];
        if (c->family != family) continue;
        unsigned full = c->bits / 8, rest = c->bits % 8;
        if (memcmp(addr, c->addr, full) != 0) continue;
        if (rest == 0) return true;
        uint8_t mask = (uint8_t)(0xff << (8 - rest));
        if ((addr[full] & mask) == (c->addr[full] & mask)) return true;
    }
    return false;
}

/* RFC 9440 §2.1: Client-Cert is an sf-binary, ":" base64(DER) ":". */
static bool header_x5t(pc_str v, char out[PC_X5T_S256_BUF])
{
    if (v.len < 3 || v.len > PC_GW_MAX_CERT_HEADER || v.ptr[0] != ':' || v.ptr[v.len - 1] != ':')
        return false;
    size_t b64 = v.len - 2;
    if (b64 % 4 != 0) return false;
    unsigned char *der = malloc(b64);
    if (der == NULL) return false;
    int n = EVP_DecodeBlock(der, (const unsigned char *)v.ptr + 1, (int)b64);
    bool ok = false;
    if (n > 0) {
        /* EVP_DecodeBlock counts the padding as zero bytes. */
        size_t len = (size_t)n;
        if (v.ptr[v.len - 2] == '=') len--;
        if (v.ptr[v.len - 3] == '=') len--;
        const unsigned char *p = der;
        X509 *cert = d2i_X509(NULL, &p, (long)len);
        ok = cert != NULL && p == der + len && pc_ok(pc_x5t_s256(cert, out));
        X509_free(cert);
    }
    free(der);
    return ok;
}

bool pc_gw_client_x5t(pc_request *r, const pc_gw *gw, char out[PC_X5T_S256_BUF])
{
    out[0] = '\0';
    const pc_gw_config *g = &gw->cfg->gw;
    if (g->client_cert_header && pc_gw_trusted_peer(gw, pc_request_peer_addr(r))) {
        pc_str v = pc_http_header(pc_request_http(r), g->client_cert_header_name);
        /* Behind a TLS-terminating proxy the certificate is the header's;
         * the proxy's own certificate on this connection says nothing
         * about the client (RFC 9440 §3). */
        if (v.ptr != NULL) return header_x5t(v, out);
        return true;
    }
    const pc_tls_peer *p = pc_request_peer(r);
    if (p->present) snprintf(out, PC_X5T_S256_BUF, "%s", p->x5t_s256);
    return true;
}

/* ---- the steps ------------------------------------------------------------------ */

static const char *claim_str(const json_t *claims, const char *name)
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

typedef struct creds {
    pc_gw_scheme scheme;
    pc_str token;
} creds;

static bool read_credentials(pc_request *r, const pc_gw_route *rt, const char *iid, creds *c)
{
    const pc_http_req *h = pc_request_http(r);
    challenge ch = rt->rc->auth.binding == PC_GW_BIND_MTLS   ? CH_BEARER
                   : rt->rc->auth.binding == PC_GW_BIND_DPOP ? CH_DPOP
                                                              : CH_BOTH;
    size_t count = 0;
    pc_str value = PC_STR_NULL;
    for (size_t i = 0; i < h->n_headers; i++)
        if (pc_str_eq_lit_ci(h->headers[i].name, "authorization")) {
            value = h->headers[i].value;
            count++;
        }
    if (count == 0) {
        /* RFC 6750 §3.1: no credentials, no error code. */
        refusal f = {401, ch, NULL, "an access token is required", NULL, false};
        return refuse(r, rt, &f, iid, NULL);
    }
    if (count > 1) {
        refusal f = {400, ch, "invalid_request", "more than one Authorization header", NULL, false};
        return refuse(r, rt, &f, iid, NULL);
    }
    if (!pc_ok(pc_gw_parse_authorization(value, &c->scheme, &c->token))) {
        refusal f = {401, ch, "invalid_token", pc_errmsg(), NULL, false};
        return refuse(r, rt, &f, iid, NULL);
    }
    return true;
}

/* The AS's verdict on the token, from this worker's cache when the token
 * was verified before. A hit skips only the signature work: revocation is
 * asked of the AS on every request, so it takes effect at once
 * (FAPI 2.0 §5.3.4-3, FAPI-NOTES pain point 13). */
/* A token of the remote AS (gateway.remote_as), checked as RFC 9068 §4
 * says: the key named by kid in the AS's JWKS (an unknown kid asks for a
 * refetch, rate limited), an allowed alg that fits the key, typ at+jwt,
 * iss, exp. Revocation of a remote token is not visible here. */
static pc_as_token_state remote_verify(const pc_gw *gw, pc_str token, int64_t now, json_t **claims)
{
    *claims = NULL;
    pc_jws jws;
    if (token.len > PC_JWS_MAX_LEN || !pc_ok(pc_jws_parse(token, &jws))) return PC_TOKEN_INVALID;
    pc_gw_keyset *ks = pc_gw_jwks_acquire(gw->sh->jwks);
    const pc_jwk *k = ks && jws.kid ? pc_jwks_find(&ks->set, jws.kid) : NULL;
    pc_as_token_state st = PC_TOKEN_INVALID;
    const json_t *iss = json_object_get(jws.payload, "iss");
    const json_t *exp = json_object_get(jws.payload, "exp");
    if (k == NULL && jws.kid != NULL) pc_gw_jwks_want_refresh(gw->sh->jwks);
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

static pc_as_token_state lookup_token(const pc_gw *gw, pc_str token, int64_t now, json_t **claims)
{
    if (gw->as == NULL) {
        if (pc_gw_tokcache_get(gw->generation, token, now, claims)) return PC_TOKEN_ACTIVE;
        pc_as_token_state st = remote_verify(gw, token, now, claims);
        const json_t *exp = json_object_get(*claims, "exp");
        if (st == PC_TOKEN_ACTIVE && json_is_integer(exp))
            pc_gw_tokcache_put(gw->generation, token, (int64_t)json_integer_value(exp), *claims);
        return st;
    }
    if (pc_gw_tokcache_get(gw->generation, token, now, claims)) {
        const json_t *jti = json_object_get(*claims, "jti");
        if (!json_is_string(jti)) return PC_TOKEN_INVALID;
        pc_str j = {json_string_value(jti), json_string_length(jti)};
        return pc_as_token_revoked(gw->as, j, now) ? PC_TOKEN_REVOKED : PC_TOKEN_ACTIVE;
    }
    pc_as_token_state st = pc_as_verify_token(gw->as, token, now, claims);
    const json_t *exp = json_object_get(*claims, "exp");
    if (st == PC_TOKEN_ACTIVE && json_is_integer(exp))
        pc_gw_tokcache_put(gw->generation, token, (int64_t)json_integer_value(exp), *claims);
    return st;
}

static bool verify_token(pc_request *r, const pc_gw_route *rt, const char *iid, const creds *c,
                         pc_gw_identity *id)
{
    challenge ch = c->scheme == PC_GW_SCHEME_DPOP ? CH_DPOP : CH_BEARER;
    int64_t now = pc_gw_now();
    json_t *claims = NULL;
    pc_as_token_state st = lookup_token(rt->gw, c->token, now, &claims);
    const char *why = NULL;
    switch (st) {
    case PC_TOKEN_ACTIVE: break;
    case PC_TOKEN_EXPIRED: why = "the access token has expired"; break;
    case PC_TOKEN_REVOKED: why = "the access token has been revoked"; break;
    default: why = "the access token is not valid"; break;
    }
    const json_t *nbf = json_object_get(claims, "nbf");
    uint32_t skew = rt->gw->cfg->gw.dpop_skew_ms / 1000u;
    if (why == NULL && nbf != NULL && (!json_is_integer(nbf) || json_integer_value(nbf) > now + skew))
        why = "the access token is not valid yet";
    if (why == NULL && !aud_contains(json_object_get(claims, "aud"), rt->rc->auth.audience))
        why = "the access token is not meant for this resource (aud)";
    id->claims = claims;
    id->jti = claim_str(claims, "jti");
    if (why != NULL) {
        refusal f = {401, ch, "invalid_token", why, NULL, false};
        return refuse(r, rt, &f, iid, id->jti);
    }
    id->client_id = claim_str(claims, "client_id");
    id->sub = claim_str(claims, "sub");
    id->scope = claim_str(claims, "scope");
    return true;
}

static bool check_mtls(pc_request *r, const pc_gw_route *rt, const char *iid, const char *cnf_x5t,
                       pc_gw_identity *id)
{
    if (!pc_gw_client_x5t(r, rt->gw, id->x5t)) {
        refusal f = {401, CH_BEARER, "invalid_token", "malformed client certificate header", NULL, false};
        return refuse(r, rt, &f, iid, id->jti);
    }
    /* RFC 8705 §3: the certificate of this TLS connection (or of the
     * trusted proxy's header) must be the one the token is bound to. */
    if (id->x5t[0] == '\0' || !pc_ct_eq(id->x5t, strlen(id->x5t), cnf_x5t, strlen(cnf_x5t))) {
        refusal f = {401, CH_BEARER, "invalid_token",
                     id->x5t[0] ? "the access token is bound to another certificate"
                                : "the access token is bound to a client certificate; none was presented",
                     NULL, false};
        return refuse(r, rt, &f, iid, id->jti);
    }
    return true;
}

static pc_str one_dpop_header(const pc_http_req *h, size_t *count)
{
    pc_str v = PC_STR_NULL;
    *count = 0;
    for (size_t i = 0; i < h->n_headers; i++)
        if (pc_str_eq_lit_ci(h->headers[i].name, "dpop")) {
            v = h->headers[i].value;
            (*count)++;
        }
    return v;
}

static bool check_dpop(pc_request *r, const pc_gw_route *rt, const char *iid, const creds *c,
                       const char *cnf_jkt)
{
    const pc_gw *gw = rt->gw;
    const pc_gw_config *g = &gw->cfg->gw;
    const pc_http_req *h = pc_request_http(r);
    size_t count = 0;
    pc_str proof_text = one_dpop_header(h, &count);
    if (count != 1) {
        /* RFC 9449 §7.1 / §4.3 check 1: exactly one DPoP header. */
        refusal f = {401, CH_DPOP, "invalid_dpop_proof",
                     count ? "more than one DPoP header" : "a DPoP proof is required", NULL, false};
        return refuse(r, rt, &f, iid, NULL);
    }
    /* htu is the URL as the client saw it: the external URL (behind a load
     * balancer, not ours) plus the path, without the query (§4.3 check 9). */
    char url[PC_DPOP_MAX_URL + 1];
    int n = snprintf(url, sizeof url, "%s%.*s", g->external_url, (int)h->path.len, h->path.ptr);
    if (n < 0 || (size_t)n >= sizeof url) {
        refusal f = {401, CH_DPOP, "invalid_dpop_proof", "request URL too long", NULL, false};
        return refuse(r, rt, &f, iid, NULL);
    }
    pc_dpop_check chk = {
        .method = h->method,
        .url = {url, (size_t)n},
        .access_token = c->token,
        .now = pc_gw_now(),
        .max_age_s = g->dpop_proof_lifetime_ms / 1000u,
        .skew_s = g->dpop_skew_ms / 1000u,
        .allowed_algs = PC_ALGS_FAPI,
    };
    if (g->dpop_nonce) {
        chk.nonce_ok = pc_dpop_nonce_ok;
        chk.nonce_arg = &gw->sh->noncer;
    }
    pc_dpop_proof proof;
    memset(&proof, 0, sizeof proof);
    if (!pc_ok(pc_dpop_verify(proof_text, &chk, &proof))) {
        refusal f = {401, CH_DPOP, proof.need_nonce ? "use_dpop_nonce" : "invalid_dpop_proof",
                     pc_errmsg(), NULL, proof.need_nonce};
        return refuse(r, rt, &f, iid, NULL);
    }
    if (strcmp(proof.jkt, cnf_jkt) != 0) {
        /* RFC 9449 §7.1's own example: a key mismatch is invalid_token. */
        refusal f = {401, CH_DPOP, "invalid_token", "the DPoP proof key is not the one the access token is bound to", NULL, false};
        return refuse(r, rt, &f, iid, proof.jti);
    }
    /* Last, so a proof that failed any check never burns its jti
     * (sourcebot#1395). Remember it as long as its iat keeps it valid. */
    switch (pc_replay_check(gw->sh->dpop_jti, proof.jkt, strlen(proof.jkt), proof.jti,
                            strlen(proof.jti), proof.iat + (int64_t)chk.max_age_s + chk.skew_s,
                            chk.now)) {
    case PC_REPLAY_FRESH: return true;
    case PC_REPLAY_SEEN: {
        refusal f = {401, CH_DPOP, "invalid_dpop_proof", "the DPoP proof has already been used", NULL, false};
        return refuse(r, rt, &f, iid, proof.jti);
    }
    default: {
        refusal f = {503, CH_DPOP, "temporarily_unavailable", "replay cache full; retry shortly", NULL, false};
        return refuse(r, rt, &f, iid, proof.jti);
    }
    }
}

static bool check_binding(pc_request *r, const pc_gw_route *rt, const char *iid, const creds *c,
                          pc_gw_identity *id)
{
    const json_t *cnf = json_object_get(id->claims, "cnf");
    const char *jkt = claim_str(cnf, "jkt");
    const char *x5t = claim_str(cnf, "x5t#S256");
    pc_gw_binding want = rt->rc->auth.binding;
    challenge ch = c->scheme == PC_GW_SCHEME_DPOP ? CH_DPOP : CH_BEARER;
    const char *why = NULL;
    /* FAPI 2.0 §5.3.2.1-4/5: only sender-constrained tokens exist. */
    if (jkt == NULL && x5t == NULL) why = "the access token is not sender-constrained";
    else if (jkt != NULL && c->scheme != PC_GW_SCHEME_DPOP)
        ch = CH_DPOP, why = "a DPoP-bound access token must be sent with the DPoP scheme";
    else if (jkt == NULL && c->scheme == PC_GW_SCHEME_DPOP)
        ch = CH_BEARER, why = "the access token is not DPoP-bound; send it as Bearer over its certificate";
    else if (want == PC_GW_BIND_MTLS && x5t == NULL)
        why = "this resource requires a certificate-bound access token";
    else if (want == PC_GW_BIND_DPOP && jkt == NULL)
        why = "this resource requires a DPoP-bound access token";
    if (why != NULL) {
        refusal f = {401, ch, "invalid_token", why, NULL, false};
        return refuse(r, rt, &f, iid, id->jti);
    }
    if (x5t != NULL && !check_mtls(r, rt, iid, x5t, id)) return false;
    if (jkt != NULL && !check_dpop(r, rt, iid, c, jkt)) return false;
    if (x5t == NULL) (void)pc_gw_client_x5t(r, rt->gw, id->x5t);
    return true;
}

static bool check_scope(pc_request *r, const pc_gw_route *rt, const char *iid, const creds *c,
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
    refusal f = {403, c->scheme == PC_GW_SCHEME_DPOP ? CH_DPOP : CH_BEARER, "insufficient_scope",
                 desc, need, false};
    return refuse(r, rt, &f, iid, id->jti);
}

bool pc_gw_authorize(pc_request *r, const pc_gw_route *rt, pc_gw_identity *id, const char *iid)
{
    memset(id, 0, sizeof *id);
    creds c = {PC_GW_SCHEME_NONE, PC_STR_NULL};
    if (!read_credentials(r, rt, iid, &c)) return false;
    if (!verify_token(r, rt, iid, &c, id) || !check_binding(r, rt, iid, &c, id) ||
        !check_scope(r, rt, iid, &c, id)) {
        pc_gw_identity_clear(id);
        return false;
    }
    return true;
}
