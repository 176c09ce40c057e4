/* Refusals of the gateway's checks: 401/403/400 with WWW-Authenticate
 * (RFC 6750 §3; RFC 9449 §7.1 adds algs, and DPoP-Nonce for
 * use_dpop_nonce), the interaction id, no-store, a small JSON body and one
 * log line with the token's jti (never the token). They never carry
 * upstream content: the upstream is not called. */
#include "core/log.h"
#include "gw/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The DPoP algorithms we accept, advertised in challenges (RFC 9449 §7.1). */
#define DPOP_ALGS "ES256 PS256 EdDSA"

static void add_challenge(pc_request *r, const char *scheme, const pc_gw_refusal *f, bool algs)
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

bool pc_gw_refuse(pc_request *r, const pc_gw_route *rt, const pc_gw_refusal *f, const char *iid,
                   const char *jti)
{
    if (f->ch == PC_GW_CH_BEARER || f->ch == PC_GW_CH_BOTH) add_challenge(r, "Bearer", f, false);
    if (f->ch == PC_GW_CH_DPOP || f->ch == PC_GW_CH_BOTH) add_challenge(r, "DPoP", f, true);
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
