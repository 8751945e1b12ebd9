/* io_guard: raft 0.15's safety bugs fixed at the I/O seam.  See io_guard.h.
 *
 * Debian ships canonical/raft 0.15.0 (no patches, asserts compiled out),
 * and only that version builds zcart (CMakeLists.txt checks it): the guard
 * reads struct raft_log and struct raft fields, public in 0.15's raft.h.
 * It sees every message raft receives (the recv callback it passes to the
 * inner start), every message raft sends, and every storage write.  The
 * bugs, with file:line in raft v0.15.0, and why each rule is enough:
 *
 * 1. Commit on a minority, two paths.  A follower's success result should
 *    say "I hold the leader's entries up to prev_log_index + n_entries";
 *    raft answers r->last_stored, its whole stored log, in two places:
 *    (a) recv_append_entries.c:128, an AppendEntries accepted without a
 *    write; (b) appendFollowerCb (replication.c:866-908), when a write
 *    finishes, without checking that the term changed, so an append begun
 *    for a deposed leader reports its tail to the next one.  A follower
 *    holding a deposed leader's uncommitted tail thus makes the new leader
 *    count it for indexes where it holds other entries (the leader caps
 *    the answer only at its own last index, replication.c:697): an entry
 *    committed on a minority, and a follower that never catches up.
 *    Rule: per (leader, term) the guard keeps the highest end (prev_log_
 *    index + n_entries, or an InstallSnapshot's last index) of any request
 *    raft accepted -- it answered it with a success, or wrote entries or a
 *    snapshot for it, while handling it.  Within one term only that leader
 *    writes the follower's log and never rewrites what it sent, so the
 *    follower holds the leader's entries up to that end for the rest of the
 *    term.  Every success result leaving the server (both paths) is capped
 *    at it, and dropped when the term or leader it is for accepted nothing
 *    (a late callback after a term change).  Raft's last_stored still bounds
 *    it from above, so a reported index is both stored and the leader's.
 *
 * 2. AppendEntries below the follower's snapshot (log.c:615-618: the term
 *    of a compacted index is 0).  prev_log_index 0 passes the matching
 *    check and the entries land at the end of the log under the wrong
 *    indexes ("No log entries found at index 1", then a NULL dereference or
 *    double free on the error path); a higher compacted prev_log_index is
 *    refused, and the leader, walking back, resends a snapshot forever.
 *    Rule: prev_log_index is raised to the follower's snapshot index and
 *    the entries up to it are dropped: they are committed (a snapshot only
 *    holds applied entries), so the leader's are the ones the snapshot
 *    holds (Leader Completeness).  prev_log_term becomes the leader's term
 *    at that index when the message carries it, so raft still compares it
 *    with the snapshot's, else the snapshot's own.
 *
 * 3. Figure 8 (Raft §5.4.2): replicationQuorum (replication.c:1623-1658)
 *    commits by counting, whatever the entry's term.  It is only ever asked
 *    about the leader's own last stored index (replication.c:515, 746), so
 *    it can commit an earlier-term entry only while the leader's last
 *    stored entry is from an earlier term: a new leader that has stored
 *    nothing of its own yet.  Rule: a leader whose last stored entry is
 *    older than its term holds back every AppendEntries result it receives
 *    (the first HELD_MAX; later ones are dropped, as a lossy link would),
 *    so no match index moves and nothing is counted; once its own entry is
 *    stored, raft gets those of its current term.
 *    The broker's node (and the sim) append a barrier as a new leader's
 *    first entry; once it is stored, the count is at an entry of the
 *    leader's term, whose commitment commits the earlier ones safely.
 *    Liveness needs that barrier (or any entry), which the node retries.
 *
 * 4. Pre-vote deadlock (recv_request_vote.c:111-113): a pre-vote answer
 *    carries the asker's term, even a refusal for a stale term, and an
 *    asker in pre-vote only adopts a term above its own + 1
 *    (recv_request_vote_result.c).  A server that missed terms but holds
 *    the longest log is refused for its term, and refuses the others for
 *    their logs, forever, when no third voter is up.  Rule (etcd's): a
 *    refused pre-vote whose refuser has a higher term than the request
 *    carries the refuser's term, so the asker adopts it and asks again at
 *    a term the others accept.
 *
 * 5. Storage errors do not stop raft: a leader keeps leading after a failed
 *    append, a follower keeps unwritten entries in memory (replication.c
 *    appendLeaderCb / appendFollowerCb), and libuv's uv->errored is never
 *    read.  Rule: a failed append, truncate, snapshot write, term or vote
 *    write -- returned or reported in a callback -- goes to the fatal hook
 *    before raft sees it; the broker's logs the error and exits with
 *    ZC_EXIT_STORAGE, and its supervisor restarts it from its log
 *    (RAFT_CANCELED is no failure: libuv cancels writes when the io
 *    closes, uv_append.c:832, uv_snapshot.c:615; a hook
 *    that returns, the sim's: see hidden_failure below).  libuv's truncate
 *    and segment finalization run on a worker and report a failure only by
 *    setting uv->errored (uv_truncate.c:107, uv_finalize.c:84): the guard
 *    cannot see those, so the node reads that flag (uv_peek.h) on every
 *    loop turn and reports it through zc_io_guard_fail.
 *
 * 7. Membership.  Raft switches to a configuration as soon as its entry is
 *    in the log, and keeps only the index of the last committed one
 *    (configuration_index) to go back to.
 *    (a) Rolling back reads that entry from the in-memory log
 *    (membershipRollback, membership.c:158-166) and dereferences NULL when
 *    it is not there: compacted into a snapshot (every replica compacts
 *    the bootstrap configuration at its first snapshot) or never loaded (a
 *    follower that installed a snapshot, whose log starts after it).  A
 *    follower rolls back when a new leader overwrites an uncommitted
 *    configuration entry (deleteConflictingEntries, replication.c:999).
 *    Rule: the guard keeps copies of the configurations it sees enter the
 *    log (appended entries, installed snapshots, and raft's own whenever
 *    none is uncommitted), keyed by index.  Before an AppendEntries reaches
 *    raft while an uncommitted configuration is pending and the committed
 *    one's entry is not in memory, it hides the pending one (uncommitted
 *    index 0), so raft does not roll back itself; afterwards, if the
 *    pending entry is gone and no newer configuration took its place, it
 *    restores the committed configuration from its copy (what raft's
 *    rollback would have done), else it puts the pending index back.
 *    (b) A snapshot stores raft's current configuration, committed or not,
 *    labelled with the last committed index (takeSnapshot, replication.c:
 *    1523-1527); a follower installing it (or the replica restarting from
 *    it) then holds a configuration that may never commit, as if it had.
 *    Rule: a snapshot raft takes while a configuration is uncommitted
 *    gets the committed one (from the copies) before it is written.
 *    If a copy is ever missing, the guard says so through the fatal hook
 *    ("membership") rather than let raft crash or write a wrong snapshot.
 *    (c) A server that is no voter in its own configuration never votes
 *    (election.c "not voting"; nor does it forget its leader, which only a
 *    voter's election timer does), so a promotee that missed its promotion
 *    entry can block every election for good.  Rule: a spare or standby
 *    answers a vote request as a voter, having forgotten a leader silent
 *    for an election timeout (lend_voter_role).
 *    (d) A follower switches to a configuration entry only when its write
 *    completes, and only if still a follower (appendFollowerCb,
 *    replication.c:866-879).  Rule: it switches as raft appends the entry
 *    (conf_appended).
 *    (e) At start raft takes the last configuration entry in its log as
 *    committed (restoreEntries, start.c:56, a TODO): a replica restarted
 *    with a change pending -- appended, never committed -- keeps that
 *    configuration when a new leader overwrites the entry, since raft
 *    rolls back only a configuration it knows is uncommitted.  Rule: after
 *    raft_start, a configuration entry after the snapshot is pending
 *    (configuration_uncommitted_index), and the committed one is the
 *    configuration entry before it, or the snapshot's (copied at load), as
 *    raft would have it had the replica not restarted; raft's own apply
 *    marks it committed once the commit index passes it.  Nothing to go
 *    back to (the bootstrap entry alone): left as raft has it.
 *
 * 10. A follower that lost its log (its data directory wiped or replaced,
 *    restarted under the same id) is never caught up.  The leader keeps
 *    the follower's match index from before, and a rejection at or below
 *    it reads as stale (progressMaybeDecrement, progress.c:222-228, "match
 *    index is up to date -> ignore"), so the leader sends heartbeats at its
 *    last index for ever and the follower stays at its bootstrap entry.
 *    Rule: a leader's AppendEntries rejection of its own term reporting a log
 *    that ends below the match index raft holds for that follower resets
 *    the follower's progress to what it reports (match = its last index,
 *    probing from the next one; raft then sends entries or a snapshot), and
 *    says so once per loss (stats.lost_logs).  Lowering a match index only
 *    ever makes the leader count less, so a stale result that trips this
 *    costs a resend, never safety.  Not covered, and why the operations
 *    guide replaces such a replica under a new id: until it has caught up,
 *    the follower's votes are given from a log that lacks entries it
 *    acknowledged, and entries committed with its acknowledgement may be on
 *    a minority.
 *
 * 11. A follower restarted while the leader was sending it a snapshot waits
 *    30 s.  In snapshot mode the leader sends heartbeats at its last index
 *    and takes a rejection as news only when it names the snapshot's index
 *    (progressMaybeDecrement, progress.c:212-219); the restarted follower
 *    never got the snapshot and rejects at the leader's last index, so the
 *    leader resends only after install_snapshot_timeout (30 s,
 *    progress.c:122-126).  Rule: when the transport sees the peer's new
 *    process (a new incarnation, replication/transport.c), a leader sending
 *    it a snapshot gives that install up at once (progressAbortSnapshot's
 *    two fields): the next heartbeat probes, and raft sends the snapshot
 *    again.  Only the raft transport knows of restarts, so the sim cannot
 *    reach this rule: unit/test_io_guard drives it on a hand-built leader,
 *    unit/test_transport shows the transport reporting the new process. */
#include "replication/io_guard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"

/* A leader's view of one follower (raft_progress.state): raft's progress.h
 * values, a header 0.15 does not install. */
enum { PROGRESS_PROBE = 0, PROGRESS_PIPELINE = 1, PROGRESS_SNAPSHOT = 2 };

/* A write in flight: raft's request and callback, so the guard sees the
 * outcome first. */
typedef struct pending {
    void *req;            /* raft's raft_io_append or raft_io_snapshot_put */
    void (*cb)(void);     /* raft's callback (cast back by kind) */
    bool is_snapshot;     /* snapshot_put, else append */
    struct pending *next; /* next in flight on this guard */
} pending_t;

/* An AppendEntries result a new leader held back (fix 3). */
typedef struct {
    struct raft_message m; /* the result */
    char address[256];     /* its sender's address (m.server_address points here) */
} held_t;

#define HELD_MAX 16 /* results held per leader change; more are dropped */

/* A configuration the guard has seen enter the log (fix 7). */
typedef struct {
    raft_index index;               /* its entry's index (or a snapshot's), 0: free */
    struct raft_configuration conf; /* a copy, raft_malloc'd as raft's own */
} conf_rec_t;

#define CONF_MAX 8 /* copies kept: the committed one and the few after it */

struct zc_io_guard {
    struct raft_io *io;         /* the wrapped io (raft's and the backend's) */
    struct raft_io inner;       /* its methods before the guard */
    struct raft *raft;          /* the server using io, NULL before bind */
    unsigned fixes;             /* ZC_IO_GUARD_* bits */
    zc_io_guard_fatal_cb fatal; /* storage failure hook, NULL: log and exit */
    void *fatal_arg;            /* its argument */
    raft_io_recv_cb recv;       /* raft's receive callback */
    pending_t *pending;         /* writes in flight, oldest first ... */
    pending_t **pending_end;    /* ... and where the next one goes (NULL: &pending) */
    raft_id acc_leader;         /* fix 1: the leader of acc_term ... */
    raft_term acc_term;         /* ... the latest term seen in its requests ... */
    bool acc_any;               /* ... whether raft accepted any of them ... */
    raft_index acc_end;         /* ... and the highest end it accepted */
    bool in_req;                /* raft is handling an AppendEntries or InstallSnapshot ... */
    raft_id req_from;           /* ... from this server ... */
    raft_term req_term;         /* ... of this term ... */
    raft_index req_end;         /* ... ending at this index */
    held_t held[HELD_MAX];      /* fix 3: results held until the leader stores its term */
    unsigned n_held;            /* entries in held */
    conf_rec_t confs[CONF_MAX]; /* fix 7: configurations seen, by index */
    bool snap_conf_taken;       /* fix 7b: raft's pending snapshot got its configuration
                                   decided when it was taken (asynchronous build) */
    raft_index hidden_u;        /* fix 7a: the uncommitted index hidden from raft, 0 none */
    raft_index observed;        /* fix 7: raft's committed index last copied */
    zc_io_guard_stats_t stats;  /* what the guard changed */
    struct zc_io_guard *next;   /* next installed guard */
};

/* raft hands the guard only the io pointer; io->data is raft's. */
static zc_io_guard_t *guards;

static zc_io_guard_t *guard_of(struct raft_io *io)
{
    for (zc_io_guard_t *g = guards; g != NULL; g = g->next)
        if (g->io == io)
            return g;
    abort(); /* a method of an io the guard never wrapped */
}

raft_term zc_io_guard_term_at(const struct raft_log *l, raft_index index)
{
    size_t n = l->front <= l->back ? l->back - l->front : l->size - l->front + l->back;
    if (index > l->offset && index <= l->offset + n)
        return l->entries[(l->front + (size_t)(index - 1 - l->offset)) % l->size].term;
    return index != 0 && index == l->snapshot.last_index ? l->snapshot.last_term : 0;
}

static int guard_load(struct raft_io *io, raft_term *term, raft_id *voted_for,
                      struct raft_snapshot **snapshot, raft_index *start_index,
                      struct raft_entry *entries[], size_t *n_entries);
/* Fix 7's helpers, used by the write methods (defined below). */
static void conf_observe(zc_io_guard_t *g);
static void conf_appended(zc_io_guard_t *g, const struct raft_entry entries[], unsigned n);
static bool conf_fix_snapshot(zc_io_guard_t *g, const struct raft_snapshot *snapshot);

/* --- 5: storage failures --- */

static void storage_failed(zc_io_guard_t *g, const char *op, int status)
{
    g->stats.storage_failures++;
    const char *detail = g->io->errmsg[0] ? g->io->errmsg : raft_strerror(status);
    if (g->fatal != NULL) {
        g->fatal(g->fatal_arg, op, status, detail);
        return;
    }
    zc_error("raft storage: %s failed: %s (%s); exiting with status %d so the replica "
             "restarts from its log",
             op, raft_strerror(status), detail, ZC_EXIT_STORAGE);
    fflush(NULL);
    _exit(ZC_EXIT_STORAGE); /* no atexit handlers: czmq's would close sockets mid-callback */
}

void zc_io_guard_fail(zc_io_guard_t *g, const char *op, int status)
{
    storage_failed(g, op, status);
}

/* hidden_failure.  The broker's hook never returns.  When a hook does (the
 * sim's, which takes the server down for good at once), a write that
 * failed in its callback is reported to raft as done: raft's own failure
 * paths are bug 5 itself, and on a leader they crash (appendLeaderCb,
 * replication.c:478-487, fires whatever request sits at that index as a
 * raft_apply, then truncates entries other writes still hold).  What raft
 * does afterwards must then never be seen: its messages and its state are
 * those of a process that has exited.  A failure returned by a method is
 * passed through: raft's synchronous error paths are sound, but for one
 * the broker never reaches: an append failing inside raft_add, raft_assign
 * or raft_remove frees the new configuration raft already installed
 * (clientChangeConfiguration, client.c: a double free).  The broker's hook
 * exits inside the append; the sim injects such failures in callbacks. */

/* Writes complete in the order they started (libuv's io queues them; the
 * fixture too), so the one asked for is almost always the first: O(1). */
static pending_t *pending_take(zc_io_guard_t *g, void *req)
{
    for (pending_t **pp = &g->pending; *pp != NULL; pp = &(*pp)->next)
        if ((*pp)->req == req) {
            pending_t *p = *pp;
            *pp = p->next;
            if (g->pending_end == &p->next)
                g->pending_end = pp;
            return p;
        }
    return NULL;
}

static zc_io_guard_t *guard_of_req(void *req, pending_t **out)
{
    for (zc_io_guard_t *g = guards; g != NULL; g = g->next)
        if ((*out = pending_take(g, req)) != NULL)
            return g;
    abort(); /* a completion the guard never saw start */
}

static bool pending_add(zc_io_guard_t *g, void *req, void (*cb)(void), bool is_snapshot)
{
    pending_t *p = malloc(sizeof *p);
    if (p == NULL)
        return false;
    *p = (pending_t){.req = req, .cb = cb, .is_snapshot = is_snapshot, .next = NULL};
    if (g->pending_end == NULL)
        g->pending_end = &g->pending;
    *g->pending_end = p;
    g->pending_end = &p->next;
    return true;
}

/* Raft wrote entries or a snapshot while handling a leader's request:
 * it accepted it (fix 1). */
static void accepted(zc_io_guard_t *g)
{
    if (!g->in_req || g->req_term != g->acc_term || g->req_from != g->acc_leader)
        return;
    if (!g->acc_any || g->req_end > g->acc_end)
        g->acc_end = g->req_end;
    g->acc_any = true;
}

/* Fix 3: once the leader has stored an entry of its term, hand raft the
 * results it held back meanwhile (those of its term), so it need not wait
 * for the next heartbeat's answers to move on. */
static void release_held(zc_io_guard_t *g)
{
    struct raft *r = g->raft;
    if (g->n_held == 0 || r == NULL)
        return;
    if (raft_state(r) == RAFT_LEADER &&
        zc_io_guard_term_at(&r->log, r->last_stored) < r->current_term)
        return; /* still nothing of its term stored */
    unsigned n = g->n_held;
    g->n_held = 0;
    for (unsigned k = 0; k < n; k++) {
        held_t *h = &g->held[k];
        if (raft_state(r) != RAFT_LEADER || h->m.append_entries_result.term != r->current_term)
            continue; /* stale now: dropped, as a lossy link would */
        h->m.server_address = h->address;
        g->recv(g->io, &h->m);
    }
}

/* A storage call that answers at once: a failure stops the replica. */
static int checked(zc_io_guard_t *g, const char *what, int rv)
{
    if (rv != 0)
        storage_failed(g, what, rv);
    return rv;
}

/* The completion of an asynchronous write (append, snapshot): the
 * caller's callback, with a failure reported first and hidden from raft
 * (see hidden_failure); canceled means the io is closing. */
static void (*write_done(zc_io_guard_t *g, pending_t *p, const char *what, int *status))(void)
{
    void (*cb)(void) = p->cb;
    free(p);
    if (*status != 0 && *status != RAFT_CANCELED) {
        storage_failed(g, what, *status);
        *status = 0;
    }
    return cb;
}

/* Submit an asynchronous write: remember its callback (oldest first),
 * then rv = the inner call's answer (submit_end).  A refusal stops the
 * replica, unless canceled (the io is closing). */
static int submit_begin(zc_io_guard_t *g, void *req, void (*cb)(void), bool is_snapshot,
                        const char *what)
{
    if (pending_add(g, req, cb, is_snapshot))
        return 0;
    storage_failed(g, what, RAFT_NOMEM);
    return RAFT_NOMEM;
}

static int submit_end(zc_io_guard_t *g, void *req, const char *what, int rv)
{
    if (rv != 0) {
        free(pending_take(g, req));
        if (rv != RAFT_CANCELED)
            storage_failed(g, what, rv);
        return rv;
    }
    accepted(g);
    return 0;
}

static void append_done(struct raft_io_append *req, int status)
{
    pending_t *p;
    zc_io_guard_t *g = guard_of_req(req, &p);
    raft_io_append_cb cb = (raft_io_append_cb)write_done(g, p, "append", &status);
    cb(req, status);
    release_held(g);
    conf_observe(g);
}

static int guard_append(struct raft_io *io, struct raft_io_append *req,
                        const struct raft_entry entries[], unsigned n, raft_io_append_cb cb)
{
    zc_io_guard_t *g = guard_of(io);
    conf_appended(g, entries, n);
    int rv = submit_begin(g, req, (void (*)(void))cb, false, "append");
    if (rv != 0)
        return rv;
    return submit_end(g, req, "append", g->inner.append(io, req, entries, n, append_done));
}

static int guard_truncate(struct raft_io *io, raft_index index)
{
    return checked(guard_of(io), "truncate", guard_of(io)->inner.truncate(io, index));
}

static void snapshot_done(struct raft_io_snapshot_put *req, int status)
{
    pending_t *p;
    zc_io_guard_t *g = guard_of_req(req, &p);
    raft_io_snapshot_put_cb cb =
        (raft_io_snapshot_put_cb)write_done(g, p, "snapshot write", &status);
    cb(req, status);
}

static int guard_snapshot_put(struct raft_io *io, unsigned trailing,
                              struct raft_io_snapshot_put *req, const struct raft_snapshot *snapshot,
                              raft_io_snapshot_put_cb cb)
{
    zc_io_guard_t *g = guard_of(io);
    if (g->snap_conf_taken && g->raft != NULL && snapshot == &g->raft->snapshot.pending)
        g->snap_conf_taken = false; /* decided when it was taken */
    else
        conf_fix_snapshot(g, snapshot);
    int rv = submit_begin(g, req, (void (*)(void))cb, true, "snapshot write");
    if (rv != 0)
        return rv;
    return submit_end(g, req, "snapshot write",
                      g->inner.snapshot_put(io, trailing, req, snapshot, snapshot_done));
}

/* 7b, asynchronous snapshots: raft copies its configuration into the
 * pending snapshot, then hands the build to async_work and calls
 * snapshot_put only when the build is done (takeSnapshot, replication.c:
 * 1510-1556).  Whether a configuration was pending, and which committed one
 * to store instead, must be decided as of the copy: by the put, the pending
 * one may have committed or been rolled back, and the committed copy the
 * label names may have been dropped (seeds 44, 65, 218, 223, 520 of
 * `zcart-sim --servers 3 --membership --transfers` when the fix ran at the
 * put).  In 0.15 only takeSnapshot uses async_work, right after the copy. */
static int guard_async_work(struct raft_io *io, struct raft_io_async_work *req,
                            raft_io_async_work_cb cb)
{
    zc_io_guard_t *g = guard_of(io);
    struct raft *r = g->raft;
    if (r != NULL && req->data == r && r->snapshot.pending.term != 0 &&
        r->snapshot.put.data == NULL) {
        if (!conf_fix_snapshot(g, &r->snapshot.pending))
            return RAFT_IOERR; /* conf_missing told the hook; raft drops the snapshot */
        g->snap_conf_taken = true;
    }
    int rv = g->inner.async_work(io, req, cb);
    if (rv != 0)
        g->snap_conf_taken = false; /* raft closes the snapshot: nothing to put */
    return rv;
}

static int guard_set_term(struct raft_io *io, raft_term term)
{
    return checked(guard_of(io), "term write", guard_of(io)->inner.set_term(io, term));
}

static int guard_set_vote(struct raft_io *io, raft_id id)
{
    return checked(guard_of(io), "vote write", guard_of(io)->inner.set_vote(io, id));
}

/* --- 2: AppendEntries below the snapshot --- */

static void raise_prev(zc_io_guard_t *g, struct raft_append_entries *ae)
{
    const struct raft_log *l = &g->raft->log;
    raft_index snap = l->snapshot.last_index;
    if (!(g->fixes & ZC_IO_GUARD_SNAPSHOT_PREV) || snap == 0 || ae->prev_log_index > l->offset ||
        ae->prev_log_index >= snap)
        return;
    raft_index skip = snap - ae->prev_log_index; /* entries the snapshot covers */
    ae->prev_log_index = snap;
    if (skip <= ae->n_entries) {
        ae->prev_log_term = ae->entries[skip - 1].term;
    } else {
        ae->prev_log_term = l->snapshot.last_term;
        skip = ae->n_entries;
    }
    if (skip > 0 && skip == ae->n_entries) {
        /* Every entry goes: free them as raft would (one batch in both the
         * libuv and the fixture's decoding, shared by all entries). */
        void *batch = ae->entries[0].batch;
        for (unsigned k = 0; k < ae->n_entries; k++)
            if (ae->entries[k].batch != batch && ae->entries[k].batch != NULL)
                raft_free(ae->entries[k].batch);
        if (batch != NULL)
            raft_free(batch);
        raft_free(ae->entries);
        ae->entries = NULL;
        ae->n_entries = 0;
    } else if (skip > 0) {
        ae->n_entries -= (unsigned)skip;
        memmove(ae->entries, ae->entries + skip, ae->n_entries * sizeof *ae->entries);
    }
    g->stats.prev_raised++;
}

/* --- 7: membership --- */

static size_t log_count(const struct raft_log *l)
{
    return l->front <= l->back ? l->back - l->front : l->size - l->front + l->back;
}

/* The entry at index is in raft's in-memory log (logGet finds it). */
static bool log_holds(const struct raft_log *l, raft_index index)
{
    return index > l->offset && index <= l->offset + log_count(l);
}

static int conf_copy(const struct raft_configuration *src, struct raft_configuration *dst)
{
    raft_configuration_init(dst);
    for (unsigned k = 0; k < src->n; k++) {
        int rv = raft_configuration_add(dst, src->servers[k].id, src->servers[k].address,
                                        src->servers[k].role);
        if (rv != 0) {
            raft_configuration_close(dst);
            return rv;
        }
    }
    return 0;
}

static conf_rec_t *conf_find(zc_io_guard_t *g, raft_index index)
{
    for (unsigned k = 0; k < CONF_MAX; k++)
        if (g->confs[k].index == index && index != 0)
            return &g->confs[k];
    return NULL;
}

/* Keep a copy of the configuration at index (replacing one at the same
 * index: an uncommitted entry overwritten).  Copies below raft's committed
 * index are never needed again; when all slots are taken the oldest goes. */
static void conf_put(zc_io_guard_t *g, raft_index index, const struct raft_configuration *c)
{
    raft_index committed = g->raft != NULL ? g->raft->configuration_index : 0;
    for (unsigned k = 0; k < CONF_MAX; k++) {
        conf_rec_t *rec = &g->confs[k];
        if (rec->index != 0 && rec->index < committed && rec->index != index) {
            raft_configuration_close(&rec->conf);
            rec->index = 0;
        }
    }
    conf_rec_t *slot = conf_find(g, index);
    for (unsigned k = 0; k < CONF_MAX && slot == NULL; k++)
        if (g->confs[k].index == 0)
            slot = &g->confs[k];
    if (slot == NULL) {
        slot = &g->confs[0];
        for (unsigned k = 1; k < CONF_MAX; k++)
            if (g->confs[k].index < slot->index)
                slot = &g->confs[k];
    }
    struct raft_configuration copy;
    if (conf_copy(c, &copy) != 0)
        return; /* out of memory: conf_missing tells if it is ever needed */
    if (slot->index != 0)
        raft_configuration_close(&slot->conf);
    slot->index = index;
    slot->conf = copy;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int k = 7; k >= 0; k--)
        v = v << 8 | p[k];
    return v;
}

/* Raft 0.15's configuration entry: format byte 1, server count (u64 LE),
 * then per server its id (u64 LE), address (NUL-terminated) and role. */
static int conf_decode(const struct raft_buffer *buf, struct raft_configuration *out)
{
    const uint8_t *p = buf->base, *end = p + buf->len;
    raft_configuration_init(out);
    if (buf->len < 9 || p[0] != 1)
        return RAFT_MALFORMED;
    uint64_t n = get64(p + 1);
    p += 9;
    for (uint64_t k = 0; k < n; k++) {
        if (end - p < 8)
            goto bad;
        uint64_t id = get64(p);
        p += 8;
        const uint8_t *nul = memchr(p, 0, (size_t)(end - p));
        if (nul == NULL || end - nul < 2)
            goto bad;
        const char *address = (const char *)p;
        int role = nul[1];
        p = nul + 2;
        if (raft_configuration_add(out, id, address, role) != 0)
            goto bad;
    }
    return 0;
bad:
    raft_configuration_close(out);
    return RAFT_MALFORMED;
}

/* Raft's configuration is the committed one whenever none is pending:
 * copy it once per committed index (the bootstrap's, one loaded at start),
 * unless the entry's own copy is there already.  Only between raft's calls
 * (a message received, a write completed), never from an append or a send:
 * inside raft_add and the like (clientChangeConfiguration) raft installs
 * the new configuration before it marks it pending (3 servers, seed 2321
 * with --membership --transfers: a change made from a change's callback
 * was copied as the committed one). */
static void conf_observe(zc_io_guard_t *g)
{
    struct raft *r = g->raft;
    if (r == NULL || r->configuration_uncommitted_index != 0 || g->hidden_u != 0 ||
        r->configuration_index == 0 || r->configuration_index == g->observed)
        return;
    g->observed = r->configuration_index;
    if (conf_find(g, r->configuration_index) == NULL)
        conf_put(g, r->configuration_index, &r->configuration);
}

/* Configuration entries raft appends (a leader's changes, a follower's
 * copies): the last n entries of its in-memory log.
 * 7d: raft 0.15 makes a follower switch to a configuration entry only when
 * its write completes, and only if it is still a follower then
 * (appendFollowerCb, replication.c:866-879): a follower that became a
 * candidate meanwhile -- an election timeout, a TimeoutNow -- keeps the
 * entry in its log but not its configuration, and, elected, leads and
 * commits it under the old one (its configuration_index then names an
 * entry that says otherwise).  Rule: a follower adopts each configuration
 * entry as raft appends it, while handling the AppendEntries (Raft §4.1:
 * a server uses the latest configuration in its log, whether committed or
 * not; raft's own switch at write completion then repeats it). */
static void conf_appended(zc_io_guard_t *g, const struct raft_entry entries[], unsigned n)
{
    struct raft *r = g->raft;
    if (r == NULL || entries == NULL)
        return;
    raft_index first = r->log.offset + log_count(&r->log) - n + 1;
    bool adopt = (g->fixes & ZC_IO_GUARD_CONF_ON_RECEIPT) && g->in_req &&
                 raft_state(r) == RAFT_FOLLOWER;
    for (unsigned k = 0; k < n; k++) {
        if (entries[k].type != RAFT_CHANGE)
            continue;
        struct raft_configuration c;
        if (conf_decode(&entries[k].buf, &c) != 0)
            continue;
        conf_put(g, first + k, &c);
        if (adopt) {
            raft_configuration_close(&r->configuration);
            r->configuration = c; /* raft's now */
            r->configuration_uncommitted_index = first + k;
            g->stats.confs_adopted++;
        } else {
            raft_configuration_close(&c);
        }
    }
}

static void conf_missing(zc_io_guard_t *g, raft_index index)
{
    g->stats.conf_missing++;
    snprintf(g->io->errmsg, sizeof g->io->errmsg,
             "no copy of the committed configuration at index %llu", (unsigned long long)index);
    storage_failed(g, "membership", RAFT_NOTFOUND);
}

/* 7a: raft is about to handle an AppendEntries; if it might roll back a
 * pending configuration whose committed one it cannot read, hide it. */
static raft_index conf_hide(zc_io_guard_t *g, raft_term *term_u)
{
    struct raft *r = g->raft;
    raft_index u = r->configuration_uncommitted_index;
    if (!(g->fixes & ZC_IO_GUARD_CONF_ROLLBACK) || u == 0 ||
        log_holds(&r->log, r->configuration_index))
        return 0;
    *term_u = log_holds(&r->log, u) ? zc_io_guard_term_at(&r->log, u) : 0;
    g->hidden_u = u;
    r->configuration_uncommitted_index = 0;
    return u;
}

/* 7a: after raft handled it: the pending entry is still there (put its
 * index back), or committed, or replaced by a newer pending one (raft's
 * state is right), or gone (roll back as raft would have). */
static void conf_unhide(zc_io_guard_t *g, raft_index u, raft_term term_u, raft_index committed)
{
    struct raft *r = g->raft;
    g->hidden_u = 0;
    if (r->configuration_uncommitted_index != 0 || r->configuration_index >= u)
        return;
    if (term_u != 0 && log_holds(&r->log, u) && zc_io_guard_term_at(&r->log, u) == term_u) {
        r->configuration_uncommitted_index = u;
        return;
    }
    conf_rec_t *rec = conf_find(g, committed);
    struct raft_configuration c;
    if (rec == NULL || conf_copy(&rec->conf, &c) != 0) {
        conf_missing(g, committed);
        return;
    }
    raft_configuration_close(&r->configuration);
    r->configuration = c;
    g->stats.conf_rollbacks++;
}

/* 7b: a snapshot raft took while a configuration is pending gets the
 * committed one it is labelled with. */
static bool conf_fix_snapshot(zc_io_guard_t *g, const struct raft_snapshot *snapshot)
{
    struct raft *r = g->raft;
    if (!(g->fixes & ZC_IO_GUARD_SNAPSHOT_CONF) || r == NULL || snapshot != &r->snapshot.pending ||
        (r->configuration_uncommitted_index == 0 && g->hidden_u == 0))
        return true;
    conf_rec_t *rec = conf_find(g, snapshot->configuration_index);
    struct raft_configuration c;
    if (rec == NULL || conf_copy(&rec->conf, &c) != 0) {
        conf_missing(g, snapshot->configuration_index);
        return false;
    }
    /* raft's own pending snapshot: it closes the configuration when done. */
    struct raft_snapshot *mine = &r->snapshot.pending;
    raft_configuration_close(&mine->configuration);
    mine->configuration = c;
    g->stats.snapshot_confs++;
    return true;
}

/* 7c: a server that is no voter in its own configuration never votes:
 * it refuses every (pre-)vote while it knows a leader (recv_request_vote.c
 * 57-63) and forgets the leader only when its election timer makes it a
 * candidate, which never happens to a non-voter (tick.c); and it refuses
 * anyway as "not voting" (electionVote, election.c).  But a spare being
 * promoted is a voter for whoever holds the promotion entry, before it
 * holds it itself: when the leader that appended it is gone and the
 * others' majority needs that server's vote (one voter down), nobody is
 * ever elected, even once every link is back (3 servers, seed 742 with
 * --membership --transfers).  Raft §4.1: servers answer requests without
 * consulting their configuration; the candidate decides whose vote
 * counts.  Rule: before raft answers a vote request, a spare or standby
 * forgets a leader it has not heard from for an election timeout (§4.2.3:
 * refuse only within that time) and is answered for as a voter (its role
 * lent for the request, then put back). */
static struct raft_server *lend_voter_role(zc_io_guard_t *g, int *old_role)
{
    struct raft *r = g->raft;
    if (!(g->fixes & ZC_IO_GUARD_STALE_LEADER) || raft_state(r) != RAFT_FOLLOWER)
        return NULL;
    struct raft_server *self = NULL;
    for (unsigned k = 0; k < r->configuration.n; k++)
        if (r->configuration.servers[k].id == r->id)
            self = &r->configuration.servers[k];
    if (self == NULL || self->role == RAFT_VOTER)
        return NULL; /* a voter's own timer does it; no configuration: a new server */
    if (r->follower_state.current_leader.id != 0 &&
        r->io->time(r->io) - r->election_timer_start >= r->election_timeout) {
        r->follower_state.current_leader.id = 0;
        g->stats.leaders_forgotten++;
    }
    *old_role = self->role;
    self->role = RAFT_VOTER;
    return self;
}

/* --- receiving: 1 (which request raft is handling), 2, 3 --- */

static void note_request(zc_io_guard_t *g, raft_id from, raft_term term, raft_index end)
{
    if (term > g->acc_term) {
        g->acc_term = term;
        g->acc_leader = from;
        g->acc_any = false;
        g->acc_end = 0;
    }
    g->in_req = true;
    g->req_from = from;
    g->req_term = term;
    g->req_end = end;
}

/* 10: a follower reports a log that ends below what it acknowledged. */
static void lost_log_check(zc_io_guard_t *g, const struct raft_message *m)
{
    struct raft *r = g->raft;
    const struct raft_append_entries_result *res = &m->append_entries_result;
    if (raft_state(r) != RAFT_LEADER || res->term != r->current_term || res->rejected == 0)
        return;
    for (unsigned i = 0; i < r->configuration.n; i++) {
        if (r->configuration.servers[i].id != m->server_id || m->server_id == r->id)
            continue;
        struct raft_progress *p = &r->leader_state.progress[i];
        if (res->last_log_index >= p->match_index)
            return;
        zc_warn("raft: replica %llu reports a log ending at %llu, below the %llu entries it "
                "acknowledged: sending from %llu again (if its data was lost, replace it under "
                "a new id: docs/operations.md)",
                (unsigned long long)m->server_id, (unsigned long long)res->last_log_index,
                (unsigned long long)p->match_index, (unsigned long long)res->last_log_index + 1);
        g->stats.lost_logs++;
        p->match_index = res->last_log_index;
        p->next_index = res->last_log_index + 1;
        p->snapshot_index = 0;
        p->state = PROGRESS_PROBE;
        return;
    }
}

static void guard_recv(struct raft_io *io, struct raft_message *m)
{
    zc_io_guard_t *g = guard_of(io);
    struct raft *r = g->raft;
    if (r == NULL) {
        g->recv(io, m);
        return;
    }
    release_held(g);
    conf_observe(g);
    switch (m->type) {
    case RAFT_IO_APPEND_ENTRIES_RESULT:
        if (g->fixes & ZC_IO_GUARD_LOST_LOG)
            lost_log_check(g, m);
        /* A result of a later term goes through: it deposes this leader
         * (3 servers, seed 2694: held back, the leader never learned of
         * term 104 and never stepped down). */
        if ((g->fixes & ZC_IO_GUARD_OWN_TERM) && raft_state(r) == RAFT_LEADER &&
            m->append_entries_result.term <= r->current_term &&
            zc_io_guard_term_at(&r->log, r->last_stored) < r->current_term) {
            /* 3: nothing of this term stored yet: hold it back (or drop it
             * when too many are held), raft sees it once its entry is. */
            g->stats.leader_dropped++;
            if (g->n_held < HELD_MAX && m->server_address != NULL &&
                strlen(m->server_address) < sizeof g->held[0].address) {
                held_t *h = &g->held[g->n_held++];
                h->m = *m;
                snprintf(h->address, sizeof h->address, "%s", m->server_address);
            }
            return;
        }
        break;
    case RAFT_IO_APPEND_ENTRIES: {
        struct raft_append_entries *ae = &m->append_entries;
        if (ae->leader_commit > g->stats.leader_commit)
            g->stats.leader_commit = ae->leader_commit; /* commit indexes only grow */
        raise_prev(g, ae);
        note_request(g, m->server_id, ae->term, ae->prev_log_index + ae->n_entries);
        raft_term term_u = 0;
        raft_index committed = r->configuration_index;
        raft_index u = conf_hide(g, &term_u);
        g->recv(io, m);
        g->in_req = false;
        if (u != 0)
            conf_unhide(g, u, term_u, committed);
        conf_observe(g);
        return;
    }
    case RAFT_IO_REQUEST_VOTE: {
        int role = 0;
        struct raft_server *self = lend_voter_role(g, &role);
        g->recv(io, m);
        if (self != NULL)
            self->role = role; /* answering does not change the configuration */
        return;
    }
    case RAFT_IO_INSTALL_SNAPSHOT:
        if (m->install_snapshot.conf_index != 0)
            conf_put(g, m->install_snapshot.conf_index, &m->install_snapshot.conf);
        note_request(g, m->server_id, m->install_snapshot.term, m->install_snapshot.last_index);
        g->recv(io, m);
        g->in_req = false;
        return;
    default: break;
    }
    g->recv(io, m);
}

static int guard_start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                       raft_io_recv_cb recv)
{
    zc_io_guard_t *g = guard_of(io);
    g->recv = recv;
    return g->inner.start(io, msecs, tick, guard_recv);
}

/* --- sending: 1, 4 --- */

static int guard_send(struct raft_io *io, struct raft_io_send *req, const struct raft_message *m,
                      raft_io_send_cb cb)
{
    zc_io_guard_t *g = guard_of(io);
    struct raft *r = g->raft;
    if (r == NULL)
        return g->inner.send(io, req, m, cb);
    if (m->type == RAFT_IO_APPEND_ENTRIES_RESULT && m->append_entries_result.rejected == 0) {
        const struct raft_append_entries_result *res = &m->append_entries_result;
        /* A success answering the request raft is handling: accepted. */
        if (g->in_req && m->server_id == g->req_from && res->term == g->req_term)
            accepted(g);
        unsigned fix = g->in_req ? ZC_IO_GUARD_CAP_RECV : ZC_IO_GUARD_CAP_CB;
        /* Raft answers a request of an older term with its own term and
         * "rejected = prev_log_index", which reads as a success when the
         * request probed from index 0: that answer is what deposes the
         * old leader, untouched (3 servers, seed 2694: dropped, a leader
         * of term 3 never learned of term 104 and the cluster never
         * converged). */
        if (g->in_req && m->server_id == g->req_from && res->term > g->req_term)
            fix = 0;
        if (g->fixes & fix) {
            if (!g->acc_any || m->server_id != g->acc_leader || res->term != g->acc_term) {
                g->stats.results_dropped++; /* accepted nothing of that leader and term */
                cb(req, 0);                 /* raft's result callbacks only free req */
                return 0;
            }
            if (res->last_log_index > g->acc_end) {
                struct raft_message capped = *m; /* both backends copy or encode it now */
                capped.append_entries_result.last_log_index = g->acc_end;
                g->stats.results_capped++;
                return g->inner.send(io, req, &capped, cb);
            }
        }
    } else if (m->type == RAFT_IO_REQUEST_VOTE_RESULT && (g->fixes & ZC_IO_GUARD_PREVOTE_TERM) &&
               m->request_vote_result.pre_vote == raft_tribool_true &&
               !m->request_vote_result.vote_granted &&
               r->current_term > m->request_vote_result.term) {
        struct raft_message own = *m;
        own.request_vote_result.term = r->current_term;
        g->stats.prevote_raised++;
        return g->inner.send(io, req, &own, cb);
    }
    return g->inner.send(io, req, m, cb);
}

/* --- lifecycle --- */

zc_io_guard_t *zc_io_guard_install(struct raft_io *io, unsigned fixes, zc_io_guard_fatal_cb fatal,
                                   void *arg)
{
    zc_io_guard_t *g = calloc(1, sizeof *g);
    if (g == NULL)
        return NULL;
    g->io = io;
    g->inner = *io;
    g->fixes = fixes;
    g->fatal = fatal;
    g->fatal_arg = arg;
    io->start = guard_start;
    io->load = guard_load;
    io->send = guard_send;
    io->append = guard_append;
    io->truncate = guard_truncate;
    io->snapshot_put = guard_snapshot_put;
    if (io->async_work != NULL)
        io->async_work = guard_async_work;
    io->set_term = guard_set_term;
    io->set_vote = guard_set_vote;
    g->next = guards;
    guards = g;
    return g;
}

void zc_io_guard_bind(zc_io_guard_t *g, struct raft *r) { g->raft = r; }

unsigned zc_io_guard_installs(const zc_io_guard_t *g)
{
    const struct raft *r = g->raft;
    unsigned k = 0;
    if (r == NULL || raft_state((struct raft *)r) != RAFT_LEADER)
        return 0;
    for (unsigned i = 0; i < r->configuration.n; i++)
        if (r->configuration.servers[i].id != r->id &&
            r->leader_state.progress[i].state == PROGRESS_SNAPSHOT)
            k++;
    return k;
}

void zc_io_guard_peer_restarted(zc_io_guard_t *g, raft_id id)
{
    struct raft *r = g->raft;
    if (!(g->fixes & ZC_IO_GUARD_SNAPSHOT_RESTART) || r == NULL || raft_state(r) != RAFT_LEADER ||
        id == r->id)
        return;
    for (unsigned i = 0; i < r->configuration.n; i++) {
        if (r->configuration.servers[i].id != id)
            continue;
        struct raft_progress *p = &r->leader_state.progress[i];
        if (p->state != PROGRESS_SNAPSHOT)
            return;
        zc_info("raft: replica %llu restarted while receiving snapshot %llu: sending it again",
                (unsigned long long)id, (unsigned long long)p->snapshot_index);
        p->snapshot_index = 0;
        p->state = PROGRESS_PROBE;
        g->stats.snapshots_resent++;
        return;
    }
}

/* 7e: the snapshot's configuration, the committed one to go back to when
 * the log holds no configuration entry before a pending one. */
static int guard_load(struct raft_io *io, raft_term *term, raft_id *voted_for,
                      struct raft_snapshot **snapshot, raft_index *start_index,
                      struct raft_entry *entries[], size_t *n_entries)
{
    zc_io_guard_t *g = guard_of(io);
    int rv = g->inner.load(io, term, voted_for, snapshot, start_index, entries, n_entries);
    if (rv == 0 && *snapshot != NULL && (*snapshot)->configuration_index != 0)
        conf_put(g, (*snapshot)->configuration_index, &(*snapshot)->configuration);
    return rv;
}

void zc_io_guard_started(zc_io_guard_t *g)
{
    struct raft *r = g->raft;
    if (r == NULL || !(g->fixes & ZC_IO_GUARD_CONF_AT_START) ||
        r->configuration_uncommitted_index != 0)
        return;
    raft_index first = r->log.offset + 1, last = r->log.offset + log_count(&r->log);
    raft_index u = 0, c = 0;
    const struct raft_entry *cu = NULL, *cc = NULL;
    for (raft_index i = last; i >= first && c == 0; i--) {
        const struct raft_entry *e =
            &r->log.entries[(r->log.front + (size_t)(i - 1 - r->log.offset)) % r->log.size];
        if (e->type != RAFT_CHANGE)
            continue;
        if (u == 0) {
            u = i;
            cu = e;
        } else {
            c = i;
            cc = e;
        }
    }
    /* None after the snapshot: committed with it.  Or committed already:
     * a sole voter elects itself inside raft_start and applies its whole
     * log there (convertToLeader), --recover's entry included. */
    if (u == 0 || u <= r->log.snapshot.last_index || u != r->configuration_index ||
        u <= r->commit_index || u <= r->last_applied)
        return;
    struct raft_configuration committed;
    if (cc != NULL) {
        if (conf_decode(&cc->buf, &committed) != 0)
            return;
        conf_put(g, c, &committed);
        raft_configuration_close(&committed);
    } else {
        for (unsigned k = 0; k < CONF_MAX; k++) /* the snapshot's, from guard_load */
            if (g->confs[k].index != 0 && g->confs[k].index < u && g->confs[k].index > c)
                c = g->confs[k].index;
        if (c == 0)
            return; /* the bootstrap entry alone: nothing to go back to */
    }
    struct raft_configuration pending;
    if (conf_decode(&cu->buf, &pending) != 0)
        return;
    conf_put(g, u, &pending);
    raft_configuration_close(&pending);
    r->configuration_index = c;
    r->configuration_uncommitted_index = u;
    g->observed = c;
    g->stats.confs_pending_at_start++;
}

void zc_io_guard_stats(const zc_io_guard_t *g, zc_io_guard_stats_t *out) { *out = g->stats; }

void zc_io_guard_destroy(zc_io_guard_t **gp)
{
    zc_io_guard_t *g = *gp;
    if (g == NULL)
        return;
    for (zc_io_guard_t **pp = &guards; *pp != NULL; pp = &(*pp)->next)
        if (*pp == g) {
            *pp = g->next;
            break;
        }
    while (g->pending != NULL) {
        pending_t *p = g->pending;
        g->pending = p->next;
        free(p);
    }
    for (unsigned k = 0; k < CONF_MAX; k++)
        if (g->confs[k].index != 0)
            raft_configuration_close(&g->confs[k].conf);
    /* Put the inner methods back (the struct may outlive the guard). */
    g->io->start = g->inner.start;
    g->io->send = g->inner.send;
    g->io->append = g->inner.append;
    g->io->truncate = g->inner.truncate;
    g->io->snapshot_put = g->inner.snapshot_put;
    g->io->set_term = g->inner.set_term;
    g->io->set_vote = g->inner.set_vote;
    free(g);
    *gp = NULL;
}
