#!/usr/bin/python3
"""test_recover: a cluster that lost its quorum for good serves again (issue 15).

Design
------
Two of three replicas are gone for good (SIGKILL, data wiped): the survivor
cannot elect itself, nothing commits.  The runbook (docs/operations.md,
"Quorum loss") restarts the survivor with `--recover` and only its own
`--replica`: raft_recover writes a configuration of that one member into
its log, it leads alone and serves; new replicas then join with --join and
`zcart admin add-node` as usual.

r1. 3 replicas, two sessions with items, converged (digest D).  broker1
    and broker3 are killed and their data wiped, broker2 stopped.  broker2
    restarted with --recover and only itself: it becomes the ready leader
    with digest D, its log says RECOVER, both sessions list their items and
    a new session is served through it.  A fresh replica 4 joins (--join,
    admin add-node) and converges to the same digest.  --recover with
    --join is refused at start.
"""

import os
import shutil
import subprocess

import harness
from harness import CliSession, converged, wait_until


class Recover(harness.ClusterTestCase):
    def test_r1_one_survivor_recovers_the_cluster(self):
        c = self.cluster(replicas=3, cart_nodes=2, slots=4)
        s1, s2 = CliSession(c), CliSession(c)
        s1.add("apple", 2)
        s2.add("pear", 1)
        st = wait_until(lambda: converged(c), 20, "converged")
        digest = st[0]["digest"]
        b2 = [p for p in c.plan["procs"] if p["name"] == "broker2"][0]
        for n in ("broker1", "broker3"):
            c.kill(n)
            shutil.rmtree(os.path.join(c.dir, n, "data"))
        c.tool("stop", "broker2")
        argv, i = [], 0
        while i < len(b2["argv"]):  # keep every flag but the other members
            a = b2["argv"][i]
            if a == "--replica" and not b2["argv"][i + 1].startswith("2="):
                i += 2
                continue
            argv.append(a)
            i += 1
        bad = subprocess.run(argv + ["--recover", "--join"], capture_output=True, text=True,
                             timeout=30)
        self.assertEqual(bad.returncode, 2)
        self.assertIn("--recover and --join exclude each other", bad.stderr)
        c._spawn_extra("broker2", argv + ["--recover"])
        ep2 = b2["endpoint"]
        ld = wait_until(lambda: (lambda s: s if s.get("role") == "leader" and s.get("ready") == 1
                                 else None)(self.status_of(c, ep2)), 20, "broker2 to lead alone")
        self.assertEqual(ld["digest"], digest)
        with open(os.path.join(c.dir, "broker2", "log")) as f:
            self.assertIn("RECOVER: forced a configuration of 1 member(s)", f.read())
        for s, want in ((s1, {"apple": 2}), (s2, {"pear": 1})):
            rc, r = c.cli("list", session=s.id, brokers=[ep2])
            self.assertEqual((rc, {i["product"]: i["qty"] for i in r["items"]}), (0, want), r)
        rc, r = c.cli("add", "cherry", 1, brokers=[ep2])
        self.assertEqual((rc, r.get("ok")), (0, True), r)
        name, me = c.start_extra_broker(4)
        rc, r = c.cli("admin", "add-node", 4, "%s,%s,%s" % (me["raft"], me["client"], me["cart"]),
                      brokers=[ep2], timeout_ms=20000)
        self.assertEqual((rc, r.get("ok")), (0, True), r)
        st = wait_until(lambda: converged(c, [ep2, me["client"]]), 20, "broker2 and broker4 converged")
        self.assertEqual(len({s["digest"] for s in st}), 1)

    @staticmethod
    def status_of(c, ep):
        try:
            return c.replica_status(ep, timeout=0.5)
        except Exception:
            return {}


if __name__ == "__main__":
    harness.main()
