"""Helpers for the portcullis black-box integration tests.

Everything here talks to the real binary over loopback: it writes a YAML
config, starts `portcullis serve`, and offers small clients (raw TLS sockets
with a hand-rolled HTTP/1.1 response reader, curl, openssl s_client).
Only the Python standard library is used here.
"""

import base64
import hashlib
import json
import os
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("PORTCULLIS_BIN") or str(REPO / "build" / "asan" / "portcullis")
ASAN_EXIT = 86
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "runtime error:", "SUMMARY: UndefinedBehaviorSanitizer")

# Servers started during the current test (conftest attaches their stderr and
# log to the report of a failing test).
STARTED = []


# --------------------------------------------------------------------------
# small utilities
# --------------------------------------------------------------------------

def free_port(host="127.0.0.1"):
    """Bind port 0, read the port the kernel chose, release it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def run(args, timeout=30, check=False, **kw):
    """subprocess.run with text output captured."""
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, text=True, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


def portcullis(*args, timeout=60, check=False):
    return run([BIN, *map(str, args)], timeout=timeout, check=check)


def x5t_s256_of_pem(pem_path):
    """RFC 8705 x5t#S256: base64url(SHA-256(DER)) without padding."""
    der = ssl.PEM_cert_to_DER_cert(Path(pem_path).read_text())
    return x5t_s256_of_der(der)


def x5t_s256_of_der(der):
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def wait_until(pred, timeout=3.5, interval=0.05):
    """Poll pred() until it returns something truthy; return that (or None)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


# --------------------------------------------------------------------------
# YAML emitter (block style, every string single-quoted)
# --------------------------------------------------------------------------

def _yaml_scalar(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return str(v)
    s = str(v)
    return "'" + s.replace("'", "''") + "'"


def to_yaml(obj, indent=0):
    pad = " " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                out.append(f"{pad}{k}:")
                out.append(to_yaml(v, indent + 2))
            elif isinstance(v, dict):
                out.append(f"{pad}{k}: {{}}")
            elif isinstance(v, list):
                out.append(f"{pad}{k}: []")
            else:
                out.append(f"{pad}{k}: {_yaml_scalar(v)}")
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, (dict, list)) and item:
                body = to_yaml(item, indent + 2)
                # put the first line of the nested block on the "- " line
                out.append(f"{pad}- " + body[indent + 2:])
            else:
                out.append(f"{pad}- {_yaml_scalar(item)}")
    else:
        out.append(pad + _yaml_scalar(obj))
    return "\n".join(out)


def deep_merge(base, over):
    """Merge `over` into a copy of `base`; a value of None deletes the key."""
    res = dict(base)
    for k, v in over.items():
        if v is None:
            res.pop(k, None)
        elif isinstance(v, dict) and isinstance(res.get(k), dict):
            res[k] = deep_merge(res[k], v)
        else:
            res[k] = v
    return res


# --------------------------------------------------------------------------
# PKI
# --------------------------------------------------------------------------

class Pki:
    """The session PKI, generated with `portcullis pki`."""

    def __init__(self, root):
        root = Path(root)
        self.dir = root / "main"
        self.other_dir = root / "other"
        d, o = self.dir, self.other_dir
        portcullis("pki", "init", "--dir", d, check=True)
        portcullis("pki", "issue-server", "--dir", d, check=True)
        portcullis("pki", "issue-client", "--dir", d, "--name", "alice",
                   "--subject", "CN=alice,O=Acme Ltd,C=GB",
                   "--san", "DNS:alice.example", "--san", "URI:spiffe://acme/alice", check=True)
        portcullis("pki", "issue-client", "--dir", d, "--name", "bob",
                   "--subject", "CN=bob,O=Bobco",
                   "--san", "email:bob@example.com", "--san", "IP:10.0.0.2", check=True)
        portcullis("pki", "issue-client", "--dir", d, "--name", "selfie", "--self-signed",
                   "--subject", "CN=selfie,O=Nobody", check=True)
        portcullis("pki", "init", "--dir", o, "--subject", "CN=unrelated CA,O=Elsewhere", check=True)
        portcullis("pki", "issue-client", "--dir", o, "--name", "mallory",
                   "--subject", "CN=mallory,O=Elsewhere", check=True)
        self.ca = d / "ca.pem"
        self.ca_key = d / "ca.key"
        self.server_cert = d / "server.pem"
        self.server_key = d / "server.key"
        self.other_ca = o / "ca.pem"
        self.clients = {
            "alice": (d / "alice.pem", d / "alice.key"),
            "bob": (d / "bob.pem", d / "bob.key"),
            "selfie": (d / "selfie.pem", d / "selfie.key"),
            "mallory": (o / "mallory.pem", o / "mallory.key"),
        }
        self.subjects = {
            "alice": "CN=alice,O=Acme Ltd,C=GB",
            "bob": "CN=bob,O=Bobco",
            "selfie": "CN=selfie,O=Nobody",
            "mallory": "CN=mallory,O=Elsewhere",
        }

    def cert(self, name):
        return self.clients[name]


# --------------------------------------------------------------------------
# TLS + HTTP/1.1 client pieces
# --------------------------------------------------------------------------

def client_context(pki, client=None, min_version=None, max_version=None,
                   ciphers=None, tls13_ciphers=None, verify=True):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        ctx.load_verify_locations(cafile=str(pki.ca))
        ctx.check_hostname = True
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if client is not None:
        pem, key = pki.cert(client) if isinstance(client, str) else client
        ctx.load_cert_chain(str(pem), str(key))
    if min_version is not None:
        ctx.minimum_version = min_version
    if max_version is not None:
        ctx.maximum_version = max_version
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    return ctx


class Response:
    def __init__(self, version, status, reason, headers, body):
        self.version = version
        self.status = status
        self.reason = reason
        self.header_list = headers          # [(name, value)] as received
        self.body = body

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.header_list:
            if k.lower() == name:
                return v
        return default

    def headers_named(self, name):
        return [v for k, v in self.header_list if k.lower() == name.lower()]

    @property
    def headers(self):
        return {k.lower(): v for k, v in self.header_list}

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return (f"<Response {self.status} {self.reason} headers={self.header_list} "
                f"body={self.body[:300]!r}>")


class Closed(Exception):
    """The peer closed the connection (EOF, reset, or TLS EOF)."""


class Conn:
    """One TLS (or plain) connection with a buffered HTTP/1.1 response reader."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    # -- transport
    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _fill(self):
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError,
                ssl.SSLZeroReturnError) as e:
            raise Closed(repr(e))
        except ssl.SSLError as e:
            # a fatal alert from the server after the handshake (TLS 1.3
            # client-certificate rejection) also means "no response"
            raise Closed(repr(e))
        if not chunk:
            raise Closed("EOF")
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            if len(self.buf) > 1 << 20:
                raise AssertionError("response head too large")
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def settimeout(self, t):
        self.sock.settimeout(t)

    # -- HTTP
    def read_response(self, head=False, timeout=5.0):
        """Read one response (skipping nothing: a 1xx is returned as is)."""
        self.sock.settimeout(timeout)
        status_line = self._line().decode("latin-1")
        parts = status_line.split(" ", 2)
        assert len(parts) >= 2 and parts[0].startswith("HTTP/"), f"bad status line {status_line!r}"
        version, status = parts[0], int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = []
        while True:
            line = self._line()
            if not line:
                break
            k, _, v = line.decode("latin-1").partition(":")
            headers.append((k, v.strip()))
        resp = Response(version, status, reason, headers, b"")
        if head or status < 200 or status in (204, 304):
            return resp
        te = resp.header("transfer-encoding")
        if te and "chunked" in te.lower():
            body = b""
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line():
                        pass
                    break
                body += self._exact(size)
                self._exact(2)
            resp.body = body
        elif resp.header("content-length") is not None:
            resp.body = self._exact(int(resp.header("content-length")))
        else:
            # read to EOF
            try:
                while True:
                    self._fill()
            except Closed:
                pass
            resp.body, self.buf = self.buf, b""
        return resp

    def request(self, method="GET", path="/healthz", headers=None, body=None,
                host="localhost", timeout=5.0):
        hdrs = [("Host", host)] if host is not None else []
        hdrs += list((headers or {}).items()) if isinstance(headers, dict) else list(headers or [])
        if body is not None:
            if isinstance(body, str):
                body = body.encode()
            if not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in hdrs):
                hdrs.append(("Content-Length", str(len(body))))
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs) + "\r\n"
        self.send(head.encode("latin-1") + (body or b""))
        return self.read_response(head=(method == "HEAD"), timeout=timeout)

    def is_closed(self, timeout=3.0):
        """True if the peer closes the connection within `timeout` without
        sending anything more; raises if it sends data instead."""
        self.sock.settimeout(timeout)
        try:
            self._fill()
        except Closed:
            return True
        except (socket.timeout, TimeoutError):
            return False
        raise AssertionError(f"expected the connection to close, got more data: {self.buf[:200]!r}")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def tls_connect(port, pki, client=None, ctx=None, host="127.0.0.1", timeout=5.0,
                server_hostname="localhost", source=None):
    """Open a TCP connection, do the TLS handshake, return a Conn."""
    if ctx is None:
        ctx = client_context(pki, client=client)
    raw = socket.create_connection((host, port), timeout=timeout,
                                   source_address=(source, 0) if source else None)
    try:
        s = ctx.wrap_socket(raw, server_hostname=server_hostname)
    except BaseException:
        raw.close()
        raise
    return Conn(s)


def tcp_connect(port, host="127.0.0.1", timeout=5.0, source=None):
    raw = socket.create_connection((host, port), timeout=timeout,
                                   source_address=(source, 0) if source else None)
    return raw


def get(port, pki, path="/healthz", client=None, method="GET", headers=None, body=None, **kw):
    """One request on a fresh connection."""
    with tls_connect(port, pki, client=client, **kw) as c:
        return c.request(method, path, headers=headers, body=body)


def raw_exchange(port, pki, data, timeout=5.0, host="127.0.0.1"):
    """Send raw bytes on a fresh TLS connection; return (responses, closed)
    where responses is every complete response read before the server closed
    (or went quiet for `timeout` seconds)."""
    with tls_connect(port, pki, host=host) as c:
        c.send(data)
        responses = []
        closed = False
        while True:
            try:
                responses.append(c.read_response(timeout=timeout))
            except Closed:
                closed = True
                break
            except (socket.timeout, TimeoutError):
                break
        return responses, closed


# --------------------------------------------------------------------------
# curl / openssl
# --------------------------------------------------------------------------

class CurlResult:
    def __init__(self, rc, status, headers, body, stderr):
        self.rc, self.status, self.header_text, self.body, self.stderr = rc, status, headers, body, stderr

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<curl rc={self.rc} status={self.status} body={self.body[:200]!r} stderr={self.stderr!r}>"


def curl(url, pki, client=None, args=(), timeout=20):
    cmd = ["curl", "-sS", "--max-time", "10", "--cacert", str(pki.ca),
           "-D", "-", "-w", "\n%{http_code}"]
    if client:
        pem, key = pki.cert(client)
        cmd += ["--cert", str(pem), "--key", str(key)]
    cmd += list(args) + [url]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    out = p.stdout.decode("latin-1")
    status = None
    headers, body = "", ""
    if "\n" in out:
        out, _, code = out.rpartition("\n")
        status = int(code) if code.isdigit() else None
        headers, _, body = out.partition("\r\n\r\n")
    return CurlResult(p.returncode, status or None, headers, body, p.stderr.decode("latin-1"))


def s_client(port, *args, timeout=15, data=b""):
    cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
           "-servername", "localhost", *map(str, args)]
    p = subprocess.run(cmd, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    return p.returncode, p.stdout.decode("latin-1"), p.stderr.decode("latin-1")


# --------------------------------------------------------------------------
# the server under test
# --------------------------------------------------------------------------

class ServerExit(AssertionError):
    pass


class Server:
    """One `portcullis serve` process on a free loopback port."""

    def __init__(self, workdir, pki, config=None, name="server"):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pki = pki
        self.name = name
        self.port = free_port()
        self.host = "127.0.0.1"
        self.config_path = self.workdir / f"{name}.yaml"
        self.log_path = self.workdir / f"{name}.log"
        self.stderr_path = self.workdir / f"{name}.stderr"
        self.proc = None
        self.returncode = None
        self.exit_checked = False
        self.config = deep_merge(self.default_config(), config or {})

    # -- config
    def default_config(self):
        p = self.pki
        return {
            "server": {
                "listen": f"127.0.0.1:{self.port}",
                "workers": 2,
                "tls": {
                    "cert": str(p.server_cert),
                    "key": str(p.server_key),
                    "client_ca": str(p.ca),
                    "client_cert": "optional",
                    "min_version": "1.2",
                },
                "limits": {},
            },
            "log": {"level": "info", "access": True, "file": str(self.log_path)},
            "routes": [
                {"method": "GET", "path": "/hello",
                 "static": {"status": 200, "content_type": "application/json",
                            "body": '{"hello":"world"}'}},
                {"method": "GET", "path": "/whoami", "handler": "whoami"},
                {"method": "POST", "path": "/echo-len/{id}",
                 "static": {"status": 201, "body": "ok"}},
            ],
        }

    def write_config(self, config=None, text=None):
        if config is not None:
            self.config = config
        if text is None:
            text = to_yaml(self.config) + "\n"
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.config_path)

    # -- lifecycle
    @property
    def url(self):
        return f"https://localhost:{self.port}"

    def start(self, wait=True, timeout=15.0):
        listen = str(self.config.get("server", {}).get("listen", ""))
        self.host = "::1" if listen.startswith("[::1]") else "127.0.0.1"
        self.write_config()
        self._stderr_file = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([BIN, "serve", "-c", str(self.config_path)],
                                     stdin=subprocess.DEVNULL, stdout=self._stderr_file,
                                     stderr=self._stderr_file)
        STARTED.append(self)
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=15.0):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._finish_exit()
                raise ServerExit(f"server exited {self.proc.returncode} during startup\n{self.diagnostics()}")
            try:
                r = get(self.port, self.pki, client=self.ready_client(), timeout=2, host=self.host)
                if r.status == 200:
                    return
                last = r
            except (OSError, Closed, ssl.SSLError) as e:
                last = e
            time.sleep(0.03)
        raise AssertionError(f"server not ready after {timeout}s: {last!r}\n{self.diagnostics()}")

    def ready_client(self):
        """The client certificate to use for probes (required mode needs one)."""
        mode = self.config.get("server", {}).get("tls", {}).get("client_cert")
        return "alice" if mode == "required" else None

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        assert self.alive(), f"server already exited\n{self.diagnostics()}"
        self.proc.send_signal(sig)

    def hup(self):
        self.signal(signal.SIGHUP)

    def term(self):
        self.signal(signal.SIGTERM)

    def wait(self, timeout=20.0):
        """Wait for the process to exit; return its exit code."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self._finish_exit()
            raise ServerExit(f"server did not exit within {timeout}s (killed)\n{self.diagnostics()}")
        self._finish_exit()
        return self.proc.returncode

    def _finish_exit(self):
        self.returncode = self.proc.returncode
        if getattr(self, "_stderr_file", None) and not self._stderr_file.closed:
            self._stderr_file.close()

    def assert_clean_exit(self):
        self.exit_checked = True
        rc = self.returncode
        err = self.stderr_text()
        if rc == ASAN_EXIT:
            raise ServerExit(f"sanitizer report (exit {ASAN_EXIT})\n{self.diagnostics()}")
        if any(m in err for m in SANITIZER_MARKERS):
            raise ServerExit(f"sanitizer report in stderr (exit {rc})\n{self.diagnostics()}")
        if rc != 0:
            raise ServerExit(f"server exited {rc}, expected 0\n{self.diagnostics()}")

    def stop(self, timeout=20.0):
        """SIGTERM, wait, and require exit code 0 with no sanitizer report."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.wait(timeout)
        self.assert_clean_exit()

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc is not None:
            self._finish_exit()

    # -- output
    def stderr_text(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_lines(self):
        """Every complete log line, parsed as JSON (a line that does not parse
        fails the test: the log must be JSON lines)."""
        text = self.log_text()
        lines = text.split("\n")
        out = []
        for i, line in enumerate(lines[:-1]):   # the last piece may be partial
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except ValueError as e:
                raise AssertionError(f"log line {i + 1} is not JSON: {line!r} ({e})")
        return out

    def events(self, event=None, **fields):
        res = []
        for rec in self.log_lines():
            if event is not None and rec.get("event") != event:
                continue
            if all(rec.get(k) == v for k, v in fields.items()):
                res.append(rec)
        return res

    def wait_log(self, event, timeout=3.5, **fields):
        """Poll the log (the access log is flushed about once a second) for a
        record of `event` with the given field values; return it."""
        found = wait_until(lambda: self.events(event, **fields), timeout=timeout)
        assert found, (f"no {event!r} log line with {fields} within {timeout}s\n"
                       f"{self.diagnostics()}")
        return found[0]

    def diagnostics(self, tail=60):
        log = self.log_text().splitlines()[-tail:]
        return (f"--- {self.name}: {BIN} serve -c {self.config_path} (port {self.port}, "
                f"rc={self.returncode})\n--- stderr:\n{self.stderr_text()[-20000:]}\n"
                f"--- log (last {tail} lines):\n" + "\n".join(log))

    # -- convenience
    def get(self, path="/healthz", **kw):
        kw.setdefault("host", self.host)
        return get(self.port, self.pki, path, **kw)

    def connect(self, client=None, **kw):
        kw.setdefault("host", self.host)
        return tls_connect(self.port, self.pki, client=client, **kw)

    def raw(self, data, timeout=5.0):
        return raw_exchange(self.port, self.pki, data, timeout=timeout, host=self.host)

    def fd_count(self):
        """Open file descriptors of the server process (Linux /proc)."""
        import os as _os
        return len(_os.listdir(f"/proc/{self.proc.pid}/fd"))

    def assert_healthy(self):
        assert self.alive(), f"server died\n{self.diagnostics()}"
        r = self.get("/healthz", client=self.ready_client())
        assert r.status == 200 and r.json() == {"status": "ok"}, r
