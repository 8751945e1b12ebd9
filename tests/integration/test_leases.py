#!/usr/bin/python3
"""test_leases: idle sessions expire and free their cart; keepalives and leader changes.

Design
------
Sessions have a lease (--session-ttl on the brokers). The leader decides
expiry and commits it; the cart is then emptied and freed as for a close,
and the session's later requests get SESSION_EXPIRED. Renewals are not
replicated, so the documented rule for a leader change is that the new
leader gives every live session a full lease from when it became leader:
never an early expiry. Expiry is observed through STATUS (carts_assigned,
sessions_live), never by asking the session itself, which would renew it.

l1. An idle session expires: its cart returns to the free list, empty; its
    next request gets SESSION_EXPIRED and changes nothing; the next session
    gets that cart, with a new generation and no items.
l2. `zcart shell --keepalive 300` with a lease of 1.5 s: the session stays
    live while the shell sits idle for more than three leases; once the
    shell exits, nobody renews it and it expires.
l4. `zcart --session S keepalive` (one renewal from the command line):
    sent every 0.5 s it keeps an otherwise idle session live for more than
    three leases of 3 s (answered OK); once the session is closed it
    answers SESSION_CLOSED, and the session stays closed and its cart free.
l3. Leader change: a lease of 3 s, the leader is killed 2 s after the
    session's last request. At a moment past the old deadline but before
    kill + 3 s (the earliest a successor can expire it under the rule), the
    session is still live; later it expires under the new leader.
"""

import subprocess
import time

import harness
from harness import CliSession, items_of, wait_until


def leader_counts(c):
    ld = c.leader()
    return (ld["carts_assigned"], ld["sessions_live"]) if ld and ld.get("ready") else None


class Leases(harness.ClusterTestCase):
    def test_l1_idle_session_expires_and_frees_its_cart(self):
        c = self.cluster(cart_nodes=1, slots=1, broker_args=["--session-ttl=1500"])
        s = CliSession(c)
        first = s.add("apple", 2)
        self.assertEqual(leader_counts(c), (1, 1))
        wait_until(lambda: leader_counts(c) == (0, 0), 15, "the session to expire")
        wait_until(lambda: c.counts()[1] == 1, 10, "its cart free again")
        r = s.list(expect_ok=False)
        self.assertEqual(r["reason"], "SESSION_EXPIRED", r)
        r = s.add("pear", 1, expect_ok=False)
        self.assertEqual(r["reason"], "SESSION_EXPIRED", r)
        n = CliSession(c).add("banana", 1)
        self.assertEqual(n["cart"], first["cart"])
        self.assertGreater(n["generation"], first["generation"])
        self.assertEqual(items_of(n), {"banana": 1})
        self.assertEqual(len(c.grep_logs("expired (no request for")), 1, "expired once")

    def test_l2_shell_keepalive_keeps_the_lease(self):
        c = self.cluster(cart_nodes=1, slots=1, broker_args=["--session-ttl=1500"])
        argv = [harness.BIN + "/zcart", "--brokers", ",".join(c.client_endpoints), "--json",
                "--keepalive", "300", "shell"] + c.sec_args()
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            p.stdin.write("add apple 1\n")
            p.stdin.flush()
            self.assertIn('"ok":true', p.stdout.readline())
            start = time.monotonic()
            # Idle for more than three leases: it must stay live all along.
            while time.monotonic() - start < 5.0:
                self.assertEqual(leader_counts(c), (1, 1), "the kept session expired")
                time.sleep(0.25)
            p.stdin.write("list\n")
            p.stdin.flush()
            line = p.stdout.readline()
            self.assertIn('"ok":true', line)
            self.assertIn('"apple"', line)
        finally:
            p.stdin.close()
            p.wait(10)
        wait_until(lambda: leader_counts(c) == (0, 0), 15, "expiry once the shell is gone")

    def test_l4_cli_keepalive_renews_and_a_closed_session_stays_closed(self):
        # A 3 s lease: one CLI run (process start, handshake, answer) stays
        # well inside it even on a loaded machine under ASan.
        c = self.cluster(cart_nodes=1, slots=1, broker_args=["--session-ttl=3000"])
        s = CliSession(c)
        s.add("apple", 1)
        start = time.monotonic()
        while time.monotonic() - start < 10.0:
            r = s.run("keepalive")
            self.assertEqual(r["op"], "keepalive", r)
            self.assertEqual(leader_counts(c), (1, 1), "the renewed session expired")
            time.sleep(0.5)
        self.assertEqual(items_of(s.list()), {"apple": 1})
        s.close()
        wait_until(lambda: c.counts()[1] == 1, 10, "its cart free again")
        for _ in range(3):
            r = s.run("keepalive", expect_ok=False)
            self.assertEqual(r["reason"], "SESSION_CLOSED", r)
        self.assertEqual(leader_counts(c), (0, 0), "a closed session came back")
        r = s.list(expect_ok=False)
        self.assertEqual(r["reason"], "SESSION_CLOSED", r)

    def test_l3_leader_change_never_expires_early(self):
        ttl = 3.0
        c = self.cluster(replicas=3, cart_nodes=1, slots=2,
                         broker_args=["--session-ttl=%d" % int(ttl * 1000)])
        wait_until(lambda: leader_counts(c) == (0, 0), 15, "a ready leader")
        s = CliSession(c)
        s.add("apple", 1)
        t_last = time.monotonic()
        wait_until(lambda: time.monotonic() > t_last + 2.0, 5, "two seconds of silence")
        old = c.leader()
        c.sigkill("broker%d" % old["id"])
        t_kill = time.monotonic()
        wait_until(lambda: (lambda ld: ld if ld and ld["id"] != old["id"] and ld.get("ready")
                            else None)(c.leader()), 15, "a new ready leader")
        wait_until(lambda: time.monotonic() > t_last + ttl + 0.3, 10, "the old deadline to pass")
        counts = leader_counts(c)
        checked_at = time.monotonic()
        if checked_at < t_kill + ttl:
            self.assertEqual(counts, (1, 1), "the new leader expired the session early")
        else:
            self.fail("the machine was too slow to check inside the window (%.2f s after the "
                      "kill, window ends at %.2f s)" % (checked_at - t_kill, ttl))
        wait_until(lambda: leader_counts(c) == (0, 0), 20, "expiry under the new leader")
        r = s.list(expect_ok=False)
        self.assertEqual(r["reason"], "SESSION_EXPIRED", r)
        c.start("broker%d" % old["id"])


if __name__ == "__main__":
    harness.main()
