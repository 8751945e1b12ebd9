/* store: see store.h.  Keys are big-endian so LMDB order is (slot, seq)
 * order, which makes "lowest seq of a slot" a single cursor seek.
 *
 * Durability (docs/architecture.md, "Durability"): every put and delete of
 * the open write transaction is also written to `journal` as an
 * after-image.  store_commit appends the journal to the write-ahead log
 * (lib/wal.c: one write, one fdatasync) and keeps a copy in `since`; the
 * LMDB transaction stays open.  store_checkpoint commits it the ordinary
 * way (LMDB with full sync: data pages, then the meta page) and rewinds the
 * log.  A log record is tagged with the id of the LMDB transaction its
 * changes belong to, so that opening the store replays exactly the records
 * the last durable LMDB commit does not hold. */
#include "cart/store.h"

#include "lib/lmdbx.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/wal.h"

#define SLOT_REC_V 2 /* 2 added dedup_bytes and dedup_trimmed; 1 still decodes */

/* A journal entry: op, database, key, and (puts) the value. */
enum { OP_PUT = 1, OP_DEL = 2 };
enum { DB_SLOTS = 0, DB_ITEMS = 1, DB_DEDUP = 2, DB_COUNT };

struct store {
    MDB_env *env;     /* environment (owned), opened with full sync */
    MDB_dbi dbi[DB_COUNT]; /* slots: slot records; items: slot+product -> units;
                              dedup: slot+seq -> answer */
    MDB_txn *txn;     /* the open transaction (it spans iterations until a
                         checkpoint), NULL if none */
    unsigned n_slots; /* slots hosted */
    bool readonly;    /* opened by store_open_readonly: read transactions only */
    uint64_t pending; /* bytes put since the checkpoint (store_usage counts them twice) */
    zc_wal_t *wal;    /* the write-ahead log (owned); NULL read-only */
    zc_wbuf_t journal; /* this iteration's changes, not logged yet */
    zc_wbuf_t since;   /* the changes logged since the checkpoint (redo after
                          a failed commit) */
    bool unckpt;      /* the transaction holds logged changes */
    size_t map_size;  /* the map's size (a read-write store) */
    char tmpdir[512]; /* read-only open of a store with a log to replay: the
                         private copy read instead ("" if none) */
    store_stats_t stats; /* counters (store_stats) */
};

static MDB_txn *wtxn(store_t *s);
static int redo(store_t *s, bool keep_journal);

/* Apply one journal's entries (a log record's payload) to t.  0 or -1. */
static int apply_journal(store_t *s, MDB_txn *t, const uint8_t *p, size_t len)
{
    zc_rbuf_t r;
    zc_rbuf_init(&r, p, len);
    while (r.pos < r.len && !r.err) {
        uint8_t op = zc_rbuf_u8(&r), db = zc_rbuf_u8(&r);
        uint16_t kl = zc_rbuf_u16(&r);
        if (r.err || db >= DB_COUNT || kl > r.len - r.pos)
            return -1;
        MDB_val k = {kl, (void *)(r.data + r.pos)};
        r.pos += kl;
        int rc;
        if (op == OP_PUT) {
            uint32_t vl = zc_rbuf_u32(&r);
            if (r.err || vl > r.len - r.pos)
                return -1;
            MDB_val v = {vl, (void *)(r.data + r.pos)};
            r.pos += vl;
            rc = mdb_put(t, s->dbi[db], &k, &v, 0);
        } else if (op == OP_DEL) {
            rc = mdb_del(t, s->dbi[db], &k, NULL);
            if (rc == MDB_NOTFOUND)
                rc = 0;
        } else {
            return -1;
        }
        if (rc != 0)
            return -1;
    }
    return r.err ? -1 : 0;
}

static void journal_entry(store_t *s, uint8_t op, unsigned db, const MDB_val *k, const MDB_val *v)
{
    zc_wbuf_u8(&s->journal, op);
    zc_wbuf_u8(&s->journal, (uint8_t)db);
    zc_wbuf_u16(&s->journal, (uint16_t)k->mv_size);
    zc_wbuf_bytes(&s->journal, k->mv_data, k->mv_size);
    if (op == OP_PUT) {
        zc_wbuf_u32(&s->journal, (uint32_t)v->mv_size);
        zc_wbuf_bytes(&s->journal, v->mv_data, v->mv_size);
    }
}

/* mdb_put in the open transaction, journaled when it took effect. */
static int jput(store_t *s, MDB_txn *t, unsigned db, MDB_val *k, MDB_val *v, unsigned flags)
{
    int rc = mdb_put(t, s->dbi[db], k, v, flags);
    if (rc == 0)
        journal_entry(s, OP_PUT, db, k, v);
    return rc;
}

/* mdb_del, journaled when it took effect. */
static int jdel(store_t *s, MDB_txn *t, unsigned db, MDB_val *k)
{
    int rc = mdb_del(t, s->dbi[db], k, NULL);
    if (rc == 0)
        journal_entry(s, OP_DEL, db, k, NULL);
    return rc;
}

/* A log record's visit at open: apply it if the LMDB commit does not hold it. */
typedef struct {
    store_t *s;          /* the store */
    MDB_txn *txn;        /* where records are applied (opened on the first) */
    uint64_t last_txnid; /* the LMDB commit's transaction id */
    uint64_t records;    /* records applied */
    uint64_t bytes;      /* their payloads' bytes */
} replay_t;

static int replay_record(uint64_t tag, const uint8_t *p, size_t len, void *arg)
{
    replay_t *rp = arg;
    if (tag <= rp->last_txnid)
        return 0; /* the checkpoint holds it */
    if (rp->txn == NULL && mdb_txn_begin(rp->s->env, NULL, 0, &rp->txn) != 0) {
        rp->txn = NULL;
        return -1;
    }
    if (apply_journal(rp->s, rp->txn, p, len) != 0)
        return -1;
    rp->records++;
    rp->bytes += len;
    return 0;
}

/* Records of the log the LMDB commit does not hold, applied in a new
 * transaction and committed.  0 or -1 with err. */
static int replay_log(store_t *s, zc_wal_t *wal, char *err, size_t errlen)
{
    MDB_envinfo info;
    replay_t rp = {s, NULL, 0, 0, 0};
    if (mdb_env_info(s->env, &info) != 0) {
        snprintf(err, errlen, "lmdb: cannot read the environment's info");
        return -1;
    }
    rp.last_txnid = info.me_last_txnid;
    int rc = zc_wal_each(wal, replay_record, &rp);
    if (rc == 0 && rp.txn != NULL)
        rc = mdb_txn_commit(rp.txn) == 0 ? 0 : -1;
    else if (rp.txn != NULL)
        mdb_txn_abort(rp.txn);
    if (rc != 0) {
        snprintf(err, errlen, "replaying the write-ahead log (%" PRIu64 " records applied) failed",
                 rp.records);
        return -1;
    }
    s->stats.replayed_records = rp.records;
    s->stats.replayed_bytes = rp.bytes;
    return 0;
}

static void join(char *out, size_t cap, const char *dir, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

store_t *store_open(const char *dir, unsigned n_slots, size_t map_size, size_t wal_size, char *err,
                    size_t errlen)
{
    store_t *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->n_slots = n_slots;
    const zc_lmdb_db_t dbs[] = {ZC_LMDB_DB("slots", &s->dbi[DB_SLOTS]),
                                ZC_LMDB_DB("items", &s->dbi[DB_ITEMS]),
                                ZC_LMDB_DB("dedup", &s->dbi[DB_DEDUP])};
    s->map_size = map_size ? map_size : STORE_MAP_DEFAULT;
    /* No NOSYNC: a checkpoint is durable when it returns. */
    if (zc_lmdb_open(&s->env, dir, 4, map_size ? map_size : STORE_MAP_DEFAULT, MDB_NOTLS, dbs, 3,
                     err, errlen) != 0) {
        free(s);
        return NULL;
    }
    char path[4096];
    join(path, sizeof path, dir, STORE_WAL_NAME);
    if (wal_size == 0)
        wal_size = STORE_WAL_SIZE;
    s->wal = zc_wal_open(path, wal_size, false, err, errlen);
    if (s->wal == NULL || replay_log(s, s->wal, err, errlen) != 0) {
        store_abandon(&s);
        return NULL;
    }
    zc_wal_rewind(s->wal); /* the LMDB commit holds everything now */
    if (zc_wal_size(s->wal) != wal_size) { /* --wal-size changed: a new log */
        zc_wal_close(&s->wal);
        if (unlink(path) != 0) {
            snprintf(err, errlen, "replacing %s: %s", path, strerror(errno));
            store_abandon(&s);
            return NULL;
        }
        if ((s->wal = zc_wal_open(path, wal_size, false, err, errlen)) == NULL) {
            store_abandon(&s);
            return NULL;
        }
    }
    return s;
}

/* A read-only open of a store whose log holds changes its LMDB commit does
 * not (a node killed since its last checkpoint): a private copy of the
 * environment, in a temporary directory, with the log replayed into it.
 * The store's own files are not touched. */
static int open_replayed_copy(store_t *s, zc_wal_t *wal, char *err, size_t errlen)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(s->tmpdir, sizeof s->tmpdir, "%s/zcart-cart-dump-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(s->tmpdir) == NULL) {
        snprintf(err, errlen, "mkdtemp %s: %s", s->tmpdir, strerror(errno));
        s->tmpdir[0] = 0;
        return -1;
    }
    MDB_envinfo info;
    int rc = mdb_env_info(s->env, &info);
    if (rc == 0)
        rc = mdb_env_copy(s->env, s->tmpdir);
    mdb_env_close(s->env);
    s->env = NULL;
    if (rc != 0) {
        snprintf(err, errlen, "copying the store to %s: %s", s->tmpdir, mdb_strerror(rc));
        return -1;
    }
    const zc_lmdb_db_t dbs[] = {ZC_LMDB_DB("slots", &s->dbi[DB_SLOTS]),
                                ZC_LMDB_DB("items", &s->dbi[DB_ITEMS]),
                                ZC_LMDB_DB("dedup", &s->dbi[DB_DEDUP])};
    if (zc_lmdb_open(&s->env, s->tmpdir, 4, info.me_mapsize, MDB_NOTLS | MDB_NOSYNC, dbs, 3, err,
                     errlen) != 0)
        return -1;
    return replay_log(s, wal, err, errlen);
}

static int count_newer(uint64_t tag, const uint8_t *p, size_t len, void *arg)
{
    (void)p;
    (void)len;
    uint64_t *last = arg;
    return tag > *last ? 1 : 0;
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
    const zc_lmdb_db_t dbs[] = {ZC_LMDB_DB("slots", &s->dbi[DB_SLOTS]),
                                ZC_LMDB_DB("items", &s->dbi[DB_ITEMS]),
                                ZC_LMDB_DB("dedup", &s->dbi[DB_DEDUP])};
    if (zc_lmdb_open_readonly(&s->env, dir, "cart store", 4, dbs, 3, err, errlen) != 0) {
        free(s);
        return NULL;
    }
    char path[4096];
    join(path, sizeof path, dir, STORE_WAL_NAME);
    zc_wal_t *wal = zc_wal_open(path, 0, true, err, errlen);
    MDB_envinfo info;
    int rc = wal == NULL || mdb_env_info(s->env, &info) != 0 ? -1 : 0;
    if (rc == 0 && zc_wal_each(wal, count_newer, &info.me_last_txnid) == 1)
        rc = open_replayed_copy(s, wal, err, errlen);
    else if (rc != 0 && wal != NULL)
        snprintf(err, errlen, "lmdb: cannot read the environment's info");
    zc_wal_close(&wal);
    if (rc != 0) {
        store_close(&s);
        return NULL;
    }
    return s;
}

/* Close without a checkpoint; a read-only store's private copy is removed. */
void store_abandon(store_t **p)
{
    store_t *s = *p;
    if (s == NULL)
        return;
    *p = NULL;
    if (s->txn)
        mdb_txn_abort(s->txn);
    if (s->env)
        mdb_env_close(s->env);
    zc_wal_close(&s->wal);
    if (s->tmpdir[0]) {
        char path[1024];
        join(path, sizeof path, s->tmpdir, "data.mdb");
        unlink(path);
        join(path, sizeof path, s->tmpdir, "lock.mdb");
        unlink(path);
        rmdir(s->tmpdir);
    }
    zc_wbuf_clear(&s->journal);
    zc_wbuf_clear(&s->since);
    free(s);
}

void store_close(store_t **p)
{
    store_t *s = *p;
    /* What store_commit did not make durable is dropped, as a crash would;
     * the rest is checkpointed (on failure the log still holds it). */
    if (s != NULL && !s->readonly && (s->journal.len == 0 || redo(s, false) == 0))
        store_checkpoint(s);
    store_abandon(p);
}

unsigned store_slots(store_t *s) { return s->n_slots; }

int store_usage(store_t *s, uint64_t *used, uint64_t *map)
{
    if (zc_lmdb_usage(s->env, used, map) != 0)
        return -1;
    /* What is not checkpointed yet is not in LMDB's count: twice its size
     * covers the pages it copies (B-tree paths, overflow pages). */
    *used += 2 * s->pending;
    return 0;
}
bool store_dirty(store_t *s) { return s->journal.len > 0; }

void store_stats(store_t *s, store_stats_t *out)
{
    *out = s->stats;
    out->log_used = s->wal ? zc_wal_used(s->wal) : 0;
    out->log_size = s->wal ? zc_wal_size(s->wal) : 0;
}

/* The open transaction, begun on first use (reads use it too, so they see
 * every change not checkpointed yet). */
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
    return wtxn(s);
}

/* After the open transaction was lost (a failed commit aborts it): a new
 * one holding every logged change since the checkpoint, and this
 * iteration's journal too when keep_journal (else the journal is dropped).
 * 0, or STORE_LOST when the changes cannot be applied again. */
static int redo(store_t *s, bool keep_journal)
{
    if (s->txn != NULL)
        mdb_txn_abort(s->txn);
    s->txn = NULL;
    if (!keep_journal)
        zc_wbuf_reset(&s->journal);
    s->unckpt = s->since.len > 0;
    if (s->since.len == 0 && s->journal.len == 0)
        return 0;
    if (s->since.oom || s->journal.oom || wtxn(s) == NULL ||
        apply_journal(s, s->txn, s->since.data, s->since.len) != 0 ||
        apply_journal(s, s->txn, s->journal.data, s->journal.len) != 0)
        return STORE_LOST;
    return 0;
}

int store_checkpoint(store_t *s)
{
    if (s->readonly || s->txn == NULL)
        return 0;
    if (!s->unckpt && s->journal.len == 0) {
        mdb_txn_abort(s->txn); /* reads only */
        s->txn = NULL;
        return 0;
    }
    uint64_t t0 = zc_mono_us();
    int rc = mdb_txn_commit(s->txn); /* durable on return: env not NOSYNC */
    s->txn = NULL;
    if (rc != 0) {
        s->stats.checkpoint_failures++;
        return redo(s, true) == 0 ? -1 : STORE_LOST;
    }
    zc_hist_observe(&s->stats.checkpoint_lat, zc_mono_us() - t0);
    s->stats.checkpoints++;
    zc_wal_rewind(s->wal);
    zc_wbuf_reset(&s->journal);
    zc_wbuf_reset(&s->since);
    s->unckpt = false;
    s->pending = 0;
    return 0;
}

int store_commit(store_t *s)
{
    if (s->txn == NULL)
        return 0;
    if (s->journal.len == 0) {
        if (!s->unckpt) { /* reads only */
            mdb_txn_abort(s->txn);
            s->txn = NULL;
        }
        return 0;
    }
    int rc = s->journal.oom ? 1 : zc_wal_append(s->wal, mdb_txn_id(s->txn), s->journal.data,
                                                 s->journal.len);
    if (rc == 0) {
        s->stats.log_records++;
        zc_wbuf_bytes(&s->since, s->journal.data, s->journal.len);
        zc_wbuf_reset(&s->journal);
        s->unckpt = true;
        /* Half the log used, or enough written that store_usage's estimate
         * of it would matter against the map: checkpoint now, before an
         * iteration finds the log full (a failure leaves everything
         * logged: it is durable). */
        if ((zc_wal_used(s->wal) > zc_wal_size(s->wal) / 2 || s->pending > s->map_size / 32) &&
            store_checkpoint(s) == STORE_LOST)
            return STORE_LOST;
        return 0;
    }
    if (rc == 1 && store_checkpoint(s) == 0) /* does not fit: the checkpoint makes it durable */
        return 0;
    /* Not durable: this iteration's changes are undone, the rest stays. */
    s->stats.log_failures++;
    return redo(s, false) == 0 ? -1 : STORE_LOST;
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
    int rc = mdb_get(t, s->dbi[DB_SLOTS], &k, &v);
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
    int rc = t && !w.oom ? jput(s, t, DB_SLOTS, &k, &v, 0) : -1;
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
    int rc = mdb_get(t, s->dbi[DB_ITEMS], &k, &v);
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
    return each_in_slot(s, s->dbi[DB_ITEMS], slot, add_item, m);
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
    return each_in_slot(s, s->dbi[DB_ITEMS], slot, visit_item, &iv);
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
    return each_in_slot(s, s->dbi[DB_ITEMS], slot, count_one, n);
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
        int rc = jdel(s, t, DB_ITEMS, &k);
        return rc == 0 || rc == MDB_NOTFOUND ? STORE_CHANGED : STORE_CHANGE_ERROR;
    }
    uint8_t b[4] = {(uint8_t)(now >> 24), (uint8_t)(now >> 16), (uint8_t)(now >> 8), (uint8_t)now};
    MDB_val v = {4, b};
    s->pending += k.mv_size + 4 + 16;
    return jput(s, t, DB_ITEMS, &k, &v, 0) == 0 ? STORE_CHANGED : STORE_CHANGE_ERROR;
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
    if (t == NULL || mdb_cursor_open(t, s->dbi[DB_DEDUP], &cur) != 0)
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
    int rc = mdb_get(t, s->dbi[DB_DEDUP], &k, &v);
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
    int rc = t && !w.oom ? jput(s, t, DB_DEDUP, &k, &v, MDB_NOOVERWRITE) : -1;
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
        if (mdb_get(t, s->dbi[DB_DEDUP], &lk, &old) != 0)
            return -1;
        if (sl.dedup_count <= STORE_DEDUP_WINDOW)
            sl.dedup_trimmed = true;
        sl.dedup_bytes -= old.mv_size < sl.dedup_bytes ? (uint32_t)old.mv_size : sl.dedup_bytes;
        if (jdel(s, t, DB_DEDUP, &lk) != 0)
            return -1;
        sl.dedup_count--;
    }
    return put_slot(s, slot, &sl);
}

/* Delete the cursor's record, journaled (its key copied first: the
 * deletion may move what k points at). */
static int del_here(MDB_cursor *c, MDB_val *k, MDB_val *v, void *arg)
{
    (void)v;
    store_t *s = arg;
    uint8_t key[2 + ZC_PRODUCT_MAX > STORE_OP_KEY_LEN ? 2 + ZC_PRODUCT_MAX : STORE_OP_KEY_LEN];
    if (k->mv_size > sizeof key)
        return -1;
    memcpy(key, k->mv_data, k->mv_size);
    MDB_val kk = {k->mv_size, key};
    if (s->readonly || mdb_cursor_del(c, 0) != 0) /* fails in a read-only store */
        return -1;
    journal_entry(s, OP_DEL, mdb_cursor_dbi(c) == s->dbi[DB_ITEMS] ? DB_ITEMS : DB_DEDUP, &kk, NULL);
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
        each_in_slot(s, s->dbi[DB_ITEMS], slot, del_here, s) != 0 ||
#endif
        each_in_slot(s, s->dbi[DB_DEDUP], slot, del_here, s) != 0)
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
