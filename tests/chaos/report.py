#!/usr/bin/python3
"""report: one chaos run as a page -- verdict, timeline, latency, throughput.

    report.py RUNDIR            writes RUNDIR/report.html and RUNDIR/plots/*.png

It reads RUNDIR/history.jsonl (tests/chaos/history.py) and, when present,
RUNDIR/verdict.json (the checker's) and RUNDIR/summary.json (the harness's),
and draws three plots with gnuplot (Debian's gnuplot-nox, pngcairo or png
terminal), every one with the nemesis's fault windows shaded and labelled:

  timeline.png    every client operation as a point at (completion time,
                  client), green ok, red fail (a definite KO), orange info
                  (unknown outcome); the post-heal probes on their own row
  latency.png     per one-second bucket of completion time, the p50, p99 and
                  max latency (invoke to completion) of the operations that
                  completed in it, log scale
  throughput.png  per second: ok, fail and info completions

Times on the x axis are seconds since the first record.  The page lists the
verdict (valid, each invariant with its violations), the run's counts, and
every fault with its window.  Nothing here decides validity: the checker
does; the report only shows.
"""

import html
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import coverage  # noqa: E402
import history  # noqa: E402

COLORS = {"ok": "#2e7d32", "fail": "#c62828", "info": "#ef6c00"}


def percentile(sorted_vals, p):
    """Nearest-rank percentile of an ascending list (p in 0..100)."""
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def fault_windows(records, t0, t_end):
    """[(start_s, stop_s, name)] from nemesis start/stop records."""
    active, out = {}, []
    for r in records:
        if r.get("process") != "nemesis":
            continue
        t = float(r["t"]) - t0
        f, phase = r.get("f"), r.get("phase")
        if f == "heal":
            for name, start in active.items():
                out.append((start, t, name))
            active.clear()
        elif phase == "start":
            active[f] = t
        elif phase == "stop" and f in active:
            out.append((active.pop(f), t, f))
    for name, start in active.items():
        out.append((start, t_end - t0, name))
    return sorted(out)


def write_data(d, ops, t0):
    """The gnuplot data files; returns (n_buckets, clients)."""
    clients = sorted({op.process for op in ops if not op.probe})
    row = {p: i + 1 for i, p in enumerate(clients)}
    probe_row = len(clients) + 1
    with open(os.path.join(d, "timeline.dat"), "w") as f:
        for kind in ("ok", "fail", "info"):
            f.write("# %s\n" % kind)
            for op in ops:
                if op.type == kind:
                    y = probe_row if op.probe else row[op.process]
                    f.write("%.3f %d\n" % (op.t_complete - t0, y))
            f.write("\n\n")
    buckets = {}
    for op in ops:
        b = int(op.t_complete - t0)
        buckets.setdefault(b, []).append(op)
    n = max(buckets) + 1 if buckets else 0
    with open(os.path.join(d, "latency.dat"), "w") as f, \
            open(os.path.join(d, "throughput.dat"), "w") as g:
        for b in range(n):
            group = buckets.get(b, [])
            lat = sorted(max(0.0, op.t_complete - op.t_invoke) * 1000.0 for op in group
                         if not op.unfinished)
            if lat:
                f.write("%d.5 %.3f %.3f %.3f\n" % (b, percentile(lat, 50), percentile(lat, 99),
                                                  lat[-1]))
            counts = {k: sum(1 for op in group if op.type == k) for k in ("ok", "fail", "info")}
            g.write("%d.5 %d %d %d\n" % (b, counts["ok"], counts["fail"], counts["info"]))
    return n, clients


def gnuplot(d, windows, n, clients):
    """Render the three PNGs; returns an error string or None."""
    shade = []
    for i, (a, b, name) in enumerate(windows):
        shade.append('set object %d rect from %.3f, graph 0 to %.3f, graph 1 '
                     'fc rgb "#90a4ae" fs transparent solid 0.25 noborder behind'
                     % (i + 1, a, max(b, a + 0.05)))
        shade.append('set label %d "%s" at %.3f, graph 0.98 rotate by 90 right font ",7" '
                     'tc rgb "#37474f"' % (i + 1, name.replace('"', ''), a + 0.1))
    shade = "\n".join(shade)
    xr = "set xrange [0:%d]" % max(n, 1)
    script = """
set terminal {term} size 1200,420
set grid
set key outside right top
set xlabel "seconds since the run started"
{xr}
{shade}
set output "timeline.png"
set title "operations by client (green ok, red fail, orange unknown; top row: post-heal probes)"
set ylabel "client"
set yrange [0:{rows}]
plot "timeline.dat" index 0 using 1:2 with points pt 7 ps 0.3 lc rgb "{ok}" title "ok", \\
     "" index 1 using 1:2 with points pt 7 ps 0.5 lc rgb "{fail}" title "fail", \\
     "" index 2 using 1:2 with points pt 7 ps 0.6 lc rgb "{info}" title "info"
set output "latency.png"
set title "latency per second of completion"
set ylabel "ms (log)"
set logscale y
set yrange [*:*]
plot "latency.dat" using 1:2 with linespoints pt 7 ps 0.4 title "p50", \\
     "" using 1:3 with linespoints pt 7 ps 0.4 title "p99", \\
     "" using 1:4 with linespoints pt 7 ps 0.4 title "max"
unset logscale y
set output "throughput.png"
set title "completions per second"
set ylabel "operations/s"
set yrange [0:*]
plot "throughput.dat" using 1:2 with steps lw 2 lc rgb "{ok}" title "ok", \\
     "" using 1:3 with steps lw 2 lc rgb "{fail}" title "fail", \\
     "" using 1:4 with steps lw 2 lc rgb "{info}" title "info"
""".format(term="{term}", xr=xr, shade=shade, rows=len(clients) + 2, **COLORS)
    for term in ("pngcairo", "png"):
        with open(os.path.join(d, "plots.gp"), "w") as f:
            f.write(script.replace("{term}", term))
        try:
            r = subprocess.run(["gnuplot", "plots.gp"], cwd=d, capture_output=True, text=True,
                               timeout=60)
        except (OSError, subprocess.TimeoutExpired) as e:
            return "gnuplot could not run: %s" % e
        if r.returncode == 0:
            return None
        err = r.stderr.strip()
    return "gnuplot failed: %s" % err


def page(rundir, verdict, summary, windows, counts, plot_error):
    """The HTML text."""
    e = html.escape
    out = ["<!doctype html><html><head><meta charset='utf-8'><title>zcart chaos run</title>",
           "<style>body{font-family:sans-serif;margin:2em;max-width:1300px}"
           "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;"
           "text-align:left;vertical-align:top}.ok{color:#2e7d32}.bad{color:#c62828}"
           "pre{white-space:pre-wrap;font-size:85%}</style></head><body>"]
    name = os.path.basename(os.path.abspath(rundir))
    if verdict is None:
        out.append("<h1>zcart chaos run %s: <span class='bad'>no verdict</span></h1>" % e(name))
    else:
        ok = verdict.get("valid") is True
        out.append("<h1>zcart chaos run %s: <span class='%s'>%s</span></h1>"
                   % (e(name), "ok" if ok else "bad", "valid" if ok else "INVALID"))
    if summary:
        out.append("<p>seed <b>%s</b> &middot; wall time %s s &middot; reproduce with "
                   "<code>tests/chaos/run.py --seed %s</code></p>"
                   % (e(str(summary.get("seed"))), e(str(summary.get("wall_s", "?"))),
                      e(str(summary.get("seed")))))
    out.append("<h2>Counts</h2><table>")
    for k, v in counts.items():
        out.append("<tr><th>%s</th><td>%s</td></tr>" % (e(k), e(str(v))))
    out.append("</table>")
    cov = (summary or {}).get("coverage") or coverage.gather(rundir)
    out.append("<h2>Coverage (recovery paths exercised)</h2><table>"
               "<tr><th>counter</th><th>count</th><th>what</th></tr>")
    for n, _, _, what in coverage.COUNTERS:
        v = cov.get(n) or 0
        out.append("<tr><td>%s</td><td class='%s'>%d</td><td>%s</td></tr>"
                   % (e(n), "ok" if v else "bad", v, e(what)))
    out.append("<tr><td>retried_ops</td><td>%d</td><td>answers that took more than one "
               "try</td></tr>" % (cov.get("retried_ops") or 0))
    terms = cov.get("decided_terms") or {}
    out.append("<tr><td>decided by</td><td colspan='2'>%s</td></tr>"
               % e(", ".join("replica %s: %d" % kv for kv in sorted(terms.items())) or "-"))
    out.append("</table>")
    if verdict and verdict.get("invariants"):
        out.append("<h2>Invariants</h2><table><tr><th>invariant</th><th>result</th>"
                   "<th>violations (first ones)</th></tr>")
        for key, inv in verdict["invariants"].items():
            ok = inv.get("ok")
            viol = inv.get("violations") or []
            out.append("<tr><td>%s %s</td><td class='%s'>%s</td><td><pre>%s</pre></td></tr>"
                       % (e(key), e(inv.get("name", "")), "ok" if ok else "bad",
                          "ok" if ok else "VIOLATED (%s)" % inv.get("violation_count", len(viol)),
                          e("\n".join(str(v) for v in viol[:10]))))
        out.append("</table>")
    out.append("<h2>Faults</h2><table><tr><th>fault</th><th>from (s)</th><th>to (s)</th></tr>")
    for a, b, nm in windows:
        out.append("<tr><td>%s</td><td>%.1f</td><td>%.1f</td></tr>" % (e(nm), a, b))
    out.append("</table>")
    out.append("<h2>Plots</h2>")
    if plot_error:
        out.append("<p class='bad'>%s</p>" % e(plot_error))
    for png, title in (("timeline.png", "timeline of operations and fault windows"),
                       ("latency.png", "latency p50 / p99 / max"),
                       ("throughput.png", "throughput")):
        out.append("<h3>%s</h3><img src='plots/%s' alt='%s'>" % (title, png, title))
    out.append("<p>Files: <a href='history.jsonl'>history.jsonl</a>, "
               "<a href='nemesis.log'>nemesis.log</a>, <a href='verdict.json'>verdict.json</a>"
               "</p></body></html>")
    return "\n".join(out)


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def report(rundir):
    """Write RUNDIR/report.html (and plots/); returns the page's path."""
    records = history.read_history(os.path.join(rundir, "history.jsonl"))
    ops = history.operations(records)
    times = [float(r["t"]) for r in records if isinstance(r.get("t"), (int, float))]
    t0, t_end = (min(times), max(times)) if times else (0.0, 0.0)
    d = os.path.join(rundir, "plots")
    os.makedirs(d, exist_ok=True)
    windows = fault_windows(records, t0, t_end)
    n, clients = write_data(d, ops, t0)
    err = gnuplot(d, windows, n, clients)
    counts = {"operations": len(ops), "clients": len(clients)}
    for k in ("ok", "fail", "info"):
        counts[k] = sum(1 for op in ops if op.type == k)
    counts["faults"] = len(windows)
    verdict = load_json(os.path.join(rundir, "verdict.json"))
    summary = load_json(os.path.join(rundir, "summary.json"))
    path = os.path.join(rundir, "report.html")
    with open(path, "w") as f:
        f.write(page(rundir, verdict, summary, windows, counts, err))
    return path, err


def main(argv):
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip().splitlines()[2].strip())
        return 2 if len(argv) != 2 else 0
    try:
        path, err = report(argv[1])
    except (OSError, history.MalformedHistory) as e:
        print("report: %s" % e, file=sys.stderr)
        return 2
    print("report: %s%s" % (path, " (plots: %s)" % err if err else ""))
    return 1 if err else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
