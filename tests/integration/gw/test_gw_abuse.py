"""Abuse resistance at the gateway and the token endpoint (docs/abuse-resistance.md):
rate limits and their headers, the detectors' actions (quarantine, throttle,
revoke), the admin API, /metrics, the webhook and the quarantine CLI. Real
tokens from the in-process AS, real client certificates."""

import http.server
import json
import re
import threading
import time

import pytest

import portcullis_helpers as H
from as_helpers import Key, error_of, reload_and_wait
from gw_helpers import start_gateway


def policy_routes(demo_port, **route_extra):
    auth = {"scopes": ["accounts"]}
    base = {"upstream": "demo", "auth": auth}
    return [
        dict(base, method="GET", path="/customers/{tag}", identifier=True,
             rate_limits=["partner"], **route_extra),
        dict(base, method="GET", path="/accounts/{id}", rate_limits=["partner"]),
        {"method": "GET", "path": "/echo/open", "upstream": "demo", "rate_limits": ["per-ip"]},
    ]


def abuse_gateway(fresh, keys, demo, slow, detect=None, quota=1000, route_extra=None,
                  as_extra=None, admin=None):
    extra = {
        "rate_limits": {
            "partner": {"quota": quota, "window": "60s", "burst": quota, "key": ["client_id"]},
            "per-ip": {"quota": 3, "window": "60s", "key": ["ip"]},
        },
    }
    if detect is not None:
        extra["detect"] = detect
    if as_extra:
        extra["as"] = as_extra
    if admin:
        extra["admin"] = {"clients": admin}
    return start_gateway(fresh, keys, demo, slow, extra=extra,
                         routes=policy_routes(demo.port, **(route_extra or {})))


@pytest.fixture
def make_gw(make_server, keys, demo, slow, pki):
    """A gateway with the policies above; bob's certificate is the admin's."""
    admin = [H.x5t_s256_of_pem(pki.cert("bob")[0])]

    def make(**kw):
        return abuse_gateway(make_server, keys, demo, slow, admin=admin, **kw)
    return make


def rl_fields(value):
    """'"a";q=3;w=60, "b";q=...' -> {name: {param: value}}"""
    out = {}
    for member in value.split(","):
        parts = member.strip().split(";")
        name = parts[0].strip().strip('"')
        out[name] = {k: int(v) for k, v in (p.split("=") for p in parts[1:])}
    return out


# ---------------------------------------------------------------- rate limits

def test_rate_limit_headers_and_429(make_gw, keys, demo, slow):
    g = make_gw(quota=3)
    tok = g.mtls_token()
    tags = demo.tags(3)
    remaining = []
    for t in tags:
        r = g.call(f"/customers/{t}", token=tok, cert="alice")
        assert r.status == 200, r
        pol = rl_fields(r.header("RateLimit-Policy"))
        assert pol["partner"] == {"q": 3, "w": 60}, r.header("RateLimit-Policy")
        remaining.append(rl_fields(r.header("RateLimit"))["partner"]["r"])
    assert remaining == [2, 1, 0]
    r = g.call(f"/customers/{tags[0]}", token=tok, cert="alice")
    assert r.status == 429, r
    ra = r.header("Retry-After")
    assert ra and ra.isdigit() and 1 <= int(ra) <= 60, r
    assert rl_fields(r.header("RateLimit"))["partner"]["r"] == 0
    assert rl_fields(r.header("RateLimit-Policy"))["partner"]["q"] == 3
    assert r.header("x-fapi-interaction-id")
    assert "partner" in json.loads(r.body)["detail"]
    # the policy is keyed by client_id: another client still has its budget
    tok_b = g.mtls_token("bob-client", cert="bob")
    r = g.call(f"/accounts/a1", token=tok_b, cert="bob")
    assert r.status == 200, r
    assert g.srv.events("rate_limited", policy="partner")


def test_rate_limit_per_ip_on_an_open_route(make_gw):
    g = make_gw()
    statuses = [g.call("/echo/open").status for _ in range(4)]
    assert statuses == [200, 200, 200, 429], statuses


def test_rate_limit_state_survives_reload(make_gw):
    g = make_gw()
    for _ in range(3):
        assert g.call("/echo/open").status == 200
    reload_and_wait(g.srv)
    assert g.call("/echo/open").status == 429


# ---------------------------------------------------------------- detectors

def test_enumeration_quarantines_and_operator_releases(make_gw, keys, demo, slow):
    g = make_gw(detect={"enumeration": {"max_distinct": 10, "actions": ["alert", "quarantine"]}})
    tok = g.mtls_token()
    tags = demo.tags(30)
    got = 0
    for t in tags:
        r = g.call(f"/customers/{t}", token=tok, cert="alice")
        if r.status != 200:
            break
        got += 1
    assert got <= 11, got
    assert r.status == 403, r
    body = json.loads(r.body)
    assert r.header("Content-Type") == "application/problem+json", r
    assert body["error"] == "client_quarantined" and body["until"] > time.time(), body
    assert r.header("x-fapi-interaction-id"), r
    assert not g.srv.events("upstream_failed"), "a quarantine refusal is not an upstream failure"
    alerts = g.srv.events("detect_alert", detector="enumeration")
    assert alerts and alerts[0]["client_id"] == "mtls-client", alerts
    assert "quarantine" in alerts[0]["actions"] and alerts[0]["evidence"], alerts
    # quarantined at the token endpoint too
    error_of(g.token_mtls(), 400, "unauthorized_client")
    # another client is unaffected
    tok_b = g.mtls_token("bob-client", cert="bob")
    assert g.call("/accounts/x", token=tok_b, cert="bob").status == 200


def test_admin_api_lists_and_releases(make_gw, demo):
    g = make_gw(detect={"enumeration": {"max_distinct": 5}})
    tok = g.mtls_token()
    for t in demo.tags(8):
        g.call(f"/customers/{t}", token=tok, cert="alice")
    # a client_id that decodes to a control character, or is not percent-encoded right: 400
    for bad in ("/admin/quarantines/evil%0Aclient", "/admin/quarantines/x%4"):
        assert g.call(bad, method="DELETE", cert="bob").status == 400, bad
    # not an admin: 403
    r = g.call("/admin/quarantines", cert="alice")
    assert r.status == 403, r
    assert g.call("/admin/quarantines").status == 403
    r = g.call("/admin/quarantines", cert="bob")
    assert r.status == 200, r
    q = json.loads(r.body)["quarantines"]
    assert [e["client_id"] for e in q] == ["mtls-client"], q
    assert q[0]["reason"] == "enumeration" and q[0]["until"] > q[0]["since"]
    # the CLI sees the same
    cert, key = g.pki.cert("bob")
    cli = ["--url", f"https://localhost:{g.port}", "--cert", cert, "--key", key,
           "--ca", g.pki.ca]
    p = H.portcullis("quarantine", "list", *cli)
    assert p.returncode == 0 and "mtls-client" in p.stdout and "enumeration" in p.stdout, p
    # metrics count the action
    m = g.call("/metrics", cert="bob").body.decode()
    assert re.search(r'portcullis_detect_actions_total\{detector="enumeration",'
                     r'action="quarantine"\} 1\b', m), m
    assert re.search(r"portcullis_quarantined_clients 1\b", m), m
    assert "portcullis_quarantine_refusals_total" in m
    # release through the CLI: the client works again
    p = H.portcullis("quarantine", "release", "mtls-client", *cli)
    assert p.returncode == 0 and "released" in p.stdout, p
    assert g.srv.events("quarantine_released", client_id="mtls-client")
    tok = g.mtls_token()
    r = g.call(f"/customers/{demo.tags(1)[0]}", token=tok, cert="alice")
    assert r.status == 200, r
    # releasing again: nothing to release
    p = H.portcullis("quarantine", "release", "mtls-client", *cli)
    assert p.returncode == 1
    # an operator quarantine
    p = H.portcullis("quarantine", "add", "bob-client", *cli)
    assert p.returncode == 0, p
    error_of(g.token_mtls("bob-client", cert="bob"), 400, "unauthorized_client")


def test_probing_throttles(make_gw, demo):
    g = make_gw(quota=1000, detect={"probing": {"min_requests": 10, "max_ratio": 0.5,
                                                "actions": ["alert", "throttle"]},
                                    "throttle_factor": 0.01})
    tok = g.mtls_token()
    for i in range(12):
        g.call(f"/customers/ZZZZZ{i:02d}", token=tok, cert="alice")   # no such customers: 404
    alerts = g.srv.events("detect_alert", detector="probing")
    assert alerts and "throttle" in alerts[0]["actions"], g.srv.events("detect_alert")
    r = g.call(f"/customers/{demo.tags(1)[0]}", token=tok, cert="alice")
    # quota 1000 x 0.01 = 10 per window: the policy header shows the lowered quota
    assert rl_fields(r.header("RateLimit-Policy"))["partner"]["q"] == 10, r


def test_stolen_token_without_certificate_revokes_client_tokens(make_gw):
    g = make_gw(detect={"credentials": {"max_binding_mismatches": 2,
                                        "actions": ["alert", "revoke"]}})
    tok = g.mtls_token()
    assert g.call("/accounts/a1", token=tok, cert="alice").status == 200
    # the token replayed without its certificate, and with another one
    for cert in (None, "bob", None):
        r = g.call("/accounts/a1", token=tok, cert=cert)
        assert r.status == 401, r
    alerts = g.srv.events("detect_alert", detector="credentials")
    assert alerts and "revoke" in alerts[0]["actions"], alerts
    assert g.srv.events("client_tokens_revoked", client_id="mtls-client")
    # the stolen token is dead even with its certificate
    r = g.call("/accounts/a1", token=tok, cert="alice")
    assert r.status == 401, r
    # the owner gets a fresh one (iat has one-second resolution: a token
    # issued in the second of the revocation is revoked too, erring safe)
    time.sleep(1.1)
    tok2 = g.mtls_token()
    assert g.call("/accounts/a1", token=tok2, cert="alice").status == 200


class Hook(http.server.BaseHTTPRequestHandler):
    received = []

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        Hook.received.append(json.loads(self.rfile.read(n)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *a):
        pass


def test_webhook_receives_alerts(make_gw, demo):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/alerts"
        g = make_gw(detect={"webhook": {"url": url},
                            "enumeration": {"max_distinct": 5, "actions": ["alert"]}})
        tok = g.mtls_token()
        for tag in demo.tags(8):
            assert g.call(f"/customers/{tag}", token=tok, cert="alice").status == 200
        assert H.wait_until(lambda: Hook.received, timeout=5), "no webhook call"
        a = Hook.received[0]
        assert a["event"] == "detect_alert" and a["detector"] == "enumeration"
        assert a["client_id"] == "mtls-client" and a["actions"] == ["log", "alert"]
        assert a["evidence"]
    finally:
        srv.shutdown()


def test_brute_force_on_token_endpoint_is_blocked(make_gw):
    """Failed client authentications hit the failure limits (429) and alert,
    but never revoke or quarantine the client they claim to be: anyone can
    claim any client_id."""
    g = make_gw(as_extra={"auth_failures_per_minute": 5, "auth_failures_per_minute_per_ip": 8},
                detect={"credentials": {"max_auth_failures": 3}})
    victim = g.access_token(g.token_jwt("jwt-client", cert="alice"))
    attacker = Key("ES256", kid="es-1")   # the client's kid, another key
    statuses = []
    for _ in range(12):
        r = g.token_jwt("jwt-client", key=attacker, cert=None)
        statuses.append(r.status)
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}, statuses
    alerts = g.srv.events("detect_alert", detector="credentials")
    assert alerts and alerts[0]["actions"] == ["log", "alert"], alerts
    assert not g.srv.events("client_tokens_revoked")
    # the real client's token still works
    assert g.call("/accounts/a1", token=victim, cert="alice").status == 200


# ---------------------------------------------------------------- config

@pytest.mark.parametrize("extra,needle", [
    ({"routes": [{"method": "GET", "path": "/x/{id}", "upstream": "demo",
                  "rate_limits": ["nope"]}]}, 'no policy named "nope" in rate_limits'),
    ({"rate_limits": {"p": {"quota": 1, "window": "1500ms", "key": ["ip"]}}},
     "rate_limits.p.window: expected whole seconds"),
    ({"rate_limits": {"p": {"quota": 1, "window": "1s", "key": ["client", "ip"]}}},
     "rate_limits.p.key[0]"),
    ({"detect": {"enumeration": {"actions": ["explode"]}}}, "detect.enumeration.actions[0]"),
    ({"detect": {"probing": {"max_ratio": "2"}}}, "detect.probing.max_ratio: expected a number"),
    ({"admin": {"clients": ["not-a-thumbprint"]}}, "admin.clients[0]: expected a certificate"),
    ({"routes": [{"method": "GET", "path": "/x", "upstream": "demo", "identifier": True}]},
     "has no {parameter} to count"),
])
def test_config_errors_name_the_key(make_server, extra, needle):
    srv = make_server(start=False)
    cfg = dict(srv.config)
    cfg["upstreams"] = {"demo": {"url": "http://127.0.0.1:9"}}
    cfg["rate_limits"] = {"ok": {"quota": 1, "window": "1s", "key": ["ip"]}}
    if "routes" in extra:
        cfg["routes"] = extra["routes"]
    for k, v in extra.items():
        if k != "routes":
            cfg[k] = v
    srv.write_config(cfg)
    p = H.portcullis("check", "-c", srv.config_path)
    assert p.returncode != 0, p
    assert needle in p.stderr and re.search(r"\.yaml:\d+:\d+:", p.stderr), p.stderr
