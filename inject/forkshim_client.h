/* forkshim_client.h: header-only access to forkshim for plugins.
 *
 * A plugin never links against libforkshim.  It calls
 * forkshim_client_get() once; the result is the shim's function table when
 * libforkshim is loaded in the process (preloaded or dlopen'd RTLD_GLOBAL)
 * and provides ABI version FORKSHIM_ABI_VERSION with a table large enough
 * for every member this header knows, and NULL otherwise, in which case the
 * plugin falls back to serializing.  Link the plugin with -ldl on glibc
 * older than 2.34.  forkshim_client_has_shared() says whether the shim
 * also has the shared-region functions. */
#ifndef FORKSHIM_CLIENT_H
#define FORKSHIM_CLIENT_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_DEFAULT */
#endif
#include <dlfcn.h>
#include <stddef.h>

#include "forkshim.h"

typedef const struct forkshim_api *(*forkshim_client_api_fn)(unsigned);

/* Returns the table, or NULL (shim absent, wrong ABI, table too small). */
static inline const struct forkshim_api *forkshim_client_get(void)
{
	forkshim_client_api_fn get;
	const struct forkshim_api *api;

	*(void **)&get = dlsym(RTLD_DEFAULT, "forkshim_api");
	if (get == NULL)
		return NULL;
	api = get(FORKSHIM_ABI_VERSION);
	if (api == NULL || api->abi_version != FORKSHIM_ABI_VERSION ||
	    api->size <
	        offsetof(struct forkshim_api, version) + sizeof(api->version))
		return NULL;
	return api;
}

/* Whether the shim behind api has the shared-region functions (alloc,
 * export_token, import_token, release: SHARED.md); an older shim's table
 * ends before them, and the plugin then serializes instead. */
static inline int forkshim_client_has_shared(const struct forkshim_api *api)
{
	return api != NULL &&
	       api->size >= offsetof(struct forkshim_api, release) +
	                        sizeof(api->release);
}

#endif
