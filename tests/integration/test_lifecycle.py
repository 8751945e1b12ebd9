#!/usr/bin/python3
"""test_lifecycle: a session's life through the real CLI, and the free list.

Design
------
Each test starts its own small cluster (1 replica; cart nodes and slots
chosen so the outcome is forced, e.g. a single slot means the next session
MUST get the same cart) and drives sessions through the `zcart` CLI with
--json, the way a user would.  Cart counts are read from the leader's
STATUS and every transition that happens in the background (draining ->
free) is waited for with a deadline, never slept for.

  a. add (assigns) -> add -> remove -> list -> close; counts move
     free -> assigned -> (draining) -> free; a closed session is refused.
  c. a released cart reaches the next session empty.
  d. NO_FREE_CART when every cart is taken, and service resumes when one is
     closed and has drained.
"""

import harness
from harness import CliSession, items_of, wait_until


class Lifecycle(harness.ClusterTestCase):
    def test_a_full_lifecycle(self):
        c = self.cluster(cart_nodes=2, slots=2)
        total = 4
        self.assertEqual(c.counts(), (total, total, 0, 0))

        s = CliSession(c)
        r = s.add("apple", 3)
        self.assertTrue(r["new_session"], r)
        cart, gen = r["cart"], r["generation"]
        self.assertRegex(cart, r"^cart[12]\.[01]$")
        self.assertGreater(gen, 0)
        self.assertEqual(items_of(r), {"apple": 3})
        self.assertEqual(c.counts(), (total, total - 1, 1, 0))

        r = s.add("pear", 2)
        self.assertEqual((r["cart"], r["generation"]), (cart, gen))
        self.assertEqual(items_of(r), {"apple": 3, "pear": 2})

        r = s.remove("apple", 1)
        self.assertEqual(items_of(r), {"apple": 2, "pear": 2})
        r = s.remove("pear", 2)
        self.assertEqual(items_of(r), {"apple": 2})

        # Removing more than the cart holds is NOT_IN_CART and changes nothing.
        r = s.remove("apple", 5, expect_ok=False)
        self.assertEqual((r["ok"], r["reason"]), (False, "NOT_IN_CART"), r)

        r = s.list()
        self.assertEqual((r["cart"], r["generation"]), (cart, gen))
        self.assertEqual(items_of(r), {"apple": 2})
        # The counts did not move while the session used its cart.
        self.assertEqual(c.counts(), (total, total - 1, 1, 0))

        r = s.close()
        self.assertEqual((r["cart"], r["generation"]), (cart, gen), r)
        # Released: the cart is draining or already back; never assigned.
        seen = []

        def back_free():
            n = c.counts()
            seen.append(n)
            return n == (total, total, 0, 0)

        wait_until(back_free, 10, "the closed session's cart back on the free list")
        for n in seen:
            self.assertEqual(n[2], 0, "cart still assigned after close: %r" % (seen,))
            self.assertEqual(n[1] + n[3], total, "a cart neither free nor draining: %r" % (seen,))

        # The closed session is refused; closing again is OK (idempotent).
        r = s.add("apple", 1, expect_ok=False)
        self.assertEqual(r["reason"], "SESSION_CLOSED", r)
        r = s.list(expect_ok=False)
        self.assertEqual(r["reason"], "SESSION_CLOSED", r)
        s.close()

    def test_c_released_cart_reaches_next_session_empty(self):
        c = self.cluster(cart_nodes=1, slots=1)
        a = CliSession(c)
        r = a.add("apple", 3)
        cart, gen_a = r["cart"], r["generation"]
        a.add("banana", 1)
        a.add("cherry", 7)
        self.assertEqual(items_of(a.list()), {"apple": 3, "banana": 1, "cherry": 7})
        a.close()
        wait_until(lambda: c.counts() == (1, 1, 0, 0), 10, "the only cart free again")

        b = CliSession(c)
        r = b.add("grape", 2)
        self.assertNotEqual(b.id, a.id)
        self.assertEqual(r["cart"], cart, "one slot: the next session must get the same cart")
        self.assertGreater(r["generation"], gen_a)
        self.assertEqual(items_of(r), {"grape": 2})
        r = b.list()
        self.assertEqual(items_of(r), {"grape": 2}, "the new session sees only what it added")
        self.assertEqual((r["cart"], r["generation"]), (cart, r["generation"]))

    def test_d_no_free_cart_then_service_resumes(self):
        c = self.cluster(cart_nodes=1, slots=2)
        a, b, late = CliSession(c), CliSession(c), CliSession(c)
        ra = a.add("apple", 1)
        rb = b.add("pear", 1)
        self.assertNotEqual(ra["cart"], rb["cart"])
        self.assertEqual(c.counts(), (2, 0, 2, 0))

        rc, r = c.cli("add", "lemon", 1)
        self.assertEqual((rc, r["ok"], r["reason"]), (1, False, "NO_FREE_CART"), r)
        late.id = r["session"]
        self.assertTrue(late.id, "the refused add still names its session: %r" % r)
        # The refusal assigned nothing.
        self.assertEqual(c.counts(), (2, 0, 2, 0))
        r = late.add("lemon", 1, expect_ok=False)
        self.assertEqual(r["reason"], "NO_FREE_CART", r)

        a.close()
        wait_until(lambda: c.counts() == (2, 1, 1, 0), 10, "session a's cart free again")
        r = late.add("lemon", 1)
        self.assertEqual(r["cart"], ra["cart"], "the only free cart is a's old one")
        self.assertGreater(r["generation"], ra["generation"])
        self.assertEqual(items_of(r), {"lemon": 1})
        self.assertEqual(c.counts(), (2, 0, 2, 0))
        # b was never disturbed.
        r = b.list()
        self.assertEqual((r["cart"], items_of(r)), (rb["cart"], {"pear": 1}))


if __name__ == "__main__":
    harness.main()
