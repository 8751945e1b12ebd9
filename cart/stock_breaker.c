/* stock_breaker: the transition table (see stock_breaker.h for the diagram). */
#include "cart/stock_breaker.h"

#include <stddef.h>

#define NO (-1) /* the table refuses this (state, event) */

/* next[state][event]: the state an event leads to, or NO.  Guards come on
 * top (guard_ok below). */
static const signed char next[SB_N_STATES][SB_N_EVENTS] = {
    [SB_CLOSED] =
        {
            [0] = NO,
            [SB_EV_OK] = SB_CLOSED,
            [SB_EV_FAIL] = SB_CLOSED,
            [SB_EV_TRIP] = SB_OPEN,
            [SB_EV_WAIT_OVER] = NO,
            [SB_EV_PROBE] = NO,
            [SB_EV_PROBE_OK] = NO,
            [SB_EV_PROBE_FAIL] = NO,
        },
    [SB_OPEN] =
        {
            [0] = NO,
            [SB_EV_OK] = NO,
            [SB_EV_FAIL] = NO,
            [SB_EV_TRIP] = NO,
            [SB_EV_WAIT_OVER] = SB_HALF_OPEN,
            [SB_EV_PROBE] = NO,
            [SB_EV_PROBE_OK] = NO,
            [SB_EV_PROBE_FAIL] = NO,
        },
    [SB_HALF_OPEN] =
        {
            [0] = NO,
            [SB_EV_OK] = NO,
            [SB_EV_FAIL] = NO,
            [SB_EV_TRIP] = NO,
            [SB_EV_WAIT_OVER] = NO,
            [SB_EV_PROBE] = SB_HALF_OPEN,
            [SB_EV_PROBE_OK] = SB_CLOSED,
            [SB_EV_PROBE_FAIL] = SB_OPEN,
        },
};

/* The open wait of the n-th trip in a row (n >= 1): open_ms doubled n-1
 * times, capped. */
static uint64_t wait_for(uint32_t n, const stock_breaker_policy_t *p)
{
    uint64_t w = p->open_ms;
    for (uint32_t i = 1; i < n && w != 0 && w < p->open_max_ms; i++)
        w *= 2;
    return w < p->open_max_ms ? w : p->open_max_ms;
}

/* The guard of an event the table allows in b's state. */
static bool guard_ok(const stock_breaker_t *b, const stock_breaker_policy_t *p,
                     const stock_breaker_input_t *in)
{
    uint32_t k = p->failures ? p->failures : 1;
    switch (in->ev) {
    case SB_EV_OK: return in->ticket == b->epoch;
    case SB_EV_FAIL: return in->ticket == b->epoch && b->fails + 1 < k;
    case SB_EV_TRIP: return in->ticket == b->epoch && b->fails + 1 >= k;
    case SB_EV_WAIT_OVER: return in->now_ms >= b->until_ms;
    case SB_EV_PROBE: return !b->probing;
    case SB_EV_PROBE_OK:
    case SB_EV_PROBE_FAIL: return b->probing && in->ticket == b->epoch;
    default: return false;
    }
}

void stock_breaker_init(stock_breaker_t *b)
{
    b->state = SB_CLOSED;
    b->probing = false;
    b->fails = 0;
    b->trips = 0;
    b->epoch = 0;
    b->since_ms = 0;
    b->until_ms = 0;
}

bool stock_breaker_allows(const stock_breaker_t *b, const stock_breaker_policy_t *p,
                          const stock_breaker_input_t *in)
{
    if (b->state >= SB_N_STATES || in->ev == 0 || in->ev >= SB_N_EVENTS)
        return false;
    return next[b->state][in->ev] != NO && guard_ok(b, p, in);
}

int stock_breaker_apply(stock_breaker_t *b, const stock_breaker_policy_t *p,
                        const stock_breaker_input_t *in)
{
    if (!stock_breaker_allows(b, p, in))
        return -1;
    uint8_t to = (uint8_t)next[b->state][in->ev];
    switch (in->ev) {
    case SB_EV_OK: b->fails = 0; break;
    case SB_EV_FAIL: b->fails++; break;
    case SB_EV_TRIP:
    case SB_EV_PROBE_FAIL:
        b->fails = 0;
        b->probing = false;
        if (b->trips < UINT32_MAX)
            b->trips++;
        b->until_ms = in->now_ms + wait_for(b->trips, p);
        break;
    case SB_EV_WAIT_OVER: b->probing = false; break;
    case SB_EV_PROBE: b->probing = true; break;
    case SB_EV_PROBE_OK:
        b->probing = false;
        b->fails = 0;
        b->trips = 0;
        break;
    default: return -1; /* unreachable: allows() checked the range */
    }
    if (to != b->state) {
        b->epoch++;
        b->since_ms = in->now_ms;
    }
    b->state = to;
    return 0;
}

stock_breaker_admit_t stock_breaker_admits(const stock_breaker_t *b, uint64_t now_ms)
{
    switch (b->state) {
    case SB_CLOSED: return SB_ADMIT_CHECK;
    case SB_OPEN: return now_ms >= b->until_ms ? SB_ADMIT_PROBE : SB_ADMIT_NONE;
    case SB_HALF_OPEN: return b->probing ? SB_ADMIT_NONE : SB_ADMIT_PROBE;
    default: return SB_ADMIT_NONE;
    }
}

uint32_t stock_breaker_sent(stock_breaker_t *b, const stock_breaker_policy_t *p, uint64_t now_ms)
{
    stock_breaker_input_t in = {.ev = SB_EV_WAIT_OVER, .ticket = 0, .now_ms = now_ms};
    if (b->state == SB_OPEN)
        (void)stock_breaker_apply(b, p, &in);
    if (b->state == SB_HALF_OPEN) {
        in.ev = SB_EV_PROBE;
        (void)stock_breaker_apply(b, p, &in);
    }
    return b->epoch;
}

int stock_breaker_result(stock_breaker_t *b, const stock_breaker_policy_t *p, uint32_t ticket,
                         bool ok, uint64_t now_ms)
{
    stock_breaker_input_t in = {.ev = 0, .ticket = ticket, .now_ms = now_ms};
    uint32_t k = p->failures ? p->failures : 1;
    switch (b->state) {
    case SB_CLOSED: in.ev = ok ? SB_EV_OK : b->fails + 1 >= k ? SB_EV_TRIP : SB_EV_FAIL; break;
    case SB_HALF_OPEN: in.ev = ok ? SB_EV_PROBE_OK : SB_EV_PROBE_FAIL; break;
    default: in.ev = ok ? SB_EV_OK : SB_EV_FAIL; break; /* OPEN: the table refuses both */
    }
    return stock_breaker_apply(b, p, &in);
}

uint64_t stock_breaker_next_wait_ms(const stock_breaker_t *b, const stock_breaker_policy_t *p)
{
    return wait_for(b->trips < UINT32_MAX ? b->trips + 1 : b->trips, p);
}

uint64_t stock_breaker_wait_left_ms(const stock_breaker_t *b, uint64_t now_ms)
{
    return b->state == SB_OPEN && b->until_ms > now_ms ? b->until_ms - now_ms : 0;
}

const char *stock_breaker_state_name(int state)
{
    static const char *const names[] = {"CLOSED", "OPEN", "HALF_OPEN"};
    return state >= 0 && state < SB_N_STATES ? names[state] : "?";
}

const char *stock_breaker_event_name(int ev)
{
    static const char *const names[] = {"?",     "OK",       "FAIL",     "TRIP",
                                        "WAIT_OVER", "PROBE", "PROBE_OK", "PROBE_FAIL"};
    return ev > 0 && ev < SB_N_EVENTS ? names[ev] : "?";
}
