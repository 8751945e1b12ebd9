/* proposer: the commands a leader proposes in one turn of its event loop,
 * handed to raft together, each caller answered with its own entry's outcome.
 *
 * zc_proposer_propose encodes a command and queues it; zc_proposer_flush
 * (the node calls it when the loop's turn ends, replication/node.c) hands
 * the queue to raft as ONE raft_apply of n entries -- one log append and one
 * AppendEntries per follower for the lot -- and so does a propose that fills
 * the queue to max_batch.  raft 0.15 completes such a raft_apply once, with
 * the first entry's result only (proposer.c says where), so the proposer
 * answers every caller itself, from the entries the state machine applies
 * (zc_proposer_applied), and fails them itself when leadership is lost
 * (proposer.c, "answers").
 *
 * Every callback fires exactly once, with what zc_node_propose always
 * promised (node.h): ZC_OK with the command's own result once its entry is
 * committed and applied on this replica; ZC_NOT_LEADER when this replica
 * was not a ready leader (at propose, or when the queue was flushed: raft
 * refused it); ZC_UNAVAILABLE when leadership was lost before the entry
 * applied (the entry may still commit: every command is idempotent);
 * ZC_INTERNAL when the command could not be encoded.  Only a refusal at
 * propose time fires before zc_proposer_propose returns, and only for that
 * caller: a flush that fills the queue never calls back the others from
 * inside someone's propose -- raft's refusals wait for the next flush.
 *
 * Lifetimes: zc_proposer_new once raft_init has run; zc_proposer_close
 * before raft_close (it fails what raft has not seen yet; raft_close fails
 * the rest through raft's callbacks); zc_proposer_destroy once raft_close
 * has completed.  Single-threaded: everything runs on raft's loop. */
#ifndef ZC_REPLICATION_PROPOSER_H
#define ZC_REPLICATION_PROPOSER_H

#include <raft.h>
#include <stdbool.h>
#include <stdint.h>

#include "lib/prom.h"
#include "replication/command.h"

/* Entries per raft_apply at most, unless configured otherwise. */
#define ZC_PROPOSER_BATCH 64

/* Outcome of a proposal (see above).  res is never NULL; it is only valid
 * during the call. */
typedef void (*zc_propose_cb)(void *arg, int status, const zc_cmd_result_t *res);

typedef struct {
    struct raft *raft;        /* proposals go to it, not owned */
    unsigned max_batch;       /* entries per raft_apply at most; 0: ZC_PROPOSER_BATCH */
    bool (*ready)(void *arg); /* may this replica propose now (a ready leader)? */
    /* raft's log holds entries the proposer cannot account for (raft 0.15
     * dropped a batch half-appended: proposer.c): the replica must stop.
     * If it returns, the proposer answers those callers ZC_UNAVAILABLE. */
    void (*fatal)(void *arg, const char *why, int rv);
    void *arg; /* for ready and fatal */
} zc_proposer_config_t;

/* Per command, not per batch, except batches and batch_max. */
typedef struct {
    uint64_t proposed;    /* commands handed to raft (raft_apply took them) */
    uint64_t committed;   /* of those, applied here: the caller got ZC_OK */
    uint64_t failed;      /* of those, leadership lost before they applied */
    uint64_t refused;     /* commands refused: not a ready leader, or raft said no */
    uint64_t batches;     /* raft_apply calls that took commands */
    uint64_t batch_max;   /* the most commands one of them took */
    zc_hist_t commit_lat; /* zc_proposer_propose to applied, committed commands */
} zc_proposer_stats_t;

typedef struct zc_proposer zc_proposer_t;

/* NULL when out of memory. */
zc_proposer_t *zc_proposer_new(const zc_proposer_config_t *cfg);
/* Fail anything still held (ZC_UNAVAILABLE), free, set *p to NULL. */
void zc_proposer_destroy(zc_proposer_t **p);

/* Queue cmd (copied); cb fires exactly once, later -- or now when refused
 * at once (ZC_NOT_LEADER, ZC_INTERNAL).  A full queue is flushed here. */
void zc_proposer_propose(zc_proposer_t *p, const zc_cmd_t *cmd, zc_propose_cb cb, void *arg);
/* Proposals queued or answers waiting: zc_proposer_flush has work, so the
 * loop must not block before it runs. */
bool zc_proposer_waiting(const zc_proposer_t *p);
/* Commands queued for the next raft_apply. */
unsigned zc_proposer_queued(const zc_proposer_t *p);
/* The loop's turn is over: fail what leadership loss left behind
 * (zc_proposer_check), deliver raft's refusals of earlier flushes, hand the
 * queue to raft as one raft_apply (or refuse it: not a ready leader). */
void zc_proposer_flush(zc_proposer_t *p);
/* Fail every handed-over proposal (ZC_UNAVAILABLE) if this replica is no
 * longer the leader of the term they were proposed in. */
void zc_proposer_check(zc_proposer_t *p);
/* raft's state machine just applied entry raft->last_applied + 1 (call it
 * from inside the raft_fsm apply, after the FSM): res is that entry's
 * result.  The caller that proposed the entry, if any, gets it now. */
void zc_proposer_applied(zc_proposer_t *p, const zc_cmd_result_t *res);
/* The replica is closing: every proposal raft has not taken yet fails now
 * (ZC_UNAVAILABLE; raft's refusals with their own status). */
void zc_proposer_close(zc_proposer_t *p);
void zc_proposer_stats(const zc_proposer_t *p, zc_proposer_stats_t *out);

#endif
