/* mt_host: fork 1,000 children while 4 threads freeze and thaw nonstop.
 *
 * Reaches the shim only through forkshim_client_get(), so it must be started
 * with the shim preloaded.  Usage: mt_host [CHILDREN].
 *
 * Each freezer thread owns BUFS_PER_THREAD buffers and loops over them: a
 * thawed buffer is refilled (contents and length derived from its index and
 * a round number), frozen, and then published in its slot; a frozen one is
 * unpublished first and then thawed, and the thawed handle published.  So
 * whenever slot.handle is nonzero in some copy of memory, the region was in
 * the table at that moment; a child whose memory shows it must deref it
 * exactly.  A nonzero slot.thawed is a handle whose thaw had returned: the
 * child must get ESTALE.  For ENOENT the parent, after each fork, freezes
 * two buffers of its own and picks handles whose freeze started after the
 * fork (start_seq), and sends them down a pipe.  The child answers with its
 * counts over another pipe.  Exit 0 and a "failures 0" summary when every
 * answer was right; SIGALRM ends a hang. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "forkshim_client.h"
#include "io.h"

#define FREEZERS 4
#define BUFS_PER_THREAD 16
#define NBUF (FREEZERS * BUFS_PER_THREAD)
#define BUF_MAX 4096
#define PROBES_OWN 2
#define PROBES_MAX 8
#define CHILD_MESSAGES 4 /* failure lines per child, at most */

struct slot {
	_Atomic uint64_t handle; /* nonzero: frozen, published after freeze */
	_Atomic uint64_t round;  /* what the frozen bytes were made from */
	_Atomic uint64_t start_seq; /* forks_done seen before that freeze */
	_Atomic uint64_t thawed;    /* a handle whose thaw has returned */
	unsigned char *buf;
};

struct child_report {
	uint64_t frozen_ok; /* published handles that derefed exactly */
	uint64_t enoent_ok; /* post-fork handles that failed with ENOENT */
	uint64_t estale_ok; /* thawed handles that failed with ESTALE */
	uint64_t failures;
};

static const struct forkshim_api *api;
static struct slot slots[NBUF];
static _Atomic uint64_t forks_done; /* set in the parent after each fork */
static atomic_int stop;
static _Atomic uint64_t thread_failures;
static _Atomic uint64_t freezes_done, thaws_done;

static size_t len_of(size_t index, uint64_t round)
{
	return 1 + (index * 97 + round * 61) % BUF_MAX;
}

static unsigned char byte_of(size_t index, uint64_t round, size_t j)
{
	return (unsigned char)(index * 29 + round * 13 + j * 7 + (j >> 8));
}

static void fill(size_t index, uint64_t round)
{
	size_t len = len_of(index, round);

	for (size_t j = 0; j < len; j++)
		slots[index].buf[j] = byte_of(index, round, j);
}

static int bytes_match(const unsigned char *p, size_t index, uint64_t round)
{
	size_t len = len_of(index, round);

	for (size_t j = 0; j < len; j++)
		if (p[j] != byte_of(index, round, j))
			return 0;
	return 1;
}

/* The first few failures of each side are enough to read. */
#define PARENT_MESSAGES 10

static void thread_failed(const char *what, size_t index)
{
	if (atomic_fetch_add(&thread_failures, 1) >= PARENT_MESSAGES)
		return;
	fprintf(stderr, "mt: freezer: %s (buffer %zu): %s\n", what, index,
	        strerror(errno));
}

static void freeze_and_publish(size_t i, uint64_t round)
{
	struct slot *s = &slots[i];
	uint64_t seq;
	forkshim_handle h;
	const void *p;
	size_t len;

	fill(i, round);
	seq = atomic_load(&forks_done);
	h = api->freeze(s->buf, len_of(i, round), NULL, 0);
	if (h == 0) {
		thread_failed("freeze failed", i);
		return;
	}
	p = api->deref(h, &len);
	if (p != s->buf || len != len_of(i, round))
		thread_failed("own deref is wrong", i);
	atomic_store(&s->start_seq, seq);
	atomic_store(&s->round, round);
	atomic_store(&s->handle, h);
	atomic_fetch_add(&freezes_done, 1);
}

static void unpublish_and_thaw(size_t i, forkshim_handle h)
{
	struct slot *s = &slots[i];

	/* Out of the log before out of the table: a child that still sees
	 * the handle published must also still have it in its table. */
	atomic_store(&s->handle, 0);
	atomic_thread_fence(memory_order_seq_cst);
	if (api->thaw(h) != 0) {
		thread_failed("thaw failed", i);
		return;
	}
	atomic_store(&s->thawed, h);
	atomic_fetch_add(&thaws_done, 1);
}

static void *freezer(void *arg)
{
	size_t first = (size_t)(uintptr_t)arg * BUFS_PER_THREAD;
	uint64_t round[BUFS_PER_THREAD] = {0};

	while (!atomic_load(&stop)) {
		for (size_t b = 0; b < BUFS_PER_THREAD; b++) {
			size_t i = first + b;
			forkshim_handle h = atomic_load(&slots[i].handle);

			if (h == 0)
				freeze_and_publish(i, ++round[b]);
			else
				unpublish_and_thaw(i, h);
		}
		sched_yield(); /* let the forking thread and its children run */
	}
	for (size_t b = 0; b < BUFS_PER_THREAD; b++) {
		forkshim_handle h = atomic_load(&slots[first + b].handle);

		if (h != 0)
			unpublish_and_thaw(first + b, h);
	}
	return NULL;
}

/* ---- the child: async-signal-safe calls only (a threaded parent) ---- */

static char *put_str(char *at, const char *s)
{
	while (*s)
		*at++ = *s++;
	return at;
}

static char *put_hex(char *at, uint64_t v)
{
	at = put_str(at, "0x");
	for (int shift = 60; shift >= 0; shift -= 4)
		*at++ = "0123456789abcdef"[(v >> shift) & 0xf];
	return at;
}

static void child_fails(struct child_report *rep, const char *what,
                        uint64_t handle, uint64_t detail)
{
	char line[256], *at = line;
	int saved = errno;

	if (rep->failures++ >= CHILD_MESSAGES)
		return;
	at = put_str(at, "mt child: ");
	at = put_str(at, what);
	at = put_str(at, " handle ");
	at = put_hex(at, handle);
	at = put_str(at, " detail ");
	at = put_hex(at, detail);
	at = put_str(at, " errno ");
	at = put_hex(at, (uint64_t)saved);
	*at++ = '\n';
	(void)!write(2, line, (size_t)(at - line));
}

static void check_published(struct child_report *rep)
{
	for (size_t i = 0; i < NBUF; i++) {
		uint64_t h = atomic_load(&slots[i].handle);
		uint64_t t = atomic_load(&slots[i].thawed);

		if (h != 0) {
			uint64_t round = atomic_load(&slots[i].round);
			size_t len = 0;
			const unsigned char *p = api->deref(h, &len);

			if (p == NULL)
				child_fails(
				    rep, "frozen before birth, no deref", h, i);
			else if (p != slots[i].buf || len != len_of(i, round))
				child_fails(rep, "deref to the wrong region", h,
				            (uint64_t)len);
			else if (!bytes_match(p, i, round))
				child_fails(rep, "bytes differ", h, round);
			else
				rep->frozen_ok++;
		}
		if (t != 0) {
			errno = 0;
			if (api->deref(t, NULL) != NULL || errno != ESTALE)
				child_fails(rep,
				            "thawed before birth, not ESTALE",
				            t, i);
			else
				rep->estale_ok++;
		}
	}
}

static void check_probes(struct child_report *rep, int fd)
{
	uint64_t probe[PROBES_MAX];
	uint32_t n;

	if (read_all(fd, &n, sizeof(n)) != 0 || n > PROBES_MAX ||
	    read_all(fd, probe, n * sizeof(probe[0])) != 0) {
		child_fails(rep, "no probes on the pipe", 0, 0);
		return;
	}
	for (uint32_t k = 0; k < n; k++) {
		errno = 0;
		if (api->deref(probe[k], NULL) != NULL || errno != ENOENT)
			child_fails(rep, "frozen after birth, not ENOENT",
			            probe[k], k);
		else
			rep->enoent_ok++;
	}
}

static void child_main(int down, int up, forkshim_handle stable,
                       const void *stable_buf)
{
	struct child_report rep = {0};
	size_t len;

	alarm(20);
	if (api->deref(stable, &len) != stable_buf)
		child_fails(&rep, "stable handle, no deref", stable, 0);
	check_published(&rep);
	check_probes(&rep, down);
	if (write_all(up, &rep, sizeof(rep)) != 0)
		_exit(3);
	_exit(rep.failures == 0 ? 0 : 1);
}

/* ---- the parent's forking thread ---- */

/* Up to max handles of other threads whose freeze started after fork n. */
static uint32_t collect_late_handles(uint64_t n, uint64_t *out, uint32_t max)
{
	uint32_t got = 0;

	/* Give the freezers a few passes; fewer handles is no failure. */
	for (int pass = 0; pass < 50 && got < max; pass++) {
		for (size_t i = 0; i < NBUF && got < max; i++) {
			uint64_t h1 = atomic_load(&slots[i].handle);
			uint64_t seq = atomic_load(&slots[i].start_seq);
			uint64_t h2 = atomic_load(&slots[i].handle);
			int dup = 0;

			/* start_seq changes only while the slot is empty and
			 * handles are unique: same h twice, seq belongs to h */
			if (h1 == 0 || h1 != h2 || seq < n)
				continue;
			for (uint32_t k = 0; k < got; k++)
				dup |= out[k] == h1;
			if (!dup)
				out[got++] = h1;
		}
		sched_yield();
	}
	return got;
}

struct totals {
	uint64_t children, children_ok, late_from_threads, failures;
	struct child_report sum;
};

static unsigned char probe_buf[PROBES_OWN][512];
static unsigned char stable_buf[1000];

static void parent_fails(struct totals *tot, const char *fmt, ...)
{
	va_list ap;

	if (tot->failures++ >= PARENT_MESSAGES)
		return;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

static void fork_one(uint64_t n, forkshim_handle stable, struct totals *tot)
{
	uint64_t probe[PROBES_MAX];
	struct child_report rep;
	int down[2], up[2], status;
	uint32_t own = 0, count, late;
	pid_t pid;

	if (pipe(down) != 0 || pipe(up) != 0) {
		perror("mt: pipe");
		exit(2);
	}
	pid = fork();
	if (pid < 0) {
		perror("mt: fork");
		exit(2);
	}
	if (pid == 0) {
		close(down[1]);
		close(up[0]);
		child_main(down[0], up[1], stable, stable_buf);
	}
	atomic_store(&forks_done, n);
	close(down[0]);
	close(up[1]);
	tot->children++;

	errno = 0;
	if (api->visible(stable, pid) != 1)
		parent_fails(tot, "mt: child %llu: visible(stable) != 1: %s\n",
		             (unsigned long long)n, strerror(errno));
	for (int k = 0; k < PROBES_OWN; k++) {
		memset(probe_buf[k], (int)(n + (uint64_t)k),
		       sizeof(probe_buf[k]));
		probe[own] =
		    api->freeze(probe_buf[k], sizeof(probe_buf[k]), "late", 0);
		if (probe[own] == 0) {
			parent_fails(tot, "mt: freeze of a probe: %s\n",
			             strerror(errno));
			continue;
		}
		errno = 0;
		if (api->visible(probe[own], pid) != 0)
			parent_fails(tot,
			             "mt: child %llu: visible(late) != 0: %s\n",
			             (unsigned long long)n, strerror(errno));
		own++;
	}
	late = collect_late_handles(n, probe + own, PROBES_MAX - own);
	tot->late_from_threads += late;
	count = own + late;
	if (write_all(down[1], &count, sizeof(count)) != 0 ||
	    write_all(down[1], probe, count * sizeof(probe[0])) != 0)
		parent_fails(tot, "mt: child %llu: cannot send probes\n",
		             (unsigned long long)n);
	close(down[1]);

	memset(&rep, 0, sizeof(rep));
	if (read_all(up[0], &rep, sizeof(rep)) != 0)
		rep.failures = 1; /* died before reporting: status says why */
	close(up[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			perror("mt: waitpid");
			exit(2);
		}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && rep.failures == 0)
		tot->children_ok++;
	else
		parent_fails(tot,
		             "mt: child %llu: status 0x%x, %llu failures\n",
		             (unsigned long long)n, (unsigned)status,
		             (unsigned long long)rep.failures);
	tot->sum.frozen_ok += rep.frozen_ok;
	tot->sum.enoent_ok += rep.enoent_ok;
	tot->sum.estale_ok += rep.estale_ok;
	tot->sum.failures += rep.failures;
	for (uint32_t k = 0; k < own; k++)
		if (api->thaw(probe[k]) != 0)
			parent_fails(tot, "mt: thaw of a probe: %s\n",
			             strerror(errno));
}

int main(int argc, char **argv)
{
	uint64_t children = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000;
	pthread_t threads[FREEZERS];
	struct totals tot = {0};
	forkshim_handle stable;
	uint64_t failures;

	alarm(170); /* a hang, not a slow machine: CI may be loaded */
	api = forkshim_client_get();
	if (api == NULL) {
		fprintf(stderr, "mt: the shim is not loaded\n");
		return 2;
	}
	for (size_t i = 0; i < NBUF; i++) {
		slots[i].buf = malloc(BUF_MAX);
		if (slots[i].buf == NULL)
			return 2;
	}
	memset(stable_buf, 0x5a, sizeof(stable_buf));
	stable = api->freeze(stable_buf, sizeof(stable_buf), "stable", 0);
	if (stable == 0) {
		perror("mt: freeze");
		return 2;
	}
	for (uintptr_t t = 0; t < FREEZERS; t++)
		if (pthread_create(&threads[t], NULL, freezer, (void *)t) != 0)
			return 2;

	for (uint64_t n = 1; n <= children; n++)
		fork_one(n, stable, &tot);

	atomic_store(&stop, 1);
	for (int t = 0; t < FREEZERS; t++)
		pthread_join(threads[t], NULL);
	if (api->thaw(stable) != 0)
		tot.failures++;

	failures =
	    tot.failures + tot.sum.failures + atomic_load(&thread_failures);
	printf("mt: children %llu ok %llu\n", (unsigned long long)tot.children,
	       (unsigned long long)tot.children_ok);
	printf("mt: checked frozen %llu enoent %llu (from threads %llu) "
	       "estale %llu\n",
	       (unsigned long long)tot.sum.frozen_ok,
	       (unsigned long long)tot.sum.enoent_ok,
	       (unsigned long long)tot.late_from_threads,
	       (unsigned long long)tot.sum.estale_ok);
	printf("mt: freezes %llu thaws %llu\n",
	       (unsigned long long)atomic_load(&freezes_done),
	       (unsigned long long)atomic_load(&thaws_done));
	printf("mt: failures %llu\n", (unsigned long long)failures);
	return failures == 0 && tot.children_ok == children ? 0 : 1;
}
