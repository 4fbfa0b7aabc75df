/* forker: a shared library that forks, for forkshim doctor's library
 * lookup tests: a program that reaches fork only through it still "calls
 * fork", once the doctor finds the library where the loader would. */
#include <sys/wait.h>
#include <unistd.h>

int forker_run_child(int code)
{
	int status;
	pid_t pid = fork();

	if (pid == 0)
		_exit(code);
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
