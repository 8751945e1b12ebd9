#!/usr/bin/python3
"""test_cart_loss: a cart that does not come back is lost; its session moves on, told once.

Design
------
The liveness issue's cart loss: a cart node not back within
--cart-lost-after (here 1.5 s) loses its carts. The leader commits the
reassignment of each of their sessions to a fresh cart; each client gets
CART_LOST exactly once (its items are gone, the request that got it was not
applied) and then continues on the new cart. The lost cart, when its node
returns later, is reset (fenced by generation) before anybody gets it.

c1. Two nodes with two carts each; session A holds items on a cart of
    node cart2, session B on node cart1. cart2 is SIGKILLed and stays down:
    - A's next add gets CART_LOST naming a new cart of cart1 with a higher
      generation and no items; its next add is OK there and shows only the
      new item; a later list is OK (told once, not twice);
    - B is served throughout, unchanged;
    - after cart2 restarts, its lost cart is emptied and freed: a new
      session that gets it finds it empty, and every replica's registry
      adds up.
"""

import harness
from harness import CliSession, items_of, wait_until

BROKER_ARGS = ["--cart-liveness=800", "--cart-lost-after=1500", "--breaker-wait=300"]


class CartLoss(harness.ClusterTestCase):
    def test_c1_lost_cart_moves_its_session_once(self):
        c = self.cluster(replicas=3, cart_nodes=2, slots=2, hello_interval=200,
                         broker_args=BROKER_ARGS)
        a = b = None
        others = []
        while a is None or b is None:
            s = CliSession(c)
            r = s.add("apple", 3)
            node = r["cart"].split(".")[0]
            if node == "cart2" and a is None:
                a, ra = s, r
            elif node == "cart1" and b is None:
                b, rb = s, r
            else:
                others.append(s)
        for s in others:   # free their carts for the reassignment
            s.close()
        wait_until(lambda: c.counts()[1] == 2, 10, "two free carts")
        c.kill("cart2")
        wait_until(lambda: c.grep_logs("lost (its node silent"), 15, "the leader to declare the loss")
        r = a.add("pear", 1, expect_ok=False)
        self.assertEqual(r["reason"], "CART_LOST", r)
        self.assertTrue(r["cart"].startswith("cart1."), r)
        self.assertGreater(r["generation"], ra["generation"])
        self.assertEqual(items_of(r), {})
        r2 = a.add("pear", 1)
        self.assertEqual((r2["cart"], r2["generation"]), (r["cart"], r["generation"]))
        self.assertEqual(items_of(r2), {"pear": 1})
        self.assertEqual(items_of(a.list()), {"pear": 1})   # told once only
        self.assertEqual(items_of(b.list()), {"apple": 3})
        # The lost cart comes back: reset, then free and empty for a newcomer.
        c.start("cart2")
        wait_until(lambda: c.counts()[1] == 2 and not c.cli("status")[1].get("breakers"), 15,
                   "cart2's two carts free, the lost one reset, breakers closed")
        got = None
        for _ in range(4):
            s = CliSession(c)
            r = s.add("grape", 1, expect_ok=None)
            if r.get("ok") and r["cart"] == ra["cart"]:
                got = r
                break
        self.assertIsNotNone(got, "the lost cart was not handed out again")
        self.assertEqual(items_of(got), {"grape": 1})
        for st in c.all_status():
            self.assertEqual(st["carts_free"] + st["carts_assigned"] + st["carts_draining"],
                             st["carts_total"], st)


if __name__ == "__main__":
    harness.main()
