/* forward: see forward.h. */
#include "broker/forward.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/peers.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "proto/status.h"

#define FWD_KEY_LEN (ZC_SESSION_LEN + 8)
#define FWD_WAITERS_MAX 8

/* A copy of a request sent on, and who gets the answer to it. */
typedef struct {
    uint8_t id[BROKER_CLIENT_ID_MAX]; /* the asker's routing id */
    uint8_t len;                      /* its length */
} fwd_waiter_t;

/* One (session, seq) relayed to the leader, waiting for its answers: the
 * leader answers every copy it gets, so each copy sent has its waiter, and
 * the answers go to them in order (one reply per request sent). */
typedef struct {
    uint8_t key[FWD_KEY_LEN];                /* session + seq (big-endian), key in b->forwards */
    fwd_waiter_t waiter[FWD_WAITERS_MAX];    /* the askers of the copies not answered yet */
    unsigned n_waiters;                      /* entries used */
    zc_msg_t req;                            /* the request (for the UNAVAILABLE answer) */
    uint64_t leader;                         /* the replica it was sent to */
    zc_dq_entry_t due;                       /* in b->forward_q at its expiry */
} fwd_t;

static void fwd_key(uint8_t key[FWD_KEY_LEN], const uint8_t session[ZC_SESSION_LEN], uint64_t seq)
{
    memcpy(key, session, ZC_SESSION_LEN);
    for (int i = 0; i < 8; i++)
        key[ZC_SESSION_LEN + i] = (uint8_t)(seq >> (56 - 8 * i));
}

static void fwd_free(broker_t *b, fwd_t *f)
{
    zc_map_del(b->forwards, f->key, FWD_KEY_LEN);
    zc_dq_remove(&b->forward_q, &f->due);
    free(f);
}

static bool from_replica(const uint8_t *client, size_t client_len)
{
    size_t n = strlen(BROKER_PEER_ID_PREFIX);
    return client_len >= n && memcmp(client, BROKER_PEER_ID_PREFIX, n) == 0;
}

bool broker__forward_request(broker_t *b, const uint8_t *client, size_t client_len,
                             const zc_msg_t *req, const void *data, size_t len)
{
    if (b->stopping || b->peers == NULL || b->forwards == NULL || from_replica(client, client_len))
        return false;
    zc_node_info_t info;
    broker__info(b, &info);
    if (info.role == ZC_ROLE_LEADER || info.leader_id == 0 || info.leader_id == b->cfg.id)
        return false;
    uint8_t key[FWD_KEY_LEN];
    fwd_key(key, req->session, req->seq);
    fwd_t *f = zc_map_get(b->forwards, key, FWD_KEY_LEN);
    if ((f == NULL && zc_map_size(b->forwards) >= BROKER_FORWARDS_MAX) ||
        (f != NULL && f->n_waiters == FWD_WAITERS_MAX))
        return false;
    if (broker__peers_send(b->peers, info.leader_id, data, len) != 0)
        return false; /* no live connection to the leader: NOT_LEADER, as before */
    if (f == NULL) {
        f = calloc(1, sizeof *f);
        if (f == NULL || zc_map_put(b->forwards, key, FWD_KEY_LEN, f) != 0) {
            free(f);
            return true; /* sent; its answer will find nobody and be dropped */
        }
        memcpy(f->key, key, FWD_KEY_LEN);
        zc_dq_entry_init(&f->due);
    }
    f->leader = info.leader_id;
    fwd_waiter_t *w = &f->waiter[f->n_waiters++];
    memcpy(w->id, client, client_len);
    w->len = (uint8_t)client_len;
    f->req = *req;
    zc_dq_set(&b->forward_q, &f->due, zc_mono_us() + 2000ull * b->cfg.cart_timeout_ms);
    b->forwarded++;
    return true;
}

void broker__forward_reply(broker_t *b, const void *data, size_t len)
{
    uint8_t session[ZC_SESSION_LEN];
    uint64_t seq;
    zc_msg_t m;
    const char *why;
    zc_msg_init(&m, 0);
    if (b->forwards == NULL || zc_msg_decode(&m, data, len, &why) != 0 || m.id != ZC_MSG_REPLY) {
        zc_msg_reset(&m);
        return; /* STATUS answers of the idle connection and the like */
    }
    memcpy(session, m.session, ZC_SESSION_LEN);
    seq = m.seq;
    zc_msg_reset(&m);
    uint8_t key[FWD_KEY_LEN];
    fwd_key(key, session, seq);
    fwd_t *f = zc_map_get(b->forwards, key, FWD_KEY_LEN);
    if (f == NULL)
        return; /* expired meanwhile, or a duplicate answer */
    if (b->io->send_client(b, f->waiter[0].id, f->waiter[0].len, data, len) != 0)
        zc_debug("relayed reply dropped: %s", zmq_strerror(zmq_errno()));
    memmove(&f->waiter[0], &f->waiter[1], --f->n_waiters * sizeof f->waiter[0]);
    if (f->n_waiters == 0)
        fwd_free(b, f);
}

/* Answer every waiter UNAVAILABLE (unknown outcome: the leader may have
 * applied it) and forget the entry. */
static void give_up(broker_t *b, fwd_t *f, const char *why)
{
    for (unsigned i = 0; i < f->n_waiters; i++)
        broker__frontend_reply_ko(b, f->waiter[i].id, f->waiter[i].len, &f->req, ZC_UNAVAILABLE,
                                  why);
    fwd_free(b, f);
}

void broker__forward_expire(broker_t *b, uint64_t now_us)
{
    zc_dq_entry_t *e;
    while ((e = zc_dq_pop_due(&b->forward_q, now_us)) != NULL)
        give_up(b, ZC_CONTAINER(e, fwd_t, due), "relayed to the leader, no answer in time; retry");
}

/* The relayed requests sent to one replica, collected (no deletes while
 * iterating the map). */
typedef struct {
    uint64_t leader;          /* the replica gone */
    fwd_t *hit[64];           /* entries sent to it */
    unsigned n;               /* entries used */
    bool more;                /* more than fit: collect again */
} gone_t;

static int collect_gone(const void *key, size_t klen, void *value, void *arg)
{
    (void)key;
    (void)klen;
    gone_t *g = arg;
    fwd_t *f = value;
    if (f->leader != g->leader)
        return 0;
    if (g->n == 64) {
        g->more = true;
        return 1;
    }
    g->hit[g->n++] = f;
    return 0;
}

void broker__forward_peer_gone(broker_t *b, uint64_t id)
{
    if (b->forwards == NULL)
        return;
    gone_t g = {.leader = id};
    do {
        g.n = 0;
        g.more = false;
        zc_map_each(b->forwards, collect_gone, &g);
        for (unsigned i = 0; i < g.n; i++)
            give_up(b, g.hit[i], "relayed to a leader whose connection dropped; retry");
    } while (g.more);
}

void broker__forward_forget_all(broker_t *b)
{
    if (b->forwards)
        zc_map_each(b->forwards, zc_map_free_value, NULL);
    zc_map_destroy(&b->forwards);
    zc_dq_clear(&b->forward_q);
}
