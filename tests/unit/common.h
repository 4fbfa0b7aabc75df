/* Shared helpers of the unit tests: fresh pages, byte patterns, and forked
 * children that answer over pipes.
 *
 * A forked child never asserts (Criterion cannot hear it): it writes what it
 * saw to a pipe, and the test process checks it.  Children end with _exit
 * and never return into the runner. */
#ifndef UNIT_COMMON_H
#define UNIT_COMMON_H

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "forkshim.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13 */
#endif

static inline size_t page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

/* n fresh private read-write pages, every byte written (so resident), small
 * pages only so that page counts stay exact. */
static inline unsigned char *map_pages(size_t n)
{
	unsigned char *p = mmap(NULL, n * page_size(), PROT_READ | PROT_WRITE,
	                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	cr_assert(p != MAP_FAILED, "mmap of %zu pages: %s", n, strerror(errno));
	madvise(p, n * page_size(), MADV_NOHUGEPAGE);
	memset(p, 0x5a, n * page_size());
	return p;
}

static inline void unmap_pages(void *p, size_t n)
{
	munmap(p, n * page_size());
}

static inline unsigned char pattern_byte(unsigned seed, size_t i)
{
	return (unsigned char)(seed * 131u + i * 7u + (i >> 8) + 1u);
}

static inline void fill_pattern(void *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		((unsigned char *)p)[i] = pattern_byte(seed, i);
}

static inline int pattern_ok(const void *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		if (((const unsigned char *)p)[i] != pattern_byte(seed, i))
			return 0;
	return 1;
}

/* The three answers a handle that does not resolve may give. */
static inline int is_handle_errno(int e)
{
	return e == EBADF || e == ENOENT || e == ESTALE;
}

/* What forkshim_deref said about a handle, in a form a pipe can carry.
 * bytes_ok: the region holds fill_pattern(seed) (only when it resolved). */
struct answer {
	const void *addr;
	size_t len;
	int err;
	int bytes_ok;
};

static inline struct answer ask(forkshim_handle h, unsigned seed)
{
	struct answer a = {0};
	size_t len = 0;

	errno = 0;
	a.addr = forkshim_deref(h, &len);
	if (a.addr == NULL) {
		a.err = errno;
		return a;
	}
	a.len = len;
	a.bytes_ok = pattern_ok(a.addr, len, seed);
	return a;
}

/* Pipe I/O that survives short writes and EINTR.  put() in a child that
 * cannot write has nobody to tell: it exits with 99. */
static inline void put(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			_exit(99);
		p += w;
		n -= (size_t)w;
	}
}

/* 0 when all n bytes came, -1 on EOF or error. */
static inline int get(int fd, void *buf, size_t n)
{
	char *p = buf;

	while (n > 0) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* A forked child: the test writes to `to`, reads what it answers from
 * `from`.  The child's body reads `in` and writes `out`. */
struct child {
	pid_t pid;
	int to;
	int from;
};

typedef void child_body(int in, int out, void *arg);

/* The test's ends of every live child's pipes: a new child closes them, so
 * that closing `to` is an end of file its owner sees. */
static int child_fds[64];
static size_t child_nfds;

/* Forks a child running body; pid -1 when that failed.  Usable in a child
 * too (it does not assert). */
static inline struct child child_spawn(child_body *body, void *arg)
{
	int down[2], up[2];
	struct child c = {-1, -1, -1};

	if (pipe2(down, O_CLOEXEC) != 0)
		return c;
	if (pipe2(up, O_CLOEXEC) != 0) {
		close(down[0]);
		close(down[1]);
		return c;
	}
	c.pid = fork();
	if (c.pid == 0) {
		for (size_t i = 0; i < child_nfds; i++)
			close(child_fds[i]);
		child_nfds = 0;
		close(down[1]);
		close(up[0]);
		body(down[0], up[1], arg);
		_exit(0);
	}
	close(down[0]);
	close(up[1]);
	if (c.pid < 0) {
		close(down[1]);
		close(up[0]);
		return c;
	}
	c.to = down[1];
	c.from = up[0];
	if (child_nfds + 2 <= sizeof child_fds / sizeof child_fds[0]) {
		child_fds[child_nfds++] = c.to;
		child_fds[child_nfds++] = c.from;
	}
	return c;
}

static inline struct child child_start(child_body *body, void *arg)
{
	struct child c = child_spawn(body, arg);

	cr_assert(c.pid > 0, "fork: %s", strerror(errno));
	return c;
}

/* Closes the test's ends of the child's pipes. */
static inline void child_close(struct child *c)
{
	int *fds[] = {&c->to, &c->from};

	for (int k = 0; k < 2; k++) {
		int fd = *fds[k];

		if (fd < 0)
			continue;
		for (size_t i = 0; i < child_nfds; i++)
			if (child_fds[i] == fd)
				child_fds[i] = child_fds[--child_nfds];
		close(fd);
		*fds[k] = -1;
	}
}

/* Closes both pipes, reaps the child, returns its exit code (128+signal
 * when killed). */
static inline int child_finish(struct child *c)
{
	int status;

	child_close(c);
	while (waitpid(c->pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

/* Tells a waiting body to go on: one byte. */
static inline void child_signal(struct child *c)
{
	char b = 'g';

	put(c->to, &b, 1);
}

/* A child body that stays alive until the test closes its pipe. */
static inline void body_wait(int in, int out, void *arg)
{
	char b;

	(void)out;
	(void)arg;
	while (read(in, &b, 1) > 0)
		;
}

/* One region the table should hold, and what it should say about it. */
struct expect_region {
	forkshim_handle h;
	const void *addr;
	size_t len;
	unsigned flags;
	unsigned freezes;
	const char *name;
};

/* Checks that every region answers deref, find and info exactly as
 * expected; `after` names the call just made, for the messages. */
static inline void expect_table(const struct expect_region *r, size_t n,
                                const char *after)
{
	for (size_t i = 0; i < n; i++) {
		const unsigned char *a = r[i].addr;
		struct forkshim_info info;
		size_t len = 0;

		cr_expect(forkshim_deref(r[i].h, &len) == r[i].addr,
		          "after %s: region %zu no longer derefs (errno %d)",
		          after, i, errno);
		cr_expect(len == r[i].len, "after %s: region %zu len %zu",
		          after, i, len);
		cr_expect(forkshim_find(a, r[i].len) == r[i].h,
		          "after %s: find of region %zu", after, i);
		cr_expect(forkshim_find(a, 1) == r[i].h &&
		              forkshim_find(a + r[i].len - 1, 1) == r[i].h,
		          "after %s: find of region %zu's ends", after, i);
		memset(&info, 0xee, sizeof info);
		cr_expect(forkshim_info(r[i].h, &info) == 0,
		          "after %s: info of region %zu", after, i);
		cr_expect(info.addr == r[i].addr && info.len == r[i].len,
		          "after %s: info range of region %zu", after, i);
		cr_expect(info.flags == r[i].flags,
		          "after %s: region %zu flags %u", after, i,
		          info.flags);
		cr_expect(info.freezes == r[i].freezes,
		          "after %s: region %zu freezes %u, expected %u", after,
		          i, info.freezes, r[i].freezes);
		cr_expect(strncmp(info.name, r[i].name, FORKSHIM_NAME_MAX) == 0,
		          "after %s: region %zu name", after, i);
	}
}

#endif
