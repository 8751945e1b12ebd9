/* test_ops_http: lib/prom's histograms and exposition text, and lib/httpd serving it on a
 * libuv loop, asked by a plain blocking HTTP client on another thread. */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

#include "lib/httpd.h"
#include "lib/prom.h"
#include "unit.h"

TEST(prom_family_sample_and_escaping)
{
    zc_prom_t p;
    zc_prom_init(&p);
    zc_prom_family(&p, "zcart_x_total", "counter", "Things.\nMore.");
    zc_prom_sample(&p, "zcart_x_total", (const char *[]){"op", "add", "node", "a\"b\\c\nd", NULL},
                   3);
    zc_prom_sample(&p, "zcart_x_total", NULL, 0.5);
    const char *t = zc_prom_text(&p, NULL);
    CHECK_STR(t, "# HELP zcart_x_total Things.\\nMore.\n"
                 "# TYPE zcart_x_total counter\n"
                 "zcart_x_total{op=\"add\",node=\"a\\\"b\\\\c\\nd\"} 3\n"
                 "zcart_x_total 0.5\n");
    zc_prom_clear(&p);
}

TEST(prom_histogram_is_cumulative_in_seconds)
{
    zc_hist_t h = {0};
    zc_hist_observe(&h, 50);       /* <= 100 us */
    zc_hist_observe(&h, 100);      /* <= 100 us (bounds are inclusive) */
    zc_hist_observe(&h, 3000);     /* <= 5 ms */
    zc_hist_observe(&h, 60000000); /* beyond 10 s: +Inf only */
    CHECK_EQ_U64(h.count, 4);
    zc_prom_t p;
    zc_prom_init(&p);
    zc_prom_hist(&p, "zcart_t_seconds", (const char *[]){"op", "add", NULL}, &h);
    const char *t = zc_prom_text(&p, NULL);
    CHECK(strstr(t, "zcart_t_seconds_bucket{op=\"add\",le=\"0.0001\"} 2\n") != NULL);
    CHECK(strstr(t, "zcart_t_seconds_bucket{op=\"add\",le=\"0.0025\"} 2\n") != NULL);
    CHECK(strstr(t, "zcart_t_seconds_bucket{op=\"add\",le=\"0.005\"} 3\n") != NULL);
    CHECK(strstr(t, "zcart_t_seconds_bucket{op=\"add\",le=\"10\"} 3\n") != NULL);
    CHECK(strstr(t, "zcart_t_seconds_bucket{op=\"add\",le=\"+Inf\"} 4\n") != NULL);
    CHECK(strstr(t, "zcart_t_seconds_count{op=\"add\"} 4\n") != NULL);
    CHECK(strstr(t, "zcart_t_seconds_sum{op=\"add\"} 60.00315\n") != NULL);
    zc_prom_clear(&p);
}

TEST(hist_quantile_is_the_bucket_bound)
{
    zc_hist_t h = {0};
    CHECK_EQ_U64(zc_hist_quantile_le(&h, 500), 0); /* empty */
    for (int i = 0; i < 98; i++)
        zc_hist_observe(&h, 80); /* <= 100 us */
    zc_hist_observe(&h, 700);    /* <= 1 ms */
    zc_hist_observe(&h, 7000);   /* <= 10 ms */
    CHECK_EQ_U64(zc_hist_quantile_le(&h, 500), 100);
    CHECK_EQ_U64(zc_hist_quantile_le(&h, 980), 100);
    CHECK_EQ_U64(zc_hist_quantile_le(&h, 990), 1000);
    CHECK_EQ_U64(zc_hist_quantile_le(&h, 1000), 10000);
    zc_hist_observe(&h, 60000000); /* past the last bound */
    CHECK(zc_hist_quantile_le(&h, 1000) == UINT64_MAX);
}

TEST(hist_recent_forgets_after_two_periods)
{
    const uint64_t P = ZC_HIST_RECENT_US, t0 = 1000000;
    zc_hist_recent_t r = {0};
    zc_hist_t out;
    zc_hist_recent_observe(&r, t0, 50);
    zc_hist_recent_observe(&r, t0 + P / 2, 3000);
    zc_hist_recent_read(&r, t0 + P / 2, &out);
    CHECK_EQ_U64(out.count, 2);
    CHECK_EQ_U64(out.sum_us, 3050);
    /* One period on: both still in (the older half). */
    zc_hist_recent_observe(&r, t0 + P + 1, 200);
    zc_hist_recent_read(&r, t0 + P + 2, &out);
    CHECK_EQ_U64(out.count, 3);
    /* Two periods after the first: the first half dropped, the 200 kept. */
    zc_hist_recent_read(&r, t0 + 2 * P + 1, &out);
    CHECK_EQ_U64(out.count, 1);
    CHECK_EQ_U64(out.sum_us, 200);
    CHECK_EQ_U64(zc_hist_quantile_le(&out, 500), 250);
    /* A long silence: nothing left. */
    zc_hist_recent_read(&r, t0 + 10 * P, &out);
    CHECK_EQ_U64(out.count, 0);
}

/* The server side: /hello answers, anything else 404. */
static int served;
static void handler(void *arg, const char *path, zc_http_answer_t *a)
{
    (void)arg;
    served++;
    if (strcmp(path, "/hello") == 0) {
        zc_http_printf(a, "hello %d\n", 42);
        return;
    }
    a->status = 404;
    zc_http_printf(a, "no %s\n", path);
}

/* The client side: one request per connection, on its own thread. */
typedef struct {
    uint16_t port;      /* where */
    const char *req[3]; /* raw requests, sent one per connection */
    char resp[3][1024]; /* what came back */
    uv_async_t done;    /* tells the loop the client finished */
} client_t;

static void ask(uint16_t port, const char *req, char *out, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    size_t got = 0;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        write(fd, req, strlen(req)) == (ssize_t)strlen(req)) {
        ssize_t n;
        while (got + 1 < cap && (n = read(fd, out + got, cap - 1 - got)) > 0)
            got += (size_t)n;
    }
    out[got] = 0;
    close(fd);
}

static void *client_main(void *arg)
{
    client_t *c = arg;
    for (int i = 0; i < 3; i++)
        ask(c->port, c->req[i], c->resp[i], sizeof c->resp[i]);
    uv_async_send(&c->done);
    return NULL;
}

static void on_done(uv_async_t *a) { uv_stop(a->loop); }
static void on_deadline(uv_timer_t *t) { uv_stop(t->loop); }

TEST(httpd_serves_on_the_loop)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256];
    zc_httpd_t *h = zc_httpd_new(&loop, "127.0.0.1:0", handler, NULL, err, sizeof err);
    CHECK(h != NULL);
    if (h == NULL)
        return;
    CHECK(zc_httpd_port(h) != 0);
    /* the port is taken now: a second server on it must fail cleanly */
    char taken[64];
    snprintf(taken, sizeof taken, "127.0.0.1:%u", zc_httpd_port(h));
    CHECK(zc_httpd_new(&loop, taken, handler, NULL, err, sizeof err) == NULL);
    CHECK(strstr(err, "cannot bind it: Address already in use") != NULL);

    client_t c = {.port = zc_httpd_port(h),
                  .req = {"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                          "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                          "POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                          "Connection: close\r\n\r\nhi"}};
    uv_async_init(&loop, &c.done, on_done);
    uv_timer_t deadline;
    uv_timer_init(&loop, &deadline);
    uv_timer_start(&deadline, on_deadline, 10000, 0);
    pthread_t t;
    pthread_create(&t, NULL, client_main, &c);
    uv_run(&loop, UV_RUN_DEFAULT);
    pthread_join(t, NULL);
    CHECK(strncmp(c.resp[0], "HTTP/1.1 200", 12) == 0);
    CHECK(strstr(c.resp[0], "\r\n\r\nhello 42\n") != NULL);
    CHECK(strncmp(c.resp[1], "HTTP/1.1 404", 12) == 0);
    CHECK(strstr(c.resp[1], "no /nope") != NULL);
    CHECK(strncmp(c.resp[2], "HTTP/1.1 405", 12) == 0);
    CHECK(strstr(c.resp[2], "Allow: GET, HEAD") != NULL);
    CHECK_EQ_U64(served, 2); /* the POST never reached the handler */

    zc_httpd_destroy(&h);
    CHECK(h == NULL);
    uv_close((uv_handle_t *)&c.done, NULL);
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);
}

/* --- the API flavour --- */

static unsigned api_calls, pending_seen;
static zc_http_req_t *later_req;
static zc_httpd_t *api;

static void on_later(uv_timer_t *t)
{
    (void)t;
    pending_seen = zc_httpd_pending(api);
    zc_http_reply(later_req, 200, "text/plain", "later\n", 6);
    later_req = NULL;
}

static void api_handler(void *arg, zc_http_req_t *r)
{
    uv_timer_t *timer = arg;
    api_calls++;
    if (strcmp(zc_http_req_path(r), "/later") == 0) {
        later_req = r; /* answered by the timer: the connection waits, suspended */
        uv_timer_start(timer, on_later, 100, 0);
        return;
    }
    size_t n;
    const char *body = zc_http_req_body(r, &n);
    const char *x = zc_http_req_query(r, "x"), *tok = zc_http_req_header(r, "x-token");
    char out[256];
    int len = snprintf(out, sizeof out, "%s %s x=%s tok=%s body=%.*s\n", zc_http_req_method(r),
                       zc_http_req_path(r), x ? x : "-", tok ? tok : "-", (int)n, body);
    zc_http_req_add_header(r, "X-Extra", "yes");
    zc_http_reply(r, 201, "text/plain", out, (size_t)len);
}

typedef struct {
    uint16_t port;      /* where */
    char *req[5];       /* raw requests, one per connection (owned) */
    char resp[5][2048]; /* what came back */
    uv_async_t done;    /* tells the loop the client finished */
} api_client_t;

static void *api_client_main(void *arg)
{
    api_client_t *c = arg;
    for (int i = 0; i < 5; i++)
        ask(c->port, c->req[i], c->resp[i], sizeof c->resp[i]);
    uv_async_send(&c->done);
    return NULL;
}

/* Any method, query and headers, a bounded body, and an answer given later
 * from a timer while the connection waits suspended. */
TEST(httpd_api_answers_later_and_bounds_requests)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_timer_t timer, deadline;
    uv_timer_init(&loop, &timer);
    uv_timer_init(&loop, &deadline);
    char err[256];
    api = zc_httpd_new_api(&loop, "127.0.0.1:0", NULL, api_handler, &timer, err, sizeof err);
    CHECK(api != NULL);
    if (api == NULL)
        return;
    api_client_t c = {.port = zc_httpd_port(api)};
    c.req[0] = strdup("POST /echo?x=7 HTTP/1.1\r\nHost: x\r\nX-Token: abc\r\n"
                      "Content-Length: 5\r\nConnection: close\r\n\r\nhello");
    c.req[1] = strdup("GET /later HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    char *big = malloc(9000 + 200), *hdr = malloc(10000 + 200);
    int n = sprintf(big, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 9000\r\n"
                         "Connection: close\r\n\r\n");
    memset(big + n, 'a', 9000);
    big[n + 9000] = 0;
    c.req[2] = big;
    n = sprintf(hdr, "GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(hdr + n, 'b', 10000);
    strcpy(hdr + n + 10000, "\r\nConnection: close\r\n\r\n");
    c.req[3] = hdr;
    c.req[4] = strdup("DELETE /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    uv_async_init(&loop, &c.done, on_done);
    uv_timer_start(&deadline, on_deadline, 10000, 0);
    pthread_t t;
    pthread_create(&t, NULL, api_client_main, &c);
    uv_run(&loop, UV_RUN_DEFAULT);
    pthread_join(t, NULL);
    CHECK(strncmp(c.resp[0], "HTTP/1.1 201", 12) == 0);
    CHECK(strstr(c.resp[0], "X-Extra: yes") != NULL);
    CHECK(strstr(c.resp[0], "POST /echo x=7 tok=abc body=hello") != NULL);
    CHECK(strncmp(c.resp[1], "HTTP/1.1 200", 12) == 0);
    CHECK(strstr(c.resp[1], "\r\n\r\nlater\n") != NULL);
    CHECK_EQ_U64(pending_seen, 1); /* it was pending while the client waited */
    CHECK(strncmp(c.resp[2], "HTTP/1.1 413", 12) == 0);
    CHECK(strncmp(c.resp[3], "HTTP/1.1 431", 12) == 0);
    CHECK(strncmp(c.resp[4], "HTTP/1.1 201", 12) == 0);
    CHECK(strstr(c.resp[4], "DELETE /echo x=- tok=- body=") != NULL);
    CHECK_EQ_U64(api_calls, 3); /* 413 and 431 never reached the handler */
    CHECK_EQ_U64(zc_httpd_pending(api), 0);
    for (int i = 0; i < 5; i++)
        free(c.req[i]);
    zc_httpd_destroy(&api);
    uv_close((uv_handle_t *)&c.done, NULL);
    uv_close((uv_handle_t *)&timer, NULL);
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);
}

TEST(httpd_rejects_bad_addresses)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256];
    const char *bad[] = {"nocolon",         ":80",          "127.0.0.1:",
                         "127.0.0.1:70000", "127.0.0.1:8x", "no.such.host.invalid:80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        CHECK(zc_httpd_new(&loop, bad[i], handler, NULL, err, sizeof err) == NULL);
        CHECK(strstr(err, bad[i]) != NULL);
    }
    CHECK(uv_loop_close(&loop) == 0);
}

int main(void)
{
    RUN(prom_family_sample_and_escaping);
    RUN(prom_histogram_is_cumulative_in_seconds);
    RUN(hist_quantile_is_the_bucket_bound);
    RUN(hist_recent_forgets_after_two_periods);
    RUN(httpd_serves_on_the_loop);
    RUN(httpd_rejects_bad_addresses);
    RUN(httpd_api_answers_later_and_bounds_requests);
    return unit_report();
}
