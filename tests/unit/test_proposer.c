/* test_proposer: replication/proposer.c on three raft_fixture servers, each
 * with the real LMDB state machine and the io guard (as zcart-sim runs
 * them), stepped in simulated time:
 *   - the commands proposed in one turn go to raft as one raft_apply (one
 *     append of n entries), nothing before the flush, and each caller gets
 *     its own entry's result -- raft 0.15 hands only the first entry's
 *     result to the raft_apply callback (proposer.c);
 *   - a full queue is handed over from inside propose, the rest waits for
 *     the flush;
 *   - refusals: a follower refuses at once; a batch raft refuses (a
 *     leadership transfer in progress) fails every caller once, at the
 *     flush even when the refusal came inside a propose;
 *   - a leader cut off with a batch in flight fails every caller once
 *     (ZC_UNAVAILABLE), and none of them hears of the entries the next
 *     leader writes at the same indexes, which it then applies;
 *   - a batch whose first entry applied (raft forgot the request) and
 *     whose other entries had not when leadership was lost: raft never
 *     tells, zc_proposer_check does.
 * Every wait steps the fixture until a condition holds or a simulated
 * deadline passes. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <raft/fixture.h>

#include "lib/log.h"
#include "proto/status.h"
#include "replication/fsm.h"
#include "replication/io_guard.h"
#include "replication/proposer.h"
#include "unit.h"

#define N 3

static struct raft_fixture f;
static struct raft_fsm fsms[N];
static int (*inner_apply[N])(struct raft_fsm *, const struct raft_buffer *, void **);
static zc_fsm_t *zf[N];
static zc_proposer_t *pr[N];
static zc_io_guard_t *guards[N];
static char root[64];
static raft_index fail_apply_at[N]; /* the FSM of server i fails this entry (0: none) */
static unsigned fatal_calls;

static unsigned server_of(struct raft_fsm *fsm) { return (unsigned)(fsm - fsms); }

/* The node's apply wrapper, as replication/node.c has it. */
static int tap_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    unsigned i = server_of(fsm);
    if (fail_apply_at[i] != 0 && raft_fixture_get(&f, i)->last_applied + 1 == fail_apply_at[i])
        return RAFT_IOERR;
    int rv = inner_apply[i](fsm, buf, result);
    if (rv == 0)
        zc_proposer_applied(pr[i], *result);
    return rv;
}

static bool is_leader(void *arg)
{
    unsigned i = (unsigned)(uintptr_t)arg;
    return raft_state(raft_fixture_get(&f, i)) == RAFT_LEADER;
}

static void on_fatal(void *arg, const char *why, int rv)
{
    (void)arg, (void)why, (void)rv;
    fatal_calls++;
}

static void guard_fatal(void *arg, const char *op, int status, const char *detail)
{
    (void)arg, (void)status;
    fprintf(stderr, "unexpected storage failure: %s: %s\n", op, detail);
    abort();
}

static unsigned max_batch = 0;

static bool cluster_up(void)
{
    snprintf(root, sizeof root, "/tmp/zcart-proposer-XXXXXX");
    if (mkdtemp(root) == NULL)
        return false;
    memset(fail_apply_at, 0, sizeof fail_apply_at);
    fatal_calls = 0;
    memset(&f, 0, sizeof f); /* raft_fixture_initialize leaves the server count */
    if (raft_fixture_initialize(&f) != 0)
        return false;
    for (unsigned i = 0; i < N; i++) {
        char dir[128], err[256];
        snprintf(dir, sizeof dir, "%s/s%u", root, i);
        zf[i] = zc_fsm_new(dir, 16u << 20, err, sizeof err);
        if (zf[i] == NULL) {
            fprintf(stderr, "fsm: %s\n", err);
            return false;
        }
        zc_fsm_raft(zf[i], &fsms[i]);
        inner_apply[i] = fsms[i].apply;
        fsms[i].apply = tap_apply;
        if (raft_fixture_grow(&f, &fsms[i]) != 0)
            return false;
        struct raft *r = raft_fixture_get(&f, i);
        zc_fsm_bind(zf[i], r);
        guards[i] = zc_io_guard_install(&f.servers[i].io, ZC_IO_GUARD_ALL, guard_fatal, NULL);
        zc_io_guard_bind(guards[i], r);
        raft_set_snapshot_threshold(r, 100000);
        raft_set_pre_vote(r, true);
        zc_proposer_config_t pc = {.raft = r,
                                   .max_batch = max_batch,
                                   .ready = is_leader,
                                   .fatal = on_fatal,
                                   .arg = (void *)(uintptr_t)i};
        pr[i] = zc_proposer_new(&pc);
        if (pr[i] == NULL)
            return false;
    }
    struct raft_configuration conf;
    if (raft_fixture_configuration(&f, N, &conf) != 0)
        return false;
    int rv = raft_fixture_bootstrap(&f, &conf);
    raft_configuration_close(&conf);
    return rv == 0 && raft_fixture_start(&f) == 0 && raft_fixture_step_until_has_leader(&f, 10000);
}

static void cluster_down(void)
{
    raft_fixture_close(&f); /* raft_close fails what raft still holds */
    for (unsigned i = 0; i < N; i++) {
        zc_proposer_destroy(&pr[i]);
        zc_io_guard_destroy(&guards[i]);
        zc_fsm_destroy(&zf[i]);
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    CHECK(system(cmd) == 0);
}

/* --- callers --- */

typedef struct {
    unsigned calls;      /* times the callback fired */
    int status;          /* the last status */
    zc_cmd_result_t res; /* the last result */
} answer_t;

static void answered(void *arg, int status, const zc_cmd_result_t *res)
{
    answer_t *a = arg;
    a->calls++;
    a->status = status;
    a->res = *res;
}

static answer_t *wait_for; /* step until wait_n of these have answered */
static unsigned wait_n;
static bool all_answered(struct raft_fixture *fx, void *arg)
{
    (void)fx, (void)arg;
    for (unsigned k = 0; k < wait_n; k++)
        if (wait_for[k].calls == 0)
            return false;
    return true;
}
static bool answers_within(answer_t *a, unsigned n, unsigned ms)
{
    wait_for = a;
    wait_n = n;
    return raft_fixture_step_until(&f, all_answered, NULL, ms);
}

static void session(uint8_t out[ZC_SESSION_LEN], unsigned k)
{
    memset(out, 0, ZC_SESSION_LEN);
    out[0] = 0x5e;
    out[ZC_SESSION_LEN - 1] = (uint8_t)(k + 1);
}

static void propose_register(unsigned i, const char *node, unsigned slots, answer_t *a)
{
    zc_cmd_slot_t sl[8];
    zc_cmd_t c = {.type = ZC_CMD_REGISTER, .time_ms = 1000};
    snprintf(c.reg.node, sizeof c.reg.node, "%s", node);
    c.reg.n = (uint16_t)slots;
    c.reg.slots = sl;
    for (unsigned k = 0; k < slots; k++)
        sl[k] = (zc_cmd_slot_t){.slot = (uint16_t)k};
    zc_proposer_propose(pr[i], &c, answered, a);
}

static void propose_assign(unsigned i, unsigned sess, answer_t *a)
{
    zc_cmd_t c = {.type = ZC_CMD_ASSIGN, .time_ms = 2000};
    session(c.assign.session, sess);
    c.assign.placement = ZC_PLACE_FIFO;
    zc_proposer_propose(pr[i], &c, answered, a);
}

static void propose_return(unsigned i, const char *cart, uint64_t gen, answer_t *a)
{
    zc_cmd_t c = {.type = ZC_CMD_RETURN, .time_ms = 3000};
    snprintf(c.ret.cart, sizeof c.ret.cart, "%s", cart);
    c.ret.generation = gen;
    zc_proposer_propose(pr[i], &c, answered, a);
}

static unsigned leader(void) { return raft_fixture_leader_index(&f); }

/* Register `slots` carts of node n1 through the leader; its index. */
static unsigned with_carts(unsigned slots)
{
    unsigned l = leader();
    answer_t a = {0};
    propose_register(l, "n1", slots, &a);
    zc_proposer_flush(pr[l]);
    CHECK(answers_within(&a, 1, 5000));
    CHECK_EQ_U64(a.status, ZC_OK);
    CHECK_EQ_U64(a.res.count, slots);
    return l;
}

/* --- tests --- */

TEST(one_turn_is_one_raft_apply_and_every_caller_gets_its_own_result)
{
    CHECK(cluster_up());
    unsigned l = with_carts(4);
    struct raft *r = raft_fixture_get(&f, l);
    zc_proposer_stats_t before, after;
    zc_proposer_stats(pr[l], &before);
    raft_index last = raft_last_index(r);
    /* One loop turn's commands: four new sessions (one cart each), a retry
     * of the first (its same cart), a stale RETURN (refused by the FSM),
     * and a fifth session with no free cart left. */
    answer_t a[7] = {{0}};
    propose_assign(l, 1, &a[0]);
    propose_assign(l, 2, &a[1]);
    propose_assign(l, 3, &a[2]);
    propose_assign(l, 1, &a[3]);
    propose_return(l, "n1.0", 99, &a[4]);
    propose_assign(l, 4, &a[5]);
    propose_assign(l, 5, &a[6]);
    CHECK_EQ_U64(raft_last_index(r), last); /* nothing reached raft before the turn ended */
    CHECK(zc_proposer_waiting(pr[l]));
    zc_proposer_flush(pr[l]);
    CHECK(!zc_proposer_waiting(pr[l]));
    CHECK_EQ_U64(raft_last_index(r), last + 7); /* n entries, one raft_apply */
    zc_proposer_stats(pr[l], &after);
    CHECK_EQ_U64(after.batches - before.batches, 1);
    CHECK_EQ_U64(after.batch_max, 7);
    CHECK_EQ_U64(after.proposed - before.proposed, 7);
    CHECK(answers_within(a, 7, 5000));
    for (unsigned k = 0; k < 7; k++) {
        CHECK_EQ_U64(a[k].calls, 1);
        CHECK_EQ_U64(a[k].status, ZC_OK);
    }
    /* Each caller's result is its own entry's: the assignment the state
     * holds for its session. */
    static const unsigned sess_of[7] = {1, 2, 3, 1, 0, 4, 5};
    for (unsigned k = 0; k < 7; k++) {
        if (sess_of[k] == 0 || sess_of[k] == 5)
            continue;
        uint8_t id[ZC_SESSION_LEN];
        session(id, sess_of[k]);
        zc_session_rec_t s;
        CHECK(zc_state_get_session(zc_fsm_state(zf[l]), id, &s) == 0);
        CHECK_EQ_U64(a[k].res.status, ZC_OK);
        CHECK_STR(a[k].res.cart, s.cart);
        CHECK_EQ_U64(a[k].res.generation, s.generation);
    }
    CHECK(strcmp(a[0].res.cart, a[1].res.cart) != 0);
    CHECK(strcmp(a[1].res.cart, a[2].res.cart) != 0);
    CHECK(strcmp(a[2].res.cart, a[5].res.cart) != 0);
    CHECK(a[0].res.generation < a[1].res.generation);
    CHECK(a[2].res.generation < a[5].res.generation);
    CHECK_EQ_U64(a[4].res.status, ZC_FENCED);
    CHECK_STR(a[4].res.cart, "n1.0");
    CHECK_EQ_U64(a[4].res.generation, 99);
    CHECK_EQ_U64(a[6].res.status, ZC_NO_FREE_CART);
    zc_proposer_stats(pr[l], &after);
    CHECK_EQ_U64(after.committed - before.committed, 7);
    CHECK_EQ_U64(after.failed, 0);
    cluster_down();
}

TEST(a_full_queue_goes_to_raft_inside_propose)
{
    max_batch = 4;
    CHECK(cluster_up());
    unsigned l = with_carts(8);
    struct raft *r = raft_fixture_get(&f, l);
    raft_index last = raft_last_index(r);
    answer_t a[6] = {{0}};
    for (unsigned k = 0; k < 3; k++)
        propose_assign(l, k + 1, &a[k]);
    CHECK_EQ_U64(raft_last_index(r), last);
    propose_assign(l, 4, &a[3]); /* the fourth fills the queue */
    CHECK_EQ_U64(raft_last_index(r), last + 4);
    CHECK(!zc_proposer_waiting(pr[l]));
    propose_assign(l, 5, &a[4]);
    propose_assign(l, 6, &a[5]);
    CHECK_EQ_U64(raft_last_index(r), last + 4);
    CHECK_EQ_U64(zc_proposer_queued(pr[l]), 2);
    zc_proposer_flush(pr[l]);
    CHECK_EQ_U64(raft_last_index(r), last + 6);
    zc_proposer_stats_t st;
    zc_proposer_stats(pr[l], &st);
    CHECK_EQ_U64(st.batches, 3); /* the REGISTER's, 4, 2 */
    CHECK_EQ_U64(st.batch_max, 4);
    CHECK(answers_within(a, 6, 5000));
    for (unsigned k = 0; k < 6; k++) {
        CHECK_EQ_U64(a[k].calls, 1);
        CHECK_EQ_U64(a[k].status, ZC_OK);
        CHECK_EQ_U64(a[k].res.status, ZC_OK);
        for (unsigned j = 0; j < k; j++)
            CHECK(strcmp(a[j].res.cart, a[k].res.cart) != 0);
    }
    cluster_down();
    max_batch = 0;
}

TEST(refused_batches_fail_every_caller_once)
{
    max_batch = 3;
    CHECK(cluster_up());
    unsigned l = with_carts(4);
    unsigned fo = (l + 1) % N;
    /* A follower refuses at once, only that caller. */
    answer_t x = {0};
    propose_assign(fo, 9, &x);
    CHECK_EQ_U64(x.calls, 1);
    CHECK_EQ_U64(x.status, ZC_NOT_LEADER);
    CHECK_EQ_U64(x.res.status, ZC_NOT_LEADER);
    CHECK(!zc_proposer_waiting(pr[fo]));
    /* A leader with a transfer in progress: raft_apply says NOTLEADER.  The
     * proposer's ready() (a leader) still says yes, so the commands queue;
     * the third fills the queue and raft refuses the batch inside that
     * propose: nobody is called back from inside it, all three are at the
     * flush, once, with the two queued after them. */
    struct raft *r = raft_fixture_get(&f, l);
    static struct raft_transfer tr;
    CHECK(raft_transfer(r, &tr, raft_fixture_get(&f, fo)->id, NULL) == 0);
    answer_t a[5] = {{0}};
    for (unsigned k = 0; k < 3; k++)
        propose_assign(l, k + 1, &a[k]);
    for (unsigned k = 0; k < 3; k++)
        CHECK_EQ_U64(a[k].calls, 0);
    CHECK(zc_proposer_waiting(pr[l]));
    propose_assign(l, 4, &a[3]);
    propose_assign(l, 5, &a[4]);
    zc_proposer_flush(pr[l]);
    for (unsigned k = 0; k < 5; k++) {
        CHECK_EQ_U64(a[k].calls, 1);
        CHECK_EQ_U64(a[k].status, ZC_NOT_LEADER);
        CHECK_EQ_U64(a[k].res.status, ZC_NOT_LEADER);
    }
    zc_proposer_stats_t st;
    zc_proposer_stats(pr[l], &st);
    CHECK_EQ_U64(st.refused, 5);
    CHECK_EQ_U64(st.proposed, 1); /* the REGISTER */
    CHECK(!zc_proposer_waiting(pr[l]));
    cluster_down();
    max_batch = 0;
}

static unsigned cut_leader;
static bool deposed(struct raft_fixture *fx, void *arg)
{
    (void)arg;
    return raft_state(raft_fixture_get(fx, cut_leader)) != RAFT_LEADER;
}
static bool new_leader(struct raft_fixture *fx, void *arg)
{
    (void)arg;
    for (unsigned i = 0; i < N; i++)
        if (i != cut_leader && raft_state(raft_fixture_get(fx, i)) == RAFT_LEADER)
            return true;
    return false;
}
/* The leader among the servers other than cut_leader, N if none. */
static unsigned other_leader(void)
{
    for (unsigned i = 0; i < N; i++)
        if (i != cut_leader && raft_state(raft_fixture_get(&f, i)) == RAFT_LEADER)
            return i;
    return N;
}
static raft_index caught_index;
static bool caught_up(struct raft_fixture *fx, void *arg)
{
    (void)arg;
    return raft_last_applied(raft_fixture_get(fx, cut_leader)) >= caught_index;
}

static void cut(unsigned l, bool off)
{
    for (unsigned j = 0; j < N; j++)
        if (j != l) {
            if (off) {
                raft_fixture_disconnect(&f, l, j);
                raft_fixture_disconnect(&f, j, l);
            } else {
                raft_fixture_reconnect(&f, l, j);
                raft_fixture_reconnect(&f, j, l);
            }
        }
}

TEST(leadership_lost_mid_batch_fails_every_caller_once_and_mixes_nothing)
{
    CHECK(cluster_up());
    unsigned l = with_carts(6);
    struct raft *r = raft_fixture_get(&f, l);
    raft_index first = raft_last_index(r) + 1;
    answer_t a[3] = {{0}};
    for (unsigned k = 0; k < 3; k++)
        propose_assign(l, k + 1, &a[k]);
    zc_proposer_flush(pr[l]);
    CHECK_EQ_U64(raft_last_index(r), first + 2);
    /* Cut off before anything is delivered: the batch never leaves it. */
    cut_leader = l;
    cut(l, true);
    CHECK(raft_fixture_step_until(&f, deposed, NULL, 10000));
    for (unsigned k = 0; k < 3; k++) {
        CHECK_EQ_U64(a[k].calls, 1);
        CHECK_EQ_U64(a[k].status, ZC_UNAVAILABLE);
        CHECK_EQ_U64(a[k].res.status, ZC_UNAVAILABLE);
    }
    /* The others elect a leader, which writes its own batch at the same
     * indexes (sessions 11..13); the old leader comes back, takes them and
     * applies them: its callers hear nothing more. */
    CHECK(raft_fixture_step_until(&f, new_leader, NULL, 20000));
    unsigned nl = other_leader();
    CHECK(nl < N);
    if (nl == N) {
        cluster_down();
        return;
    }
    CHECK_EQ_U64(raft_last_index(raft_fixture_get(&f, nl)) + 1, first);
    answer_t b[3] = {{0}};
    for (unsigned k = 0; k < 3; k++)
        propose_assign(nl, k + 11, &b[k]);
    zc_proposer_flush(pr[nl]);
    CHECK(answers_within(b, 3, 10000));
    cut(l, false);
    caught_index = raft_last_index(raft_fixture_get(&f, nl));
    CHECK(raft_fixture_step_until(&f, caught_up, NULL, 20000));
    zc_proposer_check(pr[l]);
    zc_proposer_flush(pr[l]);
    for (unsigned k = 0; k < 3; k++) {
        CHECK_EQ_U64(a[k].calls, 1);
        CHECK_EQ_U64(a[k].status, ZC_UNAVAILABLE);
        CHECK_EQ_U64(b[k].calls, 1);
        CHECK_EQ_U64(b[k].status, ZC_OK);
        uint8_t id[ZC_SESSION_LEN];
        zc_session_rec_t s;
        session(id, k + 1);
        CHECK(zc_state_get_session(zc_fsm_state(zf[l]), id, &s) == 1); /* lost: overwritten */
        session(id, k + 11);
        CHECK(zc_state_get_session(zc_fsm_state(zf[l]), id, &s) == 0);
        CHECK_STR(b[k].res.cart, s.cart);
    }
    zc_proposer_stats_t st;
    zc_proposer_stats(pr[l], &st);
    CHECK_EQ_U64(st.failed, 3);
    CHECK_EQ_U64(st.proposed, st.committed + st.failed);
    cluster_down();
}

TEST(a_loss_raft_never_reports_is_caught_by_the_check)
{
    CHECK(cluster_up());
    unsigned l = with_carts(6);
    struct raft *r = raft_fixture_get(&f, l);
    raft_index first = raft_last_index(r) + 1;
    /* The leader's FSM cannot apply the batch's second entry (raft 0.15
     * then retries it at every commit): the first entry applies, raft's
     * callback fires for the batch (and forgets it), entries 2 and 3 stay
     * unapplied here. */
    fail_apply_at[l] = first + 1;
    answer_t a[3] = {{0}};
    for (unsigned k = 0; k < 3; k++)
        propose_assign(l, k + 1, &a[k]);
    zc_proposer_flush(pr[l]);
    CHECK(answers_within(a, 1, 5000));
    CHECK_EQ_U64(a[0].status, ZC_OK);
    CHECK_EQ_U64(a[1].calls + a[2].calls, 0);
    /* Leadership goes: raft has no request left to fail. */
    cut_leader = l;
    cut(l, true);
    CHECK(raft_fixture_step_until(&f, deposed, NULL, 10000));
    CHECK_EQ_U64(a[1].calls + a[2].calls, 0);
    zc_proposer_check(pr[l]); /* the node's check, at the end of the loop turn */
    for (unsigned k = 1; k < 3; k++) {
        CHECK_EQ_U64(a[k].calls, 1);
        CHECK_EQ_U64(a[k].status, ZC_UNAVAILABLE);
    }
    /* The FSM recovers and, a follower now, applies them once the new
     * leader commits its first entry (as a broker's barrier would): nobody
     * is called again. */
    fail_apply_at[l] = 0;
    CHECK(raft_fixture_step_until(&f, new_leader, NULL, 20000));
    unsigned nl = other_leader();
    CHECK(nl < N);
    if (nl >= N) {
        cluster_down();
        return;
    }
    answer_t b = {0};
    propose_assign(nl, 21, &b);
    zc_proposer_flush(pr[nl]);
    cut(l, false);
    CHECK(answers_within(&b, 1, 10000));
    CHECK_EQ_U64(b.status, ZC_OK);
    caught_index = raft_last_index(raft_fixture_get(&f, nl));
    CHECK(raft_fixture_step_until(&f, caught_up, NULL, 20000));
    uint8_t id[ZC_SESSION_LEN];
    zc_session_rec_t s;
    session(id, 3);
    CHECK(zc_state_get_session(zc_fsm_state(zf[l]), id, &s) == 0); /* entry 3 applied here */
    CHECK_EQ_U64(a[0].calls, 1);
    CHECK_EQ_U64(a[1].calls, 1);
    CHECK_EQ_U64(a[2].calls, 1);
    CHECK_EQ_U64(fatal_calls, 0);
    cluster_down();
}

int main(void)
{
    zc_log_threshold = ZC_LOG_ERROR;
    RUN(one_turn_is_one_raft_apply_and_every_caller_gets_its_own_result);
    RUN(a_full_queue_goes_to_raft_inside_propose);
    RUN(refused_batches_fail_every_caller_once);
    RUN(leadership_lost_mid_batch_fails_every_caller_once_and_mixes_nothing);
    RUN(a_loss_raft_never_reports_is_caught_by_the_check);
    return unit_report();
}
