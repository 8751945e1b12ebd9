#!/usr/bin/python3
"""test_request_ttl: a request picked up after its deadline is answered EXPIRED and not applied.

Design
------
Every REQUEST carries a deadline (ms since the epoch, 0 for none;
docs/protocol.md); libzcart sets it to the call's start plus its budget.
Seed 004's rule: a request picked up after it gets EXPIRED, and nothing
is applied.

t1. At the broker: an add whose deadline already passed, for a new session
    and for a session that holds a cart, is answered EXPIRED; the new
    session gets no cart (no ASSIGN committed: the registry counts do not
    move), the existing one's contents do not change.
t2. At the cart: the cart node is paused (SIGSTOP) and an add with a
    deadline 400 ms ahead is sent; the broker forwards it in time, the node
    picks it up only after SIGCONT, past the deadline, and answers EXPIRED;
    the cart does not hold the product afterwards. A retry of the same
    (session, seq) with a live deadline is then applied once.
"""

import os
import time

import harness
import zcproto as zp
from harness import CliSession, Dealer, items_of, wait_until


def now_ms():
    return int(time.time() * 1000)


class RequestTtl(harness.ClusterTestCase):
    def test_t1_expired_at_the_broker(self):
        c = self.cluster(cart_nodes=1, slots=2)
        s = CliSession(c)
        s.add("apple", 1)
        before = c.counts()
        with Dealer(c.leader_endpoint()) as d:
            fresh = os.urandom(16)
            d.send(zp.request(fresh, 1, zp.OP_ADD, "pear", 1, deadline=now_ms() - 1000))
            r = d.reply_for(fresh, 1)
            self.assertEqual(r.status_name, "EXPIRED", r)
            held = bytes.fromhex(s.id)
            d.send(zp.request(held, 10 ** 15, zp.OP_ADD, "pear", 1, deadline=now_ms() - 1))
            r = d.reply_for(held, 10 ** 15)
            self.assertEqual(r.status_name, "EXPIRED", r)
        self.assertEqual(c.counts(), before)
        self.assertEqual(items_of(s.list()), {"apple": 1})

    def test_t2_expired_at_the_cart(self):
        c = self.cluster(cart_nodes=1, slots=2)
        s = CliSession(c)
        s.add("apple", 1)
        sid, seq = bytes.fromhex(s.id), 2 * 10 ** 15
        with Dealer(c.leader_endpoint()) as d:
            c.pause("cart1")
            try:
                deadline = now_ms() + 400
                d.send(zp.request(sid, seq, zp.OP_ADD, "pear", 1, deadline=deadline))
                # The node wakes up only once the deadline is surely past.
                wait_until(lambda: now_ms() > deadline + 100, 5, "the deadline to pass")
            finally:
                c.resume("cart1")
            r = d.reply_for(sid, seq)
            self.assertEqual(r.status_name, "EXPIRED", r)
            self.assertEqual(items_of(s.list()), {"apple": 1})
            # Not recorded as an answer: a retry with a live deadline applies it once.
            d.send(zp.request(sid, seq, zp.OP_ADD, "pear", 1, deadline=now_ms() + 5000))
            r = d.reply_for(sid, seq)
            self.assertEqual(r.status_name, "OK", r)
            d.send(zp.request(sid, seq, zp.OP_ADD, "pear", 1, deadline=now_ms() + 5000))
            self.assertEqual(d.reply_for(sid, seq).status_name, "OK")
        self.assertEqual(items_of(s.list()), {"apple": 1, "pear": 1})


if __name__ == "__main__":
    harness.main()
