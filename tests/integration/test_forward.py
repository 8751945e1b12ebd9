#!/usr/bin/python3
"""test_forward: any replica serves -- followers relay requests to the leader (issue 15).

Design
------
A client that can reach only a follower used to get NOT_LEADER naming an
endpoint it may not reach.  Now a follower that knows the leader and holds
a live connection to it relays the REQUEST and passes the leader's REPLY
back (broker/forward.h).  The tests speak ZCP directly to one follower, so
no client library redirect or failover can hide what the follower does.

f1. Through one follower only: a new session's add, a list and a close all
    answer OK, decided by the leader (the REPLY's replica is the leader's
    id, its term the leader's); the follower's
    zcart_requests_relayed_total counts them.
f2. Exactly once: the same (session, seq) add sent twice to the follower and
    once to the leader applies once (qty 1 in the cart).
f3. No loops: a request from a peer routing id ("zc-replica-9") to a
    follower is answered NOT_LEADER, never relayed.
f4. A leader that does not answer (paused): the relayed request is answered
    UNAVAILABLE by the follower after 2 x --cart-timeout, not left hanging.
f5. A leader that dies with a relayed request in flight (its stock check
    delayed 3 s): the follower answers UNAVAILABLE as soon as the leader's
    connection drops ("connection dropped"), not after 2 x --cart-timeout
    (20 s here) -- before this, clients waited out their attempt timeout
    after every leader kill (bench/README.md, failover drills).
f6. libzcart goes to the leader directly: a zcart-bench client given only a
    follower's endpoint makes adds until the leader has answered 100 of
    them; the follower relayed at most 2 (the first answer names another
    replica, so the next call asks the follower's STATUS and moves to the
    leader it names) -- without that, it relays every one.
"""

import urllib.request

import harness
import zcproto as zp
from harness import Dealer, converged, wait_until


def metric(c, name, key):
    """One unlabelled sample of process NAME's /metrics."""
    url = [p["http"] for p in c.plan["procs"] if p["name"] == name][0] + "/metrics"
    for line in urllib.request.urlopen(url, timeout=3).read().decode().splitlines():
        if line.startswith(key + " "):
            return float(line.split()[1])
    raise AssertionError("no %s in %s's metrics" % (key, name))


def relayed(c, name):
    return metric(c, name, "zcart_requests_relayed_total")


class Forward(harness.ClusterTestCase):
    def setup(self, **kw):
        c = self.cluster(replicas=3, cart_nodes=1, slots=4, **kw)
        st = wait_until(lambda: converged(c), 20, "converged")
        ld = [s for s in st if s["role"] == "leader"][0]
        fo = [s for s in st if s["role"] != "leader"][0]
        return c, ld, fo

    def test_f1_a_follower_relays_to_the_leader(self):
        c, ld, fo = self.setup()
        before = relayed(c, "broker%d" % fo["id"])
        s = zp.new_session()
        with Dealer(fo["endpoint"], cluster=c) as d:
            for seq, op, prod, qty in ((1, zp.OP_ADD, "apple", 2), (2, zp.OP_LIST, "", 0),
                                       (3, zp.OP_CLOSE, "", 0)):
                r = d.request(s, seq, op, prod, qty)
                self.assertEqual(r.status_name, "OK", r)
                self.assertEqual((r.replica, r.term), (ld["id"], ld["term"]), r)
            self.assertEqual(relayed(c, "broker%d" % fo["id"]) - before, 3)

    def test_f2_relayed_and_direct_retries_apply_once(self):
        c, ld, fo = self.setup()
        s = zp.new_session()
        with Dealer(fo["endpoint"], cluster=c) as f, Dealer(ld["endpoint"], cluster=c) as l:
            for d in (f, f, l):
                r = d.request(s, 1, zp.OP_ADD, "apple", 1)
                self.assertEqual(r.status_name, "OK", r)
            r = l.request(s, 2, zp.OP_LIST)
            self.assertEqual([tuple(i) for i in r.items], [("apple", 1)], r)

    def test_f3_requests_from_a_replica_are_not_relayed(self):
        c, ld, fo = self.setup()
        with Dealer(fo["endpoint"], routing_id=b"zc-replica-9", cluster=c) as d:
            r = d.request(zp.new_session(), 1, zp.OP_ADD, "apple", 1)
            self.assertEqual(r.status_name, "NOT_LEADER", r)

    def test_f4_a_silent_leader_gets_unavailable(self):
        c, ld, fo = self.setup(broker_args=["--cart-timeout=500", "--election-timeout=5000"])
        c.pause("broker%d" % ld["id"])
        try:
            with Dealer(fo["endpoint"], cluster=c) as d:
                r = d.request(zp.new_session(), 1, zp.OP_ADD, "apple", 1, timeout=5)
                self.assertEqual(r.status_name, "UNAVAILABLE", r)
                self.assertIn("relayed to the leader", r.detail)
        finally:
            c.resume("broker%d" % ld["id"])


    def test_f5_a_dead_leader_fails_its_relayed_requests_at_once(self):
        # The add must still be waiting (at the cart, for its stock check)
        # when the leader dies: a stock slower than the whole test, a cart
        # that waits for it as long (under ASan and load the relay wait and
        # the kill took more than the default 1000 ms stock timeout once:
        # the leader answered STOCK_TIMEOUT first).
        c, ld, fo = self.setup(broker_args=["--cart-timeout=30000"],
                               cart_args=["--stock-timeout=25000"], stock_delay="30000")
        with Dealer(fo["endpoint"], cluster=c) as d:
            s = zp.new_session()
            d.send(zp.request(s, 1, zp.OP_ADD, "apple", 1))
            wait_until(lambda: metric(c, "broker%d" % fo["id"], "zcart_requests_relaying") == 1, 5,
                       "the add relayed, waiting at the follower")
            c.kill("broker%d" % ld["id"])
            r = d.reply_for(s, 1, timeout=8)
            self.assertEqual(r.status_name, "UNAVAILABLE", r)
            self.assertIn("connection dropped", r.detail)

    def test_f6_libzcart_moves_from_a_follower_to_the_leader(self):
        c, ld, fo = self.setup()
        fname, lname = "broker%d" % fo["id"], "broker%d" % ld["id"]
        before = relayed(c, fname)
        answered = lambda: metric(c, lname, 'zcart_requests_total{op="add",status="OK"}')
        start = answered()
        p = c.bench_popen("-w", "ops", "-c", "1", brokers=[fo["endpoint"]], seconds=60)
        wait_until(lambda: answered() - start >= 100, 30, "100 adds answered by the leader")
        rep = c.bench_stop(p)
        self.assertGreaterEqual(rep["ops"]["add"]["ok"], 100, rep)
        self.assertLessEqual(relayed(c, fname) - before, 2)


if __name__ == "__main__":
    harness.main()
