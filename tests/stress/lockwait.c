/* Signal handlers that interrupt a thread while it only waits for the
 * table lock, which another thread holds in the middle of a write.
 *
 * The writer is held inside its write deterministically: the name it
 * passes to freeze lies in a PROT_NONE page, so the shim faults on it
 * after its journal is open, and the test's SIGSEGV handler keeps the
 * writer there until the test lets it go (then makes the page readable).
 * A second thread calls freeze and waits for the lock; the test waits
 * until that thread sleeps in futex(2), and sends it SIGUSR1.  Its handler
 * freezes, forks or _Forks.  The thread does not hold the lock, so:
 *   - the handler's freeze must wait for the lock and succeed (not
 *     EDEADLK);
 *   - the handler's fork must wait for the writer to finish (its child
 *     sees the writer's region);
 *   - in a child made by _Fork (no atfork handlers, so no wait), the
 *     writer's unfinished write must be rolled back, and a freeze there
 *     works.
 * Each case runs in a forked child with an alarm, so a deadlock is
 * reported as SIGALRM, not as a stuck test. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "forkshim.h"
#include "in_child.h"

enum action { FREEZE, FORK, RAW_FORK };

static char regions[4][4096] __attribute__((aligned(4096)));
static char *name_page;
static size_t page;
static enum action action;
static volatile sig_atomic_t writer_in_fault, release_writer, handler_done;
static volatile sig_atomic_t handler_result = -1;
static volatile pid_t waiter_tid;

static void pause_ms(long ms)
{
	struct timespec ts = {ms / 1000, ms % 1000 * 1000000L};

	nanosleep(&ts, NULL);
}

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	char *a = si->si_addr;

	(void)sig;
	(void)uc;
	if (a < name_page || a >= name_page + page)
		_exit(40); /* a real crash */
	writer_in_fault = 1;
	while (!release_writer)
		pause_ms(1);
	mprotect(name_page, page, PROT_READ);
}

/* The child's verdict, from inside the handler of the thread that waited. */
static int child_check(void)
{
	forkshim_handle h;

	if (action == FORK)
		/* Made after the writer finished: its region is there. */
		return forkshim_find(regions[0], 1) != 0 ? 0 : 3;
	/* _Fork: the writer's half-done write is rolled back... */
	if (forkshim_find(regions[0], 1) != 0)
		return 4;
	/* ...and the table takes a freeze, which finds it whole. */
	h = forkshim_freeze(regions[3], 64, "child", 0);
	if (h == 0)
		return errno == EDEADLK ? 5 : 6;
	if (forkshim_find(regions[3], 64) != h ||
	    forkshim_deref(h, NULL) != regions[3])
		return 7;
	return 0;
}

static void on_usr1(int sig)
{
	forkshim_handle h;
	int status;
	pid_t pid;

	(void)sig;
	if (action == FREEZE) {
		errno = 0;
		h = forkshim_freeze(regions[2], 64, "handler", 0);
		handler_result = h != 0 ? 0 : errno;
	} else {
		pid = action == FORK ? fork() : _Fork();
		if (pid == 0)
			_exit(child_check());
		handler_result = -2;
		if (pid > 0 && waitpid(pid, &status, 0) == pid)
			handler_result = WIFEXITED(status)
			                     ? WEXITSTATUS(status)
			                     : 100 + WTERMSIG(status);
	}
	handler_done = 1;
}

static void *writer(void *arg)
{
	(void)arg;
	return (void *)(uintptr_t)forkshim_freeze(regions[0], 4096, name_page,
	                                          0);
}

static void *waiter(void *arg)
{
	(void)arg;
	waiter_tid = (pid_t)syscall(SYS_gettid);
	return (void *)(uintptr_t)forkshim_freeze(regions[1], 4096, "waiter",
	                                          0);
}

/* Whether thread tid sleeps in futex(2) (the table lock's wait). */
static int in_futex(pid_t tid)
{
	char path[64], buf[64] = {0};
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	if (read(fd, buf, sizeof(buf) - 1) < 0)
		buf[0] = '\0';
	close(fd);
	return atoi(buf) == SYS_futex;
}

/* Returns 0 when all went as it must, or a code (see explain). */
static int run(void)
{
	struct sigaction sa;
	pthread_t w, v;
	void *hw, *hv;
	int i;

	page = (size_t)sysconf(_SC_PAGESIZE);
	name_page = mmap(NULL, page, PROT_READ | PROT_WRITE,
	                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (name_page == MAP_FAILED)
		return 20;
	strcpy(name_page, "held");
	mprotect(name_page, page, PROT_NONE);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGSEGV, &sa, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);

	if (pthread_create(&w, NULL, writer, NULL) != 0)
		return 21;
	for (i = 0; i < 5000 && !writer_in_fault; i++)
		pause_ms(1);
	if (!writer_in_fault)
		return 22; /* the writer never reached the name */
	if (pthread_create(&v, NULL, waiter, NULL) != 0)
		return 21;
	for (i = 0; i < 5000 && (waiter_tid == 0 || !in_futex(waiter_tid)); i++)
		pause_ms(1);
	if (waiter_tid == 0 || !in_futex(waiter_tid))
		return 23; /* the waiter never waited for the lock */
	pthread_kill(v, SIGUSR1);
	/* The handler must wait for the writer: give it time to not. */
	for (i = 0; i < 300 && !handler_done; i++)
		pause_ms(1);
	release_writer = 1;
	pthread_join(w, &hw);
	pthread_join(v, &hv);
	if (hw == NULL || hv == NULL)
		return 24;
	if (!handler_done)
		return 25;
	return handler_result == 0 ? 0 : 30 + handler_result;
}

static int run_freeze(void)
{
	action = FREEZE;
	return run();
}

static int run_fork(void)
{
	action = FORK;
	return run();
}

static int run_raw_fork(void)
{
	action = RAW_FORK;
	return run();
}

static void check(int (*body)(void))
{
	int status = in_child_alarmed(body, 10);

	cr_assert(!WIFSIGNALED(status) || WTERMSIG(status) != SIGALRM,
	          "deadlocked (killed by the 10 s alarm)");
	cr_assert(WIFEXITED(status), "killed by signal %d", WTERMSIG(status));
	switch (WEXITSTATUS(status)) {
	case 0:
		return;
	case 22:
	case 23:
		cr_assert_fail("test harness: writer %s",
		               WEXITSTATUS(status) == 22
		                   ? "never faulted on its name"
		                   : "running but the waiter never slept");
		break;
	case 30 + EDEADLK:
		cr_assert_fail("the handler's freeze failed with EDEADLK: its "
		               "thread only waited for the lock");
		break;
	case 33:
		cr_assert_fail(
		    "the handler's fork did not wait for the writer: "
		    "its child lacks the writer's region");
		break;
	case 34:
		cr_assert_fail(
		    "a _Fork child kept the writer's half-done write");
		break;
	case 35:
		cr_assert_fail(
		    "a freeze in the _Fork child failed with EDEADLK");
		break;
	default:
		cr_assert_fail("exit %d (see run() and child_check())",
		               WEXITSTATUS(status));
	}
}

Test(lock_wait, freeze_from_a_handler_of_a_waiting_thread_waits_too,
     .timeout = 30)
{
	check(run_freeze);
}

Test(lock_wait, fork_from_a_handler_of_a_waiting_thread_waits_for_the_writer,
     .timeout = 30)
{
	check(run_fork);
}

Test(lock_wait, raw_fork_child_rolls_back_another_threads_write, .timeout = 30)
{
	check(run_raw_fork);
}
