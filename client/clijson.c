/* clijson: result formatting for the zcart CLI; the formats are listed in
 * clijson.h.  Text lines are for people ("OK cart n1.0 gen 7: apple x3"),
 * JSON objects for programs; both are built from the same zcart_result_t
 * so they can never disagree. */
#include "client/clijson.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/json.h"
#include "lib/zsec.h"
#include "proto/msg.h"

/* Text output of strings the cluster sent (details, products, cart ids):
 * control bytes as \xHH, so no peer can drive the terminal or forge lines.
 * Rotating buffers: up to four in one printf. */
static const char *esc(const char *s)
{
    static char buf[4][4 * 256 + 1];
    static unsigned k;
    char *b = buf[k++ % 4];
    return zc_escape(s, strlen(s), b, sizeof buf[0]);
}

bool zcli_is_integer(const char *s)
{
    const char *p = s;
    if (p == NULL || *p == 0)
        return false;
    bool neg = *p == '-';
    if (neg)
        p++;
    if (*p == 0 || (*p == '0' && (p[1] != 0 || neg)))
        return false;
    for (const char *q = p; *q; q++)
        if (*q < '0' || *q > '9')
            return false;
    errno = 0;
    char *end;
    if (neg)
        (void)strtoll(s, &end, 10);
    else
        (void)strtoull(s, &end, 10);
    return errno == 0 && *end == 0;
}

/* A prop value: null if absent, a number when it is one and the key is
 * not a text key, else a string. */
static void json_value(zc_json_t *j, const char *key, const char *v)
{
    static const char *const text_keys[] = {"endpoint", "role", "digest", "leader_endpoint"};
    if (v == NULL) {
        zc_json_null(j);
        return;
    }
    for (size_t i = 0; i < sizeof text_keys / sizeof *text_keys; i++) {
        if (strcmp(key, text_keys[i]) == 0) {
            zc_json_string(j, v);
            return;
        }
    }
    if (zcli_is_integer(v)) {
        if (v[0] == '-')
            zc_json_i64(j, strtoll(v, NULL, 10));
        else
            zc_json_u64(j, strtoull(v, NULL, 10));
    } else {
        zc_json_string(j, v);
    }
}

static void emit(FILE *out, zc_json_t *j)
{
    fprintf(out, "%s\n", zc_json_str(j));
    fflush(out);
    zc_json_clear(j);
}

int zcli_exit_code(int rc, const zcart_result_t *r)
{
    switch (rc) {
    case ZCART_ANSWERED: return r->status == 0 ? 0 : 1;
    case ZCART_EINVAL: return 2;
    default: return 3;
    }
}

void zcli_print_usage(FILE *out, bool json, const char *detail)
{
    if (!json) {
        fprintf(out, "USAGE: %s\n", esc(detail));
        fflush(out);
        return;
    }
    zc_json_t j;
    zc_json_init(&j);
    zc_json_obj(&j);
    zc_json_kbool(&j, "ok", false);
    zc_json_kstr(&j, "reason", "USAGE");
    zc_json_kstr(&j, "detail", detail);
    zc_json_end(&j);
    emit(out, &j);
}

/* --- cart operations ----------------------------------------------------------------- */

static void text_items(FILE *out, const zcart_result_t *r)
{
    if (r->n_items == 0) {
        fputs("empty", out);
        return;
    }
    for (size_t i = 0; i < r->n_items; i++)
        fprintf(out, "%s%s x%" PRIu32, i ? ", " : "", esc(r->items[i].product), r->items[i].qty);
}

static void text_op(FILE *out, int op, const char *session, bool new_session, int rc,
                    const zcart_result_t *r)
{
    if (new_session)
        fprintf(out, "session %s\n", session);
    if (rc == ZCART_EINVAL) {
        fprintf(out, "USAGE: %s\n", esc(r->detail));
    } else if (rc != ZCART_ANSWERED) {
        fprintf(out, "UNREACHABLE: %s%s\n", esc(r->detail),
                r->in_doubt ? " (outcome unknown: it may have been applied)"
                            : " (not applied)");
    } else if (r->status != 0) {
        fprintf(out, "KO %s%s%s\n", r->reason, r->detail[0] ? ": " : "", esc(r->detail));
    } else if (op == ZC_OP_KEEPALIVE) {
        fprintf(out, "OK lease renewed\n");
    } else if (op == ZC_OP_CLOSE) {
        if (r->cart[0])
            fprintf(out, "OK closed cart %s gen %" PRIu64 "\n", esc(r->cart), r->generation);
        else
            fprintf(out, "OK closed (no cart)\n");
    } else {
        if (r->cart[0])
            fprintf(out, "OK cart %s gen %" PRIu64 ": ", esc(r->cart), r->generation);
        else
            fprintf(out, "OK no cart: ");
        text_items(out, r);
        fputc('\n', out);
    }
    fflush(out);
}

/* The start of the JSON answer to an op or an admin command: a usage
 * error is printed whole (false); else j is open with "ok". */
static bool json_answer_begin(FILE *out, zc_json_t *j, int rc, const zcart_result_t *r)
{
    if (rc == ZCART_EINVAL) {
        zcli_print_usage(out, true, r->detail);
        return false;
    }
    zc_json_init(j);
    zc_json_obj(j);
    zc_json_kbool(j, "ok", rc == ZCART_ANSWERED && r->status == 0);
    return true;
}

void zcli_print_op(FILE *out, bool json, int op, const char *session, bool new_session, int rc,
                   const zcart_result_t *r)
{
    if (!json) {
        text_op(out, op, session, new_session, rc, r);
        return;
    }
    zc_json_t j;
    if (!json_answer_begin(out, &j, rc, r))
        return;
    zc_json_kstr(&j, "op", zc_op_name(op) ? zc_op_name(op) : "?");
    zc_json_kstr(&j, "session", session);
    zc_json_kbool(&j, "new_session", new_session);
    zc_json_ku64(&j, "seq", r->seq);
    if (rc != ZCART_ANSWERED) {
        zc_json_kstr(&j, "reason", "UNREACHABLE");
        zc_json_kstr(&j, "detail", r->detail);
        zc_json_kbool(&j, "in_doubt", r->in_doubt);
        zc_json_end(&j);
        emit(out, &j);
        return;
    }
    zc_json_kstr(&j, "reason", r->reason);
    zc_json_kstr(&j, "detail", r->detail);
    if (r->status != 0) {
        zc_json_key(&j, "status");
        zc_json_i64(&j, r->status);
    }
    zc_json_key(&j, "cart");
    if (r->cart[0])
        zc_json_string(&j, r->cart);
    else
        zc_json_null(&j);
    zc_json_key(&j, "generation");
    if (r->cart[0])
        zc_json_u64(&j, r->generation);
    else
        zc_json_null(&j);
    zc_json_key(&j, "items");
    zc_json_arr(&j);
    for (size_t i = 0; i < r->n_items; i++) {
        zc_json_obj(&j);
        zc_json_kstr(&j, "product", r->items[i].product);
        zc_json_ku64(&j, "qty", r->items[i].qty);
        zc_json_end(&j);
    }
    zc_json_end(&j);
    zc_json_ku64(&j, "replica_id", r->replica_id);
    zc_json_ku64(&j, "term", r->term);
    zc_json_ku64(&j, "attempts", r->attempts);
    zc_json_end(&j);
    emit(out, &j);
}

/* --- admin --------------------------------------------------------------------------- */

void zcli_print_admin(FILE *out, bool json, const char *command, int rc, const zcart_result_t *r)
{
    if (!json) {
        if (rc == ZCART_EINVAL)
            fprintf(out, "USAGE: %s\n", esc(r->detail));
        else if (rc != ZCART_ANSWERED)
            fprintf(out, "UNREACHABLE: %s%s\n", esc(r->detail),
                    r->in_doubt ? " (outcome unknown: it may have been applied)"
                                : " (not applied)");
        else if (r->status != 0)
            fprintf(out, "KO %s%s%s\n", r->reason, r->detail[0] ? ": " : "", esc(r->detail));
        else
            fprintf(out, "OK %s\n", r->detail[0] ? esc(r->detail) : command);
        fflush(out);
        return;
    }
    zc_json_t j;
    if (!json_answer_begin(out, &j, rc, r))
        return;
    zc_json_kstr(&j, "op", "admin");
    zc_json_kstr(&j, "command", command);
    zc_json_kstr(&j, "reason", rc == ZCART_ANSWERED ? r->reason : "UNREACHABLE");
    zc_json_kstr(&j, "detail", r->detail);
    if (rc != ZCART_ANSWERED)
        zc_json_kbool(&j, "in_doubt", r->in_doubt);
    zc_json_end(&j);
    emit(out, &j);
}

/* --- status -------------------------------------------------------------------------- */

/* The keys every replica object starts with, in order. */
static const char *const lead_keys[] = {"id",           "endpoint",      "role",
                                        "term",         "commit_index",  "applied_index",
                                        "digest"};
#define N_LEAD (sizeof lead_keys / sizeof *lead_keys)

/* Keys the CLI adds itself; props of the same name are not repeated. */
static bool own_key(const char *k)
{
    for (size_t i = 0; i < N_LEAD; i++)
        if (strcmp(k, lead_keys[i]) == 0)
            return true;
    return strcmp(k, "reachable") == 0 || strcmp(k, "contacted") == 0 ||
           strcmp(k, "rtt_us") == 0 || strcmp(k, "error") == 0 ||
           strcmp(k, "storage_used_bytes") == 0 || strcmp(k, "storage_map_bytes") == 0 ||
           strcmp(k, "storage") == 0;
}

/* The replica whose view of the cluster counts: the leader with the highest
 * term, else the first that answered.  NULL if none answered. */
static const zcart_replica_t *pick(const zcart_status_t *st, bool *is_leader)
{
    const zcart_replica_t *best = NULL;
    uint64_t best_term = 0;
    *is_leader = false;
    for (size_t i = 0; i < st->n_replicas; i++) {
        const zcart_replica_t *r = &st->replicas[i];
        if (!r->reachable)
            continue;
        const char *role = zcart_replica_prop(r, "role");
        const char *term = zcart_replica_prop(r, "term");
        uint64_t t = term ? strtoull(term, NULL, 10) : 0;
        if (role && strcmp(role, "leader") == 0 && (!*is_leader || t > best_term)) {
            best = r;
            best_term = t;
            *is_leader = true;
        } else if (best == NULL) {
            best = r;
        }
    }
    return best;
}

static void json_replica(zc_json_t *j, const zcart_replica_t *r)
{
    zc_json_obj(j);
    for (size_t k = 0; k < N_LEAD; k++) {
        const char *key = lead_keys[k];
        const char *v = r->reachable ? zcart_replica_prop(r, key) : NULL;
        if (v == NULL && strcmp(key, "endpoint") == 0)
            v = r->endpoint; /* not reachable: the endpoint we asked */
        zc_json_key(j, key);
        json_value(j, key, v);
    }
    zc_json_kbool(j, "reachable", r->reachable);
    zc_json_kstr(j, "contacted", r->endpoint);
    if (r->reachable)
        zc_json_ku64(j, "rtt_us", r->rtt_us);
    else
        zc_json_kstr(j, "error", r->error);
    /* storage: {used_bytes, map_bytes} of this replica's state (null when
     * it did not answer or does not say). */
    const char *used = r->reachable ? zcart_replica_prop(r, "storage_used_bytes") : NULL;
    const char *map = r->reachable ? zcart_replica_prop(r, "storage_map_bytes") : NULL;
    zc_json_key(j, "storage");
    if (used && map && zcli_is_integer(used) && zcli_is_integer(map)) {
        zc_json_obj(j);
        zc_json_ku64(j, "used_bytes", strtoull(used, NULL, 10));
        zc_json_ku64(j, "map_bytes", strtoull(map, NULL, 10));
        zc_json_end(j);
    } else {
        zc_json_null(j);
    }
    for (size_t i = 0; i < r->n_props; i++) {
        const zcart_prop_t *p = &r->props[i];
        if (own_key(p->key))
            continue;
        bool dup = false; /* a key sent twice: the first one counts */
        for (size_t q = 0; q < i && !dup; q++)
            dup = strcmp(r->props[q].key, p->key) == 0;
        if (dup)
            continue;
        zc_json_key(j, p->key);
        json_value(j, p->key, p->value);
    }
    zc_json_end(j);
}

/* A "breaker.<cart>" status prop, parsed ("OPEN auto heartbeat since=MS
 * trips=N probes=N cart=FREE", docs/protocol.md). */
typedef struct {
    const char *cart;  /* points into the prop's key */
    char state[16];    /* CLOSED, OPEN, HALF_OPEN */
    char mode[16];     /* auto, forced-open, forced-closed */
    char why[16];      /* none, heartbeat, failures, probe, operator */
    uint64_t since_ms; /* leader wall clock of the last change */
    unsigned trips;    /* trips since the last close */
    unsigned probes;   /* probes admitted in this HALF_OPEN */
    char cart_state[16]; /* FREE, ASSIGNED, DRAINING; empty from an older replica */
} breaker_view_t;

static bool breaker_view(const zcart_prop_t *p, breaker_view_t *v)
{
    unsigned long long since;
    if (strncmp(p->key, "breaker.", 8) != 0 || p->key[8] == 0)
        return false;
    v->cart = p->key + 8;
    v->cart_state[0] = 0;
    int n = sscanf(p->value, "%15s %15s %15s since=%llu trips=%u probes=%u cart=%15s", v->state,
                   v->mode, v->why, &since, &v->trips, &v->probes, v->cart_state);
    if (n < 6)
        return false;
    v->since_ms = since;
    return true;
}

/* key: an object of the integer props named in keys ({json key, prop}),
 * null when no replica answered. */
static void json_counts(zc_json_t *j, const char *key, const zcart_replica_t *best,
                        const char *const keys[][2], size_t n)
{
    zc_json_key(j, key);
    if (best == NULL) {
        zc_json_null(j);
        return;
    }
    zc_json_obj(j);
    for (size_t i = 0; i < n; i++) {
        const char *v = zcart_replica_prop(best, keys[i][1]);
        zc_json_key(j, keys[i][0]);
        if (v && zcli_is_integer(v))
            json_value(j, keys[i][1], v);
        else
            zc_json_null(j);
    }
    zc_json_end(j);
}

/* "breakers": every breaker not CLOSED the best replica listed. */
static void json_breakers(zc_json_t *j, const zcart_replica_t *best)
{
    zc_json_key(j, "breakers");
    zc_json_arr(j);
    for (size_t i = 0; best && i < best->n_props; i++) {
        breaker_view_t v;
        if (!breaker_view(&best->props[i], &v))
            continue;
        zc_json_obj(j);
        zc_json_kstr(j, "cart", v.cart);
        zc_json_kstr(j, "state", v.state);
        zc_json_kstr(j, "mode", v.mode);
        zc_json_kstr(j, "why", v.why);
        zc_json_ku64(j, "since_ms", v.since_ms);
        zc_json_ku64(j, "trips", v.trips);
        zc_json_ku64(j, "probes", v.probes);
        zc_json_key(j, "cart_state");
        if (v.cart_state[0])
            zc_json_string(j, v.cart_state);
        else
            zc_json_null(j);
        zc_json_end(j);
    }
    zc_json_end(j);
}

static void json_status(FILE *out, int rc, const zcart_status_t *st)
{
    static const char *const cart_keys[][2] = {{"total", "carts_total"},
                                               {"free", "carts_free"},
                                               {"assigned", "carts_assigned"},
                                               {"draining", "carts_draining"}};
    static const char *const session_keys[][2] = {{"live", "sessions_live"},
                                                  {"ended", "sessions_ended"}};
    zc_json_t j;
    bool is_leader;
    const zcart_replica_t *best = pick(st, &is_leader);
    zc_json_init(&j);
    zc_json_obj(&j);
    zc_json_kbool(&j, "ok", rc == ZCART_ANSWERED);
    if (rc != ZCART_ANSWERED) {
        zc_json_kstr(&j, "reason", "UNREACHABLE");
        zc_json_kstr(&j, "detail", rc == ZCART_ESYS ? "local error asking the replicas"
                                                    : "no replica answered");
    }
    zc_json_key(&j, "replicas");
    zc_json_arr(&j);
    for (size_t i = 0; i < st->n_replicas; i++)
        json_replica(&j, &st->replicas[i]);
    zc_json_end(&j);
    json_counts(&j, "carts", best, cart_keys, 4);
    json_counts(&j, "sessions", best, session_keys, 2);
    zc_json_key(&j, "leader");
    const char *lep = is_leader ? zcart_replica_prop(best, "endpoint") : NULL;
    if (lep)
        zc_json_string(&j, lep);
    else
        zc_json_null(&j);
    json_breakers(&j, best);
    zc_json_end(&j);
    emit(out, &j);
}

/* Columns of the text table. */
typedef struct {
    const char *title; /* header */
    const char *key;   /* prop shown, NULL for the computed STATE column */
} column_t;

static const column_t columns[] = {
    {"ID", "id"},          {"ENDPOINT", "endpoint"},    {"ROLE", "role"},
    {"TERM", "term"},      {"COMMIT", "commit_index"}, {"APPLIED", "applied_index"},
    {"DIGEST", "digest"},  {"LEADER", "leader_id"},     {"STATE", NULL},
};
#define N_COLS (sizeof columns / sizeof *columns)

static const char *cell(const zcart_replica_t *r, size_t c)
{
    if (columns[c].key == NULL)
        return r->reachable ? "up" : r->error[0] ? r->error : "down";
    if (strcmp(columns[c].key, "endpoint") == 0 && !r->reachable)
        return r->endpoint;
    const char *v = r->reachable ? zcart_replica_prop(r, columns[c].key) : NULL;
    if (strcmp(columns[c].key, "endpoint") == 0 && v == NULL)
        return r->endpoint;
    return v ? v : "-";
}

static void text_status(FILE *out, int rc, const zcart_status_t *st)
{
    size_t w[N_COLS];
    for (size_t c = 0; c < N_COLS; c++) {
        w[c] = strlen(columns[c].title);
        for (size_t i = 0; i < st->n_replicas; i++) {
            size_t n = strlen(esc(cell(&st->replicas[i], c)));
            if (n > w[c])
                w[c] = n;
        }
    }
    for (size_t i = 0; i <= st->n_replicas; i++) { /* row 0: the titles */
        for (size_t c = 0; c < N_COLS; c++) {
            /* a replica's props are its to choose: control bytes escaped */
            const char *v = i == 0 ? columns[c].title : esc(cell(&st->replicas[i - 1], c));
            if (c + 1 < N_COLS)
                fprintf(out, "%-*s  ", (int)w[c], v);
            else
                fprintf(out, "%s\n", v);
        }
    }
    bool is_leader;
    const zcart_replica_t *best = pick(st, &is_leader);
    if (best) {
        const char *t = zcart_replica_prop(best, "carts_total"),
                   *f = zcart_replica_prop(best, "carts_free"),
                   *a = zcart_replica_prop(best, "carts_assigned"),
                   *d = zcart_replica_prop(best, "carts_draining");
        fprintf(out, "carts: total %s, free %s, assigned %s, draining %s (%s %s)\n",
                esc(t ? t : "-"), esc(f ? f : "-"), esc(a ? a : "-"), esc(d ? d : "-"),
                is_leader ? "leader" : "replica", best->endpoint);
        for (size_t i = 0; i < best->n_props; i++) {
            breaker_view_t v;
            if (!breaker_view(&best->props[i], &v))
                continue;
            time_t secs = (time_t)(v.since_ms / 1000);
            struct tm tm;
            char when[32] = "?";
            if (gmtime_r(&secs, &tm))
                strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
            fprintf(out, "breaker %s: %s (%s, %s) since %s.%03uZ, trips %u%s%s\n", esc(v.cart),
                    v.state, v.mode, v.why, when, (unsigned)(v.since_ms % 1000), v.trips,
                    v.cart_state[0] ? ", cart " : "", v.cart_state);
        }
    } else {
        fprintf(out, "UNREACHABLE: %s\n",
                rc == ZCART_ESYS ? "local error asking the replicas" : "no replica answered");
    }
    fflush(out);
}

void zcli_print_status(FILE *out, bool json, int rc, const zcart_status_t *st)
{
    if (json)
        json_status(out, rc, st);
    else
        text_status(out, rc, st);
}
