#!/usr/bin/python3
"""test_codec: zcproto against docs/protocol.md, then against the C codec.

Design
------
The first class checks the Python codec alone: hand-assembled frames written
octet by octet from the ABNF decode to the expected fields (so zcproto is
tested against the doc, not against itself), every message round-trips, and
every kind of malformation section 2 names is refused.

The second class cross-checks the C codec through a real broker and stock
service: frames encoded here must be accepted there, and everything they
send back must decode strictly here (no trailing bytes, limits respected).
"""

import struct
import unittest

import harness
import zcproto as zp

SESSION = bytes(range(1, 17))


def u16(v):
    return struct.pack(">H", v)


def u32(v):
    return struct.pack(">I", v)


def u64(v):
    return struct.pack(">Q", v)


def s(text):
    b = text.encode()
    return bytes([len(b)]) + b


class DocVectors(unittest.TestCase):
    def test_request_by_hand(self):
        frame = (b"ZC\x01\x01" + SESSION + u64(7) + b"\x01" + u64(0) + s("apple") + u32(3))
        m = zp.decode(frame)
        self.assertEqual((m.id, m.session, m.seq, m.op, m.deadline, m.product, m.qty),
                         (zp.REQUEST, SESSION, 7, zp.OP_ADD, 0, "apple", 3))
        self.assertEqual(zp.encode(m), frame)

    def test_reply_by_hand(self):
        frame = (b"ZC\x01\x02" + SESSION + u64(9) + b"\x04" + s("n1.0") + u64(5) + s("only 2")
                 + u16(2) + s("pear") + u32(1) + s("fig") + u32(4) + u64(2) + u64(3))
        m = zp.decode(frame)
        self.assertEqual((m.replica, m.term), (2, 3))
        self.assertEqual(m.status, zp.OUT_OF_STOCK)
        self.assertEqual(m.status_name, "OUT_OF_STOCK")
        self.assertEqual((m.cart, m.generation, m.detail), ("n1.0", 5, "only 2"))
        self.assertEqual(m.items, [("pear", 1), ("fig", 4)])
        self.assertEqual(zp.encode(m), frame)

    def test_hello_by_hand(self):
        frame = (b"ZC\x01\x10" + s("cart1") + u16(2)
                 + u16(0) + bytes(16) + u64(0) + u64(0) + u32(0)
                 + u16(1) + SESSION + u64(12) + u64(11) + u32(3))
        m = zp.decode(frame)
        self.assertEqual(m.node, "cart1")
        self.assertEqual(m.slots[1], zp.SlotInfo(1, SESSION, 12, 11, 3))
        self.assertEqual(zp.encode(m), frame)

    def test_cart_request_and_check_by_hand(self):
        frame = (b"ZC\x01\x11" + u64(44) + u16(3) + SESSION + u64(6) + u64(8) + b"\x02"
                 + u64(1700000000000) + s("kiwi") + u32(2))
        m = zp.decode(frame)
        self.assertEqual((m.corr, m.slot, m.generation, m.seq, m.op, m.deadline, m.product, m.qty),
                         (44, 3, 6, 8, zp.OP_REMOVE, 1700000000000, "kiwi", 2))
        check = b"ZC\x01\x20" + u64(5) + s("kiwi") + u32(2) + u64(0)
        m = zp.decode(check)
        self.assertEqual((m.id, m.corr, m.product, m.qty, m.deadline), (zp.CHECK, 5, "kiwi", 2, 0))
        reply = b"ZC\x01\x21" + u64(5) + b"\x00" + u32(100)
        self.assertEqual(zp.encode(zp.Msg(zp.CHECK_REPLY, corr=5, status=zp.OK, qty=100)), reply)

    def test_every_message_round_trips(self):
        samples = [
            zp.request(SESSION, 1, zp.OP_LIST),
            zp.Msg(zp.REPLY, session=SESSION, seq=2, status=zp.OK, cart="c.1", generation=3,
                   detail="", items=[("a", 1)]),
            zp.status(99),
            zp.Msg(zp.STATUS_REPLY, corr=99, props=[("role", "leader"), ("term", "3")]),
            zp.Msg(zp.ADMIN, corr=1, command="transfer-leader", props=[("to", "2")]),
            zp.Msg(zp.ADMIN_REPLY, corr=1, status=zp.NOT_LEADER, detail="x", props=[]),
            zp.Msg(zp.HELLO, node="n", slots=[zp.SlotInfo(0)]),
            zp.Msg(zp.CART_REQUEST, corr=1, slot=0, session=SESSION, generation=1, seq=1,
                   op=zp.OP_ADD, deadline=0, product="p", qty=1),
            zp.Msg(zp.CART_REPLY, corr=1, slot=0, session=SESSION, seq=1, status=zp.FENCED,
                   detail="d", items=[]),
            zp.Msg(zp.RESET, slot=4, generation=9),
            zp.Msg(zp.RESET_DONE, node="n", slot=4, generation=9),
            zp.Msg(zp.HEARTBEAT, node="n"),
            zp.Msg(zp.CHECK, corr=3, product="p", qty=2, deadline=5),
            zp.Msg(zp.CHECK_REPLY, corr=3, status=zp.OK, qty=10),
        ]
        self.assertEqual(sorted(m.id for m in samples), sorted(zp.MESSAGES))
        for m in samples + [zp.request(SESSION, 2, zp.OP_KEEPALIVE)]:
            self.assertEqual(zp.decode(zp.encode(m)), m, m.name)

    def test_malformed_frames_are_refused(self):
        good = zp.encode(zp.request(SESSION, 1, zp.OP_ADD, "apple", 1))
        bad = {
            "empty": b"",
            "short header": b"ZC\x01",
            "signature": b"XC" + good[2:],
            "version": b"ZC\x02" + good[3:],
            "unknown id": b"ZC\x01\x7f",
            "truncated": good[:-1],
            "trailing": good + b"\x00",
            "product over 64": b"ZC\x01\x01" + SESSION + u64(1) + b"\x01" + u64(0)
            + s("p" * 65) + u32(1),
            "NUL in str": b"ZC\x01\x01" + SESSION + u64(1) + b"\x01" + u64(0) + b"\x03a\x00b"
            + u32(1),
            "items over 256": b"ZC\x01\x02" + SESSION + u64(1) + b"\x00" + s("") + u64(0)
            + s("") + u16(257) + (s("a") + u32(1)) * 257,
            "props count beyond data": b"ZC\x01\x04" + u64(1) + u16(3) + s("k") + s("v"),
        }
        for what, frame in bad.items():
            with self.assertRaises(zp.DecodeError, msg=what):
                zp.decode(frame)
        with self.assertRaises(zp.EncodeError):
            zp.encode(zp.request(SESSION, 1, zp.OP_ADD, "x" * 65, 1))
        self.assertTrue(zp.product_valid("apple") and not zp.product_valid("a,b")
                        and not zp.product_valid("a b") and not zp.product_valid(""))


class AgainstTheDaemons(harness.ClusterTestCase):
    def test_c_codec_accepts_and_produces_doc_frames(self):
        c = self.cluster(cart_nodes=1, slots=1)
        ep = c.client_endpoints[0]
        with harness.Dealer(ep) as d:
            # STATUS_REPLY from the C encoder decodes strictly and has the
            # documented keys.
            d.send(zp.status(12345))
            st = d.recv()
            self.assertEqual((st.id, st.corr), (zp.STATUS_REPLY, 12345))
            keys = {k for k, _ in st.props}
            for k in ("id", "endpoint", "role", "term", "commit_index", "applied_index",
                      "applied_commands", "digest", "leader_id", "leader_endpoint",
                      "carts_total", "carts_free", "carts_assigned", "carts_draining",
                      "sessions_live", "bad_requests", "dropped"):
                self.assertIn(k, keys)
            self.assertRegex(st.prop("digest"), r"^[0-9a-f]{16}$")
            # A REQUEST encoded here is understood there (list of a new
            # session: OK, no cart, generation 0, no items; section 3 step 6).
            r = d.request(zp.new_session(), 1, zp.OP_LIST)
            self.assertEqual((r.status_name, r.cart, r.generation, r.items), ("OK", "", 0, []))
            # Who decided it: this replica (the only one), as a ready leader
            # of the term its STATUS reports.
            self.assertEqual((r.replica, r.term), (int(st.prop("id")), int(st.prop("term"))))
            self.assertGreater(r.term, 0)
            # Field checks of step 2 echo the session and seq.
            sess = zp.new_session()
            r = d.request(sess, 5, zp.OP_ADD, "apple", 0)
            self.assertEqual((r.status_name, r.session, r.seq), ("BAD_REQUEST", sess, 5))
            self.assertEqual(r.term, 0)  # no leader decided it
        # CHECK encoded here, CHECK_REPLY decoded here.
        with harness.Dealer(c.stock_endpoints[0]) as d:
            d.send(zp.Msg(zp.CHECK, corr=77, product="apple", qty=1, deadline=0))
            m = d.recv()
            self.assertEqual((m.id, m.corr, m.status_name), (zp.CHECK_REPLY, 77, "OK"))
            self.assertGreaterEqual(m.qty, 1)


if __name__ == "__main__":
    harness.main()
