/* transparency_shell: bash forking in every way a shell does (forky.sh:
 * subshells, pipelines, command and process substitution, background jobs
 * and wait, traps, a coprocess) behaves the same under the launcher:
 * stdout, stderr and exit status, byte for byte, and the library logs
 * nothing. */
#include <criterion/criterion.h>

#include "tp_run.h"

TestSuite(shell, .fini = tp_cleanup);

#define SCRIPT FORKSHIM_SOURCE_DIR "/tests/transparency/forky.sh"

static const char *const bash_argv[] = {"/bin/bash", SCRIPT, NULL};
static const struct tp_opts opts = {.timeout_s = 30};

/* The run without the shim, checked against the script's known output:
 * if bash itself misbehaved here, comparing against it would mean
 * nothing. */
static void run_plain(struct host_run *plain)
{
	char *expected = tp_read_file(SCRIPT ".expected", NULL);

	tp_run(plain, bash_argv, &opts);
	cr_assert(host_exited_with(plain, 7),
	          "without the launcher: " HOST_RUN_FMT, HOST_RUN_ARGS(*plain));
	cr_assert_str_eq(plain->out.data, expected);
	cr_assert_str_eq(plain->err.data, "to stderr at the end\n");
	free(expected);
}

Test(shell, fork_heavy_bash_script_runs_the_same_under_the_launcher)
{
	struct host_run plain, shim;

	run_plain(&plain);
	tp_launched(&shim, NULL, bash_argv, &opts);
	tp_expect_same(&plain, &shim);
	host_run_free(&plain);
	host_run_free(&shim);
}

Test(shell, fork_heavy_bash_script_makes_the_library_log_nothing)
{
	struct host_run plain;

	run_plain(&plain);
	tp_expect_quiet_log(bash_argv, &opts, &plain);
	host_run_free(&plain);
}
