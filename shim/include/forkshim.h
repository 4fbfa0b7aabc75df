/* forkshim ABI 1: the public interface of libforkshim.
 *
 * A region of memory frozen in a process can be handed to any process forked
 * from it afterwards as a 64-bit handle, and turned back into its address
 * there.  Every function is thread-safe; forkshim_deref, forkshim_find and
 * forkshim_visible never block, never allocate and are async-signal-safe.
 * Failures return 0 / NULL / -1, set errno and change nothing.
 *
 * Plugins do not link against libforkshim: they include
 * inject/forkshim_client.h and reach the function table below at run time. */
#ifndef FORKSHIM_H
#define FORKSHIM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(FORKSHIM_BUILDING)
#define FORKSHIM_API __attribute__((visibility("default")))
#else
#define FORKSHIM_API
#endif

typedef uint64_t forkshim_handle; /* opaque; 0 is never a valid handle */

#define FORKSHIM_ABI_VERSION 1
#define FORKSHIM_NAME_MAX 64 /* including the terminating NUL */
#define FORKSHIM_GUARD 0x1u  /* freeze flag: write-protect the region */
/* Shared frozen regions (SHARED.md), appended to ABI 1. */
#define FORKSHIM_SHARED                                                        \
	0x2u /* freeze flag: the region lives in sealed shared memory */
/* freeze flag: a region for reports only (forkshim.observe() in Python: the
 * pages of a whole object, named after it): FORKSHIM_GUARD=protect leaves
 * it writable; audit records its first writes; sharing figures and
 * reports count it like any region. */
#define FORKSHIM_OBSERVE 0x4u
#define FORKSHIM_SAME_ADDRESS                                                  \
	0x1u /* import flag: map at the freezer's address or fail */
#define FORKSHIM_TOKEN_SIZE 64

#define FORKSHIM_VERSION_MAJOR 0
#define FORKSHIM_VERSION_MINOR 1
#define FORKSHIM_VERSION_PATCH 0

struct forkshim_info {
	const void *addr;
	size_t len;
	pid_t owner; /* the process that froze it */
	unsigned flags;
	unsigned freezes; /* freezes not yet thawed */
	char name[FORKSHIM_NAME_MAX];
};

struct forkshim_sharing { /* in pages */
	size_t pages;     /* pages the region touches */
	size_t resident;  /* present in memory */
	size_t shared;    /* resident and mapped by another process too */
	size_t exclusive; /* resident and mapped only here */
	size_t swapped;
};

/* EINVAL addr NULL, len 0, range wraps, unknown flag; EFAULT part of the
 * range is not mapped readable; EEXIST overlaps another frozen region
 * without being identical; ENOMEM table full; EDEADLK called from a signal
 * handler that interrupted a freeze or thaw on the same thread. */
FORKSHIM_API forkshim_handle forkshim_freeze(const void *addr, size_t len,
                                             const char *name, unsigned flags);
/* Undoes one freeze. Errors as forkshim_deref. */
FORKSHIM_API int forkshim_thaw(forkshim_handle h);
/* EBADF malformed; ENOENT frozen by an ancestor after this process's line
 * split from it; ESTALE thawed. */
FORKSHIM_API const void *forkshim_deref(forkshim_handle h, size_t *len);
/* ENOENT no frozen region wholly contains the range; EINVAL as freeze. */
FORKSHIM_API forkshim_handle forkshim_find(const void *addr, size_t len);
/* ESRCH pid is not a live child forked by this process; or as deref. */
FORKSHIM_API int forkshim_visible(forkshim_handle h, pid_t pid);
FORKSHIM_API int forkshim_info(forkshim_handle h, struct forkshim_info *out);
/* EIO pagemap unreadable; or as deref. */
FORKSHIM_API int forkshim_sharing(forkshim_handle h,
                                  struct forkshim_sharing *out);

/* A shared region's name for processes that did not inherit the table:
 * plain bytes, sent however the program likes. */
struct forkshim_token {
	unsigned char bytes[FORKSHIM_TOKEN_SIZE];
};

/* Writable shared memory, page-aligned, for len bytes; fill it, then
 * freeze it with FORKSHIM_SHARED (no copy).  Freed by forkshim_release if
 * never frozen, else at its last thaw.  EINVAL len 0 or too big, ENOMEM,
 * ENOSYS no memfd. */
FORKSHIM_API void *forkshim_alloc(size_t len, const char *name);
/* A token for a shared region that resolves here.  EINVAL private region
 * or out NULL; or as deref. */
FORKSHIM_API int forkshim_export(forkshim_handle h, struct forkshim_token *out);
/* Maps the token's region read-only; stores its length in *len.  EBADF
 * malformed or not of this family, ESTALE thawed, ENOENT owner line ended,
 * EACCES the owner's memory cannot be opened, EADDRINUSE
 * FORKSHIM_SAME_ADDRESS and the range is taken, EINVAL unknown flag. */
FORKSHIM_API const void *forkshim_import(const struct forkshim_token *tok,
                                         unsigned flags, size_t *len);
/* Undoes one import (or frees never-frozen forkshim_alloc memory). EINVAL
 * addr is neither. */
FORKSHIM_API int forkshim_release(const void *addr);

struct forkshim_api {
	unsigned abi_version; /* FORKSHIM_ABI_VERSION of the shim */
	size_t size;          /* sizeof(struct forkshim_api) in that shim */
	forkshim_handle (*freeze)(const void *addr, size_t len,
	                          const char *name, unsigned flags);
	int (*thaw)(forkshim_handle h);
	const void *(*deref)(forkshim_handle h, size_t *len);
	forkshim_handle (*find)(const void *addr, size_t len);
	int (*visible)(forkshim_handle h, pid_t pid);
	int (*info)(forkshim_handle h, struct forkshim_info *out);
	int (*sharing)(forkshim_handle h, struct forkshim_sharing *out);
	const char *(*version)(void);
	/* shared frozen regions (SHARED.md); export is a C++ keyword */
	void *(*alloc)(size_t len, const char *name);
	int (*export_token)(forkshim_handle h, struct forkshim_token *out);
	const void *(*import_token)(const struct forkshim_token *tok,
	                            unsigned flags, size_t *len);
	int (*release)(const void *addr);
	/* later versions append here */
};

/* The table for abi_version; NULL with ENOSYS when not provided. */
FORKSHIM_API const struct forkshim_api *forkshim_api(unsigned abi_version);
/* "MAJOR.MINOR.PATCH" */
FORKSHIM_API const char *forkshim_version(void);

#ifdef __cplusplus
}
#endif

#endif
