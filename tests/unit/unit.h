/* unit: a minimal test runner for zcart's C unit tests.
 *
 *   TEST(codec_roundtrip) { CHECK(x == 1); CHECK_EQ_U64(a, b); }
 *   int main(void) { RUN(codec_roundtrip); return unit_report(); }
 *
 * A failed CHECK prints file:line and the expression and marks the current
 * test failed (the test goes on, so one run shows every broken check).
 * unit_report prints the closing line "N passed, N failed" and returns the
 * process exit status. */
#ifndef ZC_TESTS_UNIT_H
#define ZC_TESTS_UNIT_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int unit_passed, unit_failed, unit_cur_failed;
static const char *unit_cur;

#define TEST(name) static void name(void)

#define CHECK(cond)                                                                         \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "%s:%d: %s: CHECK(%s) failed\n", __FILE__, __LINE__, unit_cur, #cond); \
            unit_cur_failed = 1;                                                            \
        }                                                                                   \
    } while (0)

#define CHECK_EQ_U64(a, b)                                                                  \
    do {                                                                                    \
        uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b);                                    \
        if (a_ != b_) {                                                                     \
            fprintf(stderr, "%s:%d: %s: %s == %s failed: %" PRIu64 " != %" PRIu64 "\n",     \
                    __FILE__, __LINE__, unit_cur, #a, #b, a_, b_);                          \
            unit_cur_failed = 1;                                                            \
        }                                                                                   \
    } while (0)

#define CHECK_STR(a, b)                                                                     \
    do {                                                                                    \
        const char *a_ = (a), *b_ = (b);                                                    \
        if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0) {                              \
            fprintf(stderr, "%s:%d: %s: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__,     \
                    __LINE__, unit_cur, #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)");    \
            unit_cur_failed = 1;                                                            \
        }                                                                                   \
    } while (0)

#define RUN(name)                                                                           \
    do {                                                                                    \
        unit_cur = #name;                                                                   \
        unit_cur_failed = 0;                                                                \
        name();                                                                             \
        if (unit_cur_failed) {                                                              \
            unit_failed++;                                                                  \
            fprintf(stderr, "FAIL %s\n", #name);                                            \
        } else {                                                                            \
            unit_passed++;                                                                  \
            fprintf(stderr, "ok   %s\n", #name);                                            \
        }                                                                                   \
    } while (0)

static inline int unit_report(void)
{
    printf("%d passed, %d failed\n", unit_passed, unit_failed);
    return unit_failed ? 1 : 0;
}

#endif
