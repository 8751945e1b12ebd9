/* io: the broker core's real ports (broker_io_t in broker.h) -- the raft
 * node of replication/node.h and the two ROUTER sockets.  Nothing here
 * decides anything; the unit tests replace exactly this file's table. */
#include "broker/internal.h"
#include <stdio.h>
#include <string.h>

#include "lib/log.h"
#include "lib/zmqx.h"

static void io_info(broker_t *b, zc_node_info_t *out) { zc_node_info(b->node, out); }

static bool io_ready(broker_t *b) { return zc_node_ready(b->node); }

static zc_state_t *io_state(broker_t *b) { return zc_node_state(b->node); }

static unsigned io_configuration(broker_t *b, uint64_t *ids, const char **roles, unsigned max)
{
    return zc_node_configuration(b->node, ids, roles, max);
}

static bool io_member(broker_t *b, uint64_t id, zc_replica_t *out)
{
    return zc_node_member(b->node, id, out);
}

static void io_propose(broker_t *b, const zc_cmd_t *cmd, zc_propose_cb cb, void *arg)
{
    zc_node_propose(b->node, cmd, cb, arg);
}

static int io_send_client(broker_t *b, const uint8_t *rid, size_t rid_len, const void *frame,
                          size_t len)
{
    return zc_zsend(b->front, rid, rid_len, frame, len);
}

static int io_send_node(broker_t *b, const char *rid, const void *frame, size_t len)
{
    return zc_zsend(b->back, rid, strlen(rid), frame, len);
}

const broker_io_t broker__io_real = {
    .info = io_info,
    .ready = io_ready,
    .state = io_state,
    .configuration = io_configuration,
    .member = io_member,
    .propose = io_propose,
    .send_client = io_send_client,
    .send_node = io_send_node,
};

int broker__router_open(broker_t *b, const broker__router_t *r, char *err, size_t errlen)
{
    *r->sock = zmq_socket(b->zctx, ZMQ_ROUTER);
    if (*r->sock == NULL)
        goto err;
    zc_zsock_defaults(*r->sock);
    if (zc_sec_server(b->sec, *r->sock, r->roles) != 0)
        goto err;
    if (r->setup)
        r->setup(b, *r->sock);
    zmq_setsockopt(*r->sock, ZMQ_SNDHWM, &r->hwm, sizeof r->hwm);
    zmq_setsockopt(*r->sock, ZMQ_RCVHWM, &r->hwm, sizeof r->hwm);
    if (zmq_bind(*r->sock, r->endpoint) != 0)
        goto err;
    *r->watch = zc_watch_new(b->loop, *r->sock, r->on_readable, b);
    if (*r->watch == NULL)
        goto err;
    return 0;
err:
    snprintf(err, errlen, "%s endpoint %s: %s", r->what, r->endpoint, zmq_strerror(zmq_errno()));
    return -1;
}

void broker__router_close(void **sock, zc_watch_t **watch)
{
    zc_watch_destroy(watch);
    if (*sock)
        zmq_close(*sock);
    *sock = NULL;
}
