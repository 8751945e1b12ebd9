/* httpd: a small HTTP/1.1 server for a daemon's operations endpoints
 * (/metrics, /healthz, /readyz), run on the daemon's own libuv loop.
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
void zc_http_printf(zc_http_answer_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
