"""SIGHUP reload and SIGTERM drain."""

import signal
import socket
import ssl
import time

import pytest

import portcullis_helpers as H


def set_hello_body(srv, body):
    for r in srv.config["routes"]:
        if r["path"] == "/hello":
            r["static"]["body"] = body
    srv.write_config()


def reload_and_wait(srv, event="reloaded", timeout=5.0):
    before = len(srv.events(event))
    srv.hup()
    assert H.wait_until(lambda: len(srv.events(event)) > before, timeout=timeout), \
        f"no new {event} log line\n{srv.diagnostics()}"
    return srv.events(event)[-1]


def peer_x5t(conn):
    return H.x5t_s256_of_der(conn.sock.getpeercert(binary_form=True))


# ------------------------------------------------------------------ SIGHUP

def test_hup_reloads_static_body(server):
    with server.connect() as old:
        assert old.request("GET", "/hello").body == b'{"hello":"world"}'
        set_hello_body(server, '{"hello":"reloaded"}')
        rec = reload_and_wait(server)
        assert rec["level"] == "info"
        assert isinstance(rec["generation"], int) and rec["generation"] >= 2, rec
        # new connections see the new config
        r = server.get("/hello")
        assert r.status == 200 and r.body == b'{"hello":"reloaded"}', r
        # the established connection, idle across the reload, is still the
        # same TCP+TLS connection, and its next request is served under the
        # new config (not one more under the old: a reload that removes a
        # client or a route must not leave it open on idle connections)
        r = old.request("GET", "/hello")
        assert r.status == 200, r
        assert r.body == b'{"hello":"reloaded"}', r
        assert old.request("GET", "/healthz").status == 200
    server.assert_healthy()


def test_hup_generation_increases(server):
    gens = []
    for i in range(3):
        set_hello_body(server, f'{{"n":{i}}}')
        gens.append(reload_and_wait(server)["generation"])
        assert server.get("/hello").body == f'{{"n":{i}}}'.encode()
    assert gens == sorted(gens) and len(set(gens)) == 3, gens


def test_hup_adds_and_removes_routes(server):
    assert server.get("/new").status == 404
    server.config["routes"].append({"method": "GET", "path": "/new",
                                    "static": {"status": 202, "body": "fresh"}})
    server.config["routes"] = [r for r in server.config["routes"] if r["path"] != "/whoami"]
    server.write_config()
    reload_and_wait(server)
    r = server.get("/new")
    assert (r.status, r.body) == (202, b"fresh"), r
    assert server.get("/whoami").status == 404


def test_hup_reloads_server_certificate(make_server, pki, tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    for f in ("ca.pem", "ca.key"):
        (d / f).write_bytes((pki.dir / f).read_bytes())
    H.portcullis("pki", "issue-server", "--dir", d, "--subject", "CN=first", check=True)
    srv = make_server({"server": {"tls": {"cert": str(d / "server.pem"), "key": str(d / "server.key")}}})
    first = H.x5t_s256_of_pem(d / "server.pem")
    with srv.connect() as old:
        assert peer_x5t(old) == first
        assert old.request("GET", "/hello").status == 200
        # renew over the same files, with a different subject, key and SANs
        H.portcullis("pki", "issue-server", "--dir", d, "--force", "--subject", "CN=renewed",
                     "--san", "DNS:localhost", "--san", "DNS:renewed.example",
                     "--san", "IP:127.0.0.1", check=True)
        second = H.x5t_s256_of_pem(d / "server.pem")
        assert second != first
        reload_and_wait(srv)
        with srv.connect() as new:
            assert peer_x5t(new) == second
            assert new.sock.getpeercert()["subject"] == ((("commonName", "renewed"),),)
            assert new.request("GET", "/hello").status == 200
        with srv.connect(server_hostname="renewed.example") as new:
            assert new.request("GET", "/healthz").status == 200
        # the established connection keeps its session and keeps working
        assert peer_x5t(old) == first
        assert old.request("GET", "/hello").status == 200
    rc, out, err = H.s_client(srv.port, "-CAfile", d / "ca.pem", "-verify_return_error")
    assert rc == 0 and "CN = renewed" in out, err


def test_hup_reloads_client_ca(make_server, pki, tmp_path):
    ca_file = tmp_path / "client-ca.pem"
    ca_file.write_bytes(pki.ca.read_bytes())
    srv = make_server({"server": {"tls": {"client_cert": "required", "client_ca": str(ca_file)}}})
    with pytest.raises((ssl.SSLError, H.Closed)):
        srv.get("/whoami", client="mallory")
    ca_file.write_bytes(pki.ca.read_bytes() + pki.other_ca.read_bytes())
    reload_and_wait(srv)
    r = srv.get("/whoami", client="mallory")
    assert r.status == 200 and r.json()["subject"] == pki.subjects["mallory"], r


@pytest.mark.parametrize("breakage", ["yaml_syntax", "unknown_key", "bad_value", "missing_cert",
                                      "deleted_config"])
def test_hup_broken_config_keeps_old(server, breakage, tmp_path):
    with server.connect() as old:
        assert old.request("GET", "/hello").status == 200
        good = server.config_path.read_text()
        if breakage == "yaml_syntax":
            server.write_config(text=good + "routes: [\n")
        elif breakage == "unknown_key":
            server.write_config(text=good.replace("server:\n", "server:\n  nonsense: 1\n", 1))
        elif breakage == "bad_value":
            server.write_config(text=good.replace("'optional'", "'sometimes'")
                                .replace('{"hello":"world"}', '{"hello":"broken"}'))
        elif breakage == "missing_cert":
            server.write_config(text=good.replace(str(server.pki.server_cert), str(tmp_path / "gone.pem"))
                                .replace('{"hello":"world"}', '{"hello":"broken"}'))
        elif breakage == "deleted_config":
            server.config_path.unlink()
        rec = reload_and_wait(server, "reload_failed")
        assert rec["level"] == "error", rec
        assert not server.events("reloaded")
        # the old config keeps serving, old and new connections alike
        r = server.get("/hello")
        assert (r.status, r.body) == (200, b'{"hello":"world"}'), r
        assert old.request("GET", "/hello").body == b'{"hello":"world"}'
        assert server.alive()
        # fixing the file and reloading again works
        set_hello_body(server, '{"hello":"fixed"}')
        reload_and_wait(server)
        assert server.get("/hello").body == b'{"hello":"fixed"}'


def test_hup_storm(server):
    """Several HUPs in quick succession, with traffic, leave a working server."""
    with server.connect() as c:
        for i in range(10):
            server.hup()
            assert c.request("GET", "/hello").status == 200
            time.sleep(0.02)
    assert H.wait_until(lambda: len(server.events("reloaded")) >= 1, timeout=5)
    server.assert_healthy()


# ------------------------------------------------------------------ SIGTERM

def connect_refused(port):
    """True once the listener is gone (ECONNREFUSED).  A connection that the
    kernel had queued when the listener closed is reset: not yet 'refused'."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=1)
    except ConnectionRefusedError:
        return True
    except (ConnectionResetError, socket.timeout, TimeoutError):
        return False
    s.close()
    return False


def start_inflight_post(srv, total=10, sent=5):
    """A POST whose head the server has certainly parsed (it answered 100
    Continue) and whose body is only half sent."""
    c = srv.connect()
    c.send(b"POST /echo-len/1 HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n"
           b"Content-Length: %d\r\n\r\n" % total)
    assert c.read_response().status == 100
    c.send(b"x" * sent)
    return c


def test_term_drains_inflight_request(make_server):
    srv = make_server({"server": {"limits": {"shutdown_timeout": "8s"}}})
    idle = srv.connect()
    assert idle.request("GET", "/hello").status == 200
    inflight = start_inflight_post(srv)
    time.sleep(0.2)
    t0 = time.monotonic()
    srv.term()
    # new connections are refused
    assert H.wait_until(lambda: connect_refused(srv.port), timeout=3), "still accepting after SIGTERM"
    # the idle keep-alive connection is closed promptly
    assert idle.is_closed(timeout=3), "idle connection not closed during drain"
    idle.close()
    # the in-flight request can still finish, and is told to close
    assert srv.alive(), "exited before the in-flight request finished"
    inflight.send(b"y" * 5)
    r = inflight.read_response()
    assert (r.status, r.body) == (201, b"ok"), r
    assert (r.header("connection") or "").lower() == "close", r
    assert inflight.is_closed()
    inflight.close()
    rc = srv.wait(timeout=10)
    assert time.monotonic() - t0 < 7, "drain waited for the timeout although nothing was left"
    srv.assert_clean_exit()
    events = [e["event"] for e in srv.log_lines()]
    assert "shutdown_begin" in events and "shutdown_complete" in events, events
    assert events.index("shutdown_begin") < events.index("shutdown_complete")
    begin = srv.events("shutdown_begin")[0]
    assert begin["signal"] == signal.SIGTERM
    assert rc == 0


def test_term_with_only_idle_connections_is_prompt(make_server):
    srv = make_server({"server": {"limits": {"shutdown_timeout": "10s"}}})
    conns = [srv.connect() for _ in range(5)]
    for c in conns:
        assert c.request("GET", "/healthz").status == 200
    t0 = time.monotonic()
    srv.term()
    for c in conns:
        assert c.is_closed(timeout=3)
        c.close()
    assert srv.wait(timeout=10) == 0
    assert time.monotonic() - t0 < 3, "idle connections must not hold up shutdown"
    srv.assert_clean_exit()


@pytest.mark.slow
def test_term_drain_timeout(make_server):
    srv = make_server({"server": {"limits": {"shutdown_timeout": "1s", "body_timeout": "30s"}}})
    inflight = start_inflight_post(srv)
    time.sleep(0.2)
    t0 = time.monotonic()
    srv.term()
    rc = srv.wait(timeout=10)
    elapsed = time.monotonic() - t0
    assert 0.8 <= elapsed <= 4, f"exit after {elapsed:.2f}s with shutdown_timeout 1s"
    srv.assert_clean_exit()
    assert rc == 0
    # the unfinished request's connection is gone
    try:
        inflight.send(b"y" * 5)
        closed = inflight.is_closed(timeout=2)
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError, H.Closed):
        closed = True
    except AssertionError:
        closed = True            # a final error response is acceptable too
    inflight.close()
    assert closed
    assert srv.events("shutdown_complete")


def test_second_term_closes_at_once(make_server):
    srv = make_server({"server": {"limits": {"shutdown_timeout": "20s", "body_timeout": "30s"}}})
    inflight = start_inflight_post(srv)
    time.sleep(0.2)
    srv.term()
    assert H.wait_until(lambda: srv.events("shutdown_begin"), timeout=3)
    time.sleep(0.3)
    assert srv.alive(), "the first SIGTERM must wait for the in-flight request"
    t0 = time.monotonic()
    srv.term()
    rc = srv.wait(timeout=10)
    assert time.monotonic() - t0 < 3
    srv.assert_clean_exit()
    assert rc == 0
    inflight.close()


def test_term_during_tls_handshake(make_server):
    """A client that connected but never finished its handshake must not
    hold up shutdown."""
    srv = make_server({"server": {"limits": {"shutdown_timeout": "5s", "header_timeout": "30s"}}})
    raw = H.tcp_connect(srv.port)
    raw.sendall(b"\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03")
    time.sleep(0.2)
    t0 = time.monotonic()
    srv.term()
    assert srv.wait(timeout=10) == 0
    assert time.monotonic() - t0 < 5.5
    srv.assert_clean_exit()
    raw.close()
