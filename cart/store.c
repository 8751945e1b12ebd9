/* store: see store.h.  Keys are big-endian so LMDB order is (slot, seq)
 * order, which makes "lowest seq of a slot" a single cursor seek. */
#include "cart/store.h"

#include "lib/lmdbx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/buf.h"

#define SLOT_REC_V 2 /* 2 added dedup_bytes and dedup_trimmed; 1 still decodes */

struct store {
    MDB_env *env;     /* environment (owned), opened with full sync */
    MDB_dbi slots;    /* slot records */
    MDB_dbi items;    /* slot+product -> units */
    MDB_dbi dedup;    /* slot+seq -> answer */
    MDB_txn *txn;     /* this iteration's transaction, NULL if none */
    bool modified;    /* txn holds changes (else commit just aborts it) */
    unsigned n_slots; /* slots hosted */
    bool readonly;    /* opened by store_open_readonly: read transactions only */
    uint64_t pending; /* bytes put in txn so far (store_usage counts them twice) */
};

store_t *store_open(const char *dir, unsigned n_slots, size_t map_size, char *err, size_t errlen)
{
    store_t *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->n_slots = n_slots;
    const zc_lmdb_db_t dbs[] = {ZC_LMDB_DB("slots", &s->slots), ZC_LMDB_DB("items", &s->items),
                                ZC_LMDB_DB("dedup", &s->dedup)};
    /* No NOSYNC: a commit is durable when it returns. */
    if (zc_lmdb_open(&s->env, dir, 4, map_size ? map_size : STORE_MAP_DEFAULT, MDB_NOTLS, dbs, 3,
                     err, errlen) != 0) {
        free(s);
        return NULL;
    }
    return s;
}

store_t *store_open_readonly(const char *dir, unsigned n_slots, char *err, size_t errlen)
{
    store_t *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->n_slots = n_slots;
    s->readonly = true;
    const zc_lmdb_db_t dbs[] = {ZC_LMDB_DB("slots", &s->slots), ZC_LMDB_DB("items", &s->items),
                                ZC_LMDB_DB("dedup", &s->dedup)};
    if (zc_lmdb_open_readonly(&s->env, dir, "cart store", 4, dbs, 3, err, errlen) != 0) {
        free(s);
        return NULL;
    }
    return s;
}

void store_close(store_t **p)
{
    store_t *s = *p;
    if (s == NULL)
        return;
    *p = NULL;
    if (s->txn)
        mdb_txn_abort(s->txn);
    mdb_env_close(s->env);
    free(s);
}

unsigned store_slots(store_t *s) { return s->n_slots; }

int store_usage(store_t *s, uint64_t *used, uint64_t *map)
{
    if (zc_lmdb_usage(s->env, used, map) != 0)
        return -1;
    /* What this iteration wrote is not committed yet: twice its size covers
     * the pages it copies (B-tree paths, overflow pages). */
    *used += 2 * s->pending;
    return 0;
}
bool store_dirty(store_t *s) { return s->modified; }

/* The iteration's write transaction, opened on first use (reads use it too,
 * so they see this iteration's changes). */
static MDB_txn *wtxn(store_t *s)
{
    if (s->txn == NULL &&
        mdb_txn_begin(s->env, NULL, s->readonly ? MDB_RDONLY : 0, &s->txn) != 0)
        s->txn = NULL;
    return s->txn;
}

/* The transaction, for a write (none in a read-only store). */
static MDB_txn *wtxn_mod(store_t *s)
{
    if (s->readonly)
        return NULL;
    MDB_txn *t = wtxn(s);
    if (t)
        s->modified = true;
    return t;
}

int store_commit(store_t *s)
{
    if (s->txn == NULL)
        return 0;
    int rc = 0;
    if (s->modified)
        rc = mdb_txn_commit(s->txn); /* durable on return: env not NOSYNC */
    else
        mdb_txn_abort(s->txn);
    s->txn = NULL;
    s->modified = false;
    s->pending = 0;
    return rc == 0 ? 0 : -1;
}

static void put16(uint8_t *b, uint16_t v)
{
    b[0] = (uint8_t)(v >> 8);
    b[1] = (uint8_t)v;
}

static void put64(uint8_t *b, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        b[i] = (uint8_t)v;
}

static uint64_t get64(const uint8_t *b)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | b[i];
    return v;
}

int store_get_slot(store_t *s, uint16_t slot, store_slot_t *out)
{
    uint8_t key[2];
    put16(key, slot);
    MDB_val k = {2, key}, v;
    memset(out, 0, sizeof *out);
    MDB_txn *t = wtxn(s);
    if (t == NULL)
        return -1;
    int rc = mdb_get(t, s->slots, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return -1;
    zc_rbuf_t r;
    zc_rbuf_init(&r, v.mv_data, v.mv_size);
    uint8_t version = zc_rbuf_u8(&r);
    if (version != 1 && version != SLOT_REC_V)
        return -1;
    zc_rbuf_bytes(&r, out->owner, ZC_SESSION_LEN);
    out->generation = zc_rbuf_u64(&r);
    out->reset_generation = zc_rbuf_u64(&r);
    out->dedup_count = zc_rbuf_u32(&r);
    if (version >= 2) {
        out->dedup_bytes = zc_rbuf_u32(&r);
        out->dedup_trimmed = zc_rbuf_u8(&r) != 0;
    }
    return zc_rbuf_done(&r) ? 0 : -1;
}

static int put_slot(store_t *s, uint16_t slot, const store_slot_t *sl)
{
    uint8_t key[2];
    zc_wbuf_t w;
    put16(key, slot);
    zc_wbuf_init(&w);
    zc_wbuf_u8(&w, SLOT_REC_V);
    zc_wbuf_bytes(&w, sl->owner, ZC_SESSION_LEN);
    zc_wbuf_u64(&w, sl->generation);
    zc_wbuf_u64(&w, sl->reset_generation);
    zc_wbuf_u32(&w, sl->dedup_count);
    zc_wbuf_u32(&w, sl->dedup_bytes);
    zc_wbuf_u8(&w, sl->dedup_trimmed ? 1 : 0);
    MDB_val k = {2, key}, v = {w.len, w.data};
    MDB_txn *t = wtxn_mod(s);
    s->pending += w.len + 16;
    int rc = t && !w.oom ? mdb_put(t, s->slots, &k, &v, 0) : -1;
    zc_wbuf_clear(&w);
    return rc == 0 ? 0 : -1;
}

store_fence_t store_fence(const store_slot_t *sl, const uint8_t session[ZC_SESSION_LEN],
                          uint64_t generation, const char **why)
{
#ifdef ZCART_MUTANT_STALE_GENERATION_ACCEPTED /* chaos mutant: the reset generation passes */
    if (generation < sl->reset_generation) {
#else
    if (generation <= sl->reset_generation) {
#endif
        *why = "generation already reset";
        return STORE_FENCED;
    }
    if (zc_session_is_zero(sl->owner))
        return STORE_ADOPT;
    if (sl->generation == generation && memcmp(sl->owner, session, ZC_SESSION_LEN) == 0)
        return STORE_OWNER;
    *why = generation < sl->generation ? "a newer generation owns the cart"
           : generation > sl->generation ? "the cart still holds an older owner (not reset)"
                                         : "the cart belongs to another session";
    return STORE_FENCED;
}

int store_adopt(store_t *s, uint16_t slot, const uint8_t session[ZC_SESSION_LEN],
                uint64_t generation)
{
    store_slot_t sl;
    if (store_get_slot(s, slot, &sl) != 0)
        return -1;
    memcpy(sl.owner, session, ZC_SESSION_LEN);
    sl.generation = generation;
    sl.dedup_count = 0;
    sl.dedup_bytes = 0;
    sl.dedup_trimmed = false;
    return put_slot(s, slot, &sl);
}

/* items key: slot + product bytes */
static size_t item_key(uint8_t *buf, uint16_t slot, const char *product)
{
    size_t n = strlen(product);
    put16(buf, slot);
    memcpy(buf + 2, product, n);
    return n + 2;
}

int store_units(store_t *s, uint16_t slot, const char *product, uint32_t *units)
{
    uint8_t key[2 + ZC_PRODUCT_MAX];
    MDB_val k = {item_key(key, slot, product), key}, v;
    MDB_txn *t = wtxn(s);
    *units = 0;
    if (t == NULL)
        return -1;
    int rc = mdb_get(t, s->items, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0 || v.mv_size != 4)
        return -1;
    const uint8_t *b = v.mv_data;
    *units = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    return 0;
}

/* Visit every record of `dbi` whose key starts with the slot prefix. */
static int each_in_slot(store_t *s, MDB_dbi dbi, uint16_t slot,
                        int (*fn)(MDB_cursor *c, MDB_val *k, MDB_val *v, void *arg), void *arg)
{
    uint8_t prefix[2];
    put16(prefix, slot);
    MDB_txn *t = wtxn(s);
    MDB_cursor *cur;
    if (t == NULL || mdb_cursor_open(t, dbi, &cur) != 0)
        return -1;
    MDB_val k = {2, prefix}, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE), out = 0;
    while (rc == 0 && k.mv_size >= 2 && memcmp(k.mv_data, prefix, 2) == 0) {
        if ((out = fn(cur, &k, &v, arg)) != 0)
            break;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (rc != 0 && rc != MDB_NOTFOUND)
        out = -1;
    mdb_cursor_close(cur);
    return out < 0 ? -1 : 0;
}

/* An items record: key slot (2 octets) + product, value the quantity (u32
 * big-endian).  False if it is not one. */
static bool decode_item(const MDB_val *k, const MDB_val *v, char product[ZC_PRODUCT_MAX + 1],
                        uint32_t *qty)
{
    size_t n = k->mv_size - 2;
    if (n > ZC_PRODUCT_MAX || v->mv_size != 4)
        return false;
    memcpy(product, (char *)k->mv_data + 2, n);
    product[n] = 0;
    const uint8_t *b = v->mv_data;
    *qty = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    return true;
}

static int add_item(MDB_cursor *c, MDB_val *k, MDB_val *v, void *arg)
{
    (void)c;
    char product[ZC_PRODUCT_MAX + 1];
    uint32_t q;
    if (!decode_item(k, v, product, &q))
        return -1;
    return zc_msg_add_item(arg, product, q) == 0 ? 0 : -1;
}

int store_items(store_t *s, uint16_t slot, zc_msg_t *m)
{
    return each_in_slot(s, s->items, slot, add_item, m);
}

/* store_each_item's callback and its argument, for each_in_slot. */
typedef struct {
    int (*fn)(const char *product, uint32_t qty, void *arg); /* the caller's function */
    void *arg;                                                /* and its argument */
} item_visit_t;

static int visit_item(MDB_cursor *c, MDB_val *k, MDB_val *v, void *arg)
{
    (void)c;
    item_visit_t *iv = arg;
    char product[ZC_PRODUCT_MAX + 1];
    uint32_t q;
    if (!decode_item(k, v, product, &q))
        return -1;
    return iv->fn(product, q, iv->arg) != 0 ? 1 : 0;
}

int store_each_item(store_t *s, uint16_t slot,
                    int (*fn)(const char *product, uint32_t qty, void *arg), void *arg)
{
    item_visit_t iv = {fn, arg};
    return each_in_slot(s, s->items, slot, visit_item, &iv);
}

static int count_one(MDB_cursor *c, MDB_val *k, MDB_val *v, void *arg)
{
    (void)c;
    (void)k;
    (void)v;
    (*(uint32_t *)arg)++;
    return 0;
}

int store_count_items(store_t *s, uint16_t slot, uint32_t *n)
{
    *n = 0;
    return each_in_slot(s, s->items, slot, count_one, n);
}

store_change_t store_change(store_t *s, uint16_t slot, const char *product, int64_t delta)
{
    uint32_t have;
    if (store_units(s, slot, product, &have) != 0)
        return STORE_CHANGE_ERROR;
    int64_t now = (int64_t)have + delta;
    if (now < 0)
        return STORE_CHANGE_SHORT;
    if (now > 0xffffffffll)
        return STORE_CHANGE_ERROR;
    uint8_t key[2 + ZC_PRODUCT_MAX];
    MDB_val k = {item_key(key, slot, product), key};
    MDB_txn *t = wtxn_mod(s);
    if (t == NULL)
        return STORE_CHANGE_ERROR;
    if (now == 0) {
        int rc = mdb_del(t, s->items, &k, NULL);
        return rc == 0 || rc == MDB_NOTFOUND ? STORE_CHANGED : STORE_CHANGE_ERROR;
    }
    uint8_t b[4] = {(uint8_t)(now >> 24), (uint8_t)(now >> 16), (uint8_t)(now >> 8), (uint8_t)now};
    MDB_val v = {4, b};
    s->pending += k.mv_size + 4 + 16;
    return mdb_put(t, s->items, &k, &v, 0) == 0 ? STORE_CHANGED : STORE_CHANGE_ERROR;
}

void store_op_key(uint8_t key[STORE_OP_KEY_LEN], uint16_t slot, uint64_t seq)
{
    put16(key, slot);
    put64(key + 2, seq);
}

/* Lowest seq kept for the slot; 1 if none. */
static int lowest_seq(store_t *s, uint16_t slot, uint64_t *seq)
{
    uint8_t prefix[2];
    put16(prefix, slot);
    MDB_txn *t = wtxn(s);
    MDB_cursor *cur;
    if (t == NULL || mdb_cursor_open(t, s->dedup, &cur) != 0)
        return -1;
    MDB_val k = {2, prefix}, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    int out = 1;
    if (rc == 0 && k.mv_size == STORE_OP_KEY_LEN && memcmp(k.mv_data, prefix, 2) == 0) {
        *seq = get64((uint8_t *)k.mv_data + 2);
        out = 0;
    } else if (rc != 0 && rc != MDB_NOTFOUND) {
        out = -1;
    }
    mdb_cursor_close(cur);
    return out;
}

store_dedup_t store_dedup_get(store_t *s, uint16_t slot, uint64_t seq, store_answer_t *out)
{
    uint8_t key[STORE_OP_KEY_LEN];
    store_op_key(key, slot, seq);
    MDB_val k = {STORE_OP_KEY_LEN, key}, v;
    MDB_txn *t = wtxn(s);
    memset(out, 0, sizeof *out);
    if (t == NULL)
        return STORE_DEDUP_ERROR;
    int rc = mdb_get(t, s->dedup, &k, &v);
    if (rc == MDB_NOTFOUND) {
        store_slot_t sl;
        uint64_t low;
        if (store_get_slot(s, slot, &sl) != 0)
            return STORE_DEDUP_ERROR;
        if ((sl.dedup_count >= STORE_DEDUP_WINDOW || sl.dedup_trimmed) &&
            lowest_seq(s, slot, &low) == 0 && seq < low)
            return STORE_DEDUP_OUTSIDE;
        return STORE_DEDUP_NEW;
    }
    if (rc != 0)
        return STORE_DEDUP_ERROR;
    zc_rbuf_t r;
    zc_rbuf_init(&r, v.mv_data, v.mv_size);
    out->status = zc_rbuf_u8(&r);
    zc_rbuf_str(&r, out->detail, sizeof out->detail);
    out->n_items = zc_rbuf_u16(&r);
    if (r.err || out->n_items > ZC_ITEMS_MAX)
        return STORE_DEDUP_ERROR;
    out->items = calloc(out->n_items ? out->n_items : 1, sizeof *out->items);
    if (out->items == NULL)
        return STORE_DEDUP_ERROR;
    for (unsigned i = 0; i < out->n_items; i++) {
        zc_rbuf_str(&r, out->items[i].product, sizeof out->items[i].product);
        out->items[i].qty = zc_rbuf_u32(&r);
    }
    if (!zc_rbuf_done(&r)) {
        store_answer_clear(out);
        return STORE_DEDUP_ERROR;
    }
    return STORE_DEDUP_FOUND;
}

void store_answer_clear(store_answer_t *a)
{
    free(a->items);
    a->items = NULL;
    a->n_items = 0;
}

int store_dedup_put(store_t *s, uint16_t slot, uint64_t seq, const zc_msg_t *answer)
{
    store_slot_t sl;
    if (store_get_slot(s, slot, &sl) != 0)
        return -1;
    uint8_t key[STORE_OP_KEY_LEN];
    zc_wbuf_t w;
    store_op_key(key, slot, seq);
    zc_wbuf_init(&w);
    zc_wbuf_u8(&w, answer->status);
    zc_wbuf_str(&w, answer->detail);
    zc_wbuf_u16(&w, answer->n_items);
    for (unsigned i = 0; i < answer->n_items; i++) {
        zc_wbuf_str(&w, answer->items[i].product);
        zc_wbuf_u32(&w, answer->items[i].qty);
    }
    MDB_val k = {STORE_OP_KEY_LEN, key}, v = {w.len, w.data};
    MDB_txn *t = wtxn_mod(s);
    int rc = t && !w.oom ? mdb_put(t, s->dedup, &k, &v, MDB_NOOVERWRITE) : -1;
    uint32_t added = (uint32_t)w.len;
    s->pending += added + 16;
    zc_wbuf_clear(&w);
    if (rc == MDB_KEYEXIST)
        return 0;
    if (rc != 0)
        return -1;
    sl.dedup_count++;
    sl.dedup_bytes += added;
    /* Drop the lowest seqs past the window or the byte budget; the newest
     * record always stays. */
    while (sl.dedup_count > STORE_DEDUP_WINDOW ||
           (sl.dedup_bytes > STORE_DEDUP_BYTES && sl.dedup_count > 1)) {
        uint64_t low;
        MDB_val old;
        if (lowest_seq(s, slot, &low) != 0)
            return -1;
        store_op_key(key, slot, low);
        MDB_val lk = {STORE_OP_KEY_LEN, key};
        if (mdb_get(t, s->dedup, &lk, &old) != 0)
            return -1;
        if (sl.dedup_count <= STORE_DEDUP_WINDOW)
            sl.dedup_trimmed = true;
        sl.dedup_bytes -= old.mv_size < sl.dedup_bytes ? (uint32_t)old.mv_size : sl.dedup_bytes;
        if (mdb_del(t, s->dedup, &lk, NULL) != 0)
            return -1;
        sl.dedup_count--;
    }
    return put_slot(s, slot, &sl);
}

static int del_here(MDB_cursor *c, MDB_val *k, MDB_val *v, void *arg)
{
    (void)k;
    (void)v;
    if (mdb_cursor_del(c, 0) != 0) /* fails in a read-only store */
        return -1;
    ((store_t *)arg)->modified = true;
    return 0;
}

store_reset_t store_reset(store_t *s, uint16_t slot, uint64_t generation)
{
    store_slot_t sl;
    if (store_get_slot(s, slot, &sl) != 0)
        return STORE_RESET_ERROR;
    if (!zc_session_is_zero(sl.owner) && generation < sl.generation)
        return STORE_RESET_IGNORED;
    if (
#ifndef ZCART_MUTANT_RESET_KEEPS_ITEMS /* chaos mutant: a reset that leaves the items */
        each_in_slot(s, s->items, slot, del_here, s) != 0 ||
#endif
        each_in_slot(s, s->dedup, slot, del_here, s) != 0)
        return STORE_RESET_ERROR;
    memset(sl.owner, 0, ZC_SESSION_LEN);
    sl.generation = 0;
    sl.dedup_count = 0;
    sl.dedup_bytes = 0;
    sl.dedup_trimmed = false;
    if (generation > sl.reset_generation)
        sl.reset_generation = generation;
    return put_slot(s, slot, &sl) == 0 ? STORE_RESET_DONE : STORE_RESET_ERROR;
}
