/* unmap: the watched munmap, mremap and mmap (contract in unmap.h).
 * Called by the program (the wrappers), by api (resolve) and the guard
 * (watch, now, since); calls interpose and table's reader table_overlaps
 * only.  The wrappers allocate nothing, take no lock, are not
 * instrumented, and keep errno as the real call left it. */
#include "unmap.h"

#include <errno.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "interpose.h"
#include "table.h"

#define LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define STORE_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)

typedef void *(*mmap_fn)(void *, size_t, int, int, int, off_t);
typedef int (*munmap_fn)(void *, size_t);
typedef void *(*mremap_fn)(void *, size_t, size_t, int, ...);

static mmap_fn real_mmap, real_mmap64;
static munmap_fn real_munmap;
static mremap_fn real_mremap;

/* A sanitizer runtime's start-up may map memory through these before it
 * can run instrumented code (as with sigaction, signals.c). */
#define NO_SANITIZE                                                            \
	__attribute__((no_sanitize("address", "thread", "undefined")))

static int watching;
static uint64_t head; /* ranges noted so far */
static struct {
	uint64_t seq; /* its number + 1 once written, 0 while written */
	uint64_t start, end;
} ring[UNMAP_LOG];

void unmap_resolve(void)
{
	*(void **)&real_mmap = interpose_real("mmap", INTERPOSE_OPTIONAL);
	*(void **)&real_mmap64 = interpose_real("mmap64", INTERPOSE_OPTIONAL);
	*(void **)&real_munmap = interpose_real("munmap", INTERPOSE_OPTIONAL);
	*(void **)&real_mremap = interpose_real("mremap", INTERPOSE_OPTIONAL);
}

void unmap_watch(void)
{
	STORE_REL(&watching, 1);
}

uint64_t unmap_now(void)
{
	return LOAD_ACQ(&head);
}

NO_SANITIZE static void note(uint64_t start, uint64_t len)
{
	uint64_t end = start + len, i;
	long page;

	if (!LOAD_ACQ(&watching) || len == 0 || end < start)
		return;
	page = sysconf(_SC_PAGESIZE);
	end = (end + (uint64_t)page - 1) & ~((uint64_t)page - 1);
	if (!table_overlaps(start, end))
		return;
	i = __atomic_fetch_add(&head, 1, __ATOMIC_ACQ_REL);
	STORE_REL(&ring[i % UNMAP_LOG].seq, 0);
	STORE(&ring[i % UNMAP_LOG].start, start);
	STORE(&ring[i % UNMAP_LOG].end, end);
	STORE_REL(&ring[i % UNMAP_LOG].seq, i + 1);
}

int unmap_since(uint64_t since, void (*fn)(uint64_t, uint64_t, void *),
                void *arg)
{
	uint64_t h = LOAD_ACQ(&head);

	if (h - since > UNMAP_LOG)
		return -1;
	for (uint64_t i = since; i < h; i++) {
		uint64_t seq = LOAD_ACQ(&ring[i % UNMAP_LOG].seq);
		uint64_t s = LOAD(&ring[i % UNMAP_LOG].start);
		uint64_t e = LOAD(&ring[i % UNMAP_LOG].end);

		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (seq != i + 1 || LOAD(&ring[i % UNMAP_LOG].seq) != seq)
			return -1;
		fn(s, e, arg);
	}
	return 0;
}

/* ---- the wrappers ---- */

#define EXPORT __attribute__((visibility("default")))

NO_SANITIZE static void *do_mmap(mmap_fn real, void *addr, size_t len, int prot,
                                 int flags, int fd, off_t off)
{
	void *p;
	int saved;

	if (real != NULL)
		p = real(addr, len, prot, flags, fd, off);
	else /* before start-up */
		p = (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
	if (p != MAP_FAILED && (flags & MAP_FIXED) &&
	    !(flags & MAP_FIXED_NOREPLACE)) {
		saved = errno;
		note((uint64_t)(uintptr_t)p, len);
		errno = saved;
	}
	return p;
}

EXPORT NO_SANITIZE void *mmap(void *addr, size_t len, int prot, int flags,
                              int fd, off_t off)
{
	return do_mmap(LOAD(&real_mmap), addr, len, prot, flags, fd, off);
}

EXPORT NO_SANITIZE void *mmap64(void *addr, size_t len, int prot, int flags,
                                int fd, off_t off)
{
	return do_mmap(LOAD(&real_mmap64), addr, len, prot, flags, fd, off);
}

EXPORT NO_SANITIZE int munmap(void *addr, size_t len)
{
	munmap_fn real = LOAD(&real_munmap);
	int r = real != NULL ? real(addr, len)
	                     : (int)syscall(SYS_munmap, addr, len);

	if (r == 0) {
		int saved = errno;

		note((uint64_t)(uintptr_t)addr, len);
		errno = saved;
	}
	return r;
}

EXPORT NO_SANITIZE void *mremap(void *old, size_t old_len, size_t new_len,
                                int flags, ...)
{
	mremap_fn real = LOAD(&real_mremap);
	void *want = NULL, *p;
	va_list ap;
	int saved;

	if (flags & MREMAP_FIXED) {
		va_start(ap, flags);
		want = va_arg(ap, void *);
		va_end(ap);
	}
	if (real != NULL)
		p = real(old, old_len, new_len, flags, want);
	else
		p = (void *)syscall(SYS_mremap, old, old_len, new_len, flags,
		                    want);
	if (p == MAP_FAILED)
		return p;
	saved = errno;
	if (p != old)
		note((uint64_t)(uintptr_t)old, old_len); /* moved away */
	else if (new_len < old_len)
		note((uint64_t)(uintptr_t)old + new_len, old_len - new_len);
	if (flags & MREMAP_FIXED)
		note((uint64_t)(uintptr_t)p, new_len); /* what it replaced */
	errno = saved;
	return p;
}
