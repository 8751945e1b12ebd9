#!/usr/bin/python3
"""test_nemesis: a fault and its --overlap companion never share a daemon;
the membership fault can set aside a data directory that is a mount point.

Seed 1024 of the campaign scheduled cart-kill and cart-pause on one cart
node at once: the pause's heal met a process the kill had replaced, and the
run ended as a harness error.  Two checks, no cluster needed:

- schedules: for many seeds, 3 and 5 replicas, --overlap 1 (every fault
  gets a companion when one fits), no companion's drawn targets meet its
  fault's (claims()), and companions still happen;
- run time: Nemesis.apply with a fake cluster and network -- a
  follower-picking companion never picks the follower the first fault
  took, and a companion whose drawn target the first fault took at run
  time is skipped, not applied.
"""

import io
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nemesis  # noqa: E402

CARTS = ["cart1", "cart2", "cart3", "cart4"]
STOCKS = ["stock1", "stock2"]


class FakeDaemon:
    def __init__(self, name, log):
        self.name, self.pid, self.log = name, 100, log
        self.st = "running"

    def kill(self):
        self.log.append(("kill", self.name))
        self.st = "dead"

    def pause(self):
        self.log.append(("pause", self.name))
        self.st = "paused"

    def resume(self):
        self.st = "running"

    def state(self):
        return self.st


class FakeCluster:
    """The parts of cluster.Cluster that apply() uses for kill/pause kinds."""

    def __init__(self, replicas, leader):
        import threading
        self.lock = threading.RLock()
        self.log = []
        self.ids = list(range(1, replicas + 1))
        self.leader = leader
        self.daemons = {n: FakeDaemon(n, self.log)
                        for n in ["broker%d" % r for r in self.ids] + CARTS + STOCKS}

    def broker_name(self, r):
        return "broker%d" % r

    def replica_ids(self):
        return list(self.ids)

    def wait_leader(self, timeout):
        return self.leader

    def daemon(self, name):
        return self.daemons[name]

    def restart(self, name):
        self.daemons[name].st = "running"


def nemesis_for(cluster):
    return nemesis.Nemesis(cluster, net=None, history=[], schedule=[], t0=0.0,
                           log_file=io.StringIO(), echo=lambda m: None)


class Schedules(unittest.TestCase):
    def test_companion_never_shares_a_target(self):
        companions = 0
        for replicas in (3, 5):
            for seed in range(1, 801):
                sched = nemesis.make_schedule(seed, nemesis.KINDS, 600, 2.0, 2.0, 6.0,
                                              list(range(1, replicas + 1)), CARTS, STOCKS,
                                              overlap=1.0)
                for f in sched:
                    if f.companion is None:
                        continue
                    companions += 1
                    both = (nemesis.claims(f.kind, f.params)
                            & nemesis.claims(f.companion.kind, f.companion.params))
                    self.assertFalse(both, "seed %d, %d replicas: %s" % (seed, replicas,
                                                                          f.describe()))
        self.assertGreater(companions, 10000)

    def test_claims(self):
        self.assertEqual(nemesis.claims("cart-kill", {"cart": "cart2"}), {"cart2"})
        self.assertEqual(nemesis.claims("cart-pause", {"cart": "cart2"}), {"cart2"})
        self.assertEqual(nemesis.claims("kill-random", {"replica": 3}), {"broker3"})
        self.assertEqual(nemesis.claims("packet-loss", {"host": "broker1", "pct": 10}),
                         {"broker1"})
        self.assertEqual(nemesis.claims("delay-client-replies", {"bursts_seed": 1}),
                         {"clients"})
        # a cut from the leader takes no process and no drop table
        self.assertEqual(nemesis.claims("cut-cart-from-leader", {"cart": "cart1"}), set())
        # what apply() returned counts once the fault runs
        self.assertEqual(nemesis.claims("kill-leader", {}, {"node": "broker2", "leader": 2}),
                         {"broker2"})


class RunTime(unittest.TestCase):
    def test_follower_companion_skips_the_taken_follower(self):
        for pick in (0.0, 0.3, 0.6, 0.9):
            c = FakeCluster(3, leader=1)
            n = nemesis_for(c)
            main = nemesis.Fault(1, "kill-random", 0, 3, {"replica": 2})
            targets, _ = n.apply(main)
            comp = nemesis.Fault(1, "pause-follower", 0, 3, {"pick": pick})
            got = n.apply(comp, nemesis.claims(main.kind, main.params, targets))
            self.assertIsNotNone(got)
            self.assertEqual(got[0]["node"], "broker3", "pick %s" % pick)
            self.assertEqual(c.log, [("kill", "broker2"), ("pause", "broker3")])

    def test_no_follower_left_skips(self):
        c = FakeCluster(3, leader=1)
        n = nemesis_for(c)
        got = n.apply(nemesis.Fault(1, "kill-follower", 0, 3, {"pick": 0.5}),
                      {"broker2", "broker3"})
        self.assertIsNone(got)
        self.assertEqual(c.log, [])
        self.assertEqual(len(n.skipped), 1)

    def test_companion_on_a_taken_daemon_is_skipped(self):
        c = FakeCluster(3, leader=1)
        n = nemesis_for(c)
        main = nemesis.Fault(1, "cart-kill", 0, 3, {"cart": "cart3"})
        targets, _ = n.apply(main)
        got = n.apply(nemesis.Fault(1, "cart-pause", 0, 3, {"cart": "cart3"}),
                      nemesis.claims(main.kind, main.params, targets))
        self.assertIsNone(got)
        self.assertEqual(c.log, [("kill", "cart3")])
        self.assertIn("cart3", n.skipped[0][1])

    def test_leader_taken_at_run_time(self):
        # kill-leader takes broker1 at run time; a companion drawn on broker1
        # by its params (kill-random 1) must not be applied on top of it
        c = FakeCluster(3, leader=1)
        n = nemesis_for(c)
        main = nemesis.Fault(1, "kill-leader", 0, 3, {})
        targets, _ = n.apply(main)
        got = n.apply(nemesis.Fault(1, "pause-random", 0, 3, {"replica": 1}),
                      nemesis.claims(main.kind, main.params, targets))
        self.assertIsNone(got)
        self.assertEqual(c.log, [("kill", "broker1")])


class SetAside(unittest.TestCase):
    """The membership fault sets a replica's data aside; with disk-full in
    the mix that directory is a tmpfs mount point, which rename() refuses
    (EBUSY: two harness errors of the campaign, seeds 1039 and 1045)."""

    @unittest.skipUnless(os.geteuid() == 0, "mounts a tmpfs: run as root (make test does)")
    def test_a_mounted_data_dir_is_emptied_into_dest(self):
        import shutil
        import subprocess
        import tempfile
        import disk
        root = tempfile.mkdtemp(prefix="zc-setaside-")
        data, dest = os.path.join(root, "data"), os.path.join(root, "data.removed-1")
        try:
            disk.mount(data, "4m")
            os.makedirs(os.path.join(data, "raft"))
            with open(os.path.join(data, "raft", "seg"), "w") as f:
                f.write("x" * 1000)
            disk.set_aside(data, dest)
            self.assertTrue(os.path.ismount(data))
            self.assertEqual(os.listdir(data), [])
            with open(os.path.join(dest, "raft", "seg")) as f:
                self.assertEqual(f.read(), "x" * 1000)
        finally:
            subprocess.run(["umount", "-l", data], check=False)
            shutil.rmtree(root, ignore_errors=True)

    def test_a_plain_dir_is_renamed(self):
        import tempfile
        import disk
        root = tempfile.mkdtemp(prefix="zc-setaside-")
        data, dest = os.path.join(root, "data"), os.path.join(root, "data.removed-1")
        os.makedirs(os.path.join(data, "state"))
        disk.set_aside(data, dest)
        self.assertFalse(os.path.exists(data))
        self.assertTrue(os.path.isdir(os.path.join(dest, "state")))


if __name__ == "__main__":
    unittest.main(verbosity=2)
