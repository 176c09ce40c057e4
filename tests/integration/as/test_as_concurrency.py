"""Concurrency (replay checks must be atomic across worker threads), bad
reloads, and start-up refusals of a broken `as:` setup."""

import os
import threading


import portcullis_helpers as H
from as_helpers import JWT_BEARER, client_assertion, decode_jwt, dpop_proof, error_of

CC = ("grant_type", "client_credentials")


def race(n, fn):
    """Run fn(i) in n threads released together; return the results."""
    barrier = threading.Barrier(n)
    out = [None] * n

    def run(i):
        barrier.wait()
        try:
            out[i] = fn(i)
        except Exception as e:        # noqa: BLE001 (reported below)
            out[i] = e

    ts = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    return out


def test_same_assertion_raced_is_accepted_once(asrv, keys):
    a = client_assertion("jwt-client", keys.es, asrv.issuer)
    form = [CC, ("client_assertion_type", JWT_BEARER), ("client_assertion", a)]
    res = race(12, lambda i: asrv.post("/token", form, client="alice"))
    statuses = sorted(getattr(r, "status", repr(r)) for r in res)
    assert statuses.count(200) == 1 and statuses.count(401) == 11, statuses
    for r in res:
        if r.status == 401:
            error_of(r, 401, "invalid_client")


def test_same_dpop_proof_raced_is_accepted_once(asrv, keys):
    proof = dpop_proof(keys.dpop, asrv.token_url)

    def one(i):
        f = [CC, ("client_assertion_type", JWT_BEARER),
             ("client_assertion", client_assertion("dpop-client", keys.dpop_client, asrv.issuer))]
        return asrv.post("/token", f, headers=[("DPoP", proof)])

    res = race(12, one)
    statuses = sorted(getattr(r, "status", repr(r)) for r in res)
    assert statuses.count(200) == 1 and statuses.count(400) == 11, statuses


def test_parallel_token_requests(asrv, pki):
    res = race(16, lambda i: [asrv.token_mtls() for _ in range(3)])
    jtis = set()
    for batch in res:
        assert isinstance(batch, list), batch
        for r in batch:
            assert r.status == 200, r
            jtis.add(decode_jwt(r.json()["access_token"])[1]["jti"])
    assert len(jtis) == 48
    asrv.srv.assert_healthy()


def test_bad_reload_keeps_serving(fresh_as):
    a = fresh_as()
    good = a.access_token(a.token_mtls())
    before = len(a.srv.events("reload_failed"))
    a.srv.config["as"]["clients"].append(
        {"client_id": "secret-client", "token_endpoint_auth_method": "client_secret_basic"})
    a.srv.write_config()
    a.srv.hup()
    assert H.wait_until(lambda: len(a.srv.events("reload_failed")) > before, timeout=5), \
        a.srv.diagnostics()
    # still the old config: tokens, introspection, same keys
    assert a.token_mtls().status == 200
    r = a.post("/introspect", [("token", good), ("client_id", "mtls-client")], client="alice")
    assert r.json()["active"] is True, r


def _config_with(a, mutate):
    cfg = H.deep_merge(a.srv.config, {})
    cfg["as"] = dict(cfg["as"])
    mutate(cfg)
    path = a.srv.workdir / "broken.yaml"
    path.write_text(H.to_yaml(cfg) + "\n")
    return path


def test_start_refused_without_kek(fresh_as, tmp_path):
    a = fresh_as()
    a.srv.stop()
    path = _config_with(a, lambda c: c["as"].pop("kek_file"))
    env = {k: v for k, v in os.environ.items() if k != "PORTCULLIS_KEK"}
    p = H.run([H.BIN, "serve", "-c", str(path)], timeout=30, env=env)
    assert p.returncode != 0, p
    assert "kek" in p.stderr.lower(), p.stderr


def test_start_refused_with_world_readable_kek(fresh_as, tmp_path):
    a = fresh_as()
    a.srv.stop()
    kek = tmp_path / "open.kek"
    kek.write_text(os.urandom(32).hex() + "\n")
    os.chmod(kek, 0o644)

    def mut(c):
        c["as"]["kek_file"] = str(kek)
        c["server"] = dict(c["server"], state_dir=str(tmp_path / "state2"))
    p = H.portcullis("serve", "-c", _config_with(a, mut))
    assert p.returncode != 0, p
    assert "kek" in p.stderr.lower() and "0644" in p.stderr, p.stderr


def _secret_client_config(a):
    return _config_with(a, lambda c: c["as"].__setitem__("clients", c["as"]["clients"] + [
        {"client_id": "secret-client", "token_endpoint_auth_method": "client_secret_post"}]))


def test_serve_refuses_client_secret_client(fresh_as):
    a = fresh_as()
    a.srv.stop()
    p = H.portcullis("serve", "-c", _secret_client_config(a))
    assert p.returncode != 0, p
    assert "as.clients[" in p.stderr and "client_secret_post" in p.stderr, p.stderr


def test_check_refuses_client_secret_client(fresh_as):
    a = fresh_as()
    a.srv.stop()
    p = H.portcullis("check", "-c", _secret_client_config(a))
    assert p.returncode != 0, p
    assert "as.clients[" in p.stderr and "client_secret_post" in p.stderr, p.stderr
