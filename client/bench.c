/* zcart-bench: a load generator for a zcart cluster, redis-benchmark style.
 *
 * CONCURRENCY threads, each with its own zcart_t (all sharing one ZeroMQ
 * context) and so its own connection, run synchronous requests back to back
 * for the duration, through libzcart's full failover path:
 *
 *   assign  each iteration: a new session, add (the broker assigns a cart:
 *           one replicated commit), close (releases it: another commit).
 *           Measures the assignment path; also reports cycles/s.
 *   ops     one session per thread, then adds of 1 unit, cycling over the
 *           products.  Measures the routed path (broker -> cart -> stock).
 *           A cart whose stock runs out answers OUT_OF_STOCK: counted as KO.
 *   mixed   one session per thread: 70% add, 20% list, 10% remove (of a
 *           random product, so some removes are NOT_IN_CART).
 *
 * Every request's latency (µs, answered requests only: OK or KO) is kept
 * in a per-thread, per-op-type preallocated array (latency.c); percentiles
 * are exact, computed by sorting at the end.  Requests that got no answer
 * within --timeout are counted as UNREACHABLE, not timed.  Sessions of ops
 * and mixed are closed after the measured window, untimed.
 *
 * Threads get ready (client created) behind one barrier; the main thread
 * then fixes the start time and releases them behind a second one, so
 * set-up is not measured.  Ctrl-C ends the run early and still reports.
 *
 * --timeline FILE also keeps, per thread, one record per timed request:
 * its start and end on the wall clock (CLOCK_REALTIME µs, so that a script
 * can relate them to the moment it killed a process), its op and its
 * outcome.  Records go to a per-thread array, preallocated like the
 * latencies and doubled when full (no lock on the hot path); the file,
 * opened before the run, is written after it, one line per request:
 *
 *   thread start_us end_us op outcome      e.g.  3 1764599000123456 1764599000125012 add OK
 *
 * thread is the 0-based client thread, op add/remove/list/close, outcome
 * OK, a KO status name (NOT_IN_CART, ...), UNREACHABLE or LOCAL_ERROR.
 * Lines are grouped by thread, each thread's in request order. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "client/latency.h"
#include "client/zcart.h"
#include "lib/zsec.h"
#include <czmq.h>
#include "lib/clock.h"
#include "lib/json.h"
#include "lib/log.h"
#include "proto/msg.h"
#include "proto/status.h"

static const char USAGE[] =
    "usage: zcart-bench [--brokers EP,EP...] [-c CONCURRENCY] [-d SECONDS]\n"
    "                   [-w assign|ops|mixed] [--products N]\n"
    "                   [--catalog P1,P2,... | --product-prefix PREFIX]\n"
    "                   [--timeout MS] [--json] [--timeline FILE]\n"
    "\n"
    "Load a zcart cluster with CONCURRENCY synchronous clients for SECONDS.\n"
    "\n"
    "  --brokers EP,...      client endpoints of the replicas (default: $ZCART_BROKERS)\n"
    "  --server-key KEY      the cluster's public key, z85 or a certificate file\n"
    "                        (default: $ZCART_SERVER_KEY)\n"
    "  --cert FILE           the client's secret certificate (default: $ZCART_CERT)\n"
    "  --insecure            plain connections to an --insecure cluster\n"
    "  -c N                  client threads, 1..1024 (default 8)\n"
    "  -d SECONDS            duration, 1..86400 (default 10)\n"
    "  -w WORKLOAD           assign: new session, add, close, repeat;\n"
    "                        ops: one session per client, adds of 1 unit;\n"
    "                        mixed: one session per client, 70% add, 20% list,\n"
    "                        10% remove (default ops)\n"
    "  --catalog LIST        product names, comma-separated (default the demo\n"
    "                        catalog: apple,banana,cherry,grape,lemon,mango,orange,pear)\n"
    "  --product-prefix P    products are P0, P1, ... P(N-1) instead of the catalog\n"
    "  --products N          products used: the first N of the catalog (default all of\n"
    "                        it), or N prefixed names (default 8); 1..1024\n"
    "  --timeout MS          budget of one request, failover included (default 5000)\n"
    "  --json                print the report as one JSON object\n"
    "  --timeline FILE       after the run, write one line per timed request to FILE:\n"
    "                        'thread start_us end_us op outcome', times on the wall\n"
    "                        clock (CLOCK_REALTIME, µs since the epoch), op add/remove/\n"
    "                        list/close, outcome OK, a KO reason, UNREACHABLE or\n"
    "                        LOCAL_ERROR\n"
    "  -h, --help            print this help\n"
    "\n"
    "Report: requests and ops/s, outcomes by reason (OK, KO reasons, UNREACHABLE),\n"
    "and per op type the latency p50/p99/max in microseconds (answered requests).\n"
    "Exit status: 0 done, 1 the timeline could not be written, 2 usage error\n"
    "(a --timeline FILE that cannot be created included), 3 no request was answered.\n";

#define DEFAULT_CATALOG "apple,banana,cherry,grape,lemon,mango,orange,pear"
#define MAX_PRODUCTS 1024
/* Outcome slots: the protocol statuses, then these two. */
#define OUT_UNREACHABLE ZC_STATUS_COUNT
#define OUT_LOCAL (ZC_STATUS_COUNT + 1)
#define N_OUT (ZC_STATUS_COUNT + 2)
#define N_OPS 5 /* indexed by ZC_OP_* (1..4) */

typedef enum { W_ASSIGN, W_OPS, W_MIXED } workload_t;

/* One timed request of --timeline. */
typedef struct {
    uint64_t start_us; /* wall clock (CLOCK_REALTIME) when it was sent, µs */
    uint64_t end_us;   /* wall clock when it completed (answer or give-up), µs */
    uint8_t op;        /* ZC_OP_* */
    uint8_t outcome;   /* outcome slot: a status, OUT_UNREACHABLE or OUT_LOCAL */
} tl_rec_t;

/* A thread's timeline: growable, touched only by its thread until the end. */
typedef struct {
    tl_rec_t *recs;    /* owned records, in request order */
    size_t n;          /* records kept */
    size_t cap;        /* records allocated */
    uint64_t lost;     /* records dropped because an allocation failed */
} timeline_t;

/* The run, shared by every thread (read-only once started). */
typedef struct {
    const char *brokers;          /* endpoint list */
    const char *server_key;       /* --server-key or $ZCART_SERVER_KEY */
    const char *cert;             /* --cert or $ZCART_CERT */
    bool insecure;                /* --insecure: plain connections */
    int clients;                  /* threads */
    int seconds;                  /* duration */
    workload_t workload;          /* what each thread does */
    int timeout_ms;               /* per request budget */
    bool json;                    /* report format */
    const char *timeline_path;    /* --timeline FILE, or NULL */
    FILE *timeline;               /* that file, opened before the run */
    char **products;              /* owned product names */
    int n_products;               /* entries in products */
    void *ctx;                    /* shared ZeroMQ context */
    pthread_barrier_t ready;      /* all clients created */
    pthread_barrier_t go;         /* start time fixed */
    uint64_t start_us;            /* monotonic start of the window */
    uint64_t end_us;              /* monotonic end of the window */
} bench_t;

/* One client thread. */
typedef struct {
    bench_t *b;                   /* the run */
    int index;                    /* 0-based thread number */
    pthread_t thread;             /* its thread */
    zcart_t *z;                   /* its client */
    uint64_t rng;                 /* xorshift state for mixed */
    zlat_t lat[N_OPS];            /* latency per op type */
    uint64_t count[N_OPS][N_OUT]; /* outcomes per op type */
    uint64_t cycles;              /* assign: add OK and close OK */
    uint64_t finish_us;           /* monotonic end of its last timed request */
    timeline_t tl;                /* --timeline records (empty without it) */
    char error[160];              /* set if the thread could not start */
} worker_t;

static atomic_bool stop_now;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&stop_now, true);
}

static uint64_t next_rand(worker_t *w)
{
    uint64_t x = w->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return w->rng = x;
}

static uint64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Room for `cap` records.  -1 if out of memory. */
static int tl_reserve(timeline_t *tl, size_t cap)
{
    tl_rec_t *p = realloc(tl->recs, cap * sizeof *p);
    if (p == NULL)
        return -1;
    tl->recs = p;
    tl->cap = cap;
    return 0;
}

static void tl_add(timeline_t *tl, uint64_t start_us, uint64_t end_us, int op, int outcome)
{
    if (tl->n == tl->cap && tl_reserve(tl, tl->cap ? 2 * tl->cap : 4096) != 0) {
        tl->lost++;
        return;
    }
    tl->recs[tl->n++] = (tl_rec_t){.start_us = start_us, .end_us = end_us,
                                   .op = (uint8_t)op, .outcome = (uint8_t)outcome};
}

/* Run one op, timing it and counting its outcome; returns the zcart rc. */
static int measure(worker_t *w, zcart_session_t *s, int op, const char *product,
                   zcart_result_t *r)
{
    bool tl = w->b->timeline != NULL;
    uint64_t w0 = tl ? wall_us() : 0;
    uint64_t t0 = zc_mono_us();
    int rc;
    switch (op) {
    case ZC_OP_ADD: rc = zcart_add(s, product, 1, r); break;
    case ZC_OP_REMOVE: rc = zcart_remove(s, product, 1, r); break;
    case ZC_OP_LIST: rc = zcart_list(s, r); break;
    default: rc = zcart_close(s, r); break;
    }
    uint64_t dt = zc_mono_us() - t0;
    uint64_t w1 = tl ? wall_us() : 0;
    int outcome;
    if (rc == ZCART_ANSWERED) {
        zlat_add(&w->lat[op], dt);
        outcome = r->status >= 0 && r->status < ZC_STATUS_COUNT ? r->status : ZC_INTERNAL;
    } else {
        outcome = rc == ZCART_EUNREACHABLE ? OUT_UNREACHABLE : OUT_LOCAL;
    }
    w->count[op][outcome]++;
    if (tl)
        tl_add(&w->tl, w0, w1, op, outcome);
    return rc;
}

static bool running(const worker_t *w)
{
    return !atomic_load(&stop_now) && zc_mono_us() < w->b->end_us;
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    bench_t *b = w->b;
    zcart_result_t r = {0};
    zcart_session_t *s = NULL;
    pthread_barrier_wait(&b->ready);
    pthread_barrier_wait(&b->go);
    if (w->z == NULL)
        return NULL;
    unsigned long i = (unsigned long)w->index;
    if (b->workload == W_ASSIGN) {
        while (running(w)) {
            s = zcart_session_new(w->z);
            if (s == NULL)
                break;
            const char *p = b->products[i++ % (unsigned long)b->n_products];
            bool ok = measure(w, s, ZC_OP_ADD, p, &r) == ZCART_ANSWERED && r.status == 0;
            /* Close whatever the add did, even if it got no answer. */
            ok = measure(w, s, ZC_OP_CLOSE, NULL, &r) == ZCART_ANSWERED && r.status == 0 && ok;
            w->cycles += ok;
            zcart_session_destroy(&s);
        }
        w->finish_us = zc_mono_us();
    } else {
        s = zcart_session_new(w->z);
        while (s && running(w)) {
            const char *p = b->products[i++ % (unsigned long)b->n_products];
            int op = ZC_OP_ADD;
            if (b->workload == W_MIXED) {
                unsigned roll = (unsigned)(next_rand(w) % 100);
                op = roll < 70 ? ZC_OP_ADD : roll < 90 ? ZC_OP_LIST : ZC_OP_REMOVE;
                if (op == ZC_OP_REMOVE)
                    p = b->products[next_rand(w) % (uint64_t)b->n_products];
            }
            measure(w, s, op, p, &r);
        }
        w->finish_us = zc_mono_us();
        if (s)
            zcart_close(s, &r); /* untimed: give the cart back */
        zcart_session_destroy(&s);
    }
    zcart_result_clear(&r);
    return NULL;
}

/* --- arguments --------------------------------------------------------------------- */

static bool parse_num(const char *s, long lo, long hi, long *out)
{
    char *end;
    if (s == NULL || *s == 0)
        return false;
    long v = strtol(s, &end, 10);
    if (*end != 0 || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static void free_products(bench_t *b)
{
    for (int i = 0; i < b->n_products; i++)
        free(b->products[i]);
    free(b->products);
    b->products = NULL;
    b->n_products = 0;
}

/* Fill b->products; false with why on a bad list. */
static bool make_products(bench_t *b, const char *catalog, const char *prefix, long n,
                          char *why, size_t whylen)
{
    b->products = calloc(MAX_PRODUCTS, sizeof *b->products);
    if (b->products == NULL) {
        snprintf(why, whylen, "out of memory");
        return false;
    }
    if (prefix) {
        if (n <= 0)
            n = 8;
        for (long i = 0; i < n; i++) {
            char name[ZC_PRODUCT_MAX + 8];
            snprintf(name, sizeof name, "%s%ld", prefix, i);
            if (!zc_product_valid(name)) {
                snprintf(why, whylen, "product '%.70s' is not a valid product id", name);
                return false;
            }
            b->products[b->n_products++] = strdup(name);
        }
        return true;
    }
    char *copy = strdup(catalog), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (!zc_product_valid(t)) {
            snprintf(why, whylen, "catalog entry '%.70s' is not a valid product id", t);
            free(copy);
            return false;
        }
        if (b->n_products == MAX_PRODUCTS || (n > 0 && b->n_products == n))
            break;
        b->products[b->n_products++] = strdup(t);
    }
    free(copy);
    if (b->n_products == 0 || (n > 0 && b->n_products < n)) {
        snprintf(why, whylen, "--products %ld but the catalog has %d products", n, b->n_products);
        return false;
    }
    return true;
}

static int usage(const char *why)
{
    fprintf(stderr, "zcart-bench: %s\nTry 'zcart-bench --help'.\n", why);
    return 2;
}

/* What the command line gives besides the bench_t fields. */
typedef struct {
    const char *catalog; /* --catalog FILE */
    bool catalog_given;  /* --catalog was given */
    const char *prefix;  /* --product-prefix P */
    long products;       /* --products N (0: the catalog's) */
} parse_extra_t;

/* One option taking the value val: 0, or usage()'s status. */
static int parse_valued(const char *a, const char *val, bench_t *b, parse_extra_t *x)
{
    long v;
    char why[200];
    if (strcmp(a, "--server-key") == 0) {
        b->server_key = val;
    } else if (strcmp(a, "--cert") == 0) {
        b->cert = val;
    } else if (strcmp(a, "--brokers") == 0) {
        b->brokers = val;
    } else if (strcmp(a, "-c") == 0) {
        if (!parse_num(val, 1, 1024, &v))
            return usage("-c wants 1..1024");
        b->clients = (int)v;
    } else if (strcmp(a, "-d") == 0) {
        if (!parse_num(val, 1, 86400, &v))
            return usage("-d wants 1..86400 seconds");
        b->seconds = (int)v;
    } else if (strcmp(a, "-w") == 0) {
        if (strcmp(val, "assign") == 0)
            b->workload = W_ASSIGN;
        else if (strcmp(val, "ops") == 0)
            b->workload = W_OPS;
        else if (strcmp(val, "mixed") == 0)
            b->workload = W_MIXED;
        else
            return usage("-w wants assign, ops or mixed");
    } else if (strcmp(a, "--products") == 0) {
        if (!parse_num(val, 1, MAX_PRODUCTS, &x->products))
            return usage("--products wants 1..1024");
    } else if (strcmp(a, "--catalog") == 0) {
        x->catalog = val;
        x->catalog_given = true;
    } else if (strcmp(a, "--product-prefix") == 0) {
        x->prefix = val;
    } else if (strcmp(a, "--timeline") == 0) {
        if (*val == 0)
            return usage("--timeline wants a file name");
        b->timeline_path = val;
    } else if (strcmp(a, "--timeout") == 0) {
        if (!parse_num(val, 1, 86400000, &v))
            return usage("--timeout wants 1..86400000 ms");
        b->timeout_ms = (int)v;
    } else {
        snprintf(why, sizeof why, "unknown option '%.60s'", a);
        return usage(why);
    }
    return 0;
}

static int parse(int argc, char **argv, bench_t *b)
{
    parse_extra_t x = {.catalog = DEFAULT_CATALOG};
    char why[200];
    b->brokers = getenv("ZCART_BROKERS");
    b->clients = 8;
    b->seconds = 10;
    b->workload = W_OPS;
    b->timeout_ms = ZCART_DEFAULT_TOTAL_TIMEOUT_MS;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--json") == 0) {
            b->json = true;
        } else if (strcmp(a, "--insecure") == 0) {
            b->insecure = true;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(USAGE, stdout);
            return 1;
        } else if (val == NULL) {
            snprintf(why, sizeof why, "unknown option or missing value: '%.60s'", a);
            return usage(why);
        } else {
            int rc = parse_valued(a, val, b, &x);
            if (rc != 0)
                return rc;
            i++;
        }
    }
    if (x.catalog_given && x.prefix)
        return usage("give --catalog or --product-prefix, not both");
    if (b->brokers == NULL || *b->brokers == 0)
        return usage("no brokers: give --brokers EP,... or set ZCART_BROKERS");
    if (!zcart_brokers_check(b->brokers, why, sizeof why))
        return usage(why);
    if (!make_products(b, x.catalog, x.prefix, x.products, why, sizeof why))
        return usage(why);
    return 0;
}

/* --- report ---------------------------------------------------------------------------- */

static const char *out_name(int k)
{
    return k == OUT_UNREACHABLE ? "UNREACHABLE" : k == OUT_LOCAL ? "LOCAL_ERROR" : zc_status_name(k);
}

static const char *workload_name(workload_t w)
{
    return w == W_ASSIGN ? "assign" : w == W_OPS ? "ops" : "mixed";
}

/* Totals of every worker. */
typedef struct {
    zlat_t lat[N_OPS];            /* merged latencies */
    uint64_t count[N_OPS][N_OUT]; /* merged outcomes */
    uint64_t cycles;              /* assign cycles */
    uint64_t requests;            /* all requests */
    uint64_t answered;            /* OK or KO */
} totals_t;

static void sum_up(bench_t *b, worker_t *ws, totals_t *t)
{
    memset(t, 0, sizeof *t);
    for (int c = 0; c < b->clients; c++) {
        for (int op = 1; op < N_OPS; op++) {
            zlat_merge(&t->lat[op], &ws[c].lat[op]);
            for (int k = 0; k < N_OUT; k++) {
                t->count[op][k] += ws[c].count[op][k];
                t->requests += ws[c].count[op][k];
                if (k < ZC_STATUS_COUNT)
                    t->answered += ws[c].count[op][k];
            }
        }
        t->cycles += ws[c].cycles;
    }
}

static uint64_t op_total(const totals_t *t, int op, int from, int to)
{
    uint64_t n = 0;
    for (int k = from; k < to; k++)
        n += t->count[op][k];
    return n;
}

static void report_text(bench_t *b, totals_t *t, double secs)
{
    printf("zcart-bench: workload %s, %d clients, %.2f s, %d products, brokers %s\n",
           workload_name(b->workload), b->clients, secs, b->n_products, b->brokers);
    printf("requests: %" PRIu64 " = %.1f ops/s\n", t->requests, (double)t->requests / secs);
    if (b->workload == W_ASSIGN)
        printf("assign cycles (add OK + close OK): %" PRIu64 " = %.1f/s\n", t->cycles,
               (double)t->cycles / secs);
    printf("outcomes:");
    for (int k = 0; k < N_OUT; k++) {
        uint64_t n = 0;
        for (int op = 1; op < N_OPS; op++)
            n += t->count[op][k];
        if (n)
            printf(" %s %" PRIu64, out_name(k), n);
    }
    printf("\n%-7s %10s %10s %10s %10s %10s %10s %10s\n", "op", "requests", "ok", "ko",
           "unreach", "p50_us", "p99_us", "max_us");
    for (int op = 1; op < N_OPS; op++) {
        uint64_t n = op_total(t, op, 0, N_OUT);
        if (n == 0)
            continue;
        printf("%-7s %10" PRIu64 " %10" PRIu64 " %10" PRIu64 " %10" PRIu64 " %10" PRIu32
               " %10" PRIu32 " %10" PRIu32 "\n",
               zc_op_name(op), n, t->count[op][ZC_OK], op_total(t, op, 1, ZC_STATUS_COUNT),
               op_total(t, op, ZC_STATUS_COUNT, N_OUT), zlat_percentile(&t->lat[op], 50),
               zlat_percentile(&t->lat[op], 99), zlat_max(&t->lat[op]));
    }
}

static void report_json(bench_t *b, totals_t *t, double secs)
{
    zc_json_t j;
    zc_json_init(&j);
    zc_json_obj(&j);
    zc_json_kstr(&j, "workload", workload_name(b->workload));
    zc_json_ku64(&j, "clients", (uint64_t)b->clients);
    zc_json_key(&j, "duration_s");
    zc_json_double(&j, secs);
    zc_json_ku64(&j, "products", (uint64_t)b->n_products);
    zc_json_ku64(&j, "requests", t->requests);
    zc_json_ku64(&j, "answered", t->answered);
    zc_json_key(&j, "ops_per_s");
    zc_json_double(&j, (double)t->requests / secs);
    if (b->workload == W_ASSIGN) {
        zc_json_ku64(&j, "cycles", t->cycles);
        zc_json_key(&j, "cycles_per_s");
        zc_json_double(&j, (double)t->cycles / secs);
    }
    zc_json_key(&j, "outcomes");
    zc_json_obj(&j);
    for (int k = 0; k < N_OUT; k++) {
        uint64_t n = 0;
        for (int op = 1; op < N_OPS; op++)
            n += t->count[op][k];
        if (n)
            zc_json_ku64(&j, out_name(k), n);
    }
    zc_json_end(&j);
    zc_json_key(&j, "ops");
    zc_json_obj(&j);
    for (int op = 1; op < N_OPS; op++) {
        uint64_t n = op_total(t, op, 0, N_OUT);
        if (n == 0)
            continue;
        zc_json_key(&j, zc_op_name(op));
        zc_json_obj(&j);
        zc_json_ku64(&j, "requests", n);
        zc_json_ku64(&j, "ok", t->count[op][ZC_OK]);
        zc_json_ku64(&j, "ko", op_total(t, op, 1, ZC_STATUS_COUNT));
        zc_json_ku64(&j, "unreachable", op_total(t, op, ZC_STATUS_COUNT, N_OUT));
        zc_json_key(&j, "outcomes");
        zc_json_obj(&j);
        for (int k = 0; k < N_OUT; k++)
            if (t->count[op][k])
                zc_json_ku64(&j, out_name(k), t->count[op][k]);
        zc_json_end(&j);
        zc_json_ku64(&j, "p50_us", zlat_percentile(&t->lat[op], 50));
        zc_json_ku64(&j, "p99_us", zlat_percentile(&t->lat[op], 99));
        zc_json_ku64(&j, "max_us", zlat_max(&t->lat[op]));
        zc_json_key(&j, "mean_us");
        zc_json_double(&j, zlat_mean(&t->lat[op]));
        zc_json_end(&j);
    }
    zc_json_end(&j);
    zc_json_end(&j);
    printf("%s\n", zc_json_str(&j));
    zc_json_clear(&j);
}

/* Write every thread's records to b->timeline and close it; false (with a
 * message) if a record was lost or the file could not be written. */
static bool write_timeline(bench_t *b, worker_t *ws)
{
    uint64_t lost = 0;
    for (int c = 0; c < b->clients; c++) {
        const timeline_t *tl = &ws[c].tl;
        for (size_t i = 0; i < tl->n; i++) {
            const tl_rec_t *e = &tl->recs[i];
            fprintf(b->timeline, "%d %" PRIu64 " %" PRIu64 " %s %s\n", c, e->start_us, e->end_us,
                    zc_op_name(e->op), out_name(e->outcome));
        }
        lost += tl->lost;
    }
    bool ok = !ferror(b->timeline);
    if (fclose(b->timeline) != 0)
        ok = false;
    b->timeline = NULL;
    if (!ok)
        fprintf(stderr, "zcart-bench: --timeline %s: write failed\n", b->timeline_path);
    if (lost) {
        fprintf(stderr, "zcart-bench: --timeline %s: %" PRIu64 " records lost (out of memory)\n",
                b->timeline_path, lost);
        ok = false;
    }
    return ok;
}

/* The clients' keys (secure by default); false after saying why not. */
static bool client_keys(bench_t *b, zcart_options_t *o, char keys[3][ZC_KEY_Z85])
{
    const char *insecure_env = getenv("ZCART_INSECURE");
    if (insecure_env && strcmp(insecure_env, "1") == 0)
        b->insecure = true;
    if (b->insecure)
        return true;
    char why[300];
    const char *sk = b->server_key ? b->server_key : getenv("ZCART_SERVER_KEY");
    const char *cert = b->cert ? b->cert : getenv("ZCART_CERT");
    zcert_t *zc = cert ? zcert_load(cert) : NULL;
    if (sk == NULL || zc_sec_key_arg(sk, keys[0], why, sizeof why) != 0 || zc == NULL) {
        fprintf(stderr, "zcart-bench: secure by default: give --server-key and --cert (or "
                        "ZCART_SERVER_KEY, ZCART_CERT), or --insecure\n");
        zcert_destroy(&zc);
        return false;
    }
    snprintf(keys[1], ZC_KEY_Z85, "%s", zcert_public_txt(zc));
    snprintf(keys[2], ZC_KEY_Z85, "%s", zcert_secret_txt(zc));
    zcert_destroy(&zc);
    o->server_key = keys[0];
    o->public_key = keys[1];
    o->secret_key = keys[2];
    return true;
}

/* Start every client thread, release them together, wait for them all;
 * the seconds from the start to the last timed request. */
static double run_workers(bench_t *b, worker_t *ws, const zcart_options_t *o)
{
    pthread_barrier_init(&b->ready, NULL, (unsigned)b->clients + 1);
    pthread_barrier_init(&b->go, NULL, (unsigned)b->clients + 1);
    /* Samples preallocated per thread and op type: ~20k req/s spread over
     * the threads for the whole run, at least 4096. */
    size_t prealloc = (size_t)b->seconds * 20000 / (size_t)b->clients;
    if (prealloc < 4096)
        prealloc = 4096;
    for (int c = 0; c < b->clients; c++) {
        worker_t *w = &ws[c];
        w->b = b;
        w->index = c;
        w->rng = 0x9e3779b97f4a7c15ull * (uint64_t)(c + 1) ^ zc_mono_us();
        w->rng |= 1;
        for (int op = 1; op < N_OPS; op++)
            zlat_init(&w->lat[op], op == ZC_OP_ADD || b->workload != W_OPS ? prealloc : 0);
        if (b->timeline)
            tl_reserve(&w->tl, prealloc); /* on failure tl_add grows it from zero */
        w->z = zcart_new(b->brokers, o);
        if (w->z == NULL)
            snprintf(w->error, sizeof w->error, "client %d: cannot create a client", c);
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            /* The barriers count every planned thread: no way on. */
            fprintf(stderr, "zcart-bench: cannot start client thread %d\n", c);
            exit(3);
        }
    }
    pthread_barrier_wait(&b->ready);
    b->start_us = zc_mono_us();
    b->end_us = b->start_us + (uint64_t)b->seconds * 1000000u;
    pthread_barrier_wait(&b->go);
    uint64_t last_us = b->start_us;
    for (int c = 0; c < b->clients; c++) {
        pthread_join(ws[c].thread, NULL);
        if (ws[c].finish_us > last_us)
            last_us = ws[c].finish_us;
    }
    pthread_barrier_destroy(&b->ready);
    pthread_barrier_destroy(&b->go);
    /* The window ends when the last timed request did; the untimed closes
     * after it are not in it. */
    double secs = (double)(last_us - b->start_us) / 1e6;
    return secs <= 0 ? 1e-6 : secs;
}

static void free_workers(bench_t *b, worker_t *ws)
{
    for (int c = 0; c < b->clients; c++) {
        zcart_destroy(&ws[c].z);
        for (int op = 1; op < N_OPS; op++)
            zlat_clear(&ws[c].lat[op]);
        free(ws[c].tl.recs);
    }
    free(ws);
}

int main(int argc, char **argv)
{
    bench_t b = {0};
    int rc = parse(argc, argv, &b);
    if (rc != 0) {
        free_products(&b);
        return rc == 1 ? 0 : rc;
    }
    zc_log_set_name("zcart-bench");
    zc_log_threshold = ZC_LOG_WARN;
    if (b.timeline_path && (b.timeline = fopen(b.timeline_path, "w")) == NULL) {
        fprintf(stderr, "zcart-bench: --timeline %s: %s\nTry 'zcart-bench --help'.\n",
                b.timeline_path, strerror(errno));
        free_products(&b);
        return 2;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    b.ctx = zmq_ctx_new();
    worker_t *ws = calloc((size_t)b.clients, sizeof *ws);
    if (b.ctx == NULL || ws == NULL) {
        fprintf(stderr, "zcart-bench: cannot start: out of memory\n");
        return 3;
    }
    zmq_ctx_set(b.ctx, ZMQ_IO_THREADS, b.clients > 16 ? 2 : 1);
    zmq_ctx_set(b.ctx, ZMQ_MAX_SOCKETS, 8 * b.clients + 64);
    zcart_options_t o = {.total_timeout_ms = b.timeout_ms, .zmq_context = b.ctx};
    char keys[3][ZC_KEY_Z85];
    if (!client_keys(&b, &o, keys))
        return 2;
    double secs = run_workers(&b, ws, &o);
    totals_t t;
    sum_up(&b, ws, &t);
    for (int c = 0; c < b.clients; c++)
        if (ws[c].error[0])
            fprintf(stderr, "zcart-bench: %s\n", ws[c].error);
    if (b.json)
        report_json(&b, &t, secs);
    else
        report_text(&b, &t, secs);
    fflush(stdout);
    bool timeline_ok = b.timeline == NULL || write_timeline(&b, ws);
    free_workers(&b, ws);
    for (int op = 1; op < N_OPS; op++)
        zlat_clear(&t.lat[op]);
    zmq_ctx_term(b.ctx);
    free_products(&b);
    return !t.answered ? 3 : timeline_ok ? 0 : 1;
}
