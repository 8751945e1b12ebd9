#!/usr/bin/python3
"""test_expiry_order: a request re-queued while it waits keeps its place (issue 13).

Design
------
The leader keeps every waiting request in one FIFO that is also its expiry
order (every wait lasts --cart-timeout), and the tick expires from its head
only.  A request whose cart's node is not connected (AT_NODE) is taken out
and tried again on every tick; before the fix it went back at the *tail*
with its old expiry, behind requests that came later and expire later, so
it was answered only after all of them had expired or been answered: up to
a whole --cart-timeout late ("requeued requests keep a stale expiry").

e1. Two carts on two nodes, --cart-liveness long enough that no breaker
    opens during the test.  cart1 is killed, cart2 paused (connected,
    silent).  Request A (its session on cart1) waits AT_NODE; half a second
    later request B (its session on cart2) waits AT_CART.  A expires first,
    so its CART_UNAVAILABLE ("... node is not connected") must come before
    B's ("... did not answer in time"); with A re-queued at the tail, B's
    comes first.
"""

import time

import harness
import zcproto as zp
from harness import Dealer, wait_until


class ExpiryOrder(harness.ClusterTestCase):
    def test_e1_requeued_at_node_request_expires_in_its_place(self):
        c = self.cluster(replicas=1, cart_nodes=2, slots=1, hello_interval=200,
                         broker_args=["--cart-liveness=30000", "--cart-lost-after=60000",
                                      "--cart-timeout=2000"])
        d = Dealer(c.leader_endpoint(), cluster=c)
        self.addCleanup(d.close)
        on = {}
        for _ in range(2):
            s = zp.new_session()
            r = d.request(s, 1, zp.OP_ADD, "apple", 1)
            self.assertEqual(r.status, zp.OK, r)
            on[r.cart.split(".")[0]] = s
        self.assertEqual(sorted(on), ["cart1", "cart2"])
        c.kill("cart1")
        c.pause("cart2")
        self.addCleanup(lambda: c.resume("cart2"))
        # A: its node is gone, so it waits AT_NODE (re-tried every tick).
        d.send(zp.request(on["cart1"], 2, zp.OP_LIST))
        wait_until(lambda: c.leader()["inflight"] == 1, 5, "A waiting at the leader")
        # Half a second later B, whose cart is connected but silent: AT_CART,
        # expiring half a second after A.
        gap_end = time.monotonic() + 0.5
        while time.monotonic() < gap_end:
            time.sleep(0.05)
        d.send(zp.request(on["cart2"], 2, zp.OP_LIST))
        order = []
        deadline = time.monotonic() + 10
        while len(order) < 2 and time.monotonic() < deadline:
            m = d.recv(max(deadline - time.monotonic(), 0.1))
            if m.id == zp.REPLY and m.seq == 2:
                order.append((m.session, zp.STATUS_NAMES[m.status], m.detail))
        self.assertEqual(len(order), 2, order)
        self.assertEqual([o[1] for o in order], ["CART_UNAVAILABLE"] * 2, order)
        self.assertEqual(order[0][0], on["cart1"],
                         "B (later, expiring later) was answered before A: %r" % (order,))
        self.assertIn("not connected", order[0][2])
        self.assertIn("did not answer", order[1][2])


if __name__ == "__main__":
    harness.main()
