#!/usr/bin/python3
"""test_membership: leadership transfer and adding/removing a replica, under load.

Design
------
Load is `zcart-bench --json` (libzcart's failover and retries) with two
workloads at once: `ops` (one session per client, routed adds: client ->
leader -> cart) and `assign` (new session, add, close: ASSIGN, RELEASE and
RETURN commits).  A bench runs until the test has seen the change it is
there for and then some more commits, and is stopped with SIGTERM (it
finishes its requests and reports).  Its outcomes must be answers
(no UNREACHABLE, no LOCAL_ERROR) and OK, except NO_FREE_CART for assign
(every cart briefly taken or draining).

m1. `zcart admin transfer-leader ID` names a follower while both benches
    run: the admin answer is OK, the named replica becomes the ready
    leader, the load goes on under it, and afterwards all three converge.

m2. A fourth broker process is started with --join and the three members'
    --replica flags plus its own (harness.start_extra_broker: ports from
    the run's test range).  `zcart admin add-node 4 RAFT,CLIENT,CART` while
    both benches run answers OK (after the new server has caught up and
    votes); once the load is stopped all four replicas report one applied
    index and digest and the leader lists member 4 as a voter.  Then,
    under load again, `zcart admin remove-node 4` answers OK; once the load
    is stopped the three remaining replicas converge, none lists member 4,
    and a new session is served.  The fourth process is stopped last
    (teardown stops it too if the test fails before).
"""

import os
import time

import harness
from harness import CliSession, wait_until

CATALOG = "apple,banana,cherry,grape"


class Membership(harness.ClusterTestCase):
    def start_load(self, c):
        self.runs = getattr(self, "runs", 0) + 1
        benches = []
        for w in ("ops", "assign"):
            tl = os.path.join(c.dir, "bench-%s-%d.timeline" % (w, self.runs))
            benches.append((c.bench_popen("-w", w, "-c", 3, "--catalog", CATALOG,
                                          "--timeline", tl), tl))
        return benches

    def admin(self, c, *args, **kw):
        """`zcart admin ARGS`; (exit status, answer, wall-clock µs window of the call)."""
        t0 = int(time.time() * 1e6)
        rc, r = c.cli("admin", *args, **kw)
        return rc, r, (t0, int(time.time() * 1e6))

    def commits_grow(self, c, by, what):
        """Wait until the leader's commit_index grew by `by`: the load runs."""
        start = wait_until(c.leader, 10, "a ready leader")["commit_index"]
        return wait_until(lambda: (lambda s: s if s and s["commit_index"] >= start + by
                                   else None)(c.leader()), 20, what, interval=0.05)

    def stop_load(self, c, benches, window):
        """Stop the benches; check their outcomes, and that each had requests
        in flight during `window` (the admin call): the change happened under load."""
        for b, tl in benches:
            r = c.bench_stop(b)
            t0, t1 = window
            with open(tl) as f:
                recs = [line.split() for line in f]
            during = [x for x in recs if int(x[1]) <= t1 and int(x[2]) >= t0]
            print("bench %s: %d requests, %d during the admin call, outcomes %r"
                  % (r["workload"], r["requests"], len(during), r["outcomes"]))
            allowed = {"OK", "NO_FREE_CART"} if r["workload"] == "assign" else {"OK"}
            self.assertLessEqual(set(r["outcomes"]), allowed,
                                 "%s load saw errors: %r" % (r["workload"], r["outcomes"]))
            self.assertTrue(during, "no %s request overlapped the admin call" % r["workload"])

    def test_m1_transfer_leader_under_load(self):
        c = self.cluster(replicas=3, cart_nodes=2, slots=8)
        self.assertConverges(c)
        load = self.start_load(c)
        before = self.commits_grow(c, 300, "the load to commit")
        target = max(s["id"] for s in c.all_status() if s["id"] != before["id"])
        rc, r, window = self.admin(c, "transfer-leader", target)
        self.assertEqual((rc, r.get("ok")), (0, True), "transfer-leader %d: %r" % (target, r))
        ld = wait_until(lambda: (lambda s: s if s and s["id"] == target else None)(c.leader()),
                        10, "replica %d to lead" % target)
        self.assertGreater(ld["term"], before["term"])
        self.commits_grow(c, 300, "the load to commit under the new leader")
        self.stop_load(c, load, window)
        st = self.assertConverges(c)
        self.assertEqual([s["id"] for s in st if s["role"] == "leader"], [target])
        self.assertAllAlive(c)

    def test_m2_add_and_remove_a_replica_under_load(self):
        c = self.cluster(replicas=3, cart_nodes=2, slots=8)
        self.assertConverges(c)
        name, me = c.start_extra_broker(4)
        four = c.client_endpoints + [me["client"]]
        wait_until(lambda: c.replica_status(me["client"]), 10, "%s answering STATUS" % name)

        load = self.start_load(c)
        self.commits_grow(c, 300, "the load to commit")
        rc, r, window = self.admin(c, "add-node", 4,
                                   "%s,%s,%s" % (me["raft"], me["client"], me["cart"]),
                                   timeout_ms=15000)
        self.assertEqual((rc, r.get("ok")), (0, True), "add-node 4: %r" % r)
        self.commits_grow(c, 300, "the load to commit with 4 members")
        self.stop_load(c, load, window)
        st = self.assertConverges(c, four)
        self.assertEqual(sorted(s["id"] for s in st), [1, 2, 3, 4])
        ld = [s for s in st if s["role"] == "leader"][0]
        self.assertTrue(str(ld.get("member.4", "")).startswith("voter "), ld)

        load = self.start_load(c)
        self.commits_grow(c, 300, "the load to commit")
        rc, r, window = self.admin(c, "remove-node", 4)
        self.assertEqual((rc, r.get("ok")), (0, True), "remove-node 4: %r" % r)
        self.commits_grow(c, 300, "the load to commit with 3 members")
        self.stop_load(c, load, window)
        st = self.assertConverges(c)
        for s in st:
            self.assertNotIn("member.4", s, "replica %d still lists member 4" % s["id"])
        CliSession(c).add("apple", 1)
        self.assertConverges(c)
        self.assertAllAlive(c)
        self.assertEqual(c.stop_extra(name), 0, "%s exit status" % name)


if __name__ == "__main__":
    harness.main()
