#!/usr/bin/python3
"""Figures for bench/gw/run.sh: one line per run, and the final table + JSON.

  report.py run-line JSON_LINE
  report.py report --runs runs.jsonl --rss rss.jsonl --speed f1,f2 --out results.json ...
"""
import argparse
import json
import os
import platform
import re
import statistics
import sys
import time

LABELS = {
    "nginx-mtls": "nginx proxy, client cert",
    "pc-mtls": "portcullis mTLS+JWT+scope",
    "nginx": "nginx proxy, no cert",
    "pc-dpop": "portcullis DPoP+JWT+scope",
}
# each portcullis path and the nginx case it is compared with
PEER = {"pc-mtls": "nginx-mtls", "pc-dpop": "nginx"}


def cpu_us(r):
    return r["cpu_ticks"] / r["clk_tck"] * 1e6 / max(r["loadgen"]["requests_total"], 1)


def upstream_us(r):
    return r["upstream_cpu_ticks"] / r["clk_tck"] * 1e6 / max(r["loadgen"]["requests_total"], 1)


def other_load(r):
    # share of the machine's CPU used by neither the server under test, the
    # upstream nor the load generator during the run
    busy = (r["sys_busy_ticks"] - r["cpu_ticks"] - r["upstream_cpu_ticks"]
            - r["loadgen"]["client_cpu_s"] * r["clk_tck"])
    return max(busy, 0) / max(r["sys_total_ticks"], 1)


def invalid(lg):
    """Why a run does not count, or '' if it does."""
    why = []
    if lg.get("errors"):
        why.append("%d connection errors" % lg["errors"])
    if lg.get("non2xx"):
        why.append("%d non-2xx responses (%s), first: %s"
                   % (lg["non2xx"], json.dumps(lg.get("status_counts", {})), lg.get("first_non2xx", "")[:160]))
    if not lg.get("requests"):
        why.append("no requests")
    return "; ".join(why)


def cmd_run_line(a):
    r = json.loads(a.line)
    lg = r["loadgen"]
    bad = invalid(lg)
    extra = ""
    if r["case"] == "pc-dpop":
        extra = "  proofs %d/%d%s" % (lg.get("lines_used", 0), r["lines_made"],
                                      " EXHAUSTED" if lg.get("lines_exhausted") else "")
    print("  rep %d %-10s %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  %6.1f us CPU/req  (upstream %4.1f)  "
          "status %s  other load %3.0f%%%s"
          % (r["rep"], r["case"], lg["rps"], lg["p50_us"] / 1e3, lg["p99_us"] / 1e3, cpu_us(r), upstream_us(r),
             json.dumps(lg.get("status_counts", {}), separators=(",", ":")), other_load(r) * 100, extra),
          file=sys.stderr)
    if bad:
        print("  " + "!" * 70 + "\n  !!! INVALID RUN (%s rep %d): %s\n  " % (r["case"], r["rep"], bad) + "!" * 70,
              file=sys.stderr)


def parse_speed(paths):
    each = []
    for path in paths.split(","):
        text = open(path).read()
        m = re.search(r"256 bits ecdsa \(nistp256\)\s+[\d.]+s\s+[\d.]+s\s+([\d.]+)\s+([\d.]+)", text)
        if not m:
            sys.exit("report: no ecdsa nistp256 line in %s:\n%s" % (path, text))
        sign_s, verify_s = float(m.group(1)), float(m.group(2))
        each.append({"file": os.path.basename(path), "sign_us": 1e6 / sign_s, "verify_us": 1e6 / verify_s})
    v = [x["verify_us"] for x in each]
    return {"verify_us": statistics.median(v), "verify_us_range": [min(v), max(v)],
            "sign_us": statistics.median(x["sign_us"] for x in each), "measurements": each}


def cmd_report(a):
    runs = [json.loads(l) for l in open(a.runs) if l.strip()]
    # of the tries of one (case, rep), the last counts (earlier ones ran out of proofs)
    last = {}
    for r in runs:
        last[(r["case"], r["rep"])] = r
    counted = list(last.values())
    cases = a.cases.split()
    floor = parse_speed(a.speed)
    warnings = []

    out = {}
    for c in cases:
        rs = [r for r in counted if r["case"] == c]
        if not rs:
            continue
        lg = [r["loadgen"] for r in rs]
        bad = [(r["rep"], invalid(r["loadgen"])) for r in rs if invalid(r["loadgen"])]
        for rep, why in bad:
            warnings.append("INVALID RUN %s rep %d: %s" % (c, rep, why))
        if c == "pc-dpop" and any(x.get("lines_exhausted") for x in lg):
            warnings.append("pc-dpop: some counted runs ran out of proofs and were shortened")
        status = {}
        for x in lg:
            for k, v in x.get("status_counts", {}).items():
                status[k] = status.get(k, 0) + v
        out[c] = {
            "label": LABELS[c],
            "valid": not bad,
            "rps_median": statistics.median(x["rps"] for x in lg),
            "p50_us_median": statistics.median(x["p50_us"] for x in lg),
            "p99_us_median": statistics.median(x["p99_us"] for x in lg),
            "cpu_us_per_req_median": statistics.median(cpu_us(r) for r in rs),
            "upstream_cpu_us_per_req_median": statistics.median(upstream_us(r) for r in rs),
            "loadgen_cpu_us_per_req_median": statistics.median(
                x["client_cpu_s"] * 1e6 / max(x["requests_total"], 1) for x in lg),
            "status_counts": status,
            "protocol": lg[0].get("protocol", ""),
            "cipher": lg[0].get("cipher", ""),
            "runs": [{"rep": r["rep"], "try": r["try"], "rps": r["loadgen"]["rps"],
                      "p50_us": r["loadgen"]["p50_us"], "p99_us": r["loadgen"]["p99_us"],
                      "cpu_us_per_req": round(cpu_us(r), 2), "upstream_cpu_us_per_req": round(upstream_us(r), 2),
                      "requests": r["loadgen"]["requests"], "requests_total": r["loadgen"]["requests_total"],
                      "server_cpu_s": r["cpu_ticks"] / r["clk_tck"],
                      "loadgen_cpu_s": r["loadgen"]["client_cpu_s"], "errors": r["loadgen"]["errors"],
                      "non2xx": r["loadgen"]["non2xx"], "status_counts": r["loadgen"].get("status_counts", {}),
                      "lines_made": r["lines_made"], "lines_exhausted": r["loadgen"].get("lines_exhausted"),
                      "other_load": round(other_load(r), 3)} for r in rs],
        }
        if c.endswith("mtls") and not all(x.get("cert_requested") for x in lg):
            warnings.append("%s: the server did not ask for the client certificate" % c)
    ciphers = {v["protocol"] + " " + v["cipher"] for v in out.values()}
    if len(ciphers) > 1:
        warnings.append("different ciphers negotiated: " + "; ".join(sorted(ciphers)))

    # ratios and targets
    targets = {}
    for c, peer in PEER.items():
        if c in out and peer in out:
            out[c]["rps_ratio_vs_" + peer] = out[c]["rps_median"] / out[peer]["rps_median"]
            out[c]["cpu_ratio_vs_" + peer] = out[c]["cpu_us_per_req_median"] / out[peer]["cpu_us_per_req_median"]
        if c in out and "nginx" in out and peer != "nginx":
            out[c]["rps_ratio_vs_nginx"] = out[c]["rps_median"] / out["nginx"]["rps_median"]
    if "pc-mtls" in out and "nginx-mtls" in out:
        ratio = out["pc-mtls"]["rps_ratio_vs_nginx-mtls"]
        valid = out["pc-mtls"]["valid"] and out["nginx-mtls"]["valid"]
        # Rep by rep as well: the two cases of one rep ran back to back, so
        # their ratio shows how much of the median's margin is noise.
        by_rep = {}
        for r in counted:
            if r["case"] in ("pc-mtls", "nginx-mtls"):
                by_rep.setdefault(r["rep"], {})[r["case"]] = r["loadgen"]["rps"]
        per_rep = [v["pc-mtls"] / v["nginx-mtls"] for k, v in sorted(by_rep.items())
                   if len(v) == 2 and v["nginx-mtls"] > 0]
        targets["mtls_throughput"] = {
            "what": "portcullis mTLS+JWT+scope req/s >= 1.0x nginx plain proxy req/s (client cert presented to both)",
            "ratio": ratio, "met": (ratio >= 1.0) if valid else None, "valid": valid,
            "per_rep": [round(x, 3) for x in per_rep]}
    if "pc-dpop" in out and "nginx" in out:
        budget = floor["verify_us"] + out["nginx"]["cpu_us_per_req_median"]
        ratio = out["pc-dpop"]["cpu_us_per_req_median"] / budget
        valid = out["pc-dpop"]["valid"] and out["nginx"]["valid"]
        out["pc-dpop"]["cpu_budget_us"] = budget
        out["pc-dpop"]["cpu_over_budget"] = ratio
        by_rep = {}
        for r in counted:
            if r["case"] in ("pc-dpop", "nginx"):
                by_rep.setdefault(r["rep"], {})[r["case"]] = cpu_us(r)
        per_rep = [v["pc-dpop"] / (floor["verify_us"] + v["nginx"]) for k, v in sorted(by_rep.items())
                   if len(v) == 2]
        targets["dpop_cpu"] = {
            "what": "portcullis DPoP CPU/req <= 1.25x (ES256 verify + nginx CPU/req, no cert)",
            "verify_us": floor["verify_us"], "nginx_cpu_us": out["nginx"]["cpu_us_per_req_median"],
            "budget_us": budget, "ratio": ratio, "met": (ratio <= 1.25) if valid else None, "valid": valid,
            "per_rep": [round(x, 3) for x in per_rep]}

    # memory at idle connections
    rss = {}
    if a.rss and os.path.exists(a.rss):
        for l in open(a.rss):
            if not l.strip():
                continue
            x = json.loads(l)
            m = re.match(r"ok (\d+) failed (\d+) non2xx (\d+) seconds ([\d.]+) first_error (.*)", x["client"])
            ok = int(m.group(1)) if m else 0
            entry = {
                "idle_target": x["idle_target"], "client_ok": ok,
                "client_failed": int(m.group(2)) if m else None,
                "client_non2xx": int(m.group(3)) if m else None,
                "client_seconds": float(m.group(4)) if m else None,
                "client_first_error": m.group(5) if m else x["client"],
                "established": x["established"],
                "rss_before_mib": x["rss_before_kib"] / 1024, "rss_mib": x["rss_kib"] / 1024,
                "kib_per_conn": (x["rss_kib"] - x["rss_before_kib"]) / max(ok, 1),
                "rss_kib_per_conn_total": x["rss_kib"] / max(ok, 1),
                "master_rss_mib": x["master_rss_kib"] / 1024,
                "measured": "VmRSS of " + ("the worker processes (sum)" if x["server"] == "nginx"
                                           else "the one process"),
            }
            if m and (int(m.group(2)) or int(m.group(3))):
                warnings.append("idle connections to %s: %s failed, %s non-2xx (%s)"
                                % (x["server"], m.group(2), m.group(3), m.group(5)))
            if x["established"] < 0.98 * x["idle_target"]:
                warnings.append("idle connections to %s: only %d established when RSS was read"
                                % (x["server"], x["established"]))
            rss[x["server"]] = entry

    loads = [other_load(r) for r in counted]
    if loads and max(loads) > 0.05:
        warnings.append("other processes used up to %.0f%% of the CPUs during some runs (median %.0f%%): "
                        "req/s figures are disturbed; CPU per request less so"
                        % (max(loads) * 100, statistics.median(loads) * 100))
    vr = floor["verify_us_range"]
    if vr[1] > 1.2 * vr[0]:
        warnings.append("the ES256 verify cost moved during the run: %.1f-%.1f us (median used)" % tuple(vr))

    # ---- print
    print()
    print("gateway benchmark: portcullis (gateway + AS in one process, 2 workers) vs %s as a plain TLS reverse"
          " proxy, trivial nginx upstream on loopback, %d cores shared by everything" % (a.nginx_version, os.cpu_count()))
    print("median of %d runs per row; %d keep-alive connections, %s s + %s s warm-up per run"
          % (a.reps, a.conns, a.duration, a.warmup))
    print("  CPU us/req = server user+system CPU over the run (process tree) / requests; upstream CPU not included")
    print("  vs nginx   = portcullis req/s / nginx req/s of the comparable case (same cert, same request size)")
    print()
    hdr = ["path", "req/s", "p50 ms", "p99 ms", "CPU us/req", "vs nginx req/s", "CPU vs budget"]
    rows = []
    for c in cases:
        if c not in out:
            continue
        e = out[c]
        ratio = "-"
        if c in PEER and ("rps_ratio_vs_" + PEER[c]) in e:
            ratio = "%.2fx (%s)" % (e["rps_ratio_vs_" + PEER[c]], PEER[c])
        budget = "-"
        if c == "pc-dpop" and "cpu_over_budget" in e:
            budget = "%.2fx of %.1f us" % (e["cpu_over_budget"], e["cpu_budget_us"])
        rows.append([e["label"] + ("" if e["valid"] else " INVALID"), "%.0f" % e["rps_median"],
                     "%.2f" % (e["p50_us_median"] / 1e3), "%.2f" % (e["p99_us_median"] / 1e3),
                     "%.1f" % e["cpu_us_per_req_median"], ratio, budget])
    w = [max(len(str(r[i])) for r in rows + [hdr]) for i in range(len(hdr))]
    line = lambda r: " | ".join(str(v).ljust(w[0]) if i == 0 else str(v).rjust(w[i]) for i, v in enumerate(r))
    print(line(hdr))
    print("-+-".join("-" * x for x in w))
    for r in rows:
        print(line(r))
    print()
    print("ES256 verify (openssl speed -seconds %s ecdsap256, median of %d): %.1f us (range %.1f-%.1f)"
          % (a.floor_seconds, len(floor["measurements"]), floor["verify_us"], vr[0], vr[1]))
    print("upstream CPU us/req (not in the figures above): " + ", ".join(
        "%s %.1f" % (c, out[c]["upstream_cpu_us_per_req_median"]) for c in cases if c in out))
    print("load generator CPU us/req: " + ", ".join(
        "%s %.1f" % (c, out[c]["loadgen_cpu_us_per_req_median"]) for c in cases if c in out))
    print("status counts (all counted runs): " + ", ".join(
        "%s %s" % (c, json.dumps(out[c]["status_counts"], separators=(",", ":"))) for c in cases if c in out))
    print("negotiated: " + "; ".join(sorted(ciphers)))
    print()

    def verdict(t):
        if t["met"] is None:
            return "INVALID (runs with errors or non-2xx responses)"
        return "MET" if t["met"] else "NOT MET"
    if "mtls_throughput" in targets:
        t = targets["mtls_throughput"]
        print("target 1: mTLS-bound path >= 1.0x nginx plain-proxy req/s: %.2fx -> %s" % (t["ratio"], verdict(t)))
        if t["per_rep"]:
            print("          rep by rep (pc-mtls / nginx-mtls of the same rep): "
                  + ", ".join("%.2fx" % x for x in t["per_rep"]))
    if "dpop_cpu" in targets:
        t = targets["dpop_cpu"]
        print("target 2: DPoP path CPU/req <= 1.25x (verify %.1f + nginx %.1f = %.1f us): %.1f us = %.2fx -> %s"
              % (t["verify_us"], t["nginx_cpu_us"], t["budget_us"], out["pc-dpop"]["cpu_us_per_req_median"],
                 t["ratio"], verdict(t)))
        if t["per_rep"]:
            print("          rep by rep (with the same rep's nginx CPU): "
                  + ", ".join("%.2fx" % x for x in t["per_rep"]))
    if rss:
        print()
        print("memory at %d idle keep-alive TLS connections (handshake with a client cert + one GET /api/ok each):"
              % a.idle_conns)
        for s in ("portcullis", "nginx"):
            if s in rss:
                x = rss[s]
                print("  %-10s RSS %7.1f MiB (before %6.1f MiB): %5.1f KiB per connection added; "
                      "%d connections open, %d established%s"
                      % (s, x["rss_mib"], x["rss_before_mib"], x["kib_per_conn"], x["client_ok"], x["established"],
                         "; nginx master %.1f MiB not included" % x["master_rss_mib"] if s == "nginx" else ""))
    if loads:
        print("other load on the machine during the runs: median %.0f%%, max %.0f%% of all CPUs"
              % (statistics.median(loads) * 100, max(loads) * 100))
    print("access log lines written: " + a.access_lines)
    for x in warnings:
        print(("WARNING: " if not x.startswith("INVALID") else "!!! ") + x)

    result = {
        "benchmark": "gateway",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": {"cpus": os.cpu_count(), "kernel": platform.release()},
        "versions": {"portcullis": a.portcullis_version, "nginx": a.nginx_version, "openssl": a.openssl_version},
        "settings": {"duration_s": float(a.duration), "warmup_s": float(a.warmup), "reps": a.reps,
                     "connections": a.conns, "loadgen_threads": a.threads, "idle_connections": a.idle_conns,
                     "floor_seconds": float(a.floor_seconds)},
        "definitions": {
            "cpu_us_per_req": "server utime+stime (process tree) over the whole load generator run, warm-up "
                              "included, * 1e6 / requests completed in it",
            "rps_ratio_vs_X": "portcullis rps / rps of nginx case X",
            "cpu_budget_us": "ES256 verify (openssl speed, median) + nginx (no cert) CPU us per request",
            "kib_per_conn": "(VmRSS at the idle connections - VmRSS just before) / connections opened",
        },
        "cases": out,
        "es256": floor,
        "targets": targets,
        "idle_rss": rss,
        "other_load_median": round(statistics.median(loads), 3) if loads else None,
        "other_load_max": round(max(loads), 3) if loads else None,
        "access_log_lines": a.access_lines,
        "elapsed_s": a.elapsed,
        "warnings": warnings,
    }
    with open(a.out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print("written: " + a.out)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run-line")
    r.add_argument("line")
    r.set_defaults(fn=cmd_run_line)
    g = sub.add_parser("report")
    for k in ("runs", "rss", "speed", "out", "cases", "duration", "warmup", "floor_seconds", "access_lines",
              "portcullis_version", "nginx_version", "openssl_version"):
        g.add_argument("--" + k.replace("_", "-"), default="")
    for k in ("reps", "conns", "threads", "idle_conns", "elapsed"):
        g.add_argument("--" + k.replace("_", "-"), type=int, default=0)
    g.set_defaults(fn=cmd_report)
    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
