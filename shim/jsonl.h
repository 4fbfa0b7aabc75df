/* jsonl: one JSON line built in a fixed buffer, and written with write(2);
 * the files of the report directory, made and opened relative to its
 * descriptor (config_report_fd), never by path.
 *
 * For the record files under FORKSHIM_REPORT (audit.c, report.c): no
 * allocation, no stdio, no lock, so async-signal-safe.  A struct jb's end
 * leaves room for the closing bytes; what does not fit is cut.  Every
 * write first checks that the descriptor is still the file's (owned.h). */
#ifndef FORKSHIM_JSONL_H
#define FORKSHIM_JSONL_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "owned.h"

struct jb {
	char *p, *end;
};

static inline void put(struct jb *b, const char *s)
{
	while (*s && b->p < b->end)
		*b->p++ = *s++;
}

static inline void put_u(struct jb *b, uint64_t v, unsigned base)
{
	char d[24];
	int n = 0;

	do {
		d[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	while (n > 0 && b->p < b->end)
		*b->p++ = d[--n];
}

static inline void put_hex(struct jb *b, uint64_t v)
{
	put(b, "\"0x");
	put_u(b, v, 16);
	put(b, "\"");
}

static inline void put_str(struct jb *b, const char *s)
{
	put(b, "\"");
	for (; *s && b->p + 6 < b->end; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			*b->p++ = '\\';
			*b->p++ = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			put(b, "\\u00");
			*b->p++ = "0123456789abcdef"[c >> 4];
			*b->p++ = "0123456789abcdef"[c & 15];
		} else {
			*b->p++ = (char)c;
		}
	}
	put(b, "\"");
}

/* ,"key":value */
static inline void put_key_u(struct jb *b, const char *key, uint64_t v)
{
	put(b, ",\"");
	put(b, key);
	put(b, "\":");
	put_u(b, v, 10);
}

/* Writes all of s to o's descriptor, after checking it is still o's
 * file (owned.h); 0, or -1 (not ours any more, or a failed write: errno
 * says which, EBADF for the first). */
static inline int write_all(const struct owned *o, const char *s, size_t n)
{
	if (!owned_still(o)) {
		errno = EBADF;
		return -1;
	}
	while (n > 0) {
		ssize_t w = write(o->fd, s, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = EIO;
			return -1;
		}
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

/* PREFIXPID.jsonl, or PREFIXPID-N.jsonl for N > 0: a name in the report
 * directory. */
static inline void jsonl_name(char *name, size_t size, const char *prefix,
                              pid_t pid, int n)
{
	struct jb b = {name, name + size - 1};

	put(&b, prefix);
	put_u(&b, (uint64_t)pid, 10);
	if (n > 0) {
		put(&b, "-");
		put_u(&b, (uint64_t)n, 10);
	}
	put(&b, ".jsonl");
	*b.p = '\0';
}

#define JSONL_NAMES 16 /* N = 0..15: a recycled pid's old files */

/* Makes the first of pid's names that does not exist yet in the report
 * directory, with O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600, moved to a high
 * descriptor (owned.h); name gets the name.  0, or -1 with errno. */
static inline int jsonl_create(struct owned *o, const char *prefix, pid_t pid,
                               char *name, size_t size, int flags)
{
	int dirfd = config_report_fd(), fd = -1;

	if (dirfd < 0) {
		errno = EBADF;
		return -1;
	}
	for (int n = 0; fd < 0 && n < JSONL_NAMES; n++) {
		jsonl_name(name, size, prefix, pid, n);
		fd = openat(dirfd, name,
		            O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		                O_CLOEXEC | flags,
		            0600);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	if (fd < 0) {
		name[0] = '\0';
		return -1;
	}
	return owned_adopt(o, fd);
}

/* A file of the report directory the shim may read: a regular file (not a
 * FIFO, a device or a symlink: opened O_NOFOLLOW|O_NONBLOCK, so opening
 * one never blocks), owned by the effective user, made at or after since
 * (seconds, CLOCK_REALTIME; its birth time, or its change time where the
 * file system keeps none), and at most max bytes.  Returns the descriptor
 * (O_RDONLY, or O_RDWR|O_APPEND with rdwr) and stores the size, or -1: ENOENT
 * when there is no such name, EPERM when it breaks a rule, EFBIG when only its
 * size does. */
static inline int jsonl_open_ours(const char *name, int rdwr, int64_t since,
                                  uint64_t max, uint64_t *size)
{
	int dirfd = config_report_fd(), fd;
	struct statx sx;

	if (dirfd < 0) {
		errno = EBADF;
		return -1;
	}
	fd = openat(dirfd, name,
	            (rdwr ? O_RDWR | O_APPEND : O_RDONLY) | O_NOFOLLOW |
	                O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errno != ENOENT)
			errno = EPERM; /* a symlink (ELOOP), no access... */
		return -1;
	}
	if (statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS | STATX_BTIME,
	          &sx) != 0 ||
	    !S_ISREG(sx.stx_mode) || sx.stx_uid != geteuid() ||
	    ((sx.stx_mask & STATX_BTIME) ? sx.stx_btime.tv_sec
	                                 : sx.stx_ctime.tv_sec) < since) {
		close(fd);
		errno = EPERM;
		return -1;
	}
	if (sx.stx_size > max) {
		close(fd);
		errno = EFBIG;
		return -1;
	}
	*size = sx.stx_size;
	return fd;
}

/* Seconds now, less one: what jsonl_open_ours's since is compared with
 * (file times come from a coarser clock). */
static inline int64_t jsonl_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return (int64_t)ts.tv_sec - 1;
}

#endif
