/* io_guard: a raft_io wrapper that keeps canonical/raft 0.15 clear of its
 * known safety bugs, at the one seam zcart owns (the I/O interface).
 *
 * The guard installs itself on an existing struct raft_io: it keeps a copy
 * of the inner methods (libuv's in the broker, raft_fixture's in zcart-sim)
 * and puts its own in their place, so raft, the inner backend and the
 * fixture's own bookkeeping all keep the same struct.  Both the broker's
 * node (replication/node.c) and the simulation (tests/sim/sim.c) install
 * it, so the sim tests exactly what production runs.  io_guard.c's header
 * comment lists each bug it covers, with raft's file:line and why the
 * guard's rule is enough.
 *
 * Lifetime: zc_io_guard_install after the inner io is initialized and
 * before raft_start (raft_init may come before or after), zc_io_guard_bind
 * once raft_init has run, zc_io_guard_destroy after the io is closed.
 * Single-threaded: every method runs on the raft loop. */
#ifndef ZC_REPLICATION_IO_GUARD_H
#define ZC_REPLICATION_IO_GUARD_H

#include <raft.h>
#include <stdbool.h>
#include <stdint.h>

/* The fixes, one bit each (ZC_IO_GUARD_ALL in production; the sim turns
 * single ones off to prove each is needed). */
enum {
    ZC_IO_GUARD_CAP_RECV = 1u << 0,      /* 1a: success results sent while handling an AE */
    ZC_IO_GUARD_CAP_CB = 1u << 1,        /* 1b: success results sent from I/O callbacks */
    ZC_IO_GUARD_SNAPSHOT_PREV = 1u << 2, /* 2: AppendEntries below the follower's snapshot */
    ZC_IO_GUARD_OWN_TERM = 1u << 3,      /* 3: no commit of earlier-term entries by counting */
    ZC_IO_GUARD_PREVOTE_TERM = 1u << 4,  /* 4: a refused pre-vote carries the refuser's term */
    ZC_IO_GUARD_CONF_ROLLBACK = 1u << 5, /* 7a: rolling back a configuration whose entry is compacted */
    ZC_IO_GUARD_SNAPSHOT_CONF = 1u << 6, /* 7b: snapshots store the committed configuration */
    ZC_IO_GUARD_STALE_LEADER = 1u << 7,  /* 7c: a spare or standby answers vote requests as a voter */
    ZC_IO_GUARD_CONF_ON_RECEIPT = 1u << 8, /* 7d: a follower adopts a configuration when it receives it */
    ZC_IO_GUARD_LOST_LOG = 1u << 9,      /* 10: a follower that lost its log is caught up again */
    ZC_IO_GUARD_CONF_AT_START = 1u << 10, /* 7e: a configuration in the log at start is pending */
    ZC_IO_GUARD_SNAPSHOT_RESTART = 1u << 11, /* 11: a restarted peer gets its snapshot again */
    ZC_IO_GUARD_ALL = (1u << 12) - 1,
};

/* Exit status of a replica stopped by a storage error (sysexits' EX_IOERR). */
#define ZC_EXIT_STORAGE 74

/* A storage write failed (op: "append", "truncate", "snapshot write",
 * "term write", "vote write"; or "membership" when the guard cannot
 * find the committed configuration it must restore, fix 7; status: raft's error code; detail: the inner
 * io's errmsg).  Raft must not go on with that server: the broker's hook
 * (NULL) logs and exits with ZC_EXIT_STORAGE; the sim's takes the server
 * down for good.  If the hook returns, raft sees a returned error as is and
 * a failure reported in a callback as success (io_guard.c, hidden_failure):
 * the server must then never be heard from again. */
typedef void (*zc_io_guard_fatal_cb)(void *arg, const char *op, int status, const char *detail);

/* What the guard changed (counters since install). */
typedef struct {
    uint64_t results_capped;   /* 1: success results lowered to the accepted prefix */
    uint64_t results_dropped;  /* 1: success results with nothing accepted in their term */
    uint64_t prev_raised;      /* 2: AppendEntries moved up to the snapshot */
    uint64_t leader_dropped;   /* 3: results held back (or dropped) before the leader stored its term */
    uint64_t prevote_raised;   /* 4: refused pre-votes given the refuser's term */
    uint64_t storage_failures; /* 5: storage failures reported to the hook */
    uint64_t conf_rollbacks;   /* 7a: uncommitted configurations rolled back by the guard */
    uint64_t snapshot_confs;   /* 7b: snapshots given the committed configuration */
    uint64_t conf_missing;     /* 7: the committed configuration was unknown (a guard bug) */
    uint64_t leaders_forgotten; /* 7c: silent leaders a non-voter forgot when asked to vote */
    uint64_t confs_adopted;    /* 7d: configurations a follower adopted on receipt */
    uint64_t lost_logs;        /* 10: followers found holding less than they acknowledged */
    uint64_t confs_pending_at_start; /* 7e: configurations in the log at start made pending */
    uint64_t snapshots_resent; /* 11: installs to a restarted peer given up at once */
    uint64_t leader_commit;    /* highest commit index a leader announced in an
                                  AppendEntries to this server (readiness of a follower) */
} zc_io_guard_stats_t;

typedef struct zc_io_guard zc_io_guard_t;

/* Wrap io (already initialized).  fixes: ZC_IO_GUARD_* bits; fatal: NULL
 * for the broker's log-and-exit.  NULL when out of memory. */
zc_io_guard_t *zc_io_guard_install(struct raft_io *io, unsigned fixes, zc_io_guard_fatal_cb fatal,
                                   void *arg);
/* The raft instance using io (after raft_init). */
void zc_io_guard_bind(zc_io_guard_t *g, struct raft *r);
/* The transport saw a new process of peer `id` (fix 11): a snapshot this
 * leader was sending it is lost with the old process. */
void zc_io_guard_peer_restarted(zc_io_guard_t *g, raft_id id);
/* Followers this leader is sending a snapshot to (0 unless leader). */
unsigned zc_io_guard_installs(const zc_io_guard_t *g);
/* Right after raft_start succeeded (7e). */
void zc_io_guard_started(zc_io_guard_t *g);
void zc_io_guard_stats(const zc_io_guard_t *g, zc_io_guard_stats_t *out);
/* A storage failure the guard could not see itself (uv_peek.h: libuv's
 * background segment finalization or truncation): handled like one it saw
 * -- the fatal hook, or a log line and ZC_EXIT_STORAGE. */
void zc_io_guard_fail(zc_io_guard_t *g, const char *op, int status);
/* Unhook and free (after the io is closed; frees any request still
 * tracked).  Sets *g to NULL. */
void zc_io_guard_destroy(zc_io_guard_t **g);

/* The term of the entry at index in raft's in-memory log (or its
 * snapshot's last entry), 0 if it holds none there. */
raft_term zc_io_guard_term_at(const struct raft_log *l, raft_index index);

#endif
