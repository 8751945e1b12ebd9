/* metrics: a broker replica's /metrics page and readiness (--http).
 *
 * Everything here is read on scrape from what the replica keeps anyway:
 * raft's indexes and the node's proposal counters (replication/node.h),
 * the state's O(1) counts (carts, sessions, storage), the request counters
 * that broker__metrics_request adds to on every answer to a client, and the loop
 * and snapshot watches.  The page costs O(breakers not CLOSED + cart
 * nodes); nothing walks the carts or the sessions.
 *
 * Readiness (/readyz): a leader is ready once its term's barrier applied
 * (it serves then, docs/architecture.md); a follower is ready while it
 * knows a leader and has applied all but at most --ready-lag of the entries
 * a leader announced committed to it (the leader_commit of its latest
 * AppendEntries, kept by the io guard).  A candidate, or a replica that
 * knows no leader, is not ready. */
#include <stdio.h>
#include <string.h>

#include "broker/internal.h"
#include "lib/clock.h"
#include "lib/ops.h"
#include "replication/breaker.h"

void broker__metrics_request(broker_t *b, int op, int status, uint64_t started_us)
{
    if (op < 0 || op >= BROKER_OPS)
        op = 0;
    if (status < 0 || status >= ZC_STATUS_COUNT)
        return;
    b->reqstats.answers[op][status]++;
    b->reqstats.answered++;
    if (started_us) {
        uint64_t now = zc_mono_us();
        zc_hist_observe(&b->reqstats.latency[op], now - started_us);
        zc_hist_recent_observe(&b->reqstats.recent, now, now - started_us);
    }
}

static const char *op_label(int op) { return op ? zc_op_name(op) : "unknown"; }

static void one(zc_prom_t *p, const char *name, const char *type, const char *help, double v)
{
    zc_prom_family(p, name, type, help);
    zc_prom_sample(p, name, NULL, v);
}

static void write_raft(broker_t *b, zc_prom_t *p)
{
    zc_node_info_t info;
    zc_node_raft_stats_t rs;
    broker__info(b, &info);
    zc_node_raft_stats(b->node, &rs);
    zc_prom_family(p, "zcart_raft_role", "gauge", "1 for this replica's raft role, else 0.");
    for (int r = ZC_ROLE_UNAVAILABLE; r <= ZC_ROLE_LEADER; r++)
        zc_prom_sample(p, "zcart_raft_role", (const char *[]){"role", zc_role_name(r), NULL},
                       info.role == r);
    one(p, "zcart_raft_ready", "gauge", "1 if this replica is a leader whose term's barrier applied.",
        info.ready);
    one(p, "zcart_raft_term", "gauge", "Current raft term.", (double)info.term);
    one(p, "zcart_raft_commit_index", "gauge", "Raft commit index.", (double)info.commit_index);
    one(p, "zcart_raft_applied_index", "gauge", "Index applied to the state.",
        (double)info.applied_index);
    one(p, "zcart_raft_last_index", "gauge", "Last index in the raft log.", (double)info.last_index);
    one(p, "zcart_raft_leader_commit_index", "gauge",
        "Commit index the leader announced (a leader: its own).", (double)info.leader_commit);
    one(p, "zcart_raft_leader_id", "gauge", "Raft id of the known leader, 0 if none.",
        (double)info.leader_id);
    one(p, "zcart_raft_leader_changes_total", "counter",
        "Times this replica learned of a new leader.", (double)rs.leader_changes);
    zc_prom_family(p, "zcart_raft_proposals_total", "counter",
                   "Commands proposed by this replica, by outcome.");
    zc_prom_sample(p, "zcart_raft_proposals_total", (const char *[]){"outcome", "committed", NULL},
                   (double)rs.committed);
    zc_prom_sample(p, "zcart_raft_proposals_total", (const char *[]){"outcome", "failed", NULL},
                   (double)rs.failed);
    zc_prom_sample(p, "zcart_raft_proposals_total", (const char *[]){"outcome", "refused", NULL},
                   (double)rs.refused);
    one(p, "zcart_raft_proposals_in_flight", "gauge", "Proposals not yet applied or failed.",
        (double)(rs.proposed - rs.committed - rs.failed));
    one(p, "zcart_raft_proposal_batches_total", "counter",
        "raft_apply calls this replica made: the commands of one loop turn go in one.",
        (double)rs.proposal_batches);
    one(p, "zcart_raft_proposal_batch_max_commands", "gauge",
        "The most commands one raft_apply of this replica took.", (double)rs.proposal_batch_max);
    zc_prom_family(p, "zcart_raft_commit_seconds", "histogram",
                   "From proposing a command to applying it here.");
    zc_prom_hist(p, "zcart_raft_commit_seconds", NULL, &rs.commit_lat);
}

static void write_requests(broker_t *b, zc_prom_t *p)
{
    zc_prom_family(p, "zcart_requests_total", "counter",
                   "Answers to client requests, by operation and status.");
    for (int op = 0; op < BROKER_OPS; op++)
        for (int s = 0; s < ZC_STATUS_COUNT; s++)
            if (b->reqstats.answers[op][s] || (op && s == ZC_OK))
                zc_prom_sample(p, "zcart_requests_total",
                               (const char *[]){"op", op_label(op), "status", zc_status_name(s), NULL},
                               (double)b->reqstats.answers[op][s]);
    zc_prom_family(p, "zcart_request_seconds", "histogram",
                   "From a request's arrival to its answer, requests that waited for a cart "
                   "or a commit.");
    for (int op = 1; op < BROKER_OPS; op++)
        zc_prom_hist(p, "zcart_request_seconds", (const char *[]){"op", op_label(op), NULL},
                     &b->reqstats.latency[op]);
    one(p, "zcart_requests_in_flight", "gauge", "Client requests the leader works on.",
        (double)zc_map_size(b->inflight));
    one(p, "zcart_requests_relayed_total", "counter",
        "Client requests this replica relayed to the leader (a follower).", (double)b->forwarded);
    one(p, "zcart_requests_relaying", "gauge", "Relayed requests waiting for the leader's answer.",
        (double)(b->forwards ? zc_map_size(b->forwards) : 0));
    one(p, "zcart_bad_requests_total", "counter", "Client frames answered BAD_REQUEST.",
        (double)b->bad_requests);
    one(p, "zcart_forbidden_total", "counter", "Frames refused for their key's role or name.",
        (double)b->forbidden);
    one(p, "zcart_cart_frames_dropped_total", "counter", "Cart-side frames dropped.",
        (double)b->dropped);
}

typedef struct {
    uint64_t open, half_open, forced; /* breakers by state; forced: operator-set mode */
} brk_count_t;

static int count_breaker(const zc_cart_rec_t *c, void *arg)
{
    brk_count_t *k = arg;
    if (c->breaker.state == ZC_BRK_OPEN)
        k->open++;
    else if (c->breaker.state == ZC_BRK_HALF_OPEN)
        k->half_open++;
    if (c->breaker.mode != ZC_BRK_AUTO)
        k->forced++;
    return 0;
}

typedef struct {
    uint64_t now_us, window_us; /* liveness: heard within window */
    uint64_t live, silent;      /* cart nodes by liveness */
} node_count_t;

static int count_node(const void *key, size_t klen, void *value, void *arg)
{
    (void)key;
    (void)klen;
    node_count_t *k = arg;
    const node_info_t *ni = value;
    if (ni->last_hello_us && k->now_us - ni->last_hello_us <= k->window_us)
        k->live++;
    else
        k->silent++;
    return 0;
}

static void write_state(broker_t *b, zc_prom_t *p)
{
    zc_state_t *st = broker__state(b);
    zc_state_counts_t n;
    if (zc_state_counts(st, &n) != 0)
        memset(&n, 0, sizeof n);
    zc_prom_family(p, "zcart_carts", "gauge", "Registered carts, by state.");
    zc_prom_sample(p, "zcart_carts", (const char *[]){"state", "free", NULL}, n.free);
    zc_prom_sample(p, "zcart_carts", (const char *[]){"state", "assigned", NULL}, n.assigned);
    zc_prom_sample(p, "zcart_carts", (const char *[]){"state", "draining", NULL}, n.draining);
    zc_prom_family(p, "zcart_sessions", "gauge", "Sessions in the state, live or ended.");
    zc_prom_sample(p, "zcart_sessions", (const char *[]){"state", "live", NULL}, n.sessions_live);
    zc_prom_sample(p, "zcart_sessions", (const char *[]){"state", "ended", NULL}, n.sessions_ended);
    brk_count_t k = {0};
    zc_state_each_breaker_not_closed(st, count_breaker, &k);
    zc_prom_family(p, "zcart_breakers", "gauge", "Cart breakers by state (CLOSED: the rest).");
    zc_prom_sample(p, "zcart_breakers", (const char *[]){"state", "open", NULL}, (double)k.open);
    zc_prom_sample(p, "zcart_breakers", (const char *[]){"state", "half_open", NULL},
                   (double)k.half_open);
    zc_prom_sample(p, "zcart_breakers", (const char *[]){"state", "closed", NULL},
                   (double)(n.total - k.open - k.half_open));
    one(p, "zcart_breakers_forced", "gauge", "Breakers an operator forced open or closed.",
        (double)k.forced);
    /* Liveness is the leader's view (HELLOs reach every replica, but only
     * the leader acts on silence). */
    node_count_t nc = {zc_mono_us(), (uint64_t)b->cfg.cart_liveness_ms * 1000u, 0, 0};
    if (b->nodes)
        zc_map_each(b->nodes, count_node, &nc);
    zc_prom_family(p, "zcart_cart_nodes", "gauge",
                   "Cart nodes this replica heard of, by whether a HELLO came within --cart-liveness.");
    zc_prom_sample(p, "zcart_cart_nodes", (const char *[]){"live", "yes", NULL}, (double)nc.live);
    zc_prom_sample(p, "zcart_cart_nodes", (const char *[]){"live", "no", NULL}, (double)nc.silent);
    uint64_t used = 0, map = 0;
    zc_state_storage(st, &used, &map);
    one(p, "zcart_state_used_bytes", "gauge", "Bytes of the replicated state's LMDB map in use.",
        (double)used);
    one(p, "zcart_state_map_bytes", "gauge", "Size of that map (--state-map-size).", (double)map);
}

static void write_process(broker_t *b, zc_prom_t *p)
{
    zc_node_snapshot_stats_t ss;
    zc_node_snapshot_stats(b->node, &ss);
    one(p, "zcart_snapshots_total", "counter", "Raft snapshots taken.", (double)ss.snapshots);
    one(p, "zcart_snapshots_failed_total", "counter", "Raft snapshots that failed.",
        (double)ss.failed);
    one(p, "zcart_snapshot_build_last_seconds", "gauge", "How long the last snapshot took to build.",
        (double)ss.build_last_us / 1e6);
    one(p, "zcart_snapshot_build_max_seconds", "gauge", "The longest snapshot build.",
        (double)ss.build_max_us / 1e6);
    one(p, "zcart_snapshot_last_bytes", "gauge", "Size of the last snapshot.",
        (double)ss.bytes_last);
    zc_stallwatch_stats_t sw = {0};
    if (b->stall)
        zc_stallwatch_stats(b->stall, &sw);
    one(p, "zcart_loop_stall_max_seconds", "gauge",
        "Longest time the event loop stopped turning since start.", (double)sw.max_us / 1e6);
}

static void write_metrics(void *arg, zc_prom_t *p)
{
    broker_t *b = arg;
    write_raft(b, p);
    write_requests(b, p);
    write_state(b, p);
    write_process(b, p);
}

static bool is_ready(void *arg, char *why, size_t cap)
{
    broker_t *b = arg;
    zc_node_info_t info;
    broker__info(b, &info);
    return zc_node_info_ready(&info, b->cfg.ready_lag, why, cap);
}

static const zc_ops_fns_t broker_ops_fns = {write_metrics, is_ready};

int broker__metrics_open(broker_t *b, const char *addr, char *err, size_t errlen)
{
    b->ops = zc_ops_new(b->loop, addr, &broker_ops_fns, b, err, errlen);
    if (b->ops == NULL)
        return -1;
    zc_info("http on port %u (/metrics, /healthz, /readyz)", zc_ops_port(b->ops));
    return 0;
}

void broker__metrics_close(broker_t *b) { zc_ops_destroy(&b->ops); }
