"""Short versions of the traffic simulator's scenarios (bench/sim): each
attack runs for seconds beside four benign partners, against the real
binary with real certificates and tokens, and the test asserts that the
attack is stopped, that no benign client is quarantined, and that the
rate-limit headers are right."""

import re

import portcullis_helpers as H

# RateLimit-Policy: "partner";q=20;w=1   RateLimit: "partner";r=19;t=0
POLICY_RE = re.compile(r'^"[^"]+";q=\d+;w=\d+')
STATE_RE = re.compile(r'^"[^"]+";r=\d+;t=\d+')


def attack_row(rep, name):
    (row,) = [a for a in rep["attacks"] if a["attack"] == name]
    assert "error" not in row, row["error"]
    return row


def assert_benign_fine(rep):
    b = rep["benign"]
    assert b["requests"] > 0, b
    assert b["false_quarantines"] == 0, b["quarantined_clients"]
    assert b["403"] == 0, b
    assert b["false_alerts"] == 0, b["alerts"]
    assert b["5xx"] == 0 and b["401"] == 0, b
    # every benign answer on a route under a policy carries both headers
    assert b["headers"].get("policy_missing", 0) == 0, b["headers"]
    assert b["headers"].get("policy_ok", 0) > 0, b["headers"]


def test_rate_limit_headers(stack):
    """Back to back past the partner policy's burst: the answers carry
    RateLimit and RateLimit-Policy, the 429s Retry-After as well, and a
    problem+json body."""
    from simlib import Client, Simulation
    sim = Simulation(stack, say=lambda m: None, attacks={})
    c = Client(sim, stack.partner_ids[0], cert=stack.partner_ids[0], src="127.0.4.1")
    assert c.fetch_token(), c.stats.as_dict()
    burst = stack.sc["policy"]["burst"]
    tag = stack.tags[0]
    got = []
    for _ in range(burst + 20):
        r = c.exchange("GET", f"/customers/{tag}", c.auth_headers(f"/customers/{tag}"))
        assert r is not None
        got.append(r)
        if r.status == 429:
            break
    c.close()
    ok = [r for r in got if r.status == 200]
    refused = [r for r in got if r.status == 429]
    assert ok and refused, [r.status for r in got]
    for r in ok:
        assert POLICY_RE.match(r.header("ratelimit-policy") or ""), r
        assert STATE_RE.match(r.header("ratelimit") or ""), r
    r = refused[0]
    assert POLICY_RE.match(r.header("ratelimit-policy") or ""), r
    assert STATE_RE.match(r.header("ratelimit") or ""), r
    assert int(r.header("retry-after")) >= 1, r
    assert r.header("content-type", "").startswith("application/problem+json"), r
    assert r.json()["status"] == 429, r
    # the state says how long until there is room again, as Retry-After does
    t = int(re.search(r";t=(\d+)", r.header("ratelimit")).group(1))
    assert t >= 1, r


def test_enumeration_fast_quarantined(stack, run_sim):
    """Dell-style: a partner with a valid account walks other customers'
    service tags at 83/s. Quarantined well within 1,000 records and 60 s;
    the quarantine holds at the gateway and at the token endpoint."""
    rep = run_sim({"enum-fast": {"start": 3.0, "length": 12.0, "rate": 83.0,
                                 "order": "ascending"}}, duration=16.0)
    a = attack_row(rep, "enum-fast")
    assert "quarantine" in a["actions"], a
    assert "enumeration" in a["detectors"], a
    assert "403 quarantine" in a["refusals_seen"], a
    assert a["records_before_stop"] <= 1000, a
    assert a["time_to_stop_s"] is not None and a["time_to_stop_s"] <= 10, a
    assert a["records_after_stop"] == 0, a
    ex = a["header_examples"]["403"]
    assert ex["content_type"].startswith("application/problem+json"), ex
    body = __import__("json").loads(ex["body"])
    assert body["status"] == 403 and "quarantine" in body["detail"], ex
    assert_benign_fine(rep)
    # the token endpoint refuses the quarantined client too
    from simlib import Client, Simulation
    sim = Simulation(stack, say=lambda m: None, attacks={})
    cid = stack.attack_ids["enum-fast"]
    c = Client(sim, cid, cert=cid, src="127.0.4.2")
    assert c.fetch_token() is None, c.stats.as_dict()
    assert c.stats.token_status.get(200, 0) == 0 and c.stats.token_status, c.stats.as_dict()
    c.close()
    # and the admin API lists it, with the detector as the reason
    q = [x for x in (rep["admin"].get("quarantines") or {}).get("quarantines", [])
         if x.get("client_id") == cid]
    assert q and q[0]["quarantined"] and q[0]["reason"] == "enumeration", rep["admin"]


def test_enumeration_slow_quarantined(stack, run_sim):
    """Slow and low: random valid tags at 3/s, far below the partner
    policy (20/s) and below what the benign partners here use at their
    peaks; quarantined within 60 s and 1,000 records (here: ~50 records)."""
    rep = run_sim({"enum-slow": {"start": 2.0, "length": 30.0, "rate": 3.0,
                                 "order": "shuffled"}}, duration=33.0)
    a = attack_row(rep, "enum-slow")
    assert "quarantine" in a["actions"], a
    assert "403 quarantine" in a["refusals_seen"], a
    assert a["records_before_stop"] <= 1000, a
    assert a["time_to_stop_s"] is not None and a["time_to_stop_s"] <= 30, a
    assert a["records_after_stop"] == 0, a
    assert a["status"].get(429, 0) == 0, a      # never touched the rate limit
    assert_benign_fine(rep)


def test_scrape_throttled(stack, run_sim):
    """A partner polling every vehicle's position as fast as allowed: held
    to the partner policy (429 with Retry-After, RateLimit,
    RateLimit-Policy), never more than quota x time + burst records."""
    length = 12.0
    rep = run_sim({"scrape": {"start": 7.0, "length": length, "max_rate": 200.0,
                              "prelude_rate": 1.0}}, duration=20.0)
    a = attack_row(rep, "scrape")
    assert a["status"].get(429, 0) > 0, a
    assert a["headers"].get("429_missing", 0) == 0, a["header_examples"]
    assert a["headers"].get("429_ok", 0) > 0, a
    assert a["headers"].get("policy_missing", 0) == 0, a["header_examples"]
    pol = stack.sc["policy"]
    assert a["records"] <= pol["quota"] * (length + 1) + pol["burst"], a
    assert_benign_fine(rep)


def test_stolen_token_refused_and_flagged(stack, run_sim):
    """A partner's certificate-bound token replayed without the certificate
    and over another partner's certificate: every request 401, no record,
    and the credentials detector flags the token's client."""
    rep = run_sim({"stolen-token": {"start": 3.0, "length": 6.0, "rate": 5.0}}, duration=10.0)
    a = attack_row(rep, "stolen-token")
    assert a["records"] == 0, a
    assert a["requests"] > 0 and set(a["status"]) == {401}, a
    assert "credentials" in a["detectors"], a
    assert a["time_to_alert_s"] is not None and a["time_to_alert_s"] <= 5, a
    # the victim's tokens are revoked, not the victim locked out: it fetches
    # a new one with its certificate and carries on
    assert "revoke" in a["actions"], a
    assert not a["victim_quarantined"], rep["victim"]
    assert rep["victim"]["status"].get(403, 0) == 0, rep["victim"]
    assert_benign_fine(rep)


def test_brute_force_blocked(stack, run_sim):
    """Token requests with made-up private_key_jwt keys at 40/s: no token,
    429 with Retry-After within seconds, the targeted client_id flagged."""
    rep = run_sim({"brute-force": {"start": 2.0, "length": 8.0, "rate": 40.0,
                                   "guess_ratio": 0.25}}, duration=11.0)
    a = attack_row(rep, "brute-force")
    assert a["tokens"] == 0, a
    assert a["token_status"].get(429, 0) > 0, a
    assert a["time_to_refusal_s"] is not None and a["time_to_refusal_s"] <= 3, a
    assert a["headers"].get("token_429_ok", 0) + a["headers"].get("token_429_missing", 0) > 0, a
    # every 429 says when to come back
    ex = a["header_examples"].get("token_429")
    assert ex is None or "retry-after" not in ex["missing"], ex
    assert "credentials" in a["detectors"], a
    # a brute force must not lock its target out (anyone can name a client_id)
    assert a["target_quarantined"] is False, rep["admin"]
    assert_benign_fine(rep)


def test_benign_alone_no_alerts(stack, run_sim):
    """The partners on their own (bursts, 404s, vehicles, token renewal):
    no alert, no quarantine, no 429."""
    rep = run_sim({}, duration=12.0)
    assert_benign_fine(rep)
    assert rep["benign"]["429"] == 0, rep["benign"]
    assert H.wait_until(lambda: stack.srv.alive(), timeout=1)
