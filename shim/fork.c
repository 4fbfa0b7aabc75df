/* fork: the fork and wait wrappers, the atfork phases and the child
 * records (contract in fork.h).  Called by the program (the wrappers), by
 * glibc's fork (the atfork phases) and by api (visible, init); calls
 * table's fork phases, report_reaped, init, interpose, procpage (child
 * records, every child born) and log.
 * The fork path allocates nothing and takes no lock but the table's
 * (prepare to parent); errno is kept around everything we add. */
#include "fork.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <pty.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hot.h"
#include "init.h"
#include "interpose.h"
#include "log.h"
#include "procpage.h"
#include "report.h"
#include "shared.h"
#include "table.h"

#define LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define CAS(p, expected, v)                                                    \
	__atomic_compare_exchange_n((p), (expected), (v), 0, __ATOMIC_ACQ_REL, \
	                            __ATOMIC_RELAXED)

/* The code a child runs on its way out (the fork wrappers' return, _exit)
 * is marked hot, and so is the parent's side of a fork and a wait (the
 * atfork phases, the child records, the wait wrappers, and table.c's and
 * procpage.c's parts of them): a child faults in every page of ours it
 * executes, fork copies no page-table entry of a file mapping.
 * Where that code lies matters too.  The kernel's fault-around maps, from
 * a fault, the 16 pages of its 64 KiB-aligned window, or, in the first
 * window of a mapping that starts unaligned, the 16 pages from the
 * mapping's start.  A _Fork child binding _exit lazily first faults on
 * our symbol tables (the library's first pages), a fork() child on fork's
 * page as it returns from the kernel.  With fork 2 pages after the tables
 * (as it was), a 64 KiB boundary of the random load address fell between
 * them in 2 placements in 16 and cost the fork() child one fault more
 * (about 0.1 per fork on average, 20-30 us each here).  hot.ld puts all
 * the hot functions at the start of the library, before the tables: a
 * fork() child's first fault is on the mapping's first page too, and maps
 * the tables and the rest of the hot code with it in every placement.
 * transparency_fork checks that layout. */
#define HOT FORKSHIM_HOT

/* A record is pid << BIRTH_BITS | birth point; 0 is free.  Records live in
 * the procpage, so a child starts with none and the parent's writes after
 * a fork fault nothing in. */
#define BIRTH_BITS 40
#define BIRTH_MASK ((1ull << BIRTH_BITS) - 1)

typedef pid_t (*fork_fn)(void);
typedef pid_t (*forkpty_fn)(int *, char *, const struct termios *,
                            const struct winsize *);
typedef pid_t (*wait_fn)(int *);
typedef pid_t (*waitpid_fn)(pid_t, int *, int);
typedef pid_t (*wait3_fn)(int *, int, struct rusage *);
typedef pid_t (*wait4_fn)(pid_t, int *, int, struct rusage *);
typedef int (*waitid_fn)(idtype_t, id_t, siginfo_t *, int);

static fork_fn real_fork;
static forkpty_fn real_forkpty;
static wait_fn real_wait;
static waitpid_fn real_waitpid;
static wait3_fn real_wait3;
static wait4_fn real_wait4;
static waitid_fn real_waitid;

/* ---- fork ---- */

#define EXPORT __attribute__((visibility("default")))

static HOT void fork_enter(void);
static HOT void fork_leave(pid_t pid);

EXPORT HOT pid_t fork(void)
{
	pid_t pid;

	fork_enter();
	if (real_fork == NULL) {
		errno = ENOSYS;
		return -1;
	}
	pid = real_fork();
	if (pid == 0)
		return 0; /* the child touches nothing of ours */
	fork_leave(pid);
	return pid;
}

/* ---- records ---- */

static pid_t record_pid(uint64_t r)
{
	return (pid_t)(r >> BIRTH_BITS);
}

static int child_alive(pid_t pid)
{
	siginfo_t si;
	int saved = errno, r;

	si.si_pid = 0;
	/* WNOWAIT: asks, reaps nothing; ECHILD once it has been reaped. */
	r = real_waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT);
	errno = saved;
	return r == 0;
}

/* Frees pid's records; returns the newest birth point among them, 0 if it
 * had none.  A pid recycled after its child was reaped unseen may have an
 * older record beside the newest: both go. */
static HOT uint64_t records_forget(pid_t pid)
{
	struct procpage *pg = procpage();
	uint32_t used = LOAD_ACQ(&pg->kids_used);
	uint64_t birth = 0;

	for (uint32_t i = 0; i < used; i++) {
		uint64_t r = LOAD(&pg->kids[i]);

		if (r != 0 && record_pid(r) == pid &&
		    CAS(&pg->kids[i], &r, 0)) {
			__atomic_fetch_sub(&pg->kids_live, 1, __ATOMIC_RELAXED);
			if ((r & BIRTH_MASK) > birth)
				birth = r & BIRTH_MASK;
		}
	}
	return birth;
}

/* Frees the records of children that have been reaped without us seeing
 * it (SIGCHLD ignored, SA_NOCLDWAIT, or reaped through a call we do not
 * wrap).  Runs when the live count reaches kids_sweep, which it then sets
 * to twice what is left: each record is asked about once per as many
 * forks as there are records, O(1) amortised per fork whatever the
 * program does with SIGCHLD. */
#define SWEEP_MIN 1024u

static void records_sweep(void)
{
	struct procpage *pg = procpage();
	uint32_t used = LOAD_ACQ(&pg->kids_used), live;

	for (uint32_t i = 0; i < used; i++) {
		uint64_t r = LOAD(&pg->kids[i]);

		if (r != 0 && !child_alive(record_pid(r)) &&
		    CAS(&pg->kids[i], &r, 0))
			__atomic_fetch_sub(&pg->kids_live, 1, __ATOMIC_RELAXED);
	}
	live = LOAD(&pg->kids_live);
	__atomic_store_n(&pg->kids_sweep,
	                 live < SWEEP_MIN / 2 ? SWEEP_MIN : 2 * live,
	                 __ATOMIC_RELAXED);
}

/* A free record: a hole from where the last search stopped while at most
 * half the records in use are set, else a new one past kids_used. */
static HOT int record_put(uint64_t rec)
{
	struct procpage *pg = procpage();
	uint32_t used = LOAD_ACQ(&pg->kids_used);

	if (2 * LOAD(&pg->kids_live) < used || used == PROC_CHILD_MAX) {
		uint32_t from = LOAD(&pg->kids_next);

		for (uint32_t k = 0; k < used; k++) {
			uint32_t i = (from + k) % used;
			uint64_t r = 0;

			if (CAS(&pg->kids[i], &r, rec)) {
				__atomic_store_n(&pg->kids_next, i + 1,
				                 __ATOMIC_RELAXED);
				__atomic_fetch_add(&pg->kids_live, 1,
				                   __ATOMIC_RELAXED);
				return 1;
			}
		}
	}
	while (used < PROC_CHILD_MAX) {
		if (CAS(&pg->kids_used, &used, used + 1)) {
			__atomic_store_n(&pg->kids[used], rec,
			                 __ATOMIC_RELEASE);
			__atomic_fetch_add(&pg->kids_live, 1, __ATOMIC_RELAXED);
			return 1;
		}
	}
	return 0;
}

static HOT void record_child(pid_t pid, uint64_t birth)
{
	struct procpage *pg = procpage();
	uint64_t rec = (uint64_t)pid << BIRTH_BITS |
	               (birth < BIRTH_MASK ? birth : BIRTH_MASK);
	uint32_t sweep = LOAD(&pg->kids_sweep);

	if (LOAD(&pg->kids_live) >= (sweep != 0 ? sweep : SWEEP_MIN))
		records_sweep();
	if (record_put(rec))
		return;
	records_sweep();
	if (record_put(rec))
		return;
	if (__atomic_fetch_add(&pg->kids_lost, 1, __ATOMIC_RELAXED) == 0)
		log_warn("more than %u live children: visible() answers 0 "
		         "for pid 0 from now on",
		         PROC_CHILD_MAX);
}

/* The newest birth point recorded for pid; 0 with *found 0 when none. */
static uint64_t newest_birth(pid_t pid, int *found)
{
	struct procpage *pg = procpage();
	uint32_t used = LOAD_ACQ(&pg->kids_used);
	uint64_t birth = 0;

	*found = 0;
	for (uint32_t i = 0; i < used; i++) {
		uint64_t r = LOAD_ACQ(&pg->kids[i]);

		if (r != 0 && record_pid(r) == pid) {
			*found = 1;
			if ((r & BIRTH_MASK) > birth)
				birth = r & BIRTH_MASK;
		}
	}
	return birth;
}

int fork_visible(uint64_t fseq, pid_t pid)
{
	struct procpage *pg = procpage();
	uint32_t used = pg != NULL ? LOAD_ACQ(&pg->kids_used) : 0;
	int found;

	if (pid < 0) {
		errno = ESRCH;
		return -1;
	}
	if (pid != 0) {
		/* The newest record answers: an older one of the same pid is
		 * a child reaped unseen. */
		uint64_t birth = pg != NULL ? newest_birth(pid, &found) : 0;

		if (pg != NULL && found && child_alive(pid))
			return birth >= fseq;
		if (pg != NULL && found)
			records_forget(pid); /* reaped: forget it */
		errno = ESRCH;
		return -1;
	}
	for (uint32_t i = 0; i < used; i++) {
		uint64_t r = LOAD_ACQ(&pg->kids[i]);
		pid_t p = record_pid(r);

		if (r == 0 || (r & BIRTH_MASK) >= fseq)
			continue; /* it can, whether alive or not */
		if (!child_alive(p)) {
			if (CAS(&pg->kids[i], &r, 0)) /* reaped: forget it */
				__atomic_fetch_sub(&pg->kids_live, 1,
				                   __ATOMIC_RELAXED);
		} else if (newest_birth(p, &found) < fseq) {
			return 0;
		}
	}
	return pg == NULL || LOAD(&pg->kids_lost) == 0;
}

/* ---- atfork phases ---- */

/* Leaves the birth point for this thread's fork wrapper in the procpage
 * (no thread-local write: see table_prepare), under the table lock.  A
 * fork nested in a fork of the same thread (from a signal handler) takes
 * a record of its own; the wrapper takes the newest.  Forks that no wrapper
 * follows (daemon) leave theirs, and the oldest is reused when none is
 * free.  A record is claimed with a compare-and-swap of its thread word
 * (BIRTH_CLAIMED while it is filled), so neither a nested prepare nor the
 * owner's take_birth, which runs outside the lock, can see it half
 * written or lose it. */
#define BIRTH_CLAIMED 1ull /* not a pthread_self: those are pointers */

static uint32_t claim_birth(void)
{
	struct procpage *pg = procpage();

	for (;;) {
		uint64_t oldest = UINT64_MAX, owner = 0;
		uint32_t pick = 0;

		for (uint32_t i = 0; i < PROC_FORKING_MAX; i++) {
			uint64_t th = LOAD(&pg->births[i].thread), seq;

			if (th == 0 &&
			    CAS(&pg->births[i].thread, &th, BIRTH_CLAIMED)) {
				__atomic_fetch_add(&pg->births_held, 1,
				                   __ATOMIC_RELAXED);
				return i;
			}
			seq = LOAD(&pg->births[i].seq);
			if (th != BIRTH_CLAIMED && seq < oldest) {
				oldest = seq;
				owner = th;
				pick = i;
			}
		}
		if (owner != 0 &&
		    CAS(&pg->births[pick].thread, &owner, BIRTH_CLAIMED))
			return pick;
	}
}

/* Leaves birth (not 0) for this thread's fork wrapper.  Out of line, so
 * that on_prepare has no frame: see on_prepare. */
static __attribute__((noinline)) void note_birth(uint64_t birth)
{
	struct procpage *pg = procpage();
	uint64_t self = (uint64_t)pthread_self();
	uint32_t pick = claim_birth();

	__atomic_store_n(&pg->births[pick].birth, birth, __ATOMIC_RELAXED);
	__atomic_store_n(
	    &pg->births[pick].seq,
	    __atomic_add_fetch(&pg->births_seq, 1, __ATOMIC_RELAXED),
	    __ATOMIC_RELAXED);
	__atomic_store_n(&pg->births[pick].thread, self, __ATOMIC_RELEASE);
}

/* Every byte of stack the fork path writes below what glibc's own fork
 * writes costs: after a fork the parent's stack pages are copy-on-write,
 * and the first write to each is a fault (tens of microseconds in a VM),
 * so a path deeper by d bytes takes d/4096 more faults per fork on
 * average over stack placements.  The prepare and parent handlers (called
 * from glibc's deepest frames) therefore keep no frame of their own: a
 * call and a tail call, the slow work out of line. */
static HOT void on_prepare(void)
{
	uint64_t birth = table_prepare();

	/* No table yet (or no procpage: table_prepare answers 0): birth
	 * point 0, which take_birth answers when it finds no record (no
	 * record of a table-less fork can be stale with another value: the
	 * table, once made, stays). */
	if (birth != 0)
		note_birth(birth);
}

/* The birth point on_prepare left for this thread's latest fork; 0 (born
 * before any freeze: visible() answers 0) when there is none.  A record
 * reused by another fork between the scan and the claim is looked for
 * again: an older record of ours then answers, whose birth is no later. */
static HOT uint64_t take_birth(void)
{
	struct procpage *pg = procpage();
	uint64_t self = (uint64_t)pthread_self();

	/* Most forks note no birth (no table yet): then no record is held,
	 * and a thread's own claim (its prepare, before this) is seen by it. */
	if (LOAD(&pg->births_held) == 0)
		return 0;
	for (;;) {
		uint64_t best = 0, birth = 0, th = self;
		uint32_t pick = PROC_FORKING_MAX;

		for (uint32_t i = 0; i < PROC_FORKING_MAX; i++) {
			uint64_t seq;

			if (LOAD_ACQ(&pg->births[i].thread) != self)
				continue;
			seq = LOAD(&pg->births[i].seq);
			if (seq > best) {
				best = seq;
				pick = i;
			}
		}
		if (pick == PROC_FORKING_MAX)
			return 0;
		birth = LOAD(&pg->births[pick].birth);
		if (LOAD(&pg->births[pick].seq) == best &&
		    CAS(&pg->births[pick].thread, &th, 0)) {
			__atomic_fetch_sub(&pg->births_held, 1,
			                   __ATOMIC_RELAXED);
			return birth;
		}
	}
}

static HOT void on_parent(void)
{
	table_parent();
}

/* ---- set-up ---- */

int fork_init(void)
{
	/* Once per process (init_core's pthread_once; a child inherits the
	 * handlers).  The child phase is the kernel's: the procpage comes back
	 * zeroed. */
	if (pthread_atfork(on_prepare, on_parent, NULL) != 0)
		log_error("pthread_atfork failed");
	*(void **)&real_fork = interpose_real("fork", INTERPOSE_REQUIRED);
	*(void **)&real_forkpty = interpose_real("forkpty", INTERPOSE_OPTIONAL);
	*(void **)&real_wait = interpose_real("wait", INTERPOSE_OPTIONAL);
	*(void **)&real_waitpid = interpose_real("waitpid", INTERPOSE_OPTIONAL);
	*(void **)&real_wait3 = interpose_real("wait3", INTERPOSE_OPTIONAL);
	*(void **)&real_wait4 = interpose_real("wait4", INTERPOSE_OPTIONAL);
	*(void **)&real_waitid = interpose_real("waitid", INTERPOSE_REQUIRED);
	return real_fork != NULL && real_waitid != NULL ? 0 : -1;
}

/* ---- signals ----
 *
 * The wrappers leave the signal mask alone: the program's atfork handlers
 * run with the mask it set, and its signals arrive when they would without
 * us (issue 13).  A signal handler that freezes or thaws on a thread whose
 * fork holds the table lock (from our prepare handler to our parent
 * handler) answers EDEADLK (table.c, lock_mine), as the program's own
 * atfork handlers registered before ours do.  Outside that window the
 * handler's write takes the lock like any other: the thread holds at most
 * glibc's atfork lock, which no holder of the table lock waits for (a
 * fork from the handler of a thread in the middle of a write would: in a
 * multi-threaded process that fork deadlocks in glibc with or without us,
 * as a fork from a handler that interrupted fork does). */

/* ---- wrappers: thin, they exist to learn the child's pid ---- */

/* Before the real fork: init and the procpage. */
static HOT void fork_enter(void)
{
	forkshim_ensure_init();
	table_procpage();
}

/* In the parent after the real fork. */
static HOT void fork_leave(pid_t pid)
{
	if (procpage() == NULL)
		return;
	if (pid > 0) {
		record_child(pid, take_birth());
		procpage_child_born(pid);
	} else {
		take_birth(); /* the fork failed: drop our birth record */
	}
}

EXPORT pid_t forkpty(int *amaster, char *name, const struct termios *termp,
                     const struct winsize *winp)
{
	pid_t pid;

	fork_enter();
	if (real_forkpty == NULL) {
		errno = ENOSYS;
		return -1;
	}
	pid = real_forkpty(amaster, name, termp, winp);
	if (pid == 0)
		return 0;
	fork_leave(pid);
	return pid;
}

/* A reaped child stops counting for visible() at once; one killed by
 * signal sig (0: it exited) may need its report written for it. */
static HOT void gone(pid_t pid, int sig)
{
	uint64_t birth;

	if (pid <= 0 || procpage() == NULL)
		return;
	birth = records_forget(pid);
	shared_reaped(); /* the root takes what the child handed it */
	if (sig != 0)
		report_reaped(pid, sig, birth);
}

static HOT void reaped(pid_t pid, const int *status, int options)
{
	if (options & WNOWAIT)
		return;
	if (status == NULL || WIFEXITED(*status))
		gone(pid, 0);
	else if (WIFSIGNALED(*status))
		gone(pid, WTERMSIG(*status));
}

EXPORT HOT pid_t wait(int *status)
{
	int st;
	pid_t pid;

	forkshim_ensure_init();
	if (real_wait == NULL) {
		errno = ENOSYS;
		return -1;
	}
	pid = real_wait(&st);
	if (pid > 0 && status != NULL)
		*status = st;
	reaped(pid, &st, 0);
	return pid;
}

EXPORT HOT pid_t waitpid(pid_t which, int *status, int options)
{
	int st;
	pid_t pid;

	forkshim_ensure_init();
	if (real_waitpid == NULL) {
		errno = ENOSYS;
		return -1;
	}
	pid = real_waitpid(which, &st, options);
	if (pid > 0 && status != NULL)
		*status = st;
	reaped(pid, &st, options);
	return pid;
}

/* wait3, wait4 and waitid are not marked hot: few programs use them, and
 * the hot section (hot.ld) is kept to what a fork and the usual waits
 * run, on the library's first page. */
EXPORT pid_t wait3(int *status, int options, struct rusage *usage)
{
	int st;
	pid_t pid;

	forkshim_ensure_init();
	if (real_wait3 == NULL) {
		errno = ENOSYS;
		return -1;
	}
	pid = real_wait3(&st, options, usage);
	if (pid > 0 && status != NULL)
		*status = st;
	reaped(pid, &st, options);
	return pid;
}

EXPORT pid_t wait4(pid_t which, int *status, int options, struct rusage *usage)
{
	int st;
	pid_t pid;

	forkshim_ensure_init();
	if (real_wait4 == NULL) {
		errno = ENOSYS;
		return -1;
	}
	pid = real_wait4(which, &st, options, usage);
	if (pid > 0 && status != NULL)
		*status = st;
	reaped(pid, &st, options);
	return pid;
}

EXPORT int waitid(idtype_t idtype, id_t id, siginfo_t *info, int options)
{
	int r;

	forkshim_ensure_init();
	if (real_waitid == NULL) {
		errno = ENOSYS;
		return -1;
	}
	r = real_waitid(idtype, id, info, options);
	if (r == 0 && info != NULL && !(options & WNOWAIT) &&
	    (info->si_code == CLD_EXITED || info->si_code == CLD_KILLED ||
	     info->si_code == CLD_DUMPED))
		gone(info->si_pid,
		     info->si_code == CLD_EXITED ? 0 : info->si_status);
	return r;
}
