#!/usr/bin/env python3
"""Reproduce faultline's bug-finding table: raftkv with each --bug switch under the fault
that should expose it, and correct raftkv under every nemesis (no false alarms).

    scripts/bug-table.py [--runs 5] [--time-limit 60s] [--parallel 2] [--only BUG|correct]

Needs root (network namespaces) and a release build (cargo build --release). Prints a
Markdown table: runs caught / runs, and the median seconds from the start of the run to the
first op of the counterexample (the op that could not be linearized).
"""
import argparse
import concurrent.futures
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAULTLINE = os.environ.get("FAULTLINE_BIN", os.path.join(ROOT, "target", "release", "faultline"))

# bug -> the nemesis that should expose it (targets/raftkv/README.md, "Bug switches")
BUGS = [
    ("stale-read", "partition-primaries"),
    ("lease-read", "clock-partition"),
    ("no-prev-check", "partition"),
    ("commit-old-term", "kill-partition"),
    ("forget-vote", "kill"),
    ("ack-before-commit", "partition-primaries"),
]
CORRECT = ["partition", "partition-primaries", "pause", "kill", "clock", "clock-partition", "loss", "all"]


def run(store, bug, nemesis, seed, time_limit):
    args = [FAULTLINE, "run", "--nemesis", nemesis, "--time-limit", time_limit,
            "--seed", str(seed), "--quiet", "--store", store]
    if bug:
        args += ["--target-arg=--bug", "--target-arg=" + bug]
    p = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    line = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
    run_dir = line.rsplit(": ", 1)[0]
    verdict, first_s = None, None
    try:
        with open(os.path.join(run_dir, "results.json")) as f:
            r = json.load(f)
        verdict = r.get("verdict")
        ce = (r.get("check") or {}).get("counterexample") or {}
        fc = ce.get("failing_call") or {}
        t = (fc.get("invoke") or {}).get("time_ns")
        if t is not None:
            first_s = t / 1e9
    except (OSError, ValueError):
        pass
    return bug or "correct", nemesis, seed, p.returncode, verdict, first_s, run_dir, p.stderr[-500:]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--time-limit", default="60s")
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--only", default=None)
    ap.add_argument("--store", default=os.path.join(ROOT, "reports", "bug-table"))
    a = ap.parse_args()
    jobs = []
    for bug, nem in BUGS:
        if a.only in (None, bug):
            jobs += [(bug, nem, s) for s in range(1, a.runs + 1)]
    if a.only in (None, "correct"):
        jobs += [(None, nem, s) for nem in CORRECT for s in range(1, a.runs + 1)]
    results = {}
    with concurrent.futures.ThreadPoolExecutor(a.parallel) as ex:
        futs = [ex.submit(run, a.store, b, n, s, a.time_limit) for b, n, s in jobs]
        for f in concurrent.futures.as_completed(futs):
            bug, nem, seed, code, verdict, first_s, run_dir, err = f.result()
            print(f"{bug:18} {nem:20} seed {seed}: exit {code} {verdict} "
                  f"{'' if first_s is None else f'first anomaly at {first_s:.1f}s'} {run_dir}",
                  file=sys.stderr, flush=True)
            if code == 3:
                print(err, file=sys.stderr)
            results.setdefault((bug, nem), []).append((verdict, first_s))
    print("| raftkv | nemesis | expected | runs as expected | median s to first anomaly |")
    print("| --- | --- | --- | ---: | ---: |")
    for (bug, nem), rs in sorted(results.items(), key=lambda kv: (kv[0][0] == "correct", kv[0])):
        expected = "valid" if bug == "correct" else "invalid"
        hits = sum(1 for v, _ in rs if v == expected)
        times = [t for v, t in rs if v == "invalid" and t is not None]
        med = f"{statistics.median(times):.1f}" if times and expected == "invalid" else "-"
        label = "correct" if bug == "correct" else f"--bug {bug}"
        print(f"| {label} | {nem} | {expected} | {hits}/{len(rs)} | {med} |")


if __name__ == "__main__":
    main()
