/* zap: the ZAP handler of every zcart process that binds a CURVE socket
 * (RFC 27, ZeroMQ's authentication protocol), as a czmq actor.
 *
 * Why not czmq's zauth: one zauth answers for the whole context, so every
 * socket of a process would admit the union of the roles the process
 * admits, and only a check of each message's "role" property would keep a
 * client key off the cart port.  Here each CURVE server socket names the
 * roles it admits in its ZAP domain (zc_sec_server: "client,admin,replica",
 * "cart", "replica"), and the handler admits a key only when the
 * allow-list holds its certificate with a role that domain names: any
 * other key never completes a handshake on that socket.
 *
 * Like zauth it reads the allow-list with czmq's zcertstore (refreshed on
 * every lookup, so keys added or removed on disk take effect at the next
 * connection) and hands the certificate's "role" and "name" back as
 * metadata, with the key (z85) as the User-Id: every message received on
 * the connection carries them (zmq_msg_gets).
 *
 * The handler must live in the context of the sockets it guards (zsec.h:
 * the fail-open trap).  Anything it cannot read -- a malformed request, a
 * mechanism other than CURVE, an empty domain -- is refused. */
#ifndef ZC_LIB_ZAP_H
#define ZC_LIB_ZAP_H

#include <czmq.h>

/* zactor_new(zc_zap_actor, allow_dir): the handler over the public
 * certificates under allow_dir (read recursively; the string must outlive
 * the actor).  After zactor_new the actor sends one string: "OK", or why
 * it could not start. */
void zc_zap_actor(zsock_t *pipe, void *allow_dir);

/* Does the comma-separated `roles` name `role`?  (Exposed for zsec.c.) */
bool zc_zap_role_in(const char *roles, const char *role);

#endif
