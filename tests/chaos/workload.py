"""workload: concurrent client sessions through libzcart, recorded as a history.

Design
------
N clients (default 10).  Client i is one `zcart --json --keepalive 3000
--brokers ... shell` process inside the zc-cli namespace (so one session at
a time, with libzcart's normal failover, retries and lease keeper) and one
Python thread that feeds it commands at random moments (exponential gaps,
mean 1/--rate seconds):

    no session yet       add PRODUCT QTY (starts a session)
    with a session       add 45%, remove 20%, list 25%, close 10%; and 0.4% of
                         the time it goes idle for IDLE_S (24..30 s, past the
                         brokers' 20 s --session-ttl): the session lives only
                         by keepalives -- the shell's keeper and a recorded
                         `keepalive` every 6..8 s -- then a list
    after an OK close    30%: a one-shot `zcart --session S keepalive` on the
                         session just closed (recorded, f "keepalive"): it must
                         answer SESSION_CLOSED, never renew it (checker I8)
    after a doubtful     close 50% (a user who gives up), else as above: its
    answer               cart is reset while the doubtful request may still
                         wait inside the cart, which must then refuse it
                         (CART_UNAVAILABLE, INTERNAL, UNAVAILABLE, UNREACHABLE)

PRODUCT is one of the chaos catalog's products (plenty of stock), QTY 1..3;
a remove names a product the client last saw in its cart 75% of the time
(else any product, which may answer NOT_IN_CART).  After a close -- or an
answer SESSION_CLOSED / SESSION_EXPIRED, after which the shell drops the
session too -- the next add starts a new session.  Each client draws its
choices from random.Random(seed * 1000 + i), so the seed fixes each
client's sequence of choices (not how they interleave with faults).

Every command is recorded (History below): an "invoke" record just before
it is written to the shell, then, once its one-line JSON answer is read,
"ok" (ok:true), "fail" (a KO answer: the cluster said no, nothing changed)
or "info" (UNREACHABLE: the outcome is unknown, it may still take effect).
A shell that gives no answer within HANG_S (its own budget is --timeout,
5 s) or dies is recorded "info" with answer null and an "error", killed and
replaced by a fresh shell; the client then continues as process i + N*k
(k-th replacement), since the old shell's request may still be in flight.

Record format (JSON lines, docs/chaos.md):

    {"t": epoch s, "process": int, "type": "invoke"|"ok"|"fail"|"info",
     "f": "add"|"remove"|"list"|"close", "session": hex|null,
     "value": {"product", "qty"} | {}, "answer": <the shell's JSON> (completions)}

`History` is tests/chaos/history.py's writer when that module provides one
(class History with append(record)); otherwise the minimal writer below,
which writes exactly this format, one flushed line per record, under a lock.

At the end `stop()` lets every client finish its command in flight and
keeps the shells open (their keepers renew the sessions' leases, so live
sessions stay live for the final status and dumps); `close()` ends them.
`probe()` runs the post-heal probes: fresh sessions doing add, add, list,
close, recorded as process "final".
"""

import json
import os
import random
import select
import signal
import subprocess
import threading
import time

from cluster import CATALOG_PRODUCTS

DOUBTFUL = ("CART_UNAVAILABLE", "INTERNAL", "UNAVAILABLE", "UNREACHABLE")
HANG_S = 20.0          # a shell silent this long after a command is hung
IDLE_P = 0.004         # chance that a client with a session goes idle instead of an op
IDLE_S = (24.0, 30.0)  # how long it idles: past the brokers' --session-ttl (20 s)
KEEPALIVE_EVERY_S = (6.0, 8.0)  # recorded keepalives while idle
CLOSED_KEEPALIVE_P = 0.3  # chance of a keepalive on the session just closed
KEEPALIVE_MS = 3000    # --keepalive of every shell (brokers' --session-ttl is 20000)

try:  # the checker author's writer, if it is there
    import history as _history_mod
    _ExternalHistory = getattr(_history_mod, "History", None)
    if _ExternalHistory is not None and not hasattr(_ExternalHistory, "append"):
        _ExternalHistory = None
except ImportError:
    _ExternalHistory = None


class MinimalHistory:
    """A JSON-lines history writer (used when tests/chaos/history.py has none)."""

    def __init__(self, path):
        self.path = path
        self._f = open(path, "a", buffering=1)
        self._lock = threading.Lock()

    def append(self, rec):
        line = json.dumps(rec, separators=(",", ":"), sort_keys=False)
        with self._lock:
            self._f.write(line + "\n")
            self._f.flush()

    def close(self):
        with self._lock:
            self._f.close()


def open_history(path):
    """The history writer for path: history.History if it exists, else MinimalHistory."""
    if _ExternalHistory is not None:
        try:
            return _ExternalHistory(path)
        except TypeError:
            pass
    return MinimalHistory(path)


def history_writer_name():
    return "tests/chaos/history.py" if _ExternalHistory is not None else "workload.MinimalHistory"


class Shell:
    """One `zcart --json shell` process in the clients' namespace."""

    def __init__(self, prefix, zcart, brokers, log_path):
        argv = prefix + [zcart, "--brokers", ",".join(brokers), "--json",
                         "--keepalive", str(KEEPALIVE_MS), "shell"]
        self._err = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._err, start_new_session=True)
        self._buf = b""

    def cmd(self, line, timeout=HANG_S):
        """Send one line; the parsed answer, or raise RuntimeError (hung/died)."""
        try:
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError) as e:
            raise RuntimeError("shell gone before %r: %s" % (line, e))
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise RuntimeError("no answer to %r within %.0f s" % (line, timeout))
            chunk = os.read(fd, 65536)
            if not chunk:
                raise RuntimeError("shell exited (status %r) before answering %r"
                                   % (self.proc.poll(), line))
            self._buf += chunk
        out, self._buf = self._buf.split(b"\n", 1)
        try:
            return json.loads(out)
        except ValueError:
            raise RuntimeError("not JSON: %r" % out[:200])

    def close(self, timeout=10.0):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._err.close()

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        try:
            self.proc.stdout.close()
        except OSError:
            pass


def classify(ans):
    if ans.get("ok"):
        return "ok"
    if ans.get("reason") == "UNREACHABLE":
        return "info"
    return "fail"


ENDS_SESSION = ("SESSION_CLOSED", "SESSION_EXPIRED")


class Client(threading.Thread):
    def __init__(self, wl, idx):
        super().__init__(name="client-%d" % idx, daemon=True)
        self.wl = wl
        self.idx = idx
        self.incarnation = 0
        self.rng = random.Random(wl.seed * 1000 + idx)
        self.session = None
        self.items = {}
        self.shell = None
        self.error = None
        self.doubtful = False  # the last answer left its outcome unknown

    @property
    def process(self):
        return self.idx + self.wl.n * self.incarnation

    def _new_shell(self):
        self.shell = Shell(self.wl.prefix, self.wl.zcart, self.wl.brokers,
                           os.path.join(self.wl.log_dir, "client%d.log" % self.idx))
        self.session = None
        self.items = {}

    def choose(self):
        if self.session is None:
            f = "add"
        else:
            r = self.rng.random()
            f = "add" if r < 0.45 else "remove" if r < 0.65 else "list" if r < 0.90 else "close"
            if self.doubtful and self.rng.random() < 0.5:
                f = "close"
        value = {}
        if f == "add":
            value = {"product": self.rng.choice(CATALOG_PRODUCTS), "qty": self.rng.randint(1, 3)}
        elif f == "remove":
            held = sorted(self.items)
            if held and self.rng.random() < 0.75:
                p = self.rng.choice(held)
            else:
                p = self.rng.choice(CATALOG_PRODUCTS)
            value = {"product": p, "qty": self.rng.randint(1, 3)}
        return f, value

    def idle(self):
        """Stay idle past the session TTL; the session lives on keepalives
        only (the keeper's, and the recorded ones sent here); then a list."""
        end = time.monotonic() + self.rng.uniform(*IDLE_S)
        while self.session is not None and not self.wl.stopping.is_set():
            gap = min(self.rng.uniform(*KEEPALIVE_EVERY_S), end - time.monotonic())
            if gap <= 0:
                break
            if self.wl.stopping.wait(gap):
                return
            if time.monotonic() < end:
                self.one("keepalive", {})
        if self.session is not None and not self.wl.stopping.is_set():
            self.one("list", {})

    def keepalive_closed(self, session):
        """One `zcart --session S keepalive` on a session this client closed."""
        wl = self.wl
        wl.history.append({"t": time.time(), "process": self.process, "type": "invoke",
                           "f": "keepalive", "session": session, "value": {}})
        argv = wl.prefix + [wl.zcart, "--brokers", ",".join(wl.brokers), "--json",
                            "--session", session, "keepalive"]
        try:
            r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=HANG_S)
            ans = json.loads(r.stdout.strip().splitlines()[-1])
        except (subprocess.TimeoutExpired, ValueError, IndexError) as e:
            wl.history.append({"t": time.time(), "process": self.process, "type": "info",
                               "f": "keepalive", "session": session, "value": {},
                               "answer": None, "error": "one-shot keepalive: %r" % (e,)})
            wl.count("info", "keepalive", "NO_ANSWER")
            return
        typ = classify(ans)
        wl.history.append({"t": time.time(), "process": self.process, "type": typ,
                           "f": "keepalive", "session": session, "value": {}, "answer": ans})
        wl.count(typ, "keepalive", ans.get("reason") if typ != "ok" else "OK")

    def one(self, f, value):
        wl = self.wl
        line = f if not value else "%s %s %d" % (f, value["product"], value["qty"])
        wl.history.append({"t": time.time(), "process": self.process, "type": "invoke", "f": f,
                           "session": self.session, "value": value})
        try:
            ans = self.shell.cmd(line)
        except RuntimeError as e:
            wl.history.append({"t": time.time(), "process": self.process, "type": "info", "f": f,
                               "session": self.session, "value": value, "answer": None,
                               "error": str(e)})
            wl.count("info", f, "SHELL_" + ("HUNG" if "within" in str(e) else "DIED"))
            wl.log("client %d: %s; replacing its shell (process %d -> %d)"
                   % (self.idx, e, self.process, self.process + wl.n))
            self.shell.kill()
            self.incarnation += 1
            self._new_shell()
            return
        typ = classify(ans)
        self.doubtful = ans.get("reason") in DOUBTFUL
        sess = ans.get("session") or self.session
        wl.history.append({"t": time.time(), "process": self.process, "type": typ, "f": f,
                           "session": sess, "value": value, "answer": ans})
        wl.count(typ, f, ans.get("reason") if typ != "ok" else "OK")
        if ans.get("session"):
            self.session = ans["session"]
        if typ == "ok" and "items" in ans:
            self.items = {i["product"]: i["qty"] for i in ans["items"]}
        if f == "close" and typ == "ok" and self.rng.random() < CLOSED_KEEPALIVE_P:
            self.keepalive_closed(sess)
        if (f == "close" and typ == "ok") or ans.get("reason") in ENDS_SESSION or \
                (ans.get("reason") == "USAGE" and "needs a session" in ans.get("detail", "")):
            self.session = None
            self.items = {}

    def run(self):
        try:
            self._new_shell()
            while not self.wl.stopping.is_set():
                if self.wl.stopping.wait(self.rng.expovariate(self.wl.rate)):
                    break
                if self.session is not None and self.rng.random() < IDLE_P:
                    self.idle()
                    continue
                f, value = self.choose()
                self.one(f, value)
        except Exception as e:  # noqa: BLE001 -- a harness bug: reported by run.py
            self.error = "%s: %r" % (type(e).__name__, e)
            self.wl.log("client %d crashed: %s" % (self.idx, self.error))


class Workload:
    def __init__(self, history, prefix, zcart, brokers, log_dir, n=10, rate=2.0, seed=0,
                 log=print):
        self.history = history
        self.prefix = prefix      # argv prefix: ip netns exec zc-cli
        self.zcart = zcart
        self.brokers = brokers
        self.log_dir = log_dir
        self.n = n
        self.rate = rate
        self.seed = seed
        self.log = log
        self.stopping = threading.Event()
        self.clients = [Client(self, i) for i in range(n)]
        self._lock = threading.Lock()
        self.counts = {}          # (type, f) -> n
        self.reasons = {}         # reason -> n (non-ok completions)
        os.makedirs(log_dir, exist_ok=True)

    def count(self, typ, f, reason):
        with self._lock:
            self.counts[(typ, f)] = self.counts.get((typ, f), 0) + 1
            if typ != "ok":
                self.reasons[reason] = self.reasons.get(reason, 0) + 1

    def start(self):
        for c in self.clients:
            c.start()

    def stop(self, timeout=HANG_S + 10):
        """No new commands; wait for the ones in flight.  Shells stay open."""
        self.stopping.set()
        deadline = time.monotonic() + timeout
        for c in self.clients:
            c.join(max(0.0, deadline - time.monotonic()))
        return [c.idx for c in self.clients if c.is_alive()]

    def close(self):
        for c in self.clients:
            if c.shell is not None:
                c.shell.close()

    def kill(self):
        self.stopping.set()
        for c in self.clients:
            if c.shell is not None:
                c.shell.kill()

    def errors(self):
        return ["client %d: %s" % (c.idx, c.error) for c in self.clients if c.error]

    def summary(self):
        by_type, by_f = {}, {}
        for (typ, f), n in self.counts.items():
            by_type[typ] = by_type.get(typ, 0) + n
            by_f[f] = by_f.get(f, 0) + n
        return {"completions": by_type, "by_op": by_f, "not_ok_reasons": self.reasons,
                "shell_replacements": sum(c.incarnation for c in self.clients)}


def probe(history, prefix, zcart, brokers, log_dir, sessions=3, log=print):
    """Post-heal probes: `sessions` fresh sessions, each add apple 1, add pear
    2, list, close, recorded as process "final".  (ok, total) completions."""
    ok = total = 0
    for k in range(sessions):
        sh = Shell(prefix, zcart, brokers, os.path.join(log_dir, "probe%d.log" % k))
        session = None
        try:
            for f, value in (("add", {"product": "apple", "qty": 1}),
                             ("add", {"product": "pear", "qty": 2}),
                             ("list", {}), ("close", {})):
                line = f if not value else "%s %s %d" % (f, value["product"], value["qty"])
                history.append({"t": time.time(), "process": "final", "type": "invoke", "f": f,
                                "session": session, "value": value})
                total += 1
                try:
                    ans = sh.cmd(line)
                except RuntimeError as e:
                    history.append({"t": time.time(), "process": "final", "type": "info",
                                    "f": f, "session": session, "value": value, "answer": None,
                                    "error": str(e)})
                    log("probe %d: %s" % (k, e))
                    break
                typ = classify(ans)
                session = ans.get("session") or session
                history.append({"t": time.time(), "process": "final", "type": typ, "f": f,
                                "session": session, "value": value, "answer": ans})
                if typ == "ok":
                    ok += 1
                else:
                    log("probe %d: %s %s -> %s %s" % (k, f, value, ans.get("reason"),
                                                      ans.get("detail")))
                    if session is None:
                        break  # no session: the rest would be usage errors
        finally:
            sh.close()
    return ok, total
