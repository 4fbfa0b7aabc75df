/* guard: write protection of frozen pages (FORKSHIM_GUARD, and
 * FORKSHIM_GUARD=protect or audit).
 *
 * guard_attach() runs in the constructor (init's core step): it registers
 * the guard's table hook, and nothing else.  guard_init() runs once the
 * environment is read: with FORKSHIM_GUARD=protect or audit, it enables
 * the guard.  With the guard off nothing is installed; the first freeze
 * with the FORKSHIM_GUARD flag enables it then.  Enabling maps the guard's
 * memory (guardrec.h) in one reservation, takes SIGSEGV for the life of
 * the process (signals_take, with fault.c's handler; an alternate stack
 * for the enabling thread when it has none), warms libunwind up, and in
 * audit mode registers an atfork child handler, which write-protects the
 * audited regions in each new child, and an exit handler.
 *
 * The table hook, called under the table lock (so serialised with every
 * freeze, thaw and fork):
 *   frozen   after a new region entered the table; protect mode
 *            write-protects the pages wholly inside it (those of private
 *            writable mappings) and keeps the freezing backtrace; audit
 *            mode keeps the backtrace only.
 *   thawing  before a region leaves the table at its last thaw: puts the
 *            original protection back.
 * Both return at once while the guard is off (and the region is not
 * flagged): no cost.  Both are best effort: a region that cannot be
 * protected stays frozen, unguarded, with a log line.
 *
 * Calls down: fault (its handler), guardrec, signals, maps, table (readers
 * and the hook), audit, trace, config, log.  Nothing here runs in a signal
 * handler; the hook allocates nothing (mmap only at enabling). */
#ifndef FORKSHIM_GUARD_H
#define FORKSHIM_GUARD_H

void guard_attach(void);
void guard_init(void);

#endif
