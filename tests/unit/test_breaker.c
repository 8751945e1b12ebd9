/* test_breaker: every edge of the breaker's transition table.
 *
 * The allowed moves are written out below, independently of the table in
 * replication/breaker.c, as the design brief states them; the test applies
 * every (state, mode, event) combination and checks that exactly those move
 * the breaker, to exactly that state, and that everything else is refused
 * with the record unchanged. */
#include <string.h>

#include "replication/breaker.h"
#include "unit.h"

/* One allowed move. */
typedef struct {
    int from;  /* zc_brk_state_t */
    int mode;  /* zc_brk_mode_t the breaker is in */
    int ev;    /* zc_brk_event_t */
    int to;    /* resulting state */
    int mode2; /* resulting mode */
} move_t;

#define A ZC_BRK_AUTO
#define FO ZC_BRK_FORCED_OPEN
#define FC ZC_BRK_FORCED_CLOSED
#define C ZC_BRK_CLOSED
#define O ZC_BRK_OPEN
#define H ZC_BRK_HALF_OPEN

static const move_t allowed[] = {
    /* automatic: CLOSED -> OPEN -> HALF_OPEN -> CLOSED, HALF_OPEN -> OPEN */
    {C, A, ZC_BRK_EV_TRIP, O, A},
    {O, A, ZC_BRK_EV_WAIT_OVER, H, A},
    {H, A, ZC_BRK_EV_PROBE, H, A},
    {H, A, ZC_BRK_EV_PROBE_OK, C, A},
    {H, A, ZC_BRK_EV_PROBE_FAIL, O, A},
    /* operator: from any state and mode */
    {C, A, ZC_BRK_EV_FORCE_OPEN, O, FO},   {O, A, ZC_BRK_EV_FORCE_OPEN, O, FO},
    {H, A, ZC_BRK_EV_FORCE_OPEN, O, FO},   {C, A, ZC_BRK_EV_FORCE_CLOSE, C, FC},
    {O, A, ZC_BRK_EV_FORCE_CLOSE, C, FC},  {H, A, ZC_BRK_EV_FORCE_CLOSE, C, FC},
    {C, A, ZC_BRK_EV_AUTO, C, A},          {O, A, ZC_BRK_EV_AUTO, O, A},
    {H, A, ZC_BRK_EV_AUTO, H, A},          {O, FO, ZC_BRK_EV_FORCE_OPEN, O, FO},
    {O, FO, ZC_BRK_EV_FORCE_CLOSE, C, FC}, {O, FO, ZC_BRK_EV_AUTO, O, A},
    {C, FC, ZC_BRK_EV_FORCE_OPEN, O, FO},  {C, FC, ZC_BRK_EV_FORCE_CLOSE, C, FC},
    {C, FC, ZC_BRK_EV_AUTO, C, A},
};

static const move_t *find(int from, int mode, int ev)
{
    for (size_t i = 0; i < sizeof allowed / sizeof *allowed; i++)
        if (allowed[i].from == from && allowed[i].mode == mode && allowed[i].ev == ev)
            return &allowed[i];
    return NULL;
}

static zc_brk_input_t in(int ev, uint64_t now)
{
    zc_brk_input_t x = {.ev = (uint8_t)ev, .why = ZC_BRK_WHY_FAILURES, .max_probes = 2,
                        .now_ms = now};
    return x;
}

TEST(every_state_mode_event)
{
    /* A forced mode only ever holds the state it forces. */
    static const int combos[][2] = {{C, A}, {O, A}, {H, A}, {O, FO}, {C, FC}};
    unsigned moved = 0;
    for (size_t k = 0; k < sizeof combos / sizeof *combos; k++) {
        for (int ev = 0; ev <= ZC_BRK_N_EVENTS; ev++) {
            zc_breaker_t b, before;
            zc_breaker_init(&b);
            b.state = (uint8_t)combos[k][0];
            b.mode = (uint8_t)combos[k][1];
            b.since_ms = 5;
            before = b;
            zc_brk_input_t x = in(ev, 100);
            const move_t *m = find(combos[k][0], combos[k][1], ev);
            CHECK(zc_breaker_allows(&b, &x) == (m != NULL));
            int rc = zc_breaker_apply(&b, &x);
            if (m == NULL) {
                if (rc != -1 || memcmp(&b, &before, sizeof b) != 0)
                    fprintf(stderr, "  refused move applied: %s/%s + %s\n",
                            zc_breaker_state_name(combos[k][0]),
                            zc_breaker_mode_name(combos[k][1]), zc_breaker_event_name(ev));
                CHECK_EQ_U64(rc, (uint64_t)-1);
                CHECK(memcmp(&b, &before, sizeof b) == 0);
            } else {
                moved++;
                CHECK_EQ_U64(rc, 0);
                CHECK_EQ_U64(b.state, m->to);
                CHECK_EQ_U64(b.mode, m->mode2);
                CHECK_EQ_U64(b.since_ms, m->to != m->from ? 100 : 5);
            }
        }
    }
    CHECK_EQ_U64(moved, sizeof allowed / sizeof *allowed);
}

TEST(out_of_range_records_and_events_are_refused)
{
    zc_breaker_t b;
    zc_breaker_init(&b);
    b.state = 7;
    zc_brk_input_t x = in(ZC_BRK_EV_FORCE_CLOSE, 1);
    CHECK(zc_breaker_apply(&b, &x) == -1);
    zc_breaker_init(&b);
    b.mode = 9;
    CHECK(zc_breaker_apply(&b, &x) == -1);
    zc_breaker_init(&b);
    x.ev = 200;
    CHECK(zc_breaker_apply(&b, &x) == -1);
}

TEST(probes_are_bounded_and_counted)
{
    zc_brk_policy_t p = {.open_wait_ms = 100, .open_wait_max_ms = 1000, .max_probes = 2};
    zc_breaker_t b;
    zc_breaker_init(&b);
    CHECK(zc_breaker_passes(&b, &p));
    zc_brk_input_t x = in(ZC_BRK_EV_TRIP, 10);
    CHECK(zc_breaker_apply(&b, &x) == 0);
    CHECK(!zc_breaker_passes(&b, &p));
    CHECK_EQ_U64(b.why, ZC_BRK_WHY_FAILURES);
    x = in(ZC_BRK_EV_WAIT_OVER, 20);
    CHECK(zc_breaker_apply(&b, &x) == 0);
    for (int i = 0; i < 2; i++) {
        CHECK(zc_breaker_passes(&b, &p));
        x = in(ZC_BRK_EV_PROBE, 21);
        CHECK(zc_breaker_apply(&b, &x) == 0);
    }
    CHECK_EQ_U64(b.probes, 2);
    CHECK(!zc_breaker_passes(&b, &p));
    x = in(ZC_BRK_EV_PROBE, 22);
    CHECK(zc_breaker_apply(&b, &x) == -1); /* the third probe, from a racing proposal */
    CHECK_EQ_U64(b.probes, 2);
    x = in(ZC_BRK_EV_PROBE_FAIL, 30);
    x.why = ZC_BRK_WHY_NONE;
    CHECK(zc_breaker_apply(&b, &x) == 0);
    CHECK_EQ_U64(b.state, ZC_BRK_OPEN);
    CHECK_EQ_U64(b.why, ZC_BRK_WHY_PROBE);
    x = in(ZC_BRK_EV_WAIT_OVER, 31);
    CHECK(zc_breaker_apply(&b, &x) == 0);
    x = in(ZC_BRK_EV_PROBE_FAIL, 32);
    x.why = ZC_BRK_WHY_HEARTBEAT; /* the probe failed because the node stayed silent */
    CHECK(zc_breaker_apply(&b, &x) == 0);
    CHECK_EQ_U64(b.why, ZC_BRK_WHY_HEARTBEAT);
    CHECK_EQ_U64(b.probes, 0);
}

TEST(open_wait_doubles_per_trip_and_resets_on_close)
{
    zc_brk_policy_t p = {.open_wait_ms = 100, .open_wait_max_ms = 700, .max_probes = 1};
    zc_breaker_t b;
    zc_breaker_init(&b);
    zc_brk_input_t x = in(ZC_BRK_EV_TRIP, 1);
    CHECK(zc_breaker_apply(&b, &x) == 0);
    CHECK_EQ_U64(zc_breaker_open_wait_ms(&b, &p), 100);
    static const uint64_t want[] = {200, 400, 700, 700};
    for (int i = 0; i < 4; i++) {
        x = in(ZC_BRK_EV_WAIT_OVER, 2);
        CHECK(zc_breaker_apply(&b, &x) == 0);
        x = in(ZC_BRK_EV_PROBE_FAIL, 3);
        CHECK(zc_breaker_apply(&b, &x) == 0);
        CHECK_EQ_U64(zc_breaker_open_wait_ms(&b, &p), want[i]);
    }
    x = in(ZC_BRK_EV_WAIT_OVER, 4);
    CHECK(zc_breaker_apply(&b, &x) == 0);
    x = in(ZC_BRK_EV_PROBE_OK, 5);
    CHECK(zc_breaker_apply(&b, &x) == 0);
    CHECK_EQ_U64(b.trips, 0);
    CHECK_EQ_U64(b.why, ZC_BRK_WHY_NONE);
    x = in(ZC_BRK_EV_TRIP, 6);
    CHECK(zc_breaker_apply(&b, &x) == 0);
    CHECK_EQ_U64(zc_breaker_open_wait_ms(&b, &p), 100);
}

TEST(forced_breakers_ignore_automatic_events_until_auto)
{
    zc_brk_policy_t p = {.open_wait_ms = 100, .open_wait_max_ms = 700, .max_probes = 1};
    zc_breaker_t b;
    zc_breaker_init(&b);
    zc_brk_input_t x = in(ZC_BRK_EV_FORCE_OPEN, 1);
    CHECK(zc_breaker_apply(&b, &x) == 0);
    CHECK_EQ_U64(b.why, ZC_BRK_WHY_OPERATOR);
    x = in(ZC_BRK_EV_WAIT_OVER, 2);
    CHECK(zc_breaker_apply(&b, &x) == -1);
    CHECK(!zc_breaker_passes(&b, &p));
    x = in(ZC_BRK_EV_FORCE_CLOSE, 3);
    CHECK(zc_breaker_apply(&b, &x) == 0);
    x = in(ZC_BRK_EV_TRIP, 4);
    CHECK(zc_breaker_apply(&b, &x) == -1); /* held closed: failures do not open it */
    CHECK(zc_breaker_passes(&b, &p));
    x = in(ZC_BRK_EV_AUTO, 5);
    CHECK(zc_breaker_apply(&b, &x) == 0);
    x = in(ZC_BRK_EV_TRIP, 6);
    CHECK(zc_breaker_apply(&b, &x) == 0);
    CHECK_EQ_U64(b.state, ZC_BRK_OPEN);
}

int main(void)
{
    RUN(every_state_mode_event);
    RUN(out_of_range_records_and_events_are_refused);
    RUN(probes_are_bounded_and_counted);
    RUN(open_wait_doubles_per_trip_and_resets_on_close);
    RUN(forced_breakers_ignore_automatic_events_until_auto);
    return unit_report();
}
