/* breaker: a cart's circuit breaker, as a checked transition table.
 *
 * The breaker keeps requests away from a cart that stopped answering:
 *
 *            TRIP                    WAIT_OVER
 *   CLOSED ---------> OPEN ------------------------> HALF_OPEN
 *     ^                ^  <------------------------     |
 *     |                |        PROBE_FAIL              |
 *     +----------------+--------------------------------+
 *                          PROBE_OK
 *
 * TRIP: missed heartbeats, or K consecutive failed or timed-out operations.
 * WAIT_OVER: the open wait elapsed; it doubles with every trip that follows
 * another without a CLOSED in between (capped).  PROBE: HALF_OPEN admits a
 * bounded number of probe requests, counted in the record (so cluster-wide,
 * once the record is replicated); PROBE_OK closes, PROBE_FAIL reopens.
 *
 * An operator can force the breaker open or closed; while forced, the
 * automatic events are refused, and AUTO hands it back (state kept).
 *
 * Every move goes through zc_breaker_apply, which looks the (state, event)
 * pair up in one table and refuses what the table does not allow: a stale
 * event (a second TRIP of an OPEN breaker proposed by a deposed leader, a
 * PROBE_OK after the breaker reopened) changes nothing.  Time is an input,
 * never read here, so every replica applying the same events computes the
 * same record.  Domain-free of raft and LMDB: fsm.c stores the record, the
 * broker decides which events to propose. */
#ifndef ZC_REPLICATION_BREAKER_H
#define ZC_REPLICATION_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    ZC_BRK_CLOSED = 0,    /* requests pass */
    ZC_BRK_OPEN = 1,      /* requests fail fast (CART_UNAVAILABLE) */
    ZC_BRK_HALF_OPEN = 2, /* a bounded number of probes pass */
} zc_brk_state_t;
#define ZC_BRK_N_STATES 3

typedef enum {
    ZC_BRK_AUTO = 0,          /* driven by the automatic events */
    ZC_BRK_FORCED_OPEN = 1,   /* held OPEN by an operator */
    ZC_BRK_FORCED_CLOSED = 2, /* held CLOSED by an operator */
} zc_brk_mode_t;

typedef enum {
    ZC_BRK_EV_TRIP = 1,        /* failures or missed heartbeats */
    ZC_BRK_EV_WAIT_OVER = 2,   /* the open wait elapsed */
    ZC_BRK_EV_PROBE = 3,       /* one probe admitted in HALF_OPEN */
    ZC_BRK_EV_PROBE_OK = 4,    /* a probe (or the cart's return) succeeded */
    ZC_BRK_EV_PROBE_FAIL = 5,  /* a probe failed */
    ZC_BRK_EV_FORCE_OPEN = 6,  /* operator: open and hold */
    ZC_BRK_EV_FORCE_CLOSE = 7, /* operator: close and hold */
    ZC_BRK_EV_AUTO = 8,        /* operator: back to automatic */
} zc_brk_event_t;
#define ZC_BRK_N_EVENTS 9 /* events are 1..8 */

/* Why a breaker opened (kept for status). */
typedef enum {
    ZC_BRK_WHY_NONE = 0,
    ZC_BRK_WHY_HEARTBEAT = 1, /* the node missed its heartbeats */
    ZC_BRK_WHY_FAILURES = 2,  /* consecutive failed or timed-out operations */
    ZC_BRK_WHY_PROBE = 3,     /* a half-open probe failed */
    ZC_BRK_WHY_OPERATOR = 4,  /* forced by an operator */
} zc_brk_why_t;

/* A cart's breaker record (replicated with the cart). */
typedef struct {
    uint8_t state;     /* zc_brk_state_t */
    uint8_t mode;      /* zc_brk_mode_t */
    uint8_t why;       /* zc_brk_why_t of the last opening */
    uint16_t trips;    /* trips since the last CLOSED: the open wait grows with it */
    uint16_t probes;   /* probes admitted in this HALF_OPEN */
    uint64_t since_ms; /* leader time of the last state change */
} zc_breaker_t;

/* Tunables (broker flags); the same on every replica is not required:
 * only the leader decides when to propose WAIT_OVER or PROBE. */
typedef struct {
    uint32_t open_wait_ms;     /* first open wait */
    uint32_t open_wait_max_ms; /* cap of the doubling wait */
    uint16_t max_probes;       /* probes a HALF_OPEN breaker admits */
} zc_brk_policy_t;

/* A closed, automatic breaker. */
void zc_breaker_init(zc_breaker_t *b);
/* One event as it is proposed and replicated: everything apply needs. */
typedef struct {
    uint8_t ev;         /* zc_brk_event_t */
    uint8_t why;        /* zc_brk_why_t, for TRIP and PROBE_FAIL (NONE: "probe") */
    uint16_t max_probes; /* PROBE: the leader's limit (travels with the event, so
                           every replica enforces the same one) */
    uint64_t now_ms;    /* leader time at proposal */
} zc_brk_input_t;

/* Apply one event: 0 with *b moved if the table allows it, -1 with *b
 * unchanged if not (stale, refused while forced, or over the probe limit). */
int zc_breaker_apply(zc_breaker_t *b, const zc_brk_input_t *in);
/* Would zc_breaker_apply accept it now? */
bool zc_breaker_allows(const zc_breaker_t *b, const zc_brk_input_t *in);
/* The open wait for b's trip count under p. */
uint64_t zc_breaker_open_wait_ms(const zc_breaker_t *b, const zc_brk_policy_t *p);
/* May a request reach the cart?  CLOSED: yes; OPEN: no; HALF_OPEN: only as
 * one of the max_probes probes (the caller then proposes PROBE). */
bool zc_breaker_passes(const zc_breaker_t *b, const zc_brk_policy_t *p);

const char *zc_breaker_state_name(int state);
const char *zc_breaker_mode_name(int mode);
const char *zc_breaker_event_name(int ev);
const char *zc_breaker_why_name(int why);

#endif
