#!/usr/bin/python3
"""test_conf_restart: a replica restarted with a configuration change pending rolls it back.

Design
------
raft 0.15 takes the last configuration entry of its log as committed when
it starts (start.c:56).  A replica that appended a change, never committed,
and restarted, keeps that configuration even after a new leader overwrote
the entry: raft rolls back only a configuration it knows is pending.  The
io guard's rule 7e makes such an entry pending at start (io_guard.c).

c1. Three replicas, leader L, followers F and G.  F and G are SIGKILLed,
    then `zcart admin remove-node F` goes to L (the only one up, still
    leading for an election timeout): L appends the configuration {L, G}
    (raft switches to it at once: L's status no longer lists member F),
    which reaches nobody.  L is SIGKILLed with the entry on its disk; F and
    G start again and elect a leader, whose entries overwrite that index.
    L starts again on its data.  Checked: the three
    converge, and every replica -- L included -- lists all three as
    voters (member.ID).  Without 7e, L keeps {L, G}: no member F.
"""

import os
import signal
import time

import harness
from harness import CliSession, wait_until


def members(st):
    return sorted(int(k.split(".", 1)[1]) for k, v in st.items()
                  if k.startswith("member.") and str(v).startswith("voter "))


class ConfRestart(harness.ClusterTestCase):
    def test_c1_pending_change_rolled_back_after_restart(self):
        # A long election timeout: L leads on for a while after F and G are
        # gone (raft 0.15 steps down a leader that hears no majority within it).
        c = self.cluster(replicas=3, cart_nodes=1, slots=2,
                         broker_args=["--election-timeout=2000"])
        st = self.assertConverges(c)
        lid = [s for s in st if s["role"] == "leader"][0]["id"]
        f, g = [r for r in (1, 2, 3) if r != lid]
        lep = c.client_endpoints[lid - 1]
        # F and G gone at once (L still leads for an election timeout):
        # nothing L appends now can reach them.
        for r in (f, g):
            os.kill(c.pid("broker%d" % r), signal.SIGKILL)
        p = c.cli_popen("admin", "remove-node", f, timeout_ms=1500, brokers=[lep])
        # L switched to {L, G} as soon as it appended the entry.
        wait_until(lambda: (lambda s: s if s and members(s) == sorted([lid, g]) else None)(
            self.status_of(c, lep)), 5, "L without member %d" % f)
        time.sleep(0.3)  # the entry reaches L's disk (raft writes it at once)
        c.sigkill("broker%d" % lid)
        c.cli_result(p)
        c.start("broker%d" % f)
        c.start("broker%d" % g)
        wait_until(lambda: (c.leader() or {}).get("id") in (f, g), 15, "a leader among F and G")
        # The new leader's first entries overwrite L's pending one.
        CliSession(c).add("apple", 1)
        wait_until(lambda: (c.leader() or {}).get("commit_index", 0) > st[0]["commit_index"] + 1,
                   10, "the new leader commits")
        c.start("broker%d" % lid)
        sts = self.assertConverges(c, timeout=30)
        for s in sts:
            self.assertEqual(members(s), [1, 2, 3],
                             "replica %d's raft configuration: %s" % (s["id"], members(s)))

    @staticmethod
    def status_of(c, ep):
        try:
            return c.replica_status(ep, timeout=0.5)
        except Exception:  # noqa: BLE001 -- not answering yet
            return None


if __name__ == "__main__":
    harness.main()
