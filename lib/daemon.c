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
    case ZC_FLAGS_HELP:
        zc_daemon_usage(stdout, usage, flags);
        return 0;
    case ZC_FLAGS_ERROR:
        fprintf(stderr, "%s: %s\n", prog, err);
        return 2;
    default:
        return ZC_DAEMON_RUN;
    }
}

static void on_signal(uv_signal_t *h, int signum)
{
    zc_daemon_signals_t *s = h->data;
    (void)signum;
    zc_info("shutting down");
    zc_sd_stopping();
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    s->stop(s->arg);
}

void zc_daemon_signals_start(zc_daemon_signals_t *s, uv_loop_t *loop, void (*stop)(void *arg),
                             void *arg)
{
    s->stop = stop;
    s->arg = arg;
    uv_signal_init(loop, &s->sigint);
    uv_signal_init(loop, &s->sigterm);
    s->sigint.data = s->sigterm.data = s;
    uv_signal_start(&s->sigint, on_signal, SIGINT);
    uv_signal_start(&s->sigterm, on_signal, SIGTERM);
}

zc_ops_t *zc_daemon_http(uv_loop_t *loop, const char *addr, const zc_ops_fns_t *fns, void *arg,
                         char *err, size_t errlen)
{
    zc_ops_t *ops = zc_ops_new(loop, addr, fns, arg, err, errlen);
    if (ops)
        zc_info("http on port %u (/metrics, /healthz, /readyz)", zc_ops_port(ops));
    return ops;
}
