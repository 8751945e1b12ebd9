#!/usr/bin/python3
"""test_replicas: a 3-replica cluster converges after a paused follower and a killed leader.

Design
------
Invariant 6 of the design brief: after faults heal, all replicas reach the
same applied index and the same state digest.

r1. A follower is SIGSTOPped while sessions are opened (each first add is
    one ASSIGN entry), so on SIGCONT the leader must send it several entries
    at once.  Then every replica must reach the leader's applied index with
    the leader's digest and registry counts, and no replica may log an entry
    it could not decode.
r2. The leader is SIGKILLed: a new leader takes over, every session keeps
    its cart and contents (through the CLI, which fails over), new sessions
    are served, and after the old leader restarts all three converge.
r3. Raw TCP junk on every raft port does not disturb the cluster.
"""

import os
import struct

import harness
from harness import CliSession, items_of, wait_until


class Replicas(harness.ClusterTestCase):
    def follower(self, c):
        for s in c.all_status():
            if s["role"] == "follower":
                return "broker%d" % s["id"]
        self.fail("no follower")

    def test_r1_paused_follower_catches_up(self):
        c = self.cluster(replicas=3, cart_nodes=2, slots=4)
        self.assertConverges(c)
        f = self.follower(c)
        c.pause(f)
        sessions = []
        for p in ("apple", "pear", "lemon", "mango", "grape"):
            s = CliSession(c)
            s.add(p, 1)
            sessions.append(s)
        sessions[0].close()
        c.resume(f)
        st = self.assertConverges(c)
        self.assertEqual(st[0]["carts_assigned"] + st[0]["carts_free"]
                         + st[0]["carts_draining"], 8)

    def test_r2_leader_killed_and_restarted(self):
        c = self.cluster(replicas=3, cart_nodes=2, slots=4)
        self.assertConverges(c)
        a, b = CliSession(c), CliSession(c)
        ra = a.add("apple", 2)
        rb = b.add("pear", 3)
        leader = c.leader()
        name = "broker%d" % leader["id"]
        c.kill(name)

        def new_leader():
            ld = c.leader()
            return ld if ld and ld["id"] != leader["id"] else None
        wait_until(new_leader, 10, "a new leader after killing %s" % name)
        for s, r in ((a, ra), (b, rb)):
            got = wait_until(lambda: (lambda x: x if x.get("ok") else None)(
                s.list(expect_ok=None)), 10, "session served by the new leader")
            self.assertEqual((got["cart"], got["generation"], items_of(got)),
                             (r["cart"], r["generation"], items_of(r)))
        a.add("banana", 1)
        CliSession(c).add("cherry", 1)
        c.start(name)
        self.assertConverges(c, timeout=15)
        self.assertEqual(items_of(a.list()), {"apple": 2, "banana": 1})

    def test_r3_junk_on_raft_ports(self):
        c = self.cluster(replicas=3, cart_nodes=1, slots=2)
        payloads = [os.urandom(64), struct.pack("<QQQ", 1, 2, 1 << 40) + b"x" * 8,
                    os.urandom(65536)]
        # A handshake whose address is not NUL-terminated: libraft 0.15
        # (uv_tcp_listen.c) hands that buffer to strlen, a heap over-read
        # of the library that AddressSanitizer aborts on.  The normal build
        # must survive it; the sanitizer build cannot, so it leaves it out.
        if os.environ.get("ZCART_SANITIZE", "OFF").upper() in ("ON", "1", "TRUE"):
            print("sanitizer build: skipping the unterminated-address handshake "
                  "(libraft 0.15 over-read)")
        else:
            payloads.append(struct.pack("<QQQ", 1, 2, 5) + b"nohost")
        for port in c.raft_ports():
            for payload in payloads:
                harness.tcp_junk(port, payload)
        self.assertAllAlive(c)
        s = CliSession(c)
        s.add("apple", 1)
        self.assertConverges(c)


if __name__ == "__main__":
    harness.main()
