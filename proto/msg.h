/* msg: every zcart wire message, encoded and decoded from one table.
 *
 * A message is one ZeroMQ frame (after any ROUTER routing-id frame):
 *
 *     "ZC" %x01 id field*
 *
 * two signature octets, the protocol version, a message id, then the fields
 * that message declares, in order, with no padding and nothing after them.
 * The table ZC_MSG_TABLE below is the whole protocol: docs/protocol.md shows
 * the same table as ABNF, and a change here is a change there.
 *
 * zc_msg_t is one flat struct holding every field any message can carry
 * (czmq/zproto style): set `id` and the fields that message uses, encode;
 * decode fills only the fields of the id it read.  Lists are heap-allocated
 * and released by zc_msg_reset. */
#ifndef ZC_PROTO_MSG_H
#define ZC_PROTO_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

#define ZC_SIG0 0x5A /* 'Z' */
#define ZC_SIG1 0x43 /* 'C' */
#define ZC_VERSION 1

/* Field limits (bytes, not counting the length octet). */
#define ZC_PRODUCT_MAX 64
#define ZC_CART_MAX 64
#define ZC_NODE_MAX 32
/* A cart node's routing id toward a replica: NAME "/" 16 hex digits, fresh
 * and random per connection (docs/protocol.md section 1). */
#define ZC_NODE_NONCE_HEX 16
#define ZC_NODE_RID_MAX (ZC_NODE_MAX + 1 + ZC_NODE_NONCE_HEX)
#define ZC_DETAIL_MAX 255
#define ZC_COMMAND_MAX 32
#define ZC_KEY_MAX 64
#define ZC_VALUE_MAX 255
#define ZC_ITEMS_MAX 256  /* distinct products in one cart */
#define ZC_QTY_MAX 1000000 /* units one add or remove may ask for */
#define ZC_QTY_MAX_TEXT "1000000" /* the same, for messages */
#define ZC_SLOTS_MAX 16384 /* cart slots hosted by one cart node */
#define ZC_PROPS_MAX 512
#define ZC_SESSION_LEN 16

/* Cart operations (field `op`). */
/* keepalive renews the session's lease at the broker; it never reaches a cart. */
enum { ZC_OP_ADD = 1, ZC_OP_REMOVE = 2, ZC_OP_LIST = 3, ZC_OP_CLOSE = 4, ZC_OP_KEEPALIVE = 5 };
/* "add", "remove", "list", "close", or NULL. */
const char *zc_op_name(int op);

/* One product line of a cart. */
typedef struct {
    char product[ZC_PRODUCT_MAX + 1]; /* product id */
    uint32_t qty;                     /* units, > 0 */
} zc_item_t;

/* What a cart node reports about one of its slots (HELLO). */
typedef struct {
    uint16_t slot;                      /* slot number on the node, 0-based */
    uint8_t session[ZC_SESSION_LEN];    /* current owner, all zero if none */
    uint64_t generation;                /* owner's generation, 0 if none */
    uint64_t reset_generation;          /* highest generation reset so far */
    uint32_t n_items;                   /* distinct products held */
} zc_slotinfo_t;

/* One key/value pair (STATUS_REPLY, ADMIN, ADMIN_REPLY). */
typedef struct {
    char key[ZC_KEY_MAX + 1];     /* key, see docs/protocol.md for the keys */
    char value[ZC_VALUE_MAX + 1]; /* value as text */
} zc_prop_t;

/* X(id, NAME, fields...) -- the field lists are the wire order. */
#define ZC_MSG_TABLE(X)                                                                    \
    /* client <-> broker */                                                                \
    X(1, REQUEST, F_SESSION, F_SEQ, F_OP, F_DEADLINE, F_PRODUCT, F_QTY)                    \
    X(2, REPLY, F_SESSION, F_SEQ, F_STATUS, F_CART, F_GENERATION, F_DETAIL, F_ITEMS,      \
      F_REPLICA, F_TERM)                                                                   \
    X(3, STATUS, F_CORR)                                                                   \
    X(4, STATUS_REPLY, F_CORR, F_PROPS)                                                    \
    X(5, ADMIN, F_CORR, F_COMMAND, F_PROPS)                                                \
    X(6, ADMIN_REPLY, F_CORR, F_STATUS, F_DETAIL, F_PROPS)                                 \
    /* cart node <-> broker */                                                             \
    X(16, HELLO, F_NODE, F_SLOTS)                                                          \
    X(17, CART_REQUEST, F_CORR, F_SLOT, F_SESSION, F_GENERATION, F_SEQ, F_OP, F_DEADLINE,  \
      F_PRODUCT, F_QTY)                                                                    \
    X(18, CART_REPLY, F_CORR, F_SLOT, F_SESSION, F_SEQ, F_STATUS, F_DETAIL, F_ITEMS)       \
    X(19, RESET, F_SLOT, F_GENERATION)                                                     \
    X(20, RESET_DONE, F_NODE, F_SLOT, F_GENERATION)                                        \
    X(21, HEARTBEAT, F_NODE, F_REPLICA, F_TERM)                                            \
    /* cart node <-> stock */                                                              \
    X(32, CHECK, F_CORR, F_PRODUCT, F_QTY, F_DEADLINE)                                     \
    X(33, CHECK_REPLY, F_CORR, F_STATUS, F_QTY)

typedef enum {
#define ZC_MSG_ENUM(id, name, ...) ZC_MSG_##name = id,
    ZC_MSG_TABLE(ZC_MSG_ENUM)
#undef ZC_MSG_ENUM
} zc_msg_id_t;

/* The union of all fields.  Comments give the wire type. */
typedef struct {
    uint8_t id;                       /* message id, ZC_MSG_* */
    uint64_t corr;                    /* u64: correlation id chosen by the asker */
    uint8_t session[ZC_SESSION_LEN];  /* 16 octets: session id, never all-zero in requests */
    uint64_t seq;                     /* u64: per-session request sequence, from 1 */
    uint8_t op;                       /* u8: ZC_OP_* */
    uint8_t status;                   /* u8: zc_status_t */
    uint64_t deadline;                /* u64: ms since the Unix epoch; 0 = none */
    char product[ZC_PRODUCT_MAX + 1]; /* str: product id */
    uint32_t qty;                     /* u32: units (CHECK_REPLY: units available) */
    char cart[ZC_CART_MAX + 1];       /* str: cart id "<node>.<slot>" */
    uint64_t generation;              /* u64: assignment generation */
    char detail[ZC_DETAIL_MAX + 1];   /* str: human-readable detail, may be empty */
    char node[ZC_NODE_MAX + 1];       /* str: cart node name */
    uint16_t slot;                    /* u16: slot number on a cart node */
    char command[ZC_COMMAND_MAX + 1]; /* str: admin command name */
    zc_item_t *items;                 /* list: cart contents (owned) */
    uint16_t n_items;                 /* entries in items */
    zc_slotinfo_t *slots;             /* list: slot reports (owned) */
    uint16_t n_slots;                 /* entries in slots */
    uint16_t cap_slots;               /* zc_msg_add_slot: entries allocated in slots */
    zc_prop_t *props;                 /* list: key/value pairs (owned) */
    uint16_t n_props;                 /* entries in props */
    uint64_t replica;                 /* u64: REPLY: id of the replica that decided it */
    uint64_t term;                    /* u64: REPLY: the raft term in which that replica,
                                         as a ready leader, decided it; 0: not decided
                                         by a ready leader (NOT_LEADER, BAD_REQUEST) */
} zc_msg_t;

/* Zero every field and set the id. */
void zc_msg_init(zc_msg_t *m, uint8_t id);
/* Free the lists and zero every field (id kept). */
void zc_msg_reset(zc_msg_t *m);
/* "REQUEST" etc., or NULL for an unknown id. */
const char *zc_msg_name(int id);

/* Append the encoding of m to out.  -1 if a list is over its limit or the
 * id is unknown (out is then unchanged in meaning; discard it). */
int zc_msg_encode(const zc_msg_t *m, zc_wbuf_t *out);
/* Decode one frame into m (which is reset first).  -1 on any structural error
 * with *why set to a static description; m is then reset. */
int zc_msg_decode(zc_msg_t *m, const void *data, size_t len, const char **why);

/* List builders: append one element, growing the list.  -1 at the limit or on
 * allocation failure. */
int zc_msg_add_item(zc_msg_t *m, const char *product, uint32_t qty);
int zc_msg_add_slot(zc_msg_t *m, const zc_slotinfo_t *s);
int zc_msg_add_prop(zc_msg_t *m, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Value of a prop, or NULL. */
const char *zc_msg_prop(const zc_msg_t *m, const char *key);

/* The session and seq of a frame that starts like a REQUEST (header, then
 * at least those two fields), whether or not the rest decodes: a broker
 * echoes them in its BAD_REQUEST so the client can match the answer.
 * False if the frame is not a REQUEST or ends before seq. */
bool zc_msg_peek_request(const void *data, size_t len, uint8_t session[ZC_SESSION_LEN],
                         uint64_t *seq);

/* Semantic checks shared by every receiver. */
/* A cart node name: 1..32 octets of [A-Za-z0-9_-] (no '.', which separates
 * node and slot in a cart id). */
bool zc_node_name_valid(const char *name);
/* A backup name (ADMIN backup, prop "name"): 1..64 octets of
 * [A-Za-z0-9_.-], not starting with '.' (one directory, no path). */
bool zc_backup_name_valid(const char *name);
/* A product id: 1..64 octets of %x21-7E except ',' (catalog separator). */
bool zc_product_valid(const char *p);
/* True if all 16 octets are zero. */
bool zc_session_is_zero(const uint8_t s[ZC_SESSION_LEN]);
/* 32 lowercase hex digits + NUL. */
void zc_session_hex(const uint8_t s[ZC_SESSION_LEN], char out[2 * ZC_SESSION_LEN + 1]);
/* Parse 32 hex digits; false on anything else. */
bool zc_session_parse(const char *hex, uint8_t out[ZC_SESSION_LEN]);
/* 128 random bits from the kernel; never all-zero. */
void zc_session_random(uint8_t out[ZC_SESSION_LEN]);

#endif
