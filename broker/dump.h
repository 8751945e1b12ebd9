/* dump: `zcart-broker --dump-state --data DIR`, the replicated state of a
 * (stopped) replica's DIR/state as one JSON object on stdout.
 *
 * Read-only: the LMDB environment is opened MDB_RDONLY (zc_state_open_readonly)
 * and nothing under DIR is created or changed, so an operator or a test can
 * inspect a replica's data after the fact and start it again afterwards. */
#ifndef ZC_BROKER_DUMP_H
#define ZC_BROKER_DUMP_H

/* Print the dump of data_dir/state; 0 on success, 1 (message on stderr) if
 * the directory is missing, holds no state or a record does not decode. */
int broker__dump_state(const char *data_dir);

#endif
