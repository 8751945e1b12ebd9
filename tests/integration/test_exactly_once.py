#!/usr/bin/python3
"""test_exactly_once: a retried (session, seq) gets the original answer and changes nothing.

Design
------
A raw DEALER sends requests with seqs the test chooses, then sends the very
same (session, seq) again -- on the same connection, on a new connection,
while the first copy is still waiting for its stock check, and for every
kind of outcome (OK add, OK remove, KO add).  Every copy must get a reply
equal to the original one (status, cart, generation, detail, items), and
the cart's contents must show each operation applied once.

The stock answers after 100..200 ms, so the "retry while pending" copy
really arrives while the first is in flight.
"""

import harness
import zcproto as zp
from harness import Dealer


def answer(m):
    """What a retry must reproduce."""
    return (m.status_name, m.cart, m.generation, m.detail, m.items)


class ExactlyOnce(harness.ClusterTestCase):
    def test_g_retry_returns_original_answer(self):
        catalog = harness.write_catalog("test_g", {"apple": 1000, "banana": 1000, "truffle": 2})
        c = self.cluster(cart_nodes=1, slots=2, stock_delay="100:200", catalog=catalog)
        ep = c.leader_endpoint()
        s = zp.new_session()
        with Dealer(ep) as d:
            # The first add, sent twice back to back: one assignment, one add.
            d.send(zp.request(s, 10, zp.OP_ADD, "apple", 1))
            d.send(zp.request(s, 10, zp.OP_ADD, "apple", 1))
            r1, r1b = d.recv(10), d.recv(10)
            self.assertEqual((r1.seq, r1b.seq), (10, 10))
            self.assertEqual(r1.status_name, "OK", r1)
            self.assertEqual(answer(r1b), answer(r1))
            self.assertEqual(c.counts()[2], 1, "a doubled first add took two carts")

            # Plain retry after the answer.
            again = d.request(s, 10, zp.OP_ADD, "apple", 1)
            self.assertEqual(answer(again), answer(r1))
            self.assertEqual(dict(d.request(s, 11, zp.OP_LIST).items), {"apple": 1})

            # Retry while the first copy waits for its stock check.
            d.send(zp.request(s, 12, zp.OP_ADD, "banana", 2))
            d.send(zp.request(s, 12, zp.OP_ADD, "banana", 2))
            b1, b2 = d.recv(10), d.recv(10)
            self.assertEqual((b1.seq, b2.seq), (12, 12))
            self.assertEqual(b1.status_name, "OK", b1)
            self.assertEqual(answer(b2), answer(b1))

            # A remove and a KO, each retried.
            rm = d.request(s, 13, zp.OP_REMOVE, "apple", 1)
            self.assertEqual(rm.status_name, "OK", rm)
            self.assertEqual(answer(d.request(s, 13, zp.OP_REMOVE, "apple", 1)), answer(rm),
                             "a retried remove must not be NOT_IN_CART")
            ko = d.request(s, 14, zp.OP_ADD, "truffle", 5)
            self.assertEqual(ko.status_name, "OUT_OF_STOCK", ko)
            self.assertEqual(answer(d.request(s, 14, zp.OP_ADD, "truffle", 5)), answer(ko))

            # Later changes do not alter the stored answer of an old seq.
            d.request(s, 15, zp.OP_ADD, "apple", 3)
            self.assertEqual(answer(d.request(s, 10, zp.OP_ADD, "apple", 1)), answer(r1))
            contents = dict(d.request(s, 16, zp.OP_LIST).items)
        self.assertEqual(contents, {"banana": 2, "apple": 3})

        # A new connection (a client that reconnected) retries old seqs.
        with Dealer(ep) as d2:
            self.assertEqual(answer(d2.request(s, 10, zp.OP_ADD, "apple", 1)), answer(r1))
            self.assertEqual(answer(d2.request(s, 12, zp.OP_ADD, "banana", 2)), answer(b1))
            self.assertEqual(answer(d2.request(s, 13, zp.OP_REMOVE, "apple", 1)), answer(rm))
            self.assertEqual(dict(d2.request(s, 17, zp.OP_LIST).items), contents)


if __name__ == "__main__":
    harness.main()
