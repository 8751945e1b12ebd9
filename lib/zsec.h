/* zsec: CurveZMQ on every zcart socket, with czmq's zcert and zauth.
 *
 * Every process has one certificate of its own (a czmq `zcert` secret file,
 * "NAME.cert_secret") and, when it binds a socket, an allow-list: a
 * directory of public certificates, one sub-directory per role
 * (allow/client, allow/admin, allow/cart, allow/stock, allow/replica).
 * `zcart keygen DIR` writes both; each public certificate carries the
 * metadata `role` and `name` (docs/security.md).
 *
 * Handshake.  A binding socket is a CURVE server; czmq's zauth actor answers
 * libzmq's ZAP requests from the allow-list and hands the certificate's
 * metadata back, so every message received on the connection carries the
 * properties "User-Id" (the peer's public key, z85), "role" and "name".
 * A key not in the allow-list never completes the handshake.
 *
 * The fail-open trap.  ZAP is per ZeroMQ *context*: libzmq asks the handler
 * bound to inproc://zeromq.zap.01 of the socket's own context, and when no
 * handler is there it admits every key (libzmq 4.3 without the draft
 * ZMQ_ZAP_ENFORCE_DOMAIN).  zauth binds in czmq's context, so a socket made
 * with a private zmq_ctx_new() would let anyone in.  Every zcart daemon
 * therefore makes all its sockets in zc_sec_context() (czmq's zsys_init
 * context, with czmq's signal handling off: libuv owns SIGINT/SIGTERM), and
 * tests/unit/test_zsec.c proves an unknown key is refused.
 *
 * Per-socket roles.  One zauth serves a whole context, so its allow-list is
 * the union of the roles a process admits; each socket then admits only its
 * own roles by checking the "role" property of every message
 * (zc_sec_role_ok): the broker's client port takes client and admin keys,
 * its cart port cart keys, the stock port cart keys.
 *
 * --insecure turns all of this off (plain NULL mechanism, no checks) and
 * says so in the log at start. */
#ifndef ZC_LIB_ZSEC_H
#define ZC_LIB_ZSEC_H

#include <stdbool.h>
#include <stddef.h>
#include <zmq.h>

/* A z85 public key: 40 characters and a NUL. */
#define ZC_KEY_Z85 41

typedef struct zc_sec zc_sec_t;

/* The ZeroMQ context every daemon socket must be created in: czmq's own,
 * where zauth answers ZAP.  Idempotent; czmq's signal handlers are never
 * installed. */
void *zc_sec_context(void);

/* Loads the process's certificate `cert_file` (a czmq secret certificate;
 * may be NULL for a process that only connects without a client key -- not
 * used by zcart) and, if `allow_dir` is not NULL, starts zauth with CURVE
 * over that directory (read recursively).  `insecure`: no certificate, no
 * zauth, every zc_sec_* call below is a no-op and a loud warning is logged.
 * NULL with a reason in err on failure. */
zc_sec_t *zc_sec_new(const char *cert_file, const char *allow_dir, bool insecure, char *err,
                     size_t errlen);
/* Stops zauth and frees; *p is set to NULL. */
void zc_sec_destroy(zc_sec_t **p);

bool zc_sec_insecure(const zc_sec_t *s);
/* This process's public key, z85 ("" when insecure). */
const char *zc_sec_public(const zc_sec_t *s);

/* Makes `sock` (not yet bound) a CURVE server with this process's key and a
 * ZAP domain, so zauth is asked about every peer.  0 or -1. */
int zc_sec_server(const zc_sec_t *s, void *sock);
/* Makes `sock` (not yet connected) a CURVE client of the server whose public
 * key is `server_key` (z85).  0 or -1. */
int zc_sec_client(const zc_sec_t *s, void *sock, const char *server_key);

/* Resolves a server key argument: 40 z85 characters are taken as is,
 * anything else is a certificate file whose public key is read.  0, or -1
 * with a reason in err. */
int zc_sec_key_arg(const char *arg, char out[ZC_KEY_Z85], char *err, size_t errlen);

/* Does the peer that sent `msg` hold a key of one of `roles` (a
 * comma-separated list, e.g. "client,admin")?  Always true when insecure. */
bool zc_sec_role_ok(const zc_sec_t *s, zmq_msg_t *msg, const char *roles);
/* The peer's certificate metadata `key` ("role", "name") or its public key
 * ("User-Id"); NULL when the connection has none (insecure). */
const char *zc_sec_peer(zmq_msg_t *msg, const char *key);

/* Writes a certificate pair DIR/FILE.cert and DIR/FILE.cert_secret with
 * metadata role=ROLE, name=NAME, and a copy of the public one in
 * DIR/allow/ROLE/FILE.cert.  Refuses to overwrite.  0, or -1 with a reason
 * in err. */
int zc_sec_keygen(const char *dir, const char *role, const char *name, const char *file,
                  char *err, size_t errlen);

/* Copies `in` into out (size n, always terminated) with every byte outside
 * printable ASCII written as \xHH, so a peer-chosen string cannot forge log
 * lines or drive a terminal.  Returns out. */
char *zc_escape(const char *in, size_t inlen, char *out, size_t n);

#endif
