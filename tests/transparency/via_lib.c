/* via_lib: a program that forks only through libtp_forker.so.  Exits 0
 * when its child, made in the library, exited with 5. */
#include <stdio.h>

int forker_run_child(int code);

int main(void)
{
	int got = forker_run_child(5);

	printf("child exit status %d\n", got);
	return got == 5 ? 0 : 1;
}
