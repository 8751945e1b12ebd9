/* config: flags and their defaults.  The --help text below is the reference
 * for every flag; keep it and the code in step. */
#include "broker/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/daemon.h"
#include "lib/flags.h"

static const char usage[] =
    "usage: zcart-broker --id N --data DIR --replica ID=RAFT_ADDR,CLIENT_EP,CART_EP [--replica ...]\n"
    "                    [options]\n"
    "       zcart-broker --dump-state --data DIR\n"
    "\n"
    "One replica of the zcart broker cluster.  Every member, this one included, is\n"
    "named by a --replica flag: its raft id, its raft address (host:port, where its\n"
    "raft relay listens: raft's messages over CurveZMQ, docs/security.md), the\n"
    "ZeroMQ endpoint clients connect to and the one cart nodes connect to.  The\n"
    "first start of a data directory bootstraps the cluster from these flags,\n"
    "unless --join is given: a replica that joins a running cluster starts empty\n"
    "and waits for `zcart admin add-node` on the leader (docs/operations.md).\n"
    "\n";

static const char usage_tail[] =
    "\n"
    "Exit status: 0 after a clean stop; 74 when a raft storage write (log append,\n"
    "truncate, snapshot, term or vote) failed, logged as `raft storage: OP failed';\n"
    "1 when raft stopped for another reason or on a start-up error; 2 on a usage error.\n";

bool broker__parse_replica(const char *spec, zc_replica_t *out)
{
    memset(out, 0, sizeof *out);
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", spec) >= (int)sizeof buf)
        return false;
    char *eq = strchr(buf, '=');
    if (eq == NULL)
        return false;
    *eq = 0;
    char *end;
    unsigned long long id = strtoull(buf, &end, 10);
    if (*buf == 0 || *end != 0 || id == 0)
        return false;
    char *raft = eq + 1, *client = strchr(raft, ','), *cart;
    if (client == NULL)
        return false;
    *client++ = 0;
    cart = strchr(client, ',');
    if (cart == NULL)
        return false;
    *cart++ = 0;
    if (!*raft || !*client || !*cart || strchr(cart, ',') || strlen(raft) > ZC_ADDR_MAX ||
        strlen(client) > ZC_ADDR_MAX || strlen(cart) > ZC_ADDR_MAX || !strchr(raft, ':'))
        return false;
    out->id = id;
    strcpy(out->raft_address, raft);
    strcpy(out->client_endpoint, client);
    strcpy(out->cart_endpoint, cart);
    return true;
}

/* The defaults of every flag: the one place they are set. */
static void config_defaults(broker_config_t *c)
{
    memset(c, 0, sizeof *c);
    c->election_timeout_ms = 300;
    c->heartbeat_timeout_ms = 50;
    c->snapshot_threshold = 8192; /* bench/README.md: 1024 costs p99 and throughput */
    c->snapshot_threshold_max = 32768; /* replication/node.c: adapt_threshold */
    c->snapshot_trailing = 1024;
    c->apply_batch = 64; /* replication/fsm.c "batching"; bench/README.md run 7 */
    c->raft_segment_size = (uint64_t)8 << 20; /* raft's own default */
    c->cart_timeout_ms = 2000;
    c->drain_retry_ms = 500;
    c->cart_liveness_ms = 3000;
    c->breaker_failures = 3;
    c->breaker_wait_ms = 1000;
    c->breaker_wait_max_ms = 30000;
    c->breaker_probes = 1;
    c->session_ttl_ms = 600000;
    c->cart_lost_ms = 60000;
    c->session_retention_ms = 3600000;
    c->state_map_size = ZC_STATE_MAP_DEFAULT;
    c->max_waiting = 4096;
    c->placement = ZC_PLACE_LEAST_LOADED;
    c->max_proposals = 1024;
    c->ready_lag = 1000;
    c->log_level = ZC_LOG_INFO;
}

/* Flag readers that are not plain numbers or strings (lib/flags.h). */
static const char *read_path(const char *arg, void *target)
{
    if (snprintf(target, BROKER_PATH_MAX, "%s", arg) >= BROKER_PATH_MAX)
        return "path too long";
    return NULL;
}

static const char *read_replica(const char *arg, void *target)
{
    broker_config_t *c = target;
    if (c->n_replicas == BROKER_MAX_REPLICAS)
        return "too many --replica flags (at most 9)";
    if (!broker__parse_replica(arg, &c->replicas[c->n_replicas]))
        return "expected ID=RAFT_HOST:PORT,CLIENT_EP,CART_EP";
    c->n_replicas++;
    return NULL;
}

static const char *read_placement(const char *arg, void *target)
{
    uint8_t *p = target;
    if (strcmp(arg, "least-loaded") == 0)
        *p = ZC_PLACE_LEAST_LOADED;
    else if (strcmp(arg, "fifo") == 0)
        *p = ZC_PLACE_FIFO;
    else
        return "least-loaded or fifo";
    return NULL;
}

/* The flag table: the reference for every flag, --help included. */
#define FLAGS(c)                                                                                   \
    {"id", "N", ZC_FLAG_U64, &(c)->id, 1, 1000000, NULL,                                           \
     "this replica's raft id (must appear in a --replica)"},                                       \
    {"data", "DIR", ZC_FLAG_CALL, (c)->data_dir, 0, 0, read_path,                                  \
     "data directory (raft log in DIR/raft, state in DIR/state)"},                                 \
    {"replica", "SPEC", ZC_FLAG_CALL, (c), 0, 0, read_replica,                                     \
     "ID=RAFT_ADDR,CLIENT_EP,CART_EP (repeat per member)"},                                        \
    {"election-timeout", "MS", ZC_FLAG_UINT, &(c)->election_timeout_ms, 20, 600000, NULL,          \
     "raft election timeout, randomized 1x..2x (default 300)"},                                    \
    {"heartbeat-timeout", "MS", ZC_FLAG_UINT, &(c)->heartbeat_timeout_ms, 5, 60000, NULL,          \
     "raft heartbeat interval (default 50)"},                                                      \
    {"snapshot-threshold", "N", ZC_FLAG_UINT, &(c)->snapshot_threshold, 2, 100000000, NULL,        \
     "raft entries between snapshots, at least (default 8192)"},                                   \
    {"snapshot-threshold-max", "N", ZC_FLAG_UINT, &(c)->snapshot_threshold_max, 2, 100000000,      \
     NULL,                                                                                         \
     "at most: the threshold grows with the state, entries making half its bytes\n"                \
     "(default 32768; at or below --snapshot-threshold: fixed)"},                                  \
    {"apply-batch", "N", ZC_FLAG_UINT, &(c)->apply_batch, 1, 4096, NULL,                             \
     "applied entries per state commit at most; the rest commit when the\n"                     \
     "event loop's turn ends (default 64; 1: every entry alone)"},                                \
    {"snapshot-trailing", "N", ZC_FLAG_UINT, &(c)->snapshot_trailing, 0, 100000000, NULL,          \
     "raft entries kept after a snapshot (default 1024)"},                                         \
    {"raft-segment-size", "BYTES", ZC_FLAG_SIZE, &(c)->raft_segment_size, (uint64_t)64 << 10,      \
     (uint64_t)1 << 30, NULL,                                                                      \
     "raft log segment, allocated whole (suffix K, M or G;\n"                                      \
     "64K..1G, a multiple of 4K, default 8M)"},                                                    \
    {"cart-timeout", "MS", ZC_FLAG_UINT, &(c)->cart_timeout_ms, 10, 600000, NULL,                  \
     "how long a request may wait for its cart or for a\n"                                         \
     "commit before it is answered KO (default 2000)"},                                            \
    {"drain-retry", "MS", ZC_FLAG_UINT, &(c)->drain_retry_ms, 10, 600000, NULL,                    \
     "resend RESET to a draining cart after MS (default 500)"},                                    \
    {"cart-liveness", "MS", ZC_FLAG_UINT, &(c)->cart_liveness_ms, 50, 600000, NULL,                \
     "a cart node not heard (HELLO) for MS trips its carts'\n"                                     \
     "breakers (default 3000)"},                                                                   \
    {"breaker-failures", "K", ZC_FLAG_UINT, &(c)->breaker_failures, 1, 1000, NULL,                 \
     "consecutive failed or timed-out operations that trip a\n"                                    \
     "cart's breaker (default 3)"},                                                                \
    {"breaker-wait", "MS", ZC_FLAG_UINT, &(c)->breaker_wait_ms, 10, 3600000, NULL,                 \
     "OPEN wait before HALF_OPEN; doubles per repeated trip\n"                                     \
     "(default 1000)"},                                                                            \
    {"breaker-wait-max", "MS", ZC_FLAG_UINT, &(c)->breaker_wait_max_ms, 10, 3600000, NULL,         \
     "cap of that wait (default 30000)"},                                                          \
    {"breaker-probes", "N", ZC_FLAG_UINT, &(c)->breaker_probes, 1, 1000, NULL,                     \
     "requests a HALF_OPEN breaker lets through (default 1)"},                                     \
    {"session-ttl", "MS", ZC_FLAG_UINT, &(c)->session_ttl_ms, 1000, 86400000, NULL,                \
     "a session with no request for MS expires: its cart is\n"                                     \
     "emptied and freed (1000..86400000, default 600000)"},                                        \
    {"session-retention", "MS", ZC_FLAG_UINT, &(c)->session_retention_ms, 1000, 4000000000u, NULL, \
     "an ended (closed or expired) session is forgotten MS\n"                                      \
     "after it ended; until then its requests get\n"                                               \
     "SESSION_CLOSED/SESSION_EXPIRED, afterwards its id is\n"                                      \
     "unknown again (1000..4000000000, default 3600000:\n"                                         \
     "far longer than any client retry)"},                                                         \
    {"cart-lost-after", "MS", ZC_FLAG_UINT, &(c)->cart_lost_ms, 500, 86400000, NULL,               \
     "a cart node silent for MS is lost: its sessions move to\n"                                   \
     "fresh carts and are told CART_LOST (default 60000)"},                                        \
    {"state-map-size", "BYTES", ZC_FLAG_SIZE, &(c)->state_map_size, (uint64_t)256 << 10,           \
     (uint64_t)1024 << 30, NULL,                                                                   \
     "LMDB map of the replicated state (suffix K, M or G;\n"                                       \
     "256K..1024G, default 2G).  New sessions are refused\n"                                       \
     "STORAGE_FULL once sessions + carts reach BYTES/512\n"                                        \
     "records (half the map at most), so existing sessions\n"                                      \
     "always fit; give every replica the same value"},                                             \
    {"placement", "least-loaded|fifo", ZC_FLAG_CALL, &(c)->placement, 0, 0, read_placement,        \
     "which free cart a new session gets: one on the cart\n"                                       \
     "node with the fewest assigned carts among those with\n"                                      \
     "a free cart whose breaker is CLOSED (ties: free-list\n"                                      \
     "order), or the free list's head (default least-loaded)"},                                    \
    {"max-waiting", "N", ZC_FLAG_UINT, &(c)->max_waiting, 16, 1000000, NULL,                       \
     "client requests the leader works on at once (waiting\n"                                      \
     "for a commit, a node or a cart); more are answered\n"                                        \
     "BUSY with a retry hint (16..1000000, default 4096)"},                                        \
    {"max-proposals", "N", ZC_FLAG_UINT, &(c)->max_proposals, 1, 1000000, NULL,                    \
     "of those, requests waiting for their own raft entry\n"                                       \
     "(first add, close, CART_LOST, probe); more are\n"                                            \
     "answered BUSY (1..1000000, default 1024)"},                                                  \
    {"cert", "FILE", ZC_FLAG_CALL, (c)->cert, 0, 0, read_path,                                     \
     "this replica's secret certificate (KEYS/replica.cert_secret\n"                               \
     "from `zcart keygen`); every replica may share one"},                                         \
    {"allow", "DIR", ZC_FLAG_CALL, (c)->allow, 0, 0, read_path,                                    \
     "allow-list: public certificates by role (KEYS/allow); the\n"                                 \
     "client port admits client, admin and replica keys, the\n"                                    \
     "cart port cart keys, a cart node only under its own name,\n"                                 \
     "the raft port (RAFT_ADDR: raft's messages, relayed over\n"                                   \
     "CurveZMQ) replica keys only"},                                                               \
    {"raft-cert", "FILE", ZC_FLAG_CALL, (c)->raft_cert, 0, 0, read_path,                           \
     "this replica's own raft key (KEYS/raft-ID.cert_secret from\n"                                \
     "`zcart keygen --replicas N`: role raft, name its --id).\n"                                   \
     "With it the raft port admits raft keys only and takes a\n"                                   \
     "raft message only as from the id its key names; give it\n"                                   \
     "to every replica of the cluster or to none"},                                                \
    {"insecure", NULL, ZC_FLAG_BOOL, &(c)->insecure, 0, 0, NULL,                                   \
     "no CurveZMQ and no key checks, the raft port included:\n"                                    \
     "anyone who reaches a port owns the cluster; for\n"                                           \
     "experiments only (logged loudly)"},                                                          \
    {"http", "HOST:PORT", ZC_FLAG_CALL, (c)->http, 0, 0, read_path,                                \
     "serve /metrics (Prometheus), /healthz and /readyz over\n"                                   \
     "HTTP (docs/operations.md); PORT 0 picks a free one"},                                        \
    {"backup-dir", "DIR", ZC_FLAG_CALL, (c)->backup_dir, 0, 0, read_path,                          \
     "where `zcart admin backup NAME` writes, as DIR/NAME\n"                                       \
     "(default DATA/backups)"},                                                                    \
    {"restore", "BACKUP", ZC_FLAG_CALL, (c)->restore, 0, 0, read_path,                             \
     "seed an EMPTY --data DIR from backup directory BACKUP and\n"                                \
     "exit; every replica of the new cluster is restored from\n"                                  \
     "the same backup before its first start (docs/operations.md)"},                               \
    {"ready-lag", "N", ZC_FLAG_UINT, &(c)->ready_lag, 0, 100000000, NULL,                          \
     "/readyz: a follower is ready while it knows a leader and\n"                                 \
     "has applied all but at most N of the entries the leader\n"                                  \
     "announced committed (default 1000)"},                                                        \
    {"recover", NULL, ZC_FLAG_BOOL, &(c)->recover, 0, 0, NULL,                                     \
     "permanent quorum loss only: start with a raft configuration\n"                             \
     "of exactly the --replica members given (the survivors),\n"                                 \
     "forced into the log; what only the lost replicas held is\n"                                 \
     "lost (docs/operations.md)"},                                                                 \
    {"join", NULL, ZC_FLAG_BOOL, &(c)->join, 0, 0, NULL,                                           \
     "join an existing cluster instead of bootstrapping"},                                         \
    ZC_DAEMON_FLAG_LOG_LEVEL(&(c)->log_level),                                                     \
    {"dump-state", NULL, ZC_FLAG_BOOL, &(c)->dump_state, 0, 0, NULL,                               \
     "print the replicated state in DIR/state (applied index,\n"                                   \
     "digest, carts, free list, sessions) as one JSON object\n"                                    \
     "and exit; read-only, for a stopped replica's data\n"                                         \
     "(exit 1 if DIR holds no readable state)"},                                                   \
    ZC_FLAGS_END

static void print_usage(FILE *out, const zc_flag_t *flags)
{
    fputs(usage, out);
    zc_flags_help(out, flags);
    fputs(usage_tail, out);
}

/* Cross-flag rules; NULL, or what is wrong. */
static const char *config_invalid(const broker_config_t *c)
{
    if (c->recover && c->join)
        return "--recover and --join exclude each other";
    if (c->id == 0 || c->data_dir[0] == 0 || c->n_replicas == 0)
        return "--id, --data and at least one --replica are required";
    bool self = false;
    for (unsigned i = 0; i < c->n_replicas; i++) {
        self |= c->replicas[i].id == c->id;
        for (unsigned j = 0; j < i; j++)
            if (c->replicas[i].id == c->replicas[j].id)
                return "a replica id is given twice";
    }
    if (!self)
        return "--id has no --replica";
    if (!c->insecure && (c->cert[0] == 0 || c->allow[0] == 0))
        return "secure by default: give --cert FILE and --allow DIR (`zcart keygen`), or --insecure";
    if (c->heartbeat_timeout_ms >= c->election_timeout_ms)
        return "--heartbeat-timeout must be below --election-timeout";
    if (c->cart_lost_ms < c->cart_liveness_ms)
        return "--cart-lost-after must be at least --cart-liveness";
    if (c->breaker_wait_max_ms < c->breaker_wait_ms)
        return "--breaker-wait-max must be at least --breaker-wait";
    if (c->raft_segment_size % 4096 != 0)
        return "--raft-segment-size must be a multiple of 4K";
    return NULL;
}

int broker__config_parse(broker_config_t *c, int argc, char **argv)
{
    const zc_flag_t flags[] = {FLAGS(c)};
    char err[300];
    config_defaults(c);
    switch (zc_flags_parse(flags, argc, argv, err, sizeof err)) {
    case ZC_FLAGS_HELP:
        print_usage(stdout, flags);
        return 1;
    case ZC_FLAGS_ERROR:
        fprintf(stderr, "zcart-broker: %s\n", err);
        return 2;
    case ZC_FLAGS_OK:
        break;
    }
    if (c->dump_state || c->restore[0]) {
        if (c->data_dir[0] == 0) {
            fprintf(stderr, "zcart-broker: %s needs --data DIR\n",
                    c->dump_state ? "--dump-state" : "--restore");
            return 2;
        }
        return 0; /* nothing else is used */
    }
    if (c->backup_dir[0] == 0 &&
        snprintf(c->backup_dir, sizeof c->backup_dir, "%s/backups", c->data_dir) >=
            (int)sizeof c->backup_dir) {
        fprintf(stderr, "zcart-broker: --data path too long\n");
        return 2;
    }
    const char *why = config_invalid(c);
    if (why != NULL) {
        fprintf(stderr, "zcart-broker: %s\n", why);
        return 2;
    }
    return 0;
}
