#!/usr/bin/python3
"""test_snapshot: a follower that missed thousands of commits catches up by snapshot install.

Design
------
s1. Three replicas run with `--snapshot-threshold=256
    --snapshot-threshold-max=256 --snapshot-trailing=64`, so a replica
    snapshots every 256 entries and keeps only the last 64
    behind a snapshot: the leader's log soon starts far past anything an
    absent follower holds.  One follower is SIGKILLed (c.kill) on a
    quiescent cluster; its applied index K is recorded.  `zcart-bench -w
    assign` (new session, add, close: ASSIGN, RELEASE and RETURN commits
    per cycle) runs against the two live replicas until the leader's
    commit_index has grown by at least 5,000, then is stopped (SIGTERM:
    it finishes its requests and reports).  The follower restarts on its
    old data.  Checked: all three replicas converge to one applied index
    and digest; the restarted follower's log, since its restart, says
    "restore: state replaced by snapshot at N" (replication/fsm.c) with
    N - K > threshold + trailing, more entries than a leader keeps in its
    log: the follower was brought there by a snapshot, not entry by entry.
    Every bench request was answered (no UNREACHABLE): a follower's
    absence costs the clients nothing.  The leader's STATUS counts the
    snapshots it built (replication/fsm.c) and their build time, and
    reports the fixed threshold.
s2. With `--snapshot-threshold=64` and the default maximum, the threshold
    follows the state (replication/node.c, adapt_threshold): once a few
    thousand entries are applied, every replica's STATUS
    `snapshot_threshold` is above 64 -- half the state's bytes in use over
    the mean entry size, well above 64 entries even for a small state --
    and at most the maximum; it is not above 64 before the first 1024.
"""

import os
import re

import harness
from harness import CliSession, wait_until

THRESHOLD, TRAILING = 256, 64
COMMITS = 5000


class Snapshot(harness.ClusterTestCase):
    def test_s1_follower_catches_up_by_snapshot(self):
        c = self.cluster(replicas=3, cart_nodes=2, slots=8,
                         broker_args=["--snapshot-threshold=%d" % THRESHOLD,
                                      "--snapshot-threshold-max=%d" % THRESHOLD,
                                      "--snapshot-trailing=%d" % TRAILING])
        CliSession(c).add("apple", 1)
        st = self.assertConverges(c)
        victim = [s for s in st if s["role"] == "follower"][0]
        name = "broker%d" % victim["id"]
        k = victim["applied_index"]
        c.kill(name)
        live = [s["endpoint"] for s in st if s["id"] != victim["id"]]
        commit0 = c.leader()["commit_index"]

        bench = c.bench_popen("-w", "assign", "-c", 8, "--catalog", "apple,banana,cherry,grape",
                              brokers=live)
        grown = wait_until(lambda: (lambda s: s if s and s["commit_index"] - commit0 >= COMMITS
                                    else None)(c.leader()),
                           90, "%d commits while %s is down" % (COMMITS, name), interval=0.2)
        report = c.bench_stop(bench)
        print("while %s was down: commit %d -> %d; bench %d requests, outcomes %r"
              % (name, commit0, grown["commit_index"], report["requests"], report["outcomes"]))
        self.assertEqual(report["outcomes"].get("UNREACHABLE", 0), 0, report["outcomes"])

        c.start(name)
        st = self.assertConverges(c)
        with open(os.path.join(c.dir, name, "log"), errors="replace") as f:
            since_restart = f.read().rsplit("=== zcart-cluster", 1)[-1]
        installs = [int(n) for n in re.findall(r"restore: state replaced by snapshot at (\d+)",
                                               since_restart)]
        self.assertTrue(installs, "%s caught up without installing a snapshot" % name)
        self.assertGreater(max(installs) - k, THRESHOLD + TRAILING,
                           "%s was at %d and installed snapshots at %r" % (name, k, installs))
        ld = [s for s in st if s["role"] == "leader"][0]
        print("%s: applied %d before its kill, installed snapshot(s) at %r; all now at %d"
              % (name, k, installs, ld["applied_index"]))
        self.assertGreaterEqual(ld["applied_index"], grown["commit_index"])
        # The leader counts the snapshots it built (fsm.c) and how long they took.
        print("leader: %d snapshots (%d failed), build max %d us, loop part max %d us, "
              "last %d bytes; loop stall max %d us"
              % (ld["snapshots"], ld["snapshots_failed"], ld["snapshot_build_max_us"],
                 ld["snapshot_loop_max_us"], ld["snapshot_bytes"], ld["loop_stall_max_us"]))
        self.assertGreaterEqual(ld["snapshots"], 1)
        self.assertGreater(ld["snapshot_build_max_us"], 0)
        self.assertGreater(ld["snapshot_bytes"], 0)
        self.assertIsInstance(ld["loop_stall_max_us"], int)
        self.assertEqual(ld["snapshot_threshold"], THRESHOLD)
        self.assertAllAlive(c)

    def test_s2_threshold_follows_the_state(self):
        c = self.cluster(replicas=3, cart_nodes=2, slots=8,
                         broker_args=["--snapshot-threshold=64"])
        st = self.assertConverges(c)
        for s in st:
            if s["applied_index"] < 1024:
                self.assertEqual(s["snapshot_threshold"], 64, s)
        bench = c.bench_popen("-w", "assign", "-c", 8, "--catalog", "apple,banana")
        try:
            wait_until(lambda: (lambda s: s and s["applied_index"] >= 4096)(c.leader()),
                       90, "4096 entries applied", interval=0.2)
        finally:
            c.bench_stop(bench)
        st = self.assertConverges(c)
        for s in st:
            print("replica %d: applied %d, state %d bytes in use, snapshot threshold %d"
                  % (s["id"], s["applied_index"], s["storage_used_bytes"],
                     s["snapshot_threshold"]))
            self.assertGreater(s["snapshot_threshold"], 64, s)
            self.assertLessEqual(s["snapshot_threshold"], 32768, s)
        self.assertAllAlive(c)


if __name__ == "__main__":
    harness.main()
