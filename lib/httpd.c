/* httpd: see httpd.h. */
#include "lib/httpd.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <microhttpd.h>

struct zc_httpd {
    struct MHD_Daemon *mhd; /* the HTTP server, NULL once stopped */
    uv_poll_t poll;         /* watches mhd's epoll descriptor */
    uv_timer_t timer;       /* wakes mhd when its timeout is due */
    zc_httpd_fn fn;         /* the daemon's handler */
    void *arg;              /* its argument */
    uint16_t port;          /* the bound port */
    int closing;            /* handles still to close before freeing */
};

void zc_http_printf(zc_http_answer_t *a, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        zc_wbuf_bytes(&a->body, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (big == NULL) {
        a->body.oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    zc_wbuf_bytes(&a->body, big, (size_t)n);
    free(big);
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *type,
                                 const void *body, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* libmicrohttpd's access handler: one call per request here, as no request
 * body is ever read (a body sent with GET is left unread and discarded). */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    (void)upload;
    (void)con_cls;
    zc_httpd_t *h = cls;
    if (*upload_size != 0) {
        *upload_size = 0;
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        static const char msg[] = "only GET and HEAD\n";
        return send_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", msg, sizeof msg - 1);
    }
    zc_http_answer_t a = {.status = 200, .content_type = "text/plain; charset=utf-8"};
    zc_wbuf_init(&a.body);
    h->fn(h->arg, url, &a);
    enum MHD_Result ret;
    if (a.body.oom) {
        static const char msg[] = "out of memory\n";
        ret = send_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain", msg, sizeof msg - 1);
    } else {
        ret = send_text(c, (unsigned)a.status, a.content_type, a.body.data, a.body.len);
    }
    zc_wbuf_clear(&a.body);
    return ret;
}

static void on_timer(uv_timer_t *t);

/* Let mhd work, then arm the timer for its next deadline (0: work is left
 * over, e.g. more requests on an edge-triggered connection). */
static void run_mhd(zc_httpd_t *h)
{
    if (h->mhd == NULL)
        return;
    MHD_run(h->mhd);
    MHD_UNSIGNED_LONG_LONG ms;
    if (MHD_get_timeout(h->mhd, &ms) == MHD_YES)
        uv_timer_start(&h->timer, on_timer, ms, 0);
    else
        uv_timer_stop(&h->timer);
}

static void on_timer(uv_timer_t *t) { run_mhd(t->data); }

static void on_poll(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    run_mhd(p->data);
}

/* "HOST:PORT" into an IPv4 address; NULL or why not. */
static const char *parse_addr(const char *addr, struct sockaddr_in *sa)
{
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon == addr || colon[1] == 0)
        return "want HOST:PORT";
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (*end != 0 || port > 65535 || colon[1] < '0' || colon[1] > '9')
        return "PORT must be 0..65535";
    char host[256];
    size_t n = (size_t)(colon - addr);
    if (n >= sizeof host)
        return "HOST too long";
    memcpy(host, addr, n);
    host[n] = 0;
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (strcmp(host, "*") == 0) {
        sa->sin_addr.s_addr = htonl(INADDR_ANY);
        return NULL;
    }
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || res == NULL)
        return "HOST is not an IPv4 address or a name that resolves to one";
    sa->sin_addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
    freeaddrinfo(res);
    return NULL;
}

zc_httpd_t *zc_httpd_new(uv_loop_t *loop, const char *addr, zc_httpd_fn fn, void *arg, char *err,
                         size_t errlen)
{
    struct sockaddr_in sa;
    const char *why = parse_addr(addr, &sa);
    if (why) {
        snprintf(err, errlen, "http address '%s': %s", addr, why);
        return NULL;
    }
    zc_httpd_t *h = calloc(1, sizeof *h);
    if (h == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->fn = fn;
    h->arg = arg;
    h->mhd = MHD_start_daemon(MHD_USE_EPOLL, ntohs(sa.sin_port), NULL, NULL, on_request, h,
                              MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                              MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                              MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768, MHD_OPTION_END);
    if (h->mhd == NULL) {
        snprintf(err, errlen, "http address '%s': cannot listen (in use?)", addr);
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *fd = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    const union MHD_DaemonInfo *port = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
    h->port = port ? port->port : ntohs(sa.sin_port);
    if (fd == NULL || uv_poll_init(loop, &h->poll, fd->epoll_fd) != 0) {
        snprintf(err, errlen, "http address '%s': cannot watch the server's epoll set", addr);
        MHD_stop_daemon(h->mhd);
        free(h);
        return NULL;
    }
    uv_timer_init(loop, &h->timer);
    h->timer.data = h;
    h->poll.data = h;
    uv_poll_start(&h->poll, UV_READABLE, on_poll);
    run_mhd(h);
    return h;
}

uint16_t zc_httpd_port(const zc_httpd_t *h) { return h->port; }

static void on_closed(uv_handle_t *handle)
{
    zc_httpd_t *h = handle->data;
    if (--h->closing == 0)
        free(h);
}

void zc_httpd_destroy(zc_httpd_t **p)
{
    zc_httpd_t *h = *p;
    if (h == NULL)
        return;
    *p = NULL;
    h->closing = 2;
    uv_close((uv_handle_t *)&h->poll, on_closed);
    uv_close((uv_handle_t *)&h->timer, on_closed);
    MHD_stop_daemon(h->mhd); /* after uv_poll stopped watching its descriptor */
    h->mhd = NULL;
}
