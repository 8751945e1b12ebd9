/* crc32c: the Castagnoli CRC-32 (iSCSI, ext4, LevelDB's polynomial),
 * computed byte-wise from a table.  Used to tell a whole record from a torn
 * or stale one (lib/wal.c); not a cryptographic check. */
#ifndef ZC_LIB_CRC32C_H
#define ZC_LIB_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC of n bytes at p, continuing from crc (0 to start). */
uint32_t zc_crc32c(uint32_t crc, const void *p, size_t n);

#endif
