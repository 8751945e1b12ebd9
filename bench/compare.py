#!/usr/bin/python3
"""bench/compare.py: zcart beside its raw floors, interleaved in one run
(`make bench-compare`; bench/README.md, "Side by side").

One local cluster (3 replicas, 4 cart nodes x 64 slots, secure, defaults)
and the project's own baseline programs run in turns, round after round, so
that the machine's drift (these machines are shared) falls on both sides of
every ratio alike:

  raw_2hop    a raw libzmq 2-hop broker (bench/raw_2hop.c): client DEALER ->
              ROUTER/ROUTER -> worker DEALER and back over loopback TCP,
              zcart's message sizes, nothing encoded, stored or synced;
              also with CurveZMQ on every hop (--curve 1), printed beside,
              not a target: what encryption itself costs a round trip
  raw path    raw_2hop --hops 3 --procs 1 --curve 1: zcart's own path with
              nothing in it -- client -> replica -> cart node -> stock and
              back, each a process of its own, CurveZMQ on every hop, the
              worker asking the stock asynchronously -- at 1 and 8 clients,
              printed beside with zcart's ratios to it (not targets): how
              far zcart is from the floor of its own architecture
  fsync       one fdatasync of a preallocated 4 KiB block on the cluster's
              data filesystem (bench/fsync_probe.c)
  raw_raft    canonical/raft 0.15 itself (bench/raw_raft.c): 3 processes,
              raft_uv_tcp, a state machine that only counts, the leader
              keeping K=64 entries of ASSIGN's size in flight; also with
              K=1 (one commit's latency), and over zcart's own raft
              transport (--transport relay: the CurveZMQ relay, keys off)
              at K=1 and K=64, printed beside, not targets: what the
              relay's hops cost raft
  redis       single-node Redis 7 (Debian's redis-server, appendonly with
              appendfsync always), the store a shop might pick instead,
              through redis-benchmark: HINCRBY (an add) at 8 clients and
              at 1, and a whole new-session cycle (assign from a free list,
              add, close, return) as one Lua script per round trip -- which
              favours Redis: one round trip and one fsync per cycle.  Only
              when redis-server is installed (--install installs it)
  etcd        Debian's etcd-server 3.4, one node, through bench/etcd_assign.py:
              txn-assign of a free cart out of 10k at 8 clients, first-free
              and random pick, and random pick's p50 at 1 client.  Only
              when etcd is installed (--install installs etcd-server)
  zcart       zcart-bench: -w ops (routed adds on one session per client)
              and -w assign (new session: assign, add, close)
  CPU         around zcart's assign at 64 clients and raw_raft at K=64 (tcp
              and relay), the machine's busy CPU-seconds from /proc/stat
              (every process: daemons, load generator, kernel), divided by
              the cycles or commits done: zcart_cycle_c64_cpu_us and
              raw_raft_*_commit_cpu_us, printed beside
              cycle_c64_cpu_budget_us, what the cycles target leaves one
              cycle with every core busy (cores / (0.2 x raw raft's K=64
              commits/s)).  Not targets: they say whether the cycles
              target fits in this machine's CPUs at all

Each round measures, in this order: raw_2hop with 1 client (plain, then
CurveZMQ, then the raw path), zcart ops with 1 client, fsync, raw_2hop with
8 clients (plain, then CurveZMQ, then the raw path), zcart ops with 8
clients, zcart assign with 8 and with 64 clients, raw_raft with K=64 (then
K=1, and both over the relay), redis, etcd.  The ratios, with the targets
of issue 16, are computed per round and over the rounds' medians:

  add, 1 client:   zcart add p50 / (raw 2-hop p50 + fsync p50)   <= 1.3
  add, 8 clients:  zcart ops/s / raw 2-hop round trips/s         >= 0.8
  cycles, 64:      zcart add p99 under that load                 <= 20 ms
  cycles, 64:      zcart cycles/s / raw raft commits/s (K=64)    >= 0.2
  vs Redis:        zcart adds/s at 8 / Redis HINCRBY/s at 8      >= 1
                   Redis HINCRBY p50 at 1 / zcart add p50 at 1   >= 1
                   zcart cycles/s at 8 / Redis cycles/s at 8     >= 1
  vs etcd:         zcart cycles/s at 8 / etcd random-pick assigns/s at 8  >= 10

A baseline whose server is not installed is listed as n/a, never as a pass.  The exit status is 0 when
every measurement ran (PASS or FAIL alike), 1 when one could not.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import etcd_assign

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CLUSTER = os.path.join(ROOT, "deploy", "local", "zcart-cluster")

TARGETS = [
    # (key, what, comparison, target)
    ("add1_ratio", "routed add, 1 client: zcart p50 / (raw 2-hop p50 + fsync p50)", "<=", 1.3),
    ("add8_ratio", "routed add, 8 clients: zcart ops/s / raw 2-hop rt/s", ">=", 0.8),
    ("cycles64_add_p99_ms", "new sessions, 64 clients: zcart add p99 (ms)", "<=", 20.0),
    ("cycles64_raft_ratio", "new sessions, 64 clients: zcart cycles/s / raw raft commits/s (K=64)",
     ">=", 0.2),
    ("redis_add8_ratio", "vs Redis: zcart adds/s at 8 / Redis HINCRBY/s at 8", ">=", 1.0),
    ("redis_add1_ratio", "vs Redis: Redis HINCRBY p50 at 1 / zcart add p50 at 1", ">=", 1.0),
    ("redis_cycles8_ratio", "vs Redis: zcart cycles/s at 8 / Redis cycles/s at 8", ">=", 1.0),
    ("etcd_cycles8_ratio",
     "new sessions, 8 clients: zcart cycles/s / etcd txn-assign (random pick) assigns/s", ">=",
     10.0),
]
# Why a ratio can be missing: the server its baseline needs.
NEEDS = {"redis_add8_ratio": "redis-server", "redis_add1_ratio": "redis-server",
         "redis_cycles8_ratio": "redis-server", "etcd_cycles8_ratio": "etcd-server"}
# One new-session cycle in one script (one line: redis-benchmark's CSV
# names the test by its command line): assign a free cart, add, close
# (empty the cart, forget the session), return the cart.
REDIS_CYCLE = " ".join([
    "local cart = redis.call('LPOP', 'free')",
    "if not cart then return 0 end",
    "redis.call('HSET', 'session:' .. ARGV[1], 'cart', cart)",
    "redis.call('HINCRBY', 'items:' .. cart, 'apple', 1)",
    "redis.call('DEL', 'items:' .. cart)",
    "redis.call('DEL', 'session:' .. ARGV[1])",
    "redis.call('RPUSH', 'free', cart)",
    "return 1"])


def log(msg):
    print("compare: %s" % msg, file=sys.stderr, flush=True)


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="bench/compare.py", description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"), help="build/bin")
    ap.add_argument("--rounds", type=int, default=3, help="rounds (default 3, at least 1)")
    ap.add_argument("--seconds", type=int, default=5, help="seconds per measurement (5)")
    ap.add_argument("--base-port", type=int, default=8900, help="the cluster's ports (8900)")
    ap.add_argument("--json", action="store_true", help="print one JSON object at the end")
    ap.add_argument("--install", action="store_true",
                    help="apt-get install Debian's redis-server and etcd-server first if missing (root)")
    a = ap.parse_args(argv)
    if a.rounds < 1 or a.seconds < 1:
        ap.error("--rounds and --seconds must be at least 1")
    return a


def run_json(argv, env=None, timeout=600):
    r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
    lines = r.stdout.strip().splitlines()
    if r.returncode not in (0,) or not lines:
        raise RuntimeError("%s failed (%d): %s" % (os.path.basename(argv[0]), r.returncode,
                                                   (r.stderr or r.stdout).strip()[-400:]))
    return json.loads(lines[-1])


def load_env(run_dir):
    env = dict(os.environ)
    with open(os.path.join(run_dir, "env")) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            if k:
                env[k] = v.strip("'")
    return env


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def busy_seconds():
    """CPU-seconds the whole machine has spent busy since boot (every CPU:
    user, nice, system, irq, softirq, steal; not idle or iowait)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / os.sysconf("SC_CLK_TCK")


def with_cpu(fn):
    """fn's result and the machine's busy CPU-seconds while it ran: what the
    work cost every process on the machine together, load generator and
    kernel threads included (the machine runs nothing else)."""
    b0 = busy_seconds()
    r = fn()
    return r, busy_seconds() - b0


class Run:
    def __init__(self, a):
        self.a = a
        self.dir = tempfile.mkdtemp(prefix="zcart-compare-")
        self.catalog = os.path.join(self.dir, "catalog.csv")
        with open(self.catalog, "w") as f:
            for p in ("apple", "banana", "cherry", "grape", "lemon", "mango", "orange", "pear"):
                f.write("%s,1000000000\n" % p)
        self.run_dir = os.path.join(self.dir, "cluster")

    def up(self):
        r = subprocess.run([CLUSTER, "up", "--dir", self.run_dir, "--replicas", "3",
                            "--cart-nodes", "4", "--slots", "64", "--gateways", "0", "--base-port",
                            str(self.a.base_port), "--bin", self.a.bin, "--catalog", self.catalog],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("zcart-cluster up failed: %s" % r.stderr.strip()[-600:])
        self.env = load_env(self.run_dir)

    def down(self):
        subprocess.run([CLUSTER, "down", "--dir", self.run_dir], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def raw_2hop(self, clients, curve=False, path=False):
        """path: zcart's own path -- three hops (client, replica, cart node,
        stock), each party a process of its own, CurveZMQ."""
        more = ["--hops", "3", "--procs", "1"] if path else []
        return run_json([os.path.join(self.a.bin, "raw_2hop"), "-c", str(clients), "-d",
                         str(self.a.seconds), "--curve", "1" if curve or path else "0"] + more)

    def fsync(self):
        return run_json([os.path.join(self.a.bin, "fsync_probe"),
                         os.path.join(self.run_dir, "cart1", "data"), "500"])

    def raw_raft(self, k, transport="tcp"):
        """canonical/raft alone: 3 processes; the leader's figures."""
        procs, base = [], self.a.base_port + 80
        d = tempfile.mkdtemp(prefix="raft-", dir=self.dir)
        try:
            for i in (1, 2, 3):
                os.makedirs(os.path.join(d, str(i)))
                procs.append(subprocess.Popen(
                    [os.path.join(self.a.bin, "raw_raft"), "--id", str(i), "--dir",
                     os.path.join(d, str(i)), "--port", str(base), "--inflight", str(k),
                     "--seconds", str(self.a.seconds), "--transport", transport],
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
            deadline = time.monotonic() + self.a.seconds + 30
            while time.monotonic() < deadline:
                for p in procs:
                    if p.poll() is not None:
                        out = p.stdout.read().strip().splitlines()
                        if p.returncode == 0 and out:
                            return json.loads(out[-1])
                        raise RuntimeError("raw_raft: the leader lost its leadership "
                                           "during the run (%r)" % out)
                time.sleep(0.1)
            raise RuntimeError("raw_raft: no leader finished within %d s" % (self.a.seconds + 30))
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                p.wait()
            shutil.rmtree(d, ignore_errors=True)

    def redis(self):
        """Single-node Redis with appendfsync always, through redis-benchmark."""
        d = tempfile.mkdtemp(prefix="redis-", dir=self.dir)
        port = self.a.base_port + 90
        p = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                              "--dir", d, "--appendonly", "yes", "--appendfsync", "always",
                              "--save", "", "--daemonize", "no"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            cli = ["redis-cli", "-p", str(port)]
            deadline = time.monotonic() + 10
            while subprocess.run(cli + ["ping"], capture_output=True).returncode != 0:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.1)
            subprocess.run(cli + ["rpush", "free"] + ["c%d" % i for i in range(256)],
                           capture_output=True, check=True)
            n = max(2000, 1500 * self.a.seconds)

            def bench(clients, *cmd):
                r = subprocess.run(["redis-benchmark", "-p", str(port), "-c", str(clients), "-n",
                                    str(n), "--csv"] + list(cmd), capture_output=True, text=True,
                                   timeout=600)
                rows = [l.split('","') for l in r.stdout.strip().splitlines() if l.startswith('"')]
                if r.returncode != 0 or len(rows) < 2:
                    raise RuntimeError("redis-benchmark failed: %s" % r.stderr[-300:])
                row = dict(zip([h.strip('"') for h in rows[0]], [v.strip('"') for v in rows[-1]]))
                return float(row["rps"]), float(row["p50_latency_ms"]) * 1000.0
            add8, _ = bench(8, "HINCRBY", "cart:__rand_int__", "apple", "1")
            _, add1_p50 = bench(1, "HINCRBY", "cart:__rand_int__", "apple", "1")
            cyc8, _ = bench(8, "EVAL", REDIS_CYCLE, "0", "__rand_int__")
            return {"add_c8_per_s": add8, "add_c1_p50_us": add1_p50, "cycles_c8_per_s": cyc8}
        finally:
            p.terminate()
            p.wait()
            shutil.rmtree(d, ignore_errors=True)

    def zcart(self, workload, clients):
        return run_json([os.path.join(self.a.bin, "zcart-bench"), "--brokers",
                         self.env["ZCART_BROKERS"], "-w", workload, "-c", str(clients), "-d",
                         str(self.a.seconds), "--json"], env=self.env)


def one_round(run):
    """The figures of one round, measured in turns."""
    f = {}
    r = run.raw_2hop(1)
    f["raw2hop_c1_p50_us"], f["raw2hop_c1_rt_per_s"] = r["p50_us"], r["rt_per_s"]
    r = run.raw_2hop(1, curve=True)
    f["raw2hop_curve_c1_p50_us"] = r["p50_us"]
    f["rawpath_c1_p50_us"] = run.raw_2hop(1, path=True)["p50_us"]
    z = run.zcart("ops", 1)
    f["zcart_add_c1_p50_us"] = z["ops"]["add"]["p50_us"]
    f["zcart_add_c1_ops_per_s"] = z["ops_per_s"]
    s = run.fsync()
    f["fsync_p50_us"], f["fsync_p99_us"] = s["p50_us"], s["p99_us"]
    r = run.raw_2hop(8)
    f["raw2hop_c8_rt_per_s"], f["raw2hop_c8_p50_us"] = r["rt_per_s"], r["p50_us"]
    r = run.raw_2hop(8, curve=True)
    f["raw2hop_curve_c8_rt_per_s"] = r["rt_per_s"]
    f["rawpath_c8_rt_per_s"] = run.raw_2hop(8, path=True)["rt_per_s"]
    z = run.zcart("ops", 8)
    f["zcart_add_c8_ops_per_s"], f["zcart_add_c8_p50_us"] = z["ops_per_s"], z["ops"]["add"]["p50_us"]
    z = run.zcart("assign", 8)
    f["zcart_cycles_c8_per_s"] = z.get("cycles_per_s")
    z, cpu = with_cpu(lambda: run.zcart("assign", 64))
    f["zcart_cycles_c64_per_s"] = z.get("cycles_per_s")
    f["zcart_cycles_c64_add_p99_us"] = z["ops"]["add"]["p99_us"]
    f["zcart_cycle_c64_cpu_us"] = 1e6 * cpu / max(1, z.get("cycles") or 0)
    r, cpu = with_cpu(lambda: run.raw_raft(64))
    f["raw_raft_k64_commits_per_s"] = r["commits_per_s"]
    f["raw_raft_k64_commit_cpu_us"] = 1e6 * cpu / max(1, r["commits"])
    f["raw_raft_k1_commit_us"] = run.raw_raft(1)["commit_mean_us"]
    f["raw_raft_relay_k1_commit_us"] = run.raw_raft(1, "relay")["commit_mean_us"]
    r, cpu = with_cpu(lambda: run.raw_raft(64, "relay"))
    f["raw_raft_relay_k64_commits_per_s"] = r["commits_per_s"]
    f["raw_raft_relay_k64_commit_cpu_us"] = 1e6 * cpu / max(1, r["commits"])
    if shutil.which("redis-server") and shutil.which("redis-benchmark"):
        r = run.redis()
        f["redis_add_c8_per_s"], f["redis_add_c1_p50_us"] = r["add_c8_per_s"], r["add_c1_p50_us"]
        f["redis_cycles_c8_per_s"] = r["cycles_c8_per_s"]
        f["redis_add8_ratio"] = f["zcart_add_c8_ops_per_s"] / max(1e-9, f["redis_add_c8_per_s"])
        f["redis_add1_ratio"] = f["redis_add_c1_p50_us"] / max(1, f["zcart_add_c1_p50_us"])
        f["redis_cycles8_ratio"] = (f["zcart_cycles_c8_per_s"] or 0) / max(
            1e-9, f["redis_cycles_c8_per_s"])
    if shutil.which("etcd"):
        e = etcd_assign.run(run.dir, seconds=run.a.seconds)
        f["etcd_probe_c8_per_s"] = e["probe"]["per_s"]
        f["etcd_first_free_c8_per_s"] = e["first_free"]["per_s"]
        f["etcd_random_c8_per_s"] = e["random"]["per_s"]
        f["etcd_random_c1_p50_us"] = e["random_c1"]["p50_us"]
        f["etcd_cycles8_ratio"] = (f["zcart_cycles_c8_per_s"] or 0) / max(
            1e-9, f["etcd_random_c8_per_s"])
    f["add1_ratio"] = f["zcart_add_c1_p50_us"] / max(1, f["raw2hop_c1_p50_us"] + f["fsync_p50_us"])
    f["add8_ratio"] = f["zcart_add_c8_ops_per_s"] / max(1e-9, f["raw2hop_c8_rt_per_s"])
    f["path_add1_ratio"] = f["zcart_add_c1_p50_us"] / max(1, f["rawpath_c1_p50_us"] +
                                                         f["fsync_p50_us"])
    f["path_add8_ratio"] = f["zcart_add_c8_ops_per_s"] / max(1e-9, f["rawpath_c8_rt_per_s"])
    f["cycles64_add_p99_ms"] = f["zcart_cycles_c64_add_p99_us"] / 1000.0
    f["cycles64_raft_ratio"] = (f["zcart_cycles_c64_per_s"] or 0) / max(
        1e-9, f["raw_raft_k64_commits_per_s"])
    # The CPU the cycles target leaves a cycle: every core busy, at the
    # target's rate (0.2 x raw raft's K=64 commits/s).
    f["cycle_c64_cpu_budget_us"] = 1e6 * (os.cpu_count() or 1) / max(
        1e-9, 0.2 * f["raw_raft_k64_commits_per_s"])
    return f


def verdict(value, cmp, target):
    ok = value <= target if cmp == "<=" else value >= target
    return "PASS" if ok else "FAIL"


def main(argv):
    a = parse_args(argv)
    for prog in ("raw_2hop", "fsync_probe", "raw_raft", "zcart-bench", "zcart-broker"):
        if not os.access(os.path.join(a.bin, prog), os.X_OK):
            log("%s/%s missing: build first (make build)" % (a.bin, prog))
            return 1
    for prog, pkg in (("redis-server", "redis-server"), ("etcd", "etcd-server")):
        if a.install and not shutil.which(prog):
            r = subprocess.run(["apt-get", "install", "-y", "-q", pkg],
                               env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
                               capture_output=True, text=True)
            if r.returncode != 0:
                log("apt-get install %s failed: %s" % (pkg, r.stderr.strip()[-300:]))
                return 1
    run = Run(a)
    rounds, load0 = [], loadavg()
    try:
        run.up()
        for i in range(a.rounds):
            log("round %d of %d" % (i + 1, a.rounds))
            rounds.append(one_round(run))
    except (RuntimeError, ValueError, KeyError, subprocess.TimeoutExpired) as e:
        log("a measurement failed: %s" % e)
        run.down()
        return 1
    run.down()
    med = {k: statistics.median(r[k] for r in rounds if r.get(k) is not None)
           for k in rounds[0] if any(r.get(k) is not None for r in rounds)}
    results = []
    for key, what, cmp, target in TARGETS:
        if key not in med:
            results.append({"key": key, "what": what, "target": "%s %s" % (cmp, target),
                            "rounds": [], "median": None, "verdict": "n/a",
                            "why": "%s not installed (--install)" % NEEDS.get(key, "?")})
            continue
        results.append({"key": key, "what": what, "target": "%s %s" % (cmp, target),
                        "rounds": [round(r[key], 3) for r in rounds],
                        "median": round(med[key], 3), "verdict": verdict(med[key], cmp, target)})
    out = {"machine": {"cores": os.cpu_count(), "loadavg_start": load0, "loadavg_end": loadavg(),
                       "when": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())},
           "rounds": rounds, "median": med, "ratios": results}
    print("bench-compare: %d round(s) x %d s, %d cores, load %s -> %s" % (
        a.rounds, a.seconds, os.cpu_count(), load0, out["machine"]["loadavg_end"]))
    print("%-34s %s" % ("figure (median of the rounds)", "value"))
    for k in ("raw2hop_c1_p50_us", "raw2hop_curve_c1_p50_us", "rawpath_c1_p50_us", "fsync_p50_us",
              "zcart_add_c1_p50_us", "raw2hop_c8_rt_per_s", "raw2hop_curve_c8_rt_per_s",
              "rawpath_c8_rt_per_s", "path_add1_ratio", "path_add8_ratio",
              "zcart_add_c8_ops_per_s", "zcart_cycles_c8_per_s", "zcart_cycles_c64_per_s",
              "zcart_cycles_c64_add_p99_us", "zcart_cycle_c64_cpu_us",
              "cycle_c64_cpu_budget_us", "raw_raft_k64_commits_per_s",
              "raw_raft_k64_commit_cpu_us", "raw_raft_k1_commit_us",
              "raw_raft_relay_k1_commit_us", "raw_raft_relay_k64_commits_per_s",
              "raw_raft_relay_k64_commit_cpu_us", "redis_add_c8_per_s",
              "redis_add_c1_p50_us", "redis_cycles_c8_per_s", "etcd_probe_c8_per_s",
              "etcd_first_free_c8_per_s", "etcd_random_c8_per_s", "etcd_random_c1_p50_us"):
        if k in med:
            print("  %-32s %.*f" % (k, 3 if k.endswith("_ratio") else 1, med[k]))
    for r in results:
        print("%-4s %s: %s (target %s; rounds %s)%s" % (
            r["verdict"], r["what"], r["median"], r["target"], r["rounds"],
            "  -- " + r["why"] if r.get("why") else ""))
    if a.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
