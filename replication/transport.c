/* transport: see transport.h for the design (the relay, its bounds, and
 * why a restarted peer no longer eats the first vote). */
#include "replication/transport.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

#include "lib/list.h"
#include "lib/log.h"
#include "lib/zmqx.h"

/* raft 0.15's message types (raft.h enum raft_io_type). */
enum { T_AE = 1, T_AER, T_RV, T_RVR, T_IS, T_TN };

/* Header lengths raft 0.15 writes (uv_encoding.c sizeof*): a header is never
 * shorter than what uvDecodeMessage reads, nor much longer. */
#define PREAMBLE 16
#define HDR_MAX (64u << 20) /* an AppendEntries of ~4M entries */

typedef struct relay relay_t;

/* One raft address we send to: a DEALER connected to its ROUTER. */
typedef struct {
    zc_link_t link;                      /* in relay->peers */
    relay_t *r;                          /* owner */
    uint64_t id;                         /* raft id raft gave for this address */
    char address[ZC_RELAY_ADDR_MAX + 1]; /* "host:port" */
    void *dealer;                        /* connected to tcp://address */
    zc_monitor_t *monitor;               /* the dealer's connection events */
    bool up;                             /* handshake done, not disconnected since */
    zc_link_t waiting;                   /* pending_t: raft connects waiting for `up` */
} peer_t;

/* A raft connect to a peer whose first handshake has not completed yet:
 * with ZMQ_IMMEDIATE the first messages would be dropped, so raft is told
 * "connected" only once the DEALER is (raft queues meanwhile). */
typedef struct {
    zc_link_t link;             /* in peer->waiting */
    struct raft_uv_connect *req; /* raft's request */
    raft_uv_connect_cb cb;       /* its callback */
    uv_pipe_t *rp;               /* raft's end, handed over on success */
} pending_t;

/* A stream raft opened (connect): raft writes, we read and relay. */
typedef struct {
    zc_link_t link;  /* in relay->outs */
    relay_t *r;      /* owner */
    peer_t *peer;    /* where it goes */
    uint64_t sid;    /* stream id, unique in this process */
    uv_pipe_t pipe;  /* our end of the socketpair */
    uint8_t *buf;    /* bytes read, not yet sent (a message prefix) */
    size_t len;      /* bytes in buf */
    size_t cap;      /* allocated */
    bool closing;    /* uv_close called */
} out_t;

/* A stream raft accepted: we write what a peer sent, raft reads. */
typedef struct {
    zc_link_t link;       /* in relay->ins */
    relay_t *r;           /* owner */
    uint64_t sender;      /* peer's raft id */
    uint64_t incarnation; /* peer's process */
    uint64_t sid;         /* peer's stream id */
    uv_pipe_t pipe;       /* our end of the socketpair */
    bool closing;         /* uv_close called */
} in_t;

/* One relayed raft message being written to an accepted stream. */
typedef struct {
    uv_write_t req;    /* libuv write */
    in_t *in;          /* stream */
    zmq_msg_t *parts;  /* the message's raft parts (kept alive until written) */
    uv_buf_t *bufs;    /* views of parts */
    unsigned n;        /* parts */
} in_write_t;

/* Last incarnation seen per sender. */
typedef struct {
    zc_link_t link;       /* in relay->senders */
    uint64_t id;          /* sender's raft id */
    uint64_t incarnation; /* its current process */
} sender_t;

struct relay {
    struct raft_uv_transport *t;          /* the transport we implement */
    uv_loop_t *loop;                      /* raft's loop */
    void *zctx;                           /* czmq's context */
    const zc_sec_t *sec;                  /* keys, NULL when insecure */
    const zc_sec_t *raft_sec;             /* own raft key (client side), NULL: sec's */
    const char *role;                     /* the role the raft port admits: "raft"
                                             with per-replica keys, else "replica" */
    uint64_t max_msg;                     /* bound on one raft message */
    void (*peer_restarted)(void *, uint64_t); /* told of a peer's new process */
    void *peer_restarted_arg;                 /* its argument */
    uint64_t id;                          /* our raft id */
    char address[ZC_RELAY_ADDR_MAX + 1];  /* our raft address */
    uint64_t incarnation;                 /* random, this process */
    uint64_t next_sid;                    /* next outgoing stream id */
    void *router;                         /* bound to our raft address */
    zc_watch_t *rwatch;                   /* watcher on router */
    raft_uv_accept_cb accept_cb;          /* raft's, from listen */
    zc_link_t peers;                      /* peer_t */
    zc_link_t outs;                       /* out_t */
    zc_link_t ins;                        /* in_t */
    zc_link_t senders;                    /* sender_t */
    zc_transport_stats_t stats;           /* counters */
    bool closing;                         /* raft called close */
    raft_uv_transport_close_cb close_cb;  /* its callback */
    unsigned handles;                     /* our uv handles not yet closed */
    uv_timer_t closer;                    /* defers close_cb past close() */
};

/* --- framing (pure) --- */

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

int zc_raft_msg_size(const uint8_t *p, size_t len, uint64_t max, uint64_t *total)
{
    if (len < PREAMBLE)
        return len >= 8 && (get64(p) < T_AE || get64(p) > T_TN) ? -1 : 0;
    uint64_t type = get64(p), hl = get64(p + 8), payload = 0;
    if (type < T_AE || type > T_TN || hl == 0 || hl > HDR_MAX || hl > max - PREAMBLE ||
        max < PREAMBLE)
        return -1;
    /* Fixed-size headers: exactly what raft writes (V1 and V2 of the vote). */
    switch (type) {
    case T_RV: if (hl != 32 && hl != 40) return -1; break;
    case T_RVR: if (hl != 16 && hl != 24) return -1; break;
    case T_AER: case T_TN: if (hl != 24) return -1; break;
    default: break;
    }
    if (len < PREAMBLE + hl) {
        /* Variable headers: reject early what can already be judged. */
        return type == T_AE || type == T_IS ? (hl < 40 ? -1 : 0) : 0;
    }
    const uint8_t *h = p + PREAMBLE;
    if (type == T_AE) {
        /* term, prev index, prev term, commit, n, n x (term, type, pad, len u32) */
        if (hl < 40)
            return -1;
        uint64_t n = get64(h + 32);
        if (n > (hl - 40) / 16 || hl > 48 + 16 * n)
            return -1;
        for (uint64_t i = 0; i < n; i++) {
            const uint8_t *e = h + 40 + 16 * i;
            if (e[8] < RAFT_COMMAND || e[8] > RAFT_CHANGE)
                return -1;
            payload += get32(e + 12);
        }
    } else if (type == T_IS) {
        /* term, last index, last term, conf index, conf len, conf, data len */
        if (hl < 48)
            return -1;
        uint64_t conf = get64(h + 32);
        if (conf > hl - 48 || hl > 56 + conf)
            return -1;
        payload = get64(h + 40 + conf);
    }
    if (payload > max - PREAMBLE - hl)
        return -1;
    *total = PREAMBLE + hl + payload;
    return 1;
}

size_t zc_relay_hdr_encode(const zc_relay_hdr_t *h, uint8_t *out, size_t n)
{
    size_t al = strlen(h->address);
    if (al > ZC_RELAY_ADDR_MAX || n < ZC_RELAY_HDR_FIXED + al)
        return 0;
    out[0] = ZC_RELAY_VERSION;
    out[1] = h->kind;
    put64(out + 2, h->stream);
    put64(out + 10, h->sender);
    put64(out + 18, h->incarnation);
    out[26] = (uint8_t)al;
    memcpy(out + 27, h->address, al);
    return ZC_RELAY_HDR_FIXED + al;
}

int zc_relay_hdr_decode(const uint8_t *p, size_t n, zc_relay_hdr_t *h)
{
    if (n < ZC_RELAY_HDR_FIXED || p[0] != ZC_RELAY_VERSION ||
        (p[1] != ZC_RELAY_DATA && p[1] != ZC_RELAY_CLOSE) || n != (size_t)ZC_RELAY_HDR_FIXED + p[26])
        return -1;
    h->kind = p[1];
    h->stream = get64(p + 2);
    h->sender = get64(p + 10);
    h->incarnation = get64(p + 18);
    memcpy(h->address, p + 27, p[26]);
    h->address[p[26]] = 0;
    if (h->sender == 0 || h->incarnation == 0 || memchr(h->address, 0, p[26]) != NULL)
        return -1;
    return 0;
}

/* --- closing --- */

static void maybe_closed(relay_t *r)
{
    if (!r->closing || r->handles > 0)
        return;
    raft_uv_transport_close_cb cb = r->close_cb;
    struct raft_uv_transport *t = r->t;
    while (!zc_list_empty(&r->senders)) {
        sender_t *s = ZC_CONTAINER(r->senders.next, sender_t, link);
        zc_link_remove(&s->link);
        free(s);
    }
    t->impl = NULL;
    free(r);
    if (cb)
        cb(t);
}

static void out_closed(uv_handle_t *h)
{
    out_t *o = h->data;
    relay_t *r = o->r;
    free(o->buf);
    free(o);
    r->handles--;
    maybe_closed(r);
}

static void out_close(out_t *o)
{
    if (o->closing)
        return;
    o->closing = true;
    zc_link_remove(&o->link);
    uv_close((uv_handle_t *)&o->pipe, out_closed);
}

static void in_closed(uv_handle_t *h)
{
    in_t *in = h->data;
    relay_t *r = in->r;
    free(in);
    r->handles--;
    maybe_closed(r);
}

static void in_close(in_t *in)
{
    if (in->closing)
        return;
    in->closing = true;
    zc_link_remove(&in->link);
    uv_close((uv_handle_t *)&in->pipe, in_closed);
}

/* Closes the accepted streams from `sender` (every incarnation but `keep`). */
static unsigned close_from(relay_t *r, uint64_t sender, uint64_t keep)
{
    unsigned k = 0;
    zc_link_t *l = r->ins.next;
    while (l != &r->ins) {
        in_t *in = ZC_CONTAINER(l, in_t, link);
        l = l->next;
        if (in->sender == sender && in->incarnation != keep) {
            in_close(in);
            k++;
        }
    }
    return k;
}

static void raft_pipe_close_cb(uv_handle_t *h) { raft_free(h); }

/* Completes raft's waiting connects: handed the stream, or cancelled. */
static void fire_pending(peer_t *p, bool ok)
{
    while (!zc_list_empty(&p->waiting)) {
        pending_t *w = ZC_CONTAINER(p->waiting.next, pending_t, link);
        zc_link_remove(&w->link);
        if (ok) {
            w->cb(w->req, (uv_stream_t *)w->rp, 0);
        } else {
            uv_close((uv_handle_t *)w->rp, raft_pipe_close_cb);
            w->cb(w->req, NULL, RAFT_CANCELED);
        }
        free(w);
    }
}

static void peer_free(peer_t *p)
{
    fire_pending(p, false);
    zc_monitor_destroy(&p->monitor);
    if (p->dealer)
        zmq_close(p->dealer);
    free(p);
}

/* --- sending: raft's outgoing streams --- */

static int send_msg(relay_t *r, peer_t *p, uint8_t kind, uint64_t sid, const uint8_t *data,
                    size_t len)
{
    zc_relay_hdr_t h = {.kind = kind, .stream = sid, .sender = r->id,
                        .incarnation = r->incarnation};
    uint8_t hdr[ZC_RELAY_HDR_FIXED + ZC_RELAY_ADDR_MAX];
    snprintf(h.address, sizeof h.address, "%s", r->address);
    size_t hl = zc_relay_hdr_encode(&h, hdr, sizeof hdr);
    if (zmq_send(p->dealer, hdr, hl, (len ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT) < 0)
        return -1;
    /* Once the first frame is queued the rest of the message cannot block. */
    while (len > 0) {
        size_t n = len > ZC_RELAY_CHUNK ? ZC_RELAY_CHUNK : len;
        if (zmq_send(p->dealer, data, n, len > n ? ZMQ_SNDMORE : 0) < 0)
            return -1;
        data += n;
        len -= n;
    }
    return 0;
}

static void out_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    out_t *o = h->data;
    (void)hint;
    size_t want = o->len + 65536;
    if (want > o->cap) {
        size_t cap = o->cap ? o->cap : 65536;
        while (cap < want)
            cap *= 2;
        uint8_t *nb = realloc(o->buf, cap);
        if (nb == NULL) {
            *buf = uv_buf_init(NULL, 0); /* read_cb gets UV_ENOBUFS */
            return;
        }
        o->buf = nb;
        o->cap = cap;
    }
    *buf = uv_buf_init((char *)o->buf + o->len, (unsigned)(o->cap - o->len));
}

static void out_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    out_t *o = s->data;
    relay_t *r = o->r;
    (void)buf;
    if (nread < 0) {
        /* raft closed its end (or we are out of memory): tell the peer. */
        if (!r->closing)
            send_msg(r, o->peer, ZC_RELAY_CLOSE, o->sid, NULL, 0);
        out_close(o);
        return;
    }
    o->len += (size_t)nread;
    size_t off = 0;
    for (;;) {
        uint64_t total;
        int rc = zc_raft_msg_size(o->buf + off, o->len - off, r->max_msg, &total);
        if (rc < 0) {
            zc_error("raft relay: raft wrote a message the relay cannot frame (stream to %s); "
                     "closing it",
                     o->peer->address);
            out_close(o);
            return;
        }
        if (rc == 0 || o->len - off < total)
            break;
        if (send_msg(r, o->peer, ZC_RELAY_DATA, o->sid, o->buf + off, total) != 0) {
            r->stats.dropped++; /* not connected or at the high-water mark: raft resends */
            zc_debug("raft relay: message to %s dropped: %s", o->peer->address,
                     zmq_strerror(zmq_errno()));
        }
        off += total;
    }
    if (off > 0) {
        memmove(o->buf, o->buf + off, o->len - off);
        o->len -= off;
    }
    if (o->len == 0 && o->cap > (1u << 20)) {
        free(o->buf);
        o->buf = NULL;
        o->cap = 0;
    }
}

static void on_peer_event(void *arg, uint16_t ev)
{
    peer_t *p = arg;
    if (ev == ZMQ_EVENT_HANDSHAKE_SUCCEEDED && !p->r->closing) {
        p->up = true;
        fire_pending(p, true);
    }
    if (ev == ZMQ_EVENT_DISCONNECTED && !p->r->closing) {
        p->up = false;
        unsigned k = close_from(p->r, p->id, 0);
        zc_info("raft relay: connection to peer %" PRIu64 " at %s dropped; closed %u "
                "raft streams from it",
                p->id, p->address, k);
    }
}

static peer_t *peer_get(relay_t *r, uint64_t id, const char *address)
{
    for (zc_link_t *l = r->peers.next; l != &r->peers; l = l->next) {
        peer_t *p = ZC_CONTAINER(l, peer_t, link);
        if (strcmp(p->address, address) == 0) {
            p->id = id;
            return p;
        }
    }
    if (strlen(address) > ZC_RELAY_ADDR_MAX)
        return NULL;
    peer_t *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->r = r;
    p->id = id;
    zc_link_init(&p->waiting);
    snprintf(p->address, sizeof p->address, "%s", address);
    char ep[ZC_RELAY_ADDR_MAX + 16];
    snprintf(ep, sizeof ep, "tcp://%s", address);
    int one = 1, ivl = 100, hb = 1000, hbt = 3000;
    p->dealer = zmq_socket(r->zctx, ZMQ_DEALER);
    if (p->dealer == NULL)
        goto err;
    zc_zsock_defaults(p->dealer);
    zmq_setsockopt(p->dealer, ZMQ_IMMEDIATE, &one, sizeof one);
    zmq_setsockopt(p->dealer, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(p->dealer, ZMQ_HEARTBEAT_IVL, &hb, sizeof hb);
    zmq_setsockopt(p->dealer, ZMQ_HEARTBEAT_TIMEOUT, &hbt, sizeof hbt);
    /* Replicas share the replica certificate: its public key is the server's. */
    if (r->sec != NULL &&
        zc_sec_client(r->raft_sec ? r->raft_sec : r->sec, p->dealer, zc_sec_public(r->sec)) != 0)
        goto err;
    p->monitor =
        zc_monitor_new(r->loop, r->zctx, p->dealer,
                       ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED, on_peer_event, p);
    if (p->monitor == NULL || zmq_connect(p->dealer, ep) != 0)
        goto err;
    zc_list_push_back(&r->peers, &p->link);
    return p;
err:
    zc_warn("raft relay: cannot connect to %s: %s", address, zmq_strerror(zmq_errno()));
    peer_free(p);
    return NULL;
}

/* A socketpair: fds[0] for raft, fds[1] for us. */
static int pair(int fds[2])
{
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds);
}

/* raft's end as a heap uv_pipe_t (raft frees it with raft_free). */
static uv_pipe_t *raft_end(relay_t *r, int fd)
{
    uv_pipe_t *p = raft_malloc(sizeof *p);
    if (p == NULL)
        return NULL;
    if (uv_pipe_init(r->loop, p, 0) != 0) {
        raft_free(p);
        return NULL;
    }
    if (uv_pipe_open(p, fd) != 0) {
        uv_close((uv_handle_t *)p, raft_pipe_close_cb);
        return NULL;
    }
    return p;
}

static int t_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                     const char *address, raft_uv_connect_cb cb)
{
    relay_t *r = t->impl;
    int fds[2];
    peer_t *p = peer_get(r, id, address);
    if (p == NULL)
        return RAFT_NOCONNECTION;
    out_t *o = calloc(1, sizeof *o);
    if (o == NULL)
        return RAFT_NOMEM;
    if (pair(fds) != 0) {
        free(o);
        return RAFT_NOCONNECTION;
    }
    uv_pipe_t *rp = raft_end(r, fds[0]);
    if (rp == NULL) {
        close(fds[0]);
        close(fds[1]);
        free(o);
        return RAFT_NOCONNECTION;
    }
    o->r = r;
    o->peer = p;
    o->sid = ++r->next_sid;
    uv_pipe_init(r->loop, &o->pipe, 0);
    o->pipe.data = o;
    r->handles++;
    zc_list_push_back(&r->outs, &o->link);
    if (uv_pipe_open(&o->pipe, fds[1]) != 0 ||
        uv_read_start((uv_stream_t *)&o->pipe, out_alloc, out_read) != 0) {
        close(fds[1]);
        out_close(o);
        uv_close((uv_handle_t *)rp, raft_pipe_close_cb);
        return RAFT_NOCONNECTION;
    }
    if (!p->up) {
        pending_t *w = calloc(1, sizeof *w);
        if (w == NULL) {
            out_close(o);
            uv_close((uv_handle_t *)rp, raft_pipe_close_cb);
            return RAFT_NOMEM;
        }
        w->req = req;
        w->cb = cb;
        w->rp = rp;
        zc_list_push_back(&p->waiting, &w->link);
        return 0;
    }
    /* raft set req->data before calling us; a synchronous callback is fine. */
    cb(req, (uv_stream_t *)rp, 0);
    return 0;
}

/* --- receiving: the ROUTER --- */

static void in_read_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    static char sink[256]; /* raft never writes on accepted streams */
    (void)h;
    (void)hint;
    *buf = uv_buf_init(sink, sizeof sink);
}

static void in_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    if (nread < 0)
        in_close(s->data); /* raft closed its end */
}

static in_t *in_open(relay_t *r, const zc_relay_hdr_t *h)
{
    int fds[2];
    if (r->accept_cb == NULL || pair(fds) != 0)
        return NULL;
    in_t *in = calloc(1, sizeof *in);
    uv_pipe_t *rp = in ? raft_end(r, fds[0]) : NULL;
    if (rp == NULL) {
        close(fds[0]);
        close(fds[1]);
        free(in);
        return NULL;
    }
    in->r = r;
    in->sender = h->sender;
    in->incarnation = h->incarnation;
    in->sid = h->stream;
    uv_pipe_init(r->loop, &in->pipe, 0);
    in->pipe.data = in;
    r->handles++;
    zc_list_push_back(&r->ins, &in->link);
    if (uv_pipe_open(&in->pipe, fds[1]) != 0 ||
        uv_read_start((uv_stream_t *)&in->pipe, in_read_alloc, in_read) != 0) {
        close(fds[1]);
        in_close(in);
        uv_close((uv_handle_t *)rp, raft_pipe_close_cb);
        return NULL;
    }
    r->stats.opened++;
    zc_debug("raft relay: stream %" PRIu64 " from peer %" PRIu64 " (%s) opened", h->stream,
             h->sender, h->address);
    r->accept_cb(r->t, h->sender, h->address, (uv_stream_t *)rp);
    return in;
}

static in_t *in_find(relay_t *r, const zc_relay_hdr_t *h)
{
    for (zc_link_t *l = r->ins.next; l != &r->ins; l = l->next) {
        in_t *in = ZC_CONTAINER(l, in_t, link);
        if (in->sender == h->sender && in->incarnation == h->incarnation &&
            in->sid == h->stream && !in->closing)
            return in;
    }
    return NULL;
}

/* A sender's new process: close what its previous one opened. */
static void note_incarnation(relay_t *r, const zc_relay_hdr_t *h)
{
    for (zc_link_t *l = r->senders.next; l != &r->senders; l = l->next) {
        sender_t *s = ZC_CONTAINER(l, sender_t, link);
        if (s->id != h->sender)
            continue;
        if (s->incarnation != h->incarnation) {
            unsigned k = close_from(r, h->sender, h->incarnation);
            s->incarnation = h->incarnation;
            r->stats.restarts++;
            zc_info("raft peer %" PRIu64 " restarted (new process at %s): closed %u raft "
                    "streams from its previous process",
                    h->sender, h->address, k);
            if (r->peer_restarted != NULL)
                r->peer_restarted(r->peer_restarted_arg, h->sender);
        }
        return;
    }
    sender_t *s = calloc(1, sizeof *s);
    if (s != NULL) {
        s->id = h->sender;
        s->incarnation = h->incarnation;
        zc_list_push_back(&r->senders, &s->link);
    }
}

static void in_written(uv_write_t *req, int status)
{
    in_write_t *w = req->data;
    for (unsigned i = 0; i < w->n; i++)
        zmq_msg_close(&w->parts[i]);
    if (status != 0 && status != UV_ECANCELED)
        in_close(w->in); /* raft closed it: the next message opens a new one */
    free(w->parts);
    free(w->bufs);
    free(w);
}

static void log_refused(relay_t *r, zmq_msg_t *m, const char *why, uint64_t count)
{
    if (!zc_log_sampled(count, 10))
        return;
    const char *key = zc_sec_peer(m, "User-Id"), *role = zc_sec_peer(m, "role");
    char k[64], ro[64];
    zc_escape(key ? key : "-", key ? strlen(key) : 1, k, sizeof k);
    zc_escape(role ? role : "-", role ? strlen(role) : 1, ro, sizeof ro);
    zc_warn("raft relay: dropped a message on %s: %s (key %s, role %s; %" PRIu64 " so far)",
            r->address, why, k, ro, count);
}

/* Receives the rest of a multipart message after frame 0 and 1: every raft
 * part into *parts (n).  -1 when out of memory (the rest is discarded). */
static int recv_rest(void *sock, zmq_msg_t **parts, unsigned *n, uint64_t *bytes)
{
    unsigned cap = 0;
    *parts = NULL;
    *n = 0;
    *bytes = 0;
    int more = 1, err = 0;
    while (more) {
        if (*n == cap) {
            unsigned nc = cap ? cap * 2 : 4;
            zmq_msg_t *np = realloc(*parts, nc * sizeof *np);
            if (np == NULL) {
                err = -1;
                zmq_msg_t junk;
                zmq_msg_init(&junk);
                zmq_msg_recv(&junk, sock, 0);
                more = zmq_msg_more(&junk);
                zmq_msg_close(&junk);
                continue;
            }
            *parts = np;
            cap = nc;
        }
        zmq_msg_init(&(*parts)[*n]);
        if (zmq_msg_recv(&(*parts)[*n], sock, 0) < 0) {
            zmq_msg_close(&(*parts)[*n]);
            return -1;
        }
        *bytes += zmq_msg_size(&(*parts)[*n]);
        more = zmq_msg_more(&(*parts)[*n]);
        (*n)++;
    }
    return err;
}

static void drain_rest(void *sock, zmq_msg_t *last)
{
    while (zmq_msg_more(last)) {
        zmq_msg_close(last);
        zmq_msg_init(last);
        if (zmq_msg_recv(last, sock, 0) < 0)
            break;
    }
}

static void free_parts(zmq_msg_t *parts, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        zmq_msg_close(&parts[i]);
    free(parts);
}

/* zc_raft_msg_size over a message cut in parts: the first part normally
 * holds preamble and header; a longer header (a very large AppendEntries)
 * is gathered first, up to the header bound. */
static int msg_size(zmq_msg_t *parts, unsigned n, uint64_t bytes, uint64_t max, uint64_t *total)
{
    int rc = zc_raft_msg_size(zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]), max, total);
    if (rc != 0 || n == 1)
        return rc;
    size_t want = bytes < PREAMBLE + HDR_MAX ? (size_t)bytes : PREAMBLE + HDR_MAX, got = 0;
    uint8_t *tmp = malloc(want);
    if (tmp == NULL)
        return -1;
    for (unsigned i = 0; i < n && got < want; i++) {
        size_t k = zmq_msg_size(&parts[i]);
        if (k > want - got)
            k = want - got;
        memcpy(tmp + got, zmq_msg_data(&parts[i]), k);
        got += k;
    }
    rc = zc_raft_msg_size(tmp, got, max, total);
    free(tmp);
    return rc;
}

/* Is `sender` the raft id the connection's raft key names? */
static bool sender_is_key(zmq_msg_t *hdr, uint64_t sender)
{
    const char *name = zc_sec_peer(hdr, "name");
    char want[24];
    snprintf(want, sizeof want, "%" PRIu64, sender);
    return name != NULL && strcmp(name, want) == 0;
}

static void handle_one(relay_t *r, void *sock, zmq_msg_t *hdr)
{
    zc_relay_hdr_t h;
    if (r->sec != NULL && !zc_sec_role_ok(r->sec, hdr, r->role)) {
        r->stats.forbidden++;
        log_refused(r, hdr, "not a replica key", r->stats.forbidden);
        drain_rest(sock, hdr);
        return;
    }
    if (zc_relay_hdr_decode(zmq_msg_data(hdr), zmq_msg_size(hdr), &h) != 0 ||
        (h.kind == ZC_RELAY_DATA) != (zmq_msg_more(hdr) != 0)) {
        r->stats.malformed++;
        log_refused(r, hdr, "bad relay header", r->stats.malformed);
        drain_rest(sock, hdr);
        return;
    }
    if (r->sec != NULL && r->raft_sec != NULL && !sender_is_key(hdr, h.sender)) {
        /* A replica's raft key speaks for its own raft id only. */
        r->stats.forbidden++;
        log_refused(r, hdr, "the raft id is not the key's", r->stats.forbidden);
        drain_rest(sock, hdr);
        return;
    }
    if (h.kind == ZC_RELAY_CLOSE) {
        in_t *in = in_find(r, &h);
        if (in)
            in_close(in);
        return;
    }
    zmq_msg_t *parts;
    unsigned n;
    uint64_t bytes, total = 0;
    if (recv_rest(sock, &parts, &n, &bytes) != 0) {
        free_parts(parts, n);
        return;
    }
    if (n == 0 || msg_size(parts, n, bytes, r->max_msg, &total) != 1 || total != bytes) {
        r->stats.malformed++;
        log_refused(r, hdr, "not one whole raft message within the bound", r->stats.malformed);
        free_parts(parts, n);
        return;
    }
    note_incarnation(r, &h);
    in_t *in = in_find(r, &h);
    if (in == NULL)
        in = in_open(r, &h);
    in_write_t *w = in ? calloc(1, sizeof *w) : NULL;
    uv_buf_t *bufs = w ? calloc(n, sizeof *bufs) : NULL;
    if (bufs == NULL) {
        free(w);
        free_parts(parts, n);
        return;
    }
    for (unsigned i = 0; i < n; i++)
        bufs[i] = uv_buf_init(zmq_msg_data(&parts[i]), (unsigned)zmq_msg_size(&parts[i]));
    w->in = in;
    w->parts = parts;
    w->bufs = bufs;
    w->n = n;
    w->req.data = w;
    if (uv_write(&w->req, (uv_stream_t *)&in->pipe, bufs, n, in_written) != 0) {
        in_close(in);
        free_parts(parts, n);
        free(bufs);
        free(w);
    }
}

static void on_router(void *sock, void *arg)
{
    relay_t *r = arg;
    for (int i = 0; i < ZC_ZMQX_BATCH && !r->closing; i++) {
        zmq_msg_t rid, hdr;
        zmq_msg_init(&rid);
        if (zmq_msg_recv(&rid, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&rid);
            return;
        }
        zmq_msg_init(&hdr);
        if (!zmq_msg_more(&rid) || zmq_msg_recv(&hdr, sock, 0) < 0) {
            zmq_msg_close(&rid);
            zmq_msg_close(&hdr);
            continue;
        }
        handle_one(r, sock, &hdr);
        zmq_msg_close(&hdr);
        zmq_msg_close(&rid);
    }
}

/* --- raft_uv_transport --- */

static int t_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
    relay_t *r = t->impl;
    if (strlen(address) > ZC_RELAY_ADDR_MAX) {
        snprintf(t->errmsg, sizeof t->errmsg, "raft address too long");
        return RAFT_INVALID;
    }
    r->id = id;
    snprintf(r->address, sizeof r->address, "%s", address);
    return 0;
}

static int t_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    relay_t *r = t->impl;
    char ep[ZC_RELAY_ADDR_MAX + 16];
    snprintf(ep, sizeof ep, "tcp://%s", r->address);
    r->router = zmq_socket(r->zctx, ZMQ_ROUTER);
    if (r->router == NULL)
        goto err;
    zc_zsock_defaults(r->router);
    if ((r->sec != NULL && zc_sec_server(r->sec, r->router, r->role) != 0) ||
        zmq_bind(r->router, ep) != 0)
        goto err;
    r->rwatch = zc_watch_new(r->loop, r->router, on_router, r);
    if (r->rwatch == NULL)
        goto err;
    r->accept_cb = cb;
    zc_info("raft relay on %s (%s)", ep,
            r->sec == NULL        ? "INSECURE: no CurveZMQ"
            : r->raft_sec != NULL ? "CurveZMQ, each replica's own raft key for its id only"
                                  : "CurveZMQ, the shared replica key");
    return 0;
err:
    snprintf(t->errmsg, sizeof t->errmsg, "raft relay on %.100s: %s", ep, zmq_strerror(zmq_errno()));
    if (r->router)
        zmq_close(r->router);
    r->router = NULL;
    return RAFT_IOERR;
}

static void closer_closed(uv_handle_t *h)
{
    relay_t *r = h->data;
    r->handles--;
    maybe_closed(r);
}

static void closer_fire(uv_timer_t *h) { uv_close((uv_handle_t *)h, closer_closed); }

static void t_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    relay_t *r = t->impl;
    r->closing = true;
    r->close_cb = cb;
    r->accept_cb = NULL;
    zc_watch_destroy(&r->rwatch);
    if (r->router)
        zmq_close(r->router);
    r->router = NULL;
    while (!zc_list_empty(&r->peers)) {
        peer_t *p = ZC_CONTAINER(r->peers.next, peer_t, link);
        zc_link_remove(&p->link);
        peer_free(p);
    }
    while (!zc_list_empty(&r->outs))
        out_close(ZC_CONTAINER(r->outs.next, out_t, link));
    while (!zc_list_empty(&r->ins))
        in_close(ZC_CONTAINER(r->ins.next, in_t, link));
    /* raft expects the callback later, never from inside close. */
    uv_timer_init(r->loop, &r->closer);
    r->closer.data = r;
    r->handles++;
    uv_timer_start(&r->closer, closer_fire, 0, 0);
}

int zc_transport_init(struct raft_uv_transport *t, const zc_transport_config_t *cfg)
{
    memset(t, 0, sizeof *t);
    relay_t *r = calloc(1, sizeof *r);
    if (r == NULL)
        return -1;
    r->t = t;
    r->loop = cfg->loop;
    r->zctx = cfg->zctx;
    r->sec = cfg->sec != NULL && !zc_sec_insecure(cfg->sec) ? cfg->sec : NULL;
    r->raft_sec = r->sec != NULL ? cfg->raft_sec : NULL;
    r->role = r->raft_sec != NULL ? "raft" : "replica";
    r->max_msg = cfg->max_msg;
    r->peer_restarted = cfg->peer_restarted;
    r->peer_restarted_arg = cfg->peer_restarted_arg;
    while (r->incarnation == 0)
        if (getrandom(&r->incarnation, sizeof r->incarnation, 0) != sizeof r->incarnation)
            r->incarnation = (uint64_t)getpid() << 32 ^ (uint64_t)uv_hrtime();
    zc_link_init(&r->peers);
    zc_link_init(&r->outs);
    zc_link_init(&r->ins);
    zc_link_init(&r->senders);
    t->impl = r;
    t->init = t_init;
    t->listen = t_listen;
    t->connect = t_connect;
    t->close = t_close;
    return 0;
}

void zc_transport_close_unused(struct raft_uv_transport *t)
{
    relay_t *r = t->impl;
    if (r == NULL || r->closing)
        return;
    if (r->router == NULL && zc_list_empty(&r->peers)) {
        /* Never listened or connected: no handle to wait for. */
        t->impl = NULL;
        free(r);
        return;
    }
    t_close(t, NULL);
}

void zc_transport_stats(struct raft_uv_transport *t, zc_transport_stats_t *out)
{
    relay_t *r = t->impl;
    if (r == NULL)
        memset(out, 0, sizeof *out);
    else
        *out = r->stats;
}
