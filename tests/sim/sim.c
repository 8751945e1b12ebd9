/* zcart-sim: the real replicated state machine inside raft_fixture.
 *
 * raft_fixture (raft/fixture.h) runs N raft servers in one process on a
 * simulated network, disk and clock, deterministically.  Each server here
 * gets its own real zcart FSM on its own LMDB environment, exactly the code
 * the broker runs.  A seed drives everything random:
 *
 *   - client commands proposed to whoever leads, built from the leader's
 *     state where that helps: REGISTER cart nodes; ASSIGN (mostly new
 *     sessions) and RELEASE sessions; RETURN draining carts; BREAKER events
 *     (mostly the next step of the breaker's cycle, some operator events,
 *     some the table refuses); REASSIGN a lost cart's session (mostly an
 *     ASSIGNED cart with its generation); LOST_TOLD a lost session; each
 *     with the right generation or target most of the time and a stale one
 *     sometimes.  Half the runs flood the leader, half let commands wait
 *     for the backlog (make_command, propose).  They go through each
 *     server's proposer (replication/proposer.h), as the broker's node
 *     proposes: queued, then handed to raft as one raft_apply of all the
 *     queued commands at a random step (the end of a loop turn) or when
 *     the run's batch cap (2..8) is reached (flush_proposals);
 *   - faults: kill and revive servers, cut and restore links, saturate links
 *     (silent drops), change network and disk latency, inject disk-append
 *     failures (returned or in the write's callback); with --transfers,
 *     leadership transfers too (maybe_transfer).
 *
 * After every step, and while the healed cluster converges, the checker
 * asserts:
 *   1. at most one leader per term (election safety);
 *   2. every leader's match index for a follower of its term is a real
 *      match (the follower holds the leader's entry there: check_match);
 *   3. on every server, the state's structural invariants (zc_state_check:
 *      registered = free + assigned + draining, disjoint; no cart held by
 *      two live sessions; no session with two carts);
 *   4. applied prefixes agree: any two servers whose state is at the same
 *      applied index have the same digest;
 *   5. only a disk fault takes a server out for good;
 *   6. every proposal is answered once (at the end, after raft_fixture_close
 *      and the proposers' destruction: nothing is left unanswered), and an
 *      OK answer comes from inside the apply of the proposing server's own
 *      entry: the bytes it proposed, at an entry of the term the server
 *      leads (proposed_cb).
 * At the end every fault is healed and, within a simulated-time bound, every
 * server must reach the same applied index and digest (convergence).
 *
 * raft 0.15 and its fixture have problems the fault model would otherwise
 * hit (none of them zcart's): the I/O shims below keep clear of five, and
 * reap_crashed of a sixth (pre-vote).  --raw-raft turns the shims that
 * change raft's behaviour off, to show what they avoid.
 *
 * Usage: zcart-sim [--servers N] [--seed S] [--seeds K] [--steps N] [-v]
 *                  [--raw-raft | --without FIX ...]
 *                  [--scenario figure8|late-append|stale-tail|conf-rollback|snapshot-conf]
 *                  [--transfers] [--membership]
 * runs seeds S .. S+K-1; a failing seed prints the command that replays it.
 * Prints "N passed, N failed" (seeds) at the end.  Each server's LMDB lives
 * under $ZCART_SIM_DIR (default /tmp); /dev/shm makes long runs faster. */
#include <getopt.h>
#include <signal.h>
#include <inttypes.h>
#include <raft.h>
#include <raft/fixture.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/rand.h"
#include "proto/status.h"
#include "replication/fsm.h"
#include "replication/io_guard.h"
#include "replication/proposer.h"

#define MAX_SERVERS 8 /* raft_fixture's own limit: up to 5 at start, more added (--membership) */
#define MAX_BACKLOG 16 /* capped runs: no command while this many wait to apply */
#define N_RECENT 12 /* RELEASE and retried ASSIGNs pick among the latest sessions */
#define N_LOST 64   /* lost sessions LOST_TOLD picks among */
#define N_NODES 3
#define SLOTS_PER_NODE 3
#define N_CMD_TYPES 11 /* zc_cmd_type_t values are below this */

/* One simulation run. */
typedef struct {
    unsigned n;                          /* servers in the fixture (grows with --membership) */
    unsigned n0;                         /* servers at start, all voters */
    uint64_t seed;                       /* this run's seed */
    uint64_t rng;                        /* xorshift state */
    unsigned steps;                      /* steps before healing */
    bool verbose;                        /* print every action */
    const char *scenario;                /* a scripted run (--scenario), NULL: random */
    bool transfers;                      /* --transfers: leadership transfers join the faults */
    bool membership;                     /* --membership: add, promote, demote, remove servers */
    uint64_t mrng;                       /* membership changes' own xorshift state */
    struct change_rec *change_recs;      /* every membership change started, freed after close */
    unsigned changes_started[4];         /* by kind (change_kind_t): raft accepted it */
    unsigned changes_ok[4];              /* ... and its callback said OK */
    unsigned changes_refused;            /* refused at once (one already in progress, ...) */
    bool removed[MAX_SERVERS];           /* removed from the configuration, then stopped */
    uint64_t *conf_at;                   /* committed configuration's hash by index, 0 = unseen */
    size_t conf_cap;                     /* entries in conf_at */
    unsigned sc_leader;                  /* scripted runs: the leader a step waits on */
    uint64_t trng;                       /* their own xorshift state (the main stream stays) */
    uint64_t brng;                       /* when each FSM commits its batch: own stream */
    struct transfer_rec *transfer_recs;  /* every transfer started, freed after close */
    unsigned transfers_started;          /* raft_transfer accepted */
    unsigned transfers_done;             /* their callbacks */
    bool capped;                         /* commands wait for the backlog (MAX_BACKLOG) */
    struct raft_fixture f;               /* the simulated cluster */
    struct raft_fsm fsms[MAX_SERVERS];   /* raft's view of each FSM */
    zc_fsm_t *zfsm[MAX_SERVERS];         /* the real FSMs */
    char dir[256];                       /* LMDB root for this run */
    uint64_t *digest_at;                 /* digest by applied index, 0 = unseen */
    size_t digest_cap;                   /* entries in digest_at */
    uint64_t last_checked[MAX_SERVERS];  /* applied index last checked, per server */
    raft_id *leader_of_term;             /* leader id by term, 0 = none seen */
    size_t term_cap;                     /* entries in leader_of_term */
    uint64_t final_applied[MAX_SERVERS]; /* each replica's applied index at the end */
    unsigned next_session;               /* sessions 0 .. next_session-1 have been used */
    unsigned proposals;                  /* commands proposed */
    unsigned applied_ok;                 /* proposals whose callback said OK */
    unsigned answered_failed;            /* ... ZC_UNAVAILABLE (leadership lost) */
    unsigned answered_refused;           /* ... ZC_NOT_LEADER (not leading at the flush) */
    zc_proposer_t *props[MAX_SERVERS];   /* each server's proposer, as the broker's node has */
    struct sim_prop *prop_recs;          /* every proposal made, checked and freed at the end */
    uint64_t prng;                       /* when proposers flush, and bursts: own stream */
    unsigned propose_batch;              /* this run's proposer cap (2..8) */
    int applying;                        /* the server inside zc_proposer_applied, -1 none */
    const struct raft_buffer *applying_buf;        /* the entry it applies */
    const zc_cmd_result_t *applying_res;           /* and that entry's result */
    zc_proposer_stats_t prop_stats;                /* the proposers' counters, summed at the end */
    unsigned proposed_by_type[N_CMD_TYPES];        /* proposals by command type */
    unsigned ok_by_type[MAX_SERVERS][N_CMD_TYPES]; /* applied with ZC_OK, by server and type */
    unsigned faults;                     /* faults injected */
    int disk_victim;                     /* the one server given append faults, -1 none */
    unsigned truncates_dropped;          /* shim F2 at work (see the shims) */
    zc_io_guard_stats_t guard;           /* the guards' counters, summed over servers */
    bool closing;                        /* in raft_fixture_close */
    char failure[512];                   /* first violation, empty if none */
} sim_t;

/* The raft_io stack of each server, from raft down:
 *
 *   raft -> the io guard (replication/io_guard.c, exactly as the broker
 *           installs it; --raw-raft leaves it out, --without FIX turns one
 *           of its fixes off)
 *        -> the sim's fixture shims below (fault injection, and one fixture
 *           problem)
 *        -> raft_fixture's in-memory io.
 *
 * The guard keeps raft 0.15 clear of its own bugs (commit on a minority,
 * AppendEntries below a snapshot, figure 8, the pre-vote deadlock, storage
 * errors); io_guard.c lists them and docs/architecture.md has the seeds
 * that show each.  The shims here are for the fixture only:
 *
 * F1. Disk faults (fault injection).  raft_fixture_io_fault fails *any*
 *     next I/O, sends included, and raft 0.15 frees an AppendEntries batch
 *     twice when the reply send fails synchronously (recv_append_entries.c
 *     frees it, then recv.c frees it again), so the sim fails only appends,
 *     half the time as a returned error and half the time in the write's
 *     callback (the fixture did store the entries: a write whose sync
 *     failed).  The guard then stops the server: its hook here kills it at
 *     once and for good (the broker exits; the fixture cannot restart a
 *     server), and the run checks that the guard saw every injected
 *     failure.  Only one server per run, a minority, gets disk faults.
 *     Inside raft_add, raft_assign and raft_remove the failure always
 *     comes in the callback: raft 0.15's error path there
 *     (clientChangeConfiguration, client.c) has already moved the new
 *     configuration into r->configuration when the append fails, and the
 *     caller then frees it again (3 servers, seed 388 with --membership:
 *     a double free in raft_fixture_close).  The broker never takes that
 *     path: its guard hook exits inside the failed append.
 *
 * F2. The fixture's truncate (a fixture problem, not raft's).  Its
 *     in-memory disk is an array assumed to hold entries 1..n, and
 *     truncate(index) keeps index - 1 slots without checking them against
 *     n.  A follower told to truncate entries whose append is still in
 *     flight breaks that (the libuv backend waits for in-flight writes
 *     first: UvTruncate's barrier), and so does any truncate after an
 *     installed snapshot (installs use trailing 0, which empties the
 *     array).  The fixture then copies past the array and later frees
 *     garbage (5 servers, seed 62 of the first BREAKER mix: SIGSEGV in
 *     raft_fixture_close).  Nothing reads that array back (the sim never
 *     restarts a server), so the shim counts the slots the fixture really
 *     holds (completed appends) and drops truncations beyond them, with
 *     the guard or without.
 *
 * F3. The fixture's io->random (a fixture problem).  It returns one fixed
 *     value per server whatever the range asked (ELECTION_TIMEOUT + index *
 *     100), so election timeouts are never randomized, and two servers can
 *     time out in lockstep forever: with one server down for good, a
 *     candidate with the shorter log (raft 0.15 restarts a timed-out
 *     candidate's election without pre-vote, tick.c:71) bumps the other's
 *     term just as its pre-vote round ends, every round (3 servers, seed
 *     386 of this sim without F3: no convergence, terms past 160).  Raft
 *     relies on randomized timeouts for liveness (Raft §5.2), as libuv's
 *     backend gives them, so the shim draws from [min, max) with a seeded
 *     generator of its own per server.
 *
 * F4. The fixture's snapshots lose their configuration index (a fixture
 *     problem).  Its snapshot store and load copy a snapshot with
 *     snapshotCopy, which copies the configuration but not
 *     configuration_index, so a snapshot it hands back (to send in an
 *     InstallSnapshot) carries whatever raft_malloc left there, and the
 *     follower installing it takes that as its committed configuration's
 *     index (libuv's backend stores it in the snapshot's header).  The
 *     shim remembers the index of each snapshot written and puts it back
 *     on the snapshot read. */
typedef struct pending_append {
    struct raft_io_append *req;  /* the guard's request (raft's) */
    raft_io_append_cb cb;        /* the guard's callback */
    unsigned n;                  /* entries in it */
    bool fail;                   /* F1: report a failure when it completes */
    struct pending_append *next; /* next in flight on the same server */
} pending_append_t;

typedef struct {
    struct raft_io *io; /* the wrapped io */
    struct raft *raft;  /* its server */
    int (*append)(struct raft_io *io, struct raft_io_append *req,
                  const struct raft_entry entries[], unsigned n, raft_io_append_cb cb);
    int (*truncate)(struct raft_io *io, raft_index index);
    uint64_t rng;               /* F3: this server's xorshift state */
    int fixed_random;           /* scripted runs: io->random returns this, 0: draw */
    pending_append_t *pending;  /* appends in flight */
    size_t disk_n;              /* slots the fixture's disk array holds */
    unsigned armed;             /* appends still to fail */
    bool fail_in_cb;            /* the next failure comes in the callback */
    unsigned failed;            /* appends failed so far */
    bool crashed;               /* failed an append: down for good */
    unsigned truncates_dropped; /* F2 */
    zc_io_guard_t *guard;       /* the guard on top, NULL with --raw-raft */
    unsigned guard_stops;       /* times the guard's hook stopped this server */
    sim_t *sim;                 /* the run (for the guard's hook) */
    unsigned index;             /* this server's fixture index */
    int (*snapshot_put)(struct raft_io *io, unsigned trailing, struct raft_io_snapshot_put *req,
                        const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb);
    int (*snapshot_get)(struct raft_io *io, struct raft_io_snapshot_get *req,
                        raft_io_snapshot_get_cb cb);
    struct {
        raft_index index;      /* a snapshot written: its last index ... */
        raft_index conf_index; /* ... and its configuration's index (F4) */
    } puts[8];
    unsigned n_puts;                        /* snapshots written (puts is a ring) */
    struct raft_io_snapshot_get *get_req;   /* F4: the snapshot read in flight ... */
    raft_io_snapshot_get_cb get_cb;         /* ... and raft's callback */
} io_shim_t;

static io_shim_t shims[MAX_SERVERS];
static bool in_change_call; /* F1: inside raft_add, raft_assign or raft_remove */
static bool raw_raft;                          /* --raw-raft: no guard */
/* --without's names of the guard's fix bits, bit 0 first. */
static const char *fix_names[] = {"1a", "1b", "2", "3", "4", "7a", "7b", "7c", "7d", "10"};
#define N_FIXES 10
static unsigned guard_fixes = ZC_IO_GUARD_ALL; /* --without turns bits off */

static io_shim_t *shim_of(struct raft_io *io)
{
    for (unsigned i = 0; i < MAX_SERVERS; i++)
        if (shims[i].io == io)
            return &shims[i];
    return NULL;
}

static void shim_append_done(struct raft_io_append *req, int status)
{
    for (unsigned i = 0; i < MAX_SERVERS; i++)
        for (pending_append_t **pp = &shims[i].pending; *pp != NULL; pp = &(*pp)->next) {
            pending_append_t *p = *pp;
            if (p->req != req)
                continue;
            *pp = p->next;
            raft_io_append_cb cb = p->cb;
            bool fail = p->fail;
            if (status == 0)
                shims[i].disk_n += p->n; /* the fixture appended them to its array */
            free(p);
            if (fail)
                shims[i].crashed = true;
            cb(req, fail && status == 0 ? RAFT_IOERR : status);
            return;
        }
    abort(); /* an append the shim never saw */
}

static int shim_append(struct raft_io *io, struct raft_io_append *req,
                       const struct raft_entry entries[], unsigned n, raft_io_append_cb cb)
{
    io_shim_t *sh = shim_of(io);
    bool fail = false;
    if (sh->armed > 0 || sh->crashed) {
        sh->armed = 0;
        sh->failed++;
        if (!sh->fail_in_cb && !in_change_call) {
            sh->crashed = true; /* a disk error stops the replica (the guard's job) */
            return RAFT_IOERR;
        }
        fail = true; /* crashed when the failure is reported */
    }
    pending_append_t *p = malloc(sizeof *p);
    if (p == NULL)
        return RAFT_NOMEM;
    *p = (pending_append_t){.req = req, .cb = cb, .n = n, .fail = fail, .next = sh->pending};
    sh->pending = p;
    int rc = sh->append(io, req, entries, n, shim_append_done);
    if (rc != 0) {
        sh->pending = p->next;
        free(p);
    }
    return rc;
}

static int shim_truncate(struct raft_io *io, raft_index index)
{
    io_shim_t *sh = shim_of(io);
    if (index - 1 > sh->disk_n) {
        sh->truncates_dropped++; /* nothing the array holds is at or past index */
        return 0;
    }
    int rc = sh->truncate(io, index);
    if (rc == 0)
        sh->disk_n = index - 1;
    return rc;
}

static int shim_snapshot_put(struct raft_io *io, unsigned trailing,
                             struct raft_io_snapshot_put *req, const struct raft_snapshot *snapshot,
                             raft_io_snapshot_put_cb cb)
{
    io_shim_t *sh = shim_of(io);
    unsigned k = sh->n_puts++ % 8;
    sh->puts[k].index = snapshot->index;
    sh->puts[k].conf_index = snapshot->configuration_index;
    return sh->snapshot_put(io, trailing, req, snapshot, cb);
}

static void shim_snapshot_got(struct raft_io_snapshot_get *req, struct raft_snapshot *snapshot,
                              int status)
{
    for (unsigned i = 0; i < MAX_SERVERS; i++) {
        io_shim_t *sh = &shims[i];
        if (sh->get_req != req)
            continue;
        raft_io_snapshot_get_cb cb = sh->get_cb;
        sh->get_req = NULL;
        if (status == 0 && snapshot != NULL) {
            snapshot->configuration_index = 0;
            for (unsigned k = 0; k < 8 && k < sh->n_puts; k++)
                if (sh->puts[k].index == snapshot->index)
                    snapshot->configuration_index = sh->puts[k].conf_index;
        }
        cb(req, snapshot, status);
        return;
    }
    abort(); /* a read the shim never saw */
}

static int shim_snapshot_get(struct raft_io *io, struct raft_io_snapshot_get *req,
                             raft_io_snapshot_get_cb cb)
{
    io_shim_t *sh = shim_of(io);
    if (sh->get_req != NULL)
        return RAFT_BUSY; /* raft 0.15 reads one at a time */
    sh->get_req = req;
    sh->get_cb = cb;
    int rc = sh->snapshot_get(io, req, shim_snapshot_got);
    if (rc != 0)
        sh->get_req = NULL;
    return rc;
}

static int shim_random(struct raft_io *io, int min, int max)
{
    io_shim_t *sh = shim_of(io);
    if (sh->fixed_random != 0)
        return sh->fixed_random;
    uint64_t x = zc_xorshift64(&sh->rng);
    return max > min ? min + (int)(x % (uint64_t)(max - min)) : min;
}

static void say(sim_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(sim_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The guard's storage-failure hook: where the broker exits, the sim takes
 * the server down at once, for good. */
static void guard_fatal(void *arg, const char *op, int status, const char *detail)
{
    io_shim_t *sh = arg;
    if (strcmp(op, "membership") == 0) /* not a disk fault: the guard lost track */
        fail(sh->sim, "guard on server %u: %s", sh->index, detail);
    sh->guard_stops++;
    sh->crashed = true;
    if (!sh->sim->closing) /* raft_fixture_close flushes writes */
        raft_fixture_kill(&sh->sim->f, sh->index);
    say(sh->sim, "guard: %s failed on server %u (%s: %s): server stopped", op, sh->index,
        raft_strerror(status), detail);
}

static void shim_install(sim_t *s, struct raft_io *io, struct raft *r, unsigned i)
{
    shims[i] = (io_shim_t){.io = io,
                           .raft = r,
                           .append = io->append,
                           .truncate = io->truncate,
                           .snapshot_put = io->snapshot_put,
                           .snapshot_get = io->snapshot_get,
                           .sim = s,
                           .index = i,
                           .rng = (s->seed + 1) * 0x9E3779B97F4A7C15ull ^ (i + 1) * 0xBF58476D1CE4E5B9ull,
                           .disk_n = 1}; /* raft_fixture_bootstrap writes entry 1 */
    io->append = shim_append;
    io->truncate = shim_truncate;
    io->snapshot_put = shim_snapshot_put;
    io->snapshot_get = shim_snapshot_get;
    io->random = shim_random;
    if (!raw_raft) {
        shims[i].guard = zc_io_guard_install(io, guard_fixes, guard_fatal, &shims[i]);
        zc_io_guard_bind(shims[i].guard, r);
    }
}

/* After raft_fixture_close (it flushes appends, so normally nothing is
 * left in flight). */
static void shim_clear(void)
{
    for (unsigned i = 0; i < MAX_SERVERS; i++) {
        zc_io_guard_destroy(&shims[i].guard);
        while (shims[i].pending != NULL) {
            pending_append_t *p = shims[i].pending;
            shims[i].pending = p->next;
            free(p);
        }
    }
    memset(shims, 0, sizeof shims);
}

static bool is_crashed(unsigned i) { return shims[i].crashed; }

/* A proposal in flight; raft hands req back to the callback. */
typedef struct {
    struct raft_apply req; /* must be first */
    sim_t *sim;            /* the run */
    uint8_t type;          /* zc_cmd_type_t */
} prop_t;

static uint64_t rnd(sim_t *s) { return zc_xorshift64(&s->rng); }

static unsigned pick(sim_t *s, unsigned n) { return (unsigned)(rnd(s) % n); }

static void fail(sim_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(sim_t *s, const char *fmt, ...)
{
    if (s->failure[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->failure, sizeof s->failure, fmt, ap);
    va_end(ap);
}

static void say(sim_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(sim_t *s, const char *fmt, ...)
{
    if (!s->verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    printf("[t=%llu] ", (unsigned long long)raft_fixture_time(&s->f));
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

static void apply_cb(struct raft_apply *req, int status, void *result)
{
    prop_t *p = (prop_t *)req;
    if (status == 0) {
        p->sim->applied_ok++;
        const zc_cmd_result_t *res = result;
        if (res != NULL)
            say(p->sim, "applied %s: %s %s gen %llu", zc_cmd_name(p->type),
                zc_status_name(res->status), res->cart, (unsigned long long)res->generation);
    }
    free(p);
}

/* A command proposed through a server's proposer. */
typedef struct sim_prop {
    sim_t *sim;            /* the run */
    unsigned server;       /* the server it was proposed to */
    uint8_t type;          /* zc_cmd_type_t */
    uint8_t *bytes;        /* its encoding, as raft gets it */
    size_t len;            /* bytes */
    unsigned answers;      /* callbacks so far (must end at exactly 1) */
    struct sim_prop *next; /* next made */
} sim_prop_t;

/* The proposer's answer.  OK must come from inside the apply, on the
 * proposing server, of the entry it proposed: the same bytes, an entry
 * of the term that server leads now. */
static void proposed_cb(void *arg, int status, const zc_cmd_result_t *res)
{
    sim_prop_t *p = arg;
    sim_t *s = p->sim;
    if (++p->answers > 1)
        fail(s, "a %s proposed to server %u was answered %u times", zc_cmd_name(p->type), p->server,
             p->answers);
    if (status == ZC_UNAVAILABLE) {
        s->answered_failed++;
        return;
    }
    if (status == ZC_NOT_LEADER) {
        s->answered_refused++;
        return;
    }
    if (status != ZC_OK) {
        fail(s, "a %s proposed to server %u was answered %s", zc_cmd_name(p->type), p->server,
             zc_status_name(status));
        return;
    }
    s->applied_ok++;
    struct raft *r = raft_fixture_get(&s->f, p->server);
    raft_index index = r->last_applied + 1;
    if (s->applying != (int)p->server || res != s->applying_res || s->applying_buf->len != p->len ||
        memcmp(s->applying_buf->base, p->bytes, p->len) != 0)
        fail(s, "server %u answered a %s with the result of another entry (index %llu)", p->server,
             zc_cmd_name(p->type), (unsigned long long)index);
    else if (raft_state(r) != RAFT_LEADER || zc_io_guard_term_at(&r->log, index) != r->current_term)
        fail(s, "server %u answered a %s with entry %llu of term %llu while %s of term %llu",
             p->server, zc_cmd_name(p->type), (unsigned long long)index,
             (unsigned long long)zc_io_guard_term_at(&r->log, index),
             raft_state(r) == RAFT_LEADER ? "leader" : "not leader",
             (unsigned long long)r->current_term);
    say(s, "applied %s at %llu: %s %s gen %llu", zc_cmd_name(p->type), (unsigned long long)index,
        zc_status_name(res->status), res->cart, (unsigned long long)res->generation);
}

/* Count each replica's outcomes by command type (for the summary). */
static struct {
    struct raft_fsm *fsm;
    int (*apply)(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result);
    unsigned *ok; /* N_CMD_TYPES counters */
    sim_t *sim;   /* the run (the server's proposer) */
} taps[MAX_SERVERS];

static int tap_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    for (unsigned i = 0; i < MAX_SERVERS; i++) {
        if (taps[i].fsm != fsm)
            continue;
        int rc = taps[i].apply(fsm, buf, result);
        if (rc != 0)
            return rc;
        const zc_cmd_result_t *res = *result;
        uint8_t type = buf->len > 0 ? ((const uint8_t *)buf->base)[0] : 0;
        if (res != NULL && res->status == ZC_OK && !res->replayed && type < N_CMD_TYPES)
            taps[i].ok[type]++;
        /* As the node's apply wrapper: the entry's proposer hears now. */
        sim_t *s = taps[i].sim;
        if (s != NULL && s->props[i] != NULL) {
            s->applying = (int)i;
            s->applying_buf = buf;
            s->applying_res = res;
            zc_proposer_applied(s->props[i], res);
            s->applying = -1;
        }
        return 0;
    }
    return RAFT_INVALID;
}

static void session_of(uint8_t out[ZC_SESSION_LEN], unsigned k)
{
    memset(out, 0, ZC_SESSION_LEN);
    out[0] = 0x5e;
    k++;
    out[ZC_SESSION_LEN - 4] = (uint8_t)(k >> 24);
    out[ZC_SESSION_LEN - 3] = (uint8_t)(k >> 16);
    out[ZC_SESSION_LEN - 2] = (uint8_t)(k >> 8);
    out[ZC_SESSION_LEN - 1] = (uint8_t)k;
}

/* One of the latest sessions (the live ones are among them). */
static void recent_session(sim_t *s, uint8_t out[ZC_SESSION_LEN])
{
    unsigned w = s->next_session < N_RECENT ? s->next_session : N_RECENT;
    session_of(out, w == 0 ? 0 : s->next_session - 1 - pick(s, w));
}

static void random_cart(sim_t *s, char *out, size_t cap)
{
    /* Two statements: argument evaluation order differs between gcc and
     * clang, and a seed must mean the same run in both builds. */
    unsigned node = pick(s, N_NODES);
    unsigned slot = pick(s, SLOTS_PER_NODE);
    snprintf(out, cap, "n%u.%u", node, slot);
}

/* The leader's carts in a given state, or lost sessions, to aim commands at. */
typedef struct {
    uint8_t state;                      /* carts: the state wanted */
    unsigned n;                         /* found */
    zc_cart_rec_t carts[N_NODES * SLOTS_PER_NODE];
    uint8_t sessions[N_LOST][ZC_SESSION_LEN];
} found_t;

static int found_cart(const zc_cart_rec_t *c, void *arg)
{
    found_t *f = arg;
    if (c->state == f->state && f->n < N_NODES * SLOTS_PER_NODE)
        f->carts[f->n++] = *c;
    return 0;
}

static int found_lost(const zc_session_rec_t *r, void *arg)
{
    found_t *f = arg;
    if (r->lost && f->n < N_LOST)
        memcpy(f->sessions[f->n++], r->id, ZC_SESSION_LEN);
    return 0;
}

/* A breaker event for the cart's record as the leader sees it: mostly the
 * next step of its cycle (CLOSED -TRIP-> OPEN -WAIT_OVER-> HALF_OPEN -PROBE,
 * PROBE_OK or PROBE_FAIL->), an operator's event now and then (AUTO most
 * often while forced), and a fifth of the time any event at all, which the
 * table mostly refuses (stale: a deposed leader's, or one racing another).
 * A closed breaker trips only every other time it is picked, so carts stay
 * usable for ASSIGN and REASSIGN much of the time. */
static void make_breaker(sim_t *s, zc_state_t *st, zc_cmd_t *c)
{
    random_cart(s, c->brk.cart, sizeof c->brk.cart);
    c->brk.max_probes = (uint16_t)(1 + pick(s, 3));
    zc_cart_rec_t cart;
    uint8_t ev = (uint8_t)(1 + pick(s, ZC_BRK_N_EVENTS - 1));
    if (pick(s, 5) != 0 && zc_state_get_cart(st, c->brk.cart, &cart) == 0) {
        static const uint8_t operator[] = {ZC_BRK_EV_FORCE_OPEN, ZC_BRK_EV_FORCE_CLOSE,
                                           ZC_BRK_EV_AUTO};
        static const uint8_t half_open[] = {ZC_BRK_EV_PROBE, ZC_BRK_EV_PROBE_OK,
                                            ZC_BRK_EV_PROBE_OK, ZC_BRK_EV_PROBE_FAIL};
        if (cart.breaker.mode != ZC_BRK_AUTO)
            ev = pick(s, 2) ? ZC_BRK_EV_AUTO : operator[pick(s, 3)];
        else if (pick(s, 10) == 0)
            ev = operator[pick(s, 3)];
        else if (cart.breaker.state == ZC_BRK_CLOSED)
            ev = pick(s, 2) ? ZC_BRK_EV_TRIP : ZC_BRK_EV_PROBE_OK; /* the latter refused */
        else if (cart.breaker.state == ZC_BRK_OPEN)
            ev = ZC_BRK_EV_WAIT_OVER;
        else
            ev = half_open[pick(s, 4)];
    }
    c->brk.ev = ev;
    if (ev == ZC_BRK_EV_TRIP)
        c->brk.why = pick(s, 2) ? ZC_BRK_WHY_HEARTBEAT : ZC_BRK_WHY_FAILURES;
    else if (ev == ZC_BRK_EV_PROBE_FAIL)
        c->brk.why = pick(s, 2) ? ZC_BRK_WHY_NONE : ZC_BRK_WHY_FAILURES;
    else
        c->brk.why = ZC_BRK_WHY_NONE;
}

/* Build a random command, reading the leader's state where that helps.
 * The mix, in percent: REGISTER 7, ASSIGN 33, RELEASE 20, RETURN 14,
 * BREAKER 12, REASSIGN 9, LOST_TOLD 3, PURGE 2. */
static void make_command(sim_t *s, unsigned leader, zc_cmd_t *c, zc_cmd_slot_t *slots)
{
    memset(c, 0, sizeof *c);
    c->time_ms = raft_fixture_time(&s->f);
    zc_state_t *st = zc_fsm_state(s->zfsm[leader]);
    unsigned r = pick(s, 100);
    if (r < 7) {
        c->type = ZC_CMD_REGISTER;
        snprintf(c->reg.node, sizeof c->reg.node, "n%u", pick(s, N_NODES));
        c->reg.n = SLOTS_PER_NODE;
        c->reg.slots = slots;
        bool dirty = pick(s, 4) == 0;
        for (unsigned i = 0; i < SLOTS_PER_NODE; i++)
            slots[i] = (zc_cmd_slot_t){.slot = (uint16_t)i, .generation = dirty ? pick(s, 50) : 0,
                                       .dirty = dirty};
    } else if (r < 40) {
        /* Mostly a new session; else a recent one again (a retry, or a
         * session that ended: the same answer as the first time). */
        c->type = ZC_CMD_ASSIGN;
        c->assign.placement = (uint8_t)pick(s, 2); /* FIFO or least-loaded */
        if (pick(s, 4) != 0)
            session_of(c->assign.session, s->next_session++);
        else
            recent_session(s, c->assign.session);
    } else if (r < 60) {
        c->type = ZC_CMD_RELEASE;
        recent_session(s, c->release.session);
        c->release.why = pick(s, 2) ? ZC_RELEASE_CLOSE : ZC_RELEASE_EXPIRED;
    } else if (r < 74) {
        /* Return a cart the leader sees draining (a released session's, or
         * one a REASSIGN left behind), or a made-up stale one. */
        c->type = ZC_CMD_RETURN;
        found_t *f = calloc(1, sizeof *f);
        f->state = ZC_CART_DRAINING;
        if (pick(s, 5) != 0)
            zc_state_each_cart(st, found_cart, f);
        if (f->n > 0) {
            const zc_cart_rec_t *cart = &f->carts[pick(s, f->n)];
            snprintf(c->ret.cart, sizeof c->ret.cart, "%s", cart->id);
            c->ret.generation = pick(s, 6) ? cart->generation : cart->generation + 1 + pick(s, 3);
        } else {
            random_cart(s, c->ret.cart, sizeof c->ret.cart);
            c->ret.generation = pick(s, 20);
        }
        free(f);
    } else if (r < 86) {
        c->type = ZC_CMD_BREAKER;
        make_breaker(s, st, c);
    } else if (r < 95) {
        /* A lost cart: one the leader sees ASSIGNED with its generation
         * mostly, sometimes a stale generation or any cart at all (fenced). */
        c->type = ZC_CMD_REASSIGN;
        found_t *f = calloc(1, sizeof *f);
        f->state = ZC_CART_ASSIGNED;
        unsigned how = pick(s, 10);
        if (how < 9)
            zc_state_each_cart(st, found_cart, f);
        if (f->n > 0) {
            const zc_cart_rec_t *cart = &f->carts[pick(s, f->n)];
            uint64_t g = cart->generation;
            snprintf(c->reassign.cart, sizeof c->reassign.cart, "%s", cart->id);
            if (how < 7)
                c->reassign.generation = g;
            else if (g > 1 && pick(s, 2))
                c->reassign.generation = 1 + pick(s, (unsigned)(g - 1)); /* an older one */
            else
                c->reassign.generation = g + 1 + pick(s, 3); /* one not issued yet */
        } else {
            random_cart(s, c->reassign.cart, sizeof c->reassign.cart);
            c->reassign.generation = pick(s, 20);
        }
        free(f);
    } else if (r >= 98) {
        c->type = ZC_CMD_PURGE; /* recent sessions, a short retention: some ended long enough */
        c->purge.retention_ms = pick(s, 2000);
        for (c->purge.n = 0; c->purge.n < 4; c->purge.n++)
            recent_session(s, c->purge.sessions[c->purge.n]);
    } else {
        /* Tell a session the leader sees lost, mostly; else any session. */
        c->type = ZC_CMD_LOST_TOLD;
        found_t *f = calloc(1, sizeof *f);
        if (pick(s, 4) != 0)
            zc_state_each_session(st, found_lost, f);
        if (f->n > 0)
            memcpy(c->told.session, f->sessions[pick(s, f->n)], ZC_SESSION_LEN);
        else
            recent_session(s, c->told.session);
        free(f);
    }
}

/* One command to the leader's proposer.  false: none (no leader, or the
 * capped backlog is full). */
static bool propose_one(sim_t *s)
{
    unsigned leader = raft_fixture_leader_index(&s->f);
    if (leader >= s->n)
        return false;
    struct raft *r = raft_fixture_get(&s->f, leader);
    if (raft_state(r) != RAFT_LEADER)
        return false;
    if (s->capped && raft_last_index(r) + zc_proposer_queued(s->props[leader]) >=
                         raft_last_applied(r) + MAX_BACKLOG)
        return false;
    zc_cmd_t c;
    zc_cmd_slot_t slots[SLOTS_PER_NODE];
    make_command(s, leader, &c, slots);
    zc_wbuf_t w;
    zc_wbuf_init(&w);
    if (zc_cmd_encode(&c, &w) != 0) {
        zc_wbuf_clear(&w);
        return false;
    }
    sim_prop_t *p = calloc(1, sizeof *p);
    p->sim = s;
    p->server = leader;
    p->type = c.type;
    p->bytes = zc_wbuf_take(&w, &p->len);
    p->next = s->prop_recs;
    s->prop_recs = p;
    s->proposals++;
    s->proposed_by_type[c.type]++;
    char what[96] = "";
    if (c.type == ZC_CMD_BREAKER)
        snprintf(what, sizeof what, " %s %s", c.brk.cart, zc_breaker_event_name(c.brk.ev));
    else if (c.type == ZC_CMD_REASSIGN)
        snprintf(what, sizeof what, " %s gen %llu", c.reassign.cart,
                 (unsigned long long)c.reassign.generation);
    else if (c.type == ZC_CMD_RETURN)
        snprintf(what, sizeof what, " %s gen %llu", c.ret.cart,
                 (unsigned long long)c.ret.generation);
    say(s, "propose %s%s via server %u", zc_cmd_name(c.type), what, leader);
    zc_proposer_propose(s->props[leader], &c, proposed_cb, p);
    return true;
}

/* A command, or now and then (a third of the time) a burst of up to four
 * in the same loop turn, so batches of several entries are common. */
static void propose(sim_t *s)
{
    unsigned n = zc_xorshift64(&s->prng) % 3 == 0 ? 1 + (unsigned)(zc_xorshift64(&s->prng) % 4) : 1;
    for (unsigned k = 0; k < n && propose_one(s); k++)
        ;
}

/* A leadership transfer.  raft 0.15 keeps its TimeoutNow send inside the
 * request, so, as the broker's node does, the run keeps every one until
 * raft_fixture_close. */
struct transfer_rec {
    struct raft_transfer req;  /* raft's request (must be first) */
    sim_t *sim;                /* the run */
    struct transfer_rec *next; /* next started */
};

static void transfer_done(struct raft_transfer *req)
{
    struct transfer_rec *t = (struct transfer_rec *)req;
    t->sim->transfers_done++;
    say(t->sim, "transfer finished");
}

/* Now and then (--transfers), hand leadership to a random voter (or let
 * raft pick one), on the transfers' own random stream. */
static void maybe_transfer(sim_t *s)
{
    if (zc_xorshift64(&s->trng) % 100 != 0 || !s->transfers)
        return;
    unsigned leader = raft_fixture_leader_index(&s->f);
    if (leader >= s->n)
        return;
    struct raft *r = raft_fixture_get(&s->f, leader);
    if (raft_state(r) != RAFT_LEADER)
        return;
    raft_id id = (raft_id)((s->trng >> 8) % (s->n + 1)); /* 0: raft picks */
    if (id == r->id)
        id = 0;
    struct transfer_rec *t = calloc(1, sizeof *t);
    t->sim = s;
    if (raft_transfer(r, &t->req, id, transfer_done) != 0) {
        free(t); /* refused before any send */
        return;
    }
    t->next = s->transfer_recs;
    s->transfer_recs = t;
    s->transfers_started++;
    say(s, "transfer leadership from server %u to %llu", leader, (unsigned long long)id);
}

static bool is_out(sim_t *s, unsigned i);

/* A server's proposer may hand commands to raft while the server is up,
 * in the run and leads (the sim has no readiness barrier to wait for). */
static bool sim_proposer_ready(void *arg)
{
    io_shim_t *sh = arg;
    return !is_out(sh->sim, sh->index) && raft_fixture_alive(&sh->sim->f, sh->index) &&
           raft_state(sh->raft) == RAFT_LEADER;
}

static void sim_proposer_fatal(void *arg, const char *why, int rv)
{
    io_shim_t *sh = arg;
    fail(sh->sim, "server %u's proposer: %s (%s)", sh->index, why, raft_strerror(rv));
}

/* Bring server i up in the fixture: its own LMDB FSM, the shims and the
 * io guard, its proposer, raft's snapshot settings (threshold, trailing)
 * and pre-vote. */
static int server_new(sim_t *s, unsigned i, unsigned threshold, unsigned trailing)
{
    char d[300], err[256];
    snprintf(d, sizeof d, "%s/s%u", s->dir, i);
    s->zfsm[i] = zc_fsm_new(d, 16u << 20, err, sizeof err);
    if (s->zfsm[i] == NULL) {
        fail(s, "fsm: %s", err);
        return -1;
    }
    /* Batched commits, as the broker runs them (fsm.c "batching"): up to 8
     * entries, committed at random steps (flush_batches), so the checks
     * read states with a batch open and snapshots begin over one. */
    zc_fsm_set_batch(s->zfsm[i], 8);
    zc_fsm_raft_async(s->zfsm[i], &s->fsms[i]);
    taps[i].fsm = &s->fsms[i];
    taps[i].apply = s->fsms[i].apply;
    taps[i].ok = s->ok_by_type[i];
    taps[i].sim = s;
    s->fsms[i].apply = tap_apply;
    /* The fsm builds snapshots asynchronously (fsm version 3): raft_init
     * wants io version 2, which the fixture's io has (async_work, run
     * inline in simulated time) but never sets; ioInit leaves it be. */
    s->f.servers[i].io.version = 2;
    if (raft_fixture_grow(&s->f, &s->fsms[i]) != 0) {
        fail(s, "raft_fixture_grow failed");
        return -1;
    }
    s->n = i + 1;
    struct raft *r = raft_fixture_get(&s->f, i);
    zc_fsm_bind(s->zfsm[i], r);
    shim_install(s, &s->f.servers[i].io, r, i);
    zc_proposer_config_t pc = {.raft = r,
                               .max_batch = s->propose_batch,
                               .ready = sim_proposer_ready,
                               .fatal = sim_proposer_fatal,
                               .arg = &shims[i]};
    s->props[i] = zc_proposer_new(&pc);
    if (s->props[i] == NULL) {
        fail(s, "proposer: out of memory");
        return -1;
    }
    raft_set_snapshot_threshold(r, threshold);
    /* trailing >= 1: the fixture's disk array assumes entries from 1,
     * which a trailing-0 snapshot breaks (shim 2). */
    raft_set_snapshot_trailing(r, trailing);
    raft_set_pre_vote(r, true);
    return 0;
}

/* --- membership changes (--membership) ---
 *
 * What an operator does with `zcart admin add-node` / `remove-node`, on
 * the leader, as replication/node.c does it: add a server as a spare
 * (raft_add), then, once that is committed, promote it (raft_assign to
 * voter, after raft's catch-up rounds); or leave it a spare or make it a
 * standby; demote a voter to standby; remove a server (raft_remove), and
 * stop its process once the removal is committed.  A new server is a new
 * fixture slot (ids are never reused) that starts empty, as `--join`
 * does.  Voters never drop below three, so one disk fault still leaves a
 * majority.  Raft refuses a change while another is uncommitted (counted,
 * as the broker answers UNAVAILABLE). */
typedef enum { CH_ADD = 0, CH_ASSIGN, CH_REMOVE, CH_PROMOTE } change_kind_t;

struct change_rec {
    struct raft_change req;   /* raft's request (must be first) */
    sim_t *sim;               /* the run */
    change_kind_t kind;       /* what was asked (CH_PROMOTE: an add's second half) */
    unsigned server;          /* fixture index of the server concerned */
    int role;                 /* CH_ADD: the role to assign next, -1 none; CH_ASSIGN: the role */
    struct change_rec *next;  /* next started */
};

static const char *role_name(int role)
{
    return role == RAFT_VOTER ? "voter" : role == RAFT_STANDBY ? "standby" : "spare";
}

static void change_done(struct raft_change *req, int status)
{
    struct change_rec *c = (struct change_rec *)req;
    sim_t *s = c->sim;
    say(s, "membership: %s of server %u %s", (const char *[]){"add", "assign", "remove", "promote"}[c->kind],
        c->server, status == 0 ? "committed" : raft_strerror(status));
    if (status != 0 || s->closing)
        return;
    s->changes_ok[c->kind]++;
    if (c->kind == CH_REMOVE) {
        /* The operator stops a removed replica once remove-node answered. */
        s->removed[c->server] = true;
        if (raft_fixture_alive(&s->f, c->server))
            raft_fixture_kill(&s->f, c->server);
    } else if (c->kind == CH_ADD && c->role >= 0) {
        /* zc_node_add_voter: the add committed, now the promotion, on the
         * same request, on whoever leads now (the request's leader). */
        unsigned l = raft_fixture_leader_index(&s->f);
        if (l >= s->n || raft_state(raft_fixture_get(&s->f, l)) != RAFT_LEADER)
            return;
        c->kind = c->role == RAFT_VOTER ? CH_PROMOTE : CH_ASSIGN;
        int role = c->role;
        c->role = -1;
        in_change_call = true;
        int rv = raft_assign(raft_fixture_get(&s->f, l), &c->req, (raft_id)c->server + 1, role,
                             change_done);
        in_change_call = false;
        if (rv == 0)
            s->changes_started[c->kind]++;
        else
            s->changes_refused++;
    }
}

static uint64_t mrnd(sim_t *s) { return zc_xorshift64(&s->mrng); }

static unsigned voters_of(const struct raft_configuration *c)
{
    unsigned v = 0;
    for (unsigned k = 0; k < c->n; k++)
        v += c->servers[k].role == RAFT_VOTER;
    return v;
}

/* Now and then (--membership, about one step in 150, on its own random
 * stream), ask the leader for a membership change. */
static void maybe_change(sim_t *s)
{
    uint64_t x = mrnd(s);
    if (!s->membership || x % 150 != 0)
        return;
    unsigned l = raft_fixture_leader_index(&s->f);
    if (l >= s->n)
        return;
    struct raft *r = raft_fixture_get(&s->f, l);
    if (raft_state(r) != RAFT_LEADER)
        return;
    const struct raft_configuration *conf = &r->configuration;
    struct change_rec *c = calloc(1, sizeof *c);
    c->sim = s;
    c->role = -1;
    unsigned what = (unsigned)(mrnd(s) % 10);
    int rv;
    if (what < 4 && s->n < MAX_SERVERS) {
        /* Add a new server: mostly promoted to voter (add-node), else left
         * a spare or made a standby. */
        unsigned i = s->n;
        unsigned threshold = 8 + (unsigned)(mrnd(s) % 24), trailing = 1 + (unsigned)(mrnd(s) % 8);
        unsigned then = (unsigned)(mrnd(s) % 4);
        c->kind = CH_ADD;
        c->server = i;
        c->role = then < 2 ? RAFT_VOTER : then == 2 ? RAFT_STANDBY : -1;
        char address[16];
        snprintf(address, sizeof address, "%u", i + 1);
        in_change_call = true;
        rv = raft_add(r, &c->req, (raft_id)i + 1, address, change_done);
        in_change_call = false;
        /* Its process starts now, empty (a --join replica), before any
         * message reaches it; a refused add leaves the slot free. */
        if (rv == 0 && (server_new(s, i, threshold, trailing) != 0 ||
                        (shims[i].disk_n = 0, raft_start(raft_fixture_get(&s->f, i))) != 0)) {
            fail(s, "could not start server %u", i);
            free(c);
            return;
        }
        say(s, "membership: add server %u via %u (then %s): %s", i, l,
            c->role < 0 ? "nothing" : role_name(c->role), rv == 0 ? "started" : raft_strerror(rv));
    } else {
        /* A member other than the leader (the broker's operator transfers
         * leadership first): remove it, or change its role. */
        if (conf->n < 2) {
            free(c);
            return;
        }
        unsigned k = (unsigned)(mrnd(s) % conf->n);
        if (conf->servers[k].id == r->id)
            k = (k + 1) % conf->n;
        const struct raft_server *sv = &conf->servers[k];
        c->server = (unsigned)(sv->id - 1);
        raft_id id = sv->id;
        int was = sv->role; /* sv is raft's: a change replaces the array */
        bool voter = was == RAFT_VOTER;
        if (voter && voters_of(conf) <= 3) {
            free(c); /* keep a majority through one disk fault */
            return;
        }
        in_change_call = true;
        if (what < 7) {
            c->kind = CH_REMOVE;
            rv = raft_remove(r, &c->req, id, change_done);
        } else {
            c->kind = CH_ASSIGN;
            c->role = voter ? RAFT_STANDBY : was == RAFT_STANDBY && what == 9 ? RAFT_SPARE
                                                                              : RAFT_VOTER;
            rv = raft_assign(r, &c->req, id, c->role, change_done);
        }
        in_change_call = false;
        say(s, "membership: %s server %u (%s) via %u%s%s: %s", c->kind == CH_REMOVE ? "remove" : "assign",
            c->server, role_name(was), l, c->kind == CH_ASSIGN ? " to " : "",
            c->kind == CH_ASSIGN ? role_name(c->role) : "", rv == 0 ? "started" : raft_strerror(rv));
    }
    if (rv != 0) {
        s->changes_refused++;
        free(c);
        return;
    }
    s->changes_started[c->kind]++;
    c->next = s->change_recs;
    s->change_recs = c;
}

/* A server out of the run for good: its disk failed or it was removed. */
static bool is_out(sim_t *s, unsigned i) { return shims[i].crashed || s->removed[i]; }

/* Propose a given REGISTER of node `node` on server i (scripted runs). */
static void propose_register(sim_t *s, unsigned i, const char *node)
{
    zc_cmd_slot_t slots[SLOTS_PER_NODE];
    zc_cmd_t c = {.type = ZC_CMD_REGISTER, .time_ms = raft_fixture_time(&s->f)};
    snprintf(c.reg.node, sizeof c.reg.node, "%s", node);
    c.reg.n = SLOTS_PER_NODE;
    c.reg.slots = slots;
    for (unsigned k = 0; k < SLOTS_PER_NODE; k++)
        slots[k] = (zc_cmd_slot_t){.slot = (uint16_t)k};
    zc_wbuf_t w;
    zc_wbuf_init(&w);
    if (zc_cmd_encode(&c, &w) != 0) {
        zc_wbuf_clear(&w);
        fail(s, "scenario: cannot encode a command");
        return;
    }
    struct raft_buffer buf = {raft_malloc(w.len), w.len};
    memcpy(buf.base, w.data, w.len);
    zc_wbuf_clear(&w);
    prop_t *p = calloc(1, sizeof *p);
    p->sim = s;
    p->type = c.type;
    if (raft_apply(raft_fixture_get(&s->f, i), &p->req, &buf, 1, apply_cb) != 0) {
        raft_free(buf.base);
        free(p);
        fail(s, "scenario: server %u refused a proposal", i);
        return;
    }
    s->proposals++;
    s->proposed_by_type[c.type]++;
    say(s, "propose REGISTER %s via server %u", node, i);
}

static void inject_fault(sim_t *s)
{
    unsigned i = pick(s, s->n), j = pick(s, s->n);
    struct raft_fixture *f = &s->f;
    s->faults++;
    switch (pick(s, 9)) {
    case 0:
        if (raft_fixture_alive(f, i)) {
            raft_fixture_kill(f, i);
            say(s, "kill %u", i);
        }
        break;
    case 1:
        if (!raft_fixture_alive(f, i) && !is_out(s, i)) {
            raft_fixture_revive(f, i);
            say(s, "revive %u", i);
        }
        break;
    case 2:
        if (i != j) {
            raft_fixture_disconnect(f, i, j);
            raft_fixture_disconnect(f, j, i);
            say(s, "disconnect %u-%u", i, j);
        }
        break;
    case 3:
        if (i != j && raft_fixture_alive(f, i) && raft_fixture_alive(f, j) && !is_out(s, i) &&
            !is_out(s, j)) {
            raft_fixture_reconnect(f, i, j);
            raft_fixture_reconnect(f, j, i);
            say(s, "reconnect %u-%u", i, j);
        }
        break;
    case 4:
        if (i != j) {
            raft_fixture_saturate(f, i, j);
            say(s, "saturate %u->%u", i, j);
        }
        break;
    case 5:
        /* Not to or from a server that is down: the fixture's kill is a
         * saturation of all its links, which this would undo (a crashed
         * server must never be heard from again: io_guard.h). */
        if (i != j && raft_fixture_alive(f, i) && raft_fixture_alive(f, j) && !is_out(s, i) &&
            !is_out(s, j)) {
            raft_fixture_desaturate(f, i, j);
            say(s, "desaturate %u->%u", i, j);
        }
        break;
    case 6: {
        unsigned ms = 1 + pick(s, 120);
        raft_fixture_set_network_latency(f, i, ms);
        say(s, "network latency %u = %u ms", i, ms);
    } break;
    case 7: {
        unsigned ms = 1 + pick(s, 40);
        raft_fixture_set_disk_latency(f, i, ms);
        say(s, "disk latency %u = %u ms", i, ms);
    } break;
    case 8:
        /* A failed append leaves raft 0.15 UNAVAILABLE until restarted, which
         * the fixture cannot do: confine disk faults to one server, a
         * minority, so the others must carry on without it. */
        if (s->n < 3)
            break;
        if (s->disk_victim < 0)
            s->disk_victim = (int)i;
        shims[s->disk_victim].armed = 1;
        shims[s->disk_victim].fail_in_cb = pick(s, 2) == 0;
        say(s, "append fault armed on %d (%s)", s->disk_victim,
            shims[s->disk_victim].fail_in_cb ? "in the callback" : "returned");
        break;
    }
}

/* Take down a server whose disk failed, if the guard did not already
 * (--raw-raft: raft as it was, with the server killed after the step, not
 * inside it).  Pre-vote stays on: a cluster down to a bare majority for
 * good is where raft 0.15's pre-vote deadlock shows (guard fix 4). */
static void reap_crashed(sim_t *s)
{
    for (unsigned i = 0; i < s->n; i++)
        if (shims[i].crashed && raft_fixture_alive(&s->f, i)) {
            raft_fixture_kill(&s->f, i);
            say(s, "server %u stopped after a failed append", i);
        }
}

static void heal(sim_t *s)
{
    struct raft_fixture *f = &s->f;
    for (unsigned i = 0; i < s->n; i++) {
        shims[i].armed = 0;
        if (is_out(s, i))
            continue;
        if (!raft_fixture_alive(f, i))
            raft_fixture_revive(f, i);
        raft_fixture_set_network_latency(f, i, 15);
        raft_fixture_set_disk_latency(f, i, 10);
    }
    for (unsigned i = 0; i < s->n; i++)
        for (unsigned j = 0; j < s->n; j++)
            if (i != j && !is_out(s, i) && !is_out(s, j)) {
                raft_fixture_reconnect(f, i, j);
                raft_fixture_desaturate(f, i, j);
            }
    say(s, "heal");
}

static void barrier_cb(struct raft_barrier *req, int status)
{
    (void)status;
    free(req);
}

static void check_terms(sim_t *s)
{
    for (unsigned i = 0; i < s->n; i++) {
        struct raft *r = raft_fixture_get(&s->f, i);
        if (raft_state(r) != RAFT_LEADER)
            continue;
        raft_term t = r->current_term;
        if (t >= s->term_cap) {
            size_t cap = s->term_cap ? s->term_cap : 64;
            while (cap <= t)
                cap *= 2;
            s->leader_of_term = realloc(s->leader_of_term, cap * sizeof *s->leader_of_term);
            memset(s->leader_of_term + s->term_cap, 0,
                   (cap - s->term_cap) * sizeof *s->leader_of_term);
            s->term_cap = cap;
        }
        if (s->leader_of_term[t] == 0) {
            s->leader_of_term[t] = r->id;
            if (s->scenario != NULL)
                continue; /* scripted: the script decides when leaders append */
            /* Like the broker: a new leader's first entry is a barrier. */
            struct raft_barrier *b = calloc(1, sizeof *b);
            if (b != NULL && raft_barrier(r, b, barrier_cb) != 0)
                free(b);
        }
        else if (s->leader_of_term[t] != r->id)
            fail(s, "two leaders in term %llu: %llu and %llu", (unsigned long long)t,
                 (unsigned long long)s->leader_of_term[t], (unsigned long long)r->id);
    }
}

/* A leader's match index for a follower of its term is a real match: the
 * follower holds the leader's entry there (shim 3; without it raft 0.15
 * breaks this after ordinary leader changes, and counts the follower
 * towards commitment of entries it does not have). */
static void check_match(sim_t *s)
{
    for (unsigned l = 0; l < s->n; l++) {
        struct raft *lr = raft_fixture_get(&s->f, l);
        if (raft_state(lr) != RAFT_LEADER || is_crashed(l))
            continue;
        for (unsigned k = 0; k < lr->configuration.n; k++) {
            raft_id id = lr->configuration.servers[k].id;
            if (id == lr->id || id < 1 || id > s->n)
                continue;
            struct raft *fr = raft_fixture_get(&s->f, (unsigned)(id - 1));
            raft_index m = lr->leader_state.progress[k].match_index;
            if (raft_state(fr) != RAFT_FOLLOWER || fr->current_term != lr->current_term || m == 0)
                continue;
            raft_term tl = zc_io_guard_term_at(&lr->log, m), tf = zc_io_guard_term_at(&fr->log, m);
            if (tl != 0 && tf != 0 && tl != tf)
                fail(s,
                     "leader %llu (term %llu) counts server %llu as holding index %llu, which it "
                     "holds from term %llu, the leader from term %llu",
                     (unsigned long long)lr->id, (unsigned long long)lr->current_term,
                     (unsigned long long)id, (unsigned long long)m, (unsigned long long)tf,
                     (unsigned long long)tl);
        }
    }
}

static void check_states(sim_t *s)
{
    for (unsigned i = 0; i < s->n; i++) {
        uint64_t idx = zc_fsm_applied_index(s->zfsm[i]);
        /* A server stopped for a storage error is a process that exited:
         * what its raft does afterwards is nobody's (io_guard.c). */
        if (idx == s->last_checked[i] || is_crashed(i))
            continue;
        s->last_checked[i] = idx;
        zc_state_t *st = zc_fsm_state(s->zfsm[i]);
        char why[256];
        if (zc_state_check(st, why, sizeof why) != 0) {
            fail(s, "server %u at index %llu: %s", i, (unsigned long long)idx, why);
            return;
        }
        uint64_t d = zc_state_digest(st);
        if (idx >= s->digest_cap) {
            size_t cap = s->digest_cap ? s->digest_cap : 1024;
            while (cap <= idx)
                cap *= 2;
            s->digest_at = realloc(s->digest_at, cap * sizeof *s->digest_at);
            memset(s->digest_at + s->digest_cap, 0, (cap - s->digest_cap) * sizeof *s->digest_at);
            s->digest_cap = cap;
        }
        if (s->digest_at[idx] == 0)
            s->digest_at[idx] = d;
        else if (s->digest_at[idx] != d)
            fail(s, "server %u at index %llu has digest %016" PRIx64 ", another had %016" PRIx64,
                 i, (unsigned long long)idx, d, s->digest_at[idx]);
    }
}

/* With the guard, a server whose storage failed is stopped within the
 * same step (guard fix 5: the broker exits). */
static void check_stopped(sim_t *s)
{
    if (raw_raft)
        return;
    for (unsigned i = 0; i < s->n; i++)
        if (shims[i].crashed && raft_fixture_alive(&s->f, i))
            fail(s, "server %u's append failed and the guard did not stop it", i);
}

/* Only a disk fault may take a server out for good. */
static void check_available(sim_t *s)
{
    for (unsigned i = 0; i < s->n; i++)
        if (raft_state(raft_fixture_get(&s->f, i)) == RAFT_UNAVAILABLE && !is_crashed(i))
            fail(s, "server %u became unavailable without a disk fault", i);
}

/* The leader of the highest term among the servers still in the run, or
 * s->n if none. */
static unsigned top_leader(sim_t *s)
{
    unsigned l = s->n;
    for (unsigned i = 0; i < s->n; i++) {
        struct raft *r = raft_fixture_get(&s->f, i);
        if (!is_out(s, i) && raft_state(r) == RAFT_LEADER &&
            (l == s->n || r->current_term > raft_fixture_get(&s->f, l)->current_term))
            l = i;
    }
    return l;
}

/* Server i must end with the leader's log and state: it is in the run and
 * in the leader's configuration as a voter or standby (a spare gets no
 * entries; a server whose add never committed is no member). */
static bool must_converge(sim_t *s, struct raft *lr, unsigned i)
{
    if (is_out(s, i))
        return false;
    for (unsigned k = 0; k < lr->configuration.n; k++)
        if (lr->configuration.servers[k].id == i + 1)
            return lr->configuration.servers[k].role != RAFT_SPARE;
    return false;
}

static uint64_t conf_hash(const struct raft_configuration *c)
{
    uint64_t h = 1469598103934665603ull;
    for (unsigned k = 0; k < c->n; k++) {
        h = (h ^ c->servers[k].id) * 1099511628211ull;
        h = (h ^ (uint64_t)c->servers[k].role) * 1099511628211ull;
    }
    return h | 1; /* 0 means unseen */
}

/* Configurations agree where they must: raft's configuration, when no
 * change is pending, is the one committed at configuration_index, and a
 * committed entry is the same on every server; so any two servers with
 * nothing pending at the same committed index hold the same configuration
 * (a snapshot labelled with a committed index but holding an uncommitted
 * configuration breaks this: issue 9, item 7b). */
static void check_confs(sim_t *s)
{
    static uint64_t seen[MAX_SERVERS];
    for (unsigned i = 0; i < s->n && !s->failure[0]; i++) {
        struct raft *r = raft_fixture_get(&s->f, i);
        raft_index c = r->configuration_index;
        uint64_t now = conf_hash(&r->configuration) ^ c * 31 ^ r->configuration_uncommitted_index * 1000003;
        if (s->verbose && now != seen[i]) {
            seen[i] = now;
            say(s, "conf: server %u (state %d term %llu) index %llu uncommitted %llu: %u servers, %u voters; log %llu..%llu snapshot %llu",
                i, raft_state(r), (unsigned long long)r->current_term, (unsigned long long)c,
                (unsigned long long)r->configuration_uncommitted_index, r->configuration.n,
                voters_of(&r->configuration), (unsigned long long)r->log.offset + 1,
                (unsigned long long)raft_last_index(r), (unsigned long long)r->log.snapshot.last_index);
        }
        if (is_out(s, i) || r->configuration_uncommitted_index != 0 || c == 0)
            continue;
        if (c >= s->conf_cap) {
            size_t cap = s->conf_cap ? s->conf_cap : 256;
            while (cap <= c)
                cap *= 2;
            s->conf_at = realloc(s->conf_at, cap * sizeof *s->conf_at);
            memset(s->conf_at + s->conf_cap, 0, (cap - s->conf_cap) * sizeof *s->conf_at);
            s->conf_cap = cap;
        }
        uint64_t h = conf_hash(&r->configuration);
        if (s->conf_at[c] == 0)
            s->conf_at[c] = h;
        else if (s->conf_at[c] != h) {
            char what[160] = "";
            size_t off = 0;
            for (unsigned k = 0; k < r->configuration.n && off < sizeof what; k++)
                off += (size_t)snprintf(what + off, sizeof what - off, " %llu:%s",
                                        (unsigned long long)r->configuration.servers[k].id,
                                        role_name(r->configuration.servers[k].role));
            fail(s, "server %u's configuration committed at index %llu (%s ) is not the one "
                    "another server holds for that index", i, (unsigned long long)c, what);
            for (unsigned j = 0; j < s->n; j++) {
                struct raft *q = raft_fixture_get(&s->f, j);
                say(s, "  server %u: state %d term %llu conf index %llu uncommitted %llu hash %llx "
                       "voters %u of %u, last %llu commit %llu",
                    j, raft_state(q), (unsigned long long)q->current_term,
                    (unsigned long long)q->configuration_index,
                    (unsigned long long)q->configuration_uncommitted_index,
                    (unsigned long long)conf_hash(&q->configuration), voters_of(&q->configuration),
                    q->configuration.n, (unsigned long long)raft_last_index(q),
                    (unsigned long long)q->commit_index);
            }
        }
    }
}

/* After healing: one leader, and every server at the leader's applied index
 * with the same digest. */
static bool converged(struct raft_fixture *f, void *arg)
{
    sim_t *s = arg;
    /* The per-step checks go on while the cluster converges. */
    check_terms(s);
    check_match(s);
    check_states(s);
    check_confs(s);
    check_available(s);
    if (s->failure[0])
        return true;
    /* Not raft_fixture_leader_index: it wants a leader acknowledged by every
     * connected server, which a server left UNAVAILABLE never gives. */
    unsigned l = top_leader(s);
    if (l >= s->n)
        return false;
    struct raft *lr = raft_fixture_get(f, l);
    if (lr->commit_index < raft_last_index(lr) || raft_last_applied(lr) < lr->commit_index)
        return false;
    for (unsigned i = 0; i < s->n; i++) {
        struct raft *r = raft_fixture_get(f, i);
        if (!must_converge(s, lr, i))
            continue;
        if (raft_last_applied(r) != raft_last_applied(lr) || r->current_term != lr->current_term)
            return false;
    }
    return true;
}

/* The broker commits a batch when its loop's turn ends; here each FSM
 * does at a random step (1 in 3), from the batches' own stream. */
static void flush_batches(sim_t *s)
{
    for (unsigned i = 0; i < s->n; i++) {
        if (s->zfsm[i] == NULL || is_crashed(i) || zc_xorshift64(&s->brng) % 3 != 0)
            continue;
        if (zc_fsm_flush(s->zfsm[i]) != 0)
            fail(s, "server %u: committing its batch failed: %s", i,
                 zc_fsm_apply_error(s->zfsm[i]));
    }
}

/* The broker's node hands a loop turn's commands to raft when the turn
 * ends (replication/node.c, check_cb), and notices there a leadership loss
 * raft did not report; here each running server's proposer flushes at a
 * random step (1 in 3), from the proposals' own stream, and checks at the
 * others.  A server that is down runs no loop. */
static void flush_proposals(sim_t *s, bool all)
{
    for (unsigned i = 0; i < s->n; i++) {
        if (s->props[i] == NULL || is_out(s, i) || !raft_fixture_alive(&s->f, i))
            continue;
        if (all || zc_xorshift64(&s->prng) % 3 == 0)
            zc_proposer_flush(s->props[i]);
        else
            zc_proposer_check(s->props[i]);
    }
}

/* --- scripted runs (--scenario) --- */

/* One step and every per-step check. */
static bool sc_step(sim_t *s)
{
    raft_fixture_step(&s->f);
    flush_batches(s);
    check_stopped(s);
    check_terms(s);
    check_match(s);
    check_states(s);
    check_confs(s);
    check_available(s);
    return !s->failure[0];
}

/* Step until pred(s, arg) or ms of simulated time have passed. */
static bool sc_until(sim_t *s, bool (*pred)(sim_t *, unsigned), unsigned arg, unsigned ms)
{
    raft_time end = raft_fixture_time(&s->f) + ms;
    while (!pred(s, arg)) {
        if (raft_fixture_time(&s->f) >= end || !sc_step(s))
            return false;
    }
    return true;
}

static bool sc_leader_among(sim_t *s, unsigned mask)
{
    for (unsigned i = 0; i < s->n; i++)
        if ((mask & (1u << i)) && raft_fixture_alive(&s->f, i) &&
            raft_state(raft_fixture_get(&s->f, i)) == RAFT_LEADER)
            return true;
    return false;
}

static unsigned sc_leader_of(sim_t *s, unsigned mask)
{
    for (unsigned i = 0; i < s->n; i++)
        if ((mask & (1u << i)) && raft_fixture_alive(&s->f, i) &&
            raft_state(raft_fixture_get(&s->f, i)) == RAFT_LEADER)
            return i;
    return s->n;
}

static raft_index sc_index; /* what sc_stored and sc_applied wait for */

static bool sc_stored(sim_t *s, unsigned mask)
{
    for (unsigned i = 0; i < s->n; i++)
        if ((mask & (1u << i)) && raft_fixture_get(&s->f, i)->last_stored < sc_index)
            return false;
    return true;
}

static bool sc_applied(sim_t *s, unsigned mask)
{
    for (unsigned i = 0; i < s->n; i++)
        if ((mask & (1u << i)) && raft_last_applied(raft_fixture_get(&s->f, i)) < sc_index)
            return false;
    return true;
}

static bool sc_committed(sim_t *s, unsigned i)
{
    return raft_fixture_get(&s->f, i)->commit_index >= sc_index;
}

static bool sc_has_in_memory(sim_t *s, unsigned i)
{
    return raft_last_index(raft_fixture_get(&s->f, i)) >= sc_index + 3;
}

static bool sc_follows(sim_t *s, unsigned i)
{
    struct raft *r = raft_fixture_get(&s->f, i);
    return raft_state(r) == RAFT_FOLLOWER && r->follower_state.current_leader.id == s->sc_leader + 1;
}

static bool sc_never(sim_t *s, unsigned arg)
{
    (void)s, (void)arg;
    return false;
}

static void sc_link(sim_t *s, unsigned i, unsigned j, bool up)
{
    if (up) {
        raft_fixture_reconnect(&s->f, i, j);
        raft_fixture_reconnect(&s->f, j, i);
    } else {
        raft_fixture_disconnect(&s->f, i, j);
        raft_fixture_disconnect(&s->f, j, i);
    }
}

#define SC_TRY(cond, ...)                                                                    \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fail(s, "scenario: " __VA_ARGS__);                                               \
            return;                                                                          \
        }                                                                                    \
    } while (0)

/* Raft's figure 8 (Raft §5.4.2), 5 servers, with a leader that appends no
 * entry of its own term (as a broker whose readiness barrier failed to
 * start would).  Guard fix 3 is what keeps the committed entry safe:
 *   1. leader A of term t stores X at index k on itself and B only;
 *   2. A dies; E wins term t+1 with C and D and stores Y at k alone; E dies;
 *   3. A (or B) wins a later term with C and D and, counting, would commit
 *      X -- an entry of term t -- once C holds it;
 *   4. it dies; E comes back and wins (its last term, t+1, is newer than
 *      X's), overwriting X with Y at k on everyone.
 * Without fix 3, step 3 commits and applies X, and step 4 loses it (the
 * replicas disagree on index k, or raft finds a committed entry
 * conflicting and stops). */
static void scenario_figure8(sim_t *s)
{
    struct raft_fixture *f = &s->f;
    unsigned all = (1u << s->n) - 1;
    SC_TRY(sc_until(s, (bool (*)(sim_t *, unsigned))sc_leader_among, all, 10000), "no first leader");
    unsigned a = sc_leader_of(s, all);
    propose_register(s, a, "n0");
    sc_index = raft_last_index(raft_fixture_get(f, a));
    SC_TRY(sc_until(s, sc_applied, all, 10000), "the first entry did not reach everyone");
    unsigned b = (a + 1) % 5, c = (a + 2) % 5, d = (a + 3) % 5, e = (a + 4) % 5;
    /* 1. X on A and B only. */
    sc_link(s, a, c, false);
    sc_link(s, a, d, false);
    sc_link(s, a, e, false);
    propose_register(s, a, "n1");
    sc_index = raft_last_index(raft_fixture_get(f, a));
    raft_index k = sc_index;
    raft_term tx = raft_fixture_get(f, a)->current_term; /* X's term */
    SC_TRY(sc_until(s, sc_stored, (1u << a) | (1u << b), 5000), "X did not reach B");
    raft_fixture_kill(f, a);
    say(s, "scenario: X at %llu on servers %u and %u; server %u killed", (unsigned long long)k, a,
        b, a);
    /* 2. Without B (it holds X), one of C, D, E wins and stores Y alone. */
    for (unsigned j = 0; j < 5; j++)
        if (j != b)
            sc_link(s, b, j, false);
    unsigned cde = (1u << c) | (1u << d) | (1u << e);
    SC_TRY(sc_until(s, (bool (*)(sim_t *, unsigned))sc_leader_among, cde, 20000),
           "no leader among C, D, E");
    e = sc_leader_of(s, cde);
    c = (e == c) ? (a + 4) % 5 : c;
    d = (e == d) ? (a + 4) % 5 : d;
    sc_link(s, e, c, false);
    sc_link(s, e, d, false);
    propose_register(s, e, "n2");
    sc_index = k;
    SC_TRY(raft_last_index(raft_fixture_get(f, e)) == k, "Y is not at index %llu",
           (unsigned long long)k);
    SC_TRY(sc_until(s, sc_stored, 1u << e, 5000), "Y not stored");
    raft_fixture_kill(f, e);
    say(s, "scenario: Y at %llu on server %u alone; server %u killed", (unsigned long long)k, e, e);
    /* 3. A back; A or B (both hold X) wins with C and D and replicates X. */
    raft_fixture_revive(f, a);
    unsigned abcd[4] = {a, b, c, d};
    for (unsigned x = 0; x < 4; x++)
        for (unsigned y = x + 1; y < 4; y++)
            sc_link(s, abcd[x], abcd[y], true);
    unsigned ab = (1u << a) | (1u << b);
    SC_TRY(sc_until(s, (bool (*)(sim_t *, unsigned))sc_leader_among, ab, 20000),
           "neither A nor B leads");
    unsigned l = sc_leader_of(s, ab);
    /* Give it time to replicate X; with the guard it never counts it. */
    sc_index = k;
    sc_until(s, sc_committed, l, 3000);
    if (s->failure[0])
        return;
    say(s, "scenario: server %u leads term %llu, commit index %llu, applied %llu, state %llu (X at %llu)", l,
        (unsigned long long)raft_fixture_get(f, l)->current_term,
        (unsigned long long)raft_fixture_get(f, l)->commit_index,
        (unsigned long long)raft_last_applied(raft_fixture_get(f, l)),
        (unsigned long long)zc_fsm_applied_index(s->zfsm[l]), (unsigned long long)k);
    /* 4. It dies; E is back and wins. */
    raft_fixture_kill(f, l);
    raft_fixture_revive(f, e);
    /* Only E's links up, so only E can gather a majority. */
    for (unsigned x = 0; x < 4; x++)
        for (unsigned y = x + 1; y < 4; y++)
            sc_link(s, abcd[x], abcd[y], false);
    for (unsigned j = 0; j < 5; j++)
        if (j != e && j != l)
            sc_link(s, e, j, true);
    SC_TRY(sc_until(s, (bool (*)(sim_t *, unsigned))sc_leader_among, 1u << e, 20000),
           "server %u did not win after server %u died", e, l);
    unsigned m = e, others = all & ~(1u << l);
    propose_register(s, m, "n0"); /* an entry of its term commits what precedes */
    sc_index = raft_last_index(raft_fixture_get(f, m));
    sc_until(s, sc_applied, others, 5000);
    sc_until(s, sc_never, 0, 2000); /* and the checks run a while longer */
    say(s, "scenario: server %u leads, applied %llu", m,
        (unsigned long long)raft_last_applied(raft_fixture_get(f, m)));
    /* X registered node n1 (carts n1.*), Y node n2.  Whoever applied X
     * (server l, if it committed it) and every server past index k must
     * agree on it: the per-step digest check can miss the index, when a
     * server applies it together with the next entries in one step. */
    zc_cart_rec_t cart;
    bool x_applied = zc_fsm_applied_index(s->zfsm[l]) >= k &&
                     zc_state_get_cart(zc_fsm_state(s->zfsm[l]), "n1.0", &cart) == 0;
    for (unsigned j = 0; j < 5; j++) {
        if (j == l || zc_fsm_applied_index(s->zfsm[j]) < k)
            continue;
        bool has_x = zc_state_get_cart(zc_fsm_state(s->zfsm[j]), "n1.0", &cart) == 0;
        SC_TRY(has_x == x_applied,
               "server %u applied X (REGISTER n1, index %llu, term %llu), committed by counting "
               "in term %llu; server %u, past index %llu, %s it",
               l, (unsigned long long)k, (unsigned long long)tx,
               (unsigned long long)raft_fixture_get(f, l)->current_term, j,
               (unsigned long long)k, has_x ? "has" : "lost");
    }
}

/* The second path of bug 1 (guard fix 1b), 5 servers: a follower's write
 * begun for a deposed leader finishes after the next leader's first
 * AppendEntries was accepted, and raft 0.15 (appendFollowerCb) reports its
 * stored tail, in the new term, to the new leader:
 *   1. leader A sends entries k..k+2 to F only, whose disk takes 5 s;
 *      A dies while F's write is in flight;
 *   2. B, C, D elect N without F; N's heartbeat to F (below k) is accepted;
 *   3. N appends an entry at k (its term); its AppendEntries to F are lost;
 *   4. F's old write completes: F answers "up to k+2" in N's term, and N
 *      counts F as holding its own entry at k (F holds A's there).
 * Without fix 1b the per-step match check fails at step 4. */
static void scenario_late_append(sim_t *s)
{
    struct raft_fixture *f = &s->f;
    unsigned all = (1u << s->n) - 1;
    SC_TRY(sc_until(s, (bool (*)(sim_t *, unsigned))sc_leader_among, all, 10000), "no first leader");
    unsigned a = sc_leader_of(s, all);
    propose_register(s, a, "n0");
    sc_index = raft_last_index(raft_fixture_get(f, a));
    SC_TRY(sc_until(s, sc_applied, all, 10000), "the first entry did not reach everyone");
    unsigned fo = (a + 1) % 5;
    raft_fixture_set_disk_latency(f, fo, 5000);
    for (unsigned j = 0; j < 5; j++)
        if (j != a && j != fo)
            sc_link(s, a, j, false);
    raft_index k = raft_last_index(raft_fixture_get(f, a)) + 1;
    propose_register(s, a, "n1");
    propose_register(s, a, "n2");
    propose_register(s, a, "n0");
    SC_TRY(sc_until(s, sc_has_in_memory, fo, 3000), "the entries did not reach F");
    SC_TRY(raft_fixture_get(f, fo)->last_stored < k, "F stored them already");
    raft_fixture_kill(f, a);
    for (unsigned j = 0; j < 5; j++)
        if (j != fo)
            sc_link(s, fo, j, false);
    say(s, "scenario: entries %llu..%llu on server %u, written slowly; server %u killed",
        (unsigned long long)k, (unsigned long long)k + 2, fo, a);
    unsigned bcd = all & ~(1u << a) & ~(1u << fo);
    SC_TRY(sc_until(s, (bool (*)(sim_t *, unsigned))sc_leader_among, bcd, 20000),
           "no leader among B, C, D");
    unsigned n = sc_leader_of(s, bcd);
    sc_link(s, n, fo, true);
    s->sc_leader = n;
    SC_TRY(sc_until(s, sc_follows, fo, 2000), "F did not accept server %u's heartbeat", n);
    SC_TRY(raft_fixture_get(f, fo)->last_stored < k, "F's write finished too early");
    /* Its next AppendEntries to F are lost, and F, a follower, waits. */
    raft_fixture_saturate(f, n, fo);
    shims[fo].fixed_random = 1000000;
    raft_fixture_get(f, fo)->follower_state.randomized_election_timeout = 1000000;
    propose_register(s, n, "n2");
    SC_TRY(raft_last_index(raft_fixture_get(f, n)) == k, "server %u's entry is not at %llu", n,
           (unsigned long long)k);
    say(s, "scenario: server %u leads term %llu, its entry at %llu; F follows it", n,
        (unsigned long long)raft_fixture_get(f, n)->current_term, (unsigned long long)k);
    sc_index = k + 2;
    sc_until(s, sc_stored, 1u << fo, 8000); /* F's old write completes */
    sc_until(s, sc_never, 0, 500);          /* its answer reaches the leader */
    if (s->failure[0])
        return;
    {
        struct raft *nr = raft_fixture_get(f, n), *fr = raft_fixture_get(f, fo);
        unsigned fi = 0;
        while (fi < nr->configuration.n && nr->configuration.servers[fi].id != fo + 1)
            fi++;
        say(s, "scenario: F stored %llu (term %llu at %llu), follows %llu in term %llu; leader %u "
               "(term %llu, state %d) counts F up to %llu",
            (unsigned long long)fr->last_stored,
            (unsigned long long)zc_io_guard_term_at(&fr->log, k), (unsigned long long)k,
            (unsigned long long)fr->follower_state.current_leader.id,
            (unsigned long long)fr->current_term, n, (unsigned long long)nr->current_term,
            raft_state(nr),
            (unsigned long long)(raft_state(nr) == RAFT_LEADER ? nr->leader_state.progress[fi].match_index : 0));
    }
    raft_fixture_desaturate(f, n, fo);
    shims[fo].fixed_random = 0;
    for (unsigned j = 0; j < 5; j++)
        if (j != a && j != fo)
            sc_link(s, fo, j, true);
    raft_fixture_set_disk_latency(f, fo, 10);
    sc_index = raft_last_index(raft_fixture_get(f, n));
    sc_until(s, sc_applied, all & ~(1u << a), 10000);
}


/* A membership change asked of server i (scripted runs). */
static raft_index sc_change(sim_t *s, unsigned i, change_kind_t kind, unsigned server, int role)
{
    struct raft *r = raft_fixture_get(&s->f, i);
    struct change_rec *c = calloc(1, sizeof *c);
    c->sim = s;
    c->kind = kind;
    c->server = server;
    c->role = role;
    in_change_call = true;
    int rv = kind == CH_REMOVE ? raft_remove(r, &c->req, server + 1, change_done)
                               : raft_assign(r, &c->req, server + 1, role, change_done);
    in_change_call = false;
    if (rv != 0) {
        free(c);
        fail(s, "scenario: server %u refused the change: %s", i, raft_strerror(rv));
        return 0;
    }
    s->changes_started[kind]++;
    c->next = s->change_recs;
    s->change_recs = c;
    say(s, "scenario: %s server %u via %u at index %llu", kind == CH_REMOVE ? "remove" : "assign",
        server, i, (unsigned long long)raft_last_index(r));
    return raft_last_index(r);
}

static void sc_snapshots(sim_t *s, unsigned threshold, unsigned trailing)
{
    for (unsigned i = 0; i < s->n; i++) {
        raft_set_snapshot_threshold(raft_fixture_get(&s->f, i), threshold);
        raft_set_snapshot_trailing(raft_fixture_get(&s->f, i), trailing);
    }
}

static bool sc_snapshotted(sim_t *s, unsigned i)
{
    return raft_fixture_get(&s->f, i)->log.snapshot.last_index >= sc_index;
}

/* Every server has compacted the bootstrap configuration (index 1). */
static bool sc_compacted(sim_t *s, unsigned mask)
{
    for (unsigned i = 0; i < s->n; i++)
        if ((mask & (1u << i)) && raft_fixture_get(&s->f, i)->log.offset < 1)
            return false;
    return true;
}

/* Guard fix 7a, 5 servers: a follower rolls back an uncommitted
 * configuration after its committed one was compacted:
 *   1. every server snapshots past index 1 (the bootstrap configuration);
 *   2. leader A, cut off from C, D, E, removes E: the entry, at index u,
 *      reaches B only, which switches to it (uncommitted);
 *   3. A dies; C, D, E elect N, which appends an entry of its own at u;
 *   4. B hears from N: the conflict at u makes raft 0.15 roll B's
 *      configuration back to the entry at index 1, which is not in its
 *      log any more (membership.c:158-166: a NULL dereference).
 * With the guard, B goes back to the five voters, as every server has. */
static void scenario_conf_rollback(sim_t *s)
{
    struct raft_fixture *f = &s->f;
    unsigned all = (1u << s->n) - 1;
    sc_snapshots(s, 8, 2);
    SC_TRY(sc_until(s, (bool (*)(sim_t *, unsigned))sc_leader_among, all, 10000), "no first leader");
    unsigned a = sc_leader_of(s, all), b = (a + 1) % 5, c = (a + 2) % 5, d = (a + 3) % 5,
             e = (a + 4) % 5;
    for (unsigned k = 0; k < 20; k++)
        propose_register(s, a, (const char *[]){"n0", "n1", "n2"}[k % 3]);
    sc_index = raft_last_index(raft_fixture_get(f, a));
    SC_TRY(sc_until(s, sc_applied, all, 10000), "the first entries did not reach everyone");
    SC_TRY(sc_until(s, sc_compacted, all, 5000), "index 1 not compacted everywhere");
    /* 2. */
    unsigned cde[3] = {c, d, e};
    for (unsigned k = 0; k < 3; k++) {
        sc_link(s, a, cde[k], false);
        sc_link(s, b, cde[k], false);
    }
    sc_index = sc_change(s, a, CH_REMOVE, e, -1);
    raft_index u = sc_index;
    SC_TRY(u != 0 && sc_until(s, sc_stored, 1u << b, 3000), "the change did not reach B");
    SC_TRY(raft_fixture_get(f, b)->configuration_uncommitted_index == u,
           "B does not hold the change as uncommitted");
    /* 3. */
    raft_fixture_kill(f, a);
    unsigned m_cde = (1u << c) | (1u << d) | (1u << e);
    SC_TRY(sc_until(s, (bool (*)(sim_t *, unsigned))sc_leader_among, m_cde, 20000),
           "no leader among C, D, E");
    unsigned n = sc_leader_of(s, m_cde);
    propose_register(s, n, "n2");
    SC_TRY(raft_last_index(raft_fixture_get(f, n)) == u, "server %u's entry is not at %llu", n,
           (unsigned long long)u);
    SC_TRY(sc_until(s, sc_committed, n, 5000), "server %u's entry did not commit", n);
    say(s, "scenario: server %u leads term %llu, its entry at %llu; B (server %u) holds the "
           "removal there", n, (unsigned long long)raft_fixture_get(f, n)->current_term,
        (unsigned long long)u, b);
    /* 4. */
    for (unsigned k = 0; k < 3; k++)
        sc_link(s, b, cde[k], true);
    sc_index = u;
    SC_TRY(sc_until(s, sc_applied, (1u << b) | m_cde, 10000), "B did not catch up");
    sc_until(s, sc_never, 0, 2000); /* and the checks run a while longer */
    if (s->failure[0])
        return;
    struct raft *br = raft_fixture_get(f, b), *nr = raft_fixture_get(f, n);
    SC_TRY(br->configuration_uncommitted_index == 0 && br->configuration.n == 5 &&
               voters_of(&br->configuration) == 5,
           "B's configuration after the rollback: %u servers, %u voters, uncommitted index %llu "
           "(the leader's: %u servers)",
           br->configuration.n, voters_of(&br->configuration),
           (unsigned long long)br->configuration_uncommitted_index, nr->configuration.n);
}

/* Guard fix 7b, 5 servers: a snapshot taken while a configuration change
 * is pending stores that configuration under the committed one's index,
 * and a follower installing it takes it as committed:
 *   1. E falls behind (cut off);
 *   2. leader A appends X1..X10; B, C, D store them, but C's and D's
 *      answers are lost, so nothing commits;
 *   3. A makes E a standby (index u); B stores it, A's own write of it
 *      is slow;
 *   4. C's and D's answers get through: X1..X10 commit, not u; applying
 *      them, A takes a snapshot, configuration "E standby" labelled with
 *      index 1 (the bootstrap's: the last committed one);
 *   5. E is back: A sends it the snapshot (its log starts after it), and
 *      E holds "E standby" as committed at index 1, where every other
 *      server holds five voters.
 * Without fix 7b the configuration check fails at step 5. */
static void scenario_snapshot_conf(sim_t *s)
{
    struct raft_fixture *f = &s->f;
    unsigned all = (1u << s->n) - 1;
    sc_snapshots(s, 8, 1);
    SC_TRY(sc_until(s, (bool (*)(sim_t *, unsigned))sc_leader_among, all, 10000), "no first leader");
    unsigned a = sc_leader_of(s, all), b = (a + 1) % 5, c = (a + 2) % 5, d = (a + 3) % 5,
             e = (a + 4) % 5;
    propose_register(s, a, "n0");
    sc_index = raft_last_index(raft_fixture_get(f, a));
    SC_TRY(sc_until(s, sc_applied, all, 10000), "the first entry did not reach everyone");
    /* 1, 2. */
    for (unsigned j = 0; j < 5; j++)
        if (j != e)
            sc_link(s, e, j, false);
    raft_fixture_saturate(f, c, a);
    raft_fixture_saturate(f, d, a);
    raft_index first = raft_last_index(raft_fixture_get(f, a)) + 1;
    for (unsigned k = 0; k < 10; k++)
        propose_register(s, a, (const char *[]){"n0", "n1", "n2"}[k % 3]);
    sc_index = raft_last_index(raft_fixture_get(f, a));
    SC_TRY(sc_until(s, sc_stored, (1u << b) | (1u << c) | (1u << d), 5000),
           "X1..X10 did not reach B, C, D");
    SC_TRY(raft_fixture_get(f, a)->commit_index < first, "X1 committed too early");
    /* 3.  A's own write of it is slow: raft 0.15 only ever asks whether
     * the leader's last stored entry has a majority, so X1..X10 can commit
     * now only while A has not stored the change itself. */
    raft_fixture_set_disk_latency(f, a, 100000);
    sc_index = sc_change(s, a, CH_ASSIGN, e, RAFT_STANDBY);
    raft_fixture_set_disk_latency(f, a, 10);
    raft_index u = sc_index;
    SC_TRY(u != 0 && sc_until(s, sc_stored, 1u << b, 3000), "the change did not reach B");
    /* 4. */
    raft_fixture_desaturate(f, c, a);
    raft_fixture_desaturate(f, d, a);
    sc_index = u - 1;
    SC_TRY(sc_until(s, sc_committed, a, 5000), "X1..X10 did not commit");
    struct raft *ar = raft_fixture_get(f, a);
    SC_TRY(ar->commit_index < u, "the change committed too early");
    sc_index = first;
    sc_until(s, sc_snapshotted, a, 1000);
    SC_TRY(ar->log.snapshot.last_index >= first, "server %u took no snapshot (it is at %llu)", a,
           (unsigned long long)ar->log.snapshot.last_index);
    say(s, "scenario: server %u took a snapshot at %llu with the change at %llu pending", a,
        (unsigned long long)ar->log.snapshot.last_index, (unsigned long long)u);
    /* 5. */
    sc_link(s, e, a, true);
    sc_until(s, sc_never, 0, 3000);
    if (s->failure[0])
        return;
    struct raft *er = raft_fixture_get(f, e);
    SC_TRY(er->log.snapshot.last_index >= first, "E installed no snapshot");
}

/* The first path of bug 1 (guard fix 1a), 5 servers: a follower holding a
 * deposed leader's tail accepts the next leader's heartbeat without
 * writing and answers with its whole stored log (recv_append_entries.c:
 * 128); the new leader caps that only at its own last index:
 *   1. leader A, cut off from all but F, appends entries k..k+2, which F
 *      stores; A dies;
 *   2. B, C, D elect N (F cut off), whose log ends at k - 1;
 *   3. F hears N's heartbeat (prev k - 1) and accepts it without a write,
 *      answering "up to k + 2"; F's answers are slow (200 ms);
 *   4. meanwhile N appends an entry of its own at k, which does not reach
 *      F: the answer arrives, and N counts F as holding its entry at k
 *      (F holds A's there).
 * Without fix 1a the per-step match check fails at step 4. */
static void scenario_stale_tail(sim_t *s)
{
    struct raft_fixture *f = &s->f;
    unsigned all = (1u << s->n) - 1;
    SC_TRY(sc_until(s, (bool (*)(sim_t *, unsigned))sc_leader_among, all, 10000), "no first leader");
    unsigned a = sc_leader_of(s, all);
    propose_register(s, a, "n0");
    sc_index = raft_last_index(raft_fixture_get(f, a));
    SC_TRY(sc_until(s, sc_applied, all, 10000), "the first entry did not reach everyone");
    unsigned fo = (a + 1) % 5;
    for (unsigned j = 0; j < 5; j++)
        if (j != a && j != fo)
            sc_link(s, a, j, false);
    raft_index k = raft_last_index(raft_fixture_get(f, a)) + 1;
    propose_register(s, a, "n1");
    propose_register(s, a, "n2");
    propose_register(s, a, "n0");
    sc_index = k + 2;
    SC_TRY(sc_until(s, sc_stored, 1u << fo, 3000), "the entries did not reach F");
    raft_fixture_kill(f, a);
    for (unsigned j = 0; j < 5; j++)
        if (j != fo)
            sc_link(s, fo, j, false);
    unsigned bcd = all & ~(1u << a) & ~(1u << fo);
    SC_TRY(sc_until(s, (bool (*)(sim_t *, unsigned))sc_leader_among, bcd, 20000),
           "no leader among B, C, D");
    unsigned n = sc_leader_of(s, bcd);
    SC_TRY(raft_last_index(raft_fixture_get(f, n)) == k - 1, "server %u's log does not end at %llu",
           n, (unsigned long long)k - 1);
    raft_fixture_set_network_latency(f, fo, 200);
    shims[fo].fixed_random = 1000000;
    raft_fixture_get(f, fo)->follower_state.randomized_election_timeout = 1000000;
    raft_fixture_get(f, fo)->candidate_state.randomized_election_timeout = 1000000;
    sc_link(s, n, fo, true);
    s->sc_leader = n;
    SC_TRY(sc_until(s, sc_follows, fo, 3000), "F did not accept server %u's heartbeat", n);
    raft_fixture_saturate(f, n, fo); /* N's entry never reaches F */
    propose_register(s, n, "n2");
    SC_TRY(raft_last_index(raft_fixture_get(f, n)) == k, "server %u's entry is not at %llu", n,
           (unsigned long long)k);
    say(s, "scenario: server %u leads term %llu, its entry at %llu; F holds server %u's there", n,
        (unsigned long long)raft_fixture_get(f, n)->current_term, (unsigned long long)k, a);
    sc_until(s, sc_never, 0, 1000); /* F's answers reach the leader */
}

static int run(sim_t *s)
{
    struct raft_configuration conf;
    int rc = -1;
    s->rng = s->seed * 0x9E3779B97F4A7C15ull + 1;
    s->trng = s->seed * 0xD1B54A32D192ED03ull + 7;
    s->brng = s->seed * 0xBF58476D1CE4E5B9ull + 13;
    s->mrng = s->seed * 0x94D049BB133111EBull + 11;
    s->prng = s->seed * 0xD6E8FEB86659FD93ull + 17;
    s->propose_batch = 2 + (unsigned)(zc_xorshift64(&s->prng) % 7);
    s->applying = -1;
    s->disk_victim = -1;
    /* Half the runs flood the leader with commands (long uncommitted logs,
     * big catch-ups); the other half let at most MAX_BACKLOG wait, as
     * clients waiting for answers would, so commands chosen from the
     * leader's state (RETURN, REASSIGN, BREAKER, LOST_TOLD) see a current
     * one. */
    s->capped = pick(s, 2) == 0;
    const char *root = getenv("ZCART_SIM_DIR"); /* e.g. /dev/shm for long runs */
    snprintf(s->dir, sizeof s->dir, "%s/zcart-sim.%d.%llu", root != NULL ? root : "/tmp",
             (int)getpid(), (unsigned long long)s->seed);
    mkdir(s->dir, 0755);
    raft_fixture_initialize(&s->f);
    s->n = 0;
    for (unsigned i = 0; i < s->n0; i++) {
        unsigned threshold = 8 + pick(s, 24);
        unsigned trailing = 1 + pick(s, 8);
        if (server_new(s, i, threshold, trailing) != 0)
            goto out;
    }
    raft_fixture_configuration(&s->f, s->n, &conf);
    raft_fixture_bootstrap(&s->f, &conf);
    raft_configuration_close(&conf);
    raft_fixture_start(&s->f);
    if (s->scenario != NULL) {
        if (strcmp(s->scenario, "figure8") == 0)
            scenario_figure8(s);
        else if (strcmp(s->scenario, "conf-rollback") == 0)
            scenario_conf_rollback(s);
        else if (strcmp(s->scenario, "snapshot-conf") == 0)
            scenario_snapshot_conf(s);
        else if (strcmp(s->scenario, "stale-tail") == 0)
            scenario_stale_tail(s);
        else
            scenario_late_append(s);
        rc = s->failure[0] ? -1 : 0;
        goto out;
    }

    for (unsigned step = 0; step < s->steps && !s->failure[0]; step++) {
        unsigned r = pick(s, 100);
        if (r < 30)
            propose(s);
        else if (r < 33)
            inject_fault(s);
        maybe_transfer(s);
        maybe_change(s);
        raft_fixture_step(&s->f);
        flush_batches(s);
        flush_proposals(s, false);
        check_stopped(s);
        reap_crashed(s);
        check_terms(s);
        check_match(s);
        check_states(s);
        check_confs(s);
        check_available(s);
    }
    if (!s->failure[0]) {
        heal(s);
        /* A few commands after healing, so the final term commits something. */
        for (int k = 0; k < 200 && !s->failure[0]; k++) {
            if (k % 20 == 0)
                propose(s);
            raft_fixture_step(&s->f);
            flush_batches(s);
            flush_proposals(s, false);
            check_stopped(s);
            reap_crashed(s);
            check_terms(s);
            check_match(s);
            check_states(s);
            check_confs(s);
            check_available(s);
        }
        flush_proposals(s, true); /* the last loop turn's commands go to raft too */
        if (!raft_fixture_step_until(&s->f, converged, s, 120000) && !s->failure[0]) {
            char st[400] = ""; /* fits 5 servers' worth (s->failure keeps 512) */
            size_t off = 0;
            for (unsigned i = 0; i < s->n && off < sizeof st; i++) {
                struct raft *r = raft_fixture_get(&s->f, i);
                off += (size_t)snprintf(
                    st + off, sizeof st - off, " [%u: state %d term %llu last %llu commit %llu applied %llu]",
                    i, raft_state(r), (unsigned long long)r->current_term,
                    (unsigned long long)raft_last_index(r), (unsigned long long)r->commit_index,
                    (unsigned long long)raft_last_applied(r));
            }
            fail(s, "no convergence within 120 s of simulated time after healing:%s", st);
        }
        check_states(s);
        check_confs(s);
        unsigned ref = top_leader(s);
        struct raft *lr = ref < s->n ? raft_fixture_get(&s->f, ref) : NULL;
        uint64_t d0 = lr != NULL ? zc_state_digest(zc_fsm_state(s->zfsm[ref])) : 0;
        for (unsigned i = 0; i < s->n && lr != NULL && !s->failure[0]; i++) {
            if (!must_converge(s, lr, i))
                continue;
            struct raft *r = raft_fixture_get(&s->f, i);
            if (conf_hash(&r->configuration) != conf_hash(&lr->configuration) ||
                r->configuration_index != lr->configuration_index)
                fail(s, "after healing server %u's configuration (index %llu) is not the leader's "
                        "(server %u, index %llu)", i, (unsigned long long)r->configuration_index,
                     ref, (unsigned long long)lr->configuration_index);
            uint64_t di = zc_state_digest(zc_fsm_state(s->zfsm[i]));
            if (di != d0 ||
                zc_fsm_applied_index(s->zfsm[i]) != zc_fsm_applied_index(s->zfsm[ref]))
                fail(s, "after healing server %u is at %llu/%016" PRIx64
                        ", server %u at %llu/%016" PRIx64,
                     i, (unsigned long long)zc_fsm_applied_index(s->zfsm[i]), di, ref,
                     (unsigned long long)zc_fsm_applied_index(s->zfsm[ref]), d0);
        }
    }
    rc = s->failure[0] ? -1 : 0;
out:
    for (unsigned i = 0; i < s->n; i++)
        if (s->zfsm[i] != NULL)
            s->final_applied[i] = zc_fsm_applied_index(s->zfsm[i]);
    s->closing = true;
    raft_fixture_close(&s->f); /* raft_close fails the batches raft holds */
    for (unsigned i = 0; i < s->n; i++) {
        if (s->props[i] == NULL)
            continue;
        zc_proposer_stats_t ps;
        zc_proposer_stats(s->props[i], &ps);
        s->prop_stats.proposed += ps.proposed;
        s->prop_stats.committed += ps.committed;
        s->prop_stats.failed += ps.failed;
        s->prop_stats.batches += ps.batches;
        if (ps.batch_max > s->prop_stats.batch_max)
            s->prop_stats.batch_max = ps.batch_max;
        zc_proposer_destroy(&s->props[i]); /* fails what is still queued */
    }
    while (s->prop_recs != NULL) {
        sim_prop_t *p = s->prop_recs;
        s->prop_recs = p->next;
        if (p->answers != 1 && rc == 0) {
            fail(s, "a %s proposed to server %u was answered %u times", zc_cmd_name(p->type),
                 p->server, p->answers);
            rc = -1;
        }
        free(p->bytes);
        free(p);
    }
    while (s->transfer_recs != NULL) {
        struct transfer_rec *t = s->transfer_recs;
        s->transfer_recs = t->next;
        free(t);
    }
    while (s->change_recs != NULL) {
        struct change_rec *c = s->change_recs;
        s->change_recs = c->next;
        free(c);
    }
    for (unsigned i = 0; i < s->n; i++) {
        s->truncates_dropped += shims[i].truncates_dropped;
        if (shims[i].guard != NULL) {
            zc_io_guard_stats_t g;
            zc_io_guard_stats(shims[i].guard, &g);
            s->guard.results_capped += g.results_capped;
            s->guard.results_dropped += g.results_dropped;
            s->guard.prev_raised += g.prev_raised;
            s->guard.leader_dropped += g.leader_dropped;
            s->guard.prevote_raised += g.prevote_raised;
            s->guard.storage_failures += g.storage_failures;
            s->guard.conf_rollbacks += g.conf_rollbacks;
            s->guard.snapshot_confs += g.snapshot_confs;
            s->guard.conf_missing += g.conf_missing;
            s->guard.leaders_forgotten += g.leaders_forgotten;
            s->guard.confs_adopted += g.confs_adopted;
            s->guard.lost_logs += g.lost_logs;
        }
    }
    shim_clear();
    memset(taps, 0, sizeof taps);
    for (unsigned i = 0; i < s->n; i++)
        zc_fsm_destroy(&s->zfsm[i]);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", s->dir);
    free(s->digest_at);
    free(s->leader_of_term);
    free(s->conf_at);
    return rc;
}

/* A crash (raft 0.15's, with a guard fix off or --raw-raft) is a failed
 * seed too: say which, so CTest's guard tests can tell it from a usage
 * error.  Only async-signal-safe calls. */
static char crash_line[64];
static void on_crash(int sig)
{
    static const char *names[] = {[SIGSEGV] = "SIGSEGV", [SIGBUS] = "SIGBUS",
                                  [SIGABRT] = "SIGABRT", [SIGFPE] = "SIGFPE"};
    ssize_t w = write(1, crash_line, strlen(crash_line));
    w += write(1, names[sig], strlen(names[sig]));
    w += write(1, "\n", 1);
    (void)w;
    _exit(1);
}

int main(int argc, char **argv)
{
    unsigned servers = 3, seeds = 1, steps = 3000;
    const char *scenario = NULL;
    bool transfers = false, membership = false;
    uint64_t seed = 1;
    bool verbose = false;
    static const struct option opts[] = {
        {"servers", required_argument, NULL, 'n'}, {"seed", required_argument, NULL, 's'},
        {"seeds", required_argument, NULL, 'k'},   {"steps", required_argument, NULL, 't'},
        {"verbose", no_argument, NULL, 'v'},       {"raw-raft", no_argument, NULL, 'r'},
        {"without", required_argument, NULL, 'w'}, {"help", no_argument, NULL, 'h'},
        {"scenario", required_argument, NULL, 'c'}, {"transfers", no_argument, NULL, 'x'},
        {"membership", no_argument, NULL, 'm'},
        {NULL, 0, NULL, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
        switch (o) {
        case 'n': servers = (unsigned)atoi(optarg); break;
        case 's': seed = strtoull(optarg, NULL, 10); break;
        case 'k': seeds = (unsigned)atoi(optarg); break;
        case 't': steps = (unsigned)atoi(optarg); break;
        case 'v': verbose = true; break;
        case 'r': raw_raft = true; break;
        case 'x': transfers = true; break;
        case 'm': membership = true; break;
        case 'c':
            if (strcmp(optarg, "figure8") != 0 && strcmp(optarg, "late-append") != 0 &&
                strcmp(optarg, "conf-rollback") != 0 && strcmp(optarg, "snapshot-conf") != 0 &&
                strcmp(optarg, "stale-tail") != 0) {
                fprintf(stderr, "zcart-sim: --scenario wants figure8, late-append, stale-tail, "
                                "conf-rollback or snapshot-conf\n");
                return 2;
            }
            scenario = optarg;
            servers = 5;
            break;
        case 'w': {
            unsigned k = 0;
            while (k < N_FIXES && strcmp(optarg, fix_names[k]) != 0)
                k++;
            if (k == N_FIXES) {
                fprintf(stderr, "zcart-sim: --without wants 1a, 1b, 2, 3, 4, 7a..7d or 10 (a guard fix)\n");
                return 2;
            }
            guard_fixes &= ~(1u << k);
        } break;
        default:
            printf("usage: zcart-sim [--servers 1..5] [--seed S] [--seeds K] [--steps N] [-v]\n"
                   "                 [--raw-raft | --without 1a|1b|2|3|4|7a|7b|7c|7d|10 ...]\n"
                   "                 [--scenario figure8|late-append|stale-tail|conf-rollback|\n"
                   "                             snapshot-conf]\n"
                   "                 [--transfers] [--membership]\n"
                   "  --raw-raft     raft 0.15 as it is: no io guard\n"
                   "  --without FIX  the io guard without one of its fixes (repeatable): 1a/1b\n"
                   "                 success results capped while handling an AppendEntries / from\n"
                   "                 write callbacks, 2 AppendEntries below a snapshot, 3 no commit\n"
                   "                 by counting before the leader stored its term, 4 refused\n"
                   "                 pre-votes carry the refuser's term, 7a rolling back to a\n"
                   "                 configuration whose entry is compacted, 7b snapshots store\n"
                   "                 the committed configuration, 7c a spare or standby answers\n"
                   "                 vote requests as a voter, 7d a follower adopts a\n"
                   "                 configuration when it receives it\n"
                   "  --scenario S   a scripted 5-server run instead of random faults: figure8,\n"
                   "                 Raft's figure 8 with a leader that appends nothing of its\n"
                   "                 term; late-append, a write begun for a deposed leader that\n"
                   "                 completes after the next leader's first AppendEntries;\n"
                   "                 stale-tail, a deposed leader's tail reported in answer to\n"
                   "                 the next leader's heartbeat (1a); conf-rollback, a rollback\n"
                   "                 to a compacted configuration (7a); snapshot-conf, a snapshot\n"
                   "                 taken with a change pending (7b)\n"
                   "  --transfers    leadership transfers join the faults (about one step in 100)\n"
                   "  --membership   membership changes join them (about one step in 150): add a\n"
                   "                 server (then promote it to voter, make it a standby or leave\n"
                   "                 it a spare), change a member's role, remove a member\n");
            return o == 'h' ? 0 : 2;
        }
    }
    if (servers < 1 || servers > MAX_SERVERS || seeds < 1) {
        fprintf(stderr, "zcart-sim: --servers wants 1..5, --seeds >= 1\n");
        return 2;
    }
    zc_log_threshold = verbose ? ZC_LOG_INFO : ZC_LOG_ERROR + 1;
    unsigned passed = 0, failed = 0;
    unsigned long long proposals = 0, faults = 0, dropped = 0, tr_started = 0, tr_done = 0;
    unsigned long long handed = 0, batches = 0, batch_max = 0, ans_ok = 0, ans_failed = 0,
                       ans_refused = 0;
    unsigned long long ch_started[4] = {0}, ch_ok[4] = {0}, ch_refused = 0;
    zc_io_guard_stats_t g = {0};
    unsigned long long by_type[N_CMD_TYPES] = {0}, ok_by_type[N_CMD_TYPES] = {0};
    struct sigaction sa = {.sa_handler = on_crash};
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    sigaction(SIGABRT, &sa, NULL);
    sigaction(SIGFPE, &sa, NULL);
    for (uint64_t k = seed; k < seed + seeds; k++) {
        fflush(stdout);
        snprintf(crash_line, sizeof crash_line, "FAIL seed %llu: crashed with ",
                 (unsigned long long)k);
        sim_t *s = calloc(1, sizeof *s);
        s->n0 = servers;
        s->membership = membership;
        s->seed = k;
        s->steps = steps;
        s->verbose = verbose;
        s->scenario = scenario;
        s->transfers = transfers;
        if (run(s) == 0) {
            passed++;
        } else {
            failed++;
            char how[160] = "";
            if (raw_raft)
                snprintf(how, sizeof how, " --raw-raft");
            for (unsigned b = 0; b < N_FIXES && !raw_raft; b++)
                if (!(guard_fixes & (1u << b)))
                    snprintf(how + strlen(how), sizeof how - strlen(how), " --without %s",
                             fix_names[b]);
            if (transfers)
                snprintf(how + strlen(how), sizeof how - strlen(how), " --transfers");
            if (membership)
                snprintf(how + strlen(how), sizeof how - strlen(how), " --membership");
            if (scenario != NULL)
                snprintf(how + strlen(how), sizeof how - strlen(how), " --scenario %s", scenario);
            printf("FAIL seed %llu: %s\n  replay: zcart-sim --servers %u --seed %llu --steps %u%s -v\n",
                   (unsigned long long)k, s->failure, servers, (unsigned long long)k, steps, how);
        }
        proposals += s->proposals;
        handed += s->prop_stats.proposed;
        batches += s->prop_stats.batches;
        if (s->prop_stats.batch_max > batch_max)
            batch_max = s->prop_stats.batch_max;
        ans_ok += s->applied_ok;
        ans_failed += s->answered_failed;
        ans_refused += s->answered_refused;
        faults += s->faults;
        dropped += s->truncates_dropped;
        tr_started += s->transfers_started;
        tr_done += s->transfers_done;
        g.results_capped += s->guard.results_capped;
        g.results_dropped += s->guard.results_dropped;
        g.prev_raised += s->guard.prev_raised;
        g.leader_dropped += s->guard.leader_dropped;
        g.prevote_raised += s->guard.prevote_raised;
        g.storage_failures += s->guard.storage_failures;
        g.conf_rollbacks += s->guard.conf_rollbacks;
        g.snapshot_confs += s->guard.snapshot_confs;
        g.conf_missing += s->guard.conf_missing;
        g.leaders_forgotten += s->guard.leaders_forgotten;
        g.confs_adopted += s->guard.confs_adopted;
        g.lost_logs += s->guard.lost_logs;
        for (unsigned q = 0; q < 4; q++) {
            ch_started[q] += s->changes_started[q];
            ch_ok[q] += s->changes_ok[q];
        }
        ch_refused += s->changes_refused;
        unsigned best = 0; /* the replica that applied most */
        for (unsigned i = 1; i < servers; i++)
            if (s->final_applied[i] > s->final_applied[best])
                best = i;
        for (unsigned t = 0; t < N_CMD_TYPES; t++) {
            by_type[t] += s->proposed_by_type[t];
            ok_by_type[t] += s->ok_by_type[best][t];
        }
        free(s);
    }
    printf("%u servers, seeds %llu..%llu: %llu commands proposed, %llu faults injected\n", servers,
           (unsigned long long)seed, (unsigned long long)(seed + seeds - 1), proposals, faults);
    printf("proposed (applied with status OK):");
    for (unsigned t = 1; t < N_CMD_TYPES; t++)
        if (by_type[t] > 0)
            printf(" %s %llu (%llu)", zc_cmd_name((int)t), by_type[t], ok_by_type[t]);
    printf("\nproposers: %llu commands handed to raft in %llu raft_apply batches (at most %llu "
           "in one); answered OK %llu, UNAVAILABLE %llu, NOT_LEADER %llu\n",
           handed, batches, batch_max, ans_ok, ans_failed, ans_refused);
    printf("fixture: %llu truncations dropped (F2)\n", dropped);
    if (transfers)
        printf("leadership transfers: %llu started, %llu finished\n", tr_started, tr_done);
    if (membership)
        printf("membership changes started (committed): add %llu (%llu), promote to voter %llu "
               "(%llu), assign %llu (%llu), remove %llu (%llu); %llu refused at once\n",
               ch_started[CH_ADD], ch_ok[CH_ADD], ch_started[CH_PROMOTE], ch_ok[CH_PROMOTE],
               ch_started[CH_ASSIGN], ch_ok[CH_ASSIGN], ch_started[CH_REMOVE], ch_ok[CH_REMOVE],
               ch_refused);
    if (raw_raft)
        printf("guard: off (--raw-raft)\n");
    else
        printf("guard: %llu success results capped and %llu dropped (1), %llu AppendEntries "
               "raised to a snapshot (2), %llu results held back before a new leader stored its "
               "term (3), %llu refused pre-votes given the refuser's term (4), %llu storage "
               "failures stopped a server (5), %llu configurations rolled back (7a), %llu "
               "snapshots given the committed configuration (7b), %llu silent leaders forgotten by a "
               "non-voter asked to vote (7c), %llu configurations adopted on receipt (7d), %llu "
               "followers caught up after losing their log (10)\n",
               (unsigned long long)g.results_capped, (unsigned long long)g.results_dropped,
               (unsigned long long)g.prev_raised, (unsigned long long)g.leader_dropped,
               (unsigned long long)g.prevote_raised, (unsigned long long)g.storage_failures,
               (unsigned long long)g.conf_rollbacks, (unsigned long long)g.snapshot_confs,
               (unsigned long long)g.leaders_forgotten, (unsigned long long)g.confs_adopted,
               (unsigned long long)g.lost_logs);
    printf("%u passed, %u failed\n", passed, failed);
    return failed ? 1 : 0;
}
