/* raw_2hop: the raw ZeroMQ floor under zcart's routed path, for
 * bench/compare.py (`make bench-compare`).
 *
 * A client's request crosses two hops to a worker and back, as a routed
 * add crosses the broker to a cart node: N client DEALERs -> a broker's
 * front ROUTER -> its back ROUTER -> one worker DEALER, and the reply the
 * same way back, every hop TCP on loopback, every message one frame of the
 * sizes zcart's REQUEST and REPLY have (--req-bytes, --rep-bytes).  Nothing
 * is encoded, checked, stored or synced: this is what ZeroMQ itself costs.
 * Each client keeps one request in flight (as zcart-bench's clients do).
 * With --curve 1 every hop runs CurveZMQ, as zcart's do (the broker's two
 * ROUTERs are servers, clients and worker connect with a key pair of
 * their own; no ZAP handler, so any key is admitted): the difference is what
 * encryption itself costs on these message sizes.
 *
 * With --hops 3 the worker asks a third party before it answers, as a cart
 * node asks the stock service before it answers an add: worker DEALER ->
 * stock ROUTER and back, one frame each way (--req-bytes / --rep-bytes),
 * so a round trip is zcart's routed add's six messages with nothing
 * encoded, stored or synced.
 *
 * By default the clients, the broker and the worker are threads of one
 * process sharing one ZeroMQ context, so one I/O thread carries both ends
 * of every connection.  With --procs 1 the broker, the worker and the
 * stock are processes of their own, each with its own context (and I/O
 * thread), as zcart's client, replica, cart node and stock service are:
 * every message then wakes an I/O thread on both sides and the receiving
 * process, which is what a hop between processes costs.
 *
 * Prints one JSON object: clients, seconds, round trips, rt_per_s, p50_us,
 * p99_us, and the options (req_bytes, rep_bytes, curve, procs, hops). */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "lib/clock.h"

#define MAX_CLIENTS 256

static struct {
    void *ctx;                /* one context for every socket */
    char front[64], back[64]; /* the broker's endpoints (ports the kernel picked) */
    int clients;              /* client threads */
    int seconds;              /* how long the clients run */
    size_t req_bytes;         /* request size */
    size_t rep_bytes;         /* reply size */
    volatile int stop;        /* set once the clients are done */
    volatile int lost;        /* a client timed out waiting (a dropped message) */
    int curve;                /* --curve 1: CurveZMQ on every hop */
    int procs;                /* --procs 1: broker and worker in processes of their own */
    int hops;                 /* 2, or 3: the worker asks the stock before answering */
    char stock[64];           /* the stock's endpoint, --hops 3 */
    char server_public[41], server_secret[41]; /* the broker's key pair (Z85) */
    char peer_public[41], peer_secret[41];     /* one pair for every client and the worker */
} g;

/* CurveZMQ roles, when --curve 1 (before bind or connect). */
static void curve_server(void *s)
{
    int one = 1;
    if (!g.curve)
        return;
    zmq_setsockopt(s, ZMQ_CURVE_SERVER, &one, sizeof one);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, g.server_secret, 40);
}

static void curve_client(void *s)
{
    if (!g.curve)
        return;
    zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, g.server_public, 40);
    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, g.peer_public, 40);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, g.peer_secret, 40);
}

/* One client's latencies, µs. */
typedef struct {
    uint32_t *lat;    /* samples */
    size_t n, cap;    /* used, allocated */
    pthread_t thread; /* its thread */
} client_t;

/* The broker: front ROUTER (clients) <-> back ROUTER (the worker "w");
 * both bound by main before the thread starts (pthread_create hands them
 * over). */
static void *front_sock, *back_sock;

static void *broker(void *arg)
{
    (void)arg;
    void *front = front_sock, *back = back_sock;
    zmq_pollitem_t it[2] = {{front, 0, ZMQ_POLLIN, 0}, {back, 0, ZMQ_POLLIN, 0}};
    char id[256], body[65536], peer[256];
    while (!g.stop) {
        if (zmq_poll(it, 2, 100) <= 0)
            continue;
        if (it[0].revents & ZMQ_POLLIN) { /* [client][req] -> [w][client][req] */
            int il = zmq_recv(front, id, sizeof id, 0);
            int bl = zmq_recv(front, body, sizeof body, 0);
            if (il > 0 && bl >= 0) {
                zmq_send(back, "w", 1, ZMQ_SNDMORE);
                zmq_send(back, id, (size_t)il, ZMQ_SNDMORE);
                zmq_send(back, body, (size_t)bl, 0);
            }
        }
        if (it[1].revents & ZMQ_POLLIN) { /* [w][client][rep] -> [client][rep] */
            zmq_recv(back, peer, sizeof peer, 0);
            int il = zmq_recv(back, id, sizeof id, 0);
            int more = 0;
            size_t ml = sizeof more;
            zmq_getsockopt(back, ZMQ_RCVMORE, &more, &ml);
            if (!more) /* [w][hello]: the worker is connected */
                continue;
            int bl = zmq_recv(back, body, sizeof body, 0);
            if (il > 0 && bl >= 0) {
                zmq_send(front, id, (size_t)il, ZMQ_SNDMORE);
                zmq_send(front, body, (size_t)bl, 0);
            }
        }
    }
    zmq_close(front);
    zmq_close(back);
    return NULL;
}

/* --hops 3: the stock, a ROUTER (bound before it runs) answering each
 * [worker][tag][request] with [worker][tag][reply]. */
static void *stock_sock;

static void *stock(void *arg)
{
    (void)arg;
    char peer[256], tag[256], body[65536];
    char *rep = calloc(1, g.rep_bytes ? g.rep_bytes : 1);
    int timeout = 100;
    zmq_setsockopt(stock_sock, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    while (!g.stop) {
        int pl = zmq_recv(stock_sock, peer, sizeof peer, 0);
        if (pl <= 0)
            continue;
        int tl = zmq_recv(stock_sock, tag, sizeof tag, 0);
        if (tl < 0 || zmq_recv(stock_sock, body, sizeof body, 0) < 0)
            continue;
        zmq_send(stock_sock, peer, (size_t)pl, ZMQ_SNDMORE);
        zmq_send(stock_sock, tag, (size_t)tl, ZMQ_SNDMORE);
        zmq_send(stock_sock, rep, g.rep_bytes, 0);
    }
    free(rep);
    zmq_close(stock_sock);
    return NULL;
}

/* The worker: answers every request with a reply of rep_bytes.  With
 * --hops 3 it first asks the stock, asynchronously as a cart node does
 * (several questions out at once, each answer matched by its tag: the
 * client's routing id), and answers when the stock has. */
static void *worker(void *arg)
{
    (void)arg;
    void *d = zmq_socket(g.ctx, ZMQ_DEALER), *s = NULL;
    zmq_setsockopt(d, ZMQ_ROUTING_ID, "w", 1);
    curve_client(d);
    zmq_connect(d, g.back);
    if (g.hops == 3) {
        s = zmq_socket(g.ctx, ZMQ_DEALER);
        curve_client(s);
        zmq_connect(s, g.stock);
    }
    zmq_send(d, "hello", 5, 0); /* a ROUTER drops what it cannot route yet */
    char id[256], body[65536];
    char *rep = calloc(1, g.rep_bytes ? g.rep_bytes : 1);
    zmq_pollitem_t it[2] = {{d, 0, ZMQ_POLLIN, 0}, {s, 0, ZMQ_POLLIN, 0}};
    while (!g.stop) {
        if (zmq_poll(it, s ? 2 : 1, 100) <= 0)
            continue;
        if (it[0].revents & ZMQ_POLLIN) { /* [client][request] */
            int il = zmq_recv(d, id, sizeof id, 0);
            int bl = zmq_recv(d, body, sizeof body, 0);
            if (il <= 0 || bl < 0)
                continue;
            if (s != NULL) {
                zmq_send(s, id, (size_t)il, ZMQ_SNDMORE);
                zmq_send(s, body, (size_t)bl, 0);
            } else {
                zmq_send(d, id, (size_t)il, ZMQ_SNDMORE);
                zmq_send(d, rep, g.rep_bytes, 0);
            }
        }
        if (s != NULL && (it[1].revents & ZMQ_POLLIN)) { /* [client][stock's reply] */
            int il = zmq_recv(s, id, sizeof id, 0);
            if (il <= 0 || zmq_recv(s, body, sizeof body, 0) < 0)
                continue;
            zmq_send(d, id, (size_t)il, ZMQ_SNDMORE);
            zmq_send(d, rep, g.rep_bytes, 0);
        }
    }
    free(rep);
    if (s != NULL)
        zmq_close(s);
    zmq_close(d);
    return NULL;
}

static void *client(void *arg)
{
    client_t *c = arg;
    void *d = zmq_socket(g.ctx, ZMQ_DEALER);
    int timeout = 5000;
    zmq_setsockopt(d, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    curve_client(d);
    zmq_connect(d, g.front);
    char *req = calloc(1, g.req_bytes ? g.req_bytes : 1), buf[65536];
    uint64_t end = zc_mono_us() + (uint64_t)g.seconds * 1000000u;
    for (uint64_t now = zc_mono_us(); now < end; now = zc_mono_us()) {
        zmq_send(d, req, g.req_bytes, 0);
        if (zmq_recv(d, buf, sizeof buf, 0) < 0) {
            g.lost = 1;
            break;
        }
        if (c->n == c->cap) {
            c->cap = c->cap ? 2 * c->cap : 65536;
            c->lat = realloc(c->lat, c->cap * sizeof *c->lat);
        }
        c->lat[c->n++] = (uint32_t)(zc_mono_us() - now);
    }
    free(req);
    zmq_close(d);
    return NULL;
}

/* A TCP port on loopback nobody listens on now (the kernel's pick). */
static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &al) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static void *bound_router(const char *endpoint)
{
    void *s = zmq_socket(g.ctx, ZMQ_ROUTER);
    if (s != NULL)
        curve_server(s);
    if (s == NULL || zmq_bind(s, endpoint) != 0) {
        fprintf(stderr, "raw_2hop: bind %s: %s\n", endpoint, zmq_strerror(zmq_errno()));
        return NULL;
    }
    return s;
}

static int bind_broker(void)
{
    front_sock = bound_router(g.front);
    back_sock = bound_router(g.back);
    return front_sock && back_sock ? 0 : -1;
}

static int bind_stock(void)
{
    stock_sock = bound_router(g.stock);
    return stock_sock ? 0 : -1;
}

static void *run_broker(void *arg) { return bind_broker() == 0 ? broker(arg) : NULL; }
static void *run_stock(void *arg) { return bind_stock() == 0 ? stock(arg) : NULL; }

/* --procs: fn in a child process with a context of its own, until killed. */
static pid_t spawn(void *(*fn)(void *))
{
    pid_t pid = fork();
    if (pid == 0) {
        g.ctx = zmq_ctx_new();
        fn(NULL);
        _exit(1); /* a bind failed */
    }
    return pid;
}

/* One request answered through the whole path within 5 s (the broker
 * drops requests until the worker's hello reached it). */
static bool path_answers(void)
{
    void *d = zmq_socket(g.ctx, ZMQ_DEALER);
    int timeout = 100, zero = 0;
    zmq_setsockopt(d, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof zero);
    curve_client(d);
    zmq_connect(d, g.front);
    char req[64] = {0}, buf[65536];
    bool ok = false;
    for (int i = 0; i < 50 && !ok; i++)
        ok = zmq_send(d, req, sizeof req, 0) >= 0 && zmq_recv(d, buf, sizeof buf, 0) >= 0;
    zmq_close(d);
    return ok;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    g.clients = 1;
    g.seconds = 5;
    g.req_bytes = 64;
    g.rep_bytes = 96;
    g.hops = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        long v = atol(argv[i + 1]);
        if (strcmp(argv[i], "-c") == 0 && v >= 1 && v <= MAX_CLIENTS)
            g.clients = (int)v;
        else if (strcmp(argv[i], "-d") == 0 && v >= 1 && v <= 3600)
            g.seconds = (int)v;
        else if (strcmp(argv[i], "--req-bytes") == 0 && v >= 0 && v <= 65536)
            g.req_bytes = (size_t)v;
        else if (strcmp(argv[i], "--rep-bytes") == 0 && v >= 0 && v <= 65536)
            g.rep_bytes = (size_t)v;
        else if (strcmp(argv[i], "--curve") == 0 && (v == 0 || v == 1))
            g.curve = (int)v;
        else if (strcmp(argv[i], "--procs") == 0 && (v == 0 || v == 1))
            g.procs = (int)v;
        else if (strcmp(argv[i], "--hops") == 0 && (v == 2 || v == 3))
            g.hops = (int)v;
        else {
            fprintf(stderr, "usage: raw_2hop [-c CLIENTS] [-d SECONDS] [--req-bytes N] "
                            "[--rep-bytes N] [--curve 0|1] [--procs 0|1] [--hops 2|3]\n");
            return 2;
        }
    }
    if (g.curve && (zmq_curve_keypair(g.server_public, g.server_secret) != 0 ||
                    zmq_curve_keypair(g.peer_public, g.peer_secret) != 0)) {
        fprintf(stderr, "raw_2hop: --curve: %s\n", zmq_strerror(zmq_errno()));
        return 1;
    }
    snprintf(g.front, sizeof g.front, "tcp://127.0.0.1:%d", free_port());
    snprintf(g.back, sizeof g.back, "tcp://127.0.0.1:%d", free_port());
    snprintf(g.stock, sizeof g.stock, "tcp://127.0.0.1:%d", free_port());
    pid_t pids[3] = {-1, -1, -1};
    pthread_t bt, wt, st;
    if (g.procs) {
        pids[0] = spawn(run_broker);
        pids[1] = spawn(worker);
        if (g.hops == 3)
            pids[2] = spawn(run_stock);
        g.ctx = zmq_ctx_new();
    } else {
        g.ctx = zmq_ctx_new();
        if (bind_broker() != 0 || (g.hops == 3 && bind_stock() != 0))
            return 1;
        pthread_create(&bt, NULL, broker, NULL);
        pthread_create(&wt, NULL, worker, NULL);
        if (g.hops == 3)
            pthread_create(&st, NULL, stock, NULL);
    }
    if (!path_answers()) {
        fprintf(stderr, "raw_2hop: no answer through the path within 5 s\n");
        for (int i = 0; i < 3; i++)
            if (pids[i] > 0)
                kill(pids[i], SIGKILL);
        return 1;
    }
    client_t *cs = calloc((size_t)g.clients, sizeof *cs);
    uint64_t t0 = zc_mono_us();
    for (int i = 0; i < g.clients; i++)
        pthread_create(&cs[i].thread, NULL, client, &cs[i]);
    size_t total = 0;
    for (int i = 0; i < g.clients; i++) {
        pthread_join(cs[i].thread, NULL);
        total += cs[i].n;
    }
    double secs = (double)(zc_mono_us() - t0) / 1e6;
    g.stop = 1;
    if (g.procs) {
        for (int i = 0; i < 3; i++)
            if (pids[i] > 0) {
                kill(pids[i], SIGKILL);
                waitpid(pids[i], NULL, 0);
            }
    } else {
        pthread_join(wt, NULL);
        pthread_join(bt, NULL);
        if (g.hops == 3)
            pthread_join(st, NULL);
    }
    uint32_t *all = malloc((total ? total : 1) * sizeof *all);
    size_t k = 0;
    for (int i = 0; i < g.clients; i++) {
        memcpy(all + k, cs[i].lat, cs[i].n * sizeof *all);
        k += cs[i].n;
        free(cs[i].lat);
    }
    qsort(all, total, sizeof *all, cmp_u32);
    printf("{\"clients\": %d, \"seconds\": %.3f, \"round_trips\": %zu, \"rt_per_s\": %.1f, "
           "\"p50_us\": %" PRIu32 ", \"p99_us\": %" PRIu32 ", \"req_bytes\": %zu, "
           "\"rep_bytes\": %zu, \"curve\": %d, \"procs\": %d, \"hops\": %d}\n",
           g.clients, secs, total, (double)total / secs, total ? all[total / 2] : 0,
           total ? all[total * 99 / 100] : 0, g.req_bytes, g.rep_bytes, g.curve, g.procs, g.hops);
    free(all);
    free(cs);
    zmq_ctx_term(g.ctx);
    if (g.lost)
        fprintf(stderr, "raw_2hop: a round trip was lost (5 s without its reply)\n");
    return total && !g.lost ? 0 : 1;
}
