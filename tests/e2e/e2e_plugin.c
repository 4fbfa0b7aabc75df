/* e2e_plugin: a dlopen()ed plugin finds the shim only when it is preloaded.
 *
 * Starts plugin_host (not linked against libforkshim) on the plugin module
 * twice: with LD_PRELOAD of the shim, where the plugin must take the handle
 * path and its forked worker must deref the buffer; and with no shim at
 * all, where forkshim_client_get() must say absent and the pipe fallback
 * must do the same job. */
#include <criterion/criterion.h>
#include <string.h>

#include "run_host.h"

static const char *const host_argv[] = {E2E_PLUGIN_HOST, E2E_PLUGIN_MODULE,
                                        NULL};

Test(plugin, takes_the_handle_path_when_the_shim_is_preloaded)
{
	struct host_run r;
	struct host_env env;

	HOST_RUN(&r, host_argv, .envp = host_env_shim(&env), .timeout_s = 30);
	cr_expect(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "host: libforkshim mapped: yes\n"),
	          HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "forkshim: present 0.1.0\n"), HOST_RUN_FMT,
	          HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "path: handle\n"), HOST_RUN_FMT,
	          HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "visible to worker: 1\n"), HOST_RUN_FMT,
	          HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "worker: ok\n"), HOST_RUN_FMT,
	          HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "after thaw: ESTALE\n"), HOST_RUN_FMT,
	          HOST_RUN_ARGS(r));
	cr_expect_null(strstr(r.out.data, "path: pipe"), HOST_RUN_FMT,
	               HOST_RUN_ARGS(r));
	cr_expect_str_empty(r.err.data, HOST_RUN_FMT, HOST_RUN_ARGS(r));
	host_run_free(&r);
}

Test(no_shim, plugin_sees_the_shim_absent_and_falls_back_to_a_pipe)
{
	struct host_run r;
	struct host_env env;

	HOST_RUN(&r, host_argv, .envp = host_env_plain(&env), .timeout_s = 30);
	cr_expect(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "host: libforkshim mapped: no\n"),
	          HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "forkshim: absent\n"), HOST_RUN_FMT,
	          HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "path: pipe\n"), HOST_RUN_FMT,
	          HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "worker: ok\n"), HOST_RUN_FMT,
	          HOST_RUN_ARGS(r));
	cr_expect_null(strstr(r.out.data, "path: handle"), HOST_RUN_FMT,
	               HOST_RUN_ARGS(r));
	cr_expect_str_empty(r.err.data, HOST_RUN_FMT, HOST_RUN_ARGS(r));
	host_run_free(&r);
}
