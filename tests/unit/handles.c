/* Handles that must not resolve: junk, forgeries, stale handles after the
 * slot was reused; and "a failure changes nothing". */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "common.h"

/* Expects h to fail with one of EBADF/ENOENT/ESTALE on every call taking a
 * handle, and never to resolve. */
static void expect_junk(forkshim_handle h)
{
	struct forkshim_info info;
	struct forkshim_sharing sh;
	const void *p;

	errno = 0;
	p = forkshim_deref(h, NULL);
	cr_expect(p == NULL, "junk %#llx resolved to %p", (unsigned long long)h,
	          p);
	cr_expect(is_handle_errno(errno), "junk %#llx: deref errno %d",
	          (unsigned long long)h, errno);
	errno = 0;
	cr_expect(forkshim_info(h, &info) == -1 && is_handle_errno(errno),
	          "junk %#llx: info errno %d", (unsigned long long)h, errno);
	errno = 0;
	cr_expect(forkshim_sharing(h, &sh) == -1 && is_handle_errno(errno),
	          "junk %#llx: sharing errno %d", (unsigned long long)h, errno);
	errno = 0;
	cr_expect(forkshim_visible(h, 0) == -1 && is_handle_errno(errno),
	          "junk %#llx: visible errno %d", (unsigned long long)h, errno);
	errno = 0;
	cr_expect(forkshim_thaw(h) == -1 && is_handle_errno(errno),
	          "junk %#llx: thaw errno %d", (unsigned long long)h, errno);
}

Test(junk, fixed_junk_values_never_resolve)
{
	static const forkshim_handle junk[] = {
	    1,
	    2,
	    0xff,
	    0xffffffffull,
	    0x100000000ull,
	    0x8000000000000000ull,
	    0x7fffffffffffffffull,
	    0xffffffffffffffffull,
	    0xdeadbeefcafef00dull,
	};
	unsigned char *p = map_pages(1);
	forkshim_handle h = forkshim_freeze(p, 16, "only", 0);
	struct expect_region r = {h, p, 16, 0, 1, "only"};

	cr_assert(h != 0);
	for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
		if (junk[i] != h)
			expect_junk(junk[i]);
	expect_table(&r, 1, "junk handles");
}

/* With one region live, every single-bit change of its handle is a
 * forgery: it must not name that region (or any). */
Test(junk, every_bit_flip_of_a_live_handle_fails)
{
	unsigned char *p = map_pages(1);
	forkshim_handle h = forkshim_freeze(p, 16, "only", 0);
	struct expect_region r = {h, p, 16, 0, 1, "only"};

	cr_assert(h != 0);
	for (int bit = 0; bit < 64; bit++)
		expect_junk(h ^ (1ull << bit));
	expect_table(&r, 1, "64 forged handles");
}

Test(junk, random_values_never_resolve)
{
	unsigned char *p = map_pages(1);
	forkshim_handle live[8];

	for (int i = 0; i < 8; i++) {
		live[i] = forkshim_freeze(p + 16 * i, 16, NULL, 0);
		cr_assert(live[i] != 0);
	}
	srandom(12345);
	for (int n = 0; n < 20000; n++) {
		forkshim_handle h = (forkshim_handle)random() << 62 ^
		                    (forkshim_handle)random() << 31 ^
		                    (forkshim_handle)random();
		const void *q;
		int known = 0;

		for (int i = 0; i < 8; i++)
			known |= h == live[i];
		if (known || h == 0)
			continue;
		errno = 0;
		q = forkshim_deref(h, NULL);
		cr_expect(q == NULL && is_handle_errno(errno),
		          "random %#llx: %p, errno %d", (unsigned long long)h,
		          q, errno);
		if (q != NULL)
			break;
	}
}

/* ---- slot reuse -------------------------------------------------------- */

#define CYCLES 10000

Test(reuse, old_handles_stay_estale_through_many_reuses)
{
	unsigned char *p = map_pages(2);
	unsigned char *a = p, *b = p + page_size();
	forkshim_handle *old = calloc(2 * CYCLES, sizeof *old);
	size_t n = 0, bad = 0;

	cr_assert(old != NULL);
	for (int i = 0; i < CYCLES; i++) {
		forkshim_handle ha, hb;
		const void *q;

		ha = forkshim_freeze(a, 64, "A", 0);
		cr_assert(ha != 0, "cycle %d: freeze A: %s", i,
		          strerror(errno));
		cr_assert(forkshim_thaw(ha) == 0);
		hb = forkshim_freeze(b, 32, "B", 0);
		cr_assert(hb != 0, "cycle %d: freeze B: %s", i,
		          strerror(errno));
		errno = 0;
		q = forkshim_deref(ha, NULL);
		if (q != NULL || errno != ESTALE) {
			cr_expect(0, "cycle %d: A's handle gave %p, errno %d",
			          i, q, errno);
			bad++;
		}
		cr_assert(forkshim_deref(hb, NULL) == b);
		cr_assert(forkshim_thaw(hb) == 0);
		old[n++] = ha;
		old[n++] = hb;
		if (bad > 5)
			break;
	}
	for (size_t i = 0; i < n && bad <= 5; i++) {
		const void *q;

		errno = 0;
		q = forkshim_deref(old[i], NULL);
		if (q != NULL || errno != ESTALE) {
			cr_expect(0, "old handle %zu gave %p, errno %d", i, q,
			          errno);
			bad++;
		}
	}
	free(old);
}

Test(reuse, stale_handle_never_names_the_new_region_in_its_slot)
{
	unsigned char *p = map_pages(1);
	forkshim_handle a = forkshim_freeze(p, 8, "A", 0);
	forkshim_handle b;
	struct forkshim_info info;
	struct expect_region r;

	cr_assert(a != 0 && forkshim_thaw(a) == 0);
	b = forkshim_freeze(p + 8, 8, "B", 0);
	cr_assert(b != 0);
	cr_expect(b != a);
	errno = 0;
	cr_expect(forkshim_deref(a, NULL) == NULL && errno == ESTALE);
	errno = 0;
	cr_expect(forkshim_info(a, &info) == -1 && errno == ESTALE);
	errno = 0;
	cr_expect(forkshim_thaw(a) == -1 && errno == ESTALE,
	          "the stale handle thawed B");
	r = (struct expect_region){b, p + 8, 8, 0, 1, "B"};
	expect_table(&r, 1, "thaw of the stale handle");
}

Test(reuse, many_slots_reused_at_once_stay_distinct)
{
	enum { N = 256 };
	unsigned char *p = map_pages(2);
	forkshim_handle first[N], second[N];

	for (int round = 0; round < 20; round++) {
		for (int i = 0; i < N; i++) {
			first[i] = forkshim_freeze(p + 8 * i, 8, NULL, 0);
			cr_assert(first[i] != 0);
		}
		for (int i = 0; i < N; i++)
			cr_assert(forkshim_thaw(first[i]) == 0);
		for (int i = 0; i < N; i++) {
			second[i] = forkshim_freeze(p + 8 * (N - 1 - i) + 4, 4,
			                            NULL, 0);
			cr_assert(second[i] != 0);
		}
		for (int i = 0; i < N; i++) {
			errno = 0;
			cr_expect(forkshim_deref(first[i], NULL) == NULL &&
			              errno == ESTALE,
			          "round %d: first[%d] errno %d", round, i,
			          errno);
			cr_expect(forkshim_deref(second[i], NULL) ==
			              p + 8 * (N - 1 - i) + 4,
			          "round %d: second[%d]", round, i);
		}
		for (int i = 0; i < N; i++)
			cr_assert(forkshim_thaw(second[i]) == 0);
	}
}

/* Every fork may start a new key for the handles made after it; a handle
 * thawed long ago must still read as thawed once its slot is reused. */
Test(reuse, thawed_handle_stays_estale_after_300_forks_and_slot_reuse)
{
	unsigned char *p = map_pages(1);
	forkshim_handle old = forkshim_freeze(p, 8, "old", 0);
	const void *q;

	cr_assert(old != 0 && forkshim_thaw(old) == 0);
	for (int i = 0; i < 300; i++) {
		pid_t pid = fork();
		forkshim_handle h;

		cr_assert(pid >= 0);
		if (pid == 0)
			_exit(0);
		cr_assert(waitpid(pid, NULL, 0) == pid);
		h = forkshim_freeze(p + 8, 8, NULL, 0);
		cr_assert(h != 0 && forkshim_thaw(h) == 0);
	}
	errno = 0;
	cr_expect(forkshim_deref(old, NULL) == NULL && errno == ESTALE,
	          "before its slot is reused: errno %d", errno);
	/* Enough freezes and thaws for any table to hand the slot out again. */
	for (int i = 0; i < 5000; i++) {
		forkshim_handle h = forkshim_freeze(p + 16, 8, NULL, 0);

		cr_assert(h != 0 && forkshim_thaw(h) == 0);
	}
	errno = 0;
	q = forkshim_deref(old, NULL);
	cr_expect(q == NULL, "the old handle resolved to %p", q);
	cr_expect(errno == ESTALE, "after its slot was reused: errno %d (%s)",
	          errno, strerror(errno));
}

/* ---- threads ----------------------------------------------------------- */

struct worker {
	unsigned char *mem;
	forkshim_handle watched;
	const void *watched_addr;
	int errors;
};

/* Freezes and thaws its own ranges, and checks that another thread's region
 * keeps resolving all the while. */
static void *churn(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < 3000; i++) {
		forkshim_handle h[4];

		for (int k = 0; k < 4; k++) {
			h[k] = forkshim_freeze(w->mem + 32 * k, 32, NULL, 0);
			if (h[k] == 0)
				w->errors++;
		}
		for (int k = 0; k < 4; k++)
			if (forkshim_deref(h[k], NULL) != w->mem + 32 * k)
				w->errors++;
		if (forkshim_deref(w->watched, NULL) != w->watched_addr)
			w->errors++;
		for (int k = 0; k < 4; k++)
			if (forkshim_thaw(h[k]) != 0)
				w->errors++;
		for (int k = 0; k < 4; k++)
			if (forkshim_deref(h[k], NULL) != NULL ||
			    errno != ESTALE)
				w->errors++;
	}
	return NULL;
}

Test(threads, concurrent_freezes_and_thaws_keep_the_table_right)
{
	enum { T = 4 };
	unsigned char *p = map_pages(T + 1);
	forkshim_handle stable =
	    forkshim_freeze(p + T * page_size(), 100, "stable", 0);
	struct worker w[T];
	pthread_t t[T];
	struct expect_region r = {stable,  p + T * page_size(), 100, 0, 1,
	                          "stable"};

	cr_assert(stable != 0);
	for (int i = 0; i < T; i++) {
		w[i] = (struct worker){p + i * page_size(), stable,
		                       p + T * page_size(), 0};
		cr_assert(pthread_create(&t[i], NULL, churn, &w[i]) == 0);
	}
	for (int i = 0; i < T; i++) {
		pthread_join(t[i], NULL);
		cr_expect(w[i].errors == 0, "thread %d saw %d errors", i,
		          w[i].errors);
	}
	expect_table(&r, 1, "four threads churning");
}

/* ---- a failure changes nothing ----------------------------------------- */

static unsigned char *fc_p;
static struct expect_region fc_r[3];
static forkshim_handle fc_stale;

/* Pages: 0 = a (frozen twice, guard), 1 = b, 2 = c (one byte), 3 = free,
 * 4 = unmapped, 5 = PROT_NONE, 6 = stale. */
static void fc_setup(void)
{
	size_t ps = page_size();
	/* Guarded, so the guard's first-use mappings (libunwind's) are made
	 * now, not inside the hole made below. */
	forkshim_handle warm = forkshim_freeze(&fc_p, 1, NULL, FORKSHIM_GUARD);

	cr_assert(warm != 0 && forkshim_thaw(warm) == 0);
	fc_p = map_pages(7);
	cr_assert(munmap(fc_p + 4 * ps, ps) == 0);
	cr_assert(mprotect(fc_p + 5 * ps, ps, PROT_NONE) == 0);
	fc_r[0] = (struct expect_region){0, fc_p, ps, FORKSHIM_GUARD, 2, "a"};
	fc_r[1] = (struct expect_region){0, fc_p + ps, 100, 0, 1, "b"};
	fc_r[2] = (struct expect_region){0, fc_p + 2 * ps + 5, 1, 0, 1, "c"};
	fc_r[0].h = forkshim_freeze(fc_p, ps, "a", FORKSHIM_GUARD);
	cr_assert(fc_r[0].h != 0);
	cr_assert(forkshim_freeze(fc_p, ps, "a", FORKSHIM_GUARD) == fc_r[0].h);
	fc_r[1].h = forkshim_freeze(fc_p + ps, 100, "b", 0);
	fc_r[2].h = forkshim_freeze(fc_p + 2 * ps + 5, 1, "c", 0);
	fc_stale = forkshim_freeze(fc_p + 6 * ps, 10, "stale", 0);
	cr_assert(fc_r[1].h != 0 && fc_r[2].h != 0 && fc_stale != 0);
	cr_assert(forkshim_thaw(fc_stale) == 0);
	expect_table(fc_r, 3, "setup");
}

static void fc_freeze(const void *addr, size_t len, unsigned flags, int err,
                      const char *what)
{
	errno = 0;
	cr_expect(forkshim_freeze(addr, len, "x", flags) == 0, "%s: succeeded",
	          what);
	cr_expect(errno == err, "%s: errno %d, expected %d", what, errno, err);
	expect_table(fc_r, 3, what);
}

TestSuite(unchanged, .init = fc_setup);

Test(unchanged, failed_freezes_leave_the_table_as_it_was)
{
	size_t ps = page_size();

	fc_freeze(NULL, 8, 0, EINVAL, "freeze NULL");
	fc_freeze(fc_p + 3 * ps, 0, 0, EINVAL, "freeze len 0");
	fc_freeze(fc_p + 3 * ps, SIZE_MAX, 0, EINVAL, "freeze wrap");
	fc_freeze(fc_p + 3 * ps, 8, 0x10, EINVAL, "freeze unknown flag");
	fc_freeze(fc_p + 4 * ps, 8, 0, EFAULT, "freeze unmapped");
	fc_freeze(fc_p + 3 * ps, 2 * ps, 0, EFAULT, "freeze partly mapped");
	fc_freeze(fc_p + 5 * ps, 8, 0, EFAULT, "freeze PROT_NONE");
	fc_freeze(fc_p + 10, 8, 0, EEXIST, "freeze inside a");
	fc_freeze(fc_p + ps - 1, 2, 0, EEXIST, "freeze across a and b");
	fc_freeze(fc_p + ps + 99, 2, 0, EEXIST, "freeze straddling b's end");
	fc_freeze(fc_p + 2 * ps, ps, 0, EEXIST, "freeze containing c");
	fc_freeze(fc_p, 3 * ps, 0, EEXIST, "freeze containing all three");
	fc_freeze(fc_p + ps, 99, 0, EEXIST, "freeze b one byte shorter");
	errno = 0;
	cr_expect(forkshim_find(fc_p + 3 * ps, 8) == 0 && errno == ENOENT,
	          "a failed freeze left the free page frozen");
}

Test(unchanged, failed_calls_with_bad_handles_leave_the_table_as_it_was)
{
	struct forkshim_info info;
	struct forkshim_sharing sh;
	forkshim_handle bad[] = {0, fc_stale, fc_r[1].h ^ (1ull << 40),
	                         fc_r[0].h ^ 1, ~0ull};

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char what[64];

		snprintf(what, sizeof what, "calls with bad handle %zu", i);
		forkshim_thaw(bad[i]);
		forkshim_deref(bad[i], NULL);
		forkshim_info(bad[i], &info);
		forkshim_sharing(bad[i], &sh);
		forkshim_visible(bad[i], 0);
		expect_table(fc_r, 3, what);
	}
}

Test(unchanged, failed_finds_and_visible_leave_the_table_as_it_was)
{
	forkshim_find(NULL, 1);
	forkshim_find(fc_p, 0);
	forkshim_find(fc_p + page_size() - 1, 2);
	forkshim_find(fc_p + 4 * page_size(), 1);
	forkshim_visible(fc_r[0].h, 1);
	forkshim_visible(fc_r[1].h, getpid());
	expect_table(fc_r, 3, "failed finds and visible");
}
