/* jsonl: one JSON line built in a fixed buffer, and written with write(2).
 *
 * For the record files under FORKSHIM_REPORT (audit.c, report.c): no
 * allocation, no stdio, no lock, so async-signal-safe.  A struct jb's end
 * leaves room for the closing bytes; what does not fit is cut. */
#ifndef FORKSHIM_JSONL_H
#define FORKSHIM_JSONL_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>

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

static inline void write_all(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, s, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

/* DIR/PREFIXPID.jsonl, or DIR/PREFIXPID-N.jsonl for N > 0. */
static inline void jsonl_path(char *path, size_t size, const char *dir,
                              const char *prefix, pid_t pid, int n)
{
	struct jb b = {path, path + size - 1};

	put(&b, dir);
	put(&b, "/");
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

/* Makes the first of pid's names that does not exist yet, with
 * O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600; path gets the name.  Returns the
 * fd, or -1 with errno. */
static inline int jsonl_create(const char *dir, const char *prefix, pid_t pid,
                               char *path, size_t size, int flags)
{
	int fd = -1;

	for (int n = 0; fd < 0 && n < JSONL_NAMES; n++) {
		jsonl_path(path, size, dir, prefix, pid, n);
		fd = open(path,
		          O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC |
		              flags,
		          0600);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	return fd;
}

#endif
