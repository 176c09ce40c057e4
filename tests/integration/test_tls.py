"""TLS: protocol versions, TLS 1.2 cipher policy, client-certificate modes."""

import socket
import ssl
import warnings

import pytest

import portcullis_helpers as H

TLS12 = ssl.TLSVersion.TLSv1_2
TLS13 = ssl.TLSVersion.TLSv1_3


def mode_server(make_module_server, mode, **tls):
    cfg = {"server": {"tls": {"client_cert": mode, **tls}}}
    return make_module_server(cfg, name=f"tls-{mode}")


@pytest.fixture(scope="module")
def optional_srv(make_module_server):
    return mode_server(make_module_server, "optional")


@pytest.fixture(scope="module")
def required_srv(make_module_server):
    return mode_server(make_module_server, "required")


@pytest.fixture(scope="module")
def no_ca_srv(make_module_server):
    return mode_server(make_module_server, "optional_no_ca")


@pytest.fixture(scope="module")
def off_srv(make_module_server):
    return mode_server(make_module_server, "off")


def whoami(srv, client=None, version=None):
    ctx = H.client_context(srv.pki, client=client, max_version=version, min_version=version)
    with H.tls_connect(srv.port, srv.pki, ctx=ctx) as c:
        r = c.request("GET", "/whoami")
        assert r.status == 200, r
        return r.json()


def assert_refused(srv, client=None, version=None):
    """The server must not answer an HTTP request on this connection.
    TLS 1.2: the handshake fails.  TLS 1.3: the client's handshake completes
    before the server checks the certificate, so the alert arrives on the
    first read.  Returns the error text."""
    ctx = H.client_context(srv.pki, client=client, max_version=version, min_version=version)
    try:
        c = H.tls_connect(srv.port, srv.pki, ctx=ctx)
    except (ssl.SSLError, ConnectionResetError) as e:
        return str(e)
    with c:
        try:
            c.send(b"GET /whoami HTTP/1.1\r\nHost: localhost\r\n\r\n")
            r = c.read_response()
        except (H.Closed, BrokenPipeError, ConnectionResetError) as e:
            return str(e)
        pytest.fail(f"expected the TLS connection to be refused, got {r!r}")


# ---------------------------------------------------------------- versions

def test_tls11_refused_by_openssl(optional_srv):
    # SECLEVEL=0 so that the local OpenSSL is willing to offer TLS 1.1: the
    # refusal must come from the server (a protocol_version alert)
    rc, out, err = H.s_client(optional_srv.port, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    assert rc != 0, out
    assert "New, (NONE), Cipher is (NONE)" in out
    assert "alert protocol version" in err, err


def test_tls10_and_11_refused_by_python(optional_srv):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for lo, hi in ((ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1),
                       (ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1_1),
                       (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1)):
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_ciphers("DEFAULT@SECLEVEL=0")
            ctx.minimum_version = lo
            ctx.maximum_version = hi
            with pytest.raises(ssl.SSLError) as ei:
                H.tls_connect(optional_srv.port, optional_srv.pki, ctx=ctx)
            assert "PROTOCOL_VERSION" in str(ei.value).upper(), ei.value
    optional_srv.assert_healthy()


def test_tls12_aes_gcm(optional_srv):
    for cipher in ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384"):
        rc, out, err = H.s_client(optional_srv.port, "-tls1_2", "-cipher", cipher,
                                  "-CAfile", optional_srv.pki.ca, "-verify_return_error")
        assert rc == 0, err
        assert f"New, TLSv1.2, Cipher is {cipher}" in out, out
        ctx = H.client_context(optional_srv.pki, max_version=TLS12, ciphers=cipher)
        with H.tls_connect(optional_srv.port, optional_srv.pki, ctx=ctx) as c:
            assert c.sock.version() == "TLSv1.2"
            assert c.sock.cipher()[0] == cipher
            r = c.request("GET", "/whoami")
            assert r.json()["tls_version"] == "TLSv1.2"
            assert r.json()["tls_cipher"] == cipher


@pytest.mark.parametrize("cipher", [
    "ECDHE-ECDSA-AES128-SHA256",       # CBC
    "ECDHE-ECDSA-AES128-SHA",          # CBC, SHA-1 MAC
    "ECDHE-ECDSA-CHACHA20-POLY1305",   # not in the TLS 1.2 list
])
def test_tls12_other_suites_refused(optional_srv, cipher):
    rc, out, err = H.s_client(optional_srv.port, "-tls1_2", "-cipher", f"{cipher}@SECLEVEL=0")
    assert rc != 0, out
    assert "Cipher is (NONE)" in out
    assert "handshake failure" in err, err
    ctx = H.client_context(optional_srv.pki, max_version=TLS12, ciphers=f"{cipher}@SECLEVEL=0")
    with pytest.raises(ssl.SSLError, match="HANDSHAKE_FAILURE"):
        H.tls_connect(optional_srv.port, optional_srv.pki, ctx=ctx)
    optional_srv.assert_healthy()


def test_tls12_server_preference(optional_srv):
    a, b = "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384"
    chosen = set()
    for order in (f"{a}:{b}", f"{b}:{a}"):
        ctx = H.client_context(optional_srv.pki, max_version=TLS12, ciphers=order)
        with H.tls_connect(optional_srv.port, optional_srv.pki, ctx=ctx) as c:
            chosen.add(c.sock.cipher()[0])
    assert len(chosen) == 1, f"the server followed the client's order: {chosen}"


def test_tls13(optional_srv):
    rc, out, err = H.s_client(optional_srv.port, "-tls1_3", "-CAfile", optional_srv.pki.ca,
                              "-verify_return_error")
    assert rc == 0, err
    assert "New, TLSv1.3, Cipher is TLS_" in out
    doc = whoami(optional_srv, version=TLS13)
    assert doc["tls_version"] == "TLSv1.3"
    assert doc["tls_cipher"].startswith("TLS_")


def test_min_version_13_refuses_tls12(make_server):
    srv = make_server({"server": {"tls": {"min_version": "1.3"}}})
    ctx = H.client_context(srv.pki, max_version=TLS12)
    with pytest.raises(ssl.SSLError, match="PROTOCOL_VERSION"):
        H.tls_connect(srv.port, srv.pki, ctx=ctx)
    assert whoami(srv)["tls_version"] == "TLSv1.3"


def test_rsa_server_certificate(make_server, pki, tmp_path):
    d = tmp_path / "rsa"
    d.mkdir()
    for f in ("ca.pem", "ca.key"):
        (d / f).write_bytes((pki.dir / f).read_bytes())
    H.portcullis("pki", "issue-server", "--dir", d, "--key-type", "rsa2048", check=True)
    srv = make_server({"server": {"tls": {"cert": str(d / "server.pem"), "key": str(d / "server.key")}}})
    for cipher in ("ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384"):
        ctx = H.client_context(pki, max_version=TLS12, ciphers=cipher)
        with H.tls_connect(srv.port, pki, ctx=ctx) as c:
            assert c.sock.cipher()[0] == cipher
            assert c.request("GET", "/healthz").status == 200
    ctx = H.client_context(pki, max_version=TLS12, ciphers="AES128-GCM-SHA256")   # RSA kx
    with pytest.raises(ssl.SSLError, match="HANDSHAKE_FAILURE"):
        H.tls_connect(srv.port, pki, ctx=ctx)


def test_server_certificate_verifies_for_localhost_and_ip(optional_srv):
    for name in ("localhost", "127.0.0.1"):
        ctx = H.client_context(optional_srv.pki)
        with H.tls_connect(optional_srv.port, optional_srv.pki, ctx=ctx, server_hostname=name) as c:
            der = c.sock.getpeercert(binary_form=True)
            assert H.x5t_s256_of_der(der) == H.x5t_s256_of_pem(optional_srv.pki.server_cert)
    ctx = H.client_context(optional_srv.pki)
    with pytest.raises(ssl.SSLCertVerificationError):
        H.tls_connect(optional_srv.port, optional_srv.pki, ctx=ctx, server_hostname="evil.example")


def test_garbage_instead_of_handshake(optional_srv):
    s = H.tcp_connect(optional_srv.port)
    try:
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        s.settimeout(5)
        try:
            data = s.recv(4096)
        except ConnectionResetError:
            data = b""
        assert not data.startswith(b"HTTP/1.1 200"), data
    finally:
        s.close()
    optional_srv.assert_healthy()
    optional_srv.wait_log("tls_handshake_failed")


# ------------------------------------------------------------ client_cert modes

@pytest.mark.parametrize("version", [TLS12, TLS13], ids=["tls12", "tls13"])
def test_required_no_cert_refused(required_srv, version):
    err = assert_refused(required_srv, client=None, version=version)
    assert "HANDSHAKE_FAILURE" in err or "CERTIFICATE_REQUIRED" in err, err


@pytest.mark.parametrize("client", ["mallory", "selfie"])
@pytest.mark.parametrize("version", [TLS12, TLS13], ids=["tls12", "tls13"])
def test_required_wrong_ca_refused(required_srv, client, version):
    err = assert_refused(required_srv, client=client, version=version)
    assert "UNKNOWN_CA" in err, err


def test_required_curl(required_srv, pki):
    r = H.curl(f"{required_srv.url}/whoami", pki)
    assert r.rc != 0 and not r.status, r
    r = H.curl(f"{required_srv.url}/whoami", pki, client="mallory")
    assert r.rc != 0 and not r.status, r
    r = H.curl(f"{required_srv.url}/whoami", pki, client="alice")
    assert r.rc == 0 and r.status == 200, r
    assert r.json()["subject"] == pki.subjects["alice"]


@pytest.mark.parametrize("version", [TLS12, TLS13], ids=["tls12", "tls13"])
@pytest.mark.parametrize("client", ["alice", "bob"])
def test_required_good_cert(required_srv, pki, client, version):
    doc = whoami(required_srv, client=client, version=version)
    assert doc["client_certificate"] is True
    assert doc["ca_verified"] is True
    assert doc["subject"] == pki.subjects[client]
    assert doc["issuer"] == "CN=portcullis development CA,O=portcullis dev"
    pem = pki.cert(client)[0]
    assert doc["x5t#S256"] == H.x5t_s256_of_pem(pem)
    assert doc["x5t#S256"] == H.portcullis("pki", "thumbprint", pem, check=True).stdout.strip()
    assert doc["tls_version"] == {TLS12: "TLSv1.2", TLS13: "TLSv1.3"}[version]
    required_srv.assert_healthy()


@pytest.mark.parametrize("version", [TLS12, TLS13], ids=["tls12", "tls13"])
def test_optional_no_cert_ok(optional_srv, version):
    doc = whoami(optional_srv, version=version)
    assert doc["client_certificate"] is False
    assert "x5t#S256" not in doc or doc["x5t#S256"] is None


@pytest.mark.parametrize("client", ["mallory", "selfie"])
@pytest.mark.parametrize("version", [TLS12, TLS13], ids=["tls12", "tls13"])
def test_optional_bad_cert_refused(optional_srv, client, version):
    err = assert_refused(optional_srv, client=client, version=version)
    assert "UNKNOWN_CA" in err, err
    optional_srv.assert_healthy()


def test_optional_good_cert(optional_srv, pki):
    doc = whoami(optional_srv, client="bob")
    assert doc["client_certificate"] is True and doc["ca_verified"] is True
    assert doc["subject"] == pki.subjects["bob"]


@pytest.mark.parametrize("version", [TLS12, TLS13], ids=["tls12", "tls13"])
def test_optional_no_ca_self_signed(no_ca_srv, pki, version):
    doc = whoami(no_ca_srv, client="selfie", version=version)
    assert doc["client_certificate"] is True
    assert doc["ca_verified"] is False
    assert doc["subject"] == pki.subjects["selfie"]
    pem = pki.cert("selfie")[0]
    tp = H.portcullis("pki", "thumbprint", pem, check=True).stdout.strip()
    assert doc["x5t#S256"] == tp == H.x5t_s256_of_pem(pem)


def test_optional_no_ca_other_ca_and_good_ca(no_ca_srv, pki):
    doc = whoami(no_ca_srv, client="mallory")
    assert doc["client_certificate"] is True and doc["ca_verified"] is False
    assert doc["x5t#S256"] == H.x5t_s256_of_pem(pki.cert("mallory")[0])
    doc = whoami(no_ca_srv, client="alice")
    assert doc["client_certificate"] is True and doc["ca_verified"] is True
    assert doc["x5t#S256"] == H.x5t_s256_of_pem(pki.cert("alice")[0])
    assert whoami(no_ca_srv)["client_certificate"] is False


def test_off_does_not_request_cert(off_srv, pki):
    rc, out, err = H.s_client(off_srv.port, "-tls1_3", "-msg")
    assert "CertificateRequest" not in out, out
    rc, out, err = H.s_client(off_srv.port, "-tls1_2", "-msg")
    assert "CertificateRequest" not in out, out
    for client in ("alice", "mallory"):
        r = H.curl(f"{off_srv.url}/whoami", pki, client=client)
        assert r.rc == 0 and r.status == 200, r
        assert r.json()["client_certificate"] is False, r
        assert whoami(off_srv, client=client)["client_certificate"] is False


def test_optional_requests_cert(optional_srv):
    rc, out, err = H.s_client(optional_srv.port, "-tls1_3", "-msg")
    assert "CertificateRequest" in out, out


def test_client_ca_list(make_server, pki):
    srv = make_server({"server": {"tls": {"client_cert": "required",
                                          "client_ca": [str(pki.ca), str(pki.other_ca)]}}})
    doc = whoami(srv, client="mallory")
    assert doc["ca_verified"] is True and doc["subject"] == pki.subjects["mallory"]
    doc = whoami(srv, client="alice")
    assert doc["ca_verified"] is True
    assert "UNKNOWN_CA" in assert_refused(srv, client="selfie")


def test_handshake_failure_logged(make_server):
    srv = make_server({"server": {"tls": {"client_cert": "required"}}})
    assert_refused(srv, client="mallory", version=TLS12)
    rec = srv.wait_log("tls_handshake_failed")
    assert rec["level"] == "info"
    assert rec["peer"].startswith("127.0.0.1:")
    srv.assert_healthy()
