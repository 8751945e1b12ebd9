/* failover: the replica list a client rotates through, and the one watched
 * DEALER connection it holds (internal to libzcart).
 *
 * The list starts as the user's --brokers and grows with endpoints learnt
 * from NOT_LEADER answers.  `cur` is where the next try goes; it survives
 * between calls, so a client keeps talking to the leader it found.
 *
 * A connection is a DEALER connected to exactly one endpoint plus a PAIR
 * that receives the DEALER's zmq_socket_monitor events over inproc.  The
 * events turn a dead peer into an immediate verdict instead of a full
 * attempt timeout:
 *   DISCONNECTED      the peer went away (a kill -9 resets the TCP
 *                     connection): a request in flight may or may not have
 *                     been delivered -> ZCF_LOST;
 *   CONNECT_RETRIED   a connect attempt failed (refused: nobody listens):
 *                     the request is still queued here, undelivered ->
 *                     ZCF_REFUSED.
 * A peer that is alive but silent (SIGSTOP, partition, slow leader) gives
 * no event; only the attempt timeout catches it. */
#ifndef ZC_CLIENT_FAILOVER_H
#define ZC_CLIENT_FAILOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "client/zcart.h"

/* The replicas a client knows. */
typedef struct {
    char *eps[ZCART_MAX_REPLICAS]; /* owned endpoint strings, n of them */
    size_t n;                      /* endpoints known, >= 1 once parsed */
    size_t cur;                    /* index of the replica tried next */
} zcf_list_t;

/* True if ep looks connectable: tcp://HOST:PORT (HOST not a wildcard,
 * PORT 1..65535), ipc://PATH or inproc://NAME, at most 255 octets. */
bool zcf_endpoint_valid(const char *ep);
/* Fill an empty list from "EP,EP,..." (blanks around entries ignored,
 * duplicates dropped).  -1 with why if no endpoint or one is invalid. */
int zcf_list_parse(zcf_list_t *l, const char *csv, char *why, size_t whylen);
/* Index of ep, added at the end if new.  -1 if ep is invalid or the list is
 * full. */
int zcf_list_find_or_add(zcf_list_t *l, const char *ep);
/* Free the strings; the list becomes empty. */
void zcf_list_clear(zcf_list_t *l);

/* Monitor events seen by zcf_conn_drain (bit set). */
enum { ZCF_EV_CONNECTED = 1, ZCF_EV_DISCONNECTED = 2, ZCF_EV_RETRIED = 4 };

/* One watched connection. All fields NULL/false when closed. */
typedef struct {
    void *dealer;                          /* DEALER connected to endpoint, owned */
    void *monitor;                         /* PAIR receiving dealer's events, owned */
    int dealer_fd;                         /* dealer's ZMQ_FD (libzmq's, not ours) */
    int monitor_fd;                        /* monitor's ZMQ_FD (libzmq's, not ours) */
    bool monitor_quiet;                    /* zcf_conn_drain read the monitor to EAGAIN
                                              and no other call processed its commands
                                              since: monitor_fd tells of any new event.
                                              Whoever zmq_polls the monitor clears it */
    char endpoint[ZCART_ENDPOINT_MAX + 1]; /* the peer */
    bool connected;                        /* the last event was CONNECTED */
    bool touched;                          /* connected at some point since the last
                                              zcf_conn_arm: a frame sent then may
                                              have been delivered */
} zcf_conn_t;

/* Open c (which must be closed) to ep in ctx.  -1 with errno on failure
 * (c stays closed). */
int zcf_conn_open(zcf_conn_t *c, void *ctx, const char *ep, const zcart_options_t *opt);
/* Close both sockets without lingering; a closed c is left alone. */
void zcf_conn_close(zcf_conn_t *c);
/* Read every pending monitor event without blocking; returns the
 * ZCF_EV_* bits seen and updates c->connected. */
int zcf_conn_drain(zcf_conn_t *c);

/* Before a send: read the pending events (old news) and start tracking
 * `touched` from the current connection state. */
void zcf_conn_arm(zcf_conn_t *c);

/* What zcf_conn_wait saw. */
typedef enum {
    ZCF_GOT,     /* a single-frame message arrived (in *frame) */
    ZCF_TIMEOUT, /* nothing by the time limit */
    ZCF_LOST,    /* the connection dropped */
    ZCF_REFUSED, /* the peer cannot be connected; nothing was delivered */
    ZCF_FAIL,    /* a ZeroMQ error (errno) */
} zcf_wait_t;

/* Wait, at most until the monotonic time until_ms, for a frame on c or a
 * failure of c.  On ZCF_GOT *frame is initialised and holds the frame (the
 * caller closes it); otherwise *frame is untouched.  Frames of multipart
 * messages are not protocol messages and are discarded. */
zcf_wait_t zcf_conn_wait(zcf_conn_t *c, uint64_t until_ms, zmq_msg_t *frame);

#endif
