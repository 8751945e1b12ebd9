/* test_fsm: the replicated state machine without raft.
 *
 * Drives zc_fsm_apply with encoded commands at explicit indexes and checks
 * the state through the same queries the broker uses.  Each test uses fresh
 * LMDB directories under a temporary root. */
#include <pthread.h>
#include <raft.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto/status.h"
#include "replication/fsm.h"
#include "replication/state_txn.h"
#include "unit.h"

static char root[128];
static int dir_seq;

static zc_fsm_t *open_fsm(char *dir_out)
{
    char err[256];
    snprintf(dir_out, 256, "%s/fsm%d", root, dir_seq++);
    zc_fsm_t *f = zc_fsm_new(dir_out, 0, err, sizeof err);
    if (f == NULL)
        fprintf(stderr, "zc_fsm_new: %s\n", err);
    return f;
}

/* Apply a command at the next index; returns the result. */
static zc_cmd_result_t apply_at(zc_fsm_t *f, uint64_t index, const zc_cmd_t *c)
{
    zc_wbuf_t w;
    zc_cmd_result_t res;
    zc_wbuf_init(&w);
    CHECK(zc_cmd_encode(c, &w) == 0);
    CHECK(zc_fsm_apply(f, index, w.data, w.len, &res) == 0);
    zc_wbuf_clear(&w);
    return res;
}

static zc_cmd_result_t apply(zc_fsm_t *f, const zc_cmd_t *c)
{
    return apply_at(f, zc_fsm_applied_index(f) + 1, c);
}

static zc_cmd_result_t do_register(zc_fsm_t *f, const char *node, unsigned n, uint64_t gen,
                                   bool dirty)
{
    zc_cmd_slot_t slots[16];
    zc_cmd_t c = {.type = ZC_CMD_REGISTER, .time_ms = 1000};
    snprintf(c.reg.node, sizeof c.reg.node, "%s", node);
    for (unsigned i = 0; i < n; i++)
        slots[i] = (zc_cmd_slot_t){.slot = (uint16_t)i, .generation = gen, .dirty = dirty};
    c.reg.n = (uint16_t)n;
    c.reg.slots = slots;
    return apply(f, &c);
}

static void session_id(uint8_t s[16], int k)
{
    memset(s, 0, 16);
    s[0] = 0xA0;
    s[15] = (uint8_t)k;
}

static zc_cmd_result_t do_assign(zc_fsm_t *f, int k)
{
    zc_cmd_t c = {.type = ZC_CMD_ASSIGN, .time_ms = 2000};
    session_id(c.assign.session, k);
    return apply(f, &c);
}

static zc_cmd_result_t do_release(zc_fsm_t *f, int k)
{
    zc_cmd_t c = {.type = ZC_CMD_RELEASE, .time_ms = 3000};
    session_id(c.release.session, k);
    c.release.why = ZC_RELEASE_CLOSE;
    return apply(f, &c);
}

static zc_cmd_result_t do_return(zc_fsm_t *f, const char *cart, uint64_t gen)
{
    zc_cmd_t c = {.type = ZC_CMD_RETURN, .time_ms = 4000};
    snprintf(c.ret.cart, sizeof c.ret.cart, "%s", cart);
    c.ret.generation = gen;
    return apply(f, &c);
}

static zc_state_counts_t counts(zc_fsm_t *f)
{
    zc_state_counts_t n;
    CHECK(zc_state_counts(zc_fsm_state(f), &n) == 0);
    return n;
}

/* Invariant 5: registered = free + assigned + draining, and free list = FREE carts. */
static int count_free_list(const char *cart, void *arg)
{
    (void)cart;
    (*(unsigned *)arg)++;
    return 0;
}

static void check_invariants(zc_fsm_t *f)
{
    zc_state_counts_t n = counts(f);
    unsigned in_list = 0;
    CHECK(zc_state_each_free(zc_fsm_state(f), count_free_list, &in_list) == 0);
    CHECK_EQ_U64(n.total, n.free + n.assigned + n.draining);
    CHECK_EQ_U64(in_list, n.free);
    char why[256];
    int rc = zc_state_check(zc_fsm_state(f), why, sizeof why);
    if (rc != 0)
        fprintf(stderr, "invariant: %s\n", why);
    CHECK(rc == 0);
}

TEST(register_fills_free_list_in_order)
{
    char d[256];
    zc_fsm_t *f = open_fsm(d);
    zc_cmd_result_t r = do_register(f, "cartA", 3, 0, false);
    CHECK_EQ_U64(r.status, ZC_OK);
    CHECK_EQ_U64(r.count, 3);
    r = do_register(f, "cartA", 3, 0, false); /* re-registration adds nothing */
    CHECK_EQ_U64(r.count, 0);
    zc_state_counts_t n = counts(f);
    CHECK_EQ_U64(n.total, 3);
    CHECK_EQ_U64(n.free, 3);
    /* FIFO: the first assignment takes slot 0, the next slot 1. */
    CHECK_STR(do_assign(f, 1).cart, "cartA.0");
    CHECK_STR(do_assign(f, 2).cart, "cartA.1");
    check_invariants(f);
    zc_fsm_destroy(&f);
}

TEST(assign_is_sticky_and_generations_grow)
{
    char d[256];
    zc_fsm_t *f = open_fsm(d);
    do_register(f, "n", 2, 0, false);
    zc_cmd_result_t a = do_assign(f, 1);
    zc_cmd_result_t again = do_assign(f, 1); /* racing/retried first request */
    CHECK_EQ_U64(a.status, ZC_OK);
    CHECK_EQ_U64(again.status, ZC_OK);
    CHECK_STR(again.cart, a.cart);
    CHECK_EQ_U64(again.generation, a.generation);
    zc_cmd_result_t b = do_assign(f, 2);
    CHECK(b.generation > a.generation);
    CHECK(strcmp(a.cart, b.cart) != 0);
    zc_cmd_result_t none = do_assign(f, 3);
    CHECK_EQ_U64(none.status, ZC_NO_FREE_CART);
    zc_state_counts_t n = counts(f);
    CHECK_EQ_U64(n.assigned, 2);
    CHECK_EQ_U64(n.sessions_live, 2);
    check_invariants(f);
    zc_fsm_destroy(&f);
}

TEST(release_drains_then_return_frees_at_tail)
{
    char d[256];
    zc_fsm_t *f = open_fsm(d);
    do_register(f, "n", 2, 0, false);
    zc_cmd_result_t a = do_assign(f, 1);
    zc_cmd_result_t rel = do_release(f, 1);
    CHECK_EQ_U64(rel.status, ZC_OK);
    CHECK_STR(rel.cart, a.cart);
    CHECK_EQ_U64(rel.generation, a.generation);
    CHECK_EQ_U64(counts(f).draining, 1);
    /* The draining cart is not handed out. */
    zc_cmd_result_t b = do_assign(f, 2);
    CHECK(strcmp(b.cart, a.cart) != 0);
    CHECK_EQ_U64(do_assign(f, 3).status, ZC_NO_FREE_CART);
    /* A stale return (wrong generation) changes nothing. */
    uint64_t before = zc_state_digest(zc_fsm_state(f));
    CHECK_EQ_U64(do_return(f, a.cart, a.generation + 100).status, ZC_FENCED);
    CHECK_EQ_U64(zc_state_digest(zc_fsm_state(f)), before);
    CHECK_EQ_U64(do_return(f, a.cart, a.generation).status, ZC_OK);
    CHECK_EQ_U64(do_return(f, a.cart, a.generation).status, ZC_FENCED); /* duplicate */
    zc_cmd_result_t c = do_assign(f, 3);
    CHECK_STR(c.cart, a.cart);
    CHECK(c.generation > b.generation);
    check_invariants(f);
    zc_fsm_destroy(&f);
}

TEST(closed_session_stays_closed)
{
    char d[256];
    zc_fsm_t *f = open_fsm(d);
    do_register(f, "n", 2, 0, false);
    do_assign(f, 1);
    CHECK_EQ_U64(do_release(f, 1).status, ZC_OK);
    CHECK_EQ_U64(do_release(f, 1).status, ZC_OK); /* idempotent */
    CHECK_EQ_U64(counts(f).draining, 1);
    CHECK_EQ_U64(do_assign(f, 1).status, ZC_SESSION_CLOSED);
    /* Releasing a session that never had a cart is a no-op. */
    uint64_t before = zc_state_digest(zc_fsm_state(f));
    zc_cmd_result_t r = do_release(f, 9);
    CHECK_EQ_U64(r.status, ZC_OK);
    CHECK_STR(r.cart, "");
    CHECK_EQ_U64(zc_state_digest(zc_fsm_state(f)), before);
    zc_fsm_destroy(&f);
}

TEST(dirty_registration_drains_and_raises_generation)
{
    char d[256];
    zc_fsm_t *f = open_fsm(d);
    CHECK_EQ_U64(do_register(f, "old", 1, 41, true).count, 1);
    zc_state_counts_t n = counts(f);
    CHECK_EQ_U64(n.draining, 1);
    CHECK_EQ_U64(n.free, 0);
    CHECK_EQ_U64(do_assign(f, 1).status, ZC_NO_FREE_CART);
    CHECK_EQ_U64(do_return(f, "old.0", 41).status, ZC_OK);
    zc_cmd_result_t a = do_assign(f, 1);
    CHECK_EQ_U64(a.status, ZC_OK);
    CHECK(a.generation > 41); /* above anything the node has seen */
    zc_fsm_destroy(&f);
}

/* A restored (or recovered) state older than a node's data: a FREE cart
 * the node reports holding something newer drains before reuse, and new
 * generations outrank what the node has seen; a known cart reported clean,
 * or not newer, is left alone. */
TEST(known_free_cart_newer_on_the_node_drains)
{
    char d[256];
    zc_fsm_t *f = open_fsm(d);
    CHECK_EQ_U64(do_register(f, "n", 2, 0, false).count, 2);
    CHECK_EQ_U64(counts(f).free, 2);
    CHECK_EQ_U64(do_register(f, "n", 2, 0, true).moved, 0); /* not newer: kept FREE */
    zc_cmd_result_t r = do_register(f, "n", 1, 9, true);    /* n.0 holds gen 9 */
    CHECK_EQ_U64(r.status, ZC_OK);
    CHECK_EQ_U64(r.count, 0); /* nothing new registered */
    CHECK_EQ_U64(r.moved, 1);
    zc_state_counts_t n = counts(f);
    CHECK_EQ_U64(n.total, 2);
    CHECK_EQ_U64(n.free, 1);
    CHECK_EQ_U64(n.draining, 1);
    check_invariants(f);
    zc_cmd_result_t a = do_assign(f, 1); /* gets n.1, the clean one */
    CHECK_EQ_U64(a.status, ZC_OK);
    CHECK_STR(a.cart, "n.1");
    CHECK(a.generation > 9);
    CHECK_EQ_U64(do_return(f, "n.0", 9).status, ZC_OK); /* reset, back in service */
    CHECK_EQ_U64(counts(f).free, 1);
    check_invariants(f);
    zc_fsm_destroy(&f);
}

TEST(replayed_entries_are_skipped)
{
    char d[256];
    zc_fsm_t *f = open_fsm(d);
    do_register(f, "n", 4, 0, false);
    do_assign(f, 1);
    uint64_t idx = zc_fsm_applied_index(f);
    uint64_t digest = zc_state_digest(zc_fsm_state(f));
    uint64_t cmds = zc_state_meta(zc_fsm_state(f), "applied_commands");
    /* Replay the same assign at an old index, as raft does after a restart. */
    zc_cmd_t c = {.type = ZC_CMD_ASSIGN};
    session_id(c.assign.session, 2);
    zc_cmd_result_t r = apply_at(f, idx, &c);
    CHECK(r.replayed);
    CHECK_EQ_U64(zc_state_digest(zc_fsm_state(f)), digest);
    CHECK_EQ_U64(zc_state_meta(zc_fsm_state(f), "applied_commands"), cmds);
    CHECK_EQ_U64(counts(f).assigned, 1);
    /* And reopening the environment keeps index and state. */
    zc_fsm_destroy(&f);
    char err[256];
    f = zc_fsm_new(d, 0, err, sizeof err);
    CHECK(f != NULL);
    CHECK_EQ_U64(zc_fsm_applied_index(f), idx);
    CHECK_EQ_U64(zc_state_digest(zc_fsm_state(f)), digest);
    zc_fsm_destroy(&f);
}

TEST(malformed_entry_advances_index_without_change)
{
    char d[256];
    zc_fsm_t *f = open_fsm(d);
    do_register(f, "n", 1, 0, false);
    uint64_t digest = zc_state_digest(zc_fsm_state(f));
    uint64_t idx = zc_fsm_applied_index(f);
    const uint8_t junk[] = {0x02, 0x01, 0xff};
    zc_cmd_result_t r;
    CHECK(zc_fsm_apply(f, idx + 1, junk, sizeof junk, &r) == 0);
    CHECK_EQ_U64(r.status, ZC_BAD_REQUEST);
    CHECK_EQ_U64(zc_fsm_applied_index(f), idx + 1);
    CHECK_EQ_U64(zc_state_digest(zc_fsm_state(f)), digest);
    zc_fsm_destroy(&f);
}

/* Drive a fixed pseudo-random command sequence. */
static void workload(zc_fsm_t *f, unsigned seed, int steps)
{
    do_register(f, "a", 3, 0, false);
    do_register(f, "b", 3, 0, false);
    for (int i = 0; i < steps; i++) {
        seed = seed * 1103515245u + 12345u;
        int k = (int)(seed >> 16) % 12;
        switch ((seed >> 8) % 3) {
        case 0: do_assign(f, k); break;
        case 1: do_release(f, k); break;
        case 2: {
            check_invariants(f);
            zc_session_rec_t s;
            uint8_t id[16];
            session_id(id, k);
            if (zc_state_get_session(zc_fsm_state(f), id, &s) == 0)
                do_return(f, s.cart, s.generation);
        } break;
        }
    }
}

TEST(same_log_same_digest)
{
    char d1[256], d2[256];
    zc_fsm_t *f1 = open_fsm(d1), *f2 = open_fsm(d2);
    workload(f1, 7, 300);
    workload(f2, 7, 300);
    CHECK_EQ_U64(zc_fsm_applied_index(f1), zc_fsm_applied_index(f2));
    CHECK_EQ_U64(zc_state_digest(zc_fsm_state(f1)), zc_state_digest(zc_fsm_state(f2)));
    check_invariants(f1);
    /* A different log gives a different digest (the digest sees the state). */
    char d3[256];
    zc_fsm_t *f3 = open_fsm(d3);
    workload(f3, 8, 300);
    CHECK(zc_state_digest(zc_fsm_state(f1)) != zc_state_digest(zc_fsm_state(f3)));
    zc_fsm_destroy(&f1);
    zc_fsm_destroy(&f2);
    zc_fsm_destroy(&f3);
}

TEST(snapshot_restore_roundtrip)
{
    char d1[256], d2[256];
    zc_fsm_t *src = open_fsm(d1), *dst = open_fsm(d2);
    workload(src, 3, 200);
    zc_wbuf_t snap;
    zc_wbuf_init(&snap);
    CHECK(zc_fsm_snapshot(src, &snap) == 0);
    /* dst has some other, older state: restore replaces it entirely. */
    workload(dst, 99, 5);
    CHECK(zc_fsm_restore(dst, snap.data, snap.len) == 0);
    CHECK_EQ_U64(zc_fsm_applied_index(dst), zc_fsm_applied_index(src));
    CHECK_EQ_U64(zc_state_digest(zc_fsm_state(dst)), zc_state_digest(zc_fsm_state(src)));
    check_invariants(dst);
    /* Both continue identically. */
    do_assign(src, 50);
    do_assign(dst, 50);
    CHECK_EQ_U64(zc_state_digest(zc_fsm_state(dst)), zc_state_digest(zc_fsm_state(src)));
    /* An older snapshot does not roll the state back. */
    uint64_t digest = zc_state_digest(zc_fsm_state(dst));
    CHECK(zc_fsm_restore(dst, snap.data, snap.len) == 0);
    CHECK_EQ_U64(zc_state_digest(zc_fsm_state(dst)), digest);
    /* A truncated snapshot is refused and changes nothing. */
    char d3[256];
    zc_fsm_t *fresh = open_fsm(d3);
    uint64_t empty = zc_state_digest(zc_fsm_state(fresh));
    CHECK(zc_fsm_restore(fresh, snap.data, snap.len - 3) == -1);
    CHECK(zc_fsm_restore(fresh, "garbage", 7) == -1);
    CHECK_EQ_U64(zc_state_digest(zc_fsm_state(fresh)), empty);
    CHECK_EQ_U64(zc_fsm_applied_index(fresh), 0);
    zc_wbuf_clear(&snap);
    zc_fsm_destroy(&src);
    zc_fsm_destroy(&dst);
    zc_fsm_destroy(&fresh);
}

TEST(command_codec_roundtrip_and_rejects_junk)
{
    zc_cmd_slot_t slots[2] = {{.slot = 1, .generation = 5, .dirty = true}, {.slot = 2}};
    zc_cmd_t c = {.type = ZC_CMD_REGISTER, .time_ms = 77};
    snprintf(c.reg.node, sizeof c.reg.node, "node-x");
    c.reg.n = 2;
    c.reg.slots = slots;
    zc_wbuf_t w;
    zc_wbuf_init(&w);
    CHECK(zc_cmd_encode(&c, &w) == 0);
    zc_cmd_t d;
    CHECK(zc_cmd_decode(&d, w.data, w.len) == 0);
    CHECK_EQ_U64(d.type, ZC_CMD_REGISTER);
    CHECK_EQ_U64(d.time_ms, 77);
    CHECK_STR(d.reg.node, "node-x");
    CHECK_EQ_U64(d.reg.n, 2);
    CHECK(d.reg.slots[0].dirty && d.reg.slots[0].generation == 5 && d.reg.slots[1].slot == 2);
    zc_cmd_clear(&d);
    /* Every truncation fails cleanly. */
    for (size_t cut = 0; cut < w.len; cut++)
        CHECK(zc_cmd_decode(&d, w.data, cut) == -1);
    /* Trailing bytes fail. */
    zc_wbuf_u8(&w, 0);
    CHECK(zc_cmd_decode(&d, w.data, w.len) == -1);
    zc_wbuf_clear(&w);
}

/* raft's libuv log needs entry lengths in 8-byte units: a 62-byte REGISTER
 * once made every later entry vanish on restart. */
TEST(command_encoding_is_8_byte_aligned_with_zero_padding_only)
{
    zc_cmd_slot_t slot = {.slot = 3, .generation = 9};
    zc_cmd_t cmds[6] = {{.type = ZC_CMD_REGISTER},   {.type = ZC_CMD_ASSIGN},
                        {.type = ZC_CMD_RELEASE},    {.type = ZC_CMD_RETURN},
                        {.type = ZC_CMD_MEMBER_SET}, {.type = ZC_CMD_MEMBER_DEL}};
    snprintf(cmds[0].reg.node, sizeof cmds[0].reg.node, "cart1");
    cmds[0].reg.n = 1;
    cmds[0].reg.slots = &slot;
    cmds[2].release.why = ZC_RELEASE_CLOSE;
    snprintf(cmds[3].ret.cart, sizeof cmds[3].ret.cart, "cart1.3");
    cmds[4].member.id = 2;
    snprintf(cmds[4].member.raft_address, sizeof cmds[4].member.raft_address, "127.0.0.1:7012");
    for (unsigned i = 0; i < 6; i++) {
        zc_wbuf_t w;
        zc_wbuf_init(&w);
        CHECK(zc_cmd_encode(&cmds[i], &w) == 0);
        CHECK_EQ_U64(w.len % ZC_CMD_ALIGN, 0);
        zc_cmd_t d;
        CHECK(zc_cmd_decode(&d, w.data, w.len) == 0);
        CHECK_EQ_U64(d.type, cmds[i].type);
        zc_cmd_clear(&d);
        /* A non-zero padding octet is junk, not padding. */
        if (w.data[w.len - 1] == 0) {
            w.data[w.len - 1] = 0x5a;
            CHECK(zc_cmd_decode(&d, w.data, w.len) == -1);
        }
        /* Eight more zero octets are not padding either. */
        w.data[w.len - 1] = 0;
        for (int k = 0; k < 8; k++)
            zc_wbuf_u8(&w, 0);
        CHECK(zc_cmd_decode(&d, w.data, w.len) == -1);
        zc_wbuf_clear(&w);
    }
}

TEST(member_directory_replicates_and_snapshots)
{
    char d1[256], d2[256];
    zc_fsm_t *f = open_fsm(d1), *g = open_fsm(d2);
    zc_cmd_t c = {.type = ZC_CMD_MEMBER_SET};
    c.member.id = 4;
    snprintf(c.member.raft_address, sizeof c.member.raft_address, "127.0.0.1:7014");
    snprintf(c.member.client_endpoint, sizeof c.member.client_endpoint, "tcp://127.0.0.1:7024");
    snprintf(c.member.cart_endpoint, sizeof c.member.cart_endpoint, "tcp://127.0.0.1:7034");
    uint64_t digest = zc_state_digest(zc_fsm_state(f));
    CHECK_EQ_U64(apply(f, &c).status, ZC_OK);
    CHECK_EQ_U64(zc_state_digest(zc_fsm_state(f)), digest); /* not part of the digest */
    zc_member_t m;
    CHECK(zc_state_get_member(zc_fsm_state(f), 4, &m) == 0);
    CHECK_STR(m.client_endpoint, "tcp://127.0.0.1:7024");
    zc_wbuf_t snap;
    zc_wbuf_init(&snap);
    CHECK(zc_fsm_snapshot(f, &snap) == 0);
    CHECK(zc_fsm_restore(g, snap.data, snap.len) == 0);
    CHECK(zc_state_get_member(zc_fsm_state(g), 4, &m) == 0);
    CHECK_STR(m.raft_address, "127.0.0.1:7014");
    c.type = ZC_CMD_MEMBER_DEL;
    CHECK_EQ_U64(apply(f, &c).status, ZC_OK);
    CHECK(zc_state_get_member(zc_fsm_state(f), 4, &m) == 1);
    c.member.id = 0;
    CHECK_EQ_U64(apply(f, &c).status, ZC_BAD_REQUEST);
    /* The local table is not replicated by snapshots. */
    CHECK(zc_state_local_set(zc_fsm_state(f), "history", "abc") == 0);
    zc_wbuf_reset(&snap);
    CHECK(zc_fsm_snapshot(f, &snap) == 0);
    char v[16];
    CHECK(zc_state_local_set(zc_fsm_state(g), "history", "xyz") == 0);
    do_register(f, "late", 1, 0, false); /* make the snapshot newer than g */
    zc_wbuf_reset(&snap);
    CHECK(zc_fsm_snapshot(f, &snap) == 0);
    CHECK(zc_fsm_restore(g, snap.data, snap.len) == 0);
    CHECK(zc_state_local_get(zc_fsm_state(g), "history", v, sizeof v) == 0);
    CHECK_STR(v, "xyz");
    zc_wbuf_clear(&snap);
    zc_fsm_destroy(&f);
    zc_fsm_destroy(&g);
}

/* Write records behind the FSM's back and check zc_state_check notices. */
static int corrupt(zc_fsm_t *f, int how)
{
    zc_state_t *st = zc_fsm_state(f);
    MDB_txn *t;
    if (mdb_txn_begin(st->env, NULL, 0, &t) != 0)
        return -1;
    zc_cart_rec_t c;
    zc_session_rec_t r;
    uint8_t sid[16];
    switch (how) {
    case 0: /* a FREE cart missing from the free list */
        zc_state_txn_get_cart(st, t, "n.1", &c);
        zc_state_txn_free_del(st, t, c.free_pos);
        break;
    case 1: /* an ASSIGNED cart nobody holds */
        zc_state_txn_get_cart(st, t, "n.1", &c);
        zc_state_txn_free_del(st, t, c.free_pos);
        c.state = ZC_CART_ASSIGNED;
        c.generation = 99;
        zc_state_txn_put_cart(st, t, &c);
        break;
    case 2: /* a second live session claiming an assigned cart */
        session_id(sid, 1);
        zc_state_txn_get_session(st, t, sid, &r);
        session_id(r.id, 77);
        zc_state_txn_put_session(st, t, &r);
        break;
    case 3: /* a cart on the free list twice */
        zc_state_txn_get_cart(st, t, "n.1", &c);
        zc_state_txn_free_push(st, t, &c);
        break;
    case 4: /* a breaker held open by an operator that is closed */
        zc_state_txn_get_cart(st, t, "n.1", &c);
        c.breaker.mode = ZC_BRK_FORCED_OPEN;
        zc_state_txn_put_cart(st, t, &c);
        break;
    case 5: { /* a node's load changed behind the placement index's back */
        uint8_t b[8] = {0, 0, 0, 0, 0, 0, 0, 7};
        MDB_val k = {1, "n"}, v = {8, b};
        mdb_put(t, st->nodeload, &k, &v, 0);
    } break;
    case 6: /* the placement index lost its entries */ mdb_drop(t, st->loadfree, 0); break;
    }
    return mdb_txn_commit(t) == 0 ? 0 : -1;
}

TEST(invariant_check_catches_corruption)
{
    for (int how = 0; how < 7; how++) {
        char d[256], why[256] = "";
        zc_fsm_t *f = open_fsm(d);
        do_register(f, "n", 2, 0, false);
        do_assign(f, 1); /* takes n.0; n.1 stays free */
        CHECK(zc_state_check(zc_fsm_state(f), why, sizeof why) == 0);
        CHECK(corrupt(f, how) == 0);
        CHECK(zc_state_check(zc_fsm_state(f), why, sizeof why) == -1);
        CHECK(why[0] != 0);
        zc_fsm_destroy(&f);
    }
}

static zc_cmd_result_t do_breaker(zc_fsm_t *f, const char *cart, int ev, uint64_t t)
{
    zc_cmd_t c = {.type = ZC_CMD_BREAKER, .time_ms = t};
    snprintf(c.brk.cart, sizeof c.brk.cart, "%s", cart);
    c.brk.ev = (uint8_t)ev;
    c.brk.why = ZC_BRK_WHY_HEARTBEAT;
    c.brk.max_probes = 1;
    return apply(f, &c);
}

TEST(breaker_events_replicate_and_gate_assignment)
{
    char d1[256], d2[256];
    zc_fsm_t *f = open_fsm(d1), *g = open_fsm(d2);
    do_register(f, "n", 2, 0, false);
    /* The head of the free list trips: the next assignment skips it. */
    zc_cmd_result_t r = do_breaker(f, "n.0", ZC_BRK_EV_TRIP, 5000);
    CHECK_EQ_U64(r.status, ZC_OK);
    CHECK_EQ_U64(r.breaker.state, ZC_BRK_OPEN);
    CHECK_EQ_U64(zc_state_breakers_not_closed(zc_fsm_state(f)), 1); /* the breaker index */
    zc_cart_rec_t cart;
    CHECK(zc_state_get_cart(zc_fsm_state(f), "n.0", &cart) == 0);
    CHECK_EQ_U64(cart.breaker.state, ZC_BRK_OPEN);
    CHECK_EQ_U64(cart.breaker.why, ZC_BRK_WHY_HEARTBEAT);
    CHECK_EQ_U64(cart.breaker.since_ms, 5000);
    r = do_assign(f, 1);
    CHECK_EQ_U64(r.status, ZC_OK);
    CHECK_STR(r.cart, "n.1");
    /* The only other free cart is open: none to hand out. */
    r = do_assign(f, 2);
    CHECK_EQ_U64(r.status, ZC_NO_FREE_CART);
    /* A stale event is refused, changes nothing, but the index advances. */
    uint64_t digest = zc_state_digest(zc_fsm_state(f)), idx = zc_fsm_applied_index(f);
    r = do_breaker(f, "n.0", ZC_BRK_EV_TRIP, 6000);
    CHECK_EQ_U64(r.status, ZC_BAD_REQUEST);
    CHECK_EQ_U64(zc_state_digest(zc_fsm_state(f)), digest);
    CHECK_EQ_U64(zc_fsm_applied_index(f), idx + 1);
    r = do_breaker(f, "nope.0", ZC_BRK_EV_TRIP, 6000);
    CHECK_EQ_U64(r.status, ZC_BAD_REQUEST);
    /* OPEN -> HALF_OPEN -> CLOSED: n.0 is handed out again, in its place. */
    CHECK_EQ_U64(do_breaker(f, "n.0", ZC_BRK_EV_WAIT_OVER, 7000).status, ZC_OK);
    CHECK_EQ_U64(do_assign(f, 3).status, ZC_NO_FREE_CART); /* half-open is not closed */
    CHECK_EQ_U64(do_breaker(f, "n.0", ZC_BRK_EV_PROBE, 7100).status, ZC_OK);
    CHECK_EQ_U64(do_breaker(f, "n.0", ZC_BRK_EV_PROBE, 7200).status, ZC_BAD_REQUEST); /* limit 1 */
    CHECK_EQ_U64(zc_state_breakers_not_closed(zc_fsm_state(f)), 1);
    CHECK_EQ_U64(do_breaker(f, "n.0", ZC_BRK_EV_PROBE_OK, 7300).status, ZC_OK);
    CHECK_EQ_U64(zc_state_breakers_not_closed(zc_fsm_state(f)), 0);
    r = do_assign(f, 4);
    CHECK_EQ_U64(r.status, ZC_OK);
    CHECK_STR(r.cart, "n.0");
    char why[200];
    CHECK(zc_state_check(zc_fsm_state(f), why, sizeof why) == 0);
    /* A snapshot carries the breaker records. */
    CHECK_EQ_U64(do_breaker(f, "n.1", ZC_BRK_EV_FORCE_OPEN, 8000).status, ZC_OK);
    zc_wbuf_t snap;
    zc_wbuf_init(&snap);
    CHECK(zc_fsm_snapshot(f, &snap) == 0);
    CHECK(zc_fsm_restore(g, snap.data, snap.len) == 0);
    CHECK_EQ_U64(zc_state_digest(zc_fsm_state(g)), zc_state_digest(zc_fsm_state(f)));
    CHECK(zc_state_get_cart(zc_fsm_state(g), "n.1", &cart) == 0);
    CHECK_EQ_U64(cart.breaker.state, ZC_BRK_OPEN);
    CHECK_EQ_U64(cart.breaker.mode, ZC_BRK_FORCED_OPEN);
    /* The restored state rebuilt its breaker index. */
    CHECK_EQ_U64(zc_state_breakers_not_closed(zc_fsm_state(g)), 1);
    CHECK(zc_state_check(zc_fsm_state(g), why, sizeof why) == 0);
    zc_wbuf_clear(&snap);
    zc_fsm_destroy(&f);
    zc_fsm_destroy(&g);
}

TEST(lost_cart_reassigns_its_session_and_drains)
{
    char d[256];
    zc_fsm_t *f = open_fsm(d);
    do_register(f, "n", 2, 0, false);
    do_register(f, "m", 1, 0, false);
    zc_cmd_result_t a = do_assign(f, 1);
    CHECK_STR(a.cart, "n.0");
    /* n.1 held open: the session must move to m.0, the first free CLOSED one. */
    CHECK_EQ_U64(do_breaker(f, "n.1", ZC_BRK_EV_TRIP, 4000).status, ZC_OK);
    zc_cmd_t c = {.type = ZC_CMD_REASSIGN, .time_ms = 5000};
    snprintf(c.reassign.cart, sizeof c.reassign.cart, "n.0");
    c.reassign.generation = a.generation;
    zc_cmd_result_t r = apply(f, &c);
    CHECK_EQ_U64(r.status, ZC_OK);
    CHECK_STR(r.cart, "m.0");
    CHECK(r.generation > a.generation);
    zc_session_rec_t sess;
    uint8_t sid[16];
    session_id(sid, 1);
    CHECK(zc_state_get_session(zc_fsm_state(f), sid, &sess) == 0);
    CHECK_STR(sess.cart, "m.0");
    CHECK(sess.lost);
    zc_cart_rec_t cart;
    CHECK(zc_state_get_cart(zc_fsm_state(f), "n.0", &cart) == 0);
    CHECK_EQ_U64(cart.state, ZC_CART_DRAINING);
    CHECK_EQ_U64(cart.generation, a.generation); /* the reset fences the old assignment */
    char why[200];
    CHECK(zc_state_check(zc_fsm_state(f), why, sizeof why) == 0);
    /* A second REASSIGN for the same (cart, generation) is stale. */
    CHECK_EQ_U64(apply(f, &c).status, ZC_FENCED);
    /* Told once: the mark clears, a repeat changes nothing. */
    zc_cmd_t t = {.type = ZC_CMD_LOST_TOLD, .time_ms = 6000};
    memcpy(t.told.session, sid, 16);
    CHECK_EQ_U64(apply(f, &t).status, ZC_OK);
    CHECK(zc_state_get_session(zc_fsm_state(f), sid, &sess) == 0 && !sess.lost);
    uint64_t digest = zc_state_digest(zc_fsm_state(f));
    CHECK_EQ_U64(apply(f, &t).status, ZC_OK);
    CHECK_EQ_U64(zc_state_digest(zc_fsm_state(f)), digest);
    /* The lost cart returns once its reset is done, then is free again. */
    CHECK_EQ_U64(do_return(f, "n.0", a.generation).status, ZC_OK);
    CHECK(zc_state_get_cart(zc_fsm_state(f), "n.0", &cart) == 0);
    CHECK_EQ_U64(cart.state, ZC_CART_FREE);
    /* No free closed cart: nothing moves. */
    zc_cmd_result_t b = do_assign(f, 2); /* takes n.0 (n.1 is open) */
    CHECK_STR(b.cart, "n.0");
    snprintf(c.reassign.cart, sizeof c.reassign.cart, "n.0");
    c.reassign.generation = b.generation;
    digest = zc_state_digest(zc_fsm_state(f));
    CHECK_EQ_U64(apply(f, &c).status, ZC_NO_FREE_CART);
    CHECK_EQ_U64(zc_state_digest(zc_fsm_state(f)), digest);
    CHECK(zc_state_check(zc_fsm_state(f), why, sizeof why) == 0);
    zc_fsm_destroy(&f);
}

/* zc_state_each_session visits every session once in id order with its
 * state, stops when asked; zc_state_open_readonly reads the same state (same
 * digest, same sessions) of a closed fsm without creating or changing
 * anything, and refuses a directory without a state. */
typedef struct {
    unsigned n, live, closed;     /* sessions seen, by state */
    uint8_t last[ZC_SESSION_LEN]; /* the previous id, to check the order */
    unsigned stop_after;          /* return non-zero after this many (0: never) */
} sess_walk_t;

static int walk_session(const zc_session_rec_t *r, void *arg)
{
    sess_walk_t *w = arg;
    if (w->n > 0)
        CHECK(memcmp(w->last, r->id, ZC_SESSION_LEN) < 0);
    memcpy(w->last, r->id, ZC_SESSION_LEN);
    w->n++;
    w->live += r->state == ZC_SESS_LIVE;
    w->closed += r->state == ZC_SESS_CLOSED;
    if (r->state == ZC_SESS_LIVE)
        CHECK(r->cart[0] != 0 && r->generation > 0);
    return w->stop_after && w->n == w->stop_after;
}

TEST(each_session_and_readonly_open)
{
    char d[256], err[256];
    zc_fsm_t *f = open_fsm(d);
    sess_walk_t w;
    memset(&w, 0, sizeof w);
    CHECK(zc_state_each_session(zc_fsm_state(f), walk_session, &w) == 0);
    CHECK_EQ_U64(w.n, 0);
    do_register(f, "cartA", 4, 0, false);
    for (int k = 4; k >= 1; k--) /* assigned out of id order */
        CHECK_EQ_U64(do_assign(f, k).status, ZC_OK);
    CHECK_EQ_U64(do_release(f, 2).status, ZC_OK);
    memset(&w, 0, sizeof w);
    CHECK(zc_state_each_session(zc_fsm_state(f), walk_session, &w) == 0);
    CHECK_EQ_U64(w.n, 4);
    CHECK_EQ_U64(w.live, 3);
    CHECK_EQ_U64(w.closed, 1);
    memset(&w, 0, sizeof w);
    w.stop_after = 2;
    CHECK(zc_state_each_session(zc_fsm_state(f), walk_session, &w) == 0);
    CHECK_EQ_U64(w.n, 2);
    uint64_t digest = zc_state_digest(zc_fsm_state(f));
    uint64_t applied = zc_fsm_applied_index(f);
    zc_fsm_destroy(&f);

    zc_state_t *ro = zc_state_open_readonly(d, err, sizeof err);
    CHECK(ro != NULL);
    if (ro) {
        CHECK_EQ_U64(zc_state_digest(ro), digest);
        CHECK_EQ_U64(zc_state_meta(ro, "applied_index"), applied);
        memset(&w, 0, sizeof w);
        CHECK(zc_state_each_session(ro, walk_session, &w) == 0);
        CHECK_EQ_U64(w.n, 4);
        CHECK_EQ_U64(w.live, 3);
        char why[256];
        CHECK(zc_state_check(ro, why, sizeof why) == 0);
        CHECK(zc_state_local_set(ro, "k", "v") != 0); /* writes are refused */
        zc_state_close(&ro);
    }
    /* Reopened read-write afterwards, the state is intact. */
    f = zc_fsm_new(d, 0, err, sizeof err);
    CHECK(f != NULL);
    if (f) {
        CHECK_EQ_U64(zc_state_digest(zc_fsm_state(f)), digest);
        zc_fsm_destroy(&f);
    }
    char missing[300];
    snprintf(missing, sizeof missing, "%s/no-such-state", root);
    CHECK(zc_state_open_readonly(missing, err, sizeof err) == NULL);
    CHECK(strstr(err, "no-such-state") != NULL);
    struct stat st;
    CHECK(stat(missing, &st) != 0);                               /* and it created nothing */
    CHECK(zc_state_open_readonly(root, err, sizeof err) == NULL); /* a dir without data.mdb */
    CHECK(strstr(err, "no zcart state") != NULL);
}

static zc_cmd_result_t do_purge(zc_fsm_t *f, uint64_t now_ms, uint64_t retention_ms, const int *ks,
                                unsigned n)
{
    zc_cmd_t c = {.type = ZC_CMD_PURGE, .time_ms = now_ms};
    c.purge.retention_ms = retention_ms;
    c.purge.n = (uint16_t)n;
    for (unsigned i = 0; i < n; i++)
        session_id(c.purge.sessions[i], ks[i]);
    return apply(f, &c);
}

/* PURGE forgets exactly the named sessions that ended at least retention
 * before the command's time; live, unknown and recent ones stay; counters
 * follow; two replicas applying the same log agree; the codec bounds n. */
TEST(purge_forgets_old_ended_sessions_only)
{
    char d1[256], d2[256];
    zc_fsm_t *f = open_fsm(d1), *g = open_fsm(d2);
    zc_fsm_t *both[2] = {f, g};
    for (int i = 0; i < 2; i++) {
        zc_fsm_t *x = both[i];
        do_register(x, "n", 4, 0, false);
        do_assign(x, 1);
        do_assign(x, 2);
        do_assign(x, 3);
        do_release(x, 1); /* ended at 3000 */
        do_release(x, 3);
    }
    CHECK_EQ_U64(counts(f).sessions_live, 1);
    CHECK_EQ_U64(counts(f).sessions_ended, 2);
    int ks[4] = {1, 2, 3, 77};
    /* Too early: 3000 + 1000 > 3999. */
    zc_cmd_result_t r = do_purge(f, 3999, 1000, ks, 4);
    CHECK_EQ_U64(r.status, ZC_OK);
    CHECK_EQ_U64(r.count, 0);
    do_purge(g, 3999, 1000, ks, 4);
    CHECK_EQ_U64(counts(f).sessions_ended, 2);
    /* Old enough: 1 and 3 go, live 2 and unknown 77 stay untouched. */
    r = do_purge(f, 4000, 1000, ks, 4);
    CHECK_EQ_U64(r.count, 2);
    CHECK_EQ_U64(do_purge(g, 4000, 1000, ks, 4).count, 2);
    zc_session_rec_t rec;
    uint8_t id[16];
    session_id(id, 1);
    CHECK(zc_state_get_session(zc_fsm_state(f), id, &rec) == 1);
    session_id(id, 2);
    CHECK(zc_state_get_session(zc_fsm_state(f), id, &rec) == 0);
    CHECK_EQ_U64(rec.state, ZC_SESS_LIVE);
    CHECK_EQ_U64(counts(f).sessions_live, 1);
    CHECK_EQ_U64(counts(f).sessions_ended, 0);
    check_invariants(f);
    CHECK_EQ_U64(zc_state_digest(zc_fsm_state(f)), zc_state_digest(zc_fsm_state(g)));
    /* Repeating it changes nothing but the index. */
    uint64_t before = zc_state_digest(zc_fsm_state(f));
    CHECK_EQ_U64(do_purge(f, 9000, 1000, ks, 4).count, 0);
    CHECK_EQ_U64(zc_state_digest(zc_fsm_state(f)), before);
    /* A purged id is unknown again: an ASSIGN starts a new session. */
    r = do_assign(f, 1);
    CHECK_EQ_U64(r.status, ZC_OK);
    CHECK_EQ_U64(counts(f).sessions_live, 2);
    /* The counters survive a reopen and a snapshot. */
    zc_fsm_destroy(&f);
    char err[256];
    f = zc_fsm_new(d1, 0, err, sizeof err);
    CHECK(f != NULL);
    CHECK_EQ_U64(counts(f).sessions_live, 2);
    /* Codec: at most ZC_PURGE_MAX sessions. */
    zc_cmd_t big = {.type = ZC_CMD_PURGE, .time_ms = 1};
    big.purge.n = ZC_PURGE_MAX + 1;
    zc_wbuf_t w;
    zc_wbuf_init(&w);
    CHECK(zc_cmd_encode(&big, &w) == -1);
    zc_wbuf_clear(&w);
    big.purge.n = ZC_PURGE_MAX;
    zc_wbuf_init(&w);
    CHECK(zc_cmd_encode(&big, &w) == 0);
    zc_cmd_t back;
    CHECK(zc_cmd_decode(&back, w.data, w.len) == 0);
    CHECK_EQ_U64(back.purge.n, ZC_PURGE_MAX);
    zc_wbuf_clear(&w);
    zc_fsm_destroy(&f);
    zc_fsm_destroy(&g);
}

static zc_fsm_t *open_fsm_map(char *dir_out, size_t map)
{
    char err[256];
    snprintf(dir_out, 256, "%s/fsm%d", root, dir_seq++);
    zc_fsm_t *f = zc_fsm_new(dir_out, map, err, sizeof err);
    if (f == NULL)
        fprintf(stderr, "zc_fsm_new: %s\n", err);
    return f;
}

/* One whole session on a cart: ASSIGN (with a limit), RELEASE, RETURN. */
static int session_cycle(zc_fsm_t *f, int k, uint32_t max_records)
{
    zc_cmd_t c = {.type = ZC_CMD_ASSIGN, .time_ms = 2000};
    session_id(c.assign.session, k);
    c.assign.session[1] = (uint8_t)(k >> 8);
    c.assign.max_records = max_records;
    zc_cmd_result_t r = apply(f, &c);
    if (r.status != ZC_OK)
        return r.status;
    zc_cmd_t rel = {.type = ZC_CMD_RELEASE, .time_ms = 3000};
    memcpy(rel.release.session, c.assign.session, ZC_SESSION_LEN);
    rel.release.why = ZC_RELEASE_CLOSE;
    apply(f, &rel);
    CHECK_EQ_U64(do_return(f, r.cart, r.generation).status, ZC_OK);
    return ZC_OK;
}

/* A tiny map: new sessions get STORAGE_FULL at the limit the ASSIGN
 * carries, never a failed apply; an existing session still closes; a purge
 * makes room again; the state stays within its map. */
TEST(storage_limit_refuses_new_sessions_and_never_fails_apply)
{
    char d[256];
    size_t map = 256u << 10;
    zc_fsm_t *f = open_fsm_map(d, map);
    CHECK(f != NULL);
    if (f == NULL)
        return;
    uint32_t limit = zc_state_max_records(map);
    CHECK_EQ_U64(limit, map / ZC_STATE_RECORD_BUDGET);
    do_register(f, "n", 4, 0, false);
    zc_cmd_t keep = {.type = ZC_CMD_ASSIGN, .time_ms = 2000};
    session_id(keep.assign.session, 0xFF);
    keep.assign.session[1] = 0xFF;
    keep.assign.max_records = limit;
    CHECK_EQ_U64(apply(f, &keep).status, ZC_OK); /* a session that stays live */
    int k = 0, st = ZC_OK;
    while (k < 4 * (int)limit && (st = session_cycle(f, k, limit)) == ZC_OK)
        k++;
    CHECK_EQ_U64(st, ZC_STORAGE_FULL);
    CHECK_EQ_U64(zc_state_records(zc_fsm_state(f)), limit);
    CHECK_EQ_U64((uint64_t)k + 1 + 4, limit); /* sessions + the kept one + carts */
    uint64_t used, mapb;
    CHECK(zc_state_storage(zc_fsm_state(f), &used, &mapb) == 0);
    CHECK(used <= mapb / 2);
    /* The live session still closes. */
    zc_cmd_t rel = {.type = ZC_CMD_RELEASE, .time_ms = 3000};
    memcpy(rel.release.session, keep.assign.session, ZC_SESSION_LEN);
    rel.release.why = ZC_RELEASE_CLOSE;
    zc_cmd_result_t r = apply(f, &rel);
    CHECK_EQ_U64(r.status, ZC_OK);
    CHECK_EQ_U64(counts(f).sessions_live, 0);
    /* Purge some, and new sessions are served again. */
    zc_cmd_t pu = {.type = ZC_CMD_PURGE, .time_ms = 100000, .purge.retention_ms = 1000};
    for (int i = 0; i < ZC_PURGE_MAX; i++) {
        session_id(pu.purge.sessions[i], i);
        pu.purge.sessions[i][1] = (uint8_t)(i >> 8);
    }
    pu.purge.n = ZC_PURGE_MAX;
    CHECK_EQ_U64(apply(f, &pu).count, ZC_PURGE_MAX);
    CHECK_EQ_U64(session_cycle(f, 5000, limit), ZC_OK);
    check_invariants(f);
    zc_fsm_destroy(&f);
}

/* A replica whose map is smaller than its leader's limit assumes: apply
 * grows the map instead of failing (raft would stop and the broker
 * crash-loop on the same entry). */
TEST(apply_grows_a_full_map_instead_of_failing)
{
    char d[256];
    size_t map = 128u << 10;
    zc_fsm_t *f = open_fsm_map(d, map);
    CHECK(f != NULL);
    if (f == NULL)
        return;
    do_register(f, "n", 4, 0, false);
    for (int k = 0; k < 3000; k++)
        CHECK_EQ_U64(session_cycle(f, k, 0), ZC_OK); /* apply_at CHECKs the return code */
    uint64_t used, mapb;
    CHECK(zc_state_storage(zc_fsm_state(f), &used, &mapb) == 0);
    CHECK(mapb > map);
    CHECK_EQ_U64(counts(f).sessions_ended, 3000);
    check_invariants(f);
    zc_fsm_destroy(&f);
}

static zc_cmd_result_t do_assign_placed(zc_fsm_t *f, int k, uint8_t placement)
{
    zc_cmd_t c = {.type = ZC_CMD_ASSIGN, .time_ms = 2000};
    session_id(c.assign.session, k);
    c.assign.placement = placement;
    return apply(f, &c);
}

/* Least-loaded: a new session's cart is on the node with the fewest
 * ASSIGNED carts among those with a free cart whose breaker is CLOSED (ties:
 * free-list order); FIFO takes the list's head.  Deterministic: a replica
 * restored from a snapshot, or one whose indexes are rebuilt, decides the
 * same. */
TEST(least_loaded_placement_spreads_sessions_over_nodes)
{
    char d1[256], d2[256], d3[256];
    zc_fsm_t *f = open_fsm(d1), *g = open_fsm(d2), *h = open_fsm(d3);
    zc_fsm_t *all[3] = {f, g, h};
    for (int i = 0; i < 3; i++) {
        do_register(all[i], "a", 3, 0, false);
        do_register(all[i], "b", 3, 0, false);
        do_register(all[i], "c", 2, 0, false);
    }
    /* FIFO on h: the head of the list, all on node a. */
    CHECK_STR(do_assign_placed(h, 1, ZC_PLACE_FIFO).cart, "a.0");
    CHECK_STR(do_assign_placed(h, 2, ZC_PLACE_FIFO).cart, "a.1");
    /* Least-loaded on f: a, b, c, then a again (ties in free-list order). */
    CHECK_STR(do_assign_placed(f, 1, ZC_PLACE_LEAST_LOADED).cart, "a.0");
    CHECK_STR(do_assign_placed(f, 2, ZC_PLACE_LEAST_LOADED).cart, "b.0");
    CHECK_STR(do_assign_placed(f, 3, ZC_PLACE_LEAST_LOADED).cart, "c.0");
    /* c.1's breaker opens: c is skipped even though it is least loaded
     * after a release. */
    zc_cmd_t brk = {.type = ZC_CMD_BREAKER, .time_ms = 2500};
    snprintf(brk.brk.cart, sizeof brk.brk.cart, "c.1");
    brk.brk.ev = ZC_BRK_EV_FORCE_OPEN;
    brk.brk.why = ZC_BRK_WHY_OPERATOR;
    CHECK_EQ_U64(apply(f, &brk).status, ZC_OK);
    do_release(f, 3); /* c: 0 assigned, its only free cart held open (c.0 is draining) */
    CHECK_STR(do_assign_placed(f, 4, ZC_PLACE_LEAST_LOADED).cart, "a.1");
    CHECK_STR(do_assign_placed(f, 5, ZC_PLACE_LEAST_LOADED).cart, "b.1");
    /* A release on b makes b the least loaded. */
    do_release(f, 5);
    CHECK_STR(do_assign_placed(f, 6, ZC_PLACE_LEAST_LOADED).cart, "b.2");
    check_invariants(f);
    /* g restores f's snapshot (indexes rebuilt), h... is FIFO; g and f go on alike. */
    zc_wbuf_t snap;
    zc_wbuf_init(&snap);
    CHECK(zc_fsm_snapshot(f, &snap) == 0);
    CHECK(zc_fsm_restore(g, snap.data, snap.len) == 0);
    zc_wbuf_clear(&snap);
    for (int k = 7; k < 9; k++) {
        zc_cmd_result_t a = do_assign_placed(f, k, ZC_PLACE_LEAST_LOADED);
        zc_cmd_result_t b = do_assign_placed(g, k, ZC_PLACE_LEAST_LOADED);
        CHECK_STR(a.cart, b.cart);
    }
    CHECK_EQ_U64(zc_state_digest(zc_fsm_state(f)), zc_state_digest(zc_fsm_state(g)));
    /* Codec: an unknown placement is refused, encoding and decoding. */
    zc_cmd_t c = {.type = ZC_CMD_ASSIGN, .time_ms = 1};
    c.assign.placement = 2;
    zc_wbuf_t w;
    zc_wbuf_init(&w);
    CHECK(zc_cmd_encode(&c, &w) == -1);
    zc_wbuf_clear(&w);
    c.assign.placement = ZC_PLACE_LEAST_LOADED;
    CHECK(zc_cmd_encode(&c, &w) == 0);
    zc_cmd_t back;
    CHECK(zc_cmd_decode(&back, w.data, w.len) == 0);
    CHECK(w.len > 30 &&
          w.data[30] == ZC_PLACE_LEAST_LOADED); /* type, version, time, session, max */
    w.data[30] = 2;
    CHECK(zc_cmd_decode(&back, w.data, w.len) == -1);
    zc_wbuf_clear(&w);
    zc_fsm_destroy(&f);
    zc_fsm_destroy(&g);
    zc_fsm_destroy(&h);
}

/* Least-loaded placement worked out from every cart record: per node the
 * ASSIGNED count, then the smallest (load, free position) among FREE carts
 * whose breaker is CLOSED.  The reference the indexed walk must match. */
typedef struct {
    char node[8][ZC_NODE_MAX + 1]; /* node names seen */
    uint64_t load[8];              /* their ASSIGNED carts */
    unsigned n;                    /* names used */
    bool found;                    /* best holds a candidate */
    uint64_t best_load;            /* its node's load */
    zc_cart_rec_t best;            /* the expected cart */
} placement_ref_t;

static unsigned ref_node(placement_ref_t *r, const char *node)
{
    for (unsigned i = 0; i < r->n; i++)
        if (strcmp(r->node[i], node) == 0)
            return i;
    snprintf(r->node[r->n], sizeof r->node[0], "%s", node);
    return r->n++;
}

static int ref_count(const zc_cart_rec_t *c, void *arg)
{
    placement_ref_t *r = arg;
    unsigned i = ref_node(r, c->node);
    r->load[i] += c->state == ZC_CART_ASSIGNED;
    return 0;
}

static int ref_pick(const zc_cart_rec_t *c, void *arg)
{
    placement_ref_t *r = arg;
    uint64_t load = r->load[ref_node(r, c->node)];
    if (c->state != ZC_CART_FREE || c->breaker.state != ZC_BRK_CLOSED)
        return 0;
    if (!r->found || load < r->best_load ||
        (load == r->best_load && c->free_pos < r->best.free_pos)) {
        r->found = true;
        r->best_load = load;
        r->best = *c;
    }
    return 0;
}

/* The indexed least-loaded walk picks what a walk of every cart picks, over
 * a random mix of assignments, releases, returns and breakers (seeded), and
 * the index stays exact throughout (zc_state_check). */
/* A session id of its own for each of 65536 k. */
static void wide_session_id(uint8_t s[16], int k)
{
    session_id(s, k);
    s[14] = (uint8_t)(k >> 8);
    s[1] = 0x5E;
}

TEST(least_loaded_index_matches_a_walk_of_every_cart)
{
    char d[256];
    zc_fsm_t *f = open_fsm(d);
    const char *nodes[6] = {"n0", "n1", "n2", "n3", "n4", "n5"};
    for (unsigned i = 0; i < 6; i++)
        do_register(f, nodes[i], 1 + i * 2, 0, false);
    unsigned seed = 42, picks = 0, n_live = 0, refused = 0;
    int live[64];
    for (int step = 0; step < 1500; step++) {
        seed = seed * 1103515245u + 12345u;
        int k = (int)(seed >> 16) % 24, op = (int)(seed >> 8) % 5;
        zc_session_rec_t sr;
        if (op <= 1) {
            placement_ref_t ref;
            memset(&ref, 0, sizeof ref);
            CHECK(zc_state_each_cart(zc_fsm_state(f), ref_count, &ref) == 0);
            CHECK(zc_state_each_cart(zc_fsm_state(f), ref_pick, &ref) == 0);
            zc_cmd_t c = {.type = ZC_CMD_ASSIGN, .time_ms = 2000};
            wide_session_id(c.assign.session, step);
            c.assign.placement = ZC_PLACE_LEAST_LOADED;
            zc_cmd_result_t res = apply(f, &c);
            if (ref.found) {
                CHECK_EQ_U64(res.status, ZC_OK);
                CHECK_STR(res.cart, ref.best.id);
                picks++;
                if (n_live < 64)
                    live[n_live++] = step;
            } else {
                CHECK(res.status != ZC_OK);
                refused++;
            }
        } else if (op == 2) {
            /* end a random live session: release, then return its cart */
            uint8_t sid[16];
            unsigned j = n_live ? (seed >> 4) % n_live : 0;
            if (n_live == 0)
                continue;
            wide_session_id(sid, live[j]);
            live[j] = live[--n_live];
            if (zc_state_get_session(zc_fsm_state(f), sid, &sr) == 0 && sr.state == ZC_SESS_LIVE) {
                zc_cmd_t c = {.type = ZC_CMD_RELEASE, .time_ms = 3000};
                memcpy(c.release.session, sid, 16);
                c.release.why = ZC_RELEASE_CLOSE;
                apply(f, &c);
                if ((seed >> 3) % 8 != 0) /* now and then a cart stays DRAINING a while */
                    do_return(f, sr.cart, sr.generation);
            }
        } else if (op == 3) {
            /* open or close a random cart's breaker by hand */
            char cart[16];
            snprintf(cart, sizeof cart, "%s.%u", nodes[k % 6], (seed >> 5) % (1 + (k % 6) * 2));
            zc_cmd_t brk = {.type = ZC_CMD_BREAKER, .time_ms = 2500};
            snprintf(brk.brk.cart, sizeof brk.brk.cart, "%s", cart);
            brk.brk.ev = (seed >> 2) & 1 ? ZC_BRK_EV_FORCE_OPEN : ZC_BRK_EV_FORCE_CLOSE;
            brk.brk.why = ZC_BRK_WHY_OPERATOR;
            apply(f, &brk);
        } else {
            check_invariants(f);
        }
    }
    CHECK(picks > 200 && refused > 0);
    check_invariants(f);
    zc_fsm_destroy(&f);
}

static zc_cmd_result_t do_unregister(zc_fsm_t *f, const char *node, bool all, unsigned n,
                                     const uint16_t *slots)
{
    zc_cmd_t c = {.type = ZC_CMD_UNREGISTER, .time_ms = 5000};
    snprintf(c.unreg.node, sizeof c.unreg.node, "%s", node);
    c.unreg.all = all;
    c.unreg.n = (uint16_t)n;
    for (unsigned i = 0; i < n; i++)
        c.unreg.slots[i] = slots[i];
    return apply(f, &c);
}

/* UNREGISTER: FREE and DRAINING carts go; an ASSIGNED one's session moves
 * to a free cart (lost) -- never onto a cart the same entry forgets -- or
 * ends as EXPIRED when none is free; replicas stay alike and a stale entry
 * changes nothing. */
TEST(unregister_forgets_carts_and_moves_or_ends_their_sessions)
{
    char d1[256], d2[256];
    zc_fsm_t *f = open_fsm(d1), *g = open_fsm(d2);
    zc_fsm_t *all[2] = {f, g};
    for (int i = 0; i < 2; i++) {
        do_register(all[i], "a", 4, 0, false);
        do_register(all[i], "b", 2, 0, false);
        /* FIFO: sessions 1..4 on a.0..a.3; 2 closes (a.1 DRAINING). */
        for (int k = 1; k <= 4; k++)
            CHECK_EQ_U64(do_assign_placed(all[i], k, ZC_PLACE_FIFO).status, ZC_OK);
        do_release(all[i], 2);
        /* Slots 1..3 of a go (a restarted with one slot): a.1 draining is
         * forgotten, sessions 3 and 4 move to b.0 and b.1. */
        uint16_t sl[3] = {1, 2, 3};
        zc_cmd_result_t r = do_unregister(all[i], "a", false, 3, sl);
        CHECK_EQ_U64(r.status, ZC_OK);
        CHECK_EQ_U64(r.count, 3);
        CHECK_EQ_U64(r.moved, 2);
        CHECK_EQ_U64(r.ended, 0);
        check_invariants(all[i]);
    }
    zc_state_counts_t n = counts(f);
    CHECK_EQ_U64(n.total, 3);
    CHECK_EQ_U64(n.draining, 0);
    CHECK_EQ_U64(n.assigned, 3);
    CHECK_EQ_U64(n.sessions_live, 3);
    zc_session_rec_t s;
    uint8_t id[16];
    session_id(id, 3);
    CHECK(zc_state_get_session(zc_fsm_state(f), id, &s) == 0);
    CHECK(s.state == ZC_SESS_LIVE && s.lost && strncmp(s.cart, "b.", 2) == 0);
    zc_cart_rec_t c;
    CHECK(zc_state_get_cart(zc_fsm_state(f), "a.3", &c) == 1);
    /* A repeated (stale) UNREGISTER changes nothing. */
    uint16_t sl[3] = {1, 2, 3};
    uint64_t before = zc_state_digest(zc_fsm_state(f));
    CHECK_EQ_U64(do_unregister(f, "a", false, 3, sl).count, 0);
    CHECK_EQ_U64(zc_state_digest(zc_fsm_state(f)), before);
    /* All of node b (both carts ASSIGNED, nothing free): the sessions end. */
    zc_cmd_result_t r = do_unregister(f, "b", true, 0, NULL);
    CHECK_EQ_U64(r.count, 2);
    CHECK_EQ_U64(r.moved, 0);
    CHECK_EQ_U64(r.ended, 2);
    CHECK(zc_state_get_session(zc_fsm_state(f), id, &s) == 0);
    CHECK(s.state == ZC_SESS_EXPIRED);
    n = counts(f);
    CHECK_EQ_U64(n.total, 1);
    CHECK_EQ_U64(n.sessions_live, 1);
    CHECK_EQ_U64(n.sessions_ended, 3);
    check_invariants(f);
    /* Node b registers afresh; the ended session's later RELEASE is a no-op. */
    CHECK_EQ_U64(do_register(f, "b", 2, 0, false).count, 2);
    do_release(f, 3);
    check_invariants(f);
    CHECK_EQ_U64(counts(f).free, 2);
    /* Codec: all with slots, or too many slots, is refused. */
    zc_cmd_t bad = {.type = ZC_CMD_UNREGISTER, .time_ms = 1};
    snprintf(bad.unreg.node, sizeof bad.unreg.node, "a");
    bad.unreg.all = true;
    bad.unreg.n = 1;
    zc_wbuf_t w;
    zc_wbuf_init(&w);
    CHECK(zc_cmd_encode(&bad, &w) == -1);
    zc_wbuf_clear(&w);
    bad.unreg.all = false;
    bad.unreg.n = 2;
    bad.unreg.slots[0] = 7;
    bad.unreg.slots[1] = 9;
    zc_wbuf_init(&w);
    CHECK(zc_cmd_encode(&bad, &w) == 0);
    zc_cmd_t back;
    CHECK(zc_cmd_decode(&back, w.data, w.len) == 0);
    CHECK_STR(back.unreg.node, "a");
    CHECK_EQ_U64(back.unreg.n, 2);
    CHECK_EQ_U64(back.unreg.slots[1], 9);
    zc_wbuf_clear(&w);
    zc_fsm_destroy(&f);
    zc_fsm_destroy(&g);
}

/* The off-loop snapshot (fsm.c, "snapshots") through raft's own three
 * callbacks: snapshot on the loop, snapshot_async on a worker thread,
 * snapshot_finalize.  Entries applied after the first call -- before the
 * worker starts and while it runs -- must not show in it: its bytes equal
 * the synchronous serialization at the index raft took it at. */
typedef struct {
    struct raft_fsm *rf;      /* raft's view of the fsm */
    struct raft_buffer *bufs; /* what snapshot_async returned */
    unsigned n;               /* how many */
    int rc;                   /* its return code */
} snap_worker_t;

static void *snap_worker(void *arg)
{
    snap_worker_t *w = arg;
    w->rc = w->rf->snapshot_async(w->rf, &w->bufs, &w->n);
    return NULL;
}

TEST(snapshot_off_loop_sees_its_index)
{
    char d1[256], d2[256];
    zc_fsm_t *f = open_fsm(d1), *g = open_fsm(d2);
    workload(f, 7, 300);
    uint64_t index = zc_fsm_applied_index(f), digest = zc_state_digest(zc_fsm_state(f));
    zc_wbuf_t sync;
    zc_wbuf_init(&sync);
    CHECK(zc_fsm_snapshot(f, &sync) == 0);

    struct raft_fsm rf;
    zc_fsm_raft_async(f, &rf);
    CHECK_EQ_U64(rf.version, 3);
    struct raft_buffer *bufs = NULL;
    unsigned n = 0;
    CHECK(rf.snapshot(&rf, &bufs, &n) == 0);
    /* One at a time: raft treats BUSY as "try again later". */
    struct raft_buffer *b2 = NULL;
    unsigned n2 = 0;
    CHECK(rf.snapshot(&rf, &b2, &n2) == RAFT_BUSY);
    /* The loop goes on applying before the worker starts ... */
    workload(f, 11, 100);
    snap_worker_t w = {.rf = &rf};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, snap_worker, &w) == 0);
    /* ... and while it runs. */
    workload(f, 13, 200);
    pthread_join(th, NULL);
    CHECK(zc_fsm_applied_index(f) > index);
    CHECK(w.rc == 0);
    CHECK_EQ_U64(w.n, 1);
    if (w.rc == 0 && w.n == 1) {
        CHECK_EQ_U64(w.bufs[0].len, sync.len);
        CHECK(w.bufs[0].len == sync.len && memcmp(w.bufs[0].base, sync.data, sync.len) == 0);
        /* A follower restoring it holds the state at that index. */
        CHECK(zc_fsm_restore(g, w.bufs[0].base, w.bufs[0].len) == 0);
        CHECK_EQ_U64(zc_fsm_applied_index(g), index);
        CHECK_EQ_U64(zc_state_digest(zc_fsm_state(g)), digest);
    }
    zc_fsm_snapshot_stats_t st;
    zc_fsm_snapshot_stats(f, &st);
    CHECK(st.in_progress);
    CHECK(rf.snapshot_finalize(&rf, &w.bufs, &w.n) == 0);
    zc_fsm_snapshot_stats(f, &st);
    CHECK(!st.in_progress);
    CHECK_EQ_U64(st.snapshots, 1);
    CHECK_EQ_U64(st.bytes_last, sync.len);
    CHECK_EQ_U64(st.index_last, index);
    /* The next one sees the state as it is now. */
    CHECK(rf.snapshot(&rf, &bufs, &n) == 0);
    CHECK(rf.snapshot_async(&rf, &bufs, &n) == 0);
    zc_wbuf_reset(&sync);
    CHECK(zc_fsm_snapshot(f, &sync) == 0);
    CHECK(n == 1 && bufs[0].len == sync.len && memcmp(bufs[0].base, sync.data, sync.len) == 0);
    CHECK(rf.snapshot_finalize(&rf, &bufs, &n) == 0);
    zc_wbuf_clear(&sync);
    check_invariants(f);
    zc_fsm_destroy(&f);
    zc_fsm_destroy(&g);
}

/* LMDB may not remap (apply growing a full map) while a read transaction
 * is open: a snapshot begun but not yet built is cancelled -- its build
 * fails, raft tries again later -- and the next one works. */
TEST(map_growth_cancels_a_snapshot_not_yet_built)
{
    char d[256], d2[256];
    size_t map = 128u << 10;
    zc_fsm_t *f = open_fsm_map(d, map), *g = open_fsm(d2);
    CHECK(f != NULL);
    if (f == NULL)
        return;
    do_register(f, "n", 4, 0, false);
    struct raft_fsm rf;
    zc_fsm_raft_async(f, &rf);
    struct raft_buffer *bufs = NULL;
    unsigned n = 0;
    CHECK(rf.snapshot(&rf, &bufs, &n) == 0);
    for (int k = 0; k < 3000; k++)
        CHECK_EQ_U64(session_cycle(f, k, 0), ZC_OK);
    uint64_t used, mapb;
    CHECK(zc_state_storage(zc_fsm_state(f), &used, &mapb) == 0);
    CHECK(mapb > map); /* it grew */
    CHECK(rf.snapshot_async(&rf, &bufs, &n) == RAFT_IOERR);
    CHECK(rf.snapshot_finalize(&rf, &bufs, &n) == 0);
    zc_fsm_snapshot_stats_t st;
    zc_fsm_snapshot_stats(f, &st);
    CHECK_EQ_U64(st.failed, 1);
    CHECK_EQ_U64(st.snapshots, 0);
    CHECK(rf.snapshot(&rf, &bufs, &n) == 0);
    CHECK(rf.snapshot_async(&rf, &bufs, &n) == 0);
    CHECK(n == 1 && zc_fsm_restore(g, bufs[0].base, bufs[0].len) == 0);
    CHECK(rf.snapshot_finalize(&rf, &bufs, &n) == 0);
    CHECK_EQ_U64(zc_state_digest(zc_fsm_state(g)), zc_state_digest(zc_fsm_state(f)));
    /* Cancelled and never built (raft's async_work refused, or closing):
     * finalize still frees it, and the next one works. */
    CHECK(rf.snapshot(&rf, &bufs, &n) == 0);
    uint64_t before = mapb;
    for (int k = 3000; k < 9000; k++)
        CHECK_EQ_U64(session_cycle(f, k, 0), ZC_OK);
    CHECK(zc_state_storage(zc_fsm_state(f), &used, &mapb) == 0);
    CHECK(mapb > before); /* it grew again: the snapshot was cancelled */
    CHECK(rf.snapshot_finalize(&rf, &bufs, &n) == 0);
    CHECK(rf.snapshot(&rf, &bufs, &n) == 0);
    CHECK(rf.snapshot_async(&rf, &bufs, &n) == 0);
    CHECK(rf.snapshot_finalize(&rf, &bufs, &n) == 0);
    /* Destroying an fsm with a snapshot begun (raft closing) frees it. */
    CHECK(rf.snapshot(&rf, &bufs, &n) == 0);
    zc_fsm_destroy(&f);
    zc_fsm_destroy(&g);
}

/* --- batching (fsm.c): entries sharing one write transaction --- */

/* The same log, batched 7 at a time, gives the same state and digest as one
 * commit per entry; reads see the open batch (workload checks invariants and
 * looks sessions up through it); a snapshot commits it first. */
TEST(batched_apply_matches_one_commit_per_entry)
{
    char d1[256], d2[256];
    zc_fsm_t *f1 = open_fsm(d1), *f2 = open_fsm(d2);
    zc_fsm_set_batch(f2, 7);
    workload(f1, 11, 400);
    workload(f2, 11, 400);
    CHECK_EQ_U64(zc_fsm_applied_index(f1), zc_fsm_applied_index(f2));
    CHECK_EQ_U64(zc_state_digest(zc_fsm_state(f1)), zc_state_digest(zc_fsm_state(f2)));
    check_invariants(f2);
    zc_fsm_batch_stats_t b1, b2;
    zc_fsm_batch_stats(f1, &b1);
    zc_fsm_batch_stats(f2, &b2);
    CHECK_EQ_U64(b1.commits, zc_fsm_applied_index(f1));
    CHECK_EQ_U64(b1.max_entries, 1);
    CHECK_EQ_U64(b2.max_entries, 7);
    CHECK_EQ_U64(b2.commits, zc_fsm_applied_index(f2) / 7);
    /* An entry in an open batch is visible before any commit. */
    uint64_t before = b2.commits;
    zc_cmd_result_t r = do_assign(f2, 200);
    zc_session_rec_t sr;
    uint8_t id[16];
    session_id(id, 200);
    CHECK(zc_state_get_session(zc_fsm_state(f2), id, &sr) == 0);
    CHECK_STR(sr.cart, r.cart);
    zc_fsm_batch_stats(f2, &b2);
    CHECK(b2.entries < zc_fsm_applied_index(f2)); /* still open */
    do_assign(f1, 200);
    /* A snapshot is of every applied entry: the same bytes either way. */
    zc_wbuf_t s1, s2;
    zc_wbuf_init(&s1);
    zc_wbuf_init(&s2);
    CHECK(zc_fsm_snapshot(f1, &s1) == 0);
    CHECK(zc_fsm_snapshot(f2, &s2) == 0);
    CHECK_EQ_U64(s1.len, s2.len);
    CHECK(s1.len == s2.len && memcmp(s1.data, s2.data, s1.len) == 0);
    zc_fsm_batch_stats(f2, &b2);
    CHECK(b2.commits > before);
    CHECK_EQ_U64(b2.entries, zc_fsm_applied_index(f2)); /* all committed now */
    zc_wbuf_clear(&s1);
    zc_wbuf_clear(&s2);
    zc_fsm_destroy(&f1);
    zc_fsm_destroy(&f2);
}

/* The log of batch_crash_* below: register 4 carts, then sessions in and out. */
static void crash_log(zc_wbuf_t *entries, size_t *ends, int n)
{
    for (int i = 0; i < n; i++) {
        zc_cmd_slot_t slots[4];
        zc_cmd_t c = {.time_ms = 1000 + (uint64_t)i};
        if (i == 0) {
            c.type = ZC_CMD_REGISTER;
            snprintf(c.reg.node, sizeof c.reg.node, "n");
            for (unsigned k = 0; k < 4; k++)
                slots[k] = (zc_cmd_slot_t){.slot = (uint16_t)k};
            c.reg.n = 4;
            c.reg.slots = slots;
        } else if (i % 2 == 1) {
            c.type = ZC_CMD_ASSIGN;
            session_id(c.assign.session, i);
        } else {
            c.type = ZC_CMD_RELEASE;
            session_id(c.release.session, i - 1);
            c.release.why = ZC_RELEASE_CLOSE;
        }
        CHECK(zc_cmd_encode(&c, entries) == 0);
        ends[i] = entries->len;
    }
}

/* A replica killed with a batch open loses that batch and nothing else: on
 * reopening, the state is at the last commit, and raft's replay of the log
 * (entries at or below it skipped) gives the state of a replica that never
 * crashed.  The crash is a child process's _exit. */
TEST(a_crash_loses_only_the_open_batch)
{
    enum { N = 30, FLUSHED = 17 };
    zc_wbuf_t log;
    size_t ends[N];
    zc_wbuf_init(&log);
    crash_log(&log, ends, N);
    char d[256], dref[256];
    zc_fsm_t *ref = open_fsm(dref);
    for (int i = 0; i < N; i++) {
        zc_cmd_result_t r;
        size_t from = i ? ends[i - 1] : 0;
        CHECK(zc_fsm_apply(ref, (uint64_t)i + 1, log.data + from, ends[i] - from, &r) == 0);
    }
    snprintf(d, sizeof d, "%s/fsm%d", root, dir_seq++);
    pid_t pid = fork();
    if (pid == 0) {
        char err[256];
        zc_fsm_t *f = zc_fsm_new(d, 0, err, sizeof err);
        if (f == NULL)
            _exit(2);
        zc_fsm_set_batch(f, 64);
        for (int i = 0; i < N; i++) {
            zc_cmd_result_t r;
            size_t from = i ? ends[i - 1] : 0;
            if (zc_fsm_apply(f, (uint64_t)i + 1, log.data + from, ends[i] - from, &r) != 0)
                _exit(3);
            if (i + 1 == FLUSHED && zc_fsm_flush(f) != 0)
                _exit(4);
        }
        _exit(0); /* entries FLUSHED+1..N applied, never committed */
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char err[256];
    zc_fsm_t *f = zc_fsm_new(d, 0, err, sizeof err);
    CHECK(f != NULL);
    if (f == NULL)
        return;
    CHECK_EQ_U64(zc_fsm_applied_index(f), FLUSHED);
    zc_fsm_set_batch(f, 64);
    unsigned replayed = 0;
    for (int i = 0; i < N; i++) {
        zc_cmd_result_t r;
        size_t from = i ? ends[i - 1] : 0;
        CHECK(zc_fsm_apply(f, (uint64_t)i + 1, log.data + from, ends[i] - from, &r) == 0);
        replayed += r.replayed;
    }
    CHECK_EQ_U64(replayed, FLUSHED);
    CHECK(zc_fsm_flush(f) == 0);
    CHECK_EQ_U64(zc_state_digest(zc_fsm_state(f)), zc_state_digest(zc_fsm_state(ref)));
    check_invariants(f);
    zc_fsm_destroy(&f);
    zc_fsm_destroy(&ref);
    zc_wbuf_clear(&log);
}

/* A map too small for the batch: a write fails mid-batch, the batch's
 * earlier entries are committed again on their own, the map grows, and
 * nothing is lost -- the same state as a roomy replica's. */
TEST(batched_apply_grows_a_full_map)
{
    char d[256], dref[256];
    zc_fsm_t *f = open_fsm_map(d, 128u << 10), *ref = open_fsm(dref);
    CHECK(f != NULL);
    if (f == NULL)
        return;
    zc_fsm_set_batch(f, 64);
    do_register(f, "n", 4, 0, false);
    do_register(ref, "n", 4, 0, false);
    for (int k = 0; k < 3000; k++) {
        CHECK_EQ_U64(session_cycle(f, k, 0), ZC_OK);
        CHECK_EQ_U64(session_cycle(ref, k, 0), ZC_OK);
    }
    CHECK(zc_fsm_flush(f) == 0);
    uint64_t used, mapb;
    CHECK(zc_state_storage(zc_fsm_state(f), &used, &mapb) == 0);
    CHECK(mapb > (128u << 10));
    zc_fsm_batch_stats_t b;
    zc_fsm_batch_stats(f, &b);
    CHECK(b.redone >= 1);
    CHECK_EQ_U64(b.entries, zc_fsm_applied_index(f));
    CHECK_EQ_U64(zc_state_digest(zc_fsm_state(f)), zc_state_digest(zc_fsm_state(ref)));
    check_invariants(f);
    zc_fsm_destroy(&f);
    zc_fsm_destroy(&ref);
}

int main(void)
{
    snprintf(root, sizeof root, "/tmp/zcart-test-fsm.%d", (int)getpid());
    if (mkdir(root, 0755) != 0)
        return 2;
    RUN(register_fills_free_list_in_order);
    RUN(assign_is_sticky_and_generations_grow);
    RUN(release_drains_then_return_frees_at_tail);
    RUN(closed_session_stays_closed);
    RUN(known_free_cart_newer_on_the_node_drains);
    RUN(dirty_registration_drains_and_raises_generation);
    RUN(replayed_entries_are_skipped);
    RUN(malformed_entry_advances_index_without_change);
    RUN(same_log_same_digest);
    RUN(snapshot_restore_roundtrip);
    RUN(command_codec_roundtrip_and_rejects_junk);
    RUN(command_encoding_is_8_byte_aligned_with_zero_padding_only);
    RUN(invariant_check_catches_corruption);
    RUN(member_directory_replicates_and_snapshots);
    RUN(breaker_events_replicate_and_gate_assignment);
    RUN(lost_cart_reassigns_its_session_and_drains);
    RUN(each_session_and_readonly_open);
    RUN(purge_forgets_old_ended_sessions_only);
    RUN(storage_limit_refuses_new_sessions_and_never_fails_apply);
    RUN(apply_grows_a_full_map_instead_of_failing);
    RUN(least_loaded_placement_spreads_sessions_over_nodes);
    RUN(least_loaded_index_matches_a_walk_of_every_cart);
    RUN(unregister_forgets_carts_and_moves_or_ends_their_sessions);
    RUN(snapshot_off_loop_sees_its_index);
    RUN(map_growth_cancels_a_snapshot_not_yet_built);
    RUN(batched_apply_matches_one_commit_per_entry);
    RUN(a_crash_loses_only_the_open_batch);
    RUN(batched_apply_grows_a_full_map);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", root);
    return unit_report();
}
