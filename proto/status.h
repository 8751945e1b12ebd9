/* status: the closed set of answer codes, one table.
 *
 * Every request in zcart is answered OK or KO with exactly one of these
 * reasons; docs/protocol.md lists the same table.  Codes are wire values and
 * never change meaning; new ones are appended. */
#ifndef ZC_PROTO_STATUS_H
#define ZC_PROTO_STATUS_H

/* X(code, NAME, meaning) */
#define ZC_STATUS_TABLE(X)                                                          \
    X(0, OK, "success")                                                             \
    X(1, BAD_REQUEST, "the request is malformed or its arguments are invalid")      \
    X(2, NOT_LEADER, "this replica is not the leader; detail names the leader")     \
    X(3, NO_FREE_CART, "no free cart with a closed breaker is available")           \
    X(4, OUT_OF_STOCK, "the stock service has fewer units than the cart would hold")\
    X(5, UNKNOWN_PRODUCT, "the stock service does not know the product")            \
    X(6, STOCK_TIMEOUT, "the stock check did not answer in time")                   \
    X(7, STOCK_UNAVAILABLE, "no stock service is reachable (breaker open)")         \
    X(8, CART_UNAVAILABLE, "the session's cart does not answer or its breaker is open") \
    X(9, SESSION_EXPIRED, "the session's lease expired; its cart was freed")        \
    X(10, EXPIRED, "the request was picked up after its deadline; not applied")     \
    X(11, NOT_IN_CART, "remove asked for more units than the cart holds")           \
    X(12, SESSION_CLOSED, "the session was closed; open a new one")                 \
    X(13, CART_LOST, "the session's cart was lost; the session moved to a new, empty cart") \
    X(14, FENCED, "the cart refused a stale (session, generation)")                 \
    X(15, INTERNAL, "a local error in a daemon (storage); detail says which")       \
    X(16, UNAVAILABLE, "the cluster cannot serve right now (no quorum, shutting down)") \
    X(17, STORAGE_FULL, "storage is near its limit: no new session, or no add on that cart node") \
    X(18, BUSY, "the leader is at its admission limit; not applied, retry after the hint") \
    X(19, FORBIDDEN, "the caller's key may not do this (an admin command without an admin key)")

typedef enum {
#define ZC_STATUS_ENUM(code, name, text) ZC_##name = code,
    ZC_STATUS_TABLE(ZC_STATUS_ENUM)
#undef ZC_STATUS_ENUM
    ZC_STATUS_COUNT
} zc_status_t;

/* "OUT_OF_STOCK" for 4; "UNKNOWN" for codes outside the table. */
const char *zc_status_name(int code);
/* One-line meaning of a code. */
const char *zc_status_text(int code);
/* Code for a name, or -1. */
int zc_status_parse(const char *name);

#endif
