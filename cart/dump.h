/* dump: `zcart-cart --dump-state --data DIR --slots N [--name NODE]`, a
 * (stopped) cart node's durable slots as one JSON object on stdout.
 *
 * Read-only: the store is opened MDB_RDONLY (store_open_readonly) and
 * nothing under DIR is created or changed. */
#ifndef ZC_CART_DUMP_H
#define ZC_CART_DUMP_H

/* Print slots 0..n_slots-1 of the store in data_dir; node (may be NULL) is
 * only echoed.  0 on success, 1 (message on stderr) if the directory is
 * missing, holds no store or a record does not decode. */
int cart_dump_state(const char *data_dir, unsigned n_slots, const char *node);

#endif
