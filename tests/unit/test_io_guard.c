/* test_io_guard: replication/io_guard.c against a fake inner raft_io and a
 * hand-built struct raft (raft 0.15's fields are public), one directed
 * scenario per bug it covers, each failing without its fix (the tests
 * install the guard without that fix bit to prove it):
 *   1a/1b  success results capped at what the leader's requests raft
 *          accepted, dropped when it accepted none in that term, both while
 *          handling an AppendEntries and from a later write callback;
 *   2      an AppendEntries below the snapshot raised to it;
 *   3      a new leader holds results back until it stored an entry of its
 *          term, then hands raft those of its term;
 *   4      a refused pre-vote carries the refuser's term;
 *   5      storage failures, returned or in a callback, reach the hook, and
 *          the broker's default hook exits with ZC_EXIT_STORAGE and a log
 *          line naming the error. */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "replication/io_guard.h"
#include "unit.h"

/* --- the fake inner io and raft --- */

static struct {
    raft_io_recv_cb recv;             /* the guard's receive callback */
    struct raft_message sent[8];      /* what reached the inner send */
    unsigned n_sent;                  /* entries in sent */
    unsigned send_cbs;                /* send callbacks fired (drops included) */
    int append_rv;                    /* what the inner append returns */
    raft_io_append_cb append_cb;      /* the pending append's callback */
    struct raft_io_append *append_req; /* and its request */
    int truncate_rv, snapshot_rv, term_rv; /* what those return */
    raft_io_snapshot_put_cb snap_cb;  /* the pending snapshot write's callback */
    struct raft_io_snapshot_put *snap_req; /* and its request */
    /* What the fake raft does with the next AppendEntries it receives. */
    bool reply;                       /* send a result */
    bool reply_rejected;              /* ... a rejection */
    raft_index reply_last;            /* ... with this last_log_index */
    bool write;                       /* call append while handling it */
    struct raft_append_entries got;   /* the AppendEntries raft saw */
    unsigned n_got;                   /* AppendEntries or results raft saw */
} fake;

static struct raft_io io;
static struct raft raft;

static int fake_start(struct raft_io *i, unsigned ms, raft_io_tick_cb tick, raft_io_recv_cb recv)
{
    (void)i, (void)ms, (void)tick;
    fake.recv = recv;
    return 0;
}

static int fake_send(struct raft_io *i, struct raft_io_send *req, const struct raft_message *m,
                     raft_io_send_cb cb)
{
    (void)i;
    fake.sent[fake.n_sent++ % 8] = *m;
    cb(req, 0);
    return 0;
}

static void count_send_cb(struct raft_io_send *req, int status)
{
    (void)req, (void)status;
    fake.send_cbs++;
}

static int fake_append(struct raft_io *i, struct raft_io_append *req,
                       const struct raft_entry entries[], unsigned n, raft_io_append_cb cb)
{
    (void)i, (void)entries, (void)n;
    if (fake.append_rv != 0)
        return fake.append_rv;
    fake.append_req = req;
    fake.append_cb = cb;
    return 0;
}

static int fake_truncate(struct raft_io *i, raft_index index)
{
    (void)i, (void)index;
    return fake.truncate_rv;
}

static int fake_snapshot_put(struct raft_io *i, unsigned trailing, struct raft_io_snapshot_put *req,
                             const struct raft_snapshot *snap, raft_io_snapshot_put_cb cb)
{
    (void)i, (void)trailing, (void)snap;
    if (fake.snapshot_rv != 0)
        return fake.snapshot_rv;
    fake.snap_req = req;
    fake.snap_cb = cb;
    return 0;
}

static int fake_set_term(struct raft_io *i, raft_term t)
{
    (void)i, (void)t;
    return fake.term_rv;
}

static int fake_set_vote(struct raft_io *i, raft_id id)
{
    (void)i, (void)id;
    return fake.term_rv;
}

static void raft_result_cb(struct raft_io_send *req, int status)
{
    (void)status;
    free(req);
}

static struct raft_io_append raft_append_req;
static int raft_append_status = -1;
static void raft_append_cb(struct raft_io_append *req, int status)
{
    (void)req;
    raft_append_status = status;
}

/* Raft's side: what recv_append_entries.c does, reduced to what the guard
 * sees (a result, or an append while handling the request). */
static void fake_raft_recv(struct raft_io *i, struct raft_message *m)
{
    fake.n_got++;
    if (m->type != RAFT_IO_APPEND_ENTRIES)
        return;
    fake.got = m->append_entries;
    if (fake.write)
        i->append(i, &raft_append_req, NULL, 1, raft_append_cb);
    if (fake.reply) {
        struct raft_message r = {.type = RAFT_IO_APPEND_ENTRIES_RESULT,
                                 .server_id = m->server_id,
                                 .server_address = "leader"};
        r.append_entries_result.term = m->append_entries.term;
        r.append_entries_result.rejected = fake.reply_rejected ? m->append_entries.prev_log_index : 0;
        r.append_entries_result.last_log_index = fake.reply_last;
        i->send(i, malloc(sizeof(struct raft_io_send)), &r, raft_result_cb);
    }
    if (m->append_entries.n_entries > 0) {
        free(m->append_entries.entries[0].batch);
        free(m->append_entries.entries);
    }
}

static struct raft_entry log_entries[64];

/* A follower at term 1 whose in-memory log holds entries first..last with
 * the given term, after a snapshot at first - 1 (none if first is 1). */
static void set_log(raft_index first, raft_index last, raft_term term)
{
    memset(log_entries, 0, sizeof log_entries);
    raft.log.entries = log_entries;
    raft.log.size = 64;
    raft.log.front = 0;
    raft.log.back = (size_t)(last - first + 1);
    raft.log.offset = first - 1;
    raft.log.snapshot.last_index = first - 1;
    raft.log.snapshot.last_term = first > 1 ? term : 0;
    for (size_t k = 0; k < raft.log.back; k++)
        log_entries[k].term = term;
    raft.last_stored = last;
}

static zc_io_guard_t *setup(unsigned fixes, zc_io_guard_fatal_cb fatal, void *arg)
{
    memset(&fake, 0, sizeof fake);
    memset(&io, 0, sizeof io);
    memset(&raft, 0, sizeof raft);
    io.start = fake_start;
    io.send = fake_send;
    io.append = fake_append;
    io.truncate = fake_truncate;
    io.snapshot_put = fake_snapshot_put;
    io.set_term = fake_set_term;
    io.set_vote = fake_set_vote;
    raft.state = RAFT_FOLLOWER;
    raft.current_term = 1;
    set_log(1, 40, 1);
    zc_io_guard_t *g = zc_io_guard_install(&io, fixes, fatal, arg);
    zc_io_guard_bind(g, &raft);
    io.start(&io, 100, NULL, fake_raft_recv);
    return g;
}

/* A leader's AppendEntries reaching the follower. */
static void deliver_ae(raft_id from, raft_term term, raft_index prev, unsigned n)
{
    struct raft_message m = {.type = RAFT_IO_APPEND_ENTRIES, .server_id = from,
                             .server_address = "leader"};
    m.append_entries.term = term;
    m.append_entries.prev_log_index = prev;
    m.append_entries.prev_log_term = term;
    m.append_entries.n_entries = n;
    if (n > 0) {
        void *batch = malloc(8);
        m.append_entries.entries = calloc(n, sizeof(struct raft_entry));
        for (unsigned k = 0; k < n; k++) {
            m.append_entries.entries[k].term = term + k; /* tell them apart */
            m.append_entries.entries[k].batch = batch;
        }
    }
    fake.recv(&io, &m);
}

/* A success result sent outside any request (a write callback's). */
static void send_late_result(raft_id to, raft_term term, raft_index last)
{
    struct raft_message r = {.type = RAFT_IO_APPEND_ENTRIES_RESULT, .server_id = to,
                             .server_address = "leader"};
    r.append_entries_result.term = term;
    r.append_entries_result.last_log_index = last;
    static struct raft_io_send req;
    io.send(&io, &req, &r, count_send_cb);
}

static raft_index last_sent_index(void)
{
    return fake.sent[(fake.n_sent - 1) % 8].append_entries_result.last_log_index;
}

/* 1a: a heartbeat accepted without a write is answered with the whole
 * stored log (40, a deposed leader's tail); only prev + n is the leader's. */
TEST(cap_result_inside_append_entries)
{
    zc_io_guard_t *g = setup(ZC_IO_GUARD_ALL, NULL, NULL);
    fake.reply = true;
    fake.reply_last = 40;
    deliver_ae(2, 5, 12, 0);
    CHECK_EQ_U64(fake.n_sent, 1);
    CHECK_EQ_U64(last_sent_index(), 12);
    zc_io_guard_destroy(&g);

    g = setup(ZC_IO_GUARD_ALL & ~ZC_IO_GUARD_CAP_RECV, NULL, NULL);
    fake.reply = true;
    fake.reply_last = 40;
    deliver_ae(2, 5, 12, 0);
    CHECK_EQ_U64(last_sent_index(), 40); /* raft 0.15's answer */
    zc_io_guard_destroy(&g);
}

/* 1b: a write begun for the old leader finishes after the new leader's
 * first request: raft reports its stored tail in the new term. */
TEST(cap_or_drop_result_from_callback)
{
    zc_io_guard_t *g = setup(ZC_IO_GUARD_ALL, NULL, NULL);
    fake.reply = true;
    fake.reply_last = 20;
    deliver_ae(2, 5, 18, 2); /* leader 2, term 5: accepted up to 20 */
    unsigned sent = fake.n_sent;
    /* Term 6, nothing accepted from its leader yet: dropped, callback fired. */
    send_late_result(3, 6, 40);
    CHECK_EQ_U64(fake.n_sent, sent);
    CHECK_EQ_U64(fake.send_cbs, 1);
    /* Leader 3's heartbeat at 12 accepted: later results are capped there. */
    fake.reply_last = 12;
    deliver_ae(3, 6, 12, 0);
    send_late_result(3, 6, 40);
    CHECK_EQ_U64(last_sent_index(), 12);
    /* A rejected request accepts nothing more. */
    fake.reply_rejected = true;
    deliver_ae(3, 6, 30, 4);
    send_late_result(3, 6, 40);
    CHECK_EQ_U64(last_sent_index(), 12);
    /* Entries written while handling a request: accepted up to its end. */
    fake.reply = false;
    fake.write = true;
    deliver_ae(3, 6, 12, 3);
    send_late_result(3, 6, 40);
    CHECK_EQ_U64(last_sent_index(), 15);
    /* A result for the old term after the new one: dropped. */
    sent = fake.n_sent;
    send_late_result(2, 5, 20);
    CHECK_EQ_U64(fake.n_sent, sent);
    zc_io_guard_stats_t st;
    zc_io_guard_stats(g, &st);
    CHECK_EQ_U64(st.results_dropped, 2);
    zc_io_guard_destroy(&g);

    g = setup(ZC_IO_GUARD_ALL & ~ZC_IO_GUARD_CAP_CB, NULL, NULL);
    fake.reply = true;
    fake.reply_last = 20;
    deliver_ae(2, 5, 18, 2);
    send_late_result(3, 6, 40);
    CHECK_EQ_U64(last_sent_index(), 40); /* raft 0.15's answer reaches leader 3 */
    zc_io_guard_destroy(&g);
}

/* 2: entries 1..30 compacted into a snapshot; a leader probing from
 * index 5 with entries 6..35 must start at 30 with 31..35. */
TEST(append_entries_raised_to_snapshot)
{
    zc_io_guard_t *g = setup(ZC_IO_GUARD_ALL, NULL, NULL);
    set_log(31, 40, 1);
    deliver_ae(2, 5, 5, 30);
    CHECK_EQ_U64(fake.got.prev_log_index, 30);
    CHECK_EQ_U64(fake.got.n_entries, 5);
    CHECK_EQ_U64(fake.got.prev_log_term, 5 + 24); /* the leader's entry at 30 */
    /* All of them below the snapshot: a heartbeat at its index. */
    deliver_ae(2, 5, 0, 10);
    CHECK_EQ_U64(fake.got.prev_log_index, 30);
    CHECK_EQ_U64(fake.got.n_entries, 0);
    CHECK_EQ_U64(fake.got.prev_log_term, 1);
    CHECK(fake.got.entries == NULL);
    /* Above the compacted part: untouched. */
    deliver_ae(2, 5, 33, 2);
    CHECK_EQ_U64(fake.got.prev_log_index, 33);
    zc_io_guard_destroy(&g);

    g = setup(ZC_IO_GUARD_ALL & ~ZC_IO_GUARD_SNAPSHOT_PREV, NULL, NULL);
    set_log(31, 40, 1);
    deliver_ae(2, 5, 0, 10);
    CHECK_EQ_U64(fake.got.prev_log_index, 0); /* raft 0.15 appends these at 41.. */
    zc_io_guard_destroy(&g);
}

static void deliver_result(void)
{
    struct raft_message m = {.type = RAFT_IO_APPEND_ENTRIES_RESULT, .server_id = 2,
                             .server_address = "f"};
    m.append_entries_result.term = raft.current_term;
    m.append_entries_result.last_log_index = 40;
    fake.recv(&io, &m);
}

/* 3: a new leader of term 6 whose last stored entry is of term 5 must not
 * count replicas (it would commit a term-5 entry by counting). */
TEST(new_leader_counts_nothing_before_its_own_entry)
{
    zc_io_guard_t *g = setup(ZC_IO_GUARD_ALL, NULL, NULL);
    raft.state = RAFT_LEADER;
    raft.current_term = 6;
    set_log(1, 40, 5);
    deliver_result();
    deliver_result();
    CHECK_EQ_U64(fake.n_got, 0); /* held back */
    CHECK(io.append(&io, &raft_append_req, NULL, 1, raft_append_cb) == 0);
    log_entries[40].term = 6; /* its barrier, index 41, stored */
    raft.log.back = 41;
    raft.last_stored = 41;
    fake.append_cb(fake.append_req, 0); /* ... and raft hears of it */
    CHECK_EQ_U64(fake.n_got, 2);        /* now it gets the two held results */
    deliver_result();
    CHECK_EQ_U64(fake.n_got, 3);
    /* Held results of an older term are dropped when released. */
    raft.current_term = 7;
    set_log(1, 40, 5);
    deliver_result(); /* term 7, held */
    raft.current_term = 8;
    log_entries[40].term = 8;
    raft.log.back = 41;
    raft.last_stored = 41;
    deliver_result(); /* releases (drops) the term-7 one, then this one */
    CHECK_EQ_U64(fake.n_got, 4);
    zc_io_guard_destroy(&g);

    g = setup(ZC_IO_GUARD_ALL & ~ZC_IO_GUARD_OWN_TERM, NULL, NULL);
    raft.state = RAFT_LEADER;
    raft.current_term = 6;
    set_log(1, 40, 5);
    deliver_result();
    CHECK_EQ_U64(fake.n_got, 1);
    zc_io_guard_destroy(&g);
}

static void send_prevote_result(raft_term term, bool granted)
{
    struct raft_message r = {.type = RAFT_IO_REQUEST_VOTE_RESULT, .server_id = 2,
                             .server_address = "c"};
    r.request_vote_result.term = term;
    r.request_vote_result.vote_granted = granted;
    r.request_vote_result.pre_vote = raft_tribool_true;
    static struct raft_io_send req;
    io.send(&io, &req, &r, count_send_cb);
}

/* 4: at term 9, refusing a pre-vote asked at term 6: the answer says 9. */
TEST(refused_prevote_carries_own_term)
{
    zc_io_guard_t *g = setup(ZC_IO_GUARD_ALL, NULL, NULL);
    raft.current_term = 9;
    send_prevote_result(6, false);
    CHECK_EQ_U64(fake.sent[0].request_vote_result.term, 9);
    send_prevote_result(10, false); /* refused at a term above ours: as is */
    CHECK_EQ_U64(fake.sent[1].request_vote_result.term, 10);
    send_prevote_result(6, true); /* granted: as is (cannot happen at 9, but untouched) */
    CHECK_EQ_U64(fake.sent[2].request_vote_result.term, 6);
    zc_io_guard_destroy(&g);

    g = setup(ZC_IO_GUARD_ALL & ~ZC_IO_GUARD_PREVOTE_TERM, NULL, NULL);
    raft.current_term = 9;
    send_prevote_result(6, false);
    CHECK_EQ_U64(fake.sent[0].request_vote_result.term, 6); /* raft 0.15's answer */
    zc_io_guard_destroy(&g);
}

static char fatal_ops[256];
static void record_fatal(void *arg, const char *op, int status, const char *detail)
{
    (void)detail;
    (*(unsigned *)arg)++;
    snprintf(fatal_ops + strlen(fatal_ops), sizeof fatal_ops - strlen(fatal_ops), "%s%s:%d",
             fatal_ops[0] ? "," : "", op, status);
}

/* 5: every storage failure reaches the hook before raft sees it. */
TEST(storage_failures_reach_the_hook)
{
    unsigned calls = 0;
    fatal_ops[0] = 0;
    zc_io_guard_t *g = setup(ZC_IO_GUARD_ALL, record_fatal, &calls);
    fake.append_rv = RAFT_IOERR; /* returned */
    CHECK(io.append(&io, &raft_append_req, NULL, 1, raft_append_cb) == RAFT_IOERR);
    fake.append_rv = 0; /* in the callback: hidden from raft once the hook returned */
    raft_append_status = -1;
    CHECK(io.append(&io, &raft_append_req, NULL, 1, raft_append_cb) == 0);
    fake.append_cb(fake.append_req, RAFT_IOERR);
    CHECK(raft_append_status == 0);
    fake.truncate_rv = RAFT_IOERR;
    CHECK(io.truncate(&io, 5) == RAFT_IOERR);
    fake.snapshot_rv = RAFT_NOSPACE;
    struct raft_io_snapshot_put put;
    CHECK(io.snapshot_put(&io, 0, &put, NULL, NULL) == RAFT_NOSPACE);
    fake.snapshot_rv = 0;
    CHECK(io.snapshot_put(&io, 0, &put, NULL, NULL) == 0);
    fake.term_rv = RAFT_IOERR;
    CHECK(io.set_term(&io, 3) == RAFT_IOERR);
    CHECK(io.set_vote(&io, 3) == RAFT_IOERR);
    /* Canceled: the io is closing, no failure; raft sees it as is. */
    CHECK(io.append(&io, &raft_append_req, NULL, 1, raft_append_cb) == 0);
    fake.append_cb(fake.append_req, RAFT_CANCELED);
    CHECK(raft_append_status == RAFT_CANCELED);
    CHECK_EQ_U64(calls, 6);
    char want[256];
    snprintf(want, sizeof want, "append:%d,append:%d,truncate:%d,snapshot write:%d,term write:%d,vote write:%d",
             RAFT_IOERR, RAFT_IOERR, RAFT_IOERR, RAFT_NOSPACE, RAFT_IOERR, RAFT_IOERR);
    CHECK_STR(fatal_ops, want);
    zc_io_guard_destroy(&g); /* frees the snapshot write still pending */
}

/* 5: the broker's hook (NULL): a log line naming the error, then exit
 * with ZC_EXIT_STORAGE, for a failure in a callback. */
TEST(default_hook_exits_with_storage_status)
{
    int pipefd[2];
    CHECK(pipe(pipefd) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pipefd[1], 2);
        zc_io_guard_t *g = setup(ZC_IO_GUARD_ALL, NULL, NULL);
        (void)g;
        io.append(&io, &raft_append_req, NULL, 1, raft_append_cb);
        fake.append_cb(fake.append_req, RAFT_IOERR);
        _exit(0); /* not reached */
    }
    close(pipefd[1]);
    char out[1024] = "";
    size_t len = 0;
    ssize_t k;
    while (len < sizeof out - 1 && (k = read(pipefd[0], out + len, sizeof out - 1 - len)) > 0)
        len += (size_t)k;
    out[len] = 0;
    close(pipefd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == ZC_EXIT_STORAGE);
    CHECK(strstr(out, "append failed") != NULL);
    CHECK(strstr(out, "I/O error") != NULL);
}

int main(void)
{
    RUN(cap_result_inside_append_entries);
    RUN(cap_or_drop_result_from_callback);
    RUN(append_entries_raised_to_snapshot);
    RUN(new_leader_counts_nothing_before_its_own_entry);
    RUN(refused_prevote_carries_own_term);
    RUN(storage_failures_reach_the_hook);
    RUN(default_hook_exits_with_storage_status);
    return unit_report();
}
