/* state: the replicated state as it lives in LMDB, and read-only queries.
 *
 * Four LMDB databases in one environment (<data>/state):
 *
 *   meta      text key -> u64: applied_index, applied_commands, next_gen,
 *             free_tail (next free-list position), sessions_live,
 *             sessions_ended, carts_total and carts_assigned (kept by every
 *             apply, so status and the storage limit read them in O(1);
 *             counts_v = 3 once they are kept -- a state from before is
 *             counted once when opened)
 *   carts     cart id "<node>.<slot>" -> cart record (state FREE, ASSIGNED or
 *             DRAINING; generation and session of the latest assignment;
 *             free-list position while FREE; the cart's breaker record)
 *   free      u64 position (big-endian, so LMDB order = FIFO order) -> cart id
 *   sessions  16-octet session id -> session record (LIVE, CLOSED, EXPIRED;
 *             cart and generation)
 *   members   u64 replica id -> its raft address, client and cart endpoints
 *             (the directory behind NOT_LEADER redirects; raft's own
 *             configuration decides who votes)
 *
 * and indexes derived from `carts` for placement and breakers, kept by
 * every apply but neither snapshotted nor hashed (rebuilt from the carts
 * when a state is opened without them, and after every restore):
 *
 *   nodefree  node name, 0x00, u64 free position -> cart id: each node's
 *             free carts in free-list order
 *   nodeload  node name -> u64 carts ASSIGNED on that node
 *   loadfree  u64 load, u64 first free position, node name -> empty: one
 *             entry per node with a free cart, so least-loaded placement
 *             reads the first entries instead of visiting every node
 *   brkidx    cart id -> empty: the carts whose breaker is not CLOSED-and-
 *             automatic (kept by every write of a cart record), so status
 *             and the leader's liveness rules visit only those
 *
 * Invariant kept by every apply: registered carts = free + assigned +
 * draining, disjoint; a cart is FREE iff it has an entry in `free`; a LIVE
 * session's cart is ASSIGNED to it with the same generation.
 *
 * Only fsm.c writes (through the zc_state_put_* / del helpers, inside its
 * own write transaction).  Everybody else reads through the query functions,
 * each of which uses its own short read transaction.  The environment is
 * opened MDB_NOSYNC: the Raft log is the durability, and applied_index --
 * written in the same transaction as every change -- tells a restarted
 * replica which entries it already holds. */
#ifndef ZC_REPLICATION_STATE_H
#define ZC_REPLICATION_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/msg.h"
#include "replication/breaker.h"

typedef enum { ZC_CART_FREE = 1, ZC_CART_ASSIGNED = 2, ZC_CART_DRAINING = 3 } zc_cart_state_t;
typedef enum { ZC_SESS_LIVE = 1, ZC_SESS_CLOSED = 2, ZC_SESS_EXPIRED = 3 } zc_session_state_t;

/* A registered cart. */
typedef struct {
    char id[ZC_CART_MAX + 1];        /* "<node>.<slot>" (the key) */
    char node[ZC_NODE_MAX + 1];      /* cart node hosting it */
    uint16_t slot;                   /* slot on that node */
    uint8_t state;                   /* zc_cart_state_t */
    uint64_t generation;             /* latest assignment (or drain) generation */
    uint8_t session[ZC_SESSION_LEN]; /* ASSIGNED/DRAINING: that assignment's session */
    uint64_t free_pos;               /* FREE: its key in `free` */
    uint64_t since_ms;               /* leader time of the last state change */
    zc_breaker_t breaker;            /* its circuit breaker (replicated with it) */
} zc_cart_rec_t;

/* A session the cluster has seen. */
typedef struct {
    uint8_t id[ZC_SESSION_LEN]; /* the key */
    uint8_t state;              /* zc_session_state_t */
    char cart[ZC_CART_MAX + 1]; /* its cart */
    uint64_t generation;        /* its assignment's generation */
    uint64_t since_ms;          /* leader time of the last state change */
    bool lost;                  /* its previous cart was lost and it moved to this one;
                                   the client has not been told (CART_LOST) yet */
} zc_session_rec_t;

#define ZC_ADDR_MAX 255

/* A broker replica and where to reach it. */
typedef struct {
    uint64_t id;                           /* raft server id, > 0 */
    char raft_address[ZC_ADDR_MAX + 1];    /* "host:port" of the raft transport */
    char client_endpoint[ZC_ADDR_MAX + 1]; /* ZeroMQ endpoint for clients */
    char cart_endpoint[ZC_ADDR_MAX + 1];   /* ZeroMQ endpoint for cart nodes */
} zc_member_t;

typedef struct {
    uint32_t total, free, assigned, draining; /* carts by state */
    uint32_t sessions_live;                   /* LIVE sessions */
    uint32_t sessions_ended;                  /* CLOSED or EXPIRED (tombstones) */
} zc_state_counts_t;

/* The open state: opaque outside state.c and the FSM (replication/state_txn.h). */
typedef struct zc_state zc_state_t;

/* Open (creating) the state under dir.  map_size 0 = ZC_STATE_MAP_DEFAULT. */
zc_state_t *zc_state_open(const char *dir, size_t map_size, char *err, size_t errlen);
/* Open an existing state read-only, for inspection (zcart-broker
 * --dump-state): nothing is created or written, and the state of a stopped
 * replica is left exactly as it was.  NULL with err when dir is missing or
 * holds no (or a corrupt) zcart state. */
zc_state_t *zc_state_open_readonly(const char *dir, char *err, size_t errlen);
void zc_state_close(zc_state_t **s);

/* Queries (each in its own read transaction).  0 found, 1 not found,
 * -1 storage error. */
int zc_state_get_session(zc_state_t *s, const uint8_t id[ZC_SESSION_LEN], zc_session_rec_t *out);
int zc_state_get_cart(zc_state_t *s, const char *id, zc_cart_rec_t *out);
int zc_state_counts(zc_state_t *s, zc_state_counts_t *out);
int zc_state_get_member(zc_state_t *s, uint64_t id, zc_member_t *out);
/* Local (unreplicated) text values, synced on write.  get: 0, 1 absent. */
int zc_state_local_get(zc_state_t *s, const char *key, char *out, size_t cap);
int zc_state_local_set(zc_state_t *s, const char *key, const char *value);
/* Call fn for every member in id order. */
int zc_state_each_member(zc_state_t *s, int (*fn)(const zc_member_t *m, void *arg), void *arg);
/* Call fn for every cart in id order; stops early when fn returns non-zero. */
int zc_state_each_cart(zc_state_t *s, int (*fn)(const zc_cart_rec_t *c, void *arg), void *arg);
/* Call fn for every cart whose breaker is not CLOSED-and-automatic, in id
 * order: O(those carts), through brkidx.  Stops early when fn returns
 * non-zero. */
int zc_state_each_breaker_not_closed(zc_state_t *s, int (*fn)(const zc_cart_rec_t *c, void *arg),
                                     void *arg);
/* How many such carts, O(1). */
uint64_t zc_state_breakers_not_closed(zc_state_t *s);
/* Call fn for every cart of cart node `node` (key order); stops early when
 * fn returns non-zero.  O(that node's carts). */
int zc_state_each_node_cart(zc_state_t *s, const char *node,
                            int (*fn)(const zc_cart_rec_t *c, void *arg), void *arg);
/* Call fn for every free cart id in free-list order; stops early when fn
 * returns non-zero. */
int zc_state_each_free(zc_state_t *s, int (*fn)(const char *cart, void *arg), void *arg);
/* Call fn for every session (LIVE, CLOSED or EXPIRED) in id order; stops
 * early when fn returns non-zero.  -1 on a storage error or an undecodable
 * record (fn has then seen the sessions before it). */
int zc_state_each_session(zc_state_t *s, int (*fn)(const zc_session_rec_t *r, void *arg),
                          void *arg);
/* The same from the first session id >= from (all-zero: the first), at most
 * max sessions; returns how many fn saw, -1 on a storage error.  For scans
 * spread over many ticks (broker/purge.c). */
int zc_state_each_session_from(zc_state_t *s, const uint8_t from[ZC_SESSION_LEN], unsigned max,
                               int (*fn)(const zc_session_rec_t *r, void *arg), void *arg);
/* Count the sessions and carts into meta (sessions_live, sessions_ended,
 * carts_total, counts_v) when counts_v is not 2: a state written before the
 * counters existed.  0, or -1 on a storage error. */
int zc_state_ensure_counts(zc_state_t *s);
#define ZC_STATE_COUNTS_V 3

/* The storage limit.  Every record (a session, a cart) is budgeted at
 * ZC_STATE_RECORD_BUDGET bytes of map -- several times what one takes,
 * B-tree pages half full and copy-on-write included -- so a state of
 * zc_state_max_records(map) records fills at most half of its map: the rest
 * is the headroom that lets every apply of an existing session's command
 * succeed.  An ASSIGN carries the leader's limit, and every replica refuses
 * a new session past it (STORAGE_FULL) at the same entry. */
#define ZC_STATE_RECORD_BUDGET 512
#define ZC_STATE_MAP_DEFAULT ((size_t)2 << 30)
uint32_t zc_state_max_records(size_t map_size);
/* Records counted against that limit: sessions (live and ended) + carts.
 * O(1) (meta counters). */
uint64_t zc_state_records(zc_state_t *s);
/* Bytes of the map in use (pages below the high-water mark not on LMDB's
 * free list) and the map's size. */
int zc_state_storage(zc_state_t *s, uint64_t *used_bytes, uint64_t *map_bytes);
uint64_t zc_state_meta(zc_state_t *s, const char *key);
/* A number that changes whenever a cart is registered or forgotten, or the
 * state is replaced: equal values mean the same set of cart ids.  In memory
 * only (it starts again at open); O(1). */
uint64_t zc_state_registry_epoch(const zc_state_t *s);
/* Entries on the free list (whatever their breakers), O(1). */
uint64_t zc_state_free_count(zc_state_t *s);
/* FNV-1a 64 over the canonical encoding of carts, free list, sessions and the
 * generation counter (not the indexes, not the member directory): equal
 * states, equal digests. */
uint64_t zc_state_digest(zc_state_t *s);

/* Verify the structural invariants (DESIGN.md §4, items 1 and 5):
 *   - every cart is FREE, ASSIGNED or DRAINING, and FREE iff it is on the
 *     free list, exactly once (registered = free + assigned + draining,
 *     disjoint);
 *   - every free-list entry names a registered FREE cart;
 *   - a LIVE session's cart is ASSIGNED to that session and generation, and
 *     every ASSIGNED cart is held by such a LIVE session (so no cart has two
 *     live sessions and no session two carts).
 *   - the placement index has one entry per node with a free cart, at that
 *     node's load and first free position.
 * 0 if all hold; -1 with the first violation described in why. */
int zc_state_check(zc_state_t *s, char *why, size_t whylen);

/* Rebuild nodefree, nodeload, loadfree and brkidx from the carts (open, restore);
 * meta index_v = ZC_STATE_INDEX_V once they are kept. */
#define ZC_STATE_INDEX_V 3
int zc_state_rebuild_indexes(zc_state_t *s);

/* Backup and restore (replication/backup.h).  Write a compacted copy of the
 * whole state, as of one commit, to fd (an LMDB data file); safe from another
 * thread while this one writes.  0 or -1. */
int zc_state_copy_fd(zc_state_t *s, int fd);
/* Make a restored copy the start of a new cluster: applied index 0 (so the
 * new cluster's entries apply from its first one) and no replica directory
 * (the new cluster's members fill it).  Carts, sessions and the free list
 * stay: the digest is unchanged.  0 or -1. */
int zc_state_forget_history(zc_state_t *s);

#endif
