/* node: raft + libuv + LMDB lifecycle.  See node.h.
 *
 * Start-up order: state (LMDB) -> transport -> raft_uv io -> raft_init ->
 * bootstrap (ignored when the data dir already holds a cluster) -> timeouts
 * -> raft_start.  After start the node checks that the LMDB state is not
 * ahead of the raft log: that would mean the raft data was lost or belongs to
 * another cluster, and skipping "already applied" entries would then silently
 * drop real ones. */
#include "replication/node.h"

#include <errno.h>
#include <raft.h>
#include <raft/uv.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "proto/status.h"
#include "replication/fsm.h"
#include "replication/io_guard.h"
#include "replication/transport.h"
#include "replication/uv_peek.h"

struct zc_node {
    uv_loop_t *loop;          /* not owned */
    zc_node_config_t cfg;     /* copy; replicas points to `members` */
    zc_replica_t *members;    /* owned copy of cfg.replicas */
    zc_fsm_t *fsm;            /* LMDB state machine (owned) */
    struct raft_fsm raft_fsm; /* raft's view of fsm; apply wrapped by node_apply */
    int (*fsm_apply)(struct raft_fsm *, const struct raft_buffer *, void **); /* fsm's own apply */
    struct raft_uv_transport transport; /* CurveZMQ relay (transport.h) */
    struct raft_io io;                  /* libuv I/O, wrapped by guard */
    zc_io_guard_t *guard;               /* raft 0.15's bugs kept out (io_guard.h) */
    bool peek_ok;                       /* libuv's errored flag can be read (uv_peek.h) */
    struct raft raft;                   /* the raft instance */
    zc_proposer_t *proposer;            /* commands of a loop turn, one raft_apply (owned) */
    uv_check_t check;                   /* end of a loop turn: commit, watch roles, propose */
    uv_idle_t kick;                     /* active while commands wait for check_cb, so the
                                           loop does not block in poll before it runs */
    unsigned closing;                   /* handles (check, kick) still closing */
    struct raft_barrier barrier;        /* readiness barrier of this term */
    bool barrier_pending;               /* barrier submitted, not yet applied */
    uint64_t ready_term;                /* term in which the barrier applied, 0 if none */
    int last_role;                      /* role seen at the last check */
    bool last_ready;                    /* readiness seen at the last check */
    zc_node_role_cb role_cb;            /* broker's callback */
    void *role_arg;                     /* its argument */
    bool raft_inited;                   /* raft_init succeeded: close through raft */
    bool started;                       /* raft_start succeeded */
    struct change *retired;             /* finished transfers, freed after raft_close */
    void (*close_done)(void *);         /* zc_node_close callback */
    void *close_arg;                    /* its argument */
    char raft_dir[512];                 /* <dir>/raft */
    uint64_t last_leader_id;            /* leader seen at the last check (metrics) */
    uint64_t leader_changes;            /* times a new leader was seen (metrics) */
    uint64_t applied_entries;           /* command entries applied since start */
    uint64_t applied_bytes;             /* their bytes */
    unsigned snapshot_threshold;        /* raft's snapshot threshold now (adapt_threshold) */
};

const char *zc_role_name(int role)
{
    switch (role) {
    case ZC_ROLE_FOLLOWER: return "follower";
    case ZC_ROLE_CANDIDATE: return "candidate";
    case ZC_ROLE_LEADER: return "leader";
    default: return "unavailable";
    }
}

static int role_of(struct raft *r)
{
    switch (raft_state(r)) {
    case RAFT_FOLLOWER: return ZC_ROLE_FOLLOWER;
    case RAFT_CANDIDATE: return ZC_ROLE_CANDIDATE;
    case RAFT_LEADER: return ZC_ROLE_LEADER;
    default: return ZC_ROLE_UNAVAILABLE;
    }
}

bool zc_node_ready(zc_node_t *n)
{
    return n->started && raft_state(&n->raft) == RAFT_LEADER &&
           n->ready_term == n->raft.current_term;
}

bool zc_node_failed(zc_node_t *n)
{
    return n->started && n->close_done == NULL && raft_state(&n->raft) == RAFT_UNAVAILABLE;
}

static void barrier_cb(struct raft_barrier *req, int status)
{
    zc_node_t *n = req->data;
    n->barrier_pending = false;
    if (status == 0 && raft_state(&n->raft) == RAFT_LEADER) {
        n->ready_term = n->raft.current_term;
        zc_info("leader ready in term %llu (applied %llu)", (unsigned long long)n->ready_term,
                (unsigned long long)zc_fsm_applied_index(n->fsm));
    }
}

/* The leader this replica knows of, 0 if none. */
static uint64_t raft_leader_id_of(zc_node_t *n)
{
    raft_id id = 0;
    const char *addr = NULL;
    raft_leader(&n->raft, &id, &addr);
    return id;
}

/* Runs after every loop iteration's I/O: commit the entries applied in it
 * (fsm.c, "batching"), notice role changes, start the readiness barrier of
 * a new leader, tell the broker, then hand the commands proposed in this
 * turn to raft, together (proposer.h). */
static void check_cb(uv_check_t *h)
{
    zc_node_t *n = h->data;
    if (n->fsm && zc_fsm_flush(n->fsm) != 0) {
        zc_error("state storage: committing applied entries failed: %s; exiting with status %d "
                 "so the replica restarts from its log",
                 zc_fsm_apply_error(n->fsm), ZC_EXIT_STORAGE);
        fflush(NULL);
        _exit(ZC_EXIT_STORAGE);
    }
    if (!n->started || n->close_done)
        return;
    /* Bug 5's last case: a background segment finalization or truncation
     * failed (uv_peek.h).  Every loop turn: raft may append on the next. */
    if (n->peek_ok && zc_uv_errored(&n->io))
        zc_io_guard_fail(n->guard, "background segment finalization or truncation", RAFT_IOERR);
    /* A leadership loss raft did not report to every proposal (proposer.c). */
    zc_proposer_check(n->proposer);
    int role = role_of(&n->raft);
    if (role == ZC_ROLE_LEADER && n->ready_term != n->raft.current_term && !n->barrier_pending) {
        n->barrier.data = n;
        if (raft_barrier(&n->raft, &n->barrier, barrier_cb) == 0)
            n->barrier_pending = true;
    }
    uint64_t leader = raft_leader_id_of(n);
    if (leader != n->last_leader_id) {
        if (leader != 0)
            n->leader_changes++;
        n->last_leader_id = leader;
    }
    bool ready = zc_node_ready(n);
    if (role != n->last_role || ready != n->last_ready) {
        if (role != n->last_role)
            zc_info("role %s -> %s (term %llu)", zc_role_name(n->last_role), zc_role_name(role),
                    (unsigned long long)n->raft.current_term);
        n->last_role = role;
        n->last_ready = ready;
        if (n->role_cb)
            n->role_cb(n->role_arg);
    }
    /* Last: the broker's callbacks above may propose too. */
    zc_proposer_flush(n->proposer);
    if (!zc_proposer_waiting(n->proposer))
        uv_idle_stop(&n->kick);
}

static void kick_cb(uv_idle_t *h) { (void)h; }

/* Bug 5 of io_guard.h, on the state machine's side.  raft 0.15 answers a
 * failed apply by trying the same entry again at every later commit, for
 * ever: a follower with a full disk falls behind in silence, and a leader
 * keeps leading while it applies nothing (every request times out).  An
 * apply fails only when LMDB does (zc_fsm_apply: a full map grows first), so
 * it is a storage failure like a failed append, and ends the same way: a
 * log line naming the error and ZC_EXIT_STORAGE.  Nothing is lost: the
 * entry is in the raft log, and a restart applies it again once the disk has
 * room. */
unsigned zc_node_snapshot_threshold(uint64_t state_bytes, uint64_t entry_bytes, unsigned min,
                                    unsigned max)
{
    uint64_t t = state_bytes / (2 * (entry_bytes ? entry_bytes : 1));
    if (max < min)
        max = min;
    return t < min ? min : t > max ? max : (unsigned)t;
}

/* A snapshot costs the whole state; the log it lets go of, the entries
 * since the last one.  With a fixed number of entries between snapshots
 * the snapshots' share of the work grows with the state (at 100k carts a
 * 25 MB snapshot every 8192 entries of ~60 bytes: 50 times the log's
 * bytes).  So the threshold follows the state: entries whose bytes make
 * half the state's bytes in use, between --snapshot-threshold and
 * --snapshot-threshold-max, looked at again every 1024 entries. */
static void adapt_threshold(zc_node_t *n)
{
    uint64_t used = 0, map = 0;
    if (zc_state_storage(zc_fsm_state(n->fsm), &used, &map) != 0)
        return;
    unsigned t =
        zc_node_snapshot_threshold(used, n->applied_bytes / n->applied_entries,
                                   n->cfg.snapshot_threshold, n->cfg.snapshot_threshold_max);
    if (t != n->snapshot_threshold) {
        n->snapshot_threshold = t;
        raft_set_snapshot_threshold(&n->raft, t);
    }
}

static int node_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    zc_node_t *n = (zc_node_t *)((char *)fsm - offsetof(zc_node_t, raft_fsm));
    int rv = n->fsm_apply(fsm, buf, result);
    n->applied_entries++;
    n->applied_bytes += buf->len;
    if (rv == 0 && n->applied_entries % 1024 == 0)
        adapt_threshold(n);
    if (rv != 0) {
        zc_error("state storage: applying entry %llu failed: %s; exiting with status %d so the "
                 "replica restarts from its log",
                 (unsigned long long)n->raft.last_applied + 1, zc_fsm_apply_error(n->fsm),
                 ZC_EXIT_STORAGE);
        fflush(NULL);
        _exit(ZC_EXIT_STORAGE); /* no atexit handlers: czmq's would close sockets mid-callback */
    }
    /* The caller that proposed this entry, if this leader did, hears now. */
    zc_proposer_applied(n->proposer, *result);
    return rv;
}

/* Closing, no command is queued: check_cb will not run again. */
static bool node_ready(void *arg)
{
    zc_node_t *n = arg;
    return n->close_done == NULL && zc_node_ready(n);
}

/* The proposer found raft's log holding part of a batch raft refused
 * (proposer.c, "half-appended"): only a restart from the log is sound. */
static void node_proposer_fatal(void *arg, const char *why, int rv)
{
    (void)arg;
    zc_error("raft: %s (%s); exiting with status %d so the replica restarts from its log", why,
             raft_strerror(rv), ZC_EXIT_STORAGE);
    fflush(NULL);
    _exit(ZC_EXIT_STORAGE);
}

zc_node_t *zc_node_new(uv_loop_t *loop, const zc_node_config_t *cfg, zc_node_role_cb role_cb,
                       void *arg, char *err, size_t errlen)
{
    zc_node_t *n = calloc(1, sizeof *n);
    char path[512];
    if (n == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    n->loop = loop;
    n->cfg = *cfg;
    n->role_cb = role_cb;
    n->role_arg = arg;
    n->members = calloc(cfg->n_replicas ? cfg->n_replicas : 1, sizeof *n->members);
    if (n->members == NULL) {
        snprintf(err, errlen, "out of memory");
        goto err_after_alloc;
    }
    memcpy(n->members, cfg->replicas, cfg->n_replicas * sizeof *n->members);
    n->cfg.replicas = n->members;
    zc_replica_t me;
    if (!zc_node_member(n, cfg->id, &me)) {
        snprintf(err, errlen, "replica %llu is not in the member list",
                 (unsigned long long)cfg->id);
        goto err_after_members;
    }
    if (mkdir(cfg->dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "create %s: %s", cfg->dir, strerror(errno));
        goto err_after_members;
    }
    snprintf(path, sizeof path, "%s/state", cfg->dir);
    n->fsm = zc_fsm_new(path, cfg->state_map_size, err, errlen);
    if (n->fsm == NULL)
        goto err_after_members;
    snprintf(n->raft_dir, sizeof n->raft_dir, "%s/raft", cfg->dir);
    if (mkdir(n->raft_dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "create %s: %s", n->raft_dir, strerror(errno));
        goto err_after_fsm;
    }
    zc_proposer_config_t pc = {.raft = &n->raft,
                               .max_batch = cfg->propose_batch,
                               .ready = node_ready,
                               .fatal = node_proposer_fatal,
                               .arg = n};
    n->proposer = zc_proposer_new(&pc);
    if (n->proposer == NULL) {
        snprintf(err, errlen, "out of memory");
        goto err_after_fsm;
    }
    zc_fsm_set_batch(n->fsm, cfg->apply_batch);
    zc_fsm_raft_async(n->fsm, &n->raft_fsm);
    n->fsm_apply = n->raft_fsm.apply;
    n->raft_fsm.apply = node_apply;
    uv_check_init(loop, &n->check);
    n->check.data = n;
    uv_idle_init(loop, &n->kick);
    n->kick.data = n;
    return n;

err_after_fsm:
    zc_fsm_destroy(&n->fsm);
err_after_members:
    free(n->members);
err_after_alloc:
    free(n);
    return NULL;
}

/* The state may be ahead of the local raft log after a crash (a leader
 * applies entries its followers stored before its own write completes), so
 * "ahead" proves nothing.  What must never happen is a state from one raft
 * history replayed against another (raft dir wiped or swapped): entries
 * would be skipped as "already applied".  A random history id, written in a
 * file inside the raft dir and in the state's local table, ties the two. */
static int check_history(zc_node_t *n, char *err, size_t errlen)
{
    char path[600], file_id[64] = "", state_id[64] = "";
    zc_state_t *st = zc_fsm_state(n->fsm);
    snprintf(path, sizeof path, "%s/zcart-history", n->raft_dir);
    FILE *f = fopen(path, "r");
    if (f) {
        if (fscanf(f, "%63s", file_id) != 1)
            file_id[0] = 0;
        fclose(f);
    }
    int have = zc_state_local_get(st, "history", state_id, sizeof state_id);
    uint64_t applied = zc_fsm_applied_index(n->fsm);
    if (file_id[0] == 0) {
        if (applied > 0) {
            snprintf(err, errlen,
                     "%s has no raft history but %s/state holds entries up to %llu: the raft "
                     "data was lost; remove %s/state (it is rebuilt from the cluster)",
                     n->raft_dir, n->cfg.dir, (unsigned long long)applied, n->cfg.dir);
            return -1;
        }
        uint8_t rnd[ZC_SESSION_LEN];
        zc_session_random(rnd);
        zc_session_hex(rnd, file_id);
        f = fopen(path, "w");
        if (f == NULL || fprintf(f, "%s\n", file_id) < 0 || fflush(f) != 0 ||
            fsync(fileno(f)) != 0) {
            snprintf(err, errlen, "write %s: %s", path, strerror(errno));
            if (f)
                fclose(f);
            return -1;
        }
        fclose(f);
    } else if (have == 0 && strcmp(state_id, file_id) != 0) {
        snprintf(err, errlen,
                 "%s/state belongs to raft history %s but %s holds history %s; remove %s/state "
                 "(it is rebuilt from the cluster)",
                 n->cfg.dir, state_id, n->raft_dir, file_id, n->cfg.dir);
        return -1;
    } else if (have != 0 && applied > 0) {
        snprintf(err, errlen, "%s/state has entries but no raft history id; remove it", n->cfg.dir);
        return -1;
    }
    if (have != 0 || strcmp(state_id, file_id) != 0) {
        if (zc_state_local_set(st, "history", file_id) != 0) {
            snprintf(err, errlen, "cannot record the raft history id in %s/state", n->cfg.dir);
            return -1;
        }
    }
    return 0;
}

/* The relay saw a peer's new process: the guard's rule 11. */
static void peer_restarted(void *arg, uint64_t id)
{
    zc_node_t *n = arg;
    if (n->guard != NULL)
        zc_io_guard_peer_restarted(n->guard, id);
}

/* raft's io before raft_init: the transport, libuv's io with our settings,
 * and the io guard.  -1 with everything released. */
static int open_io(zc_node_t *n, char *err, size_t errlen)
{
    /* A snapshot is at most the LMDB map; one raft message never exceeds
     * it by more than the envelope, whatever length a peer announces. */
    zc_transport_config_t tc = {
        .loop = n->loop,
        .zctx = n->cfg.zctx != NULL ? n->cfg.zctx : zc_sec_context(),
        .sec = n->cfg.sec,
        .raft_sec = n->cfg.raft_sec,
        .max_msg =
            (uint64_t)(n->cfg.state_map_size ? n->cfg.state_map_size : ZC_STATE_MAP_DEFAULT) +
            (64u << 20),
        .peer_restarted = peer_restarted,
        .peer_restarted_arg = n,
    };
    if (tc.zctx == NULL || zc_transport_init(&n->transport, &tc) != 0) {
        snprintf(err, errlen, "raft transport: out of memory");
        return -1;
    }
    if (raft_uv_init(&n->io, n->loop, n->raft_dir, &n->transport) != 0) {
        snprintf(err, errlen, "raft io %s: %s", n->raft_dir, n->io.errmsg);
        zc_transport_close_unused(&n->transport);
        return -1;
    }
    /* A corrupt segment must stop the replica, not be renamed away with
     * entries it may have acknowledged (raft 0.15 recovers by default). */
    raft_uv_set_auto_recovery(&n->io, false);
    if (n->cfg.segment_size != 0)
        raft_uv_set_segment_size(&n->io, n->cfg.segment_size);
    n->peek_ok = zc_uv_peek_check(&n->io, n->loop, n->raft_dir, &n->transport, n->cfg.segment_size);
    if (!n->peek_ok)
        zc_warn("raft io: libuv's private layout is not raft 0.15.0's: a failed background "
                "segment finalization will not stop this replica");
    /* Snapshots are built off the loop (fsm.c): raft_init wants io version
     * 2 for that, which 0.15's libuv io implements (async_work) but does
     * not say. */
    n->io.version = 2;
    n->guard = zc_io_guard_install(&n->io, ZC_IO_GUARD_ALL, NULL, NULL);
    if (n->guard == NULL) {
        snprintf(err, errlen, "out of memory");
        raft_uv_close(&n->io);
        zc_transport_close_unused(&n->transport);
        return -1;
    }
    return 0;
}

/* The configuration at start: bootstrap a new cluster of the members
 * given, force one (--recover), or nothing (a joining server, or a log
 * that already has one).  -1 on an error. */
static int bootstrap_or_recover(zc_node_t *n, char *err, size_t errlen)
{
    struct raft_configuration conf;
    int rv;
    raft_configuration_init(&conf);
    for (unsigned i = 0; i < n->cfg.n_replicas && !n->cfg.join; i++) {
        rv =
            raft_configuration_add(&conf, n->members[i].id, n->members[i].raft_address, RAFT_VOTER);
        if (rv != 0) {
            snprintf(err, errlen, "member %llu: %s", (unsigned long long)n->members[i].id,
                     raft_strerror(rv));
            raft_configuration_close(&conf);
            return -1;
        }
    }
    if (n->cfg.recover) {
        /* Permanent quorum loss (docs/operations.md): a new configuration
         * entry of exactly the given members goes into this replica's log;
         * entries only the lost majority held are gone. */
        rv = raft_recover(&n->raft, &conf);
        raft_configuration_close(&conf);
        if (rv != 0) {
            snprintf(err, errlen, "recover: %s", raft_errmsg(&n->raft));
            return -1;
        }
        zc_warn("RECOVER: forced a configuration of %u member(s); entries this replica "
                "never received are lost",
                n->cfg.n_replicas);
        return 0;
    }
    /* A joining server starts empty; the leader's raft_add brings it in. */
    rv = n->cfg.join ? RAFT_CANTBOOTSTRAP : raft_bootstrap(&n->raft, &conf);
    raft_configuration_close(&conf);
    if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) {
        snprintf(err, errlen, "bootstrap: %s", raft_errmsg(&n->raft));
        return -1;
    }
    if (rv == 0)
        zc_info("bootstrapped a new cluster of %u members", n->cfg.n_replicas);
    return 0;
}

int zc_node_start(zc_node_t *n, char *err, size_t errlen)
{
    zc_replica_t self;
    zc_node_member(n, n->cfg.id, &self);
    if (check_history(n, err, errlen) != 0 || open_io(n, err, errlen) != 0)
        return -1;
    if (raft_init(&n->raft, &n->io, &n->raft_fsm, n->cfg.id, self.raft_address) != 0) {
        snprintf(err, errlen, "raft init: %s", raft_errmsg(&n->raft));
        zc_io_guard_destroy(&n->guard);
        raft_uv_close(&n->io);
        zc_transport_close_unused(&n->transport);
        return -1;
    }
    n->raft.data = n;
    n->raft_inited = true;
    zc_io_guard_bind(n->guard, &n->raft);
    zc_fsm_bind(n->fsm, &n->raft);
    /* From here raft owns io and transport: zc_node_close releases them. */
    if (bootstrap_or_recover(n, err, errlen) != 0)
        return -1;
    raft_set_election_timeout(&n->raft, n->cfg.election_timeout_ms);
    raft_set_heartbeat_timeout(&n->raft, n->cfg.heartbeat_timeout_ms);
    n->snapshot_threshold = n->cfg.snapshot_threshold;
    raft_set_snapshot_threshold(&n->raft, n->cfg.snapshot_threshold);
    raft_set_snapshot_trailing(&n->raft, n->cfg.snapshot_trailing);
    raft_set_pre_vote(&n->raft, n->cfg.pre_vote);
    raft_uv_set_connect_retry_delay(&n->io, n->cfg.heartbeat_timeout_ms);
    if (raft_start(&n->raft) != 0) {
        snprintf(err, errlen, "raft start: %s", raft_errmsg(&n->raft));
        return -1;
    }
    n->started = true;
    zc_io_guard_started(n->guard);
    uint64_t applied = zc_fsm_applied_index(n->fsm), last = raft_last_index(&n->raft);
    zc_info("raft started: id %llu at %s, state at entry %llu, log ends at %llu",
            (unsigned long long)n->cfg.id, self.raft_address, (unsigned long long)applied,
            (unsigned long long)last);
    uv_check_start(&n->check, check_cb);
    return 0;
}

static void retired_free(zc_node_t *n);

static void close_handle_cb(uv_handle_t *h)
{
    zc_node_t *n = h->data;
    if (--n->closing > 0)
        return;
    void (*done)(void *) = n->close_done;
    void *arg = n->close_arg;
    zc_proposer_destroy(&n->proposer); /* raft_close failed what raft held */
    zc_fsm_destroy(&n->fsm);
    zc_io_guard_destroy(&n->guard);
    retired_free(n);
    free(n->members);
    free(n);
    if (done)
        done(arg);
}

static void close_handles(zc_node_t *n)
{
    n->closing = 2;
    uv_close((uv_handle_t *)&n->check, close_handle_cb);
    uv_close((uv_handle_t *)&n->kick, close_handle_cb);
}

static void node_raft_closed(struct raft *r)
{
    zc_node_t *n = r->data;
    raft_uv_close(&n->io); /* closes the transport, which frees itself */
    close_handles(n);
}

static void noop(void *arg) { (void)arg; }

void zc_node_close(zc_node_t *n, void (*done)(void *arg), void *arg)
{
    n->close_done = done ? done : noop;
    n->close_arg = arg;
    uv_check_stop(&n->check);
    uv_idle_stop(&n->kick);
    /* Commands raft has not seen fail now; raft_close fails the others
     * (through raft's callbacks, inside it). */
    zc_proposer_close(n->proposer);
    if (n->raft_inited) {
        n->raft.data = n;
        raft_close(&n->raft, node_raft_closed);
    } else {
        close_handles(n);
    }
}

void zc_node_info(zc_node_t *n, zc_node_info_t *out)
{
    memset(out, 0, sizeof *out);
    out->applied_index = zc_fsm_applied_index(n->fsm);
    if (!n->started)
        return;
    raft_id lid = 0;
    const char *laddr = NULL;
    out->role = role_of(&n->raft);
    out->ready = zc_node_ready(n);
    out->term = n->raft.current_term;
    out->commit_index = n->raft.commit_index;
    out->last_index = raft_last_index(&n->raft);
    /* Raft's count includes barriers and configuration entries; the state's
     * own index may be ahead of it right after a restart (entries replayed
     * from the log are skipped).  Report the larger: the state reflects it. */
    if (raft_last_applied(&n->raft) > out->applied_index)
        out->applied_index = raft_last_applied(&n->raft);
    raft_leader(&n->raft, &lid, &laddr);
    out->leader_id = lid;
    if (out->role == ZC_ROLE_LEADER) {
        out->leader_commit = out->commit_index;
    } else if (n->guard) {
        zc_io_guard_stats_t gs;
        zc_io_guard_stats(n->guard, &gs);
        out->leader_commit = gs.leader_commit;
    }
}

bool zc_node_info_ready(const zc_node_info_t *info, unsigned max_lag, char *why, size_t cap)
{
    if (info->role == ZC_ROLE_LEADER) {
        if (info->ready)
            return true;
        snprintf(why, cap, "leader of term %" PRIu64 ", its barrier not applied yet", info->term);
        return false;
    }
    if (info->leader_id == 0 || info->leader_commit == 0) {
        snprintf(why, cap, "%s, no leader known", zc_role_name(info->role));
        return false;
    }
    uint64_t lag =
        info->leader_commit > info->applied_index ? info->leader_commit - info->applied_index : 0;
    if (lag <= max_lag)
        return true;
    snprintf(why, cap, "%" PRIu64 " entries behind the leader's commit index (at most %u)", lag,
             max_lag);
    return false;
}

bool zc_node_member(zc_node_t *n, uint64_t id, zc_replica_t *out)
{
    if (n->fsm && zc_state_get_member(zc_fsm_state(n->fsm), id, out) == 0)
        return true;
    for (unsigned i = 0; i < n->cfg.n_replicas; i++)
        if (n->members[i].id == id) {
            *out = n->members[i];
            return true;
        }
    return false;
}

unsigned zc_node_configuration(zc_node_t *n, uint64_t *ids, const char **roles, unsigned max)
{
    unsigned k = 0;
    if (!n->started)
        return 0;
    const struct raft_configuration *c = &n->raft.configuration;
    for (unsigned i = 0; i < c->n && k < max; i++, k++) {
        ids[k] = c->servers[i].id;
        roles[k] = c->servers[i].role == RAFT_VOTER     ? "voter"
                   : c->servers[i].role == RAFT_STANDBY ? "standby"
                                                        : "spare";
    }
    return k;
}

/* --- membership changes and leadership transfer --- */

/* One change in flight: raft hands the request back to the callback.
 *
 * A leadership transfer's request outlives its callback: raft 0.15 sends
 * TimeoutNow with the send request embedded in struct raft_transfer
 * (membership.c:210, no callback of its own), and libuv reads that
 * request when the write completes or is aborted at close, possibly after
 * raft called transfer_cb.  So the node keeps every finished transfer on
 * n->retired and frees them only once raft_close has completed (one small
 * struct per operator-requested transfer). */
typedef struct change {
    union {
        struct raft_change change;     /* add / assign / remove */
        struct raft_transfer transfer; /* transfer */
    } req;                             /* must be first */
    zc_node_t *node;                   /* the node */
    uint64_t id;                       /* server concerned */
    bool promote;                      /* add: assign voter after the add */
    zc_change_cb cb;                   /* caller's callback */
    void *arg;                         /* its argument */
    struct change *next;               /* next on the node's retired list */
} change_t;

static void retired_free(zc_node_t *n)
{
    while (n->retired != NULL) {
        change_t *c = n->retired;
        n->retired = c->next;
        free(c);
    }
}

/* raft 0.15 leaves raft_errmsg empty (or stale) for some refusals, such
 * as RAFT_NOTFOUND: the code's own text is always right. */
static const char *refusal(zc_node_t *n, int rv)
{
    (void)n;
    return raft_strerror(rv);
}

static void change_finish(change_t *c, int status, const char *detail)
{
    c->cb(c->arg, status, detail);
    free(c);
}

static change_t *change_new(zc_node_t *n, uint64_t id, zc_change_cb cb, void *arg)
{
    change_t *c = calloc(1, sizeof *c);
    if (c == NULL) {
        cb(arg, ZC_INTERNAL, "out of memory");
        return NULL;
    }
    c->node = n;
    c->id = id;
    c->cb = cb;
    c->arg = arg;
    if (!zc_node_ready(n)) {
        change_finish(c, ZC_NOT_LEADER, "not the leader");
        return NULL;
    }
    return c;
}

static int change_status(int rv)
{
    switch (rv) {
    case RAFT_NOTLEADER:
    case RAFT_LEADERSHIPLOST: return ZC_NOT_LEADER;
    case RAFT_BADID:
    case RAFT_DUPLICATEID:
    case RAFT_DUPLICATEADDRESS:
    case RAFT_BADROLE:
    case RAFT_NOTFOUND: return ZC_BAD_REQUEST;
    default: return ZC_UNAVAILABLE;
    }
}

static void transfer_cb(struct raft_transfer *req)
{
    change_t *c = (change_t *)req;
    zc_node_t *n = c->node;
    raft_id lid = 0;
    const char *addr;
    raft_leader(&n->raft, &lid, &addr);
    if (lid != 0 && lid != n->cfg.id && (c->id == 0 || lid == c->id))
        c->cb(c->arg, ZC_OK, "leadership transferred");
    else
        c->cb(c->arg, ZC_UNAVAILABLE, "the target did not take over in time");
    c->next = n->retired; /* its TimeoutNow send may still be in flight */
    n->retired = c;
}

void zc_node_transfer(zc_node_t *n, uint64_t id, zc_change_cb cb, void *arg)
{
    change_t *c = change_new(n, id, cb, arg);
    if (c == NULL)
        return;
    int rv = raft_transfer(&n->raft, &c->req.transfer, id, transfer_cb);
    if (rv != 0)
        change_finish(c, change_status(rv), refusal(n, rv));
}

static void assign_cb(struct raft_change *req, int status)
{
    change_t *c = (change_t *)req;
    if (status != 0)
        change_finish(c, change_status(status), raft_strerror(status));
    else
        change_finish(c, ZC_OK, "added as voter");
}

static void add_cb(struct raft_change *req, int status)
{
    change_t *c = (change_t *)req;
    if (status != 0) {
        change_finish(c, change_status(status), raft_strerror(status));
        return;
    }
    /* Promotion replicates the log to the new server first (catch-up rounds). */
    int rv = raft_assign(&c->node->raft, &c->req.change, c->id, RAFT_VOTER, assign_cb);
    if (rv != 0)
        change_finish(c, change_status(rv), refusal(c->node, rv));
}

void zc_node_add_voter(zc_node_t *n, uint64_t id, const char *raft_address, zc_change_cb cb,
                       void *arg)
{
    change_t *c = change_new(n, id, cb, arg);
    if (c == NULL)
        return;
    int rv = raft_add(&n->raft, &c->req.change, id, raft_address, add_cb);
    if (rv != 0)
        change_finish(c, change_status(rv), refusal(n, rv));
}

static void remove_cb(struct raft_change *req, int status)
{
    change_t *c = (change_t *)req;
    if (status != 0)
        change_finish(c, change_status(status), raft_strerror(status));
    else
        change_finish(c, ZC_OK, "removed");
}

void zc_node_remove(zc_node_t *n, uint64_t id, zc_change_cb cb, void *arg)
{
    change_t *c = change_new(n, id, cb, arg);
    if (c == NULL)
        return;
    int rv = raft_remove(&n->raft, &c->req.change, id, remove_cb);
    if (rv != 0)
        change_finish(c, change_status(rv), refusal(n, rv));
}

/* --- fast failover hint --- */

void zc_node_peer_gone(zc_node_t *n, uint64_t id)
{
    struct raft *r = &n->raft;
    if (!n->started || raft_state(r) != RAFT_FOLLOWER || r->follower_state.current_leader.id != id)
        return;
    /* Rank among the voters that remain: the lowest id campaigns first. */
    unsigned rank = 0;
    for (unsigned i = 0; i < r->configuration.n; i++) {
        const struct raft_server *s = &r->configuration.servers[i];
        if (s->role == RAFT_VOTER && s->id != id && s->id < r->id)
            rank++;
    }
    unsigned delay = rank * n->cfg.heartbeat_timeout_ms;
    raft_time now = r->io->time(r->io);
    unsigned timeout = r->follower_state.randomized_election_timeout;
    /* Forget the leader (raft's own clear keeps the address until the next
     * leader replaces it) so this follower grants (pre-)votes right away. */
    r->follower_state.current_leader.id = 0;
    if (timeout > delay)
        r->election_timer_start = now - (timeout - delay);
    zc_info("leader %llu is gone; campaigning in %u ms unless another leader appears",
            (unsigned long long)id, delay);
}

zc_state_t *zc_node_state(zc_node_t *n) { return zc_fsm_state(n->fsm); }

void zc_node_snapshot_stats(zc_node_t *n, zc_node_snapshot_stats_t *out)
{
    zc_fsm_snapshot_stats_t s;
    zc_fsm_snapshot_stats(n->fsm, &s);
    *out = (zc_node_snapshot_stats_t){.snapshots = s.snapshots,
                                      .failed = s.failed,
                                      .build_last_us = s.build_last_us,
                                      .build_max_us = s.build_max_us,
                                      .begin_max_us = s.begin_max_us,
                                      .bytes_last = s.bytes_last,
                                      .threshold = n->snapshot_threshold};
    if (n->guard != NULL) {
        zc_io_guard_stats_t g;
        zc_io_guard_stats(n->guard, &g);
        out->sending = zc_io_guard_installs(n->guard);
        out->resent = g.snapshots_resent;
    }
}

void zc_node_raft_stats(zc_node_t *n, zc_node_raft_stats_t *out)
{
    zc_proposer_stats_t ps;
    zc_proposer_stats(n->proposer, &ps);
    *out = (zc_node_raft_stats_t){.proposed = ps.proposed,
                                  .committed = ps.committed,
                                  .failed = ps.failed,
                                  .refused = ps.refused,
                                  .proposal_batches = ps.batches,
                                  .proposal_batch_max = ps.batch_max,
                                  .leader_changes = n->leader_changes,
                                  .commit_lat = ps.commit_lat};
}

void zc_node_batch_stats(zc_node_t *n, zc_fsm_batch_stats_t *out) { zc_fsm_batch_stats(n->fsm, out); }

void zc_node_propose(zc_node_t *n, const zc_cmd_t *cmd, zc_propose_cb cb, void *arg)
{
    zc_proposer_propose(n->proposer, cmd, cb, arg);
    /* Queued until check_cb ends this turn; a command proposed from a
     * timer or an idle pass must not wait for the next I/O wake-up. */
    if (zc_proposer_waiting(n->proposer) && n->close_done == NULL)
        uv_idle_start(&n->kick, kick_cb);
}
