/* Thaw after munmap (issue 14, class 7).  A region frozen with the
 * FORKSHIM_GUARD flag is write-protected; the host unmaps it and maps
 * something read-only at the same address (anonymous, or a private
 * mapping of a file).  Thaw puts the original protection back only on the
 * mapping the guard protected, and leaves a newcomer read-only.  Also when
 * only part of the region was replaced (the rest is restored), and when
 * the host changed the protection itself (left as the host made it). */
#include <criterion/criterion.h>

#include "hostile_run.h"

TestSuite(thaw, .timeout = 60);

static void run_remap(struct hr *h, const char *how)
{
	const char *argv[] = {HOSTILE_HOST, "remap", how, NULL};
	struct host_env envp;

	hr_run(h, argv, hr_env(&envp, NULL), 15);
	cr_expect(host_exited_with(&h->r, 0), HOST_RUN_FMT,
	          HOST_RUN_ARGS(h->r));
}

static void expect_page(const struct hr *h, int n, const char *perms)
{
	char needle[64];

	snprintf(needle, sizeof(needle), "page %d %s\n", n, perms);
	cr_expect(strstr(h->r.out.data, needle) != NULL, "want %s in:\n%s",
	          needle, h->r.out.data);
}

Test(thaw, a_thaw_restores_what_it_protected)
{
	struct hr h;

	run_remap(&h, "plain");
	expect_page(&h, 0, "rw-p");
	expect_page(&h, 2, "rw-p");
}

Test(thaw, an_anonymous_newcomer_stays_read_only)
{
	struct hr h;

	run_remap(&h, "anon");
	expect_page(&h, 0, "r--p");
	expect_page(&h, 2, "r--p");
}

Test(thaw, a_file_newcomer_stays_read_only)
{
	struct hr h;

	run_remap(&h, "file");
	expect_page(&h, 0, "r--p");
}

Test(thaw, only_the_part_still_ours_is_restored)
{
	struct hr h;

	run_remap(&h, "part");
	expect_page(&h, 0, "rw-p");
	expect_page(&h, 2, "r--p");
}

Test(thaw, a_protection_the_host_changed_is_left_alone)
{
	struct hr h;

	run_remap(&h, "hostprot");
	expect_page(&h, 0, "---p");
}
