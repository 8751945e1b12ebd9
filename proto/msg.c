/* msg: the table-driven codec.  See msg.h and docs/protocol.md.
 *
 * Each message id maps to a list of field codes (generated from
 * ZC_MSG_TABLE); encode and decode walk that list, so the two can never
 * disagree about field order, and adding a message is one table row. */
#include "proto/msg.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

enum field {
    F_END = 0,
    F_CORR, F_SESSION, F_SEQ, F_OP, F_STATUS, F_DEADLINE, F_PRODUCT, F_QTY, F_CART,
    F_GENERATION, F_DETAIL, F_NODE, F_SLOT, F_COMMAND, F_ITEMS, F_SLOTS, F_PROPS, F_REPLICA,
    F_TERM,
};

#define ZC_FIELDS_DEF(id, name, ...) static const unsigned char fields_##name[] = {__VA_ARGS__, F_END};
ZC_MSG_TABLE(ZC_FIELDS_DEF)
#undef ZC_FIELDS_DEF

static const struct {
    const char *name;
    const unsigned char *fields;
} msgs[256] = {
#define ZC_MSGS_ROW(id, name, ...) [id] = {#name, fields_##name},
    ZC_MSG_TABLE(ZC_MSGS_ROW)
#undef ZC_MSGS_ROW
};

const char *zc_msg_name(int id) { return id >= 0 && id < 256 ? msgs[id].name : NULL; }

const char *zc_op_name(int op)
{
    static const char *const names[] = {NULL, "add", "remove", "list", "close", "keepalive"};
    return op >= 1 && op <= ZC_OP_KEEPALIVE ? names[op] : NULL;
}

void zc_msg_init(zc_msg_t *m, uint8_t id)
{
    memset(m, 0, sizeof *m);
    m->id = id;
}

void zc_msg_reset(zc_msg_t *m)
{
    uint8_t id = m->id;
    free(m->items);
    free(m->slots);
    free(m->props);
    zc_msg_init(m, id);
}

int zc_msg_encode(const zc_msg_t *m, zc_wbuf_t *out)
{
    const unsigned char *f = msgs[m->id].fields;
    if (f == NULL)
        return -1;
    zc_wbuf_u8(out, ZC_SIG0);
    zc_wbuf_u8(out, ZC_SIG1);
    zc_wbuf_u8(out, ZC_VERSION);
    zc_wbuf_u8(out, m->id);
    for (; *f != F_END; f++) {
        switch (*f) {
        case F_CORR: zc_wbuf_u64(out, m->corr); break;
        case F_SESSION: zc_wbuf_bytes(out, m->session, ZC_SESSION_LEN); break;
        case F_SEQ: zc_wbuf_u64(out, m->seq); break;
        case F_OP: zc_wbuf_u8(out, m->op); break;
        case F_STATUS: zc_wbuf_u8(out, m->status); break;
        case F_DEADLINE: zc_wbuf_u64(out, m->deadline); break;
        case F_PRODUCT: zc_wbuf_str(out, m->product); break;
        case F_QTY: zc_wbuf_u32(out, m->qty); break;
        case F_CART: zc_wbuf_str(out, m->cart); break;
        case F_GENERATION: zc_wbuf_u64(out, m->generation); break;
        case F_REPLICA: zc_wbuf_u64(out, m->replica); break;
        case F_TERM: zc_wbuf_u64(out, m->term); break;
        case F_DETAIL: zc_wbuf_str(out, m->detail); break;
        case F_NODE: zc_wbuf_str(out, m->node); break;
        case F_SLOT: zc_wbuf_u16(out, m->slot); break;
        case F_COMMAND: zc_wbuf_str(out, m->command); break;
        case F_ITEMS:
            if (m->n_items > ZC_ITEMS_MAX)
                return -1;
            zc_wbuf_u16(out, m->n_items);
            for (unsigned i = 0; i < m->n_items; i++) {
                zc_wbuf_str(out, m->items[i].product);
                zc_wbuf_u32(out, m->items[i].qty);
            }
            break;
        case F_SLOTS:
            if (m->n_slots > ZC_SLOTS_MAX)
                return -1;
            zc_wbuf_u16(out, m->n_slots);
            for (unsigned i = 0; i < m->n_slots; i++) {
                const zc_slotinfo_t *s = &m->slots[i];
                zc_wbuf_u16(out, s->slot);
                zc_wbuf_bytes(out, s->session, ZC_SESSION_LEN);
                zc_wbuf_u64(out, s->generation);
                zc_wbuf_u64(out, s->reset_generation);
                zc_wbuf_u32(out, s->n_items);
            }
            break;
        case F_PROPS:
            if (m->n_props > ZC_PROPS_MAX)
                return -1;
            zc_wbuf_u16(out, m->n_props);
            for (unsigned i = 0; i < m->n_props; i++) {
                zc_wbuf_str(out, m->props[i].key);
                zc_wbuf_str(out, m->props[i].value);
            }
            break;
        }
    }
    return out->oom ? -1 : 0;
}

/* Read a str field into out (capacity cap), naming what is wrong in *why:
 * `over` when it is longer than cap - 1 octets, `nul` when it holds a NUL.
 * A frame that ends inside it is a truncated message. */
static void read_str(zc_rbuf_t *r, char *out, size_t cap, const char *over, const char *nul,
                     const char **why)
{
    out[0] = 0;
    if (r->err)
        return;
    size_t n = zc_rbuf_u8(r);
    if (r->err) {
        *why = "truncated message";
        return;
    }
    if (n + 1 > cap) {
        *why = over;
        r->err = true;
        return;
    }
    if (n > zc_rbuf_left(r)) {
        *why = "truncated message";
        r->err = true;
        return;
    }
    zc_rbuf_bytes(r, out, n);
    out[n] = 0;
    if (memchr(out, 0, n) != NULL) {
        *why = nul;
        r->err = true;
        out[0] = 0;
    }
}

/* Read a list header and allocate room for it; NULL (with *why) on error. */
static void *read_list(zc_rbuf_t *r, uint16_t *n, unsigned max, size_t elem, const char *over,
                       const char **why)
{
    *n = zc_rbuf_u16(r);
    if (r->err) {
        *why = "truncated message";
        return NULL;
    }
    if (*n > max) {
        *why = over;
        r->err = true;
        return NULL;
    }
    void *p = calloc(*n ? *n : 1, elem);
    if (p == NULL) {
        *why = "out of memory";
        r->err = true;
    }
    return p;
}

static void read_items(zc_rbuf_t *r, zc_msg_t *m, const char **why)
{
    m->items = read_list(r, &m->n_items, ZC_ITEMS_MAX, sizeof *m->items, "items over 256 entries",
                         why);
    for (unsigned i = 0; m->items && i < m->n_items && !r->err; i++) {
        read_str(r, m->items[i].product, sizeof m->items[i].product,
                 "item product longer than 64 octets", "NUL octet inside an item product", why);
        m->items[i].qty = zc_rbuf_u32(r);
    }
}

static void read_slots(zc_rbuf_t *r, zc_msg_t *m, const char **why)
{
    m->slots = read_list(r, &m->n_slots, ZC_SLOTS_MAX, sizeof *m->slots,
                         "slots over 16384 entries", why);
    m->cap_slots = m->n_slots;
    for (unsigned i = 0; m->slots && i < m->n_slots; i++) {
        zc_slotinfo_t *s = &m->slots[i];
        s->slot = zc_rbuf_u16(r);
        zc_rbuf_bytes(r, s->session, ZC_SESSION_LEN);
        s->generation = zc_rbuf_u64(r);
        s->reset_generation = zc_rbuf_u64(r);
        s->n_items = zc_rbuf_u32(r);
    }
}

static void read_props(zc_rbuf_t *r, zc_msg_t *m, const char **why)
{
    m->props = read_list(r, &m->n_props, ZC_PROPS_MAX, sizeof *m->props,
                         "props over 512 entries", why);
    for (unsigned i = 0; m->props && i < m->n_props && !r->err; i++) {
        read_str(r, m->props[i].key, sizeof m->props[i].key, "prop key longer than 64 octets",
                 "NUL octet inside a prop key", why);
        read_str(r, m->props[i].value, sizeof m->props[i].value,
                 "prop value longer than 255 octets", "NUL octet inside a prop value", why);
    }
}

/* One field of the table, in wire order. */
static void read_field(zc_rbuf_t *r, zc_msg_t *m, unsigned char field, const char **why)
{
    switch (field) {
    case F_CORR: m->corr = zc_rbuf_u64(r); break;
    case F_SESSION: zc_rbuf_bytes(r, m->session, ZC_SESSION_LEN); break;
    case F_SEQ: m->seq = zc_rbuf_u64(r); break;
    case F_OP: m->op = zc_rbuf_u8(r); break;
    case F_STATUS: m->status = zc_rbuf_u8(r); break;
    case F_DEADLINE: m->deadline = zc_rbuf_u64(r); break;
    case F_PRODUCT:
        read_str(r, m->product, sizeof m->product, "product longer than 64 octets",
                 "NUL octet inside product", why);
        break;
    case F_QTY: m->qty = zc_rbuf_u32(r); break;
    case F_CART:
        read_str(r, m->cart, sizeof m->cart, "cart longer than 64 octets", "NUL octet inside cart",
                 why);
        break;
    case F_GENERATION: m->generation = zc_rbuf_u64(r); break;
    case F_REPLICA: m->replica = zc_rbuf_u64(r); break;
    case F_TERM: m->term = zc_rbuf_u64(r); break;
    case F_DETAIL:
        read_str(r, m->detail, sizeof m->detail, "detail longer than 255 octets",
                 "NUL octet inside detail", why);
        break;
    case F_NODE:
        read_str(r, m->node, sizeof m->node, "node longer than 32 octets", "NUL octet inside node",
                 why);
        break;
    case F_SLOT: m->slot = zc_rbuf_u16(r); break;
    case F_COMMAND:
        read_str(r, m->command, sizeof m->command, "command longer than 32 octets",
                 "NUL octet inside command", why);
        break;
    case F_ITEMS: read_items(r, m, why); break;
    case F_SLOTS: read_slots(r, m, why); break;
    case F_PROPS: read_props(r, m, why); break;
    }
}

/* Signature, version and id: the id, or 0 and why. */
static uint8_t read_header(zc_rbuf_t *r, const char **why)
{
    uint8_t s0 = zc_rbuf_u8(r), s1 = zc_rbuf_u8(r), ver = zc_rbuf_u8(r), id = zc_rbuf_u8(r);
    if (r->err)
        *why = "message shorter than its header";
    else if (s0 != ZC_SIG0 || s1 != ZC_SIG1)
        *why = "bad protocol signature (want \"ZC\")";
    else if (ver != ZC_VERSION)
        *why = "unsupported protocol version";
    else if (msgs[id].fields == NULL)
        *why = "unknown message id";
    else
        return id;
    return 0;
}

int zc_msg_decode(zc_msg_t *m, const void *data, size_t len, const char **why)
{
    zc_rbuf_t r;
    zc_rbuf_init(&r, data, len);
    zc_msg_reset(m);
    m->id = 0;
    *why = NULL;
    uint8_t id = read_header(&r, why);
    if (id == 0)
        return -1;
    m->id = id;
    for (const unsigned char *f = msgs[id].fields; *f != F_END && !r.err; f++)
        read_field(&r, m, *f, why);
    if (r.err || !zc_rbuf_done(&r)) {
        if (*why == NULL)
            *why = r.err ? "truncated message" : "trailing bytes after the last field";
        zc_msg_reset(m);
        m->id = 0;
        return -1;
    }
    return 0;
}

int zc_msg_add_item(zc_msg_t *m, const char *product, uint32_t qty)
{
    if (m->n_items >= ZC_ITEMS_MAX || strlen(product) > ZC_PRODUCT_MAX)
        return -1;
    zc_item_t *p = realloc(m->items, (m->n_items + 1u) * sizeof *p);
    if (p == NULL)
        return -1;
    m->items = p;
    snprintf(p[m->n_items].product, sizeof p->product, "%s", product);
    p[m->n_items].qty = qty;
    m->n_items++;
    return 0;
}

int zc_msg_add_slot(zc_msg_t *m, const zc_slotinfo_t *s)
{
    if (m->n_slots >= ZC_SLOTS_MAX)
        return -1;
    if (m->n_slots >= m->cap_slots) { /* full: double (a HELLO lists thousands) */
        unsigned cap = m->n_slots ? 2u * m->n_slots : 16u;
        cap = cap > ZC_SLOTS_MAX ? ZC_SLOTS_MAX : cap;
        zc_slotinfo_t *p = realloc(m->slots, cap * sizeof *p);
        if (p == NULL)
            return -1;
        m->slots = p;
        m->cap_slots = (uint16_t)cap;
    }
    m->slots[m->n_slots++] = *s;
    return 0;
}

int zc_msg_add_prop(zc_msg_t *m, const char *key, const char *fmt, ...)
{
    if (m->n_props >= ZC_PROPS_MAX || strlen(key) > ZC_KEY_MAX)
        return -1;
    zc_prop_t *p = realloc(m->props, (m->n_props + 1u) * sizeof *p);
    if (p == NULL)
        return -1;
    m->props = p;
    zc_prop_t *e = &p[m->n_props++];
    snprintf(e->key, sizeof e->key, "%s", key);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->value, sizeof e->value, fmt, ap);
    va_end(ap);
    return 0;
}

const char *zc_msg_prop(const zc_msg_t *m, const char *key)
{
    for (unsigned i = 0; i < m->n_props; i++)
        if (strcmp(m->props[i].key, key) == 0)
            return m->props[i].value;
    return NULL;
}

bool zc_msg_peek_request(const void *data, size_t len, uint8_t session[ZC_SESSION_LEN],
                         uint64_t *seq)
{
    zc_rbuf_t r;
    zc_rbuf_init(&r, data, len);
    if (zc_rbuf_u8(&r) != ZC_SIG0 || zc_rbuf_u8(&r) != ZC_SIG1 || zc_rbuf_u8(&r) != ZC_VERSION ||
        zc_rbuf_u8(&r) != ZC_MSG_REQUEST || zc_rbuf_left(&r) < ZC_SESSION_LEN + 8)
        return false;
    zc_rbuf_bytes(&r, session, ZC_SESSION_LEN);
    *seq = zc_rbuf_u64(&r);
    return !r.err;
}

bool zc_node_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > ZC_NODE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

bool zc_backup_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 64 || name[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

bool zc_product_valid(const char *p)
{
    size_t n = strlen(p);
    if (n == 0 || n > ZC_PRODUCT_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x21 || c > 0x7e || c == ',')
            return false;
    }
    return true;
}

bool zc_session_is_zero(const uint8_t s[ZC_SESSION_LEN])
{
    for (int i = 0; i < ZC_SESSION_LEN; i++)
        if (s[i])
            return false;
    return true;
}

void zc_session_hex(const uint8_t s[ZC_SESSION_LEN], char out[2 * ZC_SESSION_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < ZC_SESSION_LEN; i++) {
        out[2 * i] = hex[s[i] >> 4];
        out[2 * i + 1] = hex[s[i] & 15];
    }
    out[2 * ZC_SESSION_LEN] = 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool zc_session_parse(const char *hex, uint8_t out[ZC_SESSION_LEN])
{
    if (hex == NULL || strlen(hex) != 2 * ZC_SESSION_LEN)
        return false;
    for (int i = 0; i < ZC_SESSION_LEN; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return !zc_session_is_zero(out);
}

void zc_session_random(uint8_t out[ZC_SESSION_LEN])
{
    do {
        size_t got = 0;
        while (got < ZC_SESSION_LEN) {
            ssize_t n = getrandom(out + got, ZC_SESSION_LEN - got, 0);
            if (n > 0)
                got += (size_t)n;
        }
    } while (zc_session_is_zero(out));
}
