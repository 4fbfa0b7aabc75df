/* e2e_fork_paths: children made every way inherit the table.
 *
 * Runs fork_paths (see there) once per mode.  Handle modes must start their
 * output with "MODE: 20 rounds ok"; pass-through modes must print the same, to
 * the byte, with and without the shim, and what they are known to print. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "e2e_run.h"

static void expect_rounds_pass(const char *mode)
{
	const char *const argv[] = {E2E_FORK_PATHS, mode, "20", NULL};
	char want[100];
	struct e2e_run r;

	snprintf(want, sizeof(want), "%s: 20 rounds ok\n", mode);
	e2e_run(&r, argv, e2e_env_shim, 45);
	cr_expect(e2e_exited_with(&r, 0), E2E_RUN_FMT, E2E_RUN_ARGS(r));
	cr_expect_eq(strncmp(r.out.data, want, strlen(want)), 0, E2E_RUN_FMT,
	             E2E_RUN_ARGS(r));
	cr_log_info("%s", r.out.data);
	cr_expect_str_empty(r.err.data, E2E_RUN_FMT, E2E_RUN_ARGS(r));
	e2e_run_free(&r);
}

static void expect_unchanged(const char *mode, const char *out, const char *err)
{
	const char *const argv[] = {E2E_FORK_PATHS, mode, NULL};
	struct e2e_run plain, shim;

	e2e_run(&plain, argv, e2e_env_plain, 30);
	e2e_run(&shim, argv, e2e_env_shim, 30);
	cr_assert(e2e_exited_with(&plain, 0), "without the shim: " E2E_RUN_FMT,
	          E2E_RUN_ARGS(plain));
	cr_assert_str_eq(plain.out.data, out);
	cr_assert_str_eq(plain.err.data, err);
	cr_expect(e2e_exited_with(&shim, 0), "with the shim: " E2E_RUN_FMT,
	          E2E_RUN_ARGS(shim));
	cr_expect_str_eq(shim.out.data, plain.out.data);
	cr_expect_str_eq(shim.err.data, plain.err.data);
	e2e_run_free(&plain);
	e2e_run_free(&shim);
}

Test(fork_paths, fork_child_inherits_the_table_and_freezes_its_own)
{
	expect_rounds_pass("fork");
}

Test(fork_paths, forkpty_child_inherits_the_table_and_freezes_its_own)
{
	expect_rounds_pass("forkpty");
}

Test(fork_paths, daemon_inherits_the_table_and_freezes_its_own)
{
	expect_rounds_pass("daemon");
}

Test(fork_paths, underscore_fork_child_freezes_while_a_thread_held_the_lock)
{
	expect_rounds_pass("_Fork");
}

Test(fork_paths, syscall_fork_child_freezes_while_a_thread_held_the_lock)
{
	expect_rounds_pass("sys_fork");
}

Test(fork_paths, clone_child_on_its_own_stack_inherits_the_table)
{
	expect_rounds_pass("clone");
}

Test(fork_paths, raw_clone_syscall_child_inherits_the_table)
{
	expect_rounds_pass("sys_clone");
}

Test(fork_paths, vfork_exec_runs_unchanged)
{
	expect_unchanged("vfork_exec",
	                 "hi\nvfork echo: exit 0\nfrom sh\nvfork sh: exit 7\n",
	                 "");
}

Test(fork_paths, posix_spawn_runs_unchanged)
{
	expect_unchanged("posix_spawn",
	                 "hi\nposix_spawn echo: exit 0\n"
	                 "spawned\nposix_spawnp sh: exit 4\n",
	                 "to stderr\n");
}

Test(fork_paths, system_runs_unchanged)
{
	expect_unchanged("system",
	                 "hi\nsystem echo: exit 0\nout\nsystem sh: exit 3\n",
	                 "err\n");
}

Test(fork_paths, popen_runs_unchanged)
{
	expect_unchanged("popen",
	                 "popen read: hi\npopen r: exit 0\n"
	                 "written to cat\npopen w: exit 2\n",
	                 "");
}
