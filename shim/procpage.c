/* procpage: the per-process page (contract in procpage.h).  Mapped by
 * init in the constructor; read and written by the table (its lock) and
 * fork (child records, every child born), read by audit (was it our
 * child?).  Calls log only. */
#include "procpage.h"

#include <errno.h>
#include <sys/mman.h>

#include "hot.h"
#include "log.h"

struct procpage *pp;

int procpage_ensure(void)
{
	struct procpage *p, *none = NULL;
	int saved = errno;

	if (__atomic_load_n(&pp, __ATOMIC_ACQUIRE) != NULL)
		return 0;
	p = mmap(NULL, sizeof(*p), PROT_READ | PROT_WRITE,
	         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		log_error("cannot map the per-process page: errno %d", errno);
		errno = saved;
		return -1;
	}
	if (madvise(p, sizeof(*p), MADV_WIPEONFORK) != 0) {
		log_error("MADV_WIPEONFORK is not supported (Linux >= 4.14 is "
		          "needed): freezing is disabled");
		munmap(p, sizeof(*p));
		errno = saved;
		return -1;
	}
	p->adopted = 1;
	if (!__atomic_compare_exchange_n(&pp, &none, p, 0, __ATOMIC_ACQ_REL,
	                                 __ATOMIC_ACQUIRE))
		munmap(p, sizeof(*p)); /* another thread's is in */
	errno = saved;
	return 0;
}

FORKSHIM_HOT void procpage_child_born(int32_t pid)
{
	struct procpage *pg = procpage();
	uint32_t i;

	if (pg == NULL)
		return;
	i = __atomic_fetch_add(&pg->ever_n, 1, __ATOMIC_ACQ_REL);
	__atomic_store_n(&pg->ever[i % PROC_EVER_MAX], pid, __ATOMIC_RELEASE);
}

int procpage_was_child(int32_t pid)
{
	struct procpage *pg = procpage();
	uint32_t n;

	if (pg == NULL || pid <= 0)
		return 0;
	n = __atomic_load_n(&pg->ever_n, __ATOMIC_ACQUIRE);
	for (uint32_t i = 0; i < n && i < PROC_EVER_MAX; i++)
		if (__atomic_load_n(&pg->ever[i], __ATOMIC_RELAXED) == pid)
			return 1;
	return 0;
}
