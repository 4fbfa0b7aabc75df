/* rawfork: forks the way Go's runtime does, by raw system call only.
 *
 * It references no fork function (no fork, _Fork, vfork, posix_spawn or
 * clone import: only syscall), so forkshim doctor must call it "limited":
 * the children work, but visible() cannot see them.  Prints the exit
 * status its child reported, and exits 0 when that is 7. */
#include <signal.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
	long pid = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
	int status;

	if (pid == 0)
		_exit(7);
	if (pid < 0 || waitpid((pid_t)pid, &status, 0) != pid) {
		perror("rawfork");
		return 1;
	}
	printf("child exit status %d\n", WEXITSTATUS(status));
	return WIFEXITED(status) && WEXITSTATUS(status) == 7 ? 0 : 1;
}
