#!/usr/bin/python3
"""test_raft_relay: raft traffic goes through the authenticated relay
(replication/transport.h, docs/security.md "Raft").

Design
------
The attacker's message is a real raft 0.15 message (uv_encoding.c): a
RequestVote with a huge term sent to the *leader* (a leader that sees a
higher term steps down and adopts it at once -- raft 0.15 checks leader
stickiness only on followers), and an AppendEntries with one entry.  Each is
tried on the leader's raft port four ways; after all of them the cluster's
term, every replica's applied index and digest must be unchanged and every
replica alive:

  r1  no key: raft_uv_tcp's own handshake + the messages over plain TCP, a
      plain ZeroMQ (NULL mechanism) DEALER sending relay frames, and junk
      with huge length fields -- nothing gets through (the CurveZMQ
      handshake fails), and the broker's RSS grows by less than 32 MiB
      although the junk announces terabytes
  r1  a client, an admin and the shared replica key: every replica having
      its own raft key (--raft-cert), the raft port admits raft keys only at
      the handshake (its ZAP domain, lib/zap.h), so their handshakes fail
      and relay frames carrying the same messages go nowhere; a follower's
      raft key sending them as another raft id (99) gets them dropped ("the
      raft id is not the key's", logged); a 48 MiB frame (over
      ZMQ_MAXMSGSIZE) even with a raft key disconnects the sender before it
      is allocated: RSS again grows by less than 32 MiB
  r1  the control: the same RequestVote in the same relay frame with the
      follower's raft key, as its own id, does bump the leader's term -- so
      the refusals above are the relay's doing, not a malformed test
      message; and with that key a raft message announcing a 1 TiB snapshot
      is dropped as malformed before raft sees it (no term change, RSS bound
      as above)

  r2  (item 9 of issue 9) after a replica restart the first election after a
      leader kill is won by the first campaign.  Three replicas; R is the
      lowest-id follower (it campaigns first when the leader goes, see
      zc_node_peer_gone), S the other.  R is SIGKILLed and restarted and
      the cluster converges; then the leader is SIGKILLed.  Checked: the
      surviving follower S logged that the relay reset its raft streams
      from R's old process (the condition the relay exposes: "raft peer R
      restarted" or "connection to peer R ... dropped"), R becomes the
      ready leader, and the survivors logged exactly one "-> candidate"
      transition after the kill (R's): R's first campaign won.  (Heartbeat
      150 ms here, so the two followers' staggered campaigns -- R at once, S
      one heartbeat later -- stay apart even when the machine is loaded.)  With
      raft_uv_tcp S answered R's (pre-)vote on its TCP connection to R's
      previous process, R never got it, and S won a heartbeat later
      (bench/README.md, failover drills).

  r3  a replica refuses to start with a --raft-cert that is not the raft
      key of its --id (another replica's, or the shared replica key): exit
      2, saying which key it got, before it touches its data directory (every
      cluster of the suite runs with each replica's own key)

r1 and r3 are skipped with ZCART_IT_INSECURE=1 (there the raft port is as open as
every other port, by design); r2 runs in both modes.
"""
import os
import re
import socket
import struct
import time
import unittest

import zmq

import harness
from harness import wait_until

T_AE, T_RV, T_IS = 1, 3, 5


def raft_msg(typ, header, payload=b""):
    return struct.pack("<QQ", typ, len(header)) + header + payload


def request_vote(term, cand=99):
    # flags bit 0: disrupt_leader, as a leadership transfer's vote: even the
    # leader must adopt the term (recv_request_vote.c)
    return raft_msg(T_RV, struct.pack("<QQQQQ", term, cand, 1 << 40, term, 1))


def append_entries(term, data=b"x" * 16):
    hdr = struct.pack("<QQQQ", term, 1 << 30, term, 1 << 30)
    hdr += struct.pack("<Q", 1) + struct.pack("<QB3xI", term, 1, len(data)) + b"\0" * 8
    return raft_msg(T_AE, hdr, data)


def relay_hdr(sender=99, inc=12345, stream=1, addr=b"127.0.0.1:1", kind=b"D"):
    return bytes([1]) + kind + struct.pack("<QQQ", stream, sender, inc) + bytes([len(addr)]) + addr


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def raft_state(c):
    """(max term, [(id, applied_index, digest)]) of every replica."""
    def get():
        try:
            return c.all_status()
        except (AssertionError, harness.Timeout, zmq.ZMQError):
            return None
    st = wait_until(get, 20, "every replica's STATUS")
    return max(s["term"] for s in st), sorted((s["id"], s["applied_index"], s["digest"])
                                             for s in st)


class RaftRelay(harness.ClusterTestCase):
    def leader_name(self, c):
        ld = wait_until(c.leader, 15, "a ready leader")
        return ld, "broker%d" % ld["id"]

    def send_dealer(self, ep, frames_list, cert=None, c=None, plain=False):
        """A DEALER to the raft endpoint: plain, or CURVE with KEYS/cert
        (server key: the replica key).  Sends each multipart message and
        waits until it is on the wire."""
        s = harness.zctx().socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 2000)
        if not plain:  # the raft port's server key is the shared replica key
            pub, sec = harness.read_cert(c.key_file(cert, True))
            s.curve_serverkey = harness.read_cert(c.key_file("replica"))[0]
            s.curve_publickey = pub
            s.curve_secretkey = sec
        s.connect(ep)
        for frames in frames_list:
            s.send_multipart(frames)
        s.close()  # linger: flushed (or dropped by a refused handshake) within 2 s

    @unittest.skipUnless(harness.SECURE, "secure clusters only (ZCART_IT_INSECURE=1 given)")
    def test_r1_no_key_and_a_client_key_cannot_reach_raft(self):
        c = self.cluster(replicas=3, cart_nodes=1, slots=2)
        wait_until(lambda: harness.converged(c), 20, "converged")
        ld, name = self.leader_name(c)
        port = c.base + 10 + ld["id"]
        ep = "tcp://127.0.0.1:%d" % port
        term0, state0 = raft_state(c)
        pid = c.pid(name)
        rss0 = rss_kb(pid)
        big = term0 + (1 << 40)
        msgs = [request_vote(big), append_entries(big)]

        # -- no key: raw TCP, raft_uv_tcp's handshake then the messages --
        addr = b"127.0.0.1:1\0\0\0\0\0"
        hs = struct.pack("<QQQ", 1, 99, len(addr)) + addr
        junk = struct.pack("<QQ", T_IS, 1 << 40) + b"\xff" * 64  # a 1 TiB header
        for payload in (hs + b"".join(msgs), junk, b"\xff" * 10 + struct.pack(">Q", 1 << 50)):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                try:
                    s.sendall(payload)
                    s.settimeout(2)
                    s.recv(4096)
                except OSError:
                    pass
        # -- no key: a plain ZeroMQ DEALER with relay frames --
        self.send_dealer(ep, [[relay_hdr(), m] for m in msgs], plain=True)
        # -- a client key (and an admin key): the raft port's ZAP domain is
        # "replica", so the handshake fails and nothing reaches the relay --
        # (and, every replica having its own raft key, the shared replica key)
        for cert in ("client", "admin", "replica"):
            out, sock = harness.handshake(ep, c, cert)
            sock.close(0)
            self.assertEqual(out, "refused", "the raft port let a %s key in" % cert)
        self.send_dealer(ep, [[relay_hdr(), m] for m in msgs], cert="client", c=c)
        # -- the replica key and a frame over ZMQ_MAXMSGSIZE: disconnected
        # before it is allocated --
        other = next(s["id"] for s in c.all_status() if s["id"] != ld["id"])
        mine = "raft-%d" % other  # a follower's own raft key: it may speak as `other` only
        self.send_dealer(ep, [[relay_hdr(sender=other), b"\0" * (48 << 20)]], cert=mine, c=c)
        # -- a replica's raft key speaking as another raft id: dropped --
        self.send_dealer(ep, [[relay_hdr(sender=99), m] for m in msgs], cert=mine, c=c)
        wait_until(lambda: c.grep_logs("the raft id is not the key's")
                   or raft_state(c)[0] != term0, 10,
                   "the relay logging the raft key's messages under another id as refused")

        self.assertTrue(c.alive(name), "the leader died")
        term1, state1 = raft_state(c)
        self.assertEqual(term1, term0, "a message without a replica key changed the term")
        self.assertEqual(state1, state0, "a message without a replica key changed the log")
        grown = rss_kb(pid) - rss0
        self.assertLess(grown, 32 << 10, "the leader's RSS grew by %d KiB" % grown)
        self.assertTrue(c.grep_logs("the raft id is not the key's"), "no refusal logged")

        # -- a raft key: a 1 TiB snapshot announcement is dropped unparsed --
        conf = b""
        snap = raft_msg(T_IS, struct.pack("<QQQQQ", big, 1, 1, 1, len(conf)) + conf
                        + struct.pack("<Q", 1 << 40) + b"\0" * 8, b"\0" * 64)
        self.send_dealer(ep, [[relay_hdr(stream=7, sender=other), snap]], cert=mine, c=c)
        wait_until(lambda: c.grep_logs("not one whole raft message"), 10,
                   "the relay logging the oversized snapshot as malformed")
        term2, _ = raft_state(c)
        self.assertEqual(term2, term0, "an oversized raft message reached raft")
        grown = rss_kb(pid) - rss0
        self.assertLess(grown, 32 << 10, "the leader's RSS grew by %d KiB" % grown)
        self.assertTrue(c.alive(name), "the leader died")

        # -- the control: the same RequestVote with a raft key, as its own id --
        self.send_dealer(ep, [[relay_hdr(stream=8, sender=other), msgs[0]]], cert=mine, c=c)
        wait_until(lambda: c.replica_status(ld["endpoint"])["term"] >= big, 10,
                   "the raft-key RequestVote raising the leader's term (the control)")
        self.assertAllAlive(c)

    def transfer(self, c, to):
        def done():
            c.cli("admin", "transfer-leader", to)
            ld = c.leader()
            return ld is not None and ld["id"] == to and harness.converged(c)
        wait_until(done, 30, "leadership on replica %d" % to, interval=0.5)

    def test_r2_first_campaign_after_a_replica_restart_wins(self):
        # A 150 ms heartbeat: the followers' staggered campaigns (R at once, S
        # one heartbeat later) stay apart on a loaded machine too.
        c = self.cluster(replicas=3, cart_nodes=1, slots=2,
                         broker_args=("--heartbeat-timeout=150", "--election-timeout=1000"))
        wait_until(lambda: harness.converged(c), 20, "converged")
        # R = 1 campaigns first when the leader goes (lowest id); S = 2 led
        # once, so it has a raft connection to R's first process; L = 3 leads.
        r, s, l = 1, 2, 3
        self.transfer(c, s)
        self.transfer(c, l)
        rname, sname, lname = "broker%d" % r, "broker%d" % s, "broker%d" % l
        ld = c.leader()
        c.sigkill(rname)
        c.start(rname)
        wait_until(lambda: harness.converged(c), 20, "converged after %s's restart" % rname)
        slog = os.path.join(c.dir, sname, "log")
        with open(slog, "rb") as f:
            before_kill = f.read().decode(errors="replace")
        reset = re.compile(r"raft peer %d restarted|connection to peer %d at \S+ dropped" % (r, r))
        self.assertTrue(reset.search(before_kill),
                        "%s did not reset its raft streams from %s's previous process" %
                        (sname, rname))
        sizes = {n: os.path.getsize(os.path.join(c.dir, n, "log")) for n in (rname, sname)}
        c.sigkill(lname)
        new = wait_until(lambda: (lambda l: l if l and l["id"] != ld["id"] else None)(c.leader()),
                         15, "a new ready leader")
        campaigns = []
        for n in (rname, sname):
            with open(os.path.join(c.dir, n, "log"), "rb") as f:
                f.seek(sizes[n])
                campaigns += [(n, l) for l in f.read().decode(errors="replace").splitlines()
                              if "-> candidate" in l]
        self.assertEqual(new["id"], r, "the first campaign (%s's) lost: %s leads; campaigns %s"
                         % (rname, new["id"], campaigns))
        self.assertEqual(len(campaigns), 1, "more than one campaign: %s" % campaigns)
        c.start(lname)
        wait_until(lambda: harness.converged(c), 20, "converged after the old leader's restart")


class RaftKeys(unittest.TestCase):
    @unittest.skipUnless(harness.SECURE, "secure clusters only (ZCART_IT_INSECURE=1 given)")
    def test_r3_a_replica_starts_only_with_its_own_raft_key(self):
        import subprocess
        import tempfile
        with tempfile.TemporaryDirectory(prefix="zc-raftkey-") as d:
            keys = os.path.join(d, "keys")
            r = subprocess.run([os.path.join(harness.BIN, "zcart"), "keygen", keys, "--replicas",
                                "2"], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            base = [os.path.join(harness.BIN, "zcart-broker"), "--id", "1", "--data",
                    os.path.join(d, "data"), "--replica",
                    "1=127.0.0.1:1,tcp://127.0.0.1:2,tcp://127.0.0.1:3",
                    "--cert", os.path.join(keys, "replica.cert_secret"),
                    "--allow", os.path.join(keys, "allow")]
            for wrong in ("raft-2.cert_secret", "replica.cert_secret"):
                with self.subTest(key=wrong):
                    r = subprocess.run(base + ["--raft-cert", os.path.join(keys, wrong)],
                                       capture_output=True, text=True, timeout=20)
                    self.assertEqual(r.returncode, 2, r.stderr)
                    self.assertIn("is not the raft key of replica 1", r.stderr)
            self.assertFalse(os.path.exists(os.path.join(d, "data", "raft")),
                             "a refused replica touched its data directory")


if __name__ == "__main__":
    harness.main()
