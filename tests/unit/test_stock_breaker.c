/* test_stock_breaker: every edge of a cart node's per-stock-instance breaker.
 *
 * The allowed moves are written out below, independently of the table in
 * cart/stock_breaker.c, as the design brief states them: CLOSED -> OPEN
 * after K consecutive failures, OPEN -> HALF_OPEN once the open wait is
 * over, one probe, its success closes and its failure reopens.  The first
 * test applies every event, with a fresh and a stale ticket, to a breaker in
 * every distinguishable situation (each state on both sides of its guard)
 * and checks that exactly the listed moves happen, to exactly the listed
 * state, and that everything else is refused with the breaker unchanged.
 * Three of the situations cannot arise (a CLOSED breaker with a probe out,
 * an OPEN or HALF_OPEN one with K-1 failures counted): in them the guards of
 * events that do not belong to the state pass, so only the table can refuse
 * those events -- a wrong table entry cannot hide behind a guard.
 * The others check the helpers stock_client.c uses and the open wait. */
#include <string.h>

#include "cart/stock_breaker.h"
#include "unit.h"

#define K 3
static const stock_breaker_policy_t pol = {.failures = K, .open_ms = 100, .open_max_ms = 700};

/* A breaker in each situation the guards tell apart. */
enum {
    C_FRESH,
    C_AT_LIMIT,
    O_WAITING,
    O_WAIT_OVER,
    H_IDLE,
    H_PROBING,
    N_REAL, /* below: records the breaker never holds, to test the table alone */
    C_ODD = N_REAL,
    O_ODD,
    H_ODD,
    N_SITUATIONS
};
static const char *const situation_name[] = {
    "CLOSED fails=0",         "CLOSED fails=K-1",      "OPEN waiting",
    "OPEN wait over",         "HALF_OPEN idle",        "HALF_OPEN probing",
    "CLOSED probing fails=K-1", "OPEN probing fails=K-1", "HALF_OPEN probing fails=K-1"};

#define NOW 1000
#define EPOCH 7

static stock_breaker_t situation(int s)
{
    stock_breaker_t b;
    stock_breaker_init(&b);
    b.epoch = EPOCH;
    b.since_ms = 5;
    b.trips = 1;
    switch (s) {
    case C_FRESH: b.trips = 0; break;
    case C_AT_LIMIT: b.trips = 0; b.fails = K - 1; break;
    case O_WAITING: b.state = SB_OPEN; b.until_ms = NOW + 1; break;
    case O_WAIT_OVER: b.state = SB_OPEN; b.until_ms = NOW; break;
    case H_IDLE: b.state = SB_HALF_OPEN; break;
    case H_PROBING: b.state = SB_HALF_OPEN; b.probing = true; break;
    case C_ODD: b.trips = 0; b.fails = K - 1; b.probing = true; break;
    case O_ODD: b.state = SB_OPEN; b.until_ms = NOW; b.fails = K - 1; b.probing = true; break;
    case H_ODD: b.state = SB_HALF_OPEN; b.fails = K - 1; b.probing = true; break;
    default: break;
    }
    return b;
}

/* One allowed move. */
typedef struct {
    int from;        /* situation */
    int ev;          /* stock_breaker_event_t */
    bool any_ticket; /* a stale ticket is accepted too (events that are not results) */
    int to;          /* resulting state */
} move_t;

static const move_t allowed[] = {
    {C_FRESH, SB_EV_OK, false, SB_CLOSED},
    {C_FRESH, SB_EV_FAIL, false, SB_CLOSED},
    {C_AT_LIMIT, SB_EV_OK, false, SB_CLOSED},
    {C_AT_LIMIT, SB_EV_TRIP, false, SB_OPEN},
    {O_WAIT_OVER, SB_EV_WAIT_OVER, true, SB_HALF_OPEN},
    {H_IDLE, SB_EV_PROBE, true, SB_HALF_OPEN},
    {H_PROBING, SB_EV_PROBE_OK, false, SB_CLOSED},
    {H_PROBING, SB_EV_PROBE_FAIL, false, SB_OPEN},
    {C_ODD, SB_EV_OK, false, SB_CLOSED},
    {C_ODD, SB_EV_TRIP, false, SB_OPEN},
    {O_ODD, SB_EV_WAIT_OVER, true, SB_HALF_OPEN},
    {H_ODD, SB_EV_PROBE_OK, false, SB_CLOSED},
    {H_ODD, SB_EV_PROBE_FAIL, false, SB_OPEN},
};

static const move_t *find(int from, int ev, bool stale)
{
    for (size_t i = 0; i < sizeof allowed / sizeof *allowed; i++)
        if (allowed[i].from == from && allowed[i].ev == ev && (!stale || allowed[i].any_ticket))
            return &allowed[i];
    return NULL;
}

TEST(every_situation_event_and_ticket)
{
    unsigned moved = 0;
    for (int s = 0; s < N_SITUATIONS; s++) {
        for (int ev = 0; ev <= SB_N_EVENTS; ev++) {
            for (int stale = 0; stale <= 1; stale++) {
                stock_breaker_t b = situation(s), before = b;
                stock_breaker_input_t in = {.ev = (uint8_t)ev,
                                            .ticket = stale ? EPOCH - 1 : EPOCH,
                                            .now_ms = NOW};
                const move_t *m = find(s, ev, stale);
                CHECK(stock_breaker_allows(&b, &pol, &in) == (m != NULL));
                int rc = stock_breaker_apply(&b, &pol, &in);
                if (m == NULL) {
                    if (rc != -1 || memcmp(&b, &before, sizeof b) != 0)
                        fprintf(stderr, "  refused move applied: %s + %s%s\n", situation_name[s],
                                stock_breaker_event_name(ev), stale ? " (stale)" : "");
                    CHECK_EQ_U64(rc, (uint64_t)-1);
                    CHECK(memcmp(&b, &before, sizeof b) == 0);
                    continue;
                }
                moved++;
                CHECK_EQ_U64(rc, 0);
                CHECK_EQ_U64(b.state, m->to);
                bool changed = (int)before.state != m->to;
                CHECK_EQ_U64(b.epoch, changed ? EPOCH + 1 : EPOCH);
                CHECK_EQ_U64(b.since_ms, changed ? NOW : 5);
                if (s < N_REAL || ev != SB_EV_OK) /* OK leaves C_ODD's odd probe flag */
                    CHECK(b.probing == (ev == SB_EV_PROBE));
                switch (ev) {
                case SB_EV_OK: CHECK_EQ_U64(b.fails, 0); break;
                case SB_EV_FAIL: CHECK_EQ_U64(b.fails, before.fails + 1); break;
                case SB_EV_TRIP:
                case SB_EV_PROBE_FAIL:
                    CHECK_EQ_U64(b.fails, 0);
                    CHECK_EQ_U64(b.trips, before.trips + 1);
                    /* the first trip waits open_ms, the second twice that */
                    CHECK_EQ_U64(b.until_ms, NOW + (before.trips == 0 ? 100 : 200));
                    break;
                case SB_EV_PROBE_OK:
                    CHECK_EQ_U64(b.trips, 0);
                    CHECK_EQ_U64(b.fails, 0);
                    break;
                default: CHECK_EQ_U64(b.trips, before.trips); break;
                }
            }
        }
    }
    CHECK_EQ_U64(moved, sizeof allowed / sizeof *allowed + 3); /* + the any_ticket moves */
}

TEST(out_of_range_states_and_events_are_refused)
{
    stock_breaker_t b;
    stock_breaker_init(&b);
    stock_breaker_input_t in = {.ev = SB_EV_OK, .ticket = 0, .now_ms = 1};
    b.state = 9;
    CHECK(stock_breaker_apply(&b, &pol, &in) == -1);
    CHECK(stock_breaker_admits(&b, 1) == SB_ADMIT_NONE);
    stock_breaker_init(&b);
    in.ev = 200;
    CHECK(stock_breaker_apply(&b, &pol, &in) == -1);
    CHECK_STR(stock_breaker_state_name(9), "?");
    CHECK_STR(stock_breaker_event_name(0), "?");
    CHECK_STR(stock_breaker_event_name(SB_N_EVENTS), "?");
    CHECK_STR(stock_breaker_state_name(SB_HALF_OPEN), "HALF_OPEN");
    CHECK_STR(stock_breaker_event_name(SB_EV_PROBE_FAIL), "PROBE_FAIL");
}

TEST(admits_in_every_situation)
{
    static const stock_breaker_admit_t want[N_REAL] = {
        [C_FRESH] = SB_ADMIT_CHECK,     [C_AT_LIMIT] = SB_ADMIT_CHECK,
        [O_WAITING] = SB_ADMIT_NONE,    [O_WAIT_OVER] = SB_ADMIT_PROBE,
        [H_IDLE] = SB_ADMIT_PROBE,      [H_PROBING] = SB_ADMIT_NONE,
    };
    for (int s = 0; s < N_REAL; s++) {
        stock_breaker_t b = situation(s);
        CHECK_EQ_U64(stock_breaker_admits(&b, NOW), want[s]);
    }
    stock_breaker_t b = situation(O_WAITING);
    CHECK_EQ_U64(stock_breaker_wait_left_ms(&b, NOW), 1);
    CHECK_EQ_U64(stock_breaker_wait_left_ms(&b, NOW + 1), 0);
    CHECK_EQ_U64(stock_breaker_admits(&b, NOW + 1), SB_ADMIT_PROBE);
    b = situation(H_IDLE);
    CHECK_EQ_U64(stock_breaker_wait_left_ms(&b, 0), 0); /* only OPEN waits */
}

TEST(k_consecutive_failures_trip_an_ok_resets_the_count)
{
    stock_breaker_t b;
    stock_breaker_init(&b);
    uint32_t t = stock_breaker_sent(&b, &pol, 10);
    CHECK_EQ_U64(t, 0); /* CLOSED: sending changes nothing */
    CHECK(stock_breaker_result(&b, &pol, t, false, 11) == 0);
    CHECK(stock_breaker_result(&b, &pol, t, false, 12) == 0);
    CHECK_EQ_U64(b.fails, 2);
    CHECK(stock_breaker_result(&b, &pol, t, true, 13) == 0); /* not consecutive any more */
    CHECK_EQ_U64(b.fails, 0);
    CHECK(stock_breaker_result(&b, &pol, t, false, 14) == 0);
    CHECK(stock_breaker_result(&b, &pol, t, false, 15) == 0);
    CHECK_EQ_U64(b.state, SB_CLOSED);
    CHECK(stock_breaker_result(&b, &pol, t, false, 16) == 0); /* the K-th */
    CHECK_EQ_U64(b.state, SB_OPEN);
    CHECK_EQ_U64(b.until_ms, 116);
    /* The rest of the burst, sent before the trip, changes nothing. */
    stock_breaker_t before = b;
    CHECK(stock_breaker_result(&b, &pol, t, false, 17) == -1);
    CHECK(stock_breaker_result(&b, &pol, t, true, 17) == -1);
    CHECK(memcmp(&b, &before, sizeof b) == 0);
    CHECK_EQ_U64(stock_breaker_admits(&b, 115), SB_ADMIT_NONE);
}

TEST(one_failure_trips_when_k_is_one)
{
    stock_breaker_policy_t p1 = pol;
    p1.failures = 1;
    stock_breaker_t b;
    stock_breaker_init(&b);
    stock_breaker_input_t in = {.ev = SB_EV_FAIL, .ticket = 0, .now_ms = 1};
    CHECK(!stock_breaker_allows(&b, &p1, &in));
    CHECK(stock_breaker_result(&b, &p1, 0, false, 1) == 0);
    CHECK_EQ_U64(b.state, SB_OPEN);
    p1.failures = 0; /* treated as 1, never as "never trips" */
    stock_breaker_init(&b);
    CHECK(stock_breaker_result(&b, &p1, 0, false, 1) == 0);
    CHECK_EQ_U64(b.state, SB_OPEN);
}

TEST(one_probe_after_the_wait_its_success_closes)
{
    stock_breaker_t b;
    stock_breaker_init(&b);
    for (int i = 0; i < K; i++)
        stock_breaker_result(&b, &pol, 0, false, 100);
    CHECK_EQ_U64(b.state, SB_OPEN);
    CHECK_EQ_U64(stock_breaker_admits(&b, 199), SB_ADMIT_NONE);
    CHECK_EQ_U64(stock_breaker_admits(&b, 200), SB_ADMIT_PROBE);
    uint32_t probe = stock_breaker_sent(&b, &pol, 200);
    CHECK_EQ_U64(b.state, SB_HALF_OPEN);
    CHECK(b.probing);
    CHECK_EQ_U64(probe, b.epoch);
    CHECK_EQ_U64(stock_breaker_admits(&b, 201), SB_ADMIT_NONE); /* only one probe */
    CHECK(stock_breaker_result(&b, &pol, probe - 2, true, 202) == -1); /* pre-trip check */
    CHECK_EQ_U64(b.state, SB_HALF_OPEN);
    CHECK(stock_breaker_result(&b, &pol, probe, true, 203) == 0);
    CHECK_EQ_U64(b.state, SB_CLOSED);
    CHECK(!b.probing);
    CHECK_EQ_U64(b.trips, 0);
    CHECK_EQ_U64(b.since_ms, 203);
    CHECK(stock_breaker_result(&b, &pol, probe, false, 204) == -1); /* a duplicate result */
    CHECK_EQ_U64(stock_breaker_admits(&b, 204), SB_ADMIT_CHECK);
}

TEST(a_failed_probe_reopens_with_a_doubling_capped_wait)
{
    stock_breaker_t b;
    stock_breaker_init(&b);
    for (int i = 0; i < K; i++)
        stock_breaker_result(&b, &pol, 0, false, 0);
    CHECK_EQ_U64(b.until_ms, 100);
    CHECK_EQ_U64(stock_breaker_next_wait_ms(&b, &pol), 200);
    static const uint64_t want[] = {200, 400, 700, 700, 700};
    uint64_t now = 100;
    for (int i = 0; i < 5; i++) {
        uint32_t probe = stock_breaker_sent(&b, &pol, now);
        CHECK_EQ_U64(b.state, SB_HALF_OPEN);
        CHECK(stock_breaker_result(&b, &pol, probe, false, now + 1) == 0);
        CHECK_EQ_U64(b.state, SB_OPEN);
        CHECK_EQ_U64(b.until_ms - (now + 1), want[i]);
        now = b.until_ms;
    }
    uint32_t probe = stock_breaker_sent(&b, &pol, now);
    CHECK(stock_breaker_result(&b, &pol, probe, true, now + 1) == 0);
    CHECK_EQ_U64(b.state, SB_CLOSED);
    CHECK_EQ_U64(stock_breaker_next_wait_ms(&b, &pol), 100); /* reset by the close */
    for (int i = 0; i < K; i++)
        stock_breaker_result(&b, &pol, b.epoch, false, 5000);
    CHECK_EQ_U64(b.until_ms, 5100);
}

TEST(sent_too_early_or_while_probing_takes_nothing)
{
    /* stock_client only sends after admits; if it did not, sent() must not
     * move the breaker past its guards. */
    stock_breaker_t b = situation(O_WAITING), before = b;
    CHECK_EQ_U64(stock_breaker_sent(&b, &pol, NOW), EPOCH);
    CHECK(memcmp(&b, &before, sizeof b) == 0);
    b = situation(H_PROBING);
    before = b;
    CHECK_EQ_U64(stock_breaker_sent(&b, &pol, NOW), EPOCH);
    CHECK(memcmp(&b, &before, sizeof b) == 0);
    b = situation(H_IDLE);
    CHECK_EQ_U64(stock_breaker_sent(&b, &pol, NOW), EPOCH);
    CHECK(b.probing);
}

TEST(zero_open_wait_does_not_spin)
{
    stock_breaker_policy_t p0 = {.failures = 1, .open_ms = 0, .open_max_ms = 0};
    stock_breaker_t b;
    stock_breaker_init(&b);
    b.trips = UINT32_MAX - 1;
    CHECK(stock_breaker_result(&b, &p0, 0, false, 9) == 0);
    CHECK_EQ_U64(b.until_ms, 9);
    CHECK_EQ_U64(b.trips, UINT32_MAX);
    CHECK_EQ_U64(stock_breaker_next_wait_ms(&b, &p0), 0);
}

int main(void)
{
    RUN(every_situation_event_and_ticket);
    RUN(out_of_range_states_and_events_are_refused);
    RUN(admits_in_every_situation);
    RUN(k_consecutive_failures_trip_an_ok_resets_the_count);
    RUN(one_failure_trips_when_k_is_one);
    RUN(one_probe_after_the_wait_its_success_closes);
    RUN(a_failed_probe_reopens_with_a_doubling_capped_wait);
    RUN(sent_too_early_or_while_probing_takes_nothing);
    RUN(zero_open_wait_does_not_spin);
    return unit_report();
}
