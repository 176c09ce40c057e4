"""The gateway across reloads and shutdowns, https upstreams, limits,
pipelining."""

import http.server
import json
import signal
import socket
import ssl
import threading
import time

import portcullis_helpers as H
from as_helpers import reload_and_wait
from gw_helpers import seen


def test_shutdown_with_request_in_flight_aborts_cleanly(fresh_gw):
    """SIGTERM while the upstream is slow and past shutdown_timeout: the
    server aborts the request (the gateway cancels its upstream exchange)
    and must exit 0 without a sanitizer report."""
    g = fresh_gw(extra={"server": {"limits": {"shutdown_timeout": "300ms"}}})
    conns = []
    for _ in range(3):
        c = g.srv.connect()
        c.send(b"GET /slow-long HTTP/1.1\r\nHost: localhost\r\n\r\n")
        conns.append(c)
    time.sleep(0.5)
    t0 = time.monotonic()
    g.srv.stop()
    assert time.monotonic() - t0 < 5
    for c in conns:
        c.close()
    assert len(g.srv.events("upstream_cancelled")) == 3, g.srv.diagnostics()


def test_reload_keeps_serving_and_replay_cache(fresh_gw):
    g = fresh_gw()
    tok = g.dpop_token()
    path = "/accounts/a"
    proof = g.proof_for(path, tok)
    assert g.dpop_call(path, tok, proof=proof).status == 200
    reload_and_wait(g.srv)
    assert g.dpop_call(path, tok).status == 200
    r = g.dpop_call(path, tok, proof=proof)
    assert r.status == 401, r   # the jti cache survived the reload
    mt = g.mtls_token()
    assert g.call(path, token=mt, cert="alice").status == 200


def test_pipelined_requests_answered_in_order(gw):
    tok = gw.mtls_token()
    tags = gw.demo.tags(3)
    with gw.srv.connect(client="alice") as c:
        data = b"".join(f"GET /customers/{t} HTTP/1.1\r\nHost: localhost\r\n"
                        f"Authorization: Bearer {tok}\r\n\r\n".encode() for t in tags)
        c.send(data)
        for t in tags:
            r = c.read_response()
            assert r.status == 200 and r.json()["service_tag"] == t, r


def test_head_request(gw):
    r = gw.call("/echo/open", method="HEAD")
    assert r.status == 200, r


def test_upstream_response_over_body_limit_is_502(fresh_gw):
    g = fresh_gw(extra={"server": {"limits": {"body_bytes": "6KiB"}}})
    r = g.call("/echo/open", method="POST", body=b"x" * 6000)
    assert r.status == 502, r
    assert b"xxxx" not in r.body
    assert g.call("/echo/open", method="POST", body=b"x" * 100).status == 200


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = json.dumps({"tls": True, "path": self.path,
                           "client": self.headers.get("X-Portcullis-Client-Id")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


class HttpsUpstream:
    def __init__(self, pki):
        # all loopback addresses, so 127.0.0.2 (not in the certificate) reaches it too
        self.httpd = http.server.ThreadingHTTPServer(("0.0.0.0", 0), _Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(pki.server_cert), str(pki.server_key))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.t = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.t.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_https_upstream_verified(make_server, keys, demo, slow, pki):
    from gw_helpers import start_gateway
    up = HttpsUpstream(pki)
    try:
        routes = [
            {"method": "GET", "path": "/tls/{x}", "upstream": "tls", "auth": {"scopes": ["accounts"]}},
            {"method": "GET", "path": "/badca/{x}", "upstream": "badca"},
            {"method": "GET", "path": "/badname/{x}", "upstream": "badname"},
        ]
        g = start_gateway(make_server, keys, demo, slow, routes=routes, extra={"upstreams": {
            "tls": {"url": f"https://localhost:{up.port}/base", "ca": str(pki.ca)},
            "badca": {"url": f"https://localhost:{up.port}", "ca": str(pki.other_ca)},
            "badname": {"url": f"https://127.0.0.2:{up.port}", "ca": str(pki.ca)},
        }})
        tok = g.mtls_token()
        with g.srv.connect(client="alice") as c:
            for i in range(3):   # keep-alive reuse of the TLS upstream connection
                r = g.call(f"/tls/{i}", token=tok, conn=c)
                assert r.status == 200, r
                assert r.json() == {"tls": True, "path": f"/base/tls/{i}", "client": "mtls-client"}
        r = g.call("/badca/1")
        assert r.status == 502, r
        r = g.call("/badname/1")   # the certificate does not name 127.0.0.2
        assert r.status == 502, r
    finally:
        up.stop()


def test_concurrent_clients_share_small_pool(fresh_gw):
    """More concurrent exchanges than pooled connections: requests queue on
    the busy connections and all complete, in order per client."""
    from concurrent.futures import ThreadPoolExecutor
    g = fresh_gw(extra={"upstreams": {"demo": {"max_idle": 2}}})
    tok = g.mtls_token()
    tags = g.demo.tags(10)

    def client(n):
        ok = 0
        with g.srv.connect(client="alice") as c:
            for i in range(15):
                tag = tags[(n + i) % len(tags)]
                r = g.call(f"/customers/{tag}", token=tok, conn=c)
                assert r.status == 200 and r.json()["service_tag"] == tag, r
                ok += 1
        return ok

    with ThreadPoolExecutor(12) as ex:
        assert sum(ex.map(client, range(12))) == 12 * 15


def test_bad_upstream_ca_fails_start_with_location(make_server, keys, demo, slow, tmp_path):
    from gw_helpers import start_gateway
    srv = make_server(start=False)
    srv.config = H.deep_merge(srv.config, {"upstreams": {"tls": {
        "url": "https://localhost:1", "ca": str(tmp_path / "missing-ca.pem")}}})
    srv.config["routes"] = srv.config["routes"] + [
        {"method": "GET", "path": "/tls", "upstream": "tls"}]
    srv.start(wait=False)
    rc = srv.wait()
    srv.exit_checked = True
    assert rc == 1, srv.diagnostics()
    err = srv.stderr_text()
    assert "upstreams.tls.ca: cannot load CA certificates from" in err, err
    assert f"{srv.config_path}:" in err, err


def test_slow_first_answer_within_route_timeout(fresh_gw):
    """A fresh upstream connection answering after 5 s (beyond the 2 s
    connect_timeout, within the route's 20 s) is a success: the connect
    timeout bounds connecting, not the answer."""
    g = fresh_gw()
    t0 = time.monotonic()
    r = g.call("/slow-long", timeout=15)
    assert r.status == 200, r
    assert 4.5 < time.monotonic() - t0 < 10
