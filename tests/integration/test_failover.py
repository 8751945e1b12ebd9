#!/usr/bin/python3
"""test_failover: a killed leader loses no acknowledged add; an isolated leader stops serving.

Design
------
Three replicas; the clients are the real CLI (libzcart's failover and
retries) or a raw DEALER aimed at one replica.

f1. Kill -9 of the leader under load.  Eight `zcart --json shell`
    processes, one session each, add distinct products p0, p1, ... (qty 1)
    in a loop; the stock answers each check after 20..40 ms, so at any
    moment most sessions have an add inside a cart.  Once every session has
    10 acknowledged adds the leader is SIGKILLed (c.sigkill: at one known
    instant, so "in flight at the kill" is well defined); the shells keep
    adding until every session has 10 more adds sent after the kill, then
    each lists its cart.  Checked: at least one add was in flight across
    the kill (else nothing was provoked); every add was answered ok:true
    within the CLI's default budget (--timeout 5000 ms, retries and
    failover included: the shell retries the same (session, seq) at the
    next replica); every answer of a session names the cart and generation
    of its first answer; the final list holds exactly the products added,
    each with qty 1 (an add retried after the kill landed once).  Then the
    old leader restarts and all three replicas converge to one applied
    index and digest.

f2. A leader that loses its majority.  Both followers are SIGSTOPped
    (c.pause) on a quiescent cluster whose election timeout is 1000 ms
    (so the requests below reach the old leader before it can notice).  A
    raw DEALER to the old leader sends the first add of a new session,
    which needs an ASSIGN commit: it must be answered NOT_LEADER or
    UNAVAILABLE, never OK.  The old leader must then report role !=
    leader (polled through its STATUS; raft's leader steps down one or two
    election timeouts after it last heard from a majority), and afterwards
    an add and a list of an existing session -- cart operations that need
    no commit -- are answered NOT_LEADER too, and the CLI aimed at that
    replica alone gets no OK (UNREACHABLE, not in doubt).  (Before the
    step-down such cart operations may still be served: they commit
    nothing and the cart fences by (session, generation), so the test
    sends them only after it.)  On every STATUS
    the old leader's commit_index stays at its value before the pause
    although its log grew (the ASSIGN was appended): the minority side
    never commits.  The followers are resumed: the cluster serves a new
    session and the old one (same cart, generation and contents), and all
    three converge.
"""

import os
import threading
import time

import harness
import zcproto as zp
from harness import CliSession, CliShell, Dealer, items_of, wait_until

N_SESSIONS = 8
MAX_ADDS = 200          # distinct products per session (a cart holds at most 256)
BEFORE_KILL = 10        # acknowledged adds per session before the kill
AFTER_KILL = 10         # adds per session sent after the kill


class Adder(threading.Thread):
    """Drives one shell: add p0 1, add p1 1, ... until told to stop."""

    def __init__(self, shell):
        super().__init__(daemon=True)
        self.shell = shell
        self.stop = threading.Event()
        self.results = []     # (i, sent, answered, result), in order
        self.error = None

    def run(self):
        try:
            i = 0
            while not self.stop.is_set() and i < MAX_ADDS:
                t0 = time.monotonic()
                r = self.shell.cmd("add p%d 1" % i)
                self.results.append((i, t0, time.monotonic(), r))
                i += 1
        except Exception as e:  # noqa: BLE001 -- reported by the test
            self.error = e

    def sent_after(self, t):
        return sum(1 for _, t0, _, _ in self.results if t0 > t)


class Failover(harness.ClusterTestCase):
    def test_f1_leader_killed_under_load(self):
        catalog = harness.write_catalog("test_f1", {"p%d" % i: 10 for i in range(MAX_ADDS)})
        c = self.cluster(replicas=3, cart_nodes=2, slots=5, catalog=catalog,
                         stock_delay="20:40")
        self.assertConverges(c)
        adders = [Adder(CliShell(c, "shell%d" % k)) for k in range(N_SESSIONS)]
        for a in adders:
            a.start()

        def progress(n, after=0.0):
            for a in adders:
                if a.error:
                    raise AssertionError("%s: %s" % (a.shell.name, a.error))
            return all(a.sent_after(after) >= n for a in adders)
        wait_until(lambda: progress(BEFORE_KILL), 20,
                   "%d acknowledged adds in every session" % BEFORE_KILL)
        leader = c.leader()
        self.assertIsNotNone(leader)
        victim = "broker%d" % leader["id"]
        t_kill = time.monotonic()
        c.sigkill(victim)
        wait_until(lambda: progress(AFTER_KILL, after=t_kill), 20,
                   "%d adds per session sent after killing %s" % (AFTER_KILL, victim))
        for a in adders:
            a.stop.set()
        for a in adders:
            a.join(20)
            self.assertFalse(a.is_alive(), "%s still adding" % a.shell.name)
            self.assertIsNone(a.error, "%s: %s" % (a.shell.name, a.error))

        straddling = [(a.shell.name, i) for a in adders for i, t0, t1, _ in a.results
                      if t0 < t_kill < t1]
        self.assertTrue(straddling, "no add was in flight when %s was killed" % victim)
        print("%d adds were in flight across the kill of %s; slowest add %.0f ms"
              % (len(straddling), victim,
                 1000 * max(t1 - t0 for a in adders for _, t0, t1, _ in a.results)))

        for a in adders:
            name = a.shell.name
            first = a.results[0][3]
            with self.subTest("every add answered OK", shell=name):
                bad = [(i, r) for i, _, _, r in a.results if not r.get("ok")]
                self.assertEqual(bad, [], "%s: adds not answered ok:true within the CLI's "
                                 "default 5000 ms budget" % name)
            with self.subTest("one session, one cart, one generation", shell=name):
                self.assertTrue(first.get("new_session"), first)
                seen = {(r.get("session"), r.get("cart"), r.get("generation"))
                        for _, _, _, r in a.results}
                self.assertEqual(seen, {(first["session"], first["cart"], first["generation"])},
                                 "%s: the session's cart changed during the failover" % name)
            with self.subTest("every add in the cart exactly once", shell=name):
                lst = a.shell.cmd("list")
                self.assertTrue(lst.get("ok"), lst)
                self.assertEqual((lst["session"], lst["cart"], lst["generation"]),
                                 (first["session"], first["cart"], first["generation"]))
                want = {"p%d" % i: 1 for i, _, _, _ in a.results}
                self.assertEqual(items_of(lst), want,
                                 "%s: the cart does not hold each acknowledged add once" % name)
            self.assertEqual(a.shell.quit(), 0, "%s exit status" % name)

        c.start(victim)
        self.assertConverges(c)
        self.assertAllAlive(c)

    def test_f2_leader_without_majority_stops_serving(self):
        c = self.cluster(replicas=3, cart_nodes=1, slots=4,
                         broker_args=["--election-timeout=1000"])
        a = CliSession(c)
        ra = a.add("apple", 1)
        st = self.assertConverges(c)
        ld = [s for s in st if s["role"] == "leader"][0]
        self.assertEqual(ld["commit_index"], ld["last_index"], ld)
        old, commit0 = ld["endpoint"], ld["commit_index"]
        followers = ["broker%d" % s["id"] for s in st if s["role"] != "leader"]
        seen = []   # every STATUS of the old leader while it is isolated

        def old_status():
            s = c.replica_status(old)
            seen.append(s)
            return s

        for f in followers:
            c.pause(f)
        x = zp.new_session()
        sa = zp.session_parse(a.id)
        seq = int(time.time() * 1e6)  # above every seq the CLI used (wall-clock µs)
        with Dealer(old) as d:
            d.send(zp.request(x, 1, zp.OP_ADD, "apple", 1))
            r = d.reply_for(x, 1, timeout=15)
            self.assertIn(r.status_name, ("NOT_LEADER", "UNAVAILABLE"),
                          "first add of a new session on a leader without a majority: %r" % r)
            s = wait_until(lambda: (lambda s: s if s["role"] != "leader" else None)(old_status()),
                           10, "the isolated leader to step down")
            print("isolated leader %s stepped down: %r" % (old, {k: s[k] for k in (
                "role", "term", "commit_index", "last_index", "leader_id")}))
            for i, (op, product, qty) in enumerate(((zp.OP_ADD, "pear", 1), (zp.OP_LIST, "", 0))):
                r = d.request(sa, seq + i, op, product, qty, timeout=5)
                self.assertEqual(r.status_name, "NOT_LEADER",
                                 "%s of a session with a cart on a deposed leader: %r"
                                 % (zp.OP_NAMES[op], r))
        rc, r = c.cli("add", "pear", 1, session=a.id, timeout_ms=1500, brokers=[old])
        self.assertEqual((rc, r.get("ok"), r.get("reason"), r.get("in_doubt")),
                         (3, False, "UNREACHABLE", False),
                         "the CLI aimed at the isolated replica alone: %r" % r)
        old_status()
        self.assertEqual({s["commit_index"] for s in seen}, {commit0},
                         "the isolated old leader committed: %r"
                         % [(s["role"], s["commit_index"], s["last_index"]) for s in seen])
        self.assertGreater(seen[-1]["last_index"], commit0,
                           "the ASSIGN was not even appended: nothing was left to commit")

        for f in followers:
            c.resume(f)
        c.leader_endpoint(timeout=20)  # elections with 1000 ms timeouts may take rounds
        b = CliSession(c)
        b.add("lemon", 1)
        got = wait_until(lambda: (lambda x: x if x.get("ok") else None)(a.list(expect_ok=None)),
                         10, "the old session served again")
        self.assertEqual((got["cart"], got["generation"], items_of(got)),
                         (ra["cart"], ra["generation"], {"apple": 1}))
        self.assertConverges(c)
        self.assertAllAlive(c)


if __name__ == "__main__":
    harness.main()
