/* zcart-broker: one replica of the broker cluster.
 *
 * Everything runs on one libuv loop: raft's I/O and timers, the two ZeroMQ
 * ROUTERs (through lib/zmqx watchers, no busy polling), a tick timer for
 * request timeouts and drain retries, and signal handlers.  Nothing blocks
 * and nothing runs on another thread, so no lock protects anything. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/backup.h"
#include "broker/broker.h"
#include "broker/forward.h"
#include "broker/dump.h"
#include "broker/lease.h"
#include "broker/liveness.h"
#include "broker/peers.h"
#include "broker/purge.h"
#include "broker/registry.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/sdnotify.h"
#include "proto/status.h"

#define TICK_MS 20
#define STALLWATCH_MS 10 /* the stallwatch's period: stalls are measured to within it */

static void stop(broker_t *b);

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
    unsigned n = zc_node_configuration(b->node, ids, roles, 16);
    for (unsigned i = 0; i < n; i++) {
        zc_member_t m;
        if (zc_state_get_member(zc_node_state(b->node), ids[i], &m) == 0)
            continue;
        for (unsigned j = 0; j < b->cfg.n_replicas; j++) {
            if (b->cfg.replicas[j].id != ids[i])
                continue;
            zc_cmd_t c = {.type = ZC_CMD_MEMBER_SET, .time_ms = zc_wall_ms()};
            c.member = b->cfg.replicas[j];
            zc_node_propose(b->node, &c, seed_done, NULL);
        }
    }
}

static void on_role_changed(void *arg)
{
    broker_t *b = arg;
    if (b->stopping)
        return;
    if (zc_node_failed(b->node)) {
        zc_error("raft stopped: %s; exiting so the replica restarts from its log",
                 "storage error or internal failure");
        b->exit_code = 1;
        stop(b);
        return;
    }
    bool ready = zc_node_ready(b->node);
    zc_node_info_t info;
    zc_node_info(b->node, &info);
    zc_sd_status("replica %llu: %s%s, term %llu", (unsigned long long)b->cfg.id,
                 zc_role_name(info.role), ready ? " (ready)" : "", (unsigned long long)info.term);
    route_role_changed(b);
    if (ready && !b->was_ready) {
        b->ready_since_us = zc_mono_us(); /* every node gets a full liveness window */
        seed_members(b);
        drain_scan(b, zc_mono_us(), true);
        lease_start(b);
        liveness_start(b);
    }
    if (!ready && b->was_ready) {
        drain_forget_all(b);
        registry_forget_all(b);
        liveness_forget_all(b);
        lease_forget_all(b);
    }
    b->was_ready = ready;
}

static void on_tick(uv_timer_t *t)
{
    broker_t *b = t->data;
    uint64_t now = zc_mono_us();
    route_expire(b, now);
    route_node_connected(b, NULL); /* a node's connection may be back before its HELLO */
    if (now - b->last_liveness_us >= LIVENESS_SCAN_MS * 1000u) {
        b->last_liveness_us = now;
        liveness_scan(b, now);
    }
    if (now - b->last_lease_us >= LEASE_SCAN_MS * 1000u) {
        b->last_lease_us = now;
        lease_scan(b, now);
    }
    purge_scan(b, now);
    forward_expire(b, now);
    drain_scan(b, now, false); /* the resets that are due: O(1) when none is */
    if (now - b->last_peers_us >= (uint64_t)b->cfg.drain_retry_ms * 1000u) {
        b->last_peers_us = now;
        if (b->peers)
            peers_sync(b->peers); /* membership may have changed */
    }
}

static void on_node_closed(void *arg)
{
    broker_t *b = arg;
    b->node = NULL;
}

static void stop(broker_t *b)
{
    if (b->stopping)
        return;
    b->stopping = true;
    zc_info("shutting down");
    zc_sd_stopping();
    uv_timer_stop(&b->tick);
    zc_stallwatch_destroy(&b->stall);
    uv_close((uv_handle_t *)&b->tick, NULL);
    uv_close((uv_handle_t *)&b->handoff_timer, NULL);
    uv_close((uv_handle_t *)&b->sigint, NULL);
    uv_close((uv_handle_t *)&b->sigterm, NULL);
    route_abort_all(b);
    forward_forget_all(b);
    peers_destroy(&b->peers);
    metrics_close(b);
    frontend_close(b);
    backend_close(b);
    if (backup_running(b))
        zc_info("waiting for the backup being written");
    else
        broker_finish_stop(b);
}

void broker_finish_stop(broker_t *b) { zc_node_close(b->node, on_node_closed, b); }

/* Graceful handoff: a leader told to stop first hands leadership to a
 * caught-up voter (raft's TimeoutNow), so the cluster does not wait an
 * election timeout for a new leader, and only then closes.  Bounded: after
 * two election timeouts (and one second) it stops anyway, as it does on a
 * second signal or when the transfer is refused (a single voter). */
static void on_handoff_timer(uv_timer_t *t)
{
    broker_t *b = t->data;
    if (b->handing_off)
        zc_warn("leadership handoff took too long; stopping anyway");
    stop(b);
}

/* Runs inside raft's transfer callback: the stop (raft_close) waits for
 * the next loop turn, through the handoff timer. */
static void on_handoff_done(void *arg, int status, const char *detail)
{
    broker_t *b = arg;
    if (b->stopping)
        return;
    if (status == ZC_OK)
        zc_info("leadership handed off; stopping");
    else
        zc_warn("leadership handoff failed (%s); stopping anyway", detail);
    b->handing_off = false;
    uv_timer_start(&b->handoff_timer, on_handoff_timer, 0, 0);
}

static void on_signal(uv_signal_t *s, int signum)
{
    broker_t *b = s->data;
    zc_node_info_t info;
    if (b->handing_off || b->stopping || signum != SIGTERM || uv_is_active((uv_handle_t *)&b->handoff_timer)) {
        stop(b);
        return;
    }
    zc_node_info(b->node, &info);
    if (info.role != ZC_ROLE_LEADER) {
        stop(b);
        return;
    }
    zc_info("SIGTERM to the leader: handing leadership off before stopping");
    b->handing_off = true;
    uv_timer_start(&b->handoff_timer, on_handoff_timer, 2ull * b->cfg.election_timeout_ms + 1000,
                   0);
    zc_node_transfer(b->node, 0, on_handoff_done, b);
}

int main(int argc, char **argv)
{
    broker_t b;
    char err[512];
    int rc = 1;
    memset(&b, 0, sizeof b);

    switch (broker_config_parse(&b.cfg, argc, argv)) {
    case 0: break;
    case 1: return 0;
    default: return 2;
    }
    if (b.cfg.dump_state)
        return broker_dump_state(b.cfg.data_dir);
    if (b.cfg.restore[0])
        return backup_restore(b.cfg.restore, b.cfg.data_dir, b.cfg.state_map_size);
    /* raft's libuv transport writes to sockets whose peer may be gone. */
    signal(SIGPIPE, SIG_IGN);
    char name[32];
    snprintf(name, sizeof name, "broker%llu", (unsigned long long)b.cfg.id);
    zc_log_set_name(name);
    zc_log_threshold = b.cfg.log_level;
    for (unsigned i = 0; i < b.cfg.n_replicas; i++)
        if (b.cfg.replicas[i].id == b.cfg.id)
            b.self = &b.cfg.replicas[i];

    b.loop = uv_default_loop();
    b.inflight = zc_map_new();
    b.nodes = zc_map_new();
    b.carts = zc_map_new();
    b.breakers = zc_map_new();
    b.leases = zc_map_new();
    zc_link_init(&b.waiting);
    b.sec = zc_sec_new(b.cfg.cert, b.cfg.allow, b.cfg.insecure, err, sizeof err);
    if (b.sec == NULL) {
        zc_error("%s", err);
        return 2;
    }
    b.zctx = zc_sec_context();
    if (!b.inflight || !b.nodes || !b.carts || !b.breakers || !b.leases || !b.zctx) {
        fprintf(stderr, "zcart-broker: out of memory\n");
        return 1;
    }

    zc_node_config_t nc = {
        .id = b.cfg.id,
        .dir = b.cfg.data_dir,
        .replicas = b.cfg.replicas,
        .n_replicas = b.cfg.n_replicas,
        .election_timeout_ms = b.cfg.election_timeout_ms,
        .heartbeat_timeout_ms = b.cfg.heartbeat_timeout_ms,
        .snapshot_threshold = b.cfg.snapshot_threshold,
        .snapshot_trailing = b.cfg.snapshot_trailing,
        .segment_size = (size_t)b.cfg.raft_segment_size,
        .pre_vote = true,
        .join = b.cfg.join,
        .recover = b.cfg.recover,
        .state_map_size = (size_t)b.cfg.state_map_size,
        .sec = b.sec,
        .zctx = b.zctx,
    };
    b.node = zc_node_new(b.loop, &nc, on_role_changed, &b, err, sizeof err);
    if (b.node == NULL) {
        zc_error("%s", err);
        goto out;
    }
    if (zc_node_start(b.node, err, sizeof err) != 0) {
        zc_error("%s", err);
        zc_node_close(b.node, on_node_closed, &b);
        uv_run(b.loop, UV_RUN_DEFAULT);
        goto out;
    }
    if (frontend_open(&b, err, sizeof err) != 0 || backend_open(&b, err, sizeof err) != 0 ||
        (b.cfg.http[0] && metrics_open(&b, b.cfg.http, err, sizeof err) != 0)) {
        zc_error("%s", err);
        frontend_close(&b);
        backend_close(&b);
        zc_node_close(b.node, on_node_closed, &b);
        uv_run(b.loop, UV_RUN_DEFAULT);
        goto out;
    }
    b.forwards = zc_map_new();
    zc_dq_init(&b.forward_q);
    b.peers = peers_new(&b);
    if (b.peers)
        peers_sync(b.peers);
    uv_timer_init(b.loop, &b.tick);
    b.tick.data = &b;
    uv_timer_start(&b.tick, on_tick, TICK_MS, TICK_MS);
    b.stall = zc_stallwatch_new(b.loop, STALLWATCH_MS);
    uv_timer_init(b.loop, &b.handoff_timer);
    b.handoff_timer.data = &b;
    uv_signal_init(b.loop, &b.sigint);
    uv_signal_init(b.loop, &b.sigterm);
    b.sigint.data = b.sigterm.data = &b;
    uv_signal_start(&b.sigint, on_signal, SIGINT);
    uv_signal_start(&b.sigterm, on_signal, SIGTERM);
    zc_info("replica %llu serving clients on %s, carts on %s", (unsigned long long)b.cfg.id,
            b.self->client_endpoint, b.self->cart_endpoint);
    zc_sd_ready(b.loop, "replica %llu: serving clients on %s", (unsigned long long)b.cfg.id,
                b.self->client_endpoint);

    uv_run(b.loop, UV_RUN_DEFAULT);
    rc = b.exit_code;
out:
    uv_loop_close(b.loop);
    route_abort_all(&b);
    zc_map_destroy(&b.inflight);
    drain_forget_all(&b);
    zc_map_destroy(&b.carts);
    liveness_destroy(&b);
    lease_destroy(&b);
    registry_destroy(&b);
    zc_sec_destroy(&b.sec); /* czmq's context itself ends at exit (zsys_shutdown) */
    return rc;
}
