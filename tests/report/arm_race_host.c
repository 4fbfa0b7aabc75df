/* arm_race_host ROUNDS: forks of a process whose first freeze (which arms
 * its report under FORKSHIM_REPORT) is under way in another thread.
 *
 * Each round is a fresh process that starts a
 * thread making its first freeze and meanwhile forks children, up to 64,
 * until that freeze returned; each child freezes a region of its own
 * (arming its own report) and _exits.  A child that has not ended within
 * 5 s hangs (it is then killed).  Prints "hung H of ROUNDS" (rounds with
 * a hung child) and exits 0.  Reaches the shim through
 * forkshim_client.h. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "forkshim_client.h"

static const struct forkshim_api *api;
static char buf[2][4096];
static atomic_int done;

static void *first_freeze(void *arg)
{
	(void)arg;
	if (api->freeze(buf[0], 100, "first", 0) == 0)
		_exit(3);
	atomic_store(&done, 1);
	return NULL;
}

/* One round: 0 every child ended, 1 one hung. */
static int round_of_forks(void)
{
	pid_t kids[64];
	pthread_t th;
	int n = 0;

	if (pthread_create(&th, NULL, first_freeze, NULL) != 0)
		_exit(2);
	while (!atomic_load(&done) && n < 64) {
		kids[n] = fork();
		if (kids[n] == 0) {
			api->freeze(buf[1], 100, "child", 0);
			_exit(0);
		}
		if (kids[n] < 0)
			break;
		n++;
	}
	pthread_join(th, NULL);
	for (int i = 0, waited = 0; i < n; i++) {
		int st;

		while (waitpid(kids[i], &st, WNOHANG) == 0) {
			if (waited++ == 500) { /* 5 s: kill and reap the rest */
				for (int k = i; k < n; k++) {
					kill(kids[k], SIGKILL);
					waitpid(kids[k], &st, 0);
				}
				return 1;
			}
			usleep(10000);
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 5, hung = 0;

	api = forkshim_client_get();
	if (api == NULL) {
		fprintf(stderr, "arm_race_host: no shim\n");
		return 2;
	}
	for (int r = 0; r < rounds; r++) {
		pid_t top = fork();
		int st;

		if (top == 0)
			_exit(round_of_forks());
		if (top < 0 || waitpid(top, &st, 0) != top)
			return 2;
		hung += !WIFEXITED(st) || WEXITSTATUS(st) != 0;
	}
	printf("hung %d of %d\n", hung, rounds);
	return 0;
}
