"""history: the chaos suite's history -- a JSON-lines timeline of what every
client asked, what it was told, and what the nemesis did (docs/chaos.md,
"History format").

One record per line, one JSON object per record, appended and flushed as it
happens, so a run that dies still leaves a readable history up to its last
line.  Three kinds of record share the timeline, told apart by "process":

* client operations, process = an integer client id:

      {"t": 1718000000.123, "process": 3, "type": "invoke", "f": "add",
       "session": "<32 hex>" | null, "value": {"product": "apple", "qty": 2}}
      {"t": 1718000000.140, "process": 3, "type": "ok", "f": "add",
       "session": "<32 hex>", "value": {...}, "answer": {<zcart --json result>}}

  "f" is add, remove, list or close (keepalive is accepted too); "value" is
  {"product", "qty"} for add/remove and {} otherwise; "session" is null on
  the invoke of a session's first add (the id is chosen by the CLI and comes
  back in the answer).  Every invoke is followed, later in the file, by
  exactly one completion of the same process and f -- a process has one
  operation in flight at a time -- whose "type" says what the client knows:

      ok    the answer has ok:true: the operation took effect;
      fail  a definite KO answer (any reason but UNREACHABLE);
      info  UNREACHABLE: no answer in the CLI's budget; the outcome is
            unknown unless the answer says "in_doubt": false (then it is
            known not to have been applied).  A harness that lost the
            shell itself records "answer": null and an "error" string.

  An invoke still open at the end of the history is read as an info.

* nemesis events, process = "nemesis":

      {"t": ..., "process": "nemesis", "type": "info", "f": "kill",
       "phase": "start" | "stop", "value": {<targets>}}

  A fault is active from its start to the next stop of the same f; an event
  with f "heal" ends every active fault.

* the end of the run, process = "final":

      {"t": ..., "process": "final", "type": "healed"}
          every fault has been healed at t (I7's clock starts here);
      {"t": ..., "process": "final", "type": "invoke"|"ok"|"fail"|"info", ...}
          the post-heal service probes, shaped exactly like client ops;
      {"t": ..., "process": "final", "type": "dump",
       "value": {"replicas": [{"id", "status": {...}, "state": {...}}],
                 "carts": [{"id" (or "cart"), "owner", "generation",
                            "reset_generation", "items": [...]}]}}
          the end-of-run dumps: per replica its `zcart status --json` entry
          and its `zcart-broker --dump-state` object, and every cart slot's
          `zcart-cart --dump-state` entry;
      {"t": ..., "process": "final", "type": "service",
       "value": {"quiet": bool, "after_heal_s": S, "why": str|null,
                 "breakers": [{"cart", "state", "mode", "why", "cart_state", ...}]}}
          taken before the dump with every daemon still up and the clients
          gone: whether the cluster got quiet (no cart draining, no breaker
          not CLOSED) within the wait, S seconds after the heal, and the
          leader's `breakers` (`zcart status --json`) at that moment.

Readers ignore fields they do not know, so the harness may add its own
(e.g. "error", "node", "slot").  Writers and readers meet in this module:

  History(path).append(record)     thread-safe, one flushed line per record;
                                   invoke()/complete()/nemesis()/healed()/
                                   dump() build the records for you
  classify(answer)                 "ok" / "fail" / "info" for an answer
  read_history(path)               the records, validated, each with "_line"
  operations(records)              invoke/completion pairs as Op objects

A malformed history raises MalformedHistory, whose message names every bad
line (up to a limit) and what is wrong with it.
"""

import json
import math
import re
import threading
import time

CLIENT_TYPES = ("invoke", "ok", "fail", "info")
COMPLETION_TYPES = ("ok", "fail", "info")
OP_FS = ("add", "remove", "list", "close", "keepalive")
CHANGE_FS = ("add", "remove")
FINAL_TYPES = ("healed", "dump", "probe", "service") + CLIENT_TYPES
PHASES = ("start", "stop")
_SESSION_RE = re.compile(r"^[0-9a-fA-F]{32}$")
MAX_ERRORS = 50


class MalformedHistory(Exception):
    """The history cannot be checked; .errors is a list of (line, message)."""

    def __init__(self, errors):
        self.errors = list(errors)
        shown = self.errors[:MAX_ERRORS]
        lines = ["line %s: %s" % (ln, msg) for ln, msg in shown]
        if len(self.errors) > len(shown):
            lines.append("... and %d more" % (len(self.errors) - len(shown)))
        super().__init__("malformed history (%d error%s):\n  %s"
                         % (len(self.errors), "" if len(self.errors) == 1 else "s",
                            "\n  ".join(lines)))


# --- writing ---------------------------------------------------------------------------


def classify(answer):
    """The completion type of a CLI answer: "ok" (ok:true), "info"
    (UNREACHABLE, or no answer at all) or "fail" (any other KO)."""
    if not isinstance(answer, dict):
        return "info"
    if answer.get("ok") is True:
        return "ok"
    if answer.get("reason") == "UNREACHABLE":
        return "info"
    return "fail"


class History:
    """Append-only JSON-lines history writer, safe to share between threads.

    append(record) writes one record as one line and flushes it; a record
    without "t" gets the current time.  The helpers below build well-formed
    records; invoke() remembers each process's open operation so complete()
    needs only the answer."""

    def __init__(self, path, mode="a"):
        self.path = path
        self._f = open(path, mode, buffering=1, encoding="utf-8")
        self._lock = threading.Lock()
        self._open = {}  # process -> (f, session, value) of its invoke

    def append(self, record):
        """Write one record (a dict) as one line, flushed; returns it."""
        if not isinstance(record, dict):
            raise TypeError("a history record is a dict, not %r" % type(record).__name__)
        if "t" not in record:
            record = dict(record, t=time.time())
        line = json.dumps(record, separators=(",", ":"), allow_nan=False)
        with self._lock:
            self._f.write(line + "\n")
            self._f.flush()
        return record

    def invoke(self, process, f, session=None, value=None, t=None):
        """Record that process starts operation f; returns the record."""
        value = dict(value or {})
        with self._lock:
            if process in self._open:
                raise ValueError("process %r already has an operation in flight" % (process,))
            self._open[process] = (f, session, value)
        return self.append({"t": time.time() if t is None else t, "process": process,
                            "type": "invoke", "f": f, "session": session, "value": value})

    def complete(self, process, answer, t=None, **extra):
        """Record the answer to process's open operation (type from
        classify(answer); session from the answer when it has one)."""
        with self._lock:
            f, session, value = self._open.pop(process)
        if isinstance(answer, dict) and answer.get("session"):
            session = answer["session"]
        rec = {"t": time.time() if t is None else t, "process": process,
               "type": classify(answer), "f": f, "session": session, "value": value,
               "answer": answer}
        rec.update(extra)
        return self.append(rec)

    def nemesis(self, f, phase, value=None, t=None):
        """Record a fault starting or stopping (phase "start" / "stop")."""
        return self.append({"t": time.time() if t is None else t, "process": "nemesis",
                            "type": "info", "f": f, "phase": phase, "value": value or {}})

    def healed(self, t=None):
        """Record that every fault has been healed."""
        return self.append({"t": time.time() if t is None else t, "process": "final",
                            "type": "healed"})

    def dump(self, replicas, carts, t=None):
        """Record the end-of-run dumps (see the module docstring)."""
        return self.append({"t": time.time() if t is None else t, "process": "final",
                            "type": "dump", "value": {"replicas": replicas, "carts": carts}})

    def service(self, quiet, after_heal_s, breakers, why=None, t=None):
        """Record the post-heal service check (see the module docstring)."""
        return self.append({"t": time.time() if t is None else t, "process": "final",
                            "type": "service",
                            "value": {"quiet": bool(quiet), "after_heal_s": after_heal_s,
                                      "why": why, "breakers": list(breakers or [])}})

    def close(self):
        with self._lock:
            if not self._f.closed:
                self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --- reading and validating ------------------------------------------------------------


def parse_lines(lines):
    """Parse an iterable of text lines into records (dicts with "_line",
    1-based); blank lines are skipped.  Raises MalformedHistory listing every
    line that is not a JSON object, then validates the records."""
    records, errors = [], []
    for n, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            rec = json.loads(text)
        except ValueError as e:
            errors.append((n, "not JSON (%s): %.80r" % (e, text.strip())))
            continue
        if not isinstance(rec, dict):
            errors.append((n, "not a JSON object: %.80r" % text.strip()))
            continue
        rec["_line"] = n
        records.append(rec)
    if errors:
        raise MalformedHistory(errors)
    validate(records)
    return records


def read_history(path):
    """Read and validate the history at path; the records, each with "_line"."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        return parse_lines(fh)


def line_of(rec, index):
    """A record's line number ("_line"), or its 1-based index in the list."""
    return rec.get("_line", index + 1)


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _is_num(x):
    return (isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x))


def _check_items(items, where):
    """Problems with an items list ([{product, qty}])."""
    if not isinstance(items, list):
        return ["%s items is not a list" % where]
    errs = []
    for it in items:
        if not (isinstance(it, dict) and isinstance(it.get("product"), str)
                and _is_int(it.get("qty"))):
            errs.append("%s item %.60r is not {product: str, qty: int}" % (where, it))
    return errs


def _check_answer(rec):
    """Problems with a completion's answer and its agreement with "type"."""
    typ, ans = rec["type"], rec.get("answer")
    if ans is None:
        return [] if typ == "info" else ["a %s completion needs an answer" % typ]
    if not isinstance(ans, dict):
        return ["answer is not an object"]
    errs = []
    if not isinstance(ans.get("ok"), bool):
        errs.append("answer.ok is not a boolean")
    elif classify(ans) != typ:
        errs.append("type %r but the answer (ok=%r, reason=%r) makes it %r"
                    % (typ, ans.get("ok"), ans.get("reason"), classify(ans)))
    if ans.get("cart") is not None and not isinstance(ans.get("cart"), str):
        errs.append("answer.cart is neither a string nor null")
    if ans.get("generation") is not None and not _is_int(ans.get("generation")):
        errs.append("answer.generation is neither an integer nor null")
    if "items" in ans and ans["items"] is not None:
        errs.extend(_check_items(ans["items"], "answer"))
    if ans.get("session") is not None and not (isinstance(ans["session"], str)
                                               and _SESSION_RE.match(ans["session"])):
        errs.append("answer.session is not 32 hex digits")
    return errs


def _check_op_record(rec):
    """Problems with a client (or probe) operation record."""
    errs = []
    if rec.get("type") not in CLIENT_TYPES:
        return ["type %r is not one of %s" % (rec.get("type"), "/".join(CLIENT_TYPES))]
    if rec.get("f") not in OP_FS:
        errs.append("f %r is not one of %s" % (rec.get("f"), "/".join(OP_FS)))
    s = rec.get("session")
    if s is not None and not (isinstance(s, str) and _SESSION_RE.match(s)):
        errs.append("session %.40r is neither null nor 32 hex digits" % (s,))
    v = rec.get("value", {})
    if v is None:
        v = {}
    if not isinstance(v, dict):
        errs.append("value is not an object")
    elif rec.get("f") in CHANGE_FS:
        if not (isinstance(v.get("product"), str) and v["product"]):
            errs.append("value.product of an %s is not a non-empty string" % rec.get("f"))
        if not (_is_int(v.get("qty")) and v["qty"] >= 1):
            errs.append("value.qty of an %s is not an integer >= 1" % rec.get("f"))
    if rec["type"] != "invoke":
        errs.extend(_check_answer(rec))
    return errs


def _check_dump(rec):
    """Problems with a final dump record."""
    v = rec.get("value")
    if not isinstance(v, dict):
        return ["dump value is not an object"]
    errs = []
    reps = v.get("replicas")
    if not isinstance(reps, list):
        errs.append("dump value.replicas is not a list")
        reps = []
    for r in reps:
        if not isinstance(r, dict) or "id" not in r:
            errs.append("dump replica %.60r has no id" % (r,))
            continue
        for key in ("status", "state"):
            if r.get(key) is not None and not isinstance(r[key], dict):
                errs.append("replica %s: %s is not an object" % (r["id"], key))
        st = r.get("state")
        if isinstance(st, dict):
            for key in ("carts", "free", "sessions"):
                if not isinstance(st.get(key), list):
                    errs.append("replica %s: state.%s is not a list" % (r["id"], key))
            for c in st.get("carts") or []:
                if not (isinstance(c, dict) and isinstance(c.get("id"), str)):
                    errs.append("replica %s: cart %.60r has no id" % (r["id"], c))
            for s in st.get("sessions") or []:
                if not (isinstance(s, dict) and isinstance(s.get("id"), str)):
                    errs.append("replica %s: session %.60r has no id" % (r["id"], s))
    carts = v.get("carts", [])
    if not isinstance(carts, list):
        errs.append("dump value.carts is not a list")
        carts = []
    for c in carts:
        if not (isinstance(c, dict) and isinstance(c.get("id", c.get("cart")), str)):
            errs.append("dump cart %.60r has no id" % (c,))
        elif "items" in c:
            errs.extend(_check_items(c["items"], "cart %s" % c.get("id", c.get("cart"))))
    return errs


def _check_service(rec):
    """Problems with a final service record."""
    v = rec.get("value")
    if not isinstance(v, dict):
        return ["service value is not an object"]
    errs = []
    if not isinstance(v.get("quiet"), bool):
        errs.append("service value.quiet is not a boolean")
    if not _is_num(v.get("after_heal_s")):
        errs.append("service value.after_heal_s is not a number")
    brk = v.get("breakers")
    if not isinstance(brk, list):
        errs.append("service value.breakers is not a list")
        brk = []
    for b in brk:
        if not (isinstance(b, dict) and isinstance(b.get("cart"), str)):
            errs.append("service breaker %.60r has no cart" % (b,))
    return errs


def _check_record(rec):
    """Problems with one record's own fields (not its place in the timeline)."""
    if not _is_num(rec.get("t")):
        return ["t %.40r is not a finite number" % (rec.get("t"),)]
    p = rec.get("process")
    if _is_int(p):
        return _check_op_record(rec)
    if p == "nemesis":
        errs = []
        if rec.get("type") != "info":
            errs.append("a nemesis record has type \"info\", not %r" % (rec.get("type"),))
        if not (isinstance(rec.get("f"), str) and rec["f"]):
            errs.append("nemesis f is not a non-empty string")
        if "phase" in rec and rec["phase"] not in PHASES:
            errs.append("nemesis phase %r is not start/stop" % (rec["phase"],))
        return errs
    if p == "final":
        typ = rec.get("type")
        if typ not in FINAL_TYPES:
            return ["final type %r is not one of %s" % (typ, "/".join(FINAL_TYPES))]
        if typ == "dump":
            return _check_dump(rec)
        if typ == "probe":
            return [] if isinstance(rec.get("answer"), dict) else ["a probe needs an answer"]
        if typ == "service":
            return _check_service(rec)
        if typ in CLIENT_TYPES:
            return _check_op_record(rec)
        return []
    return ["process %.40r is neither an integer, \"nemesis\" nor \"final\"" % (p,)]


def validate(records):
    """Check every record's fields and the invoke/completion pairing; raise
    MalformedHistory with every problem found."""
    errors, open_ops, dumps = [], {}, 0
    for i, rec in enumerate(records):
        ln = line_of(rec, i)
        errs = _check_record(rec)
        errors.extend((ln, e) for e in errs)
        if errs:
            continue
        p, typ = rec["process"], rec["type"]
        if p == "final" and typ == "dump":
            dumps += 1
            if dumps > 1:
                errors.append((ln, "a second final dump"))
        if not (_is_int(p) or (p == "final" and typ in CLIENT_TYPES)):
            continue
        if typ == "invoke":
            if p in open_ops:
                errors.append((ln, "process %s invokes while its op of line %s is in flight"
                               % (p, open_ops[p][0])))
            open_ops[p] = (ln, rec.get("f"))
        else:
            if p not in open_ops:
                errors.append((ln, "%s completion of process %s with no invoke in flight"
                               % (typ, p)))
                continue
            inv_ln, f = open_ops.pop(p)
            if rec.get("f") is not None and rec.get("f") != f:
                errors.append((ln, "completion f %r does not match the invoke's %r (line %s)"
                               % (rec.get("f"), f, inv_ln)))
    if errors:
        raise MalformedHistory(errors)


# --- operations ------------------------------------------------------------------------


class Op:
    """One client operation: an invoke and its completion, merged.

    Fields: process, f, session (the completion's, the answer's or the
    invoke's, whichever is known first), product/qty (add/remove), type
    ("ok"/"fail"/"info"; "info" for one left open), answer (dict or None),
    t_invoke, t_complete, lines (invoke line, completion line or None),
    probe (process "final"), unfinished."""

    __slots__ = ("process", "f", "session", "product", "qty", "type", "answer", "t_invoke",
                 "t_complete", "lines", "probe", "unfinished", "index")

    def __init__(self, inv, comp, index, t_end):
        self.process = inv["process"]
        self.f = inv["f"]
        self.probe = self.process == "final"
        v = inv.get("value") or {}
        self.product = v.get("product") if self.f in CHANGE_FS else None
        self.qty = v.get("qty") if self.f in CHANGE_FS else None
        self.t_invoke = float(inv["t"])
        self.index = index
        self.unfinished = comp is None
        if comp is None:
            self.type, self.answer = "info", None
            self.t_complete = max(t_end, self.t_invoke)
            self.lines = (line_of(inv, 0), None)
        else:
            self.type = comp["type"]
            self.answer = comp.get("answer") if isinstance(comp.get("answer"), dict) else None
            self.t_complete = float(comp["t"])
            self.lines = (line_of(inv, 0), line_of(comp, 0))
        sess = None
        for cand in ((comp or {}).get("session"), (self.answer or {}).get("session"),
                     inv.get("session")):
            if isinstance(cand, str) and cand:
                sess = cand.lower()
                break
        self.session = sess

    @property
    def reason(self):
        """The answer's reason ("OK", "OUT_OF_STOCK", "UNREACHABLE", ...) or None."""
        return (self.answer or {}).get("reason")

    @property
    def in_doubt(self):
        """For an info: may it have been applied?  (True unless in_doubt:false.)"""
        return (self.answer or {}).get("in_doubt") is not False

    @property
    def pair(self):
        """(cart, generation) named by the answer, or None."""
        a = self.answer or {}
        c, g = a.get("cart"), a.get("generation")
        if isinstance(c, str) and c and _is_int(g):
            return (c, g)
        return None

    @property
    def items(self):
        """The answer's items as {product: qty} (None without an items list)."""
        a = self.answer or {}
        if not isinstance(a.get("items"), list):
            return None
        out = {}
        for it in a["items"]:
            out[it["product"]] = out.get(it["product"], 0) + it["qty"]
        return out

    def line_ref(self):
        """"line 12" or "lines 12/15" (invoke/completion)."""
        a, b = self.lines
        return "line %s" % a if b is None else "lines %s/%s" % (a, b)

    def describe(self):
        """A one-line human description, e.g.
        'lines 12/15: p3 add apple x2 [3f2a9c01] -> OK n1.0 gen 7 {apple: 2}'."""
        what = self.f if self.product is None else "%s %s x%s" % (self.f, self.product, self.qty)
        sess = self.session[:8] if self.session else "no session"
        if self.unfinished:
            res = "never completed"
        elif self.type == "info":
            res = "UNREACHABLE (%s)" % ("in doubt" if self.in_doubt else "not applied")
        else:
            res = self.reason or ("OK" if self.type == "ok" else "KO")
        if self.pair:
            res += " %s gen %s" % self.pair
        items = self.items
        if items is not None and self.type != "info":
            res += " {%s}" % ", ".join("%s: %s" % kv for kv in sorted(items.items()))
        proc = "probe" if self.probe else "p%s" % self.process
        return "%s: %s %s [%s] -> %s" % (self.line_ref(), proc, what, sess, res)


def operations(records):
    """Pair every invoke with its completion (validate() first); a list of
    Op in invoke order.  Open invokes at the end become unfinished infos."""
    ops, open_ops = [], {}
    t_end = max((float(r["t"]) for r in records if _is_num(r.get("t"))), default=0.0)
    for i, rec in enumerate(records):
        if "_line" not in rec:
            rec = dict(rec, _line=i + 1)
        p, typ = rec.get("process"), rec.get("type")
        if not (_is_int(p) or (p == "final" and typ in CLIENT_TYPES)):
            continue
        if typ == "invoke":
            open_ops[p] = (len(ops), rec)
            ops.append(None)
        elif p in open_ops:
            slot, inv = open_ops.pop(p)
            ops[slot] = Op(inv, rec, slot, t_end)
    for slot, inv in open_ops.values():
        ops[slot] = Op(inv, None, slot, t_end)
    return ops
