/* Descriptor reuse (issue 14, class 4).  A child behaving as a daemon
 * closes every descriptor and opens its own data file, which gets the
 * number the shim's log file or audit file had (or the host puts it on
 * that number itself).  The shim's later lines (audit records, which go to
 * the log without FORKSHIM_REPORT) must never land in the host's file: the
 * data file holds exactly what the host wrote.  When its file is gone the
 * shim says so once, on stderr only if stderr is still the one it had. */
#include <criterion/criterion.h>

#include "hostile_run.h"

static char dir[64], data[128], logpath[128];

static void setup(void)
{
	hr_mkdtemp(dir, sizeof(dir), "fd");
	snprintf(data, sizeof(data), "%s/data", dir);
	snprintf(logpath, sizeof(logpath), "%s/shim.log", dir);
}

static void teardown(void)
{
	hr_rmdir(dir);
}

TestSuite(fd, .init = setup, .fini = teardown, .timeout = 60);

static void run_reuse(struct hr *h, const char *kind, const char *const *extra)
{
	const char *argv[] = {HOSTILE_HOST, "reuse", kind, data, logpath, NULL};
	struct host_env envp;

	hr_run(h, argv, hr_env(&envp, extra), 15);
	cr_expect(host_exited_with(&h->r, 0), HOST_RUN_FMT,
	          HOST_RUN_ARGS(h->r));
	cr_expect(strstr(h->r.out.data, "child exited 0\n") != NULL,
	          HOST_RUN_FMT, HOST_RUN_ARGS(h->r));
}

static void expect_data_intact(void)
{
	char *text = hr_slurp(data);

	cr_assert_not_null(text, "no %s", data);
	cr_expect_str_eq(text, "host data 1\nhost data 2\n",
	                 "the host's file got the shim's lines");
	free(text);
}

static int count(const char *text, const char *needle)
{
	int n = 0;

	for (const char *s = text; (s = strstr(s, needle)) != NULL; s++)
		n++;
	return n;
}

Test(fd, a_log_file_closed_by_the_host_is_not_written_through_its_number)
{
	char log[160];
	const char *extra[] = {"FORKSHIM_GUARD=audit", log, NULL};
	struct hr h;

	snprintf(log, sizeof(log), "FORKSHIM_LOG_FILE=%s", logpath);
	run_reuse(&h, "log-close", extra);
	expect_data_intact();
	cr_expect_eq(count(h.r.err.data, "FORKSHIM_LOG_FILE"), 1,
	             "say it once on stderr:\n%s", h.r.err.data);
}

Test(fd, a_log_descriptor_the_host_took_over_is_not_written)
{
	char log[160];
	const char *extra[] = {"FORKSHIM_GUARD=audit", log, NULL};
	struct hr h;

	snprintf(log, sizeof(log), "FORKSHIM_LOG_FILE=%s", logpath);
	run_reuse(&h, "log-dup", extra);
	expect_data_intact();
}

Test(fd, an_audit_file_the_host_closed_and_reused_is_not_written)
{
	char report[128];
	const char *extra[] = {"FORKSHIM_GUARD=audit", report, NULL};
	struct hr h;
	char *text, path[512];

	snprintf(report, sizeof(report), "FORKSHIM_REPORT=%s", dir);
	run_reuse(&h, "audit", extra);
	expect_data_intact();
	cr_expect_eq(count(h.r.err.data, "audit file"), 1,
	             "say it once on the log:\n%s", h.r.err.data);
	/* The directory's descriptor went too: opened again by its path
	 * (still the same directory), the child's report is there. */
	cr_expect_eq(hr_count(dir, "report-"), 2, "reports of both");
	/* The child's first record made it into its own file. */
	cr_assert_eq(hr_count(dir, "audit-"), 1);
	{
		DIR *d = opendir(dir);
		struct dirent *e;

		while ((e = readdir(d)) != NULL)
			if (strncmp(e->d_name, "audit-", 6) == 0)
				snprintf(path, sizeof(path), "%s/%s", dir,
				         e->d_name);
		closedir(d);
	}
	text = hr_slurp(path);
	cr_assert_not_null(text);
	cr_expect_eq(count(text, "\"type\":\"first_write\""), 1, "%s", text);
	free(text);
}

Test(fd, a_closed_stderr_reused_by_the_host_is_not_written)
{
	const char *extra[] = {"FORKSHIM_GUARD=audit", NULL};
	struct hr h;

	run_reuse(&h, "stderr", extra);
	expect_data_intact();
}
