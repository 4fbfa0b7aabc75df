/* `forkshim report` on checked-in samples (tests/report/samples): run/
 * holds a family's reports (an owner, a child killed by SIGTERM, one
 * that left with _exit, a grandchild, one reported by its parent after
 * SIGKILL), an audit file with symbol lines, and broken files (no final
 * newline, no end line, not JSON, foreign JSON, empty, a newer format, a
 * region line without its fields, a broken audit line).  The table,
 * --json and --svg output must be exactly the reviewed run.txt, run.json
 * and run.svg, every broken file skipped with a message naming it; and
 * no cut of a good file at any byte makes the report crash. */
#include <criterion/criterion.h>

#include "../guard/guard_run.h"

static void setup(void)
{
	cr_assert(chdir(REPORT_SAMPLES) == 0, "chdir %s", REPORT_SAMPLES);
}

TestSuite(render, .init = setup);

static void report(struct host_run *r, const char *a, const char *b,
                   const char *c)
{
	const char *argv[] = {REPORT_LAUNCHER, "report", a, b, c, NULL};
	struct host_env e;

	HOST_RUN(r, argv, .envp = guard_env(&e, NULL, NULL, 0),
	         .timeout_s = 30);
}

static void expect_file(const char *text, const char *path)
{
	char *want = host_read_file(path, NULL);

	cr_assert_not_null(want, "cannot read %s", path);
	cr_expect_str_eq(text, want, "differs from %s", path);
	free(want);
}

Test(render, table_of_the_sample_run_is_the_reviewed_one)
{
	struct host_run r;

	report(&r, "run", NULL, NULL);
	cr_assert(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	expect_file(r.out.data, "run.txt");
	expect_file(r.err.data, "run.stderr");
}

Test(render, json_of_the_sample_run_is_the_reviewed_one)
{
	struct host_run r;

	report(&r, "--json", "run", NULL);
	cr_assert(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	expect_file(r.out.data, "run.json");
	expect_file(r.err.data, "run.stderr");
}

Test(render, svg_of_the_sample_run_is_the_reviewed_one)
{
	char path[] = "/tmp/forkshim-svg-XXXXXX";
	int fd = mkstemp(path);
	struct host_run r;
	char *svg;

	cr_assert(fd >= 0);
	close(fd);
	report(&r, "--svg", path, "run");
	cr_assert(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	expect_file(r.out.data, "run.txt");
	svg = host_read_file(path, NULL);
	unlink(path);
	cr_assert_not_null(svg);
	expect_file(svg, "run.svg");
	free(svg);
}

Test(render, a_directory_of_only_unreadable_files_says_so)
{
	struct host_run r;

	report(&r, "bad", NULL, NULL);
	cr_assert(host_exited_with(&r, 1), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect_str_empty(r.out.data);
	cr_expect_str_eq(r.err.data,
	                 "forkshim report: bad/report-7.jsonl: skipped: format "
	                 "9 is newer than this forkshim reads (1)\n"
	                 "forkshim report: bad: no readable report\n");
}

Test(render, bad_usage_exits_2)
{
	struct host_run r;

	report(&r, "no-such-dir", NULL, NULL);
	cr_expect(host_exited_with(&r, 2), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(strstr(r.err.data, "no-such-dir: No such file") != NULL, "%s",
	          r.err.data);
	report(&r, "--frobnicate", "run", NULL);
	cr_expect(host_exited_with(&r, 2), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	report(&r, "run", "bad", NULL);
	cr_expect(host_exited_with(&r, 2), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	report(&r, NULL, NULL, NULL);
	cr_expect(host_exited_with(&r, 2), HOST_RUN_FMT, HOST_RUN_ARGS(r));
}

/* Every prefix of a good report and of the audit file, alone with the
 * owner's report: shown or skipped, never a crash. */
Test(render, every_cut_of_a_file_is_skipped_or_shown_never_a_crash,
     .timeout = 120)
{
	static const char *const files[] = {"run/report-101.jsonl",
	                                    "run/audit-101.jsonl"};

	for (size_t f = 0; f < 2; f++) {
		char *text = host_read_file(files[f], NULL);
		char *owner = host_read_file("run/report-100.jsonl", NULL);
		size_t len = strlen(text), step = f == 1 ? 7 : 1;
		char dir[64], path[128];

		guard_mkdir(dir, sizeof(dir));
		snprintf(path, sizeof(path), "%s/report-100.jsonl", dir);
		FILE *o = fopen(path, "w");

		cr_assert_not_null(o);
		fputs(owner, o);
		fclose(o);
		snprintf(path, sizeof(path), "%s/%s", dir,
		         strrchr(files[f], '/') + 1);
		for (size_t cut = 0; cut < len; cut += step) {
			struct host_run r;
			FILE *out = fopen(path, "w");

			cr_assert_not_null(out);
			fwrite(text, 1, cut, out);
			fclose(out);
			report(&r, dir, NULL, NULL);
			cr_assert(host_exited_with(&r, 0),
			          "%s cut at %zu: " HOST_RUN_FMT, files[f], cut,
			          HOST_RUN_ARGS(r));
		}
		host_rmtree(dir);
		free(text);
		free(owner);
	}
}
