/* family_host: a 3-level family for the report tests.  The parent freezes
 * a region of PAGES pages (its own mapping) named "family", then forks:
 *   child A  writes 2 pages, forks grandchild G (writes 1 page, exits 0),
 *            waits for it, and exits 3
 *   child B  writes 4 pages and leaves with _exit(5)
 *   child C  writes 1 page and waits: the parent kills it with SIGKILL
 *   child D  writes 3 pages and waits: the parent sends SIGTERM
 * Each child says "child X PID" on stdout once its writes are done; the
 * parent waits for every child, prints how each ended ("X exited N" /
 * "X signal S") and exits 0.
 *
 * family_host race: 200 more regions (a report takes a while to write),
 * then 100 children that leave with _exit at once while the parent sends
 * each a SIGTERM: a signal that lands while the report is being written
 * must neither hang the child nor leave it without a report.
 *
 * family_host dispositions: after the freeze, what sigaction says of
 * SIGTERM, a SIGUSR1 handler of its own, put back to SIG_DFL, a SIGHUP
 * handler set with sigset() (past the sigaction we interpose), a page
 * frozen with FORKSHIM_GUARD (the guard takes SIGSEGV over) and what
 * sigaction says of SIGSEGV then, then a child that raises SIGUSR1 and
 * one that faults (SIGSEGV, no core).
 *
 * Linked without the shim: it reaches the shim through forkshim_client.h
 * when it is preloaded, and without it does the same, unfrozen. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "forkshim_client.h"

#define PAGES 64

static char *region;
static long page;

static void dirty(int first, int n)
{
	for (int i = first; i < first + n; i++)
		region[i * page] ^= 1;
}

static void say(const char *who)
{
	printf("child %s %d\n", who, (int)getpid());
	fflush(stdout);
}

static void ended(const char *who, int st)
{
	if (WIFEXITED(st))
		printf("%s exited %d\n", who, WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		printf("%s signal %d\n", who, WTERMSIG(st));
}

static volatile sig_atomic_t got;

static void on_usr1(int sig)
{
	(void)sig;
	got = 1;
}

static int dispositions(const struct forkshim_api *api)
{
	char *guarded = mmap(NULL, page, PROT_READ | PROT_WRITE,
	                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct sigaction q;
	struct rlimit none = {0, 0};
	int st;
	pid_t c;

	sigaction(SIGTERM, NULL, &q);
	printf("SIGTERM default %d\n",
	       q.sa_handler == SIG_DFL && !(q.sa_flags & SA_SIGINFO));
	signal(SIGUSR1, on_usr1);
	raise(SIGUSR1);
	printf("SIGUSR1 handler ran %d\n", (int)got);
	printf("signal() gave the handler %d\n",
	       signal(SIGUSR1, SIG_DFL) == on_usr1);
	sigaction(SIGUSR1, NULL, &q);
	printf("SIGUSR1 default %d\n", q.sa_handler == SIG_DFL);
	/* sigset() sets it inside libc, past the interposed sigaction. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
	sigset(SIGHUP, on_usr1);
#pragma GCC diagnostic pop
	sigaction(SIGHUP, NULL, &q);
	printf("sigset seen %d\n", q.sa_handler == on_usr1);
	/* The guard comes in after the reports: SIGSEGV becomes its. */
	if (api != NULL && guarded != MAP_FAILED)
		api->freeze(guarded, page, "guarded", FORKSHIM_GUARD);
	sigaction(SIGSEGV, NULL, &q);
	printf("SIGSEGV default %d\n", q.sa_handler == SIG_DFL);
	if ((c = fork()) == 0) {
		raise(SIGUSR1);
		_exit(1);
	}
	waitpid(c, &st, 0);
	ended("child", st);
	if ((c = fork()) == 0) {
		setrlimit(RLIMIT_CORE, &none);
		/* A page without access, not NULL: UBSan would stop a
		 * store through NULL itself. */
		volatile char *bad = mmap(NULL, page, PROT_NONE,
		                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (bad != MAP_FAILED)
			*bad = 1;
		_exit(1);
	}
	waitpid(c, &st, 0);
	ended("segv child", st);
	return 0;
}

static int race(const struct forkshim_api *api)
{
	char *more = mmap(NULL, 200 * page, PROT_READ | PROT_WRITE,
	                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int killed = 0, exited = 0;

	if (more == MAP_FAILED)
		return 1;
	memset(more, 1, 200 * page);
	for (int i = 0; api != NULL && i < 200; i++)
		if (api->freeze(more + i * page, page, "race", 0) == 0)
			return printf("freeze failed\n"), 1;
	for (int i = 0; i < 100; i++) {
		pid_t c = fork();
		int st;

		if (c == 0)
			_exit(0);
		if (i % 2 == 0)
			usleep((useconds_t)(i * 7 % 300));
		kill(c, SIGTERM);
		waitpid(c, &st, 0);
		killed += WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM;
		exited += WIFEXITED(st) && WEXITSTATUS(st) == 0;
	}
	printf("race %d\n", killed + exited);
	return 0;
}

int main(int argc, char **argv)
{
	const struct forkshim_api *api = forkshim_client_get();
	int ready[2], st;
	pid_t a, b, c, d;
	char byte;

	page = sysconf(_SC_PAGESIZE);
	region = mmap(NULL, PAGES * page, PROT_READ | PROT_WRITE,
	              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED)
		return 1;
	memset(region, 7, PAGES * page);
	if (api != NULL && api->freeze(region, PAGES * page, "family", 0) == 0)
		return printf("freeze failed\n"), 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 1 && strcmp(argv[1], "dispositions") == 0)
		return dispositions(api);
	if (argc > 1 && strcmp(argv[1], "race") == 0)
		return race(api);
	if (pipe(ready) != 0)
		return 1;

	if ((a = fork()) == 0) {
		pid_t g;

		dirty(0, 2);
		if ((g = fork()) == 0) {
			dirty(10, 1);
			say("G");
			exit(0);
		}
		waitpid(g, &st, 0);
		ended("G", st);
		say("A");
		exit(3);
	}
	waitpid(a, &st, 0);
	ended("A", st);
	if ((b = fork()) == 0) {
		dirty(20, 4);
		say("B");
		_exit(5);
	}
	waitpid(b, &st, 0);
	ended("B", st);
	if ((c = fork()) == 0) {
		dirty(30, 1);
		say("C");
		if (write(ready[1], "c", 1) != 1)
			_exit(1);
		pause();
		_exit(1);
	}
	if (read(ready[0], &byte, 1) != 1)
		return 1;
	kill(c, SIGKILL);
	waitpid(c, &st, 0);
	ended("C", st);
	if ((d = fork()) == 0) {
		dirty(40, 3);
		say("D");
		if (write(ready[1], "d", 1) != 1)
			_exit(1);
		pause();
		_exit(1);
	}
	if (read(ready[0], &byte, 1) != 1)
		return 1;
	kill(d, SIGTERM);
	waitpid(d, &st, 0);
	ended("D", st);
	return 0;
}
