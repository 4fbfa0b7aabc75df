/* fuzz_model: random sequences of freeze, thaw, find, deref, info, visible
 * and fork, checked against a simple model of the table.
 *
 * The model is a list of live regions (start, length, handle, freezes,
 * name, flags) over a 6-page pool whose last page is PROT_NONE, and the
 * handles this process thawed.  It predicts every answer: the handle or
 * EINVAL / EFAULT / EEXIST / ENOMEM for a freeze (identical ranges count
 * one more freeze, overlapping ones are refused, adjacent ones are fine),
 * the region wholly containing a range for find, exact fields for info.
 *
 * A fork makes a child that checks the table it was born with against the
 * model as it stood then, and either exits at once or stays until the end
 * of the input: then the parent sends it the handles it froze since (the
 * child must answer ENOENT) and those it thawed since (the child must
 * still resolve them, to the same bytes), and checks visible() for both
 * sorts while the child lives.  At most two forks per input keep it fast.
 * Run with FORKSHIM_MAX_REGIONS=32 (run.sh sets it) so that ENOMEM is
 * reachable.  Each input ends by thawing everything. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "forkshim.h"

#define PAGE 4096
#define POOL_PAGES 6 /* the last one PROT_NONE */
#define POOL ((POOL_PAGES - 1) * PAGE)
#define MAX_LIVE 64
#define GRAVE 64
#define MAX_FORKS 2

struct region {
	uintptr_t start;
	size_t len;
	forkshim_handle h;
	unsigned freezes, flags;
	char name[FORKSHIM_NAME_MAX];
};

struct model {
	struct region r[MAX_LIVE];
	int n;
};

struct held { /* a child that waits for the end of the input */
	pid_t pid;
	int to, from;
	struct model at_birth;
};

static unsigned char *pool;
static struct model m;
static forkshim_handle grave[GRAVE];
static unsigned grave_next;
static size_t capacity = 1u << 20;
static struct held held[MAX_FORKS];
static int nheld, forks;
static int in_child;

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr,                                        \
			        "fuzz_model%s: ", in_child ? " (child)" : ""); \
			fprintf(stderr, __VA_ARGS__);                          \
			fputc('\n', stderr);                                   \
			if (in_child)                                          \
				_exit(3);                                      \
			abort();                                               \
		}                                                              \
	} while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *cap = getenv("FORKSHIM_MAX_REGIONS");

	(void)argc;
	(void)argv;
	if (cap != NULL && atol(cap) > 0)
		capacity = (size_t)atol(cap);
	pool = mmap(NULL, POOL_PAGES * PAGE, PROT_READ | PROT_WRITE,
	            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (pool == MAP_FAILED)
		abort();
	for (size_t i = 0; i < POOL; i++)
		pool[i] = (unsigned char)(i * 7 + (i >> 9));
	mprotect(pool + POOL, PAGE, PROT_NONE);
	return 0;
}

static int find_handle(const struct model *mm, forkshim_handle h)
{
	for (int i = 0; i < mm->n; i++)
		if (mm->r[i].h == h)
			return i;
	return -1;
}

static int buried(forkshim_handle h)
{
	for (unsigned i = 0; i < GRAVE; i++)
		if (grave[i] != 0 && grave[i] == h)
			return 1;
	return 0;
}

/* Every live region of mm resolves exactly; every buried handle is
 * ESTALE; find agrees.  owner: who froze them. */
static void check_table(const struct model *mm, pid_t owner)
{
	for (int i = 0; i < mm->n; i++) {
		const struct region *r = &mm->r[i];
		struct forkshim_info info;
		size_t len = 0;

		CHECK(forkshim_deref(r->h, &len) == (void *)r->start &&
		          len == r->len,
		      "region %d %#llx does not deref (errno %d)", i,
		      (unsigned long long)r->h, errno);
		CHECK(forkshim_find((void *)r->start, r->len) == r->h &&
		          forkshim_find((void *)(r->start + r->len - 1), 1) ==
		              r->h,
		      "find of region %d: errno %d", i, errno);
		CHECK(forkshim_info(r->h, &info) == 0 &&
		          info.addr == (void *)r->start && info.len == r->len &&
		          info.freezes == r->freezes &&
		          info.flags == r->flags && info.owner == owner &&
		          strcmp(info.name, r->name) == 0,
		      "info of region %d: freezes %u/%u owner %d/%d name "
		      "'%s'/'%s'",
		      i, info.freezes, r->freezes, (int)info.owner, (int)owner,
		      info.name, r->name);
	}
	for (unsigned i = 0; i < GRAVE; i++) {
		if (grave[i] == 0 || find_handle(mm, grave[i]) >= 0)
			continue;
		errno = 0;
		CHECK(forkshim_deref(grave[i], NULL) == NULL && errno == ESTALE,
		      "thawed %#llx: errno %d", (unsigned long long)grave[i],
		      errno);
	}
}

static void do_freeze(uint64_t v, const uint8_t *name_bytes, size_t avail)
{
	uintptr_t start = (uintptr_t)pool + (uintptr_t)(v % (POOL + 64));
	size_t len = (size_t)(v >> 16) % 8192;
	/* GUARD, and 0x8 as a flag no freeze knows (FORKSHIM_SHARED, 0x2,
	 * is fuzzed by fuzz_tokens and tests/shared; FORKSHIM_OBSERVE is
	 * 0x4). */
	unsigned pick = (v >> 40) % 8 == 0 ? (unsigned)(v >> 44) & 3 : 0;
	unsigned flags =
	    (pick & 1 ? FORKSHIM_GUARD : 0) | (pick & 2 ? 0x8u : 0);
	char name[100] = "";
	int overlap = -1, identical = -1, expect;
	forkshim_handle h;

	if ((v >> 32) % 16 == 0)
		len = 0;
	if (avail > 0) {
		size_t nl = name_bytes[0] % 90;

		if (nl > avail - 1)
			nl = avail - 1;
		memcpy(name, name_bytes + 1, nl);
		name[nl] = '\0';
	}
	for (int i = 0; i < m.n; i++) {
		const struct region *r = &m.r[i];

		if (r->start == start && r->len == len)
			identical = i;
		else if (start < r->start + r->len && r->start < start + len)
			overlap = i;
	}
	if (len == 0 || (flags & ~FORKSHIM_GUARD))
		expect = EINVAL;
	else if (start + len > (uintptr_t)pool + POOL)
		expect = EFAULT;
	else if (identical >= 0)
		expect = 0;
	else if (overlap >= 0)
		expect = EEXIST;
	else if ((size_t)m.n >= capacity)
		expect = ENOMEM;
	else
		expect = 0;
	errno = 0;
	h = forkshim_freeze((void *)start, len, name, flags);
	if (expect != 0) {
		CHECK(h == 0 && errno == expect,
		      "freeze [%#lx, +%zu) flags %u: %#llx errno %d, expected "
		      "%d",
		      (unsigned long)(start - (uintptr_t)pool), len, flags,
		      (unsigned long long)h, errno, expect);
		return;
	}
	if (identical >= 0) {
		CHECK(h == m.r[identical].h,
		      "identical refreeze gave %#llx errno %d",
		      (unsigned long long)h, errno);
		m.r[identical].freezes++;
		return;
	}
	CHECK(h != 0, "freeze [%#lx, +%zu): errno %d",
	      (unsigned long)(start - (uintptr_t)pool), len, errno);
	CHECK(find_handle(&m, h) < 0 && !buried(h),
	      "fresh handle %#llx was handed out before",
	      (unsigned long long)h);
	if (m.n == MAX_LIVE) { /* the model is full: undo it */
		CHECK(forkshim_thaw(h) == 0, "thaw");
		grave[grave_next++ % GRAVE] = h;
		return;
	}
	m.r[m.n] = (struct region){start, len, h, 1, flags, ""};
	strncpy(m.r[m.n].name, name, FORKSHIM_NAME_MAX - 1);
	m.n++;
}

static void do_thaw(int i)
{
	forkshim_handle h = m.r[i].h;

	CHECK(forkshim_thaw(h) == 0, "thaw of live %#llx: errno %d",
	      (unsigned long long)h, errno);
	if (--m.r[i].freezes > 0)
		return;
	m.r[i] = m.r[--m.n];
	grave[grave_next++ % GRAVE] = h;
	errno = 0;
	CHECK(forkshim_deref(h, NULL) == NULL && errno == ESTALE,
	      "just thawed %#llx: errno %d", (unsigned long long)h, errno);
}

static void do_find(uint64_t v)
{
	uintptr_t a = (uintptr_t)pool + (uintptr_t)(v % POOL);
	size_t len = 1 + (size_t)(v >> 20) % 2048;
	forkshim_handle want = 0, got;

	if (a + len > (uintptr_t)pool + POOL)
		len = (uintptr_t)pool + POOL - a;
	for (int i = 0; i < m.n; i++)
		if (m.r[i].start <= a && a + len <= m.r[i].start + m.r[i].len)
			want = m.r[i].h;
	errno = 0;
	got = forkshim_find((void *)a, len);
	CHECK(got == want && (want != 0 || errno == ENOENT),
	      "find [%#lx, +%zu): %#llx errno %d, expected %#llx",
	      (unsigned long)(a - (uintptr_t)pool), len,
	      (unsigned long long)got, errno, (unsigned long long)want);
}

/* libFuzzer's -timeout alarm interrupts system calls: EINTR is retried. */
static void put(int fd, const void *p, size_t n)
{
	ssize_t w;

	while ((w = write(fd, p, n)) < 0 && errno == EINTR)
		;
	CHECK(w == (ssize_t)n, "pipe write: errno %d", errno);
}

static void get(int fd, void *p, size_t n)
{
	ssize_t r;

	while ((r = read(fd, p, n)) < 0 && errno == EINTR)
		;
	CHECK(r == (ssize_t)n, "pipe read: %zd errno %d", r, errno);
}

static int reap(pid_t pid)
{
	int status = -1;
	pid_t r;

	while ((r = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
		;
	CHECK(r == pid, "waitpid %d: %d errno %d", (int)pid, (int)r, errno);
	return status;
}

/* The held child: answers the parent's lists at the end of the input. */
static void child_wait(int in, int out)
{
	struct {
		uint64_t h, addr;
	} item;
	uint64_t count;
	char ok = 1;

	get(in, &count, sizeof(count));
	for (uint64_t k = 0; k < count; k++) {
		const void *p;

		get(in, &item, sizeof(item));
		errno = 0;
		p = forkshim_deref(item.h, NULL);
		if (item.addr == 0)
			CHECK(p == NULL && errno == ENOENT,
			      "frozen after birth %#llx: %p errno %d",
			      (unsigned long long)item.h, p, errno);
		else
			CHECK(p == (void *)item.addr,
			      "thawed after birth %#llx: %p errno %d",
			      (unsigned long long)item.h, p, errno);
	}
	put(out, &ok, 1);
}

static void do_fork(int hold)
{
	int down[2], up[2], status;
	pid_t pid;

	if (forks >= MAX_FORKS || pipe(down) != 0)
		return;
	if (pipe(up) != 0) {
		close(down[0]);
		close(down[1]);
		return;
	}
	forks++;
	pid = fork();
	CHECK(pid >= 0, "fork: errno %d", errno);
	if (pid == 0) {
		in_child = 1;
		close(down[1]);
		close(up[0]);
		for (int k = 0; k < nheld; k++) {
			close(held[k].to);
			close(held[k].from);
		}
		check_table(&m, getppid());
		if (hold)
			child_wait(down[0], up[1]);
		_exit(0);
	}
	close(down[0]);
	close(up[1]);
	for (int i = 0; i < m.n; i++)
		CHECK(forkshim_visible(m.r[i].h, pid) == 1,
		      "visible of region %d to a child born after it", i);
	if (hold) {
		held[nheld++] = (struct held){pid, down[1], up[0], m};
		return;
	}
	close(down[1]);
	close(up[0]);
	status = reap(pid);
	CHECK(status == 0, "child status %#x", status);
}

/* The end of the input for a held child: send, check, reap. */
static void release(struct held *c)
{
	struct {
		uint64_t h, addr;
	} item;
	uint64_t count = 0;
	int status, v;
	char ok = 0;

	for (int i = 0; i < m.n; i++)
		count += find_handle(&c->at_birth, m.r[i].h) < 0;
	for (int i = 0; i < c->at_birth.n; i++)
		count += find_handle(&m, c->at_birth.r[i].h) < 0;
	put(c->to, &count, sizeof(count));
	for (int i = 0; i < m.n; i++) {
		if (find_handle(&c->at_birth, m.r[i].h) >= 0)
			continue;
		v = forkshim_visible(m.r[i].h, c->pid);
		CHECK(v == 0, "visible %d of a region frozen after the birth",
		      v);
		item.h = m.r[i].h;
		item.addr = 0;
		put(c->to, &item, sizeof(item));
	}
	for (int i = 0; i < c->at_birth.n; i++) {
		if (find_handle(&m, c->at_birth.r[i].h) >= 0)
			continue;
		item.h = c->at_birth.r[i].h;
		item.addr = c->at_birth.r[i].start;
		put(c->to, &item, sizeof(item));
	}
	get(c->from, &ok, 1);
	CHECK(ok == 1, "held child answered %d", ok);
	close(c->to);
	close(c->from);
	status = reap(c->pid);
	CHECK(status == 0, "held child status %#x", status);
	CHECK(forkshim_visible(m.n > 0 ? m.r[0].h : 0, c->pid) == -1,
	      "visible of a reaped child");
}

/* visible(h, 0): 1 when every live child (the held ones) was born after
 * h's freeze; EBADF for 0. */
static void check_visible_all(forkshim_handle h)
{
	int want = h != 0, got;

	for (int k = 0; k < nheld && want; k++)
		want = find_handle(&held[k].at_birth, h) >= 0;
	errno = 0;
	got = forkshim_visible(h, 0);
	CHECK(got == (h != 0 ? want : -1),
	      "visible(%#llx, 0) = %d with %d live children: errno %d",
	      (unsigned long long)h, got, nheld, errno);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	nheld = 0;
	forks = 0;
	for (size_t at = 0; at + 9 <= size; at += 9) {
		uint64_t v;

		memcpy(&v, data + at + 1, sizeof(v));
		switch (data[at] % 10) {
		case 0:
		case 1:
		case 2:
			do_freeze(v, data + at + 9, size - at - 9);
			break;
		case 3:
		case 4:
			if (m.n > 0)
				do_thaw((int)(v % (uint64_t)m.n));
			break;
		case 5:
			do_find(v);
			break;
		case 6:
			check_table(&m, getpid());
			break;
		case 7:
			do_fork((int)(v & 1));
			break;
		case 8:
			forkshim_sharing(m.n > 0 ? m.r[v % m.n].h : v,
			                 &(struct forkshim_sharing){0});
			break;
		default:
			check_visible_all(m.n > 0 ? m.r[v % m.n].h : 0);
		}
	}
	for (int k = 0; k < nheld; k++)
		release(&held[k]);
	while (m.n > 0)
		do_thaw(0);
	return 0;
}
