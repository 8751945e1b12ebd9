/* state_txn: the replicated state's writers, inside one LMDB write
 * transaction.  Only the FSM's apply (replication/fsm.c) and the state
 * itself call them -- everything else reads through state.h -- and unit
 * tests that corrupt a state on purpose to prove zc_state_check sees it.
 * Each returns 0, or -1 on a storage error (the caller aborts the
 * transaction).  The struct of the open state is here too: the FSM opens
 * its write transactions, snapshots and restores on the environment. */
#ifndef ZC_REPLICATION_STATE_TXN_H
#define ZC_REPLICATION_STATE_TXN_H

#include <lmdb.h>

#include "replication/state.h"

/* The open environment and its databases. */
struct zc_state {
    MDB_env *env;     /* LMDB environment (owned) */
    MDB_dbi meta;     /* meta database */
    MDB_dbi carts;    /* cart registry */
    MDB_dbi free;     /* free list */
    MDB_dbi sessions; /* session table */
    MDB_dbi members;  /* replica directory */
    MDB_dbi nodefree; /* index: node + free position -> cart id */
    MDB_dbi nodeload; /* index: node -> ASSIGNED carts */
    MDB_dbi loadfree; /* index: load + first free position + node, nodes with a free cart */
    MDB_dbi brkidx;   /* index: cart id -> empty, carts whose breaker is not CLOSED-and-auto */
    bool has_brkidx;  /* brkidx exists (a read-only state from before it has none) */
    MDB_dbi local;    /* this replica's own facts: never replicated, snapshotted or hashed */
    bool readonly;    /* opened by zc_state_open_readonly: never written or synced */
    uint64_t registry_epoch; /* in memory: bumped when a cart is registered or forgotten, or
                                the indexes rebuilt (zc_state_registry_epoch) */
    MDB_txn *batch;   /* the FSM's write transaction holding applied entries not committed
                         yet (fsm.c "batching"), or NULL; the state's reads go through it */
};

int zc_state_txn_get_cart(zc_state_t *s, MDB_txn *t, const char *id, zc_cart_rec_t *out);
int zc_state_txn_put_cart(zc_state_t *s, MDB_txn *t, const zc_cart_rec_t *c);
/* A cart record was created (apply_register): the registry changed. */
void zc_state_txn_cart_added(zc_state_t *s);
/* Delete a cart record (not its free-list or index entries). */
int zc_state_txn_del_cart(zc_state_t *s, MDB_txn *t, const char *id);
int zc_state_txn_each_node_cart(zc_state_t *s, MDB_txn *t, const char *node,
                                int (*fn)(const zc_cart_rec_t *c, void *arg), void *arg);
int zc_state_txn_get_session(zc_state_t *s, MDB_txn *t, const uint8_t id[ZC_SESSION_LEN],
                             zc_session_rec_t *out);
int zc_state_txn_put_session(zc_state_t *s, MDB_txn *t, const zc_session_rec_t *r);
int zc_state_txn_del_session(zc_state_t *s, MDB_txn *t, const uint8_t id[ZC_SESSION_LEN]);
/* Add delta to a u64 meta counter. */
int zc_state_txn_add_meta(zc_state_t *s, MDB_txn *t, const char *key, int64_t delta);
uint64_t zc_state_txn_meta(zc_state_t *s, MDB_txn *t, const char *key);
int zc_state_txn_set_meta(zc_state_t *s, MDB_txn *t, const char *key, uint64_t v);
/* Free list: push at the tail (sets c->free_pos), remove one position. */
int zc_state_txn_free_push(zc_state_t *s, MDB_txn *t, zc_cart_rec_t *c);
int zc_state_txn_free_del(zc_state_t *s, MDB_txn *t, uint64_t pos);
/* Take a FREE cart off the free list and its node's index entry. */
int zc_state_txn_free_take(zc_state_t *s, MDB_txn *t, const zc_cart_rec_t *c);
/* Add delta to the ASSIGNED count of a node (nodeload). */
int zc_state_txn_load_add(zc_state_t *s, MDB_txn *t, const char *node, int64_t delta);
uint64_t zc_state_txn_load(zc_state_t *s, MDB_txn *t, const char *node);
/* Least-loaded placement: among the nodes holding a free cart whose breaker
 * is CLOSED, the one with the fewest ASSIGNED carts (ties: the one whose
 * such cart comes first in the free list); that cart in *out.  A walk of
 * loadfree from its first entry: O(log carts) when the least-loaded node's
 * first free cart is CLOSED, plus the free carts with open breakers
 * skipped.  0 found, 1 none, -1 storage error. */
int zc_state_txn_least_loaded(zc_state_t *s, MDB_txn *t, zc_cart_rec_t *out);
int zc_state_txn_put_member(zc_state_t *s, MDB_txn *t, const zc_member_t *m);
int zc_state_txn_del_member(zc_state_t *s, MDB_txn *t, uint64_t id);

#endif
