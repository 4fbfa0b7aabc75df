/* forkshim_sharing: page counts read from /proc/self/pagemap. */
#include "common.h"

enum { N = 8 };

static void get_sharing(forkshim_handle h, struct forkshim_sharing *sh)
{
	memset(sh, 0xee, sizeof *sh);
	cr_assert(forkshim_sharing(h, sh) == 0, "sharing: %s", strerror(errno));
}

static void expect_counts(const struct forkshim_sharing *sh, size_t pages,
                          size_t resident, size_t shared, size_t exclusive,
                          const char *what)
{
	cr_expect(sh->pages == pages, "%s: pages %zu, expected %zu", what,
	          sh->pages, pages);
	cr_expect(sh->resident == resident, "%s: resident %zu, expected %zu",
	          what, sh->resident, resident);
	cr_expect(sh->shared == shared, "%s: shared %zu, expected %zu", what,
	          sh->shared, shared);
	cr_expect(sh->exclusive == exclusive, "%s: exclusive %zu, expected %zu",
	          what, sh->exclusive, exclusive);
	cr_expect(sh->swapped == 0, "%s: swapped %zu", what, sh->swapped);
}

Test(sharing, fresh_touched_region_is_resident_and_exclusive)
{
	unsigned char *p = map_pages(N);
	forkshim_handle h = forkshim_freeze(p, N * page_size(), NULL, 0);
	struct forkshim_sharing sh;

	cr_assert(h != 0);
	get_sharing(h, &sh);
	expect_counts(&sh, N, N, 0, N, "fresh");
}

Test(sharing, pages_counts_every_page_the_range_touches)
{
	size_t ps = page_size();
	unsigned char *p = map_pages(4);
	struct {
		size_t off, len, pages;
	} cases[] = {
	    {0, ps, 1},       {5, 1, 1},           {ps - 1, 2, 2},
	    {ps + 10, ps, 2}, {2 * ps, ps + 1, 2}, {ps - 1, 2 * ps + 2, 4},
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		forkshim_handle h =
		    forkshim_freeze(p + cases[i].off, cases[i].len, NULL, 0);
		struct forkshim_sharing sh;

		cr_assert(h != 0, "case %zu: %s", i, strerror(errno));
		get_sharing(h, &sh);
		cr_expect(sh.pages == cases[i].pages,
		          "case %zu: pages %zu, expected %zu", i, sh.pages,
		          cases[i].pages);
		cr_expect(sh.resident == cases[i].pages &&
		              sh.exclusive == cases[i].pages,
		          "case %zu: resident %zu exclusive %zu", i,
		          sh.resident, sh.exclusive);
		cr_assert(forkshim_thaw(h) == 0);
	}
}

Test(sharing, discarded_pages_are_not_resident)
{
	unsigned char *p = map_pages(N);
	forkshim_handle h = forkshim_freeze(p, N * page_size(), NULL, 0);
	struct forkshim_sharing sh;

	cr_assert(h != 0);
	/* Dropped pages stay absent until touched again. */
	cr_assert(madvise(p, 3 * page_size(), MADV_DONTNEED) == 0);
	get_sharing(h, &sh);
	cr_expect(sh.pages == N);
	cr_expect(sh.resident == N - 3, "resident %zu", sh.resident);
	cr_expect(sh.exclusive == N - 3, "exclusive %zu", sh.exclusive);
}

/* A child that writes one byte in each of the first k pages when told,
 * then reports its own view of the region and waits. */
struct writer_arg {
	forkshim_handle h;
	unsigned char *p;
	size_t k;
};

struct writer_report {
	int rc;
	struct forkshim_sharing before, after;
};

static void body_writer(int in, int out, void *arg)
{
	struct writer_arg *w = arg;
	struct writer_report r;
	char b;

	memset(&r, 0, sizeof r);
	r.rc = forkshim_sharing(w->h, &r.before);
	put(out, &r, sizeof r);
	if (get(in, &b, 1) != 0)
		return; /* the test wanted no writes */
	for (size_t i = 0; i < w->k; i++)
		w->p[i * page_size()] ^= 1;
	r.rc |= forkshim_sharing(w->h, &r.after);
	put(out, &r, sizeof r);
	body_wait(in, out, NULL);
}

Test(sharing, live_child_that_does_not_write_shares_every_page)
{
	unsigned char *p = map_pages(N);
	struct writer_arg w = {forkshim_freeze(p, N * page_size(), NULL, 0), p,
	                       0};
	struct forkshim_sharing sh;
	struct writer_report r;
	struct child c;

	cr_assert(w.h != 0);
	c = child_start(body_writer, &w);
	cr_assert(get(c.from, &r, sizeof r) == 0, "child died");
	get_sharing(w.h, &sh);
	expect_counts(&sh, N, N, N, 0, "parent, child alive");
	cr_expect(r.rc == 0);
	expect_counts(&r.before, N, N, N, 0, "child, before writing");
	cr_expect(child_finish(&c) == 0);
	get_sharing(w.h, &sh);
	expect_counts(&sh, N, N, 0, N, "parent, child reaped");
}

Test(sharing, child_writing_k_pages_makes_k_exclusive_in_the_child)
{
	enum { K = 3 };
	unsigned char *p = map_pages(N);
	struct writer_arg w = {forkshim_freeze(p, N * page_size(), NULL, 0), p,
	                       K};
	struct forkshim_sharing sh;
	struct writer_report r;
	struct child c;

	cr_assert(w.h != 0);
	c = child_start(body_writer, &w);
	cr_assert(get(c.from, &r, sizeof r) == 0, "child died");
	child_signal(&c);
	cr_assert(get(c.from, &r, sizeof r) == 0, "child died");
	cr_expect(r.rc == 0);
	expect_counts(&r.after, N, N, N - K, K, "child, after writing");
	get_sharing(w.h, &sh);
	expect_counts(&sh, N, N, N - K, K, "parent, after the child wrote");
	cr_expect(child_finish(&c) == 0);
}
