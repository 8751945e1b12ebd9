/* command: codec for the replicated commands (schema in command.h).
 *
 * Each command's fields are listed once, in wire order, by one function
 * that both writes and reads them (a field_io_t goes one way or the other),
 * and one table maps the type to its name and that function -- so the
 * encoder and the decoder cannot disagree, as proto/msg.h's table does for
 * the wire protocol.  A field function also checks its counts, in both
 * directions: what the encoder refuses the decoder refuses. */
#include "replication/command.h"

#include <stdlib.h>
#include <string.h>

/* One direction of the codec: exactly one of w and r is set. */
typedef struct {
    zc_wbuf_t *w; /* encoding into w */
    zc_rbuf_t *r; /* decoding from r */
} field_io_t;

static void f_u8(field_io_t *io, uint8_t *v)
{
    if (io->w)
        zc_wbuf_u8(io->w, *v);
    else
        *v = zc_rbuf_u8(io->r);
}

static void f_u16(field_io_t *io, uint16_t *v)
{
    if (io->w)
        zc_wbuf_u16(io->w, *v);
    else
        *v = zc_rbuf_u16(io->r);
}

static void f_u32(field_io_t *io, uint32_t *v)
{
    if (io->w)
        zc_wbuf_u32(io->w, *v);
    else
        *v = zc_rbuf_u32(io->r);
}

static void f_u64(field_io_t *io, uint64_t *v)
{
    if (io->w)
        zc_wbuf_u64(io->w, *v);
    else
        *v = zc_rbuf_u64(io->r);
}

/* A flag on the wire as one octet, 0 or 1; false if it read anything else. */
static bool f_bool(field_io_t *io, bool *v)
{
    uint8_t b = *v ? 1 : 0;
    f_u8(io, &b);
    *v = b == 1;
    return b <= 1;
}

static void f_str(field_io_t *io, char *s, size_t cap)
{
    if (io->w)
        zc_wbuf_str(io->w, s);
    else
        zc_rbuf_str(io->r, s, cap);
}

static void f_bytes(field_io_t *io, uint8_t *p, size_t n)
{
    if (io->w)
        zc_wbuf_bytes(io->w, p, n);
    else
        zc_rbuf_bytes(io->r, p, n);
}

/* A count read so far is usable (decoding stops at the first short read). */
static bool read_ok(const field_io_t *io) { return io->w || !io->r->err; }

/* The fields of each command; 0, or -1 when a count or value is out of
 * bounds (or a REGISTER's slots cannot be allocated). */

static int fields_register(field_io_t *io, zc_cmd_t *c)
{
    f_str(io, c->reg.node, sizeof c->reg.node);
    f_u16(io, &c->reg.n);
    if (!read_ok(io) || c->reg.n > ZC_REGISTER_MAX)
        return -1;
    if (io->r && (c->reg.slots = calloc(c->reg.n ? c->reg.n : 1, sizeof *c->reg.slots)) == NULL)
        return -1;
    for (unsigned i = 0; i < c->reg.n; i++) {
        f_u16(io, &c->reg.slots[i].slot);
        f_u64(io, &c->reg.slots[i].generation);
        uint8_t dirty = c->reg.slots[i].dirty ? 1 : 0;
        f_u8(io, &dirty);
        c->reg.slots[i].dirty = dirty != 0;
    }
    return 0;
}

static int fields_assign(field_io_t *io, zc_cmd_t *c)
{
    f_bytes(io, c->assign.session, ZC_SESSION_LEN);
    f_u32(io, &c->assign.max_records);
    f_u8(io, &c->assign.placement);
    return c->assign.placement > ZC_PLACE_LEAST_LOADED ? -1 : 0;
}

static int fields_release(field_io_t *io, zc_cmd_t *c)
{
    f_bytes(io, c->release.session, ZC_SESSION_LEN);
    f_u8(io, &c->release.why);
    return 0;
}

static int fields_return(field_io_t *io, zc_cmd_t *c)
{
    f_str(io, c->ret.cart, sizeof c->ret.cart);
    f_u64(io, &c->ret.generation);
    return 0;
}

static int fields_member_set(field_io_t *io, zc_cmd_t *c)
{
    f_u64(io, &c->member.id);
    f_str(io, c->member.raft_address, sizeof c->member.raft_address);
    f_str(io, c->member.client_endpoint, sizeof c->member.client_endpoint);
    f_str(io, c->member.cart_endpoint, sizeof c->member.cart_endpoint);
    return 0;
}

static int fields_member_del(field_io_t *io, zc_cmd_t *c)
{
    f_u64(io, &c->member.id);
    return 0;
}

static int fields_breaker(field_io_t *io, zc_cmd_t *c)
{
    f_str(io, c->brk.cart, sizeof c->brk.cart);
    f_u8(io, &c->brk.ev);
    f_u8(io, &c->brk.why);
    f_u16(io, &c->brk.max_probes);
    return 0;
}

static int fields_reassign(field_io_t *io, zc_cmd_t *c)
{
    f_str(io, c->reassign.cart, sizeof c->reassign.cart);
    f_u64(io, &c->reassign.generation);
    return 0;
}

static int fields_lost_told(field_io_t *io, zc_cmd_t *c)
{
    f_bytes(io, c->told.session, ZC_SESSION_LEN);
    return 0;
}

static int fields_purge(field_io_t *io, zc_cmd_t *c)
{
    f_u64(io, &c->purge.retention_ms);
    f_u16(io, &c->purge.n);
    if (!read_ok(io) || c->purge.n > ZC_PURGE_MAX)
        return -1;
    for (unsigned i = 0; i < c->purge.n; i++)
        f_bytes(io, c->purge.sessions[i], ZC_SESSION_LEN);
    return 0;
}

static int fields_unregister(field_io_t *io, zc_cmd_t *c)
{
    f_str(io, c->unreg.node, sizeof c->unreg.node);
    bool all_ok = f_bool(io, &c->unreg.all);
    f_u16(io, &c->unreg.n);
    if (!read_ok(io) || !all_ok || c->unreg.n > ZC_REGISTER_MAX ||
        (c->unreg.all && c->unreg.n != 0))
        return -1;
    for (unsigned i = 0; i < c->unreg.n; i++)
        f_u16(io, &c->unreg.slots[i]);
    return 0;
}

/* Every command: its type, its name, its fields. */
static const struct {
    uint8_t type;                               /* zc_cmd_type_t */
    const char *name;                           /* for logs */
    int (*fields)(field_io_t *io, zc_cmd_t *c); /* its fields, both ways */
} commands[] = {
    {ZC_CMD_REGISTER, "REGISTER", fields_register},
    {ZC_CMD_ASSIGN, "ASSIGN", fields_assign},
    {ZC_CMD_RELEASE, "RELEASE", fields_release},
    {ZC_CMD_RETURN, "RETURN", fields_return},
    {ZC_CMD_MEMBER_SET, "MEMBER_SET", fields_member_set},
    {ZC_CMD_MEMBER_DEL, "MEMBER_DEL", fields_member_del},
    {ZC_CMD_BREAKER, "BREAKER", fields_breaker},
    {ZC_CMD_REASSIGN, "REASSIGN", fields_reassign},
    {ZC_CMD_LOST_TOLD, "LOST_TOLD", fields_lost_told},
    {ZC_CMD_PURGE, "PURGE", fields_purge},
    {ZC_CMD_UNREGISTER, "UNREGISTER", fields_unregister},
};

static int find(int type)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (commands[i].type == type)
            return (int)i;
    return -1;
}

const char *zc_cmd_name(int type)
{
    int i = find(type);
    return i < 0 ? "UNKNOWN" : commands[i].name;
}

int zc_cmd_encode(const zc_cmd_t *c, zc_wbuf_t *w)
{
    int i = find(c->type);
    if (i < 0)
        return -1;
    zc_cmd_t copy = *c; /* the field functions take a mutable command; encoding only reads */
    field_io_t io = {.w = w};
    zc_wbuf_u8(w, c->type);
    zc_wbuf_u8(w, ZC_CMD_VERSION);
    zc_wbuf_u64(w, c->time_ms);
    if (commands[i].fields(&io, &copy) != 0)
        return -1;
    /* raft's libuv log stores entry data in 8-byte units and (release
     * builds) silently corrupts the batch checksum of any other length. */
    while (w->len % ZC_CMD_ALIGN != 0)
        zc_wbuf_u8(w, 0);
    return w->oom ? -1 : 0;
}

int zc_cmd_decode(zc_cmd_t *c, const void *data, size_t len)
{
    zc_rbuf_t r;
    zc_rbuf_init(&r, data, len);
    memset(c, 0, sizeof *c);
    c->type = zc_rbuf_u8(&r);
    if (zc_rbuf_u8(&r) != ZC_CMD_VERSION)
        return -1;
    c->time_ms = zc_rbuf_u64(&r);
    int i = find(c->type);
    field_io_t io = {.r = &r};
    if (i < 0)
        return -1;
    if (commands[i].fields(&io, c) != 0) {
        zc_cmd_clear(c);
        return -1;
    }
    /* Only the zero padding of zc_cmd_encode may follow the fields. */
    size_t pad = zc_rbuf_left(&r);
    bool pad_ok = !r.err && pad < ZC_CMD_ALIGN && r.len % ZC_CMD_ALIGN == 0;
    while (pad_ok && zc_rbuf_left(&r) > 0)
        pad_ok = zc_rbuf_u8(&r) == 0;
    if (!pad_ok || !zc_rbuf_done(&r)) {
        zc_cmd_clear(c);
        return -1;
    }
    return 0;
}

void zc_cmd_clear(zc_cmd_t *c)
{
    if (c->type == ZC_CMD_REGISTER) {
        free(c->reg.slots);
        c->reg.slots = NULL;
        c->reg.n = 0;
    }
}
