/* old_table: what a plugin finds behind an older shim, one built before
 * the shared-region functions were appended to struct forkshim_api.
 * Preloaded before libforkshim, its forkshim_api answers with a copy of
 * the real version 1 table whose size ends after `version`, as that
 * shim's did; every function in it is the shim's own. */
#include <dlfcn.h>
#include <stddef.h>

#include "forkshim.h"

__attribute__((visibility("default"))) const struct forkshim_api *
forkshim_api(unsigned abi_version)
{
	static struct forkshim_api old;
	const struct forkshim_api *(*real)(unsigned);
	const struct forkshim_api *api;

	*(void **)&real = dlsym(RTLD_NEXT, "forkshim_api");
	api = real != NULL ? real(abi_version) : NULL;
	if (api == NULL)
		return NULL;
	old = *api;
	old.size = offsetof(struct forkshim_api, version) + sizeof(old.version);
	old.alloc = NULL;
	old.export_token = NULL;
	old.import_token = NULL;
	old.release = NULL;
	return &old;
}
