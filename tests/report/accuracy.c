/* forkshim_sharing against the kernel's own accounting: a child writes
 * exactly K pages of a frozen region; in both processes the region's
 * shared count drops by exactly K and its exclusive count grows by K, and
 * /proc/PID/smaps of the same range (the region is a mapping of its own,
 * so its smaps block is the region's) says the same in kB.  Also: the
 * same with the figures taken while the child is still writing half of
 * them, and what a transparent huge page does to the counts (README). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "forkshim.h"

enum { N = 96, K = 17 };

struct smaps {
	long shared_kb, private_kb, rss_kb, anon_huge_kb;
	int found;
};

/* The smaps block of the mapping that starts at addr in process pid. */
static struct smaps smaps_of(pid_t pid, const void *addr)
{
	char path[64], line[512], start[32];
	struct smaps s = {0, 0, 0, 0, 0};
	FILE *f;
	int in = 0;

	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	snprintf(start, sizeof(start), "%lx-", (unsigned long)(uintptr_t)addr);
	f = fopen(path, "r");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f) != NULL) {
		long kb;
		char key[64];

		if (strncmp(line, start, strlen(start)) == 0) {
			in = s.found = 1;
			continue;
		}
		if (!in)
			continue;
		if (strncmp(line, "VmFlags:", 8) == 0)
			break;
		if (sscanf(line, "%63[^:]: %ld kB", key, &kb) != 2)
			continue;
		if (strncmp(key, "Shared_", 7) == 0 &&
		    strstr(key, "Hugetlb") == NULL)
			s.shared_kb += kb;
		else if (strncmp(key, "Private_", 8) == 0 &&
		         strstr(key, "Hugetlb") == NULL)
			s.private_kb += kb;
		else if (strcmp(key, "Rss") == 0)
			s.rss_kb = kb;
		else if (strcmp(key, "AnonHugePages") == 0)
			s.anon_huge_kb = kb;
	}
	fclose(f);
	return s;
}

static long kb_per_page(void)
{
	return sysconf(_SC_PAGESIZE) / 1024;
}

/* n pages that are a mapping of their own: holes on both sides. */
static char *own_mapping(size_t n, size_t align, int huge)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE), len = n * ps;
	size_t slack = align + 2 * ps;
	char *raw = mmap(NULL, len + slack, PROT_READ | PROT_WRITE,
	                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *p;

	cr_assert(raw != MAP_FAILED, "mmap: %s", strerror(errno));
	p = (char *)(((uintptr_t)raw + ps + align - 1) / align * align);
	if (p > raw)
		munmap(raw, (size_t)(p - raw));
	munmap(p + len, (size_t)(raw + len + slack - (p + len)));
	madvise(p, len, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	memset(p, 0x3c, len);
	return p;
}

struct seen {
	int rc;
	struct forkshim_sharing before, after;
};

/* The child: figures, then K writes when told ('w'; 'q' ends it), figures
 * again, then it waits for the parent to read its smaps. */
static void child(forkshim_handle h, char *p, size_t first, int in, int out)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE);
	struct seen s;
	char b;

	memset(&s, 0, sizeof(s));
	s.rc = forkshim_sharing(h, &s.before);
	if (read(in, &b, 1) != 1)
		_exit(1);
	if (b == 'q')
		_exit(0);
	for (size_t i = first; i < first + K; i++)
		p[i * ps] ^= 1;
	s.rc |= forkshim_sharing(h, &s.after);
	if (write(out, &s, sizeof(s)) != sizeof(s))
		_exit(1);
	(void)!read(in, &b, 1);
	_exit(0);
}

struct family {
	pid_t pid;
	int to, from;
};

static struct family start(forkshim_handle h, char *p, size_t first)
{
	int down[2], up[2];
	struct family f;

	cr_assert(pipe(down) == 0 && pipe(up) == 0);
	f.pid = fork();
	cr_assert(f.pid >= 0);
	if (f.pid == 0) {
		close(down[1]);
		close(up[0]);
		child(h, p, first, down[0], up[1]);
	}
	close(down[0]);
	close(up[1]);
	f.to = down[1];
	f.from = up[0];
	return f;
}

static void finish(struct family *f)
{
	int st;

	/* A byte, not EOF: a later sibling holds the pipe's write end too. */
	cr_assert(write(f->to, "q", 1) == 1);
	close(f->to);
	cr_assert(waitpid(f->pid, &st, 0) == f->pid);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
	close(f->from);
}

static void get(forkshim_handle h, struct forkshim_sharing *s)
{
	cr_assert(forkshim_sharing(h, s) == 0, "sharing: %s", strerror(errno));
}

static void expect_split(const char *who, const struct forkshim_sharing *s,
                         size_t shared, size_t exclusive)
{
	cr_expect(s->pages == N && s->resident == N,
	          "%s: pages %zu resident %zu, expected %d", who, s->pages,
	          s->resident, N);
	cr_expect(s->shared == shared, "%s: shared %zu, expected %zu", who,
	          s->shared, shared);
	cr_expect(s->exclusive == exclusive, "%s: exclusive %zu, expected %zu",
	          who, s->exclusive, exclusive);
}

static void expect_smaps(const char *who, pid_t pid, const void *p,
                         const struct forkshim_sharing *s)
{
	struct smaps m = smaps_of(pid, p);

	cr_assert(m.found, "%s: no smaps block at %p", who, p);
	cr_expect(m.rss_kb == (long)s->resident * kb_per_page(),
	          "%s: smaps Rss %ld kB, sharing resident %zu pages", who,
	          m.rss_kb, s->resident);
	cr_expect(m.shared_kb == (long)s->shared * kb_per_page(),
	          "%s: smaps Shared_* %ld kB, sharing shared %zu pages", who,
	          m.shared_kb, s->shared);
	cr_expect(m.private_kb == (long)s->exclusive * kb_per_page(),
	          "%s: smaps Private_* %ld kB, sharing exclusive %zu pages",
	          who, m.private_kb, s->exclusive);
}

Test(accuracy, child_writing_k_pages_moves_exactly_k_from_shared_to_private)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE);
	char *p = own_mapping(N, ps, 0);
	forkshim_handle h = forkshim_freeze(p, N * ps, "accuracy", 0);
	struct forkshim_sharing mine_before, mine_after;
	struct family f;
	struct seen s;

	cr_assert(h != 0, "freeze: %s", strerror(errno));
	f = start(h, p, 11);
	cr_assert(write(f.to, "w", 1) == 1);
	cr_assert(read(f.from, &s, sizeof(s)) == sizeof(s), "child died");
	cr_expect(s.rc == 0, "sharing failed in the child");
	/* Before its writes the child shared everything. */
	expect_split("child, before", &s.before, N, 0);
	expect_split("child, after", &s.after, N - K, K);
	cr_expect(s.before.shared - s.after.shared == K &&
	              s.after.exclusive - s.before.exclusive == K,
	          "child: shared dropped by %zu, exclusive grew by %zu",
	          s.before.shared - s.after.shared,
	          s.after.exclusive - s.before.exclusive);
	expect_smaps("child", f.pid, p, &s.after);
	get(h, &mine_after);
	expect_split("parent, after the child wrote", &mine_after, N - K, K);
	expect_smaps("parent", getpid(), p, &mine_after);
	finish(&f);
	get(h, &mine_before);
	expect_split("parent, child gone", &mine_before, 0, N);
	expect_smaps("parent, child gone", getpid(), p, &mine_before);
}

Test(accuracy, figures_match_smaps_with_two_children_writing_other_pages)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE);
	char *p = own_mapping(N, ps, 0);
	forkshim_handle h = forkshim_freeze(p, N * ps, "two", 0);
	struct forkshim_sharing mine;
	struct family a, b;
	struct seen sa, sb;

	cr_assert(h != 0, "freeze: %s", strerror(errno));
	a = start(h, p, 0);
	b = start(h, p, 40);
	cr_assert(write(a.to, "w", 1) == 1);
	cr_assert(read(a.from, &sa, sizeof(sa)) == sizeof(sa));
	cr_assert(write(b.to, "w", 1) == 1);
	cr_assert(read(b.from, &sb, sizeof(sb)) == sizeof(sb));
	/* Each child copied its own K pages; the parent's copies of those
	 * pages are still shared with the other child. */
	expect_split("child a", &sa.after, N - K, K);
	expect_split("child b", &sb.after, N - K, K);
	expect_smaps("child a", a.pid, p, &sa.after);
	expect_smaps("child b", b.pid, p, &sb.after);
	get(h, &mine);
	expect_split("parent", &mine, N, 0);
	expect_smaps("parent", getpid(), p, &mine);
	finish(&a);
	finish(&b);
}

/* A PMD-mapped transparent huge page: bit 56 is answered per huge page in
 * the process that still maps it whole, so the parent counts all 512
 * pages shared while smaps sees the copied one as private; the child,
 * whose copy split the huge mapping into small pages, is exact. */
Test(accuracy, huge_page_in_the_parent_counts_whole_as_shared)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE), huge = 2u << 20;
	size_t pages = huge / ps;
	char *p = own_mapping(pages, huge, 1);
	forkshim_handle h = forkshim_freeze(p, huge, "huge", 0);
	struct forkshim_sharing mine;
	struct smaps m = smaps_of(getpid(), p);
	int down[2], up[2];
	struct seen s;
	pid_t pid;

	cr_assert(h != 0, "freeze: %s", strerror(errno));
	if (m.anon_huge_kb != (long)(huge / 1024))
		cr_skip_test("no transparent huge page here (AnonHugePages "
		             "%ld kB)",
		             m.anon_huge_kb);
	cr_assert(pipe(down) == 0 && pipe(up) == 0);
	pid = fork();
	if (pid == 0) {
		char b;

		close(down[1]);
		memset(&s, 0, sizeof(s));
		p[5 * ps] ^= 1;
		s.rc = forkshim_sharing(h, &s.after);
		(void)!write(up[1], &s, sizeof(s));
		(void)!read(down[0], &b, 1);
		_exit(0);
	}
	cr_assert(read(up[0], &s, sizeof(s)) == sizeof(s));
	cr_expect(s.rc == 0 && s.after.shared == pages - 1 &&
	              s.after.exclusive == 1,
	          "child: shared %zu exclusive %zu", s.after.shared,
	          s.after.exclusive);
	m = smaps_of(pid, p);
	cr_expect(m.private_kb == kb_per_page() && m.anon_huge_kb == 0,
	          "child smaps: private %ld kB, AnonHugePages %ld kB",
	          m.private_kb, m.anon_huge_kb);
	get(h, &mine);
	m = smaps_of(getpid(), p);
	cr_expect(mine.shared == pages && mine.exclusive == 0,
	          "parent: shared %zu exclusive %zu", mine.shared,
	          mine.exclusive);
	cr_expect(m.anon_huge_kb == (long)(huge / 1024) &&
	              m.private_kb == kb_per_page(),
	          "parent smaps: AnonHugePages %ld kB, private %ld kB",
	          m.anon_huge_kb, m.private_kb);
	close(down[1]);
	waitpid(pid, NULL, 0);
}

/* Freezing a range whose pages a live child shares must not copy them
 * (the readability check must not take the pages for this process). */
Test(accuracy, freezing_pages_a_live_child_shares_copies_none)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE);
	char *p = own_mapping(N, ps, 0);
	forkshim_handle h0 = forkshim_freeze(p, ps, "first page", 0);
	struct forkshim_sharing s;
	struct family f;
	forkshim_handle h;

	cr_assert(h0 != 0);
	f = start(h0, p, 0);
	h = forkshim_freeze(p + ps, (N - 1) * ps, "late", 0);
	cr_assert(h != 0, "freeze: %s", strerror(errno));
	get(h, &s);
	cr_expect(s.shared == N - 1 && s.exclusive == 0,
	          "after the freeze: shared %zu exclusive %zu of %d", s.shared,
	          s.exclusive, N - 1);
	finish(&f);
}
