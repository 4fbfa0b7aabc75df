#include "fork.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <pty.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include "init.h"
#include "log.h"
#include "table.h"

#define LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)

/* A record: pid << 40 | birth point; 0 is free. */
#define CHILD_MAX 65536u
#define BIRTH_BITS 40
#define BIRTH_MASK ((1ull << BIRTH_BITS) - 1)

typedef pid_t (*fork_fn)(void);
typedef pid_t (*forkpty_fn)(int *, char *, const struct termios *,
                            const struct winsize *);

static fork_fn real_fork;
static forkpty_fn real_forkpty;

/* In .bss: untouched pages cost nothing, and no mapping of our own. */
static struct {
	pid_t owner;   /* the process they belong to; -pid while it clears */
	uint32_t used; /* records [0, used) may be set */
	uint32_t lost; /* children we could not record */
	uint64_t rec[CHILD_MAX];
} kids;

static __thread uint64_t tls_birth;

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
	r = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT);
	errno = saved;
	return r == 0;
}

/* Frees the records of children that have been reaped. */
static void records_sweep(void)
{
	uint32_t used = LOAD_ACQ(&kids.used);

	for (uint32_t i = 0; i < used; i++) {
		uint64_t r = LOAD(&kids.rec[i]);

		if (r != 0 && !child_alive(record_pid(r)))
			__atomic_compare_exchange_n(&kids.rec[i], &r, 0, 0,
			                            __ATOMIC_RELAXED,
			                            __ATOMIC_RELAXED);
	}
}

static int record_put(uint64_t rec)
{
	uint32_t used = LOAD_ACQ(&kids.used);

	for (uint32_t i = 0; i < used; i++) {
		uint64_t r = 0;

		if (__atomic_compare_exchange_n(&kids.rec[i], &r, rec, 0,
		                                __ATOMIC_RELEASE,
		                                __ATOMIC_RELAXED))
			return 1;
	}
	while (used < CHILD_MAX) {
		if (__atomic_compare_exchange_n(&kids.used, &used, used + 1, 0,
		                                __ATOMIC_ACQ_REL,
		                                __ATOMIC_ACQUIRE)) {
			__atomic_store_n(&kids.rec[used], rec,
			                 __ATOMIC_RELEASE);
			return 1;
		}
	}
	return 0;
}

/* Records inherited from a parent are not ours: the first process to use
 * them after a fork clears them (children made by fork() record nothing
 * in the child, so the fork path writes nothing there). */
static void records_claim(pid_t me)
{
	pid_t owner = LOAD_ACQ(&kids.owner);

	while (owner != me) {
		if (owner == -me) {
			sched_yield(); /* another thread of ours is clearing */
			owner = LOAD_ACQ(&kids.owner);
		} else if (__atomic_compare_exchange_n(&kids.owner, &owner, -me,
		                                       0, __ATOMIC_ACQ_REL,
		                                       __ATOMIC_ACQUIRE)) {
			__atomic_store_n(&kids.used, 0, __ATOMIC_RELEASE);
			kids.lost = 0;
			__atomic_store_n(&kids.owner, me, __ATOMIC_RELEASE);
			return;
		}
	}
}

static void record_child(pid_t pid, uint64_t birth)
{
	uint64_t rec = (uint64_t)pid << BIRTH_BITS |
	               (birth < BIRTH_MASK ? birth : BIRTH_MASK);
	uint32_t used;

	records_claim(getpid());
	used = LOAD_ACQ(&kids.used);

	/* A recycled pid: the old record was a child since reaped. */
	for (uint32_t i = 0; i < used; i++) {
		uint64_t r = LOAD(&kids.rec[i]);

		if (r != 0 && record_pid(r) == pid)
			__atomic_compare_exchange_n(&kids.rec[i], &r, 0, 0,
			                            __ATOMIC_RELAXED,
			                            __ATOMIC_RELAXED);
	}
	if (record_put(rec))
		return;
	records_sweep();
	if (record_put(rec))
		return;
	if (__atomic_fetch_add(&kids.lost, 1, __ATOMIC_RELAXED) == 0)
		log_warn("more than %u live children: visible() now answers "
		         "0 for pid 0",
		         CHILD_MAX);
}

int fork_visible(uint64_t fseq, pid_t pid)
{
	uint32_t used = LOAD_ACQ(&kids.used);

	/* Records written by our parent (or not yet cleared) are not ours. */
	if (LOAD_ACQ(&kids.owner) != getpid())
		used = 0;
	if (pid < 0) {
		errno = ESRCH;
		return -1;
	}
	for (uint32_t i = 0; i < used; i++) {
		uint64_t r = LOAD_ACQ(&kids.rec[i]);
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
		/* Reaped: forget it. */
		__atomic_compare_exchange_n(&kids.rec[i], &r, 0, 0,
		                            __ATOMIC_RELAXED, __ATOMIC_RELAXED);
		if (pid != 0)
			break;
	}
	if (pid != 0) {
		errno = ESRCH;
		return -1;
	}
	return LOAD(&kids.lost) == 0;
}

/* ---- atfork phases ---- */

static void on_prepare(void)
{
	tls_birth = table_prepare();
}

static void on_parent(void)
{
	table_parent();
}

/* ---- wrappers ---- */

static void *load_sym(const char *name, void *self)
{
	void *sym = dlsym(RTLD_NEXT, name);

	if (sym == self) /* never call ourselves in a loop */
		sym = NULL;
	if (sym == NULL)
		log_error("cannot resolve the real %s: %s", name, dlerror());
	return sym;
}

int fork_init(void)
{
	*(void **)&real_fork = load_sym("fork", (void *)fork);
	*(void **)&real_forkpty = load_sym("forkpty", (void *)forkpty);
	if (pthread_atfork(on_prepare, on_parent, NULL) != 0) {
		log_error("pthread_atfork failed");
		return -1;
	}
	return real_fork != NULL ? 0 : -1;
}

__attribute__((visibility("default"))) pid_t fork(void)
{
	pid_t pid;

	forkshim_ensure_init();
	if (real_fork == NULL) {
		errno = ENOSYS;
		return -1;
	}
	pid = real_fork();
	if (pid > 0)
		record_child(pid, tls_birth);
	return pid;
}

__attribute__((visibility("default"))) pid_t
forkpty(int *amaster, char *name, const struct termios *termp,
        const struct winsize *winp)
{
	pid_t pid;

	forkshim_ensure_init();
	if (real_forkpty == NULL) {
		errno = ENOSYS;
		return -1;
	}
	pid = real_forkpty(amaster, name, termp, winp);
	if (pid > 0)
		record_child(pid, tls_birth);
	return pid;
}
