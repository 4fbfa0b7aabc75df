/* The guard on an unmodified /usr/bin/python3 (guard_py.py, through
 * ctypes): protect stops a write with the shim's report, also when
 * faulthandler was enabled after the shim's handler or before it (then
 * faulthandler's traceback follows the report); a crash outside frozen
 * pages reaches faulthandler alone; the audit of a fork Pool names, per
 * worker, the regions and pages dirtied and the functions that did it,
 * and the Python line that wrote (shim/pyframes.h); a Python process gets
 * the pipe those lines come through, a C program none. */
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

/* The number of the first line of SCRIPT that contains text. */
static int script_line(const char *text)
{
	char *src = host_read_file(SCRIPT, NULL), *hit;
	int line = 1;

	cr_assert_not_null(src);
	hit = strstr(src, text);
	cr_assert_not_null(hit, "%s not in " SCRIPT, text);
	for (const char *s = src; s < hit; s++)
		line += *s == '\n';
	free(src);
	return line;
}

static void expect_py_report(const struct host_run *r)
{
	char want[128];
	const char *py =
	    strstr(r->err.data, "  Python stack (most recent call first):");

	/* The shim's report names the Python line that wrote, before the C
	 * frames. */
	snprintf(want, sizeof(want), "    %s:%d in violate()\n", SCRIPT,
	         script_line("lib.guard_py_scribble(address(table)"));
	cr_expect(py != NULL && strstr(py, want) != NULL &&
	              strstr(py, want) < strstr(r->err.data, "written by:"),
	          "no \"%s\": " HOST_RUN_FMT, want, HOST_RUN_ARGS(*r));
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

/* Pipes on the shim's high descriptor numbers (owned.h), in lines of
 * "FD -> TARGET". */
static int high_pipes(const char *text)
{
	int n = 0;

	for (const char *s = text; (s = strstr(s, " -> pipe:")) != NULL; s++) {
		const char *b = s;

		while (b > text && b[-1] >= '0' && b[-1] <= '9')
			b--;
		n += atoi(b) >= 64;
	}
	return n;
}

Test(python, only_a_python_process_gets_the_python_stack_pipe)
{
	const char *ls[] = {"/bin/sh", "-c",
	                    "ls -l /proc/self/fd | sed 's/.* \\([0-9]*\\) -> "
	                    "/\\1 -> /'",
	                    NULL};
	struct host_run r, c;
	struct host_env e;
	int py, cpipes;

	run_py(&r, "fds", "protect", NULL);
	cr_assert(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	HOST_RUN(&c, ls, .envp = guard_env(&e, "protect", NULL, 1),
	         .timeout_s = 30);
	cr_assert(host_exited_with(&c, 0), HOST_RUN_FMT, HOST_RUN_ARGS(c));
	py = high_pipes(r.out.data);
	cpipes = high_pipes(c.out.data);
	/* libunwind's pipe in both; the Python stack's in python3 only. */
	cr_expect_eq(py, cpipes + 2, "python3 %d, ls %d:\n%s\n%s", py, cpipes,
	             r.out.data, c.out.data);
	host_run_free(&r);
	host_run_free(&c);
}

Test(python, audit_of_a_pool_names_the_functions_that_dirtied_each_region)
{
	struct host_run r;
	char dir[64], names[8][64], by_slice[256], by_ctypes[256];
	int n, scribblers = 0, weights[4] = {0}, lookup[5] = {0};
	int sliced = 0, scribbled = 0, first = -1;
	const char *said;

	/* Each record's innermost Python frame: the line of touch() that
	 * wrote, by slice assignment or through ctypes. */
	snprintf(by_slice, sizeof(by_slice),
	         "\"py\":[{\"file\":\"%s\",\"line\":%d,\"function\":"
	         "\"touch\"}",
	         SCRIPT, script_line("lookup[first + page * PAGE:first"));
	snprintf(by_ctypes, sizeof(by_ctypes),
	         "\"py\":[{\"file\":\"%s\",\"line\":%d,\"function\":"
	         "\"touch\"}",
	         SCRIPT, script_line("lib.guard_py_scribble(address(weights)"));
	guard_mkdir(dir, sizeof(dir));
	run_py(&r, "pool", "audit", dir);
	cr_expect(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "pool ok\n"), HOST_RUN_FMT,
	          HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "parent intact 1\n"), HOST_RUN_FMT,
	          HOST_RUN_ARGS(r));
	said = strstr(r.out.data, "lookup first whole page ");
	cr_assert(said &&
	              sscanf(said, "lookup first whole page %d", &first) == 1,
	          HOST_RUN_FMT, HOST_RUN_ARGS(r));
	n = guard_reports(dir, names, 8);
	cr_expect(n >= 1 && n <= 2, "%d files: one a worker", n);
	for (int i = 0; i < n && i < 8; i++) {
		char path[640], *text;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		text = host_read_file(path, NULL);
		cr_assert_not_null(text);
		for (int p = 0; p < 4; p++) {
			int w = guard_records(text, "py-weights", p);
			int l = guard_records(text, "py-lookup", p + first);

			cr_expect(w <= 1 && l <= 1, "page %d twice: %s", p,
			          text);
			weights[p] += w;
			lookup[p + first] += l;
		}
		scribblers += guard_names_function(text, "guard_py_scribble");
		sliced += guard_count(text, by_slice);
		scribbled += guard_count(text, by_ctypes);
		cr_expect(
		    guard_names_function(text, "_PyEval_EvalFrameDefault"),
		    "%s", text);
		cr_expect(guard_count(text, "{\"type\":\"symbolized\"") == 1,
		          "%s", text);
		free(text);
	}
	/* Which worker took which task is the pool's choice. */
	cr_expect(scribblers >= 1, "no file names guard_py_scribble");
	/* 4 pages each way, each written first by one worker or both. */
	cr_expect(sliced >= 4 && sliced <= 8, "%d records of %s", sliced,
	          by_slice);
	cr_expect(scribbled >= 4 && scribbled <= 8, "%d records of %s",
	          scribbled, by_ctypes);
	for (int p = 0; p < 4; p++) {
		cr_expect(weights[p] >= 1, "py-weights page %d unrecorded", p);
		cr_expect(lookup[p + first] >= 1,
		          "py-lookup page %d unrecorded", p + first);
	}
	host_rmtree(dir);
	host_run_free(&r);
}
