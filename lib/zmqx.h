/* zmqx: ZeroMQ sockets inside a libuv loop, and whole-message helpers.
 *
 * A ZeroMQ socket exposes ZMQ_FD, which is *edge-triggered*: it signals that
 * the socket's state may have changed, not that a message is waiting, and a
 * send on the same socket can consume the edge of a pending receive.  So the
 * watcher never trusts the fd alone.  It asks ZMQ_EVENTS:
 *   - when uv_poll reports the fd readable,
 *   - in a uv_prepare handle, i.e. right before every loop iteration blocks,
 * and while ZMQ_EVENTS says POLLIN it keeps a uv_idle handle active so the
 * loop does not block and the callback runs again next iteration.  The
 * callback reads at most a bounded batch per call, so one busy socket cannot
 * starve timers or other sockets.  Nothing busy-polls: with no messages the
 * idle handle is stopped and the loop sleeps in epoll.
 *
 * Only a call on the socket itself can consume its edge (libzmq processes a
 * socket's pending commands inside its own send, recv, connect and
 * ZMQ_EVENTS), and each ZMQ_EVENTS query costs two system calls when nothing
 * is pending (libzmq's getpid() fork check and a poll() of its mailbox).  So
 * a watcher is *armed* once ZMQ_EVENTS said "not readable" and nothing has
 * called into the socket since: its fd will signal what comes next, and the
 * uv_prepare check skips it.  Sends through zc_zsend disarm the socket's
 * watcher (a per-thread registry maps sockets to watchers); any other call
 * on a watched socket outside its callback must be followed by
 * zc_watch_touched. */
#ifndef ZC_LIB_ZMQX_H
#define ZC_LIB_ZMQX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <zmq.h>

/* Messages a watcher callback should handle per call before returning. */
#define ZC_ZMQX_BATCH 64

typedef struct zc_watch zc_watch_t;

/* Called when `sock` may be readable.  Receive with ZMQ_DONTWAIT until EAGAIN
 * or until ZC_ZMQX_BATCH messages were handled. */
typedef void (*zc_watch_cb)(void *sock, void *arg);

/* Start watching `sock` (not owned) on `loop`.  NULL on error. */
zc_watch_t *zc_watch_new(uv_loop_t *loop, void *sock, zc_watch_cb cb, void *arg);
/* Stop watching and free once libuv has closed the handles; *p is set to
 * NULL.  The socket itself is left to the caller. */
void zc_watch_destroy(zc_watch_t **p);
/* A call on `sock` that may have processed its commands happened outside
 * its watcher's callback (a send not through zc_zsend, a connect): check it
 * again before the loop blocks.  A socket nobody watches is ignored. */
void zc_watch_touched(void *sock);

/* A socket's connection events (zmq_socket_monitor) delivered on the loop:
 * an inproc PAIR receives them and a watcher reads them.  Destroy it
 * before closing the socket it monitors. */
typedef struct zc_monitor zc_monitor_t;
typedef void (*zc_monitor_cb)(void *arg, uint16_t event);
/* Monitor `sock` (not owned) for `events` (ZMQ_EVENT_* bits); cb(arg, event)
 * for each.  NULL on error (errno from ZeroMQ). */
zc_monitor_t *zc_monitor_new(uv_loop_t *loop, void *zctx, void *sock, int events, zc_monitor_cb cb,
                             void *arg);
void zc_monitor_destroy(zc_monitor_t **p);

/* At most this many frames are kept of a received message; the rest are read
 * and discarded, and the message is marked `over`. */
#define ZC_ZMSG_MAX 4

/* One whole received multipart message. */
typedef struct {
    zmq_msg_t part[ZC_ZMSG_MAX]; /* the first n frames */
    int n;                       /* frames kept */
    bool over;                   /* more than ZC_ZMSG_MAX frames arrived */
} zc_zmsg_t;

/* Receive one whole message without blocking.  0 on success; -1 when no
 * message is waiting (errno EAGAIN) or on error.  Close with zc_zmsg_close. */
int zc_zmsg_recv(void *sock, zc_zmsg_t *m);
void zc_zmsg_close(zc_zmsg_t *m);
/* The usual body of a zc_watch_cb: receive up to ZC_ZMQX_BATCH whole
 * messages from sock, fn(m, arg) for each; each is closed after fn. */
void zc_zmsg_each(void *sock, void (*fn)(zc_zmsg_t *m, void *arg), void *arg);
static inline const void *zc_zmsg_data(zc_zmsg_t *m, int i) { return zmq_msg_data(&m->part[i]); }
static inline size_t zc_zmsg_size(zc_zmsg_t *m, int i) { return zmq_msg_size(&m->part[i]); }

/* Send [frame0][frame1] (frame0 may be NULL to send only frame1) without
 * blocking.  0 on success, -1 with errno (EAGAIN at high water mark,
 * EHOSTUNREACH for an unknown ROUTER peer). */
int zc_zsend(void *sock, const void *f0, size_t n0, const void *f1, size_t n1);

/* Largest ZeroMQ message part a socket accepts; a peer announcing a larger
 * one is disconnected by libzmq before anything is allocated for it. */
#define ZC_ZMQ_MAXMSG (1 << 20)

/* Common socket options: linger 0, ZC_ZMQ_MAXMSG, and for ROUTERs
 * mandatory routing. */
void zc_zsock_defaults(void *sock);

#endif
