#!/usr/bin/python3
"""test_roles: answers to keys of the wrong role, and the pinned server key (issue 14).

Design
------
r1. A client key's `admin` is answered `admin-reply` FORBIDDEN with its own
    corr (before the decision every refusal was a `reply`, which an asker
    matching by corr never sees), counted in `forbidden`; a key whose role
    may not use the client port at all (a cart node's) fails the handshake
    there: nothing it sends is answered or counted.
r2. libzcart pins the cluster's server key on every connection, redirects
    included.  A fake replica holding the real replica key answers every
    request NOT_LEADER pointing at a second fake: with the real key there,
    the client follows the redirect and the second fake receives the
    request (the control: redirects are followed); with another key there,
    the CURVE handshake fails, the second fake receives nothing (the
    session id never leaves the client) and the client fails (unreachable)
    instead of being served.
"""

import json
import os
import subprocess

import zmq

import harness
import zcproto as zp
from harness import Dealer, FakeRouter, Timeout, wait_until


class Roles(harness.ClusterTestCase):
    def test_r1_refusals_are_matchable_or_at_the_handshake(self):
        c = self.cluster(replicas=1, cart_nodes=1, slots=1)
        if not c.secure:
            self.skipTest("insecure cluster: no roles")
        ep = c.client_endpoints[0]
        before = c.replica_status(ep)["forbidden"]
        # A client key's admin: an admin-reply FORBIDDEN with its own corr
        # (before the decision it was a reply, which an asker matching by
        # corr never sees); its status and requests are served.
        with Dealer(ep, cert="client") as d:
            d.send(zp.Msg(zp.ADMIN, corr=77, command="transfer-leader"))
            m = d.recv(5)
            self.assertEqual((m.name, m.corr, m.status_name), ("ADMIN_REPLY", 77, "FORBIDDEN"), m)
            d.send(zp.status(4242))
            m = d.recv(5)
            self.assertEqual((m.name, m.corr), ("STATUS_REPLY", 4242), m)
        self.assertEqual(c.replica_status(ep)["forbidden"], before + 1)
        # A cart node's key may not use the client port at all: the
        # handshake fails (lib/zap.h), nothing it sends is answered or
        # counted.
        with Dealer(ep, cert=c.cart_key("cart1")) as d:
            d.send(zp.status(4243))
            d.send(zp.Msg(zp.ADMIN, corr=78, command="transfer-leader"))
            with self.assertRaises(Timeout):
                d.recv(1.5)
        self.assertEqual(c.replica_status(ep)["forbidden"], before + 1)

    def _redirect(self, c, right_key):
        """Run `zcart list` against fake replica A, which redirects to fake B
        (holding the real replica key or another); (exit, B's first frame or None)."""
        a_ep, b_ep = "tcp://127.0.0.1:%d" % c.port(), "tcp://127.0.0.1:%d" % c.port()
        # B is a CURVE server either way: with the replicas' secret key, or
        # with a key of its own (set before bind: a listener keeps the
        # options it was bound with).
        b = FakeRouter.__new__(FakeRouter)
        b.endpoint = b_ep
        b.sock = harness.zctx().socket(zmq.ROUTER)
        b.sock.setsockopt(zmq.LINGER, 0)
        b.sock.curve_server = True
        b.sock.curve_secretkey = (harness.read_cert(c.key_file("replica", True))[1] if right_key
                                  else zmq.curve_keypair()[1])
        b.sock.bind(b_ep)
        with FakeRouter(a_ep, cluster=c, as_key="replica") as a, b:
            session = zp.new_session().hex()
            p = subprocess.Popen(
                [os.path.join(harness.BIN, "zcart"), "--brokers", a_ep, "--json",
                 "--timeout", "3000", "--session", session] + c.sec_args("client") + ["list"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True)
            c.clients.append(p)
            rid, m = a.recv_msg(zp.REQUEST, timeout=10)
            self.assertEqual(m.session.hex(), session)
            a.send(rid, zp.Msg(zp.REPLY, session=m.session, seq=m.seq, status=zp.NOT_LEADER,
                               detail=b_ep))
            got = None
            try:
                got = b.recv_msg(zp.REQUEST, timeout=4)
            except Timeout:
                pass
            out, _ = p.communicate(timeout=15)  # its --timeout ends it
            lines = out.strip().splitlines()
            return got, session, p.returncode, json.loads(lines[-1]) if lines else None

    def test_r2_redirect_to_an_endpoint_without_the_server_key_fails_closed(self):
        c = self.cluster(replicas=1, cart_nodes=1, slots=1)
        if not c.secure:
            self.skipTest("insecure cluster: no server key")
        got, session, _, _ = self._redirect(c, right_key=True)
        self.assertIsNotNone(got, "the client did not follow a redirect to the right key")
        self.assertEqual(got[1].session.hex(), session)
        got, _, rc, out = self._redirect(c, right_key=False)
        self.assertIsNone(got, "a redirect reached an endpoint without the cluster's key")
        self.assertNotEqual(rc, 0, out)   # it gave up; it was not served
        self.assertFalse(out and out.get("ok"), out)


if __name__ == "__main__":
    harness.main()
