#!/usr/bin/python3
"""coverage: how often a chaos run drove the daemons down their recovery paths.

    coverage.py RUNDIR [RUNDIR...] [--json] [--allow-zero]

A valid verdict cannot tell "correct" from "never exercised": a run in which
no retry ever met a stored answer says nothing about deduplication.  So
every run counts the recovery-path events the daemons report, one log line
per event (the daemons log at info level; their logs, RUNDIR/NAME/log, are
appended across restarts, so a killed daemon's events still count):

    counter          daemon  log line (a regex on the line)            the path
    dedup_replays    cart    "replayed the stored answer"              a retried (session, seq) got
                                                                       the stored answer
    inflight_joins   cart    "joined the add in flight"                a retry joined an add whose
                                                                       stock check was still out
    fence_refusals   cart    "refused session" / "add refused after    a stale (session, generation)
                             the check"                                was refused (FENCED)
    reset_fences     cart    "refused session ...: generation already  a request of a generation the
                             reset"                                    cart already reset (a subset
                                                                       of fence_refusals)
    stale_resets     cart    "ignored a reset of gen"                  a reset older than the slot's
                                                                       owner was ignored
    not_leader       broker  "NOT_LEADER: client redirected"           a request reached a replica
                                                                       that was not the leader
    cart_lost        broker  "told CART_LOST"                          a moved session was told
    expiries         broker  "expired (no request for"                 a session's lease ran out
    reassignments    broker  "lost (its node silent ... moved to"      a lost cart's session moved
    breaker_trips    broker  "breaker ... -> OPEN"                     a cart's breaker opened

Broker lines are logged by the replica that proposed the change, once it
committed, so a reassignment is counted once, not once per replica.

From the history it also counts client-side evidence: `retried_ops`
(answers that took more than one try, from the answer's `attempts`) and
the answers per deciding (replica, term) (`decided_terms`).

A campaign (several runs) passes coverage only if every counter's total
is non-zero (`zeros()`); the command exits 1 otherwise, unless
--allow-zero.  A single run reports its zeros without failing on them.
"""

import argparse
import glob
import json
import os
import re
import sys

# (name, daemon kind, regex, what it means) -- the order of every table.
COUNTERS = [
    ("dedup_replays", "cart", re.compile(r"replayed the stored answer"),
     "retries answered from the dedup record"),
    ("inflight_joins", "cart", re.compile(r"joined the add in flight"),
     "retries joined to an add in flight"),
    ("fence_refusals", "cart", re.compile(r"refused session|add refused after the check"),
     "stale requests refused by a cart (FENCED)"),
    ("reset_fences", "cart", re.compile(r"refused session .*: generation already reset"),
     "requests of a generation already reset refused (FENCED at the request)"),
    ("stale_resets", "cart", re.compile(r"ignored a reset of gen"),
     "stale resets ignored by a cart"),
    ("not_leader", "broker", re.compile(r"NOT_LEADER: client redirected"),
     "requests redirected by a non-leader"),
    ("cart_lost", "broker", re.compile(r"told CART_LOST"),
     "sessions told CART_LOST"),
    ("expiries", "broker", re.compile(r"expired \(no request for"),
     "session leases expired"),
    ("reassignments", "broker", re.compile(r"lost \(its node silent .*moved to"),
     "lost carts' sessions moved"),
    ("breaker_trips", "broker", re.compile(r"breaker \S+ -> OPEN"),
     "cart breakers opened"),
]
NAMES = [c[0] for c in COUNTERS]
# Counts from the history (client-side evidence); each must be non-zero over
# a campaign too.
HIST_NAMES = ["retried_ops", "closed_keepalives", "idle_sessions"]
SESSION_TTL_S = 20.0  # the chaos brokers' --session-ttl (cluster.py)


def _kind_of(name):
    for k in ("broker", "cart", "stock"):
        if name.startswith(k):
            return k
    return None


def count_lines(lines, kind):
    """Counts of the counters of daemon kind `kind` in an iterable of log lines."""
    out = {n: 0 for n, k, _, _ in COUNTERS if k == kind}
    pats = [(n, rx) for n, k, rx, _ in COUNTERS if k == kind]
    for line in lines:
        for n, rx in pats:
            if rx.search(line):  # a line may count for several (reset_fences are fences too)
                out[n] += 1
    return out


def from_logs(rundir):
    """Counter totals over every daemon log of a run directory."""
    total = {n: 0 for n in NAMES}
    for path in sorted(glob.glob(os.path.join(rundir, "*", "log"))):
        kind = _kind_of(os.path.basename(os.path.dirname(path)))
        if kind is None:
            continue
        with open(path, "rb") as f:
            lines = (b.decode("utf-8", "replace") for b in f)
            for n, v in count_lines(lines, kind).items():
                total[n] += v
    return total


def from_history(records):
    """Client-side counts: retried_ops (answers after more than one try),
    closed_keepalives (a keepalive of a closed session answered
    SESSION_CLOSED), idle_sessions (sessions that answered OK after more
    than a session TTL without a request of their own: kept alive by
    keepalives alone), and answers per "replica@term"."""
    retried = closed_ka = 0
    terms = {}
    last = {}      # session -> completion time of its last non-keepalive op
    idle = set()
    for r in records:
        a = r.get("answer")
        if r.get("type") not in ("ok", "fail") or not isinstance(a, dict):
            continue
        sess, t, f = r.get("session"), r.get("t"), r.get("f")
        if f == "keepalive" and a.get("reason") == "SESSION_CLOSED":
            closed_ka += 1
        if sess and isinstance(t, (int, float)) and f != "keepalive":
            if r.get("type") == "ok" and sess in last and t - last[sess] > SESSION_TTL_S:
                idle.add(sess)
            last[sess] = t
        if (a.get("attempts") or 0) > 1:
            retried += 1
        if "term" in a:
            key = "%s@%s" % (a.get("replica_id"), a.get("term"))
            terms[key] = terms.get(key, 0) + 1
    return {"retried_ops": retried, "closed_keepalives": closed_ka,
            "idle_sessions": len(idle), "decided_terms": terms}


def gather(rundir, records=None):
    """Every count of one run: the daemon counters plus the history's."""
    c = from_logs(rundir)
    if records is None:
        path = os.path.join(rundir, "history.jsonl")
        records = []
        if os.path.exists(path):
            with open(path) as f:
                for line in f:
                    try:
                        records.append(json.loads(line))
                    except ValueError:
                        pass
    c.update(from_history(records))
    return c


def zeros(counts):
    """The counters (daemon and history) that are zero (or missing)."""
    return [n for n in NAMES + HIST_NAMES if not counts.get(n)]


def add(totals, counts):
    """Add one run's counts into a totals dict (in place); returns it."""
    for n in NAMES + HIST_NAMES:
        totals[n] = totals.get(n, 0) + (counts.get(n) or 0)
    return totals


def line(counts):
    """One-line form: name=N ... (daemon counters, then the history's)."""
    return " ".join("%s=%d" % (n, counts.get(n) or 0) for n in NAMES + HIST_NAMES)


def main(argv):
    p = argparse.ArgumentParser(prog="tests/chaos/coverage.py",
                                description="Recovery-path counts of chaos runs, and their "
                                            "totals; exit 1 if a total is zero.")
    p.add_argument("rundirs", nargs="+", metavar="RUNDIR")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--allow-zero", action="store_true",
                   help="exit 0 even if a counter's total is zero")
    a = p.parse_args(argv)
    runs, totals = [], {}
    for d in a.rundirs:
        c = gather(d)
        runs.append((d, c))
        add(totals, c)
    z = zeros(totals)
    if a.json:
        print(json.dumps({"runs": {d: c for d, c in runs}, "totals": totals, "zeros": z},
                         indent=2))
    else:
        w = max(len(n) for n in NAMES + HIST_NAMES)
        cols = [os.path.basename(os.path.normpath(d)) for d, _ in runs]
        print("%-*s  %s  %8s" % (w, "counter", "  ".join("%10.10s" % c for c in cols), "total"))
        for n in NAMES + HIST_NAMES:
            print("%-*s  %s  %8d" % (w, n, "  ".join("%10d" % (c.get(n) or 0) for _, c in runs),
                                      totals.get(n, 0)))
        print("coverage: %s" % ("every counter non-zero" if not z
                                else "ZERO: " + ", ".join(z)))
    return 1 if z and not a.allow_zero else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
