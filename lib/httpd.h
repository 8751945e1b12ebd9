/* httpd: a small HTTP/1.1 server run on a daemon's own libuv loop, in two
 * flavours: operations endpoints (/metrics, /healthz, /readyz: GET only,
 * answered at once, zc_httpd_new) and APIs (any method, a bounded request
 * body, answers given later, zc_httpd_new_api).
 *
 * libmicrohttpd does the HTTP; it runs without threads of its own
 * (MHD_USE_EPOLL, "external" mode): it keeps its listening and connection
 * sockets in one epoll set, a uv_poll watches that set's descriptor, and a
 * uv_timer wakes it when MHD_get_timeout says a connection is due (idle
 * timeout) or that work is left over from the last run (timeout 0).  So a
 * handler runs on the loop, between the daemon's other callbacks, and may
 * read the daemon's state without locks.
 *
 * Handlers answer at once: GET and HEAD only (anything else gets 405), the
 * request path in, a status, a content type and a body out.  Connections
 * are capped (64) and time out after 10 s idle; a request body is never
 * read.  Addresses are IPv4 "HOST:PORT" (HOST an address or a name, "*" for
 * every interface; PORT 0 picks a free one, see zc_httpd_port). */
#ifndef ZC_LIB_HTTPD_H
#define ZC_LIB_HTTPD_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "lib/buf.h"

typedef struct zc_httpd zc_httpd_t;

/* What a handler fills in; body starts empty and is freed by httpd. */
typedef struct {
    int status;               /* HTTP status, 200 unless the handler says */
    const char *content_type; /* a static string; default text/plain */
    zc_wbuf_t body;           /* the answer's bytes */
} zc_http_answer_t;

/* Answer a GET or HEAD of `path` (no query string). */
typedef void (*zc_httpd_fn)(void *arg, const char *path, zc_http_answer_t *a);

/* Listen on `addr`; NULL with err filled on a bad address or a bind error. */
zc_httpd_t *zc_httpd_new(uv_loop_t *loop, const char *addr, zc_httpd_fn fn, void *arg, char *err,
                         size_t errlen);
/* The port listened on (the chosen one when PORT was 0). */
uint16_t zc_httpd_port(const zc_httpd_t *h);
/* Stop serving at once (open connections are closed); the memory is freed
 * once libuv closed the handles (run the loop). */
void zc_httpd_destroy(zc_httpd_t **p);
/* Append formatted text to an answer's body. */
void zc_http_printf(zc_http_answer_t *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* --- APIs --------------------------------------------------------------------
 * The handler gets each request once it is complete (headers and body) and
 * answers it with zc_http_reply, then or later, from the loop's thread.
 * Until then libmicrohttpd keeps the connection suspended (no thread waits:
 * a reply given later resumes it on the loop).  A body over max_body is
 * answered 413 and headers over max_header 431 without the handler; more
 * than max_conns connections are refused at accept. */
typedef struct zc_http_req zc_http_req_t;
typedef void (*zc_httpd_req_fn)(void *arg, zc_http_req_t *req);

typedef struct {
    size_t max_body;    /* request body bytes; default 8 KiB */
    size_t max_header;  /* bytes of request line + headers; default 8 KiB */
    unsigned max_conns; /* open connections; default 256 */
    unsigned idle_s;    /* idle connection timeout, s; default 30 */
} zc_httpd_limits_t;

/* Listen on addr; lim may be NULL (defaults).  NULL with err on failure. */
zc_httpd_t *zc_httpd_new_api(uv_loop_t *loop, const char *addr, const zc_httpd_limits_t *lim,
                             zc_httpd_req_fn fn, void *arg, char *err, size_t errlen);
/* Requests handed to the handler and not answered yet. */
unsigned zc_httpd_pending(const zc_httpd_t *h);

/* The request: method ("GET"), path without the query, a header by name
 * (case-insensitive) or NULL, a query argument or NULL, the body. */
const char *zc_http_req_method(const zc_http_req_t *r);
const char *zc_http_req_path(const zc_http_req_t *r);
const char *zc_http_req_header(const zc_http_req_t *r, const char *name);
const char *zc_http_req_query(const zc_http_req_t *r, const char *key);
const void *zc_http_req_body(const zc_http_req_t *r, size_t *len);
/* Add a header to the reply to come (copied; at most 8). */
void zc_http_req_add_header(zc_http_req_t *r, const char *name, const char *value);
/* Answer r (body copied): exactly once per request; r is gone afterwards. */
void zc_http_reply(zc_http_req_t *r, int status, const char *content_type, const void *body,
                   size_t len);

#endif
