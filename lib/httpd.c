/* httpd: see httpd.h. */
#include "lib/httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <microhttpd.h>

struct zc_httpd {
    struct MHD_Daemon *mhd; /* the HTTP server, NULL once stopped */
    uv_poll_t poll;         /* watches mhd's epoll descriptor */
    uv_timer_t timer;       /* wakes mhd when its timeout is due */
    zc_httpd_fn fn;         /* operations flavour: the daemon's handler */
    zc_httpd_req_fn req_fn; /* API flavour: the daemon's handler */
    void *arg;              /* the handler's argument */
    zc_httpd_limits_t lim;  /* API flavour: limits, defaults filled in */
    unsigned pending;       /* API requests handed out, not answered yet */
    uint16_t port;          /* the bound port */
    int closing;            /* handles still to close before freeing */
};

#define REQ_HEADERS_MAX 8

/* One API request, from its first header to its completion. */
struct zc_http_req {
    zc_httpd_t *h;                 /* its server; NULL once the server is gone */
    struct MHD_Connection *conn;   /* its connection */
    char method[16];               /* request method */
    char *path;                    /* the URL's path (owned) */
    zc_wbuf_t body;                /* the body read so far */
    bool too_big;                  /* the body passed max_body: 413 */
    bool handed;                   /* given to the handler */
    bool suspended;                /* the connection waits for the reply */
    bool replied;                  /* zc_http_reply ran: the answer below */
    int status;                    /* the answer's status */
    char *content_type;            /* the answer's type (owned) */
    zc_wbuf_t answer;              /* the answer's body */
    char *hdr[REQ_HEADERS_MAX][2]; /* extra reply headers (owned) */
    unsigned n_hdr;                /* entries in hdr */
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

/* --- API flavour ------------------------------------------------------------ */

const char *zc_http_req_method(const zc_http_req_t *r) { return r->method; }
const char *zc_http_req_path(const zc_http_req_t *r) { return r->path; }

const char *zc_http_req_header(const zc_http_req_t *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *zc_http_req_query(const zc_http_req_t *r, const char *key)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

const void *zc_http_req_body(const zc_http_req_t *r, size_t *len)
{
    *len = r->body.len;
    return r->body.data ? (const void *)r->body.data : (const void *)"";
}

void zc_http_req_add_header(zc_http_req_t *r, const char *name, const char *value)
{
    if (r->n_hdr == REQ_HEADERS_MAX)
        return;
    r->hdr[r->n_hdr][0] = strdup(name);
    r->hdr[r->n_hdr][1] = strdup(value);
    r->n_hdr++;
}

static void req_free(zc_http_req_t *r)
{
    free(r->path);
    free(r->content_type);
    zc_wbuf_clear(&r->body);
    zc_wbuf_clear(&r->answer);
    for (unsigned i = 0; i < r->n_hdr; i++) {
        free(r->hdr[i][0]);
        free(r->hdr[i][1]);
    }
    free(r);
}

/* Queue r's answer on its connection. */
static enum MHD_Result queue_answer(zc_http_req_t *r)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        r->answer.len, r->answer.data ? (void *)r->answer.data : (void *)"", MHD_RESPMEM_MUST_COPY);
    if (resp == NULL)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            r->content_type ? r->content_type : "text/plain");
    for (unsigned i = 0; i < r->n_hdr; i++)
        if (r->hdr[i][0] && r->hdr[i][1])
            MHD_add_response_header(resp, r->hdr[i][0], r->hdr[i][1]);
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

void zc_http_reply(zc_http_req_t *r, int status, const char *content_type, const void *body,
                   size_t len)
{
    if (r->replied)
        return;
    r->replied = true;
    if (r->h == NULL) { /* the server went away meanwhile: nobody to answer */
        req_free(r);
        return;
    }
    r->h->pending--;
    r->status = status;
    r->content_type = strdup(content_type ? content_type : "text/plain");
    zc_wbuf_bytes(&r->answer, body, len);
    if (r->suspended) {
        /* Resume; mhd queues the answer when it next calls on_api (soon:
         * the timer runs it from the loop, never from inside mhd). */
        r->suspended = false;
        MHD_resume_connection(r->conn);
        uv_timer_start(&r->h->timer, on_timer, 0, 0);
    }
}

static void reply_now(zc_http_req_t *r, int status, const char *msg)
{
    r->h->pending++; /* zc_http_reply counts it back */
    zc_http_reply(r, status, "text/plain; charset=utf-8", msg, strlen(msg));
}

static enum MHD_Result add_header_size(void *cls, enum MHD_ValueKind kind, const char *key,
                                       const char *value)
{
    (void)kind;
    *(size_t *)cls += strlen(key) + (value ? strlen(value) : 0) + 4; /* ": ", CRLF */
    return MHD_YES;
}

/* libmicrohttpd's access handler, API flavour: called with the headers
 * (*con_cls NULL), once per chunk of body, once more when the body is all
 * there, and once after a resume. */
static enum MHD_Result on_api(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    (void)version;
    zc_httpd_t *h = cls;
    zc_http_req_t *r = *con_cls;
    if (r == NULL) {
        r = calloc(1, sizeof *r);
        if (r == NULL || (r->path = strdup(url)) == NULL) {
            free(r);
            return MHD_NO;
        }
        r->h = h;
        r->conn = c;
        snprintf(r->method, sizeof r->method, "%s", method);
        zc_wbuf_init(&r->body);
        zc_wbuf_init(&r->answer);
        *con_cls = r;
        size_t header = strlen(method) + strlen(url) + 12;
        MHD_get_connection_values(c, MHD_HEADER_KIND, add_header_size, &header);
        if (header > h->lim.max_header) {
            r->handed = true;
            reply_now(r, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE, "request headers too large\n");
        }
        return MHD_YES;
    }
    if (*upload_size != 0) {
        if (r->body.len + *upload_size > h->lim.max_body)
            r->too_big = true;
        else
            zc_wbuf_bytes(&r->body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (!r->replied && !r->handed) {
        r->handed = true;
        if (r->too_big || r->body.oom) {
            reply_now(r, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large\n");
        } else {
            h->pending++;
            h->req_fn(h->arg, r);
        }
    }
    if (r->replied)
        return queue_answer(r);
    r->suspended = true;
    MHD_suspend_connection(c);
    return MHD_YES;
}

/* A request is over (answered and sent, or its connection gone). */
static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode why)
{
    (void)cls;
    (void)c;
    (void)why;
    zc_http_req_t *r = *con_cls;
    *con_cls = NULL;
    if (r == NULL)
        return;
    if (r->handed && !r->replied) {
        /* Still with its handler (the server is stopping): zc_http_reply
         * frees it. */
        r->h->pending--;
        r->h = NULL;
        r->suspended = false;
        return;
    }
    req_free(r);
}

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

/* The listening socket for sa, bound here rather than by mhd so that a
 * failure says why (mhd only answers NULL); *port is the bound port (the
 * kernel's choice for port 0).  -1 with err filled on failure. */
static int listen_on(const struct sockaddr_in *sa, const char *addr, uint16_t *port, char *err,
                     size_t errlen)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "http address '%s': cannot make a socket: %s", addr, strerror(errno));
        return -1;
    }
    int one = 1;
    struct sockaddr_in bound;
    socklen_t len = sizeof bound;
    const char *step = "bind";
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
        step = "set SO_REUSEADDR on";
    else if (bind(fd, (const struct sockaddr *)sa, sizeof *sa) != 0)
        step = "bind";
    else if (listen(fd, 128) != 0)
        step = "listen on";
    else if (getsockname(fd, (struct sockaddr *)&bound, &len) != 0)
        step = "read the address of";
    else {
        *port = ntohs(bound.sin_port);
        return fd;
    }
    snprintf(err, errlen, "http address '%s': cannot %s it: %s", addr, step, strerror(errno));
    close(fd);
    return -1;
}

/* Start mhd for h on addr, with its epoll set watched from loop. */
static int start(zc_httpd_t *h, uv_loop_t *loop, const struct sockaddr_in *sa, const char *addr,
                 unsigned flags, MHD_AccessHandlerCallback handler, unsigned conns, unsigned idle_s,
                 size_t pool, char *err, size_t errlen)
{
    int lfd = listen_on(sa, addr, &h->port, err, errlen);
    if (lfd < 0)
        return -1;
    h->mhd = MHD_start_daemon(MHD_USE_EPOLL | flags, h->port, NULL, NULL, handler, h,
                              MHD_OPTION_LISTEN_SOCKET, lfd, MHD_OPTION_CONNECTION_LIMIT, conns,
                              MHD_OPTION_CONNECTION_TIMEOUT, idle_s,
                              MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool,
                              MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_END);
    if (h->mhd == NULL) {
        close(lfd); /* mhd owns it only once started */
        snprintf(err, errlen, "http address '%s': the HTTP server did not start", addr);
        return -1;
    }
    const union MHD_DaemonInfo *fd = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    if (fd == NULL || uv_poll_init(loop, &h->poll, fd->epoll_fd) != 0) {
        snprintf(err, errlen, "http address '%s': cannot watch the server's epoll set", addr);
        MHD_stop_daemon(h->mhd);
        return -1;
    }
    uv_timer_init(loop, &h->timer);
    h->timer.data = h;
    h->poll.data = h;
    uv_poll_start(&h->poll, UV_READABLE, on_poll);
    run_mhd(h);
    return 0;
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
    if (start(h, loop, &sa, addr, 0, on_request, 64, 10, 32768, err, errlen) != 0) {
        free(h);
        return NULL;
    }
    return h;
}

zc_httpd_t *zc_httpd_new_api(uv_loop_t *loop, const char *addr, const zc_httpd_limits_t *lim,
                             zc_httpd_req_fn fn, void *arg, char *err, size_t errlen)
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
    h->req_fn = fn;
    h->arg = arg;
    if (lim)
        h->lim = *lim;
    if (h->lim.max_body == 0)
        h->lim.max_body = 8192;
    if (h->lim.max_header == 0)
        h->lim.max_header = 8192;
    if (h->lim.max_conns == 0)
        h->lim.max_conns = 256;
    if (h->lim.idle_s == 0)
        h->lim.idle_s = 30;
    /* The connection's pool holds the request line and headers, then the
     * answer's headers: headers past max_header get 431 from mhd. */
    if (start(h, loop, &sa, addr, MHD_ALLOW_SUSPEND_RESUME, on_api, h->lim.max_conns, h->lim.idle_s,
              h->lim.max_header + 4096, err, errlen) != 0) {
        free(h);
        return NULL;
    }
    return h;
}

unsigned zc_httpd_pending(const zc_httpd_t *h) { return h->pending; }

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
