#!/usr/bin/python3
"""test_breakers: cart breakers trip, fail fast, recover, obey operators and survive failover.

Design
------
The liveness issue's breaker cases, each provoked with real processes on a
3-replica cluster with short windows (cart HELLO every 200 ms, liveness
1000 ms, first open wait 500 ms) so each case takes seconds:

b1. Killed cart node: the breakers of its carts open (status lists them,
    reason heartbeat) and its session gets CART_UNAVAILABLE from the
    breaker itself ("breaker is OPEN", not a timeout), while a session on
    the other node is served throughout. Restarted on the same data: the
    breakers close (HALF_OPEN -> CLOSED on its HELLOs) and the session
    continues on the same cart, generation and contents.
b2. Paused cart node (SIGSTOP): its breakers open; SIGCONT: they close and
    its session is served again.
b3. Operator: `zcart admin breaker CART open` holds a healthy cart's breaker
    open (its session gets CART_UNAVAILABLE; the free-list skips such carts:
    a new session does not get it); `close` holds it closed; `auto` hands it
    back. Bad arguments are refused and change nothing.
b4. The leader is killed while a breaker is forced OPEN: the new leader
    serves the same OPEN breaker (same since, same mode) and keeps refusing
    that cart's session; after `auto` and the node's HELLOs it closes.
"""

import harness
from harness import CliSession, items_of, wait_until

ARGS = ["--cart-liveness=1000", "--breaker-wait=500", "--breaker-wait-max=2000"]


def breakers(c):
    """{cart: breaker object} from `zcart status --json` (leader's view)."""
    rc, st = c.cli("status")
    return {b["cart"]: b for b in st.get("breakers") or []}


def served(s):
    r = s.list(expect_ok=None)
    return r if r.get("ok") else None


class Breakers(harness.ClusterTestCase):
    def cluster3(self):
        return self.cluster(replicas=3, cart_nodes=2, slots=2, hello_interval=200,
                            broker_args=ARGS)

    def sessions_by_node(self, c):
        """Fill every cart; {node: [(session, first answer)]}."""
        out = {}
        for p in ("apple", "pear", "lemon", "mango"):
            s = CliSession(c)
            r = s.add(p, 1)
            out.setdefault(r["cart"].split(".")[0], []).append((s, r))
        self.assertEqual(sorted(out), ["cart1", "cart2"], out)
        return out

    def test_b1_killed_cart_fails_fast_then_recovers(self):
        c = self.cluster3()
        by = self.sessions_by_node(c)
        (s2, r2), (s1, r1) = by["cart2"][0], by["cart1"][0]
        c.kill("cart2")
        bs = wait_until(lambda: (lambda b: b if {"cart2.0", "cart2.1"} <= set(b) else None)(
            breakers(c)), 10, "cart2's breakers open")
        self.assertEqual(bs["cart2.0"]["why"], "heartbeat", bs)
        self.assertNotIn("cart1.0", bs)
        r = wait_until(lambda: (lambda x: x if "breaker is OPEN" in x.get("detail", "") else None)(
            s2.list(expect_ok=False)), 10, "a fast CART_UNAVAILABLE from the breaker")
        self.assertEqual(r["reason"], "CART_UNAVAILABLE", r)
        # The other node's session is not affected.
        self.assertEqual(items_of(s1.add("banana", 2)), {r1["items"][0]["product"]: 1, "banana": 2})
        c.start("cart2")
        wait_until(lambda: not breakers(c), 15, "every breaker closed again")
        got = wait_until(lambda: served(s2), 10, "cart2's session served again")
        self.assertEqual((got["cart"], got["generation"], items_of(got)),
                         (r2["cart"], r2["generation"], items_of(r2)))

    def test_b2_paused_cart_opens_and_resumes(self):
        c = self.cluster3()
        by = self.sessions_by_node(c)
        s1, r1 = by["cart1"][0]
        c.pause("cart1")
        try:
            wait_until(lambda: {"cart1.0", "cart1.1"} <= set(breakers(c)), 10,
                       "cart1's breakers open while it is stopped")
        finally:
            c.resume("cart1")
        wait_until(lambda: not breakers(c), 15, "breakers closed after SIGCONT")
        got = wait_until(lambda: served(s1), 10, "cart1's session served again")
        self.assertEqual((got["cart"], items_of(got)), (r1["cart"], items_of(r1)))

    def test_b3_operator_forces_open_close_auto(self):
        c = self.cluster3()
        s = CliSession(c)
        r = s.add("apple", 1)
        cart = r["cart"]
        rc, a = c.cli("admin", "breaker", cart, "open")
        self.assertEqual((rc, a["ok"]), (0, True), a)
        self.assertIn("OPEN", a["detail"])
        b = breakers(c)[cart]
        self.assertEqual((b["state"], b["mode"], b["why"]), ("OPEN", "forced-open", "operator"))
        r = s.list(expect_ok=False)
        self.assertEqual(r["reason"], "CART_UNAVAILABLE", r)
        # Held open: the automatic rules do not close it although its node is fine.
        for _ in range(3):
            wait_until(lambda: breakers(c).get(cart, {}).get("state") == "OPEN", 5, "still open")
        rc, a = c.cli("admin", "breaker", cart, "close")
        self.assertEqual(rc, 0, a)
        b = breakers(c)[cart]   # closed but forced: still listed
        self.assertEqual((b["state"], b["mode"]), ("CLOSED", "forced-closed"))
        self.assertEqual(items_of(s.list()), {"apple": 1})
        rc, a = c.cli("admin", "breaker", cart, "auto")
        self.assertEqual(rc, 0, a)
        self.assertNotIn(cart, breakers(c))
        # Bad input: refused, nothing changes.
        rc, a = c.cli("admin", "breaker", "nosuch.9", "open")
        self.assertEqual((rc, a["reason"]), (1, "BAD_REQUEST"), a)
        rc, a = c.cli("admin", "breaker", cart, "sideways")
        self.assertEqual((rc, a["reason"]), (2, "USAGE"), a)
        self.assertEqual(breakers(c), {})
        # A free cart held open is not handed out: fill the rest, then the
        # forced one is the only free cart left and a new session gets none.
        free = [x for x in ("cart1.0", "cart1.1", "cart2.0", "cart2.1") if x != cart]
        c.cli("admin", "breaker", free[0], "open")
        got = {CliSession(c).add("pear", 1)["cart"] for _ in range(2)}
        self.assertNotIn(free[0], got)
        r = CliSession(c).add("pear", 1, expect_ok=False)
        self.assertEqual(r["reason"], "NO_FREE_CART", r)

    def test_b4_open_breaker_survives_leader_failover(self):
        c = self.cluster3()
        s = CliSession(c)
        cart = s.add("apple", 1)["cart"]
        rc, a = c.cli("admin", "breaker", cart, "open")
        self.assertEqual(rc, 0, a)
        before = breakers(c)[cart]
        old = c.leader()
        c.kill("broker%d" % old["id"])
        wait_until(lambda: (lambda ld: ld if ld and ld["id"] != old["id"] and ld.get("ready")
                            else None)(c.leader()), 15, "a new ready leader")
        after = breakers(c)[cart]
        self.assertEqual(after, before)
        r = s.list(expect_ok=False)
        self.assertEqual(r["reason"], "CART_UNAVAILABLE", r)
        rc, a = c.cli("admin", "breaker", cart, "auto")
        self.assertEqual(rc, 0, a)
        wait_until(lambda: cart not in breakers(c), 15, "the breaker closes under the new leader")
        self.assertEqual(items_of(wait_until(lambda: served(s), 10, "served")), {"apple": 1})
        c.start("broker%d" % old["id"])


if __name__ == "__main__":
    harness.main()
