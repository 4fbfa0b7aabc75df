/* fault: the SIGSEGV handler (contract in fault.h).  Runs in a signal
 * handler: never malloc, stdio, or a lock that a thread it interrupts
 * may hold. */
#include "fault.h"

#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "audit.h"
#include "guardrec.h"
#include "handle.h"
#include "log.h"
#include "pyframes.h"
#include "shared.h"
#include "signals.h"
#include "table.h"
#include "trace.h"

#define LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define CAS(p, expected, v)                                                    \
	__atomic_compare_exchange_n((p), (expected), (v), 0, __ATOMIC_ACQ_REL, \
	                            __ATOMIC_ACQUIRE)

/* A thread that let a fault on a page it did not unprotect itself retry:
 * should the same page fault again, the protection is not ours. */
static __thread uint64_t tls_retry;
/* The address this thread last reported a violation at: a fault that
 * comes back after the host's handler returned is not reported twice. */
static __thread uint64_t tls_reported;

/* Frames from first_depth on: depth 0 is a faulting instruction, the
 * others return addresses, looked up one byte back (the call). */
static void print_frames(const char *title, const uint64_t *ips, size_t n,
                         size_t first_depth)
{
	log_error("  %s:%s", title, n ? "" : " (no backtrace)");
	for (size_t i = 0; i < n; i++) {
		char path[TRACE_PATH_MAX], name[256];
		uint64_t off, within, back = i + first_depth > 0;
		unsigned long long ip = ips[i];

		if (!trace_module(ips[i], path, sizeof(path), &off)) {
			log_error("    #%zu 0x%llx", i, ip);
			continue;
		}
		if (trace_symbol(path, off - back, name, sizeof(name), &within))
			log_error("    #%zu 0x%llx %s+0x%llx (%s+0x%llx)", i,
			          ip, name, (unsigned long long)(within + back),
			          path, (unsigned long long)off);
		else
			log_error("    #%zu 0x%llx (%s+0x%llx)", i, ip, path,
			          (unsigned long long)off);
	}
}

/* The Python stack of the writing thread, when the process is CPython. */
static void print_python(void)
{
	struct pyframe py[PYFRAMES_MAX];
	size_t n = pyframes_from_signal(py, PYFRAMES_MAX);

	if (n == 0)
		return;
	log_error("  Python stack (most recent call first):");
	for (size_t i = 0; i < n; i++)
		log_error("    %s:%u in %s()", py[i].file, py[i].line,
		          py[i].func);
}

static void report_violation(struct rec *r, forkshim_handle h, uint64_t addr,
                             void *uc)
{
	struct forkshim_info info;
	uint64_t ips[TRACE_FRAMES];
	size_t n;

	if (table_info(h, &info) < 0) {
		memset(&info, 0, sizeof(info));
		info.addr = (const void *)(uintptr_t)addr;
	}
	log_error("write to frozen region \"%s\" at 0x%llx (offset %llu of "
	          "%zu bytes, handle 0x%llx, frozen by pid %d): stopped "
	          "with SIGSEGV",
	          info.name, (unsigned long long)addr,
	          (unsigned long long)(addr - (uintptr_t)info.addr), info.len,
	          (unsigned long long)h, (int)info.owner);
	n = trace_from_signal(uc, ips, TRACE_FRAMES);
	print_python();
	print_frames("written by", ips, n, 0);
	print_frames("frozen at", r->frames, r->nframes, 1);
}

/* A write to a page protect mode guards: one report, then the fault goes
 * where it would have gone without us. */
static int claim_protect(struct rec *r, forkshim_handle h, int sig,
                         siginfo_t *si, void *uc, uint64_t pg)
{
	uint64_t addr = (uint64_t)(uintptr_t)si->si_addr;
	uint32_t i, nruns = r->nruns;

	for (i = 0; i < nruns && i < GUARD_RUNS; i++)
		if (r->runs[i].start <= pg && pg < r->runs[i].end)
			break;
	if (i == nruns || i == GUARD_RUNS)
		return 0;
	if (tls_reported != addr) {
		int idle = 0;

		/* One report at a time, whole, before anyone dies. */
		while (!CAS(&gp->reporting, &idle, 1)) {
			idle = 0;
			sched_yield();
		}
		report_violation(r, h, addr, uc);
		tls_reported = addr;
		STORE_REL(&gp->reporting, 0);
	}
	signals_chain(sig, si, uc);
	return 1;
}

static void record_write(struct rec *r, forkshim_handle h,
                         const struct forkshim_info *info, uint64_t addr,
                         uint64_t pg, void *uc)
{
	uint64_t ips[TRACE_FRAMES];
	struct pyframe py[PYFRAMES_MAX];
	struct audit_write w;

	w.handle = h;
	w.info = info;
	w.addr = addr;
	w.page_addr = pg;
	w.page = pg / page - page_down((uintptr_t)info->addr) / page;
	w.frames = ips;
	w.nframes = trace_from_signal(uc, ips, TRACE_FRAMES);
	w.frozen_at = r->frames;
	w.nfrozen = r->nframes < TRACE_FRAMES ? r->nframes : TRACE_FRAMES;
	w.py = py;
	w.npy = pyframes_from_signal(py, PYFRAMES_MAX);
	audit_first_write(&w);
}

/* The first write to an armed page of an audited child: one record, the
 * page made writable again, the write goes on. */
static int claim_audit(struct rec *r, forkshim_handle h, siginfo_t *si,
                       void *uc, uint64_t pg)
{
	uint32_t slot = handle_slot(h);
	const struct arm *m;
	uint64_t pn = pg / page;
	uint8_t *st, s;

	if (!LOAD_ACQ(&gp->armed) || slot >= arms_len)
		return 0;
	m = &arms[slot];
	if (pn < m->first_page || pn - m->first_page >= m->npages)
		return 0;
	st = &states[m->base + (pn - m->first_page)];
	s = LOAD_ACQ(st);
	if ((s & ST_MASK) == ST_NONE)
		return 0;
	if ((s & ST_MASK) == ST_ARMED &&
	    CAS(st, &s, (uint8_t)((s & ST_PROT) | ST_BUSY))) {
		struct forkshim_info info;

		if (table_info(h, &info) < 0)
			memset(&info, 0, sizeof(info));
		record_write(r, h, &info, (uint64_t)(uintptr_t)si->si_addr, pg,
		             uc);
		/* Unprotecting one page may split a mapping in three; near
		 * the limit, the whole region goes back instead (fewer
		 * mappings, no more records for it). */
		if (__atomic_sub_fetch(&gp->budget, 2, __ATOMIC_RELAXED) < 0 ||
		    mprotect((void *)(uintptr_t)pg, page, s & ST_PROT) != 0) {
			if (!__atomic_exchange_n(&gp->degraded, 1,
			                         __ATOMIC_RELAXED))
				log_error(
				    "vm.max_map_count is %ld: audit stops "
				    "recording page by page; a region is "
				    "made writable whole at its next first "
				    "write (\"%s\" now)",
				    max_maps, info.name);
			guardrec_lift(m);
			mprotect((void *)(uintptr_t)pg, page, s & ST_PROT);
		}
		STORE_REL(st, (uint8_t)((s & ST_PROT) | ST_DONE));
		tls_retry = 0;
		return 1;
	}
	/* Another thread got there first: wait for it, then retry once. */
	while ((LOAD_ACQ(st) & ST_MASK) == ST_BUSY)
		sched_yield();
	if (tls_retry == pg)
		return 0;
	tls_retry = pg;
	return 1;
}

/* A write to a shared frozen region this process maps (sealed, read-only,
 * nothing to protect or audit): one report, then the fault goes on where
 * it would have gone. */
static int claim_shared(int sig, siginfo_t *si, void *uc)
{
	uint64_t addr = (uint64_t)(uintptr_t)si->si_addr;
	struct forkshim_info info;

	if (!shared_mapped_at((uintptr_t)addr, &info))
		return 0;
	if (tls_reported != addr) {
		uint64_t ips[TRACE_FRAMES];
		int idle = 0;
		size_t n;

		while (!CAS(&gp->reporting, &idle, 1)) {
			idle = 0;
			sched_yield();
		}
		log_error("write to shared frozen region \"%s\" at 0x%llx "
		          "(offset %llu of %zu bytes, sealed, frozen by pid "
		          "%d): stopped with SIGSEGV",
		          info.name, (unsigned long long)addr,
		          (unsigned long long)(addr - (uintptr_t)info.addr),
		          info.len, (int)info.owner);
		n = trace_from_signal(uc, ips, TRACE_FRAMES);
		print_python();
		print_frames("written by", ips, n, 0);
		tls_reported = addr;
		STORE_REL(&gp->reporting, 0);
	}
	signals_chain(sig, si, uc);
	return 1;
}

static int claim(int sig, siginfo_t *si, void *uc)
{
	uint64_t addr = (uint64_t)(uintptr_t)si->si_addr, pg;
	forkshim_handle h;
	struct rec *r;

	if (si->si_code != SEGV_ACCERR)
		return 0;
	h = table_find(si->si_addr, 1);
	/* A shared region's read-only pages, the freezer's own included:
	 * reported and stopped in every process, never audited (no copy on
	 * write there). */
	if ((h == 0 || shared_is_shared(h)) && claim_shared(sig, si, uc))
		return 1;
	if (h == 0)
		return 0;
	if (recs == NULL)
		return 0;
	if (h == 0 || handle_slot(h) >= recs_cap)
		return 0;
	r = &recs[handle_slot(h)];
	if (LOAD_ACQ(&r->handle) != h)
		return 0;
	pg = page_down(addr);
	if (r->mode == REC_PROTECT)
		return claim_protect(r, h, sig, si, uc, pg);
	return claim_audit(r, h, si, uc, pg);
}

void fault_on_segv(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;

	if (!claim(sig, si, uc))
		signals_chain(sig, si, uc);
	errno = saved;
}
