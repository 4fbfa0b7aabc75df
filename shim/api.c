/* The public functions: argument checks live in the modules, this file
 * joins them and starts the library. */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <unistd.h>

#include "config.h"
#include "fork.h"
#include "guard.h"
#include "init.h"
#include "log.h"
#include "procpage.h"
#include "report.h"
#include "sharing.h"
#include "table.h"

#define STR2(x) #x
#define STR(x) STR2(x)

static pthread_once_t once_core = PTHREAD_ONCE_INIT;
static pthread_once_t once_config = PTHREAD_ONCE_INIT;
static int initialised;

/* What needs no environment: the real symbols, the procpage, the atfork
 * handlers, and a table of the default size. */
static void init_core(void)
{
	int saved = errno;

	procpage_init();
	table_configure(CONFIG_DEFAULT_REGIONS);
	if (fork_init() < 0)
		log_error("fork interposition is not available");
	guard_resolve();
	report_resolve();
	errno = saved;
}

/* What reads the environment, once libc has it: a .preinit_array function
 * (a sanitizer runtime, say) may call fork or sigaction before. */
static void init_config(void)
{
	int saved = errno;

	config_load();
	table_configure(config.max_regions);
	guard_init();
	log_debug("forkshim %s loaded, %zu regions", forkshim_version(),
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

FORKSHIM_API forkshim_handle forkshim_freeze(const void *addr, size_t len,
                                             const char *name, unsigned flags)
{
	forkshim_handle h;

	forkshim_ensure_init();
	h = table_freeze(addr, len, name, flags);
	if (h != 0)
		report_arm();
	return h;
}

FORKSHIM_API int forkshim_thaw(forkshim_handle h)
{
	forkshim_ensure_init();
	return table_thaw(h);
}

/* The three readers must stay async-signal-safe: no pthread_once here
 * (the table answers EBADF / ENOENT until it is ready). */
FORKSHIM_API const void *forkshim_deref(forkshim_handle h, size_t *len)
{
	return table_deref(h, len);
}

FORKSHIM_API forkshim_handle forkshim_find(const void *addr, size_t len)
{
	return table_find(addr, len);
}

FORKSHIM_API int forkshim_visible(forkshim_handle h, pid_t pid)
{
	uint64_t fseq;

	if (table_fseq(h, &fseq) < 0)
		return -1;
	return fork_visible(fseq, pid);
}

FORKSHIM_API int forkshim_info(forkshim_handle h, struct forkshim_info *out)
{
	if (out == NULL) {
		errno = EINVAL;
		return -1;
	}
	return table_info(h, out);
}

FORKSHIM_API int forkshim_sharing(forkshim_handle h,
                                  struct forkshim_sharing *out)
{
	size_t len;
	const void *addr;

	if (out == NULL) {
		errno = EINVAL;
		return -1;
	}
	addr = table_deref(h, &len);
	if (addr == NULL)
		return -1;
	return sharing_count(addr, len, out);
}

FORKSHIM_API const char *forkshim_version(void)
{
	return STR(FORKSHIM_VERSION_MAJOR) "." STR(
	    FORKSHIM_VERSION_MINOR) "." STR(FORKSHIM_VERSION_PATCH);
}

static const struct forkshim_api api_v1 = {
    .abi_version = FORKSHIM_ABI_VERSION,
    .size = sizeof(struct forkshim_api),
    .freeze = forkshim_freeze,
    .thaw = forkshim_thaw,
    .deref = forkshim_deref,
    .find = forkshim_find,
    .visible = forkshim_visible,
    .info = forkshim_info,
    .sharing = forkshim_sharing,
    .version = forkshim_version,
};

FORKSHIM_API const struct forkshim_api *forkshim_api(unsigned abi_version)
{
	if (abi_version != 1) {
		errno = ENOSYS;
		return NULL;
	}
	return &api_v1;
}
