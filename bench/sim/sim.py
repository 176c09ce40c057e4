#!/usr/bin/python3
"""portcullis traffic simulator: benign partners and attacks against a real
stack (AS + gateway + demo API), and a report of what the defences did.

    python3 bench/sim/sim.py [--duration S] [--quick] [--json OUT] [--bin PATH]

See bench/sim/README.md.
"""

import argparse
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Debian's python3 has python3-cryptography and python3-jwcrypto; another
# python3 first in PATH (pyenv) may not: run under Debian's then.
if importlib.util.find_spec("jwcrypto") is None and sys.executable != "/usr/bin/python3" \
        and os.path.exists("/usr/bin/python3"):
    os.execv("/usr/bin/python3", ["/usr/bin/python3", *sys.argv])

import simlib  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, help="seconds of traffic (default 600; --quick 75)")
    ap.add_argument("--quick", action="store_true", help="the short scenario: 12 partners, about 75 s")
    ap.add_argument("--json", metavar="OUT", help="write the full report as JSON to OUT")
    ap.add_argument("--bin", metavar="PATH", default=str(simlib.REPO / "build/release/portcullis"),
                    help="the portcullis binary (default build/release/portcullis)")
    ap.add_argument("--partners", type=int, help="benign partners (default 60; --quick 12)")
    ap.add_argument("--attacks", help="comma-separated subset of: " + ",".join(simlib.ATTACKS)
                    + " (or 'none')")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--day", type=float, help="seconds in one compressed day (default 200)")
    ap.add_argument("--sorted-batches", action="store_true",
                    help="benign bursts walk the partner's tags in sorted order")
    ap.add_argument("--bf-target", metavar="CLIENT_ID",
                    help="client_id the brute force attacks (default bf-target, a client of its "
                         "own; e.g. partner-01 to aim at a benign partner)")
    ap.add_argument("--slow-rate", type=float, metavar="R",
                    help="requests/s of enum-slow (default 2)")
    ap.add_argument("--cred-quarantine", action="store_true",
                    help="credentials detector actions [alert, quarantine] instead of [alert, revoke]")
    ap.add_argument("--webhook", action="store_true",
                    help="configure detect.webhook and count the alerts it receives")
    ap.add_argument("--no-access-log", action="store_true", help="log.access: false")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (configs, logs)")
    ap.add_argument("--progress", type=float, default=30.0, help="seconds between progress lines (0: none)")
    args = ap.parse_args(argv)

    sc = simlib.quick_scenario() if args.quick else simlib.default_scenario()
    sc["seed"] = args.seed
    if args.duration:
        sc["duration"] = args.duration
    if args.partners is not None:
        sc["partners"] = args.partners
        sc["dpop_partners"] = min(sc["dpop_partners"], max(0, args.partners - 1))
    if args.day:
        sc["day"] = args.day
    if args.attacks:
        want = [] if args.attacks == "none" else args.attacks.split(",")
        unknown = [a for a in want if a not in simlib.ATTACKS]
        if unknown:
            ap.error(f"unknown attack(s): {unknown}")
        sc["attacks"] = {k: v for k, v in sc["attacks"].items() if k in want}
    if args.bf_target and "brute-force" in sc["attacks"]:
        sc["attacks"]["brute-force"] = dict(sc["attacks"]["brute-force"], target=args.bf_target)
    if args.slow_rate and "enum-slow" in sc["attacks"]:
        sc["attacks"]["enum-slow"] = dict(sc["attacks"]["enum-slow"], rate=args.slow_rate)
    if args.cred_quarantine:
        sc["detect"]["credentials"] = dict(sc["detect"]["credentials"], actions=["alert", "quarantine"])
    sc["sorted_batches"] = args.sorted_batches
    sc["webhook"] = args.webhook
    sc["access_log"] = not args.no_access_log
    if not Path(args.bin).exists():
        ap.error(f"{args.bin} not found (make release, or --bin)")

    def say(msg):
        print(f"[sim] {msg}", file=sys.stderr, flush=True)

    work = Path(tempfile.mkdtemp(prefix="portcullis-sim-"))
    say(f"work directory {work}")
    stack = None
    try:
        stack = simlib.Stack(work, sc, binary=Path(args.bin).resolve(), log=say)
        if not stack.defenses:
            say("WARNING: this build has no abuse-resistance config; the run measures the attacks "
                "against no defences")
        sim = simlib.Simulation(stack, say=say)
        say(f"traffic for {sc['duration']:.0f}s: {sc['partners']} partners, attacks: "
            + (", ".join(f"{k}@{v['start']:.0f}s" for k, v in sc["attacks"].items()) or "none"))
        sim.run(progress=args.progress)
        report = simlib.build_report(sim)
    finally:
        if stack is not None:
            problems = stack.stop()
            for p in problems:
                say(f"problem at shutdown: {p}")
    report["shutdown_problems"] = problems
    report["workdir"] = str(work) if args.keep else None
    print(simlib.format_table(report))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1, default=str) + "\n")
        say(f"JSON report: {args.json}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    t = time.monotonic()
    rc = main()
    print(f"[sim] done in {time.monotonic() - t:.0f}s", file=sys.stderr)
    sys.exit(rc)
