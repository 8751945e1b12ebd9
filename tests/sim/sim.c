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
 *     for the backlog (make_command, propose);
 *   - faults: kill and revive servers, cut and restore links, saturate links
 *     (silent drops), change network and disk latency, inject disk-append
 *     failures.
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
 *   5. only a disk fault takes a server out for good.
 * At the end every fault is healed and, within a simulated-time bound, every
 * server must reach the same applied index and digest (convergence).
 *
 * raft 0.15 and its fixture have problems the fault model would otherwise
 * hit (none of them zcart's): the I/O shims below keep clear of five, and
 * reap_crashed of a sixth (pre-vote).  --raw-raft turns the shims that
 * change raft's behaviour off, to show what they avoid.
 *
 * Usage: zcart-sim [--servers N] [--seed S] [--seeds K] [--steps N] [-v]
 *                  [--raw-raft]
 * runs seeds S .. S+K-1; a failing seed prints the command that replays it.
 * Prints "N passed, N failed" (seeds) at the end. */
#include <getopt.h>
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
#include "proto/status.h"
#include "replication/fsm.h"

#define MAX_SERVERS 5
#define MAX_BACKLOG 16 /* capped runs: no command while this many wait to apply */
#define N_RECENT 12 /* RELEASE and retried ASSIGNs pick among the latest sessions */
#define N_LOST 64   /* lost sessions LOST_TOLD picks among */
#define N_NODES 3
#define SLOTS_PER_NODE 3
#define N_CMD_TYPES 11 /* zc_cmd_type_t values are below this */

/* One simulation run. */
typedef struct {
    unsigned n;                          /* servers */
    uint64_t seed;                       /* this run's seed */
    uint64_t rng;                        /* xorshift state */
    unsigned steps;                      /* steps before healing */
    bool verbose;                        /* print every action */
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
    unsigned proposed_by_type[N_CMD_TYPES];        /* proposals by command type */
    unsigned ok_by_type[MAX_SERVERS][N_CMD_TYPES]; /* applied with ZC_OK, by server and type */
    unsigned faults;                     /* faults injected */
    int disk_victim;                     /* the one server given append faults, -1 none */
    unsigned truncates_dropped;          /* shim 2 at work (see the shims) */
    unsigned results_capped;             /* shim 3 at work */
    unsigned entries_trimmed;            /* shim 4 at work */
    unsigned results_dropped;            /* shim 5 at work */
    char failure[512];                   /* first violation, empty if none */
} sim_t;

/* The I/O shims.  The sim wraps four methods of each server's fixture
 * raft_io (append, truncate, send, start, and through start the receive
 * callback) to inject append faults and to keep clear of four problems of
 * raft 0.15 and its fixture, none of them zcart's.  docs/architecture.md
 * (tests/sim) has the evidence; --raw-raft turns shims 2-5 off.
 *
 * 1. Append faults.  raft_fixture_io_fault fails *any* next I/O, sends
 *    included, and raft 0.15 frees an AppendEntries batch twice when the
 *    reply send fails synchronously (recv_append_entries.c frees it, then
 *    recv.c frees it again), so the sim fails only appends.  A replica whose
 *    append fails stops for good, as the broker does on a storage error (and
 *    as it must here: raft 0.15 keeps a follower's unpersisted entries in
 *    memory after a failed append).  Only one server per run, a minority,
 *    gets disk faults.
 *
 * 2. The fixture's truncate (fixture only).  Its in-memory disk is an array
 *    assumed to hold entries 1..n, and truncate(index) keeps index - 1 slots
 *    without checking them against n.  A follower told to truncate entries
 *    whose append is still in flight breaks that (the libuv backend waits
 *    for in-flight writes first: UvTruncate's barrier), and so does any
 *    truncate after an installed snapshot (installs use trailing 0, which
 *    empties the array).  The fixture then copies past the array and later
 *    frees garbage (5 servers, seed 62 of the first BREAKER mix: SIGSEGV in
 *    raft_fixture_close).  Nothing reads that array back (the sim never
 *    restarts a server), so the shim counts the slots the fixture really
 *    holds (completed appends) and drops truncations beyond them.
 *
 * 3. raft 0.15's AppendEntries result (raft itself, so the broker too; the
 *    same up to canonical/raft 0.18.1).  A follower that accepts an
 *    AppendEntries without writing anything answers r->last_stored, its
 *    whole stored log, where the leader expects prev_log_index + n_entries
 *    (replicationUpdate says so, and caps it only at its own last index).
 *    A follower still holding a deposed leader's uncommitted tail, longer
 *    than the new leader's log, so makes the new leader believe it holds the
 *    entries the leader appended while the heartbeat was in flight: the
 *    leader counts it towards committing them (an entry committed on a
 *    minority) and ignores its later rejections as stale, so it never
 *    catches up unless the leader appends past its tail (5 servers, seed 49
 *    of the first BREAKER mix: no convergence; the sim before these shims,
 *    3 servers, seed 3446: a commit on a minority, then raft's own
 *    "conflicting terms 3 and 2 for entry 61 (commit index 61) -> shutdown").
 *    Any leader change with an uncommitted tail can set this up, so no
 *    fault model avoids it; the shim remembers the AppendEntries a server
 *    is handling and caps a success it answers inside it at prev_log_index
 *    + n_entries.  check_match asserts it holds.
 *
 * 4. raft 0.15's AppendEntries below a snapshot (raft itself).  A follower
 *    cannot take an AppendEntries whose prev_log_index is in the part of
 *    its log it compacted into a snapshot: prev_log_index 0 passes the
 *    check, and the entries are appended at the end of its log, under the
 *    wrong indexes ("No log entries found at index 1", RAFT_SHUTDOWN, then a
 *    NULL dereference or double free in the error path); a higher one is
 *    refused, and the leader, walking back, sends the same snapshot again
 *    and again ("have more recent snapshot").  Leaders send from index 1
 *    after a failed send to a follower they have no match for (back to
 *    probe at match + 1), and walk back below a follower's snapshot when
 *    that follower snapshotted past what they know of it (the sim before
 *    these shims: 5 servers, seed 809, 3 servers, seeds 3036, 3331 and 3403,
 *    SIGSEGV; the BREAKER mix before this shim: 3 servers, seed 123, no
 *    convergence).  The shim moves prev_log_index to the snapshot's index
 *    and drops the entries up to it, which are committed.
 *
 * 5. raft 0.15 commits entries of earlier terms by counting replicas (Raft
 *    section 5.4.2, "figure 8"; fixed upstream by commit 524f735, in 0.17.1).
 *    A new leader whose last stored entry is from an older term commits it
 *    once a majority holds it, yet a server holding a later term's entries
 *    at those indexes can still be elected, with the vote of one that holds
 *    the committed entries (its last term is older), and overwrite them: a
 *    committed entry lost, digests differ (3 servers, seed 1283 of the
 *    BREAKER mix before this shim: "server 2 at index 33 has digest ...").
 *    As in the broker, a new leader's first entry is a barrier (check_terms
 *    proposes it); until the leader has stored an entry of its own term the
 *    shim drops the AppendEntries results it receives, as a saturated link
 *    would, so what it counts is always an entry of its term.
 */
/* The term of the entry at index in raft's in-memory log, 0 if it holds
 * none there (raft 0.15's struct raft_log is public: a ring buffer of the
 * entries after offset). */
static raft_term term_at(const struct raft_log *l, raft_index index)
{
    size_t n = l->front <= l->back ? l->back - l->front : l->size - l->front + l->back;
    if (index > l->offset && index <= l->offset + n)
        return l->entries[(l->front + (size_t)(index - 1 - l->offset)) % l->size].term;
    return index != 0 && index == l->snapshot.last_index ? l->snapshot.last_term : 0;
}

typedef struct pending_append {
    struct raft_io_append *req;  /* raft's request */
    raft_io_append_cb cb;        /* raft's callback */
    unsigned n;                  /* entries in it */
    struct pending_append *next; /* next in flight on the same server */
} pending_append_t;

typedef struct {
    struct raft_io *io; /* the wrapped io */
    struct raft *raft;  /* its server */
    int (*append)(struct raft_io *io, struct raft_io_append *req,
                  const struct raft_entry entries[], unsigned n, raft_io_append_cb cb);
    int (*truncate)(struct raft_io *io, raft_index index);
    int (*send)(struct raft_io *io, struct raft_io_send *req, const struct raft_message *m,
                raft_io_send_cb cb);
    int (*start)(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick, raft_io_recv_cb recv);
    raft_io_recv_cb recv;       /* raft's receive callback */
    pending_append_t *pending;  /* appends in flight */
    size_t disk_n;              /* slots the fixture's disk array holds */
    bool in_ae;                 /* raft is handling an AppendEntries ... */
    raft_term ae_term;          /* ... of this term */
    raft_index ae_last;         /* ... whose last entry is this index */
    unsigned armed;             /* appends still to fail */
    unsigned failed;            /* appends failed so far */
    bool crashed;               /* failed an append: down for good */
    unsigned truncates_dropped; /* shim 2 */
    unsigned results_capped;    /* shim 3 */
    unsigned entries_trimmed;   /* shim 4 */
    unsigned results_dropped;   /* shim 5 */
} io_shim_t;

static io_shim_t shims[MAX_SERVERS];
static bool raw_raft; /* --raw-raft: shims 2-5 off */

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
            if (status == 0)
                shims[i].disk_n += p->n; /* the fixture appended them to its array */
            free(p);
            cb(req, status);
            return;
        }
    abort(); /* an append the shim never saw */
}

static int shim_append(struct raft_io *io, struct raft_io_append *req,
                       const struct raft_entry entries[], unsigned n, raft_io_append_cb cb)
{
    io_shim_t *sh = shim_of(io);
    if (sh->armed > 0 || sh->crashed) {
        sh->armed = 0;
        sh->failed++;
        sh->crashed = true; /* like the broker: a disk error stops the replica */
        return RAFT_IOERR;
    }
    pending_append_t *p = malloc(sizeof *p);
    if (p == NULL)
        return RAFT_NOMEM;
    *p = (pending_append_t){.req = req, .cb = cb, .n = n, .next = sh->pending};
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
    if (!raw_raft && index - 1 > sh->disk_n) {
        sh->truncates_dropped++; /* nothing the array holds is at or past index */
        return 0;
    }
    int rc = sh->truncate(io, index);
    if (rc == 0)
        sh->disk_n = index - 1;
    return rc;
}

/* Shim 4: an AppendEntries whose prev_log_index lies in the part of the
 * log a server has compacted into its snapshot (below its first in-memory
 * entry, and not the snapshot's own index) starts over at the snapshot's
 * index: the entries up to there are committed, so the leader's are the
 * ones the snapshot holds.  The message keeps the entries after it, and
 * prev_log_term becomes the leader's term at that index if the message
 * carries it (raft checks it against the snapshot's), else the snapshot's. */
static void trim_compacted(io_shim_t *sh, struct raft_append_entries *ae)
{
    const struct raft_log *l = &sh->raft->log;
    raft_index snap = l->snapshot.last_index;
    if (raw_raft || l->offset == 0 || ae->prev_log_index > l->offset || ae->prev_log_index >= snap)
        return;
    raft_index skip = snap - ae->prev_log_index; /* entries the snapshot covers */
    ae->prev_log_index = snap;
    if (skip <= ae->n_entries) {
        ae->prev_log_term = ae->entries[skip - 1].term;
    } else {
        ae->prev_log_term = l->snapshot.last_term;
        skip = ae->n_entries;
    }
    ae->n_entries -= (unsigned)skip;
    if (skip > 0 && ae->n_entries == 0) {
        raft_free(ae->entries[0].batch); /* the fixture copies all into one batch */
        raft_free(ae->entries);
        ae->entries = NULL;
    } else if (skip > 0) {
        memmove(ae->entries, ae->entries + skip, ae->n_entries * sizeof *ae->entries);
    }
    sh->entries_trimmed++;
}

static void shim_recv(struct raft_io *io, struct raft_message *m)
{
    io_shim_t *sh = shim_of(io);
    struct raft *r = sh->raft;
    if (m->type == RAFT_IO_APPEND_ENTRIES_RESULT && !raw_raft && raft_state(r) == RAFT_LEADER &&
        term_at(&r->log, r->last_stored) < r->current_term) {
        sh->results_dropped++; /* shim 5: lost, as on a saturated link */
        return;
    }
    if (m->type != RAFT_IO_APPEND_ENTRIES) {
        sh->recv(io, m);
        return;
    }
    trim_compacted(sh, &m->append_entries);
    /* Read before raft frees the entries. */
    sh->in_ae = true;
    sh->ae_term = m->append_entries.term;
    sh->ae_last = m->append_entries.prev_log_index + m->append_entries.n_entries;
    sh->recv(io, m);
    sh->in_ae = false;
}

static int shim_send(struct raft_io *io, struct raft_io_send *req, const struct raft_message *m,
                     raft_io_send_cb cb)
{
    io_shim_t *sh = shim_of(io);
    const struct raft_append_entries_result *res = &m->append_entries_result;
    if (raw_raft || !sh->in_ae || m->type != RAFT_IO_APPEND_ENTRIES_RESULT || res->rejected != 0 ||
        res->term != sh->ae_term || res->last_log_index <= sh->ae_last)
        return sh->send(io, req, m, cb);
    struct raft_message capped = *m; /* the fixture copies it */
    capped.append_entries_result.last_log_index = sh->ae_last;
    sh->results_capped++;
    return sh->send(io, req, &capped, cb);
}

static int shim_start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                      raft_io_recv_cb recv)
{
    io_shim_t *sh = shim_of(io);
    sh->recv = recv;
    return sh->start(io, msecs, tick, shim_recv);
}

static void shim_install(struct raft_io *io, struct raft *r, unsigned i)
{
    shims[i] = (io_shim_t){.io = io,
                           .raft = r,
                           .append = io->append,
                           .truncate = io->truncate,
                           .send = io->send,
                           .start = io->start,
                           .disk_n = 1}; /* raft_fixture_bootstrap writes entry 1 */
    io->append = shim_append;
    io->truncate = shim_truncate;
    io->send = shim_send;
    io->start = shim_start;
}

/* Free what raft_fixture_close left in flight (it flushes appends, so
 * normally nothing). */
static void shim_clear(void)
{
    for (unsigned i = 0; i < MAX_SERVERS; i++)
        while (shims[i].pending != NULL) {
            pending_append_t *p = shims[i].pending;
            shims[i].pending = p->next;
            free(p);
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

static uint64_t rnd(sim_t *s)
{
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return s->rng;
}

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

/* Count each replica's outcomes by command type (for the summary). */
static struct {
    struct raft_fsm *fsm;
    int (*apply)(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result);
    unsigned *ok; /* N_CMD_TYPES counters */
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
    snprintf(out, cap, "n%u.%u", pick(s, N_NODES), pick(s, SLOTS_PER_NODE));
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

static void propose(sim_t *s)
{
    unsigned leader = raft_fixture_leader_index(&s->f);
    if (leader >= s->n)
        return;
    struct raft *r = raft_fixture_get(&s->f, leader);
    if (raft_state(r) != RAFT_LEADER)
        return;
    if (s->capped && raft_last_index(r) >= raft_last_applied(r) + MAX_BACKLOG)
        return;
    zc_cmd_t c;
    zc_cmd_slot_t slots[SLOTS_PER_NODE];
    make_command(s, leader, &c, slots);
    zc_wbuf_t w;
    zc_wbuf_init(&w);
    if (zc_cmd_encode(&c, &w) != 0) {
        zc_wbuf_clear(&w);
        return;
    }
    struct raft_buffer buf = {raft_malloc(w.len), w.len};
    memcpy(buf.base, w.data, w.len);
    zc_wbuf_clear(&w);
    prop_t *p = calloc(1, sizeof *p);
    p->sim = s;
    p->type = c.type;
    if (raft_apply(r, &p->req, &buf, 1, apply_cb) != 0) {
        raft_free(buf.base);
        free(p);
        return;
    }
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
        if (!raft_fixture_alive(f, i) && !is_crashed(i)) {
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
        if (i != j && raft_fixture_alive(f, i) && raft_fixture_alive(f, j) && !is_crashed(i) &&
            !is_crashed(j)) {
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
        if (i != j) {
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
        say(s, "append fault armed on %d", s->disk_victim);
        break;
    }
}

/* Take down a server whose disk failed (after the step, not inside it).
 *
 * The others then run without pre-vote.  raft 0.15's pre-vote can deadlock
 * a cluster that is down to a bare majority for good: a server that missed
 * some terms but holds the longest log asks at its old term + 1, and the
 * others refuse because their term is higher; they ask it in turn and it
 * refuses because their logs are shorter.  A pre-vote answer carries the
 * asker's term, not the higher one, and an asker in pre-vote ignores higher
 * terms anyway, so it never catches up (the sim before this change,
 * 3 servers: seeds 643, 945, 2328, 2740, 4009, 4225).  With every server alive (a killed one is
 * revived at healing) a third voter breaks the tie, so pre-vote stays on
 * until a server is out for good. */
static void reap_crashed(sim_t *s)
{
    for (unsigned i = 0; i < s->n; i++)
        if (shims[i].crashed && raft_fixture_alive(&s->f, i)) {
            raft_fixture_kill(&s->f, i);
            say(s, "server %u stopped after a failed append", i);
            for (unsigned j = 0; j < s->n; j++)
                raft_set_pre_vote(raft_fixture_get(&s->f, j), false);
        }
}

static void heal(sim_t *s)
{
    struct raft_fixture *f = &s->f;
    for (unsigned i = 0; i < s->n; i++) {
        shims[i].armed = 0;
        if (is_crashed(i))
            continue;
        if (!raft_fixture_alive(f, i))
            raft_fixture_revive(f, i);
        raft_fixture_set_network_latency(f, i, 15);
        raft_fixture_set_disk_latency(f, i, 10);
    }
    for (unsigned i = 0; i < s->n; i++)
        for (unsigned j = 0; j < s->n; j++)
            if (i != j && !is_crashed(i) && !is_crashed(j)) {
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
        if (raft_state(lr) != RAFT_LEADER)
            continue;
        for (unsigned k = 0; k < lr->configuration.n; k++) {
            raft_id id = lr->configuration.servers[k].id;
            if (id == lr->id || id < 1 || id > s->n)
                continue;
            struct raft *fr = raft_fixture_get(&s->f, (unsigned)(id - 1));
            raft_index m = lr->leader_state.progress[k].match_index;
            if (raft_state(fr) != RAFT_FOLLOWER || fr->current_term != lr->current_term || m == 0)
                continue;
            raft_term tl = term_at(&lr->log, m), tf = term_at(&fr->log, m);
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
        if (idx == s->last_checked[i])
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

/* Only a disk fault may take a server out for good. */
static void check_available(sim_t *s)
{
    for (unsigned i = 0; i < s->n; i++)
        if (raft_state(raft_fixture_get(&s->f, i)) == RAFT_UNAVAILABLE && !is_crashed(i))
            fail(s, "server %u became unavailable without a disk fault", i);
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
    check_available(s);
    if (s->failure[0])
        return true;
    /* Not raft_fixture_leader_index: it wants a leader acknowledged by every
     * connected server, which a server left UNAVAILABLE never gives. */
    struct raft *lr = NULL;
    for (unsigned i = 0; i < s->n; i++) {
        struct raft *r = raft_fixture_get(f, i);
        if (raft_state(r) == RAFT_LEADER && (lr == NULL || r->current_term > lr->current_term))
            lr = r;
    }
    if (lr == NULL || lr->commit_index < raft_last_index(lr) ||
        raft_last_applied(lr) < lr->commit_index)
        return false;
    for (unsigned i = 0; i < s->n; i++) {
        struct raft *r = raft_fixture_get(f, i);
        if (is_crashed(i))
            continue;
        if (raft_last_applied(r) != raft_last_applied(lr) || r->current_term != lr->current_term)
            return false;
    }
    return true;
}

static int run(sim_t *s)
{
    char err[256];
    struct raft_configuration conf;
    int rc = -1;
    s->rng = s->seed * 0x9E3779B97F4A7C15ull + 1;
    s->disk_victim = -1;
    /* Half the runs flood the leader with commands (long uncommitted logs,
     * big catch-ups); the other half let at most MAX_BACKLOG wait, as
     * clients waiting for answers would, so commands chosen from the
     * leader's state (RETURN, REASSIGN, BREAKER, LOST_TOLD) see a current
     * one. */
    s->capped = pick(s, 2) == 0;
    snprintf(s->dir, sizeof s->dir, "/tmp/zcart-sim.%d.%llu", (int)getpid(),
             (unsigned long long)s->seed);
    mkdir(s->dir, 0755);
    raft_fixture_initialize(&s->f);
    for (unsigned i = 0; i < s->n; i++) {
        char d[300];
        snprintf(d, sizeof d, "%s/s%u", s->dir, i);
        s->zfsm[i] = zc_fsm_new(d, 16u << 20, err, sizeof err);
        if (s->zfsm[i] == NULL) {
            fail(s, "fsm: %s", err);
            goto out;
        }
        zc_fsm_raft(s->zfsm[i], &s->fsms[i]);
        taps[i].fsm = &s->fsms[i];
        taps[i].apply = s->fsms[i].apply;
        taps[i].ok = s->ok_by_type[i];
        s->fsms[i].apply = tap_apply;
        if (raft_fixture_grow(&s->f, &s->fsms[i]) != 0) {
            fail(s, "raft_fixture_grow failed");
            goto out;
        }
        struct raft *r = raft_fixture_get(&s->f, i);
        zc_fsm_bind(s->zfsm[i], r);
        shim_install(&s->f.servers[i].io, r, i);
        raft_set_snapshot_threshold(r, 8 + pick(s, 24));
        /* trailing >= 1: the fixture's disk array assumes entries from 1,
         * which a trailing-0 snapshot breaks (shim 2). */
        raft_set_snapshot_trailing(r, 1 + pick(s, 8));
        raft_set_pre_vote(r, true);
    }
    raft_fixture_configuration(&s->f, s->n, &conf);
    raft_fixture_bootstrap(&s->f, &conf);
    raft_configuration_close(&conf);
    raft_fixture_start(&s->f);

    for (unsigned step = 0; step < s->steps && !s->failure[0]; step++) {
        unsigned r = pick(s, 100);
        if (r < 30)
            propose(s);
        else if (r < 33)
            inject_fault(s);
        raft_fixture_step(&s->f);
        reap_crashed(s);
        check_terms(s);
        check_match(s);
        check_states(s);
        check_available(s);
    }
    if (!s->failure[0]) {
        heal(s);
        /* A few commands after healing, so the final term commits something. */
        for (int k = 0; k < 200 && !s->failure[0]; k++) {
            if (k % 20 == 0)
                propose(s);
            raft_fixture_step(&s->f);
            reap_crashed(s);
            check_terms(s);
            check_match(s);
            check_states(s);
            check_available(s);
        }
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
        unsigned ref = is_crashed(0) ? 1 : 0;
        uint64_t d0 = zc_state_digest(zc_fsm_state(s->zfsm[ref]));
        for (unsigned i = 0; i < s->n && !s->failure[0]; i++) {
            if (is_crashed(i))
                continue;
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
    raft_fixture_close(&s->f);
    for (unsigned i = 0; i < s->n; i++) {
        s->truncates_dropped += shims[i].truncates_dropped;
        s->results_capped += shims[i].results_capped;
        s->entries_trimmed += shims[i].entries_trimmed;
        s->results_dropped += shims[i].results_dropped;
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
    return rc;
}

int main(int argc, char **argv)
{
    unsigned servers = 3, seeds = 1, steps = 3000;
    uint64_t seed = 1;
    bool verbose = false;
    static const struct option opts[] = {
        {"servers", required_argument, NULL, 'n'}, {"seed", required_argument, NULL, 's'},
        {"seeds", required_argument, NULL, 'k'},   {"steps", required_argument, NULL, 't'},
        {"verbose", no_argument, NULL, 'v'},       {"raw-raft", no_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
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
        default:
            printf("usage: zcart-sim [--servers 1..5] [--seed S] [--seeds K] [--steps N] [-v] "
                   "[--raw-raft]\n");
            return o == 'h' ? 0 : 2;
        }
    }
    if (servers < 1 || servers > MAX_SERVERS || seeds < 1) {
        fprintf(stderr, "zcart-sim: --servers wants 1..5, --seeds >= 1\n");
        return 2;
    }
    zc_log_threshold = verbose ? ZC_LOG_INFO : ZC_LOG_ERROR + 1;
    unsigned passed = 0, failed = 0;
    unsigned long long proposals = 0, faults = 0, dropped = 0, capped = 0, trimmed = 0;
    unsigned long long results_dropped = 0;
    unsigned long long by_type[N_CMD_TYPES] = {0}, ok_by_type[N_CMD_TYPES] = {0};
    for (uint64_t k = seed; k < seed + seeds; k++) {
        sim_t *s = calloc(1, sizeof *s);
        s->n = servers;
        s->seed = k;
        s->steps = steps;
        s->verbose = verbose;
        if (run(s) == 0) {
            passed++;
        } else {
            failed++;
            printf("FAIL seed %llu: %s\n  replay: zcart-sim --servers %u --seed %llu --steps %u%s -v\n",
                   (unsigned long long)k, s->failure, servers, (unsigned long long)k, steps,
                   raw_raft ? " --raw-raft" : "");
        }
        proposals += s->proposals;
        faults += s->faults;
        dropped += s->truncates_dropped;
        capped += s->results_capped;
        trimmed += s->entries_trimmed;
        results_dropped += s->results_dropped;
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
    printf("\nshims: %llu fixture truncations dropped, %llu AppendEntries results capped, %llu "
           "AppendEntries trimmed to a snapshot, %llu results dropped before a new leader's "
           "first entry%s\n",
           dropped, capped, trimmed, results_dropped, raw_raft ? " (--raw-raft: off)" : "");
    printf("%u passed, %u failed\n", passed, failed);
    return failed ? 1 : 0;
}
