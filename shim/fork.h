/* fork: the fork wrappers, the atfork phases, and the records of children.
 *
 * fork_register() registers the atfork handlers, from the constructor (our
 * prepare handler, registered first, runs last; our parent handler first).
 * fork_init() resolves the real fork, forkpty and wait family (dlsym
 * RTLD_NEXT, never on the fork path), at the first use.  The wrappers map
 * the procpage at the first fork, and only add the child's pid and birth
 * point to a fixed array of records, without locks or allocation; they
 * leave the signal mask alone (see fork.c).  The child returns from the
 * wrapper touching nothing of ours.
 *
 * fork_visible() answers forkshim_visible for a region first frozen at the
 * line's freeze count `fseq`: lock-free and async-signal-safe; it asks the
 * kernel (waitid WNOWAIT, which reaps nothing) whether a child still lives. */
#ifndef FORKSHIM_FORK_H
#define FORKSHIM_FORK_H

#include <stdint.h>
#include <sys/types.h>

void fork_register(void);
int fork_init(void);
/* 1, 0, or -1 with ESRCH. */
int fork_visible(uint64_t fseq, pid_t pid);

#endif
