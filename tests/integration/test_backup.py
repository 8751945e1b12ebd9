#!/usr/bin/python3
"""test_backup: backup of the replicated state, restore into a new cluster (issue 15).

Design
------
`zcart admin backup NAME` makes the leader copy its state (LMDB, one
commit, on a worker thread) into --backup-dir/NAME with backup.json;
`zcart-broker --restore BACKUP --data DIR` seeds an empty data directory
of a NEW cluster from it (applied index reset to 0, old replica directory
dropped, digest unchanged); docs/operations.md has the runbook.

b1. On a 3-replica cluster with two sessions holding items, a backup
    answers OK naming the leader's applied index and digest at that moment
    (no traffic runs); backup.json says the same and lists the 3 voters; the
    same NAME again is BAD_REQUEST and leaves the backup intact; a bad NAME
    never leaves the CLI; a client key is FORBIDDEN (secure clusters).
b2. Restore: cluster A is stopped, the backup restored into three empty
    data directories of cluster B (other ports), A's cart-node and stock
    data copied over (the carts' contents live on the cart nodes), B
    started: every replica of B shows the backup's digest, both sessions
    list their items, and B serves new sessions; --restore into a directory
    that holds a replica is refused.
"""

import json
import os
import re
import shutil
import subprocess

import harness
from harness import CliSession, converged, wait_until


def broker_data(c, name):
    return os.path.join(c.dir, name, "data")


class Backup(harness.ClusterTestCase):
    def make_sessions(self, c):
        s1, s2 = CliSession(c), CliSession(c)
        s1.add("apple", 2)
        s1.add("pear", 1)
        s2.add("banana", 3)
        return s1, s2

    def backup(self, c, name, **kw):
        rc, r = c.cli("admin", "backup", name, **kw)
        return rc, r

    def test_b1_backup_names_index_and_digest(self):
        c = self.cluster(replicas=3, cart_nodes=2, slots=4)
        self.make_sessions(c)
        st = wait_until(lambda: converged(c), 20, "converged")
        ld = [s for s in st if s["role"] == "leader"][0]
        rc, r = self.backup(c, "b1")
        self.assertEqual((rc, r.get("ok")), (0, True), r)
        m = re.search(r"index (\d+), digest ([0-9a-f]{16})", r["detail"])
        self.assertIsNotNone(m, r)
        self.assertEqual((int(m.group(1)), m.group(2)), (ld["applied_index"], ld["digest"]))
        lname = "broker%d" % ld["id"]
        path = os.path.join(broker_data(c, lname), "backups", "b1")
        info = json.load(open(os.path.join(path, "backup.json")))
        self.assertEqual((info["applied_index"], info["digest"], info["sessions_live"]),
                         (ld["applied_index"], ld["digest"], 2))
        self.assertEqual(info["members"], "1 voter, 2 voter, 3 voter")
        self.assertEqual(sorted(os.listdir(path)), ["backup.json", "data.mdb"])
        size = os.path.getsize(os.path.join(path, "data.mdb"))
        rc, r = self.backup(c, "b1")
        self.assertEqual((rc, r.get("reason")), (1, "BAD_REQUEST"), r)
        self.assertEqual(os.path.getsize(os.path.join(path, "data.mdb")), size)
        for bad in ("../x", ".hidden", "a/b", "x" * 65):
            rc, r = self.backup(c, bad)
            self.assertNotEqual(rc, 0, bad)
        self.assertFalse(os.path.exists(os.path.join(broker_data(c, lname), "x")))
        if c.secure:
            rc, r = self.backup(c, "b2", cert="client")
            self.assertEqual(r.get("reason"), "FORBIDDEN", r)
            self.assertFalse(os.path.exists(os.path.join(broker_data(c, lname), "backups", "b2")))

    def test_b2_restore_into_a_new_cluster(self):
        a = self.cluster(replicas=3, cart_nodes=2, slots=4)
        s1, s2 = self.make_sessions(a)
        st = wait_until(lambda: converged(a), 20, "converged")
        ld = [s for s in st if s["role"] == "leader"][0]
        rc, r = self.backup(a, "full")
        self.assertEqual((rc, r.get("ok")), (0, True), r)
        backup = os.path.join(broker_data(a, "broker%d" % ld["id"]), "backups", "full")
        a.down()
        b = harness.Cluster(label="restored", replicas=3, cart_nodes=2, slots=4)
        b.dir, b.base = harness.allocate_run("restored")
        harness._live_clusters.append(b)
        self.clusters.append(b)
        self.addCleanup(b.down)
        if a.secure:  # B keeps A's keys: the same clients and cart nodes
            shutil.copytree(os.path.join(a.dir, "keys"), os.path.join(b.dir, "keys"))
        for i in (1, 2, 3):
            out = subprocess.run([os.path.join(harness.BIN, "zcart-broker"), "--restore", backup,
                                  "--data", broker_data(b, "broker%d" % i)],
                                 capture_output=True, text=True, timeout=60)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn("digest %s" % ld["digest"], out.stdout)
        again = subprocess.run([os.path.join(harness.BIN, "zcart-broker"), "--restore", backup,
                                "--data", broker_data(b, "broker1")], capture_output=True, text=True)
        self.assertEqual(again.returncode, 2)
        self.assertIn("already holds a replica", again.stderr)
        for n in ("cart1", "cart2", "stock1"):
            shutil.copytree(os.path.join(a.dir, n, "data"), os.path.join(b.dir, n, "data"))
        b._up()
        st = wait_until(lambda: converged(b), 20, "B converged")
        self.assertEqual({s["digest"] for s in st}, {ld["digest"]})
        for s, want in ((s1, {"apple": 2, "pear": 1}), (s2, {"banana": 3})):
            s.cluster = b
            r = s.list()
            self.assertEqual({i["product"]: i["qty"] for i in r["items"]}, want, r)
        self.assertTrue(CliSession(b).add("cherry", 1)["ok"])


if __name__ == "__main__":
    harness.main()
