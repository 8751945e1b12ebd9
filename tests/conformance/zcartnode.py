"""A ZCP/1 cart node written from docs/protocol.md alone (sections 1, 4, 7).

It hosts slots 0..N-1 (cart "<name>.<slot>"), connects one DEALER per
broker replica's cart endpoint (ZMQ_ROUTING_ID = its name, "/" and 16
random hex digits fresh per connection, section 1) and
one DEALER per stock service, and runs in a background thread:

- hello with a slotinfo per slot to every replica at start and every hello
  interval; a replica that sent nothing (heartbeat, cart-request, reset) for
  the broker liveness is reconnected and sent a hello at once (section 4);
- cart-requests decided in the section 4 order: slot/fields, deadline,
  fencing (reset-generation, owner), dedup (1024 answers per owner), list,
  remove, add with a stock `check` for the units after the add;
- reset / reset-done with the generation rule of section 4.

"Durable" state lives in a `NodeState` object the test keeps, so a node can
be stopped and a new one started on the same state (a restart).

Tests steer it through attributes (answer_requests, answer_resets,
send_hellos, override) and read what it received in `events`.
"""

import collections
import itertools
import queue
import secrets
import threading
import time

import zmq

import zcp
import zcluster

DEDUP_WINDOW = 1024


def now_ms():
    return int(time.time() * 1000)


class Slot:
    def __init__(self):
        self.items = collections.OrderedDict()   # product -> units (> 0)
        self.owner = None                        # (session, generation) or None
        self.reset_gen = 0                       # highest generation reset so far
        self.dedup = collections.OrderedDict()   # seq -> (status, detail, items) of the owner
        self.pending = {}                        # seq -> [(ep, corr)] waiting on a stock check

    def contents(self):
        return [(p, q) for p, q in self.items.items()]


class NodeState:
    """What the document says a node keeps durably (section 4)."""

    def __init__(self, nslots):
        self.slots = [Slot() for _ in range(nslots)]


class CartNode:
    def __init__(self, name, nslots, brokers, stock=(), state=None, hello_interval=0.2,
                 broker_liveness=None, stock_timeout=1.0, ctx=None):
        self.name = name
        self.nslots = nslots
        self.brokers = list(brokers)
        self.stock_eps = list(stock)
        self.state = state or NodeState(nslots)
        self.hello_interval = hello_interval
        # the document's default is three hello intervals; never under 1.5 s here, so
        # a loaded test machine does not make the node drop busy connections
        self.broker_liveness = broker_liveness or max(3 * hello_interval, 1.5)
        self.stock_timeout = stock_timeout
        self.ctx = ctx or zmq.Context.instance()
        # knobs the tests turn
        self.answer_requests = True     # False: cart-requests are read and not answered
        self.answer_resets = True       # False: resets are read and not answered
        self.send_hellos = True         # False: the node is silent (but its sockets stay)
        self.override = None            # fn(msg) -> (status, detail) to answer instead
        # what happened
        self.events = []                # (monotonic time, replica ep, decoded msg)
        self.sent = []                  # (monotonic time, replica ep, decoded msg)
        self.reconnects = collections.Counter()
        self.dropped = 0
        # internals
        self._socks = {}                # ep -> DEALER
        self._by_sock = {}
        self._last_heard = {}
        self._stock = []
        self._rr = 0
        self._checks = {}               # corr -> (slot, seq, product, qty, expiry, stock ep)
        self._corr = itertools.count(1)
        self._calls = queue.Queue()
        self._stop = threading.Event()
        self._thread = None

    # ------------------------------------------------------------ life
    def start(self):
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="cartnode-" + self.name,
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Stop the node: close every socket (a killed node)."""
        self._stop.set()
        if self._thread:
            self._thread.join(5)
            self._thread = None

    def call(self, fn, timeout=5.0):
        """Run fn(self) in the node's thread (sockets are not thread-safe)."""
        box = queue.Queue()
        self._calls.put((fn, box))
        return box.get(timeout=timeout)

    # ------------------------------------------------------------ queries
    def received(self, mtype, ep=None, since=0.0):
        return [m for (t, e, m) in self.events
                if m["type"] == mtype and (ep is None or e == ep) and t >= since]

    def received_with_ep(self, mtype, since=0.0):
        return [(e, m) for (t, e, m) in self.events if m["type"] == mtype and t >= since]

    def cart(self, slot):
        return "%s.%d" % (self.name, slot)

    # ------------------------------------------------------------ sockets
    def _connect(self, ep):
        s = self.ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.ROUTING_ID, ("%s/%s" % (self.name, secrets.token_hex(8))).encode())
        zcluster.curve(s, zcluster.cart_key(self.name))
        s.connect(ep)
        self._socks[ep] = s
        self._by_sock[s] = ep
        self._last_heard[ep] = time.monotonic()
        return s

    def _reconnect(self, ep):
        old = self._socks.pop(ep)
        del self._by_sock[old]
        old.close(0)
        self.reconnects[ep] += 1
        self._connect(ep)
        self._hello(ep)

    def _send(self, ep, frame):
        self._socks[ep].send(frame)
        try:
            self.sent.append((time.monotonic(), ep, zcp.decode(frame)))
        except zcp.Malformed:
            self.sent.append((time.monotonic(), ep, {"type": -1, "raw": frame}))

    def send_raw(self, ep, frame):
        """From the test thread: send any frame to one replica."""
        return self.call(lambda n: n._socks[ep].send(frame))

    def hello_frame(self):
        infos = []
        for i, sl in enumerate(self.state.slots):
            sess, gen = sl.owner if sl.owner else (zcp.ZERO_SESSION, 0)
            infos.append((i, sess, gen, sl.reset_gen, len(sl.items)))
        return zcp.encode_hello(self.name, infos)

    def _hello(self, ep):
        if self.send_hellos:
            self._send(ep, self.hello_frame())

    # ------------------------------------------------------------ loop
    def _run(self):
        for ep in self.brokers:
            self._connect(ep)
        for ep in self.stock_eps:
            s = self.ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            zcluster.curve(s, zcluster.cart_key(self.name), "stock")
            s.connect(ep)
            self._stock.append((ep, s))
        next_hello = 0.0
        last_tick = time.monotonic()
        try:
            while not self._stop.is_set():
                poller = zmq.Poller()
                for s in self._socks.values():
                    poller.register(s, zmq.POLLIN)
                for _, s in self._stock:
                    poller.register(s, zmq.POLLIN)
                ready = dict(poller.poll(10))
                t = time.monotonic()
                # a node that did not run for half the window gives every replica a new one
                if t - last_tick > self.broker_liveness / 2:
                    for ep in self._last_heard:
                        self._last_heard[ep] = t
                last_tick = t
                for s in list(ready):
                    if s in self._by_sock:
                        ep = self._by_sock[s]
                        while True:
                            try:
                                frames = s.recv_multipart(zmq.NOBLOCK)
                            except zmq.Again:
                                break
                            self._on_broker(ep, frames)
                    else:
                        while True:
                            try:
                                frames = s.recv_multipart(zmq.NOBLOCK)
                            except zmq.Again:
                                break
                            self._on_stock(frames)
                self._expire_checks()
                while True:
                    try:
                        fn, box = self._calls.get_nowait()
                    except queue.Empty:
                        break
                    try:
                        box.put(fn(self))
                    except Exception as e:  # hand the error to the caller
                        box.put(e)
                t = time.monotonic()
                if t >= next_hello:
                    for ep in list(self._socks):
                        self._hello(ep)
                    next_hello = t + self.hello_interval
                if self.send_hellos:
                    for ep in list(self._socks):
                        if t - self._last_heard[ep] > self.broker_liveness:
                            self._reconnect(ep)
        finally:
            for s in self._socks.values():
                s.close(0)
            for _, s in self._stock:
                s.close(0)
            self._socks, self._by_sock, self._stock = {}, {}, []
            self._checks.clear()
            for sl in self.state.slots:
                sl.pending.clear()

    # ------------------------------------------------------------ broker side
    def _on_broker(self, ep, frames):
        if len(frames) != 1:
            self.dropped += 1
            return
        try:
            m = zcp.decode(frames[0])
        except zcp.Malformed:
            self.dropped += 1
            return
        self.events.append((time.monotonic(), ep, m))
        if m["type"] in (zcp.HEARTBEAT, zcp.CART_REQUEST, zcp.RESET):
            self._last_heard[ep] = time.monotonic()
        if m["type"] == zcp.CART_REQUEST:
            if self.answer_requests:
                self._cart_request(ep, m)
        elif m["type"] == zcp.RESET:
            if self.answer_resets:
                self._reset(ep, m)
        elif m["type"] != zcp.HEARTBEAT:
            self.dropped += 1       # unexpected message: dropped and counted

    def _answer(self, ep, m, status, detail="", items=()):
        self._send(ep, zcp.encode_cart_reply(m["corr"], m["slot"], m["session"], m["seq"],
                                             status, detail, items))

    def _cart_request(self, ep, m):
        slot_no, op = m["slot"], m["op"]
        # 1. slot and fields
        if slot_no >= len(self.state.slots):
            return self._answer(ep, m, zcp.BAD_REQUEST, "no such slot")
        sl = self.state.slots[slot_no]
        if op not in (zcp.ADD, zcp.REMOVE, zcp.LIST):
            return self._answer(ep, m, zcp.BAD_REQUEST, "op not for a cart")
        if op in (zcp.ADD, zcp.REMOVE) and not (zcp.valid_product(m["product"])
                                               and 1 <= m["qty"] <= 1000000):
            return self._answer(ep, m, zcp.BAD_REQUEST, "bad product or qty")
        if m["session"] == zcp.ZERO_SESSION or m["seq"] == 0:
            return self._answer(ep, m, zcp.BAD_REQUEST, "zero session or seq")
        # 2. deadline
        if m["deadline"] and m["deadline"] < now_ms():
            return self._answer(ep, m, zcp.EXPIRED, "deadline past")
        # 3. fencing
        who = (m["session"], m["generation"])
        if m["generation"] <= sl.reset_gen:
            return self._answer(ep, m, zcp.FENCED, "generation at or below reset-generation")
        if sl.owner is not None and sl.owner != who:
            return self._answer(ep, m, zcp.FENCED, "not the owner")
        if sl.owner is None:
            sl.owner = who
        if self.override:
            forced = self.override(m)
            if forced is not None:
                return self._answer(ep, m, forced[0], forced[1], sl.contents())
        # 4. dedup
        if op != zcp.LIST:
            if m["seq"] in sl.dedup:
                st, det, its = sl.dedup[m["seq"]]
                return self._answer(ep, m, st, det, its)
            if m["seq"] in sl.pending:
                sl.pending[m["seq"]].append((ep, m))
                return
            if len(sl.dedup) >= DEDUP_WINDOW and m["seq"] < min(sl.dedup):
                return self._answer(ep, m, zcp.BAD_REQUEST, "outside the dedup window")
        # 5. list
        if op == zcp.LIST:
            return self._answer(ep, m, zcp.OK, "", sl.contents())
        # 6. remove
        if op == zcp.REMOVE:
            have = sl.items.get(m["product"], 0)
            if have < m["qty"]:
                res = (zcp.NOT_IN_CART, "cart holds %d" % have, sl.contents())
            else:
                if have == m["qty"]:
                    del sl.items[m["product"]]
                else:
                    sl.items[m["product"]] = have - m["qty"]
                res = (zcp.OK, "", sl.contents())
            self._record(sl, m["seq"], res)
            return self._answer(ep, m, *res)
        # 7. add: at most 256 distinct products (the items limit), no u32
        # overflow, else check the units after the add
        if m["product"] not in sl.items and len(sl.items) >= zcp.MAX_ITEMS:
            # not recorded: nothing changed, a retry is decided again
            return self._answer(ep, m, zcp.BAD_REQUEST,
                                "the cart holds the maximum number of distinct products",
                                sl.contents())
        want = sl.items.get(m["product"], 0) + m["qty"]
        if want > 0xFFFFFFFF:
            return self._answer(ep, m, zcp.BAD_REQUEST, "quantity too large", sl.contents())
        stock = self._pick_stock()
        if stock is None:
            res = (zcp.STOCK_UNAVAILABLE, "no stock service configured", sl.contents())
            self._record(sl, m["seq"], res)
            return self._answer(ep, m, *res)
        corr = next(self._corr)
        sl.pending[m["seq"]] = [(ep, m)]
        self._checks[corr] = (slot_no, m["seq"], m["product"], m["qty"],
                              time.monotonic() + self.stock_timeout, stock[0])
        # §3.4: the check carries the cart-request's deadline (0 = none)
        stock[1].send(zcp.encode_check(corr, m["product"], want, m["deadline"]))

    def _record(self, sl, seq, res):
        sl.dedup[seq] = res
        while len(sl.dedup) > DEDUP_WINDOW:
            sl.dedup.pop(min(sl.dedup))

    def _pick_stock(self):
        if not self._stock:
            return None
        self._rr = (self._rr + 1) % len(self._stock)
        return self._stock[self._rr]

    def _finish_check(self, corr, status, detail):
        slot_no, seq, product, qty, _, _ = self._checks.pop(corr)
        sl = self.state.slots[slot_no]
        waiters = sl.pending.pop(seq, None)
        if waiters is None:
            return                   # the slot was reset meanwhile
        if status == zcp.OK:
            sl.items[product] = sl.items.get(product, 0) + qty
        res = (status, detail, sl.contents())
        self._record(sl, seq, res)
        for ep, m in waiters:
            if ep in self._socks:
                self._answer(ep, m, *res)

    def _on_stock(self, frames):
        try:
            m = zcp.decode(frames[-1])
        except zcp.Malformed:
            self.dropped += 1
            return
        if m["type"] != zcp.CHECK_REPLY or m["corr"] not in self._checks:
            self.dropped += 1
            return
        detail = "" if m["status"] == zcp.OK else "stock has %d" % m["qty"]
        self._finish_check(m["corr"], m["status"], detail)

    def _expire_checks(self):
        t = time.monotonic()
        for corr, c in list(self._checks.items()):
            if c[4] <= t:
                self._finish_check(corr, zcp.STOCK_TIMEOUT, "stock %s did not answer" % c[5])

    def _reset(self, ep, m):
        if m["slot"] >= len(self.state.slots):
            self.dropped += 1
            return
        sl = self.state.slots[m["slot"]]
        if sl.owner is not None and m["generation"] < sl.owner[1]:
            return                   # older than the owner: ignored
        sl.items.clear()
        sl.owner = None
        sl.dedup.clear()
        sl.pending.clear()
        sl.reset_gen = max(sl.reset_gen, m["generation"])
        self._send(ep, zcp.encode_reset_done(self.name, m["slot"], m["generation"]))
