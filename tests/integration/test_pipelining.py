#!/usr/bin/python3
"""test_pipelining: one cart with many stock checks in flight, answered out of order.

Design
------
f1. The real stock service answers each check after a random 50..400 ms.
    A raw DEALER pipelines 16 adds of one session (distinct seqs, distinct
    products) without waiting.  All must be answered OK, each exactly once,
    the final list must show every product exactly once, and the replies
    must have come back in an order different from the send order (with 16
    independent random delays the chance of the send order is ~1/16!).

f2. The same burst against a cart node whose stock service is the TEST (a
    ROUTER it binds).  The test does not answer any check until it holds all
    16 -- which proves the cart had 16 checks in flight at once -- then
    answers them in reverse order, some with OUT_OF_STOCK.  Each client
    reply must carry the answer of ITS check (the cart matched by corr), in
    the order the test answered.
"""

import harness
import zcproto as zp
from harness import Dealer, FakeRouter, wait_until

N = 16


class Pipelining(harness.ClusterTestCase):
    def catalog(self):
        products = ["item%02d" % i for i in range(N)]
        return products, harness.write_catalog("test_f", {p: 1000 for p in products + ["apple"]})

    def test_f1_random_stock_delay_out_of_order(self):
        products, catalog = self.catalog()
        c = self.cluster(cart_nodes=1, slots=1, stock_delay="50:400", catalog=catalog)
        session = zp.new_session()
        with Dealer(c.leader_endpoint()) as d:
            first = d.request(session, 1, zp.OP_ADD, "apple", 1)
            self.assertEqual(first.status_name, "OK", first)
            sent = []
            for i, p in enumerate(products):
                seq = 100 + i
                d.send(zp.request(session, seq, zp.OP_ADD, p, 1))
                sent.append(seq)
            order = []
            replies = {}
            while len(order) < N:
                m = d.recv(10)
                self.assertEqual((m.id, m.session), (zp.REPLY, session))
                self.assertNotIn(m.seq, replies, "seq %d answered twice" % m.seq)
                replies[m.seq] = m
                order.append(m.seq)
            for seq, m in replies.items():
                self.assertEqual((m.status_name, m.cart, m.generation),
                                 ("OK", first.cart, first.generation), m)
                self.assertEqual(dict(m.items).get(products[seq - 100]), 1)
            self.assertNotEqual(order, sent, "replies came back in send order: no concurrency?")
            final = d.request(session, 1000, zp.OP_LIST)
        expect = {p: 1 for p in products}
        expect["apple"] = 1
        self.assertEqual(dict(final.items), expect)

    def test_f2_sixteen_checks_in_flight_matched_by_corr(self):
        products, _ = self.catalog()
        c = self.cluster(cart_nodes=0)
        with FakeRouter("tcp://127.0.0.1:%d" % c.port(), c, "stock") as stock:
            c.start_cart_node("pipe", 1, c.cart_endpoints, [stock.endpoint])
            wait_until(lambda: c.counts() == (1, 1, 0, 0), 10, "node pipe registered")
            session = zp.new_session()
            with Dealer(c.leader_endpoint()) as d:
                # The first add assigns the cart; answer its check by hand.
                d.send(zp.request(session, 1, zp.OP_ADD, "apple", 1))
                rid, chk = stock.recv_msg(zp.CHECK, timeout=10)
                self.assertEqual((chk.product, chk.qty), ("apple", 1))
                stock.send(rid, zp.Msg(zp.CHECK_REPLY, corr=chk.corr, status=zp.OK, qty=50))
                first = d.reply_for(session, 1)
                self.assertEqual(first.status_name, "OK", first)

                for i, p in enumerate(products):
                    d.send(zp.request(session, 100 + i, zp.OP_ADD, p, 1))
                checks = []
                while len(checks) < N:
                    rid, chk = stock.recv_msg(zp.CHECK, timeout=10)
                    checks.append((rid, chk))
                self.assertEqual(sorted(k.product for _, k in checks), sorted(products))
                self.assertEqual(len({k.corr for _, k in checks}), N, "corr reused")
                self.assertFalse(d.pending(0), "a reply before any check was answered")

                refused = {p for i, p in enumerate(products) if i % 3 == 0}
                answered = []
                for rid, chk in reversed(checks):
                    st = zp.OUT_OF_STOCK if chk.product in refused else zp.OK
                    stock.send(rid, zp.Msg(zp.CHECK_REPLY, corr=chk.corr, status=st, qty=0))
                    answered.append(chk.product)
                order = []
                for _ in range(N):
                    m = d.recv(10)
                    p = products[m.seq - 100]
                    want = "OUT_OF_STOCK" if p in refused else "OK"
                    self.assertEqual(m.status_name, want, "%s got the answer of another check: %r"
                                     % (p, m))
                    order.append(p)
                # The last add sent was answered first by the stock: its reply
                # must not wait for the earlier adds.
                self.assertNotEqual(order, products, "replies held back to send order")
                self.assertEqual(order[0], answered[0], "replies held back: %r" % order)
                final = d.request(session, 1000, zp.OP_LIST)
        expect = {p: 1 for p in products if p not in refused}
        expect["apple"] = 1
        self.assertEqual(dict(final.items), expect)


if __name__ == "__main__":
    harness.main()
