/* lease: a session lives while its client is heard from.
 *
 * Every live session has a lease of --session-ttl.  Any request of the
 * session (add, remove, list, close, or the keepalive op that libzcart
 * sends on its own) renews it.  When a lease runs out the leader commits
 * the expiry -- a RELEASE with why "lease expired" -- and then drains the
 * cart exactly as for a close; later requests of the session get
 * SESSION_EXPIRED.
 *
 * Renewals are not replicated (a commit per request would cost more than
 * the lease is worth): the leader keeps the last time it heard from each
 * session in memory.  So on a leader change the new leader does not know
 * when a session was last heard from, and the rule is:
 *
 *   a new leader gives every live session a full lease, counted from the
 *   moment it became a ready leader.
 *
 * A session can therefore outlive its lease by up to one TTL across a
 * failover, and is never expired early.  The same holds when the leader's
 * own process stalls (SIGSTOP) for more than half a TTL: the requests of
 * that time are still unread, so every lease starts again.  Only the expiry decision itself
 * is replicated, and it is idempotent (RELEASE of an ended session is a
 * no-op), so a decision of a deposed leader that still commits is harmless.
 *
 * Timers: every lease the leader keeps sits in a deadline queue (lib/dq.h)
 * keyed by when it runs out, so the scan every LEASE_SCAN_MS pops only the
 * leases that are due -- its cost does not grow with the number of
 * sessions.  A renewal moves the lease's deadline (O(log n)).  When this
 * replica becomes a ready leader it walks the ASSIGNED carts of the
 * registry once (every live session holds exactly one, and the session
 * table also keeps every ended session) and queues a full lease for each
 * of their sessions.  A popped lease is checked again before it expires
 * anything: counted from the later of its last request and ready_since
 * (which a stall moves) it may not be due after all (queued again), and a
 * session that is no longer live just loses its lease.
 *
 * A commit can come after its request timed out (route.c): a late ASSIGN
 * still starts the session's lease (without one it would count from when
 * this replica became leader and could expire at once), and a late RELEASE
 * still forgets it (else the entry would stay for good). */
#include "broker/lease.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/clock.h"
#include "lib/log.h"
#include "proto/status.h"

/* What the leader remembers about one session's lease. */
typedef struct {
    uint8_t session[ZC_SESSION_LEN]; /* the session (its key in b->leases) */
    uint64_t heard_us;               /* monotonic time of its last request, 0 none yet */
    bool expiring;                   /* its expiry is being committed */
    zc_dq_entry_t due;               /* in b->lease_q at when the lease runs out */
} lease_t;

/* Argument of an expiry proposal's callback. */
typedef struct {
    broker_t *b;                     /* the broker */
    uint8_t session[ZC_SESSION_LEN]; /* the session */
} expiry_ctx_t;

static lease_t *lease_get(broker_t *b, const uint8_t session[ZC_SESSION_LEN], bool create)
{
    if (b->leases == NULL)
        return NULL;
    lease_t *l = zc_map_get(b->leases, session, ZC_SESSION_LEN);
    if (l == NULL && create) {
        l = calloc(1, sizeof *l);
        if (l == NULL)
            return NULL;
        memcpy(l->session, session, ZC_SESSION_LEN);
        zc_dq_entry_init(&l->due);
        if (zc_map_put(b->leases, session, ZC_SESSION_LEN, l) != 0) {
            free(l);
            return NULL;
        }
    }
    return l;
}

/* Unqueue and free a lease. */
static void lease_free(broker_t *b, lease_t *l)
{
    zc_dq_remove(&b->lease_q, &l->due);
    free(zc_map_del(b->leases, l->session, ZC_SESSION_LEN));
}

/* When the lease runs out: a full TTL from the later of its last request
 * and the moment this replica became a ready leader. */
static uint64_t lease_deadline(const broker_t *b, const lease_t *l)
{
    uint64_t heard = l->heard_us > b->ready_since_us ? l->heard_us : b->ready_since_us;
    return heard + (uint64_t)b->cfg.session_ttl_ms * 1000u + 1;
}

void broker__lease_touch(broker_t *b, const uint8_t session[ZC_SESSION_LEN])
{
    lease_t *l = lease_get(b, session, true);
    if (l == NULL)
        return;
    l->heard_us = zc_mono_us();
    if (!l->expiring)
        zc_dq_set(&b->lease_q, &l->due, lease_deadline(b, l));
}

void broker__lease_forget(broker_t *b, const uint8_t session[ZC_SESSION_LEN])
{
    lease_t *l = b->leases ? zc_map_get(b->leases, session, ZC_SESSION_LEN) : NULL;
    if (l && !l->expiring)
        lease_free(b, l);
}

static void expiry_done(void *arg, int status, const zc_cmd_result_t *res)
{
    expiry_ctx_t *ctx = arg;
    broker_t *b = ctx->b;
    char hex[2 * ZC_SESSION_LEN + 1];
    zc_session_hex(ctx->session, hex);
    lease_t *l = b->leases ? zc_map_get(b->leases, ctx->session, ZC_SESSION_LEN) : NULL;
    if (l)
        lease_free(b, l);
    if (status == ZC_OK && res->status == ZC_OK && res->cart[0]) {
        zc_info("session %.8s expired (no request for %u ms), cart %s gen %llu draining", hex,
                b->cfg.session_ttl_ms, res->cart, (unsigned long long)res->generation);
        broker__drain_cart(b, res->cart, res->generation);
    }
    free(ctx);
}

/* Commit the expiry of l's session. */
static void expire(broker_t *b, lease_t *l)
{
    expiry_ctx_t *ctx = malloc(sizeof *ctx);
    if (ctx == NULL) {
        zc_dq_set(&b->lease_q, &l->due, zc_mono_us() + LEASE_SCAN_MS * 1000u);
        return;
    }
    l->expiring = true;
    ctx->b = b;
    memcpy(ctx->session, l->session, ZC_SESSION_LEN);
    zc_cmd_t cmd = {.type = ZC_CMD_RELEASE, .time_ms = zc_wall_ms()};
    memcpy(cmd.release.session, l->session, ZC_SESSION_LEN);
    cmd.release.why = ZC_RELEASE_EXPIRED;
    broker__propose(b, &cmd, expiry_done, ctx);
}

/* Queue a full lease for the session of an ASSIGNED cart (broker__lease_start). */
static int start_one(const zc_cart_rec_t *c, void *arg)
{
    broker_t *b = arg;
    if (c->state != ZC_CART_ASSIGNED)
        return 0;
    lease_t *l = lease_get(b, c->session, true);
    if (l && !l->expiring && !zc_dq_queued(&l->due))
        zc_dq_set(&b->lease_q, &l->due, lease_deadline(b, l));
    return 0;
}

void broker__lease_start(broker_t *b)
{
    if (!broker__ready(b))
        return;
    zc_state_each_cart(broker__state(b), start_one, b);
}

void broker__lease_scan(broker_t *b, uint64_t now_us)
{
    uint64_t gap = b->lease_prev_us ? now_us - b->lease_prev_us : 0;
    b->lease_prev_us = now_us;
    if (gap > (uint64_t)b->cfg.session_ttl_ms * 500u) {
        /* This process stalled: the requests of that time are still queued.
         * Every lease starts again rather than expiring unheard sessions
         * (lazily: each lease counts from ready_since when it pops). */
        zc_warn("no lease scan for %llu ms: every lease restarts", (unsigned long long)(gap / 1000));
        b->ready_since_us = now_us;
        return;
    }
    if (!broker__ready(b))
        return;
    zc_state_t *st = broker__state(b);
    zc_dq_entry_t *e;
    while ((e = zc_dq_pop_due(&b->lease_q, now_us)) != NULL) {
        lease_t *l = ZC_CONTAINER(e, lease_t, due);
        uint64_t deadline = lease_deadline(b, l);
        if (deadline > now_us) {
            zc_dq_set(&b->lease_q, &l->due, deadline); /* renewed, or a stall restarted it */
            continue;
        }
        zc_session_rec_t sess;
        int rc = zc_state_get_session(st, l->session, &sess);
        if (rc < 0) {
            zc_dq_set(&b->lease_q, &l->due, now_us + LEASE_SCAN_MS * 1000u);
            continue;
        }
        if (rc == 1 || sess.state != ZC_SESS_LIVE) {
            lease_free(b, l); /* ended meanwhile (or purged): nothing to expire */
            continue;
        }
        expire(b, l);
    }
}

void broker__lease_forget_all(broker_t *b)
{
    zc_dq_clear(&b->lease_q);
    if (b->leases)
        zc_map_each(b->leases, zc_map_free_value, NULL);
    zc_map_destroy(&b->leases);
    b->leases = zc_map_new();
}

void broker__lease_destroy(broker_t *b)
{
    zc_dq_clear(&b->lease_q);
    if (b->leases)
        zc_map_each(b->leases, zc_map_free_value, NULL);
    zc_map_destroy(&b->leases);
}
