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
 * The scan walks the ASSIGNED carts of the registry (every live session
 * holds exactly one), not the session table, which also keeps every ended
 * session.
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
    uint64_t heard_us; /* monotonic time of the session's last request */
    bool expiring;     /* its expiry is being committed */
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
        if (zc_map_put(b->leases, session, ZC_SESSION_LEN, l) != 0) {
            free(l);
            return NULL;
        }
    }
    return l;
}

void lease_touch(broker_t *b, const uint8_t session[ZC_SESSION_LEN])
{
    lease_t *l = lease_get(b, session, true);
    if (l)
        l->heard_us = zc_mono_us();
}

void lease_forget(broker_t *b, const uint8_t session[ZC_SESSION_LEN])
{
    lease_t *l = b->leases ? zc_map_get(b->leases, session, ZC_SESSION_LEN) : NULL;
    if (l && !l->expiring)
        free(zc_map_del(b->leases, session, ZC_SESSION_LEN));
}

static void expiry_done(void *arg, int status, const zc_cmd_result_t *res)
{
    expiry_ctx_t *ctx = arg;
    broker_t *b = ctx->b;
    char hex[2 * ZC_SESSION_LEN + 1];
    zc_session_hex(ctx->session, hex);
    if (b->leases)
        free(zc_map_del(b->leases, ctx->session, ZC_SESSION_LEN));
    if (status == ZC_OK && res->status == ZC_OK && res->cart[0]) {
        zc_info("session %.8s expired (no request for %u ms), cart %s gen %llu draining", hex,
                b->cfg.session_ttl_ms, res->cart, (unsigned long long)res->generation);
        drain_cart(b, res->cart, res->generation);
    }
    free(ctx);
}

/* One scan's context. */
typedef struct {
    broker_t *b;     /* the broker */
    uint64_t now_us; /* monotonic now */
} scan_t;

static int scan_one(const zc_cart_rec_t *c, void *arg)
{
    scan_t *s = arg;
    broker_t *b = s->b;
    if (c->state != ZC_CART_ASSIGNED)
        return 0;
    lease_t *l = lease_get(b, c->session, false);
    if (l && l->expiring)
        return 0;
    uint64_t heard = l && l->heard_us > b->ready_since_us ? l->heard_us : b->ready_since_us;
    if (s->now_us - heard <= (uint64_t)b->cfg.session_ttl_ms * 1000u)
        return 0;
    l = lease_get(b, c->session, true);
    expiry_ctx_t *ctx = malloc(sizeof *ctx);
    if (l == NULL || ctx == NULL) {
        free(ctx);
        return 0;
    }
    l->expiring = true;
    ctx->b = b;
    memcpy(ctx->session, c->session, ZC_SESSION_LEN);
    zc_cmd_t cmd = {.type = ZC_CMD_RELEASE, .time_ms = zc_wall_ms()};
    memcpy(cmd.release.session, c->session, ZC_SESSION_LEN);
    cmd.release.why = ZC_RELEASE_EXPIRED;
    zc_node_propose(b->node, &cmd, expiry_done, ctx);
    return 0;
}

void lease_scan(broker_t *b, uint64_t now_us)
{
    uint64_t gap = b->lease_prev_us ? now_us - b->lease_prev_us : 0;
    b->lease_prev_us = now_us;
    if (gap > (uint64_t)b->cfg.session_ttl_ms * 500u) {
        /* This process stalled: the requests of that time are still queued.
         * Every lease starts again rather than expiring unheard sessions. */
        zc_warn("no lease scan for %llu ms: every lease restarts", (unsigned long long)(gap / 1000));
        b->ready_since_us = now_us;
        return;
    }
    if (!zc_node_ready(b->node))
        return;
    scan_t s = {b, now_us};
    zc_state_each_cart(zc_node_state(b->node), scan_one, &s);
}

static int free_lease(const void *k, size_t kl, void *v, void *arg)
{
    (void)k;
    (void)kl;
    (void)arg;
    free(v);
    return 0;
}

void lease_forget_all(broker_t *b)
{
    if (b->leases)
        zc_map_each(b->leases, free_lease, NULL);
    zc_map_destroy(&b->leases);
    b->leases = zc_map_new();
}

void lease_destroy(broker_t *b)
{
    if (b->leases)
        zc_map_each(b->leases, free_lease, NULL);
    zc_map_destroy(&b->leases);
}
