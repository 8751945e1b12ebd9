#!/usr/bin/python3
"""campaign: several seeded chaos runs, one table, coverage totals.

    tests/chaos/campaign.py --seeds 1,2,3 [--five-every K] [--out FILE] -- RUN.PY OPTIONS

Runs tests/chaos/run.py once per seed, one after the other (each in
tests/chaos/runs/campaign-<stamp>/seed-N; each run's row is appended to
campaign-<stamp>/table.md as it ends), passing the options after `--`
(every K-th run, if --five-every K, also gets --replicas 5).  Then prints a
markdown table, one row per run -- seed, replicas, verdict, ops invoked /
ok / fail / info, the faults injected, the coverage counts -- and the
coverage totals (coverage.py).

Exit status: 0 when every run is valid AND every coverage counter's total
is non-zero (a campaign that never exercised a recovery path is not a
pass); 1 otherwise; 2 if a run was a harness error.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import coverage  # noqa: E402

PYTHON = "/usr/bin/python3"


def row(seed, rundir, rc):
    try:
        with open(os.path.join(rundir, "summary.json")) as f:
            s = json.load(f)
    except (OSError, ValueError):
        s = {}
    w = (s.get("workload") or {}).get("completions") or {}
    ops = sum(w.values())
    faults = ", ".join("%s x%d" % kv for kv in sorted((s.get("faults") or {}).items()))
    cov = s.get("coverage") or coverage.gather(rundir)
    v = s.get("verdict") or {}
    bad = sorted(k for k, inv in (v.get("invariants") or {}).items() if not inv.get("ok"))
    verdict = {0: "valid", 1: "INVALID", 2: "harness error"}.get(rc, "exit %d" % rc)
    if bad or s.get("anomalies"):
        verdict += " (%s)" % ", ".join(bad + ["anomaly: %s" % a for a in s.get("anomalies", [])])
    reps = (s.get("options") or {}).get("replicas", 3)
    return cov, "| %d | %s | %s | %d / %d / %d / %d | %d: %s | %s |" % (
        seed, reps, verdict, ops, w.get("ok", 0), w.get("fail", 0), w.get("info", 0),
        s.get("faults_total", 0), faults, coverage.line(cov))


def main(argv):
    p = argparse.ArgumentParser(prog="tests/chaos/campaign.py",
                                description="Seeded chaos runs, one table, coverage totals.")
    p.add_argument("--seeds", required=True, help="comma list, or A-B")
    p.add_argument("--five-every", type=int, default=0, metavar="K",
                   help="every K-th run uses --replicas 5 (default: none)")
    p.add_argument("--bin", default=None, help="passed to run.py")
    p.add_argument("--out", default=None, help="also write the table here")
    p.add_argument("run_args", nargs="*", help="run.py options (after --)")
    a = p.parse_args(argv)
    if "-" in a.seeds and "," not in a.seeds:
        lo, hi = (int(x) for x in a.seeds.split("-"))
        seeds = list(range(lo, hi + 1))
    else:
        seeds = [int(x) for x in a.seeds.split(",") if x]
    top = os.path.join(HERE, "runs", "campaign-" + datetime.datetime.now().strftime(
        "%Y%m%d-%H%M%S"))
    os.makedirs(top, exist_ok=True)
    lines, totals, status = [], {}, 0
    for i, seed in enumerate(seeds):
        rundir = os.path.join(top, "seed-%d" % seed)
        extra = ["--replicas", "5"] if a.five_every and (i + 1) % a.five_every == 0 else []
        argv = [PYTHON, os.path.join(HERE, "run.py"), "--seed", str(seed), "--dir", rundir]
        argv += (["--bin", a.bin] if a.bin else []) + a.run_args + extra
        print("campaign: run %d/%d: %s" % (i + 1, len(seeds), " ".join(argv[1:])), flush=True)
        rc = subprocess.run(argv, stdin=subprocess.DEVNULL).returncode
        cov, line = row(seed, rundir, rc)
        coverage.add(totals, cov)
        lines.append(line)
        with open(os.path.join(top, "table.md"), "a") as f:  # so far, if the campaign is cut
            f.write(line + "\n")
        status = max(status, 2 if rc not in (0, 1) else rc)
    z = coverage.zeros(totals)
    text = "\n".join(["| seed | replicas | verdict | ops invoked / ok / fail / info | faults | "
                      "coverage |", "| --- | --- | --- | --- | --- | --- |"] + lines +
                     ["", "totals: " + coverage.line(totals),
                      "coverage: " + ("every counter non-zero" if not z
                                      else "ZERO (not a pass): " + ", ".join(z))])
    print("\n" + text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    if z and status == 0:
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
