/* interpose: resolving the real functions (contract in interpose.h).
 * Called by the start-up steps of fork, signals and report (the
 * constructor), never on a hot path; calls log only. */
#include "interpose.h"

#include <dlfcn.h>
#include <stddef.h>

#include "log.h"

/* This library's extent in memory, from its ELF header to the end of
 * its .bss: the linker defines both for each object it links. */
extern const char __ehdr_start[] __attribute__((visibility("hidden")));
extern const char _end[] __attribute__((visibility("hidden")));

/* Whether sym is one of our own definitions.  Comparing with the address
 * of our wrapper is not enough: when we are dlopen'd rather than
 * preloaded, our own reference to `fork` binds to libc's.  A range check,
 * not dladdr: dladdr also looks for the nearest symbol, a walk of the
 * whole symbol table of the object it lands in (libc's, for the real
 * functions), which made start-up's 32 resolutions cost ~3 million
 * instructions (callgrind of a process's first fork). */
static int is_ours(void *sym)
{
	return sym != NULL && (const char *)sym >= __ehdr_start &&
	       (const char *)sym < _end;
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
