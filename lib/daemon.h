/* daemon: what every zcart daemon's process does the same way -- the
 * --http and --log-level flag rows, reading the flags into an exit status,
 * stopping on SIGINT or SIGTERM, and starting the --http ops server.  The
 * daemons (broker, cart, stock) keep only what is theirs. */
#ifndef ZC_LIB_DAEMON_H
#define ZC_LIB_DAEMON_H

#include <stdio.h>
#include <uv.h>

#include "lib/flags.h"
#include "lib/ops.h"

/* Flag rows (lib/flags.h) every daemon has. */
#define ZC_DAEMON_FLAG_HTTP(target)                                                                \
    {                                                                                              \
        "http", "HOST:PORT", ZC_FLAG_STR, (target), 0, 0, NULL,                                    \
            "serve /metrics (Prometheus), /healthz and /readyz over HTTP\n"                        \
            "(docs/operations.md); PORT 0 picks a free one (logged)"                               \
    }
#define ZC_DAEMON_FLAG_LOG_LEVEL(target)                                                           \
    {                                                                                              \
        "log-level", "LEVEL", ZC_FLAG_CALL, (target), 0, 0, zc_daemon_read_level,                  \
            "debug, info, warn or error (default info)"                                            \
    }

/* A --log-level value into a zc_log_level_t. */
const char *zc_daemon_read_level(const char *arg, void *target);

/* The usage text and the flags' help (zc_flags_help). */
void zc_daemon_usage(FILE *out, const char *usage, const zc_flag_t *flags);

#define ZC_DAEMON_RUN (-1)
/* Read the flags: ZC_DAEMON_RUN to go on, else the exit status (0 after
 * --help, 2 after a usage error; both printed, the error as "PROG: why"). */
int zc_daemon_flags(const char *prog, const char *usage, const zc_flag_t *flags, int argc,
                    char **argv);

/* The process around a daemon: its --http ops server and its stop. */
typedef struct {
    uv_signal_t sigint;      /* SIGINT handler */
    uv_signal_t sigterm;     /* SIGTERM handler */
    zc_ops_t *ops;           /* --http (lib/ops.h), NULL if off */
    void (*stop)(void *arg); /* the daemon's stop: close what keeps the loop running */
    void *arg;               /* its argument */
} zc_daemon_t;

/* SIGINT and SIGTERM stop the daemon: the first logs "shutting down",
 * tells systemd (STOPPING), closes the ops server and both handlers, and
 * calls stop(arg). */
void zc_daemon_signals_start(zc_daemon_t *d, uv_loop_t *loop, void (*stop)(void *arg), void *arg);

/* --http ADDR: d's ops server (lib/ops.h), its port logged; -1 and err on
 * failure. */
int zc_daemon_http(zc_daemon_t *d, uv_loop_t *loop, const char *addr, const zc_ops_fns_t *fns,
                   void *arg, char *err, size_t errlen);

#endif
