/* unmap: the program's munmap, mremap and mmap(MAP_FIXED), watched for
 * the guard.
 *
 * Thaw puts back the protection the guard took from a frozen region's
 * pages; if the program unmapped those pages meanwhile and something else
 * now lives at the same addresses, that protection must not be put on the
 * newcomer (an anonymous read-only newcomer looks exactly like the guard's
 * read-only pages in /proc/self/maps).  So once unmap_watch() has run (the
 * guard's first write protection), each successful munmap, mremap (the
 * range it left or shrank, and with MREMAP_FIXED the range it replaced)
 * and mmap with MAP_FIXED whose range overlaps a frozen region is noted in
 * a log of the last UNMAP_LOG such ranges, numbered.  unmap_since() gives
 * the guard the ranges noted after a number it took at protection.
 *
 * Calls made behind the wrappers (a raw system call, glibc freeing a large
 * block with its internal munmap) are not seen.  The wrappers are
 * lock-free, allocate nothing and keep errno as the real call left it. */
#ifndef FORKSHIM_UNMAP_H
#define FORKSHIM_UNMAP_H

#include <stdint.h>

#define UNMAP_LOG 256

/* Resolves the real functions (start-up). */
void unmap_resolve(void);
/* From now on ranges are noted (idempotent). */
void unmap_watch(void);
/* The number the next noted range gets. */
uint64_t unmap_now(void);
/* Calls fn for each range noted at or after number `since`; 0, or -1 when
 * some of them are no longer known (more than UNMAP_LOG since, or one
 * being written right now): the caller cannot rule out any range. */
int unmap_since(uint64_t since,
                void (*fn)(uint64_t start, uint64_t end, void *arg), void *arg);

#endif
