"""server.limits: sizes, counts, timeouts and connection limits.
After every refusal the server must keep serving."""

import socket
import ssl
import time

import pytest

import portcullis_helpers as H


def limits(**kw):
    return {"server": {"limits": kw}}


def assert_refusal(r, status, key):
    """A refusal: problem+json naming the config key, Connection: close."""
    assert r.status == status, r
    assert r.header("content-type") == "application/problem+json", r
    assert r.header("cache-control") == "no-store", r
    assert (r.header("connection") or "").lower() == "close", r
    doc = r.json()
    assert doc["status"] == status
    assert f"server.limits.{key}" in doc["detail"], doc
    assert doc["request_id"] == r.header("x-request-id")
    return doc


def refused_logged(srv, status, reason):
    rec = srv.wait_log("request_refused", status=status, reason=reason)
    assert rec["level"] == "warn", rec
    return rec


# ------------------------------------------------------------ header_bytes

def test_header_bytes(make_server):
    srv = make_server(limits(header_bytes="2KiB"))
    # just under the limit is fine
    with srv.connect() as c:
        r = c.request("GET", "/hello", headers={"X-Pad": "a" * 1500})
        assert r.status == 200, r
    with srv.connect() as c:
        c.send(b"GET /hello HTTP/1.1\r\nHost: localhost\r\nX-Pad: " + b"a" * 4000 + b"\r\n\r\n")
        assert_refusal(c.read_response(), 431, "header_bytes")
        assert c.is_closed()
    # a long request line counts too
    with srv.connect() as c:
        c.send(b"GET /hello?" + b"q" * 3000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n")
        r = c.read_response()
        assert r.status in (414, 431), r
        assert c.is_closed()
    srv.assert_healthy()
    refused_logged(srv, 431, "header_bytes")


def test_header_bytes_many_small_headers(make_server):
    srv = make_server(limits(header_bytes="1KiB", header_count=1000))
    head = b"GET /hello HTTP/1.1\r\nHost: localhost\r\n" + b"".join(
        b"X-H%d: %s\r\n" % (i, b"v" * 20) for i in range(60)) + b"\r\n"
    assert len(head) > 1024
    resps, closed = srv.raw(head)
    assert len(resps) == 1 and closed, resps
    assert_refusal(resps[0], 431, "header_bytes")
    srv.assert_healthy()


# ------------------------------------------------------------ header_count

def test_header_count(make_server):
    srv = make_server(limits(header_count=10))
    ok = b"GET /hello HTTP/1.1\r\nHost: localhost\r\n" + b"".join(
        b"X-H%d: v\r\n" % i for i in range(8)) + b"\r\n"
    resps, _ = srv.raw(ok, timeout=1)
    assert resps and resps[0].status == 200, resps
    bad = b"GET /hello HTTP/1.1\r\nHost: localhost\r\n" + b"".join(
        b"X-H%d: v\r\n" % i for i in range(20)) + b"\r\n"
    resps, closed = srv.raw(bad)
    assert len(resps) == 1 and closed, resps
    assert_refusal(resps[0], 431, "header_count")
    srv.assert_healthy()
    refused_logged(srv, 431, "header_count")


# ------------------------------------------------------------ body_bytes

def test_body_bytes_declared(make_server):
    srv = make_server(limits(body_bytes="1KiB"))
    with srv.connect() as c:
        r = c.request("POST", "/echo-len/1", body=b"x" * 1024)
        assert r.status == 201, r
    with srv.connect() as c:
        # only the head is sent: the refusal must not wait for the body
        c.send(b"POST /echo-len/1 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1025\r\n\r\n")
        assert_refusal(c.read_response(), 413, "body_bytes")
        assert c.is_closed()
    with srv.connect() as c:
        c.send(b"POST /echo-len/1 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 99999999999\r\n\r\n")
        assert_refusal(c.read_response(), 413, "body_bytes")
    srv.assert_healthy()
    refused_logged(srv, 413, "body_bytes")


def test_body_bytes_chunked(make_server):
    srv = make_server(limits(body_bytes="1KiB"))
    with srv.connect() as c:
        c.send(b"POST /echo-len/2 HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"200\r\n" + b"a" * 512 + b"\r\n200\r\n" + b"b" * 512 + b"\r\n0\r\n\r\n")
        r = c.read_response()
        assert r.status == 201, r
    with srv.connect() as c:
        c.send(b"POST /echo-len/2 HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(3):
            c.send(b"200\r\n" + b"z" * 512 + b"\r\n")
        # the terminating chunk is never sent: the server must refuse on size
        assert_refusal(c.read_response(), 413, "body_bytes")
        assert c.is_closed()
    with srv.connect() as c:
        # one huge chunk: refused once more than body_bytes of it has arrived
        c.send(b"POST /echo-len/2 HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"100000\r\n" + b"y" * 2000)
        assert_refusal(c.read_response(), 413, "body_bytes")
    srv.assert_healthy()


# ------------------------------------------------------------ timeouts

def read_with_deadline(c, seconds):
    t0 = time.monotonic()
    r = c.read_response(timeout=seconds)
    return r, time.monotonic() - t0


@pytest.mark.slow
def test_header_timeout_partial_head(make_server):
    srv = make_server(limits(header_timeout="1s"))
    with srv.connect() as c:
        t0 = time.monotonic()
        c.send(b"GET /hello HTTP/1.1\r\nHost: localh")
        r = c.read_response(timeout=5)
        elapsed = time.monotonic() - t0
        assert_refusal(r, 408, "header_timeout")
        assert 0.8 <= elapsed <= 3.5, elapsed
        assert c.is_closed()
    srv.assert_healthy()
    refused_logged(srv, 408, "header_timeout")


@pytest.mark.slow
def test_header_timeout_slowloris_trickle(make_server):
    """Sending one byte at a time must not extend the head deadline."""
    srv = make_server(limits(header_timeout="1s"))
    head = b"GET /hello HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"s" * 200
    with srv.connect() as c:
        t0 = time.monotonic()
        c.settimeout(0.2)
        got = None
        for i in range(len(head)):
            if time.monotonic() - t0 > 5:
                break
            try:
                c.send(head[i:i + 1])
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                break
            try:
                c._fill()
            except (socket.timeout, TimeoutError):
                continue
            except H.Closed:
                break
            got = True
            break
        elapsed = time.monotonic() - t0
        assert got, f"no response while trickling for {elapsed:.1f}s"
        r = c.read_response(timeout=2)
        assert_refusal(r, 408, "header_timeout")
        assert elapsed <= 3.5, elapsed
    srv.assert_healthy()


@pytest.mark.slow
def test_header_timeout_covers_tls_handshake(make_server):
    srv = make_server(limits(header_timeout="1s"))
    s = H.tcp_connect(srv.port)
    try:
        t0 = time.monotonic()
        s.settimeout(5)
        try:
            data = s.recv(100)
        except ConnectionResetError:
            data = b""
        assert data == b"", data
        assert time.monotonic() - t0 <= 3.5
    finally:
        s.close()
    # a handshake that stops half way is cut off too
    s = H.tcp_connect(srv.port)
    try:
        s.sendall(b"\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03")   # truncated ClientHello
        s.settimeout(5)
        t0 = time.monotonic()
        try:
            while s.recv(100):
                pass
        except ConnectionResetError:
            pass
        assert time.monotonic() - t0 <= 3.5
    finally:
        s.close()
    srv.assert_healthy()


@pytest.mark.slow
def test_header_timeout_not_applied_to_complete_requests(make_server):
    srv = make_server(limits(header_timeout="1s", idle_timeout="10s"))
    with srv.connect() as c:
        for _ in range(4):
            assert c.request("GET", "/hello").status == 200
            time.sleep(0.4)


@pytest.mark.slow
def test_body_timeout(make_server):
    srv = make_server(limits(body_timeout="1s"))
    with srv.connect() as c:
        t0 = time.monotonic()
        c.send(b"POST /echo-len/3 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        r = c.read_response(timeout=5)
        elapsed = time.monotonic() - t0
        assert_refusal(r, 408, "body_timeout")
        assert 0.8 <= elapsed <= 3.5, elapsed
        assert c.is_closed()
    srv.assert_healthy()
    refused_logged(srv, 408, "body_timeout")


@pytest.mark.slow
def test_body_timeout_chunked(make_server):
    srv = make_server(limits(body_timeout="1s"))
    with srv.connect() as c:
        c.send(b"POST /echo-len/3 HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")
        r = c.read_response(timeout=5)
        assert_refusal(r, 408, "body_timeout")
    srv.assert_healthy()


@pytest.mark.slow
def test_idle_timeout(make_server):
    srv = make_server(limits(idle_timeout="1s"))
    with srv.connect() as c:
        assert c.request("GET", "/hello").status == 200
        t0 = time.monotonic()
        assert c.is_closed(timeout=5), "idle keep-alive connection not closed"
        elapsed = time.monotonic() - t0
        assert 0.8 <= elapsed <= 3.5, elapsed
    # activity keeps the connection open past the idle timeout
    with srv.connect() as c:
        for _ in range(5):
            assert c.request("GET", "/healthz").status == 200
            time.sleep(0.5)
    srv.assert_healthy()


# ------------------------------------------------------------ connection limits

def open_serving(srv, n, **kw):
    """Open n connections that have each completed a request (so the server
    has certainly counted them)."""
    conns = []
    for _ in range(n):
        c = srv.connect(**kw)
        conns.append(c)
        assert c.request("GET", "/healthz").status == 200
    return conns


def settle(srv, **kw):
    """Wait until a new connection is accepted again (earlier probe
    connections closed by the client may still be counted for a moment)."""
    def ok():
        try:
            with srv.connect(**kw) as c:
                return c.request("GET", "/healthz").status == 200
        except (H.Closed, OSError):
            return False
    assert H.wait_until(ok, timeout=5)
    time.sleep(0.2)


def test_max_connections(make_server):
    srv = make_server(limits(max_connections=3))
    settle(srv)
    conns = open_serving(srv, 3)
    try:
        with srv.connect() as extra:     # the TLS handshake completes
            extra.send(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
            r = extra.read_response()
            assert_refusal(r, 503, "max_connections")
            assert extra.is_closed()
        # the established connections still work
        for c in conns:
            assert c.request("GET", "/hello").status == 200
    finally:
        for c in conns:
            c.close()
    rec = srv.wait_log("conn_over_limit")
    assert rec["level"] == "warn" and rec["detail"] == "max_connections", rec
    refused_logged(srv, 503, "max_connections")
    # after the others closed, new connections are served (the server may
    # count a closed connection for a moment: wait for it, don't race it)
    settle(srv)
    srv.assert_healthy()


def test_max_connections_per_ip(make_server):
    srv = make_server(limits(max_connections_per_ip=2))
    settle(srv)
    conns = open_serving(srv, 2)
    try:
        with srv.connect() as extra:
            extra.send(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
            r = extra.read_response()
            assert_refusal(r, 429, "max_connections_per_ip")
            assert extra.is_closed()
        # another source address is a different client
        with srv.connect(source="127.0.0.2") as other:
            assert other.request("GET", "/hello").status == 200
        for c in conns:
            assert c.request("GET", "/hello").status == 200
    finally:
        for c in conns:
            c.close()
    rec = srv.wait_log("conn_over_limit")
    assert rec["level"] == "warn" and rec["detail"] == "max_connections_per_ip", rec
    refused_logged(srv, 429, "max_connections_per_ip")
    settle(srv)
    srv.assert_healthy()


def test_max_requests_per_connection(make_server):
    srv = make_server(limits(max_requests_per_connection=3))
    with srv.connect() as c:
        for i in range(3):
            r = c.request("GET", "/hello")
            assert r.status == 200, r
        assert (r.header("connection") or "").lower() == "close", r
        assert c.is_closed()
    srv.assert_healthy()
