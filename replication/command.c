/* command: codec for the replicated commands (schema in command.h). */
#include "replication/command.h"

#include <stdlib.h>
#include <string.h>

const char *zc_cmd_name(int type)
{
    switch (type) {
    case ZC_CMD_REGISTER: return "REGISTER";
    case ZC_CMD_ASSIGN: return "ASSIGN";
    case ZC_CMD_RELEASE: return "RELEASE";
    case ZC_CMD_RETURN: return "RETURN";
    case ZC_CMD_MEMBER_SET: return "MEMBER_SET";
    case ZC_CMD_MEMBER_DEL: return "MEMBER_DEL";
    case ZC_CMD_BREAKER: return "BREAKER";
    case ZC_CMD_REASSIGN: return "REASSIGN";
    case ZC_CMD_LOST_TOLD: return "LOST_TOLD";
    case ZC_CMD_PURGE: return "PURGE";
    case ZC_CMD_UNREGISTER: return "UNREGISTER";
    default: return "UNKNOWN";
    }
}

int zc_cmd_encode(const zc_cmd_t *c, zc_wbuf_t *w)
{
    zc_wbuf_u8(w, c->type);
    zc_wbuf_u8(w, ZC_CMD_VERSION);
    zc_wbuf_u64(w, c->time_ms);
    switch (c->type) {
    case ZC_CMD_REGISTER:
        if (c->reg.n > ZC_REGISTER_MAX)
            return -1;
        zc_wbuf_str(w, c->reg.node);
        zc_wbuf_u16(w, c->reg.n);
        for (unsigned i = 0; i < c->reg.n; i++) {
            zc_wbuf_u16(w, c->reg.slots[i].slot);
            zc_wbuf_u64(w, c->reg.slots[i].generation);
            zc_wbuf_u8(w, c->reg.slots[i].dirty ? 1 : 0);
        }
        break;
    case ZC_CMD_ASSIGN:
        zc_wbuf_bytes(w, c->assign.session, ZC_SESSION_LEN);
        zc_wbuf_u32(w, c->assign.max_records);
        zc_wbuf_u8(w, c->assign.placement);
        break;
    case ZC_CMD_RELEASE:
        zc_wbuf_bytes(w, c->release.session, ZC_SESSION_LEN);
        zc_wbuf_u8(w, c->release.why);
        break;
    case ZC_CMD_RETURN:
        zc_wbuf_str(w, c->ret.cart);
        zc_wbuf_u64(w, c->ret.generation);
        break;
    case ZC_CMD_MEMBER_SET:
        zc_wbuf_u64(w, c->member.id);
        zc_wbuf_str(w, c->member.raft_address);
        zc_wbuf_str(w, c->member.client_endpoint);
        zc_wbuf_str(w, c->member.cart_endpoint);
        break;
    case ZC_CMD_MEMBER_DEL:
        zc_wbuf_u64(w, c->member.id);
        break;
    case ZC_CMD_BREAKER:
        zc_wbuf_str(w, c->brk.cart);
        zc_wbuf_u8(w, c->brk.ev);
        zc_wbuf_u8(w, c->brk.why);
        zc_wbuf_u16(w, c->brk.max_probes);
        break;
    case ZC_CMD_REASSIGN:
        zc_wbuf_str(w, c->reassign.cart);
        zc_wbuf_u64(w, c->reassign.generation);
        break;
    case ZC_CMD_LOST_TOLD:
        zc_wbuf_bytes(w, c->told.session, ZC_SESSION_LEN);
        break;
    case ZC_CMD_PURGE:
        if (c->purge.n > ZC_PURGE_MAX)
            return -1;
        zc_wbuf_u64(w, c->purge.retention_ms);
        zc_wbuf_u16(w, c->purge.n);
        for (unsigned i = 0; i < c->purge.n; i++)
            zc_wbuf_bytes(w, c->purge.sessions[i], ZC_SESSION_LEN);
        break;
    case ZC_CMD_UNREGISTER:
        if (c->unreg.n > ZC_REGISTER_MAX || (c->unreg.all && c->unreg.n != 0))
            return -1;
        zc_wbuf_str(w, c->unreg.node);
        zc_wbuf_u8(w, c->unreg.all ? 1 : 0);
        zc_wbuf_u16(w, c->unreg.n);
        for (unsigned i = 0; i < c->unreg.n; i++)
            zc_wbuf_u16(w, c->unreg.slots[i]);
        break;
    default:
        return -1;
    }
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
    switch (c->type) {
    case ZC_CMD_REGISTER:
        zc_rbuf_str(&r, c->reg.node, sizeof c->reg.node);
        c->reg.n = zc_rbuf_u16(&r);
        if (r.err || c->reg.n > ZC_REGISTER_MAX)
            return -1;
        c->reg.slots = calloc(c->reg.n ? c->reg.n : 1, sizeof *c->reg.slots);
        if (c->reg.slots == NULL)
            return -1;
        for (unsigned i = 0; i < c->reg.n; i++) {
            c->reg.slots[i].slot = zc_rbuf_u16(&r);
            c->reg.slots[i].generation = zc_rbuf_u64(&r);
            c->reg.slots[i].dirty = zc_rbuf_u8(&r) != 0;
        }
        break;
    case ZC_CMD_ASSIGN:
        zc_rbuf_bytes(&r, c->assign.session, ZC_SESSION_LEN);
        c->assign.max_records = zc_rbuf_u32(&r);
        c->assign.placement = zc_rbuf_u8(&r);
        if (c->assign.placement > ZC_PLACE_LEAST_LOADED)
            return -1;
        break;
    case ZC_CMD_RELEASE:
        zc_rbuf_bytes(&r, c->release.session, ZC_SESSION_LEN);
        c->release.why = zc_rbuf_u8(&r);
        break;
    case ZC_CMD_RETURN:
        zc_rbuf_str(&r, c->ret.cart, sizeof c->ret.cart);
        c->ret.generation = zc_rbuf_u64(&r);
        break;
    case ZC_CMD_MEMBER_SET:
        c->member.id = zc_rbuf_u64(&r);
        zc_rbuf_str(&r, c->member.raft_address, sizeof c->member.raft_address);
        zc_rbuf_str(&r, c->member.client_endpoint, sizeof c->member.client_endpoint);
        zc_rbuf_str(&r, c->member.cart_endpoint, sizeof c->member.cart_endpoint);
        break;
    case ZC_CMD_MEMBER_DEL:
        c->member.id = zc_rbuf_u64(&r);
        break;
    case ZC_CMD_BREAKER:
        zc_rbuf_str(&r, c->brk.cart, sizeof c->brk.cart);
        c->brk.ev = zc_rbuf_u8(&r);
        c->brk.why = zc_rbuf_u8(&r);
        c->brk.max_probes = zc_rbuf_u16(&r);
        break;
    case ZC_CMD_REASSIGN:
        zc_rbuf_str(&r, c->reassign.cart, sizeof c->reassign.cart);
        c->reassign.generation = zc_rbuf_u64(&r);
        break;
    case ZC_CMD_LOST_TOLD:
        zc_rbuf_bytes(&r, c->told.session, ZC_SESSION_LEN);
        break;
    case ZC_CMD_PURGE:
        c->purge.retention_ms = zc_rbuf_u64(&r);
        c->purge.n = zc_rbuf_u16(&r);
        if (r.err || c->purge.n > ZC_PURGE_MAX)
            return -1;
        for (unsigned i = 0; i < c->purge.n; i++)
            zc_rbuf_bytes(&r, c->purge.sessions[i], ZC_SESSION_LEN);
        break;
    case ZC_CMD_UNREGISTER: {
        zc_rbuf_str(&r, c->unreg.node, sizeof c->unreg.node);
        uint8_t all = zc_rbuf_u8(&r);
        c->unreg.all = all == 1;
        c->unreg.n = zc_rbuf_u16(&r);
        if (r.err || all > 1 || c->unreg.n > ZC_REGISTER_MAX || (c->unreg.all && c->unreg.n != 0))
            return -1;
        for (unsigned i = 0; i < c->unreg.n; i++)
            c->unreg.slots[i] = zc_rbuf_u16(&r);
        break;
    }
    default:
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
