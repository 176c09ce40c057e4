/* RFC 7591 client metadata, validated into a pc_client.
 *
 * Only what FAPI 2.0 allows gets through (§5.3.2.1: confidential clients,
 * mTLS or private_key_jwt, no ROPC; §5.3.2.2: code flow only). Members we
 * do not know are kept in the metadata and otherwise ignored, as RFC 7591
 * §2 asks. Every refusal names the member, so an operator can fix the
 * file; values are echoed only in a short, printable form. */
#include "as/clients.h"
#include "pki/pki.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A value echoed in a message: at most this many characters. */
#define ECHO_MAX 48
/* RFC 8705 §2.1.2 subject fields: a DN or SAN longer than this is not a
 * certificate field anyone issues. */
#define TLS_FIELD_MAX 1024

const char *pc_client_auth_name(pc_client_auth a)
{
    switch (a) {
    case PC_AUTH_TLS_CLIENT: return "tls_client_auth";
    case PC_AUTH_SELF_SIGNED_TLS: return "self_signed_tls_client_auth";
    case PC_AUTH_PRIVATE_KEY_JWT: return "private_key_jwt";
    case PC_AUTH_NONE:
    default: return "none";
    }
}

/* Copy s for a message: printable ASCII only (a value may come from a
 * file anyone wrote), cut at ECHO_MAX with "...". */
static const char *echo(const char *s, char buf[ECHO_MAX + 4])
{
    size_t i = 0;
    for (; s[i] != '\0' && i < ECHO_MAX; i++)
        buf[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    if (s[i] != '\0') {
        memcpy(buf + i, "...", 3);
        i += 3;
    }
    buf[i] = '\0';
    return buf;
}

static bool has_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f) return true;
    return false;
}

/* A JSON string without an embedded NUL: jansson accepts "\u0000", and a
 * C string would silently stop there, so what we check would differ from
 * what is stored. */
static bool is_cstring(const json_t *v)
{
    return json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v);
}

/* An optional string member: NULL if absent, failure if not a string. */
static pc_result opt_string(const json_t *md, const char *name, const char **out)
{
    const json_t *v = json_object_get(md, name);
    *out = NULL;
    if (v == NULL) return PC_OK;
    PC_ENSURE(is_cstring(v), PC_ERR_PROTO, "%s: expected a string", name);
    *out = json_string_value(v);
    return PC_OK;
}

static pc_result dup_into(const char *s, char **dst)
{
    *dst = strdup(s);
    PC_ENSURE(*dst != NULL, PC_ERR_INTERNAL, "client metadata: out of memory");
    return PC_OK;
}

/* ---- client_id ----------------------------------------------------------- */

/* RFC 7591 leaves the format to the server. We allow the RFC 3986
 * unreserved set, so an id can appear in a URL, a log line or a shell
 * argument without escaping. */
static bool id_char(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '_' || ch == '~' || ch == '-';
}

static pc_result parse_client_id(const json_t *md, pc_client *c)
{
    const char *id = NULL;
    PC_GUARD(opt_string(md, "client_id", &id));
    PC_ENSURE(id != NULL, PC_ERR_PROTO, "client_id: required");
    size_t len = strlen(id);
    PC_ENSURE(len >= 1 && len <= PC_CLIENT_MAX_ID, PC_ERR_PROTO,
              "client_id: must be 1 to %d characters", PC_CLIENT_MAX_ID);
    for (size_t i = 0; i < len; i++)
        PC_ENSURE(id_char(id[i]), PC_ERR_PROTO,
                  "client_id: only letters, digits and . _ ~ - are allowed");
    memcpy(c->client_id, id, len + 1);
    return PC_OK;
}

/* ---- token_endpoint_auth_method ------------------------------------------ */

#define ALLOWED_METHODS "tls_client_auth, self_signed_tls_client_auth or private_key_jwt"

static pc_result parse_auth_method(const json_t *md, pc_client *c)
{
    const char *m = NULL;
    char buf[ECHO_MAX + 4];
    PC_GUARD(opt_string(md, "token_endpoint_auth_method", &m));
    /* RFC 7591 §2 defaults to client_secret_basic, which FAPI forbids, so
     * the method must be explicit. */
    PC_ENSURE(m != NULL, PC_ERR_PROTO,
              "token_endpoint_auth_method: required; use " ALLOWED_METHODS);
    if (strcmp(m, "tls_client_auth") == 0)
        c->auth = PC_AUTH_TLS_CLIENT;
    else if (strcmp(m, "self_signed_tls_client_auth") == 0)
        c->auth = PC_AUTH_SELF_SIGNED_TLS;
    else if (strcmp(m, "private_key_jwt") == 0)
        c->auth = PC_AUTH_PRIVATE_KEY_JWT;
    else if (strncmp(m, "client_secret_", 14) == 0 || strcmp(m, "none") == 0)
        return pc_fail(PC_ERR_PROTO,
                       "token_endpoint_auth_method: \"%s\" is not allowed: FAPI 2.0 "
                       "section 5.3.2.1 admits only confidential clients without shared "
                       "secrets; use " ALLOWED_METHODS,
                       echo(m, buf));
    else
        return pc_fail(PC_ERR_PROTO,
                       "token_endpoint_auth_method: unknown method \"%s\"; use " ALLOWED_METHODS,
                       echo(m, buf));
    return PC_OK;
}

/* ---- tls_client_auth subject (RFC 8705 §2.1.2) ------------------------- */

static const char *const tls_fields[] = {
    "tls_client_auth_subject_dn", "tls_client_auth_san_dns", "tls_client_auth_san_uri",
    "tls_client_auth_san_ip", "tls_client_auth_san_email",
};
#define N_TLS_FIELDS (sizeof tls_fields / sizeof tls_fields[0])

static pc_result check_tls_value(size_t field, const char *v)
{
    const char *name = tls_fields[field];
    size_t len = strlen(v);
    PC_ENSURE(len > 0 && len <= TLS_FIELD_MAX && !has_ctl(v), PC_ERR_PROTO,
              "%s: must be 1 to %d printable characters", name, TLS_FIELD_MAX);
    if (field == 3) { /* san_ip: an IPv4 or IPv6 address in text form */
        unsigned char bin[16];
        PC_ENSURE(inet_pton(AF_INET, v, bin) == 1 || inet_pton(AF_INET6, v, bin) == 1,
                  PC_ERR_PROTO, "%s: not an IPv4 or IPv6 address", name);
    } else if (field == 4) {
        PC_ENSURE(strchr(v, '@') != NULL, PC_ERR_PROTO, "%s: not an email address", name);
    } else if (field == 2) {
        PC_ENSURE(strchr(v, ':') != NULL, PC_ERR_PROTO, "%s: not an absolute URI", name);
    }
    return PC_OK;
}

static char **tls_slot(pc_client *c, size_t field)
{
    char **slots[N_TLS_FIELDS] = {&c->tls_subject_dn, &c->tls_san_dns, &c->tls_san_uri,
                                  &c->tls_san_ip, &c->tls_san_email};
    return slots[field];
}

static pc_result parse_tls_subject(const json_t *md, pc_client *c)
{
    size_t found = N_TLS_FIELDS;
    for (size_t i = 0; i < N_TLS_FIELDS; i++) {
        const char *v = NULL;
        PC_GUARD(opt_string(md, tls_fields[i], &v));
        if (v == NULL) continue;
        PC_ENSURE(found == N_TLS_FIELDS, PC_ERR_PROTO,
                  "%s and %s are both set: tls_client_auth takes exactly one "
                  "(RFC 8705 section 2.1.2)",
                  tls_fields[found], tls_fields[i]);
        PC_GUARD(check_tls_value(i, v));
        found = i;
    }
    PC_ENSURE(found < N_TLS_FIELDS, PC_ERR_PROTO,
              "tls_client_auth needs exactly one of tls_client_auth_subject_dn, "
              "tls_client_auth_san_dns, _san_uri, _san_ip or _san_email (RFC 8705 section 2.1.2)");
    PC_GUARD(dup_into(json_string_value(json_object_get(md, tls_fields[found])),
                      tls_slot(c, found)));
    /* Parse the DN once here, not on every token request; a DN we cannot
     * parse is refused now rather than never matching later. */
    if (found == 0 && !pc_ok(pc_pki_parse_dn(c->tls_subject_dn, &c->tls_subject_name)))
        return pc_fail(PC_ERR_PROTO, "tls_client_auth_subject_dn: %s", pc_errmsg());
    return PC_OK;
}

/* ---- URIs: jwks_uri and redirect_uris ------------------------------------ */

static bool prefix_ci(const char *s, const char *p)
{
    return strncasecmp(s, p, strlen(p)) == 0;
}

static bool is_loopback(const char *host, size_t len)
{
    return (len == 9 && strncmp(host, "127.0.0.1", 9) == 0) ||
           (len == 5 && strncmp(host, "[::1]", 5) == 0) ||
           (len == 9 && strncasecmp(host, "localhost", 9) == 0);
}

/* Check an absolute https URI (http allowed only for loopback hosts when
 * loopback_http). Returns NULL if fine, or what is wrong. We look only at
 * what matters for safety: scheme, an authority without userinfo (a
 * "user@host" form misleads readers about the host), no fragment (RFC 6749
 * §3.1.2), no whitespace or control characters. */
static const char *uri_problem(const char *u, bool loopback_http)
{
    if (strlen(u) > PC_CLIENT_MAX_URI) return "too long";
    for (const char *p = u; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return "contains a space, control or non-ASCII character";
    if (strchr(u, '#') != NULL) return "must not have a fragment (RFC 6749 section 3.1.2)";
    bool https = prefix_ci(u, "https://");
    if (!https && !(loopback_http && prefix_ci(u, "http://")))
        return loopback_http ? "must be https (http only on 127.0.0.1, [::1] or localhost, "
                               "RFC 8252 section 7.3)"
                             : "must be https";
    const char *auth = u + (https ? 8 : 7);
    size_t alen = strcspn(auth, "/?");
    if (alen == 0) return "has no host";
    if (memchr(auth, '@', alen) != NULL) return "must not have userinfo (user@host)";
    size_t hlen = auth[0] == '[' ? strcspn(auth, "]") + 1 : strcspn(auth, ":/?");
    if (hlen > alen || hlen == 0) return "has a malformed host";
    if (hlen < alen) {
        if (auth[hlen] != ':' || hlen + 1 == alen) return "has a malformed port";
        for (size_t i = hlen + 1; i < alen; i++)
            if (auth[i] < '0' || auth[i] > '9') return "has a malformed port";
    }
    if (!https && !is_loopback(auth, hlen))
        return "must be https (http only on 127.0.0.1, [::1] or localhost, RFC 8252 section 7.3)";
    return NULL;
}

static pc_result parse_redirect_uris(const json_t *md, pc_client *c)
{
    const json_t *a = json_object_get(md, "redirect_uris");
    if (a == NULL) return PC_OK;
    PC_ENSURE(json_is_array(a), PC_ERR_PROTO, "redirect_uris: expected an array of strings");
    PC_ENSURE(json_array_size(a) <= PC_CLIENT_MAX_REDIRECTS, PC_ERR_PROTO,
              "redirect_uris: more than %d", PC_CLIENT_MAX_REDIRECTS);
    for (size_t i = 0; i < json_array_size(a); i++) {
        const json_t *v = json_array_get(a, i);
        PC_ENSURE(is_cstring(v), PC_ERR_PROTO, "redirect_uris[%zu]: expected a string", i);
        const char *why = uri_problem(json_string_value(v), true);
        PC_ENSURE(why == NULL, PC_ERR_PROTO, "redirect_uris[%zu]: %s", i, why);
        PC_GUARD(dup_into(json_string_value(v), &c->redirect_uris[i]));
        c->n_redirect_uris = i + 1;
    }
    return PC_OK;
}

/* ---- keys: jwks / jwks_uri ------------------------------------------------ */

static pc_result parse_keys(const json_t *md, pc_client *c)
{
    const json_t *jwks = json_object_get(md, "jwks");
    const char *uri = NULL;
    PC_GUARD(opt_string(md, "jwks_uri", &uri));
    /* RFC 7591 §2: "MUST NOT both be present". */
    PC_ENSURE(jwks == NULL || uri == NULL, PC_ERR_PROTO,
              "jwks and jwks_uri are both set; RFC 7591 section 2 allows one");
    if (jwks != NULL) {
        PC_ENSURE(json_is_object(jwks), PC_ERR_PROTO, "jwks: expected a {\"keys\":[...]} object");
        /* Its messages start with "jwks: " and say which key is wrong. */
        PC_GUARD(pc_jwks_from_json(jwks, &c->jwks));
        PC_ENSURE(c->jwks.n > 0, PC_ERR_PROTO,
                  "jwks: no usable key (EC P-256, RSA of 2048 bits or more, or Ed25519)");
    }
    if (uri != NULL) {
        const char *why = uri_problem(uri, false);
        PC_ENSURE(why == NULL, PC_ERR_PROTO, "jwks_uri: %s", why);
        /* Kept, not fetched: fetching needs an outbound HTTPS client with
         * caching and refetch limits (FAPI-NOTES "JWKS rotation"), which
         * does not exist yet. Such a client cannot authenticate until it
         * does; register keys inline with jwks instead. */
        PC_GUARD(dup_into(uri, &c->jwks_uri));
    }
    bool needs_keys = c->auth == PC_AUTH_PRIVATE_KEY_JWT || c->auth == PC_AUTH_SELF_SIGNED_TLS;
    PC_ENSURE(!needs_keys || jwks != NULL || uri != NULL, PC_ERR_PROTO,
              "%s needs jwks (or jwks_uri) with the client's public keys",
              pc_client_auth_name(c->auth));
    return PC_OK;
}

/* ---- scope (RFC 6749 §3.3) ------------------------------------------------ */

/* NQCHAR = %x21 / %x23-5B / %x5D-7E: printable ASCII except space, '"'
 * and '\'. */
static bool nqchar(unsigned char ch)
{
    return ch == 0x21 || (ch >= 0x23 && ch <= 0x5b) || (ch >= 0x5d && ch <= 0x7e);
}

static pc_result add_scope(pc_client *c, const char *tok, size_t len)
{
    char buf[ECHO_MAX + 4];
    PC_ENSURE(len > 0, PC_ERR_PROTO,
              "scope: empty scope-token (scopes are separated by one space, RFC 6749 section 3.3)");
    PC_ENSURE(len <= PC_CLIENT_MAX_SCOPE_LEN, PC_ERR_PROTO,
              "scope: a scope longer than %d characters", PC_CLIENT_MAX_SCOPE_LEN);
    for (size_t i = 0; i < len; i++)
        PC_ENSURE(nqchar((unsigned char)tok[i]), PC_ERR_PROTO,
                  "scope: character 0x%02x is not allowed in a scope (RFC 6749 section 3.3)",
                  (unsigned char)tok[i]);
    char *s = strndup(tok, len);
    PC_ENSURE(s != NULL, PC_ERR_INTERNAL, "client metadata: out of memory");
    if (pc_client_has_scope(c, tok, len)) {
        pc_result r = pc_fail(PC_ERR_PROTO, "scope: \"%s\" is listed twice", echo(s, buf));
        free(s);
        return r;
    }
    if (c->n_scopes == PC_CLIENT_MAX_SCOPES) {
        free(s);
        return pc_fail(PC_ERR_PROTO, "scope: more than %d scopes", PC_CLIENT_MAX_SCOPES);
    }
    c->scopes[c->n_scopes++] = s;
    return PC_OK;
}

static pc_result parse_scope(const json_t *md, pc_client *c)
{
    const char *s = NULL;
    PC_GUARD(opt_string(md, "scope", &s));
    if (s == NULL) return PC_OK;
    /* scope = scope-token *( SP scope-token ) */
    for (;;) {
        size_t len = strcspn(s, " ");
        PC_GUARD(add_scope(c, s, len));
        if (s[len] == '\0') return PC_OK;
        s += len + 1;
    }
}

/* ---- grant_types and response_types -------------------------------------- */

static pc_result grant_bit(const char *g, unsigned *bits)
{
    char buf[ECHO_MAX + 4];
    if (strcmp(g, "client_credentials") == 0)
        *bits |= PC_GRANT_CLIENT_CREDENTIALS;
    else if (strcmp(g, "authorization_code") == 0)
        *bits |= PC_GRANT_AUTHORIZATION_CODE;
    else if (strcmp(g, "refresh_token") == 0)
        *bits |= PC_GRANT_REFRESH_TOKEN;
    else if (strcmp(g, "password") == 0)
        return pc_fail(PC_ERR_PROTO, "grant_types: \"password\" is forbidden: FAPI 2.0 "
                                     "section 5.3.2.1-2 and RFC 9700 section 2.4 reject the "
                                     "resource owner password credentials grant");
    else if (strcmp(g, "implicit") == 0)
        return pc_fail(PC_ERR_PROTO, "grant_types: \"implicit\" is forbidden: FAPI 2.0 "
                                     "section 5.3.2.2-1 allows only the code flow "
                                     "(RFC 9700 section 2.1.2)");
    else
        return pc_fail(PC_ERR_PROTO,
                       "grant_types: unsupported grant type \"%s\"; allowed: "
                       "client_credentials, authorization_code, refresh_token",
                       echo(g, buf));
    return PC_OK;
}

static pc_result parse_grants(const json_t *md, pc_client *c)
{
    const json_t *a = json_object_get(md, "grant_types");
    if (a == NULL) {
        /* RFC 7591 §2 would default to authorization_code; a client
         * registered here without grant_types is a machine client. */
        c->grants = PC_GRANT_CLIENT_CREDENTIALS;
        return PC_OK;
    }
    PC_ENSURE(json_is_array(a) && json_array_size(a) > 0, PC_ERR_PROTO,
              "grant_types: expected a non-empty array of strings");
    for (size_t i = 0; i < json_array_size(a); i++) {
        const json_t *v = json_array_get(a, i);
        PC_ENSURE(is_cstring(v), PC_ERR_PROTO, "grant_types[%zu]: expected a string", i);
        PC_GUARD(grant_bit(json_string_value(v), &c->grants));
    }
    return PC_OK;
}

/* RFC 7591 response_types: FAPI 2.0 §5.3.2.2-1 allows "code" only. The
 * member is optional; when present it must not ask for anything else. */
static pc_result check_response_types(const json_t *md)
{
    const json_t *a = json_object_get(md, "response_types");
    if (a == NULL) return PC_OK;
    PC_ENSURE(json_is_array(a), PC_ERR_PROTO, "response_types: expected an array of strings");
    for (size_t i = 0; i < json_array_size(a); i++) {
        const json_t *v = json_array_get(a, i);
        PC_ENSURE(is_cstring(v) && strcmp(json_string_value(v), "code") == 0, PC_ERR_PROTO,
                  "response_types[%zu]: only \"code\" is allowed (FAPI 2.0 section 5.3.2.2-1)", i);
    }
    return PC_OK;
}

/* ---- dpop_bound_access_tokens, access_token_lifetime ---------------------- */

static pc_result parse_token_options(const json_t *md, pc_client *c)
{
    const json_t *d = json_object_get(md, "dpop_bound_access_tokens");
    if (d != NULL) {
        PC_ENSURE(json_is_boolean(d), PC_ERR_PROTO,
                  "dpop_bound_access_tokens: expected true or false");
        c->dpop_bound = json_is_true(d);
    }
    const json_t *l = json_object_get(md, "access_token_lifetime");
    if (l != NULL) {
        PC_ENSURE(json_is_integer(l) && json_integer_value(l) >= 1 &&
                      json_integer_value(l) <= PC_CLIENT_MAX_TOKEN_LIFETIME_S,
                  PC_ERR_PROTO, "access_token_lifetime: expected whole seconds from 1 to %d",
                  PC_CLIENT_MAX_TOKEN_LIFETIME_S);
        c->access_token_lifetime_s = (uint32_t)json_integer_value(l);
    }
    return PC_OK;
}

/* ---- the whole ------------------------------------------------------------- */

static pc_result parse_all(const json_t *md, pc_client *c)
{
    PC_GUARD(parse_client_id(md, c));
    PC_GUARD(parse_auth_method(md, c));
    if (c->auth == PC_AUTH_TLS_CLIENT) PC_GUARD(parse_tls_subject(md, c));
    PC_GUARD(parse_keys(md, c));
    PC_GUARD(parse_scope(md, c));
    PC_GUARD(parse_grants(md, c));
    PC_GUARD(check_response_types(md));
    PC_GUARD(parse_redirect_uris(md, c));
    PC_GUARD(parse_token_options(md, c));
    c->metadata = json_deep_copy(md);
    PC_ENSURE(c->metadata != NULL, PC_ERR_INTERNAL, "client metadata: out of memory");
    return PC_OK;
}

pc_result pc_client_from_metadata(const json_t *metadata, pc_client **out)
{
    *out = NULL;
    PC_ENSURE(json_is_object(metadata), PC_ERR_PROTO, "client metadata: expected a JSON object");
    pc_client *c = calloc(1, sizeof *c);
    PC_ENSURE(c != NULL, PC_ERR_INTERNAL, "client metadata: out of memory");
    pc_result r = parse_all(metadata, c);
    if (!pc_ok(r)) {
        pc_client_free(c);
        return r;
    }
    *out = c;
    return PC_OK;
}

void pc_client_free(pc_client *c)
{
    if (c == NULL) return;
    free(c->tls_subject_dn);
    X509_NAME_free(c->tls_subject_name);
    free(c->tls_san_dns);
    free(c->tls_san_uri);
    free(c->tls_san_ip);
    free(c->tls_san_email);
    pc_jwks_clear(&c->jwks);
    free(c->jwks_uri);
    for (size_t i = 0; i < c->n_scopes; i++) free(c->scopes[i]);
    for (size_t i = 0; i < c->n_redirect_uris; i++) free(c->redirect_uris[i]);
    json_decref(c->metadata);
    free(c);
}

/* Exact, case-sensitive comparison (RFC 6749 §3.3: scope strings are
 * compared as given). */
bool pc_client_has_scope(const pc_client *c, const char *scope, size_t len)
{
    for (size_t i = 0; i < c->n_scopes; i++)
        if (strlen(c->scopes[i]) == len && memcmp(c->scopes[i], scope, len) == 0) return true;
    return false;
}
