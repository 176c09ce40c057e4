/* Handlers every server has: /healthz, static responses from config, and
 * /whoami, which shows a client what the server verified about it. */
#include "net/internal.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void healthz(pc_request *r, void *data)
{
    (void)data;
    static const char body[] = "{\"status\":\"ok\"}";
    pc_response_header(r, "Cache-Control", PC_STR("no-store"));
    pc_respond(r, 200, "application/json", body, sizeof body - 1);
}

const pc_handler pc_builtin_healthz = {healthz, NULL, "healthz"};

void pc_builtin_static(pc_request *r, void *data)
{
    const pc_route_config *rc = data;
    pc_respond(r, rc->status, rc->content_type, rc->body, rc->body_len);
}

static void whoami(pc_request *r, void *data)
{
    (void)data;
    const pc_tls_peer *p = pc_request_peer(r);
    json_t *o = json_object();
    json_object_set_new(o, "tls_version", json_string(pc_request_tls_version(r)));
    json_object_set_new(o, "tls_cipher", json_string(pc_request_tls_cipher(r)));
    json_object_set_new(o, "client_certificate", json_boolean(p->present));
    if (p->present) {
        json_object_set_new(o, "subject", p->subject ? json_string(p->subject) : json_null());
        json_object_set_new(o, "issuer", p->issuer ? json_string(p->issuer) : json_null());
        json_object_set_new(o, "x5t#S256", json_string(p->x5t_s256));
        json_object_set_new(o, "ca_verified", json_boolean(p->ca_verified));
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    if (s == NULL) {
        pc_respond_problem(r, 500, "out of memory");
        return;
    }
    pc_response_header(r, "Cache-Control", PC_STR("no-store"));
    pc_respond(r, 200, "application/json", s, strlen(s));
    free(s);
}

const pc_handler pc_builtin_whoami = {whoami, NULL, "whoami"};

/* ---- request accessors ---------------------------------------------------- */

const pc_http_req *pc_request_http(const pc_request *r) { return &r->c->rx.req; }
const pc_tls_peer *pc_request_peer(const pc_request *r) { return &r->c->peer; }
const pc_route_match *pc_request_route(const pc_request *r) { return &r->match; }
const char *pc_request_id(const pc_request *r) { return r->id; }
const char *pc_request_peer_ip(const pc_request *r) { return r->c->peer_ip; }
const struct sockaddr *pc_request_peer_addr(const pc_request *r)
{
    return (const struct sockaddr *)&r->c->peer_addr;
}
struct event_base *pc_request_base(const pc_request *r) { return r->c->w->base; }
void pc_request_set_abort(pc_request *r, void (*abort)(void *arg), void *arg)
{
    r->abort = abort;
    r->abort_arg = arg;
}
const pc_config *pc_request_config(const pc_request *r) { return r->c->rt->cfg; }
const char *pc_request_tls_version(const pc_request *r) { return SSL_get_version(r->c->ssl); }
const char *pc_request_tls_cipher(const pc_request *r)
{
    return SSL_CIPHER_get_name(SSL_get_current_cipher(r->c->ssl));
}
