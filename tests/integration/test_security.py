"""test_security: CurveZMQ with keys per role on every port (docs/security.md).

  s1  every ZeroMQ port (client, cart, stock) refuses a peer with no key and
      one with a key outside the allow-list: the handshake fails, nothing of
      it reaches the daemon
  s2  a known key of a role a port does not admit fails the handshake there
      (a cart or stock key on the client port; a client, admin or replica
      key on the cart port; a client or replica key on the stock port):
      nothing of it reaches the daemon, no counter moves; each port's own
      roles get in
  s3  a client key cannot run any admin command (KO FORBIDDEN, exit 1, state
      unchanged); the admin key can
  s4  a second "cart1" (another valid key, cart1's routing id) while cart1 is
      connected receives none of cart1's requests, and those requests still
      succeed
  s5  a fake HELLO (cart2's key, a new name; or cart2's key under cart1's
      name) changes no replicated state
  s6  a hostile cart (a valid cart key) answering NOT_LEADER tcp://elsewhere
      never gets that status to a client: the client sees INTERNAL
  s7  squatting: cart1 is killed and, at once, cart2's key connects under
      cart1's name (routing ids "cart1" and "cart1/<16 hex>"); a request of
      a session on cart1 sent before its breaker trips reaches neither of
      them (the broker sends on the routing id of the last frame cart1's own
      key vouched for, never to a name); cart1 started again serves that
      session's next request (its fresh routing id cannot be held by the
      squatters)

  b1  (any mode; run --insecure, where a name costs nothing) a replica takes
      HELLOs from at most BROKER_NODES_MAX (256) distinct node names: the
      257th new name registers nothing and is counted in `dropped`

Secure tests are skipped with ZCART_IT_INSECURE=1.
"""
import os
import threading
import time
import unittest

import zmq

import harness
import zcproto as zp
from harness import Dealer, handshake, wait_until


class HostileNode(threading.Thread):
    """A cart node with a valid cart key of its own that answers every
    cart-request NOT_LEADER with a redirect of its choice."""

    def __init__(self, cluster, name):
        super().__init__(daemon=True)
        self.c, self.name_ = cluster, name
        cluster.cart_key(name)
        self.requests = 0
        self.stop = threading.Event()

    def run(self):
        ep = self.c.cart_endpoints[0]
        sock = harness.zctx().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTING_ID, self.name_.encode())
        harness.curve_client(sock, ep, self.name_.encode(), cluster=self.c)
        sock.connect(ep)
        next_hello = 0.0
        try:
            while not self.stop.is_set():
                if time.monotonic() >= next_hello:
                    sock.send(zp.encode(zp.Msg(zp.HELLO, node=self.name_,
                                               slots=[zp.SlotInfo(0)])))
                    next_hello = time.monotonic() + 0.2
                if not sock.poll(50):
                    continue
                m = zp.decode(sock.recv())
                if m.id == zp.RESET:
                    sock.send(zp.encode(zp.Msg(zp.RESET_DONE, node=self.name_, slot=0,
                                               generation=m.generation)))
                elif m.id == zp.CART_REQUEST:
                    self.requests += 1
                    sock.send(zp.encode(zp.Msg(zp.CART_REPLY, corr=m.corr, slot=m.slot,
                                               session=m.session, seq=m.seq,
                                               status=zp.NOT_LEADER,
                                               detail="tcp://127.0.0.1:1", items=[])))
        finally:
            sock.close(0)


@unittest.skipUnless(harness.SECURE, "secure clusters only (ZCART_IT_INSECURE=1 given)")
class Security(harness.ClusterTestCase):
    def stranger_cert(self, c):
        """A certificate made outside the cluster's keys (in the run dir)."""
        d = os.path.join(c.dir, "stranger-keys")
        r = harness.subprocess.run([os.path.join(harness.BIN, "zcart"), "keygen", d],
                                   capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        return os.path.join(d, "client.cert_secret")

    def test_s1_every_port_refuses_no_key_and_an_unknown_key(self):
        c = self.cluster(replicas=1, cart_nodes=1, slots=1)
        stranger = self.stranger_cert(c)
        ports = [("client", c.client_endpoints[0], "client"),
                 ("cart", c.cart_endpoints[0], c.cart_key("cart1")),
                 ("stock", c.stock_endpoints[0], c.cart_key("cart1"))]
        for what, ep, good in ports:
            with self.subTest(port=what):
                out, s = handshake(ep, c, None, plain=True)
                s.close(0)
                self.assertEqual(out, "refused", "%s port let a peer without a key in" % what)
                out, s = handshake(ep, c, stranger)
                s.close(0)
                self.assertEqual(out, "refused", "%s port let an unknown key in" % what)
                out, s = handshake(ep, c, good)  # the control: a right key gets in
                s.close(0)
                self.assertEqual(out, "ok", "%s port refused its own role's key" % what)
        # The stranger's request never reached the broker at all.
        self.assertEqual(c.replica_status(c.client_endpoints[0])["bad_requests"], 0)

    def test_s2_wrong_role_keys_never_connect(self):
        c = self.cluster(replicas=1, cart_nodes=1, slots=1)
        ep = c.client_endpoints[0]
        before = c.replica_status(ep)
        # Each port admits only its roles at the handshake (lib/zap.h): a
        # known key of another role fails it like an unknown key, and
        # nothing of it reaches the daemon.
        cases = [("client", ep, c.cart_key("cart1")), ("client", ep, "stock"),
                 ("cart", c.cart_endpoints[0], "client"), ("cart", c.cart_endpoints[0], "admin"),
                 ("cart", c.cart_endpoints[0], "replica"),
                 ("stock", c.stock_endpoints[0], "client"),
                 ("stock", c.stock_endpoints[0], "replica")]
        for what, port, cert in cases:
            with self.subTest(port=what, key=os.path.basename(cert)):
                out, sock = handshake(port, c, cert)
                sock.close(0)
                self.assertEqual(out, "refused", "%s port let a %s key in" % (what, cert))
        # The controls: each port's own roles get in.
        for port, cert in [(ep, "client"), (ep, "admin"), (c.cart_endpoints[0],
                                                           c.cart_key("cart1")),
                           (c.stock_endpoints[0], c.cart_key("cart1"))]:
            out, sock = handshake(port, c, cert)
            sock.close(0)
            self.assertEqual(out, "ok", "%s refused a %s key" % (port, cert))
        after = c.replica_status(ep)
        self.assertEqual((after["carts_total"], after["digest"], after["applied_index"],
                          after["forbidden"], after["dropped"], after["bad_requests"]),
                         (before["carts_total"], before["digest"], before["applied_index"],
                          before["forbidden"], before["dropped"], before["bad_requests"]))

    def test_s3_a_client_key_runs_no_admin_command(self):
        c = self.cluster(replicas=3, cart_nodes=1, slots=1)
        before = wait_until(lambda: harness.converged(c), 15, "a converged cluster")
        commands = [("transfer-leader",), ("transfer-leader", "2"), ("remove-node", "2"),
                    ("add-node", "4", "127.0.0.1:1,tcp://127.0.0.1:2,tcp://127.0.0.1:3"),
                    ("breaker", "cart1.0", "open"), ("breaker", "cart1.0", "auto")]
        for cmd in commands:
            with self.subTest(cmd=cmd):
                rc, r = c.cli("admin", *cmd, cert="client")
                self.assertEqual((rc, r.get("ok"), r.get("reason")), (1, False, "FORBIDDEN"), r)
        self.assertTrue(c.grep_logs("FORBIDDEN admin commands need an admin key"))
        after = wait_until(lambda: harness.converged(c), 15, "a converged cluster")
        self.assertEqual(sorted((s["id"], s["role"], s["term"], s["digest"]) for s in after),
                         sorted((s["id"], s["role"], s["term"], s["digest"]) for s in before))
        self.assertEqual(c.counts(), (1, 1, 0, 0))
        # The admin key can (the check is the key, not the command).
        rc, r = c.cli("admin", "breaker", "cart1.0", "auto")
        self.assertEqual((rc, r.get("ok")), (0, True), r)

    def test_s4_a_second_cart1_receives_none_of_cart1s_requests(self):
        c = self.cluster(replicas=1, cart_nodes=1, slots=2)
        ep = c.client_endpoints[0]
        wait_until(lambda: c.counts() == (2, 2, 0, 0), 10, "cart1 registered")
        # cart2's key is a valid cart key; it connects under cart1's routing id.
        out, spy = handshake(c.cart_endpoints[0], c, c.cart_key("cart2"), routing_id=b"cart1")
        try:
            self.assertEqual(out, "ok")  # a valid key: it gets in, but not cart1's traffic
            with Dealer(ep) as d:
                for _ in range(2):  # both of cart1's carts
                    s = zp.new_session()
                    r = d.request(s, 1, zp.OP_ADD, "apple", 1)
                    self.assertEqual(r.status_name, "OK", r)
                    self.assertTrue(r.cart.startswith("cart1."), r)
            self.assertFalse(spy.poll(300), "the second cart1 received cart1's requests")
        finally:
            spy.close(0)

    def test_s5_a_fake_hello_changes_no_replicated_state(self):
        c = self.cluster(replicas=3, cart_nodes=1, slots=1)
        ep = c.client_endpoints[0]
        before = wait_until(lambda: harness.converged(c), 15, "a converged cluster")
        forbidden0 = sum(s["forbidden"] for s in before)
        cart2 = c.cart_key("cart2")  # a valid cart key, not cart1's nor evil's
        with Dealer(c.cart_endpoints[0], routing_id=b"evil", cert=cart2) as a, \
                Dealer(c.cart_endpoints[1], routing_id=b"cart1", cert=cart2) as b:
            a.send(zp.Msg(zp.HELLO, node="evil", slots=[zp.SlotInfo(i) for i in range(64)]))
            b.send(zp.Msg(zp.HELLO, node="cart1", slots=[zp.SlotInfo(i) for i in range(64)]))
            wait_until(lambda: c.replica_status(c.client_endpoints[0])["forbidden"]
                       + c.replica_status(c.client_endpoints[1])["forbidden"]
                       + c.replica_status(c.client_endpoints[2])["forbidden"] > forbidden0, 10,
                       "the fake HELLOs refused")
        after = wait_until(lambda: harness.converged(c), 15, "a converged cluster")
        self.assertEqual([(s["digest"], s["carts_total"]) for s in after],
                         [(s["digest"], s["carts_total"]) for s in before])
        self.assertEqual(c.counts(), (1, 1, 0, 0))
        del ep

    def test_s6_a_hostile_carts_not_leader_never_reaches_a_client(self):
        c = self.cluster(replicas=1, cart_nodes=0)
        node = HostileNode(c, "hostile")
        node.start()
        self.addCleanup(node.join, 5)
        self.addCleanup(node.stop.set)
        wait_until(lambda: c.counts() == (1, 1, 0, 0), 10, "hostile.0 registered")
        with Dealer(c.client_endpoints[0]) as d:
            s = zp.new_session()
            r = d.request(s, 1, zp.OP_ADD, "apple", 1)
            self.assertGreater(node.requests, 0, "the hostile cart never got the request")
            self.assertNotEqual(r.status_name, "NOT_LEADER", r)
            self.assertNotIn("127.0.0.1:1", r.detail, r)
            self.assertEqual(r.status_name, "INTERNAL", r)
        # libzcart (the CLI) sees the same and never follows the redirect.
        rc, r = c.cli("add", "apple", 1, timeout_ms=3000)
        self.assertNotEqual(r.get("reason"), "NOT_LEADER", r)

    def test_s7_a_squatter_on_a_dead_nodes_name_gets_nothing(self):
        c = self.cluster(replicas=1, cart_nodes=1, slots=2,
                         broker_args=["--cart-liveness", "2500"])
        ep = c.client_endpoints[0]
        wait_until(lambda: c.counts() == (2, 2, 0, 0), 10, "cart1 registered")
        s = zp.new_session()
        with Dealer(ep) as d:
            r = d.request(s, 1, zp.OP_ADD, "apple", 1)
            self.assertEqual(r.status_name, "OK", r)
        c.sigkill("cart1")
        spies = []
        try:
            for rid in (b"cart1", b"cart1/0123456789abcdef"):
                out, spy = handshake(c.cart_endpoints[0], c, c.cart_key("cart2"), routing_id=rid)
                spies.append(spy)
                self.assertEqual(out, "ok")
            with Dealer(ep) as d:  # before the breaker trips: the broker tries cart1
                d.send(zp.request(s, 2, zp.OP_ADD, "apple", 1))
                for spy in spies:
                    self.assertFalse(spy.poll(1500), "a squatter received cart1's request")
            c.start("cart1")
            got = {}

            def served():
                try:
                    with Dealer(ep) as d:
                        r = d.request(s, 3, zp.OP_ADD, "apple", 1, timeout=3)
                except harness.Timeout:
                    return False
                got["r"] = r
                return r.status_name == "OK"
            wait_until(served, 20, "cart1 serving again while the squatters stay connected")
            for spy in spies:
                self.assertFalse(spy.poll(0), "a squatter received cart1's traffic")
        finally:
            for spy in spies:
                spy.close(0)


class NodeBound(harness.ClusterTestCase):
    def test_b1_at_most_256_cart_node_names(self):
        c = self.cluster(replicas=1, cart_nodes=0, secure=False)
        ep = c.cart_endpoints[0]
        dealers = []
        try:
            for i in range(260):
                name = "n%03d" % i
                d = Dealer(ep, routing_id=name.encode(), cert=False)
                dealers.append(d)
                d.send(zp.Msg(zp.HELLO, node=name, slots=[zp.SlotInfo(0)]))
            wait_until(lambda: c.counts() == (256, 256, 0, 0), 60, "256 nodes registered")
            # The four names past the bound may still be on their way when
            # the 256th registers: wait for their HELLOs to be dropped.
            st = wait_until(lambda: (lambda s: s if s["dropped"] >= 4 else None)(
                c.replica_status(c.client_endpoints[0])), 10,
                "the HELLOs of the 257th to 260th names dropped")
            # Their HELLOs again: still 256 (known names pass, new ones do not).
            for k, d in enumerate(dealers):
                d.send(zp.Msg(zp.HELLO, node="n%03d" % k, slots=[zp.SlotInfo(0)]))
            wait_until(lambda: c.replica_status(c.client_endpoints[0])["dropped"]
                       >= st["dropped"] + 4, 10, "the 4 extra names dropped again")
            self.assertEqual(c.counts(), (256, 256, 0, 0))
        finally:
            for d in dealers:
                d.close()


if __name__ == "__main__":
    harness.main()
