/* guardrec: the guard's records and page states (contract in
 * guardrec.h).  No malloc, no lock. */
#include "guardrec.h"

#include <sys/mman.h>

#define LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define STORE_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)

struct rec *recs;
size_t recs_cap;
uint32_t recs_hi;
struct gpage *gp;
size_t page;
long max_maps;
struct arm *arms;
size_t arms_len;
uint8_t *states;
size_t states_len;

void guardrec_lift(const struct arm *m)
{
	uint8_t *st = states + m->base;

	for (uint64_t i = 0; i < m->npages;) {
		uint8_t s = LOAD(&st[i]);
		uint64_t j = i + 1;

		if ((s & ST_MASK) != ST_ARMED) {
			i++;
			continue;
		}
		while (j < m->npages && LOAD(&st[j]) == s)
			j++;
		mprotect((void *)(uintptr_t)((m->first_page + i) * page),
		         (j - i) * page, s & ST_PROT);
		for (uint64_t k = i; k < j; k++)
			STORE_REL(&st[k], (uint8_t)((s & ST_PROT) | ST_DONE));
		i = j;
	}
}
