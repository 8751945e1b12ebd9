#!/usr/bin/python3
"""test_dump_state: `zcart-broker --dump-state` and `zcart-cart --dump-state`
agree with what the CLI did and with STATUS, and change nothing.

Design
------
d1. A 3-replica cluster with two cart nodes.  Through the CLI: session A adds
    and removes (stays LIVE), session B adds and closes (its cart drains and
    returns to the free list), session C adds once (LIVE).  Once every
    replica has converged (one leader, same applied index and digest) and no
    cart is draining, the test notes STATUS and stops the cluster with
    `zcart-cluster down` (a clean stop).  Then, offline:

    - every replica's dump shows the applied index and digest STATUS showed
      for it; the three dumps are identical;
    - sessions A and C are LIVE on the carts their CLI answers named, with
      the same generation; B is CLOSED; the carts' states, the free list
      (every FREE cart exactly once) and the cart count match STATUS;
    - each cart node's dump shows A's and C's carts owned by their session
      and generation, holding exactly the items of the session's last CLI
      answer; B's cart has no owner, no items, and a reset generation at
      least B's generation;
    - the dumps wrote nothing: every data.mdb is byte-identical before and
      after, and the cluster starts again on the same data, with A's cart
      as it was.

    A missing directory is exit status 1 with a message naming it; a cart
    dump without --slots is a usage error (2).
"""

import hashlib
import json
import os
import subprocess

import harness
from harness import BIN, converged, items_of, wait_until


def dump(argv):
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout, r.stderr


def digest_files(root):
    """sha256 of every data.mdb under root, by path."""
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            if f == "data.mdb":
                p = os.path.join(d, f)
                with open(p, "rb") as fh:
                    out[p] = hashlib.sha256(fh.read()).hexdigest()
    return out


class DumpState(harness.ClusterTestCase):
    def test_d1_dumps_agree_with_the_cli_and_status(self):
        c = self.cluster(replicas=3, cart_nodes=2, slots=4)
        a = harness.CliSession(c)
        a.add("apple", 2)
        a.add("pear", 1)
        last_a = a.remove("apple", 1)
        b = harness.CliSession(c)
        first_b = b.add("lemon", 3)
        b.close()
        cs = harness.CliSession(c)
        last_c = cs.add("mango", 1)

        def settled():
            st = converged(c)
            if st and all(s["carts_draining"] == 0 for s in st):
                return st
            return None
        st = wait_until(settled, 20, "converged replicas and no draining cart")
        by_id = {s["id"]: s for s in st}
        c.tool("down", "--stop-timeout", "10")
        before = digest_files(c.dir)

        dumps = {}
        for p in c.plan["procs"]:
            if p["kind"] != "broker":
                continue
            rid = int(p["argv"][p["argv"].index("--id") + 1])
            data = p["argv"][p["argv"].index("--data") + 1]
            rc, out, err = dump([os.path.join(BIN, "zcart-broker"), "--dump-state", "--data", data])
            self.assertEqual(rc, 0, err)
            dumps[rid] = json.loads(out)
            self.assertEqual(dumps[rid]["applied_index"], by_id[rid]["applied_index"])
            self.assertEqual(dumps[rid]["digest"], by_id[rid]["digest"])
        self.assertEqual(len(dumps), 3)
        d = dumps[1]
        for rid in (2, 3):
            self.assertEqual(dumps[rid], d, "replica %d's dump differs from replica 1's" % rid)

        sessions = {s["id"]: s for s in d["sessions"]}
        carts = {x["id"]: x for x in d["carts"]}
        self.assertEqual(len(carts), 8)
        for sess, ans in ((a, last_a), (cs, last_c)):
            rec = sessions[sess.id]
            self.assertEqual((rec["state"], rec["cart"], rec["generation"]),
                             ("LIVE", ans["cart"], ans["generation"]))
            self.assertEqual(carts[ans["cart"]]["state"], "ASSIGNED")
            self.assertEqual(carts[ans["cart"]]["session"], sess.id)
        rec_b = sessions[b.id]
        self.assertEqual((rec_b["state"], rec_b["cart"]), ("CLOSED", first_b["cart"]))
        self.assertEqual(carts[first_b["cart"]]["state"], "FREE")
        self.assertIsNone(carts[first_b["cart"]]["session"])
        free = [x["id"] for x in d["carts"] if x["state"] == "FREE"]
        self.assertEqual(sorted(d["free"]), sorted(free))
        self.assertEqual(len(d["free"]), len(set(d["free"])))
        self.assertEqual(len(free), st[0]["carts_free"])
        for x in d["carts"]:
            self.assertEqual(x["breaker"], {"state": "CLOSED", "mode": "auto"})

        slots = {}
        for p in c.plan["procs"]:
            if p["kind"] != "cart":
                continue
            node = p["argv"][p["argv"].index("--name") + 1]
            data = p["argv"][p["argv"].index("--data") + 1]
            rc, out, err = dump([os.path.join(BIN, "zcart-cart"), "--dump-state", "--data", data,
                                 "--slots", "4", "--name", node])
            self.assertEqual(rc, 0, err)
            obj = json.loads(out)
            self.assertEqual(obj["node"], node)
            self.assertEqual([s["slot"] for s in obj["slots"]], [0, 1, 2, 3])
            for s in obj["slots"]:
                slots[s["cart"]] = s
        self.assertEqual(sorted(slots), sorted(carts))
        for sess, ans in ((a, last_a), (cs, last_c)):
            s = slots[ans["cart"]]
            self.assertEqual((s["owner"], s["generation"]), (sess.id, ans["generation"]))
            self.assertEqual({i["product"]: i["qty"] for i in s["items"]}, items_of(ans))
        s = slots[first_b["cart"]]
        self.assertIsNone(s["owner"])
        self.assertEqual(s["items"], [])
        self.assertGreaterEqual(s["reset_generation"], first_b["generation"])
        owned = {x for x, s in slots.items() if s["owner"]}
        self.assertEqual(owned, {last_a["cart"], last_c["cart"]})

        self.assertEqual(digest_files(c.dir), before, "a dump changed a data file")

        missing = os.path.join(c.dir, "no-such-replica")
        rc, out, err = dump([os.path.join(BIN, "zcart-broker"), "--dump-state", "--data", missing])
        self.assertEqual((rc, out), (1, ""))
        self.assertIn("no-such-replica", err)
        self.assertFalse(os.path.exists(missing))
        rc, out, err = dump([os.path.join(BIN, "zcart-cart"), "--dump-state", "--data", missing,
                             "--slots", "2"])
        self.assertEqual((rc, out), (1, ""))
        self.assertIn("no-such-replica", err)
        rc, _, err = dump([os.path.join(BIN, "zcart-cart"), "--dump-state", "--data", missing])
        self.assertEqual(rc, 2, err)

        c.restart_all()
        again = wait_until(lambda: (lambda r: r if r.get("ok") else None)(a.list(expect_ok=None)),
                           20, "session A served after the restart")
        self.assertEqual((again["cart"], again["generation"], items_of(again)),
                         (last_a["cart"], last_a["generation"], items_of(last_a)))


if __name__ == "__main__":
    harness.main()
