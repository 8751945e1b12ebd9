/* raw_raft: the raw replication floor under zcart's new sessions, for
 * bench/compare.py (`make bench-compare`).
 *
 * One process is one canonical/raft 0.15 server on libuv (raft_uv_tcp,
 * raft's own transport; no io guard, no LMDB): its state machine only
 * counts entries.  Three of them (compare.py starts them, ids 1..3 on
 * ports PORT+1..3) bootstrap one cluster; whichever becomes leader keeps K
 * entries of zcart's ASSIGN size in flight for SECONDS, then prints one
 * JSON object (commits, commits_per_s, k) and exits.  The others serve
 * until they are killed.  This is what raft itself costs per commit with K
 * proposals in flight: the floor under zcart's ASSIGN, RELEASE and RETURN.
 *
 * `--transport relay` swaps raft_uv_tcp for zcart's own raft transport
 * (replication/transport.h: raft's bytes through a socketpair to a relay
 * that carries them over ZeroMQ), without CURVE: the same raft, what the
 * relay's hops cost per commit (bench/README.md, "The raft relay's share").
 *
 *   raw_raft --id N --dir DIR --port PORT [--inflight K] [--seconds S]
 *            [--entry-bytes B] [--transport tcp|relay] */
#include <inttypes.h>
#include <raft.h>
#include <raft/uv.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "lib/clock.h"
#include "lib/zsec.h"
#include "replication/transport.h"

#define N_SERVERS 3

static struct {
    uv_loop_t *loop;              /* the one loop */
    struct raft raft;             /* this server */
    struct raft_io io;            /* libuv io */
    struct raft_uv_transport tcp; /* raft_uv_tcp, or zcart's relay (--transport relay) */
    struct raft_fsm fsm;          /* counts entries */
    uv_timer_t poll;              /* watches for leadership, then the clock */
    unsigned inflight, k;         /* entries in flight, and the goal */
    unsigned entry_bytes;         /* bytes per entry (8-aligned) */
    unsigned seconds;             /* load duration */
    uint64_t start_us, end_us;    /* the load's window */
    uint64_t commits;             /* entries committed in the window */
    uint64_t applied;             /* entries the state machine saw */
    int loading;                  /* leader under load */
    const char *transport;        /* "tcp" or "relay", for the report */
} g;

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    (void)fsm;
    (void)buf;
    g.applied++;
    *result = NULL;
    return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n)
{
    (void)fsm;
    *bufs = raft_malloc(sizeof **bufs);
    if (*bufs == NULL)
        return RAFT_NOMEM;
    (*bufs)[0].len = 8;
    (*bufs)[0].base = raft_calloc(1, 8);
    *n = 1;
    return (*bufs)[0].base ? 0 : RAFT_NOMEM;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    (void)fsm;
    raft_free(buf->base);
    return 0;
}

static void submit(void);

static void applied(struct raft_apply *req, int status, void *result)
{
    (void)result;
    free(req);
    g.inflight--;
    if (status == 0 && zc_mono_us() < g.end_us)
        g.commits++;
    if (g.loading)
        submit();
}

/* Keep k entries in flight while the window lasts. */
static void submit(void)
{
    while (g.loading && g.inflight < g.k && zc_mono_us() < g.end_us) {
        struct raft_apply *req = malloc(sizeof *req);
        struct raft_buffer buf = {.len = g.entry_bytes, .base = raft_calloc(1, g.entry_bytes)};
        if (req == NULL || buf.base == NULL || raft_apply(&g.raft, req, &buf, 1, applied) != 0) {
            free(req);
            raft_free(buf.base);
            return; /* not the leader any more: the poll reports it */
        }
        g.inflight++;
    }
}

static void on_poll(uv_timer_t *t)
{
    (void)t;
    uint64_t now = zc_mono_us();
    if (!g.loading && raft_state(&g.raft) == RAFT_LEADER) {
        g.loading = 1;
        g.start_us = now;
        g.end_us = now + (uint64_t)g.seconds * 1000000u;
        submit();
        return;
    }
    if (g.loading && (now >= g.end_us || raft_state(&g.raft) != RAFT_LEADER)) {
        double secs = (double)(now < g.end_us ? now - g.start_us : g.end_us - g.start_us) / 1e6;
        /* Little's law: K in flight the whole window, so one commit's mean
         * latency is K over the rate. */
        double rate = (double)g.commits / (secs > 0 ? secs : 1e-9);
        printf("{\"commits\": %" PRIu64 ", \"commits_per_s\": %.1f, \"commit_mean_us\": %.0f, "
               "\"k\": %u, \"entry_bytes\": %u, \"seconds\": %.3f, \"transport\": \"%s\", "
               "\"leader_kept\": %s}\n",
               g.commits, rate, rate > 0 ? 1e6 * g.k / rate : 0.0, g.k, g.entry_bytes, secs,
               g.transport,
               raft_state(&g.raft) == RAFT_LEADER ? "true" : "false");
        fflush(stdout);
        _exit(raft_state(&g.raft) == RAFT_LEADER ? 0 : 1);
    }
}

int main(int argc, char **argv)
{
    unsigned id = 0, port = 0;
    bool relay = false;
    const char *dir = NULL;
    g.k = 64;
    g.seconds = 5;
    g.entry_bytes = 48;
    for (int i = 1; i + 1 < argc; i += 2) {
        long v = atol(argv[i + 1]);
        if (strcmp(argv[i], "--id") == 0 && v >= 1 && v <= N_SERVERS)
            id = (unsigned)v;
        else if (strcmp(argv[i], "--dir") == 0)
            dir = argv[i + 1];
        else if (strcmp(argv[i], "--port") == 0 && v > 0 && v < 65530)
            port = (unsigned)v;
        else if (strcmp(argv[i], "--inflight") == 0 && v >= 1 && v <= 4096)
            g.k = (unsigned)v;
        else if (strcmp(argv[i], "--seconds") == 0 && v >= 1 && v <= 3600)
            g.seconds = (unsigned)v;
        else if (strcmp(argv[i], "--transport") == 0 &&
                 (strcmp(argv[i + 1], "tcp") == 0 || strcmp(argv[i + 1], "relay") == 0))
            relay = strcmp(argv[i + 1], "relay") == 0;
        else if (strcmp(argv[i], "--entry-bytes") == 0 && v >= 8 && v <= 65536)
            g.entry_bytes = (unsigned)(v + 7) / 8 * 8;
        else
            id = 0, i = argc;
    }
    if (id == 0 || dir == NULL || port == 0) {
        fprintf(stderr, "usage: raw_raft --id 1..3 --dir DIR --port PORT [--inflight K] "
                        "[--seconds S] [--entry-bytes B] [--transport tcp|relay]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN); /* raft's TCP transport writes to peers that may be gone */
    g.loop = uv_default_loop();
    g.fsm = (struct raft_fsm){
        .version = 1, .apply = fsm_apply, .snapshot = fsm_snapshot, .restore = fsm_restore};
    char addr[N_SERVERS + 1][32];
    for (unsigned i = 1; i <= N_SERVERS; i++)
        snprintf(addr[i], sizeof addr[i], "127.0.0.1:%u", port + i);
    /* The relay without keys: plain ZeroMQ, no role check (transport.h). */
    zc_transport_config_t relay_cfg = {
        .loop = g.loop, .zctx = zc_sec_context(), .max_msg = 64u << 20};
    g.transport = relay ? "relay" : "tcp";
    if ((relay ? zc_transport_init(&g.tcp, &relay_cfg) : raft_uv_tcp_init(&g.tcp, g.loop)) != 0 || raft_uv_init(&g.io, g.loop, dir, &g.tcp) != 0 ||
        raft_init(&g.raft, &g.io, &g.fsm, id, addr[id]) != 0) {
        fprintf(stderr, "raw_raft: init failed\n");
        return 1;
    }
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    for (unsigned i = 1; i <= N_SERVERS; i++)
        raft_configuration_add(&conf, i, addr[i], RAFT_VOTER);
    int rv = raft_bootstrap(&g.raft, &conf);
    raft_configuration_close(&conf);
    if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) {
        fprintf(stderr, "raw_raft: bootstrap: %s\n", raft_strerror(rv));
        return 1;
    }
    /* zcart's own timeouts (broker defaults), and no snapshot in a run. */
    raft_set_election_timeout(&g.raft, 300);
    raft_set_heartbeat_timeout(&g.raft, 50);
    raft_set_snapshot_threshold(&g.raft, 1u << 30);
    raft_set_pre_vote(&g.raft, true);
    if ((rv = raft_start(&g.raft)) != 0) {
        fprintf(stderr, "raw_raft: start: %s\n", raft_errmsg(&g.raft));
        return 1;
    }
    uv_timer_init(g.loop, &g.poll);
    uv_timer_start(&g.poll, on_poll, 10, 10);
    return uv_run(g.loop, UV_RUN_DEFAULT);
}
