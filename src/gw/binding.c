/* Sender constraints (FAPI 2.0 §5.3.4-5): a certificate-bound token must
 * come over the certificate it names (RFC 8705 §3), a DPoP-bound token
 * with a fresh proof by the key it names (RFC 9449 §7). Behind a
 * TLS-terminating proxy the certificate may come from the RFC 9440
 * Client-Cert header, but only from a trusted proxy address. */
#include "detect/detect.h"
#include "gw/internal.h"
#include "jose/jws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the client certificate ---------------------------------------------------- */

bool pc_gw_trusted_peer(const pc_gw *gw, const struct sockaddr *sa)
{
    return pc_gw_cidr_match(gw->proxies, gw->n_proxies, sa);
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
        if (v.ptr != NULL) return pc_gw_client_cert_x5t(v, out);
        return true;
    }
    const pc_tls_peer *p = pc_request_peer(r);
    /* Same size, NUL-terminated by the TLS layer: a plain copy (snprintf
     * here showed in the profile of every mTLS request). */
    _Static_assert(sizeof p->x5t_s256 == PC_X5T_S256_BUF, "thumbprint buffers differ");
    if (p->present) memcpy(out, p->x5t_s256, PC_X5T_S256_BUF);
    return true;
}

/* ---- the checks ---------------------------------------------------------------- */

static bool check_mtls(pc_request *r, const pc_gw_route *rt, const char *iid, const char *cnf_x5t,
                       pc_gw_identity *id)
{
    if (!pc_gw_client_x5t(r, rt->gw, id->x5t)) {
        pc_gw_refusal f = {401, PC_GW_CH_BEARER, "invalid_token", "malformed client certificate header", NULL, false};
        return pc_gw_refuse(r, rt, &f, iid, id->jti);
    }
    /* RFC 8705 §3: the certificate of this TLS connection (or of the
     * trusted proxy's header) must be the one the token is bound to. */
    if (id->x5t[0] == '\0' || !pc_ct_eq(id->x5t, strlen(id->x5t), cnf_x5t, strlen(cnf_x5t))) {
        pc_gw_observe_credential(rt, id->client_id, PC_DET_BINDING_MISMATCH);
        pc_gw_refusal f = {401, PC_GW_CH_BEARER, "invalid_token",
                     id->x5t[0] ? "the access token is bound to another certificate"
                                : "the access token is bound to a client certificate; none was presented",
                     NULL, false};
        return pc_gw_refuse(r, rt, &f, iid, id->jti);
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

static bool check_dpop(pc_request *r, const pc_gw_route *rt, const char *iid, const char *client_id,
                       const pc_gw_creds *c,
                       const char *cnf_jkt)
{
    const pc_gw *gw = rt->gw;
    const pc_gw_config *g = &gw->cfg->gw;
    const pc_http_req *h = pc_request_http(r);
    size_t count = 0;
    pc_str proof_text = one_dpop_header(h, &count);
    if (count != 1) {
        /* RFC 9449 §7.1 / §4.3 check 1: exactly one DPoP header. */
        pc_gw_refusal f = {401, PC_GW_CH_DPOP, "invalid_dpop_proof",
                     count ? "more than one DPoP header" : "a DPoP proof is required", NULL, false};
        return pc_gw_refuse(r, rt, &f, iid, NULL);
    }
    /* htu is the URL as the client saw it: the external URL (behind a load
     * balancer, not ours) plus the path, without the query (§4.3 check 9). */
    char url[PC_DPOP_MAX_URL + 1];
    int n = snprintf(url, sizeof url, "%s%.*s", g->external_url, (int)h->path.len, h->path.ptr);
    if (n < 0 || (size_t)n >= sizeof url) {
        pc_gw_refusal f = {401, PC_GW_CH_DPOP, "invalid_dpop_proof", "request URL too long", NULL, false};
        return pc_gw_refuse(r, rt, &f, iid, NULL);
    }
    pc_dpop_check chk = {
        .method = h->method,
        .url = {url, (size_t)n},
        .access_token = c->token,
        .access_token_sha256 = c->hashed ? c->token_sha256 : NULL,
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
        pc_gw_refusal f = {401, PC_GW_CH_DPOP, proof.need_nonce ? "use_dpop_nonce" : "invalid_dpop_proof",
                     pc_errmsg(), NULL, proof.need_nonce};
        return pc_gw_refuse(r, rt, &f, iid, NULL);
    }
    if (strcmp(proof.jkt, cnf_jkt) != 0) {
        pc_gw_observe_credential(rt, client_id, PC_DET_BINDING_MISMATCH);
        /* RFC 9449 §7.1's own example: a key mismatch is invalid_token. */
        pc_gw_refusal f = {401, PC_GW_CH_DPOP, "invalid_token", "the DPoP proof key is not the one the access token is bound to", NULL, false};
        return pc_gw_refuse(r, rt, &f, iid, proof.jti);
    }
    /* Last, so a proof that failed any check never burns its jti
     * (sourcebot#1395). Remember it as long as its iat keeps it valid. */
    switch (pc_replay_check(gw->sh->dpop_jti, proof.jkt, strlen(proof.jkt), proof.jti,
                            strlen(proof.jti), proof.iat + (int64_t)chk.max_age_s + chk.skew_s,
                            chk.now)) {
    case PC_REPLAY_FRESH: return true;
    case PC_REPLAY_SEEN: {
        pc_gw_observe_credential(rt, client_id, PC_DET_DPOP_REPLAY);
        pc_gw_refusal f = {401, PC_GW_CH_DPOP, "invalid_dpop_proof", "the DPoP proof has already been used", NULL, false};
        return pc_gw_refuse(r, rt, &f, iid, proof.jti);
    }
    default: {
        pc_gw_refusal f = {503, PC_GW_CH_DPOP, "temporarily_unavailable", "replay cache full; retry shortly", NULL, false};
        return pc_gw_refuse(r, rt, &f, iid, proof.jti);
    }
    }
}

bool pc_gw_check_binding(pc_request *r, const pc_gw_route *rt, const char *iid, const pc_gw_creds *c,
                          pc_gw_identity *id)
{
    const json_t *cnf = json_object_get(id->claims, "cnf");
    const char *jkt = pc_gw_claim_str(cnf, "jkt");
    const char *x5t = pc_gw_claim_str(cnf, "x5t#S256");
    pc_gw_binding want = rt->rc->auth.binding;
    pc_gw_challenge ch = c->scheme == PC_GW_SCHEME_DPOP ? PC_GW_CH_DPOP : PC_GW_CH_BEARER;
    const char *why = NULL;
    /* FAPI 2.0 §5.3.2.1-4/5: only sender-constrained tokens exist. */
    if (jkt == NULL && x5t == NULL) why = "the access token is not sender-constrained";
    else if (jkt != NULL && c->scheme != PC_GW_SCHEME_DPOP)
        ch = PC_GW_CH_DPOP, why = "a DPoP-bound access token must be sent with the DPoP scheme";
    else if (jkt == NULL && c->scheme == PC_GW_SCHEME_DPOP)
        ch = PC_GW_CH_BEARER, why = "the access token is not DPoP-bound; send it as Bearer over its certificate";
    else if (want == PC_GW_BIND_MTLS && x5t == NULL)
        why = "this resource requires a certificate-bound access token";
    else if (want == PC_GW_BIND_DPOP && jkt == NULL)
        why = "this resource requires a DPoP-bound access token";
    if (why != NULL) {
        /* A bound token without its binding: presented by someone else. */
        if (jkt != NULL || x5t != NULL)
            pc_gw_observe_credential(rt, id->client_id, PC_DET_BINDING_MISMATCH);
        pc_gw_refusal f = {401, ch, "invalid_token", why, NULL, false};
        return pc_gw_refuse(r, rt, &f, iid, id->jti);
    }
    if (x5t != NULL && !check_mtls(r, rt, iid, x5t, id)) return false;
    if (jkt != NULL && !check_dpop(r, rt, iid, id->client_id, c, jkt)) return false;
    id->dpop_nonce = jkt != NULL && rt->gw->cfg->gw.dpop_nonce;
    if (x5t == NULL) (void)pc_gw_client_x5t(r, rt->gw, id->x5t);
    return true;
}
