/* test_client_args: everything the client checks before sending anything.
 *
 * The CLI runs in-process (zcli_run) with its stdout and stderr captured:
 * every malformed command line must exit 2 without touching the network,
 * print its reason on stderr, and with --json print exactly one USAGE
 * object on stdout.  Also: the library's own checks, option defaults, the
 * seq rule, and that the public status numbers match the protocol table. */
#include <stdarg.h>
#include <stdlib.h>

#include "client/cli.h"
#include "client/internal.h"
#include "client/zcart.h"
#include "proto/status.h"
#include "unit.h"

/* One CLI run's outcome. */
typedef struct {
    int code;  /* exit status */
    char *out; /* stdout (owned) */
    char *err; /* stderr (owned) */
} run_t;

/* Run `zcart args...` (NULL-terminated) with stdin `input`. */
static run_t cli(const char *input, ...)
{
    char *argv[32] = {"zcart"};
    int argc = 1;
    va_list ap;
    va_start(ap, input);
    for (const char *a; (a = va_arg(ap, const char *)) != NULL && argc < 31;)
        argv[argc++] = (char *)a;
    va_end(ap);
    run_t r = {0};
    size_t no, ne;
    FILE *out = open_memstream(&r.out, &no), *err = open_memstream(&r.err, &ne);
    FILE *in = fmemopen((void *)input, strlen(input) + 1, "r");
    r.code = zcli_run(argc, argv, in, out, err);
    fclose(in);
    fclose(out);
    fclose(err);
    return r;
}

static void run_free(run_t *r)
{
    free(r->out);
    free(r->err);
}

#define USAGE_JSON_PREFIX "{\"ok\":false,\"reason\":\"USAGE\",\"detail\":\""

/* Expect exit 2, a JSON usage object whose detail contains `needle`. */
#define CHECK_USAGE(needle, ...)                                                          \
    do {                                                                                  \
        run_t r_ = cli("", "--json", __VA_ARGS__, NULL);                                  \
        CHECK_EQ_U64(r_.code, 2);                                                         \
        CHECK(strncmp(r_.out, USAGE_JSON_PREFIX, strlen(USAGE_JSON_PREFIX)) == 0);         \
        CHECK(strstr(r_.out, needle) != NULL);                                            \
        CHECK(strchr(r_.out, '\n') == r_.out + strlen(r_.out) - 1);                        \
        CHECK(strstr(r_.err, needle) != NULL);                                            \
        run_free(&r_);                                                                    \
    } while (0)

#define B "--brokers", "tcp://127.0.0.1:1"
#define SID "--session", "0123456789abcdef0123456789abcdef"

TEST(cli_usage_errors)
{
    unsetenv("ZCART_BROKERS");
    unsetenv("ZCART_SESSION");
    CHECK_USAGE("no command", B);
    CHECK_USAGE("unknown command 'buy'", B, "buy");
    CHECK_USAGE("unknown option '--bogus'", "--bogus", B, "list");
    CHECK_USAGE("admin wants transfer-leader", B, "admin");
    CHECK_USAGE("admin wants transfer-leader", B, "admin", "reboot");
    CHECK_USAGE("admin remove-node wants ID", B, "admin", "remove-node");
    CHECK_USAGE("admin add-node wants ID RAFT,CLIENT,CART", B, "admin", "add-node", "4");
    CHECK_USAGE("ID must be an integer", B, "admin", "remove-node", "0");
    CHECK_USAGE("ID must be an integer", B, "admin", "transfer-leader", "x");
    CHECK_USAGE("ENDPOINTS must be", B, "admin", "add-node", "4", "127.0.0.1:1,tcp://a");
    CHECK_USAGE("ENDPOINTS must be", B, "admin", "add-node", "4", "a:1,tcp://b,tcp://c,tcp://d");
    CHECK_USAGE("ENDPOINTS must be", B, "admin", "add-node", "4", "a:1,,tcp://c");
    CHECK_USAGE("raft address must be HOST:PORT", B, "admin", "add-node", "4", "a,tcp://b,tcp://c");
    CHECK_USAGE("unexpected argument '5'", B, "admin", "remove-node", "4", "5");
    CHECK_USAGE("add wants PRODUCT QTY", B, "add", "apple");
    CHECK_USAGE("add wants PRODUCT QTY", B, "add");
    CHECK_USAGE("QTY must be", B, "add", "apple", "0");
    CHECK_USAGE("QTY must be", B, "add", "apple", "1000001");
    CHECK_USAGE("QTY must be", B, "add", "apple", "-3");
    CHECK_USAGE("QTY must be", B, "add", "apple", "3x");
    CHECK_USAGE("QTY must be", B, "add", "apple", "");
    CHECK_USAGE("product must be", B, "add", "a,b", "1");
    CHECK_USAGE("product must be", B, "add", "a b", "1");
    CHECK_USAGE("product must be", B, "add", "", "1");
    CHECK_USAGE("product must be", B, SID, "remove",
                "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "1");
    CHECK_USAGE("no brokers", "add", "apple", "1");
    CHECK_USAGE("no brokers", "--brokers", "", "add", "apple", "1");
    CHECK_USAGE("bad broker endpoint", "--brokers", "localhost:7021", "add", "apple", "1");
    CHECK_USAGE("--brokers wants a value", "status", "--brokers");
    CHECK_USAGE("list needs a session", B, "list");
    CHECK_USAGE("close needs a session", B, "close");
    CHECK_USAGE("remove needs a session", B, "remove", "apple", "1");
    CHECK_USAGE("32 hex digits", B, "--session", "xyz", "list");
    CHECK_USAGE("32 hex digits", B, "--session", "00000000000000000000000000000000", "list");
    CHECK_USAGE("--timeout wants", B, "--timeout", "0", "status");
    CHECK_USAGE("--timeout wants", B, "--timeout=abc", "status");
    CHECK_USAGE("unexpected argument 'extra'", B, "list", "extra");
    CHECK_USAGE("unexpected argument", B, "add", "apple", "1", "2");
    /* Environment defaults are checked the same way. */
    setenv("ZCART_SESSION", "nothex", 1);
    CHECK_USAGE("32 hex digits", B, "list");
    unsetenv("ZCART_SESSION");
    setenv("ZCART_BROKERS", "garbage", 1);
    CHECK_USAGE("bad broker endpoint", "status");
    unsetenv("ZCART_BROKERS");
}

TEST(cli_usage_text_mode)
{
    run_t r = cli("", B, "add", "apple", "zero", NULL);
    CHECK_EQ_U64(r.code, 2);
    CHECK_STR(r.out, ""); /* text mode: the complaint goes to stderr only */
    CHECK(strstr(r.err, "zcart: QTY must be") == r.err);
    CHECK(strstr(r.err, "--help") != NULL);
    run_free(&r);
    r = cli("", NULL);
    CHECK_EQ_U64(r.code, 2);
    run_free(&r);
}

TEST(cli_help)
{
    run_t r = cli("", "--help", NULL);
    CHECK_EQ_U64(r.code, 0);
    const char *first = "usage: zcart [--brokers EP,EP...] [--session ID] [--json] [--timeout MS] "
                        "COMMAND [ARGS]\n";
    CHECK(strncmp(r.out, first, strlen(first)) == 0);
    for (const char *w = "add\0remove\0list\0close\0status\0shell\0--brokers\0--session\0--json\0"
                         "--timeout\0ZCART_BROKERS\0ZCART_SESSION\0Exit status\0";
         *w; w += strlen(w) + 1)
        CHECK(strstr(r.out, w) != NULL);
    CHECK_STR(r.err, "");
    run_free(&r);
    r = cli("", "-h", NULL);
    CHECK_EQ_U64(r.code, 0);
    run_free(&r);
}

/* Secure by default: without a server key and a certificate (flags or
 * $ZCART_SERVER_KEY/$ZCART_CERT) nothing is sent, unless --insecure. */
TEST(cli_secure_by_default)
{
    unsetenv("ZCART_SERVER_KEY");
    unsetenv("ZCART_CERT");
    unsetenv("ZCART_INSECURE");
    run_t r = cli("", "--brokers", "tcp://127.0.0.1:1", "add", "apple", "1", NULL);
    CHECK_EQ_U64(r.code, 2);
    CHECK(strstr(r.err, "secure by default") != NULL);
    run_free(&r);
    r = cli("", "--brokers", "tcp://127.0.0.1:1", "--server-key", "short", "--cert", "/nonexistent",
            "add", "apple", "1", NULL);
    CHECK_EQ_U64(r.code, 2);
    run_free(&r);
    r = cli("", "keygen", NULL);
    CHECK_EQ_U64(r.code, 2);
    run_free(&r);
}

/* Options after the command's arguments; a product that looks like a flag. */
TEST(cli_option_positions)
{
    /* Port 1 refuses: exit 3 proves the parse went through. */
    run_t r = cli("", "add", "apple", "1", "--brokers", "tcp://127.0.0.1:1", "--json",
                  "--timeout", "200", "--insecure", NULL);
    CHECK_EQ_U64(r.code, 3);
    CHECK(strstr(r.out, "\"reason\":\"UNREACHABLE\"") != NULL);
    run_free(&r);
    r = cli("", B, "--insecure", "--timeout", "200", "--json", "add", "--json", "1", NULL);
    CHECK_EQ_U64(r.code, 3); /* "--json" was the product */
    run_free(&r);
    r = cli("", B, "--timeout=200", "--", "list", NULL);
    CHECK_EQ_U64(r.code, 2); /* parsed, but list needs a session */
    run_free(&r);
}

TEST(library_checks)
{
    char why[128];
    CHECK(zcart_item_check("apple", 1, why, sizeof why));
    CHECK(zcart_item_check("!~", 1000000, NULL, 0));
    CHECK(!zcart_item_check("apple", 0, why, sizeof why));
    CHECK(strstr(why, "qty") != NULL);
    CHECK(!zcart_item_check("apple", -1, NULL, 0));
    CHECK(!zcart_item_check("apple", 1000001, NULL, 0));
    CHECK(!zcart_item_check("tab\there", 1, NULL, 0));
    CHECK(!zcart_item_check(NULL, 1, NULL, 0));
    CHECK_STR(zcart_rc_name(ZCART_EUNREACHABLE), "UNREACHABLE");
    CHECK_STR(zcart_status_name(4), "OUT_OF_STOCK");
    zcart_options_t o;
    zcart_options_default(&o);
    CHECK_EQ_U64(o.attempt_timeout_ms, 1000);
    CHECK_EQ_U64(o.total_timeout_ms, 5000);
    CHECK_EQ_U64(o.backoff_ms, 50);
    CHECK(o.zmq_context == NULL && !o.no_deadline);
    /* A zero struct means the defaults. */
    zcart_t *z = zcart_new("tcp://127.0.0.1:1", &(zcart_options_t){0});
    CHECK(z != NULL);
    CHECK_EQ_U64(z->opt.attempt_timeout_ms, 1000);
    CHECK_EQ_U64(z->opt.backoff_max_ms, 500);
    CHECK(zcart_session_attach(z, "0123") == NULL);
    zcart_session_t *s = zcart_session_attach(z, "0123456789ABCDEF0123456789abcdef");
    CHECK(s != NULL);
    CHECK_STR(zcart_session_id(s), "0123456789abcdef0123456789abcdef");
    CHECK_EQ_U64(zcart_session_last_seq(s), 0);
    zcart_session_destroy(&s);
    zcart_session_t *s1 = zcart_session_new(z), *s2 = zcart_session_new(z);
    CHECK(strcmp(zcart_session_id(s1), zcart_session_id(s2)) != 0);
    CHECK_EQ_U64(strlen(zcart_session_id(s1)), 32);
    zcart_session_destroy(&s1);
    zcart_session_destroy(&s2);
    zcart_destroy(&z);
    zcart_destroy(&z); /* destroying NULL is a no-op */
}

/* seq = max(last + 1, now_us): increasing in one process, and across
 * processes that share a session as long as the clock moves forward. */
TEST(seq_rule)
{
    CHECK_EQ_U64(zcart__next_seq(0, 1000), 1000);
    CHECK_EQ_U64(zcart__next_seq(1000, 1000), 1001);
    CHECK_EQ_U64(zcart__next_seq(5000, 1000), 5001); /* clock behind: still grows */
    CHECK_EQ_U64(zcart__next_seq(5000, 9000), 9000); /* another process went first */
    uint64_t last = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t s = zcart__next_seq(last, zcart__wall_us());
        CHECK(s > last);
        last = s;
    }
    /* A fresh process (last = 0) after this one starts above what it sent,
     * give or take the microseconds burnt above. */
    CHECK(zcart__next_seq(0, zcart__wall_us()) + 1000 > last);
}

TEST(status_numbers_match_protocol)
{
    CHECK_EQ_U64(ZCART_STATUS_OK, ZC_OK);
    CHECK_EQ_U64(ZCART_STATUS_NOT_LEADER, ZC_NOT_LEADER);
    CHECK_EQ_U64(ZCART_STATUS_NO_FREE_CART, ZC_NO_FREE_CART);
    CHECK_EQ_U64(ZCART_STATUS_OUT_OF_STOCK, ZC_OUT_OF_STOCK);
    CHECK_EQ_U64(ZCART_STATUS_SESSION_EXPIRED, ZC_SESSION_EXPIRED);
    CHECK_EQ_U64(ZCART_STATUS_EXPIRED, ZC_EXPIRED);
    CHECK_EQ_U64(ZCART_STATUS_SESSION_CLOSED, ZC_SESSION_CLOSED);
    CHECK_EQ_U64(ZCART_STATUS_CART_LOST, ZC_CART_LOST);
    CHECK_EQ_U64(ZCART_STATUS_INTERNAL, ZC_INTERNAL);
    CHECK_EQ_U64(ZCART_STATUS_UNAVAILABLE, ZC_UNAVAILABLE);
    CHECK_EQ_U64(ZCART_STATUS_STORAGE_FULL, ZC_STORAGE_FULL);
    CHECK_EQ_U64(ZCART_STATUS_BUSY, ZC_BUSY);
    CHECK_EQ_U64(ZCART_STATUS_FORBIDDEN, ZC_FORBIDDEN);
    CHECK_EQ_U64(ZCART_STATUS_FORBIDDEN + 1, ZC_STATUS_COUNT);
    CHECK_EQ_U64(ZCART_PRODUCT_MAX, ZC_PRODUCT_MAX);
    CHECK_EQ_U64(ZCART_DETAIL_MAX, ZC_DETAIL_MAX);
    CHECK_EQ_U64(ZCART_CART_MAX, ZC_CART_MAX);
}

int main(void)
{
    RUN(cli_usage_errors);
    RUN(cli_usage_text_mode);
    RUN(cli_help);
    RUN(cli_option_positions);
    RUN(cli_secure_by_default);
    RUN(library_checks);
    RUN(seq_rule);
    RUN(status_numbers_match_protocol);
    return unit_report();
}
