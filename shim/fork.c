/* fork: the fork and wait wrappers, the atfork phases and the child
 * records (contract in fork.h).  Called by the program (the wrappers), by
 * glibc's fork (the atfork phases) and by api (visible, init); calls
 * table's fork phases, report_reaped, init, interpose, procpage and log.
 * The fork path allocates nothing and takes no lock but the table's
 * (prepare to parent); errno is kept around everything we add. */
#include "fork.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <pty.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

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

/* Frees pid's records; returns the birth point of one of them, 0 if it
 * had none. */
static uint64_t records_forget(pid_t pid)
{
	uint32_t used = LOAD_ACQ(&pp->kids_used);
	uint64_t birth = 0;

	for (uint32_t i = 0; i < used; i++) {
		uint64_t r = LOAD(&pp->kids[i]);

		if (r != 0 && record_pid(r) == pid && CAS(&pp->kids[i], &r, 0))
			birth = r & BIRTH_MASK;
	}
	return birth;
}

/* Frees the records of children that have been reaped without us seeing
 * it (SIGCHLD ignored, or reaped through a call we do not wrap). */
static void records_sweep(void)
{
	uint32_t used = LOAD_ACQ(&pp->kids_used);

	for (uint32_t i = 0; i < used; i++) {
		uint64_t r = LOAD(&pp->kids[i]);

		if (r != 0 && !child_alive(record_pid(r)))
			CAS(&pp->kids[i], &r, 0);
	}
}

static int record_put(uint64_t rec)
{
	uint32_t used = LOAD_ACQ(&pp->kids_used);

	for (uint32_t i = 0; i < used; i++) {
		uint64_t r = 0;

		if (CAS(&pp->kids[i], &r, rec))
			return 1;
	}
	while (used < PROC_CHILD_MAX) {
		if (CAS(&pp->kids_used, &used, used + 1)) {
			__atomic_store_n(&pp->kids[used], rec,
			                 __ATOMIC_RELEASE);
			return 1;
		}
	}
	return 0;
}

static void record_child(pid_t pid, uint64_t birth)
{
	uint64_t rec = (uint64_t)pid << BIRTH_BITS |
	               (birth < BIRTH_MASK ? birth : BIRTH_MASK);

	if (pp == NULL)
		return;
	records_forget(pid); /* a recycled pid: that child was reaped */
	if (record_put(rec))
		return;
	records_sweep();
	if (record_put(rec))
		return;
	if (__atomic_fetch_add(&pp->kids_lost, 1, __ATOMIC_RELAXED) == 0)
		log_warn("more than %u live children: visible() answers 0 "
		         "for pid 0 from now on",
		         PROC_CHILD_MAX);
}

int fork_visible(uint64_t fseq, pid_t pid)
{
	uint32_t used = pp != NULL ? LOAD_ACQ(&pp->kids_used) : 0;

	if (pid < 0) {
		errno = ESRCH;
		return -1;
	}
	for (uint32_t i = 0; i < used; i++) {
		uint64_t r = LOAD_ACQ(&pp->kids[i]);
		pid_t p = record_pid(r);

		if (r == 0 || (pid != 0 && p != pid))
			continue;
		if ((r & BIRTH_MASK) >= fseq) {
			if (pid == 0)
				continue; /* it can, whether alive or not */
			if (child_alive(p))
				return 1;
		} else if (child_alive(p)) {
			return 0;
		}
		CAS(&pp->kids[i], &r, 0); /* reaped: forget it */
		if (pid != 0)
			break;
	}
	if (pid != 0) {
		errno = ESRCH;
		return -1;
	}
	return pp == NULL || LOAD(&pp->kids_lost) == 0;
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
	for (;;) {
		uint64_t oldest = UINT64_MAX, owner = 0;
		uint32_t pick = 0;

		for (uint32_t i = 0; i < PROC_FORKING_MAX; i++) {
			uint64_t th = LOAD(&pp->births[i].thread), seq;

			if (th == 0 &&
			    CAS(&pp->births[i].thread, &th, BIRTH_CLAIMED))
				return i;
			seq = LOAD(&pp->births[i].seq);
			if (th != BIRTH_CLAIMED && seq < oldest) {
				oldest = seq;
				owner = th;
				pick = i;
			}
		}
		if (owner != 0 &&
		    CAS(&pp->births[pick].thread, &owner, BIRTH_CLAIMED))
			return pick;
	}
}

static void on_prepare(void)
{
	uint64_t birth = table_prepare(), self = (uint64_t)pthread_self();
	uint32_t pick;

	if (pp == NULL)
		return;
	pick = claim_birth();
	__atomic_store_n(&pp->births[pick].birth, birth, __ATOMIC_RELAXED);
	__atomic_store_n(
	    &pp->births[pick].seq,
	    __atomic_add_fetch(&pp->births_seq, 1, __ATOMIC_RELAXED),
	    __ATOMIC_RELAXED);
	__atomic_store_n(&pp->births[pick].thread, self, __ATOMIC_RELEASE);
}

/* The birth point on_prepare left for this thread's latest fork; 0 (born
 * before any freeze: visible() answers 0) when there is none.  A record
 * reused by another fork between the scan and the claim is looked for
 * again: an older record of ours then answers, whose birth is no later. */
static uint64_t take_birth(void)
{
	uint64_t self = (uint64_t)pthread_self();

	for (;;) {
		uint64_t best = 0, birth = 0, th = self;
		uint32_t pick = PROC_FORKING_MAX;

		for (uint32_t i = 0; i < PROC_FORKING_MAX; i++) {
			uint64_t seq;

			if (LOAD_ACQ(&pp->births[i].thread) != self)
				continue;
			seq = LOAD(&pp->births[i].seq);
			if (seq > best) {
				best = seq;
				pick = i;
			}
		}
		if (pick == PROC_FORKING_MAX)
			return 0;
		birth = LOAD(&pp->births[pick].birth);
		if (LOAD(&pp->births[pick].seq) == best &&
		    CAS(&pp->births[pick].thread, &th, 0))
			return birth;
	}
}

static void on_parent(void)
{
	table_parent();
}

/* ---- set-up ---- */

int fork_init(void)
{
	*(void **)&real_fork = interpose_real("fork", INTERPOSE_REQUIRED);
	*(void **)&real_forkpty = interpose_real("forkpty", INTERPOSE_OPTIONAL);
	*(void **)&real_wait = interpose_real("wait", INTERPOSE_OPTIONAL);
	*(void **)&real_waitpid = interpose_real("waitpid", INTERPOSE_OPTIONAL);
	*(void **)&real_wait3 = interpose_real("wait3", INTERPOSE_OPTIONAL);
	*(void **)&real_wait4 = interpose_real("wait4", INTERPOSE_OPTIONAL);
	*(void **)&real_waitid = interpose_real("waitid", INTERPOSE_REQUIRED);
	/* The child phase is the kernel's: the procpage comes back zeroed. */
	if (pthread_atfork(on_prepare, on_parent, NULL) != 0) {
		log_error("pthread_atfork failed");
		return -1;
	}
	return real_fork != NULL && real_waitid != NULL ? 0 : -1;
}

/* ---- wrappers: thin, they exist to learn the child's pid ---- */

#define EXPORT __attribute__((visibility("default")))

/* While glibc's fork runs, the forking thread holds glibc's atfork lock
 * except inside the prepare handlers, and our prepare handler takes the
 * table lock, which it keeps until the fork is done.  A signal handler that
 * freezes or thaws on a thread interrupted inside glibc's fork (holding the
 * atfork lock) would wait for the table lock held by another thread's
 * fork, which waits for the atfork lock: both hang (found by the signalmt
 * stress under --long).  So the wrappers block the asynchronous signals
 * for the length of the fork; they arrive when it returns (the child
 * starts without pending signals anyway, and with the caller's mask).
 * The synchronous ones stay open: blocked, a fault kills the process
 * instead of reaching its handler (the guard's, the host's).
 * pthread_sigmask: async-signal-safe, no lock. */
static inline __attribute__((always_inline)) void block_async(sigset_t *saved)
{
	sigset_t set;

	sigfillset(&set);
	sigdelset(&set, SIGSEGV);
	sigdelset(&set, SIGBUS);
	sigdelset(&set, SIGILL);
	sigdelset(&set, SIGFPE);
	sigdelset(&set, SIGTRAP);
	sigdelset(&set, SIGSYS);
	pthread_sigmask(SIG_BLOCK, &set, saved);
}

/* pthread_sigmask returns its error and leaves errno alone: no write to
 * the thread's TLS page, which the fork just made copy-on-write. */
static inline __attribute__((always_inline)) void unblock(const sigset_t *saved)
{
	pthread_sigmask(SIG_SETMASK, saved, NULL);
}

EXPORT pid_t fork(void)
{
	sigset_t saved;
	pid_t pid;

	forkshim_ensure_init();
	if (real_fork == NULL) {
		errno = ENOSYS;
		return -1;
	}
	block_async(&saved);
	pid = real_fork();
	if (pid > 0 && pp != NULL)
		record_child(pid, take_birth());
	unblock(&saved);
	return pid;
}

EXPORT pid_t forkpty(int *amaster, char *name, const struct termios *termp,
                     const struct winsize *winp)
{
	sigset_t saved;
	pid_t pid;

	forkshim_ensure_init();
	if (real_forkpty == NULL) {
		errno = ENOSYS;
		return -1;
	}
	block_async(&saved);
	pid = real_forkpty(amaster, name, termp, winp);
	if (pid > 0 && pp != NULL)
		record_child(pid, take_birth());
	unblock(&saved);
	return pid;
}

/* A reaped child stops counting for visible() at once; one killed by
 * signal sig (0: it exited) may need its report written for it. */
static void gone(pid_t pid, int sig)
{
	uint64_t birth;

	if (pid <= 0 || pp == NULL)
		return;
	birth = records_forget(pid);
	shared_reaped(); /* the root takes what the child handed it */
	if (sig != 0)
		report_reaped(pid, sig, birth);
}

static void reaped(pid_t pid, const int *status, int options)
{
	if (options & WNOWAIT)
		return;
	if (status == NULL || WIFEXITED(*status))
		gone(pid, 0);
	else if (WIFSIGNALED(*status))
		gone(pid, WTERMSIG(*status));
}

EXPORT pid_t wait(int *status)
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

EXPORT pid_t waitpid(pid_t which, int *status, int options)
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
