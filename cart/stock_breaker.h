/* stock_breaker: a cart node's circuit breaker for ONE stock instance, as a
 * checked transition table.
 *
 * A cart node keeps one of these per stock endpoint (stock_client.c); it is
 * local to the node, never replicated (the replicated per-cart breaker is
 * replication/breaker.h, a different thing).  It keeps checks away from an
 * instance that stopped answering, so that a hung stock costs K timeouts and
 * then answers come fast (STOCK_UNAVAILABLE, or another instance's answer)
 * instead of one timeout per check:
 *
 *                        TRIP (the K-th failure in a row)
 *        +--> CLOSED ---------------------------------> OPEN <-------+
 *        |    |  ^                                       |           |
 *        |    +--+ OK, FAIL                              | WAIT_OVER | PROBE_FAIL
 *        |    (FAIL counts, OK resets the count)         v           |
 *        +------------------------------------------ HALF_OPEN ------+
 *                         PROBE_OK                    |  ^
 *                                                     +--+ PROBE (the one probe goes out)
 *
 * CLOSED: every check passes.  A check that times out or is answered
 * INTERNAL is a failure (FAIL below K, TRIP at K); any other answer in time
 * is OK and resets the count.  OPEN: no check passes until the open wait is
 * over; the wait is policy.open_ms after the first trip and doubles with
 * every further trip without a CLOSED in between, up to open_max_ms.
 * WAIT_OVER (taken when a check is sent once now >= until_ms): HALF_OPEN,
 * which lets exactly one probe check through (PROBE).  The probe's answer in
 * time closes the breaker (PROBE_OK, counts reset); its failure reopens it
 * (PROBE_FAIL, a longer wait).
 *
 * Stale results.  Every state change bumps `epoch`; a check carries the
 * epoch it was sent in (its ticket) and its result names that ticket.  A
 * result whose ticket is not the current epoch is refused: it belongs to a
 * check sent before the breaker last moved (the fourth timeout of a burst
 * that already tripped, a late OK of a check sent before the trip).  In
 * HALF_OPEN only the probe holds the current epoch, so PROBE_OK and
 * PROBE_FAIL can only come from the probe.
 *
 * Every move goes through stock_breaker_apply, which looks (state, event) up
 * in one table and checks the event's guard (the failure count against K,
 * the open wait against `now`, the probe in flight, the ticket); anything
 * else is refused with the breaker unchanged.  Time is an input, never read
 * here: the unit test drives every edge without a clock.  The three helpers
 * below (admits, sent, result) are what stock_client.c calls; they only
 * choose which event to apply. */
#ifndef ZC_CART_STOCK_BREAKER_H
#define ZC_CART_STOCK_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    SB_CLOSED = 0,    /* checks pass */
    SB_OPEN = 1,      /* checks are refused until the open wait is over */
    SB_HALF_OPEN = 2, /* one probe check passes */
} stock_breaker_state_t;
#define SB_N_STATES 3

typedef enum {
    SB_EV_OK = 1,         /* CLOSED: a check answered in time (resets the count) */
    SB_EV_FAIL = 2,       /* CLOSED: a check failed, fewer than K in a row */
    SB_EV_TRIP = 3,       /* CLOSED: the K-th failure in a row -> OPEN */
    SB_EV_WAIT_OVER = 4,  /* OPEN: the open wait is over -> HALF_OPEN */
    SB_EV_PROBE = 5,      /* HALF_OPEN: the one probe check goes out */
    SB_EV_PROBE_OK = 6,   /* HALF_OPEN: the probe answered in time -> CLOSED */
    SB_EV_PROBE_FAIL = 7, /* HALF_OPEN: the probe failed -> OPEN, longer wait */
} stock_breaker_event_t;
#define SB_N_EVENTS 8 /* events are 1..7 */

/* Tunables (zcart-cart flags). */
typedef struct {
    uint32_t failures;    /* K: consecutive failures that open it (>= 1) */
    uint32_t open_ms;     /* open wait after the first trip */
    uint32_t open_max_ms; /* cap of the doubling open wait (>= open_ms) */
} stock_breaker_policy_t;

/* One stock instance's breaker. */
typedef struct {
    uint8_t state;     /* stock_breaker_state_t */
    bool probing;      /* HALF_OPEN: the probe is out, no other check passes */
    uint32_t fails;    /* CLOSED: consecutive failures so far (< K) */
    uint32_t trips;    /* openings since the last CLOSED: the open wait grows with it */
    uint32_t epoch;    /* state changes so far: the ticket of checks sent now */
    uint64_t since_ms; /* when it entered its state */
    uint64_t until_ms; /* OPEN: when the open wait is over */
} stock_breaker_t;

/* One event with everything its guard needs. */
typedef struct {
    uint8_t ev;      /* stock_breaker_event_t */
    uint32_t ticket; /* result events: the epoch the check was sent in */
    uint64_t now_ms; /* the caller's clock (monotonic ms) */
} stock_breaker_input_t;

/* What a breaker lets through right now. */
typedef enum {
    SB_ADMIT_NONE = 0,  /* nothing (OPEN and waiting, or the probe is out) */
    SB_ADMIT_CHECK = 1, /* any check (CLOSED) */
    SB_ADMIT_PROBE = 2, /* one probe (OPEN with its wait over, or HALF_OPEN idle) */
} stock_breaker_admit_t;

/* A closed breaker with no history. */
void stock_breaker_init(stock_breaker_t *b);
/* Would stock_breaker_apply accept it now? */
bool stock_breaker_allows(const stock_breaker_t *b, const stock_breaker_policy_t *p,
                          const stock_breaker_input_t *in);
/* Apply one event: 0 with *b moved if the table and the event's guard allow
 * it, -1 with *b unchanged if not. */
int stock_breaker_apply(stock_breaker_t *b, const stock_breaker_policy_t *p,
                        const stock_breaker_input_t *in);

/* What may pass at now_ms (changes nothing). */
stock_breaker_admit_t stock_breaker_admits(const stock_breaker_t *b, uint64_t now_ms);
/* A check was just sent to the instance (after admits said it may): takes
 * WAIT_OVER and PROBE as needed.  Returns the check's ticket. */
uint32_t stock_breaker_sent(stock_breaker_t *b, const stock_breaker_policy_t *p, uint64_t now_ms);
/* The check holding `ticket` finished: ok = answered in time (any status but
 * INTERNAL), !ok = timed out or INTERNAL.  Applies OK, FAIL, TRIP, PROBE_OK
 * or PROBE_FAIL; 0 if applied, -1 if refused (stale ticket). */
int stock_breaker_result(stock_breaker_t *b, const stock_breaker_policy_t *p, uint32_t ticket,
                         bool ok, uint64_t now_ms);

/* The open wait that the next trip (or a failed probe) starts. */
uint64_t stock_breaker_next_wait_ms(const stock_breaker_t *b, const stock_breaker_policy_t *p);
/* OPEN: ms until the wait is over (0 if over); otherwise 0. */
uint64_t stock_breaker_wait_left_ms(const stock_breaker_t *b, uint64_t now_ms);

const char *stock_breaker_state_name(int state);
const char *stock_breaker_event_name(int ev);

#endif
