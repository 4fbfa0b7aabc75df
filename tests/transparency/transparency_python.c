/* transparency_python: /usr/bin/python3 making children with subprocess,
 * os.fork, os.forkpty, os.posix_spawn and multiprocessing (fork,
 * forkserver and spawn start methods) behaves the same under the launcher
 * (forky.py): stdout, stderr and exit status, byte for byte, and the
 * library logs nothing. */
#include <criterion/criterion.h>

#include "tp_run.h"

TestSuite(python, .fini = tp_cleanup);

#define SCRIPT FORKSHIM_SOURCE_DIR "/tests/transparency/forky.py"

static const char *const python_argv[] = {"/usr/bin/python3", "-I", SCRIPT,
                                          NULL};
static const struct tp_opts opts = {.timeout_s = 40};

/* The run without the shim, checked against the script's known output. */
static void run_plain(struct host_run *plain)
{
	char *expected = tp_read_file(SCRIPT ".expected", NULL);

	tp_run(plain, python_argv, &opts);
	cr_assert(host_exited_with(plain, 9),
	          "without the launcher: " HOST_RUN_FMT, HOST_RUN_ARGS(*plain));
	cr_assert_str_eq(plain->out.data, expected);
	cr_assert_str_eq(plain->err.data, "forky.py: to stderr\n");
	free(expected);
}

Test(python, children_of_every_kind_behave_the_same_under_the_launcher)
{
	struct host_run plain, shim;

	run_plain(&plain);
	tp_launched(&shim, NULL, python_argv, &opts);
	tp_expect_same(&plain, &shim);
	host_run_free(&plain);
	host_run_free(&shim);
}

Test(python, children_of_every_kind_make_the_library_log_nothing)
{
	struct host_run plain;

	run_plain(&plain);
	tp_expect_quiet_log(python_argv, &opts, &plain);
	host_run_free(&plain);
}
