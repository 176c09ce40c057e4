"""DPoP-bound tokens at the gateway (RFC 9449 §7)."""

import time

import pytest

import portcullis_helpers as H
from as_helpers import new_jti
from gw_helpers import challenge, seen

PATH = "/accounts/acc-7"


def dpop_err(r, error="invalid_dpop_proof"):
    assert r.status == 401, r
    ch = challenge(r, "DPoP")
    assert ch is not None, r
    assert f'error="{error}"' in ch, ch
    assert 'algs="ES256 PS256 EdDSA"' in ch, ch
    assert r.header("date") and r.header("x-fapi-interaction-id")
    return ch


def test_valid_dpop_accepted(gw):
    tok = gw.dpop_token()
    r = gw.dpop_call(PATH, tok)
    assert r.status == 200, r
    s = seen(r)
    assert s["x-portcullis-client-id"] == ["dpop-client"]
    assert "dpop" not in s and "authorization" not in s, s


def test_dpop_scheme_uppercase(gw):
    tok = gw.dpop_token()
    proof = gw.proof_for(PATH, tok)
    r = gw.call(PATH, token=tok, scheme="DPOP", headers=[("DPoP", proof)])
    assert r.status == 200, r


def test_dpop_route_binding(gw):
    tok = gw.dpop_token()
    assert gw.dpop_call("/echo/dpop", tok).status == 200
    r = gw.dpop_call("/echo/mtls", tok)
    assert r.status == 401, r


def test_wrong_htm(gw):
    tok = gw.dpop_token()
    dpop_err(gw.dpop_call(PATH, tok, proof=gw.proof_for(PATH, tok, method="POST")))


def test_wrong_htu(gw):
    tok = gw.dpop_token()
    dpop_err(gw.dpop_call(PATH, tok, proof=gw.proof_for("/accounts/other", tok)))
    p = gw.proof_for(PATH, tok, claims={"htu": f"https://evil.example{PATH}"})
    dpop_err(gw.dpop_call(PATH, tok, proof=p))


def test_htu_ignores_query(gw):
    tok = gw.dpop_token()
    r = gw.dpop_call(PATH + "?x=1", tok, proof=gw.proof_for(PATH, tok))
    assert r.status == 200, r


def test_stale_iat(gw):
    tok = gw.dpop_token()
    dpop_err(gw.dpop_call(PATH, tok, proof=gw.proof_for(PATH, tok, iat=int(time.time()) - 300)))
    dpop_err(gw.dpop_call(PATH, tok, proof=gw.proof_for(PATH, tok, iat=int(time.time()) + 120)))


def test_replayed_jti_same_connection(gw):
    tok = gw.dpop_token()
    proof = gw.proof_for(PATH, tok)
    with gw.srv.connect() as c:
        assert gw.dpop_call(PATH, tok, proof=proof, conn=c).status == 200
        dpop_err(gw.dpop_call(PATH, tok, proof=proof, conn=c))


def test_replayed_jti_new_connections(gw):
    """Each replay on a fresh connection: with two workers some land on the
    other worker thread; the shared cache must catch every one."""
    tok = gw.dpop_token()
    proof = gw.proof_for(PATH, tok)
    assert gw.dpop_call(PATH, tok, proof=proof).status == 200
    for _ in range(8):
        dpop_err(gw.dpop_call(PATH, tok, proof=proof))


def test_failed_proof_does_not_burn_jti(gw):
    tok = gw.dpop_token()
    jti = new_jti()
    bad = gw.proof_for(PATH, tok, method="POST", jti=jti)
    dpop_err(gw.dpop_call(PATH, tok, proof=bad))
    good = gw.proof_for(PATH, tok, jti=jti)
    assert gw.dpop_call(PATH, tok, proof=good).status == 200


def test_wrong_ath(gw):
    tok = gw.dpop_token()
    other = gw.dpop_token()
    dpop_err(gw.dpop_call(PATH, tok, proof=gw.proof_for(PATH, other)))


def test_missing_ath(gw):
    tok = gw.dpop_token()
    dpop_err(gw.dpop_call(PATH, tok, proof=gw.proof_for(PATH, tok, claims={"ath": None})))


def test_key_not_cnf_jkt(gw, keys):
    tok = gw.dpop_token()
    dpop_err(gw.dpop_call(PATH, tok, proof=gw.proof_for(PATH, tok, key=keys.dpop2)),
             error="invalid_token")


def test_alg_none(gw):
    tok = gw.dpop_token()
    dpop_err(gw.dpop_call(PATH, tok, proof=gw.proof_for(PATH, tok, header={"alg": "none"})))


def test_private_jwk_in_proof(gw, keys):
    tok = gw.dpop_token()
    p = gw.proof_for(PATH, tok, header={"jwk": keys.dpop.private_jwk()})
    dpop_err(gw.dpop_call(PATH, tok, proof=p))


def test_missing_and_double_dpop_header(gw):
    tok = gw.dpop_token()
    dpop_err(gw.call(PATH, token=tok, scheme="DPoP"))
    p1, p2 = gw.proof_for(PATH, tok), gw.proof_for(PATH, tok)
    dpop_err(gw.call(PATH, token=tok, scheme="DPoP", headers=[("DPoP", p1), ("DPoP", p2)]))


def test_dpop_token_as_bearer_refused(gw):
    tok = gw.dpop_token()
    proof = gw.proof_for(PATH, tok)
    r = gw.call(PATH, token=tok, scheme="Bearer", headers=[("DPoP", proof)])
    assert r.status == 401, r
    assert 'error="invalid_token"' in challenge(r, "DPoP"), r
    r = gw.call(PATH, token=tok, scheme="Bearer", cert="alice")
    assert r.status == 401, r


def test_dpop_nonce(fresh_gw):
    g = fresh_gw(extra={"gateway": {"dpop": {"nonce": True}}})
    tok = g.dpop_token()
    r = g.dpop_call(PATH, tok)
    dpop_err(r, error="use_dpop_nonce")
    nonce = r.header("dpop-nonce")
    assert nonce, r
    ok = g.dpop_call(PATH, tok, proof=g.proof_for(PATH, tok, claims={"nonce": nonce}))
    assert ok.status == 200, ok
    # every answer carries the current nonce (RFC 9449 §8.2), usable at once
    fresh = ok.header("dpop-nonce")
    assert fresh, ok
    again = g.dpop_call(PATH, tok, proof=g.proof_for(PATH, tok, claims={"nonce": fresh}))
    assert again.status == 200, again
    bad = g.dpop_call(PATH, tok, proof=g.proof_for(PATH, tok, claims={"nonce": "x" * 22}))
    dpop_err(bad, error="use_dpop_nonce")


def test_concurrent_replay_exactly_one_wins(gw):
    """The same proof sent at once on many connections (both workers):
    exactly one is accepted."""
    from concurrent.futures import ThreadPoolExecutor
    import threading
    tok = gw.dpop_token()
    proof = gw.proof_for(PATH, tok)
    conns = [gw.srv.connect() for _ in range(10)]
    barrier = threading.Barrier(len(conns))

    def send(c):
        barrier.wait()
        return gw.dpop_call(PATH, tok, proof=proof, conn=c).status

    try:
        with ThreadPoolExecutor(len(conns)) as ex:
            statuses = sorted(ex.map(send, conns))
    finally:
        for c in conns:
            c.close()
    assert statuses == [200] + [401] * (len(conns) - 1), statuses


@pytest.mark.parametrize("alg", ["PS256", "EdDSA"])
def test_dpop_other_algs(gw, keys, alg):
    k = keys.dpop_ps if alg == "PS256" else keys.dpop_ed
    tok = gw.dpop_token(dpop_key=k)
    assert gw.dpop_call(PATH, tok, key=k).status == 200
    # an RS256 proof by the same RSA key is refused (FAPI 2.0 §5.4)
    if alg == "PS256":
        p = gw.proof_for(PATH, tok, key=k, header={"alg": "RS256"})
        dpop_err(gw.dpop_call(PATH, tok, proof=p))


def test_garbage_credentials_never_crash(gw):
    """Random and near-miss credentials on one keep-alive connection: every
    answer is a 400/401 refusal with a challenge, and the server stays up
    (ASan checks the rest at teardown)."""
    import random
    rnd = random.Random(4)
    tok = gw.dpop_token()
    good = gw.proof_for(PATH, tok)
    alphabet = "abcXYZ0123456789-._~+/=\" ,;:\\\t"
    samples = []
    for _ in range(150):
        n = rnd.randint(0, 120)
        junk = "".join(rnd.choice(alphabet) for _ in range(n))
        kind = rnd.randint(0, 5)
        if kind == 0:
            samples.append([("Authorization", junk)])
        elif kind == 1:
            samples.append([("Authorization", "DPoP " + junk)])
        elif kind == 2:
            samples.append([("Authorization", f"DPoP {tok}"), ("DPoP", junk)])
        elif kind == 3:   # a mangled copy of a good proof
            p = list(good)
            for _ in range(rnd.randint(1, 4)):
                p[rnd.randrange(len(p))] = rnd.choice("AbZ9-_.")
            if "".join(p) == good:   # every change put back the same character
                continue
            samples.append([("Authorization", f"DPoP {tok}"), ("DPoP", "".join(p))])
        elif kind == 4:
            samples.append([("Authorization", "Bearer " + tok[: rnd.randrange(len(tok))])])
        else:
            samples.append([("Authorization", f"DPoP {tok}"), ("DPoP", good + junk)])
    with gw.srv.connect() as c:
        for hdrs in samples:
            r = gw.call(PATH, headers=hdrs, conn=c)
            assert r.status in (400, 401), (hdrs, r)
            assert r.headers_named("WWW-Authenticate"), r
            if r.header("connection") == "close":
                break
    gw.srv.assert_healthy()
