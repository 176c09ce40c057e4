"""A client_credentials flow driven from node with oauth4webapi: discovery,
private_key_jwt (ES256) and a DPoP-bound token."""

import json
import os
import subprocess

from jwcrypto import jwk as jwc_jwk

from as_helpers import NODE_DIR, decode_jwt


def run_cc_flow(node, a, tmp_path, *extra):
    keyfile = tmp_path / "node-client.jwk.json"
    fd = os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, json.dumps(a.keys.node.private_jwk()).encode())
    os.close(fd)
    env = dict(os.environ, NODE_EXTRA_CA_CERTS=str(a.pki.ca),
               NODE_OPTIONS="--dns-result-order=ipv4first")
    p = subprocess.run([node, str(NODE_DIR / "cc_flow.mjs"), "--issuer", a.issuer,
                        "--client-id", "node-client", "--key-file", str(keyfile), *extra],
                       cwd=NODE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=60)
    assert p.returncode == 0, f"cc_flow.mjs failed ({p.returncode}):\n{p.stderr}\n{p.stdout}"
    return json.loads(p.stdout)


def check_flow(a, out, scope, attempts):
    assert out["issuer"] == a.issuer
    assert out["token_endpoint"] == a.token_url
    assert out["status"] == 200, out
    assert out["attempts"] == attempts, out
    raw = out["raw_response"]
    assert raw["token_type"] == "DPoP", raw
    assert raw["scope"] == scope
    assert out["processed"]["token_type"].lower() == "dpop"
    token = raw["access_token"]
    a.sent_secrets.append(token)
    header, claims = a.verify_token(token)
    assert header["typ"] == "at+jwt"
    assert claims["client_id"] == "node-client" and claims["sub"] == "node-client"
    assert claims["scope"] == scope
    # the thumbprint node printed, jwcrypto's, and the token's cnf.jkt agree
    jkt = jwc_jwk.JWK(**out["dpop_public_jwk"]).thumbprint()
    assert out["dpop_jkt"] == jkt
    assert claims["cnf"] == {"jkt": jkt}, claims
    # the server saw private_key_jwt and bound the token with DPoP
    rec = a.srv.wait_log("token_issued", client_id="node-client", jti=claims["jti"])
    assert rec["auth"] == "private_key_jwt" and rec["binding"] == "dpop", rec
    assert decode_jwt(token)[1]["aud"] == "https://api.example"


def test_oauth4webapi_client_credentials_dpop(node_client, asrv, tmp_path):
    out = run_cc_flow(node_client, asrv, tmp_path, "--scope", "payments")
    check_flow(asrv, out, "payments", attempts=1)


def test_oauth4webapi_with_dpop_nonce(node_client, fresh_as, tmp_path):
    """With as.dpop.nonce the first request gets use_dpop_nonce; oauth4webapi
    picks the nonce up and the retry succeeds."""
    a = fresh_as(extra={"as": {"dpop": {"nonce": True}}})
    out = run_cc_flow(node_client, a, tmp_path)
    check_flow(a, out, "accounts payments", attempts=2)
    assert a.srv.events("token_issued", client_id="node-client")
