/* init: start-up (contract in init.h).  Normal context only (a
 * constructor, or the first entry point called); errno is kept. */
#include "init.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <unistd.h>

#include "config.h"
#include "forkshim.h"
#include "log.h"
#include "procpage.h"
#include "table.h"

static pthread_once_t once_core = PTHREAD_ONCE_INIT;
static pthread_once_t once_config = PTHREAD_ONCE_INIT;
static int initialised;

static void init_core(void)
{
	int saved = errno;

	procpage_init();
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

void forkshim_ensure_init(void)
{
	if (__atomic_load_n(&initialised, __ATOMIC_ACQUIRE))
		return;
	pthread_once(&once_core, init_core);
	if (environ != NULL)
		pthread_once(&once_config, init_config);
}

__attribute__((constructor)) static void forkshim_constructor(void)
{
	forkshim_ensure_init();
}
