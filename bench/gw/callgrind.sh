#!/usr/bin/env bash
# bench/gw/callgrind.sh: user-space instructions per proxied request on the
# gateway's mTLS path, counted by callgrind. Timings on a shared 2-core
# machine swing ±5% run to run; instruction counts do not, so this is how a
# small change to the request path is judged (bench/README.md, "Fifth
# round"). Not a benchmark: run.sh remains the measure against nginx.
#
# Usage:
#   KEEP_TMP=1 CASES=pc-mtls REPS=1 DURATION=2 IDLE_CONNS=0 bench/gw/run.sh
#   bench/gw/callgrind.sh /tmp/portcullis-bench-gw.XXXXXX [portcullis binary]
# It reuses that directory's config, certificates and mTLS token (tokens
# live an hour: as.access_token_lifetime in the bench's config), starts the
# upstream and portcullis (under valgrind) itself and stops only those.
# It prints instructions per request: two server lives under callgrind,
# with 2,000 and N (8,000) requests over 16 connections, differenced. valgrind hides
# SHA-NI, so the token's SHA-256 counts ~17k instructions it does not cost
# on the CPU. Needs: apt-get install valgrind.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
T=${1:?usage: bench/gw/callgrind.sh KEPT_BENCH_DIR [portcullis binary]}
BIN=${2:-$ROOT/build/release/portcullis}
LOADGEN=${LOADGEN:-$ROOT/build/bench/loadgen}
N=${N:-8000}
command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind not found (apt-get install valgrind)" >&2; exit 2; }
[[ -f $T/portcullis/portcullis.yaml && -f $T/req/mtls.hdr ]] ||
    { echo "callgrind.sh: $T is not a kept bench-gw directory (KEEP_TMP=1 bench/gw/run.sh)" >&2; exit 2; }
PORT=$(sed -n 's/^  listen: 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$T/portcullis/portcullis.yaml")
OUT=$(mktemp -d /tmp/portcullis-callgrind.XXXXXX)
UP_PID="" PC_PID=""
cleanup() {
    [[ -n $PC_PID ]] && kill "$PC_PID" 2>/dev/null && wait "$PC_PID" 2>/dev/null
    [[ -n $UP_PID ]] && kill "$UP_PID" 2>/dev/null
    rm -rf "$OUT"
}
trap cleanup EXIT

/usr/sbin/nginx -e "$T/upstream/error.log" -p "$T/upstream/" -c "$T/upstream/nginx.conf" -g 'daemon off;' &
UP_PID=$!
lg() {
    "$LOADGEN" --url "https://localhost:$PORT/api/ok" --connect-to 127.0.0.1 --cacert "$T/pki/ca.pem" \
        --headers-file "$T/req/mtls.hdr" --cert "$T/pki/bench-client.pem" --key "$T/pki/bench-client.key" \
        --connections 16 --threads 1 --warmup 0 --duration 300 --requests "$1" --json 2>/dev/null
}
# One whole server life under callgrind: start, a warm-up batch, a batch of
# $1 requests, stop. Two lives that differ only in that batch's size cancel
# everything else (start-up, handshakes, warm-up) in the difference, which
# callgrind_control's zero/dump cannot promise (it acts when the process
# next wakes).
life() {
    valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.$1" "$BIN" serve -c "$T/portcullis/portcullis.yaml" \
        >"$OUT/server.$1.log" 2>&1 &
    PC_PID=$!
    for _ in $(seq 240); do
        curl -sk --max-time 2 -o /dev/null "https://127.0.0.1:$PORT/healthz" && break
        sleep 0.5
    done
    lg 1000 >/dev/null
    lg "$1" >"$OUT/lg.$1.json"
    kill "$PC_PID"
    wait "$PC_PID" 2>/dev/null || true
    PC_PID=""
}
life 2000
life "$N"
python3 - "$OUT" 2000 "$N" <<'PY'
import json, sys
out, a, b = sys.argv[1], sys.argv[2], sys.argv[3]
def total(n):
    for line in open(f"{out}/cg.{n}"):
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise SystemExit(f"no totals in {out}/cg.{n}")
runs = {n: json.load(open(f"{out}/lg.{n}.json")) for n in (a, b)}
bad = sum(r["errors"] + r["non2xx"] for r in runs.values())
per = (total(b) - total(a)) / (runs[b]["requests"] - runs[a]["requests"])
print(f"user-space instructions per proxied mTLS request: {round(per)}"
      f" (two server lives, {a} and {b} requests; {bad} errors or non-2xx)")
if bad:
    print("the kept token may have expired: run bench/gw/run.sh with KEEP_TMP=1 again", file=sys.stderr)
    sys.exit(1)
PY
