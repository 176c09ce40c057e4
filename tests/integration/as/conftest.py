"""Fixtures for the AS tests; the clients and checks are in as_helpers.py."""

import pytest

import portcullis_helpers as H
from as_helpers import Key, Keys, cert_public_key, node_or_skip, start_as


@pytest.fixture(scope="session")
def keys(pki, tmp_path_factory):
    """Client keys, and a second self-signed client certificate nobody
    registered."""
    k = Keys()
    k.dir = tmp_path_factory.mktemp("askeys")
    k.es = Key("ES256", kid="es-1")
    k.ps = Key("PS256", kid="ps-1")
    k.ed = Key("EdDSA", kid="ed-1")
    k.dpop_client = Key("ES256", kid="dpc-1")     # dpop-client's assertion key
    k.attacker = Key("ES256", kid="es-1")         # same kid as k.es, other key
    k.dpop = Key("ES256", kid="dpop")             # DPoP proof keys (never registered)
    k.dpop_ps = Key("PS256", kid="dpop-ps")
    k.dpop_ed = Key("EdDSA", kid="dpop-ed")
    k.node = Key("ES256", kid="node-1")           # the oauth4webapi client's key
    k.selfie = Key.from_public(cert_public_key(pki.cert("selfie")[0]), "selfie")
    H.portcullis("pki", "issue-client", "--dir", k.dir, "--name", "stranger", "--self-signed",
                 "--subject", "CN=stranger,O=Nobody", check=True)
    k.stranger = (k.dir / "stranger.pem", k.dir / "stranger.key")
    return k


@pytest.fixture(scope="module")
def asrv(make_module_server, keys):
    """The module's AS: optional_no_ca (all three methods enabled), no
    practical throttling (every request comes from 127.0.0.1), bodies up to
    16 KiB."""
    return start_as(make_module_server, keys,
                    extra={"server": {"limits": {"body_bytes": "16KiB"}}})


@pytest.fixture
def fresh_as(make_server, keys):
    """Factory of function-scoped AS servers: fresh_as(client_cert=..., ...)."""
    return lambda **kw: start_as(make_server, keys, **kw)


@pytest.fixture(scope="session")
def node_client():
    """tests/integration/node with node_modules installed (as_helpers.node_or_skip)."""
    return node_or_skip()
