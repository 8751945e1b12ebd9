#!/usr/bin/python3
"""checker: decide DESIGN.md section 4's seven invariants from a chaos history.

    python3 tests/chaos/checker.py HISTORY.jsonl [--bound S] [--out VERDICT.json]

prints the verdict (JSON) and exits 0 if every invariant holds, 1 if one
does not, 2 if the history is malformed (the message names the lines).
check(records, bound_s=...) is the same as a function.  docs/chaos.md ("The
checker") is the operator's version of this text.

The input is the history (history.py): every client operation as an invoke
and a completion -- ok, fail (a definite KO) or info (UNREACHABLE: unknown
outcome) -- nemesis events, a "healed" mark, post-heal probes and the
end-of-run dumps of every replica's replicated state and every cart slot.

Ground rules
------------
* Sound before complete.  A violation is reported only when no behaviour
  the protocol allows explains what the clients saw.  Where the history
  cannot decide (too many unknown outcomes, concurrent ops of one session)
  the checker says "undecided" in the counts instead of guessing.
* Which answers prove what.  An answer the *cart* produced passed the
  cart's fencing, so it proves the cart served (session, generation) at
  some instant between the op's invoke and completion: an OK add, remove or
  list naming a cart, or a KO the cart decided (OUT_OF_STOCK,
  UNKNOWN_PRODUCT, STOCK_TIMEOUT, STOCK_UNAVAILABLE, NOT_IN_CART) naming
  one; their items are the cart's full contents at that instant.  KOs the
  broker decides may come from a deposed leader with stale state and prove
  nothing about ownership.
* Which outcomes are unknown.  An info is unknown unless its answer says
  "in_doubt": false.  A KO is definite (not applied) except CART_UNAVAILABLE,
  FENCED, INTERNAL and UNAVAILABLE (and any reason this file does not know):
  libzcart retries an unanswered try, and a try that reached the cart may
  have been applied before a later try got one of these from a broker, so
  they count as unknown too ("indefinite KOs" in the counts).  STORAGE_FULL
  and FORBIDDEN are definite; BUSY is definite only when the answer says
  "attempts": 1 (libzcart resends on BUSY, so a later BUSY may follow an
  earlier try that was applied).
* Time.  "t" is wall-clock seconds; an operation took effect (if at all) at
  one instant between its invoke and completion, except that an unknown one
  may take effect at any time after its invoke.
* Epochs.  A session's life on one (cart, generation) is an epoch.  It ends
  when the session moves to another cart (the documented cart-loss
  reassignment, section I2) or ends.  Item checks (I3, I4) run per session
  and epoch, and per product: every add/remove touches one product, so
  products are independent.

The invariants
--------------
I1  one session per cart at a time.
    History: collect, per cart, the proving answers of every (session,
    generation).  Two different sessions with the same (cart, generation)
    is a violation (generations are unique per assignment).  For sessions
    A != B on one cart with generation gA < gB, A must be done with the
    cart before B has it: a proving answer of A invoked after a proving
    answer of B completed means the cart served A after serving B -- both
    held it at once -- and is a violation.  So is a cart's FENCED answer
    "the cart still holds an older owner (not reset)": the cart was
    assigned anew while its node still held the previous owner (the
    replicas return a cart only after its RESET_DONE).  (A close or expiry seen by A is
    not needed: nothing is claimed without proof.)
    Dump, on every replica: no cart is the cart of two LIVE sessions; every
    LIVE session's cart is ASSIGNED to it with its generation; every
    ASSIGNED cart belongs to a LIVE session on it with that generation; and
    the cart node agrees (an ASSIGNED cart's slot has no owner or that
    session at that generation).
I2  one cart per session.  Walk each session's answers in order, keeping
    its current (cart, generation); the answers used are the proving ones,
    OK closes and CART_LOST KOs.  A CART_LOST answer moves the session to
    the (cart, generation) it names, which must be a newer generation.  Any
    other change is a violation, except a change to a newer generation that
    the protocol allows without a CART_LOST in the history: the answer is a
    close (a moved session's close releases its new cart), or the CART_LOST
    answer may have been lost -- an op of the session since the last
    confirmation was unknown, or a fault was active (plus --grace) between
    the last confirmation and this answer.  An OK answer showing no cart
    after the session had one is a violation.
I3  item changes.  Per session, epoch and product the model is a number:
    acknowledged adds and removes (ok) apply their delta; definite KOs
    apply none; unknown ones are candidates, each applied at most once at a
    moment of our choosing after its invoke.  Every observation (the items
    of a proving answer; the cart's dump at the end, for a session still
    LIVE on it) must equal acknowledged + the chosen candidates, where a
    candidate chosen at one observation stays chosen at every later one.
    This is a search over subsets of the candidates invoked before the
    observation completed, carried observation to observation as the set of
    still-possible choices (capped at 2^12 subsets; beyond: undecided).
    When nothing fits the checker names the simplest explanation: "lost"
    (an acknowledged change missing, or an effect seen earlier gone),
    "duplicated" (an acknowledged change applied twice), "unknown applied
    twice", "failed op applied" (a definite KO that took effect) or
    "mismatch"; then it rebases the model on what the cart showed and goes
    on.  After a move the model restarts from empty; unknown ops the old
    epoch cannot have applied stay candidates.
I4  carts come back empty.  The first observation of each epoch (for a new
    session, its first add's answer) must be explained by the epoch's own
    operations alone -- the same test as I3, so a leftover item or surplus
    there is an I4 violation and not an I3 one; at any later observation an
    item of a product the epoch never added is an I4 violation.  Dump: a
    FREE cart's slot holds no items and no owner.
I5  registered = free + assigned + draining, disjoint, on every replica:
    every cart's state is FREE, ASSIGNED or DRAINING; the free list names
    registered carts, each once, exactly the FREE ones; status counts
    (carts_total/free/assigned/draining) add up and, when the status was
    taken at the dumped applied_index, equal the state's.
I6  after healing every replica has the same applied_index and digest, the
    same free-list order and the same carts and sessions.
I7  service resumes: after the "healed" record some probe (process
    "final") succeeds within --bound seconds; and on every replica each
    session the history saw closed (an OK close) or expired (a
    SESSION_EXPIRED or SESSION_CLOSED answer) is not LIVE and no cart is
    ASSIGNED to it or still DRAINING from it; and no cart of a live node
    (one with slot dumps) stays out of service: the "service" record,
    taken at least --bound seconds after the heal with the clients gone,
    lists no FREE or DRAINING cart whose breaker is automatic and not
    CLOSED (such a free cart is never assigned).  An ASSIGNED cart's
    breaker may stay HALF_OPEN (its session's next request is the probe);
    one held by an operator is the operator's; a record taken sooner than
    the bound is undecided.
I8  who decided: every answer carries the replica and the raft term in
    which it, as a ready leader, decided it (REPLY replica/term; term 0 =
    no ready leader).  An OK with term 0 is a violation, and so is a term
    with two deciding replicas (a term has one leader).  And the broker's
    own answers (all but the proving ones, which I1-I4 judge) agree with
    the committed (dumped) state, which only moves
    forward: SESSION_CLOSED / SESSION_EXPIRED name a session that is
    CLOSED / EXPIRED there; an OK close names the cart and generation the
    session ended on, and the session is not LIVE; any answer naming (cart,
    generation) names a session the state has, with a generation at least
    that.

The verdict: {"valid", "bound_s", "invariants": {"I1": {"name", "ok",
"violations": [the first N, human-readable, naming the lines involved],
"violation_count", "counts"}, ...}, "counts": {ops by type and f, outcomes,
sessions, nemesis events by f, probes}}.
"""

import argparse
import json
import math
import os
import sys

try:  # run as a script (tests/chaos on sys.path) or imported as a module
    import history as hist
except ImportError:  # pragma: no cover
    from . import history as hist

DEFAULT_BOUND_S = 30.0
DEFAULT_GRACE_S = 5.0
MAX_VIOLATIONS = 20
SUBSET_CAP_BITS = 12  # 2^12 subsets of unknown ops per session, epoch and product

# STORAGE_FULL names a cart only when the cart decided it (after its fence and
# dedup lookup, with the cart's items); the broker's STORAGE_FULL refuses a new
# session and names none, so proving() never takes it for a cart's answer.
CART_DECIDED = frozenset(("OUT_OF_STOCK", "UNKNOWN_PRODUCT", "STOCK_TIMEOUT",
                          "STOCK_UNAVAILABLE", "NOT_IN_CART", "STORAGE_FULL"))
DEFINITE_KO = CART_DECIDED | frozenset(("NO_FREE_CART", "SESSION_CLOSED", "SESSION_EXPIRED",
                                        "CART_LOST", "EXPIRED", "BAD_REQUEST", "USAGE",
                                        "NOT_LEADER", "FORBIDDEN"))
INDEFINITE_KO = frozenset(("CART_UNAVAILABLE", "FENCED", "INTERNAL", "UNAVAILABLE"))
# BUSY is never applied (docs/protocol.md 3.5), but libzcart resends on BUSY and
# after a try that went unanswered, and the last answer is all the CLI reports:
# a BUSY after more than one try may follow a try that was applied.  So BUSY is
# definite only with "attempts": 1; with more tries, or no count, it is unknown.
RETRIED_KO = frozenset(("BUSY",))
ENDED_REASONS = ("SESSION_EXPIRED", "SESSION_CLOSED")
# cart/store.c store_fence's detail for a request above the slot's owner's
# generation while that owner was never reset (checker I1).
UNRESET_OWNER = "still holds an older owner"

NAMES = {
    "I1": "a cart is assigned to at most one live session at a time",
    "I2": "a session keeps one cart unless told CART_LOST",
    "I3": "no acknowledged change lost or applied twice; unknown outcomes at most once",
    "I4": "a session never sees items it did not add (carts come back empty)",
    "I5": "registered = free + assigned + draining, disjoint, on every replica",
    "I6": "after healing all replicas have the same applied index and digest",
    "I7": "service resumes within the bound; closed/expired sessions' carts are freed",
    "I8": "only a ready leader's decisions are acknowledged; broker answers agree with the "
          "committed state",
}


class Result:
    """One invariant's findings: violations (all kept, the first N shown),
    counts, and notes about what could not be decided."""

    def __init__(self, key):
        self.key = key
        self.violations = []
        self.counts = {}
        self.notes = []

    def fail(self, msg):
        """Record a violation (a human-readable string naming the lines)."""
        self.violations.append(msg)

    def bump(self, name, n=1):
        """Add n to counts[name]."""
        self.counts[name] = self.counts.get(name, 0) + n

    def note(self, msg):
        """Record something undecided or skipped (does not fail the check)."""
        if len(self.notes) < MAX_VIOLATIONS:
            self.notes.append(msg)

    def to_json(self, max_violations):
        out = {"name": NAMES[self.key], "ok": not self.violations,
               "violations": self.violations[:max_violations],
               "violation_count": len(self.violations), "counts": self.counts}
        if self.notes:
            out["notes"] = self.notes
        return out


def _is_uint(x):
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


# --- classifying operations ----------------------------------------------------------


def outcome(op):
    """"ok" (applied), "none" (definitely not applied) or "unknown"."""
    if op.type == "ok":
        return "ok"
    if op.type == "info":
        return "unknown" if op.in_doubt else "none"
    r = op.reason
    if r in DEFINITE_KO:
        return "none"
    if r in RETRIED_KO and (op.answer or {}).get("attempts") == 1:
        return "none"
    return "unknown"


def proving(op):
    """True if the cart itself produced this answer (see "Which answers prove
    what"): it shows the cart served (session, generation) and its items."""
    if op.pair is None or op.answer is None:
        return False
    if op.type == "ok":
        return op.f in ("add", "remove", "list")
    return op.type == "fail" and op.reason in CART_DECIDED


def delta(op):
    """The change op makes to its product's quantity if applied."""
    if op.f == "add":
        return op.qty
    if op.f == "remove":
        return -op.qty
    return 0


def fmt_items(items):
    """{apple: 2} -> "{apple: 2}"."""
    return "{%s}" % ", ".join("%s: %s" % kv for kv in sorted(items.items()))


def op_name(op):
    """"add apple x2 (lines 4/5)"."""
    return "%s %s x%s (%s)" % (op.f, op.product, op.qty, op.line_ref())


def short(session):
    return session[:8] if session else "?"


# --- the dump ------------------------------------------------------------------------


class Dump:
    """The final dump, indexed: replicas (list of dicts), per replica its
    carts by id and sessions by id, and the cart slots by cart id."""

    def __init__(self, rec):
        self.line = rec.get("_line") if rec else None
        v = (rec or {}).get("value") or {}
        self.replicas = [r for r in v.get("replicas") or [] if isinstance(r, dict)]
        self.slots = {}
        for c in v.get("carts") or []:
            cid = c.get("id", c.get("cart"))
            if isinstance(cid, str):
                self.slots[cid] = c

    @staticmethod
    def state(rep):
        st = rep.get("state")
        return st if isinstance(st, dict) else None

    @staticmethod
    def carts(st):
        return {c["id"]: c for c in st.get("carts") or [] if isinstance(c, dict) and "id" in c}

    @staticmethod
    def sessions(st):
        return {s["id"].lower(): s for s in st.get("sessions") or []
                if isinstance(s, dict) and isinstance(s.get("id"), str)}

    def reference(self):
        """The first replica's state (all are equal when I6 holds), or None."""
        for r in self.replicas:
            if self.state(r) is not None:
                return self.state(r)
        return None

    def slot_items(self, cid):
        """{product: qty} of cart cid's slot dump, or None."""
        s = self.slots.get(cid)
        if s is None or not isinstance(s.get("items"), list):
            return None
        out = {}
        for it in s["items"]:
            out[it["product"]] = out.get(it["product"], 0) + it["qty"]
        return out


# --- sessions and epochs -------------------------------------------------------------


class Epoch:
    """A session's time on one (cart, generation): its ops in order, and the
    final dump observation of its cart when the session was still on it."""

    def __init__(self, pair):
        self.pair = pair             # the latest (cart, generation)
        self.pairs = {pair} if pair else set()  # every pair its answers may show
        self.ops = []
        self.final = None  # (items dict, description) from the dump

    def set_pair(self, pair):
        """The epoch's answers now show pair (its first, or an unexcused change)."""
        self.pair = pair
        self.pairs.add(pair)


class Session:
    """A session's ops (invoke order) and what the I2 walk learned."""

    def __init__(self, sid):
        self.sid = sid
        self.ops = []
        self.epochs = [Epoch(None)]
        self.concurrent = False
        self.closed_by = None   # the OK close op
        self.ended_by = None    # a SESSION_EXPIRED / SESSION_CLOSED answer
        self.pair = None        # the (cart, generation) it was last seen on


class Checker:
    """Holds the indexed history and runs one method per invariant."""

    def __init__(self, records, bound_s=DEFAULT_BOUND_S, grace_s=DEFAULT_GRACE_S,
                 max_violations=MAX_VIOLATIONS):
        self.records = [r if "_line" in r else dict(r, _line=i + 1)
                        for i, r in enumerate(records)]
        hist.validate(self.records)
        self.bound_s = float(bound_s)
        self.grace_s = float(grace_s)
        self.max_violations = max_violations
        self.ops = hist.operations(self.records)
        self.healed = next((r for r in self.records
                            if r["process"] == "final" and r["type"] == "healed"), None)
        dumps = [r for r in self.records if r["process"] == "final" and r["type"] == "dump"]
        self.dump = Dump(dumps[0]) if dumps else None
        self.service = next((r for r in self.records
                             if r["process"] == "final" and r["type"] == "service"), None)
        self.windows = self._fault_windows()
        self.sessions = {}
        for op in self.ops:
            if op.session:
                self.sessions.setdefault(op.session, Session(op.session)).ops.append(op)
        for s in self.sessions.values():
            s.ops.sort(key=lambda o: (o.t_invoke, o.index))

    # -- faults --

    def _fault_windows(self):
        """[(start, end)] of every fault: start to the next stop of the same
        f, or to a "heal" event / the healed record / forever."""
        healed_t = float(self.healed["t"]) if self.healed else math.inf
        nem = sorted((r for r in self.records if r["process"] == "nemesis"),
                     key=lambda r: (r["t"], r["_line"]))
        open_, windows = {}, []
        for r in nem:
            t, f, phase = float(r["t"]), r["f"], r.get("phase")
            if f == "heal":
                for starts in open_.values():
                    windows.extend((s, t) for s in starts)
                open_ = {}
            elif phase == "start":
                open_.setdefault(f, []).append(t)
            elif phase == "stop" and open_.get(f):
                windows.append((open_[f].pop(0), t))
            else:
                windows.append((t, t))
        for starts in open_.values():
            windows.extend((s, healed_t) for s in starts)
        return windows

    def fault_between(self, a, b):
        """Was some fault active (or within grace_s of its end) in [a, b]?"""
        return any(s <= b and e + self.grace_s >= a for s, e in self.windows)

    # -- I2 first: it cuts sessions into epochs for I3 and I4 --

    def check_i2(self):
        r = Result("I2")
        for s in self.sessions.values():
            self._walk_session(s, r)
        r.counts.setdefault("sessions", len(self.sessions))
        return r

    def _walk_session(self, s, r):
        """Follow one session's (cart, generation) through its answers."""
        cur, doubt, last_t, prev = None, False, None, None
        for op in s.ops:
            if prev is not None and op.t_invoke < prev.t_complete:
                s.concurrent = doubt = True
            prev = op if prev is None or op.t_complete > prev.t_complete else prev
            if op.type == "ok" and op.f == "close":
                s.closed_by = s.closed_by or op
            if op.type == "fail" and op.reason in ENDED_REASONS:
                s.ended_by = s.ended_by or op
            if op.type == "fail" and op.reason == "CART_LOST" and op.pair:
                new = op.pair
                if cur == new:
                    r.fail("session %s told CART_LOST twice for %s gen %s: %s"
                           % (short(s.sid), new[0], new[1], op.describe()))
                elif cur is not None and new[1] <= cur[1]:
                    r.fail("session %s moved by CART_LOST from %s gen %s to an older generation "
                           "%s gen %s: %s" % (short(s.sid), cur[0], cur[1], new[0], new[1],
                                              op.describe()))
                else:
                    r.bump("moves_told")
                cur, doubt, last_t = new, False, op.t_invoke
                s.epochs.append(Epoch(new))
                s.epochs[-1].ops.append(op)
                continue
            p = op.pair if (proving(op) or (op.type == "ok" and op.f == "close")) else None
            if p is not None:
                if cur is None:
                    s.epochs[-1].set_pair(p)
                elif p != cur:
                    why = self._move_excuse(op, cur, p, doubt, last_t)
                    if why:
                        r.bump("moves_untold")
                        r.note("session %s moved %s gen %s -> %s gen %s without a CART_LOST "
                               "in the history (%s): %s" % (short(s.sid), cur[0], cur[1], p[0],
                                                            p[1], why, op.describe()))
                        s.epochs.append(Epoch(p))
                    else:
                        # Not a move: the same epoch goes on (its items are
                        # still checked against one model), showing p now.
                        r.fail("session %s changed cart from %s gen %s to %s gen %s without "
                               "CART_LOST: %s" % (short(s.sid), cur[0], cur[1], p[0], p[1],
                                                  op.describe()))
                        s.epochs[-1].set_pair(p)
                cur, doubt, last_t = p, False, op.t_invoke
            elif (op.type == "ok" and op.pair is None and cur is not None
                  and op.f in ("add", "remove", "list")):
                r.fail("session %s had %s gen %s, then an OK answer with no cart: %s"
                       % (short(s.sid), cur[0], cur[1], op.describe()))
            s.epochs[-1].ops.append(op)
            if outcome(op) == "unknown":
                doubt = True
        s.pair = cur

    def _move_excuse(self, op, cur, new, doubt, last_t):
        """Why a change cur -> new without CART_LOST may still be the
        documented move (None if it cannot be)."""
        if new[1] <= cur[1]:
            return None
        if op.f == "close":
            return "a close releases the moved session's new cart"
        if doubt:
            return "an earlier op's answer was lost: it may have been the CART_LOST"
        if last_t is not None and self.fault_between(last_t, op.t_complete):
            return "a fault was active: a try's CART_LOST answer may have been lost"
        return None

    # -- I1 --

    def check_i1(self):
        r = Result("I1")
        self._i1_history(r)
        if self.dump is not None:
            for rep in self.dump.replicas:
                st = Dump.state(rep)
                if st is not None:
                    self._i1_replica(rep.get("id"), st, r)
            self._i1_nodes(r)
        else:
            r.note("no final dump: only the history was checked")
        return r

    def _i1_history(self, r):
        """Same (cart, generation) in two sessions, or an older generation's
        session served after a newer one's."""
        by_cart = {}
        for op in self.ops:
            if op.session and proving(op):
                cart, gen = op.pair
                g = by_cart.setdefault(cart, {}).setdefault((gen, op.session), [None, None])
                if g[0] is None or op.t_invoke > g[0].t_invoke:
                    g[0] = op  # latest invoke: the session still held it after this
                if g[1] is None or op.t_complete < g[1].t_complete:
                    g[1] = op  # earliest completion: it held it by then
        # The cart's fence names why it refused; "the cart still holds an
        # older owner (not reset)" means the replicas assigned the cart anew
        # while its node still held the previous owner: a cart goes back to
        # the free list only after its node answered RESET_DONE, and a reset
        # slot adopts only a generation above its reset generation, so no
        # older owner can be there when the next assignment's request comes.
        for op in self.ops:
            a = op.answer or {}
            if op.type == "fail" and op.reason == "FENCED" and op.pair is not None and \
                    UNRESET_OWNER in (a.get("detail") or ""):
                r.bump("unreset_owner_fences")
                r.fail("cart %s was assigned to session %s gen %s while its node still held an "
                       "older owner that was never reset: %s" % (
                           op.pair[0], short(op.session), op.pair[1], op.describe()))
        r.counts["carts_seen"] = len(by_cart)
        r.counts["assignments_seen"] = sum(len(v) for v in by_cart.values())
        for cart, groups in sorted(by_cart.items()):
            by_gen = {}
            for (gen, sid), g in groups.items():
                by_gen.setdefault(gen, []).append((sid, g))
            for gen, lst in sorted(by_gen.items()):
                if len(lst) > 1:
                    r.fail("cart %s gen %s served %d sessions: %s" % (
                        cart, gen, len(lst), "; ".join(g[1].describe() for _, g in lst)))
            keys = sorted(groups)  # by generation
            for i, (ga, sa) in enumerate(keys):
                latest = groups[(ga, sa)][0]
                for gb, sb in keys[i + 1:]:
                    first = groups[(gb, sb)][1]
                    if gb > ga and sb != sa and latest.t_invoke > first.t_complete:
                        r.fail("cart %s served session %s (gen %s) after session %s (gen %s) "
                               "had it: %s came after %s" % (cart, short(sa), ga, short(sb), gb,
                                                             latest.describe(), first.describe()))

    def _i1_replica(self, rid, st, r):
        """A replica's assignment table: live sessions and ASSIGNED carts agree."""
        carts, sessions = Dump.carts(st), Dump.sessions(st)
        r.bump("replicas_checked")
        live_by_cart = {}
        for sid, s in sessions.items():
            if s.get("state") != "LIVE":
                continue
            live_by_cart.setdefault(s.get("cart"), []).append(sid)
            c = carts.get(s.get("cart"))
            if c is None or c.get("state") != "ASSIGNED" or \
                    (c.get("session") or "").lower() != sid or \
                    c.get("generation") != s.get("generation"):
                r.fail("replica %s: LIVE session %s has cart %s gen %s, but that cart is %s"
                       % (rid, short(sid), s.get("cart"), s.get("generation"),
                          "not registered" if c is None else "%s to %s gen %s" % (
                              c.get("state"), short(c.get("session")), c.get("generation"))))
        for cart, sids in live_by_cart.items():
            if len(sids) > 1:
                r.fail("replica %s: cart %s is the cart of %d LIVE sessions: %s"
                       % (rid, cart, len(sids), ", ".join(short(x) for x in sorted(sids))))
        for cid, c in carts.items():
            if c.get("state") != "ASSIGNED":
                continue
            sid = (c.get("session") or "").lower()
            s = sessions.get(sid)
            if s is None or s.get("state") != "LIVE" or s.get("cart") != cid or \
                    s.get("generation") != c.get("generation"):
                r.fail("replica %s: cart %s is ASSIGNED to session %s gen %s, which is %s"
                       % (rid, cid, short(sid), c.get("generation"),
                          "unknown" if s is None else "%s on %s gen %s" % (
                              s.get("state"), s.get("cart"), s.get("generation"))))

    def _i1_nodes(self, r):
        """The cart nodes agree with the (reference) replica on owners."""
        st = self.dump.reference()
        if st is None:
            return
        for cid, c in Dump.carts(st).items():
            slot = self.dump.slots.get(cid)
            if slot is None or c.get("state") != "ASSIGNED":
                continue
            owner = (slot.get("owner") or "").lower() or None
            sid = (c.get("session") or "").lower()
            if owner is not None and (owner != sid or slot.get("generation") != c.get("generation")):
                r.fail("cart %s is ASSIGNED to session %s gen %s but its node's slot is owned by "
                       "%s gen %s" % (cid, short(sid), c.get("generation"), short(owner),
                                      slot.get("generation")))

    # -- I3 and I4 --

    def check_items(self):
        """I3 and I4 share one model walk; returns (I3 result, I4 result)."""
        r3, r4 = Result("I3"), Result("I4")
        self._attach_final_observations()
        for s in self.sessions.values():
            if s.concurrent:
                r3.bump("undecided_sessions")
                r3.note("session %s has overlapping ops: items not checked" % short(s.sid))
                continue
            r3.bump("sessions_checked")
            carry = {}
            for e in s.epochs:
                if e.pair is None and not any(proving(op) for op in e.ops):
                    carry = self._carry_unknowns(e, carry)
                    continue
                r3.bump("epochs_checked")
                carry = self._check_epoch(s, e, carry, r3, r4)
        self._i4_free_carts(r4)
        for k in ("lost", "duplicated", "unknown_applied_twice", "failed_applied", "mismatch"):
            r3.counts.setdefault(k, 0)
        return r3, r4

    def _attach_final_observations(self):
        """Give each session still LIVE on its last epoch's cart at the end
        that cart's dumped contents as a last observation."""
        if self.dump is None:
            return
        st = self.dump.reference()
        if st is None:
            return
        sessions = Dump.sessions(st)
        for sid, s in self.sessions.items():
            d = sessions.get(sid)
            e = s.epochs[-1]
            if d is None or d.get("state") != "LIVE" or e.pair is None or \
                    (d.get("cart"), d.get("generation")) != e.pair:
                continue
            slot = self.dump.slots.get(e.pair[0])
            items = self.dump.slot_items(e.pair[0])
            if slot is None or items is None:
                continue
            owner = (slot.get("owner") or "").lower() or None
            if owner is None or (owner == sid and slot.get("generation") == e.pair[1]):
                e.final = (items, "line %s: final dump of cart %s (owner %s) %s" % (
                    self.dump.line, e.pair[0], short(owner) if owner else "none",
                    fmt_items(items)))

    def _observations(self, e):
        """The epoch's observations: (op or None, items, t, description)."""
        obs = [(op, op.items, op.t_complete, op.describe()) for op in e.ops
               if proving(op) and op.pair in e.pairs and op.items is not None]
        if e.final is not None:
            obs.append((None, e.final[0], math.inf, e.final[1]))
        return obs

    def _check_epoch(self, s, e, carry, r3, r4):
        """Check one epoch, product by product; returns the unknown ops that
        may still be unapplied, by product, for the next epoch."""
        obs = self._observations(e)
        r3.bump("observations", len(obs))
        products = set(carry)
        products.update(op.product for op in e.ops if op.product)
        for _, items, _, _ in obs:
            products.update(items)
        left = {}
        for p in sorted(products):
            left[p] = self._check_product(s, e, p, obs, carry.get(p, []), r3, r4)
        return self._carry_unknowns(e, carry, left)

    @staticmethod
    def _carry_unknowns(e, carry, left=None):
        """Unknown ops to carry into the next epoch, by product: for a
        checked epoch those it left possibly unapplied (left); for one not
        checked, everything carried in plus the epoch's own unknowns."""
        if left is not None:
            return {p: list(v) for p, v in left.items() if v}
        out = {p: list(v) for p, v in carry.items()}
        for op in e.ops:
            if op.product and outcome(op) == "unknown":
                out.setdefault(op.product, []).append(op)
        return {p: v for p, v in out.items() if v}

    def _check_product(self, s, e, p, obs, carried, r3, r4):
        """The subset search for one product of one epoch (see I3 in the
        module docstring).  Returns the unknown ops possibly unapplied at
        the end."""
        model = ProductModel(carried)
        obs_at = {id(op): k for k, (op, _, _, _) in enumerate(obs) if op is not None}
        events = [(op, obs_at.get(id(op))) for op in e.ops]
        events += [(None, k) for k, (op, _, _, _) in enumerate(obs) if op is None]
        acked, refused, added = [], [], any(u.f == "add" for u in carried)
        first = True
        for op, k in events:
            if op is not None and op.product == p:
                oc = outcome(op)
                if op.f == "add":
                    added = True
                if oc == "ok":
                    model.definite += delta(op)
                    acked.append(op)
                elif oc == "unknown":
                    model.add_candidate(op)
                    r3.bump("unknown_ops")
                elif op.f in ("add", "remove"):
                    refused.append(op)
            if k is None:
                continue
            if model.undecided:
                first = False
                continue
            _, items, t_obs, desc = obs[k]
            seen = items.get(p, 0)
            if model.observe(seen, t_obs):
                first = False
                continue
            expect = model.describe_expectation(t_obs)
            head = "session %s cart %s gen %s, %s: the cart shows %s, expected %s" % (
                short(s.sid), e.pair[0] if e.pair else "?", e.pair[1] if e.pair else "?", p,
                seen, expect)
            if first or not added:
                kind = "dirty cart" if first else "foreign item"
                r4.fail("%s: %s (the session %s): %s" % (
                    kind, head, "had not added %s" % p if not added else
                    "got the cart with something in it", desc))
                r4.bump("dirty_first_observations" if first else "foreign_items")
            else:
                kind, why = model.diagnose(seen, t_obs, acked, refused)
                r3.bump(kind)
                r3.fail("%s: %s; %s: %s" % (kind.replace("_", " "), head, why, desc))
            model.rebase(seen, t_obs)
            first = False
        if model.undecided:
            r3.bump("undecided")
            r3.note("session %s cart %s, %s: more than %d unknown ops, not decided"
                    % (short(s.sid), e.pair[0] if e.pair else "?", p, SUBSET_CAP_BITS))
            return model.candidates
        return model.possibly_unapplied()

    def _i4_free_carts(self, r4):
        """A FREE cart's slot must be empty and ownerless."""
        if self.dump is None:
            return
        st = self.dump.reference()
        if st is None:
            return
        for cid, c in sorted(Dump.carts(st).items()):
            if c.get("state") != "FREE" or cid not in self.dump.slots:
                continue
            r4.bump("free_carts_checked")
            slot, items = self.dump.slots[cid], self.dump.slot_items(cid) or {}
            if items or slot.get("owner"):
                r4.fail("free cart %s is not empty on its node: items %s, owner %s (line %s)"
                        % (cid, fmt_items(items), short(slot.get("owner")) if slot.get("owner")
                           else "none", self.dump.line))

    # -- I5 --

    def check_i5(self):
        r = Result("I5")
        if self.dump is None:
            r.fail("no final dump in the history")
            return r
        for rep in self.dump.replicas:
            self._i5_replica(rep, r)
        return r

    def _i5_replica(self, rep, r):
        """One replica's registry adds up, and its status counts agree."""
        rid, st, status = rep.get("id"), Dump.state(rep), rep.get("status") or {}
        keys = ("carts_total", "carts_free", "carts_assigned", "carts_draining")
        sc = [status.get(k) for k in keys]
        if all(isinstance(x, int) for x in sc) and sc[0] != sc[1] + sc[2] + sc[3]:
            r.fail("replica %s: status carts_total %s != free %s + assigned %s + draining %s"
                   % (rid, *sc))
        if st is None:
            r.note("replica %s: no state dump" % rid)
            return
        r.bump("replicas_checked")
        carts = Dump.carts(st)
        by_state = {"FREE": set(), "ASSIGNED": set(), "DRAINING": set()}
        for cid, c in carts.items():
            if c.get("state") in by_state:
                by_state[c["state"]].add(cid)
            else:
                r.fail("replica %s: cart %s has state %r" % (rid, cid, c.get("state")))
        free = [x for x in st.get("free") or []]
        seen = set()
        for cid in free:
            if cid in seen:
                r.fail("replica %s: cart %s is on the free list twice" % (rid, cid))
            seen.add(cid)
            if cid not in carts:
                r.fail("replica %s: free list names unregistered cart %s" % (rid, cid))
            elif carts[cid].get("state") != "FREE":
                r.fail("replica %s: cart %s is on the free list but %s"
                       % (rid, cid, carts[cid].get("state")))
        for cid in sorted(by_state["FREE"] - seen):
            r.fail("replica %s: cart %s is FREE but not on the free list" % (rid, cid))
        want = {"carts_total": len(carts), "carts_free": len(by_state["FREE"]),
                "carts_assigned": len(by_state["ASSIGNED"]),
                "carts_draining": len(by_state["DRAINING"])}
        if status.get("applied_index") is not None and \
                status.get("applied_index") == st.get("applied_index"):
            for k, v in want.items():
                if isinstance(status.get(k), int) and status[k] != v:
                    r.fail("replica %s: status %s = %s but the state holds %s"
                           % (rid, k, status[k], v))
        elif status:
            r.note("replica %s: status taken at applied_index %s, state at %s: counts not "
                   "compared" % (rid, status.get("applied_index"), st.get("applied_index")))
        r.bump("carts", len(carts))

    # -- I6 --

    def check_i6(self):
        r = Result("I6")
        if self.dump is None:
            r.fail("no final dump in the history")
            return r
        if not self.dump.replicas:
            r.fail("the final dump lists no replicas")
            return r
        rows = []
        for rep in self.dump.replicas:
            st, status = Dump.state(rep) or {}, rep.get("status") or {}
            ai = st.get("applied_index", status.get("applied_index"))
            dg = st.get("digest", status.get("digest"))
            if ai is None or dg is None:
                r.fail("replica %s: no applied_index/digest in the dump" % rep.get("id"))
                continue
            rows.append((rep.get("id"), ai, dg, Dump.state(rep)))
        r.counts["replicas"] = len(self.dump.replicas)
        if len({(ai, dg) for _, ai, dg, _ in rows}) > 1:
            r.fail("replicas differ after healing: %s" % ", ".join(
                "%s at %s digest %s" % (rid, ai, dg) for rid, ai, dg, _ in rows))
        states = [(rid, st) for rid, _, _, st in rows if st is not None]
        for rid, st in states[1:]:
            rid0, st0 = states[0]
            for key in ("free", "carts", "sessions"):
                if st.get(key) != st0.get(key):
                    what = "free-list order" if key == "free" else key
                    r.fail("replicas %s and %s have different %s%s" % (
                        rid0, rid, what, ": %s vs %s" % (st0.get(key), st.get(key))
                        if key == "free" else ""))
        return r

    # -- I7 --

    def check_i7(self):
        r = Result("I7")
        self._i7_probes(r)
        self._i7_service(r)
        if self.dump is None:
            r.fail("no final dump in the history: closed sessions' carts not checked")
        else:
            for rep in self.dump.replicas:
                st = Dump.state(rep)
                if st is not None:
                    self._i7_replica(rep.get("id"), st, r)
        return r

    def _i7_probes(self, r):
        """Some probe succeeds within bound_s of the healed record."""
        if self.healed is None:
            r.fail("no \"healed\" record: service after healing not checked")
            return
        t0 = float(self.healed["t"])
        probes = [(op.t_invoke, op.t_complete, op.type == "ok", op.describe())
                  for op in self.ops if op.probe]
        probes += [(float(x.get("t_invoke", x["t"])), float(x["t"]),
                    hist.classify(x.get("answer")) == "ok", "line %s: probe" % x["_line"])
                   for x in self.records if x["process"] == "final" and x["type"] == "probe"]
        after = [p for p in probes if p[0] >= t0]
        r.counts["probes"] = len(after)
        r.counts["probes_ok"] = sum(1 for p in after if p[2])
        if len(after) < len(probes):
            r.note("%d probe(s) invoked before the healed record ignored"
                   % (len(probes) - len(after)))
        oks = sorted(p[1] for p in after if p[2])
        if not oks:
            r.fail("no probe succeeded after healing (line %s): %d probe(s), last: %s"
                   % (self.healed["_line"], len(after), after[-1][3] if after else "none"))
            return
        rec = oks[0] - t0
        r.counts["recovery_s"] = round(rec, 3)
        if rec > self.bound_s:
            r.fail("the first successful probe came %.3f s after healing (line %s), over the "
                   "bound of %.3f s" % (rec, self.healed["_line"], self.bound_s))

    def _i7_service(self, r):
        """No cart of a live node stays out of service after healing."""
        if self.service is None:
            r.note("no \"service\" record: carts back in service not checked")
            return
        v = self.service["value"]
        live = {c.get("node") for c in self.dump.slots.values()} if self.dump else None
        out = []
        for b in v.get("breakers") or []:
            if b.get("mode") != "auto" or b.get("state") == "CLOSED":
                continue  # held by an operator, or closed
            if b.get("cart_state") not in ("FREE", "DRAINING"):
                continue  # its session's next request is its probe: it serves
            node = b["cart"].rsplit(".", 1)[0]
            if live is not None and node not in live:
                continue  # no slot dump: the node is not known to be up
            out.append(b)
        r.counts["out_of_service"] = len(out)
        if not out:
            return
        if float(v["after_heal_s"]) < self.bound_s:
            r.note("line %s: %d free cart(s) with a breaker not CLOSED only %.1f s after the "
                   "heal (under the bound): undecided" % (self.service["_line"], len(out),
                                                          float(v["after_heal_s"])))
            return
        for b in out:
            r.fail("line %s: cart %s of a live node is %s with its breaker %s (%s, trips %s) "
                   "%.1f s after the heal: out of service (a free cart whose breaker is not "
                   "CLOSED is never assigned)"
                   % (self.service["_line"], b["cart"], b.get("cart_state"), b.get("state"),
                      b.get("why"), b.get("trips"), float(v["after_heal_s"])))

    def _i7_replica(self, rid, st, r):
        """Sessions seen closed or expired are over, and their carts freed."""
        carts, sessions = Dump.carts(st), Dump.sessions(st)
        held = {}
        for cid, c in carts.items():
            if c.get("state") in ("ASSIGNED", "DRAINING") and c.get("session"):
                held.setdefault(c["session"].lower(), []).append((cid, c))
        for sid, s in sorted(self.sessions.items()):
            how = s.closed_by or s.ended_by
            if how is None:
                continue
            r.bump("ended_sessions_checked")
            d = sessions.get(sid)
            if d is not None and d.get("state") == "LIVE":
                r.fail("replica %s: session %s is LIVE on %s gen %s, but the history ended it: "
                       "%s" % (rid, short(sid), d.get("cart"), d.get("generation"),
                               how.describe()))
            for cid, c in held.get(sid, []):
                r.fail("replica %s: cart %s is still %s for session %s gen %s, which the "
                       "history ended: %s" % (rid, cid, c.get("state"), short(sid),
                                              c.get("generation"), how.describe()))

    # -- I8 --

    def check_i8(self):
        """Who decided each answer (its replica_id and term), and the broker's
        own answers against the committed (dumped) state."""
        r = Result("I8")
        by_term = {}  # term -> {replica: first op}
        for op in self.ops:
            a = op.answer
            if op.type not in ("ok", "fail") or a is None:
                continue
            if not _is_uint(a.get("term")):
                r.bump("answers_without_term")
                continue
            r.bump("answers_with_term")
            term, rep = a["term"], a.get("replica_id")
            if term == 0:
                if op.type == "ok":
                    r.fail("%s: acknowledged by replica %s, which was not a ready leader "
                           "(term 0)" % (op.describe(), rep))
                continue
            seen = by_term.setdefault(term, {})
            if rep not in seen:
                seen[rep] = op
                if len(seen) == 2:
                    (r1, o1), (r2, o2) = sorted(seen.items(), key=lambda kv: str(kv[0]))
                    r.fail("term %s has two deciding replicas, %s and %s (a term has one "
                           "leader): %s; %s" % (term, r1, r2, o1.describe(), o2.describe()))
        r.counts["terms"] = len(by_term)
        self._i8_after_close(r)
        if r.counts.get("answers_without_term"):
            r.note("%d answer(s) carry no term (an older client?): not checked for who "
                   "decided them" % r.counts["answers_without_term"])
        st = self.dump.reference() if self.dump else None
        if st is None:
            r.note("no dumped state: broker answers not compared with the committed state")
            return r
        sessions = Dump.sessions(st)
        for op in self.ops:
            if op.type not in ("ok", "fail") or op.answer is None or not op.session \
                    or proving(op):
                continue  # (what a cart decided is I1-I4's)
            why = self._i8_contradiction(op, sessions.get(op.session))
            if why:
                r.fail("%s: %s" % (op.describe(), why))
            r.bump("answers_compared")
        return r

    def _i8_after_close(self, r):
        """A session closed stays closed: an OK keepalive, list, add or remove
        of a session invoked after an OK close of it (one naming its cart)
        completed is a violation
        when a leader of the close's term or a later one decided it (raft: such
        a leader has the close in its state; an older term's leader may still
        answer from a stale state until it steps down, and is not judged)."""
        closed = {}  # session -> the first OK close naming a cart (by completion)
        for op in self.ops:
            # A close with no cart found no session (its first add never
            # committed, or not yet): nothing ended, and an unknown first add
            # may still create it later.
            if op.session and op.f == "close" and op.type == "ok" and op.pair is not None \
                    and op.t_complete is not None:
                c = closed.get(op.session)
                if c is None or op.t_complete < c.t_complete:
                    closed[op.session] = op
        for op in self.ops:
            c = closed.get(op.session) if op.session else None
            if c is None or op.type != "ok" or op.f == "close" or op.t_invoke <= c.t_complete:
                continue
            r.bump("ops_after_close")
            t_op, t_close = (op.answer or {}).get("term"), (c.answer or {}).get("term")
            if not (_is_uint(t_op) and _is_uint(t_close)) or t_op < t_close:
                r.note("%s after the close (%s) came from an older term: not judged"
                       % (op.describe(), c.describe()))
                continue
            r.fail("%s acknowledged for a session closed before it was sent (%s): a closed "
                   "session was renewed or served" % (op.describe(), c.describe()))

    @staticmethod
    def _i8_contradiction(op, d):
        """Why op's answer contradicts the session's committed record d (None
        if it does not).  Session states only move LIVE -> CLOSED/EXPIRED and
        generations only grow, so even a stale leader's answer agrees with the
        final state on these points."""
        reason = op.reason
        pair = op.pair
        state = d.get("state") if d else None
        gen = d.get("generation") if d else None
        # (A session still LIVE after an answer that ended it is I7's.)
        if reason == "SESSION_CLOSED" and state not in ("CLOSED", "LIVE"):
            return "the committed state has the session %s, not CLOSED" % (state or "unknown")
        if reason == "SESSION_EXPIRED" and state not in ("EXPIRED", "LIVE"):
            return "the committed state has the session %s, not EXPIRED" % (state or "unknown")
        if op.type == "ok" and op.f == "close" and pair is not None:
            if d is not None and (d.get("cart"), gen) != pair:
                return "closed with cart %s gen %s, but the committed state ended it on " \
                       "%s gen %s" % (pair[0], pair[1], d.get("cart"), gen)
            return None
        if pair is not None and pair[1] > 0:
            if d is None:
                return "it names cart %s gen %s, but the committed state has no such " \
                       "session" % pair
            if not _is_uint(gen) or gen < pair[1]:
                return "it names cart %s gen %s, but the session's committed generation is " \
                       "%s (generations only grow)" % (pair[0], pair[1], gen)
        return None

    # -- counts and the verdict --

    def counts(self):
        """Ops by type and f, outcomes, nemesis events by f, and the like."""
        ops = {"invoked": len(self.ops), "ok": 0, "fail": 0, "info": 0, "unfinished": 0,
               "by_f": {}, "outcome": {"ok": 0, "none": 0, "unknown": 0},
               "indefinite_ko": 0, "by_reason": {}}
        for op in self.ops:
            ops[op.type] += 1
            ops["unfinished"] += op.unfinished
            byf = ops["by_f"].setdefault(op.f, {"invoked": 0, "ok": 0, "fail": 0, "info": 0})
            byf["invoked"] += 1
            byf[op.type] += 1
            ops["outcome"][outcome(op)] += 1
            if op.type == "fail" and outcome(op) == "unknown":
                ops["indefinite_ko"] += 1
            if op.type != "ok":
                reason = op.reason or ("NO_ANSWER" if op.answer is None else "?")
                ops["by_reason"][reason] = ops["by_reason"].get(reason, 0) + 1
        nem = {}
        for rec in self.records:
            if rec["process"] == "nemesis":
                d = nem.setdefault(rec["f"], {})
                ph = rec.get("phase", "event")
                d[ph] = d.get(ph, 0) + 1
        return {"records": len(self.records), "ops": ops, "sessions": len(self.sessions),
                "probe_ops": sum(1 for op in self.ops if op.probe), "nemesis": nem,
                "fault_windows": len(self.windows), "healed": self.healed is not None,
                "dump": self.dump is not None}

    def verdict(self):
        """Run every check; the verdict dict."""
        results = [self.check_i2()]  # first: it cuts the sessions into epochs
        results.append(self.check_i1())
        results.extend(self.check_items())
        results.extend([self.check_i5(), self.check_i6(), self.check_i7(), self.check_i8()])
        inv = {res.key: res.to_json(self.max_violations)
               for res in sorted(results, key=lambda x: x.key)}
        return {"valid": all(v["ok"] for v in inv.values()), "bound_s": self.bound_s,
                "grace_s": self.grace_s, "invariants": inv, "counts": self.counts()}


class ProductModel:
    """I3's model of one product in one epoch: the acknowledged quantity,
    the unknown ops that may apply (candidates, one bit each), and the set
    of candidate subsets still consistent with every observation so far
    (kept as its minimal elements: a later observation may add candidates,
    never drop one)."""

    def __init__(self, carried):
        self.definite = 0
        self.candidates = []
        self.sums = [0]  # sums[mask] = total delta of the candidates in mask
        self.states = [0]
        self.undecided = False
        for op in carried:
            self.add_candidate(op)

    def add_candidate(self, op):
        """One more unknown op that may apply (once) from its invoke on."""
        if self.undecided:
            self.candidates.append(op)
            return
        if len(self.candidates) >= SUBSET_CAP_BITS:
            self.undecided = True
            self.candidates.append(op)
            return
        d = delta(op)
        self.candidates.append(op)
        self.sums = self.sums + [x + d for x in self.sums]

    def _allowed(self, t_obs):
        """Bit mask of the candidates invoked before t_obs."""
        m = 0
        for i, op in enumerate(self.candidates):
            if op.t_invoke < t_obs:
                m |= 1 << i
        return m

    def _fits(self, target, allowed, need_bit=None):
        """Subsets of allowed whose delta is target (containing need_bit)."""
        out = []
        for m in range(len(self.sums)):
            if self.sums[m] == target and m & ~allowed == 0 and \
                    (need_bit is None or m & need_bit):
                out.append(m)
        return out

    def observe(self, seen, t_obs):
        """Is `seen` possible now?  If so, narrow the states and say True."""
        allowed = self._allowed(t_obs)
        nxt = [m for m in self._fits(seen - self.definite, allowed)
               if any(s & ~m == 0 for s in self.states)]
        if not nxt:
            return False
        nxt.sort(key=lambda m: bin(m).count("1"))
        minimal = []
        for m in nxt:
            if not any(k & ~m == 0 for k in minimal):
                minimal.append(m)
        self.states = minimal
        return True

    def describe_expectation(self, t_obs):
        """"2" or "2 plus any of: add apple x1 (line 9) ..."."""
        allowed = [op for op in self.candidates if op.t_invoke < t_obs]
        if not allowed:
            return str(self.definite)
        return "%s plus at most once each of: %s" % (
            self.definite, ", ".join(op_name(op) for op in allowed))

    def diagnose(self, seen, t_obs, acked, refused):
        """The simplest explanation of a failed observation: (kind, why).
        Each hypothesis adds an extra effect x to the model (a missing
        acknowledged change, one applied twice, an unknown applied twice, a
        KO'd op applied); among those that fit, one whose x points the way
        the cart deviates (more than any choice allows, or less) wins."""
        allowed = self._allowed(t_obs)
        r = seen - self.definite
        if self._fits(r, allowed):
            return "lost", ("unknown ops seen applied at an earlier answer are not applied "
                            "here: their effect was lost (or shown before it happened)")
        possible = [self.sums[m] for m in range(len(self.sums)) if m & ~allowed == 0]
        direction = 1 if r > max(possible) else -1 if r < min(possible) else 0
        fitting = []  # (x, kind, why)
        for op in reversed(acked):
            if self._fits(r + delta(op), allowed):
                fitting.append((-delta(op), "lost",
                                "acknowledged %s is missing" % op_name(op)))
                break
        for op in reversed(acked):
            if self._fits(r - delta(op), allowed):
                fitting.append((delta(op), "duplicated",
                                "acknowledged %s was applied twice" % op_name(op)))
                break
        for i, op in enumerate(self.candidates):
            if allowed & (1 << i) and self._fits(r - delta(op), allowed, 1 << i):
                fitting.append((delta(op), "unknown_applied_twice",
                                "unknown %s was applied twice" % op_name(op)))
                break
        for op in reversed(refused):
            if op.t_invoke < t_obs and self._fits(r - delta(op), allowed):
                fitting.append((delta(op), "failed_applied", "%s was answered %s but applied"
                                % (op_name(op), op.reason or "KO")))
                break
        if not fitting:
            return "mismatch", "no combination of the session's ops gives %s" % seen
        fitting.sort(key=lambda h: 0 if direction == 0 or h[0] * direction > 0 else 1)
        return fitting[0][1], fitting[0][2]

    def rebase(self, seen, t_obs):
        """After a violation: take the cart's word and forget the candidates
        that could have applied before this observation."""
        keep = [op for op in self.candidates if op.t_invoke >= t_obs]
        self.definite = seen
        self.candidates, self.sums, self.states = [], [0], [0]
        for op in keep:
            self.add_candidate(op)

    def possibly_unapplied(self):
        """Candidates not applied in every remaining state (may still apply)."""
        sure = ~0
        for s in self.states:
            sure &= s
        return [op for i, op in enumerate(self.candidates) if not sure & (1 << i)]


def check(records, bound_s=DEFAULT_BOUND_S, grace_s=DEFAULT_GRACE_S,
          max_violations=MAX_VIOLATIONS):
    """The verdict for a list of history records (dicts, as read_history
    returns them; "_line" optional).  Raises hist.MalformedHistory."""
    return Checker(records, bound_s, grace_s, max_violations).verdict()


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Check a zcart chaos history against DESIGN.md section 4's invariants.",
        epilog="Exit status: 0 valid, 1 an invariant is violated, 2 malformed history.")
    ap.add_argument("history", help="the history, JSON lines (docs/chaos.md)")
    ap.add_argument("--bound", type=float, default=DEFAULT_BOUND_S, metavar="S",
                    help="I7: seconds after healing within which a probe must succeed "
                         "(default %(default)s)")
    ap.add_argument("--grace", type=float, default=DEFAULT_GRACE_S, metavar="S",
                    help="I2: seconds after a fault's end during which answers may still "
                         "have been lost (default %(default)s)")
    ap.add_argument("--max-violations", type=int, default=MAX_VIOLATIONS, metavar="N",
                    help="violations listed per invariant (default %(default)s)")
    ap.add_argument("--out", metavar="FILE", help="also write the verdict to FILE")
    args = ap.parse_args(argv)
    try:
        records = hist.read_history(args.history)
        verdict = check(records, args.bound, args.grace, args.max_violations)
        code = 0 if verdict["valid"] else 1
    except hist.MalformedHistory as e:
        print("checker: %s: %s" % (args.history, e), file=sys.stderr)
        verdict = {"valid": False, "malformed": ["line %s: %s" % x for x in e.errors]}
        code = 2
    except OSError as e:
        print("checker: %s" % e, file=sys.stderr)
        return 2
    text = json.dumps(verdict, indent=2, sort_keys=False)
    print(text)
    if args.out:
        tmp = args.out + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
        os.replace(tmp, args.out)
    return code


if __name__ == "__main__":
    sys.exit(main())
