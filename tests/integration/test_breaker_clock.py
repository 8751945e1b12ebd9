#!/usr/bin/python3
"""test_breaker_clock: a wall-clock jump does not keep a breaker OPEN for the size of the jump.

Design
------
A breaker record's since_ms is the deciding leader's wall clock (so a new
leader continues its predecessor's wait).  A trip decided while the
leader's clock ran ahead carries a since_ms in the future; measured by the
wall clock alone, its OPEN wait lasts until the real clock catches up.
broker/liveness.c (breaker_age_ms) also counts the wait on the leader's
monotonic clock from when it first saw the record, so no wait lasts more
than its length on that leader.

Every daemon runs with tests/chaos/clockshim.c preloaded: its wall clock
is the real one plus the milliseconds in one offset file (monotonic clocks
untouched).  One replica, one cart node, --cart-liveness 500 and
--breaker-wait 1000.

k1. Clocks +60 s; the cart node paused (SIGSTOP) until its two carts'
    breakers are OPEN (heartbeat trips, since_ms 60 s ahead); clocks back to
    the real time, the node resumed.  Both breakers must be CLOSED again
    within 10 s (1 s wait, HALF_OPEN, a HELLO).  By the wall clock alone
    they would stay OPEN for about 60 s.
"""

import os
import tempfile
import time

import harness
from harness import wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
SHIM = os.path.join(os.path.dirname(HERE), "chaos", "clockshim.c")


class BreakerClock(harness.ClusterTestCase):
    def test_k1_jump_back_does_not_hold_breakers_open(self):
        offset = os.path.join(tempfile.mkdtemp(prefix="zc-clock-"), "offset_ms")

        def set_offset(ms):
            with open(offset + ".tmp", "w") as f:
                f.write("%d\n" % ms)
            os.replace(offset + ".tmp", offset)
            time.sleep(0.2)  # > the shim's 50 ms re-read period

        set_offset(0)
        harness.preload(self, harness.build_shim(SHIM), ZCART_CLOCK_OFFSET_FILE=offset)
        c = self.cluster(replicas=1, cart_nodes=1, slots=2,
                         broker_args=["--cart-liveness", "500", "--breaker-wait", "1000"])
        wait_until(lambda: (c.leader() or {}).get("carts_free") == 2, 15, "two free carts")
        set_offset(60000)
        c.pause("cart1")
        wait_until(lambda: (c.leader() or {}).get("breakers_not_closed") == 2, 10,
                   "both breakers tripped")
        st = c.leader()
        self.assertTrue(all(str(v).startswith("OPEN ") for k, v in st.items()
                            if k.startswith("breaker.")), st)
        set_offset(0)
        c.resume("cart1")
        t0 = time.monotonic()
        try:
            wait_until(lambda: (c.leader() or {}).get("breakers_not_closed") == 0, 10,
                       "both breakers CLOSED again")
        except harness.Timeout:
            self.fail("breakers still not closed: %s" % {k: v for k, v in c.leader().items()
                                                          if k.startswith("breaker")})
        print("breakers closed %.1f s after the clock jumped back" % (time.monotonic() - t0))


if __name__ == "__main__":
    harness.main()
