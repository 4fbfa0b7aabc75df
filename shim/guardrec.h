/* guardrec: the guard's memory, shared by the guard (guard.c, which
 * writes it: at enabling, under the table lock at each freeze and thaw,
 * and in an audited child's atfork handler) and its fault handler
 * (fault.c, which reads it, and in an audited child moves page states on).
 *
 *   recs     one record per table slot, inherited by children with the
 *            table: what the guard did to the region in that slot.  A
 *            record's handle is published last: the handler trusts a
 *            record whose handle is the one the table gives for the
 *            faulting address.
 *   gp       per process (MADV_WIPEONFORK: every child starts from zero).
 *   arms, states  an audited child's view of the records (indexed by
 *            slot) and its page states, a byte a page: the page's own
 *            protection in the low bits, the state above.
 *
 * Everything here is async-signal-safe: mprotect and atomics, no malloc,
 * no lock; errno may change (the handler keeps it). */
#ifndef FORKSHIM_GUARDREC_H
#define FORKSHIM_GUARDREC_H

#include <stddef.h>
#include <stdint.h>

#include "trace.h"

#define GUARD_RUNS 4 /* mappings of one region we protect */

enum { REC_PROTECT = 1, REC_AUDIT = 2 };

#define ST_PROT 0x07
#define ST_MASK 0x30
#define ST_NONE 0x00  /* not protected by us */
#define ST_ARMED 0x10 /* write-protected, not written yet */
#define ST_BUSY 0x20  /* a thread is recording its first write */
#define ST_DONE 0x30  /* recorded, writable again */

struct run {
	uint64_t start, end;
	uint32_t prot, pad;
};

struct rec {
	uint64_t handle; /* the live region described; 0 none */
	uint32_t mode;
	uint32_t nruns; /* protect: runs write-protected at freeze */
	struct run runs[GUARD_RUNS];
	uint32_t nframes;
	uint32_t pad;
	uint64_t frames[TRACE_FRAMES]; /* where it was frozen */
};

struct arm {
	uint64_t first_page; /* page number of state 0 */
	uint64_t npages;
	uint64_t base; /* index of state 0 in states[] */
};

struct gpage {
	int chain_lock; /* the signal chain's lock (signals_take) */
	int reporting;  /* protect: 1 while a thread writes its report */
	int armed;      /* audit: this process protected its inherited pages */
	int degraded;   /* protection stopped near vm.max_map_count */
	int64_t budget; /* audit: mappings we may still add */
};

extern struct rec *recs;
extern size_t recs_cap;
extern uint32_t recs_hi; /* slots [0, recs_hi) may hold records */
extern struct gpage *gp;
extern size_t page;
extern long max_maps;
extern struct arm *arms; /* audit, valid while gp->armed */
extern size_t arms_len;
extern uint8_t *states;
extern size_t states_len;

static inline uint64_t page_down(uint64_t a)
{
	return a & ~(uint64_t)(page - 1);
}

static inline uint64_t page_up(uint64_t a)
{
	return (a + page - 1) & ~(uint64_t)(page - 1);
}

/* Makes every still-armed page of a region writable again. */
void guardrec_lift(const struct arm *m);

#endif
