/* zcart-stock: the stock service.  One libuv loop, one ROUTER, an LMDB
 * inventory seeded from a catalog on first start. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/daemon.h"
#include "lib/flags.h"
#include "lib/log.h"
#include "lib/zsec.h"
#include "lib/zmqx.h"
#include "lib/ops.h"
#include "lib/sdnotify.h"
#include "stock/inventory.h"
#include "stock/metrics.h"
#include "stock/server.h"

static const char usage[] =
    "usage: zcart-stock --bind EP --data DIR [--catalog FILE] [--delay MIN[:MAX]]\n"
    "                   [--http HOST:PORT] [--log-level LEVEL]\n"
    "\n"
    "The stock service: answers carts' CHECKs (are N units of a product\n"
    "available?) from an LMDB inventory.  Checks are answered concurrently.\n"
    "\n";

/* What the flags set. */
static struct {
    const char *bind;     /* --bind */
    const char *data;     /* --data */
    const char *catalog;  /* --catalog */
    const char *cert;     /* --cert */
    const char *allow;    /* --allow */
    const char *http;     /* --http */
    bool insecure;        /* --insecure */
    unsigned delay[2];    /* --delay MIN[:MAX], ms */
    zc_log_level_t level; /* --log-level */
} opt = {.level = ZC_LOG_INFO};

static const char *read_delay(const char *arg, void *target);

static const zc_flag_t flags[] = {
    {"bind", "EP", ZC_FLAG_STR, &opt.bind, 0, 0, NULL,
     "ZeroMQ endpoint to bind, e.g. tcp://127.0.0.1:7041"},
    {"data", "DIR", ZC_FLAG_STR, &opt.data, 0, 0, NULL, "inventory directory (LMDB)"},
    {"catalog", "FILE", ZC_FLAG_STR, &opt.catalog, 0, 0, NULL,
     "'product,qty' lines seeding an EMPTY inventory; ignored\n"
     "once the inventory holds products (restarts keep stock)"},
    {"delay", "MIN[:MAX]", ZC_FLAG_CALL, opt.delay, 0, 0, read_delay,
     "answer each check after a random delay of MIN..MAX ms\n"
     "(default 0: at once); answers then leave out of order"},
    {"cert", "FILE", ZC_FLAG_STR, &opt.cert, 0, 0, NULL,
     "the stock service's secret certificate (KEYS/stock.cert_secret\n"
     "from `zcart keygen`)"},
    {"allow", "DIR", ZC_FLAG_STR, &opt.allow, 0, 0, NULL,
     "allow-list of public certificates (KEYS/allow); only cart keys\n"
     "may ask, anything else is dropped and logged"},
    {"insecure", NULL, ZC_FLAG_BOOL, &opt.insecure, 0, 0, NULL,
     "no CurveZMQ, anyone may ask: for experiments only (logged)"},
    ZC_DAEMON_FLAG_HTTP(&opt.http),
    ZC_DAEMON_FLAG_LOG_LEVEL(&opt.level),
    ZC_FLAGS_END,
};

static void print_usage(FILE *out) { zc_daemon_usage(out, usage, flags); }

static server_t *srv;
static zc_daemon_t proc; /* signals and --http (lib/daemon.h) */

static void stop(void *arg)
{
    (void)arg;
    server_destroy(&srv);
}

/* "MIN[:MAX]" ms into target[0..1]. */
static const char *read_delay(const char *arg, void *target)
{
    unsigned *d = target;
    char *end;
    if (*arg < '0' || *arg > '9')
        return "MIN[:MAX] ms, MIN <= MAX <= 600000";
    unsigned long a = strtoul(arg, &end, 10), b = a;
    if (*end == ':') {
        const char *t = end + 1;
        if (*t < '0' || *t > '9')
            return "MIN[:MAX] ms, MIN <= MAX <= 600000";
        b = strtoul(t, &end, 10);
    }
    if (*end != 0 || a > b || b > 600000)
        return "MIN[:MAX] ms, MIN <= MAX <= 600000";
    d[0] = (unsigned)a;
    d[1] = (unsigned)b;
    return NULL;
}

/* The inventory under --data, seeded from --catalog when empty; NULL
 * (and *code the exit status) on an error. */
static inventory_t *open_inventory(int *code)
{
    char err[512];
    inventory_t *inv = inventory_open(opt.data, err, sizeof err);
    if (inv == NULL) {
        fprintf(stderr, "zcart-stock: %s\n", err);
        *code = 1;
        return NULL;
    }
    if (opt.catalog) {
        int seeded;
        if (inventory_seed(inv, opt.catalog, &seeded, err, sizeof err) != 0) {
            fprintf(stderr, "zcart-stock: %s\n", err);
            inventory_close(&inv);
            *code = 2;
            return NULL;
        }
        if (seeded)
            zc_info("seeded %d products from %s", seeded, opt.catalog);
        else
            zc_info("inventory already holds %zu products; catalog %s ignored",
                    inventory_count(inv), opt.catalog);
    }
    return inv;
}

/* The server, --http, signals, then the loop until a signal. */
static int serve(uv_loop_t *loop, zc_sec_t *sec, inventory_t *inv)
{
    char err[512];
    void *zctx = zc_sec_context(); /* czmq's: lib/zsec.h says why */
    srv = server_new(loop, zctx, sec, opt.bind, inv, opt.delay[0], opt.delay[1], err, sizeof err);
    if (srv == NULL) {
        fprintf(stderr, "zcart-stock: %s\n", err);
        return 1;
    }
    stock_metrics_t metrics = {srv, inv};
    if (opt.http) {
        if (zc_daemon_http(&proc, loop, opt.http, &stock_ops_fns, &metrics, err, sizeof err) != 0) {
            fprintf(stderr, "zcart-stock: --http: %s\n", err);
            server_destroy(&srv);
            uv_run(loop, UV_RUN_DEFAULT);
            return 1;
        }
    }
    zc_daemon_signals_start(&proc, loop, stop, NULL);
    zc_info("serving %zu products on %s%s", inventory_count(inv), opt.bind,
            opt.delay[1] ? " with random delays" : "");
    zc_sd_ready(loop, "serving %zu products on %s", inventory_count(inv), opt.bind);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    return 0;
}

int main(int argc, char **argv)
{
    char err[512];
    int code = zc_daemon_flags("zcart-stock", usage, flags, argc, argv);
    if (code != ZC_DAEMON_RUN)
        return code;
    if (opt.bind == NULL || opt.data == NULL) {
        fprintf(stderr, "zcart-stock: --bind and --data are required\n");
        print_usage(stderr);
        return 2;
    }
    if (!opt.insecure && (opt.cert == NULL || opt.allow == NULL)) {
        fprintf(stderr, "zcart-stock: secure by default: give --cert FILE and --allow DIR "
                        "(`zcart keygen`), or --insecure\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    zc_log_set_name("stock");
    zc_log_threshold = opt.level;
    zc_sec_t *sec = zc_sec_new(opt.cert, opt.allow, opt.insecure, err, sizeof err);
    if (sec == NULL) {
        fprintf(stderr, "zcart-stock: %s\n", err);
        return 2;
    }
    inventory_t *inv = open_inventory(&code);
    if (inv != NULL)
        code = serve(uv_default_loop(), sec, inv);
    zc_sec_destroy(&sec);
    inventory_close(&inv);
    return code;
}
