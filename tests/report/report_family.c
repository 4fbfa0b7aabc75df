/* Per-process reports of a real 3-level family (family_host.c) under
 * FORKSHIM_REPORT: one 0600 file per process, with its parent, birth, how
 * it ended (exit, _exit, a fatal signal, or killed by SIGKILL and then
 * reported by its parent) and the region's figures; the family behaves
 * exactly as without the shim; a program that never freezes leaves no
 * file. */
#include <criterion/criterion.h>

#include "../guard/guard_run.h"

static char dir[64];

static void setup(void)
{
	guard_mkdir(dir, sizeof(dir));
}

static void teardown(void)
{
	host_rmtree(dir);
}

TestSuite(family, .init = setup, .fini = teardown);

static int count_files(const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	cr_assert_not_null(d);
	while ((e = readdir(d)) != NULL)
		n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
	closedir(d);
	return n;
}

/* The lines of out without the "child X PID" ones (pids differ). */
static char *endings(const char *out)
{
	char *copy = strdup(out), *keep = calloc(1, strlen(out) + 1);
	char *save = NULL;

	cr_assert(copy && keep);
	for (char *l = strtok_r(copy, "\n", &save); l;
	     l = strtok_r(NULL, "\n", &save)) {
		if (strncmp(l, "child ", 6) == 0)
			continue;
		strcat(keep, l);
		strcat(keep, "\n");
	}
	free(copy);
	return keep;
}

static int pid_of(const char *out, const char *who)
{
	char needle[16];
	const char *s;

	snprintf(needle, sizeof(needle), "child %s ", who);
	s = strstr(out, needle);
	cr_assert_not_null(s, "no \"%s\" in:\n%s", needle, out);
	return atoi(s + strlen(needle));
}

static char *report_of(int pid)
{
	char path[160];
	struct stat st;
	char *text;

	snprintf(path, sizeof(path), "%s/report-%d.jsonl", dir, pid);
	text = host_read_file(path, NULL);
	cr_assert_not_null(text, "no report %s", path);
	cr_expect(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600,
	          "%s: mode %o", path, st.st_mode & 0777);
	return text;
}

static void expect_has(const char *text, const char *needle, const char *who)
{
	cr_expect(strstr(text, needle) != NULL, "%s: no %s in:\n%s", who,
	          needle, text);
}

static void expect_region(const char *text, int owner, int exclusive,
                          const char *who)
{
	char needle[128];

	snprintf(needle, sizeof(needle),
	         "\"owner\":%d,\"pages\":64,\"resident\":64,\"shared\":%d,"
	         "\"exclusive\":%d,",
	         owner, 64 - exclusive, exclusive);
	expect_has(text, needle, who);
	expect_has(text, "{\"type\":\"region\",\"name\":\"family\",", who);
}

static void expect_head(const char *text, int pid, int ppid, const char *who)
{
	char needle[128];

	snprintf(needle, sizeof(needle),
	         "{\"type\":\"process\",\"format\":1,\"pid\":%d,\"ppid\":%d,",
	         pid, ppid);
	cr_expect(strncmp(text, needle, strlen(needle)) == 0,
	          "%s: first line is not %s:\n%s", who, needle, text);
}

/* argv without the shim, then with it, its reports going to dir; the run
 * with the shim exited 0. */
static void run_both(const char *const argv[], struct host_run *with,
                     struct host_run *without)
{
	struct host_env e;

	HOST_RUN(without, argv, .envp = guard_env(&e, NULL, NULL, 0),
	         .timeout_s = 30);
	HOST_RUN(with, argv, .envp = guard_env(&e, NULL, dir, 1),
	         .timeout_s = 30);
	cr_assert(host_exited_with(with, 0), HOST_RUN_FMT,
	          HOST_RUN_ARGS(*with));
}

Test(family, each_process_reports_once_and_ends_as_without_the_shim)
{
	const char *argv[] = {REPORT_HOST, NULL};
	struct host_env e;
	struct host_run with, without;
	char *a, *b, *text;
	int parent, pa, pg, pb, pc, pd;

	run_both(argv, &with, &without);
	cr_assert(host_exited_with(&without, 0),
	          "without the shim: " HOST_RUN_FMT, HOST_RUN_ARGS(without));
	cr_expect_str_empty(with.err.data, HOST_RUN_FMT, HOST_RUN_ARGS(with));
	a = endings(with.out.data);
	b = endings(without.out.data);
	cr_expect_str_eq(a, "G exited 0\nA exited 3\nB exited 5\nC signal 9\n"
	                    "D signal 15\n");
	cr_expect_str_eq(a, b, "with and without the shim");
	free(a);
	free(b);

	pa = pid_of(with.out.data, "A");
	pg = pid_of(with.out.data, "G");
	pb = pid_of(with.out.data, "B");
	pc = pid_of(with.out.data, "C");
	pd = pid_of(with.out.data, "D");
	cr_expect(count_files("report-") == 6, "%d report files",
	          count_files("report-"));
	cr_expect(count_files("audit-") == 0);

	text = report_of(pa);
	b = strstr(text, "\"ppid\":");
	cr_assert_not_null(b);
	parent = atoi(b + 7);
	expect_head(text, pa, parent, "A");
	expect_region(text, parent, 2, "A");
	expect_has(text,
	           "{\"type\":\"end\",\"how\":\"exit\",\"status\":3,"
	           "\"signal\":0}\n",
	           "A");
	expect_has(text, "\"birth\":1,", "A");
	free(text);

	text = report_of(parent);
	expect_region(text, parent, 64, "parent");
	expect_has(text, "\"birth\":0,", "parent");
	expect_has(text, "{\"type\":\"end\",\"how\":\"exit\",\"status\":0,",
	           "parent");
	free(text);

	text = report_of(pg);
	expect_head(text, pg, pa, "G");
	expect_region(text, parent, 1, "G");
	expect_has(text, "\"how\":\"exit\",\"status\":0,", "G");
	free(text);

	text = report_of(pb);
	expect_head(text, pb, parent, "B");
	expect_region(text, parent, 4, "B");
	expect_has(text, "{\"type\":\"end\",\"how\":\"_exit\",\"status\":5,",
	           "B");
	free(text);

	/* SIGKILL: nothing of its own; the parent's wait wrapper wrote it. */
	text = report_of(pc);
	expect_head(text, pc, parent, "C");
	b = malloc(64);
	snprintf(b, 64, "\"reported_by\":%d}", parent);
	expect_has(text, b, "C");
	free(b);
	cr_expect(strstr(text, "\"type\":\"region\"") == NULL, "C: %s", text);
	expect_has(text,
	           "{\"type\":\"end\",\"how\":\"killed\",\"status\":0,"
	           "\"signal\":9}\n",
	           "C");
	free(text);

	text = report_of(pd);
	expect_head(text, pd, parent, "D");
	expect_region(text, parent, 3, "D");
	expect_has(text,
	           "{\"type\":\"end\",\"how\":\"signal\",\"status\":0,"
	           "\"signal\":15}\n",
	           "D");
	free(text);

	/* And the launcher's view of the run. */
	const char *rargv[] = {REPORT_LAUNCHER, "report", dir, NULL};
	struct host_run r;

	HOST_RUN(&r, rargv, .envp = guard_env(&e, NULL, NULL, 0),
	         .timeout_s = 30);
	cr_assert(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	expect_has(r.out.data, "6 processes, 1 region", "report");
	expect_has(r.out.data,
	           "mapped by 5 processes; copied 10 pages (40.0 "
	           "KiB) in 4 others; 96.1% still shared",
	           "report");
	expect_has(r.out.data, "killed, SIGKILL", "report");
	cr_expect_str_empty(r.err.data, HOST_RUN_FMT, HOST_RUN_ARGS(r));
}

/* The host's view of its dispositions is its own (family_host
 * dispositions): SIG_DFL where it set nothing, its own handler runs, a
 * handler put back to SIG_DFL still reports, signal() answers the
 * previous handler, and SIGSEGV still reads SIG_DFL once the guard has
 * taken it over; the faulting child reports through the guard. */
Test(family, host_sees_its_own_dispositions)
{
	const char *argv[] = {REPORT_HOST, "dispositions", NULL};
	struct host_env e;
	struct host_run with, without;

	run_both(argv, &with, &without);
	cr_expect_str_eq(with.out.data,
	                 "SIGTERM default 1\nSIGUSR1 handler ran 1\n"
	                 "signal() gave the handler 1\nSIGUSR1 default 1\n"
	                 "sigset seen 1\nSIGSEGV default 1\n"
	                 "child signal 10\nsegv child signal 11\n");
	cr_expect_str_eq(with.out.data, without.out.data);
	cr_expect(count_files("report-") == 3, "%d report files",
	          count_files("report-"));
	/* Both children wrote their own reports (through our handler, and
	 * through the guard's default action for the fault). */
	const char *rargv[] = {REPORT_LAUNCHER, "report", dir, NULL};
	struct host_run r;

	HOST_RUN(&r, rargv, .envp = guard_env(&e, NULL, NULL, 0),
	         .timeout_s = 30);
	cr_assert(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, " SIGUSR1 ") != NULL, "%s", r.out.data);
	cr_expect(strstr(r.out.data, " SIGSEGV ") != NULL, "%s", r.out.data);
	cr_expect(strstr(r.out.data, "without region figures") == NULL, "%s",
	          r.out.data);
}

/* Children that _exit while a SIGTERM arrives: each ends, once, with one
 * complete report (written by itself, or by the parent if the signal
 * came first and the child had no table yet... it always has one here). */
Test(family, a_signal_during_the_exit_report_neither_hangs_nor_loses_it)
{
	const char *argv[] = {REPORT_HOST, "race", NULL};
	const char *rargv[] = {REPORT_LAUNCHER, "report", dir, NULL};
	struct host_env e;
	struct host_run r;

	HOST_RUN(&r, argv, .envp = guard_env(&e, NULL, dir, 1),
	         .timeout_s = 60);
	cr_assert(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect_str_eq(r.out.data, "race 100\n");
	cr_expect(count_files("report-") == 101, "%d report files",
	          count_files("report-"));
	HOST_RUN(&r, rargv, .envp = guard_env(&e, NULL, NULL, 0),
	         .timeout_s = 60);
	cr_assert(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, ": 101 processes, 201 regions") != NULL,
	          "%.400s", r.out.data);
	cr_expect_str_empty(r.err.data, "%s", r.err.data);
}

Test(family, a_program_that_never_freezes_leaves_no_file)
{
	const char *argv[] = {"/bin/sh", "-c",
	                      "sh -c 'kill -TERM $$'; (exit 3); echo $?; "
	                      "exit 4",
	                      NULL};
	struct host_env e;
	struct host_run r;

	HOST_RUN(&r, argv, .envp = guard_env(&e, NULL, dir, 1),
	         .timeout_s = 30);
	cr_assert(host_exited_with(&r, 4), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect_str_eq(r.out.data, "3\n");
	cr_expect(count_files("") == 2, "files in %s: %d", dir,
	          count_files("")); /* . and .. */
}

/* A child forked while another thread of its parent arms the parent's
 * report (its first freeze, under the report's arming lock) can arm its
 * own: it used to inherit the lock held, by a thread it does not have,
 * and spin in its first freeze for ever (a TSan stress run of mix with
 * reports hung so).  The lock is held open 1 ms per handler installed
 * (slow_sigaction.c) so that the forks land inside. */
Test(family, a_child_forked_while_its_parent_arms_can_arm, .timeout = 100)
{
	const char *const argv[] = {REPORT_ARM_RACE_HOST, "5", NULL};
	struct host_env e;
	struct host_run r;
	int hung = -1, rounds = -1;

	host_env_plain(&e);
	host_env_add(&e, "LD_PRELOAD=%s:%s", FORKSHIM_LIB,
	             REPORT_SLOW_SIGACTION);
	host_env_add(&e, "FORKSHIM_REPORT=%s", dir);
	host_env_sanitizer(&e);
	HOST_RUN(&r, argv, .envp = e.vars, .timeout_s = 90);
	cr_assert(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_assert(sscanf(r.out.data, "hung %d of %d", &hung, &rounds) == 2,
	          HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(hung == 0, "%d of %d rounds had a child stuck arming", hung,
	          rounds);
	host_run_free(&r);
}
