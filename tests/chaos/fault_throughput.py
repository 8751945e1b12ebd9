#!/usr/bin/python3
"""fault_throughput: OK completions per second inside and outside one fault
kind's windows of a kept chaos run (docs/chaos.md, "Throughput during a fault").

    python3 tests/chaos/fault_throughput.py RUNDIR [KIND]   (default cut-clients-from-leader)

Reads RUNDIR/nemesis.log (start/stop lines, seconds since the run began) and
RUNDIR/plots/throughput.dat (per second: time, ok, fail, info) and prints the
mean and the minimum of ok/s over the seconds inside the windows, and the
mean over the seconds more than 1 s away from any window.
"""

import os
import re
import sys


def windows(rundir, kind):
    out, start = [], None
    pat = re.compile(r"T\+\s*([\d.]+)s (start|stop)\s+(\S+)")
    with open(os.path.join(rundir, "nemesis.log")) as f:
        for line in f:
            m = pat.match(line)
            if m and m.group(3) == kind:
                if m.group(2) == "start":
                    start = float(m.group(1))
                elif start is not None:
                    out.append((start, float(m.group(1))))
                    start = None
    return out


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    rundir, kind = argv[1], argv[2] if len(argv) > 2 else "cut-clients-from-leader"
    wins = windows(rundir, kind)
    with open(os.path.join(rundir, "plots", "throughput.dat")) as f:
        rows = [tuple(map(float, line.split())) for line in f if line.strip()]
    inside = [r[1] for r in rows if any(a <= r[0] <= b for a, b in wins)]
    outside = [r[1] for r in rows if not any(a - 1 <= r[0] <= b + 1 for a, b in wins)]
    if not wins or not inside:
        print("no %s window in %s" % (kind, rundir))
        return 1
    print("%s: %d windows, %d s inside" % (kind, len(wins), len(inside)))
    print("ok/s inside:  mean %.1f, min %.0f" % (sum(inside) / len(inside), min(inside)))
    if outside:
        print("ok/s outside: mean %.1f (%d s)" % (sum(outside) / len(outside), len(outside)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
