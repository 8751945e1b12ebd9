#!/usr/bin/python3
"""test_disk_full: a replica or cart node whose disk fills up fails cleanly and comes back.

Design
------
The target daemon is stopped, its data directory moved onto a small tmpfs
(`mount -t tmpfs -o size=`, root only), and started again; then a filler
file takes every free byte of that filesystem (posix_fallocate), so the
next write that needs a new block fails with ENOSPC.  The filler is deleted
to give the disk back.

d1. A follower's disk fills under `zcart-bench -w assign` (every cycle
    writes its raft log and its LMDB state).  The follower must stop, with
    status 74 and a log line naming the failed write (raft's append, or
    LMDB's commit of an entry: replication/node.c node_apply) -- not keep
    running behind, retrying the same entry (raft 0.15 does that with a
    failed apply).  The other two keep serving: a new session is answered
    OK while it is down.  Disk back, follower started: it catches up (one
    applied index and digest on all three) and is still running after
    that (no crash loop).

d2. (Every replica on its own tmpfs.)  The leader's disk fills while 6 sessions add one unit at a time.  The
    leader must stop (status 74), and a new leader take over within the
    test's deadline (a leader that keeps leading while it applies nothing
    would time out every request).  Disk back, the old leader started:
    all three converge, and every session holds at least every add it was
    answered OK for and at most every add it sent: nothing acknowledged was
    lost, nothing applied twice.

d4. d2 with only the leader's state store (data/state, LMDB) on the full
    tmpfs, its raft log on the normal disk: the failure is LMDB's commit of
    a committed entry.  raft 0.15 would retry that apply at every commit,
    for ever, while the leader keeps leading and applies nothing; the
    replica must stop with status 74 instead (replication/node.c
    node_apply), and the rest as in d2.

d3. A cart node's disk fills (its write-ahead log 16 KiB).  Its LMDB
    checkpoints fail (logged), adds go on into the preallocated log until
    it is full; then one is refused: its change cannot be made durable, so
    the node drops that iteration's replies and undoes it (cart/node.c
    on_flush, cart/store.c store_commit), and the broker answers the
    client not OK.  The node logs it and keeps running (a restart
    would not free the disk).  Disk back: an add of the same session is
    OK again (once the cart's breaker closes), and the cart holds exactly
    the units of the adds answered OK -- the refused ones left nothing.
"""

import errno
import os
import re
import subprocess
import threading
import time

import harness
from harness import CliSession, wait_until

TMPFS_SIZE = "48m"


class Disk:
    """A daemon's data directory on its own small tmpfs."""

    def __init__(self, c, name, sub=None):
        self.c, self.name = c, name
        self.data = os.path.join(c.dir, name, "data")
        if sub:  # only this part of the data directory (a replica's "state")
            self.data = os.path.join(self.data, sub)
        self.filler = os.path.join(self.data, "zz-disk-full-filler")
        c.kill(name)
        old = self.data + ".before-tmpfs"
        os.rename(self.data, old)
        os.makedirs(self.data)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + TMPFS_SIZE, "zc-disk-full",
                        self.data], check=True)
        subprocess.run(["cp", "-a", old + "/.", self.data], check=True)
        c.start(name)

    def fill(self):
        """Take every free block.  The daemons write meanwhile (a cart
        node's checkpoint, a replica's log), so blocks counted free may be
        gone when asked for (ENOSPC, nothing taken): ask again for what is
        left, until nothing is."""
        fd = os.open(self.filler, os.O_CREAT | os.O_WRONLY, 0o600)
        try:
            for _ in range(100):
                st = os.statvfs(self.data)
                if st.f_bavail == 0:
                    break
                try:
                    os.posix_fallocate(fd, os.fstat(fd).st_size, st.f_bavail * st.f_frsize)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
        finally:
            os.close(fd)
        st = os.statvfs(self.data)
        assert st.f_bavail == 0, "the filler left %d blocks free" % st.f_bavail

    def free(self):
        os.unlink(self.filler)

    def umount(self):
        subprocess.run(["umount", "-l", self.data], check=False)


class DiskFull(harness.ClusterTestCase):
    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.fail("test_disk_full mounts a tmpfs: run it as root (make test does)")

    def disk(self, c, name, sub=None):
        d = Disk(c, name, sub)
        # Cleanups run last-in first-out: the cluster stops before the
        # unmount, and before its own cleanup (then a no-op).
        self.addCleanup(lambda: (c.down(), d.umount()))
        return d

    def exits_74(self, c, name, timeout=30):
        """Wait until `name` is gone; its log must say status 74 and why."""
        wait_until(lambda: not c.alive(name), timeout, "%s stopped on its full disk" % name)
        lines = [line for _, line in c.grep_logs("exiting with status 74")
                 if " %s " % name in line]
        self.assertTrue(lines, "%s stopped without 'exiting with status 74' in its log" % name)
        # raft names ENOSPC ("not enough space"); LMDB reports a short write
        # as "Input/output error".
        self.assertTrue(any(re.search(r"failed: .*(space|error)", line) for line in lines),
                        "the log line does not name the error: %s" % lines)
        return lines

    def test_d1_follower(self):
        c = self.cluster(replicas=3, cart_nodes=2, slots=8)
        self.assertConverges(c)
        leader = c.leader()["id"]
        f = "broker%d" % (leader % 3 + 1)
        d = self.disk(c, f)
        self.assertConverges(c)
        d.fill()
        bench = c.bench_popen("-w", "assign", "-c", "4", seconds=60)
        self.exits_74(c, f)
        CliSession(c).add("apple", 1)  # the other two serve
        c.bench_stop(bench)
        d.free()
        c.start(f)
        self.assertConverges(c)
        time.sleep(1.0)  # then still running: no crash loop on the restart
        self.assertTrue(c.alive(f), "%s stopped again after its disk came back" % f)
        self.assertConverges(c, timeout=10)

    def test_d2_leader(self):
        self.leader_disk_fills(sub=None)

    def test_d4_leader_state_store(self):
        self.leader_disk_fills(sub="state")

    def leader_disk_fills(self, sub):
        # d2: 64 KiB raft segments (--raft-segment-size), so the leader
        # soon needs a new one: its append fails.  d4: the raft log has room;
        # LMDB fails to commit an entry (node_apply).
        c = self.cluster(replicas=3, cart_nodes=2, slots=8,
                         broker_args=["--raft-segment-size=64K"] if sub is None else [])
        self.assertConverges(c)
        disks = {"broker%d" % r: self.disk(c, "broker%d" % r, sub) for r in (1, 2, 3)}
        st = self.assertConverges(c)
        lid = [s for s in st if s["role"] == "leader"][0]["id"]
        name = "broker%d" % lid
        d = disks[name]
        sessions = [CliSession(c) for _ in range(6)]
        acked = [0] * 6
        sent = [0] * 6
        stop = threading.Event()

        def adder(k):
            while not stop.is_set():
                sent[k] += 1
                r = sessions[k].run("add", "apple", 1, expect_ok=False, timeout_ms=3000)
                if r.get("ok"):
                    acked[k] += 1

        threads = [threading.Thread(target=adder, args=(k,), daemon=True) for k in range(6)]
        for t in threads:
            t.start()
        wait_until(lambda: min(acked) >= 2, 20, "every session added twice")
        d.fill()
        # Routed adds write nothing to raft: new sessions (ASSIGN, RELEASE,
        # RETURN commits) make the leader write its log and its state.
        bench = c.bench_popen("-w", "assign", "-c", "2", seconds=60)
        self.exits_74(c, name)
        wait_until(lambda: (c.leader() or {}).get("id") not in (None, lid), 15,
                   "a new leader after %s stopped" % name)
        before = list(acked)
        wait_until(lambda: sum(acked) > sum(before) + 6, 20, "adds answered by the new leader")
        stop.set()
        for t in threads:
            t.join(30)
        c.bench_stop(bench)
        d.free()
        c.start(name)
        self.assertConverges(c)
        for k, s in enumerate(sessions):
            items = harness.items_of(s.list())
            got = items.get("apple", 0)
            self.assertGreaterEqual(got, acked[k], "session %d lost an acknowledged add" % k)
            self.assertLessEqual(got, sent[k], "session %d applied an add twice" % k)

    def test_d3_cart_node(self):
        # A 16 KiB write-ahead log: ~100 adds of one line each.  While LMDB cannot
        # checkpoint, the node goes on until its log is full.
        c = self.cluster(replicas=1, cart_nodes=1, slots=4, cart_args=["--wal-size=16K"])
        s = CliSession(c)
        s.add("apple", 1)
        d = self.disk(c, "cart1")
        wait_until(lambda: s.run("add", "apple", 1, expect_ok=False).get("ok"), 20,
                   "cart1 serves again on its tmpfs")
        d.fill()
        # Writes that fit the pages LMDB already holds can still succeed:
        # keep adding until one is refused.
        acked, refused = 0, None
        for _ in range(200):
            r = s.run("add", "pear", 1, expect_ok=False)
            if not r.get("ok"):
                refused = r
                break
            acked += 1
        self.assertIsNotNone(refused, "200 adds OK on a full disk")
        self.assertTrue(c.grep_logs("checkpoint failed"), "cart1 did not log the failing checkpoints")
        self.assertTrue(c.grep_logs("storage commit failed"), "cart1 did not log the failure")
        self.assertTrue(c.alive("cart1"), "cart1 exited on its full disk")
        d.free()
        wait_until(lambda: s.run("add", "pear", 1, expect_ok=False).get("ok"), 30,
                   "an add OK once the disk is back")
        acked += 1
        self.assertTrue(c.alive("cart1"))
        self.assertEqual(harness.items_of(s.list()).get("pear", 0), acked,
                         "pears in the cart != adds answered OK (refused: %r)" % refused)

if __name__ == "__main__":
    harness.main()
