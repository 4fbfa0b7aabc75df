/* report: one report file per process of a family, FORKSHIM_REPORT/
 * report-PID.jsonl (report-PID-N.jsonl, N = 1..15, when a recycled pid
 * left one), written when the process ends.  JSON Lines, format 1:
 *
 *   {"type":"process","format":1,"pid":P,"ppid":Q,"birth":B,
 *    "exe":"PATH","page_size":S}                                 first
 *   {"type":"region","name":"NAME","handle":"0x..","addr":"0x..",
 *    "size":BYTES,"owner":O,"pages":N,"resident":N,"shared":N,
 *    "exclusive":N,"swapped":N[,"memfd":"DEV:INO"][,"flags":F]}
 *                          one per live frozen region, then one per shared
 *                          region mapped here by import or late deref
 *   {"type":"end","how":"exit|_exit|signal|killed","status":N,
 *    "signal":S}                                                  last
 *
 * B is the line's freeze count at the process's birth (0 for the process
 * that froze first, and for one born before any freeze).  The region
 * figures are forkshim_sharing's, in pages, taken as the process ends.
 * "flags" (forkshim.h) is written for an observed region
 * (FORKSHIM_OBSERVE): one piece of a whole object, which readers may add
 * up with the other observed pieces of the same name and owner.
 * "memfd" marks a shared region's sealed memory (forkshim_alloc memory,
 * or a copy mapped by an importer; a copy-freeze's own entry names the
 * freezer's private bytes and has none): its identity, the same in every
 * process, and every resident page counts as shared (never copied).
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
 * The files are made in the directory config_report_fd() names, with
 * O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600, on a descriptor checked before
 * every line (owned.h).  A report that cannot be written (a full disk, the
 * directory gone) is said once per process on the log.  The parent's look
 * for a killed child's own report reads only a regular file of the user
 * made since it began (jsonl_open_ours), and only its first and last
 * bytes: a FIFO, another user's file or an old one is not the child's.
 *
 * Who reports: a process whose line froze something (the freezer from its
 * first freeze on, and every child forked with fork() after it), one that
 * allocated or imported a shared region, and one that mapped a shared
 * region by late deref or forkshim_info (a late child: forked before its
 * line froze anything), with every child it forks with fork() after that.
 * A process that never froze and inherited no table writes nothing and
 * pays nothing; so does a late child that never maps the region.
 * Children made without fork's atfork handlers (vfork, _Fork, clone, a
 * raw fork syscall) write nothing.  Secure mode, or no FORKSHIM_REPORT:
 * nothing.
 *
 * report_resolve() runs at init (real _exit and _Exit).
 * report_configure() runs at init after the configuration is read: with
 * FORKSHIM_REPORT set it registers an exit hook and an atfork child hook
 * for late children (below); without it, nothing.  report_mapped() is
 * called by late deref and info after they mapped a region here: it must
 * stay async-signal-safe, so it arms nothing; it only notes this
 * process's pid (one getpid and, the first time, one store; nothing at
 * all without FORKSHIM_REPORT).  Such a process's report is armed on its
 * way out (the exit hook registered at init, _exit, _Exit), with birth 0,
 * unless a freeze, alloc or import armed it before.  Until then no
 * signal is watched for it: a late child that only derefs and dies of a
 * signal writes no report (its parent's wait neither: birth 0).
 * report_arm() runs after a successful freeze (normal context, cheap
 * once done): it
 * copies the directory, registers the exit and atfork hooks and asks
 * signals.c to stand in for each terminating signal whose disposition is
 * the default (signals_watch); signals.c keeps what the host believes it
 * installed, and calls us back (the report of a signal death) before it
 * takes the default action, from our handler or from the guard's chain.
 * report_reaped() is called by the wait wrappers (fork.c) for a child that
 * died of a signal.  Calls down: signals, table (readers), sharing, jsonl,
 * config, interpose, log.  Everything on the signal, _exit and wait paths
 * is async-signal-safe: open, write, pread, no malloc, no stdio, no lock;
 * errno is kept. */
#ifndef FORKSHIM_REPORT_H
#define FORKSHIM_REPORT_H

#include <stdint.h>
#include <sys/types.h>

#define REPORT_FORMAT 1

void report_resolve(void);
void report_configure(void);
void report_arm(void);
void report_mapped(void);
void report_reaped(pid_t pid, int sig, uint64_t birth);

#endif
