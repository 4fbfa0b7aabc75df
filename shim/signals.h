/* signals: the process's signal dispositions as the shim sees them.
 *
 * This file owns the interposed sigaction, __sigaction, signal,
 * bsd_signal, ssignal, sysv_signal and __sysv_signal, the real ones behind
 * them, what the program believes it installed for each signal a handler
 * of ours stands in for, the chain from our handler to the program's (with
 * the siginfo, ucontext, mask and flags the kernel would have given it),
 * and the default action of a fatal signal (SIG_DFL back, then a fault
 * raised by an instruction comes back when the handler returns and kills
 * as it would have without us; anything else is raised again).  The
 * guard and the reports ask it; neither keeps a disposition of its own.
 *
 * Two ways for a feature to stand in for the program:
 *   signals_take    (the guard, SIGSEGV) installs the feature's handler for
 *                   the life of the process; from then on sigaction and
 *                   signal for that signal only record what the program
 *                   asks, and signals_chain() hands a signal the feature
 *                   does not claim to that.  One signal at a time.
 *   signals_watch   (the reports, the terminating signals) puts our own
 *                   handler in place of each SIG_DFL disposition, and only
 *                   while the program keeps SIG_DFL: a handler or SIG_IGN
 *                   the program installs goes in for real.  Our handler
 *                   calls the `dying` callback, then takes the default
 *                   action.  A taken signal is not watched.
 * signals_chain() and the handlers also call `dying` before a default
 * action that kills.
 *
 * signals_resolve() runs in the constructor (init's core step).  The
 * wrappers may run before it (a sanitizer runtime's start-up calls them,
 * before any instrumented code may run): they are not instrumented, and
 * they pass through until the real functions are known.
 *
 * Who calls: the wrappers, any thread, in any context; signals_take and
 * signals_watch normal context (guard.c, report.c); signals_chain the
 * guard's signal handler (fault.c).  Everything but the set-up is
 * async-signal-safe: sigprocmask, sigaction, tgkill, atomics and a spin
 * lock taken with every signal blocked; no malloc, no stdio.
 * errno: the wrappers set it as the real functions do; the handlers' paths
 * leave it to their callers. */
#ifndef FORKSHIM_SIGNALS_H
#define FORKSHIM_SIGNALS_H

#include <signal.h>
#include <stddef.h>

typedef void (*signals_handler_fn)(int, siginfo_t *, void *);

void signals_resolve(void);
/* Whether the real sigaction is known (nothing can be stood in without). */
int signals_ready(void);

/* Installs handler for sig (SA_SIGINFO | SA_ONSTACK | SA_RESTART, every
 * signal blocked while it runs) and records the program's disposition as
 * it was.  lock: an int the caller keeps in memory mapped with
 * MADV_WIPEONFORK, so that a child starts with it free whoever held it.
 * 0, or -1 with errno (sigaction's). */
int signals_take(int sig, signals_handler_fn handler, int *lock);
/* Hands sig to the program's disposition for the taken signal, as the
 * kernel would have: its handler, its mask and flags, or the default
 * action (after `dying`). */
void signals_chain(int sig, siginfo_t *si, void *uc);

/* Stands in for the program's SIG_DFL of each of sigs[0..n) (see above);
 * dying(sig) runs in our handler before the default action. */
void signals_watch(const int *sigs, size_t n, void (*dying)(int sig));
/* Registers, at load, what frees signals_watch's lock in a fork() child:
 * a process that may watch calls it while it has one thread. */
void signals_watch_at_load(void);

#endif
