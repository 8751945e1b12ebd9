/* proposer: one raft_apply per turn of the event loop.  See proposer.h.
 *
 * Why.  One raft_apply per command costs the leader, per command, one log
 * append (a write and an fdatasync in raft's libuv io) and one
 * AppendEntries per follower; under 64 concurrent clients the leader was
 * syscall-bound.  Commands proposed in one turn of the loop are queued
 * instead and handed to raft together when the turn ends
 * (replication/node.c: its uv_check handle, and a uv_idle "kick" so the
 * loop does not block in poll while commands wait), or as soon as
 * max_batch of them wait, which bounds the queue and what its first
 * command waits for.  raft_apply with n buffers appends them as n entries
 * at once: raft writes all of them in one append and sends them in one
 * AppendEntries per follower.
 *
 * What raft 0.15 does with such a raft_apply (v0.15.0's source):
 *   - client.c:37-50: the n buffers become entries index..index+n-1,
 *     req->index = index (the first), and one request is queued;
 *   - replication.c:1336-1352 (applyCommand): after the FSM applied an
 *     entry, the request whose req->index is that entry's index gets its
 *     callback with that entry's result -- so the callback fires once,
 *     with the FIRST entry's result, as soon as the first entry applied,
 *     before the others are applied; entries 2..n find no request;
 *   - replication.c:442-462 (getRequest): no request is found unless the
 *     server is leader;
 *   - convert.c:78-102 (convertClearLeader, from every step down and from
 *     raft_close): every request still queued fails RAFT_LEADERSHIPLOST;
 *     a batch whose first entry already applied is no longer queued and is
 *     never told;
 *   - replication.c:475-488 (appendLeaderCb): a failed leader append fails
 *     the request at the append's first index -- the io guard's hook stops
 *     the replica before raft sees it (io_guard.c, bug 5);
 *   - client.c:45-48 with log.c:511-533 (logAppendCommands): an append to
 *     the in-memory log that fails part-way (out of memory) returns the
 *     error WITHOUT discarding the entries it did append, whose buffers the
 *     log then owns: see "half-appended" below.
 * Within one term a batch's entries commit together: the leader counts
 * only at its own last stored index (io_guard.c, bug 3), which is the end
 * of one of its appends, and one batch is one append (appendLeader,
 * replication.c:532); raft then applies them in one pass
 * (replicationApply).  Nothing below depends on that.
 *
 * Answers.  So raft's callback is only the batch's lifetime (batch_cb
 * frees it) and a loss signal; each caller is answered by the proposer:
 *   - a command raft took is *pending*, with the index raft gave it
 *     (req->index + its place in the batch) and the leader's term;
 *     pending commands are in index order, all of one term;
 *   - raft applies entries in index order through the FSM, and the node's
 *     apply wrapper calls zc_proposer_applied with each result.  When the
 *     entry applied is the oldest pending command's index and this replica
 *     is still the leader of that command's term, the entry IS that
 *     command: a leader never rewrites its log within its term, and a
 *     server leads at most one unbroken stretch of a term.  Its caller
 *     gets the result (ZC_OK): committed (raft applies nothing else) and
 *     applied here;
 *   - when this replica is no longer leader of that term, every pending
 *     command fails ZC_UNAVAILABLE -- after the loss, an entry at its
 *     index may be another leader's, and its result must not reach this
 *     caller.  Three places notice, whichever comes first: raft's callback
 *     with an error (convertClearLeader, raft_close), zc_proposer_applied
 *     (the replica applies an entry while not leading that term), and
 *     zc_proposer_check, every loop turn (a loss raft never reported: a
 *     batch whose first entry applied).
 * A caller hears OK only for its own entry, committed and applied; every
 * other outcome is what a single-entry raft_apply gave before.
 *
 * Half-appended.  If raft_apply fails and raft's last index moved, raft
 * kept part of the batch in its log, owns those buffers, and will replicate
 * them without a disk write (appendLeader never ran for them).  The
 * proposer cannot make that right: it calls cfg.fatal (the broker exits and
 * restarts from its log, as for a storage failure). */
#include "replication/proposer.h"

#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "proto/status.h"

/* One proposal, on one of the proposer's lists. */
typedef struct prop {
    zc_propose_cb cb;       /* the caller's callback */
    void *arg;              /* its argument */
    uint64_t proposed_us;   /* when it was proposed (commit_lat) */
    struct raft_buffer buf; /* queued: the encoded command (raft_malloc'd); raft's once taken */
    raft_index index;       /* pending: its entry's index */
    raft_term term;         /* pending: the term raft appended it in */
    int status;             /* refused: the answer the next flush gives */
    struct prop *next;      /* next on the same list */
} prop_t;

/* A FIFO of proposals. */
typedef struct {
    prop_t *head; /* oldest */
    prop_t *tail; /* newest */
    unsigned n;   /* on it */
} fifo_t;

/* One raft_apply; raft hands req back to batch_cb, exactly once. */
typedef struct {
    struct raft_apply req; /* must be first */
    zc_proposer_t *p;      /* the proposer */
} batch_t;

struct zc_proposer {
    zc_proposer_config_t cfg;  /* copy; max_batch resolved */
    fifo_t queued;             /* proposed, not yet handed to raft */
    fifo_t pending;            /* raft took them, not yet answered; index order, one term */
    fifo_t refused;            /* refused at a flush inside propose: answered at the next flush */
    struct raft_buffer *bufs;  /* max_batch buffers: raft_apply's argument */
    unsigned in_raft;          /* batches whose raft callback has not fired */
    zc_proposer_stats_t stats; /* zc_proposer_stats */
};

static void push(fifo_t *f, prop_t *q)
{
    q->next = NULL;
    if (f->tail)
        f->tail->next = q;
    else
        f->head = q;
    f->tail = q;
    f->n++;
}

static prop_t *pop(fifo_t *f)
{
    prop_t *q = f->head;
    if (q == NULL)
        return NULL;
    f->head = q->next;
    if (f->head == NULL)
        f->tail = NULL;
    f->n--;
    q->next = NULL;
    return q;
}

/* Take the whole list, leaving f empty: callbacks may add to f meanwhile. */
static prop_t *take_all(fifo_t *f)
{
    prop_t *all = f->head;
    *f = (fifo_t){0};
    return all;
}

/* Answer q and free it.  res NULL: a zeroed result carrying status. */
static void answer(prop_t *q, int status, const zc_cmd_result_t *res)
{
    zc_cmd_result_t none;
    if (res == NULL) {
        memset(&none, 0, sizeof none);
        none.status = (uint8_t)status;
        res = &none;
    }
    zc_propose_cb cb = q->cb;
    void *arg = q->arg;
    if (q->buf.base != NULL)
        raft_free(q->buf.base);
    free(q);
    cb(arg, status, res);
}

static bool leads_term(const zc_proposer_t *p, raft_term term)
{
    struct raft *r = p->cfg.raft;
    return raft_state(r) == RAFT_LEADER && r->current_term == term;
}

/* Leadership was lost (or raft closed): every pending command fails. */
static void fail_pending(zc_proposer_t *p)
{
    prop_t *q = take_all(&p->pending);
    while (q != NULL) {
        prop_t *next = q->next;
        p->stats.failed++;
        answer(q, ZC_UNAVAILABLE, NULL);
        q = next;
    }
}

static void batch_cb(struct raft_apply *req, int status, void *result)
{
    batch_t *b = (batch_t *)req;
    zc_proposer_t *p = b->p;
    (void)result; /* the first entry's: zc_proposer_applied already answered it */
    free(b);
    p->in_raft--;
    if (status != 0)
        fail_pending(p);
}

zc_proposer_t *zc_proposer_new(const zc_proposer_config_t *cfg)
{
    zc_proposer_t *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->cfg = *cfg;
    if (p->cfg.max_batch == 0)
        p->cfg.max_batch = ZC_PROPOSER_BATCH;
    p->bufs = calloc(p->cfg.max_batch, sizeof *p->bufs);
    if (p->bufs == NULL) {
        free(p);
        return NULL;
    }
    return p;
}

void zc_proposer_close(zc_proposer_t *p)
{
    prop_t *q = take_all(&p->refused);
    while (q != NULL) {
        prop_t *next = q->next;
        answer(q, q->status, NULL);
        q = next;
    }
    q = take_all(&p->queued);
    while (q != NULL) {
        prop_t *next = q->next;
        p->stats.refused++;
        answer(q, ZC_UNAVAILABLE, NULL);
        q = next;
    }
}

void zc_proposer_destroy(zc_proposer_t **pp)
{
    zc_proposer_t *p = *pp;
    if (p == NULL)
        return;
    *pp = NULL;
    zc_proposer_close(p);
    fail_pending(p);
    if (p->in_raft != 0) /* raft_close fails every request it holds: a lifetime bug */
        zc_error("proposer destroyed while raft holds %u of its batches", p->in_raft);
    free(p->bufs);
    free(p);
}

/* Hand the queue to raft as one raft_apply.  A refusal is answered now, or
 * (later) at the next flush, when this runs inside a caller's propose. */
static void hand_over(zc_proposer_t *p, bool later)
{
    unsigned n = p->queued.n;
    if (n == 0)
        return;
    struct raft *r = p->cfg.raft;
    prop_t *list = take_all(&p->queued);
    batch_t *b = NULL;
    unsigned kept = 0; /* entries raft kept from a batch it refused (half-appended) */
    int rv;
    if (!p->cfg.ready(p->cfg.arg)) {
        rv = RAFT_NOTLEADER;
    } else if ((b = calloc(1, sizeof *b)) == NULL) {
        rv = RAFT_NOMEM;
    } else {
        unsigned k = 0;
        for (prop_t *q = list; q != NULL; q = q->next)
            p->bufs[k++] = q->buf;
        raft_index last = raft_last_index(r);
        b->p = p;
        rv = raft_apply(r, &b->req, p->bufs, n, batch_cb);
        if (rv != 0 && raft_last_index(r) > last) {
            kept = (unsigned)(raft_last_index(r) - last);
            zc_error("raft_apply refused a batch of %u commands (%s) but kept %u of them in its "
                     "log",
                     n, raft_strerror(rv), kept);
            p->cfg.fatal(p->cfg.arg, "raft kept part of a refused batch in its log", rv);
        }
    }
    if (rv == 0) {
        p->in_raft++;
        p->stats.batches++;
        p->stats.proposed += n;
        if (n > p->stats.batch_max)
            p->stats.batch_max = n;
        raft_index index = b->req.index;
        while (list != NULL) {
            prop_t *q = list;
            list = q->next;
            q->buf = (struct raft_buffer){0}; /* the log's now */
            q->index = index++;
            q->term = r->current_term;
            push(&p->pending, q);
        }
        return;
    }
    free(b);
    int status = rv == RAFT_NOTLEADER ? ZC_NOT_LEADER : ZC_UNAVAILABLE;
    for (unsigned k = 0; list != NULL; k++) {
        prop_t *q = list;
        list = q->next;
        if (k < kept)
            q->buf = (struct raft_buffer){0}; /* the log's (the fatal hook returned) */
        p->stats.refused++;
        if (later) {
            raft_free(q->buf.base);
            q->buf = (struct raft_buffer){0};
            q->status = status;
            push(&p->refused, q);
        } else {
            answer(q, status, NULL);
        }
    }
}

void zc_proposer_propose(zc_proposer_t *p, const zc_cmd_t *cmd, zc_propose_cb cb, void *arg)
{
    zc_cmd_result_t none;
    memset(&none, 0, sizeof none);
    if (!p->cfg.ready(p->cfg.arg)) {
        p->stats.refused++;
        none.status = ZC_NOT_LEADER;
        cb(arg, ZC_NOT_LEADER, &none);
        return;
    }
    zc_wbuf_t w;
    zc_wbuf_init(&w);
    prop_t *q = calloc(1, sizeof *q);
    void *copy = NULL;
    if (q == NULL || zc_cmd_encode(cmd, &w) != 0 || (copy = raft_malloc(w.len)) == NULL) {
        zc_wbuf_clear(&w);
        free(q);
        none.status = ZC_INTERNAL;
        cb(arg, ZC_INTERNAL, &none);
        return;
    }
    memcpy(copy, w.data, w.len);
    q->buf = (struct raft_buffer){copy, w.len};
    zc_wbuf_clear(&w);
    q->cb = cb;
    q->arg = arg;
    q->proposed_us = zc_mono_us();
    push(&p->queued, q);
    if (p->queued.n >= p->cfg.max_batch)
        hand_over(p, true);
}

bool zc_proposer_waiting(const zc_proposer_t *p) { return p->queued.n > 0 || p->refused.n > 0; }

unsigned zc_proposer_queued(const zc_proposer_t *p) { return p->queued.n; }

void zc_proposer_check(zc_proposer_t *p)
{
    if (p->pending.head != NULL && !leads_term(p, p->pending.head->term))
        fail_pending(p);
}

void zc_proposer_flush(zc_proposer_t *p)
{
    zc_proposer_check(p);
    prop_t *q = take_all(&p->refused);
    while (q != NULL) {
        prop_t *next = q->next;
        answer(q, q->status, NULL);
        q = next;
    }
    hand_over(p, false);
}

void zc_proposer_applied(zc_proposer_t *p, const zc_cmd_result_t *res)
{
    prop_t *q = p->pending.head;
    if (q == NULL)
        return;
    if (!leads_term(p, q->term)) {
        fail_pending(p); /* the entry applied now may be another leader's */
        return;
    }
    raft_index index = p->cfg.raft->last_applied + 1;
    if (index < q->index)
        return; /* an earlier entry: a predecessor's, or not a command of ours */
    if (index > q->index) {
        /* Entry q->index applied without a word to the proposer: nothing
         * ties the pending commands to entries any more. */
        zc_warn("proposer: entry %llu applied before pending entry %llu was seen",
                (unsigned long long)index, (unsigned long long)q->index);
        fail_pending(p);
        return;
    }
    pop(&p->pending);
    p->stats.committed++;
    zc_hist_observe(&p->stats.commit_lat, zc_mono_us() - q->proposed_us);
    answer(q, ZC_OK, res);
}

void zc_proposer_stats(const zc_proposer_t *p, zc_proposer_stats_t *out) { *out = p->stats; }
