/* The handler of an upstream: route: interaction id, the route's checks
 * (auth.c), then the exchange with the upstream (exchange.c), whose
 * request headers are built here: hop-by-hop and gateway-owned headers
 * dropped (hygiene.c), forwarding and identity headers added. */
#include "core/log.h"
#include "gw/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A header whose value is known safe: one of the request's own, which the
 * server's parser refused unless pc_field_value_ok. Scanning the access token a
 * second time here was a measurable share of a proxied request. */
static void add_parsed_header(pc_gw_buf *out, const char *name, size_t nlen, pc_str v)
{
    pc_gw_buf_add(out, name, nlen);
    pc_gw_buf_add(out, ": ", 2);
    pc_gw_buf_add(out, v.ptr, v.len);
    pc_gw_buf_add(out, "\r\n", 2);
}

/* A header the gateway sets (identity, forwarding): claims are signed by
 * our AS, but a header is still no place for CR, LF or NUL. */
static void add_header(pc_gw_buf *out, const char *name, pc_str v)
{
    if (pc_field_value_ok(v)) add_parsed_header(out, name, strlen(name), v);
}

static void add_identity(pc_gw_buf *out, const pc_gw_identity *id)
{
    if (id->client_id) add_header(out, "X-Portcullis-Client-Id", pc_str_c(id->client_id));
    if (id->sub) add_header(out, "X-Portcullis-Subject", pc_str_c(id->sub));
    if (id->claims) add_header(out, "X-Portcullis-Scope", pc_str_c(id->scope ? id->scope : ""));
    if (id->x5t[0]) add_header(out, "X-Portcullis-Cert-Thumbprint", pc_str_c(id->x5t));
}

/* X-Forwarded-For is the TCP peer. Behind a trusted TLS-terminating proxy
 * (gateway.client_cert_header, from a trusted_proxies address) the
 * proxy's own well-formed X-Forwarded-For is kept in front of it, so the
 * upstream still sees the real client; from anyone else it was dropped. */
static void add_forwarded_for(pc_request *r, const pc_gw_route *rt, pc_gw_buf *out)
{
    const pc_gw *gw = rt->gw;
    pc_str peer = pc_str_c(pc_request_peer_ip(r));
    pc_str in = pc_http_header(pc_request_http(r), "x-forwarded-for");
    if (!gw->cfg->gw.client_cert_header || in.ptr == NULL || !pc_gw_forwarded_for_ok(in) ||
        !pc_gw_trusted_peer(gw, pc_request_peer_addr(r))) {
        add_header(out, "X-Forwarded-For", peer);
        return;
    }
    char buf[PC_GW_MAX_FORWARDED_FOR + 64];
    int n = snprintf(buf, sizeof buf, "%.*s, %.*s", (int)in.len, in.ptr, (int)peer.len, peer.ptr);
    if (n > 0 && (size_t)n < sizeof buf) add_header(out, "X-Forwarded-For", (pc_str){buf, (size_t)n});
}

void pc_gw_build_upstream_headers(pc_request *r, const pc_gw_route *rt, const pc_gw_identity *id,
                                  const char *iid, pc_gw_buf *out)
{
    const pc_http_req *h = pc_request_http(r);
    pc_str connection = pc_http_header(h, "connection");
    pc_str cert_header = pc_str_c(rt->gw->cfg->gw.client_cert_header_name);
    for (size_t i = 0; i < h->n_headers; i++) {
        pc_str n = h->headers[i].name;
        if (!pc_gw_forward_request_header(n, connection, cert_header, rt->rc->auth.enabled)) continue;
        add_parsed_header(out, n.ptr, n.len, h->headers[i].value);
    }
    /* host:port, [v6]:port; by hand, as this runs per request */
    const pc_upstream_config *up = rt->up;
    bool v6 = strchr(up->host, ':') != NULL;
    pc_gw_buf_add(out, "Host: ", 6);
    if (v6) pc_gw_buf_add(out, "[", 1);
    pc_gw_buf_add(out, up->host, strlen(up->host));
    char port[8];
    size_t pl = 0;
    port[pl++] = v6 ? ']' : ':';
    if (v6) port[pl++] = ':';
    char digits[6];
    size_t dn = 0;
    unsigned pv = up->port;
    do {
        digits[dn++] = (char)('0' + pv % 10);
        pv /= 10;
    } while (pv && dn < sizeof digits);
    while (dn) port[pl++] = digits[--dn];
    pc_gw_buf_add(out, port, pl);
    pc_gw_buf_add(out, "\r\n", 2);
    add_forwarded_for(r, rt, out);
    add_header(out, "X-Forwarded-Proto", PC_STR("https"));
    if (h->host.len) add_header(out, "X-Forwarded-Host", h->host);
    add_header(out, "X-Request-Id", pc_str_c(pc_request_id(r)));
    add_header(out, "x-fapi-interaction-id", pc_str_c(iid));
    add_identity(out, id);
}

static bool refuse_token_params(pc_request *r, const char *iid)
{
    const pc_http_req *h = pc_request_http(r);
    bool in_query = pc_gw_has_access_token_param(h->query);
    pc_str ct = pc_http_header(h, "content-type");
    bool form = ct.len >= 33 && pc_str_eq_lit_ci((pc_str){ct.ptr, 33}, "application/x-www-form-urlencoded");
    bool in_body = form && pc_gw_has_access_token_param((pc_str){h->body, h->body ? h->body_len : 0});
    if (!in_query && !in_body) return false;
    /* FAPI 2.0 §5.3.4-2: never in the query string (RFC 6750 §2.3), and
     * not in a form body either (§2.2): refused outright, never ignored,
     * so the client learns and the token is not half-accepted. */
    char buf[200];
    snprintf(buf, sizeof buf,
             "Bearer error=\"invalid_request\", error_description=\"access tokens are accepted "
             "only in the Authorization header\"");
    pc_response_header(r, "WWW-Authenticate", pc_str_c(buf));
    pc_response_header(r, "x-fapi-interaction-id", pc_str_c(iid));
    pc_response_header(r, "Cache-Control", PC_STR("no-store"));
    static const char body[] = "{\"error\":\"invalid_request\",\"error_description\":\"access "
                               "tokens are accepted only in the Authorization header\"}";
    pc_respond(r, 400, "application/json", body, sizeof body - 1);
    return true;
}

static void interaction_id(pc_request *r, char out[PC_GW_MAX_INTERACTION_ID + 1])
{
    pc_str v = pc_http_header(pc_request_http(r), "x-fapi-interaction-id");
    if (pc_gw_interaction_id_ok(v)) {
        memcpy(out, v.ptr, v.len);
        out[v.len] = '\0';
        return;
    }
    char uuid[PC_GW_UUID_BUF];
    pc_gw_uuid4(uuid);
    memcpy(out, uuid, sizeof uuid);
}

void pc_gw_handle(pc_request *r, void *data)
{
    const pc_gw_route *rt = data;
    char iid[PC_GW_MAX_INTERACTION_ID + 1];
    interaction_id(r, iid);
    if (refuse_token_params(r, iid)) return;
    if (rt->rc->auth.enabled) {
        /* The checks may wait for the AS's introspection answer; they end
         * in the exchange or a refusal either way. */
        pc_gw_authorize_then_proxy(r, rt, iid);
        return;
    }
    pc_gw_identity id;
    memset(&id, 0, sizeof id);
    (void)pc_gw_client_x5t(r, rt->gw, id.x5t);
    if (pc_gw_guard(r, rt, &id, iid)) pc_gw_exchange_start(r, rt, &id, iid);
}
