/* A signal that arrives while its thread is in the middle of fork(), made
 * deterministic.
 *
 * A pthread_atfork parent handler registered before the shim's (from
 * .preinit_array, which runs before any library's constructor) runs while
 * the shim's prepare phase still holds the table lock: it raises a signal
 * there, exactly as a timer or SIGCHLD could arrive during fork().  The
 * shim leaves the signal mask alone (issue 13: a program's atfork handlers
 * and signals must behave as without it), so the handler runs there,
 * inside fork, as it would without the shim.  Its fork works (a prefork
 * server replacing a worker from SIGCHLD does that; glibc takes no atfork
 * lock in a single-threaded process), and its freeze answers EDEADLK: the
 * hook runs before the shim's parent handler, while this thread's fork
 * holds the table lock.  Afterwards the table works.
 * Each case runs in a forked child with an alarm, so a deadlock is
 * reported as SIGALRM, not as a stuck test. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "forkshim.h"
#include "in_child.h"

enum action { NOTHING, FORK, FREEZE };

static volatile sig_atomic_t armed; /* the action for the next fork */
static enum action handler_action;
static volatile sig_atomic_t handler_ran, handler_status, handler_errno;
static volatile sig_atomic_t ran_inside; /* the handler ran inside fork */
static volatile pid_t handler_child;
static char region[8192];

static void on_usr1(int sig)
{
	forkshim_handle h;
	int status;
	pid_t pid;

	(void)sig;
	handler_ran = 1;
	if (handler_action == FORK) {
		pid = fork();
		if (pid == 0)
			_exit(forkshim_deref(forkshim_find(region, 1), NULL) ==
			              region
			          ? 0
			          : 3);
		handler_child = pid;
		handler_status = -1;
		if (pid > 0 && waitpid(pid, &status, 0) == pid)
			handler_status = status;
	} else if (handler_action == FREEZE) {
		errno = 0;
		h = forkshim_freeze(region + 4096, 64, "handler", 0);
		handler_errno = h == 0 ? errno : 0;
		if (h != 0)
			forkshim_thaw(h);
	}
}

static void parent_hook(void)
{
	if (armed) {
		armed = 0;
		raise(SIGUSR1);
		ran_inside = handler_ran;
	}
}

static void register_early(void)
{
	pthread_atfork(NULL, parent_hook, NULL);
}

__attribute__((section(".preinit_array"),
               used)) static void (*const early_hook)(void) = register_early;

/* Runs body in a forked child with a 10 s alarm; returns its wait status. */
static int in_child(int (*body)(void))
{
	return in_child_alarmed(body, 10);
}

/* Freezes the region, arms the hook with `action`, forks a child that
 * derefs the region, and returns the parent's view: 0 when every fork and
 * the handler worked, or a code. */
static int same_mask(const sigset_t *a, const sigset_t *b)
{
	for (int sig = 1; sig < NSIG; sig++)
		if (sigismember(a, sig) != sigismember(b, sig))
			return 0;
	return 1;
}

static int interrupted_fork(enum action action, pid_t *outer)
{
	sigset_t before, after;
	struct sigaction sa;
	forkshim_handle h;
	int status;
	pid_t pid;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	h = forkshim_freeze(region, 4096, "before", 0);
	if (h == 0)
		return 10;
	handler_action = action;
	if (pthread_sigmask(SIG_SETMASK, NULL, &before) != 0)
		return 10;
	armed = 1;
	pid = fork();
	if (pid == 0) {
		if (pthread_sigmask(SIG_SETMASK, NULL, &after) != 0 ||
		    !same_mask(&before, &after))
			_exit(4);
		_exit(forkshim_deref(h, NULL) == region ? 0 : 3);
	}
	if (pid < 0)
		return 11;
	*outer = pid;
	if (armed)
		return 12; /* the hook did not run: the test is broken */
	if (!handler_ran)
		return 20;
	if (!ran_inside)
		return 19;
	if (pthread_sigmask(SIG_SETMASK, NULL, &after) != 0 ||
	    !same_mask(&before, &after))
		return 21;
	if (forkshim_visible(h, pid) != 1)
		return 13;
	if (waitpid(pid, &status, 0) != pid || status != 0)
		return 14;
	return 0;
}

static int fork_in_fork(void)
{
	pid_t outer;
	int rc = interrupted_fork(FORK, &outer);

	if (rc != 0)
		return rc;
	return handler_child > 0 && handler_status == 0 ? 0 : 15;
}

static int freeze_in_fork(void)
{
	pid_t outer;
	int rc = interrupted_fork(FREEZE, &outer);

	if (rc != 0)
		return rc;
	if (handler_errno != EDEADLK)
		return 16;
	/* Once fork has returned, the same freeze works. */
	handler_action = FREEZE;
	handler_errno = -1;
	raise(SIGUSR1);
	return handler_errno == 0 ? 0 : 22;
}

static int then_the_table_works(void)
{
	forkshim_handle h;
	pid_t outer;
	int rc = interrupted_fork(FORK, &outer), status;
	pid_t pid;

	if (rc != 0)
		return rc;
	/* The lock must be free again, and its count of nested forks back
	 * to zero: a freeze, a thaw and a plain fork. */
	h = forkshim_freeze(region + 4096, 100, "after", 0);
	if (h == 0 || forkshim_thaw(h) != 0)
		return 17;
	pid = fork();
	if (pid == 0)
		_exit(0);
	if (pid < 0 || waitpid(pid, &status, 0) != pid || status != 0)
		return 18;
	return 0;
}

static const char *explain(int status)
{
	static char why[128];

	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
		return "deadlocked (killed by the 10 s alarm)";
	if (WIFSIGNALED(status)) {
		snprintf(why, sizeof(why), "killed by signal %d",
		         WTERMSIG(status));
		return why;
	}
	switch (WEXITSTATUS(status)) {
	case 12:
		return "the atfork hook never ran (test harness broken)";
	case 13:
		return "visible(h, child) is not 1 for the outer child";
	case 14:
		return "the outer child could not deref the region, or its "
		       "signal mask was not the caller's";
	case 15:
		return "the handler's child could not deref the region";
	case 16:
		return "the handler's freeze inside fork did not answer "
		       "EDEADLK";
	case 22:
		return "a handler's freeze after fork returned failed";
	case 19:
		return "the handler did not run inside fork, where raise() was "
		       "called (the shim held the signal)";
	case 20:
		return "the signal raised during fork was lost";
	case 21:
		return "fork changed the caller's signal mask";
	case 17:
		return "freeze or thaw failed afterwards";
	case 18:
		return "a plain fork failed afterwards";
	}
	snprintf(why, sizeof(why), "exit %d", WEXITSTATUS(status));
	return why;
}

Test(signal_fork, a_signal_during_fork_is_handled_there_and_may_fork,
     .timeout = 30)
{
	int status = in_child(fork_in_fork);

	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s",
	          explain(status));
}

Test(signal_fork,
     a_signal_during_fork_is_handled_there_and_freeze_answers_edeadlk,
     .timeout = 30)
{
	int status = in_child(freeze_in_fork);

	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s",
	          explain(status));
}

Test(signal_fork, table_lock_is_free_after_a_handler_forked, .timeout = 30)
{
	int status = in_child(then_the_table_works);

	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s",
	          explain(status));
}
