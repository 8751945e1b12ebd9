/* registry: see registry.h. */
#include "broker/registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/clock.h"
#include "lib/log.h"
#include "proto/status.h"

typedef struct {
    broker_t *b;                 /* the broker */
    char node[ZC_NODE_MAX + 1];  /* node whose REGISTER this is */
} register_ctx_t;

static node_info_t *node_get(broker_t *b, const char *name)
{
    node_info_t *n = zc_map_get(b->nodes, name, strlen(name));
    if (n == NULL) {
        n = calloc(1, sizeof *n);
        if (n == NULL)
            return NULL;
        snprintf(n->name, sizeof n->name, "%s", name);
        if (zc_map_put(b->nodes, name, strlen(name), n) != 0) {
            free(n);
            return NULL;
        }
    }
    return n;
}

static void register_done(void *arg, int status, const zc_cmd_result_t *res)
{
    register_ctx_t *ctx = arg;
    node_info_t *n = zc_map_get(ctx->b->nodes, ctx->node, strlen(ctx->node));
    if (n)
        n->register_pending = false;
    if (status == ZC_OK && res->count > 0)
        zc_info("registered %u cart(s) of node %s", res->count, ctx->node);
    free(ctx);
}

void registry_hello(broker_t *b, const zc_msg_t *hello)
{
    node_info_t *n = node_get(b, hello->node);
    if (n == NULL)
        return;
    n->last_hello_us = zc_mono_us();
    n->last_hello_wall_ms = zc_wall_ms();
    if (!zc_node_ready(b->node) || n->register_pending)
        return;
    zc_state_t *st = zc_node_state(b->node);
    zc_cmd_slot_t *slots = calloc(hello->n_slots ? hello->n_slots : 1, sizeof *slots);
    if (slots == NULL)
        return;
    uint16_t k = 0;
    for (unsigned i = 0; i < hello->n_slots; i++) {
        const zc_slotinfo_t *si = &hello->slots[i];
        char id[ZC_CART_MAX + 1];
        zc_cart_rec_t rec;
        snprintf(id, sizeof id, "%s.%u", hello->node, si->slot);
        if (zc_state_get_cart(st, id, &rec) != 1)
            continue; /* known (or unreadable: try again next HELLO) */
        slots[k].slot = si->slot;
        slots[k].generation =
            si->generation > si->reset_generation ? si->generation : si->reset_generation;
        slots[k].dirty = !zc_session_is_zero(si->session) || si->n_items > 0;
        k++;
    }
    if (k > 0) {
        register_ctx_t *ctx = malloc(sizeof *ctx);
        if (ctx) {
            zc_cmd_t c = {.type = ZC_CMD_REGISTER, .time_ms = zc_wall_ms()};
            snprintf(c.reg.node, sizeof c.reg.node, "%s", hello->node);
            c.reg.n = k;
            c.reg.slots = slots;
            ctx->b = b;
            snprintf(ctx->node, sizeof ctx->node, "%s", hello->node);
            n->register_pending = true;
            zc_node_propose(b->node, &c, register_done, ctx);
        }
    }
    free(slots);
}

static int clear_pending(const void *k, size_t kl, void *v, void *arg)
{
    (void)k;
    (void)kl;
    (void)arg;
    ((node_info_t *)v)->register_pending = false;
    return 0;
}

void registry_forget_all(broker_t *b) { zc_map_each(b->nodes, clear_pending, NULL); }

static int free_node(const void *k, size_t kl, void *v, void *arg)
{
    (void)k;
    (void)kl;
    (void)arg;
    free(v);
    return 0;
}

void registry_destroy(broker_t *b)
{
    if (b->nodes)
        zc_map_each(b->nodes, free_node, NULL);
    zc_map_destroy(&b->nodes);
}
