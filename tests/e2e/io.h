/* Whole reads and writes over pipes for the e2e hosts; async-signal-safe,
 * so forked children of threaded hosts may use them. 0, or -1 on error or
 * end of file. */
#ifndef E2E_IO_H
#define E2E_IO_H

#include <errno.h>
#include <stddef.h>
#include <unistd.h>

static inline int read_all(int fd, void *buf, size_t n)
{
	for (size_t done = 0; done < n;) {
		ssize_t got = read(fd, (char *)buf + done, n - done);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return -1;
		done += (size_t)got;
	}
	return 0;
}

static inline int write_all(int fd, const void *buf, size_t n)
{
	for (size_t done = 0; done < n;) {
		ssize_t put = write(fd, (const char *)buf + done, n - done);

		if (put < 0 && errno == EINTR)
			continue;
		if (put <= 0)
			return -1;
		done += (size_t)put;
	}
	return 0;
}

#endif
