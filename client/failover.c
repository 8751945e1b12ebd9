/* failover: endpoint rotation and the watched DEALER; see failover.h.
 *
 * Socket lifecycle.  zcf_conn_open creates the DEALER (linger 0), starts its
 * monitor on a process-unique inproc address, connects the PAIR to that
 * address *before* connecting the DEALER (the monitor drops events nobody
 * receives yet, and we must not miss the first CONNECTED or
 * CONNECT_RETRIED), then connects the DEALER.  zcf_conn_close stops the
 * monitor and closes both sockets; with linger 0 a request still queued
 * for an unreachable peer is dropped, never delivered later behind the
 * client's back.
 *
 * Events are read in libzmq 4.x's first monitor format: frame 1 is the
 * 16-bit event number then a 32-bit value (host order), frame 2 the
 * endpoint.  Each DEALER connects to one endpoint, so every event is about
 * the current replica. */
#include "client/failover.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/clock.h"

/* --- endpoint list ------------------------------------------------------------- */

bool zcf_endpoint_valid(const char *ep)
{
    if (ep == NULL)
        return false;
    size_t n = strlen(ep);
    if (n == 0 || n > ZCART_ENDPOINT_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)ep[i] <= 0x20 || (unsigned char)ep[i] >= 0x7f || ep[i] == ',')
            return false;
    if (strncmp(ep, "ipc://", 6) == 0)
        return n > 6;
    if (strncmp(ep, "inproc://", 9) == 0)
        return n > 9;
    if (strncmp(ep, "tcp://", 6) != 0)
        return false;
    const char *host = ep + 6, *colon = strrchr(host, ':');
    if (colon == NULL || colon == host || host[0] == '*')
        return false;
    const char *port = colon + 1;
    if (*port == 0 || strlen(port) > 5)
        return false;
    long v = 0;
    for (const char *p = port; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        v = v * 10 + (*p - '0');
    }
    return v >= 1 && v <= 65535;
}

static int find(const zcf_list_t *l, const char *ep)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->eps[i], ep) == 0)
            return (int)i;
    return -1;
}

int zcf_list_find_or_add(zcf_list_t *l, const char *ep)
{
    if (!zcf_endpoint_valid(ep))
        return -1;
    int i = find(l, ep);
    if (i >= 0)
        return i;
    if (l->n == ZCART_MAX_REPLICAS)
        return -1;
    char *copy = strdup(ep);
    if (copy == NULL)
        return -1;
    l->eps[l->n] = copy;
    return (int)l->n++;
}

int zcf_list_parse(zcf_list_t *l, const char *csv, char *why, size_t whylen)
{
    char tmp[ZCART_ENDPOINT_MAX + 1];
    const char *p = csv;
    if (csv == NULL || *csv == 0) {
        snprintf(why, whylen, "no broker endpoint given");
        return -1;
    }
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        while (len && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len > 0) {
            if (len > ZCART_ENDPOINT_MAX) {
                snprintf(why, whylen, "broker endpoint longer than %d octets", ZCART_ENDPOINT_MAX);
                goto err;
            }
            memcpy(tmp, p, len);
            tmp[len] = 0;
            if (!zcf_endpoint_valid(tmp)) {
                snprintf(why, whylen,
                         "bad broker endpoint '%.80s' (want tcp://HOST:PORT, ipc://PATH or "
                         "inproc://NAME)",
                         tmp);
                goto err;
            }
            if (zcf_list_find_or_add(l, tmp) < 0) {
                snprintf(why, whylen, "more than %d broker endpoints", ZCART_MAX_REPLICAS);
                goto err;
            }
        }
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    if (l->n == 0) {
        snprintf(why, whylen, "no broker endpoint given");
        return -1;
    }
    l->cur = 0;
    return 0;
err:
    zcf_list_clear(l);
    return -1;
}

void zcf_list_clear(zcf_list_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->eps[i]);
    memset(l, 0, sizeof *l);
}

/* --- connection ------------------------------------------------------------------ */

/* Makes monitor addresses unique in the process (and so in any context). */
static atomic_uint_fast64_t monitor_counter;

int zcf_conn_open(zcf_conn_t *c, void *ctx, const char *ep, const zcart_options_t *opt)
{
    int64_t maxmsg = 1 << 20; /* a replica's answer is far smaller: bound what we allocate */
    char addr[96];
    int zero = 0, e;
    memset(c, 0, sizeof *c);
    snprintf(c->endpoint, sizeof c->endpoint, "%s", ep);
    c->dealer = zmq_socket(ctx, ZMQ_DEALER);
    if (c->dealer == NULL)
        goto err;
    zmq_setsockopt(c->dealer, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(c->dealer, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    /* Pinned key: the handshake fails unless the peer holds the cluster's
     * secret key, wherever a redirect pointed us. */
    if (opt && opt->server_key &&
        (zmq_setsockopt(c->dealer, ZMQ_CURVE_SERVERKEY, opt->server_key, 40) != 0 ||
         zmq_setsockopt(c->dealer, ZMQ_CURVE_PUBLICKEY, opt->public_key, 40) != 0 ||
         zmq_setsockopt(c->dealer, ZMQ_CURVE_SECRETKEY, opt->secret_key, 40) != 0))
        goto err_after_dealer;
    snprintf(addr, sizeof addr, "inproc://zcart-monitor-%d-%llu", (int)getpid(),
             (unsigned long long)atomic_fetch_add(&monitor_counter, 1));
    if (zmq_socket_monitor(c->dealer, addr,
                           ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED |
                               ZMQ_EVENT_CONNECT_RETRIED) != 0)
        goto err_after_dealer;
    c->monitor = zmq_socket(ctx, ZMQ_PAIR);
    if (c->monitor == NULL)
        goto err_after_dealer;
    zmq_setsockopt(c->monitor, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_connect(c->monitor, addr) != 0)
        goto err_after_monitor;
    if (zmq_connect(c->dealer, ep) != 0)
        goto err_after_monitor;
    size_t fl = sizeof c->dealer_fd;
    if (zmq_getsockopt(c->dealer, ZMQ_FD, &c->dealer_fd, &fl) != 0)
        goto err_after_monitor;
    fl = sizeof c->monitor_fd;
    if (zmq_getsockopt(c->monitor, ZMQ_FD, &c->monitor_fd, &fl) != 0)
        goto err_after_monitor;
    return 0;
err_after_monitor:
    e = errno;
    zmq_close(c->monitor);
    errno = e;
err_after_dealer:
    e = errno;
    zmq_socket_monitor(c->dealer, NULL, 0);
    zmq_close(c->dealer);
    errno = e;
err:
    memset(c, 0, sizeof *c);
    return -1;
}

void zcf_conn_close(zcf_conn_t *c)
{
    if (c->dealer) {
        zmq_socket_monitor(c->dealer, NULL, 0);
        zmq_close(c->dealer);
    }
    if (c->monitor)
        zmq_close(c->monitor);
    memset(c, 0, sizeof *c);
}

int zcf_conn_drain(zcf_conn_t *c)
{
    int seen = 0;
    if (c->monitor == NULL)
        return 0;
    if (c->monitor_quiet) {
        struct pollfd fd = {.fd = c->monitor_fd, .events = POLLIN};
        if (poll(&fd, 1, 0) == 0)
            return 0; /* nothing new: one system call instead of libzmq's two */
    }
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, c->monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            c->monitor_quiet = errno == EAGAIN;
            return seen;
        }
        uint16_t ev = 0;
        if (zmq_msg_size(&m) >= 6)
            memcpy(&ev, zmq_msg_data(&m), sizeof ev);
        bool more = zmq_msg_more(&m);
        zmq_msg_close(&m);
        /* The rest of a multipart message is already here: no wait. */
        while (more) {
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, c->monitor, 0) < 0) {
                zmq_msg_close(&m);
                break;
            }
            more = zmq_msg_more(&m);
            zmq_msg_close(&m);
        }
        switch (ev) {
        case ZMQ_EVENT_CONNECTED:
            c->connected = true;
            c->touched = true;
            seen |= ZCF_EV_CONNECTED;
            break;
        case ZMQ_EVENT_DISCONNECTED:
            c->connected = false;
            seen |= ZCF_EV_DISCONNECTED;
            break;
        case ZMQ_EVENT_CONNECT_RETRIED:
            seen |= ZCF_EV_RETRIED;
            break;
        default:
            break;
        }
    }
}

void zcf_conn_arm(zcf_conn_t *c)
{
    zcf_conn_drain(c);
    c->touched = c->connected;
}

/* Receive one message without waiting: ZCF_GOT, or ZCF_TIMEOUT for "none",
 * or ZCF_FAIL. Multipart messages are read whole and dropped. */
static zcf_wait_t recv_now(zcf_conn_t *c, zmq_msg_t *frame)
{
    for (;;) {
        zmq_msg_init(frame);
        if (zmq_msg_recv(frame, c->dealer, ZMQ_DONTWAIT) < 0) {
            int e = errno;
            zmq_msg_close(frame);
            errno = e;
            return e == EAGAIN ? ZCF_TIMEOUT : ZCF_FAIL;
        }
        if (!zmq_msg_more(frame))
            return ZCF_GOT;
        bool more = true;
        while (more) {
            zmq_msg_close(frame);
            zmq_msg_init(frame);
            if (zmq_msg_recv(frame, c->dealer, 0) < 0)
                break;
            more = zmq_msg_more(frame);
        }
        zmq_msg_close(frame);
    }
}

/* What the socket's ZMQ_EVENTS says (ZMQ_POLLIN...), -1 on error.  Asking
 * also processes the socket's pending commands, which is what lets its
 * ZMQ_FD stay quiet until something new happens. */
static int events_of(void *sock)
{
    int ev = 0;
    size_t len = sizeof ev;
    return zmq_getsockopt(sock, ZMQ_EVENTS, &ev, &len) == 0 ? ev : -1;
}

/* The wait below polls the two sockets' ZMQ_FDs itself rather than calling
 * zmq_poll: zmq_poll asks ZMQ_EVENTS of every item before and after each
 * poll, and an ask costs this thread two system calls (libzmq's fork check
 * and a zero-timeout poll of the socket's mailbox), so a request's wait
 * took ~20 system calls in the calling thread where this one takes ~13
 * (bench/README.md "The client's wait").  ZMQ_FD is edge-like: it turns
 * readable when commands reach the socket and stays quiet once they are
 * processed, even with messages still queued.  So the dealer's ZMQ_EVENTS
 * is asked before every block; the monitor is read (zcf_conn_drain, to
 * EAGAIN) whenever its ZMQ_FD turns readable, and first unless it is known
 * quiet (the drain before the send, zcf_conn_arm, left it so): after a
 * read to EAGAIN a new event cannot arrive without signalling the fd. */
zcf_wait_t zcf_conn_wait(zcf_conn_t *c, uint64_t until_ms, zmq_msg_t *frame)
{
    bool news = !c->monitor_quiet; /* the monitor may hold events nobody read */
    for (;;) {
        /* A reply that made it beats the news that the peer died after. */
        int ev = events_of(c->dealer);
        if (ev < 0)
            return ZCF_FAIL;
        if (ev & ZMQ_POLLIN) {
            zcf_wait_t r = recv_now(c, frame);
            if (r != ZCF_TIMEOUT)
                return r;
        }
        if (news) {
            int mev = zcf_conn_drain(c);
            if (mev & ZCF_EV_DISCONNECTED)
                return ZCF_LOST;
            if (mev & ZCF_EV_RETRIED)
                return ZCF_REFUSED;
        }
        uint64_t now = zc_mono_ms();
        if (now >= until_ms)
            return ZCF_TIMEOUT;
        uint64_t wait = until_ms - now;
        struct pollfd fds[2] = {{.fd = c->dealer_fd, .events = POLLIN},
                                {.fd = c->monitor_fd, .events = POLLIN}};
        int n = poll(fds, 2, wait > 60000 ? 60000 : (int)wait);
        if (n < 0 && errno != EINTR)
            return ZCF_FAIL;
        news = n > 0 && (fds[1].revents & POLLIN);
    }
}
