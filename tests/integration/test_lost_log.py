#!/usr/bin/python3
"""test_lost_log: a replica whose data is lost and that returns under its old id is caught up.

Design
------
Three replicas with `--snapshot-threshold=64 --snapshot-trailing=16`, so
the leader's log starts long after entry 1 once some sessions ran.
`zcart-bench -w assign` runs until the leader's commit index passes 500;
all three converge (so the leader holds a match index near its last index
for every follower).  A follower is SIGKILLed, its data directory deleted,
and it is started again with the same command line: it bootstraps a log
holding only entry 1 and answers the leader's heartbeats with rejections
naming a log that ends at 1.  raft 0.15 reads those as stale (the
follower's old match index is higher) and never sends it anything but
heartbeats; the io guard's rule 10 resets that follower's progress.

Checked: the three replicas converge (one applied index and digest) within
20 s; the follower got there by snapshot ("restore: state replaced by
snapshot" in its log since the restart); the leader logged the loss ("reports a
log ending at 1").  Without rule 10 the follower stays at entry 1.
"""

import os
import shutil

import harness
from harness import wait_until


class LostLog(harness.ClusterTestCase):
    def test_wiped_follower_under_old_id_catches_up(self):
        c = self.cluster(replicas=3, cart_nodes=2, slots=8,
                         broker_args=["--snapshot-threshold=64", "--snapshot-threshold-max=64",
                                      "--snapshot-trailing=16"])
        bench = c.bench_popen("-w", "assign", "-c", "4", seconds=60)
        wait_until(lambda: (c.leader() or {}).get("commit_index", 0) > 500, 40,
                   "500 commits")
        c.bench_stop(bench)
        st = self.assertConverges(c)
        leader = [s for s in st if s["role"] == "leader"][0]["id"]
        f = "broker%d" % (leader % 3 + 1)
        c.sigkill(f)
        data = os.path.join(c.dir, f, "data")
        with open(os.path.join(c.dir, f, "log"), "rb") as fh:
            log_at = len(fh.read())
        shutil.rmtree(data)
        c.start(f)
        self.assertConverges(c)  # the wiped follower too
        with open(os.path.join(c.dir, f, "log"), "rb") as fh:
            since = fh.read()[log_at:].decode(errors="replace")
        self.assertIn("restore: state replaced by snapshot", since)
        self.assertTrue(c.grep_logs("reports a log ending at 1,"),
                        "the leader did not log the lost log")


if __name__ == "__main__":
    harness.main()
