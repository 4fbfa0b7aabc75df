/* The shim's SIGSEGV handler and the host's: a host installing its own
 * handler after the shim reads back its own, keeps getting the faults that
 * are not the shim's with the kernel's siginfo, and gets the shim's faults
 * after its report; SIG_IGN, signal() and SA_RESETHAND behave as without
 * the shim; with the guard off no handler is installed at all. */
#include <criterion/criterion.h>

#include "guard_run.h"

static void run_host(struct host_run *r, const char *mode, const char *guard,
                     int preload)
{
	const char *argv[] = {GUARD_HOST, mode, NULL};
	struct host_env e;

	HOST_RUN(r, argv, .envp = guard_env(&e, guard, NULL, preload),
	         .timeout_s = 50);
}

Test(chain, host_handler_installed_later_gets_foreign_faults_with_their_siginfo)
{
	struct host_run r;
	char want[96];
	const char *report, *host;

	run_host(&r, "host", "protect", 1);
	cr_expect(strstr(r.out.data, "readback is ours 1\n"), HOST_RUN_FMT,
	          HOST_RUN_ARGS(r));
	/* The kernel still runs the shim's handler. */
	cr_expect(strstr(r.out.data, "kernel handler is ours 0\n"),
	          HOST_RUN_FMT, HOST_RUN_ARGS(r));
	snprintf(want, sizeof(want),
	         "accerr calls 1 addr ok 1 code %d signo %d value 1\n",
	         SEGV_ACCERR, SIGSEGV);
	cr_expect(strstr(r.out.data, want), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	snprintf(want, sizeof(want), "maperr calls 2 addr ok 1 code %d\n",
	         SEGV_MAPERR);
	cr_expect(strstr(r.out.data, want), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	/* The frozen write: the shim reports, then the host's handler sees
	 * it as any fault it does not know, and the process dies. */
	report = strstr(r.err.data, "write to frozen region \"lookup-table\"");
	host = strstr(r.err.data, "host: foreign fault, dying");
	cr_expect(report != NULL && host > report, HOST_RUN_FMT,
	          HOST_RUN_ARGS(r));
	cr_expect(guard_count(r.err.data, "host: foreign fault") == 1,
	          HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(host_died_of(&r, SIGSEGV), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect_null(strstr(r.out.data, "FAIL"), HOST_RUN_FMT,
	               HOST_RUN_ARGS(r));
	host_run_free(&r);
}

static void expect_flag_results(const struct host_run *r, const char *what)
{
	cr_expect(strstr(r->out.data, "ignored kill survived\n"),
	          "%s: " HOST_RUN_FMT, what, HOST_RUN_ARGS(*r));
	cr_expect(strstr(r->out.data, "plain handler calls 1\n"),
	          "%s: " HOST_RUN_FMT, what, HOST_RUN_ARGS(*r));
	cr_expect(strstr(r->out.data, "reset handler calls 1, now default 1\n"),
	          "%s: " HOST_RUN_FMT, what, HOST_RUN_ARGS(*r));
	cr_expect(host_died_of(r, SIGSEGV), "%s: " HOST_RUN_FMT, what,
	          HOST_RUN_ARGS(*r));
}

Test(chain, ignore_signal_and_resethand_behave_as_without_the_shim)
{
	struct host_run plain, shim;

	run_host(&plain, "flags", NULL, 0);
	expect_flag_results(&plain, "without the shim");
	run_host(&shim, "flags", "protect", 1);
	expect_flag_results(&shim, "with the shim");
	cr_expect_str_eq(shim.out.data, plain.out.data);
	host_run_free(&plain);
	host_run_free(&shim);
}

Test(chain, guard_off_installs_no_handler_and_adds_no_fault)
{
	struct host_run r;
	const char *s;
	long faults = -1;

	run_host(&r, "off", NULL, 1);
	cr_expect(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "sigaction default 1\n"), HOST_RUN_FMT,
	          HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "kernel default 1\n"), HOST_RUN_FMT,
	          HOST_RUN_ARGS(r));
	/* 64 pages written in the child: their copy-on-write faults, and no
	 * protection fault on top of them. */
	s = strstr(r.out.data, "child faults ");
	cr_expect(s && sscanf(s, "child faults %ld", &faults) == 1 &&
	              faults >= 64 && faults <= 66,
	          "faults %ld: " HOST_RUN_FMT, faults, HOST_RUN_ARGS(r));
	cr_expect_str_empty(r.err.data, HOST_RUN_FMT, HOST_RUN_ARGS(r));
	host_run_free(&r);
}

Test(chain, guard_on_hides_its_handler_from_sigaction_only)
{
	struct host_run r;

	run_host(&r, "off", "audit", 1);
	cr_expect(strstr(r.out.data, "sigaction default 1\n"), HOST_RUN_FMT,
	          HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "kernel default 0\n"), HOST_RUN_FMT,
	          HOST_RUN_ARGS(r));
	host_run_free(&r);
}
