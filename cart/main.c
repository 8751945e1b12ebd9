/* zcart-cart: a cart node hosting --slots cart slots. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cart/dump.h"
#include "cart/node.h"
#include "lib/log.h"
#include "lib/zsec.h"
#include "proto/msg.h"

static const char usage[] =
    "usage: zcart-cart --name NODE --slots N --data DIR --brokers EP[,EP...]\n"
    "                  --stock EP[,EP...] [options]\n"
    "       zcart-cart --dump-state --data DIR --slots N [--name NODE]\n"
    "\n"
    "A cart node: hosts carts NODE.0 .. NODE.(N-1), keeps their contents and\n"
    "per-session dedup records durably in LMDB, and asks the stock service\n"
    "before every add (several checks in flight at once).  It connects to the\n"
    "cart endpoint of EVERY broker replica and registers with the cluster.\n"
    "\n"
    "Checks go round-robin to the stock instances that are connected and whose\n"
    "breaker is closed.  K failed checks in a row open an instance's breaker:\n"
    "checks skip it, and when no instance is left an add is answered\n"
    "STOCK_UNAVAILABLE at once.  After the open wait one probe check goes\n"
    "through; its answer closes the breaker, its failure reopens it.  A timed-out\n"
    "check is answered STOCK_TIMEOUT, not retried elsewhere.\n"
    "\n"
    "  --name NODE           node name, 1..32 of [A-Za-z0-9_-]; carts are NODE.SLOT\n"
    "  --slots N             cart slots to host, 1..1024\n"
    "  --data DIR            LMDB directory (contents survive restarts)\n"
    "  --brokers EP,...      cart endpoints of all broker replicas\n"
    "  --stock EP,...        stock service endpoints (checks spread over them)\n"
    "  --stock-timeout MS    per-check timeout -> STOCK_TIMEOUT (default 1000); keep it\n"
    "                        below the brokers' --cart-timeout\n"
    "  --stock-failures K    failed checks in a row (timed out or INTERNAL) that open a\n"
    "                        stock instance's breaker (default 3)\n"
    "  --stock-open-ms MS    how long an open breaker keeps checks off its instance\n"
    "                        before one probe check goes through (default 1000); the\n"
    "                        wait doubles each time the probe fails\n"
    "  --stock-open-max-ms MS  cap of that doubling wait (default 8000)\n"
    "  --hello-interval MS   HELLO/heartbeat period to every replica (default 1000)\n"
    "  --broker-liveness MS  a replica that sent nothing (heartbeat, request) for MS is\n"
    "                        reconnected and sent a HELLO (default 3 hello intervals)\n"
    "  --map-size BYTES      LMDB map of the store (suffix K, M or G; 256K..1024G,\n"
    "                        default 1G).  Adds are refused STORAGE_FULL past 70%\n"
    "                        of it, removes past 90%; lists and resets always work.\n"
    "                        A slot's dedup records take at most 128 KiB, so about\n"
    "                        slots x 150 KiB is the most a node ever needs\n"
    "  --cert FILE           this node's secret certificate (KEYS/NODE.cert_secret from\n"
    "                        `zcart keygen`: role cart, name NODE)\n"
    "  --broker-key KEY      the replicas' public key: 40 z85 characters or a certificate\n"
    "                        file (KEYS/replica.cert)\n"
    "  --stock-key KEY       the stock service's public key (KEYS/stock.cert)\n"
    "  --insecure            no CurveZMQ: for experiments only (logged loudly)\n"
    "  --log-level LEVEL     debug, info, warn or error (default info)\n"
    "  --dump-state          print slots 0..N-1 of the store in DIR (owner, generation,\n"
    "                        reset generation, items) as one JSON object and exit;\n"
    "                        read-only, for a stopped node's data (exit 1 if DIR holds\n"
    "                        no readable store); --name only labels the output\n"
    "  --help                print this text\n";

static cart_node_t *node;
static uv_signal_t sigint_h, sigterm_h;

static void on_signal(uv_signal_t *s, int signum)
{
    (void)s;
    (void)signum;
    zc_info("shutting down");
    cart_node_destroy(&node);
    uv_close((uv_handle_t *)&sigint_h, NULL);
    uv_close((uv_handle_t *)&sigterm_h, NULL);
}

static bool parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (*s == 0 || *end != 0 || v < lo || v > hi)
        return false;
    *out = (unsigned)v;
    return true;
}

static bool parse_size(const char *s, uint64_t lo, uint64_t hi, size_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    unsigned shift = *end == 'K' || *end == 'k'   ? 10
                     : *end == 'M' || *end == 'm' ? 20
                     : *end == 'G' || *end == 'g' ? 30
                                                  : 0;
    if (*s == 0 || *s == '-' || end == s)
        return false;
    if (shift)
        end++;
    if (*end != 0 || v > (hi >> shift) || (v << shift) < lo)
        return false;
    *out = (size_t)(v << shift);
    return true;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"name", required_argument, NULL, 'n'},          {"slots", required_argument, NULL, 's'},
        {"data", required_argument, NULL, 'd'},          {"brokers", required_argument, NULL, 'b'},
        {"stock", required_argument, NULL, 'k'},         {"stock-timeout", required_argument, NULL, 't'},
        {"hello-interval", required_argument, NULL, 'i'}, {"log-level", required_argument, NULL, 'l'},
        {"stock-failures", required_argument, NULL, 'F'}, {"stock-open-ms", required_argument, NULL, 'O'},
        {"stock-open-max-ms", required_argument, NULL, 'M'},
        {"broker-liveness", required_argument, NULL, 'L'},
        {"dump-state", no_argument, NULL, 'D'},
        {"map-size", required_argument, NULL, 'm'},
        {"cert", required_argument, NULL, 'C'},          {"broker-key", required_argument, NULL, 'B'},
        {"stock-key", required_argument, NULL, 'K'},     {"insecure", no_argument, NULL, 'I'},
        {"help", no_argument, NULL, 'h'},                {NULL, 0, NULL, 0},
    };
    cart_config_t cfg = {.stock_timeout_ms = 1000,
                         .stock_failures = 3,
                         .stock_open_ms = 1000,
                         .stock_open_max_ms = 8000,
                         .hello_interval_ms = 1000};
    zc_log_level_t level = ZC_LOG_INFO;
    bool dump = false, insecure = false;
    const char *cert = NULL, *broker_key = NULL, *stock_key = NULL;
    int o;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        const char *bad = NULL;
        switch (o) {
        case 'n':
            cfg.name = optarg;
            if (!zc_node_name_valid(optarg))
                bad = "--name wants 1..32 of [A-Za-z0-9_-]";
            break;
        case 's':
            if (!parse_uint(optarg, 1, 1024, &cfg.slots))
                bad = "--slots wants 1..1024";
            break;
        case 'd': cfg.data_dir = optarg; break;
        case 'b': cfg.brokers = optarg; break;
        case 'k': cfg.stock = optarg; break;
        case 't':
            if (!parse_uint(optarg, 1, 600000, &cfg.stock_timeout_ms))
                bad = "--stock-timeout wants 1..600000 ms";
            break;
        case 'F':
            if (!parse_uint(optarg, 1, 1000, &cfg.stock_failures))
                bad = "--stock-failures wants 1..1000";
            break;
        case 'O':
            if (!parse_uint(optarg, 1, 600000, &cfg.stock_open_ms))
                bad = "--stock-open-ms wants 1..600000 ms";
            break;
        case 'M':
            if (!parse_uint(optarg, 1, 3600000, &cfg.stock_open_max_ms))
                bad = "--stock-open-max-ms wants 1..3600000 ms";
            break;
        case 'i':
            if (!parse_uint(optarg, 10, 600000, &cfg.hello_interval_ms))
                bad = "--hello-interval wants 10..600000 ms";
            break;
        case 'L':
            if (!parse_uint(optarg, 30, 3600000, &cfg.broker_liveness_ms))
                bad = "--broker-liveness wants 30..3600000 ms";
            break;
        case 'l':
            if (!zc_log_parse_level(optarg, &level))
                bad = "--log-level wants debug, info, warn or error";
            break;
        case 'D': dump = true; break;
        case 'm':
            if (!parse_size(optarg, (uint64_t)256 << 10, (uint64_t)1024 << 30, &cfg.map_size))
                bad = "--map-size wants 256K..1024G (bytes, or with K, M or G)";
            break;
        case 'C': cert = optarg; break;
        case 'B': broker_key = optarg; break;
        case 'K': stock_key = optarg; break;
        case 'I': insecure = true; break;
        case 'h': fputs(usage, stdout); return 0;
        default:
            fprintf(stderr, "zcart-cart: unknown or incomplete option '%s'\n%s", argv[optind - 1],
                    usage);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "zcart-cart: %s (got '%s')\n", bad, optarg);
            return 2;
        }
    }
    if (dump) {
        if (optind < argc || !cfg.data_dir || !cfg.slots) {
            fprintf(stderr, "zcart-cart: --dump-state needs --data DIR and --slots N\n");
            return 2;
        }
        return cart_dump_state(cfg.data_dir, cfg.slots, cfg.name);
    }
    if (optind < argc || !cfg.name || !cfg.slots || !cfg.data_dir || !cfg.brokers || !cfg.stock) {
        fprintf(stderr, "zcart-cart: --name, --slots, --data, --brokers and --stock are required\n%s",
                usage);
        return 2;
    }
    if (cfg.stock_open_max_ms < cfg.stock_open_ms) {
        fprintf(stderr, "zcart-cart: --stock-open-max-ms (%u) is below --stock-open-ms (%u)\n",
                cfg.stock_open_max_ms, cfg.stock_open_ms);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    zc_log_set_name(cfg.name);
    zc_log_threshold = level;
    uv_loop_t *loop = uv_default_loop();
    char err[512], bkey[ZC_KEY_Z85], skey[ZC_KEY_Z85];
    if (!insecure && (cert == NULL || broker_key == NULL || stock_key == NULL)) {
        fprintf(stderr, "zcart-cart: secure by default: give --cert, --broker-key and --stock-key "
                        "(`zcart keygen`), or --insecure\n");
        return 2;
    }
    if (!insecure && (zc_sec_key_arg(broker_key, bkey, err, sizeof err) != 0 ||
                      zc_sec_key_arg(stock_key, skey, err, sizeof err) != 0)) {
        fprintf(stderr, "zcart-cart: %s\n", err);
        return 2;
    }
    zc_sec_t *sec = zc_sec_new(cert, NULL, insecure, err, sizeof err);
    if (sec == NULL) {
        fprintf(stderr, "zcart-cart: %s\n", err);
        return 2;
    }
    cfg.sec = sec;
    cfg.broker_key = bkey;
    cfg.stock_key = skey;
    node = cart_node_new(loop, &cfg, err, sizeof err);
    if (node == NULL) {
        fprintf(stderr, "zcart-cart: %s\n", err);
        return 1;
    }
    uv_signal_init(loop, &sigint_h);
    uv_signal_init(loop, &sigterm_h);
    uv_signal_start(&sigint_h, on_signal, SIGINT);
    uv_signal_start(&sigterm_h, on_signal, SIGTERM);
    zc_info("hosting %u carts, brokers %s, stock %s (timeout %u ms, breaker: %u failures, "
            "open %u..%u ms)",
            cfg.slots, cfg.brokers, cfg.stock, cfg.stock_timeout_ms, cfg.stock_failures,
            cfg.stock_open_ms, cfg.stock_open_max_ms);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    zc_sec_destroy(&sec);
    return 0;
}
