"""ZCP/1 codec, written from docs/protocol.md section 2 alone.

Every ZCP message is one ZeroMQ frame: "ZC", version 0x01, a type octet and
the type's fields.  Integers are big-endian; `str` is a length octet and
that many octets; `items`, `slots`, `props` are a u16 count and entries.

`encode_*` build frames; they do NOT validate, so tests can build frames the
document calls invalid.  `decode` parses any frame into a dict and raises
`Malformed` on anything section 2 calls malformed (short, trailing octets,
limits).
"""

import struct

SIGNATURE = b"ZC"
VERSION = 1

# message types (section 2)
REQUEST, REPLY, STATUS, STATUS_REPLY, ADMIN, ADMIN_REPLY = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
HELLO, CART_REQUEST, CART_REPLY, RESET, RESET_DONE, HEARTBEAT = 0x10, 0x11, 0x12, 0x13, 0x14, 0x15
CHECK, CHECK_REPLY = 0x20, 0x21

# ops (section 2)
ADD, REMOVE, LIST, CLOSE, KEEPALIVE = 1, 2, 3, 4, 5
OP_NAMES = {ADD: "add", REMOVE: "remove", LIST: "list", CLOSE: "close", KEEPALIVE: "keepalive"}

# status codes (section 5)
STATUS_NAMES = [
    "OK", "BAD_REQUEST", "NOT_LEADER", "NO_FREE_CART", "OUT_OF_STOCK",
    "UNKNOWN_PRODUCT", "STOCK_TIMEOUT", "STOCK_UNAVAILABLE", "CART_UNAVAILABLE",
    "SESSION_EXPIRED", "EXPIRED", "NOT_IN_CART", "SESSION_CLOSED", "CART_LOST",
    "FENCED", "INTERNAL", "UNAVAILABLE", "STORAGE_FULL", "BUSY", "FORBIDDEN",
]
for _i, _n in enumerate(STATUS_NAMES):
    globals()[_n] = _i

ZERO_SESSION = bytes(16)

# limits (section 2)
MAX_PRODUCT, MAX_CART, MAX_NODE, MAX_COMMAND, MAX_KEY, MAX_VALUE = 64, 64, 32, 32, 64, 255
MAX_ITEMS, MAX_SLOTS, MAX_PROPS = 256, 16384, 512


def status_name(code):
    return STATUS_NAMES[code] if 0 <= code < len(STATUS_NAMES) else "status-%d" % code


class Malformed(Exception):
    pass


# ---------------------------------------------------------------- writing
def u8(v):
    return struct.pack(">B", v)


def u16(v):
    return struct.pack(">H", v)


def u32(v):
    return struct.pack(">I", v)


def u64(v):
    return struct.pack(">Q", v)


def s(v):
    """str: len8 then the octets (no validation: tests send bad ones)."""
    if isinstance(v, str):
        v = v.encode()
    return u8(len(v)) + v


def items_enc(items):
    out = u16(len(items))
    for product, qty in items:
        out += s(product) + u32(qty)
    return out


def props_enc(props):
    props = list(props.items()) if isinstance(props, dict) else list(props)
    out = u16(len(props))
    for k, v in props:
        out += s(k) + s(v)
    return out


def head(mtype):
    return SIGNATURE + u8(VERSION) + u8(mtype)


def encode_request(session, seq, op, deadline=0, product=b"", qty=0):
    return head(REQUEST) + session + u64(seq) + u8(op) + u64(deadline) + s(product) + u32(qty)


def encode_reply(session, seq, status, cart=b"", generation=0, detail=b"", items=(), replica=0,
                 term=0):
    return (head(REPLY) + session + u64(seq) + u8(status) + s(cart) + u64(generation)
            + s(detail) + items_enc(items) + u64(replica) + u64(term))


def encode_status(corr):
    return head(STATUS) + u64(corr)


def encode_admin(corr, command, props=()):
    return head(ADMIN) + u64(corr) + s(command) + props_enc(props)


def encode_hello(node, slots):
    """slots: list of (slot, session, generation, reset_generation, n_items)."""
    out = head(HELLO) + s(node) + u16(len(slots))
    for slot, session, gen, rgen, n in slots:
        out += u16(slot) + session + u64(gen) + u64(rgen) + u32(n)
    return out


def encode_cart_request(corr, slot, session, generation, seq, op, deadline=0, product=b"", qty=0):
    return (head(CART_REQUEST) + u64(corr) + u16(slot) + session + u64(generation) + u64(seq)
            + u8(op) + u64(deadline) + s(product) + u32(qty))


def encode_cart_reply(corr, slot, session, seq, status, detail=b"", items=()):
    return (head(CART_REPLY) + u64(corr) + u16(slot) + session + u64(seq) + u8(status)
            + s(detail) + items_enc(items))


def encode_reset(slot, generation):
    return head(RESET) + u16(slot) + u64(generation)


def encode_reset_done(node, slot, generation):
    return head(RESET_DONE) + s(node) + u16(slot) + u64(generation)


def encode_heartbeat(node, replica=0, term=0):
    return head(HEARTBEAT) + s(node) + u64(replica) + u64(term)


def encode_check(corr, product, qty, deadline):
    return head(CHECK) + u64(corr) + s(product) + u32(qty) + u64(deadline)


def encode_check_reply(corr, status, qty):
    return head(CHECK_REPLY) + u64(corr) + u8(status) + u32(qty)


# ---------------------------------------------------------------- reading
class Reader:
    def __init__(self, data):
        self.d = bytes(data)
        self.i = 0

    def take(self, n):
        if self.i + n > len(self.d):
            raise Malformed("truncated")
        out = self.d[self.i:self.i + n]
        self.i += n
        return out

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack(">H", self.take(2))[0]

    def u32(self):
        return struct.unpack(">I", self.take(4))[0]

    def u64(self):
        return struct.unpack(">Q", self.take(8))[0]

    def str(self, limit):
        n = self.u8()
        v = self.take(n)
        if n > limit:
            raise Malformed("str over its limit %d" % limit)
        if b"\0" in v:
            raise Malformed("NUL inside a str")
        return v

    def items(self):
        n = self.u16()
        if n > MAX_ITEMS:
            raise Malformed("too many items")
        return [(self.str(MAX_PRODUCT).decode(), self.u32()) for _ in range(n)]

    def props(self):
        n = self.u16()
        if n > MAX_PROPS:
            raise Malformed("too many props")
        out = {}
        for _ in range(n):
            k = self.str(MAX_KEY).decode()
            if not k:
                raise Malformed("empty key")
            out[k] = self.str(MAX_VALUE).decode()
        return out

    def end(self):
        if self.i != len(self.d):
            raise Malformed("trailing octets")


def decode(frame):
    r = Reader(frame)
    if r.take(2) != SIGNATURE:
        raise Malformed("bad signature")
    if r.u8() != VERSION:
        raise Malformed("bad version")
    t = r.u8()
    m = {"type": t}
    if t == REQUEST:
        m.update(session=r.take(16), seq=r.u64(), op=r.u8(), deadline=r.u64(),
                 product=r.str(MAX_PRODUCT).decode(), qty=r.u32())
    elif t == REPLY:
        m.update(session=r.take(16), seq=r.u64(), status=r.u8(), cart=r.str(MAX_CART).decode(),
                 generation=r.u64(), detail=r.str(MAX_VALUE).decode(errors="replace"),
                 items=r.items(), replica=r.u64(), term=r.u64())
    elif t == STATUS:
        m.update(corr=r.u64())
    elif t == STATUS_REPLY:
        m.update(corr=r.u64(), props=r.props())
    elif t == ADMIN:
        m.update(corr=r.u64(), command=r.str(MAX_COMMAND).decode(), props=r.props())
    elif t == ADMIN_REPLY:
        m.update(corr=r.u64(), status=r.u8(), detail=r.str(MAX_VALUE).decode(errors="replace"),
                 props=r.props())
    elif t == HELLO:
        node = r.str(MAX_NODE)
        n = r.u16()
        if n > MAX_SLOTS:
            raise Malformed("too many slots")
        m.update(node=node.decode(), slots=[(r.u16(), r.take(16), r.u64(), r.u64(), r.u32())
                                            for _ in range(n)])
    elif t == CART_REQUEST:
        m.update(corr=r.u64(), slot=r.u16(), session=r.take(16), generation=r.u64(),
                 seq=r.u64(), op=r.u8(), deadline=r.u64(), product=r.str(MAX_PRODUCT).decode(),
                 qty=r.u32())
    elif t == CART_REPLY:
        m.update(corr=r.u64(), slot=r.u16(), session=r.take(16), seq=r.u64(), status=r.u8(),
                 detail=r.str(MAX_VALUE).decode(errors="replace"), items=r.items())
    elif t == RESET:
        m.update(slot=r.u16(), generation=r.u64())
    elif t == RESET_DONE:
        m.update(node=r.str(MAX_NODE).decode(), slot=r.u16(), generation=r.u64())
    elif t == HEARTBEAT:
        m.update(node=r.str(MAX_NODE).decode(), replica=r.u64(), term=r.u64())
    elif t == CHECK:
        m.update(corr=r.u64(), product=r.str(MAX_PRODUCT).decode(), qty=r.u32(), deadline=r.u64())
    elif t == CHECK_REPLY:
        m.update(corr=r.u64(), status=r.u8(), qty=r.u32())
    else:
        raise Malformed("unknown type %d" % t)
    r.end()
    return m


def valid_product(p):
    """Product id (section 2): 1..64 octets of %x21-2B / %x2D-7E."""
    if isinstance(p, str):
        p = p.encode()
    return 1 <= len(p) <= MAX_PRODUCT and all(0x21 <= c <= 0x7E and c != 0x2C for c in p)
