/* inventory: the stock service's units per product, in LMDB.
 *
 * The inventory is seeded once, from a catalog file of `product,qty` lines,
 * when the database is empty; later starts keep what is stored (so a restart
 * never resets stock).  A check reads one record; nothing here decrements:
 * zcart asks "are N units available?", it does not reserve them. */
#ifndef ZC_STOCK_INVENTORY_H
#define ZC_STOCK_INVENTORY_H

#include <stddef.h>
#include <stdint.h>

typedef struct inventory inventory_t;

inventory_t *inventory_open(const char *dir, char *err, size_t errlen);
void inventory_close(inventory_t **p);
/* Products stored. */
size_t inventory_count(inventory_t *inv);
/* Seed from a catalog if the inventory is empty.  0 seeded or already
 * populated (*seeded says which), -1 with err (file:line) and nothing stored. */
int inventory_seed(inventory_t *inv, const char *catalog, int *seeded, char *err, size_t errlen);
/* Units of product: 0 with *units, 1 unknown product, -1 storage error. */
int inventory_get(inventory_t *inv, const char *product, uint32_t *units);

#endif
