#!/usr/bin/python3
"""test_cluster_tool: zcart-cluster's --http port reservations, without daemons.

Design
------
Two clusters planned at the same moment (tests in parallel) used to be
able to pick the same free --http port before either daemon bound it:
zcart-stock once failed "cannot listen (in use?)" that way.  The tool now
reserves each port it picks (a file named after the port, created
exclusively, naming the run directory).

t1. A port reserved by one run directory is refused to another, granted
    again to its owner, and taken over once the owner's directory is gone.
t2. free_http_port never hands out a port another directory holds: with
    every port of the range but two reserved by someone else, two plans
    made one after the other get those two, distinct.
t3. Planners at the same moment never share a port: four processes at a
    time (released together by a barrier) reserve one port whose
    reservation is stale, 200 times over; each time exactly one of them
    gets it.  Without the lock around the take-over, two planners could both
    find it stale and both hold it: a test run failed "cannot listen (in
    use?)" that way, and without the lock this test fails in several of
    its 200 rounds.
"""

import importlib.machinery
import importlib.util
import multiprocessing
import os
import shutil
import socket
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(HERE, "..", "..", "deploy", "local", "zcart-cluster")


def load_tool():
    loader = importlib.machinery.SourceFileLoader("zcart_cluster_tool", TOOL)
    spec = importlib.util.spec_from_loader(loader.name, loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def bindable(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class ClusterTool(unittest.TestCase):
    def setUp(self):
        self.tool = load_tool()
        self.root = tempfile.mkdtemp(prefix="zcart-tool-test-")
        self.addCleanup(shutil.rmtree, self.root, True)
        self.tool.HTTP_RESERVED = os.path.join(self.root, "reserved")

    def test_t1_reserved_refused_to_others_until_owner_gone(self):
        a, b = os.path.join(self.root, "a"), os.path.join(self.root, "b")
        self.assertTrue(self.tool.reserve_http_port(61001, a))
        self.assertFalse(self.tool.reserve_http_port(61001, b))
        self.assertTrue(self.tool.reserve_http_port(61001, a))  # its owner again
        shutil.rmtree(a)
        self.assertTrue(self.tool.reserve_http_port(61001, b))  # stale: taken over
        self.assertFalse(self.tool.reserve_http_port(61001, a))

    def test_t2_free_port_skips_reserved_ones(self):
        other = os.path.join(self.root, "other")
        lo, hi = 64000, 64099
        self.tool.HTTP_PORTS = (lo, hi)
        spare = set([p for p in range(lo, hi + 1) if bindable(p)][:2])
        self.assertEqual(len(spare), 2, "no two bindable ports in %d..%d" % (lo, hi))
        for port in range(lo, hi + 1):
            if port not in spare:
                self.assertTrue(self.tool.reserve_http_port(port, other))
        got = {self.tool.free_http_port(os.path.join(self.root, "p1")),
               self.tool.free_http_port(os.path.join(self.root, "p2"))}
        self.assertEqual(got, spare)
        with self.assertRaises(self.tool.ClusterError):
            self.tool.free_http_port(os.path.join(self.root, "p3"))

    def test_t3_planners_at_once_never_share_a_port(self):
        ctx = multiprocessing.get_context("fork")
        gone = os.path.join(self.root, "gone")  # an owner whose directory is gone
        os.makedirs(self.tool.HTTP_RESERVED)
        racers, rounds = 4, 200
        ready, go, results = ctx.Barrier(racers), ctx.Barrier(racers), ctx.Queue()

        def racer(i):
            for rnd in range(rounds):
                port = 61000 + rnd
                if i == 0:  # the port's reservation: stale
                    with open(os.path.join(self.tool.HTTP_RESERVED, str(port)), "w") as f:
                        f.write(gone + "\n")
                ready.wait()
                got = self.tool.reserve_http_port(port, os.path.join(self.root, "r%d-%d" % (rnd, i)))
                results.put((rnd, i, got))
                go.wait()  # nobody starts the next round before all are done

        procs = [ctx.Process(target=racer, args=(i,)) for i in range(racers)]
        for p in procs:
            p.start()
        winners = {rnd: [] for rnd in range(rounds)}
        for _ in range(racers * rounds):
            rnd, i, got = results.get(timeout=60)
            if got:
                winners[rnd].append(i)
        for p in procs:
            p.join(30)
            self.assertEqual(p.exitcode, 0)
        shared = {61000 + rnd: w for rnd, w in winners.items() if len(w) != 1}
        self.assertEqual(shared, {}, "ports granted to other than exactly one planner")
        for rnd, w in winners.items():
            with open(os.path.join(self.tool.HTTP_RESERVED, str(61000 + rnd))) as f:
                self.assertEqual(f.read().strip(), os.path.join(self.root, "r%d-%d" % (rnd, w[0])))

if __name__ == "__main__":
    unittest.main(verbosity=2)
