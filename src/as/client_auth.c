/* Client authentication at the token, introspection and revocation
 * endpoints. FAPI 2.0 §5.3.2.1-6: mTLS (RFC 8705 §2) or private_key_jwt
 * (RFC 7523 §2.2, OIDC Core §9) only. Shared secrets, "none", and HTTP
 * authentication schemes are refused with invalid_client and a description
 * that names what is accepted. Failures are counted per client_id and per
 * client IP; past as.auth_failures_per_minute further attempts get 429. */
#include "abuse/abuse.h"
#include "as/as_internal.h"
#include "core/log.h"
#include "jose/jws.h"

#include <arpa/inet.h>
#include <math.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#define JWT_BEARER "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#define ACCEPTED "use tls_client_auth, self_signed_tls_client_auth or private_key_jwt"

typedef struct attempt {
    pc_as *as;
    pc_request *r;
    char client_id[PC_CLIENT_MAX_ID + 1]; /* claimed, for throttling and logs */
    const char *method;
    bool assertion;   /* a client_assertion (or its type) was sent */
    char why[256];
} attempt;

static bool refuse(attempt *a, const char *fmt, ...) PC_PRINTF(2, 3);
static bool refuse(attempt *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->why, sizeof a->why, fmt, ap);
    va_end(ap);
    pc_abuse_auth_failed(a->as->abuse, pc_str_c(a->client_id), pc_request_peer_ip(a->r));
    pc_logline l;
    if (pc_log_begin(&l, PC_LOG_WARN, "client_auth_failed")) {
        pc_log_cstr(&l, "req", pc_request_id(a->r));
        pc_log_cstr(&l, "peer", pc_request_peer_ip(a->r));
        pc_log_cstr(&l, "client_id", a->client_id[0] ? a->client_id : NULL);
        pc_log_cstr(&l, "method", a->method);
        pc_log_cstr(&l, "reason", a->why);
        pc_log_end(&l);
    }
    pc_as_error(a->r, 401, "invalid_client", "%s", a->why);
    return false;
}

/* Past as.auth_failures_per_minute failures for the claimed client, or
 * as.auth_failures_per_minute_per_ip for this address (GCRA: that many at
 * once, then one per 60/N seconds), answer 429 with Retry-After. Checked
 * before any signature work, so a brute force costs us a table lookup. */
static bool throttled(attempt *a)
{
    uint32_t retry = 0;
    /* A request over a client certificate is judged by its address only:
     * the per-client_id limit would let anyone who fails as a partner
     * (from elsewhere) lock that partner out, and proving the certificate
     * cost the attempt its own TLS handshake. Failures still count against
     * the client_id, which holds back assertion-based attempts. */
    const pc_tls_peer *peer = pc_request_peer(a->r);
    bool by_cert = peer != NULL && peer->present && !a->assertion;
    if (pc_abuse_auth_allowed(a->as->abuse, by_cert ? PC_STR_NULL : pc_str_c(a->client_id),
                              pc_request_peer_ip(a->r), &retry))
        return false;
    char ra[24];
    snprintf(ra, sizeof ra, "%u", retry);
    pc_response_header(a->r, "Retry-After", pc_str_c(ra));
    pc_logline l;
    if (pc_log_begin(&l, PC_LOG_WARN, "client_auth_throttled")) {
        pc_log_cstr(&l, "req", pc_request_id(a->r));
        pc_log_cstr(&l, "peer", pc_request_peer_ip(a->r));
        pc_log_cstr(&l, "client_id", a->client_id[0] ? a->client_id : NULL);
        pc_log_uint(&l, "retry_after_s", retry);
        pc_log_end(&l);
    }
    pc_as_error(a->r, 429, "invalid_client",
                "too many failed client authentications from this client or address; retry "
                "after %s s",
                ra);
    return true;
}

static void claim(attempt *a, pc_str id)
{
    size_t n = id.len < sizeof a->client_id - 1 ? id.len : sizeof a->client_id - 1;
    memcpy(a->client_id, id.ptr, n);
    a->client_id[n] = '\0';
}

static bool get_int(const json_t *obj, const char *key, int64_t *out)
{
    const json_t *v = json_object_get(obj, key);
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return true;
    }
    if (json_is_real(v) && isfinite(json_real_value(v)) && fabs(json_real_value(v)) < 9e15) {
        *out = (int64_t)floor(json_real_value(v));
        return true;
    }
    return false;
}

/* aud = the issuer identifier as one string (FAPI 2.0 §5.3.2.1-8, and the
 * 2025 audience-injection fix in rfc7523bis). The compat profile also takes
 * the token endpoint URL and arrays holding either. */
static bool aud_ok(attempt *a, const json_t *aud)
{
    pc_as *as = a->as;
    if (json_is_string(aud)) {
        const char *v = json_string_value(aud);
        if (strcmp(v, as->issuer) == 0) return true;
        if (as->ac->profile == PC_AS_PROFILE_COMPAT && strcmp(v, as->token_url) == 0) return true;
        if (strcmp(v, as->token_url) == 0)
            return refuse(a, "client assertion aud must be the issuer identifier %s, not the token "
                             "endpoint URL (FAPI 2.0 5.3.2.1-8)",
                          as->issuer);
        return refuse(a, "client assertion aud must be the issuer identifier %s", as->issuer);
    }
    if (json_is_array(aud) && as->ac->profile == PC_AS_PROFILE_COMPAT) {
        size_t i;
        json_t *v;
        json_array_foreach(aud, i, v) if (json_is_string(v) &&
                                          (strcmp(json_string_value(v), as->issuer) == 0 ||
                                           strcmp(json_string_value(v), as->token_url) == 0)) return true;
    }
    if (json_is_array(aud))
        return refuse(a, "client assertion aud must be the issuer identifier as a single string, "
                         "not an array (FAPI 2.0 5.3.2.1-8)");
    return refuse(a, "client assertion aud is missing or not a string");
}

static bool assertion_claims(attempt *a, const pc_jws *jws, const pc_client *c)
{
    pc_as *as = a->as;
    const json_t *p = jws->payload;
    int64_t now = pc_as_now(), exp, iat, nbf;
    if (!aud_ok(a, json_object_get(p, "aud"))) return false;
    if (!get_int(p, "exp", &exp)) return refuse(a, "client assertion exp is missing");
    if (exp + (int64_t)as->skew_s <= now) return refuse(a, "client assertion has expired");
    if (exp > now + (int64_t)as->assertion_max_s + (int64_t)as->skew_s)
        return refuse(a, "client assertion exp is more than %u s ahead (as.assertion_max_lifetime)",
                      as->assertion_max_s);
    if (json_object_get(p, "iat") && (!get_int(p, "iat", &iat) || iat > now + (int64_t)as->skew_s))
        return refuse(a, "client assertion iat is in the future or not a number");
    if (json_object_get(p, "nbf") && (!get_int(p, "nbf", &nbf) || nbf > now + (int64_t)as->skew_s))
        return refuse(a, "client assertion is not valid yet (nbf)");
    const json_t *jti = json_object_get(p, "jti");
    if (!json_is_string(jti) || json_string_length(jti) == 0 ||
        json_string_length(jti) > PC_AS_MAX_JTI)
        return refuse(a, "client assertion jti is missing or longer than %d", PC_AS_MAX_JTI);
    /* Recorded last, so that a bad assertion never burns its jti. */
    switch (pc_replay_check(as->sh->assertion_jti, c->client_id, strlen(c->client_id),
                            json_string_value(jti), json_string_length(jti),
                            exp + (int64_t)as->skew_s, now)) {
    case PC_REPLAY_FRESH:
        return true;
    case PC_REPLAY_SEEN:
        return refuse(a, "client assertion jti has already been used");
    default:
        pc_as_error(a->r, 503, "temporarily_unavailable", "replay cache full; retry shortly");
        return false;
    }
}

static bool auth_private_key_jwt(attempt *a, const pc_form *form, pc_as_authn *out)
{
    a->method = "private_key_jwt";
    pc_str type = pc_form_get(form, "client_assertion_type");
    pc_str assertion = pc_form_get(form, "client_assertion");
    if (!type.ptr || strcmp(type.ptr, JWT_BEARER) != 0)
        return refuse(a, "client_assertion_type must be " JWT_BEARER);
    if (!assertion.ptr) return refuse(a, "client_assertion is missing");
    pc_jws jws;
    if (!pc_ok(pc_jws_parse(assertion, &jws)))
        return refuse(a, "client_assertion is not a valid JWS: %s", pc_errmsg());
    bool ok = false;
    const json_t *iss = json_object_get(jws.payload, "iss");
    const json_t *sub = json_object_get(jws.payload, "sub");
    pc_str form_id = pc_form_get(form, "client_id");
    if (json_is_string(sub)) claim(a, (pc_str){json_string_value(sub), json_string_length(sub)});
    const pc_client *c = NULL;
    const pc_jwk *key = NULL;
    /* The assertion names its client: check that client's failure count
     * too (a client_id form parameter is optional with private_key_jwt,
     * so the check at the top may not have known it). */
    if (json_is_string(sub) && throttled(a)) {
        pc_jws_clear(&jws);
        return false;
    }
    if (!json_is_string(sub))
        refuse(a, "client assertion sub is missing");
    else if (!json_is_string(iss) || strcmp(json_string_value(iss), json_string_value(sub)) != 0)
        refuse(a, "client assertion iss and sub must both be the client_id");
    else if (form_id.ptr && strcmp(form_id.ptr, json_string_value(sub)) != 0)
        refuse(a, "client_id does not match the client assertion sub");
    else if (!(c = pc_client_set_find(a->as->clients, json_string_value(sub),
                                      json_string_length(sub))))
        refuse(a, "client authentication failed");
    else if (c->auth != PC_AUTH_PRIVATE_KEY_JWT)
        refuse(a, "client %s is registered for %s, not private_key_jwt", c->client_id,
               pc_client_auth_name(c->auth));
    else if (jws.typ && strcmp(jws.typ, "JWT") != 0 &&
             strcmp(jws.typ, "client-authentication+jwt") != 0)
        refuse(a, "client assertion typ %s is not accepted", jws.typ);
    else if (!(jws.alg & PC_ALGS_FAPI))
        refuse(a, "client assertion alg %s is not allowed; use ES256, PS256 or EdDSA",
               pc_jws_alg_name(jws.alg) ? pc_jws_alg_name(jws.alg) : "(unknown)");
    else if (!(key = pc_jwks_find(&c->jwks, jws.kid)))
        refuse(a, "no registered key of client %s matches kid %s", c->client_id,
               jws.kid ? jws.kid : "(none)");
    else if (!pc_ok(pc_jws_verify(&jws, key->pkey, PC_ALGS_FAPI)))
        refuse(a, "client assertion signature does not verify");
    else if (assertion_claims(a, &jws, c)) {
        out->client = c;
        out->method = PC_AUTH_PRIVATE_KEY_JWT;
        ok = true;
    }
    pc_jws_clear(&jws);
    return ok;
}

static bool san_matches(X509 *cert, int type, const char *want)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    bool found = false;
    unsigned char ip[16];
    int iplen = 0;
    if (type == GEN_IPADD) {
        if (inet_pton(AF_INET, want, ip) == 1)
            iplen = 4;
        else if (inet_pton(AF_INET6, want, ip) == 1)
            iplen = 16;
        else {
            GENERAL_NAMES_free(names);
            return false;
        }
    }
    for (int i = 0; names && !found && i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type != type) continue;
        const ASN1_STRING *s = type == GEN_DNS   ? g->d.dNSName
                               : type == GEN_URI ? g->d.uniformResourceIdentifier
                               : type == GEN_EMAIL ? g->d.rfc822Name
                                                   : g->d.iPAddress;
        const unsigned char *d = ASN1_STRING_get0_data(s);
        int n = ASN1_STRING_length(s);
        if (type == GEN_IPADD)
            found = n == iplen && memcmp(d, ip, (size_t)n) == 0;
        else if (type == GEN_DNS)
            found = pc_str_eq_ci((pc_str){(const char *)d, (size_t)n}, pc_str_c(want));
        else
            found = pc_str_eq((pc_str){(const char *)d, (size_t)n}, pc_str_c(want));
    }
    GENERAL_NAMES_free(names);
    return found;
}

/* RFC 8705 §2.1.2: exactly one registered field, matched exactly; the DN
 * compared by RFC 4514 semantics (X509_NAME_cmp on the canonical form). */
static bool tls_matches(const pc_client *c, X509 *cert, const char **field)
{
    if (c->tls_subject_dn) {
        *field = "tls_client_auth_subject_dn";
        return c->tls_subject_name &&
               X509_NAME_cmp(X509_get_subject_name(cert), c->tls_subject_name) == 0;
    }
    if (c->tls_san_dns) return *field = "tls_client_auth_san_dns", san_matches(cert, GEN_DNS, c->tls_san_dns);
    if (c->tls_san_uri) return *field = "tls_client_auth_san_uri", san_matches(cert, GEN_URI, c->tls_san_uri);
    if (c->tls_san_ip) return *field = "tls_client_auth_san_ip", san_matches(cert, GEN_IPADD, c->tls_san_ip);
    if (c->tls_san_email)
        return *field = "tls_client_auth_san_email", san_matches(cert, GEN_EMAIL, c->tls_san_email);
    *field = "subject field";
    return false;
}

static bool auth_mtls(attempt *a, const pc_client *c, pc_as_authn *out)
{
    const pc_tls_peer *peer = pc_request_peer(a->r);
    a->method = pc_client_auth_name(c->auth);
    if (!peer->present)
        return refuse(a, "%s requires a client certificate on this TLS connection", a->method);
    if (c->auth == PC_AUTH_TLS_CLIENT) {
        const char *field = NULL;
        if (!peer->ca_verified)
            return refuse(a, "the client certificate does not chain to a trusted client CA");
        if (!tls_matches(c, peer->cert, &field))
            return refuse(a, "the client certificate does not match the registered %s", field);
    } else {
        /* RFC 8705 §2.2: the certificate's key must be one the client
         * registered; no chain is needed, but the validity period holds. */
        EVP_PKEY *pub = X509_get0_pubkey(peer->cert);
        bool found = false;
        for (size_t i = 0; pub && !found && i < c->jwks.n; i++)
            found = EVP_PKEY_eq(pub, c->jwks.keys[i].pkey) == 1;
        if (!found)
            return refuse(a, "the client certificate's key is not registered for client %s",
                          c->client_id);
        if (X509_cmp_current_time(X509_get0_notBefore(peer->cert)) >= 0 ||
            X509_cmp_current_time(X509_get0_notAfter(peer->cert)) <= 0)
            return refuse(a, "the client certificate is outside its validity period");
    }
    out->client = c;
    out->method = c->auth;
    return true;
}

bool pc_as_authenticate(pc_as *as, pc_request *r, const pc_form *form, pc_as_authn *out)
{
    attempt a = {.as = as, .r = r, .method = "none"};
    const pc_http_req *h = pc_request_http(r);
    pc_str form_id = pc_form_get(form, "client_id");
    pc_str assertion = pc_form_get(form, "client_assertion");
    if (form_id.ptr) claim(&a, form_id);
    a.assertion = assertion.ptr || pc_form_get(form, "client_assertion_type").ptr;

    if (throttled(&a)) return false;

    pc_str authz = pc_http_header(h, "authorization");
    if (authz.ptr) {
        a.method = "http_authorization";
        bool basic = authz.len >= 6 && pc_str_eq_lit_ci((pc_str){authz.ptr, 6}, "basic ");
        return refuse(&a, "%s is not accepted; " ACCEPTED,
                      basic ? "client_secret_basic" : "HTTP Authorization");
    }
    if (pc_form_get(form, "client_secret").ptr) {
        a.method = "client_secret_post";
        return refuse(&a, "client_secret_post is not accepted; " ACCEPTED);
    }
    if (assertion.ptr || pc_form_get(form, "client_assertion_type").ptr) {
        if (!(as->auth_methods & (1u << PC_AUTH_PRIVATE_KEY_JWT)))
            return refuse(&a, "private_key_jwt is not enabled here");
        return auth_private_key_jwt(&a, form, out);
    }
    if (!form_id.ptr) return refuse(&a, "no client authentication; " ACCEPTED);
    const pc_client *c = pc_client_set_find(as->clients, form_id.ptr, form_id.len);
    if (c == NULL) return refuse(&a, "client authentication failed");
    if (c->auth == PC_AUTH_PRIVATE_KEY_JWT) {
        a.method = "none";
        return refuse(&a, "client %s authenticates with private_key_jwt: send client_assertion",
                      c->client_id);
    }
    if (!(as->auth_methods & (1u << c->auth)))
        return refuse(&a, "%s is not enabled on this listener (server.tls.client_cert)",
                      pc_client_auth_name(c->auth));
    return auth_mtls(&a, c, out);
}

bool pc_as_read_form(pc_request *r, pc_form *form)
{
    const pc_http_req *h = pc_request_http(r);
    pc_str ct = pc_http_header(h, "content-type");
    static const char want[] = "application/x-www-form-urlencoded";
    size_t wl = sizeof want - 1;
    /* RFC 6749 §3.2: the body is application/x-www-form-urlencoded; a
     * charset parameter may follow. */
    if (!ct.ptr || ct.len < wl || !pc_str_eq_lit_ci((pc_str){ct.ptr, wl}, want) ||
        (ct.len > wl && ct.ptr[wl] != ';' && ct.ptr[wl] != ' ')) {
        pc_as_error(r, 400, "invalid_request", "Content-Type must be %s", want);
        return false;
    }
    if (h->query.len || memchr(h->target.ptr, '?', h->target.len)) {
        /* FAPI 2.0 §5.3.4-2 spirit: credentials never travel in a URL. */
        pc_as_error(r, 400, "invalid_request",
                    "parameters must be sent in the request body, not the query string");
        return false;
    }
    if (!pc_ok(pc_form_parse(h->body ? h->body : "", h->body_len, form))) {
        pc_as_error(r, 400, "invalid_request", "%s", pc_errmsg());
        return false;
    }
    return true;
}
