/* command: the replicated commands, declared once.
 *
 * Every change to the replicated state is one of these commands, proposed by
 * the leader, committed through Raft and applied by every replica in log
 * order (fsm.c has the single apply switch).  A command carries everything
 * its apply needs -- including the leader's wall clock at proposal time --
 * so apply is a pure function of (state, command): replicas never read their
 * own clocks or anything else outside the log while applying.
 *
 * Encoding (all integers big-endian, strings length-prefixed as in lib/buf):
 *
 *     u8 type, u8 version (1), u64 time_ms, then the type's fields:
 *
 *     REGISTER  str node, u16 n, n * (u16 slot, u64 generation, u8 dirty)
 *     ASSIGN    16 session, u32 max_records (the leader's storage limit,
 *               state.h; 0 = none), u8 placement (ZC_PLACE_*); an entry
 *               from before these fields decodes with 0s from its zero
 *               padding: no limit, FIFO
 *     RELEASE   16 session, u8 why (1 close, 2 lease expired)
 *     RETURN    str cart, u64 generation
 *     MEMBER_SET u64 id, str raft_address, str client_endpoint, str cart_endpoint
 *     MEMBER_DEL u64 id
 *     BREAKER   str cart, u8 event, u8 why, u16 max_probes (time_ms is the
 *               event's time: replication/breaker.h)
 *     REASSIGN  str cart, u64 generation (the lost cart and the assignment
 *               that loses it)
 *     LOST_TOLD 16 session
 *     PURGE     u64 retention_ms, u16 n, n * 16 session (n <= ZC_PURGE_MAX):
 *               forget those sessions that ended at least retention_ms
 *               before time_ms; any other named session is left alone
 *     UNREGISTER str node, u8 all, u16 n, n * u16 slot (n <= ZC_REGISTER_MAX):
 *               forget the node's carts of those slots (all = 1: every cart
 *               of the node, n = 0)
 *
 * then zero octets up to a multiple of ZC_CMD_ALIGN (8): raft's libuv log
 * requires every entry's length to be a multiple of 8 (an assertion that
 * Debian's release build compiles out; other lengths get a wrong batch
 * checksum, and the entries after them vanish when the log is reloaded).
 * Decode accepts exactly that padding and nothing else after the fields.
 */
#ifndef ZC_REPLICATION_COMMAND_H
#define ZC_REPLICATION_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "proto/msg.h"
#include "replication/state.h"

typedef enum {
    ZC_CMD_REGISTER = 1, /* a cart node announces slots the registry lacks */
    ZC_CMD_ASSIGN = 2,   /* give a session the first free cart */
    ZC_CMD_RELEASE = 3,  /* end a session: its cart starts draining */
    ZC_CMD_RETURN = 4,   /* a drained (emptied) cart rejoins the free list */
    ZC_CMD_MEMBER_SET = 5, /* record where a replica listens */
    ZC_CMD_MEMBER_DEL = 6, /* forget a removed replica */
    ZC_CMD_BREAKER = 7,    /* move a cart's breaker (automatic or operator event) */
    ZC_CMD_REASSIGN = 8,   /* a lost cart's session moves to a fresh cart */
    ZC_CMD_LOST_TOLD = 9,  /* the session's client got its CART_LOST */
    ZC_CMD_PURGE = 10,     /* forget sessions that ended long enough ago */
    ZC_CMD_UNREGISTER = 11, /* forget carts of slots a node no longer has (or the node) */
} zc_cmd_type_t;

#define ZC_CMD_VERSION 1
#define ZC_CMD_ALIGN 8 /* encoded length is a multiple of this */
#define ZC_REGISTER_MAX ZC_SLOTS_MAX
#define ZC_PURGE_MAX 64 /* sessions one PURGE may name: a bounded apply */

enum { ZC_RELEASE_CLOSE = 1, ZC_RELEASE_EXPIRED = 2 };
/* Which free cart an ASSIGN takes. */
enum {
    ZC_PLACE_FIFO = 0,         /* the free list's head (with a CLOSED breaker) */
    ZC_PLACE_LEAST_LOADED = 1, /* on the node with the fewest ASSIGNED carts */
};

/* One slot in a REGISTER. */
typedef struct {
    uint16_t slot;       /* slot number on the node */
    uint64_t generation; /* highest generation the slot has seen (owner or reset) */
    bool dirty;          /* the slot reports an owner or items: drain before use */
} zc_cmd_slot_t;

typedef struct {
    uint8_t type;     /* zc_cmd_type_t */
    uint64_t time_ms; /* leader wall clock when proposed */
    union {
        struct {
            char node[ZC_NODE_MAX + 1]; /* cart node name */
            uint16_t n;                 /* entries in slots */
            zc_cmd_slot_t *slots;       /* borrowed on encode, owned after decode */
        } reg;
        struct {
            uint8_t session[ZC_SESSION_LEN]; /* session to assign */
            uint32_t max_records;            /* refuse a new session at this many
                                                records (zc_state_records); 0 none */
            uint8_t placement;               /* ZC_PLACE_* */
        } assign;
        struct {
            uint8_t session[ZC_SESSION_LEN]; /* session to end */
            uint8_t why;                     /* ZC_RELEASE_* */
        } release;
        struct {
            char cart[ZC_CART_MAX + 1]; /* cart id that finished draining */
            uint64_t generation;        /* generation it drained */
        } ret;
        zc_member_t member;             /* MEMBER_SET; MEMBER_DEL uses only id */
        struct {
            char cart[ZC_CART_MAX + 1]; /* the lost cart */
            uint64_t generation;        /* the assignment it loses */
        } reassign;
        struct {
            uint8_t session[ZC_SESSION_LEN]; /* the session told */
        } told;
        struct {
            char node[ZC_NODE_MAX + 1]; /* cart node name */
            bool all;                   /* every cart of the node (slots ignored) */
            uint16_t n;                 /* entries in slots */
            uint16_t slots[ZC_REGISTER_MAX]; /* slot numbers to forget */
        } unreg;
        struct {
            uint64_t retention_ms;                       /* ended at least this long ago */
            uint16_t n;                                  /* entries in sessions */
            uint8_t sessions[ZC_PURGE_MAX][ZC_SESSION_LEN]; /* candidates, leader-chosen */
        } purge;
        struct {
            char cart[ZC_CART_MAX + 1]; /* the cart whose breaker moves */
            uint8_t ev;                 /* zc_brk_event_t */
            uint8_t why;                /* zc_brk_why_t */
            uint16_t max_probes;        /* PROBE: the limit */
        } brk;
    };
} zc_cmd_t;

/* The outcome of applying one command, handed to the proposer. */
typedef struct {
    uint8_t status;             /* ZC_OK or a KO reason (zc_status_t) */
    char cart[ZC_CART_MAX + 1]; /* ASSIGN/RELEASE: the cart, RETURN: echo */
    uint64_t generation;        /* ASSIGN/RELEASE: the assignment's generation */
    uint32_t count;             /* REGISTER: carts added; PURGE: sessions forgotten;
                                   UNREGISTER: carts forgotten */
    uint32_t moved;             /* UNREGISTER: sessions moved to another cart (CART_LOST);
                                   REGISTER: known FREE carts sent to drain (newer on the node) */
    uint32_t ended;             /* UNREGISTER: sessions ended (no free cart to move to) */
    zc_breaker_t breaker;       /* BREAKER: the record after the event (or as it
                                   stayed, when refused: status BAD_REQUEST) */
    bool replayed;              /* entry was already in the state (restart) */
} zc_cmd_result_t;

/* Append the encoding of c to w; -1 if c is invalid (unknown type, too many
 * slots). */
int zc_cmd_encode(const zc_cmd_t *c, zc_wbuf_t *w);
/* Decode; on success a REGISTER's slots are heap-allocated: zc_cmd_clear. */
int zc_cmd_decode(zc_cmd_t *c, const void *data, size_t len);
void zc_cmd_clear(zc_cmd_t *c);
const char *zc_cmd_name(int type);

#endif
