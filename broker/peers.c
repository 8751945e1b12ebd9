/* peers: see peers.h. */
#include "broker/peers.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/forward.h"
#include "lib/log.h"

#define PEERS_MAX 16

/* One watched replica. */
typedef struct {
    uint64_t id;                       /* its raft id */
    char endpoint[ZC_ADDR_MAX + 1];    /* its client endpoint */
    void *dealer;                      /* idle connection to it */
    zc_monitor_t *monitor;             /* the dealer's connection events */
    zc_watch_t *replies;               /* watcher on dealer: relayed answers (forward.c) */
    struct peers *owner;               /* back pointer */
} peer_t;

struct peers {
    broker_t *b;              /* the broker */
    peer_t peer[PEERS_MAX];   /* watched replicas */
    unsigned n;               /* entries in use */
};

static void on_event(void *arg, uint16_t ev)
{
    peer_t *p = arg;
    if (ev == ZMQ_EVENT_DISCONNECTED) {
        zc_debug("connection to replica %" PRIu64 " dropped", p->id);
        zc_node_peer_gone(p->owner->b->node, p->id);
        broker__forward_peer_gone(p->owner->b, p->id);
    }
}

/* Answers on the idle connection: the leader's REPLYs to requests this
 * replica relayed (forward.c). */
static void on_reply_message(zc_zmsg_t *z, void *arg)
{
    peer_t *p = arg;
    if (z->n == 1 && !z->over)
        broker__forward_reply(p->owner->b, zc_zmsg_data(z, 0), zc_zmsg_size(z, 0));
}

static void on_reply(void *sock, void *arg) { zc_zmsg_each(sock, on_reply_message, arg); }

int broker__peers_send(peers_t *ps, uint64_t id, const void *data, size_t len)
{
    for (unsigned i = 0; i < ps->n; i++) {
        if (ps->peer[i].id != id || ps->peer[i].dealer == NULL)
            continue;
        int rc = zmq_send(ps->peer[i].dealer, data, len, ZMQ_DONTWAIT) == (int)len ? 0 : -1;
        zc_watch_touched(ps->peer[i].dealer); /* lib/zmqx.h: a send outside zc_zsend */
        return rc;
    }
    return -1;
}

static void peer_close(peer_t *p)
{
    zc_watch_destroy(&p->replies);
    zc_monitor_destroy(&p->monitor);
    if (p->dealer)
        zmq_close(p->dealer);
    memset(p, 0, sizeof *p);
}

static int peer_open(peers_t *ps, peer_t *p, const zc_replica_t *m)
{
    broker_t *b = ps->b;
    int ivl = 100;
    memset(p, 0, sizeof *p);
    p->id = m->id;
    p->owner = ps;
    snprintf(p->endpoint, sizeof p->endpoint, "%s", m->client_endpoint);
    p->dealer = zmq_socket(b->zctx, ZMQ_DEALER);
    if (!p->dealer)
        goto err;
    zc_zsock_defaults(p->dealer);
    zmq_setsockopt(p->dealer, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    /* Relayed requests go only over a live connection (never queued for a
     * leader that cannot be reached), under an id the leader's frontend
     * knows not to relay again (forward.h). */
    int one = 1;
    char rid[32];
    snprintf(rid, sizeof rid, "%s%" PRIu64, BROKER_PEER_ID_PREFIX, b->cfg.id);
    zmq_setsockopt(p->dealer, ZMQ_IMMEDIATE, &one, sizeof one);
    zmq_setsockopt(p->dealer, ZMQ_ROUTING_ID, rid, strlen(rid));
    /* Replicas share the replica certificate: its public key is the server's. */
    if (zc_sec_client(b->sec, p->dealer, zc_sec_public(b->sec)) != 0)
        goto err;
    p->monitor = zc_monitor_new(b->loop, b->zctx, p->dealer, ZMQ_EVENT_DISCONNECTED, on_event, p);
    if (p->monitor == NULL || zmq_connect(p->dealer, p->endpoint) != 0)
        goto err;
    p->replies = zc_watch_new(b->loop, p->dealer, on_reply, p);
    if (p->replies == NULL)
        goto err;
    return 0;
err:
    zc_warn("cannot watch replica %" PRIu64 " at %s: %s", m->id, m->client_endpoint,
            zmq_strerror(zmq_errno()));
    peer_close(p);
    return -1;
}

peers_t *broker__peers_new(broker_t *b)
{
    peers_t *ps = calloc(1, sizeof *ps);
    if (ps)
        ps->b = b;
    return ps;
}

void broker__peers_sync(peers_t *ps)
{
    uint64_t ids[PEERS_MAX];
    const char *roles[PEERS_MAX];
    unsigned n = broker__configuration(ps->b, ids, roles, PEERS_MAX);
    /* Drop peers no longer in the configuration or whose endpoint changed. */
    for (unsigned i = 0; i < ps->n;) {
        zc_replica_t m;
        bool keep = false;
        for (unsigned j = 0; j < n; j++)
            if (ids[j] == ps->peer[i].id && broker__member(ps->b, ids[j], &m) &&
                strcmp(m.client_endpoint, ps->peer[i].endpoint) == 0)
                keep = true;
        if (keep) {
            i++;
            continue;
        }
        peer_close(&ps->peer[i]);
        /* Keep the array dense; watchers point at peer_t, so move by reopening. */
        if (i != ps->n - 1) {
            zc_replica_t last;
            uint64_t last_id = ps->peer[ps->n - 1].id;
            peer_close(&ps->peer[ps->n - 1]);
            if (broker__member(ps->b, last_id, &last))
                peer_open(ps, &ps->peer[i], &last);
        }
        ps->n--;
    }
    /* Add the missing ones. */
    for (unsigned j = 0; j < n && ps->n < PEERS_MAX; j++) {
        if (ids[j] == ps->b->cfg.id)
            continue;
        bool have = false;
        for (unsigned i = 0; i < ps->n; i++)
            have |= ps->peer[i].id == ids[j];
        zc_replica_t m;
        if (!have && broker__member(ps->b, ids[j], &m) && peer_open(ps, &ps->peer[ps->n], &m) == 0)
            ps->n++;
    }
}

void broker__peers_destroy(peers_t **p)
{
    peers_t *ps = *p;
    if (ps == NULL)
        return;
    *p = NULL;
    for (unsigned i = 0; i < ps->n; i++)
        peer_close(&ps->peer[i]);
    free(ps);
}
