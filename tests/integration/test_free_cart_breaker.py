#!/usr/bin/python3
"""test_free_cart_breaker: a cart whose breaker tripped for failures while a
session held it comes back into service once it is released and reset.

Design
------
The capacity leak of issue 11 (docs/protocol.md section 3.3): a cart's
breaker opens for failed operations while a session holds it; the session
closes, the cart is reset and freed -- but free carts whose breaker is not
CLOSED are never assigned, a HELLO does not close a breaker opened for
failures, and only the cart's own session used to send probes.  So the cart
stayed HALF_OPEN for ever and new sessions got NO_FREE_CART.

The test plays the cart node itself (FakeNode, a thread speaking section 4
over one DEALER whose routing id is its name), so it can make the cart fail
on demand: one replica, no real cart node, one slot.

1. The node registers; a session gets its cart (the first add).
2. The node answers every cart-request INTERNAL ("storage broken"): after
   --breaker-failures of them the breaker is OPEN (why failures).
3. The node heals (answers again, HELLOs all along); the session closes;
   the cart is reset and returns to the free list, while its breaker is
   still OPEN or HALF_OPEN for failures.
4. The fix: the leader probes the free HALF_OPEN cart with a RESET of its
   generation; the node's RESET_DONE closes the breaker (status lists no
   breaker) and a new session gets the cart.  Without the fix step 4 times
   out with the breaker HALF_OPEN and the new session gets NO_FREE_CART.
5. A node that does not answer the probe: the breaker goes back to OPEN
   (PROBE_FAIL) and is probed again after its wait -- it does not close on
   the node's HELLOs alone, and closes once the node answers the RESET.
"""

import threading
import time

import zmq

import harness
import zcproto as zp
from harness import CliSession, wait_until

NODE = "flaky"
ARGS = ["--cart-timeout=500", "--breaker-failures=3", "--breaker-wait=300",
        "--breaker-wait-max=1000", "--cart-liveness=2000", "--drain-retry=200"]


class FakeNode(threading.Thread):
    """A one-slot cart node written from docs/protocol.md section 4: HELLO
    every 200 ms; cart-requests answered per `mode` ("ok": fencing by owner,
    add/list/remove on an in-memory cart; "internal": INTERNAL); RESETs
    answered with RESET_DONE while `reset_budget` is None or above 0 (each
    answer spends one).  Every RESET received is recorded in `resets` as
    (monotonic time, generation)."""

    def __init__(self, endpoint, name=NODE, cluster=None):
        super().__init__(daemon=True)
        self.name_ = name
        self.endpoint = endpoint
        self.cluster = cluster
        if cluster is not None and cluster.secure:
            cluster.cart_key(name)  # its own key: the broker binds a node's name to its key
        self.mode = "ok"
        self.reset_budget = None
        self.owner, self.generation, self.reset_generation = zp.ZERO_SESSION, 0, 0
        self.items = {}
        self.resets = []
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def slotinfo(self):
        return zp.SlotInfo(0, self.owner, self.generation, self.reset_generation,
                           len(self.items))

    def run(self):
        sock = harness.zctx().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTING_ID, self.name_.encode())
        harness.curve_client(sock, self.endpoint, self.name_.encode(), cluster=self.cluster)
        sock.connect(self.endpoint)
        next_hello = 0.0
        try:
            while not self.stop.is_set():
                now = time.monotonic()
                if now >= next_hello:
                    with self.lock:
                        sock.send(zp.encode(zp.Msg(zp.HELLO, node=self.name_,
                                                   slots=[self.slotinfo()])))
                    next_hello = now + 0.2
                if not sock.poll(50):
                    continue
                m = zp.decode(sock.recv())
                with self.lock:
                    out = self.handle(m)
                if out is not None:
                    sock.send(zp.encode(out))
        finally:
            sock.close(0)

    def handle(self, m):
        if m.id == zp.RESET:
            self.resets.append((time.monotonic(), m.generation))
            if self.reset_budget is not None:
                if self.reset_budget <= 0:
                    return None
                self.reset_budget -= 1
            if self.owner != zp.ZERO_SESSION and m.generation < self.generation:
                return None
            self.owner, self.generation, self.items = zp.ZERO_SESSION, 0, {}
            self.reset_generation = max(self.reset_generation, m.generation)
            return zp.Msg(zp.RESET_DONE, node=self.name_, slot=0, generation=m.generation)
        if m.id != zp.CART_REQUEST:
            return None
        def reply(status, detail=""):
            return zp.Msg(zp.CART_REPLY, corr=m.corr, slot=m.slot, session=m.session, seq=m.seq,
                          status=status, detail=detail, items=sorted(self.items.items()))
        if self.mode == "internal":
            return reply(zp.INTERNAL, "fake node: storage broken")
        if m.generation <= self.reset_generation or (
                self.owner != zp.ZERO_SESSION and (self.owner, self.generation)
                != (m.session, m.generation)):
            return reply(zp.FENCED, "fake node: stale owner")
        self.owner, self.generation = m.session, m.generation
        if m.op == zp.OP_ADD:
            self.items[m.product] = self.items.get(m.product, 0) + m.qty
        elif m.op == zp.OP_REMOVE:
            if self.items.get(m.product, 0) < m.qty:
                return reply(zp.NOT_IN_CART)
            self.items[m.product] -= m.qty
            if not self.items[m.product]:
                del self.items[m.product]
        return reply(zp.OK)


def breaker(c, cart):
    """The leader's breaker object for cart, or None when it is CLOSED and automatic."""
    _, st = c.cli("status")
    for b in st.get("breakers") or []:
        if b["cart"] == cart:
            return b
    return None


class FreeCartBreaker(harness.ClusterTestCase):
    def setUp(self):
        super().setUp()
        self.c = self.cluster(replicas=1, cart_nodes=0, broker_args=ARGS)
        self.node = FakeNode(self.c.cart_endpoints[0], cluster=self.c)
        self.node.start()
        self.addCleanup(self.node.join, 5)
        self.addCleanup(self.node.stop.set)
        wait_until(lambda: self.c.counts() == (1, 1, 0, 0), 10, "the fake node's slot registered")
        self.cart = NODE + ".0"

    def trip_then_release(self, reset_budget=None):
        """A session on the cart; failures trip its breaker; the node heals and
        the session closes (the node answers `reset_budget` RESETs from then
        on, None: all); returns once the cart is free again."""
        s = CliSession(self.c)
        r = s.add("apple", 1)
        self.assertEqual(r["cart"], self.cart, r)
        self.node.mode = "internal"
        for _ in range(3):
            r = s.list(expect_ok=False)
            self.assertEqual(r["reason"], "INTERNAL", r)
        b = wait_until(lambda: breaker(self.c, self.cart), 5, "the breaker tripped")
        self.assertIn(b["state"], ("OPEN", "HALF_OPEN"), b)   # its wait may be over already
        self.assertEqual(b["why"], "failures", b)
        self.node.mode = "ok"
        self.node.reset_budget = reset_budget
        s.close()
        wait_until(lambda: self.c.counts() == (1, 1, 0, 0), 10, "the cart reset and free again")
        return b

    def test_free_cart_tripped_for_failures_comes_back(self):
        self.trip_then_release()
        wait_until(lambda: breaker(self.c, self.cart) is None, 10,
                   "the free cart's breaker closed (it stayed HALF_OPEN: capacity leak)")
        # It closed through the leader's probe of the free cart, not otherwise.
        self.assertTrue(self.c.grep_logs("cart %s is free and HALF_OPEN: probing it" % self.cart))
        r = CliSession(self.c).add("pear", 2)
        self.assertEqual((r["cart"], harness.items_of(r)), (self.cart, {"pear": 2}), r)

    def test_unanswered_probe_reopens_then_closes_once_answered(self):
        self.trip_then_release(reset_budget=1)   # the drain's RESET only
        # Probes go unanswered: the breaker cycles OPEN -> HALF_OPEN -> OPEN and
        # never closes on the HELLOs alone.
        b = wait_until(lambda: (lambda x: x if x and x["trips"] >= 2 else None)(
            breaker(self.c, self.cart)), 15, "an unanswered probe reopened the breaker")
        self.assertIn(b["state"], ("OPEN", "HALF_OPEN"), b)
        self.assertEqual(b["cart_state"], "FREE", b)    # status says which cart is out
        self.assertTrue(self.c.grep_logs("cart %s is free and HALF_OPEN: probing it" % self.cart))
        self.assertGreaterEqual(len(self.node.resets), 2, self.node.resets)  # drain + probe
        r = CliSession(self.c).add("pear", 1, expect_ok=False)
        self.assertEqual(r["reason"], "NO_FREE_CART", r)
        self.node.reset_budget = None
        wait_until(lambda: breaker(self.c, self.cart) is None, 15,
                   "the breaker closed once the node answered a probe")
        r = CliSession(self.c).add("pear", 1)
        self.assertEqual(r["cart"], self.cart, r)


if __name__ == "__main__":
    harness.main()
