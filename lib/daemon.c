/* daemon: the process parts all zcart daemons share (see daemon.h). */
#include "lib/daemon.h"

#include <signal.h>

#include "lib/log.h"
#include "lib/sdnotify.h"

const char *zc_daemon_read_level(const char *arg, void *target)
{
    return zc_log_parse_level(arg, target) ? NULL : "debug, info, warn or error";
}

void zc_daemon_usage(FILE *out, const char *usage, const zc_flag_t *flags)
{
    fputs(usage, out);
    zc_flags_help(out, flags);
}

int zc_daemon_flags(const char *prog, const char *usage, const zc_flag_t *flags, int argc,
                    char **argv)
{
    char err[512];
    switch (zc_flags_parse(flags, argc, argv, err, sizeof err)) {
    case ZC_FLAGS_HELP: zc_daemon_usage(stdout, usage, flags); return 0;
    case ZC_FLAGS_ERROR: fprintf(stderr, "%s: %s\n", prog, err); return 2;
    default: return ZC_DAEMON_RUN;
    }
}

static void on_signal(uv_signal_t *h, int signum)
{
    zc_daemon_t *d = h->data;
    (void)signum;
    zc_info("shutting down");
    zc_sd_stopping();
    zc_ops_destroy(&d->ops);
    uv_close((uv_handle_t *)&d->sigint, NULL);
    uv_close((uv_handle_t *)&d->sigterm, NULL);
    d->stop(d->arg);
}

void zc_daemon_signals_start(zc_daemon_t *d, uv_loop_t *loop, void (*stop)(void *arg), void *arg)
{
    d->stop = stop;
    d->arg = arg;
    uv_signal_init(loop, &d->sigint);
    uv_signal_init(loop, &d->sigterm);
    d->sigint.data = d->sigterm.data = d;
    uv_signal_start(&d->sigint, on_signal, SIGINT);
    uv_signal_start(&d->sigterm, on_signal, SIGTERM);
}

int zc_daemon_http(zc_daemon_t *d, uv_loop_t *loop, const char *addr, const zc_ops_fns_t *fns,
                   void *arg, char *err, size_t errlen)
{
    d->ops = zc_ops_new(loop, addr, fns, arg, err, errlen);
    if (d->ops == NULL)
        return -1;
    zc_info("http on port %u (/metrics, /healthz, /readyz)", zc_ops_port(d->ops));
    return 0;
}
