/* Abuse resistance at the gateway (abuse/abuse.h): after the token checks
 * and before the upstream, a quarantined client is refused, the route's
 * rate limits apply, and the detectors see the request; after the
 * upstream answers, they see its status (probing). Binding mismatches and
 * DPoP replays reach the credentials detector from binding.c. */
#include "abuse/abuse.h"
#include "core/log.h"
#include "gw/internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Identifier bytes the enumeration detector reads (the route's parameters
 * joined by "/"); longer identifiers are cut, which only merges them. */
#define PC_GW_MAX_IDENTIFIER 256u

static pc_abuse_who who_of(pc_request *r, const pc_gw_route *rt, const pc_gw_identity *id)
{
    return (pc_abuse_who){.client_id = pc_str_c(id->client_id ? id->client_id : ""),
                          .sub = pc_str_c(id->sub ? id->sub : ""),
                          .ip = pc_request_peer_ip(r),
                          .route = rt->label};
}

static size_t identifier_of(pc_request *r, char *buf, size_t cap)
{
    const pc_route_match *m = pc_request_route(r);
    size_t n = 0;
    for (size_t i = 0; i < m->n_params; i++) {
        pc_str v = m->param_values[i];
        if (n && n < cap) buf[n++] = '/';
        size_t take = v.len < cap - n ? v.len : cap - n;
        memcpy(buf + n, v.ptr, take);
        n += take;
    }
    return n;
}

/* RFC 9457 with two extension members: "error" (a stable code a client can
 * switch on) and "until" (unix seconds). Not an upstream failure, so not
 * pc_gw_respond_problem. */
static void refuse_quarantined(pc_request *r, const char *iid, int64_t until)
{
    json_t *o = json_pack("{s:s,s:s,s:i,s:s,s:s,s:I,s:s}", "type", "about:blank", "title",
                          "Forbidden", "status", 403, "error", "client_quarantined", "detail",
                          "this client is quarantined by abuse detection; ask the operator",
                          "until", (json_int_t)until, "request_id", pc_request_id(r));
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    pc_response_header(r, "x-fapi-interaction-id", pc_str_c(iid));
    pc_response_header(r, "Cache-Control", PC_STR("no-store"));
    if (body == NULL) {
        pc_respond_problem(r, 403, "this client is quarantined by abuse detection");
        return;
    }
    pc_respond(r, 403, "application/problem+json", body, strlen(body));
    free(body);
}

bool pc_gw_guard(pc_request *r, const pc_gw_route *rt, const pc_gw_identity *id, const char *iid)
{
    pc_abuse *a = rt->gw->abuse;
    if (a == NULL) return true;
    pc_abuse_who w = who_of(r, rt, id);
    int64_t until = 0;
    if (w.client_id.len && pc_abuse_quarantined(a, w.client_id, &until)) {
        pc_logline l;
        if (pc_log_begin(&l, PC_LOG_WARN, "quarantined_refused")) {
            pc_log_cstr(&l, "req", pc_request_id(r));
            pc_log_str(&l, "client_id", w.client_id);
            pc_log_cstr(&l, "route", rt->label);
            pc_log_int(&l, "until", until);
            pc_log_end(&l);
        }
        refuse_quarantined(r, iid, until);
        return false;
    }
    if (!pc_abuse_limit(a, r, rt->rc->rate_limits, rt->rc->n_rate_limits, &w, iid)) return false;
    if (w.client_id.len == 0 || !pc_abuse_detecting(a)) return true;
    char ident[PC_GW_MAX_IDENTIFIER];
    pc_det_request rq = {.route_slot = rt->slot, .identifier = PC_STR_NULL,
                         .max_distinct = rt->rc->max_distinct};
    if (rt->rc->identifier) rq.identifier = (pc_str){ident, identifier_of(r, ident, sizeof ident)};
    pc_abuse_on_request(a, &w, &rq);
    if (id->x5t[0]) pc_abuse_on_credential(a, w.client_id, PC_DET_CERT_SEEN, pc_str_c(id->x5t));
    pc_abuse_on_credential(a, w.client_id, PC_DET_IP_SEEN, pc_str_c(w.ip));
    return true;
}

void pc_gw_observe_status(const pc_gw_route *rt, const pc_gw_identity *id, int status)
{
    pc_abuse *a = rt->gw->abuse;
    if (a == NULL || id->client_id == NULL || !pc_abuse_detecting(a)) return;
    pc_abuse_on_status(a, pc_str_c(id->client_id), pc_str_c(id->sub ? id->sub : ""), status);
}

void pc_gw_observe_credential(const pc_gw_route *rt, const char *client_id, int ev)
{
    pc_abuse *a = rt->gw->abuse;
    if (a == NULL || client_id == NULL || !pc_abuse_detecting(a)) return;
    pc_abuse_on_credential(a, pc_str_c(client_id), (pc_det_cred_event)ev, PC_STR_NULL);
}
