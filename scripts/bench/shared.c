/* bench_shared: shared frozen regions (SHARED.md) against their baselines,
 * every ratio measured in this run, A and B alternating, with the spread
 * (lowest and highest per-round ratio).  Run it through scripts/bench/shared
 * (the shim preloaded; the workers it execs inherit it).
 *
 *   fork        fork of a process holding 1, 2, 4 GiB frozen shared
 *               (forkshim_alloc), against the same program with the shim
 *               loaded and no shared region (the target's baseline),
 *               with one page frozen private or shared, and without the
 *               shim; and of one holding 1 GiB private frozen, for
 *               comparison.  A fresh process per arm and round forks on
 *               command, arms in turn: median ratio over rounds with a
 *               ~95% interval and a verdict (see bench_fork)
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
 *   bench_shared [--rounds R] [--only NAME] [--forks N] [--fork-rounds R]
 *                [--fork-gib G] [--pin-cpu C]
 * --rounds: the other rows' rounds (5); --forks: forks per arm and round
 * of the fork rows (200); --fork-rounds: their rounds (9: the fewest
 * with a ~95% interval narrower than the range); --fork-gib: only the
 * fork row of G (1, 2 or 4) GiB shared; --pin-cpu: this process
 * and every process it starts run on CPU C only (no migrations in the
 * fork rows).
 * Worker modes (exec'd by the benchmark itself): reader HEX, sink,
 * forker MODE. */
#include <alloca.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
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
#include "stats.h"

#define MIB (1ul << 20)
#define GIB (1ul << 30)

static const struct forkshim_api *api;
static char self_exe[4096];
static int rounds = 5;

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
	double ma, mb, sa[256], sb[256];

	memcpy(sa, a, sizeof(double) * (size_t)n);
	memcpy(sb, b, sizeof(double) * (size_t)n);
	ma = median(sa, (size_t)n);
	mb = median(sb, (size_t)n);
	printf("%-44s A %9.3f %s  B %9.3f %s  A/B %7.3f  [%.3f .. %.3f]  %s\n",
	       what, ma / scale, unit, mb / scale, unit, ma / mb, lo, hi,
	       target);
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

/* ---- fork ----
 * Five processes (this program re-executed as "forker MODE") fork on
 * command, in slices of FORK_SLICE forks, taking turns in a rotating
 * order, so that the machine's drift falls on every arm alike:
 *   held  the shim loaded, holding N GiB frozen shared (forkshim_alloc,
 *         populated, frozen, read once here as a user would), then for
 *         comparison 1 GiB private frozen;
 *   shim  the shim loaded (its function table fetched) and no region at
 *         all: "the same process without it", the target's baseline;
 *   ppage the shim loaded holding one page frozen private: the table
 *         with one region, no shared state;
 *   page  the shim loaded holding one page frozen shared: the shim's
 *         shared state (table, directory, registries) without the size;
 *   none  no shim preloaded;
 *   memfd no shim preloaded, holding a plain memfd of the held arm's
 *         size, filled, mapped shared read-only and read once a word a
 *         page: what the kernel alone charges a fork for holding as much
 *         shared memory (the floor under the held arm).
 * Each fork is timed three ways: the parent thread's CPU time in fork()
 * (CLOCK_THREAD_CPUTIME_ID: where the kernel copies the address space,
 * and little moved by other processes), the wall time of fork() in the
 * parent, and the wall time of fork + _exit + waitpid.  A round starts
 * a fresh process of each arm and times fork_iters forks of each; its
 * figure is the ratio of the arms' medians in it; over the rounds,
 * stats.h's median and ~95% interval.  Fresh processes each round: two
 * identical processes here fork up to 7% apart for the whole of their
 * lives (where their memory landed), which long-lived arms would turn
 * into a steady bias no interval shows. */

enum farm { F_HELD, F_SHIM, F_PRIV, F_PAGE, F_NONE, F_MEMFD, FARMS };
static const char *const FARM_MODE[FARMS] = {"held", "shim", "ppage",
                                             "page", "none", "memfd"};
static const char *const FARM_LABEL[FARMS] = {
    "held",
    "shim loaded, no shared region",
    "shim + 1 page frozen private",
    "shim + 1 page frozen shared",
    "no shim",
    "no shim, plain memfd as big, read"};

/* The arms run without the shim. */
static int farm_plain(enum farm a)
{
	return a == F_NONE || a == F_MEMFD;
}
enum fclock { FC_CPU, FC_WALL, FC_CYCLE, FCLOCKS };
static const char *const FCLOCK_LABEL[FCLOCKS] = {
    "fork() CPU time in the parent", "fork() wall time in the parent",
    "fork + _exit + waitpid wall time"};

#define FORK_SLICE 10
#define FORK_WARMUP 3
#define FORK_RUN_MAX 1024              /* forks a forker times per command */
static unsigned long fork_iters = 200; /* --forks: per arm and round */
static int fork_rounds = 9;            /* --fork-rounds */
static unsigned long fork_gib;         /* --fork-gib: 0, every size */
static int pin_cpu = -1;               /* --pin-cpu: -1, not pinned */

/* Checksums stored here are used: the reads are not elided. */
static volatile uint64_t sink_sum;

static double cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* One fork: out[FC_*] in ns. */
static void fork_sample(double out[FCLOCKS])
{
	double c0 = cpu_ns(), w0 = now_ns(), c1, w1;
	pid_t pid = fork();
	int st;

	if (pid == 0)
		_exit(0);
	c1 = cpu_ns();
	w1 = now_ns();
	if (pid < 0)
		die("fork");
	if (waitpid(pid, &st, 0) != pid || st != 0)
		die("waitpid");
	out[FC_CYCLE] = now_ns() - w0;
	out[FC_WALL] = w1 - w0;
	out[FC_CPU] = c1 - c0;
}

static long vmpte_kib(void)
{
	char line[128];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "r");

	while (f != NULL && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmPTE: %ld", &kib) == 1)
			break;
	if (f != NULL)
		fclose(f);
	return kib;
}

/* The timed forks of one "run n": warm-up forks first (once), then n
 * samples into v; faults per fork (parent, child) into faults.  After a
 * fork the parent's first write to each of its private pages faults
 * (copy-on-write), so every arm must write the same number of pages: the
 * stack pages of these frames would depend on where the stack started
 * (argv and environment sizes differ between arms), so forker_timed
 * moves it to the same offset in a page first. */
static __attribute__((noinline)) void forker_forks(unsigned long n, int *warm,
                                                   double *v, double faults[2])
{
	struct rusage s0, s1, k0, k1;

	for (double w[FCLOCKS]; *warm < FORK_WARMUP; (*warm)++)
		fork_sample(w);
	getrusage(RUSAGE_SELF, &s0);
	getrusage(RUSAGE_CHILDREN, &k0);
	for (unsigned long i = 0; i < n; i++)
		fork_sample(v + i * FCLOCKS);
	getrusage(RUSAGE_SELF, &s1);
	getrusage(RUSAGE_CHILDREN, &k1);
	faults[0] = (double)(s1.ru_minflt - s0.ru_minflt) / (double)n;
	faults[1] = (double)(k1.ru_minflt - k0.ru_minflt) / (double)n;
}

static void forker_timed(unsigned long n, int *warm, double *v,
                         double faults[2])
{
	uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
	char *pad = alloca((sp & 4095) + 1024);

	__asm__ volatile("" : : "r"(pad) : "memory");
	forker_forks(n, warm, v, faults);
}

/* "forker MODE": sets itself up and says "ready with|without VmPTE";
 * then answers "hold shared|private GIB" (drops what it held, holds
 * that; "held VmPTE") and "run N" (N lines "cpu wall cycle" in ns, then
 * "faults P C": minor faults per fork in the parent and the child). */
static int worker_forker(const char *mode)
{
	/* Page-aligned and static: the pages the samples go to (written
	 * after each fork: a fault each) lie alike in every arm. */
	static double v[FORK_RUN_MAX * FCLOCKS] __attribute__((aligned(4096)));
	char line[64], kind[16];
	double faults[2];
	forkshim_handle held = 0;
	char *priv = NULL;
	unsigned long n, gib;
	int warm = 0;

	if (strcmp(mode, "none") == 0 || strcmp(mode, "memfd") == 0) {
		if (api != NULL)
			die("forker none/memfd: the shim is loaded");
	} else if (api == NULL) {
		die("forker: the shim is not loaded");
	} else if (strcmp(mode, "page") == 0) {
		char *one = api->alloc(4096, "one page");

		if (one == NULL)
			die("forkshim_alloc");
		one[0] = 1;
		if (api->freeze(one, 4096, "one page", FORKSHIM_SHARED) == 0)
			die("freeze shared");
		sink_sum = checksum(one, 4096);
	} else if (strcmp(mode, "ppage") == 0) {
		static char one[4096] __attribute__((aligned(4096)));

		one[0] = 1;
		if (api->freeze(one, 4096, "one page", 0) == 0)
			die("freeze");
	} else if (strcmp(mode, "shim") != 0 && strcmp(mode, "held") != 0) {
		die("forker: unknown mode");
	}
	printf("ready %s %ld\n", api ? "with" : "without", vmpte_kib());
	while (fgets(line, sizeof(line), stdin)) {
		if (sscanf(line, "hold %15s %lu", kind, &gib) == 2 &&
		    strcmp(kind, "memfd") == 0 && api == NULL && priv == NULL) {
			size_t len = gib * GIB;
			int fd = memfd_create("plain", MFD_CLOEXEC);
			char *p;

			if (fd < 0 || ftruncate(fd, (off_t)len) != 0)
				die("memfd");
			p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED,
			         fd, 0);
			if (p == MAP_FAILED)
				die("mmap memfd");
			populate(p, len);
			munmap(p, len);
			p = priv =
			    mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
			close(fd);
			if (p == MAP_FAILED)
				die("mmap memfd read-only");
			for (size_t o = 0; o < len; o += 4096)
				sink_sum += *(volatile uint64_t *)(p + o);
			printf("held %ld\n", vmpte_kib());
			continue;
		}
		if (sscanf(line, "hold %15s %lu", kind, &gib) == 2 &&
		    api != NULL) {
			size_t len = gib * GIB;
			char *p;

			if (held != 0 && api->thaw(held) != 0)
				die("thaw");
			if (priv != NULL)
				munmap(priv, GIB * 4);
			held = 0;
			priv = NULL;
			if (strcmp(kind, "shared") == 0) {
				p = api->alloc(len, "bench");
				if (p == NULL)
					die("forkshim_alloc");
				populate(p, len);
				held = api->freeze(p, len, "bench",
				                   FORKSHIM_SHARED);
			} else {
				p = priv =
				    mmap(NULL, GIB * 4, PROT_READ | PROT_WRITE,
				         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
				if (p == MAP_FAILED || gib > 4)
					die("mmap");
				madvise(p, len, MADV_NOHUGEPAGE);
				populate(p, len);
				held = api->freeze(p, len, "private", 0);
			}
			if (held == 0)
				die("freeze");
			/* Read here, as a user would: its page tables exist
			 * (a word a page: the faults, not the sum). */
			for (size_t o = 0; o < len; o += 4096)
				sink_sum += *(volatile uint64_t *)(p + o);
			printf("held %ld\n", vmpte_kib());
			continue;
		}
		if (sscanf(line, "run %lu", &n) != 1 || n == 0 ||
		    n > FORK_RUN_MAX)
			break;
		forker_timed(n, &warm, v, faults);
		for (unsigned long i = 0; i < n; i++)
			printf("%.0f %.0f %.0f\n", v[i * FCLOCKS],
			       v[i * FCLOCKS + 1], v[i * FCLOCKS + 2]);
		printf("faults %.3f %.3f\n", faults[0], faults[1]);
		fflush(stdout);
	}
	return 0;
}

struct forker {
	pid_t pid;
	FILE *to, *from;
	long pte_kib;
};

extern char **environ;

/* Starts "forker MODE"; without the shim (none), with environ minus
 * LD_PRELOAD and FORKSHIM_* variables. */
static void forker_start(struct forker *w, enum farm a)
{
	char *argv[] = {self_exe, "forker", (char *)FARM_MODE[a], NULL};
	char line[64], with[16];
	size_t n = 0, k = 0;
	char **env;
	int to[2], from[2];

	while (environ[n])
		n++;
	env = calloc(n + 1, sizeof(*env));
	if (env == NULL)
		die("calloc");
	for (size_t i = 0; i < n; i++)
		if (!farm_plain(a) || (strncmp(environ[i], "LD_PRELOAD=", 11) &&
		                       strncmp(environ[i], "FORKSHIM_", 9)))
			env[k++] = environ[i];
	if (pipe2(to, O_CLOEXEC) || pipe2(from, O_CLOEXEC))
		die("pipe");
	w->pid = fork();
	if (w->pid < 0)
		die("fork");
	if (w->pid == 0) {
		dup2(to[0], 0);
		dup2(from[1], 1);
		execve(self_exe, argv, env);
		_exit(127);
	}
	free(env);
	close(to[0]);
	close(from[1]);
	w->to = fdopen(to[1], "w");
	w->from = fdopen(from[0], "r");
	if (w->to == NULL || w->from == NULL ||
	    fgets(line, sizeof(line), w->from) == NULL ||
	    sscanf(line, "ready %15s %ld", with, &w->pte_kib) != 2 ||
	    strcmp(with, farm_plain(a) ? "without" : "with") != 0) {
		fprintf(stderr, "bench_shared: forker %s did not start %s\n",
		        FARM_MODE[a],
		        farm_plain(a) ? "without the shim" : "with the shim");
		exit(1);
	}
}

static void forker_stop(struct forker *w)
{
	int st;

	fclose(w->to);
	fclose(w->from);
	if (waitpid(w->pid, &st, 0) != w->pid || st != 0) {
		fprintf(stderr, "bench_shared: a forker failed (%#x)\n", st);
		exit(1);
	}
}

static void forker_hold(struct forker *w, const char *kind, unsigned long gib)
{
	char line[64];

	fprintf(w->to, "hold %s %lu\n", kind, gib);
	fflush(w->to);
	if (fgets(line, sizeof(line), w->from) == NULL ||
	    sscanf(line, "held %ld", &w->pte_kib) != 1)
		die("forker hold");
}

/* n forks of w into v (FCLOCKS a fork); adds faults per fork. */
static void forker_run(struct forker *w, unsigned long n, double *v,
                       double faults[2])
{
	char line[128];
	double p, c;

	fprintf(w->to, "run %lu\n", n);
	fflush(w->to);
	for (unsigned long i = 0; i < n; i++)
		if (fgets(line, sizeof(line), w->from) == NULL ||
		    sscanf(line, "%lf %lf %lf", &v[i * FCLOCKS],
		           &v[i * FCLOCKS + 1], &v[i * FCLOCKS + 2]) != 3)
			die("forker run");
	if (fgets(line, sizeof(line), w->from) == NULL ||
	    sscanf(line, "faults %lf %lf", &p, &c) != 2)
		die("forker faults");
	faults[0] += p;
	faults[1] += c;
}

static void print_load(const char *when)
{
	char buf[128] = "?";
	FILE *f = fopen("/proc/loadavg", "r");

	if (f != NULL) {
		if (fgets(buf, sizeof(buf), f) == NULL)
			strcpy(buf, "?\n");
		fclose(f);
	}
	printf("load %s: %s", when, buf);
}

/* One row: the held arm holding gib GiB of kind, against the other
 * arms, and the kernel's own cost (memfd / none); prints the verdict against
 * limit (none when limit is 0). */
static void fork_row(const char *kind, unsigned long gib, unsigned long iters,
                     int nrounds, double limit)
{
	struct forker w[FARMS];
	unsigned long slices = iters / FORK_SLICE ? iters / FORK_SLICE : 1;
	unsigned long per = iters / slices; /* <= 2 * FORK_SLICE */
	double *v[FARMS], *col = calloc(per * slices, sizeof(double));
	double *ratio[FARMS][FCLOCKS], *arm[FARMS][FCLOCKS], *kern[FCLOCKS];
	double faults[FARMS][2] = {{0}};

	iters = per * slices;
	for (int c = 0; c < FCLOCKS; c++)
		if ((kern[c] = calloc((size_t)nrounds, sizeof(double))) == NULL)
			die("calloc");
	for (int a = 0; a < FARMS; a++) {
		v[a] = calloc(iters * FCLOCKS, sizeof(double));
		for (int c = 0; c < FCLOCKS; c++) {
			ratio[a][c] = calloc((size_t)nrounds, sizeof(double));
			arm[a][c] = calloc((size_t)nrounds, sizeof(double));
			if (ratio[a][c] == NULL || arm[a][c] == NULL)
				die("calloc");
		}
		if (v[a] == NULL || col == NULL)
			die("calloc");
	}
	for (int r = 0; r < nrounds; r++) {
		double m[FARMS][FCLOCKS];

		for (int a = 0; a < FARMS; a++)
			forker_start(&w[a], (enum farm)a);
		forker_hold(&w[F_HELD], kind, gib);
		forker_hold(&w[F_MEMFD], "memfd", gib);
		for (unsigned long s = 0; s < slices; s++)
			for (int i = 0; i < FARMS; i++) {
				int a =
				    (int)((unsigned long)(i + r) + s) % FARMS;

				forker_run(&w[a], per, v[a] + s * per * FCLOCKS,
				           faults[a]);
			}
		for (int a = 0; a < FARMS; a++)
			forker_stop(&w[a]);
		for (int a = 0; a < FARMS; a++)
			for (int c = 0; c < FCLOCKS; c++) {
				for (unsigned long i = 0; i < iters; i++)
					col[i] = v[a][i * FCLOCKS + c];
				m[a][c] = median(col, iters);
				arm[a][c][r] = m[a][c];
			}
		for (int a = 1; a < FARMS; a++)
			for (int c = 0; c < FCLOCKS; c++)
				ratio[a][c][r] = m[F_HELD][c] / m[a][c];
		for (int c = 0; c < FCLOCKS; c++)
			kern[c][r] = m[F_MEMFD][c] / m[F_NONE][c];
	}
	printf("fork, %lu GiB frozen %s: %lu forks per arm and round in "
	       "slices of %lu, arms in turn, %d rounds; page tables (VmPTE) "
	       "(last round) held %ld kB, shim %ld kB, ppage %ld kB, page %ld "
	       "kB, none %ld kB, memfd %ld kB\n",
	       gib, kind, iters, per, nrounds, w[F_HELD].pte_kib,
	       w[F_SHIM].pte_kib, w[F_PRIV].pte_kib, w[F_PAGE].pte_kib,
	       w[F_NONE].pte_kib, w[F_MEMFD].pte_kib);
	for (int c = 0; c < FCLOCKS; c++) {
		struct spread s;

		printf("  %s, ms (median over rounds):", FCLOCK_LABEL[c]);
		for (int a = 0; a < FARMS; a++) {
			stat_of(arm[a][c], (size_t)nrounds, &s);
			printf(" %s %.4f%s", FARM_MODE[a], s.med / 1e6,
			       a + 1 < FARMS ? "," : "\n");
		}
		for (int a = 1; a < FARMS; a++) {
			stat_of(ratio[a][c], (size_t)nrounds, &s);
			printf("    held / %-32s ", FARM_LABEL[a]);
			print_stat("%.3f", &s);
			if (limit > 0 && c != FC_CYCLE)
				printf("  %s (target <= %.2f%s)",
				       verdict(&s, limit, 1), limit,
				       a == F_SHIM ? ", the target's baseline"
				                   : ", for comparison");
			printf("\n");
		}
		stat_of(kern[c], (size_t)nrounds, &s);
		printf("    memfd / no shim (the kernel's own cost)  ");
		print_stat("%.3f", &s);
		printf("\n");
	}
	printf("  minor faults per fork, parent/child:");
	for (int a = 0; a < FARMS; a++)
		printf(" %s %.1f/%.1f%s", FARM_MODE[a],
		       faults[a][0] / (double)(nrounds * (int)slices),
		       faults[a][1] / (double)(nrounds * (int)slices),
		       a + 1 < FARMS ? "," : "\n");
	for (int a = 0; a < FARMS; a++) {
		for (int c = 0; c < FCLOCKS; c++) {
			free(ratio[a][c]);
			free(arm[a][c]);
		}
		free(v[a]);
	}
	for (int c = 0; c < FCLOCKS; c++)
		free(kern[c]);
	free(col);
}

static void bench_fork(void)
{
	print_load("before the fork rows");
	printf("fork rows: held / X is the median over rounds of the "
	       "per-round ratio of medians, [~95%% interval of that median "
	       "(order statistics)]; ok when the whole interval meets the "
	       "target, MISSED when none of it does, else unresolved\n");
	for (unsigned long gib = 1; gib <= 4; gib *= 2)
		if (fork_gib == 0 || gib == fork_gib)
			fork_row("shared", gib, fork_iters, fork_rounds, 1.10);
	/* For comparison: private frozen memory, fewer forks. */
	if (fork_gib == 0)
		fork_row("private", 1, 20, 5, 0);
	print_load("after the fork rows");
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
	       "  faults", median(fa, (size_t)rounds),
	       median(fb, (size_t)rounds), thp);
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
	n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
	if (n <= 0)
		die("readlink");
	self_exe[n] = '\0';
	if (argc >= 3 && strcmp(argv[1], "forker") == 0)
		return worker_forker(argv[2]); /* "none" runs without it */
	if (api == NULL || !forkshim_client_has_shared(api)) {
		fprintf(stderr, "bench_shared: the shim (with shared regions) "
		                "is not preloaded\n");
		return 1;
	}
	if (argc >= 3 && strcmp(argv[1], "reader") == 0)
		return worker_reader(argv[2]);
	if (argc >= 2 && strcmp(argv[1], "sink") == 0)
		return worker_sink();
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
			only = argv[++i];
		else if (strcmp(argv[i], "--forks") == 0 && i + 1 < argc)
			fork_iters = strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--fork-rounds") == 0 && i + 1 < argc)
			fork_rounds = atoi(argv[++i]);
		else if (strcmp(argv[i], "--fork-gib") == 0 && i + 1 < argc)
			fork_gib = strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--pin-cpu") == 0 && i + 1 < argc)
			pin_cpu = atoi(argv[++i]) < 0 ? -2 : atoi(argv[i]);
		else {
			fprintf(stderr,
			        "bench_shared: unknown argument %s\nusage: "
			        "bench_shared [--rounds R] [--only "
			        "fork|alloc|copy|read|handoff] [--forks N] "
			        "[--fork-rounds R] [--fork-gib 1|2|4] "
			        "[--pin-cpu C]\n",
			        argv[i]);
			return 2;
		}
	}
	if (rounds < 1 || rounds > 64)
		rounds = 5;
	if (fork_iters < 1 || fork_iters > 100000 || fork_rounds < 1 ||
	    fork_rounds > 1000 || pin_cpu < -1 || pin_cpu >= CPU_SETSIZE ||
	    (fork_gib != 0 && fork_gib != 1 && fork_gib != 2 &&
	     fork_gib != 4)) {
		fprintf(stderr,
		        "bench_shared: --forks 1..100000, "
		        "--fork-rounds 1..1000, --fork-gib 1|2|4, "
		        "--pin-cpu 0..%d\n",
		        CPU_SETSIZE - 1);
		return 2;
	}
	if (pin_cpu >= 0) {
		cpu_set_t set;

		/* Inherited by every process it starts: the arms' forkers and
		 * their children all run on that CPU. */
		CPU_ZERO(&set);
		CPU_SET(pin_cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set) != 0)
			die("--pin-cpu");
		printf("bench_shared: pinned to CPU %d, with every process it "
		       "starts\n",
		       pin_cpu);
	}
	printf("bench_shared: %d rounds, A and B alternating; A/B is the "
	       "ratio of medians, [lo .. hi] the per-round ratios\n",
	       rounds);
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
