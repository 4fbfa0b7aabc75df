/* interpose: resolving the real functions (contract in interpose.h).
 * Called by the start-up steps of fork, signals and report (the
 * constructor), never on a hot path; calls log only. */
#include "interpose.h"

#include <dlfcn.h>
#include <stddef.h>

#include "log.h"

/* Whether sym is one of our own definitions.  Comparing with the address
 * of our wrapper is not enough: when we are dlopen'd rather than
 * preloaded, our own reference to `fork` binds to libc's. */
static int is_ours(void *sym)
{
	Dl_info ours, theirs;

	return sym != NULL && dladdr((void *)is_ours, &ours) &&
	       dladdr(sym, &theirs) && ours.dli_fbase == theirs.dli_fbase;
}

void *interpose_real(const char *name, enum interpose_need need)
{
	void *sym = dlsym(RTLD_NEXT, name);

	/* Loaded with dlopen, nothing may come after us: ask libc. */
	if (sym == NULL || is_ours(sym)) {
		void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);

		sym = libc != NULL ? dlsym(libc, name) : NULL;
	}
	if (is_ours(sym)) /* never call ourselves in a loop */
		sym = NULL;
	if (sym == NULL)
		log_msg(need == INTERPOSE_REQUIRED ? LOG_ERROR : LOG_DEBUG,
		        "cannot resolve the real %s", name);
	return sym;
}
