/* admin: operator commands, served by the leader only.
 *
 *   transfer-leader [id]       raft leadership transfer (id 0 or absent: any voter)
 *   add-node id raft client cart
 *                              record the endpoints in the replicated member
 *                              directory, add the server to raft and promote
 *                              it to voter once it has caught up
 *   remove-node id             remove it from raft, then from the directory
 *   breaker cart action        action open / close: force the cart's breaker
 *                              open or closed and hold it there; auto: hand it
 *                              back to the automatic events (liveness.c).  One
 *                              committed BREAKER command, cluster-wide.
 *   remove-cart-node node      one committed UNREGISTER of every cart of the
 *                              node (sessions on them move to free carts and
 *                              are told CART_LOST, or end when none is free);
 *                              its name leaves the node map (registry.c)
 *
 * Arguments travel as ADMIN props (docs/protocol.md §3.2).  A follower
 * answers NOT_LEADER with the leader's endpoint, like for REQUESTs.  The
 * answer is sent when the change is done (or failed), which for add-node
 * includes the new server's catch-up. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/backup.h"
#include "broker/internal.h"
#include "broker/liveness.h"
#include "broker/registry.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "proto/status.h"

typedef enum {
    ADM_TRANSFER,
    ADM_ADD_MEMBER,
    ADM_ADD_RAFT,
    ADM_REMOVE_RAFT,
    ADM_REMOVE_MEMBER,
    ADM_BREAKER,
    ADM_REMOVE_CART_NODE,
} step_t;

/* One admin request in progress. */
typedef struct {
    broker_t *b;                          /* the broker */
    uint8_t client[BROKER_CLIENT_ID_MAX]; /* asker's routing id */
    uint8_t client_len;                   /* its length */
    uint64_t corr;                        /* asker's corr */
    step_t step;                          /* where the request is */
    zc_replica_t member;                  /* node concerned */
    char cart[ZC_CART_MAX + 1];           /* breaker: the cart; remove-cart-node: the node */
} admin_t;

static void finish(admin_t *a, int status, const char *detail)
{
    if (!a->b->stopping)
        broker__frontend_admin_reply(a->b, a->client, a->client_len, a->corr, status, detail);
    if (a->step == ADM_BREAKER || a->step == ADM_REMOVE_CART_NODE)
        zc_info("admin %s %s: %s (%s)", a->step == ADM_BREAKER ? "breaker" : "remove-cart-node",
                a->cart, zc_status_name(status), detail ? detail : "");
    else
        zc_info("admin %s %" PRIu64 ": %s (%s)",
                a->step == ADM_TRANSFER     ? "transfer-leader"
                : a->step <= ADM_ADD_RAFT ? "add-node"
                                          : "remove-node",
                a->member.id, zc_status_name(status), detail ? detail : "");
    free(a);
}

static bool parse_id(const char *s, uint64_t *out)
{
    char *end;
    if (s == NULL || *s == 0)
        return false;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != 0 || v == 0 || v > 1000000)
        return false;
    *out = v;
    return true;
}

static void change_done(void *arg, int status, const char *detail);

static void member_done(void *arg, int status, const zc_cmd_result_t *res)
{
    admin_t *a = arg;
    if (status != ZC_OK || res->status != ZC_OK) {
        finish(a, status != ZC_OK ? status : res->status, "could not update the member directory");
        return;
    }
    if (a->step == ADM_ADD_MEMBER) {
        a->step = ADM_ADD_RAFT;
        zc_node_add_voter(a->b->node, a->member.id, a->member.raft_address, change_done, a);
    } else {
        finish(a, ZC_OK, "removed");
    }
}

static void propose_member(admin_t *a, uint8_t type)
{
    zc_cmd_t c = {.type = type, .time_ms = zc_wall_ms()};
    c.member = a->member;
    broker__propose(a->b, &c, member_done, a);
}

static void change_done(void *arg, int status, const char *detail)
{
    admin_t *a = arg;
    if (status == ZC_OK && a->step == ADM_REMOVE_RAFT) {
        a->step = ADM_REMOVE_MEMBER;
        propose_member(a, ZC_CMD_MEMBER_DEL);
        return;
    }
    finish(a, status, detail);
}

static void breaker_done(void *arg, int status, const zc_cmd_result_t *res)
{
    admin_t *a = arg;
    if (status != ZC_OK) {
        finish(a, status, "the breaker change did not commit");
        return;
    }
    if (res->status != ZC_OK) {
        finish(a, res->status, "no such cart");
        return;
    }
    char detail[96];
    snprintf(detail, sizeof detail, "cart %s breaker %s (%s)", a->cart,
             zc_breaker_state_name(res->breaker.state), zc_breaker_mode_name(res->breaker.mode));
    finish(a, ZC_OK, detail);
}

static void remove_cart_node_done(void *arg, int status, const zc_cmd_result_t *res)
{
    admin_t *a = arg;
    if (status != ZC_OK) {
        finish(a, status, "the unregistration did not commit");
        return;
    }
    if (res->status != ZC_OK) {
        finish(a, res->status, "could not unregister the node's carts");
        return;
    }
    char detail[192];
    snprintf(detail, sizeof detail,
             "node %s removed: %u cart(s) unregistered, %u session(s) moved to another cart "
             "(CART_LOST), %u ended",
             a->cart, res->count, res->moved, res->ended);
    finish(a, ZC_OK, detail);
}

static void cmd_transfer(admin_t *a, const zc_msg_t *m)
{
    const char *id = zc_msg_prop(m, "id");
    a->step = ADM_TRANSFER;
    if (id && !parse_id(id, &a->member.id)) {
        finish(a, ZC_BAD_REQUEST, "id must be a positive integer");
        return;
    }
    zc_node_transfer(a->b->node, a->member.id, change_done, a);
}

static void cmd_add_node(admin_t *a, const zc_msg_t *m)
{
    a->step = ADM_ADD_MEMBER;
    const char *id = zc_msg_prop(m, "id"), *raft = zc_msg_prop(m, "raft"),
               *cl = zc_msg_prop(m, "client"), *cart = zc_msg_prop(m, "cart");
    if (!parse_id(id, &a->member.id) || !raft || !cl || !cart || !strchr(raft, ':') || !*cl ||
        !*cart) {
        finish(a, ZC_BAD_REQUEST, "add-node wants id, raft (host:port), client and cart");
        return;
    }
    snprintf(a->member.raft_address, sizeof a->member.raft_address, "%s", raft);
    snprintf(a->member.client_endpoint, sizeof a->member.client_endpoint, "%s", cl);
    snprintf(a->member.cart_endpoint, sizeof a->member.cart_endpoint, "%s", cart);
    propose_member(a, ZC_CMD_MEMBER_SET);
}

static void cmd_remove_node(admin_t *a, const zc_msg_t *m)
{
    a->step = ADM_REMOVE_RAFT;
    if (!parse_id(zc_msg_prop(m, "id"), &a->member.id)) {
        finish(a, ZC_BAD_REQUEST, "remove-node wants an id");
        return;
    }
    if (a->member.id == a->b->cfg.id) {
        finish(a, ZC_BAD_REQUEST,
               "this replica leads: transfer leadership away first (admin transfer-leader)");
        return;
    }
    zc_node_remove(a->b->node, a->member.id, change_done, a);
}

static void cmd_breaker(admin_t *a, const zc_msg_t *m)
{
    a->step = ADM_BREAKER;
    const char *cart = zc_msg_prop(m, "cart"), *action = zc_msg_prop(m, "action");
    int ev = !action                        ? 0
             : strcmp(action, "open") == 0  ? ZC_BRK_EV_FORCE_OPEN
             : strcmp(action, "close") == 0 ? ZC_BRK_EV_FORCE_CLOSE
             : strcmp(action, "auto") == 0  ? ZC_BRK_EV_AUTO
                                            : 0;
    if (cart == NULL || *cart == 0 || strlen(cart) > ZC_CART_MAX || ev == 0) {
        finish(a, ZC_BAD_REQUEST, "breaker wants cart and action (open, close or auto)");
        return;
    }
    snprintf(a->cart, sizeof a->cart, "%s", cart);
    broker__liveness_propose(a->b, a->cart, 0, ev, ZC_BRK_WHY_OPERATOR, breaker_done, a);
}

static void cmd_remove_cart_node(admin_t *a, const zc_msg_t *m)
{
    a->step = ADM_REMOVE_CART_NODE;
    const char *node = zc_msg_prop(m, "node");
    if (node == NULL || !zc_node_name_valid(node)) {
        finish(a, ZC_BAD_REQUEST, "remove-cart-node wants node (1..32 of [A-Za-z0-9_-])");
        return;
    }
    snprintf(a->cart, sizeof a->cart, "%s", node);
    broker__registry_remove_node(a->b, a->cart, remove_cart_node_done, a);
}

/* The commands that change the cluster, each started by its function
 * (backup, which needs no admin_t, is answered apart). */
static const struct {
    const char *name;                             /* ADMIN command */
    void (*start)(admin_t *a, const zc_msg_t *m); /* checks its props, starts it */
} commands[] = {
    {"transfer-leader", cmd_transfer},          {"add-node", cmd_add_node},
    {"remove-node", cmd_remove_node},           {"breaker", cmd_breaker},
    {"remove-cart-node", cmd_remove_cart_node},
};

void broker__admin_request(broker_t *b, const uint8_t *client, size_t client_len, const zc_msg_t *m)
{
    if (!broker__ready(b)) {
        char ep[ZC_ADDR_MAX + 1];
        broker__leader_endpoint(b, ep);
        broker__frontend_admin_reply(b, client, client_len, m->corr, ZC_NOT_LEADER, ep);
        return;
    }
    if (strcmp(m->command, "backup") == 0) {
        broker__backup_start(b, client, client_len, m->corr, zc_msg_prop(m, "name"));
        return;
    }
    admin_t *a = calloc(1, sizeof *a);
    if (a == NULL) {
        broker__frontend_admin_reply(b, client, client_len, m->corr, ZC_INTERNAL, "out of memory");
        return;
    }
    a->b = b;
    memcpy(a->client, client, client_len);
    a->client_len = (uint8_t)client_len;
    a->corr = m->corr;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(m->command, commands[i].name) == 0) {
            commands[i].start(a, m);
            return;
        }
    }
    a->step = ADM_TRANSFER;
    char why[96];
    snprintf(why, sizeof why, "unknown admin command '%.40s'", m->command);
    finish(a, ZC_BAD_REQUEST, why);
}
