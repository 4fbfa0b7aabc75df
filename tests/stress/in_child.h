/* in_child.h: runs a test body in a forked child under an alarm, so that
 * a deadlock is reported as SIGALRM, not as a stuck test. */
#ifndef STRESS_IN_CHILD_H
#define STRESS_IN_CHILD_H

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Returns the child's wait status; body's return value is its exit code. */
static inline int in_child_alarmed(int (*body)(void), unsigned alarm_s)
{
	int status;
	pid_t pid = fork();

	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		alarm(alarm_s);
		_exit(body());
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	return status;
}

#endif
