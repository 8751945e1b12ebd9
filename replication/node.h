/* node: one replica's Raft node on a libuv loop, seen from the broker.
 *
 * Owns the raft instance, its libuv I/O and relay transport (<dir>/raft,
 * replication/transport.h) and
 * the LMDB state machine (<dir>/state).  The broker proposes commands and
 * reads the state; it never sees raft.h.
 *
 * Leadership.  Being raft leader is not enough to serve: a new leader may
 * not yet have applied every entry committed by its predecessors, so its
 * state could be stale.  On election the node appends a barrier and becomes
 * *ready* only when the barrier is applied.  zc_node_ready() is what the
 * broker checks before routing; the role callback fires whenever role or
 * readiness changes (checked once per loop iteration, so no transition is
 * missed and none costs a timer).
 *
 * Lifetimes: zc_node_new/start, then zc_node_close(cb) which completes
 * asynchronously on the loop; the node frees itself before calling cb. */
#ifndef ZC_REPLICATION_NODE_H
#define ZC_REPLICATION_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "lib/prom.h"
#include "lib/zsec.h"
#include "replication/command.h"
#include "replication/fsm.h"
#include "replication/proposer.h"
#include "replication/state.h"

/* One cluster member and where to reach it (see state.h). */
typedef zc_member_t zc_replica_t;

typedef struct {
    uint64_t id;                     /* this replica's id */
    const char *dir;                 /* data directory */
    const zc_replica_t *replicas;    /* initial members, this one included */
    unsigned n_replicas;             /* entries in replicas */
    unsigned election_timeout_ms;    /* raft election timeout (randomized 1x..2x) */
    unsigned heartbeat_timeout_ms;   /* raft heartbeat, < election timeout */
    unsigned snapshot_threshold;     /* entries between snapshots, at least */
    unsigned snapshot_threshold_max; /* and at most, as the state grows (node.c) */
    unsigned snapshot_trailing;      /* entries kept after a snapshot */
    size_t segment_size;             /* raft log segment bytes, 0 = raft's default */
    bool pre_vote;                   /* raft pre-vote */
    bool join;                       /* joining an existing cluster: never bootstrap */
    bool recover;                    /* quorum lost for good: force a configuration of
                                      exactly `replicas` (raft_recover) before starting */
    size_t state_map_size;           /* LMDB map size, 0 = default */
    unsigned apply_batch;            /* applied entries per LMDB commit at most (fsm.h); the
                                        rest commit when the loop turn ends.  0 or 1: each alone */
    unsigned propose_batch;          /* commands per raft_apply at most (proposer.h); those
                                        proposed in one loop turn go together.  0: 64 */
    const zc_sec_t *sec;             /* raft relay keys (transport.h); NULL: no CURVE */
    const zc_sec_t *raft_sec;        /* this replica's own raft key (transport.h), or NULL */
    void *zctx;                      /* ZeroMQ context, NULL: zc_sec_context() */
} zc_node_config_t;

typedef enum {
    ZC_ROLE_UNAVAILABLE = 0,
    ZC_ROLE_FOLLOWER,
    ZC_ROLE_CANDIDATE,
    ZC_ROLE_LEADER,
} zc_role_t;

/* A replica's view of itself, for status. */
typedef struct {
    int role;               /* zc_role_t */
    bool ready;             /* leader with every earlier entry applied */
    uint64_t term;          /* current term */
    uint64_t commit_index;  /* raft commit index */
    uint64_t applied_index; /* last entry in the LMDB state */
    uint64_t last_index;    /* last entry in the raft log */
    uint64_t leader_id;     /* known leader, 0 if none */
    uint64_t leader_commit; /* a follower: the highest commit index a leader announced
                               to it (0 if none yet); a leader: its commit index */
} zc_node_info_t;

typedef struct zc_node zc_node_t;

/* Raft's work as the broker's /metrics shows it (broker/metrics.c).  Every
 * count is of commands except proposal_batches: the commands proposed in
 * one loop turn go to raft as one batch (proposer.h). */
typedef struct {
    uint64_t proposed;           /* commands handed to raft_apply */
    uint64_t committed;          /* of those, applied here (the proposer's answer) */
    uint64_t failed;             /* of those, leadership lost before they applied */
    uint64_t refused;            /* proposals refused: not a ready leader */
    uint64_t proposal_batches;   /* raft_apply calls that took commands */
    uint64_t proposal_batch_max; /* the most commands one of them took */
    uint64_t leader_changes;     /* times this replica learned of a new leader */
    zc_hist_t commit_lat;        /* zc_node_propose to applied, committed proposals */
} zc_node_raft_stats_t;

/* Called when role or readiness may have changed. */
typedef void (*zc_node_role_cb)(void *arg);
/* Outcome of a proposal (zc_propose_cb, proposer.h).  status: ZC_OK with
 * *res filled (res->status is the command's own outcome), once the
 * command's own entry is committed and applied here; ZC_NOT_LEADER if this
 * node was not a ready leader when proposing (or when its loop turn's
 * commands went to raft); ZC_UNAVAILABLE if leadership was lost before the
 * entry was applied here -- the entry may or may not commit later (retry:
 * every command is idempotent). */

zc_node_t *zc_node_new(uv_loop_t *loop, const zc_node_config_t *cfg, zc_node_role_cb role_cb,
                       void *arg, char *err, size_t errlen);
/* 0, or -1 with err: the node is then unusable and must still be closed. */
int zc_node_start(zc_node_t *n, char *err, size_t errlen);
void zc_node_close(zc_node_t *n, void (*done)(void *arg), void *arg);

bool zc_node_ready(zc_node_t *n);
/* Raft stopped on its own (a storage error): the replica must restart. */
bool zc_node_failed(zc_node_t *n);
void zc_node_info(zc_node_t *n, zc_node_info_t *out);
void zc_node_raft_stats(zc_node_t *n, zc_node_raft_stats_t *out);
/* Readiness to serve as an operator's probe sees it (/readyz): a leader
 * whose barrier applied; or a replica that knows a leader and has applied
 * all but at most max_lag of the entries a leader announced committed.
 * When not, why (one line) is written. */
bool zc_node_info_ready(const zc_node_info_t *info, unsigned max_lag, char *why, size_t cap);
/* Where member `id` listens: the replicated directory first, then the
 * command-line members.  False if unknown. */
bool zc_node_member(zc_node_t *n, uint64_t id, zc_replica_t *out);
/* Ids and roles ("voter", "standby", "spare") of raft's current
 * configuration; returns how many (at most max). */
unsigned zc_node_configuration(zc_node_t *n, uint64_t *ids, const char **roles, unsigned max);

/* --- membership and leadership (leader only) ---
 * cb(arg, status, detail) fires once: ZC_OK, ZC_NOT_LEADER, ZC_BAD_REQUEST
 * (unknown or invalid id), ZC_UNAVAILABLE (another change is in progress,
 * or the change failed; detail says why). */
typedef void (*zc_change_cb)(void *arg, int status, const char *detail);
/* Hand leadership to `id` (0: raft picks a voter); OK once it leads. */
void zc_node_transfer(zc_node_t *n, uint64_t id, zc_change_cb cb, void *arg);
/* Add a server and promote it to voter once it has caught up. */
void zc_node_add_voter(zc_node_t *n, uint64_t id, const char *raft_address, zc_change_cb cb,
                       void *arg);
/* Remove a server from the configuration. */
void zc_node_remove(zc_node_t *n, uint64_t id, zc_change_cb cb, void *arg);

/* A peer's process is gone (its connections dropped).  If it is the leader
 * this follower follows, stop trusting it at once: forget it (so this
 * follower grants votes) and fire the election timer after a delay staggered
 * by this server's rank among the remaining voters, so the lowest-ranked
 * follower campaigns first and split votes are rare.  Raft's safety does not
 * depend on timers; a false alarm costs at most a rejected pre-vote. */
void zc_node_peer_gone(zc_node_t *n, uint64_t id);
zc_state_t *zc_node_state(zc_node_t *n);

/* This replica's snapshots (built off the loop, replication/fsm.c). */
typedef struct {
    uint64_t snapshots;     /* snapshots built */
    uint64_t failed;        /* builds failed or cancelled */
    uint64_t build_last_us; /* the last build's duration (worker thread) */
    uint64_t build_max_us;  /* the longest build */
    uint64_t begin_max_us;  /* the longest part on the loop (opening the read txn) */
    uint64_t bytes_last;    /* the last snapshot's size */
    unsigned sending;       /* followers this leader is sending a snapshot to now */
    uint64_t resent;        /* installs given up because the follower restarted (guard 11) */
    unsigned threshold;     /* entries between snapshots now (zc_node_snapshot_threshold) */
} zc_node_snapshot_stats_t;
void zc_node_snapshot_stats(zc_node_t *n, zc_node_snapshot_stats_t *out);
/* How applied entries were committed to the state (replication/fsm.c, "batching"). */
void zc_node_batch_stats(zc_node_t *n, zc_fsm_batch_stats_t *out);
/* The snapshot threshold for a state of state_bytes in use and entries of
 * entry_bytes on average: entries making half the state's bytes, within
 * [min, max] (max below min counts as min). */
unsigned zc_node_snapshot_threshold(uint64_t state_bytes, uint64_t entry_bytes, unsigned min,
                                    unsigned max);
const char *zc_role_name(int role);

/* Propose a command; cb fires exactly once (possibly before this returns
 * when the proposal is refused at once, and then only cb).  The commands
 * proposed in one turn of the loop go to raft together when the turn ends
 * (one raft_apply, at most propose_batch commands: proposer.h). */
void zc_node_propose(zc_node_t *n, const zc_cmd_t *cmd, zc_propose_cb cb, void *arg);

#endif
