/* test_route: the broker's decision procedure for a client request
 * (docs/protocol.md section 3, steps 3 to 8, and the cart's answer), one
 * test per row, against the broker core's ports (broker_io_t) faked:
 *
 *   - the raft node is a real replicated state machine (zc_fsm, LMDB in a
 *     temporary directory) behind a fake proposer: a proposal is encoded
 *     and queued, and the test decides when it commits (commit_all), fails
 *     (fail_all), or never does -- so late commits and timeouts are rows
 *     too;
 *   - the replica's role, readiness, term and leader are fields the test
 *     sets;
 *   - every frame sent to a client or a cart node is decoded and kept, and
 *     the checks read them.
 *
 * Steps 1 and 2 (malformed frames, field checks) happen before routing, in
 * frontend.c; the conformance suite tests them on the wire. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/internal.h"
#include "broker/lease.h"
#include "broker/registry.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "proto/status.h"
#include "replication/fsm.h"
#include "unit.h"

#define SENT_MAX 64
#define PENDING_MAX 64
#define CLIENT "client-1"

/* One frame the core sent, decoded. */
typedef struct {
    char rid[ZC_NODE_RID_MAX + 1]; /* routing id it went to */
    zc_msg_t m;                    /* the message (owns its lists) */
} sent_t;

/* A proposal waiting for the test to commit or fail it. */
typedef struct {
    zc_wbuf_t cmd;    /* the encoded command */
    zc_propose_cb cb; /* the proposer's callback */
    void *arg;        /* its argument */
} pending_t;

/* The world outside the core. */
static struct {
    zc_fsm_t *fsm;                  /* the replicated state */
    zc_node_info_t info;            /* what the node says of itself */
    zc_replica_t leader;            /* the member leader_id names */
    pending_t pending[PENDING_MAX]; /* proposals not committed yet */
    unsigned n_pending;             /* entries in pending */
    unsigned proposed;              /* proposals ever made */
    sent_t client[SENT_MAX];        /* frames to clients */
    unsigned n_client;              /* entries in client */
    sent_t node[SENT_MAX];          /* frames to cart nodes */
    unsigned n_node;                /* entries in node */
} W;

static char root[128];
static int dir_seq;
static broker_t B;

static void fake_info(broker_t *b, zc_node_info_t *out) { *out = W.info; }
static bool fake_ready(broker_t *b) { return W.info.ready; }
static zc_state_t *fake_state(broker_t *b) { return zc_fsm_state(W.fsm); }
static unsigned fake_configuration(broker_t *b, uint64_t *ids, const char **roles, unsigned max)
{
    return 0;
}
static bool fake_member(broker_t *b, uint64_t id, zc_replica_t *out)
{
    if (id == 0 || id != W.leader.id)
        return false;
    *out = W.leader;
    return true;
}

static void fake_propose(broker_t *b, const zc_cmd_t *cmd, zc_propose_cb cb, void *arg)
{
    CHECK(W.n_pending < PENDING_MAX);
    pending_t *p = &W.pending[W.n_pending++];
    zc_wbuf_init(&p->cmd);
    CHECK(zc_cmd_encode(cmd, &p->cmd) == 0);
    p->cb = cb;
    p->arg = arg;
    W.proposed++;
}

static void record(sent_t *box, unsigned *n, const char *rid, size_t rid_len, const void *frame,
                   size_t len)
{
    CHECK(*n < SENT_MAX);
    sent_t *s = &box[(*n)++];
    const char *why = NULL;
    snprintf(s->rid, sizeof s->rid, "%.*s", (int)rid_len, rid);
    zc_msg_init(&s->m, 0);
    CHECK(zc_msg_decode(&s->m, frame, len, &why) == 0);
}

static int fake_send_client(broker_t *b, const uint8_t *rid, size_t rid_len, const void *frame,
                            size_t len)
{
    record(W.client, &W.n_client, (const char *)rid, rid_len, frame, len);
    return 0;
}

static int fake_send_node(broker_t *b, const char *rid, const void *frame, size_t len)
{
    record(W.node, &W.n_node, rid, strlen(rid), frame, len);
    return 0;
}

static const broker_io_t fake_io = {
    .info = fake_info,
    .ready = fake_ready,
    .state = fake_state,
    .configuration = fake_configuration,
    .member = fake_member,
    .propose = fake_propose,
    .send_client = fake_send_client,
    .send_node = fake_send_node,
};

/* Commit every queued proposal, oldest first, through the real state
 * machine, and run its callback (which may propose again: those wait). */
static void commit_all(void)
{
    unsigned n = W.n_pending;
    pending_t batch[PENDING_MAX];
    memcpy(batch, W.pending, n * sizeof batch[0]);
    W.n_pending = 0;
    for (unsigned i = 0; i < n; i++) {
        zc_cmd_result_t res;
        memset(&res, 0, sizeof res);
        uint64_t index = zc_fsm_applied_index(W.fsm) + 1;
        CHECK(zc_fsm_apply(W.fsm, index, batch[i].cmd.data, batch[i].cmd.len, &res) == 0);
        zc_wbuf_clear(&batch[i].cmd);
        batch[i].cb(batch[i].arg, ZC_OK, &res);
    }
}

/* Every queued proposal fails with status (leadership lost: NOT_LEADER). */
static void fail_all(int status)
{
    unsigned n = W.n_pending;
    pending_t batch[PENDING_MAX];
    memcpy(batch, W.pending, n * sizeof batch[0]);
    W.n_pending = 0;
    for (unsigned i = 0; i < n; i++) {
        zc_cmd_result_t none;
        memset(&none, 0, sizeof none);
        zc_wbuf_clear(&batch[i].cmd);
        batch[i].cb(batch[i].arg, status, &none);
    }
}

/* Apply a command directly (the state as earlier leaders left it). */
static zc_cmd_result_t apply(const zc_cmd_t *c)
{
    zc_wbuf_t w;
    zc_cmd_result_t res;
    memset(&res, 0, sizeof res);
    zc_wbuf_init(&w);
    CHECK(zc_cmd_encode(c, &w) == 0);
    CHECK(zc_fsm_apply(W.fsm, zc_fsm_applied_index(W.fsm) + 1, w.data, w.len, &res) == 0);
    zc_wbuf_clear(&w);
    return res;
}

static void forget_sent(void)
{
    for (unsigned i = 0; i < W.n_client; i++)
        zc_msg_reset(&W.client[i].m);
    for (unsigned i = 0; i < W.n_node; i++)
        zc_msg_reset(&W.node[i].m);
    W.n_client = W.n_node = 0;
}

/* A fresh core over a fresh state: a ready leader in term 7 whose node "n1"
 * (slots) is registered, connected, and free. */
static void setup(unsigned slots)
{
    char dir[256], err[256];
    snprintf(dir, sizeof dir, "%s/s%d", root, dir_seq++);
    memset(&W, 0, sizeof W);
    W.fsm = zc_fsm_new(dir, 0, err, sizeof err);
    CHECK(W.fsm != NULL);
    memset(&B, 0, sizeof B);
    char *argv[] = {"zcart-broker",
                    "--id",
                    "1",
                    "--data",
                    dir,
                    "--replica",
                    "1=127.0.0.1:1,tcp://127.0.0.1:2,tcp://127.0.0.1:3",
                    "--insecure",
                    NULL};
    CHECK(broker__config_parse(&B.cfg, 8, argv) == 0);
    B.self = &B.cfg.replicas[0];
    CHECK(broker__init(&B, &fake_io) == 0);
    W.info = (zc_node_info_t){.role = ZC_ROLE_LEADER, .ready = true, .term = 7, .leader_id = 1};
    if (slots) {
        zc_cmd_slot_t s[16];
        zc_cmd_t c = {.type = ZC_CMD_REGISTER, .time_ms = zc_wall_ms()};
        snprintf(c.reg.node, sizeof c.reg.node, "n1");
        for (unsigned i = 0; i < slots; i++)
            s[i] = (zc_cmd_slot_t){.slot = (uint16_t)i};
        c.reg.n = (uint16_t)slots;
        c.reg.slots = s;
        CHECK_EQ_U64(apply(&c).count, slots);
        node_info_t *ni = broker__registry_node(&B, "n1");
        CHECK(ni != NULL);
        snprintf(ni->rid, sizeof ni->rid, "n1/00112233aabbccdd");
    }
    broker__role_changed(&B); /* now a ready leader: leases and liveness start */
    forget_sent();
}

static uint64_t counts_total(void)
{
    zc_state_counts_t n;
    CHECK(zc_state_counts(zc_fsm_state(W.fsm), &n) == 0);
    return n.total;
}

static void teardown(void)
{
    fail_all(ZC_NOT_LEADER);
    broker__destroy(&B);
    forget_sent();
    zc_fsm_destroy(&W.fsm);
}

static void sess(uint8_t s[ZC_SESSION_LEN], int k)
{
    memset(s, 0, ZC_SESSION_LEN);
    s[0] = 0x5E;
    s[15] = (uint8_t)k;
}

/* A client REQUEST of session k. */
static void request(int k, uint64_t seq, int op, const char *product, uint32_t qty)
{
    zc_msg_t m;
    zc_msg_init(&m, ZC_MSG_REQUEST);
    sess(m.session, k);
    m.seq = seq;
    m.op = (uint8_t)op;
    if (product)
        snprintf(m.product, sizeof m.product, "%s", product);
    m.qty = qty;
    broker__route_request(&B, (const uint8_t *)CLIENT, strlen(CLIENT), &m);
}

/* The last reply to the client, checked for status. */
static const zc_msg_t *reply(int status)
{
    CHECK(W.n_client > 0);
    if (W.n_client == 0)
        return NULL;
    const zc_msg_t *r = &W.client[W.n_client - 1].m;
    CHECK_EQ_U64(r->id, ZC_MSG_REPLY);
    CHECK_STR(W.client[W.n_client - 1].rid, CLIENT);
    if (r->status != status)
        fprintf(stderr, "  reply %s (%s), want %s\n", zc_status_name(r->status), r->detail,
                zc_status_name(status));
    CHECK_EQ_U64(r->status, status);
    return r;
}

/* The cart node answers the last CART_REQUEST with status and one item. */
static void cart_answers(int status, const char *detail)
{
    CHECK(W.n_node > 0);
    const zc_msg_t *cr = &W.node[W.n_node - 1].m;
    CHECK_EQ_U64(cr->id, ZC_MSG_CART_REQUEST);
    zc_msg_t a;
    zc_item_t item = {.qty = cr->qty};
    snprintf(item.product, sizeof item.product, "%s", cr->product);
    zc_msg_init(&a, ZC_MSG_CART_REPLY);
    a.corr = cr->corr;
    a.slot = cr->slot;
    memcpy(a.session, cr->session, ZC_SESSION_LEN);
    a.seq = cr->seq;
    a.status = (uint8_t)status;
    snprintf(a.detail, sizeof a.detail, "%s", detail);
    a.items = &item;
    a.n_items = 1;
    broker__route_cart_reply(&B, "n1", &a);
}

/* Session k holds a cart: an add assigned and answered OK. */
static void assigned(int k)
{
    request(k, 1, ZC_OP_ADD, "apple", 1);
    commit_all();
    cart_answers(ZC_OK, "");
    reply(ZC_OK);
    forget_sent();
}

/* Step 3: a follower that knows the leader but has no relay for this
 * request (route.c is reached only then) answers NOT_LEADER naming the
 * leader's client endpoint; with no leader known, "unknown". */
TEST(step3_follower_answers_not_leader)
{
    setup(2);
    W.info = (zc_node_info_t){.role = ZC_ROLE_FOLLOWER, .term = 7, .leader_id = 2};
    W.leader = (zc_replica_t){.id = 2};
    snprintf(W.leader.client_endpoint, sizeof W.leader.client_endpoint, "tcp://10.0.0.2:5555");
    request(1, 1, ZC_OP_ADD, "apple", 1);
    const zc_msg_t *r = reply(ZC_NOT_LEADER);
    if (r) {
        CHECK_STR(r->detail, "tcp://10.0.0.2:5555");
        CHECK_EQ_U64(r->term, 0);
        CHECK_STR(r->cart, "");
    }
    W.info.leader_id = 0;
    request(1, 2, ZC_OP_LIST, NULL, 0);
    r = reply(ZC_NOT_LEADER);
    if (r)
        CHECK_STR(r->detail, "unknown");
    CHECK_EQ_U64(W.proposed, 0);
    CHECK_EQ_U64(W.n_node, 0);
    teardown();
}

/* Step 3: a leader whose barrier has not applied parks the request; it is
 * decided once the leader is ready, or answered NOT_LEADER when deposed. */
TEST(step3_unready_leader_parks_until_ready_or_deposed)
{
    setup(2);
    W.info.ready = false;
    request(1, 1, ZC_OP_LIST, NULL, 0);
    CHECK_EQ_U64(W.n_client, 0);
    W.info.ready = true;
    broker__role_changed(&B);
    const zc_msg_t *r = reply(ZC_OK);
    if (r)
        CHECK_EQ_U64(r->term, 7);
    forget_sent();
    W.info.ready = false;
    broker__role_changed(&B);
    request(1, 2, ZC_OP_LIST, NULL, 0);
    CHECK_EQ_U64(W.n_client, 0);
    W.info.role = ZC_ROLE_FOLLOWER;
    broker__role_changed(&B);
    reply(ZC_NOT_LEADER);
    teardown();
}

/* Step 3: a parked request whose wait runs out is UNAVAILABLE, term 0. */
TEST(step3_parked_request_expires_unavailable)
{
    setup(2);
    W.info.ready = false;
    request(1, 1, ZC_OP_LIST, NULL, 0);
    broker__route_expire(&B, zc_mono_us() + (uint64_t)B.cfg.cart_timeout_ms * 1000u + 1);
    const zc_msg_t *r = reply(ZC_UNAVAILABLE);
    if (r)
        CHECK_EQ_U64(r->term, 0);
    teardown();
}

/* Step 4: a deadline already past is EXPIRED, nothing applied, no cart
 * named -- also for a session that holds a cart. */
TEST(step4_deadline_past_is_expired)
{
    setup(2);
    assigned(1);
    zc_msg_t m;
    zc_msg_init(&m, ZC_MSG_REQUEST);
    sess(m.session, 1);
    m.seq = 2;
    m.op = ZC_OP_ADD;
    snprintf(m.product, sizeof m.product, "pear");
    m.qty = 1;
    m.deadline = zc_wall_ms() - 1000;
    unsigned proposed = W.proposed;
    broker__route_request(&B, (const uint8_t *)CLIENT, strlen(CLIENT), &m);
    const zc_msg_t *r = reply(ZC_EXPIRED);
    if (r) {
        CHECK_STR(r->cart, "");
        CHECK_EQ_U64(r->generation, 0);
        CHECK_EQ_U64(r->n_items, 0);
    }
    CHECK_EQ_U64(W.proposed, proposed);
    CHECK_EQ_U64(W.n_node, 0);
    teardown();
}

/* Step 5: an ended session: close is OK, anything else SESSION_CLOSED or
 * SESSION_EXPIRED, all with its last cart and generation, no items. */
TEST(step5_ended_session)
{
    setup(2);
    assigned(1);
    request(1, 2, ZC_OP_CLOSE, NULL, 0);
    commit_all();
    const zc_msg_t *closed = reply(ZC_OK);
    char cart[ZC_CART_MAX + 1] = "";
    uint64_t gen = 0;
    if (closed) {
        snprintf(cart, sizeof cart, "%s", closed->cart);
        gen = closed->generation;
    }
    CHECK(cart[0] != 0);
    forget_sent();
    unsigned proposed = W.proposed;
    request(1, 3, ZC_OP_ADD, "apple", 1);
    const zc_msg_t *r = reply(ZC_SESSION_CLOSED);
    if (r) {
        CHECK_STR(r->cart, cart);
        CHECK_EQ_U64(r->generation, gen);
        CHECK_EQ_U64(r->n_items, 0);
    }
    request(1, 4, ZC_OP_KEEPALIVE, NULL, 0);
    reply(ZC_SESSION_CLOSED);
    request(1, 5, ZC_OP_CLOSE, NULL, 0);
    reply(ZC_OK);
    CHECK_EQ_U64(W.proposed, proposed);

    /* an expired session (its lease ran out: a RELEASE why=expired) */
    assigned(2);
    zc_cmd_t c = {.type = ZC_CMD_RELEASE, .time_ms = zc_wall_ms()};
    sess(c.release.session, 2);
    c.release.why = ZC_RELEASE_EXPIRED;
    apply(&c);
    request(2, 2, ZC_OP_LIST, NULL, 0);
    reply(ZC_SESSION_EXPIRED);
    request(2, 3, ZC_OP_CLOSE, NULL, 0);
    reply(ZC_OK);
    teardown();
}

/* Step 6: no cart yet: list OK empty, remove NOT_IN_CART, close and
 * keepalive OK -- and nothing is proposed for any of them. */
TEST(step6_no_cart_answers_without_a_commit)
{
    setup(2);
    request(1, 1, ZC_OP_LIST, NULL, 0);
    const zc_msg_t *r = reply(ZC_OK);
    if (r) {
        CHECK_STR(r->cart, "");
        CHECK_EQ_U64(r->generation, 0);
        CHECK_EQ_U64(r->n_items, 0);
        CHECK_EQ_U64(r->term, 7);
    }
    request(1, 2, ZC_OP_REMOVE, "apple", 1);
    reply(ZC_NOT_IN_CART);
    request(1, 3, ZC_OP_CLOSE, NULL, 0);
    reply(ZC_OK);
    request(1, 4, ZC_OP_KEEPALIVE, NULL, 0);
    reply(ZC_OK);
    CHECK_EQ_U64(W.proposed, 0);
    CHECK_EQ_U64(W.n_node, 0);
    zc_session_rec_t s;
    uint8_t id[ZC_SESSION_LEN];
    sess(id, 1);
    CHECK(zc_state_get_session(zc_fsm_state(W.fsm), id, &s) == 1); /* nothing recorded */
    teardown();
}

/* Step 6: a first add commits one ASSIGN, then goes to the assigned cart
 * with (session, generation); the cart's answer and items reach the
 * client with the cart, generation and the leader's term. */
TEST(step6_first_add_assigns_then_forwards)
{
    setup(2);
    request(1, 1, ZC_OP_ADD, "apple", 3);
    CHECK_EQ_U64(W.n_pending, 1);
    CHECK_EQ_U64(W.n_client, 0);
    CHECK_EQ_U64(W.n_node, 0);
    commit_all();
    CHECK_EQ_U64(W.n_node, 1);
    const zc_msg_t *cr = &W.node[0].m;
    CHECK_EQ_U64(cr->id, ZC_MSG_CART_REQUEST);
    CHECK_STR(W.node[0].rid, "n1/00112233aabbccdd");
    uint8_t id[ZC_SESSION_LEN];
    sess(id, 1);
    CHECK(memcmp(cr->session, id, ZC_SESSION_LEN) == 0);
    zc_session_rec_t s;
    CHECK(zc_state_get_session(zc_fsm_state(W.fsm), id, &s) == 0);
    CHECK_EQ_U64(cr->generation, s.generation);
    CHECK_EQ_U64(cr->seq, 1);
    CHECK_EQ_U64(cr->op, ZC_OP_ADD);
    CHECK_STR(cr->product, "apple");
    CHECK_EQ_U64(cr->qty, 3);
    char node[ZC_NODE_MAX + 1];
    uint16_t slot = 0;
    CHECK(broker__split_cart(s.cart, node, &slot));
    CHECK_EQ_U64(cr->slot, slot);
    CHECK_EQ_U64(W.n_client, 0);
    cart_answers(ZC_OK, "");
    const zc_msg_t *r = reply(ZC_OK);
    if (r) {
        CHECK_STR(r->cart, s.cart);
        CHECK_EQ_U64(r->generation, s.generation);
        CHECK_EQ_U64(r->n_items, 1);
        if (r->n_items == 1)
            CHECK_STR(r->items[0].product, "apple");
        CHECK_EQ_U64(r->term, 7);
    }
    /* a second add of the session goes straight to the cart */
    forget_sent();
    request(1, 2, ZC_OP_ADD, "pear", 1);
    CHECK_EQ_U64(W.n_pending, 0);
    CHECK_EQ_U64(W.n_node, 1);
    teardown();
}

/* Step 6: concurrent first requests of one session get one cart. */
TEST(step6_concurrent_first_adds_get_one_cart)
{
    setup(2);
    request(1, 1, ZC_OP_ADD, "apple", 1);
    request(1, 2, ZC_OP_ADD, "pear", 1);
    commit_all();
    CHECK_EQ_U64(W.n_node, 2);
    if (W.n_node == 2) {
        CHECK_EQ_U64(W.node[0].m.slot, W.node[1].m.slot);
        CHECK_EQ_U64(W.node[0].m.generation, W.node[1].m.generation);
    }
    CHECK_EQ_U64(zc_state_free_count(zc_fsm_state(W.fsm)), 1);
    teardown();
}

/* Step 6: no free cart is NO_FREE_CART at once, with no proposal. */
TEST(step6_no_free_cart_without_a_proposal)
{
    setup(1);
    assigned(1);
    unsigned proposed = W.proposed;
    request(2, 1, ZC_OP_ADD, "apple", 1);
    const zc_msg_t *r = reply(ZC_NO_FREE_CART);
    if (r)
        CHECK_STR(r->cart, "");
    CHECK_EQ_U64(W.proposed, proposed);
    teardown();
}

/* Step 6: the state at its storage limit refuses a new session at once
 * (STORAGE_FULL); an existing session keeps working. */
TEST(step6_storage_limit_refuses_new_sessions_only)
{
    setup(4);
    assigned(1);
    /* 4 carts + 1 session = 5 records: make that the limit */
    B.cfg.state_map_size = 5u * ZC_STATE_RECORD_BUDGET;
    CHECK_EQ_U64(zc_state_max_records((size_t)B.cfg.state_map_size), 5);
    unsigned proposed = W.proposed;
    request(2, 1, ZC_OP_ADD, "apple", 1);
    const zc_msg_t *r = reply(ZC_STORAGE_FULL);
    if (r)
        CHECK(strstr(r->detail, "storage limit") != NULL);
    CHECK_EQ_U64(W.proposed, proposed);
    request(1, 2, ZC_OP_ADD, "pear", 1);
    CHECK_EQ_U64(W.n_node, 1);
    cart_answers(ZC_OK, "");
    reply(ZC_OK);
    teardown();
}

/* Step 7: a session moved off a lost cart is told CART_LOST once, through
 * a committed LOST_TOLD, with the new cart; the op is not applied; the
 * next request goes to the new cart. */
TEST(step7_cart_lost_is_told_once)
{
    setup(2);
    assigned(1);
    uint8_t id[ZC_SESSION_LEN];
    zc_session_rec_t s;
    sess(id, 1);
    CHECK(zc_state_get_session(zc_fsm_state(W.fsm), id, &s) == 0);
    zc_cmd_t c = {.type = ZC_CMD_REASSIGN, .time_ms = zc_wall_ms()};
    snprintf(c.reassign.cart, sizeof c.reassign.cart, "%s", s.cart);
    c.reassign.generation = s.generation;
    CHECK_EQ_U64(apply(&c).status, ZC_OK);
    zc_session_rec_t moved;
    CHECK(zc_state_get_session(zc_fsm_state(W.fsm), id, &moved) == 0);
    CHECK(moved.lost);
    request(1, 2, ZC_OP_ADD, "pear", 1);
    CHECK_EQ_U64(W.n_pending, 1);
    CHECK_EQ_U64(W.n_client, 0);
    commit_all();
    const zc_msg_t *r = reply(ZC_CART_LOST);
    if (r) {
        CHECK_STR(r->cart, moved.cart);
        CHECK_EQ_U64(r->generation, moved.generation);
        CHECK_EQ_U64(r->n_items, 0);
    }
    CHECK_EQ_U64(W.n_node, 0); /* the op was not applied */
    request(1, 3, ZC_OP_ADD, "pear", 1);
    CHECK_EQ_U64(W.n_pending, 0); /* told once */
    CHECK_EQ_U64(W.n_node, 1);
    if (W.n_node == 1)
        CHECK_EQ_U64(W.node[0].m.generation, moved.generation);
    teardown();
}

/* Step 8: close commits the release, answers OK with the released cart
 * and generation, then the cart is reset (drained). */
TEST(step8_close_releases_then_drains)
{
    setup(2);
    assigned(1);
    uint8_t id[ZC_SESSION_LEN];
    zc_session_rec_t s;
    sess(id, 1);
    CHECK(zc_state_get_session(zc_fsm_state(W.fsm), id, &s) == 0);
    request(1, 2, ZC_OP_CLOSE, NULL, 0);
    CHECK_EQ_U64(W.n_pending, 1);
    CHECK_EQ_U64(W.n_client, 0);
    commit_all();
    const zc_msg_t *r = reply(ZC_OK);
    if (r) {
        CHECK_STR(r->cart, s.cart);
        CHECK_EQ_U64(r->generation, s.generation);
    }
    CHECK_EQ_U64(W.n_node, 1);
    if (W.n_node == 1) {
        CHECK_EQ_U64(W.node[0].m.id, ZC_MSG_RESET);
        CHECK_EQ_U64(W.node[0].m.generation, s.generation);
    }
    teardown();
}

/* Section 4: the node's RESET_DONE of the drained cart's generation
 * commits its RETURN (once), and the cart is free again; a RESET_DONE of
 * another generation changes nothing. */
TEST(reset_done_returns_the_drained_cart_once)
{
    setup(1);
    assigned(1);
    request(1, 2, ZC_OP_CLOSE, NULL, 0);
    commit_all();
    reply(ZC_OK);
    CHECK_EQ_U64(W.n_node, 1);
    if (W.n_node != 1) {
        teardown();
        return;
    }
    zc_msg_t done;
    zc_msg_init(&done, ZC_MSG_RESET_DONE);
    snprintf(done.node, sizeof done.node, "n1");
    done.slot = W.node[0].m.slot;
    done.generation = W.node[0].m.generation + 1; /* stale: another generation */
    broker__reset_done(&B, "n1", &done);
    CHECK_EQ_U64(W.n_pending, 0);
    done.generation = W.node[0].m.generation;
    broker__reset_done(&B, "n1", &done);
    broker__reset_done(&B, "n1", &done); /* repeated: one RETURN */
    CHECK_EQ_U64(W.n_pending, 1);
    CHECK_EQ_U64(zc_state_free_count(zc_fsm_state(W.fsm)), 0);
    commit_all();
    CHECK_EQ_U64(zc_state_free_count(zc_fsm_state(W.fsm)), 1);
    teardown();
}

/* Step 8: keepalive is OK with the cart and generation; it never reaches
 * the cart. */
TEST(step8_keepalive_stays_at_the_broker)
{
    setup(2);
    assigned(1);
    request(1, 2, ZC_OP_KEEPALIVE, NULL, 0);
    const zc_msg_t *r = reply(ZC_OK);
    if (r)
        CHECK(r->cart[0] != 0);
    CHECK_EQ_U64(W.n_node, 0);
    CHECK_EQ_U64(W.n_pending, 0);
    teardown();
}

/* Step 8: a cart whose node has not connected yet is waited for; its
 * HELLO forwards the request; a wait that runs out is CART_UNAVAILABLE. */
TEST(step8_node_not_connected_waits_for_hello_or_times_out)
{
    setup(2);
    assigned(1);
    node_info_t *ni = broker__registry_node(&B, "n1");
    char rid[ZC_NODE_RID_MAX + 1];
    snprintf(rid, sizeof rid, "%s", ni->rid);
    ni->rid[0] = 0; /* as after a failover: known once its next HELLO arrives */
    request(1, 2, ZC_OP_LIST, NULL, 0);
    CHECK_EQ_U64(W.n_node, 0);
    CHECK_EQ_U64(W.n_client, 0);
    snprintf(ni->rid, sizeof ni->rid, "%s", rid);
    broker__route_node_connected(&B, "n1");
    CHECK_EQ_U64(W.n_node, 1);
    cart_answers(ZC_OK, "");
    reply(ZC_OK);
    forget_sent();
    ni->rid[0] = 0;
    request(1, 3, ZC_OP_LIST, NULL, 0);
    broker__route_expire(&B, zc_mono_us() + (uint64_t)B.cfg.cart_timeout_ms * 1000u + 1);
    const zc_msg_t *r = reply(ZC_CART_UNAVAILABLE);
    if (r) {
        CHECK(r->cart[0] != 0);
        CHECK_EQ_U64(r->n_items, 0);
    }
    teardown();
}

/* Step 8: a cart that does not answer in time is CART_UNAVAILABLE; its
 * late answer is dropped. */
TEST(step8_cart_silent_is_unavailable_and_late_answer_dropped)
{
    setup(2);
    assigned(1);
    request(1, 2, ZC_OP_ADD, "pear", 1);
    CHECK_EQ_U64(W.n_node, 1);
    broker__route_expire(&B, zc_mono_us() + (uint64_t)B.cfg.cart_timeout_ms * 1000u + 1);
    reply(ZC_CART_UNAVAILABLE);
    unsigned n = W.n_client;
    cart_answers(ZC_OK, "");
    CHECK_EQ_U64(W.n_client, n);
    teardown();
}

/* The cart's KO is passed on with its items (OUT_OF_STOCK). */
TEST(cart_ko_is_passed_on_with_items)
{
    setup(2);
    assigned(1);
    request(1, 2, ZC_OP_ADD, "pear", 1000);
    cart_answers(ZC_OUT_OF_STOCK, "only 3 left");
    const zc_msg_t *r = reply(ZC_OUT_OF_STOCK);
    if (r) {
        CHECK_STR(r->detail, "only 3 left");
        CHECK_EQ_U64(r->n_items, 1);
    }
    teardown();
}

/* A status a cart must not decide (NOT_LEADER would move the client to an
 * endpoint the cart picked) is never forwarded: the client gets INTERNAL. */
TEST(cart_may_not_redirect_the_client)
{
    setup(2);
    assigned(1);
    request(1, 2, ZC_OP_LIST, NULL, 0);
    cart_answers(ZC_NOT_LEADER, "tcp://evil:1");
    const zc_msg_t *r = reply(ZC_INTERNAL);
    if (r)
        CHECK(strstr(r->detail, "evil") == NULL);
    teardown();
}

/* A cart answer that does not match its request (another session) is
 * dropped; the request still waits for the right one. */
TEST(cart_answer_for_another_session_is_dropped)
{
    setup(2);
    assigned(1);
    request(1, 2, ZC_OP_LIST, NULL, 0);
    zc_msg_t *cr = &W.node[W.n_node - 1].m;
    cr->session[1] ^= 0xFF;
    uint64_t dropped = B.dropped;
    cart_answers(ZC_OK, "");
    CHECK_EQ_U64(W.n_client, 0);
    CHECK_EQ_U64(B.dropped, dropped + 1);
    cr->session[1] ^= 0xFF;
    cart_answers(ZC_OK, "");
    reply(ZC_OK);
    teardown();
}

/* An ASSIGN that commits after its request timed out: the client got
 * UNAVAILABLE once, and the late commit sends nothing more. */
TEST(late_commit_after_timeout_answers_once)
{
    setup(2);
    request(1, 1, ZC_OP_ADD, "apple", 1);
    broker__route_expire(&B, zc_mono_us() + (uint64_t)B.cfg.cart_timeout_ms * 1000u + 1);
    const zc_msg_t *r = reply(ZC_UNAVAILABLE);
    if (r)
        CHECK(strstr(r->detail, "commit") != NULL);
    commit_all();
    CHECK_EQ_U64(W.n_client, 1);
    CHECK_EQ_U64(W.n_node, 0);
    teardown();
}

/* A proposal lost with the leadership is NOT_LEADER (the client retries:
 * every command is idempotent). */
TEST(proposal_lost_with_leadership_is_not_leader)
{
    setup(2);
    request(1, 1, ZC_OP_ADD, "apple", 1);
    W.info = (zc_node_info_t){.role = ZC_ROLE_FOLLOWER, .term = 8};
    fail_all(ZC_NOT_LEADER);
    reply(ZC_NOT_LEADER);
    teardown();
}

/* Admission control: past --max-proposals requests waiting for a commit,
 * a new one is BUSY with a retry hint, and nothing is proposed for it. */
TEST(admission_busy_past_max_proposals)
{
    setup(4);
    B.cfg.max_proposals = 2;
    request(1, 1, ZC_OP_ADD, "apple", 1);
    request(2, 1, ZC_OP_ADD, "apple", 1);
    CHECK_EQ_U64(W.n_pending, 2);
    request(3, 1, ZC_OP_ADD, "apple", 1);
    const zc_msg_t *r = reply(ZC_BUSY);
    if (r)
        CHECK(strstr(r->detail, "retry after") != NULL);
    CHECK_EQ_U64(W.n_pending, 2);
    commit_all();
    request(3, 2, ZC_OP_ADD, "apple", 1);
    CHECK_EQ_U64(W.n_pending, 1);
    teardown();
}

/* An OPEN breaker fails the session's request fast: CART_UNAVAILABLE
 * naming the breaker, and the cart is not asked. */
TEST(open_breaker_fails_fast)
{
    setup(2);
    assigned(1);
    uint8_t id[ZC_SESSION_LEN];
    zc_session_rec_t s;
    sess(id, 1);
    CHECK(zc_state_get_session(zc_fsm_state(W.fsm), id, &s) == 0);
    zc_cmd_t c = {.type = ZC_CMD_BREAKER, .time_ms = zc_wall_ms()};
    snprintf(c.brk.cart, sizeof c.brk.cart, "%s", s.cart);
    c.brk.ev = ZC_BRK_EV_FORCE_OPEN;
    c.brk.why = ZC_BRK_WHY_OPERATOR;
    CHECK_EQ_U64(apply(&c).status, ZC_OK);
    request(1, 2, ZC_OP_LIST, NULL, 0);
    const zc_msg_t *r = reply(ZC_CART_UNAVAILABLE);
    if (r)
        CHECK(strstr(r->detail, "breaker") != NULL);
    CHECK_EQ_U64(W.n_node, 0);
    teardown();
}

/* The request lifecycle's table (broker.h): the moves the routing makes
 * are in it, and a request that waits for a cart, a release or a CART_LOST
 * commit can only end. */
TEST(request_lifecycle_table)
{
    CHECK(broker__route_breq_may(BREQ_NEW, BREQ_PARKED));
    CHECK(broker__route_breq_may(BREQ_PARKED, BREQ_ASSIGNING));
    CHECK(broker__route_breq_may(BREQ_ASSIGNING, BREQ_AT_CART));
    CHECK(broker__route_breq_may(BREQ_ASSIGNING, BREQ_PROBING));
    CHECK(broker__route_breq_may(BREQ_AT_NODE, BREQ_AT_CART));
    CHECK(broker__route_breq_may(BREQ_PROBING, BREQ_AT_NODE));
    for (int to = 0; to < BREQ_N_STATES; to++) {
        CHECK(!broker__route_breq_may(BREQ_AT_CART, (breq_state_t)to));
        CHECK(!broker__route_breq_may(BREQ_RELEASING, (breq_state_t)to));
        CHECK(!broker__route_breq_may(BREQ_TELLING, (breq_state_t)to));
        CHECK(!broker__route_breq_may((breq_state_t)to, BREQ_NEW));
        CHECK(!broker__route_breq_may((breq_state_t)to, BREQ_N_STATES));
    }
    CHECK(!broker__route_breq_may(BREQ_ASSIGNING, BREQ_RELEASING));
    CHECK(!broker__route_breq_may(BREQ_PARKED, BREQ_PARKED));
    CHECK_STR(broker__route_breq_state_name(BREQ_AT_NODE), "AT_NODE");
    CHECK_STR(broker__route_breq_state_name(BREQ_N_STATES), "?");
}

/* A HELLO of node n1 listing slots first..last, each having seen gen. */
static void hello(unsigned first, unsigned last, uint64_t gen)
{
    zc_msg_t m;
    zc_msg_init(&m, ZC_MSG_HELLO);
    snprintf(m.node, sizeof m.node, "n1");
    for (unsigned i = first; i <= last; i++) {
        zc_slotinfo_t si = {.slot = (uint16_t)i, .generation = gen};
        CHECK(zc_msg_add_slot(&m, &si) == 0);
    }
    broker__registry_hello(&B, &m);
    zc_msg_reset(&m);
}

/* The leader settles a HELLO that changes nothing without looking up its
 * slots, and still sees every change: a new slot, a missing one, a slot
 * ahead of the cluster's generations, and carts registered or forgotten by
 * other means since (the registry epoch). */
TEST(hello_settled_until_slots_or_registry_change)
{
    setup(4);
    node_info_t *ni = broker__registry_node(&B, "n1");
    unsigned p0 = W.proposed;
    hello(0, 3, 0);
    CHECK_EQ_U64(W.proposed, p0);
    CHECK(ni->hello_settled);
    hello(0, 3, 0); /* settled: nothing */
    CHECK_EQ_U64(W.proposed, p0);
    hello(0, 4, 0); /* slot 4 is new: REGISTER */
    CHECK_EQ_U64(W.proposed, p0 + 1);
    CHECK(!ni->hello_settled);
    commit_all();
    CHECK_EQ_U64(counts_total(), 5);
    hello(0, 4, 0);
    CHECK_EQ_U64(W.proposed, p0 + 1);
    CHECK(ni->hello_settled);
    hello(0, 2, 0); /* slots 3 and 4 gone: UNREGISTER */
    CHECK_EQ_U64(W.proposed, p0 + 2);
    commit_all();
    CHECK_EQ_U64(counts_total(), 3);
    hello(0, 2, 0);
    CHECK(ni->hello_settled);
    uint64_t next_gen = zc_state_meta(zc_fsm_state(W.fsm), "next_gen");
    hello(0, 2, next_gen); /* ahead of the cluster: REGISTER raises next_gen */
    CHECK_EQ_U64(W.proposed, p0 + 3);
    commit_all();
    CHECK(zc_state_meta(zc_fsm_state(W.fsm), "next_gen") > next_gen);
    hello(0, 2, next_gen);
    CHECK(ni->hello_settled);
    unsigned p1 = W.proposed;
    /* Slot 9 registered behind the leader's back (as by an earlier leader):
     * the same HELLO is no longer settled, and slot 9 is an orphan. */
    zc_cmd_slot_t sl = {.slot = 9};
    zc_cmd_t c = {.type = ZC_CMD_REGISTER, .time_ms = zc_wall_ms()};
    snprintf(c.reg.node, sizeof c.reg.node, "n1");
    c.reg.n = 1;
    c.reg.slots = &sl;
    CHECK_EQ_U64(apply(&c).count, 1);
    hello(0, 2, next_gen);
    CHECK_EQ_U64(W.proposed, p1 + 1);
    commit_all();
    CHECK_EQ_U64(counts_total(), 3);
    teardown();
}

int main(void)
{
    zc_log_threshold = ZC_LOG_ERROR;
    snprintf(root, sizeof root, "/tmp/zc_test_route.XXXXXX");
    if (mkdtemp(root) == NULL)
        return 2;
    RUN(step3_follower_answers_not_leader);
    RUN(step3_unready_leader_parks_until_ready_or_deposed);
    RUN(step3_parked_request_expires_unavailable);
    RUN(step4_deadline_past_is_expired);
    RUN(step5_ended_session);
    RUN(step6_no_cart_answers_without_a_commit);
    RUN(step6_first_add_assigns_then_forwards);
    RUN(step6_concurrent_first_adds_get_one_cart);
    RUN(step6_no_free_cart_without_a_proposal);
    RUN(step6_storage_limit_refuses_new_sessions_only);
    RUN(step7_cart_lost_is_told_once);
    RUN(step8_close_releases_then_drains);
    RUN(reset_done_returns_the_drained_cart_once);
    RUN(step8_keepalive_stays_at_the_broker);
    RUN(step8_node_not_connected_waits_for_hello_or_times_out);
    RUN(step8_cart_silent_is_unavailable_and_late_answer_dropped);
    RUN(cart_ko_is_passed_on_with_items);
    RUN(cart_may_not_redirect_the_client);
    RUN(cart_answer_for_another_session_is_dropped);
    RUN(late_commit_after_timeout_answers_once);
    RUN(proposal_lost_with_leadership_is_not_leader);
    RUN(admission_busy_past_max_proposals);
    RUN(open_breaker_fails_fast);
    RUN(request_lifecycle_table);
    RUN(hello_settled_until_slots_or_registry_change);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", root);
    return unit_report();
}
