/* ops: see ops.h. */
#include "lib/ops.h"

#include <stdlib.h>
#include <string.h>

#include "lib/httpd.h"

struct zc_ops {
    zc_httpd_t *http;    /* the server */
    zc_ops_fns_t fns;    /* the daemon's metrics and readiness */
    void *arg;           /* their argument */
};

static void route(void *arg, const char *path, zc_http_answer_t *a)
{
    zc_ops_t *o = arg;
    if (strcmp(path, "/healthz") == 0) {
        zc_http_printf(a, "ok\n");
    } else if (strcmp(path, "/readyz") == 0) {
        char why[256] = "";
        if (o->fns.ready(o->arg, why, sizeof why)) {
            zc_http_printf(a, "ready\n");
        } else {
            a->status = 503;
            zc_http_printf(a, "not ready: %s\n", why[0] ? why : "(no reason given)");
        }
    } else if (strcmp(path, "/metrics") == 0) {
        zc_prom_t p;
        zc_prom_init(&p);
        o->fns.metrics(o->arg, &p);
        size_t len;
        const char *text = zc_prom_text(&p, &len);
        if (text == NULL)
            a->body.oom = true;
        else
            zc_wbuf_bytes(&a->body, text, len);
        a->content_type = "text/plain; version=0.0.4; charset=utf-8";
        zc_prom_clear(&p);
    } else {
        a->status = 404;
        zc_http_printf(a, "not found; try /metrics, /healthz or /readyz\n");
    }
}

zc_ops_t *zc_ops_new(uv_loop_t *loop, const char *addr, const zc_ops_fns_t *fns, void *arg,
                     char *err, size_t errlen)
{
    zc_ops_t *o = calloc(1, sizeof *o);
    if (o == NULL)
        return NULL;
    o->fns = *fns;
    o->arg = arg;
    o->http = zc_httpd_new(loop, addr, route, o, err, errlen);
    if (o->http == NULL) {
        free(o);
        return NULL;
    }
    return o;
}

unsigned zc_ops_port(const zc_ops_t *o) { return zc_httpd_port(o->http); }

void zc_ops_destroy(zc_ops_t **p)
{
    zc_ops_t *o = *p;
    if (o == NULL)
        return;
    *p = NULL;
    zc_httpd_destroy(&o->http);
    free(o);
}
