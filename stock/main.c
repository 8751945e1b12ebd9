/* zcart-stock: the stock service.  One libuv loop, one ROUTER, an LMDB
 * inventory seeded from a catalog on first start. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/zsec.h"
#include "lib/zmqx.h"
#include "stock/inventory.h"
#include "stock/server.h"

static const char usage[] =
    "usage: zcart-stock --bind EP --data DIR [--catalog FILE] [--delay MIN[:MAX]]\n"
    "                   [--log-level LEVEL]\n"
    "\n"
    "The stock service: answers carts' CHECKs (are N units of a product\n"
    "available?) from an LMDB inventory.  Checks are answered concurrently.\n"
    "\n"
    "  --bind EP          ZeroMQ endpoint to bind, e.g. tcp://127.0.0.1:7041\n"
    "  --data DIR         inventory directory (LMDB)\n"
    "  --catalog FILE     'product,qty' lines seeding an EMPTY inventory; ignored\n"
    "                     once the inventory holds products (restarts keep stock)\n"
    "  --delay MIN[:MAX]  answer each check after a random delay of MIN..MAX ms\n"
    "                     (default 0: at once); answers then leave out of order\n"
    "  --cert FILE        the stock service's secret certificate (KEYS/stock.cert_secret\n"
    "                     from `zcart keygen`)\n"
    "  --allow DIR        allow-list of public certificates (KEYS/allow); only cart keys\n"
    "                     may ask, anything else is dropped and logged\n"
    "  --insecure         no CurveZMQ, anyone may ask: for experiments only (logged)\n"
    "  --log-level LEVEL  debug, info, warn or error (default info)\n"
    "  --help             print this text\n";

static server_t *srv;
static uv_signal_t sigint_h, sigterm_h;

static void on_signal(uv_signal_t *s, int signum)
{
    (void)s;
    (void)signum;
    zc_info("shutting down");
    server_destroy(&srv);
    uv_close((uv_handle_t *)&sigint_h, NULL);
    uv_close((uv_handle_t *)&sigterm_h, NULL);
}

static int parse_delay(const char *s, unsigned *lo, unsigned *hi)
{
    char *end;
    unsigned long a = strtoul(s, &end, 10), b;
    if (end == s)
        return -1;
    if (*end == ':') {
        const char *t = end + 1;
        b = strtoul(t, &end, 10);
        if (end == t)
            return -1;
    } else {
        b = a;
    }
    if (*end != 0 || a > b || b > 600000)
        return -1;
    *lo = (unsigned)a;
    *hi = (unsigned)b;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"bind", required_argument, NULL, 'b'},  {"data", required_argument, NULL, 'd'},
        {"catalog", required_argument, NULL, 'c'}, {"delay", required_argument, NULL, 'y'},
        {"log-level", required_argument, NULL, 'l'}, {"help", no_argument, NULL, 'h'},
        {"cert", required_argument, NULL, 'C'}, {"allow", required_argument, NULL, 'A'},
        {"insecure", no_argument, NULL, 'I'},
        {NULL, 0, NULL, 0},
    };
    const char *bind = NULL, *data = NULL, *catalog = NULL, *cert = NULL, *allow = NULL;
    bool insecure = false;
    unsigned dmin = 0, dmax = 0;
    zc_log_level_t level = ZC_LOG_INFO;
    int o;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'b': bind = optarg; break;
        case 'd': data = optarg; break;
        case 'c': catalog = optarg; break;
        case 'y':
            if (parse_delay(optarg, &dmin, &dmax) != 0) {
                fprintf(stderr, "zcart-stock: --delay wants MIN[:MAX] ms, MIN <= MAX (got '%s')\n",
                        optarg);
                return 2;
            }
            break;
        case 'l':
            if (!zc_log_parse_level(optarg, &level)) {
                fprintf(stderr, "zcart-stock: --log-level wants debug, info, warn or error\n");
                return 2;
            }
            break;
        case 'h': fputs(usage, stdout); return 0;
        case 'C': cert = optarg; break;
        case 'A': allow = optarg; break;
        case 'I': insecure = true; break;
        default:
            fprintf(stderr, "zcart-stock: unknown or incomplete option '%s'\n%s", argv[optind - 1],
                    usage);
            return 2;
        }
    }
    if (optind < argc || bind == NULL || data == NULL) {
        fprintf(stderr, "zcart-stock: --bind and --data are required\n%s", usage);
        return 2;
    }
    if (!insecure && (cert == NULL || allow == NULL)) {
        fprintf(stderr, "zcart-stock: secure by default: give --cert FILE and --allow DIR "
                        "(`zcart keygen`), or --insecure\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    zc_log_set_name("stock");
    zc_log_threshold = level;
    char err[512];
    zc_sec_t *sec = zc_sec_new(cert, allow, insecure, err, sizeof err);
    if (sec == NULL) {
        fprintf(stderr, "zcart-stock: %s\n", err);
        return 2;
    }
    inventory_t *inv = inventory_open(data, err, sizeof err);
    if (inv == NULL) {
        fprintf(stderr, "zcart-stock: %s\n", err);
        return 1;
    }
    if (catalog) {
        int seeded;
        if (inventory_seed(inv, catalog, &seeded, err, sizeof err) != 0) {
            fprintf(stderr, "zcart-stock: %s\n", err);
            inventory_close(&inv);
            return 2;
        }
        if (seeded)
            zc_info("seeded %d products from %s", seeded, catalog);
        else
            zc_info("inventory already holds %zu products; catalog %s ignored",
                    inventory_count(inv), catalog);
    }
    uv_loop_t *loop = uv_default_loop();
    void *zctx = zc_sec_context(); /* czmq's: lib/zsec.h says why */
    srv = server_new(loop, zctx, sec, bind, inv, dmin, dmax, err, sizeof err);
    if (srv == NULL) {
        fprintf(stderr, "zcart-stock: %s\n", err);
        inventory_close(&inv);
        return 1;
    }
    uv_signal_init(loop, &sigint_h);
    uv_signal_init(loop, &sigterm_h);
    uv_signal_start(&sigint_h, on_signal, SIGINT);
    uv_signal_start(&sigterm_h, on_signal, SIGTERM);
    zc_info("serving %zu products on %s%s", inventory_count(inv), bind,
            dmax ? " with random delays" : "");
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    zc_sec_destroy(&sec);
    inventory_close(&inv);
    return 0;
}
