/* stress: many short runs of stress_host, each a fresh process.
 *
 * A run is judged by its exit status and summary line (see stress_host.c
 * for every check a run makes); one that has not finished in time is killed
 * with its process group and fails: a hang is a failure.
 *
 * Short by default.  With FORKSHIM_STRESS_SECONDS=N in the environment
 * (scripts/test --long) each test goes on starting fresh processes until N
 * seconds have passed; the count of runs is then a budget, not a check.
 * Built with a sanitizer, each test does a quarter of the work. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run_host.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SLOW 4 /* sanitizers: a quarter of the work, more time */
#define RUN_TIMEOUT 300
#else
#define SLOW 1
#define RUN_TIMEOUT 100 /* seconds for one process */
#endif

struct sums {
	unsigned long long runs, processes, forks, checks, foreign, accepted;
};

/* The host's environment: PATH and locale, and the sanitizer options of
 * ours (the driver's own). */
static const char *const *stress_env(struct host_env *e)
{
	static const char *names[] = {"ASAN_OPTIONS", "UBSAN_OPTIONS",
	                              "LSAN_OPTIONS", "TSAN_OPTIONS"};

	host_env_plain(e);
	for (int i = 0; i < 4; i++) {
		const char *v = getenv(names[i]);

		if (v != NULL)
			host_env_add(e, "%s=%s", names[i], v);
	}
	return e->vars;
}

static double budget_seconds(void)
{
	const char *s = getenv("FORKSHIM_STRESS_SECONDS");

	return s != NULL ? atof(s) : 0;
}

/* Runs `stress_host mode count` `runs` times (or until the budget is
 * spent, if one is set); every run must pass. */
static void stress(const char *mode, int count, int runs)
{
	char count_arg[16];
	const char *const argv[] = {STRESS_HOST, mode, count_arg, NULL};
	double until = host_now() + budget_seconds(), began = host_now();
	struct sums s = {0};

	snprintf(count_arg, sizeof(count_arg), "%d", count / SLOW);
	runs = (runs + SLOW - 1) / SLOW;
	for (int i = 0; i < runs || host_now() < until; i++) {
		unsigned long long p, f, c, fo, a, x;
		struct host_run r;
		struct host_env env;
		const char *at;
		char want[64];

		HOST_RUN(&r, argv, .envp = stress_env(&env),
		         .timeout_s = RUN_TIMEOUT);
		cr_assert(host_exited_with(&r, 0),
		          "run %d of %s: " HOST_RUN_FMT, i, mode,
		          HOST_RUN_ARGS(r));
		snprintf(want, sizeof(want), "stress %s: processes", mode);
		at = strstr(r.out.data, want);
		cr_assert_not_null(at, HOST_RUN_FMT, HOST_RUN_ARGS(r));
		cr_assert_eq(sscanf(at + strlen(want),
		                    " %llu forks %llu checks %llu foreign "
		                    "%llu accepted %llu failures %llu",
		                    &p, &f, &c, &fo, &a, &x),
		             6, HOST_RUN_FMT, HOST_RUN_ARGS(r));
		cr_assert_eq(x, 0, HOST_RUN_FMT, HOST_RUN_ARGS(r));
		cr_assert_str_empty(r.err.data, HOST_RUN_FMT, HOST_RUN_ARGS(r));
		/* Work was done: forks made and answers checked. */
		cr_assert_gt(f, 0, HOST_RUN_FMT, HOST_RUN_ARGS(r));
		cr_assert_gt(c, 0, HOST_RUN_FMT, HOST_RUN_ARGS(r));
		s.runs++;
		s.processes += p;
		s.forks += f;
		s.checks += c;
		s.foreign += fo;
		s.accepted += a;
		host_run_free(&r);
	}
	/* The figures, for the record (stderr of the test program). */
	fprintf(stderr,
	        "stress %s: runs %llu processes %llu forks %llu checks %llu "
	        "foreign %llu accepted %llu seconds %.1f\n",
	        mode, s.runs, s.processes, s.forks, s.checks, s.foreign,
	        s.accepted, host_now() - began);
}

Test(stress, fresh_processes_freeze_thaw_deref_and_find_while_others_fork,
     .timeout = 900)
{
	stress("mix", 20, 25);
}

Test(stress, shared_regions_frozen_imported_thawed_beside_private_ones,
     .timeout = 900)
{
	stress("shared", 10, 8);
}

Test(stress, families_three_levels_deep_agree_on_every_handle, .timeout = 900)
{
	stress("family", 4 * SLOW, 8);
}

Test(stress, handlers_fork_freeze_and_deref_in_a_single_threaded_process,
     .timeout = 900)
{
	stress("signal1", 1500, 2);
}

Test(stress, handlers_fork_freeze_and_deref_in_four_threads, .timeout = 900)
{
	/* A handler forks only when its thread is in neither a fork nor a
	 * freeze or thaw: glibc's atfork lock, taken before our table lock,
	 * would otherwise be taken in the opposite order (stress_host.c). */
	stress("signalmt", 600, 2);
}
