"""nemesis: a seeded schedule of faults, applied and healed one at a time.

Design
------
`make_schedule` turns (seed, kinds, duration, interval, fault lengths,
topology) into a list of faults, each with its start offset, its length and
every random choice it needs, drawn from random.Random(seed) and nothing
else: the same seed and options give the same schedule, printed at start
(`run.py --print-schedule` prints it without running).  Only who the leader
is at the moment a fault starts is decided at run time.

Timeline: quiet for one interval, then fault, heal, `--interval` seconds of
quiet, next fault, ... while a fault still ends before --duration.  Faults
never overlap.  In a mixed schedule the kinds come in shuffled rounds
(every kind once per round), so a short run still sees most of them.

Kinds (targets in brackets are chosen at run time):

    kill-leader            SIGKILL [the leader]; restart it at the heal
    kill-follower          SIGKILL one of [the followers] (pick drawn)
    kill-random            SIGKILL replica R
    pause-leader           SIGSTOP [the leader]; SIGCONT at the heal
    pause-random           SIGSTOP replica R
    partition-leader       cut [the leader] off from the other replicas
    partition-halves       replicas split into a minority and a majority; each
                           cart node, the stock and the clients land on a
                           drawn side; everything across is cut
    partition-bridge       replicas split in two halves that cannot talk,
                           except replica B, which sees both
    cut-cart-from-leader   cut cart node C off from [the leader] only
    cut-clients-from-leader  cut the clients' namespace off from [the leader]
    cart-kill / cart-pause   SIGKILL+restart / SIGSTOP+SIGCONT cart node C
    stock-kill / stock-pause the same for stock service S

A leader-relative fault that finds no ready leader within 10 s is skipped
(logged, not recorded).  Each applied fault is recorded in the history as
{"process": "nemesis", "type": "info", "f": KIND, "phase": "start",
"value": {targets}} once applied, and the same with "phase": "stop" once
healed; nemesis.log has a human-readable line for both.  Stopping the
nemesis heals the fault in progress at once; `heal_all` then makes sure
nothing is left: every paused daemon resumed, every dead one restarted,
every zcchaos table removed.
"""

import random
import threading
import time

KINDS = ["kill-leader", "kill-follower", "kill-random", "pause-leader", "pause-random",
         "partition-leader", "partition-halves", "partition-bridge", "cut-cart-from-leader",
         "cut-clients-from-leader", "cart-kill", "cart-pause", "stock-kill", "stock-pause"]


def parse_kinds(text):
    """'mixed' or a comma list of KINDS -> (list of kinds, mixed?)."""
    if text in ("mixed", "all", ""):
        return list(KINDS), True
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ValueError("unknown nemesis %s; known: mixed, %s" % (", ".join(bad), ", ".join(KINDS)))
    return kinds, len(kinds) > 1


class Fault:
    def __init__(self, n, kind, at, duration, params):
        self.n = n                # 1-based number in the schedule
        self.kind = kind
        self.at = at              # start offset from the run's start, s
        self.duration = duration  # s between start and heal
        self.params = params      # every drawn choice

    def describe(self):
        p = " ".join("%s=%s" % (k, v) for k, v in sorted(self.params.items()))
        return "#%d at %6.1fs for %4.1fs  %-24s %s" % (self.n, self.at, self.duration, self.kind, p)

    def to_json(self):
        return {"n": self.n, "kind": self.kind, "at": self.at, "duration": self.duration,
                "params": self.params}


def make_schedule(seed, kinds, duration, interval, fault_min, fault_max, replicas, carts, stocks):
    rng = random.Random(seed)
    sched = []
    t = float(interval)
    pool = []
    while True:
        if not pool:
            pool = list(kinds)
            rng.shuffle(pool)
        kind = pool.pop()
        d = round(rng.uniform(fault_min, fault_max), 1)
        if t + d > duration:
            break
        p = {}
        if kind in ("kill-follower",):
            p["pick"] = round(rng.random(), 3)
        elif kind in ("kill-random", "pause-random"):
            p["replica"] = rng.choice(replicas)
        elif kind == "partition-halves":
            reps = list(replicas)
            rng.shuffle(reps)
            k = (len(reps) - 1) // 2 or 1
            p["minority"] = sorted(reps[:k])
            p["majority"] = sorted(reps[k:])
            p["sides"] = {x: rng.choice(["minority", "majority"])
                          for x in list(carts) + list(stocks) + ["clients"]}
        elif kind == "partition-bridge":
            b = rng.choice(replicas)
            rest = [r for r in replicas if r != b]
            rng.shuffle(rest)
            h = max(1, len(rest) // 2)
            p["bridge"] = b
            p["left"] = sorted(rest[:h])
            p["right"] = sorted(rest[h:])
        elif kind in ("cut-cart-from-leader", "cart-kill", "cart-pause"):
            p["cart"] = rng.choice(carts)
        elif kind in ("stock-kill", "stock-pause"):
            p["stock"] = rng.choice(stocks)
        sched.append(Fault(len(sched) + 1, kind, round(t, 1), d, p))
        t += d + interval
    return sched


class Nemesis(threading.Thread):
    def __init__(self, cluster, net, history, schedule, t0, log_file, echo=print):
        super().__init__(name="nemesis", daemon=True)
        self.cluster = cluster
        self.net = net
        self.history = history
        self.schedule = schedule
        self.t0 = t0              # time.monotonic() of the run's start
        self.log_file = log_file
        self.echo = echo
        self.stopping = threading.Event()
        self.done = []            # (fault, targets) applied and healed
        self.skipped = []         # (fault, why)
        self.errors = []          # harness errors while applying or healing
        self.current = None       # (fault, undo) while a fault is on
        self._lock = threading.Lock()

    def log(self, msg):
        line = "T+%7.1fs %s" % (time.monotonic() - self.t0, msg)
        with self._lock:
            self.log_file.write(line + "\n")
            self.log_file.flush()
        self.echo("nemesis: " + line)

    def record(self, fault, phase, value):
        self.history.append({"t": time.time(), "process": "nemesis", "type": "info",
                             "f": fault.kind, "phase": phase, "value": value})

    # -- one fault --
    def _leader(self):
        return self.cluster.wait_leader(10.0)

    def _kill(self, name):
        d = self.cluster.daemon(name)
        with self.cluster.lock:
            pid = d.pid
            d.kill()
        return {"node": name, "pid": pid}, lambda: self.cluster.restart(name)

    def _pause(self, name):
        d = self.cluster.daemon(name)
        with self.cluster.lock:
            d.pause()

        def undo():
            with self.cluster.lock:
                if d.state() == "paused":
                    d.resume()
        return {"node": name, "pid": d.pid}, undo

    def _partition(self, left, right, extra):
        self.net.cut_groups(left, right)
        self.net.apply()
        v = dict(extra)
        v.update({"left": sorted(left), "right": sorted(right)})
        return v, self.net.heal

    def apply(self, f):
        """Apply fault f; (targets, undo) or None if skipped (logged)."""
        c = self.cluster
        b = c.broker_name
        k = f.kind
        if k in ("kill-leader", "pause-leader", "partition-leader", "cut-cart-from-leader",
                 "cut-clients-from-leader", "kill-follower"):
            leader = self._leader()
            if leader is None:
                self.skipped.append((f, "no ready leader"))
                self.log("skip %s: no ready leader within 10 s" % f.kind)
                return None
        if k == "kill-leader":
            v, undo = self._kill(b(leader))
            v["leader"] = leader
        elif k == "kill-follower":
            followers = [r for r in c.replica_ids() if r != leader]
            r = followers[int(f.params["pick"] * len(followers)) % len(followers)]
            v, undo = self._kill(b(r))
            v["leader"] = leader
        elif k == "kill-random":
            v, undo = self._kill(b(f.params["replica"]))
        elif k == "pause-leader":
            v, undo = self._pause(b(leader))
            v["leader"] = leader
        elif k == "pause-random":
            v, undo = self._pause(b(f.params["replica"]))
        elif k == "partition-leader":
            others = [b(r) for r in c.replica_ids() if r != leader]
            v, undo = self._partition([b(leader)], others, {"leader": leader})
        elif k == "partition-halves":
            left = [b(r) for r in f.params["minority"]]
            right = [b(r) for r in f.params["majority"]]
            for name, side in sorted(f.params["sides"].items()):
                (left if side == "minority" else right).append(name)
            v, undo = self._partition(left, right, {})
        elif k == "partition-bridge":
            v, undo = self._partition([b(r) for r in f.params["left"]],
                                      [b(r) for r in f.params["right"]],
                                      {"bridge": b(f.params["bridge"])})
        elif k == "cut-cart-from-leader":
            v, undo = self._partition([f.params["cart"]], [b(leader)], {"leader": leader})
        elif k == "cut-clients-from-leader":
            v, undo = self._partition(["clients"], [b(leader)], {"leader": leader})
        elif k == "cart-kill":
            v, undo = self._kill(f.params["cart"])
        elif k == "cart-pause":
            v, undo = self._pause(f.params["cart"])
        elif k == "stock-kill":
            v, undo = self._kill(f.params["stock"])
        elif k == "stock-pause":
            v, undo = self._pause(f.params["stock"])
        else:
            raise ValueError("unknown fault %s" % k)
        return v, undo

    def run(self):
        for f in self.schedule:
            wait = self.t0 + f.at - time.monotonic()
            if wait > 0 and self.stopping.wait(wait):
                break
            if self.stopping.is_set():
                break
            try:
                got = self.apply(f)
            except Exception as e:  # noqa: BLE001 -- reported, then healed by heal_all
                self.errors.append("applying %s: %r" % (f.describe(), e))
                self.log("ERROR applying %s: %r" % (f.kind, e))
                continue
            if got is None:
                continue
            targets, undo = got
            self.current = (f, undo, targets)
            self.record(f, "start", targets)
            self.log("start %s %s" % (f.kind, targets))
            self.stopping.wait(f.duration)
            self._heal_current()

    def _heal_current(self):
        cur, self.current = self.current, None
        if cur is None:
            return
        f, undo, targets = cur
        try:
            undo()
        except Exception as e:  # noqa: BLE001
            self.errors.append("healing %s: %r" % (f.describe(), e))
            self.log("ERROR healing %s: %r" % (f.kind, e))
        self.record(f, "stop", targets)
        self.log("stop  %s %s" % (f.kind, targets))
        self.done.append((f, targets))

    def stop(self, timeout=60):
        """Stop scheduling; heal the fault in progress (by the thread, which
        wakes up at once); wait for it."""
        self.stopping.set()
        self.join(timeout)
        if self.is_alive():
            self.errors.append("nemesis thread did not stop within %.0f s" % timeout)


def heal_all(cluster, net, log):
    """Make sure nothing is left broken: resume paused daemons, restart dead
    ones, remove every partition.  The actions taken."""
    actions = []
    if net.rules():
        net.heal()
        actions.append("removed partitions")
    for d in cluster.daemons.values():
        with cluster.lock:
            st = d.state()
            if st == "paused":
                d.resume()
                actions.append("resumed %s" % d.name)
            elif st == "dead":
                d.start()
                actions.append("restarted %s" % d.name)
    for a in actions:
        log("heal_all: %s" % a)
    return actions
