/* The guard on an unmodified /usr/bin/python3 (guard_py.py, through
 * ctypes): protect stops a write with the shim's report, also when
 * faulthandler was enabled after the shim's handler or before it (then
 * faulthandler's traceback follows the report); a crash outside frozen
 * pages reaches faulthandler alone; the audit of a fork Pool names, per
 * worker, the regions and pages dirtied and the functions that did it. */
#include <criterion/criterion.h>

#include "guard_run.h"

#define SCRIPT FORKSHIM_SOURCE_DIR "/tests/guard/guard_py.py"

static void run_py(struct host_run *r, const char *mode, const char *guard,
                   const char *report)
{
	const char *argv[] = {"/usr/bin/python3", "-I", SCRIPT, mode,
	                      GUARD_SCRIBBLE,     NULL};
	struct host_env e;

	HOST_RUN(r, argv, .envp = guard_env(&e, guard, report, 1),
	         .timeout_s = 50);
}

static void expect_py_report(const struct host_run *r)
{
	const char *head =
	    strstr(r->err.data, "write to frozen region \"py-table\"");
	const char *writer = strstr(r->err.data, "written by:");

	cr_expect(host_died_of(r, SIGSEGV), HOST_RUN_FMT, HOST_RUN_ARGS(*r));
	cr_expect(strstr(r->out.data, "frozen\n") &&
	              !strstr(r->out.data, "FAIL"),
	          HOST_RUN_FMT, HOST_RUN_ARGS(*r));
	cr_expect(head != NULL &&
	              guard_count(r->err.data, "write to frozen region") == 1,
	          HOST_RUN_FMT, HOST_RUN_ARGS(*r));
	cr_expect(guard_line_has(writer, "#0 ", " guard_py_scribble+"),
	          HOST_RUN_FMT, HOST_RUN_ARGS(*r));
	cr_expect(strstr(r->err.data, " _PyEval_EvalFrameDefault+"),
	          HOST_RUN_FMT, HOST_RUN_ARGS(*r));
}

Test(python, protect_stops_a_ctypes_write_with_a_report)
{
	struct host_run r;

	run_py(&r, "protect", "protect", NULL);
	expect_py_report(&r);
	cr_expect_null(strstr(r.err.data, "Fatal Python error"), HOST_RUN_FMT,
	               HOST_RUN_ARGS(r));
	host_run_free(&r);
}

/* faulthandler's own traceback, after the shim's report. */
static void expect_faulthandler_after_report(const struct host_run *r)
{
	const char *report = strstr(r->err.data, "write to frozen region");
	const char *fh =
	    strstr(r->err.data, "Fatal Python error: Segmentation fault");

	cr_expect(report != NULL && fh > report, HOST_RUN_FMT,
	          HOST_RUN_ARGS(*r));
	cr_expect(fh && strstr(fh, "in violate"), HOST_RUN_FMT,
	          HOST_RUN_ARGS(*r));
}

Test(python, faulthandler_enabled_after_the_shim_follows_its_report)
{
	struct host_run r;

	run_py(&r, "faulthandler-after", "protect", NULL);
	expect_py_report(&r);
	expect_faulthandler_after_report(&r);
	host_run_free(&r);
}

Test(python, faulthandler_enabled_before_the_shim_is_chained)
{
	struct host_run r;

	run_py(&r, "faulthandler-before", NULL, NULL);
	expect_py_report(&r);
	expect_faulthandler_after_report(&r);
	host_run_free(&r);
}

Test(python, a_crash_outside_frozen_pages_reaches_faulthandler_alone)
{
	struct host_run r;

	run_py(&r, "foreign", "protect", NULL);
	cr_expect(host_died_of(&r, SIGSEGV), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "crashing\n"), HOST_RUN_FMT,
	          HOST_RUN_ARGS(r));
	cr_expect(strstr(r.err.data, "Fatal Python error: Segmentation fault"),
	          HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect_null(strstr(r.err.data, "forkshim["), HOST_RUN_FMT,
	               HOST_RUN_ARGS(r));
	host_run_free(&r);
}

Test(python, audit_of_a_pool_names_the_functions_that_dirtied_each_region)
{
	struct host_run r;
	char dir[64], names[8][64];
	int n, scribblers = 0, weights[4] = {0}, lookup[5] = {0};

	guard_mkdir(dir, sizeof(dir));
	run_py(&r, "pool", "audit", dir);
	cr_expect(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "pool ok\n"), HOST_RUN_FMT,
	          HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "parent intact 1\n"), HOST_RUN_FMT,
	          HOST_RUN_ARGS(r));
	n = guard_reports(dir, names, 8);
	cr_expect(n >= 1 && n <= 2, "%d files: one a worker", n);
	for (int i = 0; i < n && i < 8; i++) {
		char path[640], *text;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		text = host_read_file(path, NULL);
		cr_assert_not_null(text);
		for (int p = 0; p < 4; p++) {
			int w = guard_records(text, "py-weights", p);
			/* The bytearray's first whole page is its page 1. */
			int l = guard_records(text, "py-lookup", p + 1);

			cr_expect(w <= 1 && l <= 1, "page %d twice: %s", p,
			          text);
			weights[p] += w;
			lookup[p + 1] += l;
		}
		scribblers += guard_names_function(text, "guard_py_scribble");
		cr_expect(
		    guard_names_function(text, "_PyEval_EvalFrameDefault"),
		    "%s", text);
		cr_expect(guard_count(text, "{\"type\":\"symbolized\"") == 1,
		          "%s", text);
		free(text);
	}
	/* Which worker took which task is the pool's choice. */
	cr_expect(scribblers >= 1, "no file names guard_py_scribble");
	for (int p = 0; p < 4; p++) {
		cr_expect(weights[p] >= 1, "py-weights page %d unrecorded", p);
		cr_expect(lookup[p + 1] >= 1, "py-lookup page %d unrecorded",
		          p + 1);
	}
	host_rmtree(dir);
	host_run_free(&r);
}
