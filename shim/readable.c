/* readable: the freeze's EFAULT check (contract in readable.h).  Called
 * by the table (and tests/unit/readable.c, which builds this file in);
 * calls nothing of the shim but pmscan's definitions.  No malloc, no
 * stdio, no lock; errno kept. */
#include "readable.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "pmscan.h"

/* From <linux/fs.h> of Linux 6.11 (PROCMAP_QUERY; PAGEMAP_SCAN is in
 * pmscan.h), spelled out: the build machine's headers may predate it, and
 * the kernel that runs us may too. */
struct procmap_query {
	uint64_t size;
	uint64_t query_flags;
	uint64_t query_addr;
	uint64_t vma_start;
	uint64_t vma_end;
	uint64_t vma_flags;
	uint64_t vma_page_size;
	uint64_t vma_offset;
	uint64_t inode;
	uint32_t dev_major;
	uint32_t dev_minor;
	uint32_t vma_name_size;
	uint32_t build_id_size;
	uint64_t vma_name_addr;
	uint64_t build_id_addr;
};
#define PROCMAP_QUERY_IOCTL _IOWR('f', 17, struct procmap_query)
#define PROCMAP_QUERY_VMA_READABLE 0x01

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14 */
#endif

enum { UNSURE = -1, NO = 0, YES = 1, GO_ON = 2 };

static uintptr_t page_size(void)
{
	return (uintptr_t)sysconf(_SC_PAGESIZE);
}

int readable_by_pages(pid_t pid, const void *addr, size_t len)
{
	enum { BATCH = 512 };
	uintptr_t page = page_size();
	uintptr_t a = (uintptr_t)addr, end = a + len;
	uintptr_t p = a & ~(page - 1);
	struct iovec remote[BATCH];
	char sink[BATCH];
	struct iovec local = {sink, 0};

	while (p < end) {
		int n = 0;

		for (; n < BATCH && p < end; n++, p += page) {
			remote[n].iov_base = (void *)(p < a ? a : p);
			remote[n].iov_len = 1;
		}
		local.iov_len = (size_t)n;
		ssize_t got = process_vm_readv(pid, &local, 1, remote,
		                               (unsigned long)n, 0);
		if (got < 0 && (errno == ENOSYS || errno == EPERM))
			return UNSURE;
		if (got != n)
			return NO;
	}
	return YES;
}

/* Whether this kernel knows MADV_POPULATE_READ: 0 unknown yet, 1 yes, 2 no
 * (madvise with length 0 answers EINVAL for an unknown advice only). */
static int populate_known;

static int can_populate(uintptr_t page_start)
{
	int known = __atomic_load_n(&populate_known, __ATOMIC_RELAXED);

	if (known == 0) {
		known = madvise((void *)page_start, 0, MADV_POPULATE_READ) == 0
		            ? 1
		            : 2;
		__atomic_store_n(&populate_known, known, __ATOMIC_RELAXED);
	}
	return known == 1;
}

int readable_by_populate(const void *addr, size_t len)
{
	uintptr_t page = page_size(), start = (uintptr_t)addr & ~(page - 1);

	if (!can_populate(start))
		return UNSURE;
	/* Faults the pages in readable, as reading them would, without
	 * reading them: EFAULT where that would raise SIGSEGV or SIGBUS
	 * (guard pages, past a file's end), ENOMEM for a hole, EINVAL for a
	 * mapping without PROT_READ (or one populating cannot handle). */
	if (madvise((void *)start, (uintptr_t)addr + len - start,
	            MADV_POPULATE_READ) == 0)
		return YES;
	return errno == EFAULT || errno == ENOMEM ? NO : UNSURE;
}

/* A walk over the mappings that cover [need, end) in address order.  A
 * file mapping's pages past the file's end raise SIGBUS when read; they
 * are the tail of the mapping, so reading the last byte of each file
 * mapping's part of the range finds them (it reads one page of the
 * file). */
struct walk {
	uintptr_t need, end;
	pid_t pid;
	int ntails;
	struct iovec tails[16];
};

static int read_tails(struct walk *w)
{
	char sink[16];
	struct iovec local = {sink, (size_t)w->ntails};
	ssize_t got;

	if (w->ntails == 0)
		return YES;
	got = process_vm_readv(w->pid, &local, 1, w->tails,
	                       (unsigned long)w->ntails, 0);
	w->ntails = 0;
	if (got < 0 && (errno == ENOSYS || errno == EPERM))
		return UNSURE;
	return got == (ssize_t)local.iov_len ? YES : NO;
}

/* One mapping, [lo, hi); whether it settles the question. */
static int mapping(struct walk *w, uint64_t lo, uint64_t hi, int readable,
                   int file)
{
	if (hi <= w->need)
		return GO_ON; /* below the rest of the range */
	if (lo > w->need || !readable || hi <= lo)
		return NO;
	w->need = hi;
	if (file) {
		uintptr_t last = (hi < w->end ? hi : w->end) - 1;

		w->tails[w->ntails].iov_base = (void *)last;
		w->tails[w->ntails++].iov_len = 1;
		if (w->ntails == 16) {
			int r = read_tails(w);

			if (r != YES)
				return r;
		}
	}
	if (w->need < w->end)
		return GO_ON;
	return read_tails(w);
}

/* The mappings from PROCMAP_QUERY, one ioctl per mapping. */
static int query_mappings(int fd, struct walk *w)
{
	int r = GO_ON;

	while (r == GO_ON) {
		struct procmap_query q;

		memset(&q, 0, sizeof(q));
		q.size = sizeof(q);
		q.query_addr = w->need; /* no flags: the mapping covering it */
		if (ioctl(fd, PROCMAP_QUERY_IOCTL, &q) < 0)
			return errno == ENOENT ? NO : UNSURE;
		r = mapping(w, q.vma_start, q.vma_end,
		            q.vma_flags & PROCMAP_QUERY_VMA_READABLE,
		            q.inode != 0);
	}
	return r;
}

static const char *hex(const char *s, uint64_t *v)
{
	const char *from = s;

	for (*v = 0;; s++) {
		if (*s >= '0' && *s <= '9')
			*v = *v << 4 | (uint64_t)(*s - '0');
		else if (*s >= 'a' && *s <= 'f')
			*v = *v << 4 | (uint64_t)(*s - 'a' + 10);
		else
			return s > from ? s : NULL;
	}
}

static const char *field(const char *s)
{
	while (*s && *s != ' ')
		s++;
	while (*s == ' ')
		s++;
	return s;
}

/* "start-end perms offset dev inode path" */
static int mapping_line(struct walk *w, const char *line)
{
	uint64_t lo, hi;
	const char *s = hex(line, &lo), *inode;

	if (s == NULL || *s != '-' || (s = hex(s + 1, &hi)) == NULL ||
	    *s != ' ')
		return UNSURE;
	inode = field(field(field(s + 1)));
	if (*inode < '0' || *inode > '9')
		return UNSURE;
	return mapping(w, lo, hi, s[1] == 'r',
	               !(inode[0] == '0' && (inode[1] == ' ' || !inode[1])));
}

/* The same from the text of /proc/self/maps, read from its start; only
 * each line's head is kept, however long the line is. */
static int text_mappings(int fd, struct walk *w)
{
	char buf[1024], head[128];
	size_t hn = 0;

	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return UNSURE;
		if (n == 0)
			return NO; /* past the last mapping */
		for (ssize_t i = 0; i < n; i++) {
			int r;

			if (buf[i] != '\n') {
				if (hn < sizeof(head) - 1)
					head[hn++] = buf[i];
				continue;
			}
			head[hn] = '\0';
			hn = 0;
			r = mapping_line(w, head);
			if (r != GO_ON)
				return r;
		}
	}
}

int readable_by_mappings(pid_t pid, const void *addr, size_t len, int text_only)
{
	struct walk w = {
	    .need = (uintptr_t)addr, .end = (uintptr_t)addr + len, .pid = pid};
	int r = UNSURE, fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return UNSURE;
	if (!text_only)
		r = query_mappings(fd, &w);
	if (r == UNSURE) { /* before 6.11: ENOTTY */
		w.need = (uintptr_t)addr;
		w.ntails = 0;
		r = text_mappings(fd, &w);
	}
	close(fd);
	return r;
}

/* Whether this kernel can have lightweight guard pages (6.13 on) and
 * reports them to PAGEMAP_SCAN; learnt at the first scan. */
enum { SCAN_UNKNOWN, SCAN_WORKS, NO_GUARD_PAGES, GUARDS_UNSEEN };
static int scan_state;

static int learn_scan_state(uintptr_t page_start, int err)
{
	int state = GUARDS_UNSEEN;

	if (err == ENOTTY) /* no PAGEMAP_SCAN (6.7): older than guards */
		state = NO_GUARD_PAGES;
	else if (err == EINVAL) /* PAGE_IS_GUARD unknown: guards? */
		state = madvise((void *)page_start, 0, MADV_GUARD_INSTALL) == 0
		            ? GUARDS_UNSEEN
		            : NO_GUARD_PAGES;
	else
		return UNSURE; /* this call failed: ask again next time */
	__atomic_store_n(&scan_state, state, __ATOMIC_RELAXED);
	return state == NO_GUARD_PAGES ? YES : UNSURE;
}

int readable_no_guard_pages(const void *addr, size_t len)
{
	uintptr_t page = page_size();
	uintptr_t start = (uintptr_t)addr & ~(page - 1);
	uintptr_t end = ((uintptr_t)addr + len + page - 1) & ~(page - 1);
	int state = __atomic_load_n(&scan_state, __ATOMIC_RELAXED);
	struct pmscan_region found;
	struct pmscan_arg s;
	long n;
	int fd;

	if (state == NO_GUARD_PAGES)
		return YES;
	if (state == GUARDS_UNSEEN || end < start)
		return UNSURE;
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return UNSURE;
	memset(&s, 0, sizeof(s));
	s.size = sizeof(s);
	s.start = start;
	s.end = end;
	s.vec = (uintptr_t)&found;
	s.vec_len = 1;
	s.max_pages = 1;
	s.category_mask = PMSCAN_GUARD;
	s.return_mask = PMSCAN_GUARD;
	n = ioctl(fd, PMSCAN_IOCTL, &s);
	if (n < 0) {
		int err = errno;

		close(fd);
		return learn_scan_state(start, err);
	}
	close(fd);
	if (state == SCAN_UNKNOWN)
		__atomic_store_n(&scan_state, SCAN_WORKS, __ATOMIC_RELAXED);
	if (n > 0)
		return NO;
	return s.walk_end == end ? YES : UNSURE;
}

static int by_system_calls(pid_t pid, const void *addr, size_t len)
{
	int r = readable_by_mappings(pid, addr, len, 0);

	return r == YES ? readable_no_guard_pages(addr, len) : r;
}

int readable_range(pid_t pid, const void *addr, size_t len, unsigned which)
{
	uintptr_t page = page_size(), a = (uintptr_t)addr;
	uintptr_t pages = (a + len - 1) / page - a / page + 1;
	int saved = errno, r = UNSURE;
	int large = pages > (can_populate(a & ~(page - 1))
	                         ? READABLE_SMALL_PAGES
	                         : READABLE_SMALL_PAGES_NO_POPULATE);

	if (!(which & (large ? READABLE_LARGE : READABLE_SMALL)))
		return 1; /* the other call's */
	if (large)
		r = by_system_calls(pid, addr, len);
	else
		r = readable_by_populate(addr, len);
	if (r == UNSURE)
		r = readable_by_pages(pid, addr, len);
	if (r == UNSURE && !large)
		r = by_system_calls(pid, addr, len);
	errno = saved;
	return r != NO; /* nothing could tell: trust the caller */
}
