#!/usr/bin/python3
"""test_broker_restart: kill -9 of the broker keeps every assignment, applies nothing twice.

Design
------
A single-replica cluster, so after a restart the replicated state can only
come from the replica's own raft log and LMDB: exactly the "no committed
entry applied twice, none skipped" rule of docs/architecture.md.

j1. Sessions are opened, filled and one is closed; once the cluster is
    quiescent (nothing draining or in flight, applied == commit == last
    index, two consecutive STATUS equal) the test records `digest` and
    `applied_commands`, SIGKILLs the broker and restarts it on the same
    data.  Once the restarted replica has applied up to the recorded index:
    the raft log still holds every entry it had (last_index not smaller),
    same digest, same applied_commands, every live session keeps its cart,
    generation and contents, the closed one stays closed.

j2. SIGKILL in the middle of a burst: a raw DEALER keeps 8 adds in flight
    (distinct products, so each is countable) plus first adds of new
    sessions, and the broker is killed after some have been acknowledged.
    After the restart every acknowledged add is in the cart exactly once;
    every unacknowledged request is then retried with its original
    (session, seq) and must end applied exactly once; every session holds
    exactly one cart.

j3. A clean stop of everything (`zcart-cluster down`, SIGTERM) and `up`
    again on the same data: same digest, the session keeps its cart.
"""

import os
import signal

import harness
import zcproto as zp
from harness import CliSession, Dealer, items_of, wait_until


def quiescent(c):
    """The leader's STATUS once nothing is moving, else None."""
    s = c.leader()
    if not s or s["carts_draining"] or s["inflight"]:
        return None
    if not s["applied_index"] == s["commit_index"] == s["last_index"]:
        return None
    again = c.leader()
    keys = ("digest", "applied_index", "applied_commands")
    if not again or any(again[k] != s[k] for k in keys):
        return None
    return s


class BrokerRestart(harness.ClusterTestCase):
    def test_j1_restart_keeps_state_and_digest(self):
        c = self.cluster(cart_nodes=2, slots=2)
        a, b, closed = CliSession(c), CliSession(c), CliSession(c)
        a.add("apple", 2)
        a.add("pear", 1)
        b.add("banana", 3)
        b.remove("banana", 1)
        closed.add("cherry", 1)
        closed.close()
        before = wait_until(lambda: quiescent(c), 10, "a quiescent cluster")
        lists = {s.id: s.list() for s in (a, b)}
        self.assertEqual(before["sessions_live"], 2)

        c.kill("broker1")
        self.assertFalse(c.alive("broker1"))
        c.start("broker1")
        after = wait_until(lambda: (lambda s: s if s and s["applied_index"] >= before["applied_index"]
                                    else None)(c.leader()),
                           15, "the restarted broker to lead and re-apply its log")
        # Each check is a subTest, so one failure does not hide the others.
        with self.subTest("raft log kept"):
            self.assertGreaterEqual(after["last_index"], before["last_index"],
                                    "the raft log lost committed entries in the restart "
                                    "(before %r, after %r)" % (before, after))
        with self.subTest("digest"):
            self.assertEqual(after["digest"], before["digest"],
                             "state digest changed across a restart: %r vs %r" % (before, after))
        with self.subTest("applied_commands"):
            self.assertEqual(after["applied_commands"], before["applied_commands"],
                             "an entry was applied twice (or skipped) on restart")
        with self.subTest("counts"):
            for k in ("carts_total", "carts_free", "carts_assigned", "carts_draining",
                      "sessions_live"):
                self.assertEqual(after[k], before[k], k)

        for s in (a, b):
            with self.subTest("session keeps its cart", session=s.id):
                # The node may not have reconnected yet (CART_UNAVAILABLE): wait.
                r = wait_until(lambda: (lambda x: x if x.get("ok") else None)(
                    s.list(expect_ok=None)), 10, "session %s served after the restart" % s.id)
                old = lists[s.id]
                self.assertEqual((r["cart"], r["generation"], items_of(r)),
                                 (old["cart"], old["generation"], items_of(old)))
        with self.subTest("closed session stays closed"):
            r = closed.add("apple", 1, expect_ok=False)
            self.assertEqual(r["reason"], "SESSION_CLOSED", r)
        with self.subTest("a new session after the restart"):
            r = CliSession(c).add("grape", 1)
            self.assertNotIn(r["cart"], {lists[a.id]["cart"], lists[b.id]["cart"]})

    def test_j3_clean_stop_and_start_of_everything(self):
        c = self.cluster(cart_nodes=1, slots=2)
        a = CliSession(c)
        a.add("apple", 2)
        ra = a.add("pear", 1)
        before = wait_until(lambda: quiescent(c), 10, "a quiescent cluster")
        c.restart_all()   # `up` fails, with every log, if a daemon refuses to start
        after = wait_until(lambda: quiescent(c), 10, "a quiescent cluster after the restart")
        self.assertEqual((after["digest"], after["applied_commands"]),
                         (before["digest"], before["applied_commands"]))
        r = wait_until(lambda: (lambda x: x if x.get("ok") else None)(a.list(expect_ok=None)),
                       10, "the session served after the restart")
        self.assertEqual((r["cart"], r["generation"], items_of(r)),
                         (ra["cart"], ra["generation"], {"apple": 2, "pear": 1}))
        b = CliSession(c)
        rb = b.add("lemon", 1)
        self.assertNotEqual(rb["cart"], ra["cart"])

    def test_j2_kill_during_a_burst(self):
        n_adds = 60
        products = ["b%03d" % i for i in range(n_adds)]
        catalog = harness.write_catalog("test_j2", {p: 100 for p in products + ["apple"]})
        c = self.cluster(cart_nodes=2, slots=8, catalog=catalog, stock_delay="5:40")
        ep = c.leader_endpoint()
        main = zp.new_session()
        # The burst: adds of the main session, with a first add of a new
        # session every 6th request.
        reqs = []  # (session, seq, product)
        new_sessions = []
        for i, p in enumerate(products):
            reqs.append((main, 100 + i, p))
            if i % 6 == 5:
                s = zp.new_session()
                new_sessions.append(s)
                reqs.append((s, 1, "apple"))
        product_of = {(s, seq): p for s, seq, p in reqs}
        with Dealer(ep) as d:
            first = d.request(main, 1, zp.OP_ADD, "apple", 1)
            self.assertEqual(first.status_name, "OK", first)
            acked = {}
            sent = 0
            in_flight = 0
            pid = c.pid("broker1")
            killed = False
            while sent < len(reqs) and not killed:
                while in_flight < 8 and sent < len(reqs):
                    s, seq, p = reqs[sent]
                    d.send(zp.request(s, seq, zp.OP_ADD, p, 1))
                    sent += 1
                    in_flight += 1
                m = d.recv(10)
                self.assertEqual(m.status_name, "OK", m)
                acked[(m.session, m.seq)] = m
                in_flight -= 1
                if len(acked) >= len(reqs) // 3:
                    os.kill(pid, signal.SIGKILL)
                    killed = True
            # Whatever answers were already on their way still count as acked.
            while d.pending(0.05):
                m = d.recv(1)
                if m.status == zp.OK:
                    acked[(m.session, m.seq)] = m
        self.assertTrue(killed)
        wait_until(lambda: not c.alive("broker1"), 5, "broker1 dead")
        unacked = [r for r in reqs[:sent] if (r[0], r[1]) not in acked]
        self.assertTrue(unacked, "the kill came after every reply: nothing was in flight")

        c.start("broker1")
        ep = c.leader_endpoint()
        with Dealer(ep) as d:
            lst = wait_until(lambda: self._list(d, main), 15, "the main session served again")
            have = dict(lst.items)
            for (s, seq), m in acked.items():
                if s == main:
                    p = product_of[(s, seq)]
                    self.assertEqual(have.get(p), 1, "acknowledged add of %s: qty %r after restart"
                                     % (p, have.get(p)))
            for p, q in have.items():
                self.assertEqual(q, 1, "%s applied %d times" % (p, q))
            # Retry every unacknowledged request with its original seq.
            for s, seq, p in unacked:
                r = wait_until(lambda: self._ok(d.request(s, seq, zp.OP_ADD, p, 1)), 15,
                               "retry of %s seq %d" % (p, seq))
                self.assertEqual(r.status_name, "OK", r)
            # And an acknowledged one again: the original answer.
            (s0, seq0), m0 = next(iter(acked.items()))
            again = d.request(s0, seq0, zp.OP_ADD, product_of[(s0, seq0)], 1)
            self.assertEqual((again.status_name, again.cart, again.generation, again.items),
                             (m0.status_name, m0.cart, m0.generation, m0.items))
            final = self._list(d, main)
        burst_products = {r[2] for r in reqs[:sent] if r[0] == main}
        expect = {p: 1 for p in burst_products}
        expect["apple"] = 1
        self.assertEqual(dict(final.items), expect)
        started = [s for s in new_sessions if any(r[0] == s for r in reqs[:sent])]
        counts = c.counts()
        self.assertEqual(counts[2], 1 + len(started),
                         "sessions vs assigned carts after retried first adds: %r" % (counts,))

    _seq = 50000

    def _list(self, d, session):
        BrokerRestart._seq += 1
        r = d.request(session, BrokerRestart._seq, zp.OP_LIST, timeout=2)
        return r if r.status == zp.OK else None

    @staticmethod
    def _ok(r):
        return r if r.status == zp.OK else None


if __name__ == "__main__":
    harness.main()
