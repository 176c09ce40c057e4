"""JOSE and transport corner cases an attacker would try: crit, duplicate
JSON members, keys smuggled in headers, odd claim types, certificates from
the wrong CA or out of their validity period, and HTTP framing."""

import datetime
import json
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import portcullis_helpers as H
from as_helpers import (FORM, JWT_BEARER, OTHER_RESOURCE, RESOURCE, Key, b64u,
                        check_token_response, decode_jwt, error_of, new_jti,
                        write_jwks)

CC = ("grant_type", "client_credentials")


def raw_jws(header_text, payload_text, key):
    """A JWS over exactly these header/payload bytes (duplicate members)."""
    si = (b64u(header_text) + "." + b64u(payload_text)).encode()
    return si.decode() + "." + b64u(key.sign(si))


def assertion_form(assertion):
    return [CC, ("client_assertion_type", JWT_BEARER), ("client_assertion", assertion)]


def alice_x5t(a):
    return H.x5t_s256_of_pem(a.pki.cert("alice")[0])


# ------------------------------------------------------------ client assertions

def test_assertion_crit_refused(asrv):
    error_of(asrv.token_jwt(header={"crit": ["foo"], "foo": 1}), 401, "invalid_client")
    error_of(asrv.token_jwt(header={"crit": ["b64"], "b64": False}), 401, "invalid_client")


@pytest.mark.parametrize("where", ["aud_issuer_first", "aud_issuer_last", "alg_none_last",
                                   "sub_twice"])
def test_assertion_duplicate_members_refused(asrv, keys, where):
    """RFC 7515 §4 / RFC 7519 §4: reject duplicate names or take the last one;
    never act on the first."""
    n = int(time.time())
    iss = asrv.issuer
    body = {
        "aud_issuer_first": '"aud":"%s","aud":"https://evil.example"' % iss,
        "aud_issuer_last": '"aud":"https://evil.example","aud":"%s"' % iss,
        "alg_none_last": '"aud":"%s"' % iss,
        "sub_twice": '"aud":"%s","sub":"jwt-ps"' % iss,
    }[where]
    payload = '{"iss":"jwt-client","sub":"jwt-client",%s,"jti":"%s","iat":%d,"exp":%d}' % (
        body, new_jti(), n, n + 50)
    header = ('{"alg":"ES256","kid":"es-1","alg":"none"}' if where == "alg_none_last"
              else '{"alg":"ES256","kid":"es-1"}')
    r = asrv.post("/token", assertion_form(raw_jws(header, payload, keys.es)), client="alice")
    if where == "aud_issuer_last" and r.status == 200:
        return      # a last-member-wins parser may accept this one
    error_of(r, 401, "invalid_client")


def test_assertion_embedded_jwk_not_trusted(asrv, keys):
    """A key in the assertion header (jwk/jku/x5c) is never used to verify it."""
    att = keys.attacker
    for hdr in ({"jwk": att.public_jwk(kid=False, meta=False)},
                {"jku": "https://evil.example/jwks.json"},
                {"x5u": "https://evil.example/cert.pem"},
                {"jwk": att.public_jwk(kid=False, meta=False), "kid": None}):
        error_of(asrv.token_jwt(key=att, header=hdr), 401, "invalid_client")


@pytest.mark.parametrize("claims", [
    {"exp": "EXP_STR"}, {"exp": 1e300}, {"exp": None, "iat": "NOW"}, {"exp": True},
    {"iat": "NOW_STR"}, {"nbf": "NOW_STR"}, {"sub": 42, "iss": 42}, {"jti": 12345},
    {"jti": "x" * 300}, {"jti": ""},
])
def test_assertion_claim_types(asrv, claims):
    n = int(time.time())
    subst = {"EXP_STR": str(n + 50), "NOW": n, "NOW_STR": str(n)}
    claims = {k: subst.get(v, v) if isinstance(v, str) else v for k, v in claims.items()}
    error_of(asrv.token_jwt(claims=claims), 401, "invalid_client")


def test_assertion_without_kid_single_key(asrv):
    """No kid with a single registered key: either the key is used or the
    assertion is refused as invalid_client; never a crash or a 5xx."""
    r = asrv.token_jwt(header={"kid": None})
    if r.status != 200:
        error_of(r, 401, "invalid_client")
    asrv.srv.assert_healthy()


# ------------------------------------------------------------ DPoP

def test_dpop_crit_refused(asrv, keys):
    r = asrv.token_jwt("dpop-client", key=keys.dpop_client, cert=None,
                       dpop=asrv.proof(header={"crit": ["foo"], "foo": 1}))
    error_of(r, 400, "invalid_dpop_proof")


def test_dpop_htu_with_userinfo_refused(asrv, keys):
    r = asrv.token_jwt("dpop-client", key=keys.dpop_client, cert=None,
                       dpop=asrv.proof(htu=f"https://u@localhost:{asrv.port}/token"))
    error_of(r, 400, "invalid_dpop_proof")


def test_dpop_jkt_ignores_optional_jwk_members(asrv, keys):
    k = keys.dpop
    jwk = dict(k.public_jwk(kid=False, meta=False), kid="some-kid", use="sig", alg="ES256")
    r = asrv.token_jwt("dpop-client", key=keys.dpop_client, cert=None,
                       dpop=asrv.proof(k, header={"jwk": jwk}))
    check_token_response(asrv, r, client_id="dpop-client", scope="accounts", jkt=k.thumbprint())


def test_dpop_alg_not_matching_key_refused(asrv, keys):
    # header says PS256 over an EC jwk (signed by an RSA key)
    r = asrv.token_jwt("dpop-client", key=keys.dpop_client, cert=None,
                       dpop=asrv.proof(keys.dpop, header={"alg": "PS256"}, signer=keys.dpop_ps))
    error_of(r, 400, "invalid_dpop_proof")
    # EdDSA header over an EC key
    r = asrv.token_jwt("dpop-client", key=keys.dpop_client, cert=None,
                       dpop=asrv.proof(keys.dpop, header={"alg": "EdDSA"}, signer=keys.dpop_ed))
    error_of(r, 400, "invalid_dpop_proof")


@pytest.mark.parametrize("claims", [{"iat": "NOW_STR"}, {"htm": ["POST"]}, {"htu": 1},
                                    {"jti": 7}, {"jti": "x" * 300}])
def test_dpop_claim_types(asrv, keys, claims):
    subst = {"NOW_STR": str(int(time.time()))}
    claims = {k: subst.get(v, v) if isinstance(v, str) else v for k, v in claims.items()}
    r = asrv.token_jwt("dpop-client", key=keys.dpop_client, cert=None,
                       dpop=asrv.proof(claims=claims))
    error_of(r, 400, "invalid_dpop_proof")


def test_dpop_duplicate_header_member(asrv, keys):
    """{"typ":"dpop+jwt","typ":"JWT"}: refused (or last-wins: still refused)."""
    k = keys.dpop
    jwk = json.dumps(k.public_jwk(kid=False, meta=False), separators=(",", ":"))
    header = '{"typ":"dpop+jwt","alg":"ES256","jwk":%s,"typ":"JWT"}' % jwk
    payload = json.dumps({"jti": new_jti(), "htm": "POST", "htu": asrv.token_url,
                          "iat": int(time.time())})
    r = asrv.token_jwt("dpop-client", key=keys.dpop_client, cert=None,
                       dpop=raw_jws(header, payload, k))
    error_of(r, 400, "invalid_dpop_proof")


# ------------------------------------------------------------ certificates

def test_dn_of_foreign_ca_certificate_refused_under_optional_no_ca(fresh_as, pki):
    """optional_no_ca lets any certificate through the handshake; a
    tls_client_auth client registered with mallory's DN must still be
    refused, since mallory's certificate is from a CA we do not trust."""
    clients = [{"client_id": "mallory-client", "token_endpoint_auth_method": "tls_client_auth",
                "tls_client_auth_subject_dn": pki.subjects["mallory"], "scope": "accounts"}]
    a = fresh_as(clients=clients)
    error_of(a.token_mtls("mallory-client", cert="mallory"), 401, "invalid_client")


def _self_signed(tmp_path, name, not_before, not_after):
    key = ec.generate_private_key(ec.SECP256R1())
    subj = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (x509.CertificateBuilder().subject_name(subj).issuer_name(subj)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .sign(key, hashes.SHA256()))
    pem, kf = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    kf.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))
    return (pem, kf), Key.from_public(key.public_key(), name)


@pytest.mark.parametrize("when", ["expired", "not_yet_valid", "valid"])
def test_self_signed_validity_period(fresh_as, tmp_path, when):
    now = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)
    nb, na = {"expired": (now - 10 * day, now - day),
              "not_yet_valid": (now + day, now + 10 * day),
              "valid": (now - day, now + day)}[when]
    cert, key = _self_signed(tmp_path, f"ss-{when}", nb, na)
    clients = [{"client_id": "ss-dated", "token_endpoint_auth_method":
                "self_signed_tls_client_auth",
                "jwks_file": write_jwks(tmp_path / "dated.jwks.json", key), "scope": "accounts"}]
    a = fresh_as(clients=clients)
    try:
        r = a.token_mtls("ss-dated", cert=cert)
    except (H.Closed, OSError) as e:       # refused in the handshake: also fine
        assert when != "valid", e
        return
    if when == "valid":
        check_token_response(a, r, client_id="ss-dated", scope="accounts",
                             x5t=H.x5t_s256_of_pem(cert[0]))
    else:
        error_of(r, 401, "invalid_client")


# ------------------------------------------------------------ HTTP framing

def test_chunked_form_body(asrv):
    body = "grant_type=client_credentials&client_id=mtls-client"
    chunked = f"{len(body) - 10:x}\r\n{body[:-10]}\r\n{10:x}\r\n{body[-10:]}\r\n0\r\n\r\n"
    with H.tls_connect(asrv.port, asrv.pki, client="alice") as c:
        r = c.request("POST", "/token", body=chunked,
                      headers=[("Content-Type", FORM), ("Transfer-Encoding", "chunked")])
    check_token_response(asrv, r, client_id="mtls-client", scope="accounts payments",
                         x5t=alice_x5t(asrv))


def test_keep_alive_requests_share_the_binding(asrv):
    body = "grant_type=client_credentials&client_id=mtls-client"
    jtis = set()
    with H.tls_connect(asrv.port, asrv.pki, client="alice") as c:
        for _ in range(3):
            r = c.request("POST", "/token", headers=[("Content-Type", FORM)], body=body)
            claims = check_token_response(asrv, r, client_id="mtls-client",
                                          scope="accounts payments", x5t=alice_x5t(asrv))
            jtis.add(claims["jti"])
    assert len(jtis) == 3


def test_plus_in_form_is_space(asrv):
    r = asrv.post("/token", "grant_type=client_credentials&client_id=mtls-client"
                  "&scope=accounts+payments", client="alice")
    check_token_response(asrv, r, client_id="mtls-client", scope="accounts payments",
                         x5t=alice_x5t(asrv))
    r = asrv.post("/token", "grant_type=client_credentials&client_id=mtls-client"
                  "&scope=accounts%20payments", client="alice")
    check_token_response(asrv, r, client_id="mtls-client", scope="accounts payments",
                         x5t=alice_x5t(asrv))


def test_parameter_names_are_case_sensitive(asrv):
    r = asrv.post("/token", [("Grant_Type", "client_credentials"), ("client_id", "mtls-client")],
                  client="alice")
    error_of(r, 400, "invalid_request")


def test_multiple_resources(asrv):
    """RFC 8707 §2 allows several resource parameters; a server that issues
    one audience per token answers invalid_target (or issues a token for
    all of them)."""
    r = asrv.token_mtls(extra=[("resource", RESOURCE), ("resource", OTHER_RESOURCE)])
    if r.status == 200:
        aud = decode_jwt(asrv.access_token(r))[1]["aud"]
        assert sorted(aud) == sorted([RESOURCE, OTHER_RESOURCE]), aud
    else:
        error_of(r, 400, "invalid_target")
