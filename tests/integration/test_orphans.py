#!/usr/bin/python3
"""test_orphans: carts of slots that no longer exist are unregistered (issue 13, 14).

Design
------
A cart is a slot of a cart node.  When the slot goes away -- the node
restarts with fewer --slots, or an operator retires the whole node -- its
cart must leave the replicated registry: before the fix such a cart stayed
registered for good (a released one DRAINING, reset every --drain-retry in
vain; an assigned one's session kept being sent to a slot the node answers
"no such slot").  The leader commits one UNREGISTER per node: FREE and
DRAINING carts go, and the session of an ASSIGNED one moves to a free cart
with a CLOSED breaker (its client is told CART_LOST, as for a lost cart)
or, when none is free, ends as EXPIRED.

o1. Fewer slots on restart (3 replicas, 2 nodes x 4 slots): sessions hold
    cart1.1, cart1.2 and cart1.3; cart1 is killed; the session on cart1.2
    closes (its cart is DRAINING: the node is down, the reset cannot be
    delivered); cart1 comes back with --slots 2.  Then every replica has 6
    carts, none DRAINING, digests equal; the session on cart1.3 gets
    CART_LOST naming a free cart (not cart1.2/cart1.3) and is served there;
    the session on cart1.1 keeps its items.
o2. `zcart admin remove-cart-node cart2` with live sessions (1 replica, 2
    nodes x 2 slots, cart2 stopped): two sessions on cart2, one free cart
    on cart1.  The answer says 2 carts unregistered, 1 session moved, 1
    ended; one session gets CART_LOST on cart1, the other SESSION_EXPIRED;
    the registry holds cart1's 2 carts only and the leader's node map
    (status `cart_nodes`) forgets cart2.  Decided and documented: a removed
    node that says HELLO again is registered afresh -- cart2 restarted, its
    2 carts are registered again, the one that still held items drains
    (reset) before it is free, `cart_nodes` is 2 again.
o3. A client key cannot run remove-cart-node: `KO FORBIDDEN`, nothing
    unregistered (secure clusters only).
o4. The 256-name bound gives names back (insecure, where a name costs
    nothing): with 256 names known -- one of them, e000, sent a HELLO with
    no slots and then went silent -- a new name is taken once e000 has
    been silent for --cart-liveness (a name with no cart and no HELLO is
    forgotten when the map is full; this is how a follower frees a removed
    node's name), and after `remove-cart-node n001` one more new name is
    taken at once (the leader forgets a removed name when it commits).
"""

import os

import harness
import zcproto as zp
from harness import CliSession, Dealer, converged, items_of, wait_until


def open_until(c, want):
    """Open sessions (an add each) until every cart id in `want` is held;
    {cart: (session, reply)} for those, and the other sessions opened."""
    held, others = {}, []
    for _ in range(64):
        if set(want) <= set(held):
            break
        s = CliSession(c)
        r = s.add("apple", 1)
        if r["cart"] in want:
            held[r["cart"]] = (s, r)
        else:
            others.append(s)
    assert set(want) <= set(held), (want, held)
    return held, others


class Orphans(harness.ClusterTestCase):
    def test_o1_fewer_slots_on_restart(self):
        c = self.cluster(replicas=3, cart_nodes=2, slots=4, hello_interval=200)
        held, others = open_until(c, ["cart1.1", "cart1.2", "cart1.3"])
        for s in others:
            s.close()
        wait_until(lambda: c.counts() == (8, 5, 3, 0), 15, "5 free carts, 3 assigned")
        keep, _ = held["cart1.1"]
        keep.add("pear", 2)
        gone, rg = held["cart1.3"]
        c.kill("cart1")
        closed, _ = held["cart1.2"]
        closed.close()
        wait_until(lambda: c.counts() == (8, 5, 2, 1), 10, "cart1.2 draining")
        c.start_cart_node("cart1", 2, c.cart_endpoints, c.stock_endpoints)
        wait_until(lambda: c.counts() == (6, 4, 2, 0), 15,
                   "cart1.2 and cart1.3 unregistered (registry of 6, none draining)")
        st = wait_until(lambda: converged(c), 10, "every replica to agree")
        for x in st:
            self.assertEqual((x["carts_total"], x["carts_draining"]), (6, 0), x)
            self.assertEqual(x["carts_free"] + x["carts_assigned"], 6, x)
        r = gone.add("lemon", 1, expect_ok=False)
        self.assertEqual(r["reason"], "CART_LOST", r)
        self.assertNotIn(r["cart"], ("cart1.2", "cart1.3"), r)
        self.assertGreater(r["generation"], rg["generation"], r)
        self.assertEqual(items_of(r), {})
        r2 = gone.add("lemon", 1)
        self.assertEqual((r2["cart"], items_of(r2)), (r["cart"], {"lemon": 1}))
        r = wait_until(lambda: (lambda x: x if x.get("ok") else None)(keep.list(expect_ok=None)),
                       15, "the session on cart1.1 served again (its breaker closed)")
        self.assertEqual((r["cart"], items_of(r)), ("cart1.1", {"apple": 1, "pear": 2}))
        self.assertTrue(c.grep_logs("unregistered 2 cart(s) of node cart1"))
        self.assertAllAlive(c)

    def test_o2_remove_cart_node_with_live_sessions_then_hello_again(self):
        # debug: "emptied and free again" is a per-session line (DEBUG)
        c = self.cluster(replicas=1, cart_nodes=2, slots=2, hello_interval=200, log_level="debug")
        held, others = open_until(c, ["cart2.0", "cart2.1", "cart1.0"])
        for s in others:
            s.close()
        (a, ra), (b, rb) = held["cart2.0"], held["cart2.1"]
        keep, _ = held["cart1.0"]
        a.add("pear", 1)
        wait_until(lambda: c.counts() == (4, 1, 3, 0), 15, "one free cart (on cart1)")
        self.assertEqual(c.leader()["cart_nodes"], 2)
        c.kill("cart2")
        rc, out = c.cli("admin", "remove-cart-node", "cart2")
        self.assertEqual(rc, 0, out)
        self.assertIn("2 cart(s) unregistered, 1 session(s) moved", out["detail"])
        self.assertIn("1 ended", out["detail"])
        ld = c.leader()
        self.assertEqual((ld["carts_total"], ld["carts_free"], ld["carts_assigned"],
                          ld["carts_draining"]), (2, 0, 2, 0), ld)
        self.assertEqual(ld["cart_nodes"], 1, ld)
        got = sorted([a.list(expect_ok=False)["reason"], b.list(expect_ok=False)["reason"]])
        self.assertEqual(got, ["CART_LOST", "SESSION_EXPIRED"])
        moved = a if a.list(expect_ok=None).get("ok") else b
        r = moved.add("mango", 1)
        self.assertEqual(r["cart"], "cart1.1", r)
        self.assertEqual(items_of(r), {"mango": 1})
        self.assertEqual(items_of(keep.list()), {"apple": 1})
        # HELLO again: registered afresh; the slot that held items drains first.
        c.start("cart2")
        wait_until(lambda: c.counts() == (4, 2, 2, 0), 15, "cart2's carts registered and free")
        self.assertEqual(c.leader()["cart_nodes"], 2)
        self.assertTrue([l for _, l in c.grep_logs("emptied and free again") if "cart cart2." in l],
                        "cart2's dirty slots were not drained before use")
        for _ in range(2):
            s = CliSession(c)
            r = s.add("grape", 1)
            self.assertTrue(r["cart"].startswith("cart2."), r)
            self.assertEqual(items_of(r), {"grape": 1})
        self.assertAllAlive(c)

    def test_o3_client_key_is_forbidden(self):
        c = self.cluster(replicas=1, cart_nodes=1, slots=2)
        if not c.secure:
            self.skipTest("insecure cluster: no keys")
        before = c.counts()
        rc, out = c.cli("admin", "remove-cart-node", "cart1", cert="client")
        self.assertEqual(rc, 1, out)
        self.assertEqual(out["reason"], "FORBIDDEN", out)
        self.assertEqual(c.counts(), before)
        self.assertEqual(c.leader()["cart_nodes"], 1)
        rc, out = c.cli("admin", "remove-cart-node", "no.such")
        self.assertEqual(rc, 2, out)

    def test_o4_node_names_are_given_back(self):
        c = self.cluster(replicas=1, cart_nodes=0, secure=False,
                         broker_args=["--cart-liveness=500", "--cart-lost-after=1000"])
        ep = c.cart_endpoints[0]
        dealers = {}

        def hello(name, slots=(0,)):
            if name not in dealers:
                dealers[name] = Dealer(ep, routing_id=name.encode(), cert=False)
            dealers[name].send(zp.Msg(zp.HELLO, node=name,
                                      slots=[zp.SlotInfo(x) for x in slots]))

        def heard_back(name):
            hello(name)
            d = dealers[name]
            while d.pending(0.2):
                m = d.recv(0.1)
                if m.id == zp.HEARTBEAT:
                    return True
            return False

        try:
            hello("e000", slots=())
            for i in range(1, 256):
                hello("n%03d" % i)
            wait_until(lambda: c.counts() == (255, 255, 0, 0), 60, "255 nodes registered")
            self.assertEqual(c.leader()["cart_nodes"], 256)
            wait_until(lambda: heard_back("late1"), 15, "a new name taken in e000's place")
            wait_until(lambda: c.counts()[0] == 256, 10, "late1's cart registered")
            self.assertEqual(c.leader()["cart_nodes"], 256)
            self.assertFalse(heard_back("late2"), "a 257th name was taken")
            dealers.pop("n001").close()
            rc, out = c.cli("admin", "remove-cart-node", "n001")
            self.assertEqual(rc, 0, out)
            self.assertEqual(c.leader()["cart_nodes"], 255)
            wait_until(lambda: heard_back("late2"), 10, "a new name taken in n001's place")
            wait_until(lambda: c.counts()[0] == 256, 10, "late2's cart registered")
        finally:
            for d in dealers.values():
                d.close()


if __name__ == "__main__":
    harness.main()
