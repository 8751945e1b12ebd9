#!/usr/bin/python3
"""test_bounded: the state follows live load, and limits are answers (issue 13).

Design
------
A shop runs for months, so what the cluster keeps must not grow with its
history, and running into a limit must be an answer to a client, never a
crashed or crash-looping process.

b1. Purge: with --session-retention 3000 on a 3-replica cluster, a closed
    session is kept (its requests get SESSION_CLOSED, status counts it in
    sessions_ended) and is forgotten about 3 s later on every replica
    (sessions_ended back to 0, digests equal); its id is then unknown: a
    list gets OK with no cart.
"""

import time

import harness
from harness import CliSession, converged, wait_until


class Bounded(harness.ClusterTestCase):
    def test_b1_ended_sessions_are_purged_after_retention(self):
        c = self.cluster(replicas=3, cart_nodes=1, slots=2,
                         broker_args=["--session-retention=3000"])
        s = CliSession(c)
        s.add("apple", 1)
        s.close()
        closed_at = time.monotonic()
        r = s.list(expect_ok=False)
        self.assertEqual(r["reason"], "SESSION_CLOSED", r)
        ld = c.leader()
        self.assertEqual(ld["sessions_ended"], 1, ld)
        wait_until(lambda: (c.leader() or {}).get("sessions_ended") == 0, 20,
                   "the closed session to be purged")
        self.assertGreaterEqual(time.monotonic() - closed_at, 2.5, "purged before its retention")
        st = wait_until(lambda: converged(c), 10, "every replica to apply the purge")
        for x in st:
            self.assertEqual(x["sessions_ended"], 0, x)
        self.assertTrue(c.grep_logs("purged 1 ended sessions"))
        r = s.list()
        self.assertFalse(r.get("cart"), r)
        self.assertEqual(r["items"], [], r)


if __name__ == "__main__":
    harness.main()
