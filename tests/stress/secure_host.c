/* secure_host: what the shim does in a set-user-ID program.
 *
 * Links libforkshim (the dynamic linker ignores LD_PRELOAD in secure-
 * execution mode).  The test runs a set-user-ID copy of it as another
 * user, with FORKSHIM_* variables that would each show if they were read:
 * a log file to create, debug logging, a capacity of 2 regions.  Prints
 * "secure: AT_SECURE", "freezes: N" for three freezes that must all
 * succeed, "child: ok" for a forked child that derefs them, and exits 0. */
#include <stdio.h>
#include <sys/auxv.h>
#include <sys/wait.h>
#include <unistd.h>

#include "forkshim.h"

static char bufs[3][4096];

int main(void)
{
	forkshim_handle h[3];
	int frozen = 0, status;
	pid_t pid;

	alarm(20);
	printf("secure: %lu\n", getauxval(AT_SECURE));
	for (int i = 0; i < 3; i++) {
		h[i] = forkshim_freeze(bufs[i], sizeof(bufs[i]), "secure", 0);
		frozen += h[i] != 0;
	}
	printf("freezes: %d\n", frozen);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		for (int i = 0; i < 3; i++)
			if (forkshim_deref(h[i], NULL) != bufs[i])
				_exit(1);
		_exit(0);
	}
	if (pid > 0 && waitpid(pid, &status, 0) == pid && status == 0)
		printf("child: ok\n");
	for (int i = 0; i < 3; i++)
		if (h[i] != 0)
			forkshim_thaw(h[i]);
	return 0;
}
