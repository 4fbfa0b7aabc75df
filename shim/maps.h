/* maps: the mappings of this process, from the text of /proc/self/maps.
 *
 * maps_each() reads the file through a stack buffer and calls fn once per
 * mapping, in address order; it returns how many lines the file had, or -1
 * when it cannot be opened.  It allocates nothing and takes no lock, so a
 * fork child (the guard's atfork child handler) and a holder of the table
 * lock (the guard's freeze hook) may call it; it opens and closes one
 * descriptor, and errno may change.  Called by guard.c only; it calls
 * nothing of the shim. */
#ifndef FORKSHIM_MAPS_H
#define FORKSHIM_MAPS_H

#include <stdint.h>

struct maps_area {
	uint64_t start, end;
	uint32_t prot; /* PROT_READ | PROT_WRITE | PROT_EXEC */
	uint32_t private_;
};

long maps_each(void (*fn)(const struct maps_area *, void *), void *arg);

#endif
