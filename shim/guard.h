/* guard: write protection of frozen pages (FORKSHIM_GUARD), the SIGSEGV
 * handler, and the chain to the host's own SIGSEGV handler.
 *
 * guard_resolve() runs first at load, before the environment may be
 * readable: it resolves the real sigaction and signal.  guard_init() runs
 * after config and the table: with FORKSHIM_GUARD=protect or audit, it
 * enables the guard.  With guard off nothing is installed; the first
 * freeze with the FORKSHIM_GUARD flag enables it then.  Enabling installs
 * one SIGSEGV handler for the life of the process (SA_ONSTACK, with an
 * alternate stack for the enabling thread when it has none), warms
 * libunwind up, and in audit mode registers an atfork child handler and an
 * exit handler.
 *
 * Table hooks, called by table.c under the table lock (so they are
 * serialised with every freeze, thaw and fork):
 *   guard_frozen   after a new region entered the table; protect mode
 *                  write-protects the pages wholly inside it (those of
 *                  private writable mappings) and keeps the freezing
 *                  backtrace; audit mode keeps the backtrace only.
 *   guard_thawing  before a region leaves the table at its last thaw:
 *                  puts the original protection back.
 * Both are best effort: a region that cannot be protected stays frozen,
 * unguarded, with a log line.  guard_on tells table.c whether to call
 * guard_thawing at all (0 while the guard is off: no cost).
 *
 * The handler claims only SEGV_ACCERR faults on pages this process
 * protected and chains everything else to the handler the host believes
 * it installed (sigaction and signal are interposed for SIGSEGV once the
 * handler is in), honouring its flags.  It is async-signal-safe: write(2),
 * open, pread, mprotect, atomics, no malloc and no lock. */
#ifndef FORKSHIM_GUARD_H
#define FORKSHIM_GUARD_H

#include <signal.h>
#include <stddef.h>

#include "forkshim.h"

extern int guard_on;

void guard_resolve(void);
/* Takes sig's default action from inside its handler (guard.c). */
void guard_die_default(int sig, const siginfo_t *si);
void guard_init(void);
void guard_frozen(forkshim_handle h, const void *addr, size_t len,
                  unsigned flags);
void guard_thawing(forkshim_handle h, const void *addr, size_t len);

#endif
