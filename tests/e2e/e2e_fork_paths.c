/* e2e_fork_paths: children made every way inherit the table.
 *
 * Runs fork_paths (see there) once per mode.  Handle modes must start their
 * output with "MODE: 20 rounds ok"; pass-through modes must print the same, to
 * the byte, with and without the shim, and what they are known to print. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "run_host.h"

static void expect_rounds_pass(const char *mode)
{
	const char *const argv[] = {E2E_FORK_PATHS, mode, "20", NULL};
	char want[100];
	struct host_run r;
	struct host_env env;

	snprintf(want, sizeof(want), "%s: 20 rounds ok\n", mode);
	HOST_RUN(&r, argv, .envp = host_env_shim(&env), .timeout_s = 45);
	cr_expect(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect_eq(strncmp(r.out.data, want, strlen(want)), 0, HOST_RUN_FMT,
	             HOST_RUN_ARGS(r));
	cr_log_info("%s", r.out.data);
	cr_expect_str_empty(r.err.data, HOST_RUN_FMT, HOST_RUN_ARGS(r));
	host_run_free(&r);
}

static void expect_unchanged(const char *mode, const char *out, const char *err)
{
	const char *const argv[] = {E2E_FORK_PATHS, mode, NULL};
	struct host_run plain, shim;
	struct host_env env;

	HOST_RUN(&plain, argv, .envp = host_env_plain(&env), .timeout_s = 30);
	HOST_RUN(&shim, argv, .envp = host_env_shim(&env), .timeout_s = 30);
	cr_assert(host_exited_with(&plain, 0),
	          "without the shim: " HOST_RUN_FMT, HOST_RUN_ARGS(plain));
	cr_assert_str_eq(plain.out.data, out);
	cr_assert_str_eq(plain.err.data, err);
	cr_expect(host_exited_with(&shim, 0), "with the shim: " HOST_RUN_FMT,
	          HOST_RUN_ARGS(shim));
	cr_expect_str_eq(shim.out.data, plain.out.data);
	cr_expect_str_eq(shim.err.data, plain.err.data);
	host_run_free(&plain);
	host_run_free(&shim);
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
