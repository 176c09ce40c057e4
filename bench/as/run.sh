#!/usr/bin/env bash
# bench/as/run.sh: the token endpoint of portcullis' authorization server
# against the npm oidc-provider, on loopback, over keep-alive TLS.
#
# client_credentials tokens per second, latency p50/p99 and server CPU time
# per token (utime+stime of the server's process tree from /proc/PID/stat,
# divided by the tokens of the run) for three cases:
#   pkjwt  (a) private_key_jwt, client certificate presented: token bound
#              to it (cnf.x5t#S256)
#   mtls   (b) tls_client_auth: token bound to the certificate
#   dpop   (c) private_key_jwt + DPoP proof, no client certificate: token
#              bound to the DPoP key (cnf.jkt)
# Each case runs against portcullis (2 workers), oidc-provider in cluster
# mode (one worker process per core) and oidc-provider as one process.
# Then the crypto floor: the CPU time of the signatures and verifications a
# token needs, from `openssl speed ecdsap256` on this machine, and how close
# portcullis comes to it. Beside it, in each rep, the transport: what one
# keep-alive TLS request of the token request's shape (the same form body and
# client certificate, an answer of a token response's size) costs
# portcullis' server with no work at all (a static route), so that the
# reader sees how much of the distance to the floor is the request itself.
#
# Client assertions and DPoP proofs are single use, so the requests of every
# run are generated right before it (bench/as/gen_requests.py), one line per
# request, and the load generator sends each line once (--bodies-file,
# --headers-file --no-wrap). Lines made: expected rate x (warm-up + duration)
# x 1.5; the expected rate is the highest seen so far for that server and case,
# or a first guess if higher. A run that runs out of lines stops early and is
# made again with more (at most three tries).
#
# Not a test: it prints a table and writes bench/as/out/results.json.
# Usage: bench/as/run.sh   (after make release build/bench/loadgen)
#
# Environment knobs:
#   DURATION      measured seconds per run (10)
#   WARMUP        seconds before measuring, per run (1)
#   REPS          runs per server and case; medians are reported (3)
#   CONNS         keep-alive connections (32)
#   THREADS       load generator threads (2)
#   CASES         subset of: pkjwt mtls dpop
#   SERVERS       subset of: portcullis oidc-cluster oidc-single
#   OP_WORKERS    oidc-provider cluster workers (nproc)
#   PC_WORKERS    portcullis workers (2)
#   PC_RATE, OP_RATE  first guesses of tokens/s, for sizing the first runs
#                 (8000, 2500)
#   DPOP_CERT     1: present the client certificate in the dpop case too (0)
#   FLOOR_SECONDS seconds per openssl speed measurement (2)
#   TRANSPORT     0: skip the transport measurement (1)
#   PORTCULLIS_BIN, LOADGEN, NODE, OUT_JSON, KEEP_TMP (keep the temp dir)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PORTCULLIS_BIN=${PORTCULLIS_BIN:-$ROOT/build/release/portcullis}
LOADGEN=${LOADGEN:-$ROOT/build/bench/loadgen}
NODE=${NODE:-node}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-1}
REPS=${REPS:-3}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
CASES=${CASES:-pkjwt mtls dpop}
SERVERS=${SERVERS:-portcullis oidc-cluster oidc-single}
NCPU=$(nproc)
OP_WORKERS=${OP_WORKERS:-$NCPU}
PC_WORKERS=${PC_WORKERS:-2}
PC_RATE=${PC_RATE:-8000}
OP_RATE=${OP_RATE:-2500}
DPOP_CERT=${DPOP_CERT:-0}
FLOOR_SECONDS=${FLOOR_SECONDS:-2}
TRANSPORT=${TRANSPORT:-1}
OUT_JSON=${OUT_JSON:-$HERE/out/results.json}
PY=/usr/bin/python3
[[ -x $PY ]] || PY=python3
GEN=("$PY" "$HERE/gen_requests.py")
OPDIR=$HERE/oidc-provider
SUBJECT_DN="CN=bench client,O=portcullis bench"

die() { echo "bench-as: $*" >&2; exit 1; }
say() { echo "bench-as: $*" >&2; }

[[ -x $LOADGEN ]] || die "$LOADGEN not found (make build/bench/loadgen)"
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "REPS must be a positive integer"
for c in $CASES; do
    case $c in pkjwt | mtls | dpop) ;; *) die "unknown case '$c'" ;; esac
done
HAVE_PC=0 HAVE_OP=0
for s in $SERVERS; do
    case $s in
    portcullis) HAVE_PC=1 ;;
    oidc-cluster | oidc-single) HAVE_OP=1 ;;
    *) die "unknown server '$s'" ;;
    esac
done
# The PKI comes from portcullis' own 'pki' command, so the binary is needed
# even for an oidc-provider-only run.
[[ -x $PORTCULLIS_BIN ]] || die "$PORTCULLIS_BIN not found (make release)"
command -v curl >/dev/null || die "curl is needed"
command -v openssl >/dev/null || die "openssl is needed"
"$PY" -c 'import cryptography' 2>/dev/null || die "$PY has no cryptography module (apt-get install python3-cryptography)"
if ((HAVE_OP)); then
    command -v "$NODE" >/dev/null || die "node is needed for oidc-provider"
    if [[ ! -f $OPDIR/node_modules/oidc-provider/package.json ]]; then
        say "installing oidc-provider into $OPDIR/node_modules (npm ci)"
        (cd "$OPDIR" && npm ci --no-audit --no-fund --loglevel=error) >&2 || die "npm ci failed in $OPDIR"
    fi
fi

T=$(mktemp -d /tmp/portcullis-bench-as.XXXXXX)
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
        for k in $kids; do stop_pid "$k"; done # cluster workers leave with their primary; make sure
    done
    wait 2>/dev/null || true
    if [[ -n ${KEEP_TMP:-} ]]; then say "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$T/logs" "$T/req"

# ---- PKI, client keys -------------------------------------------------------------
PKI=$T/pki
mkdir -p "$PKI"
{
    "$PORTCULLIS_BIN" pki init --dir "$PKI" &&
        "$PORTCULLIS_BIN" pki issue-server --dir "$PKI" &&
        "$PORTCULLIS_BIN" pki issue-client --dir "$PKI" --name bench-client --subject "$SUBJECT_DN"
} >"$T/logs/pki.txt" 2>&1 || { cat "$T/logs/pki.txt" >&2; die "making the PKI failed"; }
CERTARGS=(--cert "$PKI/bench-client.pem" --key "$PKI/bench-client.key")
JWT_KID=$("${GEN[@]}" keygen --key "$T/bench-jwt.pem" --jwks "$T/bench-jwt.jwks.json")
"${GEN[@]}" keygen --key "$T/dpop.pem" >/dev/null

# ---- free loopback ports ------------------------------------------------------------
read -r PC_PORT OPC_PORT OPS_PORT < <("$PY" -c '
import socket
s = [socket.socket() for _ in range(3)]
for x in s:
    x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])
')
declare -A PORT=([portcullis]=$PC_PORT [oidc-cluster]=$OPC_PORT [oidc-single]=$OPS_PORT)
declare -A PID=()

wait_ready() { # name pid port log
    local i code
    for i in $(seq 150); do
        code=$(curl -sk --max-time 1 -o /dev/null -w '%{http_code}' \
            "https://127.0.0.1:$3/.well-known/oauth-authorization-server" 2>/dev/null || true)
        [[ $code =~ ^[1-5][0-9][0-9]$ ]] && return 0
        if ! kill -0 "$2" 2>/dev/null; then
            tail -20 "$4" >&2
            die "$1 exited during start-up"
        fi
        sleep 0.1
    done
    tail -20 "$4" >&2
    die "$1 did not answer on port $3 within 15 s"
}

# ---- portcullis -------------------------------------------------------------------------
# 760 bytes: about what an ES256 token response with cnf.x5t#S256 weighs.
TRANSPORT_BODY=$("$PY" -c 'import json; print(json.dumps({"access_token": "x" * 700, "token_type": "Bearer", "expires_in": 300}))')
if ((HAVE_PC)); then
    PC=$T/portcullis
    mkdir -p "$PC/state"
    cat >"$PC/portcullis.yaml" <<EOF
server:
  listen: 127.0.0.1:$PC_PORT
  workers: $PC_WORKERS
  state_dir: $PC/state
  tls:
    cert: $PKI/server.pem
    key: $PKI/server.key
    client_ca: $PKI/ca.pem
    client_cert: optional
log: {level: warn, access: true, file: $PC/portcullis.log}
routes:
  # the transport measurement: no work, an answer of a token response's size
  - {method: POST, path: /bench/transport, static: {body: '$TRANSPORT_BODY'}}
as:
  issuer: https://localhost:$PC_PORT
  signing_alg: ES256
  kek_file: $PC/kek
  scopes: [accounts, payments]
  resources: [https://api.example]
  auth_failures_per_minute: 1000000
  clients:
    - client_id: bench-mtls
      token_endpoint_auth_method: tls_client_auth
      tls_client_auth_subject_dn: "$SUBJECT_DN"
      scope: accounts payments
    - client_id: bench-jwt
      token_endpoint_auth_method: private_key_jwt
      jwks_file: $T/bench-jwt.jwks.json
      scope: accounts payments
EOF
    "$PORTCULLIS_BIN" keys init-kek -c "$PC/portcullis.yaml" >"$T/logs/portcullis-kek.txt" 2>&1 ||
        { cat "$T/logs/portcullis-kek.txt" >&2; die "portcullis keys init-kek failed (is the AS built? try SERVERS='oidc-cluster oidc-single')"; }
    "$PORTCULLIS_BIN" check -c "$PC/portcullis.yaml" >"$T/logs/portcullis-check.txt" 2>&1 ||
        { cat "$T/logs/portcullis-check.txt" >&2; die "portcullis check failed (try SERVERS='oidc-cluster oidc-single')"; }
    "$PORTCULLIS_BIN" serve -c "$PC/portcullis.yaml" >"$T/logs/portcullis.out" 2>&1 &
    PID[portcullis]=$!
    STARTED+=("$!")
    wait_ready portcullis "${PID[portcullis]}" "$PC_PORT" "$T/logs/portcullis.out"
fi

# ---- oidc-provider ------------------------------------------------------------------------
start_op() { # server workers
    local name=$1 workers=$2 port=${PORT[$1]}
    cat >"$T/$name.json" <<EOF
{"port": $port, "host": "127.0.0.1", "issuer": "https://localhost:$port",
 "cert": "$PKI/server.pem", "key": "$PKI/server.key", "ca": "$PKI/ca.pem",
 "client_jwks": "$T/bench-jwt.jwks.json", "subject_dn": "$SUBJECT_DN", "workers": $workers}
EOF
    "$NODE" "$OPDIR/server.mjs" "$T/$name.json" >"$T/logs/$name.out" 2>&1 &
    PID[$name]=$!
    STARTED+=("$!")
}
for s in $SERVERS; do
    case $s in
    oidc-cluster) start_op oidc-cluster "$OP_WORKERS" ;;
    oidc-single) start_op oidc-single 0 ;;
    esac
done
for s in $SERVERS; do
    [[ $s == oidc-* ]] && wait_ready "$s" "${PID[$s]}" "${PORT[$s]}" "$T/logs/$s.out"
done

# ---- requests -------------------------------------------------------------------------------
client_for() { # server case -> client_id
    case $2 in
    mtls) echo bench-mtls ;;
    dpop) [[ $1 == portcullis ]] && echo bench-jwt || echo bench-jwt-dpop ;;
    *) echo bench-jwt ;;
    esac
}

# Writes $T/req/NAME.body and $T/req/NAME.hdr for COUNT requests; sets LGARGS.
make_requests() { # server case count name
    local server=$1 kase=$2 count=$3 name=$4 iss="https://localhost:${PORT[$1]}"
    local -a gen=(gen --count "$count" --client-id "$(client_for "$server" "$kase")" --scope accounts
        --bodies "$T/req/$name.body" --headers "$T/req/$name.hdr")
    LGARGS=(--headers-file "$T/req/$name.hdr")
    case $kase in
    mtls | transport)
        # nothing single use: one body for every request
        printf 'grant_type=client_credentials&scope=accounts&client_id=bench-mtls' >"$T/req/$name.body"
        printf 'Content-Type: application/x-www-form-urlencoded\n' >"$T/req/$name.hdr"
        LGARGS+=(--body-file "$T/req/$name.body" "${CERTARGS[@]}")
        return
        ;;
    pkjwt)
        gen+=(--key "$T/bench-jwt.pem" --kid "$JWT_KID" --aud "$iss")
        LGARGS+=(--bodies-file "$T/req/$name.body" "${CERTARGS[@]}")
        ;;
    dpop)
        gen+=(--key "$T/bench-jwt.pem" --kid "$JWT_KID" --aud "$iss" --dpop-key "$T/dpop.pem" --htu "$iss/token")
        LGARGS+=(--bodies-file "$T/req/$name.body" --no-wrap)
        [[ $DPOP_CERT == 1 ]] && LGARGS+=("${CERTARGS[@]}")
        ;;
    esac
    "${GEN[@]}" "${gen[@]}" 2>>"$T/logs/gen.txt"
}

# One request with curl; prints the response body, fails unless 200.
try_token() { # server case
    local server=$1 kase=$2 port=${PORT[$1]} body code
    local -a h=(-H "Content-Type: application/x-www-form-urlencoded") c=()
    make_requests "$server" "$kase" 1 "try-$server-$kase"
    body=$(head -1 "$T/req/try-$server-$kase.body")
    if [[ $kase == dpop ]]; then
        h+=(-H "DPoP: $(head -1 "$T/req/try-$server-$kase.hdr" | sed 's/.*\\nDPoP: //')")
        [[ $DPOP_CERT == 1 ]] && c=("${CERTARGS[@]}")
    else
        c=("${CERTARGS[@]}")
    fi
    code=$(curl -s -o "$T/logs/try-$server-$kase.json" -w '%{http_code}' --resolve "localhost:$port:127.0.0.1" \
        --cacert "$PKI/ca.pem" "${c[@]}" "${h[@]}" --data-binary "$body" "https://localhost:$port/token" || true)
    if [[ $code != 200 ]]; then
        echo "bench-as: $server, case $kase: HTTP $code: $(cat "$T/logs/try-$server-$kase.json" 2>/dev/null)" >&2
        return 1
    fi
}

say "servers: $(for s in $SERVERS; do printf '%s :%s (pid %s)  ' "$s" "${PORT[$s]}" "${PID[$s]}"; done)"
echo
echo "one token from each server and case (decoded header and payload):"
for s in $SERVERS; do
    for c in $CASES; do
        try_token "$s" "$c" || die "$s does not issue a token for case $c; not measuring"
        "$PY" "$HERE/report.py" show-token "$s" "$c" "$T/logs/try-$s-$c.json"
    done
done
echo

# ---- the crypto floor: openssl speed on this machine -----------------------------------------
# Measured before the runs and again after each rep, so that it sees the same
# machine as the servers did (other load slows signatures too); the report
# uses the medians and shows the spread.
SPEED_FILES=()
. "$ROOT/bench/lib.sh"
say "openssl speed -seconds $FLOOR_SECONDS ecdsap256 (before)"
measure_floor before

RUNS=$T/runs.jsonl
: >"$RUNS"
declare -A RATE=()
for s in $SERVERS; do
    for c in $CASES; do
        case $s in portcullis) RATE[$s,$c]=$PC_RATE ;; oidc-single) RATE[$s,$c]=$((OP_RATE / 2)) ;; *) RATE[$s,$c]=$OP_RATE ;; esac
    done
done
RATE[portcullis,transport]=$PC_RATE

run_one() { # server case rep
    local server=$1 kase=$2 rep=$3 try json rc c0 c1 b0 t0 b1 t1 count log pid=${PID[$1]}
    for try in 1 2 3; do
        count=$("$PY" -c "import math; print(max(1000, math.ceil(${RATE[$server,$kase]} * ($WARMUP + $DURATION) * 1.5)))")
        make_requests "$server" "$kase" "$count" run
        kill -0 "$pid" 2>/dev/null || die "$server is no longer running"
        log=$T/logs/$kase-$server-$rep-$try.txt
        rc=0
        c0=$(cpu_ticks "$pid")
        read -r b0 t0 < <(sys_ticks)
        local path=/token
        [[ $kase == transport ]] && path=/bench/transport
        json=$("$LOADGEN" --url "https://localhost:${PORT[$server]}$path" --connect-to 127.0.0.1 \
            --cacert "$PKI/ca.pem" --method POST "${LGARGS[@]}" --connections "$CONNS" \
            --threads "$THREADS" --duration "$DURATION" --warmup "$WARMUP" --json 2>"$log") || rc=$?
        read -r b1 t1 < <(sys_ticks)
        c1=$(cpu_ticks "$pid")
        rm -f "$T/req/run.body" "$T/req/run.hdr"
        if [[ $rc -ne 0 || $json != \{* ]]; then
            cat "$log" >&2
            die "the load generator failed against $server ($kase)"
        fi
        printf '{"case":"%s","server":"%s","rep":%d,"try":%d,"lines_made":%d,"cpu_ticks":%d,"clk_tck":%d,"sys_busy_ticks":%d,"sys_total_ticks":%d,"loadgen":%s}\n' \
            "$kase" "$server" "$rep" "$try" "$count" "$((c1 - c0))" "$CLK_TCK" "$((b1 - b0))" "$((t1 - t0))" "$json" >>"$RUNS"
        "$PY" "$HERE/report.py" run-line "$(tail -1 "$RUNS")"
        # the highest rate seen so far (or the first guess) sizes the next run
        # of this server and case: other load on the machine comes and goes
        RATE[$server,$kase]=$("$PY" -c 'import json,sys; print(max(int(sys.argv[2]), int(json.loads(sys.argv[1])["rps"])))' \
            "$json" "${RATE[$server,$kase]}")
        if [[ $json == *'"lines_exhausted":true'* ]]; then
            say "  $server/$kase ran out of lines; again with more"
            continue
        fi
        return 0
    done
    say "  $server/$kase ran out of lines three times; keeping the last (shortened) run"
}

ncases=$(wc -w <<<"$CASES")
nservers=$(wc -w <<<"$SERVERS")
say "$REPS reps x $ncases cases x $nservers servers, ${DURATION}s + ${WARMUP}s warm-up each, $CONNS connections"
for rep in $(seq "$REPS"); do
    for kase in $CASES; do
        # alternate who goes first, so that no server always meets a warmer machine
        order=$SERVERS
        ((rep % 2)) || order=$(tr ' ' '\n' <<<"$SERVERS" | tac | tr '\n' ' ')
        for server in $order; do run_one "$server" "$kase" "$rep"; done
    done
    if ((HAVE_PC && TRANSPORT)); then run_one portcullis transport "$rep"; fi
    say "openssl speed -seconds $FLOOR_SECONDS ecdsap256 (after-rep-$rep)"
    measure_floor "after-rep-$rep"
done

# ---- report ---------------------------------------------------------------------------------------
mkdir -p "$(dirname "$OUT_JSON")"
OP_VERSION=""
((HAVE_OP)) && OP_VERSION=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' \
    "$OPDIR/node_modules/oidc-provider/package.json")
NODE_VERSION=$( ((HAVE_OP)) && "$NODE" --version || true)
"$PY" "$HERE/report.py" report --runs "$RUNS" --speed "$(IFS=,; echo "${SPEED_FILES[*]}")" --out "$OUT_JSON" \
    --cases "$CASES" --servers "$SERVERS" --duration "$DURATION" --warmup "$WARMUP" --reps "$REPS" \
    --conns "$CONNS" --threads "$THREADS" --op-workers "$OP_WORKERS" --pc-workers "$PC_WORKERS" \
    --dpop-cert "$DPOP_CERT" --floor-seconds "$FLOOR_SECONDS" \
    --portcullis-version "$("$PORTCULLIS_BIN" version 2>/dev/null | head -1 || true)" \
    --oidc-provider-version "$OP_VERSION" --node-version "$NODE_VERSION" \
    --openssl-version "$(openssl version)"
