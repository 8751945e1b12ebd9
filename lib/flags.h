/* flags: command-line flags from one table, and the --help text from the
 * same table.
 *
 * A daemon describes each flag once -- name, argument, kind, bounds, where
 * the value goes, help text -- and gets parsing (GNU getopt_long rules:
 * `--name VALUE`, `--name=VALUE`, unambiguous prefixes), range checks with
 * errors that name the flag and its bounds, and the help listing:
 *
 *   static const zc_flag_t flags[] = {
 *       {"slots", "N", ZC_FLAG_UINT, &cfg.slots, 1, 1024, NULL, "cart slots to host"},
 *       {"insecure", NULL, ZC_FLAG_BOOL, &cfg.insecure, 0, 0, NULL, "no CurveZMQ"},
 *       ZC_FLAGS_END,
 *   };
 *   switch (zc_flags_parse(flags, argc, argv, err, sizeof err)) { ... }
 *
 * A flag given twice keeps the last value, except a ZC_FLAG_CALL flag,
 * whose function sees every occurrence (lists, repeatable flags).  Defaults
 * are whatever the targets hold before parsing: set them in one place.
 * Domain-free: the table knows nothing about what the values mean. */
#ifndef ZC_LIB_FLAGS_H
#define ZC_LIB_FLAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* What a flag's argument is and where it goes. */
typedef enum {
    ZC_FLAG_BOOL, /* a switch (no argument): target is a bool, set true */
    ZC_FLAG_STR,  /* target is a const char *, pointed at the argument (argv's) */
    ZC_FLAG_UINT, /* target is an unsigned, decimal within [min, max] */
    ZC_FLAG_U64,  /* target is a uint64_t, decimal within [min, max] */
    ZC_FLAG_SIZE, /* target is a uint64_t, bytes with an optional K, M or G suffix,
                     within [min, max] */
    ZC_FLAG_CALL, /* call(argument, target) reads it, or says why not */
} zc_flag_kind_t;

/* Read arg into target; NULL when done, else why arg is refused. */
typedef const char *(*zc_flag_call_fn)(const char *arg, void *target);

/* One flag. */
typedef struct {
    const char *name;     /* long name without "--"; NULL ends the table */
    const char *arg;      /* the argument's name in the help ("MS"); NULL for a switch */
    zc_flag_kind_t kind;  /* how the argument is read */
    void *target;         /* where the value goes */
    uint64_t min, max;    /* bounds of a number (UINT, U64, SIZE) */
    zc_flag_call_fn call; /* ZC_FLAG_CALL: reads the argument into target */
    const char *help;     /* the help text; '\n' starts a continuation line */
} zc_flag_t;

#define ZC_FLAGS_END {NULL, NULL, ZC_FLAG_BOOL, NULL, 0, 0, NULL, NULL}

/* What zc_flags_parse found. */
typedef enum {
    ZC_FLAGS_ERROR = -1, /* err says what is wrong (naming the flag) */
    ZC_FLAGS_OK = 0,     /* every flag read */
    ZC_FLAGS_HELP,       /* --help was given: print the help, exit 0 */
} zc_flags_rc_t;

/* Parse argv[1..argc-1] against the table (plus an implicit --help).  An
 * operand (an argument that is not a flag's) is an error: daemons take
 * flags only.  Stops at the first error.  Calls getopt_long: not
 * reentrant. */
zc_flags_rc_t zc_flags_parse(const zc_flag_t *table, int argc, char **argv, char *err,
                             size_t errlen);

/* The flags part of the help: one entry per flag (and --help), the help
 * text aligned in one column. */
void zc_flags_help(FILE *out, const zc_flag_t *table);

/* A byte count with an optional K, M or G suffix (powers of 1024), within
 * [min, max]. */
bool zc_parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* A decimal number within [min, max], nothing else in s. */
bool zc_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

#endif
