/* fork: the fork wrappers, the atfork phases, and the records of children.
 *
 * fork_init() resolves the real fork and forkpty (dlsym RTLD_NEXT, never on
 * the fork path) and registers the atfork handlers; it runs in the
 * constructor.  Our prepare handler, registered first, runs last; our child
 * handler runs first.  The wrappers only add the child's pid and birth point
 * to a fixed array of records, without locks or allocation.
 *
 * fork_visible() answers forkshim_visible for a region first frozen at the
 * line's freeze count `fseq`: lock-free and async-signal-safe; it asks the
 * kernel (waitid WNOWAIT, which reaps nothing) whether a child still lives. */
#ifndef FORKSHIM_FORK_H
#define FORKSHIM_FORK_H

#include <stdint.h>
#include <sys/types.h>

int fork_init(void);
/* 1, 0, or -1 with ESRCH. */
int fork_visible(uint64_t fseq, pid_t pid);

#endif
