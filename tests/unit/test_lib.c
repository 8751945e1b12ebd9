/* test_lib: lib/buf readers and writers, lib/json, lib/map, lib/dq, lib/stallwatch, lib/wal,
 * lib/zmqx's watcher. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/dq.h"
#include "lib/json.h"
#include "lib/list.h"
#include "lib/map.h"
#include "lib/stallwatch.h"
#include "lib/wal.h"
#include "lib/zmqx.h"
#include "unit.h"

TEST(buf_roundtrip_big_endian)
{
    zc_wbuf_t w;
    zc_wbuf_init(&w);
    zc_wbuf_u8(&w, 0x01);
    zc_wbuf_u16(&w, 0x0203);
    zc_wbuf_u32(&w, 0x04050607);
    zc_wbuf_u64(&w, 0x08090a0b0c0d0e0full);
    zc_wbuf_str(&w, "hi");
    zc_wbuf_lstr(&w, "xyz", 3);
    const uint8_t want[] = {1,  2,  3, 4,   5,   6, 7, 8, 9, 10,  11,  12, 13,
                            14, 15, 2, 'h', 'i', 0, 0, 0, 3, 'x', 'y', 'z'};
    CHECK_EQ_U64(w.len, sizeof want);
    CHECK(memcmp(w.data, want, sizeof want) == 0);
    zc_rbuf_t r;
    zc_rbuf_init(&r, w.data, w.len);
    CHECK_EQ_U64(zc_rbuf_u8(&r), 1);
    CHECK_EQ_U64(zc_rbuf_u16(&r), 0x0203);
    CHECK_EQ_U64(zc_rbuf_u32(&r), 0x04050607);
    CHECK_EQ_U64(zc_rbuf_u64(&r), 0x08090a0b0c0d0e0full);
    char s[8];
    zc_rbuf_str(&r, s, sizeof s);
    CHECK_STR(s, "hi");
    size_t n;
    const uint8_t *p = zc_rbuf_lstr(&r, &n, 10);
    CHECK(p && n == 3 && memcmp(p, "xyz", 3) == 0);
    CHECK(zc_rbuf_done(&r));
    zc_wbuf_clear(&w);
}

TEST(buf_errors_are_sticky)
{
    const uint8_t b[] = {0, 5, 'a'};
    zc_rbuf_t r;
    zc_rbuf_init(&r, b, sizeof b);
    CHECK_EQ_U64(zc_rbuf_u8(&r), 0);
    char s[8];
    zc_rbuf_str(&r, s, sizeof s); /* claims 5 bytes, 1 left */
    CHECK(r.err);
    CHECK_STR(s, "");
    CHECK_EQ_U64(zc_rbuf_u32(&r), 0);
    CHECK(!zc_rbuf_done(&r));
    /* A string that does not fit the destination is an error too. */
    const uint8_t c[] = {4, 'a', 'b', 'c', 'd'};
    zc_rbuf_init(&r, c, sizeof c);
    zc_rbuf_str(&r, s, 4);
    CHECK(r.err);
    /* lstr over its max. */
    const uint8_t d[] = {0, 0, 1, 0};
    zc_rbuf_init(&r, d, sizeof d);
    size_t n;
    CHECK(zc_rbuf_lstr(&r, &n, 10) == NULL && r.err);
}

TEST(json_writer)
{
    zc_json_t j;
    zc_json_init(&j);
    zc_json_obj(&j);
    zc_json_kbool(&j, "ok", true);
    zc_json_kstr(&j, "detail", "say \"hi\"\n\x01");
    zc_json_key(&j, "items");
    zc_json_arr(&j);
    zc_json_obj(&j);
    zc_json_kstr(&j, "product", "apple");
    zc_json_ku64(&j, "qty", 3);
    zc_json_end(&j);
    zc_json_u64(&j, 7);
    zc_json_end(&j);
    zc_json_key(&j, "empty");
    zc_json_arr(&j);
    zc_json_end(&j);
    zc_json_end(&j);
    CHECK_STR(zc_json_str(&j),
              "{\"ok\":true,\"detail\":\"say \\\"hi\\\"\\n\\u0001\",\"items\":[{\"product\":"
              "\"apple\",\"qty\":3},7],\"empty\":[]}");
    zc_json_clear(&j);
}

/* Random puts and deletes checked against a plain array model. */
/* Maps that own malloc'd values free them with one shared callback (the
 * ASan build's leak check fails this test if any value is left). */
TEST(map_free_value_frees_every_value)
{
    zc_map_t *m = zc_map_new();
    for (int i = 0; i < 100; i++) {
        int *v = malloc(sizeof *v);
        *v = i;
        CHECK(zc_map_put(m, &i, sizeof i, v) == 0);
    }
    CHECK_EQ_U64(zc_map_size(m), 100);
    zc_map_each(m, zc_map_free_value, NULL);
    zc_map_destroy(&m);
    CHECK(m == NULL);
}

TEST(map_matches_model)
{
    enum { N = 512 };
    static int model[N]; /* 0 = absent, else value */
    static int vals[N];
    zc_map_t *m = zc_map_new();
    unsigned seed = 3;
    memset(model, 0, sizeof model);
    for (int step = 0; step < 200000; step++) {
        seed = seed * 1103515245u + 12345u;
        unsigned k = (seed >> 8) % N;
        uint64_t key = (uint64_t)k * 0x9E3779B97F4A7C15ull; /* spread, collide in low bits */
        if ((seed >> 20) % 3 != 0) {
            vals[k] = step + 1;
            CHECK(zc_map_put_u64(m, key, &vals[k]) == 0);
            model[k] = step + 1;
        } else {
            void *v = zc_map_del_u64(m, key);
            CHECK((v != NULL) == (model[k] != 0));
            model[k] = 0;
        }
        if (step % 1000 == 0) {
            size_t live = 0;
            for (unsigned i = 0; i < N; i++) {
                int *v = zc_map_get_u64(m, (uint64_t)i * 0x9E3779B97F4A7C15ull);
                CHECK((v != NULL) == (model[i] != 0));
                if (v) {
                    CHECK_EQ_U64(*v, model[i]);
                    live++;
                }
            }
            CHECK_EQ_U64(zc_map_size(m), live);
        }
    }
    CHECK(zc_map_put(m, "x", ZC_MAP_KEY_MAX + 1, vals) == -1);
    zc_map_destroy(&m);
    CHECK(m == NULL);
}

/* The deadline queue against a model: random sets (insert or move),
 * removes and pops; every pop is the earliest due entry, and the heap's
 * back-pointers stay right (a moved or removed entry is the one asked). */
typedef struct {
    zc_dq_entry_t e; /* the queue's entry */
    int id;          /* index in the model */
} dq_item_t;

TEST(deadline_queue_matches_model)
{
    enum { N = 300 };
    static dq_item_t items[N];
    static uint64_t model[N]; /* deadline + 1, 0 = not queued */
    zc_dq_t q;
    zc_dq_init(&q);
    CHECK(zc_dq_peek(&q) == NULL);
    CHECK(zc_dq_pop_due(&q, UINT64_MAX) == NULL);
    for (int i = 0; i < N; i++) {
        zc_dq_entry_init(&items[i].e);
        items[i].id = i;
        model[i] = 0;
    }
    unsigned seed = 7;
    uint64_t now = 0;
    for (int step = 0; step < 100000; step++) {
        seed = seed * 1103515245u + 12345u;
        unsigned k = (seed >> 8) % N, what = (seed >> 20) % 8;
        if (what < 4) {
            uint64_t d = now + (seed >> 4) % 1000;
            CHECK(zc_dq_set(&q, &items[k].e, d) == 0);
            model[k] = d + 1;
        } else if (what == 4) {
            zc_dq_remove(&q, &items[k].e);
            model[k] = 0;
        } else {
            now += (seed >> 12) % 40;
            zc_dq_entry_t *e;
            while ((e = zc_dq_pop_due(&q, now)) != NULL) {
                dq_item_t *it = ZC_CONTAINER(e, dq_item_t, e);
                CHECK(model[it->id] != 0);
                CHECK(model[it->id] - 1 <= now);
                CHECK(!zc_dq_queued(e));
                /* No queued entry in the model is earlier. */
                for (int i = 0; i < N; i++)
                    CHECK(model[i] == 0 || i == it->id || model[i] >= model[it->id]);
                model[it->id] = 0;
            }
        }
        size_t queued = 0;
        for (int i = 0; i < N; i++) {
            queued += model[i] != 0;
            CHECK(zc_dq_queued(&items[i].e) == (model[i] != 0));
        }
        CHECK_EQ_U64(zc_dq_size(&q), queued);
    }
    zc_dq_clear(&q);
    CHECK_EQ_U64(zc_dq_size(&q), 0);
    for (int i = 0; i < N; i++)
        CHECK(!zc_dq_queued(&items[i].e));
    CHECK(zc_dq_set(&q, &items[0].e, 5) == 0);
    CHECK(zc_dq_pop_due(&q, 4) == NULL);
    CHECK(zc_dq_pop_due(&q, 5) == &items[0].e);
    zc_dq_clear(&q);
}

/* A callback that blocks the loop for 150 ms shows up as a stall of about
 * that length (at least 150 ms minus the 5 ms period). */
typedef struct {
    zc_stallwatch_t *w;           /* the watch */
    zc_stallwatch_stats_t before; /* read just before the block */
    zc_stallwatch_stats_t after;  /* read at the end */
} stall_test_t;

static void block_cb(uv_timer_t *t)
{
    stall_test_t *st = t->data;
    zc_stallwatch_stats(st->w, &st->before);
    usleep(150 * 1000);
}

static void end_cb(uv_timer_t *t)
{
    stall_test_t *st = t->data;
    zc_stallwatch_stats(st->w, &st->after);
    zc_stallwatch_destroy(&st->w);
}

TEST(stallwatch_sees_a_blocking_callback)
{
    uv_loop_t loop;
    uv_timer_t block, end;
    stall_test_t st = {0};
    CHECK(uv_loop_init(&loop) == 0);
    st.w = zc_stallwatch_new(&loop, 5);
    CHECK(st.w != NULL);
    uv_timer_init(&loop, &block);
    uv_timer_init(&loop, &end);
    block.data = end.data = &st;
    uv_timer_start(&block, block_cb, 50, 0);
    uv_timer_start(&end, end_cb, 300, 0);
    uv_run(&loop, UV_RUN_DEFAULT); /* ends once block and end have fired */
    CHECK(st.w == NULL);
    CHECK(st.before.ticks > 0);
    CHECK(st.after.ticks > st.before.ticks);
    CHECK(st.after.max_us >= 145000);
    CHECK(st.after.recent_max_us >= 145000);
    CHECK(st.after.slow >= 1);
    CHECK(st.after.slow > st.before.slow);
    uv_close((uv_handle_t *)&block, NULL);
    uv_close((uv_handle_t *)&end, NULL);
    uv_run(&loop, UV_RUN_DEFAULT); /* the closes, the watch's included */
    CHECK(uv_loop_close(&loop) == 0);
}

/* The flat-object reader: what it takes, what it refuses, and why. */
TEST(json_reader_flat_objects)
{
    zc_json_member_t m[4];
    size_t n;
    char why[128];
    const char *ok = " {\"product\": \"ap\\\"p\\u00e9\", \"qty\": -12, \"x\": true, \"y\": null} ";
    CHECK(zc_json_read_flat(ok, strlen(ok), m, 4, &n, why, sizeof why) == 0);
    CHECK_EQ_U64(n, 4);
    const zc_json_member_t *p = zc_json_member(m, n, "product");
    CHECK(p && p->kind == ZC_JSON_STRING);
    CHECK_STR(p->str, "ap\"p\xc3\xa9");
    CHECK(zc_json_member(m, n, "qty")->num == -12);
    CHECK(zc_json_member(m, n, "x")->kind == ZC_JSON_BOOL && zc_json_member(m, n, "x")->num == 1);
    CHECK(zc_json_member(m, n, "y")->kind == ZC_JSON_NULL);
    CHECK(zc_json_member(m, n, "z") == NULL);
    CHECK(zc_json_read_flat("{}", 2, m, 4, &n, why, sizeof why) == 0 && n == 0);
    static const struct {
        const char *text;
        const char *why;
    } bad[] = {
        {"", "expected a JSON object"},
        {"[1]", "expected a JSON object"},
        {"{\"a\": {\"b\": 1}}", "nested values are not accepted"},
        {"{\"a\": 1, \"a\": 2}", "duplicate member"},
        {"{\"a\": 1.5}", "only integers are accepted"},
        {"{\"a\": 01}", "expected a value"},
        {"{\"a\": 99999999999999999999}", "integer out of range"},
        {"{\"a\": 1} x", "text after the object"},
        {"{\"a\" 1}", "expected ':'"},
        {"{\"a\": \"\\u0000\"}", "\\u0000 or a surrogate in a string"},
        {"{\"a\": \"x", "unterminated string"},
        {"{\"a\": 1, \"b\": 2, \"c\": 3, \"d\": 4, \"e\": 5}", "too many members"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = 0;
        CHECK(zc_json_read_flat(bad[i].text, strlen(bad[i].text), m, 4, &n, why, sizeof why) == -1);
        if (strncmp(why, bad[i].why, strlen(bad[i].why)) != 0)
            fprintf(stderr, "%s: got '%s', want '%s'\n", bad[i].text, why, bad[i].why);
        CHECK(strncmp(why, bad[i].why, strlen(bad[i].why)) == 0);
        CHECK(strstr(why, "at offset") != NULL);
    }
}

/* -- lib/wal -- */

typedef struct {
    uint64_t tags[16];  /* tags seen, in order */
    char text[16][32];  /* payloads seen (as strings) */
    unsigned n;         /* records seen */
} wal_seen_t;

static int wal_visit(uint64_t tag, const uint8_t *p, size_t len, void *arg)
{
    wal_seen_t *w = arg;
    if (w->n < 16) {
        w->tags[w->n] = tag;
        snprintf(w->text[w->n], sizeof w->text[w->n], "%.*s", (int)len, (const char *)p);
    }
    w->n++;
    return 0;
}

static void wal_read(const char *path, wal_seen_t *seen)
{
    char err[256];
    memset(seen, 0, sizeof *seen);
    zc_wal_t *w = zc_wal_open(path, 0, true, err, sizeof err);
    CHECK(w != NULL);
    if (w) {
        CHECK(zc_wal_each(w, wal_visit, seen) == 0);
        zc_wal_close(&w);
    }
}

/* The chain of records from offset 0: a rewind supersedes the old ones
 * even where they are longer than the new; a torn record ends the chain;
 * a record that does not fit is refused; read-only opens create nothing. */
TEST(wal_chain_rewind_torn_and_full)
{
    char dir[] = "/tmp/zcart-test-wal.XXXXXX", path[128], err[256];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/log", dir);
    wal_seen_t seen;
    wal_read(path, &seen); /* missing: an empty log, and still missing */
    CHECK_EQ_U64(seen.n, 0);
    CHECK(access(path, F_OK) != 0);

    zc_wal_t *w = zc_wal_open(path, 4096, false, err, sizeof err);
    CHECK(w != NULL);
    if (w == NULL)
        return;
    CHECK_EQ_U64(zc_wal_size(w), 4096);
    CHECK(zc_wal_append(w, 7, "first record", 12) == 0);
    CHECK(zc_wal_append(w, 7, "second record", 13) == 0);
    CHECK(zc_wal_append(w, 8, "third record", 12) == 0);
    CHECK_EQ_U64(zc_wal_used(w), 3 * ZC_WAL_HEADER + 37);
    wal_read(path, &seen);
    CHECK_EQ_U64(seen.n, 3);
    CHECK_STR(seen.text[1], "second record");
    CHECK_EQ_U64(seen.tags[2], 8);

    zc_wal_rewind(w); /* the three are superseded */
    CHECK(zc_wal_append(w, 9, "new", 3) == 0);
    wal_read(path, &seen);
    CHECK_EQ_U64(seen.n, 1); /* the old second record after it is not its successor */
    CHECK_STR(seen.text[0], "new");
    CHECK_EQ_U64(seen.tags[0], 9);
    CHECK(zc_wal_append(w, 9, "newer", 5) == 0);
    CHECK(zc_wal_append(w, 9, "newest", 6) == 0);
    zc_wal_close(&w);

    /* Reopened, appends go after the chain, seqs go on. */
    w = zc_wal_open(path, 4096, false, err, sizeof err);
    CHECK(w != NULL && zc_wal_used(w) == 3 * ZC_WAL_HEADER + 14);
    CHECK(w && zc_wal_append(w, 10, "after reopen", 12) == 0);
    char big[4096];
    memset(big, 'x', sizeof big);
    CHECK(w && zc_wal_append(w, 10, big, 4096 - 5 * ZC_WAL_HEADER - 26 + 1) == 1); /* one too many */
    CHECK(w && zc_wal_append(w, 10, big, 4096 - 5 * ZC_WAL_HEADER - 26) == 0);      /* exactly fits */
    zc_wal_close(&w);
    wal_read(path, &seen);
    CHECK_EQ_U64(seen.n, 5);
    CHECK_STR(seen.text[3], "after reopen");

    /* A torn record (one payload byte changed) ends the chain before it. */
    int fd = open(path, O_RDWR);
    CHECK(fd >= 0);
    uint8_t b;
    off_t at = 2 * ZC_WAL_HEADER + 3 + 5 + ZC_WAL_HEADER + 2; /* inside "newest" */
    CHECK(pread(fd, &b, 1, at) == 1);
    b ^= 0x20;
    CHECK(pwrite(fd, &b, 1, at) == 1);
    close(fd);
    wal_read(path, &seen);
    CHECK_EQ_U64(seen.n, 2);
    CHECK_STR(seen.text[1], "newer");

    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

/* -- lib/zmqx: a watcher never strands a message -- */

static int zw_got; /* messages the watcher's callback received */

static void zw_one(zc_zmsg_t *m, void *arg)
{
    (void)m;
    (void)arg;
    zw_got++;
}

static void zw_cb(void *sock, void *arg) { zc_zmsg_each(sock, zw_one, arg); }

/* Run the loop (without blocking) until zw_got reaches want, 3 s at most. */
static bool zw_wait(uv_loop_t *loop, int want)
{
    uint64_t end = uv_hrtime() + 3000000000ull;
    while (zw_got < want && uv_hrtime() < end) {
        uv_run(loop, UV_RUN_NOWAIT);
        usleep(500);
    }
    return zw_got >= want;
}

/* A call into a watched socket outside its callback can consume the edge of
 * a message already waiting (libzmq processes the socket's commands inside
 * the call, so its fd never fires for that message).  A send through
 * zc_zsend, or any call followed by zc_watch_touched, must make the watcher
 * look again before the loop blocks. */
TEST(zmqx_a_send_outside_the_callback_strands_nothing)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    void *ctx = zmq_ctx_new();
    void *router = zmq_socket(ctx, ZMQ_ROUTER), *dealer = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(dealer, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(dealer, ZMQ_ROUTING_ID, "d", 1);
    CHECK(zmq_bind(router, "inproc://zmqx-test") == 0);
    CHECK(zmq_connect(dealer, "inproc://zmqx-test") == 0);
    zc_watch_t *w = zc_watch_new(&loop, dealer, zw_cb, NULL);
    CHECK(w != NULL);
    zw_got = 0;
    /* The router learns the dealer's id from a first message. */
    CHECK(zc_zsend(dealer, NULL, 0, "hello", 5) == 0);
    char id[8], body[16];
    CHECK(zmq_recv(router, id, sizeof id, 0) == 1 && zmq_recv(router, body, sizeof body, 0) == 5);

    for (int round = 0; round < 20; round++) {
        int want = zw_got + 1;
        for (int i = 0; i < 5; i++) /* settle: the watcher armed, the loop idle */
            uv_run(&loop, UV_RUN_NOWAIT);
        CHECK(zc_zsend(router, "d", 1, "to-dealer", 9) == 0);
        usleep(2000); /* past libzmq's command throttle: the next call processes them */
        if (round % 2 == 0) {
            CHECK(zc_zsend(dealer, NULL, 0, "ping", 4) == 0);
        } else {
            CHECK(zmq_send(dealer, "ping", 4, ZMQ_DONTWAIT) == 4);
            zc_watch_touched(dealer);
        }
        CHECK(zw_wait(&loop, want));
        CHECK(zmq_recv(router, id, sizeof id, 0) == 1 && zmq_recv(router, body, sizeof body, 0) == 4);
    }
    CHECK_EQ_U64(zw_got, 20);
    zc_watch_destroy(&w);
    uv_run(&loop, UV_RUN_NOWAIT);
    zmq_close(dealer);
    zmq_close(router);
    zmq_ctx_term(ctx);
    uv_loop_close(&loop);
}

int main(void)
{
    RUN(deadline_queue_matches_model);
    RUN(map_matches_model);
    RUN(map_free_value_frees_every_value);
    RUN(buf_roundtrip_big_endian);
    RUN(buf_errors_are_sticky);
    RUN(json_writer);
    RUN(json_reader_flat_objects);
    RUN(stallwatch_sees_a_blocking_callback);
    RUN(wal_chain_rewind_torn_and_full);
    RUN(zmqx_a_send_outside_the_callback_strands_nothing);
    return unit_report();
}
