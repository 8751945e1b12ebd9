/* test_node_changes: leadership transfers, membership changes, a corrupt
 * log and batched proposals of real zc_node replicas (on one libuv loop,
 * loopback TCP).
 *
 * Batched proposals: the commands proposed in one loop turn reach raft as
 * one raft_apply (at most propose_batch, the rest when the turn ends), each
 * caller answered once with its own entry's result; closing the node fails
 * those raft holds and those still queued, once each
 * (tests/unit/test_proposer.c has the raft-level cases).
 *
 * A leadership transfer's memory outlives raft's use of it (issue 9,
 * item 6).
 *
 * raft 0.15 sends TimeoutNow with the send request embedded in the
 * caller's struct raft_transfer (membership.c:210).  Three real zc_node
 * replicas on one libuv loop: the leader is asked to transfer to a
 * caught-up follower and closed in the same loop turn, so the transfer
 * callback fires (inside raft_close) while the TimeoutNow write is still
 * in flight; closing the io then cancels that write, and libuv reads the
 * request's callback field inside libraft (not instrumented by ASan).
 * CTest runs this test with freed memory filled (MALLOC_PERTURB_, ASan's
 * free_fill_byte), so had the node freed the request in the transfer
 * callback, libraft would call a garbage pointer and crash here. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "lib/log.h"
#include "proto/status.h"
#include "replication/node.h"
#include "unit.h"

/* A free loopback port; *fd stays bound (so the next call gets another
 * port) until the caller closes it. */
static int free_port(int *fd)
{
    *fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (*fd < 0 || bind(*fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(*fd, (struct sockaddr *)&a, &len) != 0)
        return -1;
    return ntohs(a.sin_port);
}

static uv_loop_t loop;
static int transfer_status = -1;
static char transfer_detail[128];
static unsigned closed;

static void role_cb(void *arg) { (void)arg; }

static void transfer_done(void *arg, int status, const char *detail)
{
    (void)arg;
    transfer_status = status;
    snprintf(transfer_detail, sizeof transfer_detail, "%s", detail);
}

static void node_closed(void *arg)
{
    (void)arg;
    closed++;
}

static void deadline_cb(uv_timer_t *t) { (void)t; }

/* Run the loop until cond() or about ms milliseconds have passed. */
static bool run_until(bool (*cond)(void), unsigned ms)
{
    uv_timer_t tick;
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, deadline_cb, 10, 10);
    uint64_t end = uv_now(&loop) + ms;
    while (!cond() && uv_now(&loop) < end)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    return cond();
}

static zc_node_t *nodes[3];
static zc_node_t *leader, *target;
static bool some_ready(void)
{
    for (unsigned i = 0; i < 3; i++)
        if (zc_node_ready(nodes[i]))
            return true;
    return false;
}
static bool caught_up(void)
{
    zc_node_info_t l, t;
    zc_node_info(leader, &l);
    zc_node_info(target, &t);
    return t.last_index == l.last_index && t.commit_index == l.commit_index;
}
static bool all_closed(void) { return closed == 3; }
static bool some_ready_one(void) { return zc_node_ready(nodes[0]); }

/* Three replicas on one loop under root, each with its own data dir. */
static bool cluster_up(char *root)
{
    if (mkdtemp(root) == NULL)
        return false;
    closed = 0;
    zc_replica_t members[3];
    memset(members, 0, sizeof members);
    int fds[3];
    for (unsigned i = 0; i < 3; i++) {
        members[i].id = i + 1;
        snprintf(members[i].raft_address, sizeof members[i].raft_address, "127.0.0.1:%d",
                 free_port(&fds[i]));
        snprintf(members[i].client_endpoint, sizeof members[i].client_endpoint,
                 "tcp://127.0.0.1:1");
        snprintf(members[i].cart_endpoint, sizeof members[i].cart_endpoint, "tcp://127.0.0.1:1");
    }
    for (unsigned i = 0; i < 3; i++)
        close(fds[i]);
    uv_loop_init(&loop);
    for (unsigned i = 0; i < 3; i++) {
        char dir[300], err[256];
        snprintf(dir, sizeof dir, "%s/r%u", root, i + 1);
        zc_node_config_t cfg = {.id = i + 1,
                                .dir = dir,
                                .replicas = members,
                                .n_replicas = 3,
                                .election_timeout_ms = 1000,
                                .heartbeat_timeout_ms = 100,
                                .snapshot_threshold = 1024,
                                .snapshot_trailing = 128,
                                .pre_vote = true,
                                .state_map_size = 16u << 20};
        nodes[i] = zc_node_new(&loop, &cfg, role_cb, NULL, err, sizeof err);
        CHECK(nodes[i] != NULL);
        if (nodes[i] == NULL || zc_node_start(nodes[i], err, sizeof err) != 0) {
            fprintf(stderr, "node %u: %s\n", i + 1, err);
            return false;
        }
    }
    return true;
}

static void cluster_down(const char *root)
{
    CHECK(run_until(all_closed, 10000));
    uv_loop_close(&loop);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    CHECK(system(cmd) == 0);
}

/* The snapshot threshold follows the state: entries making half its bytes,
 * clamped to [min, max]; a max at or below min fixes it at min. */
TEST(snapshot_threshold_grows_with_the_state)
{
    /* 1 MB of state, 64-byte entries: 8192 entries */
    CHECK_EQ_U64(zc_node_snapshot_threshold(1 << 20, 64, 1024, 131072), 8192);
    /* a small state stays at the minimum */
    CHECK_EQ_U64(zc_node_snapshot_threshold(64 << 10, 64, 8192, 131072), 8192);
    /* 25 MiB at 50 bytes an entry: 262144 entries, unless the maximum is lower */
    CHECK_EQ_U64(zc_node_snapshot_threshold(25u << 20, 50, 8192, 1000000), 262144);
    CHECK_EQ_U64(zc_node_snapshot_threshold(25u << 20, 50, 8192, 131072), 131072);
    /* max below min: fixed at min; no entries seen yet counts as 1 byte */
    CHECK_EQ_U64(zc_node_snapshot_threshold(25u << 20, 100, 8192, 0), 8192);
    CHECK_EQ_U64(zc_node_snapshot_threshold(100000, 0, 2, 1000000), 50000);
}

TEST(transfer_request_outlives_its_callback)
{
    char root[] = "/tmp/zcart-transfer-XXXXXX";
    CHECK(cluster_up(root));
    CHECK(run_until(some_ready, 10000));
    unsigned li = zc_node_ready(nodes[0]) ? 0 : zc_node_ready(nodes[1]) ? 1 : 2;
    unsigned ti = (li + 1) % 3;
    leader = nodes[li];
    target = nodes[ti];
    CHECK(run_until(caught_up, 10000));
    /* The target is caught up: raft sends TimeoutNow at once, and the
     * write is still in flight when the leader closes in the same loop
     * turn.  raft_close ends the transfer (callback: not taken over), then
     * closes the io, which cancels the write and reads its request. */
    zc_node_transfer(leader, ti + 1, transfer_done, NULL);
    CHECK_EQ_U64(transfer_status, (uint64_t)-1);
    zc_node_close(leader, node_closed, NULL);
    CHECK_EQ_U64(transfer_status, ZC_UNAVAILABLE);
    CHECK_STR(transfer_detail, "the target did not take over in time");
    for (unsigned i = 0; i < 3; i++)
        if (i != li)
            zc_node_close(nodes[i], node_closed, NULL);
    cluster_down(root);
}

static int change_status[2] = {-1, -1};
static char change_detail[2][128];
static void change_done(void *arg, int status, const char *detail)
{
    int k = (int)(intptr_t)arg;
    change_status[k] = status;
    snprintf(change_detail[k], sizeof change_detail[k], "%s", detail);
}

/* Issue 9, item 7: one membership change at a time.  An add-node whose
 * server never catches up keeps its change open; a second change asked
 * meanwhile is refused at once with a clear reason, and nothing changes. */
TEST(second_membership_change_is_refused)
{
    char root[] = "/tmp/zcart-members-XXXXXX";
    CHECK(cluster_up(root));
    CHECK(run_until(some_ready, 10000));
    unsigned li = zc_node_ready(nodes[0]) ? 0 : zc_node_ready(nodes[1]) ? 1 : 2;
    int fd;
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", free_port(&fd)); /* bound, never listening */
    zc_node_add_voter(nodes[li], 4, addr, change_done, (void *)(intptr_t)0);
    zc_node_remove(nodes[li], (li + 1) % 3 + 1, change_done, (void *)(intptr_t)1);
    CHECK_EQ_U64(change_status[1], ZC_UNAVAILABLE);
    CHECK_STR(change_detail[1], "a configuration change is already in progress");
    run_until(some_ready, 500);
    uint64_t ids[8];
    const char *roles[8];
    unsigned n = zc_node_configuration(nodes[li], ids, roles, 8);
    CHECK_EQ_U64(n, 4); /* replica 4 added (not yet a voter); nobody removed */
    CHECK(change_status[0] != ZC_OK);
    close(fd);
    for (unsigned i = 0; i < 3; i++)
        zc_node_close(nodes[i], node_closed, NULL);
    cluster_down(root);
}

static unsigned proposals_ok;
static void proposed(void *arg, int status, const zc_cmd_result_t *res)
{
    (void)arg, (void)res;
    if (status == ZC_OK)
        proposals_ok++;
}
static bool ten_applied(void) { return proposals_ok == 10; }
static bool one_closed(void) { return closed == 1; }

static zc_node_t *start_single(const char *root, const zc_replica_t *me, char *err, size_t errlen)
{
    char dir[300];
    snprintf(dir, sizeof dir, "%s/r1", root);
    zc_node_config_t cfg = {.id = 1,
                            .dir = dir,
                            .replicas = me,
                            .n_replicas = 1,
                            .election_timeout_ms = 200,
                            .heartbeat_timeout_ms = 50,
                            .snapshot_threshold = 1024,
                            .snapshot_trailing = 128,
                            .pre_vote = true,
                            .state_map_size = 16u << 20};
    zc_node_t *n = zc_node_new(&loop, &cfg, role_cb, NULL, err, errlen);
    if (n != NULL && zc_node_start(n, err, errlen) == 0)
        return n;
    if (n != NULL) {
        zc_node_close(n, node_closed, NULL);
        run_until(one_closed, 10000);
    }
    return NULL;
}

/* One caller of many proposals. */
typedef struct {
    unsigned calls;      /* callbacks */
    int status;          /* the last status */
    zc_cmd_result_t res; /* the last result */
} answer_t;
static answer_t answers[200];
static unsigned n_answers;
static void answered(void *arg, int status, const zc_cmd_result_t *res)
{
    answer_t *a = arg;
    a->calls++;
    a->status = status;
    a->res = *res;
}
static bool all_answered(void)
{
    for (unsigned k = 0; k < n_answers; k++)
        if (answers[k].calls == 0)
            return false;
    return true;
}

static void single_member(zc_replica_t *me)
{
    int fd;
    memset(me, 0, sizeof *me);
    me->id = 1;
    snprintf(me->raft_address, sizeof me->raft_address, "127.0.0.1:%d", free_port(&fd));
    snprintf(me->client_endpoint, sizeof me->client_endpoint, "tcp://127.0.0.1:1");
    snprintf(me->cart_endpoint, sizeof me->cart_endpoint, "tcp://127.0.0.1:1");
    close(fd);
}

/* A fresh loop and a single-member node of its own in root, started and
 * ready (its leader barrier applied); NULL after a failed check. */
static zc_node_t *ready_single(const char *root, zc_replica_t *me)
{
    single_member(me);
    uv_loop_init(&loop);
    closed = 0;
    char err[512] = "";
    zc_node_t *n = start_single(root, me, err, sizeof err);
    CHECK(n != NULL);
    if (n == NULL)
        return NULL;
    nodes[0] = n;
    CHECK(run_until(some_ready_one, 10000));
    return n;
}

/* After the node of ready_single closed: the loop and root go. */
static void single_done(const char *root)
{
    uv_loop_close(&loop);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    CHECK(system(cmd) == 0);
}

static void assign(zc_node_t *n, unsigned k)
{
    zc_cmd_t c = {.type = ZC_CMD_ASSIGN, .time_ms = 1};
    c.assign.session[0] = 0x5e;
    c.assign.session[ZC_SESSION_LEN - 2] = (uint8_t)(k >> 8);
    c.assign.session[ZC_SESSION_LEN - 1] = (uint8_t)k;
    c.assign.placement = ZC_PLACE_FIFO;
    zc_node_propose(n, &c, answered, &answers[k]);
}

/* 150 first adds in one loop turn: two raft_applies of 64 from inside the
 * proposes that filled the queue, 22 when the turn ends; 150 distinct
 * carts, each the one the state holds for that caller's session. */
TEST(one_loop_turn_of_proposals_is_one_raft_apply_per_64)
{
    char root[] = "/tmp/zcart-propose-XXXXXX";
    CHECK(mkdtemp(root) != NULL);
    zc_replica_t me;
    zc_node_t *n = ready_single(root, &me);
    if (n == NULL)
        return;
    zc_cmd_slot_t slots[150];
    for (unsigned k = 0; k < 150; k++)
        slots[k] = (zc_cmd_slot_t){.slot = (uint16_t)k};
    zc_cmd_t reg = {.type = ZC_CMD_REGISTER, .time_ms = 1, .reg = {.node = "n1", .n = 150}};
    reg.reg.slots = slots;
    memset(answers, 0, sizeof answers);
    n_answers = 1;
    zc_node_propose(n, &reg, answered, &answers[0]);
    CHECK(run_until(all_answered, 10000));
    CHECK_EQ_U64(answers[0].res.count, 150);
    zc_node_raft_stats_t before, after;
    zc_node_raft_stats(n, &before);
    memset(answers, 0, sizeof answers);
    n_answers = 150;
    for (unsigned k = 0; k < 150; k++)
        assign(n, k);
    zc_node_raft_stats(n, &after);
    CHECK_EQ_U64(after.proposal_batches - before.proposal_batches, 2); /* the full queues */
    CHECK_EQ_U64(after.proposed - before.proposed, 128);
    CHECK(run_until(all_answered, 10000));
    zc_node_raft_stats(n, &after);
    CHECK_EQ_U64(after.proposal_batches - before.proposal_batches, 3);
    CHECK_EQ_U64(after.proposal_batch_max, 64);
    CHECK_EQ_U64(after.proposed - before.proposed, 150);
    CHECK_EQ_U64(after.committed - before.committed, 150);
    CHECK_EQ_U64(after.failed + after.refused, 0);
    for (unsigned k = 0; k < 150; k++) {
        CHECK_EQ_U64(answers[k].calls, 1);
        CHECK_EQ_U64(answers[k].status, ZC_OK);
        CHECK_EQ_U64(answers[k].res.status, ZC_OK);
        uint8_t id[ZC_SESSION_LEN] = {0x5e};
        id[ZC_SESSION_LEN - 2] = (uint8_t)(k >> 8);
        id[ZC_SESSION_LEN - 1] = (uint8_t)k;
        zc_session_rec_t s;
        CHECK(zc_state_get_session(zc_node_state(n), id, &s) == 0);
        CHECK_STR(answers[k].res.cart, s.cart);
        CHECK_EQ_U64(answers[k].res.generation, s.generation);
        if (k > 0)
            CHECK(answers[k].res.generation > answers[k - 1].res.generation);
    }
    zc_node_close(n, node_closed, NULL);
    CHECK(run_until(one_closed, 10000));
    single_done(root);
}

/* Closing a leader with 64 commands in raft (not yet stored) and 6 still
 * queued: each caller fails once, ZC_UNAVAILABLE; after, a proposal is
 * refused at once. */
TEST(closing_fails_queued_and_handed_over_proposals_once)
{
    char root[] = "/tmp/zcart-propose-XXXXXX";
    CHECK(mkdtemp(root) != NULL);
    zc_replica_t me;
    zc_node_t *n = ready_single(root, &me);
    if (n == NULL)
        return;
    memset(answers, 0, sizeof answers);
    n_answers = 70;
    for (unsigned k = 0; k < 70; k++)
        assign(n, k);
    zc_node_raft_stats_t st;
    zc_node_raft_stats(n, &st);
    CHECK_EQ_U64(st.proposed, 64);
    CHECK_EQ_U64(answers[0].calls + answers[69].calls, 0);
    zc_node_close(n, node_closed, NULL);
    for (unsigned k = 0; k < 70; k++) {
        CHECK_EQ_U64(answers[k].calls, 1);
        CHECK_EQ_U64(answers[k].status, ZC_UNAVAILABLE);
    }
    answer_t late = {0};
    zc_cmd_t c = {.type = ZC_CMD_LOST_TOLD};
    zc_node_propose(n, &c, answered, &late); /* closing: refused at once */
    CHECK_EQ_U64(late.calls, 1);
    CHECK_EQ_U64(late.status, ZC_NOT_LEADER);
    CHECK(run_until(one_closed, 10000));
    for (unsigned k = 0; k < 70; k++)
        CHECK_EQ_U64(answers[k].calls, 1);
    single_done(root);
}

/* Issue 9, item 8: raft 0.15's libuv backend renames a corrupt log
 * segment away and starts without its entries unless auto-recovery is
 * off.  The node turns it off: a replica whose closed segment is corrupt
 * refuses to start, and the segment stays where it was. */
TEST(corrupt_segment_stops_the_replica)
{
    char root[] = "/tmp/zcart-corrupt-XXXXXX";
    CHECK(mkdtemp(root) != NULL);
    zc_replica_t me;
    zc_node_t *n = ready_single(root, &me);
    if (n == NULL)
        return;
    for (unsigned i = 0; i < 10; i++) {
        zc_cmd_t c = {.type = ZC_CMD_REGISTER};
        zc_cmd_slot_t slot = {.slot = 0};
        snprintf(c.reg.node, sizeof c.reg.node, "n%u", i);
        c.reg.n = 1;
        c.reg.slots = &slot;
        zc_node_propose(n, &c, proposed, NULL);
    }
    CHECK(run_until(ten_applied, 10000));
    zc_node_close(n, node_closed, NULL);
    CHECK(run_until(one_closed, 10000));
    /* Flip a byte inside the entries of the closed segment(s). */
    char cmd[800];
    snprintf(cmd, sizeof cmd,
             "cd %s/r1/raft && f=$(ls | grep -E '^[0-9]{16}-[0-9]{16}$' | tail -1) && "
             "test -n \"$f\" && printf '\\377\\377\\377\\377' | "
             "dd of=\"$f\" bs=1 seek=$(( $(stat -c %%s \"$f\") - 12 )) conv=notrunc 2>/dev/null",
             root);
    CHECK(system(cmd) == 0);
    closed = 0;
    char err[512] = "";
    n = start_single(root, &me, err, sizeof err);
    CHECK(n == NULL); /* with auto-recovery, raft renames the segment and starts */
    if (n != NULL) {
        zc_node_close(n, node_closed, NULL);
        run_until(one_closed, 10000);
    }
    fprintf(stderr, "start refused: %s\n", err);
    snprintf(cmd, sizeof cmd, "ls %s/r1/raft | grep -q -i corrupt", root);
    CHECK(system(cmd) != 0); /* nothing renamed away */
    single_done(root);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    zc_log_threshold = ZC_LOG_ERROR;
    RUN(snapshot_threshold_grows_with_the_state);
    RUN(transfer_request_outlives_its_callback);
    RUN(second_membership_change_is_refused);
    RUN(corrupt_segment_stops_the_replica);
    RUN(one_loop_turn_of_proposals_is_one_raft_apply_per_64);
    RUN(closing_fails_queued_and_handed_over_proposals_once);
    return unit_report();
}
