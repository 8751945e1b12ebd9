/* sanitizer_defaults: the AddressSanitizer options every zcart program of a
 * sanitizer build (-DZCART_SANITIZE=ON) starts with; ASAN_OPTIONS adds to
 * and overrides them.
 *
 * allocator_may_return_null=1: an impossible allocation returns NULL, as
 * libc's malloc does, instead of aborting the process.  Peers can make
 * libraries allocate what a frame header claims (canonical/raft's transport
 * mallocs the announced message size before it can check it), and the code
 * under test handles the NULL; without this option a junk raft frame would
 * abort a sanitizer build that production survives. */
const char *__asan_default_options(void);

const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }
