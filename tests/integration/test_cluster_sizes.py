#!/usr/bin/python3
"""test_cluster_sizes: a 5-replica cluster serves, survives two dead replicas and converges.

Design
------
The replication issue asks for clusters of 1, 3 and 5 replicas. One
replica is what most other integration tests run, three is
test_replicas/test_failover; this file runs five.

z1. A 5-replica cluster elects one leader, registers every cart and serves
    sessions. The leader and then one more replica are SIGKILLed (two of
    five, still a majority of three alive): after each kill a new leader
    takes over, every session keeps its cart, generation and contents,
    and new sessions are served. Both restart, and all five converge to
    one applied index and digest.
"""

import harness
from harness import CliSession, items_of, wait_until


class ClusterSizes(harness.ClusterTestCase):
    def test_z1_five_replicas_lose_two_and_converge(self):
        c = self.cluster(replicas=5, cart_nodes=2, slots=3)
        st = self.assertConverges(c)
        self.assertEqual(st[0]["carts_total"], 6)
        sessions = []
        for p in ("apple", "pear", "grape"):
            s = CliSession(c)
            sessions.append((s, s.add(p, 2)))
        killed = []
        for _ in range(2):
            old = c.leader()
            name = "broker%d" % old["id"]
            c.kill(name)
            killed.append(name)
            wait_until(lambda: (lambda ld: ld if ld and ld["id"] != old["id"] else None)(
                c.leader()), 15, "a new leader after killing %s" % name)
            for s, first in sessions:
                got = wait_until(lambda: (lambda x: x if x.get("ok") else None)(
                    s.list(expect_ok=None)), 15, "session %s served" % s.id)
                self.assertEqual((got["cart"], got["generation"], items_of(got)),
                                 (first["cart"], first["generation"], items_of(first)))
            CliSession(c).add("cherry", 1)  # new sessions are served too
        sessions[0][0].add("banana", 1)
        for name in killed:
            c.start(name)
        st = self.assertConverges(c, timeout=20)
        self.assertEqual({s["carts_assigned"] for s in st}, {5})
        self.assertEqual(items_of(sessions[0][0].list()), {"apple": 2, "banana": 1})


if __name__ == "__main__":
    harness.main()
