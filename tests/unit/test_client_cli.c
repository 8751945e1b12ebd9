/* test_client_cli: whole zcart commands, in-process, against fake replicas.
 *
 * Each zcli_run call stands for one CLI process (fresh zcart_t, fresh
 * session object), so a session passed along with --session across calls
 * is exactly what a shell script does.  Checked: stdout carries one result
 * per command and nothing else, exit statuses, the session line, seqs that
 * keep increasing across "processes", status --json, the shell, and that
 * session objects renew their lease on their own when asked to. */
#include "test_client_fake.c"

#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

#include "client/cli.h"
#include "client/zcart.h"
#include "unit.h"

static void *ctx;

/* One run's outcome. */
typedef struct {
    int code;  /* exit status */
    char *out; /* stdout (owned) */
    char *err; /* stderr (owned) */
} run_t;

/* Run `zcart args...` (NULL-terminated) with stdin `input`. */
static run_t cli(const char *input, ...)
{
    char *argv[32] = {"zcart", "--insecure"}; /* the fake replicas speak plain ZeroMQ */
    int argc = 2;
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

static bool starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* The value of "key":"..." in a JSON line, copied to out. */
static bool json_str(const char *json, const char *key, char *out, size_t n)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = strstr(json, pat);
    if (p == NULL)
        return false;
    p += strlen(pat);
    const char *q = strchr(p, '"');
    if (q == NULL || (size_t)(q - p) >= n)
        return false;
    memcpy(out, p, (size_t)(q - p));
    out[q - p] = 0;
    return true;
}

TEST(session_across_processes)
{
    fake_t *a = fake_start(ctx, (const int[]){ACT_OK, 0});
    run_t r = cli("", "--brokers", a->endpoint, "--json", "add", "apple", "3", NULL);
    CHECK_EQ_U64(r.code, 0);
    CHECK_EQ_U64(lines(r.out), 1);
    CHECK(starts(r.out, "{\"ok\":true,\"op\":\"add\",\"session\":\""));
    CHECK(strstr(r.out, "\"new_session\":true") != NULL);
    CHECK(strstr(r.out, "\"reason\":\"OK\",\"detail\":\"\",\"cart\":\"n1.0\",\"generation\":7,"
                        "\"items\":[{\"product\":\"apple\",\"qty\":3}],\"replica_id\":1,\"term\":3,"
                        "\"attempts\":1}\n") != NULL);
    CHECK_STR(r.err, "");
    char sid[40];
    CHECK(json_str(r.out, "session", sid, sizeof sid));
    CHECK_EQ_U64(strlen(sid), 32);
    run_free(&r);
    setenv("ZCART_BROKERS", a->endpoint, 1);
    r = cli("", "--session", sid, "list", NULL);
    CHECK_EQ_U64(r.code, 0);
    CHECK_STR(r.out, "OK cart n1.0 gen 7: empty\n");
    run_free(&r);
    setenv("ZCART_SESSION", sid, 1);
    r = cli("", "remove", "apple", "1", NULL);
    CHECK_EQ_U64(r.code, 0);
    CHECK_STR(r.out, "OK cart n1.0 gen 7: apple x1\n");
    run_free(&r);
    r = cli("", "--json", "close", NULL);
    CHECK_EQ_U64(r.code, 0);
    CHECK(strstr(r.out, "\"op\":\"close\"") != NULL);
    CHECK(strstr(r.out, "\"new_session\":false") != NULL);
    run_free(&r);
    unsetenv("ZCART_SESSION");
    unsetenv("ZCART_BROKERS");
    CHECK_EQ_U64(fake_seen(a), 4);
    for (int i = 1; i < 4; i++) {
        CHECK(memcmp(a->sessions[i], a->sessions[0], 16) == 0);
        CHECK(a->seqs[i] > a->seqs[i - 1]);
    }
    CHECK_EQ_U64(a->ops[0], ZC_OP_ADD);
    CHECK_EQ_U64(a->ops[1], ZC_OP_LIST);
    CHECK_EQ_U64(a->ops[2], ZC_OP_REMOVE);
    CHECK_EQ_U64(a->ops[3], ZC_OP_CLOSE);
    fake_stop(&a);
}

TEST(text_add_prints_session_line)
{
    fake_t *a = fake_start(ctx, (const int[]){ACT_OK, 0});
    run_t r = cli("", "--brokers", a->endpoint, "add", "pear", "2", NULL);
    CHECK_EQ_U64(r.code, 0);
    CHECK_EQ_U64(lines(r.out), 2);
    CHECK(starts(r.out, "session "));
    CHECK(strstr(r.out, "\nOK cart n1.0 gen 7: pear x2\n") == r.out + 8 + 32);
    run_free(&r);
    fake_stop(&a);
}

TEST(ko_and_unreachable_exit_codes)
{
    fake_t *a = fake_start(ctx, (const int[]){ACT_KO, 0});
    run_t r = cli("", "--brokers", a->endpoint, "--session", "0123456789abcdef0123456789abcdef",
                  "add", "pear", "5", NULL);
    CHECK_EQ_U64(r.code, 1);
    CHECK_STR(r.out, "KO OUT_OF_STOCK: only 2 left\n");
    run_free(&r);
    r = cli("", "--brokers", a->endpoint, "--json", "add", "pear", "5", NULL);
    CHECK_EQ_U64(r.code, 1);
    CHECK(strstr(r.out, "{\"ok\":false,") == r.out);
    CHECK(strstr(r.out, "\"reason\":\"OUT_OF_STOCK\",\"detail\":\"only 2 left\",\"status\":4,") !=
          NULL);
    run_free(&r);
    fake_stop(&a);
    fake_t *s = fake_start(ctx, (const int[]){ACT_SILENT, 0});
    r = cli("", "--brokers", s->endpoint, "--timeout", "300", "--json", "add", "pear", "5", NULL);
    CHECK_EQ_U64(r.code, 3);
    CHECK_EQ_U64(lines(r.out), 1);
    CHECK(strstr(r.out, "\"reason\":\"UNREACHABLE\"") != NULL);
    CHECK(strstr(r.out, "\"in_doubt\":true}") != NULL);
    CHECK(strstr(r.out, "\"session\":\"") != NULL); /* so it can be closed later */
    run_free(&r);
    fake_stop(&s);
}

TEST(cli_fails_over)
{
    fake_t *b = fake_start(ctx, (const int[]){ACT_OK, 0});
    fake_t *a = fake_start(ctx, (const int[]){ACT_REDIRECT, 0});
    snprintf(a->redirect, sizeof a->redirect, "%s", b->endpoint);
    char eps[200];
    snprintf(eps, sizeof eps, "tcp://127.0.0.1:1,%s", a->endpoint);
    run_t r = cli("", "--brokers", eps, "--json", "add", "apple", "1", NULL);
    CHECK_EQ_U64(r.code, 0);
    CHECK(strstr(r.out, "\"ok\":true") != NULL);
    CHECK_EQ_U64(fake_seen(a), 1);
    CHECK_EQ_U64(fake_seen(b), 1);
    CHECK_EQ_U64(a->seqs[0], b->seqs[0]);
    run_free(&r);
    fake_stop(&a);
    fake_stop(&b);
}

TEST(status_command)
{
    fake_t *a = fake_start(ctx, (const int[]){ACT_OK, 0});
    fake_t *b = fake_start(ctx, (const int[]){ACT_OK, 0});
    const char *pa[][2] = {{"id", "1"},          {"endpoint", a->endpoint}, {"role", "leader"},
                           {"term", "2"},        {"commit_index", "9"},     {"applied_index", "9"},
                           {"digest", "00000000000000ff"},  {"leader_id", "1"},
                           {"carts_total", "4"}, {"carts_free", "3"},       {"carts_assigned", "1"},
                           {"carts_draining", "0"}, {"sessions_live", "1"}, {"new_thing", "x y"}};
    for (size_t i = 0; i < sizeof pa / sizeof *pa; i++)
        fake_prop(a, pa[i][0], pa[i][1]);
    fake_prop(b, "id", "2");
    fake_prop(b, "endpoint", b->endpoint);
    fake_prop(b, "role", "follower");
    fake_prop(b, "carts_total", "99");
    char eps[200];
    snprintf(eps, sizeof eps, "%s,%s,tcp://127.0.0.1:1", b->endpoint, a->endpoint);
    run_t r = cli("", "--brokers", eps, "--json", "status", NULL);
    CHECK_EQ_U64(r.code, 0);
    CHECK_EQ_U64(lines(r.out), 1);
    CHECK(starts(r.out, "{\"ok\":true,\"replicas\":[{\"id\":2,"));
    CHECK(strstr(r.out, "\"role\":\"leader\",\"term\":2,\"commit_index\":9,\"applied_index\":9,"
                        "\"digest\":\"00000000000000ff\",\"reachable\":true,") != NULL);
    CHECK(strstr(r.out, "\"sessions_live\":1,\"new_thing\":\"x y\"}") != NULL);
    CHECK(strstr(r.out, "\"reachable\":false,\"contacted\":\"tcp://127.0.0.1:1\"") != NULL);
    CHECK(strstr(r.out, "\"carts\":{\"total\":4,\"free\":3,\"assigned\":1,\"draining\":0}") != NULL);
    run_free(&r);
    r = cli("", "--brokers", eps, "status", NULL);
    CHECK_EQ_U64(r.code, 0);
    CHECK(starts(r.out, "ID  ENDPOINT"));
    CHECK_EQ_U64(lines(r.out), 5);
    CHECK(strstr(r.out, "connection refused\n") != NULL);
    run_free(&r);
    fake_stop(&a);
    fake_stop(&b);
    r = cli("", "--brokers", "tcp://127.0.0.1:1", "--json", "status", NULL);
    CHECK_EQ_U64(r.code, 3);
    CHECK(starts(r.out, "{\"ok\":false,\"reason\":\"UNREACHABLE\""));
    run_free(&r);
}

TEST(admin_commands)
{
    fake_t *b = fake_start(ctx, (const int[]){ACT_OK, 0});
    fake_t *a = fake_start(ctx, (const int[]){ACT_REDIRECT, 0});
    snprintf(a->redirect, sizeof a->redirect, "%s", b->endpoint);
    fake_prop(b, "unused", "x");
    char eps[200];
    snprintf(eps, sizeof eps, "%s,%s", a->endpoint, b->endpoint);
    run_t r = cli("", "--brokers", eps, "--json", "admin", "add-node", "4",
                  "127.0.0.1:7014,tcp://127.0.0.1:7024,tcp://127.0.0.1:7034", NULL);
    CHECK_EQ_U64(r.code, 0);
    CHECK_EQ_U64(lines(r.out), 1);
    CHECK(starts(r.out, "{\"ok\":true,\"op\":\"admin\",\"command\":\"add-node\",\"reason\":\"OK\""));
    CHECK_STR(b->last_command, "add-node");
    CHECK_STR(b->last_admin_props,
              "id=4 raft=127.0.0.1:7014 client=tcp://127.0.0.1:7024 cart=tcp://127.0.0.1:7034 ");
    CHECK_EQ_U64(a->n_admin, 1); /* redirected, not answered there */
    run_free(&r);
    r = cli("", "--brokers", b->endpoint, "admin", "transfer-leader", NULL);
    CHECK_EQ_U64(r.code, 0);
    CHECK(starts(r.out, "OK "));
    CHECK_STR(b->last_command, "transfer-leader");
    CHECK_STR(b->last_admin_props, "");
    run_free(&r);
    r = cli("", "--brokers", b->endpoint, "admin", "remove-node", "2", "--json", NULL);
    CHECK_EQ_U64(r.code, 0);
    CHECK_STR(b->last_admin_props, "id=2 ");
    run_free(&r);
    fake_stop(&a);
    fake_stop(&b);
    /* A silent leader: the admin command is not resent, its outcome unknown. */
    fake_t *s = fake_start(ctx, (const int[]){ACT_SILENT, 0});
    r = cli("", "--brokers", s->endpoint, "--timeout", "300", "--json", "admin", "transfer-leader",
            "3", NULL);
    CHECK_EQ_U64(r.code, 3);
    CHECK(strstr(r.out, "\"reason\":\"UNREACHABLE\"") != NULL);
    CHECK(strstr(r.out, "\"in_doubt\":true") != NULL);
    CHECK_EQ_U64(s->n_admin, 1);
    run_free(&r);
    fake_stop(&s);
}

/* Count the keepalive REQUESTs (op 5) a fake saw. */
static int keepalives(fake_t *f)
{
    pthread_mutex_lock(&f->mu);
    int n = 0;
    for (int i = 0; i < f->n_seen && i < FAKE_MAX_SEEN; i++)
        n += f->ops[i] == ZC_OP_KEEPALIVE;
    pthread_mutex_unlock(&f->mu);
    return n;
}

TEST(session_objects_keep_their_lease_alive_on_their_own)
{
    fake_t *a = fake_start(ctx, (const int[]){ACT_OK, 0});
    zcart_options_t o = {0};
    o.keepalive_ms = 20;
    zcart_t *z = zcart_new(a->endpoint, &o);
    CHECK(z != NULL);
    zcart_session_t *s = zcart_session_new(z);
    /* Renewed with nothing else sent: wait (with a deadline) for several. */
    for (int i = 0; i < 500 && keepalives(a) < 3; i++)
        usleep(10000);
    CHECK(keepalives(a) >= 3);
    /* A closed session is not kept any more. */
    zcart_result_t r = {0};
    CHECK_EQ_U64(zcart_close(s, &r), ZCART_ANSWERED);
    zcart_result_clear(&r);
    int after_close = keepalives(a);
    usleep(150000);
    CHECK(keepalives(a) <= after_close + 1); /* at most one already under way */
    zcart_session_destroy(&s);
    zcart_destroy(&z);
    /* Default: no keeper, no keepalive. */
    int before = keepalives(a);
    z = zcart_new(a->endpoint, NULL);
    s = zcart_session_new(z);
    usleep(100000);
    CHECK_EQ_U64(keepalives(a), before);
    zcart_session_destroy(&s);
    zcart_destroy(&z);
    fake_stop(&a);
}

TEST(shell_json)
{
    fake_t *a = fake_start(ctx, (const int[]){ACT_OK, 0});
    const char *script = "\n"
                         "list\n"
                         "add apple 1\n"
                         "  list  \n"
                         "# a comment\n"
                         "close\n"
                         "add pear 2\n"
                         "bogus\n"
                         "add pear\n"
                         "add pear 0\n"
                         "help\n"
                         "status\n"
                         "quit\n"
                         "add never 1\n";
    run_t r = cli(script, "--brokers", a->endpoint, "--json", "shell", NULL);
    CHECK_EQ_U64(r.code, 0);
    CHECK_EQ_U64(lines(r.out), 10);
    char *line[10] = {0}, *save = NULL;
    int n = 0;
    for (char *l = strtok_r(r.out, "\n", &save); l && n < 10; l = strtok_r(NULL, "\n", &save))
        line[n++] = l;
    CHECK(n == 10);
    if (n == 10) {
        char s1[40] = "", s2[40] = "", s3[40] = "";
        CHECK(strstr(line[0], "\"reason\":\"USAGE\"") && strstr(line[0], "list needs a session"));
        CHECK(strstr(line[1], "\"op\":\"add\"") && strstr(line[1], "\"new_session\":true"));
        json_str(line[1], "session", s1, sizeof s1);
        CHECK(strstr(line[2], "\"op\":\"list\"") && strstr(line[2], "\"new_session\":false"));
        json_str(line[2], "session", s2, sizeof s2);
        CHECK_STR(s1, s2);
        CHECK(strstr(line[3], "\"op\":\"close\"") && strstr(line[3], "\"ok\":true"));
        CHECK(strstr(line[4], "\"op\":\"add\"") && strstr(line[4], "\"new_session\":true"));
        json_str(line[4], "session", s3, sizeof s3);
        CHECK(strcmp(s1, s3) != 0); /* after close, a new session */
        CHECK(strstr(line[5], "unknown command 'bogus'") != NULL);
        CHECK(strstr(line[6], "add wants PRODUCT QTY") != NULL);
        CHECK(strstr(line[7], "QTY must be") != NULL);
        CHECK(starts(line[8], "{\"ok\":true,\"help\":\"commands: add"));
        CHECK(starts(line[9], "{\"ok\":true,\"replicas\":["));
    }
    CHECK_EQ_U64(fake_seen(a), 4); /* add, list, close, add: and nothing after quit */
    run_free(&r);
    fake_stop(&a);
}

TEST(shell_text_and_exit_status)
{
    fake_t *a = fake_start(ctx, (const int[]){ACT_OK, 0});
    run_t r = cli("add apple 2\nlist\n", "--brokers", a->endpoint, "shell", NULL);
    CHECK_EQ_U64(r.code, 0);
    CHECK(starts(r.out, "session "));
    CHECK(strstr(r.out, "\nOK cart n1.0 gen 7: apple x2\nOK cart n1.0 gen 7: empty\n") != NULL);
    CHECK_EQ_U64(lines(r.out), 3);
    run_free(&r);
    /* A given session is used from the first command. */
    r = cli("list\nexit\n", "--brokers", a->endpoint, "--session",
            "0123456789abcdef0123456789abcdef", "shell", NULL);
    CHECK_EQ_U64(r.code, 0);
    CHECK_STR(r.out, "OK cart n1.0 gen 7: empty\n");
    run_free(&r);
    fake_stop(&a);
    /* The last command got no answer: exit 3. */
    r = cli("status\nadd apple 1\n", "--brokers", "tcp://127.0.0.1:1", "--timeout", "200",
            "shell", NULL);
    CHECK_EQ_U64(r.code, 3);
    CHECK(strstr(r.out, "UNREACHABLE: ") != NULL);
    run_free(&r);
    /* ... but a later answered or usage line resets it. */
    r = cli("add apple 1\nhelp\n", "--brokers", "tcp://127.0.0.1:1", "--timeout", "200", "shell",
            NULL);
    CHECK_EQ_U64(r.code, 0);
    run_free(&r);
}

int main(void)
{
    ctx = zmq_ctx_new();
    unsetenv("ZCART_BROKERS");
    unsetenv("ZCART_SESSION");
    RUN(session_across_processes);
    RUN(text_add_prints_session_line);
    RUN(ko_and_unreachable_exit_codes);
    RUN(cli_fails_over);
    RUN(status_command);
    RUN(admin_commands);
    RUN(session_objects_keep_their_lease_alive_on_their_own);
    RUN(shell_json);
    RUN(shell_text_and_exit_status);
    zmq_ctx_term(ctx);
    return unit_report();
}
