"""JSON-lines logging: access records, refusals, secrecy of query strings,
client certificate fields, levels."""

import json
import re
import time

import pytest

import portcullis_helpers as H

TS_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z")


def test_log_is_json_lines(server):
    server.get("/hello")
    server.get("/nope")
    server.raw(b"GET /hello HTTP/1.1\r\n\r\n")          # refused: no Host
    server.stop()
    text = server.log_text()
    assert text.endswith("\n")
    lines = text.splitlines()
    assert len(lines) >= 5, text
    for line in lines:
        rec = json.loads(line)
        assert isinstance(rec, dict)
        assert TS_RE.fullmatch(rec["ts"]), rec
        assert rec["level"] in ("debug", "info", "warn", "error"), rec
        assert isinstance(rec["event"], str) and rec["event"], rec
    events = [json.loads(x)["event"] for x in lines]
    assert events.count("server_started") == 1
    for ev in ("access", "request_refused", "shutdown_begin", "shutdown_complete"):
        assert ev in events, events


def test_server_started_fields(server):
    rec = server.wait_log("server_started")
    assert rec["level"] == "info"
    assert rec["listen"] == f"127.0.0.1:{server.port}"
    assert rec["workers"] == 2
    assert rec["pid"] == server.pid


def test_access_line_fields(server):
    with server.connect() as c:
        local_port = c.sock.getsockname()[1]
        r1 = c.request("GET", "/hello")
        r2 = c.request("POST", "/echo-len/77", body=b"12345")
        r3 = c.request("GET", "/nope")
    rec = server.wait_log("access", req=r1.header("x-request-id"))
    assert rec["level"] == "info"
    assert TS_RE.fullmatch(rec["ts"])
    assert rec["peer"] == f"127.0.0.1:{local_port}"
    assert isinstance(rec["conn"], int)
    assert (rec["method"], rec["path"], rec["route"], rec["status"]) == ("GET", "/hello", "/hello", 200)
    assert rec["bytes"] == len(r1.body) == 17
    assert isinstance(rec["latency_ms"], (int, float)) and rec["latency_ms"] >= 0
    for k in ("client_subject", "client_x5t#S256", "client_ca_verified"):
        assert k not in rec, f"{k} logged without a client certificate: {rec}"

    rec2 = server.wait_log("access", req=r2.header("x-request-id"))
    assert (rec2["method"], rec2["path"], rec2["route"], rec2["status"]) == \
        ("POST", "/echo-len/77", "/echo-len/{id}", 201)
    assert rec2["conn"] == rec["conn"], "same connection, same conn id"
    assert rec2["bytes"] == 2

    rec3 = server.wait_log("access", req=r3.header("x-request-id"))
    assert rec3["status"] == 404 and rec3["route"] is None
    assert rec3["bytes"] == len(r3.body)


def test_access_line_with_client_cert(server, pki):
    for client in ("alice", "bob"):
        with server.connect(client=client) as c:
            r = c.request("GET", "/hello")
        rec = server.wait_log("access", req=r.header("x-request-id"))
        assert rec["client_subject"] == pki.subjects[client]
        assert rec["client_x5t#S256"] == H.x5t_s256_of_pem(pki.cert(client)[0])
        assert rec["client_ca_verified"] is True


def test_access_line_self_signed_client(make_server, pki):
    srv = make_server({"server": {"tls": {"client_cert": "optional_no_ca"}}})
    r = H.curl(f"{srv.url}/hello", pki, client="selfie")
    assert r.status == 200, r
    rec = srv.wait_log("access", path="/hello")
    assert rec["client_subject"] == pki.subjects["selfie"]
    tp = H.portcullis("pki", "thumbprint", pki.cert("selfie")[0], check=True).stdout.strip()
    assert rec["client_x5t#S256"] == tp
    assert rec["client_ca_verified"] is False


def test_request_refused_line(make_server):
    srv = make_server({"server": {"limits": {"header_bytes": "1KiB"}}})
    resps, _ = srv.raw(b"GET /hello HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"b" * 2000 + b"\r\n\r\n")
    assert resps[0].status == 431
    rec = srv.wait_log("request_refused", status=431)
    assert rec["level"] == "warn"
    assert rec["reason"] == "header_bytes"
    assert rec["peer"].startswith("127.0.0.1:")
    resps, _ = srv.raw(b"GET /hello HTTP/1.1\r\nHost: localhost\r\nHost: x\r\n\r\n")
    assert resps[0].status == 400
    rec = srv.wait_log("request_refused", status=400, req=resps[0].header("x-request-id"))
    assert rec["reason"], rec


SECRET = "SECRET123"


def test_query_string_never_logged(make_server, pki):
    srv = make_server({"server": {"limits": {"header_bytes": "2KiB"}},
                       "log": {"level": "debug"}})
    q = f"?access_token={SECRET}&x=1"
    with srv.connect(client="alice") as c:
        assert c.request("GET", "/hello" + q).status == 200
        assert c.request("GET", "/nope" + q).status == 404
        assert c.request("POST", "/hello" + q, body=b"").status == 405
        assert c.request("POST", "/echo-len/5" + q, body=b"abc").status == 201
    # refusals with a query string: too large, and malformed
    srv.raw(f"GET /hello{q} HTTP/1.1\r\nHost: localhost\r\nX-Big: {'b' * 3000}\r\n\r\n".encode())
    srv.raw(f"GET /a/../b{q} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    srv.raw(f"GET /hello{q} HTTP/1.1\r\nHost: localhost\r\nHost: again\r\n\r\n".encode())
    srv.raw(f"GET /hello{q} HTTP/2.0\r\nHost: localhost\r\n\r\n".encode())
    r = H.curl(f"{srv.url}/hello{q}", pki)
    assert r.status == 200, r
    # the access line records the path without the query
    rec = srv.wait_log("access", path="/hello", status=200)
    assert rec["path"] == "/hello"
    srv.stop()
    everything = srv.log_text() + srv.stderr_text()
    assert SECRET not in everything, [l for l in everything.splitlines() if SECRET in l]
    assert "access_token" not in everything


# log.level filters events; access lines follow log.access alone (a
# documented design: docs/configuration.md, log.access).  Finding #5 was
# closed as intended behaviour.

def test_level_warn_suppresses_info_events(make_server):
    srv = make_server({"log": {"level": "warn"}})
    r = srv.get("/hello")
    assert r.status == 200
    srv.raw(b"GET /hello HTTP/1.1\r\n\r\n")     # refused (missing Host) -> warn
    srv.hup()                                      # reloaded is info
    time.sleep(0.5)
    srv.stop()
    recs = srv.log_lines()
    events = {x["event"] for x in recs}
    assert "request_refused" in events, events
    for ev in ("server_started", "reloaded", "shutdown_begin", "shutdown_complete"):
        assert ev not in events, (ev, events)
    non_access = [x for x in recs if x["event"] != "access"]
    assert {x["level"] for x in non_access} <= {"warn", "error"}, non_access
    # access lines stay (log.access: true)
    assert any(x["event"] == "access" and x["req"] == r.header("x-request-id") for x in recs)


def test_level_error_suppresses_warn_events(make_server):
    srv = make_server({"log": {"level": "error"}})
    srv.raw(b"GET /hello HTTP/1.1\r\n\r\n")
    srv.stop()
    recs = srv.log_lines()
    assert [x for x in recs if x["event"] != "access"] == [], recs
    assert sorted(x["status"] for x in recs if x["event"] == "access") == [200, 400], recs


def test_level_warn_and_access_false(make_server):
    srv = make_server({"log": {"level": "warn", "access": False}})
    assert srv.get("/hello").status == 200
    srv.raw(b"GET /hello HTTP/1.1\r\n\r\n")
    srv.stop()
    recs = srv.log_lines()
    assert [x["event"] for x in recs] == ["request_refused"], recs
    assert recs[0]["level"] == "warn"


def test_level_debug_is_accepted(make_server):
    srv = make_server({"log": {"level": "debug"}})
    assert srv.get("/hello").status == 200
    srv.stop()
    events = [x["event"] for x in srv.log_lines()]
    assert "server_started" in events and "access" in events


def test_access_false(make_server):
    srv = make_server({"log": {"access": False}})
    assert srv.get("/hello").status == 200
    srv.raw(b"GET /hello HTTP/1.1\r\n\r\n")
    srv.stop()
    events = [r["event"] for r in srv.log_lines()]
    assert "access" not in events, events
    assert "server_started" in events and "request_refused" in events


def test_log_to_stderr(make_server):
    srv = make_server({"log": {"file": "-"}})
    r = srv.get("/hello")
    srv.stop()
    recs = [json.loads(l) for l in srv.stderr_text().splitlines() if l.startswith("{")]
    events = [r["event"] for r in recs]
    assert "server_started" in events
    assert any(x["event"] == "access" and x["req"] == r.header("x-request-id") for x in recs), recs


def test_access_log_flushed_within_seconds(server):
    r = server.get("/hello")
    # the access log is buffered per worker and flushed about once a second
    server.wait_log("access", req=r.header("x-request-id"), timeout=3.5)
