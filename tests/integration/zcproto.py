"""zcproto: an independent Python codec for ZCP/1, written from docs/protocol.md.

Design
------
This module is deliberately NOT a port of proto/msg.c: it is written from the
ABNF of docs/protocol.md section 2 so that the integration tests cross-check
the C codec.  If the two ever disagree, one of them (or the doc) is wrong.

A message is one ZeroMQ frame:

    "ZC" %x01 id field*

Every message id maps to an ordered list of (field name, field type) in
``MESSAGES`` below; ``encode`` and ``decode`` both walk that list, so they
cannot disagree with each other.  Field types are the ABNF primitives:

    u8 / u16 / u32 / u64   big-endian integers
    session                16 octets
    str                    len8 + octets (limit per field, no NUL inside)
    items / slots / props  count16 + entries (limit per field)

A decoded message is a ``Msg``: ``msg.id`` (an int, see the ``REQUEST`` ...
constants), ``msg.name`` and one attribute per field.  ``Msg.props`` stays a
list of (key, value) pairs (order and duplicates preserved); ``msg.prop(k)``
and ``msg.propdict()`` read it.

Strictness follows section 2: wrong signature or version, unknown id, a
truncated field, a string or list over its limit, a NUL in a string or
trailing bytes are all ``DecodeError``.  ``encode`` refuses values that do
not fit their wire type (``EncodeError``) unless ``strict=False`` is passed,
which the garbage tests use to build deliberately over-limit frames.

Semantic checks (product id syntax, qty ranges, non-zero session) are not
structural: they live in ``product_valid`` and friends, because a receiver
decodes such a frame and then answers BAD_REQUEST with the seq echoed.
"""

import os
import struct

SIGNATURE = b"ZC"
VERSION = 1

# --- message ids (section 2, "body") ---------------------------------------
REQUEST = 0x01
REPLY = 0x02
STATUS = 0x03
STATUS_REPLY = 0x04
ADMIN = 0x05
ADMIN_REPLY = 0x06
HELLO = 0x10
CART_REQUEST = 0x11
CART_REPLY = 0x12
RESET = 0x13
RESET_DONE = 0x14
HEARTBEAT = 0x15
CHECK = 0x20
CHECK_REPLY = 0x21

# --- ops ---------------------------------------------------------------------
OP_ADD = 1
OP_REMOVE = 2
OP_LIST = 3
OP_CLOSE = 4
OP_KEEPALIVE = 5
OP_NAMES = {OP_ADD: "add", OP_REMOVE: "remove", OP_LIST: "list", OP_CLOSE: "close",
            OP_KEEPALIVE: "keepalive"}

# --- status codes (section 5) -------------------------------------------------
STATUS_NAMES = [
    "OK", "BAD_REQUEST", "NOT_LEADER", "NO_FREE_CART", "OUT_OF_STOCK",
    "UNKNOWN_PRODUCT", "STOCK_TIMEOUT", "STOCK_UNAVAILABLE", "CART_UNAVAILABLE",
    "SESSION_EXPIRED", "EXPIRED", "NOT_IN_CART", "SESSION_CLOSED", "CART_LOST",
    "FENCED", "INTERNAL", "UNAVAILABLE", "STORAGE_FULL", "BUSY", "FORBIDDEN",
]
STATUS_CODES = {name: code for code, name in enumerate(STATUS_NAMES)}
# Module-level constants OK, BAD_REQUEST, ... = 0, 1, ...
globals().update(STATUS_CODES)


def status_name(code):
    """Name of a status code, or 'UNKNOWN(<n>)' outside the closed set."""
    return STATUS_NAMES[code] if 0 <= code < len(STATUS_NAMES) else "UNKNOWN(%d)" % code


# --- limits (section 2, "Limits") ---------------------------------------------
STR_LIMITS = {
    "product": 64, "cart": 64, "node": 32, "command": 32, "detail": 255,
    "key": 64, "value": 255,
}
LIST_LIMITS = {"items": 256, "slots": 1024, "props": 512}
SESSION_LEN = 16
ZERO_SESSION = bytes(SESSION_LEN)

# --- the message table: the field order IS the wire format --------------------
# Field name -> wire type.  Names are the ABNF rule names ('-' -> '_').
FIELD_TYPES = {
    "session": "session", "seq": "u64", "op": "u8", "deadline": "u64",
    "product": "str", "qty": "u32", "status": "u8", "cart": "str",
    "generation": "u64", "detail": "str", "corr": "u64", "node": "str",
    "slot": "u16", "command": "str", "items": "items", "slots": "slots",
    "props": "props", "replica": "u64", "term": "u64",
}

MESSAGES = {
    REQUEST: ("REQUEST", ["session", "seq", "op", "deadline", "product", "qty"]),
    REPLY: ("REPLY", ["session", "seq", "status", "cart", "generation", "detail", "items",
                     "replica", "term"]),
    STATUS: ("STATUS", ["corr"]),
    STATUS_REPLY: ("STATUS_REPLY", ["corr", "props"]),
    ADMIN: ("ADMIN", ["corr", "command", "props"]),
    ADMIN_REPLY: ("ADMIN_REPLY", ["corr", "status", "detail", "props"]),
    HELLO: ("HELLO", ["node", "slots"]),
    CART_REQUEST: ("CART_REQUEST", ["corr", "slot", "session", "generation", "seq", "op",
                                    "deadline", "product", "qty"]),
    CART_REPLY: ("CART_REPLY", ["corr", "slot", "session", "seq", "status", "detail", "items"]),
    RESET: ("RESET", ["slot", "generation"]),
    RESET_DONE: ("RESET_DONE", ["node", "slot", "generation"]),
    HEARTBEAT: ("HEARTBEAT", ["node", "replica", "term"]),
    CHECK: ("CHECK", ["corr", "product", "qty", "deadline"]),
    CHECK_REPLY: ("CHECK_REPLY", ["corr", "status", "qty"]),
}
NAMES = {name: mid for mid, (name, _) in MESSAGES.items()}

_INT_FORMATS = {"u8": ">B", "u16": ">H", "u32": ">I", "u64": ">Q"}
_INT_MAX = {"u8": 0xFF, "u16": 0xFFFF, "u32": 0xFFFFFFFF, "u64": 0xFFFFFFFFFFFFFFFF}


class DecodeError(ValueError):
    """The frame is malformed in the sense of docs/protocol.md section 2."""


class EncodeError(ValueError):
    """A field value does not fit its wire type or limit."""


class SlotInfo:
    """One `slotinfo` of a HELLO."""

    __slots__ = ("slot", "session", "generation", "reset_generation", "n_items")

    def __init__(self, slot=0, session=ZERO_SESSION, generation=0, reset_generation=0, n_items=0):
        self.slot = slot
        self.session = session
        self.generation = generation
        self.reset_generation = reset_generation
        self.n_items = n_items

    def __eq__(self, other):
        return isinstance(other, SlotInfo) and all(
            getattr(self, a) == getattr(other, a) for a in self.__slots__)

    def __repr__(self):
        return "SlotInfo(slot=%d, session=%s, generation=%d, reset_generation=%d, n_items=%d)" % (
            self.slot, self.session.hex(), self.generation, self.reset_generation, self.n_items)


def _default(ftype):
    return {"session": ZERO_SESSION, "str": "", "items": [], "slots": [], "props": []}.get(ftype, 0)


class Msg:
    """One ZCP/1 message: `id` plus the fields its table row declares."""

    def __init__(self, mid, **fields):
        if mid not in MESSAGES:
            raise EncodeError("unknown message id %r" % (mid,))
        self.id = mid
        names = MESSAGES[mid][1]
        for f in names:
            setattr(self, f, fields.pop(f, _default(FIELD_TYPES[f])))
        if fields:
            raise EncodeError("%s has no field(s) %s" % (self.name, ", ".join(sorted(fields))))

    @property
    def name(self):
        return MESSAGES[self.id][0]

    @property
    def fields(self):
        return MESSAGES[self.id][1]

    def prop(self, key, default=None):
        for k, v in getattr(self, "props", []):
            if k == key:
                return v
        return default

    def propdict(self):
        return dict(getattr(self, "props", []))

    @property
    def status_name(self):
        return status_name(self.status)

    def __eq__(self, other):
        return isinstance(other, Msg) and self.id == other.id and all(
            getattr(self, f) == getattr(other, f) for f in self.fields)

    def __repr__(self):
        parts = []
        for f in self.fields:
            v = getattr(self, f)
            if f == "session":
                v = v.hex()
            elif f == "status":
                v = status_name(v)
            parts.append("%s=%r" % (f, v))
        return "%s(%s)" % (self.name, ", ".join(parts))


# --- encoding -------------------------------------------------------------------

def _enc_int(ftype, v, strict):
    if strict and not (0 <= v <= _INT_MAX[ftype]):
        raise EncodeError("%d does not fit %s" % (v, ftype))
    return struct.pack(_INT_FORMATS[ftype], v & _INT_MAX[ftype])


def _enc_str(name, v, strict):
    b = v.encode() if isinstance(v, str) else bytes(v)
    if strict:
        if len(b) > STR_LIMITS[name]:
            raise EncodeError("%s is %d octets, limit %d" % (name, len(b), STR_LIMITS[name]))
        if b"\0" in b:
            raise EncodeError("%s contains NUL" % name)
    if len(b) > 255:
        raise EncodeError("%s is %d octets: a str cannot hold more than 255" % (name, len(b)))
    return bytes([len(b)]) + b


def _enc_list(name, v, strict):
    if strict and len(v) > LIST_LIMITS[name]:
        raise EncodeError("%s has %d entries, limit %d" % (name, len(v), LIST_LIMITS[name]))
    out = [struct.pack(">H", len(v))]
    for e in v:
        if name == "items":
            product, qty = e
            out.append(_enc_str("product", product, strict) + _enc_int("u32", qty, strict))
        elif name == "props":
            key, value = e
            out.append(_enc_str("key", key, strict) + _enc_str("value", value, strict))
        else:
            s = e
            out.append(_enc_int("u16", s.slot, strict) + _enc_session(s.session, strict)
                       + _enc_int("u64", s.generation, strict)
                       + _enc_int("u64", s.reset_generation, strict)
                       + _enc_int("u32", s.n_items, strict))
    return b"".join(out)


def _enc_session(v, strict):
    if len(v) != SESSION_LEN:
        raise EncodeError("session must be 16 octets, got %d" % len(v))
    return bytes(v)


def encode(msg, strict=True):
    """The frame (bytes) of a Msg."""
    out = [SIGNATURE, bytes([VERSION, msg.id])]
    for f in msg.fields:
        ftype = FIELD_TYPES[f]
        v = getattr(msg, f)
        if ftype in _INT_FORMATS:
            out.append(_enc_int(ftype, v, strict))
        elif ftype == "session":
            out.append(_enc_session(v, strict))
        elif ftype == "str":
            out.append(_enc_str(f, v, strict))
        else:
            out.append(_enc_list(f, v, strict))
    return b"".join(out)


# --- decoding -------------------------------------------------------------------

class _Reader:
    def __init__(self, data):
        self.data = bytes(data)
        self.pos = 0

    def take(self, n, what):
        if self.pos + n > len(self.data):
            raise DecodeError("truncated %s" % what)
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def int(self, ftype, what):
        size = struct.calcsize(_INT_FORMATS[ftype])
        return struct.unpack(_INT_FORMATS[ftype], self.take(size, what))[0]

    def str(self, name):
        n = self.int("u8", name + " length")
        b = self.take(n, name)
        if n > STR_LIMITS[name]:
            raise DecodeError("%s is %d octets, limit %d" % (name, n, STR_LIMITS[name]))
        if b"\0" in b:
            raise DecodeError("%s contains NUL" % name)
        try:
            return b.decode()
        except UnicodeDecodeError:
            # Still a well-formed str on the wire; keep the octets visible.
            return b.decode("latin-1")

    def list(self, name):
        n = self.int("u16", name + " count")
        if n > LIST_LIMITS[name]:
            raise DecodeError("%s has %d entries, limit %d" % (name, n, LIST_LIMITS[name]))
        out = []
        for _ in range(n):
            if name == "items":
                out.append((self.str("product"), self.int("u32", "item qty")))
            elif name == "props":
                out.append((self.str("key"), self.str("value")))
            else:
                out.append(SlotInfo(self.int("u16", "slot"), self.take(SESSION_LEN, "session"),
                                    self.int("u64", "generation"),
                                    self.int("u64", "reset-generation"),
                                    self.int("u32", "n-items")))
        return out


def decode(frame):
    """The Msg of one frame; DecodeError if it is malformed."""
    r = _Reader(frame)
    if len(r.data) < 4:
        raise DecodeError("frame shorter than its header")
    if r.take(2, "signature") != SIGNATURE:
        raise DecodeError("bad signature")
    version = r.int("u8", "version")
    if version != VERSION:
        raise DecodeError("unsupported version %d" % version)
    mid = r.int("u8", "message id")
    if mid not in MESSAGES:
        raise DecodeError("unknown message id 0x%02x" % mid)
    values = {}
    for f in MESSAGES[mid][1]:
        ftype = FIELD_TYPES[f]
        if ftype in _INT_FORMATS:
            values[f] = r.int(ftype, f)
        elif ftype == "session":
            values[f] = r.take(SESSION_LEN, "session")
        elif ftype == "str":
            values[f] = r.str(f)
        else:
            values[f] = r.list(f)
    if r.pos != len(r.data):
        raise DecodeError("%d trailing octets after the last field" % (len(r.data) - r.pos))
    return Msg(mid, **values)


# --- semantic helpers (not structural) -------------------------------------------

def decode_one(frames):
    """The message of a one-frame body (the frames after any routing id), or
    None when it is not exactly one well-formed frame."""
    if len(frames) != 1:
        return None
    try:
        return decode(frames[0])
    except DecodeError:
        return None


def product_valid(p):
    """1..64 octets in %x21-2B / %x2D-7E."""
    b = p.encode() if isinstance(p, str) else p
    return 1 <= len(b) <= 64 and all(0x21 <= c <= 0x7E and c != 0x2C for c in b)


def new_session():
    """128 random bits, never all zero."""
    while True:
        s = os.urandom(SESSION_LEN)
        if s != ZERO_SESSION:
            return s


def session_hex(s):
    return s.hex()


def session_parse(text):
    s = bytes.fromhex(text)
    if len(s) != SESSION_LEN or s == ZERO_SESSION:
        raise ValueError("not a session id: %r" % text)
    return s


# --- convenience constructors ------------------------------------------------------

def request(session, seq, op, product="", qty=0, deadline=0):
    return Msg(REQUEST, session=session, seq=seq, op=op, deadline=deadline,
               product=product, qty=qty)


def status(corr):
    return Msg(STATUS, corr=corr)
