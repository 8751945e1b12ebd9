#!/usr/bin/python3
"""test_ops_http: every daemon's --http endpoints (issue 15; docs/operations.md).

Design
------
zcart-cluster starts every daemon with --http on a port of its own and
writes the base URLs to RUN/env (ZCART_HTTP, brokers first) and the plan.

m1. Every daemon (3 replicas, 2 cart nodes, stock) answers /healthz 200
    "ok" and /readyz 200 "ready"; its /metrics passes `promtool check
    metrics` (Prometheus' own linter: names, types, HELP, histogram
    buckets); an unknown path is 404, a POST 405 and never reaches a
    handler.
m2. The counters count: one new session's add moves the leader's
    zcart_requests_total{op="add",status="OK"} by exactly 1, its committed
    proposals and commit-latency count up, the serving cart node's OK
    replies by 1 and its stock-check histogram by 1, stock's OK checks by
    1; every replica shows zcart_carts{state="assigned"} 1 once applied.
m3. A follower's readiness flips: with its raft port cut (nft drops
    loopback packets to it) it loses the leader and /readyz says 503 and
    why, while the other replicas stay ready; healed, it is ready again
    and has applied what the leader committed meanwhile.
m4. A cart node's readiness flips: with 2 of 3 replicas paused (SIGSTOP)
    no ready leader is left for it to hear and /readyz says 503; resumed,
    200 again.
m5. A cart node connected to the followers only (its --brokers lists the
    two followers' cart endpoints) is not ready -- it hears a majority of its
    list, but no ready leader -- while cart1, connected to all, is.
"""

import json
import os
import re
import shutil
import subprocess
import time
import unittest
import urllib.error
import urllib.request

import harness
from harness import CliSession, wait_until

PROMTOOL = shutil.which("promtool")


def get(url, method="GET", timeout=3):
    """(status, body text) of one HTTP request."""
    req = urllib.request.Request(url, method=method, data=b"x" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metrics(url):
    """{'name{labels}': value} of one /metrics page."""
    status, text = get(url + "/metrics")
    assert status == 200, (url, status, text)
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def http_of(c):
    """{process name: base URL} from the cluster's plan."""
    return {p["name"]: p["http"] for p in c.plan["procs"]}


class OpsHttp(harness.ClusterTestCase):
    def test_m1_endpoints_and_promtool(self):
        self.assertIsNotNone(PROMTOOL, "promtool missing: scripts/install-deps.sh installs prometheus")
        c = self.cluster(replicas=3, cart_nodes=2, slots=2)
        urls = http_of(c)
        self.assertEqual(set(urls), {"broker1", "broker2", "broker3", "cart1", "cart2", "stock1"})
        env = open(os.path.join(c.dir, "env")).read()
        listed = re.search(r"^ZCART_HTTP=(.*)$", env, re.M).group(1).split(",")
        self.assertEqual(listed[:3], [urls["broker1"], urls["broker2"], urls["broker3"]])
        self.assertEqual(set(listed), set(urls.values()))
        for name, u in urls.items():
            self.assertEqual(get(u + "/healthz"), (200, "ok\n"), name)
            wait_until(lambda: get(u + "/readyz") == (200, "ready\n"), 15, "%s ready" % name)
            status, text = get(u + "/metrics")
            self.assertEqual(status, 200, name)
            r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                               text=True, timeout=30)
            self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""), name)
            self.assertEqual(get(u + "/nope")[0], 404, name)
            self.assertEqual(get(u + "/metrics", method="POST")[0], 405, name)

    def test_m2_counters_count(self):
        c = self.cluster(replicas=3, cart_nodes=1, slots=2)
        urls = http_of(c)
        leader = c.leader_endpoint()
        lname = [p["name"] for p in c.plan["procs"] if p.get("endpoint") == leader][0]
        add_ok = 'zcart_requests_total{op="add",status="OK"}'
        before = {n: metrics(u) for n, u in urls.items()}
        s = CliSession(c)
        r = s.add("apple", 1)
        self.assertTrue(r["ok"], r)
        after = {n: metrics(u) for n, u in urls.items()}
        self.assertEqual(after[lname][add_ok] - before[lname][add_ok], 1)
        committed = 'zcart_raft_proposals_total{outcome="committed"}'
        self.assertGreaterEqual(after[lname][committed] - before[lname][committed], 1)
        self.assertGreater(after[lname]["zcart_raft_commit_seconds_count"],
                           before[lname]["zcart_raft_commit_seconds_count"])
        self.assertEqual(after[lname]['zcart_request_seconds_count{op="add"}']
                         - before[lname]['zcart_request_seconds_count{op="add"}'], 1)
        ok = 'zcart_cart_replies_total{status="OK"}'
        self.assertEqual(after["cart1"][ok] - before["cart1"][ok], 1)
        self.assertEqual(after["cart1"]["zcart_cart_stock_check_seconds_count"]
                         - before["cart1"]["zcart_cart_stock_check_seconds_count"], 1)
        sok = 'zcart_stock_checks_total{status="OK"}'
        self.assertEqual(after["stock1"][sok] - before["stock1"][sok], 1)
        for n in ("broker1", "broker2", "broker3"):
            wait_until(lambda: metrics(urls[n])['zcart_carts{state="assigned"}'] == 1, 10,
                       "%s applied the ASSIGN" % n)
            role = [k for k, v in metrics(urls[n]).items()
                    if k.startswith("zcart_raft_role{") and v == 1]
            self.assertEqual(len(role), 1, role)
            self.assertEqual(role[0] == 'zcart_raft_role{role="leader"}', n == lname)

    @unittest.skipUnless(shutil.which("nft") and os.geteuid() == 0, "needs root and nft")
    def test_m3_follower_cut_from_raft_is_not_ready(self):
        c = self.cluster(replicas=3, cart_nodes=1, slots=12,
                         broker_args=["--election-timeout=300", "--ready-lag=5"])
        urls = http_of(c)
        leader = c.leader_endpoint()
        brokers = [p for p in c.plan["procs"] if p["kind"] == "broker"]
        follower = [p for p in brokers if p["endpoint"] != leader][0]
        port = int(follower["raft"].rsplit(":", 1)[1])
        table = "zcart_it_%d" % os.getpid()
        subprocess.run(["nft", "add", "table", "inet", table], check=True)
        try:
            subprocess.run(["nft", "add", "chain", "inet", table, "in",
                            "{ type filter hook input priority 0 ; }"], check=True)
            subprocess.run(["nft", "add", "rule", "inet", table, "in", "tcp", "dport",
                            str(port), "drop"], check=True)
            u = urls[follower["name"]]
            st, why = wait_until(lambda: (lambda r: r if r[0] == 503 else None)(get(u + "/readyz")),
                                 15, "the cut follower not ready")
            self.assertIn("no leader known", why)
            # The others serve on: sessions commit without the cut follower.
            for _ in range(8):
                self.assertTrue(CliSession(c).add("apple", 1)["ok"])
            for p in brokers:
                if p is not follower:
                    self.assertEqual(get(urls[p["name"]] + "/readyz")[0], 200, p["name"])
        finally:
            subprocess.run(["nft", "delete", "table", "inet", table], check=False)
        wait_until(lambda: get(u + "/readyz")[0] == 200, 20, "the healed follower ready")
        lead = metrics(urls[[p["name"] for p in brokers if p["endpoint"] == leader][0]])
        wait_until(lambda: metrics(u)["zcart_raft_applied_index"] >= lead["zcart_raft_commit_index"],
                   10, "the healed follower caught up")

    def test_m4_cart_node_hearing_a_minority_is_not_ready(self):
        c = self.cluster(replicas=3, cart_nodes=1, slots=2, hello_interval=100)
        urls = http_of(c)
        u = urls["cart1"]
        wait_until(lambda: get(u + "/readyz")[0] == 200, 10, "cart1 ready")
        c.pause("broker2")
        c.pause("broker3")
        try:
            st, why = wait_until(lambda: (lambda r: r if r[0] == 503 else None)(get(u + "/readyz")),
                                 15, "cart1 not ready")
            self.assertIn("no heartbeat from a ready leader", why)
            wait_until(lambda: (lambda m: (m['zcart_cart_replicas{heard="yes"}'],
                                           m['zcart_cart_replicas{heard="no"}']) == (1, 2))(
                metrics(u)), 15, "cart1 to count 2 silent replicas")
        finally:
            c.resume("broker2")
            c.resume("broker3")
        wait_until(lambda: get(u + "/readyz")[0] == 200, 15, "cart1 ready again")


    def test_m5_cart_node_without_the_leader_is_not_ready(self):
        c = self.cluster(replicas=3, cart_nodes=1, slots=2, hello_interval=100)
        urls = http_of(c)
        ld = wait_until(c.leader, 15, "a ready leader")
        fol = [p["cart_endpoint"] for p in c.plan["procs"]
               if p["kind"] == "broker" and p["endpoint"] != ld["endpoint"]]
        port = c.port()
        c.start_cart_node("cartx", 2, fol, c.stock_endpoints,
                          extra_args=["--http", "127.0.0.1:%d" % port])
        u = "http://127.0.0.1:%d" % port
        wait_until(lambda: (lambda m: m['zcart_cart_replicas{heard="yes"}'] == 2)(metrics(u)), 15,
                   "cartx to hear both followers")
        st, why = get(u + "/readyz")
        self.assertEqual(st, 503, why)
        self.assertIn("no heartbeat from a ready leader", why)
        self.assertEqual(metrics(u)["zcart_cart_leader_term"], 0)
        self.assertEqual(get(urls["cart1"] + "/readyz")[0], 200)
        self.assertEqual(metrics(urls["cart1"])["zcart_cart_leader_term"], ld["term"])


if __name__ == "__main__":
    harness.main()
