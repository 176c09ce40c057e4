"""Upstreams that misbehave: garbage, a cut response, silent close after
each answer (a keep-alive connection the upstream dropped)."""

import socket
import threading
import time

import pytest

import portcullis_helpers as H
from gw_helpers import start_gateway


class RawUpstream:
    """Answers every request with `reply(request_bytes)` bytes, then closes
    if `close` (without saying so in the headers)."""

    def __init__(self, reply, close=True):
        self.reply, self.close = reply, close
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            c.settimeout(10)
            while True:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = c.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                c.sendall(self.reply(data))
                if self.close:
                    return
        except OSError:
            pass
        finally:
            c.close()

    def stop(self):
        self.sock.close()


OK_BODY = b'{"ok":true}'
OK = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
      + str(len(OK_BODY)).encode() + b"\r\n\r\n" + OK_BODY)


@pytest.fixture
def faulty(make_server, keys, demo, slow):
    ups = {
        "garbage": RawUpstream(lambda req: b"this is not HTTP\r\n\r\n"),
        "cut": RawUpstream(lambda req: b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"),
        "dropper": RawUpstream(lambda req: OK, close=True),
        "huge_headers": RawUpstream(lambda req: b"HTTP/1.1 200 OK\r\n" + b"".join(
            b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(150)) + b"Content-Length: 0\r\n\r\n",
            close=False),
        "many_headers": RawUpstream(lambda req: b"HTTP/1.1 200 OK\r\n" + b"".join(
            b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(40)) + b"Content-Length: 2\r\n\r\nok",
            close=False),
        "split": RawUpstream(lambda req: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Evil: a\r\n"
                             b"\r\nok", close=False),
    }
    routes = [{"method": "GET", "path": f"/{n}", "upstream": n, "timeout": "2s"} for n in ups]
    extra = {"upstreams": {n: {"url": f"http://127.0.0.1:{u.port}"} for n, u in ups.items()}}
    g = start_gateway(make_server, keys, demo, slow, routes=routes, extra=extra)
    yield g, ups
    for u in ups.values():
        u.stop()


def test_garbage_and_cut_responses_are_502(faulty):
    g, _ = faulty
    for path in ("/garbage", "/cut"):
        t0 = time.monotonic()
        r = g.call(path)
        assert r.status == 502, (path, r)
        assert b"short" not in r.body and b"not HTTP" not in r.body
        assert time.monotonic() - t0 < 2.5


def test_upstream_dropping_keepalive_connections(faulty):
    """The upstream closes after every answer without Connection: close:
    each request must still succeed (a dropped pooled connection is
    noticed and replaced), back to back and after a pause."""
    g, ups = faulty
    with g.srv.connect() as c:
        for i in range(10):
            r = g.call("/dropper", conn=c)
            assert r.status == 200, (i, r)
            if i % 3 == 0:
                time.sleep(0.05)
    assert ups["dropper"].accepted >= 10


def test_upstream_headers_too_large_is_502(faulty):
    g, _ = faulty
    r = g.call("/huge_headers")
    assert r.status == 502, r
    assert r.header("x-h0") is None


def test_upstream_headers_up_to_the_limit_passed(faulty):
    """4 KiB of upstream headers pass (the core's response headers grow to
    16 KiB); 16 KiB do not (above)."""
    g, _ = faulty
    r = g.call("/many_headers")
    assert r.status == 200 and r.body == b"ok", r
    assert r.header("x-h39") == "v" * 100


def test_upstream_headers_passed(faulty):
    g, _ = faulty
    r = g.call("/split")
    assert r.status == 200 and r.body == b"ok" and r.header("x-evil") == "a", r


def test_connect_timeout_on_black_hole(make_server, keys, demo, slow):
    """An upstream whose accept queue is full drops our SYNs: the connect
    never completes. connect_timeout (500 ms) answers 502 long before the
    route's 5 s timeout."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(0)
    port = hole.getsockname()[1]
    fillers = []
    for _ in range(4):   # fill the accept queue (never accepted)
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(s)
    time.sleep(0.2)
    probe = socket.socket()
    probe.settimeout(0.5)
    try:
        probe.connect(("127.0.0.1", port))
        pytest.skip("this kernel completes connections beyond the accept queue")
    except (socket.timeout, OSError):
        pass
    finally:
        probe.close()
    try:
        routes = [{"method": "GET", "path": "/hole", "upstream": "hole", "timeout": "5s"}]
        extra = {"upstreams": {"hole": {"url": f"http://127.0.0.1:{port}",
                                        "connect_timeout": "500ms"}}}
        g = start_gateway(make_server, keys, demo, slow, routes=routes, extra=extra)
        t0 = time.monotonic()
        r = g.call("/hole", timeout=10)
        took = time.monotonic() - t0
        assert r.status == 502, r
        assert 0.4 < took < 2.5, took
    finally:
        for s in fillers:
            s.close()
        hole.close()
