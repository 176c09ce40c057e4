"""Discovery (RFC 8414 / OIDC Discovery) and the JWKS."""

import portcullis_helpers as H

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def test_both_discovery_paths_identical(asrv):
    a = asrv.get("/.well-known/oauth-authorization-server")
    b = asrv.get("/.well-known/openid-configuration")
    assert a.status == 200 and b.status == 200, (a, b)
    assert a.header("content-type", "").startswith("application/json"), a
    assert a.body == b.body
    assert a.json() == b.json()


def test_discovery_contents(asrv):
    m = asrv.get("/.well-known/oauth-authorization-server").json()
    assert m["issuer"] == asrv.issuer == f"https://localhost:{asrv.port}"
    assert m["token_endpoint"] == asrv.issuer + "/token"
    assert m["introspection_endpoint"] == asrv.issuer + "/introspect"
    assert m["revocation_endpoint"] == asrv.issuer + "/revoke"
    enabled = ["tls_client_auth", "self_signed_tls_client_auth", "private_key_jwt"]
    for key in ("token_endpoint_auth_methods_supported",
                "introspection_endpoint_auth_methods_supported",
                "revocation_endpoint_auth_methods_supported"):
        assert sorted(m[key]) == sorted(enabled), (key, m[key])
    text = asrv.get("/.well-known/openid-configuration").body.decode()
    assert "client_secret" not in text
    assert m["tls_client_certificate_bound_access_tokens"] is True
    assert set(m["dpop_signing_alg_values_supported"]) == {"ES256", "PS256", "EdDSA"}
    assert set(m["token_endpoint_auth_signing_alg_values_supported"]) == {"ES256", "PS256", "EdDSA"}
    assert "none" not in m["dpop_signing_alg_values_supported"]
    assert m["grant_types_supported"] == ["client_credentials"]
    assert "password" not in text
    assert set(m["scopes_supported"]) == {"accounts", "payments", "admin"}


def test_jwks_uri_works(asrv):
    m = asrv.get("/.well-known/oauth-authorization-server").json()
    assert m["jwks_uri"] == asrv.issuer + "/jwks"
    path = m["jwks_uri"][len(asrv.issuer):]
    r = asrv.get(path)
    assert r.status == 200, r
    assert "json" in r.header("content-type", ""), r
    jwks = r.json()
    assert isinstance(jwks["keys"], list) and jwks["keys"], jwks
    kids = [k["kid"] for k in jwks["keys"]]
    assert len(kids) == len(set(kids)), kids
    for k in jwks["keys"]:
        assert k.get("kid") and k.get("use") == "sig" and k.get("alg") in ("ES256", "PS256", "EdDSA"), k
        assert not (PRIVATE_MEMBERS & set(k)), f"private member in the published JWKS: {k}"
        assert k["kty"] in ("EC", "RSA", "OKP"), k


def test_discovery_with_optional_lists_no_self_signed(fresh_as):
    """With client_cert: optional (CA-verified only) self-signed client
    authentication cannot work, and must not be advertised."""
    a = fresh_as(client_cert="optional", clients=[])
    m = a.get("/.well-known/oauth-authorization-server").json()
    assert sorted(m["token_endpoint_auth_methods_supported"]) == ["private_key_jwt",
                                                                  "tls_client_auth"]
    assert m["issuer"] == a.issuer


def test_discovery_via_curl(asrv, pki):
    r = H.curl(asrv.issuer + "/.well-known/openid-configuration", pki)
    assert r.rc == 0 and r.status == 200, r
    assert r.json()["issuer"] == asrv.issuer
