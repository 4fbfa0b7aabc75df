/* trace: backtraces (libunwind, UNW_LOCAL_ONLY), the modules their
 * addresses fall in, and the functions those addresses name.
 *
 * trace_init() runs once, when the guard is enabled, in normal context: it
 * asks libunwind for per-thread caches and unwinds once, so that its
 * one-time set-up (which takes a lock) is done before any signal handler
 * unwinds, and it builds the module map.  trace_refresh() rebuilds the map
 * when a module was loaded or unloaded since (the guard calls it at each
 * guarded freeze and in each audited child).  Callers of trace_init and
 * trace_refresh serialise them (the table lock, or a single-threaded
 * child); trace_here allocates nothing but is not meant for handlers.
 *
 * Async-signal-safe (no malloc, no locks; open, pread, readlink, close):
 * trace_from_signal, trace_module and trace_symbol.  trace_from_signal
 * steps with libunwind, which looks unwind tables up through
 * dl_iterate_phdr; trace_module reads the module map, and on a miss (a
 * module loaded after the last refresh) walks dl_iterate_phdr the same
 * way.  Module offsets are ELF virtual addresses (address minus the
 * module's load bias): what `addr2line -e MODULE OFFSET` takes. */
#ifndef FORKSHIM_TRACE_H
#define FORKSHIM_TRACE_H

#include <stddef.h>
#include <stdint.h>

#define TRACE_PATH_MAX 256
#define TRACE_FRAMES 24

/* Bytes of zeroed, private memory trace_init wants for its module map
 * (the caller maps it with its own, so that the map lands in no small
 * hole of the host's address space). */
size_t trace_map_size(void);
/* 0, or -1 when libunwind cannot unwind here (the guard still works,
 * without backtraces). */
int trace_init(void *map_memory);
void trace_refresh(void);

/* The caller's backtrace, innermost first, without the shim's own frames:
 * frame 0 is a return address into the code that called the shim. */
size_t trace_here(uint64_t *ips, size_t max);

/* The backtrace of the code a signal interrupted, from the handler's
 * ucontext: frame 0 is the instruction that faulted. */
size_t trace_from_signal(void *ucontext, uint64_t *ips, size_t max);

/* The module holding ip: copies its path and stores ip's offset in it;
 * 1, or 0 when ip is in no known module. */
int trace_module(uint64_t ip, char *path, size_t size, uint64_t *offset);

/* The function of the ELF file `path` that contains virtual address
 * `offset`, from its .symtab, else its .dynsym: copies the name and stores
 * how far into the function offset is; 1, or 0 when none does. */
int trace_symbol(const char *path, uint64_t offset, char *name, size_t size,
                 uint64_t *within);

/* Whether path names a module loaded in this process now (the main
 * program by its /proc/self/exe path): copies the process's own name for
 * it into out; 1, or 0.  Normal context (dl_iterate_phdr's lock). */
int trace_known_module(const char *path, char *out, size_t size);

#endif
