/* test_client_format: the CLI's output contract, byte for byte, and the
 * bench's latency percentiles.
 *
 * Results are built by hand (no network) and printed through clijson into
 * a memory stream; the expected text and JSON are written out in full, so
 * any change to the contract shows up here as a diff. */
#include <stdlib.h>

#include "client/clijson.h"
#include "client/latency.h"
#include "client/zcart.h"
#include "proto/msg.h"
#include "unit.h"

#define SID "0123456789abcdef0123456789abcdef"

/* Print through f into a fresh string (caller frees). */
#define CAPTURE(var, stmt)                                                                  \
    do {                                                                                    \
        size_t n_;                                                                          \
        FILE *out = open_memstream(&(var), &n_);                                            \
        stmt;                                                                               \
        fclose(out);                                                                        \
    } while (0)

static zcart_result_t answer(int status, const char *reason, const char *detail, const char *cart)
{
    zcart_result_t r = {0};
    r.status = status;
    r.reason = reason;
    snprintf(r.detail, sizeof r.detail, "%s", detail);
    snprintf(r.cart, sizeof r.cart, "%s", cart);
    r.generation = cart[0] ? 7 : 0;
    r.seq = 1700000000000001ull;
    r.replica_id = 2; /* REPLY replica and term: who decided it */
    r.term = 5;
    r.attempts = 1;
    return r;
}

static void give_items(zcart_result_t *r)
{
    r->items = calloc(2, sizeof *r->items);
    snprintf(r->items[0].product, sizeof r->items[0].product, "apple");
    r->items[0].qty = 3;
    snprintf(r->items[1].product, sizeof r->items[1].product, "pe\"ar");
    r->items[1].qty = 1;
    r->n_items = 2;
}

TEST(op_text)
{
    char *s;
    zcart_result_t r = answer(0, "OK", "", "cart1.2");
    give_items(&r);
    CAPTURE(s, zcli_print_op(out, false, ZC_OP_ADD, SID, true, ZCART_ANSWERED, &r));
    CHECK_STR(s, "session " SID "\nOK cart cart1.2 gen 7: apple x3, pe\"ar x1\n");
    free(s);
    CAPTURE(s, zcli_print_op(out, false, ZC_OP_LIST, SID, false, ZCART_ANSWERED, &r));
    CHECK_STR(s, "OK cart cart1.2 gen 7: apple x3, pe\"ar x1\n");
    free(s);
    zcart_result_clear(&r);
    r = answer(0, "OK", "", "");
    CAPTURE(s, zcli_print_op(out, false, ZC_OP_LIST, SID, false, ZCART_ANSWERED, &r));
    CHECK_STR(s, "OK no cart: empty\n");
    free(s);
    CAPTURE(s, zcli_print_op(out, false, ZC_OP_CLOSE, SID, false, ZCART_ANSWERED, &r));
    CHECK_STR(s, "OK closed (no cart)\n");
    free(s);
    r = answer(0, "OK", "", "n1.0");
    CAPTURE(s, zcli_print_op(out, false, ZC_OP_CLOSE, SID, false, ZCART_ANSWERED, &r));
    CHECK_STR(s, "OK closed cart n1.0 gen 7\n");
    free(s);
    CAPTURE(s, zcli_print_op(out, false, ZC_OP_REMOVE, SID, false, ZCART_ANSWERED, &r));
    CHECK_STR(s, "OK cart n1.0 gen 7: empty\n");
    free(s);
    r = answer(4, "OUT_OF_STOCK", "only 2 left", "n1.0");
    CAPTURE(s, zcli_print_op(out, false, ZC_OP_ADD, SID, false, ZCART_ANSWERED, &r));
    CHECK_STR(s, "KO OUT_OF_STOCK: only 2 left\n");
    free(s);
    r = answer(3, "NO_FREE_CART", "", "");
    CAPTURE(s, zcli_print_op(out, false, ZC_OP_ADD, SID, true, ZCART_ANSWERED, &r));
    CHECK_STR(s, "session " SID "\nKO NO_FREE_CART\n");
    free(s);
    r = answer(-1, "UNREACHABLE", "no answer within 5000 ms", "");
    r.in_doubt = true;
    CAPTURE(s, zcli_print_op(out, false, ZC_OP_ADD, SID, false, ZCART_EUNREACHABLE, &r));
    CHECK_STR(s, "UNREACHABLE: no answer within 5000 ms (outcome unknown: it may have been "
                 "applied)\n");
    free(s);
}

/* Text output escapes control bytes in what the cluster sent: no peer can
 * forge an output line or drive the terminal. */
TEST(op_text_escapes_control_bytes)
{
    char *s;
    zcart_result_t r = answer(14, "FENCED", "stale\n\x1b[2Jowner", "n1.0");
    CAPTURE(s, zcli_print_op(out, false, ZC_OP_ADD, SID, false, ZCART_ANSWERED, &r));
    CHECK_STR(s, "KO FENCED: stale\\x0a\\x1b[2Jowner\n");
    free(s);
    r = answer(0, "OK", "", "n1.0");
    r.items = calloc(1, sizeof *r.items);
    snprintf(r.items[0].product, sizeof r.items[0].product, "ap\rple");
    r.items[0].qty = 1;
    r.n_items = 1;
    CAPTURE(s, zcli_print_op(out, false, ZC_OP_LIST, SID, false, ZCART_ANSWERED, &r));
    CHECK_STR(s, "OK cart n1.0 gen 7: ap\\x0dple x1\n");
    free(s);
    zcart_result_clear(&r);
}

TEST(op_json)
{
    char *s;
    zcart_result_t r = answer(0, "OK", "", "cart1.2");
    give_items(&r);
    CAPTURE(s, zcli_print_op(out, true, ZC_OP_ADD, SID, true, ZCART_ANSWERED, &r));
    CHECK_STR(s, "{\"ok\":true,\"op\":\"add\",\"session\":\"" SID "\",\"new_session\":true,"
                 "\"seq\":1700000000000001,\"reason\":\"OK\",\"detail\":\"\",\"cart\":\"cart1.2\","
                 "\"generation\":7,\"items\":[{\"product\":\"apple\",\"qty\":3},"
                 "{\"product\":\"pe\\\"ar\",\"qty\":1}],\"replica_id\":2,\"term\":5,"
                 "\"attempts\":1}\n");
    free(s);
    zcart_result_clear(&r);
    r = answer(4, "OUT_OF_STOCK", "only 2 left", "n1.0");
    CAPTURE(s, zcli_print_op(out, true, ZC_OP_ADD, SID, false, ZCART_ANSWERED, &r));
    CHECK_STR(s, "{\"ok\":false,\"op\":\"add\",\"session\":\"" SID "\",\"new_session\":false,"
                 "\"seq\":1700000000000001,\"reason\":\"OUT_OF_STOCK\",\"detail\":\"only 2 left\","
                 "\"status\":4,\"cart\":\"n1.0\",\"generation\":7,\"items\":[],\"replica_id\":2,"
                 "\"term\":5,\"attempts\":1}\n");
    free(s);
    r = answer(0, "OK", "", "");
    CAPTURE(s, zcli_print_op(out, true, ZC_OP_LIST, SID, false, ZCART_ANSWERED, &r));
    CHECK_STR(s, "{\"ok\":true,\"op\":\"list\",\"session\":\"" SID "\",\"new_session\":false,"
                 "\"seq\":1700000000000001,\"reason\":\"OK\",\"detail\":\"\",\"cart\":null,"
                 "\"generation\":null,\"items\":[],\"replica_id\":2,\"term\":5,\"attempts\":1}\n");
    free(s);
    r = answer(-1, "UNREACHABLE", "no answer", "");
    CAPTURE(s, zcli_print_op(out, true, ZC_OP_CLOSE, SID, false, ZCART_EUNREACHABLE, &r));
    CHECK_STR(s, "{\"ok\":false,\"op\":\"close\",\"session\":\"" SID "\",\"new_session\":false,"
                 "\"seq\":1700000000000001,\"reason\":\"UNREACHABLE\",\"detail\":\"no answer\","
                 "\"in_doubt\":false}\n");
    free(s);
    /* A local failure is reported like an unreachable cluster (exit 3). */
    CAPTURE(s, zcli_print_op(out, true, ZC_OP_CLOSE, SID, false, ZCART_ESYS, &r));
    CHECK(strstr(s, "\"reason\":\"UNREACHABLE\"") != NULL);
    free(s);
    CAPTURE(s, zcli_print_usage(out, true, "bad \"qty\""));
    CHECK_STR(s, "{\"ok\":false,\"reason\":\"USAGE\",\"detail\":\"bad \\\"qty\\\"\"}\n");
    free(s);
    CAPTURE(s, zcli_print_usage(out, false, "bad qty"));
    CHECK_STR(s, "USAGE: bad qty\n");
    free(s);
}

TEST(exit_codes)
{
    zcart_result_t r = answer(0, "OK", "", "");
    CHECK_EQ_U64(zcli_exit_code(ZCART_ANSWERED, &r), 0);
    r.status = 4;
    CHECK_EQ_U64(zcli_exit_code(ZCART_ANSWERED, &r), 1);
    CHECK_EQ_U64(zcli_exit_code(ZCART_EINVAL, &r), 2);
    CHECK_EQ_U64(zcli_exit_code(ZCART_EUNREACHABLE, &r), 3);
    CHECK_EQ_U64(zcli_exit_code(ZCART_ESYS, &r), 3);
}

static void set_props(zcart_replica_t *r, const char *const *kv)
{
    size_t n = 0;
    while (kv[2 * n])
        n++;
    r->props = calloc(n, sizeof *r->props);
    for (size_t i = 0; i < n; i++) {
        snprintf(r->props[i].key, sizeof r->props[i].key, "%s", kv[2 * i]);
        snprintf(r->props[i].value, sizeof r->props[i].value, "%s", kv[2 * i + 1]);
    }
    r->n_props = n;
    r->reachable = true;
}

static void make_status(zcart_status_t *st)
{
    st->n_replicas = 3;
    st->replicas = calloc(3, sizeof *st->replicas);
    snprintf(st->replicas[0].endpoint, sizeof st->replicas[0].endpoint, "tcp://h:1");
    snprintf(st->replicas[1].endpoint, sizeof st->replicas[1].endpoint, "tcp://h:2");
    snprintf(st->replicas[2].endpoint, sizeof st->replicas[2].endpoint, "tcp://h:3");
    set_props(&st->replicas[0],
              (const char *const[]){"id", "1", "endpoint", "tcp://h:1", "role", "follower",
                                    "term", "3", "commit_index", "10", "applied_index", "10",
                                    "digest", "0000000000000123", "leader_id", "2",
                                    "carts_total", "1", "carts_free", "1", "carts_assigned",
                                    "0", "carts_draining", "0", NULL});
    st->replicas[0].rtt_us = 100;
    set_props(&st->replicas[1],
              (const char *const[]){"id", "2", "endpoint", "tcp://h:2", "role", "leader",
                                    "term", "3", "commit_index", "11", "applied_index", "11",
                                    "digest", "1234567890123456", "leader_id", "2",
                                    "carts_total", "8", "carts_free", "5", "carts_assigned", "2",
                                    "carts_draining", "1", "member.2",
                                    "voter 127.0.0.1:9002 tcp://h:2", "future", "-5", "big",
                                    "18446744073709551615", "huge", "18446744073709551616",
                                    "odd", "007", "role", "dup", "breaker.n1.0",
                                    "OPEN auto heartbeat since=1700000000123 trips=2 probes=0",
                                    "breaker.bad", "junk", "breaker.n2.1",
                                    "HALF_OPEN auto failures since=1700000000456 trips=1 "
                                    "probes=1 cart=FREE",
                                    NULL});
    st->replicas[1].rtt_us = 200;
    snprintf(st->replicas[2].error, sizeof st->replicas[2].error, "connection refused");
}

TEST(status_json)
{
    zcart_status_t st = {0};
    make_status(&st);
    char *s;
    CAPTURE(s, zcli_print_status(out, true, ZCART_ANSWERED, &st));
    CHECK_STR(s,
              "{\"ok\":true,\"replicas\":["
              "{\"id\":1,\"endpoint\":\"tcp://h:1\",\"role\":\"follower\",\"term\":3,"
              "\"commit_index\":10,\"applied_index\":10,\"digest\":\"0000000000000123\","
              "\"reachable\":true,\"contacted\":\"tcp://h:1\",\"rtt_us\":100,\"storage\":null,\"leader_id\":2,"
              "\"carts_total\":1,\"carts_free\":1,\"carts_assigned\":0,\"carts_draining\":0},"
              "{\"id\":2,\"endpoint\":\"tcp://h:2\",\"role\":\"leader\",\"term\":3,"
              "\"commit_index\":11,\"applied_index\":11,\"digest\":\"1234567890123456\","
              "\"reachable\":true,\"contacted\":\"tcp://h:2\",\"rtt_us\":200,\"storage\":null,\"leader_id\":2,"
              "\"carts_total\":8,\"carts_free\":5,\"carts_assigned\":2,\"carts_draining\":1,"
              "\"member.2\":\"voter 127.0.0.1:9002 tcp://h:2\",\"future\":-5,"
              "\"big\":18446744073709551615,\"huge\":\"18446744073709551616\",\"odd\":\"007\","
              "\"breaker.n1.0\":\"OPEN auto heartbeat since=1700000000123 trips=2 probes=0\","
              "\"breaker.bad\":\"junk\",\"breaker.n2.1\":\"HALF_OPEN auto failures "
              "since=1700000000456 trips=1 probes=1 cart=FREE\"},"
              "{\"id\":null,\"endpoint\":\"tcp://h:3\",\"role\":null,\"term\":null,"
              "\"commit_index\":null,\"applied_index\":null,\"digest\":null,"
              "\"reachable\":false,\"contacted\":\"tcp://h:3\",\"error\":\"connection refused\",\"storage\":null}"
              "],\"carts\":{\"total\":8,\"free\":5,\"assigned\":2,\"draining\":1},"
                  "\"sessions\":{\"live\":null,\"ended\":null},"
              "\"leader\":\"tcp://h:2\",\"breakers\":[{\"cart\":\"n1.0\",\"state\":\"OPEN\","
              "\"mode\":\"auto\",\"why\":\"heartbeat\",\"since_ms\":1700000000123,\"trips\":2,"
              "\"probes\":0,\"cart_state\":null},{\"cart\":\"n2.1\",\"state\":\"HALF_OPEN\","
              "\"mode\":\"auto\",\"why\":\"failures\",\"since_ms\":1700000000456,\"trips\":1,"
              "\"probes\":1,\"cart_state\":\"FREE\"}]}\n");
    free(s);
    /* No leader: carts from the first replica that answered. */
    snprintf(st.replicas[1].props[2].value, sizeof st.replicas[1].props[2].value, "candidate");
    CAPTURE(s, zcli_print_status(out, true, ZCART_ANSWERED, &st));
    CHECK(strstr(s, "\"carts\":{\"total\":1,\"free\":1,\"assigned\":0,\"draining\":0},"
                    "\"sessions\":{\"live\":null,\"ended\":null},"
                    "\"leader\":null,\"breakers\":[]}\n") != NULL);
    free(s);
    zcart_status_clear(&st);
    /* Nobody answered. */
    st.n_replicas = 1;
    st.replicas = calloc(1, sizeof *st.replicas);
    snprintf(st.replicas[0].endpoint, sizeof st.replicas[0].endpoint, "tcp://h:1");
    snprintf(st.replicas[0].error, sizeof st.replicas[0].error, "no answer within 1000 ms");
    CAPTURE(s, zcli_print_status(out, true, ZCART_EUNREACHABLE, &st));
    CHECK_STR(s, "{\"ok\":false,\"reason\":\"UNREACHABLE\",\"detail\":\"no replica answered\","
                 "\"replicas\":[{\"id\":null,\"endpoint\":\"tcp://h:1\",\"role\":null,"
                 "\"term\":null,\"commit_index\":null,\"applied_index\":null,\"digest\":null,"
                 "\"reachable\":false,\"contacted\":\"tcp://h:1\",\"error\":\"no answer within "
                 "1000 ms\",\"storage\":null}],\"carts\":null,\"sessions\":null,\"leader\":null,"
                  "\"breakers\":[]}\n");
    free(s);
    zcart_status_clear(&st);
}

TEST(status_text)
{
    zcart_status_t st = {0};
    make_status(&st);
    char *s;
    CAPTURE(s, zcli_print_status(out, false, ZCART_ANSWERED, &st));
    CHECK_STR(s,
              "ID  ENDPOINT   ROLE      TERM  COMMIT  APPLIED  DIGEST            LEADER  STATE\n"
              "1   tcp://h:1  follower  3     10      10       0000000000000123  2       up\n"
              "2   tcp://h:2  leader    3     11      11       1234567890123456  2       up\n"
              "-   tcp://h:3  -         -     -       -        -                 -       "
              "connection refused\n"
              "carts: total 8, free 5, assigned 2, draining 1 (leader tcp://h:2)\n"
              "breaker n1.0: OPEN (auto, heartbeat) since 2023-11-14T22:13:20.123Z, trips 2\n"
              "breaker n2.1: HALF_OPEN (auto, failures) since 2023-11-14T22:13:20.456Z, trips 1, "
              "cart FREE\n");
    free(s);
    zcart_status_clear(&st);
}

/* A replica's props are printed with control bytes escaped: a hostile
 * replica cannot drive the operator's terminal. */
TEST(status_text_escapes_control_bytes)
{
    zcart_status_t st = {0};
    make_status(&st);
    free(st.replicas[0].props);
    set_props(&st.replicas[0], (const char *const[]){"id", "1", "endpoint", "tcp://h:1", "role",
                                                     "fol\x1b[2Jlower", NULL});
    char *s;
    CAPTURE(s, zcli_print_status(out, false, ZCART_ANSWERED, &st));
    CHECK(strchr(s, 0x1b) == NULL);
    CHECK(strstr(s, "fol\\x1b[2Jlower") != NULL);
    free(s);
    zcart_status_clear(&st);
}

TEST(integers)
{
    CHECK(zcli_is_integer("0"));
    CHECK(zcli_is_integer("42"));
    CHECK(zcli_is_integer("-7"));
    CHECK(zcli_is_integer("18446744073709551615"));
    CHECK(!zcli_is_integer("18446744073709551616"));
    CHECK(zcli_is_integer("-9223372036854775808"));
    CHECK(!zcli_is_integer("-9223372036854775809"));
    CHECK(!zcli_is_integer(""));
    CHECK(!zcli_is_integer("-"));
    CHECK(!zcli_is_integer("-0"));
    CHECK(!zcli_is_integer("01"));
    CHECK(!zcli_is_integer("1.5"));
    CHECK(!zcli_is_integer(" 1"));
    CHECK(!zcli_is_integer("abc"));
    CHECK(!zcli_is_integer(NULL));
}

TEST(latency_percentiles)
{
    zlat_t l;
    CHECK(zlat_init(&l, 4) == 0);
    CHECK_EQ_U64(zlat_percentile(&l, 50), 0);
    CHECK_EQ_U64(zlat_max(&l), 0);
    for (int i = 100; i >= 1; i--) /* 100 .. 1: grows past the preallocation */
        CHECK(zlat_add(&l, (uint64_t)i) == 0);
    CHECK_EQ_U64(l.n, 100);
    CHECK_EQ_U64(zlat_percentile(&l, 50), 50);
    CHECK_EQ_U64(zlat_percentile(&l, 99), 99);
    CHECK_EQ_U64(zlat_percentile(&l, 100), 100);
    CHECK_EQ_U64(zlat_percentile(&l, 0.1), 1);
    CHECK_EQ_U64(zlat_max(&l), 100);
    CHECK(zlat_mean(&l) > 50.49 && zlat_mean(&l) < 50.51);
    zlat_t m;
    zlat_init(&m, 0);
    zlat_add(&m, 1000);
    zlat_add(&m, (uint64_t)1 << 40); /* saturates */
    CHECK(zlat_merge(&l, &m) == 0);
    CHECK_EQ_U64(l.n, 102);
    CHECK_EQ_U64(zlat_max(&l), UINT32_MAX);
    CHECK_EQ_U64(zlat_percentile(&l, 99), 1000); /* rank 101 of 102 */
    zlat_clear(&m);
    zlat_clear(&l);
    CHECK(l.us == NULL && l.n == 0);
    /* One sample. */
    zlat_init(&l, 0);
    zlat_add(&l, 7);
    CHECK_EQ_U64(zlat_percentile(&l, 50), 7);
    CHECK_EQ_U64(zlat_percentile(&l, 99), 7);
    zlat_clear(&l);
}

int main(void)
{
    RUN(op_text);
    RUN(op_text_escapes_control_bytes);
    RUN(op_json);
    RUN(exit_codes);
    RUN(status_json);
    RUN(status_text);
    RUN(status_text_escapes_control_bytes);
    RUN(integers);
    RUN(latency_percentiles);
    return unit_report();
}
