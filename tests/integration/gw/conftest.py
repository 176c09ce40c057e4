"""Fixtures for the gateway tests: the demo API as upstream, an AS+gateway
server, small slow/closed upstreams, and session keys.

Tokens come from the real in-process AS (the `as:` section) with real
client certificates; DPoP proofs and assertions are built with
python3-cryptography (as_helpers) and checked by jwcrypto there."""

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "as"))

import portcullis_helpers as H  # noqa: E402
from as_helpers import Key, Keys  # noqa: E402
from gw_helpers import start_gateway  # noqa: E402


@pytest.fixture(scope="session")
def keys(tmp_path_factory):
    k = Keys()
    k.dir = tmp_path_factory.mktemp("gwkeys")
    k.es = Key("ES256", kid="es-1")
    k.ps = Key("PS256", kid="ps-1")
    k.ed = Key("EdDSA", kid="ed-1")
    k.dpop_client = Key("ES256", kid="dpc-1")
    k.dpop = Key("ES256", kid="dpop")
    k.dpop2 = Key("ES256", kid="dpop2")
    k.dpop_ps = Key("PS256", kid="dpop-ps")
    k.dpop_ed = Key("EdDSA", kid="dpop-ed")
    k.selfie = None
    return k


class DemoApi:
    def __init__(self, workdir, records=1000):
        self.port = H.free_port()
        self.log = open(Path(workdir) / "demo-api.out", "wb")
        self.proc = subprocess.Popen([H.BIN, "demo-api", "--listen", f"127.0.0.1:{self.port}",
                                      "--records", str(records)],
                                     stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                assert self.proc.poll() is None, "demo-api exited at start"
                time.sleep(0.05)
        raise AssertionError("demo-api did not start")

    def tags(self, n):
        p = H.portcullis("demo-api", "--records", "1000", "--first-tags", n, check=True)
        return p.stdout.split()

    def stop(self):
        self.proc.terminate()
        rc = self.proc.wait(timeout=10)
        self.log.close()
        text = (Path(self.log.name)).read_text(errors="replace")
        assert rc == 0 and not any(m in text for m in H.SANITIZER_MARKERS), text


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = DemoApi(tmp_path_factory.mktemp("demo"))
    yield d
    d.stop()


class SlowUpstream:
    """Accepts, reads the request, waits `delay` seconds, then answers."""

    def __init__(self, delay):
        self.delay = delay
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.threads = []
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            th = threading.Thread(target=self._serve, args=(c,), daemon=True)
            th.start()
            self.threads.append(th)

    def _serve(self, c):
        try:
            c.settimeout(30)
            c.recv(65536)
            time.sleep(self.delay)
            body = b'{"slow":true}'
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                      + str(len(body)).encode() + b"\r\n\r\n" + body)
        except OSError:
            pass
        finally:
            c.close()

    def stop(self):
        self.stopping = True
        self.sock.close()


@pytest.fixture(scope="module")
def slow():
    s = SlowUpstream(5.0)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def gw(make_module_server, keys, demo, slow):
    """One AS + gateway server for the module, in front of the demo API."""
    return start_gateway(make_module_server, keys, demo, slow)


@pytest.fixture
def fresh_gw(make_server, keys, demo, slow):
    return lambda **kw: start_gateway(make_server, keys, demo, slow, **kw)
