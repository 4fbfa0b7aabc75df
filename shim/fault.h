/* fault: the guard's SIGSEGV handler.
 *
 * fault_on_segv() is installed by guard.c (through signals_take) once the
 * guard is enabled, for the life of the process.  It claims only
 * SEGV_ACCERR faults on pages this process protected (the records of
 * guardrec.h): in protect mode it logs the violation once (the writing and
 * the freezing backtraces) and hands the fault on as if we were not there;
 * in an audited child it records the first write to the page (audit.h),
 * makes the page writable again and lets the write go on.  Everything else
 * is chained to the program's handler (signals_chain).
 *
 * Async-signal-safe: write(2), open, pread, mprotect, atomics; no malloc,
 * no stdio, no lock but the spin that makes violation reports one at a
 * time.  errno is kept. */
#ifndef FORKSHIM_FAULT_H
#define FORKSHIM_FAULT_H

#include <signal.h>

void fault_on_segv(int sig, siginfo_t *si, void *uc);

#endif
