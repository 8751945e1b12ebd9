#!/usr/bin/python3
"""bench/scale.py: zcart at scale -- 100k carts, 1M sessions (make bench-scale).

A benchmark, not a test: it measures and prints, and asserts nothing about
speed; bench/README.md holds the figures and the targets of issue 13.  It
runs, in one invocation, on local 3-replica clusters (secure unless
--insecure) on the same machine:

  A. a small cluster, --small-nodes x --small-slots carts (default: as many
     nodes as the big cluster, 1000 carts in all -- 10 x 100 -- so that the
     number of carts is what differs, not the number of processes sharing
     the machine: bench/README.md run 7 measures both): the new-session
     rate (`zcart-bench -w assign`), the routed-op rate (`-w ops`) and
     STATUS latency there; then it is taken down;
  B. the big cluster, --nodes x --slots carts (default 10 x 10000 = 100k;
     a cart node hosts at most 16384 slots and a replica accepts at most 256
     node names): time until every cart is registered; on it, fresh, the
     same three figures;
  C. --sessions sessions (default 1M) opened, used (one add) and closed by
     `zcart-bench -w assign -c --clients` in rounds of --round seconds,
     until that many closes were answered OK.  Meanwhile a thread polls
     every replica's STATUS each second: the loop stalls
     (loop_stall_recent_max_us, lib/stallwatch.h: a reader polling every
     5 s sees every stall), the snapshots built (snapshots,
     snapshot_build_max_us) and each replica's RSS (/proc/PID/status);
  D. after those sessions: new-session rate, routed-op rate, STATUS p50
     again, RSS (VmRSS, RssAnon, VmHWM) and the state's counters;
  E. kill -9 of the leader: time until a new ready leader answers STATUS
     (polled every 5 ms); the killed replica restarted: time until it
     answers at the leader's applied index and digest ("ready again");
  F. a follower killed, its data directory wiped, restarted: time until it
     holds the leader's applied index and digest, caught up by snapshot
     install (its log says "restore: state replaced by snapshot").

Ratios are between runs of the same zcart-bench parameters in this
invocation: new sessions at 100k carts / at 1k carts; routed ops after the
sessions / on the fresh big cluster.  "loop stall during snapshots" is the
largest loop_stall_recent_max_us seen in a poll whose replica built a
snapshot since the previous poll (that window covers the build).  The
machine's load average and the commit are printed with the results; the
cluster is taken down on exit (Ctrl-C and SIGTERM included) unless --keep.

    bench/scale.py [--nodes 10] [--slots 10000] [--sessions 1000000]
                   [--small-nodes N] [--small-slots 1000/N] [--clients 32]
                   [--measure 15] [--round 60] [--session-time S] [--base-port 9700]
                   [--bin build/bin] [--insecure] [--broker-arg=ARG ...]
                   [--dir DIR] [--keep] [--json FILE]

Small first: bench/scale.py --nodes 4 --slots 100 --sessions 5000 --measure 5
"""

import argparse
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import failover  # noqa: E402  (Poller, load_env: the STATUS prober of the drills)
import zcdaemon  # noqa: E402  (deploy/local, on the path failover puts it)

CLUSTER = os.path.join(ROOT, "deploy", "local", "zcart-cluster")


Stop = failover.Stop  # SIGTERM as an exception, so that finally blocks run
_on_term = failover._on_term


def log(msg):
    print("scale: %s" % msg, file=sys.stderr, flush=True)


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="bench/scale.py",
        description="zcart at scale on local 3-replica clusters: RSS, restart and catch-up "
                    "times, STATUS latency, new-session and routed-op rates at 1k vs many carts "
                    "and before vs after many sessions, loop stalls during snapshots.")
    ap.add_argument("--nodes", type=int, default=10, help="cart nodes of the big cluster (10)")
    ap.add_argument("--slots", type=int, default=10000, help="slots per node (10000; max 16384)")
    ap.add_argument("--sessions", type=int, default=1000000,
                    help="sessions to open and close on the big cluster (1000000)")
    ap.add_argument("--small-nodes", type=int, default=None,
                    help="cart nodes of the small cluster (default --nodes)")
    ap.add_argument("--small-slots", type=int, default=None,
                    help="its slots per node (default 1000 / --small-nodes: 1000 carts)")
    ap.add_argument("--clients", type=int, default=32, help="zcart-bench -c (32)")
    ap.add_argument("--measure", type=int, default=15, metavar="S",
                    help="seconds of each rate measurement (15)")
    ap.add_argument("--round", type=int, default=60, metavar="S",
                    help="seconds of each session round of phase C (60)")
    ap.add_argument("--session-time", type=float, default=0, metavar="S",
                    help="stop phase C after S seconds even short of --sessions (0: no limit); "
                         "the results say how many ran")
    ap.add_argument("--status-samples", type=int, default=200,
                    help="STATUS requests timed for the p50 (200)")
    ap.add_argument("--base-port", type=int, default=9700,
                    help="zcart-cluster --base-port (9700; the small cluster uses +100)")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--insecure", action="store_true", help="clusters without CurveZMQ")
    ap.add_argument("--broker-arg", action="append", default=[], metavar="ARG",
                    help="passed to zcart-cluster --broker-arg (repeatable)")
    ap.add_argument("--up-wait", type=float, default=900, metavar="S",
                    help="zcart-cluster up --wait for the big cluster (900)")
    ap.add_argument("--dir", help="work directory (default a temporary one, removed)")
    ap.add_argument("--keep", action="store_true", help="leave the clusters' data")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    a = ap.parse_args(argv)
    if a.small_nodes is None:
        a.small_nodes = a.nodes
    if a.small_slots is None:
        a.small_slots = max(1, 1000 // a.small_nodes)
    if not 1 <= a.slots <= 16384 or not 1 <= a.small_slots <= 16384:
        ap.error("--slots: 1..16384")
    if not 1 <= a.nodes <= 256:
        ap.error("--nodes: 1..256")
    return a


# --- clusters ----------------------------------------------------------------------------

class Cluster:
    def __init__(self, a, name, nodes, slots, base_port):
        self.a = a
        self.dir = os.path.join(a.work, name)
        self.nodes, self.slots, self.base = nodes, slots, base_port
        self.brokers = ["tcp://127.0.0.1:%d" % (base_port + 20 + i) for i in (1, 2, 3)]
        self.up_s = None

    def run(self, *args, check=True):
        argv = [CLUSTER] + list(args) + ["--dir", self.dir]
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if check and r.returncode != 0:
            raise RuntimeError("%s: exit %d\n%s%s" % (" ".join(argv[1:]), r.returncode,
                                                       r.stdout, r.stderr[-4000:]))
        return r

    def up(self, wait):
        args = ["up", "--fresh", "--replicas", "3", "--cart-nodes", str(self.nodes),
                "--slots", str(self.slots), "--base-port", str(self.base), "--bin", self.a.bin,
                "--catalog", self.a.catalog, "--wait", str(wait)]
        if self.a.insecure:
            args.append("--insecure")
        args += ["--broker-arg=%s" % x for x in self.a.broker_arg]
        t0 = time.monotonic()
        self.run(*args)
        self.up_s = time.monotonic() - t0
        for k in ("ZCART_INSECURE", "ZCART_SERVER_KEY", "ZCART_CERT", "ZCART_KEYS"):
            os.environ.pop(k, None)
        failover.load_env(self.dir)
        self.poller = failover.Poller(self.a.ctx, self.brokers)

    def down(self):
        if getattr(self, "poller", None):
            self.poller.close()
            self.poller = None
        self.run("down", check=False)

    def pid(self, name):
        try:
            with open(os.path.join(self.dir, name, "pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def statuses(self, wait_ms=1000):
        """{endpoint: props} of the replicas that answered within wait_ms."""
        corrs = self.poller.send_all()
        out, deadline = {}, time.monotonic() + wait_ms / 1000.0
        while len(out) < len(corrs) and time.monotonic() < deadline:
            left = max(1, int((deadline - time.monotonic()) * 1000))
            for ep, props, _ in self.poller.replies(left, corrs):
                out[ep] = props
        return out

    def leader(self, timeout=10.0):
        return self.poller.ready_leader(timeout)

    def name_of(self, props):
        return "broker%d" % props["id"]

    def converged(self, timeout):
        """The statuses once all three answer at one applied index and digest with a ready
        leader; None at the deadline."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.statuses(500)
            if zcdaemon.disagreement(list(st.values()), 3) is None:
                return st
            time.sleep(0.25)
        return None


def proc_mem(pid):
    """{VmRSS, RssAnon, RssFile, VmHWM} in MiB of pid, or {}."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                    out[k] = int(v.split()[0]) / 1024.0
    except (OSError, ValueError, TypeError):
        pass
    return out


def bench(a, c, workload, seconds, clients=None):
    argv = [os.path.join(a.bin, "zcart-bench"), "--brokers", ",".join(c.brokers), "-c",
            str(clients or a.clients), "-d", str(seconds), "-w", workload, "--json"]
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=seconds + 120)
    lines = r.stdout.strip().splitlines()
    if r.returncode != 0 or not lines:
        raise RuntimeError("zcart-bench %s: exit %d: %s" % (workload, r.returncode,
                                                            r.stderr[-2000:]))
    return json.loads(lines[-1])


def status_p50(a, c):
    """p50 and p99 (ms) of --status-samples STATUS round trips to the leader, one at a time."""
    ld = c.leader()
    if ld is None:
        return None
    ep = ld["endpoint"]
    times = []
    for _ in range(a.status_samples):
        t0 = time.perf_counter()
        corrs = c.poller.send_all([ep])
        got = False
        while not got and time.perf_counter() - t0 < 5:
            got = bool(c.poller.replies(1000, corrs))
        if got:
            times.append((time.perf_counter() - t0) * 1000.0)
    times.sort()
    if not times:
        return None
    return {"p50_ms": times[len(times) // 2], "p99_ms": times[min(len(times) - 1,
                                                                  len(times) * 99 // 100)],
            "n": len(times)}


def rates(a, c, tag):
    """New-session rate, routed-op rate and STATUS latency on c, now."""
    asg = bench(a, c, "assign", a.measure)
    ops = bench(a, c, "ops", a.measure)
    st = status_p50(a, c)
    r = {"sessions_per_s": asg.get("cycles_per_s", 0.0),
         "assign_outcomes": asg["outcomes"],
         "ops_per_s": ops["ops_per_s"], "ops_outcomes": ops["outcomes"],
         "ops_add_p50_us": ops["ops"].get("add", {}).get("p50_us"),
         "status": st}
    log("%s: %.0f new sessions/s, %.0f routed ops/s, STATUS p50 %s ms"
        % (tag, r["sessions_per_s"], r["ops_per_s"],
           "%.2f" % st["p50_ms"] if st else "?"))
    return r, asg["ops"].get("close", {}).get("ok", 0)


# --- phase C: the sessions, and a watcher ---------------------------------------------------

class Watch(threading.Thread):
    """Polls every replica's STATUS and memory each second (its own DEALERs)."""

    def __init__(self, a, c):
        super().__init__(daemon=True)
        self.a, self.c = a, c
        self.stop_ev = threading.Event()
        self.samples = []          # (t, {name: props})
        self.rss_max = {}          # name -> max VmRSS MiB seen
        self.stall_snap_max = 0    # max recent stall in a window with a snapshot build
        self.stall_max = 0         # max recent stall in any window
        self.snap_windows = 0
        self.error = None

    def run(self):
        try:
            poller = failover.Poller(self.a.ctx, self.c.brokers)
            last_snaps = {}
            while not self.stop_ev.wait(1.0):
                corrs = poller.send_all()
                st, deadline = {}, time.monotonic() + 1.0
                while len(st) < len(corrs) and time.monotonic() < deadline:
                    for ep, props, _ in poller.replies(200, corrs):
                        st["broker%d" % props["id"]] = props
                for name, props in st.items():
                    stall = props.get("loop_stall_recent_max_us", 0)
                    self.stall_max = max(self.stall_max, stall)
                    snaps = props.get("snapshots", 0)
                    if name in last_snaps and snaps > last_snaps[name]:
                        self.snap_windows += 1
                        self.stall_snap_max = max(self.stall_snap_max, stall)
                    last_snaps[name] = snaps
                for i in (1, 2, 3):
                    name = "broker%d" % i
                    pid = self.c.pid(name)
                    m = proc_mem(pid) if pid else {}
                    if "VmRSS" in m:
                        self.rss_max[name] = max(self.rss_max.get(name, 0), m["VmRSS"])
                self.samples.append((time.time(), st))
            poller.close()
        except Exception as e:  # reported by the main thread
            self.error = repr(e)


def sessions_phase(a, c, already):
    done, rounds, t0 = already, [], time.monotonic()
    while done < a.sessions and not (a.session_time and time.monotonic() - t0 >= a.session_time):
        left = a.sessions - done
        # the last round: about as long as the sessions left need at the rate seen
        secs = a.round
        if rounds and rounds[-1]["rate"] > 0:
            secs = max(5, min(a.round, int(left / rounds[-1]["rate"]) + 2))
        if a.session_time:
            secs = max(5, min(secs, int(a.session_time - (time.monotonic() - t0)) + 1))
        try:
            r = bench(a, c, "assign", secs)
        except RuntimeError as e:  # e.g. exit 3: not one request answered in the round
            rounds.append({"secs": secs, "closed": 0, "rate": 0.0, "error": str(e)[:200]})
            log("sessions: a round failed: %s" % str(e)[:200])
            continue
        closed = r["ops"].get("close", {}).get("ok", 0)
        done += closed
        rounds.append({"secs": secs, "closed": closed, "rate": r.get("cycles_per_s", 0.0),
                       "outcomes": r["outcomes"]})
        log("sessions: %d / %d closed (round of %d s: %.0f sessions/s, outcomes %r)"
            % (done, a.sessions, secs, r.get("cycles_per_s", 0.0), r["outcomes"]))
    return done, rounds, time.monotonic() - t0


# --- phases E, F ------------------------------------------------------------------------------

def kill_leader_and_restart(a, c):
    ld = c.leader()
    name = c.name_of(ld)
    pid = c.pid(name)
    survivors = [ep for ep in c.brokers if ep != ld["endpoint"]]
    # Polled every 100 ms, not faster: a STATUS costs the replica a walk of the cart
    # registry (its breaker list), and polling harder would itself slow the election.
    t_kill, wall_kill = time.monotonic(), time.time()
    os.kill(pid, signal.SIGKILL)
    new = None
    sent = {}  # every STATUS sent since the kill: a late answer still counts
    while time.monotonic() - t_kill < 60 and new is None:
        t_poll = time.monotonic()
        sent.update(c.poller.send_all(survivors))
        for ep, props, _ in c.poller.replies(100, sent):
            if props.get("role") == "leader" and props.get("ready") == 1:
                new = props
        time.sleep(max(0, 0.1 - (time.monotonic() - t_poll)))
    t_leader = time.monotonic() - t_kill if new else None
    # The new leader's own log: "leader ready in term N" (wall clock, ms).
    t_leader_log = None
    if new:
        for line in open(os.path.join(c.dir, c.name_of(new), "log"), errors="replace"):
            if "leader ready in term" in line:
                t = log_time(line)
                if t is not None and t >= wall_kill - 0.001:
                    t_leader_log = t - wall_kill
                    break
    while os.path.exists("/proc/%d" % pid):
        time.sleep(0.01)
    c.run("kill", name, check=False)  # confirms it is gone, tidies the pid file
    t_start = time.monotonic()
    c.run("start", name)
    back = wait_caught_up(c, name, 300)
    t_back = time.monotonic() - t_start if back else None
    log("kill -9 leader %s: new ready leader after %s s (polled; its log: %s s); restarted, at "
        "the leader's applied index and digest after %s s"
        % (name, fmt(t_leader), fmt(t_leader_log), fmt(t_back)))
    return {"killed": name, "new_leader_s": t_leader, "new_leader_log_s": t_leader_log,
            "restart_ready_s": t_back}


def log_time(line):
    """The wall-clock time of a daemon's log line, or None."""
    try:
        return datetime.datetime.strptime(line.split(" ", 1)[0], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
    except ValueError:
        return None


def wait_caught_up(c, name, timeout):
    """Seconds-free: True once replica `name` answers with the leader's applied index and
    digest (all three converged)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = c.converged(1.0)
        if st and any(p.get("id") == int(name[len("broker"):]) for p in st.values()):
            return True
    return False


def wipe_follower(a, c):
    st = c.converged(60) or {}
    fol = [p for p in st.values() if p.get("role") == "follower"]
    if not fol:
        return {"error": "no follower"}
    name = c.name_of(fol[0])
    c.run("kill", name)
    data = os.path.join(c.dir, name, "data")
    size = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(data) for f in fs)
    shutil.rmtree(data)
    t_start, wall_start = time.monotonic(), time.time()
    c.run("start", name)
    ok = wait_caught_up(c, name, 300)
    t = time.monotonic() - t_start if ok else None
    installs = []
    try:
        with open(os.path.join(c.dir, name, "log"), errors="replace") as f:
            tail = f.read().rsplit("=== zcart-cluster", 1)[-1]
        installs = [ln for ln in tail.splitlines() if "restore: state replaced by snapshot" in ln]
    except OSError:
        pass
    # When the install itself was done (the log's wall-clock stamp), apart from the
    # entries after it.
    t_install = None
    if installs:
        try:
            stamp = installs[0].split(" ", 1)[0]
            t_install = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                tzinfo=datetime.timezone.utc).timestamp() - wall_start
        except ValueError:
            pass
    log("wiped follower %s (%.0f MiB of data): snapshot installed after %s s, caught up after "
        "%s s, %d snapshot install(s)" % (name, size / 2**20, fmt(t_install), fmt(t),
                                         len(installs)))
    return {"wiped": name, "data_mib": size / 2**20, "catch_up_s": t, "install_s": t_install,
            "snapshot_installs": len(installs)}


def fmt(x):
    return "?" if x is None else "%.2f" % x


def machine():
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    commit = subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%h %s"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return {"load": load, "nproc": os.cpu_count(), "commit": commit + (" (dirty)" if dirty else ""),
            "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


# --- main ------------------------------------------------------------------------------------

def main(argv):
    a = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_term)
    a.work = a.dir or tempfile.mkdtemp(prefix="zcart-scale.")
    os.makedirs(a.work, exist_ok=True)
    a.catalog = os.path.join(a.work, "catalog.csv")
    with open(a.catalog, "w") as f:
        for p in ("apple", "banana", "cherry", "grape", "lemon", "mango", "orange", "pear"):
            f.write("%s,1000000000\n" % p)
    a.ctx = zmq.Context()
    res = {"params": {k: getattr(a, k) for k in ("nodes", "slots", "sessions", "small_nodes",
                                                  "small_slots", "clients", "measure", "round", "session_time",
                                                  "insecure", "broker_arg")},
           "start": machine()}
    log("start: %r" % res["start"])
    small = Cluster(a, "small", a.small_nodes, a.small_slots, a.base_port + 100)
    big = Cluster(a, "big", a.nodes, a.slots, a.base_port)
    watch = None
    try:
        # A
        small.up(300)
        log("small cluster (%d carts) up in %.1f s" % (a.small_nodes * a.small_slots, small.up_s))
        res["small"], _ = rates(a, small, "%d carts" % (a.small_nodes * a.small_slots))
        small.down()
        # B
        big.up(a.up_wait)
        res["big_up_s"] = big.up_s
        log("big cluster (%d carts) up in %.1f s" % (a.nodes * a.slots, big.up_s))
        res["rss_fresh"] = {n: proc_mem(big.pid(n)) for n in ("broker1", "broker2", "broker3")}
        res["big_fresh"], closed = rates(a, big, "%d carts, fresh" % (a.nodes * a.slots))
        # C
        watch = Watch(a, big)
        watch.start()
        done, rounds, secs = sessions_phase(a, big, closed)
        watch.stop_ev.set()
        watch.join(5)
        res["sessions"] = {"closed": done, "rounds": rounds, "seconds": secs,
                           "stall_max_us": watch.stall_max,
                           "stall_during_snapshot_max_us": watch.stall_snap_max,
                           "snapshot_windows": watch.snap_windows,
                           "rss_max_mib": watch.rss_max, "watch_error": watch.error,
                           "load_end": machine()["load"]}
        # D
        res["big_after"], _ = rates(a, big, "%d carts, after %d sessions" % (a.nodes * a.slots,
                                                                             done))
        res["rss_after"] = {n: proc_mem(big.pid(n)) for n in ("broker1", "broker2", "broker3")}
        st = big.converged(60) or big.statuses()
        res["state_after"] = {
            "broker%d" % p["id"]: {k: p.get(k) for k in (
                "role", "applied_index", "sessions_live", "sessions_ended", "carts_total",
                "storage_used_bytes", "snapshots", "snapshots_failed", "snapshot_build_max_us",
                "snapshot_loop_max_us", "snapshot_bytes", "loop_stall_max_us",
                "loop_stalls_slow")} for p in st.values()}
        # E, F
        res["kill_leader"] = kill_leader_and_restart(a, big)
        res["wipe_follower"] = wipe_follower(a, big)
        res["end"] = machine()
    except (KeyboardInterrupt, Stop):
        log("interrupted")
        res["interrupted"] = True
    except Exception as e:  # a phase failed: say which, keep what was measured
        log("failed: %r" % e)
        res["error"] = repr(e)[:2000]
    finally:
        if watch is not None:
            watch.stop_ev.set()
        for c in (small, big):
            if os.path.exists(os.path.join(c.dir, "cluster.json")):
                c.down()
        if not a.keep and not a.dir:
            shutil.rmtree(a.work, ignore_errors=True)
    summary(a, res)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    return 1 if res.get("interrupted") or res.get("error") else 0


def summary(a, res):
    p = print
    p("\n=== bench/scale.py: %d x %d carts (small: %d x %d), %d sessions, %d clients%s"
      % (a.nodes, a.slots, a.small_nodes, a.small_slots, a.sessions, a.clients,
         ", insecure" if a.insecure else ""))
    if res.get("error"):
        p("FAILED: %s" % res["error"][:500])
    st = res.get("start", {})
    p("machine: %s cores, load %s at start, %s at the end of the sessions, %s at the end; "
      "commit %s; %s" % (st.get("nproc"), st.get("load"),
                         res.get("sessions", {}).get("load_end", "?"),
                         res.get("end", {}).get("load", "?"), st.get("commit"), st.get("utc")))
    sm, bf, ba = res.get("small"), res.get("big_fresh"), res.get("big_after")

    def ratio(x, y):
        return "%.2f" % (x / y) if x and y else "?"
    if sm and bf:
        p("new sessions/s: %.0f at %d carts, %.0f at %d carts fresh (ratio %s), %.0f after the "
          "sessions (ratio to 1k: %s)"
          % (sm["sessions_per_s"], a.small_nodes * a.small_slots, bf["sessions_per_s"],
             a.nodes * a.slots, ratio(bf["sessions_per_s"], sm["sessions_per_s"]),
             ba["sessions_per_s"] if ba else 0,
             ratio(ba and ba["sessions_per_s"], sm["sessions_per_s"])))
        p("routed ops/s: %.0f at %d carts, %.0f fresh at %d carts, %.0f after the sessions "
          "(after/fresh %s)" % (sm["ops_per_s"], a.small_nodes * a.small_slots, bf["ops_per_s"],
                                a.nodes * a.slots, ba["ops_per_s"] if ba else 0,
                                ratio(ba and ba["ops_per_s"], bf["ops_per_s"])))
        for tag, r in (("small", sm), ("big fresh", bf), ("big after", ba)):
            if r and r.get("status"):
                p("STATUS to the leader (%s): p50 %.2f ms, p99 %.2f ms (%d)"
                  % (tag, r["status"]["p50_ms"], r["status"]["p99_ms"], r["status"]["n"]))
    if "big_up_s" in res:
        p("big cluster up (every cart registered) in %.1f s" % res["big_up_s"])
    s = res.get("sessions")
    if s:
        p("sessions: %d closed in %.0f s (%d rounds); loop stall max %.1f ms overall, %.1f ms in "
          "%d windows with a snapshot build" % (s["closed"], s["seconds"], len(s["rounds"]),
                                                s["stall_max_us"] / 1000.0,
                                                s["stall_during_snapshot_max_us"] / 1000.0,
                                                s["snapshot_windows"]))
        p("RSS max during the sessions (MiB): %s" % ", ".join(
            "%s %.0f" % kv for kv in sorted(s["rss_max_mib"].items())))
    for tag in ("rss_fresh", "rss_after"):
        if tag in res:
            p("%s (MiB): %s" % (tag, "; ".join(
                "%s RSS %.0f anon %.0f file %.0f hwm %.0f" % (
                    n, m.get("VmRSS", 0), m.get("RssAnon", 0), m.get("RssFile", 0),
                    m.get("VmHWM", 0)) for n, m in sorted(res[tag].items()))))
    for n, v in sorted(res.get("state_after", {}).items()):
        p("%s after: %s" % (n, " ".join("%s=%s" % kv for kv in v.items())))
    k = res.get("kill_leader")
    if k:
        p("kill -9 leader %s: new ready leader %s s (polled every 100 ms; its log says %s s); "
          "restarted replica caught up %s s" % (k["killed"], fmt(k["new_leader_s"]),
                                                fmt(k.get("new_leader_log_s")),
                                                fmt(k["restart_ready_s"])))
    w = res.get("wipe_follower")
    if w and "wiped" in w:
        p("wiped follower %s (%.0f MiB): snapshot installed %s s, caught up %s s, %d snapshot "
          "install(s)" % (w["wiped"], w["data_mib"], fmt(w.get("install_s")),
                          fmt(w["catch_up_s"]), w["snapshot_installs"]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
