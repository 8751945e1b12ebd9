/* store: a cart node's durable state, in LMDB.
 *
 *   slots  u16 slot -> owner session, owner generation, reset generation,
 *                      dedup record count
 *   items  u16 slot + product -> u32 units
 *   dedup  u16 slot + u64 seq -> the stored answer (status, detail, items)
 *
 * All changes go into one open LMDB write transaction; reads use it too, so
 * they see every change.  store_commit makes one event-loop iteration's
 * changes durable before any reply that depends on them is sent (group
 * commit): it appends them, as after-images, to a write-ahead log
 * (STORE_WAL_NAME in the data directory, lib/wal.c) with one fdatasync.
 * The LMDB transaction itself is committed -- with LMDB's full sync, data
 * pages then meta page -- only by store_checkpoint, which the node calls on
 * a timer (and store_commit when half the log is used); then the log is
 * rewound.  Opening the store replays the log records the last LMDB commit
 * does not hold (a node killed between checkpoints): one sync per iteration
 * instead of LMDB's two, nothing acknowledged lost (docs/architecture.md,
 * "Durability").
 *
 * Fencing (docs/protocol.md §4): a slot serves only its owner (session,
 * generation); it adopts an owner only when it has none; a generation at or
 * below its reset generation is refused for good.  The dedup window keeps
 * the answers of the owner's last STORE_DEDUP_WINDOW state-changing requests,
 * dropping the lowest seq first -- and fewer when their answers together
 * pass STORE_DEDUP_BYTES (an answer holds the whole item list, up to ~18 KB):
 * a slot's dedup records never take more than that, so a node's store is
 * bounded by its slots, not by what clients send.  Once a record was dropped
 * for bytes, the window counts as full (a seq below the lowest kept is
 * "outside the dedup window") until the slot is reset.
 *
 * The map is fixed (--map-size).  Writes never run into it: the node asks
 * store_usage before an add and refuses it (STORAGE_FULL) past
 * STORE_ADD_LIMIT_PCT of the map, leaving the rest for what must go on
 * working -- removes, lists, resets (cart/node.c). */
#ifndef ZC_CART_STORE_H
#define ZC_CART_STORE_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/prom.h"
#include "proto/msg.h"

#define STORE_DEDUP_WINDOW 1024
#define STORE_DEDUP_BYTES (128u << 10) /* a slot's dedup records, encoded, at most */
#define STORE_MAP_DEFAULT ((size_t)1 << 30)
#define STORE_ADD_LIMIT_PCT 70    /* adds refused past this share of the map */
#define STORE_REMOVE_LIMIT_PCT 90 /* removes refused past this one */

#define STORE_WAL_NAME "cart.wal"       /* the write-ahead log, beside data.mdb */
#define STORE_WAL_SIZE ((size_t)4 << 20) /* its size when created */
#define STORE_CHECKPOINT_MS 200          /* the node's checkpoint period */
#define STORE_LOST (-2) /* store_commit / store_checkpoint: the open transaction
                           could not be rebuilt; the node must stop (a restart
                           recovers from LMDB and the log) */

typedef struct store store_t;

/* Counters of the store's durability machinery. */
typedef struct {
    uint64_t log_records;        /* records appended to the log */
    uint64_t log_failures;       /* appends that failed (iteration undone) */
    uint64_t checkpoints;        /* LMDB commits */
    uint64_t checkpoint_failures; /* LMDB commits that failed (the log still holds them) */
    zc_hist_t checkpoint_lat;    /* successful checkpoints' durations */
    uint64_t replayed_records;   /* log records replayed when the store was opened */
    uint64_t replayed_bytes;     /* their payload bytes */
    size_t log_used;             /* bytes of the log since the last checkpoint */
    size_t log_size;             /* the log's size */
} store_stats_t;

/* A slot's ownership record. */
typedef struct {
    uint8_t owner[ZC_SESSION_LEN]; /* owner session, all zero if none */
    uint64_t generation;           /* owner's generation, 0 if none */
    uint64_t reset_generation;     /* highest generation reset so far */
    uint32_t dedup_count;          /* dedup records kept */
    uint32_t dedup_bytes;          /* their encoded answers' total size */
    bool dedup_trimmed;            /* a record was dropped for bytes: the window is full */
} store_slot_t;

/* A dedup record's key, also the key of an add in flight (cart/node.c):
 * the slot, then the seq, both big-endian. */
#define STORE_OP_KEY_LEN 10
void store_op_key(uint8_t key[STORE_OP_KEY_LEN], uint16_t slot, uint64_t seq);

/* Outcome of a fencing check. */
typedef enum {
    STORE_OWNER = 0, /* (session, generation) is the owner */
    STORE_ADOPT,     /* the slot has no owner: this one may take it */
    STORE_FENCED,    /* refused */
} store_fence_t;

/* A stored answer. */
typedef struct {
    uint8_t status;                  /* zc_status_t */
    char detail[ZC_DETAIL_MAX + 1];  /* detail text */
    zc_item_t *items;                /* contents after the op (owned) */
    uint16_t n_items;                /* entries */
} store_answer_t;

/* map_size 0 = STORE_MAP_DEFAULT, wal_size 0 = STORE_WAL_SIZE.  Creates the
 * directory, the environment and the log as needed; replays the log
 * (store_stats: replayed_records), then makes a new log if its size is not
 * wal_size. */
store_t *store_open(const char *dir, unsigned n_slots, size_t map_size, size_t wal_size, char *err,
                    size_t errlen);
/* Bytes of the map in use (pages below the high-water mark that are not on
 * LMDB's free list, as of the last commit) and the map's size. */
int store_usage(store_t *s, uint64_t *used, uint64_t *map);
/* Open an existing store read-only, for inspection (zcart-cart --dump-state):
 * nothing is created or written; every write fails with -1.  NULL with err
 * when dir is missing or holds no (or a corrupt) store. */
/* Read-only, for --dump-state: nothing in dir is written.  When the log
 * holds changes the LMDB commit does not, the store read is a private copy
 * in $TMPDIR with the log replayed (removed by store_close). */
store_t *store_open_readonly(const char *dir, unsigned n_slots, char *err, size_t errlen);
/* Checkpoint (a read-write store), then close. */
void store_close(store_t **p);
/* Close without a checkpoint, as a crash would leave the files: what was
 * not checkpointed is only in the log (tests; failed opens). */
void store_abandon(store_t **p);
void store_stats(store_t *s, store_stats_t *out);
unsigned store_slots(store_t *s);

/* Storage errors are reported as -1 everywhere; the caller answers INTERNAL. */

int store_get_slot(store_t *s, uint16_t slot, store_slot_t *out);
/* Decide whether (session, generation) may use the slot; *why explains a refusal. */
store_fence_t store_fence(const store_slot_t *sl, const uint8_t session[ZC_SESSION_LEN],
                          uint64_t generation, const char **why);
/* Make (session, generation) the owner of an ownerless slot. */
int store_adopt(store_t *s, uint16_t slot, const uint8_t session[ZC_SESSION_LEN],
                uint64_t generation);

/* Units of a product in a slot (0 if absent). */
int store_units(store_t *s, uint16_t slot, const char *product, uint32_t *units);
/* The slot's contents into m's item list (zc_msg_add_item). */
int store_items(store_t *s, uint16_t slot, zc_msg_t *m);
/* Call fn for every line of the slot in product order (bytewise); stops
 * early when fn returns non-zero.  -1 on a storage error or a malformed
 * record. */
int store_each_item(store_t *s, uint16_t slot,
                    int (*fn)(const char *product, uint32_t qty, void *arg), void *arg);
/* Distinct products held. */
int store_count_items(store_t *s, uint16_t slot, uint32_t *n);
/* Outcome of store_change. */
typedef enum {
    STORE_CHANGE_ERROR = -1, /* storage error */
    STORE_CHANGED = 0,       /* done */
    STORE_CHANGE_SHORT,      /* a removal asked for more than is held: nothing changed */
} store_change_t;

/* Add (delta > 0) or remove (delta < 0) units; removing to 0 deletes the
 * line. */
store_change_t store_change(store_t *s, uint16_t slot, const char *product, int64_t delta);

/* Outcome of a dedup lookup. */
typedef enum {
    STORE_DEDUP_ERROR = -1, /* storage error or a malformed record */
    STORE_DEDUP_FOUND = 0,  /* answer filled: free it with store_answer_clear */
    STORE_DEDUP_NEW,        /* never answered: decide it */
    STORE_DEDUP_OUTSIDE,    /* seq below the lowest kept while the window is full */
} store_dedup_t;

store_dedup_t store_dedup_get(store_t *s, uint16_t slot, uint64_t seq, store_answer_t *out);
/* Record an answer (m's status, detail and items) for seq, evicting the
 * lowest seq beyond the window. */
int store_dedup_put(store_t *s, uint16_t slot, uint64_t seq, const zc_msg_t *answer);
void store_answer_clear(store_answer_t *a);

/* Outcome of store_reset. */
typedef enum {
    STORE_RESET_ERROR = -1, /* storage error */
    STORE_RESET_DONE = 0,   /* emptied (or already empty) */
    STORE_RESET_IGNORED,    /* the owner is newer than the reset: nothing changed */
} store_reset_t;

/* Empty the slot: no owner, no items, no dedup records, reset generation
 * raised to `generation`. */
store_reset_t store_reset(store_t *s, uint16_t slot, uint64_t generation);

/* Make every change since the last store_commit durable: one log record,
 * one fdatasync (a checkpoint instead when it does not fit in the log).
 * 0 (also when there was nothing to commit); -1 when it could not be made
 * durable -- those changes are undone, everything committed before stays;
 * STORE_LOST (see above). */
int store_commit(store_t *s);
/* Commit the open LMDB transaction with LMDB's full sync and rewind the
 * log.  0; -1 when LMDB's commit failed (nothing lost: the log and a new
 * open transaction still hold every change); STORE_LOST. */
int store_checkpoint(store_t *s);
/* True when changes exist that store_commit has not made durable. */
bool store_dirty(store_t *s);

#endif
