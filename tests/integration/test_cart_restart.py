#!/usr/bin/python3
"""test_cart_restart: kill -9 of a cart node and restart keeps its contents and dedup.

Design
------
k. One cart node, so the session's cart is certainly on it.  A raw DEALER
   fills the cart with known seqs, the test records the list, SIGKILLs the
   node and restarts it on the same data.  While it is down the broker may
   answer CART_UNAVAILABLE; the test waits (with a deadline) until the
   session is served again, then checks: same cart, same generation, same
   contents; a retried seq from before the kill gets its original answer
   and changes nothing (the dedup records are durable); a new add works.

   A second session whose add is waiting on a slow stock check when the
   node dies (the stock logs each check at debug level; the test kills the
   node as soon as the stock has it) is retried after the restart with the same seq: it must end
   applied exactly once.
"""

import harness
import zcproto as zp
from harness import Dealer, wait_until


def answer(m):
    return (m.status_name, m.cart, m.generation, m.detail, m.items)


class CartRestart(harness.ClusterTestCase):
    def test_k_cart_restart_keeps_contents_and_dedup(self):
        c = self.cluster(cart_nodes=1, slots=2, stock_delay="300:300",
                         stock_args=["--log-level=debug"])
        s, t = zp.new_session(), zp.new_session()
        with Dealer(c.leader_endpoint()) as d:
            r1 = d.request(s, 1, zp.OP_ADD, "apple", 2)
            r2 = d.request(s, 2, zp.OP_ADD, "pear", 1)
            r3 = d.request(s, 3, zp.OP_REMOVE, "apple", 1)
            for r in (r1, r2, r3):
                self.assertEqual(r.status_name, "OK", r)
            before = d.request(s, 4, zp.OP_LIST)
            self.assertEqual(dict(before.items), {"apple": 1, "pear": 1})
            rt = d.request(t, 1, zp.OP_ADD, "lemon", 1)
            self.assertEqual(rt.status_name, "OK", rt)

            # t's second add waits 300 ms for stock when the node dies.
            d.send(zp.request(t, 2, zp.OP_ADD, "mango", 1))
            wait_until(lambda: c.grep_logs("check mango"), 5, "the check of mango at the stock")
            c.sigkill("cart1")
            self.assertFalse(c.alive("cart1"))
            c.start("cart1")

            def served():
                r = d.request(s, 5, zp.OP_LIST, timeout=3)
                return r if r.status == zp.OK else None
            # Each try uses seq 5: a list changes nothing, so reusing it is harmless.
            after = wait_until(served, 15, "the session served after the cart restart")
            self.assertEqual((after.cart, after.generation, after.items),
                             (before.cart, before.generation, before.items))

            # Retries of seqs answered before the kill: original answers, no change.
            self.assertEqual(answer(d.request(s, 1, zp.OP_ADD, "apple", 2)), answer(r1))
            self.assertEqual(answer(d.request(s, 3, zp.OP_REMOVE, "apple", 1)), answer(r3))
            self.assertEqual(dict(d.request(s, 6, zp.OP_LIST).items), {"apple": 1, "pear": 1})

            # New work goes through.
            r7 = d.request(s, 7, zp.OP_ADD, "banana", 4)
            self.assertEqual(r7.status_name, "OK", r7)
            self.assertEqual(dict(r7.items), {"apple": 1, "pear": 1, "banana": 4})

            # t's interrupted add, retried with its seq until answered: once.
            def retried():
                r = d.request(t, 2, zp.OP_ADD, "mango", 1, timeout=3)
                return r if r.status == zp.OK else None
            wait_until(retried, 15, "t's interrupted add retried")
            again = d.request(t, 2, zp.OP_ADD, "mango", 1)
            self.assertEqual(again.status_name, "OK", again)
            lt = d.request(t, 3, zp.OP_LIST)
        self.assertEqual(dict(lt.items), {"lemon": 1, "mango": 1})
        self.assertEqual((lt.cart, lt.generation), (rt.cart, rt.generation))


if __name__ == "__main__":
    harness.main()
