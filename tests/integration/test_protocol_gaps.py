#!/usr/bin/python3
"""test_protocol_gaps: the places issue 11 found where docs/protocol.md and
the servers disagreed, as the servers now behave.

Design
------
One replica, one real cart node (1 slot), raw zcproto sockets:

g1/g12. A malformed REQUEST whose session and seq are readable (truncated by
        one octet, one trailing octet, a 65-octet product, a NUL inside the
        product) is answered BAD_REQUEST with that session and seq echoed
        (section 3 step 1), and `detail` names the real problem (section 6);
        a frame that ends before seq gets the all-zero session and seq 0.
        `bad_requests` counts every one.
g2.     keepalive carries no product and qty 0, or it is BAD_REQUEST (step 2).
g3.     A malformed `status` is answered with a `reply`, never a
        `status-reply` (section 6).
g4.     close of a session that has no cart is OK and records nothing: a
        later add with the same id gets a cart (section 3 step 6).
g5.     EXPIRED is decided before the session is read: empty cart and
        generation 0 even for a session holding a cart (the table in 3).
g7.     A HELLO whose node differs from the connection's routing id is
        dropped and counted, with no heartbeat back (section 1).
g11.    After a close, a retried add (an old seq) gets SESSION_CLOSED with
        the session's last cart, not its original answer; a close of an
        expired session is OK (section 3 step 5).
g8.     A node whose name is outside [A-Za-z0-9_-] (`bad.name`) says HELLO
        with a matching routing id: it is not registered (no cart
        `bad.name.0`), gets no heartbeat, and `dropped` grows; a node with
        a valid name on the same socket kind registers at once.
"""

import struct

import harness
import zcproto as zp
from harness import Dealer, wait_until


def u64(v):
    return struct.pack(">Q", v)


def raw_request(session, seq, product_field, qty=1, op=zp.OP_ADD):
    """A REQUEST frame with the product field given raw (len8 + octets)."""
    return (b"ZC\x01\x01" + session + u64(seq) + bytes([op]) + u64(0) + product_field
            + struct.pack(">I", qty))


class ProtocolGaps(harness.ClusterTestCase):
    def setUp(self):
        super().setUp()
        self.c = self.cluster(replicas=1, cart_nodes=1, slots=1,
                              broker_args=["--session-ttl=1000"])
        self.ep = self.c.leader_endpoint()
        wait_until(lambda: self.c.counts() == (1, 1, 0, 0), 10, "the cart registered")

    def test_g1_g12_malformed_requests_echo_session_and_name_the_reason(self):
        s = zp.new_session()
        good = raw_request(s, 1, b"\x05apple")
        cases = [
            ("truncated", good[:-1], 11, "truncated message"),
            ("trailing", good + b"\x00", 12, "trailing bytes after the last field"),
            ("product over 64", raw_request(s, 13, b"\x41" + b"p" * 65),
             13, "product longer than 64 octets"),
            ("NUL in product", raw_request(s, 14, b"\x03a\x00b"), 14, "NUL octet inside product"),
        ]
        before = self.c.replica_status(self.ep)["bad_requests"]
        with Dealer(self.ep) as d:
            for what, frame, seq, detail in cases:
                frame = frame[:20] + u64(seq) + frame[28:]
                d.send(frame)
                m = d.recv(5)
                self.assertEqual((m.id, m.status_name), (zp.REPLY, "BAD_REQUEST"), what)
                self.assertEqual((m.session, m.seq), (s, seq), what)
                self.assertEqual(m.detail, detail, what)
                self.assertEqual((m.cart, m.generation, m.items), ("", 0, []), what)
            # Ends inside seq: nothing to echo.
            d.send(good[:4 + 16 + 7])
            m = d.recv(5)
            self.assertEqual((m.status_name, m.session, m.seq, m.detail),
                             ("BAD_REQUEST", zp.ZERO_SESSION, 0, "truncated message"))
            # The session was not started by any of it.
            m = d.request(s, 20, zp.OP_LIST)
            self.assertEqual((m.status_name, m.cart), ("OK", ""))
        after = self.c.replica_status(self.ep)["bad_requests"]
        self.assertEqual(after - before, len(cases) + 1)

    def test_g2_keepalive_carries_no_product_and_qty_0(self):
        s = zp.new_session()
        with Dealer(self.ep) as d:
            for seq, (product, qty) in enumerate([("apple", 0), ("", 1)], start=1):
                m = d.request(s, seq, zp.OP_KEEPALIVE, product, qty)
                self.assertEqual((m.status_name, m.session, m.seq), ("BAD_REQUEST", s, seq))
            self.assertEqual(d.request(s, 3, zp.OP_KEEPALIVE).status_name, "OK")

    def test_g3_malformed_status_is_answered_with_a_reply(self):
        with Dealer(self.ep) as d:
            for frame in (b"ZC\x01\x03" + b"\x00" * 7, b"ZC\x01\x03" + u64(5) + b"\x00"):
                d.send(frame)
                m = d.recv(5)
                self.assertEqual((m.id, m.status_name, m.session, m.seq),
                                 (zp.REPLY, "BAD_REQUEST", zp.ZERO_SESSION, 0), frame)
            d.send(zp.status(6))       # a well-formed one still gets its status-reply
            m = d.recv(5)
            self.assertEqual((m.id, m.corr), (zp.STATUS_REPLY, 6))

    def test_g4_close_without_a_cart_records_nothing(self):
        s = zp.new_session()
        with Dealer(self.ep) as d:
            m = d.request(s, 1, zp.OP_CLOSE)
            self.assertEqual((m.status_name, m.cart, m.generation), ("OK", "", 0))
            m = d.request(s, 2, zp.OP_ADD, "apple", 1)
            self.assertEqual(m.status_name, "OK", m)
            self.assertNotEqual(m.cart, "")
            self.assertEqual(d.request(s, 3, zp.OP_CLOSE).status_name, "OK")

    def test_g5_g11_expired_and_ended_sessions(self):
        s = zp.new_session()
        with Dealer(self.ep) as d:
            first = d.request(s, 1, zp.OP_ADD, "apple", 1)
            self.assertEqual(first.status_name, "OK", first)
            # A past deadline: EXPIRED, without the session's cart.
            d.send(zp.request(s, 2, zp.OP_LIST, deadline=1))
            m = d.reply_for(s, 2)
            self.assertEqual((m.status_name, m.cart, m.generation, m.items),
                             ("EXPIRED", "", 0, []))
            closed = d.request(s, 3, zp.OP_CLOSE)
            self.assertEqual((closed.status_name, closed.cart), ("OK", first.cart))
            # The add of seq 1, retried after the close: not its original answer.
            m = d.request(s, 1, zp.OP_ADD, "apple", 1)
            self.assertEqual((m.status_name, m.cart, m.generation, m.items),
                             ("SESSION_CLOSED", first.cart, first.generation, []))
            self.assertEqual(d.request(s, 3, zp.OP_CLOSE).status_name, "OK")
            # An expired session: its close is OK too.
            wait_until(lambda: self.c.counts() == (1, 1, 0, 0), 10, "the cart free again")
            e = zp.new_session()
            got = d.request(e, 1, zp.OP_ADD, "pear", 1)
            self.assertEqual(got.status_name, "OK", got)
            # Asking would renew the lease: watch the cart come back instead.
            wait_until(lambda: self.c.counts() == (1, 1, 0, 0), 15,
                       "the session expired and its cart freed")
            m = d.request(e, 2, zp.OP_LIST)
            self.assertEqual((m.status_name, m.cart, m.generation),
                             ("SESSION_EXPIRED", got.cart, got.generation))
            m = d.request(e, 3, zp.OP_CLOSE)
            self.assertEqual((m.status_name, m.cart), ("OK", got.cart))

    def test_g7_hello_naming_another_node_is_dropped(self):
        cart_ep = self.c.cart_endpoints[0]
        dropped0 = self.c.replica_status(self.ep)["dropped"]
        with Dealer(cart_ep, routing_id=b"impostor") as d:
            d.send(zp.Msg(zp.HELLO, node="someone", slots=[zp.SlotInfo(0)]))
            wait_until(lambda: self.c.replica_status(self.ep)["dropped"] > dropped0, 10,
                       "the HELLO dropped and counted")
            self.assertFalse(d.pending(0.3), "the impostor got an answer")
        self.assertEqual(self.c.counts(), (1, 1, 0, 0))

    def test_g8_node_names_outside_the_set_are_refused(self):
        cart_ep = self.c.cart_endpoints[0]
        dropped0 = self.c.replica_status(self.ep)["dropped"]
        hello = lambda name: zp.Msg(zp.HELLO, node=name, slots=[zp.SlotInfo(0)])
        with Dealer(cart_ep, routing_id=b"bad.name") as bad:
            bad.send(hello("bad.name"))
            wait_until(lambda: self.c.replica_status(self.ep)["dropped"] > dropped0, 10,
                       "the HELLO of bad.name dropped and counted")
            self.assertFalse(bad.pending(0.3), "bad.name got an answer (a heartbeat?)")
            self.c.cart_key("good_name-1")  # secure: a node speaks only under its own key
            with Dealer(cart_ep, routing_id=b"good_name-1") as good:
                good.send(hello("good_name-1"))
                m = good.recv(5)
                self.assertEqual((m.id, m.node), (zp.HEARTBEAT, "good_name-1"))
                wait_until(lambda: self.c.counts() == (2, 2, 0, 0), 10,
                           "good_name-1.0 registered")
            bad.send(hello("bad.name"))
            self.assertFalse(bad.pending(0.5), "bad.name got an answer (a heartbeat?)")
        _, st = self.c.cli("status")
        self.assertEqual(st["carts"]["total"], 2, st)


if __name__ == "__main__":
    harness.main()
