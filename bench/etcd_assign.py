#!/usr/bin/python3
"""bench/etcd_assign.py: etcd's answer to zcart's cart assignment, the
baseline of issue 16's "new sessions, 8 clients >= 10 x etcd" target.

The question: a shop that keeps its free carts in etcd (Debian's
etcd-server 3.4, one node, its own fsync per commit) instead of zcart --
how many sessions a second can it hand a cart?  Only the assignment is
measured (no add, no close), so the figure is an upper bound for etcd's
side of a whole cycle.

  setup       one etcd on loopback (own data directory under --dir, so on
              the same filesystem as the cluster it is compared with),
              N carts loaded in 128-key transactions: "cart/<id>" = "free"
              and "free/<id>" = "" (the free list, in key order)
  first-free  each client reads the first key of "free/" (range, limit 1)
              and assigns it in one transaction: compare that key's
              mod_revision, then delete it and put "cart/<id>" = session.
              Every client wants the same key, so most transactions lose
              and retry: the classic free-list-in-a-KV-store contention
  random      each client picks a random cart of the N and assigns it in one
              transaction: compare "cart/<id>" == "free", then put the
              session there and delete "free/<id>"; a taken cart is a lost
              compare, retried with another pick
  probe       the same clients sending serializable single-key ranges (no
              consensus, no fsync): what the client side itself can do, so
              that the figures above are etcd's and not this script's

Clients are processes (not threads: Python's lock would make the client
the bottleneck), each with its own keep-alive HTTP connection to etcd's
v3 JSON gateway (/v3/kv/range, /v3/kv/txn; keys and values base64).  Rates
count successful assigns; `tries_per_assign` says how many transactions
each took.  The carts are reloaded before each measurement.

Run alone: bench/etcd_assign.py [--carts 10000] [--clients 8] [--seconds 5]
(prints one JSON object); bench/compare.py runs it in every round when
`etcd` is installed (`--install` installs etcd-server).
"""

import argparse
import base64
import http.client
import json
import multiprocessing
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time


def b64(s):
    return base64.b64encode(s.encode()).decode()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Etcd:
    """One etcd process on loopback, stopped (and its data removed) by stop()."""

    def __init__(self, parent_dir):
        self.dir = tempfile.mkdtemp(prefix="etcd-", dir=parent_dir)
        self.port, peer = free_port(), free_port()
        url, purl = "http://127.0.0.1:%d" % self.port, "http://127.0.0.1:%d" % peer
        self.log = open(os.path.join(self.dir, "log"), "wb")
        self.p = subprocess.Popen(
            ["etcd", "--name", "bench", "--data-dir", os.path.join(self.dir, "data"),
             "--listen-client-urls", url, "--advertise-client-urls", url,
             "--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
             "--initial-cluster", "bench=" + purl],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            try:
                if self.call(http.client.HTTPConnection("127.0.0.1", self.port, timeout=2),
                             "/v3/kv/range", {"key": b64("probe")}) is not None:
                    return
            except OSError:
                pass
            if self.p.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("etcd did not start (see %s/log)" % self.dir)
            time.sleep(0.05)

    @staticmethod
    def call(conn, path, body):
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError("etcd %s: HTTP %d %s" % (path, r.status, data[:200]))
        return json.loads(data)

    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def load(self, n):
        """n free carts, replacing whatever an earlier measurement left."""
        c = self.conn()
        for prefix in ("cart/", "free/"):
            self.call(c, "/v3/kv/deleterange", {"key": b64(prefix), "range_end": b64(prefix[:-1] + "0")})
        for first in range(0, n, 64):
            ops = []
            for i in range(first, min(n, first + 64)):
                ops.append({"request_put": {"key": b64("cart/%06d" % i), "value": b64("free")}})
                ops.append({"request_put": {"key": b64("free/%06d" % i), "value": ""}})
            self.call(c, "/v3/kv/txn", {"success": ops})
        c.close()

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def first_free(etcd, conn, session, rnd, carts):
    """One assign from the head of the free list; the transactions it took."""
    tries = 0
    while True:
        tries += 1
        r = etcd.call(conn, "/v3/kv/range", {"key": b64("free/"), "range_end": b64("free0"),
                                             "limit": 1})
        kvs = r.get("kvs") or []
        if not kvs:
            raise RuntimeError("etcd: no free cart left (raise --carts)")
        key, rev = kvs[0]["key"], kvs[0]["mod_revision"]
        cart = "cart/" + base64.b64decode(key).decode()[5:]
        t = etcd.call(conn, "/v3/kv/txn", {
            "compare": [{"key": key, "target": "MOD", "result": "EQUAL", "mod_revision": rev}],
            "success": [{"request_delete_range": {"key": key}},
                        {"request_put": {"key": b64(cart), "value": b64(session)}}]})
        if t.get("succeeded"):
            return tries


def random_pick(etcd, conn, session, rnd, carts):
    """One assign of a random free cart; the transactions it took."""
    tries = 0
    while True:
        tries += 1
        i = rnd.randrange(carts)
        t = etcd.call(conn, "/v3/kv/txn", {
            "compare": [{"key": b64("cart/%06d" % i), "target": "VALUE", "result": "EQUAL",
                         "value": b64("free")}],
            "success": [{"request_put": {"key": b64("cart/%06d" % i), "value": b64(session)}},
                        {"request_delete_range": {"key": b64("free/%06d" % i)}}]})
        if t.get("succeeded"):
            return tries
        if tries > 1000:
            raise RuntimeError("etcd: 1000 random picks found no free cart")


def probe(etcd, conn, session, rnd, carts):
    etcd.call(conn, "/v3/kv/range", {"key": b64("cart/%06d" % rnd.randrange(carts)),
                                     "serializable": True})
    return 1


def measure(etcd, op, clients, seconds, carts):
    """Run op in `clients` processes for `seconds`: rate, p50/p99, tries."""
    ctx = multiprocessing.get_context("fork")
    start, results = ctx.Barrier(clients + 1), ctx.Queue()

    def worker(k):
        conn, rnd = etcd.conn(), random.Random(k * 7919 + 1)
        lat, tries, error = [], 0, None
        start.wait()
        stop_at = time.monotonic() + seconds
        try:
            while time.monotonic() < stop_at:
                t0 = time.monotonic()
                tries += op(etcd, conn, "s%02d-%07d" % (k, len(lat)), rnd, carts)
                lat.append(time.monotonic() - t0)
        except (OSError, RuntimeError, ValueError) as e:
            error = str(e)
        conn.close()
        results.put((lat, tries, error))

    procs = [ctx.Process(target=worker, args=(k,)) for k in range(clients)]
    for p in procs:
        p.start()
    start.wait()
    t0 = time.monotonic()
    got = [results.get(timeout=seconds + 60) for _ in procs]
    took = time.monotonic() - t0
    for p in procs:
        p.join()
    errors = [e for _, _, e in got if e]
    if errors:
        raise RuntimeError(errors[0])
    all_lat = sorted(x for lat, _, _ in got for x in lat)
    n = len(all_lat)
    if n == 0:
        raise RuntimeError("etcd: no %s completed" % op.__name__)
    return {"per_s": round(n / took, 1), "p50_us": round(all_lat[n // 2] * 1e6),
            "p99_us": round(all_lat[min(n - 1, n * 99 // 100)] * 1e6),
            "tries_per_assign": round(sum(t for _, t, _ in got) / n, 2), "n": n}


def run(parent_dir, carts=10000, clients=8, seconds=5):
    """Every figure, on a fresh etcd (stopped at the end)."""
    etcd = Etcd(parent_dir)
    try:
        out = {"carts": carts, "clients": clients, "seconds": seconds}
        etcd.load(carts)
        out["probe"] = measure(etcd, probe, clients, min(seconds, 3), carts)
        etcd.load(carts)
        out["first_free"] = measure(etcd, first_free, clients, seconds, carts)
        etcd.load(carts)
        out["random"] = measure(etcd, random_pick, clients, seconds, carts)
        etcd.load(carts)
        out["random_c1"] = measure(etcd, random_pick, 1, min(seconds, 3), carts)
        return out
    finally:
        etcd.stop()


def main(argv):
    ap = argparse.ArgumentParser(prog="bench/etcd_assign.py", description=__doc__.split("\n")[0])
    ap.add_argument("--carts", type=int, default=10000, help="free carts (10000)")
    ap.add_argument("--clients", type=int, default=8, help="client threads (8)")
    ap.add_argument("--seconds", type=int, default=5, help="seconds per measurement (5)")
    ap.add_argument("--dir", default=tempfile.gettempdir(), help="where etcd's data goes")
    a = ap.parse_args(argv)
    if not shutil.which("etcd"):
        print("bench/etcd_assign.py: etcd not installed (apt-get install etcd-server)",
              file=sys.stderr)
        return 1
    print(json.dumps(run(a.dir, a.carts, a.clients, a.seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
