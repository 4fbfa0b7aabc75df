/* forkshim_deref, forkshim_find and forkshim_info on live regions. */
#include "common.h"

Test(deref, stores_the_length_and_returns_the_start)
{
	unsigned char *p = map_pages(2);
	size_t len = 0;
	forkshim_handle h = forkshim_freeze(p + 3, page_size() + 5, NULL, 0);

	cr_assert(h != 0);
	cr_expect(forkshim_deref(h, &len) == p + 3);
	cr_expect(len == page_size() + 5, "len %zu", len);
}

Test(deref, null_length_pointer_is_allowed)
{
	unsigned char *p = map_pages(1);
	forkshim_handle h = forkshim_freeze(p, 10, NULL, 0);

	cr_assert(h != 0);
	cr_expect(forkshim_deref(h, NULL) == p);
}

Test(deref, zero_handle_fails_with_ebadf_everywhere)
{
	struct forkshim_info info;
	struct forkshim_sharing sh;

	errno = 0;
	cr_expect(forkshim_deref(0, NULL) == NULL && errno == EBADF,
	          "deref: errno %d", errno);
	errno = 0;
	cr_expect(forkshim_thaw(0) == -1 && errno == EBADF, "thaw: errno %d",
	          errno);
	errno = 0;
	cr_expect(forkshim_info(0, &info) == -1 && errno == EBADF,
	          "info: errno %d", errno);
	errno = 0;
	cr_expect(forkshim_sharing(0, &sh) == -1 && errno == EBADF,
	          "sharing: errno %d", errno);
	errno = 0;
	cr_expect(forkshim_visible(0, 0) == -1 && errno == EBADF,
	          "visible: errno %d", errno);
}

Test(deref, thawed_handle_fails_with_estale_everywhere)
{
	unsigned char *p = map_pages(1);
	struct forkshim_info info;
	struct forkshim_sharing sh;
	forkshim_handle h = forkshim_freeze(p, 10, NULL, 0);

	cr_assert(h != 0 && forkshim_thaw(h) == 0);
	errno = 0;
	cr_expect(forkshim_deref(h, NULL) == NULL && errno == ESTALE,
	          "deref: errno %d", errno);
	errno = 0;
	cr_expect(forkshim_thaw(h) == -1 && errno == ESTALE, "thaw: errno %d",
	          errno);
	errno = 0;
	cr_expect(forkshim_info(h, &info) == -1 && errno == ESTALE,
	          "info: errno %d", errno);
	errno = 0;
	cr_expect(forkshim_sharing(h, &sh) == -1 && errno == ESTALE,
	          "sharing: errno %d", errno);
	errno = 0;
	cr_expect(forkshim_visible(h, 0) == -1 && errno == ESTALE,
	          "visible: errno %d", errno);
}

/* ---- find -------------------------------------------------------------- */

/* Two adjacent regions a = [p+100, p+100+L) and b right after it. */
static unsigned char *fd_p;
static size_t fd_len;
static forkshim_handle fd_a, fd_b;

static void fd_setup(void)
{
	fd_p = map_pages(4);
	fd_len = page_size() + 50;
	fd_a = forkshim_freeze(fd_p + 100, fd_len, "a", 0);
	fd_b = forkshim_freeze(fd_p + 100 + fd_len, 300, "b", 0);
	cr_assert(fd_a != 0 && fd_b != 0);
}

static void expect_find_enoent(const void *addr, size_t len, const char *what)
{
	errno = 0;
	cr_expect(forkshim_find(addr, len) == 0, "%s: found", what);
	cr_expect(errno == ENOENT, "%s: errno %d", what, errno);
}

TestSuite(find, .init = fd_setup);

Test(find, returns_the_region_for_its_first_and_last_byte)
{
	unsigned char *a = fd_p + 100;

	cr_expect(forkshim_find(a, 1) == fd_a, "first byte");
	cr_expect(forkshim_find(a + fd_len - 1, 1) == fd_a, "last byte");
	cr_expect(forkshim_find(a, fd_len) == fd_a, "the whole region");
	cr_expect(forkshim_find(a + 1, fd_len - 2) == fd_a, "the inside");
	cr_expect(forkshim_find(a + fd_len, 1) == fd_b,
	          "first byte of the next region");
	cr_expect(forkshim_find(a + fd_len, 300) == fd_b,
	          "the next region whole");
}

Test(find, one_byte_outside_is_enoent)
{
	unsigned char *a = fd_p + 100;

	expect_find_enoent(a - 1, 1, "one byte before the start");
	expect_find_enoent(a - 1, 2, "straddling the start");
	expect_find_enoent(a + fd_len + 300, 1, "one past the end of b");
	expect_find_enoent(a + fd_len + 299, 2, "straddling the end of b");
	expect_find_enoent(a, fd_len + 301, "both and one byte more");
}

Test(find, range_straddling_two_adjacent_regions_is_enoent)
{
	unsigned char *a = fd_p + 100;

	expect_find_enoent(a + fd_len - 1, 2, "last of a, first of b");
	expect_find_enoent(a, fd_len + 1, "all of a, first of b");
	expect_find_enoent(a, fd_len + 300, "exactly a and b");
}

Test(find, unmapped_range_is_enoent_not_efault)
{
	unsigned char *q = map_pages(1);

	cr_assert(munmap(q, page_size()) == 0);
	expect_find_enoent(q, page_size(), "unmapped page");
	expect_find_enoent((const void *)0x1000, 1, "page one");
}

Test(find, bad_arguments_fail_with_einval)
{
	errno = 0;
	cr_expect(forkshim_find(NULL, 1) == 0 && errno == EINVAL, "NULL");
	errno = 0;
	cr_expect(forkshim_find(NULL, 0) == 0 && errno == EINVAL, "NULL, 0");
	errno = 0;
	cr_expect(forkshim_find(fd_p + 100, 0) == 0 && errno == EINVAL,
	          "len 0 at a region's start");
	errno = 0;
	cr_expect(forkshim_find(fd_p + 100, SIZE_MAX) == 0 && errno == EINVAL,
	          "len SIZE_MAX");
	errno = 0;
	cr_expect(forkshim_find((const void *)(UINTPTR_MAX - 10), 100) == 0 &&
	              errno == EINVAL,
	          "wrap at the top");
}

Test(find, empty_table_is_enoent)
{
	cr_assert(forkshim_thaw(fd_a) == 0 && forkshim_thaw(fd_b) == 0);
	expect_find_enoent(fd_p + 100, 1, "a after thaw");
	expect_find_enoent(fd_p + 100 + fd_len, 1, "b after thaw");
}

/* ---- info -------------------------------------------------------------- */

Test(info, reports_every_field)
{
	unsigned char *p = map_pages(1);
	struct forkshim_info info;
	forkshim_handle h = forkshim_freeze(p + 1, 77, "the name", 0);

	cr_assert(h != 0);
	memset(&info, 0xee, sizeof info);
	cr_assert(forkshim_info(h, &info) == 0);
	cr_expect(info.addr == p + 1);
	cr_expect(info.len == 77, "len %zu", info.len);
	cr_expect(info.owner == getpid(), "owner %d", (int)info.owner);
	cr_expect(info.flags == 0, "flags %#x", info.flags);
	cr_expect(info.freezes == 1, "freezes %u", info.freezes);
	cr_expect(strcmp(info.name, "the name") == 0, "name %.64s", info.name);
}

Test(info, two_regions_keep_their_own_fields)
{
	unsigned char *p = map_pages(2);
	forkshim_handle a = forkshim_freeze(p, 5, "first", 0);
	forkshim_handle b = forkshim_freeze(p + page_size(), page_size(),
	                                    "second", FORKSHIM_GUARD);
	struct expect_region r[] = {
	    {a, p, 5, 0, 1, "first"},
	    {b, p + page_size(), page_size(), FORKSHIM_GUARD, 1, "second"},
	};

	cr_assert(a != 0 && b != 0);
	cr_assert(forkshim_freeze(p, 5, "first", 0) == a);
	r[0].freezes = 2;
	expect_table(r, 2, "two freezes of a, one of b");
}
