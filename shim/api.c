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
#include "shared.h"
#include "sharing.h"
#include "signals.h"
#include "table.h"
#include "unmap.h"

/* This process uses forkshim: its first fork makes the family directory
 * (shared.h).  One relaxed store, async-signal-safe. */
#define STORE_USED() __atomic_store_n(&shared_used, 1, __ATOMIC_RELAXED)

/* Start-up of the modules above init, in this order (init.h). */
static void start_core(void)
{
	if (fork_init() < 0)
		log_error("fork interposition is not available");
	signals_resolve();
	guard_attach();
	shared_attach();
	report_resolve();
	unmap_resolve();
}

static void start_config(void)
{
	guard_init();
	report_configure();
}

const struct init_modules init_modules = {
    .core = start_core,
    .config = start_config,
};

FORKSHIM_API forkshim_handle forkshim_freeze(const void *addr, size_t len,
                                             const char *name, unsigned flags)
{
	forkshim_handle h;

	forkshim_ensure_init();
	STORE_USED();
	if (flags & FORKSHIM_SHARED)
		h = shared_freeze(addr, len, name, flags);
	else
		h = table_freeze(addr, len, name, flags);
	if (h != 0)
		report_arm();
	return h;
}

FORKSHIM_API int forkshim_thaw(forkshim_handle h)
{
	forkshim_ensure_init();
	STORE_USED();
	int r = table_thaw(h); /* shared regions: shared.c's table hook */

	if (r == 0)
		shared_thawed(h);
	return r;
}

/* The three readers must stay async-signal-safe: no pthread_once here
 * (the table answers EBADF / ENOENT until it is ready). */
FORKSHIM_API const void *forkshim_deref(forkshim_handle h, size_t *len)
{
	const void *p = table_deref(h, len);

	/* A shared region an ancestor froze after our birth: mapped here
	 * now, so this process's report lists it. */
	if (p == NULL && errno == ENOENT) {
		p = shared_deref_late(h, len);
		if (p != NULL)
			report_mapped();
	}
	return p;
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
	STORE_USED();
	if (table_info(h, out) == 0)
		return 0;
	if (errno != ENOENT || shared_info_late(h, out) != 0)
		return -1;
	report_mapped(); /* as deref: mapped here now */
	return 0;
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
	addr = forkshim_deref(h, &len);
	if (addr == NULL)
		return -1;
	return sharing_count(addr, len, out);
}

FORKSHIM_API void *forkshim_alloc(size_t len, const char *name)
{
	void *p;

	forkshim_ensure_init();
	STORE_USED();
	p = shared_alloc(len, name);
	if (p != NULL)
		report_arm(); /* its children forked before the freeze too */
	return p;
}

FORKSHIM_API int forkshim_export(forkshim_handle h, struct forkshim_token *out)
{
	forkshim_ensure_init();
	STORE_USED();
	return shared_export(h, out);
}

FORKSHIM_API const void *forkshim_import(const struct forkshim_token *tok,
                                         unsigned flags, size_t *len)
{
	const void *p;

	forkshim_ensure_init();
	STORE_USED();
	p = shared_import(tok, flags, len);
	if (p != NULL)
		report_arm(); /* an importer maps it: its report says so */
	return p;
}

FORKSHIM_API int forkshim_release(const void *addr)
{
	forkshim_ensure_init();
	return shared_release(addr);
}

/* Not a sign of use by itself: the shim's own start-up logs it. */
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
    .alloc = forkshim_alloc,
    .export_token = forkshim_export,
    .import_token = forkshim_import,
    .release = forkshim_release,
};

FORKSHIM_API const struct forkshim_api *forkshim_api(unsigned abi_version)
{
	if (abi_version != 1) {
		errno = ENOSYS;
		return NULL;
	}
	/* A plugin asks first, then registers its atfork handlers: ours go in
	 * now, so that theirs run their prepare phase before ours takes the
	 * table lock and their parent phase after ours frees it (fork.h). */
	forkshim_ensure_init();
	STORE_USED();
	return &api_v1;
}
