/* e2e_runner: the runner every driver starts its hosts with
 * (tests/run_host.h) keeps its promises, with real processes: both
 * streams whole, also what a grandchild writes after its parent exited;
 * exit codes and signals told apart; a hang killed with its whole process
 * group; exactly the environment given; stdin at EOF; default signal
 * dispositions; the working directory; errors reported, not hidden. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "run_host.h"

#define SH "/bin/sh"

/* sh -c script, in the plain environment. */
static void sh(struct host_run *r, const char *script, int timeout_s)
{
	const char *const argv[] = {SH, "-c", script, NULL};
	struct host_env e;

	HOST_RUN(r, argv, .envp = host_env_plain(&e), .timeout_s = timeout_s);
}

Test(runner, both_streams_whole_and_the_exit_code)
{
	struct host_run r;

	/* 100,000 bytes on each: many reads, both pipes drained at once. */
	sh(&r,
	   "i=0; while [ $i -lt 1000 ]; do "
	   "printf '%099d\\n' $i; printf '%099d\\n' $i >&2; i=$((i+1)); done; "
	   "exit 7",
	   60);
	cr_expect(host_exited_with(&r, 7), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(!host_exited_with(&r, 0));
	cr_expect_eq(r.out.len, 100000);
	cr_expect_eq(r.err.len, 100000);
	cr_expect_eq(strlen(r.out.data), r.out.len);
	cr_expect_eq(strncmp(r.out.data + 99900, "000", 3), 0);
	cr_expect_str_eq(r.out.data + 100000 - 4, "999\n");
	cr_expect_str_eq(r.err.data + 100000 - 4, "999\n");
	cr_expect_gt(r.pid, 0);
	host_run_free(&r);
}

Test(runner, a_grandchild_s_late_output_counts)
{
	struct host_run r;

	sh(&r, "(sleep 0.3; echo late; echo late-err >&2) & echo early", 30);
	cr_expect(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect_str_eq(r.out.data, "early\nlate\n");
	cr_expect_str_eq(r.err.data, "late-err\n");
	host_run_free(&r);
}

Test(runner, death_by_signal_is_not_an_exit)
{
	struct host_run r;

	sh(&r, "echo before; kill -TERM $$; echo after", 30);
	cr_expect(host_died_of(&r, SIGTERM), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(!host_died_of(&r, SIGKILL));
	cr_expect(!host_exited_with(&r, 0));
	cr_expect(!host_exited_with(&r, 128 + SIGTERM));
	cr_expect_str_eq(r.out.data, "before\n");
	host_run_free(&r);
}

/* Whether pid is gone (or a zombie: killed, not yet reaped by init). */
static bool gone(pid_t pid)
{
	char path[64], stat[256] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return true;
	if (fgets(stat, sizeof(stat), f) == NULL)
		stat[0] = '\0';
	fclose(f);
	return strstr(stat, ") Z ") != NULL || strstr(stat, ") X ") != NULL;
}

Test(runner, a_hang_is_killed_with_its_process_group)
{
	struct host_run r;
	double t0 = host_now();
	pid_t child;

	/* The grandchild holds stdout open and would outlive its parent. */
	sh(&r, "sleep 300 & echo $!; sleep 300", 1);
	cr_expect(r.timed_out, HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(!host_exited_with(&r, 0));
	cr_expect(!host_died_of(&r, SIGKILL), "a timeout is not a signal");
	cr_expect(host_now() - t0 < 60, "took %.1f s", host_now() - t0);
	child = (pid_t)atoi(r.out.data);
	cr_assert_gt(child, 0, HOST_RUN_FMT, HOST_RUN_ARGS(r));
	for (int i = 0; i < 200 && !gone(child); i++)
		usleep(10000);
	cr_expect(gone(child), "the grandchild %d outlived the timeout",
	          (int)child);
	host_run_free(&r);
}

Test(runner, exactly_the_environment_given)
{
	const char *const argv[] = {"/usr/bin/env", NULL};
	struct host_run r;
	struct host_env e;

	setenv("FORKSHIM_RUNNER_LEAK", "1", 1);
	HOST_RUN(&r, argv, .envp = host_env_plain(&e));
	cr_expect(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect_str_eq(r.out.data,
	                 "PATH=/usr/local/bin:/usr/bin:/bin\nLC_ALL=C\n");
	host_run_free(&r);

	host_env_plain(&e);
	host_env_add(&e, "A=%d", 1);
	host_env_add(&e, "B=%s", "two words");
	HOST_RUN(&r, argv, .envp = e.vars);
	cr_expect_str_eq(r.out.data, "PATH=/usr/local/bin:/usr/bin:/bin\n"
	                             "LC_ALL=C\nA=1\nB=two words\n");
	host_run_free(&r);
}

/* The shim's LD_PRELOAD is the one tests/CMakeLists.txt composes
 * (FORKSHIM_PRELOAD: the sanitizer runtime first in a sanitizer build),
 * and an LD_PRELOAD a test adds keeps the runtime first too. */
Test(runner, ld_preload_keeps_the_sanitizer_runtime_first)
{
	const char *const argv[] = {"/usr/bin/env", NULL};
	const char *rt = FORKSHIM_SANITIZER_RT;
	struct host_run r;
	struct host_env e;
	char want[4200];

	HOST_RUN(&r, argv, .envp = host_env_shim(&e));
	cr_expect(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "\nLD_PRELOAD=" FORKSHIM_PRELOAD "\n"),
	          "%s", r.out.data);
	host_run_free(&r);

	host_env_plain(&e);
	host_env_add(&e, "LD_PRELOAD=/x.so");
	host_env_runtime(&e); /* one is there already: nothing added */
	snprintf(want, sizeof(want), "%s%s/x.so", rt, rt[0] ? ":" : "");
	cr_expect_eq(e.n, 3);
	cr_expect_str_eq(e.vars[2] + strlen("LD_PRELOAD="), want);

	host_env_plain(&e);
	host_env_runtime(&e);
	if (rt[0] != '\0') {
		cr_expect_eq(e.n, 3);
		cr_expect_str_eq(e.vars[2] + strlen("LD_PRELOAD="), rt);
	} else {
		cr_expect_eq(e.n, 2, "a plain build: no LD_PRELOAD");
	}
	cr_expect_null(e.vars[e.n]);
}

Test(runner, stdin_is_at_eof)
{
	const char *const argv[] = {"/bin/cat", NULL};
	struct host_run r;
	struct host_env e;

	HOST_RUN(&r, argv, .envp = host_env_plain(&e), .timeout_s = 10);
	cr_expect(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect_str_empty(r.out.data);
	host_run_free(&r);
}

Test(runner, signals_the_driver_ignores_are_default_in_the_host)
{
	struct host_run r;

	signal(SIGUSR1, SIG_IGN);
	sh(&r, "kill -USR1 $$; echo survived", 30);
	cr_expect(host_died_of(&r, SIGUSR1), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	host_run_free(&r);
}

Test(runner, in_the_directory_given)
{
	const char *const argv[] = {"/bin/pwd", NULL};
	struct host_run r;
	struct host_env e;

	HOST_RUN(&r, argv, .envp = host_env_plain(&e), .cwd = "/proc");
	cr_expect(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect_str_eq(r.out.data, "/proc\n");
	host_run_free(&r);
}

Test(runner, what_cannot_run_is_an_error)
{
	const char *const missing[] = {"/nonexistent/forkshim-host", NULL};
	const char *const argv[] = {"/bin/true", NULL};
	const struct host_opts no_env = {.timeout_s = 5};
	struct host_opts opts = {.timeout_s = 5};
	struct host_run r;
	struct host_env e;

	opts.envp = host_env_plain(&e);
	cr_expect_eq(host_run(&r, missing, &opts), -1);
	cr_expect(strstr(r.error, "cannot start /nonexistent/forkshim-host") &&
	              strstr(r.error, strerror(ENOENT)),
	          "%s", r.error);
	host_run_free(&r);
	cr_expect_eq(host_run(&r, argv, &no_env), -1);
	cr_expect(strstr(r.error, "no environment"), "%s", r.error);
	host_run_free(&r);
	cr_expect_eq(host_run(&r, argv, &opts), 0, "%s", r.error);
	cr_expect(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	host_run_free(&r);
}

Test(runner, files_a_host_leaves_are_read_whole_and_removed)
{
	char dir[] = "/tmp/forkshim-runner-XXXXXX", script[768], path[256];
	char kept[] = "/tmp/forkshim-runner-kept-XXXXXX";
	struct host_run r;
	char *text;
	size_t len = 0;

	cr_assert_not_null(mkdtemp(dir));
	cr_assert_not_null(mkdtemp(kept));
	snprintf(script, sizeof(script),
	         "mkdir -p %s/a/b && head -c 10000 /dev/zero >%s/a/b/f && "
	         "printf 'x\\0y' >%s/g && touch %s/k && ln -s %s %s/a/link",
	         dir, dir, dir, kept, kept, dir);
	sh(&r, script, 30);
	cr_assert(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	host_run_free(&r);

	snprintf(path, sizeof(path), "%s/a/b/f", dir);
	text = host_read_file(path, &len);
	cr_assert_not_null(text);
	cr_expect_eq(len, 10000);
	cr_expect_eq(text[10000], '\0');
	free(text);
	snprintf(path, sizeof(path), "%s/g", dir);
	text = host_read_file(path, &len);
	cr_assert_eq(len, 3);
	cr_expect_eq(memcmp(text, "x\0y", 4), 0);
	free(text);
	snprintf(path, sizeof(path), "%s/none", dir);
	errno = 0;
	cr_expect_null(host_read_file(path, &len));
	cr_expect_eq(errno, ENOENT);

	host_rmtree(dir);
	cr_expect_neq(access(dir, F_OK), 0, "%s is still there", dir);
	snprintf(path, sizeof(path), "%s/k", kept);
	cr_expect_eq(access(path, F_OK), 0, "the link was followed");
	host_rmtree(kept);
}
