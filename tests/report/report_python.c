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

/* The number of the first line of path that contains text. */
static int line_of(const char *path, const char *text)
{
	char *src = host_read_file(path, NULL), *hit;
	int line = 1;

	cr_assert_not_null(src, "%s", path);
	hit = strstr(src, text);
	cr_assert_not_null(hit, "%s not in %s", text, path);
	for (const char *s = src; s < hit; s++)
		line += *s == '\n';
	free(src);
	return line;
}

/* scripts/bench/pool/dict_demo.py: a dict of `entries` entries that 2
 * fork workers read whole, observed as "users" (forkshim.observe). */
static void run_dict_pool(struct host_run *r, const char *guard,
                          unsigned long entries, unsigned long *pages)
{
	char n[24], sum[48];
	const char *run[] = {REPORT_LAUNCHER,
	                     "--guard",
	                     guard,
	                     "--report",
	                     dir,
	                     "--",
	                     "/usr/bin/python3",
	                     "-B",
	                     REPORT_DICT_POOL,
	                     n,
	                     NULL};
	struct host_env e;
	const char *p;

	snprintf(n, sizeof(n), "%lu", entries);
	/* Each worker adds up float(i) for i < entries. */
	snprintf(sum, sizeof(sum), "%lu\n", entries * (entries - 1));
	HOST_RUN(r, run, .envp = python_env(&e), .timeout_s = 100);
	cr_assert(host_exited_with(r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(*r));
	cr_expect(strncmp(r->out.data, sum, strlen(sum)) == 0, HOST_RUN_FMT,
	          HOST_RUN_ARGS(*r));
	p = strstr(r->out.data, "observed ");
	cr_assert(p != NULL && sscanf(p, "observed %lu pages", pages) == 1 &&
	              *pages > 100,
	          HOST_RUN_FMT, HOST_RUN_ARGS(*r));
}

/* The dict's pages are one entry named after it, and each worker's
 * copies of them (the reference counts its reads wrote) are counted;
 * protect mode leaves observed pages writable: the workers read on. */
Test(python, observed_dict_shows_what_each_pool_worker_copied_of_it)
{
	const char *table[] = {REPORT_LAUNCHER, "report", dir, NULL};
	struct host_run r;
	struct host_env e;
	unsigned long pages = 0, copied = 0, others = 0;
	const char *g;

	run_dict_pool(&r, "protect", 50000, &pages);
	cr_expect_null(strstr(r.err.data, "write to frozen region"), "%s",
	               r.err.data);
	HOST_RUN(&r, table, .envp = python_env(&e), .timeout_s = 30);
	cr_assert(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	g = strstr(r.out.data, "1. \"users\"  ");
	cr_assert(g != NULL && strstr(g, "more: an object's ranges)\n"), "%s",
	          r.out.data);
	g = strstr(g, "   mapped by 3 processes; copied ");
	cr_assert(g != NULL &&
	              sscanf(g,
	                     "   mapped by 3 processes; copied %lu pages "
	                     "(%*[^)]) in %lu others",
	                     &copied, &others) == 2,
	          "%s", r.out.data);
	/* Every worker read every entry: each copied most of the pages. */
	cr_expect(others == 2 && copied >= pages && copied <= 2 * pages,
	          "copied %lu of %lu pages in %lu others: %s", copied, pages,
	          others, r.out.data);
	host_run_free(&r);
}

/* Under audit, the report names the dict and the Python line whose reads
 * copied it: the line of score() in dict_demo.py. */
Test(python, audited_dict_pool_names_the_line_that_copied_the_dict)
{
	const char *table[] = {REPORT_LAUNCHER, "report", dir, NULL};
	const char *json[] = {REPORT_LAUNCHER, "report", "--json", dir, NULL};
	int line = line_of(REPORT_DICT_POOL, "total += users[");
	char site[128], py[512];
	struct host_run r;
	struct host_env e;
	unsigned long pages = 0;
	const char *g, *w;

	/* Fewer entries: every first write is a recorded fault (slow under
	 * a sanitizer). */
	run_dict_pool(&r, "audit", 10000, &pages);
	snprintf(site, sizeof(site),
	         "   top writers (first writes, pages): dict_demo.py:%d in "
	         "score() via ",
	         line);
	snprintf(py, sizeof(py),
	         "\"python\":{\"file\":\"%s\",\"line\":%d,\"function\":"
	         "\"score\"}",
	         REPORT_DICT_POOL, line);
	HOST_RUN(&r, table, .envp = python_env(&e), .timeout_s = 30);
	cr_assert(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	g = strstr(r.out.data, "1. \"users\"  ");
	w = g ? strstr(g, "   top writers") : NULL;
	cr_expect(w != NULL && strncmp(w, site, strlen(site)) == 0,
	          "no \"%s\" in %s", site, r.out.data);
	HOST_RUN(&r, json, .envp = python_env(&e), .timeout_s = 30);
	cr_assert(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "{\"name\":\"users\",") != NULL &&
	              strstr(r.out.data, py) != NULL,
	          "no %s in %s", py, r.out.data);
	/* --svg: the top writers are the region name's tooltip. */
	{
		char svg[96], *text;
		const char *draw[] = {
		    REPORT_LAUNCHER, "report", "--svg", svg, dir, NULL};

		snprintf(svg, sizeof(svg), "%s/run.svg", dir);
		HOST_RUN(&r, draw, .envp = python_env(&e), .timeout_s = 30);
		cr_assert(host_exited_with(&r, 0), HOST_RUN_FMT,
		          HOST_RUN_ARGS(r));
		text = host_read_file(svg, NULL);
		cr_assert_not_null(text);
		cr_expect(strstr(text, site + strlen("   ")) != NULL,
		          "no \"%s\" in %s", site + 3, text);
		free(text);
	}
	host_run_free(&r);
}
