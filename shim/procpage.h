/* procpage: the state that belongs to one process and is never inherited.
 *
 * One anonymous mapping advised MADV_WIPEONFORK, made at the first fork()
 * or freeze (a process that does neither maps nothing).  The kernel
 * gives every child, however it was made (fork, _Fork, clone, a raw fork
 * system call), zeroes here; and because fork neither copies nor
 * write-protects such a mapping in the parent, writing it on the fork path
 * costs the parent no page fault.  All-zero means: a new process that has
 * not adopted the table, the table lock free, no children recorded.
 *
 * procpage_ensure() maps it (lock-free: racing threads each map one, the
 * first published wins); it answers -1 and `pp` stays NULL when the
 * mapping cannot be made (Linux before 4.14), and then the table is not
 * available.  Async-signal-safe.  Fields are accessed with __atomic
 * builtins. */
#ifndef FORKSHIM_PROCPAGE_H
#define FORKSHIM_PROCPAGE_H

#include <stddef.h>
#include <stdint.h>

#define PROC_CHILD_MAX 65536u
#define PROC_FORKING_MAX 64u
#define PROC_EVER_MAX 65536u

struct procpage {
	uint64_t adopted; /* 1 once this process owns the inherited table */
	uint64_t lock; /* the table lock: its holder's pthread_self (table.c) */
	uint32_t forks; /* forks this process made (for the key rotation) */
	uint32_t fork_depth; /* forks nested in a write or fork of the lock's
	                        holder (its signal handlers) */
	uint32_t kids_used;  /* child records [0, kids_used) may be set */
	uint32_t kids_lost;  /* children that found no free record */
	uint32_t kids_live;  /* records set (fork.c) */
	uint32_t kids_sweep; /* live count that triggers a sweep; 0: the
	                        minimum */
	uint32_t kids_next;  /* where the search for a free record starts */
	/* Forks through our wrappers (shared.c): 1 from a fork's prepare
	 * phase to its parent phase, and a count of both phases.  Here, not in
	 * .bss, because the parent phase writes them after the fork. */
	uint32_t forking;
	uint64_t fork_gen;
	/* Birth points from the prepare phase to the fork wrapper of the same
	 * thread (keyed by pthread_self), written under the table lock. */
	uint64_t births_seq;
	uint32_t births_held; /* records claimed and not yet taken back: a
	                         fork wrapper finding 0 has none to take */
	struct {
		uint64_t thread;
		uint64_t birth;
		uint64_t seq; /* newest wins: forks nest in signal handlers */
	} births[PROC_FORKING_MAX];
	uint64_t kids[PROC_CHILD_MAX]; /* pid << 40 | birth point; 0 free */
	/* Every child forked (fork, forkpty), alive or reaped, the newest
	 * PROC_EVER_MAX: whose files in the report directory this process
	 * may read (audit.c). */
	uint32_t ever_n;
	int32_t ever[PROC_EVER_MAX];
};

/* The page, once published (NULL before).  Read it only through
 * procpage(): an atomic acquire load (a plain load on x86), so a reader
 * never races with the publishing compare-and-swap of another thread. */
extern struct procpage *pp;

static inline struct procpage *procpage(void)
{
	return __atomic_load_n(&pp, __ATOMIC_ACQUIRE);
}

int procpage_ensure(void);

/* Records a child the fork wrappers made (fork path: lock-free, no
 * allocation); whether pid is one of them (linear in their number). */
void procpage_child_born(int32_t pid);
int procpage_was_child(int32_t pid);

#endif
