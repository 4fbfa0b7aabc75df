/* The guard tests' host program: a deliberately careless C program that
 * never links libforkshim (it reaches the shim through forkshim_client.h
 * when the driver preloads it).  Built with -g -rdynamic, so that the
 * functions named in reports are its own.  One mode per run:
 *
 *   protect      freezes "lookup-table" (4 pages) in freeze_lookup_table(),
 *                then scribble() writes into its third page: must die
 *   flag         the same, frozen with the FORKSHIM_GUARD flag
 *   thaw         freezes, thaws, writes: prints "wrote after thaw"
 *   child        freezes, forks; the child scribbles and dies, the parent
 *                prints "child signal N" and "parent intact 1"
 *   read         read(2) from a pipe into the frozen pages: prints
 *                "read -1 errno N", then "intact 1"
 *   audit N      freezes "table" (8 pages), "index" (4 pages) and "tiny"
 *                (100 bytes); N children each dirty table pages 0 and 3
 *                (twice) in dirty_table() and index page 1 in
 *                dirty_index(), check their bytes, keep errno across the
 *                writes, and leave with _exit; prints "child PID" lines,
 *                then "children ok N"
 *   threads N    N children, one at a time, each with 8 threads started
 *                at once, each writing its own byte of every page of
 *                "table" and "index" in the same order; prints "child
 *                PID" lines and "threads ok N"
 *   host         installs its own SA_SIGINFO SIGSEGV handler after the
 *                shim's, reads it back, faults on an unfrozen read-only
 *                page and on an unmapped page and prints what its handler
 *                saw; then writes into a frozen page (must end like
 *                `protect`, after the host handler saw a foreign fault)
 *   flags        SIG_IGN with kill(), signal() with a plain handler, then
 *                SA_RESETHAND: the second fault must kill
 *   off          prints the SIGSEGV action as sigaction and the kernel
 *                see it, then a child writes 64 frozen pages and prints
 *                its minor faults
 *   maxmap       fills the map count to near vm.max_map_count, freezes 30
 *                separate pages with the FORKSHIM_GUARD flag, prints how
 *                many became read-only, maps 1000 more areas, writes the
 *                last page (unguarded)
 *   maxmap-child the same without the flag, then forks: the child (audit)
 *                prints how many it protected, maps 1000 more areas,
 *                writes all 30 pages and prints "child wrote 30" */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "forkshim_client.h"

#define NOINLINE __attribute__((noinline, noclone))

static const struct forkshim_api *api;
static size_t ps;

static void fail(const char *what)
{
	printf("FAIL: %s (errno %d)\n", what, errno);
	fflush(stdout);
	exit(1);
}

static unsigned char *pages(size_t n, int fill)
{
	unsigned char *p = mmap(NULL, n * ps, PROT_READ | PROT_WRITE,
	                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		fail("mmap");
	memset(p, fill, n * ps);
	return p;
}

static int all_bytes(const unsigned char *p, size_t n, int v)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (unsigned char)v)
			return 0;
	return 1;
}

NOINLINE forkshim_handle freeze_lookup_table(unsigned char *p, size_t n,
                                             unsigned flags)
{
	forkshim_handle h = api->freeze(p, n, "lookup-table", flags);

	if (h == 0)
		fail("freeze");
	return h;
}

NOINLINE void scribble(volatile unsigned char *p)
{
	p[0] = 0x5a;
}

static int do_protect(unsigned flags)
{
	unsigned char *p = pages(4, 0x11);

	freeze_lookup_table(p, 4 * ps, flags);
	printf("frozen\n");
	fflush(stdout);
	scribble(p + 2 * ps + 100);
	printf("FAIL: the write went through\n");
	return 1;
}

static int do_thaw(void)
{
	unsigned char *p = pages(4, 0x11);
	forkshim_handle h = freeze_lookup_table(p, 4 * ps, 0);

	if (api->thaw(h) != 0)
		fail("thaw");
	scribble(p + 2 * ps + 100);
	printf("wrote after thaw %d\n", p[2 * ps + 100] == 0x5a);
	return 0;
}

static int do_child(void)
{
	unsigned char *p = pages(4, 0x11);
	int status;
	pid_t pid;

	freeze_lookup_table(p, 4 * ps, 0);
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		fail("fork");
	if (pid == 0) {
		scribble(p + ps);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid)
		fail("waitpid");
	printf("child signal %d\n", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	printf("parent intact %d\n", all_bytes(p, 4 * ps, 0x11));
	return 0;
}

static int do_read(void)
{
	unsigned char *p = pages(4, 0x11);
	int fds[2];
	ssize_t r;

	freeze_lookup_table(p, 4 * ps, 0);
	if (pipe(fds) != 0 || write(fds[1], "0123456789", 10) != 10)
		fail("pipe");
	errno = 0;
	r = read(fds[0], p + ps, 10);
	printf("read %zd errno %d\n", r, r < 0 ? errno : 0);
	printf("intact %d\n", all_bytes(p, 4 * ps, 0x11));
	return 0;
}

/* ---- audit ---- */

static unsigned char *table, *idx, *tiny_page;

NOINLINE forkshim_handle freeze_regions(void)
{
	table = pages(8, 0x22);
	idx = pages(4, 0x33);
	tiny_page = pages(1, 0x44);
	if (api->freeze(table, 8 * ps, "table", 0) == 0 ||
	    api->freeze(idx, 4 * ps, "index", 0) == 0 ||
	    api->freeze(tiny_page + 10, 100, "tiny", 0) == 0)
		fail("freeze");
	return 1;
}

NOINLINE void dirty_table(size_t page, int v)
{
	volatile unsigned char *p = table + page * ps;

	p[7] = (unsigned char)v;
	p[8] = (unsigned char)v;
}

NOINLINE void dirty_index(size_t page, int v)
{
	volatile unsigned char *p = idx + page * ps;

	p[1] = (unsigned char)v;
}

static int audit_child_body(void)
{
	int ok = 1;

	errno = 4242;
	dirty_table(0, 1);
	dirty_table(3, 2);
	dirty_table(0, 3);
	dirty_table(3, 4);
	dirty_index(1, 5);
	tiny_page[50] = 6; /* a region smaller than a page: never guarded */
	ok &= errno == 4242;
	ok &= table[7] == 3 && table[8] == 3 && table[3 * ps + 7] == 4;
	ok &= idx[ps + 1] == 5 && tiny_page[50] == 6;
	ok &= all_bytes(table + ps, 2 * ps, 0x22) &&
	      all_bytes(table + 4 * ps, 4 * ps, 0x22);
	return ok ? 0 : 1;
}

static int do_audit(int n)
{
	int good = 0;

	freeze_regions();
	for (int i = 0; i < n; i++) {
		pid_t pid;
		int status;

		fflush(stdout);
		pid = fork();
		if (pid < 0)
			fail("fork");
		if (pid == 0)
			_exit(audit_child_body());
		printf("child %d\n", (int)pid);
		if (waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
		    WEXITSTATUS(status) == 0)
			good++;
	}
	printf("children ok %d\n", good);
	printf("parent intact %d\n",
	       all_bytes(table, 8 * ps, 0x22) && all_bytes(idx, 4 * ps, 0x33));
	return 0;
}

static pthread_barrier_t barrier;

NOINLINE void dirty_shared_page(size_t page, long id)
{
	volatile unsigned char *p =
	    page < 8 ? table + page * ps : idx + (page - 8) * ps;

	p[64 + id] = (unsigned char)(id + 1);
}

static void *thread_body(void *arg)
{
	long id = (long)arg;

	pthread_barrier_wait(&barrier);
	for (size_t page = 0; page < 12; page++)
		dirty_shared_page(page, id);
	return NULL;
}

static int threads_child(void)
{
	pthread_t t[8];
	int ok = 1;

	pthread_barrier_init(&barrier, NULL, 8);
	for (long i = 0; i < 8; i++)
		if (pthread_create(&t[i], NULL, thread_body, (void *)i) != 0)
			return 2;
	for (int i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	for (int page = 0; page < 12; page++)
		for (int i = 0; i < 8; i++)
			ok &=
			    (page < 8 ? table + page * ps
			              : idx + (page - 8) * ps)[64 + i] == i + 1;
	return ok ? 0 : 1;
}

/* n children, one after the other: each is a new chance for two threads
 * to fault on one page at the same moment. */
static int do_threads(int n)
{
	int good = 0;

	freeze_regions();
	for (int i = 0; i < n; i++) {
		pid_t pid;
		int status;

		fflush(stdout);
		pid = fork();
		if (pid < 0)
			fail("fork");
		if (pid == 0)
			_exit(threads_child());
		printf("child %d\n", (int)pid);
		if (waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
		    WEXITSTATUS(status) == 0)
			good++;
	}
	printf("threads ok %d\n", good);
	return 0;
}

/* ---- handlers of the host ---- */

static unsigned char *ro_page;
static volatile void *seen_addr;
static volatile int seen_code, seen_signo, host_calls;
static sigjmp_buf jump;

static void host_handler(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	host_calls++;
	seen_addr = si->si_addr;
	seen_code = si->si_code;
	seen_signo = si->si_signo;
	if ((unsigned char *)si->si_addr >= ro_page &&
	    (unsigned char *)si->si_addr < ro_page + ps) {
		mprotect(ro_page, ps, PROT_READ | PROT_WRITE);
		return;
	}
	if (si->si_code == SEGV_MAPERR)
		siglongjmp(jump, 1);
	/* Anything else: as a crash handler would, default and re-fault. */
	static const char msg[] = "host: foreign fault, dying\n";
	write(2, msg, sizeof(msg) - 1);
	signal(sig, SIG_DFL);
}

static int do_host(void)
{
	struct sigaction sa, back;
	struct {
		void *handler;
		unsigned long flags;
		void *restorer;
		unsigned long mask;
	} kernel;
	unsigned char *p = pages(4, 0x11), *hole;

	ro_page = pages(1, 0x66);
	hole = pages(1, 0);
	munmap(hole, ps);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = host_handler;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSEGV, &sa, NULL) != 0 ||
	    sigaction(SIGSEGV, NULL, &back) != 0)
		fail("sigaction");
	printf("readback is ours %d\n", back.sa_sigaction == host_handler &&
	                                    (back.sa_flags & SA_SIGINFO));
	syscall(SYS_rt_sigaction, SIGSEGV, NULL, &kernel, 8);
	printf("kernel handler is ours %d\n",
	       kernel.handler == (void *)host_handler);

	mprotect(ro_page, ps, PROT_READ);
	ro_page[10] = 1;
	printf("accerr calls %d addr ok %d code %d signo %d value %d\n",
	       host_calls, seen_addr == ro_page + 10, seen_code, seen_signo,
	       ro_page[10]);
	if (sigsetjmp(jump, 1) == 0)
		*(volatile unsigned char *)(hole + 20) = 1;
	printf("maperr calls %d addr ok %d code %d\n", host_calls,
	       seen_addr == hole + 20, seen_code);

	freeze_lookup_table(p, 4 * ps, 0);
	fflush(stdout);
	scribble(p + 2 * ps + 100);
	printf("FAIL: the write went through\n");
	return 1;
}

static volatile int plain_calls, reset_calls;

static void plain_handler(int sig)
{
	(void)sig;
	plain_calls++;
	siglongjmp(jump, 1);
}

static void reset_handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	(void)uc;
	reset_calls++;
	siglongjmp(jump, 1);
}

static int do_flags(void)
{
	struct sigaction sa, back;
	unsigned char *hole = pages(1, 0);

	munmap(hole, ps);
	signal(SIGSEGV, SIG_IGN);
	kill(getpid(), SIGSEGV);
	printf("ignored kill survived\n");

	signal(SIGSEGV, plain_handler);
	if (sigsetjmp(jump, 1) == 0)
		*(volatile unsigned char *)hole = 1;
	printf("plain handler calls %d\n", plain_calls);

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = reset_handler;
	sa.sa_flags = SA_SIGINFO | SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, NULL);
	if (sigsetjmp(jump, 1) == 0)
		*(volatile unsigned char *)hole = 1;
	sigaction(SIGSEGV, NULL, &back);
	printf("reset handler calls %d, now default %d\n", reset_calls,
	       back.sa_handler == SIG_DFL);
	fflush(stdout);
	*(volatile unsigned char *)hole = 1;
	printf("FAIL: survived the second fault\n");
	return 1;
}

static long minflt(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

static int do_off(void)
{
	struct sigaction back;
	struct {
		void *handler;
		unsigned long flags;
		void *restorer;
		unsigned long mask;
	} kernel;
	unsigned char *p = pages(64, 0x11);
	int status;
	pid_t pid;

	sigaction(SIGSEGV, NULL, &back);
	syscall(SYS_rt_sigaction, SIGSEGV, NULL, &kernel, 8);
	printf("sigaction default %d\n", back.sa_handler == SIG_DFL);
	printf("kernel default %d\n", kernel.handler == (void *)SIG_DFL);
	if (api->freeze(p, 64 * ps, "off", 0) == 0)
		fail("freeze");
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		long before = minflt();

		for (int i = 0; i < 64; i++)
			p[i * ps] = 1;
		printf("child faults %ld\n", minflt() - before);
		fflush(stdout);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	return 0;
}

/* ---- vm.max_map_count ---- */

static long count_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	long n = 0;
	int c;

	if (f == NULL)
		fail("maps");
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

/* How many of the n pages at p, every other page, are read-only. */
static int count_read_only(const unsigned char *p, int n)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int ro = 0;

	while (f != NULL && fgets(line, sizeof(line), f)) {
		unsigned long s, e;
		char perms[5];

		if (sscanf(line, "%lx-%lx %4s", &s, &e, perms) != 3 ||
		    perms[1] != '-')
			continue;
		for (int i = 0; i < n; i++) {
			unsigned long a = (unsigned long)(p + 2 * i * ps);

			ro += s <= a && a < e;
		}
	}
	if (f != NULL)
		fclose(f);
	return ro;
}

static int do_maxmap(int in_child)
{
	FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
	long max = 0, fill, now;
	unsigned char *filler, *regions, *extra[1000];
	int protected_ = 0, mapped = 0;

	if (f == NULL || fscanf(f, "%ld", &max) != 1)
		fail("max_map_count");
	fclose(f);
	/* The shim keeps max/8 for the host; leave room for 10 splits.  A
	 * read-only page between writable ones adds two areas. */
	now = count_maps();
	fill = (max - max / 8 - now - 20) / 2;
	filler = pages((size_t)fill * 2 + 2, 0);
	for (long i = 0; i < fill; i++)
		mprotect(filler + (2 * i + 1) * ps, ps, PROT_READ);
	regions = pages(60, 0x77);
	printf("maps before %ld of %ld\n", count_maps(), max);
	for (int i = 0; i < 30; i++)
		if (api->freeze(regions + 2 * i * ps, ps, "crowded",
		                in_child ? 0 : FORKSHIM_GUARD) == 0)
			fail("freeze");
	if (in_child) {
		pid_t pid = fork();
		int status;

		if (pid < 0)
			fail("fork");
		if (pid > 0) {
			waitpid(pid, &status, 0);
			printf("child status %d\n", status);
			return 0;
		}
		printf("child ");
	}
	protected_ = count_read_only(regions, 30);
	printf("protected %d of 30\n", protected_);
	for (int i = 0; i < 1000; i++) {
		extra[i] = mmap(NULL, ps, i % 2 ? PROT_READ : PROT_NONE,
		                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		mapped += extra[i] != MAP_FAILED;
	}
	printf("host mapped %d of 1000\n", mapped);
	if (in_child) {
		for (int i = 0; i < 30; i++)
			regions[2 * i * ps] = 1;
		printf("child wrote 30\n");
		fflush(stdout);
		_exit(0);
	}
	regions[2 * 29 * ps] = 1; /* the last region: not protected */
	printf("wrote unguarded\n");
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";

	setvbuf(stdout, NULL, _IOLBF, 0);
	ps = (size_t)sysconf(_SC_PAGESIZE);
	api = forkshim_client_get();
	if (api == NULL && strcmp(mode, "flags") != 0) {
		printf("no shim\n");
		return 3;
	}
	if (strcmp(mode, "protect") == 0)
		return do_protect(0);
	if (strcmp(mode, "flag") == 0)
		return do_protect(FORKSHIM_GUARD);
	if (strcmp(mode, "thaw") == 0)
		return do_thaw();
	if (strcmp(mode, "child") == 0)
		return do_child();
	if (strcmp(mode, "read") == 0)
		return do_read();
	if (strcmp(mode, "audit") == 0)
		return do_audit(argc > 2 ? atoi(argv[2]) : 1);
	if (strcmp(mode, "threads") == 0)
		return do_threads(argc > 2 ? atoi(argv[2]) : 1);
	if (strcmp(mode, "host") == 0)
		return do_host();
	if (strcmp(mode, "flags") == 0)
		return do_flags();
	if (strcmp(mode, "off") == 0)
		return do_off();
	if (strcmp(mode, "maxmap") == 0)
		return do_maxmap(0);
	if (strcmp(mode, "maxmap-child") == 0)
		return do_maxmap(1);
	fprintf(stderr, "usage: guard_host MODE\n");
	return 2;
}
