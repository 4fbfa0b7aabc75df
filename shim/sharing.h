/* sharing: page counts of a range as this process maps it now, from
 * /proc/self/pagemap (present bit 63, swapped bit 62, exclusively mapped
 * bit 56; readable without privileges).  Not async-signal-safe in spirit
 * (it opens a file), but it neither allocates nor locks. */
#ifndef FORKSHIM_SHARING_H
#define FORKSHIM_SHARING_H

#include <stddef.h>

#include "forkshim.h"

/* 0, or -1 with EIO when pagemap cannot be read. */
int sharing_count(const void *addr, size_t len, struct forkshim_sharing *out);

#endif
