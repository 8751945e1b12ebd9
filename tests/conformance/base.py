"""Shared pieces of the conformance tests: a cluster per test class, the
leader's endpoint from `status` (section 3.1), condition waits."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import zcp                      # noqa: E402
import zclient                  # noqa: E402
import zcluster                 # noqa: E402
from zcluster import wait_until  # noqa: E402,F401


def now_ms():
    return int(time.time() * 1000)


def failed_here(test, result):
    """Did `test` (or one of its subtests) fail or error in `result`?"""
    for t, _ in result.failures + result.errors:
        if t is test or getattr(t, "test_case", None) is test:
            return True
    return False


class ClusterCase(unittest.TestCase):
    """One real cluster for the whole class (CLUSTER holds Cluster kwargs)."""

    CLUSTER = {}
    cluster = None

    @classmethod
    def setUpClass(cls):
        cls.cluster = zcluster.Cluster(**cls.CLUSTER).up()
        cls.client = zclient.Client(cls.cluster.client_eps)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        failed = getattr(cls, "_failed", False)
        cls.cluster.down(keep=failed)
        if failed:
            print("cluster data kept in", cls.cluster.dir, file=sys.stderr)

    def run(self, result=None):
        r = super().run(result)
        if result is not None and failed_here(self, result):
            type(self)._failed = True
        return r

    def setUp(self):
        self.sessions = []

    def tearDown(self):
        for s in self.sessions:       # give every cart back
            try:
                s.close(total=5)
            except zclient.NoAnswer:
                pass

    # ------------------------------------------------------------ helpers
    def session(self):
        s = zclient.Session(self.client)
        self.sessions.append(s)
        return s

    def status(self, ep):
        return self.client.status(ep)

    def leader(self, timeout=15):
        """Client endpoint of the ready leader (section 3.1 `role`, `ready`)."""
        def find():
            for ep in self.cluster.client_eps:
                p = self.status(ep)
                if p and p.get("role") == "leader" and p.get("ready") == "1":
                    return ep
            return None
        return wait_until(find, timeout, "a ready leader")

    def followers(self):
        ld = self.leader()
        return [ep for ep in self.cluster.client_eps if ep != ld]

    def leader_status(self):
        return self.status(self.leader())

    def wait_free(self, n, timeout=10):
        """Wait until the leader reports n free carts and no draining one."""
        def ok():
            p = self.leader_status()
            return p and int(p["carts_free"]) == n and int(p["carts_draining"]) == 0
        wait_until(ok, timeout, "%d free carts" % n)

    def assertStatus(self, reply, name, msg=None):
        got = zcp.status_name(reply["status"])
        self.assertEqual(got, name, msg or "reply %r" % (reply,))


def main():
    unittest.main(verbosity=2)
