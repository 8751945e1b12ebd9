/* state: LMDB schema and queries; see state.h for the layout.
 *
 * Records are encoded with lib/buf (big-endian, length-prefixed strings),
 * led by a version octet so a later release can extend them; decoders
 * accept trailing fields they do not know only if the version says so. */
#include "replication/state.h"
#include "replication/state_txn.h"

#include "lib/lmdbx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/buf.h"
#include "lib/hash.h"
#include "lib/log.h"

#define CART_REC_V 2    /* 2 added the breaker; 1 still decodes (breaker CLOSED) */
#define SESSION_REC_V 2 /* 2 added `lost`; 1 still decodes (not lost) */

static void encode_cart(const zc_cart_rec_t *c, zc_wbuf_t *w)
{
    zc_wbuf_u8(w, CART_REC_V);
    zc_wbuf_str(w, c->node);
    zc_wbuf_u16(w, c->slot);
    zc_wbuf_u8(w, c->state);
    zc_wbuf_u64(w, c->generation);
    zc_wbuf_bytes(w, c->session, ZC_SESSION_LEN);
    zc_wbuf_u64(w, c->free_pos);
    zc_wbuf_u64(w, c->since_ms);
    zc_wbuf_u8(w, c->breaker.state);
    zc_wbuf_u8(w, c->breaker.mode);
    zc_wbuf_u8(w, c->breaker.why);
    zc_wbuf_u16(w, c->breaker.trips);
    zc_wbuf_u16(w, c->breaker.probes);
    zc_wbuf_u64(w, c->breaker.since_ms);
}

static int decode_cart(const MDB_val *k, const MDB_val *v, zc_cart_rec_t *c)
{
    memset(c, 0, sizeof *c);
    if (k->mv_size == 0 || k->mv_size > ZC_CART_MAX)
        return -1;
    memcpy(c->id, k->mv_data, k->mv_size);
    zc_rbuf_t r;
    zc_rbuf_init(&r, v->mv_data, v->mv_size);
    uint8_t version = zc_rbuf_u8(&r);
    if (version != 1 && version != CART_REC_V)
        return -1;
    zc_rbuf_str(&r, c->node, sizeof c->node);
    c->slot = zc_rbuf_u16(&r);
    c->state = zc_rbuf_u8(&r);
    c->generation = zc_rbuf_u64(&r);
    zc_rbuf_bytes(&r, c->session, ZC_SESSION_LEN);
    c->free_pos = zc_rbuf_u64(&r);
    c->since_ms = zc_rbuf_u64(&r);
    zc_breaker_init(&c->breaker);
    if (version >= 2) {
        c->breaker.state = zc_rbuf_u8(&r);
        c->breaker.mode = zc_rbuf_u8(&r);
        c->breaker.why = zc_rbuf_u8(&r);
        c->breaker.trips = zc_rbuf_u16(&r);
        c->breaker.probes = zc_rbuf_u16(&r);
        c->breaker.since_ms = zc_rbuf_u64(&r);
        if (c->breaker.state >= ZC_BRK_N_STATES || c->breaker.mode > ZC_BRK_FORCED_CLOSED)
            return -1;
    }
    return zc_rbuf_done(&r) ? 0 : -1;
}

static void encode_session(const zc_session_rec_t *s, zc_wbuf_t *w)
{
    zc_wbuf_u8(w, SESSION_REC_V);
    zc_wbuf_u8(w, s->state);
    zc_wbuf_str(w, s->cart);
    zc_wbuf_u64(w, s->generation);
    zc_wbuf_u64(w, s->since_ms);
    zc_wbuf_u8(w, s->lost ? 1 : 0);
}

static int decode_session(const MDB_val *k, const MDB_val *v, zc_session_rec_t *s)
{
    memset(s, 0, sizeof *s);
    if (k->mv_size != ZC_SESSION_LEN)
        return -1;
    memcpy(s->id, k->mv_data, ZC_SESSION_LEN);
    zc_rbuf_t r;
    zc_rbuf_init(&r, v->mv_data, v->mv_size);
    uint8_t version = zc_rbuf_u8(&r);
    if (version != 1 && version != SESSION_REC_V)
        return -1;
    s->state = zc_rbuf_u8(&r);
    zc_rbuf_str(&r, s->cart, sizeof s->cart);
    s->generation = zc_rbuf_u64(&r);
    s->since_ms = zc_rbuf_u64(&r);
    if (version >= 2) {
        uint8_t lost = zc_rbuf_u8(&r);
        if (lost > 1)
            return -1;
        s->lost = lost == 1;
    }
    return zc_rbuf_done(&r) ? 0 : -1;
}

zc_state_t *zc_state_open(const char *dir, size_t map_size, char *err, size_t errlen)
{
    zc_state_t *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    const zc_lmdb_db_t dbs[] = {
        ZC_LMDB_DB("meta", &s->meta),         ZC_LMDB_DB("carts", &s->carts),
        ZC_LMDB_DB("free", &s->free),         ZC_LMDB_DB("sessions", &s->sessions),
        ZC_LMDB_DB("members", &s->members),   ZC_LMDB_DB("local", &s->local),
        ZC_LMDB_DB("nodefree", &s->nodefree), ZC_LMDB_DB("nodeload", &s->nodeload),
        ZC_LMDB_DB("brkidx", &s->brkidx),     ZC_LMDB_DB("loadfree", &s->loadfree),
    };
    if (zc_lmdb_open(&s->env, dir, 12, map_size ? map_size : ZC_STATE_MAP_DEFAULT,
                     MDB_NOSYNC | MDB_NOTLS, dbs, sizeof dbs / sizeof dbs[0], err, errlen) != 0) {
        free(s);
        return NULL;
    }
    s->has_brkidx = true;
    return s;
}

zc_state_t *zc_state_open_readonly(const char *dir, char *err, size_t errlen)
{
    zc_state_t *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->readonly = true;
    /* A state from before the breaker index has none: status walks the carts. */
    const zc_lmdb_db_t dbs[] = {
        ZC_LMDB_DB("meta", &s->meta),
        ZC_LMDB_DB("carts", &s->carts),
        ZC_LMDB_DB("free", &s->free),
        ZC_LMDB_DB("sessions", &s->sessions),
        ZC_LMDB_DB("members", &s->members),
        ZC_LMDB_DB("local", &s->local),
        ZC_LMDB_DB_OPTIONAL("brkidx", &s->brkidx, &s->has_brkidx),
    };
    if (zc_lmdb_open_readonly(&s->env, dir, "zcart state", 10, dbs, sizeof dbs / sizeof dbs[0], err,
                              errlen) != 0) {
        free(s);
        return NULL;
    }
    return s;
}

void zc_state_close(zc_state_t **p)
{
    zc_state_t *s = *p;
    if (s == NULL)
        return;
    *p = NULL;
    if (!s->readonly)
        mdb_env_sync(s->env, 1);
    mdb_env_close(s->env);
    free(s);
}

/* --- transaction-level primitives --- */

int zc_state_txn_get_cart(zc_state_t *s, MDB_txn *t, const char *id, zc_cart_rec_t *out)
{
    MDB_val k = {strlen(id), (void *)id}, v;
    int rc = mdb_get(t, s->carts, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 1;
    if (rc != 0)
        return -1;
    return decode_cart(&k, &v, out);
}

int zc_state_txn_put_cart(zc_state_t *s, MDB_txn *t, const zc_cart_rec_t *c)
{
    zc_wbuf_t w;
    zc_wbuf_init(&w);
    encode_cart(c, &w);
    MDB_val k = {strlen(c->id), (void *)c->id}, v = {w.len, w.data};
    int rc = w.oom ? -1 : mdb_put(t, s->carts, &k, &v, 0);
    zc_wbuf_clear(&w);
    if (rc == 0 && s->has_brkidx) {
        /* The breaker index follows every write of the cart. */
        MDB_val e = {0, NULL};
        if (c->breaker.state != ZC_BRK_CLOSED || c->breaker.mode != ZC_BRK_AUTO)
            rc = mdb_put(t, s->brkidx, &k, &e, 0);
        else if ((rc = mdb_del(t, s->brkidx, &k, NULL)) == MDB_NOTFOUND)
            rc = 0;
    }
    return rc == 0 ? 0 : -1;
}

int zc_state_txn_get_session(zc_state_t *s, MDB_txn *t, const uint8_t id[ZC_SESSION_LEN],
                             zc_session_rec_t *out)
{
    MDB_val k = {ZC_SESSION_LEN, (void *)id}, v;
    int rc = mdb_get(t, s->sessions, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 1;
    if (rc != 0)
        return -1;
    return decode_session(&k, &v, out);
}

void zc_state_txn_cart_added(zc_state_t *s) { s->registry_epoch++; }

uint64_t zc_state_registry_epoch(const zc_state_t *s) { return s->registry_epoch; }

int zc_state_txn_del_cart(zc_state_t *s, MDB_txn *t, const char *id)
{
    MDB_val k = {strlen(id), (void *)id};
    s->registry_epoch++;
    int rc = mdb_del(t, s->carts, &k, NULL);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return -1;
    if (s->has_brkidx && (rc = mdb_del(t, s->brkidx, &k, NULL)) != 0 && rc != MDB_NOTFOUND)
        return -1;
    return 0;
}

/* The carts of one node: keys "<node>.<slot>" sort together (a node name
 * holds no '.'), so one range from "<node>." covers them. */
static int each_node_cart(zc_state_t *s, MDB_txn *t, const char *node,
                          int (*fn)(const zc_cart_rec_t *c, void *arg), void *arg)
{
    char prefix[ZC_NODE_MAX + 2];
    size_t pl = (size_t)snprintf(prefix, sizeof prefix, "%s.", node);
    MDB_cursor *cur;
    MDB_val k = {pl, prefix}, v;
    if (pl >= sizeof prefix || mdb_cursor_open(t, s->carts, &cur) != 0)
        return -1;
    int rc = 0;
    for (int g = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
         g == 0 && k.mv_size > pl && memcmp(k.mv_data, prefix, pl) == 0;
         g = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        zc_cart_rec_t c;
        if (decode_cart(&k, &v, &c) != 0) {
            rc = -1;
            break;
        }
        if (fn(&c, arg) != 0)
            break;
    }
    mdb_cursor_close(cur);
    return rc;
}

int zc_state_txn_each_node_cart(zc_state_t *s, MDB_txn *t, const char *node,
                                int (*fn)(const zc_cart_rec_t *c, void *arg), void *arg)
{
    return each_node_cart(s, t, node, fn, arg);
}

int zc_state_txn_put_session(zc_state_t *s, MDB_txn *t, const zc_session_rec_t *r)
{
    zc_wbuf_t w;
    zc_wbuf_init(&w);
    encode_session(r, &w);
    MDB_val k = {ZC_SESSION_LEN, (void *)r->id}, v = {w.len, w.data};
    int rc = w.oom ? -1 : mdb_put(t, s->sessions, &k, &v, 0);
    zc_wbuf_clear(&w);
    return rc == 0 ? 0 : -1;
}

int zc_state_txn_del_session(zc_state_t *s, MDB_txn *t, const uint8_t id[ZC_SESSION_LEN])
{
    MDB_val k = {ZC_SESSION_LEN, (void *)id};
    int rc = mdb_del(t, s->sessions, &k, NULL);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : -1;
}

static void be64(uint8_t out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        out[i] = (uint8_t)v;
}

static uint64_t from_be64(const void *p)
{
    const uint8_t *b = p;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | b[i];
    return v;
}

uint64_t zc_state_txn_meta(zc_state_t *s, MDB_txn *t, const char *key)
{
    MDB_val k = {strlen(key), (void *)key}, v;
    if (mdb_get(t, s->meta, &k, &v) != 0 || v.mv_size != 8)
        return 0;
    return from_be64(v.mv_data);
}

int zc_state_txn_set_meta(zc_state_t *s, MDB_txn *t, const char *key, uint64_t val)
{
    uint8_t b[8];
    be64(b, val);
    MDB_val k = {strlen(key), (void *)key}, v = {8, b};
    return mdb_put(t, s->meta, &k, &v, 0) == 0 ? 0 : -1;
}

int zc_state_txn_add_meta(zc_state_t *s, MDB_txn *t, const char *key, int64_t delta)
{
    uint64_t v = zc_state_txn_meta(s, t, key);
    return zc_state_txn_set_meta(s, t, key, (uint64_t)((int64_t)v + delta));
}

/* nodefree key: node, 0x00, be64 position. */
static size_t nodefree_key(uint8_t *buf, const char *node, uint64_t pos)
{
    size_t n = strlen(node);
    memcpy(buf, node, n);
    buf[n] = 0;
    be64(buf + n + 1, pos);
    return n + 9;
}

/* loadfree key: be64 load, be64 head free position, node name.  One per
 * node that has a free cart: LMDB's order is placement order. */
static size_t loadfree_key(uint8_t *buf, uint64_t load, uint64_t head, const char *node)
{
    size_t n = strlen(node);
    be64(buf, load);
    be64(buf + 8, head);
    memcpy(buf + 16, node, n);
    return n + 16;
}

/* The node's first free position (nodefree): 0 found, 1 the node has no
 * free cart, -1 storage error. */
static int node_head(zc_state_t *s, MDB_txn *t, const char *node, uint64_t *head)
{
    uint8_t nk[ZC_NODE_MAX + 9];
    size_t nl = strlen(node);
    MDB_cursor *cur;
    MDB_val k = {nodefree_key(nk, node, 0), nk}, v;
    if (mdb_cursor_open(t, s->nodefree, &cur) != 0)
        return -1;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        return 1;
    if (rc != 0)
        return -1;
    if (k.mv_size != nl + 9 || memcmp(k.mv_data, nk, nl + 1) != 0)
        return 1;
    *head = from_be64((const uint8_t *)k.mv_data + nl + 1);
    return 0;
}

/* Add (put) or remove the node's loadfree entry as its load and free carts
 * are now.  Every change of either is bracketed: remove, change, add. */
static int loadfree_set(zc_state_t *s, MDB_txn *t, const char *node, bool put)
{
    uint64_t head;
    int rc = node_head(s, t, node, &head);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    uint8_t lk[16 + ZC_NODE_MAX];
    MDB_val k = {loadfree_key(lk, zc_state_txn_load(s, t, node), head, node), lk}, e = {0, NULL};
    rc = put ? mdb_put(t, s->loadfree, &k, &e, 0) : mdb_del(t, s->loadfree, &k, NULL);
    return rc == 0 || (!put && rc == MDB_NOTFOUND) ? 0 : -1;
}

int zc_state_txn_free_push(zc_state_t *s, MDB_txn *t, zc_cart_rec_t *c)
{
    uint64_t pos = zc_state_txn_meta(s, t, "free_tail");
    uint8_t b[8], nk[ZC_NODE_MAX + 9];
    be64(b, pos);
    MDB_val k = {8, b}, v = {strlen(c->id), c->id};
    if (mdb_put(t, s->free, &k, &v, 0) != 0 || loadfree_set(s, t, c->node, false) != 0)
        return -1;
    MDB_val ik = {nodefree_key(nk, c->node, pos), nk};
    if (mdb_put(t, s->nodefree, &ik, &v, 0) != 0 || loadfree_set(s, t, c->node, true) != 0)
        return -1;
    c->free_pos = pos;
    return zc_state_txn_set_meta(s, t, "free_tail", pos + 1);
}

int zc_state_txn_free_take(zc_state_t *s, MDB_txn *t, const zc_cart_rec_t *c)
{
    uint8_t nk[ZC_NODE_MAX + 9];
    MDB_val ik = {nodefree_key(nk, c->node, c->free_pos), nk};
    if (loadfree_set(s, t, c->node, false) != 0)
        return -1;
    int rc = mdb_del(t, s->nodefree, &ik, NULL);
    if ((rc != 0 && rc != MDB_NOTFOUND) || loadfree_set(s, t, c->node, true) != 0)
        return -1;
    return zc_state_txn_free_del(s, t, c->free_pos);
}

uint64_t zc_state_txn_load(zc_state_t *s, MDB_txn *t, const char *node)
{
    MDB_val k = {strlen(node), (void *)node}, v;
    if (mdb_get(t, s->nodeload, &k, &v) != 0 || v.mv_size != 8)
        return 0;
    return from_be64(v.mv_data);
}

/* nodeload alone (the rebuild builds loadfree after it). */
static int load_add(zc_state_t *s, MDB_txn *t, const char *node, int64_t delta)
{
    uint64_t n = zc_state_txn_load(s, t, node);
    n = delta < 0 && (uint64_t)-delta > n ? 0 : (uint64_t)((int64_t)n + delta);
    uint8_t b[8];
    be64(b, n);
    MDB_val k = {strlen(node), (void *)node}, v = {8, b};
    return mdb_put(t, s->nodeload, &k, &v, 0) == 0 ? 0 : -1;
}

int zc_state_txn_load_add(zc_state_t *s, MDB_txn *t, const char *node, int64_t delta)
{
    return loadfree_set(s, t, node, false) != 0 || load_add(s, t, node, delta) != 0 ||
                   loadfree_set(s, t, node, true) != 0
               ? -1
               : 0;
}

/* The node's first free cart at or after position from whose breaker is
 * CLOSED: 0 found (in *out), 1 none, -1 storage error. */
static int first_closed_of_node(zc_state_t *s, MDB_txn *t, MDB_cursor *cur, const char *node,
                                uint64_t from, zc_cart_rec_t *out)
{
    uint8_t nk[ZC_NODE_MAX + 9];
    size_t nl = strlen(node);
    MDB_val k = {nodefree_key(nk, node, from), nk}, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != nl + 9 || memcmp(k.mv_data, nk, nl + 1) != 0)
            return 1;
        char id[ZC_CART_MAX + 1];
        size_t n = v.mv_size < ZC_CART_MAX ? v.mv_size : ZC_CART_MAX;
        memcpy(id, v.mv_data, n);
        id[n] = 0;
        if (zc_state_txn_get_cart(s, t, id, out) != 0)
            return -1;
        if (out->breaker.state == ZC_BRK_CLOSED)
            return 0;
    }
    return rc == MDB_NOTFOUND ? 1 : -1;
}

int zc_state_txn_least_loaded(zc_state_t *s, MDB_txn *t, zc_cart_rec_t *out)
{
    MDB_cursor *lf, *nf;
    MDB_val k, v;
    if (mdb_cursor_open(t, s->loadfree, &lf) != 0)
        return -1;
    if (mdb_cursor_open(t, s->nodefree, &nf) != 0) {
        mdb_cursor_close(lf);
        return -1;
    }
    int rc, found = 1;
    uint64_t best_load = 0, best_pos = 0;
    /* Nodes in (load, first free position) order: the first whose head
     * cart is CLOSED wins outright; past a node whose CLOSED cart lies
     * further down its free list, keep going only while another node's
     * head could still come before that cart. */
    for (rc = mdb_cursor_get(lf, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(lf, &k, &v, MDB_NEXT)) {
        if (k.mv_size <= 16 || k.mv_size > 16 + ZC_NODE_MAX) {
            found = -1;
            break;
        }
        uint64_t load = from_be64(k.mv_data), head = from_be64((const uint8_t *)k.mv_data + 8);
        if (found == 0 && (load > best_load || (load == best_load && head > best_pos)))
            break;
        char node[ZC_NODE_MAX + 1];
        memcpy(node, (const uint8_t *)k.mv_data + 16, k.mv_size - 16);
        node[k.mv_size - 16] = 0;
        zc_cart_rec_t c;
        int got = first_closed_of_node(s, t, nf, node, head, &c);
        if (got < 0) {
            found = -1;
            break;
        }
        if (got == 0 && (found == 1 || load < best_load || c.free_pos < best_pos)) {
            *out = c;
            best_load = load;
            best_pos = c.free_pos;
            found = 0;
        }
    }
    mdb_cursor_close(nf);
    mdb_cursor_close(lf);
    if (found >= 0 && rc != 0 && rc != MDB_NOTFOUND)
        return -1;
    return found;
}

/* loadfree from nodefree and nodeload: one entry per node with a free cart. */
static int build_loadfree(zc_state_t *s, MDB_txn *t)
{
    MDB_cursor *cur;
    MDB_val k, v;
    if (mdb_cursor_open(t, s->nodefree, &cur) != 0)
        return -1;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0) {
        /* k is the first (head) entry of a node */
        size_t nl = k.mv_size >= 9 ? k.mv_size - 9 : 0;
        const uint8_t *kb = k.mv_data;
        if (nl == 0 || nl > ZC_NODE_MAX || kb[nl] != 0)
            break;
        char node[ZC_NODE_MAX + 1];
        memcpy(node, kb, nl);
        node[nl] = 0;
        uint8_t lk[16 + ZC_NODE_MAX];
        MDB_val lkv = {loadfree_key(lk, zc_state_txn_load(s, t, node), from_be64(kb + nl + 1),
                                    node),
                       lk},
                e = {0, NULL};
        if (mdb_put(t, s->loadfree, &lkv, &e, 0) != 0)
            break;
        /* on to the next node: the first key past "node\x01" */
        uint8_t next[ZC_NODE_MAX + 1];
        memcpy(next, node, nl);
        next[nl] = 1;
        k.mv_data = next;
        k.mv_size = nl + 1;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : -1;
}

/* A write transaction of the state's own (rebuilding indexes, counts,
 * local facts, a restore's cleanup).  LMDB has one writer: with the FSM's
 * batch open (fsm.c, "batching") this would wait on itself, so it refuses
 * -- the FSM commits its batch before it calls any of these. */
static MDB_txn *wtxn(zc_state_t *s)
{
    MDB_txn *t = NULL;
    if (s->batch) {
        zc_error("state: a write transaction while the apply batch is open (a bug)");
        return NULL;
    }
    return mdb_txn_begin(s->env, NULL, 0, &t) == 0 ? t : NULL;
}

int zc_state_rebuild_indexes(zc_state_t *s)
{
    if (s->readonly)
        return 0;
    s->registry_epoch++; /* after a restore, any cart may be new or gone */
    MDB_txn *t;
    MDB_cursor *cur;
    MDB_val k, v;
    if ((t = wtxn(s)) == NULL)
        return -1;
    int rc = mdb_drop(t, s->nodefree, 0) != 0 || mdb_drop(t, s->nodeload, 0) != 0 ||
                     mdb_drop(t, s->loadfree, 0) != 0 || mdb_drop(t, s->brkidx, 0) != 0 ||
                     mdb_cursor_open(t, s->carts, &cur) != 0
                 ? -1
                 : 0;
    if (rc == 0) {
        for (int op = MDB_FIRST; rc == 0 && mdb_cursor_get(cur, &k, &v, op) == 0; op = MDB_NEXT) {
            zc_cart_rec_t c;
            if (decode_cart(&k, &v, &c) != 0)
                continue;
            if (c.breaker.state != ZC_BRK_CLOSED || c.breaker.mode != ZC_BRK_AUTO) {
                MDB_val e = {0, NULL};
                rc = mdb_put(t, s->brkidx, &k, &e, 0) == 0 ? 0 : -1;
            }
            if (rc != 0)
                break;
            if (c.state == ZC_CART_FREE) {
                uint8_t nk[ZC_NODE_MAX + 9];
                MDB_val ik = {nodefree_key(nk, c.node, c.free_pos), nk};
                MDB_val iv = {strlen(c.id), c.id};
                rc = mdb_put(t, s->nodefree, &ik, &iv, 0) == 0 ? 0 : -1;
            } else if (c.state == ZC_CART_ASSIGNED) {
                rc = load_add(s, t, c.node, 1);
            }
        }
        mdb_cursor_close(cur);
    }
    if (rc == 0)
        rc = build_loadfree(s, t);
    if (rc == 0)
        rc = zc_state_txn_set_meta(s, t, "index_v", ZC_STATE_INDEX_V);
    if (rc != 0) {
        mdb_txn_abort(t);
        return -1;
    }
    return mdb_txn_commit(t) == 0 ? 0 : -1;
}

int zc_state_txn_free_del(zc_state_t *s, MDB_txn *t, uint64_t pos)
{
    uint8_t b[8];
    be64(b, pos);
    MDB_val k = {8, b};
    int rc = mdb_del(t, s->free, &k, NULL);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : -1;
}

static int decode_member(const MDB_val *k, const MDB_val *v, zc_member_t *m)
{
    memset(m, 0, sizeof *m);
    if (k->mv_size != 8)
        return -1;
    m->id = from_be64(k->mv_data);
    zc_rbuf_t r;
    zc_rbuf_init(&r, v->mv_data, v->mv_size);
    zc_rbuf_str(&r, m->raft_address, sizeof m->raft_address);
    zc_rbuf_str(&r, m->client_endpoint, sizeof m->client_endpoint);
    zc_rbuf_str(&r, m->cart_endpoint, sizeof m->cart_endpoint);
    return zc_rbuf_done(&r) ? 0 : -1;
}

int zc_state_txn_put_member(zc_state_t *s, MDB_txn *t, const zc_member_t *m)
{
    uint8_t key[8];
    zc_wbuf_t w;
    be64(key, m->id);
    zc_wbuf_init(&w);
    zc_wbuf_str(&w, m->raft_address);
    zc_wbuf_str(&w, m->client_endpoint);
    zc_wbuf_str(&w, m->cart_endpoint);
    MDB_val k = {8, key}, v = {w.len, w.data};
    int rc = w.oom ? -1 : mdb_put(t, s->members, &k, &v, 0);
    zc_wbuf_clear(&w);
    return rc == 0 ? 0 : -1;
}

int zc_state_txn_del_member(zc_state_t *s, MDB_txn *t, uint64_t id)
{
    uint8_t key[8];
    be64(key, id);
    MDB_val k = {8, key};
    int rc = mdb_del(t, s->members, &k, NULL);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : -1;
}

/* --- queries --- */

static int count_any(const zc_cart_rec_t *c, void *arg)
{
    (void)c;
    (*(uint64_t *)arg)++;
    return 0;
}

/* A transaction to read from: the FSM's open batch when there is one (its
 * entries are applied but not committed yet: replication/fsm.c,
 * "batching"), else a read transaction of its own.  Close it with rdone. */
static MDB_txn *rtxn(zc_state_t *s)
{
    MDB_txn *t = NULL;
    if (s->batch)
        return s->batch;
    return mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t) == 0 ? t : NULL;
}

static void rdone(zc_state_t *s, MDB_txn *t)
{
    if (t != s->batch)
        mdb_txn_abort(t);
}

int zc_state_get_session(zc_state_t *s, const uint8_t id[ZC_SESSION_LEN], zc_session_rec_t *out)
{
    MDB_txn *t = rtxn(s);
    if (t == NULL)
        return -1;
    int rc = zc_state_txn_get_session(s, t, id, out);
    rdone(s, t);
    return rc;
}

int zc_state_get_cart(zc_state_t *s, const char *id, zc_cart_rec_t *out)
{
    MDB_txn *t = rtxn(s);
    if (t == NULL)
        return -1;
    int rc = zc_state_txn_get_cart(s, t, id, out);
    rdone(s, t);
    return rc;
}

uint64_t zc_state_meta(zc_state_t *s, const char *key)
{
    MDB_txn *t = rtxn(s);
    if (t == NULL)
        return 0;
    uint64_t v = zc_state_txn_meta(s, t, key);
    rdone(s, t);
    return v;
}

uint64_t zc_state_free_count(zc_state_t *s)
{
    MDB_txn *t = rtxn(s);
    MDB_stat st;
    if (t == NULL)
        return 0;
    uint64_t n = mdb_stat(t, s->free, &st) == 0 ? st.ms_entries : 0;
    rdone(s, t);
    return n;
}

int zc_state_get_member(zc_state_t *s, uint64_t id, zc_member_t *out)
{
    MDB_txn *t = rtxn(s);
    if (t == NULL)
        return -1;
    uint8_t key[8];
    be64(key, id);
    MDB_val k = {8, key}, v;
    int rc = mdb_get(t, s->members, &k, &v);
    rc = rc == MDB_NOTFOUND ? 1 : rc != 0 ? -1 : decode_member(&k, &v, out);
    rdone(s, t);
    return rc;
}

int zc_state_local_get(zc_state_t *s, const char *key, char *out, size_t cap)
{
    MDB_txn *t = rtxn(s);
    if (t == NULL)
        return -1;
    MDB_val k = {strlen(key), (void *)key}, v;
    int rc = mdb_get(t, s->local, &k, &v);
    if (rc == 0 && v.mv_size < cap) {
        memcpy(out, v.mv_data, v.mv_size);
        out[v.mv_size] = 0;
    }
    rdone(s, t);
    return rc == MDB_NOTFOUND ? 1 : rc == 0 && v.mv_size < cap ? 0 : -1;
}

int zc_state_local_set(zc_state_t *s, const char *key, const char *value)
{
    MDB_txn *t;
    if ((t = wtxn(s)) == NULL)
        return -1;
    MDB_val k = {strlen(key), (void *)key}, v = {strlen(value), (void *)value};
    if (mdb_put(t, s->local, &k, &v, 0) != 0) {
        mdb_txn_abort(t);
        return -1;
    }
    if (mdb_txn_commit(t) != 0)
        return -1;
    return mdb_env_sync(s->env, 1) == 0 ? 0 : -1;
}

/* The typed visitors of the zc_state_each_* walks. */
typedef struct {
    zc_state_t *s; /* the state */
    union {
        int (*member)(const zc_member_t *m, void *arg);
        int (*cart)(const zc_cart_rec_t *c, void *arg);
        int (*free)(const char *cart, void *arg);
        int (*session)(const zc_session_rec_t *r, void *arg);
    } fn;      /* the caller's visitor: non-zero stops the walk */
    void *arg; /* its argument */
} walk_t;

/* One read transaction, one cursor over dbi from its first record; step
 * returns 0 to go on, 1 to stop, -1 for a record it cannot use.  0 (a
 * stop included), or -1. */
static int walk(zc_state_t *s, MDB_dbi dbi,
                int (*step)(MDB_txn *t, const MDB_val *k, const MDB_val *v, walk_t *w), walk_t *w)
{
    MDB_txn *t = rtxn(s);
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = -1;
    if (t == NULL)
        return -1;
    if (mdb_cursor_open(t, dbi, &cur) == 0) {
        rc = 0;
        for (int op = MDB_FIRST; mdb_cursor_get(cur, &k, &v, op) == 0; op = MDB_NEXT) {
            int r = step(t, &k, &v, w);
            if (r != 0) {
                rc = r < 0 ? -1 : 0;
                break;
            }
        }
        mdb_cursor_close(cur);
    }
    rdone(s, t);
    return rc;
}

static int step_member(MDB_txn *t, const MDB_val *k, const MDB_val *v, walk_t *w)
{
    zc_member_t m;
    if (decode_member(k, v, &m) != 0)
        return -1;
    return w->fn.member(&m, w->arg) != 0;
}

static int step_cart(MDB_txn *t, const MDB_val *k, const MDB_val *v, walk_t *w)
{
    zc_cart_rec_t c;
    if (decode_cart(k, v, &c) != 0)
        return -1;
    return w->fn.cart(&c, w->arg) != 0;
}

/* brkidx lists cart ids: the record itself is in carts. */
static int step_indexed_cart(MDB_txn *t, const MDB_val *k, const MDB_val *v, walk_t *w)
{
    MDB_val cv;
    zc_cart_rec_t c;
    if (mdb_get(t, w->s->carts, (MDB_val *)k, &cv) != 0 || decode_cart(k, &cv, &c) != 0)
        return -1;
    return w->fn.cart(&c, w->arg) != 0;
}

static int step_free(MDB_txn *t, const MDB_val *k, const MDB_val *v, walk_t *w)
{
    char id[ZC_CART_MAX + 1];
    if (v->mv_size > ZC_CART_MAX)
        return -1;
    memcpy(id, v->mv_data, v->mv_size);
    id[v->mv_size] = 0;
    return w->fn.free(id, w->arg) != 0;
}

static int step_session(MDB_txn *t, const MDB_val *k, const MDB_val *v, walk_t *w)
{
    zc_session_rec_t r;
    if (decode_session(k, v, &r) != 0)
        return -1;
    return w->fn.session(&r, w->arg) != 0;
}

int zc_state_each_member(zc_state_t *s, int (*fn)(const zc_member_t *m, void *arg), void *arg)
{
    walk_t w = {.s = s, .fn.member = fn, .arg = arg};
    return walk(s, s->members, step_member, &w);
}

int zc_state_each_cart(zc_state_t *s, int (*fn)(const zc_cart_rec_t *c, void *arg), void *arg)
{
    walk_t w = {.s = s, .fn.cart = fn, .arg = arg};
    return walk(s, s->carts, step_cart, &w);
}

int zc_state_each_node_cart(zc_state_t *s, const char *node,
                            int (*fn)(const zc_cart_rec_t *c, void *arg), void *arg)
{
    MDB_txn *t = rtxn(s);
    if (t == NULL)
        return -1;
    int rc = each_node_cart(s, t, node, fn, arg);
    rdone(s, t);
    return rc;
}

/* Without the index (a read-only state from before it): filter the carts. */
typedef struct {
    int (*fn)(const zc_cart_rec_t *c, void *arg); /* the caller's */
    void *arg;                                    /* its argument */
} brk_filter_t;

static int brk_filter(const zc_cart_rec_t *c, void *arg)
{
    brk_filter_t *f = arg;
    if (c->breaker.state == ZC_BRK_CLOSED && c->breaker.mode == ZC_BRK_AUTO)
        return 0;
    return f->fn(c, f->arg);
}

int zc_state_each_breaker_not_closed(zc_state_t *s, int (*fn)(const zc_cart_rec_t *c, void *arg),
                                     void *arg)
{
    if (!s->has_brkidx) {
        brk_filter_t f = {fn, arg};
        return zc_state_each_cart(s, brk_filter, &f);
    }
    walk_t w = {.s = s, .fn.cart = fn, .arg = arg};
    return walk(s, s->brkidx, step_indexed_cart, &w);
}

uint64_t zc_state_breakers_not_closed(zc_state_t *s)
{
    if (!s->has_brkidx) {
        uint64_t n = 0;
        zc_state_each_breaker_not_closed(s, count_any, &n);
        return n;
    }
    MDB_txn *t = rtxn(s);
    MDB_stat st;
    uint64_t n = 0;
    if (t != NULL && mdb_stat(t, s->brkidx, &st) == 0)
        n = st.ms_entries;
    if (t != NULL)
        rdone(s, t);
    return n;
}

int zc_state_each_free(zc_state_t *s, int (*fn)(const char *cart, void *arg), void *arg)
{
    walk_t w = {.s = s, .fn.free = fn, .arg = arg};
    return walk(s, s->free, step_free, &w);
}

int zc_state_each_session(zc_state_t *s, int (*fn)(const zc_session_rec_t *r, void *arg), void *arg)
{
    walk_t w = {.s = s, .fn.session = fn, .arg = arg};
    return walk(s, s->sessions, step_session, &w);
}

int zc_state_each_session_from(zc_state_t *s, const uint8_t from[ZC_SESSION_LEN], unsigned max,
                               int (*fn)(const zc_session_rec_t *r, void *arg), void *arg)
{
    MDB_txn *t = rtxn(s);
    MDB_cursor *cur;
    MDB_val k = {ZC_SESSION_LEN, (void *)from}, v;
    int n = 0;
    if (t == NULL)
        return -1;
    if (mdb_cursor_open(t, s->sessions, &cur) != 0) {
        rdone(s, t);
        return -1;
    }
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && (unsigned)n < max;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        zc_session_rec_t r;
        if (decode_session(&k, &v, &r) != 0) {
            n = -1;
            break;
        }
        n++;
        if (fn(&r, arg) != 0)
            break;
    }
    mdb_cursor_close(cur);
    rdone(s, t);
    return n;
}

int zc_state_ensure_counts(zc_state_t *s)
{
    if (s->readonly || zc_state_meta(s, "counts_v") == ZC_STATE_COUNTS_V)
        return 0;
    MDB_txn *t;
    MDB_cursor *cur;
    MDB_val k, v;
    uint64_t live = 0, ended = 0;
    if ((t = wtxn(s)) == NULL)
        return -1;
    if (mdb_cursor_open(t, s->sessions, &cur) != 0) {
        mdb_txn_abort(t);
        return -1;
    }
    for (int op = MDB_FIRST; mdb_cursor_get(cur, &k, &v, op) == 0; op = MDB_NEXT) {
        zc_session_rec_t r;
        if (decode_session(&k, &v, &r) != 0)
            continue;
        if (r.state == ZC_SESS_LIVE)
            live++;
        else
            ended++;
    }
    mdb_cursor_close(cur);
    uint64_t assigned = 0;
    if (mdb_cursor_open(t, s->carts, &cur) != 0) {
        mdb_txn_abort(t);
        return -1;
    }
    for (int op = MDB_FIRST; mdb_cursor_get(cur, &k, &v, op) == 0; op = MDB_NEXT) {
        zc_cart_rec_t c;
        if (decode_cart(&k, &v, &c) == 0 && c.state == ZC_CART_ASSIGNED)
            assigned++;
    }
    mdb_cursor_close(cur);
    MDB_stat st;
    if (mdb_stat(t, s->carts, &st) != 0 ||
        zc_state_txn_set_meta(s, t, "carts_assigned", assigned) != 0 ||
        zc_state_txn_set_meta(s, t, "sessions_live", live) != 0 ||
        zc_state_txn_set_meta(s, t, "sessions_ended", ended) != 0 ||
        zc_state_txn_set_meta(s, t, "carts_total", st.ms_entries) != 0 ||
        zc_state_txn_set_meta(s, t, "counts_v", ZC_STATE_COUNTS_V) != 0) {
        mdb_txn_abort(t);
        return -1;
    }
    return mdb_txn_commit(t) == 0 ? 0 : -1;
}

uint32_t zc_state_max_records(size_t map_size)
{
    uint64_t n = (uint64_t)map_size / ZC_STATE_RECORD_BUDGET;
    return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

uint64_t zc_state_records(zc_state_t *s)
{
    MDB_txn *t = rtxn(s);
    if (t == NULL)
        return 0;
    uint64_t n = zc_state_txn_meta(s, t, "sessions_live") +
                 zc_state_txn_meta(s, t, "sessions_ended") + zc_state_txn_meta(s, t, "carts_total");
    rdone(s, t);
    return n;
}

int zc_state_storage(zc_state_t *s, uint64_t *used_bytes, uint64_t *map_bytes)
{
    return zc_lmdb_usage(s->env, used_bytes, map_bytes);
}

static int count_cart(const zc_cart_rec_t *c, void *arg)
{
    zc_state_counts_t *n = arg;
    n->total++;
    if (c->state == ZC_CART_FREE)
        n->free++;
    else if (c->state == ZC_CART_ASSIGNED)
        n->assigned++;
    else if (c->state == ZC_CART_DRAINING)
        n->draining++;
    return 0;
}

int zc_state_counts(zc_state_t *s, zc_state_counts_t *out)
{
    memset(out, 0, sizeof *out);
    MDB_txn *t = rtxn(s);
    MDB_stat fst;
    if (t != NULL && zc_state_txn_meta(s, t, "counts_v") == ZC_STATE_COUNTS_V &&
        mdb_stat(t, s->free, &fst) == 0) {
        /* Kept by every apply: O(1). */
        out->sessions_live = (uint32_t)zc_state_txn_meta(s, t, "sessions_live");
        out->sessions_ended = (uint32_t)zc_state_txn_meta(s, t, "sessions_ended");
        out->total = (uint32_t)zc_state_txn_meta(s, t, "carts_total");
        out->assigned = (uint32_t)zc_state_txn_meta(s, t, "carts_assigned");
        out->free = (uint32_t)fst.ms_entries;
        out->draining = out->total - out->free - out->assigned;
        rdone(s, t);
        return 0;
    }
    if (t != NULL)
        rdone(s, t);
    t = NULL;
    if (zc_state_each_cart(s, count_cart, out) != 0)
        return -1;
    t = rtxn(s);
    MDB_cursor *cur;
    MDB_val k, v;
    if (t == NULL)
        return -1;
    if (mdb_cursor_open(t, s->sessions, &cur) == 0) {
        for (int op = MDB_FIRST; mdb_cursor_get(cur, &k, &v, op) == 0; op = MDB_NEXT) {
            zc_session_rec_t r;
            if (decode_session(&k, &v, &r) != 0)
                continue;
            if (r.state == ZC_SESS_LIVE)
                out->sessions_live++;
            else
                out->sessions_ended++;
        }
        mdb_cursor_close(cur);
    }
    rdone(s, t);
    return 0;
}

/* Hash one database: every (key, value) in key order, each length-framed so
 * different splits of the same bytes hash differently. */
static uint64_t hash_db(MDB_txn *t, MDB_dbi dbi, uint64_t h)
{
    MDB_cursor *cur;
    MDB_val k, v;
    if (mdb_cursor_open(t, dbi, &cur) != 0)
        return h;
    for (int op = MDB_FIRST; mdb_cursor_get(cur, &k, &v, op) == 0; op = MDB_NEXT) {
        uint8_t len[8];
        be64(len, k.mv_size);
        h = zc_fnv64(h, len, 8);
        h = zc_fnv64(h, k.mv_data, k.mv_size);
        be64(len, v.mv_size);
        h = zc_fnv64(h, len, 8);
        h = zc_fnv64(h, v.mv_data, v.mv_size);
    }
    mdb_cursor_close(cur);
    return h;
}

uint64_t zc_state_digest(zc_state_t *s)
{
    MDB_txn *t = rtxn(s);
    if (t == NULL)
        return 0;
    uint64_t h = ZC_FNV64_INIT;
    h = hash_db(t, s->carts, h);
    h = hash_db(t, s->free, h);
    h = hash_db(t, s->sessions, h);
    uint8_t b[8];
    be64(b, zc_state_txn_meta(s, t, "next_gen"));
    h = zc_fnv64(h, b, 8);
    be64(b, zc_state_txn_meta(s, t, "free_tail"));
    h = zc_fnv64(h, b, 8);
    rdone(s, t);
    return h;
}

/* --- invariant check --- */

/* zc_state_check's walk: where it is, what it found so far. */
typedef struct {
    zc_state_t *s;       /* the state */
    MDB_txn *t;          /* one read transaction for the whole check */
    char *why;           /* the first inconsistency found */
    size_t whylen;       /* room in why */
    size_t n_list;       /* free-list entries */
    size_t n_free;       /* FREE carts */
    size_t n_carts;      /* cart records */
    size_t n_assigned;   /* ASSIGNED carts */
    size_t n_not_closed; /* carts whose breaker is not CLOSED-and-auto */
    size_t n_live;       /* LIVE sessions */
    size_t n_ended;      /* ended sessions */
} check_t;

/* A cursor over dbi; NULL (and why says so) on a storage error. */
static MDB_cursor *check_cursor(check_t *ck, MDB_dbi dbi)
{
    MDB_cursor *cur;
    if (mdb_cursor_open(ck->t, dbi, &cur) == 0)
        return cur;
    snprintf(ck->why, ck->whylen, "storage error while checking");
    return NULL;
}

/* Free list: each entry a FREE cart whose free_pos is that entry. */
static int check_free_list(check_t *ck)
{
    MDB_val k, v;
    MDB_cursor *cur = check_cursor(ck, ck->s->free);
    int rc = cur ? 0 : -1;
    for (int op = MDB_FIRST; rc == 0 && mdb_cursor_get(cur, &k, &v, op) == 0; op = MDB_NEXT) {
        char id[ZC_CART_MAX + 1];
        zc_cart_rec_t c;
        size_t n = v.mv_size < ZC_CART_MAX ? v.mv_size : ZC_CART_MAX;
        memcpy(id, v.mv_data, n);
        id[n] = 0;
        ck->n_list++;
        if (zc_state_txn_get_cart(ck->s, ck->t, id, &c) != 0) {
            snprintf(ck->why, ck->whylen, "free list names unregistered cart %s", id);
            rc = -1;
        } else if (c.state != ZC_CART_FREE || k.mv_size != 8 ||
                   c.free_pos != from_be64(k.mv_data)) {
            snprintf(ck->why, ck->whylen,
                     "free list entry for %s but the cart is in state %u at pos %llu", id, c.state,
                     (unsigned long long)c.free_pos);
            rc = -1;
        }
    }
    if (cur)
        mdb_cursor_close(cur);
    return rc;
}

/* One cart: a valid state, a breaker consistent with its mode (and in the
 * index when not CLOSED-and-auto), an ASSIGNED one held by a LIVE session
 * with the same generation. */
static int check_cart(check_t *ck, const MDB_val *k, const MDB_val *v)
{
    zc_state_t *s = ck->s;
    zc_cart_rec_t c;
    zc_session_rec_t r;
    ck->n_carts++;
    if (decode_cart(k, v, &c) != 0) {
        snprintf(ck->why, ck->whylen, "undecodable cart record");
        return -1;
    }
    if (c.breaker.state != ZC_BRK_CLOSED || c.breaker.mode != ZC_BRK_AUTO) {
        MDB_val iv;
        ck->n_not_closed++;
        if (s->has_brkidx && !s->readonly && mdb_get(ck->t, s->brkidx, (MDB_val *)k, &iv) != 0) {
            snprintf(ck->why, ck->whylen, "cart %s breaker not CLOSED-and-auto but not indexed",
                     c.id);
            return -1;
        }
    }
    if (c.breaker.state >= ZC_BRK_N_STATES ||
        (c.breaker.mode == ZC_BRK_FORCED_OPEN && c.breaker.state != ZC_BRK_OPEN) ||
        (c.breaker.mode == ZC_BRK_FORCED_CLOSED && c.breaker.state != ZC_BRK_CLOSED)) {
        snprintf(ck->why, ck->whylen, "cart %s breaker %s in mode %s", c.id,
                 zc_breaker_state_name(c.breaker.state), zc_breaker_mode_name(c.breaker.mode));
        return -1;
    }
    if (c.state == ZC_CART_FREE) {
        ck->n_free++;
    } else if (c.state == ZC_CART_ASSIGNED) {
        ck->n_assigned++;
        if (zc_state_txn_get_session(s, ck->t, c.session, &r) != 0 || r.state != ZC_SESS_LIVE ||
            strcmp(r.cart, c.id) != 0 || r.generation != c.generation) {
            snprintf(ck->why, ck->whylen, "cart %s is assigned but its session does not hold it",
                     c.id);
            return -1;
        }
    } else if (c.state != ZC_CART_DRAINING) {
        snprintf(ck->why, ck->whylen, "cart %s in unknown state %u", c.id, c.state);
        return -1;
    }
    return 0;
}

/* Every cart; then the breaker index's size and the FREE count against
 * the free list. */
static int check_carts(check_t *ck)
{
    zc_state_t *s = ck->s;
    MDB_val k, v;
    MDB_cursor *cur = check_cursor(ck, s->carts);
    int rc = cur ? 0 : -1;
    for (int op = MDB_FIRST; rc == 0 && mdb_cursor_get(cur, &k, &v, op) == 0; op = MDB_NEXT)
        rc = check_cart(ck, &k, &v);
    if (cur)
        mdb_cursor_close(cur);
    MDB_stat bst;
    if (rc == 0 && s->has_brkidx && !s->readonly && mdb_stat(ck->t, s->brkidx, &bst) == 0 &&
        bst.ms_entries != ck->n_not_closed) {
        snprintf(ck->why, ck->whylen,
                 "%zu carts with a breaker not CLOSED-and-auto but %zu in the index",
                 ck->n_not_closed, (size_t)bst.ms_entries);
        rc = -1;
    }
    if (rc == 0 && ck->n_free != ck->n_list) {
        snprintf(ck->why, ck->whylen, "%zu FREE carts but %zu free-list entries", ck->n_free,
                 ck->n_list);
        rc = -1;
    }
    return rc;
}

/* Sessions: a LIVE one's cart is ASSIGNED to it. */
static int check_sessions(check_t *ck)
{
    MDB_val k, v;
    MDB_cursor *cur = check_cursor(ck, ck->s->sessions);
    int rc = cur ? 0 : -1;
    for (int op = MDB_FIRST; rc == 0 && mdb_cursor_get(cur, &k, &v, op) == 0; op = MDB_NEXT) {
        zc_session_rec_t r;
        zc_cart_rec_t c;
        if (decode_session(&k, &v, &r) != 0) {
            snprintf(ck->why, ck->whylen, "undecodable session record");
            rc = -1;
            break;
        }
        *(r.state == ZC_SESS_LIVE ? &ck->n_live : &ck->n_ended) += 1;
        if (r.state == ZC_SESS_LIVE &&
            (zc_state_txn_get_cart(ck->s, ck->t, r.cart, &c) != 0 || c.state != ZC_CART_ASSIGNED ||
             memcmp(c.session, r.id, ZC_SESSION_LEN) != 0 || c.generation != r.generation)) {
            snprintf(ck->why, ck->whylen, "live session's cart %s is not assigned to it", r.cart);
            rc = -1;
        }
    }
    if (cur)
        mdb_cursor_close(cur);
    return rc;
}

/* The placement index: one loadfree entry per node with a free cart, at
 * that node's load and first free position. */
static int check_loadfree(check_t *ck)
{
    zc_state_t *s = ck->s;
    if (s->readonly)
        return 0;
    MDB_val k, v;
    size_t nodes = 0, entries = 0;
    MDB_cursor *cur = check_cursor(ck, s->nodefree);
    int rc = cur ? 0 : -1;
    /* distinct nodes in nodefree (keys are node, 0x00, position) */
    const uint8_t *prev = NULL;
    size_t prev_len = 0;
    for (int op = MDB_FIRST; rc == 0 && mdb_cursor_get(cur, &k, &v, op) == 0; op = MDB_NEXT) {
        size_t nl = k.mv_size >= 9 ? k.mv_size - 9 : 0;
        if (prev == NULL || nl != prev_len || memcmp(prev, k.mv_data, nl) != 0)
            nodes++;
        prev = k.mv_data; /* LMDB keeps it valid for the read transaction */
        prev_len = nl;
    }
    if (cur)
        mdb_cursor_close(cur);
    cur = rc == 0 ? check_cursor(ck, s->loadfree) : NULL;
    rc = cur ? 0 : -1;
    for (int op = MDB_FIRST; rc == 0 && mdb_cursor_get(cur, &k, &v, op) == 0; op = MDB_NEXT) {
        char node[ZC_NODE_MAX + 1];
        uint64_t head = 0;
        entries++;
        if (k.mv_size <= 16 || k.mv_size > 16 + ZC_NODE_MAX) {
            snprintf(ck->why, ck->whylen, "malformed placement index entry");
            rc = -1;
            break;
        }
        memcpy(node, (const uint8_t *)k.mv_data + 16, k.mv_size - 16);
        node[k.mv_size - 16] = 0;
        if (node_head(s, ck->t, node, &head) != 0 ||
            head != from_be64((const uint8_t *)k.mv_data + 8) ||
            zc_state_txn_load(s, ck->t, node) != from_be64(k.mv_data)) {
            snprintf(ck->why, ck->whylen, "placement index entry of node %s is stale", node);
            rc = -1;
        }
    }
    if (cur)
        mdb_cursor_close(cur);
    if (rc == 0 && entries != nodes) {
        snprintf(ck->why, ck->whylen, "%zu nodes with a free cart but %zu placement index entries",
                 nodes, entries);
        rc = -1;
    }
    return rc;
}

/* The O(1) counters (meta) agree with the records. */
static int check_counters(check_t *ck)
{
    zc_state_t *s = ck->s;
    MDB_txn *t = ck->t;
    if (s->readonly || zc_state_txn_meta(s, t, "counts_v") != ZC_STATE_COUNTS_V)
        return 0;
    uint64_t total = zc_state_txn_meta(s, t, "carts_total"),
             assigned = zc_state_txn_meta(s, t, "carts_assigned"),
             live = zc_state_txn_meta(s, t, "sessions_live"),
             ended = zc_state_txn_meta(s, t, "sessions_ended");
    if (total == ck->n_carts && assigned == ck->n_assigned && live == ck->n_live &&
        ended == ck->n_ended)
        return 0;
    snprintf(ck->why, ck->whylen,
             "meta counters (carts %llu/%llu assigned, sessions %llu live %llu ended) differ "
             "from the records (%zu/%zu, %zu, %zu)",
             (unsigned long long)total, (unsigned long long)assigned, (unsigned long long)live,
             (unsigned long long)ended, ck->n_carts, ck->n_assigned, ck->n_live, ck->n_ended);
    return -1;
}

int zc_state_check(zc_state_t *s, char *why, size_t whylen)
{
    check_t ck = {.s = s, .t = rtxn(s), .why = why, .whylen = whylen};
    if (ck.t == NULL) {
        snprintf(why, whylen, "cannot open a read transaction");
        return -1;
    }
    int rc = check_free_list(&ck);
    if (rc == 0)
        rc = check_carts(&ck);
    if (rc == 0)
        rc = check_sessions(&ck);
    if (rc == 0)
        rc = check_counters(&ck);
    if (rc == 0)
        rc = check_loadfree(&ck);
    rdone(s, ck.t);
    return rc;
}

/* --- backup and restore (replication/backup.c) --- */

int zc_state_copy_fd(zc_state_t *s, int fd)
{
    /* A read transaction of its own: the copy is the state at one commit,
     * while the loop goes on writing (MVCC; the env has MDB_NOTLS). */
    return mdb_env_copyfd2(s->env, fd, MDB_CP_COMPACT) == 0 ? 0 : -1;
}

/* Replica ids of the directory, at most 64 (the directory is capped far lower). */
typedef struct {
    uint64_t id[64]; /* collected ids */
    unsigned n;      /* entries used */
} member_ids_t;

static int collect_member(const zc_member_t *m, void *arg)
{
    member_ids_t *ids = arg;
    if (ids->n == 64)
        return 1;
    ids->id[ids->n++] = m->id;
    return 0;
}

int zc_state_forget_history(zc_state_t *s)
{
    member_ids_t ids = {.n = 0};
    if (zc_state_each_member(s, collect_member, &ids) < 0)
        return -1;
    MDB_txn *t;
    if ((t = wtxn(s)) == NULL)
        return -1;
    int rc = zc_state_txn_set_meta(s, t, "applied_index", 0);
    for (unsigned i = 0; rc == 0 && i < ids.n; i++)
        rc = zc_state_txn_del_member(s, t, ids.id[i]);
    if (rc != 0) {
        mdb_txn_abort(t);
        return -1;
    }
    return mdb_txn_commit(t) == 0 && mdb_env_sync(s->env, 1) == 0 ? 0 : -1;
}
