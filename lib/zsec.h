/* zsec: CurveZMQ on every zcart socket, with czmq's zcert and zcertstore.
 *
 * Every process has one certificate of its own (a czmq `zcert` secret file,
 * "NAME.cert_secret") and, when it binds a socket, an allow-list: a
 * directory of public certificates, one sub-directory per role
 * (allow/client, allow/admin, allow/cart, allow/stock, allow/replica).
 * `zcart keygen DIR` writes both; each public certificate carries the
 * metadata `role` and `name` (docs/security.md).
 *
 * Handshake.  A binding socket is a CURVE server whose ZAP domain names
 * the roles it admits; the process's ZAP handler (lib/zap.h, in place of
 * czmq's zauth, which answers for a whole context) admits a key only when
 * the allow-list holds it with one of those roles, and hands the
 * certificate's metadata back, so every message received on the
 * connection carries the properties "User-Id" (the peer's public key,
 * z85), "role" and "name".  Any other key never completes the handshake:
 * a client key cannot connect to the broker's cart port, a cart key not to
 * its raft port.
 *
 * The fail-open trap.  ZAP is per ZeroMQ *context*: libzmq asks the handler
 * bound to inproc://zeromq.zap.01 of the socket's own context, and when no
 * handler is there it admits every key (libzmq 4.3 without the draft
 * ZMQ_ZAP_ENFORCE_DOMAIN).  The handler binds in czmq's context, so a
 * socket made with a private zmq_ctx_new() would let anyone in.  Every
 * zcart daemon therefore makes all its sockets in zc_sec_context() (czmq's
 * zsys_init context, with czmq's signal handling off: libuv owns
 * SIGINT/SIGTERM), and tests/unit/test_zsec.c proves an unknown key, and a
 * known key of a role the socket does not admit, are refused.
 *
 * Roles per message too.  The daemons still check the "role" property of
 * what they receive (zc_sec_role_ok) before acting on it: the broker's
 * client port takes client and admin keys (and replica keys for STATUS and
 * relayed requests), ADMIN only from admin keys.
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
 * where the ZAP handler answers.  Idempotent; czmq's signal handlers are never
 * installed. */
void *zc_sec_context(void);

/* Loads the process's certificate `cert_file` (a czmq secret certificate;
 * may be NULL for a process that only connects without a client key -- not
 * used by zcart) and, if `allow_dir` is not NULL, starts the ZAP handler
 * (lib/zap.h) over that directory (read recursively).  `insecure`: no certificate, no
 * ZAP handler, every zc_sec_* call below is a no-op and a loud warning is logged.
 * NULL with a reason in err on failure. */
zc_sec_t *zc_sec_new(const char *cert_file, const char *allow_dir, bool insecure, char *err,
                     size_t errlen);
/* Stops the ZAP handler and frees; *p is set to NULL. */
void zc_sec_destroy(zc_sec_t **p);

bool zc_sec_insecure(const zc_sec_t *s);
/* This process's public key, z85 ("" when insecure). */
const char *zc_sec_public(const zc_sec_t *s);
/* Metadata `key` ("role", "name") of this process's own certificate, or
 * NULL (insecure, or not there). */
const char *zc_sec_own(const zc_sec_t *s, const char *key);

/* Makes `sock` (not yet bound) a CURVE server with this process's key,
 * admitting only keys of `roles` (comma-separated, e.g. "client,admin"):
 * its ZAP domain, which the handler checks at every handshake.  0 or -1. */
int zc_sec_server(const zc_sec_t *s, void *sock, const char *roles);
/* Makes `sock` (not yet connected) a CURVE client of the server whose public
 * key is `server_key` (z85).  0 or -1. */
int zc_sec_client(const zc_sec_t *s, void *sock, const char *server_key);

/* Resolves a server key argument: a certificate file whose public key is
 * read, or -- when no file has that name -- 40 z85 characters taken as is.
 * 0, or -1 with a reason in err. */
int zc_sec_key_arg(const char *arg, char out[ZC_KEY_Z85], char *err, size_t errlen);

/* A client's keys: the server's public key (as zc_sec_key_arg) and this
 * client's public and secret keys from its secret certificate file.  0, or
 * -1 with a reason in err (a certificate without a secret key included). */
int zc_sec_client_keys(const char *server_key_arg, const char *cert_path, char server[ZC_KEY_Z85],
                       char public_key[ZC_KEY_Z85], char secret_key[ZC_KEY_Z85], char *err,
                       size_t errlen);

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
int zc_sec_keygen(const char *dir, const char *role, const char *name, const char *file, char *err,
                  size_t errlen);

/* Copies `in` into out (size n, always terminated) with every byte outside
 * printable ASCII written as \xHH, so a peer-chosen string cannot forge log
 * lines or drive a terminal.  Returns out. */
char *zc_escape(const char *in, size_t inlen, char *out, size_t n);

#endif
