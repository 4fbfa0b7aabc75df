/* A python3 multiprocessing fork Pool (tests/report/pool.py, using the
 * binding inject/python/forkshim.py) under `forkshim --report DIR`, then
 * `forkshim report DIR`: the 4 workers and the parent each leave a
 * report, and the workers' copies of the shared array add up to exactly
 * the 20 pages the tasks wrote (each also copied the page of the array
 * object's header: the refcount). */
#include <criterion/criterion.h>

#include "../guard/guard_run.h"

static char dir[64];

static void setup(void)
{
	guard_mkdir(dir, sizeof(dir));
}

static void teardown(void)
{
	host_rmtree(dir);
}

TestSuite(python, .init = setup, .fini = teardown);

/* The binding on PYTHONPATH.  In a sanitizer build the runtime leads
 * LD_PRELOAD (tests/run_host.h); the launcher keeps it first when it adds
 * the shim. */
static const char *const *python_env(struct host_env *e)
{
	host_env_plain(e);
	host_env_add(e, "PYTHONPATH=%s", REPORT_PYTHON_DIR);
	host_env_sanitizer(e);
	host_env_runtime(e);
	return e->vars;
}

Test(python, pool_workers_report_the_pages_they_copied)
{
	const char *run[] = {REPORT_LAUNCHER,    "--report", dir,         "--",
	                     "/usr/bin/python3", "-B",       REPORT_POOL, NULL};
	const char *table[] = {REPORT_LAUNCHER, "report", dir, NULL};
	const char *json[] = {REPORT_LAUNCHER, "report", "--json", dir, NULL};
	struct host_run r;
	struct host_env e;
	const char *const *env = python_env(&e);

	HOST_RUN(&r, run, .envp = env, .timeout_s = 60);
	cr_assert(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect_str_eq(r.out.data, "20\n");
	cr_expect_str_empty(r.err.data, HOST_RUN_FMT, HOST_RUN_ARGS(r));

	HOST_RUN(&r, table, .envp = env, .timeout_s = 30);
	cr_assert(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, ": 5 processes, 2 regions, 0 audit "
	                             "files\n") != NULL,
	          "%s", r.out.data);
	cr_expect(strstr(r.out.data, "\"matrix.data\"  2.0 MiB, 512 pages, "
	                             "frozen by ") != NULL,
	          "%s", r.out.data);
	cr_expect(strstr(r.out.data,
	                 "mapped by 5 processes; copied 20 pages (80.0 KiB) "
	                 "in 4 others; 99.0% still shared") != NULL,
	          "%s", r.out.data);
	/* 4 workers, 2 regions: a worker leaves with os._exit, or dies of
	 * the SIGTERM of Pool.terminate when it is still running. */
	cr_expect(guard_count(r.out.data, " _exit 0 ") +
	                  guard_count(r.out.data, " SIGTERM ") ==
	              8,
	          "%s", r.out.data);
	cr_expect_str_empty(r.err.data, HOST_RUN_FMT, HOST_RUN_ARGS(r));

	HOST_RUN(&r, json, .envp = env, .timeout_s = 30);
	cr_assert(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "{\"name\":\"matrix.data\",") != NULL,
	          "%s", r.out.data);
	cr_expect(strstr(r.out.data, "\"copied_pages\":20,") != NULL, "%s",
	          r.out.data);
}

/* The same pool with --guard audit: the report names the writers of the
 * 20 dirtied pages from the workers' audit files. */
Test(python, audited_pool_shows_the_writer_of_every_copied_page)
{
	const char *run[] = {
	    REPORT_LAUNCHER,    "--guard", "audit",     "--report", dir, "--",
	    "/usr/bin/python3", "-B",      REPORT_POOL, NULL};
	const char *table[] = {REPORT_LAUNCHER, "report", dir, NULL};
	struct host_run r;
	struct host_env e;
	const char *const *env = python_env(&e);
	const char *data, *writers, *next;
	int pages = 0;

	HOST_RUN(&r, run, .envp = env, .timeout_s = 60);
	cr_assert(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect_str_eq(r.out.data, "20\n");
	HOST_RUN(&r, table, .envp = env, .timeout_s = 30);
	cr_assert(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, ", 4 audit files\n") != NULL, "%s",
	          r.out.data);
	data = strstr(r.out.data, "\"matrix.data\"");
	cr_assert_not_null(data, "%s", r.out.data);
	writers = strstr(data, "   top writers (first writes, pages): ");
	next = strstr(data, "\n2. ");
	cr_assert(writers != NULL && (next == NULL || writers < next), "%s",
	          r.out.data);
	/* "site N, site N": the counts add up to the 20 pages. */
	for (const char *s = strchr(writers, ':'); s && *s != '\n'; s++)
		if (*s == ' ' && s[1] >= '0' && s[1] <= '9' &&
		    (strchr(",\n", s[1 + strspn(s + 1, "0123456789")])))
			pages += atoi(s + 1);
	cr_expect(pages == 20, "writers count %d pages: %.300s", pages,
	          writers);
}
