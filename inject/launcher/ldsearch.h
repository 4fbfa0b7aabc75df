/* ldsearch: the libraries a program loads at start, found the way the
 * dynamic loader (glibc's ld.so) finds them.
 *
 * Breadth first from the program's DT_NEEDED entries; for each name: a path
 * with a '/' as is, else DT_RPATH of the requesting object and its loaders
 * (when the requester has no DT_RUNPATH), LD_LIBRARY_PATH, DT_RUNPATH,
 * /etc/ld.so.cache (read through `ldconfig -p`) and the default
 * directories, taking the first file of the program's ELF class and
 * machine.  $ORIGIN, $LIB and $PLATFORM are expanded.  Objects are shared
 * by name, SONAME and real path, as the loader shares them.  Not modelled:
 * hwcaps subdirectories, LD_PRELOAD, and libraries opened later by
 * dlopen. */
#ifndef FORKSHIM_LDSEARCH_H
#define FORKSHIM_LDSEARCH_H

#include <stdbool.h>
#include <stddef.h>

#include "elfobj.h"

struct ld_lib {
	char *name;         /* the DT_NEEDED string */
	int loader;         /* index of the object that needs it, -1: program */
	bool found;         /* false: the loader would stop with an error */
	const char *how;    /* "RPATH", "LD_LIBRARY_PATH", "RUNPATH", ... */
	struct elf_obj obj; /* when found */
};

struct ld_set {
	struct ld_lib *libs;
	size_t n;
};

/* Fills `set` with every library `program` loads at start; imports are
 * read for the same names as elfobj_read's.  Never fails: a name that
 * cannot be found is listed with found false. */
void ld_resolve(const struct elf_obj *program, const char *const *names,
                size_t n_names, struct ld_set *set);
void ld_set_free(struct ld_set *set);

#endif
