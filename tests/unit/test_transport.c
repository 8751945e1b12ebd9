/* test_transport: replication/transport.c, the raft relay.
 *
 * Pure framing: zc_raft_msg_size knows raft 0.15's message sizes (every
 * type; messages cut anywhere are "need more", never a wrong size) and
 * refuses what raft would over-allocate or over-read: a huge header length,
 * a header shorter than its type, entry/snapshot lengths beyond the bound.
 * The relay header round-trips and rejects malformed ones.
 *
 * Stream bookkeeping, two relays on one loop (insecure: the CURVE side is
 * tests/integration/test_raft_relay.py): a raft message written in pieces
 * on a connected stream arrives whole on the peer's accepted stream, with
 * the sender's id and address; after the sender's "restart" (a new relay,
 * new incarnation, same id) the stream from its previous process is closed
 * at once (EOF) and the next message opens a fresh stream that starts on a
 * message boundary. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/zsec.h"
#include "replication/transport.h"
#include "unit.h"

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

/* A raft message: preamble + header (hl bytes, zero but for the fields
 * set by the caller). */
static size_t msg(uint8_t *out, uint64_t type, uint64_t hl)
{
    memset(out, 0, 16 + hl);
    put64(out, type);
    put64(out + 8, hl);
    return 16 + hl;
}

#define RELAY_MAX (1u << 20)

TEST(sizes_of_every_type)
{
    uint8_t b[4096];
    uint64_t total = 0;
    /* RequestVote V2 (40) and V1 (32), results, TimeoutNow: no payload. */
    uint64_t types[][2] = {{3, 40}, {3, 32}, {4, 24}, {4, 16}, {2, 24}, {6, 24}};
    for (unsigned i = 0; i < sizeof types / sizeof types[0]; i++) {
        size_t n = msg(b, types[i][0], types[i][1]);
        CHECK(zc_raft_msg_size(b, n, RELAY_MAX, &total) == 1);
        CHECK_EQ_U64(total, n);
        for (size_t k = 0; k < n; k++)
            CHECK(zc_raft_msg_size(b, k, RELAY_MAX, &total) == 0);
    }
    /* AppendEntries, 2 entries of 5 and 300 bytes: header 48 + 32. */
    size_t n = msg(b, 1, 48 + 32);
    put64(b + 16 + 32, 2);
    b[16 + 40 + 8] = RAFT_COMMAND;
    b[16 + 40 + 12] = 5;
    b[16 + 56 + 8] = RAFT_BARRIER;
    b[16 + 56 + 12] = 300 & 0xff;
    b[16 + 56 + 13] = 300 >> 8;
    CHECK(zc_raft_msg_size(b, n, RELAY_MAX, &total) == 1);
    CHECK_EQ_U64(total, n + 305);
    for (size_t k = 0; k < n; k++)
        CHECK(zc_raft_msg_size(b, k, RELAY_MAX, &total) == 0);
    /* A heartbeat: no entries. */
    n = msg(b, 1, 48);
    CHECK(zc_raft_msg_size(b, n, RELAY_MAX, &total) == 1);
    CHECK_EQ_U64(total, 64);
    /* InstallSnapshot: conf of 24 bytes, data 1000. */
    n = msg(b, 5, 56 + 24);
    put64(b + 16 + 32, 24);
    put64(b + 16 + 40 + 24, 1000);
    CHECK(zc_raft_msg_size(b, n, RELAY_MAX, &total) == 1);
    CHECK_EQ_U64(total, n + 1000);
}

TEST(refuses_what_raft_would_overallocate_or_overread)
{
    uint8_t b[4096];
    uint64_t total = 0;
    size_t n = msg(b, 3, 40);
    put64(b + 8, (uint64_t)1 << 40); /* a 1 TiB header */
    CHECK(zc_raft_msg_size(b, 16, RELAY_MAX, &total) == -1);
    n = msg(b, 3, 8); /* shorter than a RequestVote */
    CHECK(zc_raft_msg_size(b, n, RELAY_MAX, &total) == -1);
    n = msg(b, 4, 4000);
    CHECK(zc_raft_msg_size(b, 16, RELAY_MAX, &total) == -1);
    CHECK(zc_raft_msg_size((const uint8_t *)"\x09\0\0\0\0\0\0\0", 8, RELAY_MAX, &total) == -1);
    n = msg(b, 0, 24); /* type 0 */
    CHECK(zc_raft_msg_size(b, n, RELAY_MAX, &total) == -1);
    n = msg(b, 1, 16); /* AppendEntries header too short for its count */
    CHECK(zc_raft_msg_size(b, n, RELAY_MAX, &total) == -1);
    n = msg(b, 1, 48);
    put64(b + 16 + 32, 1000); /* 1000 entries announced, none described */
    CHECK(zc_raft_msg_size(b, n, RELAY_MAX, &total) == -1);
    n = msg(b, 1, 64);
    put64(b + 16 + 32, 1);
    b[16 + 40 + 8] = 9; /* not an entry type */
    CHECK(zc_raft_msg_size(b, n, RELAY_MAX, &total) == -1);
    b[16 + 40 + 8] = RAFT_COMMAND;
    b[16 + 40 + 15] = 0xff; /* a 4 GiB entry */
    CHECK(zc_raft_msg_size(b, n, RELAY_MAX, &total) == -1);
    CHECK(zc_raft_msg_size(b, n, (uint64_t)8 << 30, &total) == 1); /* within a larger bound */
    n = msg(b, 5, 56);
    put64(b + 16 + 40, (uint64_t)1 << 40); /* a 1 TiB snapshot */
    CHECK(zc_raft_msg_size(b, n, RELAY_MAX, &total) == -1);
    put64(b + 16 + 32, 4096); /* conf longer than the header */
    CHECK(zc_raft_msg_size(b, n, RELAY_MAX, &total) == -1);
}

TEST(relay_header_roundtrip)
{
    zc_relay_hdr_t h = {.kind = ZC_RELAY_DATA, .stream = 7, .sender = 3, .incarnation = 99}, g;
    snprintf(h.address, sizeof h.address, "10.0.0.3:9013");
    uint8_t b[400];
    size_t n = zc_relay_hdr_encode(&h, b, sizeof b);
    CHECK_EQ_U64(n, ZC_RELAY_HDR_FIXED + 13);
    CHECK(zc_relay_hdr_decode(b, n, &g) == 0);
    CHECK_EQ_U64(g.stream, 7);
    CHECK_EQ_U64(g.sender, 3);
    CHECK_EQ_U64(g.incarnation, 99);
    CHECK_STR(g.address, "10.0.0.3:9013");
    CHECK(zc_relay_hdr_decode(b, n - 1, &g) == -1); /* truncated */
    b[0] = 2;
    CHECK(zc_relay_hdr_decode(b, n, &g) == -1); /* another version */
    b[0] = 1;
    b[1] = 'X';
    CHECK(zc_relay_hdr_decode(b, n, &g) == -1); /* unknown kind */
    b[1] = ZC_RELAY_DATA;
    put64(b + 10, 0);
    CHECK(zc_relay_hdr_decode(b, n, &g) == -1); /* raft id 0 */
    CHECK(zc_relay_hdr_encode(&h, b, 20) == 0);
}

/* --- two relays on one loop --- */

static uv_loop_t loop;

/* One accepted stream as the fake raft sees it. */
typedef struct {
    uv_stream_t *s;  /* raft's end */
    uint64_t id;     /* sender id */
    char addr[64];   /* sender address */
    uint8_t got[4096]; /* bytes read */
    size_t n;        /* count */
    bool eof;        /* EOF seen */
} acc_t;

static acc_t acc[4];
static unsigned n_acc;
static uv_stream_t *conn; /* the connected stream */
static int conn_status = -1;

static void acc_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    acc_t *a = h->data;
    (void)hint;
    *buf = uv_buf_init((char *)a->got + a->n, (unsigned)(sizeof a->got - a->n));
}

static void acc_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    acc_t *a = s->data;
    (void)buf;
    if (nread < 0) {
        a->eof = true;
        uv_read_stop(s);
    } else {
        a->n += (size_t)nread;
    }
}

static void on_accept(struct raft_uv_transport *t, raft_id id, const char *address,
                      uv_stream_t *s)
{
    (void)t;
    acc_t *a = &acc[n_acc++];
    a->s = s;
    a->id = id;
    snprintf(a->addr, sizeof a->addr, "%s", address);
    s->data = a;
    uv_read_start(s, acc_alloc, acc_read);
}

static void on_connect(struct raft_uv_connect *req, uv_stream_t *s, int status)
{
    (void)req;
    conn = s;
    conn_status = status;
}

static void on_free(uv_handle_t *h) { raft_free(h); }

static int closed;
static void on_closed(struct raft_uv_transport *t)
{
    (void)t;
    closed++;
}

/* Runs the loop until *flag or 5 s. */
static bool run_until(bool (*cond)(void))
{
    uint64_t end = uv_hrtime() + 5000000000ull;
    while (!cond() && uv_hrtime() < end)
        uv_run(&loop, UV_RUN_NOWAIT), usleep(1000);
    return cond();
}

static bool connected(void) { return conn_status != -1; }
static bool one_accepted_whole(void) { return n_acc == 1 && acc[0].n == 56; }
static bool restarted(void) { return acc[0].eof && n_acc == 2 && acc[1].n == 56; }
static bool both_closed(void) { return closed == 3; }

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

static void write_vote(uv_stream_t *s, uint64_t term)
{
    static uint8_t b[2][56];
    static uv_write_t w[2];
    static int k;
    uint8_t *m = b[k & 1];
    msg(m, 3, 40);
    put64(m + 16, term);
    /* in two pieces: the relay must cut at the message boundary itself */
    uv_buf_t bufs[2] = {uv_buf_init((char *)m, 10), uv_buf_init((char *)m + 10, 46)};
    CHECK(uv_write(&w[k++ & 1], s, bufs, 2, NULL) == 0);
}

static uint64_t restarted_ids[4]; /* peer_restarted's reports, in order */
static unsigned n_restarted;      /* entries in restarted_ids */
static void on_peer_restarted(void *arg, uint64_t id)
{
    (void)arg;
    restarted_ids[n_restarted++ % 4] = id;
}

TEST(streams_across_a_sender_restart)
{
    uv_loop_init(&loop);
    zc_transport_config_t cfg = {.loop = &loop,
                                 .zctx = zc_sec_context(),
                                 .sec = NULL,
                                 .max_msg = RELAY_MAX,
                                 .peer_restarted = on_peer_restarted};
    struct raft_uv_transport a, b, a2;
    char aaddr[32], baddr[32];
    snprintf(aaddr, sizeof aaddr, "127.0.0.1:%d", free_port());
    snprintf(baddr, sizeof baddr, "127.0.0.1:%d", free_port());
    CHECK(zc_transport_init(&a, &cfg) == 0 && zc_transport_init(&b, &cfg) == 0);
    CHECK(a.init(&a, 1, aaddr) == 0 && b.init(&b, 2, baddr) == 0);
    CHECK(b.listen(&b, on_accept) == 0);
    struct raft_uv_connect req;
    CHECK(a.connect(&a, &req, 2, baddr, on_connect) == 0);
    CHECK(run_until(connected));
    CHECK(conn_status == 0);
    write_vote(conn, 5);
    CHECK(run_until(one_accepted_whole));
    CHECK_EQ_U64(acc[0].id, 1);
    CHECK_STR(acc[0].addr, aaddr);
    CHECK(acc[0].got[0] == 3 && acc[0].got[16] == 5);
    CHECK_EQ_U64(n_restarted, 0); /* a first process is no restart */

    /* The sender's process "restarts": a new relay with the same id. */
    a.close(&a, on_closed); /* no CLOSE frame: as if the process died */
    uv_close((uv_handle_t *)conn, on_free);
    conn_status = -1;
    CHECK(zc_transport_init(&a2, &cfg) == 0);
    CHECK(a2.init(&a2, 1, aaddr) == 0);
    CHECK(a2.connect(&a2, &req, 2, baddr, on_connect) == 0);
    CHECK(run_until(connected));
    write_vote(conn, 6);
    CHECK(run_until(restarted));
    CHECK(acc[1].got[0] == 3 && acc[1].got[16] == 6); /* starts on a boundary */
    zc_transport_stats_t st;
    zc_transport_stats(&b, &st);
    CHECK_EQ_U64(st.restarts, 1);
    CHECK_EQ_U64(st.malformed, 0);
    CHECK_EQ_U64(n_restarted, 1); /* the node told (the io guard's rule 11) */
    CHECK_EQ_U64(restarted_ids[0], 1);

    uv_close((uv_handle_t *)conn, on_free);
    for (unsigned i = 0; i < n_acc; i++)
        uv_close((uv_handle_t *)acc[i].s, on_free);
    a2.close(&a2, on_closed);
    b.close(&b, on_closed);
    CHECK(run_until(both_closed));
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);
}

int main(void)
{
    RUN(sizes_of_every_type);
    RUN(refuses_what_raft_would_overallocate_or_overread);
    RUN(relay_header_roundtrip);
    RUN(streams_across_a_sender_restart);
    return unit_report();
}
