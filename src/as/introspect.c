/* POST /introspect (RFC 7662) and POST /revoke (RFC 7009). Both require an
 * authenticated client (mTLS or private_key_jwt, as at /token). */
#include "as/as_internal.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>

/* The shared first half of both endpoints: read the form, authenticate
 * the caller, check the `token` parameter. False when it has answered. */
static bool read_token_request(pc_as *as, pc_request *r, pc_as_authn *who,
                               pc_as_token_state *st, json_t **claims)
{
    pc_form form;
    if (!pc_as_read_form(r, &form)) return false;
    bool ok = pc_as_authenticate(as, r, &form, who);
    pc_str token = pc_form_get(&form, "token");
    if (ok && !token.ptr) {
        pc_as_error(r, 400, "invalid_request", "token is missing");
        ok = false;
    }
    if (ok) *st = pc_as_check_token(as, token, pc_as_now(), claims);
    pc_form_free(&form);
    return ok;
}

void pc_as_introspect_endpoint(pc_request *r, void *data)
{
    pc_as *as = data;
    pc_as_authn who;
    pc_as_token_state st = PC_TOKEN_INVALID;
    json_t *claims = NULL;
    if (!read_token_request(as, r, &who, &st, &claims)) return;
    if (st != PC_TOKEN_ACTIVE) {
        /* RFC 7662 §2.2: an inactive token says only that, never why. */
        json_decref(claims);
        static const char inactive[] = "{\"active\":false}";
        pc_as_json(r, 200, inactive, sizeof inactive - 1);
        return;
    }
    json_t *out = json_object();
    json_object_set_new(out, "active", json_true());
    static const char *copy[] = {"scope", "client_id", "sub", "aud", "iss", "exp", "iat", "jti", "cnf"};
    for (size_t i = 0; i < sizeof copy / sizeof copy[0]; i++) {
        json_t *v = json_object_get(claims, copy[i]);
        if (v) json_object_set(out, copy[i], v);
    }
    const json_t *cnf = json_object_get(claims, "cnf");
    json_object_set_new(out, "token_type",
                        json_string(json_object_get(cnf, "jkt") ? "DPoP" : "Bearer"));
    char *s = json_dumps(out, JSON_COMPACT);
    json_decref(out);
    json_decref(claims);
    if (!s) {
        pc_as_error(r, 500, "server_error", "out of memory");
        return;
    }
    pc_as_json(r, 200, s, strlen(s));
    free(s);
}

void pc_as_revoke_endpoint(pc_request *r, void *data)
{
    pc_as *as = data;
    pc_as_authn who;
    pc_as_token_state st = PC_TOKEN_INVALID;
    json_t *claims = NULL;
    if (!read_token_request(as, r, &who, &st, &claims)) return;
    int64_t now = pc_as_now();
    const json_t *cid = json_object_get(claims, "client_id");
    const json_t *jti = json_object_get(claims, "jti");
    const json_t *exp = json_object_get(claims, "exp");
    /* RFC 7009 §2.1: only the client the token was issued to may revoke
     * it. §2.2: the answer is 200 whether or not anything was revoked
     * (invalid, unknown, expired or someone else's token), so it leaks
     * nothing. */
    if (st == PC_TOKEN_ACTIVE && json_is_string(cid) &&
        strcmp(json_string_value(cid), who.client->client_id) == 0) {
        int64_t e = (int64_t)json_integer_value(exp);
        pc_replay_check(as->sh->revoked, "", 0, json_string_value(jti), json_string_length(jti), e,
                        now);
        pthread_mutex_lock(&as->sh->store_mu);
        pc_result res = pc_store_revoke(as->sh->store, json_string_value(jti), e);
        pthread_mutex_unlock(&as->sh->store_mu);
        pc_logline l;
        if (pc_log_begin(&l, PC_LOG_INFO, "token_revoked")) {
            pc_log_cstr(&l, "req", pc_request_id(r));
            pc_log_cstr(&l, "client_id", who.client->client_id);
            pc_log_cstr(&l, "jti", json_string_value(jti));
            pc_log_bool(&l, "persisted", pc_ok(res));
            pc_log_end(&l);
        }
    }
    json_decref(claims);
    pc_as_json(r, 200, "", 0);
}
