/* stress_host: the shim under load, in one fresh process per run.
 *
 * Usage: stress_host MODE COUNT
 *   mix       two workers freeze and thaw, a reader derefs and finds, while
 *             the main thread forks COUNT children; each child checks the
 *             whole table it was born with
 *   shared    mix, plus two threads that freeze shared regions (copies of
 *             private memory with FORKSHIM_SHARED, and forkshim_alloc
 *             memory) and thaw them, exporting a token for each, and an
 *             importer thread that imports (also at the same address),
 *             derefs, releases and tries flipped tokens; each child checks
 *             the shared records it inherited, those frozen after its birth
 *             (plain deref: a late child; its own export too), and the
 *             result the previous child froze shared and left when it
 *             exited, then freezes a result of its own for its parent
 *   family    the same three levels deep: every child runs workers and a
 *             reader of its own and forks COUNT grandchildren
 *   signal1   single-threaded: COUNT freeze/thaw steps with a fork every
 *             16, while a 2 kHz timer's handler forks, freezes and derefs
 *   signalmt  the same in four threads, each with a timer of its own
 *   dying     COUNT children, each dying of SIGTERM while a thread of its
 *             own freezes new regions: under FORKSHIM_REPORT the report
 *             written on the way out reads the table that thread writes
 *             (each child must die of SIGTERM: a TSan report ends it
 *             otherwise)
 *
 * Links libforkshim.  The threads of a process start together, so the first
 * freeze (which maps the table) races the first fork: lock races show early
 * in a process's life, which is why the driver runs many short processes.
 *
 * What each answer must be (the table a child is born with is its parent's
 * at that instant; the fork holds the table lock, so no write is half done
 * there):
 *   a record's `live` handle is published after its freeze returned and
 *   cleared before its thaw begins: wherever it is nonzero it must deref to
 *   its buffer, with its length and bytes, and find must return it;
 *   `gone` is a handle whose thaw returned: ESTALE;
 *   a handle frozen by an ancestor after the birth (sent down a pipe):
 *   ENOENT; visible(h, child) 1 for a handle published before the fork, 0
 *   for one frozen after it;
 *   a handle made by a child or a sibling (foreign): never resolves, within
 *   the ABI's 2^-24 per handle: more than 2 + checks / 2^20 accepts fail.
 *   a shared record is pinned while it is checked (a worker changes only
 *   unpinned ones): live, its token imports and its handle derefs (also in
 *   a child born before it) to its length and bytes; thawed, both ESTALE;
 *   a token with one bit flipped never imports (EBADF).
 * A handler's freeze may fail with EDEADLK only when it interrupted a freeze,
 * thaw or fork of its own thread.
 *
 * Prints "stress MODE: processes P forks F checks C foreign N accepted A
 * failures X" and exits 0 when X is 0; failures are explained on stderr. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "forkshim.h"

#define LEVELS 3
#define WORKERS 2
#define BUFS 12 /* per worker */
#define NREC (WORKERS * BUFS)
#define STRIDE 8192
#define PROBES_MAX (NREC + 2)
#define FAIL_LINES 20
#define SIG_THREADS 4

struct rec {
	_Atomic uint64_t live;  /* frozen: published after its freeze */
	_Atomic uint64_t gone;  /* a handle whose thaw has returned */
	_Atomic uint64_t round; /* what the bytes and the length come from */
	_Atomic uint64_t epoch; /* forks_done when its freeze began */
};

/* One generation of the family: its buffers, then one probe buffer. */
struct level {
	unsigned char *mem;
	pid_t pid; /* the process that freezes these */
	struct rec rec[NREC];
};

struct totals {
	uint64_t processes, forks, checks, foreign, accepted, failures;
};

/* A probe sent down to a child: ENOENT exactly, or foreign. */
struct probe {
	uint64_t h;
	uint64_t foreign;
};

/* A shared region (shared mode), as its freezer published it. */
struct shinfo {
	uint64_t h;
	struct forkshim_token tok;
	uint64_t round;
	uint64_t epoch; /* forks_done when its freeze began */
	const unsigned char *addr;
	uint32_t len;
	uint32_t idx;   /* what the bytes come from, with round */
	uint32_t alloc; /* forkshim_alloc memory (else a copy of private) */
	uint32_t live;  /* frozen; 0 with h != 0: thawed */
};

struct report {
	struct totals t;
	uint64_t own; /* a handle the child froze, for its parent to try */
	struct shinfo result; /* shared mode: its result, left at exit */
};

static struct level lv[LEVELS];
static _Atomic uint64_t forks_done;
static atomic_int stop;
static struct {
	_Atomic uint64_t processes, forks, checks, foreign, accepted, failures;
} tot;
static atomic_int fail_lines;
static const char *mode = "?";
static int depth = 1;       /* levels of the family: 1 mix, 3 family */
static int sig_threads = 1; /* threads of the signal modes */

static void fail(const char *fmt, ...)
{
	char line[256];
	int n;
	va_list ap;

	atomic_fetch_add(&tot.failures, 1);
	if (atomic_fetch_add(&fail_lines, 1) >= FAIL_LINES)
		return;
	n = snprintf(line, sizeof(line), "stress %s [%d]: ", mode,
	             (int)getpid());
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	if (write(2, line, (size_t)n) < 0)
		return;
}

static void count_check(void)
{
	atomic_fetch_add_explicit(&tot.checks, 1, memory_order_relaxed);
}

static void put(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			_exit(98);
		p += w;
		n -= (size_t)w;
	}
}

static int get(int fd, void *buf, size_t n)
{
	char *p = buf;

	while (n > 0) {
		ssize_t r = read(fd, p, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static pid_t reap(pid_t pid, int *status)
{
	pid_t r;

	while ((r = waitpid(pid, status, 0)) < 0 && errno == EINTR)
		;
	return r;
}

/* ---- buffers and what they hold ---- */

static unsigned char *buf_of(int level, unsigned i)
{
	return lv[level].mem + (size_t)i * STRIDE;
}

static unsigned char *probe_buf(int level)
{
	return lv[level].mem + (size_t)NREC * STRIDE;
}

/* 1..STRIDE: a full-length region touches the next buffer's. */
static size_t len_of(unsigned i, uint64_t round)
{
	return 1 + (i * 977u + round * 131u) % STRIDE;
}

static unsigned char byte_of(int level, unsigned i, uint64_t round, size_t j)
{
	return (unsigned char)(level * 71 + i * 29 + round * 13 + j * 7 +
	                       (j >> 8));
}

static void fill(int level, unsigned i, uint64_t round)
{
	unsigned char *b = buf_of(level, i);
	size_t len = len_of(i, round);

	for (size_t j = 0; j < len; j++)
		b[j] = byte_of(level, i, round, j);
}

static int bytes_ok(int level, unsigned i, uint64_t round)
{
	const unsigned char *b = buf_of(level, i);
	size_t len = len_of(i, round);

	for (size_t j = 0; j < len; j++)
		if (b[j] != byte_of(level, i, round, j))
			return 0;
	return 1;
}

static void levels_map(void)
{
	for (int l = 0; l < LEVELS; l++) {
		lv[l].mem = mmap(NULL, (size_t)(NREC + 1) * STRIDE,
		                 PROT_READ | PROT_WRITE,
		                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (lv[l].mem == MAP_FAILED) {
			perror("stress_host: mmap");
			exit(2);
		}
	}
}

/* ---- one worker step: freeze a thawed buffer or thaw a frozen one ---- */

/* Set while this thread is inside a freeze, thaw or fork: a handler's
 * freeze may then answer EDEADLK. */
static __thread volatile sig_atomic_t in_write, in_fork;

static void expect_estale(uint64_t h, const char *what)
{
	size_t len;

	count_check();
	errno = 0;
	if (forkshim_deref(h, &len) != NULL || errno != ESTALE)
		fail("%s %#llx: deref errno %d, expected ESTALE", what,
		     (unsigned long long)h, errno);
}

/* An identical freeze counts once more; an overlapping one is EEXIST. */
static void refreeze_checks(int level, unsigned i, uint64_t h, size_t len)
{
	unsigned char *b = buf_of(level, i);
	struct forkshim_info info;
	uint64_t again;

	in_write = 1;
	again = forkshim_freeze(b, len, "again", 0);
	in_write = 0;
	count_check();
	if (again != h)
		fail("identical refreeze gave %#llx, not %#llx (errno %d)",
		     (unsigned long long)again, (unsigned long long)h, errno);
	if (forkshim_info(h, &info) != 0 || info.freezes != 2 ||
	    info.addr != b || info.len != len || info.owner != lv[level].pid)
		fail("info after a refreeze: errno %d freezes %u", errno,
		     info.freezes);
	if (len < STRIDE) {
		in_write = 1;
		again = forkshim_freeze(b, len + 1, NULL, 0);
		in_write = 0;
		if (again != 0 || errno != EEXIST)
			fail("overlapping freeze: %#llx errno %d",
			     (unsigned long long)again, errno);
	}
	in_write = 1;
	if (forkshim_thaw(h) != 0)
		fail("first of two thaws: errno %d", errno);
	in_write = 0;
	count_check();
	if (forkshim_deref(h, NULL) != b)
		fail("one freeze left, but deref: errno %d", errno);
}

static void worker_step(int level, unsigned i, uint64_t op)
{
	struct rec *r = &lv[level].rec[i];
	unsigned char *b = buf_of(level, i);
	uint64_t h = atomic_load(&r->live), round;
	size_t len, got;
	int rc;

	if (h != 0) {
		atomic_store(&r->live, 0);
		in_write = 1;
		rc = forkshim_thaw(h);
		in_write = 0;
		count_check();
		if (rc != 0)
			fail("thaw of frozen %#llx: errno %d",
			     (unsigned long long)h, errno);
		expect_estale(h, "just thawed");
		atomic_store(&r->gone, h);
		return;
	}
	round = atomic_load(&r->round) + 1;
	len = len_of(i, round);
	fill(level, i, round);
	atomic_store(&r->round, round);
	atomic_store(&r->epoch, atomic_load(&forks_done));
	in_write = 1;
	h = forkshim_freeze(b, len, "stress", 0);
	in_write = 0;
	count_check();
	if (h == 0) {
		fail("freeze of buffer %u (%zu bytes): errno %d", i, len,
		     errno);
		return;
	}
	if (forkshim_deref(h, &got) != b || got != len)
		fail("deref of a fresh handle: errno %d", errno);
	if (forkshim_find(b, len) != h || forkshim_find(b + len - 1, 1) != h)
		fail("find of a fresh region: errno %d", errno);
	if (op % 8 == 0)
		refreeze_checks(level, i, h, len);
	atomic_store(&r->live, h);
}

/* Thaws what is still frozen, at the end of a run. */
static void level_drain(int level)
{
	for (unsigned i = 0; i < NREC; i++) {
		uint64_t h = atomic_exchange(&lv[level].rec[i].live, 0);

		if (h != 0 && forkshim_thaw(h) != 0)
			fail("final thaw: errno %d", errno);
	}
}

/* ---- threads of a level ---- */

struct worker_arg {
	int level;
	unsigned first;
	pthread_barrier_t *go;
};

static void *worker(void *p)
{
	struct worker_arg *a = p;

	pthread_barrier_wait(a->go);
	for (uint64_t op = 0; !atomic_load(&stop); op++)
		worker_step(a->level, a->first + (unsigned)(op % BUFS), op);
	return NULL;
}

/* Derefs and finds the level's records while the workers change them: a
 * handle either resolves to its own buffer or is ESTALE, never anything
 * else; a thawed one is always ESTALE. */
static void reader_pass(int level, uint64_t op)
{
	for (unsigned i = 0; i < NREC; i++) {
		const struct rec *r = &lv[level].rec[i];
		unsigned char *b = buf_of(level, i);
		uint64_t h = atomic_load(&r->live), g = atomic_load(&r->gone);
		uint64_t f;
		const void *p;
		struct forkshim_info info;

		if (h != 0) {
			count_check();
			errno = 0;
			p = forkshim_deref(h, NULL);
			if (p != b && (p != NULL || errno != ESTALE))
				fail("reader: deref %#llx gave %p errno %d, "
				     "buffer %p",
				     (unsigned long long)h, p, errno, b);
			if (forkshim_info(h, &info) == 0 &&
			    (info.addr != b || info.owner != getpid()))
				fail("reader: info of %#llx names %p", p,
				     info.addr);
		}
		if (g != 0)
			expect_estale(g, "reader: thawed");
		f = forkshim_find(b + op % 4096, 1);
		if (f != 0) {
			count_check();
			errno = 0;
			p = forkshim_deref(f, NULL);
			if (p != b && (p != NULL || errno != ESTALE))
				fail("reader: find in buffer %p gave a handle "
				     "of %p (errno %d)",
				     b, p, errno);
		} else if (errno != ENOENT) {
			fail("reader: find errno %d", errno);
		}
	}
}

static void *reader(void *p)
{
	struct worker_arg *a = p;

	pthread_barrier_wait(a->go);
	for (uint64_t op = 0; !atomic_load(&stop); op++)
		reader_pass(a->level, op);
	return NULL;
}

/* ---- a child's checks of what it was born with ---- */

/* Every published record of the levels above: exactly there. */
static void check_inherited(int upto)
{
	for (int l = 0; l < upto; l++) {
		for (unsigned i = 0; i < NREC; i++) {
			const struct rec *r = &lv[l].rec[i];
			unsigned char *b = buf_of(l, i);
			uint64_t h = atomic_load(&r->live);
			uint64_t g = atomic_load(&r->gone);
			uint64_t round = atomic_load(&r->round);
			struct forkshim_info info;
			size_t len = 0;

			if (g != 0 && g != h)
				expect_estale(g, "inherited thawed");
			if (h == 0)
				continue;
			count_check();
			errno = 0;
			if (forkshim_deref(h, &len) != b ||
			    len != len_of(i, round)) {
				fail("level %d buffer %u: inherited %#llx "
				     "does not deref (errno %d, len %zu)",
				     l, i, (unsigned long long)h, errno, len);
				continue;
			}
			if (!bytes_ok(l, i, round))
				fail("level %d buffer %u: bytes differ", l, i);
			if (forkshim_find(b, len) != h)
				fail("level %d buffer %u: find errno %d", l, i,
				     errno);
			if (forkshim_info(h, &info) != 0 ||
			    info.owner != lv[l].pid || info.addr != b)
				fail("level %d buffer %u: info owner %d, "
				     "expected %d",
				     l, i, (int)info.owner, (int)lv[l].pid);
		}
	}
}

static void check_probe(const struct probe *pr)
{
	const void *p;

	errno = 0;
	p = forkshim_deref(pr->h, NULL);
	if (pr->foreign) {
		atomic_fetch_add(&tot.foreign, 1);
		if (p != NULL)
			atomic_fetch_add(&tot.accepted, 1);
		else if (errno != EBADF && errno != ENOENT && errno != ESTALE)
			fail("foreign %#llx: errno %d",
			     (unsigned long long)pr->h, errno);
		return;
	}
	count_check();
	if (p != NULL || errno != ENOENT)
		fail("frozen after birth %#llx: %p errno %d, expected ENOENT",
		     (unsigned long long)pr->h, p, errno);
}

/* ---- shared mode: shared regions beside the private ones ---- */

/* A shared record's word: its state in the low 2 bits, pins above.  A
 * worker changes a record only when nobody pins it, so a pinned record's
 * answer is exact: live, its token imports and its handle derefs to its
 * bytes; thawed, both are ESTALE. */
enum { SH_EMPTY = 0, SH_BUSY = 1, SH_LIVE = 2 };
#define SH_PIN 4u
#define SH_WORKERS 2
#define SH_BUFS 6 /* per worker */
#define NSH (SH_WORKERS * SH_BUFS)
#define SH_STRIDE (3 * 4096) /* up to this many bytes a region */
#define SH_SENT 4            /* records pinned for a child, before and after */

struct shrec {
	_Atomic uint64_t word;
	struct shinfo in; /* written BUSY, read pinned */
};

/* What a child is sent: records pinned before its fork (it inherited
 * them, live or thawed), live ones frozen after its birth (late), and the
 * previous child's result (a sibling's, frozen and left by an exited
 * process). */
struct shdown {
	uint64_t k; /* the fork's number */
	uint32_t npre, nlate;
	struct shinfo pre[SH_SENT], late[SH_SENT + 1], sibling;
};

static struct shrec shr[NSH];
static unsigned char *sh_mem;
static int shared_mode;

static unsigned char sh_byte(uint32_t idx, uint64_t round, size_t j)
{
	return (unsigned char)(idx * 37 + round * 11 + j * 3 + (j >> 9));
}

static void sh_fill(unsigned char *p, const struct shinfo *in)
{
	for (size_t j = 0; j < in->len; j++)
		p[j] = sh_byte(in->idx, in->round, j);
}

static int sh_bytes_ok(const unsigned char *p, const struct shinfo *in)
{
	for (size_t j = 0; j < in->len; j++)
		if (p[j] != sh_byte(in->idx, in->round, j))
			return 0;
	return 1;
}

static int sh_pin(unsigned i, struct shinfo *out)
{
	uint64_t w = atomic_load(&shr[i].word);

	do {
		if ((w & 3) == SH_BUSY)
			return 0;
	} while (!atomic_compare_exchange_weak(&shr[i].word, &w, w + SH_PIN));
	*out = shr[i].in;
	return 1;
}

static void sh_unpin(unsigned i)
{
	atomic_fetch_sub(&shr[i].word, SH_PIN);
}

/* A region that a thread of this process froze: alloc'd, or a copy of
 * private memory at an odd address. */
static uint64_t sh_freeze(struct shinfo *in, unsigned char *priv)
{
	unsigned char *p;
	uint64_t h;

	if (in->alloc) {
		p = forkshim_alloc(in->len, "stress-alloc");
		if (p == NULL) {
			fail("forkshim_alloc(%u): errno %d", in->len, errno);
			return 0;
		}
	} else {
		p = priv;
	}
	sh_fill(p, in);
	in->epoch = atomic_load(&forks_done);
	in_write = 1;
	h = forkshim_freeze(p, in->len, "stress-shared", FORKSHIM_SHARED);
	in_write = 0;
	count_check();
	if (h == 0) {
		/* A table capped small (FORKSHIM_MAX_REGIONS, the TSan runs)
		 * is full at times: ENOMEM, nothing frozen. */
		if (!(errno == ENOMEM && getenv("FORKSHIM_MAX_REGIONS")))
			fail("shared freeze of %u bytes (alloc %u): errno %d",
			     in->len, in->alloc, errno);
		if (in->alloc && forkshim_release(p) != 0)
			fail("release of an unfrozen alloc: errno %d", errno);
		return 0;
	}
	in->addr = p;
	in->h = h;
	in->live = 1;
	if (forkshim_export(h, &in->tok) != 0) {
		fail("export of a fresh shared region: errno %d", errno);
		in->live = 0;
		forkshim_thaw(h);
		return 0;
	}
	return h;
}

/* Import of a record's token, here: live, its bytes (twice: the same
 * address, counted), or ESTALE thawed; with FORKSHIM_SAME_ADDRESS, the
 * freezer's address or EADDRINUSE. */
static void sh_import_check(const struct shinfo *in, const char *who)
{
	const unsigned char *p, *q;
	size_t len = 0;

	count_check();
	errno = 0;
	p = forkshim_import(&in->tok, 0, &len);
	if (!in->live) {
		if (p != NULL || errno != ESTALE)
			fail("%s: import of thawed %#llx: %p errno %d", who,
			     (unsigned long long)in->h, (const void *)p, errno);
		if (p != NULL)
			forkshim_release(p);
		return;
	}
	if (p == NULL || len != in->len) {
		fail("%s: import of live %#llx (alloc %u, %u bytes): %p "
		     "len %zu errno %d",
		     who, (unsigned long long)in->h, in->alloc, in->len,
		     (const void *)p, len, errno);
		return;
	}
	if (!sh_bytes_ok(p, in))
		fail("%s: imported bytes of %#llx differ", who,
		     (unsigned long long)in->h);
	if (forkshim_import(&in->tok, 0, NULL) != p)
		fail("%s: a second import of %#llx moved", who,
		     (unsigned long long)in->h);
	errno = 0;
	q = forkshim_import(&in->tok, FORKSHIM_SAME_ADDRESS, &len);
	if (q != NULL && (q != in->addr || !sh_bytes_ok(q, in)))
		fail("%s: same-address import of %#llx at %p, not %p", who,
		     (unsigned long long)in->h, (const void *)q,
		     (const void *)in->addr);
	else if (q == NULL && errno != EADDRINUSE)
		fail("%s: same-address import of %#llx: errno %d", who,
		     (unsigned long long)in->h, errno);
	if (forkshim_release(p) != 0 || forkshim_release(p) != 0 ||
	    (q != NULL && forkshim_release(q) != 0))
		fail("%s: release of %#llx: errno %d", who,
		     (unsigned long long)in->h, errno);
}

/* A token with one bit flipped maps nothing: EBADF. */
static void sh_flip_check(const struct shinfo *in, uint64_t op)
{
	struct forkshim_token t = in->tok;
	const void *p;

	t.bytes[(op * 7) % FORKSHIM_TOKEN_SIZE] ^=
	    (unsigned char)(1u << op % 8);
	atomic_fetch_add(&tot.foreign, 1);
	errno = 0;
	p = forkshim_import(&t, 0, NULL);
	if (p != NULL) {
		atomic_fetch_add(&tot.accepted, 1);
		fail("a flipped token of %#llx mapped %p",
		     (unsigned long long)in->h, p);
		forkshim_release(p);
	} else if (errno != EBADF) {
		fail("a flipped token: errno %d, expected EBADF", errno);
	}
}

/* One step of a shared worker: thaw a live record, or freeze an empty
 * one (alloc and copy in turn); a pinned record waits. */
static void sh_step(unsigned i, uint64_t op)
{
	struct shrec *r = &shr[i];
	uint64_t w = atomic_load(&r->word);
	struct shinfo in;

	if (w != SH_EMPTY && w != SH_LIVE)
		return; /* pinned */
	if (!atomic_compare_exchange_strong(&r->word, &w, SH_BUSY))
		return;
	in = r->in;
	if (in.live) {
		int rc;

		in_write = 1;
		rc = forkshim_thaw(in.h);
		in_write = 0;
		count_check();
		if (rc != 0)
			fail("thaw of shared %#llx: errno %d",
			     (unsigned long long)in.h, errno);
		in.live = 0;
		expect_estale(in.h, "shared, just thawed");
		sh_import_check(&in, "thawer");
	} else {
		if (op % 5 == 0) {
			/* Never frozen: released. */
			void *p = forkshim_alloc(1 + op % 9000, "unfrozen");

			count_check();
			if (p == NULL || forkshim_release(p) != 0)
				fail("alloc and release: errno %d", errno);
		}
		in.idx = i;
		in.round++;
		in.alloc = (uint32_t)((i + in.round) % 2);
		in.len =
		    (uint32_t)(1 + (i * 977u + in.round * 1031u) % SH_STRIDE);
		if (sh_freeze(&in, sh_mem + (size_t)i * (SH_STRIDE + 8192) +
		                       in.round % 97) == 0) {
			in.h = 0;
			in.live = 0;
		}
	}
	r->in = in;
	atomic_store(&r->word, in.live ? SH_LIVE : SH_EMPTY);
}

static void *sh_worker(void *p)
{
	struct worker_arg *a = p;

	pthread_barrier_wait(a->go);
	for (uint64_t op = 0; !atomic_load(&stop); op++)
		sh_step(a->first + (unsigned)(op % SH_BUFS), op);
	return NULL;
}

/* The importer of the freezing process: every record, pinned, by token
 * and by handle; and flipped tokens. */
static void *sh_importer(void *p)
{
	struct worker_arg *a = p;

	pthread_barrier_wait(a->go);
	for (uint64_t op = 0; !atomic_load(&stop); op++) {
		unsigned i = (unsigned)(op % NSH);
		struct shinfo in;
		struct forkshim_info info;
		size_t len = 0;
		const void *d;

		if (!sh_pin(i, &in))
			continue;
		if (in.h != 0) {
			sh_import_check(&in, "importer");
			count_check();
			errno = 0;
			d = forkshim_deref(in.h, &len);
			if (in.live && (d != in.addr || len != in.len ||
			                !sh_bytes_ok(d, &in) ||
			                forkshim_info(in.h, &info) != 0 ||
			                !(info.flags & FORKSHIM_SHARED)))
				fail("importer: deref of live shared %#llx: "
				     "%p errno %d",
				     (unsigned long long)in.h, d, errno);
			if (!in.live && (d != NULL || errno != ESTALE))
				fail("importer: deref of thawed shared %#llx: "
				     "%p errno %d",
				     (unsigned long long)in.h, d, errno);
			if (in.live)
				sh_flip_check(&in, op);
		}
		sh_unpin(i);
	}
	return NULL;
}

/* Thaws what is still frozen, at the end of a run. */
static void sh_drain(void)
{
	for (unsigned i = 0; i < NSH; i++)
		if (shr[i].in.live && forkshim_thaw(shr[i].in.h) != 0)
			fail("final shared thaw: errno %d", errno);
}

/* Pins up to SH_SENT records for a child: before its fork any that
 * holds a handle; after it, live ones frozen after the birth (epoch past
 * the fork's number k). */
static uint32_t sh_pick(struct shinfo *out, unsigned *pinned, uint32_t *npin,
                        int late, uint64_t k)
{
	uint32_t n = 0;

	for (unsigned j = 0; j < NSH && n < SH_SENT; j++) {
		unsigned i = (unsigned)((j + k * 5) % NSH);
		struct shinfo in;

		if (!sh_pin(i, &in))
			continue;
		if (in.h == 0 || (late && (!in.live || in.epoch <= k))) {
			sh_unpin(i);
			continue;
		}
		out[n++] = in;
		pinned[(*npin)++] = i;
	}
	return n;
}

/* A child's checks of what it was sent. */
static void sh_child_checks(const struct shdown *dn)
{
	for (uint32_t k = 0; k < dn->npre; k++) {
		const struct shinfo *in = &dn->pre[k];
		size_t len = 0;
		const unsigned char *d;

		count_check();
		errno = 0;
		d = forkshim_deref(in->h, &len);
		if (in->live &&
		    (d != in->addr || len != in->len || !sh_bytes_ok(d, in)))
			fail("child: inherited shared %#llx: %p errno %d",
			     (unsigned long long)in->h, (const void *)d, errno);
		if (!in->live && (d != NULL || errno != ESTALE))
			fail("child: inherited thawed %#llx: %p errno %d",
			     (unsigned long long)in->h, (const void *)d, errno);
		sh_import_check(in, "child, inherited");
	}
	for (uint32_t k = 0; k < dn->nlate; k++) {
		const struct shinfo *in = &dn->late[k];
		struct forkshim_token tok;
		struct shinfo again;
		size_t len = 0;
		const unsigned char *d;

		count_check();
		errno = 0;
		d = forkshim_deref(in->h, &len);
		if (d == NULL || len != in->len || !sh_bytes_ok(d, in)) {
			fail("late child: deref of %#llx (alloc %u): %p len "
			     "%zu errno %d",
			     (unsigned long long)in->h, in->alloc,
			     (const void *)d, len, errno);
			continue;
		}
		if (forkshim_deref(in->h, NULL) != d)
			fail("late child: a second deref moved");
		sh_import_check(in, "late child");
		/* Its own export of the handle imports too. */
		again = *in;
		if (forkshim_export(in->h, &tok) != 0)
			fail("late child: export: errno %d", errno);
		else
			again.tok = tok, sh_import_check(&again, "late child, "
			                                         "own token");
		sh_flip_check(in, k);
	}
	if (dn->sibling.h != 0) {
		const void *d;

		sh_import_check(&dn->sibling, "child, a sibling's result");
		/* Its handle is a sibling's: never a deref here. */
		atomic_fetch_add(&tot.foreign, 1);
		d = forkshim_deref(dn->sibling.h, NULL);
		if (d != NULL)
			atomic_fetch_add(&tot.accepted, 1);
	}
}

/* A child's result: frozen shared, handed up, left behind at exit. */
static void sh_result(struct shinfo *out, uint64_t k)
{
	memset(out, 0, sizeof(*out));
	out->idx = 1000 + (uint32_t)k;
	out->round = k;
	out->alloc = 1;
	out->len = (uint32_t)(1 + k * 4099 % (4 * 4096));
	if (sh_freeze(out, NULL) == 0)
		memset(out, 0, sizeof(*out));
}

/* ---- a level: workers, a reader, and forks ---- */

static void run_level(int level, int forks);

static void totals_read(struct totals *t)
{
	t->processes = atomic_load(&tot.processes);
	t->forks = atomic_load(&tot.forks);
	t->checks = atomic_load(&tot.checks);
	t->foreign = atomic_load(&tot.foreign);
	t->accepted = atomic_load(&tot.accepted);
	t->failures = atomic_load(&tot.failures);
}

static void totals_add(const struct totals *t)
{
	atomic_fetch_add(&tot.processes, t->processes);
	atomic_fetch_add(&tot.forks, t->forks);
	atomic_fetch_add(&tot.checks, t->checks);
	atomic_fetch_add(&tot.foreign, t->foreign);
	atomic_fetch_add(&tot.accepted, t->accepted);
	atomic_fetch_add(&tot.failures, t->failures);
}

/* The body of a child at `level`: checks, then its own level if any. */
static void child_main(int level, int down, int up, int forks)
{
	struct probe pr[PROBES_MAX];
	struct report rep;
	uint64_t n = 0;

	alarm(120);
	memset(&tot, 0, sizeof(tot));
	atomic_store(&fail_lines, 0);
	atomic_store(&stop, 0);
	atomic_store(&forks_done, 0);
	lv[level].pid = getpid();
	check_inherited(level);
	if (get(down, &n, sizeof(n)) < 0 || n > PROBES_MAX ||
	    get(down, pr, n * sizeof(pr[0])) < 0)
		fail("no probes from the parent");
	for (uint64_t k = 0; k < n; k++)
		check_probe(&pr[k]);
	memset(&rep, 0, sizeof(rep));
	if (shared_mode) {
		struct shdown dn;

		if (get(down, &dn, sizeof(dn)) < 0)
			fail("no shared records from the parent");
		else
			sh_child_checks(&dn);
		sh_result(&rep.result, dn.k);
	}
	rep.own = forkshim_freeze(probe_buf(level) + 4096, 100, "own", 0);
	if (rep.own == 0 ||
	    forkshim_deref(rep.own, NULL) != probe_buf(level) + 4096)
		fail("a child's own freeze: errno %d", errno);
	if (level + 1 < depth)
		run_level(level, forks);
	atomic_fetch_add(&tot.processes, 1);
	totals_read(&rep.t);
	put(up, &rep, sizeof(rep));
	_exit(0);
}

static void run_level(int level, int forks)
{
	pthread_t th[WORKERS + 1 + SH_WORKERS + 1];
	struct worker_arg arg[WORKERS + 1 + SH_WORKERS + 1];
	pthread_barrier_t go;
	uint64_t sibling = 0;
	struct shinfo sh_sibling;
	int threads = WORKERS + 1 + (shared_mode ? SH_WORKERS + 1 : 0);

	memset(&sh_sibling, 0, sizeof(sh_sibling));
	lv[level].pid = getpid();
	pthread_barrier_init(&go, NULL, (unsigned)threads + 1);
	for (int w = 0; w < threads; w++) {
		void *(*fn)(void *) = w < WORKERS       ? worker
		                      : w == WORKERS    ? reader
		                      : w < threads - 1 ? sh_worker
		                                        : sh_importer;
		unsigned first = w < WORKERS ? (unsigned)w * BUFS
		                 : w > WORKERS && w < threads - 1
		                     ? (unsigned)(w - WORKERS - 1) * SH_BUFS
		                     : 0;

		arg[w] = (struct worker_arg){level, first, &go};
		if (pthread_create(&th[w], NULL, fn, &arg[w]) != 0) {
			fail("pthread_create");
			exit(2);
		}
	}
	pthread_barrier_wait(&go);
	for (int k = 0; k < forks; k++) {
		uint64_t pre[NREC];
		struct probe pr[PROBES_MAX];
		struct report rep;
		uint64_t n = 0, hp;
		int down[2], up[2], status;
		pid_t pid;
		struct shdown dn;
		unsigned pinned[2 * SH_SENT];
		uint32_t npin = 0;
		uint64_t hl = 0;

		memset(&dn, 0, sizeof(dn));
		dn.k = (uint64_t)k;
		if (shared_mode)
			dn.npre = sh_pick(dn.pre, pinned, &npin, 0, dn.k);
		for (unsigned i = 0; i < NREC; i++)
			pre[i] = atomic_load(&lv[level].rec[i].live);
		if (pipe(down) != 0 || pipe(up) != 0) {
			fail("pipe: errno %d", errno);
			break;
		}
		in_fork = 1;
		pid = fork();
		in_fork = 0;
		if (pid == 0) {
			close(down[1]);
			close(up[0]);
			child_main(level + 1, down[0], up[1], forks);
		}
		close(down[0]);
		close(up[1]);
		if (pid < 0) {
			fail("fork: errno %d", errno);
			close(down[1]);
			close(up[0]);
			break;
		}
		atomic_store(&forks_done, (uint64_t)k + 1);
		atomic_fetch_add(&tot.forks, 1);
		/* Frozen after the birth: ENOENT below, 0 from visible. */
		hp = forkshim_freeze(probe_buf(level), 64 + (size_t)k % 4000,
		                     "probe", 0);
		if (hp == 0)
			fail("probe freeze: errno %d", errno);
		else
			pr[n++] = (struct probe){hp, 0};
		for (unsigned i = 0; i < NREC && n < PROBES_MAX - 1; i++) {
			const struct rec *r = &lv[level].rec[i];
			uint64_t h = atomic_load(&r->live);

			if (h != 0 && atomic_load(&r->epoch) > (uint64_t)k)
				pr[n++] = (struct probe){h, 0};
		}
		if (sibling != 0)
			pr[n++] = (struct probe){sibling, 1};
		put(down[1], &n, sizeof(n));
		put(down[1], pr, n * sizeof(pr[0]));
		if (shared_mode) {
			/* One frozen here after the birth for sure, then the
			 * workers' late ones. */
			struct shinfo *l = &dn.late[0];

			l->idx = 2000 + (uint32_t)k;
			l->round = (uint64_t)k;
			l->alloc = (uint32_t)(k % 2);
			l->len = (uint32_t)(1 + (uint64_t)k * 2053 % SH_STRIDE);
			hl = sh_freeze(l, sh_mem +
			                      (size_t)NSH * (SH_STRIDE + 8192) +
			                      (size_t)k % 61);
			dn.nlate = hl != 0;
			dn.nlate +=
			    sh_pick(dn.late + dn.nlate, pinned, &npin, 1, dn.k);
			dn.sibling = sh_sibling;
			put(down[1], &dn, sizeof(dn));
		}
		for (uint64_t j = 0; j < n; j++) {
			int v;

			if (pr[j].foreign)
				continue;
			errno = 0;
			v = forkshim_visible(pr[j].h, pid);
			count_check();
			if (v != 0 && !(v < 0 && errno == ESTALE))
				fail("visible of a post-fork handle: %d errno "
				     "%d",
				     v, errno);
		}
		for (unsigned i = 0; i < NREC; i++) {
			int v;

			if (pre[i] == 0)
				continue;
			errno = 0;
			v = forkshim_visible(pre[i], pid);
			count_check();
			if (v != 1 && !(v < 0 && errno == ESTALE))
				fail("visible of a pre-fork handle: %d errno "
				     "%d",
				     v, errno);
		}
		if (get(up[0], &rep, sizeof(rep)) < 0) {
			fail("child %d sent no report", (int)pid);
			memset(&rep, 0, sizeof(rep));
		}
		close(down[1]);
		close(up[0]);
		totals_add(&rep.t);
		if (rep.own != 0) {
			struct probe own = {rep.own, 1};

			check_probe(&own); /* sent up by a child */
			sibling = rep.own;
		}
		if (reap(pid, &status) != pid || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != 0)
			fail("child %d: status %#x", (int)pid, status);
		if (hp != 0 && forkshim_thaw(hp) != 0)
			fail("probe thaw: errno %d", errno);
		if (shared_mode) {
			while (npin > 0)
				sh_unpin(pinned[--npin]);
			if (hl != 0 && forkshim_thaw(hl) != 0)
				fail("late probe thaw: errno %d", errno);
			/* The child's result, after it was reaped; the next
			 * child imports it too. */
			if (rep.result.h == 0 && level + 1 == depth &&
			    !getenv("FORKSHIM_MAX_REGIONS"))
				fail("child %d left no shared result",
				     (int)pid);
			if (rep.result.h != 0)
				sh_import_check(&rep.result,
				                "parent, a child's result");
			sh_sibling = rep.result;
		}
	}
	atomic_store(&stop, 1);
	for (int w = 0; w < threads; w++)
		pthread_join(th[w], NULL);
	pthread_barrier_destroy(&go);
	level_drain(level);
	if (shared_mode)
		sh_drain();
}

/* ---- forks, freezes and derefs from signal handlers ---- */

static _Atomic uint64_t handler_runs, handler_forks, handler_edeadlk;
static __thread uint64_t handler_op;
static __thread unsigned my_first, my_count; /* this thread's records */

/* Whether every published record in [first, first + n) derefs to its
 * buffer; a handle thawed meanwhile by another thread may be ESTALE.
 * Async-signal-safe: the shim's readers only. */
static int records_ok(unsigned first, unsigned n, int estale_ok)
{
	for (unsigned i = first; i < first + n; i++) {
		uint64_t h = atomic_load(&lv[0].rec[i].live);
		const void *p;

		if (h == 0)
			continue;
		errno = 0;
		p = forkshim_deref(h, NULL);
		if (p != buf_of(0, i) && !(estale_ok && errno == ESTALE))
			return 0;
	}
	return 1;
}

/* One of three things, in turn: fork a child that checks every record
 * and exits; freeze, deref and thaw a region of its own (EDEADLK only
 * when it interrupted its thread's own freeze, thaw or fork); check this
 * thread's records. */
static void on_tick(int sig)
{
	int saved = errno, status;
	unsigned char *hb =
	    probe_buf(1) + my_first * 256 + (handler_op / 3 % 4) * 64;
	uint64_t h;
	pid_t pid;

	(void)sig;
	atomic_fetch_add(&handler_runs, 1);
	switch (handler_op++ % 3) {
	case 0:
		/* In a multithreaded process glibc's fork takes its atfork
		 * lock before our prepare takes the table lock: a fork from a
		 * handler that interrupted this thread's fork, or its freeze
		 * or thaw (holding or waiting for the table lock), would
		 * invert that order against another thread's fork.  A limit
		 * of fork() in handlers, not of the shim. */
		if ((in_fork || in_write) && sig_threads > 1)
			break;
		pid = fork();
		if (pid == 0)
			_exit(records_ok(0, NREC, 0) ? 0 : 1);
		if (pid < 0)
			break;
		atomic_fetch_add(&handler_forks, 1);
		if (reap(pid, &status) != pid || status != 0)
			atomic_fetch_add(&tot.failures, 1);
		break;
	case 1:
		h = forkshim_freeze(hb, 64, "handler", 0);
		if (h == 0) {
			if (errno == EDEADLK && (in_write || in_fork))
				atomic_fetch_add(&handler_edeadlk, 1);
			else
				atomic_fetch_add(&tot.failures, 1);
			break;
		}
		if (forkshim_deref(h, NULL) != hb || forkshim_thaw(h) != 0)
			atomic_fetch_add(&tot.failures, 1);
		break;
	default:
		if (!records_ok(my_first, my_count, 0))
			atomic_fetch_add(&tot.failures, 1);
	}
	errno = saved;
}

/* steps freeze/thaw steps over this thread's records, a fork every 16
 * whose child checks all records. */
static void signal_loop(uint64_t steps)
{
	for (uint64_t op = 0; op < steps; op++) {
		worker_step(0, my_first + (unsigned)(op % my_count), op);
		if (op % 16 == 15) {
			int status;
			pid_t pid;

			in_fork = 1;
			pid = fork();
			in_fork = 0;
			if (pid == 0)
				_exit(records_ok(0, NREC, 0) ? 0 : 1);
			if (pid < 0) {
				fail("fork: errno %d", errno);
				continue;
			}
			atomic_fetch_add(&tot.forks, 1);
			if (reap(pid, &status) != pid || status != 0)
				fail("child %d: status %#x", (int)pid, status);
		}
	}
}

/* 2 kHz of SIGUSR1 to one thread.  Thread-directed: a signal for the
 * whole process arriving during fork makes the kernel restart the fork,
 * and a handler that forks each time would starve it. */
static timer_t tick_timer(void)
{
	struct sigevent ev;
	struct itimerspec its = {{0, 500000}, {0, 500000}};
	timer_t t;

	memset(&ev, 0, sizeof(ev));
	ev.sigev_signo = SIGUSR1;
	ev.sigev_notify = SIGEV_THREAD_ID;
	ev._sigev_un._tid = (pid_t)syscall(SYS_gettid); /* notify_thread_id */
	if (timer_create(CLOCK_MONOTONIC, &ev, &t) != 0 ||
	    timer_settime(t, 0, &its, NULL) != 0) {
		perror("stress_host: timer");
		exit(2);
	}
	return t;
}

struct sig_arg {
	unsigned first, count;
	uint64_t steps;
	pthread_barrier_t *go;
};

static void *signal_thread(void *p)
{
	struct sig_arg *a = p;
	timer_t t;

	my_first = a->first;
	my_count = a->count;
	pthread_barrier_wait(a->go);
	t = tick_timer();
	signal_loop(a->steps);
	timer_delete(t);
	return NULL;
}

static void run_signals(uint64_t steps)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_tick;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	lv[0].pid = getpid();
	if (sig_threads == 1) {
		timer_t t;

		my_first = 0;
		my_count = NREC;
		t = tick_timer();
		signal_loop(steps);
		timer_delete(t);
	} else {
		pthread_t th[SIG_THREADS];
		struct sig_arg arg[SIG_THREADS];
		pthread_barrier_t go;
		unsigned each = NREC / SIG_THREADS;

		pthread_barrier_init(&go, NULL, SIG_THREADS);
		for (int k = 0; k < SIG_THREADS; k++) {
			arg[k] = (struct sig_arg){(unsigned)k * each, each,
			                          steps, &go};
			if (pthread_create(&th[k], NULL, signal_thread,
			                   &arg[k]) != 0) {
				perror("stress_host: pthread_create");
				exit(2);
			}
		}
		for (int k = 0; k < SIG_THREADS; k++)
			pthread_join(th[k], NULL);
		pthread_barrier_destroy(&go);
	}
	signal(SIGUSR1, SIG_IGN);
	level_drain(0);
	atomic_fetch_add(&tot.forks, atomic_load(&handler_forks));
	printf("stress %s: handler runs %llu forks %llu edeadlk %llu\n", mode,
	       (unsigned long long)atomic_load(&handler_runs),
	       (unsigned long long)atomic_load(&handler_forks),
	       (unsigned long long)atomic_load(&handler_edeadlk));
}

/* ---- dying: the report of a fatal signal beside a freezing thread ---- */

static void *freeze_new_regions(void *arg)
{
	(void)arg;
	for (;;) {
		void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED || forkshim_freeze(p, 4096, "new", 0) == 0)
			break; /* the table is full: wait for the signal */
		usleep(50);
	}
	for (;;)
		pause();
	return NULL;
}

static void run_dying(int count)
{
	for (int i = 0; i < count; i++) {
		pid_t pid = fork();
		int st;

		if (pid == 0) {
			pthread_t th;
			char first[64];

			/* Frozen here: the report is armed, the table made. */
			if (forkshim_freeze(first, sizeof(first), "first", 0) ==
			        0 ||
			    pthread_create(&th, NULL, freeze_new_regions,
			                   NULL) != 0)
				_exit(2);
			usleep(20000);
			raise(SIGTERM);
			_exit(3);
		}
		if (pid < 0 || waitpid(pid, &st, 0) != pid) {
			fail("dying: fork or wait: errno %d", errno);
			return;
		}
		atomic_fetch_add(&tot.forks, 1);
		if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGTERM)
			fail("dying: child %d ended with status %#x, not "
			     "SIGTERM",
			     (int)pid, st);
	}
}

int main(int argc, char **argv)
{
	int count;

	if (argc != 3 || (count = atoi(argv[2])) <= 0) {
		fprintf(stderr,
		        "usage: %s mix|shared|family|signal1|signalmt|dying "
		        "COUNT\n",
		        argv[0]);
		return 2;
	}
	mode = argv[1];
	alarm(120); /* a hang ends the run, whatever the driver does */
	setvbuf(stdout, NULL, _IONBF, 0);
	levels_map();
	if (strcmp(mode, "mix") == 0) {
		run_level(0, count);
	} else if (strcmp(mode, "shared") == 0) {
		shared_mode = 1;
		sh_mem = mmap(NULL, (size_t)(NSH + 1) * (SH_STRIDE + 8192),
		              PROT_READ | PROT_WRITE,
		              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (sh_mem == MAP_FAILED) {
			perror("stress_host: mmap");
			return 2;
		}
		/* This process uses forkshim before its first fork: the family
		 * directory is made there, so the first child is a late child
		 * of every shared freeze (README). */
		forkshim_api(FORKSHIM_ABI_VERSION);
		run_level(0, count);
	} else if (strcmp(mode, "family") == 0) {
		depth = LEVELS;
		run_level(0, count);
	} else if (strcmp(mode, "signal1") == 0) {
		run_signals((uint64_t)count);
	} else if (strcmp(mode, "signalmt") == 0) {
		sig_threads = SIG_THREADS;
		run_signals((uint64_t)count);
	} else if (strcmp(mode, "dying") == 0) {
		run_dying(count);
	} else {
		fprintf(stderr, "stress_host: unknown mode %s\n", mode);
		return 2;
	}
	atomic_fetch_add(&tot.processes, 1);
	if (atomic_load(&tot.accepted) > 2 + (atomic_load(&tot.foreign) >> 20))
		fail("%llu of %llu foreign handles resolved",
		     (unsigned long long)tot.accepted,
		     (unsigned long long)tot.foreign);
	printf("stress %s: processes %llu forks %llu checks %llu foreign %llu "
	       "accepted %llu failures %llu\n",
	       mode, (unsigned long long)tot.processes,
	       (unsigned long long)tot.forks, (unsigned long long)tot.checks,
	       (unsigned long long)tot.foreign,
	       (unsigned long long)tot.accepted,
	       (unsigned long long)tot.failures);
	return tot.failures == 0 ? 0 : 1;
}
