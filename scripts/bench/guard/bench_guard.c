/* bench_guard: what FORKSHIM_GUARD=audit costs a forked child per first
 * write to an inherited frozen page, against the plain copy-on-write fault
 * of the same write without the shim, measured in the same run.
 *
 * Each round starts two measuring processes, alternately: one without the
 * shim, one with it preloaded in audit mode (records going to a temporary
 * FORKSHIM_REPORT directory).  Each maps N pages, fills them, freezes them
 * (with the shim), forks a child, and the child times one byte written to
 * each page, in page order.  The audited process also times the same write
 * to N pages it did not freeze (copy-on-write with the shim loaded).  The
 * medians over the rounds and their ratio are printed.
 *
 *   bench_guard [--pages N] [--rounds R] [--shim PATH]
 * The shim is FORKSHIM_BENCH_LIB as built, FORKSHIM_BENCH_SHIM in the
 * environment, or --shim. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "forkshim_client.h"
#include "run_host.h"

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static unsigned char *filled(size_t pages, size_t ps)
{
	unsigned char *p = mmap(NULL, pages * ps, PROT_READ | PROT_WRITE,
	                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	memset(p, 0x5a, pages * ps);
	return p;
}

/* ns per page for a forked child writing one byte to each page. */
static double child_writes(unsigned char *p, size_t pages, size_t ps)
{
	int fds[2];
	double ns = -1;
	pid_t pid;

	if (pipe(fds) != 0)
		exit(1);
	pid = fork();
	if (pid == 0) {
		double t0 = now_ns(), per;

		for (size_t i = 0; i < pages; i++)
			((volatile unsigned char *)p)[i * ps] = 1;
		per = (now_ns() - t0) / (double)pages;
		if (write(fds[1], &per, sizeof(per)) != sizeof(per))
			_exit(1);
		_exit(0);
	}
	close(fds[1]);
	if (read(fds[0], &ns, sizeof(ns)) != sizeof(ns))
		ns = -1;
	close(fds[0]);
	waitpid(pid, NULL, 0);
	return ns;
}

/* A measuring process: prints "frozen NS" (and "unfrozen NS"). */
static int measure(size_t pages)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE);
	const struct forkshim_api *api = forkshim_client_get();
	unsigned char *a = filled(pages, ps), *b = filled(pages, ps);

	if (api != NULL && api->freeze(a, pages * ps, "bench", 0) == 0) {
		perror("freeze");
		return 1;
	}
	printf("frozen %.1f\n", child_writes(a, pages, ps));
	if (api != NULL)
		printf("unfrozen %.1f\n", child_writes(b, pages, ps));
	return 0;
}

/* Runs self --measure with envp (tests/run_host.h); reads its "key NS"
 * lines.  A process that did not exit 0 leaves them at -1, its account on
 * stderr. */
static void run_measure(const char *self, size_t pages,
                        const char *const envp[], double *frozen,
                        double *unfrozen)
{
	char arg[32];
	const char *const argv[] = {self, "--measure", arg, NULL};
	const struct host_opts opts = {.envp = envp, .timeout_s = 300};
	struct host_run r;

	snprintf(arg, sizeof(arg), "%zu", pages);
	*frozen = *unfrozen = -1;
	if (host_run(&r, argv, &opts) != 0) {
		fprintf(stderr, "bench_guard: %s\n", r.error);
		return;
	}
	for (const char *line = r.out.data;
	     host_exited_with(&r, 0) && line != NULL;) {
		sscanf(line, "frozen %lf", frozen);
		sscanf(line, "unfrozen %lf", unfrozen);
		line = strchr(line, '\n');
		line = line != NULL ? line + 1 : NULL;
	}
	if (!host_exited_with(&r, 0) || r.err.len != 0)
		fprintf(stderr, "bench_guard: measuring process: " HOST_RUN_FMT,
		        HOST_RUN_ARGS(r));
	host_run_free(&r);
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
	const char *shim = getenv("FORKSHIM_BENCH_SHIM");
	size_t pages = 2048;
	int rounds = 7;
	char self[4096], dir[] = "/tmp/forkshim-bench-guard-XXXXXX";
	struct host_env plain_env, audit_env;
	ssize_t n;

	if (shim == NULL)
		shim = FORKSHIM_BENCH_LIB;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--measure") == 0 && i + 1 < argc)
			return measure(strtoul(argv[i + 1], NULL, 10));
		if (strcmp(argv[i], "--pages") == 0 && i + 1 < argc)
			pages = strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else if (strcmp(argv[i], "--shim") == 0 && i + 1 < argc)
			shim = argv[++i];
		else {
			fprintf(stderr, "usage: bench_guard [--pages N] "
			                "[--rounds R] [--shim PATH]\n");
			return 2;
		}
	}
	if (rounds < 1 || rounds > 100 || pages < 1 || pages > 16384) {
		fprintf(stderr, "bench_guard: 1..100 rounds, 1..16384 pages\n");
		return 2;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0 || mkdtemp(dir) == NULL) {
		perror("bench_guard");
		return 1;
	}
	self[n] = '\0';
	host_env_plain(&plain_env);
	host_env_plain(&audit_env);
	host_env_add(&audit_env, "LD_PRELOAD=%s", shim);
	host_env_add(&audit_env, "FORKSHIM_GUARD=audit");
	host_env_add(&audit_env, "FORKSHIM_REPORT=%s", dir);

	double plain[100], audited[100], unfrozen[100], ignored;

	for (int r = 0; r < rounds; r++) {
		run_measure(self, pages, plain_env.vars, &plain[r], &ignored);
		run_measure(self, pages, audit_env.vars, &audited[r],
		            &unfrozen[r]);
		if (plain[r] <= 0 || audited[r] <= 0 || unfrozen[r] <= 0) {
			fprintf(stderr,
			        "bench_guard: a measuring process "
			        "failed (is %s the shim?)\n",
			        shim);
			host_rmtree(dir);
			return 1;
		}
	}
	host_rmtree(dir); /* the records: a file per audited child */
	double p = median(plain, rounds), a = median(audited, rounds);
	double u = median(unfrozen, rounds);

	printf("first write to an inherited page, one byte, %zu pages, median "
	       "of %d rounds\n",
	       pages, rounds);
	printf("  plain copy-on-write, no shim       %9.0f ns/page\n", p);
	printf("  copy-on-write, shim loaded         %9.0f ns/page\n", u);
	printf("  audited first write (record+fault) %9.0f ns/page\n", a);
	printf("  ratio audited / plain              %9.1f\n", a / p);
	return 0;
}
