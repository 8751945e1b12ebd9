#!/usr/bin/python3
"""test_fencing: a cart refuses an operation with a stale (session, generation).

Design
------
The test plays a deposed broker.  It binds a ROUTER and starts a cart node
with one slot whose --brokers list names the real replica AND that ROUTER; a node talks
to every replica it is given, so once the ROUTER has the node's HELLO the
test can send it CART_REQUESTs and RESETs as a broker would.  A first session
uses and closes the slot (its generation becomes the stale one); a second
real session (through the CLI and the real broker) then owns the slot; the
test learns its cart and generation from a real reply, then sends, from the
fake broker:

  * add / list with the first owner's generation  -> FENCED
  * add with another session, current generation  -> FENCED
  * RESET for an older generation                 -> ignored
and checks through the real broker that the session's contents did not
change.  After the session is closed and its cart reset, the old owner's
own (session, generation) is FENCED too (generation <= reset-generation),
and the next owner starts empty.

Requests and RESETs from the fake travel on one connection, so when the
reply to a request sent after a RESET arrives, the RESET has been handled.
"""

import harness
import zcproto as zp
from harness import CliSession, FakeRouter, items_of, wait_until

NODE = "fenced"


class Fencing(harness.ClusterTestCase):
    def cart_request(self, fake, rid, corr, slot, session, generation, seq, op, product="", qty=0):
        fake.send(rid, zp.Msg(zp.CART_REQUEST, corr=corr, slot=slot, session=session,
                              generation=generation, seq=seq, op=op, deadline=0,
                              product=product, qty=qty))
        while True:
            _, m = fake.recv_msg(zp.CART_REPLY, timeout=10)
            if m.corr == corr:
                self.assertEqual((m.slot, m.session, m.seq), (slot, session, seq), m)
                return m

    def test_h_stale_generation_is_fenced(self):
        c = self.cluster(cart_nodes=0)
        with FakeRouter("tcp://127.0.0.1:%d" % c.port(), c, "replica") as fake:
            # The fake never sends HEARTBEATs: without a long --broker-liveness
            # the node would drop and remake its connection every three hello
            # intervals, and a CART_REQUEST sent in that gap would be lost.
            c.start_cart_node(NODE, 1, c.cart_endpoints + [fake.endpoint], c.stock_endpoints,
                              extra_args=["--broker-liveness", "600000"])
            rid, hello = fake.recv_msg(zp.HELLO, timeout=10)
            # protocol.md section 1: routing id NAME "/" 16 hex digits
            self.assertEqual((rid.split(b"/")[0], len(rid), hello.node),
                             (NODE.encode(), len(NODE) + 17, NODE))
            self.assertEqual([si.slot for si in hello.slots], [0])
            wait_until(lambda: c.counts() == (1, 1, 0, 0), 10, "the node's slot registered")

            # A first owner, so the slot has a real older generation.
            w = CliSession(c)
            stale = w.add("banana", 5)["generation"]
            w.close()
            wait_until(lambda: c.counts() == (1, 1, 0, 0), 10, "the slot drained and free")

            s = CliSession(c)
            r = s.add("apple", 2)
            cart, gen = r["cart"], r["generation"]
            self.assertEqual(cart, NODE + ".0")
            self.assertGreater(gen, stale)
            slot = 0
            sid = bytes.fromhex(s.id)
            before = items_of(s.list())
            self.assertEqual(before, {"apple": 2})

            # The node now reports the owner in its HELLO.
            def owner_in_hello():
                _, h = fake.recv_msg(zp.HELLO, timeout=2)
                return [si for si in h.slots if si.slot == slot and si.session == sid]
            info = wait_until(owner_in_hello, 10, "HELLO naming the owner")[0]
            self.assertEqual(info.generation, gen)

            m = self.cart_request(fake, rid, 1, slot, sid, stale, 900, zp.OP_ADD, "banana", 1)
            self.assertEqual(m.status_name, "FENCED", m)
            m = self.cart_request(fake, rid, 2, slot, sid, stale, 901, zp.OP_LIST)
            self.assertEqual(m.status_name, "FENCED", m)
            other = zp.new_session()
            m = self.cart_request(fake, rid, 3, slot, other, gen, 902, zp.OP_ADD, "banana", 1)
            self.assertEqual(m.status_name, "FENCED", m)
            m = self.cart_request(fake, rid, 4, slot, sid, gen + 1, 903, zp.OP_REMOVE, "apple", 1)
            self.assertEqual(m.status_name, "FENCED", m)

            # A RESET for an older generation than the owner's is ignored.
            fake.send(rid, zp.Msg(zp.RESET, slot=slot, generation=stale))
            m = self.cart_request(fake, rid, 5, slot, sid, stale, 904, zp.OP_LIST)
            self.assertEqual(m.status_name, "FENCED", m)

            r = s.list()
            self.assertEqual((r["cart"], r["generation"], items_of(r)), (cart, gen, before),
                             "fenced requests changed the session's cart")
            r = s.add("pear", 1)
            self.assertEqual(items_of(r), {"apple": 2, "pear": 1})

            # After close and reset, the old owner itself is fenced.
            s.close()
            wait_until(lambda: c.counts() == (1, 1, 0, 0), 10, "the cart drained and free")
            m = self.cart_request(fake, rid, 6, slot, sid, gen, 905, zp.OP_ADD, "apple", 1)
            self.assertEqual(m.status_name, "FENCED", m)

            # The next owner starts empty.
            r = CliSession(c).add("lemon", 1)
            self.assertEqual(r["cart"], cart)
            self.assertGreater(r["generation"], gen)
            self.assertEqual(items_of(r), {"lemon": 1})


if __name__ == "__main__":
    harness.main()
