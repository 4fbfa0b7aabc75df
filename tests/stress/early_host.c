/* early_host: the shim reached before libc has its environment.
 *
 * Links libforkshim.  A function in .preinit_array (which runs before any
 * library's constructor, libc's included: clang's ASan and other runtimes
 * start there) calls sigaction, fork's and the guard's neighbour in the
 * shim's export list.  The FORKSHIM_* environment must still be read: run
 * with FORKSHIM_MAX_REGIONS=2, the third freeze must fail with ENOMEM.
 * Prints "freezes: N errno E" and exits 0. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>

#include "forkshim.h"

static char bufs[3][64];

static void early(void)
{
	struct sigaction old;

	sigaction(SIGUSR2, NULL, &old);
}

__attribute__((section(".preinit_array"),
               used)) static void (*const early_hook)(void) = early;

int main(void)
{
	int frozen = 0, err = 0;

	for (int i = 0; i < 3; i++) {
		errno = 0;
		if (forkshim_freeze(bufs[i], sizeof(bufs[i]), NULL, 0) != 0)
			frozen++;
		else
			err = errno;
	}
	printf("freezes: %d errno %d\n", frozen, err);
	return 0;
}
