/* bench_core: forkshim's core costs, with and without the shim, in one run.
 *
 * The program you start is the driver; it never measures anything itself.
 * It re-executes /proc/self/exe as worker processes, each started with
 * LD_PRELOAD=<libforkshim> ("shim"), with LD_PRELOAD=<an empty library
 * built with the shim's link options> ("empty": what preloading any
 * library costs) or without any LD_PRELOAD ("none"), and reads their
 * results from a pipe:
 *   - one "inproc" worker (with the shim) times deref, find, freeze+thaw
 *     and the table's memory per region, reaching the shim through
 *     dlsym(RTLD_DEFAULT, "forkshim_api") as a plugin would;
 *   - for each fork case and round, a fresh worker of each kind, pinned
 *     to the same CPU and set up side by side, then each times short
 *     slices of fork+_exit+waitpid in turn; the same for the wrapper's
 *     own cost (pairs of fork() and _Fork()) and for start-up
 *     (posix_spawn of /bin/true).
 * Every small figure is a ratio (or difference) against no preload and
 * against the empty preload, on two clocks (wall, and CPU time of the
 * process and its children), the median over rounds with an interval of
 * the median that says how far the noise of this run reaches.  A process
 * keeps its own speed for life (its layout and memory: identical
 * processes fork a few percent apart), so what narrows the interval is
 * many rounds of short-lived processes, not long runs of a few.
 * This is a report, not a test: it exits 0 whether targets are met or not,
 * and 1 when something failed to run or the shim answered wrongly (find
 * missing a frozen region: the figures are still printed).
 *
 * Usage: bench_core [--shim PATH] [--empty PATH] [--rounds N]
 *                   [--small-rounds N] [--small-iters N] [--pairs N]
 *                   [--big-iters N] [--only small] [--pin on|off]
 * The shim defaults to FORKSHIM_BENCH_SHIM from the environment, else the
 * library of the build tree this program was built in; the empty library
 * to the one built beside it (scripts/bench/empty_preload.c). */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <sched.h>
#include <spawn.h>
#include <time.h>
#include <unistd.h>

#include "forkshim_client.h"
#include "stats.h"

#ifndef FORKSHIM_BENCH_LIB
#define FORKSHIM_BENCH_LIB ""
#endif
#ifndef FORKSHIM_BENCH_EMPTY
#define FORKSHIM_BENCH_EMPTY ""
#endif

#define GIB (1UL << 30)
#define REGION_SIZE 1024UL
#define NREGIONS (GIB / REGION_SIZE) /* 1,048,576 */
#define NADDRS (1UL << 20)           /* precomputed random find addresses */
#define FIND_LEN 16UL
#define DEREF_HANDLES 8
#define MIN_ROUND_NS 0.3e9
#define TIMED_ROUNDS 5
#define WARMUP_FORKS 3

/* freeze+thaw of one region of each size, on resident 4 KiB pages: up to
 * 256 pages the readability check faults the pages in (MADV_POPULATE_READ),
 * above it asks the kernel about the mappings (shim/readable.h). */
static const size_t FREEZE_SIZES[] = {4096, 64 * 4096, 256 * 4096, 257 * 4096,
                                      256 << 20};
#define NSIZES (sizeof(FREEZE_SIZES) / sizeof(FREEZE_SIZES[0]))

#define TARGET_DEREF_NS 10.0
#define TARGET_FIND_NS 200.0
#define TARGET_FORK_SMALL 1.02
#define TARGET_FORK_BIG 1.05
#define TARGET_WRAPPER_US 2.0
#define TARGET_STARTUP 1.05

extern char **environ;

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void die(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "bench_core[%d]: ", (int)getpid());
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* splitmix64: a fixed seed keeps runs comparable. */
static uint64_t next_random(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* 1 GiB of 4 KiB pages, every page resident (written).  MADV_NOHUGEPAGE
 * keeps the page tables, and so fork's cost, those of an ordinary heap
 * whatever the system's transparent huge page setting; MADV_POPULATE_WRITE
 * allocates the pages without a fault each, much faster in a VM. */
static char *resident_gib(void)
{
	char *buf = mmap(NULL, GIB, PROT_READ | PROT_WRITE,
	                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (buf == MAP_FAILED)
		die("mmap 1 GiB: %s", strerror(errno));
	madvise(buf, GIB, MADV_NOHUGEPAGE);
#ifdef MADV_POPULATE_WRITE
	if (madvise(buf, GIB, MADV_POPULATE_WRITE) == 0)
		return buf;
#endif
	memset(buf, 0x5a, GIB);
	return buf;
}

static const struct forkshim_api *shim_or_die(void)
{
	const struct forkshim_api *api = forkshim_client_get();

	if (api == NULL)
		die("the shim is not loaded in this worker (LD_PRELOAD=%s)",
		    getenv("LD_PRELOAD") ? getenv("LD_PRELOAD") : "");
	return api;
}

static void freeze_all_regions(const struct forkshim_api *api, char *buf,
                               forkshim_handle *handles)
{
	for (size_t i = 0; i < NREGIONS; i++) {
		/* Unnamed: a name adds 64 bytes (see README). */
		handles[i] =
		    api->freeze(buf + i * REGION_SIZE, REGION_SIZE, NULL, 0);
		if (handles[i] == 0)
			die("freeze of region %zu: %s", i, strerror(errno));
	}
}

/* ------------------------------------------------------------------ */
/* In-process costs (worker "inproc", run with the shim)               */

typedef void (*loop_fn)(void *ctx, uint64_t n);

/* ns per op of fn: n is raised until one round takes MIN_ROUND_NS, then
 * the best of TIMED_ROUNDS rounds of that n (the calibrating round that
 * reached it included) is kept; the best is the least disturbed. */
static double best_ns_per_op(loop_fn fn, void *ctx)
{
	uint64_t n = 1024;
	double t, best;

	for (;;) {
		t = now_ns();
		fn(ctx, n);
		t = now_ns() - t;
		if (t >= MIN_ROUND_NS)
			break;
		if (t < MIN_ROUND_NS / 16)
			n *= 16;
		else
			n = (uint64_t)((double)n * MIN_ROUND_NS * 1.1 / t) + 1;
	}
	best = t / (double)n;
	for (int r = 1; r < TIMED_ROUNDS; r++) {
		t = now_ns();
		fn(ctx, n);
		t = (now_ns() - t) / (double)n;
		if (t < best)
			best = t;
	}
	return best;
}

struct deref_loop {
	const struct forkshim_api *api;
	forkshim_handle handles[DEREF_HANDLES];
	uintptr_t sink;
	uint64_t failures;
};

static void run_derefs(void *arg, uint64_t n)
{
	struct deref_loop *c = arg;
	const void *(*deref)(forkshim_handle, size_t *) = c->api->deref;
	uintptr_t sum = 0;
	uint64_t failures = 0;
	size_t len;

	for (uint64_t i = 0; i < n; i++) {
		const void *p = deref(c->handles[i % DEREF_HANDLES], &len);

		failures += p == NULL;
		sum += (uintptr_t)p + len;
	}
	c->sink += sum;
	c->failures += failures;
}

struct find_loop {
	const struct forkshim_api *api;
	const uintptr_t *addrs; /* NADDRS of them */
	uint64_t sink;
	uint64_t lookups, misses;
};

static void run_finds(void *arg, uint64_t n)
{
	struct find_loop *c = arg;
	forkshim_handle (*find)(const void *, size_t) = c->api->find;
	uint64_t sum = 0, misses = 0;

	for (uint64_t i = 0; i < n; i++) {
		forkshim_handle h =
		    find((const void *)c->addrs[i % NADDRS], FIND_LEN);

		misses += h == 0;
		sum += h;
	}
	c->sink += sum;
	c->lookups += n;
	c->misses += misses;
}

struct freeze_thaw_loop {
	const struct forkshim_api *api;
	const void *addr;
	size_t len;
	uint64_t failures;
};

static void run_freeze_thaws(void *arg, uint64_t n)
{
	struct freeze_thaw_loop *c = arg;
	uint64_t failures = 0;

	for (uint64_t i = 0; i < n; i++) {
		forkshim_handle h =
		    c->api->freeze(c->addr, c->len, "bench.pair", 0);

		failures += h == 0 || c->api->thaw(h) != 0;
	}
	c->failures += failures;
}

/* Prints "<key> <ns/op>" and "<key>_wrong <fraction of lookups that found
 * nothing>": every address looked up lies in a frozen region. */
static void time_finds(const struct forkshim_api *api, const uintptr_t *addrs,
                       const char *key)
{
	struct find_loop c = {.api = api, .addrs = addrs};
	double ns = best_ns_per_op(run_finds, &c);

	printf("%s %.2f\n%s_wrong %.6f\n", key, ns, key,
	       (double)c.misses / (double)c.lookups);
}

/* Resident memory outside the benchmark's own buffers: the sum of Rss over
 * the mappings of /proc/self/smaps that overlap none of the n ranges in
 * skip.  Taken before and after freezing NREGIONS regions of an already
 * resident buffer, the difference is what the shim's table (and anything it
 * allocates per region) made resident.  VmRSS from /proc/self/status is
 * reported beside it as a cross-check. */
static long rss_kib_outside(const uintptr_t (*skip)[2], int n)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	uintptr_t lo = 0, hi = 0;
	long total = 0, kib;
	int skipping = 0;

	if (f == NULL)
		die("/proc/self/smaps: %s", strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " ", &lo, &hi) == 2 &&
		    strchr(line, ' ') > strchr(line, '-')) {
			skipping = 0;
			for (int i = 0; i < n; i++)
				if (lo < skip[i][1] && skip[i][0] < hi)
					skipping = 1;
		} else if (!skipping &&
		           sscanf(line, "Rss: %ld kB", &kib) == 1) {
			total += kib;
		}
	}
	fclose(f);
	return total;
}

static long status_kib(const char *field)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	size_t flen = strlen(field);
	long kib = -1;

	if (f == NULL)
		die("/proc/self/status: %s", strerror(errno));
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, field, flen) == 0 && line[flen] == ':')
			kib = strtol(line + flen + 1, NULL, 10);
	fclose(f);
	return kib;
}

static int worker_inproc(void)
{
	const struct forkshim_api *api = shim_or_die();
	static char small[DEREF_HANDLES][256];
	struct deref_loop dl = {.api = api};
	struct freeze_thaw_loop ft = {.api = api};
	forkshim_handle *handles, whole;
	uintptr_t *addrs, skip[3][2];
	uint64_t rng = 42;
	long rss_before, rss_after, vm_before, vm_after;
	double t;

	printf("version %s\n", api->version());

	for (int i = 0; i < DEREF_HANDLES; i++) {
		dl.handles[i] =
		    api->freeze(small[i], sizeof(small[i]), "bench.deref", 0);
		if (dl.handles[i] == 0)
			die("freeze: %s", strerror(errno));
	}
	printf("deref %.2f\n", best_ns_per_op(run_derefs, &dl));
	if (dl.failures)
		die("deref failed %" PRIu64 " times", dl.failures);
	for (int i = 0; i < DEREF_HANDLES; i++)
		if (api->thaw(dl.handles[i]) != 0)
			die("thaw: %s", strerror(errno));

	ft.addr = small[0];
	ft.len = sizeof(small[0]);
	printf("freeze_thaw_empty %.1f\n",
	       best_ns_per_op(run_freeze_thaws, &ft));

	char *buf = resident_gib();

	for (size_t i = 0; i < NSIZES; i++) {
		ft.addr = buf;
		ft.len = FREEZE_SIZES[i];
		printf("freeze_thaw_size_%zu %.1f\n", i,
		       best_ns_per_op(run_freeze_thaws, &ft));
	}
	if (ft.failures)
		die("freeze+thaw failed %" PRIu64 " times", ft.failures);

	size_t addrs_size = NADDRS * sizeof(*addrs);
	size_t handles_size = NREGIONS * sizeof(*handles);
	addrs = mmap(NULL, addrs_size, PROT_READ | PROT_WRITE,
	             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	handles = mmap(NULL, handles_size, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (addrs == MAP_FAILED || handles == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	memset(handles, 0, handles_size);

	/* One region: the whole GiB, looked up at random places in it. */
	for (size_t i = 0; i < NADDRS; i++)
		addrs[i] =
		    (uintptr_t)buf + next_random(&rng) % (GIB - FIND_LEN + 1);
	whole = api->freeze(buf, GIB, "bench.whole", 0);
	if (whole == 0)
		die("freeze of 1 GiB: %s", strerror(errno));
	time_finds(api, addrs, "find_1");
	if (api->thaw(whole) != 0)
		die("thaw: %s", strerror(errno));

	/* NREGIONS regions of 1 KiB, looked up at random places in random
	 * regions. */
	for (size_t i = 0; i < NADDRS; i++) {
		size_t region = next_random(&rng) % NREGIONS;
		size_t offset =
		    next_random(&rng) % (REGION_SIZE - FIND_LEN + 1);

		addrs[i] = (uintptr_t)buf + region * REGION_SIZE + offset;
	}
	skip[0][0] = (uintptr_t)buf;
	skip[0][1] = (uintptr_t)buf + GIB;
	skip[1][0] = (uintptr_t)addrs;
	skip[1][1] = (uintptr_t)addrs + addrs_size;
	skip[2][0] = (uintptr_t)handles;
	skip[2][1] = (uintptr_t)handles + handles_size;
	rss_before = rss_kib_outside(skip, 3);
	vm_before = status_kib("VmRSS");
	t = now_ns();
	freeze_all_regions(api, buf, handles);
	t = now_ns() - t;
	rss_after = rss_kib_outside(skip, 3);
	vm_after = status_kib("VmRSS");
	printf("bulk_freeze %.1f\n", t / (double)NREGIONS);
	printf("rss_outside_before_kib %ld\n", rss_before);
	printf("rss_outside_after_kib %ld\n", rss_after);
	printf("vmrss_delta_kib %ld\n", vm_after - vm_before);
	time_finds(api, addrs, "find_n");

	/* The table is full at the default capacity: free one slot and
	 * freeze+thaw in it with NREGIONS - 1 regions live. */
	if (api->thaw(handles[NREGIONS - 1]) != 0)
		die("thaw: %s", strerror(errno));
	ft.addr = buf + (NREGIONS - 1) * REGION_SIZE;
	ft.len = REGION_SIZE;
	printf("freeze_thaw_full %.1f\n",
	       best_ns_per_op(run_freeze_thaws, &ft));
	if (ft.failures)
		die("freeze+thaw failed %" PRIu64 " times", ft.failures);

	t = now_ns();
	for (size_t i = 0; i + 1 < NREGIONS; i++)
		if (api->thaw(handles[i]) != 0)
			die("thaw of region %zu: %s", i, strerror(errno));
	printf("bulk_thaw %.1f\n", (now_ns() - t) / (double)(NREGIONS - 1));
	printf("sink %" PRIuPTR "\n", dl.sink);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Fork latency (workers "small0", "small", "big", "big1", "bigN")      */

/* Every fork figure is taken on two clocks: wall time (latency), and CPU
 * time, this process's (CLOCK_PROCESS_CPUTIME_ID) plus its reaped
 * children's (RUSAGE_CHILDREN): what a fork costs, the parent's copy and
 * the child's run and exit, whatever else the machine is running (a
 * preempted sample counts only the time it ran). */
enum clk { WALL, CPU, CLOCKS };
static const char *CLOCK_NAME[CLOCKS] = {"wall", "cpu"};

struct stamp {
	double t[CLOCKS];
	double self;     /* this process's CPU alone, ns */
	long kid_faults; /* minor faults of the reaped children */
};

static double tv_ns(struct timeval tv)
{
	return (double)tv.tv_sec * 1e9 + (double)tv.tv_usec * 1e3;
}

static void stamp_now(struct stamp *s)
{
	struct timespec ts;
	struct rusage kids;

	s->t[WALL] = now_ns();
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	getrusage(RUSAGE_CHILDREN, &kids);
	s->self = (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
	s->t[CPU] = s->self + tv_ns(kids.ru_utime) + tv_ns(kids.ru_stime);
	s->kid_faults = kids.ru_minflt;
}

/* One fork+_exit+waitpid, through fork() (raw 0) or glibc's _Fork() (raw
 * 1: no wrapper, no atfork handler); its cost on each clock into d, the
 * parent's own CPU time into *self (when not NULL), and returns the
 * child's minor faults. */
static long timed_fork(int raw, double d[CLOCKS], double *self)
{
	struct stamp a, b;
	int status;
	pid_t pid;

	stamp_now(&a);
	pid = raw ? _Fork() : fork();
	if (pid == 0)
		_exit(0);
	if (pid < 0)
		die("%s: %s", raw ? "_Fork" : "fork", strerror(errno));
	if (waitpid(pid, &status, 0) != pid || status != 0)
		die("waitpid: %s", strerror(errno));
	stamp_now(&b);
	for (int c = 0; c < CLOCKS; c++)
		d[c] = b.t[c] - a.t[c];
	if (self != NULL)
		*self = b.self - a.self;
	return b.kid_faults - a.kid_faults;
}

/* Sets itself up, forks WARMUP_FORKS times through fork() and through
 * _Fork(), says "ready with|without" (whether the shim is loaded: asked
 * with dlsym, which does not count as using it), then answers lines on
 * stdin:
 *   "run N": N lines "W C", fork+_exit+waitpid in ns on each clock, and a
 *     line "faults P C": minor page faults per fork in this process and in
 *     the children, which unlike time do not depend on the machine's load;
 *   "inter N": N pairs of a fork() and a _Fork() (which goes first
 *     alternates from pair to pair), a line "FW FC XW XC FF XF FP XP"
 *     each (fork's wall and CPU ns, then _Fork's, then the minor faults
 *     of fork's child and of _Fork's, then the CPU ns of this process
 *     alone in fork's and in _Fork's).  A pair's difference is what fork's
 *     wrapper and atfork handlers cost in this process, the process's own
 *     size and layout cancelled.
 * Modes: small0, a small process that never calls the shim (with it
 * preloaded or not); small, the same holding one frozen 4 KiB page when
 * the shim is there; big, 1 GiB resident; big1 and bigN, the same frozen
 * as one region or as 1,048,576. */
static int worker_fork(const char *mode)
{
	static char page[4096];
	const struct forkshim_api *api = NULL;
	struct rusage self0, self1, kids0, kids1;
	char line[64];
	double(*samples)[CLOCKS] = NULL, d[CLOCKS];
	int loaded = dlsym(RTLD_DEFAULT, "forkshim_version") != NULL;
	unsigned long n, pairs = 0;

	if (strcmp(mode, "small0") == 0) {
		/* A small process with no table, with the shim or without. */
	} else if (strcmp(mode, "small") != 0) {
		char *buf = resident_gib();

		if (strcmp(mode, "big1") == 0) {
			api = shim_or_die();
			if (api->freeze(buf, GIB, "bench.whole", 0) == 0)
				die("freeze of 1 GiB: %s", strerror(errno));
		} else if (strcmp(mode, "bigN") == 0) {
			forkshim_handle *handles =
			    malloc(NREGIONS * sizeof(*handles));

			api = shim_or_die();
			if (handles == NULL)
				die("out of memory");
			freeze_all_regions(api, buf, handles);
			free(handles);
		} else if (strcmp(mode, "big") != 0) {
			die("unknown worker mode %s", mode);
		}
	} else if (loaded) {
		/* With the shim, the small process holds one frozen page. */
		api = shim_or_die();
		if (api->freeze(page, sizeof(page), "bench.page", 0) == 0)
			die("freeze: %s", strerror(errno));
	}
	for (int i = 0; i < WARMUP_FORKS; i++) {
		timed_fork(0, d, NULL);
		timed_fork(1, d, NULL);
	}
	printf("ready %s\n", loaded ? "with" : "without");
	fflush(stdout);

	while (fgets(line, sizeof(line), stdin)) {
		if (sscanf(line, "inter %lu", &n) == 1 && n > 0) {
			for (unsigned long i = 0; i < n; i++, pairs++) {
				double f[CLOCKS], x[CLOCKS], fp, xp;
				long ff, xf;

				if (pairs % 2) {
					xf = timed_fork(1, x, &xp);
					ff = timed_fork(0, f, &fp);
				} else {
					ff = timed_fork(0, f, &fp);
					xf = timed_fork(1, x, &xp);
				}
				printf(
				    "%.0f %.0f %.0f %.0f %ld %ld %.0f %.0f\n",
				    f[WALL], f[CPU], x[WALL], x[CPU], ff, xf,
				    fp, xp);
			}
			fflush(stdout);
			continue;
		}
		if (sscanf(line, "run %lu", &n) != 1 || n == 0)
			break;
		samples = realloc(samples, n * sizeof(*samples));
		if (samples == NULL)
			die("out of memory");
		getrusage(RUSAGE_SELF, &self0);
		getrusage(RUSAGE_CHILDREN, &kids0);
		for (unsigned long i = 0; i < n; i++)
			timed_fork(0, samples[i], NULL);
		getrusage(RUSAGE_SELF, &self1);
		getrusage(RUSAGE_CHILDREN, &kids1);
		for (unsigned long i = 0; i < n; i++)
			printf("%.0f %.0f\n", samples[i][WALL],
			       samples[i][CPU]);
		printf("faults %.3f %.3f\n",
		       (double)(self1.ru_minflt - self0.ru_minflt) / (double)n,
		       (double)(kids1.ru_minflt - kids0.ru_minflt) / (double)n);
		fflush(stdout);
	}
	free(samples);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Driver                                                               */

/* The three kinds of process compared: no LD_PRELOAD, an empty library
 * preloaded (built with the shim's link options: what preloading any
 * library costs), and the shim preloaded. */
enum arm { NONE, EMPTY, SHIM, ARMS };

static const char *preload[ARMS]; /* library paths; NULL for NONE */

/* The orders in which the arms take turns: every arm first, middle and
 * last equally often over 6 slices. */
static const int ORDERS[6][ARMS] = {{0, 1, 2}, {2, 1, 0}, {1, 2, 0},
                                    {0, 2, 1}, {2, 0, 1}, {1, 0, 2}};

struct worker {
	pid_t pid;
	FILE *to;   /* its stdin */
	FILE *from; /* its stdout */
};

/* environ without LD_PRELOAD and without FORKSHIM_* variables (any of
 * them makes the shim initialise at load: FORKSHIM_BENCH_SHIM, say, would
 * add the whole of init to every start-up measured), plus LD_PRELOAD=lib
 * when lib is not NULL. */
static char **worker_env(const char *lib)
{
	size_t n = 0, k = 0;
	char **env, *pre = NULL;

	while (environ[n])
		n++;
	env = calloc(n + 2, sizeof(*env));
	if (env == NULL || (lib && asprintf(&pre, "LD_PRELOAD=%s", lib) < 0))
		die("out of memory");
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "LD_PRELOAD=", 11) != 0 &&
		    strncmp(environ[i], "FORKSHIM_", 9) != 0)
			env[k++] = environ[i];
	env[k] = pre;
	return env;
}

/* Frees what worker_env made (the only LD_PRELOAD entry is its own). */
static void worker_env_free(char **env)
{
	for (char **e = env; *e != NULL; e++)
		if (strncmp(*e, "LD_PRELOAD=", 11) == 0)
			free(*e);
	free(env);
}

/* The CPUs the driver may run on; a measuring process (and so each child
 * it forks) is pinned to one of them, the same for every arm of a round:
 * parent and child then share a CPU and its caches, no fork waits for a
 * wake-up on the other CPU, and every arm competes for the same one.
 * None (ncpus 0) with --pin off. */
static int cpus[CPU_SETSIZE], ncpus;

static void pin_init(int on)
{
	cpu_set_t set;

	ncpus = 0;
	if (!on || sched_getaffinity(0, sizeof(set), &set) != 0)
		return;
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &set))
			cpus[ncpus++] = c;
}

/* Pins the calling process to the CPU of round r (r < 0 or no CPUs:
 * leaves it). */
static void pin_round(int r)
{
	cpu_set_t set;

	if (ncpus == 0 || r < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpus[r % ncpus], &set);
	if (sched_setaffinity(0, sizeof(set), &set) != 0)
		die("sched_setaffinity: %s", strerror(errno));
}

/* Undoes pin_round in the driver. */
static void unpin(void)
{
	cpu_set_t set;

	if (ncpus == 0)
		return;
	CPU_ZERO(&set);
	for (int i = 0; i < ncpus; i++)
		CPU_SET(cpus[i], &set);
	sched_setaffinity(0, sizeof(set), &set);
}

/* Starts worker mode with lib preloaded (NULL: none), pinned to the CPU
 * of round r. */
static void worker_start(struct worker *w, const char *mode, const char *lib,
                         int r)
{
	char *argv[] = {"bench_core", "--worker", (char *)mode, NULL};
	char **env = worker_env(lib);
	int to[2], from[2];

	if (pipe2(to, O_CLOEXEC) != 0 || pipe2(from, O_CLOEXEC) != 0)
		die("pipe: %s", strerror(errno));
	fflush(NULL);
	w->pid = fork();
	if (w->pid < 0)
		die("fork: %s", strerror(errno));
	if (w->pid == 0) {
		dup2(to[0], STDIN_FILENO);
		dup2(from[1], STDOUT_FILENO);
		pin_round(r);
		execve("/proc/self/exe", argv, env);
		_exit(127);
	}
	close(to[0]);
	close(from[1]);
	w->to = fdopen(to[1], "w");
	w->from = fdopen(from[0], "r");
	if (w->to == NULL || w->from == NULL)
		die("fdopen: %s", strerror(errno));
	worker_env_free(env);
}

/* Waits for it; dies unless it exited 0. */
static void worker_finish(struct worker *w, const char *mode)
{
	int status;

	fclose(w->to);
	fclose(w->from);
	if (waitpid(w->pid, &status, 0) != w->pid)
		die("waitpid: %s", strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("worker %s failed (status %#x)", mode, status);
}

/* With --empty, the "empty" arm may be any library, another build of the
 * shim too (shim/empty then compares two builds in one run). */
static int empty_any;

/* Reads the worker's "ready" line: it must have the shim loaded when arm
 * is SHIM, and not when it is NONE or (unless empty_any) EMPTY. */
static void worker_expect_ready(struct worker *w, const char *mode, int arm)
{
	char line[64], expect[64];
	int shim = arm == SHIM;

	snprintf(expect, sizeof(expect), "ready %s\n",
	         shim ? "with" : "without");
	if (fgets(line, sizeof(line), w->from) == NULL ||
	    (strcmp(line, expect) != 0 &&
	     !(arm == EMPTY && empty_any && strncmp(line, "ready ", 6) == 0))) {
		worker_finish(w, mode);
		die("worker %s did not start %s the shim", mode,
		    shim ? "with" : "without");
	}
}

/* Appends n fork costs from w to v[clock] (each clock's array), adds its
 * faults per fork (in the parent and in the child) to faults. */
static void worker_run(struct worker *w, unsigned long n, double *v[CLOCKS],
                       double faults[2])
{
	char line[64];
	double parent, child;

	fprintf(w->to, "run %lu\n", n);
	fflush(w->to);
	for (unsigned long i = 0; i < n; i++)
		if (fgets(line, sizeof(line), w->from) == NULL ||
		    sscanf(line, "%lf %lf", &v[WALL][i], &v[CPU][i]) != 2)
			die("a fork worker stopped answering");
	if (fgets(line, sizeof(line), w->from) == NULL ||
	    sscanf(line, "faults %lf %lf", &parent, &child) != 2)
		die("a fork worker stopped answering");
	faults[0] += parent;
	faults[1] += child;
}

/* The comparisons every small figure is read against. */
enum cmp { SHIM_NONE, SHIM_EMPTY, EMPTY_NONE, CMPS };
static const int CMP_ARMS[CMPS][2] = {
    {SHIM, NONE}, {SHIM, EMPTY}, {EMPTY, NONE}};
static const char *CMP_LABEL[CMPS] = {"shim/none", "shim/empty", "empty/none"};
static const char *DIFF_LABEL[CMPS] = {"shim-none", "shim-empty", "empty-none"};

struct fork_case {
	const char *label;
	const char *modes[ARMS];
	int narms; /* 3, or 2 (NONE and SHIM: the 1 GiB cases) */
	unsigned long iters;
	double target;
	int rounds;
	double median[CLOCKS][ARMS];     /* over all samples, ns */
	double faults[ARMS][2];          /* per fork: [parent, child] */
	struct spread cmp[CLOCKS][CMPS]; /* over rounds, ratios */
};

/* Turns per arm and round: a round's forks of each arm are cut into this
 * many short slices, the arms taking turns. */
#define TURNS 12

static int arm_of(const struct fork_case *c, int slot)
{
	return c->narms == 3 ? slot : slot == 0 ? NONE : SHIM;
}

/* The arm taking the i-th place of turn s of round r. */
static int turn_arm(int narms, int r, int s, int i)
{
	if (narms == 2)
		return (r + s + i) % 2 ? SHIM : NONE;
	return ORDERS[(r * TURNS + s) % 6][i];
}

static double *alloc_doubles(size_t n)
{
	double *v = calloc(n ? n : 1, sizeof(double));

	if (v == NULL)
		die("out of memory");
	return v;
}

/* Each round starts a fresh process of each arm, pinned to the same CPU
 * and set up side by side, and times TURNS slices of iters/TURNS forks in
 * each, the arms taking turns in the orders of ORDERS: drift in the
 * machine's load falls on every arm alike, and the luck of one process's
 * layout and memory (which lasts its life) is drawn afresh every round.
 * A round's figure, per clock, is the ratio of the arms' medians. */
static void measure_fork_case(struct fork_case *c)
{
	unsigned long slice = c->iters / TURNS ? c->iters / TURNS : 1;
	size_t per;
	double *v[CLOCKS][ARMS], *ratio[CLOCKS][CMPS], *tmp;

	c->iters = slice * TURNS;
	per = c->iters * (size_t)c->rounds;
	tmp = alloc_doubles(c->iters);
	for (int k = 0; k < CLOCKS; k++) {
		for (int a = 0; a < ARMS; a++)
			v[k][a] = alloc_doubles(per);
		for (int i = 0; i < CMPS; i++)
			ratio[k][i] = alloc_doubles((size_t)c->rounds);
	}
	for (int r = 0; r < c->rounds; r++) {
		struct worker w[ARMS];
		double m[CLOCKS][ARMS] = {{0}}; /* arms this run skips stay 0 */

		for (int i = 0; i < c->narms; i++)
			worker_start(&w[arm_of(c, i)], c->modes[arm_of(c, i)],
			             preload[arm_of(c, i)], r);
		for (int i = 0; i < c->narms; i++)
			worker_expect_ready(&w[arm_of(c, i)],
			                    c->modes[arm_of(c, i)],
			                    arm_of(c, i));
		for (int s = 0; s < TURNS; s++)
			for (int i = 0; i < c->narms; i++) {
				int a = turn_arm(c->narms, r, s, i);
				size_t at =
				    (size_t)r * c->iters + (size_t)s * slice;
				double *to[CLOCKS] = {v[WALL][a] + at,
				                      v[CPU][a] + at};

				worker_run(&w[a], slice, to, c->faults[a]);
			}
		for (int i = 0; i < c->narms; i++) {
			int a = arm_of(c, i);

			worker_finish(&w[a], c->modes[a]);
			for (int k = 0; k < CLOCKS; k++) {
				memcpy(tmp, v[k][a] + (size_t)r * c->iters,
				       c->iters * sizeof(double));
				m[k][a] = median(tmp, c->iters);
			}
		}
		for (int k = 0; k < CLOCKS; k++)
			for (int i = 0; i < CMPS; i++)
				if (c->narms == 3 || i == SHIM_NONE)
					ratio[k][i][r] = m[k][CMP_ARMS[i][0]] /
					                 m[k][CMP_ARMS[i][1]];
	}
	for (int k = 0; k < CLOCKS; k++) {
		for (int i = 0; i < CMPS; i++) {
			if (c->narms == 3 || i == SHIM_NONE)
				stat_of(ratio[k][i], (size_t)c->rounds,
				        &c->cmp[k][i]);
			free(ratio[k][i]);
		}
		for (int i = 0; i < c->narms; i++) {
			int a = arm_of(c, i);

			c->median[k][a] = median(v[k][a], per);
		}
		for (int a = 0; a < ARMS; a++)
			free(v[k][a]);
	}
	for (int i = 0; i < c->narms; i++) {
		c->faults[arm_of(c, i)][0] /= c->rounds * TURNS;
		c->faults[arm_of(c, i)][1] /= c->rounds * TURNS;
	}
	free(tmp);
}

/* The wrapper's own cost: in each round a fresh small process of each arm
 * (never calling the shim), pinned to the same CPU, each timing pairs of a
 * fork() and a _Fork() in TURNS slices of n/TURNS pairs, the arms taking
 * turns.  An arm's figure in a round is the median over its n pairs of
 * (fork - _Fork); a round's figure for a comparison the difference of two
 * arms' figures, per clock. */
/* The wrapper's figures are kept on one more clock than the others: the
 * parent's own CPU time (SELF), the wrapper's and the atfork handlers'
 * code; the rest of the CPU difference is the children's. */
#define SELF CLOCKS
#define WCLOCKS (CLOCKS + 1)

struct wrapper_cost {
	unsigned long pairs;              /* per arm and round */
	struct spread cmp[WCLOCKS][CMPS]; /* differences, ns */
	double diff[WCLOCKS][ARMS]; /* medians over rounds of fork - _Fork */
	double fork_us[ARMS], raw_us[ARMS]; /* median wall, all pairs */
	double kid_faults[ARMS][2]; /* per fork() and per _Fork() child */
};

/* Reads n pairs from w: appends each pair's fork - _Fork to d[clock] and,
 * for the parent's own CPU, to p; the fork's and _Fork's wall times to f
 * and x; adds their children's minor faults to faults. */
static void worker_inter(struct worker *w, unsigned long n, double *d[CLOCKS],
                         double *p, double *f, double *x, double faults[2])
{
	char line[160];
	double fw, fc, xw, xc, ff, xf, fp, xp;

	fprintf(w->to, "inter %lu\n", n);
	fflush(w->to);
	for (unsigned long i = 0; i < n; i++) {
		if (fgets(line, sizeof(line), w->from) == NULL ||
		    sscanf(line, "%lf %lf %lf %lf %lf %lf %lf %lf", &fw, &fc,
		           &xw, &xc, &ff, &xf, &fp, &xp) != 8)
			die("a fork worker stopped answering");
		faults[0] += ff;
		faults[1] += xf;
		d[WALL][i] = fw - xw;
		d[CPU][i] = fc - xc;
		p[i] = fp - xp;
		f[i] = fw;
		x[i] = xw;
	}
}

static void measure_wrapper(struct wrapper_cost *out, int rounds,
                            unsigned long n)
{
	unsigned long slice = n / TURNS ? n / TURNS : 1;
	size_t all;
	double *d[WCLOCKS][CMPS], *side[WCLOCKS][ARMS], *pd[ARMS][WCLOCKS];
	double *f[ARMS], *x[ARMS];

	n = slice * TURNS;
	out->pairs = n;
	memset(out->kid_faults, 0, sizeof(out->kid_faults));
	all = n * (size_t)rounds;
	for (int a = 0; a < ARMS; a++) {
		f[a] = alloc_doubles(all);
		x[a] = alloc_doubles(all);
		for (int k = 0; k < WCLOCKS; k++)
			pd[a][k] = alloc_doubles(n);
	}
	for (int k = 0; k < WCLOCKS; k++) {
		for (int i = 0; i < CMPS; i++)
			d[k][i] = alloc_doubles((size_t)rounds);
		for (int a = 0; a < ARMS; a++)
			side[k][a] = alloc_doubles((size_t)rounds);
	}
	for (int r = 0; r < rounds; r++) {
		struct worker w[ARMS];

		for (int a = 0; a < ARMS; a++)
			worker_start(&w[a], "small0", preload[a], r);
		for (int a = 0; a < ARMS; a++)
			worker_expect_ready(&w[a], "small0", a);
		for (int s = 0; s < TURNS; s++)
			for (int i = 0; i < ARMS; i++) {
				int a = turn_arm(ARMS, r, s, i);
				size_t at = (size_t)s * slice;
				double *to[CLOCKS] = {pd[a][WALL] + at,
				                      pd[a][CPU] + at};

				worker_inter(&w[a], slice, to, pd[a][SELF] + at,
				             f[a] + (size_t)r * n + at,
				             x[a] + (size_t)r * n + at,
				             out->kid_faults[a]);
			}
		for (int a = 0; a < ARMS; a++) {
			worker_finish(&w[a], "small0");
			for (int k = 0; k < WCLOCKS; k++)
				side[k][a][r] = median(pd[a][k], n);
		}
		for (int k = 0; k < WCLOCKS; k++)
			for (int i = 0; i < CMPS; i++)
				d[k][i][r] = side[k][CMP_ARMS[i][0]][r] -
				             side[k][CMP_ARMS[i][1]][r];
	}
	for (int k = 0; k < WCLOCKS; k++) {
		for (int i = 0; i < CMPS; i++) {
			stat_of(d[k][i], (size_t)rounds, &out->cmp[k][i]);
			free(d[k][i]);
		}
		for (int a = 0; a < ARMS; a++) {
			out->diff[k][a] = median(side[k][a], (size_t)rounds);
			free(side[k][a]);
		}
	}
	for (int a = 0; a < ARMS; a++) {
		out->kid_faults[a][0] /= (double)all;
		out->kid_faults[a][1] /= (double)all;
		out->fork_us[a] = median(f[a], all) / 1e3;
		out->raw_us[a] = median(x[a], all) / 1e3;
		free(f[a]);
		free(x[a]);
		for (int k = 0; k < WCLOCKS; k++)
			free(pd[a][k]);
	}
}

/* Start-up: posix_spawn of /bin/true and its waitpid, n times per arm and
 * round, one spawn of each arm in turn (the orders of ORDERS), the driver
 * pinned to the round's CPU; the round's figure for a comparison is the
 * ratio of the arms' median times, per clock. */
struct startup_cost {
	struct spread cmp[CLOCKS][CMPS];
	double us[CLOCKS][ARMS]; /* median over rounds of each arm's median */
};

static void spawn_true(char **env, double d[CLOCKS])
{
	char *argv[] = {"/bin/true", NULL};
	struct stamp a, b;
	int status;
	pid_t pid;

	stamp_now(&a);
	if (posix_spawn(&pid, argv[0], NULL, NULL, argv, env) != 0)
		die("posix_spawn /bin/true: %s", strerror(errno));
	if (waitpid(pid, &status, 0) != pid || status != 0)
		die("/bin/true failed");
	stamp_now(&b);
	for (int c = 0; c < CLOCKS; c++)
		d[c] = b.t[c] - a.t[c];
}

static void measure_startup(struct startup_cost *out, int rounds,
                            unsigned long n)
{
	char **env[ARMS];
	double *ratio[CLOCKS][CMPS], *side[CLOCKS][ARMS], *t[CLOCKS][ARMS];
	double d[CLOCKS];

	for (int a = 0; a < ARMS; a++)
		env[a] = worker_env(preload[a]);
	for (int k = 0; k < CLOCKS; k++) {
		for (int a = 0; a < ARMS; a++) {
			side[k][a] = alloc_doubles((size_t)rounds);
			t[k][a] = alloc_doubles(n);
		}
		for (int i = 0; i < CMPS; i++)
			ratio[k][i] = alloc_doubles((size_t)rounds);
	}
	for (int i = 0; i < 6; i++) /* the page cache, the loader's */
		spawn_true(env[i % ARMS], d);
	for (int r = 0; r < rounds; r++) {
		pin_round(r);
		for (unsigned long i = 0; i < n; i++) {
			const int *order = ORDERS[(r * n + i) % 6];

			for (int j = 0; j < ARMS; j++) {
				spawn_true(env[order[j]], d);
				for (int k = 0; k < CLOCKS; k++)
					t[k][order[j]][i] = d[k];
			}
		}
		for (int k = 0; k < CLOCKS; k++) {
			for (int a = 0; a < ARMS; a++)
				side[k][a][r] = median(t[k][a], n);
			for (int i = 0; i < CMPS; i++)
				ratio[k][i][r] = side[k][CMP_ARMS[i][0]][r] /
				                 side[k][CMP_ARMS[i][1]][r];
		}
	}
	unpin();
	for (int k = 0; k < CLOCKS; k++) {
		for (int i = 0; i < CMPS; i++) {
			stat_of(ratio[k][i], (size_t)rounds, &out->cmp[k][i]);
			free(ratio[k][i]);
		}
		for (int a = 0; a < ARMS; a++) {
			out->us[k][a] =
			    median(side[k][a], (size_t)rounds) / 1e3;
			free(side[k][a]);
			free(t[k][a]);
		}
	}
	for (int a = 0; a < ARMS; a++)
		worker_env_free(env[a]);
}

struct results {
	char version[64];
	double deref, find_1, find_n, freeze_thaw_empty, freeze_thaw_full;
	double freeze_thaw_size[NSIZES];
	double find_1_wrong, find_n_wrong; /* fractions of lookups */
	double bulk_freeze, bulk_thaw;
	long rss_before, rss_after, vmrss_delta;
};

static void measure_inproc(struct results *res, const char *shim)
{
	struct worker w;
	char line[256], key[64], value[64];
	struct {
		const char *key;
		double *d;
		long *l;
	} fields[] = {
	    {"deref", &res->deref, NULL},
	    {"find_1", &res->find_1, NULL},
	    {"find_n", &res->find_n, NULL},
	    {"find_1_wrong", &res->find_1_wrong, NULL},
	    {"find_n_wrong", &res->find_n_wrong, NULL},
	    {"freeze_thaw_empty", &res->freeze_thaw_empty, NULL},
	    {"freeze_thaw_full", &res->freeze_thaw_full, NULL},
	    {"bulk_freeze", &res->bulk_freeze, NULL},
	    {"bulk_thaw", &res->bulk_thaw, NULL},
	    {"rss_outside_before_kib", NULL, &res->rss_before},
	    {"rss_outside_after_kib", NULL, &res->rss_after},
	    {"vmrss_delta_kib", NULL, &res->vmrss_delta},
	};

	worker_start(&w, "inproc", shim, -1);
	while (fgets(line, sizeof(line), w.from)) {
		size_t size_i;

		if (sscanf(line, "%63s %63s", key, value) != 2)
			continue;
		if (sscanf(key, "freeze_thaw_size_%zu", &size_i) == 1 &&
		    size_i < NSIZES)
			res->freeze_thaw_size[size_i] = strtod(value, NULL);
		if (strcmp(key, "version") == 0)
			snprintf(res->version, sizeof(res->version), "%s",
			         value);
		for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
			if (strcmp(key, fields[i].key) == 0) {
				if (fields[i].d)
					*fields[i].d = strtod(value, NULL);
				else
					*fields[i].l = strtol(value, NULL, 10);
			}
	}
	worker_finish(&w, "inproc");
}

static void print_target(const char *label, double value, double limit,
                         int wrong)
{
	printf("  %-46s %8.3f  %s\n", label, value,
	       wrong            ? "WRONG ANSWERS"
	       : value <= limit ? "ok"
	                        : "MISSED");
}

/* A target read on each clock against no preload and against an empty
 * preload; scale divides the figures (1e3: ns printed as us). */
static void print_cmp_target(const char *label, const char *fmt,
                             const struct spread cmp[CLOCKS][CMPS],
                             double scale, double limit, const char **names)
{
	printf("  %s\n", label);
	for (int k = 0; k < CLOCKS; k++) {
		printf("    %-4s", CLOCK_NAME[k]);
		for (int i = SHIM_NONE; i <= SHIM_EMPTY; i++) {
			struct spread s = cmp[k][i];

			s.med /= scale, s.ci_lo /= scale, s.ci_hi /= scale;
			printf(" %s ", names[i]);
			print_stat(fmt, &s);
			printf(" %s%s", verdict(&s, limit, 1),
			       i == SHIM_NONE ? ";" : "\n");
		}
	}
}

/* One clock's comparisons, after its label: " shim/none 1.012 [0.990 to
 * 1.031] (range 0.95-1.08); ..." */
static void print_cmp_row(const char *fmt, const struct spread row[CMPS],
                          double scale, const char **names, int ncmp)
{
	for (int i = 0; i < ncmp; i++) {
		struct spread s = row[i];

		s.med /= scale, s.ci_lo /= scale, s.ci_hi /= scale;
		s.lo /= scale, s.hi /= scale;
		printf(" %s ", names[i]);
		print_stat(fmt, &s);
		printf(" (range ");
		printf(fmt, s.lo);
		printf(" to ");
		printf(fmt, s.hi);
		printf(")%s", i + 1 < ncmp ? ";" : "\n");
	}
}

/* A comparison's rows, one per clock: "<clock> shim/none 1.012 [0.990 to
 * 1.031] (range 0.95-1.08) ..." */
static void print_cmps(const char *indent, const char *fmt,
                       const struct spread cmp[CLOCKS][CMPS], double scale,
                       const char **names, int ncmp)
{
	for (int k = 0; k < CLOCKS; k++) {
		printf("%s%-4s", indent, CLOCK_NAME[k]);
		print_cmp_row(fmt, cmp[k], scale, names, ncmp);
	}
}

static void usage(FILE *to)
{
	fprintf(to,
	        "usage: bench_core [--shim PATH] [--empty PATH] [--rounds N] "
	        "[--small-rounds N]\n"
	        "                  [--small-iters N] [--pairs N] "
	        "[--big-iters N] [--only small]\n"
	        "                  [--pin on|off]\n"
	        "  --shim PATH        the libforkshim the \"with\" runs "
	        "preload; default\n"
	        "                     $FORKSHIM_BENCH_SHIM, else %s\n"
	        "  --empty PATH       the empty library the \"empty "
	        "preload\" runs preload;\n"
	        "                     default %s; may be another build "
	        "of the shim\n"
	        "                     (shim/empty then compares the two "
	        "builds)\n"
	        "  --rounds N         1 GiB fork rounds, each a fresh pair of "
	        "processes (3)\n"
	        "  --small-rounds N   small-process rounds (a fresh process "
	        "of each kind), also\n"
	        "                     of the wrapper's cost and of start-up "
	        "(240, at most 1000)\n"
	        "  --small-iters N    forks per process and round, small "
	        "process (24)\n"
	        "  --pairs N          fork()/_Fork() pairs per process and "
	        "round (144)\n"
	        "  --big-iters N      forks per round, 1 GiB processes (32)\n"
	        "  --only small       only the small-process, wrapper and "
	        "start-up figures\n"
	        "  --pin on|off       pin each measuring process (and so its "
	        "children) to one\n"
	        "                     CPU, the same for every kind in a round "
	        "(on)\n"
	        "Every fork and start-up figure is given in wall time "
	        "(latency) and in CPU\n"
	        "time of the process and its reaped children (cost, steadier "
	        "on a loaded machine).\n",
	        FORKSHIM_BENCH_LIB, FORKSHIM_BENCH_EMPTY);
}

static long positive_arg(const char *opt, const char *value)
{
	char *end;
	long n = strtol(value, &end, 10);

	if (*end != '\0' || n <= 0) {
		fprintf(stderr, "bench_core: %s needs a positive number\n",
		        opt);
		exit(2);
	}
	return n;
}

/* The in-process figures and the table's memory (worker "inproc"). */
static void report_inproc(struct results *rp, const char *shim, int *wrong)
{
	struct results res = *rp;
	long table_kib;

	measure_inproc(&res, shim);
	printf("  version     %s\n\n", res.version);
	printf("in-process, with the shim (best of %d rounds of >= 0.3 s)"
	       "      ns/op\n",
	       TIMED_ROUNDS);
	printf("  deref, %d handles in turn                            %8.2f\n",
	       DEREF_HANDLES, res.deref);
	printf("  find, 1 live region (1 GiB), random addresses       %8.2f\n",
	       res.find_1);
	printf("  find, 1,048,576 live 1 KiB regions, random          %8.2f\n",
	       res.find_n);
	if (res.find_1_wrong > 0 || res.find_n_wrong > 0) {
		printf(
		    "  !! WRONG: find returned nothing for %.1f%% (1 region) "
		    "and %.1f%% (1,048,576)\n     of addresses inside "
		    "frozen regions\n",
		    res.find_1_wrong * 100, res.find_n_wrong * 100);
		*wrong = 1;
	}
	printf("  freeze+thaw pair, empty table                       %8.1f\n",
	       res.freeze_thaw_empty);
	for (size_t i = 0; i < NSIZES; i++) {
		char what[64];
		size_t kib = FREEZE_SIZES[i] / 1024;

		if (kib % 1024 == 0)
			snprintf(what, sizeof(what), "%zu MiB", kib / 1024);
		else
			snprintf(what, sizeof(what), "%zu KiB", kib);
		printf("  freeze+thaw pair, one %-8s region (%6zu pages)  "
		       "%10.1f\n",
		       what, FREEZE_SIZES[i] / 4096, res.freeze_thaw_size[i]);
	}
	printf("  freeze+thaw pair, 1,048,575 live regions            %8.1f\n",
	       res.freeze_thaw_full);
	printf("  freeze of 1,048,576 regions, one after another      %8.1f\n",
	       res.bulk_freeze);
	printf("  thaw of 1,048,575 regions, one after another        %8.1f\n",
	       res.bulk_thaw);

	table_kib = res.rss_after - res.rss_before;
	printf("\ntable memory, 1,048,576 live regions\n");
	printf("  bytes per live region                               %8.1f\n",
	       (double)table_kib * 1024 / (double)NREGIONS);
	printf("    resident outside the benchmark's own buffers (smaps Rss):"
	       "\n      %ld KiB before freezing, %ld KiB after "
	       "(VmRSS grew %ld KiB)\n",
	       res.rss_before, res.rss_after, res.vmrss_delta);
	fflush(stdout);

	*rp = res;
}

/* The load while the figures were taken: they move with it. */
static void print_load(const char *when)
{
	double l[3];

	if (getloadavg(l, 3) == 3)
		printf("  load %-10s %.2f %.2f %.2f (1, 5, 15 min)\n", when,
		       l[0], l[1], l[2]);
}

int main(int argc, char **argv)
{
	const char *shim = getenv("FORKSHIM_BENCH_SHIM");
	const char *empty = FORKSHIM_BENCH_EMPTY;
	int rounds = 3, small_rounds = 240, only_small = 0, pin = 1;
	unsigned long pairs = 144, startup_n = 8;
	struct wrapper_cost wrapper;
	struct startup_cost startup;
	size_t ncases;
	struct fork_case cases[] = {
	    {.label = "small process, no table",
	     .modes = {"small0", "small0", "small0"},
	     .narms = 3,
	     .iters = 24,
	     .target = TARGET_FORK_SMALL},
	    {.label = "small process, 1 frozen page",
	     .modes = {"small", "small", "small"},
	     .narms = 3,
	     .iters = 24,
	     .target = TARGET_FORK_SMALL},
	    {.label = "1 GiB resident, 1 region",
	     .modes = {"big", NULL, "big1"},
	     .narms = 2,
	     .iters = 32,
	     .target = TARGET_FORK_BIG},
	    {.label = "1 GiB, 1,048,576 regions",
	     .modes = {"big", NULL, "bigN"},
	     .narms = 2,
	     .iters = 32,
	     .target = TARGET_FORK_BIG},
	};
	struct results res;
	double t0 = now_ns();
	char label[96];
	int wrong = 0;

	memset(&res, 0, sizeof(res));

	if (argc == 3 && strcmp(argv[1], "--worker") == 0) {
		setvbuf(stdout, NULL, _IOFBF, 1 << 16);
		if (strcmp(argv[2], "inproc") == 0)
			return worker_inproc();
		return worker_fork(argv[2]);
	}
	for (int i = 1; i < argc; i++) {
		const char *opt = argv[i];
		const char *value = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) {
			usage(stdout);
			return 0;
		}
		if (value == NULL) {
			usage(stderr);
			return 2;
		}
		i++;
		if (strcmp(opt, "--shim") == 0)
			shim = value;
		else if (strcmp(opt, "--empty") == 0)
			empty = value, empty_any = 1;
		else if (strcmp(opt, "--rounds") == 0)
			rounds = (int)positive_arg(opt, value);
		else if (strcmp(opt, "--small-rounds") == 0) {
			small_rounds = (int)positive_arg(opt, value);
			if (small_rounds > 1000) {
				/* stats.h's binomial underflows beyond */
				fprintf(stderr, "bench_core: --small-rounds "
				                "is at most 1000\n");
				return 2;
			}
		} else if (strcmp(opt, "--small-iters") == 0)
			cases[0].iters = cases[1].iters =
			    positive_arg(opt, value);
		else if (strcmp(opt, "--pairs") == 0)
			pairs = positive_arg(opt, value);
		else if (strcmp(opt, "--big-iters") == 0)
			cases[2].iters = cases[3].iters =
			    positive_arg(opt, value);
		else if (strcmp(opt, "--pin") == 0 &&
		         (strcmp(value, "on") == 0 ||
		          strcmp(value, "off") == 0))
			pin = strcmp(value, "on") == 0;
		else if (strcmp(opt, "--only") == 0 &&
		         strcmp(value, "small") == 0)
			only_small = 1;
		else {
			usage(stderr);
			return 2;
		}
	}
	if (shim == NULL || *shim == '\0')
		shim = FORKSHIM_BENCH_LIB;
	if (access(shim, R_OK) != 0)
		die("shim %s: %s", *shim ? shim : "(none)", strerror(errno));
	if (access(empty, R_OK) != 0)
		die("empty library %s: %s", *empty ? empty : "(none)",
		    strerror(errno));
	preload[EMPTY] = empty;
	preload[SHIM] = shim;
	pin_init(pin);

	printf("forkshim core benchmark\n");
	printf("  arms        none: no LD_PRELOAD (the baseline of every "
	       "target)\n"
	       "              empty: LD_PRELOAD of a library with nothing in "
	       "it, linked\n"
	       "              with the shim's options (bench.cmake): what any "
	       "preload costs\n"
	       "              shim: LD_PRELOAD of libforkshim\n");
	printf("  shim        %s\n", shim);
	printf("  empty       %s\n", empty);
	printf("  machine     %ld CPUs online, %ld MiB RAM\n",
	       sysconf(_SC_NPROCESSORS_ONLN),
	       (long)(sysconf(_SC_PHYS_PAGES) / 1024 * sysconf(_SC_PAGESIZE) /
	              1024));
	printf("  pinning     %s\n",
	       ncpus ? "each round's processes on one CPU, the round's "
	               "CPU taking turns"
	             : "none");
	print_load("at start");
	fflush(stdout);

	ncases = only_small ? 2 : sizeof(cases) / sizeof(cases[0]);
	for (size_t i = 0; i < ncases; i++)
		cases[i].rounds = i < 2 ? small_rounds : rounds;
	if (!only_small)
		report_inproc(&res, shim, &wrong);
	for (size_t i = 0; i < ncases; i++)
		measure_fork_case(&cases[i]);
	measure_wrapper(&wrapper, small_rounds, pairs);
	measure_startup(&startup, small_rounds, startup_n);
	print_load("at end");

	printf("\nfork+_exit+waitpid: each round a fresh process of each "
	       "kind, taking turns in\n%d slices; %d rounds small, %d for "
	       "1 GiB (1 GiB buffers have 4 KiB pages, all\nresident; "
	       "without the shim no region is frozen; the 1 GiB cases have "
	       "no empty-\npreload process); wall: latency, cpu: CPU time "
	       "of the process and its child\n",
	       TURNS, small_rounds, rounds);
	printf("  median us of all samples     samples   without     empty "
	       "     shim\n");
	for (size_t i = 0; i < ncases; i++) {
		struct fork_case *c = &cases[i];

		for (int k = 0; k < CLOCKS; k++)
			printf("  %-23s %-4s %9zu %9.1f %9.1f %9.1f\n",
			       c->label, CLOCK_NAME[k],
			       c->iters * (size_t)c->rounds,
			       c->median[k][NONE] / 1e3,
			       c->narms == 3 ? c->median[k][EMPTY] / 1e3 : 0,
			       c->median[k][SHIM] / 1e3);
	}
	printf("  minor faults per fork, parent + child:\n");
	for (size_t i = 0; i < ncases; i++) {
		struct fork_case *c = &cases[i];

		printf("  %-28s  ", c->label);
		for (int a = 0; a < ARMS; a++)
			if (a != EMPTY || c->narms == 3)
				printf("  %s %.1f + %.1f",
				       a == NONE    ? "without"
				       : a == EMPTY ? "empty"
				                    : "shim",
				       c->faults[a][0], c->faults[a][1]);
		printf("\n");
	}
	printf("  ratios: median of the rounds' ratios [~95%% interval of "
	       "the median; the\n  range below 6 rounds] (range of the "
	       "rounds' ratios)\n");
	for (size_t i = 0; i < ncases; i++) {
		printf("  %s\n", cases[i].label);
		print_cmps("    ", "%.3f", cases[i].cmp, 1, CMP_LABEL,
		           cases[i].narms == 3 ? CMPS : 1);
	}
	printf("\nthe wrapper's own cost: fork() minus _Fork(), %lu pairs per "
	       "round (which goes\nfirst alternates) in one small process of "
	       "each kind (never calling the shim),\n%d rounds; a round's "
	       "figure is the difference of two kinds' medians of the\n"
	       "pairs' differences; us\n"
	       "  median wall fork, _Fork: without %.1f, %.1f; empty %.1f, "
	       "%.1f; shim %.1f, %.1f\n",
	       wrapper.pairs, small_rounds, wrapper.fork_us[NONE],
	       wrapper.raw_us[NONE], wrapper.fork_us[EMPTY],
	       wrapper.raw_us[EMPTY], wrapper.fork_us[SHIM],
	       wrapper.raw_us[SHIM]);
	for (int k = 0; k < CLOCKS; k++)
		printf(
		    "  fork - _Fork, %-4s: without %.1f, empty preload %.1f, "
		    "shim %.1f (medians)\n",
		    CLOCK_NAME[k], wrapper.diff[k][NONE] / 1e3,
		    wrapper.diff[k][EMPTY] / 1e3, wrapper.diff[k][SHIM] / 1e3);
	print_cmps("  ", "%+.1f", wrapper.cmp, 1e3, DIFF_LABEL, CMPS);
	printf("  of which the parent's own cpu (the wrapper's and the "
	       "handlers' code; the rest\n  is the children's): fork - "
	       "_Fork without %.1f, empty preload %.1f, shim %.1f\n  self",
	       wrapper.diff[SELF][NONE] / 1e3, wrapper.diff[SELF][EMPTY] / 1e3,
	       wrapper.diff[SELF][SHIM] / 1e3);
	print_cmp_row("%+.2f", wrapper.cmp[SELF], 1e3, DIFF_LABEL, CMPS);
	printf("  child minor faults per fork() and per _Fork() child, "
	       "fork() - _Fork():\n   ");
	for (int a = 0; a < ARMS; a++)
		printf(" %s %.2f, %.2f, %+.3f%s",
		       a == NONE    ? "without"
		       : a == EMPTY ? "empty"
		                    : "shim",
		       wrapper.kid_faults[a][0], wrapper.kid_faults[a][1],
		       wrapper.kid_faults[a][0] - wrapper.kid_faults[a][1],
		       a + 1 < ARMS ? ";" : "\n");
	printf("\nstart-up: posix_spawn + waitpid of /bin/true, one of "
	       "each kind in turn, %lu per\nround, %d rounds\n",
	       startup_n, small_rounds);
	for (int k = 0; k < CLOCKS; k++)
		printf("  medians %-4s: without %.0f us, empty preload %.0f "
		       "us, shim %.0f us\n",
		       CLOCK_NAME[k], startup.us[k][NONE], startup.us[k][EMPTY],
		       startup.us[k][SHIM]);
	print_cmps("  ", "%.3f", startup.cmp, 1, CMP_LABEL, CMPS);

	printf("\ntargets (ok: the whole interval meets it; MISSED: none of "
	       "it; unresolved: the\nnoise is wider than the distance to "
	       "the target)\n");
	if (!only_small) {
		snprintf(label, sizeof(label), "deref <= %.0f ns/op",
		         TARGET_DEREF_NS);
		print_target(label, res.deref, TARGET_DEREF_NS, 0);
		snprintf(label, sizeof(label),
		         "find <= %.0f ns/op at 1,048,576 regions",
		         TARGET_FIND_NS);
		print_target(label, res.find_n, TARGET_FIND_NS,
		             res.find_n_wrong > 0);
	}
	for (size_t i = 0; i < ncases; i++) {
		snprintf(label, sizeof(label), "fork ratio <= %.2f, %s",
		         cases[i].target, cases[i].label);
		if (i < 2) {
			print_cmp_target(label, "%.3f", cases[i].cmp, 1,
			                 cases[i].target, CMP_LABEL);
			continue;
		}
		/* 1 GiB: the ratio of all samples' medians, as before. */
		print_target(label,
		             cases[i].median[WALL][SHIM] /
		                 cases[i].median[WALL][NONE],
		             cases[i].target, 0);
	}
	snprintf(label, sizeof(label), "wrapper cost <= %.0f us per fork",
	         TARGET_WRAPPER_US);
	print_cmp_target(label, "%+.1f", wrapper.cmp, 1e3, TARGET_WRAPPER_US,
	                 DIFF_LABEL);
	snprintf(label, sizeof(label), "start-up ratio <= %.2f (/bin/true)",
	         TARGET_STARTUP);
	print_cmp_target(label, "%.3f", startup.cmp, 1, TARGET_STARTUP,
	                 CMP_LABEL);
	printf("\n(%.0f s)\n", (now_ns() - t0) / 1e9);
	fflush(stdout);
	if (wrong)
		fprintf(stderr, "bench_core: the shim gave wrong answers, "
		                "see above\n");
	return wrong;
}
