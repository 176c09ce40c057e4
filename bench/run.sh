#!/usr/bin/env bash
# bench/run.sh: portcullis and Debian's nginx side by side on loopback.
#
# Both serve the same small static JSON over TLS with the same certificate,
# the same TLS policy and optional client certificates. For each case
# (keep-alive and handshake-per-request, each with and without a client
# certificate) the load generator (bench/loadgen) runs against both servers,
# alternating which goes first, REPS times; the medians are compared.
# Server CPU is read from /proc (utime+stime of the server's whole process
# tree) around each run and divided by the requests completed in that run.
#
# Not a test: it prints figures and writes bench/out/foundation.json.
# Usage: make bench   (or bench/run.sh after make bench-build)
#
# Environment knobs:
#   DURATION        measured seconds per run (10)
#   HS_DURATION     the same for the handshake cases (DURATION)
#   WARMUP          seconds before measuring, per run (1)
#   REPS            runs per server and case; the median is reported (3)
#   CONNS           keep-alive connections (64)
#   HS_CONNS        handshake-case connections (32)
#   THREADS         load generator threads (2)
#   CASES           subset of: keepalive keepalive-mtls handshake handshake-mtls
#   PORTCULLIS_BIN  the server binary (build/release/portcullis)
#   LOADGEN         the load generator (build/bench/loadgen)
#   NGINX_BIN       nginx (/usr/sbin/nginx)
#   OUT_JSON        where the results go (bench/out/foundation.json)
#   KEEP_TMP        set to keep the temp dir (configs, logs, PKI) for a look
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PORTCULLIS_BIN=${PORTCULLIS_BIN:-$ROOT/build/release/portcullis}
LOADGEN=${LOADGEN:-$ROOT/build/bench/loadgen}
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
DURATION=${DURATION:-10}
HS_DURATION=${HS_DURATION:-$DURATION}
WARMUP=${WARMUP:-1}
REPS=${REPS:-3}
CONNS=${CONNS:-64}
HS_CONNS=${HS_CONNS:-32}
THREADS=${THREADS:-2}
CASES=${CASES:-keepalive keepalive-mtls handshake handshake-mtls}
OUT_JSON=${OUT_JSON:-$ROOT/bench/out/foundation.json}
PY=/usr/bin/python3
[[ -x $PY ]] || PY=python3

die() { echo "bench: $*" >&2; exit 1; }

for b in "$PORTCULLIS_BIN" "$LOADGEN" "$NGINX_BIN"; do
    [[ -x $b ]] || die "$b not found or not executable (run 'make bench-build')"
done
command -v curl >/dev/null || die "curl is needed"
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "REPS must be a positive integer"
for c in $CASES; do
    case $c in keepalive | keepalive-mtls | handshake | handshake-mtls) ;;
    *) die "unknown case '$c'" ;;
    esac
done

T=$(mktemp -d /tmp/portcullis-bench.XXXXXX)
# Only the processes this script started, by pid; never by name.
STARTED=()

stop_pid() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    local pid kids
    for pid in "${STARTED[@]}"; do
        kids=$(pgrep -P "$pid" 2>/dev/null || true)
        stop_pid "$pid"
        # nginx workers normally leave with their master; make sure.
        for k in $kids; do stop_pid "$k"; done
    done
    wait 2>/dev/null || true
    if [[ -n ${KEEP_TMP:-} ]]; then echo "bench: kept $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- PKI: one CA, one server certificate, one client certificate -------------
PKI=$T/pki
mkdir -p "$PKI" "$T/logs"
"$PORTCULLIS_BIN" pki init --dir "$PKI" >"$T/logs/pki.txt" 2>&1 || { cat "$T/logs/pki.txt" >&2; die "pki init failed"; }
"$PORTCULLIS_BIN" pki issue-server --dir "$PKI" >>"$T/logs/pki.txt" 2>&1 || { cat "$T/logs/pki.txt" >&2; die "pki issue-server failed"; }
"$PORTCULLIS_BIN" pki issue-client --dir "$PKI" --name bench-client \
    --subject "CN=bench client,O=portcullis bench" >>"$T/logs/pki.txt" 2>&1 ||
    { cat "$T/logs/pki.txt" >&2; die "pki issue-client failed"; }
for f in ca.pem server.pem server.key bench-client.pem bench-client.key; do
    [[ -s $PKI/$f ]] || die "the PKI has no $f"
done

# ---- two free loopback ports ---------------------------------------------------
read -r NGINX_PORT PC_PORT < <("$PY" -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s:
    x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])
')

# ---- nginx ---------------------------------------------------------------------
# The TLS policy mirrors portcullis' (src/net/tls.h): the same TLS 1.3 suites,
# TLS 1.2 ciphers and groups, server preference. Otherwise nginx would follow
# the client's order (AES-256 first) and the two would not do the same work.
NG=$T/nginx
mkdir -p "$NG/tmp"
NGINX_USER=""
[[ $(id -u) -eq 0 ]] && NGINX_USER="user root;"
cat >"$NG/nginx.conf" <<EOF
$NGINX_USER
worker_processes 2;
pid $NG/nginx.pid;
error_log $NG/error.log warn;
events { worker_connections 4096; }
http {
    access_log $NG/access.log combined buffer=64k;
    client_body_temp_path $NG/tmp/body;
    proxy_temp_path $NG/tmp/proxy;
    fastcgi_temp_path $NG/tmp/fastcgi;
    uwsgi_temp_path $NG/tmp/uwsgi;
    scgi_temp_path $NG/tmp/scgi;
    keepalive_requests 10000;
    keepalive_timeout 60s;
    server {
        listen 127.0.0.1:$NGINX_PORT ssl;
        ssl_certificate $PKI/server.pem;
        ssl_certificate_key $PKI/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_prefer_server_ciphers on;
        ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384;
        ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256;
        ssl_ecdh_curve X25519:prime256v1:secp384r1;
        ssl_client_certificate $PKI/ca.pem;
        ssl_verify_client optional;
        location = /hello {
            default_type application/json;
            return 200 '{"hello":"world"}';
        }
        location = /healthz {
            default_type text/plain;
            return 200 'ok';
        }
        location = /whoami {
            default_type text/plain;
            return 200 '\$ssl_client_verify \$ssl_client_s_dn';
        }
    }
}
EOF
"$NGINX_BIN" -e "$NG/error.log" -p "$NG/" -c "$NG/nginx.conf" -g 'daemon off;' \
    >"$T/logs/nginx.out" 2>&1 &
NGINX_PID=$!
STARTED+=("$NGINX_PID")

# ---- portcullis ------------------------------------------------------------------
PC=$T/portcullis
mkdir -p "$PC"
cat >"$PC/portcullis.yaml" <<EOF
server:
  listen: 127.0.0.1:$PC_PORT
  workers: 2
  tls:
    cert: $PKI/server.pem
    key: $PKI/server.key
    client_ca: $PKI/ca.pem
    client_cert: optional
  limits:
    max_requests_per_connection: 10000
log:
  # info, not warn: access lines are info events (with warn portcullis would
  # write none, while nginx writes one per request)
  level: info
  access: true
  file: $PC/portcullis-access.log
routes:
  - method: GET
    path: /hello
    static:
      status: 200
      content_type: application/json
      body: '{"hello":"world"}'
EOF
"$PORTCULLIS_BIN" serve -c "$PC/portcullis.yaml" >"$T/logs/portcullis.out" 2>&1 &
PC_PID=$!
STARTED+=("$PC_PID")

wait_ready() { # name pid port log
    local i code
    for i in $(seq 100); do
        code=$(curl -sk --max-time 1 -o /dev/null -w '%{http_code}' \
            "https://127.0.0.1:$3/healthz" 2>/dev/null || true)
        [[ $code == 200 ]] && return 0
        if ! kill -0 "$2" 2>/dev/null; then
            tail -20 "$4" >&2
            die "$1 exited during start-up"
        fi
        sleep 0.1
    done
    tail -20 "$4" >&2
    die "$1 did not answer /healthz on port $3 within 10 s"
}
wait_ready nginx "$NGINX_PID" "$NGINX_PORT" "$NG/error.log"
wait_ready portcullis "$PC_PID" "$PC_PORT" "$T/logs/portcullis.out"

# The client certificate must be accepted by both, or the mTLS cases mean
# nothing: nginx says so at /whoami; for portcullis a 200 with the
# certificate presented is the check (it would refuse a bad one).
who=$(curl -s --cacert "$PKI/ca.pem" --cert "$PKI/bench-client.pem" --key "$PKI/bench-client.key" \
    "https://127.0.0.1:$NGINX_PORT/whoami" || true)
[[ $who == SUCCESS* ]] || die "nginx did not verify the client certificate: '$who'"
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$PKI/ca.pem" --cert "$PKI/bench-client.pem" \
    --key "$PKI/bench-client.key" "https://127.0.0.1:$PC_PORT/hello" || true)
[[ $code == 200 ]] || die "portcullis answered $code to GET /hello with the client certificate"

# ---- measuring -------------------------------------------------------------------
. "$ROOT/bench/lib.sh"

RUNS=$T/runs.jsonl
: >"$RUNS"

run_one() { # case server rep
    local kase=$1 server=$2 rep=$3 port pid mode conns dur json c0 c1 rc=0 b0 t0 b1 t1
    local -a certargs=()
    case $server in
    nginx) port=$NGINX_PORT pid=$NGINX_PID ;;
    portcullis) port=$PC_PORT pid=$PC_PID ;;
    esac
    case $kase in
    keepalive*) mode=keepalive conns=$CONNS dur=$DURATION ;;
    handshake*) mode=handshake conns=$HS_CONNS dur=$HS_DURATION ;;
    esac
    [[ $kase == *-mtls ]] && certargs=(--cert "$PKI/bench-client.pem" --key "$PKI/bench-client.key")
    kill -0 "$pid" 2>/dev/null || die "$server is no longer running"
    c0=$(cpu_ticks "$pid")
    read -r b0 t0 < <(sys_ticks)
    json=$("$LOADGEN" --url "https://127.0.0.1:$port/hello" --cacert "$PKI/ca.pem" "${certargs[@]}" \
        --mode "$mode" --connections "$conns" --threads "$THREADS" --duration "$dur" \
        --warmup "$WARMUP" --json 2>"$T/logs/$kase-$server-$rep.txt") || rc=$?
    read -r b1 t1 < <(sys_ticks)
    c1=$(cpu_ticks "$pid")
    if [[ $rc -ne 0 || $json != \{* ]]; then
        cat "$T/logs/$kase-$server-$rep.txt" >&2
        die "the load generator failed against $server ($kase)"
    fi
    printf '{"case":"%s","server":"%s","rep":%d,"cpu_ticks":%d,"clk_tck":%d,"sys_busy_ticks":%d,"sys_total_ticks":%d,"loadgen":%s}\n' \
        "$kase" "$server" "$rep" "$((c1 - c0))" "$CLK_TCK" "$((b1 - b0))" "$((t1 - t0))" "$json" >>"$RUNS"
    "$PY" -c '
import json, sys
r = json.loads(sys.argv[1]); lg = r["loadgen"]
cpu = r["cpu_ticks"] / r["clk_tck"] * 1e6 / max(lg["requests_total"], 1)
other = (r["sys_busy_ticks"] - r["cpu_ticks"] - lg["client_cpu_s"] * r["clk_tck"]) / max(r["sys_total_ticks"], 1)
bad = ""
if lg["errors"] or lg["non2xx"]:
    bad = "  errors %d non-2xx %d" % (lg["errors"], lg["non2xx"])
print("  rep %s  %-15s %-10s %10.0f req/s %9.1f us CPU/req  p99 %8.0f us  other load %3.0f%%%s"
      % (r["rep"], r["case"], r["server"], lg["rps"], cpu, lg["p99_us"], max(other, 0) * 100, bad),
      file=sys.stderr)
' "$(tail -1 "$RUNS")"
}

ncases=$(wc -w <<<"$CASES")
echo "bench: nginx on :$NGINX_PORT (pid $NGINX_PID), portcullis on :$PC_PORT (pid $PC_PID);" \
    "$REPS reps x $ncases cases x 2 servers, ${DURATION}s/${HS_DURATION}s + ${WARMUP}s warm-up each" >&2
for rep in $(seq "$REPS"); do
    for kase in $CASES; do
        # Alternate who goes first, so neither always meets a warmer machine.
        if ((rep % 2)); then order="nginx portcullis"; else order="portcullis nginx"; fi
        for server in $order; do run_one "$kase" "$server" "$rep"; done
    done
done

# ---- report --------------------------------------------------------------------------
NGINX_VERSION=$("$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //')
PC_VERSION=$("$PORTCULLIS_BIN" version 2>/dev/null | head -1 || true)
mkdir -p "$(dirname "$OUT_JSON")"
"$PY" - "$RUNS" "$OUT_JSON" <<EOF
import json, statistics, sys, os, platform, time

runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cases = "$CASES".split()
labels = {
    "keepalive": "keep-alive",
    "keepalive-mtls": "keep-alive + client cert",
    "handshake": "handshake",
    "handshake-mtls": "handshake + client cert",
}
servers = ["nginx", "portcullis"]

def cpu_us(r):
    return r["cpu_ticks"] / r["clk_tck"] * 1e6 / max(r["loadgen"]["requests_total"], 1)

def other_load(r):
    # Share of the machine's CPU used by neither the server under test nor
    # the load generator during the run (other processes, the idle server).
    busy = r["sys_busy_ticks"] - r["cpu_ticks"] - r["loadgen"]["client_cpu_s"] * r["clk_tck"]
    return max(busy, 0) / max(r["sys_total_ticks"], 1)

out_cases = []
warnings = []
for c in cases:
    entry = {"case": c, "label": labels[c]}
    for s in servers:
        rs = [r for r in runs if r["case"] == c and r["server"] == s]
        lg = [r["loadgen"] for r in rs]
        entry[s] = {
            "rps_median": statistics.median(x["rps"] for x in lg),
            "cpu_us_per_req_median": statistics.median(cpu_us(r) for r in rs),
            "p50_us_median": statistics.median(x["p50_us"] for x in lg),
            "p99_us_median": statistics.median(x["p99_us"] for x in lg),
            "errors": sum(x["errors"] for x in lg),
            "non2xx": sum(x["non2xx"] for x in lg),
            "loadgen_cpu_s_median": statistics.median(x["client_cpu_s"] for x in lg),
            "protocol": lg[0].get("protocol", ""),
            "cipher": lg[0].get("cipher", ""),
            "runs": [{"rep": r["rep"], "rps": r["loadgen"]["rps"], "cpu_us_per_req": round(cpu_us(r), 2),
                      "requests": r["loadgen"]["requests"],
                      "requests_total": r["loadgen"]["requests_total"],
                      "server_cpu_s": r["cpu_ticks"] / r["clk_tck"],
                      "loadgen_cpu_s": r["loadgen"]["client_cpu_s"],
                      "errors": r["loadgen"]["errors"], "non2xx": r["loadgen"]["non2xx"],
                      "p50_us": r["loadgen"]["p50_us"], "p99_us": r["loadgen"]["p99_us"],
                      "other_load": round(other_load(r), 3)}
                     for r in rs],
        }
        if entry[s]["errors"] or entry[s]["non2xx"]:
            warnings.append("%s / %s: %d errors, %d non-2xx responses"
                            % (labels[c], s, entry[s]["errors"], entry[s]["non2xx"]))
        if c.endswith("-mtls") and not all(x.get("cert_requested") for x in lg):
            warnings.append("%s / %s: the server did not ask for the client certificate" % (labels[c], s))
    n, p = entry["nginx"], entry["portcullis"]
    entry["rps_ratio"] = p["rps_median"] / n["rps_median"] if n["rps_median"] else None
    entry["cpu_ratio"] = (n["cpu_us_per_req_median"] / p["cpu_us_per_req_median"]
                          if p["cpu_us_per_req_median"] else None)
    if n["cipher"] != p["cipher"]:
        warnings.append("%s: different ciphers negotiated: nginx %s, portcullis %s"
                        % (labels[c], n["cipher"], p["cipher"]))
    out_cases.append(entry)

def fmt_ratio(x):
    return "%.2fx" % x if x is not None else "-"

hdr = ["case", "nginx req/s", "portcullis req/s", "req/s ratio",
       "nginx CPU us/req", "portcullis CPU us/req", "CPU ratio"]
rows = []
for e in out_cases:
    n, p = e["nginx"], e["portcullis"]
    rows.append([e["label"], "%.0f" % n["rps_median"], "%.0f" % p["rps_median"], fmt_ratio(e["rps_ratio"]),
                 "%.1f" % n["cpu_us_per_req_median"], "%.1f" % p["cpu_us_per_req_median"],
                 fmt_ratio(e["cpu_ratio"])])
w = [max(len(str(r[i])) for r in rows + [hdr]) for i in range(len(hdr))]
line = lambda r: " | ".join(str(v).ljust(w[0]) if i == 0 else str(v).rjust(w[i]) for i, v in enumerate(r))

print()
print("portcullis vs %s: TLS on loopback, %d cores shared by both servers and the load generator"
      % ("$NGINX_VERSION", os.cpu_count() or 0))
print("median of $REPS runs per cell; keep-alive: $CONNS connections, ${DURATION}s; "
      "handshake: $HS_CONNS connections, ${HS_DURATION}s; ${WARMUP}s warm-up per run")
print("  req/s ratio = portcullis req/s / nginx req/s                (>1: portcullis serves more)")
print("  CPU ratio   = nginx CPU us/req / portcullis CPU us/req      (>1: portcullis spends less CPU per request)")
print("  CPU us/req  = server user+system CPU over the whole run (each server's process tree) / requests completed")
print()
print(line(hdr))
print("-+-".join("-" * x for x in w))
for r in rows:
    print(line(r))
print()
ciphers = sorted({e[s]["protocol"] + " " + e[s]["cipher"] for e in out_cases for s in servers})
print("negotiated: " + "; ".join(ciphers))
ka = [e for e in out_cases if e["case"].startswith("keepalive")]
met = None
if ka:
    met = all((e["rps_ratio"] or 0) >= 1.0 and (e["cpu_ratio"] or 0) >= 1.0 for e in ka)
    print("target: portcullis >= 1.0x nginx keep-alive throughput and CPU per request: %s"
          % ("MET" if met else "NOT MET"))
loads = [other_load(r) for r in runs]
print("other load on the machine during the runs: median %.0f%%, max %.0f%% of all CPUs"
      % (statistics.median(loads) * 100, max(loads) * 100))
if max(loads) > 0.05:
    warnings.append("other processes used up to %.0f%% of the CPUs during some runs: "
                    "req/s figures are disturbed; CPU per request less so" % (max(loads) * 100))
for x in warnings:
    print("warning: " + x)

result = {
    "benchmark": "foundation",
    "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "host": {"cpus": os.cpu_count(), "kernel": platform.release()},
    "nginx": "$NGINX_VERSION",
    "portcullis": "$PC_VERSION",
    "settings": {"duration_s": float("$DURATION"), "handshake_duration_s": float("$HS_DURATION"),
                 "warmup_s": float("$WARMUP"), "reps": int("$REPS"),
                 "keepalive_connections": int("$CONNS"), "handshake_connections": int("$HS_CONNS"),
                 "loadgen_threads": int("$THREADS")},
    "definitions": {
        "rps_ratio": "portcullis rps / nginx rps (>1: portcullis serves more)",
        "cpu_ratio": "nginx CPU us per request / portcullis CPU us per request (>1: portcullis cheaper)",
        "cpu_us_per_req": "server utime+stime over the whole run (warm-up included) * 1e6 / requests completed in it",
        "medians": "each median is over the REPS runs of that server and case",
    },
    "cases": out_cases,
    "target_keepalive_met": met,
    "other_load_max": round(max(loads), 3),
    "warnings": warnings,
}
with open(sys.argv[2], "w") as f:
    json.dump(result, f, indent=2)
    f.write("\n")
print("written: " + sys.argv[2])
EOF
