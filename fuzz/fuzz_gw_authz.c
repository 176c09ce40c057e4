/* Fuzz the gateway's parsing of a resource request's credentials: the
 * Authorization header (scheme, token68), access_token parameters in a
 * query or form, scope coverage, header-hygiene predicates, and a DPoP
 * proof header as the gateway hands it to pc_dpop_verify (method, htu,
 * ath for a fixed token), the RFC 9440 Client-Cert header and trusted
 * proxy ranges, and an RFC 7662 introspection answer as the gateway reads
 * it. Invariants are asserted on every input.
 *
 * The first byte picks the target, the rest is the input. */
#include "gw/authz.h"
#include "gw/hygiene.h"
#include "gw/peer.h"
#include "jose/dpop.h"
#include "jose/jws.h"

#include <stdint.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void authorization(pc_str v)
{
    pc_gw_scheme s;
    pc_str t;
    if (!pc_ok(pc_gw_parse_authorization(v, &s, &t))) {
        if (t.ptr != NULL || t.len != 0) abort();
        return;
    }
    if (s != PC_GW_SCHEME_BEARER && s != PC_GW_SCHEME_DPOP) abort();
    if (t.len == 0 || t.len > PC_GW_MAX_TOKEN) abort();
    if (t.ptr < v.ptr || t.ptr + t.len != v.ptr + v.len) abort(); /* a suffix of the value */
    size_t dots = 0;
    for (size_t i = 0; i < t.len; i++) dots += t.ptr[i] == '.';
    if (pc_gw_token_is_jwt(t) != (dots == 2)) abort();
    for (size_t i = 0; i < t.len; i++)
        if (t.ptr[i] == ' ' || t.ptr[i] == '"' || t.ptr[i] == ',' || (unsigned char)t.ptr[i] < 0x21)
            abort();
}

static void params_and_scope(pc_str v)
{
    (void)pc_gw_has_access_token_param(v);
    char *req[] = {"accounts", "payments", ""};
    const char *missing = NULL;
    bool ok = pc_gw_scope_covers(v, req, 2, &missing);
    if (ok != (missing == NULL)) abort();
    (void)pc_gw_scope_covers(v, req + 2, 1, &missing);
    (void)pc_gw_connection_lists(v, PC_STR("x-hop"));
    (void)pc_gw_forward_request_header(v, v, PC_STR("Client-Cert"), true);
    (void)pc_gw_forward_response_header(v, PC_STR_NULL);
    if (pc_gw_interaction_id_ok(v) && (v.len == 0 || v.len > PC_GW_MAX_INTERACTION_ID)) abort();
    if (pc_gw_forwarded_for_ok(v) && (memchr(v.ptr, '\r', v.len) || memchr(v.ptr, '\n', v.len)))
        abort();
    char out[64];
    char buf[256];
    size_t n = v.len < sizeof buf - 1 ? v.len : sizeof buf - 1;
    memcpy(buf, v.ptr, n);
    buf[n] = '\0';
    pc_gw_challenge_text(buf, out, sizeof out);
    for (const char *p = out; *p; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) abort();
    /* The introspection answer, parsed as introspect.c does. */
    json_t *answer = json_loadb(v.ptr, v.len, JSON_REJECT_DUPLICATES, NULL);
    if (json_is_object(answer)) {
        const char *why = pc_gw_introspection_refusal(answer, "https://as.example", 1700000000);
        const json_t *exp = json_object_get(answer, "exp");
        if (why == NULL && exp != NULL && (!json_is_integer(exp) || json_integer_value(exp) <= 1700000000))
            abort();
    }
    json_decref(answer);
}

static void dpop(pc_str v)
{
    pc_dpop_check chk = {
        .method = PC_STR("GET"),
        .url = PC_STR("https://gw.example/accounts/1"),
        .access_token = PC_STR("eyJhbGciOiJFUzI1NiJ9.e30.sig"),
        .now = 1700000000,
        .max_age_s = 60,
        .skew_s = 10,
        .allowed_algs = PC_ALGS_FAPI,
    };
    pc_dpop_proof p;
    memset(&p, 0, sizeof p);
    if (pc_ok(pc_dpop_verify(v, &chk, &p))) {
        /* Nothing forgeable without a key: a success must name a key and
         * a jti within bounds. */
        if (strlen(p.jkt) != PC_JWK_THUMBPRINT_BUF - 1 || strlen(p.jti) > PC_DPOP_MAX_JTI) abort();
    }
}

static void peer(pc_str v)
{
    char x5t[PC_X5T_S256_BUF];
    if (pc_gw_client_cert_x5t(v, x5t) && strlen(x5t) != PC_X5T_S256_LEN) abort();
    char buf[80];
    size_t n = v.len < sizeof buf - 1 ? v.len : sizeof buf - 1;
    memcpy(buf, v.ptr, n);
    buf[n] = '\0';
    pc_gw_cidr c;
    if (pc_ok(pc_gw_cidr_parse(buf, &c))) {
        if (c.family == AF_INET ? c.bits > 32 : c.bits > 128) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    pc_str v = {(const char *)data + 1, size - 1};
    switch (data[0] % 4) {
    case 0: authorization(v); break;
    case 1: params_and_scope(v); break;
    case 2: dpop(v); break;
    default: peer(v); break;
    }
    return 0;
}
