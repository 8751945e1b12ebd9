/* test_cart_store: the cart node's durable state without sockets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>

#include "cart/store.h"
#include "proto/status.h"
#include "unit.h"

static char root[128];
static int seq_no;

static store_t *open_store(char *dir_out)
{
    char err[256];
    snprintf(dir_out, 256, "%s/s%d", root, seq_no++);
    store_t *s = store_open(dir_out, 4, 0, 0, err, sizeof err);
    if (s == NULL)
        fprintf(stderr, "store_open: %s\n", err);
    return s;
}

static void sess(uint8_t out[16], int k)
{
    memset(out, 0, 16);
    out[0] = 0xC0;
    out[15] = (uint8_t)k;
}

TEST(fencing_every_branch)
{
    char d[256];
    store_t *s = open_store(d);
    store_slot_t sl;
    uint8_t a[16], b[16];
    const char *why = NULL;
    sess(a, 1);
    sess(b, 2);
    CHECK(store_get_slot(s, 0, &sl) == 0);
    CHECK(store_fence(&sl, a, 5, &why) == STORE_ADOPT); /* no owner */
    CHECK(store_adopt(s, 0, a, 5) == 0);
    CHECK(store_get_slot(s, 0, &sl) == 0);
    CHECK(store_fence(&sl, a, 5, &why) == STORE_OWNER);
    CHECK(store_fence(&sl, b, 5, &why) == STORE_FENCED);   /* other session */
    CHECK(store_fence(&sl, a, 4, &why) == STORE_FENCED);   /* older generation */
    CHECK(store_fence(&sl, b, 6, &why) == STORE_FENCED);   /* newer, but not reset */
    CHECK(strstr(why, "not reset") != NULL);
    CHECK(store_reset(s, 0, 5) == STORE_RESET_DONE);
    CHECK(store_get_slot(s, 0, &sl) == 0);
    CHECK(store_fence(&sl, a, 5, &why) == STORE_FENCED);   /* reset generation */
    CHECK(store_fence(&sl, b, 3, &why) == STORE_FENCED);   /* below reset */
    CHECK(store_fence(&sl, b, 6, &why) == STORE_ADOPT);
    CHECK(store_commit(s) == 0);
    store_close(&s);
    CHECK(s == NULL);
}

TEST(items_add_remove_and_not_in_cart)
{
    char d[256];
    store_t *s = open_store(d);
    uint32_t u;
    CHECK(store_change(s, 1, "apple", 3) == STORE_CHANGED);
    CHECK(store_change(s, 1, "pear", 1) == STORE_CHANGED);
    CHECK(store_change(s, 2, "apple", 7) == STORE_CHANGED); /* another slot */
    CHECK(store_units(s, 1, "apple", &u) == 0 && u == 3);
    CHECK(store_change(s, 1, "apple", -4) == STORE_CHANGE_SHORT); /* more than held */
    CHECK(store_units(s, 1, "apple", &u) == 0 && u == 3);
    CHECK(store_change(s, 1, "kiwi", -1) == STORE_CHANGE_SHORT);
    CHECK(store_change(s, 1, "apple", -3) == STORE_CHANGED); /* line removed at 0 */
    zc_msg_t m;
    zc_msg_init(&m, ZC_MSG_REPLY);
    CHECK(store_items(s, 1, &m) == 0);
    CHECK_EQ_U64(m.n_items, 1);
    CHECK_STR(m.items[0].product, "pear");
    zc_msg_reset(&m);
    uint32_t n;
    CHECK(store_count_items(s, 2, &n) == 0 && n == 1);
    CHECK(store_commit(s) == 0);
    store_close(&s);
}

TEST(dedup_replay_window_and_outside)
{
    char d[256];
    store_t *s = open_store(d);
    uint8_t a[16];
    sess(a, 1);
    store_adopt(s, 0, a, 1);
    zc_msg_t ans;
    zc_msg_init(&ans, ZC_MSG_CART_REPLY);
    ans.status = ZC_OUT_OF_STOCK;
    snprintf(ans.detail, sizeof ans.detail, "only 2");
    zc_msg_add_item(&ans, "apple", 2);
    CHECK(store_dedup_put(s, 0, 100, &ans) == 0);
    store_answer_t got;
    CHECK(store_dedup_get(s, 0, 100, &got) == STORE_DEDUP_FOUND);
    CHECK_EQ_U64(got.status, ZC_OUT_OF_STOCK);
    CHECK_STR(got.detail, "only 2");
    CHECK(got.n_items == 1 && got.items[0].qty == 2);
    store_answer_clear(&got);
    CHECK(store_dedup_get(s, 0, 101, &got) == STORE_DEDUP_NEW);
    CHECK(store_dedup_get(s, 1, 100, &got) == STORE_DEDUP_NEW); /* per slot */
    /* Fill the window with sparse seqs (time-based seqs are not dense). */
    for (uint64_t q = 1; q <= STORE_DEDUP_WINDOW + 10; q++)
        CHECK(store_dedup_put(s, 0, 1000 + q * 7, &ans) == 0);
    store_slot_t sl;
    CHECK(store_get_slot(s, 0, &sl) == 0);
    CHECK_EQ_U64(sl.dedup_count, STORE_DEDUP_WINDOW);
    CHECK(store_dedup_get(s, 0, 100, &got) == STORE_DEDUP_OUTSIDE);           /* evicted: outside */
    CHECK(store_dedup_get(s, 0, 1000 + 11 * 7, &got) == STORE_DEDUP_FOUND); /* lowest kept */
    store_answer_clear(&got);
    CHECK(store_dedup_get(s, 0, 1000 + 10 * 7, &got) == STORE_DEDUP_OUTSIDE); /* just evicted */
    CHECK(store_dedup_get(s, 0, 1000 + 11 * 7 + 1, &got) == STORE_DEDUP_NEW); /* a gap: new */
    CHECK(store_commit(s) == 0);
    zc_msg_reset(&ans);
    store_close(&s);
}

TEST(reset_empties_and_older_reset_is_ignored)
{
    char d[256];
    store_t *s = open_store(d);
    uint8_t a[16];
    sess(a, 1);
    store_adopt(s, 3, a, 8);
    store_change(s, 3, "apple", 2);
    zc_msg_t ans;
    zc_msg_init(&ans, ZC_MSG_CART_REPLY);
    store_dedup_put(s, 3, 1, &ans);
    CHECK(store_reset(s, 3, 7) == STORE_RESET_IGNORED); /* older than the owner: ignored */
    uint32_t u;
    CHECK(store_units(s, 3, "apple", &u) == 0 && u == 2);
    CHECK(store_reset(s, 3, 8) == STORE_RESET_DONE);
    CHECK(store_units(s, 3, "apple", &u) == 0 && u == 0);
    store_answer_t got;
    CHECK(store_dedup_get(s, 3, 1, &got) == STORE_DEDUP_NEW);
    store_slot_t sl;
    CHECK(store_get_slot(s, 3, &sl) == 0);
    CHECK(zc_session_is_zero(sl.owner));
    CHECK_EQ_U64(sl.reset_generation, 8);
    CHECK(store_reset(s, 3, 8) == STORE_RESET_DONE); /* idempotent */
    CHECK(store_commit(s) == 0);
    store_close(&s);
}

TEST(committed_state_survives_reopen_uncommitted_does_not)
{
    char d[256], err[256];
    store_t *s = open_store(d);
    uint8_t a[16];
    sess(a, 9);
    store_adopt(s, 0, a, 2);
    store_change(s, 0, "pear", 4);
    CHECK(store_dirty(s));
    CHECK(store_commit(s) == 0);
    CHECK(!store_dirty(s));
    store_change(s, 0, "pear", 100); /* never committed */
    store_close(&s);
    s = store_open(d, 4, 0, 0, err, sizeof err);
    uint32_t u;
    CHECK(store_units(s, 0, "pear", &u) == 0 && u == 4);
    store_slot_t sl;
    CHECK(store_get_slot(s, 0, &sl) == 0);
    CHECK(memcmp(sl.owner, a, 16) == 0 && sl.generation == 2);
    CHECK(!store_dirty(s)); /* reads alone dirty nothing */
    CHECK(store_commit(s) == 0);
    store_close(&s);
}

/* store_each_item visits a slot's lines in product order and stops when
 * asked; store_open_readonly reads committed contents and refuses writes and
 * directories that hold no store. */
typedef struct {
    char seen[8][ZC_PRODUCT_MAX + 1]; /* products in visiting order */
    uint32_t qty[8];                  /* their units */
    unsigned n;                       /* lines seen */
    unsigned stop_after;              /* return non-zero after this many (0: never) */
} item_walk_t;

static int walk_item(const char *product, uint32_t qty, void *arg)
{
    item_walk_t *w = arg;
    if (w->n < 8) {
        snprintf(w->seen[w->n], sizeof w->seen[w->n], "%s", product);
        w->qty[w->n] = qty;
    }
    w->n++;
    return w->stop_after && w->n == w->stop_after;
}

TEST(each_item_and_readonly_open)
{
    char d[256], err[256];
    store_t *s = open_store(d);
    uint8_t a[16];
    item_walk_t w;
    sess(a, 3);
    CHECK(store_adopt(s, 1, a, 7) == 0);
    CHECK(store_change(s, 1, "pear", 2) == STORE_CHANGED);
    CHECK(store_change(s, 1, "apple", 5) == STORE_CHANGED);
    CHECK(store_change(s, 2, "fig", 1) == STORE_CHANGED); /* another slot: not visited */
    memset(&w, 0, sizeof w);
    CHECK(store_each_item(s, 1, walk_item, &w) == 0);
    CHECK_EQ_U64(w.n, 2);
    CHECK_STR(w.seen[0], "apple");
    CHECK_EQ_U64(w.qty[0], 5);
    CHECK_STR(w.seen[1], "pear");
    memset(&w, 0, sizeof w);
    w.stop_after = 1;
    CHECK(store_each_item(s, 1, walk_item, &w) == 0);
    CHECK_EQ_U64(w.n, 1);
    CHECK(store_commit(s) == 0);
    store_close(&s);

    s = store_open_readonly(d, 4, err, sizeof err);
    CHECK(s != NULL);
    if (s) {
        store_slot_t sl;
        CHECK(store_get_slot(s, 1, &sl) == 0);
        CHECK(memcmp(sl.owner, a, 16) == 0 && sl.generation == 7);
        memset(&w, 0, sizeof w);
        CHECK(store_each_item(s, 1, walk_item, &w) == 0);
        CHECK_EQ_U64(w.n, 2);
        CHECK(store_change(s, 1, "pear", 1) == STORE_CHANGE_ERROR); /* writes are refused */
        CHECK(store_reset(s, 1, 9) == STORE_RESET_ERROR);
        CHECK(!store_dirty(s));
        CHECK(store_commit(s) == 0);
        store_close(&s);
    }
    char missing[300];
    snprintf(missing, sizeof missing, "%s/no-such-store", root);
    CHECK(store_open_readonly(missing, 4, err, sizeof err) == NULL);
    struct stat st;
    CHECK(stat(missing, &st) != 0); /* and it created nothing */
    CHECK(store_open_readonly(root, 4, err, sizeof err) == NULL);
    CHECK(strstr(err, "no cart store") != NULL);
}

/* An OK answer holding ZC_ITEMS_MAX lines of 64-character products
 * (~18 KB encoded): free it with zc_msg_reset. */
static void full_answer(zc_msg_t *ans)
{
    zc_msg_init(ans, ZC_MSG_CART_REPLY);
    ans->status = ZC_OK;
    for (int i = 0; i < ZC_ITEMS_MAX; i++) {
        char p[ZC_PRODUCT_MAX + 1];
        snprintf(p, sizeof p, "%062d%02d", 0, i % 100);
        p[0] = (char)('a' + i / 100);
        CHECK(zc_msg_add_item(ans, p, 1) == 0);
    }
}

/* Answers holding full item lists: a slot's dedup records stay within
 * STORE_DEDUP_BYTES (the newest kept), a seq below the lowest kept is then
 * outside the window even with fewer than STORE_DEDUP_WINDOW kept, and a
 * reset clears it all; store_usage reports a map and a use below it. */
TEST(dedup_records_are_bounded_in_bytes)
{
    char d[256];
    store_t *s = open_store(d);
    uint8_t a[16];
    sess(a, 1);
    CHECK(store_adopt(s, 0, a, 5) == 0);
    zc_msg_t ans;
    full_answer(&ans);
    for (uint64_t q = 1; q <= 40; q++) {
        CHECK(store_dedup_put(s, 0, q, &ans) == 0);
        CHECK(store_commit(s) == 0);
    }
    store_slot_t sl;
    CHECK(store_get_slot(s, 0, &sl) == 0);
    CHECK(sl.dedup_bytes <= STORE_DEDUP_BYTES);
    CHECK(sl.dedup_count >= 5 && sl.dedup_count < 40);
    CHECK(sl.dedup_trimmed);
    store_answer_t got;
    CHECK(store_dedup_get(s, 0, 40, &got) == STORE_DEDUP_FOUND); /* the newest is kept, whole */
    CHECK_EQ_U64(got.n_items, ZC_ITEMS_MAX);
    store_answer_clear(&got);
    CHECK(store_dedup_get(s, 0, 1, &got) == STORE_DEDUP_OUTSIDE); /* dropped: outside the window */
    CHECK(store_dedup_get(s, 0, 41, &got) == STORE_DEDUP_NEW); /* new */
    uint64_t used, map;
    /* The bound is on what LMDB holds: checkpoint first (until then
     * store_usage counts every byte written, twice). */
    CHECK(store_checkpoint(s) == 0);
    CHECK(store_usage(s, &used, &map) == 0);
    CHECK(map == STORE_MAP_DEFAULT && used > 0 && used < (uint64_t)STORE_DEDUP_BYTES * 2);
    CHECK(store_reset(s, 0, 5) == STORE_RESET_DONE);
    CHECK(store_get_slot(s, 0, &sl) == 0);
    CHECK(sl.dedup_bytes == 0 && sl.dedup_count == 0 && !sl.dedup_trimmed);
    CHECK(store_commit(s) == 0);
    zc_msg_reset(&ans);
    store_close(&s);
}

/* -- the write-ahead log (cart/store.h, "Durability" in docs/architecture.md) -- */

/* Bytes of a file, malloc'd (NULL if unreadable). */
static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

static bool same_file(const char *path, const uint8_t *b, size_t len)
{
    size_t n;
    uint8_t *now = slurp(path, &n);
    bool same = now && n == len && memcmp(now, b, len) == 0;
    free(now);
    return same;
}

/* A disk that refuses writes to one file: every descriptor this process
 * has open on it is replaced by a read-only one (the originals kept). */
typedef struct {
    int fds[4];  /* the descriptors on the file */
    int keep[4]; /* their originals, dup'd */
    int n;       /* how many */
} broken_file_t;

static void break_file(broken_file_t *b, const char *path)
{
    char want[PATH_MAX], link[64], got[PATH_MAX];
    int ro = open(path, O_RDONLY);
    b->n = 0;
    CHECK(ro >= 0 && realpath(path, want) != NULL);
    for (int fd = 3; fd < 1024 && b->n < 4; fd++) {
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t k = readlink(link, got, sizeof got - 1);
        if (k <= 0 || fd == ro)
            continue;
        got[k] = 0;
        if (strcmp(got, want) == 0)
            b->fds[b->n++] = fd;
    }
    CHECK(b->n >= 1);
    for (int i = 0; i < b->n; i++) { /* after the scan: the copies point there too */
        b->keep[i] = dup(b->fds[i]);
        CHECK(b->keep[i] >= 0 && dup2(ro, b->fds[i]) == b->fds[i]);
    }
    close(ro);
}

static void mend_file(broken_file_t *b)
{
    for (int i = 0; i < b->n; i++) {
        CHECK(dup2(b->keep[i], b->fds[i]) == b->fds[i]);
        close(b->keep[i]);
    }
}

/* The store at d after a crash or a close: opened again, or NULL (checked). */
static store_t *reopen(const char *d)
{
    char err[256];
    store_t *s = store_open(d, 4, 0, 0, err, sizeof err);
    CHECK(s != NULL);
    if (s == NULL)
        fprintf(stderr, "store_open: %s\n", err);
    return s;
}

/* A new store whose slot holds `qty` of `product` for session k at
 * generation gen, committed (in the log only). */
static store_t *store_with(char *d, int k, uint16_t slot, uint64_t gen, const char *product,
                           uint32_t qty)
{
    uint8_t a[16];
    store_t *s = open_store(d);
    sess(a, k);
    CHECK(s != NULL && store_adopt(s, slot, a, gen) == 0);
    CHECK(store_change(s, slot, product, qty) == STORE_CHANGED);
    CHECK(store_commit(s) == 0);
    return s;
}

/* A store_commit is durable by the log alone: a store abandoned without a
 * checkpoint (what kill -9 leaves) opens with every committed change and
 * none of the rest, and says it replayed the log. */
TEST(a_commit_survives_a_crash_by_the_log)
{
    char d[256], err[256];
    store_t *s = open_store(d);
    uint8_t a[16];
    uint32_t u;
    sess(a, 4);
    CHECK(store_adopt(s, 0, a, 3) == 0);
    CHECK(store_change(s, 0, "kiwi", 2) == STORE_CHANGED);
    CHECK(store_commit(s) == 0);
    CHECK(store_change(s, 0, "kiwi", 5) == STORE_CHANGED);
    CHECK(store_change(s, 1, "lime", 1) == STORE_CHANGED);
    CHECK(store_commit(s) == 0);
    CHECK(store_change(s, 0, "kiwi", 100) == STORE_CHANGED); /* never committed */
    store_stats_t st;
    store_stats(s, &st);
    CHECK_EQ_U64(st.log_records, 2);
    CHECK_EQ_U64(st.checkpoints, 0);
    CHECK(st.log_used > 0);
    store_abandon(&s);

    if ((s = reopen(d)) == NULL)
        return;
    store_stats(s, &st);
    CHECK_EQ_U64(st.replayed_records, 2);
    CHECK(store_units(s, 0, "kiwi", &u) == 0 && u == 7);
    CHECK(store_units(s, 1, "lime", &u) == 0 && u == 1);
    store_slot_t sl;
    CHECK(store_get_slot(s, 0, &sl) == 0);
    CHECK(memcmp(sl.owner, a, 16) == 0 && sl.generation == 3);

    /* After a checkpoint the log starts over: a crash then replays only
     * what came after it, on top of what LMDB holds. */
    CHECK(store_change(s, 0, "kiwi", 1) == STORE_CHANGED);
    CHECK(store_commit(s) == 0);
    CHECK(store_checkpoint(s) == 0);
    store_stats(s, &st);
    CHECK_EQ_U64(st.checkpoints, 1);
    CHECK_EQ_U64(st.log_used, 0);
    CHECK(store_change(s, 0, "kiwi", -3) == STORE_CHANGED);
    CHECK(store_commit(s) == 0);
    CHECK(store_reset(s, 1, 9) == STORE_RESET_DONE); /* deletes are logged too */
    CHECK(store_commit(s) == 0);
    store_abandon(&s);
    if ((s = reopen(d)) == NULL)
        return;
    store_stats(s, &st);
    CHECK_EQ_U64(st.replayed_records, 2);
    CHECK(store_units(s, 0, "kiwi", &u) == 0 && u == 5);
    CHECK(store_units(s, 1, "lime", &u) == 0 && u == 0);
    CHECK(store_get_slot(s, 1, &sl) == 0 && sl.reset_generation == 9);
    store_close(&s); /* a clean close checkpoints: nothing to replay next time */
    if ((s = reopen(d)) == NULL)
        return;
    store_stats(s, &st);
    CHECK_EQ_U64(st.replayed_records, 0);
    CHECK(store_units(s, 0, "kiwi", &u) == 0 && u == 5);
    CHECK(store_change(s, 0, "kiwi", 1) == STORE_CHANGED);
    CHECK(store_commit(s) == 0);
    store_abandon(&s);
    /* Another --wal-size: the log is replayed, then made anew at that size. */
    s = store_open(d, 4, 0, 64 << 10, err, sizeof err);
    CHECK(s != NULL);
    if (s == NULL)
        return;
    store_stats(s, &st);
    CHECK_EQ_U64(st.replayed_records, 1);
    CHECK_EQ_U64(st.log_size, 64 << 10);
    CHECK(store_units(s, 0, "kiwi", &u) == 0 && u == 6);
    store_close(&s);
}

/* --dump-state of a killed node: a read-only open shows what the log holds,
 * from a private copy, and writes nothing in the store's directory. */
TEST(a_readonly_open_replays_into_a_private_copy)
{
    char d[256], err[256], tmp[300], path[400];
    snprintf(tmp, sizeof tmp, "%s/tmp-ro", root);
    mkdir(tmp, 0755);
    const char *old_tmp = getenv("TMPDIR");
    char saved[256] = "";
    if (old_tmp)
        snprintf(saved, sizeof saved, "%s", old_tmp);
    setenv("TMPDIR", tmp, 1);
    store_t *s = open_store(d);
    uint8_t a[16];
    uint32_t u;
    sess(a, 5);
    CHECK(store_adopt(s, 2, a, 4) == 0);
    CHECK(store_change(s, 2, "plum", 6) == STORE_CHANGED);
    CHECK(store_commit(s) == 0);
    store_abandon(&s);

    size_t ldata, lwal;
    snprintf(path, sizeof path, "%s/data.mdb", d);
    uint8_t *data = slurp(path, &ldata);
    snprintf(path, sizeof path, "%s/%s", d, STORE_WAL_NAME);
    uint8_t *wal = slurp(path, &lwal);
    CHECK(data != NULL && wal != NULL);

    s = store_open_readonly(d, 4, err, sizeof err);
    CHECK(s != NULL);
    if (s != NULL) {
        CHECK(store_units(s, 2, "plum", &u) == 0 && u == 6);
        store_slot_t sl;
        CHECK(store_get_slot(s, 2, &sl) == 0 && memcmp(sl.owner, a, 16) == 0);
        CHECK(store_change(s, 2, "plum", 1) == STORE_CHANGE_ERROR); /* still read-only */
        store_close(&s);
    }
    snprintf(path, sizeof path, "%s/data.mdb", d);
    CHECK(same_file(path, data, ldata));
    snprintf(path, sizeof path, "%s/%s", d, STORE_WAL_NAME);
    CHECK(same_file(path, wal, lwal));
    CHECK(rmdir(tmp) == 0); /* the private copy is gone */
    free(data);
    free(wal);
    if (saved[0])
        setenv("TMPDIR", saved, 1);
    else
        unsetenv("TMPDIR");

    /* And the store itself still replays it. */
    s = store_open(d, 4, 0, 0, err, sizeof err);
    CHECK(s != NULL && store_units(s, 2, "plum", &u) == 0 && u == 6);
    store_close(&s);
}

/* A log write that fails undoes that iteration's changes only: what was
 * committed before stays (in the open transaction and in the log), the
 * store goes on, and a crash afterwards recovers exactly that. */
TEST(a_failed_log_write_undoes_only_that_iteration)
{
    char d[256], path[400];
    store_t *s = store_with(d, 6, 0, 2, "date", 3);
    uint32_t u;
    /* The log's descriptor made read-only: its next write fails. */
    broken_file_t bf;
    snprintf(path, sizeof path, "%s/%s", d, STORE_WAL_NAME);
    break_file(&bf, path);
    CHECK(store_change(s, 0, "date", 10) == STORE_CHANGED);
    CHECK(store_change(s, 0, "fig", 1) == STORE_CHANGED);
    CHECK(store_commit(s) == -1);
    CHECK(!store_dirty(s));
    CHECK(store_units(s, 0, "date", &u) == 0 && u == 3); /* undone */
    CHECK(store_units(s, 0, "fig", &u) == 0 && u == 0);
    store_slot_t sl;
    CHECK(store_get_slot(s, 0, &sl) == 0 && sl.generation == 2); /* the earlier commit stays */
    store_stats_t st;
    store_stats(s, &st);
    CHECK_EQ_U64(st.log_failures, 1);
    mend_file(&bf); /* the disk is back */
    CHECK(store_change(s, 0, "date", 1) == STORE_CHANGED);
    CHECK(store_commit(s) == 0);
    store_abandon(&s);
    if ((s = reopen(d)) == NULL)
        return;
    CHECK(store_units(s, 0, "date", &u) == 0 && u == 4);
    CHECK(store_units(s, 0, "fig", &u) == 0 && u == 0);
    store_close(&s);
}

/* A checkpoint whose LMDB commit fails loses nothing: the store goes on with
 * everything committed, the next checkpoint succeeds, and a crash in
 * between recovers it all from the log. */
TEST(a_failed_checkpoint_loses_nothing)
{
    char d[256], path[400];
    store_t *s = store_with(d, 7, 3, 5, "yam", 2);
    uint32_t u;
    /* LMDB's descriptors on data.mdb made read-only: its commit fails. */
    broken_file_t bf;
    snprintf(path, sizeof path, "%s/data.mdb", d);
    break_file(&bf, path);
    CHECK(store_change(s, 3, "yam", 1) == STORE_CHANGED);
    CHECK(store_checkpoint(s) == -1);
    store_stats_t st;
    store_stats(s, &st);
    CHECK_EQ_U64(st.checkpoint_failures, 1);
    CHECK(st.log_used > 0);
    CHECK(store_units(s, 3, "yam", &u) == 0 && u == 3); /* logged or not, still here */
    CHECK(store_commit(s) == 0);                          /* and the open change is committed */
    mend_file(&bf);
    store_abandon(&s); /* a crash before any checkpoint worked */
    if ((s = reopen(d)) == NULL)
        return;
    CHECK(store_units(s, 3, "yam", &u) == 0 && u == 3);
    CHECK(store_change(s, 3, "yam", 1) == STORE_CHANGED);
    CHECK(store_commit(s) == 0);
    CHECK(store_checkpoint(s) == 0);
    store_stats(s, &st);
    CHECK_EQ_U64(st.checkpoints, 1);
    store_close(&s);
}

/* An iteration too big for the space left in the log is made durable by a
 * checkpoint instead. */
TEST(an_iteration_too_big_for_the_log_checkpoints)
{
    char d[256];
    store_t *s = open_store(d);
    uint8_t a[16];
    sess(a, 8);
    CHECK(store_adopt(s, 0, a, 1) == 0);
    zc_msg_t ans;
    full_answer(&ans);
    /* Answers of ~18 KB: 4 MiB of them in one iteration, over every slot. */
    for (uint64_t q = 1; q <= 64; q++)
        for (uint16_t slot = 0; slot < 4; slot++)
            CHECK(store_dedup_put(s, slot, q, &ans) == 0);
    CHECK(store_commit(s) == 0);
    store_stats_t st;
    store_stats(s, &st);
    CHECK_EQ_U64(st.checkpoints, 1);
    CHECK_EQ_U64(st.log_records, 0);
    store_answer_t got;
    CHECK(store_dedup_get(s, 3, 64, &got) == STORE_DEDUP_FOUND);
    store_answer_clear(&got);
    store_abandon(&s);
    if ((s = reopen(d)) == NULL)
        return;
    CHECK(store_dedup_get(s, 3, 64, &got) == STORE_DEDUP_FOUND);
    store_answer_clear(&got);
    zc_msg_reset(&ans);
    store_close(&s);
}

/* The dedup key orders a slot's records by seq (lowest_seq relies on it). */
TEST(op_key_is_slot_then_seq_big_endian)
{
    uint8_t a[STORE_OP_KEY_LEN], b[STORE_OP_KEY_LEN];
    store_op_key(a, 0x0102, 0x0304050607080910ull);
    static const uint8_t want[STORE_OP_KEY_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 0x10};
    CHECK(memcmp(a, want, sizeof want) == 0);
    store_op_key(a, 7, 255);
    store_op_key(b, 7, 256);
    CHECK(memcmp(a, b, sizeof a) < 0);
}

int main(void)
{
    snprintf(root, sizeof root, "/tmp/zcart-test-cart.%d", (int)getpid());
    mkdir(root, 0755);
    RUN(fencing_every_branch);
    RUN(items_add_remove_and_not_in_cart);
    RUN(dedup_replay_window_and_outside);
    RUN(reset_empties_and_older_reset_is_ignored);
    RUN(committed_state_survives_reopen_uncommitted_does_not);
    RUN(each_item_and_readonly_open);
    RUN(dedup_records_are_bounded_in_bytes);
    RUN(a_commit_survives_a_crash_by_the_log);
    RUN(a_readonly_open_replays_into_a_private_copy);
    RUN(a_failed_log_write_undoes_only_that_iteration);
    RUN(a_failed_checkpoint_loses_nothing);
    RUN(an_iteration_too_big_for_the_log_checkpoints);
    RUN(op_key_is_slot_then_seq_big_endian);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (system(cmd) != 0)
        return 2;
    return unit_report();
}
