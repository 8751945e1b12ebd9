/* test_stock_inventory: catalog parsing and inventory lookups. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stock/inventory.h"
#include "unit.h"

static char root[128];
static int seq;

static const char *write_file(const char *text)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/cat%d.csv", root, seq++);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static inventory_t *fresh(void)
{
    char dir[256], err[256];
    snprintf(dir, sizeof dir, "%s/inv%d", root, seq++);
    inventory_t *inv = inventory_open(dir, err, sizeof err);
    CHECK(inv != NULL);
    return inv;
}

TEST(seeds_a_good_catalog)
{
    inventory_t *inv = fresh();
    char err[256] = "";
    int seeded = 0;
    const char *cat = write_file("# demo\n\napple,10\n  pear , 0  \nsku-9_X,1000000000\n");
    CHECK(inventory_seed(inv, cat, &seeded, err, sizeof err) == 0);
    CHECK_EQ_U64(seeded, 3);
    uint32_t u = 99;
    CHECK(inventory_get(inv, "apple", &u) == 0);
    CHECK_EQ_U64(u, 10);
    CHECK(inventory_get(inv, "pear", &u) == 0);
    CHECK_EQ_U64(u, 0);
    CHECK(inventory_get(inv, "sku-9_X", &u) == 0);
    CHECK_EQ_U64(u, 1000000000);
    CHECK(inventory_get(inv, "kiwi", &u) == 1);
    /* A second seed (a restart) keeps what is stored. */
    const char *other = write_file("apple,1\nkiwi,5\n");
    CHECK(inventory_seed(inv, other, &seeded, err, sizeof err) == 0);
    CHECK_EQ_U64(seeded, 0);
    CHECK(inventory_get(inv, "apple", &u) == 0);
    CHECK_EQ_U64(u, 10);
    CHECK(inventory_get(inv, "kiwi", &u) == 1);
    inventory_close(&inv);
    CHECK(inv == NULL);
}

TEST(every_bad_line_is_refused_with_its_line_number)
{
    static const struct {
        const char *text;
        const char *want; /* substring of the error */
    } bad[] = {
        {"apple 10\n", ":1: expected"},
        {"ok,1\nhas space,1\n", ":2: bad product"},
        {",5\n", ":1: bad product"},
        {"a,b,c\n", ":1: qty"},
        {"apple,-1\n", ":1: qty"},
        {"apple,1000000001\n", ":1: qty"},
        {"apple,\n", ":1: qty"},
        {"apple,12x\n", ":1: qty"},
        {"apple,1\n#c\napple,2\n", ":3: product 'apple' listed twice"},
        {"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx,1\n", ":1: bad product"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        inventory_t *inv = fresh();
        char err[256] = "";
        int seeded = 0;
        CHECK(inventory_seed(inv, write_file(bad[i].text), &seeded, err, sizeof err) == -1);
        if (strstr(err, bad[i].want) == NULL)
            fprintf(stderr, "case %zu: error '%s' lacks '%s'\n", i, err, bad[i].want);
        CHECK(strstr(err, bad[i].want) != NULL);
        CHECK_EQ_U64(inventory_count(inv), 0); /* nothing seeded */
        inventory_close(&inv);
    }
    inventory_t *inv = fresh();
    char err[256];
    int seeded;
    CHECK(inventory_seed(inv, "/nonexistent/catalog", &seeded, err, sizeof err) == -1);
    inventory_close(&inv);
}

TEST(inventory_survives_reopen)
{
    char dir[256], err[256];
    int seeded;
    snprintf(dir, sizeof dir, "%s/persist", root);
    inventory_t *inv = inventory_open(dir, err, sizeof err);
    CHECK(inventory_seed(inv, write_file("truffle,2\n"), &seeded, err, sizeof err) == 0);
    inventory_close(&inv);
    inv = inventory_open(dir, err, sizeof err);
    uint32_t u = 0;
    CHECK(inventory_get(inv, "truffle", &u) == 0);
    CHECK_EQ_U64(u, 2);
    inventory_close(&inv);
}

int main(void)
{
    snprintf(root, sizeof root, "/tmp/zcart-test-stock.%d", (int)getpid());
    mkdir(root, 0755);
    RUN(seeds_a_good_catalog);
    RUN(every_bad_line_is_refused_with_its_line_number);
    RUN(inventory_survives_reopen);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (system(cmd) != 0)
        return 2;
    return unit_report();
}
