#!/usr/bin/env bash
# bench/gw/run.sh: the gateway benchmark. portcullis' gateway and Debian's
# nginx as a plain TLS reverse proxy, side by side on loopback, in front of
# the same trivial upstream.
#
# Requests per second, latency p50/p99 and server CPU time per request
# (utime+stime of the server's process tree from /proc/PID/stat, over the
# whole load generator run, divided by its requests) for:
#   pc-mtls     portcullis, GET /api/ok: mTLS + a certificate-bound JWT
#               (cnf.x5t#S256) + a scope check, then proxied
#   pc-dpop     portcullis, GET /dpop/ok: a DPoP-bound JWT (cnf.jkt) with a
#               fresh DPoP proof per request (made before the run, each sent
#               once), no client certificate, + a scope check, then proxied
#   nginx-mtls  nginx, GET /api/ok proxied, the client certificate presented
#               and the same Authorization header as pc-mtls (not checked)
#   nginx       nginx, GET /api/ok proxied, no client certificate, DPoP-sized
#               Authorization + DPoP headers (not checked)
# Then the memory (RSS) of each server holding IDLE_CONNS idle keep-alive
# TLS connections (bench/gw/idleconns.c), and the ES256 verify cost from
# `openssl speed`, for the DPoP CPU target.
#
# The upstream is a separate nginx serving plain HTTP on loopback
# (return 200 '{"ok":true}'), shared by both proxies. portcullis is ONE
# process with the AS (which issues the real tokens used) and the gateway.
#
# Not a test: it prints a table and writes bench/gw/out/results.json.
# Usage: bench/gw/run.sh   (after make release build/bench/loadgen)
#
# Environment knobs:
#   DURATION       measured seconds per run (10)
#   WARMUP         seconds before measuring, per run (1)
#   REPS           runs per case; medians are reported (3)
#   CONNS          keep-alive connections (64)
#   THREADS        load generator threads (2)
#   CASES          subset of: nginx-mtls pc-mtls nginx pc-dpop
#   DPOP_RATE      first guess of pc-dpop req/s, for sizing its proof files (8000)
#   IDLE_CONNS     idle connections for the RSS figure (10000; 0 skips it)
#   IDLE_THREADS   threads of the idle-connection client (4)
#   FLOOR_SECONDS  seconds per openssl speed measurement (2)
#   PC_ABUSE       1: portcullis runs with abuse resistance on (a rate-limit
#                  policy keyed by client_id on both routes, generous enough
#                  never to refuse; every detector on; /api/{id} marked
#                  identifier: true). bench/abuse/run.sh compares 0 and 1.
#   PORTCULLIS_BIN, LOADGEN, NGINX_BIN, OUT_JSON, KEEP_TMP (keep the temp dir)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PORTCULLIS_BIN=${PORTCULLIS_BIN:-$ROOT/build/release/portcullis}
LOADGEN=${LOADGEN:-$ROOT/build/bench/loadgen}
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-1}
REPS=${REPS:-3}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
CASES=${CASES:-nginx-mtls pc-mtls nginx pc-dpop}
PC_ABUSE=${PC_ABUSE:-0}
DPOP_RATE=${DPOP_RATE:-8000}
IDLE_CONNS=${IDLE_CONNS:-10000}
IDLE_THREADS=${IDLE_THREADS:-4}
FLOOR_SECONDS=${FLOOR_SECONDS:-2}
OUT_JSON=${OUT_JSON:-$HERE/out/results.json}
PY=/usr/bin/python3
[[ -x $PY ]] || PY=python3
CC=${CC:-cc}
SUBJECT_DN="CN=bench client,O=portcullis bench"

die() { echo "bench-gw: $*" >&2; exit 1; }
say() { echo "bench-gw: $*" >&2; }

for b in "$PORTCULLIS_BIN" "$LOADGEN" "$NGINX_BIN"; do
    [[ -x $b ]] || die "$b not found or not executable (make release build/bench/loadgen)"
done
for c in curl openssl "$CC"; do command -v "$c" >/dev/null || die "$c is needed"; done
"$PY" -c 'import cryptography' 2>/dev/null || die "$PY has no cryptography module (apt-get install python3-cryptography)"
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "REPS must be a positive integer"
[[ $IDLE_CONNS =~ ^[0-9]+$ ]] || die "IDLE_CONNS must be a number"
for c in $CASES; do
    case $c in nginx | nginx-mtls | pc-mtls | pc-dpop) ;; *) die "unknown case '$c'" ;; esac
done

# Every server and the idle client inherit this: 10,000 sockets and more.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
if ((IDLE_CONNS > 0 && NOFILE != 0)) && [[ $NOFILE != unlimited ]] && ((NOFILE < IDLE_CONNS + 500)); then
    die "ulimit -n is $NOFILE (hard limit); IDLE_CONNS=$IDLE_CONNS needs more"
fi

T=$(mktemp -d /tmp/portcullis-bench-gw.XXXXXX)
STARTED=() # only the processes this script started, by pid

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
    local pid kids k
    for pid in "${STARTED[@]}"; do
        kids=$(pgrep -P "$pid" 2>/dev/null || true)
        stop_pid "$pid"
        for k in $kids; do stop_pid "$k"; done # nginx workers leave with their master; make sure
    done
    wait 2>/dev/null || true
    if [[ -n ${KEEP_TMP:-} ]]; then say "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$T/logs" "$T/req"
T_START=$(date +%s)

# ---- PKI, client keys, the idle-connection client ---------------------------------
PKI=$T/pki
mkdir -p "$PKI"
{
    "$PORTCULLIS_BIN" pki init --dir "$PKI" &&
        "$PORTCULLIS_BIN" pki issue-server --dir "$PKI" &&
        "$PORTCULLIS_BIN" pki issue-client --dir "$PKI" --name bench-client --subject "$SUBJECT_DN"
} >"$T/logs/pki.txt" 2>&1 || { cat "$T/logs/pki.txt" >&2; die "making the PKI failed"; }
CERTARGS=(--cert "$PKI/bench-client.pem" --key "$PKI/bench-client.key")
GEN=("$PY" "$ROOT/bench/as/gen_requests.py")
JWT_KID=$("${GEN[@]}" keygen --key "$T/bench-dpop.pem" --jwks "$T/bench-dpop.jwks.json")
"${GEN[@]}" keygen --key "$T/dpop.pem" >/dev/null
IDLE=$T/idleconns
if ((IDLE_CONNS > 0)); then
    "$CC" -O2 -pthread "$HERE/idleconns.c" -o "$IDLE" -lssl -lcrypto 2>"$T/logs/cc.txt" ||
        { cat "$T/logs/cc.txt" >&2; die "building bench/gw/idleconns.c failed (libssl-dev?)"; }
fi

# ---- free loopback ports ------------------------------------------------------------
read -r UP_PORT NG_PORT PC_PORT < <("$PY" -c '
import socket
s = [socket.socket() for _ in range(3)]
for x in s:
    x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])
')

NGINX_USER=""
[[ $(id -u) -eq 0 ]] && NGINX_USER="user root;"
NG_TEMPS() { # dir
    printf '    client_body_temp_path %s/tmp/body;\n    proxy_temp_path %s/tmp/proxy;\n' "$1" "$1"
    printf '    fastcgi_temp_path %s/tmp/fastcgi;\n    uwsgi_temp_path %s/tmp/uwsgi;\n    scgi_temp_path %s/tmp/scgi;\n' "$1" "$1" "$1"
}

# ---- the upstream: nginx, plain HTTP on loopback ---------------------------------------
# One worker (it is not under test; both proxies share it), no access log,
# keep-alive connections that are never closed during the run.
UP=$T/upstream
mkdir -p "$UP/tmp"
cat >"$UP/nginx.conf" <<EOF
$NGINX_USER
worker_processes 1;
worker_rlimit_nofile 4096;
pid $UP/nginx.pid;
error_log $UP/error.log warn;
events { worker_connections 2048; }
http {
    access_log off;
$(NG_TEMPS "$UP")
    keepalive_requests 100000000;
    keepalive_timeout 600s;
    server {
        listen 127.0.0.1:$UP_PORT;
        location / {
            default_type application/json;
            return 200 '{"ok":true}';
        }
    }
}
EOF
"$NGINX_BIN" -e "$UP/error.log" -p "$UP/" -c "$UP/nginx.conf" -g 'daemon off;' >"$T/logs/upstream.out" 2>&1 &
UP_PID=$!
STARTED+=("$UP_PID")

# ---- nginx, the peer: a plain TLS reverse proxy -------------------------------------------
# The TLS policy mirrors portcullis' (src/net/tls.h), as in bench/run.sh: the
# same TLS 1.3 suites, TLS 1.2 ciphers and groups, server preference,
# optional client certificates verified against the same CA. No token checks.
NG=$T/nginx
mkdir -p "$NG/tmp"
cat >"$NG/nginx.conf" <<EOF
$NGINX_USER
worker_processes 2;
worker_rlimit_nofile $NOFILE;
pid $NG/nginx.pid;
error_log $NG/error.log warn;
events { worker_connections 16384; }
http {
    access_log $NG/access.log combined buffer=64k;
$(NG_TEMPS "$NG")
    keepalive_requests 10000;
    keepalive_timeout 120s;
    upstream up {
        server 127.0.0.1:$UP_PORT;
        keepalive 64;
        keepalive_requests 100000000;
        keepalive_timeout 600s;
    }
    server {
        listen 127.0.0.1:$NG_PORT ssl;
        ssl_certificate $PKI/server.pem;
        ssl_certificate_key $PKI/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_prefer_server_ciphers on;
        ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384;
        ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256;
        ssl_ecdh_curve X25519:prime256v1:secp384r1;
        ssl_client_certificate $PKI/ca.pem;
        ssl_verify_client optional;
        location = /healthz {
            default_type text/plain;
            return 200 'ok';
        }
        location = /whoami {
            default_type text/plain;
            return 200 '\$ssl_client_verify \$ssl_client_s_dn';
        }
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For \$remote_addr;
            proxy_set_header X-Forwarded-Proto https;
        }
    }
}
EOF
"$NGINX_BIN" -e "$NG/error.log" -p "$NG/" -c "$NG/nginx.conf" -g 'daemon off;' >"$T/logs/nginx.out" 2>&1 &
NG_PID=$!
STARTED+=("$NG_PID")

# ---- portcullis: the AS and the gateway in one process -----------------------------------
PC=$T/portcullis
ISS=https://localhost:$PC_PORT
mkdir -p "$PC/state"
cat >"$PC/portcullis.yaml" <<EOF
server:
  listen: 127.0.0.1:$PC_PORT
  workers: 2
  state_dir: $PC/state
  tls:
    cert: $PKI/server.pem
    key: $PKI/server.key
    client_ca: $PKI/ca.pem
    client_cert: optional
  limits:
    max_requests_per_connection: 10000
    idle_timeout: 120s
    max_connections: 20000
    max_connections_per_ip: 20000
# access lines follow log.access, not the level (docs/configuration.md)
log: {level: warn, access: true, file: $PC/portcullis.log}
as:
  issuer: $ISS
  signing_alg: ES256
  kek_file: $PC/kek
  scopes: [accounts]
  resources: [https://api.example]
  access_token_lifetime: 1h
  auth_failures_per_minute: 1000000
  clients:
    - client_id: bench-mtls
      token_endpoint_auth_method: tls_client_auth
      tls_client_auth_subject_dn: "$SUBJECT_DN"
      scope: accounts
    - client_id: bench-dpop
      token_endpoint_auth_method: private_key_jwt
      jwks_file: $T/bench-dpop.jwks.json
      dpop_bound_access_tokens: true
      scope: accounts
upstreams:
  up:
    url: http://127.0.0.1:$UP_PORT
    max_idle: 64
gateway:
  external_url: $ISS
routes:
  - method: GET
    path: /api/{id}
    upstream: up
    auth: {scopes: [accounts], binding: mtls}
  - method: GET
    path: /dpop/ok
    upstream: up
    auth: {scopes: [accounts], binding: dpop}
EOF
if [[ $PC_ABUSE == 1 ]]; then
    # every detector on (actions: log, so nothing is refused), one policy
    "$PY" - "$PC/portcullis.yaml" <<'PYEOF'
import sys
p = sys.argv[1]
s = open(p).read()
for b in ("mtls", "dpop"):
    extra = "    identifier: true\n" if b == "mtls" else ""
    s = s.replace("    auth: {scopes: [accounts], binding: %s}" % b,
                  extra + "    rate_limits: [bench]\n    auth: {scopes: [accounts], binding: %s}" % b)
s += """rate_limits:
  bench: {quota: 100000000, window: 1s, key: [client_id]}
detect:
  enumeration: {actions: [log]}
  probing: {actions: [log]}
  volume: {actions: [log]}
  credentials: {actions: [log]}
"""
open(p, "w").write(s)
PYEOF
fi
"$PORTCULLIS_BIN" keys init-kek -c "$PC/portcullis.yaml" >"$T/logs/portcullis-kek.txt" 2>&1 ||
    { cat "$T/logs/portcullis-kek.txt" >&2; die "portcullis keys init-kek failed"; }
"$PORTCULLIS_BIN" check -c "$PC/portcullis.yaml" >"$T/logs/portcullis-check.txt" 2>&1 ||
    { cat "$T/logs/portcullis-check.txt" >&2; die "portcullis check failed"; }
"$PORTCULLIS_BIN" serve -c "$PC/portcullis.yaml" >"$T/logs/portcullis.out" 2>&1 &
PC_PID=$!
STARTED+=("$PC_PID")

wait_ready() { # name pid url log
    local i code
    for i in $(seq 150); do
        code=$(curl -sk --max-time 1 -o /dev/null -w '%{http_code}' "$3" 2>/dev/null || true)
        [[ $code == 200 ]] && return 0
        if ! kill -0 "$2" 2>/dev/null; then
            tail -20 "$4" >&2
            die "$1 exited during start-up"
        fi
        sleep 0.1
    done
    tail -20 "$4" >&2
    die "$1 did not answer $3 within 15 s"
}
wait_ready upstream "$UP_PID" "http://127.0.0.1:$UP_PORT/" "$UP/error.log"
wait_ready nginx "$NG_PID" "https://127.0.0.1:$NG_PORT/healthz" "$NG/error.log"
wait_ready portcullis "$PC_PID" "https://127.0.0.1:$PC_PORT/healthz" "$T/logs/portcullis.out"

# ---- tokens, and one request of each case with curl -----------------------------------------
CURL=(curl -s --max-time 10 --resolve "localhost:$PC_PORT:127.0.0.1" --resolve "localhost:$NG_PORT:127.0.0.1"
    --cacert "$PKI/ca.pem")
json_field() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

# path 1: tls_client_auth over a connection with the client certificate
code=$("${CURL[@]}" "${CERTARGS[@]}" -o "$T/logs/token-mtls.json" -w '%{http_code}' \
    -d grant_type=client_credentials -d client_id=bench-mtls -d scope=accounts "$ISS/token" || true)
[[ $code == 200 ]] || die "token request (tls_client_auth) answered $code: $(cat "$T/logs/token-mtls.json" 2>/dev/null)"
MTLS_TOKEN=$(json_field "$T/logs/token-mtls.json" access_token)
[[ $(json_field "$T/logs/token-mtls.json" token_type) == Bearer ]] || die "the mTLS token is not a Bearer token"
printf 'Authorization: Bearer %s\n' "$MTLS_TOKEN" >"$T/req/mtls.hdr"

# path 2: private_key_jwt + a DPoP proof: a DPoP-bound token
"${GEN[@]}" gen --count 1 --client-id bench-dpop --scope accounts --key "$T/bench-dpop.pem" --kid "$JWT_KID" \
    --aud "$ISS" --dpop-key "$T/dpop.pem" --htu "$ISS/token" \
    --bodies "$T/req/token-dpop.body" --headers "$T/req/token-dpop.hdr" 2>>"$T/logs/gen.txt"
code=$("${CURL[@]}" -o "$T/logs/token-dpop.json" -w '%{http_code}' \
    -H "DPoP: $(sed 's/.*\\nDPoP: //' "$T/req/token-dpop.hdr")" \
    --data-binary "$(head -1 "$T/req/token-dpop.body")" "$ISS/token" || true)
[[ $code == 200 ]] || die "token request (private_key_jwt + DPoP) answered $code: $(cat "$T/logs/token-dpop.json" 2>/dev/null)"
json_field "$T/logs/token-dpop.json" access_token >"$T/dpop-token.txt"
[[ $(json_field "$T/logs/token-dpop.json" token_type) == DPoP ]] || die "the DPoP token is not a DPoP token"

gen_proofs() { # count out
    "$PY" "$HERE/gen_proofs.py" --dpop-key "$T/dpop.pem" --token-file "$T/dpop-token.txt" \
        --htu "$ISS/dpop/ok" --count "$1" --out "$2" 2>>"$T/logs/gen.txt"
}
# nginx's no-certificate case gets requests of the same size as pc-dpop's
# (it does not check them, so 1000 lines, reused)
gen_proofs 1000 "$T/req/nginx-dpop.hdr"

# one request per case with curl: each must be a 200 from the upstream
check_200() { # what, curl args...
    local what=$1 body code
    shift
    code=$("${CURL[@]}" -o "$T/logs/check.txt" -w '%{http_code}' "$@" || true)
    body=$(cat "$T/logs/check.txt" 2>/dev/null || true)
    [[ $code == 200 && $body == '{"ok":true}' ]] || die "$what: HTTP $code $body"
}
hdr_args() { # a headers-file line -> curl -H args (into HARGS)
    local line=$1 h
    HARGS=()
    while IFS= read -r h; do [[ -n $h ]] && HARGS+=(-H "$h"); done < <(sed 's/\\n/\n/g' <<<"$line")
}
hdr_args "$(head -1 "$T/req/mtls.hdr")"
check_200 "portcullis /api/ok (mTLS + bound token)" "${CERTARGS[@]}" "${HARGS[@]}" "$ISS/api/ok"
check_200 "nginx /api/ok with the client certificate" "${CERTARGS[@]}" "${HARGS[@]}" "https://localhost:$NG_PORT/api/ok"
gen_proofs 1 "$T/req/check-dpop.hdr"
hdr_args "$(head -1 "$T/req/check-dpop.hdr")"
check_200 "portcullis /dpop/ok (DPoP)" "${HARGS[@]}" "$ISS/dpop/ok"
hdr_args "$(head -1 "$T/req/nginx-dpop.hdr")"
check_200 "nginx /api/ok without a certificate" "${HARGS[@]}" "https://localhost:$NG_PORT/api/ok"
# and the refusals that show the checks are on: no certificate, a replayed proof
code=$("${CURL[@]}" -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $MTLS_TOKEN" "$ISS/api/ok" || true)
[[ $code == 401 ]] || die "portcullis answered $code to the mTLS-bound token without the certificate (expected 401)"
hdr_args "$(head -1 "$T/req/check-dpop.hdr")"
code=$("${CURL[@]}" -o /dev/null -w '%{http_code}' "${HARGS[@]}" "$ISS/dpop/ok" || true)
[[ $code == 401 ]] || die "portcullis answered $code to a replayed DPoP proof (expected 401)"
who=$("${CURL[@]}" "${CERTARGS[@]}" "https://localhost:$NG_PORT/whoami" || true)
[[ $who == SUCCESS* ]] || die "nginx did not verify the client certificate: '$who'"
say "upstream :$UP_PORT (pid $UP_PID), nginx :$NG_PORT (pid $NG_PID), portcullis :$PC_PORT (pid $PC_PID); tokens issued, each path answers 200"

# ---- the crypto floor: openssl speed on this machine ---------------------------------------------
SPEED_FILES=()
. "$ROOT/bench/lib.sh"
say "openssl speed -seconds $FLOOR_SECONDS ecdsap256 (before)"
measure_floor before

RUNS=$T/runs.jsonl
: >"$RUNS"
RATE=$DPOP_RATE

run_one() { # case rep
    local kase=$1 rep=$2 try tries=1 json rc c0 c1 u0 u1 b0 t0 b1 t1 count=0 log pid port path
    local -a lgargs=(--headers-file)
    case $kase in
    nginx-mtls) pid=$NG_PID port=$NG_PORT path=/api/ok lgargs+=("$T/req/mtls.hdr" "${CERTARGS[@]}") ;;
    nginx) pid=$NG_PID port=$NG_PORT path=/api/ok lgargs+=("$T/req/nginx-dpop.hdr") ;;
    pc-mtls) pid=$PC_PID port=$PC_PORT path=/api/ok lgargs+=("$T/req/mtls.hdr" "${CERTARGS[@]}") ;;
    pc-dpop) pid=$PC_PID port=$PC_PORT path=/dpop/ok lgargs+=("$T/req/run.hdr" --no-wrap) tries=3 ;;
    esac
    for try in $(seq "$tries"); do
        if [[ $kase == pc-dpop ]]; then
            # single-use proofs, made right before the run (their iat is now)
            count=$("$PY" -c "import math; print(max(1000, math.ceil($RATE * ($WARMUP + $DURATION) * 1.5)))")
            gen_proofs "$count" "$T/req/run.hdr"
        fi
        kill -0 "$pid" 2>/dev/null || die "$kase: the server is no longer running"
        kill -0 "$UP_PID" 2>/dev/null || die "the upstream is no longer running"
        log=$T/logs/$kase-$rep-$try.txt
        rc=0
        c0=$(cpu_ticks "$pid")
        u0=$(cpu_ticks "$UP_PID")
        read -r b0 t0 < <(sys_ticks)
        json=$("$LOADGEN" --url "https://localhost:$port$path" --connect-to 127.0.0.1 --cacert "$PKI/ca.pem" \
            "${lgargs[@]}" --connections "$CONNS" --threads "$THREADS" --duration "$DURATION" \
            --warmup "$WARMUP" --json 2>"$log") || rc=$?
        read -r b1 t1 < <(sys_ticks)
        u1=$(cpu_ticks "$UP_PID")
        c1=$(cpu_ticks "$pid")
        [[ $kase == pc-dpop ]] && rm -f "$T/req/run.hdr"
        if [[ $rc -ne 0 || $json != \{* ]]; then
            cat "$log" >&2
            die "the load generator failed ($kase)"
        fi
        printf '{"case":"%s","rep":%d,"try":%d,"lines_made":%d,"cpu_ticks":%d,"upstream_cpu_ticks":%d,"clk_tck":%d,"sys_busy_ticks":%d,"sys_total_ticks":%d,"loadgen":%s}\n' \
            "$kase" "$rep" "$try" "$count" "$((c1 - c0))" "$((u1 - u0))" "$CLK_TCK" "$((b1 - b0))" "$((t1 - t0))" "$json" >>"$RUNS"
        "$PY" "$HERE/report.py" run-line "$(tail -1 "$RUNS")"
        if [[ $kase == pc-dpop ]]; then
            # the highest rate seen sizes the next run (other load comes and goes)
            RATE=$("$PY" -c 'import json,sys; print(max(int(sys.argv[2]), int(json.loads(sys.argv[1])["rps"])))' "$json" "$RATE")
            if [[ $json == *'"lines_exhausted":true'* ]]; then
                say "  pc-dpop ran out of proofs; again with more"
                continue
            fi
        fi
        return 0
    done
    [[ $kase == pc-dpop ]] && say "  pc-dpop ran out of proofs three times; keeping the last (shortened) run"
    return 0
}

ncases=$(wc -w <<<"$CASES")
say "$REPS reps x $ncases cases, ${DURATION}s + ${WARMUP}s warm-up each, $CONNS connections"
for rep in $(seq "$REPS"); do
    # alternate the order, so that no case always meets a warmer machine
    order=$CASES
    ((rep % 2)) || order=$(tr ' ' '\n' <<<"$CASES" | tac | tr '\n' ' ')
    for kase in $order; do run_one "$kase" "$rep"; done
    measure_floor "after-rep-$rep"
done

# ---- memory at IDLE_CONNS idle keep-alive TLS connections ---------------------------------------------
RSS=$T/rss.jsonl
: >"$RSS"
rss_kib() { # pids... -> summed VmRSS in KiB
    local total=0 p v
    for p in "$@"; do
        v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}
tcp_conns() { # established TCP connections to a local port
    ss -Htn state established "( sport = :$1 )" 2>/dev/null | wc -l
}
measure_idle() { # server pid port
    local server=$1 pid=$2 port=$3 workers ipid ready=$T/idle-$1.ready i rss0 rss1 m0 m1 conns status
    local -a hdr=(--header "Authorization: Bearer $MTLS_TOKEN")
    if [[ $server == nginx ]]; then workers=$(pgrep -P "$pid" | tr '\n' ' '); else workers=$pid; fi
    # shellcheck disable=SC2086
    rss0=$(rss_kib $workers)
    m0=$(rss_kib "$pid")
    rm -f "$ready"
    "$IDLE" --connect "127.0.0.1:$port" --host "localhost:$port" --path /api/ok "${hdr[@]}" \
        "${CERTARGS[@]}" --count "$IDLE_CONNS" --threads "$IDLE_THREADS" --ready-file "$ready" --hold 150 \
        >"$T/logs/idle-$server.txt" 2>&1 &
    ipid=$!
    for i in $(seq 1200); do
        [[ -f $ready ]] && break
        kill -0 "$ipid" 2>/dev/null || break
        sleep 0.1
    done
    [[ -f $ready ]] || { cat "$T/logs/idle-$server.txt" >&2; kill "$ipid" 2>/dev/null; die "the idle-connection client did not finish against $server"; }
    sleep 2 # let the server settle (TLS buffers freed after the handshake, log flushes)
    # shellcheck disable=SC2086
    rss1=$(rss_kib $workers)
    m1=$(rss_kib "$pid")
    conns=$(tcp_conns "$port")
    status=$(cat "$ready")
    kill -TERM "$ipid" 2>/dev/null || true
    wait "$ipid" 2>/dev/null || true
    printf '{"server":"%s","idle_target":%d,"client":"%s","established":%d,"rss_before_kib":%d,"rss_kib":%d,"master_rss_before_kib":%d,"master_rss_kib":%d}\n' \
        "$server" "$IDLE_CONNS" "$status" "$conns" "$rss0" "$rss1" "$m0" "$m1" >>"$RSS"
    say "  $server: $status; $conns established; RSS $((rss0 / 1024)) -> $((rss1 / 1024)) MiB"
    for i in $(seq 100); do # wait for the server to let them go before the next one
        (($(tcp_conns "$port") < 100)) && break
        sleep 0.1
    done
}
if ((IDLE_CONNS > 0)); then
    say "RSS at $IDLE_CONNS idle keep-alive TLS connections (handshake with the client certificate + one GET /api/ok with the mTLS token each)"
    measure_idle portcullis "$PC_PID" "$PC_PORT"
    measure_idle nginx "$NG_PID" "$NG_PORT"
fi

# ---- report ------------------------------------------------------------------------------------------------
sleep 1.2 # portcullis flushes its access log every second
ACCESS_PC=$(wc -l <"$PC/portcullis.log" 2>/dev/null || echo 0)
ACCESS_NG=$(wc -l <"$NG/access.log" 2>/dev/null || echo 0)
mkdir -p "$(dirname "$OUT_JSON")"
"$PY" "$HERE/report.py" report --runs "$RUNS" --rss "$RSS" --speed "$(IFS=,; echo "${SPEED_FILES[*]}")" \
    --out "$OUT_JSON" --cases "$CASES" --duration "$DURATION" --warmup "$WARMUP" --reps "$REPS" \
    --conns "$CONNS" --threads "$THREADS" --idle-conns "$IDLE_CONNS" --floor-seconds "$FLOOR_SECONDS" \
    --access-lines "portcullis=$ACCESS_PC,nginx=$ACCESS_NG" --elapsed "$(($(date +%s) - T_START))" \
    --portcullis-version "$("$PORTCULLIS_BIN" version 2>/dev/null | head -1 || true)" \
    --nginx-version "$("$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //')" \
    --openssl-version "$(openssl version)"
