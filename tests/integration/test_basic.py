"""Basic request handling: built-in and static routes, errors, HEAD,
keep-alive, pipelining, standard response headers, curl."""

import email.utils
import http.client
import re

import pytest

import portcullis_helpers as H


@pytest.fixture(scope="module")
def srv(make_module_server):
    return make_module_server(name="basic")


def assert_problem(r, status, title=None):
    assert r.status == status, r
    assert r.header("content-type") == "application/problem+json", r
    assert r.header("cache-control") == "no-store", r
    doc = r.json()
    assert doc["type"] == "about:blank"
    assert doc["status"] == status
    assert isinstance(doc["title"], str) and doc["title"]
    if title:
        assert doc["title"] == title
    assert isinstance(doc["detail"], str) and doc["detail"]
    assert doc["request_id"] == r.header("x-request-id")
    return doc


def test_healthz(srv):
    r = srv.get("/healthz")
    assert r.status == 200
    assert r.header("content-type") == "application/json"
    assert r.json() == {"status": "ok"}


def test_static_route(srv):
    r = srv.get("/hello")
    assert r.status == 200, r
    assert r.header("content-type") == "application/json"
    assert r.body == b'{"hello":"world"}'
    assert r.header("content-length") == str(len(r.body))


def test_static_route_with_template_and_body(srv):
    r = srv.get("/echo-len/42", method="POST", body=b"x" * 100)
    assert r.status == 201, r
    assert r.body == b"ok"
    r = srv.get("/echo-len/other-id", method="POST", body=b"")
    assert r.status == 201, r


def test_not_found(srv):
    r = srv.get("/nope")
    assert_problem(r, 404, "Not Found")
    # the template does not match a path with an extra segment
    assert_problem(srv.get("/echo-len/1/2", method="POST", body=b""), 404)


UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_core_refusals_carry_an_interaction_id(srv):
    # FAPI resource-server tests expect x-fapi-interaction-id on every answer,
    # including the refusals the core makes before any handler runs.
    r = srv.get("/nope")
    assert r.status == 404 and UUID4.match(r.header("x-fapi-interaction-id") or ""), r
    r = srv.get("/nope", headers={"x-fapi-interaction-id": "client-chosen-42"})
    assert r.header("x-fapi-interaction-id") == "client-chosen-42", r
    r = srv.get("/hello", method="DELETE", headers={"x-fapi-interaction-id": "not valid!"})
    assert r.status == 405 and UUID4.match(r.header("x-fapi-interaction-id") or ""), r
    r = srv.get("/a/../hello", headers={"x-fapi-interaction-id": "abc-1"})
    assert r.status == 400 and r.header("x-fapi-interaction-id") == "abc-1", r
    # a normal answer from a static route is the handler's business
    assert srv.get("/hello").header("x-fapi-interaction-id") is None


def test_method_not_allowed_lists_allow(srv):
    r = srv.get("/hello", method="POST", body=b"{}")
    doc = assert_problem(r, 405, "Method Not Allowed")
    assert r.header("allow") == "GET, HEAD"
    assert doc["status"] == 405
    r = srv.get("/hello", method="DELETE")
    assert r.status == 405 and r.header("allow") == "GET, HEAD"
    # a POST-only route advertises POST
    r = srv.get("/echo-len/7", method="GET")
    assert r.status == 405, r
    assert "POST" in [m.strip() for m in r.header("allow").split(",")]


def test_head_content_length_matches_get(srv):
    # finding #1 (fixed): HEAD used to send Content-Length: 0
    get = srv.get("/hello")
    head = srv.get("/hello", method="HEAD")
    assert head.header("content-length") == get.header("content-length"), head


def test_head(srv):
    with srv.connect() as c:
        head = c.request("HEAD", "/hello")
        assert head.status == 200, head
        assert head.header("content-type") == "application/json"
        assert head.header("x-request-id")
        # no body was sent: the next response on the same connection parses
        r = c.request("GET", "/healthz")
        assert r.status == 200 and r.json() == {"status": "ok"}, r
    with srv.connect() as c:
        head = c.request("HEAD", "/healthz")
        assert head.status == 200
        assert c.request("GET", "/hello").body == b'{"hello":"world"}'


def test_standard_headers(srv):
    ids = set()
    for path in ("/healthz", "/hello", "/nope"):
        r = srv.get(path)
        date = r.header("date")
        assert date, r
        assert re.fullmatch(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT", date), date
        assert email.utils.parsedate_to_datetime(date) is not None
        assert r.header("content-length") == str(len(r.body))
        rid = r.header("x-request-id")
        assert rid and re.fullmatch(r"[A-Za-z0-9_-]{8,}", rid), rid
        ids.add(rid)
    assert len(ids) == 3, "X-Request-Id must be unique per request"


def test_keep_alive_http_client(srv, pki):
    ctx = H.client_context(pki)
    conn = http.client.HTTPSConnection("localhost", srv.port, context=ctx, timeout=5)
    try:
        socks = set()
        for i in range(5):
            path = "/hello" if i % 2 else "/healthz"
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200, body
            assert resp.getheader("connection", "").lower() != "close"
            socks.add(id(conn.sock))
        assert len(socks) == 1, "http.client reconnected: keep-alive not honoured"
    finally:
        conn.close()


def test_keep_alive_raw(srv):
    with srv.connect() as c:
        for i in range(10):
            r = c.request("GET", "/hello")
            assert r.status == 200 and r.body == b'{"hello":"world"}', (i, r)
        # an error response that is not a refusal keeps the connection
        assert c.request("GET", "/nope").status == 404
        assert c.request("GET", "/healthz").status == 200


def test_http10_closes(srv):
    with srv.connect() as c:
        c.send(b"GET /hello HTTP/1.0\r\nHost: localhost\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.body == b'{"hello":"world"}', r
        assert c.is_closed(), "HTTP/1.0 without keep-alive must be closed after the response"


def test_connection_close_honoured(srv):
    with srv.connect() as c:
        r = c.request("GET", "/hello", headers={"Connection": "close"})
        assert r.status == 200
        assert (r.header("connection") or "").lower() == "close", r
        assert c.is_closed()


def test_pipelining(srv):
    with srv.connect() as c:
        c.send(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n"
               b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
               b"GET /nope HTTP/1.1\r\nHost: localhost\r\n\r\n")
        r1 = c.read_response()
        r2 = c.read_response()
        r3 = c.read_response()
        assert (r1.status, r1.body) == (200, b'{"hello":"world"}'), r1
        assert (r2.status, r2.json()) == (200, {"status": "ok"}), r2
        assert r3.status == 404, r3
        # the connection is still usable
        assert c.request("GET", "/healthz").status == 200


def test_pipelining_with_body(srv):
    with srv.connect() as c:
        c.send(b"POST /echo-len/1 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello"
               b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
        r1 = c.read_response()
        r2 = c.read_response()
        assert (r1.status, r1.body) == (201, b"ok"), r1
        assert (r2.status, r2.body) == (200, b'{"hello":"world"}'), r2


def test_chunked_request_body(srv):
    with srv.connect() as c:
        c.send(b"POST /echo-len/9 HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        r = c.read_response()
        assert (r.status, r.body) == (201, b"ok"), r
        assert c.request("GET", "/healthz").status == 200


def test_curl_without_client_cert(srv, pki):
    r = H.curl(f"{srv.url}/hello", pki)
    assert r.rc == 0 and r.status == 200, r
    assert r.body == '{"hello":"world"}'
    r = H.curl(f"{srv.url}/whoami", pki)
    assert r.rc == 0 and r.status == 200, r
    doc = r.json()
    assert doc["client_certificate"] is False
    assert doc["tls_version"] in ("TLSv1.2", "TLSv1.3")


def test_curl_with_client_cert(srv, pki):
    r = H.curl(f"{srv.url}/whoami", pki, client="alice")
    assert r.rc == 0 and r.status == 200, r
    doc = r.json()
    assert doc["client_certificate"] is True
    assert doc["subject"] == pki.subjects["alice"]
    assert doc["ca_verified"] is True
    assert doc["x5t#S256"] == H.x5t_s256_of_pem(pki.cert("alice")[0])


def test_curl_by_ip_address(srv, pki):
    # the default server certificate carries IP:127.0.0.1
    r = H.curl(f"https://127.0.0.1:{srv.port}/healthz", pki)
    assert r.rc == 0 and r.status == 200, r


def test_requests_library(srv, pki):
    requests = pytest.importorskip("requests")
    with requests.Session() as s:
        s.trust_env = False          # REQUESTS_CA_BUNDLE would override s.verify
        s.verify = str(pki.ca)
        for _ in range(3):
            r = s.get(f"{srv.url}/hello", timeout=5)
            assert r.status_code == 200 and r.json() == {"hello": "world"}
        r = s.get(f"{srv.url}/whoami", timeout=5)
        assert r.json()["client_certificate"] is False
    # requests pools connections per host, not per client certificate: use a
    # fresh session for the mutual-TLS request
    with requests.Session() as s:
        s.trust_env = False
        s.verify = str(pki.ca)
        s.cert = tuple(map(str, pki.cert("bob")))
        r = s.get(f"{srv.url}/whoami", timeout=5)
        assert r.status_code == 200
        doc = r.json()
        assert doc["client_certificate"] is True
        assert doc["subject"] == pki.subjects["bob"]
        assert doc["x5t#S256"] == H.x5t_s256_of_pem(pki.cert("bob")[0])
