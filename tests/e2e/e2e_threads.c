/* e2e_threads: 1,000 forks while four threads freeze and thaw nonstop.
 *
 * mt_host (see there) makes every child check every handle published as
 * frozen before its birth, ESTALE for published thaws and ENOENT for
 * handles frozen after its birth; a wrong answer or a hang fails the run. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "run_host.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CHILDREN 250 /* a sanitizer makes each fork 3-4 times slower */
#else
#define CHILDREN 1000
#endif
#define STR2(x) #x
#define STR(x) STR2(x)

Test(threads, thousand_children_see_exactly_the_regions_frozen_before_birth,
     .timeout = 59)
{
	const char *const argv[] = {E2E_MT_HOST, STR(CHILDREN), NULL};
	unsigned long long children = 0, ok = 0, frozen = 0, enoent = 0,
	                   late = 0, estale = 0, failures = 1;
	const char *at;
	struct host_run r;
	struct host_env env;

	HOST_RUN(&r, argv, .envp = host_env_shim(&env), .timeout_s = 175);
	cr_expect(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect_str_empty(r.err.data, HOST_RUN_FMT, HOST_RUN_ARGS(r));

	at = strstr(r.out.data, "mt: children");
	cr_assert_not_null(at, HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_assert_eq(sscanf(at,
	                    "mt: children %llu ok %llu\n"
	                    "mt: checked frozen %llu enoent %llu (from threads "
	                    "%llu) estale %llu\n",
	                    &children, &ok, &frozen, &enoent, &late, &estale),
	             6, HOST_RUN_FMT, HOST_RUN_ARGS(r));
	at = strstr(r.out.data, "mt: failures ");
	cr_assert_not_null(at, HOST_RUN_FMT, HOST_RUN_ARGS(r));
	sscanf(at, "mt: failures %llu", &failures);
	cr_log_info("e2e_threads: %s", r.out.data);

	cr_expect_eq(children, CHILDREN);
	cr_expect_eq(ok, CHILDREN);
	cr_expect_eq(failures, 0);
	/* Each child got at least the parent's own two post-fork probes. */
	cr_expect_geq(enoent, 2 * children);
	/* Over 1,000 snapshots of 64 busy slots some must have held frozen
	 * and thawed handles, or the children checked nothing. */
	cr_expect_gt(frozen, 0);
	cr_expect_gt(estale, 0);
	host_run_free(&r);
}
