#!/usr/bin/python3
"""test_coverage: coverage counts from daemon logs, and the nemesis schedule.

    python3 tests/chaos/test_coverage.py [-v]

No processes, no network: log lines are the daemons' own formats (cart/node.c,
broker/*.c), written to a temporary run directory; schedules come from
nemesis.make_schedule.
"""

import contextlib
import io
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import coverage  # noqa: E402
import nemesis  # noqa: E402

CART_LOG = """\
=== chaos 2026-12-02T12:00:00: start #1 in zc-c1: zcart-cart ...
2026-12-02T12:00:01.000Z cart1 INFO  cart cart1.1 session aacc1074 seq 17: replayed the stored answer
2026-12-02T12:00:01.100Z cart1 INFO  cart cart1.1 session aacc1074 seq 18: joined the add in flight
2026-12-02T12:00:01.200Z cart1 WARN  cart cart1.2 refused session 3f2a9c01 gen 4 seq 9: generation already reset
2026-12-02T12:00:01.300Z cart1 INFO  cart cart1.1 session aacc1074 seq 19: add refused after the check: generation already reset
2026-12-02T12:00:01.400Z cart1 INFO  cart cart1.3: ignored a reset of gen 5 (a newer owner holds it)
2026-12-02T12:00:01.500Z cart1 INFO  cart cart1.3 emptied (gen 7)
"""
BROKER_LOG = """\
2026-12-02T12:00:02.000Z broker1 INFO  NOT_LEADER: client redirected to tcp://10.77.0.12:7021
2026-12-02T12:00:02.000Z broker1 INFO  NOT_LEADER: client redirected to unknown
2026-12-02T12:00:02.100Z broker1 INFO  session 3f2a9c01 told CART_LOST, now on cart cart2.0 gen 9
2026-12-02T12:00:02.200Z broker1 INFO  session 3f2a9c01 expired (no request for 20000 ms), cart cart2.0 gen 9 draining
2026-12-02T12:00:02.300Z broker1 WARN  cart cart1.0 lost (its node silent for 8000 ms): its session moved to cart2.0 gen 9
2026-12-02T12:00:02.400Z broker1 WARN  cart cart1.0 lost but no free cart to move its session to; retrying
2026-12-02T12:00:02.500Z broker1 WARN  cart cart1.0 breaker CLOSED -> OPEN (silent, trip 1)
2026-12-02T12:00:02.600Z broker1 INFO  cart cart1.0 breaker OPEN -> HALF_OPEN
"""


class Counts(unittest.TestCase):
    def rundir(self, logs):
        d = tempfile.mkdtemp(prefix="zc-coverage-")
        self.addCleanup(lambda: __import__("shutil").rmtree(d, ignore_errors=True))
        for name, text in logs.items():
            os.makedirs(os.path.join(d, name))
            with open(os.path.join(d, name, "log"), "w") as f:
                f.write(text)
        return d

    def test_every_counter_from_the_daemons_lines(self):
        d = self.rundir({"cart1": CART_LOG, "broker1": BROKER_LOG, "stock1": CART_LOG})
        c = coverage.from_logs(d)
        self.assertEqual(c, {"dedup_replays": 1, "inflight_joins": 1, "fence_refusals": 2, "reset_fences": 1,
                             "stale_resets": 1, "not_leader": 2, "cart_lost": 1, "expiries": 1,
                             "reassignments": 1, "breaker_trips": 1})
        self.assertEqual(coverage.zeros(c), coverage.HIST_NAMES)  # no history here

    def test_cart_lines_in_a_broker_log_do_not_count(self):
        d = self.rundir({"broker2": CART_LOG, "cart1": BROKER_LOG})
        self.assertEqual(coverage.zeros(coverage.from_logs(d)),
                         coverage.NAMES + coverage.HIST_NAMES)

    def test_history_counts_retries_and_deciders(self):
        recs = [{"type": "ok", "answer": {"attempts": 2, "replica_id": 1, "term": 3}},
                {"type": "fail", "answer": {"attempts": 1, "replica_id": 2, "term": 4}},
                {"type": "info", "answer": {"attempts": 5}},
                {"type": "invoke"}]
        h = coverage.from_history(recs)
        self.assertEqual(h, {"retried_ops": 1, "closed_keepalives": 0, "idle_sessions": 0,
                             "decided_terms": {"1@3": 1, "2@4": 1}})

    def test_history_counts_closed_keepalives_and_idle_sessions(self):
        def done(t, f, sess, reason="OK"):
            return {"t": t, "type": "ok" if reason == "OK" else "fail", "f": f,
                    "session": sess, "answer": {"reason": reason, "attempts": 1}}
        recs = [done(100.0, "add", "a"), done(105.0, "keepalive", "a"),
                done(112.0, "keepalive", "a"), done(125.5, "list", "a"),   # idle 25.5 s: counted
                done(100.0, "add", "b"), done(119.0, "list", "b"),         # 19 s: not idle
                done(150.0, "list", "b", "SESSION_EXPIRED"),               # not OK: not counted
                done(126.0, "close", "a"), done(127.0, "keepalive", "a", "SESSION_CLOSED")]
        h = coverage.from_history(recs)
        self.assertEqual((h["closed_keepalives"], h["idle_sessions"]), (1, 1))

    def test_campaign_totals_fail_on_a_zero(self):
        full = self.rundir({"cart1": CART_LOG, "broker1": BROKER_LOG})
        with open(os.path.join(full, "history.jsonl"), "w") as f:
            for t, typ, fn, reason, tries in ((100.0, "ok", "add", "OK", 2),
                                             (125.0, "ok", "list", "OK", 1),
                                             (126.0, "ok", "close", "OK", 1),
                                             (127.0, "fail", "keepalive", "SESSION_CLOSED", 1)):
                f.write(json.dumps({"t": t, "type": typ, "f": fn, "session": "a",
                                    "answer": {"reason": reason, "attempts": tries}}) + "\n")
        part = self.rundir({"broker1": BROKER_LOG})
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            self.assertEqual(coverage.main([full, part]), 0)
            self.assertEqual(coverage.main([part]), 1)
            self.assertEqual(coverage.main([part, "--allow-zero"]), 0)
        self.assertIn("ZERO: dedup_replays, inflight_joins, fence_refusals, reset_fences, stale_resets",
                      out.getvalue())


class Schedules(unittest.TestCase):
    ARGS = dict(duration=600, interval=3, fault_min=3, fault_max=8, replicas=[1, 2, 3],
                carts=["cart1", "cart2"], stocks=["stock1"])

    def sched(self, seed, kinds=None, **kw):
        args = dict(self.ARGS, **kw)
        return nemesis.make_schedule(seed, kinds or nemesis.KINDS, args.pop("duration"),
                                     args.pop("interval"), args.pop("fault_min"),
                                     args.pop("fault_max"), args.pop("replicas"),
                                     args.pop("carts"), args.pop("stocks"), **args)

    def test_same_seed_same_schedule(self):
        a = [f.to_json() for f in self.sched(7, overlap=0.5)]
        b = [f.to_json() for f in self.sched(7, overlap=0.5)]
        self.assertEqual(a, b)
        self.assertNotEqual(a, [f.to_json() for f in self.sched(8, overlap=0.5)])

    def test_every_kind_appears_and_overlaps_are_never_two_partitions(self):
        s = self.sched(3, overlap=0.5)
        self.assertEqual({f.kind for f in s}, set(nemesis.KINDS))
        pairs = [f for f in s if f.companion]
        self.assertGreater(len(pairs), 5)
        for f in pairs:
            self.assertIn(f.companion.kind, nemesis.COMPANIONS)
            self.assertNotEqual(f.companion.kind, f.kind)
            self.assertEqual((f.companion.at, f.companion.duration), (f.at, f.duration))
        self.assertFalse(any(f.companion for f in self.sched(3)))

    def test_split_brain_outlasts_the_session_ttl_with_clients_in_the_minority(self):
        s = [f for f in self.sched(5, kinds=["split-brain"])]
        self.assertTrue(s)
        for f in s:
            self.assertGreater(f.duration, 20.0)   # --session-ttl 20000 in cluster.py
            sides = f.params["sides"]
            self.assertEqual(sides["clients"], "minority")
            self.assertEqual(sum(1 for k, v in sides.items()
                                 if k.startswith("cart") and v == "minority"), 1)
            self.assertLess(len(f.params["minority"]), len(f.params["majority"]))

    def test_short_stalls_stay_inside_the_request_deadline(self):
        for f in self.sched(9, kinds=["stale-leader", "cart-stall", "stale-requests"]):
            self.assertGreaterEqual(f.duration, 2.5)
            self.assertLess(f.duration, 5.0)   # the 5 s request deadline (libzcart budget)

    def test_five_replicas(self):
        s = self.sched(2, kinds=["partition-halves", "kill-random"], replicas=[1, 2, 3, 4, 5])
        for f in s:
            if f.kind == "partition-halves":
                self.assertEqual(len(f.params["minority"]), 2)
                self.assertEqual(len(f.params["majority"]), 3)


if __name__ == "__main__":
    unittest.main()
