/* breaker: the transition table (see breaker.h for the diagram). */
#include "replication/breaker.h"

#include <stddef.h>

#define NO (-1) /* the table refuses this (state, event) */

/* next[state][event]: the state an event leads to, or NO. */
static const signed char next[ZC_BRK_N_STATES][ZC_BRK_N_EVENTS] = {
    [ZC_BRK_CLOSED] =
        {
            [0] = NO,
            [ZC_BRK_EV_TRIP] = ZC_BRK_OPEN,
            [ZC_BRK_EV_WAIT_OVER] = NO,
            [ZC_BRK_EV_PROBE] = NO,
            [ZC_BRK_EV_PROBE_OK] = NO,
            [ZC_BRK_EV_PROBE_FAIL] = NO,
            [ZC_BRK_EV_FORCE_OPEN] = ZC_BRK_OPEN,
            [ZC_BRK_EV_FORCE_CLOSE] = ZC_BRK_CLOSED,
            [ZC_BRK_EV_AUTO] = ZC_BRK_CLOSED,
        },
    [ZC_BRK_OPEN] =
        {
            [0] = NO,
            [ZC_BRK_EV_TRIP] = NO,
            [ZC_BRK_EV_WAIT_OVER] = ZC_BRK_HALF_OPEN,
            [ZC_BRK_EV_PROBE] = NO,
            [ZC_BRK_EV_PROBE_OK] = NO,
            [ZC_BRK_EV_PROBE_FAIL] = NO,
            [ZC_BRK_EV_FORCE_OPEN] = ZC_BRK_OPEN,
            [ZC_BRK_EV_FORCE_CLOSE] = ZC_BRK_CLOSED,
            [ZC_BRK_EV_AUTO] = ZC_BRK_OPEN,
        },
    [ZC_BRK_HALF_OPEN] =
        {
            [0] = NO,
            [ZC_BRK_EV_TRIP] = NO,
            [ZC_BRK_EV_WAIT_OVER] = NO,
            [ZC_BRK_EV_PROBE] = ZC_BRK_HALF_OPEN,
            [ZC_BRK_EV_PROBE_OK] = ZC_BRK_CLOSED,
            [ZC_BRK_EV_PROBE_FAIL] = ZC_BRK_OPEN,
            [ZC_BRK_EV_FORCE_OPEN] = ZC_BRK_OPEN,
            [ZC_BRK_EV_FORCE_CLOSE] = ZC_BRK_CLOSED,
            [ZC_BRK_EV_AUTO] = ZC_BRK_HALF_OPEN,
        },
};

/* Operator events work in any mode; the automatic ones only in AUTO. */
static bool operator_event(int ev)
{
    return ev == ZC_BRK_EV_FORCE_OPEN || ev == ZC_BRK_EV_FORCE_CLOSE || ev == ZC_BRK_EV_AUTO;
}

void zc_breaker_init(zc_breaker_t *b)
{
    b->state = ZC_BRK_CLOSED;
    b->mode = ZC_BRK_AUTO;
    b->why = ZC_BRK_WHY_NONE;
    b->trips = 0;
    b->probes = 0;
    b->since_ms = 0;
}

bool zc_breaker_allows(const zc_breaker_t *b, const zc_brk_input_t *in)
{
    if (b->state >= ZC_BRK_N_STATES || in->ev == 0 || in->ev >= ZC_BRK_N_EVENTS ||
        b->mode > ZC_BRK_FORCED_CLOSED)
        return false;
    if (next[b->state][in->ev] == NO)
        return false;
    if (!operator_event(in->ev) && b->mode != ZC_BRK_AUTO)
        return false;
    if (in->ev == ZC_BRK_EV_PROBE && b->probes >= in->max_probes)
        return false;
    return true;
}

int zc_breaker_apply(zc_breaker_t *b, const zc_brk_input_t *in)
{
    if (!zc_breaker_allows(b, in))
        return -1;
    uint8_t to = (uint8_t)next[b->state][in->ev];
    switch (in->ev) {
    case ZC_BRK_EV_TRIP:
    case ZC_BRK_EV_PROBE_FAIL:
        if (b->trips < UINT16_MAX)
            b->trips++;
        /* A failed probe keeps the cause it names, or says "probe". */
        b->why = in->ev == ZC_BRK_EV_PROBE_FAIL && in->why == ZC_BRK_WHY_NONE ? ZC_BRK_WHY_PROBE
                                                                              : in->why;
        b->probes = 0;
        break;
    case ZC_BRK_EV_WAIT_OVER: b->probes = 0; break;
    case ZC_BRK_EV_PROBE: b->probes++; break;
    case ZC_BRK_EV_PROBE_OK:
        b->trips = 0;
        b->probes = 0;
        b->why = ZC_BRK_WHY_NONE;
        break;
    case ZC_BRK_EV_FORCE_OPEN:
        b->mode = ZC_BRK_FORCED_OPEN;
        b->why = ZC_BRK_WHY_OPERATOR;
        b->probes = 0;
        break;
    case ZC_BRK_EV_FORCE_CLOSE:
        b->mode = ZC_BRK_FORCED_CLOSED;
        b->trips = 0;
        b->probes = 0;
        b->why = ZC_BRK_WHY_NONE;
        break;
    case ZC_BRK_EV_AUTO: b->mode = ZC_BRK_AUTO; break;
    default: return -1; /* unreachable: allows() checked the range */
    }
    if (to != b->state)
        b->since_ms = in->now_ms;
    b->state = to;
    return 0;
}

uint64_t zc_breaker_open_wait_ms(const zc_breaker_t *b, const zc_brk_policy_t *p)
{
    uint64_t w = p->open_wait_ms;
    for (unsigned i = 1; i < b->trips && w < p->open_wait_max_ms; i++)
        w *= 2;
    return w < p->open_wait_max_ms ? w : p->open_wait_max_ms;
}

bool zc_breaker_passes(const zc_breaker_t *b, const zc_brk_policy_t *p)
{
    switch (b->state) {
    case ZC_BRK_CLOSED: return true;
    case ZC_BRK_HALF_OPEN: return b->mode == ZC_BRK_AUTO && b->probes < p->max_probes;
    default: return false;
    }
}

const char *zc_breaker_state_name(int state)
{
    static const char *const names[] = {"CLOSED", "OPEN", "HALF_OPEN"};
    return state >= 0 && state < ZC_BRK_N_STATES ? names[state] : "?";
}

const char *zc_breaker_mode_name(int mode)
{
    static const char *const names[] = {"auto", "forced-open", "forced-closed"};
    return mode >= 0 && mode <= ZC_BRK_FORCED_CLOSED ? names[mode] : "?";
}

const char *zc_breaker_event_name(int ev)
{
    static const char *const names[] = {"?",         "TRIP",       "WAIT_OVER",   "PROBE",
                                        "PROBE_OK",  "PROBE_FAIL", "FORCE_OPEN",  "FORCE_CLOSE",
                                        "AUTO"};
    return ev > 0 && ev < ZC_BRK_N_EVENTS ? names[ev] : "?";
}

const char *zc_breaker_why_name(int why)
{
    static const char *const names[] = {"none", "heartbeat", "failures", "probe", "operator"};
    return why >= 0 && why <= ZC_BRK_WHY_OPERATOR ? names[why] : "?";
}
