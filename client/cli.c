/* cli: the zcart command (usage in HELP below; output formats in clijson.h).
 *
 * Everything is checked before anything is sent: flags, the command and
 * its arguments, the broker list, the session id.  A problem there is a
 * usage error (exit 2) and the cluster never hears of it.  Then one
 * zcart_t runs the command; its outcome picks the exit status:
 * 0 OK, 1 KO, 2 usage, 3 no answer within --timeout.
 *
 * The CLI runs one process per command, so sessions live in the user's
 * hands: `add` without a session makes one and prints its id, and later
 * commands pass it back with --session (or $ZCART_SESSION).  Seqs stay
 * increasing across those processes because libzcart takes them from the
 * wall clock in microseconds.
 *
 * `shell` keeps one zcart_t and one session for its whole life and reads
 * commands from stdin, printing one result per command.  Options are
 * accepted before the command and, for convenience, after the command's
 * arguments (never in between: a product may well start with "-"). */
#include "client/cli.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/clijson.h"
#include "client/zcart.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/zsec.h"
#include <czmq.h>
#include "proto/msg.h"

static const char HELP[] =
    "usage: zcart [--brokers EP,EP...] [--session ID] [--json] [--timeout MS] COMMAND [ARGS]\n"
    "       zcart [options] admin transfer-leader [ID] | add-node ID RAFT,CLIENT,CART |\n"
    "                              remove-node ID | breaker CART open|close|auto |\n"
    "                              remove-cart-node NAME | backup NAME\n"
    "\n"
    "Talk to a zcart broker cluster, failing over between its replicas.\n"
    "\n"
    "Commands:\n"
    "  add PRODUCT QTY     add QTY units of PRODUCT to the session's cart; without a\n"
    "                      session, start a new one and print its id\n"
    "  remove PRODUCT QTY  remove QTY units of PRODUCT (needs a session)\n"
    "  list                show the session's cart (needs a session)\n"
    "  close               end the session; its cart is emptied and freed (needs a\n"
    "                      session)\n"
    "  keepalive           renew the session's lease once, as the shell's keeper does\n"
    "                      (needs a session; a closed one answers SESSION_CLOSED)\n"
    "  status              ask every replica for its state (a table, or JSON with\n"
    "                      --json); succeeds if at least one replica answers\n"
    "  shell               read commands from stdin, one per line, printing one result\n"
    "                      per command (type \"help\" in it); the session is --session's\n"
    "                      or starts on the first add, and after close the next add\n"
    "                      starts a new one\n"
    "\n"
    "Keys:\n"
    "  keygen DIR [NODE...] [--replicas N]\n"
    "                      write a cluster's CurveZMQ certificates into DIR: replica,\n"
    "                      stock, admin, client, cart-NODE per cart node and, with\n"
    "                      --replicas, raft-1..raft-N (each replica's own raft key,\n"
    "                      zcart-broker --raft-cert) (czmq zcert files, NAME.cert +\n"
    "                      NAME.cert_secret) and the allow-lists DIR/allow/ROLE/;\n"
    "                      keeps keys that exist (run it again to add a cart node or\n"
    "                      a replica); prints ZCART_SERVER_KEY\n"
    "\n"
    "Administration (needs an admin key, --cert KEYS/admin.cert_secret; sent to the\n"
    "leader; not retried once it may have arrived):\n"
    "  admin transfer-leader [ID]\n"
    "                      hand raft leadership to replica ID (default: any voter)\n"
    "  admin add-node ID RAFT,CLIENT,CART\n"
    "                      add replica ID, which must be running with --join, e.g.\n"
    "                      4 127.0.0.1:7014,tcp://127.0.0.1:7024,tcp://127.0.0.1:7034;\n"
    "                      answers once it has caught up and votes\n"
    "  admin remove-node ID\n"
    "                      remove replica ID from the cluster (not the leader itself:\n"
    "                      transfer leadership first)\n"
    "  admin breaker CART open|close|auto\n"
    "                      force CART's circuit breaker open or closed, cluster-wide,\n"
    "                      or hand it back to the automatic heartbeat/failure rules\n"
    "  admin remove-cart-node NAME\n"
    "                      retire cart node NAME: unregister all its carts (sessions on\n"
    "                      them move to free carts and get CART_LOST, or end when none\n"
    "                      is free) and forget the name; stop the node first (a node\n"
    "                      that says hello again is registered afresh)\n"
    "  admin backup NAME   a consistent copy of the replicated state (carts, free\n"
    "                      list, sessions) with its applied index, term, digest and\n"
    "                      members, written by the leader into its --backup-dir as\n"
    "                      directory NAME; restore: zcart-broker --restore\n"
    "                      (docs/operations.md)\n"
    "  ID: 1..1000000.  Results: \"OK <detail>\" / \"KO <REASON>: <detail>\"; json\n"
    "  {\"ok\",\"op\":\"admin\",\"command\",\"reason\",\"detail\"}.\n"
    "\n"
    "Options (before COMMAND, or after its arguments):\n"
    "  --brokers EP,...    client endpoints of all the replicas, e.g.\n"
    "                      tcp://127.0.0.1:7021,tcp://127.0.0.1:7022 (default:\n"
    "                      $ZCART_BROKERS)\n"
    "  --session ID        the session, 32 hex digits (default: $ZCART_SESSION)\n"
    "  --server-key KEY    the cluster's public key: 40 z85 characters or a certificate\n"
    "                      file (default: $ZCART_SERVER_KEY); every connection is\n"
    "                      CurveZMQ to exactly this key\n"
    "  --cert FILE         this client's secret certificate, e.g. KEYS/client.cert_secret\n"
    "                      or, for admin commands, KEYS/admin.cert_secret (default:\n"
    "                      $ZCART_CERT)\n"
    "  --insecure          plain connections to an --insecure cluster (experiments only;\n"
    "                      also ZCART_INSECURE=1, which an insecure cluster's RUN/env sets)\n"
    "  --json              print each result as one JSON object on one line\n"
    "  --timeout MS        time budget of the whole command, retries and failover\n"
    "                      included (default 5000; one try waits at most 1000)\n"
    "  --keepalive MS      shell: renew the session's lease every MS from a thread of\n"
    "                      its own while the shell waits for input (default 10000;\n"
    "                      0: never; the brokers' --session-ttl must be longer)\n"
    "  --verbose           log failover decisions on stderr\n"
    "  -h, --help          print this help and exit\n"
    "\n"
    "PRODUCT: 1..64 printable ASCII characters, no space, no comma.\n"
    "QTY: an integer from 1 to 1000000.\n"
    "\n"
    "Results go to stdout, one per command; diagnostics go to stderr.\n"
    "  text   \"session <id>\" (add that started a session), then one of\n"
    "         \"OK cart <cart> gen <n>: apple x3, pear x1\", \"OK closed cart ...\",\n"
    "         \"KO <REASON>: <detail>\", \"UNREACHABLE: <detail>\"\n"
    "  json   {\"ok\":true,\"session\":...,\"cart\":...,\"generation\":...,\n"
    "          \"items\":[{\"product\":...,\"qty\":...}],...}, or {\"ok\":false,\n"
    "          \"reason\":\"OUT_OF_STOCK\"|...|\"UNREACHABLE\"|\"USAGE\",\"detail\":...}\n"
    "  status --json: {\"ok\":...,\"replicas\":[{\"id\",\"endpoint\",\"role\",\"term\",\n"
    "          \"commit_index\",\"applied_index\",\"digest\",\"reachable\",...every other\n"
    "          \"storage\":{\"used_bytes\",\"map_bytes\"},...every other property}],\n"
    "          \"carts\":{\"total\",\"free\",\"assigned\",\"draining\"},\n"
    "          \"sessions\":{\"live\",\"ended\"},...}\n"
    "\n"
    "Exit status: 0 OK; 1 the cluster answered KO; 2 usage error (bad option,\n"
    "command, PRODUCT, QTY or session, no brokers); 3 no answer within the budget\n"
    "(then the outcome is unknown unless \"in_doubt\" is false).\n"
    "shell exits 0 at end of input or quit, 3 if its last command got no answer.\n";

/* The shell's keepalive period unless --keepalive says otherwise. */
#define ZCLI_DEFAULT_KEEPALIVE_MS 10000

static const char SHELL_HELP[] =
    "commands: add PRODUCT QTY | remove PRODUCT QTY | list | close | keepalive | status | "
    "help | "
    "quit | exit (blank lines and lines starting with # are ignored; after close, or "
    "an answer SESSION_CLOSED or SESSION_EXPIRED, the next add starts a new session)";

/* What the command line asked for. */
typedef struct {
    const char *brokers;    /* --brokers, or NULL */
    const char *session;    /* --session, or NULL */
    bool json;              /* --json */
    int timeout_ms;         /* --timeout, 0 if not given */
    int keepalive_ms;       /* --keepalive (shell), -1 if not given */
    bool verbose;           /* --verbose */
    bool help;              /* -h / --help */
    const char *server_key; /* --server-key, or NULL */
    const char *cert;       /* --cert, or NULL */
    bool insecure;          /* --insecure */
    const char *cmd;        /* the command, or NULL */
    const char *args[3];    /* its arguments (admin: the subcommand first) */
    int nargs;              /* how many */
} cli_args_t;

/* Arguments an admin subcommand takes at least (*lo) and at most (*hi);
 * false for an unknown one. */
static bool admin_arity(const char *sub, int *lo, int *hi)
{
    if (strcmp(sub, "transfer-leader") == 0)
        *lo = 0, *hi = 1;
    else if (strcmp(sub, "add-node") == 0)
        *lo = *hi = 2;
    else if (strcmp(sub, "remove-node") == 0)
        *lo = *hi = 1;
    else if (strcmp(sub, "breaker") == 0)
        *lo = *hi = 2;
    else if (strcmp(sub, "remove-cart-node") == 0)
        *lo = *hi = 1;
    else if (strcmp(sub, "backup") == 0)
        *lo = *hi = 1;
    else
        return false;
    return true;
}

/* Arguments a command takes; -1 for an unknown command (admin: see
 * admin_arity). */
static int arity(const char *cmd)
{
    if (strcmp(cmd, "add") == 0 || strcmp(cmd, "remove") == 0)
        return 2;
    if (strcmp(cmd, "list") == 0 || strcmp(cmd, "close") == 0 || strcmp(cmd, "status") == 0 ||
        strcmp(cmd, "keepalive") == 0 || strcmp(cmd, "shell") == 0)
        return 0;
    return -1;
}

/* Parse a positive integer in [lo, hi]: digits only. */
static bool parse_int(const char *s, long lo, long hi, long *out)
{
    if (s == NULL || *s == 0 || strlen(s) > 10)
        return false;
    long v = 0;
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return false;
        v = v * 10 + (*p - '0');
    }
    if (v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* If argv[*i] is an option, consume it (and its value) and return 1; 0 if
 * it is not an option; -1 (with why) if it is a bad one. */
static int option(int argc, char **argv, int *i, cli_args_t *a, char *why, size_t n)
{
    const char *arg = argv[*i];
    static const char *const valued[] = {"--brokers",   "--session",    "--timeout",
                                         "--keepalive", "--server-key", "--cert"};
    if (strcmp(arg, "--json") == 0) {
        a->json = true;
    } else if (strcmp(arg, "--verbose") == 0) {
        a->verbose = true;
    } else if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
        a->help = true;
    } else if (strcmp(arg, "--insecure") == 0) {
        a->insecure = true;
    } else {
        for (size_t k = 0; k < 6; k++) {
            size_t len = strlen(valued[k]);
            if (strncmp(arg, valued[k], len) != 0 || (arg[len] != 0 && arg[len] != '='))
                continue;
            const char *v;
            if (arg[len] == '=') {
                v = arg + len + 1;
            } else if (*i + 1 < argc) {
                v = argv[++*i];
            } else {
                snprintf(why, n, "%s wants a value", valued[k]);
                return -1;
            }
            if (k == 0) {
                a->brokers = v;
            } else if (k == 1) {
                a->session = v;
            } else if (k == 4) {
                a->server_key = v;
            } else if (k == 5) {
                a->cert = v;
            } else if (k == 3) {
                long ms;
                if (!parse_int(v, 0, 86400000, &ms)) {
                    snprintf(why, n, "--keepalive wants milliseconds, 0..86400000 (got '%.40s')",
                             v);
                    return -1;
                }
                a->keepalive_ms = (int)ms;
            } else {
                long ms;
                if (!parse_int(v, 1, 86400000, &ms)) {
                    snprintf(why, n, "--timeout wants milliseconds, 1..86400000 (got '%.40s')", v);
                    return -1;
                }
                a->timeout_ms = (int)ms;
            }
            ++*i;
            return 1;
        }
        return 0;
    }
    ++*i;
    return 1;
}

static int parse_args(int argc, char **argv, cli_args_t *a, char *why, size_t n)
{
    memset(a, 0, sizeof *a);
    a->keepalive_ms = -1;
    int i = 1;
    /* Options, up to the command. */
    while (i < argc && a->cmd == NULL) {
        const char *arg = argv[i];
        if (strcmp(arg, "--") == 0) {
            i++;
            break;
        }
        int r = option(argc, argv, &i, a, why, n);
        if (r < 0)
            return -1;
        if (r > 0)
            continue;
        if (arg[0] == '-' && arg[1] != 0) {
            snprintf(why, n, "unknown option '%.60s'", arg);
            return -1;
        }
        break;
    }
    if (a->help)
        return 0;
    if (i >= argc) {
        snprintf(why, n, "no command given");
        return -1;
    }
    a->cmd = argv[i++];
    if (strcmp(a->cmd, "admin") == 0) {
        int lo, hi;
        if (i >= argc || !admin_arity(argv[i], &lo, &hi)) {
            snprintf(why, n,
                     "admin wants transfer-leader [ID], add-node ID RAFT,CLIENT,CART, "
                     "remove-node ID, breaker CART open|close|auto, remove-cart-node NAME "
                     "or backup NAME");
            return -1;
        }
        a->args[a->nargs++] = argv[i++];
        while (a->nargs <= hi && i < argc && !(argv[i][0] == '-' && argv[i][1] == '-'))
            a->args[a->nargs++] = argv[i++];
        if (a->nargs <= lo) {
            snprintf(why, n, "admin %s wants %s", a->args[0],
                     strcmp(a->args[0], "breaker") == 0            ? "CART open|close|auto"
                     : strcmp(a->args[0], "remove-cart-node") == 0 ? "NAME"
                     : strcmp(a->args[0], "backup") == 0           ? "NAME"
                     : lo == 2                                     ? "ID RAFT,CLIENT,CART"
                                                                   : "ID");
            return -1;
        }
    } else {
        int want = arity(a->cmd);
        if (want < 0) {
            snprintf(why, n, "unknown command '%.60s'", a->cmd);
            return -1;
        }
        while (a->nargs < want && i < argc)
            a->args[a->nargs++] = argv[i++];
        if (a->nargs < want) {
            snprintf(why, n, "%s wants PRODUCT QTY", a->cmd);
            return -1;
        }
    }
    /* Options after the arguments. */
    while (i < argc) {
        int r = option(argc, argv, &i, a, why, n);
        if (r < 0)
            return -1;
        if (r == 0) {
            snprintf(why, n, "unexpected argument '%.60s' after %s", argv[i], a->cmd);
            return -1;
        }
    }
    return 0;
}

/* Check PRODUCT QTY text; fills product/qty. */
static bool item_args(const char *p, const char *q, uint32_t *qty, char *why, size_t n)
{
    long v;
    if (!zcart_item_check(p, 1, why, n))
        return false;
    if (!parse_int(q, 1, ZCART_QTY_MAX, &v)) {
        snprintf(why, n, "QTY must be an integer from 1 to %d (got '%.40s')", ZCART_QTY_MAX, q);
        return false;
    }
    *qty = (uint32_t)v;
    return true;
}

/* Check an admin command's arguments and turn them into ADMIN props
 * (docs/protocol.md, admin commands); false with why on a usage error. */
static bool admin_props(const cli_args_t *a, zcart_prop_t props[4], size_t *n, char *why, size_t wn)
{
    long id;
    *n = 0;
    if (strcmp(a->args[0], "breaker") == 0) {
        const char *act = a->args[2];
        if (strlen(a->args[1]) > ZCART_VALUE_MAX || !strchr(a->args[1], '.')) {
            snprintf(why, wn, "CART must be a cart id like cart1.0 (got '%.40s')", a->args[1]);
            return false;
        }
        if (strcmp(act, "open") != 0 && strcmp(act, "close") != 0 && strcmp(act, "auto") != 0) {
            snprintf(why, wn, "the breaker action must be open, close or auto (got '%.40s')", act);
            return false;
        }
        snprintf(props[0].key, sizeof props[0].key, "cart");
        snprintf(props[0].value, sizeof props[0].value, "%s", a->args[1]);
        snprintf(props[1].key, sizeof props[1].key, "action");
        snprintf(props[1].value, sizeof props[1].value, "%s", act);
        *n = 2;
        return true;
    }
    if (strcmp(a->args[0], "backup") == 0) {
        if (!zc_backup_name_valid(a->args[1])) {
            snprintf(why, wn,
                     "NAME must be 1..64 of [A-Za-z0-9_.-], not starting with '.' "
                     "(got '%.40s')",
                     a->args[1]);
            return false;
        }
        snprintf(props[0].key, sizeof props[0].key, "name");
        snprintf(props[0].value, sizeof props[0].value, "%s", a->args[1]);
        *n = 1;
        return true;
    }
    if (strcmp(a->args[0], "remove-cart-node") == 0) {
        if (!zc_node_name_valid(a->args[1])) {
            snprintf(why, wn,
                     "NAME must be a cart node name, 1..32 of [A-Za-z0-9_-] (got "
                     "'%.40s')",
                     a->args[1]);
            return false;
        }
        snprintf(props[0].key, sizeof props[0].key, "node");
        snprintf(props[0].value, sizeof props[0].value, "%s", a->args[1]);
        *n = 1;
        return true;
    }
    if (a->nargs >= 2) {
        if (!parse_int(a->args[1], 1, 1000000, &id)) {
            snprintf(why, wn, "ID must be an integer from 1 to 1000000 (got '%.40s')", a->args[1]);
            return false;
        }
        snprintf(props[*n].key, sizeof props[*n].key, "id");
        snprintf(props[*n].value, sizeof props[*n].value, "%ld", id);
        ++*n;
    }
    if (strcmp(a->args[0], "add-node") == 0) {
        static const char *const keys[3] = {"raft", "client", "cart"};
        const char *p = a->args[2];
        for (int k = 0; k < 3; k++) {
            const char *end = k < 2 ? strchr(p, ',') : p + strlen(p);
            size_t len = end ? (size_t)(end - p) : 0;
            if (end == NULL || len == 0 || len > ZCART_VALUE_MAX || (k == 2 && strchr(p, ','))) {
                snprintf(why, wn,
                         "ENDPOINTS must be RAFT_HOST:PORT,CLIENT_EP,CART_EP (got "
                         "'%.80s')",
                         a->args[2]);
                return false;
            }
            snprintf(props[*n].key, sizeof props[*n].key, "%s", keys[k]);
            snprintf(props[*n].value, sizeof props[*n].value, "%.*s", (int)len, p);
            ++*n;
            p = end + 1;
        }
        if (!strchr(props[1].value, ':')) {
            snprintf(why, wn, "the raft address must be HOST:PORT (got '%.60s')", props[1].value);
            return false;
        }
    }
    return true;
}

/* State shared by one-shot commands and the shell. */
typedef struct {
    zcart_t *z;         /* the client */
    zcart_session_t *s; /* current session, or NULL */
    bool json;          /* --json */
    FILE *out;          /* results */
    FILE *err;          /* diagnostics */
} cli_t;

static int usage_error(cli_t *c, const char *why, bool shell)
{
    if (!shell)
        fprintf(c->err, "zcart: %s\nTry 'zcart --help' for usage.\n", why);
    if (c->json || shell)
        zcli_print_usage(c->out, c->json, why);
    return ZCLI_EXIT_USAGE;
}

/* Run one command with its arguments.  shell: lazily create the session
 * and forget it after close. */
static int run_command(cli_t *c, const char *cmd, const char *const *args, bool shell)
{
    char why[160];
    zcart_result_t r = {0};
    int rc, op;
    uint32_t qty = 0;
    bool created = false;
    if (strcmp(cmd, "status") == 0) {
        zcart_status_t st = {0};
        rc = zcart_status(c->z, &st);
        zcli_print_status(c->out, c->json, rc, &st);
        zcart_status_clear(&st);
        return rc == ZCART_ANSWERED ? ZCLI_EXIT_OK : ZCLI_EXIT_UNREACHABLE;
    }
    if (strcmp(cmd, "add") == 0)
        op = ZC_OP_ADD;
    else if (strcmp(cmd, "remove") == 0)
        op = ZC_OP_REMOVE;
    else if (strcmp(cmd, "list") == 0)
        op = ZC_OP_LIST;
    else if (strcmp(cmd, "keepalive") == 0)
        op = ZC_OP_KEEPALIVE;
    else
        op = ZC_OP_CLOSE;
    if ((op == ZC_OP_ADD || op == ZC_OP_REMOVE) &&
        !item_args(args[0], args[1], &qty, why, sizeof why))
        return usage_error(c, why, shell);
    if (c->s == NULL) {
        if (op != ZC_OP_ADD) {
            snprintf(why, sizeof why, "%s needs a session: %s", cmd,
                     shell ? "add something first" : "give --session ID or set ZCART_SESSION");
            return usage_error(c, why, shell);
        }
        c->s = zcart_session_new(c->z);
        if (c->s == NULL) {
            fprintf(c->err, "zcart: out of memory\n");
            return ZCLI_EXIT_UNREACHABLE;
        }
        created = true;
    }
    switch (op) {
    case ZC_OP_ADD: rc = zcart_add(c->s, args[0], qty, &r); break;
    case ZC_OP_REMOVE: rc = zcart_remove(c->s, args[0], qty, &r); break;
    case ZC_OP_LIST: rc = zcart_list(c->s, &r); break;
    case ZC_OP_KEEPALIVE: rc = zcart_keepalive(c->s, &r); break;
    default: rc = zcart_close(c->s, &r); break;
    }
    if (rc == ZCART_ESYS)
        fprintf(c->err, "zcart: local error: %s\n", r.detail);
    zcli_print_op(c->out, c->json, op, zcart_session_id(c->s), created, rc, &r);
    int code = zcli_exit_code(rc, &r);
    bool ended = rc == ZCART_ANSWERED &&
                 ((op == ZC_OP_CLOSE && r.status == 0) || r.status == ZCART_STATUS_SESSION_CLOSED ||
                  r.status == ZCART_STATUS_SESSION_EXPIRED);
    if (shell && ended)
        zcart_session_destroy(&c->s);
    zcart_result_clear(&r);
    return code;
}

/* Split line into at most max words (in place); returns the count, or
 * max + 1 if there are more. */
static int split(char *line, char **words, int max)
{
    int n = 0;
    char *save = NULL;
    for (char *w = strtok_r(line, " \t\r\n", &save); w; w = strtok_r(NULL, " \t\r\n", &save)) {
        if (n == max)
            return max + 1;
        words[n++] = w;
    }
    return n;
}

static int shell(cli_t *c, FILE *in)
{
    bool tty = isatty(fileno(in)) && isatty(fileno(c->out));
    char *line = NULL;
    size_t cap = 0;
    int last = ZCLI_EXIT_OK;
    for (;;) {
        if (tty) {
            fputs("zcart> ", c->out);
            fflush(c->out);
        }
        if (getline(&line, &cap, in) < 0)
            break;
        char *words[4];
        int n = split(line, words, 3);
        if (n == 0 || words[0][0] == '#')
            continue;
        const char *cmd = words[0];
        if (strcmp(cmd, "quit") == 0 || strcmp(cmd, "exit") == 0)
            break;
        if (strcmp(cmd, "help") == 0) {
            if (c->json) {
                zc_json_t j;
                zc_json_init(&j);
                zc_json_obj(&j);
                zc_json_kbool(&j, "ok", true);
                zc_json_kstr(&j, "help", SHELL_HELP);
                zc_json_end(&j);
                fprintf(c->out, "%s\n", zc_json_str(&j));
                zc_json_clear(&j);
            } else {
                fprintf(c->out, "%s\n", SHELL_HELP);
            }
            fflush(c->out);
            last = ZCLI_EXIT_OK;
            continue;
        }
        int want = arity(cmd);
        char why[160];
        if (want < 0 || strcmp(cmd, "shell") == 0) {
            snprintf(why, sizeof why, "unknown command '%.60s' (try help)", cmd);
            last = usage_error(c, why, true);
            continue;
        }
        if (n - 1 != want) {
            snprintf(why, sizeof why, want ? "%s wants PRODUCT QTY" : "%s takes no arguments", cmd);
            last = usage_error(c, why, true);
            continue;
        }
        last = run_command(c, cmd, (const char *const *)&words[1], true);
    }
    free(line);
    return last == ZCLI_EXIT_UNREACHABLE ? ZCLI_EXIT_UNREACHABLE : ZCLI_EXIT_OK;
}

/* One key unless it exists: DIR/FILE.cert(_secret) and DIR/allow/ROLE/FILE.cert.
 * 1 made, 0 kept, -1 with why. */
static int keygen_one(const char *dir, const char *role, const char *name, const char *file,
                      char *why, size_t n)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.cert", dir, file);
    if (access(path, F_OK) == 0)
        return 0;
    return zc_sec_keygen(dir, role, name, file, why, n) != 0 ? -1 : 1;
}

/* zcart keygen DIR [NODE...] [--replicas N]: a cluster's certificates
 * (lib/zsec.h, docs/security.md). */
static int keygen(int argc, char **argv, FILE *out, FILE *err)
{
    char why[300];
    long replicas = 0;
    if (argc < 1 || argv[0][0] == '-') {
        fprintf(err, "zcart: keygen wants DIR [CART-NODE...] [--replicas N]\n"
                     "Try 'zcart --help' for usage.\n");
        return ZCLI_EXIT_USAGE;
    }
    const char *dir = argv[0];
    for (int i = 1; i < argc; i++) {
        char e[200];
        if (strcmp(argv[i], "--replicas") == 0) {
            char *end;
            replicas = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : 0;
            if (i + 1 >= argc || *end != 0 || replicas < 1 || replicas > 1000) {
                fprintf(err, "zcart: keygen --replicas wants N, 1..1000 (raft ids 1..N)\n");
                return ZCLI_EXIT_USAGE;
            }
            argv[i] = argv[i + 1] = NULL; /* not node names */
            i++;
        } else if (!zc_node_name_valid(argv[i])) {
            fprintf(err, "zcart: cart node name '%s' is not 1..32 of [A-Za-z0-9_-]\n",
                    zc_escape(argv[i], strlen(argv[i]), e, sizeof e));
            return ZCLI_EXIT_USAGE;
        }
    }
    /* Keys that exist are kept: running it again adds new cart nodes' and
     * replicas' keys. */
    static const char *const fixed[] = {"replica", "stock", "admin", "client"};
    char name[64], file[64], key[ZC_KEY_Z85], path[4200];
    int made = 0, rc = 0;
    for (size_t k = 0; k < 4 && rc >= 0; k++)
        made += (rc = keygen_one(dir, fixed[k], fixed[k], fixed[k], why, sizeof why)) > 0;
    for (int i = 1; i < argc && rc >= 0; i++) {
        if (argv[i] == NULL)
            continue;
        snprintf(file, sizeof file, "cart-%s", argv[i]);
        made += (rc = keygen_one(dir, "cart", argv[i], file, why, sizeof why)) > 0;
    }
    /* Per-replica raft keys: role raft, name the raft id (--raft-cert). */
    for (long id = 1; id <= replicas && rc >= 0; id++) {
        snprintf(name, sizeof name, "%ld", id);
        snprintf(file, sizeof file, "raft-%ld", id);
        made += (rc = keygen_one(dir, "raft", name, file, why, sizeof why)) > 0;
    }
    snprintf(path, sizeof path, "%s/replica.cert", dir);
    if (rc < 0 || zc_sec_key_arg(path, key, why, sizeof why) != 0) {
        fprintf(err, "zcart: keygen: %s\n", why);
        return ZCLI_EXIT_UNREACHABLE;
    }
    fprintf(out,
            "%d new key(s) in %s (replica, stock, admin, client, cart-NODE, raft-ID; "
            "existing ones kept); allow-lists in %s/allow\nZCART_SERVER_KEY=%s\n",
            made, dir, dir, key);
    return ZCLI_EXIT_OK;
}

/* Fills o's keys from --server-key/--cert or $ZCART_SERVER_KEY/$ZCART_CERT;
 * keys[] holds the strings.  false with why when secure and missing. */
static bool client_keys(const cli_args_t *a, zcart_options_t *o, char keys[3][ZC_KEY_Z85],
                        char *why, size_t n)
{
    const char *env = getenv("ZCART_INSECURE");
    if (a->insecure || (env && strcmp(env, "1") == 0)) {
        zc_warn("*** INSECURE: --insecure (or ZCART_INSECURE=1): plain connections, no server "
                "key ***");
        return true;
    }
    const char *sk = a->server_key ? a->server_key : getenv("ZCART_SERVER_KEY");
    const char *cert = a->cert ? a->cert : getenv("ZCART_CERT");
    if (sk == NULL || *sk == 0 || cert == NULL || *cert == 0) {
        snprintf(why, n,
                 "secure by default: give --server-key KEY and --cert FILE (or set "
                 "ZCART_SERVER_KEY and ZCART_CERT, e.g. from RUN/env), or --insecure");
        return false;
    }
    if (zc_sec_client_keys(sk, cert, keys[0], keys[1], keys[2], why, n) != 0)
        return false;
    o->server_key = keys[0];
    o->public_key = keys[1];
    o->secret_key = keys[2];
    return true;
}

/* The command's arguments, props (admin), brokers and session, checked
 * before anything connects; false and why on a usage error. */
static bool check_command(const cli_args_t *a, zcart_prop_t props[4], size_t *n_props,
                          const char **brokers, const char **session, char *why, size_t cap)
{
    if (strcmp(a->cmd, "add") == 0 || strcmp(a->cmd, "remove") == 0) {
        uint32_t qty;
        if (!item_args(a->args[0], a->args[1], &qty, why, cap))
            return false;
    }
    if (strcmp(a->cmd, "admin") == 0 && !admin_props(a, props, n_props, why, cap))
        return false;
    *brokers = a->brokers ? a->brokers : getenv("ZCART_BROKERS");
    if (*brokers == NULL || **brokers == 0) {
        snprintf(why, cap, "no brokers: give --brokers EP,... or set ZCART_BROKERS");
        return false;
    }
    if (!zcart_brokers_check(*brokers, why, cap))
        return false;
    *session = a->session;
    if (*session == NULL) {
        *session = getenv("ZCART_SESSION");
        if (*session && **session == 0)
            *session = NULL;
    }
    uint8_t id[ZC_SESSION_LEN];
    if (*session && !zc_session_parse(*session, id)) {
        snprintf(why, cap, "the session id must be 32 hex digits, not all zero");
        return false;
    }
    if (*session == NULL && (strcmp(a->cmd, "remove") == 0 || strcmp(a->cmd, "list") == 0 ||
                             strcmp(a->cmd, "close") == 0 || strcmp(a->cmd, "keepalive") == 0)) {
        snprintf(why, cap, "%s needs a session: give --session ID or set ZCART_SESSION", a->cmd);
        return false;
    }
    return true;
}

int zcli_run(int argc, char **argv, FILE *in, FILE *out, FILE *err)
{
    char why[200];
    cli_args_t a;
    cli_t c = {.out = out, .err = err};
    if (argc >= 2 && strcmp(argv[1], "keygen") == 0)
        return keygen(argc - 2, argv + 2, out, err);
    int code;
    /* Usage errors honour --json wherever it appears. */
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--json") == 0)
            c.json = true;
    if (parse_args(argc, argv, &a, why, sizeof why) != 0)
        return usage_error(&c, why, false);
    c.json = a.json;
    if (a.help) {
        fputs(HELP, out);
        fflush(out);
        return ZCLI_EXIT_OK;
    }
    zc_log_set_name("zcart");
    zc_log_threshold = a.verbose ? ZC_LOG_DEBUG : ZC_LOG_WARN;
    zcart_prop_t props[4];
    size_t n_props = 0;
    const char *brokers, *session;
    if (!check_command(&a, props, &n_props, &brokers, &session, why, sizeof why))
        return usage_error(&c, why, false);
    bool admin = strcmp(a.cmd, "admin") == 0;
    zcart_options_t o = {0};
    char keys[3][ZC_KEY_Z85];
    if (!client_keys(&a, &o, keys, why, sizeof why))
        return usage_error(&c, why, false);
    o.total_timeout_ms = a.timeout_ms;
    if (strcmp(a.cmd, "shell") == 0) /* the shell's sessions keep themselves alive */
        o.keepalive_ms = a.keepalive_ms < 0 ? ZCLI_DEFAULT_KEEPALIVE_MS : a.keepalive_ms;
    c.z = zcart_new(brokers, &o);
    if (c.z == NULL) {
        fprintf(err, "zcart: cannot start the client: %s\n", strerror(errno));
        return ZCLI_EXIT_UNREACHABLE;
    }
    if (session) {
        c.s = zcart_session_attach(c.z, session);
        if (c.s == NULL) {
            fprintf(err, "zcart: out of memory\n");
            code = ZCLI_EXIT_UNREACHABLE;
            goto out;
        }
    }
    if (strcmp(a.cmd, "shell") == 0) {
        code = shell(&c, in);
    } else if (admin) {
        zcart_result_t r = {0};
        int rc = zcart_admin(c.z, a.args[0], props, n_props, &r);
        zcli_print_admin(c.out, c.json, a.args[0], rc, &r);
        code = zcli_exit_code(rc, &r);
        zcart_result_clear(&r);
    } else {
        code = run_command(&c, a.cmd, a.args, false);
    }
out:
    zcart_session_destroy(&c.s);
    zcart_destroy(&c.z);
    return code;
}
