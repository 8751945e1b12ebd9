/* fsm: the apply switch, snapshot and restore.  See fsm.h for the rules.
 *
 * One function per command, each a small state transition over the records
 * of state.h, all inside one LMDB write transaction that also records the
 * entry's index (shared with the entries applied just before and after it:
 * "batching" below).  KO outcomes (no free cart, stale return, ...) change
 * nothing but are still "applied": the index advances, so every replica
 * agrees on what the entry did.
 *
 * ZC_FSM_MUTANT (defined only by tests/sim/CMakeLists.txt for its mutant
 * builds) compiles in a deliberate bug, so the simulation can show that its
 * checks catch one; the product never defines it. */
#include "replication/fsm.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/clock.h"
#include "lib/log.h"
#include "proto/status.h"
#include "replication/state_txn.h"

/* The off-loop snapshot (see "snapshots" below). */
typedef enum {
    SNAP_IDLE = 0, /* no snapshot in progress */
    SNAP_OPEN,     /* read transaction open at the snapshot's index, not yet read */
    SNAP_BUILDING, /* a worker thread is serializing from it */
    SNAP_BUILT,    /* transaction closed; the bytes are raft's until finalize */
    SNAP_N
} snap_state_t;

struct zc_fsm {
    zc_state_t *state;             /* the LMDB state (owned) */
    struct raft *raft;             /* raft instance reporting entry indexes, not owned */
    uint64_t applied_index;        /* cache of meta.applied_index */
    zc_cmd_result_t result;        /* result of the last apply, handed to raft */
    pthread_mutex_t snap_lock;     /* guards the snap_* fields and stats below */
    pthread_cond_t snap_cond;      /* signalled when a build leaves SNAP_BUILDING */
    snap_state_t snap_state;       /* where the off-loop snapshot is (transition table) */
    MDB_txn *snap_txn;             /* SNAP_OPEN/BUILDING: the read txn it is built from */
    uint64_t snap_index;           /* SNAP_OPEN..BUILT: the applied index that txn sees */
    zc_wbuf_t snap_bytes;          /* SNAP_BUILT: the serialized snapshot */
    struct raft_buffer snap_buf;   /* SNAP_BUILT: raft's view of snap_bytes */
    zc_fsm_snapshot_stats_t stats; /* snapshot counters (zc_fsm_snapshot_stats) */
    char apply_error[128];         /* why the last failed apply failed (LMDB's words) */
    unsigned batch_max;            /* entries per write transaction at most ("batching") */
    unsigned batch_n;              /* entries in the open batch (state->batch) */
    zc_wbuf_t batch_log;           /* their u64 index and lstr bytes, to apply them again */
    uint64_t committed_index;      /* the last entry committed to LMDB (<= applied_index) */
    bool failed;                   /* a batch was lost: every later apply and flush fails */
    zc_fsm_batch_stats_t stats_batch; /* batch counters (zc_fsm_batch_stats) */
};

static int commit_batch(zc_fsm_t *f);
static void drop_batch(zc_fsm_t *f);

zc_fsm_t *zc_fsm_new(const char *dir, size_t map_size, char *err, size_t errlen)
{
    zc_fsm_t *f = calloc(1, sizeof *f);
    if (f == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    f->state = zc_state_open(dir, map_size, err, errlen);
    if (f->state == NULL) {
        free(f);
        return NULL;
    }
    if (zc_state_ensure_counts(f->state) != 0 ||
        (zc_state_meta(f->state, "index_v") != ZC_STATE_INDEX_V &&
         zc_state_rebuild_indexes(f->state) != 0)) {
        snprintf(err, errlen, "%s: could not count the sessions of the state", dir);
        zc_state_close(&f->state);
        free(f);
        return NULL;
    }
    f->applied_index = zc_state_meta(f->state, "applied_index");
    f->committed_index = f->applied_index;
    f->batch_max = 1;
    pthread_mutex_init(&f->snap_lock, NULL);
    pthread_cond_init(&f->snap_cond, NULL);
    zc_wbuf_init(&f->snap_bytes);
    zc_wbuf_init(&f->batch_log);
    return f;
}

void zc_fsm_destroy(zc_fsm_t **p)
{
    zc_fsm_t *f = *p;
    if (f == NULL)
        return;
    *p = NULL;
    if (commit_batch(f) != 0) /* else the restart applies them again from the log */
        zc_warn("closing: the last %u applied entries not committed", f->batch_n);
    drop_batch(f);
    zc_fsm_snapshot_end(f); /* waits for a build still running (see its rule) */
    zc_state_close(&f->state);
    zc_wbuf_clear(&f->batch_log);
    pthread_cond_destroy(&f->snap_cond);
    pthread_mutex_destroy(&f->snap_lock);
    free(f);
}

zc_state_t *zc_fsm_state(zc_fsm_t *f) { return f->state; }
uint64_t zc_fsm_applied_index(zc_fsm_t *f) { return f->applied_index; }

/* --- one function per command --- */

static int apply_register(zc_fsm_t *f, MDB_txn *t, const zc_cmd_t *c, zc_cmd_result_t *out)
{
    zc_state_t *s = f->state;
    uint64_t next_gen = zc_state_txn_meta(s, t, "next_gen");
    if (next_gen == 0)
        next_gen = 1;
    for (unsigned i = 0; i < c->reg.n; i++) {
        const zc_cmd_slot_t *sl = &c->reg.slots[i];
        /* New assignments must outrank anything the node has seen, or the
         * node would fence them. */
        if (sl->generation >= next_gen)
            next_gen = sl->generation + 1;
        zc_cart_rec_t cart;
        char id[ZC_CART_MAX + 1];
        snprintf(id, sizeof id, "%s.%u", c->reg.node, sl->slot);
        int rc = zc_state_txn_get_cart(s, t, id, &cart);
        if (rc < 0)
            return -1;
        if (rc == 0) {
            /* Already registered: the registry is authoritative -- except
             * for a FREE cart whose node holds something newer than the
             * registry knows of (a state restored from an older backup, or
             * recovered from a replica that missed the last commands):
             * handing it out as is would be fenced, so it drains first,
             * like a dirty new cart. */
            if (cart.state == ZC_CART_FREE && sl->dirty && sl->generation > cart.generation) {
                if (zc_state_txn_free_take(s, t, &cart) != 0)
                    return -1;
                cart.state = ZC_CART_DRAINING;
                cart.generation = sl->generation;
                cart.since_ms = c->time_ms;
                if (zc_state_txn_put_cart(s, t, &cart) != 0)
                    return -1;
                out->moved++;
            }
            continue;
        }
        memset(&cart, 0, sizeof cart);
        zc_breaker_init(&cart.breaker);
        snprintf(cart.id, sizeof cart.id, "%s", id);
        snprintf(cart.node, sizeof cart.node, "%s", c->reg.node);
        cart.slot = sl->slot;
        cart.generation = sl->generation;
        cart.since_ms = c->time_ms;
        if (sl->dirty) {
            /* Holds an owner or items from before: reset it before use. */
            cart.state = ZC_CART_DRAINING;
        } else {
            cart.state = ZC_CART_FREE;
            if (zc_state_txn_free_push(s, t, &cart) != 0)
                return -1;
        }
        if (zc_state_txn_put_cart(s, t, &cart) != 0)
            return -1;
        zc_state_txn_cart_added(s);
        out->count++;
    }
    out->status = ZC_OK;
    if (zc_state_txn_add_meta(s, t, "carts_total", out->count) != 0)
        return -1;
    return zc_state_txn_set_meta(s, t, "next_gen", next_gen);
}

/* Find the first FREE cart in free-list order. 1 if none. */
/* The first cart in free-list order whose breaker is CLOSED: 0 found, 1
 * none, -1 storage error.  A free cart with an open breaker keeps its place
 * in the list and is handed out once its breaker closes again. */
static int first_free(zc_state_t *s, MDB_txn *t, zc_cart_rec_t *out)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = 1;
    if (mdb_cursor_open(t, s->free, &cur) != 0)
        return -1;
    for (int op = MDB_FIRST; rc == 1 && mdb_cursor_get(cur, &k, &v, op) == 0; op = MDB_NEXT) {
        char id[ZC_CART_MAX + 1];
        size_t n = v.mv_size < ZC_CART_MAX ? v.mv_size : ZC_CART_MAX;
        memcpy(id, v.mv_data, n);
        id[n] = 0;
        if (zc_state_txn_get_cart(s, t, id, out) != 0)
            rc = -1;
        else if (out->breaker.state == ZC_BRK_CLOSED)
            rc = 0;
    }
    mdb_cursor_close(cur);
    return rc;
}

static int apply_assign(zc_fsm_t *f, MDB_txn *t, const zc_cmd_t *c, zc_cmd_result_t *out)
{
    zc_state_t *s = f->state;
    zc_session_rec_t sess;
    int rc = zc_state_txn_get_session(s, t, c->assign.session, &sess);
    if (rc < 0)
        return -1;
    if (rc == 0) {
        /* Known session: a racing or retried first request.  Same answer. */
        snprintf(out->cart, sizeof out->cart, "%s", sess.cart);
        out->generation = sess.generation;
        out->status = sess.state == ZC_SESS_LIVE     ? ZC_OK
                      : sess.state == ZC_SESS_CLOSED ? ZC_SESSION_CLOSED
                                                     : ZC_SESSION_EXPIRED;
        return 0;
    }
    /* The storage limit: the same counters and the same limit (carried in
     * the entry) on every replica, so every replica refuses at the same
     * entry; existing sessions never meet it. */
    if (c->assign.max_records != 0 && zc_state_txn_meta(s, t, "sessions_live") +
                                              zc_state_txn_meta(s, t, "sessions_ended") +
                                              zc_state_txn_meta(s, t, "carts_total") >=
                                          c->assign.max_records) {
        out->status = ZC_STORAGE_FULL;
        return 0;
    }
    zc_cart_rec_t cart;
    rc = c->assign.placement == ZC_PLACE_LEAST_LOADED ? zc_state_txn_least_loaded(s, t, &cart)
                                                      : first_free(s, t, &cart);
    if (rc < 0)
        return -1;
    if (rc == 1) {
        out->status = ZC_NO_FREE_CART;
        return 0;
    }
    uint64_t gen = zc_state_txn_meta(s, t, "next_gen");
    if (gen == 0)
        gen = 1;
#if ZC_FSM_MUTANT == 1
    /* Mutant for tests/sim: a generation that depends on the replica. */
    static uint64_t mutant_calls;
    gen += ++mutant_calls % 2;
#endif
    if (zc_state_txn_free_take(s, t, &cart) != 0 ||
        zc_state_txn_load_add(s, t, cart.node, 1) != 0 ||
        zc_state_txn_add_meta(s, t, "carts_assigned", 1) != 0)
        return -1;
    cart.state = ZC_CART_ASSIGNED;
    cart.generation = gen;
    cart.free_pos = 0;
    cart.since_ms = c->time_ms;
    memcpy(cart.session, c->assign.session, ZC_SESSION_LEN);
    memset(&sess, 0, sizeof sess);
    memcpy(sess.id, c->assign.session, ZC_SESSION_LEN);
    sess.state = ZC_SESS_LIVE;
    snprintf(sess.cart, sizeof sess.cart, "%s", cart.id);
    sess.generation = gen;
    sess.since_ms = c->time_ms;
    if (zc_state_txn_put_cart(s, t, &cart) != 0 || zc_state_txn_put_session(s, t, &sess) != 0 ||
        zc_state_txn_set_meta(s, t, "next_gen", gen + 1) != 0 ||
        zc_state_txn_add_meta(s, t, "sessions_live", 1) != 0)
        return -1;
    snprintf(out->cart, sizeof out->cart, "%s", cart.id);
    out->generation = gen;
    out->status = ZC_OK;
    return 0;
}

static int apply_release(zc_fsm_t *f, MDB_txn *t, const zc_cmd_t *c, zc_cmd_result_t *out)
{
    zc_state_t *s = f->state;
    zc_session_rec_t sess;
    int rc = zc_state_txn_get_session(s, t, c->release.session, &sess);
    if (rc < 0)
        return -1;
    out->status = ZC_OK;
    if (rc == 1)
        return 0; /* never had a cart: nothing to release */
    snprintf(out->cart, sizeof out->cart, "%s", sess.cart);
    out->generation = sess.generation;
    if (sess.state != ZC_SESS_LIVE)
        return 0; /* already released: closing is idempotent */
    sess.state = c->release.why == ZC_RELEASE_EXPIRED ? ZC_SESS_EXPIRED : ZC_SESS_CLOSED;
    sess.since_ms = c->time_ms;
    if (zc_state_txn_put_session(s, t, &sess) != 0 ||
        zc_state_txn_add_meta(s, t, "sessions_live", -1) != 0 ||
        zc_state_txn_add_meta(s, t, "sessions_ended", 1) != 0)
        return -1;
    zc_cart_rec_t cart;
    rc = zc_state_txn_get_cart(s, t, sess.cart, &cart);
    if (rc < 0)
        return -1;
#if ZC_FSM_MUTANT == 2
    /* Mutant for tests/sim: a release that forgets to drain the cart. */
    rc = 1;
#endif
    if (rc == 0 && cart.state == ZC_CART_ASSIGNED && cart.generation == sess.generation &&
        memcmp(cart.session, sess.id, ZC_SESSION_LEN) == 0) {
        /* The cart keeps (session, generation) while it drains: the reset
         * the leader sends names that generation. */
        cart.state = ZC_CART_DRAINING;
        cart.since_ms = c->time_ms;
        if (zc_state_txn_put_cart(s, t, &cart) != 0 ||
            zc_state_txn_load_add(s, t, cart.node, -1) != 0 ||
            zc_state_txn_add_meta(s, t, "carts_assigned", -1) != 0)
            return -1;
    }
    return 0;
}

static int apply_return(zc_fsm_t *f, MDB_txn *t, const zc_cmd_t *c, zc_cmd_result_t *out)
{
    zc_state_t *s = f->state;
    zc_cart_rec_t cart;
    int rc = zc_state_txn_get_cart(s, t, c->ret.cart, &cart);
    if (rc < 0)
        return -1;
    snprintf(out->cart, sizeof out->cart, "%s", c->ret.cart);
    out->generation = c->ret.generation;
    if (rc == 1 || cart.state != ZC_CART_DRAINING || cart.generation != c->ret.generation) {
        /* A stale or duplicate return (e.g. re-proposed by a new leader). */
        out->status = ZC_FENCED;
        return 0;
    }
    cart.state = ZC_CART_FREE;
    cart.since_ms = c->time_ms;
    memset(cart.session, 0, ZC_SESSION_LEN);
    if (zc_state_txn_free_push(s, t, &cart) != 0 || zc_state_txn_put_cart(s, t, &cart) != 0)
        return -1;
    out->status = ZC_OK;
    return 0;
}

/* A cart declared lost: its session moves to the first free cart with a
 * closed breaker, under a fresh generation, marked `lost` until its client
 * has been told; the lost cart starts draining (it keeps the old session
 * and generation, so the reset the leader sends when its node returns
 * fences the old assignment, and only then does it rejoin the free list). */
static int apply_reassign(zc_fsm_t *f, MDB_txn *t, const zc_cmd_t *c, zc_cmd_result_t *out)
{
    zc_state_t *s = f->state;
    zc_cart_rec_t lost, fresh;
    zc_session_rec_t sess;
    int rc = zc_state_txn_get_cart(s, t, c->reassign.cart, &lost);
    if (rc < 0)
        return -1;
    if (rc == 1 || lost.state != ZC_CART_ASSIGNED || lost.generation != c->reassign.generation) {
        out->status = ZC_FENCED; /* stale: already moved, released or reassigned */
        return 0;
    }
    if (zc_state_txn_get_session(s, t, lost.session, &sess) != 0)
        return -1; /* the invariant says an ASSIGNED cart's session exists */
    rc = first_free(s, t, &fresh);
    if (rc < 0)
        return -1;
    if (rc == 1) {
        out->status = ZC_NO_FREE_CART; /* nothing changes; the leader tries again */
        return 0;
    }
    uint64_t gen = zc_state_txn_meta(s, t, "next_gen");
    if (gen == 0)
        gen = 1;
    if (zc_state_txn_free_take(s, t, &fresh) != 0 ||
        zc_state_txn_load_add(s, t, fresh.node, 1) != 0 ||
        zc_state_txn_load_add(s, t, lost.node, -1) != 0)
        return -1;
    fresh.state = ZC_CART_ASSIGNED;
    fresh.generation = gen;
    fresh.free_pos = 0;
    fresh.since_ms = c->time_ms;
    memcpy(fresh.session, sess.id, ZC_SESSION_LEN);
    lost.state = ZC_CART_DRAINING;
    lost.since_ms = c->time_ms;
    snprintf(sess.cart, sizeof sess.cart, "%s", fresh.id);
    sess.generation = gen;
    sess.since_ms = c->time_ms;
    sess.lost = true;
    if (zc_state_txn_put_cart(s, t, &fresh) != 0 || zc_state_txn_put_cart(s, t, &lost) != 0 ||
        zc_state_txn_put_session(s, t, &sess) != 0 ||
        zc_state_txn_set_meta(s, t, "next_gen", gen + 1) != 0)
        return -1;
    snprintf(out->cart, sizeof out->cart, "%s", fresh.id);
    out->generation = gen;
    out->status = ZC_OK;
    return 0;
}

/* The session's client got its CART_LOST: clear the mark (idempotent). */
static int apply_lost_told(zc_fsm_t *f, MDB_txn *t, const zc_cmd_t *c, zc_cmd_result_t *out)
{
    zc_session_rec_t sess;
    int rc = zc_state_txn_get_session(f->state, t, c->told.session, &sess);
    if (rc < 0)
        return -1;
    out->status = ZC_OK;
    if (rc == 1)
        return 0;
    snprintf(out->cart, sizeof out->cart, "%s", sess.cart);
    out->generation = sess.generation;
    if (!sess.lost)
        return 0;
    sess.lost = false;
    return zc_state_txn_put_session(f->state, t, &sess);
}

/* A breaker event: the transition table decides (replication/breaker.h). */
static int apply_breaker(zc_fsm_t *f, MDB_txn *t, const zc_cmd_t *c, zc_cmd_result_t *out)
{
    zc_cart_rec_t cart;
    int rc = zc_state_txn_get_cart(f->state, t, c->brk.cart, &cart);
    if (rc < 0)
        return -1;
    snprintf(out->cart, sizeof out->cart, "%s", c->brk.cart);
    if (rc == 1) {
        out->status = ZC_BAD_REQUEST; /* no such cart */
        return 0;
    }
    zc_brk_input_t in = {
        .ev = c->brk.ev, .why = c->brk.why, .max_probes = c->brk.max_probes, .now_ms = c->time_ms};
    if (zc_breaker_apply(&cart.breaker, &in) != 0) {
        out->status = ZC_BAD_REQUEST; /* stale or refused: nothing changes */
        out->breaker = cart.breaker;
        return 0;
    }
    out->status = ZC_OK;
    out->breaker = cart.breaker;
    return zc_state_txn_put_cart(f->state, t, &cart);
}

/* Forget sessions that ended at least retention_ms before the command's
 * time.  The leader names the candidates; apply checks each one again, so a
 * session that is live, unknown or ended too recently is left alone, and the
 * same entry does the same on every replica.  A forgotten id is unknown
 * again (docs/protocol.md §3, step 6). */
static int apply_purge(zc_fsm_t *f, MDB_txn *t, const zc_cmd_t *c, zc_cmd_result_t *out)
{
    zc_state_t *s = f->state;
    out->status = ZC_OK;
    for (unsigned i = 0; i < c->purge.n; i++) {
        zc_session_rec_t sess;
        int rc = zc_state_txn_get_session(s, t, c->purge.sessions[i], &sess);
        if (rc < 0)
            return -1;
        if (rc == 1 || sess.state == ZC_SESS_LIVE || sess.since_ms > c->time_ms ||
            c->time_ms - sess.since_ms < c->purge.retention_ms)
            continue;
        if (zc_state_txn_del_session(s, t, sess.id) != 0 ||
            zc_state_txn_add_meta(s, t, "sessions_ended", -1) != 0)
            return -1;
        out->count++;
    }
    return 0;
}

/* Collects the carts of a node (UNREGISTER all). */
typedef struct {
    char (*ids)[ZC_CART_MAX + 1]; /* cart ids, grown as needed */
    size_t n, cap;                /* entries used, allocated */
} cart_ids_t;

static int collect_cart(const zc_cart_rec_t *c, void *arg)
{
    cart_ids_t *l = arg;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        void *p = realloc(l->ids, cap * sizeof *l->ids);
        if (p == NULL)
            return -1;
        l->ids = p;
        l->cap = cap;
    }
    snprintf(l->ids[l->n++], sizeof l->ids[0], "%s", c->id);
    return 0;
}

/* Forget one cart that is not ASSIGNED (FREE: off the free list first). */
static int unregister_idle(zc_state_t *s, MDB_txn *t, const zc_cart_rec_t *cart)
{
    if (cart->state == ZC_CART_FREE && zc_state_txn_free_take(s, t, cart) != 0)
        return -1;
    if (zc_state_txn_del_cart(s, t, cart->id) != 0 ||
        zc_state_txn_add_meta(s, t, "carts_total", -1) != 0)
        return -1;
    return 0;
}

/* Forget an ASSIGNED cart.  Its session is not left on a cart that no
 * longer exists: it moves to the first free cart with a CLOSED breaker
 * under a new generation, marked lost (its client is told CART_LOST, as
 * for a lost cart); with no such cart it ends as EXPIRED (its client gets
 * SESSION_EXPIRED).  Either way the same on every replica. */
static int unregister_assigned(zc_fsm_t *f, MDB_txn *t, uint64_t now_ms, zc_cart_rec_t *cart,
                               zc_cmd_result_t *out)
{
    zc_state_t *s = f->state;
    zc_session_rec_t sess;
    zc_cart_rec_t fresh;
    if (zc_state_txn_get_session(s, t, cart->session, &sess) != 0)
        return -1; /* the invariant says an ASSIGNED cart's session exists */
    int rc = first_free(s, t, &fresh);
    if (rc < 0)
        return -1;
    if (zc_state_txn_load_add(s, t, cart->node, -1) != 0)
        return -1;
    sess.since_ms = now_ms;
    if (rc == 0) {
        uint64_t gen = zc_state_txn_meta(s, t, "next_gen");
        if (gen == 0)
            gen = 1;
        if (zc_state_txn_free_take(s, t, &fresh) != 0 ||
            zc_state_txn_load_add(s, t, fresh.node, 1) != 0)
            return -1;
        fresh.state = ZC_CART_ASSIGNED;
        fresh.generation = gen;
        fresh.free_pos = 0;
        fresh.since_ms = now_ms;
        memcpy(fresh.session, sess.id, ZC_SESSION_LEN);
        snprintf(sess.cart, sizeof sess.cart, "%s", fresh.id);
        sess.generation = gen;
        sess.lost = true;
        if (zc_state_txn_put_cart(s, t, &fresh) != 0 ||
            zc_state_txn_set_meta(s, t, "next_gen", gen + 1) != 0)
            return -1;
        out->moved++;
    } else {
        sess.state = ZC_SESS_EXPIRED;
        sess.lost = false;
        if (zc_state_txn_add_meta(s, t, "sessions_live", -1) != 0 ||
            zc_state_txn_add_meta(s, t, "sessions_ended", 1) != 0 ||
            zc_state_txn_add_meta(s, t, "carts_assigned", -1) != 0)
            return -1;
        out->ended++;
    }
    if (zc_state_txn_put_session(s, t, &sess) != 0 || zc_state_txn_del_cart(s, t, cart->id) != 0 ||
        zc_state_txn_add_meta(s, t, "carts_total", -1) != 0)
        return -1;
    return 0;
}

/* Forget carts of a node: those of the listed slots (its HELLO no longer
 * has them), or all of them (an operator retired the node).  FREE and
 * DRAINING carts go first, so that no session of an ASSIGNED one is moved
 * onto a cart this same entry forgets.  A slot with no cart is skipped, so
 * a repeated or stale UNREGISTER is harmless; a node that says HELLO later
 * registers its slots afresh (REGISTER: a slot holding an owner or items
 * drains first, and generations stay above what it reports). */
static int apply_unregister(zc_fsm_t *f, MDB_txn *t, const zc_cmd_t *c, zc_cmd_result_t *out)
{
    zc_state_t *s = f->state;
    cart_ids_t l = {0};
    int rc = 0;
    out->status = ZC_OK;
    if (c->unreg.all) {
        rc = zc_state_txn_each_node_cart(s, t, c->unreg.node, collect_cart, &l);
    } else {
        zc_cart_rec_t dummy;
        memset(&dummy, 0, sizeof dummy);
        for (unsigned i = 0; i < c->unreg.n && rc == 0; i++) {
            snprintf(dummy.id, sizeof dummy.id, "%s.%u", c->unreg.node, c->unreg.slots[i]);
            rc = collect_cart(&dummy, &l);
        }
    }
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        for (size_t i = 0; i < l.n && rc == 0; i++) {
            zc_cart_rec_t cart;
            int g = zc_state_txn_get_cart(s, t, l.ids[i], &cart);
            if (g < 0)
                rc = -1;
            if (g != 0 || (pass == 0) == (cart.state == ZC_CART_ASSIGNED))
                continue; /* gone (a duplicate slot), or not this pass's kind */
            rc = pass == 0 ? unregister_idle(s, t, &cart)
                           : unregister_assigned(f, t, c->time_ms, &cart, out);
            if (rc == 0)
                out->count++;
        }
    }
    free(l.ids);
    return rc;
}

static int apply_member(zc_fsm_t *f, MDB_txn *t, const zc_cmd_t *c, zc_cmd_result_t *out)
{
    out->status = ZC_OK;
    if (c->member.id == 0) {
        out->status = ZC_BAD_REQUEST;
        return 0;
    }
    if (c->type == ZC_CMD_MEMBER_SET)
        return zc_state_txn_put_member(f->state, t, &c->member);
    return zc_state_txn_del_member(f->state, t, c->member.id);
}

/* Entry `index` applied inside t: the apply switch, then the index and the
 * command count.  0, or -1 on a storage error (t must then be aborted). */
static int apply_cmd(zc_fsm_t *f, MDB_txn *t, uint64_t index, const zc_cmd_t *c, bool decoded,
                     size_t len, zc_cmd_result_t *out)
{
    zc_state_t *s = f->state;
    memset(out, 0, sizeof *out);
    int rc = 0;
    if (!decoded) {
        /* Every replica sees the same bytes, so every replica skips it. */
        zc_error("entry %llu: undecodable command (%zu bytes), skipped", (unsigned long long)index,
                 len);
        out->status = ZC_BAD_REQUEST;
    } else {
        switch (c->type) {
        case ZC_CMD_REGISTER: rc = apply_register(f, t, c, out); break;
        case ZC_CMD_ASSIGN: rc = apply_assign(f, t, c, out); break;
        case ZC_CMD_RELEASE: rc = apply_release(f, t, c, out); break;
        case ZC_CMD_RETURN: rc = apply_return(f, t, c, out); break;
        case ZC_CMD_MEMBER_SET:
        case ZC_CMD_MEMBER_DEL: rc = apply_member(f, t, c, out); break;
        case ZC_CMD_REASSIGN: rc = apply_reassign(f, t, c, out); break;
        case ZC_CMD_LOST_TOLD: rc = apply_lost_told(f, t, c, out); break;
        case ZC_CMD_BREAKER: rc = apply_breaker(f, t, c, out); break;
        case ZC_CMD_PURGE: rc = apply_purge(f, t, c, out); break;
        case ZC_CMD_UNREGISTER: rc = apply_unregister(f, t, c, out); break;
        }
    }
    if (rc == 0)
        rc = zc_state_txn_set_meta(s, t, "applied_index", index);
    if (rc == 0)
        rc = zc_state_txn_set_meta(s, t, "applied_commands",
                                   zc_state_txn_meta(s, t, "applied_commands") + 1);
    if (rc != 0)
        snprintf(f->apply_error, sizeof f->apply_error, "a write of the transaction failed");
    return rc;
}

/* --- batching ---
 *
 * An entry dirties a few B-tree paths (its cart, the free list, the
 * placement indexes, its session, meta).  Committed alone, every page of
 * those paths is written again, root to leaf, for every entry (a pwrite
 * each; the state runs MDB_NOSYNC, so no fsync): at 100k carts that was
 * 37% of a follower's CPU (bench/README run 6).  So consecutive entries
 * share one write transaction, the batch (state->batch), committed by
 * zc_fsm_flush -- the broker calls it before its event loop next waits
 * (replication/node.c), so a batch is what raft applied in one turn of the
 * loop -- or as soon as it holds batch_max entries.
 *
 * Durability does not change: the state was never synced per entry (the
 * raft log is the durable record, fsm.h); a crash loses at most the open
 * batch, which the restarted replica applies again from its log like any
 * entry past meta.applied_index.  Reads see the batch -- the state's
 * queries read through it (state.c, rtxn), so the broker answering right
 * after an apply sees what the entry did.  What needs the state as
 * committed commits the batch first: a snapshot's begin, a restore,
 * growing the map, closing; the state refuses its own write transactions
 * while a batch is open (state.c, wtxn).
 *
 * A transaction in which a write failed can only be aborted, which drops
 * the batch's earlier entries with it.  So the batch keeps a copy of its
 * entries (batch_log, a few hundred bytes each): after a failed write or
 * commit the map grows if it was nearly full, and the entries are applied
 * again, in order, into a fresh transaction -- apply is deterministic, so
 * they do exactly what they did.  Only if that fails too does the apply or
 * the flush fail (and the broker exits to restart from its log). */

static bool grow_map(zc_fsm_t *f, bool full);

static int begin_batch(zc_fsm_t *f)
{
    int mrc = mdb_txn_begin(f->state->env, NULL, 0, &f->state->batch);
    if (mrc != 0) {
        f->state->batch = NULL;
        snprintf(f->apply_error, sizeof f->apply_error, "begin: %s", mdb_strerror(mrc));
        return -1;
    }
    return 0;
}

static void drop_batch(zc_fsm_t *f)
{
    if (f->state->batch)
        mdb_txn_abort(f->state->batch);
    f->state->batch = NULL;
}

/* A fresh batch holding the entries of batch_log again.  0 or -1 (none open). */
static int redo_batch(zc_fsm_t *f)
{
    if (begin_batch(f) != 0)
        return -1;
    zc_rbuf_t r;
    zc_rbuf_init(&r, f->batch_log.data, f->batch_log.len);
    int rc = 0;
    while (rc == 0 && !zc_rbuf_done(&r)) {
        uint64_t index = zc_rbuf_u64(&r);
        size_t len;
        const uint8_t *data = zc_rbuf_lstr(&r, &len, SIZE_MAX);
        if (r.err)
            break;
        zc_cmd_t c;
        zc_cmd_result_t out;
        bool decoded = zc_cmd_decode(&c, data, len) == 0;
        rc = apply_cmd(f, f->state->batch, index, &c, decoded, len, &out);
        if (decoded)
            zc_cmd_clear(&c);
    }
    if (rc != 0 || r.err) {
        drop_batch(f);
        return -1;
    }
    f->stats_batch.redone++;
    return 0;
}

/* Commit the batch; after a failure, once more with the map grown if it was
 * nearly full.  0, or -1 with the batch lost (f->failed set). */
static int commit_batch(zc_fsm_t *f)
{
    zc_state_t *s = f->state;
    if (s->batch == NULL)
        return f->failed ? -1 : 0;
    int mrc = mdb_txn_commit(s->batch); /* frees the transaction, failed or not */
    s->batch = NULL;
    if (mrc != 0) {
        snprintf(f->apply_error, sizeof f->apply_error, "commit: %s", mdb_strerror(mrc));
        grow_map(f, mrc == MDB_MAP_FULL);
        if (redo_batch(f) != 0 || (mrc = mdb_txn_commit(s->batch)) != 0) {
            s->batch = NULL;
            if (mrc != 0)
                snprintf(f->apply_error, sizeof f->apply_error, "commit: %s", mdb_strerror(mrc));
            f->failed = true;
            zc_error("state storage: committing entries %llu..%llu failed: %s",
                     (unsigned long long)(f->committed_index + 1),
                     (unsigned long long)f->applied_index, f->apply_error);
            return -1;
        }
        s->batch = NULL;
    }
    f->stats_batch.commits++;
    f->stats_batch.entries += f->batch_n;
    if (f->batch_n > f->stats_batch.max_entries)
        f->stats_batch.max_entries = f->batch_n;
    f->batch_n = 0;
    zc_wbuf_reset(&f->batch_log);
    f->committed_index = f->applied_index;
    return 0;
}

int zc_fsm_flush(zc_fsm_t *f) { return commit_batch(f); }

void zc_fsm_set_batch(zc_fsm_t *f, unsigned max_entries)
{
    if (commit_batch(f) == 0)
        f->batch_max = max_entries ? max_entries : 1;
}

void zc_fsm_batch_stats(zc_fsm_t *f, zc_fsm_batch_stats_t *out) { *out = f->stats_batch; }

/* Entry `index` into the batch (opened if none), then committed if the
 * batch is full.  0, or -1 with nothing of it applied. */
static int apply_batched(zc_fsm_t *f, uint64_t index, const zc_cmd_t *c, bool decoded,
                         const void *data, size_t len, zc_cmd_result_t *out)
{
    zc_state_t *s = f->state;
    if (f->failed)
        return -1;
    if (s->batch == NULL && begin_batch(f) != 0)
        return -1;
    if (apply_cmd(f, s->batch, index, c, decoded, len, out) != 0) {
        /* The transaction is spoiled.  The batch's earlier entries are
         * committed on their own (applied again), then this entry is tried
         * alone, as without batching: once, and once more after growing a
         * nearly full map. */
        drop_batch(f);
        if (f->batch_n > 0 && (redo_batch(f) != 0 || commit_batch(f) != 0)) {
            drop_batch(f);
            f->failed = true;
            return -1;
        }
        if (begin_batch(f) != 0)
            return -1;
        if (apply_cmd(f, s->batch, index, c, decoded, len, out) != 0) {
            drop_batch(f);
            if (!grow_map(f, false) || begin_batch(f) != 0)
                return -1;
            if (apply_cmd(f, s->batch, index, c, decoded, len, out) != 0) {
                drop_batch(f);
                return -1;
            }
        }
    }
    zc_wbuf_u64(&f->batch_log, index);
    zc_wbuf_lstr(&f->batch_log, data, len);
    f->batch_n++;
    if (f->batch_log.oom) {
        snprintf(f->apply_error, sizeof f->apply_error, "out of memory keeping the batch");
        f->failed = true;
        drop_batch(f);
        return -1;
    }
    f->applied_index = index;
    if (f->batch_n >= f->batch_max)
        return commit_batch(f);
    return 0;
}

const char *zc_fsm_apply_error(const zc_fsm_t *f)
{
    return f->apply_error[0] ? f->apply_error : "no error";
}

/* The last line of defence of "apply never fails on a full map": the
 * storage limit (state.h) keeps a state at half its map, but a replica
 * started with a smaller --state-map-size than its leader's can still fill
 * up.  Rather than fail the entry -- raft would stop, the broker exit and
 * crash-loop on the same entry -- the map grows by half (LMDB allows it
 * between transactions) and the entry is applied again.  Only when the map
 * was not nearly full (another storage error) does apply fail.  full: LMDB
 * said MDB_MAP_FULL (a commit), so the map grows whatever the high-water
 * mark says. */
static void snapshot_quiesce(zc_fsm_t *f);

static bool grow_map(zc_fsm_t *f, bool full)
{
    MDB_envinfo info;
    MDB_stat st;
    if (mdb_env_info(f->state->env, &info) != 0 || mdb_env_stat(f->state->env, &st) != 0)
        return false;
    /* The high-water mark: LMDB fails a transaction that needs pages past
     * the map even when its free list holds some. */
    uint64_t used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize, map = info.me_mapsize;
    if (!full && used < map / 4 * 3)
        return false;
    size_t bigger = (size_t)(map + map / 2);
    /* LMDB remaps: no read transaction may be open, a snapshot's included. */
    snapshot_quiesce(f);
    int rc = mdb_env_set_mapsize(f->state->env, bigger);
    pthread_mutex_unlock(&f->snap_lock);
    if (rc != 0)
        return false;
    zc_warn("state map nearly full (%llu of %llu bytes): grown to %zu bytes; give every replica "
            "the same --state-map-size",
            (unsigned long long)used, (unsigned long long)map, bigger);
    return true;
}

int zc_fsm_apply(zc_fsm_t *f, uint64_t index, const void *data, size_t len, zc_cmd_result_t *out)
{
    memset(out, 0, sizeof *out);
    if (index <= f->applied_index) {
        out->replayed = true;
        return 0;
    }
    zc_cmd_t c;
    bool decoded = zc_cmd_decode(&c, data, len) == 0;
    int rc = apply_batched(f, index, &c, decoded, data, len, out);
    if (decoded)
        zc_cmd_clear(&c);
    if (rc != 0) {
        zc_error("entry %llu: storage error while applying (%s), not applied",
                 (unsigned long long)index, f->apply_error);
        memset(out, 0, sizeof *out);
        out->status = ZC_INTERNAL;
        return -1;
    }
    return 0;
}

/* --- snapshots ---
 *
 *   "ZCSNAP" u8 version(2) u64 applied_index
 *   then for meta, carts, free, sessions, members in that order:
 *     u32 count, count * (lstr key, lstr value)
 *
 * Off the event loop.  Serializing the whole state (every cart and every
 * session) takes time proportional to the state; on the loop it stalls
 * heartbeats, elections and every client.  raft 0.15 splits a snapshot
 * into three calls (struct raft_fsm version 3, replication.c takeSnapshot):
 *
 *   snapshot           on the loop, right after raft applied entry X: here
 *                      it only opens an LMDB read transaction.  LMDB's MVCC
 *                      freezes what that transaction sees, so it sees the
 *                      state at exactly X however many entries the loop
 *                      applies afterwards (MDB_NOTLS, state.c, lets another
 *                      thread use it).
 *   snapshot_async     on a worker (io->async_work: uv_queue_work in
 *                      libuv, inline in raft_fixture): sync the state to
 *                      disk and serialize from that transaction, then close
 *                      it.  Raft writes the bytes (io->snapshot_put) once
 *                      this returns.
 *   snapshot_finalize  on the loop, once the write is done or failed: the
 *                      bytes are ours (raft never frees them in version 3).
 *
 * Raft keeps at most one snapshot in progress and refuses to install a
 * leader's snapshot meanwhile (r->snapshot.pending), so restore never runs
 * during a build; it stays on the loop (a follower that installs a
 * snapshot is not serving anyway).  The one other thing that cannot run
 * beside an open read transaction is mdb_env_set_mapsize (grow_map): it
 * waits for a running build, and cancels one that has not started (the
 * worker then fails it and raft tries again at the next threshold).  The
 * states and their moves are the table below, checked on every move. */
#define SNAP_MAGIC "ZCSNAP"
#define SNAP_VERSION 2
#define SNAP_DBS 5
#define SNAP_MAX_VALUE (16u << 20)

static const bool snap_moves[SNAP_N][SNAP_N] = {
    [SNAP_IDLE] = {[SNAP_OPEN] = true},
    [SNAP_OPEN] = {[SNAP_BUILDING] = true, [SNAP_BUILT] = true, [SNAP_IDLE] = true},
    [SNAP_BUILDING] = {[SNAP_BUILT] = true},
    [SNAP_BUILT] = {[SNAP_IDLE] = true},
};

/* Move under snap_lock; a move the table does not allow is a bug. */
static void snap_move(zc_fsm_t *f, snap_state_t to)
{
    if (!snap_moves[f->snap_state][to]) {
        zc_error("snapshot: illegal move %d -> %d", (int)f->snap_state, (int)to);
        abort();
    }
    f->snap_state = to;
}

static int dump_db(MDB_txn *t, MDB_dbi dbi, zc_wbuf_t *out)
{
    MDB_stat st;
    MDB_cursor *cur;
    MDB_val k, v;
    if (mdb_stat(t, dbi, &st) != 0 || mdb_cursor_open(t, dbi, &cur) != 0)
        return -1;
    zc_wbuf_u32(out, (uint32_t)st.ms_entries);
    uint32_t n = 0;
    for (int op = MDB_FIRST; mdb_cursor_get(cur, &k, &v, op) == 0; op = MDB_NEXT, n++) {
        zc_wbuf_lstr(out, k.mv_data, k.mv_size);
        zc_wbuf_lstr(out, v.mv_data, v.mv_size);
    }
    mdb_cursor_close(cur);
    return n == st.ms_entries && !out->oom ? 0 : -1;
}

/* The state as read transaction t sees it.  Any thread. */
static int serialize(zc_state_t *s, MDB_txn *t, zc_wbuf_t *out)
{
    zc_wbuf_bytes(out, SNAP_MAGIC, 6);
    zc_wbuf_u8(out, SNAP_VERSION);
    zc_wbuf_u64(out, zc_state_txn_meta(s, t, "applied_index"));
    int rc = 0;
    MDB_dbi dbis[SNAP_DBS] = {s->meta, s->carts, s->free, s->sessions, s->members};
    for (int i = 0; i < SNAP_DBS && rc == 0; i++)
        rc = dump_db(t, dbis[i], out);
    return rc;
}

int zc_fsm_snapshot(zc_fsm_t *f, zc_wbuf_t *out)
{
    zc_state_t *s = f->state;
    MDB_txn *t;
    if (commit_batch(f) != 0)
        return -1;
    /* Make the state durable up to the point Raft will compact its log to. */
    mdb_env_sync(s->env, 1);
    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t) != 0)
        return -1;
    int rc = serialize(s, t, out);
    mdb_txn_abort(t);
    return rc;
}

int zc_fsm_snapshot_begin(zc_fsm_t *f)
{
    MDB_txn *t;
    /* The snapshot is of every entry applied so far: commit the batch (what
     * the loop turn's end would have done; not counted as the snapshot's). */
    if (commit_batch(f) != 0)
        return -1;
    uint64_t t0 = zc_mono_us();
    pthread_mutex_lock(&f->snap_lock);
    int rc = -1;
    if (f->snap_state == SNAP_IDLE && mdb_txn_begin(f->state->env, NULL, MDB_RDONLY, &t) == 0) {
        snap_move(f, SNAP_OPEN);
        f->snap_txn = t;
        f->snap_index = zc_state_txn_meta(f->state, t, "applied_index");
        uint64_t us = zc_mono_us() - t0;
        if (us > f->stats.begin_max_us)
            f->stats.begin_max_us = us;
        rc = 0;
    }
    pthread_mutex_unlock(&f->snap_lock);
    return rc;
}

int zc_fsm_snapshot_build(zc_fsm_t *f, const void **data, size_t *len)
{
    uint64_t t0 = zc_mono_us();
    pthread_mutex_lock(&f->snap_lock);
    if (f->snap_state != SNAP_OPEN || f->snap_txn == NULL) {
        /* Not begun, or cancelled by grow_map before it started. */
        if (f->snap_state == SNAP_OPEN)
            snap_move(f, SNAP_BUILT);
        f->stats.failed++;
        pthread_mutex_unlock(&f->snap_lock);
        return -1;
    }
    snap_move(f, SNAP_BUILDING);
    MDB_txn *t = f->snap_txn;
    pthread_mutex_unlock(&f->snap_lock);

    /* Make the state durable up to the point Raft will compact its log to
     * (and beyond: the loop may have applied more since; an fsync covers
     * every commit before it). */
    mdb_env_sync(f->state->env, 1);
    zc_wbuf_reset(&f->snap_bytes);
    int rc = serialize(f->state, t, &f->snap_bytes);

    pthread_mutex_lock(&f->snap_lock);
    mdb_txn_abort(t);
    f->snap_txn = NULL;
    snap_move(f, SNAP_BUILT);
    uint64_t us = zc_mono_us() - t0;
    if (rc == 0) {
        f->stats.snapshots++;
        f->stats.build_last_us = us;
        if (us > f->stats.build_max_us)
            f->stats.build_max_us = us;
        f->stats.bytes_last = f->snap_bytes.len;
        f->stats.index_last = f->snap_index;
    } else {
        f->stats.failed++;
    }
    pthread_cond_broadcast(&f->snap_cond);
    pthread_mutex_unlock(&f->snap_lock);
    *data = f->snap_bytes.data;
    *len = f->snap_bytes.len;
    return rc;
}

void zc_fsm_snapshot_end(zc_fsm_t *f)
{
    pthread_mutex_lock(&f->snap_lock);
    while (f->snap_state == SNAP_BUILDING)
        pthread_cond_wait(&f->snap_cond, &f->snap_lock);
    if (f->snap_state == SNAP_OPEN && f->snap_txn != NULL) /* NULL: cancelled by grow_map */
        mdb_txn_abort(f->snap_txn);
    f->snap_txn = NULL;
    if (f->snap_state != SNAP_IDLE)
        snap_move(f, SNAP_IDLE);
    zc_wbuf_clear(&f->snap_bytes);
    pthread_mutex_unlock(&f->snap_lock);
}

/* Returns with snap_lock held and no snapshot transaction open: a running
 * build is waited for, one not yet started is cancelled (its build fails).
 * On the loop only (grow_map), so never while a build waits for the loop. */
static void snapshot_quiesce(zc_fsm_t *f)
{
    pthread_mutex_lock(&f->snap_lock);
    while (f->snap_state == SNAP_BUILDING)
        pthread_cond_wait(&f->snap_cond, &f->snap_lock);
    if (f->snap_state == SNAP_OPEN && f->snap_txn != NULL) {
        mdb_txn_abort(f->snap_txn);
        f->snap_txn = NULL; /* stays OPEN: the build finds no txn and fails */
        zc_warn("snapshot at %llu cancelled: the state map grows",
                (unsigned long long)f->snap_index);
    }
}

void zc_fsm_snapshot_stats(zc_fsm_t *f, zc_fsm_snapshot_stats_t *out)
{
    pthread_mutex_lock(&f->snap_lock);
    *out = f->stats;
    out->in_progress = f->snap_state != SNAP_IDLE;
    pthread_mutex_unlock(&f->snap_lock);
}

int zc_fsm_restore(zc_fsm_t *f, const void *data, size_t len)
{
    zc_state_t *s = f->state;
    zc_rbuf_t r;
    char magic[6];
    zc_rbuf_init(&r, data, len);
    zc_rbuf_bytes(&r, magic, 6);
    uint8_t version = zc_rbuf_u8(&r);
    uint64_t index = zc_rbuf_u64(&r);
    if (r.err || memcmp(magic, SNAP_MAGIC, 6) != 0 || version != SNAP_VERSION) {
        zc_error("restore: not a zcart snapshot");
        return -1;
    }
    if (commit_batch(f) != 0)
        return -1;
    if (index <= f->applied_index) {
        zc_info("restore: snapshot at %llu not newer than state at %llu, kept state",
                (unsigned long long)index, (unsigned long long)f->applied_index);
        return 0;
    }
    /* Validate the whole body before touching the state. */
    size_t body = r.pos;
    for (int i = 0; i < SNAP_DBS; i++) {
        uint32_t n = zc_rbuf_u32(&r);
        for (uint32_t j = 0; j < n && !r.err; j++) {
            size_t kl, vl;
            zc_rbuf_lstr(&r, &kl, SNAP_MAX_VALUE);
            zc_rbuf_lstr(&r, &vl, SNAP_MAX_VALUE);
        }
    }
    if (!zc_rbuf_done(&r)) {
        zc_error("restore: malformed snapshot body");
        return -1;
    }
    r.pos = body;
    MDB_txn *t;
    if (mdb_txn_begin(s->env, NULL, 0, &t) != 0)
        return -1;
    MDB_dbi dbis[SNAP_DBS] = {s->meta, s->carts, s->free, s->sessions, s->members};
    int rc = 0;
    for (int i = 0; i < SNAP_DBS && rc == 0; i++) {
        rc = mdb_drop(t, dbis[i], 0);
        uint32_t n = zc_rbuf_u32(&r);
        for (uint32_t j = 0; j < n && rc == 0; j++) {
            MDB_val k, v;
            k.mv_data = (void *)zc_rbuf_lstr(&r, &k.mv_size, SNAP_MAX_VALUE);
            v.mv_data = (void *)zc_rbuf_lstr(&r, &v.mv_size, SNAP_MAX_VALUE);
            rc = mdb_put(t, dbis[i], &k, &v, 0);
        }
    }
    if (rc != 0 || mdb_txn_commit(t) != 0) {
        if (rc != 0)
            mdb_txn_abort(t);
        zc_error("restore: storage error, state unchanged");
        return -1;
    }
    mdb_env_sync(s->env, 1);
    if (zc_state_ensure_counts(s) != 0)
        zc_warn("restore: could not count the sessions; status counts may be off");
    if (zc_state_rebuild_indexes(s) != 0)
        zc_warn("restore: could not rebuild the placement indexes");
    f->applied_index = zc_state_meta(s, "applied_index");
    f->committed_index = f->applied_index;
    zc_info("restore: state replaced by snapshot at %llu", (unsigned long long)index);
    return 0;
}

/* --- raft glue --- */

static int fsm_apply_cb(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    zc_fsm_t *f = fsm->data;
    uint64_t index = f->raft ? f->raft->last_applied + 1 : f->applied_index + 1;
    if (zc_fsm_apply(f, index, buf->base, buf->len, &f->result) != 0)
        return RAFT_IOERR;
    *result = &f->result;
    return 0;
}

/* On the loop, right after raft applied the snapshot's last entry. */
static int fsm_snapshot_cb(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    zc_fsm_t *f = fsm->data;
    *bufs = NULL;
    *n_bufs = 0;
    /* BUSY is transient for raft: it tries again at the next apply. */
    return zc_fsm_snapshot_begin(f) == 0 ? 0 : RAFT_BUSY;
}

/* On a worker thread (raft_fixture: inline, later in simulated time). */
static int fsm_snapshot_async_cb(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    zc_fsm_t *f = fsm->data;
    const void *data;
    size_t len;
    if (zc_fsm_snapshot_build(f, &data, &len) != 0)
        return RAFT_IOERR;
    f->snap_buf.base = (void *)data;
    f->snap_buf.len = len;
    *bufs = &f->snap_buf;
    *n_bufs = 1;
    return 0;
}

/* Version 2 (zc_fsm_raft): begin and build at once, on the loop. */
static int fsm_snapshot_sync_cb(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    zc_fsm_t *f = fsm->data;
    *bufs = NULL;
    *n_bufs = 0;
    if (zc_fsm_snapshot_begin(f) != 0)
        return RAFT_BUSY;
    return fsm_snapshot_async_cb(fsm, bufs, n_bufs);
}

/* On the loop, after the write (or any failure after fsm_snapshot_cb). */
static int fsm_snapshot_finalize_cb(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                                    unsigned *n_bufs)
{
    zc_fsm_t *f = fsm->data;
    zc_fsm_snapshot_end(f);
    f->snap_buf.base = NULL;
    f->snap_buf.len = 0;
    *bufs = NULL;
    *n_bufs = 0;
    return 0;
}

static int fsm_restore_cb(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    zc_fsm_t *f = fsm->data;
    int rc = zc_fsm_restore(f, buf->base, buf->len);
    if (rc != 0)
        return RAFT_MALFORMED;
    /* Raft hands the buffer over on success. */
    raft_free(buf->base);
    return 0;
}

void zc_fsm_raft(zc_fsm_t *f, struct raft_fsm *out)
{
    memset(out, 0, sizeof *out);
    out->version = 2;
    out->data = f;
    out->apply = fsm_apply_cb;
    out->snapshot = fsm_snapshot_sync_cb;
    out->snapshot_finalize = fsm_snapshot_finalize_cb;
    out->restore = fsm_restore_cb;
}

void zc_fsm_raft_async(zc_fsm_t *f, struct raft_fsm *out)
{
    zc_fsm_raft(f, out);
    out->version = 3;
    out->snapshot = fsm_snapshot_cb;
    out->snapshot_async = fsm_snapshot_async_cb;
}

void zc_fsm_bind(zc_fsm_t *f, struct raft *r) { f->raft = r; }
