/* owned: descriptors the shim keeps (contract in owned.h).  Called by
 * log, config, jsonl (report, audit) and trace; calls nothing of the shim.
 * System calls only: async-signal-safe, errno may change. */
#include "owned.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* The lowest number we move to: far above what a program's open() calls
 * get (the lowest free number), below FD_SETSIZE and the usual soft limit
 * of 1024; half the limit when that is lower. */
static int base = 512;

void owned_init(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 1024)
		base = (int)(rl.rlim_cur / 2);
}

int owned_record(struct owned *o, int fd)
{
	struct stat st;

	if (fd < 0 || fstat(fd, &st) != 0) {
		o->fd = -1;
		return -1;
	}
	o->fd = fd;
	o->dev = (uint64_t)st.st_dev;
	o->ino = (uint64_t)st.st_ino;
	return 0;
}

int owned_adopt(struct owned *o, int fd)
{
	int high = fd >= 0 && fd < base ? fcntl(fd, F_DUPFD_CLOEXEC, base) : -1;

	if (high >= 0) {
		close(fd);
		fd = high;
	}
	if (owned_record(o, fd) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return 0;
}

int owned_still(const struct owned *o)
{
	struct stat st;

	return o->fd >= 0 && fstat(o->fd, &st) == 0 &&
	       (uint64_t)st.st_dev == o->dev && (uint64_t)st.st_ino == o->ino;
}

int owned_hold_low(int *held, int max)
{
	int nul = open("/dev/null", O_RDONLY | O_CLOEXEC), n = 0;

	if (nul < 0)
		return 0;
	if (nul >= base) {
		close(nul);
		return 0;
	}
	held[n++] = nul;
	while (n < max) {
		int fd = fcntl(nul, F_DUPFD_CLOEXEC, 0);

		if (fd < 0)
			break;
		if (fd >= base) {
			close(fd);
			break;
		}
		held[n++] = fd;
	}
	return n;
}

void owned_release_low(const int *held, int n)
{
	for (int i = 0; i < n; i++)
		close(held[i]);
}
