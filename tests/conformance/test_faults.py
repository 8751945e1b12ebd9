"""What a client sees when parts of a real cluster fail, from
docs/protocol.md sections 3, 3.3, 5 and 7.1.

One cluster: 3 replicas, 2 zcart-cart nodes with 2 slots each, 1 stock.
Faults come from deploy/local/zcart-cluster (pause, resume, kill, start).
Each test puts back what it broke and waits until the cluster serves again.
"""

import os
import signal
import sys
import time

from base import ClusterCase, main, now_ms, wait_until
import zcp
import zclient

LOST_AFTER = 5000


class Faults(ClusterCase):
    CLUSTER = dict(replicas=3, cart_nodes=2, slots=2, hello_interval=200,
                   broker_args=["--cart-timeout=1500", "--cart-liveness=1000",
                                "--cart-lost-after=%d" % LOST_AFTER, "--breaker-wait=300",
                                "--drain-retry=300"],
                   cart_args=["--stock-timeout=300", "--stock-open-ms=300"])

    def healthy(self):
        """Every cart free or assigned, none draining, no breaker open."""
        def ok():
            p = self.leader_status()
            return (p and int(p["carts_total"]) == 4 and int(p["carts_draining"]) == 0
                    and int(p["breakers_not_closed"]) == 0)
        wait_until(ok, 20, "a healthy cluster")

    def setUp(self):
        super().setUp()
        self.healthy()

    def add_ok(self, s, product, qty):
        """A setup add that must succeed: a stock restarted by an earlier test
        may not be reconnected from every cart node yet (§7.1 "not
        connected"), so retry (new seqs) until OK."""
        def ok():
            r = s.add(product, qty)
            return r["status"] == zcp.OK and r
        return wait_until(ok, 15, "an add to succeed", interval=0.1)

    def node_proc(self, cart):
        return self.cluster.cart_proc_of_node(cart.rpartition(".")[0])

    # ---------------------------------------------------------------- stock (7.1)
    def test_stock_timeout_then_unavailable_then_recovers(self):
        """§7.1 / §5: a hung stock gives STOCK_TIMEOUT (detail names it) until
        its breaker opens, then STOCK_UNAVAILABLE without waiting; after
        it answers again, adds succeed. Items ride along on each KO."""
        s = self.session()
        self.add_ok(s, b"apple", 1)
        stock = self.cluster.stock_eps[0]
        self.cluster.pause("stock1")
        try:
            seen = []
            def unavailable():
                r = s.add(b"pear", 1)
                seen.append(r)
                self.assertIn(zcp.status_name(r["status"]), ("STOCK_TIMEOUT", "STOCK_UNAVAILABLE"))
                self.assertEqual(r["items"], [("apple", 1)])
                self.assertIn(stock, r["detail"], "the detail names the instance")
                return r["status"] == zcp.STOCK_UNAVAILABLE and r
            r = wait_until(unavailable, 15, "the stock breaker to open")
            self.assertStatus(seen[0], "STOCK_TIMEOUT")
            self.assertLessEqual(len(seen) - 1, 3, "at most --stock-failures timeouts")
            self.assertIn("breaker", r["detail"])
        finally:
            self.cluster.resume("stock1")
        r = wait_until(lambda: (lambda x: x["status"] == zcp.OK and x)(s.add(b"pear", 1)), 15,
                       "adds to succeed again")
        self.assertEqual(sorted(r["items"]), [("apple", 1), ("pear", 1)])

    def test_stock_killed_is_unavailable(self):
        """§7.1: a killed stock (connection gone) is skipped at once:
        STOCK_UNAVAILABLE ("not connected"); back once it restarts."""
        s = self.session()
        self.add_ok(s, b"apple", 1)
        self.cluster.kill("stock1")
        try:
            def unavailable():
                r = s.add(b"pear", 1)
                self.assertIn(zcp.status_name(r["status"]), ("STOCK_TIMEOUT", "STOCK_UNAVAILABLE"))
                return r["status"] == zcp.STOCK_UNAVAILABLE and r
            r = wait_until(unavailable, 15, "STOCK_UNAVAILABLE")
            self.assertIn("not connected", r["detail"])
        finally:
            self.cluster.start("stock1")
        wait_until(lambda: s.add(b"pear", 1)["status"] == zcp.OK, 15, "adds to succeed again")

    # ---------------------------------------------------------------- carts (3.3)
    def test_cart_unavailable_while_node_paused(self):
        """§3 step 8 / §3.3: a cart whose node does not answer within the cart
        timeout is CART_UNAVAILABLE; once the node runs again it serves,
        contents intact."""
        s = self.session()
        r = self.add_ok(s, b"apple", 3)
        proc = self.node_proc(r["cart"])
        self.cluster.pause(proc)
        try:
            u = s.list()
            self.assertStatus(u, "CART_UNAVAILABLE")
        finally:
            self.cluster.resume(proc)
        r2 = wait_until(lambda: (lambda x: x["status"] == zcp.OK and x)(s.list()), 15,
                        "the cart to serve again")
        self.assertEqual((r2["cart"], r2["items"]), (r["cart"], [("apple", 3)]))

    def test_cart_expires_a_request_it_picks_up_late(self):
        """§4 step 2 / §5 EXPIRED: a request whose deadline passes while it
        waits at a stalled cart node is answered EXPIRED and not applied."""
        s = self.session()
        r = self.add_ok(s, b"apple", 1)
        pid = self.cluster.pid(self.node_proc(r["cart"]))
        ld = self.leader()
        # SIGSTOP / SIGCONT (what zcart-cluster pause/resume send) straight from
        # here, so the stall stays well below the broker's --cart-timeout
        os.kill(pid, signal.SIGSTOP)
        try:
            q = s.next_seq()
            deadline = now_ms() + 300
            self.client.send_raw(ld, zcp.encode_request(s.id, q, zcp.ADD, deadline, b"pear", 1))
            time.sleep(max(0.0, (deadline - now_ms()) / 1000 + 0.2))   # let it pass
        finally:
            os.kill(pid, signal.SIGCONT)
        m = self.client.wait_for(ld, self.client._reply_of(s.id, q), 10)
        self.assertIsNotNone(m)
        print("late request at a stalled cart: %s %r" % (zcp.status_name(m["status"]), m["detail"]),
              file=sys.stderr)
        self.assertStatus(m, "EXPIRED")
        r2 = wait_until(lambda: (lambda x: x["status"] == zcp.OK and x)(s.list()), 10, "service")
        self.assertEqual(r2["items"], [("apple", 1)], "not applied")

    def test_cart_lost_session_moves_told_once(self):
        """§3 step 7 / §3.3 with a real cart node: a node dead for
        --cart-lost-after loses its carts; the session is moved to a fresh
        cart on another node, told CART_LOST once (new cart and generation,
        no items); the dead node's carts drain, and once it restarts they
        are reset and come back empty."""
        s = self.session()
        r = self.add_ok(s, b"apple", 2)
        node = r["cart"].rpartition(".")[0]
        proc = self.node_proc(r["cart"])
        self.cluster.kill(proc)
        try:
            def told():
                x = s.list()
                self.assertIn(zcp.status_name(x["status"]), ("CART_UNAVAILABLE", "CART_LOST"))
                return x["status"] == zcp.CART_LOST and x
            lost = wait_until(told, LOST_AFTER / 1000 * 4, "CART_LOST", interval=0.25)
            self.assertNotEqual(lost["cart"].rpartition(".")[0], node)
            self.assertGreater(lost["generation"], r["generation"])
            self.assertEqual(lost["items"], [])
            n = s.add(b"pear", 1)
            self.assertStatus(n, "OK", "CART_LOST is said once")
            self.assertEqual((n["cart"], n["generation"], n["items"]),
                             (lost["cart"], lost["generation"], [("pear", 1)]))
            p = self.leader_status()
            self.assertGreaterEqual(int(p["carts_draining"]), 1, "the lost cart drains")
        finally:
            self.cluster.start(proc)
        self.healthy()
        # every free cart, the drained one included, reaches its next session empty
        free = int(self.leader_status()["carts_free"])
        for _ in range(free):
            x = self.add_ok(self.session(), b"apple", 1)   # its node may still be reconnecting
            self.assertEqual(x["items"], [("apple", 1)], x["cart"])

    # ---------------------------------------------------------------- broker failover
    def test_z1_retry_across_replicas_after_leader_dies(self):
        """§3 Retries: the same (session, seq) resent to another replica after
        the leader died takes effect at most once and answers the original."""
        s = self.session()
        self.add_ok(s, b"apple", 1)
        ld = self.leader()
        first = s.add(b"pear", 1)
        self.assertStatus(first, "OK")
        # one more whose answer is lost with the leader
        q = s.next_seq()
        self.client.send_raw(ld, zcp.encode_request(s.id, q, zcp.ADD, 0, b"pear", 2))
        name = self.cluster.broker_name(ld)
        self.cluster.kill(name)
        try:
            self.client.drop(ld)
            self.client.current = [ep for ep in self.cluster.client_eps if ep != ld][0]
            again = self.client.call(s.id, first["seq"], zcp.ADD, b"pear", 1, total=20)
            self.assertEqual((again["status"], again["items"]), (first["status"], first["items"]),
                             "the original answer")
            lost = self.client.call(s.id, q, zcp.ADD, b"pear", 2, total=20)
            self.assertStatus(lost, "OK")
            self.assertEqual(sorted(lost["items"]), [("apple", 1), ("pear", 3)])
            r = s.list(total=20)
            self.assertEqual(sorted(r["items"]), [("apple", 1), ("pear", 3)], "each applied once")
        finally:
            self.cluster.start(name)
        wait_until(lambda: len({(self.status(ep) or {}).get("applied_index")
                                for ep in self.cluster.client_eps}) == 1, 20, "replicas to converge")

    def test_z2_no_quorum_is_not_served(self):
        """§5 UNAVAILABLE ("no quorum") / §3 step 3: with two of three replicas
        dead, a new session's add is not served: the leader answers
        UNAVAILABLE, or NOT_LEADER once it has stepped down."""
        ld = self.leader()
        others = [ep for ep in self.cluster.client_eps if ep != ld]
        names = [self.cluster.broker_name(ep) for ep in others]
        for n in names:
            self.cluster.kill(n)
        try:
            sid = zclient.new_session_id()
            r = self.client.once(ld, sid, 1, zcp.ADD, b"apple", 1, timeout=15)
            print("no quorum: the old leader answered %s %r" % (zcp.status_name(r["status"]),
                                                                r["detail"]), file=sys.stderr)
            self.assertIn(zcp.status_name(r["status"]), ("UNAVAILABLE", "NOT_LEADER"), r)
            if r["status"] == zcp.NOT_LEADER:
                self.assertEqual(r["detail"], "unknown")
        finally:
            for n in names:
                self.cluster.start(n)
        self.leader(timeout=20)


class TwoStocks(ClusterCase):
    """§7.1 with two stock instances: round-robin, and a hung instance
    costs at most --stock-failures timeouts before its breaker opens and
    checks go to the healthy one."""
    CLUSTER = dict(replicas=1, cart_nodes=1, slots=1, stock=2,
                   cart_args=["--stock-timeout=300", "--stock-open-ms=5000"])

    def test_hung_instance_costs_at_most_k_timeouts(self):
        """§7.1: STOCK_TIMEOUT (naming the hung instance) at most K times,
        then every add is served by the other instance."""
        s = self.session()
        for _ in range(4):
            self.assertStatus(s.add(b"apple", 1), "OK")
        hung = self.cluster.stock_eps[0]
        self.cluster.pause("stock1")
        try:
            got = []
            for _ in range(12):
                r = s.add(b"apple", 1)
                got.append(zcp.status_name(r["status"]))
                if r["status"] == zcp.STOCK_TIMEOUT:
                    self.assertIn(hung, r["detail"], "the detail names the instance")
                else:
                    self.assertStatus(r, "OK")
            self.assertGreaterEqual(got.count("STOCK_TIMEOUT"), 1, "round-robin reached it")
            self.assertLessEqual(got.count("STOCK_TIMEOUT"), 3, got)
            self.assertEqual(got[-6:], ["OK"] * 6, "the hung instance is skipped")
        finally:
            self.cluster.resume("stock1")
        self.assertEqual(s.list()["items"], [("apple", 4 + got.count("OK"))])


class CommitTimeout(ClusterCase):
    """§3.4 / §5: a commit that cannot finish within --cart-timeout is
    answered UNAVAILABLE. Raft's election timeout is made long (4 s) so the
    leader that lost its followers still leads when the 1 s wait runs out."""
    CLUSTER = dict(replicas=3, cart_nodes=1, slots=1,
                   broker_args=["--election-timeout=4000", "--cart-timeout=1000"])

    def test_commit_wait_runs_out_unavailable(self):
        """§3.4: a leader without its followers answers a new assignment
        UNAVAILABLE once --cart-timeout runs out; the resent seq is applied once."""
        ld = self.leader(timeout=30)
        others = [self.cluster.broker_name(ep) for ep in self.cluster.client_eps if ep != ld]
        for n in others:
            self.cluster.pause(n)
        try:
            sid = zclient.new_session_id()
            r = self.client.once(ld, sid, 1, zcp.ADD, b"apple", 1, timeout=10)
            self.assertStatus(r, "UNAVAILABLE")
            self.assertEqual((r["cart"], r["generation"], r["items"]), ("", 0, []))
        finally:
            for n in others:
                self.cluster.resume(n)
        # the same (session, seq) resent once the cluster serves: applied once
        s = zclient.Session(self.client, sid)
        self.sessions.append(s)
        r = self.client.call(sid, 1, zcp.ADD, b"apple", 1, total=30)
        self.assertStatus(r, "OK")
        self.assertEqual(r["items"], [("apple", 1)])
        s.seq = 1
        self.assertEqual(s.list()["items"], [("apple", 1)])


if __name__ == "__main__":
    main()
