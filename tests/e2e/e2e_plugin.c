/* e2e_plugin: a dlopen()ed plugin finds the shim only when it is preloaded.
 *
 * Starts plugin_host (not linked against libforkshim) on the plugin module
 * twice: with LD_PRELOAD of the shim, where the plugin must take the handle
 * path and its forked worker must deref the buffer; and with no shim at
 * all, where forkshim_client_get() must say absent and the pipe fallback
 * must do the same job. */
#include <criterion/criterion.h>
#include <string.h>

#include "e2e_run.h"

static const char *const host_argv[] = {E2E_PLUGIN_HOST, E2E_PLUGIN_MODULE,
                                        NULL};

Test(plugin, takes_the_handle_path_when_the_shim_is_preloaded)
{
	struct e2e_run r;

	e2e_run(&r, host_argv, e2e_env_shim, 30);
	cr_expect(e2e_exited_with(&r, 0), E2E_RUN_FMT, E2E_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "host: libforkshim mapped: yes\n"),
	          E2E_RUN_FMT, E2E_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "forkshim: present 0.1.0\n"), E2E_RUN_FMT,
	          E2E_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "path: handle\n"), E2E_RUN_FMT,
	          E2E_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "visible to worker: 1\n"), E2E_RUN_FMT,
	          E2E_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "worker: ok\n"), E2E_RUN_FMT,
	          E2E_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "after thaw: ESTALE\n"), E2E_RUN_FMT,
	          E2E_RUN_ARGS(r));
	cr_expect_null(strstr(r.out.data, "path: pipe"), E2E_RUN_FMT,
	               E2E_RUN_ARGS(r));
	cr_expect_str_empty(r.err.data, E2E_RUN_FMT, E2E_RUN_ARGS(r));
	e2e_run_free(&r);
}

Test(no_shim, plugin_sees_the_shim_absent_and_falls_back_to_a_pipe)
{
	struct e2e_run r;

	e2e_run(&r, host_argv, e2e_env_plain, 30);
	cr_expect(e2e_exited_with(&r, 0), E2E_RUN_FMT, E2E_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "host: libforkshim mapped: no\n"),
	          E2E_RUN_FMT, E2E_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "forkshim: absent\n"), E2E_RUN_FMT,
	          E2E_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "path: pipe\n"), E2E_RUN_FMT,
	          E2E_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "worker: ok\n"), E2E_RUN_FMT,
	          E2E_RUN_ARGS(r));
	cr_expect_null(strstr(r.out.data, "path: handle"), E2E_RUN_FMT,
	               E2E_RUN_ARGS(r));
	cr_expect_str_empty(r.err.data, E2E_RUN_FMT, E2E_RUN_ARGS(r));
	e2e_run_free(&r);
}
