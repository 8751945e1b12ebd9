/* test_stock_client: the stock client's start-up grace and fast failure.
 *
 * A real stock_client on a real libuv loop against a ROUTER this test binds
 * itself (ZeroMQ over loopback), so what is checked is what the cart node
 * gets:
 *   - a check made before the stock is listening waits for the connection
 *     (within its timeout) and is answered by the stock, not refused;
 *   - once the stock has been connected, a check made after it went away is
 *     refused at once (STOCK_UNAVAILABLE from inside stock_client_check);
 *   - a check made at start-up against a stock that never comes is answered
 *     STOCK_UNAVAILABLE when its timeout is spent, exactly once. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "cart/stock_client.h"
#include "lib/zmqx.h"
#include "proto/msg.h"
#include "proto/status.h"
#include "unit.h"

/* One callback's outcome. */
typedef struct {
    int calls;  /* times called */
    int status; /* last status */
} outcome_t;

static void on_result(void *arg, int status, uint32_t available, const char *detail)
{
    (void)available;
    (void)detail;
    outcome_t *o = arg;
    o->calls++;
    o->status = status;
}

static uv_loop_t loop;

/* Run the loop for about ms milliseconds. */
static void run_for(unsigned ms)
{
    uint64_t end = uv_now(&loop) + ms;
    while (uv_now(&loop) < end) {
        uv_run(&loop, UV_RUN_NOWAIT);
        uv_sleep(1);
        uv_update_time(&loop);
    }
}

/* Answer every CHECK waiting on the ROUTER with OK / 100 units. */
static int answer_checks(void *router)
{
    int n = 0;
    zc_zmsg_t z;
    while (zc_zmsg_recv(router, &z) == 0) {
        zc_msg_t m, r;
        const char *why;
        zc_msg_init(&m, 0);
        if (z.n == 2 && zc_msg_decode(&m, zc_zmsg_data(&z, 1), zc_zmsg_size(&z, 1), &why) == 0) {
            zc_msg_init(&r, ZC_MSG_CHECK_REPLY);
            r.corr = m.corr;
            r.status = ZC_OK;
            r.qty = 100;
            zc_wbuf_t w;
            zc_wbuf_init(&w);
            zc_msg_encode(&r, &w);
            zc_zsend(router, zc_zmsg_data(&z, 0), zc_zmsg_size(&z, 0), w.data, w.len);
            zc_wbuf_clear(&w);
            n++;
        }
        zc_msg_reset(&m);
        zc_zmsg_close(&z);
    }
    return n;
}

static stock_client_t *client(void *zctx, const char *ep, unsigned timeout_ms)
{
    char err[256];
    stock_client_config_t cfg = {.endpoints = ep, .timeout_ms = timeout_ms,
                                 .breaker = {.failures = 3, .open_ms = 1000, .open_max_ms = 8000}};
    stock_client_t *c = stock_client_new(&loop, zctx, &cfg, err, sizeof err);
    if (c == NULL)
        fprintf(stderr, "stock_client_new: %s\n", err);
    return c;
}

/* A free port between the integration tests' blocks (10000..32699) and the
 * kernel's ephemeral range (32768..), found with a plain socket whose close
 * is synchronous.  Two flakes are kept out this way: a ZeroMQ listener
 * closed with zmq_close goes away later, in the I/O thread, so the client
 * could still connect to it, hand it the check and lose it (STOCK_TIMEOUT,
 * about one run in five under load); and a client reconnecting to a closed
 * ephemeral port can be given that port as its own source port and connect
 * to itself. */
static int quiet_port(char *ep, size_t cap)
{
    for (int port = 32700; port < 32768; port++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
        if (fd >= 0)
            close(fd);
        if (ok) {
            snprintf(ep, cap, "tcp://127.0.0.1:%d", port);
            return 0;
        }
    }
    return -1;
}

TEST(startup_check_waits_for_the_first_connection_then_fails_fast)
{
    void *zctx = zmq_ctx_new();
    char ep[128];
    CHECK(quiet_port(ep, sizeof ep) == 0); /* nobody listens on it yet */
    stock_client_t *c = client(zctx, ep, 1500);
    CHECK(c != NULL);
    outcome_t first = {0};
    stock_client_check(c, "apple", 1, 0, on_result, &first);
    CHECK_EQ_U64(first.calls, 0); /* not refused: it waits for a connection */
    run_for(100);
    CHECK_EQ_U64(first.calls, 0);
    /* The stock comes up within the check's budget and answers it. */
    void *router = zmq_socket(zctx, ZMQ_ROUTER);
    zc_zsock_defaults(router);
    CHECK(zmq_bind(router, ep) == 0);
    int answered = 0;
    for (int i = 0; i < 1000 && first.calls == 0; i++) {
        run_for(2);
        answered += answer_checks(router);
    }
    CHECK_EQ_U64(first.calls, 1);
    CHECK_EQ_U64(first.status, ZC_OK);
    CHECK(answered >= 1);
    /* Connected once: the stock going away is refused at once from now on. */
    zmq_close(router);
    outcome_t later = {0};
    for (int i = 0; i < 1000 && later.calls == 0; i++) {
        run_for(2);
        outcome_t o = {0};
        stock_client_check(c, "apple", 1, 0, on_result, &o);
        /* Until the disconnect is noticed a check may still be sent (and
         * time out later); once it is, the refusal is synchronous. */
        if (o.calls == 1 && o.status == ZC_STOCK_UNAVAILABLE)
            later = o;
    }
    CHECK_EQ_U64(later.calls, 1);
    CHECK_EQ_U64(later.status, ZC_STOCK_UNAVAILABLE);
    stock_client_destroy(&c);
    uv_run(&loop, UV_RUN_NOWAIT);
    zmq_ctx_term(zctx);
}

TEST(startup_check_against_a_stock_that_never_comes_is_unavailable_once)
{
    void *zctx = zmq_ctx_new();
    stock_client_t *c = client(zctx, "tcp://127.0.0.1:1", 200);
    CHECK(c != NULL);
    outcome_t o = {0};
    stock_client_check(c, "apple", 1, 0, on_result, &o);
    CHECK_EQ_U64(o.calls, 0);
    for (int i = 0; i < 200 && o.calls == 0; i++)
        run_for(5);
    CHECK_EQ_U64(o.calls, 1);
    CHECK_EQ_U64(o.status, ZC_STOCK_UNAVAILABLE);
    run_for(50);
    CHECK_EQ_U64(o.calls, 1);
    stock_client_destroy(&c);
    uv_run(&loop, UV_RUN_NOWAIT);
    zmq_ctx_term(zctx);
}

int main(void)
{
    uv_loop_init(&loop);
    RUN(startup_check_waits_for_the_first_connection_then_fails_fast);
    RUN(startup_check_against_a_stock_that_never_comes_is_unavailable_once);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return unit_report();
}
