/* node: see node.h.  The decision procedure for one CART_REQUEST:
 *
 *   slot unknown / fields invalid   -> BAD_REQUEST
 *   deadline passed                 -> EXPIRED (nothing applied)
 *   fencing refuses                 -> FENCED
 *   no owner                        -> adopt (session, generation)
 *   list                            -> OK + contents (not recorded)
 *   seq answered before             -> the stored answer
 *   seq outside the dedup window    -> BAD_REQUEST
 *   seq in flight (add waiting)     -> wait for that answer too
 *   remove                          -> NOT_IN_CART or OK, recorded
 *   add                             -> stock check; on its answer re-check
 *                                      fencing, apply on OK, record the answer
 */
#include "cart/node.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sysexits.h>
#include <unistd.h>

#include "cart/stock_client.h"
#include "cart/store.h"
#include "lib/clock.h"
#include "lib/list.h"
#include "lib/map.h"
#include "lib/zmqx.h"
#include "lib/zsec.h"
#include "proto/msg.h"
#include "proto/status.h"

#define BROKERS_MAX 16
#define WAITERS_MAX 8

/* One broker replica connection. */
typedef struct {
    void *sock;          /* DEALER, routing id = node name "/" nonce */
    zc_watch_t *watch;   /* watcher */
    char endpoint[256];  /* replica's cart endpoint */
    cart_node_t *node;   /* back pointer */
    uint64_t heard_us;   /* monotonic time anything last came from this replica
                            (or the connection was last (re)made) */
    bool silent;         /* reported silent; logs once per outage */
    uint64_t leader_us;  /* monotonic time of its last heartbeat as a ready leader, 0 never */
    uint64_t leader_term; /* the term that heartbeat named */
} broker_conn_t;

/* Somebody waiting for an add's answer. */
typedef struct {
    void *sock;    /* the broker socket it came on */
    uint64_t corr; /* that broker's corr */
} waiter_t;

/* An add waiting for its stock check. */
typedef struct {
    cart_node_t *node;                /* back pointer */
    uint8_t key[STORE_OP_KEY_LEN];    /* slot + seq (store_op_key), key in inflight */
    uint16_t slot;                    /* slot */
    uint8_t session[ZC_SESSION_LEN];  /* requester */
    uint64_t generation;              /* its generation */
    uint64_t seq;                     /* its seq */
    char product[ZC_PRODUCT_MAX + 1]; /* product */
    uint32_t qty;                     /* units to add */
    uint64_t asked_us;                /* when the stock check left (metrics) */
    waiter_t waiters[WAITERS_MAX];    /* who gets the answer */
    unsigned n_waiters;               /* entries used */
} pending_add_t;

/* A reply waiting for the commit. */
typedef struct {
    void *sock;       /* where it goes */
    uint8_t *body;    /* encoded message (owned) */
    size_t len;       /* its length */
    int status;       /* a CART_REPLY's status (metrics), else -1 */
    zc_link_t link;   /* in node->outbox */
} outgoing_t;

struct cart_node {
    uv_loop_t *loop;                  /* the loop */
    cart_config_t cfg;                /* configuration (strings borrowed) */
    void *zctx;                       /* ZeroMQ context (owned) */
    store_t *store;                   /* durable state */
    stock_client_t *stock;            /* stock checks */
    broker_conn_t brokers[BROKERS_MAX]; /* one per replica */
    unsigned n_brokers;               /* entries used */
    uv_timer_t hello;                 /* HELLO period */
    uv_timer_t checkpoint;            /* store checkpoints (STORE_CHECKPOINT_MS) */
    uint64_t last_check_us;           /* last check_brokers run (stall detection) */
    uv_check_t flush;                 /* commit, then send the outbox */
    uv_idle_t kick;                   /* active while the outbox is not empty, so the
                                         loop does not block in poll before flush runs */
    zc_map_t *inflight;               /* slot+seq -> pending_add_t */
    zc_link_t outbox;                 /* replies waiting for the commit */
    uint64_t dropped;                 /* malformed frames dropped */
    uint64_t replies[ZC_STATUS_COUNT]; /* CART_REPLYs sent, by status */
    zc_hist_t stock_lat;              /* stock check latency, ask to answer */
    zc_hist_t commit_lat;             /* durable commits that had changes */
    uint64_t commit_failures;         /* commits that failed (replies dropped) */
    int closing;                      /* handles still closing at destroy */
};

static void short_session(const uint8_t s[ZC_SESSION_LEN], char out[9])
{
    char hex[33];
    zc_session_hex(s, hex);
    memcpy(out, hex, 8);
    out[8] = 0;
}

static void on_kick(uv_idle_t *h) { (void)h; }

static void enqueue(cart_node_t *n, void *sock, const zc_msg_t *m)
{
    zc_wbuf_t w;
    zc_wbuf_init(&w);
    outgoing_t *o = calloc(1, sizeof *o);
    if (o == NULL || zc_msg_encode(m, &w) != 0) {
        free(o);
        zc_wbuf_clear(&w);
        return;
    }
    o->sock = sock;
    o->status = m->id == ZC_MSG_CART_REPLY ? m->status : -1;
    o->body = zc_wbuf_take(&w, &o->len);
    zc_list_push_back(&n->outbox, &o->link);
    /* A reply queued outside the poll phase (a request handled from a
     * watcher's idle pass, a timer) would otherwise wait for the next
     * wake-up -- up to a HELLO interval -- before on_flush sends it. */
    uv_idle_start(&n->kick, on_kick);
}

/* A durable commit slower than this is logged: every reply of the node
 * waits for it. */
#define SLOW_COMMIT_MS 100

/* The store could not return to its durable state (cart/store.h): stop,
 * and let the restart recover it from LMDB and the write-ahead log. */
static void storage_lost(const char *what)
{
    zc_error("storage: %s failed and the open transaction could not be rebuilt; exiting with "
             "status %d (a restart replays the write-ahead log)", what, EX_IOERR);
    fflush(NULL);
    _exit(EX_IOERR);
}

/* Commit every change of this iteration, then let the replies go. */
static void on_flush(uv_check_t *h)
{
    cart_node_t *n = h->data;
    bool dirty = store_dirty(n->store);
    uint64_t t0 = zc_mono_us();
    int rc = store_commit(n->store);
    if (rc == STORE_LOST)
        storage_lost("a durable commit");
    uint64_t took_us = zc_mono_us() - t0, took_ms = took_us / 1000;
    if (dirty)
        zc_hist_observe(&n->commit_lat, took_us);
    if (rc != 0)
        n->commit_failures++;
    if (took_ms >= SLOW_COMMIT_MS)
        zc_warn("durable commit took %" PRIu64 " ms (%s replies waited for it)", took_ms,
                zc_list_empty(&n->outbox) ? "no" : "its");
    if (rc != 0) {
        /* The replies would acknowledge changes that are not durable: drop
         * them (the broker answers CART_UNAVAILABLE, the client retries and
         * finds nothing applied).  Exiting would not help -- a full store is
         * still full after a restart, and the node would crash-loop while
         * its carts are declared lost. */
        zc_error("storage commit failed: %s replies dropped, their changes undone",
                 zc_list_empty(&n->outbox) ? "no" : "this iteration's");
        while (!zc_list_empty(&n->outbox)) {
            outgoing_t *o = ZC_CONTAINER(n->outbox.next, outgoing_t, link);
            zc_link_remove(&o->link);
            free(o->body);
            free(o);
        }
    }
    while (!zc_list_empty(&n->outbox)) {
        outgoing_t *o = ZC_CONTAINER(n->outbox.next, outgoing_t, link);
        zc_link_remove(&o->link);
        if (o->status >= 0 && o->status < ZC_STATUS_COUNT)
            n->replies[o->status]++;
        if (zc_zsend(o->sock, NULL, 0, o->body, o->len) != 0)
            zc_debug("reply dropped: %s", zmq_strerror(zmq_errno()));
        free(o->body);
        free(o);
    }
    uv_idle_stop(&n->kick);
}

/* The one CART_REPLY builder: every answer of the node starts here. */
static void cart_reply_init(zc_msg_t *r, uint64_t corr, uint16_t slot,
                            const uint8_t session[ZC_SESSION_LEN], uint64_t seq, int status,
                            const char *detail)
{
    zc_msg_init(r, ZC_MSG_CART_REPLY);
    r->corr = corr;
    r->slot = slot;
    memcpy(r->session, session, ZC_SESSION_LEN);
    r->seq = seq;
    r->status = (uint8_t)status;
    snprintf(r->detail, sizeof r->detail, "%s", detail ? detail : "");
}

/* Answer one request (not recorded), with the slot's contents if with_items. */
static void reply(cart_node_t *n, void *sock, uint64_t corr, uint16_t slot,
                  const uint8_t session[ZC_SESSION_LEN], uint64_t seq, int status,
                  const char *detail, bool with_items)
{
    zc_msg_t r;
    cart_reply_init(&r, corr, slot, session, seq, status, detail);
    if (with_items && store_items(n->store, slot, &r) != 0) {
        zc_msg_reset(&r);
        cart_reply_init(&r, corr, slot, session, seq, ZC_INTERNAL, "storage error reading the cart");
    }
    enqueue(n, sock, &r);
    zc_msg_reset(&r);
}

/* Record the answer to (slot, seq) and send it to every waiter. */
static void answer_and_record(cart_node_t *n, uint16_t slot, const uint8_t session[ZC_SESSION_LEN],
                              uint64_t seq, int status, const char *detail,
                              const waiter_t *w, unsigned n_w)
{
    zc_msg_t r;
    cart_reply_init(&r, 0, slot, session, seq, status, detail);
    if (store_items(n->store, slot, &r) != 0 || store_dedup_put(n->store, slot, seq, &r) != 0) {
        zc_msg_reset(&r);
        cart_reply_init(&r, 0, slot, session, seq, ZC_INTERNAL, "storage error");
    }
    for (unsigned i = 0; i < n_w; i++) {
        r.corr = w[i].corr;
        enqueue(n, w[i].sock, &r);
    }
    zc_msg_reset(&r);
}

/* Capacity (cart/store.h): true, with the answer's detail, when the store
 * is past pct percent of its map (this iteration's uncommitted writes
 * included).  Such a refusal is checked before anything is written and is
 * not recorded, so a retry once there is room is decided again. */
static bool storage_full(cart_node_t *n, unsigned pct, bool add, char *detail, size_t cap)
{
    uint64_t used, map;
    if (store_usage(n->store, &used, &map) != 0 || used * 100 < map * pct)
        return false;
    snprintf(detail, cap,
             "the cart node's storage is full (%" PRIu64 " of %" PRIu64 " bytes, --map-size): "
             "%s refused; list and close still work",
             used, map, add ? "adds are" : "this remove is");
    return true;
}

static void on_stock(void *arg, int status, uint32_t available, const char *sdetail)
{
    pending_add_t *p = arg;
    cart_node_t *n = p->node;
    char cart[ZC_NODE_MAX + 8], s8[9], detail[ZC_DETAIL_MAX + 1] = "";
    zc_hist_observe(&n->stock_lat, zc_mono_us() - p->asked_us);
    snprintf(cart, sizeof cart, "%s.%u", n->cfg.name, p->slot);
    short_session(p->session, s8);
    zc_map_del(n->inflight, p->key, sizeof p->key);

    /* A reset may have happened while the check was out. */
    store_slot_t sl;
    const char *why = "";
    int fence = store_get_slot(n->store, p->slot, &sl) != 0
                    ? -1
                    : (int)store_fence(&sl, p->session, p->generation, &why);
#ifdef ZCART_MUTANT_FENCING_SKIPPED /* chaos mutant: the cart serves whatever it is sent */
    fence = fence < 0 ? fence : STORE_OWNER;
#endif
    if (fence != STORE_OWNER) {
        for (unsigned i = 0; i < p->n_waiters; i++)
            reply(n, p->waiters[i].sock, p->waiters[i].corr, p->slot, p->session, p->seq,
                  fence < 0 ? ZC_INTERNAL : ZC_FENCED, fence < 0 ? "storage error" : why, false);
        zc_info("cart %s session %s seq %" PRIu64 ": add refused after the check: %s", cart, s8,
                p->seq, why);
        free(p);
        return;
    }
    if (status != ZC_EXPIRED && status != ZC_BAD_REQUEST && status != ZC_INTERNAL &&
        storage_full(n, STORE_ADD_LIMIT_PCT, true, detail, sizeof detail)) {
        zc_warn("cart %s: %s", cart, detail);
        status = ZC_STORAGE_FULL; /* the answer would be recorded: refuse it instead */
    }
    switch (status) {
    case ZC_OK:
        if (store_change(n->store, p->slot, p->product, p->qty) != STORE_CHANGED) {
            status = ZC_INTERNAL;
            snprintf(detail, sizeof detail, "storage error");
        }
        break;
    case ZC_OUT_OF_STOCK:
        snprintf(detail, sizeof detail, "only %u available", available);
        break;
    case ZC_UNKNOWN_PRODUCT:
        snprintf(detail, sizeof detail, "no such product in stock");
        break;
    case ZC_STOCK_TIMEOUT:   /* which instance, within how long */
    case ZC_STOCK_UNAVAILABLE: /* each instance: breaker open, probe out, not connected */
    case ZC_INTERNAL:
        snprintf(detail, sizeof detail, "%s", sdetail ? sdetail : "");
        break;
    default:
        break;
    }
    zc_debug("cart %s session %s seq %" PRIu64 ": add %s x%u -> %s", cart, s8, p->seq, p->product,
             p->qty, zc_status_name(status));
    if (status == ZC_EXPIRED || status == ZC_BAD_REQUEST || status == ZC_INTERNAL ||
        status == ZC_STORAGE_FULL) {
        /* Not a decision about the cart: not recorded, a retry tries again. */
        for (unsigned i = 0; i < p->n_waiters; i++)
            reply(n, p->waiters[i].sock, p->waiters[i].corr, p->slot, p->session, p->seq, status,
                  detail, true);
    } else {
        answer_and_record(n, p->slot, p->session, p->seq, status, detail, p->waiters,
                          p->n_waiters);
    }
    free(p);
}

/* --- one CART_REQUEST, step by step (the procedure at the top) ---
 *
 * Each step either answers the request and returns true ("handled"), or
 * returns false to let the next step decide. */

/* The request being decided and where its answer goes. */
typedef struct {
    cart_node_t *n;              /* the node */
    void *sock;                  /* the broker socket it came on */
    const zc_msg_t *m;           /* the CART_REQUEST */
    char cart[ZC_NODE_MAX + 8];  /* "node.slot", for the log */
    char s8[9];                  /* the session's first 8 hex digits, for the log */
} request_t;

static void answer(const request_t *q, int status, const char *detail, bool with_items)
{
    reply(q->n, q->sock, q->m->corr, q->m->slot, q->m->session, q->m->seq, status, detail,
          with_items);
}

/* Slot, fields and deadline (nothing is read or written yet). */
static bool reject_invalid(const request_t *q)
{
    const zc_msg_t *m = q->m;
    if (m->slot >= store_slots(q->n->store)) {
        answer(q, ZC_BAD_REQUEST, "no such slot", false);
        return true;
    }
    bool changes = m->op == ZC_OP_ADD || m->op == ZC_OP_REMOVE;
    if (zc_session_is_zero(m->session) || m->seq == 0 || m->generation == 0 ||
        (m->op != ZC_OP_LIST && !changes) ||
        (changes && (!zc_product_valid(m->product) || m->qty < 1 || m->qty > ZC_QTY_MAX))) {
        answer(q, ZC_BAD_REQUEST, "invalid fields", false);
        return true;
    }
    if (m->deadline && zc_wall_ms() > m->deadline) {
        answer(q, ZC_EXPIRED, "picked up after its deadline", false);
        return true;
    }
    return false;
}

/* Fencing: refuse a stale owner, adopt the first one (docs/protocol.md §4). */
static bool reject_fenced(const request_t *q)
{
    const zc_msg_t *m = q->m;
    store_slot_t sl;
    const char *why = NULL;
    if (store_get_slot(q->n->store, m->slot, &sl) != 0) {
        answer(q, ZC_INTERNAL, "storage error", false);
        return true;
    }
    store_fence_t fence = store_fence(&sl, m->session, m->generation, &why);
#ifdef ZCART_MUTANT_FENCING_SKIPPED /* chaos mutant: the cart serves whatever it is sent */
    fence = fence == STORE_FENCED ? STORE_OWNER : fence;
#endif
    switch (fence) {
    case STORE_FENCED:
        zc_warn("cart %s refused session %s gen %" PRIu64 " seq %" PRIu64 ": %s", q->cart, q->s8,
                m->generation, m->seq, why);
        answer(q, ZC_FENCED, why, false);
        return true;
    case STORE_ADOPT:
        if (store_adopt(q->n->store, m->slot, m->session, m->generation) != 0) {
            answer(q, ZC_INTERNAL, "storage error", false);
            return true;
        }
        zc_debug("cart %s now serves session %s gen %" PRIu64, q->cart, q->s8, m->generation);
        return false;
    case STORE_OWNER:
        return false;
    }
    return false;
}

/* A change answered before gets the stored answer again (exactly-once). */
static bool replay_stored(const request_t *q)
{
    const zc_msg_t *m = q->m;
    store_answer_t old;
    store_dedup_t dedup = store_dedup_get(q->n->store, m->slot, m->seq, &old);
#ifdef ZCART_MUTANT_DEDUP_NEVER_FOUND /* chaos mutant: a retry never finds its stored answer */
    if (dedup == STORE_DEDUP_FOUND) {
        store_answer_clear(&old);
        dedup = STORE_DEDUP_NEW;
    }
#endif
    switch (dedup) {
    case STORE_DEDUP_FOUND: {
        zc_msg_t r;
        cart_reply_init(&r, m->corr, m->slot, m->session, m->seq, old.status, old.detail);
        r.items = old.items; /* lent: store_answer_clear frees them */
        r.n_items = old.n_items;
        enqueue(q->n, q->sock, &r);
        store_answer_clear(&old);
        zc_info("cart %s session %s seq %" PRIu64 ": replayed the stored answer", q->cart, q->s8,
                m->seq);
        return true;
    }
    case STORE_DEDUP_OUTSIDE:
        answer(q, ZC_BAD_REQUEST, "seq outside the dedup window", false);
        return true;
    case STORE_DEDUP_NEW:
        return false;
    case STORE_DEDUP_ERROR:
        break;
    }
    answer(q, ZC_INTERNAL, "storage error", false);
    return true;
}

/* A retry of an add whose stock check is out gets the same answer. */
static bool join_add_in_flight(const request_t *q, const uint8_t key[STORE_OP_KEY_LEN])
{
    pending_add_t *p = zc_map_get(q->n->inflight, key, STORE_OP_KEY_LEN);
    if (p == NULL)
        return false;
    if (p->n_waiters < WAITERS_MAX && memcmp(p->session, q->m->session, ZC_SESSION_LEN) == 0) {
        p->waiters[p->n_waiters++] = (waiter_t){q->sock, q->m->corr};
        zc_info("cart %s session %s seq %" PRIu64 ": joined the add in flight", q->cart, q->s8,
                q->m->seq);
    }
    return true;
}

/* A remove is decided at once and recorded. */
static void apply_remove(const request_t *q, uint32_t have)
{
    const zc_msg_t *m = q->m;
    waiter_t w = {q->sock, m->corr};
    char detail[64] = "";
    int status;
    switch (store_change(q->n->store, m->slot, m->product, -(int64_t)m->qty)) {
    case STORE_CHANGED:
        status = ZC_OK;
        break;
    case STORE_CHANGE_SHORT:
        status = ZC_NOT_IN_CART;
        snprintf(detail, sizeof detail, "the cart holds %u", have);
        break;
    default:
        status = ZC_INTERNAL;
        break;
    }
    answer_and_record(q->n, m->slot, m->session, m->seq, status, detail, &w, 1);
}

/* An add is decided by the stock check (on_stock). */
static void start_add(const request_t *q, const uint8_t key[STORE_OP_KEY_LEN], uint32_t have)
{
    const zc_msg_t *m = q->m;
    uint32_t distinct;
    if (have == 0 && store_count_items(q->n->store, m->slot, &distinct) == 0 &&
        distinct >= ZC_ITEMS_MAX) {
        answer(q, ZC_BAD_REQUEST, "the cart holds the maximum number of distinct products", true);
        return;
    }
    if ((uint64_t)have + m->qty > 0xffffffffull) {
        answer(q, ZC_BAD_REQUEST, "quantity too large", true);
        return;
    }
    pending_add_t *p = calloc(1, sizeof *p);
    if (p == NULL || zc_map_put(q->n->inflight, key, STORE_OP_KEY_LEN, p) != 0) {
        free(p);
        answer(q, ZC_INTERNAL, "out of memory", false);
        return;
    }
    p->node = q->n;
    memcpy(p->key, key, STORE_OP_KEY_LEN);
    p->slot = m->slot;
    memcpy(p->session, m->session, ZC_SESSION_LEN);
    p->generation = m->generation;
    p->seq = m->seq;
    snprintf(p->product, sizeof p->product, "%s", m->product);
    p->qty = m->qty;
    p->waiters[0] = (waiter_t){q->sock, m->corr};
    p->n_waiters = 1;
    /* Ask for what the cart would hold after the add. */
    p->asked_us = zc_mono_us();
    stock_client_check(q->n->stock, m->product, have + m->qty, m->deadline, on_stock, p);
}

static void on_cart_request(cart_node_t *n, void *sock, const zc_msg_t *m)
{
    request_t q = {.n = n, .sock = sock, .m = m};
    snprintf(q.cart, sizeof q.cart, "%s.%u", n->cfg.name, m->slot);
    short_session(m->session, q.s8);
    if (reject_invalid(&q) || reject_fenced(&q))
        return;
    if (m->op == ZC_OP_LIST) {
        answer(&q, ZC_OK, NULL, true); /* a read: not recorded */
        return;
    }
    uint8_t key[STORE_OP_KEY_LEN];
    store_op_key(key, m->slot, m->seq);
    if (replay_stored(&q) || join_add_in_flight(&q, key))
        return;
    uint32_t have;
    if (store_units(n->store, m->slot, m->product, &have) != 0) {
        answer(&q, ZC_INTERNAL, "storage error", false);
        return;
    }
    char full[ZC_DETAIL_MAX + 1];
    bool add = m->op == ZC_OP_ADD;
    if (storage_full(n, add ? STORE_ADD_LIMIT_PCT : STORE_REMOVE_LIMIT_PCT, add, full,
                     sizeof full)) {
        zc_warn("cart %s: %s", q.cart, full);
        answer(&q, ZC_STORAGE_FULL, full, true); /* checked before any write: not recorded */
        return;
    }
    if (add)
        start_add(&q, key, have);
    else
        apply_remove(&q, have);
}

static void on_reset(cart_node_t *n, void *sock, const zc_msg_t *m)
{
    if (m->slot >= store_slots(n->store))
        return;
    store_reset_t rc = store_reset(n->store, m->slot, m->generation);
    if (rc == STORE_RESET_ERROR) {
        zc_error("cart %s.%u: storage error during reset", n->cfg.name, m->slot);
        return;
    }
    if (rc == STORE_RESET_IGNORED) {
        zc_info("cart %s.%u: ignored a reset of gen %" PRIu64 " (a newer owner holds it)",
                n->cfg.name, m->slot, m->generation);
        return;
    }
    zc_debug("cart %s.%u emptied (gen %" PRIu64 ")", n->cfg.name, m->slot, m->generation);
    zc_msg_t r;
    zc_msg_init(&r, ZC_MSG_RESET_DONE);
    snprintf(r.node, sizeof r.node, "%s", n->cfg.name);
    r.slot = m->slot;
    r.generation = m->generation;
    enqueue(n, sock, &r);
}

static void on_broker(void *sock, void *arg)
{
    broker_conn_t *b = arg;
    cart_node_t *n = b->node;
    for (int i = 0; i < ZC_ZMQX_BATCH; i++) {
        zc_zmsg_t z;
        if (zc_zmsg_recv(sock, &z) != 0)
            return;
        zc_msg_t m;
        const char *why = "a message must be exactly one frame";
        zc_msg_init(&m, 0);
        if (z.n == 1 && !z.over &&
            zc_msg_decode(&m, zc_zmsg_data(&z, 0), zc_zmsg_size(&z, 0), &why) == 0 &&
            (m.id == ZC_MSG_CART_REQUEST || m.id == ZC_MSG_RESET || m.id == ZC_MSG_HEARTBEAT)) {
            b->heard_us = zc_mono_us();
            if (b->silent) {
                b->silent = false;
                zc_info("replica %s answers again", b->endpoint);
            }
            if (m.id == ZC_MSG_CART_REQUEST)
                on_cart_request(n, sock, &m);
            else if (m.id == ZC_MSG_RESET)
                on_reset(n, sock, &m);
            /* HEARTBEAT: the replica heard our hello; a ready leader says so. */
            if (m.id == ZC_MSG_HEARTBEAT && m.term != 0) {
                b->leader_us = b->heard_us;
                b->leader_term = m.term;
            }
        } else {
            n->dropped++;
            if (zc_log_sampled(n->dropped, 10))
                zc_warn("dropped a frame from %s (%s), %" PRIu64 " so far", b->endpoint,
                        m.id ? "unexpected message" : why, n->dropped);
        }
        zc_msg_reset(&m);
        zc_zmsg_close(&z);
    }
}

static void send_hello(cart_node_t *n)
{
    zc_msg_t h;
    zc_msg_init(&h, ZC_MSG_HELLO);
    snprintf(h.node, sizeof h.node, "%s", n->cfg.name);
    for (unsigned s = 0; s < store_slots(n->store); s++) {
        store_slot_t sl;
        zc_slotinfo_t si = {.slot = (uint16_t)s};
        if (store_get_slot(n->store, (uint16_t)s, &sl) == 0) {
            memcpy(si.session, sl.owner, ZC_SESSION_LEN);
            si.generation = sl.generation;
            si.reset_generation = sl.reset_generation;
            store_count_items(n->store, (uint16_t)s, &si.n_items);
        }
        zc_msg_add_slot(&h, &si);
    }
    zc_wbuf_t w;
    zc_wbuf_init(&w);
    if (zc_msg_encode(&h, &w) == 0)
        for (unsigned i = 0; i < n->n_brokers; i++)
            zc_zsend(n->brokers[i].sock, NULL, 0, w.data, w.len);
    zc_wbuf_clear(&w);
    zc_msg_reset(&h);
}

/* A replica that stayed silent (no heartbeat, request or reset) for
 * --broker-liveness is reconnected: its TCP connection may be dead without
 * either side having noticed (a host gone, a partition that drops packets),
 * and only a fresh connection -- then the hello that follows at once --
 * makes this node known to it again.  Carts and contents are untouched. */
static void check_brokers(cart_node_t *n)
{
    uint64_t now = zc_mono_us(), window = (uint64_t)n->cfg.broker_liveness_ms * 1000u;
    uint64_t gap = n->last_check_us ? now - n->last_check_us : 0;
    n->last_check_us = now;
    if (gap > window / 2) {
        /* This process did not run for a while (SIGSTOP, a stalled host):
         * what the replicas sent meanwhile is still unread, and a reconnect
         * now would throw it away.  Our own pause is not their silence. */
        for (unsigned i = 0; i < n->n_brokers; i++)
            n->brokers[i].heard_us = now;
        return;
    }
    bool again = false;
    for (unsigned i = 0; i < n->n_brokers; i++) {
        broker_conn_t *b = &n->brokers[i];
        if (now - b->heard_us <= window)
            continue;
        if (!b->silent)
            zc_warn("replica %s silent for %u ms: reconnecting", b->endpoint,
                    (unsigned)((now - b->heard_us) / 1000));
        b->silent = true;
        zmq_disconnect(b->sock, b->endpoint);
        zmq_connect(b->sock, b->endpoint);
        zc_watch_touched(b->sock);
        b->heard_us = now; /* give the new connection a full window */
        again = true;
    }
    if (again)
        send_hello(n);
}

/* Commit the LMDB transaction the write-ahead log stands for, and rewind
 * the log (cart/store.h).  A failure loses nothing: the log still holds
 * every change, and the next period tries again. */
static void on_checkpoint_timer(uv_timer_t *t)
{
    cart_node_t *n = t->data;
    store_stats_t before;
    store_stats(n->store, &before);
    int rc = store_checkpoint(n->store);
    if (rc == STORE_LOST)
        storage_lost("a checkpoint");
    if (rc != 0 && before.checkpoint_failures == 0)
        zc_warn("storage: checkpoint failed; the write-ahead log keeps every change (%zu of %zu "
                "bytes used); retrying every %d ms", before.log_used, before.log_size,
                STORE_CHECKPOINT_MS);
}

static void on_hello_timer(uv_timer_t *t)
{
    cart_node_t *n = t->data;
    send_hello(n);
    check_brokers(n);
}

/* One DEALER to a replica's cart endpoint.  Its routing id is the node's
 * name, "/", and 16 random hex digits fresh for this connection: the
 * broker sends to the routing id of the last frame the node's key vouched
 * for, so nobody can receive the node's traffic by connecting under its
 * name (docs/protocol.md section 1), and a reconnect never waits for the
 * broker to drop the previous connection.  -1 with zmq_errno() set; what
 * was made is freed by the caller. */
static int broker_conn_open(cart_node_t *n, broker_conn_t *b, const char *ep)
{
    int ivl = 100, hwm = 100000;
    b->node = n;
    snprintf(b->endpoint, sizeof b->endpoint, "%s", ep);
    b->sock = zmq_socket(n->zctx, ZMQ_DEALER);
    if (b->sock == NULL)
        return -1;
    uint8_t nonce[ZC_NODE_NONCE_HEX / 2];
    if (getrandom(nonce, sizeof nonce, 0) != (ssize_t)sizeof nonce) {
        uint64_t t = zc_mono_us() ^ (uint64_t)(uintptr_t)b;
        memcpy(nonce, &t, sizeof nonce); /* no entropy: unique is enough to connect */
    }
    char rid[ZC_NODE_RID_MAX + 1];
    int rl = snprintf(rid, sizeof rid, "%s/", n->cfg.name);
    for (size_t k = 0; k < sizeof nonce; k++)
        rl += snprintf(rid + rl, sizeof rid - (size_t)rl, "%02x", nonce[k]);
    zmq_setsockopt(b->sock, ZMQ_ROUTING_ID, rid, (size_t)rl);
    zc_zsock_defaults(b->sock);
    zmq_setsockopt(b->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(b->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(b->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    if (zc_sec_client(n->cfg.sec, b->sock, n->cfg.broker_key) != 0 ||
        zmq_connect(b->sock, ep) != 0)
        return -1;
    b->heard_us = zc_mono_us();
    b->watch = zc_watch_new(n->loop, b->sock, on_broker, b);
    return b->watch != NULL ? 0 : -1;
}

void cart_config_defaults(cart_config_t *c)
{
    memset(c, 0, sizeof *c);
    c->stock_timeout_ms = 1000;
    c->stock_failures = 3;
    c->stock_open_ms = 1000;
    c->stock_open_max_ms = 8000;
    c->hello_interval_ms = 1000;
    c->map_size = STORE_MAP_DEFAULT;
    c->wal_size = STORE_WAL_SIZE;
}

cart_node_t *cart_node_new(uv_loop_t *loop, const cart_config_t *cfg, char *err, size_t errlen)
{
    cart_node_t *n = calloc(1, sizeof *n);
    char list[4096];
    if (n == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    n->loop = loop;
    n->cfg = *cfg;
    if (n->cfg.broker_liveness_ms == 0)
        n->cfg.broker_liveness_ms = 3 * n->cfg.hello_interval_ms;
    zc_link_init(&n->outbox);
    n->zctx = zc_sec_context(); /* czmq's: lib/zsec.h says why */
    n->inflight = zc_map_new();
    if (n->zctx == NULL || n->inflight == NULL) {
        snprintf(err, errlen, "out of memory");
        goto err;
    }
    n->store = store_open(cfg->data_dir, cfg->slots, (size_t)cfg->map_size,
                          (size_t)cfg->wal_size, err, errlen);
    if (n->store == NULL)
        goto err;
    store_stats_t ss;
    store_stats(n->store, &ss);
    if (ss.replayed_records > 0)
        zc_info("storage: replayed %" PRIu64 " write-ahead log records (%" PRIu64
                " bytes) the last checkpoint did not hold", ss.replayed_records, ss.replayed_bytes);
    stock_client_config_t sc = {
        .endpoints = cfg->stock,
        .timeout_ms = cfg->stock_timeout_ms,
        .sec = cfg->sec,
        .stock_key = cfg->stock_key,
        .breaker = {.failures = cfg->stock_failures,
                    .open_ms = cfg->stock_open_ms,
                    .open_max_ms = cfg->stock_open_max_ms},
    };
    n->stock = stock_client_new(loop, n->zctx, &sc, err, errlen);
    if (n->stock == NULL)
        goto err;
    snprintf(list, sizeof list, "%s", cfg->brokers);
    for (char *save, *ep = strtok_r(list, ",", &save); ep; ep = strtok_r(NULL, ",", &save)) {
        if (n->n_brokers == BROKERS_MAX) {
            snprintf(err, errlen, "at most %d broker endpoints", BROKERS_MAX);
            goto err;
        }
        if (broker_conn_open(n, &n->brokers[n->n_brokers++], ep) != 0) {
            snprintf(err, errlen, "broker endpoint %s: %s", ep, zmq_strerror(zmq_errno()));
            goto err;
        }
    }
    if (n->n_brokers == 0) {
        snprintf(err, errlen, "no broker endpoint given");
        goto err;
    }
    uv_timer_init(loop, &n->hello);
    n->hello.data = n;
    uv_timer_start(&n->hello, on_hello_timer, 0, cfg->hello_interval_ms);
    uv_timer_init(loop, &n->checkpoint);
    n->checkpoint.data = n;
    uv_timer_start(&n->checkpoint, on_checkpoint_timer, STORE_CHECKPOINT_MS, STORE_CHECKPOINT_MS);
    uv_check_init(loop, &n->flush);
    n->flush.data = n;
    uv_check_start(&n->flush, on_flush);
    uv_idle_init(loop, &n->kick);
    n->kick.data = n;
    return n;
err:
    for (unsigned i = 0; i < n->n_brokers; i++) {
        zc_watch_destroy(&n->brokers[i].watch);
        if (n->brokers[i].sock)
            zmq_close(n->brokers[i].sock);
    }
    stock_client_destroy(&n->stock);
    store_close(&n->store);
    zc_map_destroy(&n->inflight);
    free(n);
    return NULL;
}


static void handle_closed(uv_handle_t *h)
{
    cart_node_t *n = h->data;
    if (--n->closing > 0)
        return;
    free(n); /* czmq's context ends at exit (zsys_shutdown) */
}

void cart_node_stats(cart_node_t *n, cart_stats_t *out)
{
    memset(out, 0, sizeof *out);
    out->slots = store_slots(n->store);
    memcpy(out->replies, n->replies, sizeof out->replies);
    out->stock_lat = n->stock_lat;
    out->commit_lat = n->commit_lat;
    out->commit_failures = n->commit_failures;
    out->dropped = n->dropped;
    out->stock_in_flight = stock_client_pending(n->stock);
    out->adds_in_flight = zc_map_size(n->inflight);
    out->replicas = n->n_brokers;
    uint64_t now = zc_mono_us(), window = (uint64_t)n->cfg.broker_liveness_ms * 1000u;
    for (unsigned i = 0; i < n->n_brokers; i++) {
        const broker_conn_t *b = &n->brokers[i];
        if (!b->silent && now - b->heard_us <= window)
            out->replicas_heard++;
        if (b->leader_us && now - b->leader_us <= window && b->leader_term >= out->leader_term)
            out->leader_term = b->leader_term;
    }
    store_usage(n->store, &out->store_used, &out->store_map);
    store_stats(n->store, &out->store);
}

void cart_node_destroy(cart_node_t **p)
{
    cart_node_t *n = *p;
    if (n == NULL)
        return;
    *p = NULL;
    on_flush(&n->flush); /* what is decided is committed and sent */
    stock_client_destroy(&n->stock);
    zc_map_each(n->inflight, zc_map_free_value, NULL);
    zc_map_destroy(&n->inflight);
    for (unsigned i = 0; i < n->n_brokers; i++) {
        zc_watch_destroy(&n->brokers[i].watch);
        zmq_close(n->brokers[i].sock);
    }
    store_close(&n->store);
    zc_info("stopped (%" PRIu64 " malformed frames dropped)", n->dropped);
    /* n is freed when libuv has closed all four handles. */
    n->closing = 4;
    uv_close((uv_handle_t *)&n->hello, handle_closed);
    uv_close((uv_handle_t *)&n->checkpoint, handle_closed);
    uv_close((uv_handle_t *)&n->flush, handle_closed);
    uv_close((uv_handle_t *)&n->kick, handle_closed);
}
