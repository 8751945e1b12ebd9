#!/usr/bin/python3
"""test_checker: the chaos checker against synthetic histories.

    python3 tests/chaos/test_checker.py [-v]

No processes, no network: histories are built in memory by `Builder`, which
drives `World`, a few-line model of what a correct zcart cluster does
(assign the head of the free list, fence nothing, drain and free on close or
expiry, move a session whose cart was lost and tell it CART_LOST once).
Because the world is correct, a history built from it passes; each
violation test then breaks exactly one thing -- a world rule (a drain that
leaves items, a close that releases nothing), an answer (tamper=), or the
dump -- and asserts that the checker flags that invariant and no other.

Builder API (all times advance by 10 ms per record):

    h = Builder()
    sid = h.add(1, "apple", 2)            # process 1: invoke + OK (new session)
    h.add(1, "pear", 1, mode="unknown")   # UNREACHABLE in doubt, applied
    h.remove(1, "pear", 1, mode="lost")   # UNREACHABLE in doubt, not applied
    late = h.add(1, "kiwi", 1, mode="later")   # UNREACHABLE; late() applies it
    h.add(1, "kiwi", 1, mode=("ko", "CART_UNAVAILABLE"))   # a KO, not applied
    h.list(1); h.close(1)
    tk = h.start(2, "add", "plum", 1); ...; h.finish(tk)    # overlapping ops
    h.nemesis("kill", "start", {"node": "n1"})
    h.healed(); h.probes(); h.dump()
    verdict = h.check()
"""

import contextlib
import copy
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import checker  # noqa: E402
import history  # noqa: E402

ALL = ("I1", "I2", "I3", "I4", "I5", "I6", "I7", "I8")


# --- a correct cluster, in a few lines ------------------------------------------------


class World:
    """What a correct cluster does, at the level the checker sees."""

    def __init__(self, carts=("n1.0", "n1.1", "n1.2", "n2.0", "n2.1", "n2.2")):
        self.carts = {c: {"state": "FREE", "generation": 0, "session": None} for c in carts}
        self.free = list(carts)
        self.slots = {c: {"owner": None, "generation": 0, "reset_generation": 0, "items": {}}
                      for c in carts}
        self.sessions = {}
        self.next_gen = 1
        self.applied = 10
        self.dirty_drain = set()    # carts whose next reset leaves the items (I4 tests)
        self.double_apply = False   # the next applied change is applied twice (I3 tests)

    def _commit(self):
        self.applied += 1

    def _assign(self, sid):
        c = self.free.pop(0)
        gen, self.next_gen = self.next_gen, self.next_gen + 1
        self.carts[c] = {"state": "ASSIGNED", "generation": gen, "session": sid}
        self.sessions[sid] = {"state": "LIVE", "cart": c, "generation": gen, "lost": False}
        self._commit()

    def release(self, sid, why="CLOSED"):
        """Close or expire sid: its cart drains, then is free again."""
        s = self.sessions[sid]
        s["state"] = why
        self.carts[s["cart"]]["state"] = "DRAINING"
        self._commit()
        self.drain(s["cart"])

    def drain(self, c):
        """The cart acknowledged its reset: free it (at the tail)."""
        slot, rec = self.slots[c], self.carts[c]
        if c in self.dirty_drain:
            self.dirty_drain.discard(c)
        else:
            slot["items"] = {}
        slot["owner"] = None
        slot["reset_generation"] = max(slot["reset_generation"], rec["generation"])
        self.carts[c] = {"state": "FREE", "generation": rec["generation"], "session": None}
        self.free.append(c)
        self._commit()

    def lose_cart(self, sid):
        """sid's cart is lost: move sid to the head of the free list."""
        s = self.sessions[sid]
        old = s["cart"]
        self.carts[old]["state"] = "DRAINING"
        c = self.free.pop(0)
        gen, self.next_gen = self.next_gen, self.next_gen + 1
        self.carts[c] = {"state": "ASSIGNED", "generation": gen, "session": sid}
        s.update(cart=c, generation=gen, lost=True)
        self._commit()
        return old

    def do(self, sid, f, product=None, qty=None):
        """Apply one request of session sid; (reason, detail) and the pair/items."""
        if sid not in self.sessions:
            if f == "add":
                self._assign(sid)
            elif f == "remove":
                return "NOT_IN_CART", None, None
            else:
                return "OK", None, None
        s = self.sessions[sid]
        pair = (s["cart"], s["generation"])
        if s["state"] != "LIVE":
            if f == "close":
                return "OK", pair, None
            return "SESSION_" + s["state"], pair, None
        if s["lost"] and f != "close":
            s["lost"] = False
            self._commit()
            return "CART_LOST", pair, {}
        if f == "close":
            self.release(sid)
            return "OK", pair, None
        slot = self.slots[s["cart"]]
        slot["owner"], slot["generation"] = sid, s["generation"]
        items = slot["items"]
        times = 2 if self.double_apply and f in ("add", "remove") else 1
        if f == "add":
            if product == "gold":
                return "OUT_OF_STOCK", pair, dict(items)
            self.double_apply = False
            items[product] = items.get(product, 0) + qty * times
        elif f == "remove":
            if items.get(product, 0) < qty * times:
                return "NOT_IN_CART", pair, dict(items)
            self.double_apply = False
            items[product] -= qty * times
            if not items[product]:
                del items[product]
        return "OK", pair, dict(items)

    # -- dumps --

    def state(self):
        carts = [{"id": c, "state": r["state"], "generation": r["generation"],
                  "session": r["session"], "breaker": {"state": "CLOSED", "mode": "auto"}}
                 for c, r in sorted(self.carts.items())]
        sessions = [{"id": sid, "state": s["state"], "cart": s["cart"],
                     "generation": s["generation"], "lost": s["lost"]}
                    for sid, s in sorted(self.sessions.items())]
        body = {"carts": carts, "free": list(self.free), "sessions": sessions,
                "next_gen": self.next_gen}
        digest = hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
        return dict(body, applied_index=self.applied, digest=digest,
                    applied_commands=self.applied)

    def replicas(self, n=3):
        st = self.state()
        by = {k: sum(1 for c in st["carts"] if c["state"] == k)
              for k in ("FREE", "ASSIGNED", "DRAINING")}
        out = []
        for i in range(1, n + 1):
            status = {"id": i, "role": "leader" if i == 1 else "follower", "term": 4,
                      "applied_index": st["applied_index"], "digest": st["digest"],
                      "reachable": True, "carts_total": len(st["carts"]),
                      "carts_free": by["FREE"], "carts_assigned": by["ASSIGNED"],
                      "carts_draining": by["DRAINING"]}
            out.append({"id": i, "status": status, "state": copy.deepcopy(st)})
        return out

    def cart_dump(self):
        return [{"cart": c, "node": c.split(".")[0], "slot": int(c.split(".")[1]),
                 "owner": s["owner"], "generation": s["generation"],
                 "reset_generation": s["reset_generation"],
                 "items": [{"product": p, "qty": q} for p, q in sorted(s["items"].items())]}
                for c, s in sorted(self.slots.items())]


# --- the history builder --------------------------------------------------------------


class Ticket:
    """An invoked, not yet completed, operation."""

    def __init__(self, process, f, sid, new, product, qty):
        self.process, self.f, self.sid, self.new = process, f, sid, new
        self.product, self.qty = product, qty


def items_list(items):
    return [{"product": p, "qty": q} for p, q in sorted((items or {}).items())]


class Builder:
    """Builds a history by driving a World (see the module docstring)."""

    def __init__(self, world=None, t0=1700000000.0):
        self.world = world or World()
        self.decider = (1, 2)  # (replica_id, term) every answer carries; None: no such keys
        self.records = []
        self.t = t0
        self.sess = {}      # process -> its current session
        self.n_sessions = 0
        self.seq = {}

    def _rec(self, **r):
        self.t += 0.01
        r["t"] = round(self.t, 3)
        self.records.append(r)
        return r

    def wait(self, seconds):
        self.t += seconds

    def session_of(self, process):
        return self.sess.get(process)

    def start(self, process, f, product=None, qty=None):
        sid, new = self.sess.get(process), False
        if sid is None:
            self.n_sessions += 1
            sid = hashlib.md5(b"session %d" % self.n_sessions).hexdigest()
            new = True
            if f == "add":
                self.sess[process] = sid
        value = {"product": product, "qty": qty} if f in ("add", "remove") else {}
        self._rec(process=process, type="invoke", f=f, session=None if new else sid,
                  value=value)
        return Ticket(process, f, sid, new, product, qty)

    def _answer(self, tk, reason, pair, items, **extra):
        self.seq[tk.sid] = self.seq.get(tk.sid, 0) + 1
        a = {"ok": reason == "OK", "op": tk.f, "session": tk.sid, "new_session": tk.new,
             "seq": self.seq[tk.sid], "reason": reason, "detail": ""}
        if reason == "UNREACHABLE":
            a.update(extra)
            return a
        a["cart"], a["generation"] = pair if pair else (None, None)
        a["items"] = items_list(items)
        if self.decider is not None:
            a["replica_id"], a["term"] = self.decider
            a["attempts"] = 1
        return a

    def finish(self, tk, mode="ok", tamper=None):
        """Complete tk; mode: "ok" (apply, the world's answer, which may be a
        KO), "unknown" (apply; UNREACHABLE in doubt), "lost" (not applied;
        UNREACHABLE in doubt), "not-applied" (UNREACHABLE, in_doubt false),
        "later" (not applied yet; UNREACHABLE in doubt; returns a function
        applying it), ("ko", R) (not applied; KO R), ("ko-applied", R)."""
        w, late = self.world, None
        if mode == "ok":
            reason, pair, items = w.do(tk.sid, tk.f, tk.product, tk.qty)
            ans = self._answer(tk, reason, pair, items)
        elif mode in ("unknown", "lost", "not-applied", "later"):
            if mode == "unknown":
                w.do(tk.sid, tk.f, tk.product, tk.qty)
            if mode == "later":
                def late():
                    w.do(tk.sid, tk.f, tk.product, tk.qty)
            ans = self._answer(tk, "UNREACHABLE", None, None, in_doubt=mode != "not-applied")
        else:
            kind, reason = mode
            if kind == "ko-applied":
                w.do(tk.sid, tk.f, tk.product, tk.qty)
            s = w.sessions.get(tk.sid)
            pair = (s["cart"], s["generation"]) if s else None
            # A KO the cart decided shows its contents, like the real cart's.
            items = w.slots[s["cart"]]["items"] if s and reason in checker.CART_DECIDED else {}
            ans = self._answer(tk, reason, pair, dict(items))
        if tamper:
            ans = tamper(ans) or ans
        value = {"product": tk.product, "qty": tk.qty} if tk.f in ("add", "remove") else {}
        self._rec(process=tk.process, type=history.classify(ans), f=tk.f, session=tk.sid,
                  value=value, answer=ans)
        if (tk.f == "close" and ans["ok"]) or ans["reason"] in ("SESSION_CLOSED",
                                                                "SESSION_EXPIRED"):
            if self.sess.get(tk.process) == tk.sid:
                del self.sess[tk.process]
        return late or ans

    def op(self, process, f, product=None, qty=None, mode="ok", tamper=None):
        return self.finish(self.start(process, f, product, qty), mode, tamper)

    def add(self, process, product, qty, mode="ok", tamper=None):
        r = self.op(process, "add", product, qty, mode, tamper)
        return self.sess.get(process) if mode == "ok" and not callable(r) else r

    def remove(self, process, product, qty, mode="ok", tamper=None):
        return self.op(process, "remove", product, qty, mode, tamper)

    def list(self, process, mode="ok", tamper=None):
        return self.op(process, "list", mode=mode, tamper=tamper)

    def close(self, process, mode="ok", tamper=None):
        return self.op(process, "close", mode=mode, tamper=tamper)

    def nemesis(self, f, phase, value=None):
        self._rec(process="nemesis", type="info", f=f, phase=phase, value=value or {})

    def healed(self):
        self._rec(process="final", type="healed")

    def probes(self, fail=False, delay=0.0):
        """One probe session (add apple 1, list, close) as process "final";
        fail: its ops get UNREACHABLE (not applied); delay: seconds first."""
        self.wait(delay)
        saved = self.sess.pop("final", None)
        for f, p, q in (("add", "apple", 1), ("list", None, None), ("close", None, None)):
            if f != "add" and "final" not in self.sess:
                break
            self.op("final", f, p, q, mode="not-applied" if fail else "ok")
        if saved:
            self.sess["final"] = saved

    def service(self, breakers=(), after_heal_s=40.0, quiet=None):
        """The post-heal service record: the leader's breakers list, taken
        after_heal_s after the healed record (quiet: no breakers)."""
        self._rec(process="final", type="service",
                  value={"quiet": (not breakers) if quiet is None else quiet,
                         "after_heal_s": after_heal_s, "why": None,
                         "breakers": [dict(b) for b in breakers]})

    def dump(self, tamper_replicas=None, tamper_carts=None):
        reps, carts = self.world.replicas(), self.world.cart_dump()
        if tamper_replicas:
            tamper_replicas(reps)
        if tamper_carts:
            tamper_carts(carts)
        self._rec(process="final", type="dump", value={"replicas": reps, "carts": carts})

    def finish_run(self, probes=True, dump=True):
        """The usual ending: healed, one probe session, the dump."""
        self.healed()
        if probes:
            self.probes()
        if dump:
            self.dump()

    def check(self, **kw):
        return checker.check(copy.deepcopy(self.records), **kw)

    def jsonl(self):
        return "".join(json.dumps(r) + "\n" for r in self.records)


def clean_history():
    """Every feature a correct run shows: concurrent sessions, unknown
    outcomes applied, not applied and applied late, definite and indefinite
    KOs, a cart loss told with CART_LOST, an expiry, faults, probes."""
    h = Builder()
    h.nemesis("pause", "start", {"node": "broker1"})
    a = h.add(1, "apple", 2)
    b = h.add(2, "pear", 1)
    tk = h.start(1, "add", "pear", 3)        # two sessions' ops overlap in time
    h.add(2, "apple", 1)
    h.finish(tk)
    h.add(1, "kiwi", 1, mode="unknown")      # applied, answer lost
    h.remove(1, "apple", 1, mode="lost")     # not applied, answer lost
    h.add(1, "plum", 2, mode="not-applied")  # known not applied
    late = h.add(2, "kiwi", 2, mode="later")  # takes effect after later ops
    h.list(2)
    late()
    h.list(2)
    h.add(1, "gold", 1)                      # OUT_OF_STOCK, shows the items
    h.remove(1, "plum", 5)                   # NOT_IN_CART, shows the items
    h.add(1, "apple", 1, mode=("ko-applied", "CART_UNAVAILABLE"))  # indefinite KO
    h.list(1)
    h.add(2, "plum", 1, mode=("ko", "STOCK_TIMEOUT"))
    h.nemesis("pause", "stop", {"node": "broker1"})
    h.close(1)
    # process 1 starts a second session, whose cart is lost.
    c = h.add(1, "plum", 1)
    h.nemesis("kill", "start", {"node": h.world.sessions[c]["cart"].split(".")[0]})
    h.world.lose_cart(c)
    h.add(1, "apple", 1)                     # CART_LOST: not applied
    h.add(1, "pear", 2)                      # on the new, empty cart
    h.list(1)
    h.nemesis("kill", "stop", {})
    # process 3: a session that expires.
    d = h.add(3, "apple", 1)
    h.world.release(d, "EXPIRED")
    h.list(3)                                # SESSION_EXPIRED
    h.add(3, "pear", 1)                      # a new session
    lost_old = [k for k, v in h.world.carts.items() if v["state"] == "DRAINING"]
    for k in lost_old:                       # the lost cart's node came back
        h.world.drain(k)
    h.healed()
    h.probes()
    h.service()
    h.dump()
    return h, (a, b, c, d)


def only(verdict, *keys):
    """The invariants that failed, as a sorted tuple."""
    return tuple(sorted(k for k, v in verdict["invariants"].items() if not v["ok"]))


def text(verdict, key):
    return "\n".join(verdict["invariants"][key]["violations"])


class Base(unittest.TestCase):
    def assertOnly(self, verdict, *keys):
        self.assertEqual(only(verdict), tuple(sorted(keys)),
                         json.dumps(verdict["invariants"], indent=1))
        self.assertFalse(verdict["valid"])

    def assertValid(self, verdict):
        self.assertEqual(only(verdict), (), json.dumps(verdict["invariants"], indent=1))
        self.assertTrue(verdict["valid"])


# --- clean histories ------------------------------------------------------------------


class CleanHistories(Base):
    def test_clean_history_passes_every_invariant(self):
        h, _ = clean_history()
        v = h.check()
        self.assertValid(v)
        self.assertEqual(set(v["invariants"]), set(ALL))
        inv = v["invariants"]
        self.assertEqual(inv["I2"]["counts"].get("moves_told"), 1)
        self.assertGreaterEqual(inv["I3"]["counts"]["unknown_ops"], 3)
        self.assertEqual(inv["I3"]["counts"].get("undecided", 0), 0)
        self.assertGreaterEqual(inv["I7"]["counts"]["ended_sessions_checked"], 2)
        self.assertEqual(inv["I7"]["counts"]["probes_ok"], 3)

    def test_counts(self):
        h, _ = clean_history()
        c = h.check()["counts"]
        ops = c["ops"]
        self.assertEqual(ops["invoked"], ops["ok"] + ops["fail"] + ops["info"])
        self.assertEqual(ops["invoked"], sum(1 for r in h.records if r["type"] == "invoke"))
        self.assertEqual(ops["by_f"]["add"]["invoked"],
                         sum(1 for r in h.records if r["type"] == "invoke" and r["f"] == "add"))
        self.assertEqual(ops["info"], 4)
        self.assertEqual(ops["indefinite_ko"], 1)
        self.assertEqual(c["nemesis"], {"pause": {"start": 1, "stop": 1},
                                        "kill": {"start": 1, "stop": 1}})
        self.assertEqual(c["probe_ops"], 3)

    def test_empty_history_is_not_valid_without_dump_or_heal(self):
        v = checker.check([])
        self.assertOnly(v, "I5", "I6", "I7")

    def test_unknown_remove_applied_later_is_fine(self):
        h = Builder()
        h.add(1, "apple", 3)
        late = h.remove(1, "apple", 1, mode="later")
        h.list(1)
        late()
        h.add(1, "pear", 1)
        h.list(1)
        h.finish_run()
        self.assertValid(h.check())

    def test_unknown_first_add_never_applied(self):
        h = Builder()
        h.add(1, "apple", 1, mode="lost")   # the session never got a cart
        h.add(1, "pear", 1)                 # its retry-free next add does
        h.list(1)
        h.finish_run()
        self.assertValid(h.check())

    def test_silent_move_during_a_fault_is_excused(self):
        h = Builder()
        s = h.add(1, "apple", 1)
        h.nemesis("partition-carts", "start", {"node": "n1"})
        h.world.lose_cart(s)
        h.world.sessions[s]["lost"] = False   # the CART_LOST answer was lost in a failover
        h.add(1, "pear", 1)                   # the next reply shows the new cart
        h.nemesis("partition-carts", "stop", {})
        h.list(1)
        for k, c in list(h.world.carts.items()):
            if c["state"] == "DRAINING":
                h.world.drain(k)
        h.finish_run()
        v = h.check()
        self.assertValid(v)
        self.assertEqual(v["invariants"]["I2"]["counts"].get("moves_untold"), 1)

    def test_silent_move_after_an_unknown_op_is_excused(self):
        h = Builder()
        s = h.add(1, "apple", 1)
        h.world.lose_cart(s)
        h.add(1, "kiwi", 1, mode="unknown")   # got the CART_LOST; the answer was lost
        h.add(1, "pear", 1)
        for k, c in list(h.world.carts.items()):
            if c["state"] == "DRAINING":
                h.world.drain(k)
        h.finish_run()
        self.assertValid(h.check())

    def test_close_of_a_moved_session_names_the_new_cart(self):
        h = Builder()
        s = h.add(1, "apple", 1)
        h.world.lose_cart(s)
        h.close(1)                            # close skips CART_LOST
        for k, c in list(h.world.carts.items()):
            if c["state"] == "DRAINING":
                h.world.drain(k)
        h.finish_run()
        self.assertValid(h.check())

    def test_many_unknowns_are_undecided_not_failed(self):
        h = Builder()
        h.add(1, "apple", 1)
        for _ in range(checker.SUBSET_CAP_BITS + 1):
            h.add(1, "apple", 1, mode="unknown")
        h.list(1)
        h.finish_run()
        v = h.check()
        self.assertValid(v)
        self.assertEqual(v["invariants"]["I3"]["counts"]["undecided"], 1)

    def test_cart_reused_by_a_later_session(self):
        h = Builder(World(carts=("n1.0",)))
        h.add(1, "apple", 1)
        h.close(1)
        h.add(2, "pear", 1)                   # same cart, next generation, empty
        h.list(2)
        h.finish_run(probes=False)
        h.records.pop()                       # drop the dump: add the probe first
        h.close(2)
        h.probes()
        h.dump()
        self.assertValid(h.check())


# --- one violation each ---------------------------------------------------------------


def set_cart(cart, gen):
    """A tamper= that makes an answer name (cart, gen)."""
    def t(a):
        a["cart"], a["generation"] = cart, gen
    return t


class Violations(Base):
    # I1
    def test_i1_two_sessions_on_one_cart_and_generation(self):
        h = Builder()
        a = h.add(1, "apple", 1)
        pair = (h.world.sessions[a]["cart"], h.world.sessions[a]["generation"])
        h.add(2, "pear", 1, tamper=set_cart(*pair))
        h.list(2, tamper=set_cart(*pair))
        h.finish_run()
        v = h.check()
        self.assertOnly(v, "I1")
        self.assertIn("served 2 sessions", text(v, "I1"))

    def test_i1_fenced_by_an_older_owner_never_reset(self):
        # The new session's first add is refused because the cart's node still
        # holds the previous owner: the cart was handed on before its reset.
        def detail(text):
            def tamper(a):
                a["detail"] = text
            return tamper
        h = Builder()
        h.add(1, "apple", 1)
        h.add(1, "pear", 1, mode=("ko", "FENCED"),
              tamper=detail("the cart still holds an older owner (not reset)"))
        h.finish_run()
        v = h.check()
        self.assertOnly(v, "I1")
        self.assertEqual(v["invariants"]["I1"]["counts"]["unreset_owner_fences"], 1)
        self.assertIn("never reset", text(v, "I1"))
        # The fences a correct cart gives stale requests are fine.
        for d in ("generation already reset", "a newer generation owns the cart"):
            h = Builder()
            h.add(1, "apple", 1)
            h.add(1, "pear", 1, mode=("ko", "FENCED"), tamper=detail(d))
            h.finish_run()
            self.assertTrue(h.check()["valid"], d)

    def test_i1_older_generation_served_after_newer(self):
        h = Builder()
        a = h.add(1, "apple", 1)
        cart = h.world.sessions[a]["cart"]
        h.add(2, "pear", 1, tamper=set_cart(cart, 50))   # B holds cart at gen 50
        h.list(1)                                        # then A (gen 1) is served again
        h.finish_run()
        v = h.check()
        self.assertOnly(v, "I1")
        self.assertIn("after session", text(v, "I1"))

    def test_i1_dump_two_live_sessions_on_one_cart(self):
        h = Builder()
        a = h.add(1, "apple", 1)
        b = h.add(2, "pear", 1)
        h.healed()
        h.probes()

        def two_on_one(reps):
            for r in reps:
                sa = next(s for s in r["state"]["sessions"] if s["id"] == a)
                sb = next(s for s in r["state"]["sessions"] if s["id"] == b)
                sb["cart"], sb["generation"] = sa["cart"], sa["generation"]
        h.dump(tamper_replicas=two_on_one)
        v = h.check()
        self.assertOnly(v, "I1")
        self.assertIn("LIVE sessions", text(v, "I1"))

    def test_i1_node_owner_disagrees(self):
        h = Builder()
        a = h.add(1, "apple", 1)
        cart = h.world.sessions[a]["cart"]
        h.healed()
        h.probes()

        def other_owner(carts):
            for c in carts:
                if c["cart"] == cart:
                    c["owner"] = "f" * 32
        h.dump(tamper_carts=other_owner)
        self.assertOnly(h.check(), "I1")

    # I2
    def test_i2_session_changes_cart_without_cart_lost(self):
        h = Builder()
        h.add(1, "apple", 1)
        h.add(1, "pear", 1, tamper=set_cart("n9.0", 77))
        h.list(1, tamper=set_cart("n9.0", 77))
        h.finish_run()
        v = h.check()
        self.assertOnly(v, "I2")
        self.assertIn("without CART_LOST", text(v, "I2"))

    def test_i2_cart_lost_to_an_older_generation(self):
        h = Builder()
        h.add(1, "apple", 1)
        h.add(1, "pear", 1, mode=("ko", "CART_LOST"), tamper=set_cart("n9.0", 0))
        h.finish_run()
        self.assertOnly(h.check(), "I2")

    def test_i2_ok_answer_with_no_cart(self):
        h = Builder()
        h.add(1, "apple", 1)

        def no_cart(a):
            a["cart"] = a["generation"] = None
            a["items"] = []
        h.list(1, tamper=no_cart)
        h.finish_run()
        self.assertOnly(h.check(), "I2")

    # I3
    def test_i3_lost_acknowledged_add(self):
        h = Builder()
        s = h.add(1, "apple", 2)
        h.world.slots[h.world.sessions[s]["cart"]]["items"].pop("apple")  # the cart forgets
        h.add(1, "pear", 1)
        h.list(1)
        h.finish_run()
        v = h.check()
        self.assertOnly(v, "I3")
        self.assertEqual(v["invariants"]["I3"]["counts"]["lost"], 1)
        self.assertIn("acknowledged add apple x2", text(v, "I3"))

    def test_i3_lost_at_the_end_seen_in_the_dump(self):
        h = Builder()
        h.add(1, "apple", 2)
        h.add(1, "pear", 1)
        h.healed()
        h.probes()

        def forget_pear(carts):
            for c in carts:
                c["items"] = [i for i in c["items"] if i["product"] != "pear"]
        h.dump(tamper_carts=forget_pear)
        v = h.check()
        self.assertOnly(v, "I3")
        self.assertIn("final dump", text(v, "I3"))

    def test_i3_duplicated_add(self):
        h = Builder()
        h.add(1, "apple", 1)
        h.add(1, "pear", 2)
        h.world.double_apply = True   # the next apple add is applied twice
        h.add(1, "apple", 1, tamper=lambda a: a.update(items=items_list({"apple": 2,
                                                                        "pear": 2})))
        h.list(1)
        h.finish_run()
        v = h.check()
        self.assertOnly(v, "I3")
        self.assertEqual(v["invariants"]["I3"]["counts"]["duplicated"], 1)

    def test_i3_unknown_applied_twice(self):
        h = Builder()
        h.add(1, "apple", 1)
        h.world.double_apply = True
        h.add(1, "kiwi", 2, mode="unknown")
        h.list(1)
        h.finish_run()
        v = h.check()
        self.assertOnly(v, "I3")
        self.assertEqual(v["invariants"]["I3"]["counts"]["unknown_applied_twice"], 1)
        self.assertIn("unknown add kiwi x2", text(v, "I3"))

    def test_i3_definite_ko_applied(self):
        h = Builder()
        h.add(1, "apple", 1)
        h.add(1, "pear", 1, mode=("ko-applied", "STOCK_TIMEOUT"))
        h.list(1)
        h.finish_run()
        v = h.check()
        self.assertOnly(v, "I3")
        self.assertEqual(v["invariants"]["I3"]["counts"]["failed_applied"], 1)

    def test_i3_storage_full_and_forbidden_are_definite(self):
        # A cart's STORAGE_FULL and the broker's FORBIDDEN say "not applied":
        # a change seen after one is a KO that took effect.
        for reason in ("STORAGE_FULL", "FORBIDDEN"):
            with self.subTest(reason=reason):
                h = Builder()
                h.add(1, "apple", 1)
                h.add(1, "pear", 1, mode=("ko-applied", reason))
                h.list(1)
                h.finish_run()
                v = h.check()
                self.assertOnly(v, "I3")
                self.assertEqual(v["invariants"]["I3"]["counts"]["failed_applied"], 1)

    def test_i3_busy_after_one_try_is_definite(self):
        h = Builder()
        h.add(1, "apple", 1)
        h.add(1, "pear", 1, mode=("ko-applied", "BUSY"))  # the Builder's answers: attempts 1
        h.list(1)
        h.finish_run()
        v = h.check()
        self.assertOnly(v, "I3")
        self.assertEqual(v["invariants"]["I3"]["counts"]["failed_applied"], 1)

    def test_i3_busy_after_several_tries_is_unknown(self):
        # libzcart resends on BUSY and after an unanswered try: the try before
        # the last BUSY may have been applied, so a change seen later is fine,
        # once; and so is a BUSY whose answer does not count its tries.
        def tries(n):
            def tamper(a):
                if n is None:
                    a.pop("attempts", None)
                else:
                    a["attempts"] = n
            return tamper
        for n in (3, None):
            with self.subTest(attempts=n):
                h = Builder()
                h.add(1, "apple", 1)
                h.add(1, "pear", 1, mode=("ko-applied", "BUSY"), tamper=tries(n))
                h.list(1)
                h.add(1, "kiwi", 1, mode=("ko", "BUSY"), tamper=tries(n))
                h.list(1)
                h.finish_run()
                v = h.check()
                self.assertTrue(v["valid"], v)
                self.assertEqual(v["counts"]["ops"]["indefinite_ko"], 2)

    def test_i3_unknown_seen_then_gone(self):
        h = Builder()
        s = h.add(1, "apple", 1)
        h.add(1, "kiwi", 1, mode="unknown")
        h.list(1)                                   # kiwi: applied
        h.world.slots[h.world.sessions[s]["cart"]]["items"].pop("kiwi")
        h.list(1)                                   # kiwi: gone
        h.finish_run()
        v = h.check()
        self.assertOnly(v, "I3")
        self.assertEqual(v["invariants"]["I3"]["counts"]["lost"], 1)

    # I4
    def test_i4_dirty_cart_handed_to_a_new_session(self):
        h = Builder(World(carts=("n1.0", "n1.1")))
        a = h.add(1, "apple", 2)
        h.world.dirty_drain.add(h.world.sessions[a]["cart"])
        h.close(1)                          # the drain "forgets" to empty the cart
        h.add(2, "pear", 1)                 # n1.1
        h.add(3, "plum", 1)                 # n1.0 again: shows apple x2
        h.list(3)
        h.close(2)
        h.close(3)
        h.finish_run()
        v = h.check()
        self.assertOnly(v, "I4")
        self.assertIn("dirty cart", text(v, "I4"))

    def test_i4_new_cart_after_cart_lost_not_empty(self):
        h = Builder()
        s = h.add(1, "apple", 1)
        new_cart = h.world.free[0]
        h.world.slots[new_cart]["items"] = {"gold": 1}   # left in the spare cart
        h.world.lose_cart(s)
        h.add(1, "pear", 1)                             # CART_LOST
        h.add(1, "pear", 1)                             # shows gold x1
        for k, c in list(h.world.carts.items()):
            if c["state"] == "DRAINING":
                h.world.drain(k)
        h.close(1)
        h.finish_run()
        v = h.check()
        self.assertOnly(v, "I4")

    def test_i4_foreign_item_later(self):
        h = Builder()
        s = h.add(1, "apple", 1)
        h.add(1, "pear", 1)
        h.world.slots[h.world.sessions[s]["cart"]]["items"]["gold"] = 5
        h.list(1)
        h.finish_run()
        v = h.check()
        self.assertOnly(v, "I4")
        self.assertIn("foreign item", text(v, "I4"))

    def test_i4_free_cart_dirty_in_the_dump(self):
        h = Builder()
        h.add(1, "apple", 1)
        h.healed()
        h.probes()
        free = h.world.free[-1]

        def dirty(carts):
            for c in carts:
                if c["cart"] == free:
                    c["items"] = [{"product": "apple", "qty": 1}]
        h.dump(tamper_carts=dirty)
        v = h.check()
        self.assertOnly(v, "I4")
        self.assertIn("free cart", text(v, "I4"))

    # I5
    def test_i5_registry_does_not_add_up(self):
        h = Builder()
        h.add(1, "apple", 1)
        h.healed()
        h.probes()

        def drop_free(reps):
            for r in reps:                  # on every replica alike: not an I6 matter
                r["state"]["free"].pop()
        h.dump(tamper_replicas=drop_free)
        v = h.check()
        self.assertOnly(v, "I5")
        self.assertIn("not on the free list", text(v, "I5"))

    def test_i5_status_counts_disagree(self):
        h = Builder()
        h.add(1, "apple", 1)
        h.healed()
        h.probes()

        def bad_status(reps):
            reps[2]["status"]["carts_free"] += 1
            reps[2]["status"]["carts_total"] += 1
        h.dump(tamper_replicas=bad_status)
        self.assertOnly(h.check(), "I5")

    def test_i5_cart_on_free_list_twice(self):
        h = Builder()
        h.healed()
        h.probes()

        def twice(reps):
            for r in reps:
                r["state"]["free"].append(r["state"]["free"][0])
        h.dump(tamper_replicas=twice)
        v = h.check()
        self.assertOnly(v, "I5")
        self.assertIn("twice", text(v, "I5"))

    # I6
    def test_i6_diverging_digests(self):
        h = Builder()
        h.add(1, "apple", 1)
        h.healed()
        h.probes()

        def diverge(reps):
            reps[1]["state"]["digest"] = reps[1]["status"]["digest"] = "deadbeefdeadbeef"
        h.dump(tamper_replicas=diverge)
        v = h.check()
        self.assertOnly(v, "I6")
        self.assertIn("differ", text(v, "I6"))

    def test_i6_free_list_order_differs(self):
        h = Builder()
        h.healed()
        h.probes()

        def reorder(reps):
            reps[2]["state"]["free"].reverse()
        h.dump(tamper_replicas=reorder)
        v = h.check()
        self.assertOnly(v, "I6")
        self.assertIn("free-list order", text(v, "I6"))

    # I7
    def test_i7_no_successful_probe_after_healing(self):
        h = Builder()
        h.add(1, "apple", 1)
        h.healed()
        h.probes(fail=True)
        h.dump()
        v = h.check()
        self.assertOnly(v, "I7")
        self.assertIn("no probe succeeded", text(v, "I7"))

    def test_i7_probe_beyond_the_bound(self):
        h = Builder()
        h.healed()
        h.probes(delay=45.0)
        h.dump()
        self.assertOnly(h.check(bound_s=30), "I7")
        self.assertValid(h.check(bound_s=60))

    def test_i7_no_healed_record(self):
        h = Builder()
        h.add(1, "apple", 1)
        h.dump()
        self.assertOnly(h.check(), "I7")

    def test_i7_closed_session_still_live(self):
        h = Builder()
        a = h.add(1, "apple", 1)
        real_release = h.world.release
        h.world.release = lambda sid, why="CLOSED": None   # the close releases nothing
        h.close(1)
        h.world.release = real_release
        h.finish_run()
        v = h.check()
        self.assertOnly(v, "I7")
        self.assertIn("LIVE", text(v, "I7"))
        self.assertIn(a[:8], text(v, "I7"))

    def test_i7_expired_sessions_cart_never_drains(self):
        h = Builder()
        s = h.add(1, "apple", 1)
        h.world.drain = lambda c: None                     # the reset never completes
        h.world.release(s, "EXPIRED")
        h.list(1)                                          # SESSION_EXPIRED
        h.finish_run()
        v = h.check()
        self.assertOnly(v, "I7")
        self.assertIn("DRAINING", text(v, "I7"))

    # -- I8: who decided, and the broker's answers against the committed state --

    def test_i8_clean_history_names_one_leader_per_term(self):
        h, _ = clean_history()
        v = h.check()
        self.assertValid(v)
        c = v["invariants"]["I8"]["counts"]
        self.assertEqual(c["terms"], 1)
        self.assertGreater(c["answers_with_term"], 20)
        self.assertGreater(c["answers_compared"], 0)

    def test_i8_leader_change_is_fine(self):
        h = Builder()
        h.add(1, "apple", 1)
        h.decider = (2, 3)                                 # a new leader, a new term
        h.add(1, "pear", 1)
        h.decider = (1, 2)                                 # the old one relays a late answer
        h.list(1)
        h.decider = (3, 0)                                 # a follower's NOT_LEADER: no term
        h.add(2, "plum", 1, mode=("ko", "NOT_LEADER"))
        h.decider = (2, 3)
        h.finish_run()
        v = h.check()
        self.assertValid(v)
        self.assertEqual(v["invariants"]["I8"]["counts"]["terms"], 2)

    def test_i8_ok_from_a_replica_that_was_not_a_ready_leader(self):
        h = Builder()
        h.add(1, "apple", 1)
        h.decider = (3, 0)                                 # a follower serving as leader
        h.list(1)
        h.decider = (1, 2)
        h.finish_run()
        v = h.check()
        self.assertOnly(v, "I8")
        self.assertIn("replica 3, which was not a ready leader", text(v, "I8"))

    def test_i8_two_replicas_decide_in_one_term(self):
        h = Builder()
        h.add(1, "apple", 1)
        h.decider = (2, 2)                                 # replica 1 leads term 2, not 2
        h.add(1, "pear", 1)
        h.decider = (1, 2)
        h.finish_run()
        v = h.check()
        self.assertOnly(v, "I8")
        self.assertIn("term 2 has two deciding replicas, 1 and 2", text(v, "I8"))

    def test_i8_session_expired_answer_for_a_closed_session(self):
        h = Builder()
        h.add(1, "apple", 1)
        h.close(1)
        sid = h.add(2, "pear", 1)
        h.world.release(sid, "CLOSED")                     # committed: CLOSED
        h.list(2, mode=("ko", "SESSION_EXPIRED"))          # but a broker said EXPIRED
        h.finish_run()
        v = h.check()
        self.assertOnly(v, "I8")
        self.assertIn("CLOSED, not EXPIRED", text(v, "I8"))

    def test_i8_close_names_a_cart_the_session_did_not_end_on(self):
        h = Builder()
        s = h.add(1, "apple", 1)
        h.close(1)
        h.healed()
        h.probes()

        def older(reps):                                   # committed: another generation
            for r in reps:
                for x in r["state"]["sessions"]:
                    if x["id"] == s:
                        x["generation"] += 100
        h.dump(tamper_replicas=older)
        v = h.check()
        self.assertOnly(v, "I8")
        self.assertIn("ended it on", text(v, "I8"))

    def test_i8_broker_answer_names_a_generation_never_committed(self):
        h = Builder()
        h.add(1, "apple", 1)
        h.add(1, "apple", 1, mode=("ko", "NO_FREE_CART"), tamper=set_cart("n1.0", 99))
        h.finish_run()
        v = h.check()
        self.assertIn("I8", only(v))
        self.assertIn("generations only grow", text(v, "I8"))

    def test_i8_keepalive_of_a_closed_session_acknowledged(self):
        def renewed(term=None):
            def tamper(a):
                a.update(ok=True, reason="OK")
                if term is not None:
                    a["term"] = term
            return tamper

        def closed_then_keepalive(tamper=None):
            h = Builder()
            s = h.add(1, "apple", 1)
            h.close(1)
            h.sess[1] = s  # the workload's keepalive on the session it closed
            h.op(1, "keepalive", tamper=tamper)
            h.finish_run()
            return h.check()
        v = closed_then_keepalive(renewed())
        self.assertOnly(v, "I8")
        self.assertIn("closed session was renewed", text(v, "I8"))
        # What a correct cluster answers, and a deposed leader's stale OK
        # (an older term than the close's), pass.
        v = closed_then_keepalive()
        self.assertTrue(v["valid"], v)
        self.assertEqual(v["counts"]["ops"]["by_reason"].get("SESSION_CLOSED"), 1)
        v = closed_then_keepalive(renewed(term=1))
        self.assertTrue(v["valid"], v)
        self.assertEqual(v["invariants"]["I8"]["counts"]["ops_after_close"], 1)
        # A close that found no session (no cart: its first add never
        # committed) ends nothing: a keepalive answered OK after it is fine.
        h = Builder()
        s = h.add(1, "apple", 1, mode="lost")  # the first add never applied
        h.sess[1] = h.records[-1]["session"] or hashlib.md5(b"session 1").hexdigest()
        h.close(1)
        h.sess[1] = hashlib.md5(b"session 1").hexdigest()
        h.op(1, "keepalive")
        h.finish_run()
        v = h.check()
        self.assertTrue(v["valid"], v)

    def test_i8_history_without_terms_is_noted_not_failed(self):
        h = Builder()
        h.decider = None                                   # an older client: no term keys
        h.add(1, "apple", 1)
        h.list(1)
        h.finish_run()
        v = h.check()
        self.assertValid(v)
        self.assertIn("carry no term", " ".join(v["invariants"]["I8"].get("notes", [])))


    # I7, every cart back in service (issue 11)
    def brk(self, cart="n2.1", state="HALF_OPEN", mode="auto", why="failures",
            cart_state="FREE"):
        return {"cart": cart, "state": state, "mode": mode, "why": why, "since_ms": 1,
                "trips": 1, "probes": 1, "cart_state": cart_state}

    def service_history(self, breakers, after_heal_s=40.0, tamper_carts=None):
        h = Builder()
        h.add(1, "apple", 1)
        h.close(1)
        h.healed()
        h.probes()
        h.service(breakers, after_heal_s)
        h.dump(tamper_carts=tamper_carts)
        return h.check(bound_s=30)

    def test_i7_free_cart_left_out_of_service(self):
        v = self.service_history([self.brk()])
        self.assertOnly(v, "I7")
        self.assertIn("cart n2.1 of a live node is FREE with its breaker HALF_OPEN (failures",
                      text(v, "I7"))
        self.assertEqual(v["invariants"]["I7"]["counts"]["out_of_service"], 1)

    def test_i7_draining_cart_left_out_of_service(self):
        v = self.service_history([self.brk("n1.0", "OPEN", why="heartbeat",
                                           cart_state="DRAINING")])
        self.assertOnly(v, "I7")
        self.assertIn("n1.0", text(v, "I7"))

    def test_i7_breakers_that_leave_no_cart_out_of_service(self):
        ok = [self.brk(cart_state="ASSIGNED"),          # its session's next request probes it
              self.brk(state="OPEN", mode="forced-open", why="operator"),   # the operator's
              self.brk(state="CLOSED", mode="forced-closed", why="none"),
              self.brk(cart="n9.0")]                    # no slot dump: node not known up
        v = self.service_history(ok)
        self.assertValid(v)
        self.assertEqual(v["invariants"]["I7"]["counts"]["out_of_service"], 0)

    def test_i7_out_of_service_under_the_bound_is_undecided(self):
        v = self.service_history([self.brk()], after_heal_s=12.0)
        self.assertValid(v)
        self.assertTrue(any("undecided" in n for n in v["invariants"]["I7"].get("notes", [])),
                        v["invariants"]["I7"])

    def test_i7_no_service_record_is_noted(self):
        h = Builder()
        h.finish_run()
        v = h.check()
        self.assertValid(v)
        self.assertTrue(any("not checked" in n for n in v["invariants"]["I7"].get("notes", [])),
                        v["invariants"]["I7"])

    def test_service_record_is_validated(self):
        h = Builder()
        h.healed()
        h._rec(process="final", type="service", value={"quiet": "yes", "breakers": {}})
        with self.assertRaises(history.MalformedHistory) as e:
            h.check()
        self.assertIn("quiet", str(e.exception))
        self.assertIn("breakers", str(e.exception))


# --- the file format and the command line ---------------------------------------------


def run_cli(args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = checker.main(args)
    return code, out.getvalue(), err.getvalue()


class Files(Base):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)

    def path(self, name):
        return os.path.join(self.dir.name, name)

    def write(self, name, text):
        with open(self.path(name), "w") as fh:
            fh.write(text)
        return self.path(name)

    def test_cli_valid_invalid_and_out(self):
        h, _ = clean_history()
        good = self.write("good.jsonl", h.jsonl())
        code, out, _ = run_cli([good, "--out", self.path("v.json")])
        self.assertEqual(code, 0)
        self.assertTrue(json.loads(out)["valid"])
        with open(self.path("v.json")) as fh:
            self.assertEqual(json.load(fh), json.loads(out))
        h2 = Builder()
        h2.healed()
        h2.probes(fail=True)
        h2.dump()
        bad = self.write("bad.jsonl", h2.jsonl())
        code, out, _ = run_cli([bad])
        self.assertEqual(code, 1)
        self.assertFalse(json.loads(out)["invariants"]["I7"]["ok"])

    def test_cli_bound_option(self):
        h = Builder()
        h.healed()
        h.probes(delay=10.0)
        h.dump()
        p = self.write("h.jsonl", h.jsonl())
        self.assertEqual(run_cli([p, "--bound", "5"])[0], 1)
        self.assertEqual(run_cli([p, "--bound", "20"])[0], 0)

    def malformed(self, lines, *expect):
        p = self.write("m.jsonl", "\n".join(lines) + "\n")
        code, out, err = run_cli([p])
        self.assertEqual(code, 2, err)
        for e in expect:
            self.assertIn(e, err)
        self.assertFalse(json.loads(out)["valid"])
        self.assertTrue(json.loads(out)["malformed"])
        return err

    def test_malformed_not_json(self):
        h, _ = clean_history()
        lines = h.jsonl().splitlines()
        lines.insert(3, '{"t": 1, "process": 1, "type": "invo')
        self.malformed(lines, "line 4", "not JSON")

    def test_malformed_fields(self):
        self.malformed([json.dumps({"t": "soon", "process": 1, "type": "invoke", "f": "add"})],
                       "line 1", "t ")
        self.malformed([json.dumps({"t": 1.0, "process": 1, "type": "invoke", "f": "buy",
                                    "session": None, "value": {}})], "line 1", "f 'buy'")
        self.malformed([json.dumps({"t": 1.0, "process": 1, "type": "invoke", "f": "add",
                                    "session": "xyz", "value": {"product": "a", "qty": 0}})],
                       "session", "qty")
        self.malformed([json.dumps({"t": 1.0, "process": [1], "type": "invoke"})], "process")
        self.malformed([json.dumps({"t": 1.0, "process": "final", "type": "dump",
                                    "value": {"replicas": "all"}})], "replicas")

    def test_malformed_pairing(self):
        inv = {"t": 1.0, "process": 1, "type": "invoke", "f": "list", "session": "a" * 32,
               "value": {}}
        ok = {"t": 1.1, "process": 1, "type": "ok", "f": "list", "session": "a" * 32,
              "answer": {"ok": True, "reason": "OK", "cart": None, "generation": None,
                         "items": []}}
        self.malformed([json.dumps(ok)], "line 1", "no invoke in flight")
        self.malformed([json.dumps(inv), json.dumps(inv)], "line 2", "in flight")
        self.malformed([json.dumps(inv), json.dumps(dict(ok, f="close"))], "line 2",
                       "does not match")
        self.malformed([json.dumps(inv), json.dumps(dict(ok, type="fail"))], "line 2",
                       "makes it 'ok'")
        self.malformed([json.dumps(inv), json.dumps(dict(ok, answer=None))], "line 2",
                       "needs an answer")

    def test_malformed_raises_from_check_too(self):
        with self.assertRaises(history.MalformedHistory) as cm:
            checker.check([{"t": 1.0, "process": 1, "type": "ok", "f": "list",
                            "answer": {"ok": True}}])
        self.assertIn("line 1", str(cm.exception))

    def test_unknown_fields_and_open_invoke_are_tolerated(self):
        h, _ = clean_history()
        lines = [json.loads(x) for x in h.jsonl().splitlines()]
        for r in lines:
            r["harness_note"] = {"anything": [1, 2]}
        # a hung shell: answer null with an error, and an invoke never completed
        lines.insert(-3, {"t": lines[-4]["t"], "process": 9, "type": "invoke", "f": "add",
                          "session": None, "value": {"product": "apple", "qty": 1}})
        lines.insert(-3, {"t": lines[-4]["t"], "process": 9, "type": "info", "f": "add",
                          "session": None, "value": {"product": "apple", "qty": 1},
                          "answer": None, "error": "no answer within 20 s"})
        lines.insert(-3, {"t": lines[-4]["t"], "process": 8, "type": "invoke", "f": "add",
                          "session": None, "value": {"product": "apple", "qty": 1}})
        p = self.write("h.jsonl", "".join(json.dumps(r) + "\n" for r in lines))
        recs = history.read_history(p)
        v = checker.check(recs)
        self.assertValid(v)
        self.assertEqual(v["counts"]["ops"]["unfinished"], 1)

    def test_writer_round_trip_and_threads(self):
        p = self.path("w.jsonl")
        with history.History(p) as w:
            def client(proc):
                for k in range(50):
                    w.invoke(proc, "list", session="%032x" % proc)
                    w.complete(proc, {"ok": True, "op": "list", "session": "%032x" % proc,
                                      "reason": "OK", "cart": None, "generation": None,
                                      "items": []})
            threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            w.nemesis("kill", "start", {"replica": 1})
            w.nemesis("kill", "stop", {"replica": 1})
            w.healed()
            w.dump([], [])
        recs = history.read_history(p)
        self.assertEqual(len(recs), 8 * 100 + 4)
        ops = history.operations(recs)
        self.assertEqual(len(ops), 400)
        self.assertTrue(all(op.type == "ok" and not op.unfinished for op in ops))
        self.assertEqual(checker.check(recs)["counts"]["nemesis"], {"kill": {"start": 1,
                                                                             "stop": 1}})

    def test_writer_complete_uses_the_answers_session(self):
        p = self.path("w.jsonl")
        with history.History(p) as w:
            w.invoke(1, "add", value={"product": "apple", "qty": 1})
            rec = w.complete(1, {"ok": False, "op": "add", "session": "b" * 32,
                                 "reason": "UNREACHABLE", "in_doubt": True})
            self.assertEqual((rec["type"], rec["session"], rec["f"]), ("info", "b" * 32, "add"))
            self.assertEqual(w.append({"process": "final", "type": "healed"})["process"],
                             "final")
        self.assertEqual(len(history.read_history(p)), 3)

    def test_script_exit_codes(self):
        """The real command line, as run.py and ctest will run it."""
        h, _ = clean_history()
        good = self.write("g.jsonl", h.jsonl())
        bad = self.write("b.jsonl", "{nope\n")
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "checker.py")
        r = subprocess.run([sys.executable, script, good], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = subprocess.run([sys.executable, script, bad], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("line 1: not JSON", r.stderr)


if __name__ == "__main__":
    unittest.main()
