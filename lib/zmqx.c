/* zmqx: see zmqx.h for why the watcher looks the way it does. */
#include "lib/zmqx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct zc_watch {
    uv_poll_t poll;       /* the ZMQ_FD, readable edge */
    uv_prepare_t prepare; /* re-checks ZMQ_EVENTS before the loop blocks */
    uv_idle_t idle;       /* active while messages are known to be waiting */
    void *sock;           /* watched socket, not owned */
    zc_watch_cb cb;       /* user callback */
    void *arg;            /* user argument */
    int closing;          /* handles still to close before free */
    bool dead;            /* destroy was called; ignore further events */
    bool armed;           /* ZMQ_EVENTS said "not readable" and nothing called
                             into the socket since: the fd will signal */
    bool drained;         /* the last call into the socket was a receive that
                             found nothing (zc_zmsg_recv: EAGAIN), which
                             processed its commands as ZMQ_EVENTS would */
    zc_watch_t *next;     /* this thread's registry (zc_watch_touched) */
};

/* This thread's live watchers, by socket: a loop has a handful. */
static __thread zc_watch_t *registry;

static void registry_remove(zc_watch_t *w)
{
    for (zc_watch_t **p = &registry; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            return;
        }
}

void zc_watch_touched(void *sock)
{
    for (zc_watch_t *w = registry; w; w = w->next)
        if (w->sock == sock)
            w->armed = w->drained = false;
}

static void drained(void *sock)
{
    for (zc_watch_t *w = registry; w; w = w->next)
        if (w->sock == sock)
            w->drained = true;
}

static bool readable(void *sock)
{
    int ev = 0;
    size_t len = sizeof ev;
    if (zmq_getsockopt(sock, ZMQ_EVENTS, &ev, &len) != 0)
        return false;
    return (ev & ZMQ_POLLIN) != 0;
}

static void idle_cb(uv_idle_t *h);

/* The fd fired, or messages were known to wait: the callback receives until
 * EAGAIN (a non-blocking recv that finds nothing processes the socket's
 * commands itself, so the socket is then armed as after ZMQ_EVENTS) or its
 * batch; in the second case one ZMQ_EVENTS says whether to come back next
 * iteration or to wait for the fd. */
static void dispatch(zc_watch_t *w)
{
    if (w->dead)
        return;
    w->drained = false;
    w->cb(w->sock, w->arg);
    if (w->dead)
        return;
    if (w->drained) {
        w->armed = true;
        uv_idle_stop(&w->idle);
    } else if (readable(w->sock)) {
        w->armed = false;
        uv_idle_start(&w->idle, idle_cb);
    } else {
        w->armed = true;
        uv_idle_stop(&w->idle);
    }
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    dispatch(h->data);
}

static void idle_cb(uv_idle_t *h) { dispatch(h->data); }

static void prepare_cb(uv_prepare_t *h)
{
    zc_watch_t *w = h->data;
    if (w->dead || w->armed)
        return;
    if (readable(w->sock))
        uv_idle_start(&w->idle, idle_cb);
    else
        w->armed = true;
}

zc_watch_t *zc_watch_new(uv_loop_t *loop, void *sock, zc_watch_cb cb, void *arg)
{
    int fd;
    size_t len = sizeof fd;
    if (zmq_getsockopt(sock, ZMQ_FD, &fd, &len) != 0)
        return NULL;
    zc_watch_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->sock = sock;
    w->cb = cb;
    w->arg = arg;
    if (uv_poll_init(loop, &w->poll, fd) != 0) {
        free(w);
        return NULL;
    }
    uv_prepare_init(loop, &w->prepare);
    uv_idle_init(loop, &w->idle);
    w->poll.data = w->prepare.data = w->idle.data = w;
    uv_poll_start(&w->poll, UV_READABLE, poll_cb);
    uv_prepare_start(&w->prepare, prepare_cb);
    /* Messages may already be queued: look once on the first iteration. */
    uv_idle_start(&w->idle, idle_cb);
    w->next = registry;
    registry = w;
    return w;
}

static void close_cb(uv_handle_t *h)
{
    zc_watch_t *w = h->data;
    if (--w->closing == 0)
        free(w);
}

void zc_watch_destroy(zc_watch_t **p)
{
    zc_watch_t *w = *p;
    if (w == NULL)
        return;
    *p = NULL;
    w->dead = true;
    registry_remove(w);
    w->closing = 3;
    uv_close((uv_handle_t *)&w->poll, close_cb);
    uv_close((uv_handle_t *)&w->prepare, close_cb);
    uv_close((uv_handle_t *)&w->idle, close_cb);
}

int zc_zmsg_recv(void *sock, zc_zmsg_t *m)
{
    m->n = 0;
    m->over = false;
    for (;;) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        /* Only the first frame may report EAGAIN: the rest of a multipart
         * message is always delivered atomically with it. */
        if (zmq_msg_recv(&part, sock, m->n == 0 && !m->over ? ZMQ_DONTWAIT : 0) < 0) {
            int e = errno;
            if (e == EAGAIN)
                drained(sock);
            zmq_msg_close(&part);
            zc_zmsg_close(m);
            errno = e;
            return -1;
        }
        bool more = zmq_msg_more(&part);
        if (m->n < ZC_ZMSG_MAX) {
            m->part[m->n++] = part;
        } else {
            m->over = true;
            zmq_msg_close(&part);
        }
        if (!more)
            return 0;
    }
}

void zc_zmsg_close(zc_zmsg_t *m)
{
    for (int i = 0; i < m->n; i++)
        zmq_msg_close(&m->part[i]);
    m->n = 0;
}

int zc_zsend(void *sock, const void *f0, size_t n0, const void *f1, size_t n1)
{
    if (f0 != NULL) {
        if (zmq_send(sock, f0, n0, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
            return -1;
    }
    /* Once the first frame is queued the rest of the message cannot block. */
    int rc = zmq_send(sock, f1, n1, f0 != NULL ? 0 : ZMQ_DONTWAIT) < 0 ? -1 : 0;
    zc_watch_touched(sock);
    return rc;
}

void zc_zsock_defaults(void *sock)
{
    int zero = 0, one = 1, type = 0;
    size_t len = sizeof type;
    int64_t maxmsg = ZC_ZMQ_MAXMSG;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    zmq_getsockopt(sock, ZMQ_TYPE, &type, &len);
    if (type == ZMQ_ROUTER)
        zmq_setsockopt(sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
}

void zc_zmsg_each(void *sock, void (*fn)(zc_zmsg_t *m, void *arg), void *arg)
{
    for (int i = 0; i < ZC_ZMQX_BATCH; i++) {
        zc_zmsg_t z;
        if (zc_zmsg_recv(sock, &z) != 0)
            return;
        fn(&z, arg);
        zc_zmsg_close(&z);
    }
}

struct zc_monitor {
    void *sock;        /* the monitored socket (not owned) */
    void *pair;        /* PAIR receiving its events (owned) */
    zc_watch_t *watch; /* watcher on pair */
    zc_monitor_cb cb;  /* the owner's callback */
    void *arg;         /* its argument */
};

static void on_monitor_event(zc_zmsg_t *z, void *arg)
{
    zc_monitor_t *m = arg;
    if (z->n >= 1 && zc_zmsg_size(z, 0) >= 2) {
        uint16_t ev;
        memcpy(&ev, zc_zmsg_data(z, 0), 2);
        m->cb(m->arg, ev);
    }
}

static void on_monitor_readable(void *sock, void *arg)
{
    zc_zmsg_each(sock, on_monitor_event, arg);
}

zc_monitor_t *zc_monitor_new(uv_loop_t *loop, void *zctx, void *sock, int events, zc_monitor_cb cb,
                             void *arg)
{
    zc_monitor_t *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    char inproc[64];
    int zero = 0;
    snprintf(inproc, sizeof inproc, "inproc://zc-monitor-%p", (void *)m);
    m->sock = sock;
    m->cb = cb;
    m->arg = arg;
    m->pair = zmq_socket(zctx, ZMQ_PAIR);
    if (m->pair == NULL)
        goto err;
    zmq_setsockopt(m->pair, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_socket_monitor(sock, inproc, events) != 0)
        goto err;
    if (zmq_connect(m->pair, inproc) != 0 ||
        (m->watch = zc_watch_new(loop, m->pair, on_monitor_readable, m)) == NULL) {
        zmq_socket_monitor(sock, NULL, 0);
        goto err;
    }
    return m;
err:
    if (m->pair)
        zmq_close(m->pair);
    free(m);
    return NULL;
}

void zc_monitor_destroy(zc_monitor_t **p)
{
    zc_monitor_t *m = *p;
    if (m == NULL)
        return;
    zc_watch_destroy(&m->watch);
    zmq_socket_monitor(m->sock, NULL, 0);
    zmq_close(m->pair);
    free(m);
    *p = NULL;
}
