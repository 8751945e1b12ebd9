/* broker: the replica's core lifecycle -- what a broker_t holds from start
 * to stop, what happens when raft's role or readiness changes, and what the
 * periodic tick drives.  Nothing here touches a socket or raft directly:
 * the process (main.c) wires the ports (b->io) and the timers, so the
 * whole core runs under unit tests too (tests/unit/test_route.c).
 *
 * A new ready leader rebuilds the leader-only caches (drains, leases,
 * breaker counts, node liveness) from the replicated state; a replica that
 * stops being one forgets them.  Losing them never loses a decision. */
#include <string.h>

#include "broker/forward.h"
#include "broker/lease.h"
#include "broker/liveness.h"
#include "broker/purge.h"
#include "broker/registry.h"
#include "lib/clock.h"
#include "lib/log.h"

int broker__init(broker_t *b, const broker_io_t *io)
{
    b->io = io;
    zc_link_init(&b->waiting);
    zc_dq_init(&b->node_q);
    zc_dq_init(&b->drain_q);
    zc_dq_init(&b->lease_q);
    zc_dq_init(&b->forward_q);
    b->inflight = zc_map_new();
    b->nodes = zc_map_new();
    b->carts = zc_map_new();
    b->breakers = zc_map_new();
    b->leases = zc_map_new();
    b->forwards = zc_map_new();
    if (!b->inflight || !b->nodes || !b->carts || !b->breakers || !b->leases || !b->forwards) {
        broker__destroy(b);
        return -1;
    }
    return 0;
}

void broker__destroy(broker_t *b)
{
    broker__route_abort_all(b);
    zc_map_destroy(&b->inflight);
    broker__forward_forget_all(b);
    zc_dq_clear(&b->drain_q);
    if (b->carts)
        zc_map_each(b->carts, zc_map_free_value, NULL);
    zc_map_destroy(&b->carts);
    broker__liveness_destroy(b);
    broker__lease_destroy(b);
    broker__registry_destroy(b);
}

static void seed_done(void *arg, int status, const zc_cmd_result_t *res)
{
    (void)arg;
    (void)res;
    if (status != ZC_OK)
        zc_debug("member directory seeding did not commit (will retry when next ready)");
}

/* The member directory starts from the command line: a new leader records
 * the members raft knows but the directory lacks (a bootstrapped cluster's
 * initial members; later ones come with add-node). */
static void seed_members(broker_t *b)
{
    uint64_t ids[16];
    const char *roles[16];
    if (b->node == NULL)
        return; /* no raft node behind the ports (unit tests) */
    unsigned n = broker__configuration(b, ids, roles, 16);
    for (unsigned i = 0; i < n; i++) {
        zc_member_t m;
        if (zc_state_get_member(broker__state(b), ids[i], &m) == 0)
            continue;
        for (unsigned j = 0; j < b->cfg.n_replicas; j++) {
            if (b->cfg.replicas[j].id != ids[i])
                continue;
            zc_cmd_t c = {.type = ZC_CMD_MEMBER_SET, .time_ms = zc_wall_ms()};
            c.member = b->cfg.replicas[j];
            broker__propose(b, &c, seed_done, NULL);
        }
    }
}

void broker__role_changed(broker_t *b)
{
    bool ready = broker__ready(b);
    broker__route_role_changed(b);
    if (ready && !b->was_ready) {
        b->ready_since_us = zc_mono_us(); /* every node gets a full liveness window */
        seed_members(b);
        broker__drain_scan(b, zc_mono_us(), true);
        broker__lease_start(b);
        broker__liveness_start(b);
    }
    if (!ready && b->was_ready) {
        broker__drain_forget_all(b);
        broker__registry_forget_all(b);
        broker__liveness_forget_all(b);
        broker__lease_forget_all(b);
    }
    b->was_ready = ready;
}

void broker__tick(broker_t *b, uint64_t now)
{
    broker__route_expire(b, now);
    broker__route_node_connected(b, NULL); /* a node's connection may be back before its HELLO */
    if (now - b->last_liveness_us >= LIVENESS_SCAN_MS * 1000u) {
        b->last_liveness_us = now;
        broker__liveness_scan(b, now);
    }
    if (now - b->last_lease_us >= LEASE_SCAN_MS * 1000u) {
        b->last_lease_us = now;
        broker__lease_scan(b, now);
    }
    broker__purge_scan(b, now);
    broker__forward_expire(b, now);
    broker__drain_scan(b, now, false); /* the resets that are due: O(1) when none is */
}
