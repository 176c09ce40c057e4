"""Concurrency, abrupt disconnects, garbage input and descriptor hygiene.
Each test ends with a SIGTERM stop that must exit 0 under ASan (leaks and
memory errors on these unusual paths show up there)."""

import os
import random
import socket
import ssl
import struct
import threading
import time

import pytest

import portcullis_helpers as H


def test_concurrent_clients(server, pki):
    errors = []
    counts = []

    def worker(n):
        try:
            done = 0
            client = ("alice", "bob", None)[n % 3]
            with server.connect(client=client) as c:
                for i in range(20):
                    path = ("/hello", "/healthz", "/whoami", "/nope")[i % 4]
                    r = c.request("GET", path)
                    assert r.status == (404 if path == "/nope" else 200), r
                    done += 1
            for _ in range(3):              # plus a few short connections
                assert server.get("/hello").status == 200
                done += 1
            counts.append(done)
        except Exception as e:              # noqa: BLE001 - reported below
            errors.append(f"worker {n}: {e!r}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert sum(counts) == 16 * 23
    server.assert_healthy()


def rst_close(sock):
    """Close with an RST instead of a FIN."""
    raw = sock if not isinstance(sock, ssl.SSLSocket) else sock
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raw.close()


def test_abrupt_disconnects(make_server):
    srv = make_server({"server": {"limits": {"header_timeout": "5s", "body_timeout": "5s"}}})
    pki = srv.pki
    # 1. TCP connect and close, no bytes
    H.tcp_connect(srv.port).close()
    # 2. half a ClientHello, then FIN / RST
    for closer in (lambda s: s.close(), rst_close):
        s = H.tcp_connect(srv.port)
        s.sendall(b"\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03" + os.urandom(20))
        closer(s)
    # 3. handshake done, nothing sent
    c = srv.connect()
    c.close()
    c = srv.connect()
    rst_close(c.sock)
    # 4. half a head
    for closer in (lambda s: s.close(), rst_close):
        c = srv.connect()
        c.send(b"GET /hello HTTP/1.1\r\nHo")
        closer(c.sock)
    # 5. half a body (content-length and chunked)
    for body_head in (b"Content-Length: 100\r\n\r\n" + b"x" * 10,
                      b"Transfer-Encoding: chunked\r\n\r\n10\r\nabc"):
        for closer in (lambda s: s.close(), rst_close):
            c = srv.connect()
            c.send(b"POST /echo-len/1 HTTP/1.1\r\nHost: localhost\r\n" + body_head)
            closer(c.sock)
    # 6. requests sent, responses never read
    c = srv.connect(client="alice")
    c.send(b"GET /whoami HTTP/1.1\r\nHost: localhost\r\n\r\n" * 50)
    rst_close(c.sock)
    # 7. Expect: 100-continue, then gone
    c = srv.connect()
    c.send(b"POST /echo-len/1 HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n"
           b"Content-Length: 5\r\n\r\n")
    c.close()
    # 8. TLS close_notify right after a request
    c = srv.connect()
    c.send(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
    try:
        c.sock.unwrap()
    except (ssl.SSLError, OSError):
        pass
    c.close()
    time.sleep(0.3)
    srv.assert_healthy()


def test_garbage_after_handshake(server):
    rnd = random.Random(1234)
    for i in range(40):
        blob = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 600)))
        if i % 4 == 0:
            blob = b"GET /" + blob + b" HTTP/1.1\r\nHost: localhost\r\n\r\n"
        elif i % 4 == 1:
            blob = b"POST /echo-len/1 HTTP/1.1\r\nHost: localhost\r\n" + blob + b"\r\n\r\n"
        try:
            resps, _ = server.raw(blob, timeout=0.5)
        except (H.Closed, OSError, ssl.SSLError):
            continue
        for r in resps:
            assert 200 <= r.status < 600, r
    server.assert_healthy()


def test_fd_count_returns_to_baseline(make_server):
    srv = make_server({"server": {"limits": {"idle_timeout": "5s"}}})
    time.sleep(0.3)
    baseline = srv.fd_count()
    for i in range(60):
        c = srv.connect()
        if i % 3 == 0:
            c.request("GET", "/hello")
            c.close()
        elif i % 3 == 1:
            c.send(b"GET /hello HTTP/1.1\r\nHost: localhost\r\nX-Bad : 1\r\n\r\n")
            assert c.read_response().status == 400
            assert c.is_closed(timeout=3)
            c.close()
        else:
            rst_close(c.sock)
    for _ in range(10):
        H.tcp_connect(srv.port).close()
    assert H.wait_until(lambda: srv.fd_count() <= baseline, timeout=5), \
        f"server holds {srv.fd_count()} fds, baseline {baseline}"
    srv.assert_healthy()


def test_ipv6_listener(make_server):
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    srv = make_server({"server": {"listen": None}}, start=False)
    srv.config["server"]["listen"] = f"[::1]:{srv.port}"
    srv.start()
    assert srv.host == "::1"
    with srv.connect(server_hostname="localhost") as c:
        r = c.request("GET", "/hello")
        assert r.status == 200 and r.body == b'{"hello":"world"}'
    rec = srv.wait_log("access", path="/hello")
    assert rec["peer"].startswith("[::1]:"), rec
    r = H.curl(f"https://[::1]:{srv.port}/hello", srv.pki)
    assert r.status == 200, r
