/* FORKSHIM_GUARD=audit on a C host (guard_host.c): every child forked
 * after a freeze records the first write to each inherited frozen page,
 * once, in FORKSHIM_REPORT/audit-PID.jsonl, and goes on unchanged (its
 * bytes, errno); children that leave with _exit keep their records, and
 * the parent adds the function names when it exits. */
#include <criterion/criterion.h>

#include "guard_run.h"

static char dir[64];

static void setup(void)
{
	guard_mkdir(dir, sizeof(dir));
}

static void teardown(void)
{
	host_rmtree(dir);
}

TestSuite(audit, .init = setup, .fini = teardown);

static void run_host(struct host_run *r, const char *mode, const char *arg,
                     const char *report)
{
	const char *argv[] = {GUARD_HOST, mode, arg, NULL};
	struct host_env e;

	HOST_RUN(r, argv, .envp = guard_env(&e, "audit", report, 1),
	         .timeout_s = 50);
}

/* The report of child pid, as text (malloc). */
static char *report_of(pid_t pid)
{
	char path[160];
	char *text;
	struct stat st;

	snprintf(path, sizeof(path), "%s/audit-%d.jsonl", dir, (int)pid);
	text = host_read_file(path, NULL);
	cr_assert_not_null(text, "no report %s", path);
	cr_expect(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600,
	          "%s: mode %o", path, st.st_mode & 0777);
	return text;
}

static int child_pids(const char *out, pid_t *pids, int max)
{
	int n = 0;

	for (const char *s = out; (s = strstr(s, "child ")) != NULL && n < max;
	     s++) {
		int pid;

		if (sscanf(s, "child %d", &pid) == 1)
			pids[n++] = pid;
	}
	return n;
}

Test(audit, each_child_records_each_first_written_page_once)
{
	struct host_run r;
	pid_t pids[4];
	char names[8][64];
	int n;

	run_host(&r, "audit", "2", dir);
	cr_assert(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	/* The children saw their own bytes and errno kept across the
	 * recorded writes; the parent's bytes did not move. */
	cr_expect(strstr(r.out.data, "children ok 2\n"), HOST_RUN_FMT,
	          HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "parent intact 1\n"), HOST_RUN_FMT,
	          HOST_RUN_ARGS(r));
	cr_expect_str_empty(r.err.data, HOST_RUN_FMT, HOST_RUN_ARGS(r));
	n = child_pids(r.out.data, pids, 4);
	cr_assert(n == 2, HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(guard_reports(dir, names, 8) == 2,
	          "one file per child, none for the parent");
	for (int i = 0; i < n; i++) {
		char *text = report_of(pids[i]);
		char head[96];

		snprintf(head, sizeof(head),
		         "{\"type\":\"process\",\"pid\":%d,", (int)pids[i]);
		cr_expect(strncmp(text, head, strlen(head)) == 0, "%s", text);
		cr_expect(guard_count(text, "\"type\":\"first_write\"") == 3,
		          "%s", text);
		cr_expect(guard_records(text, "table", 0) == 1, "%s", text);
		cr_expect(guard_records(text, "table", 3) == 1, "%s", text);
		cr_expect(guard_records(text, "index", 1) == 1, "%s", text);
		cr_expect(guard_count(text, "\"region\":\"tiny\"") == 0, "%s",
		          text);
		/* Added by the parent at its exit: the child left with _exit.
		 */
		cr_expect(guard_names_function(text, "dirty_table"), "%s",
		          text);
		cr_expect(guard_names_function(text, "dirty_index"), "%s",
		          text);
		cr_expect(guard_names_function(text, "freeze_regions"), "%s",
		          text);
		cr_expect(guard_count(text, "{\"type\":\"symbolized\"") == 1,
		          "%s", text);
		free(text);
	}
	host_run_free(&r);
}

/* Two threads of one child faulting on one page at the same moment is up
 * to the scheduler: six children, eight threads each, twelve pages. */
Test(audit, threads_writing_one_page_at_once_leave_one_record)
{
	struct host_run r;
	pid_t pids[6];
	int n;

	run_host(&r, "threads", "6", dir);
	cr_assert(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "threads ok 6\n"), HOST_RUN_FMT,
	          HOST_RUN_ARGS(r));
	n = child_pids(r.out.data, pids, 6);
	cr_assert(n == 6, HOST_RUN_FMT, HOST_RUN_ARGS(r));
	for (int i = 0; i < n; i++) {
		char *text = report_of(pids[i]);

		for (int page = 0; page < 8; page++)
			cr_expect(guard_records(text, "table", page) == 1,
			          "table page %d: %s", page, text);
		for (int page = 0; page < 4; page++)
			cr_expect(guard_records(text, "index", page) == 1,
			          "index page %d: %s", page, text);
		cr_expect(guard_count(text, "\"type\":\"first_write\"") == 12,
		          "%s", text);
		cr_expect(guard_names_function(text, "dirty_shared_page"), "%s",
		          text);
		free(text);
	}
	host_run_free(&r);
}

Test(audit, records_go_to_the_log_without_a_report_directory)
{
	struct host_run r;
	char names[4][64];

	run_host(&r, "audit", "1", NULL);
	cr_assert(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "children ok 1\n"), HOST_RUN_FMT,
	          HOST_RUN_ARGS(r));
	cr_expect(
	    guard_count(r.err.data, "]: audit {\"type\":\"first_write\"") == 3,
	    HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(guard_count(r.err.data, "without FORKSHIM_REPORT") == 1,
	          HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(guard_reports(dir, names, 4) == 0);
	host_run_free(&r);
}

Test(audit, the_freezing_process_itself_is_not_audited)
{
	struct host_run r;
	char names[4][64];

	/* protect mode's host writes into its own frozen buffer. */
	run_host(&r, "protect", NULL, dir);
	cr_expect(host_exited_with(&r, 1), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "FAIL: the write went through"),
	          HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(guard_reports(dir, names, 4) == 0);
	host_run_free(&r);
}

Test(audit, near_max_map_count_a_child_protects_what_fits_and_says_so,
     .timeout = 55)
{
	struct host_run r;
	char names[4][64], path[160], *text;
	int n = -1;
	const char *s;
	pid_t pid = 0;

	run_host(&r, "maxmap-child", NULL, dir);
	cr_expect(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "child status 0\n"), HOST_RUN_FMT,
	          HOST_RUN_ARGS(r));
	s = strstr(r.out.data, "child protected ");
	cr_expect(s && sscanf(s, "child protected %d of 30", &n) == 1 &&
	              n > 0 && n < 30,
	          "protected %d: " HOST_RUN_FMT, n, HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "host mapped 1000 of 1000\n"),
	          HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "child wrote 30\n"), HOST_RUN_FMT,
	          HOST_RUN_ARGS(r));
	cr_expect(guard_count(r.err.data, "vm.max_map_count") == 1,
	          HOST_RUN_FMT, HOST_RUN_ARGS(r));
	/* One record per protected page, none for the others. */
	cr_assert(guard_reports(dir, names, 4) == 1);
	cr_assert(sscanf(names[0], "audit-%d.jsonl", &pid) == 1);
	snprintf(path, sizeof(path), "%s/%s", dir, names[0]);
	text = host_read_file(path, NULL);
	cr_assert_not_null(text);
	cr_expect(guard_count(text, "\"type\":\"first_write\"") == n, "%s",
	          text);
	free(text);
	host_run_free(&r);
}
