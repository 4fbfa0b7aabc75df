/* e2e_python: an unmodified /usr/bin/python3 uses the preloaded shim.
 *
 * forkshim_ctypes.py finds the shim's functions with ctypes.CDLL(None),
 * freezes bytes and bytearray buffers, os.fork()s, and has the child deref
 * them; its exit status and its "FAIL:" lines tell the result. */
#include <criterion/criterion.h>
#include <string.h>

#include "run_host.h"

#define SCRIPT FORKSHIM_SOURCE_DIR "/tests/e2e/forkshim_ctypes.py"

static const char *const python_argv[] = {"/usr/bin/python3", "-I", SCRIPT,
                                          NULL};

Test(python, ctypes_script_shares_buffers_with_an_os_fork_child)
{
	struct host_run r;
	struct host_env env;

	HOST_RUN(&r, python_argv, .envp = host_env_shim(&env), .timeout_s = 40);
	cr_expect(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect_null(strstr(r.out.data, "FAIL"), HOST_RUN_FMT,
	               HOST_RUN_ARGS(r));
	/* The child's own checks print too: make sure it got that far. */
	cr_expect(strstr(r.out.data, "ok: child: handle frozen after the fork "
	                             "fails with ENOENT"),
	          HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, ", 0 failed\n"), HOST_RUN_FMT,
	          HOST_RUN_ARGS(r));
	cr_expect_str_empty(r.err.data, HOST_RUN_FMT, HOST_RUN_ARGS(r));
	host_run_free(&r);
}

Test(python, ctypes_script_finds_no_symbols_without_the_shim)
{
	struct host_run r;
	struct host_env env;

	HOST_RUN(&r, python_argv, .envp = host_env_plain(&env),
	         .timeout_s = 40);
	cr_expect(host_exited_with(&r, 3), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "forkshim symbols not found"),
	          HOST_RUN_FMT, HOST_RUN_ARGS(r));
	host_run_free(&r);
}
