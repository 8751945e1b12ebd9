#!/usr/bin/python3
"""test_stale_probe: a probe answers only the HALF_OPEN period that admitted it.

Design
------
Found while running test_breakers b1 under ASan on a loaded machine: a
request admitted as a probe in one HALF_OPEN period whose failure came back
in a *later* HALF_OPEN period (the breaker had reopened and half-opened
again meanwhile) was counted against the later one: HALF_OPEN -> OPEN
(failures).  A breaker opened for failures is not closed by a HELLO, so an
assigned cart whose session sent nothing more stayed out of service.  The
leader now records the HALF_OPEN period (its since_ms) a probe was admitted
in and ignores the probe's result once the breaker has moved on.

p1. Insecure 1-replica cluster, a fake cart node "fk" (a DEALER the test
    drives) with one slot, assigned to a session.  The fake goes silent:
    the breaker opens (heartbeat) and half-opens (period 1); the session's
    list is admitted as a probe and reaches the fake, which holds it.  The
    breaker fails the period for silence, reopens and half-opens again
    (period 2).  Now the fake answers the held probe INTERNAL and resumes
    its HELLOs: the breaker must close (a HELLO after a heartbeat trip
    closes it); counting the stale failure would reopen it for failures and
    leave it HALF_OPEN for good.
"""

import threading
import time

import harness
import zcproto as zp
from harness import Dealer, wait_until

LIVENESS_MS = 1500


def breaker_of(c, cart):
    """(STATE, trips) of cart's breaker from the leader's status, or None when CLOSED."""
    st = c.leader() or {}
    v = st.get("breaker." + cart)
    if v is None:
        return None
    f = v.split()
    trips = int([x for x in f if x.startswith("trips=")][0].split("=")[1])
    return f[0], trips


class StaleProbe(harness.ClusterTestCase):
    def test_p1_a_probe_of_an_earlier_half_open_period_is_ignored(self):
        c = self.cluster(replicas=1, cart_nodes=0, secure=False,
                         broker_args=["--cart-liveness=%d" % LIVENESS_MS, "--breaker-wait=300",
                                      "--cart-timeout=6000", "--cart-lost-after=60000"])
        node = Dealer(c.cart_endpoints[0], routing_id=b"fk", cert=False)
        self.addCleanup(node.close)
        hello_on = threading.Event()
        stop = threading.Event()
        lock = threading.Lock()

        def hellos():
            while not stop.is_set():
                if hello_on.is_set():
                    with lock:
                        node.send(zp.Msg(zp.HELLO, node="fk", slots=[zp.SlotInfo(0)]))
                time.sleep(0.2)
        t = threading.Thread(target=hellos, daemon=True)
        hello_on.set()
        t.start()
        self.addCleanup(lambda: (stop.set(), t.join(2)))

        def next_cart_request(timeout=10):
            deadline = time.monotonic() + timeout
            while True:
                m = node.recv(max(deadline - time.monotonic(), 0.0))
                if m.id == zp.CART_REQUEST:
                    return m

        def answer(m, status, items=()):
            with lock:
                node.send(zp.Msg(zp.CART_REPLY, corr=m.corr, slot=m.slot, session=m.session,
                                 seq=m.seq, status=status, items=list(items)))

        wait_until(lambda: c.counts() == (1, 1, 0, 0), 15, "fk.0 registered")
        client = Dealer(c.leader_endpoint(), cert=False)
        self.addCleanup(client.close)
        s = zp.new_session()
        client.send(zp.request(s, 1, zp.OP_ADD, "apple", 1))
        answer(next_cart_request(), zp.OK, [("apple", 1)])
        self.assertEqual(client.reply_for(s, 1).status_name, "OK")
        # Silence: OPEN, then HALF_OPEN (period 1).
        hello_on.clear()
        wait_until(lambda: breaker_of(c, "fk.0") == ("HALF_OPEN", 1), 15, "period 1")
        client.send(zp.request(s, 2, zp.OP_LIST))
        held = next_cart_request()  # the probe; the fake holds it
        # Still silent: period 1 fails (heartbeat), OPEN, then HALF_OPEN again.
        wait_until(lambda: breaker_of(c, "fk.0") == ("HALF_OPEN", 2), 15, "period 2")
        answer(held, zp.INTERNAL)
        hello_on.set()
        wait_until(lambda: breaker_of(c, "fk.0") is None, 10,
                   "the breaker closed by the node's HELLOs (the stale probe ignored)")
        self.assertEqual(client.reply_for(s, 2).status_name, "INTERNAL")
        self.assertEqual(c.grep_logs("(failures, trip"), [], "the stale probe reopened it")


if __name__ == "__main__":
    harness.main()
