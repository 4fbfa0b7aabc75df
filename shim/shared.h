/* shared: frozen regions in sealed shared memory (SHARED.md).
 *
 * The bytes.  A shared region is a memfd (MFD_CLOEXEC | MFD_ALLOW_SEALING,
 * and MFD_NOEXEC_SEAL where the kernel has it): page 0 is a header (magic,
 * length, the freezer's address, the freezer's pid and start time, a
 * 128-bit random secret, the name), the data follows from page 1 at
 * offset (freezer's address mod page), so that a same-address import maps
 * whole pages at the freezer's page.  It is filled either
 *   - by pwrite from the caller's memory (freeze of ordinary memory with
 *     FORKSHIM_SHARED: one copy; the caller's address keeps its own
 *     private bytes, and the table's entry still names them), or
 *   - in place (forkshim_alloc: a writable MAP_SHARED mapping of the data
 *     pages; at freeze it is replaced, MAP_FIXED, by a PROT_READ mapping of
 *     an O_RDONLY reopen of /proc/self/fd/N, so no mapping of it can ever
 *     be made writable again).
 * then sealed F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL.
 * F_SEAL_WRITE fails with EBUSY while any process maps it writable: the
 * writable mapping of forkshim_alloc is MADV_DONTFORK, so a child forked
 * meanwhile does not keep one (it finds the range free and maps the
 * frozen region there by late deref); a process that maps the memfd
 * writable itself (through /proc/PID/fd/N) makes freeze answer EBUSY and
 * change nothing.  Every read-only mapping anyone makes
 * is of an O_RDONLY descriptor: no VM_MAYWRITE, so mprotect cannot make it
 * writable, /proc/PID/mem cannot write through it, and the seal forbids
 * write(2), pwrite, a writable shared mapping and hole punching.
 *
 * Who holds it.  The freezer keeps its memfd descriptor (moved to a high
 * number) until its last thaw.  A family has one *directory*: a memfd
 * mapped MAP_SHARED by its root (the first process of the family that
 * called into forkshim and forked, or froze shared), inherited by every
 * child, so a child forked before a freeze sees the freeze.  A slot of it
 * names a live shared region: handle, inode identity (st_dev, st_ino),
 * length, freezer's address, freezer pid/start/fd, and the root's copy of
 * the descriptor.  With the directory the root makes a socketpair; a
 * non-root freezer sends its memfd over it (SCM_RIGHTS) at freeze: the
 * descriptor lives in the socket's queue, whatever happens to the child,
 * until the root takes it (its wait wrappers, and every shared call it
 * makes) and keeps it in the slot.  So a child's result stays importable
 * after the child exited, until the child thaws it or the root exits.
 * Before the root has taken it, another process of the family (a sibling:
 * it inherited both ends of the socket) finds it in the queue itself: it
 * peeks at each message, puts a copy back and takes the original, keeping
 * the descriptor it looks for (dir_fetch).  An exec'd process has no end of
 * the socket: it gets ENOENT until the root has taken it.  A
 * thaw in the freezer marks the slot dead; the root closes its copy at
 * its next drain.  No named object: when every process that holds or maps
 * a region is gone, the kernel frees it (also after kill -9).
 *
 * Late children.  forkshim_deref of a handle the table answers ENOENT for
 * looks the directory up (lock-free: a slot's state word carries a
 * sequence number, read before and after its fields), checks the freezer
 * is an ancestor (the getppid chain, /proc/PID/stat), opens the holder's
 * descriptor O_RDONLY through /proc, checks its identity, maps it
 * PROT_READ at the freezer's address if that range is free (else
 * anywhere), closes the descriptor and remembers the mapping.  Only system
 * calls, no allocation, no lock: async-signal-safe.
 *
 * Tokens.  64 bytes: magic, holder pid, its start time (low 32 bits of
 * /proc/PID/stat field 22: a reused pid does not match), holder fd, root
 * pid, root start, root's directory fd, st_dev, st_ino, the region's
 * 128-bit secret, and a 32-bit check of all of it.  Import: EBADF for a
 * bad magic or check; then the holder's /proc/PID/fd/N (EACCES when the
 * kernel refuses: another user, non-dumpable), else the root's directory
 * (found through /proc/ROOT/fd/DIRFD) for the root's copy; the opened
 * object must have the token's identity and its header the token's secret
 * (else EBADF: a forged token is accepted with probability 2^-128 per
 * guess) and all four seals.  Thawed: ESTALE (holder alive, or the slot
 * dead); holder and root gone: ENOENT.  Same token twice in a process:
 * the same mapping, counted; forkshim_release undoes one.
 *
 * Errors: 0 / NULL / -1 with errno, nothing changed. */
#ifndef FORKSHIM_SHARED_H
#define FORKSHIM_SHARED_H

#include <stddef.h>
#include <stdint.h>

#include "forkshim.h"

/* Set by every public entry point: this process uses forkshim, so its
 * first fork makes the family directory. */
extern int shared_used;

void *shared_alloc(size_t len, const char *name);
/* freeze with FORKSHIM_SHARED (calls table_freeze). */
forkshim_handle shared_freeze(const void *addr, size_t len, const char *name,
                              unsigned flags);
/* After the table said ENOENT: the handle of a shared region an ancestor
 * froze after our birth.  Async-signal-safe.  NULL with errno ENOENT. */
const void *shared_deref_late(forkshim_handle h, size_t *len);
/* forkshim_info for such a handle; -1 with errno ENOENT when it is not. */
int shared_info_late(forkshim_handle h, struct forkshim_info *out);
/* For the guard's fault handler: 1 when addr lies in a shared region this
 * process maps read-only (forkshim_alloc memory frozen here or by an
 * ancestor, an import, a late deref; out: its data range, name and
 * freezer), else 0.  Async-signal-safe. */
int shared_mapped_at(uintptr_t addr, struct forkshim_info *out);
/* For the reports (async-signal-safe).  shared_identity: 1 when h is
 * forkshim_alloc memory frozen shared, here or by an ancestor before our
 * birth (its table entry names the memfd's pages), with the memfd's
 * identity; 0 for anything else (a copy-freeze's entry names the
 * freezer's private bytes).  shared_next_mapped: the next region this
 * process maps by import or late deref, from *slot on (moved past it),
 * other than the freezer's own mapping, once per memfd: its data range,
 * length, freezer and name in out, its handle (0 when unknown) and
 * identity; 0 when there are no more. */
int shared_identity(forkshim_handle h, uint64_t *dev, uint64_t *ino);
int shared_next_mapped(uint32_t *slot, struct forkshim_info *out,
                       forkshim_handle *h, uint64_t *dev, uint64_t *ino);
/* Whether h names a shared region this process knows (info's flag). */
int shared_is_shared(forkshim_handle h);
int shared_export(forkshim_handle h, struct forkshim_token *out);
const void *shared_import(const struct forkshim_token *tok, unsigned flags,
                          size_t *len);
int shared_release(const void *addr);
/* After table_thaw(h) returned (forkshim_thaw): unmaps the forkshim_alloc
 * memory of a region that thaw took out of the table.  Async-signal-safe. */
void shared_thawed(forkshim_handle h);

/* Registers the table hook (init's core step): the last thaw of a shared
 * region drops the owner's references (thawing), and a fork of a process
 * that uses forkshim makes the family directory first (forking). */
void shared_attach(void);
/* The wait wrappers (fork.c), after a child was reaped: the root takes
 * the descriptors children sent it.  Async-signal-safe. */
void shared_reaped(void);

#endif
