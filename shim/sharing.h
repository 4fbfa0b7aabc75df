/* sharing: page counts of a range as this process maps it now, from
 * /proc/self/pagemap (present bit 63, swapped bit 62, exclusively mapped
 * bit 56; readable without privileges).
 *
 * Where the kernel has the PAGEMAP_SCAN ioctl (Linux 6.7+), it first finds
 * the runs of present and swapped pages (a walk of the page tables that
 * skips what is not there), and only the present runs are read entry by
 * entry for bit 56: the ioctl has no "mapped only here" category, so it
 * cannot split shared from exclusive by itself.  Without it (ENOTTY,
 * EINVAL), every entry is read.  scripts/bench/sharing measures both.
 *
 * Async-signal-safe: open, pread, ioctl, close; no allocation, no lock,
 * about 7 KiB of stack.  errno is kept on success. */
#ifndef FORKSHIM_SHARING_H
#define FORKSHIM_SHARING_H

#include <stddef.h>

#include "forkshim.h"

/* 0, or -1 with EIO when pagemap cannot be read. */
int sharing_count(const void *addr, size_t len, struct forkshim_sharing *out);
/* The same on an open /proc/self/pagemap (many regions, one open). */
int sharing_count_fd(int fd, const void *addr, size_t len,
                     struct forkshim_sharing *out);

#endif
