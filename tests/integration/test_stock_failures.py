#!/usr/bin/python3
"""test_stock_failures: a cart node's stock checks when stock instances die or hang.

Design
------
Every test runs one broker replica, ONE cart node (so the session's cart,
and the stock client making every check, is known: cart1) and one or two
real zcart-stock processes.  A raw DEALER plays one session and sends its
adds one at a time (a fresh seq each), so each answer belongs to exactly one
check and the order of answers is the order of checks.  The cart's stock
breaker settings are passed with --cart-arg; each test reads the answers
(status and detail) and the cart's breaker log lines, never the clock:
"fast" is proven by the detail of STOCK_UNAVAILABLE, which the cart writes
only when it refused the check without sending it (no instance connected,
or every breaker open).  Where it matters which instance served a check,
the stock services log each check (--log-level debug) and the test counts
the lines in each instance's log.

s1. Two instances, stock1 killed (SIGKILL: the connection drops).  Adds
    keep succeeding, served by stock2: at most K answers STOCK_TIMEOUT (a
    check that was on its way to stock1 as it died), none after.  Then
    stock1 is restarted and stock2 killed: adds succeed again within a
    deadline, and stock1's log shows it served them (fail over both ways).

s2. One instance, killed.  Within K+1 adds the answer is STOCK_UNAVAILABLE
    with the detail "not connected" (refused at once, not STOCK_TIMEOUT),
    and stays so.  Restarted: adds succeed again within a deadline.

s3. One instance, paused (SIGSTOP: connected but silent), --stock-timeout
    300, K = 3.  Exactly K adds answer STOCK_TIMEOUT (naming the instance),
    then the breaker opens (one log line) and adds answer STOCK_UNAVAILABLE
    with "breaker open"; after the open wait one add is the probe and times
    out, and the breaker reopens ("OPEN again").  Resumed (SIGCONT): adds
    succeed within a deadline and the breaker logs CLOSED.

s4. Two instances, stock1 paused.  Exactly K adds time out (the checks
    round-robin sent to stock1), then its breaker opens and every add is OK
    (stock2).  The test keeps adding until stock1's breaker has reopened
    after failed probes twice: those probes were copies of users' checks,
    so every one of those adds is still OK.  Resumed: a probe closes the
    breaker, every add stays OK, and stock1 serves checks again.
"""

import harness
import zcproto as zp
from harness import Dealer, wait_until

K = 3  # --stock-failures (the default)


class StockFailures(harness.ClusterTestCase):
    def start(self, stock, cart_args=(), debug_stock=False):
        catalog = harness.write_catalog("test_stock_failures", {"apple": 10 ** 9})
        c = self.cluster(cart_nodes=1, slots=1, stock=stock, catalog=catalog,
                         cart_args=["--stock-failures=%d" % K] + list(cart_args),
                         stock_args=["--log-level=debug"] if debug_stock else [])
        self.c = c
        self.d = Dealer(c.leader_endpoint())
        self.addCleanup(self.d.close)
        self.session = zp.new_session()
        self.seq = 0
        first = self.add()
        self.assertEqual(first.status_name, "OK", first)
        return c

    def add(self):
        """One add of one apple under a fresh seq; its REPLY."""
        self.seq += 1
        return self.d.request(self.session, self.seq, zp.OP_ADD, "apple", 1, timeout=10)

    def add_status(self):
        m = self.add()
        return m.status_name, m.detail

    def checks_served(self, name):
        """Checks the stock process `name` answered, by its debug log."""
        return sum(1 for path, _ in self.c.grep_logs("check apple x")
                   if path.endswith("/%s/log" % name))

    def breaker_lines(self, endpoint, what):
        return len(self.c.grep_logs("stock %s: breaker %s" % (endpoint, what)))

    def test_s1_kill_one_of_two_adds_go_to_the_other(self):
        c = self.start(2, ["--stock-timeout=300"], debug_stock=True)
        ep1, ep2 = c.stock_endpoints
        # Adds until both instances answered checks: the cart node spreads
        # them over the stock connections it has, and on a loaded machine
        # its second connection may come up after the first adds.
        def add_until_spread():
            self.assertEqual(self.add_status()[0], "OK")
            return self.checks_served("stock1") >= 2 and self.checks_served("stock2") >= 2

        wait_until(add_until_spread, 10, "checks spread over both stock instances")

        c.kill("stock1")
        before = self.checks_served("stock2")
        answers = [self.add_status() for _ in range(20)]
        statuses = [s for s, _ in answers]
        self.assertLessEqual(set(statuses), {"OK", "STOCK_TIMEOUT"}, answers)
        self.assertLessEqual(statuses.count("STOCK_TIMEOUT"), K, answers)
        self.assertEqual(statuses[-10:], ["OK"] * 10, answers)
        for s, detail in answers:
            if s == "STOCK_TIMEOUT":
                self.assertIn(ep1, detail)  # only the dead one can have timed out
        wait_until(lambda: self.checks_served("stock2") - before >= statuses.count("OK"), 5,
                   "stock2 served every OK add")

        c.start("stock1")
        served1 = self.checks_served("stock1")
        c.kill("stock2")
        wait_until(lambda: self.add_status()[0] == "OK", 10, "an OK add served by stock1")
        self.assertGreater(self.checks_served("stock1"), served1)
        self.assertEqual(self.breaker_lines(ep2, "OPEN"), 0, "a killed instance is skipped, "
                         "it need not trip")
        self.assertAllAlive_except(["stock2"])

    def test_s2_single_stock_killed_fast_unavailable_then_back(self):
        c = self.start(1, ["--stock-timeout=300"])
        (ep,) = c.stock_endpoints
        c.kill("stock1")
        answers = []
        for _ in range(K + 1):
            answers.append(self.add_status())
            if answers[-1][0] == "STOCK_UNAVAILABLE":
                break
        self.assertEqual(answers[-1][0], "STOCK_UNAVAILABLE", answers)
        self.assertLessEqual({s for s, _ in answers[:-1]}, {"STOCK_TIMEOUT"}, answers)
        for _ in range(5):
            s, detail = self.add_status()
            self.assertEqual(s, "STOCK_UNAVAILABLE")
            self.assertIn("%s not connected" % ep, detail)

        c.start("stock1")
        wait_until(lambda: self.add_status()[0] == "OK", 10, "an OK add after the restart")
        for _ in range(3):
            self.assertEqual(self.add_status()[0], "OK")

    def test_s3_single_stock_paused_timeout_then_breaker_then_ok(self):
        # The open wait is long next to the few ms between two adds, so the
        # add right after the K-th timeout finds the breaker still open.
        c = self.start(1, ["--stock-timeout=300", "--stock-open-ms=1000",
                           "--stock-open-max-ms=2000"])
        (ep,) = c.stock_endpoints
        c.pause("stock1")
        for _ in range(K):
            s, detail = self.add_status()
            self.assertEqual(s, "STOCK_TIMEOUT", detail)
            self.assertIn("stock %s did not answer within 300 ms" % ep, detail)
        s, detail = self.add_status()
        self.assertEqual(s, "STOCK_UNAVAILABLE", detail)
        self.assertIn("%s breaker open" % ep, detail)
        wait_until(lambda: self.breaker_lines(ep, "OPEN after %d failed checks" % K) == 1, 5,
                   "the cart logged the breaker opening")

        # After the open wait the next add is the probe; it times out too.
        seen = []
        wait_until(lambda: seen.append(self.add_status()) or seen[-1][0] != "STOCK_UNAVAILABLE",
                   5, "the probe check")
        self.assertEqual(seen[-1][0], "STOCK_TIMEOUT", seen)
        wait_until(lambda: self.breaker_lines(ep, "OPEN again") >= 1, 5, "the breaker reopened")
        self.assertEqual(self.breaker_lines(ep, "HALF_OPEN"), 1)
        s, detail = self.add_status()
        self.assertEqual(s, "STOCK_UNAVAILABLE", detail)

        c.resume("stock1")
        seen = []
        wait_until(lambda: seen.append(self.add_status()) or seen[-1][0] == "OK", 10,
                   "an OK add after the resume")
        self.assertLessEqual({s for s, _ in seen}, {"OK", "STOCK_UNAVAILABLE", "STOCK_TIMEOUT"})
        self.assertEqual(self.breaker_lines(ep, "CLOSED"), 1)
        for _ in range(3):
            self.assertEqual(self.add_status()[0], "OK")

    def test_s4_one_of_two_paused_probes_cost_users_nothing(self):
        c = self.start(2, ["--stock-timeout=300", "--stock-open-ms=200",
                           "--stock-open-max-ms=400"], debug_stock=True)
        ep1, _ = c.stock_endpoints
        c.pause("stock1")
        answers = []
        wait_until(lambda: answers.append(self.add_status()) or
                   self.breaker_lines(ep1, "OPEN after") == 1, 10, "stock1's breaker open")
        statuses = [s for s, _ in answers]
        self.assertEqual(statuses.count("STOCK_TIMEOUT"), K, answers)
        self.assertLessEqual(set(statuses), {"OK", "STOCK_TIMEOUT"}, answers)

        answers = []
        wait_until(lambda: answers.append(self.add_status()) or
                   self.breaker_lines(ep1, "OPEN again") >= 2, 10,
                   "two failed probes of stock1")
        self.assertEqual({s for s, _ in answers}, {"OK"}, [a for a in answers if a[0] != "OK"])

        c.resume("stock1")
        answers = []
        wait_until(lambda: answers.append(self.add_status()) or
                   self.breaker_lines(ep1, "CLOSED") == 1, 10, "stock1's breaker closed")
        served1 = self.checks_served("stock1")
        wait_until(lambda: answers.append(self.add_status()) or
                   self.checks_served("stock1") > served1, 5, "stock1 serving checks again")
        self.assertEqual({s for s, _ in answers}, {"OK"}, [a for a in answers if a[0] != "OK"])

    def assertAllAlive_except(self, names):
        dead = [n for n in self.c.names() if n not in names and not self.c.alive(n)]
        self.assertEqual(dead, [], "processes died: %s" % dead)


if __name__ == "__main__":
    harness.main()
