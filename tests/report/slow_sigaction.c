/* slow_sigaction: preloaded after the shim, so that the shim's own
 * sigaction calls (it resolves them with RTLD_NEXT) come here: each one
 * that installs an action takes 1 ms more, then goes to libc's.  Arming a
 * process's report installs the shim's handlers of the fatal signals
 * under its arming lock: this holds the lock open long enough for
 * another thread's fork to land inside (arm_race_host.c). */
#include <dlfcn.h>
#include <signal.h>
#include <unistd.h>

__attribute__((visibility("default"))) int
sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	int (*real)(int, const struct sigaction *, struct sigaction *);

	*(void **)&real = dlsym(RTLD_NEXT, "sigaction");
	if (act != NULL)
		usleep(1000);
	return real(sig, act, old);
}
