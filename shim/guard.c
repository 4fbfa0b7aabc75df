#include "guard.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "audit.h"
#include "config.h"
#include "handle.h"
#include "init.h"
#include "interpose.h"
#include "log.h"
#include "report.h"
#include "table.h"
#include "trace.h"

#define LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define STORE_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define CAS(p, expected, v)                                                    \
	__atomic_compare_exchange_n((p), (expected), (v), 0, __ATOMIC_ACQ_REL, \
	                            __ATOMIC_ACQUIRE)

#define GUARD_RUNS 4 /* mappings of one region we protect */
#define ALTSTACK_SIZE (64u << 10)

enum { REC_PROTECT = 1, REC_AUDIT = 2 };

/* An audited child's page states, a byte a page: the page's own protection
 * in the low bits, the state above. */
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

/* One per table slot, inherited by children with the table.  handle is
 * published last: the handler trusts a record whose handle is the one the
 * table gives for the faulting address. */
struct rec {
	uint64_t handle; /* the live region described; 0 none */
	uint32_t mode;
	uint32_t nruns; /* protect: runs write-protected at freeze */
	struct run runs[GUARD_RUNS];
	uint32_t nframes;
	uint32_t pad;
	uint64_t frames[TRACE_FRAMES]; /* where it was frozen */
};

/* An audited child's view of a record (indexed by slot, made at arming). */
struct arm {
	uint64_t first_page; /* page number of state 0 */
	uint64_t npages;
	uint64_t base; /* index of state 0 in states[] */
};

/* Per process: MADV_WIPEONFORK, so every child starts from zero. */
struct gpage {
	int chain_lock;
	int reporting;  /* protect: 1 while a thread writes its report */
	int armed;      /* audit: this process protected its inherited pages */
	int degraded;   /* protection stopped near vm.max_map_count */
	int64_t budget; /* audit: mappings we may still add */
};

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);
typedef sighandler_t (*signal_fn)(int, sighandler_t);

int guard_on;
static int enable_state; /* 0 not yet, 1 on, -1 failed */
static int installed;
static sigaction_fn real_sigaction;
static signal_fn real_signal, real_sysv_signal;

static struct rec *recs;
static size_t recs_cap;
static uint32_t recs_hi; /* slots [0, recs_hi) may hold records */
static struct gpage *gp;
static size_t page;
static long max_maps;
static struct arm *arms; /* audit, valid while gp->armed */
static size_t arms_len;
static uint8_t *states;
static size_t states_len;

/* The action the host believes it installed for SIGSEGV: two copies, the
 * current one named by chain_cur; chain_seq counts the switches so that a
 * reader can tell it read a copy that was being rewritten. */
static struct sigaction chain_act[2];
static uint32_t chain_cur, chain_seq;

/* A thread that let a fault on a page it did not unprotect itself retry:
 * should the same page fault again, the protection is not ours. */
static __thread uint64_t tls_retry;
/* The address this thread last reported a violation at: a fault that
 * comes back after the host's handler returned is not reported twice. */
static __thread uint64_t tls_reported;

static uint64_t page_down(uint64_t a)
{
	return a & ~(uint64_t)(page - 1);
}

static uint64_t page_up(uint64_t a)
{
	return (a + page - 1) & ~(uint64_t)(page - 1);
}

static long map_reserve(void)
{
	return max_maps / 8 > 64 ? max_maps / 8 : 64;
}

/* ---- /proc/self/maps ---- */

struct area {
	uint64_t start, end;
	uint32_t prot;
	uint32_t private_;
};

static const char *parse_hex(const char *s, uint64_t *v)
{
	*v = 0;
	for (;; s++) {
		unsigned d;

		if (*s >= '0' && *s <= '9')
			d = (unsigned)(*s - '0');
		else if (*s >= 'a' && *s <= 'f')
			d = (unsigned)(*s - 'a' + 10);
		else
			return s;
		*v = *v << 4 | d;
	}
}

static int parse_area(const char *line, struct area *a)
{
	const char *s = parse_hex(line, &a->start);

	if (*s != '-')
		return -1;
	s = parse_hex(s + 1, &a->end);
	if (s[0] != ' ' || !s[1] || !s[2] || !s[3] || !s[4])
		return -1;
	a->prot = (s[1] == 'r' ? PROT_READ : 0) |
	          (s[2] == 'w' ? PROT_WRITE : 0) |
	          (s[3] == 'x' ? PROT_EXEC : 0);
	a->private_ = s[4] == 'p';
	return 0;
}

/* Calls fn for each mapping; returns how many there are, or -1.  No
 * malloc: a fork child and a lock holder may call it. */
static long maps_each(void (*fn)(const struct area *, void *), void *arg)
{
	char buf[8192];
	size_t have = 0;
	long lines = 0;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	for (;;) {
		ssize_t r = read(fd, buf + have, sizeof(buf) - 1 - have);
		char *line = buf, *nl;

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		have += (size_t)r;
		buf[have] = '\0';
		while ((nl = memchr(line, '\n', have - (size_t)(line - buf)))) {
			struct area a;

			*nl = '\0';
			if (parse_area(line, &a) == 0)
				fn(&a, arg);
			lines++;
			line = nl + 1;
		}
		have -= (size_t)(line - buf);
		memmove(buf, line, have);
		if (have == sizeof(buf) - 1)
			have = 0; /* a line longer than the buffer: drop it */
	}
	close(fd);
	return lines;
}

/* Whether a mapping is one we write-protect: private and writable. */
static int protectable(const struct area *a)
{
	return a->private_ && (a->prot & PROT_WRITE) && (a->prot & PROT_READ);
}

struct collect {
	uint64_t start, end;
	struct run runs[GUARD_RUNS];
	uint32_t n;
	int overflow;
};

static void collect_runs(const struct area *a, void *arg)
{
	struct collect *c = arg;
	uint64_t s = a->start > c->start ? a->start : c->start;
	uint64_t e = a->end < c->end ? a->end : c->end;

	if (s >= e || !protectable(a))
		return;
	if (c->n > 0 && c->runs[c->n - 1].end == s &&
	    c->runs[c->n - 1].prot == a->prot) {
		c->runs[c->n - 1].end = e;
		return;
	}
	if (c->n == GUARD_RUNS) {
		c->overflow = 1;
		return;
	}
	c->runs[c->n++] = (struct run){s, e, a->prot, 0};
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

/* ---- the chained action ---- */

static void chain_lock(sigset_t *saved)
{
	sigset_t all;

	/* No handler of this thread can run while we hold the lock. */
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, saved);
	while (__atomic_exchange_n(&gp->chain_lock, 1, __ATOMIC_ACQUIRE))
		sched_yield();
}

static void chain_unlock(const sigset_t *saved)
{
	STORE_REL(&gp->chain_lock, 0);
	sigprocmask(SIG_SETMASK, saved, NULL);
}

/* Under the lock: the new action becomes current. */
static void chain_set(const struct sigaction *act)
{
	uint32_t next = LOAD(&chain_cur) ^ 1;

	__atomic_fetch_add(&chain_seq, 1, __ATOMIC_ACQ_REL);
	chain_act[next] = *act;
	STORE_REL(&chain_cur, next);
	__atomic_fetch_add(&chain_seq, 1, __ATOMIC_ACQ_REL);
}

static void chain_get(struct sigaction *out)
{
	for (;;) {
		uint32_t seq = LOAD_ACQ(&chain_seq);

		*out = chain_act[LOAD_ACQ(&chain_cur)];
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (!(seq & 1) && LOAD(&chain_seq) == seq)
			return;
		sched_yield();
	}
}

/* What sigaction(SIGSEGV, act, old) does once our handler is in. */
static int chain_swap(const struct sigaction *act, struct sigaction *old)
{
	sigset_t saved;
	struct sigaction prev;

	chain_lock(&saved);
	prev = chain_act[LOAD(&chain_cur)];
	if (act != NULL)
		chain_set(act);
	chain_unlock(&saved);
	if (old != NULL)
		*old = prev;
	return 0;
}

/* The default action of sig, from inside its handler: SIG_DFL back, then
 * a fault (SEGV, BUS, ILL, FPE raised by an instruction) comes back when
 * the handler returns and kills as it would have without us; anything
 * else is raised again, pending until the handler unblocks it.  Also the
 * reports' fatal-signal handler's last step (report.c). */
void guard_die_default(int sig, const siginfo_t *si)
{
	struct sigaction dfl;
	sigset_t unblock;

	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	real_sigaction(sig, &dfl, NULL);
	if (si != NULL && si->si_code > 0 && si->si_code != SI_KERNEL &&
	    (sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE))
		return;
	syscall(SYS_tgkill, syscall(SYS_getpid), syscall(SYS_gettid), sig);
	sigemptyset(&unblock);
	sigaddset(&unblock, sig);
	pthread_sigmask(SIG_UNBLOCK, &unblock, NULL);
}

/* Hands the signal to the host's handler as the kernel would have. */
static void chain(int sig, siginfo_t *si, void *uc)
{
	struct sigaction a;
	sigset_t mask, saved;

	chain_get(&a);
	if (!(a.sa_flags & SA_SIGINFO) && a.sa_handler == SIG_IGN) {
		if (si->si_code <= 0)
			return;         /* sent by a process: ignored */
		a.sa_handler = SIG_DFL; /* a fault cannot be ignored */
	}
	if (!(a.sa_flags & SA_SIGINFO) && a.sa_handler == SIG_DFL) {
		report_fatal(sig);
		guard_die_default(sig, si);
		return;
	}
	if (a.sa_flags & SA_RESETHAND) {
		struct sigaction dfl;
		sigset_t s;

		memset(&dfl, 0, sizeof(dfl));
		dfl.sa_handler = SIG_DFL;
		chain_lock(&s);
		chain_set(&dfl);
		chain_unlock(&s);
	}
	/* The mask the kernel would have set for it. */
	mask = ((ucontext_t *)uc)->uc_sigmask;
	sigorset(&mask, &mask, &a.sa_mask);
	if (!(a.sa_flags & SA_NODEFER))
		sigaddset(&mask, sig);
	else
		sigdelset(&mask, sig);
	sigprocmask(SIG_SETMASK, &mask, &saved);
	if (a.sa_flags & SA_SIGINFO)
		a.sa_sigaction(sig, si, uc);
	else
		a.sa_handler(sig);
	sigprocmask(SIG_SETMASK, &saved, NULL);
}

/* ---- the handler ---- */

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
	chain(sig, si, uc);
	return 1;
}

/* Makes every still-armed page of a region writable again. */
static void lift_region(const struct arm *m)
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

static void record_write(struct rec *r, forkshim_handle h,
                         const struct forkshim_info *info, uint64_t addr,
                         uint64_t pg, void *uc)
{
	uint64_t ips[TRACE_FRAMES];
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
			lift_region(m);
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

static int claim(int sig, siginfo_t *si, void *uc)
{
	uint64_t addr = (uint64_t)(uintptr_t)si->si_addr, pg;
	forkshim_handle h;
	struct rec *r;

	if (si->si_code != SEGV_ACCERR || recs == NULL)
		return 0;
	h = table_find(si->si_addr, 1);
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

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;

	if (!claim(sig, si, uc))
		chain(sig, si, uc);
	errno = saved;
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

static int install(void)
{
	struct sigaction sa, prev;
	sigset_t saved;
	int r;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	/* Nothing interrupts the handler: a nested fault on a guarded page
	 * would find SIGSEGV blocked. */
	sigfillset(&sa.sa_mask);
	chain_lock(&saved);
	r = real_sigaction(SIGSEGV, &sa, &prev);
	if (r == 0) {
		report_release(SIGSEGV, &prev);
		chain_act[0] = prev;
		STORE(&chain_cur, 0);
		STORE_REL(&installed, 1);
	}
	chain_unlock(&saved);
	return r;
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
	if (config.secure || real_sigaction == NULL)
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
	give_altstack(p + recs_len + map_len + page);
	if (install() != 0) {
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

void guard_resolve(void)
{
	*(void **)&real_sigaction =
	    interpose_real("sigaction", INTERPOSE_REQUIRED);
	*(void **)&real_signal = interpose_real("signal", INTERPOSE_OPTIONAL);
	*(void **)&real_sysv_signal =
	    interpose_real("sysv_signal", INTERPOSE_OPTIONAL);
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

	r->nruns = 0;
	c.start = page_up(a);
	c.end = page_down(a + len);
	c.n = 0;
	c.overflow = 0;
	if (c.start >= c.end || gp->degraded)
		return;
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
	memcpy(r->runs, c.runs, sizeof(c.runs));
	r->nruns = done;
}

void guard_frozen(forkshim_handle h, const void *addr, size_t len,
                  unsigned flags)
{
	int protect = (flags & FORKSHIM_GUARD) || config.guard == GUARD_PROTECT;
	uint32_t slot = handle_slot(h);
	struct rec *r;
	struct forkshim_info info;

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

void guard_thawing(forkshim_handle h, const void *addr, size_t len)
{
	uint32_t slot = handle_slot(h);
	struct rec *r;

	(void)addr;
	(void)len;
	if (recs == NULL || slot >= recs_cap)
		return;
	r = &recs[slot];
	if (LOAD(&r->handle) != h)
		return;
	if (r->mode == REC_PROTECT) {
		for (uint32_t i = 0; i < r->nruns && i < GUARD_RUNS; i++)
			mprotect((void *)(uintptr_t)r->runs[i].start,
			         r->runs[i].end - r->runs[i].start,
			         (int)r->runs[i].prot);
	} else if (LOAD(&gp->armed) && slot < arms_len &&
	           arms[slot].npages != 0) {
		lift_region(&arms[slot]);
		arms[slot].npages = 0;
	}
	STORE_REL(&r->handle, 0);
}

/* ---- audit: arming a child (atfork child handler: one thread) ---- */

struct area_list {
	struct area *a;
	size_t n, cap;
};

static void push_area(const struct area *a, void *arg)
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
			const struct area *a = &l.a[i];
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

/* ---- interposed: sigaction and signal ---- */

#define EXPORT __attribute__((visibility("default")))
/* A sanitizer runtime's start-up reaches these wrappers before our
 * constructor (it installs its handlers through the next sigaction: ours),
 * when no code it instruments may run yet: TSan crashes at the first
 * function entry, ASan fails a CHECK.  So they are not instrumented, and
 * until init has resolved the real functions they look them up alone and
 * pass through (no handler of ours is in before init). */
#define NO_SANITIZE                                                            \
	__attribute__((no_sanitize("address", "thread", "undefined")))

NO_SANITIZE static void *real_fn(void **real, const char *name)
{
	void *f = LOAD_ACQ(real);

	if (f == NULL)
		f = dlsym(RTLD_NEXT, name);
	if (f == NULL) { /* dlopen'd, nothing after us: init asks libc */
		forkshim_ensure_init();
		f = LOAD_ACQ(real);
	}
	return f;
}

EXPORT NO_SANITIZE int sigaction(int sig, const struct sigaction *act,
                                 struct sigaction *old)
{
	int r;
	sigaction_fn f =
	    (sigaction_fn)real_fn((void **)&real_sigaction, "sigaction");

	if (f == NULL) {
		errno = ENOSYS;
		return -1;
	}
	if (report_armed() && report_sigaction(sig, act, old, &r))
		return r;
	if (sig != SIGSEGV || !LOAD_ACQ(&installed))
		return f(sig, act, old);
	return chain_swap(act, old);
}

EXPORT NO_SANITIZE int __sigaction(int sig, const struct sigaction *act,
                                   struct sigaction *old)
{
	return sigaction(sig, act, old);
}

static sighandler_t chain_signal(int sig, sighandler_t handler, int flags)
{
	struct sigaction act, old;

	report_signal_action(&act, sig, handler, flags);
	chain_swap(&act, &old);
	return old.sa_handler; /* a union with sa_sigaction */
}

/* BSD semantics, as glibc's signal(): restart, the signal blocked. */
EXPORT NO_SANITIZE sighandler_t signal(int sig, sighandler_t handler)
{
	sighandler_t old;
	signal_fn f = (signal_fn)real_fn((void **)&real_signal, "signal");

	if (f == NULL) {
		errno = ENOSYS;
		return SIG_ERR;
	}
	if (report_armed() && report_signal(sig, handler, SA_RESTART, &old))
		return old;
	if (sig != SIGSEGV || !LOAD_ACQ(&installed))
		return f(sig, handler);
	return chain_signal(sig, handler, SA_RESTART);
}

EXPORT NO_SANITIZE sighandler_t bsd_signal(int sig, sighandler_t handler)
{
	return signal(sig, handler);
}

EXPORT NO_SANITIZE sighandler_t ssignal(int sig, sighandler_t handler)
{
	return signal(sig, handler);
}

/* System V semantics: one shot, not blocked. */
EXPORT NO_SANITIZE sighandler_t sysv_signal(int sig, sighandler_t handler)
{
	sighandler_t old;
	signal_fn f =
	    (signal_fn)real_fn((void **)&real_sysv_signal, "sysv_signal");

	if (f == NULL) {
		errno = ENOSYS;
		return SIG_ERR;
	}
	if (report_armed() &&
	    report_signal(sig, handler, SA_RESETHAND | SA_NODEFER, &old))
		return old;
	if (sig != SIGSEGV || !LOAD_ACQ(&installed))
		return f(sig, handler);
	return chain_signal(sig, handler, SA_RESETHAND | SA_NODEFER);
}

EXPORT NO_SANITIZE sighandler_t __sysv_signal(int sig, sighandler_t handler)
{
	return sysv_signal(sig, handler);
}
