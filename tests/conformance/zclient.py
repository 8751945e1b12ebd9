"""A ZCP/1 client written from docs/protocol.md alone (sections 1, 3, 5).

One DEALER per replica's client endpoint (bare frames, no delimiter).
Requests are matched to replies by (session, seq), status and admin replies
by corr.  `Client.call` is what a real client does (section 3): send to the
replica it believes is the leader; on NOT_LEADER follow `detail` (or, when
it is `unknown`, try the next replica); on no answer within the per-try
timeout resend the SAME (session, seq) to the next replica; give up after
`total` seconds.  `Client.once` sends one frame to one replica and returns
its one answer, with no redirect and no retry, for tests of single steps.
"""

import itertools
import os
import time

import zmq

import zcp
import zcluster


class NoAnswer(Exception):
    pass


class Client:
    def __init__(self, endpoints, ctx=None, try_timeout=2.5):
        self.ctx = ctx or zmq.Context.instance()
        self.endpoints = list(endpoints)
        self.current = self.endpoints[0]
        self.try_timeout = try_timeout
        self.socks = {}
        self.stash = {}          # endpoint -> decoded frames not yet claimed
        self.corr = itertools.count(int.from_bytes(os.urandom(4), "big") << 16)
        self.redirects = []      # (from, to) NOT_LEADER redirects followed

    # ------------------------------------------------------------ sockets
    def sock(self, ep):
        s = self.socks.get(ep)
        if s is None:
            s = self.ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            zcluster.curve(s, "admin")
            s.connect(ep)
            self.socks[ep] = s
            self.stash[ep] = []
        return s

    def drop(self, ep):
        """Forget a replica's connection (a client that gives up on it)."""
        s = self.socks.pop(ep, None)
        if s is not None:
            s.close(0)
        self.stash.pop(ep, None)

    def close(self):
        for ep in list(self.socks):
            self.drop(ep)

    def send_raw(self, ep, frames):
        """Send one ZeroMQ message: a bytes frame or a list of frames."""
        if isinstance(frames, (bytes, bytearray)):
            frames = [bytes(frames)]
        self.sock(ep).send_multipart(frames)

    def recv_raw(self, ep, timeout):
        """Next raw message (list of frames) from ep, or None at timeout."""
        s = self.sock(ep)
        if s.poll(int(timeout * 1000)):
            return s.recv_multipart()
        return None

    def wait_for(self, ep, match, timeout):
        """Wait for a decoded frame from ep that `match` accepts."""
        stash = self.stash.setdefault(ep, [])
        for m in stash:
            if match(m):
                stash.remove(m)
                return m
        s = self.sock(ep)
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0 or not s.poll(int(left * 1000) + 1):
                if time.monotonic() >= end:
                    return None
                continue
            frames = s.recv_multipart()
            if len(frames) != 1:
                continue
            try:
                m = zcp.decode(frames[0])
            except zcp.Malformed:
                continue
            if match(m):
                return m
            stash.append(m)

    # ------------------------------------------------------------ requests
    @staticmethod
    def _reply_of(session, seq):
        return lambda m: m["type"] == zcp.REPLY and m["session"] == session and m["seq"] == seq

    def once(self, ep, session, seq, op, product=b"", qty=0, deadline=0, timeout=None):
        """One request to one replica, its one reply (no redirect, no retry)."""
        self.send_raw(ep, zcp.encode_request(session, seq, op, deadline, product, qty))
        m = self.wait_for(ep, self._reply_of(session, seq), timeout or self.try_timeout)
        if m is None:
            raise NoAnswer("no reply from %s to seq %d" % (ep, seq))
        return m

    def once_as_peer(self, ep, session, seq, op, product=b"", qty=0, deadline=0, timeout=None):
        """once() from a routing id of another replica ("zc-replica-99"): a
        follower never relays such a request (section 3.6), so this shows
        what a follower answers itself."""
        s = self.ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.ROUTING_ID, b"zc-replica-99")
        zcluster.curve(s, "admin")
        s.connect(ep)
        try:
            s.send(zcp.encode_request(session, seq, op, deadline, product, qty))
            end = time.monotonic() + (timeout or self.try_timeout)
            while s.poll(max(1, int((end - time.monotonic()) * 1000))):
                m = zcp.decode(s.recv())
                if self._reply_of(session, seq)(m):
                    return m
                if time.monotonic() >= end:
                    break
            raise NoAnswer("no reply from %s to seq %d" % (ep, seq))
        finally:
            s.close(0)

    def next_endpoint(self, ep):
        i = self.endpoints.index(ep) if ep in self.endpoints else -1
        return self.endpoints[(i + 1) % len(self.endpoints)]

    def call(self, session, seq, op, product=b"", qty=0, deadline=0, total=15.0,
             accept_unavailable=False):
        """A request as a real client sends it: redirects and retries (section 3).

        Returns the first reply that is not NOT_LEADER (nor UNAVAILABLE unless
        accept_unavailable).  Raises NoAnswer after `total` seconds."""
        end = time.monotonic() + total
        frame = zcp.encode_request(session, seq, op, deadline, product, qty)
        ep = self.current
        while time.monotonic() < end:
            self.send_raw(ep, frame)
            m = self.wait_for(ep, self._reply_of(session, seq),
                              min(self.try_timeout, max(0.05, end - time.monotonic())))
            if m is None:                       # no answer: same seq, next replica
                ep = self.next_endpoint(ep)
                continue
            if m["status"] == zcp.NOT_LEADER:
                target = m["detail"]
                if target and target != "unknown" and target != ep:
                    self.redirects.append((ep, target))
                    if target not in self.endpoints:
                        self.endpoints.append(target)
                    ep = target
                else:                           # election in progress
                    time.sleep(0.05)            # retry pacing, not a wait on a condition
                    ep = self.next_endpoint(ep)
                continue
            if m["status"] == zcp.UNAVAILABLE and not accept_unavailable:
                time.sleep(0.05)
                ep = self.next_endpoint(ep)
                continue
            self.current = ep
            return m
        raise NoAnswer("no answer to seq %d within %.1f s" % (seq, total))

    # ------------------------------------------------------------ status/admin
    def status(self, ep, timeout=2.0):
        """status-reply props of one replica (section 3.1), or None."""
        corr = next(self.corr)
        self.send_raw(ep, zcp.encode_status(corr))
        m = self.wait_for(ep, lambda m: m["type"] == zcp.STATUS_REPLY and m["corr"] == corr,
                          timeout)
        return None if m is None else m["props"]

    def admin_once(self, ep, command, props=(), timeout=10.0):
        corr = next(self.corr)
        self.send_raw(ep, zcp.encode_admin(corr, command, props))
        m = self.wait_for(ep, lambda m: m["type"] == zcp.ADMIN_REPLY and m["corr"] == corr,
                          timeout)
        if m is None:
            raise NoAnswer("no admin-reply from %s" % ep)
        return m

    def admin(self, command, props=(), total=15.0):
        """Admin to the leader, following NOT_LEADER (section 3.2)."""
        end = time.monotonic() + total
        ep = self.current
        while time.monotonic() < end:
            m = self.admin_once(ep, command, props)
            if m["status"] == zcp.NOT_LEADER:
                t = m["detail"]
                ep = t if t and t != "unknown" else self.next_endpoint(ep)
                if t == "unknown":
                    time.sleep(0.05)
                continue
            self.current = ep
            return m
        raise NoAnswer("admin %s: no leader within %.1f s" % (command, total))


def new_session_id():
    while True:
        sid = os.urandom(16)
        if sid != zcp.ZERO_SESSION:
            return sid


class Session:
    """A client session: a random non-zero id and seqs from 1 (section 2)."""

    def __init__(self, client, sid=None):
        self.client = client
        self.id = sid or new_session_id()
        self.seq = 0

    def next_seq(self):
        self.seq += 1
        return self.seq

    def do(self, op, product=b"", qty=0, deadline=0, **kw):
        return self.client.call(self.id, self.next_seq(), op, product, qty, deadline, **kw)

    def add(self, product, qty, **kw):
        return self.do(zcp.ADD, product, qty, **kw)

    def remove(self, product, qty, **kw):
        return self.do(zcp.REMOVE, product, qty, **kw)

    def list(self, **kw):
        return self.do(zcp.LIST, **kw)

    def close(self, **kw):
        return self.do(zcp.CLOSE, **kw)

    def keepalive(self, **kw):
        return self.do(zcp.KEEPALIVE, **kw)
