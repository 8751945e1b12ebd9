/* api: see api.h. */
#include "gateway/api.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/clijson.h"
#include "lib/clock.h"
#include "lib/hash.h"
#include "lib/json.h"
#include "proto/msg.h"

extern const char gateway_dashboard_html[];
extern const size_t gateway_dashboard_html_len;

/* --- KO reasons to HTTP ------------------------------------------------------ */

/* One row per protocol status (docs/protocol.md §5, docs/openapi.yaml). */
static const struct {
    int status; /* protocol status */
    int http;   /* HTTP status */
    bool retry; /* answered with Retry-After: the same request may succeed later */
} ko_table[] = {
    {ZCART_STATUS_OK, 200, false},
    {ZCART_STATUS_BAD_REQUEST, 400, false},
    {ZCART_STATUS_NOT_LEADER, 503, true},
    {ZCART_STATUS_NO_FREE_CART, 503, true},
    {ZCART_STATUS_OUT_OF_STOCK, 409, false},
    {ZCART_STATUS_UNKNOWN_PRODUCT, 404, false},
    {ZCART_STATUS_STOCK_TIMEOUT, 504, true},
    {ZCART_STATUS_STOCK_UNAVAILABLE, 503, true},
    {ZCART_STATUS_CART_UNAVAILABLE, 503, true},
    {ZCART_STATUS_SESSION_EXPIRED, 410, false},
    {ZCART_STATUS_EXPIRED, 504, true},
    {ZCART_STATUS_NOT_IN_CART, 404, false},
    {ZCART_STATUS_SESSION_CLOSED, 410, false},
    {ZCART_STATUS_CART_LOST, 409, false},
    {ZCART_STATUS_FENCED, 409, false},
    {ZCART_STATUS_INTERNAL, 500, false},
    {ZCART_STATUS_UNAVAILABLE, 503, true},
    {ZCART_STATUS_STORAGE_FULL, 507, false},
    {ZCART_STATUS_BUSY, 503, true},
    {ZCART_STATUS_FORBIDDEN, 403, false},
};

static int ko_row(int status)
{
    for (size_t i = 0; i < sizeof ko_table / sizeof ko_table[0]; i++)
        if (ko_table[i].status == status)
            return (int)i;
    return -1;
}

int api_http_status(int protocol_status)
{
    int i = ko_row(protocol_status);
    return i < 0 ? 502 : ko_table[i].http;
}

/* --- answers ------------------------------------------------------------------ */

static void count_answer(api_t *a, int http)
{
    if (http >= 100 && http < 600)
        a->by_status[http / 100]++;
}

static void reply_json(api_t *a, zc_http_req_t *r, int http, const char *type, const char *body,
                       size_t len)
{
    count_answer(a, http);
    zc_http_req_add_header(r, "Cache-Control", "no-store");
    zc_http_reply(r, http, type, body, len);
}

/* An application/problem+json answer (RFC 9457): type, title, status,
 * detail, and what else the caller adds in extra (a JSON object's members,
 * called with the writer). */
typedef void (*extra_fn)(zc_json_t *j, const void *arg);

static void problem(api_t *a, zc_http_req_t *r, int http, const char *reason, const char *detail,
                    extra_fn extra, const void *arg)
{
    char type[96], retry[16];
    snprintf(type, sizeof type, "urn:zcart:problem:%s", reason);
    zc_json_t j;
    zc_json_init(&j);
    zc_json_obj(&j);
    zc_json_kstr(&j, "type", type);
    zc_json_kstr(&j, "title", reason);
    zc_json_ku64(&j, "status", (uint64_t)http);
    zc_json_kstr(&j, "detail", detail);
    zc_json_kstr(&j, "reason", reason);
    if (extra)
        extra(&j, arg);
    zc_json_end(&j);
    if (http == 503 || http == 504) {
        snprintf(retry, sizeof retry, "%u", a->cfg.retry_after);
        zc_http_req_add_header(r, "Retry-After", retry);
    }
    const char *text = zc_json_str(&j);
    reply_json(a, r, http, "application/problem+json", text, strlen(text));
    zc_json_clear(&j);
}

/* A bad request: 400 naming the field. */
static void bad(api_t *a, zc_http_req_t *r, const char *field, const char *why)
{
    char detail[320];
    snprintf(detail, sizeof detail, "%.64s: %.240s", field, why);
    problem(a, r, 400, "INVALID", detail, NULL, NULL);
}

/* The members a cart-op problem carries besides RFC 9457's, named as in the
 * CLI's JSON (client/clijson.h). */
static void op_members(zc_json_t *j, const void *arg)
{
    const job_t *job = arg;
    const zcart_result_t *r = &job->res;
    zc_json_kstr(j, "session", job->session);
    zc_json_ku64(j, "seq", r->seq);
    if (job->rc != ZCART_ANSWERED) {
        zc_json_kbool(j, "in_doubt", r->in_doubt);
        return;
    }
    zc_json_key(j, "protocol_status");
    zc_json_i64(j, r->status);
    zc_json_key(j, "cart");
    if (r->cart[0])
        zc_json_string(j, r->cart);
    else
        zc_json_null(j);
    zc_json_key(j, "generation");
    if (r->cart[0])
        zc_json_u64(j, r->generation);
    else
        zc_json_null(j);
    zc_json_key(j, "items");
    zc_json_arr(j);
    for (size_t i = 0; i < r->n_items; i++) {
        zc_json_obj(j);
        zc_json_kstr(j, "product", r->items[i].product);
        zc_json_ku64(j, "qty", r->items[i].qty);
        zc_json_end(j);
    }
    zc_json_end(j);
}

static const int job_op[] = {[JOB_ADD] = ZC_OP_ADD,
                             [JOB_REMOVE] = ZC_OP_REMOVE,
                             [JOB_LIST] = ZC_OP_LIST,
                             [JOB_CLOSE] = ZC_OP_CLOSE};

/* What a job in flight remembers of its request. */
typedef struct {
    job_t job;          /* the call (first: the pool hands it back) */
    api_t *api;         /* the gateway */
    zc_http_req_t *req; /* the waiting request */
    uint64_t start_us;  /* when the request was complete */
} call_t;

static void observe(api_t *a, job_kind_t kind, uint64_t start_us)
{
    uint64_t now = zc_mono_us();
    zc_hist_observe(&a->lat[kind], now - start_us);
    zc_hist_recent_observe(&a->recent[kind], now, now - start_us);
}

/* A cart op's call returned. */
static void op_done(job_t *job, void *arg)
{
    call_t *c = arg;
    api_t *a = c->api;
    observe(a, job->kind, c->start_us);
    if (job->rc == ZCART_ANSWERED && job->res.status == ZCART_STATUS_OK) {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        if (f) {
            zcli_print_op(f, true, job_op[job->kind], job->session, false, job->rc, &job->res);
            fclose(f);
        }
        if (text)
            reply_json(a, c->req, 200, "application/json", text, len);
        else
            problem(a, c->req, 500, "LOCAL_ERROR", "out of memory", NULL, NULL);
        free(text);
    } else if (job->rc == ZCART_ANSWERED) {
        problem(a, c->req, api_http_status(job->res.status), job->res.reason, job->res.detail,
                op_members, job);
    } else if (job->rc == ZCART_EUNREACHABLE) {
        problem(a, c->req, 504, "UNREACHABLE", job->res.detail, op_members, job);
    } else if (job->rc == ZCART_EINVAL) {
        problem(a, c->req, 400, "INVALID", job->res.detail, op_members, job);
    } else {
        problem(a, c->req, 500, "LOCAL_ERROR", job->res.detail, op_members, job);
    }
    job_clear(job);
    free(c);
}

static void status_done(job_t *job, void *arg)
{
    call_t *c = arg;
    api_t *a = c->api;
    observe(a, JOB_STATUS, c->start_us);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f) {
        zcli_print_status(f, true, job->rc, &job->st);
        fclose(f);
    }
    if (text == NULL)
        problem(a, c->req, 500, "LOCAL_ERROR", "out of memory", NULL, NULL);
    else if (job->rc == ZCART_ANSWERED)
        reply_json(a, c->req, 200, "application/json", text, len);
    else
        problem(a, c->req, 503, "UNREACHABLE", "no replica answered STATUS", NULL, NULL);
    free(text);
    job_clear(job);
    free(c);
}

/* --- requests ------------------------------------------------------------------ */

static bool session_ok(const char *s)
{
    size_t n = strlen(s);
    bool nonzero = false;
    if (n != ZCART_SESSION_HEX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
        nonzero |= c != '0';
    }
    return nonzero;
}

/* "/v1/sessions/{session}[/rest]": the session into out, rest returned
 * ("" when none); NULL if the path is not under /v1/sessions/. */
static const char *session_path(const char *path, char *out, size_t cap)
{
    static const char prefix[] = "/v1/sessions/";
    if (strncmp(path, prefix, sizeof prefix - 1) != 0)
        return NULL;
    const char *s = path + sizeof prefix - 1, *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    if (n >= cap)
        n = cap - 1;
    memcpy(out, s, n);
    out[n] = 0;
    return slash ? slash : "";
}

/* The seq a cart op uses: Zcart-Seq, or the Idempotency-Key's, or 0 (the
 * seq rule).  -1 after answering 400 or 422. */
static int pick_seq(api_t *a, zc_http_req_t *r, const char *session, uint64_t *seq)
{
    *seq = 0;
    const char *explicit = zc_http_req_header(r, "Zcart-Seq");
    const char *key = zc_http_req_header(r, "Idempotency-Key");
    if (explicit) {
        char *end;
        unsigned long long v = strtoull(explicit, &end, 10);
        if (*explicit < '1' || *explicit > '9' || *end != 0 || v == 0 || strlen(explicit) > 19) {
            bad(a, r, "Zcart-Seq", "want a decimal integer 1..9999999999999999999");
            return -1;
        }
        *seq = v;
        return 0;
    }
    if (key == NULL)
        return 0;
    size_t kl = strlen(key);
    if (kl == 0 || kl > 255) {
        bad(a, r, "Idempotency-Key", "want 1..255 characters");
        return -1;
    }
    size_t blen;
    const void *body = zc_http_req_body(r, &blen);
    uint64_t fp = zc_fnv64(ZC_FNV64_INIT, zc_http_req_method(r), strlen(zc_http_req_method(r)) + 1);
    fp = zc_fnv64(fp, zc_http_req_path(r), strlen(zc_http_req_path(r)) + 1);
    const char *qty = zc_http_req_query(r, "qty");
    fp = zc_fnv64(fp, qty ? qty : "", qty ? strlen(qty) + 1 : 1);
    fp = zc_fnv64(fp, body, blen);
    if (idem_seq(a->idem, session, key, fp, zc_wall_ms(), seq) != 0) {
        problem(a, r, 422, "IDEMPOTENCY_KEY_REUSED",
                "this Idempotency-Key was used for a different request of the session", NULL, NULL);
        return -1;
    }
    return 0;
}

/* Queue a job for r; 503 when the gateway is at its in-flight cap. */
static void submit(api_t *a, zc_http_req_t *r, call_t *c, void (*done)(job_t *, void *))
{
    if (pool_load(a->pool) >= a->cfg.max_inflight) {
        a->rejected_busy++;
        problem(a, r, 503, "GATEWAY_BUSY", "too many requests in flight at this gateway", NULL,
                NULL);
        free(c);
        return;
    }
    c->api = a;
    c->req = r;
    c->start_us = zc_mono_us();
    c->job.done = done;
    c->job.arg = c;
    pool_submit(a->pool, &c->job);
}

/* POST /items, DELETE /items/{product}, GET /cart, DELETE (close). */
static void session_request(api_t *a, zc_http_req_t *r, const char *session, const char *rest)
{
    const char *method = zc_http_req_method(r);
    if (!session_ok(session)) {
        bad(a, r, "session", "want 32 hex digits, not all zero");
        return;
    }
    call_t *c = calloc(1, sizeof *c);
    if (c == NULL) {
        problem(a, r, 500, "LOCAL_ERROR", "out of memory", NULL, NULL);
        return;
    }
    snprintf(c->job.session, sizeof c->job.session, "%s", session);
    char why[160];
    if (strcmp(rest, "/items") == 0 && strcmp(method, "POST") == 0) {
        size_t blen, n;
        const char *body = zc_http_req_body(r, &blen);
        zc_json_member_t m[4];
        if (zc_json_read_flat(body, blen, m, 4, &n, why, sizeof why) != 0) {
            bad(a, r, "body", why);
            free(c);
            return;
        }
        const zc_json_member_t *p = zc_json_member(m, n, "product"),
                               *q = zc_json_member(m, n, "qty");
        for (size_t i = 0; i < n; i++)
            if (strcmp(m[i].key, "product") != 0 && strcmp(m[i].key, "qty") != 0) {
                snprintf(why, sizeof why, "unknown member (only product and qty)");
                bad(a, r, m[i].key, why);
                free(c);
                return;
            }
        if (p == NULL || p->kind != ZC_JSON_STRING) {
            bad(a, r, "product", "required, a string");
            free(c);
            return;
        }
        if (q == NULL || q->kind != ZC_JSON_INT) {
            bad(a, r, "qty", "required, an integer");
            free(c);
            return;
        }
        if (!zcart_item_check(p->str, q->num, why, sizeof why)) {
            bad(a, r, strstr(why, "qty") ? "qty" : "product", why);
            free(c);
            return;
        }
        c->job.kind = JOB_ADD;
        snprintf(c->job.product, sizeof c->job.product, "%.64s", p->str);
        c->job.qty = (uint32_t)q->num;
    } else if (strncmp(rest, "/items/", 7) == 0 && strcmp(method, "DELETE") == 0) {
        const char *product = rest + 7, *qs = zc_http_req_query(r, "qty");
        char *end = NULL;
        long long qty = qs ? strtoll(qs, &end, 10) : 0;
        if (qs == NULL || *qs == 0 || *end != 0) {
            bad(a, r, "qty", "required query parameter, an integer");
            free(c);
            return;
        }
        if (!zcart_item_check(product, qty, why, sizeof why)) {
            bad(a, r, strstr(why, "qty") ? "qty" : "product", why);
            free(c);
            return;
        }
        c->job.kind = JOB_REMOVE;
        snprintf(c->job.product, sizeof c->job.product, "%.64s", product);
        c->job.qty = (uint32_t)qty;
    } else if (strcmp(rest, "/cart") == 0 && strcmp(method, "GET") == 0) {
        c->job.kind = JOB_LIST;
    } else if (rest[0] == 0 && strcmp(method, "DELETE") == 0) {
        c->job.kind = JOB_CLOSE;
    } else {
        problem(a, r,
                strcmp(rest, "/items") == 0 || strcmp(rest, "/cart") == 0 || rest[0] == 0 ? 405
                                                                                          : 404,
                "NO_SUCH_RESOURCE", "no such method or resource (docs/openapi.yaml)", NULL, NULL);
        free(c);
        return;
    }
    if (c->job.kind != JOB_LIST && pick_seq(a, r, session, &c->job.seq) != 0) {
        free(c);
        return;
    }
    submit(a, r, c, op_done);
}

/* Job kinds as /v1/gateway and /metrics name them (pool.h's order). */
static const char *const job_names[5] = {"add", "remove", "list", "close", "status"};

/* GET /v1/gateway: this gateway's counters. */
static void gateway_counters(api_t *a, zc_http_req_t *r)
{
    zc_json_t j;
    zc_json_init(&j);
    zc_json_obj(&j);
    zc_json_ku64(&j, "started_ms", a->started_ms);
    zc_json_ku64(&j, "now_ms", zc_wall_ms());
    zc_json_ku64(&j, "requests", a->requests);
    zc_json_ku64(&j, "in_flight", pool_load(a->pool));
    zc_json_ku64(&j, "max_inflight", a->cfg.max_inflight);
    zc_json_ku64(&j, "rejected_busy", a->rejected_busy);
    zc_json_ku64(&j, "unauthorized", a->unauthorized);
    zc_json_ku64(&j, "idempotency_keys", idem_size(a->idem));
    zc_json_key(&j, "answers");
    zc_json_obj(&j);
    for (int k = 1; k <= 5; k++) {
        char cls[4] = {(char)('0' + k), 'x', 'x', 0};
        zc_json_ku64(&j, cls, a->by_status[k]);
    }
    zc_json_end(&j);
    uint64_t now = zc_mono_us();
    zc_json_key(&j, "latency_us");
    zc_json_obj(&j);
    for (int k = 0; k < 5; k++) {
        zc_hist_t recent;
        zc_hist_recent_read(&a->recent[k], now, &recent);
        zc_json_key(&j, job_names[k]);
        zc_json_obj(&j);
        zc_json_ku64(&j, "count", a->lat[k].count);
        zc_json_ku64(&j, "p50_le", zc_hist_quantile_le(&a->lat[k], 500));
        zc_json_ku64(&j, "p99_le", zc_hist_quantile_le(&a->lat[k], 990));
        zc_json_ku64(&j, "recent_count", recent.count);
        zc_json_ku64(&j, "recent_p50_le", zc_hist_quantile_le(&recent, 500));
        zc_json_ku64(&j, "recent_p99_le", zc_hist_quantile_le(&recent, 990));
        zc_json_end(&j);
    }
    zc_json_end(&j);
    zc_json_end(&j);
    const char *text = zc_json_str(&j);
    reply_json(a, r, 200, "application/json", text, strlen(text));
    zc_json_clear(&j);
}

/* GET /metrics: the same counters for Prometheus (behind the token like
 * /v1: this port faces web shops, unlike the daemons' --http pages). */
static void gateway_metrics(api_t *a, zc_http_req_t *r)
{
    zc_prom_t p;
    zc_prom_init(&p);
    zc_prom_family(&p, "zcart_gateway_http_requests_total", "counter", "HTTP requests seen.");
    zc_prom_sample(&p, "zcart_gateway_http_requests_total", NULL, (double)a->requests);
    zc_prom_family(&p, "zcart_gateway_http_answers_total", "counter",
                   "HTTP answers by status class.");
    for (int k = 1; k <= 5; k++) {
        char cls[4] = {(char)('0' + k), 'x', 'x', 0};
        zc_prom_sample(&p, "zcart_gateway_http_answers_total",
                       (const char *[]){"class", cls, NULL}, (double)a->by_status[k]);
    }
    zc_prom_family(&p, "zcart_gateway_call_seconds", "histogram",
                   "From a complete HTTP request to its cluster call's answer, by operation.");
    for (int k = 0; k < 5; k++)
        zc_prom_hist(&p, "zcart_gateway_call_seconds", (const char *[]){"op", job_names[k], NULL},
                     &a->lat[k]);
    zc_prom_family(&p, "zcart_gateway_calls_in_flight", "gauge", "Cluster calls queued or running.");
    zc_prom_sample(&p, "zcart_gateway_calls_in_flight", NULL, (double)pool_load(a->pool));
    zc_prom_family(&p, "zcart_gateway_rejected_busy_total", "counter",
                   "Requests answered 503 GATEWAY_BUSY (--max-inflight reached).");
    zc_prom_sample(&p, "zcart_gateway_rejected_busy_total", NULL, (double)a->rejected_busy);
    zc_prom_family(&p, "zcart_gateway_unauthorized_total", "counter", "Requests answered 401.");
    zc_prom_sample(&p, "zcart_gateway_unauthorized_total", NULL, (double)a->unauthorized);
    zc_prom_family(&p, "zcart_gateway_idempotency_keys", "gauge", "Idempotency-Keys remembered.");
    zc_prom_sample(&p, "zcart_gateway_idempotency_keys", NULL, (double)idem_size(a->idem));
    size_t len;
    const char *text = zc_prom_text(&p, &len);
    if (text)
        reply_json(a, r, 200, "text/plain; version=0.0.4", text, len);
    else
        problem(a, r, 500, "LOCAL_ERROR", "out of memory", NULL, NULL);
    zc_prom_clear(&p);
}

/* Constant-time comparison of the bearer token. */
static bool token_ok(const api_t *a, zc_http_req_t *r)
{
    if (a->cfg.token == NULL)
        return true;
    const char *h = zc_http_req_header(r, "Authorization");
    if (h == NULL || strncmp(h, "Bearer ", 7) != 0)
        return false;
    const char *t = h + 7;
    size_t n = strlen(a->cfg.token);
    if (strlen(t) != n)
        return false;
    unsigned char diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(t[i] ^ a->cfg.token[i]);
    return diff == 0;
}

void api_handle(void *arg, zc_http_req_t *r)
{
    api_t *a = arg;
    const char *path = zc_http_req_path(r), *method = zc_http_req_method(r);
    a->requests++;
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    if (get && (strcmp(path, "/") == 0 || strcmp(path, "/dashboard") == 0)) {
        zc_http_req_add_header(r, "Content-Security-Policy",
                               "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "script-src 'self' 'unsafe-inline'");
        reply_json(a, r, 200, "text/html; charset=utf-8", gateway_dashboard_html,
                   gateway_dashboard_html_len);
        return;
    }
    if (get && strcmp(path, "/healthz") == 0) {
        reply_json(a, r, 200, "text/plain", "ok\n", 3);
        return;
    }
    bool metrics = get && strcmp(path, "/metrics") == 0;
    if (!metrics && strncmp(path, "/v1/", 4) != 0) {
        problem(a, r, 404, "NO_SUCH_RESOURCE", "no such resource (docs/openapi.yaml)", NULL, NULL);
        return;
    }
    if (!token_ok(a, r)) {
        a->unauthorized++;
        zc_http_req_add_header(r, "WWW-Authenticate", "Bearer realm=\"zcart\"");
        problem(a, r, 401, "UNAUTHORIZED", "a valid 'Authorization: Bearer TOKEN' is required",
                NULL, NULL);
        return;
    }
    if (metrics) {
        gateway_metrics(a, r);
        return;
    }
    char session[64];
    const char *rest = session_path(path, session, sizeof session);
    if (rest != NULL) {
        session_request(a, r, session, rest);
    } else if (strcmp(path, "/v1/cluster") == 0 && get) {
        call_t *c = calloc(1, sizeof *c);
        if (c == NULL) {
            problem(a, r, 500, "LOCAL_ERROR", "out of memory", NULL, NULL);
            return;
        }
        c->job.kind = JOB_STATUS;
        submit(a, r, c, status_done);
    } else if (strcmp(path, "/v1/gateway") == 0 && get) {
        gateway_counters(a, r);
    } else {
        problem(a, r, 404, "NO_SUCH_RESOURCE", "no such resource (docs/openapi.yaml)", NULL, NULL);
    }
}

void api_init(api_t *a, const api_config_t *cfg, pool_t *pool, idem_t *idem)
{
    memset(a, 0, sizeof *a);
    a->cfg = *cfg;
    if (a->cfg.max_inflight == 0)
        a->cfg.max_inflight = 1;
    if (a->cfg.retry_after == 0)
        a->cfg.retry_after = 1;
    a->pool = pool;
    a->idem = idem;
    a->started_ms = zc_wall_ms();
}
