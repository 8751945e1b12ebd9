"""A foreign cart node's whole life, from docs/protocol.md sections 1, 3.3, 4.

Each test starts its own cluster of 3 replicas with NO zcart-cart node, so
the only carts are those of the node implemented in zcartnode.py (written
from the document), which talks to the cluster's real stock service.
Broker timings are shortened with documented flags (`zcart-broker --help`).
"""

import sys
import time
import unittest

from base import failed_here, main, wait_until
import zcp
import zclient
import zcluster
import zcartnode

CART_TIMEOUT = 1000
LIVENESS = 1000
LOST_AFTER = 4000
BROKER_ARGS = ["--cart-timeout=%d" % CART_TIMEOUT, "--cart-liveness=%d" % LIVENESS,
               "--cart-lost-after=%d" % LOST_AFTER, "--breaker-wait=300", "--drain-retry=300"]


class ForeignCart(unittest.TestCase):

    # tests that need other broker timings
    BROKER_ARGS_FOR = {
        "test_leader_waits_for_a_node_it_has_not_heard":
            ["--cart-timeout=4000", "--cart-liveness=4000", "--cart-lost-after=8000"],
    }

    def setUp(self):
        args = self.BROKER_ARGS_FOR.get(self._testMethodName, BROKER_ARGS)
        self.cluster = zcluster.Cluster(replicas=3, cart_nodes=0, broker_args=args).up()
        self.client = zclient.Client(self.cluster.client_eps)
        self.nodes = []
        self.keep = False

    def tearDown(self):
        for n in self.nodes:
            n.stop()
        self.client.close()
        failed = failed_here(self, self._outcome.result)
        self.cluster.down(keep=failed)
        if failed:
            print("cluster data kept in", self.cluster.dir, file=sys.stderr)

    # ------------------------------------------------------------ helpers
    def node(self, name, nslots, state=None, **kw):
        n = zcartnode.CartNode(name, nslots, self.cluster.cart_eps, self.cluster.stock_eps,
                               state=state, **kw)
        self.nodes.append(n)
        return n.start()

    def status(self, ep):
        return self.client.status(ep)

    def leader(self, timeout=15):
        def find():
            for ep in self.cluster.client_eps:
                p = self.status(ep)
                if p and p.get("role") == "leader" and p.get("ready") == "1":
                    return ep
            return None
        return wait_until(find, timeout, "a ready leader")

    def leader_cart_ep(self):
        ld = self.leader()
        return self.cluster.cart_eps[self.cluster.client_eps.index(ld)]

    def counts(self, ep=None):
        p = self.status(ep or self.leader())
        return {k: int(p[k]) for k in ("carts_total", "carts_free", "carts_assigned",
                                       "carts_draining")}

    def wait_counts(self, timeout=10, ep=None, **want):
        def ok():
            c = self.counts(ep)
            return all(c["carts_" + k] == v for k, v in want.items()) and c
        return wait_until(ok, timeout, "leader's cart counts %r" % want)

    def assertStatus(self, reply, name, msg=None):
        self.assertEqual(zcp.status_name(reply["status"]), name, msg or repr(reply))

    # ------------------------------------------------------------ register
    def test_register_heartbeats_and_free_list(self):
        """§4 hello and heartbeat: every replica, leader or not, answers each
        hello with a heartbeat naming the node; the leader registers the
        empty slots as free carts, replicated to every replica."""
        n = self.node("fa", 3)
        for ep in self.cluster.cart_eps:
            wait_until(lambda: n.received(zcp.HEARTBEAT, ep), 5, "a heartbeat from %s" % ep)
        self.assertEqual({m["node"] for m in n.received(zcp.HEARTBEAT)}, {"fa"})
        self.wait_counts(total=3, free=3, assigned=0, draining=0)
        for ep in self.cluster.client_eps:
            self.wait_counts(ep=ep, total=3, free=3)
        # each hello is answered: heartbeats keep pace with hellos, per replica
        t0 = time.monotonic()
        wait_until(lambda: all(len(n.received(zcp.HEARTBEAT, ep, since=t0)) >= 5
                               for ep in self.cluster.cart_eps), 10, "5 more heartbeats each")
        sent = {ep: len([m for (t, e, m) in n.sent if e == ep and m["type"] == zcp.HELLO])
                for ep in self.cluster.cart_eps}
        wait_until(lambda: all(len(n.received(zcp.HEARTBEAT, ep)) >= sent[ep] for ep in sent), 5,
                   "a heartbeat for every hello sent so far, from every replica",
                   describe=lambda: {ep: (sent[ep], len(n.received(zcp.HEARTBEAT, ep)))
                                     for ep in sent})
        self.assertFalse(n.received(zcp.CART_REQUEST) or n.received(zcp.RESET),
                         "an empty free slot gets no request and no reset")

    # ------------------------------------------------------------ serve, close, reset
    def test_serve_session_then_close_resets(self):
        """§3 step 6/8 and §4: the first add takes the node's cart; the leader
        (only) sends cart-requests carrying (session, generation); the cart's
        answers are relayed; keepalive never reaches the cart; close commits
        the release, then `reset` with the generation, and after
        `reset-done` the cart is free again."""
        n = self.node("fb", 2)
        self.wait_counts(total=2, free=2)
        s = zclient.Session(self.client)
        r = s.add(b"apple", 2)
        self.assertStatus(r, "OK")
        self.assertIn(r["cart"], (n.cart(0), n.cart(1)))
        slot = int(r["cart"].rpartition(".")[2])
        gen = r["generation"]
        self.assertGreater(gen, 0)
        self.assertEqual(r["items"], [("apple", 2)])
        reqs = n.received_with_ep(zcp.CART_REQUEST)
        self.assertEqual(len(reqs), 1)
        ep, m = reqs[0]
        self.assertEqual(ep, self.leader_cart_ep(), "cart-requests come from the leader")
        self.assertEqual((m["slot"], m["session"], m["generation"], m["seq"], m["op"],
                          m["product"], m["qty"]),
                         (slot, s.id, gen, 1, zcp.ADD, "apple", 2))
        self.assertEqual(n.state.slots[slot].owner, (s.id, gen), "the slot adopted its owner")
        self.assertEqual(self.counts()["carts_assigned"], 1)
        self.assertEqual(s.remove(b"apple", 1)["items"], [("apple", 1)])
        self.assertStatus(s.remove(b"pear", 1), "NOT_IN_CART")
        r = s.list()
        self.assertEqual((r["cart"], r["generation"], r["items"]), (n.cart(slot), gen, [("apple", 1)]))
        before = len(n.received(zcp.CART_REQUEST))
        k = s.keepalive()
        self.assertStatus(k, "OK")
        self.assertEqual((k["cart"], k["generation"], k["items"]), (n.cart(slot), gen, []))
        self.assertEqual(len(n.received(zcp.CART_REQUEST)), before, "keepalive reaches no cart")
        self.assertEqual(len(n.received(zcp.RESET)), 0)
        c = s.close()
        self.assertStatus(c, "OK")
        self.assertEqual((c["cart"], c["generation"]), (n.cart(slot), gen))
        wait_until(lambda: n.received(zcp.RESET), 5, "a reset after the close")
        ep, m = n.received_with_ep(zcp.RESET)[0]
        self.assertEqual((m["slot"], m["generation"]), (slot, gen))
        self.assertEqual(ep, self.leader_cart_ep())
        self.wait_counts(total=2, free=2, assigned=0, draining=0)
        self.assertEqual(n.state.slots[slot].items, {}, "emptied")
        self.assertEqual(n.state.slots[slot].reset_gen, gen)
        # the next session gets a newer generation: the cart does not fence it
        s2 = zclient.Session(self.client)
        r2 = s2.add(b"pear", 1)
        self.assertStatus(r2, "OK")
        self.assertGreater(r2["generation"], gen)
        self.assertEqual(r2["items"], [("pear", 1)])

    def test_cart_answers_relayed(self):
        """§3 step 8: "the cart's answer is relayed in the reply": status,
        detail and items as the node sent them."""
        n = self.node("fc", 1)
        self.wait_counts(total=1, free=1)
        s = zclient.Session(self.client)
        self.assertStatus(s.add(b"apple", 1), "OK")
        for name in ("OUT_OF_STOCK", "UNKNOWN_PRODUCT", "STOCK_TIMEOUT", "STOCK_UNAVAILABLE",
                     "NOT_IN_CART", "FENCED"):
            with self.subTest(name):
                code = zcp.STATUS_NAMES.index(name)
                n.override = lambda m, code=code: (code, "said by the node")
                r = s.add(b"pear", 1)
                self.assertStatus(r, name)
                self.assertEqual(r["detail"], "said by the node")
                self.assertEqual(r["items"], [("apple", 1)])
        n.override = None
        self.assertStatus(s.add(b"pear", 1), "OK")

    def test_internal_trips_breaker_other_kos_do_not(self):
        """§3.3 / §8.2: --breaker-failures INTERNAL answers in a row open the
        cart's breaker (failures); other KOs the cart decides do not."""
        n = self.node("fl", 1)
        self.wait_counts(total=1, free=1)
        s = zclient.Session(self.client)
        cart = s.add(b"apple", 1)["cart"]
        n.override = lambda m: (zcp.OUT_OF_STOCK, "none left")
        for _ in range(10):      # were KOs failures, the breaker would open within these
            self.assertStatus(s.add(b"pear", 1), "OUT_OF_STOCK")
        self.assertNotIn("breaker." + cart, self.status(self.leader()), "KOs are not failures")
        n.override = lambda m: (zcp.INTERNAL, "disk on fire")
        for _ in range(3):
            r = s.add(b"pear", 1)
            self.assertStatus(r, "INTERNAL")
            self.assertEqual(r["detail"], "disk on fire")
        # the trip is a replicated breaker event: requests racing its commit
        # may still reach the cart (and fail again)
        extra = []
        def opened():
            r = s.list()
            extra.append(zcp.status_name(r["status"]))
            return r["status"] == zcp.CART_UNAVAILABLE and r
        r = wait_until(opened, 10, "the breaker to open")
        self.assertIn("breaker is OPEN (failures)", r["detail"])
        self.assertTrue(set(extra[:-1]) <= {"INTERNAL"}, extra)
        self.assertIn("trips=1 ", self.status(self.leader()).get("breaker." + cart, ""))
        n.override = None
        wait_until(lambda: s.list()["status"] == zcp.OK, 10, "a probe to close the breaker")

    def mismatched_reply(self, name, fields, counted):
        """Answer one list with a cart-reply whose fields(m) differ from the
        request's; the client must get CART_UNAVAILABLE, and the leader's
        `dropped` must grow by `counted` (§8.2, §3.1 `dropped`)."""
        n = self.node("fm", 1)
        self.wait_counts(total=1, free=1)
        s = zclient.Session(self.client)
        s.add(b"apple", 1)
        n.answer_requests = False
        ld = self.leader()
        cep = self.leader_cart_ep()
        d0 = int(self.status(ld)["dropped"])
        seen = len(n.received(zcp.CART_REQUEST))
        self.client.send_raw(ld, zcp.encode_request(s.id, s.next_seq(), zcp.LIST, 0, b"", 0))
        wait_until(lambda: len(n.received(zcp.CART_REQUEST)) > seen, 5, "the cart-request")
        corr, slot, sess, seq = fields(n.received(zcp.CART_REQUEST)[-1])
        n.call(lambda node: node._send(cep, zcp.encode_cart_reply(
            corr, slot, sess, seq, zcp.OK, "", [("apple", 99)])))
        u = self.client.wait_for(ld, self.client._reply_of(s.id, s.seq), 10)
        self.assertStatus(u, "CART_UNAVAILABLE")
        d1 = int(self.status(ld)["dropped"])
        print("cart-reply with %s: dropped %d -> %d" % (name, d0, d1), file=sys.stderr)
        self.assertEqual(d1, d0 + counted, "dropped %s" % ("counted" if counted else "uncounted"))

    def test_mismatched_cart_reply_other_session_or_seq_dropped(self):
        """§8.2: a cart-reply whose corr names a waiting request but whose
        slot, session or seq differ is dropped and counted in `dropped`; the
        client gets CART_UNAVAILABLE."""
        other = zclient.new_session_id()
        self.mismatched_reply("other slot, session and seq",
                              lambda m: (m["corr"], m["slot"] + 1, other, m["seq"] + 1), 1)

    def test_mismatched_cart_reply_unknown_corr_not_counted(self):
        """§4 end / §8.2: a cart-reply whose corr names no waiting request is
        late, not malformed: dropped without counting."""
        self.mismatched_reply("unknown corr",
                              lambda m: (m["corr"] + 1000, m["slot"], m["session"], m["seq"]), 0)

    def test_node_name_outside_the_set_is_refused(self):
        """§8.2 / §2: a node name must be 1..32 octets of [A-Za-z0-9_-]; a
        hello from `bad.name` (routing id matching) is dropped: no heartbeat,
        no registration."""
        n = self.node("bad.name", 1)
        ld = self.leader()
        wait_until(lambda: int(self.status(ld)["dropped"]) >= 2, 5, "hellos dropped")
        self.assertEqual(n.received(zcp.HEARTBEAT), [])
        self.assertEqual(self.counts()["carts_total"], 0)

    def test_dedup_retry_answer_is_the_original(self):
        """§3 Retries / §4 step 4: a resent (session, seq) is answered the
        original answer; the operation takes effect once."""
        n = self.node("fd", 1)
        self.wait_counts(total=1, free=1)
        s = zclient.Session(self.client)
        self.assertStatus(s.add(b"apple", 1), "OK")
        r = s.add(b"pear", 2)
        self.assertStatus(r, "OK")
        for _ in range(3):
            again = self.client.call(s.id, s.seq, zcp.ADD, b"pear", 2)
            self.assertEqual((again["status"], again["items"]), (zcp.OK, r["items"]))
        self.assertEqual(n.state.slots[0].items.get("pear"), 2, "applied once")

    def test_reset_repeated_until_reset_done(self):
        """§4 reset: the leader repeats `reset` until it gets `reset-done`, and
        only then commits the cart's return to the free list."""
        n = self.node("fe", 1)
        self.wait_counts(total=1, free=1)
        s = zclient.Session(self.client)
        gen = s.add(b"apple", 1)["generation"]
        n.answer_resets = False
        self.assertStatus(s.close(), "OK")
        wait_until(lambda: len(n.received(zcp.RESET)) >= 3, 10, "three resets")
        self.assertEqual({(m["slot"], m["generation"]) for m in n.received(zcp.RESET)}, {(0, gen)})
        c = self.counts()
        self.assertEqual((c["carts_free"], c["carts_draining"]), (0, 1))
        self.assertStatus(zclient.Session(self.client).add(b"apple", 1), "NO_FREE_CART",
                          "a draining cart is not handed out")
        n.answer_resets = True
        self.wait_counts(total=1, free=1, draining=0)
        self.assertStatus(zclient.Session(self.client).add(b"apple", 1), "OK")

    def test_registration_of_owned_slot_drains_and_raises_generation(self):
        """§4 hello: a slot that reports an owner or items is registered as
        draining and reset before use; registration raises the generation
        counter above every generation the node reports."""
        st = zcartnode.NodeState(3)
        old = zclient.new_session_id()
        st.slots[0].owner = (old, 500)
        st.slots[0].items["apple"] = 3
        st.slots[0].reset_gen = 100
        st.slots[1].reset_gen = 900          # empty, but has seen generation 900
        st.slots[2].items["pear"] = 1        # items, no owner
        n = self.node("ff", 3, state=st)
        wait_until(lambda: n.received(zcp.RESET), 5, "resets of the draining slots")
        self.wait_counts(total=3, free=3, draining=0)
        resets = {m["slot"]: m["generation"] for m in n.received(zcp.RESET)}
        self.assertIn(0, resets)
        self.assertGreaterEqual(resets[0], 500, "the reset covers the owner's generation")
        self.assertIn(2, resets, "a slot with items is drained too")
        self.assertNotIn(1, resets, "an empty slot joins the free list as it is")
        self.assertEqual((st.slots[0].owner, st.slots[0].items), (None, {}))
        gens = []
        for _ in range(3):
            r = zclient.Session(self.client).add(b"apple", 1)
            self.assertStatus(r, "OK", "new assignments are never fenced by old cart state")
            self.assertEqual(r["items"], [("apple", 1)], "the cart reached its session empty")
            gens.append(r["generation"])
        self.assertGreater(min(gens), 900)

    # ------------------------------------------------------------ unavailable, breakers
    def test_silent_cart_unavailable_breaker_then_probe(self):
        """§3 step 8 / §3.3: a cart that does not answer within the cart timeout
        is CART_UNAVAILABLE; after --breaker-failures of them its breaker is
        OPEN (failures) and requests are answered at once; after the open
        wait a probe goes through and a good answer closes it."""
        n = self.node("fg", 1)
        self.wait_counts(total=1, free=1)
        s = zclient.Session(self.client)
        cart = s.add(b"apple", 2)["cart"]
        n.answer_requests = False
        seen = []
        def opened():
            r = s.list()
            seen.append(r)
            self.assertStatus(r, "CART_UNAVAILABLE")
            return "breaker is OPEN" in r["detail"]
        wait_until(opened, 15, "the breaker to open")
        self.assertGreaterEqual(len([r for r in seen if "breaker" not in r["detail"]]), 1,
                                "timeouts came first")
        self.assertIn("failures", seen[-1]["detail"])
        p = self.status(self.leader())
        self.assertRegex(p.get("breaker." + cart, ""), r"^(OPEN|HALF_OPEN) auto failures")
        n.answer_requests = True
        def served():
            r = s.list()
            return r["status"] == zcp.OK and r
        r = wait_until(served, 15, "a probe to close the breaker")
        self.assertEqual(r["items"], [("apple", 2)])
        wait_until(lambda: "breaker." + cart not in self.status(self.leader()), 5,
                   "the breaker to leave status")

    def test_silent_node_trips_breaker_hello_closes_it(self):
        """§3.3: no hello for --cart-liveness opens the cart's breaker
        (heartbeat); a hello from the node closes it."""
        n = self.node("fh", 1)
        self.wait_counts(total=1, free=1)
        s = zclient.Session(self.client)
        cart = s.add(b"apple", 1)["cart"]
        n.send_hellos = False
        wait_until(lambda: self.status(self.leader()).get("breaker." + cart, "")
                   .startswith("OPEN auto heartbeat"), 5, "the heartbeat breaker")
        r = s.list()
        self.assertStatus(r, "CART_UNAVAILABLE")
        self.assertIn("breaker is OPEN (heartbeat)", r["detail"])
        n.send_hellos = True
        wait_until(lambda: "breaker." + cart not in self.status(self.leader()), 5,
                   "a hello to close the breaker")
        r = s.list()
        self.assertStatus(r, "OK")
        self.assertEqual(r["items"], [("apple", 1)])

    # ------------------------------------------------------------ lost and back
    def test_lost_node_session_moves_and_node_returns(self):
        """§3.3 / §3 step 7 / §4: a node silent for --cart-lost-after is lost:
        its session moves to a fresh cart under a new generation and is told
        CART_LOST once, with no items; the lost cart drains; when the node
        returns the leader resets it with the old generation before it
        rejoins the free list, so it reaches its next session empty."""
        a = self.node("la", 1)
        self.wait_counts(total=1, free=1)
        b = self.node("lb", 1)
        self.wait_counts(total=2, free=2)
        s = zclient.Session(self.client)
        r = s.add(b"apple", 2)
        self.assertStatus(r, "OK")
        holder, other = (a, b) if r["cart"] == a.cart(0) else (b, a)
        self.assertEqual(r["cart"], holder.cart(0))
        old_gen = r["generation"]
        state = holder.state
        holder.stop()                                     # the node dies
        self.nodes.remove(holder)
        seen = []
        def told():
            x = s.list()
            seen.append(zcp.status_name(x["status"]))
            return x["status"] == zcp.CART_LOST and x
        lost = wait_until(told, LOST_AFTER / 1000 * 4, "CART_LOST", interval=0.2)
        self.assertEqual(lost["cart"], other.cart(0), "moved to the free cart")
        self.assertGreater(lost["generation"], old_gen)
        self.assertEqual(lost["items"], [])
        self.assertTrue(set(seen[:-1]) <= {"OK", "CART_UNAVAILABLE"}, seen)
        # said once: the next request is served by the new cart
        r = s.add(b"pear", 1)
        self.assertStatus(r, "OK")
        self.assertEqual((r["cart"], r["generation"], r["items"]),
                         (other.cart(0), lost["generation"], [("pear", 1)]))
        m = other.received(zcp.CART_REQUEST)[-1]
        self.assertEqual((m["session"], m["generation"]), (s.id, lost["generation"]))
        c = self.counts()
        self.assertEqual((c["carts_total"], c["carts_free"], c["carts_draining"]), (2, 0, 1),
                         "the lost cart drains")
        # the node returns with its old state: reset with the old generation, then free
        back = self.node(holder.name, 1, state=state)
        wait_until(lambda: back.received(zcp.RESET), 10, "the reset of the returning cart")
        self.assertEqual(back.received(zcp.RESET)[0]["generation"], old_gen)
        self.wait_counts(total=2, free=1, draining=0)
        self.assertEqual((state.slots[0].owner, state.slots[0].items), (None, {}))
        print("returned cart's breaker: %r" % self.status(self.leader()).get(
            "breaker." + holder.cart(0), "CLOSED"), file=sys.stderr)
        # its breaker (opened while it was away) closes by a hello or, if it
        # opened for failures, by the leader's probe of a free cart (§3.3)
        wait_until(lambda: "breaker." + holder.cart(0) not in self.status(self.leader()), 15,
                   "the returned cart's breaker to close",
                   describe=lambda: (self.status(self.leader()).get("breaker." + holder.cart(0)),
                                     back.received_with_ep(zcp.RESET),
                                     [m for (t, e, m) in back.sent if m["type"] == zcp.RESET_DONE]))
        r = zclient.Session(self.client).add(b"apple", 1)
        self.assertStatus(r, "OK")
        self.assertEqual((r["cart"], r["items"]), (holder.cart(0), [("apple", 1)]))
        self.assertGreater(r["generation"], lost["generation"])

    def test_lost_without_free_cart_waits_for_one(self):
        """§3.3: when a lost cart's session cannot move (NO_FREE_CART for the
        move) the leader tries again later: the session keeps getting
        CART_UNAVAILABLE, and once a free cart appears it is moved and told
        CART_LOST."""
        a = self.node("wa", 1)
        self.wait_counts(total=1, free=1)
        s = zclient.Session(self.client)
        r = s.add(b"apple", 1)
        self.assertStatus(r, "OK")
        a.stop()
        self.nodes.remove(a)
        ld = self.leader()
        # wait until the node is past --cart-lost-after: the leader logs nothing
        # a client can see, so wait for the breaker and then the lost window
        wait_until(lambda: "breaker." + a.cart(0) in self.status(ld), 5, "the breaker")
        t0 = time.monotonic()
        while time.monotonic() - t0 < LOST_AFTER / 1000 + 1:
            x = s.list()
            self.assertStatus(x, "CART_UNAVAILABLE", "no free cart to move to: not lost yet")
            time.sleep(0.5)
        b = self.node("wb", 1)
        lost = wait_until(lambda: (lambda x: x["status"] == zcp.CART_LOST and x)(s.list()),
                          10, "the move once a free cart exists", interval=0.2)
        self.assertEqual((lost["cart"], lost["items"]), (b.cart(0), []))
        self.assertGreater(lost["generation"], r["generation"])

    # ------------------------------------------------------------ leader change, bad input
    def test_cart_requests_follow_the_leader(self):
        """§4: cart-requests are sent only by a leader; after a leadership
        transfer they come from the new leader's cart socket."""
        n = self.node("fi", 1)
        self.wait_counts(total=1, free=1)
        s = zclient.Session(self.client)
        self.assertStatus(s.add(b"apple", 1), "OK")
        first = self.leader_cart_ep()
        target = [ep for ep in self.cluster.client_eps if ep != self.leader()][0]
        tid = self.status(target)["id"]
        self.assertStatus(self.client.admin("transfer-leader", {"id": tid}), "OK")
        wait_until(lambda: self.leader() == target, 10, "the new leader")
        r = wait_until(lambda: (lambda x: x["status"] == zcp.OK and x)(s.list()), 10,
                       "the session served by the new leader")
        self.assertEqual(r["items"], [("apple", 1)])
        eps = [ep for ep, _ in n.received_with_ep(zcp.CART_REQUEST)]
        self.assertEqual(eps[0], first)
        self.assertEqual(eps[-1], self.leader_cart_ep())
        self.assertTrue(set(eps) <= {first, self.leader_cart_ep()})

    def test_leader_waits_for_a_node_it_has_not_heard(self):
        """§3 step 8: after a failover, a cart whose node has not connected to
        the new leader yet is waited for; the node's hello arriving during
        the wait lets the request through, from the new leader."""
        ld = self.leader()
        x = [ep for ep in self.cluster.client_eps if ep != ld][0]
        x_cart = self.cluster.cart_eps[self.cluster.client_eps.index(x)]
        n = zcartnode.CartNode("fn", 1, [ep for ep in self.cluster.cart_eps if ep != x_cart],
                               self.cluster.stock_eps)
        self.nodes.append(n.start())
        self.wait_counts(total=1, free=1)
        s = zclient.Session(self.client)
        self.assertStatus(s.add(b"apple", 1), "OK")
        self.assertStatus(self.client.admin("transfer-leader", {"id": self.status(x)["id"]}), "OK")
        q = s.next_seq()
        frame = zcp.encode_request(s.id, q, zcp.LIST, 0, b"", 0)
        # the request reaches x as soon as x leads (NOT_LEADER before that)
        def sent():
            self.client.send_raw(x, frame)
            m = self.client.wait_for(x, self.client._reply_of(s.id, q), 0.5)
            if m is not None:
                self.assertStatus(m, "NOT_LEADER")
                return False
            return True                          # no answer yet: it is waiting
        wait_until(sent, 10, "a request waiting at the new leader", interval=0.01)
        self.assertEqual(n.received(zcp.CART_REQUEST, x_cart), [])
        n.call(lambda node: (node._connect(x_cart), node._hello(x_cart)))
        m = self.client.wait_for(x, self.client._reply_of(s.id, q), 10)
        self.assertIsNotNone(m)
        self.assertStatus(m, "OK", "the hello arrived within the wait")
        self.assertEqual(m["items"], [("apple", 1)])
        self.assertEqual(n.received_with_ep(zcp.CART_REQUEST)[-1][0], x_cart)

    def test_hello_must_come_from_its_routing_id(self):
        """§1: a node's routing id is its name (and a nonce); a hello whose
        node differs from the name in the connection's routing id, or from a
        connection without one, is dropped and counted: no heartbeat, no
        registration."""
        import zmq
        ld = self.leader()
        cep = self.leader_cart_ep()
        d0 = int(self.status(ld)["dropped"])
        ctx = zmq.Context.instance()
        socks = []
        for rid in (b"impostor", b"impostor/0123456789abcdef", None):
            d = ctx.socket(zmq.DEALER)
            d.setsockopt(zmq.LINGER, 0)
            if rid:
                d.setsockopt(zmq.ROUTING_ID, rid)
            # a cart key (the cart port admits only those), not the victim's
            zcluster.curve(d, zcluster.cart_key("impostor"))
            d.connect(cep)
            d.send(zcp.encode_hello("victim", [(0, zcp.ZERO_SESSION, 0, 0, 0)]))
            socks.append(d)
        try:
            wait_until(lambda: int(self.status(ld)["dropped"]) >= d0 + 3, 5, "3 hellos dropped")
            for d in socks:
                self.assertEqual(d.poll(300), 0, "no heartbeat for a hello under another name")
            self.assertEqual(self.counts()["carts_total"], 0, "nothing registered")
        finally:
            for d in socks:
                d.close(0)
        self.node("victim", 1)
        self.wait_counts(total=1, free=1)

    def test_deadline_relayed_to_cart_and_unavailable_has_no_items(self):
        """§3.4: the cart-request carries the client's deadline (0 when none);
        §3 reply table: CART_UNAVAILABLE carries cart and generation, no items."""
        n = self.node("fk", 1)
        self.wait_counts(total=1, free=1)
        s = zclient.Session(self.client)
        r = s.add(b"apple", 1)
        self.assertEqual(n.received(zcp.CART_REQUEST)[-1]["deadline"], 0)
        dl = int(time.time() * 1000) + 60000
        self.assertStatus(s.add(b"pear", 1, deadline=dl), "OK")
        self.assertEqual(n.received(zcp.CART_REQUEST)[-1]["deadline"], dl)
        n.answer_requests = False
        u = s.list()
        self.assertStatus(u, "CART_UNAVAILABLE")
        self.assertEqual((u["cart"], u["generation"], u["items"]), (r["cart"], r["generation"], []))

    def test_malformed_and_unexpected_from_node_dropped_and_counted(self):
        """§4 end / §6: malformed frames and unexpected messages from a node are
        dropped and counted (`dropped`); nothing changes, serving goes on."""
        n = self.node("fj", 1)
        self.wait_counts(total=1, free=1)
        ld = self.leader()
        cep = self.leader_cart_ep()
        d0 = int(self.status(ld)["dropped"])
        n.send_raw(cep, b"ZC\x01\x10\x05")                          # hello cut short
        n.send_raw(cep, b"not zcp at all")
        n.send_raw(cep, zcp.encode_reply(zclient.new_session_id(), 1, zcp.OK))  # wrong direction
        wait_until(lambda: int(self.status(ld)["dropped"]) >= d0 + 3, 5, "3 frames dropped")
        c = self.counts()
        self.assertEqual((c["carts_total"], c["carts_free"]), (1, 1))
        self.assertStatus(zclient.Session(self.client).add(b"apple", 1), "OK")


if __name__ == "__main__":
    main()
