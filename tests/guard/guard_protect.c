/* FORKSHIM_GUARD=protect and the FORKSHIM_GUARD freeze flag, on a C host
 * (guard_host.c): a write into a frozen page is stopped with one report
 * naming the region and both call sites, and the process dies of SIGSEGV
 * as an unguarded fault would; thaw lifts the protection; children inherit
 * it; system calls get EFAULT; near vm.max_map_count protection stops with
 * one message instead of failing the host's own mappings. */
#include <criterion/criterion.h>

#include "guard_run.h"

static void run_host(struct host_run *r, const char *mode, const char *guard)
{
	const char *argv[] = {GUARD_HOST, mode, NULL};
	struct host_env e;

	HOST_RUN(r, argv, .envp = guard_env(&e, guard, NULL, 1),
	         .timeout_s = 50);
}

/* The report of a write by scribble() into "lookup-table", frozen in
 * freeze_lookup_table(). */
static void expect_report(const struct host_run *r)
{
	const char *err = r->err.data;
	const char *head =
	    strstr(err, "write to frozen region \"lookup-table\"");
	const char *writer = strstr(err, "written by:");
	const char *frozen = strstr(err, "frozen at:");

	cr_expect(guard_count(err, "write to frozen region") == 1, HOST_RUN_FMT,
	          HOST_RUN_ARGS(*r));
	cr_expect(head != NULL && writer > head && frozen > writer,
	          HOST_RUN_FMT, HOST_RUN_ARGS(*r));
	cr_expect(head != NULL && strstr(head, "(offset 8292 of 16384 bytes"),
	          HOST_RUN_FMT, HOST_RUN_ARGS(*r));
	/* The writer's frame 0 is scribble itself; the freeze was called
	 * from freeze_lookup_table. */
	cr_expect(guard_line_has(writer, "#0 ", " scribble+"), HOST_RUN_FMT,
	          HOST_RUN_ARGS(*r));
	cr_expect(guard_line_has(frozen, "#0 ", " freeze_lookup_table+"),
	          HOST_RUN_FMT, HOST_RUN_ARGS(*r));
	cr_expect(strstr(err, "guard_host+0x") != NULL, HOST_RUN_FMT,
	          HOST_RUN_ARGS(*r));
}

Test(protect, write_into_a_frozen_buffer_is_stopped_naming_both_call_sites)
{
	struct host_run r;

	run_host(&r, "protect", "protect");
	cr_expect(host_died_of(&r, SIGSEGV), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "frozen\n") && !strstr(r.out.data, "FAIL"),
	          HOST_RUN_FMT, HOST_RUN_ARGS(r));
	expect_report(&r);
	host_run_free(&r);
}

Test(protect, guard_flag_protects_one_region_with_the_guard_off)
{
	struct host_run r;

	run_host(&r, "flag", NULL);
	cr_expect(host_died_of(&r, SIGSEGV), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	expect_report(&r);
	host_run_free(&r);
}

Test(protect, the_same_write_goes_through_without_protection)
{
	struct host_run r;

	run_host(&r, "protect", "off");
	cr_expect(host_exited_with(&r, 1), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "FAIL: the write went through"),
	          HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect_str_empty(r.err.data, HOST_RUN_FMT, HOST_RUN_ARGS(r));
	host_run_free(&r);
}

Test(protect, thaw_lifts_the_protection)
{
	struct host_run r;

	run_host(&r, "thaw", "protect");
	cr_expect(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "wrote after thaw 1\n"), HOST_RUN_FMT,
	          HOST_RUN_ARGS(r));
	cr_expect_str_empty(r.err.data, HOST_RUN_FMT, HOST_RUN_ARGS(r));
	host_run_free(&r);
}

Test(protect, a_child_inherits_the_protection_and_dies_alone)
{
	struct host_run r;

	run_host(&r, "child", "protect");
	cr_expect(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "child signal 11\n"), HOST_RUN_FMT,
	          HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "parent intact 1\n"), HOST_RUN_FMT,
	          HOST_RUN_ARGS(r));
	cr_expect(guard_count(r.err.data, "write to frozen region "
	                                  "\"lookup-table\"") == 1,
	          HOST_RUN_FMT, HOST_RUN_ARGS(r));
	host_run_free(&r);
}

Test(protect, read_into_a_frozen_buffer_fails_with_efault)
{
	struct host_run r;
	char want[32];

	run_host(&r, "read", "protect");
	snprintf(want, sizeof(want), "read -1 errno %d\n", EFAULT);
	cr_expect(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, want), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "intact 1\n"), HOST_RUN_FMT,
	          HOST_RUN_ARGS(r));
	host_run_free(&r);
}

Test(protect, near_max_map_count_protection_stops_with_one_message,
     .timeout = 55)
{
	struct host_run r;
	int n = -1;
	const char *s;

	run_host(&r, "maxmap", "protect");
	cr_expect(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	s = strstr(r.out.data, "protected ");
	cr_expect(s && sscanf(s, "protected %d of 30", &n) == 1 && n > 0 &&
	              n < 30,
	          "protected %d: " HOST_RUN_FMT, n, HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "host mapped 1000 of 1000\n"),
	          HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "wrote unguarded\n"), HOST_RUN_FMT,
	          HOST_RUN_ARGS(r));
	cr_expect(guard_count(r.err.data, "vm.max_map_count") == 1,
	          HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(guard_count(r.err.data, "\"crowded\"") == 1, HOST_RUN_FMT,
	          HOST_RUN_ARGS(r));
	host_run_free(&r);
}
