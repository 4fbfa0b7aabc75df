/* procpage: the per-process page (contract in procpage.h).  Mapped by
 * init in the constructor; read and written by the table (its lock) and
 * fork (child records).  Calls log only. */
#include "procpage.h"

#include <errno.h>
#include <sys/mman.h>

#include "log.h"

struct procpage *pp;

int procpage_init(void)
{
	struct procpage *p;

	p = mmap(NULL, sizeof(*p), PROT_READ | PROT_WRITE,
	         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		log_error("cannot map the per-process page: errno %d", errno);
		return -1;
	}
	if (madvise(p, sizeof(*p), MADV_WIPEONFORK) != 0) {
		log_error("MADV_WIPEONFORK is not supported (Linux >= 4.14 is "
		          "needed): freezing is disabled");
		munmap(p, sizeof(*p));
		return -1;
	}
	p->adopted = 1;
	__atomic_store_n(&pp, p, __ATOMIC_RELEASE);
	return 0;
}
