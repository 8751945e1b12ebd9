/* test_zsec: lib/zsec and lib/zap -- CurveZMQ with zcart's ZAP handler
 * refuses a key outside the allow-list (the fail-open regression: a server
 * socket outside czmq's context admits every key), refuses a known key of a
 * role the socket does not admit, admits one inside it with its role and
 * name as message properties, and keygen/escape behave. */
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/zsec.h"
#include "unit.h"

static char dir[256];

static void setup_keys(void)
{
    char err[256];
    /* a fresh directory each time: pids repeat (pid_max is 32768 here) */
    snprintf(dir, sizeof dir, "/tmp/zc-test-zsec-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    CHECK(zc_sec_keygen(dir, "replica", "replica", "replica", err, sizeof err) == 0);
    CHECK(zc_sec_keygen(dir, "client", "client", "client", err, sizeof err) == 0);
    /* A stranger's key: made elsewhere, never in dir/allow. */
    char other[300];
    snprintf(other, sizeof other, "%s-stranger", dir);
    CHECK(zc_sec_keygen(other, "client", "stranger", "stranger", err, sizeof err) == 0);
}

static void cleanup_keys(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s-stranger'", dir, dir);
    CHECK(system(cmd) == 0);
}

/* Waits (deadline 5 s) for the client's handshake to succeed or fail;
 * returns the event seen, 0 on timeout. */
static int handshake_outcome(void *monitor)
{
    uint64_t end = zc_mono_us() + 5000000;
    while (zc_mono_us() < end) {
        zmq_pollitem_t it = {monitor, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 100) <= 0)
            continue;
        zmq_msg_t a, b;
        zmq_msg_init(&a);
        zmq_msg_init(&b);
        zmq_msg_recv(&a, monitor, 0);
        zmq_msg_recv(&b, monitor, 0);
        uint16_t ev = 0;
        if (zmq_msg_size(&a) >= 2)
            memcpy(&ev, zmq_msg_data(&a), 2);
        zmq_msg_close(&a);
        zmq_msg_close(&b);
        if (ev == ZMQ_EVENT_HANDSHAKE_SUCCEEDED || ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ||
            ev == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
            return ev;
    }
    return 0;
}

/* Connects a DEALER with `certname`'s key from `keydir` to `ep`, sends
 * "hello", returns the handshake outcome. */
static int try_client(const char *keydir, const char *certname, const char *ep,
                      const char *server_key, int n)
{
    char path[400], err[256], mon[64];
    snprintf(path, sizeof path, "%s/%s.cert_secret", keydir, certname);
    zc_sec_t *cs = zc_sec_new(path, NULL, false, err, sizeof err);
    CHECK(cs != NULL);
    if (cs == NULL)
        return 0;
    void *d = zmq_socket(zc_sec_context(), ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof zero);
    CHECK(zc_sec_client(cs, d, server_key) == 0);
    snprintf(mon, sizeof mon, "inproc://test-zsec-mon-%d", n);
    CHECK(zmq_socket_monitor(d, mon, ZMQ_EVENT_ALL) == 0);
    void *m = zmq_socket(zc_sec_context(), ZMQ_PAIR);
    zmq_setsockopt(m, ZMQ_LINGER, &zero, sizeof zero);
    CHECK(zmq_connect(m, mon) == 0);
    CHECK(zmq_connect(d, ep) == 0);
    zmq_send(d, "hello", 5, ZMQ_DONTWAIT);
    int ev = handshake_outcome(m);
    zmq_socket_monitor(d, NULL, 0);
    zmq_close(m);
    zmq_close(d);
    zc_sec_destroy(&cs);
    return ev;
}

/* Reads one [id][body] from the server within 5 s; fills role/name. */
static bool server_got(void *srv, char *role, char *name, char *uid)
{
    zmq_pollitem_t it = {srv, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, 5000) <= 0)
        return false;
    zmq_msg_t id, body;
    zmq_msg_init(&id);
    zmq_msg_init(&body);
    zmq_msg_recv(&id, srv, 0);
    zmq_msg_recv(&body, srv, 0);
    const char *r = zc_sec_peer(&body, "role"), *nm = zc_sec_peer(&body, "name"),
               *u = zc_sec_peer(&body, "User-Id");
    snprintf(role, 32, "%s", r ? r : "");
    snprintf(name, 32, "%s", nm ? nm : "");
    snprintf(uid, 64, "%s", u ? u : "");
    zmq_msg_close(&id);
    zmq_msg_close(&body);
    return true;
}

TEST(unknown_key_is_refused_known_key_admitted)
{
    char err[256], path[400], ep[128], role[32], name[32], uid[64];
    snprintf(path, sizeof path, "%s/replica.cert_secret", dir);
    char allow[300];
    snprintf(allow, sizeof allow, "%s/allow", dir);
    zc_sec_t *ss = zc_sec_new(path, allow, false, err, sizeof err);
    CHECK(ss != NULL);
    if (ss == NULL)
        return;
    void *srv = zmq_socket(zc_sec_context(), ZMQ_ROUTER);
    int zero = 0;
    zmq_setsockopt(srv, ZMQ_LINGER, &zero, sizeof zero);
    CHECK(zc_sec_server(ss, srv, "client,admin") == 0);
    CHECK(zmq_bind(srv, "tcp://127.0.0.1:*") == 0);
    size_t len = sizeof ep;
    zmq_getsockopt(srv, ZMQ_LAST_ENDPOINT, ep, &len);
    char server_key[ZC_KEY_Z85];
    CHECK(zc_sec_key_arg(path, server_key, err, sizeof err) == 0);
    CHECK_STR(server_key, zc_sec_public(ss));

    /* The regression: a key outside the allow-list must not get in. */
    char other[300];
    snprintf(other, sizeof other, "%s-stranger", dir);
    CHECK_EQ_U64(try_client(other, "stranger", ep, server_key, 1), ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    zmq_pollitem_t it = {srv, 0, ZMQ_POLLIN, 0};
    CHECK(zmq_poll(&it, 1, 0) == 0); /* nothing of it was delivered */

    /* An allowed key gets in, and its connection names its role. */
    CHECK_EQ_U64(try_client(dir, "client", ep, server_key, 2), ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
    CHECK(server_got(srv, role, name, uid));
    CHECK_STR(role, "client");
    CHECK_STR(name, "client");
    char cpath[400], ckey[ZC_KEY_Z85];
    snprintf(cpath, sizeof cpath, "%s/allow/client/client.cert", dir);
    CHECK(zc_sec_key_arg(cpath, ckey, err, sizeof err) == 0);
    CHECK_STR(uid, ckey);
    zmq_close(srv);
    zc_sec_destroy(&ss);
}

/* A server socket admits only the roles its ZAP domain names: a known
 * client key fails the handshake on a "cart" socket (nothing of it is
 * delivered) and completes it on a "client,admin" socket of the same
 * process; a socket with no roles cannot be made a server. */
TEST(known_key_of_another_role_is_refused)
{
    char err[256], path[400], allow[300], ep_cart[128], ep_client[128], role[32], name[32], uid[64];
    snprintf(path, sizeof path, "%s/replica.cert_secret", dir);
    snprintf(allow, sizeof allow, "%s/allow", dir);
    zc_sec_t *ss = zc_sec_new(path, allow, false, err, sizeof err);
    if (ss == NULL)
        fprintf(stderr, "zc_sec_new: %s\n", err);
    CHECK(ss != NULL);
    if (ss == NULL)
        return;
    int zero = 0;
    void *cart = zmq_socket(zc_sec_context(), ZMQ_ROUTER);
    void *client = zmq_socket(zc_sec_context(), ZMQ_ROUTER);
    zmq_setsockopt(cart, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(client, ZMQ_LINGER, &zero, sizeof zero);
    CHECK(zc_sec_server(ss, cart, "cart") == 0);
    CHECK(zc_sec_server(ss, client, "client,admin") == 0);
    CHECK(zc_sec_server(ss, client, "") == -1);
    CHECK(zmq_bind(cart, "tcp://127.0.0.1:*") == 0);
    CHECK(zmq_bind(client, "tcp://127.0.0.1:*") == 0);
    size_t len = sizeof ep_cart;
    zmq_getsockopt(cart, ZMQ_LAST_ENDPOINT, ep_cart, &len);
    len = sizeof ep_client;
    zmq_getsockopt(client, ZMQ_LAST_ENDPOINT, ep_client, &len);
    const char *key = zc_sec_public(ss);
    CHECK_EQ_U64(try_client(dir, "client", ep_cart, key, 3), ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    zmq_pollitem_t it = {cart, 0, ZMQ_POLLIN, 0};
    CHECK(zmq_poll(&it, 1, 0) == 0);
    CHECK_EQ_U64(try_client(dir, "client", ep_client, key, 4), ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
    CHECK(server_got(client, role, name, uid));
    CHECK_STR(role, "client");
    /* The replica key (role replica) is not admitted on either. */
    CHECK_EQ_U64(try_client(dir, "replica", ep_client, key, 5), ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    zmq_close(cart);
    zmq_close(client);
    zc_sec_destroy(&ss);
}

TEST(insecure_and_key_args)
{
    char err[256], out[ZC_KEY_Z85];
    zc_sec_t *s = zc_sec_new(NULL, NULL, true, err, sizeof err);
    CHECK(s != NULL && zc_sec_insecure(s));
    zc_sec_destroy(&s);
    CHECK(zc_sec_new(NULL, NULL, false, err, sizeof err) == NULL); /* secure needs a cert */
    CHECK(zc_sec_new("/nonexistent.cert_secret", NULL, false, err, sizeof err) == NULL);
    char pub[400];
    snprintf(pub, sizeof pub, "%s/allow/client/client.cert", dir);
    /* A public-only certificate cannot serve as a process's own key. */
    CHECK(zc_sec_new(pub, NULL, false, err, sizeof err) == NULL);
    CHECK(zc_sec_key_arg("short", out, err, sizeof err) == -1);
    /* A certificate at a 40-character path (every character z85's): the
     * file is read, not the path taken for a key. */
    char want[ZC_KEY_Z85], forty[64], cmd[600];
    CHECK(zc_sec_key_arg(pub, want, err, sizeof err) == 0);
    int n = snprintf(forty, sizeof forty, "/tmp/zcart-key-%d", (int)getpid());
    while (n < 35)
        forty[n++] = 'x';
    snprintf(forty + n, sizeof forty - (size_t)n, ".cert");
    CHECK_EQ_U64(strlen(forty), 40);
    snprintf(cmd, sizeof cmd, "cp %s %s", pub, forty);
    CHECK(system(cmd) == 0);
    CHECK(zc_sec_key_arg(forty, out, err, sizeof err) == 0);
    CHECK_STR(out, want);
    unlink(forty);
    CHECK(zc_sec_key_arg("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7", out, err, sizeof err) == 0);
    CHECK_STR(out, "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7");
}

TEST(escape_control_bytes)
{
    char out[64];
    CHECK_STR(zc_escape("ok-name_1", 9, out, sizeof out), "ok-name_1");
    CHECK_STR(zc_escape("a\nb\x1b[2J", 8, out, sizeof out), "a\\x0ab\\x1b[2J");
    CHECK_STR(zc_escape("a\\b", 3, out, sizeof out), "a\\x5cb");
    CHECK_STR(zc_escape("abcdef", 6, out, 4), "abc");
}

int main(void)
{
    setup_keys();
    RUN(unknown_key_is_refused_known_key_admitted);
    RUN(known_key_of_another_role_is_refused);
    RUN(insecure_and_key_args);
    RUN(escape_control_bytes);
    cleanup_keys();
    return unit_report();
}
