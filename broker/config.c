/* config: flags and their defaults.  The --help text below is the reference
 * for every flag; keep it and the code in step. */
#include "broker/config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    "\n"
    "  --id N                    this replica's raft id (must appear in a --replica)\n"
    "  --data DIR                data directory (raft log in DIR/raft, state in DIR/state)\n"
    "  --replica SPEC            ID=RAFT_ADDR,CLIENT_EP,CART_EP (repeat per member)\n"
    "  --election-timeout MS     raft election timeout, randomized 1x..2x (default 300)\n"
    "  --heartbeat-timeout MS    raft heartbeat interval (default 50)\n"
    "  --snapshot-threshold N    raft entries between snapshots (default 8192)\n"
    "  --snapshot-trailing N     raft entries kept after a snapshot (default 1024)\n"
    "  --cart-timeout MS         how long a request may wait for its cart or for a\n"
    "                            commit before it is answered KO (default 2000)\n"
    "  --drain-retry MS          resend RESET to a draining cart after MS (default 500)\n"
    "  --cart-liveness MS        a cart node not heard (HELLO) for MS trips its carts'\n"
    "                            breakers (default 3000)\n"
    "  --breaker-failures K      consecutive failed or timed-out operations that trip a\n"
    "                            cart's breaker (default 3)\n"
    "  --breaker-wait MS         OPEN wait before HALF_OPEN; doubles per repeated trip\n"
    "                            (default 1000)\n"
    "  --breaker-wait-max MS     cap of that wait (default 30000)\n"
    "  --breaker-probes N        requests a HALF_OPEN breaker lets through (default 1)\n"
    "  --session-ttl MS          a session with no request for MS expires: its cart is\n"
    "                            emptied and freed (1000..86400000, default 600000)\n"
    "  --session-retention MS    an ended (closed or expired) session is forgotten MS\n"
    "                            after it ended; until then its requests get\n"
    "                            SESSION_CLOSED/SESSION_EXPIRED, afterwards its id is\n"
    "                            unknown again (1000..4000000000, default 3600000:\n"
    "                            far longer than any client retry)\n"
    "  --cart-lost-after MS      a cart node silent for MS is lost: its sessions move to\n"
    "                            fresh carts and are told CART_LOST (default 60000)\n"
    "  --state-map-size BYTES    LMDB map of the replicated state (suffix K, M or G;\n"
    "                            256K..1024G, default 2G).  New sessions are refused\n"
    "                            STORAGE_FULL once sessions + carts reach BYTES/512\n"
    "                            records (half the map at most), so existing sessions\n"
    "                            always fit; give every replica the same value\n"
    "  --placement least-loaded|fifo\n"
    "                            which free cart a new session gets: one on the cart\n"
    "                            node with the fewest assigned carts among those with\n"
    "                            a free cart whose breaker is CLOSED (ties: free-list\n"
    "                            order), or the free list's head (default least-loaded)\n"
    "  --max-waiting N           client requests the leader works on at once (waiting\n"
    "                            for a commit, a node or a cart); more are answered\n"
    "                            BUSY with a retry hint (16..1000000, default 4096)\n"
    "  --max-proposals N         of those, requests waiting for their own raft entry\n"
    "                            (first add, close, CART_LOST, probe); more are\n"
    "                            answered BUSY (1..1000000, default 1024)\n"
    "  --cert FILE               this replica's secret certificate (KEYS/replica.cert_secret\n"
    "                            from `zcart keygen`); every replica may share one\n"
    "  --allow DIR               allow-list: public certificates by role (KEYS/allow); the\n"
    "                            client port admits client, admin and replica keys, the\n"
    "                            cart port cart keys, a cart node only under its own name,\n"
    "                            the raft port (RAFT_ADDR: raft's messages, relayed over\n"
    "                            CurveZMQ) replica keys only\n"
    "  --insecure                no CurveZMQ and no key checks, the raft port included:\n"
    "                            anyone who reaches a port owns the cluster; for\n"
    "                            experiments only (logged loudly)\n"
    "  --join                    join an existing cluster instead of bootstrapping\n"
    "  --log-level LEVEL         debug, info, warn or error (default info)\n"
    "  --dump-state              print the replicated state in DIR/state (applied index,\n"
    "                            digest, carts, free list, sessions) as one JSON object\n"
    "                            and exit; read-only, for a stopped replica's data\n"
    "                            (exit 1 if DIR holds no readable state)\n"
    "  --help                    print this text\n"
    "\n"
    "Exit status: 0 after a clean stop; 74 when a raft storage write (log append,\n"
    "truncate, snapshot, term or vote) failed, logged as `raft storage: OP failed';\n"
    "1 when raft stopped for another reason or on a start-up error; 2 on a usage error.\n";

bool broker_parse_replica(const char *spec, zc_replica_t *out)
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

bool zc_parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == 0 || *s == '-' || end == s)
        return false;
    unsigned shift = 0;
    if (*end == 'K' || *end == 'k')
        shift = 10;
    else if (*end == 'M' || *end == 'm')
        shift = 20;
    else if (*end == 'G' || *end == 'g')
        shift = 30;
    if (shift)
        end++;
    if (*end != 0 || v > (max >> shift))
        return false;
    v <<= shift;
    if (v < min || v > max)
        return false;
    *out = v;
    return true;
}

static bool parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (*s == 0 || *end != 0 || v < min || v > max)
        return false;
    *out = (unsigned)v;
    return true;
}

int broker_config_parse(broker_config_t *c, int argc, char **argv)
{
    enum { O_ID = 1, O_DATA, O_REPLICA, O_ELECTION, O_HEARTBEAT, O_SNAP_T, O_SNAP_TR, O_CART_TO,
           O_DRAIN, O_LOG, O_JOIN, O_HELP, O_LIVENESS, O_BRK_FAIL, O_BRK_WAIT, O_BRK_WAIT_MAX,
           O_BRK_PROBES, O_TTL, O_LOST, O_DUMP, O_RETENTION, O_MAP, O_MAX_WAIT, O_MAX_PROP,
           O_PLACEMENT, O_CERT, O_ALLOW, O_INSECURE };
    static const struct option opts[] = {
        {"id", required_argument, NULL, O_ID},
        {"data", required_argument, NULL, O_DATA},
        {"replica", required_argument, NULL, O_REPLICA},
        {"election-timeout", required_argument, NULL, O_ELECTION},
        {"heartbeat-timeout", required_argument, NULL, O_HEARTBEAT},
        {"snapshot-threshold", required_argument, NULL, O_SNAP_T},
        {"snapshot-trailing", required_argument, NULL, O_SNAP_TR},
        {"cart-timeout", required_argument, NULL, O_CART_TO},
        {"drain-retry", required_argument, NULL, O_DRAIN},
        {"cart-liveness", required_argument, NULL, O_LIVENESS},
        {"breaker-failures", required_argument, NULL, O_BRK_FAIL},
        {"breaker-wait", required_argument, NULL, O_BRK_WAIT},
        {"breaker-wait-max", required_argument, NULL, O_BRK_WAIT_MAX},
        {"breaker-probes", required_argument, NULL, O_BRK_PROBES},
        {"session-ttl", required_argument, NULL, O_TTL},
        {"cart-lost-after", required_argument, NULL, O_LOST},
        {"session-retention", required_argument, NULL, O_RETENTION},
        {"state-map-size", required_argument, NULL, O_MAP},
        {"max-waiting", required_argument, NULL, O_MAX_WAIT},
        {"placement", required_argument, NULL, O_PLACEMENT},
        {"max-proposals", required_argument, NULL, O_MAX_PROP},
        {"log-level", required_argument, NULL, O_LOG},
        {"join", no_argument, NULL, O_JOIN},
        {"cert", required_argument, NULL, O_CERT},
        {"allow", required_argument, NULL, O_ALLOW},
        {"insecure", no_argument, NULL, O_INSECURE},
        {"dump-state", no_argument, NULL, O_DUMP},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    memset(c, 0, sizeof *c);
    c->election_timeout_ms = 300;
    c->heartbeat_timeout_ms = 50;
    c->snapshot_threshold = 8192; /* bench/README.md: 1024 costs p99 and throughput */
    c->snapshot_trailing = 1024;
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
    c->log_level = ZC_LOG_INFO;
    unsigned id = 0;
    int o;
    opterr = 0;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        const char *bad = NULL;
        switch (o) {
        case O_ID:
            if (!parse_uint(optarg, 1, 1000000, &id))
                bad = "--id wants a positive integer";
            c->id = id;
            break;
        case O_DATA:
            if (snprintf(c->data_dir, sizeof c->data_dir, "%s", optarg) >= (int)sizeof c->data_dir)
                bad = "--data path too long";
            break;
        case O_REPLICA:
            if (c->n_replicas == BROKER_MAX_REPLICAS)
                bad = "too many --replica flags (at most 9)";
            else if (!broker_parse_replica(optarg, &c->replicas[c->n_replicas++]))
                bad = "--replica wants ID=RAFT_HOST:PORT,CLIENT_EP,CART_EP";
            break;
        case O_ELECTION:
            if (!parse_uint(optarg, 20, 600000, &c->election_timeout_ms))
                bad = "--election-timeout wants 20..600000 ms";
            break;
        case O_HEARTBEAT:
            if (!parse_uint(optarg, 5, 60000, &c->heartbeat_timeout_ms))
                bad = "--heartbeat-timeout wants 5..60000 ms";
            break;
        case O_SNAP_T:
            if (!parse_uint(optarg, 2, 100000000, &c->snapshot_threshold))
                bad = "--snapshot-threshold wants an integer >= 2";
            break;
        case O_SNAP_TR:
            if (!parse_uint(optarg, 0, 100000000, &c->snapshot_trailing))
                bad = "--snapshot-trailing wants an integer";
            break;
        case O_CART_TO:
            if (!parse_uint(optarg, 10, 600000, &c->cart_timeout_ms))
                bad = "--cart-timeout wants 10..600000 ms";
            break;
        case O_DRAIN:
            if (!parse_uint(optarg, 10, 600000, &c->drain_retry_ms))
                bad = "--drain-retry wants 10..600000 ms";
            break;
        case O_LIVENESS:
            if (!parse_uint(optarg, 50, 600000, &c->cart_liveness_ms))
                bad = "--cart-liveness wants 50..600000 ms";
            break;
        case O_BRK_FAIL:
            if (!parse_uint(optarg, 1, 1000, &c->breaker_failures))
                bad = "--breaker-failures wants 1..1000";
            break;
        case O_BRK_WAIT:
            if (!parse_uint(optarg, 10, 3600000, &c->breaker_wait_ms))
                bad = "--breaker-wait wants 10..3600000 ms";
            break;
        case O_BRK_WAIT_MAX:
            if (!parse_uint(optarg, 10, 3600000, &c->breaker_wait_max_ms))
                bad = "--breaker-wait-max wants 10..3600000 ms";
            break;
        case O_BRK_PROBES:
            if (!parse_uint(optarg, 1, 1000, &c->breaker_probes))
                bad = "--breaker-probes wants 1..1000";
            break;
        case O_TTL:
            if (!parse_uint(optarg, 1000, 86400000, &c->session_ttl_ms))
                bad = "--session-ttl wants 1000..86400000 ms";
            break;
        case O_LOST:
            if (!parse_uint(optarg, 500, 86400000, &c->cart_lost_ms))
                bad = "--cart-lost-after wants 500..86400000 ms";
            break;
        case O_RETENTION:
            if (!parse_uint(optarg, 1000, 4000000000u, &c->session_retention_ms))
                bad = "--session-retention wants 1000..4000000000 ms";
            break;
        case O_MAP:
            if (!zc_parse_size(optarg, (uint64_t)256 << 10, (uint64_t)1024 << 30, &c->state_map_size))
                bad = "--state-map-size wants 256K..1024G (bytes, or with K, M or G)";
            break;
        case O_PLACEMENT:
            if (strcmp(optarg, "least-loaded") == 0)
                c->placement = ZC_PLACE_LEAST_LOADED;
            else if (strcmp(optarg, "fifo") == 0)
                c->placement = ZC_PLACE_FIFO;
            else
                bad = "--placement wants least-loaded or fifo";
            break;
        case O_MAX_WAIT:
            if (!parse_uint(optarg, 16, 1000000, &c->max_waiting))
                bad = "--max-waiting wants 16..1000000";
            break;
        case O_MAX_PROP:
            if (!parse_uint(optarg, 1, 1000000, &c->max_proposals))
                bad = "--max-proposals wants 1..1000000";
            break;
        case O_LOG:
            if (!zc_log_parse_level(optarg, &c->log_level))
                bad = "--log-level wants debug, info, warn or error";
            break;
        case O_JOIN:
            c->join = true;
            break;
        case O_DUMP:
            c->dump_state = true;
            break;
        case O_CERT:
            if (snprintf(c->cert, sizeof c->cert, "%s", optarg) >= (int)sizeof c->cert)
                bad = "--cert path too long";
            break;
        case O_ALLOW:
            if (snprintf(c->allow, sizeof c->allow, "%s", optarg) >= (int)sizeof c->allow)
                bad = "--allow path too long";
            break;
        case O_INSECURE:
            c->insecure = true;
            break;
        case O_HELP:
            fputs(usage, stdout);
            return 1;
        default:
            fprintf(stderr, "zcart-broker: unknown or incomplete option '%s'\n%s", argv[optind - 1],
                    usage);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "zcart-broker: %s (got '%s')\n", bad, optarg);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "zcart-broker: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (c->dump_state) {
        if (c->data_dir[0] == 0) {
            fprintf(stderr, "zcart-broker: --dump-state needs --data DIR\n");
            return 2;
        }
        return 0; /* nothing else is used */
    }
    if (c->id == 0 || c->data_dir[0] == 0 || c->n_replicas == 0) {
        fprintf(stderr, "zcart-broker: --id, --data and at least one --replica are required\n%s",
                usage);
        return 2;
    }
    bool self = false;
    for (unsigned i = 0; i < c->n_replicas; i++) {
        self |= c->replicas[i].id == c->id;
        for (unsigned j = 0; j < i; j++)
            if (c->replicas[i].id == c->replicas[j].id) {
                fprintf(stderr, "zcart-broker: replica id %llu given twice\n",
                        (unsigned long long)c->replicas[i].id);
                return 2;
            }
    }
    if (!self) {
        fprintf(stderr, "zcart-broker: --id %llu has no --replica\n", (unsigned long long)c->id);
        return 2;
    }
    if (!c->insecure && (c->cert[0] == 0 || c->allow[0] == 0)) {
        fprintf(stderr, "zcart-broker: secure by default: give --cert FILE and --allow DIR "
                        "(`zcart keygen`), or --insecure\n");
        return 2;
    }
    if (c->heartbeat_timeout_ms >= c->election_timeout_ms) {
        fprintf(stderr, "zcart-broker: --heartbeat-timeout must be below --election-timeout\n");
        return 2;
    }
    if (c->cart_lost_ms < c->cart_liveness_ms) {
        fprintf(stderr, "zcart-broker: --cart-lost-after must be at least --cart-liveness\n");
        return 2;
    }
    if (c->breaker_wait_max_ms < c->breaker_wait_ms) {
        fprintf(stderr, "zcart-broker: --breaker-wait-max must be at least --breaker-wait\n");
        return 2;
    }
    return 0;
}
