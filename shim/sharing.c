/* sharing: page counts from /proc/self/pagemap (contract in sharing.h).
 * Called by api (forkshim_sharing) and report; calls nothing of the shim
 * but pmscan's definitions.  No malloc, no lock, errno kept on success. */
#include "sharing.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "pmscan.h"

static int no_scan; /* the kernel said it has no PAGEMAP_SCAN */

/* Entries [first, last] read one by one into s. */
static int count_entries(int fd, uint64_t first, uint64_t last,
                         struct forkshim_sharing *s)
{
	enum { BATCH = 512 };
	uint64_t pm[BATCH];

	for (uint64_t p = first; p <= last;) {
		size_t want = last - p + 1 < BATCH ? last - p + 1 : BATCH;
		ssize_t got = pread(fd, pm, want * sizeof(uint64_t),
		                    (off_t)(p * sizeof(uint64_t)));

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0 || got % sizeof(uint64_t) != 0)
			return -1;
		for (size_t i = 0; i < (size_t)got / sizeof(uint64_t); i++) {
			if (pm[i] & PM_PRESENT) {
				s->resident++;
				if (pm[i] & PM_EXCLUSIVE)
					s->exclusive++;
				else
					s->shared++;
			} else if (pm[i] & PM_SWAPPED) {
				s->swapped++;
			}
		}
		p += (size_t)got / sizeof(uint64_t);
	}
	return 0;
}

/* 0 done, -1 failed, 1 no PAGEMAP_SCAN here.  Runs closer than GAP
 * entries are read in one go: a read costs about a microsecond, an entry
 * a few nanoseconds, so only long holes are worth skipping. */
static int count_scanned(int fd, uint64_t first, uint64_t last, size_t page,
                         struct forkshim_sharing *s)
{
	enum { RUNS = 128, GAP = 512 };
	struct pmscan_region vec[RUNS];
	struct pmscan_arg arg;
	uint64_t end = (last + 1) * page, ws = 0, we = 0;
	int open_window = 0;

	memset(&arg, 0, sizeof(arg));
	arg.size = sizeof(arg);
	arg.start = first * page;
	arg.end = end;
	arg.vec = (uint64_t)(uintptr_t)vec;
	arg.vec_len = RUNS;
	arg.category_anyof_mask = PMSCAN_PRESENT | PMSCAN_SWAPPED;
	arg.return_mask = PMSCAN_PRESENT | PMSCAN_SWAPPED;
	for (;;) {
		long n = ioctl(fd, PMSCAN_IOCTL, &arg);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 &&
		    (errno == ENOTTY || errno == EINVAL || errno == ENOSYS) &&
		    arg.start == first * page)
			return 1;
		if (n < 0)
			return -1;
		for (long i = 0; i < n; i++) {
			uint64_t a = vec[i].start / page;
			uint64_t b = vec[i].end / page - 1;

			if (open_window && a <= we + GAP) {
				we = b;
				continue;
			}
			if (open_window && count_entries(fd, ws, we, s) < 0)
				return -1;
			ws = a;
			we = b;
			open_window = 1;
		}
		if (arg.walk_end >= end || arg.walk_end <= arg.start)
			break;
		arg.start = arg.walk_end;
	}
	return open_window ? count_entries(fd, ws, we, s) : 0;
}

int sharing_count_fd(int fd, const void *addr, size_t len,
                     struct forkshim_sharing *out)
{
	size_t page = (size_t)getpagesize();
	uint64_t first = (uintptr_t)addr / page;
	uint64_t last = ((uintptr_t)addr + len - 1) / page;
	struct forkshim_sharing s;
	int saved = errno, r = 1;

	memset(&s, 0, sizeof(s));
	if (!__atomic_load_n(&no_scan, __ATOMIC_RELAXED)) {
		r = count_scanned(fd, first, last, page, &s);
		if (r == 1)
			__atomic_store_n(&no_scan, 1, __ATOMIC_RELAXED);
	}
	if (r == 1) {
		memset(&s, 0, sizeof(s));
		r = count_entries(fd, first, last, &s);
	}
	if (r != 0) {
		errno = EIO;
		return -1;
	}
	s.pages = last - first + 1;
	*out = s;
	errno = saved;
	return 0;
}

int sharing_count(const void *addr, size_t len, struct forkshim_sharing *out)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC), r;

	if (fd < 0) {
		errno = EIO;
		return -1;
	}
	r = sharing_count_fd(fd, addr, len, out);
	close(fd);
	return r;
}
