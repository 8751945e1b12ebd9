/* dump: see dump.h.  The object printed:
 *
 *   {"applied_index": N, "digest": "<16 hex digits, as STATUS shows it>",
 *    "applied_commands": N, "next_gen": N,
 *    "carts": [{"id", "state": "FREE|ASSIGNED|DRAINING", "generation",
 *               "session": hex|null, "breaker": {"state", "mode"}}],
 *    "free": [cart ids in free-list order],
 *    "sessions": [{"id", "state": "LIVE|CLOSED|EXPIRED", "cart", "generation",
 *                  "lost"}]}
 *
 * Carts and sessions come in key order (cart id, session id), the free list
 * in its FIFO order, so two replicas with the same digest print the same
 * text. */
#include "broker/dump.h"

#include <inttypes.h>
#include <stdio.h>

#include "lib/json.h"
#include "proto/msg.h"
#include "replication/state.h"

static const char *cart_state_name(uint8_t st)
{
    switch (st) {
    case ZC_CART_FREE: return "FREE";
    case ZC_CART_ASSIGNED: return "ASSIGNED";
    case ZC_CART_DRAINING: return "DRAINING";
    default: return "?";
    }
}

static const char *session_state_name(uint8_t st)
{
    switch (st) {
    case ZC_SESS_LIVE: return "LIVE";
    case ZC_SESS_CLOSED: return "CLOSED";
    case ZC_SESS_EXPIRED: return "EXPIRED";
    default: return "?";
    }
}

static void session_or_null(zc_json_t *j, const char *key, const uint8_t s[ZC_SESSION_LEN])
{
    char hex[2 * ZC_SESSION_LEN + 1];
    zc_json_key(j, key);
    if (zc_session_is_zero(s)) {
        zc_json_null(j);
        return;
    }
    zc_session_hex(s, hex);
    zc_json_string(j, hex);
}

static int dump_cart(const zc_cart_rec_t *c, void *arg)
{
    zc_json_t *j = arg;
    zc_json_obj(j);
    zc_json_kstr(j, "id", c->id);
    zc_json_kstr(j, "state", cart_state_name(c->state));
    zc_json_ku64(j, "generation", c->generation);
    session_or_null(j, "session", c->session);
    zc_json_key(j, "breaker");
    zc_json_obj(j);
    zc_json_kstr(j, "state", zc_breaker_state_name(c->breaker.state));
    zc_json_kstr(j, "mode", zc_breaker_mode_name(c->breaker.mode));
    zc_json_end(j);
    zc_json_end(j);
    return 0;
}

static int dump_free(const char *cart, void *arg)
{
    zc_json_string(arg, cart);
    return 0;
}

static int dump_session(const zc_session_rec_t *r, void *arg)
{
    zc_json_t *j = arg;
    char hex[2 * ZC_SESSION_LEN + 1];
    zc_session_hex(r->id, hex);
    zc_json_obj(j);
    zc_json_kstr(j, "id", hex);
    zc_json_kstr(j, "state", session_state_name(r->state));
    zc_json_kstr(j, "cart", r->cart);
    zc_json_ku64(j, "generation", r->generation);
    zc_json_kbool(j, "lost", r->lost);
    zc_json_end(j);
    return 0;
}

int broker__dump_state(const char *data_dir)
{
    char path[4096], err[4600], digest[17];
    snprintf(path, sizeof path, "%s/state", data_dir);
    zc_state_t *s = zc_state_open_readonly(path, err, sizeof err);
    if (s == NULL) {
        fprintf(stderr, "zcart-broker: --dump-state: %s\n", err);
        return 1;
    }
    zc_json_t j;
    int rc = 0;
    zc_json_init(&j);
    zc_json_obj(&j);
    zc_json_ku64(&j, "applied_index", zc_state_meta(s, "applied_index"));
    snprintf(digest, sizeof digest, "%016" PRIx64, zc_state_digest(s));
    zc_json_kstr(&j, "digest", digest);
    zc_json_ku64(&j, "applied_commands", zc_state_meta(s, "applied_commands"));
    zc_json_ku64(&j, "next_gen", zc_state_meta(s, "next_gen"));
    zc_json_key(&j, "carts");
    zc_json_arr(&j);
    rc |= zc_state_each_cart(s, dump_cart, &j);
    zc_json_end(&j);
    zc_json_key(&j, "free");
    zc_json_arr(&j);
    rc |= zc_state_each_free(s, dump_free, &j);
    zc_json_end(&j);
    zc_json_key(&j, "sessions");
    zc_json_arr(&j);
    rc |= zc_state_each_session(s, dump_session, &j);
    zc_json_end(&j);
    zc_json_end(&j);
    zc_state_close(&s);
    if (rc != 0) {
        fprintf(stderr, "zcart-broker: --dump-state: %s: a record does not decode or the "
                        "database could not be read (corrupt state?)\n", path);
        zc_json_clear(&j);
        return 1;
    }
    puts(zc_json_str(&j));
    zc_json_clear(&j);
    return fflush(stdout) == 0 ? 0 : 1;
}
