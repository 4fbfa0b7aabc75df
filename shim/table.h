/* table: the frozen regions of this process and its line.
 *
 * The slots (one per region), the address index (tree.h) and the FIFO of
 * thawed slots are private memory inherited copy-on-write by every child:
 * while the table is small (64 slots, 128 tree nodes) in the shim's .bss,
 * beyond that also in one anonymous mapping made by the first write that
 * needs it (ENOMEM, nothing changed, if it cannot be made).  Nothing here
 * calls malloc.
 *
 * Writers (freeze, thaw) take the table lock; they record the state they
 * are about to change in a journal first, so that a child forked in the
 * middle of a write without our atfork handlers (_Fork, clone, a raw fork
 * syscall from another thread) can put the table back as it was before the
 * write.  Readers (deref, find, lineage_fseq, info) take no lock and never
 * wait: a slot's state word is published last on freeze and first on thaw,
 * and a reader re-reads it after the fields it uses.  Readers are
 * async-signal-safe.
 *
 * The table calls no feature: a feature that reacts to freeze, thaw or
 * fork (the guard; next, shared regions) registers a struct table_hook
 * (below) at start-up, and the table calls it.  It calls down only:
 * handle, tree, readable, procpage, log.
 *
 * Errors: 0 / NULL / -1 with errno, and nothing changed. */
#ifndef FORKSHIM_TABLE_H
#define FORKSHIM_TABLE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "forkshim.h"

/* The flags a region may carry (forkshim_freeze's flags). */
#define TABLE_FLAGS (FORKSHIM_GUARD | FORKSHIM_SHARED | FORKSHIM_OBSERVE)

/* A feature's hook into the table.  Every member may be NULL.
 *   frozen   after a new region entered the table (not after a repeated
 *            freeze of the same range), under the table lock, before the
 *            freezer gets its handle.  flags: the region's.
 *   thawing  before a region leaves the table at its last thaw, under the
 *            table lock, while its handle still derefs.
 *   forking  fork's prepare phase, the table lock held (birth: the line's
 *            freeze count at the fork); forked its parent phase, before
 *            the lock is released.  No child phase: a child adopts the
 *            table lazily (table.c, adopt).
 * Hooks run in the context of the call that caused them (which may be a
 * signal handler, and is the fork path for forking/forked): no malloc, no
 * stdio, no lock the table lock may be waited for under; they must not
 * call the table's writers (EDEADLK) and must keep errno.  What must
 * happen before a region enters the table (shared regions: the copy into
 * sealed memory, SHARED.md) or outside the lock (pthread_atfork, on_exit:
 * report_arm) belongs in the function that calls the table (api.c); a new
 * region flag is added to TABLE_FLAGS. */
struct table_hook {
	void (*frozen)(forkshim_handle h, const void *addr, size_t len,
	               unsigned flags);
	void (*thawing)(forkshim_handle h, const void *addr, size_t len,
	                unsigned flags);
	void (*forking)(uint64_t birth);
	void (*forked)(void);
};

#define TABLE_HOOKS_MAX 4

/* Registers hook (kept, not copied), in start-up before any freeze (init's
 * core step); hooks run in registration order.  0, or -1 with ENOSPC. */
int table_hook_add(const struct table_hook *hook);

/* Sets the capacity, at init (again once the environment is read); the
 * mapping is made at the first freeze. */
void table_configure(size_t capacity);

forkshim_handle table_freeze(const void *addr, size_t len, const char *name,
                             unsigned flags);
int table_thaw(forkshim_handle h);
const void *table_deref(forkshim_handle h, size_t *len);
forkshim_handle table_find(const void *addr, size_t len);
/* Whether a live region overlaps [start, end): lock-free,
 * async-signal-safe (unmap.c). */
int table_overlaps(uint64_t start, uint64_t end);
int table_info(forkshim_handle h, struct forkshim_info *out);
/* The line's freeze count when h was first frozen (for visible). */
int table_fseq(forkshim_handle h, uint64_t *fseq);

/* For the reports (lock-free, async-signal-safe): table_next returns the
 * handle of the first live region at or after slot *slot and moves *slot
 * past it, 0 when there is none; table_line_freezes is the line's freeze
 * count now (in a child right after fork: its birth point). */
forkshim_handle table_next(uint32_t *slot);
uint64_t table_line_freezes(void);

/* Fork phases, called by fork.c's atfork handlers.  table_prepare returns
 * the line's freeze count at the fork (the child's birth point; 0 before
 * the first freeze).  There is no child phase: a child adopts the table lazily,
 * whichever way it was made (see adopt in table.c). */
uint64_t table_prepare(void);
/* Maps the procpage if this process has none yet (the fork wrappers call
 * it): 0, or -1 when it cannot be made. */
int table_procpage(void);
void table_parent(void);

#endif
