"""DPoP at the token endpoint (RFC 9449 §4.3, §5, §6.1)."""

import hashlib
import json
import time

import pytest

from as_helpers import (Key, b64u, check_token_response, decode_jwt, dpop_proof, error_of,
                        make_jws, new_jti)


def test_dpop_ok(asrv, keys):
    r = asrv.token_dpop()
    claims = check_token_response(asrv, r, client_id="dpop-client", scope="accounts",
                                  jkt=keys.dpop.thumbprint())
    assert "x5t#S256" not in claims["cnf"]


def test_dpop_jkt_matches_own_thumbprint(asrv):
    """cnf.jkt is the RFC 7638 thumbprint (cross-checked by hand, not just by
    jwcrypto)."""
    k = Key("ES256")
    j = k.public_jwk(kid=False, meta=False)
    canon = json.dumps({m: j[m] for m in ("crv", "kty", "x", "y")}, separators=(",", ":"),
                       sort_keys=True)
    want = b64u(hashlib.sha256(canon.encode()).digest())
    assert want == k.thumbprint()
    r = asrv.token_dpop(dpop_key=k)
    check_token_response(asrv, r, client_id="dpop-client", scope="accounts", jkt=want)


def test_dpop_and_mtls_together_dpop_wins(asrv, keys, pki):
    r = asrv.token_jwt("dpop-client", key=keys.dpop_client, cert="alice",
                       dpop=asrv.proof(keys.dpop))
    check_token_response(asrv, r, client_id="dpop-client", scope="accounts",
                         jkt=keys.dpop.thumbprint())


def test_dpop_with_mtls_client(asrv, keys):
    """A tls_client_auth client that sends a proof gets a DPoP-bound token."""
    r = asrv.token_mtls(headers=[("DPoP", asrv.proof(keys.dpop_ed))])
    check_token_response(asrv, r, client_id="mtls-client", scope="accounts payments",
                         jkt=keys.dpop_ed.thumbprint())


def test_dpop_client_without_proof(asrv, keys):
    error_of(asrv.token_jwt("dpop-client", key=keys.dpop_client, cert=None), 400,
             "invalid_dpop_proof")
    # a client certificate does not replace the proof for a DPoP-bound client
    error_of(asrv.token_jwt("dpop-client", key=keys.dpop_client, cert="alice"), 400,
             "invalid_dpop_proof")


@pytest.mark.parametrize("htu", [
    "HTTPS://LOCALHOST:{port}/token",
    "https://LocalHost:{port}/token",
    "https://localhost:{port}/token?foo=bar",
    "https://localhost:{port}/token#frag",
    "https://localhost:{port}/%74oken",
])
def test_dpop_htu_normalisation_accepted(asrv, keys, htu):
    htu = htu.format(port=asrv.port)
    r = asrv.token_jwt("dpop-client", key=keys.dpop_client, cert=None,
                       dpop=asrv.proof(keys.dpop, htu=htu))
    check_token_response(asrv, r, client_id="dpop-client", scope="accounts",
                         jkt=keys.dpop.thumbprint())


@pytest.mark.parametrize("delta", [-50, 8])
def test_dpop_iat_within_window_accepted(asrv, keys, delta):
    r = asrv.token_jwt("dpop-client", key=keys.dpop_client, cert=None,
                       dpop=asrv.proof(keys.dpop, iat=int(time.time()) + delta))
    check_token_response(asrv, r, client_id="dpop-client", scope="accounts",
                         jkt=keys.dpop.thumbprint())


def _bad(asrv, keys):
    """name -> callable(asrv) returning a bad proof."""
    now = int(time.time())
    k = keys.dpop
    other = Key("ES256")
    tu = asrv.token_url
    return {
        "htm_get": lambda: dpop_proof(k, tu, htm="GET"),
        "htm_lowercase": lambda: dpop_proof(k, tu, htm="post"),
        "htu_other_path": lambda: dpop_proof(k, asrv.issuer + "/introspect"),
        "htu_other_host": lambda: dpop_proof(k, f"https://evil.example:{asrv.port}/token"),
        "htu_other_port": lambda: dpop_proof(k, f"https://localhost:{asrv.port + 1}/token"),
        "htu_http": lambda: dpop_proof(k, f"http://localhost:{asrv.port}/token"),
        "htu_trailing_slash": lambda: dpop_proof(k, tu + "/"),
        "htu_missing": lambda: dpop_proof(k, tu, claims={"htu": None}),
        "iat_stale_70s": lambda: dpop_proof(k, tu, iat=now - 70),
        "iat_future_60s": lambda: dpop_proof(k, tu, iat=now + 60),
        "iat_missing": lambda: dpop_proof(k, tu, claims={"iat": None}),
        "jti_missing": lambda: dpop_proof(k, tu, claims={"jti": None}),
        "private_key_in_jwk": lambda: dpop_proof(k, tu, header={"jwk": {
            m: v for m, v in k.private_jwk().items() if m in ("kty", "crv", "x", "y", "d")}}),
        "alg_none": lambda: dpop_proof(k, tu, header={"alg": "none"}),
        "alg_hs256": lambda: make_jws({"typ": "dpop+jwt", "alg": "HS256",
                                       "jwk": k.public_jwk(kid=False, meta=False)},
                                      {"jti": new_jti(), "htm": "POST", "htu": tu, "iat": now},
                                      hmac_key=k.public_pem()),
        "alg_rs256": lambda: dpop_proof(keys.dpop_ps, tu, header={"alg": "RS256"}),
        "typ_jwt": lambda: dpop_proof(k, tu, header={"typ": "JWT"}),
        "typ_missing": lambda: dpop_proof(k, tu, header={"typ": None}),
        "no_jwk": lambda: dpop_proof(k, tu, header={"jwk": None}),
        "bad_signature": lambda: dpop_proof(k, tu, signer=other),
        "symmetric_jwk": lambda: make_jws({"typ": "dpop+jwt", "alg": "HS256",
                                           "jwk": {"kty": "oct", "k": "c2VjcmV0"}},
                                          {"jti": new_jti(), "htm": "POST", "htu": tu, "iat": now},
                                          hmac_key=b"secret"),
        "not_a_jws": lambda: "not-a-proof",
        "empty": lambda: "",
    }


BAD_CASES = ["htm_get", "htm_lowercase", "htu_other_path", "htu_other_host", "htu_other_port",
             "htu_http", "htu_trailing_slash", "htu_missing", "iat_stale_70s", "iat_future_60s",
             "iat_missing", "jti_missing", "private_key_in_jwk", "alg_none", "alg_hs256",
             "alg_rs256", "typ_jwt", "typ_missing", "no_jwk", "bad_signature", "symmetric_jwk",
             "not_a_jws", "empty"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_dpop_bad_proof_refused(asrv, keys, case):
    proof = _bad(asrv, keys)[case]()
    asrv.sent_secrets.append(proof)
    r = asrv.token_jwt("dpop-client", key=keys.dpop_client, cert=None, dpop=proof)
    error_of(r, 400, "invalid_dpop_proof")
    # also for a client that is not DPoP-bound (a proof, if sent, must be valid)
    r = asrv.token_jwt("jwt-client", key=keys.es, cert="alice", dpop=proof)
    error_of(r, 400, "invalid_dpop_proof")


def test_dpop_reused_jti_refused(asrv, keys):
    proof = asrv.proof(keys.dpop)
    r = asrv.token_jwt("dpop-client", key=keys.dpop_client, cert=None, dpop=proof)
    check_token_response(asrv, r, client_id="dpop-client", scope="accounts",
                         jkt=keys.dpop.thumbprint())
    r = asrv.token_jwt("dpop-client", key=keys.dpop_client, cert=None, dpop=proof)
    error_of(r, 400, "invalid_dpop_proof")
    # same jti, freshly signed proof by the same key: still a replay
    jti = decode_jwt(proof)[1]["jti"]
    r = asrv.token_jwt("dpop-client", key=keys.dpop_client, cert=None,
                       dpop=asrv.proof(keys.dpop, jti=jti))
    error_of(r, 400, "invalid_dpop_proof")


def test_dpop_two_headers_refused(asrv, keys):
    p1, p2 = asrv.proof(keys.dpop), asrv.proof(keys.dpop)
    r = asrv.token_jwt("dpop-client", key=keys.dpop_client, cert=None,
                       headers=[("DPoP", p1), ("DPoP", p2)])
    error_of(r, 400, "invalid_dpop_proof")
    # and the header name is case-insensitive: "dpop" + "DPoP" are two
    p1, p2 = asrv.proof(keys.dpop), asrv.proof(keys.dpop)
    r = asrv.token_jwt("dpop-client", key=keys.dpop_client, cert=None,
                       headers=[("dpop", p1), ("DPoP", p2)])
    error_of(r, 400, "invalid_dpop_proof")


def test_dpop_proof_with_comma_joined_values_refused(asrv, keys):
    p1, p2 = asrv.proof(keys.dpop), asrv.proof(keys.dpop)
    r = asrv.token_jwt("dpop-client", key=keys.dpop_client, cert=None, dpop=p1 + ", " + p2)
    error_of(r, 400, "invalid_dpop_proof")


def test_server_healthy_after_dpop_abuse(asrv):
    asrv.srv.assert_healthy()
