/* shared: frozen regions in sealed shared memory.  The design is in
 * shared.h; this file is its only implementation. */
#include "shared.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "handle.h"
#include "log.h"
#include "procpage.h"
#include "table.h"

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define STORE_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define CAS(p, expected, v)                                                    \
	__atomic_compare_exchange_n((p), (expected), (v), 0, __ATOMIC_ACQ_REL, \
	                            __ATOMIC_RELAXED)

#define HEAD_SPACE 4096u                    /* page 0 of a region's memfd */
#define REGION_MAGIC 0x3147455253464b46ull  /* "FKSREG1": data at HEAD_SPACE */
#define REGION_MAGIC2 0x3247455253464b46ull /* "FKSREG2": at data_off */
/* A PMD: the kernel maps a shmem huge page with one entry only where the
 * file offset and the address agree modulo this.  Regions of HUGE_MIN or
 * more lay their data out so that they do (see data_offset); smaller ones
 * keep the FKSREG1 layout. */
#define HUGE_SIZE (2u << 20)
#define HUGE_MIN (4u << 20)
/* Copies of this much or more go through a pipe of this size (see
 * fill_data; F_SETPIPE_SZ's limit for an unprivileged process). */
#define FILL_PIPE_MIN (256u << 10)
#define FILL_PIPE_SIZE (1 << 20)
#define DIR_MAGIC 0x3152494453464b46ull /* "FKSDIR1" */
#define TOKEN_MAGIC 0x314b5446u         /* "FTK1" */
#define SEALS_FROZEN (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)
#define SECRET_BYTES 16
#define DIR_SLOTS 4096u
#define OWNED_MAX 4096u
#define IMPORTS_MAX 4096u
#define FD_LOW 256 /* our descriptors go at or above this when allowed */

int shared_used;

/* ---- on-disk (in-memfd) formats ---- */

struct region_head {
	uint64_t magic;
	uint64_t len;  /* data bytes */
	uint64_t addr; /* the freezer's address of the data */
	uint8_t secret[SECRET_BYTES];
	int32_t freezer;
	uint32_t frozen; /* 1 once sealed */
	uint64_t freezer_start;
	char name[FORKSHIM_NAME_MAX];
	uint64_t data_off; /* FKSREG2: where the data's page starts */
};

/* Slot states (low 2 bits of state; the rest counts reuses). */
enum { SLOT_FREE = 0, SLOT_BUSY = 1, SLOT_LIVE = 2, SLOT_DEAD = 3 };
#define SLOT_KIND(st) ((st)&3u)
#define SLOT_SEQ 4u

struct dir_slot {
	uint64_t state;
	uint64_t handle;
	uint64_t dev, ino;
	uint64_t addr, len;
	int32_t freezer, freezer_fd;
	int32_t root_fd; /* the root's copy, -1 until it took it */
	uint32_t pad;
	uint64_t freezer_start;
};

struct dir_head {
	uint64_t magic;
	int32_t root;
	int32_t dirfd;
	uint64_t root_start;
	int32_t rx, tx; /* the socketpair: root receives on rx */
	uint64_t rx_ino, tx_ino;
	uint32_t slots;
	uint32_t used; /* slots [0, used) have been claimed at some time */
	/* Bumped after each hand-off sent and each slot marked dead; the
	 * root's drain keeps the count it started from in drained.  A reap
	 * drains only when they differ: no system call per wait otherwise. */
	uint32_t changes, drained;
	char fill[8];
};

struct directory {
	struct dir_head h;
	struct dir_slot s[DIR_SLOTS];
};

/* The token's layout: exactly FORKSHIM_TOKEN_SIZE bytes. */
struct token {
	uint32_t magic;
	int32_t holder;
	int32_t holder_fd;
	uint32_t holder_start;
	int32_t root;
	int32_t root_dirfd;
	uint32_t root_start;
	uint32_t dev;
	uint64_t ino;
	uint8_t secret[SECRET_BYTES];
	uint32_t reserved;
	uint32_t check;
};
_Static_assert(sizeof(struct token) == FORKSHIM_TOKEN_SIZE, "token size");

/* What a root receives with each descriptor. */
struct handoff {
	uint32_t slot;
	uint32_t pad;
	uint64_t state; /* the slot's state word when sent */
	uint64_t ino;
};

/* ---- per-process state (private, inherited by fork) ---- */

/* An owned entry's state: claimed with compare-and-swap, no lock (the
 * table's thawing hook runs under the table lock, maybe in a signal
 * handler). */
enum {
	OWN_FREE = 0,
	OWN_BUSY = 1,
	OWN_ALLOC = 2,
	OWN_FROZEN = 3,
	OWN_THAWED =
	    4 /* forkshim_alloc memory to unmap once out of the table */
};

struct owned { /* a region this process froze, or allocated */
	uint32_t state;
	uint32_t pad0;
	uint64_t handle; /* 0 while an unfrozen allocation */
	int32_t fd;      /* O_RDWR memfd */
	int32_t alloc;   /* forkshim_alloc memory */
	int32_t frozen;
	int32_t freezer; /* the process that froze it */
	uint64_t freezer_start;
	uint64_t dev, ino;
	uintptr_t map; /* alloc: start of the data mapping */
	size_t maplen;
	uintptr_t addr; /* the frozen range */
	size_t len;
	int32_t slot;      /* directory slot, -1 none */
	uint32_t data_off; /* where map's page starts in the memfd */
	uint8_t secret[SECRET_BYTES];
};

struct import {
	uint64_t state; /* 0 free, 1 busy, 2 ready, 3 dying */
	uint64_t dev, ino;
	uintptr_t base; /* the mapping */
	size_t maplen;
	uintptr_t data; /* what import returned */
	size_t len;
	uint64_t handle;   /* set when a late deref mapped it */
	uint32_t refs;     /* imports not released */
	uint32_t pinned;   /* mapped by a late deref: never unmapped */
	uint32_t borrowed; /* the freezer's own mapping: never ours to unmap */
	int32_t owner;     /* the freezer, from the header */
	char name[FORKSHIM_NAME_MAX];
	uint8_t secret[SECRET_BYTES];
};

/* forkshim_alloc tells by procpage's forking and fork_gen (a fork under
 * way, and a count of both its phases) whether a fork may have copied its
 * writable mapping before it was made MADV_DONTFORK.  The fork path writes
 * them in the parent after the fork: in .bss that write cost the parent a
 * copy-on-write fault per fork. */

static struct directory *dir;  /* inherited: MAP_SHARED */
static struct owned *owned;    /* OWNED_MAX entries, made on first use */
static struct import *imports; /* IMPORTS_MAX, made on first use */
/* Entries [0, hi) have been claimed at some time: scans stop there, so
 * the pages past it are never touched and a fork has no page tables of
 * them to copy (a scan of all 4096 made every page of both arrays
 * present: ~0.03 ms more per fork here). */
static unsigned owned_hi, imports_hi;

static void hi_raise(unsigned *hi, unsigned i)
{
	unsigned h = LOAD(hi);

	while (h < i + 1 && !CAS(hi, &h, i + 1))
		;
}
static size_t page;

/* ---- small async-signal-safe helpers ---- */

/* Any thread may be first: the same value, stored atomically. */
static size_t page_size(void)
{
	size_t p = LOAD(&page);

	if (p == 0) {
		p = (size_t)sysconf(_SC_PAGESIZE);
		STORE(&page, p);
	}
	return p;
}

static size_t round_up(size_t n, size_t a)
{
	return (n + a - 1) / a * a;
}

static char *put_uint(char *p, uint64_t v)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	while (n > 0)
		*p++ = tmp[--n];
	return p;
}

/* "/proc/PID/fd/FD", or "/proc/PID/stat" with fd < 0. */
static void proc_path(char *buf, pid_t pid, int fd)
{
	char *p = buf;

	memcpy(p, "/proc/", 6);
	p = put_uint(p + 6, (uint64_t)pid);
	if (fd >= 0) {
		memcpy(p, "/fd/", 4);
		p = put_uint(p + 4, (uint64_t)fd);
	} else {
		memcpy(p, "/stat", 5);
		p += 5;
	}
	*p = '\0';
}

/* Fields 4 (ppid) and 22 (start time) of /proc/PID/stat; -1 when the
 * process is gone (or a zombie: its descriptors are closed). */
static int proc_stat(pid_t pid, pid_t *ppid, uint64_t *start)
{
	char path[48], buf[1024];
	int fd, field = 2;
	ssize_t n;
	char *p = NULL;

	proc_path(path, pid, -1);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	for (ssize_t i = n - 1; i >= 0; i--)
		if (buf[i] == ')') {
			p = buf + i + 1;
			break;
		}
	if (p == NULL)
		return -1;
	/* p is at " S ppid ...": field 3 is the state. */
	while (*p != '\0') {
		while (*p == ' ')
			p++;
		field++;
		if (field == 3 && (*p == 'Z' || *p == 'X'))
			return -1;
		if (field == 4 || field == 22) {
			uint64_t v = 0;

			while (*p >= '0' && *p <= '9')
				v = v * 10 + (uint64_t)(*p++ - '0');
			if (field == 4 && ppid != NULL)
				*ppid = (pid_t)v;
			if (field == 22) {
				if (start != NULL)
					*start = v;
				return 0;
			}
		}
		while (*p != ' ' && *p != '\0')
			p++;
	}
	return -1;
}

static uint64_t start_of(pid_t pid)
{
	uint64_t s = 0;

	return proc_stat(pid, NULL, &s) == 0 ? s : 0;
}

/* Whether pid lives and started at `start` (low 32 bits when short). */
static int alive(pid_t pid, uint64_t start, int short_start)
{
	uint64_t s;

	if (pid <= 0 || proc_stat(pid, NULL, &s) < 0)
		return 0;
	return short_start ? (uint32_t)s == (uint32_t)start : s == start;
}

static uint32_t token_check(const struct token *t)
{
	const unsigned char *b = (const unsigned char *)t;
	uint64_t h = 0x6a09e667f3bcc908ull, w;

	for (size_t i = 0; i < offsetof(struct token, check); i += 4) {
		memcpy(&w, b + i, 4);
		h = handle_mix(h ^ (w & 0xffffffffu) ^ (uint64_t)i << 40);
	}
	return (uint32_t)(h >> 32) ^ (uint32_t)h;
}

static int secret_equal(const uint8_t *a, const uint8_t *b)
{
	uint8_t d = 0;

	for (int i = 0; i < SECRET_BYTES; i++)
		d |= (uint8_t)(a[i] ^ b[i]);
	return d == 0;
}

static int new_secret(uint8_t *out)
{
	ssize_t n = getrandom(out, SECRET_BYTES, 0);

	if (n != SECRET_BYTES) {
		errno = ENOSYS;
		return -1;
	}
	return 0;
}

/* Moves fd to FD_LOW or above (out of the host's way), close-on-exec. */
static int fd_high(int fd)
{
	struct rlimit rl;
	int nfd;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < 2 * FD_LOW)
		return fd;
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, FD_LOW);
	if (nfd < 0)
		return fd;
	close(fd);
	return nfd;
}

static int memfd_new(const char *name)
{
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING |
	                                MFD_NOEXEC_SEAL);

	if (fd < 0 && errno == EINVAL)
		fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	return fd < 0 ? -1 : fd_high(fd);
}

/* Opens /proc/PID/fd/FD read-only; its identity in *st. */
static int open_proc_fd(pid_t pid, int fd, struct stat *st)
{
	char path[64];
	int r;

	proc_path(path, pid, fd);
	r = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (r < 0)
		return -1;
	if (fstat(r, st) != 0) {
		close(r);
		return -1;
	}
	return r;
}

static int reopen_ro(int fd)
{
	struct stat st;

	return open_proc_fd(getpid(), fd, &st);
}

/* ---- the owned registry (lock-free: entries claimed by CAS) ---- */

/* An entry's fields are read without a claim (scans by handle or address,
 * export's copy checked against the state afterwards) while its claimer
 * may rewrite them: every access to them is atomic (relaxed, a word at a
 * time); the claimer works on a copy and stores it whole, then publishes
 * the state with release. */
_Static_assert(sizeof(struct owned) % 8 == 0, "owned: whole words");

/* Copies words [1, n) but `skip` (the first is a state word): atomic
 * loads from a shared src (store 0), or atomic stores into a shared dst
 * (store 1). */
static void words_copy(void *dst, const void *src, size_t n, size_t skip,
                       int store)
{
	const uint64_t *s = src;
	uint64_t *d = dst;

	for (size_t i = 1; i < n; i++) {
		if (i == skip)
			continue;
		if (store)
			STORE(&d[i], s[i]);
		else
			d[i] = LOAD(&s[i]);
	}
}

static void owned_load(struct owned *dst, const struct owned *src)
{
	dst->state = LOAD(&src->state);
	words_copy(dst, src, sizeof(*src) / 8, 0, 0);
}

/* All but the state. */
static void owned_store(struct owned *dst, const struct owned *src)
{
	words_copy(dst, src, sizeof(*src) / 8, 0, 1);
}

static int owned_ready(void)
{
	struct owned *p, *none = NULL;

	if (LOAD_ACQ(&owned) != NULL)
		return 0;
	p = mmap(NULL, OWNED_MAX * sizeof(struct owned), PROT_READ | PROT_WRITE,
	         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		errno = ENOMEM;
		return -1;
	}
	if (!CAS(&owned, &none, p))
		munmap(p, OWNED_MAX * sizeof(struct owned));
	return 0;
}

/* A free entry, now OWN_BUSY and cleared; the caller publishes it. */
static struct owned *owned_claim(void)
{
	struct owned *o = LOAD_ACQ(&owned);

	for (unsigned i = 0; o != NULL && i < OWNED_MAX; i++) {
		uint32_t st = OWN_FREE;

		if (LOAD(&o[i].state) == OWN_FREE &&
		    CAS(&o[i].state, &st, OWN_BUSY)) {
			struct owned c;

			hi_raise(&owned_hi, i);
			memset(&c, 0, sizeof(c));
			c.fd = -1;
			c.slot = -1;
			owned_store(&o[i], &c);
			return &o[i];
		}
	}
	errno = ENOMEM;
	return NULL;
}

/* The frozen entry of h (not claimed: copy it, then check its state). */
static struct owned *owned_by_handle(forkshim_handle h)
{
	struct owned *o = LOAD_ACQ(&owned);

	for (unsigned i = 0; o != NULL && i < LOAD_ACQ(&owned_hi); i++)
		if (LOAD_ACQ(&o[i].state) == OWN_FROZEN &&
		    LOAD(&o[i].handle) == h)
			return &o[i];
	return NULL;
}

/* Claims the entry in state `from` whose allocation starts at a and was
 * made by this process: a child forked between alloc and freeze inherits
 * the entry but not the memory (MADV_DONTFORK), and the range may hold
 * something else there (its late deref of that very region). */
static struct owned *owned_take(uintptr_t a, uint32_t from)
{
	struct owned *o = LOAD_ACQ(&owned);
	pid_t self = getpid();

	for (unsigned i = 0; o != NULL && i < LOAD_ACQ(&owned_hi); i++) {
		uint32_t st = from;

		if (LOAD_ACQ(&o[i].state) == from && LOAD(&o[i].alloc) &&
		    LOAD(&o[i].map) == a && LOAD(&o[i].freezer) == self &&
		    CAS(&o[i].state, &st, OWN_BUSY))
			return &o[i];
	}
	return NULL;
}

/* ---- the directory ---- */

/* Makes the family directory (this process is its root).  Async-signal-
 * safe; two threads racing: one mapping wins. */
static int dir_create(void)
{
	struct directory *d;
	int fd, sv[2];
	struct stat st;

	if (LOAD_ACQ(&dir) != NULL)
		return 0;
	fd = memfd_new("forkshim-dir");
	if (fd < 0)
		return -1;
	if (ftruncate(fd, (off_t)round_up(sizeof(*d), page_size())) != 0) {
		close(fd);
		return -1;
	}
	d = mmap(NULL, sizeof(*d), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (d == MAP_FAILED) {
		close(fd);
		return -1;
	}
	fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		munmap(d, sizeof(*d));
		close(fd);
		return -1;
	}
	sv[0] = fd_high(sv[0]);
	sv[1] = fd_high(sv[1]);
	d->h.root = getpid();
	d->h.root_start = start_of(d->h.root);
	d->h.dirfd = fd;
	d->h.rx = sv[0];
	d->h.tx = sv[1];
	d->h.rx_ino = fstat(sv[0], &st) == 0 ? st.st_ino : 0;
	d->h.tx_ino = fstat(sv[1], &st) == 0 ? st.st_ino : 0;
	d->h.slots = DIR_SLOTS;
	STORE_REL(&d->h.magic, DIR_MAGIC);
	struct directory *none = NULL;

	if (!CAS(&dir, &none, d)) {
		munmap(d, sizeof(*d));
		close(fd);
		close(sv[0]);
		close(sv[1]);
	}
	return 0;
}

/* This process's own mappings for shared regions (the family directory
 * and the owned registry), made before a region's mapping: made after it,
 * mmap puts them below it, away from everything else a fork copies, and a
 * process holding 1 GiB forked 9-14% slower than one holding a plain
 * memfd as big (README, "Fork of a process holding shared memory").  A
 * directory that cannot be made is logged (children forked later will
 * not see shared regions); 0, or -1 with ENOMEM when the registry cannot
 * be made. */
static int own_mappings_ready(void)
{
	if (LOAD_ACQ(&dir) == NULL && dir_create() < 0)
		log_warn("cannot make the shared-region directory: errno %d",
		         errno);
	return owned_ready();
}

static int is_root(void)
{
	struct directory *d = LOAD_ACQ(&dir);

	return d != NULL && d->h.root == getpid();
}

/* Whether fd still is the socket the directory names (the host may have
 * closed it, or put another file at its number). */
static int fd_is(int fd, uint64_t ino)
{
	struct stat st;

	return fd >= 0 && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) &&
	       st.st_ino == ino;
}

/* One hand-off message on the directory's socket: m and, by SCM_RIGHTS,
 * fd.  Both never block.  handoff_send: 0, or -1 with errno.  handoff_recv
 * (flags MSG_PEEK or 0): the bytes read (sizeof(*m) for a whole message),
 * 0 for an empty queue, -1 with errno; *fd the descriptor received
 * (close-on-exec), else -1. */
/* Room for one descriptor's control message, aligned. */
union fd_cmsg {
	struct cmsghdr c;
	char buf[CMSG_SPACE(sizeof(int))];
};

static void handoff_msg(struct msghdr *msg, struct iovec *iov, char *cbuf,
                        size_t clen)
{
	memset(msg, 0, sizeof(*msg));
	msg->msg_iov = iov;
	msg->msg_iovlen = 1;
	msg->msg_control = cbuf;
	msg->msg_controllen = clen;
}

static int handoff_send(int sock, const struct handoff *m, int fd)
{
	struct iovec iov = {(void *)m, sizeof(*m)};
	union fd_cmsg u;
	struct msghdr msg;
	struct cmsghdr *c;

	memset(&u, 0, sizeof(u));
	handoff_msg(&msg, &iov, u.buf, sizeof(u.buf));
	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	return sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) ==
	               (ssize_t)sizeof(*m)
	           ? 0
	           : -1;
}

static ssize_t handoff_recv(int sock, struct handoff *m, int *fd, int flags)
{
	struct iovec iov = {m, sizeof(*m)};
	union fd_cmsg u;
	struct msghdr msg;
	struct cmsghdr *c;
	ssize_t n;

	*fd = -1;
	do {
		handoff_msg(&msg, &iov, u.buf, sizeof(u.buf));
		n = recvmsg(sock, &msg,
		            flags | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
	c = CMSG_FIRSTHDR(&msg);
	if (c != NULL && c->cmsg_level == SOL_SOCKET &&
	    c->cmsg_type == SCM_RIGHTS)
		memcpy(fd, CMSG_DATA(c), sizeof(int));
	return n;
}

/* The root takes the descriptors children sent, then closes its copies
 * of dead slots and frees them. */
static unsigned drainers; /* threads in dir_drain */

static void dir_drain(void)
{
	struct directory *d = LOAD_ACQ(&dir);
	int saved = errno;
	uint32_t seen;

	if (d == NULL || d->h.root != getpid() || !fd_is(d->h.rx, d->h.rx_ino))
		goto out;
	__atomic_fetch_add(&drainers, 1, __ATOMIC_ACQ_REL);
	seen = LOAD_ACQ(&d->h.changes);
	for (;;) {
		struct handoff m;
		int fd;
		ssize_t n = handoff_recv(d->h.rx, &m, &fd, 0);

		if (n <= 0)
			break;
		if (fd < 0)
			continue;
		fd = fd_high(fd);
		if (n == sizeof(m) && m.slot < DIR_SLOTS) {
			struct dir_slot *s = &d->s[m.slot];
			uint64_t st = LOAD_ACQ(&s->state);
			int32_t none = -1;
			struct stat fs;

			if ((st & ~3ull) == (m.state & ~3ull) &&
			    SLOT_KIND(st) != SLOT_FREE && fstat(fd, &fs) == 0 &&
			    fs.st_ino == m.ino && CAS(&s->root_fd, &none, fd))
				continue;
		}
		close(fd);
	}
	for (unsigned i = 0; i < LOAD_ACQ(&d->h.used) && i < DIR_SLOTS; i++) {
		struct dir_slot *s = &d->s[i];
		uint64_t st = LOAD_ACQ(&s->state);
		int32_t rfd;

		if (SLOT_KIND(st) != SLOT_DEAD)
			continue;
		rfd = __atomic_exchange_n(&s->root_fd, -1, __ATOMIC_ACQ_REL);
		if (rfd >= 0)
			close(rfd);
		/* Free, with the next sequence number. */
		CAS(&s->state, &st, (st & ~3ull) + SLOT_SEQ);
	}
	STORE_REL(&d->h.drained, seen);
	/* A descriptor another thread received but has not stored yet is
	 * in no slot and no longer in the socket: a caller that drained to
	 * find it (an import of an exited child's result) waits for that
	 * thread, briefly (a bound: a handler that interrupted a drain of
	 * its own thread must not wait forever). */
	__atomic_fetch_sub(&drainers, 1, __ATOMIC_ACQ_REL);
	for (int spins = 0;
	     __atomic_load_n(&drainers, __ATOMIC_ACQUIRE) != 0 && spins < 10000;
	     spins++)
		sched_yield();
out:
	errno = saved;
}

/* Claims a slot for o and publishes it; the descriptor goes to the root
 * when we are not the root. */
static void dir_publish(struct owned *o)
{
	struct directory *d = LOAD_ACQ(&dir);

	if (d == NULL)
		return;
	for (unsigned i = 0; i < DIR_SLOTS; i++) {
		struct dir_slot *s = &d->s[i];
		uint64_t st = LOAD(&s->state);

		if (SLOT_KIND(st) != SLOT_FREE ||
		    !CAS(&s->state, &st, st | SLOT_BUSY))
			continue;
		st |= SLOT_BUSY;
		for (uint32_t u = LOAD(&d->h.used); u < i + 1;)
			if (CAS(&d->h.used, &u, i + 1))
				break;
		STORE(&s->handle, o->handle);
		STORE(&s->dev, o->dev);
		STORE(&s->ino, o->ino);
		STORE(&s->addr, (uint64_t)o->addr);
		STORE(&s->len, (uint64_t)o->len);
		STORE(&s->freezer, o->freezer);
		STORE(&s->freezer_fd, o->fd);
		STORE(&s->freezer_start, o->freezer_start);
		STORE(&s->root_fd, -1);
		if (d->h.root != getpid() && fd_is(d->h.tx, d->h.tx_ino)) {
			struct handoff m = {i, 0, st, o->ino};

			if (handoff_send(d->h.tx, &m, o->fd) != 0)
				log_warn("cannot hand a shared region to the "
				         "family root (errno %d): it goes when "
				         "this process exits",
				         errno);
			__atomic_fetch_add(&d->h.changes, 1, __ATOMIC_RELEASE);
		}
		STORE_REL(&s->state, (st & ~3ull) | SLOT_LIVE);
		o->slot = (int32_t)i;
		return;
	}
	log_warn("the family directory is full (%u shared regions): late "
	         "children and exited freezers will not find this one",
	         DIR_SLOTS);
}

static void dir_kill(struct owned *o)
{
	struct directory *d = LOAD_ACQ(&dir);
	struct dir_slot *s;
	uint64_t st;

	if (d == NULL || o->slot < 0)
		return;
	s = &d->s[o->slot];
	st = LOAD_ACQ(&s->state);
	if (SLOT_KIND(st) == SLOT_LIVE && LOAD(&s->ino) == o->ino &&
	    LOAD(&s->freezer) == o->freezer &&
	    CAS(&s->state, &st, (st & ~3ull) | SLOT_DEAD))
		__atomic_fetch_add(&d->h.changes, 1, __ATOMIC_RELEASE);
	o->slot = -1;
}

/* A consistent copy of a live slot matching (handle) or (dev, ino). */
static int dir_find(const struct directory *d, forkshim_handle h, uint64_t ino,
                    struct dir_slot *out, int *dead)
{
	*dead = 0;
	for (unsigned i = 0; i < LOAD_ACQ(&d->h.used) && i < DIR_SLOTS; i++) {
		const struct dir_slot *s = &d->s[i];
		uint64_t st = LOAD_ACQ(&s->state);
		struct dir_slot c;

		if (SLOT_KIND(st) != SLOT_LIVE && SLOT_KIND(st) != SLOT_DEAD)
			continue;
		c.handle = LOAD(&s->handle);
		c.dev = LOAD(&s->dev);
		c.ino = LOAD(&s->ino);
		c.addr = LOAD(&s->addr);
		c.len = LOAD(&s->len);
		c.freezer = LOAD(&s->freezer);
		c.freezer_fd = LOAD(&s->freezer_fd);
		c.freezer_start = LOAD(&s->freezer_start);
		c.root_fd = LOAD(&s->root_fd);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (LOAD(&s->state) != st)
			continue;
		/* By handle, or by inode (the caller checks st_dev). */
		if (h != 0 ? c.handle != h : c.ino != ino)
			continue;
		if (SLOT_KIND(st) == SLOT_DEAD) {
			*dead = 1;
			continue;
		}
		c.state = st;
		*out = c;
		return 0;
	}
	return -1;
}

/* The way to an exited freezer's region before the root has collected
 * it, for any process of the family but the root (a sibling given the
 * token, say): the freezer sent the descriptor at freeze, and it waits in
 * the directory socket's queue, whose two ends every process forked from
 * the root since the directory exists holds.  One pass through the queue,
 * a message at a time: peek at the head (its descriptor arrives here, a
 * duplicate), put a copy of it at the tail, then take the head; keep the
 * duplicate when it is c's region.  So every message stays in the queue
 * for the root, at every moment but one: when the head taken is not the
 * one peeked at (the root or another process took that one meanwhile),
 * the one taken goes back at once.  A kill -9 between that take and its
 * return loses that message's descriptor (the result it named answers
 * ENOENT once its freezer has exited).  A message duplicated by a kill
 * between send and take is dropped by the root (the slot holds one copy).
 * Async-signal-safe.  The descriptor, or -1. */
static int dir_fetch(const struct directory *from, const struct dir_slot *c,
                     struct stat *st)
{
	struct directory *d = LOAD_ACQ(&dir);
	int queued = 0, got = -1;

	if (d == NULL || d->h.root != from->h.root ||
	    d->h.root_start != from->h.root_start || d->h.root == getpid() ||
	    !fd_is(d->h.rx, d->h.rx_ino) || !fd_is(d->h.tx, d->h.tx_ino) ||
	    ioctl(d->h.rx, FIONREAD, &queued) != 0)
		return -1;
	for (int left = queued / (int)sizeof(struct handoff);
	     left > 0 && got < 0; left--) {
		struct handoff pm, m;
		struct stat ps;
		int pfd, fd;

		if (handoff_recv(d->h.rx, &pm, &pfd, MSG_PEEK) !=
		        (ssize_t)sizeof(pm) ||
		    pfd < 0 || handoff_send(d->h.tx, &pm, pfd) != 0) {
			if (pfd >= 0)
				close(pfd);
			break;
		}
		if (handoff_recv(d->h.rx, &m, &fd, 0) > 0 && fd >= 0) {
			if (memcmp(&m, &pm, sizeof(m)) != 0 &&
			    handoff_send(d->h.tx, &m, fd) != 0)
				log_warn("a shared region's hand-off to the "
				         "family root was lost (errno %d)",
				         errno);
			close(fd);
		}
		__atomic_fetch_add(&d->h.changes, 1, __ATOMIC_RELEASE);
		if (fstat(pfd, &ps) == 0 && ps.st_ino == c->ino &&
		    ps.st_dev == c->dev) {
			*st = ps;
			got = pfd;
		} else {
			close(pfd);
		}
	}
	return got;
}

/* Opens the holder of a slot: the freezer while it lives, else the
 * root's copy, else (not collected yet) the hand-off queue's.  -1 with errno
 * (EACCES when the kernel refused). */
static int dir_open(const struct directory *d, const struct dir_slot *c,
                    struct stat *st)
{
	/* The freezer's descriptor, then the root's copy. */
	const struct {
		pid_t pid;
		uint64_t start;
		int fd;
	} holder[2] = {{c->freezer, c->freezer_start, c->freezer_fd},
	               {d->h.root, d->h.root_start, c->root_fd}};

	for (int i = 0; i < 2; i++) {
		int fd;

		if (holder[i].fd < 0 ||
		    !alive(holder[i].pid, holder[i].start, 0))
			continue;
		fd = open_proc_fd(holder[i].pid, holder[i].fd, st);
		if (fd < 0 && (errno == EACCES || errno == EPERM)) {
			errno = EACCES;
			return -1;
		}
		if (fd >= 0 && st->st_ino == c->ino && st->st_dev == c->dev)
			return fd;
		if (fd >= 0)
			close(fd);
	}
	if (c->root_fd < 0) {
		int fd = dir_fetch(d, c, st);

		if (fd >= 0)
			return fd;
	}
	errno = ENOENT;
	return -1;
}

/* ---- imports (lock-free: claimed with compare-and-swap) ---- */

/* Makes the records' array unless it would take part of [lo, hi) (then
 * 1: the caller makes it after mapping there).  Made before a region's
 * mapping it lies above it, with the rest of what a fork copies (see
 * shared_alloc); made after, below it. */
static int imports_ready(uintptr_t lo, uintptr_t hi)
{
	size_t size = IMPORTS_MAX * sizeof(struct import);
	struct import *p, *none = NULL;

	if (LOAD_ACQ(&imports) != NULL)
		return 0;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE,
	         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		errno = ENOMEM;
		return -1;
	}
	if ((uintptr_t)p < hi && (uintptr_t)p + size > lo) {
		munmap(p, size);
		return 1;
	}
	if (!CAS(&imports, &none, p))
		munmap(p, size);
	return 0;
}

/* Before mapping region rh: the records' array, clear of the range the
 * region would take at its freezer's address. */
static void imports_early(const struct region_head *rh)
{
	size_t pg = page_size(), off = (size_t)(rh->addr % pg);
	uintptr_t lo = (uintptr_t)(rh->addr - off);

	(void)imports_ready(lo, lo + round_up(off + (size_t)rh->len, pg));
}

/* Like owned entries, import records are read without a claim: their
 * fields are accessed atomically, a word at a time (refs and pinned, the
 * counters, on their own). */
_Static_assert(sizeof(struct import) % 8 == 0 &&
                   offsetof(struct import, refs) % 8 == 0 &&
                   offsetof(struct import, pinned) ==
                       offsetof(struct import, refs) + 4,
               "import: whole words");

static void import_load(struct import *dst, const struct import *src)
{
	words_copy(dst, src, sizeof(*src) / 8,
	           offsetof(struct import, refs) / 8, 0);
	dst->refs = LOAD(&src->refs);
	dst->pinned = LOAD(&src->pinned);
}

/* All but the state and the counters. */
static void import_store(struct import *dst, const struct import *src)
{
	words_copy(dst, src, sizeof(*src) / 8,
	           offsetof(struct import, refs) / 8, 1);
}

/* Takes a reference (ref) or the pin (!ref) on a ready mapping of
 * (dev, ino), at `want` when it is not 0.  Its data address, or 0. */
static uintptr_t import_get(uint64_t dev, uint64_t ino, uintptr_t want,
                            const uint8_t *secret, int ref, size_t *len,
                            unsigned below)
{
	struct import *im = LOAD_ACQ(&imports);

	if (im == NULL)
		return 0;
	for (unsigned i = 0; i < below && i < LOAD_ACQ(&imports_hi); i++) {
		struct import *e = &im[i], c;

		if (LOAD_ACQ(&e->state) != 2)
			continue;
		import_load(&c, e);
		if (c.dev != dev || c.ino != ino ||
		    (want != 0 && c.base != want))
			continue;
		if (secret != NULL && !secret_equal(secret, c.secret))
			continue;
		if (ref) {
			uint32_t r = LOAD(&e->refs);

			do {
				if (r == 0 && !LOAD(&e->pinned))
					break; /* being released */
			} while (!CAS(&e->refs, &r, r + 1));
			if (r == 0 && !LOAD(&e->pinned))
				continue;
		} else {
			STORE(&e->pinned, 1);
		}
		if (LOAD_ACQ(&e->state) != 2)
			continue;
		if (len != NULL)
			*len = c.len;
		return c.data;
	}
	return 0;
}

/* Records a new mapping; when another thread recorded the same one
 * first, ours is unmapped and theirs returned. */
/* The rest of an import record once its mapping (n->data) is made: what
 * the region's header says, and the object's identity. */
static void import_fill(struct import *n, const struct region_head *rh,
                        dev_t dev, ino_t ino)
{
	n->dev = dev;
	n->ino = ino;
	n->base = n->data - (size_t)(rh->addr % page_size());
	n->len = (size_t)rh->len;
	n->owner = rh->freezer;
	memcpy(n->name, rh->name, sizeof(n->name));
	n->name[FORKSHIM_NAME_MAX - 1] = '\0';
	memcpy(n->secret, rh->secret, SECRET_BYTES);
}

static uintptr_t import_put(const struct import *n, int ref)
{
	struct import *im = LOAD_ACQ(&imports);

	for (unsigned i = 0; i < IMPORTS_MAX; i++) {
		struct import *e = &im[i];
		uint64_t st = 0;
		uintptr_t other;

		if (!CAS(&e->state, &st, 1))
			continue;
		hi_raise(&imports_hi, i);
		import_store(e, n);
		STORE(&e->refs, ref ? 1u : 0u);
		STORE(&e->pinned, ref ? 0u : 1u);
		STORE_REL(&e->state, 2);
		other = import_get(n->dev, n->ino, n->base, NULL, ref, NULL, i);
		if (other != 0) {
			STORE(&e->state, 3);
			if (!n->borrowed)
				munmap((void *)n->base, n->maplen);
			STORE_REL(&e->state, 0);
			return other;
		}
		return n->data;
	}
	munmap((void *)n->base, n->maplen);
	errno = ENOMEM;
	return 0;
}

/* Maps the data of an opened, checked region read-only: at the page of
 * `addr` (same), or trying it first (try_same), or anywhere.  A region laid
 * out for huge pages is advised so (MADV_HUGEPAGE; with shmem_enabled
 * "advise" the kernel also picked a congruent address for "anywhere"). */
static uintptr_t map_region(int fd, const struct region_head *rh, int same,
                            int try_same, size_t *maplen_out)
{
	uint64_t addr = rh->addr, len = rh->len;
	off_t at = (off_t)rh->data_off;
	size_t pg = page_size(), off = (size_t)(addr % pg);
	size_t maplen = round_up(off + (size_t)len, pg);
	uintptr_t want = (uintptr_t)(addr - off);
	void *p = MAP_FAILED;

	if (same || try_same) {
		p = mmap((void *)want, maplen, PROT_READ,
		         MAP_SHARED | MAP_FIXED_NOREPLACE, fd, at);
		if (p != MAP_FAILED && (uintptr_t)p != want) {
			munmap(p, maplen); /* an old kernel took it as a hint */
			p = MAP_FAILED;
			errno = EEXIST;
		}
		if (p == MAP_FAILED && same) {
			if (errno == EEXIST || errno == EINVAL ||
			    errno == ENOMEM)
				errno = EADDRINUSE;
			return 0;
		}
	}
	if (p == MAP_FAILED)
		p = mmap(NULL, maplen, PROT_READ, MAP_SHARED, fd, at);
	if (p == MAP_FAILED) {
		errno = ENOMEM;
		return 0;
	}
#ifdef MADV_HUGEPAGE
	if (rh->data_off != HEAD_SPACE)
		madvise(p, maplen, MADV_HUGEPAGE);
#endif
	*maplen_out = maplen;
	return (uintptr_t)p + off;
}

/* Reads and checks an opened region's header and seals; rh->data_off is
 * then where the data's first page is in the memfd. */
static int region_check(int fd, struct region_head *rh)
{
	struct stat st;
	int seals = fcntl(fd, F_GET_SEALS);
	size_t pg = page_size();

	if (pread(fd, rh, sizeof(*rh), 0) != (ssize_t)sizeof(*rh)) {
		errno = EBADF;
		return -1;
	}
	if (rh->magic == REGION_MAGIC)
		rh->data_off = HEAD_SPACE;
	if (seals < 0 ||
	    (rh->magic != REGION_MAGIC && rh->magic != REGION_MAGIC2) ||
	    rh->frozen != 1 || rh->data_off < HEAD_SPACE ||
	    rh->data_off > HUGE_SIZE ||
	    (rh->magic == REGION_MAGIC2 && rh->data_off % pg != 0) ||
	    (seals & (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW)) !=
	        (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW) ||
	    fstat(fd, &st) != 0 || rh->len == 0 ||
	    rh->len > (uint64_t)st.st_size ||
	    (uint64_t)st.st_size < rh->data_off + rh->addr % pg + rh->len) {
		errno = EBADF;
		return -1;
	}
	return 0;
}

/* ---- late children ---- */

/* Whether `pid` (started at `start`) is an ancestor of this process. */
static int is_ancestor(pid_t pid, uint64_t start)
{
	struct directory *d = LOAD_ACQ(&dir);
	pid_t p = getppid(), root = d != NULL ? d->h.root : 0;

	for (int depth = 0; depth < 64 && p > 1; depth++) {
		pid_t pp = 0;
		uint64_t s = 0;

		if (proc_stat(p, &pp, &s) < 0)
			return 0;
		if (p == pid)
			return s == start;
		if (p == root)
			return 0;
		p = pp;
	}
	return 0;
}

const void *shared_deref_late(forkshim_handle h, size_t *len)
{
	struct directory *d = LOAD_ACQ(&dir);
	struct dir_slot c;
	struct region_head rh;
	struct import n;
	struct stat st;
	uintptr_t got;
	int dead, fd, saved = errno;

	if (d == NULL || h == 0 || dir_find(d, h, 0, &c, &dead) < 0 ||
	    !is_ancestor(c.freezer, c.freezer_start))
		goto none;
	got = import_get(c.dev, c.ino, 0, NULL, 0, &n.len, IMPORTS_MAX);
	if (got != 0) {
		if (len != NULL)
			*len = n.len;
		errno = saved;
		return (const void *)got;
	}
	fd = dir_open(d, &c, &st);
	if (fd < 0)
		goto none;
	if (region_check(fd, &rh) < 0 || rh.len != c.len) {
		close(fd);
		goto none;
	}
	memset(&n, 0, sizeof(n));
	/* The record's array, unless it would take the freezer's range (the
	 * free hole mmap picks in a child born between forkshim_alloc and
	 * freeze): then after the mapping. */
	imports_early(&rh);
	n.data = map_region(fd, &rh, 0, 1, &n.maplen);
	close(fd);
	if (n.data == 0)
		goto none;
	import_fill(&n, &rh, c.dev, c.ino);
	if (imports_ready(0, 0) < 0) {
		munmap((void *)n.base, n.maplen);
		goto none;
	}
	n.handle = h;
	got = import_put(&n, 0);
	if (got == 0)
		goto none;
	if (len != NULL)
		*len = n.len;
	errno = saved;
	return (const void *)got;
none:
	errno = ENOENT;
	return NULL;
}

int shared_info_late(forkshim_handle h, struct forkshim_info *out)
{
	struct directory *d = LOAD_ACQ(&dir);
	struct dir_slot c;
	struct forkshim_info info;
	int dead;

	if (d == NULL || dir_find(d, h, 0, &c, &dead) < 0 ||
	    !is_ancestor(c.freezer, c.freezer_start)) {
		errno = ENOENT;
		return -1;
	}
	memset(&info, 0, sizeof(info));
	info.addr = shared_deref_late(h, &info.len);
	if (info.addr == NULL)
		return -1;
	info.owner = c.freezer;
	info.flags = FORKSHIM_SHARED;
	info.freezes = 1;
	*out = info;
	return 0;
}

/* What forkshim_info says of an import record's region. */
static void import_info(const struct import *c, struct forkshim_info *out)
{
	memset(out, 0, sizeof(*out));
	out->addr = (const void *)c->data;
	out->len = c->len;
	out->owner = c->owner;
	out->flags = FORKSHIM_SHARED;
	memcpy(out->name, c->name, sizeof(out->name));
}

int shared_mapped_at(uintptr_t addr, struct forkshim_info *out)
{
	struct import *im = LOAD_ACQ(&imports);
	struct owned *o = LOAD_ACQ(&owned);

	/* forkshim_alloc memory frozen here, or by an ancestor before our
	 * birth (its read-only mapping is inherited). */
	for (unsigned i = 0; o != NULL && i < LOAD_ACQ(&owned_hi); i++) {
		struct owned c;

		if (LOAD_ACQ(&o[i].state) != OWN_FROZEN)
			continue;
		owned_load(&c, &o[i]);
		if (!c.alloc || addr < c.map || addr - c.map >= c.maplen)
			continue;
		if (table_info(c.handle, out) != 0)
			memset(out, 0, sizeof(*out));
		out->addr = (const void *)c.addr;
		out->len = c.len;
		out->owner = c.freezer;
		out->flags = FORKSHIM_SHARED;
		return 1;
	}

	for (unsigned i = 0; im != NULL && i < LOAD_ACQ(&imports_hi); i++) {
		struct import *e = &im[i], c;

		if (LOAD_ACQ(&e->state) != 2)
			continue;
		import_load(&c, e);
		if (addr < c.base || addr - c.base >= c.maplen)
			continue;
		import_info(&c, out);
		return 1;
	}
	return 0;
}

int shared_identity(forkshim_handle h, uint64_t *dev, uint64_t *ino)
{
	struct owned *o = owned_by_handle(h);
	struct owned c;

	if (o == NULL)
		return 0;
	owned_load(&c, o);
	if (LOAD_ACQ(&o->state) != OWN_FROZEN || c.handle != h || !c.alloc)
		return 0;
	*dev = c.dev;
	*ino = c.ino;
	return 1;
}

int shared_next_mapped(uint32_t *slot, struct forkshim_info *out,
                       forkshim_handle *h, uint64_t *dev, uint64_t *ino)
{
	struct import *im = LOAD_ACQ(&imports);
	struct directory *d = LOAD_ACQ(&dir);

	for (; im != NULL && *slot < LOAD_ACQ(&imports_hi); (*slot)++) {
		struct import c;
		struct dir_slot ds;
		int dead, seen = 0;

		if (LOAD_ACQ(&im[*slot].state) != 2)
			continue;
		import_load(&c, &im[*slot]);
		if (c.borrowed)
			continue; /* the freezer's own mapping: its table's */
		for (unsigned k = 0; k < *slot && !seen; k++) {
			struct import e;

			if (LOAD_ACQ(&im[k].state) != 2)
				continue;
			import_load(&e, &im[k]);
			seen = !e.borrowed && e.dev == c.dev && e.ino == c.ino;
		}
		if (seen)
			continue; /* mapped twice here: once is its figures */
		import_info(&c, out);
		*h = c.handle;
		if (*h == 0 && d != NULL &&
		    dir_find(d, 0, c.ino, &ds, &dead) == 0 && ds.dev == c.dev)
			*h = ds.handle;
		*dev = c.dev;
		*ino = c.ino;
		(*slot)++;
		return 1;
	}
	return 0;
}

int shared_is_shared(forkshim_handle h)
{
	return owned_by_handle(h) != NULL;
}

/* ---- fork and wait hooks ---- */

/* The table's forking hook (prepare phase, table lock held): system calls
 * only. */
static void on_forking(uint64_t birth)
{
	struct procpage *pg = procpage();

	(void)birth;
	__atomic_store_n(&pg->forking, 1, __ATOMIC_SEQ_CST);
	__atomic_fetch_add(&pg->fork_gen, 1, __ATOMIC_SEQ_CST);
	if (LOAD(&shared_used) && LOAD_ACQ(&dir) == NULL) {
		int saved = errno;

		if (dir_create() < 0)
			log_warn("cannot make the shared-region directory "
			         "(errno %d): children forked now will not "
			         "see shared regions frozen later",
			         errno);
		errno = saved;
	}
}

void shared_reaped(void)
{
	struct directory *d = LOAD_ACQ(&dir);

	/* Nothing sent or marked dead since the last drain (a child's are
	 * counted before it can be reaped): no system call, no errno. */
	if (d == NULL || LOAD_ACQ(&d->h.changes) == LOAD(&d->h.drained))
		return;
	if (is_root())
		dir_drain();
}

/* ---- alloc, freeze, thaw ---- */

/* Where the data's first page (at page_addr in the freezer) starts in a
 * region's memfd.  Small regions: right after the header page, as always.
 * Regions of HUGE_MIN or more: at an offset congruent to page_addr modulo
 * HUGE_SIZE (page_addr 0: the data alone in its huge pages, 2 MiB in), so
 * that where shmem huge pages are allowed every whole 2 MiB of the data is
 * one huge page, mapped with one PMD at the freezer's address (late
 * children, same-address imports) and anywhere (the kernel then picks a
 * congruent address itself). */
static uint32_t data_offset(uintptr_t page_addr, size_t maplen)
{
	if (maplen < HUGE_MIN)
		return HEAD_SPACE;
	return HEAD_SPACE +
	       (uint32_t)((page_addr - HEAD_SPACE) & (HUGE_SIZE - 1));
}

/* A region's memfd with the aligned layout, before it is sized: its
 * header page is made now, small, so that shmem_enabled "within_size"
 * does not give it a 2 MiB page of its own later. */
static int head_page_small(int fd, uint32_t data_off)
{
	if (data_off == HEAD_SPACE)
		return 0;
	return pwrite(fd, "", 1, 0) == 1 ? 0 : -1;
}

/* Whether shmem_enabled is "advise": then only a mapping advised
 * MADV_HUGEPAGE gets huge pages, and pwrite does not ("always" and
 * "within_size" give them to pwrite too).  Read, never written. */
static int shmem_advise(void)
{
	char buf[128];
	ssize_t n;
	int fd = open("/sys/kernel/mm/transparent_hugepage/shmem_enabled",
	              O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	for (char *p = buf; *p; p++)
		if (strncmp(p, "[advise]", 8) == 0)
			return 1;
	return 0;
}

/* With shmem_enabled "advise": the data's pages made huge through an
 * advised mapping, for the copy that follows to fill (a copy alone would
 * make small ones).  From the first whole 2 MiB of the file on (before it
 * the data shares the header's small pages: populated here as 4 KiB pages
 * they would cost a mapped page each, ~5 ms per 16 MiB region measured on
 * a 2-core VM), and reaching to the end of the last 2 MiB so that the
 * partly filled last one is huge too.  Best effort: on any failure the
 * copy makes small ones. */
static void huge_prefill(int fd, size_t at, size_t end)
{
#if defined(MADV_HUGEPAGE) && defined(MADV_POPULATE_WRITE)
	size_t first = round_up(at, HUGE_SIZE);
	size_t maplen = round_up(end, HUGE_SIZE) - first;
	void *p;

	if (first >= end)
		return;
	p = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
	         (off_t)first);
	if (p == MAP_FAILED)
		return;
	if (madvise(p, maplen, MADV_HUGEPAGE) == 0)
		madvise(p, round_up(end, page_size()) - first,
		        MADV_POPULATE_WRITE);
	munmap(p, maplen);
#else
	(void)fd;
	(void)at;
	(void)end;
#endif
}

/* Copies [addr, addr+len) into fd at offset at: the pages taken into a
 * pipe by reference (vmsplice), then spliced into the memfd, which copies
 * them through the kernel's own mapping; what that does not copy, pwrite
 * does.  Not pwrite alone: its copy reads the source through this
 * process's mapping, and on a 2-core VM (shadow paging) the kernel's first
 * read of a page the process wrote costs ~1.1 us: 16 MiB computed just
 * before took 13.5 ms CPU by pwrite, 8.0 by the pipe, 7.1 by pwrite again
 * (scripts/bench/pool/result_parts.py, copy).  0, or -1 with errno. */
static int fill_data(int fd, size_t at, const char *addr, size_t len)
{
	size_t done = 0;
	int pp[2];

	if (len >= FILL_PIPE_MIN && pipe2(pp, O_CLOEXEC) == 0) {
		int cap = fcntl(pp[1], F_SETPIPE_SZ, FILL_PIPE_SIZE);

		if (cap <= 0)
			cap = fcntl(pp[1], F_GETPIPE_SZ);
		while (cap > 0 && done < len) {
			struct iovec iov = {(void *)(addr + done),
			                    len - done < (size_t)cap
			                        ? len - done
			                        : (size_t)cap};
			ssize_t n = vmsplice(pp[1], &iov, 1, 0);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			while (n > 0) {
				loff_t o = (loff_t)(at + done);
				ssize_t m =
				    splice(pp[0], NULL, fd, &o, (size_t)n, 0);

				if (m < 0 && errno == EINTR)
					continue;
				if (m <= 0)
					goto closed; /* the rest by pwrite */
				n -= m;
				done += (size_t)m;
			}
		}
	closed:
		close(pp[0]);
		close(pp[1]);
	}
	while (done < len) {
		size_t chunk = len - done < (1u << 30) ? len - done : 1u << 30;
		ssize_t w = pwrite(fd, addr + done, chunk, (off_t)(at + done));

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		done += (size_t)w;
	}
	return 0;
}

static int fill_head(int fd, const struct owned *o, const char *name,
                     int frozen)
{
	struct region_head rh;

	memset(&rh, 0, sizeof(rh));
	rh.magic = o->data_off == HEAD_SPACE ? REGION_MAGIC : REGION_MAGIC2;
	rh.data_off = o->data_off;
	rh.len = o->len;
	rh.addr = o->addr;
	memcpy(rh.secret, o->secret, SECRET_BYTES);
	rh.freezer = o->freezer;
	rh.freezer_start = o->freezer_start;
	rh.frozen = (uint32_t)frozen;
	if (name != NULL)
		for (int i = 0; i < FORKSHIM_NAME_MAX - 1 && name[i]; i++)
			rh.name[i] = name[i];
	return pwrite(fd, &rh, sizeof(rh), 0) == (ssize_t)sizeof(rh) ? 0 : -1;
}

static void identity(struct owned *o)
{
	struct stat st;

	if (fstat(o->fd, &st) == 0) {
		o->dev = st.st_dev;
		o->ino = st.st_ino;
	}
}

void *shared_alloc(size_t len, const char *name)
{
	size_t pg = page_size(), maplen;
	uint32_t data_off;
	struct owned *o, c;
	void *p;
	int fd;

	if (len == 0 || len > (SIZE_MAX >> 2)) {
		errno = EINVAL;
		return NULL;
	}
	if (procpage_ensure() < 0) { /* where forks are counted */
		errno = ENOSYS;
		return NULL;
	}
	maplen = round_up(len, pg);
	data_off = data_offset(0, maplen);
	if (own_mappings_ready() < 0)
		return NULL; /* ENOMEM */
	for (int tries = 0;; tries++) {
		uint64_t gen;
		int spins = 0;

		/* The writable mapping is not inherited (MADV_DONTFORK): a
		 * child forked by another thread between alloc and freeze
		 * would keep it writable, and the seal would then fail with
		 * EBUSY until that child exits.  A fork between the mmap
		 * and the madvise may have copied it: then the memfd is
		 * dropped and made again.  (The fork holds our mmap lock
		 * while it copies, and its prepare phase, counted in
		 * fork_gen, runs before: a count unchanged across both calls
		 * and no fork under way at the start means none copied it.) */
		while (
		    __atomic_load_n(&procpage()->forking, __ATOMIC_SEQ_CST) &&
		    spins++ < 100000)
			sched_yield();
		gen = __atomic_load_n(&procpage()->fork_gen, __ATOMIC_SEQ_CST);
		fd = memfd_new(name != NULL && name[0] ? name : "forkshim");
		if (fd < 0) {
			errno = errno == EMFILE || errno == ENFILE ? ENOMEM
			                                           : ENOSYS;
			return NULL;
		}
		if (head_page_small(fd, data_off) != 0 ||
		    ftruncate(fd, (off_t)(data_off + maplen)) != 0) {
			close(fd);
			errno = ENOMEM;
			return NULL;
		}
		p = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		         (off_t)data_off);
		if (p == MAP_FAILED) {
			close(fd);
			errno = ENOMEM;
			return NULL;
		}
		madvise(p, maplen, MADV_DONTFORK);
		if ((__atomic_load_n(&procpage()->fork_gen, __ATOMIC_SEQ_CST) ==
		         gen &&
		     !__atomic_load_n(&procpage()->forking,
		                      __ATOMIC_SEQ_CST)) ||
		    tries == 16)
			break;
		munmap(p, maplen);
		close(fd);
	}
#ifdef MADV_HUGEPAGE
	/* Before the populate: with shmem_enabled "advise" this is what
	 * makes its pages huge (a no-op that succeeds with "never"). */
	if (data_off != HEAD_SPACE)
		madvise(p, maplen, MADV_HUGEPAGE);
#endif
#ifdef MADV_POPULATE_WRITE
	/* The caller fills it all: pages allocated in one call cost much
	 * less than a first-touch fault each (see README), and a shortage
	 * shows here as ENOMEM instead of a SIGBUS in the fill.  EINVAL: a
	 * kernel before 5.14, which then faults them in. */
	if (madvise(p, maplen, MADV_POPULATE_WRITE) != 0 && errno != EINVAL) {
		munmap(p, maplen);
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
#endif
	if ((o = owned_claim()) == NULL) {
		munmap(p, maplen);
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	owned_load(&c, o);
	c.fd = fd;
	c.alloc = 1;
	c.map = (uintptr_t)p;
	c.maplen = maplen;
	c.data_off = data_off;
	c.addr = (uintptr_t)p;
	c.len = len;
	c.freezer = getpid(); /* the allocating process, until the freeze */
	identity(&c);
	owned_store(o, &c);
	STORE_REL(&o->state, OWN_ALLOC);
	return p;
}

/* The checks freeze makes itself, made before the copy: a failure must
 * not cost a copy, nor leave a sealed memfd behind. */
static int freeze_precheck(const void *addr, size_t len)
{
	uintptr_t a = (uintptr_t)addr;
	forkshim_handle h;

	if (addr == NULL || len == 0 || a + len < a || a + len == 0) {
		errno = EINVAL;
		return -1;
	}
	h = table_find(addr, 1);
	if (h == 0)
		h = table_find((const char *)addr + len - 1, 1);
	if (h != 0) {
		struct forkshim_info in;

		/* Identical: one more freeze of a shared one is fine. */
		if (table_info(h, &in) == 0 && in.addr == addr &&
		    in.len == len && (in.flags & FORKSHIM_SHARED))
			return 1;
		errno = EEXIST;
		return -1;
	}
	return 0;
}

forkshim_handle shared_freeze(const void *addr, size_t len, const char *name,
                              unsigned flags)
{
	size_t pg = page_size();
	struct owned *o, local;
	forkshim_handle h;
	int pre, fd, rofd;

	pre = freeze_precheck(addr, len);
	if (pre < 0)
		return 0;
	if (pre == 1)
		return table_freeze(addr, len, name, flags);
	if (own_mappings_ready() < 0)
		return 0;
	o = owned_take((uintptr_t)addr, OWN_ALLOC);
	if (o != NULL) {
		/* forkshim_alloc memory: seal it in place.  A failure puts
		 * the entry back as it was. */
		owned_load(&local, o);
		if (len > local.maplen) {
			STORE_REL(&o->state, OWN_ALLOC);
			errno = EINVAL;
			return 0;
		}
		local.len = len;
		local.freezer = getpid();
		local.freezer_start = start_of(local.freezer);
		if (new_secret(local.secret) < 0 ||
		    fill_head(local.fd, &local, name, 1) < 0) {
			STORE_REL(&o->state, OWN_ALLOC);
			errno = ENOMEM;
			return 0;
		}
		rofd = reopen_ro(local.fd);
		if (rofd < 0 || mmap((void *)local.map, local.maplen, PROT_READ,
		                     MAP_SHARED | MAP_FIXED, rofd,
		                     (off_t)local.data_off) == MAP_FAILED) {
			if (rofd >= 0)
				close(rofd);
			STORE_REL(&o->state, OWN_ALLOC);
			errno = ENOMEM;
			return 0;
		}
		close(rofd);
		if (fcntl(local.fd, F_ADD_SEALS, SEALS_FROZEN) != 0) {
			int err = errno;

			/* Another process maps it writable: put ours back. */
			if (mmap((void *)local.map, local.maplen,
			         PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
			         local.fd, (off_t)local.data_off) != MAP_FAILED)
				madvise((void *)local.map, local.maplen,
				        MADV_DONTFORK);
			STORE_REL(&o->state, OWN_ALLOC);
			errno = err == EBUSY ? EBUSY : EINVAL;
			return 0;
		}
		h = table_freeze(addr, len, name, flags);
		if (h == 0) {
			/* Sealed already (the table was full): it stays
			 * read-only, still ours to release. */
			STORE_REL(&o->state, OWN_ALLOC);
			return 0;
		}
		local.handle = h;
		local.frozen = 1;
		dir_publish(&local);
		owned_store(o, &local);
		STORE_REL(&o->state, OWN_FROZEN);
		return h;
	}

	/* Ordinary memory: one copy into a new memfd. */
	memset(&local, 0, sizeof(local));
	local.addr = (uintptr_t)addr;
	local.len = len;
	local.freezer = getpid();
	local.freezer_start = start_of(local.freezer);
	local.slot = -1;
	fd = memfd_new(name != NULL && name[0] ? name : "forkshim");
	if (fd < 0) {
		errno = errno == EMFILE || errno == ENFILE ? ENOMEM : ENOSYS;
		return 0;
	}
	size_t off = (uintptr_t)addr % pg;
	size_t maplen = round_up(off + len, pg);

	local.data_off = data_offset((uintptr_t)addr - off, maplen);
	if (head_page_small(fd, local.data_off) != 0 ||
	    ftruncate(fd, (off_t)(local.data_off + maplen)) != 0 ||
	    new_secret(local.secret) < 0) {
		close(fd);
		errno = ENOMEM;
		return 0;
	}
	if (local.data_off != HEAD_SPACE && shmem_advise())
		huge_prefill(fd, local.data_off + off,
		             local.data_off + off + len);
	if (fill_data(fd, local.data_off + off, addr, len) != 0) {
		int err = errno;

		close(fd);
		errno = err == EFAULT ? EFAULT : ENOMEM;
		return 0;
	}
	local.fd = fd;
	if (fill_head(fd, &local, name, 1) < 0 ||
	    fcntl(fd, F_ADD_SEALS, SEALS_FROZEN) != 0) {
		close(fd);
		errno = ENOMEM;
		return 0;
	}
	identity(&local);
	h = table_freeze(addr, len, name, flags);
	if (h == 0) {
		int err = errno;

		close(fd);
		errno = err;
		return 0;
	}
	o = owned_claim();
	if (o == NULL) {
		table_thaw(h);
		close(fd);
		errno = ENOMEM;
		return 0;
	}
	local.handle = h;
	local.frozen = 1;
	dir_publish(&local);
	owned_store(o, &local);
	STORE_REL(&o->state, OWN_FROZEN);
	return h;
}

/* The table's thawing hook: the last thaw of a region, under the table
 * lock, maybe in a signal handler (system calls and CAS only).  In the
 * freezer the region leaves the directory and forkshim_alloc memory is
 * unmapped; a process that inherited it drops only its descriptor. */
static void on_thawing(forkshim_handle h, const void *addr, size_t len,
                       unsigned flags)
{
	struct owned *o;
	uint32_t st = OWN_FROZEN;
	int saved = errno;

	(void)addr;
	(void)len;
	if (!(flags & FORKSHIM_SHARED))
		return;
	o = owned_by_handle(h);
	if (o != NULL && CAS(&o->state, &st, OWN_BUSY)) {
		struct owned c;
		int unmap;

		owned_load(&c, o);
		unmap = c.freezer == getpid() && c.alloc;
		if (c.freezer == getpid())
			dir_kill(&c);
		close(c.fd);
		c.fd = -1;
		owned_store(o, &c);
		/* The memory goes after the region left the table
		 * (shared_thawed): unmapped now, its range could be mapped
		 * again by another thread and frozen, and that freeze would
		 * still find this region there (EEXIST). */
		STORE_REL(&o->state, unmap ? OWN_THAWED : OWN_FREE);
	}
	if (is_root())
		dir_drain();
	errno = saved;
}

void shared_thawed(forkshim_handle h)
{
	struct owned *o = LOAD_ACQ(&owned);

	for (unsigned i = 0; o != NULL && i < LOAD_ACQ(&owned_hi); i++) {
		uint32_t st = OWN_THAWED;

		if (LOAD_ACQ(&o[i].state) == OWN_THAWED &&
		    LOAD(&o[i].handle) == h &&
		    CAS(&o[i].state, &st, OWN_BUSY)) {
			munmap((void *)LOAD(&o[i].map), LOAD(&o[i].maplen));
			STORE_REL(&o[i].state, OWN_FREE);
			return;
		}
	}
}

/* The table's forked hook (parent phase, table lock held). */
static void on_forked(void)
{
	struct procpage *pg = procpage();

	__atomic_fetch_add(&pg->fork_gen, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&pg->forking, 0, __ATOMIC_SEQ_CST);
}

static const struct table_hook hook = {
    .thawing = on_thawing,
    .forking = on_forking,
    .forked = on_forked,
};

void shared_attach(void)
{
	if (table_hook_add(&hook) < 0)
		log_error("shared regions: no room for their table hook");
}

/* ---- export, import, release ---- */

static void token_fill(struct token *t, pid_t holder, uint64_t holder_start,
                       int holder_fd, uint64_t dev, uint64_t ino,
                       const uint8_t *secret)
{
	struct directory *d = LOAD_ACQ(&dir);

	memset(t, 0, sizeof(*t));
	t->magic = TOKEN_MAGIC;
	t->holder = holder;
	t->holder_fd = holder_fd;
	t->holder_start = (uint32_t)holder_start;
	t->root = d != NULL ? d->h.root : -1;
	t->root_dirfd = d != NULL ? d->h.dirfd : -1;
	t->root_start = d != NULL ? (uint32_t)d->h.root_start : 0;
	t->dev = (uint32_t)dev;
	t->ino = ino;
	memcpy(t->secret, secret, SECRET_BYTES);
	t->check = token_check(t);
}

int shared_export(forkshim_handle h, struct forkshim_token *out)
{
	struct token t;
	struct owned *o;

	if (out == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (is_root())
		dir_drain();
	if (table_deref(h, NULL) != NULL) {
		struct stat st;

		struct owned c;

		o = owned_by_handle(h);
		if (o == NULL) {
			errno = EINVAL; /* a private region */
			return -1;
		}
		owned_load(&c, o);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		/* Our descriptor (ours, or inherited from the freezer), as it
		 * was while the entry stayed frozen. */
		if (LOAD(&o->state) != OWN_FROZEN || c.handle != h ||
		    fstat(c.fd, &st) != 0 || st.st_ino != c.ino) {
			errno = ESTALE;
			return -1;
		}
		token_fill(&t, getpid(), start_of(getpid()), c.fd, c.dev, c.ino,
		           c.secret);
		memcpy(out, &t, sizeof(t));
		return 0;
	}
	if (errno != ENOENT)
		return -1;
	/* A late child: the directory's holder. */
	struct directory *d = LOAD_ACQ(&dir);
	struct dir_slot c;
	struct region_head rh;
	struct stat st;
	int dead, fd;

	if (d == NULL || dir_find(d, h, 0, &c, &dead) < 0 ||
	    !is_ancestor(c.freezer, c.freezer_start)) {
		errno = ENOENT;
		return -1;
	}
	fd = dir_open(d, &c, &st);
	if (fd < 0)
		return -1;
	if (region_check(fd, &rh) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	if (alive(c.freezer, c.freezer_start, 0))
		token_fill(&t, c.freezer, c.freezer_start, c.freezer_fd, c.dev,
		           c.ino, rh.secret);
	else
		token_fill(&t, d->h.root, d->h.root_start, c.root_fd, c.dev,
		           c.ino, rh.secret);
	memcpy(out, &t, sizeof(t));
	return 0;
}

/* Opens the token's region: the holder's descriptor, else the root's
 * copy through its directory.  -1 with the import errno. */
static int token_open(const struct token *t, struct stat *st)
{
	int holder_alive = alive(t->holder, t->holder_start, 1), fd, dfd;
	int stale = 0, dead;
	struct stat ds;
	struct dir_slot c;
	const struct directory *d;

	if (holder_alive) {
		fd = open_proc_fd(t->holder, t->holder_fd, st);
		if (fd < 0 && (errno == EACCES || errno == EPERM)) {
			errno = EACCES;
			return -1;
		}
		if (fd >= 0 && (uint32_t)st->st_dev == t->dev &&
		    st->st_ino == t->ino)
			return fd;
		if (fd >= 0)
			close(fd);
		stale = 1; /* the holder closed it: thawed */
	}
	if (t->root <= 0 || t->root_dirfd < 0 ||
	    !alive(t->root, t->root_start, 1))
		goto gone;
	dfd = open_proc_fd(t->root, t->root_dirfd, &ds);
	if (dfd < 0 && (errno == EACCES || errno == EPERM)) {
		errno = EACCES;
		return -1;
	}
	if (dfd < 0)
		goto gone;
	if ((size_t)ds.st_size < sizeof(struct directory)) {
		close(dfd);
		goto gone;
	}
	d = mmap(NULL, sizeof(*d), PROT_READ, MAP_SHARED, dfd, 0);
	close(dfd);
	if (d == MAP_FAILED)
		goto gone;
	if (LOAD(&d->h.magic) != DIR_MAGIC || d->h.root != t->root) {
		munmap((void *)d, sizeof(*d));
		goto gone;
	}
	if (dir_find(d, 0, t->ino, &c, &dead) == 0 &&
	    (uint32_t)c.dev == t->dev) {
		fd = dir_open(d, &c, st);
		munmap((void *)d, sizeof(*d));
		if (fd >= 0 || errno == EACCES)
			return fd;
		goto gone;
	}
	munmap((void *)d, sizeof(*d));
	if (dead)
		stale = 1;
gone:
	errno = stale ? ESTALE : ENOENT;
	return -1;
}

const void *shared_import(const struct forkshim_token *tok, unsigned flags,
                          size_t *len)
{
	struct token t;
	struct region_head rh;
	struct import n;
	struct stat st;
	uintptr_t got;
	int fd;

	if (tok == NULL || (flags & ~FORKSHIM_SAME_ADDRESS)) {
		errno = EINVAL;
		return NULL;
	}
	memcpy(&t, tok, sizeof(t));
	if (t.magic != TOKEN_MAGIC || t.check != token_check(&t) ||
	    t.holder <= 0 || t.holder_fd < 0 || t.reserved != 0) {
		errno = EBADF;
		return NULL;
	}
	if (is_root())
		dir_drain();
	fd = token_open(&t, &st);
	if (fd < 0)
		return NULL;
	if (region_check(fd, &rh) < 0 || !secret_equal(rh.secret, t.secret)) {
		close(fd);
		errno = EBADF;
		return NULL;
	}
	uintptr_t want = (uintptr_t)(rh.addr - rh.addr % page_size());

	got = import_get(st.st_dev, st.st_ino,
	                 (flags & FORKSHIM_SAME_ADDRESS) ? want : 0, t.secret,
	                 1, len, IMPORTS_MAX);
	if (got != 0) {
		close(fd);
		return (const void *)got;
	}
	memset(&n, 0, sizeof(n));
	if (flags & FORKSHIM_SAME_ADDRESS) {
		/* The freezer (or a child that inherited it) maps it there
		 * already: that mapping is the answer. */
		struct owned *o = LOAD_ACQ(&owned);

		for (unsigned i = 0; o != NULL && i < LOAD_ACQ(&owned_hi); i++)
			if (LOAD_ACQ(&o[i].state) == OWN_FROZEN &&
			    LOAD(&o[i].alloc) &&
			    LOAD(&o[i].ino) == (uint64_t)st.st_ino &&
			    LOAD(&o[i].map) == want) {
				n.data = (uintptr_t)rh.addr;
				n.maplen = LOAD(&o[i].maplen);
				n.borrowed = 1;
				break;
			}
	}
	if (n.data == 0) {
		imports_early(&rh); /* see deref_late */
		n.data =
		    map_region(fd, &rh, (flags & FORKSHIM_SAME_ADDRESS) != 0, 0,
		               &n.maplen);
	}
	close(fd);
	if (n.data == 0)
		return NULL;
	import_fill(&n, &rh, st.st_dev, st.st_ino);
	if (imports_ready(0, 0) < 0) {
		if (!n.borrowed)
			munmap((void *)n.base, n.maplen);
		return NULL;
	}
	got = import_put(&n, 1);
	if (got != 0 && len != NULL)
		*len = n.len;
	return (const void *)got;
}

int shared_release(const void *addr)
{
	struct import *im = LOAD_ACQ(&imports);
	struct owned *o;

	if (addr == NULL) {
		errno = EINVAL;
		return -1;
	}
	for (unsigned i = 0; im != NULL && i < LOAD_ACQ(&imports_hi); i++) {
		struct import *e = &im[i];
		uint32_t r;

		if (LOAD_ACQ(&e->state) != 2 ||
		    LOAD(&e->data) != (uintptr_t)addr)
			continue;
		r = LOAD(&e->refs);
		do {
			if (r == 0)
				break;
		} while (!CAS(&e->refs, &r, r - 1));
		if (r == 0)
			continue; /* a deref's mapping, or released */
		if (r == 1 && !LOAD(&e->pinned)) {
			uint64_t st = 2;

			if (CAS(&e->state, &st, 3)) {
				if (!LOAD(&e->borrowed))
					munmap((void *)LOAD(&e->base),
					       LOAD(&e->maplen));
				STORE_REL(&e->state, 0);
			}
		}
		return 0;
	}
	o = owned_take((uintptr_t)addr, OWN_ALLOC);
	if (o != NULL) {
		struct owned c;

		owned_load(&c, o);
		munmap((void *)c.map, c.maplen);
		close(c.fd);
		c.fd = -1;
		owned_store(o, &c);
		STORE_REL(&o->state, OWN_FREE);
		return 0;
	}
	errno = EINVAL;
	return -1;
}
