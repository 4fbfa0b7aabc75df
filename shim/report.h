/* report: one report file per process of a family, FORKSHIM_REPORT/
 * report-PID.jsonl (report-PID-N.jsonl, N = 1..15, when a recycled pid
 * left one), written when the process ends.  JSON Lines, format 1:
 *
 *   {"type":"process","format":1,"pid":P,"ppid":Q,"birth":B,
 *    "exe":"PATH","page_size":S}                                 first
 *   {"type":"region","name":"NAME","handle":"0x..","addr":"0x..",
 *    "size":BYTES,"owner":O,"pages":N,"resident":N,"shared":N,
 *    "exclusive":N,"swapped":N}               one per live frozen region
 *   {"type":"end","how":"exit|_exit|signal|killed","status":N,
 *    "signal":S}                                                  last
 *
 * B is the line's freeze count at the process's birth (0 for the process
 * that froze first, and for one born before any freeze).  The region
 * figures are forkshim_sharing's, in pages, taken as the process ends.
 * "how": exit (exit() or return from main: status is exit's argument),
 * _exit (_exit or _Exit), signal (a fatal signal whose disposition was the
 * default: the figures are taken in our handler, then the process dies of
 * the same signal), killed (SIGKILL, or a signal the process could not
 * report: written by the parent when its wait wrapper reaps the child and
 * finds no report of that death; such a file has "reported_by":PARENT in
 * its process line and no region lines).  A file without its end line was
 * cut short (the process was killed while writing it).  Readers ignore
 * keys they do not know; a reader of format 1 refuses a higher format.
 *
 * Who reports: a process whose line froze something (the freezer from its
 * first freeze on, and every child forked with fork() after it).  A
 * process that never froze and inherited no table writes nothing and
 * pays nothing.  Children made without fork's atfork handlers (vfork,
 * _Fork, clone, a raw fork syscall) write nothing.  Secure mode, or no
 * FORKSHIM_REPORT: nothing.
 *
 * report_resolve() runs at load (real _exit, _Exit, sigaction).
 * report_arm() runs after a successful freeze (normal context, cheap once
 * done): it copies the directory, registers the exit and atfork hooks and
 * installs our handler for each terminating signal whose disposition is
 * the default.  The host keeps seeing its own dispositions:
 * report_sigaction() is called by the sigaction/signal wrappers (guard.c)
 * and answers 1 when it handled the call.  The guard owns SIGSEGV once it
 * is installed: report_release() hands it over, and the guard's default
 * action calls report_fatal().  report_reaped() is called by the wait
 * wrappers for a child that died of a signal.  Everything on the signal,
 * _exit and wait paths is async-signal-safe: open, write, pread, no
 * malloc, no stdio, no lock. */
#ifndef FORKSHIM_REPORT_H
#define FORKSHIM_REPORT_H

#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#define REPORT_FORMAT 1

/* The action signal() and sysv_signal() install, as sigaction takes it. */
static inline void report_signal_action(struct sigaction *act, int sig,
                                        sighandler_t handler, int flags)
{
	memset(act, 0, sizeof(*act));
	act->sa_handler = handler;
	act->sa_flags = flags;
	sigemptyset(&act->sa_mask);
	if (!(flags & SA_NODEFER))
		sigaddset(&act->sa_mask, sig);
}

void report_resolve(void);
void report_arm(void);
/* Whether report_arm() has run in this process (or its parent): until
 * then report_sigaction() and report_signal() track nothing, and the
 * wrappers need not call them. */
int report_armed(void);
int report_sigaction(int sig, const struct sigaction *act,
                     struct sigaction *old, int *rc);
int report_signal(int sig, sighandler_t handler, int flags, sighandler_t *old);
void report_release(int sig, struct sigaction *prev);
void report_fatal(int sig);
void report_reaped(pid_t pid, int sig, uint64_t birth);

#endif
