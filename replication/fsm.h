/* fsm: the replicated state machine -- apply, snapshot, restore -- on LMDB.
 *
 * Raft hands every committed command entry to zc_fsm_apply in log order on
 * every replica.  The entry's index is written in the same LMDB transaction
 * as its effects (meta.applied_index) -- a transaction that consecutive
 * entries may share (zc_fsm_set_batch) -- and an entry whose index is not
 * above it is skipped: that is how a restarted replica, whose Raft log replays
 * entries the LMDB state already holds, never applies one twice -- without a
 * synced LMDB commit per entry (the Raft log is the durability).
 *
 * Snapshots are the whole LMDB content plus the applied index it reflects,
 * built off the event loop from a read transaction opened on it (fsm.c,
 * "snapshots").
 * Restore replaces the state only if the snapshot is newer than what LMDB
 * already holds; either way later entries up to the snapshot's own index are
 * skipped.  So a snapshot that Raft labels with an older index than its
 * content (possible right after a restart) is still applied exactly once.
 *
 * The apply path has no clock, no randomness and no I/O other than LMDB: the
 * same log gives the same state and the same digest everywhere. */
#ifndef ZC_REPLICATION_FSM_H
#define ZC_REPLICATION_FSM_H

#include <raft.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "replication/command.h"
#include "replication/state.h"

typedef struct zc_fsm zc_fsm_t;

/* Open the state under dir (created if missing).  NULL with err on failure. */
zc_fsm_t *zc_fsm_new(const char *dir, size_t map_size, char *err, size_t errlen);
void zc_fsm_destroy(zc_fsm_t **p);
zc_state_t *zc_fsm_state(zc_fsm_t *f);
/* Index of the last entry whose effects are in the state. */
uint64_t zc_fsm_applied_index(zc_fsm_t *f);

/* Apply the encoded command `data` as log entry `index`.  Fills *out (also
 * for KO outcomes, which are not errors).  Returns -1 only when storage
 * failed, in which case nothing was applied. */
int zc_fsm_apply(zc_fsm_t *f, uint64_t index, const void *data, size_t len, zc_cmd_result_t *out);
/* Batching (fsm.c, "batching"): entries applied share one LMDB write
 * transaction until zc_fsm_flush, or until it holds max_entries (1, the
 * default: each entry commits alone; 0 means 1).  The state's reads see
 * the batch.  Setting it commits an open batch first. */
void zc_fsm_set_batch(zc_fsm_t *f, unsigned max_entries);
/* Commit the open batch (none: nothing to do).  -1 when it could not be
 * committed, even after growing the map and applying its entries again:
 * they are lost from the state, and every later apply fails too -- the
 * replica must restart from its log. */
int zc_fsm_flush(zc_fsm_t *f);
typedef struct {
    uint64_t commits;     /* batches committed */
    uint64_t entries;     /* entries in them */
    uint64_t max_entries; /* the largest batch */
    uint64_t redone;      /* batches applied again after a failed write or commit */
} zc_fsm_batch_stats_t;
void zc_fsm_batch_stats(zc_fsm_t *f, zc_fsm_batch_stats_t *out);
/* Why the last failed zc_fsm_apply failed, in LMDB's words ("commit: No
 * space left on device"); "no error" before any failure. */
const char *zc_fsm_apply_error(const zc_fsm_t *f);

/* Serialize the whole state into out, here and now (tests, tools). */
int zc_fsm_snapshot(zc_fsm_t *f, zc_wbuf_t *out);

/* A snapshot in three steps (zc_fsm_raft_async drives them from raft;
 * zc_fsm_raft runs all three on the loop):
 *   begin  (the loop thread) opens a read transaction: the snapshot is the
 *          state as of now, whatever is applied afterwards.  -1 when one is
 *          already in progress or LMDB refused.
 *   build  (any one thread, once) syncs the state and serializes it from
 *          that transaction, then closes it.  The bytes (data, len) stay valid, owned
 *          by f, until end.  -1 on failure or when the map grew meanwhile
 *          (the snapshot was cancelled).
 *   end    (the loop thread) frees it all; waits for a build still running.
 * Nothing else of f may be used from another thread. */
int zc_fsm_snapshot_begin(zc_fsm_t *f);
int zc_fsm_snapshot_build(zc_fsm_t *f, const void **data, size_t *len);
void zc_fsm_snapshot_end(zc_fsm_t *f);

/* Snapshot counters since open. */
typedef struct {
    uint64_t snapshots;     /* builds that succeeded */
    uint64_t failed;        /* builds that failed or were cancelled */
    uint64_t build_last_us; /* duration of the last successful build (off the loop) */
    uint64_t build_max_us;  /* the longest one */
    uint64_t begin_max_us;  /* the longest begin (the part on the loop) */
    uint64_t bytes_last;    /* size of the last snapshot */
    uint64_t index_last;    /* applied index of the last snapshot */
    bool in_progress;       /* a snapshot is between begin and end */
} zc_fsm_snapshot_stats_t;
void zc_fsm_snapshot_stats(zc_fsm_t *f, zc_fsm_snapshot_stats_t *out);
/* Replace the state with a snapshot if it is newer; -1 if malformed or on
 * storage failure (state unchanged). */
int zc_fsm_restore(zc_fsm_t *f, const void *data, size_t len);

/* Fill a raft_fsm whose callbacks drive f.  The index of each applied
 * entry is read from `r` (r->last_applied + 1), which must be the raft
 * instance this fsm is registered with: call zc_fsm_bind once it exists.
 *
 * zc_fsm_raft_async (version 3, what the broker and the sim run): begun on
 * the loop (an LMDB read transaction, microseconds), built on a worker via
 * io->async_work, ended in snapshot_finalize.  The raft I/O guard decides
 * the snapshot's configuration when raft hands the build to async_work
 * (its fix 7b), not when the finished snapshot is written.  raft_init
 * refuses version 3 unless the io says version >= 2 (set io->version = 2:
 * raft 0.15's libuv io has async_work but says 1).
 *
 * zc_fsm_raft (version 2): begun and built at once, on the loop -- ~1 s
 * at 100k carts (bench/README.md "At scale"); the async one starts from it. */
void zc_fsm_raft(zc_fsm_t *f, struct raft_fsm *out);
void zc_fsm_raft_async(zc_fsm_t *f, struct raft_fsm *out);
void zc_fsm_bind(zc_fsm_t *f, struct raft *r);

#endif
