"""The portcullis traffic simulator: the stack it drives, the clients
(benign partners and attackers), what they measure, and the report.

bench/sim/sim.py is the command line; tests/integration/abuse/ runs short
scenarios through the same code. Everything goes over loopback TLS to a
real `portcullis serve` (AS + gateway) in front of `portcullis demo-api`,
with real client certificates and real tokens. The server and test
plumbing (PKI commands, YAML, starting and stopping the server, the
HTTP/1.1 client, JWS helpers) is tests/integration's, imported from there.

Each client has its own loopback source address (127.0.1.x for partners,
127.0.2.x for attackers), so per-IP limits see one address per client as
they would in production.
"""

import datetime
import http.server
import json
import math
import os
import random
import re
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
import sys  # noqa: E402

for _p in ("tests/integration", "tests/integration/as", "tests/integration/gw"):
    if str(REPO / _p) not in sys.path:
        sys.path.insert(0, str(REPO / _p))

import portcullis_helpers as H  # noqa: E402
from as_helpers import JWT_BEARER, Key, client_assertion, dpop_proof, write_jwks  # noqa: E402
from gw_helpers import ath  # noqa: E402

RESOURCE = "https://api.example"
SCOPES = "customers vehicles"

# Config sections the simulator asks for that an older build may not know.
# `portcullis check` names the first unknown key; these (and only these)
# are dropped one by one until the config passes, and the report says which.
OPTIONAL_KEYS = ("rate_limits", "detect", "admin", "as.rate_limits",
                 "as.auth_failures_per_minute_per_ip", "routes[].identifier",
                 "routes[].max_distinct", "routes[].rate_limits", "detect.webhook")


# ---------------------------------------------------------------------------
# scenario parameters
# ---------------------------------------------------------------------------

def default_scenario():
    """The default scenario: about ten minutes, 60 partners (4 of them
    private_key_jwt + DPoP), every attack. Times are seconds from the start
    of traffic."""
    return {
        "seed": 1,
        "duration": 600.0,
        "records": 100000,          # demo API customers
        "vehicles": 1000,           # demo API vehicles
        "partners": 60,
        "dpop_partners": 4,         # of `partners`, private_key_jwt + DPoP
        "day": 200.0,               # one compressed "day" (diurnal cycle), seconds
        "night_floor": 0.15,        # rate at night as a share of the peak
        "peak_rate": [1.5, 12.0],   # customer requests/s at a partner's peak (log-uniform)
        "customers": [20, 60],      # each partner's own customers
        "stale_tags": [2, 5],       # each partner's recurring 404s (stale or mistyped tags)
        "miss_ratio": 0.01,         # share of customer requests for a stale tag
        "fresh_typo_ratio": 0.001,  # share for a brand-new mistyped tag
        "partner_vehicles": [3, 15],
        "vehicle_poll": [15.0, 30.0],   # seconds between polls of one vehicle, at the peak
        "burst_every": 120.0,       # mean seconds between a partner's bursts
        "burst_size": [10, 30],     # back-to-back requests in a burst
        "sorted_batches": False,    # bursts walk the partner's tags in sorted order
        "token_lifetime": 120,      # seconds (per client)
        "learning_period": "60s",
        "attacks": {
            "enum-fast": {"start": 90.0, "length": 120.0, "rate": 83.0, "order": "ascending"},
            "enum-slow": {"start": 120.0, "length": 180.0, "rate": 2.0, "order": "shuffled"},
            "scrape": {"start": 150.0, "length": 180.0, "max_rate": 200.0, "prelude_rate": 0.5},
            "stolen-token": {"start": 180.0, "length": 60.0, "rate": 5.0},
            "brute-force": {"start": 210.0, "length": 60.0, "rate": 40.0, "guess_ratio": 0.25},
        },
        "policy": {"quota": 20, "window": "1s", "burst": 40},
        "token_policy": {"quota": 10, "window": "1s", "burst": 20},
        "detect": {
            "learning_period": "60s",
            "quarantine_period": "1h",
            "throttle_factor": 0.25,
            "throttle_period": "10m",
            "enumeration": {"window": "5m", "max_distinct": 100, "sequential_run": 20,
                            "ordered_run": 40, "actions": ["alert", "quarantine"]},
            "probing": {"window": "5m", "min_requests": 40, "max_ratio": 0.5,
                        "actions": ["alert", "throttle"]},
            "volume": {"interval": "10s", "z_threshold": 6, "min_count": 100,
                       "actions": ["alert", "throttle"]},
            # revoke, not quarantine: these events name the victim's client
            # (docs/abuse-resistance.md); --cred-quarantine shows why
            "credentials": {"window": "5m", "max_auth_failures": 10,
                            "max_binding_mismatches": 3, "max_dpop_replays": 3,
                            "actions": ["alert", "revoke"]},
        },
        "auth_failures_per_minute": 10,
        "auth_failures_per_minute_per_ip": 30,
        "webhook": False,
        "access_log": True,
    }


def quick_scenario():
    """About 75 seconds: 12 partners, every attack, a 10 s learning period."""
    s = default_scenario()
    s.update(duration=75.0, partners=12, dpop_partners=2, day=40.0, learning_period="10s")
    s["detect"] = dict(s["detect"], learning_period="10s")
    s["attacks"] = {
        "enum-fast": {"start": 15.0, "length": 30.0, "rate": 83.0, "order": "ascending"},
        "enum-slow": {"start": 15.0, "length": 55.0, "rate": 2.0, "order": "shuffled"},
        "scrape": {"start": 20.0, "length": 40.0, "max_rate": 200.0, "prelude_rate": 0.5},
        "stolen-token": {"start": 25.0, "length": 20.0, "rate": 5.0},
        "brute-force": {"start": 30.0, "length": 20.0, "rate": 40.0, "guess_ratio": 0.25},
    }
    return s


# ---------------------------------------------------------------------------
# the stack: PKI, demo API, portcullis serve
# ---------------------------------------------------------------------------

class SimPki:
    """A throwaway PKI made with `portcullis pki`: CA, server certificate,
    and one client certificate per name. Duck-types H.Pki for H.Server."""

    def __init__(self, root):
        self.dir = Path(root)
        H.portcullis("pki", "init", "--dir", self.dir, check=True)
        H.portcullis("pki", "issue-server", "--dir", self.dir, check=True)
        self.ca = self.dir / "ca.pem"
        self.server_cert = self.dir / "server.pem"
        self.server_key = self.dir / "server.key"
        self.clients = {}
        self.subjects = {}

    def issue(self, names):
        """Client certificates for names (two processes at a time)."""
        def one(name):
            subject = f"CN={name},O={name} Ltd,C=GB"
            H.portcullis("pki", "issue-client", "--dir", self.dir, "--name", name,
                         "--subject", subject, check=True)
            return name, subject
        todo = [n for n in names if n not in self.clients]
        threads, out = [], []
        lock = threading.Lock()

        def worker(chunk):
            for n in chunk:
                r = one(n)
                with lock:
                    out.append(r)
        for k in range(2):
            t = threading.Thread(target=worker, args=(todo[k::2],))
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
        for name, subject in out:
            self.clients[name] = (self.dir / f"{name}.pem", self.dir / f"{name}.key")
            self.subjects[name] = subject

    def cert(self, name):
        return self.clients[name]


class DemoApi:
    def __init__(self, workdir, records, vehicles):
        self.port = H.free_port()
        self.out_path = Path(workdir) / "demo-api.out"
        self.out = open(self.out_path, "wb")
        self.proc = subprocess.Popen(
            [H.BIN, "demo-api", "--listen", f"127.0.0.1:{self.port}", "--records", str(records),
             "--vehicles", str(vehicles)],
            stdout=self.out, stderr=self.out, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"demo-api exited: {self.out_path.read_text()}")
                time.sleep(0.05)
        raise RuntimeError("demo-api did not start")

    def stop(self):
        """SIGTERM; returns problems found (exit code, sanitizer reports)."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            rc = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(timeout=5)
        self.out.close()
        text = self.out_path.read_text(errors="replace")
        bad = [m for m in H.SANITIZER_MARKERS if m in text]
        return [] if rc == 0 and not bad else [f"demo-api exit {rc} {bad}: {text[-2000:]}"]


class WebhookSink:
    """Receives the detector's webhook POSTs (JSON) and notes when."""

    def __init__(self):
        self.received = []
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                try:
                    doc = json.loads(body)
                except ValueError:
                    doc = {"unparsed": body[:500].decode("latin-1")}
                sink.received.append((time.time(), doc))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _del_path(cfg, path):
    """Delete a dotted key path like 'as.rate_limits' or 'routes[].identifier'
    (every route) from cfg; returns whether anything was removed."""
    parts = path.split(".")
    nodes = [cfg]
    for p in parts[:-1]:
        nxt = []
        for n in nodes:
            if p.endswith("[]"):
                nxt += [x for x in n.get(p[:-2], []) if isinstance(x, dict)]
            elif isinstance(n.get(p), dict):
                nxt.append(n[p])
        nodes = nxt
    removed = False
    for n in nodes:
        if parts[-1] in n:
            del n[parts[-1]]
            removed = True
    return removed


class Stack:
    """PKI, demo API and `portcullis serve` on free loopback ports, with
    the partner and attacker clients of scenario `sc` registered."""

    def __init__(self, workdir, sc, binary=None, log=print):
        if binary:
            H.BIN = str(binary)
        self.sc = sc
        self.log = log
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.dropped = []             # optional config keys this build refused
        self.check_error = None
        rng = random.Random(sc["seed"])
        self.rng = rng

        n = sc["partners"]
        self.partner_ids = [f"partner-{i:02d}" for i in range(1, n + 1)]
        self.dpop_ids = set(self.partner_ids[n - sc["dpop_partners"]:]) if sc["dpop_partners"] else set()
        self.attack_ids = {name: f"atk-{name}" for name in sc["attacks"]}
        # the stolen-token attack steals from its own victim, a partner that
        # behaves like the others but is not counted among the benign ones
        self.victim_id = "victim-partner" if "stolen-token" in sc["attacks"] else None
        self.bf_target = "bf-target" if "brute-force" in sc["attacks"] else None

        t = time.monotonic()
        self.pki = SimPki(self.workdir / "pki")
        certs = [c for c in self.partner_ids if c not in self.dpop_ids]
        certs += list(self.attack_ids.values()) + ["admin"]
        if self.victim_id:
            certs.append(self.victim_id)
        self.pki.issue(certs)
        self.keys = {cid: Key("ES256", kid=f"{cid}-1") for cid in self.dpop_ids}
        if self.bf_target:
            self.keys[self.bf_target] = Key("ES256", kid="bf-1")
        log(f"pki: {len(certs)} client certificates in {time.monotonic() - t:.1f}s")

        out = H.run([H.BIN, "demo-api", "--records", str(sc["records"]), "--first-tags",
                     str(sc["records"])], check=True, timeout=60)
        self.tags = out.stdout.split()
        self.tag_set = set(self.tags)
        self.vehicles = [f"V{i:06d}" for i in range(sc["vehicles"])]
        self.demo = DemoApi(self.workdir, sc["records"], sc["vehicles"])
        self.webhook = WebhookSink() if sc.get("webhook") else None

        self.srv = H.Server(self.workdir, self.pki, name="portcullis")
        self.port = self.srv.port
        self.issuer = f"https://localhost:{self.port}"
        self.config = H.deep_merge(self.srv.config, self._config())
        self.srv.config = self._fit_config(self.config)
        self.defenses = not any(d in ("rate_limits", "detect") for d in self.dropped)
        self.srv.start(timeout=30)
        log(f"portcullis serve on 127.0.0.1:{self.port}, demo-api on 127.0.0.1:{self.demo.port}"
            f" (binary {H.BIN})")

    # -- config
    def _clients(self):
        sc, wd = self.sc, self.workdir
        out = []

        def mtls(cid):
            out.append({"client_id": cid, "token_endpoint_auth_method": "tls_client_auth",
                        "tls_client_auth_subject_dn": self.pki.subjects[cid], "scope": SCOPES,
                        "access_token_lifetime": sc["token_lifetime"]})
        for cid in self.partner_ids:
            if cid in self.dpop_ids:
                out.append({"client_id": cid, "token_endpoint_auth_method": "private_key_jwt",
                            "jwks_file": write_jwks(wd / f"{cid}.jwks.json", self.keys[cid]),
                            "dpop_bound_access_tokens": True, "scope": SCOPES,
                            "access_token_lifetime": sc["token_lifetime"]})
            else:
                mtls(cid)
        for cid in self.attack_ids.values():
            mtls(cid)
        if self.victim_id:
            mtls(self.victim_id)
        if self.bf_target:
            out.append({"client_id": self.bf_target, "token_endpoint_auth_method": "private_key_jwt",
                        "jwks_file": write_jwks(wd / "bf-target.jwks.json", self.keys[self.bf_target]),
                        "scope": SCOPES})
        return out

    def _config(self):
        sc, wd = self.sc, self.workdir
        kek = wd / "kek"
        if not kek.exists():
            fd = os.open(kek, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, (os.urandom(32).hex() + "\n").encode())
            os.close(fd)
        detect = json.loads(json.dumps(sc["detect"]))
        if self.webhook:
            detect["webhook"] = {"url": f"http://127.0.0.1:{self.webhook.port}/alerts"}
        admin_x5t = H.x5t_s256_of_pem(self.pki.cert("admin")[0])
        return {
            "server": {"state_dir": str(wd / "state"), "workers": 2},
            "log": {"level": "info", "access": bool(sc.get("access_log", True))},
            "as": {
                "issuer": self.issuer,
                "kek_file": str(kek),
                "scopes": ["customers", "vehicles"],
                "resources": [RESOURCE],
                "auth_failures_per_minute": sc["auth_failures_per_minute"],
                "auth_failures_per_minute_per_ip": sc["auth_failures_per_minute_per_ip"],
                "rate_limits": ["token-ip"],
                "clients": self._clients(),
            },
            "upstreams": {"demo": {"url": f"http://127.0.0.1:{self.demo.port}"}},
            "gateway": {"external_url": self.issuer},
            "rate_limits": {
                "partner": dict(sc["policy"], key=["client_id"]),
                "token-ip": dict(sc["token_policy"], key=["ip"]),
            },
            "detect": detect,
            "admin": {"clients": [admin_x5t]},
            "routes": self.srv.config["routes"] + [
                {"method": "GET", "path": "/customers/{tag}", "upstream": "demo",
                 "identifier": True, "rate_limits": ["partner"],
                 "auth": {"scopes": ["customers"]}},
                {"method": "GET", "path": "/vehicles/{id}/position", "upstream": "demo",
                 "rate_limits": ["partner"], "auth": {"scopes": ["vehicles"]}},
            ],
        }

    def _fit_config(self, cfg):
        """Drop the optional keys this build's `portcullis check` refuses."""
        cfg = json.loads(json.dumps(cfg))
        path = self.workdir / "check.yaml"
        for _ in range(len(OPTIONAL_KEYS) + 1):
            path.write_text(H.to_yaml(cfg) + "\n")
            p = H.run([H.BIN, "check", "-c", str(path)], timeout=60)
            if p.returncode == 0:
                return cfg
            m = re.search(r":\d+:\d+: ([A-Za-z0-9_.\[\]]+): unknown key", p.stderr)
            if not m:
                raise RuntimeError(f"portcullis check refused the config:\n{p.stderr}")
            key = re.sub(r"\[\d+\]", "[]", m.group(1))
            if key not in OPTIONAL_KEYS or not _del_path(cfg, key):
                raise RuntimeError(f"portcullis check refused the config:\n{p.stderr}")
            self.dropped.append(key)
            self.check_error = self.check_error or p.stderr.strip()
            self.log(f"this build does not know `{key}`: left out of the config")
        raise RuntimeError("config did not converge")

    # -- clients
    def ctx(self, name=None):
        return H.client_context(self.pki, client=self.pki.cert(name) if name else None)

    def stop(self):
        """Stop everything; returns a list of problems (unclean exits)."""
        problems = []
        try:
            self.srv.stop(timeout=30)
        except AssertionError as e:
            problems.append(str(e)[:4000])
        finally:
            self.srv.kill()
        problems += self.demo.stop()
        if self.webhook:
            self.webhook.stop()
        return problems


# ---------------------------------------------------------------------------
# the server's log: detector alerts
# ---------------------------------------------------------------------------

def parse_ts(ts):
    return datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


class LogWatcher(threading.Thread):
    """Follows the server's JSON log and keeps the detector's lines
    (event or msg "detect_alert") and other warnings about sanctions."""

    def __init__(self, path, since=0.0):
        super().__init__(daemon=True)
        self.path = Path(path)
        self.since = since        # ignore lines older than this (earlier runs on the same server)
        self.alerts = []          # parsed detect_alert lines, with "_t" (epoch seconds)
        self.other = []           # other warn/error lines (at most 200)
        self.stopping = False
        self.lines = 0

    def run(self):
        while not self.path.exists() and not self.stopping:
            time.sleep(0.1)
        with open(self.path, "rb") as f:
            buf = b""
            while True:
                chunk = f.read(1 << 20)
                if not chunk:
                    if self.stopping:
                        break
                    time.sleep(0.1)
                    continue
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    self._line(line)

    def _line(self, line):
        self.lines += 1
        if b'"level":"warn"' not in line and b'"level":"error"' not in line:
            return
        try:
            rec = json.loads(line)
        except ValueError:
            return
        try:
            rec["_t"] = parse_ts(rec["ts"])
        except (KeyError, ValueError):
            rec["_t"] = time.time()
        if rec["_t"] < self.since:
            return
        if rec.get("event") == "detect_alert" or rec.get("msg") == "detect_alert":
            self.alerts.append(rec)
        elif len(self.other) < 200:
            self.other.append(rec)

    def stop(self):
        self.stopping = True
        self.join(timeout=10)


# ---------------------------------------------------------------------------
# clients
# ---------------------------------------------------------------------------

POLICY_HEADERS = ("ratelimit", "ratelimit-policy")


class Stats:
    """What one client saw. Times are seconds since the start of traffic."""

    def __init__(self):
        self.requests = 0          # gateway requests answered
        self.status = Counter()
        self.records = 0           # 200 with a record
        self.errors = 0            # connection errors / timeouts
        self.token_requests = 0
        self.token_status = Counter()
        self.token_errors = Counter()   # OAuth error codes
        self.tokens = 0
        self.renewed_after_401 = 0  # 401 (expired or revoked token), then a fresh token and a retry
        self.first = {}            # event -> first time: "403", "429", "401", "token_429", ...
        self.records_before_stop = None
        self.hdr = Counter()       # header checks: "policy_ok", "policy_missing", "429_ok", "429_missing"
        self.hdr_example = {}      # one missing-header example per check
        self.retry_after = []      # Retry-After values seen (first 50)
        self.record_times = None   # attackers: the time of each record

    def mark(self, ev, t):
        self.first.setdefault(ev, t)

    def as_dict(self):
        return {"requests": self.requests, "status": dict(self.status), "records": self.records,
                "errors": self.errors, "token_requests": self.token_requests,
                "token_status": dict(self.token_status), "token_errors": dict(self.token_errors),
                "tokens": self.tokens, "renewed_after_401": self.renewed_after_401,
                "first": {k: round(v, 3) for k, v in self.first.items()},
                "headers": dict(self.hdr), "header_examples": self.hdr_example}


class Client:
    """One partner or attacker: its TLS context, source address, token, and
    a keep-alive connection to the gateway/AS."""

    def __init__(self, sim, client_id, cert=None, src=None, dpop_key=None, assertion_key=None):
        self.sim = sim
        self.stack = sim.stack
        self.client_id = client_id
        self.cert = cert
        self.src = src
        self.ctx = self.stack.ctx(cert)
        self.dpop_key = dpop_key              # DPoP-bound tokens (private_key_jwt client)
        self.assertion_key = assertion_key
        self.conn = None
        self.token = None
        self.token_exp = 0.0
        self.stats = Stats()

    # -- transport
    def _connect(self):
        self.close()
        self.conn = H.tls_connect(self.stack.port, None, ctx=self.ctx, source=self.src,
                                  timeout=10)

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def exchange(self, method, path, headers=(), body=None, timeout=10.0):
        """One request on the keep-alive connection (re-opened once if it
        was closed); None on failure."""
        for attempt in (0, 1):
            try:
                if self.conn is None:
                    self._connect()
                r = self.conn.request(method, path, headers=list(headers), body=body,
                                      timeout=timeout)
                if (r.header("connection") or "").lower() == "close":
                    self.close()
                return r
            except (H.Closed, OSError, ssl.SSLError, AssertionError, ValueError):
                self.close()
                if attempt:
                    self.stats.errors += 1
        return None

    # -- tokens
    def fetch_token(self):
        st = self.stats
        form = [("grant_type", "client_credentials"), ("scope", SCOPES)]
        hdrs = [("Content-Type", "application/x-www-form-urlencoded")]
        if self.assertion_key is not None:
            form += [("client_assertion_type", JWT_BEARER),
                     ("client_assertion", client_assertion(self.client_id, self.assertion_key,
                                                           self.stack.issuer))]
        else:
            form.append(("client_id", self.client_id))
        if self.dpop_key is not None:
            hdrs.append(("DPoP", dpop_proof(self.dpop_key, self.stack.issuer + "/token")))
        st.token_requests += 1
        r = self.exchange("POST", "/token", hdrs, urllib.parse.urlencode(form))
        if r is None:
            return None
        st.token_status[r.status] += 1
        now = self.sim.now()
        self.check_token_headers(r)
        if r.status == 200:
            doc = r.json()
            self.token = doc["access_token"]
            self.token_exp = time.monotonic() + float(doc.get("expires_in", 60))
            st.tokens += 1
            return self.token
        try:
            err = r.json().get("error", "?")
        except ValueError:
            err = "?"
        st.token_errors[err] += 1
        st.mark(f"token_{r.status}", now)
        return None

    def ensure_token(self, margin=15.0):
        if self.token is None or time.monotonic() > self.token_exp - margin:
            self.fetch_token()
        return self.token

    # -- gateway
    def auth_headers(self, path, token=None, dpop_key=None):
        token = token or self.token
        dpop_key = dpop_key or self.dpop_key
        if token is None:
            return []
        if dpop_key is not None:
            proof = dpop_proof(dpop_key, self.stack.issuer + path, htm="GET",
                               claims={"ath": ath(token)})
            return [("Authorization", f"DPoP {token}"), ("DPoP", proof)]
        return [("Authorization", f"Bearer {token}")]

    def api_get(self, path, policy=True, refresh=True):
        """GET through the gateway with the current token; records what came
        back. Returns the response (or None)."""
        if refresh:
            self.ensure_token()
        r = self.exchange("GET", path, self.auth_headers(path))
        if r is not None and r.status == 401 and refresh and self.token is not None:
            # expired or revoked: one fresh token, one retry
            self.stats.renewed_after_401 += 1
            self.token = None
            if self.fetch_token():
                r = self.exchange("GET", path, self.auth_headers(path))
        self.note(r, policy)
        return r

    def note(self, r, policy=True):
        st = self.stats
        now = self.sim.now()
        if r is None:
            return
        st.requests += 1
        st.status[r.status] += 1
        if r.status == 200 and (b'"service_tag"' in r.body or b'"vehicle_id"' in r.body):
            st.records += 1
            if st.record_times is not None:
                st.record_times.append(now)
        elif r.status == 403:
            st.hdr_example.setdefault("403", {"content_type": r.header("content-type"),
                                              "body": r.body[:400].decode("latin-1")})
            if b"client_quarantined" in r.body or b"quarantine" in r.body:
                st.mark("quarantined", now)
            st.mark("403", now)
        elif r.status in (401, 429):
            st.mark(str(r.status), now)
        self.check_headers(r, policy)

    def check_headers(self, r, policy=True):
        """Rate-limit headers: a 429 must carry Retry-After, RateLimit and
        RateLimit-Policy; an answer on a route under a policy RateLimit and
        RateLimit-Policy."""
        st = self.stats
        if not self.stack.defenses:
            return
        if r.status == 429:
            missing = [h for h in ("retry-after",) + POLICY_HEADERS if r.header(h) is None]
            self._hdr("429", missing, r)
            ra = r.header("retry-after")
            if ra is not None and len(st.retry_after) < 50:
                st.retry_after.append(ra)
        elif policy and r.status in (200, 404):
            self._hdr("policy", [h for h in POLICY_HEADERS if r.header(h) is None], r)

    def check_token_headers(self, r):
        """Token responses fall under as.rate_limits: RateLimit and
        RateLimit-Policy on a 200; a 429 as for the gateway."""
        if not self.stack.defenses or "as.rate_limits" in self.stack.dropped:
            return
        if r.status == 200:
            self._hdr("token_policy", [h for h in POLICY_HEADERS if r.header(h) is None], r)
        elif r.status == 429:
            self._hdr("token_429", [h for h in ("retry-after",) + POLICY_HEADERS
                                    if r.header(h) is None], r)

    def _hdr(self, name, missing, r):
        if missing:
            self.stats.hdr[f"{name}_missing"] += 1
            self.stats.hdr_example.setdefault(name, {"status": r.status, "missing": missing,
                                                     "headers": r.header_list[:20]})
        else:
            self.stats.hdr[f"{name}_ok"] += 1

    def retry_after(self, r, cap=10.0):
        try:
            return min(cap, max(0.05, float(r.header("retry-after") or 1)))
        except ValueError:
            return 1.0


class Actor(threading.Thread):
    def __init__(self, sim, name, kind):
        super().__init__(daemon=True, name=name)
        self.sim = sim
        self.name_ = name
        self.kind = kind        # "benign", "victim" or "attack"
        self.error = None

    def run(self):
        try:
            self.body()
        except Exception as e:   # report, don't kill the run
            import traceback
            self.error = traceback.format_exc()
            self.sim.say(f"{self.name_}: {e!r}")

    def sleep_until(self, t):
        """Sleep until sim time t or the end; False if the run is over."""
        while True:
            now = self.sim.now()
            if self.sim.stopping or now >= self.sim.end:
                return False
            if now >= t:
                return True
            time.sleep(min(t - now, 0.5))


class Partner(Actor):
    """A benign partner: its own customers (repeat access in random order),
    a diurnal rate curve, short bursts, a few recurring 404s, its vehicles
    polled, a fresh token when the old one nears expiry or gets 401."""

    def __init__(self, sim, idx, client_id, kind="benign"):
        super().__init__(sim, client_id, kind)
        st, sc = sim.stack, sim.sc
        rng = random.Random(f"{sc['seed']}-{client_id}")
        self.rng = rng
        dpop = client_id in st.dpop_ids
        self.client = Client(sim, client_id, cert=None if dpop else client_id,
                             src=f"127.0.1.{idx + 1}",
                             dpop_key=Key("ES256") if dpop else None,
                             assertion_key=st.keys.get(client_id) if dpop else None)
        lo, hi = sc["peak_rate"]
        self.peak = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        self.phase = rng.uniform(-0.08, 0.08)
        self.customers = sim.take_tags(rng.randint(*sc["customers"]))
        self.stale = [sim.typo(rng, t) for t in rng.sample(self.customers, rng.randint(*sc["stale_tags"]))]
        self.vehicles = sim.take_vehicles(rng.randint(*sc["partner_vehicles"]))
        self.vehicle_period = rng.uniform(*sc["vehicle_poll"])
        self.max_rate_seen = 0.0

    def diurnal(self, t):
        sc = self.sim.sc
        f = (1 - math.cos(2 * math.pi * (t / sc["day"] + 0.25 + self.phase))) / 2
        return sc["night_floor"] + (1 - sc["night_floor"]) * f

    def customer_path(self):
        sc, rng = self.sim.sc, self.rng
        x = rng.random()
        if x < sc["fresh_typo_ratio"]:
            tag = self.sim.typo(rng, rng.choice(self.customers))
        elif x < sc["fresh_typo_ratio"] + sc["miss_ratio"]:
            tag = rng.choice(self.stale)
        else:
            tag = rng.choice(self.customers)
        return f"/customers/{tag}"

    def call(self, path, st_kind):
        r = self.client.api_get(path)
        if r is None:
            time.sleep(0.2)
        elif r.status == 429:
            time.sleep(self.client.retry_after(r))
        elif r.status == 403:
            time.sleep(5.0)
        return r

    def body(self):
        rng, sc = self.rng, self.sim.sc
        now = self.sim.now()
        t_cust = now + rng.expovariate(self.peak * self.diurnal(now))
        t_veh = now + rng.uniform(0, self.vehicle_period / max(1, len(self.vehicles)))
        t_burst = now + rng.expovariate(1.0 / sc["burst_every"])
        veh_i = 0
        while True:
            t = min(t_cust, t_veh, t_burst)
            if not self.sleep_until(t):
                return
            if t == t_burst:
                n = rng.randint(*sc["burst_size"])
                tags = rng.sample(self.customers, min(n, len(self.customers)))
                if sc.get("sorted_batches"):
                    tags.sort()
                for tag in tags:
                    if self.sim.stopping:
                        return
                    self.call(f"/customers/{tag}", "burst")
                t_burst = self.sim.now() + rng.expovariate(1.0 / sc["burst_every"])
            elif t == t_veh:
                self.call(f"/vehicles/{self.vehicles[veh_i % len(self.vehicles)]}/position", "veh")
                veh_i += 1
                d = self.diurnal(self.sim.now())
                t_veh += self.vehicle_period / len(self.vehicles) / max(d, 0.2)
            else:
                self.call(self.customer_path(), "cust")
                rate = self.peak * self.diurnal(self.sim.now())
                t_cust += rng.expovariate(rate)
            # never fall far behind schedule (after a Retry-After or a stall)
            now = self.sim.now()
            t_cust, t_veh = max(t_cust, now - 1), max(t_veh, now - 1)


# ---- attacks ----------------------------------------------------------------

class Attack(Actor):
    def __init__(self, sim, name, params):
        super().__init__(sim, name, "attack")
        self.p = params
        self.start_t = params["start"]
        self.end_t = params["start"] + params["length"]
        self.client_id = sim.stack.attack_ids[name]
        self.client = Client(sim, self.client_id, cert=self.client_id,
                             src=f"127.0.2.{sim.attack_index(name)}")
        self.client.stats.record_times = []
        self.notes = {}

    def active(self):
        now = self.sim.now()
        return not self.sim.stopping and now < min(self.end_t, self.sim.end)

    def pace(self, t_next):
        """Sleep to t_next within the attack window."""
        while self.active():
            d = t_next - self.sim.now()
            if d <= 0:
                return True
            time.sleep(min(d, 0.5))
        return False

    def stopped(self):
        f = self.client.stats.first
        return "quarantined" in f or "403" in f


class Enumeration(Attack):
    """Dell-style: a partner with a valid account pulls other customers'
    records by service tag, one per request, at a fixed rate (ascending
    tag order, as when iterating the tag space, or shuffled)."""

    def body(self):
        sim, c, p = self.sim, self.client, self.p
        tags = sim.attack_tags(self.name_)
        if p.get("order") == "ascending":
            tags.sort()
        else:
            random.Random(self.name_).shuffle(tags)
        if not self.sleep_until(self.start_t):
            return
        c.ensure_token()
        interval = 1.0 / p["rate"]
        t_next = sim.now()
        i = 0
        while self.pace(t_next):
            if self.stopped():
                # quarantined: come back every 2 s to see it holds (fresh token too)
                if c.token is None or time.monotonic() > c.token_exp - 15:
                    c.token = None
                    c.fetch_token()
                if c.token is None:
                    c.token = self.last_token
                r = c.api_get(f"/customers/{tags[i % len(tags)]}", refresh=False)
                i += 1
                t_next = sim.now() + 2.0
                continue
            self.last_token = c.token
            r = c.api_get(f"/customers/{tags[i % len(tags)]}")
            i += 1
            if r is not None and r.status == 429:
                t_next = sim.now() + c.retry_after(r, cap=5.0)
            else:
                t_next = max(t_next + interval, sim.now() - 0.5)

    last_token = None


class Scrape(Attack):
    """A partner polling the tracking route for every vehicle, as fast as
    the gateway allows (honouring Retry-After). Before its start time it
    behaves: polls a few vehicles of its own slowly (the baseline a volume
    detector learns from)."""

    def body(self):
        sim, c, p = self.sim, self.client, self.p
        own = sim.take_vehicles(8)
        k = 0
        t_next = sim.now()
        while sim.now() < self.start_t:
            if not self.sleep_until(min(t_next, self.start_t)):
                return
            if sim.now() >= self.start_t:
                break
            c.api_get(f"/vehicles/{own[k % len(own)]}/position")
            k += 1
            t_next += 1.0 / p["prelude_rate"]
        c.stats.record_times = []
        self.prelude = {"requests": c.stats.requests, "records": c.stats.records}
        c.stats.records = 0
        vehicles = sim.stack.vehicles
        interval = 1.0 / p["max_rate"]
        t_next = sim.now()
        i = 0
        while self.pace(t_next):
            r = c.api_get(f"/vehicles/{vehicles[i % len(vehicles)]}/position")
            i += 1
            if r is not None and r.status == 429:
                t_next = sim.now() + c.retry_after(r, cap=5.0)
            elif r is not None and r.status == 403:
                t_next = sim.now() + 2.0
            else:
                t_next = max(t_next + interval, sim.now() - 0.5)

    prelude = None


class StolenToken(Attack):
    """A partner's certificate-bound token, stolen, replayed without the
    certificate and over the thief's own certificate."""

    def body(self):
        sim, p = self.sim, self.p
        victim = sim.victim
        if not self.sleep_until(self.start_t):
            return
        token = None
        while token is None and self.active():
            token = victim.client.token
            time.sleep(0.2)
        # stolen once (from a log, a proxy, a memory dump): the thief keeps
        # this copy, whatever the victim does afterwards
        self.notes["token_of"] = victim.client.client_id
        nocert = Client(sim, self.client_id, cert=None, src=self.client.src)
        nocert.stats = self.client.stats      # one set of figures for the attack
        own = self.client                     # the thief's own (valid) certificate
        interval = 1.0 / p["rate"]
        t_next = sim.now()
        i = 0
        while self.pace(t_next):
            c = nocert if i % 2 == 0 else own
            path = f"/customers/{victim.customers[i % len(victim.customers)]}"
            r = c.exchange("GET", path, [("Authorization", f"Bearer {token}")])
            c.note(r)
            if r is not None and r.status != 200:
                c.stats.mark("refused", sim.now())
            i += 1
            t_next += interval
        nocert.close()


class BruteForce(Attack):
    """Token requests with bad client authentication at a high rate:
    private_key_jwt assertions for a registered client signed with keys
    the attacker made up, and some for guessed client_ids."""

    def body(self):
        sim, c, p = self.sim, self.client, self.p
        c.ctx = sim.stack.ctx(None)        # no certificate: a plain internet client
        rng = random.Random("bf")
        target = p.get("target") or sim.stack.bf_target
        self.target = target
        if not self.sleep_until(self.start_t):
            return
        interval = 1.0 / p["rate"]
        t_next = sim.now()
        st = c.stats
        while self.pace(t_next):
            cid = target if rng.random() >= p["guess_ratio"] else f"partner-{rng.randint(100, 999)}"
            key = Key("ES256", kid=f"{cid}-1")
            form = [("grant_type", "client_credentials"), ("scope", SCOPES),
                    ("client_assertion_type", JWT_BEARER),
                    ("client_assertion", client_assertion(cid, key, sim.stack.issuer))]
            st.token_requests += 1
            r = c.exchange("POST", "/token", [("Content-Type", "application/x-www-form-urlencoded")],
                           urllib.parse.urlencode(form))
            now = sim.now()
            if r is not None:
                st.token_status[r.status] += 1
                try:
                    err = r.json().get("error", "?")
                except ValueError:
                    err = "?"
                st.token_errors[err] += 1
                if r.status == 200:
                    st.tokens += 1
                elif r.status == 429 or err not in ("invalid_client", "?"):
                    st.mark("refused", now)
                    if r.status == 429:
                        st.mark("429", now)
                        c.check_token_headers(r)
            t_next += interval


ATTACKS = {"enum-fast": Enumeration, "enum-slow": Enumeration, "scrape": Scrape,
           "stolen-token": StolenToken, "brute-force": BruteForce}


# ---------------------------------------------------------------------------
# a run
# ---------------------------------------------------------------------------

class Simulation:
    """One run of traffic on a started Stack. `attacks` and `duration`
    override the stack's scenario (the attack clients must be registered:
    a subset of the stack's attacks)."""

    def __init__(self, stack, say=print, attacks=None, duration=None):
        self.stack = stack
        self.sc = dict(stack.sc)
        if attacks is not None:
            assert set(attacks) <= set(stack.attack_ids), attacks
            self.sc["attacks"] = attacks
        if duration is not None:
            self.sc["duration"] = duration
        self.say = say
        self.rng = random.Random(self.sc["seed"])
        self.stopping = False
        self._tag_next = 0
        self._veh_next = 0
        self._lock = threading.Lock()
        self.t0 = time.time()
        self.t0_mono = time.monotonic()
        self.end = self.sc["duration"]

    # -- shared resources
    def now(self):
        return time.monotonic() - self.t0_mono

    def take_tags(self, n):
        with self._lock:
            out = self.stack.tags[self._tag_next:self._tag_next + n]
            self._tag_next += n
        return out

    def attack_tags(self, name):
        """Valid tags for an enumeration attack: other partners' customers
        and everyone else's, from a range of its own."""
        k = list(self.stack.attack_ids).index(name)
        tags = self.stack.tags
        lo = len(tags) // 2 + k * 5000
        return tags[lo:lo + 5000] if lo + 5000 <= len(tags) else tags[-5000:]

    def take_vehicles(self, n):
        with self._lock:
            v = self.stack.vehicles
            out = [v[(self._veh_next + i) % len(v)] for i in range(n)]
            self._veh_next += n
        return out

    def typo(self, rng, tag):
        alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        while True:
            i = rng.randrange(len(tag))
            t = tag[:i] + rng.choice(alphabet.replace(tag[i], "")) + tag[i + 1:]
            if t not in self.stack.tag_set:
                return t

    def attack_index(self, name):
        return list(self.stack.attack_ids).index(name) + 1

    # -- run
    def run(self, progress=10.0):
        sc, st = self.sc, self.stack
        self.partners = [Partner(self, i, cid) for i, cid in enumerate(st.partner_ids)]
        self.victim = (Partner(self, 250, st.victim_id, kind="victim")
                       if "stolen-token" in sc["attacks"] else None)
        self.attacks = [ATTACKS[n](self, n, p) for n, p in sc["attacks"].items()]
        self.t0 = time.time()
        self.t0_mono = time.monotonic()
        self.watch = LogWatcher(st.srv.log_path, since=self.t0)
        self.watch.start()
        actors = self.partners + ([self.victim] if self.victim else []) + self.attacks
        for a in actors:
            a.start()
        next_p = progress
        try:
            while self.now() < self.end:
                time.sleep(min(1.0, max(0.0, self.end - self.now())))
                if progress and self.now() >= next_p:
                    self.say(self.progress_line())
                    next_p += progress
        except KeyboardInterrupt:
            self.say("interrupted: reporting what was measured so far")
            self.end = self.now()
        self.stopping = True
        for a in actors:
            a.join(timeout=15)
        self.elapsed = self.now()
        for a in actors:
            a.client.close()
        time.sleep(1.5)          # the access log and alerts are flushed once a second
        self.metrics = self.scrape_admin()
        self.watch.stop()

    def progress_line(self):
        b = sum(p.client.stats.requests for p in self.partners)
        a = sum(a.client.stats.requests for a in self.attacks)
        return (f"t={self.now():5.0f}s benign requests {b} ({b / max(self.now(), 1):.0f}/s), "
                f"attack requests {a}, alerts {len(self.watch.alerts)}")

    def scrape_admin(self):
        """/metrics and /admin/quarantines with the admin certificate."""
        out = {}
        admin = Client(self, "admin", cert="admin", src="127.0.3.1")
        r = admin.exchange("GET", "/metrics")
        if r is not None and r.status == 200:
            out["metrics"] = [ln for ln in r.body.decode(errors="replace").splitlines()
                              if ln.startswith(("portcullis_detect", "portcullis_ratelimit"))]
        else:
            out["metrics_status"] = r.status if r is not None else None
        r = admin.exchange("GET", "/admin/quarantines")
        if r is not None and r.status == 200:
            try:
                out["quarantines"] = r.json()
            except ValueError:
                out["quarantines"] = r.body.decode(errors="replace")[:2000]
        else:
            out["quarantines_status"] = r.status if r is not None else None
        admin.close()
        return out


# ---------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------

def _alerts_for(sim, client_id, src=None):
    """Detector lines about a client (by client_id, or by a key naming it or
    its address)."""
    out = []
    for a in sim.watch.alerts:
        key = str(a.get("key", ""))
        if a.get("client_id") == client_id or key.endswith(":" + client_id) \
                or (src and key.endswith(":" + src)):
            out.append(a)
    return out


def _rel(sim, a):
    return round(a["_t"] - sim.t0, 3)


def _round(x, n=1):
    return None if x is None else round(x, n)


def build_report(sim):
    sc, stack = sim.sc, sim.stack
    rep = {
        "binary": H.BIN,
        "defenses": stack.defenses,
        "config_dropped": stack.dropped,
        "config_check_error": stack.check_error,
        "elapsed_s": round(sim.elapsed, 1),
        "scenario": {k: v for k, v in sc.items()},
        "attacks": [],
    }
    for atk in sim.attacks:
        s = atk.client.stats
        st = atk.start_t
        alerts = _alerts_for(sim, atk.client_id, atk.client.src)
        row = {"attack": atk.name_, "client_id": atk.client_id, "start_s": st,
               "requests": s.requests, "token_requests": s.token_requests,
               "records": s.records, "status": dict(s.status),
               "token_status": dict(s.token_status), "token_errors": dict(s.token_errors),
               "tokens": s.tokens, "errors": s.errors}
        if atk.error:
            row["error"] = atk.error
        first = s.first
        q_alert = [a for a in alerts if "quarantine" in (a.get("actions") or [])]
        # stopped: the first refusal for quarantine the attacker saw (the
        # request that tripped the detector is still answered); failing
        # that, the quarantine alert
        stop_t = min([first[k] for k in ("quarantined", "403") if k in first], default=None)
        if stop_t is None:
            stop_t = min([_rel(sim, a) for a in q_alert], default=None)
        refusal = min([first[k] for k in ("quarantined", "403", "429", "refused") if k in first],
                      default=None)
        if isinstance(atk, StolenToken):
            alerts = alerts + _alerts_for(sim, sim.victim.client.client_id)
            row["victim"] = sim.victim.client.client_id
            row["victim_quarantined"] = "quarantined" in sim.victim.client.stats.first
            stop_t = refusal
        if isinstance(atk, BruteForce):
            target = atk.p.get("target") or stack.bf_target
            alerts = alerts + [a for a in sim.watch.alerts
                               if a not in alerts and (a.get("client_id") == target
                                                       or str(a.get("key", "")).endswith(":" + target))]
            stop_t = refusal
            target = atk.p.get("target") or stack.bf_target
            row["target"] = target
            row["target_quarantined"] = any(
                q.get("client_id") == target and q.get("quarantined")
                for q in (sim.metrics.get("quarantines") or {}).get("quarantines", [])
                if isinstance(q, dict)) if isinstance(sim.metrics.get("quarantines"), dict) else None
        first_alert = min((_rel(sim, a) for a in alerts), default=None)
        recs = s.record_times or []
        row["records_before_stop"] = (len([t for t in recs if stop_t is None or t < stop_t]))
        row["records_after_stop"] = len(recs) - row["records_before_stop"]
        row["time_to_alert_s"] = _round(first_alert - st if first_alert is not None else None)
        row["time_to_refusal_s"] = _round(refusal - st if refusal is not None else None)
        row["time_to_stop_s"] = _round(stop_t - st if stop_t is not None else None)
        row["first_429_s"] = _round(first["429"] - st if "429" in first else None)
        row["first_403_s"] = _round(first["403"] - st if "403" in first else None)
        acts = []
        for a in sorted(alerts, key=lambda a: a["_t"]):
            for x in a.get("actions") or []:
                if x not in acts:
                    acts.append(x)
        row["detectors"] = sorted({str(a.get("detector")) for a in alerts})
        row["actions"] = acts
        seen = []
        if s.status.get(403) or "quarantined" in first:
            seen.append("403 quarantine")
        if s.status.get(429) or s.token_status.get(429):
            seen.append("429")
        if s.status.get(401) and isinstance(atk, StolenToken):
            seen.append("401 binding")
        row["refusals_seen"] = seen
        row["alerts"] = [{"t_s": round(_rel(sim, a) - st, 3), "detector": a.get("detector"),
                          "key": a.get("key"), "actions": a.get("actions"),
                          "evidence": a.get("evidence")} for a in alerts[:20]]
        row["headers"] = dict(s.hdr)
        row["header_examples"] = s.hdr_example
        length = max(0.001, min(atk.end_t, sim.elapsed) - st)
        row["records_per_s"] = round(len(recs) / length, 2)
        if isinstance(atk, Scrape):
            t_thr = min([_rel(sim, a) for a in alerts if "throttle" in (a.get("actions") or [])],
                        default=None)
            row["prelude"] = atk.prelude
            if t_thr is not None:
                before = [t for t in recs if t < t_thr]
                after = [t for t in recs if t >= t_thr]
                row["records_per_s_before_throttle"] = round(len(before) / max(0.001, t_thr - st), 2)
                row["records_per_s_after_throttle"] = round(
                    len(after) / max(0.001, min(atk.end_t, sim.elapsed) - t_thr), 2)
        if isinstance(atk, Enumeration):
            row["rate"] = atk.p["rate"]
        rep["attacks"].append(row)

    # benign partners
    ben = [p for p in sim.partners]
    tot = Counter()
    hdr = Counter()
    false_alerts, false_q, per_client = [], [], []
    for p in ben:
        s = p.client.stats
        tot["requests"] += s.requests
        tot["records"] += s.records
        tot["404"] += s.status.get(404, 0)
        tot["429"] += s.status.get(429, 0)
        tot["403"] += s.status.get(403, 0)
        tot["401"] += s.status.get(401, 0)
        tot["5xx"] += sum(v for k, v in s.status.items() if k >= 500)
        tot["errors"] += s.errors
        tot["tokens"] += s.tokens
        tot["token_refused"] += sum(v for k, v in s.token_status.items() if k != 200)
        hdr.update(s.hdr)
        al = _alerts_for(sim, p.client.client_id, p.client.src)
        false_alerts += al
        quarantined = "quarantined" in s.first or any("quarantine" in (a.get("actions") or [])
                                                      for a in al)
        if quarantined:
            false_q.append(p.client.client_id)
        per_client.append({"client_id": p.client.client_id,
                           "dpop": p.client.dpop_key is not None,
                           "peak_rate": round(p.peak, 2), "customers": len(p.customers),
                           "vehicles": len(p.vehicles), "requests": s.requests,
                           "status": dict(s.status), "tokens": s.tokens,
                           "token_status": dict(s.token_status),
                           "token_errors": dict(s.token_errors),
                           "alerts": len(al), "quarantined": quarantined})
    n = tot["requests"]
    rep["benign"] = {
        "clients": len(ben),
        "requests": n,
        "requests_per_s": round(n / max(sim.elapsed, 0.001), 1),
        "records": tot["records"], "404": tot["404"], "429": tot["429"], "403": tot["403"],
        "401": tot["401"], "5xx": tot["5xx"], "errors": tot["errors"],
        "tokens": tot["tokens"], "token_refused": tot["token_refused"],
        "false_alerts": len(false_alerts),
        "false_alerts_per_100k": round(len(false_alerts) * 1e5 / n, 2) if n else None,
        "false_quarantines": len(false_q),
        "quarantined_clients": false_q,
        "peak_rate_max": round(max((p.peak for p in ben), default=0), 2),
        "headers": dict(hdr),
        "alerts": [{"t_s": _rel(sim, a), "client_id": a.get("client_id"), "key": a.get("key"),
                    "detector": a.get("detector"), "actions": a.get("actions"),
                    "evidence": a.get("evidence")} for a in false_alerts[:50]],
        "per_client": per_client,
    }
    if sim.victim:
        vs = sim.victim.client.stats
        rep["victim"] = {"client_id": sim.victim.client.client_id, **vs.as_dict()}
    known = {atk.client_id for atk in sim.attacks} | {p.client.client_id for p in ben}
    known |= {stack.victim_id, stack.bf_target}
    rep["other_alerts"] = [{"t_s": _rel(sim, a), "client_id": a.get("client_id"),
                            "key": a.get("key"), "detector": a.get("detector"),
                            "actions": a.get("actions")}
                           for a in sim.watch.alerts
                           if a.get("client_id") not in known
                           and not any(str(a.get("key", "")).endswith(":" + k) for k in known if k)][:50]
    rep["alerts_total"] = len(sim.watch.alerts)
    rep["log_lines"] = sim.watch.lines
    rep["warnings_in_log"] = [{k: v for k, v in r.items() if k != "_t"} for r in sim.watch.other[:30]]
    rep["admin"] = sim.metrics
    if stack.webhook:
        rep["webhook_received"] = len(stack.webhook.received)
    rep["checks"] = checks(rep)
    return rep


def checks(rep):
    """The issue's "done when" conditions, evaluated on this run."""
    out = []
    by = {a["attack"]: a for a in rep["attacks"]}

    def add(name, ok, detail):
        out.append({"check": name, "ok": bool(ok), "detail": detail})
    for name in ("enum-fast", "enum-slow"):
        a = by.get(name)
        if not a:
            continue
        quarantined = "quarantine" in a["actions"] or "403 quarantine" in a["refusals_seen"]
        t = a["time_to_stop_s"]
        add(f"{name} quarantined within 1000 records and 60 s",
            quarantined and t is not None and t <= 60 and a["records_before_stop"] <= 1000,
            f"quarantined={quarantined} records_before={a['records_before_stop']} time={_fmt(t)}s")
    a = by.get("enum-slow")
    if a:
        add("enum-slow runs below the partner rate limit",
            a["rate"] < rep["scenario"]["policy"]["quota"] / _seconds(rep["scenario"]["policy"]["window"]),
            f"{a['rate']} req/s vs quota {rep['scenario']['policy']['quota']}/"
            f"{rep['scenario']['policy']['window']}; benign peaks up to "
            f"{rep['benign']['peak_rate_max']} req/s")
    a = by.get("scrape")
    if a:
        add("scrape throttled", "429" in a["refusals_seen"] or "throttle" in a["actions"],
            f"429s={a['status'].get(429, 0)} actions={a['actions']}")
    a = by.get("brute-force")
    if a:
        add("brute force blocked", a["time_to_refusal_s"] is not None and a["tokens"] == 0,
            f"refused after {a['time_to_refusal_s']}s, tokens issued {a['tokens']}, "
            f"statuses {a['token_status']}")
    a = by.get("stolen-token")
    if a:
        add("stolen token yields no records", a["records"] == 0,
            f"records {a['records']}, statuses {a['status']}")
    b = rep["benign"]
    add("no benign client quarantined", b["false_quarantines"] == 0,
        f"{b['false_quarantines']} {b['quarantined_clients']}")
    add("benign false alerts <= 1 per 100,000 requests",
        b["requests"] and b["false_alerts"] * 100000 <= b["requests"],
        f"{b['false_alerts']} alerts in {b['requests']} requests")
    return out


def _seconds(d):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", str(d))
    if not m:
        return 1.0
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def _fmt(v):
    return "-" if v is None else str(v)


def format_table(rep):
    lines = []
    lines.append(f"binary {rep['binary']}  defenses: "
                 f"{'on' if rep['defenses'] else 'OFF (this build refused: ' + ', '.join(rep['config_dropped']) + ')'}"
                 f"  elapsed {rep['elapsed_s']}s")
    lines.append("")
    hdr = ["attack", "requests", "records", "before stop", "alert (s)", "refusal (s)", "stop (s)",
           "detectors", "actions", "refusals seen"]
    rows = [hdr]
    for a in rep["attacks"]:
        reqs = a["requests"] + (a["token_requests"] if a["attack"] == "brute-force" else 0)
        recs = a["records"] if a["attack"] != "brute-force" else f"{a['tokens']} tokens"
        rows.append([a["attack"], str(reqs), str(recs), str(a["records_before_stop"]),
                     _fmt(a["time_to_alert_s"]), _fmt(a["time_to_refusal_s"]),
                     _fmt(a["time_to_stop_s"]), ",".join(a["detectors"]) or "-",
                     ",".join(a["actions"]) or "-", ",".join(a["refusals_seen"]) or "-"])
    lines += _table(rows)
    b = rep["benign"]
    lines.append("")
    rows = [["benign", "clients", "requests", "req/s", "records", "404", "429", "403", "5xx/err",
             "false alerts", "per 100k", "false quarantines"],
            ["partners", str(b["clients"]), str(b["requests"]), str(b["requests_per_s"]),
             str(b["records"]), str(b["404"]), str(b["429"]), str(b["403"]),
             f"{b['5xx']}/{b['errors']}", str(b["false_alerts"]), _fmt(b["false_alerts_per_100k"]),
             str(b["false_quarantines"])]]
    lines += _table(rows)
    if b["headers"]:
        lines.append(f"headers on benign answers: {b['headers']}")
    if rep.get("victim"):
        v = rep["victim"]
        lines.append(f"stolen-token victim {v['client_id']} (not counted as benign): "
                     f"{v['requests']} requests, status {v['status']}, "
                     f"{v['renewed_after_401']} token(s) renewed after a 401")
    for a in rep["attacks"]:
        if a["attack"] == "brute-force" and a.get("target_quarantined") is not None:
            lines.append(f"brute-force target {a['target']} quarantined: {a['target_quarantined']}")
    lines.append("")
    for c in rep["checks"]:
        lines.append(f"[{'PASS' if c['ok'] else 'FAIL'}] {c['check']}: {c['detail']}")
    return "\n".join(lines)


def _table(rows):
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for k, r in enumerate(rows):
        out.append("  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip())
        if k == 0:
            out.append("  ".join("-" * w[i] for i in range(len(w))))
    return out
