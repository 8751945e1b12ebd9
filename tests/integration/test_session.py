#!/usr/bin/python3
"""test_session: stickiness of one session, and the stock answers.

Design
------
  b. 200 operations of one session land on one cart: a raw DEALER sends
     them in pipelined windows of 20, the very first window being 20 racing
     *first* adds of a brand-new session (section 3: concurrent first
     requests of one session get one cart).  Every reply must name the same
     cart and generation, exactly one cart leaves the free list, and the
     final list equals a model computed from the OK replies.
  e. OUT_OF_STOCK for a low-stock product (the cart would hold more than the
     stock has, counting what it already holds) and UNKNOWN_PRODUCT for a
     product outside the catalog; a KO changes nothing.  The limits come
     from a catalog this test writes, so nothing is hard-coded twice.
"""

import random

import harness
import zcproto as zp
from harness import CliSession, Dealer, items_of


class Session(harness.ClusterTestCase):
    def test_b_200_ops_one_cart(self):
        c = self.cluster(cart_nodes=2, slots=2)
        total = c.counts()[0]
        session = zp.new_session()
        products = ["apple", "banana", "cherry", "grape"]
        rng = random.Random(20)
        model = {}
        carts = set()
        seq = 0
        with Dealer(c.leader_endpoint()) as d:
            for window in range(10):
                sent = {}
                for _ in range(20):
                    seq += 1
                    if window == 0:
                        op, product, qty = zp.OP_ADD, rng.choice(products), 1
                    else:
                        op = rng.choice([zp.OP_ADD, zp.OP_ADD, zp.OP_REMOVE, zp.OP_LIST])
                        product = "" if op == zp.OP_LIST else rng.choice(products)
                        qty = 0 if op == zp.OP_LIST else rng.randint(1, 3)
                    d.send(zp.request(session, seq, op, product, qty))
                    sent[seq] = (op, product, qty)
                # Replies of one window, in whatever order they come.  Adds
                # and removes of one window commute except for NOT_IN_CART,
                # which the model replays from the answers themselves.
                got = {}
                while len(got) < len(sent):
                    m = d.recv(10)
                    self.assertEqual((m.id, m.session), (zp.REPLY, session), m)
                    self.assertIn(m.seq, sent)
                    self.assertNotIn(m.seq, got, "two replies for seq %d" % m.seq)
                    got[m.seq] = m
                for s_, m in got.items():
                    op, product, qty = sent[s_]
                    carts.add((m.cart, m.generation))
                    if op == zp.OP_REMOVE and m.status == zp.NOT_IN_CART:
                        continue
                    self.assertEqual(m.status, zp.OK, "seq %d %s: %r" % (s_, zp.OP_NAMES[op], m))
                    if op == zp.OP_ADD:
                        model[product] = model.get(product, 0) + qty
                    elif op == zp.OP_REMOVE:
                        model[product] = model.get(product, 0) - qty
            self.assertEqual(seq, 200)
            self.assertEqual(len(carts), 1, "one session, several carts: %r" % carts)
            cart, gen = carts.pop()
            self.assertTrue(cart and gen > 0)
            final = d.request(session, seq + 1, zp.OP_LIST)
        self.assertEqual((final.cart, final.generation), (cart, gen))
        self.assertEqual(dict(final.items), {p: n for p, n in model.items() if n})
        self.assertEqual(c.counts(), (total, total - 1, 1, 0),
                         "20 racing first adds must take exactly one cart")

    def test_e_out_of_stock_and_unknown_product(self):
        catalog = {"apple": 1000, "truffle": 2, "saffron": 1}
        c = self.cluster(cart_nodes=1, slots=2,
                         catalog=harness.write_catalog("test_e", catalog))
        s = CliSession(c)
        r = s.add("apple", 1)
        cart, gen = r["cart"], r["generation"]

        r = s.add("truffle", catalog["truffle"] + 3, expect_ok=False)
        self.assertEqual((r["ok"], r["reason"]), (False, "OUT_OF_STOCK"), r)
        self.assertEqual((r["cart"], r["generation"]), (cart, gen))
        self.assertEqual(items_of(r), {"apple": 1}, "a KO reply carries the unchanged contents")

        # Up to the stock is fine; one more than the stock counting what the
        # cart already holds is not.
        r = s.add("truffle", catalog["truffle"] - 1)
        self.assertEqual(items_of(r), {"apple": 1, "truffle": catalog["truffle"] - 1})
        r = s.add("truffle", 1)
        self.assertEqual(items_of(r)["truffle"], catalog["truffle"])
        r = s.add("truffle", 1, expect_ok=False)
        self.assertEqual(r["reason"], "OUT_OF_STOCK", r)
        r = s.add("saffron", catalog["saffron"] + 1, expect_ok=False)
        self.assertEqual(r["reason"], "OUT_OF_STOCK", r)

        r = s.add("unobtainium", 1, expect_ok=False)
        self.assertEqual((r["ok"], r["reason"]), (False, "UNKNOWN_PRODUCT"), r)
        self.assertEqual((r["cart"], r["generation"]), (cart, gen))

        r = s.list()
        self.assertEqual(items_of(r), {"apple": 1, "truffle": catalog["truffle"]})

        # A first add that is refused by stock still assigns the cart (the
        # assignment commits before the cart asks the stock) and leaves it empty.
        t = CliSession(c)
        r = t.add("unobtainium", 1, expect_ok=False)
        self.assertEqual(r["reason"], "UNKNOWN_PRODUCT", r)
        self.assertTrue(r["cart"] and r["cart"] != cart, r)
        self.assertEqual(items_of(t.list()), {})


if __name__ == "__main__":
    harness.main()
