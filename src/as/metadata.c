/* Discovery (RFC 8414, and the same document at the OpenID path FAPI
 * deployments use) and the JWKS. Both are rendered once per runtime, so
 * serving them is a copy. Every value states what this server actually
 * does: only the enabled authentication methods, never client_secret_*. */
#include "as/as_internal.h"

#include <stdlib.h>
#include <string.h>

static json_t *strings(const char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(a, json_string(v[i]));
    return a;
}

static char *url(const char *base, const char *path)
{
    size_t n = strlen(base) + strlen(path) + 1;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s%s", base, path);
    return s;
}

pc_result pc_as_build_metadata(pc_as *as)
{
    static const char *const algs[] = {"ES256", "PS256", "EdDSA"};
    const char *methods[3];
    size_t nm = 0;
    if (as->auth_methods & (1u << PC_AUTH_TLS_CLIENT)) methods[nm++] = "tls_client_auth";
    if (as->auth_methods & (1u << PC_AUTH_SELF_SIGNED_TLS))
        methods[nm++] = "self_signed_tls_client_auth";
    if (as->auth_methods & (1u << PC_AUTH_PRIVATE_KEY_JWT)) methods[nm++] = "private_key_jwt";
    static const char *const grants[] = {"client_credentials"};
    char *jwks = url(as->issuer, "/jwks"), *intro = url(as->issuer, "/introspect"),
         *revoke = url(as->issuer, "/revoke");
    json_t *m = json_object();
    json_object_set_new(m, "issuer", json_string(as->issuer));
    json_object_set_new(m, "token_endpoint", json_string(as->token_url));
    json_object_set_new(m, "jwks_uri", json_string(jwks));
    json_object_set_new(m, "introspection_endpoint", json_string(intro));
    json_object_set_new(m, "revocation_endpoint", json_string(revoke));
    json_object_set_new(m, "token_endpoint_auth_methods_supported", strings(methods, nm));
    json_object_set_new(m, "token_endpoint_auth_signing_alg_values_supported", strings(algs, 3));
    json_object_set_new(m, "introspection_endpoint_auth_methods_supported", strings(methods, nm));
    json_object_set_new(m, "introspection_endpoint_auth_signing_alg_values_supported",
                        strings(algs, 3));
    json_object_set_new(m, "revocation_endpoint_auth_methods_supported", strings(methods, nm));
    json_object_set_new(m, "revocation_endpoint_auth_signing_alg_values_supported",
                        strings(algs, 3));
    json_object_set_new(m, "dpop_signing_alg_values_supported", strings(algs, 3));
    json_object_set_new(m, "tls_client_certificate_bound_access_tokens", json_true());
    json_object_set_new(m, "grant_types_supported", strings(grants, 1));
    /* No authorization endpoint yet: no response type is supported. */
    json_object_set_new(m, "response_types_supported", json_array());
    json_object_set_new(m, "scopes_supported",
                        strings((const char *const *)as->ac->scopes, as->ac->n_scopes));
    free(jwks);
    free(intro);
    free(revoke);
    char *s = json_dumps(m, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(m);
    PC_ENSURE(s != NULL, PC_ERR_INTERNAL, "out of memory rendering metadata");
    as->metadata_json = s;
    as->metadata_len = strlen(s);
    return PC_OK;
}

void pc_as_metadata_endpoint(pc_request *r, void *data)
{
    pc_as *as = data;
    pc_response_header(r, "Cache-Control", PC_STR("public, max-age=300"));
    pc_respond(r, 200, "application/json", as->metadata_json, as->metadata_len);
}

void pc_as_jwks_endpoint(pc_request *r, void *data)
{
    pc_as *as = data;
    size_t len = 0;
    const char *jwks = pc_keyring_jwks_json(as->keys, &len);
    /* Short caching: a rotated-in key must reach verifiers before it signs
     * (rotation pre-publishes NEXT for exactly this). */
    pc_response_header(r, "Cache-Control", PC_STR("public, max-age=300"));
    pc_respond(r, 200, "application/jwk-set+json", jwks, len);
}
