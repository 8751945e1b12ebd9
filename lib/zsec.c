/* zsec: see zsec.h for the design (and the fail-open trap it avoids). */
#include "lib/zsec.h"

#include <czmq.h>
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/log.h"
#include "lib/zap.h"

struct zc_sec {
    bool insecure;        /* --insecure: no CURVE, no checks */
    zcert_t *cert;        /* this process's certificate, or NULL */
    zactor_t *auth;       /* the ZAP handler (lib/zap.h), when an allow-list was given */
    char *allow_dir;      /* its allow-list directory (owned: the actor reads it) */
    char pub[ZC_KEY_Z85]; /* this process's public key, z85 */
};

void *zc_sec_context(void)
{
    /* Before zsys_init: czmq must not take SIGINT/SIGTERM from libuv. */
    zsys_handler_set(NULL);
    return zsys_init();
}

zc_sec_t *zc_sec_new(const char *cert_file, const char *allow_dir, bool insecure, char *err,
                     size_t errlen)
{
    zc_sec_t *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (zc_sec_context() == NULL) {
        snprintf(err, errlen, "czmq context: %s", zmq_strerror(zmq_errno()));
        free(s);
        return NULL;
    }
    s->insecure = insecure;
    if (insecure) {
        zc_warn("*** INSECURE: --insecure given: no CurveZMQ, no keys, no admin check; "
                "anyone who reaches a port owns the cluster (docs/security.md) ***");
        return s;
    }
    if (cert_file == NULL || *cert_file == 0) {
        snprintf(err, errlen,
                 "no certificate: give --cert FILE (from `zcart keygen`) or --insecure");
        goto err;
    }
    s->cert = zcert_load(cert_file);
    if (s->cert == NULL) {
        snprintf(err, errlen, "cannot load certificate %s", cert_file);
        goto err;
    }
    static const char zero[41] = "0000000000000000000000000000000000000000";
    if (strcmp(zcert_secret_txt(s->cert), zero) == 0) {
        snprintf(err, errlen, "%s holds no secret key (give the .cert_secret file)", cert_file);
        goto err;
    }
    snprintf(s->pub, sizeof s->pub, "%s", zcert_public_txt(s->cert));
    if (allow_dir != NULL) {
        struct stat st;
        if (stat(allow_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
            snprintf(err, errlen, "allow-list %s is not a directory", allow_dir);
            goto err;
        }
        s->allow_dir = strdup(allow_dir);
        s->auth = s->allow_dir ? zactor_new(zc_zap_actor, s->allow_dir) : NULL;
        char *started = s->auth ? zstr_recv(s->auth) : NULL;
        bool ok = started && strcmp(started, "OK") == 0;
        snprintf(err, errlen, "ZAP handler: %s", started ? started : "cannot start");
        zstr_free(&started);
        if (!ok)
            goto err;
    }
    return s;
err:
    zc_sec_destroy(&s);
    return NULL;
}

void zc_sec_destroy(zc_sec_t **p)
{
    zc_sec_t *s = *p;
    if (s == NULL)
        return;
    *p = NULL;
    zactor_destroy(&s->auth);
    free(s->allow_dir);
    zcert_destroy(&s->cert);
    free(s);
}

bool zc_sec_insecure(const zc_sec_t *s) { return s->insecure; }

const char *zc_sec_public(const zc_sec_t *s) { return s->pub; }

const char *zc_sec_own(const zc_sec_t *s, const char *key)
{
    return s->cert ? zcert_meta(s->cert, key) : NULL;
}

int zc_sec_server(const zc_sec_t *s, void *sock, const char *roles)
{
    if (s->insecure)
        return 0;
    int one = 1;
    if (roles == NULL || *roles == 0) {
        errno = EINVAL;
        return -1;
    }
    /* The ZAP domain names the roles this socket admits (lib/zap.h). */
    if (zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, roles, strlen(roles)) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, zcert_secret_key(s->cert), 32) != 0)
        return -1;
    return 0;
}

int zc_sec_client(const zc_sec_t *s, void *sock, const char *server_key)
{
    if (s->insecure)
        return 0;
    if (server_key == NULL || strlen(server_key) != 40) {
        errno = EINVAL;
        return -1;
    }
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server_key, 40) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, zcert_public_key(s->cert), 32) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, zcert_secret_key(s->cert), 32) != 0)
        return -1;
    return 0;
}

static bool is_z85_key(const char *s)
{
    if (strlen(s) != 40)
        return false;
    uint8_t bin[32];
    return zmq_z85_decode(bin, s) != NULL;
}

int zc_sec_key_arg(const char *arg, char out[ZC_KEY_Z85], char *err, size_t errlen)
{
    if (arg == NULL || *arg == 0) {
        snprintf(err, errlen, "no server key given");
        return -1;
    }
    /* A file by that name wins: z85's alphabet has '/' and '.', so a
     * 40-character path ("/tmp/zc-batch-run-ABCD/keys/replica.cert") is
     * also a well-formed key. */
    struct stat st;
    if (stat(arg, &st) != 0 && is_z85_key(arg)) {
        snprintf(out, ZC_KEY_Z85, "%s", arg);
        return 0;
    }
    zcert_t *c = zcert_load(arg);
    if (c == NULL) {
        snprintf(err, errlen,
                 "server key '%.60s' is neither 40 z85 characters nor a certificate file", arg);
        return -1;
    }
    snprintf(out, ZC_KEY_Z85, "%s", zcert_public_txt(c));
    zcert_destroy(&c);
    return 0;
}

const char *zc_sec_peer(zmq_msg_t *msg, const char *key) { return zmq_msg_gets(msg, key); }

bool zc_sec_role_ok(const zc_sec_t *s, zmq_msg_t *msg, const char *roles)
{
    return s->insecure || zc_zap_role_in(roles, zmq_msg_gets(msg, "role"));
}

static int mkdir_p(const char *path)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return -1;
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0700) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

int zc_sec_keygen(const char *dir, const char *role, const char *name, const char *file, char *err,
                  size_t errlen)
{
    char path[4200], allow[4096];
    struct stat st;
    if (strlen(dir) + strlen(role) + strlen(file) > 3000) {
        snprintf(err, errlen, "key directory path too long");
        return -1;
    }
    snprintf(allow, sizeof allow, "%s/allow/%s", dir, role);
    if (mkdir_p(allow) != 0) {
        snprintf(err, errlen, "mkdir %s: %s", allow, strerror(errno));
        return -1;
    }
    zcert_t *c = zcert_new();
    if (c == NULL) {
        snprintf(err, errlen, "cannot make a certificate (libsodium?)");
        return -1;
    }
    zcert_set_meta(c, "role", "%s", role);
    zcert_set_meta(c, "name", "%s", name);
    int rc = 0;
    snprintf(path, sizeof path, "%s/%s.cert", dir, file);
    if (stat(path, &st) == 0) {
        zcert_destroy(&c);
        snprintf(err, errlen, "%s exists: not overwriting a key", path);
        return -1;
    }
    /* zcert_save writes NAME.cert and NAME.cert_secret (mode 0600 umask'd). */
    mode_t old = umask(077);
    if (zcert_save(c, path) != 0) {
        snprintf(err, errlen, "cannot write %s", path);
        rc = -1;
    }
    umask(old);
    snprintf(path, sizeof path, "%s/%s.cert", allow, file);
    if (rc == 0 && zcert_save_public(c, path) != 0) {
        snprintf(err, errlen, "cannot write %s", path);
        rc = -1;
    }
    zcert_destroy(&c);
    return rc;
}

char *zc_escape(const char *in, size_t inlen, char *out, size_t n)
{
    size_t o = 0;
    if (n == 0)
        return out;
    for (size_t i = 0; i < inlen && in[i]; i++) {
        unsigned char ch = (unsigned char)in[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '\\') {
            if (o + 1 >= n)
                break;
            out[o++] = (char)ch;
        } else {
            if (o + 4 >= n)
                break;
            snprintf(out + o, n - o, "\\x%02x", ch);
            o += 4;
        }
    }
    out[o] = 0;
    return out;
}

int zc_sec_client_keys(const char *server_key_arg, const char *cert_path, char server[ZC_KEY_Z85],
                       char public_key[ZC_KEY_Z85], char secret_key[ZC_KEY_Z85], char *err,
                       size_t errlen)
{
    if (zc_sec_key_arg(server_key_arg, server, err, errlen) != 0)
        return -1;
    zcert_t *c = zcert_load(cert_path);
    if (c == NULL) {
        snprintf(err, errlen, "cannot load certificate '%.100s'", cert_path);
        return -1;
    }
    snprintf(public_key, ZC_KEY_Z85, "%s", zcert_public_txt(c));
    snprintf(secret_key, ZC_KEY_Z85, "%s", zcert_secret_txt(c));
    zcert_destroy(&c);
    if (strcmp(secret_key, "0000000000000000000000000000000000000000") == 0) {
        snprintf(err, errlen, "'%.100s' holds no secret key (give the .cert_secret file)",
                 cert_path);
        return -1;
    }
    return 0;
}
