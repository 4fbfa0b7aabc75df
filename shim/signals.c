/* signals: the dispositions, the interposed sigaction/signal family, the
 * chain and the default action (contract in signals.h).  Never malloc or
 * stdio; the locks are spin locks taken with every signal blocked. */
#include "signals.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "init.h"
#include "hot.h"
#include "interpose.h"

#define LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define STORE_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)

#define NSIG_WATCHED 32

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);
typedef sighandler_t (*signal_fn)(int, sighandler_t);

static sigaction_fn real_sigaction;
static signal_fn real_signal, real_sysv_signal;

/* Called before a default action kills the process (the reports). */
static void (*dying_fn)(int sig);

/* ---- the taken signal: ours for the life of the process ---- */

static int taken; /* the signal number once our handler is in, else 0 */
static int *chain_lockp;

/* The action the program believes it installed for the taken signal: two
 * copies, the current one named by chain_cur; chain_seq counts the
 * switches so that a reader can tell it read a copy being rewritten. */
static struct sigaction chain_act[2];
static uint32_t chain_cur, chain_seq;

/* ---- the watched signals: ours while the program keeps SIG_DFL ---- */

/* Inherited by children with the rest of our memory. */
static int watching;
static int tracked[NSIG_WATCHED]; /* we decide this signal's disposition */
static int owned[NSIG_WATCHED];   /* ours is installed, host sees host[] */
static struct sigaction host[NSIG_WATCHED];
static int watch_lock;

void signals_resolve(void)
{
	*(void **)&real_sigaction =
	    interpose_real("sigaction", INTERPOSE_REQUIRED);
	*(void **)&real_signal = interpose_real("signal", INTERPOSE_OPTIONAL);
	*(void **)&real_sysv_signal =
	    interpose_real("sysv_signal", INTERPOSE_OPTIONAL);
}

int signals_ready(void)
{
	return real_sigaction != NULL;
}

/* The action signal() and sysv_signal() install, as sigaction takes it. */
static void signal_action(struct sigaction *act, int sig, sighandler_t handler,
                          int flags)
{
	memset(act, 0, sizeof(*act));
	act->sa_handler = handler;
	act->sa_flags = flags;
	sigemptyset(&act->sa_mask);
	if (!(flags & SA_NODEFER))
		sigaddset(&act->sa_mask, sig);
}

/* The default action of sig, from inside its handler: SIG_DFL back, then
 * a fault (SEGV, BUS, ILL, FPE raised by an instruction) comes back when
 * the handler returns and kills as it would have without us; anything
 * else is raised again, pending until the handler unblocks it. */
static void die_default(int sig, const siginfo_t *si)
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

static void dying(int sig)
{
	void (*fn)(int) = LOAD_ACQ(&dying_fn);

	if (fn != NULL)
		fn(sig);
}

/* ---- the chain ---- */

static void chain_lock(sigset_t *saved)
{
	sigset_t all;

	/* No handler of this thread can run while we hold the lock. */
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, saved);
	while (__atomic_exchange_n(chain_lockp, 1, __ATOMIC_ACQUIRE))
		sched_yield();
}

static void chain_unlock(const sigset_t *saved)
{
	STORE_REL(chain_lockp, 0);
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

/* What sigaction(taken, act, old) does once our handler is in. */
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

void signals_chain(int sig, siginfo_t *si, void *uc)
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
		dying(sig);
		die_default(sig, si);
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

/* ---- watched signals ---- */

static void lock(sigset_t *saved)
{
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, saved);
	while (__atomic_exchange_n(&watch_lock, 1, __ATOMIC_ACQUIRE))
		sched_yield();
}

static void unlock(const sigset_t *saved)
{
	__atomic_store_n(&watch_lock, 0, __ATOMIC_RELEASE);
	pthread_sigmask(SIG_SETMASK, saved, NULL);
}

static int is_default(const struct sigaction *a)
{
	return a->sa_handler == SIG_DFL; /* a union with sa_sigaction */
}

static void on_fatal(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	dying(sig);
	die_default(sig, si);
}

static int install_ours(int sig)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_fatal;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigfillset(&sa.sa_mask);
	return real_sigaction(sig, &sa, NULL);
}

/* The taken signal leaves the watched ones: the program's disposition we
 * kept for it is the one the chain starts from. */
static void unwatch(int sig, struct sigaction *prev)
{
	sigset_t saved;

	if (sig <= 0 || sig >= NSIG_WATCHED)
		return;
	lock(&saved);
	if (owned[sig] && prev != NULL)
		*prev = host[sig];
	tracked[sig] = 0;
	owned[sig] = 0;
	unlock(&saved);
}

/* sigaction for a watched signal: 1 when handled (*rc its result). */
static int watched_sigaction(int sig, const struct sigaction *act,
                             struct sigaction *old, int *rc)
{
	struct sigaction prev;
	sigset_t saved;

	if (sig <= 0 || sig >= NSIG_WATCHED ||
	    !__atomic_load_n(&tracked[sig], __ATOMIC_ACQUIRE))
		return 0;
	lock(&saved);
	if (!tracked[sig]) {
		unlock(&saved);
		return 0;
	}
	*rc = 0;
	/* A disposition set behind our back (sigset, a raw rt_sigaction)
	 * replaced ours: the kernel's answer is the host's then. */
	if (owned[sig] && real_sigaction(sig, NULL, &prev) == 0 &&
	    ((prev.sa_flags & SA_SIGINFO) == 0 ||
	     prev.sa_sigaction != on_fatal))
		owned[sig] = 0;
	if (owned[sig])
		prev = host[sig];
	else if (act == NULL || is_default(act))
		*rc = real_sigaction(sig, NULL, &prev);
	if (*rc == 0 && act != NULL) {
		if (is_default(act)) {
			*rc = install_ours(sig);
			if (*rc == 0) {
				host[sig] = *act;
				owned[sig] = 1;
			}
		} else {
			*rc =
			    real_sigaction(sig, act, owned[sig] ? NULL : &prev);
			if (*rc == 0)
				owned[sig] = 0;
		}
	}
	unlock(&saved);
	if (*rc == 0 && old != NULL)
		*old = prev;
	return 1;
}

static int watched_signal(int sig, sighandler_t handler, int flags,
                          sighandler_t *old)
{
	struct sigaction act, prev;
	int rc;

	signal_action(&act, sig, handler, flags);
	if (!watched_sigaction(sig, &act, &prev, &rc))
		return 0;
	*old = rc == 0 ? prev.sa_handler : SIG_ERR;
	return 1;
}

/* A thread the child does not have may have held the lock.  Hot: it runs
 * in every fork() child of a process with reports on (hot.ld). */
static FORKSHIM_HOT void watch_child(void)
{
	if (watch_lock != 0) /* no store (a copy-on-write fault) otherwise */
		watch_lock = 0;
}

/* Registered at load (signals_watch_at_load), while the process has one
 * thread.  Registered later, by the thread that first watches, it did not
 * always run in a child forked meanwhile by another thread: glibc runs in
 * a child only the handlers registered before that fork began running
 * the prepare handlers, and ours takes a while.  The child then kept the
 * lock held and its own first watch spun for ever (report_family,
 * a_child_forked_while_its_parent_arms_can_arm: 1 round in 5 in CI,
 * with watch_child in the child's list of handlers). */
static pthread_once_t watch_child_once = PTHREAD_ONCE_INIT;

static void watch_child_register(void)
{
	pthread_atfork(NULL, NULL, watch_child);
}

void signals_watch_at_load(void)
{
	pthread_once(&watch_child_once, watch_child_register);
}

void signals_watch(const int *sigs, size_t n, void (*fn)(int sig))
{
	sigset_t saved;

	if (real_sigaction == NULL)
		return;
	signals_watch_at_load(); /* a no-op when it was, as it should be */
	lock(&saved);
	STORE_REL(&dying_fn, fn);
	for (size_t i = 0; i < n; i++) {
		int sig = sigs[i];
		struct sigaction cur;

		/* The taken signal's handler already stands for the host's. */
		if (sig <= 0 || sig >= NSIG_WATCHED || sig == LOAD_ACQ(&taken))
			continue;
		if (real_sigaction(sig, NULL, &cur) != 0)
			continue;
		tracked[sig] = 1;
		if (is_default(&cur) && install_ours(sig) == 0) {
			host[sig] = cur;
			owned[sig] = 1;
		}
	}
	STORE_REL(&watching, 1);
	unlock(&saved);
}

/* ---- taking a signal ---- */

int signals_take(int sig, signals_handler_fn handler, int *lockp)
{
	struct sigaction sa, prev;
	sigset_t saved;
	int r;

	if (real_sigaction == NULL || LOAD_ACQ(&taken) != 0) {
		errno = EBUSY;
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = handler;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	/* Nothing interrupts the handler: a nested fault on a guarded page
	 * would find the signal blocked. */
	sigfillset(&sa.sa_mask);
	chain_lockp = lockp;
	chain_lock(&saved);
	r = real_sigaction(sig, &sa, &prev);
	if (r == 0) {
		unwatch(sig, &prev);
		chain_act[0] = prev;
		STORE(&chain_cur, 0);
		STORE_REL(&taken, sig);
	}
	chain_unlock(&saved);
	return r;
}

/* ---- interposed: sigaction and signal ---- */

#define EXPORT __attribute__((visibility("default")))
/* A sanitizer runtime's start-up reaches these wrappers before our
 * constructor (it installs its handlers through the next sigaction: ours),
 * when no code it instruments may run yet: TSan crashes at the first
 * function entry, ASan fails a CHECK.  So they are not instrumented, and
 * until init has resolved the real functions they look them up alone and
 * pass through (no handler of ours is in before init).  What they test
 * before calling anything instrumented is read inline. */
#define NO_SANITIZE                                                            \
	__attribute__((no_sanitize("address", "thread", "undefined")))
#define IS_TAKEN(sig) ((sig) > 0 && (sig) == LOAD_ACQ(&taken))

NO_SANITIZE static void *real_fn(void **real, const char *name)
{
	void *f = LOAD_ACQ(real);

	if (f == NULL) {
		/* Kept: a program that never forks or freezes (init has not
		 * run) may call sigaction often. */
		f = dlsym(RTLD_NEXT, name);
		if (f != NULL)
			__atomic_store_n(real, f, __ATOMIC_RELEASE);
	}
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
	if (LOAD_ACQ(&watching) && watched_sigaction(sig, act, old, &r))
		return r;
	if (!IS_TAKEN(sig))
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

	signal_action(&act, sig, handler, flags);
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
	if (LOAD_ACQ(&watching) &&
	    watched_signal(sig, handler, SA_RESTART, &old))
		return old;
	if (!IS_TAKEN(sig))
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
	if (LOAD_ACQ(&watching) &&
	    watched_signal(sig, handler, SA_RESETHAND | SA_NODEFER, &old))
		return old;
	if (!IS_TAKEN(sig))
		return f(sig, handler);
	return chain_signal(sig, handler, SA_RESETHAND | SA_NODEFER);
}

EXPORT NO_SANITIZE sighandler_t __sysv_signal(int sig, sighandler_t handler)
{
	return sysv_signal(sig, handler);
}
