"""Client authentication with certificates (RFC 8705 §2): tls_client_auth and
self_signed_tls_client_auth, and certificate-bound tokens (§3)."""

import ssl

import pytest

import portcullis_helpers as H
from as_helpers import check_token_response, error_of


def test_tls_client_auth_ok_via_curl(asrv, pki):
    r = H.curl(asrv.token_url, pki, client="alice",
               args=["-d", "grant_type=client_credentials&client_id=mtls-client"])
    assert r.rc == 0 and r.status == 200, r
    assert "cache-control: no-store" in r.header_text.lower(), r.header_text
    body = r.json()
    assert body["token_type"] == "Bearer"
    tok = body["access_token"]
    asrv.sent_secrets.append(tok)
    header, claims = asrv.verify_token(tok)
    assert header["typ"] == "at+jwt"
    assert claims["client_id"] == "mtls-client"
    assert claims["cnf"] == {"x5t#S256": H.x5t_s256_of_pem(pki.cert("alice")[0])}


def test_tls_client_auth_ok_full_check(asrv, pki):
    r = asrv.token_mtls()
    check_token_response(asrv, r, client_id="mtls-client", scope="accounts payments",
                         x5t=H.x5t_s256_of_pem(pki.cert("alice")[0]))


def test_tls_client_auth_san_dns_client(asrv, pki):
    """A client registered by tls_client_auth_san_dns (alice.example)."""
    r = asrv.token_mtls("short-client", cert="alice")
    check_token_response(asrv, r, client_id="short-client", scope="accounts", lifetime=1,
                         x5t=H.x5t_s256_of_pem(pki.cert("alice")[0]))


def test_tls_client_auth_other_subject(asrv):
    r = asrv.token_mtls("mtls-client", cert="bob")
    error_of(r, 401, "invalid_client")


def test_tls_client_auth_no_certificate(asrv):
    r = asrv.token_mtls("mtls-client", cert=None)
    error_of(r, 401, "invalid_client")


def test_tls_client_auth_self_signed_cert_with_registered_dn(fresh_as, keys, pki, tmp_path):
    """A self-signed certificate that carries exactly the registered subject
    DN must not pass tls_client_auth (it does not chain to the client CA)."""
    a = fresh_as()
    H.portcullis("pki", "issue-client", "--dir", tmp_path, "--name", "fake-alice",
                 "--self-signed", "--subject", pki.subjects["alice"], check=True)
    r = a.token_mtls("mtls-client", cert=(tmp_path / "fake-alice.pem", tmp_path / "fake-alice.key"))
    error_of(r, 401, "invalid_client")


def test_tls_client_auth_other_ca_refused_in_handshake(fresh_as, pki):
    """With client_cert: optional a certificate from an unknown CA fails the
    TLS handshake (TLS 1.3: the alert arrives after the handshake, at the
    first read)."""
    a = fresh_as(client_cert="optional")
    with pytest.raises((ssl.SSLError, H.Closed, ConnectionResetError, BrokenPipeError)):
        a.token_mtls("mtls-client", cert="mallory")
    # curl sees it too
    r = H.curl(a.token_url, pki, client="mallory",
               args=["-d", "grant_type=client_credentials&client_id=mtls-client"])
    assert r.rc != 0 and r.status in (None, 0), r
    # and the server is fine and still issues to the right certificate
    check_token_response(a, a.token_mtls(), client_id="mtls-client", scope="accounts payments",
                         x5t=H.x5t_s256_of_pem(pki.cert("alice")[0]))


def test_self_signed_registered_ok(asrv, pki):
    r = asrv.token_mtls("ss-client", cert="selfie")
    check_token_response(asrv, r, client_id="ss-client", scope="accounts",
                         x5t=H.x5t_s256_of_pem(pki.cert("selfie")[0]))


def test_self_signed_unregistered(asrv, keys):
    r = asrv.token_mtls("ss-client", cert=keys.stranger)
    error_of(r, 401, "invalid_client")


def test_self_signed_client_with_ca_cert(asrv):
    """alice's CA-issued certificate does not carry a key registered for
    ss-client."""
    r = asrv.token_mtls("ss-client", cert="alice")
    error_of(r, 401, "invalid_client")


def test_self_signed_no_certificate(asrv):
    r = asrv.token_mtls("ss-client", cert=None)
    error_of(r, 401, "invalid_client")


def test_tls_client_auth_with_unknown_client_id(asrv):
    r = asrv.token_mtls("no-such-client", cert="alice")
    error_of(r, 401, "invalid_client")


def test_mtls_client_with_private_key_jwt_client_cert(asrv):
    """A private_key_jwt client cannot authenticate with just a certificate."""
    r = asrv.token_mtls("jwt-client", cert="alice")
    error_of(r, 401, "invalid_client")
