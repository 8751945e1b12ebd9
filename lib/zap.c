/* zap: a ZAP handler admitting a key per socket by role (see zap.h). */
#include "lib/zap.h"

#include <string.h>

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"

bool zc_zap_role_in(const char *roles, const char *role)
{
    if (roles == NULL || role == NULL || *role == 0)
        return false;
    size_t n = strlen(role);
    for (const char *p = roles; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && memcmp(p, role, n) == 0)
            return true;
        p += len + (comma != NULL);
    }
    return false;
}

/* One ZMTP metadata property: name length (1 octet), name, value length
 * (4 octets, network order), value. */
static void add_property(zchunk_t *meta, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value);
    uint8_t hdr[4] = {(uint8_t)(vl >> 24), (uint8_t)(vl >> 16), (uint8_t)(vl >> 8), (uint8_t)vl};
    uint8_t len = (uint8_t)nl;
    zchunk_extend(meta, &len, 1);
    zchunk_extend(meta, name, nl);
    zchunk_extend(meta, hdr, 4);
    zchunk_extend(meta, value, vl);
}

/* The answer to one request: status "200" with the user id and metadata,
 * or "400" with why. */
static void reply(zsock_t *handler, const char *request_id, const char *status, const char *text,
                  const char *user_id, zchunk_t *meta)
{
    zmsg_t *r = zmsg_new();
    zmsg_addstr(r, "1.0");
    zmsg_addstr(r, request_id);
    zmsg_addstr(r, status);
    zmsg_addstr(r, text);
    zmsg_addstr(r, user_id);
    zmsg_addmem(r, meta ? zchunk_data(meta) : NULL, meta ? zchunk_size(meta) : 0);
    zmsg_send(&r, handler);
}

/* A request: version, request id, domain, address, routing id, mechanism,
 * then the credentials (CURVE: the client's 32-octet public key). */
static void answer(zsock_t *handler, zcertstore_t *store)
{
    zmsg_t *m = zmsg_recv(handler);
    if (m == NULL)
        return;
    char *version = zmsg_popstr(m), *request_id = zmsg_popstr(m), *domain = zmsg_popstr(m);
    char *address = zmsg_popstr(m), *identity = zmsg_popstr(m), *mechanism = zmsg_popstr(m);
    zframe_t *key = zmsg_pop(m);
    const char *why = NULL;
    char z85[41] = "";
    zcert_t *cert = NULL;
    if (!version || strcmp(version, "1.0") != 0 || !request_id || !mechanism || !key)
        why = "malformed ZAP request";
    else if (strcmp(mechanism, "CURVE") != 0 || zframe_size(key) != 32)
        why = "only CURVE keys are admitted";
    else if (zmq_z85_encode(z85, zframe_data(key), 32) == NULL ||
             (cert = zcertstore_lookup(store, z85)) == NULL)
        why = "key not in the allow-list";
    else if (!zc_zap_role_in(domain, zcert_meta(cert, "role")))
        why = "key's role not admitted on this socket";
    if (why == NULL) {
        zchunk_t *meta = zchunk_new(NULL, 0);
        const char *name = zcert_meta(cert, "name");
        add_property(meta, "role", zcert_meta(cert, "role"));
        add_property(meta, "name", name ? name : "");
        reply(handler, request_id, "200", "OK", z85, meta);
        zchunk_destroy(&meta);
    } else {
        reply(handler, request_id ? request_id : "", "400", why, "", NULL);
    }
    zframe_destroy(&key);
    zstr_free(&version);
    zstr_free(&request_id);
    zstr_free(&domain);
    zstr_free(&address);
    zstr_free(&identity);
    zstr_free(&mechanism);
    zmsg_destroy(&m);
}

void zc_zap_actor(zsock_t *pipe, void *allow_dir)
{
    zcertstore_t *store = zcertstore_new((const char *)allow_dir);
    zsock_t *handler = zsock_new_rep(ZAP_ENDPOINT);
    zpoller_t *poller = handler ? zpoller_new(pipe, handler, NULL) : NULL;
    zsock_signal(pipe, 0);
    if (store == NULL || poller == NULL)
        zstr_sendf(pipe, "cannot serve ZAP on %s (another handler in this context?)", ZAP_ENDPOINT);
    else
        zstr_send(pipe, "OK");
    for (;;) {
        void *which = poller ? zpoller_wait(poller, -1) : pipe;
        if (which == handler) {
            answer(handler, store);
            continue;
        }
        if (which != pipe)
            break; /* interrupted */
        char *cmd = zstr_recv(pipe);
        bool term = cmd == NULL || strcmp(cmd, "$TERM") == 0;
        zstr_free(&cmd);
        if (term)
            break;
    }
    zpoller_destroy(&poller);
    /* Unbind before closing: libzmq frees an inproc endpoint at once on
     * unbind, but only later (its reaper thread) on close, and a handler
     * started right after this one (zc_sec_new again) would find it taken. */
    if (handler)
        zsock_unbind(handler, "%s", ZAP_ENDPOINT);
    zsock_destroy(&handler);
    zcertstore_destroy(&store);
}
