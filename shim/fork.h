/* fork: the fork wrappers, the atfork phases, and the records of children.
 *
 * fork_init() resolves the real fork, forkpty and wait family (dlsym
 * RTLD_NEXT, never on the fork path) and registers the atfork handlers,
 * at init (init.h): at load when a FORKSHIM_* variable is set, else at the
 * first fork, freeze or other call that initialises.  Until then the
 * handlers would have nothing to do, and a process that never forks or
 * freezes does not pay the registration (glibc's atfork code and data
 * pages) at start-up (issue 13).  A fork waits for init to finish, so no
 * fork of ours runs without them.  Our prepare handler runs after those of
 * the program's handlers registered later, before those registered
 * earlier; our parent handler the other way round.  The wrappers map
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

int fork_init(void);
/* 1, 0, or -1 with ESRCH. */
int fork_visible(uint64_t fseq, pid_t pid);

#endif
