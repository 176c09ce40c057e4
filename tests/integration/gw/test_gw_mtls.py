"""Certificate-bound tokens at the gateway (RFC 8705 §3), token validity,
audience, scope and revocation (FAPI 2.0 §5.3.4)."""

import time

import portcullis_helpers as H
from as_helpers import b64u, decode_jwt
from gw_helpers import challenge, seen


def test_mtls_bound_token_accepted_over_same_cert(gw, pki):
    tok = gw.mtls_token()
    r = gw.call("/accounts/acc-1", token=tok, cert="alice")
    assert r.status == 200, r
    assert r.json()["account_id"] == "acc-1"
    s = seen(r)
    assert s["x-portcullis-client-id"] == ["mtls-client"]
    assert s["x-portcullis-subject"] == ["mtls-client"]
    assert s["x-portcullis-scope"] == ["accounts payments"]
    assert s["x-portcullis-cert-thumbprint"] == [H.x5t_s256_of_pem(pki.cert("alice")[0])]
    assert s["x-forwarded-proto"] == ["https"]
    assert s["x-forwarded-for"] == ["127.0.0.1"]


def test_mtls_bound_token_refused_over_other_cert(gw):
    tok = gw.mtls_token()
    r = gw.call("/accounts/acc-1", token=tok, cert="bob")
    assert r.status == 401, r
    ch = challenge(r, "Bearer")
    assert ch and 'error="invalid_token"' in ch, r
    assert "seen_by_upstream" not in r.body.decode()


def test_mtls_bound_token_refused_without_cert(gw):
    tok = gw.mtls_token()
    r = gw.call("/accounts/acc-1", token=tok)
    assert r.status == 401, r
    assert 'error="invalid_token"' in challenge(r, "Bearer")


def test_mtls_bound_token_refused_with_dpop_scheme(gw):
    tok = gw.mtls_token()
    r = gw.call("/accounts/acc-1", token=tok, scheme="DPoP", cert="alice")
    assert r.status == 401, r


def test_unbound_bearer_token_refused(fresh_gw, keys):
    """An AS in compat profile issues a plain bearer token; the gateway
    never accepts one."""
    g = fresh_gw(extra={"as": {"profile": "compat"}})
    resp = g.token_jwt("jwt-client", key=keys.es, cert=None)
    tok = g.access_token(resp)
    assert "cnf" not in decode_jwt(tok)[1] or not decode_jwt(tok)[1]["cnf"], decode_jwt(tok)
    r = g.call("/accounts/acc-1", token=tok, cert="alice")
    assert r.status == 401, r
    assert "sender-constrained" in challenge(r, "Bearer")


def test_route_binding_dpop_refuses_mtls_token(gw):
    tok = gw.mtls_token()
    r = gw.call("/echo/dpop", token=tok, cert="alice")
    assert r.status == 401, r


def test_scheme_case_insensitive(gw):
    tok = gw.mtls_token()
    for scheme in ("bearer", "BEARER", "Bearer"):
        r = gw.call("/accounts/acc-1", token=tok, scheme=scheme, cert="alice")
        assert r.status == 200, (scheme, r)


def test_no_token_gets_challenges(gw):
    r = gw.call("/accounts/acc-1", cert="alice")
    assert r.status == 401, r
    assert challenge(r, "Bearer") is not None
    assert 'algs="ES256 PS256 EdDSA"' in challenge(r, "DPoP")
    assert "error=" not in challenge(r, "Bearer")
    assert r.header("date") and r.header("x-fapi-interaction-id")


def test_two_authorization_headers_refused(gw):
    tok = gw.mtls_token()
    r = gw.call("/accounts/acc-1", cert="alice",
                headers=[("Authorization", f"Bearer {tok}"), ("Authorization", f"Bearer {tok}")])
    assert r.status == 400, r


def test_insufficient_scope_403(gw):
    tok = gw.mtls_token("bob-client", cert="bob")
    r = gw.call("/echo/pay", token=tok, cert="bob")
    assert r.status == 403, r
    ch = challenge(r, "Bearer")
    assert 'error="insufficient_scope"' in ch and 'scope="accounts payments"' in ch, ch
    ok = gw.call("/accounts/x", token=tok, cert="bob")
    assert ok.status == 200, ok


def test_wrong_audience_refused(gw):
    tok = gw.mtls_token()
    r = gw.call("/echo/other-aud", token=tok, cert="alice")
    assert r.status == 401, r
    assert "aud" in challenge(r, "Bearer")


def test_tampered_signature_refused(gw):
    tok = gw.mtls_token()
    h, p, s = tok.split(".")
    bad = h + "." + p + "." + ("A" if s[0] != "A" else "B") + s[1:]
    r = gw.call("/accounts/acc-1", token=bad, cert="alice")
    assert r.status == 401, r
    assert 'error="invalid_token"' in challenge(r, "Bearer")


def test_forged_claims_refused(gw):
    tok = gw.mtls_token()
    h, p, s = tok.split(".")
    _, claims = decode_jwt(tok)
    claims["scope"] = "accounts payments admin"
    import json
    forged = h + "." + b64u(json.dumps(claims)) + "." + s
    r = gw.call("/accounts/acc-1", token=forged, cert="alice")
    assert r.status == 401, r


def test_garbage_token_refused(gw):
    for tok in ("abc", "a.b.c", "x" * 9000):
        r = gw.call("/accounts/acc-1", token=tok, cert="alice")
        assert r.status == 401, r


def test_expired_token_refused(gw):
    tok = gw.mtls_token("short-client", cert="alice")
    # valid until exp (a 1 s token may already be past it: exp is in whole
    # seconds), then refused as expired, cached or not
    first = gw.call("/accounts/acc-1", token=tok, cert="alice")
    assert first.status == 200 or "expired" in challenge(first, "Bearer"), first
    time.sleep(2.2)
    r = gw.call("/accounts/acc-1", token=tok, cert="alice")
    assert r.status == 401, r
    assert "expired" in challenge(r, "Bearer")


def test_revoked_token_refused_at_once(gw):
    tok = gw.mtls_token()
    with gw.srv.connect(client="alice") as c:
        assert gw.call("/accounts/acc-1", token=tok, conn=c).status == 200
        rv = gw.post("/revoke", {"token": tok, "client_id": "mtls-client"}, client="alice")
        assert rv.status == 200, rv
        # the same keep-alive connection (same worker) and a new one
        r = gw.call("/accounts/acc-1", token=tok, conn=c)
        assert r.status == 401, r
        assert "revoked" in challenge(r, "Bearer")
    for _ in range(4):
        r = gw.call("/accounts/acc-1", token=tok, cert="alice")
        assert r.status == 401, r


def test_token_in_query_refused(gw):
    tok = gw.mtls_token()
    for q in (f"access_token={tok}", "a=1&access_token=x", "ACCESS_TOKEN=x", "access%5Ftoken=x"):
        r = gw.call(f"/echo/any?{q}", cert="alice")
        assert r.status == 400, (q, r)
        assert r.header("x-fapi-interaction-id")
    # even alongside a valid header
    r = gw.call(f"/echo/any?access_token={tok}", token=tok, cert="alice")
    assert r.status == 400, r


def test_token_in_form_body_refused(gw):
    tok = gw.mtls_token()
    r = gw.call("/echo/any", method="POST", cert="alice", body=f"access_token={tok}",
                headers=[("Content-Type", "application/x-www-form-urlencoded")])
    assert r.status == 400, r
