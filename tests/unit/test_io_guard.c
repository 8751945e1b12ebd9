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
 *   1, 3   a later term's answer reaches a stale leader (a refusal of a
 *          probe from index 0 reads rejected = 0; results held back);
 *   5      storage failures, returned or in a callback, reach the hook, and
 *          the broker's default hook exits with ZC_EXIT_STORAGE and a log
 *          line naming the error;
 *   7a     rolling back a pending configuration whose committed one was
 *          compacted restores the guard's copy (raft 0.15 reads NULL);
 *   7b     a snapshot taken with a change pending stores the committed
 *          configuration;
 *   7c     a non-voter forgets a leader silent for an election timeout
 *          when asked to vote, and answers as a voter;
 *   7d     a follower switches to a configuration entry as it appends it;
 *   11     a leader sending a snapshot to a replica whose new process
 *          the transport saw gives the install up (probe mode). */
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
        i->append(i, &raft_append_req, m->append_entries.entries,
                  m->append_entries.n_entries ? m->append_entries.n_entries : 1, raft_append_cb);
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

/* Raft 0.15 refusing a request of an older term: its own term, rejected =
 * prev_log_index (0 for a probe from index 0). */
static void fake_raft_stale(struct raft_io *i, struct raft_message *m)
{
    struct raft_message r = {.type = RAFT_IO_APPEND_ENTRIES_RESULT, .server_id = m->server_id,
                             .server_address = "1"};
    r.append_entries_result.term = raft.current_term;
    r.append_entries_result.rejected = m->append_entries.prev_log_index;
    r.append_entries_result.last_log_index = 1;
    i->send(i, malloc(sizeof(struct raft_io_send)), &r, raft_result_cb);
}

/* 1 and 3 must let a stale leader learn a later term: a follower of term
 * 104 refuses a probe of term 3 from index 0 with rejected = 0 (raft's
 * rejected = prev_log_index), which is no success to cap or drop; and a
 * leader holding results back still gets one of a later term. */
TEST(later_term_answers_go_through)
{
    zc_io_guard_t *g = setup(ZC_IO_GUARD_ALL, NULL, NULL);
    raft.current_term = 104;
    struct raft_message m = {.type = RAFT_IO_APPEND_ENTRIES, .server_id = 1,
                             .server_address = "1"};
    m.append_entries.term = 3;
    m.append_entries.prev_log_index = 0;
    io.start(&io, 100, NULL, fake_raft_stale);
    fake.recv(&io, &m);
    CHECK_EQ_U64(fake.n_sent, 1); /* not dropped */
    CHECK_EQ_U64(fake.sent[0].append_entries_result.term, 104);
    zc_io_guard_destroy(&g);

    g = setup(ZC_IO_GUARD_ALL, NULL, NULL);
    raft.state = RAFT_LEADER;
    raft.current_term = 6;
    set_log(1, 40, 5); /* nothing of term 6 stored: results held back */
    deliver_result();
    CHECK_EQ_U64(fake.n_got, 0);
    struct raft_message r = {.type = RAFT_IO_APPEND_ENTRIES_RESULT, .server_id = 2,
                             .server_address = "f"};
    r.append_entries_result.term = 9;
    fake.recv(&io, &r);
    CHECK_EQ_U64(fake.n_got, 1); /* the later term reaches raft */
    zc_io_guard_destroy(&g);
}

/* --- 7: membership --- */

static raft_time fake_now;
static raft_time fake_time(struct raft_io *i)
{
    (void)i;
    return fake_now;
}

/* A configuration of servers 1..n, voters unless told. */
static void make_conf(struct raft_configuration *c, unsigned n, unsigned last_role)
{
    raft_configuration_init(c);
    for (unsigned k = 1; k <= n; k++) {
        char addr[8];
        snprintf(addr, sizeof addr, "%u", k);
        raft_configuration_add(c, k, addr, k == n ? (int)last_role : RAFT_VOTER);
    }
}

/* 7a: a follower whose committed configuration (index 5) was compacted
 * (log 31..40) holds an uncommitted one at 40; a new leader's entry
 * replaces it.  Raft 0.15 would roll back by reading entry 5 (NULL); the
 * guard hides the pending index from raft and restores its copy. */
static bool rolled_back_by_raft;
static void fake_raft_truncating(struct raft_io *i, struct raft_message *m)
{
    (void)i;
    if (m->type != RAFT_IO_APPEND_ENTRIES)
        return;
    /* deleteConflictingEntries: entry 40 (term 1) conflicts with term 2. */
    if (raft.configuration_uncommitted_index >= 40)
        rolled_back_by_raft = true; /* membershipRollback: logGet(5) is NULL */
    log_entries[9].term = 2;
    raft.last_stored = 39;
}

TEST(conf_rollback_past_compacted_entry)
{
    for (int with = 1; with >= 0; with--) {
        zc_io_guard_t *g =
            setup(with ? ZC_IO_GUARD_ALL : ZC_IO_GUARD_ALL & ~ZC_IO_GUARD_CONF_ROLLBACK, NULL, NULL);
        set_log(31, 40, 1);
        make_conf(&raft.configuration, 3, RAFT_VOTER);
        raft.configuration_index = 5;
        deliver_ae(2, 1, 40, 0); /* the guard copies the committed configuration */
        raft_configuration_close(&raft.configuration);
        make_conf(&raft.configuration, 4, RAFT_SPARE);
        raft.configuration_uncommitted_index = 40;
        rolled_back_by_raft = false;
        io.start(&io, 100, NULL, fake_raft_truncating);
        deliver_ae(3, 2, 39, 0);
        zc_io_guard_stats_t st;
        zc_io_guard_stats(g, &st);
        if (with) {
            CHECK(!rolled_back_by_raft);
            CHECK_EQ_U64(raft.configuration.n, 3);
            CHECK_EQ_U64(raft.configuration_uncommitted_index, 0);
            CHECK_EQ_U64(st.conf_rollbacks, 1);
        } else {
            CHECK(rolled_back_by_raft); /* raft 0.15 dereferences NULL here */
        }
        raft_configuration_close(&raft.configuration);
        zc_io_guard_destroy(&g);
    }
}

/* 7a: when the pending entry survives the request, its index goes back. */
TEST(conf_pending_survives)
{
    zc_io_guard_t *g = setup(ZC_IO_GUARD_ALL, NULL, NULL);
    set_log(31, 40, 1);
    make_conf(&raft.configuration, 3, RAFT_VOTER);
    raft.configuration_index = 5;
    deliver_ae(2, 1, 40, 0);
    raft_configuration_close(&raft.configuration);
    make_conf(&raft.configuration, 4, RAFT_SPARE);
    raft.configuration_uncommitted_index = 40;
    deliver_ae(2, 1, 40, 0);
    CHECK_EQ_U64(raft.configuration.n, 4);
    CHECK_EQ_U64(raft.configuration_uncommitted_index, 40);
    raft_configuration_close(&raft.configuration);
    zc_io_guard_destroy(&g);
}

/* 7b: a snapshot raft takes while a change is pending gets the committed
 * configuration it is labelled with. */
TEST(snapshot_stores_committed_conf)
{
    for (int with = 1; with >= 0; with--) {
        zc_io_guard_t *g =
            setup(with ? ZC_IO_GUARD_ALL : ZC_IO_GUARD_ALL & ~ZC_IO_GUARD_SNAPSHOT_CONF, NULL, NULL);
        make_conf(&raft.configuration, 3, RAFT_VOTER);
        raft.configuration_index = 5;
        deliver_ae(2, 1, 40, 0);
        raft_configuration_close(&raft.configuration);
        make_conf(&raft.configuration, 4, RAFT_SPARE);
        raft.configuration_uncommitted_index = 40;
        struct raft_snapshot *sn = &raft.snapshot.pending;
        sn->index = 30;
        make_conf(&sn->configuration, 4, RAFT_SPARE); /* takeSnapshot's copy */
        sn->configuration_index = 5;
        struct raft_io_snapshot_put put;
        CHECK(io.snapshot_put(&io, 8, &put, sn, NULL) == 0);
        CHECK_EQ_U64(sn->configuration.n, with ? 3 : 4);
        raft_configuration_close(&sn->configuration);
        raft_configuration_close(&raft.configuration);
        zc_io_guard_destroy(&g);
    }
}

/* 7c: what raft sees of its own role while answering a vote request. */
static int role_seen = -1;
static void fake_raft_voting(struct raft_io *i, struct raft_message *m)
{
    (void)i, (void)m;
    role_seen = raft.configuration.servers[3].role;
}

/* 7c: a spare that knows a leader refuses votes, and raft 0.15 refuses
 * any vote of a non-voter; once it has not heard from its leader for an
 * election timeout the guard makes it forget it, and it answers as a
 * voter (the role lent for the request only). */
TEST(nonvoter_forgets_silent_leader)
{
    for (int with = 1; with >= 0; with--) {
        zc_io_guard_t *g =
            setup(with ? ZC_IO_GUARD_ALL : ZC_IO_GUARD_ALL & ~ZC_IO_GUARD_STALE_LEADER, NULL, NULL);
        io.time = fake_time;
        raft.io = &io;
        raft.id = 4;
        make_conf(&raft.configuration, 4, RAFT_SPARE);
        raft.follower_state.current_leader.id = 1;
        raft.election_timeout = 1000;
        raft.election_timer_start = 100;
        struct raft_message m = {.type = RAFT_IO_REQUEST_VOTE, .server_id = 2,
                                 .server_address = "2"};
        fake_now = 600; /* heard from it 500 ms ago: still its leader */
        fake.recv(&io, &m);
        CHECK_EQ_U64(raft.follower_state.current_leader.id, 1);
        fake_now = 1200;
        io.start(&io, 100, NULL, fake_raft_voting);
        fake.recv(&io, &m);
        CHECK_EQ_U64(raft.follower_state.current_leader.id, with ? 0 : 1);
        CHECK_EQ_U64(role_seen, with ? RAFT_VOTER : RAFT_SPARE);
        CHECK_EQ_U64(raft.configuration.servers[3].role, RAFT_SPARE); /* put back */
        if (with) { /* a voter: its own election timer does it */
            raft.follower_state.current_leader.id = 1;
            raft.configuration.servers[3].role = RAFT_VOTER;
            fake.recv(&io, &m);
            CHECK_EQ_U64(raft.follower_state.current_leader.id, 1);
        }
        raft_configuration_close(&raft.configuration);
        zc_io_guard_destroy(&g);
    }
}

/* 7d: a follower appending a configuration entry switches to it at once,
 * not when (and if still a follower) the write completes. */
TEST(follower_adopts_conf_on_receipt)
{
    for (int with = 1; with >= 0; with--) {
        zc_io_guard_t *g =
            setup(with ? ZC_IO_GUARD_ALL : ZC_IO_GUARD_ALL & ~ZC_IO_GUARD_CONF_ON_RECEIPT, NULL, NULL);
        make_conf(&raft.configuration, 3, RAFT_VOTER);
        raft.configuration_index = 1;
        set_log(1, 40, 1); /* raft appended entries 39, 40 to its log */
        struct raft_configuration c;
        make_conf(&c, 4, RAFT_SPARE);
        struct raft_message m = {.type = RAFT_IO_APPEND_ENTRIES, .server_id = 2,
                                 .server_address = "2"};
        m.append_entries.term = 1;
        m.append_entries.prev_log_index = 38;
        m.append_entries.prev_log_term = 1;
        m.append_entries.n_entries = 2;
        m.append_entries.entries = calloc(2, sizeof(struct raft_entry));
        m.append_entries.entries[0].type = RAFT_COMMAND;
        m.append_entries.entries[0].term = 1;
        m.append_entries.entries[1].type = RAFT_CHANGE;
        m.append_entries.entries[1].term = 1;
        CHECK(raft_configuration_encode(&c, &m.append_entries.entries[1].buf) == 0);
        raft_configuration_close(&c);
        void *buf = m.append_entries.entries[1].buf.base;
        m.append_entries.entries[0].batch = malloc(8);
        fake.write = true;
        fake.recv(&io, &m);
        CHECK_EQ_U64(raft.configuration.n, with ? 4 : 3);
        CHECK_EQ_U64(raft.configuration_uncommitted_index, with ? 40 : 0);
        raft_free(buf);
        raft_configuration_close(&raft.configuration);
        zc_io_guard_destroy(&g);
    }
}

/* 11: the leader is sending replica 2 snapshot 300 when the transport
 * reports replica 2's new process: with the rule the leader goes back to
 * probing it (the next heartbeat's rejection makes raft send the snapshot
 * again); without it, it stays in snapshot mode.  Replica 3, in pipeline
 * mode, and a restart seen while a follower are left alone. */
TEST(restarted_peer_gets_the_snapshot_again)
{
    for (int with = 1; with >= 0; with--) {
        zc_io_guard_t *g = setup(
            with ? ZC_IO_GUARD_ALL : ZC_IO_GUARD_ALL & ~ZC_IO_GUARD_SNAPSHOT_RESTART, NULL, NULL);
        raft.id = 1;
        make_conf(&raft.configuration, 3, RAFT_VOTER);
        struct raft_progress progress[3] = {{0}};
        progress[1].state = 2; /* PROGRESS__SNAPSHOT */
        progress[1].snapshot_index = 300;
        progress[2].state = 1; /* PROGRESS__PIPELINE */
        raft.leader_state.progress = progress;
        zc_io_guard_peer_restarted(g, 2); /* a follower: nothing to give up */
        CHECK_EQ_U64(progress[1].state, 2);
        raft.state = RAFT_LEADER;
        CHECK_EQ_U64(zc_io_guard_installs(g), 1);
        zc_io_guard_peer_restarted(g, 3);
        CHECK_EQ_U64(progress[2].state, 1);
        zc_io_guard_peer_restarted(g, 2);
        CHECK_EQ_U64(progress[1].state, with ? 0 : 2);
        CHECK_EQ_U64(progress[1].snapshot_index, with ? 0 : 300);
        CHECK_EQ_U64(zc_io_guard_installs(g), with ? 0 : 1);
        zc_io_guard_stats_t st;
        zc_io_guard_stats(g, &st);
        CHECK_EQ_U64(st.snapshots_resent, with ? 1 : 0);
        raft.state = RAFT_FOLLOWER;
        raft.leader_state.progress = NULL;
        raft_configuration_close(&raft.configuration);
        zc_io_guard_destroy(&g);
    }
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
    RUN(later_term_answers_go_through);
    RUN(conf_rollback_past_compacted_entry);
    RUN(conf_pending_survives);
    RUN(snapshot_stores_committed_conf);
    RUN(nonvoter_forgets_silent_leader);
    RUN(follower_adopts_conf_on_receipt);
    RUN(restarted_peer_gets_the_snapshot_again);
    return unit_report();
}
