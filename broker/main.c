/* zcart-broker: one replica of the broker cluster.
 *
 * Everything runs on one libuv loop: raft's I/O and timers, the two ZeroMQ
 * ROUTERs (through lib/zmqx watchers, no busy polling), a tick timer for
 * request timeouts and drain retries, and signal handlers.  Nothing blocks
 * and nothing runs on another thread, so no lock protects anything. */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/backup.h"
#include "broker/internal.h"
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
static void finish_stop(broker_t *b);

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
    zc_node_info_t info;
    broker__info(b, &info);
    zc_sd_status("replica %llu: %s%s, term %llu", (unsigned long long)b->cfg.id,
                 zc_role_name(info.role), info.ready ? " (ready)" : "",
                 (unsigned long long)info.term);
    broker__role_changed(b);
}

static void on_tick(uv_timer_t *t)
{
    broker_t *b = t->data;
    uint64_t now = zc_mono_us();
    broker__tick(b, now);
    if (now - b->last_peers_us >= (uint64_t)b->cfg.drain_retry_ms * 1000u) {
        b->last_peers_us = now;
        if (b->peers)
            broker__peers_sync(b->peers); /* membership may have changed */
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
    broker__route_abort_all(b);
    broker__forward_forget_all(b);
    broker__peers_destroy(&b->peers);
    broker__metrics_close(b);
    broker__frontend_close(b);
    broker__backend_close(b);
    if (broker__backup_running(b))
        zc_info("waiting for the backup being written");
    else
        finish_stop(b);
}

static void finish_stop(broker_t *b) { zc_node_close(b->node, on_node_closed, b); }

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
    if (b->handing_off || b->stopping || signum != SIGTERM ||
        uv_is_active((uv_handle_t *)&b->handoff_timer)) {
        stop(b);
        return;
    }
    broker__info(b, &info);
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

/* The raft node, from the flags. */
static int start_node(broker_t *b, char *err, size_t errlen)
{
    zc_node_config_t nc = {
        .id = b->cfg.id,
        .dir = b->cfg.data_dir,
        .replicas = b->cfg.replicas,
        .n_replicas = b->cfg.n_replicas,
        .election_timeout_ms = b->cfg.election_timeout_ms,
        .heartbeat_timeout_ms = b->cfg.heartbeat_timeout_ms,
        .snapshot_threshold = b->cfg.snapshot_threshold,
        .snapshot_threshold_max = b->cfg.snapshot_threshold_max,
        .snapshot_trailing = b->cfg.snapshot_trailing,
        .segment_size = (size_t)b->cfg.raft_segment_size,
        .pre_vote = true,
        .join = b->cfg.join,
        .recover = b->cfg.recover,
        .state_map_size = (size_t)b->cfg.state_map_size,
        .apply_batch = b->cfg.apply_batch,
        .sec = b->sec,
        .raft_sec = b->raft_sec,
        .zctx = b->zctx,
    };
    b->node = zc_node_new(b->loop, &nc, on_role_changed, b, err, errlen);
    if (b->node == NULL)
        return -1;
    if (zc_node_start(b->node, err, errlen) != 0) {
        zc_node_close(b->node, on_node_closed, b);
        uv_run(b->loop, UV_RUN_DEFAULT);
        return -1;
    }
    return 0;
}

/* The process around the core: timers, signals, the connection watch. */
static void start_process(broker_t *b)
{
    b->peers = broker__peers_new(b);
    if (b->peers)
        broker__peers_sync(b->peers);
    uv_timer_init(b->loop, &b->tick);
    b->tick.data = b;
    uv_timer_start(&b->tick, on_tick, TICK_MS, TICK_MS);
    b->stall = zc_stallwatch_new(b->loop, STALLWATCH_MS);
    uv_timer_init(b->loop, &b->handoff_timer);
    b->handoff_timer.data = b;
    uv_signal_init(b->loop, &b->sigint);
    uv_signal_init(b->loop, &b->sigterm);
    b->sigint.data = b->sigterm.data = b;
    uv_signal_start(&b->sigint, on_signal, SIGINT);
    uv_signal_start(&b->sigterm, on_signal, SIGTERM);
}

/* --raft-cert: this replica's own raft key, which must be a raft key
 * naming this replica's --id.  Without it (secure) the shared replica key
 * speaks for every raft id: said once at start. */
static int open_raft_key(broker_t *b, char *err, size_t errlen)
{
    if (b->cfg.insecure)
        return 0;
    if (b->cfg.raft_cert[0] == 0) {
        zc_warn("no --raft-cert: raft traffic is authenticated by the shared replica key, "
                "whose holder can speak as any replica (docs/security.md, \"Raft\")");
        return 0;
    }
    b->raft_sec = zc_sec_new(b->cfg.raft_cert, NULL, false, err, errlen);
    if (b->raft_sec == NULL)
        return -1;
    const char *role = zc_sec_own(b->raft_sec, "role"), *name = zc_sec_own(b->raft_sec, "name");
    char id[24];
    snprintf(id, sizeof id, "%llu", (unsigned long long)b->cfg.id);
    if (role == NULL || strcmp(role, "raft") != 0 || name == NULL || strcmp(name, id) != 0) {
        snprintf(err, errlen, "--raft-cert %s is not the raft key of replica %s (role %s, name %s)",
                 b->cfg.raft_cert, id, role ? role : "none", name ? name : "none");
        zc_sec_destroy(&b->raft_sec);
        return -1;
    }
    return 0;
}

/* Everything after the flags: keys, core, node, sockets, then the loop. */
static int serve(broker_t *b)
{
    char err[512];
    b->loop = uv_default_loop();
    b->sec = zc_sec_new(b->cfg.cert, b->cfg.allow, b->cfg.insecure, err, sizeof err);
    if (b->sec == NULL) {
        zc_error("%s", err);
        return 2;
    }
    if (open_raft_key(b, err, sizeof err) != 0) {
        zc_error("%s", err);
        zc_sec_destroy(&b->sec);
        return 2;
    }
    b->zctx = zc_sec_context();
    if (b->zctx == NULL || broker__init(b, &broker__io_real) != 0) {
        fprintf(stderr, "zcart-broker: out of memory\n");
        zc_sec_destroy(&b->raft_sec);
        zc_sec_destroy(&b->sec);
        return 1;
    }
    int rc = 1;
    if (start_node(b, err, sizeof err) != 0) {
        zc_error("%s", err);
        goto out;
    }
    if (broker__frontend_open(b, err, sizeof err) != 0 ||
        broker__backend_open(b, err, sizeof err) != 0 ||
        (b->cfg.http[0] && broker__metrics_open(b, b->cfg.http, err, sizeof err) != 0)) {
        zc_error("%s", err);
        broker__frontend_close(b);
        broker__backend_close(b);
        zc_node_close(b->node, on_node_closed, b);
        uv_run(b->loop, UV_RUN_DEFAULT);
        goto out;
    }
    b->finish_stop = finish_stop;
    start_process(b);
    zc_info("replica %llu serving clients on %s, carts on %s", (unsigned long long)b->cfg.id,
            b->self->client_endpoint, b->self->cart_endpoint);
    zc_sd_ready(b->loop, "replica %llu: serving clients on %s", (unsigned long long)b->cfg.id,
                b->self->client_endpoint);
    uv_run(b->loop, UV_RUN_DEFAULT);
    rc = b->exit_code;
out:
    uv_loop_close(b->loop);
    broker__destroy(b);
    zc_sec_destroy(&b->raft_sec);
    zc_sec_destroy(&b->sec); /* czmq's context itself ends at exit (zsys_shutdown) */
    return rc;
}

int main(int argc, char **argv)
{
    broker_t b;
    memset(&b, 0, sizeof b);
    switch (broker__config_parse(&b.cfg, argc, argv)) {
    case 0: break;
    case 1: return 0;
    default: return 2;
    }
    if (b.cfg.dump_state)
        return broker__dump_state(b.cfg.data_dir);
    if (b.cfg.restore[0])
        return broker__backup_restore(b.cfg.restore, b.cfg.data_dir, b.cfg.state_map_size);
    /* raft's libuv transport writes to sockets whose peer may be gone. */
    signal(SIGPIPE, SIG_IGN);
    /* Snapshots, raft messages and their ZeroMQ copies are tens of MiB at
     * 100k carts, built and freed on libuv's worker threads.  glibc keeps
     * such blocks in per-thread arenas once its dynamic mmap threshold has
     * risen (to 32 MiB after the first large free), so RSS kept the peaks of
     * every thread (bench/README.md "At scale").  A fixed threshold maps
     * every block from 1 MiB up on its own and unmaps it when freed. */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    char name[32];
    snprintf(name, sizeof name, "broker%llu", (unsigned long long)b.cfg.id);
    zc_log_set_name(name);
    zc_log_threshold = b.cfg.log_level;
    for (unsigned i = 0; i < b.cfg.n_replicas; i++)
        if (b.cfg.replicas[i].id == b.cfg.id)
            b.self = &b.cfg.replicas[i];
    return serve(&b);
}
