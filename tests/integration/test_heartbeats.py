#!/usr/bin/python3
"""test_heartbeats: broker and carts watch each other; nobody mistakes their own pause for the other's death.

Design
------
Both directions of the heartbeat (docs/protocol.md §4, "hello and
heartbeat"), with HELLO every 200 ms, a cart-side broker liveness of 800 ms
and a broker-side cart liveness of 1000 ms:

h1. Every replica answers HELLOs: with a 3-replica cluster the cart node
    logs nothing about silent replicas while all are up. A follower is
    SIGSTOPped: the node reports that replica silent and reconnects to it
    (the others stay quiet); after SIGCONT it reports the replica answering
    again. The node's sessions are served all along (the leader was never
    paused).
h2. The only broker (1 replica) is SIGSTOPped for longer than the cart
    liveness: on SIGCONT the broker's first scans must not trip the node's
    breakers -- the HELLOs it missed are queued unread, its own pause is
    not the node's silence -- and the session is served at once.
"""

import time

import harness
from harness import CliSession, items_of, wait_until

CART_ARGS = ["--broker-liveness=800"]
BROKER_ARGS = ["--cart-liveness=1000", "--breaker-wait=500"]


def cart_log(c, needle):
    return [line for path, line in c.grep_logs(needle) if "/cart1/" in path]


class Heartbeats(harness.ClusterTestCase):
    def test_h1_a_silent_replica_is_reconnected(self):
        c = self.cluster(replicas=3, cart_nodes=1, slots=2, hello_interval=200,
                         cart_args=CART_ARGS, broker_args=BROKER_ARGS)
        s = CliSession(c)
        s.add("apple", 1)
        self.assertEqual(cart_log(c, "silent for"), [], "a live replica was reported silent")
        f = next("broker%d" % x["id"] for x in c.all_status() if x["role"] == "follower")
        ep = c.plan["procs"][[p["name"] for p in c.plan["procs"]].index(f)]["cart_endpoint"]
        c.pause(f)
        try:
            wait_until(lambda: any(ep in line for line in cart_log(c, "silent for")), 10,
                       "the node to report %s silent" % f)
            self.assertEqual(items_of(s.list()), {"apple": 1})
        finally:
            c.resume(f)
        wait_until(lambda: any(ep in line for line in cart_log(c, "answers again")), 10,
                   "the node to hear %s again" % f)
        silent = {line.split("replica ")[1].split(" ")[0] for line in cart_log(c, "silent for")}
        self.assertEqual(silent, {ep}, "only the paused replica may be reported silent")
        self.assertEqual(items_of(s.add("pear", 1)), {"apple": 1, "pear": 1})

    def test_h2_the_brokers_own_pause_trips_no_breaker(self):
        c = self.cluster(replicas=1, cart_nodes=1, slots=2, hello_interval=200,
                         cart_args=CART_ARGS, broker_args=BROKER_ARGS)
        s = CliSession(c)
        s.add("apple", 1)
        c.pause("broker1")
        paused = time.monotonic()
        try:
            wait_until(lambda: cart_log(c, "silent for"), 10, "the node to notice the pause")
            # Well past the cart liveness, so that a broker that judged the
            # node by the HELLO times it has read would trip its breakers.
            wait_until(lambda: time.monotonic() > paused + 1.8, 5, "a pause beyond the liveness")
        finally:
            c.resume("broker1")
        wait_until(lambda: [l for p, l in c.grep_logs("node windows restart")], 10,
                   "the broker to notice its own stall")
        r = s.list()
        self.assertEqual(items_of(r), {"apple": 1})
        self.assertEqual(c.grep_logs("breaker CLOSED -> OPEN"), [],
                         "the broker's own pause tripped a breaker")


if __name__ == "__main__":
    harness.main()
