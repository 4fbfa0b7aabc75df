/* table: the frozen regions (contract in table.h).  Called by api (the
 * public functions), fork (the atfork phases), init (configure), report,
 * the guard, its fault handler and unmap (the readers); calls down only:
 * handle, tree, readable, procpage, log, and the features' table_hook functions
 * registered from above.  No malloc; one lock, the table lock (writers and
 * fork); readers lock-free and async-signal-safe. */
#include "table.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "handle.h"
#include "hot.h"
#include "log.h"
#include "procpage.h"
#include "readable.h"
#include "tree.h"

#define LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define STORE_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define CAS_ACQ(p, expected, v)                                                \
	__atomic_compare_exchange_n((p), (expected), (v), 0, __ATOMIC_ACQUIRE, \
	                            __ATOMIC_RELAXED)

/* The state word keeps the handle's gen and tag; its slot bits are free for
 * flags. */
#define ENTRY_LIVE 1ull
#define ENTRY_WRAPPED 2ull /* the slot's gen has wrapped in this line */
#define ENTRY_ID (~HANDLE_SLOT_MASK) /* the gen and tag bits */
#define HUGE_ALIGN (2u << 20)

struct entry {         /* what readers need, 32 bytes */
	uint64_t st;   /* the handle's gen and tag | ENTRY_* flags */
	uint64_t addr; /* valid while st says live */
	uint64_t len;
	uint64_t fseq; /* the line's freeze count at its first freeze */
};

struct entry_cold {
	uint32_t freezes;
	uint32_t flags;
	int32_t owner;
	uint32_t named;
};

/* Every scalar a write changes: what the journal saves. */
struct table_state {
	struct tree_state tree;
	uint64_t slot_bump; /* slots [0, slot_bump) have been used */
	uint64_t free_head, free_tail;
	uint64_t fseq; /* freezes begun in this line */
	uint64_t live;
	uint64_t key;          /* the key tags are made with now */
	uint32_t need_segment; /* a new process: start a segment */
	uint32_t rotated_at;   /* procpage forks when the key last moved */
};

struct journal {
	uint64_t active;
	struct table_state saved;
	uint32_t line_depth;
	uint64_t line_count; /* of the last segment */
	uint32_t slot;
	uint64_t st;
	uint32_t freezes;
};

static struct {
	size_t cap;
	void *map;
	size_t map_len;
	struct entry *entries;
	struct entry_cold *cold;
	char (*names)[FORKSHIM_NAME_MAX];
	uint32_t *free_ring;
	struct tree tree;
	size_t free_min; /* reuse thawed slots once this many wait */

	struct table_state s;
	struct lineage line;
	struct journal j;
	uint64_t holder; /* pthread_self of the writer inside, 0 for none */
	pid_t pid;       /* the process this table belongs to */
	pid_t fixing;    /* the process adopting it */
	int ready;
	int huge; /* MADV_HUGEPAGE asked for */
	size_t page;
} t;

/* The head of every array: the slots, names, free-ring positions, tree
 * nodes and limbo positions a small table uses, in our .bss, together.
 * The rest (t.entries and the others, indexed from 0 too, their first
 * entries unused) is a reservation made only when a write would go past
 * the head (rest_make).  A table with one region so adds no mapping and no
 * page table to the process: every page table is copied by each fork and
 * freed by each child's exit (issue 13: before, the 2 MiB-aligned arrays
 * put the first page of each in a page table of its own).  Inherited by
 * children as the rest is: private, copy-on-write. */
#define HEAD_SLOTS 64u
#define HEAD_NODES 128u

static struct {
	/* A one-region table touches the first two pages. */
	struct entry entries[HEAD_SLOTS];
	struct entry_cold cold[HEAD_SLOTS];
	char names[HEAD_SLOTS][FORKSHIM_NAME_MAX];
	struct tree_node nodes[HEAD_NODES];
	/* Rings, while the rest is not there: thawed slots wait here (no
	 * more than the head's slots) and retired nodes (no more than the
	 * head's nodes). */
	uint32_t free_ring[HEAD_SLOTS];
	struct tree_limbo limbo[HEAD_NODES];
} head;

/* Slot `slot`'s fields: writers' (under the lock, rest_ensure done), and
 * readers' after slot_exists. */
static struct entry *entry_at(uint32_t slot)
{
	return slot < HEAD_SLOTS ? &head.entries[slot]
	                         : &LOAD(&t.entries)[slot];
}

static struct entry_cold *cold_at(uint32_t slot)
{
	return slot < HEAD_SLOTS ? &head.cold[slot] : &LOAD(&t.cold)[slot];
}

static char *name_at(uint32_t slot)
{
	return slot < HEAD_SLOTS ? head.names[slot] : LOAD(&t.names)[slot];
}

/* Position i of the FIFO of thawed slots (writers only). */
static uint32_t *ring_at(uint64_t i)
{
	if (t.free_ring != NULL)
		return &t.free_ring[i % t.cap];
	return &head.free_ring[i % HEAD_SLOTS];
}

/* Whether slot `slot` has memory: a slot past the head was never filled
 * while the rest is not there (readers; the rest is published last). */
static int slot_exists(uint32_t slot)
{
	return slot < HEAD_SLOTS || LOAD_ACQ(&t.entries) != NULL;
}

/* ---- hooks ---- */

static const struct table_hook *hooks[TABLE_HOOKS_MAX];
static uint32_t nhooks;

int table_hook_add(const struct table_hook *hook)
{
	if (nhooks == TABLE_HOOKS_MAX) {
		errno = ENOSPC;
		return -1;
	}
	hooks[nhooks] = hook;
	STORE_REL(&nhooks, nhooks + 1);
	return 0;
}

#define EACH_HOOK(event, ...)                                                  \
	do {                                                                   \
		uint32_t n_ = LOAD_ACQ(&nhooks);                               \
		for (uint32_t i_ = 0; i_ < n_; i_++)                           \
			if (hooks[i_]->event != NULL)                          \
				hooks[i_]->event(__VA_ARGS__);                 \
	} while (0)

/* ---- the lock ----
 * One word in the procpage: its holder's pthread_self (0 when free) |
 * LOCK_WAITERS, taken with one compare-and-swap.  So "this thread holds the
 * lock" is true from the instruction that takes it to the one that frees
 * it, whatever signal comes in between, and a thread that only waits for
 * it does not hold it.  Waiters sleep on the word's low half (futexes are
 * 32 bits); a holder that finds LOCK_WAITERS on release wakes one
 * (Drepper's "Futexes are tricky" mutex, with the owner in the word). */
#define LOCK_WAITERS 1ull /* pthread_self is a pointer: bit 0 is free */

/* errno is kept: the lock is taken on the fork path too. */
static void futex(uint32_t *addr, int op, uint32_t val)
{
	int saved = errno;

	syscall(SYS_futex, addr, op | FUTEX_PRIVATE_FLAG, val, NULL, NULL, 0);
	errno = saved;
}

static uint32_t *lock_low(void)
{
	return (uint32_t *)&procpage()->lock +
	       (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__);
}

/* The lock taken after a failed first try (c: the word it found).  Out of
 * line: the fork path's fast case keeps no frame (fork.c, on_prepare). */
static __attribute__((noinline)) void lock_wait(uint64_t self, uint64_t c)
{
	struct procpage *pg = procpage();

	for (;;) {
		if (c == 0) {
			/* Others may still sleep: the flag stays. */
			if (CAS_ACQ(&pg->lock, &c, self | LOCK_WAITERS))
				return;
			continue;
		}
		if (!(c & LOCK_WAITERS) &&
		    !CAS_ACQ(&pg->lock, &c, c | LOCK_WAITERS))
			continue;
		/* Whoever holds the word with the flag set wakes us. */
		futex(lock_low(), FUTEX_WAIT, (uint32_t)(c | LOCK_WAITERS));
		c = LOAD(&pg->lock);
	}
}

static inline void lock_take(uint64_t self)
{
	uint64_t c = 0;

	if (!CAS_ACQ(&procpage()->lock, &c, self))
		lock_wait(self, c);
}

static __attribute__((noinline)) void lock_wake(void)
{
	futex(lock_low(), FUTEX_WAKE, 1);
}

static inline void lock_release(void)
{
	if (__atomic_exchange_n(&procpage()->lock, 0, __ATOMIC_RELEASE) &
	    LOCK_WAITERS)
		lock_wake();
}

/* Whether the lock is this thread's already: a signal handler interrupted
 * a write or a fork of this thread.  In a child made by a handler's fork
 * inside a write the procpage is zeroed; t.holder, inherited, tells. */
static int lock_mine(uint64_t self)
{
	return (LOAD(&procpage()->lock) & ~LOCK_WAITERS) == self ||
	       LOAD(&t.holder) == self;
}

/* ---- set-up ---- */

static size_t align_up(size_t n, size_t a)
{
	return (n + a - 1) / a * a;
}

void table_configure(size_t capacity)
{
	if (LOAD_ACQ(&t.ready)) {
		/* Made by a freeze before the environment could be read. */
		if (capacity != t.cap)
			log_warn(
			    "FORKSHIM_MAX_REGIONS came too late: the table "
			    "already holds %zu regions",
			    t.cap);
		return;
	}
	t.cap = capacity;
	t.free_min = capacity / 2 < 1024 ? capacity / 2 : 1024;
	t.page = (size_t)sysconf(_SC_PAGESIZE);
	t.pid = getpid();
}

/* Sets the table up, at the first freeze (under the lock), in the head
 * arrays: a process that never freezes has none, and its forks copy
 * nothing of ours. */
static int table_create(void)
{
	t.tree.max_nodes = (uint32_t)tree_nodes_for(t.cap);
	t.tree.head = head.nodes;
	t.tree.head_limbo = head.limbo;
	t.tree.head_nodes = HEAD_NODES;
	t.tree.head_limbo_len = HEAD_NODES;
	t.tree.st = &t.s.tree;
	t.s.tree.node_bump = 1;
	t.s.need_segment = 1;
	STORE_REL(&t.ready, 1);
	return 0;
}

/* Maps the rest of the arrays (under the lock), each aligned to 2 MiB for
 * the huge pages a big table gets (grow_check). */
static int rest_make(void)
{
	size_t cap = t.cap, max_nodes = t.tree.max_nodes;
	size_t off[6], len[6] = {
	                   cap * sizeof(struct entry),
	                   cap * sizeof(struct entry_cold),
	                   cap * FORKSHIM_NAME_MAX,
	                   cap * sizeof(uint32_t),
	                   max_nodes * sizeof(struct tree_node),
	                   max_nodes * sizeof(struct tree_limbo),
	               };
	size_t total = 0;
	uint32_t *ring;
	char *base;

	for (int i = 0; i < 6; i++) {
		off[i] = total;
		total += align_up(len[i], HUGE_ALIGN);
	}
	/* Reserved, not committed: only the pages in use cost memory. */
	base = mmap(NULL, total + HUGE_ALIGN, PROT_READ | PROT_WRITE,
	            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED) {
		log_error("cannot reserve %zu bytes for %zu regions: errno %d",
		          total, cap, errno);
		errno = ENOMEM;
		return -1;
	}
	t.map = base;
	t.map_len = total + HUGE_ALIGN;
	base = (char *)align_up((size_t)base, HUGE_ALIGN);
	t.cold = (struct entry_cold *)(base + off[1]);
	t.names = (char(*)[FORKSHIM_NAME_MAX])(base + off[2]);
	/* Each ring moves before it is switched: a child forked meanwhile
	 * (_Fork) finds either whole. */
	ring = (uint32_t *)(base + off[3]);
	for (uint64_t i = t.s.free_head; i != t.s.free_tail; i++)
		ring[i % t.cap] = head.free_ring[i % HEAD_SLOTS];
	STORE(&t.free_ring, ring);
	tree_provide(&t.tree, (struct tree_node *)(base + off[4]),
	             (struct tree_limbo *)(base + off[5]));
	/* Last: readers take a slot past the head as existing from here. */
	STORE_REL(&t.entries, (struct entry *)(base + off[0]));
	return 0;
}

/* Before a write (under the lock, before its journal): makes the rest of
 * the arrays if the write may reach past the head.  0, or -1 with ENOMEM
 * and nothing changed. */
static int rest_ensure(void)
{
	if (t.entries != NULL)
		return 0;
	if ((t.cap > HEAD_SLOTS && t.s.slot_bump >= HEAD_SLOTS) ||
	    tree_wants_more(&t.tree))
		return rest_make();
	return 0;
}

/* Past HUGE_FROM slots, huge pages keep fork from copying a page-table
 * entry per 4 KiB of a big table.  Asked for once, over the whole mapping,
 * so it stays one mapping; a small table keeps small pages. */
static void grow_check(void)
{
	enum { HUGE_FROM = 32768 };

	if (!t.huge && t.s.slot_bump >= HUGE_FROM && t.map != NULL) {
		t.huge = 1;
		madvise(t.map, t.map_len, MADV_HUGEPAGE);
	}
}

/* ---- the journal ---- */

/* Saves the state a write may change, slot included, before it changes. */
static void journal_begin(void)
{
	t.j.saved = t.s;
	t.j.line_depth = t.line.depth;
	t.j.line_count = t.line.depth ? t.line.seg[t.line.depth - 1].count : 0;
	t.j.slot = 0;
	t.j.st = entry_at(0)->st;
	t.j.freezes = cold_at(0)->freezes;
	__atomic_store_n(&t.j.active, 1, __ATOMIC_SEQ_CST);
}

static void journal_slot(uint32_t slot)
{
	t.j.slot = slot;
	t.j.st = entry_at(slot)->st;
	t.j.freezes = cold_at(slot)->freezes;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static void journal_end(void)
{
	__atomic_store_n(&t.j.active, 0, __ATOMIC_SEQ_CST);
}

/* Puts back the state before an unfinished write. The tree is persistent,
 * so restoring its root and allocator undoes every node it wrote. */
static void journal_undo(void)
{
	STORE_REL(&entry_at(t.j.slot)->st, t.j.st);
	STORE(&cold_at(t.j.slot)->freezes, t.j.freezes);
	t.s = t.j.saved;
	STORE_REL(&t.line.depth, t.j.line_depth);
	if (t.j.line_depth > 0)
		STORE_REL(&t.line.seg[t.j.line_depth - 1].count,
		          t.j.line_count);
	journal_end();
}

/* ---- adoption by a child ---- */

/* Whether this process has not adopted the table it inherited yet. */
static int is_new_process(void)
{
	struct procpage *pg = procpage();

	return pg != NULL && LOAD_ACQ(&pg->adopted) == 0;
}

static void adopt(pid_t now)
{
	pid_t seen = LOAD(&t.fixing);

	/* Several threads of a child made by _Fork may get here at once. */
	while (seen != now) {
		if (__atomic_compare_exchange_n(&t.fixing, &seen, now, 0,
		                                __ATOMIC_ACQ_REL,
		                                __ATOMIC_RELAXED)) {
			/* Unless this thread is itself inside a write that
			 * began in the parent and goes on here.  The lock is
			 * already free: the kernel zeroed the procpage. */
			if (LOAD(&t.holder) != (uint64_t)pthread_self()) {
				if (LOAD(&t.j.active))
					journal_undo();
				STORE(&t.holder, 0);
			}
			t.s.need_segment = 1;
			STORE_REL(&t.pid, now);
			STORE_REL(&procpage()->adopted, 1);
			return;
		}
	}
	while (is_new_process())
		sched_yield();
}

/* A new process adopts the table before its first write or fork: the lock
 * may be held by a thread it does not have, and a write another thread was
 * making may be half done.  Children made by fork() adopt it lazily too, so
 * the fork path makes no system call for it. */
static __attribute__((noinline)) void adopt_now(void)
{
	adopt(getpid());
}

static inline void ensure_adopted(void)
{
	if (is_new_process())
		adopt_now();
}

/* The procpage, mapped at the first fork or freeze.  A process that makes
 * it cannot have inherited a table (a table needs one): it is its own, and
 * t.pid, set at init, may be a parent's (a child made by _Fork). */
FORKSHIM_HOT int table_procpage(void)
{
	if (procpage() != NULL)
		return 0;
	if (procpage_ensure() < 0)
		return -1;
	STORE_REL(&t.pid, getpid());
	return 0;
}

static void writer_leave(void)
{
	STORE(&t.holder, 0);
	lock_release();
}

static int writer_enter(void)
{
	uint64_t self = (uint64_t)pthread_self();

	if (table_procpage() < 0) {
		errno = ENOMEM; /* no procpage: see procpage_ensure */
		return -1;
	}
	/* Called from a signal handler that interrupted this thread inside a
	 * write or a fork (between our prepare and parent handlers). */
	if (lock_mine(self)) {
		errno = EDEADLK;
		return -1;
	}
	lock_take(self);
	/* After the lock: a thread that waited for it across a fork (its
	 * handler forked) finds itself in a child that has not adopted. */
	ensure_adopted();
	STORE(&t.holder, self);
	if (!LOAD(&t.ready) && table_create() < 0) {
		writer_leave();
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

/* ---- fork phases ---- */

/* Nothing here writes thread-local or .bss memory: after a fork those
 * pages are copy-on-write in the parent, and the next write to each would
 * cost it a page fault per fork.  The lock lives in the procpage. */
FORKSHIM_HOT uint64_t table_prepare(void)
{
	struct procpage *pg = procpage();
	uint64_t self = (uint64_t)pthread_self(), birth;

	if (pg == NULL)
		return 0;
	ensure_adopted();
	/* A signal handler forking while this thread is inside a write (the
	 * write goes on in both processes after the handler returns) or a
	 * fork: the lock is already ours.  The lock word names its owner the
	 * moment it is taken, so no signal needs blocking here. */
	if (lock_mine(self))
		pg->fork_depth++;
	else
		lock_take(self);
	birth = LOAD(&t.ready) ? t.s.fseq : 0;
	EACH_HOOK(forking, birth);
	return birth;
}

FORKSHIM_HOT void table_parent(void)
{
	struct procpage *pg = procpage();

	if (pg == NULL)
		return;
	__atomic_fetch_add(&pg->forks, 1, __ATOMIC_RELAXED);
	EACH_HOOK(forked);
	if (pg->fork_depth > 0) {
		pg->fork_depth--; /* a nested fork: the lock stays ours */
		return;
	}
	lock_release();
}

/* ---- readers ---- */

static int malformed(forkshim_handle h)
{
	return h == 0 || handle_slot(h) >= t.cap || handle_gen(h) == 0 ||
	       handle_tag(h) == 0;
}

/* The errno for a handle that does not name a live region of this line;
 * st is the slot's state word. */
static int handle_error(forkshim_handle h, uint64_t st)
{
	if (st == 0)
		return ENOENT; /* the slot was never filled in this line */
	if ((st & ENTRY_ID) == (h & ENTRY_ID))
		return ESTALE;
	/* Until its gen wraps, a slot's gens only grow along the line: a
	 * higher one was made by an ancestor after our birth.  (Also true of
	 * a parent that made us with _Fork and so kept its key.) */
	if (!(st & ENTRY_WRAPPED) && handle_gen(h) > handle_gen(st))
		return ENOENT;
	return handle_made_in_line(&t.line, h) ? ESTALE : ENOENT;
}

/* Reads slot fields consistently: returns the entry, or NULL with errno. */
static const struct entry *live_entry(forkshim_handle h, struct entry *copy)
{
	const struct entry *e;
	uint64_t st;

	if (malformed(h)) {
		errno = EBADF;
		return NULL;
	}
	if (!LOAD_ACQ(&t.ready)) {
		errno = ENOENT; /* no region was ever frozen in this line */
		return NULL;
	}
	if (!slot_exists(handle_slot(h))) {
		errno = ENOENT; /* never filled */
		return NULL;
	}
	e = entry_at(handle_slot(h));
	st = LOAD_ACQ(&e->st);
	if ((st & ENTRY_ID) == (h & ENTRY_ID) && (st & ENTRY_LIVE)) {
		copy->st = st;
		copy->addr = LOAD(&e->addr);
		copy->len = LOAD(&e->len);
		copy->fseq = LOAD(&e->fseq);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (LOAD(&e->st) == st)
			return e;
		errno = ESTALE; /* thawed while we read it */
		return NULL;
	}
	errno = handle_error(h, st);
	return NULL;
}

const void *table_deref(forkshim_handle h, size_t *len)
{
	struct entry copy;

	if (live_entry(h, &copy) == NULL)
		return NULL;
	if (len != NULL)
		*len = copy.len;
	return (const void *)(uintptr_t)copy.addr;
}

int table_fseq(forkshim_handle h, uint64_t *fseq)
{
	struct entry copy;

	if (live_entry(h, &copy) == NULL)
		return -1;
	*fseq = copy.fseq;
	return 0;
}

int table_info(forkshim_handle h, struct forkshim_info *out)
{
	uint32_t slot = handle_slot(h);
	struct entry copy;
	const struct entry *e = live_entry(h, &copy);
	struct forkshim_info info;

	if (e == NULL)
		return -1;
	memset(&info, 0, sizeof(info));
	info.addr = (const void *)(uintptr_t)copy.addr;
	info.len = copy.len;
	info.owner = LOAD(&cold_at(slot)->owner);
	info.flags = LOAD(&cold_at(slot)->flags);
	info.freezes = LOAD(&cold_at(slot)->freezes);
	if (LOAD(&cold_at(slot)->named))
		for (int i = 0; i < FORKSHIM_NAME_MAX - 1; i++)
			info.name[i] = LOAD(&name_at(slot)[i]);
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	if (LOAD(&e->st) != copy.st) {
		errno = ESTALE;
		return -1;
	}
	*out = info;
	return 0;
}

static int bad_range(const void *addr, size_t len)
{
	uintptr_t a = (uintptr_t)addr;

	/* The end must be representable: [a, a+len) may not wrap. */
	return addr == NULL || len == 0 || a + len < a || a + len == 0;
}

forkshim_handle table_find(const void *addr, size_t len)
{
	struct tree_entry e;
	uintptr_t a = (uintptr_t)addr;

	if (bad_range(addr, len)) {
		errno = EINVAL;
		return 0;
	}
	if (!LOAD_ACQ(&t.ready) || !tree_lookup(&t.tree, a, &e) ||
	    a + len > e.end) {
		errno = ENOENT;
		return 0;
	}
	return e.handle;
}

int table_overlaps(uint64_t start, uint64_t end)
{
	struct tree_entry e;

	/* Regions never overlap: the one starting last before end is the
	 * only one that can reach past start. */
	return end > start && LOAD_ACQ(&t.ready) &&
	       tree_lookup(&t.tree, end - 1, &e) && e.end > start;
}

/* ---- writers ---- */

/* Moves to the next key of our segment, or starts our segment. */
static void rotate_key(void)
{
	uint32_t d = t.line.depth;

	if (t.s.need_segment || d == 0) {
		if (d == LINE_DEPTH) {
			/* Forget the oldest generation; its handles then
			 * read as ENOENT rather than ESTALE. */
			memmove(&t.line.seg[0], &t.line.seg[1],
			        sizeof(t.line.seg[0]) * (LINE_DEPTH - 1));
			t.line.dropped++;
			d--;
		}
		t.s.key = handle_new_key();
		STORE(&t.line.seg[d].first, t.s.key);
		STORE(&t.line.seg[d].count, 1);
		STORE_REL(&t.line.depth, d + 1);
	} else {
		t.s.key = handle_next_key(t.s.key);
		STORE_REL(&t.line.seg[d - 1].count,
		          t.line.seg[d - 1].count + 1);
	}
	t.s.need_segment = 0;
	t.s.rotated_at = LOAD(&procpage()->forks);
}

static uint32_t slot_take(void)
{
	uint64_t waiting = t.s.free_tail - t.s.free_head, min = t.free_min;
	uint64_t bump;

	/* FIFO reuse, and only once many wait: a slot comes back rarely, so
	 * its 16-bit generation lasts long.  Within the head, once half of
	 * it waits: a program that freezes and thaws a few regions keeps a
	 * small table (a wrapped generation moves the key: see table_freeze).
	 */
	if (t.entries == NULL && min > HEAD_SLOTS / 2)
		min = HEAD_SLOTS / 2;
	if (waiting > 0 && (waiting >= min || t.s.slot_bump >= t.cap))
		return *ring_at(t.s.free_head++);
	/* Stored atomically: table_next reads it without the lock (a report
	 * written from a fatal signal's handler while a thread freezes). */
	bump = t.s.slot_bump;
	STORE(&t.s.slot_bump, bump + 1);
	return (uint32_t)bump;
}

forkshim_handle table_freeze(const void *addr, size_t len, const char *name,
                             unsigned flags)
{
	uintptr_t a = (uintptr_t)addr;
	struct tree_entry near;
	struct procpage *pg;
	forkshim_handle h;

	if (bad_range(addr, len) || (flags & ~TABLE_FLAGS)) {
		errno = EINVAL;
		return 0;
	}
	if (table_procpage() < 0) {
		errno = ENOMEM;
		return 0;
	}
	pg = procpage();
	ensure_adopted(); /* readable_range needs our pid */
	if (!readable_range(LOAD(&t.pid), addr, len, READABLE_SMALL)) {
		errno = EFAULT;
		return 0;
	}
	if (writer_enter() < 0)
		return 0;
	/* Under the lock: no fork copies the descriptors it opens. */
	if (!readable_range(LOAD(&t.pid), addr, len, READABLE_LARGE)) {
		writer_leave();
		errno = EFAULT;
		return 0;
	}
	if (tree_lookup_locked(&t.tree, a + len - 1, &near) && near.end > a) {
		if (near.start == a && near.end == a + len &&
		    cold_at(handle_slot(near.handle))->freezes < UINT32_MAX) {
			__atomic_fetch_add(
			    &cold_at(handle_slot(near.handle))->freezes, 1,
			    __ATOMIC_RELAXED);
			writer_leave();
			return near.handle;
		}
		writer_leave();
		errno =
		    near.start == a && near.end == a + len ? EOVERFLOW : EEXIST;
		return 0;
	}
	if (t.s.live >= t.cap) {
		writer_leave();
		errno = ENOMEM;
		return 0;
	}

	if (rest_ensure() < 0) {
		writer_leave();
		errno = ENOMEM;
		return 0;
	}
	grow_check();
	journal_begin();
	uint32_t slot = slot_take();

	journal_slot(slot);

	uint64_t wrapped = entry_at(slot)->st & ENTRY_WRAPPED;
	uint32_t gen = handle_gen(entry_at(slot)->st) + 1;

	if (gen > HANDLE_GEN_MAX) {
		gen = 1; /* the old tags must not come back: next key */
		wrapped = ENTRY_WRAPPED;
		t.s.rotated_at = LOAD(&pg->forks) - 1; /* move now */
	}
	if (t.s.need_segment || t.s.rotated_at != LOAD(&pg->forks))
		rotate_key();
	h = handle_make(slot, gen, handle_tag_for(t.s.key, slot, gen));

	struct entry *e = entry_at(slot);
	struct entry_cold *cold = cold_at(slot);
	char *slot_name = name_at(slot);

	/* Readers that still hold this slot's previous state word must see it
	 * change before they can see the new fields. */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	STORE(&e->addr, a);
	STORE(&e->len, len);
	STORE(&e->fseq, ++t.s.fseq);
	/* Atomic stores: table_info may be reading a stale handle of the
	 * slot (it then finds st changed, and drops what it read). */
	STORE(&cold->freezes, 1);
	STORE(&cold->flags, flags);
	STORE(&cold->owner, LOAD(&t.pid));
	STORE(&cold->named, name != NULL && name[0] != '\0');
	if (name != NULL && name[0] != '\0') {
		int i = 0;

		for (; i < FORKSHIM_NAME_MAX - 1 && name[i] != '\0'; i++)
			STORE(&slot_name[i], name[i]);
		for (; i < FORKSHIM_NAME_MAX; i++)
			STORE(&slot_name[i], '\0');
	}
	STORE_REL(&e->st, (h & ENTRY_ID) | ENTRY_LIVE | wrapped);

	near = (struct tree_entry){a, a + len, h};
	if (tree_insert(&t.tree, &near) < 0) {
		journal_undo();
		writer_leave();
		errno = ENOMEM;
		return 0;
	}
	t.s.live++;
	journal_end();
	EACH_HOOK(frozen, h, addr, len, flags);
	writer_leave();
	return h;
}

int table_thaw(forkshim_handle h)
{
	struct entry copy;
	const struct entry *e;
	uint32_t slot = handle_slot(h);

	if (writer_enter() < 0)
		return -1;
	e = live_entry(h, &copy);
	if (e == NULL) {
		int err = errno;

		writer_leave();
		errno = err;
		return -1;
	}
	if (cold_at(slot)->freezes > 1) {
		__atomic_fetch_sub(&cold_at(slot)->freezes, 1,
		                   __ATOMIC_RELAXED);
		writer_leave();
		return 0;
	}
	if (rest_ensure() < 0) {
		writer_leave();
		errno = ENOMEM;
		return -1;
	}
	EACH_HOOK(thawing, h, (const void *)(uintptr_t)copy.addr, copy.len,
	          cold_at(slot)->flags);
	journal_begin();
	journal_slot(slot);
	STORE_REL(&entry_at(slot)->st, copy.st & ~ENTRY_LIVE);
	STORE(&cold_at(slot)->freezes, 0);
	if (tree_remove(&t.tree, copy.addr) < 0) {
		int err = errno;

		journal_undo();
		writer_leave();
		errno = err == ENOENT ? ESTALE : err;
		return -1;
	}
	*ring_at(t.s.free_tail++) = slot;
	t.s.live--;
	journal_end();
	writer_leave();
	return 0;
}

/* ---- for the reports ---- */

forkshim_handle table_next(uint32_t *slot)
{
	uint64_t used;

	if (!LOAD_ACQ(&t.ready))
		return 0;
	used = LOAD(&t.s.slot_bump);
	for (; *slot < used && *slot < t.cap && slot_exists(*slot); (*slot)++) {
		uint64_t st = LOAD_ACQ(&entry_at(*slot)->st);

		if (st & ENTRY_LIVE)
			return (st & ENTRY_ID) | (*slot)++;
	}
	return 0;
}

uint64_t table_line_freezes(void)
{
	return LOAD_ACQ(&t.ready) ? LOAD(&t.s.fseq) : 0;
}
