/* shim/readable.c, compiled into this test: each way of telling whether a
 * range is mapped readable (MADV_POPULATE_READ, which may only say it
 * cannot tell for a mapping without PROT_READ; one byte per page through
 * process_vm_readv,
 * PROCMAP_QUERY, the text of /proc/self/maps, PAGEMAP_SCAN for guard
 * pages) must give the same answer on holes, PROT_NONE and other
 * unreadable pages, guard pages, unaligned ends and ranges over several
 * mappings, and readable_range() must agree with them at every size. */
#include <stdio.h>
#include <sys/stat.h>

#include "common.h"
#include "readable.h"

#define PAGES 300 /* above READABLE_SMALL_PAGES: the large path */

/* Asks every way about [addr, addr+len) and expects `want` from each
 * that can tell (-1: it cannot here); the mappings alone cannot see guard
 * pages, so a guard page case passes want_mappings apart. */
static void expect_ways(const void *addr, size_t len, int want,
                        int want_mappings, const char *what)
{
	pid_t pid = getpid();
	uintptr_t a = (uintptr_t)addr, ps = page_size();
	int small = (a + len - 1) / ps - a / ps < READABLE_SMALL_PAGES;
	/* It populates every mapping in the range: small ranges only. */
	int populate = small ? readable_by_populate(addr, len) : want;
	int pages = readable_by_pages(pid, addr, len);
	int query = readable_by_mappings(pid, addr, len, 0);
	int text = readable_by_mappings(pid, addr, len, 1);
	int range;

	errno = 1234;
	range = readable_range(pid, addr, len, READABLE_SMALL | READABLE_LARGE);
	cr_expect(errno == 1234, "%s: readable_range changed errno to %d", what,
	          errno);
	cr_expect(populate == want || (want == 0 && populate == -1),
	          "%s: MADV_POPULATE_READ %d, expected %d", what, populate,
	          want);
	cr_expect(pages == want, "%s: page by page %d, expected %d", what,
	          pages, want);
	cr_expect(query == want_mappings, "%s: PROCMAP_QUERY %d, expected %d",
	          what, query, want_mappings);
	cr_expect(text == want_mappings, "%s: maps text %d, expected %d", what,
	          text, want_mappings);
	cr_expect(range == want, "%s: readable_range %d, expected %d", what,
	          range, want);
}

static void expect_all(const void *addr, size_t len, int want, const char *what)
{
	expect_ways(addr, len, want, want, what);
}

Test(readable, readable_pages_are_readable_at_every_size)
{
	unsigned char *p = map_pages(PAGES);
	size_t ps = page_size();

	expect_all(p, 1, 1, "one byte");
	expect_all(p + ps - 1, 2, 1, "two bytes over a page boundary");
	expect_all(p, ps, 1, "one page");
	expect_all(p + 1, READABLE_SMALL_PAGES * ps, 1,
	           "the largest small range plus one page, unaligned");
	expect_all(p, PAGES * ps, 1, "every page");
	expect_all(p + 17, PAGES * ps - 34, 1, "every page, unaligned ends");
	cr_expect(readable_no_guard_pages(p, PAGES * ps) != 0,
	          "PAGEMAP_SCAN found a guard page where there is none");
}

Test(readable, a_range_over_several_readable_mappings_is_readable)
{
	unsigned char *p = map_pages(PAGES);
	size_t ps = page_size();

	/* r--, rw-, r-x, rw-: four mappings the kernel cannot merge. */
	cr_assert(mprotect(p + 50 * ps, 50 * ps, PROT_READ) == 0);
	cr_assert(mprotect(p + 120 * ps, 10 * ps, PROT_READ | PROT_EXEC) == 0);
	expect_all(p, PAGES * ps, 1, "r--, rw-, r-x, rw-");
	expect_all(p + 50 * ps - 1, 2, 1, "rw- then r--, two bytes");
}

Test(readable, a_prot_none_page_makes_the_range_unreadable)
{
	unsigned char *p = map_pages(PAGES);
	size_t ps = page_size();

	cr_assert(mprotect(p + 100 * ps, ps, PROT_NONE) == 0);
	expect_all(p, PAGES * ps, 0, "PROT_NONE page in the middle");
	expect_all(p + 100 * ps - 1, 2, 0, "last readable byte + PROT_NONE");
	expect_all(p + 101 * ps - 1, 2, 0, "last PROT_NONE byte + readable");
	expect_all(p + 100 * ps + 5, 1, 0, "one PROT_NONE byte");
	expect_all(p + 101 * ps, 99 * ps, 1, "the readable pages after it");
	expect_all(p, 100 * ps, 1, "the readable pages before it");
	/* Each size is one call's: table.c makes one before the lock, one
	 * under it. */
	cr_expect(readable_range(getpid(), p, PAGES * ps, READABLE_SMALL) == 1);
	cr_expect(readable_range(getpid(), p, PAGES * ps, READABLE_LARGE) == 0);
	cr_expect(readable_range(getpid(), p + 100 * ps, 1, READABLE_LARGE) ==
	          1);
	cr_expect(readable_range(getpid(), p + 100 * ps, 1, READABLE_SMALL) ==
	          0);
}

Test(readable, write_only_and_exec_only_pages_are_unreadable)
{
	unsigned char *p = map_pages(PAGES);
	size_t ps = page_size();

	cr_assert(mprotect(p + 70 * ps, ps, PROT_WRITE) == 0);
	cr_assert(mprotect(p + 140 * ps, ps, PROT_EXEC) == 0);
	expect_all(p, 100 * ps, 0, "a write-only page");
	expect_all(p + 100 * ps, 100 * ps, 0, "an exec-only page");
}

Test(readable, holes_make_the_range_unreadable)
{
	unsigned char *p = map_pages(PAGES);
	size_t ps = page_size();

	cr_assert(munmap(p + 150 * ps, ps) == 0);
	cr_expect(readable_by_populate(p + 149 * ps, 2 * ps) == 0,
	          "MADV_POPULATE_READ cannot tell a hole");
	expect_all(p, PAGES * ps, 0, "a hole in the middle");
	expect_all(p + 150 * ps, ps, 0, "the hole alone");
	expect_all(p + 150 * ps - 1, 2, 0, "mapped byte + hole byte");
	expect_all(p + 151 * ps, 49 * ps, 1, "the pages after the hole");
	expect_all(p + 199 * ps, (size_t)1 << 46, 0,
	           "a mapped page, then far past every mapping");
	cr_assert(munmap(p + 199 * ps, ps) == 0);
	expect_all(p + 151 * ps, 49 * ps, 0, "up to a page now unmapped");
}

Test(readable, guard_pages_make_the_range_unreadable)
{
	unsigned char *p = map_pages(PAGES);
	size_t ps = page_size();

	if (madvise(p + 120 * ps, ps, MADV_GUARD_INSTALL) != 0)
		cr_skip_test("no MADV_GUARD_INSTALL (Linux 6.13): %s",
		             strerror(errno));
	/* One mapping still, readable: only a page walk sees the guard. */
	expect_ways(p, PAGES * ps, 0, 1, "a guard page in the middle");
	expect_ways(p + 120 * ps + 9, 1, 0, 1, "one byte of the guard page");
	expect_ways(p + 121 * ps - 1, 2, 0, 1, "guard byte + readable byte");
	expect_all(p + 121 * ps, 79 * ps, 1, "the pages after the guard");
	cr_expect(readable_no_guard_pages(p, PAGES * ps) != 1,
	          "PAGEMAP_SCAN missed the guard page");
}

/* Lines longer than the reader's buffer (a file mapping with a long path)
 * and many mappings before the range: the text walk must keep its place. */
Test(readable, the_maps_text_walk_survives_long_lines_and_many_mappings)
{
	char dir[] = "/tmp/forkshim-readable-XXXXXX", path[4096];
	size_t ps = page_size(), n;
	unsigned char *p;
	int fd;

	cr_assert(mkdtemp(dir) != NULL);
	/* 6 directories of 200 characters (a name may have 255): a path, and
	 * so a maps line, longer than the walk's 1 KiB buffer. */
	n = (size_t)snprintf(path, sizeof path, "%s", dir);
	for (int level = 0; level < 6; level++) {
		path[n++] = '/';
		memset(path + n, 'x', 200);
		n += 200;
		path[n] = '\0';
		cr_assert(mkdir(path, 0700) == 0, "mkdir: %s", strerror(errno));
	}
	strcpy(path + n, "/f");
	fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	cr_assert(fd >= 0, "%s: %s", path, strerror(errno));
	cr_assert(ftruncate(fd, (off_t)ps) == 0);
	/* Every other page of 2 * 300 file mappings, then the range above
	 * them all, so that the walk reads every line before it. */
	p = mmap(NULL, 700 * ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert(p != MAP_FAILED);
	for (size_t i = 0; i < 300; i++)
		cr_assert(mmap(p + 2 * i * ps, ps, PROT_READ,
		               MAP_SHARED | MAP_FIXED, fd, 0) != MAP_FAILED);
	cr_assert(mmap(p + 600 * ps, 100 * ps, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1,
	               0) != MAP_FAILED);
	close(fd);
	unlink(path);
	for (; n > strlen(dir); n -= 201) {
		path[n] = '\0';
		rmdir(path);
	}
	rmdir(dir);
	expect_all(p + 600 * ps, 100 * ps, 1, "past 600 lines, 300 long");
	expect_all(p + 598 * ps, 102 * ps, 0, "from the last file mapping");
	expect_all(p + 599 * ps, 101 * ps, 0, "from a PROT_NONE page");
	expect_all(p, 2 * ps, 0, "a file page, then a PROT_NONE page");
	expect_all(p, ps, 1, "one file page");
	munmap(p, 700 * ps);
}

/* Reading a file mapping's page past the file's end raises SIGBUS: such
 * pages are unreadable however large the range. */
Test(readable, file_pages_past_the_end_of_the_file_are_unreadable)
{
	char path[] = "/tmp/forkshim-readable-XXXXXX";
	size_t ps = page_size();
	int fd = mkstemp(path);
	unsigned char *p, *q;

	cr_assert(fd >= 0);
	unlink(path);
	cr_assert(ftruncate(fd, 100 * (off_t)ps) == 0);
	p = mmap(NULL, PAGES * ps, PROT_READ, MAP_SHARED, fd, 0);
	q = mmap(NULL, PAGES * ps, PROT_READ, MAP_PRIVATE, fd, 0);
	cr_assert(p != MAP_FAILED && q != MAP_FAILED);
	expect_all(p, 100 * ps, 1, "shared: the file's 100 pages");
	expect_all(q, 100 * ps, 1, "private: the file's 100 pages");
	expect_all(p, PAGES * ps, 0, "shared: 200 pages past the end");
	expect_all(q, PAGES * ps, 0, "private: 200 pages past the end");
	expect_all(p + 100 * ps - 1, 2, 0, "the file's last byte + the next");
	cr_assert(ftruncate(fd, 50 * (off_t)ps + 1) == 0);
	expect_all(p + 1, 51 * ps - 1, 1, "up to the page with the new end");
	expect_all(p + 1, 52 * ps - 1, 0, "one page past the new end");
	close(fd);
}

/* More file mappings than the walk reads the ends of in one call. */
Test(readable, many_file_mappings_in_a_row_are_all_checked)
{
	char path[] = "/tmp/forkshim-readable-XXXXXX";
	size_t ps = page_size();
	int fd = mkstemp(path);
	unsigned char *p;

	cr_assert(fd >= 0);
	unlink(path);
	cr_assert(ftruncate(fd, (off_t)ps) == 0);
	p = mmap(NULL, 300 * ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert(p != MAP_FAILED);
	/* 299 one-page mappings of the file's page 0: none can merge. */
	for (size_t i = 0; i < 299; i++)
		cr_assert(mmap(p + i * ps, ps, PROT_READ,
		               MAP_SHARED | MAP_FIXED, fd, 0) != MAP_FAILED);
	expect_all(p, 299 * ps, 1, "299 file mappings");
	/* The 300th: two pages of a one-page file. */
	cr_assert(mmap(p + 298 * ps, 2 * ps, PROT_READ, MAP_SHARED | MAP_FIXED,
	               fd, 0) != MAP_FAILED);
	expect_all(p, 300 * ps, 0, "and a page past the end at the last");
	expect_all(p, 299 * ps, 1, "up to that page");
	close(fd);
	munmap(p, 300 * ps);
}
