#!/usr/bin/python3
"""Helpers for bench/as/run.sh: show a token, summarise a run, and the report.

  report.py show-token SERVER CASE RESPONSE.json
  report.py run-line RUN_JSON
  report.py report --runs runs.jsonl --speed openssl-speed.txt --out results.json ...
"""
import argparse
import base64
import json
import os
import platform
import re
import statistics
import sys
import time

LABELS = {
    "pkjwt": "(a) private_key_jwt",
    "mtls": "(b) tls_client_auth",
    "dpop": "(c) private_key_jwt + DPoP",
}
# Signatures and verifications one token needs (ES256):
#   pkjwt: verify the client assertion, sign the access token
#   mtls:  sign the access token; the client is authenticated by the TLS
#          certificate, verified once per connection at the handshake, so
#          no JWS verification per token
#   dpop:  verify the client assertion and the DPoP proof, sign the token
CRYPTO = {
    "pkjwt": {"verify": 1, "sign": 1},
    "mtls": {"verify": 0, "sign": 1},
    "dpop": {"verify": 2, "sign": 1},
}
OP_SERVERS = ("oidc-cluster", "oidc-single")


def b64u_json(part):
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def cmd_show_token(a):
    with open(a.response) as f:
        r = json.load(f)
    tok = r.get("access_token", "")
    parts = tok.split(".")
    print("  %-12s %-27s token_type=%s expires_in=%s scope=%s"
          % (a.server, LABELS.get(a.case, a.case), r.get("token_type"), r.get("expires_in"),
             r.get("scope")))
    if len(parts) == 3:
        print("    header  " + json.dumps(b64u_json(parts[0]), separators=(",", ":")))
        print("    payload " + json.dumps(b64u_json(parts[1]), separators=(",", ":")))
    else:
        print("    (not a JWS: %d characters)" % len(tok))


def cpu_us(r):
    return r["cpu_ticks"] / r["clk_tck"] * 1e6 / max(r["loadgen"]["requests_total"], 1)


def other_load(r):
    # share of the machine's CPU used by neither the server under test nor the
    # load generator during the run (other processes, the idle servers)
    busy = r["sys_busy_ticks"] - r["cpu_ticks"] - r["loadgen"]["client_cpu_s"] * r["clk_tck"]
    return max(busy, 0) / max(r["sys_total_ticks"], 1)


def cmd_run_line(a):
    r = json.loads(a.run)
    lg = r["loadgen"]
    bad = ""
    if lg["errors"] or lg["non2xx"]:
        bad = "  errors %d non-2xx %d %s" % (lg["errors"], lg["non2xx"],
                                             json.dumps(lg.get("status_counts", {})))
        if lg.get("first_non2xx"):
            bad += " first: " + lg["first_non2xx"][:160]
    if lg.get("lines_exhausted"):
        bad += "  LINES RAN OUT at %.1f s" % lg["lines_exhausted_at_s"]
    print("  rep %s  %-6s %-13s %8.0f tok/s %8.1f us CPU/token  p50 %7.2f ms  p99 %7.2f ms"
          "  other load %3.0f%%%s"
          % (r["rep"], r["case"], r["server"], lg["rps"], cpu_us(r), lg["p50_us"] / 1000,
             lg["p99_us"] / 1000, other_load(r) * 100, bad), file=sys.stderr)


def parse_speed(paths):
    """openssl speed outputs (comma-separated paths) -> medians and each."""
    each = []
    for path in paths.split(","):
        text = open(path).read()
        m = re.search(r"256 bits ecdsa \(nistp256\)\s+[\d.]+s\s+[\d.]+s\s+([\d.]+)\s+([\d.]+)", text)
        if not m:
            sys.exit("report: no ecdsa nistp256 line in %s:\n%s" % (path, text))
        sign_s, verify_s = float(m.group(1)), float(m.group(2))
        each.append({"file": os.path.basename(path), "sign_per_s": sign_s, "verify_per_s": verify_s,
                     "sign_us": 1e6 / sign_s, "verify_us": 1e6 / verify_s})
    return {
        "sign_us": statistics.median(x["sign_us"] for x in each),
        "verify_us": statistics.median(x["verify_us"] for x in each),
        "sign_us_range": [min(x["sign_us"] for x in each), max(x["sign_us"] for x in each)],
        "verify_us_range": [min(x["verify_us"] for x in each), max(x["verify_us"] for x in each)],
        "measurements": each,
    }


def cmd_report(a):
    runs = [json.loads(l) for l in open(a.runs) if l.strip()]
    # of the tries of one (case, server, rep), the last counts (earlier ones
    # ran out of pre-generated lines and were repeated with more)
    last = {}
    for r in runs:
        k = (r["case"], r["server"], r["rep"])
        if k not in last or r["try"] > last[k]["try"]:
            last[k] = r
    final = list(last.values())
    cases = a.cases.split()
    servers = a.servers.split()
    speed = parse_speed(a.speed)
    warnings = []

    # The transport: portcullis answering a static route with requests of
    # the token request's shape (no crypto, no parsing), median over reps.
    tr_runs = [r for r in final if r["case"] == "transport" and r["server"] == "portcullis"]
    transport_us = statistics.median(cpu_us(r) for r in tr_runs) if tr_runs else None

    out_cases = []
    for c in cases:
        floor = CRYPTO[c]["verify"] * speed["verify_us"] + CRYPTO[c]["sign"] * speed["sign_us"]
        e = {"case": c, "label": LABELS[c], "crypto": CRYPTO[c], "floor_us": floor}
        for s in servers:
            rs = sorted((r for r in final if r["case"] == c and r["server"] == s), key=lambda r: r["rep"])
            if not rs:
                continue
            lg = [r["loadgen"] for r in rs]
            m = {
                "tok_per_s": statistics.median(x["rps"] for x in lg),
                "p50_us": statistics.median(x["p50_us"] for x in lg),
                "p99_us": statistics.median(x["p99_us"] for x in lg),
                "cpu_us_per_token": statistics.median(cpu_us(r) for r in rs),
                "errors": sum(x["errors"] for x in lg),
                "non2xx": sum(x["non2xx"] for x in lg),
                "runs": [{
                    "rep": r["rep"], "tries": r["try"], "tok_per_s": r["loadgen"]["rps"],
                    "cpu_us_per_token": round(cpu_us(r), 2),
                    "tokens": r["loadgen"]["requests"], "tokens_total": r["loadgen"]["requests_total"],
                    "seconds": r["loadgen"]["seconds"],
                    "server_cpu_s": r["cpu_ticks"] / r["clk_tck"],
                    "loadgen_cpu_s": r["loadgen"]["client_cpu_s"],
                    "p50_us": r["loadgen"]["p50_us"], "p99_us": r["loadgen"]["p99_us"],
                    "errors": r["loadgen"]["errors"], "non2xx": r["loadgen"]["non2xx"],
                    "status_counts": r["loadgen"].get("status_counts"),
                    "lines_made": r["lines_made"] if c != "mtls" else None,
                    "lines_exhausted": r["loadgen"].get("lines_exhausted", False),
                    "other_load": round(other_load(r), 3),
                    "protocol": r["loadgen"].get("protocol"), "cipher": r["loadgen"].get("cipher"),
                } for r in rs],
            }
            m["cpu_over_floor"] = m["cpu_us_per_token"] / floor
            if s == "portcullis" and transport_us is not None:
                m["cpu_over_floor_plus_transport"] = m["cpu_us_per_token"] / (floor + transport_us)
            if m["errors"] or m["non2xx"]:
                warnings.append("%s / %s: %d errors, %d non-2xx responses"
                                % (LABELS[c], s, m["errors"], m["non2xx"]))
            if any(x.get("lines_exhausted") for x in lg):
                warnings.append("%s / %s: a run ran out of pre-generated requests and was kept shortened"
                                % (LABELS[c], s))
            e[s] = m
        pc = e.get("portcullis")
        for s in OP_SERVERS:
            op = e.get(s)
            if pc and op:
                e["cpu_ratio_" + s] = op["cpu_us_per_token"] / pc["cpu_us_per_token"]
                e["tok_ratio_" + s] = pc["tok_per_s"] / op["tok_per_s"]
        out_cases.append(e)

    # ---- the table -------------------------------------------------------------------------
    op_main = "oidc-cluster" if "oidc-cluster" in servers else ("oidc-single" if "oidc-single" in servers else None)
    f0 = lambda x: "%.0f" % x
    f1 = lambda x: "%.1f" % x
    ms = lambda x: "%.2f" % (x / 1000)
    rx = lambda x: "%.2fx" % x if x is not None else "-"

    def table(hdr, rows):
        w = [max(len(str(r[i])) for r in rows + [hdr]) for i in range(len(hdr))]
        line = lambda r: " | ".join(str(v).ljust(w[i]) if i == 0 else str(v).rjust(w[i])
                                    for i, v in enumerate(r))
        print(line(hdr))
        print("-+-".join("-" * x for x in w))
        for r in rows:
            print(line(r))

    ncpu = os.cpu_count() or 0
    print()
    print("token endpoint: client_credentials over keep-alive TLS on loopback, %d cores shared by the "
          "servers and the load generator" % ncpu)
    who = []
    if "portcullis" in servers:
        who.append("portcullis %s workers" % a.pc_workers)
    if op_main:
        who.append("oidc-provider %s %s" % (a.oidc_provider_version or "",
                                            "cluster of %s workers" % a.op_workers
                                            if op_main == "oidc-cluster" else "single process"))
    print("median of %s runs per cell; %s connections, %ss measured after %ss warm-up; %s"
          % (a.reps, a.conns, a.duration, a.warmup, "; ".join(who)))
    print("crypto floor (openssl speed -seconds %s ecdsap256, one core, median of %d measurements "
          "taken before the runs and after each rep): ES256 sign %.1f us (%.1f-%.1f), verify %.1f us (%.1f-%.1f)"
          % (a.floor_seconds, len(speed["measurements"]), speed["sign_us"], *speed["sign_us_range"],
             speed["verify_us"], *speed["verify_us_range"]))
    if transport_us is not None:
        print("transport (portcullis, the same request shape and client certificate to a static route "
              "answering %d bytes, no crypto beyond TLS, median of %d runs): %.1f us CPU/request"
              % (760, len(tr_runs), transport_us))
    print("  (a) 1 verify + 1 sign; (b) 1 sign: tls_client_auth has no JWS to verify (the certificate "
          "is checked once per connection); (c) 2 verifies + 1 sign")
    print("  CPU us/token = server user+system CPU of its process tree over the run / tokens issued; "
          "latency in ms")
    print()
    hdr = ["case", "portcullis tok/s", "p50", "p99", "CPU us/token", "floor us", "CPU/floor",
           "oidc-provider tok/s", "p50", "p99", "CPU us/token", "CPU ratio oidc/pc", "tok/s ratio pc/oidc"]
    rows = []
    for e in out_cases:
        pc, op = e.get("portcullis"), e.get(op_main) if op_main else None
        row = [e["label"]]
        row += [f0(pc["tok_per_s"]), ms(pc["p50_us"]), ms(pc["p99_us"]), f1(pc["cpu_us_per_token"])] if pc else ["-"] * 4
        row += [f1(e["floor_us"]), rx(pc["cpu_over_floor"]) if pc else "-"]
        row += [f0(op["tok_per_s"]), ms(op["p50_us"]), ms(op["p99_us"]), f1(op["cpu_us_per_token"])] if op else ["-"] * 4
        row += [rx(e.get("cpu_ratio_" + op_main)) if op_main else "-",
                rx(e.get("tok_ratio_" + op_main)) if op_main else "-"]
        rows.append(row)
    table(hdr, rows)
    if op_main == "oidc-cluster" and "oidc-single" in servers:
        print()
        print("oidc-provider as a single process (one core at most):")
        hdr2 = ["case", "tok/s", "p50", "p99", "CPU us/token", "CPU ratio oidc/pc", "tok/s ratio pc/oidc"]
        rows2 = []
        for e in out_cases:
            op = e.get("oidc-single")
            if not op:
                continue
            rows2.append([e["label"], f0(op["tok_per_s"]), ms(op["p50_us"]), ms(op["p99_us"]),
                          f1(op["cpu_us_per_token"]), rx(e.get("cpu_ratio_oidc-single")),
                          rx(e.get("tok_ratio_oidc-single"))])
        table(hdr2, rows2)
    print()

    # ---- targets ---------------------------------------------------------------------------------
    targets = {}
    if "portcullis" in servers:
        floor_ok = all(e["portcullis"]["cpu_over_floor"] <= 1.5 for e in out_cases if "portcullis" in e)
        targets["cpu_within_1.5x_floor"] = floor_ok
        print("portcullis vs the crypto floor: " + ", ".join(
            "%s %.2fx" % (e["case"], e["portcullis"]["cpu_over_floor"]) for e in out_cases if "portcullis" in e)
            + "  (target <= 1.5x in each case: %s)" % ("MET" if floor_ok else "NOT MET"))
        if transport_us is not None:
            print("portcullis vs the crypto floor + the transport (%.1f us): " % transport_us + ", ".join(
                "%s %.2fx (%.1f us above it)" % (e["case"], e["portcullis"]["cpu_over_floor_plus_transport"],
                                                  e["portcullis"]["cpu_us_per_token"] - e["floor_us"] - transport_us)
                for e in out_cases if "portcullis" in e) + "  (no target; what the request itself costs)")
        ops = [s for s in OP_SERVERS if s in servers]
        if ops:
            worst = {e["case"]: min(e["cpu_ratio_" + s] for s in ops if "cpu_ratio_" + s in e) for e in out_cases
                     if any("cpu_ratio_" + s in e for s in ops)}
            cpu_ok = all(v >= 3.0 for v in worst.values())
            targets["cpu_3x_less_than_oidc_provider"] = cpu_ok
            print("CPU per token, oidc-provider / portcullis (the lower of its %s): %s  (target >= 3x: %s)"
                  % (" and ".join(ops), ", ".join("%s %.2fx" % kv for kv in worst.items()),
                     "MET" if cpu_ok else "NOT MET"))
        if "oidc-cluster" in servers:
            tr = {e["case"]: e["tok_ratio_oidc-cluster"] for e in out_cases if "tok_ratio_oidc-cluster" in e}
            tok_ok = all(v >= 3.0 for v in tr.values())
            targets["throughput_3x_oidc_provider_all_cores"] = tok_ok
            print("throughput with all cores, portcullis / oidc-provider cluster: %s  (target >= 3x: %s)"
                  % (", ".join("%s %.2fx" % kv for kv in tr.items()), "MET" if tok_ok else "NOT MET"))
    else:
        print("portcullis not measured: oidc-provider figures only")
    for k in ("sign_us", "verify_us"):
        lo, hi = speed[k + "_range"]
        if hi > lo * 1.2:
            warnings.append("the %s measurements of the floor spread from %.1f to %.1f us: the machine's "
                            "speed changed during the benchmark (other load)" % (k[:-3], lo, hi))
    loads = [other_load(r) for r in final]
    if loads:
        print("other load on the machine during the runs: median %.0f%%, max %.0f%% of all CPUs"
              % (statistics.median(loads) * 100, max(loads) * 100))
        if max(loads) > 0.05:
            warnings.append("other processes used up to %.0f%% of the CPUs during some runs: tok/s "
                            "figures are disturbed; CPU per token less so" % (max(loads) * 100))
    for w in warnings:
        print("warning: " + w)

    result = {
        "benchmark": "as-token-endpoint",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": {"cpus": ncpu, "kernel": platform.release()},
        "versions": {"portcullis": a.portcullis_version, "oidc_provider": a.oidc_provider_version,
                     "node": a.node_version, "openssl": a.openssl_version},
        "settings": {"duration_s": float(a.duration), "warmup_s": float(a.warmup), "reps": int(a.reps),
                     "connections": int(a.conns), "loadgen_threads": int(a.threads),
                     "oidc_provider_cluster_workers": int(a.op_workers),
                     "portcullis_workers": int(a.pc_workers),
                     "dpop_case_presents_client_cert": a.dpop_cert == "1",
                     "servers": servers, "cases": cases},
        "crypto_floor": dict(speed, source="openssl speed -seconds %s ecdsap256, median of the "
                             "measurements before the runs and after each rep" % a.floor_seconds,
                             per_case={c: CRYPTO[c] for c in cases}),
        "definitions": {
            "cpu_us_per_token": "server utime+stime of its process tree over the whole run (warm-up "
                                "included) * 1e6 / responses completed in it",
            "floor_us": "verifies * verify_us + signs * sign_us, from openssl speed, one core",
            "cpu_over_floor": "portcullis cpu_us_per_token / floor_us (1.0 would be crypto only)",
            "transport_us_per_request": "portcullis server CPU per request of a static POST route with "
                                        "the mtls case's body and client certificate, answering 760 bytes",
            "cpu_over_floor_plus_transport": "portcullis cpu_us_per_token / (floor_us + transport)",
            "cpu_ratio_X": "X cpu_us_per_token / portcullis cpu_us_per_token (>1: portcullis cheaper)",
            "tok_ratio_X": "portcullis tok/s / X tok/s (>1: portcullis faster)",
            "medians": "over the REPS runs of each server and case",
        },
        "cases": out_cases,
        "transport_us_per_request": transport_us,
        "transport_runs": [{"rep": r["rep"], "cpu_us_per_request": round(cpu_us(r), 2),
                            "req_per_s": r["loadgen"]["rps"]} for r in tr_runs],
        "targets": targets,
        "other_load_max": round(max(loads), 3) if loads else None,
        "warnings": warnings,
    }
    with open(a.out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print("written: " + a.out)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("show-token")
    s.add_argument("server")
    s.add_argument("case")
    s.add_argument("response")
    s.set_defaults(fn=cmd_show_token)
    s = sub.add_parser("run-line")
    s.add_argument("run")
    s.set_defaults(fn=cmd_run_line)
    s = sub.add_parser("report")
    for o in ("runs", "speed", "out", "cases", "servers", "duration", "warmup", "reps", "conns",
              "threads", "op-workers", "pc-workers", "dpop-cert", "floor-seconds",
              "portcullis-version", "oidc-provider-version", "node-version", "openssl-version"):
        s.add_argument("--" + o, required=o in ("runs", "speed", "out", "cases", "servers"), default="")
    s.set_defaults(fn=cmd_report)
    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
