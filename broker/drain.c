/* drain: a released cart goes back to the free list only once it is empty.
 *
 *   RELEASE committed (cart DRAINING, generation g)
 *     -> RESET(slot, g) to the cart's node, repeated every drain_retry_ms
 *     -> RESET_DONE(node, slot, g) from the node (the slot is now empty)
 *     -> propose RETURN(cart, g) -> committed: cart FREE at the tail
 *
 * The leader scans the replicated registry for DRAINING carts once, when it
 * becomes ready, so a drain interrupted by a crash or a failover is
 * finished by whoever leads next.  From then on it learns of every new
 * DRAINING cart from the commits it proposed itself (a release or an
 * expiry: broker__drain_cart; a lost cart: liveness.c; a dirty registration:
 * registry.c), and each draining cart waits for its next RESET in a
 * deadline queue (lib/dq.h), so a tick costs O(resets due), not O(carts).
 * A popped cart is looked up again: one no longer DRAINING (returned,
 * unregistered) is forgotten.  What is kept here per cart (last RESET
 * sent, a RETURN in flight) only avoids duplicate work; the apply of RETURN
 * refuses anything stale on its own. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/internal.h"
#include "broker/liveness.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "proto/status.h"

typedef struct {
    broker_t *b;                /* the broker */
    char cart[ZC_CART_MAX + 1]; /* cart being returned */
} return_ctx_t;

static cart_info_t *cart_get(broker_t *b, const char *id)
{
    cart_info_t *c = zc_map_get(b->carts, id, strlen(id));
    if (c == NULL) {
        c = calloc(1, sizeof *c);
        if (c == NULL)
            return NULL;
        snprintf(c->id, sizeof c->id, "%s", id);
        zc_dq_entry_init(&c->due);
        if (zc_map_put(b->carts, id, strlen(id), c) != 0) {
            free(c);
            return NULL;
        }
    }
    return c;
}

static void cart_forget(broker_t *b, const char *id)
{
    cart_info_t *c = zc_map_del(b->carts, id, strlen(id));
    if (c)
        zc_dq_remove(&b->drain_q, &c->due);
    free(c);
}

static void send_reset(broker_t *b, cart_info_t *ci, uint64_t generation, uint64_t now_us)
{
    char node[ZC_NODE_MAX + 1];
    uint16_t slot;
    if (!broker__split_cart(ci->id, node, &slot))
        return;
    zc_msg_t m;
    zc_msg_init(&m, ZC_MSG_RESET);
    m.slot = slot;
    m.generation = generation;
    ci->reset_sent_us = now_us;
    ci->reset_gen = generation;
    zc_dq_set(&b->drain_q, &ci->due, now_us + (uint64_t)b->cfg.drain_retry_ms * 1000u);
    if (broker__backend_send(b, node, &m) == 0)
        zc_debug("RESET %s gen %" PRIu64 " sent", ci->id, generation);
#ifdef ZCART_MUTANT_RETURN_BEFORE_RESET /* chaos mutant: RETURN without waiting for RESET_DONE */
    zc_msg_t done;
    zc_msg_init(&done, ZC_MSG_RESET_DONE);
    done.slot = slot;
    done.generation = generation;
    broker__reset_done(b, node, &done);
#endif
}

void broker__drain_cart(broker_t *b, const char *cart, uint64_t generation)
{
    if (!broker__ready(b))
        return;
    cart_info_t *ci = cart_get(b, cart);
    if (ci)
        send_reset(b, ci, generation, zc_mono_us());
}

typedef struct {
    broker_t *b;     /* the broker */
    uint64_t now_us; /* scan time */
    bool force;      /* resend regardless of the retry period */
} scan_t;

/* The registry walk when this replica becomes ready: every DRAINING cart. */
static int scan_one(const zc_cart_rec_t *c, void *arg)
{
    scan_t *s = arg;
    if (c->state != ZC_CART_DRAINING)
        return 0;
    cart_info_t *ci = cart_get(s->b, c->id);
    if (ci == NULL || ci->return_pending)
        return 0;
    send_reset(s->b, ci, c->generation, s->now_us);
    return 0;
}

void broker__drain_scan(broker_t *b, uint64_t now_us, bool force)
{
    if (!broker__ready(b))
        return;
    b->last_drain_us = now_us;
    if (force) {
        scan_t s = {b, now_us, force};
        zc_state_each_cart(broker__state(b), scan_one, &s);
        return;
    }
    zc_state_t *st = broker__state(b);
    zc_dq_entry_t *e;
    while ((e = zc_dq_pop_due(&b->drain_q, now_us)) != NULL) {
        cart_info_t *ci = ZC_CONTAINER(e, cart_info_t, due);
        zc_cart_rec_t rec;
        int rc = zc_state_get_cart(st, ci->id, &rec);
        if (rc == 0 && rec.state == ZC_CART_DRAINING && !ci->return_pending)
            send_reset(b, ci, rec.generation, now_us); /* queued again */
        else if (rc == 0 && rec.state == ZC_CART_DRAINING)
            zc_dq_set(&b->drain_q, &ci->due, now_us + (uint64_t)b->cfg.drain_retry_ms * 1000u);
        else if (rc >= 0 && !ci->return_pending)
            cart_forget(b, ci->id); /* returned, reassigned or unregistered */
        else if (rc < 0)
            zc_dq_set(&b->drain_q, &ci->due, now_us + (uint64_t)b->cfg.drain_retry_ms * 1000u);
    }
}

static void return_done(void *arg, int status, const zc_cmd_result_t *res)
{
    return_ctx_t *ctx = arg;
    broker_t *b = ctx->b;
    if (status == ZC_OK && res->status == ZC_OK) {
        zc_debug("cart %s emptied and free again", ctx->cart);
        cart_forget(b, ctx->cart);
    } else {
        cart_info_t *ci = zc_map_get(b->carts, ctx->cart, strlen(ctx->cart));
        if (ci)
            ci->return_pending = false;
        if (status == ZC_OK && res->status == ZC_FENCED)
            cart_forget(b, ctx->cart); /* already returned or re-drained: nothing to do */
    }
    free(ctx);
}

/* The node emptied a DRAINING cart of that generation: commit its RETURN
 * (once: a repeated RESET_DONE finds it pending). */
static void returned(broker_t *b, const char *id, const zc_cart_rec_t *rec)
{
    if (rec->state != ZC_CART_DRAINING)
        return; /* stale or duplicate */
    cart_info_t *ci = cart_get(b, id);
    if (ci == NULL || ci->return_pending)
        return;
    return_ctx_t *ctx = malloc(sizeof *ctx);
    if (ctx == NULL)
        return;
    ctx->b = b;
    snprintf(ctx->cart, sizeof ctx->cart, "%s", id);
    ci->return_pending = true;
    zc_cmd_t c = {.type = ZC_CMD_RETURN, .time_ms = zc_wall_ms()};
    snprintf(c.ret.cart, sizeof c.ret.cart, "%s", id);
    c.ret.generation = rec->generation;
    broker__propose(b, &c, return_done, ctx);
}

void broker__reset_done(broker_t *b, const char *node, const zc_msg_t *m)
{
    if (!broker__ready(b))
        return;
    char id[ZC_CART_MAX + 1];
    zc_cart_rec_t rec;
    snprintf(id, sizeof id, "%s.%u", node, m->slot);
    if (zc_state_get_cart(broker__state(b), id, &rec) != 0 || rec.generation != m->generation)
        return;                               /* stale or duplicate */
    returned(b, id, &rec);                    /* a drain's reset */
    broker__liveness_reset_done(b, id, &rec); /* or a free cart's probe (liveness.c) */
}

void broker__drain_forget_cart(broker_t *b, const char *cart)
{
    cart_info_t *ci = zc_map_get(b->carts, cart, strlen(cart));
    if (ci && !ci->return_pending)
        cart_forget(b, cart);
}

void broker__drain_forget_all(broker_t *b)
{
    zc_dq_clear(&b->drain_q);
    zc_map_each(b->carts, zc_map_free_value, NULL);
    zc_map_destroy(&b->carts);
    b->carts = zc_map_new();
}
