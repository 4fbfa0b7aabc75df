/* guard: enabling the guard and write-protecting frozen pages (contract
 * in guard.h).  Its fault handler is fault.c, its memory guardrec.c, the
 * SIGSEGV disposition signals.c's. */
#include "guard.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "audit.h"
#include "config.h"
#include "fault.h"
#include "guardrec.h"
#include "handle.h"
#include "log.h"
#include "maps.h"
#include "pyframes.h"
#include "signals.h"
#include "table.h"
#include "trace.h"
#include "unmap.h"

#define LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)

#define ALTSTACK_SIZE (64u << 10)

static int guard_on;
static int enable_state; /* 0 not yet, 1 on, -1 failed */

static long map_reserve(void)
{
	return max_maps / 8 > 64 ? max_maps / 8 : 64;
}

/* Whether a mapping is one we write-protect: private and writable. */
static int protectable(const struct maps_area *a)
{
	return a->private_ && (a->prot & PROT_WRITE) && (a->prot & PROT_READ);
}

/* Whether the area a, from address at on, continues the mapping of run r
 * (where r ends, or anywhere inside it): same protection and kind, same
 * file at the matching offset (anonymous memory has none). */
static int continues(const struct run *r, const struct maps_area *a,
                     uint32_t prot, uint64_t at)
{
	if (!a->private_ || a->prot != prot || a->dev != r->dev ||
	    a->inode != r->inode)
		return 0;
	return (a->dev == 0 && a->inode == 0) ||
	       a->offset + (at - a->start) == r->offset + (at - r->start);
}

static int same_mapping(const struct run *r, const struct maps_area *a,
                        uint64_t at)
{
	return r->end == at && continues(r, a, r->prot, at);
}

struct collect {
	uint64_t start, end;
	struct run runs[GUARD_RUNS];
	uint32_t n;
	int overflow;
};

static void collect_runs(const struct maps_area *a, void *arg)
{
	struct collect *c = arg;
	uint64_t s = a->start > c->start ? a->start : c->start;
	uint64_t e = a->end < c->end ? a->end : c->end;

	if (s >= e || !protectable(a))
		return;
	if (c->n > 0 && same_mapping(&c->runs[c->n - 1], a, s)) {
		c->runs[c->n - 1].end = e;
		return;
	}
	if (c->n == GUARD_RUNS) {
		c->overflow = 1;
		return;
	}
	c->runs[c->n++] = (struct run){
	    s, e, a->prot, 0, a->offset + (s - a->start), a->dev, a->inode, 0};
}

static void degrade(long mappings, const char *name)
{
	if (gp->degraded)
		return;
	gp->degraded = 1;
	log_error("vm.max_map_count is %ld and this process maps %ld areas: "
	          "forkshim stops write-protecting frozen pages here (region "
	          "\"%s\" and later ones stay unguarded) so that the "
	          "program's own mappings do not fail",
	          max_maps, mappings, name);
}

/* ---- enabling ---- */

static long read_max_map_count(void)
{
	char buf[32];
	int fd = open("/proc/sys/vm/max_map_count", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	long v = 0;

	if (fd >= 0)
		close(fd);
	for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++)
		v = v * 10 + (buf[i] - '0');
	return v > 0 ? v : 65530;
}

/* An alternate signal stack for this thread, unless it has one: a fault
 * from a stack overflow can still be handled (and chained).  p is
 * ALTSTACK_SIZE bytes above a page made PROT_NONE. */
static void give_altstack(char *p)
{
	stack_t old, ss;

	if (sigaltstack(NULL, &old) == 0 && !(old.ss_flags & SS_DISABLE))
		return;
	mprotect(p - page, page, PROT_NONE);
	ss.ss_sp = p;
	ss.ss_size = ALTSTACK_SIZE;
	ss.ss_flags = 0;
	sigaltstack(&ss, NULL);
}

static void arm_child(void);

/* All the guard's memory is one reservation, so that enabling it late
 * (the first flagged freeze) fills no small hole the host left in its
 * address space: the records, the module map, an alternate stack above a
 * guard page, and the per-process page. */
static int enable(void)
{
	size_t recs_len, map_len, gp_len, total;
	char *p;

	if (enable_state != 0)
		return enable_state > 0 ? 0 : -1;
	enable_state = -1;
	if (config.secure || !signals_ready())
		return -1;
	page = (size_t)sysconf(_SC_PAGESIZE);
	recs_cap = config.max_regions;
	recs_len = page_up(recs_cap * sizeof(struct rec));
	map_len = page_up(trace_map_size());
	gp_len = page_up(sizeof(struct gpage));
	total = recs_len + map_len + page + ALTSTACK_SIZE + gp_len;
	p = mmap(NULL, total, PROT_READ | PROT_WRITE,
	         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		log_error("guard: cannot reserve its memory (errno %d): guard "
		          "off",
		          errno);
		return -1;
	}
	gp = (struct gpage *)(p + total - gp_len);
	if (madvise(gp, gp_len, MADV_WIPEONFORK) != 0) {
		log_error("guard: MADV_WIPEONFORK is not available: guard "
		          "off");
		munmap(p, total);
		gp = NULL;
		return -1;
	}
	recs = (struct rec *)p;
	max_maps = read_max_map_count();
	if (trace_init(p + recs_len) < 0)
		log_warn("guard: libunwind cannot unwind here: reports come "
		         "without backtraces");
	pyframes_init();
	give_altstack(p + recs_len + map_len + page);
	if (signals_take(SIGSEGV, fault_on_segv, &gp->chain_lock) != 0) {
		log_error("guard: cannot install the SIGSEGV handler (errno "
		          "%d): guard off",
		          errno);
		return -1;
	}
	if (config.guard == GUARD_AUDIT) {
		audit_configure(config.report_dir);
		if (config.report_dir == NULL)
			log_warn(
			    "FORKSHIM_GUARD=audit without FORKSHIM_REPORT: "
			    "audit records go to the log");
		pthread_atfork(NULL, NULL, arm_child);
		atexit(audit_finish);
	}
	enable_state = 1;
	STORE_REL(&guard_on, 1);
	log_debug("guard on (%s), vm.max_map_count %ld",
	          config.guard == GUARD_AUDIT     ? "audit"
	          : config.guard == GUARD_PROTECT ? "protect"
	                                          : "flagged regions",
	          max_maps);
	return 0;
}

void guard_init(void)
{
	if (config.guard != GUARD_OFF && !config.secure)
		enable();
}

/* ---- table hooks (under the table lock) ---- */

static void protect_region(struct rec *r, const char *name, uint64_t a,
                           size_t len)
{
	struct collect c;
	long lines;
	uint32_t done = 0;
	uint64_t since;

	r->nruns = 0;
	c.start = page_up(a);
	c.end = page_down(a + len);
	c.n = 0;
	c.overflow = 0;
	if (c.start >= c.end || gp->degraded)
		return;
	/* From here on an unmapping of the region is noted (unmap.h): a
	 * thaw must not restore the protection on what replaced it. */
	unmap_watch();
	since = unmap_now();
	lines = maps_each(collect_runs, &c);
	if (lines < 0)
		return;
	if (lines + 2 * (long)c.n > max_maps - map_reserve()) {
		degrade(lines, name);
		return;
	}
	if (c.overflow)
		log_info("region \"%s\" spans more than %d writable mappings: "
		         "only the first %d are write-protected",
		         name, GUARD_RUNS, GUARD_RUNS);
	for (; done < c.n; done++) {
		struct run *run = &c.runs[done];

		if (mprotect((void *)(uintptr_t)run->start,
		             run->end - run->start,
		             (int)(run->prot & ~(uint32_t)PROT_WRITE)) != 0) {
			if (errno == ENOMEM)
				degrade(lines, name);
			break;
		}
	}
	for (uint32_t i = 0; i < done; i++)
		c.runs[i].since = since;
	memcpy(r->runs, c.runs, sizeof(c.runs));
	r->nruns = done;
}

/* After a new region entered the table: protect mode write-protects the
 * pages wholly inside it (those of private writable mappings) and keeps
 * the freezing backtrace; audit mode keeps the backtrace only. */
static void frozen(forkshim_handle h, const void *addr, size_t len,
                   unsigned flags)
{
	/* An observed region is write-protected only when flagged so. */
	int protect =
	    (flags & FORKSHIM_GUARD) ||
	    (config.guard == GUARD_PROTECT && !(flags & FORKSHIM_OBSERVE));
	uint32_t slot = handle_slot(h);
	struct rec *r;
	struct forkshim_info info;

	/* While the guard is off and the region is not flagged: no cost. */
	if (!LOAD(&guard_on) && !(flags & FORKSHIM_GUARD))
		return;
	if (config.secure || (!protect && config.guard != GUARD_AUDIT))
		return;
	if (enable() < 0 || slot >= recs_cap)
		return;
	r = &recs[slot];
	STORE_REL(&r->handle, 0);
	r->mode = protect ? REC_PROTECT : REC_AUDIT;
	r->nruns = 0;
	trace_refresh();
	r->nframes = (uint32_t)trace_here(r->frames, TRACE_FRAMES);
	if (protect) {
		if (table_info(h, &info) < 0)
			info.name[0] = '\0';
		protect_region(r, info.name, (uintptr_t)addr, len);
	}
	if (slot >= recs_hi)
		recs_hi = slot + 1;
	STORE_REL(&r->handle, h);
}

/* ---- thaw: the protection back, on what is still ours ---- */

#define PIECES 32

/* The parts of a run no noted unmapping has touched. */
struct pieces {
	uint64_t s[PIECES], e[PIECES];
	uint32_t n;
	int overflow;
};

static void cut(uint64_t start, uint64_t end, void *arg)
{
	struct pieces *p = arg;

	for (uint32_t i = 0; i < p->n; i++) {
		uint64_t s = p->s[i], e = p->e[i];

		if (end <= s || start >= e)
			continue;
		if (start > s && end < e) { /* a hole: two pieces */
			if (p->n == PIECES) {
				p->overflow = 1;
				continue;
			}
			p->s[p->n] = end;
			p->e[p->n] = e;
			p->n++;
			p->e[i] = start;
		} else if (start > s) {
			p->e[i] = start;
		} else if (end < e) {
			p->s[i] = end;
		} else {
			p->s[i] = p->e[i]; /* all of it */
		}
	}
}

struct restore {
	const struct run *r;
	uint64_t s, e;
};

/* For each area inside the piece that is still the run's mapping, as the
 * guard left it (read-only now), the original protection back. */
static void restore_area(const struct maps_area *a, void *arg)
{
	const struct restore *x = arg;
	uint64_t s = a->start > x->s ? a->start : x->s;
	uint64_t e = a->end < x->e ? a->end : x->e;

	if (s >= e ||
	    !continues(x->r, a, x->r->prot & ~(uint32_t)PROT_WRITE, s))
		return;
	mprotect((void *)(uintptr_t)s, e - s, (int)x->r->prot);
}

/* Puts the run's protection back where the mapping is still the one the
 * guard protected: not unmapped or replaced through the watched calls
 * since (unmap.h), and in /proc/self/maps still private, of the same file
 * at the same offset (or anonymous), with the protection the guard left.
 * A newcomer, or pages the program protected otherwise, stay as they
 * are.  When the unmap log cannot tell, /proc/self/maps alone decides. */
static void restore_run(const struct run *r)
{
	struct pieces p = {{r->start}, {r->end}, 1, 0};

	if (unmap_since(r->since, cut, &p) != 0 || p.overflow) {
		p.s[0] = r->start;
		p.e[0] = r->end;
		p.n = 1;
	}
	for (uint32_t i = 0; i < p.n; i++) {
		struct restore x = {r, p.s[i], p.e[i]};

		if (x.s < x.e)
			maps_each(restore_area, &x);
	}
}

/* Before a region leaves the table at its last thaw: the original
 * protection goes back. */
static void thawing(forkshim_handle h, const void *addr, size_t len,
                    unsigned flags)
{
	uint32_t slot = handle_slot(h);
	struct rec *r;

	(void)addr;
	(void)len;
	(void)flags;
	if (!LOAD(&guard_on) || recs == NULL || slot >= recs_cap)
		return;
	r = &recs[slot];
	if (LOAD(&r->handle) != h)
		return;
	if (r->mode == REC_PROTECT) {
		for (uint32_t i = 0; i < r->nruns && i < GUARD_RUNS; i++)
			restore_run(&r->runs[i]);
	} else if (LOAD(&gp->armed) && slot < arms_len &&
	           arms[slot].npages != 0) {
		guardrec_lift(&arms[slot]);
		arms[slot].npages = 0;
	}
	STORE_REL(&r->handle, 0);
}

static const struct table_hook hook = {
    .frozen = frozen,
    .thawing = thawing,
};

void guard_attach(void)
{
	if (table_hook_add(&hook) < 0)
		log_error("guard: no room for its table hook: guard off");
}

/* ---- audit: arming a child (atfork child handler: one thread) ---- */

struct area_list {
	struct maps_area *a;
	size_t n, cap;
};

static void push_area(const struct maps_area *a, void *arg)
{
	struct area_list *l = arg;

	if (l->n < l->cap)
		l->a[l->n++] = *a;
}

/* Index of the first area ending after addr. */
static size_t first_area_after(const struct area_list *l, uint64_t addr)
{
	size_t lo = 0, hi = l->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (l->a[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The live audited regions and their page spans, in slot order. */
static int next_audited(uint32_t *slot, forkshim_handle *h, uint64_t *first,
                        uint64_t *last)
{
	for (; *slot < recs_hi; (*slot)++) {
		struct rec *r = &recs[*slot];
		size_t len;
		const void *a;

		*h = LOAD_ACQ(&r->handle);
		if (*h == 0 || r->mode != REC_AUDIT)
			continue;
		a = table_deref(*h, &len);
		if (a == NULL)
			continue;
		*first = page_up((uintptr_t)a) / page;
		*last = page_down((uintptr_t)a + len) / page;
		if (*first < *last)
			return 1;
	}
	return 0;
}

static void arm_child(void)
{
	struct area_list l = {NULL, 0, 0};
	uint64_t total = 0, first, last, base = 0;
	forkshim_handle h;
	uint32_t slot;
	long lines;
	int64_t budget;
	int saved = errno;

	audit_child();
	if (states != NULL)
		munmap(states, states_len);
	if (arms != NULL)
		munmap(arms, arms_len * sizeof(*arms));
	states = NULL;
	arms = NULL;
	arms_len = 0;
	for (slot = 0; next_audited(&slot, &h, &first, &last); slot++)
		total += last - first;
	if (total == 0)
		goto out;
	l.cap = (size_t)max_maps + 1024;
	l.a = mmap(NULL, l.cap * sizeof(*l.a), PROT_READ | PROT_WRITE,
	           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	states = mmap(NULL, total, PROT_READ | PROT_WRITE,
	              MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	arms = mmap(NULL, recs_hi * sizeof(*arms), PROT_READ | PROT_WRITE,
	            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (l.a == MAP_FAILED || states == MAP_FAILED || arms == MAP_FAILED) {
		log_error("audit: cannot map its page states: this child is "
		          "not audited");
		states = NULL;
		arms = NULL;
		goto out;
	}
	states_len = total;
	arms_len = recs_hi;
	lines = maps_each(push_area, &l);
	budget = max_maps - map_reserve() - lines;
	for (slot = 0; next_audited(&slot, &h, &first, &last); slot++) {
		struct arm *m = &arms[slot];

		m->first_page = first;
		m->npages = last - first;
		m->base = base;
		base += m->npages;
		for (size_t i = first_area_after(&l, first * page);
		     i < l.n && l.a[i].start < last * page; i++) {
			const struct maps_area *a = &l.a[i];
			uint64_t s =
			    a->start > first * page ? a->start : first * page;
			uint64_t e =
			    a->end < last * page ? a->end : last * page;

			if (!protectable(a))
				continue;
			if (budget < 2) {
				struct forkshim_info info;

				if (table_info(h, &info) < 0)
					info.name[0] = '\0';
				degrade(lines, info.name);
				break;
			}
			if (mprotect((void *)(uintptr_t)s, e - s,
			             (int)(a->prot & ~(uint32_t)PROT_WRITE)) !=
			    0)
				continue;
			budget -= 2;
			memset(states + m->base + (s / page - first),
			       (int)(ST_ARMED | a->prot), (e - s) / page);
		}
	}
	gp->budget = budget;
	gp->armed = 1;
out:
	if (l.a != NULL && l.a != MAP_FAILED)
		munmap(l.a, l.cap * sizeof(*l.a));
	errno = saved;
}
