#!/usr/bin/python3
"""bench/budget.py: where the time of one routed add goes (issue 16's
latency budget; `make bench-budget`, bench/README.md "Latency budget").

A benchmark, not a test.  Brings up a local cluster (3 replicas, 4 cart
nodes x 64 slots, one stock service), secure and then with --insecure, in
turns for --rounds rounds, and on each runs `zcart-bench -w ops -c 1` for
--seconds.  Around each run it reads the /metrics pages of the leader and
of every cart node, so every part below is the *mean* over the same adds
(a histogram's _sum / _count difference: exact, unlike its coarse
buckets), measured in the same seconds as the client's own figures:

  client            zcart-bench's mean add latency (and its p50)
  leader            zcart_request_seconds{op="add"}: a request's arrival at
                    the leader to its answer leaving it
  cart: stock       zcart_cart_stock_check_seconds: asking the stock
                    service to its answer, on the cart node
  cart: commit      zcart_cart_commit_seconds: the cart node's durable
                    commit before its replies: one write-ahead log record
                    and its fdatasync (cart/store.c; before that store, an
                    LMDB commit with full sync: two flushes)
  cart: checkpoint  zcart_cart_checkpoint_seconds: the LMDB commits that
                    take over what the log holds (every 200 ms, off the
                    replies' path but on the node's loop), mean and per s
  client <-> leader client - leader: libzcart, both hops, both sockets
  leader <-> cart   leader - stock - commit: the broker's routing, the hops
                    to the cart node and back, the cart's decoding and apply

Then, secure only, the same for new sessions (`-w assign -c 1`: assign,
add, close): the client's first-add and close means, the leader's
zcart_request_seconds for add and close, its zcart_raft_commit_seconds
(proposing a command to applying it: one raft commit, ASSIGN, RELEASE or
RETURN), and the carts' commits per new session.

Prints a table per mode and the difference secure - insecure per part;
--json prints every round's figures.

    bench/budget.py [--rounds 3] [--seconds 10] [--bin build/bin] [--json]
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLUSTER = os.path.join(ROOT, "deploy", "local", "zcart-cluster")


def scrape(url):
    """{sample name with labels: value} of one /metrics page."""
    out = {}
    with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                out[k] = float(v)
    return out


def mean_us(before, after, name, labels=""):
    """Mean of a histogram's observations between two scrapes, in µs."""
    n = after.get("%s_count%s" % (name, labels), 0) - before.get("%s_count%s" % (name, labels), 0)
    s = after.get("%s_sum%s" % (name, labels), 0) - before.get("%s_sum%s" % (name, labels), 0)
    return (s / n * 1e6 if n else None), int(n)


class Cluster:
    def __init__(self, a, insecure):
        self.a, self.insecure = a, insecure
        self.dir = tempfile.mkdtemp(prefix="zcart-budget-")
        self.run_dir = os.path.join(self.dir, "run")

    def up(self):
        catalog = os.path.join(self.dir, "catalog.csv")
        with open(catalog, "w") as f:  # zcart-bench's default products, never short
            for product in ("apple", "banana", "cherry", "grape", "lemon", "mango", "orange",
                            "pear"):
                f.write("%s,1000000000\n" % product)
        args = [CLUSTER, "up", "--fresh", "--dir", self.run_dir, "--bin", self.a.bin,
                "--replicas", "3", "--cart-nodes", "4", "--slots", "64", "--gateways", "0",
                "--catalog", catalog, "--base-port", str(self.a.base_port), "--wait", "120"]
        if self.insecure:
            args.append("--insecure")
        r = subprocess.run(args, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit("budget: zcart-cluster up failed: %s" % r.stderr[-800:])
        self.env = dict(os.environ)
        with open(os.path.join(self.run_dir, "env")) as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                if k:
                    self.env[k] = v.strip("'")
        with open(os.path.join(self.run_dir, "cluster.json")) as f:
            self.plan = json.load(f)

    def urls(self):
        """The leader's and the cart nodes' --http base URLs."""
        st = json.loads(subprocess.run([os.path.join(self.a.bin, "zcart"), "--json", "status"],
                                       capture_output=True, text=True, env=self.env).stdout)
        leader = [r["endpoint"] for r in st["replicas"] if r.get("role") == "leader"][0]
        lurl = [p["http"] for p in self.plan["procs"] if p.get("endpoint") == leader][0]
        carts = [p["http"] for p in self.plan["procs"] if p["kind"] == "cart"]
        return lurl, carts

    def down(self):
        subprocess.run([CLUSTER, "down", "--dir", self.run_dir], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def measure(a, c):
    lurl, carts = c.urls()
    before = (scrape(lurl), [scrape(u) for u in carts])
    args = [os.path.join(a.bin, "zcart-bench"), "-w", "ops", "-c", "1", "-d", str(a.seconds),
            "--json"] + (["--insecure"] if c.insecure else [])
    r = subprocess.run(args, capture_output=True, text=True, env=c.env)
    z = json.loads(r.stdout.strip().splitlines()[-1])
    after = (scrape(lurl), [scrape(u) for u in carts])
    f = {"client_mean_us": z["ops"]["add"]["mean_us"], "client_p50_us": z["ops"]["add"]["p50_us"],
         "adds": z["ops"]["add"]["requests"], "adds_ok": z["ops"]["add"]["ok"]}
    f["leader_mean_us"], f["leader_n"] = mean_us(before[0], after[0], "zcart_request_seconds",
                                                 '{op="add"}')
    for key, name in (("stock", "zcart_cart_stock_check_seconds"),
                      ("commit", "zcart_cart_commit_seconds"),
                      ("ckpt", "zcart_cart_checkpoint_seconds")):
        s = n = 0.0
        for b, e in zip(before[1], after[1]):
            m, k = mean_us(b, e, name)
            if k:
                s += m * k
                n += k
        f[key + "_mean_us"], f[key + "_n"] = (s / n if n else None), int(n)
    f["ckpt_per_s"] = f["ckpt_n"] / a.seconds
    f["client_leader_us"] = f["client_mean_us"] - f["leader_mean_us"]
    f["leader_cart_us"] = f["leader_mean_us"] - (f["stock_mean_us"] or 0) - (f["commit_mean_us"] or 0)
    return f


def measure_sessions(a, c):
    """A new session's parts (secure cluster, -w assign -c 1), means in µs."""
    lurl, carts = c.urls()
    before = (scrape(lurl), [scrape(u) for u in carts])
    args = [os.path.join(a.bin, "zcart-bench"), "-w", "assign", "-c", "1", "-d",
            str(a.seconds), "--json"]
    r = subprocess.run(args, capture_output=True, text=True, env=c.env)
    z = json.loads(r.stdout.strip().splitlines()[-1])
    after = (scrape(lurl), [scrape(u) for u in carts])
    f = {"cycles_per_s": z["cycles_per_s"], "add_mean_us": z["ops"]["add"]["mean_us"],
         "close_mean_us": z["ops"]["close"]["mean_us"]}
    f["leader_add_us"], _ = mean_us(before[0], after[0], "zcart_request_seconds", '{op="add"}')
    f["leader_close_us"], _ = mean_us(before[0], after[0], "zcart_request_seconds",
                                      '{op="close"}')
    f["raft_commit_us"], n = mean_us(before[0], after[0], "zcart_raft_commit_seconds")
    f["raft_commits_per_cycle"] = n / max(1, z["cycles"])
    commits = sum(mean_us(b, e, "zcart_cart_commit_seconds")[1] for b, e in zip(*[before[1], after[1]]))
    f["cart_commits_per_cycle"] = commits / max(1, z["cycles"])
    return f


SESSION_PARTS = [("cycles_per_s", "new sessions/s (assign, add, close; 1 client)"),
                 ("add_mean_us", "client: first add (assigns the cart), mean"),
                 ("leader_add_us", "leader: that add, arrival to answer"),
                 ("close_mean_us", "client: close, mean"),
                 ("leader_close_us", "leader: that close, arrival to answer"),
                 ("raft_commit_us", "leader: one raft commit, proposed to applied"),
                 ("raft_commits_per_cycle", "raft commits per new session"),
                 ("cart_commits_per_cycle", "cart-node durable commits per new session")]

PARTS = [("client_mean_us", "client: mean add (p50 below)"),
         ("client_leader_us", "client <-> leader: libzcart and both hops"),
         ("leader_cart_us", "leader <-> cart: routing, hops, cart decode and apply"),
         ("stock_mean_us", "cart: stock check (cart -> stock -> cart)"),
         ("commit_mean_us", "cart: durable commit (log record + fdatasync)"),
         ("ckpt_mean_us", "cart: checkpoint, mean (LMDB full sync; off the path)"),
         ("ckpt_per_s", "cart: checkpoints per second, all nodes"),
         ("client_p50_us", "client: p50 add")]


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    return xs[len(xs) // 2] if xs else None


def main():
    ap = argparse.ArgumentParser(description="where a routed add's time goes")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--base-port", type=int, default=8800)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    load0 = os.getloadavg()
    res = {"secure": [], "insecure": []}
    for rnd in range(a.rounds):
        for mode in ("secure", "insecure"):
            c = Cluster(a, mode == "insecure")
            try:
                c.up()
                time.sleep(3)
                res[mode].append(measure(a, c))
            finally:
                c.down()
            print("budget: round %d %s: %s" % (rnd + 1, mode, {k: round(v) if isinstance(v, float) else v
                                                             for k, v in res[mode][-1].items()}),
                  file=sys.stderr, flush=True)
    print("bench/budget.py: routed add, 1 client, %d round(s) x %d s, load %.2f -> %.2f"
          % (a.rounds, a.seconds, load0[0], os.getloadavg()[0]))
    print("%-58s %10s %10s %10s" % ("part (median of the rounds, µs)", "secure", "insecure",
                                    "difference"))
    for key, what in PARTS:
        s, i = median(r[key] for r in res["secure"]), median(r[key] for r in res["insecure"])
        d = "" if s is None or i is None else "%.0f" % (s - i)
        print("%-58s %10s %10s %10s" % (what, "%.0f" % s if s is not None else "-",
                                        "%.0f" % i if i is not None else "-", d))
    sess = []
    for rnd in range(a.rounds):
        c = Cluster(a, False)
        try:
            c.up()
            time.sleep(3)
            sess.append(measure_sessions(a, c))
        finally:
            c.down()
        print("budget: round %d new sessions: %s" % (rnd + 1, {k: round(v, 2) for k, v in
                                                               sess[-1].items()}),
              file=sys.stderr, flush=True)
    print("%-58s %10s" % ("new session, secure (median of the rounds)", "value"))
    for key, what in SESSION_PARTS:
        v = median(r[key] for r in sess)
        print("%-58s %10s" % (what, "-" if v is None else ("%.2f" % v if v < 10 else "%.0f" % v)))
    if a.json:
        print(json.dumps({"load": [load0[0], os.getloadavg()[0]], "rounds": res,
                          "sessions": sess}))


if __name__ == "__main__":
    main()
