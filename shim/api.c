/* api: the public functions (forkshim.h) and the function table, each
 * joined to the module that does the work; argument checks live in the
 * modules.  The top of the library: it may call any module, and none
 * calls it.  It also lists the modules init starts (init_modules).  The
 * readers (deref, find, visible, info, sharing) stay async-signal-safe and
 * lock-free: no pthread_once on their path. */
#include <errno.h>
#include <stddef.h>
#include <unistd.h>

#include "fork.h"
#include "guard.h"
#include "init.h"
#include "log.h"
#include "report.h"
#include "sharing.h"
#include "signals.h"
#include "table.h"

/* Start-up of the modules above init, in this order (init.h). */
static void start_core(void)
{
	if (fork_init() < 0)
		log_error("fork interposition is not available");
	signals_resolve();
	guard_attach();
	report_resolve();
}

static void start_config(void)
{
	guard_init();
}

const struct init_modules init_modules = {
    .load = fork_register,
    .core = start_core,
    .config = start_config,
};

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
	return INIT_VERSION;
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
