/* transparency_server: a multi-threaded C server forking a child per
 * request over 127.0.0.1 (fork_server.c), reaping with waitpid(pid) in
 * its threads or with waitpid(-1) in a SIGCHLD handler, behaves the same
 * under the launcher: every answer right, the children's exit codes all
 * seen, the same output and exit status, and the library logs nothing. */
#include <criterion/criterion.h>

#include "tp_run.h"

TestSuite(server, .fini = tp_cleanup);

static const struct tp_opts opts = {.timeout_s = 30};

static const char expected_tail[] =
    " 160 requests, 160 answered right, 0 wrong\n"
    "children's exit codes: 0:22 1:23 2:23 3:24 4:23 5:23 6:22, other: 0\n";

static void run_plain(struct host_run *plain, const char *const argv[])
{
	char *expected;

	tp_run(plain, argv, &opts);
	cr_assert(host_exited_with(plain, 0),
	          "without the launcher: " HOST_RUN_FMT, HOST_RUN_ARGS(*plain));
	cr_assert_geq(asprintf(&expected, "mode %s:%s", argv[1], expected_tail),
	              0);
	cr_assert_str_eq(plain->out.data, expected);
	cr_assert_str_eq(plain->err.data, "fork_server: done\n");
	free(expected);
}

static void same_under_the_launcher(const char *mode)
{
	const char *const argv[] = {TP_FORK_SERVER, mode, NULL};
	struct host_run plain, shim;

	run_plain(&plain, argv);
	tp_launched(&shim, NULL, argv, &opts);
	tp_expect_same(&plain, &shim);
	host_run_free(&plain);
	host_run_free(&shim);
}

Test(server, threads_forking_per_request_and_waiting_behave_the_same)
{
	same_under_the_launcher("wait");
}

Test(server, threads_forking_per_request_reaped_by_sigchld_behave_the_same)
{
	same_under_the_launcher("sigchld");
}

Test(server, threads_forking_per_request_make_the_library_log_nothing)
{
	const char *const argv[] = {TP_FORK_SERVER, "sigchld", NULL};
	struct host_run plain;

	run_plain(&plain, argv);
	tp_expect_quiet_log(argv, &opts, &plain);
	host_run_free(&plain);
}
