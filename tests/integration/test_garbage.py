#!/usr/bin/python3
"""test_garbage: malformed input on every socket leaves every daemon serving.

Design
------
One cluster: 1 replica, stock, cart node ``cart1`` (1 slot, real stock),
plus a node ``spy`` (1 slot) that the test wires to a fake broker ROUTER
(besides the real replica) and to a fake stock ROUTER (its only stock), so
the test can reach the node's broker-side and stock-side sockets.  cart1
registers before spy, so the free list is [cart1.0, spy.0].

The barrage (a fixed list of malformations, plus seeded random frames):
  * broker client endpoint   -> each frame answered BAD_REQUEST (section 3
                                step 1/2; field errors echo session and seq);
                                `bad_requests` grows by as much
  * broker cart endpoint     -> dropped; `dropped` grows
  * stock endpoint           -> each single frame answered CHECK_REPLY
                                BAD_REQUEST, corr echoed when readable
  * spy's broker socket      -> dropped; a CART_REQUEST for a missing slot
                                sent afterwards is still answered BAD_REQUEST
  * spy's stock socket       -> while a real check is pending: the barrage,
                                an answer for an unknown corr, junk, a wrong
                                corr and a truncated answer, then the right one
  * raw TCP junk             -> every listening port, raft included

Afterwards: every process is alive, a normal session (CLI) works on cart1,
and a session on spy.0 completes through the fake stock.
"""

import os
import random
import struct

import harness
import zcproto as zp
from harness import CliSession, Dealer, FakeRouter, items_of, wait_until

SESSION = bytes(range(1, 17))


def garbage_frames(seed):
    """Single frames that are malformed in the sense of section 2."""
    good = zp.encode(zp.request(SESSION, 1, zp.OP_ADD, "apple", 1))
    frames = [
        b"", b"\x00", b"Z", b"ZC", b"ZC\x01", b"ZC\x02\x01", b"XC\x01\x01", b"ZC\x01\x00",
        b"ZC\x01\xff", good + b"\x00", good + b"trailing",
        good[:4 + 16 + 8 + 1 + 8] + b"\xff" + b"a" * 10,            # str longer than the frame
        b"ZC\x01\x01" + SESSION + bytes(8) + b"\x01" + bytes(8) + b"\x41" + b"p" * 65 + bytes(4),
        b"ZC\x01\x01" + SESSION + bytes(8) + b"\x01" + bytes(8) + b"\x03a\x00b" + bytes(4),
        b"ZC\x01\x04" + bytes(8) + b"\xff\xff",                     # props count, no props
        b"ZC\x01\x10" + b"\x04spy!" + b"\xff\xff",                  # HELLO, slots over limit
        b"ZC\x01\x02" + SESSION + bytes(8),                          # truncated REPLY
        b"ZC\x01\x20" + struct.pack(">Q", 4242) + b"\x05app",       # truncated CHECK, corr 4242
    ]
    frames += [good[:n] for n in range(4, len(good))]              # every truncation
    rng = random.Random(seed)
    frames += [bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300))) for _ in range(30)]
    frames.append(os.urandom(70000))
    return frames


def invalid_requests():
    """Well-formed REQUESTs whose fields are invalid (section 3 step 2)."""
    s = zp.new_session()
    return [
        zp.request(s, 0, zp.OP_ADD, "apple", 1),          # seq 0
        zp.request(s, 1, 9, "apple", 1),                  # op out of range
        zp.request(zp.ZERO_SESSION, 2, zp.OP_ADD, "apple", 1),
        zp.request(s, 3, zp.OP_ADD, "apple", 0),          # qty 0
        zp.request(s, 4, zp.OP_ADD, "apple", 1000001),    # qty too large
        zp.request(s, 5, zp.OP_ADD, "two words", 1),      # product with a space
        zp.request(s, 6, zp.OP_ADD, "a,b", 1),            # product with a comma
        zp.request(s, 7, zp.OP_ADD, "", 1),               # empty product
        zp.request(s, 8, zp.OP_LIST, "apple", 0),         # list with a product
        zp.request(s, 9, zp.OP_CLOSE, "", 3),             # close with a qty
    ]


class Garbage(harness.ClusterTestCase):
    def test_i_garbage_everywhere_leaves_every_daemon_serving(self):
        c = self.cluster(cart_nodes=1, slots=1)
        with FakeRouter("tcp://127.0.0.1:%d" % c.port(), c, "replica") as fbroker, \
                FakeRouter("tcp://127.0.0.1:%d" % c.port(), c, "stock") as fstock:
            c.start_cart_node("spy", 1, c.cart_endpoints + [fbroker.endpoint], [fstock.endpoint])
            wait_until(lambda: c.counts() == (2, 2, 0, 0), 10, "node spy registered")
            rid, _ = fbroker.recv_msg(zp.HELLO, timeout=10)
            self.assertEqual(rid.split(b"/")[0], b"spy")  # NAME "/" nonce (protocol.md 1)
            frames = garbage_frames(9)
            before = c.replica_status(c.client_endpoints[0])

            # Broker client endpoint: every frame gets exactly one BAD_REQUEST.
            with Dealer(c.client_endpoints[0]) as d:
                for f in frames:
                    d.send(f)
                d.send([b"two", b"frames"])
                for i in range(len(frames) + 1):
                    m = d.recv(10)
                    self.assertEqual((m.id, m.status_name), (zp.REPLY, "BAD_REQUEST"),
                                     "garbage #%d: %r" % (i, m))
                for bad in invalid_requests():
                    r = d.request(bad.session, bad.seq, bad.op, bad.product, bad.qty)
                    self.assertEqual(r.status_name, "BAD_REQUEST", (bad, r))
                    self.assertTrue(r.detail, r)
                self.assertFalse(d.pending(0.0), "more replies than requests")
            after = c.replica_status(c.client_endpoints[0])
            self.assertGreaterEqual(after["bad_requests"] - before["bad_requests"],
                                    len(frames) + 1 + len(invalid_requests()))

            # Broker cart endpoint: dropped and counted, never answered.
            with Dealer(c.cart_endpoints[0], routing_id=b"junk-peer") as d:
                for f in frames:
                    d.send(f)
                d.send([b"two", b"frames"])
                d.send(zp.Msg(zp.CART_REPLY, corr=123456, slot=0, session=SESSION, seq=1,
                              status=zp.OK, detail="", items=[]))
                d.send(zp.Msg(zp.RESET_DONE, node="junk-peer", slot=0, generation=99))
                d.send(zp.request(SESSION, 1, zp.OP_ADD, "apple", 1))
                wait_until(lambda: c.replica_status(c.client_endpoints[0])["dropped"]
                           >= before["dropped"] + len(frames), 10,
                           "the broker counting the cart-side garbage as dropped")
                self.assertFalse(d.pending(0.0), "the broker answered garbage on the cart side")
            with Dealer(c.cart_endpoints[0]) as d:  # no routing id at all
                d.send(b"ZC\x01\x10\x00\x00\x00")

            # Stock endpoint: every single frame answered BAD_REQUEST.
            with Dealer(c.stock_endpoints[0]) as d:
                for f in frames:
                    d.send(f)
                for i in range(len(frames)):
                    m = d.recv(10)
                    self.assertEqual((m.id, m.status_name), (zp.CHECK_REPLY, "BAD_REQUEST"),
                                     "garbage #%d to stock: %r" % (i, m))
                d.send(zp.Msg(zp.CHECK, corr=77, product="no product", qty=1, deadline=0))
                m = d.recv(10)
                self.assertEqual((m.corr, m.status_name), (77, "BAD_REQUEST"))

            # The spy node's broker socket: dropped; it still answers afterwards.
            for f in frames:
                fbroker.send(rid, f)
            fbroker.send(rid, [b"two", b"frames"])
            for msg in (zp.Msg(zp.HELLO, node="x", slots=[]),
                        zp.Msg(zp.CHECK_REPLY, corr=1, status=zp.OK, qty=1),
                        zp.Msg(zp.RESET, slot=99, generation=1),
                        zp.Msg(zp.REPLY, session=SESSION, seq=1, status=zp.OK, cart="",
                               generation=0, detail="", items=[])):
                fbroker.send(rid, msg)
            fbroker.send(rid, zp.Msg(zp.CART_REQUEST, corr=31337, slot=99, session=SESSION,
                                     generation=1, seq=1, op=zp.OP_LIST, deadline=0))
            while True:
                _, m = fbroker.recv_msg(zp.CART_REPLY, timeout=10)
                if m.corr == 31337:
                    break
            self.assertEqual(m.status_name, "BAD_REQUEST", m)

            # Raw TCP junk on every port this cluster listens on.
            rng = random.Random(4)
            payloads = [
                bytes(rng.getrandbits(8) for _ in range(64)),
                b"\xff\x00\x00\x00\x00\x00\x00\x00\x01\x7f" + bytes(rng.getrandbits(8) for _ in range(54)),
                b"GET / HTTP/1.0\r\n\r\n",
                struct.pack("<QQQ", 1, 2, 1 << 40) + b"x" * 16,   # raft-like handshake, huge length
                struct.pack(">QQQ", 1, 2, 1 << 40) + b"x" * 16,
                os.urandom(65536),
            ]
            for port in c.all_ports():
                for p in payloads:
                    harness.tcp_junk(port, p)

            # Every process is alive...
            self.assertAllAlive(c)

            # ...a normal session works (cart1.0 is at the head of the free list)...
            s = CliSession(c)
            r = s.add("apple", 2)
            self.assertEqual(r["cart"], "cart1.0", r)
            s.add("pear", 1)
            self.assertEqual(items_of(s.list()), {"apple": 2, "pear": 1})

            # ...and one on spy.0 goes through the fake stock, which first
            # sends the barrage to the node's stock socket (the stock side
            # learns the node's routing id from its first CHECK), then
            # answers the check with junk, a wrong corr and a truncated reply.
            p = c.cli_popen("add", "banana", 3, timeout_ms=8000)
            try:
                srid, chk = fstock.recv_msg(zp.CHECK, timeout=10)
                self.assertEqual((chk.product, chk.qty), ("banana", 3))
                for f in frames:
                    fstock.send(srid, f)
                fstock.send(srid, zp.Msg(zp.CHECK_REPLY, corr=999999, status=zp.OK, qty=5))
                fstock.send(srid, b"ZC\x01\x21")
                fstock.send(srid, zp.Msg(zp.CHECK_REPLY, corr=chk.corr + 1000, status=zp.OUT_OF_STOCK,
                                         qty=0))
                fstock.send(srid, zp.encode(zp.Msg(zp.CHECK_REPLY, corr=chk.corr, status=zp.OUT_OF_STOCK,
                                                   qty=0))[:-2])
                fstock.send(srid, [b"two", b"frames"])
                fstock.send(srid, zp.Msg(zp.CHECK_REPLY, corr=chk.corr, status=zp.OK, qty=100))
                rc, r = c.cli_result(p)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            self.assertEqual((rc, r.get("cart"), r.get("reason")), (0, "spy.0", "OK"), r)
            self.assertEqual(items_of(r), {"banana": 3})
            s.close()
            wait_until(lambda: c.counts() == (2, 1, 1, 0), 10, "cart1.0 drained and free")
            self.assertAllAlive(c)

    def test_i2_stock_answers_a_multiframe_message(self):
        # Sections 1 and 6: a message with more frames than expected is
        # malformed, and where the peer can be answered (stock) it gets
        # BAD_REQUEST.
        c = self.cluster(cart_nodes=0)
        with Dealer(c.stock_endpoints[0]) as d:
            d.send([zp.encode(zp.Msg(zp.CHECK, corr=5, product="apple", qty=1, deadline=0)),
                    b"extra"])
            d.send(zp.Msg(zp.CHECK, corr=6, product="apple", qty=1, deadline=0))
            answers = []
            while not answers or answers[-1].corr != 6:
                answers.append(d.recv(5))
        self.assertAllAlive(c)
        self.assertEqual([m.status_name for m in answers], ["BAD_REQUEST", "OK"],
                         "a two-frame CHECK should be answered BAD_REQUEST: got %r" % answers)


if __name__ == "__main__":
    harness.main()
