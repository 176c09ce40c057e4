/* POST /token (RFC 6749 §3.2), client_credentials grant (§4.4), with the
 * FAPI 2.0 rules: authenticated confidential clients only, sender-
 * constrained tokens only (§5.3.2.1-4/5), scope = requested ∩ allowed,
 * RFC 8707 resource selecting the audience, DPoP per RFC 9449 §5. */
#include "abuse/abuse.h"
#include "as/as_internal.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCOPE_MAX 2048 /* bytes of a granted scope string */

static bool known_scope(const pc_as *as, const char *s, size_t n)
{
    for (size_t i = 0; i < as->ac->n_scopes; i++)
        if (strlen(as->ac->scopes[i]) == n && memcmp(as->ac->scopes[i], s, n) == 0) return true;
    return false;
}

/* Is s (n bytes) one of the space-separated tokens of list? */
static bool has_token(const char *list, const char *s, size_t n)
{
    for (const char *q = list; *q;) {
        const char *qe = strchr(q, ' ');
        size_t qn = qe ? (size_t)(qe - q) : strlen(q);
        if (qn == n && memcmp(q, s, n) == 0) return true;
        if (!qe) break;
        q = qe + 1;
    }
    return false;
}

/* scope = requested ∩ allowed (RFC 6749 §3.3). A scope the server does not
 * know at all is invalid_scope; a known one the client may not hold is
 * dropped, as §3.3 allows, and the response says what was granted. No
 * scope requested means everything the client holds. */
static bool grant_scope(pc_request *r, pc_as *as, const pc_client *c, pc_str req, char *out)
{
    size_t o = 0;
    out[0] = '\0';
    if (!req.ptr || req.len == 0) {
        for (size_t i = 0; i < c->n_scopes; i++) {
            size_t n = strlen(c->scopes[i]);
            if (o + n + 2 > SCOPE_MAX) break;
            if (o) out[o++] = ' ';
            memcpy(out + o, c->scopes[i], n);
            o += n;
        }
        out[o] = '\0';
        return true;
    }
    const char *p = req.ptr, *end = req.ptr + req.len;
    while (p < end) {
        while (p < end && *p == ' ') p++;
        const char *s = p;
        while (p < end && *p != ' ') p++;
        size_t n = (size_t)(p - s);
        if (n == 0) continue;
        for (size_t i = 0; i < n; i++) {
            /* scope-token = 1*( %x21 / %x23-5B / %x5D-7E ) */
            unsigned char ch = (unsigned char)s[i];
            if (ch < 0x21 || ch > 0x7e || ch == '"' || ch == '\\') {
                pc_as_error(r, 400, "invalid_scope", "scope contains an invalid character");
                return false;
            }
        }
        if (!known_scope(as, s, n) && !pc_client_has_scope(c, s, n)) {
            pc_as_error(r, 400, "invalid_scope", "unknown scope %.*s", (int)(n > 64 ? 64 : n), s);
            return false;
        }
        if (!pc_client_has_scope(c, s, n)) continue;
        if (has_token(out, s, n)) continue; /* "a a" grants "a" */
        if (o + n + 2 > SCOPE_MAX) {
            pc_as_error(r, 400, "invalid_scope", "requested scope too long");
            return false;
        }
        if (o) out[o++] = ' ';
        memcpy(out + o, s, n);
        o += n;
        out[o] = '\0';
    }
    if (o == 0) {
        pc_as_error(r, 400, "invalid_scope", "none of the requested scopes is allowed for client %s",
                    c->client_id);
        return false;
    }
    return true;
}

/* RFC 8707: the resource names the audience; it must be one the server
 * serves (as.resources). Without it, the first configured resource. */
static const char *pick_audience(pc_request *r, pc_as *as, pc_str resource)
{
    if (!resource.ptr) {
        if (as->ac->n_resources > 0) return as->ac->resources[0];
        return as->issuer;
    }
    for (size_t i = 0; i < as->ac->n_resources; i++)
        if (strcmp(as->ac->resources[i], resource.ptr) == 0) return as->ac->resources[i];
    pc_as_error(r, 400, "invalid_target", "resource is not one this server issues tokens for");
    return NULL;
}

/* RFC 9449 §5: at most one DPoP header; a valid proof for POST to the
 * token endpoint URL; its jti single-use per key. */
static bool check_dpop(pc_request *r, pc_as *as, pc_dpop_proof *proof, bool *present)
{
    const pc_http_req *h = pc_request_http(r);
    pc_str dpop = PC_STR_NULL;
    size_t count = 0;
    for (size_t i = 0; i < h->n_headers; i++)
        if (pc_str_eq_lit_ci(h->headers[i].name, "dpop")) {
            dpop = h->headers[i].value;
            count++;
        }
    *present = count > 0;
    if (count == 0) return true;
    if (count > 1) {
        pc_as_error(r, 400, "invalid_dpop_proof", "more than one DPoP header");
        return false;
    }
    pc_dpop_check chk = {
        .method = PC_STR("POST"),
        .url = pc_str_c(as->token_url),
        .now = pc_as_now(),
        .max_age_s = as->dpop_max_age_s,
        .skew_s = as->skew_s,
        .allowed_algs = PC_ALGS_FAPI,
    };
    if (as->ac->dpop_nonce) {
        chk.nonce_ok = pc_dpop_nonce_ok;
        chk.nonce_arg = &as->sh->noncer;
    }
    if (!pc_ok(pc_dpop_verify(dpop, &chk, proof))) {
        if (proof->need_nonce) {
            /* RFC 9449 §8: 400 use_dpop_nonce with a fresh DPoP-Nonce. */
            char nonce[PC_DPOP_NONCE_LEN + 1];
            pc_dpop_nonce_make(&as->sh->noncer, chk.now, nonce);
            pc_response_header(r, "DPoP-Nonce", pc_str_c(nonce));
            pc_as_error(r, 400, "use_dpop_nonce", "send the DPoP proof again with the server's nonce");
        } else {
            pc_as_error(r, 400, "invalid_dpop_proof", "%s", pc_errmsg());
        }
        return false;
    }
    /* The proof stays valid for max_age after its iat: remember its jti
     * that long (and the skew), no longer. */
    switch (pc_replay_check(as->sh->dpop_jti, proof->jkt, strlen(proof->jkt), proof->jti,
                            strlen(proof->jti), proof->iat + as->dpop_max_age_s + as->skew_s,
                            chk.now)) {
    case PC_REPLAY_FRESH:
        return true;
    case PC_REPLAY_SEEN:
        pc_as_error(r, 400, "invalid_dpop_proof", "DPoP proof jti has already been used");
        return false;
    default:
        pc_as_error(r, 503, "temporarily_unavailable", "replay cache full; retry shortly");
        return false;
    }
}

static void issue(pc_request *r, pc_as *as, const pc_as_authn *who, const pc_form *form)
{
    const pc_client *c = who->client;
    const pc_tls_peer *peer = pc_request_peer(r);
    if (!(c->grants & PC_GRANT_CLIENT_CREDENTIALS)) {
        pc_as_error(r, 400, "unauthorized_client",
                    "client %s may not use the client_credentials grant", c->client_id);
        return;
    }
    char scope[SCOPE_MAX + 1];
    if (!grant_scope(r, as, c, pc_form_get(form, "scope"), scope)) return;
    if (pc_form_count(form, "resource") > 1) {
        /* RFC 8707 §2: unable to issue one token for all the targets. */
        pc_as_error(r, 400, "invalid_target",
                    "this server issues one audience per token: send a single resource");
        return;
    }
    const char *aud = pick_audience(r, as, pc_form_get(form, "resource"));
    if (!aud) return;
    pc_dpop_proof proof;
    bool dpop = false;
    if (!check_dpop(r, as, &proof, &dpop)) return;
    if (c->dpop_bound && !dpop) {
        pc_as_error(r, 400, "invalid_dpop_proof",
                    "client %s is registered with dpop_bound_access_tokens: send a DPoP proof",
                    c->client_id);
        return;
    }
    bool mtls = peer->present && (who->method == PC_AUTH_TLS_CLIENT ||
                                  who->method == PC_AUTH_SELF_SIGNED_TLS || peer->ca_verified);
    if (!dpop && !mtls && as->ac->profile == PC_AS_PROFILE_FAPI2) {
        /* FAPI 2.0 §5.3.2.1-4: only sender-constrained access tokens. */
        pc_as_error(r, 400, "invalid_request",
                    "FAPI 2.0 issues only sender-constrained tokens: present a client certificate "
                    "or a DPoP proof");
        return;
    }
    uint32_t lifetime = c->access_token_lifetime_s ? c->access_token_lifetime_s : as->lifetime_s;
    if (lifetime > as->max_lifetime_s) lifetime = as->max_lifetime_s;
    pc_as_grant g = {
        .client = c,
        .scope = scope,
        .aud = aud,
        /* DPoP wins when both are present: the client chose to prove
         * possession of that key on every request. */
        .cnf_jkt = dpop ? proof.jkt : NULL,
        .cnf_x5t = (!dpop && mtls) ? peer->x5t_s256 : NULL,
        .lifetime_s = lifetime,
    };
    char *token = NULL, jti[32];
    size_t tlen = 0;
    if (!pc_ok(pc_as_mint(as, &g, pc_as_now(), &token, &tlen, jti))) {
        pc_log_msg(PC_LOG_ERROR, "token_sign_failed", "%s", pc_errmsg());
        pc_as_error(r, 500, "server_error", "could not sign the access token");
        return;
    }
    const char *type = dpop ? "DPoP" : "Bearer";
    if (dpop && as->ac->dpop_nonce) {
        /* Hand the client the current nonce so its next proof needs no
         * extra round trip (RFC 9449 §8.2). */
        char nonce[PC_DPOP_NONCE_LEN + 1];
        pc_dpop_nonce_make(&as->sh->noncer, pc_as_now(), nonce);
        pc_response_header(r, "DPoP-Nonce", pc_str_c(nonce));
    }
    size_t cap = tlen + strlen(scope) + 160;
    char *body = malloc(cap);
    if (body == NULL) {
        free(token);
        pc_as_error(r, 500, "server_error", "out of memory");
        return;
    }
    /* Every value here is ours or validated to exclude '"' and '\\'.
     * Assembled by hand: snprintf over the ~500-byte token showed in the
     * token endpoint's profile. */
    char life[16];
    size_t ll = 0;
    for (unsigned v = lifetime;; v /= 10) {
        life[sizeof life - 1 - ll++] = (char)('0' + v % 10);
        if (v < 10) break;
    }
    const struct {
        const char *p;
        size_t len;
    } parts[] = {
#define LIT(s) {s, sizeof s - 1}
        LIT("{\"access_token\":\""), {token, tlen}, LIT("\",\"token_type\":\""),
        {type, strlen(type)}, LIT("\",\"expires_in\":"), {life + sizeof life - ll, ll},
        LIT(",\"scope\":\""), {scope, strlen(scope)}, LIT("\"}"),
#undef LIT
    };
    size_t n = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        memcpy(body + n, parts[i].p, parts[i].len);
        n += parts[i].len;
    }
    pc_as_json(r, 200, body, n);
    pc_logline l;
    if (pc_log_begin(&l, PC_LOG_INFO, "token_issued")) {
        pc_log_cstr(&l, "req", pc_request_id(r));
        pc_log_cstr(&l, "client_id", c->client_id);
        pc_log_cstr(&l, "auth", pc_client_auth_name(who->method));
        pc_log_cstr(&l, "jti", jti);
        pc_log_cstr(&l, "scope", scope);
        pc_log_cstr(&l, "aud", aud);
        pc_log_cstr(&l, "binding", dpop ? "dpop" : (mtls ? "mtls" : "none"));
        pc_log_uint(&l, "expires_in", lifetime);
        pc_log_end(&l);
    }
    pc_wipe(token, tlen);
    free(token);
    pc_wipe(body, n);
    free(body);
}

/* After authentication: a quarantined client gets nothing (the detectors
 * or an operator put it there), and as.rate_limits apply, keyed by the
 * authenticated client (so nobody can spend another client's budget).
 * Unauthenticated floods meet the failure limits before this. */
static bool admitted(pc_request *r, pc_as *as, const pc_as_authn *who)
{
    pc_str cid = pc_str_c(who->client->client_id);
    int64_t until = 0;
    if (pc_abuse_quarantined(as->abuse, cid, &until)) {
        pc_logline l;
        if (pc_log_begin(&l, PC_LOG_WARN, "quarantined_refused")) {
            pc_log_cstr(&l, "req", pc_request_id(r));
            pc_log_str(&l, "client_id", cid);
            pc_log_int(&l, "until", until);
            pc_log_end(&l);
        }
        pc_as_error(r, 400, "unauthorized_client",
                    "client %s is quarantined by abuse detection; ask the operator", who->client->client_id);
        return false;
    }
    pc_abuse_who w = {.client_id = cid, .sub = cid, .ip = pc_request_peer_ip(r),
                      .route = "POST /token"};
    return pc_abuse_limit(as->abuse, r, as->ac->rate_limits, as->ac->n_rate_limits, &w, NULL);
}

void pc_as_token_endpoint(pc_request *r, void *data)
{
    pc_as *as = data;
    pc_form form;
    if (!pc_as_read_form(r, &form)) return;
    pc_as_authn who;
    if (pc_as_authenticate(as, r, &form, &who) && admitted(r, as, &who)) {
        pc_str gt = pc_form_get(&form, "grant_type");
        if (!gt.ptr)
            pc_as_error(r, 400, "invalid_request", "grant_type is missing");
        else if (strcmp(gt.ptr, "client_credentials") == 0)
            issue(r, as, &who, &form);
        else if (strcmp(gt.ptr, "password") == 0 || strcmp(gt.ptr, "implicit") == 0)
            pc_as_error(r, 400, "unsupported_grant_type",
                        "%s is not supported (FAPI 2.0 5.3.2.1-2)", gt.ptr);
        else
            pc_as_error(r, 400, "unsupported_grant_type",
                        "grant_type %.40s is not supported; this server issues client_credentials",
                        gt.ptr);
    }
    pc_form_free(&form);
}
