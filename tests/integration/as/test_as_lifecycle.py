"""State that must outlive a reload or a restart (revocations, signing
keys, clients), key rotation, client registration from the CLI, the
authentication-failure throttle, and what the log must never contain."""

import json
import time

import pytest

import portcullis_helpers as H
from as_helpers import (JWT_BEARER, Key, check_token_response, client_assertion, decode_jwt,
                        error_of, has_subcommand, reload_and_wait)

INACTIVE = {"active": False}


def introspect(a, token):
    r = a.post("/introspect", [("token", token), ("client_id", "mtls-client")], client="alice")
    assert r.status == 200, r
    return r.json()


def restart(a):
    a.srv.stop()
    a.srv.start()


# ------------------------------------------------------------ persistence

def test_revocation_survives_reload_and_restart(fresh_as):
    a = fresh_as()
    revoked = a.access_token(a.token_mtls())
    kept = a.access_token(a.token_mtls())
    assert a.post("/revoke", [("token", revoked), ("client_id", "mtls-client")],
                  client="alice").status == 200
    assert introspect(a, revoked) == INACTIVE

    reload_and_wait(a.srv)
    assert introspect(a, revoked) == INACTIVE
    assert introspect(a, kept)["active"] is True

    restart(a)
    assert introspect(a, revoked) == INACTIVE
    # not vacuous: the same issuer and keys still recognise the other token
    assert introspect(a, kept)["active"] is True
    a.srv.assert_healthy()


def test_signing_key_survives_restart(fresh_as):
    a = fresh_as()
    jwks1 = a.jwks()
    tok = a.access_token(a.token_mtls())
    kid = decode_jwt(tok)[0]["kid"]
    restart(a)
    jwks2 = a.jwks()
    assert jwks2 == jwks1
    tok2 = a.access_token(a.token_mtls())
    assert decode_jwt(tok2)[0]["kid"] == kid
    a.verify_token(tok, jwks2)          # the old token verifies with the new /jwks
    assert introspect(a, tok)["active"] is True


def test_signing_key_survives_reload(fresh_as):
    a = fresh_as()
    jwks1 = a.jwks()
    reload_and_wait(a.srv)
    assert a.jwks() == jwks1


def test_other_kek_cannot_open_the_keys(fresh_as):
    """The private signing key is sealed with the KEK: a restart with another
    KEK must fail loudly rather than silently mint with a new key."""
    a = fresh_as()
    a.access_token(a.token_mtls())
    a.srv.stop()
    kek = a.srv.workdir / "kek"
    kek.write_text(bytes(32).hex().replace("00", "ab") + "\n")
    p = H.portcullis("serve", "-c", a.srv.config_path, timeout=30)
    assert p.returncode != 0, p
    assert "kek" in (p.stderr + p.stdout).lower() or "key" in (p.stderr + p.stdout).lower(), p


# ------------------------------------------------------------ key rotation

def test_keys_rotate(fresh_as):
    if not has_subcommand("keys", "rotate"):
        pytest.skip("`portcullis keys rotate` does not exist in this build yet")
    a = fresh_as()
    old_tok = a.access_token(a.token_mtls())
    old_kid = decode_jwt(old_tok)[0]["kid"]
    kids_before = {k["kid"] for k in a.jwks()["keys"]}
    p = H.portcullis("keys", "rotate", "-c", a.srv.config_path)
    assert p.returncode == 0, p
    reload_and_wait(a.srv)
    new_tok = a.access_token(a.token_mtls())
    new_kid = decode_jwt(new_tok)[0]["kid"]
    assert new_kid != old_kid
    jwks = a.jwks()
    kids = {k["kid"] for k in jwks["keys"]}
    assert {old_kid, new_kid} <= kids, jwks
    # the key that now signs was published before it signed (verifiers that
    # cache /jwks for a while know it already)
    assert new_kid in kids_before, (new_kid, kids_before)
    a.verify_token(old_tok, jwks)
    a.verify_token(new_tok, jwks)
    assert introspect(a, old_tok)["active"] is True
    assert introspect(a, new_tok)["active"] is True


# ------------------------------------------------------------ clients via the CLI

def test_client_add_then_reload(fresh_as, keys, tmp_path):
    if not has_subcommand("client", "add"):
        pytest.skip("`portcullis client add` does not exist in this build yet")
    a = fresh_as()
    k = Key("ES256", kid="added-1")
    md = {"client_id": "added-client", "token_endpoint_auth_method": "private_key_jwt",
          "jwks": {"keys": [k.public_jwk()]}, "scope": "accounts"}
    f = tmp_path / "added.json"
    f.write_text(json.dumps(md))
    # unknown before
    error_of(a.token_jwt("added-client", key=k), 401, "invalid_client")
    p = H.portcullis("client", "add", "-c", a.srv.config_path, "--metadata", f)
    assert p.returncode == 0, p
    reload_and_wait(a.srv)
    r = a.token_jwt("added-client", key=k)
    check_token_response(a, r, client_id="added-client", scope="accounts",
                         x5t=H.x5t_s256_of_pem(a.pki.cert("alice")[0]))


# ------------------------------------------------------------ throttling

def _wait_for_fresh_minute(margin=12):
    """The throttle counts per wall-clock minute: do not straddle one."""
    s = time.time() % 60
    if s > 60 - margin:
        time.sleep(60 - s + 0.2)


def test_auth_failure_throttle(fresh_as, keys):
    a = fresh_as(failures=5)
    _wait_for_fresh_minute()
    # five failures for jwt-client (a bad assertion each), from 127.0.0.2
    for i in range(5):
        r = a.token_jwt("jwt-client", key=keys.attacker, cert=None)
        error_of(r, 401, "invalid_client")
    # the sixth attempt, even a correct one, is throttled
    r = a.token_jwt("jwt-client", key=keys.attacker, cert=None)
    desc = error_of(r, 429, "invalid_client")
    ra = r.header("retry-after")
    assert ra is not None and ra.isdigit() and 1 <= int(ra) <= 60, r
    assert desc
    r = a.token_jwt("jwt-client", key=keys.es, cert="alice")
    error_of(r, 429, "invalid_client")
    assert r.header("retry-after", "").isdigit(), r


def test_auth_failure_throttle_is_per_client_id(fresh_as, keys):
    """Failures for one client_id (named in the form) from many addresses
    hold back further assertion-based attempts for that client_id from
    anywhere; but the real client, proving itself with its certificate from
    its own address, still gets its token: a brute force must not lock a
    partner out (the attacker's failures came from elsewhere)."""
    a = fresh_as(failures=5)
    _wait_for_fresh_minute()
    for i, src in enumerate(("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6")):
        r = a.post("/token", [("grant_type", "client_credentials"), ("client_id", "mtls-client")],
                   client="bob", source=src)
        error_of(r, 401, "invalid_client")
    # the real mtls-client from a fresh address: served
    r = a.post("/token", [("grant_type", "client_credentials"), ("client_id", "mtls-client")],
               client="alice", source="127.0.0.8")
    assert r.status == 200, r
    # an assertion claiming to be mtls-client: held back by the client_id limit
    form = [("grant_type", "client_credentials"), ("client_assertion_type", JWT_BEARER),
            ("client_assertion", client_assertion("mtls-client", keys.attacker, a.issuer))]
    error_of(a.post("/token", form, source="127.0.0.9"), 429, "invalid_client")
    # another client from another fresh address is fine
    r = a.post("/token", [("grant_type", "client_credentials"), ("client_id", "bob-client")],
               client="bob", source="127.0.0.9")
    assert r.status == 200, r


def test_auth_failure_throttle_private_key_jwt_per_client(fresh_as, keys):
    """The same for a private_key_jwt client identified only by its
    assertion (client_id is optional in the form, RFC 7523 §3)."""
    a = fresh_as(failures=5)
    _wait_for_fresh_minute()
    for src in ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"):
        form = [("grant_type", "client_credentials"),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", client_assertion("jwt-client", keys.attacker, a.issuer))]
        error_of(a.post("/token", form, source=src), 401, "invalid_client")
    form = [("grant_type", "client_credentials"), ("client_assertion_type", JWT_BEARER),
            ("client_assertion", client_assertion("jwt-client", keys.es, a.issuer))]
    r = a.post("/token", form, client="alice", source="127.0.0.8")
    error_of(r, 429, "invalid_client")


def test_auth_failure_throttle_per_address(fresh_as, keys):
    """Failures spread over many client_ids from one address throttle the
    address."""
    a = fresh_as(failures=5)
    _wait_for_fresh_minute()
    for i in range(5):
        r = a.post("/token", [("grant_type", "client_credentials"), ("client_id", f"nobody-{i}")],
                   client="alice", source="127.0.0.10")
        error_of(r, 401, "invalid_client")
    r = a.post("/token", [("grant_type", "client_credentials"), ("client_id", "mtls-client")],
               client="alice", source="127.0.0.10")
    error_of(r, 429, "invalid_client")
    r = a.post("/token", [("grant_type", "client_credentials"), ("client_id", "mtls-client")],
               client="alice", source="127.0.0.11")
    assert r.status == 200, r


# ------------------------------------------------------------ log hygiene

def test_no_secrets_in_log(fresh_as, keys):
    a = fresh_as()
    secrets = a.sent_secrets
    # a variety of successes and failures
    a.access_token(a.token_mtls())
    a.access_token(a.token_jwt())
    a.access_token(a.token_dpop())
    a.access_token(a.token_mtls("ss-client", cert="selfie"))
    error_of(a.token_jwt(key=keys.attacker), 401, "invalid_client")
    error_of(a.token_jwt(aud="https://evil.example"), 401, "invalid_client")
    error_of(a.token_jwt("dpop-client", key=keys.dpop_client, cert=None,
                         dpop=a.proof(keys.dpop, htm="GET")), 400, "invalid_dpop_proof")
    error_of(a.token_jwt("dpop-client", key=keys.dpop_client, cert=None,
                         dpop=a.proof(keys.dpop, header={"typ": "JWT"})), 400, "invalid_dpop_proof")
    tok = a.access_token(a.token_mtls())
    r = a.post("/introspect", [("token", tok), ("client_id", "mtls-client")], client="alice")
    assert r.status == 200
    r = a.post("/revoke", [("token", tok), ("client_id", "mtls-client")], client="alice")
    assert r.status == 200
    r = a.post("/introspect", [("token", "garbage." + tok), ("client_id", "mtls-client")],
               client="alice")
    assert r.status == 200
    # a query-string attempt (refused, and its target must not be logged in full either)
    qtok = a.access_token(a.token_mtls())
    r = a.post("/introspect?token=" + qtok, [("client_id", "mtls-client")], client="alice")
    error_of(r, 400, "invalid_request")
    a.srv.stop()                           # flushes the log
    text = a.srv.log_text() + a.srv.stderr_text()
    assert "token_issued" in text, text[-2000:]
    assert len(secrets) >= 12
    leaked = []
    for s in set(secrets):
        if s in text:
            leaked.append(("whole", s[:40]))
        sig = s.split(".")[-1]
        if len(sig) >= 40 and sig in text:
            leaked.append(("signature", s[:40]))
    assert not leaked, f"secrets in the log/stderr: {leaked}"
