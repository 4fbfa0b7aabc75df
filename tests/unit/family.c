/* Families: what forked children, grandchildren, siblings and unrelated
 * processes can and cannot resolve.  Every process here is real. */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>

#include "common.h"

extern char **environ;

/* A handle and the pattern seed its bytes were filled with. */
struct probe {
	forkshim_handle h;
	unsigned seed;
};

/* Everything a process can be told about a handle.  thaw_err is only
 * tried when the handle did not resolve (-1: not tried). */
struct verdict {
	struct answer a;
	int info_err;
	int sharing_err;
	int visible_err;
	int thaw_err;
};

static struct verdict judge(forkshim_handle h, unsigned seed)
{
	struct verdict v;
	struct forkshim_info info;
	struct forkshim_sharing sh;

	v.a = ask(h, seed);
	errno = 0;
	v.info_err = forkshim_info(h, &info) == 0 ? 0 : errno;
	errno = 0;
	v.sharing_err = forkshim_sharing(h, &sh) == 0 ? 0 : errno;
	errno = 0;
	v.visible_err = forkshim_visible(h, 0) >= 0 ? 0 : errno;
	v.thaw_err = -1;
	if (v.a.addr == NULL) {
		errno = 0;
		v.thaw_err = forkshim_thaw(h) == 0 ? 0 : errno;
	}
	return v;
}

/* Expects every call of v to have failed with err (0: any of the three
 * handle errors). */
static void expect_verdict_fails(const struct verdict *v, int err,
                                 const char *what)
{
	cr_expect(v->a.addr == NULL, "%s: resolved to %p", what, v->a.addr);
	if (err != 0) {
		cr_expect(v->a.err == err && v->info_err == err &&
		              v->sharing_err == err && v->visible_err == err &&
		              v->thaw_err == err,
		          "%s: deref %d info %d sharing %d visible %d thaw %d, "
		          "expected %d",
		          what, v->a.err, v->info_err, v->sharing_err,
		          v->visible_err, v->thaw_err, err);
	} else {
		cr_expect(is_handle_errno(v->a.err) &&
		              is_handle_errno(v->info_err) &&
		              is_handle_errno(v->sharing_err) &&
		              is_handle_errno(v->visible_err) &&
		              is_handle_errno(v->thaw_err),
		          "%s: deref %d info %d sharing %d visible %d thaw %d",
		          what, v->a.err, v->info_err, v->sharing_err,
		          v->visible_err, v->thaw_err);
	}
}

static void expect_resolves(const struct answer *a, const void *addr,
                            size_t len, const char *what)
{
	cr_expect(a->addr == addr, "%s: deref gave %p (errno %d), expected %p",
	          what, a->addr, a->err, addr);
	cr_expect(a->len == len, "%s: len %zu, expected %zu", what, a->len,
	          len);
	cr_expect(a->addr == NULL || a->bytes_ok, "%s: wrong bytes", what);
}

static forkshim_handle freeze_pattern(void *p, size_t len, unsigned seed,
                                      const char *name)
{
	forkshim_handle h;

	fill_pattern(p, len, seed);
	h = forkshim_freeze(p, len, name, 0);
	cr_assert(h != 0, "freeze %s: %s", name, strerror(errno));
	return h;
}

static void expect_exit_zero(struct child *c)
{
	int code = child_finish(c);

	cr_expect(code == 0, "child ended with %d", code);
}

/* ---- bodies ------------------------------------------------------------ */

/* Asks about the probe it was given at fork. */
static void body_ask(int in, int out, void *arg)
{
	struct probe *pr = arg;
	struct answer a = ask(pr->h, pr->seed);

	(void)in;
	put(out, &a, sizeof a);
}

/* Reads probes from the test until it closes the pipe, answers each with a
 * verdict. */
static void body_judge_received(int in, int out, void *arg)
{
	struct probe pr;

	(void)arg;
	while (get(in, &pr, sizeof pr) == 0) {
		struct verdict v = judge(pr.h, pr.seed);
		put(out, &v, sizeof v);
	}
}

/* Reads probes, answers with a plain deref answer (no thaw). */
static void body_ask_received(int in, int out, void *arg)
{
	struct probe pr;

	(void)arg;
	while (get(in, &pr, sizeof pr) == 0) {
		struct answer a = ask(pr.h, pr.seed);
		put(out, &a, sizeof a);
	}
}

static struct verdict send_and_judge(struct child *c, forkshim_handle h,
                                     unsigned seed)
{
	struct probe pr = {h, seed};
	struct verdict v;

	put(c->to, &pr, sizeof pr);
	cr_assert(get(c->from, &v, sizeof v) == 0, "child died");
	return v;
}

static struct answer send_and_ask(struct child *c, forkshim_handle h,
                                  unsigned seed)
{
	struct probe pr = {h, seed};
	struct answer a;

	put(c->to, &pr, sizeof pr);
	cr_assert(get(c->from, &a, sizeof a) == 0, "child died");
	return a;
}

/* ---- parent to child --------------------------------------------------- */

Test(family, child_derefs_a_handle_frozen_before_its_birth)
{
	unsigned char *p = map_pages(3);
	size_t len = 3 * page_size() - 17;
	struct probe pr = {freeze_pattern(p, len, 1, "pre"), 1};
	struct child c = child_start(body_ask, &pr);
	struct answer a;

	cr_assert(get(c.from, &a, sizeof a) == 0, "child died");
	expect_resolves(&a, p, len, "child");
	expect_exit_zero(&c);
}

struct info_report {
	int inherited_rc, own_rc;
	struct forkshim_info inherited, own;
	pid_t pid;
};

static void body_info(int in, int out, void *arg)
{
	forkshim_handle *h = arg;
	struct info_report r;
	static char own[8];

	(void)in;
	memset(&r, 0, sizeof r);
	r.inherited_rc = forkshim_info(*h, &r.inherited);
	r.own_rc = forkshim_info(forkshim_freeze(own, 8, "own", 0), &r.own);
	r.pid = getpid();
	put(out, &r, sizeof r);
}

Test(family, child_sees_the_inherited_fields_and_owns_its_own_freezes)
{
	unsigned char *p = map_pages(1);
	forkshim_handle h = forkshim_freeze(p, 99, "inherited", 0);
	struct info_report r;
	struct child c;

	cr_assert(h != 0 && forkshim_freeze(p, 99, "inherited", 0) == h);
	c = child_start(body_info, &h);
	cr_assert(get(c.from, &r, sizeof r) == 0, "child died");
	expect_exit_zero(&c);
	cr_expect(r.inherited_rc == 0);
	cr_expect(r.inherited.addr == p && r.inherited.len == 99);
	cr_expect(r.inherited.owner == getpid(),
	          "owner %d, expected the parent %d", (int)r.inherited.owner,
	          (int)getpid());
	cr_expect(r.inherited.freezes == 2, "freezes %u", r.inherited.freezes);
	cr_expect(strcmp(r.inherited.name, "inherited") == 0);
	cr_expect(r.own_rc == 0, "the child's own freeze or info failed");
	cr_expect(r.own.owner == r.pid && r.pid == c.pid,
	          "own region's owner %d, child %d", (int)r.own.owner,
	          (int)r.pid);
	cr_expect(r.own.len == 8 && strcmp(r.own.name, "own") == 0);
}

Test(family, handle_frozen_after_the_childs_birth_is_enoent_in_the_child)
{
	unsigned char *p = map_pages(2);
	forkshim_handle pre = freeze_pattern(p, 64, 1, "pre");
	struct child c = child_start(body_judge_received, NULL);
	unsigned char *q = map_pages(1);
	forkshim_handle post = freeze_pattern(q, 64, 2, "post");
	forkshim_handle post2 = freeze_pattern(p + page_size(), 64, 3, "p2");
	struct verdict v;

	v = send_and_judge(&c, post, 2);
	expect_verdict_fails(&v, ENOENT, "region in new memory");
	v = send_and_judge(&c, post2, 3);
	expect_verdict_fails(&v, ENOENT, "region in inherited memory");
	v = send_and_judge(&c, pre, 1);
	expect_resolves(&v.a, p, 64, "the region frozen before birth");
	expect_exit_zero(&c);
}

/* Reads a count and that many probes, answers each; until end of file. */
static void body_ask_batch(int in, int out, void *arg)
{
	uint32_t n;

	(void)arg;
	while (get(in, &n, sizeof n) == 0) {
		struct probe *pr = malloc(n * sizeof *pr);

		if (pr == NULL || get(in, pr, n * sizeof *pr) != 0)
			_exit(2);
		for (uint32_t i = 0; i < n; i++) {
			struct answer a = ask(pr[i].h, pr[i].seed);
			put(out, &a, sizeof a);
		}
		free(pr);
	}
}

static void send_batch(struct child *c, const struct probe *pr, uint32_t n)
{
	put(c->to, &n, sizeof n);
	put(c->to, pr, n * sizeof *pr);
}

enum { NPRE = 4, NFILL = 1100, NPOST = NPRE + NFILL };

/* The parent thaws every inherited region and freezes as many new ones,
 * so that the new ones take the inherited slots (a table may hold thawed
 * slots back for a while: the fillers see to that). */
Test(family, handle_reusing_an_inherited_slot_is_enoent_in_the_child)
{
	unsigned char *p = map_pages(1);
	unsigned char *fill = map_pages(NFILL * 16 / page_size() + 1);
	unsigned char *later = map_pages(NPOST * 16 / page_size() + 1);
	struct probe pre[NPRE], *post = calloc(NPOST, sizeof *post);
	forkshim_handle *fillers = calloc(NFILL, sizeof *fillers);
	struct child c;
	int bad = 0;

	cr_assert(fillers != NULL && post != NULL);
	for (int i = 0; i < NPRE; i++)
		pre[i] = (struct probe){
		    freeze_pattern(p + 64 * i, 64, 10 + i, "pre"), 10 + i};
	for (int i = 0; i < NFILL; i++) {
		fillers[i] = forkshim_freeze(fill + 16 * i, 16, NULL, 0);
		cr_assert(fillers[i] != 0);
	}
	c = child_start(body_ask_batch, NULL);
	for (int i = 0; i < NPRE; i++)
		cr_assert(forkshim_thaw(pre[i].h) == 0);
	for (int i = 0; i < NFILL; i++)
		cr_assert(forkshim_thaw(fillers[i]) == 0);
	for (int i = 0; i < NPOST; i++) {
		post[i].h = forkshim_freeze(later + 16 * i, 16, NULL, 0);
		cr_assert(post[i].h != 0);
	}
	send_batch(&c, post, NPOST);
	for (int i = 0; i < NPOST; i++) {
		struct answer a;

		cr_assert(get(c.from, &a, sizeof a) == 0, "child died");
		if ((a.addr != NULL || a.err != ENOENT) && bad++ < 5)
			cr_expect(0, "post-birth region %d: %p, errno %d", i,
			          a.addr, a.err);
	}
	cr_expect(bad == 0, "%d of %d post-birth handles were not ENOENT", bad,
	          NPOST);
	send_batch(&c, pre, NPRE);
	for (int i = 0; i < NPRE; i++) {
		struct answer a;

		cr_assert(get(c.from, &a, sizeof a) == 0, "child died");
		expect_resolves(&a, p + 64 * i, 64, "inherited region");
	}
	expect_exit_zero(&c);
	free(fillers);
	free(post);
}

Test(family, handle_thawed_before_the_fork_is_estale_in_the_child)
{
	unsigned char *p = map_pages(1);
	forkshim_handle gone = freeze_pattern(p, 64, 1, "gone");
	forkshim_handle next;
	struct child c;
	struct verdict v;
	struct answer a;

	cr_assert(forkshim_thaw(gone) == 0);
	next = freeze_pattern(p + 64, 64, 2, "next");
	c = child_start(body_judge_received, NULL);
	v = send_and_judge(&c, gone, 1);
	expect_verdict_fails(&v, ESTALE, "thawed before the fork");
	a = send_and_ask(&c, next, 2);
	expect_resolves(&a, p + 64, 64, "frozen after that thaw");
	expect_exit_zero(&c);
}

/* The parent thaws, scribbles over, unmaps or frees the memory, and reuses
 * the slot: the child's copy is untouched. */
Test(family, parent_thaw_and_munmap_after_the_fork_leave_the_child_alone)
{
	size_t ps = page_size();
	unsigned char *p = map_pages(2);
	forkshim_handle h = freeze_pattern(p, 2 * ps, 7, "mapped");
	struct child c = child_start(body_ask_received, NULL);
	unsigned char *q;
	forkshim_handle other;
	struct answer a;

	cr_assert(forkshim_thaw(h) == 0);
	memset(p, 0xff, 2 * ps);
	unmap_pages(p, 2);
	q = mmap(p, ps, PROT_READ | PROT_WRITE,
	         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	cr_assert(q != MAP_FAILED);
	other = freeze_pattern(q, 100, 8, "other");
	a = send_and_ask(&c, h, 7);
	expect_resolves(&a, p, 2 * ps, "thawed and unmapped by the parent");
	a = send_and_ask(&c, other, 8);
	cr_expect(a.addr == NULL && a.err == ENOENT,
	          "parent's new region: %p errno %d", a.addr, a.err);
	errno = 0;
	cr_expect(forkshim_deref(h, NULL) == NULL && errno == ESTALE,
	          "the parent's own view: errno %d", errno);
	expect_exit_zero(&c);
}

Test(family, parent_thaw_and_free_after_the_fork_leave_the_child_alone)
{
	char *small = malloc(100), *big = malloc(1 << 20);
	forkshim_handle hs, hb;
	struct child c;
	struct answer a;

	cr_assert(small != NULL && big != NULL);
	hs = freeze_pattern(small, 100, 3, "small");
	hb = freeze_pattern(big, 1 << 20, 4, "big");
	c = child_start(body_ask_received, NULL);
	cr_assert(forkshim_thaw(hs) == 0 && forkshim_thaw(hb) == 0);
	free(small);
	free(big);
	small = malloc(100);
	big = malloc(1 << 20);
	cr_assert(small != NULL && big != NULL);
	memset(small, 0, 100);
	memset(big, 0, 1 << 20);
	a = send_and_ask(&c, hs, 3);
	cr_expect(a.addr != NULL && a.len == 100 && a.bytes_ok,
	          "small: %p len %zu bytes_ok %d errno %d", a.addr, a.len,
	          a.bytes_ok, a.err);
	a = send_and_ask(&c, hb, 4);
	cr_expect(a.addr != NULL && a.len == 1 << 20 && a.bytes_ok,
	          "big: %p len %zu bytes_ok %d errno %d", a.addr, a.len,
	          a.bytes_ok, a.err);
	expect_exit_zero(&c);
	free(small);
	free(big);
}

/* ---- the child's own actions ------------------------------------------- */

struct thaw_report {
	int thaw_rc;
	struct answer after;
	int second_thaw_err;
	int refreeze_ok;
};

static void body_thaw(int in, int out, void *arg)
{
	struct probe *pr = arg;
	struct thaw_report r;
	struct forkshim_info info;
	size_t len;
	const void *addr = forkshim_deref(pr->h, &len);

	(void)in;
	r.thaw_rc = forkshim_thaw(pr->h);
	r.after = ask(pr->h, pr->seed);
	errno = 0;
	r.second_thaw_err = forkshim_thaw(pr->h) == 0 ? 0 : errno;
	/* The range is free again in the child's table. */
	forkshim_handle again = forkshim_freeze(addr, len, "again", 0);
	r.refreeze_ok = again != 0 && again != pr->h &&
	                forkshim_info(again, &info) == 0 &&
	                info.owner == getpid();
	put(out, &r, sizeof r);
}

Test(family, child_thaw_is_estale_in_the_child_and_leaves_the_parent_alone)
{
	unsigned char *p = map_pages(1);
	struct probe pr = {freeze_pattern(p, 300, 5, "shared"), 5};
	struct expect_region r = {pr.h, p, 300, 0, 1, "shared"};
	struct child c = child_start(body_thaw, &pr);
	struct thaw_report tr;

	cr_assert(get(c.from, &tr, sizeof tr) == 0, "child died");
	cr_expect(tr.thaw_rc == 0, "child's thaw failed");
	cr_expect(tr.after.addr == NULL && tr.after.err == ESTALE,
	          "after the child's thaw, in the child: %p errno %d",
	          tr.after.addr, tr.after.err);
	cr_expect(tr.second_thaw_err == ESTALE, "second thaw: errno %d",
	          tr.second_thaw_err);
	cr_expect(tr.refreeze_ok, "the child could not freeze the range anew");
	expect_exit_zero(&c);
	expect_table(&r, 1, "the child's thaw");
}

enum { NOWN = 8 };

/* Freezes NOWN regions of its own, sends their handles up, and stays alive
 * until the test closes the pipe. */
static void body_freeze_own(int in, int out, void *arg)
{
	unsigned char *mem = arg;
	forkshim_handle h[NOWN];

	for (int i = 0; i < NOWN; i++) {
		fill_pattern(mem + 64 * i, 64, 40 + i);
		h[i] = forkshim_freeze(mem + 64 * i, 64, "child's", 0);
	}
	put(out, h, sizeof h);
	body_wait(in, out, NULL);
}

Test(family, child_freeze_sent_up_to_the_parent_never_resolves)
{
	unsigned char *p = map_pages(2);
	forkshim_handle pre = freeze_pattern(p + page_size(), 16, 1, "pre");
	struct child c = child_start(body_freeze_own, p);
	struct expect_region mine[NOWN + 1];
	forkshim_handle theirs[NOWN];

	/* Same table state as the child: the same slots get taken. */
	mine[NOWN] =
	    (struct expect_region){pre, p + page_size(), 16, 0, 1, "pre"};
	for (int i = 0; i < NOWN; i++) {
		mine[i] =
		    (struct expect_region){0, p + 64 * i, 64, 0, 1, "parent's"};
		mine[i].h = freeze_pattern(p + 64 * i, 64, 40 + i, "parent's");
	}
	cr_assert(get(c.from, theirs, sizeof theirs) == 0, "child died");
	for (int i = 0; i < NOWN; i++) {
		cr_assert(theirs[i] != 0, "the child's freeze %d failed", i);
		struct verdict v = judge(theirs[i], 40 + i);
		expect_verdict_fails(&v, 0, "child's handle in the parent");
	}
	expect_table(mine, NOWN + 1, "using the child's handles");
	expect_exit_zero(&c);
	/* And once the child is gone. */
	for (int i = 0; i < NOWN; i++) {
		struct verdict v = judge(theirs[i], 40 + i);
		expect_verdict_fails(&v, 0, "dead child's handle");
	}
	expect_table(mine, NOWN + 1, "using a dead child's handles");
}

/* ---- siblings ---------------------------------------------------------- */

struct sibling_arg {
	unsigned char *mem;
	int rd, wr; /* the pipe from the first sibling to the second */
};

static void body_sibling_a(int in, int out, void *arg)
{
	struct sibling_arg *s = arg;
	forkshim_handle h[NOWN];

	close(s->rd);
	for (int i = 0; i < NOWN; i++) {
		fill_pattern(s->mem + 64 * i, 64, 60 + i);
		h[i] = forkshim_freeze(s->mem + 64 * i, 64, "A's", 0);
	}
	put(s->wr, h, sizeof h);
	body_wait(in, out, NULL);
}

struct sibling_report {
	forkshim_handle got[NOWN];
	struct verdict v[NOWN];
	int own_ok;
};

static void body_sibling_b(int in, int out, void *arg)
{
	struct sibling_arg *s = arg;
	struct sibling_report r;
	forkshim_handle own[NOWN];

	(void)in;
	close(s->wr);
	for (int i = 0; i < NOWN; i++) {
		fill_pattern(s->mem + 64 * i, 64, 80 + i);
		own[i] = forkshim_freeze(s->mem + 64 * i, 64, "B's", 0);
	}
	memset(&r, 0, sizeof r);
	if (get(s->rd, r.got, sizeof r.got) != 0)
		_exit(3);
	for (int i = 0; i < NOWN; i++)
		r.v[i] = judge(r.got[i], 60 + i);
	r.own_ok = 1;
	for (int i = 0; i < NOWN; i++) {
		struct answer a = ask(own[i], 80 + i);
		r.own_ok &= a.addr == s->mem + 64 * i && a.bytes_ok;
	}
	put(out, &r, sizeof r);
}

Test(family, sibling_handle_never_resolves)
{
	unsigned char *p = map_pages(2);
	forkshim_handle pre = freeze_pattern(p + page_size(), 16, 1, "pre");
	struct sibling_arg s = {p, -1, -1};
	int fds[2];
	struct child a, b;
	struct sibling_report r;

	(void)pre;
	cr_assert(pipe(fds) == 0);
	s.rd = fds[0];
	s.wr = fds[1];
	a = child_start(body_sibling_a, &s);
	b = child_start(body_sibling_b, &s);
	close(fds[0]);
	close(fds[1]);
	cr_assert(get(b.from, &r, sizeof r) == 0, "sibling B died");
	for (int i = 0; i < NOWN; i++) {
		cr_expect(r.got[i] != 0, "A's freeze %d failed", i);
		expect_verdict_fails(&r.v[i], 0, "A's handle in B");
	}
	cr_expect(r.own_ok, "B's own regions were disturbed");
	expect_exit_zero(&b);
	expect_exit_zero(&a);
}

/* ---- an unrelated process ---------------------------------------------- */

/* Runs the helper, which freezes n regions and prints their handles. */
static size_t foreign_handles(forkshim_handle *out, size_t n)
{
	char count[16], preload[4096];
	char *argv[] = {UNIT_HELPER, "freeze", count, NULL};
	char *envp[] = {preload, NULL};
	posix_spawn_file_actions_t fa;
	int fds[2], status;
	pid_t pid;
	FILE *f;
	size_t got = 0;
	unsigned long long h;

	snprintf(count, sizeof count, "%zu", n);
	snprintf(preload, sizeof preload, "LD_PRELOAD=%s", FORKSHIM_PRELOAD);
	cr_assert(pipe(fds) == 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
	posix_spawn_file_actions_addclose(&fa, fds[0]);
	cr_assert(posix_spawn(&pid, UNIT_HELPER, &fa, NULL, argv, envp) == 0);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[1]);
	f = fdopen(fds[0], "r");
	cr_assert(f != NULL);
	while (got < n && fscanf(f, "handle %llx\n", &h) == 1)
		out[got++] = h;
	fclose(f);
	cr_assert(waitpid(pid, &status, 0) == pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	          "helper failed: status %#x", status);
	return got;
}

Test(family, handle_from_an_unrelated_process_never_resolves)
{
	unsigned char *p = map_pages(1);
	struct expect_region mine[NOWN];
	forkshim_handle theirs[NOWN];

	for (int i = 0; i < NOWN; i++) {
		mine[i] = (struct expect_region){0, p + 64 * i, 64, 0, 1, "m"};
		mine[i].h = freeze_pattern(p + 64 * i, 64, i, "m");
	}
	cr_assert(foreign_handles(theirs, NOWN) == NOWN);
	for (int i = 0; i < NOWN; i++) {
		struct verdict v;

		cr_assert(theirs[i] != 0);
		v = judge(theirs[i], 0);
		expect_verdict_fails(&v, 0, "unrelated process's handle");
	}
	expect_table(mine, NOWN, "using an unrelated process's handles");
}

/* ---- three generations ------------------------------------------------- */

struct lineage {
	unsigned char *mem;
	struct probe from_grandparent;
};

struct grandchild_report {
	struct answer grandparent, parent;
	pid_t grandparent_owner, parent_owner, parent_pid;
};

static void body_middle_freezes_then_forks(int in, int out, void *arg)
{
	struct lineage *l = arg;
	struct probe mine;
	pid_t pid;
	int status;

	(void)in;
	mine.seed = 2;
	fill_pattern(l->mem, 128, 2);
	mine.h = forkshim_freeze(l->mem, 128, "middle", 0);
	pid = fork();
	if (pid == 0) {
		struct grandchild_report r;
		struct forkshim_info info;

		r.grandparent = ask(l->from_grandparent.h, 1);
		r.parent = ask(mine.h, 2);
		r.grandparent_owner = r.parent_owner = -1;
		if (forkshim_info(l->from_grandparent.h, &info) == 0)
			r.grandparent_owner = info.owner;
		if (forkshim_info(mine.h, &info) == 0)
			r.parent_owner = info.owner;
		r.parent_pid = getppid();
		put(out, &r, sizeof r);
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		_exit(4);
	_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 5);
}

Test(family, grandchild_inherits_the_regions_of_both_ancestors)
{
	unsigned char *p = map_pages(1), *q = map_pages(1);
	struct lineage l = {q, {freeze_pattern(p, 200, 1, "top"), 1}};
	struct child c = child_start(body_middle_freezes_then_forks, &l);
	struct grandchild_report r;

	cr_assert(get(c.from, &r, sizeof r) == 0, "grandchild died");
	expect_resolves(&r.grandparent, p, 200, "grandparent's region");
	expect_resolves(&r.parent, q, 128, "parent's region");
	cr_expect(r.grandparent_owner == getpid(), "grandparent owner %d",
	          (int)r.grandparent_owner);
	cr_expect(r.parent_owner == r.parent_pid && r.parent_pid == c.pid,
	          "parent owner %d, parent %d, child %d", (int)r.parent_owner,
	          (int)r.parent_pid, (int)c.pid);
	expect_exit_zero(&c);
}

struct late_report {
	struct answer late_from_top, early_from_top, thawed_by_middle,
	    late_from_middle;
};

/* The middle process gets two handles from its parent (one frozen after its
 * birth), thaws one inherited region, forks, then freezes a region for the
 * grandchild and sends it down. */
static void body_middle_late(int in, int out, void *arg)
{
	forkshim_handle thawed = *(forkshim_handle *)arg;
	forkshim_handle late_top, early, late_mid;
	unsigned char *m;
	int down[2], status;
	pid_t pid;

	if (get(in, &late_top, sizeof late_top) != 0 ||
	    get(in, &early, sizeof early) != 0)
		_exit(6);
	if (forkshim_thaw(thawed) != 0 || pipe(down) != 0)
		_exit(7);
	pid = fork();
	if (pid == 0) {
		struct late_report r;

		close(down[1]);
		r.late_from_top = ask(late_top, 3);
		r.early_from_top = ask(early, 4);
		r.thawed_by_middle = ask(thawed, 1);
		if (get(down[0], &late_mid, sizeof late_mid) != 0)
			_exit(8);
		r.late_from_middle = ask(late_mid, 5);
		put(out, &r, sizeof r);
		_exit(0);
	}
	close(down[0]);
	m = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
	         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (pid < 0 || m == MAP_FAILED)
		_exit(9);
	fill_pattern(m, 50, 5);
	late_mid = forkshim_freeze(m, 50, "late mid", 0);
	put(down[1], &late_mid, sizeof late_mid);
	if (waitpid(pid, &status, 0) != pid)
		_exit(10);
	_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 11);
}

Test(family, regions_frozen_after_an_ancestors_birth_are_enoent_below_it)
{
	unsigned char *p = map_pages(2);
	forkshim_handle thawed = freeze_pattern(p + 1000, 10, 1, "thawed");
	forkshim_handle early = freeze_pattern(p, 100, 4, "early");
	struct child c = child_start(body_middle_late, &thawed);
	forkshim_handle late = freeze_pattern(p + page_size(), 30, 3, "late");
	struct late_report r;

	put(c.to, &late, sizeof late);
	put(c.to, &early, sizeof early);
	cr_assert(get(c.from, &r, sizeof r) == 0, "grandchild died");
	cr_expect(r.late_from_top.addr == NULL && r.late_from_top.err == ENOENT,
	          "grandparent's region frozen after the parent's birth: "
	          "%p errno %d",
	          r.late_from_top.addr, r.late_from_top.err);
	expect_resolves(&r.early_from_top, p, 100,
	                "grandparent's early region");
	cr_expect(r.thawed_by_middle.addr == NULL &&
	              r.thawed_by_middle.err == ESTALE,
	          "thawed by the parent before the birth: %p errno %d",
	          r.thawed_by_middle.addr, r.thawed_by_middle.err);
	cr_expect(r.late_from_middle.addr == NULL &&
	              r.late_from_middle.err == ENOENT,
	          "parent's region frozen after the birth: %p errno %d",
	          r.late_from_middle.addr, r.late_from_middle.err);
	expect_exit_zero(&c);
	cr_expect(forkshim_deref(thawed, NULL) == p + 1000,
	          "the middle's thaw reached the grandparent");
}

/* ---- however the child was made ---------------------------------------- */

enum how { BY_FORK, BY_UNDERSCORE_FORK, BY_SYSCALL_FORK, BY_CLONE };

struct birth_report {
	struct answer early, late, reused, own;
	int own_thaw_rc;
	struct answer own_after;
};

/* The child asks about an inherited region, then (after the test thawed it
 * and froze others) about all of them, then freezes and thaws its own. */
static void born_child(int in, int out, const struct probe *early,
                       unsigned char *mem)
{
	struct birth_report r;
	forkshim_handle late, reused, own;

	if (get(in, &late, sizeof late) != 0 ||
	    get(in, &reused, sizeof reused) != 0)
		_exit(12);
	r.early = ask(early->h, early->seed);
	r.late = ask(late, 2);
	r.reused = ask(reused, 3);
	fill_pattern(mem, 32, 9);
	own = forkshim_freeze(mem, 32, "own", 0);
	r.own = ask(own, 9);
	r.own_thaw_rc = forkshim_thaw(own);
	r.own_after = ask(own, 9);
	put(out, &r, sizeof r);
	_exit(0);
}

static pid_t make_child(enum how how)
{
	switch (how) {
	case BY_FORK:
		return fork();
	case BY_UNDERSCORE_FORK:
		return _Fork();
	case BY_SYSCALL_FORK:
		return (pid_t)syscall(SYS_fork);
	case BY_CLONE:
		return (pid_t)syscall(SYS_clone, SIGCHLD, 0, NULL, NULL, 0);
	}
	return -1;
}

static void expect_child_inherits_its_birth_table(enum how how)
{
	unsigned char *p = map_pages(2), *fresh = map_pages(1);
	struct probe early = {freeze_pattern(p, 256, 1, "early"), 1};
	forkshim_handle late, reused;
	int down[2], up[2], status;
	struct birth_report r;
	pid_t pid;

	cr_assert(pipe(down) == 0 && pipe(up) == 0);
	pid = make_child(how);
	cr_assert(pid >= 0, "making the child: %s", strerror(errno));
	if (pid == 0) {
		close(down[1]);
		close(up[0]);
		born_child(down[0], up[1], &early, p + page_size());
	}
	close(down[0]);
	close(up[1]);
	errno = 0;
	if (how == BY_FORK)
		cr_expect(forkshim_visible(early.h, pid) == 1,
		          "visible to a fork() child: errno %d", errno);
	else
		cr_expect(forkshim_visible(early.h, pid) == -1 &&
		              errno == ESRCH,
		          "a child the shim did not see: errno %d", errno);
	late = freeze_pattern(fresh, 64, 2, "late");
	cr_assert(forkshim_thaw(early.h) == 0);
	memset(p, 0, 256);
	reused = freeze_pattern(p + 512, 64, 3, "reused");
	put(down[1], &late, sizeof late);
	put(down[1], &reused, sizeof reused);
	cr_assert(get(up[0], &r, sizeof r) == 0, "child died");
	close(down[1]);
	close(up[0]);
	cr_assert(waitpid(pid, &status, 0) == pid);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	expect_resolves(&r.early, p, 256, "inherited, thawed by the parent");
	cr_expect(r.late.addr == NULL && r.late.err == ENOENT,
	          "frozen after the birth: %p errno %d", r.late.addr,
	          r.late.err);
	cr_expect(r.reused.addr == NULL && r.reused.err == ENOENT,
	          "frozen after the birth, maybe in a reused slot: %p errno %d",
	          r.reused.addr, r.reused.err);
	expect_resolves(&r.own, p + page_size(), 32, "the child's own");
	cr_expect(r.own_thaw_rc == 0);
	cr_expect(r.own_after.addr == NULL && r.own_after.err == ESTALE,
	          "the child's own after thaw: errno %d", r.own_after.err);
}

Test(birth, fork_child_inherits_the_table_at_its_birth)
{
	expect_child_inherits_its_birth_table(BY_FORK);
}

Test(birth, underscore_fork_child_inherits_the_table_at_its_birth)
{
	expect_child_inherits_its_birth_table(BY_UNDERSCORE_FORK);
}

Test(birth, syscall_fork_child_inherits_the_table_at_its_birth)
{
	expect_child_inherits_its_birth_table(BY_SYSCALL_FORK);
}

Test(birth, clone_child_inherits_the_table_at_its_birth)
{
	expect_child_inherits_its_birth_table(BY_CLONE);
}

struct daemon_report {
	struct answer early, late;
	pid_t pid;
};

static void body_daemon(int in, int out, void *arg)
{
	struct probe *early = arg;
	struct daemon_report r;
	forkshim_handle late;

	if (daemon(1, 1) != 0)
		_exit(13);
	/* Now the daemon, a grandchild of the test. */
	if (get(in, &late, sizeof late) != 0)
		_exit(14);
	r.early = ask(early->h, early->seed);
	r.late = ask(late, 2);
	r.pid = getpid();
	put(out, &r, sizeof r);
	_exit(0);
}

Test(birth, daemon_inherits_the_table_at_its_birth)
{
	unsigned char *p = map_pages(1);
	struct probe early = {freeze_pattern(p, 256, 1, "early"), 1};
	struct child c = child_start(body_daemon, &early);
	forkshim_handle late = freeze_pattern(p + 256, 64, 2, "late");
	struct daemon_report r;
	int status;

	cr_assert(waitpid(c.pid, &status, 0) == c.pid);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	          "daemon()'s parent ended with %#x", status);
	put(c.to, &late, sizeof late);
	cr_assert(get(c.from, &r, sizeof r) == 0, "the daemon died");
	child_close(&c);
	expect_resolves(&r.early, p, 256, "daemon, inherited");
	cr_expect(r.late.addr == NULL && r.late.err == ENOENT,
	          "daemon, frozen after the birth: %p errno %d", r.late.addr,
	          r.late.err);
}
