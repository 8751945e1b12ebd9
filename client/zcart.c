/* zcart: the session API of libzcart (client, sessions, cart operations,
 * admin); see zcart.h for the contract.
 *
 * Every operation has the same shape: validate locally (nothing the
 * protocol forbids is ever sent), take a fresh seq, encode the REQUEST
 * once -- its deadline is fixed here, so every retry carries the same one --
 * hand the frame to the retry engine (call.c), and copy the final REPLY
 * into the caller's result.
 *
 * The seq is taken before the first try and never given back: a seq that
 * may have reached the cluster must never name another operation
 * (docs/protocol.md §3), so even a call that ends unreachable consumes it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "client/internal.h"
#include "lib/clock.h"
#include "lib/rand.h"
#include "proto/status.h"

/* --- helpers ------------------------------------------------------------------ */

uint64_t zcart__next_seq(uint64_t last, uint64_t now_us)
{
    return now_us > last ? now_us : last + 1;
}

uint64_t zcart__wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t zcart__rand(zcart_t *z)
{
    return zc_xorshift64(&z->rng); /* jitter needs spread, not quality */
}

const char *zcart_rc_name(int rc)
{
    switch (rc) {
    case ZCART_ANSWERED: return "ANSWERED";
    case ZCART_EINVAL: return "INVALID";
    case ZCART_EUNREACHABLE: return "UNREACHABLE";
    case ZCART_ESYS: return "LOCAL_ERROR";
    default: return "UNKNOWN";
    }
}

const char *zcart_status_name(int status) { return zc_status_name(status); }

bool zcart_item_check(const char *product, long long qty, char *why, size_t whylen)
{
    char dummy[8];
    if (why == NULL) {
        why = dummy;
        whylen = sizeof dummy;
    }
    if (product == NULL || !zc_product_valid(product)) {
        snprintf(why, whylen, "product must be 1..%d printable ASCII octets without space or comma",
                 ZC_PRODUCT_MAX);
        return false;
    }
    if (qty < 1 || qty > ZCART_QTY_MAX) {
        snprintf(why, whylen, "qty must be 1..%d", ZCART_QTY_MAX);
        return false;
    }
    return true;
}

/* --- client ------------------------------------------------------------------- */

void zcart_options_default(zcart_options_t *o)
{
    memset(o, 0, sizeof *o);
    o->attempt_timeout_ms = ZCART_DEFAULT_ATTEMPT_TIMEOUT_MS;
    o->total_timeout_ms = ZCART_DEFAULT_TOTAL_TIMEOUT_MS;
    o->backoff_ms = ZCART_DEFAULT_BACKOFF_MS;
    o->backoff_max_ms = ZCART_DEFAULT_BACKOFF_MAX_MS;
    o->election_backoff_ms = ZCART_DEFAULT_ELECTION_BACKOFF_MS;
    o->status_timeout_ms = ZCART_DEFAULT_STATUS_TIMEOUT_MS;
}

/* Fill the zero fields of o with defaults; false if a field is negative. */
static bool options_fill(zcart_options_t *o)
{
    if (o->attempt_timeout_ms < 0 || o->total_timeout_ms < 0 || o->backoff_ms < 0 ||
        o->backoff_max_ms < 0 || o->status_timeout_ms < 0 || o->keepalive_ms < 0 ||
        o->election_backoff_ms < 0)
        return false;
    if (o->attempt_timeout_ms == 0)
        o->attempt_timeout_ms = ZCART_DEFAULT_ATTEMPT_TIMEOUT_MS;
    if (o->total_timeout_ms == 0)
        o->total_timeout_ms = ZCART_DEFAULT_TOTAL_TIMEOUT_MS;
    if (o->backoff_ms == 0)
        o->backoff_ms = ZCART_DEFAULT_BACKOFF_MS;
    if (o->backoff_max_ms == 0)
        o->backoff_max_ms = ZCART_DEFAULT_BACKOFF_MAX_MS;
    if (o->election_backoff_ms == 0)
        o->election_backoff_ms = ZCART_DEFAULT_ELECTION_BACKOFF_MS;
    if (o->backoff_max_ms < o->backoff_ms)
        o->backoff_max_ms = o->backoff_ms;
    if (o->status_timeout_ms == 0)
        o->status_timeout_ms = ZCART_DEFAULT_STATUS_TIMEOUT_MS;
    return true;
}

bool zcart_brokers_check(const char *brokers, char *why, size_t whylen)
{
    char dummy[8];
    zcf_list_t l = {0};
    if (why == NULL) {
        why = dummy;
        whylen = sizeof dummy;
    }
    if (zcf_list_parse(&l, brokers, why, whylen) != 0)
        return false;
    zcf_list_clear(&l);
    return true;
}

zcart_t *zcart_new(const char *brokers, const zcart_options_t *opt)
{
    char why[160];
    zcart_t *z = calloc(1, sizeof *z);
    if (z == NULL)
        return NULL;
    if (opt)
        z->opt = *opt;
    if (!options_fill(&z->opt) || zcf_list_parse(&z->list, brokers, why, sizeof why) != 0) {
        errno = EINVAL;
        goto err_after_alloc;
    }
    /* Keys: copied, so the caller's strings need not outlive z. */
    const char **kp[3] = {&z->opt.server_key, &z->opt.public_key, &z->opt.secret_key};
    for (int k = 0; k < 3; k++) {
        if (*kp[k] == NULL)
            continue;
        if (strlen(*kp[k]) != 40 || z->opt.server_key == NULL) {
            errno = EINVAL;
            goto err_after_list;
        }
        memcpy(z->keys[k], *kp[k], 41);
        *kp[k] = z->keys[k];
    }
    if (z->opt.server_key && (!z->opt.public_key || !z->opt.secret_key)) {
        errno = EINVAL;
        goto err_after_list;
    }
    z->brokers = strdup(brokers);
    if (z->brokers == NULL)
        goto err_after_list;
    z->ctx = z->opt.zmq_context;
    if (z->ctx == NULL) {
        z->ctx = zmq_ctx_new();
        if (z->ctx == NULL)
            goto err_after_list;
        z->own_ctx = true;
    }
    if (getrandom(&z->rng, sizeof z->rng, 0) != (ssize_t)sizeof z->rng)
        z->rng = zcart__wall_us() ^ (uint64_t)(uintptr_t)z;
    z->rng |= 1; /* xorshift must not start at 0 */
    z->next_corr = zcart__rand(z) >> 16;
    return z;
err_after_list : {
    int e = errno;
    free(z->brokers);
    zcf_list_clear(&z->list);
    errno = e;
}
err_after_alloc : {
    int e = errno;
    free(z);
    errno = e;
}
    return NULL;
}

void zcart_destroy(zcart_t **p)
{
    zcart_t *z = *p;
    if (z == NULL)
        return;
    *p = NULL;
    zcf_conn_close(&z->conn);
    if (z->own_ctx)
        zmq_ctx_term(z->ctx);
    zcf_list_clear(&z->list);
    free(z->brokers);
    free(z);
}

const char *zcart_current_endpoint(const zcart_t *z) { return z->list.eps[z->list.cur]; }

/* --- sessions ------------------------------------------------------------------- */

static zcart_session_t *session_make(zcart_t *z, const uint8_t id[ZC_SESSION_LEN])
{
    zcart_session_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->z = z;
    memcpy(s->id, id, ZC_SESSION_LEN);
    zc_session_hex(s->id, s->hex);
    if (z->opt.keepalive_ms > 0) /* best effort: without it only requests renew */
        s->keeper = zcart_keeper_start(z->brokers, &z->opt, s->hex, z->opt.keepalive_ms);
    return s;
}

zcart_session_t *zcart_session_new(zcart_t *z)
{
    uint8_t id[ZC_SESSION_LEN];
    zc_session_random(id);
    return session_make(z, id);
}

zcart_session_t *zcart_session_attach(zcart_t *z, const char *hex_id)
{
    uint8_t id[ZC_SESSION_LEN];
    if (!zc_session_parse(hex_id, id)) {
        errno = EINVAL;
        return NULL;
    }
    return session_make(z, id);
}

void zcart_session_destroy(zcart_session_t **p)
{
    if (*p)
        zcart_keeper_stop(&(*p)->keeper);
    free(*p);
    *p = NULL;
}

const char *zcart_session_id(const zcart_session_t *s) { return s->hex; }
uint64_t zcart_session_last_seq(const zcart_session_t *s) { return s->last_seq; }

int zcart_session_use_seq(zcart_session_t *s, uint64_t seq)
{
    if (s == NULL || seq == 0) {
        errno = EINVAL;
        return -1;
    }
    s->use_seq = seq;
    return 0;
}

/* --- results -------------------------------------------------------------------- */

void zcart_result_clear(zcart_result_t *res)
{
    free(res->items);
    free(res->props);
    memset(res, 0, sizeof *res);
}

/* Start a call: clear res and mark it "no answer yet". */
static void result_begin(zcart_result_t *res)
{
    zcart_result_clear(res);
    res->status = -1;
    res->reason = "INVALID";
}

/* Copy an answer into res.  -1 if out of memory. */
static int result_fill(zcart_result_t *res, const zc_msg_t *m)
{
    res->status = m->status;
    res->reason = zc_status_name(m->status);
    snprintf(res->detail, sizeof res->detail, "%s", m->detail);
    if (m->id == ZC_MSG_REPLY) {
        snprintf(res->cart, sizeof res->cart, "%s", m->cart);
        res->generation = m->generation;
        res->replica_id = m->replica;
        res->term = m->term;
    }
    if (m->n_items) {
        res->items = calloc(m->n_items, sizeof *res->items);
        if (res->items == NULL)
            return -1;
        for (size_t i = 0; i < m->n_items; i++) {
            snprintf(res->items[i].product, sizeof res->items[i].product, "%s",
                     m->items[i].product);
            res->items[i].qty = m->items[i].qty;
        }
        res->n_items = m->n_items;
    }
    if (m->n_props) {
        res->props = calloc(m->n_props, sizeof *res->props);
        if (res->props == NULL)
            return -1;
        for (size_t i = 0; i < m->n_props; i++) {
            snprintf(res->props[i].key, sizeof res->props[i].key, "%s", m->props[i].key);
            snprintf(res->props[i].value, sizeof res->props[i].value, "%s", m->props[i].value);
        }
        res->n_props = m->n_props;
    }
    return 0;
}

/* Encode m, run the call, fill res. */
static int run(zcart_t *z, const zc_msg_t *m, zcart__call_t *c, zcart_result_t *res)
{
    zc_wbuf_t w;
    zc_msg_t reply;
    int rc;
    zc_wbuf_init(&w);
    zc_msg_init(&reply, 0);
    if (zc_msg_encode(m, &w) != 0 || w.oom) {
        snprintf(res->detail, sizeof res->detail, "could not encode the request");
        res->reason = "LOCAL_ERROR";
        rc = ZCART_ESYS;
        goto out;
    }
    c->frame = w.data;
    c->len = w.len;
    rc = zcart__call(z, c, &reply, res);
    if (rc == ZCART_ANSWERED && result_fill(res, &reply) != 0) {
        int attempts = (int)res->attempts;
        char replica[sizeof res->replica];
        memcpy(replica, res->replica, sizeof replica);
        result_begin(res);
        res->attempts = (unsigned)attempts;
        memcpy(res->replica, replica, sizeof replica);
        res->reason = "LOCAL_ERROR";
        res->in_doubt = true;
        snprintf(res->detail, sizeof res->detail, "out of memory copying the answer");
        rc = ZCART_ESYS;
    }
out:
    zc_msg_reset(&reply);
    zc_wbuf_clear(&w);
    return rc;
}

/* --- cart operations ---------------------------------------------------------------- */

static int cart_op(zcart_session_t *s, int op, const char *product, uint32_t qty,
                   zcart_result_t *res)
{
    result_begin(res);
    if (s == NULL) {
        snprintf(res->detail, sizeof res->detail, "no session");
        return ZCART_EINVAL;
    }
    if ((op == ZC_OP_ADD || op == ZC_OP_REMOVE) &&
        !zcart_item_check(product, qty, res->detail, sizeof res->detail))
        return ZCART_EINVAL;
    zcart_t *z = s->z;
    zc_msg_t m;
    zc_msg_init(&m, ZC_MSG_REQUEST);
    if (s->use_seq) {
        m.seq = s->use_seq;
        s->use_seq = 0;
        if (m.seq > s->last_seq)
            s->last_seq = m.seq;
    } else {
        m.seq = s->last_seq = zcart__next_seq(s->last_seq, zcart__wall_us());
    }
    memcpy(m.session, s->id, ZC_SESSION_LEN);
    res->seq = m.seq;
    m.op = (uint8_t)op;
    m.deadline = z->opt.no_deadline ? 0 : zc_wall_ms() + (uint64_t)z->opt.total_timeout_ms;
    if (op == ZC_OP_ADD || op == ZC_OP_REMOVE) {
        snprintf(m.product, sizeof m.product, "%s", product);
        m.qty = qty;
    }
    zcart__call_t c = {.reply_id = ZC_MSG_REPLY, .session = s->id, .seq = m.seq, .resend = true};
    return run(z, &m, &c, res);
}

int zcart_add(zcart_session_t *s, const char *product, uint32_t qty, zcart_result_t *res)
{
    return cart_op(s, ZC_OP_ADD, product, qty, res);
}

int zcart_remove(zcart_session_t *s, const char *product, uint32_t qty, zcart_result_t *res)
{
    return cart_op(s, ZC_OP_REMOVE, product, qty, res);
}

int zcart_list(zcart_session_t *s, zcart_result_t *res)
{
    return cart_op(s, ZC_OP_LIST, NULL, 0, res);
}

int zcart_keepalive(zcart_session_t *s, zcart_result_t *res)
{
    return cart_op(s, ZC_OP_KEEPALIVE, NULL, 0, res);
}

int zcart_close(zcart_session_t *s, zcart_result_t *res)
{
    int rc = cart_op(s, ZC_OP_CLOSE, NULL, 0, res);
    if (s && rc == ZCART_ANSWERED && res->status == 0)
        zcart_keeper_stop(&s->keeper); /* ended: nothing left to keep */
    return rc;
}

/* --- admin -------------------------------------------------------------------------- */

int zcart_admin(zcart_t *z, const char *command, const zcart_prop_t *props, size_t n_props,
                zcart_result_t *res)
{
    result_begin(res);
    if (command == NULL || command[0] == 0 || strlen(command) > ZC_COMMAND_MAX) {
        snprintf(res->detail, sizeof res->detail, "admin command must be 1..%d octets",
                 ZC_COMMAND_MAX);
        return ZCART_EINVAL;
    }
    if (n_props > ZC_PROPS_MAX || (n_props && props == NULL)) {
        snprintf(res->detail, sizeof res->detail, "at most %d props", ZC_PROPS_MAX);
        return ZCART_EINVAL;
    }
    zc_msg_t m;
    zc_msg_init(&m, ZC_MSG_ADMIN);
    m.corr = z->next_corr++;
    snprintf(m.command, sizeof m.command, "%s", command);
    int rc = ZCART_EINVAL;
    for (size_t i = 0; i < n_props; i++) {
        size_t kl = strnlen(props[i].key, sizeof props[i].key);
        if (kl == 0 || kl > ZC_KEY_MAX ||
            strnlen(props[i].value, sizeof props[i].value) > ZC_VALUE_MAX) {
            snprintf(res->detail, sizeof res->detail, "prop %zu: key 1..%d, value 0..%d octets", i,
                     ZC_KEY_MAX, ZC_VALUE_MAX);
            goto out;
        }
        if (zc_msg_add_prop(&m, props[i].key, "%s", props[i].value) != 0) {
            snprintf(res->detail, sizeof res->detail, "out of memory");
            res->reason = "LOCAL_ERROR";
            rc = ZCART_ESYS;
            goto out;
        }
    }
    /* Admin changes (add-node waits for the new server's catch-up) may take
     * the whole budget: one try waits for all of it. */
    zcart__call_t c = {.reply_id = ZC_MSG_ADMIN_REPLY,
                       .corr = m.corr,
                       .resend = false,
                       .attempt_ms = z->opt.total_timeout_ms};
    rc = run(z, &m, &c, res);
out:
    zc_msg_reset(&m);
    return rc;
}
