#!/usr/bin/python3
"""test_report: report.py turns a history into a page with three real plots.

A small synthetic history (two clients, an ok, a fail and an unknown
outcome, one fault window, a probe) written with history.History; the
report must draw timeline, latency and throughput PNGs with gnuplot, shade
the fault, and write a page that shows the verdict it was given. Then a
history with no verdict: the page says so instead of claiming validity.
"""

import json
import os
import shutil
import tempfile
import unittest

import history
import report

S = "ab" * 16


def write_history(d):
    h = history.History(os.path.join(d, "history.jsonl"))
    t = 1700000000.0
    h.invoke(1, "add", None, {"product": "apple", "qty": 1}, t=t)
    h.complete(1, {"ok": True, "op": "add", "session": S, "cart": "c.0", "generation": 1,
                   "items": [{"product": "apple", "qty": 1}], "reason": "OK"}, t=t + 0.01)
    h.nemesis("kill-leader", "start", {"node": "broker1"}, t=t + 1)
    h.invoke(2, "list", None, {}, t=t + 1.1)
    h.complete(2, {"ok": False, "op": "list", "reason": "UNREACHABLE", "detail": "x",
                   "in_doubt": False}, t=t + 2.5)
    h.invoke(1, "add", S, {"product": "pear", "qty": 1}, t=t + 1.2)
    h.complete(1, {"ok": False, "op": "add", "session": S, "reason": "OUT_OF_STOCK",
                   "cart": "c.0", "generation": 1, "items": [{"product": "apple", "qty": 1}]},
               t=t + 1.3)
    h.nemesis("kill-leader", "stop", {"node": "broker1"}, t=t + 3)
    h.healed(t=t + 3.1)
    h.close()


class Report(unittest.TestCase):
    def setUp(self):
        self.d = tempfile.mkdtemp(prefix="zcart-report-")

    def tearDown(self):
        shutil.rmtree(self.d, ignore_errors=True)

    def test_page_and_plots(self):
        write_history(self.d)
        with open(os.path.join(self.d, "verdict.json"), "w") as f:
            json.dump({"valid": True, "invariants": {"I1": {"name": "one session per cart",
                                                            "ok": True, "violations": []}}}, f)
        path, err = report.report(self.d)
        self.assertIsNone(err)
        for png in ("timeline.png", "latency.png", "throughput.png"):
            p = os.path.join(self.d, "plots", png)
            with open(p, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n", png)
        with open(os.path.join(self.d, "plots", "plots.gp")) as f:
            self.assertIn('"kill-leader"', f.read())     # the fault window is labelled
        page = open(path).read()
        self.assertIn("valid</span>", page)
        self.assertIn("kill-leader", page)
        self.assertIn("one session per cart", page)
        with open(os.path.join(self.d, "plots", "throughput.dat")) as f:
            rows = [line.split() for line in f]
        self.assertEqual(sum(int(r[1]) for r in rows), 1)   # ok
        self.assertEqual(sum(int(r[2]) for r in rows), 1)   # fail
        self.assertEqual(sum(int(r[3]) for r in rows), 1)   # info

    def test_no_verdict_is_not_valid(self):
        write_history(self.d)
        path, err = report.report(self.d)
        self.assertIn("no verdict", open(path).read())


if __name__ == "__main__":
    unittest.main(verbosity=2)
