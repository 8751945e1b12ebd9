#!/usr/bin/python3
"""bench/failover.py: kill-the-leader drills under client load (make bench-failover).

A benchmark, not a test: it asserts nothing about speed, it measures and
prints.  One 3-replica local cluster (2 cart nodes, 1 stock service with an
inventory that cannot run out) is started on --base-port and reused by
every drill; with --fresh each drill gets a new cluster instead (then no
survivor of a drill was ever restarted, see bench/README.md for why that
matters).  Each drill:

  1. waits until the three replicas report the same applied_index and
     digest and one of them is a ready leader;
  2. starts `zcart-bench -w ops -c CLIENTS -d DURATION --timeline FILE`;
  3. after --kill-after seconds, asks every replica for its STATUS, takes
     the ready leader, notes the wall time T and SIGKILLs it.  The signal
     is sent from here (os.kill on the pid zcart-cluster recorded, once
     /proc/PID/cmdline is checked to be that broker's argv) rather than by
     spawning `zcart-cluster kill`, whose interpreter start-up (tens of ms
     on a loaded 2-core machine) would sit between T and the real kill;
     `zcart-cluster kill` is still run afterwards to confirm it is gone.
     A thread watches /proc until every thread of the victim has exited
     (`dead`): its sockets close only then, so nobody can notice earlier;
  4. polls the two survivors' STATUS over raw ZCP DEALERs every --poll-ms
     until one answers role=leader, ready=1: the *polled* time to a ready
     leader is that answer's arrival minus T.  The survivors' own logs
     (wall-clock ms timestamps) give the same milestones without polling
     jitter: the follower noticing the leader is gone (the fast failover
     hint), the election won, the leader ready (its barrier applied);
  5. when zcart-bench is done, reads the timeline (one line per request:
     thread start_us end_us op outcome, CLOCK_REALTIME µs, the clock T was
     read from) and computes the client-observed outage:
       - outage (all clients): the longest interval without any OK
         completion, over all clients merged, that overlaps [T, T_ready]
         (T_ready = the polled ready time, or T + 5 s if none was seen).
         It usually runs from the last OK just before T to the first OK
         the new leader routes; an OK that lands just after T (a reply the
         old leader had already sent) shifts its start, and is counted as
         `late_ok`;
       - outage (worst client): the same per client, the largest of them:
         what the unluckiest synchronous client saw, which includes the
         full latency of the request it had in flight;
       - other gap: the longest all-clients gap elsewhere in the run (the
         noise floor: the clients still stall now and then when 2 cores
         are shared by ~15 processes);
       - not OK: every request whose outcome was not OK (UNREACHABLE, a KO
         reason), in the whole run and within [T, T_ready + 1 s];
  6. restarts the killed replica with `zcart-cluster start NAME` and waits
     for it to converge (step 1 of the next drill); with --fresh, copies
     the brokers' logs to DIR/drills/ and takes the cluster down.

DIR/drills/ (kept with --keep or --dir) holds each drill's timeline, the
zcart-bench report and results.json, every drill's figures so far.
The summary gives p50 (nearest rank) and max over the drills.  The cluster
is torn down on exit, Ctrl-C and SIGTERM included.

    bench/failover.py [--drills 10] [--duration 6] [--clients 8] [--base-port 9400]
                      [--bin build/bin] [--election-timeout MS] [--heartbeat-timeout MS]
                      [--fresh] [--kill-after S] [--poll-ms MS] [--dir DIR] [--keep] [--json]
"""

import argparse
import datetime
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import zmq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "deploy", "local"))
import zcdaemon  # noqa: E402
import zcproc  # noqa: E402
import zcproto as zp  # noqa: E402  (the independent ZCP/1 codec of the integration tests)

CLUSTER = os.path.join(ROOT, "deploy", "local", "zcart-cluster")
PRODUCTS = ["apple", "banana", "cherry", "date", "elderberry", "fig", "grape", "kiwi"]


class Stop(Exception):
    """SIGTERM, turned into an exception so that finally blocks run."""


def _on_term(sig, frame):
    raise Stop()


def log(msg):
    print("failover: %s" % msg, file=sys.stderr, flush=True)


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="bench/failover.py",
        description="Kill-the-leader drills on a local 3-replica zcart cluster under "
                    "zcart-bench load: client-observed outage and time to a new ready leader.")
    ap.add_argument("--drills", type=int, default=10, metavar="N", help="drills (default 10)")
    ap.add_argument("--duration", type=int, default=6, metavar="S",
                    help="zcart-bench -d per drill, seconds (default 6)")
    ap.add_argument("--kill-after", type=float, default=2.0, metavar="S",
                    help="seconds of load before the kill (default 2)")
    ap.add_argument("--clients", type=int, default=8, metavar="N",
                    help="zcart-bench -c (default 8)")
    ap.add_argument("--base-port", type=int, default=9400, metavar="P",
                    help="zcart-cluster --base-port (default 9400; uses P+10..P+41)")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"), metavar="DIR",
                    help="binary directory (default <repo>/build/bin)")
    ap.add_argument("--election-timeout", type=int, metavar="MS",
                    help="zcart-broker --election-timeout (broker default 300)")
    ap.add_argument("--heartbeat-timeout", type=int, metavar="MS",
                    help="zcart-broker --heartbeat-timeout (broker default 50)")
    ap.add_argument("--poll-ms", type=float, default=5.0, metavar="MS",
                    help="STATUS poll period of the survivors after the kill (default 5)")
    ap.add_argument("--fresh", action="store_true",
                    help="a fresh cluster per drill instead of one cluster whose killed replica "
                         "is restarted after each drill (no survivor was ever restarted)")
    ap.add_argument("--dir", metavar="DIR",
                    help="run directory (default a fresh temporary one, removed at the end)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the run directory (logs, timelines) after the run")
    ap.add_argument("--json", action="store_true", help="print one JSON object at the end")
    a = ap.parse_args(argv)
    if a.drills < 1 or a.clients < 1 or a.duration < 1:
        ap.error("--drills, --clients and --duration want positive values")
    if not 0.2 <= a.kill_after < a.duration - 0.5:
        ap.error("--kill-after wants 0.2 s .. --duration - 0.5 s")
    return a


# --- the cluster -----------------------------------------------------------------------

def cluster(a, *args, check=True, quiet=True):
    argv = [CLUSTER] + list(args) + ["--dir", a.dir]
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("%s: exit %d\n%s%s" % (" ".join(argv[1:]), r.returncode, r.stdout,
                                                   r.stderr))
    if not quiet:
        sys.stderr.write(r.stdout)
    return r


def cli_status(a, brokers, timeout_ms=1000):
    """`zcart --json status` as a dict, or None."""
    r = subprocess.run([os.path.join(a.bin, "zcart"), "--brokers", ",".join(brokers), "--json",
                        "--timeout", str(timeout_ms), "status"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout_ms / 1000.0 * 4 + 10)
    lines = r.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1]) if lines else None
    except ValueError:
        return None


def wait_converged(a, brokers, timeout=60.0):
    """Wait until every replica answers with the leader's applied_index and digest and one
    is a ready leader (zcdaemon); the status then."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        st = cli_status(a, brokers)
        reps = (st or {}).get("replicas") or []
        last = [(r.get("id"), r.get("role"), r.get("ready"), r.get("applied_index"),
                 r.get("digest")) for r in reps]
        if zcdaemon.disagreement(reps, len(brokers)) is None:
            return st
        time.sleep(0.1)
    raise RuntimeError("replicas did not converge within %.0f s: %r" % (timeout, last))


def load_env(run_dir):
    """RUN/env into os.environ, so the zcart CLI and zcart-bench started from
    here get the cluster's keys (ZCART_SERVER_KEY, ZCART_CERT; or
    ZCART_INSECURE for an --insecure cluster)."""
    with open(os.path.join(run_dir, "env")) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            if k:
                os.environ[k] = v.strip("'")


read_cert = zcdaemon.read_cert  # (public, secret) z85 bytes of a czmq certificate


class Poller:
    """A raw DEALER per replica endpoint sending ZCP STATUS requests (CURVE
    with the client key of a secure cluster, from $ZCART_KEYS)."""

    def __init__(self, ctx, endpoints):
        self.socks = {}
        keys = os.environ.get("ZCART_KEYS")
        for ep in endpoints:
            s = ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            if keys and os.environ.get("ZCART_INSECURE") != "1":
                s.curve_serverkey = read_cert(os.path.join(keys, "replica.cert"))[0]
                s.curve_publickey, s.curve_secretkey = read_cert(
                    os.path.join(keys, "client.cert_secret"))
            s.connect(ep)
            self.socks[ep] = s
        self.poller = zmq.Poller()
        for s in self.socks.values():
            self.poller.register(s, zmq.POLLIN)
        self.by_sock = {s: ep for ep, s in self.socks.items()}

    def close(self):
        for s in self.socks.values():
            s.close(0)

    def send_all(self, endpoints=None):
        """Send one STATUS to each endpoint; {corr: endpoint}."""
        sent = {}
        for ep in endpoints or self.socks:
            corr = random.getrandbits(63)
            try:
                self.socks[ep].send(zp.encode(zp.status(corr)), zmq.NOBLOCK)
                sent[corr] = ep
            except zmq.Again:
                pass
        return sent

    def replies(self, wait_ms, corrs=None):
        """(endpoint, props dict, arrival wall time) of every STATUS_REPLY within wait_ms;
        only the answers to `corrs` ({corr: endpoint}) if given: a reply the victim sent
        before it died can still be queued in its socket."""
        out = []
        for s, _ in self.poller.poll(wait_ms):
            while True:
                try:
                    frames = s.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                now = time.time()
                m = zp.decode_one(frames)
                if m is None or m.id != zp.STATUS_REPLY:
                    continue
                if corrs is not None and corrs.get(m.corr) != self.by_sock[s]:
                    continue
                props = {k: int(v) if v.isdigit() else v for k, v in m.props}
                out.append((self.by_sock[s], props, now))
        return out

    def ready_leader(self, timeout=3.0):
        """The props of a ready leader among all endpoints, or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.send_all()
            for _, props, _ in self.replies(200):
                if props.get("role") == "leader" and props.get("ready") == 1:
                    return props
        return None


# --- logs ------------------------------------------------------------------------------

def log_events(path, since):
    """(wall time, text) of every log line of path at or after `since` (s, ms resolution)."""
    out = []
    floor = int(since * 1000) / 1000.0
    try:
        with open(path, "rb") as f:
            for raw in f.read().decode(errors="replace").splitlines():
                stamp = raw.split(" ", 1)[0]
                if not stamp.endswith("Z") or "T" not in stamp:
                    continue
                try:
                    t = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                        tzinfo=datetime.timezone.utc).timestamp()
                except ValueError:
                    continue
                if t >= floor:
                    out.append((t, raw))
    except OSError:
        pass
    return out


def log_milestones(a, survivors, t_kill):
    """ms after the kill of: the first 'leader N is gone' (detection), the first
    'candidate -> leader' (elected), the first 'leader ready' (barrier applied) in the
    survivors' logs; None where missing."""
    found = {"detect_ms": None, "elected_ms": None, "ready_log_ms": None}
    needles = {"detect_ms": "is gone; campaigning", "elected_ms": "-> leader (term",
               "ready_log_ms": "leader ready in term"}
    for name in survivors:
        for t, line in log_events(os.path.join(a.dir, name, "log"), t_kill):
            for key, needle in needles.items():
                if needle in line:
                    ms = round((t - t_kill) * 1000.0, 3)
                    if found[key] is None or ms < found[key]:
                        found[key] = ms
    return found


# --- the timeline ----------------------------------------------------------------------

def read_timeline(path):
    """[(thread, start_us, end_us, op, outcome)]."""
    out = []
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) == 5:
                out.append((int(p[0]), int(p[1]), int(p[2]), p[3], p[4]))
    return out


def largest_gap(ends, lo, hi):
    """Largest gap between consecutive sorted times `ends` among the gaps that overlap
    [lo, hi]; (length, start, end) or None."""
    best = None
    for x, y in zip(ends, ends[1:]):
        if y >= lo and x <= hi and (best is None or y - x > best[0]):
            best = (y - x, x, y)
    return best


def analyse(tl, t_kill_us, t_ready_us):
    """The client-observed figures of one drill from its timeline."""
    hi = t_ready_us if t_ready_us is not None else t_kill_us + 5000000
    ok = sorted(e[2] for e in tl if e[4] == "OK")
    r = {"requests": len(tl), "ok": len(ok)}
    g = largest_gap(ok, t_kill_us, hi)
    if g is None or g[2] < t_kill_us:
        # No OK completion after the kill at all.
        r.update(outage_ms=None, late_ok=None)
    else:
        r["outage_ms"] = g[0] / 1000.0
        r["outage_from_kill_ms"] = (g[1] - t_kill_us) / 1000.0  # negative: began before T
        r["late_ok"] = sum(1 for t in ok if t_kill_us < t <= g[1])
    # The rest of the run: gaps entirely before the kill or entirely after T_ready.
    other = None
    for x, y in zip(ok, ok[1:]):
        if (y < t_kill_us or x > hi) and (other is None or y - x > other):
            other = y - x
    r["other_gap_ms"] = other / 1000.0 if other is not None else None
    worst = None
    for c in sorted({e[0] for e in tl}):
        ends = sorted(e[2] for e in tl if e[0] == c and e[4] == "OK")
        cg = largest_gap(ends, t_kill_us, hi)
        if cg is not None and cg[2] >= t_kill_us and (worst is None or cg[0] > worst[0]):
            worst = (cg[0], c)
    r["outage_client_max_ms"] = worst[0] / 1000.0 if worst else None
    r["outage_client"] = worst[1] if worst else None
    bad = {}
    bad_near = 0
    for e in tl:
        if e[4] != "OK":
            bad[e[4]] = bad.get(e[4], 0) + 1
            if e[2] >= t_kill_us and e[1] <= hi + 1000000:
                bad_near += 1
    r["not_ok"] = sum(bad.values())
    r["not_ok_by_outcome"] = bad
    r["not_ok_near_kill"] = bad_near
    r["max_request_ms"] = max((e[2] - e[1] for e in tl), default=0) / 1000.0
    return r


# --- one drill ---------------------------------------------------------------------------

def kill_pid(a, name):
    """SIGKILL the process zcart-cluster started as `name`; the wall time just before the
    signal.  The pid is trusted only if /proc/PID/cmdline is the argv of cluster.json."""
    with open(os.path.join(a.dir, "cluster.json")) as f:
        plan = json.load(f)
    argv = next(p["argv"] for p in plan["procs"] if p["name"] == name)
    with open(os.path.join(a.dir, name, "pid")) as f:
        pid = int(f.read().strip())
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        cmdline = [x.decode() for x in f.read().split(b"\0") if x]
    if cmdline != argv:
        raise RuntimeError("%s: pid %d is not the broker (cmdline %r)" % (name, pid, cmdline))
    t = time.time()
    os.kill(pid, signal.SIGKILL)
    return t, pid


def proc_dead(pid):
    """True once every thread of pid has exited (zombie or reaped): the process's files,
    its sockets included, are closed only when its last thread is gone (zcproc)."""
    return zcproc.proc_state(pid) == "dead"


class DeathWatch(threading.Thread):
    """Polls /proc every 0.5 ms until pid has exited; `at` is the wall time it saw that."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.at = pid, None

    def run(self):
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            if proc_dead(self.pid):
                self.at = time.time()
                return
            time.sleep(0.0005)


def drill(a, ctx, brokers, k, workdir):
    st = wait_converged(a, brokers)
    applied = max(r["applied_index"] for r in st["replicas"])
    tl_path = os.path.join(workdir, "timeline-%02d.txt" % k)
    out_path = os.path.join(workdir, "bench-%02d.json" % k)
    argv = [os.path.join(a.bin, "zcart-bench"), "--brokers", ",".join(brokers), "-w", "ops",
            "-c", str(a.clients), "-d", str(a.duration), "--catalog", ",".join(PRODUCTS),
            "--json", "--timeline", tl_path]
    poller = Poller(ctx, brokers)
    bench = None
    try:
        with open(out_path, "w") as out:
            bench = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.PIPE, text=True)
        time.sleep(a.kill_after)
        if bench.poll() is not None:
            raise RuntimeError("zcart-bench exited early: %s" % bench.stderr.read())
        leader = poller.ready_leader()
        if leader is None:
            raise RuntimeError("no ready leader before the kill")
        lid, term = leader["id"], leader.get("term")
        victim = "broker%d" % lid
        victim_ep = brokers[lid - 1]
        survivors_ep = [ep for ep in brokers if ep != victim_ep]
        t_kill, pid = kill_pid(a, victim)
        death = DeathWatch(pid)
        death.start()
        # Poll the survivors until one is a ready leader.
        t_ready = None
        new = None
        next_send = 0.0
        corrs = {}
        deadline = time.monotonic() + 30.0
        while t_ready is None and time.monotonic() < deadline:
            now = time.monotonic()
            if now >= next_send:
                corrs.update(poller.send_all(survivors_ep))
                next_send = now + a.poll_ms / 1000.0
            wait = max(0.0, next_send - time.monotonic()) * 1000.0
            for ep, props, arrived in poller.replies(wait, corrs):
                if (props.get("role") == "leader" and props.get("ready") == 1
                        and props.get("id") != lid):
                    if t_ready is None or arrived < t_ready:
                        t_ready, new = arrived, props
        # Confirm the kill with the cluster tool's own check ("is not running" is fine:
        # it is gone already, which is the point).
        r = cluster(a, "kill", victim, check=False)
        if r.returncode != 0 and "is not running" not in r.stderr:
            raise RuntimeError("zcart-cluster kill %s: %s" % (victim, r.stderr.strip()))
        death.join()
        _, err = bench.communicate(timeout=a.duration + 60)
        rc = bench.returncode
        bench = None
    finally:
        poller.close()
        if bench is not None:
            bench.kill()
            bench.wait()
    try:
        with open(out_path) as f:
            report = json.loads(f.read().strip().splitlines()[-1])
    except (ValueError, IndexError):
        report = {}
    if rc not in (0,):
        log("drill %d: zcart-bench exit %d: %s" % (k, rc, err.strip()))
    tl = read_timeline(tl_path)
    res = analyse(tl, int(t_kill * 1e6), int(t_ready * 1e6) if t_ready else None)
    res.update(drill=k, t_kill=t_kill, killed=victim, old_term=term, applied_before=applied,
               new_leader=("broker%d" % new["id"]) if new else None,
               new_term=new.get("term") if new else None,
               ready_ms=round((t_ready - t_kill) * 1000.0, 3) if t_ready else None,
               dead_ms=round((death.at - t_kill) * 1000.0, 3) if death.at else None,
               bench_rc=rc, ops_per_s=report.get("ops_per_s"))
    res.update(log_milestones(a, [n for n in ("broker1", "broker2", "broker3")
                                  if n != victim], t_kill))
    if not a.fresh:
        # Bring the replica back for the next drill (it converges in wait_converged).
        cluster(a, "start", victim)
    return res


# --- report ------------------------------------------------------------------------------

def p50(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    return xs[(len(xs) + 1) // 2 - 1]  # nearest rank: the ceil(n/2)-th smallest


def fmt(x, width=8, digits=1):
    return ("%*.*f" % (width, digits, x)) if x is not None else "%*s" % (width, "-")


COLS = [("drill", 5), ("killed", 8), ("new", 8), ("term", 7), ("req/s", 7), ("not_ok", 6),
        ("outage", 8), ("worst_cl", 8), ("ready", 8), ("ready_log", 9), ("dead", 5), ("detect", 7),
        ("elected", 7), ("late_ok", 7), ("other", 7)]


def print_table(a, results, summary):
    print("failover drills: %d x kill -9 of the leader, 3 replicas (%s), zcart-bench -w ops "
          "-c %d -d %d, kill after %.1f s; election timeout %s ms, heartbeat %s ms"
          % (len(results), "a fresh cluster per drill" if a.fresh else "one cluster, the killed "
             "replica restarted after each drill", a.clients, a.duration, a.kill_after,
             a.election_timeout or "300 (default)", a.heartbeat_timeout or "50 (default)"))
    print("ms after the kill: ready = a survivor answered STATUS as ready leader (polled), "
          "ready_log/elected/detect = first 'leader ready'/'-> leader'/'is gone' survivor log "
          "line, dead = last thread of the victim gone;\nlengths in ms: outage = longest gap "
          "without an OK over all clients across the failover, worst_cl = the same for the worst "
          "client, other = longest all-clients gap elsewhere in the run; late_ok = OKs after the "
          "kill before the outage began")
    print(" ".join("%*s" % (w, n) for n, w in COLS))
    for r in results:
        cells = ["%5d" % r["drill"], "%8s" % r["killed"], "%8s" % (r["new_leader"] or "-"),
                 "%7s" % ("%s>%s" % (r["old_term"], r["new_term"])),
                 fmt(r["ops_per_s"], 7, 0), "%6d" % r["not_ok"], fmt(r["outage_ms"]),
                 fmt(r["outage_client_max_ms"]), fmt(r["ready_ms"]), fmt(r["ready_log_ms"], 9, 0),
                 fmt(r["dead_ms"], 5, 0), fmt(r["detect_ms"], 7, 0), fmt(r["elected_ms"], 7, 0),
                 "%7s" % (r["late_ok"] if r["late_ok"] is not None else "-"),
                 fmt(r["other_gap_ms"], 7)]
        print(" ".join(cells))
    for r in results:
        if r["not_ok"]:
            print("drill %d not OK: %s (%d within the failover window)"
                  % (r["drill"], r["not_ok_by_outcome"], r["not_ok_near_kill"]))
    s = summary
    print("summary over %d drills (p50 / max, ms): outage all clients %s / %s; worst client "
          "%s / %s; ready leader (polled) %s / %s; (log) %s / %s; not-OK requests %d"
          % (s["drills"], fmt(s["outage_ms"]["p50"], 0), fmt(s["outage_ms"]["max"], 0),
             fmt(s["outage_client_max_ms"]["p50"], 0), fmt(s["outage_client_max_ms"]["max"], 0),
             fmt(s["ready_ms"]["p50"], 0), fmt(s["ready_ms"]["max"], 0),
             fmt(s["ready_log_ms"]["p50"], 0, 0), fmt(s["ready_log_ms"]["max"], 0, 0),
             s["not_ok"]))


def summarise(results):
    s = {"drills": len(results), "not_ok": sum(r["not_ok"] for r in results)}
    for key in ("outage_ms", "outage_client_max_ms", "ready_ms", "ready_log_ms", "dead_ms",
                "detect_ms",
                "elected_ms", "other_gap_ms"):
        xs = [r[key] for r in results if r[key] is not None]
        s[key] = {"p50": p50(xs), "max": max(xs) if xs else None, "missing": len(results) - len(xs)}
    return s


# --- main ----------------------------------------------------------------------------------

def main(argv):
    a = parse_args(argv)
    a.bin = os.path.abspath(a.bin)
    signal.signal(signal.SIGTERM, _on_term)
    # Also when started in the background of a script, where SIGINT is inherited ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    own_dir = a.dir is None
    a.dir = os.path.abspath(a.dir or tempfile.mkdtemp(prefix="zcart-failover."))
    workdir = os.path.join(a.dir, "drills")
    results = []
    up = False
    ctx = zmq.Context()
    try:
        os.makedirs(workdir, exist_ok=True)
        catalog = os.path.join(a.dir, "catalog.csv")
        with open(catalog, "w") as f:
            f.writelines("%s,1000000000\n" % p for p in PRODUCTS)
        up_args = ["up", "--fresh", "--replicas", "3", "--cart-nodes", "2",
                   "--slots", str(max(16, a.clients)), "--base-port", str(a.base_port),
                   "--bin", a.bin, "--catalog", catalog]
        if a.election_timeout:
            up_args.append("--broker-arg=--election-timeout=%d" % a.election_timeout)
        if a.heartbeat_timeout:
            up_args.append("--broker-arg=--heartbeat-timeout=%d" % a.heartbeat_timeout)
        for k in range(1, a.drills + 1):
            if not up:
                up = True
                cluster(a, *up_args)
                load_env(a.dir)
                with open(os.path.join(a.dir, "cluster.json")) as f:
                    brokers = json.load(f)["brokers"]
                if k == 1:
                    log("cluster up in %s (%s)" % (a.dir, ",".join(brokers)))
            r = drill(a, ctx, brokers, k, workdir)
            if a.fresh:
                # `up --fresh` wipes the logs: keep this drill's broker logs.
                for name in ("broker1", "broker2", "broker3"):
                    src = os.path.join(a.dir, name, "log")
                    if os.path.exists(src):
                        shutil.copy(src, os.path.join(workdir, "%s-%02d.log" % (name, k)))
                cluster(a, "down")
                up = False
            results.append(r)
            with open(os.path.join(workdir, "results.json"), "w") as f:
                json.dump(results, f, indent=1)
            log("drill %d: killed %s, new leader %s; outage %s ms, worst client %s ms, "
                "ready %s ms, not OK %d"
                % (k, r["killed"], r["new_leader"], fmt(r["outage_ms"], 0),
                   fmt(r["outage_client_max_ms"], 0), fmt(r["ready_ms"], 0), r["not_ok"]))
    except (KeyboardInterrupt, Stop):
        log("interrupted after %d drill(s)" % len(results))
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        log("drill %d failed: %s" % (len(results) + 1, e))
    finally:
        if up:
            cluster(a, "down", check=False)
        ctx.term()
        if own_dir and not a.keep:
            shutil.rmtree(a.dir, ignore_errors=True)
        elif a.keep or not own_dir:
            log("run directory kept: %s" % a.dir)
    if not results:
        return 1
    summary = summarise(results)
    meta = {"mode": "fresh" if a.fresh else "reuse", "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ"),
            "cores": os.cpu_count(), "clients": a.clients, "duration_s": a.duration,
            "kill_after_s": a.kill_after, "election_timeout_ms": a.election_timeout or 300,
            "heartbeat_timeout_ms": a.heartbeat_timeout or 50, "poll_ms": a.poll_ms}
    if a.json:
        print(json.dumps({"config": meta, "drills": results, "summary": summary}))
    else:
        print_table(a, results, summary)
    return 0 if len(results) == a.drills else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
