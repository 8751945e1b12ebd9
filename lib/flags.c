/* flags: see flags.h.  The table becomes getopt_long's option array (one
 * entry per flag, its index as the value getopt returns), so the GNU rules
 * come for free; every argument is then read by its kind. */
#include "lib/flags.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#define FLAG_BASE 0x100     /* getopt's value for table[i] is FLAG_BASE + i: clear of
                               1 (an operand) and '?' / ':' (errors) */
#define HELP_INDEX 0x7fff0000 /* getopt's value for the implicit --help */

bool zc_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    if (*s < '0' || *s > '9') /* no sign, no space: strtoull would take them */
        return false;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != 0 || v < min || v > max)
        return false;
    *out = v;
    return true;
}

bool zc_parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0)
        return false;
    unsigned shift = 0;
    if (*end == 'K' || *end == 'k')
        shift = 10;
    else if (*end == 'M' || *end == 'm')
        shift = 20;
    else if (*end == 'G' || *end == 'g')
        shift = 30;
    if (shift)
        end++;
    if (*end != 0 || v > (max >> shift))
        return false;
    v <<= shift;
    if (v < min || v > max)
        return false;
    *out = v;
    return true;
}

static size_t table_len(const zc_flag_t *t)
{
    size_t n = 0;
    while (t[n].name != NULL)
        n++;
    return n;
}

/* Read one flag's argument into its target; NULL, or why not. */
static const char *read_arg(const zc_flag_t *f, const char *arg)
{
    uint64_t v;
    switch (f->kind) {
    case ZC_FLAG_BOOL:
        *(bool *)f->target = true;
        return NULL;
    case ZC_FLAG_STR:
        *(const char **)f->target = arg;
        return NULL;
    case ZC_FLAG_UINT:
        if (!zc_parse_u64(arg, f->min, f->max, &v))
            return "wants";
        *(unsigned *)f->target = (unsigned)v;
        return NULL;
    case ZC_FLAG_U64:
        if (!zc_parse_u64(arg, f->min, f->max, &v))
            return "wants";
        *(uint64_t *)f->target = v;
        return NULL;
    case ZC_FLAG_SIZE:
        if (!zc_parse_size(arg, f->min, f->max, &v))
            return "wants";
        *(uint64_t *)f->target = v;
        return NULL;
    case ZC_FLAG_CALL:
        return f->call(arg, f->target);
    }
    return "unknown flag kind";
}

/* "--NAME wants MIN..MAX (got 'ARG')" or "--NAME: WHY (got 'ARG')". */
static void refusal(const zc_flag_t *f, const char *arg, const char *why, char *err,
                    size_t errlen)
{
    if (strcmp(why, "wants") != 0)
        snprintf(err, errlen, "--%s: %s (got '%.64s')", f->name, why, arg);
    else if (f->kind == ZC_FLAG_SIZE)
        snprintf(err, errlen, "--%s wants bytes %llu..%llu, with an optional K, M or G (got '%.64s')",
                 f->name, (unsigned long long)f->min, (unsigned long long)f->max, arg);
    else
        snprintf(err, errlen, "--%s wants %llu..%llu (got '%.64s')", f->name,
                 (unsigned long long)f->min, (unsigned long long)f->max, arg);
}

zc_flags_rc_t zc_flags_parse(const zc_flag_t *table, int argc, char **argv, char *err,
                             size_t errlen)
{
    size_t n = table_len(table);
    struct option *opts = calloc(n + 2, sizeof *opts);
    if (opts == NULL) {
        snprintf(err, errlen, "out of memory");
        return ZC_FLAGS_ERROR;
    }
    for (size_t i = 0; i < n; i++)
        opts[i] = (struct option){table[i].name,
                                  table[i].kind == ZC_FLAG_BOOL ? no_argument : required_argument,
                                  NULL, FLAG_BASE + (int)i};
    opts[n] = (struct option){"help", no_argument, NULL, HELP_INDEX};
    zc_flags_rc_t rc = ZC_FLAGS_OK;
    int o;
    optind = 0; /* 0, not 1: getopt re-initialises (a second parse in one process) */
    opterr = 0;
    while (rc == ZC_FLAGS_OK && (o = getopt_long(argc, argv, "-", opts, NULL)) != -1) {
        if (o == HELP_INDEX) {
            rc = ZC_FLAGS_HELP;
        } else if (o == 1) { /* an operand, in order ("-" in optstring) */
            snprintf(err, errlen, "unexpected argument '%.64s'", optarg);
            rc = ZC_FLAGS_ERROR;
        } else if (o < FLAG_BASE || (size_t)(o - FLAG_BASE) >= n) {
            snprintf(err, errlen, "unknown or incomplete option '%.64s'", argv[optind - 1]);
            rc = ZC_FLAGS_ERROR;
        } else {
            const zc_flag_t *f = &table[o - FLAG_BASE];
            const char *why = read_arg(f, optarg);
            if (why != NULL) {
                refusal(f, optarg, why, err, errlen);
                rc = ZC_FLAGS_ERROR;
            }
        }
    }
    free(opts);
    return rc;
}

/* "  --name ARG" */
static int left_len(const zc_flag_t *f)
{
    return 4 + (int)strlen(f->name) + (f->arg ? 1 + (int)strlen(f->arg) : 0);
}

static void help_entry(FILE *out, const char *name, const char *arg, const char *help, int col)
{
    int len = fprintf(out, "  --%s%s%s", name, arg ? " " : "", arg ? arg : "");
    const char *line = help ? help : "";
    for (bool first = true;; first = false) {
        const char *nl = strchr(line, '\n');
        int pad = first ? (len + 2 > col ? 2 : col - len) : col;
        fprintf(out, "%*s%.*s\n", pad, "", nl ? (int)(nl - line) : (int)strlen(line), line);
        if (nl == NULL)
            break;
        line = nl + 1;
    }
}

void zc_flags_help(FILE *out, const zc_flag_t *table)
{
    int col = 0;
    for (const zc_flag_t *f = table; f->name; f++)
        if (left_len(f) + 2 > col && left_len(f) <= 24)
            col = left_len(f) + 2;
    for (const zc_flag_t *f = table; f->name; f++)
        help_entry(out, f->name, f->arg, f->help, col);
    help_entry(out, "help", NULL, "print this text", col);
}
