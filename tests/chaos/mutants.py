#!/usr/bin/python3
"""mutants: does the chaos suite catch deliberate bugs in the real daemons?

    tests/chaos/mutants.py [--mutants a,b] [--seeds 1,2] [--duration S] [--control]
                           [--out FILE] [RUN.PY OPTIONS after --]

Each mutant is one marked one-line bug in cart/ or broker/, compiled in only
with -DZCART_MUTANT=NAME (CMakeLists.txt lists them; the hooks are
`#ifdef ZCART_MUTANT_<NAME>`):

    reset_keeps_items          a cart reset leaves the items in the slot
    dedup_never_found          a retried (session, seq) never finds its stored
                               answer, so it applies again
    fencing_skipped            the cart serves any (session, generation)
    follower_serves            every replica serves clients as if it led
    stale_generation_accepted  the cart's reset fence is off by one: a request
                               of the generation just reset is adopted
    return_before_reset        the leader returns a draining cart to the free
                               list without waiting for the cart's RESET_DONE
    closed_session_renewed     a keepalive of a closed (or expired) session is
                               answered OK, as if its lease were renewed

For each mutant: configure and build build-mutant-NAME/ (the daemons and the
CLI only), then one seeded chaos run per seed (tests/chaos/run.py, with the
options below, the mutant's binaries), each in its own run directory under
tests/chaos/runs/mutants-<stamp>/NAME-SEED.  A mutant is *caught* when some
run of it ends invalid (exit 1: a checker violation or a harness anomaly);
its row names the invariants that failed.  Coverage zeros are listed too,
but they do not count as catching it (a zero also happens by chance).
--control also runs the unmutated build/ with the same seeds, which must
be valid.  The table (markdown) goes to stdout and to --out.

Exit status: 0 every mutant caught (and the control valid), 1 otherwise,
2 a build or harness error.  Needs root, like run.py; the runs take minutes.
"""

import argparse
import datetime
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import coverage  # noqa: E402

PYTHON = "/usr/bin/python3"
# Faults that drive the recovery paths the mutants break: retries of applied
# requests (delayed replies, stalled carts, stalled stock), leader changes and
# a minority that can still reach clients; a third of them with a companion.
DEFAULT_RUN_ARGS = ["--duration", "60", "--interval", "3", "--fault-duration", "3:6",
                    "--overlap", "0.3", "--converge-timeout", "40", "--nemeses",
                    "delay-cart-replies,delay-client-replies,cart-stall,stock-pause,kill-leader,"
                    "partition-halves,cut-clients-from-leader,cart-pause,stale-requests,"
                    "stale-fence,reset-lost,stale-reset"]


def mutant_names():
    """The ZCART_MUTANTS list of CMakeLists.txt."""
    with open(os.path.join(REPO, "CMakeLists.txt")) as f:
        text = f.read()
    m = re.search(r"set\(ZCART_MUTANTS([^)]*)\)", text)
    return m.group(1).split() if m else []


def build(name):
    """Configure and build build-mutant-NAME; its bin dir, or raise."""
    d = os.path.join(REPO, "build-mutant-" + name)
    subprocess.run(["cmake", "-S", REPO, "-B", d, "-DZCART_MUTANT=" + name,
                    "-DCMAKE_BUILD_TYPE=RelWithDebInfo"], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", d, "-j2", "--target", "zcart-broker", "zcart-cart",
                    "zcart-stock", "zcart-cli"], check=True, stdout=subprocess.DEVNULL)
    return os.path.join(d, "bin")


def one_run(bin_dir, seed, rundir, run_args):
    """(exit status, failed invariant keys, coverage counts, summary line)."""
    argv = [PYTHON, os.path.join(HERE, "run.py"), "--bin", bin_dir, "--seed", str(seed),
            "--dir", rundir] + run_args
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    with open(rundir + ".out", "w") as f:
        f.write(r.stdout + r.stderr)
    failed, anomalies = [], []
    try:
        with open(os.path.join(rundir, "summary.json")) as f:
            s = json.load(f)
        v = s.get("verdict") or {}
        failed = sorted(k for k, inv in (v.get("invariants") or {}).items() if not inv.get("ok"))
        anomalies = s.get("anomalies") or []
        cov = s.get("coverage") or coverage.gather(rundir)
        ops = (s.get("workload") or {}).get("completions") or {}
    except (OSError, ValueError):
        cov, ops = {}, {}
    return r.returncode, failed, anomalies, cov, sum(ops.values())


def main(argv):
    p = argparse.ArgumentParser(prog="tests/chaos/mutants.py",
                                description="Build each daemon mutant and run seeded chaos "
                                            "runs against it; a table of caught / not caught.")
    p.add_argument("--mutants", default="", help="comma list (default: every one)")
    p.add_argument("--seeds", default="1,2", help="comma list of seeds (default 1,2)")
    p.add_argument("--control", action="store_true",
                   help="also run the unmutated build/bin with the same seeds")
    p.add_argument("--out", default=None, help="also write the table here")
    p.add_argument("run_args", nargs="*", help="run.py options (after --); default: "
                   + " ".join(DEFAULT_RUN_ARGS))
    a = p.parse_args(argv)
    names = [m for m in a.mutants.split(",") if m] or mutant_names()
    unknown = [m for m in names if m not in mutant_names()]
    if unknown:
        p.error("unknown mutant(s) %s; known: %s" % (", ".join(unknown),
                                                     ", ".join(mutant_names())))
    seeds = [int(x) for x in a.seeds.split(",") if x]
    run_args = a.run_args or DEFAULT_RUN_ARGS
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    top = os.path.join(HERE, "runs", "mutants-" + stamp)
    os.makedirs(top, exist_ok=True)
    rows, status = [], 0
    subjects = ([("control (no mutant)", os.path.join(REPO, "build", "bin"))]
                if a.control else []) + [(m, None) for m in names]
    for name, bin_dir in subjects:
        if bin_dir is None:
            print("mutants: building %s" % name, flush=True)
            try:
                bin_dir = build(name)
            except subprocess.CalledProcessError as e:
                rows.append((name, "build failed: %s" % e, "", "", ""))
                status = 2
                continue
        results = []
        for seed in seeds:
            tag = re.sub(r"[^a-z_]", "", name.split()[0])
            rundir = os.path.join(top, "%s-%d" % (tag, seed))
            print("mutants: %s seed %d ..." % (name, seed), flush=True)
            rc, failed, anomalies, cov, ops = one_run(bin_dir, seed, rundir, run_args)
            print("mutants: %s seed %d: exit %d %s%s" % (name, seed, rc, ",".join(failed),
                                                         " anomalies: %s" % anomalies
                                                         if anomalies else ""), flush=True)
            results.append((seed, rc, failed, anomalies, cov, ops))
        control = name.startswith("control")
        caught = [r for r in results if r[1] == 1]
        errors = [r for r in results if r[1] not in (0, 1)]
        if errors:
            status = max(status, 2)
        if control:
            verdict = "valid (as it must be)" if not caught and not errors else "INVALID"
            if caught:
                status = max(status, 1)
        else:
            verdict = "**caught**" if caught else "not caught"
            if not caught:
                status = max(status, 1)
        per_run = "; ".join("seed %d: %s%s, %d ops" % (
            seed, {0: "valid", 1: "INVALID", 2: "harness error"}.get(rc, "exit %d" % rc),
            " (%s)" % ", ".join(failed + (["anomaly"] if anomalies else [])) if rc == 1 else "",
            ops) for seed, rc, failed, anomalies, cov, ops in results)
        zeros = sorted(set(z for r in results for z in coverage.zeros(r[4])))
        rows.append((name, verdict, per_run, ", ".join(zeros) or "none",
                     " ".join("%s=%d" % (n, sum((r[4].get(n) or 0) for r in results))
                              for n in ("dedup_replays", "fence_refusals", "reset_fences", "stale_resets"))))
    table = ["| mutant | verdict | runs (seed: verdict, invariants) | coverage zeros | "
             "replays / fences / reset fences / stale resets |", "| --- | --- | --- | --- | --- |"]
    table += ["| %s |" % " | ".join(r) for r in rows]
    text = "\n".join(table)
    print("\nrun options: %s; seeds %s; run dirs under %s\n" % (" ".join(run_args), seeds, top))
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
