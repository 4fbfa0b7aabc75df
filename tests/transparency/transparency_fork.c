/* What a program sees of fork and of start-up is the same with the shim
 * preloaded as without it (issue 13).  tp_fork_host (fork_host.c) runs
 * with and without the shim:
 *   - its pthread_atfork handlers run with the signal mask the program set,
 *     a raise() in them runs the handler before it returns, a thread made
 *     in the child handler gets the program's mask, and a mask change the
 *     child handler makes is still there when fork returns: the whole
 *     output is compared byte for byte;
 *   - with SIGCHLD ignored (the kernel reaps, no wait runs), 50,000 forks
 *     cost the parent as much CPU per fork at the end as at the start:
 *     last 5 batches / first 5 batches <= 1.1 (medians of parent CPU per
 *     fork, in one process: a ratio, not a time);
 *   - a forkshim user's fork+waitpid costs its parent no page fault more
 *     than the same program's without the shim (the fewest per fork over
 *     8 stack depths, 200 forks each: fault counts, not times);
 *   - the fork path writes at most 128 bytes of stack more than glibc's
 *     own fork+waitpid does, with no table and with one frozen page;
 *   - fork lies on the shim's first page, and _exit, _Exit and what
 *     binding them reads of its symbol tables within its first 16 pages:
 *     a fork() child's first fault maps all of it, as a _Fork child's;
 *     and the shim has no writable code and a RELRO segment;
 *   - the shim's atfork handlers are in once a program has asked for the
 *     API: a plugin's handlers registered after that may freeze in their
 *     prepare phase and thaw in their parent phase (the shim's prepare
 *     runs after theirs, its parent phase before);
 *   - a process that neither freezes nor forks has no page of the shim's
 *     .bss in memory and no MADV_WIPEONFORK mapping (the shim's per-process
 *     page): it pays what an empty preloaded library pays;
 *   - a process holding one small frozen region has no mapping more whose
 *     page tables fork copies, and no page-table page more, than before its
 *     freeze: its table sits in the shim's .bss (before, four 2 MiB-aligned
 *     arrays put four page tables and a mapping into every fork). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp_run.h"

#define SHIM_ENV "LD_PRELOAD=" FORKSHIM_LIB

/* Costs and footprint are the plain library's: a sanitizer's runtime
 * (preloaded first, instrumenting the shim) has its own. */
static void skip_under_sanitizer(const char *what)
{
	if (FORKSHIM_SANITIZER_RT[0] != '\0')
		cr_skip_test("%s: measured without a sanitizer", what);
}

static void host(struct host_run *r, int with_shim, const char *mode,
                 const char *arg, int timeout_s)
{
	const char *argv[] = {TP_FORK_HOST, mode, arg, NULL};
	const char *env[] = {SHIM_ENV, NULL};
	struct tp_opts o = {with_shim ? env : NULL, NULL, timeout_s};

	tp_run(r, argv, &o);
	cr_assert(!r->timed_out, "tp_fork_host %s timed out", mode);
	cr_assert(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0,
	          "tp_fork_host %s %s the shim failed (status %#x): %s", mode,
	          with_shim ? "with" : "without", r->status, r->err.data);
}

Test(fork_transparency, atfork_handlers_see_the_programs_signal_mask,
     .timeout = 60)
{
	struct host_run plain, shim;

	host(&plain, 0, "atfork", NULL, 30);
	host(&shim, 1, "atfork", NULL, 30);
	/* What the program sees without the shim, so the comparison means
	 * something. */
	cr_assert(strstr(plain.out.data, "prepare SigBlk:\t0000000000000000"),
	          "%s", plain.out.data);
	cr_assert(strstr(plain.out.data, "child after fork: SIGUSR1 blocked"),
	          "%s", plain.out.data);
	cr_expect_str_eq(shim.out.data, plain.out.data,
	                 "with the shim:\n%s\nwithout:\n%s", shim.out.data,
	                 plain.out.data);
}

Test(fork_transparency, fork_cost_stays_flat_with_sigchld_ignored,
     .timeout = 900)
{
	struct host_run r;
	double first, last, ratio;
	const char *flat;

	skip_under_sanitizer("parent CPU per fork");
#ifndef TP_LONG
	/* A ratio of CPU times: 0.92-0.97 alone, up to 1.17-1.40 with other
	 * work on the machine, so not in the default suite. */
	cr_skip_test("a timing ratio: scripts/test --long runs it");
#endif
	host(&r, 1, "sigign", "50000", 880);
	flat = strstr(r.out.data, "flat ");
	cr_assert_not_null(flat, "%s", r.out.data);
	cr_assert_eq(sscanf(flat, "flat %lf %lf %lf", &first, &last, &ratio),
	             3);
	cr_expect_leq(ratio, 1.1,
	              "parent CPU per fork grew from %.1f to %.1f us over "
	              "50,000 forks with SIGCHLD ignored (%.3f)",
	              first, last, ratio);
}

static double faults_per_fork(int with_shim)
{
	struct host_run r;
	const char *p;
	double f = -1;

	host(&r, with_shim, "faults", "200", 120);
	p = strstr(r.out.data, "faults ");
	cr_assert(p && sscanf(p, "faults %lf", &f) == 1, "%s", r.out.data);
	return f;
}

/* Each wait used to drain the family directory (getpid, fstat, a
 * recvmsg answering EAGAIN): three system calls, and errno's page of
 * thread-local storage written again, a copy-on-write fault in the
 * parent after every fork. */
Test(fork_transparency, a_fork_and_wait_cost_the_parent_no_extra_fault,
     .timeout = 300)
{
	double plain, shim;

	skip_under_sanitizer("page faults per fork");
	plain = faults_per_fork(0);
	shim = faults_per_fork(1);
	cr_expect_leq(shim, plain + 0.5,
	              "the parent takes %.2f minor faults per fork+waitpid "
	              "with the shim, %.2f without",
	              shim, plain);
}

static long stack_bytes(int with_shim, const char *use)
{
	struct host_run r;
	const char *p;
	long b = -1;

	host(&r, with_shim, "stack", use, 60);
	p = strstr(r.out.data, "stack ");
	cr_assert(p && sscanf(p, "stack %ld", &b) == 1, "%s", r.out.data);
	return b;
}

/* After a fork every stack page the parent writes is a copy-on-write
 * fault, tens of microseconds here: a fork path d bytes deeper than
 * glibc's own takes d/4096 faults per fork more on average over stack
 * placements.  The atfork handlers ran three frames deep below glibc's
 * deepest (176 bytes, 4% of a fault per fork); they now keep no frame of
 * their own. */
Test(fork_transparency, the_fork_path_writes_little_stack_below_glibcs,
     .timeout = 120)
{
	static const char *uses[] = {"0", "1"};

	skip_under_sanitizer("stack depth of the fork path");
	for (int i = 0; i < 2; i++) {
		long plain = stack_bytes(0, uses[i]);
		long shim = stack_bytes(1, uses[i]);

		cr_expect_leq(shim, plain + 128,
		              "fork+waitpid writes %ld bytes of stack below "
		              "its caller with the shim, %ld without (%s)",
		              shim, plain,
		              i == 0 ? "no table" : "one frozen page");
	}
}

/* A fork() child faults in every page of the shim's text it runs: its
 * first fault is on fork's page as it returns from the kernel.  A _Fork
 * child's is on the symbol tables, binding _exit lazily.  The kernel's
 * fault-around maps from a fault the pages of its 64 KiB-aligned window,
 * or the 16 pages from the mapping's start in its first window.  With
 * fork on the library's first page (shim/hot.ld), the first fault of
 * both children maps the same 16 pages: the tables the binding reads,
 * _exit and _Exit with them, in every load placement.  With fork 2 pages
 * in (as it was), a 64 KiB boundary fell between fork and the tables in
 * 2 placements in 16: +0.13 faults per fork() child (300 processes).
 * What grows after the hot section (cold code, data) moves none of it. */
Test(fork_transparency,
     fork_and_the_tables_binding_exit_reads_share_the_first_fault,
     .timeout = 60)
{
	struct host_run r;
	const char *p;
	long fork_page = -1, exit_page = -1, exit2_page = -1, lookup_page = -1;

	skip_under_sanitizer("the shim's code layout");
	host(&r, 1, "layout", NULL, 30);
	p = strstr(r.out.data, "fork_page ");
	cr_assert(p && sscanf(p,
	                      "fork_page %ld exit_page %ld Exit_page %ld "
	                      "lookup_page %ld",
	                      &fork_page, &exit_page, &exit2_page,
	                      &lookup_page) == 4,
	          "%s", r.out.data);
	cr_expect_eq(fork_page, 0,
	             "fork on page %ld of the shim, not its first: a fork() "
	             "child's first fault there maps back to the symbol tables "
	             "only when no 64 KiB boundary lies between",
	             fork_page);
	cr_expect_lt(exit_page, 16,
	             "_exit on page %ld of the shim, past the 16 pages a "
	             "child's first fault maps",
	             exit_page);
	cr_expect_lt(exit2_page, 16,
	             "_Exit on page %ld of the shim, past the 16 pages a "
	             "child's first fault maps",
	             exit2_page);
	cr_expect_lt(lookup_page, 16,
	             "binding _exit or _Exit reads page %ld of the shim's "
	             "symbol tables, past the 16 pages a child's first fault "
	             "maps",
	             lookup_page);
}

/* hot.ld adds a section to the default layout: it must not change the
 * segments.  An alignment inside that section made it, in a build with
 * no hot function (the sanitizers' -O1), a writable and executable one,
 * and the whole library one RWX segment without RELRO. */
Test(fork_transparency, the_shim_has_no_writable_code_and_keeps_relro,
     .timeout = 60)
{
	struct host_run r;
	const char *p;
	int wx = -1, relro = -1;

	host(&r, 1, "segments", NULL, 30);
	p = strstr(r.out.data, "wx_loads ");
	cr_assert(p && sscanf(p, "wx_loads %d relro %d", &wx, &relro) == 2,
	          "%s", r.out.data);
	cr_expect_eq(wx, 0,
	             "%d of the shim's loadable segments are writable and "
	             "executable",
	             wx);
	cr_expect_eq(relro, 1, "the shim has no RELRO segment");
}

Test(fork_transparency, handlers_registered_after_asking_for_the_api_may_freeze,
     .timeout = 60)
{
	struct host_run r;

	host(&r, 1, "order", NULL, 30);
	cr_expect(strstr(r.out.data, "prepare freeze ok\n") &&
	              strstr(r.out.data, "parent thaw ok\n"),
	          "a plugin's atfork handlers, registered after it asked for "
	          "the API, could not use the table:\n%s",
	          r.out.data);
}

Test(fork_transparency,
     a_process_that_neither_freezes_nor_forks_touches_nothing, .timeout = 60)
{
	struct host_run r;
	long pages = -1, touched = -1, wipe = -1;
	const char *p;

	skip_under_sanitizer("the shim's pages at start-up");
	host(&r, 1, "idle", NULL, 30);
	cr_assert(strstr(r.out.data, "shim yes"), "%s", r.out.data);
	p = strstr(r.out.data, "shim_bss_pages ");
	cr_assert(p && sscanf(p, "shim_bss_pages %ld", &pages) == 1);
	p = strstr(r.out.data, "shim_bss_touched ");
	cr_assert(p && sscanf(p, "shim_bss_touched %ld", &touched) == 1);
	p = strstr(r.out.data, "wipeonfork_maps ");
	cr_assert(p && sscanf(p, "wipeonfork_maps %ld", &wipe) == 1);
	cr_assert_gt(pages, 0, "the shim has no .bss page of its own to watch");
	cr_expect_eq(touched, 0,
	             "%ld of the shim's %ld .bss pages are in memory in a "
	             "process that never froze or forked",
	             touched, pages);
	cr_expect_eq(wipe, 0,
	             "the shim mapped its per-process page in a process "
	             "that never froze or forked");
}

Test(fork_transparency,
     one_frozen_region_adds_no_mapping_and_no_page_table_to_fork, .timeout = 60)
{
	struct host_run r;
	long maps = -1, pte = -1;
	const char *p;

	skip_under_sanitizer("the table's mappings");
	host(&r, 1, "table", NULL, 30);
	p = strstr(r.out.data, "copied_maps_added ");
	cr_assert(p && sscanf(p, "copied_maps_added %ld", &maps) == 1, "%s",
	          r.out.data);
	p = strstr(r.out.data, "pte_kib_added ");
	cr_assert(p && sscanf(p, "pte_kib_added %ld", &pte) == 1, "%s",
	          r.out.data);
	cr_expect_eq(maps, 0,
	             "freezing one page added %ld mappings that every fork "
	             "copies",
	             maps);
	/* One page at most: the shim's .bss may cross into a 2 MiB range of
	 * its own. */
	cr_expect_leq(pte, 4,
	              "freezing one page added %ld KiB of page tables, which "
	              "every fork copies",
	              pte);
}
