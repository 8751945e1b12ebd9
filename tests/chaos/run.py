#!/usr/bin/python3
"""run: one chaos run -- network, cluster, workload, nemesis, final checks.

Design
------
    1. Refuse to start if an earlier run left anything (zc-* namespaces, zc
       links, zcchaos tables: `--cleanup` removes them) or another run holds
       the lock (/run/zcchaos.lock).  Draw the seed (or take --seed), print
       it, build the schedule (nemesis.py) and write it to RUNDIR.
    2. net.py: zc-net with the bridge, one namespace per daemon, zc-cli for
       the clients, zc-ctl for the harness's STATUS probes.  cluster.py:
       stock, 3 replicas, cart nodes, each in its namespace; wait until the
       cluster serves.
    3. For --duration seconds: the workload (workload.py) and the nemesis
       thread run; the main thread watches for daemons that die on their
       own (a crash: recorded, reported, and the daemon restarted, as a
       supervisor would).
    4. The end: stop the nemesis (it heals the fault in progress), heal_all
       (nothing paused, dead or partitioned is left), let the clients finish
       their commands in flight (shells stay open, keeping their sessions'
       leases), record {"process": "final", "type": "healed"}; wait until
       every replica converges (same applied index and digest, no cart
       draining, no breaker open); post-heal probes (fresh sessions: add,
       add, list, close; process "final"); converge again; record every
       replica's STATUS; close the shells; wait once more for quiet (their
       sessions expire within a lease) and record {"process": "final",
       "type": "service"} (quiet or not, the leader's breakers: checker
       I7); stop every daemon with SIGTERM;
       dump every replica's state and every cart node's slots (the
       --dump-state options); record {"process": "final", "type": "dump"}.
    5. If tests/chaos/checker.py exists, run it on the history and write
       RUNDIR/verdict.json.  Print the summary (seed, faults, operations,
       anomalies, verdict) and write RUNDIR/summary.json, then the page
       RUNDIR/report.html with its plots (report.py, gnuplot).

Whatever happens -- an exception, SIGINT, SIGTERM, SIGHUP -- the finally
block kills the shells and the daemons and deletes every namespace (and
with it every link and nft table), then checks that nothing is left.

Exit status: 0 valid; 1 invalid (the checker says so, or the harness saw a
daemon crash, replicas that did not converge after the heal, failing
post-heal probes, or replicas whose dumps disagree at one applied index);
2 harness error (set-up failed, leftovers, interrupted, the checker
crashed).

Only the Python standard library; needs root (namespaces, nft).
"""

import argparse
import datetime
import fcntl
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import cluster as clustermod  # noqa: E402
import coverage as coveragemod  # noqa: E402
import disk as diskmod  # noqa: E402
import nemesis as nemesismod  # noqa: E402
import net as netmod  # noqa: E402
import workload as workloadmod  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
LOCK = "/run/zcchaos.lock"
CHECKER = os.path.join(HERE, "checker.py")
PYTHON = "/usr/bin/python3"
DISK_SIZE = "256m"  # each data tmpfs when disk-full is in the mix (disk.py)


class Interrupted(Exception):
    pass


def say(msg):
    print("chaos: " + msg, flush=True)


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="tests/chaos/run.py",
        description="A Jepsen-style chaos run against a 3-replica zcart cluster in network "
                    "namespaces (docs/chaos.md).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="nemeses: mixed, or a comma list of: " + ", ".join(nemesismod.KINDS) + """

exit status: 0 valid, 1 invalid, 2 harness error.

examples:
  tests/chaos/run.py                                 # 5 minutes, mixed, random seed
  tests/chaos/run.py --duration 90 --interval 4      # what make chaos-smoke runs
  tests/chaos/run.py --seed 1234 --nemeses partition-leader,kill-leader
  tests/chaos/run.py --seed 1234 --print-schedule    # the schedule that seed gives
  tests/chaos/run.py --cleanup                       # remove leftovers of a crashed run""")
    p.add_argument("--duration", type=float, default=300.0, metavar="S",
                   help="seconds of workload and faults (default 300)")
    p.add_argument("--seed", type=int, default=None, metavar="N",
                   help="drives the schedule and the clients' choices (default: random, printed)")
    p.add_argument("--nemeses", default="mixed", metavar="LIST",
                   help="mixed (default) or a comma list of fault kinds")
    p.add_argument("--interval", type=float, default=10.0, metavar="S",
                   help="quiet seconds between two faults (default 10)")
    p.add_argument("--fault-duration", default="4:12", metavar="MIN:MAX",
                   help="each fault lasts MIN..MAX seconds (default 4:12)")
    p.add_argument("--clients", type=int, default=10, metavar="N",
                   help="concurrent client sessions (default 10)")
    p.add_argument("--rate", type=float, default=2.0, metavar="OPS",
                   help="mean operations per second per client (default 2)")
    p.add_argument("--cart-nodes", type=int, default=2, metavar="N", help="cart nodes (default 2)")
    p.add_argument("--replicas", type=int, default=3, metavar="N", choices=(3, 5),
                   help="broker replicas, 3 or 5 (default 3)")
    p.add_argument("--overlap", type=float, default=0.0, metavar="P",
                   help="probability that a fault gets a companion fault at the same time "
                        "(two at once; default 0)")
    p.add_argument("--slots", type=int, default=8, metavar="N",
                   help="carts per cart node (default 8)")
    p.add_argument("--dir", default=None, metavar="RUNDIR",
                   help="run directory (default tests/chaos/runs/<timestamp>-<seed>)")
    p.add_argument("--bin", default=None, metavar="DIR",
                   help="zcart binaries (default $ZCART_BIN or build/bin)")
    p.add_argument("--keep", action="store_true",
                   help="keep the daemons' data directories even after a valid run")
    p.add_argument("--converge-timeout", type=float, default=60.0, metavar="S",
                   help="seconds to wait for the replicas to converge after the heal (default 60)")
    p.add_argument("--print-schedule", action="store_true",
                   help="print the schedule the seed and options give, and exit")
    p.add_argument("--cleanup", action="store_true",
                   help="remove leftovers of an earlier run (zc-* namespaces, zc links, "
                        "zcchaos tables) and exit")
    a = p.parse_args(argv)
    try:
        lo, hi = (float(x) for x in a.fault_duration.split(":"))
        if not 0 < lo <= hi:
            raise ValueError
        a.fault_min, a.fault_max = lo, hi
    except ValueError:
        p.error("--fault-duration wants MIN:MAX seconds, 0 < MIN <= MAX")
    try:
        a.kinds, a.mixed = nemesismod.parse_kinds(a.nemeses)
    except ValueError as e:
        p.error(str(e))
    if a.clients < 1 or a.rate <= 0 or a.duration <= 0 or a.interval < 0:
        p.error("--clients, --rate and --duration must be positive, --interval not negative")
    return a


def schedule_for(a, cart_names, stock_names):
    return nemesismod.make_schedule(a.seed, a.kinds, a.duration, a.interval, a.fault_min,
                                    a.fault_max, list(range(1, a.replicas + 1)), cart_names,
                                    stock_names, overlap=a.overlap)


def do_cleanup():
    if os.path.exists(LOCK):
        with open(LOCK, "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                say("a chaos run is in progress (it holds %s): not cleaning up under it" % LOCK)
                return 2
            os.unlink(LOCK)
    left = netmod.leftovers() + diskmod.leftovers()
    if not left:
        say("nothing to clean up")
        return 0
    say("removing: " + "; ".join(left))
    diskmod.cleanup(log=lambda m: say(m))
    still = netmod.cleanup_leftovers(log=lambda m: say(m))
    if still:
        say("still left: " + "; ".join(still))
        return 2
    say("clean")
    return 0


def _raise_interrupt(signum, frame):
    raise Interrupted("signal %d" % signum)


def run_checker(rundir, history_path):
    """Run `checker.py HISTORY --out RUNDIR/verdict.json` (exit 0 valid, 1
    invalid, 2 malformed history); (verdict dict or None, error or None)."""
    if not os.path.exists(CHECKER):
        return None, None
    out = os.path.join(rundir, "verdict.json")
    try:
        r = subprocess.run([PYTHON, CHECKER, history_path, "--out", out], capture_output=True,
                           text=True, timeout=900, stdin=subprocess.DEVNULL, cwd=HERE)
    except subprocess.TimeoutExpired:
        return None, "checker timed out"
    with open(os.path.join(rundir, "checker.log"), "w") as f:
        f.write(r.stdout + r.stderr)
    verdict = None
    try:
        with open(out) as f:
            verdict = json.load(f)
    except (OSError, ValueError):
        try:
            verdict = json.loads(r.stdout)
        except ValueError:
            pass
    if r.returncode not in (0, 1):
        return verdict, "checker exit %d: %s" % (r.returncode, (r.stderr or r.stdout)[-2000:])
    if not isinstance(verdict, dict):
        verdict = {"valid": r.returncode == 0, "output": r.stdout[-4000:]}
        with open(out, "w") as f:
            json.dump(verdict, f, indent=2)
    verdict.setdefault("valid", r.returncode == 0)
    return verdict, None


def main(argv):
    a = parse_args(argv)
    if a.cleanup:
        return do_cleanup()
    if a.seed is None:
        a.seed = random.SystemRandom().randrange(1, 2 ** 31)
    carts = ["cart%d" % k for k in range(1, a.cart_nodes + 1)]
    stocks = ["stock1"]
    sched = schedule_for(a, carts, stocks)
    if a.print_schedule:
        print("seed %d: %d faults" % (a.seed, len(sched)))
        for f in sched:
            print("  " + f.describe())
        return 0
    if os.geteuid() != 0:
        say("needs root (network namespaces, nft)")
        return 2

    lockf = open(LOCK, "a+")
    try:
        fcntl.flock(lockf, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        say("another chaos run holds %s" % LOCK)
        return 2
    left = netmod.leftovers() + diskmod.leftovers()
    if left:
        say("an earlier run left: %s\n       remove them with: tests/chaos/run.py --cleanup"
            % "; ".join(left))
        return 2

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    rundir = os.path.abspath(a.dir or os.path.join(HERE, "runs", "%s-%d" % (stamp, a.seed)))
    if os.path.exists(rundir) and os.listdir(rundir):
        say("%s exists and is not empty" % rundir)
        return 2
    os.makedirs(rundir, exist_ok=True)
    say("seed %d  (reproduce the schedule: tests/chaos/run.py --seed %d --nemeses %s "
        "--duration %g --interval %g --fault-duration %s%s%s)"
        % (a.seed, a.seed, a.nemeses, a.duration, a.interval, a.fault_duration,
           " --overlap %g" % a.overlap if a.overlap else "",
           " --replicas %d" % a.replicas if a.replicas != 3 else ""))
    say("run directory %s" % rundir)
    say("schedule: %d faults" % len(sched))
    for f in sched:
        print("         " + f.describe(), flush=True)
    with open(os.path.join(rundir, "schedule.json"), "w") as fh:
        json.dump({"seed": a.seed, "options": {k: v for k, v in vars(a).items()
                                               if k not in ("kinds",)},
                   "faults": [f.to_json() for f in sched]}, fh, indent=2)

    net = netmod.Net(log=say)
    cl = None
    wl = None
    nem = None
    history = None
    nemlog = open(os.path.join(rundir, "nemesis.log"), "a")
    summary = {"seed": a.seed, "rundir": rundir, "anomalies": [], "warnings": [],
               "options": {"duration": a.duration, "nemeses": a.nemeses, "interval": a.interval,
                           "fault_duration": a.fault_duration, "clients": a.clients,
                           "rate": a.rate, "replicas": a.replicas, "overlap": a.overlap}}
    status = 2
    t_start = time.monotonic()
    old = {s: signal.signal(s, _raise_interrupt)
           for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        hosts = clustermod.Cluster.hosts_for(a.replicas, a.cart_nodes, len(stocks))
        net.up(hosts)
        say("network up: %s" % ", ".join("%s=%s" % (h.ns, h.addr) for h in net.hosts.values()))
        cl = clustermod.Cluster(net, rundir, bin_dir=a.bin, replicas=a.replicas,
                                cart_nodes=a.cart_nodes,
                                slots=a.slots, stock=len(stocks),
                                disk_size=DISK_SIZE if "disk-full" in a.kinds else None,
                                log=say)
        cl.build()
        cl.start_all(wait=30)
        say("cluster up: leader broker%s, %d carts" % (cl.leader(), a.cart_nodes * a.slots))
        history_path = os.path.join(rundir, "history.jsonl")
        history = workloadmod.open_history(history_path)
        say("history %s (writer: %s)" % (history_path, workloadmod.history_writer_name()))
        zcart = os.path.join(cl.bin, "zcart")
        prefix = net.exec_prefix("clients")
        wl = workloadmod.Workload(history, prefix, zcart, cl.brokers,
                                  os.path.join(rundir, "clients"), n=a.clients, rate=a.rate,
                                  seed=a.seed, log=say)
        t0 = time.monotonic()
        nem = nemesismod.Nemesis(cl, net, history, sched, t0, nemlog, echo=say)
        wl.start()
        nem.start()
        say("workload: %d clients at %.1f ops/s each; faults for %.0f s"
            % (a.clients, a.rate, a.duration))

        # -- the run --
        next_note = t0 + 30
        while time.monotonic() < t0 + a.duration:
            time.sleep(0.5)
            with cl.lock:
                crashed = cl.unexpected_exits()
            for name, rc in crashed:
                summary["anomalies"].append("%s exited on its own (status %s) at T+%.1fs"
                                            % (name, rc, time.monotonic() - t0))
                nem.log("ANOMALY: %s exited on its own (status %s); restarting it" % (name, rc))
                cl.restart(name)
            if time.monotonic() >= next_note:
                next_note += 30
                s = wl.summary()["completions"]
                say("T+%.0fs: %s" % (time.monotonic() - t0,
                                     ", ".join("%s %d" % kv for kv in sorted(s.items()))))

        # -- the end --
        say("duration over: stopping the nemesis and healing")
        nem.stop()
        heal_actions = nemesismod.heal_all(cl, net, nem.log)
        stuck = wl.stop()
        if stuck:
            summary["anomalies"].append("clients %s still busy after the stop" % stuck)
        with cl.lock:
            for name, rc in cl.unexpected_exits():
                summary["anomalies"].append("%s exited on its own (status %s)" % (name, rc))
                cl.restart(name)
        history.append({"t": time.time(), "process": "final", "type": "healed",
                        "value": {"actions": heal_actions}})
        nem.log("healed: %s" % (", ".join(heal_actions) or "nothing left to heal"))
        t_heal = time.monotonic()
        # Service first: one ready leader and every replica at its applied
        # index and digest; then the probes (I7 times them from the heal).
        # Quiet (nothing draining, every breaker closed) is waited for only
        # before the dumps: a breaker still half-open on an idle cart does
        # not stop service, and must not delay the probes past I7's bound.
        ok, what = cl.wait_converged(a.converge_timeout, quiet=False)
        if not ok:
            summary["anomalies"].append("replicas did not converge within %.0f s of the "
                                        "heal: %s" % (a.converge_timeout, what))
        summary["converge_s"] = round(time.monotonic() - t_heal, 1)
        say("converged after %.1f s" % summary["converge_s"] if ok else
            "NOT converged: %s" % what)
        p_ok, p_total = workloadmod.probe(history, prefix, zcart, cl.brokers,
                                          os.path.join(rundir, "clients"), log=say)
        summary["probes"] = {"ok": p_ok, "total": p_total}
        if p_ok != p_total or p_total == 0:
            summary["anomalies"].append("post-heal probes: %d of %d ok" % (p_ok, p_total))
        say("post-heal probes: %d of %d ok" % (p_ok, p_total))
        ok2, reps = cl.wait_converged(a.converge_timeout if ok else 30, quiet=True)
        if not ok2:
            ok3, reps3 = cl.wait_converged(5, quiet=False)
            if ok3:
                summary["warnings"].append("converged but not quiet after %.0f s: %s"
                                           % (a.converge_timeout, reps))
                reps = reps3
            else:
                if ok:  # (else already reported above)
                    summary["anomalies"].append("replicas did not converge after the probes: "
                                                "%s" % reps3)
                reps = (cl.status() or {}).get("replicas") or []
        final_status = {r["id"]: r for r in reps}
        wl.close()
        # Every cart back in service (issue 11): with the clients gone their
        # sessions end within a lease; then no cart of a live node may stay
        # draining or keep a breaker that is not CLOSED (a free cart with one
        # is never assigned).  The checker decides from this record (I7).
        ok3, what3 = cl.wait_converged(a.converge_timeout, quiet=True)
        st3 = cl.status() or {}
        history.append({"t": time.time(), "process": "final", "type": "service", "value": {
            "quiet": ok3, "after_heal_s": round(time.monotonic() - t_heal, 1),
            "why": None if ok3 else str(what3), "breakers": st3.get("breakers") or []}})
        say("service: %s" % ("every cart in service" if ok3 else "not quiet: %s" % what3))
        with cl.lock:
            for name, rc in cl.unexpected_exits():  # a crash during the final phase
                summary["anomalies"].append("%s exited on its own (status %s) after the heal"
                                            % (name, rc))
        bad = cl.stop_all(timeout=15)
        if bad:
            summary["anomalies"].append("did not stop cleanly on SIGTERM: %s" % ", ".join(bad))
        dumps, cart_dumps, errs = cl.dumps()
        summary["anomalies"] += errs
        history.append({"t": time.time(), "process": "final", "type": "dump", "value": {
            "replicas": [{"id": r, "status": final_status.get(r), "state": dumps.get(r)}
                         for r in cl.replica_ids()],
            "carts": cart_dumps}})
        # Harness-level consistency: replicas at one applied index agree.
        by_index = {}
        for r, d in dumps.items():
            by_index.setdefault(d.get("applied_index"), set()).add(d.get("digest"))
        for idx, digests in by_index.items():
            if len(digests) > 1:
                summary["anomalies"].append("replicas at applied index %s have different "
                                            "digests %s" % (idx, sorted(digests)))
        for r, d in dumps.items():
            st = final_status.get(r) or {}
            if (st.get("applied_index"), st.get("digest")) != (d.get("applied_index"),
                                                               d.get("digest")):
                summary["warnings"].append(
                    "broker%d: dump %s/%s differs from its last status %s/%s (a change "
                    "between the status and the stop)" % (r, d.get("applied_index"),
                                                          d.get("digest"),
                                                          st.get("applied_index"),
                                                          st.get("digest")))
        summary["dump_digests"] = {r: "%s@%s" % (d.get("digest"), d.get("applied_index"))
                                   for r, d in dumps.items()}
        errors = nem.errors + wl.errors()
        summary["faults"] = {}
        summary["fault_list"] = ["%s%s" % (f.kind, " (with #%d)" % f.n if f.companion is None and
                                           any(g.companion is f for g, _ in nem.done) else "")
                                 for f, _ in nem.done]
        for f, _ in nem.done:
            summary["faults"][f.kind] = summary["faults"].get(f.kind, 0) + 1
        summary["faults_total"] = len(nem.done)
        summary["storage_exits"] = ["%s exited %d on its full disk" % (name, rc)
                                    for _, name, rc in cl.tolerated]
        summary["skipped"] = ["%s: %s" % (f.kind, why) for f, why in nem.skipped]
        summary["workload"] = wl.summary()
        history.close() if hasattr(history, "close") else None
        summary["coverage"] = coveragemod.gather(rundir)
        verdict, cerr = run_checker(rundir, history_path)
        if cerr:
            errors.append(cerr)
        summary["verdict"] = verdict
        summary["harness_errors"] = errors
        if errors:
            status = 2
        elif summary["anomalies"] or (verdict is not None and not verdict.get("valid")):
            status = 1
        else:
            status = 0
    except Interrupted as e:
        say("interrupted (%s): tearing down" % e)
        summary["harness_errors"] = ["interrupted: %s" % e]
        status = 2
    except Exception as e:  # noqa: BLE001 -- a harness error: reported, then torn down
        traceback.print_exc()
        summary["harness_errors"] = ["%s: %s" % (type(e).__name__, e)]
        if cl is not None:
            for d in cl.daemons.values():
                try:
                    with open(d.log_path, "rb") as fh:
                        tail = fh.read().decode(errors="replace").splitlines()[-15:]
                    print("----- %s -----\n%s" % (d.log_path, "\n".join(tail)), file=sys.stderr)
                except OSError:
                    pass
        status = 2
    finally:
        for s in old:
            signal.signal(s, signal.SIG_IGN)
        if nem is not None:
            nem.stopping.set()
            nem.join(15)  # it may be restarting a daemon: let it finish first
        if wl is not None:
            wl.kill()
        if cl is not None:
            cl.kill_all()
            cl.unmount_disks()
        still = net.teardown()
        left = netmod.leftovers() + diskmod.leftovers()
        if still or left:
            say("LEFT BEHIND: %s" % "; ".join(still + left))
            status = 2
        nemlog.close()
        summary["wall_s"] = round(time.monotonic() - t_start, 1)
        summary["exit"] = status
        try:
            with open(os.path.join(rundir, "summary.json"), "w") as fh:
                json.dump(summary, fh, indent=2, default=str)
        except OSError:
            pass
        # The page (report.py): shows the run, decides nothing.
        if os.path.exists(os.path.join(rundir, "history.jsonl")):
            try:
                import report as chaos_report
                page_path, perr = chaos_report.report(rundir)
                print("chaos: report %s%s" % (page_path, " (plots: %s)" % perr if perr else ""))
            except Exception as e:  # a broken report must not hide the verdict
                print("chaos: no report: %s" % e)
        if status == 0 and not a.keep and cl is not None:
            for d in cl.daemons.values():
                shutil.rmtree(d.data, ignore_errors=True)
        print_summary(summary, status)
        for s, h in old.items():
            signal.signal(s, h)
        os.unlink(LOCK)  # still ours (flock held): the next run makes a new one
        lockf.close()
    return status


def print_summary(s, status):
    print("\n===== chaos summary =====", flush=True)
    print("seed        %s" % s.get("seed"))
    print("run dir     %s" % s.get("rundir"))
    print("wall time   %.1f s" % s.get("wall_s", 0))
    if "faults" in s:
        print("faults      %d: %s" % (s["faults_total"], ", ".join(
            "%s x%d" % kv for kv in sorted(s["faults"].items())) or "none"))
        if s.get("skipped"):
            print("skipped     %s" % "; ".join(s["skipped"]))
        if s.get("storage_exits"):
            print("storage     %s (tolerated: status 74 on a full disk)"
                  % "; ".join(s["storage_exits"]))
    w = s.get("workload")
    if w:
        print("operations  %s" % ", ".join("%s %d" % kv for kv in sorted(w["completions"].items())))
        print("by op       %s" % ", ".join("%s %d" % kv for kv in sorted(w["by_op"].items())))
        if w["not_ok_reasons"]:
            print("not ok      %s" % ", ".join("%s %d" % kv
                                                for kv in sorted(w["not_ok_reasons"].items())))
        print("shells replaced %d" % w["shell_replacements"])
    cov = s.get("coverage")
    if cov:
        print("coverage    %s" % coveragemod.line(cov))
        z = coveragemod.zeros(cov)
        if z:
            print("not exercised %s (a campaign with a zero total is not a pass)" % ", ".join(z))
    if "probes" in s:
        print("probes      %d/%d ok; converged %.1f s after the heal"
              % (s["probes"]["ok"], s["probes"]["total"], s.get("converge_s", -1)))
    if s.get("dump_digests"):
        print("dumps       %s" % ", ".join("broker%s %s" % kv
                                           for kv in sorted(s["dump_digests"].items())))
    for x in s.get("warnings", []):
        print("warning     %s" % x)
    for x in s.get("anomalies", []):
        print("ANOMALY     %s" % x)
    for x in s.get("harness_errors", []) or []:
        print("HARNESS     %s" % x)
    v = s.get("verdict")
    if v is None and not os.path.exists(CHECKER):
        print("checker     none (tests/chaos/checker.py not found): history not checked")
    elif v is None:
        print("checker     not run")
    else:
        print("checker     %s" % ("valid" if v.get("valid") else "INVALID"))
    print("result      %s (exit %d)" % ({0: "valid", 1: "INVALID", 2: "harness error"}[status],
                                        status), flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
