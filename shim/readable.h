/* readable: whether a range of this process's memory is mapped readable,
 * the check behind freeze's EFAULT.
 *
 * readable_range() answers 1 when every byte of [addr, addr+len) lies in a
 * mapping with PROT_READ and can be read, 0 when some byte lies in a hole,
 * in a mapping without PROT_READ (PROT_NONE guard pages included), on a
 * lightweight guard page (MADV_GUARD_INSTALL) or on a file mapping's page
 * past the file's end (reading it raises SIGBUS).
 *
 * Small ranges (below) are faulted in readable with MADV_POPULATE_READ
 * (Linux 5.14), which answers EFAULT or ENOMEM instead of faulting; where
 * it cannot tell (EINVAL: no PROT_READ, or an older kernel) one byte per
 * page is read through process_vm_readv.
 * Larger ones cost a few system calls whatever their size and read no page
 * but the last one of each file mapping in the range: the mappings that
 * cover the range (the PROCMAP_QUERY ioctl, or the text of /proc/self/maps
 * on kernels before 6.11), then guard pages inside them (PAGEMAP_SCAN for
 * PAGE_IS_GUARD).  Where a kernel cannot say (no /proc, no descriptor
 * left, a kernel with guard pages but no PAGE_IS_GUARD) the page by page
 * read decides.
 *
 * Async-signal-safe: system calls and the stack only, no malloc, no stdio,
 * no lock; errno is kept.  The large way opens and closes descriptors of
 * /proc/self: table.c calls it under the table lock, so no fork() of
 * another thread copies them into a child. */
#ifndef FORKSHIM_READABLE_H
#define FORKSHIM_READABLE_H

#include <stddef.h>
#include <sys/types.h>

/* Up to this many pages a range is small: measured on a 2-core VM (Linux
 * 6.18) the large path costs ~11 us whatever the size, MADV_POPULATE_READ
 * ~1.5 us + 40 ns a page, process_vm_readv ~2 us + 130 ns a page. */
#define READABLE_SMALL_PAGES 256
#define READABLE_SMALL_PAGES_NO_POPULATE 64 /* before Linux 5.14 */

/* pid: this process's id (process_vm_readv's target).  which says what is
 * checked: READABLE_SMALL a small range, READABLE_LARGE a large one (the
 * other size answers 1 at once), both every range.  table.c checks small
 * ranges before it takes the table lock, so that a fault taking long (a
 * file read in, a userfaultfd) holds up no fork, and large ones under it,
 * because the large way opens descriptors. */
#define READABLE_SMALL 1u
#define READABLE_LARGE 2u
int readable_range(pid_t pid, const void *addr, size_t len, unsigned which);

/* The ways, for the tests (tests/unit/readable.c): 1, 0, or -1 when this
 * way cannot tell here.  readable_by_populate faults in every page of the
 * range: readable_range uses it on small ranges only. */
int readable_by_populate(const void *addr, size_t len);
int readable_by_pages(pid_t pid, const void *addr, size_t len);
int readable_by_mappings(pid_t pid, const void *addr, size_t len,
                         int text_only);
int readable_no_guard_pages(const void *addr, size_t len);

#endif
