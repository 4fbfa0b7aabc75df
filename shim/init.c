/* init: start-up (contract in init.h).  Normal context only (a
 * constructor, or the first entry point called); errno is kept. */
#include "init.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"
#include "forkshim.h"
#include "hot.h"
#include "log.h"
#include "table.h"

static pthread_once_t once_core = PTHREAD_ONCE_INIT;
static pthread_once_t once_config = PTHREAD_ONCE_INIT;
static int initialised;

static void init_core(void)
{
	int saved = errno;

	table_configure(CONFIG_DEFAULT_REGIONS);
	init_modules.core();
	errno = saved;
}

/* A .preinit_array function (a sanitizer runtime, say) may call fork or
 * sigaction before libc has the environment. */
static void init_config(void)
{
	int saved = errno;

	config_load();
	table_configure(config.max_regions);
	init_modules.config();
	log_debug("forkshim %s loaded, %zu regions", INIT_VERSION,
	          config.max_regions);
	__atomic_store_n(&initialised, 1, __ATOMIC_RELEASE);
	errno = saved;
}

/* Init runs at the first use now, in the program's own flow: a signal
 * handler that forks or freezes on the thread inside it would wait for
 * its own pthread_once (found by the signal1 stress).  The asynchronous
 * signals wait until it is done, once per process; the synchronous ones
 * stay open (blocked, a fault would kill instead of reaching a handler). */
static __attribute__((noinline, cold)) void init_now(void)
{
	sigset_t set, saved;

	sigfillset(&set);
	sigdelset(&set, SIGSEGV);
	sigdelset(&set, SIGBUS);
	sigdelset(&set, SIGILL);
	sigdelset(&set, SIGFPE);
	sigdelset(&set, SIGTRAP);
	sigdelset(&set, SIGSYS);
	pthread_sigmask(SIG_BLOCK, &set, &saved);
	pthread_once(&once_core, init_core);
	if (environ != NULL)
		pthread_once(&once_config, init_config);
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
}

/* Hot: every fork and wait wrapper calls it first (fork.c, HOT). */
FORKSHIM_HOT void forkshim_ensure_init(void)
{
	if (!__atomic_load_n(&initialised, __ATOMIC_ACQUIRE))
		init_now();
}

/* Whether the environment asks for something at load: any FORKSHIM_*
 * variable (compared inline: strncmp would be a page of libc's that
 * /bin/true, say, never runs).  The guard's handler must be in before the
 * first fault, the log reports configuration errors at start-up, and
 * every value is copied now, before the host may reuse its environment
 * block for a process title (nginx, postgres, setproctitle). */
static int wanted_at_load(void)
{
	static const char prefix[] = "FORKSHIM_";

	for (char **e = environ; e != NULL && *e != NULL; e++) {
		size_t i = 0;

		while (prefix[i] != '\0' && (*e)[i] == prefix[i])
			i++;
		if (prefix[i] == '\0')
			return 1;
	}
	return 0;
}

/* DT_FINI (-Wl,-fini=forkshim_fini, shim/CMakeLists.txt).  crti's _fini
 * does nothing either, but it sits after the whole of .text, on a page
 * of its own that every process would fault in at exit only to return;
 * this one sits beside the constructor (issue 13: start-up of /bin/true,
 * 56.4 minor faults with _fini, 55.4 with this, 55.5 with an empty
 * preloaded library). */
__attribute__((section(".text.startup"))) void forkshim_fini(void)
{
}

/* A process that never freezes and never forks pays what an empty
 * preloaded library pays: the constructor reads the environment and
 * writes nothing; every entry point initialises on its first call. */
__attribute__((constructor)) static void forkshim_constructor(void)
{
	if (wanted_at_load())
		forkshim_ensure_init();
}
