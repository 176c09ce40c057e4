/* Access tokens: RFC 9068 JWTs, sender-constrained by cnf (RFC 8705 §3.1
 * x5t#S256, RFC 9449 §6.1 jkt). The jti has 128 bits from the CSPRNG
 * (FAPI 2.0 §5.4: at least 128 bits of entropy in every token). */
#include "as/as_internal.h"
#include "jose/b64url.h"

#include <openssl/rand.h>
#include <string.h>

pc_result pc_as_mint(pc_as *as, const pc_as_grant *g, int64_t now, char **token,
                     size_t *token_len, char jti_out[32])
{
    uint8_t rnd[16];
    size_t jl;
    PC_GUARD_OSSL(RAND_bytes(rnd, sizeof rnd), "RAND_bytes");
    PC_GUARD(pc_b64url_encode(rnd, sizeof rnd, jti_out, 32, &jl));
    json_t *p = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:s}", "iss", as->issuer, "sub",
                          g->client->client_id, "aud", g->aud, "exp",
                          (json_int_t)(now + (int64_t)g->lifetime_s), "iat", (json_int_t)now,
                          "jti", jti_out, "client_id", g->client->client_id);
    if (p == NULL) return pc_fail(PC_ERR_INTERNAL, "out of memory building a token");
    /* cnf only for a bound token (RFC 7800 §3): an empty one would read as
     * "bound" to a resource server with no key to check. */
    if (g->cnf_jkt || g->cnf_x5t) {
        json_t *cnf = json_object();
        if (g->cnf_jkt) json_object_set_new(cnf, "jkt", json_string(g->cnf_jkt));
        if (g->cnf_x5t) json_object_set_new(cnf, "x5t#S256", json_string(g->cnf_x5t));
        json_object_set_new(p, "cnf", cnf);
    }
    if (g->scope && g->scope[0]) json_object_set_new(p, "scope", json_string(g->scope));
    pc_result r = pc_keyring_sign(as->keys, "at+jwt", p, token, token_len);
    json_decref(p);
    return r;
}

pc_as_token_state pc_as_check_token(pc_as *as, pc_str token, int64_t now, json_t **claims)
{
    *claims = NULL;
    if (token.len == 0 || token.len > PC_AS_MAX_TOKEN_PARAM) return PC_TOKEN_INVALID;
    pc_jws jws;
    if (!pc_ok(pc_jws_parse(token, &jws))) return PC_TOKEN_INVALID;
    pc_as_token_state st = PC_TOKEN_INVALID;
    pc_jws_alg alg = PC_ALG_UNKNOWN;
    EVP_PKEY *key = jws.kid ? pc_keyring_public(as->keys, jws.kid, &alg) : NULL;
    const json_t *iss = json_object_get(jws.payload, "iss");
    const json_t *exp = json_object_get(jws.payload, "exp");
    const json_t *jti = json_object_get(jws.payload, "jti");
    /* typ at+jwt keeps other JWTs we sign (future ID tokens, JARM) from
     * passing as access tokens (RFC 9068 §4). */
    if (key && jws.alg == alg && jws.typ && strcmp(jws.typ, "at+jwt") == 0 &&
        pc_ok(pc_jws_verify(&jws, key, (unsigned)alg)) && json_is_string(iss) &&
        strcmp(json_string_value(iss), as->issuer) == 0 && json_is_integer(exp) &&
        json_is_string(jti)) {
        if (json_integer_value(exp) <= now)
            st = PC_TOKEN_EXPIRED;
        else if (pc_replay_peek(as->sh->revoked, "", 0, json_string_value(jti),
                                json_string_length(jti), now) ||
                 pc_as_client_cut_off(as->sh, jws.payload))
            st = PC_TOKEN_REVOKED;
        else
            st = PC_TOKEN_ACTIVE;
        *claims = json_incref(jws.payload);
    }
    pc_jws_clear(&jws);
    return st;
}

pc_as_token_state pc_as_verify_token(void *as_state, pc_str token, int64_t now, json_t **claims)
{
    return pc_as_check_token(as_state, token, now, claims);
}

bool pc_as_token_revoked(void *as_state, pc_str jti, int64_t now)
{
    pc_as *as = as_state;
    return pc_replay_peek(as->sh->revoked, "", 0, jti.ptr, jti.len, now);
}
