/* test_flags: lib/flags -- every kind read into its target, bounds and
 * junk refused with the flag named, --help, repeatable flags, and the help
 * text built from the table. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "lib/flags.h"
#include "unit.h"

/* The parsed values of one run; defaults set before parsing. */
typedef struct {
    bool insecure;
    const char *data;
    unsigned slots;
    uint64_t id;
    uint64_t map;
    unsigned n_peers;
    char peers[4][16];
} conf_t;

static const char *add_peer(const char *arg, void *target)
{
    conf_t *c = target;
    if (strlen(arg) >= sizeof c->peers[0])
        return "a peer name is at most 15 characters";
    if (c->n_peers == 4)
        return "at most 4 peers";
    strcpy(c->peers[c->n_peers++], arg);
    return NULL;
}

static conf_t conf;
static const zc_flag_t table[] = {
    {"insecure", NULL, ZC_FLAG_BOOL, &conf.insecure, 0, 0, NULL, "no keys"},
    {"data", "DIR", ZC_FLAG_STR, &conf.data, 0, 0, NULL, "data directory"},
    {"slots", "N", ZC_FLAG_UINT, &conf.slots, 1, 1024, NULL, "slots to host\n(default 4)"},
    {"id", "ID", ZC_FLAG_U64, &conf.id, 1, 1000000, NULL, "replica id"},
    {"map-size", "BYTES", ZC_FLAG_SIZE, &conf.map, 256 << 10, (uint64_t)1 << 40, NULL, "map"},
    {"peer", "NAME", ZC_FLAG_CALL, &conf, 0, 0, add_peer, "a peer, repeatable"},
    ZC_FLAGS_END,
};

/* Parse a NULL-terminated argument list (argv[0] is added). */
static zc_flags_rc_t parse(char *err, size_t errlen, ...)
{
    char *argv[32] = {"prog"};
    int argc = 1;
    va_list ap;
    va_start(ap, errlen);
    for (char *a; argc < 31 && (a = va_arg(ap, char *)) != NULL;)
        argv[argc++] = a;
    va_end(ap);
    memset(&conf, 0, sizeof conf);
    conf.slots = 4; /* a default */
    err[0] = 0;
    return zc_flags_parse(table, argc, argv, err, errlen);
}

TEST(every_kind_reaches_its_target)
{
    char err[256];
    CHECK(parse(err, sizeof err, "--insecure", "--data", "/tmp/x", "--slots=16", "--id", "7",
                "--map-size", "2M", "--peer", "a", "--peer=b", NULL) == ZC_FLAGS_OK);
    CHECK(conf.insecure);
    CHECK_STR(conf.data, "/tmp/x");
    CHECK_EQ_U64(conf.slots, 16);
    CHECK_EQ_U64(conf.id, 7);
    CHECK_EQ_U64(conf.map, 2u << 20);
    CHECK_EQ_U64(conf.n_peers, 2);
    CHECK_STR(conf.peers[1], "b");
    CHECK_STR(err, "");
}

TEST(defaults_stay_when_not_given)
{
    char err[256];
    CHECK(parse(err, sizeof err, "--data", "d", NULL) == ZC_FLAGS_OK);
    CHECK_EQ_U64(conf.slots, 4);
    CHECK(!conf.insecure);
}

TEST(bounds_and_junk_are_refused_with_the_flag_named)
{
    char err[256];
    CHECK(parse(err, sizeof err, "--slots", "0", NULL) == ZC_FLAGS_ERROR);
    CHECK_STR(err, "--slots wants 1..1024 (got '0')");
    CHECK(parse(err, sizeof err, "--slots", "1025", NULL) == ZC_FLAGS_ERROR);
    CHECK(parse(err, sizeof err, "--slots", "-1", NULL) == ZC_FLAGS_ERROR);
    CHECK(parse(err, sizeof err, "--slots", " 5", NULL) == ZC_FLAGS_ERROR);
    CHECK(parse(err, sizeof err, "--slots", "5x", NULL) == ZC_FLAGS_ERROR);
    CHECK(parse(err, sizeof err, "--slots", "", NULL) == ZC_FLAGS_ERROR);
    CHECK(parse(err, sizeof err, "--id", "99999999999999999999999", NULL) == ZC_FLAGS_ERROR);
    CHECK(parse(err, sizeof err, "--map-size", "1K", NULL) == ZC_FLAGS_ERROR);
    CHECK(strstr(err, "--map-size wants bytes") == err);
    CHECK(parse(err, sizeof err, "--map-size", "2T", NULL) == ZC_FLAGS_ERROR);
    CHECK(parse(err, sizeof err, "--map-size", "17179869184G", NULL) == ZC_FLAGS_ERROR);
    CHECK(parse(err, sizeof err, "--peer", "a-very-long-peer-name", NULL) == ZC_FLAGS_ERROR);
    CHECK_STR(err, "--peer: a peer name is at most 15 characters (got 'a-very-long-peer-name')");
}

TEST(unknown_missing_and_operands_are_refused)
{
    char err[256];
    CHECK(parse(err, sizeof err, "--nope", NULL) == ZC_FLAGS_ERROR);
    CHECK_STR(err, "unknown or incomplete option '--nope'");
    CHECK(parse(err, sizeof err, "--data", NULL) == ZC_FLAGS_ERROR);
    CHECK(strstr(err, "--data") != NULL);
    CHECK(parse(err, sizeof err, "--insecure=yes", NULL) == ZC_FLAGS_ERROR);
    CHECK(parse(err, sizeof err, "stray", NULL) == ZC_FLAGS_ERROR);
    CHECK_STR(err, "unexpected argument 'stray'");
    /* The parser can run again in one process (getopt state reset). */
    CHECK(parse(err, sizeof err, "--slots", "3", NULL) == ZC_FLAGS_OK);
    CHECK_EQ_U64(conf.slots, 3);
}

TEST(help_is_asked_and_built_from_the_table)
{
    char err[256];
    CHECK(parse(err, sizeof err, "--slots", "3", "--help", NULL) == ZC_FLAGS_HELP);
    CHECK(parse(err, sizeof err, "--he", NULL) == ZC_FLAGS_HELP); /* a GNU prefix */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    zc_flags_help(f, table);
    fclose(f);
    /* The column: the longest "  --name ARG" (map-size, 18) plus two. */
    CHECK(strstr(text, "  --insecure        no keys\n") != NULL);
    CHECK(strstr(text, "  --slots N         slots to host\n"
                       "                    (default 4)\n") != NULL);
    CHECK(strstr(text, "  --map-size BYTES  map\n") != NULL);
    CHECK(strstr(text, "  --help            print this text\n") != NULL);
    if (unit_cur_failed)
        fputs(text, stderr);
    free(text);
}

TEST(size_and_number_helpers)
{
    uint64_t v;
    CHECK(zc_parse_size("1G", 0, UINT64_MAX, &v) && v == (uint64_t)1 << 30);
    CHECK(zc_parse_size("512k", 0, UINT64_MAX, &v) && v == 512u << 10);
    CHECK(zc_parse_size("4096", 0, UINT64_MAX, &v) && v == 4096);
    CHECK(!zc_parse_size("4096B", 0, UINT64_MAX, &v));
    CHECK(!zc_parse_size("G", 0, UINT64_MAX, &v));
    CHECK(zc_parse_u64("0", 0, 5, &v) && v == 0);
    CHECK(!zc_parse_u64("+1", 0, 5, &v));
    CHECK(!zc_parse_u64("6", 0, 5, &v));
}

int main(void)
{
    RUN(every_kind_reaches_its_target);
    RUN(defaults_stay_when_not_given);
    RUN(bounds_and_junk_are_refused_with_the_flag_named);
    RUN(unknown_missing_and_operands_are_refused);
    RUN(help_is_asked_and_built_from_the_table);
    RUN(size_and_number_helpers);
    return unit_report();
}
