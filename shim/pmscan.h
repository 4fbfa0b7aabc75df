/* pmscan: the PAGEMAP_SCAN ioctl of Linux 6.7 (linux/fs.h), for headers
 * that predate it (Debian 12's).  Used by sharing.c, readable.c and
 * scripts/bench/sharing.c. */
#ifndef FORKSHIM_PMSCAN_H
#define FORKSHIM_PMSCAN_H

#include <stdint.h>
#include <sys/ioctl.h>

struct pmscan_region {
	uint64_t start, end, categories;
};

struct pmscan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages,
	    category_inverted, category_mask, category_anyof_mask, return_mask;
};

#define PMSCAN_IOCTL _IOWR('f', 16, struct pmscan_arg)
#define PMSCAN_PRESENT (1ull << 3)
#define PMSCAN_SWAPPED (1ull << 4)
#define PMSCAN_GUARD (1ull << 8) /* PAGE_IS_GUARD, later than 6.7 */

/* Bits of a /proc/self/pagemap entry. */
#define PM_PRESENT (1ull << 63)
#define PM_SWAPPED (1ull << 62)
#define PM_EXCLUSIVE (1ull << 56)

#endif
