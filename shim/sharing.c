#include "sharing.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define PM_PRESENT (1ull << 63)
#define PM_SWAPPED (1ull << 62)
#define PM_EXCLUSIVE (1ull << 56)

int sharing_count(const void *addr, size_t len, struct forkshim_sharing *out)
{
	enum { BATCH = 512 };
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	uintptr_t first = (uintptr_t)addr / page;
	uintptr_t last = ((uintptr_t)addr + len - 1) / page;
	struct forkshim_sharing s;
	uint64_t pm[BATCH];
	int fd, saved = errno;

	memset(&s, 0, sizeof(s));
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		errno = EIO;
		return -1;
	}
	for (uintptr_t p = first; p <= last;) {
		size_t want = last - p + 1 < BATCH ? last - p + 1 : BATCH;
		ssize_t got = pread(fd, pm, want * sizeof(uint64_t),
		                    (off_t)(p * sizeof(uint64_t)));

		if (got <= 0 || got % sizeof(uint64_t) != 0) {
			close(fd);
			errno = EIO;
			return -1;
		}
		for (size_t i = 0; i < (size_t)got / sizeof(uint64_t); i++) {
			if (pm[i] & PM_PRESENT) {
				s.resident++;
				if (pm[i] & PM_EXCLUSIVE)
					s.exclusive++;
				else
					s.shared++;
			} else if (pm[i] & PM_SWAPPED) {
				s.swapped++;
			}
		}
		p += (size_t)got / sizeof(uint64_t);
	}
	close(fd);
	s.pages = last - first + 1;
	*out = s;
	errno = saved;
	return 0;
}
