#!/usr/bin/python3
"""test_clockshim: the clock-jump fault's LD_PRELOAD shim (clockshim.c).

Builds the shim as cluster.py does, then runs a small Python probe under it
that prints its wall clock (time.time: clock_gettime(CLOCK_REALTIME)),
time.time_ns and its monotonic clock, next to the real ones taken by this
process around it:

- no offset file, or 0 in it: the real wall clock;
- +3600000 and -5000 ms: the wall clock moved by that much (within the
  probe's start-up time);
- the file rewritten while the probe runs: the new offset is in force
  within the shim's 50 ms re-read period;
- the monotonic clock is never moved.
"""

import os
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))

PROBE = r"""
import sys, time
print(time.time(), time.monotonic(), flush=True)
if len(sys.argv) > 1:
    sys.stdin.readline()          # the test rewrote the offset file
    time.sleep(0.2)               # > the shim's 50 ms re-read period
    print(time.time(), time.monotonic(), flush=True)
"""


class ClockShim(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="zc-clockshim-")
        cls.so = os.path.join(cls.dir, "clockshim.so")
        subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o",
                        cls.so, os.path.join(HERE, "clockshim.c"), "-ldl"], check=True)
        cls.file = os.path.join(cls.dir, "offset_ms")

    @classmethod
    def tearDownClass(cls):
        subprocess.run(["rm", "-rf", cls.dir])

    def env(self):
        return dict(os.environ, LD_PRELOAD=self.so, ZCART_CLOCK_OFFSET_FILE=self.file)

    def set(self, ms):
        with open(self.file, "w") as f:
            f.write("%d\n" % ms)

    def probe(self):
        """(their wall - our wall, their mono - our mono), ours taken just
        before the probe starts; the probe's start-up time is in both."""
        wall0, mono0 = time.time(), time.monotonic()
        out = subprocess.run([sys.executable, "-c", PROBE], env=self.env(), check=True,
                             capture_output=True, text=True).stdout.split()
        return float(out[0]) - wall0, float(out[1]) - mono0

    def assertNear(self, got, want, slack=10.0):
        self.assertGreaterEqual(got, want - 0.5)
        self.assertLessEqual(got, want + slack)  # start-up time on a loaded machine

    def test_no_file_and_zero_are_the_real_clock(self):
        if os.path.exists(self.file):
            os.unlink(self.file)
        dw, dm = self.probe()
        self.assertNear(dw, 0)
        self.set(0)
        dw2, _ = self.probe()
        self.assertNear(dw2, 0)
        self.assertLess(abs(dw - dm), 1.0)

    def test_offsets_move_the_wall_clock_only(self):
        for ms in (3600000, -5000):
            self.set(ms)
            dw, dm = self.probe()
            self.assertNear(dw, ms / 1000.0)
            self.assertNear(dm, 0)  # monotonic: never moved

    def test_a_new_offset_takes_effect_while_running(self):
        self.set(0)
        p = subprocess.Popen([sys.executable, "-c", PROBE, "again"], env=self.env(),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        first = p.stdout.readline().split()
        self.set(-60000)
        p.stdin.write("go\n")
        p.stdin.flush()
        second = p.stdout.readline().split()
        p.wait(10)
        jumped = (float(second[0]) - float(first[0])) - (float(second[1]) - float(first[1]))
        self.assertLess(abs(jumped + 60.0), 1.0, "wall minus monotonic moved by -60 s")


if __name__ == "__main__":
    unittest.main()
