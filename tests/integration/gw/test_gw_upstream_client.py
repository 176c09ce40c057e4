"""The gateway's own client for http:// upstreams: answer framings
(Content-Length, chunked, close-delimited, interim 1xx, HEAD), keep-alive
reuse and Connection: close, the retry rule on a dropped keep-alive
connection, the body limit, smuggling-shaped answers, and the queue when
every pooled connection is busy."""

import socket
import threading
import time

import pytest

from gw_helpers import start_gateway


class ScriptedUpstream:
    """reply(conn_no, req_no, request_bytes) -> bytes to send, or None to
    close without answering; after sending, close if close_after(...)."""

    def __init__(self, reply, close_after=lambda c, n: False, delay=0.0):
        self.reply, self.close_after, self.delay = reply, close_after, delay
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.requests = []
        self.lock = threading.Lock()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                n = self.accepted
            threading.Thread(target=self._serve, args=(c, n), daemon=True).start()

    def _read_request(self, c, buf):
        while b"\r\n\r\n" not in buf:
            chunk = c.recv(65536)
            if not chunk:
                return None, b""
            buf += chunk
        head, rest = buf.split(b"\r\n\r\n", 1)
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v.strip())
        while len(rest) < length:
            chunk = c.recv(65536)
            if not chunk:
                return None, b""
            rest += chunk
        return head + b"\r\n\r\n" + rest[:length], rest[length:]

    def _serve(self, c, conn_no):
        buf = b""
        req_no = 0
        try:
            c.settimeout(10)
            while True:
                req, buf = self._read_request(c, buf)
                if req is None:
                    return
                req_no += 1
                with self.lock:
                    self.requests.append((conn_no, req_no, req))
                if self.delay:
                    time.sleep(self.delay)
                out = self.reply(conn_no, req_no, req)
                if out is None:
                    return
                c.sendall(out)
                if self.close_after(conn_no, req_no):
                    return
        except OSError:
            pass
        finally:
            c.close()

    def stop(self):
        self.sock.close()


def resp(body=b"ok", status=b"200 OK", extra=b""):
    return (b"HTTP/1.1 " + status + b"\r\nContent-Type: text/plain\r\n" + extra +
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


CHUNKED = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
           b"X-Up: 1\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")


@pytest.fixture
def scripted(make_server, keys, demo, slow):
    ups = {
        "chunked": ScriptedUpstream(lambda c, n, r: CHUNKED),
        "connclose": ScriptedUpstream(lambda c, n, r: resp(b"bye", extra=b"Connection: close\r\n"),
                                      close_after=lambda c, n: True),
        "eof_body": ScriptedUpstream(
            lambda c, n, r: b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end",
            close_after=lambda c, n: True),
        "interim": ScriptedUpstream(lambda c, n, r: b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
                                    + resp(b"final")),
        # answers the first request of each connection, then drops the
        # connection at the next one without answering
        "flaky": ScriptedUpstream(lambda c, n, r: resp(b"conn%d" % c) if n == 1 else None),
        "big": ScriptedUpstream(lambda c, n, r: resp(b"x" * 20000)),
        "bigchunks": ScriptedUpstream(lambda c, n, r: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                      + b"".join(b"1000\r\n" + b"y" * 4096 + b"\r\n" for _ in range(5))
                                      + b"0\r\n\r\n"),
        "smuggle": ScriptedUpstream(lambda c, n, r: b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
                                    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        "head": ScriptedUpstream(lambda c, n, r: (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                                  b"Content-Length: 5\r\n\r\n")
                                 if r.startswith(b"HEAD ") else resp(b"hello")),
        "queue": ScriptedUpstream(lambda c, n, r: resp(b"q"), delay=0.1),
    }
    routes = [{"method": "*", "path": f"/{n}", "upstream": n, "timeout": "3s"} for n in ups]
    upstreams = {n: {"url": f"http://127.0.0.1:{u.port}"} for n, u in ups.items()}
    upstreams["queue"]["max_idle"] = 1
    # One worker: pools are per worker, and the tests count connections.
    extra = {"upstreams": upstreams, "server": {"workers": 1, "limits": {"body_bytes": "16KiB"}}}
    g = start_gateway(make_server, keys, demo, slow, routes=routes, extra=extra)
    yield g, ups
    for u in ups.values():
        u.stop()


def test_chunked_answer_is_dechunked_and_connection_reused(scripted):
    g, ups = scripted
    with g.srv.connect() as c:
        for _ in range(3):
            r = g.call("/chunked", conn=c)
            assert r.status == 200 and r.body == b"hello world", r
            assert r.header("x-up") == "1"
            assert r.header("transfer-encoding") is None and r.header("x-trailer") is None
            assert r.header("content-length") == "11"
    assert ups["chunked"].accepted == 1


def test_connection_close_answers(scripted):
    g, ups = scripted
    for _ in range(3):
        r = g.call("/connclose")
        assert r.status == 200 and r.body == b"bye", r
        assert r.header("connection") is None
    assert ups["connclose"].accepted == 3


def test_answer_delimited_by_close(scripted):
    g, _ = scripted
    r = g.call("/eof_body")
    assert r.status == 200 and r.body == b"until the end", r


def test_interim_answer_skipped(scripted):
    g, _ = scripted
    r = g.call("/interim")
    assert r.status == 200 and r.body == b"final", r
    assert r.header("link") is None


def test_dropped_keepalive_connection_retried_for_get_not_post(scripted):
    g, ups = scripted
    u = ups["flaky"]
    r = g.call("/flaky")
    assert r.status == 200 and r.body == b"conn1", r
    # The pooled connection 1 is dropped at the next request: a GET is
    # sent again on a new connection.
    r = g.call("/flaky")
    assert r.status == 200 and r.body == b"conn2", r
    assert u.accepted == 2
    # A POST on the reused connection 2 is not sent again (it may have
    # been acted on): 502.
    r = g.call("/flaky", method="POST", body=b"pay=1", headers=[("Content-Type", "text/plain")])
    assert r.status == 502, r
    posts = [x for x in u.requests if x[2].startswith(b"POST ")]
    assert len(posts) == 1 and posts[0][2].endswith(b"pay=1")
    assert u.accepted == 2


def test_answer_body_over_limit_is_502(scripted):
    g, _ = scripted
    for path in ("/big", "/bigchunks"):
        r = g.call(path)
        assert r.status == 502, (path, r)
        assert b"xxxx" not in r.body and b"yyyy" not in r.body


def test_content_length_with_chunked_is_502(scripted):
    g, _ = scripted
    r = g.call("/smuggle")
    assert r.status == 502, r


def test_head_answer_has_no_body(scripted):
    g, ups = scripted
    with g.srv.connect() as c:
        r = g.call("/head", method="HEAD", conn=c)
        assert r.status == 200 and r.body == b"", r
        # the pooled connection is in step: the next answer is whole
        r = g.call("/head", conn=c)
        assert r.status == 200 and r.body == b"hello", r
    assert ups["head"].accepted == 1


def test_requests_queue_for_a_busy_connection(scripted):
    """max_idle 1: concurrent requests wait for the one connection and are
    all answered, one after the other."""
    g, ups = scripted
    results = []

    def one():
        results.append(g.call("/queue", timeout=10))

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status for r in results] == [200] * 6, results
    assert ups["queue"].accepted == 1


def test_request_bytes_sent_upstream(scripted):
    g, ups = scripted
    r = g.call("/chunked?x=1", method="POST", body=b"abc", headers=[("Content-Type", "text/plain"),
                                                                   ("X-Custom", "v")])
    assert r.status == 200, r
    req = ups["chunked"].requests[-1][2]
    head, _, body = req.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /chunked?x=1 HTTP/1.1"
    names = [ln.split(b":")[0].lower() for ln in lines[1:]]
    assert names.count(b"content-length") == 1 and names.count(b"host") == 1
    assert b"x-custom: v" in [ln.lower() for ln in lines[1:]]
    assert body == b"abc"
