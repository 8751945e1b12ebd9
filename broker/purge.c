/* purge: the session table follows live load, not history.
 *
 * An ended session (CLOSED or EXPIRED) is kept so that its late requests get
 * SESSION_CLOSED / SESSION_EXPIRED rather than a new cart (docs/protocol.md
 * §3 step 5).  Kept for ever, tombstones would fill the state's map.  So the
 * leader forgets them once they ended --session-retention ago, a time far
 * longer than any retry a conforming client still makes.
 *
 * The decision is replicated: a PURGE command names up to ZC_PURGE_MAX
 * sessions, and apply (replication/fsm.c) forgets each one only if it is
 * still ended and old enough at the command's time -- so every replica
 * removes the same records at the same entry, and a stale or repeated PURGE
 * is harmless.  Here the leader only chooses candidates: it walks the
 * session table in key order, at most PURGE_SCAN_MAX records per scan, from
 * where the previous scan stopped (wrapping at the end), with one PURGE in
 * flight at a time.  A full batch makes the next scan come at the next tick,
 * so a backlog drains at up to ZC_PURGE_MAX sessions per tick. */
#include "broker/purge.h"

#include <stdlib.h>
#include <string.h>

#include "lib/clock.h"
#include "lib/log.h"
#include "proto/status.h"

/* One scan's candidates. */
typedef struct {
    zc_cmd_t *cmd;                      /* the PURGE being filled */
    uint64_t now_ms;                    /* the command's time */
    uint64_t retention_ms;              /* --session-retention */
    uint8_t last[ZC_SESSION_LEN];       /* last session id read */
} scan_t;

static int pick(const zc_session_rec_t *r, void *arg)
{
    scan_t *s = arg;
    memcpy(s->last, r->id, ZC_SESSION_LEN);
    if (r->state != ZC_SESS_LIVE && r->since_ms <= s->now_ms &&
        s->now_ms - r->since_ms >= s->retention_ms)
        memcpy(s->cmd->purge.sessions[s->cmd->purge.n++], r->id, ZC_SESSION_LEN);
    return s->cmd->purge.n == ZC_PURGE_MAX; /* batch full: stop here */
}

static void purge_done(void *arg, int status, const zc_cmd_result_t *res)
{
    broker_t *b = arg;
    b->purge_pending = false;
    if (status == ZC_OK && res->count > 0)
        zc_info("purged %u ended sessions", res->count);
}

/* The id right after `id` in key order; false when id is the last one. */
static bool next_id(uint8_t id[ZC_SESSION_LEN])
{
    for (int i = ZC_SESSION_LEN - 1; i >= 0; i--)
        if (++id[i] != 0)
            return true;
    return false;
}

void broker__purge_scan(broker_t *b, uint64_t now_us)
{
    if (b->purge_pending || !broker__ready(b))
        return;
    if (!b->purge_backlog && now_us - b->last_purge_us < PURGE_SCAN_MS * 1000u)
        return;
    b->last_purge_us = now_us;
    zc_cmd_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        return;
    c->type = ZC_CMD_PURGE;
    c->time_ms = zc_wall_ms();
    c->purge.retention_ms = b->cfg.session_retention_ms;
    scan_t s = {.cmd = c, .now_ms = c->time_ms, .retention_ms = b->cfg.session_retention_ms};
    int seen =
        zc_state_each_session_from(broker__state(b), b->purge_from, PURGE_SCAN_MAX, pick, &s);
    if (seen < 0) {
        free(c);
        return;
    }
    if (seen == 0 || (seen < PURGE_SCAN_MAX && c->purge.n < ZC_PURGE_MAX)) {
        memset(b->purge_from, 0, ZC_SESSION_LEN); /* reached the end: start again */
    } else {
        memcpy(b->purge_from, s.last, ZC_SESSION_LEN);
        if (!next_id(b->purge_from))
            memset(b->purge_from, 0, ZC_SESSION_LEN);
    }
    b->purge_backlog = c->purge.n == ZC_PURGE_MAX || seen == PURGE_SCAN_MAX;
    if (c->purge.n > 0) {
        b->purge_pending = true;
        broker__propose(b, c, purge_done, b);
    }
    free(c);
}
