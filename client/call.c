/* call: the retry engine behind every libzcart call.
 *
 * One call = one encoded frame, sent unchanged on every try, and a
 * deadline-bound loop over replicas:
 *
 *   try: open a connection to list.cur if none, forget stale monitor
 *        events, send, wait until min(now + attempt timeout, call end) for a
 *        frame that matches (REPLY with our session and seq, or ADMIN_REPLY
 *        with our corr; anything else is a late answer to an earlier try
 *        and is dropped).
 *
 *   outcome                         next
 *   ------------------------------  ----------------------------------------
 *   NOT_LEADER naming an endpoint   switch there now (added if unknown)
 *   NOT_LEADER "unknown"            election backoff, next replica
 *   UNAVAILABLE (cart ops)          backoff, next replica; the op is in doubt
 *   any other answer                done: ZCART_ANSWERED
 *   no answer in time               close, next replica (admin: give up)
 *   connection lost                 close, next replica (admin: give up)
 *   connection refused              close, next replica (nothing was sent)
 *
 * Quick hops (redirects, refusals, drops) cost no wait, so a cluster whose
 * followers still point at a dead leader could make the loop spin: after
 * as many quick hops in a row as there are replicas the engine sleeps a
 * backoff too.  Backoffs start at backoff_ms (after NOT_LEADER "unknown":
 * at election_backoff_ms, a sequence of its own -- an election usually
 * ends within tens of ms, and a long first wait was most of a failover's
 * outage as clients saw it), grow by half each time up to
 * backoff_max_ms, carry up to 25% random jitter (clients that lost the same
 * leader do not come back in step) and never overrun the call's end.
 *
 * The leader directly.  A follower relays a request it gets to the leader
 * (docs/protocol.md 3.6): the client is served, one hop longer each way
 * (~150 µs of a 900 µs add, bench/README.md "Latency budget").  So when an
 * answer names a deciding replica (`replica`) other than the one the
 * connection is known to reach, the next cart op first asks the connected
 * replica's STATUS (one round trip, at most once per term): a follower's
 * names the leader's endpoint, and the client moves there, as on
 * NOT_LEADER.  A one-call client (the CLI) never pays for it.  When the
 * leader's endpoint cannot be reached from here the engine moves on as
 * for any unreachable replica, and the next term may try again.
 *
 * `in_doubt` records whether some try may have reached a leader that
 * applied it: a try that timed out on a connection that was up at some
 * point after the send, or lost its connection, or got UNAVAILABLE ("did
 * not commit in time").  A try whose connection never came up (refused,
 * or still connecting when its time ran out) was never delivered.  An EXPIRED answer after
 * such a try does not prove the op was not applied, so it is reported as
 * "unreachable, in doubt" rather than as a KO.  And no try is sent with
 * less than MIN_TRY_MS of the budget left, the first excepted: it could
 * hardly be answered, so all it would add is doubt -- a call whose
 * replicas all answered "not the leader" ended "in doubt" when a backoff
 * left it 1 ms for one more try. */
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/internal.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "proto/status.h"

/* The least budget a try after the first is sent with (above). */
#define MIN_TRY_MS 20

/* Per-call state of the loop. */
typedef struct {
    zcart_t *z;         /* the client */
    uint64_t end;       /* monotonic ms when the budget runs out */
    int backoff;        /* next backoff, ms */
    int election_backoff; /* next wait after NOT_LEADER "unknown", ms */
    unsigned hops;      /* quick hops since the last wait */
    bool in_doubt;      /* some try may have been applied */
    char last[200];     /* what went wrong last, for the final detail */
} loop_t;

/* Record what went wrong last (cut to fit: it only feeds a message). */
static void say(loop_t *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(loop_t *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->last, sizeof l->last, fmt, ap);
    va_end(ap);
    zc_debug("%s", l->last);
}

static void sleep_ms(uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Sleep *next ms (jittered, never past the call's end), then grow it. */
static void wait_and_grow(loop_t *l, int *next)
{
    uint64_t now = zc_mono_ms();
    uint64_t ms = (uint64_t)*next;
    ms += zcart__rand(l->z) % (ms / 4 + 1);
    if (now + ms > l->end)
        ms = l->end > now ? l->end - now : 0;
    sleep_ms(ms);
    int grown = *next + (*next / 2 > 0 ? *next / 2 : 1);
    *next = grown > l->z->opt.backoff_max_ms ? l->z->opt.backoff_max_ms : grown;
    l->hops = 0;
}

static void backoff(loop_t *l) { wait_and_grow(l, &l->backoff); }

/* Drop the connection and move on to the next replica. */
static void next_replica(zcart_t *z)
{
    zcf_conn_close(&z->conn);
    z->list.cur = (z->list.cur + 1) % z->list.n;
}

/* A hop that took no time: after a round of them, wait. */
static void quick_hop(loop_t *l)
{
    if (++l->hops >= l->z->list.n)
        backoff(l);
}

static bool matches(const zcart__call_t *c, const zc_msg_t *m)
{
    /* The broker answers a frame it could not read with an all-zero
     * session; with one request outstanding, that is ours. */
    if (m->id == ZC_MSG_REPLY && m->status == ZC_BAD_REQUEST && m->seq == 0 &&
        zc_session_is_zero(m->session))
        return true;
    if (m->id != c->reply_id)
        return false;
    if (m->id == ZC_MSG_REPLY)
        return m->seq == c->seq && memcmp(m->session, c->session, ZC_SESSION_LEN) == 0;
    return m->corr == c->corr;
}

/* Wait for the answer to the try just sent. */
static zcf_wait_t await(zcart_t *z, const zcart__call_t *c, uint64_t until, zc_msg_t *reply)
{
    for (;;) {
        zmq_msg_t f;
        zcf_wait_t w = zcf_conn_wait(&z->conn, until, &f);
        if (w != ZCF_GOT)
            return w;
        const char *why;
        int rc = zc_msg_decode(reply, zmq_msg_data(&f), zmq_msg_size(&f), &why);
        zmq_msg_close(&f);
        if (rc == 0 && matches(c, reply))
            return ZCF_GOT;
        if (rc != 0)
            zc_debug("undecodable frame from %s dropped: %s", z->conn.endpoint, why);
        else
            zc_debug("%s from %s does not match the outstanding request, dropped",
                     zc_msg_name(reply->id), z->conn.endpoint);
        zc_msg_reset(reply);
    }
}

/* The probe of "the leader directly": the connected replica's STATUS;
 * move to the leader it names if it is not the leader itself. */
static void probe_leader(zcart_t *z)
{
    zc_msg_t m, reply;
    zc_wbuf_t w;
    zc_msg_init(&m, ZC_MSG_STATUS);
    m.corr = z->next_corr++;
    zc_wbuf_init(&w);
    zcart__call_t c = {.reply_id = ZC_MSG_STATUS_REPLY, .corr = m.corr};
    int wait_ms = z->opt.attempt_timeout_ms < 250 ? z->opt.attempt_timeout_ms : 250;
    zc_msg_init(&reply, 0);
    int enc = zc_msg_encode(&m, &w);
    zc_msg_reset(&m);
    if (enc != 0 || w.oom) {
        zc_wbuf_clear(&w);
        return;
    }
    zcf_conn_arm(&z->conn);
    zcf_wait_t got = zmq_send(z->conn.dealer, w.data, w.len, ZMQ_DONTWAIT) < 0
                         ? ZCF_FAIL
                         : await(z, &c, zc_mono_ms() + (uint64_t)wait_ms, &reply);
    if (got != ZCF_GOT || reply.id != ZC_MSG_STATUS_REPLY) {
        /* No answer soon: stay (a late one is dropped by the next await);
         * a connection that went away is opened again by the next try. */
        if (got == ZCF_LOST || got == ZCF_REFUSED)
            zcf_conn_close(&z->conn);
        zc_wbuf_clear(&w);
        zc_msg_reset(&reply);
        return;
    }
    zc_wbuf_clear(&w);
    const char *id = NULL, *role = NULL, *leader = NULL;
    for (size_t i = 0; i < reply.n_props; i++) {
        const zc_prop_t *p = &reply.props[i];
        if (strcmp(p->key, "id") == 0)
            id = p->value;
        else if (strcmp(p->key, "role") == 0)
            role = p->value;
        else if (strcmp(p->key, "leader_endpoint") == 0)
            leader = p->value;
    }
    if (role && strcmp(role, "leader") == 0 && id) {
        z->conn_id = strtoull(id, NULL, 10);
        z->conn_id_at = z->list.cur;
    } else if (leader && strcmp(leader, "unknown") != 0 && zcf_endpoint_valid(leader)) {
        int idx = zcf_list_find_or_add(&z->list, leader);
        if (idx >= 0 && (size_t)idx != z->list.cur) {
            zc_debug("%s relays to the leader: moving to %.80s", z->list.eps[z->list.cur], leader);
            zcf_conn_close(&z->conn);
            z->list.cur = (size_t)idx;
        }
    }
    zc_msg_reset(&reply);
}

/* A NOT_LEADER answer: follow a named leader at once, else wait and move on. */
static void not_leader(loop_t *l, const char *from, const char *leader)
{
    zcart_t *z = l->z;
    int idx = strcmp(leader, "unknown") == 0 ? -1 : zcf_list_find_or_add(&z->list, leader);
    if (idx >= 0 && (size_t)idx != z->list.cur) {
        say(l, "%s is not the leader, redirected to %.80s", from,
                 leader);
        zcf_conn_close(&z->conn);
        z->list.cur = (size_t)idx;
        quick_hop(l);
        return;
    }
    say(l, "%s is not the leader and knows none (%.80s)", from, leader);
    wait_and_grow(l, &l->election_backoff);
    next_replica(z);
}

/* What one try led to. */
typedef enum {
    STEP_ANSWERED,    /* reply holds the answer */
    STEP_NEXT,        /* try again (the replica and the wait are chosen) */
    STEP_UNREACHABLE, /* give up: no answer that may be resent */
    STEP_SYS,         /* a local ZeroMQ error (errno) */
} step_t;

/* An answer arrived: the ones that mean "try again" are taken care of. */
static step_t on_answer(loop_t *l, const char *from, zc_msg_t *reply)
{
    zcart_t *z = l->z;
    if (reply->status == ZC_NOT_LEADER) {
        not_leader(l, from, reply->detail);
        zc_msg_reset(reply);
        return STEP_NEXT;
    }
    if (reply->status == ZC_UNAVAILABLE && reply->id == ZC_MSG_REPLY) {
        l->in_doubt = true;
        say(l, "%s: UNAVAILABLE: %.120s", from, reply->detail);
        zc_msg_reset(reply);
        backoff(l);
        next_replica(z);
        return STEP_NEXT;
    }
    if (reply->status == ZC_BUSY && reply->id == ZC_MSG_REPLY && zc_mono_ms() < l->end) {
        /* Admission control: not applied; the same replica, after a backoff. */
        say(l, "%s: BUSY: %.120s", from, reply->detail);
        zc_msg_reset(reply);
        backoff(l);
        return STEP_NEXT;
    }
    if (reply->status == ZC_EXPIRED && l->in_doubt) {
        say(l, "%s: EXPIRED, after an earlier try went unanswered", from);
        zc_msg_reset(reply);
        return STEP_UNREACHABLE;
    }
    return STEP_ANSWERED;
}

/* No answer to a try: was it connected, lost, refused? */
static step_t on_silence(loop_t *l, const zcart__call_t *c, const char *from, zcf_wait_t w,
                         uint64_t waited_ms)
{
    zcart_t *z = l->z;
    switch (w) {
    case ZCF_TIMEOUT:
        /* A frame whose connection never came up since the send is still
         * queued here and dies with the socket: not in doubt, and safe to
         * send elsewhere even when resending is not. */
        zcf_conn_drain(&z->conn);
        if (z->conn.touched) {
            l->in_doubt = true;
            say(l, "no answer from %s within %" PRIu64 " ms", from, waited_ms);
            if (!c->resend)
                return STEP_UNREACHABLE;
        } else {
            say(l, "could not connect to %s within %" PRIu64 " ms", from, waited_ms);
        }
        next_replica(z);
        return STEP_NEXT;
    case ZCF_LOST:
        l->in_doubt = true;
        say(l, "connection to %s lost", from);
        if (!c->resend)
            return STEP_UNREACHABLE;
        break;
    case ZCF_REFUSED: say(l, "%s refused the connection", from); break;
    default: return STEP_SYS;
    }
    next_replica(z);
    quick_hop(l);
    return STEP_NEXT;
}

/* One try at the current replica: connect if needed, send, wait. */
static step_t try_once(loop_t *l, const zcart__call_t *c, uint64_t now, zc_msg_t *reply,
                       zcart_result_t *res)
{
    zcart_t *z = l->z;
    char from[ZCART_ENDPOINT_MAX + 1];
    snprintf(from, sizeof from, "%s", z->list.eps[z->list.cur]);
    snprintf(res->replica, sizeof res->replica, "%s", from);
    if (z->conn.dealer == NULL && zcf_conn_open(&z->conn, z->ctx, from, &z->opt) != 0) {
        if (errno == ETERM || errno == ENOMEM || errno == EMFILE)
            return STEP_SYS;
        say(l, "cannot connect to %s: %s", from, zmq_strerror(errno));
        next_replica(z);
        quick_hop(l);
        return STEP_NEXT;
    }
    zcf_conn_arm(&z->conn); /* events from before this try are old news */
    if (zmq_send(z->conn.dealer, c->frame, c->len, ZMQ_DONTWAIT) < 0) {
        if (errno == ETERM)
            return STEP_SYS;
        say(l, "cannot send to %s: %s", from, zmq_strerror(errno));
        next_replica(z);
        quick_hop(l);
        return STEP_NEXT;
    }
    res->attempts++;
    uint64_t until = now + (uint64_t)(c->attempt_ms ? c->attempt_ms : z->opt.attempt_timeout_ms);
    if (until > l->end)
        until = l->end;
    zcf_wait_t w = await(z, c, until, reply);
    if (w != ZCF_GOT)
        return on_silence(l, c, from, w, until - now);
    return on_answer(l, from, reply);
}

int zcart__call(zcart_t *z, const zcart__call_t *c, zc_msg_t *reply, zcart_result_t *res)
{
    loop_t l = {.z = z, .backoff = z->opt.backoff_ms,
                .election_backoff = z->opt.election_backoff_ms};
    l.end = zc_mono_ms() + (uint64_t)z->opt.total_timeout_ms;
    snprintf(l.last, sizeof l.last, "nothing was tried");
    res->attempts = 0;
    if (z->probe && c->reply_id == ZC_MSG_REPLY && z->conn.dealer != NULL) {
        z->probe = false;
        z->probed_term = z->probe_term;
        probe_leader(z);
    }
    step_t step = STEP_UNREACHABLE;
    for (uint64_t now; (now = zc_mono_ms()) < l.end;) {
        if (res->attempts > 0 && l.end - now < MIN_TRY_MS)
            break; /* step is STEP_UNREACHABLE, l.last the last try's story */
        step = try_once(&l, c, now, reply, res);
        if (step != STEP_NEXT)
            break;
        step = STEP_UNREACHABLE; /* what running out of time means */
    }
    if (step == STEP_ANSWERED) {
        /* Decided by another replica than the one asked: relayed (above). */
        if (reply->id == ZC_MSG_REPLY && reply->replica != 0 && reply->term > z->probed_term &&
            !(z->conn_id == reply->replica && z->conn_id_at == z->list.cur)) {
            z->probe = true;
            z->probe_term = reply->term;
        }
        return ZCART_ANSWERED;
    }
    res->status = -1;
    res->in_doubt = l.in_doubt;
    if (step == STEP_SYS) {
        res->reason = "LOCAL_ERROR";
        snprintf(res->detail, sizeof res->detail, "ZeroMQ: %s", zmq_strerror(errno));
        zcf_conn_close(&z->conn);
        return ZCART_ESYS;
    }
    res->reason = "UNREACHABLE";
    snprintf(res->detail, sizeof res->detail, "no answer within %d ms (%u %s); last: %.180s",
             z->opt.total_timeout_ms, res->attempts, res->attempts == 1 ? "try" : "tries", l.last);
    return ZCART_EUNREACHABLE;
}
