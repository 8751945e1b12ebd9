/* zcart-gateway: the REST/JSON face of a zcart cluster, and its dashboard.
 *
 * One libuv loop runs libmicrohttpd (lib/httpd.h, API flavour): a request
 * is checked and turned into a cluster call on the loop (gateway/api.c),
 * its connection suspended; a fixed pool of worker threads, each with its
 * own libzcart client, makes the calls (gateway/pool.h) and hands the
 * answers back to the loop, which resumes the connections. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/api.h"
#include "gateway/idem.h"
#include "gateway/pool.h"
#include "lib/daemon.h"
#include "lib/flags.h"
#include "lib/log.h"
#include "lib/sdnotify.h"
#include "lib/zsec.h"

static const char usage[] =
    "usage: zcart-gateway --listen HOST:PORT --brokers EP,EP... [--server-key KEY --cert FILE |\n"
    "                     --insecure] [--token-file FILE] [options]\n"
    "\n"
    "Serves the cart operations of a zcart cluster as HTTP/JSON (docs/openapi.yaml) and a\n"
    "live dashboard page at /.  The cluster is reached as a client, through libzcart.\n"
    "\n";

/* What the flags set. */
static struct {
    const char *listen;     /* --listen */
    const char *brokers;    /* --brokers */
    const char *server_key; /* --server-key */
    const char *cert;       /* --cert */
    const char *token_file; /* --token-file */
    bool insecure;          /* --insecure */
    unsigned workers;       /* --workers */
    unsigned max_inflight;  /* --max-inflight */
    unsigned max_conns;     /* --max-connections */
    unsigned max_body;      /* --max-body */
    unsigned timeout_ms;    /* --timeout */
    unsigned idem_keys;     /* --idempotency-keys */
    unsigned idem_ttl_ms;   /* --idempotency-ttl */
    zc_log_level_t level;   /* --log-level */
} opt = {.workers = 16,
         .max_inflight = 256,
         .max_conns = 512,
         .max_body = 4096,
         .timeout_ms = 5000,
         .idem_keys = 100000,
         .idem_ttl_ms = 600000,
         .level = ZC_LOG_INFO};

static const zc_flag_t flags[] = {
    {"listen", "HOST:PORT", ZC_FLAG_STR, &opt.listen, 0, 0, NULL,
     "HTTP address to serve (PORT 0 picks a free one, logged)"},
    {"brokers", "EP,EP...", ZC_FLAG_STR, &opt.brokers, 0, 0, NULL,
     "the replicas' client endpoints (as zcart --brokers)"},
    {"server-key", "KEY", ZC_FLAG_STR, &opt.server_key, 0, 0, NULL,
     "the cluster's public key: 40 z85 characters or a certificate file"},
    {"cert", "FILE", ZC_FLAG_STR, &opt.cert, 0, 0, NULL,
     "this gateway's client secret certificate (KEYS/client.cert_secret)"},
    {"insecure", NULL, ZC_FLAG_BOOL, &opt.insecure, 0, 0, NULL,
     "plain connections to an --insecure cluster (experiments only)"},
    {"token-file", "FILE", ZC_FLAG_STR, &opt.token_file, 0, 0, NULL,
     "every /v1 and /metrics request must carry 'Authorization: Bearer T', T the\n"
     "file's first line (default: no token asked)"},
    {"workers", "N", ZC_FLAG_UINT, &opt.workers, 1, 1024, NULL,
     "cluster calls made at once, one thread and connection each (default 16)"},
    {"max-inflight", "N", ZC_FLAG_UINT, &opt.max_inflight, 1, 1000000, NULL,
     "cluster calls queued or running; beyond, 503 GATEWAY_BUSY (default 256)"},
    {"max-connections", "N", ZC_FLAG_UINT, &opt.max_conns, 1, 100000, NULL,
     "open HTTP connections (default 512)"},
    {"max-body", "BYTES", ZC_FLAG_UINT, &opt.max_body, 64, 1048576, NULL,
     "request body limit; beyond, 413 (default 4096; headers: 8192, 431)"},
    {"timeout", "MS", ZC_FLAG_UINT, &opt.timeout_ms, 100, 600000, NULL,
     "budget of one cluster call, failover included (default 5000)"},
    {"idempotency-keys", "N", ZC_FLAG_UINT, &opt.idem_keys, 1, 10000000, NULL,
     "Idempotency-Keys remembered at most (default 100000)"},
    {"idempotency-ttl", "MS", ZC_FLAG_UINT, &opt.idem_ttl_ms, 1000, 86400000, NULL,
     "how long one is remembered (default 600000)"},
    ZC_DAEMON_FLAG_LOG_LEVEL(&opt.level),
    ZC_FLAGS_END,
};

static zc_daemon_t proc;
static zc_httpd_t *http;
static pool_t *pool;
static api_t api;
static uv_timer_t drain;

/* Stopping: no new connections; the calls in flight finish first. */
static void on_drain(uv_timer_t *t)
{
    if (http && zc_httpd_pending(http) > 0)
        return;
    uv_close((uv_handle_t *)t, NULL);
    zc_httpd_destroy(&http);
    pool_destroy(&pool);
}

static void stop(void *arg)
{
    (void)arg;
    uv_timer_start(&drain, on_drain, 0, 50);
}

/* The first line of path into out; -1 with why. */
static int read_token(const char *path, char *out, size_t cap, char *why, size_t n)
{
    FILE *f = fopen(path, "r");
    if (f == NULL || fgets(out, (int)cap, f) == NULL) {
        snprintf(why, n, "--token-file %s: cannot read a line", path);
        if (f)
            fclose(f);
        return -1;
    }
    fclose(f);
    out[strcspn(out, "\r\n")] = 0;
    if (strlen(out) < 16) {
        snprintf(why, n, "--token-file %s: the token must be at least 16 characters", path);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    char err[512], token[512], keys[3][ZC_KEY_Z85];
    int code = zc_daemon_flags("zcart-gateway", usage, flags, argc, argv);
    if (code != ZC_DAEMON_RUN)
        return code;
    if (opt.listen == NULL || opt.brokers == NULL) {
        fprintf(stderr, "zcart-gateway: --listen and --brokers are required\n");
        zc_daemon_usage(stderr, usage, flags);
        return 2;
    }
    zcart_options_t o = {.total_timeout_ms = (int)opt.timeout_ms};
    if (!zcart_brokers_check(opt.brokers, err, sizeof err)) {
        fprintf(stderr, "zcart-gateway: --brokers: %s\n", err);
        return 2;
    }
    if (!opt.insecure) {
        if (opt.server_key == NULL || opt.cert == NULL) {
            fprintf(stderr, "zcart-gateway: secure by default: give --server-key KEY and "
                            "--cert FILE (`zcart keygen`), or --insecure\n");
            return 2;
        }
        if (zc_sec_client_keys(opt.server_key, opt.cert, keys[0], keys[1], keys[2], err,
                               sizeof err) != 0) {
            fprintf(stderr, "zcart-gateway: %s\n", err);
            return 2;
        }
        o.server_key = keys[0];
        o.public_key = keys[1];
        o.secret_key = keys[2];
    }
    if (opt.token_file && read_token(opt.token_file, token, sizeof token, err, sizeof err) != 0) {
        fprintf(stderr, "zcart-gateway: %s\n", err);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    zc_log_set_name("gateway");
    zc_log_threshold = opt.level;
    if (opt.insecure)
        zc_warn("*** INSECURE: plain connections to the cluster ***");
    if (opt.token_file == NULL)
        zc_warn("no --token-file: the HTTP API answers anyone who reaches %s", opt.listen);
    uv_loop_t *loop = uv_default_loop();
    idem_t *idem = idem_new(opt.idem_keys, opt.idem_ttl_ms);
    pool = idem ? pool_new(loop, opt.workers, opt.brokers, &o, err, sizeof err) : NULL;
    if (pool == NULL) {
        fprintf(stderr, "zcart-gateway: %s\n", idem ? err : "out of memory");
        idem_destroy(&idem);
        return 1;
    }
    api_config_t cfg = {
        .token = opt.token_file ? token : NULL, .max_inflight = opt.max_inflight, .retry_after = 1};
    api_init(&api, &cfg, pool, idem);
    zc_httpd_limits_t lim = {
        .max_body = opt.max_body, .max_header = 8192, .max_conns = opt.max_conns, .idle_s = 30};
    http = zc_httpd_new_api(loop, opt.listen, &lim, api_handle, &api, err, sizeof err);
    if (http == NULL) {
        fprintf(stderr, "zcart-gateway: %s\n", err);
        pool_destroy(&pool);
        uv_run(loop, UV_RUN_DEFAULT);
        idem_destroy(&idem);
        return 1;
    }
    uv_timer_init(loop, &drain);
    zc_daemon_signals_start(&proc, loop, stop, NULL);
    zc_info("serving HTTP on port %u for the cluster at %s (%u workers)", zc_httpd_port(http),
            opt.brokers, opt.workers);
    zc_sd_ready(loop, "serving HTTP on port %u", zc_httpd_port(http));
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    idem_destroy(&idem);
    return 0;
}
