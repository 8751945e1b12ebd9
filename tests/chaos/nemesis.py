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
never overlap, except a fault and its companion (--overlap).  In a mixed
schedule the kinds come in shuffled rounds (every kind once per round), so a
short run still sees most of them.

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
    pause-follower         SIGSTOP one of [the followers] (pick drawn)
    transfer-leader        `zcart admin transfer-leader` (from zc-ctl) under load,
                           once at the start; nothing to heal

Faults aimed at requests in flight and at recovery paths (docs/chaos.md):

    delay-cart-replies     bursts (on 1.0..1.25 s, off 0.6..1.5 s) in which cart
                           node C's packets to the brokers' cart port are
                           dropped: replies of requests it already applied
                           arrive after the client's 1 s try, so the retry
                           meets the stored answer (or joins the add in flight)
    delay-client-replies   the same bursts on every broker -> client packet
                           (dropped as they enter the clients' namespace)
    packet-loss            host H (a replica or a cart node) drops P% (10..30)
                           of its packets both ways (nft numgen random)
    cart-stall             SIGSTOP cart node C for 2.5..4.5 s only: requests
                           forwarded into the stall outlive the broker's 2 s
                           cart timeout (CART_UNAVAILABLE; the client may give
                           up and close, so a RESET queues behind them) but not
                           their 5 s deadline, so the cart still runs them on
                           SIGCONT -- an add's check then ends after the reset
                           (refused after the check), retries meet stored answers
    stale-requests         SIGSTOP cart node C and cut [the leader] off from the
                           other replicas, both for 4.0..4.6 s: the leader's
                           requests wait in C's socket for it while a new leader
                           takes the same sessions' retries to C, gives up on
                           them (2 s cart timeout), and -- when the client
                           closes -- queues a RESET behind them on its own
                           connection; on SIGCONT C reads both, and whichever
                           old request comes after the new leader's RESET is
                           stale (within its 5 s deadline): it must be FENCED
    stale-leader           SIGSTOP [the leader] for 2.5..4 s only: a new leader
                           is elected, sessions close and carts are reset and
                           reassigned while requests (within their 5 s
                           deadline) and resets wait in the old leader; then
                           SIGCONT, and it acts on them before it learns it
                           was deposed -- fencing and stale-reset paths
    disk-full              the data filesystem (disk.py: each replica's and cart
                           node's data directory is a tmpfs when this kind is in
                           the mix) of [the leader], one of [the followers] or
                           cart node C fills up for 6..10 s: a replica stops
                           with status 74 when a write needs a new block (the
                           harness tolerates exactly that exit, then restarts
                           it at the heal), a cart node refuses what it cannot
                           make durable and keeps running
    split-brain            replicas split into minority and majority for
                           24..30 s (past --cart-lost-after and the session
                           TTL): the clients and cart node C with the
                           minority, the rest with the majority, so the
                           majority loses carts, moves and expires sessions

--overlap P: each fault, with probability P, gets a companion fault of
another kind from COMPANIONS (no second partition) that starts with it and
is healed with it -- two faults at once.  One process (or one host's drop
table) is never given to two running faults: `claims` names what a fault
takes; the schedule redraws a companion whose drawn targets collide with
its fault's (at most 8 tries, else no companion), and at run time a
follower-picking companion picks among the followers the first fault left
alone, and a companion whose target the first fault took at run time (the
leader it killed, say) is skipped and logged.

A leader-relative fault that finds no ready leader within 10 s is skipped
(logged, not recorded).  Each applied fault is recorded in the history as
{"process": "nemesis", "type": "info", "f": KIND, "phase": "start",
"value": {targets}} once applied, and the same with "phase": "stop" once
healed; nemesis.log has a human-readable line for both.  Stopping the
nemesis heals the fault in progress at once; `heal_all` then makes sure
nothing is left: every paused daemon resumed, every dead one restarted,
every zcchaos table removed.
"""

import json
import os
import random
import subprocess
import threading
import time

import disk as diskmod

KINDS = ["kill-leader", "kill-follower", "kill-random", "pause-leader", "pause-random",
         "partition-leader", "partition-halves", "partition-bridge", "cut-cart-from-leader",
         "cut-clients-from-leader", "cart-kill", "cart-pause", "stock-kill", "stock-pause",
         "pause-follower", "delay-cart-replies", "delay-client-replies", "packet-loss",
         "stale-leader", "split-brain", "cart-stall", "transfer-leader", "stale-requests",
         "stale-fence", "reset-lost", "stale-reset", "clock-jump", "membership", "disk-full"]
# Scripted kinds: the nemesis drives a session of its own through the fault
# (its operations go into the history as processes OWN_PROCESSES) and records
# the fault's start itself, before its first step; never with a companion.
SCRIPTED = ("stale-fence", "reset-lost", "stale-reset", "membership")
OWN_PROCESSES = (9001, 9002)  # history process ids of the nemesis's own client operations
OWN_PRODUCT = "plum"
# Kinds that may run alongside another fault (none of them partitions).
COMPANIONS = ["pause-follower", "delay-cart-replies", "delay-client-replies", "packet-loss",
              "cart-pause", "stock-pause", "kill-follower"]
LEADER_KINDS = ("disk-full", "clock-jump", "membership", "stale-fence", "reset-lost", "stale-reset", "stale-requests", "transfer-leader", "kill-leader", "pause-leader", "partition-leader", "cut-cart-from-leader",
                "cut-clients-from-leader", "kill-follower", "pause-follower", "stale-leader")
RAFT_PORT, CART_PORT, CLIENT_PORT = 7011, 7031, 7021  # cluster.py's
ZC_EXIT_STORAGE = 74  # a replica's exit on a failed storage write (replication/io_guard.h)


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
        self.companion = None     # a Fault started and healed with this one (--overlap)

    def describe(self):
        p = " ".join("%s=%s" % (k, v) for k, v in sorted(self.params.items()))
        out = "#%d at %6.1fs for %4.1fs  %-24s %s" % (self.n, self.at, self.duration, self.kind, p)
        if self.companion:
            out += "  + " + self.companion.kind + " " + " ".join(
                "%s=%s" % kv for kv in sorted(self.companion.params.items()))
        return out

    def to_json(self):
        out = {"n": self.n, "kind": self.kind, "at": self.at, "duration": self.duration,
               "params": self.params}
        if self.companion:
            out["companion"] = self.companion.to_json()
        return out


def draw_params(rng, kind, replicas, carts, stocks):
    """The random choices fault `kind` needs (and a length override, or None)."""
    p, length = {}, None
    if kind in ("kill-follower", "pause-follower", "membership"):
        p["pick"] = round(rng.random(), 3)
    elif kind == "clock-jump":
        p["offset_s"] = round(rng.choice([1, -1]) * rng.uniform(6.0, 20.0), 1)
    elif kind in ("kill-random", "pause-random"):
        p["replica"] = rng.choice(replicas)
    elif kind in ("partition-halves", "split-brain"):
        reps = list(replicas)
        rng.shuffle(reps)
        k = (len(reps) - 1) // 2 or 1
        p["minority"] = sorted(reps[:k])
        p["majority"] = sorted(reps[k:])
        if kind == "partition-halves":
            p["sides"] = {x: rng.choice(["minority", "majority"])
                          for x in list(carts) + list(stocks) + ["clients"]}
        else:
            lost = rng.choice(carts)
            p["sides"] = {x: "minority" if x in (lost, "clients") else "majority"
                          for x in list(carts) + list(stocks) + ["clients"]}
            length = round(rng.uniform(24.0, 30.0), 1)
    elif kind == "partition-bridge":
        b = rng.choice(replicas)
        rest = [r for r in replicas if r != b]
        rng.shuffle(rest)
        h = max(1, len(rest) // 2)
        p["bridge"] = b
        p["left"] = sorted(rest[:h])
        p["right"] = sorted(rest[h:])
    elif kind in ("cut-cart-from-leader", "cart-kill", "cart-pause", "delay-cart-replies",
                  "cart-stall", "stale-requests"):
        p["cart"] = rng.choice(carts)
        if kind == "cart-stall":
            length = round(rng.uniform(2.5, 4.5), 1)
        elif kind == "stale-requests":
            length = round(rng.uniform(4.0, 4.6), 1)
    elif kind in ("stock-kill", "stock-pause"):
        p["stock"] = rng.choice(stocks)
    elif kind == "packet-loss":
        p["host"] = rng.choice(["broker%d" % r for r in replicas] + list(carts))
        p["pct"] = rng.randint(10, 30)
    elif kind == "stale-leader":
        length = round(rng.uniform(2.5, 4.0), 1)
    elif kind == "disk-full":
        p["who"] = rng.choice(["leader", "follower", "cart"])
        p["pick"] = round(rng.random(), 3)
        if p["who"] == "cart":
            p["cart"] = rng.choice(carts)
        length = round(rng.uniform(6.0, 10.0), 1)
    elif kind in SCRIPTED:
        length = 2.0  # quiet time after its steps (which take 3..6 s themselves)
    if kind in ("delay-cart-replies", "delay-client-replies"):
        p["bursts_seed"] = rng.randrange(1 << 30)
    return p, length


# Kinds whose drawn target is a process they kill, pause or stall, and kinds
# whose drawn target is a host whose drop table they own (net.drop replaces
# a namespace's whole table, so two of them on one host undo each other).
PROCESS_PARAMS = ("cart", "stock", "replica")
DROP_KINDS = ("delay-cart-replies", "delay-client-replies", "packet-loss")


def claims(kind, params, targets=None):
    """The daemons and hosts fault `kind` takes: from its drawn params, and
    from `targets` (what apply() returned) once it runs.  Names as in the
    cluster: broker<R>, cart node and stock names, "clients"."""
    out = set()
    for key in PROCESS_PARAMS:
        if key in params and kind != "cut-cart-from-leader":
            v = params[key]
            out.add("broker%d" % v if key == "replica" else v)
    if kind in DROP_KINDS:
        out.add(params.get("host") or params.get("cart") or "clients")
    for key in ("node", "host"):
        if targets and isinstance(targets.get(key), str):
            out.add(targets[key])
    return out


def make_schedule(seed, kinds, duration, interval, fault_min, fault_max, replicas, carts, stocks,
                  overlap=0.0):
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
        p, length = draw_params(rng, kind, replicas, carts, stocks)
        d = length or d
        if t + d > duration:
            break
        f = Fault(len(sched) + 1, kind, round(t, 1), d, p)
        if overlap > 0 and rng.random() < overlap and kind not in SCRIPTED:
            for _ in range(8):
                ck = rng.choice([k for k in COMPANIONS if k != kind])
                cp, _ = draw_params(rng, ck, replicas, carts, stocks)
                if not claims(ck, cp) & claims(kind, p):
                    f.companion = Fault(f.n, ck, f.at, d, cp)
                    break
        sched.append(f)
        t += d + interval
    return sched


class Bursts(threading.Thread):
    """Aimed drops switched on and off until stopped: on 1.0..1.25 s, off
    0.6..1.5 s, the lengths from the fault's own seed.  A packet dropped at
    the start of a burst is resent by TCP at about 0.2, 0.6 and 1.4 s, so it
    lands ~1.4 s late: after the client's 1 s try (the retry meets the
    stored answer) but inside the broker's 2 s cart timeout and the chaos
    cart liveness (2.5 s, cluster.py: TCP's resend backoff sometimes pushes
    a resend to ~3 s, and an open breaker would refuse the retries).
    stop() removes the drops."""

    def __init__(self, net, host, seed, input=(), output=()):
        super().__init__(name="bursts-" + host, daemon=True)
        self.net, self.host = net, host
        self.rng = random.Random(seed)
        self.input, self.output = list(input), list(output)
        self.done = threading.Event()
        self.bursts = 0

    def run(self):
        while not self.done.is_set():
            self.net.drop(self.host, input=self.input, output=self.output)
            self.bursts += 1
            if self.done.wait(self.rng.uniform(1.0, 1.25)):
                break
            self.net.undrop(self.host)
            self.done.wait(self.rng.uniform(0.6, 1.5))
        self.net.undrop(self.host)

    def stop(self):
        self.done.set()
        self.join(10)
        self.net.undrop(self.host)


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
        self.current = None       # (fault, undo, targets) while a fault is on
        self.current2 = None      # the same for its companion (--overlap)
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

    def _bursts(self, host, seed, input=(), output=()):
        b = Bursts(self.net, host, seed, input, output)
        b.start()
        return {"host": host}, b.stop

    def _partition(self, left, right, extra):
        self.net.cut_groups(left, right)
        self.net.apply()
        v = dict(extra)
        v.update({"left": sorted(left), "right": sorted(right)})
        return v, self.net.heal

    def _disk_full(self, f, leader, busy):
        c, b = self.cluster, self.cluster.broker_name
        if not c.disk_size:
            raise RuntimeError("disk-full needs the cluster's data tmpfs (Cluster disk_size)")
        who = f.params["who"]
        if who == "cart":
            name = f.params["cart"]
        elif who == "leader":
            name = b(leader)
        else:
            followers = [r for r in c.replica_ids() if r != leader]
            name = b(followers[int(f.params["pick"] * len(followers)) % len(followers)])
        if name in busy:
            self.skipped.append((f, "%s taken by another fault" % name))
            self.log("skip %s: %s taken by another fault" % (f.kind, name))
            return None
        d = c.daemon(name)
        with c.lock:
            if d.kind == "broker":
                d.tolerated_exits = {ZC_EXIT_STORAGE}
        took = diskmod.fill(d.data)

        def undo():
            diskmod.free(d.data)
            with c.lock:
                if (d.state() == "dead" and not d.expect_dead and
                        d.proc.returncode in d.tolerated_exits):
                    d.expect_dead = True
                    c.tolerated.append((time.time(), d.name, d.proc.returncode))
                d.tolerated_exits = set()
            c.restart(name)
        return {"node": name, "who": who, "leader": leader, "bytes": took}, undo

    # -- scripted faults: the nemesis's own session --
    def _own(self, process, f, args, session=None, value=None, replicas=None, timeout_ms=5000,
             background=False):
        """One client operation of the nemesis's own, from the clients'
        namespace, recorded in the history like a client's (process 900x).
        background: start it and return a function that waits for its answer."""
        c = self.cluster
        self.history.invoke(process, f, session, value or {})
        argv = c.cli_argv("clients", (["--session", session] if session else []) + args,
                          timeout_ms, replicas)
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)

        def wait():
            try:
                out, _ = proc.communicate(timeout=timeout_ms / 1000.0 + 10)
                ans = json.loads(out.strip().splitlines()[-1])
            except (subprocess.TimeoutExpired, ValueError, IndexError) as e:
                proc.kill()
                proc.wait()
                self.history.complete(process, None, error="nemesis CLI: %r" % (e,))
                return None
            self.history.complete(process, ans)
            return ans
        return wait if background else wait()

    def _own_add(self, replicas=None):
        """A fresh session of the nemesis's own: (session, cart, generation)
        or None."""
        a = self._own(OWN_PROCESSES[1], "add", ["add", OWN_PRODUCT, "1"],
                      value={"product": OWN_PRODUCT, "qty": 1}, replicas=replicas)
        if not a or not a.get("ok") or not a.get("cart"):
            return None
        return a["session"], a["cart"], a["generation"]

    def _own_close(self, session, replicas=None):
        return self._own(OWN_PROCESSES[1], "close", ["close"], session=session, replicas=replicas)

    def _lead(self, rid, timeout=6.0):
        """Make replica rid the ready leader (admin transfer-leader); True once it is."""
        c = self.cluster
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if c.leader() == rid:
                return True
            c.cli("ctl", c.admin_args() + ["admin", "transfer-leader", str(rid)], timeout_ms=2000)
            end = min(deadline, time.monotonic() + 2.0)
            while time.monotonic() < end:
                if c.leader() == rid:
                    return True
                time.sleep(0.05)
        return False

    def _scripted_start(self, f, v):
        self.record(f, "start", v)
        self.log("start %s %s" % (f.kind, v))

    def _stale_fence(self, f, leader):
        """stale-fence: an old leader's request reaches the cart after the new
        leader reset it (the request-time fence; the stale_generation_accepted
        mutant adopts it).  Steps: leadership to the highest id L; a session
        of our own gets cart C (node X); X paused and L's packets to X held
        (dropped at X: TCP resends them later); our add on that session sent
        to L only (L forwards it into the hold); leadership to the lowest id
        N; the session closed (N queues RESET at X); the hold lifted -- L's
        request is resent at ~1.4 or ~3.0 s, so it now lands at X after N's
        RESET -- and X resumed 3.4 s after the add, inside its 5 s deadline.
        X reads N's RESET first, then L's request of the generation just
        reset: it must answer FENCED ("generation already reset").  At the
        heal, sessions of our own until one gets C again (_regrab): its add
        must find C empty and its owner reset."""
        c, net = self.cluster, self.net
        ids = c.replica_ids()
        old, new = max(ids), min(ids)
        if not self._lead(old):
            self.skipped.append((f, "leadership did not move to %d" % old))
            self.log("skip %s: leadership did not move to replica %d" % (f.kind, old))
            return None
        own = self._own_add()
        if own is None:
            self.skipped.append((f, "no session of its own"))
            self.log("skip %s: the nemesis's own add failed" % f.kind)
            return None
        sid, cart, gen = own
        node = cart.split(".")[0]
        v = {"leader": old, "new_leader": new, "session": sid, "cart": cart, "generation": gen,
             "node": node}
        self._scripted_start(f, v)
        d = c.daemon(node)
        with c.lock:
            d.pause()
        net.drop(node, input=["ip saddr %s tcp sport %d" % (
            net.host(c.broker_name(old)).addr, CART_PORT)])
        t1 = time.monotonic()
        wait_add = self._own(OWN_PROCESSES[0], "add", ["add", OWN_PRODUCT, "1"], session=sid,
                             value={"product": OWN_PRODUCT, "qty": 1}, replicas=[old],
                             background=True)
        time.sleep(0.4)
        v["moved"] = self._lead(new, timeout=2.0)
        closed = self._own_close(sid)
        v["closed"] = (closed or {}).get("reason")
        net.undrop(node)
        v["released_after_s"] = round(time.monotonic() - t1, 2)
        delay = t1 + 3.4 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        with c.lock:
            if d.state() == "paused":
                d.resume()
        v["resumed_after_s"] = round(time.monotonic() - t1, 2)

        def undo():
            with c.lock:
                if d.state() == "paused":
                    d.resume()
            net.undrop(node)
            a = wait_add()
            v["stale_add"] = (a or {}).get("reason")
            # Then C's next owner: sessions of our own until one gets C (the
            # others closed at once).  Its first add must find C empty and
            # reset -- a cart that took the stale request holds an older
            # owner and refuses it (FENCED, I1) or shows its item (I4), even
            # when no client session happens to get C within the run.
            v["regrabbed"] = self._regrab(cart) is not None
        return v, undo

    def _regrab(self, cart, until=None):
        """Sessions of our own until one gets `cart` (each other one closed
        at once; at most twice the carts, or until `until`), then that one
        closed too; (session, cart, generation) of the one that got it, or
        None."""
        c = self.cluster
        for _ in range(2 * c.n_carts * c.slots):
            if until is not None and time.monotonic() >= until:
                break
            got = self._own_add()
            if got is None:
                time.sleep(0.05)
                continue
            self._own_close(got[0])
            if got[1] == cart:
                return got
        return None

    def _reset_lost(self, f, leader):
        """reset-lost: a RESET lost with its cart node.  A session of our own
        gets cart C (node X); X paused; the session closed (the leader sends
        RESET, which waits in X's socket); X killed (the RESET dies with it)
        and restarted.  The leader must send the RESET again (it returns the
        cart only on RESET_DONE); the return_before_reset mutant has already
        put the cart back on the free list, dirty."""
        c = self.cluster
        own = self._own_add()
        if own is None:
            self.skipped.append((f, "no session of its own"))
            self.log("skip %s: the nemesis's own add failed" % f.kind)
            return None
        sid, cart, gen = own
        node = cart.split(".")[0]
        v = {"leader": leader, "session": sid, "cart": cart, "generation": gen, "node": node}
        self._scripted_start(f, v)
        d = c.daemon(node)
        with c.lock:
            d.pause()
        closed = self._own_close(sid)
        v["closed"] = (closed or {}).get("reason")
        time.sleep(0.3)
        with c.lock:
            v["pid"] = d.pid
            d.kill()
        time.sleep(0.5)
        c.restart(node)
        return v, lambda: None

    def _stale_reset(self, f, leader):
        """stale-reset: an old leader's RESET reaches the cart after the cart
        was reset, returned and assigned anew (the cart must ignore it).
        Leadership to the highest id L; a session of our own gets cart C
        (node X); L's packets to X held (dropped at X); the session closed
        (L's RESET goes into the hold); leadership to the lowest id N (N
        resends the RESET at once, X empties C, N returns it); sessions of
        our own until one gets C again (the others closed at once), its add
        adopted by X; the hold lifted within 5.6 s of the close: L's RESET,
        resent by TCP at ~1.4, ~3.0 or ~6.2 s, finds a newer owner ("ignored
        a reset").  The chaos carts' --broker-liveness (8 s, cluster.py)
        outlasts the hold, so X does not reconnect L and throw the held bytes
        away."""
        c, net = self.cluster, self.net
        ids = c.replica_ids()
        old, new = max(ids), min(ids)
        if not self._lead(old):
            self.skipped.append((f, "leadership did not move to %d" % old))
            self.log("skip %s: leadership did not move to replica %d" % (f.kind, old))
            return None
        own = self._own_add()
        if own is None:
            self.skipped.append((f, "no session of its own"))
            self.log("skip %s: the nemesis's own add failed" % f.kind)
            return None
        sid, cart, gen = own
        node = cart.split(".")[0]
        v = {"leader": old, "new_leader": new, "session": sid, "cart": cart, "generation": gen,
             "node": node}
        self._scripted_start(f, v)
        net.drop(node, input=["ip saddr %s tcp sport %d" % (
            net.host(c.broker_name(old)).addr, CART_PORT)])
        t1 = time.monotonic()
        try:
            closed = self._own_close(sid, replicas=[old])
            v["closed"] = (closed or {}).get("reason")
            tc = time.monotonic()  # L sent its RESET by now (at the close's commit)
            v["moved"] = self._lead(new, timeout=2.0)
            grabbed, tries = None, 0
            # Until 5.6 s after the RESET went into the hold: TCP's resend at
            # ~6.2 s then still lands within the cart's 8 s --broker-liveness.
            while time.monotonic() < tc + 5.6 and tries < 2 * c.n_carts * c.slots:
                tries += 1
                got = self._own_add()
                if got is None:
                    time.sleep(0.05)
                    continue
                if got[1] == cart:
                    grabbed = got
                    break
                self._own_close(got[0])
            v["tries"] = tries
            v["regrabbed"] = grabbed is not None
        finally:
            net.undrop(node)
            v["released_after_s"] = round(time.monotonic() - t1, 2)

        def undo():
            net.undrop(node)
            if grabbed is not None:
                self._own_close(grabbed[0])
        return v, undo

    def _membership(self, f, leader):
        """membership: `zcart admin remove-node F` for a follower F under the
        workload's load; F's process is then killed, its data set aside
        (RUNDIR/brokerF/data.removed-N) and F started again, empty, with
        --join; `zcart admin add-node F RAFT,CLIENT,CART` makes it a voter
        again once it has caught up.  The heal retries add-node if it had
        not answered OK."""
        c = self.cluster
        followers = [r for r in c.replica_ids() if r != leader]
        r = followers[int(f.params["pick"] * len(followers)) % len(followers)]
        name = c.broker_name(r)
        d = c.daemon(name)
        v = {"leader": leader, "replica": r, "node": name}
        self._scripted_start(f, v)
        ans = c.cli("ctl", c.admin_args() + ["admin", "remove-node", str(r)], timeout_ms=10000)
        v["removed"] = (ans or {}).get("reason", "no answer")
        if not (ans or {}).get("ok"):
            return v, lambda: None
        with c.lock:
            d.kill()
            k = 1
            while os.path.exists("%s.removed-%d" % (d.data, k)):
                k += 1
            diskmod.set_aside(d.data, "%s.removed-%d" % (d.data, k))
            if "--join" not in d.argv:
                d.argv.append("--join")
        c.restart(name)
        addr = self.net.host(name).addr
        spec = "%s:%d,%s,tcp://%s:%d" % (addr, RAFT_PORT, c.client_endpoint(r), addr, CART_PORT)

        def add():
            a = c.cli("ctl", c.admin_args() + ["admin", "add-node", str(r), spec],
                      timeout_ms=20000)
            v["added"] = (a or {}).get("reason", "no answer")
            return bool((a or {}).get("ok"))
        time.sleep(0.5)
        added = add()

        def undo():
            if not added:
                add()
        return v, undo

    def apply(self, f, busy=frozenset()):
        """Apply fault f; (targets, undo) or None if skipped (logged).  `busy`:
        daemons and hosts another running fault has taken (claims())."""
        taken = claims(f.kind, f.params) & set(busy)
        if taken:
            self.skipped.append((f, "%s taken by another fault" % ", ".join(sorted(taken))))
            self.log("skip %s: %s taken by another fault" % (f.kind, ", ".join(sorted(taken))))
            return None
        c = self.cluster
        b = c.broker_name
        k = f.kind
        if k in LEADER_KINDS:
            leader = self._leader()
            if leader is None:
                self.skipped.append((f, "no ready leader"))
                self.log("skip %s: no ready leader within 10 s" % f.kind)
                return None
        if k == "kill-leader":
            v, undo = self._kill(b(leader))
            v["leader"] = leader
        elif k in ("kill-follower", "pause-follower"):
            followers = [r for r in c.replica_ids() if r != leader and b(r) not in busy]
            if not followers:
                self.skipped.append((f, "every follower taken by another fault"))
                self.log("skip %s: every follower taken by another fault" % k)
                return None
            r = followers[int(f.params["pick"] * len(followers)) % len(followers)]
            v, undo = (self._kill if k == "kill-follower" else self._pause)(b(r))
            v["leader"] = leader
        elif k == "stale-leader":
            v, undo = self._pause(b(leader))
            v["leader"] = leader
        elif k == "stale-requests":
            v, resume = self._pause(f.params["cart"])
            others = [b(r) for r in c.replica_ids() if r != leader]
            cut, heal = self._partition([b(leader)], others, {"leader": leader})
            v.update(cut)

            def undo(resume=resume, heal=heal):
                resume()  # the cart reads both replicas' queues while the cut holds
                heal()
        elif k in SCRIPTED:
            got = {"stale-fence": self._stale_fence, "reset-lost": self._reset_lost,
                   "stale-reset": self._stale_reset, "membership": self._membership}[k](f, leader)
            if got is None:
                return None
            v, undo = got
        elif k == "disk-full":
            got = self._disk_full(f, leader, busy)
            if got is None:
                return None
            v, undo = got
        elif k == "clock-jump":
            d = c.broker(leader)
            off = int(f.params["offset_s"] * 1000)
            d.set_clock_offset(off)
            v = {"node": d.name, "leader": leader, "offset_ms": off}
            undo = lambda d=d: d.set_clock_offset(0)  # noqa: E731
        elif k == "transfer-leader":
            ans = c.cli("ctl", c.admin_args() + ["admin", "transfer-leader"], timeout_ms=5000)
            v = {"leader": leader, "answer": (ans or {}).get("reason", "no answer")}
            undo = lambda: None  # noqa: E731
        elif k == "delay-cart-replies":
            v, undo = self._bursts(f.params["cart"], f.params["bursts_seed"],
                                   output=["tcp dport %d" % CART_PORT])
        elif k == "delay-client-replies":
            v, undo = self._bursts("clients", f.params["bursts_seed"],
                                   input=["tcp sport %d" % CLIENT_PORT])
        elif k == "packet-loss":
            rule = "numgen random mod 100 < %d" % f.params["pct"]
            self.net.drop(f.params["host"], input=[rule], output=[rule])
            v = {"host": f.params["host"], "pct": f.params["pct"]}
            undo = lambda h=f.params["host"]: self.net.undrop(h)  # noqa: E731
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
        elif k in ("partition-halves", "split-brain"):
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
        elif k in ("cart-pause", "cart-stall"):
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
            if f.kind not in SCRIPTED:  # a scripted fault recorded its start before its steps
                self.record(f, "start", targets)
            self.log("%s %s %s" % ("steps done" if f.kind in SCRIPTED else "start", f.kind,
                                   targets))
            if f.companion is not None:
                try:
                    got2 = self.apply(f.companion, claims(f.kind, f.params, targets))
                except Exception as e:  # noqa: BLE001
                    self.errors.append("applying %s: %r" % (f.companion.kind, e))
                    self.log("ERROR applying %s: %r" % (f.companion.kind, e))
                    got2 = None
                if got2 is not None:
                    self.current2 = (f.companion, got2[1], got2[0])
                    self.record(f.companion, "start", got2[0])
                    self.log("start %s %s (with #%d)" % (f.companion.kind, got2[0], f.n))
            self.stopping.wait(f.duration)
            self._heal_current()

    def _heal_current(self):
        cur2, self.current2 = self.current2, None
        if cur2 is not None:
            self._heal(cur2)
        cur, self.current = self.current, None
        if cur is not None:
            self._heal(cur)

    def _heal(self, cur):
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
    """Make sure nothing is left broken: free every filled disk, resume
    paused daemons, restart dead ones, remove every partition, put every
    wall clock right.  The actions
    taken."""
    actions = []
    for path in cluster.disks:
        if os.path.exists(os.path.join(path, diskmod.FILLER)):
            diskmod.free(path)
            actions.append("freed the disk at %s" % path)
    for d in cluster.daemons.values():
        d.tolerated_exits = set()
        try:
            with open(d.clock_file) as f:
                jumped = int(f.read().strip() or 0) != 0
        except (OSError, ValueError):
            jumped = False
        if jumped:
            d.set_clock_offset(0)
            actions.append("reset the clock of %s" % d.name)
    if net.rules():
        net.heal()
        actions.append("removed partitions")
    if net.drops():
        net.heal_drops()
        actions.append("removed aimed drops")
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
