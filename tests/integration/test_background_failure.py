#!/usr/bin/python3
"""test_background_failure: a failed background segment finalization stops the replica.

Design
------
raft 0.15's libuv io closes a used open segment on a worker thread (truncate
it to what was written, fsync, rename it to its closed name); a failure
there only sets a private flag that nothing in raft reads, so the replica
would go on as if its entries were in a closed segment (io_guard.h bug 5).
The node reads that flag on every loop turn (replication/uv_peek.h).

Every daemon runs with failrename.so preloaded (built here from
failrename.c): rename() of a raft "open-*" segment fails with EIO while a
file "zc-fail-rename" exists in its directory.  Three replicas with
--raft-segment-size=64K, so segments fill and are finalized every few
hundred entries under `zcart-bench -w assign`.

b1. The flag file is created in one follower's raft directory while the
    bench runs: that follower must stop within 30 s with status 74 and a
    log line naming the background failure; the other two keep serving (a
    new session is answered OK).  The flag removed and the follower
    started again: all three converge.  Without the uv_peek check the
    follower keeps running (the test fails at the first wait).
"""

import os

import harness
from harness import CliSession, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))


class BackgroundFailure(harness.ClusterTestCase):
    def setUp(self):
        super().setUp()
        harness.preload(self, harness.build_shim(os.path.join(HERE, "failrename.c")))

    def test_b1_failed_finalization_stops_the_follower(self):
        c = self.cluster(replicas=3, cart_nodes=2, slots=8,
                         broker_args=["--raft-segment-size=64K"])
        st = self.assertConverges(c)
        leader = [s for s in st if s["role"] == "leader"][0]["id"]
        f = "broker%d" % (leader % 3 + 1)
        flag = os.path.join(c.dir, f, "data", "raft", "zc-fail-rename")
        bench = c.bench_popen("-w", "assign", "-c", "4", seconds=90)
        open(flag, "w").close()
        wait_until(lambda: not c.alive(f), 30, "%s stopped on its failed finalization" % f)
        lines = [line for _, line in c.grep_logs("exiting with status 74") if " %s " % f in line]
        self.assertTrue(any("background segment finalization" in line for line in lines),
                        "no status-74 line naming the background failure: %s" % lines)
        CliSession(c).add("apple", 1)
        c.bench_stop(bench)
        os.unlink(flag)
        c.start(f)
        self.assertConverges(c, timeout=30)


if __name__ == "__main__":
    harness.main()
