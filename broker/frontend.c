/* frontend: the client-side ROUTER.
 *
 * Steps 1 and 2 of the decision procedure of docs/protocol.md §3 happen
 * here (malformed frame, invalid fields -> BAD_REQUEST, always as a REPLY,
 * with the session and seq of a frame that starts like a REQUEST); a valid REQUEST goes
 * to route.c.  STATUS is answered by every replica, leader or not, from its
 * own raft node and state. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "broker/internal.h"
#include "broker/forward.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "proto/status.h"

static void send_msg(broker_t *b, const uint8_t *client, size_t client_len, const zc_msg_t *m)
{
    zc_wbuf_t w;
    zc_wbuf_init(&w);
    zc_msg_t signed_m = *m; /* shallow: the encode only reads the lists */
    if (m->id == ZC_MSG_REPLY)
        signed_m.replica = b->cfg.id; /* who decided it; the term comes with m */
    if (zc_msg_encode(&signed_m, &w) == 0 &&
        b->io->send_client(b, client, client_len, w.data, w.len) != 0)
        zc_debug("reply to a client dropped: %s", zmq_strerror(zmq_errno()));
    zc_wbuf_clear(&w);
}

void broker__frontend_send(broker_t *b, const uint8_t *client, size_t client_len, const zc_msg_t *m)
{
    send_msg(b, client, client_len, m);
}

void broker__frontend_admin_reply(broker_t *b, const uint8_t *client, size_t client_len,
                                  uint64_t corr, int status, const char *detail)
{
    zc_msg_t r;
    zc_msg_init(&r, ZC_MSG_ADMIN_REPLY);
    r.corr = corr;
    r.status = (uint8_t)status;
    snprintf(r.detail, sizeof r.detail, "%s", detail ? detail : "");
    send_msg(b, client, client_len, &r);
}

void broker__frontend_reply_ko(broker_t *b, const uint8_t *client, size_t client_len,
                               const zc_msg_t *req, int status, const char *detail)
{
    zc_msg_t r;
    zc_msg_init(&r, ZC_MSG_REPLY);
    if (req) {
        memcpy(r.session, req->session, ZC_SESSION_LEN);
        r.seq = req->seq;
    }
    r.status = (uint8_t)status;
    snprintf(r.detail, sizeof r.detail, "%s", detail ? detail : "");
    send_msg(b, client, client_len, &r);
    broker__metrics_request(b, req ? req->op : 0, status, 0);
}

void broker__frontend_reply_not_leader(broker_t *b, const uint8_t *client, size_t client_len,
                                       const zc_msg_t *req)
{
    char ep[ZC_ADDR_MAX + 1];
    broker__leader_endpoint(b, ep);
    zc_info("NOT_LEADER: client redirected to %s", ep);
    broker__frontend_reply_ko(b, client, client_len, req, ZC_NOT_LEADER, ep);
}

/* Step 2: field checks.  NULL if valid, else why not. */
static const char *invalid_request(const zc_msg_t *m)
{
    if (zc_session_is_zero(m->session))
        return "session id must not be zero";
    if (m->seq == 0)
        return "seq must be at least 1";
    switch (m->op) {
    case ZC_OP_ADD:
    case ZC_OP_REMOVE:
        if (!zc_product_valid(m->product))
            return "product must be 1..64 printable ASCII octets without space or comma";
        if (m->qty < 1 || m->qty > ZC_QTY_MAX)
            return "qty must be 1.." ZC_QTY_MAX_TEXT;
        return NULL;
    case ZC_OP_LIST:
    case ZC_OP_CLOSE:
    case ZC_OP_KEEPALIVE:
        if (m->product[0] || m->qty)
            return "list, close and keepalive take no product and qty 0";
        return NULL;
    default: return "op must be 1 (add), 2 (remove), 3 (list), 4 (close) or 5 (keepalive)";
    }
}

/* Messages queued per client connection, each way. */
#define FRONT_HWM 1000

/* Status lists at most this many breakers; breakers_not_closed counts all. */
#define STATUS_BREAKERS_MAX 256

/* Collects the breakers that are not CLOSED-and-automatic into a STATUS reply. */
typedef struct {
    zc_msg_t *r;    /* the reply */
    unsigned count; /* such breakers seen */
} breakers_t;

static int add_breaker(const zc_cart_rec_t *c, void *arg)
{
    breakers_t *x = arg;
    const zc_breaker_t *k = &c->breaker;
    if (k->state == ZC_BRK_CLOSED && k->mode == ZC_BRK_AUTO)
        return 0;
    if (x->count++ >= STATUS_BREAKERS_MAX)
        return 1; /* listed enough; the count comes from the index */
    {
        char key[ZC_CART_MAX + 16]; /* longer than ZC_KEY_MAX: add_prop refuses it */
        snprintf(key, sizeof key, "breaker.%s", c->id);
        zc_msg_add_prop(x->r, key, "%s %s %s since=%" PRIu64 " trips=%u probes=%u cart=%s",
                        zc_breaker_state_name(k->state), zc_breaker_mode_name(k->mode),
                        zc_breaker_why_name(k->why), k->since_ms, k->trips, k->probes,
                        c->state == ZC_CART_FREE       ? "FREE"
                        : c->state == ZC_CART_ASSIGNED ? "ASSIGNED"
                                                       : "DRAINING");
    }
    return 0;
}

/* status props: raft, the state's counts and digest. */
static void status_state(broker_t *b, zc_msg_t *r)
{
    zc_node_info_t info;
    zc_state_counts_t n;
    zc_state_t *st = broker__state(b);
    broker__info(b, &info);
    if (zc_state_counts(st, &n) != 0)
        memset(&n, 0, sizeof n);
    char leader_ep[ZC_ADDR_MAX + 1];
    broker__leader_endpoint(b, leader_ep);
    if (info.role == ZC_ROLE_LEADER)
        snprintf(leader_ep, sizeof leader_ep, "%s", b->self->client_endpoint);
    zc_msg_add_prop(r, "id", "%" PRIu64, b->cfg.id);
    zc_msg_add_prop(r, "endpoint", "%s", b->self->client_endpoint);
    zc_msg_add_prop(r, "role", "%s", zc_role_name(info.role));
    zc_msg_add_prop(r, "ready", "%d", info.ready ? 1 : 0);
    zc_msg_add_prop(r, "term", "%" PRIu64, info.term);
    zc_msg_add_prop(r, "commit_index", "%" PRIu64, info.commit_index);
    zc_msg_add_prop(r, "applied_index", "%" PRIu64, info.applied_index);
    zc_msg_add_prop(r, "last_index", "%" PRIu64, info.last_index);
    zc_msg_add_prop(r, "applied_commands", "%" PRIu64, zc_state_meta(st, "applied_commands"));
    /* The digest reads the whole state: computed once per applied index
     * (the state changes only by applying entries; a restore moves the
     * index too). */
    if (!b->digest_valid || b->digest_index != info.applied_index) {
        b->digest = zc_state_digest(st);
        b->digest_index = info.applied_index;
        b->digest_valid = true;
    }
    zc_msg_add_prop(r, "digest", "%016" PRIx64, b->digest);
    zc_msg_add_prop(r, "leader_id", "%" PRIu64, info.leader_id);
    zc_msg_add_prop(r, "leader_endpoint", "%s", leader_ep);
    zc_msg_add_prop(r, "carts_total", "%u", n.total);
    zc_msg_add_prop(r, "carts_free", "%u", n.free);
    zc_msg_add_prop(r, "carts_assigned", "%u", n.assigned);
    zc_msg_add_prop(r, "carts_draining", "%u", n.draining);
    zc_msg_add_prop(r, "sessions_live", "%u", n.sessions_live);
    zc_msg_add_prop(r, "sessions_ended", "%u", n.sessions_ended);
    uint64_t used = 0, map = 0;
    if (zc_state_storage(st, &used, &map) == 0) {
        zc_msg_add_prop(r, "storage_used_bytes", "%" PRIu64, used);
        zc_msg_add_prop(r, "storage_map_bytes", "%" PRIu64, map);
    }
}

/* status props: the configuration's members. */
static void status_members(broker_t *b, zc_msg_t *r)
{
    uint64_t ids[16];
    const char *roles[16];
    unsigned n_conf = broker__configuration(b, ids, roles, 16);
    for (unsigned i = 0; i < n_conf; i++) {
        zc_replica_t m;
        char key[32];
        snprintf(key, sizeof key, "member.%" PRIu64, ids[i]);
        if (broker__member(b, ids[i], &m))
            zc_msg_add_prop(r, key, "%s %s %s", roles[i], m.raft_address, m.client_endpoint);
        else
            zc_msg_add_prop(r, key, "%s unknown unknown", roles[i]);
    }
}

/* status props: this process's requests and refusals. */
static void status_process(broker_t *b, zc_msg_t *r)
{
    zc_msg_add_prop(r, "inflight", "%zu", zc_map_size(b->inflight));
    zc_msg_add_prop(r, "busy", "%" PRIu64, b->busy);
    zc_msg_add_prop(r, "requests_answered", "%" PRIu64, b->reqstats.answered);
    zc_hist_t recent;
    zc_hist_recent_read(&b->reqstats.recent, zc_mono_us(), &recent);
    zc_msg_add_prop(r, "requests_recent", "%" PRIu64, recent.count);
    zc_msg_add_prop(r, "request_recent_p50_us", "%" PRIu64, zc_hist_quantile_le(&recent, 500));
    zc_msg_add_prop(r, "request_recent_p99_us", "%" PRIu64, zc_hist_quantile_le(&recent, 990));
    zc_msg_add_prop(r, "leases", "%zu", b->leases ? zc_map_size(b->leases) : (size_t)0);
    zc_msg_add_prop(r, "cart_nodes", "%zu", b->nodes ? zc_map_size(b->nodes) : (size_t)0);
    zc_msg_add_prop(r, "bad_requests", "%" PRIu64, b->bad_requests);
    zc_msg_add_prop(r, "dropped", "%" PRIu64, b->dropped);
    zc_msg_add_prop(r, "forbidden", "%" PRIu64, b->forbidden);
    zc_msg_add_prop(r, "secure", "%d", zc_sec_insecure(b->sec) ? 0 : 1);
}

/* status props: how long the loop stopped turning, the snapshots, and what
 * one loop turn batches (applied entries per LMDB commit, commands per
 * raft_apply). */
static void status_loop(broker_t *b, zc_msg_t *r)
{
    /* How long the loop stopped turning, and the snapshots (built off it). */
    zc_stallwatch_stats_t sw = {0};
    if (b->stall)
        zc_stallwatch_stats(b->stall, &sw);
    zc_msg_add_prop(r, "loop_stall_max_us", "%" PRIu64, sw.max_us);
    zc_msg_add_prop(r, "loop_stall_recent_max_us", "%" PRIu64, sw.recent_max_us);
    zc_msg_add_prop(r, "loop_stalls_slow", "%" PRIu64, sw.slow);
    zc_node_snapshot_stats_t ss;
    zc_node_snapshot_stats(b->node, &ss);
    zc_msg_add_prop(r, "snapshots", "%" PRIu64, ss.snapshots);
    zc_msg_add_prop(r, "snapshots_failed", "%" PRIu64, ss.failed);
    zc_msg_add_prop(r, "snapshot_build_last_us", "%" PRIu64, ss.build_last_us);
    zc_msg_add_prop(r, "snapshot_build_max_us", "%" PRIu64, ss.build_max_us);
    zc_msg_add_prop(r, "snapshot_loop_max_us", "%" PRIu64, ss.begin_max_us);
    zc_msg_add_prop(r, "snapshot_bytes", "%" PRIu64, ss.bytes_last);
    zc_msg_add_prop(r, "snapshot_threshold", "%u", ss.threshold);
    zc_msg_add_prop(r, "snapshot_installs_sending", "%u", ss.sending);
    zc_msg_add_prop(r, "snapshot_installs_resent", "%" PRIu64, ss.resent);
    zc_fsm_batch_stats_t bs;
    zc_node_batch_stats(b->node, &bs);
    zc_msg_add_prop(r, "state_commits", "%" PRIu64, bs.commits);
    zc_msg_add_prop(r, "state_commit_entries", "%" PRIu64, bs.entries);
    zc_msg_add_prop(r, "state_commit_max_entries", "%" PRIu64, bs.max_entries);
    zc_node_raft_stats_t rs;
    zc_node_raft_stats(b->node, &rs);
    zc_msg_add_prop(r, "proposal_batches", "%" PRIu64, rs.proposal_batches);
    zc_msg_add_prop(r, "proposal_batch_commands", "%" PRIu64, rs.proposed);
    zc_msg_add_prop(r, "proposal_batch_max_commands", "%" PRIu64, rs.proposal_batch_max);
}

static void status_reply(broker_t *b, const uint8_t *client, size_t client_len, uint64_t corr)
{
    zc_msg_t r;
    zc_msg_init(&r, ZC_MSG_STATUS_REPLY);
    r.corr = corr;
    status_state(b, &r);
    status_process(b, &r);
    /* Through the breaker index: O(listed breakers), not O(carts). */
    zc_state_t *st = broker__state(b);
    breakers_t brk = {&r, 0};
    zc_state_each_breaker_not_closed(st, add_breaker, &brk);
    zc_msg_add_prop(&r, "breakers_not_closed", "%" PRIu64, zc_state_breakers_not_closed(st));
    status_members(b, &r);
    status_loop(b, &r);
    send_msg(b, client, client_len, &r);
    zc_msg_reset(&r);
}

void broker__leader_endpoint(broker_t *b, char out[ZC_ADDR_MAX + 1])
{
    zc_node_info_t info;
    zc_replica_t m;
    broker__info(b, &info);
    if (info.leader_id && info.leader_id != b->cfg.id && broker__member(b, info.leader_id, &m))
        snprintf(out, ZC_ADDR_MAX + 1, "%s", m.client_endpoint);
    else
        snprintf(out, ZC_ADDR_MAX + 1, "unknown");
}

/* Roles the client port admits: a replica key only holds the idle
 * connections of peers.c (and may ask STATUS). */
#define FRONT_ROLES "client,admin,replica"

/* Refuses a message for its key's role: answered KO FORBIDDEN, counted and
 * logged (rate-limited) with the key that tried. */
static void forbid(broker_t *b, const uint8_t *client, size_t client_len, zmq_msg_t *body,
                   const zc_msg_t *req, int id, const char *what)
{
    b->forbidden++;
    if (zc_log_sampled(b->forbidden, 20)) {
        const char *uid = zc_sec_peer(body, "User-Id"), *role = zc_sec_peer(body, "role");
        char u[64], r[64];
        zc_warn("FORBIDDEN %s from key %s (role %s), %llu refused so far", what,
                zc_escape(uid ? uid : "?", 40, u, sizeof u),
                zc_escape(role ? role : "none", 16, r, sizeof r), (unsigned long long)b->forbidden);
    }
    if (id == ZC_MSG_ADMIN || id == ZC_MSG_STATUS)
        broker__frontend_admin_reply(b, client, client_len, req ? req->corr : 0, ZC_FORBIDDEN,
                                     what);
    else
        broker__frontend_reply_ko(b, client, client_len, req, ZC_FORBIDDEN, what);
}

static void on_frame(broker_t *b, const uint8_t *client, size_t client_len, zmq_msg_t *body)
{
    const void *data = zmq_msg_data(body);
    size_t len = zmq_msg_size(body);
    zc_msg_t m;
    const char *why;
    if (!zc_sec_role_ok(b->sec, body, FRONT_ROLES)) {
        /* Answered in the kind the asker matches on (docs/protocol.md §6):
         * a status or admin that decodes gets an admin-reply FORBIDDEN with
         * its corr (a status-reply has no status code); anything else a
         * reply, echoing a request's session and seq when the frame holds
         * them. */
        zc_msg_init(&m, 0);
        if (zc_msg_decode(&m, data, len, &why) == 0 &&
            (m.id == ZC_MSG_STATUS || m.id == ZC_MSG_ADMIN)) {
            forbid(b, client, client_len, body, &m, m.id,
                   "this key's role may not use the client port");
            zc_msg_reset(&m);
            return;
        }
        zc_msg_reset(&m);
        zc_msg_t echo;
        zc_msg_init(&echo, ZC_MSG_REQUEST);
        bool readable = zc_msg_peek_request(data, len, echo.session, &echo.seq);
        forbid(b, client, client_len, body, readable ? &echo : NULL, ZC_MSG_REQUEST,
               "this key's role may not use the client port");
        return;
    }
    zc_msg_init(&m, 0);
    if (zc_msg_decode(&m, data, len, &why) != 0) {
        b->bad_requests++;
        zc_debug("malformed client frame (%zu bytes): %s", len, why);
        /* A request's session and seq, when the frame holds them, let the
         * client match this answer; anything else gets the all-zero ones. */
        zc_msg_t echo;
        zc_msg_init(&echo, ZC_MSG_REQUEST);
        bool readable = zc_msg_peek_request(data, len, echo.session, &echo.seq);
        broker__frontend_reply_ko(b, client, client_len, readable ? &echo : NULL, ZC_BAD_REQUEST,
                                  why);
        return;
    }
    switch (m.id) {
    case ZC_MSG_REQUEST:
        /* replica: a request a follower relayed (forward.h) */
        if (!zc_sec_role_ok(b->sec, body, "client,admin,replica"))
            forbid(b, client, client_len, body, &m, m.id, "requests need a client key");
        else if ((why = invalid_request(&m)) != NULL) {
            b->bad_requests++;
            broker__frontend_reply_ko(b, client, client_len, &m, ZC_BAD_REQUEST, why);
        } else if (!broker__forward_request(b, client, client_len, &m, data, len)) {
            broker__route_request(b, client, client_len, &m);
        }
        break;
    case ZC_MSG_STATUS: status_reply(b, client, client_len, m.corr); break;
    case ZC_MSG_ADMIN:
        /* Only an admin key: the role is the allow-list certificate's
         * metadata, which zauth attached to this connection. */
        if (!zc_sec_role_ok(b->sec, body, "admin"))
            forbid(b, client, client_len, body, &m, m.id, "admin commands need an admin key");
        else
            broker__admin_request(b, client, client_len, &m);
        break;
    default:
        b->bad_requests++;
        broker__frontend_reply_ko(b, client, client_len, NULL, ZC_BAD_REQUEST,
                                  "unexpected message on the client endpoint");
    }
    zc_msg_reset(&m);
}

static void on_message(zc_zmsg_t *z, void *arg)
{
    broker_t *b = arg;
    if (z->n == 2 && !z->over && zc_zmsg_size(z, 0) <= BROKER_CLIENT_ID_MAX) {
        on_frame(b, zc_zmsg_data(z, 0), zc_zmsg_size(z, 0), &z->part[1]);
    } else if (z->n >= 1 && zc_zmsg_size(z, 0) <= BROKER_CLIENT_ID_MAX) {
        /* Wrong number of frames: answerable, since we have the id. */
        b->bad_requests++;
        broker__frontend_reply_ko(b, zc_zmsg_data(z, 0), zc_zmsg_size(z, 0), NULL, ZC_BAD_REQUEST,
                                  "a message must be exactly one frame");
    }
}

static void on_readable(void *sock, void *arg) { zc_zmsg_each(sock, on_message, arg); }

int broker__frontend_open(broker_t *b, char *err, size_t errlen)
{
    /* Per connection: a client that does not read its replies loses the
     * ones past FRONT_HWM (a ROUTER drops them) instead of growing the
     * replica's memory; one that sends faster than it is served is held
     * back by TCP past FRONT_HWM unread frames. */
    broker__router_t r = {.what = "client",
                          .endpoint = b->self->client_endpoint,
                          .roles = FRONT_ROLES,
                          .hwm = FRONT_HWM,
                          .on_readable = on_readable,
                          .sock = &b->front,
                          .watch = &b->front_w};
    return broker__router_open(b, &r, err, errlen);
}

void broker__frontend_close(broker_t *b) { broker__router_close(&b->front, &b->front_w); }
