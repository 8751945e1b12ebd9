/* zcart-cart: a cart node hosting --slots cart slots. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cart/dump.h"
#include "cart/metrics.h"
#include "cart/node.h"
#include "lib/daemon.h"
#include "lib/flags.h"
#include "lib/log.h"
#include "lib/sdnotify.h"
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
    "\n";

/* What the flags fill in besides the node's configuration. */
static struct {
    zc_log_level_t level; /* --log-level */
    bool dump;            /* --dump-state */
    bool insecure;        /* --insecure */
    const char *cert;     /* --cert */
    const char *broker_key; /* --broker-key */
    const char *stock_key;  /* --stock-key */
    const char *http;       /* --http */
} opt = {.level = ZC_LOG_INFO};

static const char *read_name(const char *arg, void *target)
{
    if (!zc_node_name_valid(arg))
        return "a node name is 1..32 of [A-Za-z0-9_-]";
    *(const char **)target = arg;
    return NULL;
}

static cart_config_t cfg;

static const zc_flag_t flags[] = {
    {"name", "NODE", ZC_FLAG_CALL, &cfg.name, 0, 0, read_name,
     "node name, 1..32 of [A-Za-z0-9_-]; carts are NODE.SLOT"},
    {"slots", "N", ZC_FLAG_UINT, &cfg.slots, 1, ZC_SLOTS_MAX, NULL, "cart slots to host, 1..16384"},
    {"data", "DIR", ZC_FLAG_STR, &cfg.data_dir, 0, 0, NULL,
     "LMDB directory (contents survive restarts)"},
    {"brokers", "EP,...", ZC_FLAG_STR, &cfg.brokers, 0, 0, NULL,
     "cart endpoints of all broker replicas"},
    {"stock", "EP,...", ZC_FLAG_STR, &cfg.stock, 0, 0, NULL,
     "stock service endpoints (checks spread over them)"},
    {"stock-timeout", "MS", ZC_FLAG_UINT, &cfg.stock_timeout_ms, 1, 600000, NULL,
     "per-check timeout -> STOCK_TIMEOUT (default 1000); keep it\n"
     "below the brokers' --cart-timeout"},
    {"stock-failures", "K", ZC_FLAG_UINT, &cfg.stock_failures, 1, 1000, NULL,
     "failed checks in a row (timed out or INTERNAL) that open a\n"
     "stock instance's breaker (default 3)"},
    {"stock-open-ms", "MS", ZC_FLAG_UINT, &cfg.stock_open_ms, 1, 600000, NULL,
     "how long an open breaker keeps checks off its instance\n"
     "before one probe check goes through (default 1000); the\n"
     "wait doubles each time the probe fails"},
    {"stock-open-max-ms", "MS", ZC_FLAG_UINT, &cfg.stock_open_max_ms, 1, 3600000, NULL,
     "cap of that doubling wait (default 8000)"},
    {"hello-interval", "MS", ZC_FLAG_UINT, &cfg.hello_interval_ms, 10, 600000, NULL,
     "HELLO/heartbeat period to every replica (default 1000)"},
    {"broker-liveness", "MS", ZC_FLAG_UINT, &cfg.broker_liveness_ms, 30, 3600000, NULL,
     "a replica that sent nothing (heartbeat, request) for MS is\n"
     "reconnected and sent a HELLO (default 3 hello intervals)"},
    {"map-size", "BYTES", ZC_FLAG_SIZE, &cfg.map_size, (uint64_t)256 << 10, (uint64_t)1024 << 30,
     NULL,
     "LMDB map of the store (suffix K, M or G; 256K..1024G,\n"
     "default 1G).  Adds are refused STORAGE_FULL past 70%\n"
     "of it, removes past 90%; lists and resets always work.\n"
     "A slot's dedup records take at most 128 KiB, so about\n"
     "slots x 150 KiB is the most a node ever needs"},
    {"wal-size", "BYTES", ZC_FLAG_SIZE, &cfg.wal_size, (uint64_t)16 << 10, (uint64_t)1 << 30, NULL,
     "the store's write-ahead log, DATA/cart.wal (suffix K, M or\n"
     "G; 16K..1G, default 4M).  Every reply waits for one log\n"
     "append; LMDB commits it every 200 ms or at half the log.\n"
     "While LMDB cannot commit (a full disk), the node goes on\n"
     "until the log is full, then refuses changes"},
    {"cert", "FILE", ZC_FLAG_STR, &opt.cert, 0, 0, NULL,
     "this node's secret certificate (KEYS/NODE.cert_secret from\n"
     "`zcart keygen`: role cart, name NODE)"},
    {"broker-key", "KEY", ZC_FLAG_STR, &opt.broker_key, 0, 0, NULL,
     "the replicas' public key: 40 z85 characters or a certificate\n"
     "file (KEYS/replica.cert)"},
    {"stock-key", "KEY", ZC_FLAG_STR, &opt.stock_key, 0, 0, NULL,
     "the stock service's public key (KEYS/stock.cert)"},
    {"insecure", NULL, ZC_FLAG_BOOL, &opt.insecure, 0, 0, NULL,
     "no CurveZMQ: for experiments only (logged loudly)"},
    ZC_DAEMON_FLAG_HTTP(&opt.http),
    ZC_DAEMON_FLAG_LOG_LEVEL(&opt.level),
    {"dump-state", NULL, ZC_FLAG_BOOL, &opt.dump, 0, 0, NULL,
     "print slots 0..N-1 of the store in DIR (owner, generation,\n"
     "reset generation, items) as one JSON object and exit;\n"
     "read-only, for a stopped node's data (exit 1 if DIR holds\n"
     "no readable store); --name only labels the output"},
    ZC_FLAGS_END,
};

static void print_usage(FILE *out) { zc_daemon_usage(out, usage, flags); }

static cart_node_t *node;
static zc_daemon_t proc; /* signals and --http (lib/daemon.h) */

static void stop(void *arg)
{
    (void)arg;
    cart_node_destroy(&node);
}

/* The flags' checks beyond each flag's own bounds; 0, or 2 (usage). */
static int check_flags(void)
{
    if (!cfg.name || !cfg.slots || !cfg.data_dir || !cfg.brokers || !cfg.stock) {
        fprintf(stderr, "zcart-cart: --name, --slots, --data, --brokers and --stock are required\n");
        print_usage(stderr);
        return 2;
    }
    if (cfg.stock_open_max_ms < cfg.stock_open_ms) {
        fprintf(stderr, "zcart-cart: --stock-open-max-ms (%u) is below --stock-open-ms (%u)\n",
                cfg.stock_open_max_ms, cfg.stock_open_ms);
        return 2;
    }
    if (!opt.insecure && (opt.cert == NULL || opt.broker_key == NULL || opt.stock_key == NULL)) {
        fprintf(stderr, "zcart-cart: secure by default: give --cert, --broker-key and --stock-key "
                        "(`zcart keygen`), or --insecure\n");
        return 2;
    }
    return 0;
}

/* Keys, the node, --http, signals, then the loop until a signal. */
static int serve(uv_loop_t *loop)
{
    char err[512], bkey[ZC_KEY_Z85], skey[ZC_KEY_Z85];
    if (!opt.insecure && (zc_sec_key_arg(opt.broker_key, bkey, err, sizeof err) != 0 ||
                          zc_sec_key_arg(opt.stock_key, skey, err, sizeof err) != 0)) {
        fprintf(stderr, "zcart-cart: %s\n", err);
        return 2;
    }
    zc_sec_t *sec = zc_sec_new(opt.cert, NULL, opt.insecure, err, sizeof err);
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
    if (opt.http) {
        if (zc_daemon_http(&proc, loop, opt.http, &cart_ops_fns, node, err, sizeof err) != 0) {
            fprintf(stderr, "zcart-cart: --http: %s\n", err);
            cart_node_destroy(&node);
            uv_run(loop, UV_RUN_DEFAULT);
            return 1;
        }
    }
    zc_daemon_signals_start(&proc, loop, stop, NULL);
    zc_info("hosting %u carts, brokers %s, stock %s (timeout %u ms, breaker: %u failures, "
            "open %u..%u ms)",
            cfg.slots, cfg.brokers, cfg.stock, cfg.stock_timeout_ms, cfg.stock_failures,
            cfg.stock_open_ms, cfg.stock_open_max_ms);
    zc_sd_ready(loop, "hosting %u carts as %s", cfg.slots, cfg.name);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    zc_sec_destroy(&sec);
    return 0;
}

int main(int argc, char **argv)
{
    cart_config_defaults(&cfg);
    int code = zc_daemon_flags("zcart-cart", usage, flags, argc, argv);
    if (code != ZC_DAEMON_RUN)
        return code;
    if (opt.dump) {
        if (!cfg.data_dir || !cfg.slots) {
            fprintf(stderr, "zcart-cart: --dump-state needs --data DIR and --slots N\n");
            return 2;
        }
        return cart_dump_state(cfg.data_dir, cfg.slots, cfg.name);
    }
    if (check_flags() != 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    zc_log_set_name(cfg.name);
    zc_log_threshold = opt.level;
    return serve(uv_default_loop());
}
