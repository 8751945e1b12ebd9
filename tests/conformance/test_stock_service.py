"""The stock service as a cart node sees it, from docs/protocol.md section 7.

A cluster with one stock service (catalog.csv: 1,000,000 apples, 3 `scarce`)
and one replica; the test speaks `check` to the stock directly over a DEALER,
as the cart node in zcartnode.py does.
"""

import time
import unittest

import zmq

from base import main, now_ms
import zcp
import zcluster


class StockService(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.cluster = zcluster.Cluster(replicas=1, cart_nodes=0).up()
        cls.sock = zmq.Context.instance().socket(zmq.DEALER)
        cls.sock.setsockopt(zmq.LINGER, 0)
        zcluster.curve(cls.sock, zcluster.cart_key("cart1"), "stock")
        cls.sock.connect(cls.cluster.stock_eps[0])

    @classmethod
    def tearDownClass(cls):
        cls.sock.close(0)
        cls.cluster.down()

    def ask(self, frame, timeout=5.0):
        self.sock.send(frame)
        self.assertTrue(self.sock.poll(int(timeout * 1000)), "the stock answers every check")
        frames = self.sock.recv_multipart()
        self.assertEqual(len(frames), 1)
        m = zcp.decode(frames[0])
        self.assertEqual(m["type"], zcp.CHECK_REPLY)
        return m

    def check(self, corr, product, qty, deadline=0):
        return self.ask(zcp.encode_check(corr, product, qty, deadline))

    def test_answers(self):
        """§7: OK when at least qty units exist, OUT_OF_STOCK when fewer,
        UNKNOWN_PRODUCT (qty 0) when not in the inventory, EXPIRED when the
        deadline had passed; qty is the units available; corr echoed."""
        cases = [
            (11, "scarce", 3, 0, "OK", 3),
            (12, "scarce", 4, 0, "OUT_OF_STOCK", 3),
            (13, "apple", 1000000, now_ms() + 60000, "OK", 1000000),
            (14, "durian", 1, 0, "UNKNOWN_PRODUCT", 0),
            (15, "apple", 1, now_ms() - 1000, "EXPIRED", None),
        ]
        for corr, product, qty, dl, want, avail in cases:
            with self.subTest(product=product, qty=qty):
                m = self.check(corr, product, qty, dl)
                self.assertEqual(m["corr"], corr)
                self.assertEqual(zcp.status_name(m["status"]), want)
                if avail is not None:
                    self.assertEqual(m["qty"], avail)

    def test_bad_request(self):
        """§7 / §6: a malformed check is BAD_REQUEST with its corr when the
        corr could be read, corr 0 otherwise."""
        good = zcp.encode_check(4242, "apple", 1, 0)
        for name, frame, corr in (
                ("trailing octet", good + b"\x00", 4242),
                ("cut in qty", good[:-10], 4242),
                ("product over 64", zcp.encode_check(4243, "a" * 65, 1, 0), 4243),
                ("corr cut short", good[:8], 0),
                ("bad signature", b"QQ" + good[2:], 0)):
            with self.subTest(name):
                m = self.ask(frame)
                self.assertEqual(zcp.status_name(m["status"]), "BAD_REQUEST")
                self.assertEqual(m["corr"], corr)
        self.assertEqual(zcp.status_name(self.check(5, "apple", 1)["status"]), "OK",
                         "still serving")

    def test_concurrent_checks_matched_by_corr(self):
        """§7: checks are answered concurrently, in any order; the asker
        matches answers by corr."""
        corrs = list(range(1000, 1100))
        for c in corrs:
            self.sock.send(zcp.encode_check(c, "scarce" if c % 2 else "apple", 2, 0))
        got = {}
        end = time.monotonic() + 10
        while len(got) < len(corrs) and time.monotonic() < end:
            if self.sock.poll(200):
                m = zcp.decode(self.sock.recv())
                self.assertNotIn(m["corr"], got, "one answer per check")
                got[m["corr"]] = m
        self.assertEqual(sorted(got), corrs)
        for c, m in got.items():
            self.assertEqual(m["status"], zcp.OK, c)


if __name__ == "__main__":
    main()
