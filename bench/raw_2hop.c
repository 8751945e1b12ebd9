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
 * Prints one JSON object: clients, seconds, round trips, rt_per_s, p50_us,
 * p99_us. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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
    volatile int ready;       /* the worker's hello reached the broker */
    volatile int lost;        /* a client timed out waiting (a dropped message) */
    int curve;                /* --curve 1: CurveZMQ on every hop */
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
            if (!more) { /* [w][hello]: the worker is connected */
                g.ready = 1;
                continue;
            }
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

/* The worker: answers every request with a reply of rep_bytes. */
static void *worker(void *arg)
{
    (void)arg;
    void *d = zmq_socket(g.ctx, ZMQ_DEALER);
    zmq_setsockopt(d, ZMQ_ROUTING_ID, "w", 1);
    curve_client(d);
    zmq_connect(d, g.back);
    zmq_send(d, "hello", 5, 0); /* a ROUTER drops what it cannot route yet */
    char id[256], body[65536];
    char *rep = calloc(1, g.rep_bytes ? g.rep_bytes : 1);
    int timeout = 100;
    zmq_setsockopt(d, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    while (!g.stop) {
        int il = zmq_recv(d, id, sizeof id, 0);
        if (il <= 0)
            continue;
        zmq_recv(d, body, sizeof body, 0);
        zmq_send(d, id, (size_t)il, ZMQ_SNDMORE);
        zmq_send(d, rep, g.rep_bytes, 0);
    }
    free(rep);
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
        else {
            fprintf(stderr, "usage: raw_2hop [-c CLIENTS] [-d SECONDS] [--req-bytes N] "
                            "[--rep-bytes N] [--curve 0|1]\n");
            return 2;
        }
    }
    if (g.curve && (zmq_curve_keypair(g.server_public, g.server_secret) != 0 ||
                    zmq_curve_keypair(g.peer_public, g.peer_secret) != 0)) {
        fprintf(stderr, "raw_2hop: --curve: %s\n", zmq_strerror(zmq_errno()));
        return 1;
    }
    g.ctx = zmq_ctx_new();
    front_sock = zmq_socket(g.ctx, ZMQ_ROUTER);
    back_sock = zmq_socket(g.ctx, ZMQ_ROUTER);
    if (front_sock)
        curve_server(front_sock);
    if (back_sock)
        curve_server(back_sock);
    size_t len = sizeof g.front, blen = sizeof g.back;
    if (front_sock == NULL || back_sock == NULL || zmq_bind(front_sock, "tcp://127.0.0.1:*") != 0 ||
        zmq_bind(back_sock, "tcp://127.0.0.1:*") != 0) {
        fprintf(stderr, "raw_2hop: %s\n", zmq_strerror(zmq_errno()));
        return 1;
    }
    zmq_getsockopt(front_sock, ZMQ_LAST_ENDPOINT, g.front, &len);
    zmq_getsockopt(back_sock, ZMQ_LAST_ENDPOINT, g.back, &blen);
    pthread_t bt, wt;
    pthread_create(&bt, NULL, broker, NULL);
    pthread_create(&wt, NULL, worker, NULL);
    for (int i = 0; i < 5000 && !g.ready; i++) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    if (!g.ready) {
        fprintf(stderr, "raw_2hop: the worker did not connect\n");
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
    pthread_join(wt, NULL);
    pthread_join(bt, NULL);
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
           "\"rep_bytes\": %zu, \"curve\": %d}\n",
           g.clients, secs, total, (double)total / secs, total ? all[total / 2] : 0,
           total ? all[total * 99 / 100] : 0, g.req_bytes, g.rep_bytes, g.curve);
    free(all);
    free(cs);
    zmq_ctx_term(g.ctx);
    if (g.lost)
        fprintf(stderr, "raw_2hop: a round trip was lost (5 s without its reply)\n");
    return total && !g.lost ? 0 : 1;
}
