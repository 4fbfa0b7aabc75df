/* forkshim_freeze and forkshim_thaw: arguments, memory checks, overlap,
 * identical re-freezes and names. */
#include <limits.h>
#include <stdio.h>

#include "common.h"

/* Expects freeze to fail with `err`, and the range not to be findable. */
static void expect_freeze_fails(const void *addr, size_t len, unsigned flags,
                                int err, const char *what)
{
	errno = 0;
	cr_expect(forkshim_freeze(addr, len, "bad", flags) == 0,
	          "%s: freeze succeeded", what);
	cr_expect(errno == err, "%s: errno %d (%s), expected %d (%s)", what,
	          errno, strerror(errno), err, strerror(err));
}

/* Three pages with the middle one unmapped.  The shim may map memory of its
 * own on the first call, so it gets that call before the hole is made. */
static unsigned char *map_with_hole(void)
{
	unsigned char *p;
	forkshim_handle h;
	static char warm[1];

	h = forkshim_freeze(warm, sizeof warm, NULL, 0);
	cr_assert(h != 0 && forkshim_thaw(h) == 0);
	p = map_pages(3);
	cr_assert(munmap(p + page_size(), page_size()) == 0);
	return p;
}

static void assert_still_unmapped(unsigned char *page)
{
	unsigned char v;

	cr_assert(mincore(page, page_size(), &v) == -1 && errno == ENOMEM,
	          "the hole got mapped again: the test is void");
}

Test(freeze, returns_a_handle_that_derefs_to_the_region)
{
	unsigned char *p = map_pages(2);
	size_t len = 0;
	forkshim_handle h = forkshim_freeze(p + 10, 5000, "r", 0);

	cr_assert(h != 0, "freeze: %s", strerror(errno));
	cr_expect(forkshim_deref(h, &len) == p + 10);
	cr_expect(len == 5000);
	cr_expect(forkshim_thaw(h) == 0);
}

Test(freeze, null_address_fails_with_einval)
{
	expect_freeze_fails(NULL, 1, 0, EINVAL, "NULL, 1");
	expect_freeze_fails(NULL, 4096, 0, EINVAL, "NULL, 4096");
	expect_freeze_fails(NULL, 0, 0, EINVAL, "NULL, 0");
}

Test(freeze, zero_length_fails_with_einval)
{
	unsigned char *p = map_pages(1);

	expect_freeze_fails(p, 0, 0, EINVAL, "len 0");
	expect_freeze_fails(p, 0, FORKSHIM_GUARD, EINVAL, "len 0, guard");
	cr_expect(forkshim_find(p, 1) == 0 && errno == ENOENT);
}

Test(freeze, wrapping_range_fails_with_einval)
{
	unsigned char *p = map_pages(1);

	expect_freeze_fails((const void *)(UINTPTR_MAX - 10), 100, 0, EINVAL,
	                    "top of the address space + 100");
	expect_freeze_fails((const void *)UINTPTR_MAX, 2, 0, EINVAL,
	                    "UINTPTR_MAX, 2");
	expect_freeze_fails(p, SIZE_MAX, 0, EINVAL, "mapped page, SIZE_MAX");
	expect_freeze_fails(p, UINTPTR_MAX - (uintptr_t)p + 2, 0, EINVAL,
	                    "mapped page, ends at 1");
	cr_expect(forkshim_find(p, 1) == 0 && errno == ENOENT);
}

Test(freeze, unknown_flag_fails_with_einval)
{
	unsigned char *p = map_pages(1);
	/* 0x2 is FORKSHIM_SHARED (SHARED.md), 0x4 FORKSHIM_OBSERVE. */
	static const unsigned bad[] = {
	    0x8u,
	    0x10u,
	    0x80000000u,
	    FORKSHIM_GUARD | 0x8u,
	    ~0u,
	    ~(FORKSHIM_GUARD | FORKSHIM_SHARED | FORKSHIM_OBSERVE)};

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char what[40];

		snprintf(what, sizeof what, "flags %#x", bad[i]);
		expect_freeze_fails(p, page_size(), bad[i], EINVAL, what);
	}
	cr_expect(forkshim_find(p, 1) == 0 && errno == ENOENT,
	          "a rejected flag left the page frozen");
}

/* A freeze with flag is taken, and info reports the flag. */
static void expect_flag_taken(unsigned flag, const char *what)
{
	unsigned char *p = map_pages(1);
	struct forkshim_info info;
	forkshim_handle h = forkshim_freeze(p, page_size(), what, flag);

	cr_assert(h != 0, "freeze with %s: %s", what, strerror(errno));
	cr_assert(forkshim_info(h, &info) == 0);
	cr_expect(info.flags == flag, "%s: flags %#x", what, info.flags);
	cr_expect(forkshim_thaw(h) == 0);
}

/* Protection itself is not tested here: only that the flag is taken. */
Test(freeze, guard_flag_is_accepted_and_reported_by_info)
{
	expect_flag_taken(FORKSHIM_GUARD, "FORKSHIM_GUARD");
}

Test(freeze, observe_flag_is_accepted_and_reported_by_info)
{
	expect_flag_taken(FORKSHIM_OBSERVE, "FORKSHIM_OBSERVE");
}

Test(freeze, unmapped_memory_fails_with_efault)
{
	unsigned char *p = map_with_hole();
	unsigned char *hole = p + page_size();

	expect_freeze_fails(hole, page_size(), 0, EFAULT, "whole hole");
	expect_freeze_fails(hole + 100, 1, 0, EFAULT, "one byte in the hole");
	assert_still_unmapped(hole);
}

Test(freeze, prot_none_memory_fails_with_efault)
{
	unsigned char *p = map_pages(3);

	cr_assert(mprotect(p + page_size(), page_size(), PROT_NONE) == 0);
	expect_freeze_fails(p + page_size(), page_size(), 0, EFAULT,
	                    "PROT_NONE page");
	expect_freeze_fails(p + page_size() + 7, 1, 0, EFAULT,
	                    "one PROT_NONE byte");
	expect_freeze_fails(p, 3 * page_size(), 0, EFAULT,
	                    "PROT_NONE page in the middle");
	expect_freeze_fails(p + page_size() - 1, 2, 0, EFAULT,
	                    "readable byte then PROT_NONE byte");
	expect_freeze_fails(p + 2 * page_size() - 1, 2, 0, EFAULT,
	                    "PROT_NONE byte then readable byte");
}

Test(freeze, partly_mapped_range_fails_with_efault)
{
	unsigned char *p = map_with_hole();
	size_t ps = page_size();

	expect_freeze_fails(p, 2 * ps, 0, EFAULT, "mapped, then hole");
	expect_freeze_fails(p + ps - 1, 2, 0, EFAULT, "last mapped byte + 1");
	expect_freeze_fails(p + ps, 2 * ps, 0, EFAULT, "hole, then mapped");
	expect_freeze_fails(p + 2 * ps - 1, 2, 0, EFAULT,
	                    "last hole byte + first mapped byte");
	expect_freeze_fails(p, 3 * ps, 0, EFAULT, "mapped, hole, mapped");
	expect_freeze_fails(p + 2 * ps, (size_t)1 << 46, 0, EFAULT,
	                    "mapped page, then far past every mapping");
	assert_still_unmapped(p + ps);
}

Test(freeze, failed_freeze_leaves_no_part_of_the_range_frozen)
{
	unsigned char *p = map_with_hole();
	size_t ps = page_size();
	forkshim_handle h;

	expect_freeze_fails(p, 3 * ps, 0, EFAULT, "mapped, hole, mapped");
	assert_still_unmapped(p + ps);
	errno = 0;
	cr_expect(forkshim_find(p, 1) == 0 && errno == ENOENT,
	          "the first mapped page is frozen");
	errno = 0;
	cr_expect(forkshim_find(p + 2 * ps, 1) == 0 && errno == ENOENT,
	          "the last mapped page is frozen");
	h = forkshim_freeze(p, ps, NULL, 0);
	cr_expect(h != 0, "the mapped page cannot be frozen alone: %s",
	          strerror(errno));
	h = forkshim_freeze(p + 2 * ps, ps, NULL, 0);
	cr_expect(h != 0, "the last page cannot be frozen alone: %s",
	          strerror(errno));
}

/* Above READABLE_SMALL_PAGES (256) the check asks the kernel about the
 * mappings and guard pages instead of faulting every page in. */
Test(freeze, large_ranges_fail_with_efault_on_any_unreadable_page)
{
	enum { N = 600 };
	unsigned char *p = map_pages(N);
	size_t ps = page_size();
	forkshim_handle h;

	cr_assert(mprotect(p + 100 * ps, 50 * ps, PROT_READ) == 0);
	h = forkshim_freeze(p + 1, N * ps - 2, "large", 0);
	cr_expect(h != 0, "600 readable pages in three mappings: %s",
	          strerror(errno));
	cr_expect(h == 0 || forkshim_thaw(h) == 0);
	cr_assert(mprotect(p + 500 * ps, ps, PROT_NONE) == 0);
	expect_freeze_fails(p, N * ps, 0, EFAULT, "PROT_NONE page 500 of 600");
	expect_freeze_fails(p + 100 * ps, 400 * ps + 1, 0, EFAULT,
	                    "ending in its first byte");
	cr_assert(mprotect(p + 500 * ps, ps, PROT_READ) == 0);
	cr_assert(munmap(p + 550 * ps, ps) == 0);
	expect_freeze_fails(p, N * ps, 0, EFAULT, "hole at page 550 of 600");
	expect_freeze_fails(p + 2, 550 * ps - 1, 0, EFAULT,
	                    "ending in the hole's first byte");
	if (madvise(p + 20 * ps, ps, MADV_GUARD_INSTALL) == 0)
		expect_freeze_fails(p, 400 * ps, 0, EFAULT,
		                    "guard page (MADV_GUARD_INSTALL) at 20");
	errno = 0;
	cr_expect(forkshim_find(p + 60 * ps, 1) == 0 && errno == ENOENT,
	          "a failed freeze left a page frozen");
}

/* Reading them raises SIGBUS: as unreadable as a hole. */
Test(freeze, file_pages_past_the_end_of_the_file_fail_with_efault)
{
	char path[] = "/tmp/forkshim-freeze-XXXXXX";
	size_t ps = page_size();
	int fd = mkstemp(path);
	unsigned char *p;
	forkshim_handle h;

	cr_assert(fd >= 0);
	unlink(path);
	cr_assert(ftruncate(fd, 100 * (off_t)ps) == 0);
	p = mmap(NULL, 300 * ps, PROT_READ, MAP_SHARED, fd, 0);
	cr_assert(p != MAP_FAILED);
	close(fd);
	expect_freeze_fails(p, 300 * ps, 0, EFAULT, "200 pages past the end");
	expect_freeze_fails(p + 99 * ps, 2 * ps, 0, EFAULT,
	                    "the last page and the next (small range)");
	h = forkshim_freeze(p, 100 * ps, "file", 0);
	cr_expect(h != 0, "the file's 100 pages: %s", strerror(errno));
	cr_expect(h == 0 || forkshim_thaw(h) == 0);
	munmap(p, 300 * ps);
}

Test(freeze, read_only_memory_can_be_frozen)
{
	static const char rodata[] = "constant bytes in .rodata";
	unsigned char *p = map_pages(2);
	forkshim_handle a, b;

	cr_assert(mprotect(p, 2 * page_size(), PROT_READ) == 0);
	a = forkshim_freeze(p, 2 * page_size(), "ro", 0);
	cr_expect(a != 0, "PROT_READ pages: %s", strerror(errno));
	b = forkshim_freeze(rodata, sizeof rodata, "rodata", 0);
	cr_expect(b != 0, ".rodata: %s", strerror(errno));
	cr_expect(forkshim_deref(b, NULL) == rodata);
}

Test(freeze, regions_of_one_byte_and_unaligned_ranges_work)
{
	unsigned char *p = map_pages(3);
	size_t ps = page_size(), len = 0;
	forkshim_handle one = forkshim_freeze(p + ps - 1, 1, NULL, 0);
	forkshim_handle odd = forkshim_freeze(p + ps, ps + 3, NULL, 0);

	cr_assert(one != 0 && odd != 0);
	cr_expect(forkshim_deref(one, &len) == p + ps - 1 && len == 1);
	cr_expect(forkshim_deref(odd, &len) == p + ps && len == ps + 3);
}

/* ---- overlap ---------------------------------------------------------- */

/* Four pages; the region under test is pages 1 and 2. */
static unsigned char *ov_base;
static forkshim_handle ov_h;

static void ov_setup(void)
{
	ov_base = map_pages(4);
	ov_h =
	    forkshim_freeze(ov_base + page_size(), 2 * page_size(), "mid", 0);
	cr_assert(ov_h != 0, "freeze: %s", strerror(errno));
}

static void ov_expect_intact(const char *after)
{
	struct expect_region r = {
	    ov_h, ov_base + page_size(), 2 * page_size(), 0, 1, "mid"};

	expect_table(&r, 1, after);
}

static void ov_expect_eexist(size_t off, size_t len, const char *what)
{
	expect_freeze_fails(ov_base + off, len, 0, EEXIST, what);
	ov_expect_intact(what);
	errno = 0;
	if (off < page_size() || off + len > 3 * page_size())
		cr_expect(forkshim_find(ov_base + off, len) == 0 &&
		              errno == ENOENT,
		          "%s: the rejected range is findable", what);
}

TestSuite(overlap, .init = ov_setup);

Test(overlap, range_inside_a_region_fails_with_eexist)
{
	size_t ps = page_size();

	ov_expect_eexist(ps + 10, 100, "inside");
	ov_expect_eexist(ps, ps, "same start, shorter");
	ov_expect_eexist(2 * ps, ps, "same end, later start");
	ov_expect_eexist(2 * ps - 1, 2, "two bytes across its middle");
}

Test(overlap, range_straddling_the_start_fails_with_eexist)
{
	size_t ps = page_size();

	ov_expect_eexist(ps - 10, 20, "straddling the start");
	ov_expect_eexist(ps - 1, 2, "one byte before, first byte");
	ov_expect_eexist(0, ps + 1, "page before + first byte");
}

Test(overlap, range_straddling_the_end_fails_with_eexist)
{
	size_t ps = page_size();

	ov_expect_eexist(3 * ps - 10, 20, "straddling the end");
	ov_expect_eexist(3 * ps - 1, 2, "last byte, one byte after");
	ov_expect_eexist(ps, 2 * ps + 1, "same start, one byte longer");
}

Test(overlap, range_containing_a_region_fails_with_eexist)
{
	size_t ps = page_size();

	ov_expect_eexist(0, 4 * ps, "containing");
	ov_expect_eexist(ps - 1, 2 * ps + 2, "one byte more on each side");
}

Test(overlap, range_across_two_regions_fails_with_eexist)
{
	size_t ps = page_size();
	forkshim_handle first = forkshim_freeze(ov_base, ps, "first", 0);

	cr_assert(first != 0);
	ov_expect_eexist(ps - 1, 2, "last of one, first of the next");
	ov_expect_eexist(0, 3 * ps, "both regions whole");
	cr_expect(forkshim_deref(first, NULL) == ov_base);
}

Test(overlap, adjacent_regions_on_both_sides_are_accepted)
{
	size_t ps = page_size(), len = 0;
	forkshim_handle before = forkshim_freeze(ov_base, ps, "before", 0);
	forkshim_handle after =
	    forkshim_freeze(ov_base + 3 * ps, ps, "after", 0);
	struct expect_region r[] = {
	    {ov_h, ov_base + ps, 2 * ps, 0, 1, "mid"},
	    {before, ov_base, ps, 0, 1, "before"},
	    {after, ov_base + 3 * ps, ps, 0, 1, "after"},
	};

	cr_assert(before != 0, "region ending where it starts: %s",
	          strerror(errno));
	cr_assert(after != 0, "region starting where it ends: %s",
	          strerror(errno));
	cr_expect(before != ov_h && after != ov_h && before != after);
	expect_table(r, 3, "two adjacent freezes");
	cr_expect(forkshim_deref(before, &len) == ov_base && len == ps);
}

/* ---- identical re-freeze ------------------------------------------------ */

Test(refreeze, identical_range_returns_the_same_handle_and_counts)
{
	unsigned char *p = map_pages(1);
	struct forkshim_info info;
	forkshim_handle h = forkshim_freeze(p, 100, "x", 0);

	cr_assert(h != 0);
	cr_expect(forkshim_freeze(p, 100, "x", 0) == h);
	cr_expect(forkshim_freeze(p, 100, "x", 0) == h);
	cr_assert(forkshim_info(h, &info) == 0);
	cr_expect(info.freezes == 3, "freezes %u", info.freezes);
}

Test(refreeze, each_freeze_needs_its_own_thaw)
{
	unsigned char *p = map_pages(1);
	struct forkshim_info info;
	size_t len = 0;
	forkshim_handle h = forkshim_freeze(p, 100, "x", 0);

	cr_assert(h != 0 && forkshim_freeze(p, 100, "x", 0) == h);
	cr_expect(forkshim_thaw(h) == 0);
	cr_expect(forkshim_deref(h, &len) == p && len == 100,
	          "one thaw of two removed the region");
	cr_assert(forkshim_info(h, &info) == 0);
	cr_expect(info.freezes == 1, "freezes %u", info.freezes);
	cr_expect(forkshim_find(p, 100) == h);
	cr_expect(forkshim_thaw(h) == 0);
	errno = 0;
	cr_expect(forkshim_deref(h, NULL) == NULL && errno == ESTALE,
	          "after the last thaw: errno %d", errno);
	errno = 0;
	cr_expect(forkshim_find(p, 100) == 0 && errno == ENOENT);
	errno = 0;
	cr_expect(forkshim_thaw(h) == -1 && errno == ESTALE,
	          "a thaw too many: errno %d", errno);
}

Test(refreeze, thaw_too_many_leaves_other_regions_alone)
{
	unsigned char *p = map_pages(2);
	forkshim_handle a = forkshim_freeze(p, 10, "a", 0);
	forkshim_handle b = forkshim_freeze(p + page_size(), 10, "b", 0);
	struct expect_region r = {b, p + page_size(), 10, 0, 1, "b"};

	cr_assert(a != 0 && b != 0);
	cr_assert(forkshim_thaw(a) == 0);
	for (int i = 0; i < 3; i++) {
		errno = 0;
		cr_expect(forkshim_thaw(a) == -1 && errno == ESTALE);
	}
	expect_table(&r, 1, "thawing a stale handle three times");
}

Test(refreeze, freezing_a_thawed_range_again_gives_a_new_handle)
{
	unsigned char *p = map_pages(1);
	forkshim_handle old = forkshim_freeze(p, 64, NULL, 0);
	forkshim_handle now;

	cr_assert(old != 0 && forkshim_thaw(old) == 0);
	now = forkshim_freeze(p, 64, NULL, 0);
	cr_assert(now != 0);
	cr_expect(now != old, "the thawed handle came back");
	errno = 0;
	cr_expect(forkshim_deref(old, NULL) == NULL && errno == ESTALE);
	cr_expect(forkshim_deref(now, NULL) == p);
}

/* ---- names ------------------------------------------------------------- */

static void expect_name(forkshim_handle h, const char *want)
{
	struct forkshim_info info;

	memset(&info, 'Z', sizeof info);
	cr_assert(forkshim_info(h, &info) == 0);
	cr_expect(memchr(info.name, '\0', sizeof info.name) != NULL,
	          "name is not terminated");
	cr_expect(strncmp(info.name, want, sizeof info.name) == 0,
	          "name \"%.64s\", expected \"%s\"", info.name, want);
}

Test(name, null_name_reads_as_empty)
{
	unsigned char *p = map_pages(1);
	forkshim_handle h = forkshim_freeze(p, 8, NULL, 0);

	cr_assert(h != 0);
	expect_name(h, "");
}

Test(name, empty_name_reads_as_empty)
{
	unsigned char *p = map_pages(1);
	forkshim_handle h = forkshim_freeze(p, 8, "", 0);

	cr_assert(h != 0);
	expect_name(h, "");
}

Test(name, name_of_63_bytes_is_kept_whole)
{
	unsigned char *p = map_pages(1);
	char name[64];
	forkshim_handle h;

	memset(name, 'n', 63);
	name[62] = 'E';
	name[63] = '\0';
	h = forkshim_freeze(p, 8, name, 0);
	cr_assert(h != 0);
	expect_name(h, name);
}

Test(name, longer_name_is_cut_to_63_bytes)
{
	unsigned char *p = map_pages(1);
	char name[300], want[64];
	forkshim_handle a, b;

	for (size_t i = 0; i < sizeof name - 1; i++)
		name[i] = (char)('a' + i % 26);
	name[sizeof name - 1] = '\0';
	memcpy(want, name, 63);
	want[63] = '\0';
	a = forkshim_freeze(p, 8, name, 0);
	cr_assert(a != 0);
	expect_name(a, want);
	name[64] = '\0';
	b = forkshim_freeze(p + 8, 8, name, 0);
	cr_assert(b != 0);
	expect_name(b, want);
}

Test(name, name_is_copied_at_freeze)
{
	unsigned char *p = map_pages(1);
	char name[16] = "original";
	forkshim_handle h = forkshim_freeze(p, 8, name, 0);

	cr_assert(h != 0);
	strcpy(name, "changed");
	expect_name(h, "original");
}
