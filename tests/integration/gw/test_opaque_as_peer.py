"""The opaque-token peer AS (oidc-provider, opaque_as.py) works on its own:
before the gateway is tested against it, its tokens, bindings and
introspection answers must be what the gateway tests will rely on."""

import pytest

import portcullis_helpers as H
from as_helpers import RESOURCE
from opaque_as import OpaqueAS, node_or_skip


@pytest.fixture(scope="session")
def node_client():
    """node with tests/integration/node installed, or skip (as the AS
    tests' fixture of that name, which is not visible from here)."""
    return node_or_skip()


@pytest.fixture(scope="module")
def oas(node_client, tmp_path_factory, pki, keys):
    o = OpaqueAS(tmp_path_factory.mktemp("opaque-as"), pki, keys.dpop_client, node=node_client)
    yield o
    rc = o.stop()
    assert rc == 0, o.diagnostics()


def check_common(info, oas, client_id, scope, token_type):
    assert info["active"] is True, info
    assert info["client_id"] == client_id, info
    aud = info["aud"]
    assert RESOURCE in (aud if isinstance(aud, list) else [aud]), info
    assert info["scope"] == scope, info
    assert info["iss"] == oas.issuer, info
    assert info["token_type"] == token_type, info
    assert info["exp"] - info["iat"] == 300, info


def test_mtls_token_is_opaque_and_introspects(oas, pki):
    token = oas.token_mtls()
    assert token.count(".") != 2, token             # not a JWS
    info = oas.introspect(token)                    # "gateway", bob's certificate
    check_common(info, oas, "opaque-mtls", "accounts payments", "Bearer")
    assert info["cnf"] == {"x5t#S256": H.x5t_s256_of_pem(pki.clients["alice"][0])}, info


def test_dpop_token_introspects_with_jkt(oas, keys):
    token = oas.token_dpop(keys.dpop, keys.dpop_client)
    assert token.count(".") != 2, token
    info = oas.introspect(token)
    check_common(info, oas, "opaque-dpop", "accounts", "DPoP")
    assert info["cnf"] == {"jkt": keys.dpop.thumbprint()}, info


def test_revoked_tokens_are_inactive(oas, keys):
    mtls = oas.token_mtls(scope="accounts")
    dpop = oas.token_dpop(keys.dpop, keys.dpop_client)
    oas.revoke(mtls)
    oas.revoke(dpop, client_id="opaque-dpop", client_key=keys.dpop_client)
    assert oas.introspect(mtls) == {"active": False}
    assert oas.introspect(dpop) == {"active": False}


def test_only_registered_callers(oas, keys):
    """Client authentication really checks the certificate's DN, and only
    the owner or the gateway learns about a token."""
    r = oas.token_response("opaque-mtls", cert="bob")
    assert r.status == 401 and r.json()["error"] == "invalid_client", r
    r = oas.introspect_response("x", cert="alice", client_id="gateway")
    assert r.status == 401 and r.json()["error"] == "invalid_client", r
    token = oas.token_mtls()
    other = oas.introspect(token, cert=None, client_id="opaque-dpop",
                           client_key=keys.dpop_client)
    assert other == {"active": False}
    assert oas.introspect("no-such-token") == {"active": False}
