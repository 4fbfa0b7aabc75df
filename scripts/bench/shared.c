/* bench_shared: shared frozen regions (SHARED.md) against their baselines,
 * every ratio measured in this run, A and B alternating, with the spread
 * (lowest and highest per-round ratio).  Run it through scripts/bench/shared
 * (the shim preloaded; the workers it execs inherit it).
 *
 *   fork        fork + _exit + waitpid of a process holding 1, 2, 4 GiB
 *               frozen shared (forkshim_alloc), against a process forked
 *               from it before the region existed, which froze one page
 *               shared of its own (the same shim state: table, directory,
 *               registries; only the size differs); and of one holding
 *               1 GiB private frozen, for comparison
 *   alloc       forkshim_alloc + fill + freeze shared of 1 GiB, against
 *               malloc + fill of 1 GiB
 *   copy        freeze shared of 1 GiB of existing memory (one copy),
 *               against memcpy of it into fresh memory
 *   read        import of 1 GiB in an exec'd process and one full read
 *               (time, minor faults per GiB), against a forked child
 *               reading 1 GiB of private frozen memory it inherited
 *   handoff     256 MiB to 4 exec'd workers by token (time until each
 *               holds the bytes), against the bytes down a pipe to each
 *
 *   bench_shared [--rounds R] [--only NAME] [--clock wall|cpu]
 * --clock cpu times each fork by the forking thread's CPU time
 * (CLOCK_THREAD_CPUTIME_ID around fork() in the parent, where the kernel
 * copies the address space), not wall time around fork + waitpid: steadier
 * on a loaded machine, where waiting for a core dominates the wall time.
 * Worker modes (exec'd by the benchmark itself): reader HEX, sink. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "forkshim_client.h"

#define MIB (1ul << 20)
#define GIB (1ul << 30)

static const struct forkshim_api *api;
static char self_exe[4096];
static int rounds = 5;
static int cpu_clock; /* --clock cpu: forks timed in the parent's CPU time */

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "bench_shared[%d]: %s: %s\n", (int)getpid(), what,
	        strerror(errno));
	exit(1);
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(const double *v, int n)
{
	double s[256];

	memcpy(s, v, sizeof(double) * (size_t)n);
	qsort(s, (size_t)n, sizeof(double), cmp);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* One line: medians of A and B, their ratio, and the spread of the
 * per-round ratios. */
static void report(const char *what, const double *a, const double *b, int n,
                   const char *unit, double scale, const char *target)
{
	double r[256] = {0}, lo, hi;

	for (int i = 0; i < n; i++)
		r[i] = a[i] / b[i];
	lo = hi = r[0];
	for (int i = 1; i < n; i++) {
		lo = r[i] < lo ? r[i] : lo;
		hi = r[i] > hi ? r[i] : hi;
	}
	printf("%-44s A %9.3f %s  B %9.3f %s  A/B %7.3f  [%.3f .. %.3f]  %s\n",
	       what, median(a, n) / scale, unit, median(b, n) / scale, unit,
	       median(a, n) / median(b, n), lo, hi, target);
	fflush(stdout);
}

static uint64_t checksum(const void *p, size_t len)
{
	const uint64_t *w = p;
	uint64_t a = 1, s = 0;

	for (size_t i = 0; i < len / 8; i++) {
		a += w[i];
		s += a;
	}
	return a ^ (s << 1);
}

static void fill(void *p, size_t len)
{
	uint64_t *w = p;

	for (size_t i = 0; i < len / 8; i++)
		w[i] = i * 0x9e3779b97f4a7c15ull;
}

static long minflt(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

static void to_hex(const struct forkshim_token *t, char *out)
{
	for (int i = 0; i < FORKSHIM_TOKEN_SIZE; i++)
		sprintf(out + 2 * i, "%02x", t->bytes[i]);
}

static int from_hex(const char *s, struct forkshim_token *t)
{
	if (strlen(s) != 2 * FORKSHIM_TOKEN_SIZE)
		return -1;
	for (int i = 0; i < FORKSHIM_TOKEN_SIZE; i++) {
		unsigned v;

		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		t->bytes[i] = (unsigned char)v;
	}
	return 0;
}

/* ---- workers (exec'd) ---- */

/* reader HEX: import, read it all, print "ns faults sum". */
static int worker_reader(const char *hex)
{
	struct forkshim_token tok;
	size_t len = 0;
	const void *p;
	double t;
	long f;
	uint64_t sum;

	if (from_hex(hex, &tok) < 0)
		return 2;
	f = minflt();
	t = now_ns();
	p = api->import_token(&tok, 0, &len);
	if (p == NULL)
		die("import");
	sum = checksum(p, len);
	t = now_ns() - t;
	printf("%.0f %ld %" PRIu64 "\n", t, minflt() - f, sum);
	return 0;
}

/* sink: reads a mode byte from stdin: 't' then a token (imports it), or
 * 'p' then 8 bytes of length and the bytes; prints the CLOCK_MONOTONIC
 * time at which it held them all, then the checksum time. */
static int worker_sink(void)
{
	char mode;
	double ready, done;
	uint64_t sum;

	if (read(0, &mode, 1) != 1)
		return 2;
	if (mode == 't') {
		struct forkshim_token tok;
		size_t got = 0, len = 0;
		const void *p;

		while (got < sizeof(tok)) {
			ssize_t n = read(0, tok.bytes + got, sizeof(tok) - got);

			if (n <= 0)
				return 3;
			got += (size_t)n;
		}
		p = api->import_token(&tok, 0, &len);
		if (p == NULL)
			die("import");
		ready = now_ns();
		sum = checksum(p, len);
	} else {
		uint64_t len;
		size_t got = 0;
		char *buf;

		if (read(0, &len, 8) != 8)
			return 4;
		buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
		           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (buf == MAP_FAILED)
			die("mmap");
		while (got < len) {
			ssize_t n = read(0, buf + got, len - got);

			if (n <= 0)
				return 5;
			got += (size_t)n;
		}
		ready = now_ns();
		sum = checksum(buf, len);
	}
	done = now_ns();
	printf("%.0f %.0f %" PRIu64 "\n", ready, done - ready, sum);
	return 0;
}

/* ---- fork ---- */

static double cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double fork_once(void)
{
	double t = cpu_clock ? cpu_ns() : now_ns(), d = 0;
	pid_t pid = fork();
	int st;

	if (pid < 0)
		die("fork");
	if (pid == 0)
		_exit(0);
	if (cpu_clock)
		d = cpu_ns() - t;
	waitpid(pid, &st, 0);
	if (!cpu_clock)
		d = now_ns() - t;
	return d;
}

#define FORKS 21

static double fork_median(void)
{
	double v[FORKS];

	for (int i = 0; i < FORKS; i++)
		v[i] = fork_once();
	return median(v, FORKS);
}

/* A helper forked before the region, holding one page frozen shared: on
 * each byte it gets it measures FORKS forks and answers their median. */
struct helper {
	pid_t pid;
	int to, from;
};

static struct helper helper_start(void)
{
	int a[2], b[2];
	struct helper h;

	if (pipe(a) || pipe(b))
		die("pipe");
	h.pid = fork();
	if (h.pid < 0)
		die("fork");
	if (h.pid == 0) {
		char *one = api->alloc(4096, "one page");
		char c;

		close(a[1]);
		close(b[0]);
		if (one == NULL)
			die("forkshim_alloc");
		one[0] = 1;
		if (api->freeze(one, 4096, "one page", FORKSHIM_SHARED) == 0)
			die("freeze shared");
		while (read(a[0], &c, 1) == 1) {
			double m = fork_median();

			if (write(b[1], &m, sizeof(m)) != sizeof(m))
				_exit(1);
		}
		_exit(0);
	}
	close(a[0]);
	close(b[1]);
	h.to = a[1];
	h.from = b[0];
	return h;
}

static double helper_median(struct helper *h)
{
	double m;

	if (write(h->to, "f", 1) != 1 ||
	    read(h->from, &m, sizeof(m)) != sizeof(m))
		die("helper");
	return m;
}

static void helper_stop(struct helper *h)
{
	close(h->to);
	close(h->from);
	waitpid(h->pid, NULL, 0);
}

/* Makes every page of a writable region resident without a fault each
 * where the kernel can (MADV_POPULATE_WRITE); writes it when it cannot. */
static void populate(void *p, size_t len)
{
#ifdef MADV_POPULATE_WRITE
	if (madvise(p, len, MADV_POPULATE_WRITE) == 0)
		return;
#endif
	memset(p, 0x5a, len);
}

static void bench_fork(void)
{
	static const size_t gib[] = {1, 2, 4};
	double a[64], b[64];

	for (size_t k = 0; k < 3; k++) {
		struct helper h = helper_start();
		size_t len = gib[k] * GIB;
		char *p = api->alloc(len, "bench");
		forkshim_handle hd;
		char what[64];

		if (p == NULL)
			die("forkshim_alloc");
		populate(p, len);
		hd = api->freeze(p, len, "bench", FORKSHIM_SHARED);
		if (hd == 0)
			die("freeze shared");
		checksum(p, len); /* mapped here too, as a user would */
		for (int r = 0; r < rounds; r++) {
			a[r] = fork_median();
			b[r] = helper_median(&h);
		}
		snprintf(what, sizeof(what), "fork, %zu GiB frozen shared",
		         gib[k]);
		report(what, a, b, rounds, "ms", 1e6, "(target <= 1.10)");
		api->thaw(hd);
		helper_stop(&h);
	}
	/* For comparison: 1 GiB of private frozen memory. */
	{
		struct helper h = helper_start();
		char *p = mmap(NULL, GIB, PROT_READ | PROT_WRITE,
		               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		forkshim_handle hd;

		if (p == MAP_FAILED)
			die("mmap");
		madvise(p, GIB, MADV_NOHUGEPAGE);
		populate(p, GIB);
		hd = api->freeze(p, GIB, "private", 0);
		for (int r = 0; r < rounds; r++) {
			a[r] = fork_median();
			b[r] = helper_median(&h);
		}
		report("fork, 1 GiB frozen private (comparison)", a, b, rounds,
		       "ms", 1e6, "");
		api->thaw(hd);
		munmap(p, GIB);
		helper_stop(&h);
	}
}

/* ---- alloc + fill + freeze; freeze's copy ---- */

static void bench_alloc(void)
{
	double a[64], b[64];

	for (int r = 0; r < rounds; r++) {
		double t = now_ns();
		char *p = api->alloc(GIB, "fill");
		forkshim_handle h;

		if (p == NULL)
			die("alloc");
		fill(p, GIB);
		h = api->freeze(p, GIB, "fill", FORKSHIM_SHARED);
		if (h == 0)
			die("freeze");
		a[r] = now_ns() - t;
		api->thaw(h); /* unmaps and frees it */

		t = now_ns();
		char *q = malloc(GIB);

		if (q == NULL)
			die("malloc");
		fill(q, GIB);
		b[r] = now_ns() - t;
		free(q);
	}
	report("alloc+fill+freeze shared 1 GiB / malloc+fill", a, b, rounds,
	       "s", 1e9, "(target <= 1.3)");
}

static void bench_copy(void)
{
	double a[64], b[64];
	char *src = mmap(NULL, GIB, PROT_READ | PROT_WRITE,
	                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (src == MAP_FAILED)
		die("mmap");
	populate(src, GIB);
	fill(src, GIB);
	for (int r = 0; r < rounds; r++) {
		double t = now_ns();
		forkshim_handle h =
		    api->freeze(src, GIB, "copy", FORKSHIM_SHARED);

		if (h == 0)
			die("freeze shared");
		a[r] = now_ns() - t;
		api->thaw(h);

		t = now_ns();
		char *dst = mmap(NULL, GIB, PROT_READ | PROT_WRITE,
		                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (dst == MAP_FAILED)
			die("mmap");
		memcpy(dst, src, GIB);
		b[r] = now_ns() - t;
		munmap(dst, GIB);
	}
	report("freeze shared 1 GiB (copy) / memcpy to new", a, b, rounds, "s",
	       1e9, "(target <= 1.0)");
	munmap(src, GIB);
}

/* ---- import + read in an exec'd process; inherited read ---- */

static void run_reader(const char *hex, double *ns, long *faults)
{
	int fds[2], st;
	char out[256];
	ssize_t n, got = 0;
	pid_t pid;
	uint64_t sum;

	if (pipe(fds))
		die("pipe");
	pid = fork();
	if (pid == 0) {
		dup2(fds[1], 1);
		execl(self_exe, self_exe, "reader", hex, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	while ((n = read(fds[0], out + got, sizeof(out) - 1 - got)) > 0)
		got += n;
	out[got] = '\0';
	close(fds[0]);
	waitpid(pid, &st, 0);
	if (sscanf(out, "%lf %ld %" SCNu64, ns, faults, &sum) != 3) {
		fprintf(stderr, "reader said: %s\n", out);
		exit(1);
	}
}

static void bench_read(void)
{
	double a[64], b[64], fa[64], fb[64];
	char *p = api->alloc(GIB, "read");
	char *q = mmap(NULL, GIB, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct forkshim_token tok;
	char hex[2 * FORKSHIM_TOKEN_SIZE + 1];
	forkshim_handle h, hq;
	FILE *f;
	char thp[128] = "?";

	if (p == NULL || q == MAP_FAILED)
		die("alloc");
	populate(p, GIB);
	madvise(q, GIB, MADV_NOHUGEPAGE);
	populate(q, GIB);
	h = api->freeze(p, GIB, "read", FORKSHIM_SHARED);
	hq = api->freeze(q, GIB, "inherited", 0);
	if (h == 0 || hq == 0 || api->export_token(h, &tok) != 0)
		die("freeze/export");
	to_hex(&tok, hex);
	for (int r = 0; r < rounds; r++) {
		long faults;
		int fds[2];
		pid_t pid;

		run_reader(hex, &a[r], &faults);
		fa[r] = (double)faults;

		if (pipe(fds))
			die("pipe");
		pid = fork();
		if (pid == 0) {
			long f0 = minflt();
			double t = now_ns(), res[3];
			size_t len;
			const void *x = api->deref(hq, &len);

			res[2] =
			    (double)checksum(x, len); /* used: not elided */
			res[0] = now_ns() - t;
			res[1] = (double)(minflt() - f0);
			if (write(fds[1], res, sizeof(res)) != sizeof(res))
				_exit(1);
			_exit(0);
		}
		double res[3];

		close(fds[1]);
		if (read(fds[0], res, sizeof(res)) != sizeof(res))
			die("child");
		close(fds[0]);
		waitpid(pid, NULL, 0);
		b[r] = res[0];
		fb[r] = res[1];
	}
	f = fopen("/sys/kernel/mm/transparent_hugepage/shmem_enabled", "r");
	if (f != NULL) {
		if (fgets(thp, sizeof(thp), f) == NULL)
			strcpy(thp, "?");
		thp[strcspn(thp, "\n")] = '\0';
		fclose(f);
	}
	report("import+read 1 GiB exec'd / inherited read", a, b, rounds, "ms",
	       1e6, "");
	printf("%-44s exec'd import %.0f faults/GiB, inherited %.0f "
	       "faults/GiB (shmem_enabled: %s; target <= ~16400 without "
	       "shmem huge pages, <= 600 with)\n",
	       "  faults", median(fa, rounds), median(fb, rounds), thp);
	api->thaw(h);
	api->thaw(hq);
	munmap(q, GIB);
}

/* ---- hand-off to exec'd workers ---- */

#define SINKS 4

static double handoff(int by_token, const struct forkshim_token *tok,
                      const char *buf, size_t len)
{
	int in[SINKS][2], out[SINKS][2];
	pid_t pid[SINKS];
	double t0, last = 0;

	for (int i = 0; i < SINKS; i++) {
		if (pipe(in[i]) || pipe(out[i]))
			die("pipe");
		pid[i] = fork();
		if (pid[i] == 0) {
			dup2(in[i][0], 0);
			dup2(out[i][1], 1);
			execl(self_exe, self_exe, "sink", (char *)NULL);
			_exit(127);
		}
		close(in[i][0]);
		close(out[i][1]);
	}
	usleep(200000); /* let them start: exec is not what is measured */
	t0 = now_ns();
	for (int i = 0; i < SINKS; i++) {
		if (by_token) {
			if (write(in[i][1], "t", 1) != 1 ||
			    write(in[i][1], tok->bytes, sizeof(tok->bytes)) !=
			        (ssize_t)sizeof(tok->bytes))
				die("write token");
		}
	}
	if (!by_token) {
		/* One writer per sink, as a parent with 4 pipes would. */
		pid_t w[SINKS];

		for (int i = 0; i < SINKS; i++) {
			w[i] = fork();
			if (w[i] == 0) {
				uint64_t l = len;
				size_t done = 0;

				if (write(in[i][1], "p", 1) != 1 ||
				    write(in[i][1], &l, 8) != 8)
					_exit(1);
				while (done < len) {
					ssize_t n = write(in[i][1], buf + done,
					                  len - done);

					if (n <= 0)
						_exit(1);
					done += (size_t)n;
				}
				_exit(0);
			}
		}
		for (int i = 0; i < SINKS; i++)
			waitpid(w[i], NULL, 0);
	}
	for (int i = 0; i < SINKS; i++) {
		char line[128];
		ssize_t n, got = 0;
		double ready, sum_ns;

		close(in[i][1]);
		while ((n = read(out[i][0], line + got,
		                 sizeof(line) - 1 - got)) > 0)
			got += n;
		line[got] = '\0';
		close(out[i][0]);
		waitpid(pid[i], NULL, 0);
		if (sscanf(line, "%lf %lf", &ready, &sum_ns) != 2) {
			fprintf(stderr, "sink said: %s\n", line);
			exit(1);
		}
		if (ready - t0 > last)
			last = ready - t0;
	}
	return last;
}

static void bench_handoff(void)
{
	size_t len = 256 * MIB;
	char *p = api->alloc(len, "handoff");
	struct forkshim_token tok;
	forkshim_handle h;
	double a[64], b[64];

	if (p == NULL)
		die("alloc");
	populate(p, len);
	h = api->freeze(p, len, "handoff", FORKSHIM_SHARED);
	if (h == 0 || api->export_token(h, &tok) != 0)
		die("freeze/export");
	for (int r = 0; r < rounds; r++) {
		a[r] = handoff(0, NULL, p, len);
		b[r] = handoff(1, &tok, p, len);
	}
	report("256 MiB to 4 exec'd workers: pipe / token", a, b, rounds, "ms",
	       1e6, "(target >= 100)");
	api->thaw(h);
}

int main(int argc, char **argv)
{
	const char *only = NULL;
	ssize_t n;

	setvbuf(stdout, NULL, _IOLBF, 0);
	api = forkshim_client_get();
	if (api == NULL || !forkshim_client_has_shared(api)) {
		fprintf(stderr, "bench_shared: the shim (with shared regions) "
		                "is not preloaded\n");
		return 1;
	}
	n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
	if (n <= 0)
		die("readlink");
	self_exe[n] = '\0';
	if (argc >= 3 && strcmp(argv[1], "reader") == 0)
		return worker_reader(argv[2]);
	if (argc >= 2 && strcmp(argv[1], "sink") == 0)
		return worker_sink();
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
			only = argv[++i];
		else if (strcmp(argv[i], "--clock") == 0 && i + 1 < argc &&
		         (!strcmp(argv[i + 1], "cpu") ||
		          !strcmp(argv[i + 1], "wall")))
			cpu_clock = !strcmp(argv[++i], "cpu");
		else {
			fprintf(stderr,
			        "bench_shared: unknown argument %s\nusage: "
			        "bench_shared [--rounds R] [--only "
			        "fork|alloc|copy|read|handoff] [--clock "
			        "wall|cpu]\n",
			        argv[i]);
			return 2;
		}
	}
	if (rounds < 1 || rounds > 64)
		rounds = 5;
	printf("bench_shared: %d rounds, A and B alternating; A/B is the "
	       "ratio of medians, [lo .. hi] the per-round ratios; forks "
	       "timed by %s\n",
	       rounds,
	       cpu_clock ? "the parent's CPU time in fork()"
	                 : "wall time of fork + waitpid");
	if (only == NULL || !strcmp(only, "fork"))
		bench_fork();
	if (only == NULL || !strcmp(only, "alloc"))
		bench_alloc();
	if (only == NULL || !strcmp(only, "copy"))
		bench_copy();
	if (only == NULL || !strcmp(only, "read"))
		bench_read();
	if (only == NULL || !strcmp(only, "handoff"))
		bench_handoff();
	return 0;
}
