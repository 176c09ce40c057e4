"""Shared fixtures: the session PKI and real `portcullis serve` processes."""

import os
import shutil
import subprocess
import tempfile
import time

import pytest

import portcullis_helpers as H

os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:exitcode=86")
os.environ.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")


def pytest_sessionstart(session):
    """Run the whole session on a private copy of the binary: other work in
    the tree may relink build/asan/portcullis while the suite runs."""
    src = H.BIN
    if not os.access(src, os.X_OK):
        raise pytest.UsageError(f"portcullis binary not found at {src}; "
                                "run `make integration` or set PORTCULLIS_BIN")
    tmp = tempfile.mkdtemp(prefix="portcullis-bin-")
    dst = os.path.join(tmp, "portcullis")
    last = None
    for _ in range(50):
        try:
            shutil.copy2(src, dst)
            r = subprocess.run([dst, "version"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=30)
            if r.returncode == 0:
                break
            last = r.stderr
        except OSError as e:        # mid-relink: missing or not yet executable
            last = e
        time.sleep(0.2)
    else:
        raise pytest.UsageError(f"cannot run a copy of {src}: {last!r}")
    H.BIN = dst
    session.config._portcullis_bin_dir = tmp


def pytest_sessionfinish(session):
    tmp = getattr(session.config, "_portcullis_bin_dir", None)
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)


def pytest_report_header(config):
    return f"portcullis binary: {os.environ.get('PORTCULLIS_BIN') or H.BIN} (run from a private copy)"


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return H.Pki(tmp_path_factory.mktemp("pki"))


class _Factory:
    def __init__(self, base, pki):
        self.base = base
        self.pki = pki
        self.servers = []

    def __call__(self, config=None, start=True, name=None, **kw):
        name = name or f"server{len(self.servers) + 1}"
        srv = H.Server(self.base / name, self.pki, config=config, name=name)
        self.servers.append(srv)
        if start:
            srv.start(**kw)
        return srv

    def finish(self):
        errors = []
        for srv in self.servers:
            if srv.proc is None or (srv.exit_checked and not srv.alive()):
                continue
            try:
                if srv.alive():
                    srv.stop()
                else:
                    srv.wait()
                    srv.assert_clean_exit()
            except AssertionError as e:
                errors.append(str(e))
            finally:
                srv.kill()
        if errors:
            pytest.fail("server did not exit cleanly:\n" + "\n\n".join(errors), pytrace=False)


@pytest.fixture
def make_server(tmp_path, pki):
    """Factory for function-scoped servers: make_server({"server": {...}}).
    Each server is stopped with SIGTERM at teardown and must exit 0."""
    f = _Factory(tmp_path, pki)
    yield f
    f.finish()


@pytest.fixture
def server(make_server):
    """A server with the default config (client_cert: optional)."""
    return make_server()


@pytest.fixture(scope="module")
def make_module_server(tmp_path_factory, pki):
    """Module-scoped servers for read-only tests."""
    f = _Factory(tmp_path_factory.mktemp("modsrv"), pki)
    yield f
    f.finish()


# ---- attach server stderr + log to the report of a failing test -----------

def pytest_runtest_setup(item):
    item._pc_first_server = len(H.STARTED)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    first = getattr(item, "_pc_first_server", len(H.STARTED))
    seen = set()
    for i, srv in enumerate(H.STARTED):
        if i >= first or srv.alive():
            if id(srv) in seen:
                continue
            seen.add(id(srv))
            rep.sections.append((f"portcullis {srv.name} (port {srv.port})", srv.diagnostics()))
