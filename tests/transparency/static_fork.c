/* static_fork: built with `cc -static` by the doctor test (when libc.a is
 * there), to be called "cannot": a static program has no dynamic loader
 * to read LD_PRELOAD, although it calls fork. */
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
	int status;
	pid_t pid = fork();

	if (pid == 0)
		_exit(0);
	return pid > 0 && waitpid(pid, &status, 0) == pid ? 0 : 1;
}
