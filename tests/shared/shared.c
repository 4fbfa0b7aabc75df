/* Shared frozen regions (SHARED.md) in real processes: late children,
 * an exec'd worker with the token in argv, results coming back from a
 * child that exited, the errnos of tokens that must map nothing, every
 * write path, and kill -9 of a family giving its shared memory back.
 *
 * Forked children never assert: they answer over pipes, the test checks. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "forkshim.h"
#include "run_host.h"
#include "shared_common.h"

#define MIB (1ul << 20)

static void write_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = write(fd, c, n);

		if (w <= 0 && errno != EINTR)
			_exit(90);
		if (w > 0) {
			c += w;
			n -= (size_t)w;
		}
	}
}

static int read_all(int fd, void *p, size_t n)
{
	char *c = p;

	while (n > 0) {
		ssize_t r = read(fd, c, n);

		if (r == 0 || (r < 0 && errno != EINTR))
			return -1;
		if (r > 0) {
			c += r;
			n -= (size_t)r;
		}
	}
	return 0;
}

/* Runs the worker program; its first output line in out. */
static int run_worker(const char *const *argv, char *out, size_t size)
{
	int fds[2], st;
	pid_t pid;
	ssize_t n, got = 0;

	cr_assert(pipe(fds) == 0);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(fds[1]);
	while ((n = read(fds[0], out + got, size - 1 - (size_t)got)) > 0)
		got += n;
	out[got] = '\0';
	close(fds[0]);
	cr_assert(waitpid(pid, &st, 0) == pid);
	return st;
}

struct imported {
	int err;
	size_t len;
	unsigned long long sum;
	int maps_added;
	unsigned long addr; /* where the import mapped it */
};

static struct imported import_in_worker(const struct forkshim_token *tok,
                                        const char *as_user, int same)
{
	char hex[2 * FORKSHIM_TOKEN_SIZE + 1], out[256];
	const char *argv[12];
	struct imported r = {-1, 0, 0, -1, 0};
	int i = 0, st;

	token_to_hex(tok, hex);
	if (as_user != NULL) {
		argv[i++] = "/usr/bin/setpriv";
		argv[i++] = "--reuid=65534";
		argv[i++] = "--regid=65534";
		argv[i++] = "--clear-groups";
	}
	argv[i++] = SHARED_WORKER;
	argv[i++] = "import";
	argv[i++] = hex;
	if (same)
		argv[i++] = "same";
	argv[i] = NULL;
	st = run_worker(argv, out, sizeof(out));
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	          "worker status %#x, said %s", st, out);
	cr_assert(sscanf(out, "%d %zu %llu %d %lx", &r.err, &r.len, &r.sum,
	                 &r.maps_added, &r.addr) == 5,
	          "worker said: %s", out);
	return r;
}

/* ---- late children ---- */

struct late_answer {
	int err;
	int same_addr;
	uint64_t sum;
	size_t len;
	struct forkshim_sharing sh;
	int sh_err;
	unsigned flags;
};

static void late_children(int use_alloc)
{
	enum { WORKERS = 4 };
	size_t len = 64 * MIB;
	int to[WORKERS][2], from[WORKERS][2];
	pid_t pids[WORKERS];
	unsigned char *p;
	forkshim_handle h;

	forkshim_api(1); /* this process uses forkshim */
	for (int i = 0; i < WORKERS; i++) {
		cr_assert(pipe(to[i]) == 0 && pipe(from[i]) == 0);
		pids[i] = fork();
		cr_assert(pids[i] >= 0);
		if (pids[i] == 0) {
			struct late_answer a;
			forkshim_handle got;
			const void *q;

			memset(&a, 0, sizeof(a));
			if (read_all(to[i][0], &got, sizeof(got)) < 0)
				_exit(91);
			q = forkshim_deref(got, &a.len);
			a.err = q == NULL ? errno : 0;
			if (q != NULL) {
				struct forkshim_info in;

				a.sum = checksum(q, a.len);
				uint64_t at = 0;

				if (read_all(to[i][0], &at, sizeof(at)) < 0)
					_exit(92);
				a.same_addr = (uintptr_t)q == (uintptr_t)at;
				a.sh_err = forkshim_sharing(got, &a.sh) == 0
				               ? 0
				               : errno;
				if (forkshim_info(got, &in) == 0)
					a.flags = in.flags;
			}
			write_all(from[i][1], &a, sizeof(a));
			_exit(0);
		}
	}
	/* The data exists only now: the workers were forked before it. */
	if (use_alloc) {
		p = forkshim_alloc(len, "late");
		cr_assert(p != NULL, "alloc: %s", strerror(errno));
		fill(p, len, 3);
	} else {
		p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		cr_assert(p != MAP_FAILED);
		fill(p, len, 3);
	}
	h = forkshim_freeze(p, len, "late", FORKSHIM_SHARED);
	cr_assert(h != 0, "freeze shared: %s", strerror(errno));
	uint64_t want = checksum(p, len);
	struct forkshim_info in;

	cr_assert(forkshim_info(h, &in) == 0);
	cr_assert(in.flags & FORKSHIM_SHARED);
	/* The parent maps the shared bytes too (for the copy: by import),
	 * so every worker's pages are mapped by another process. */
	const void *mine = p;
	struct forkshim_token tok;

	if (!use_alloc) {
		cr_assert(forkshim_export(h, &tok) == 0);
		mine = forkshim_import(&tok, 0, NULL);
		cr_assert(mine != NULL, "%s", strerror(errno));
	}
	cr_assert(checksum(mine, len) == want);
	for (int i = 0; i < WORKERS; i++) {
		uint64_t at = (uintptr_t)p;

		write_all(to[i][1], &h, sizeof(h));
		write_all(to[i][1], &at, sizeof(at));
	}
	for (int i = 0; i < WORKERS; i++) {
		struct late_answer a;
		int st;

		cr_assert(read_all(from[i][0], &a, sizeof(a)) == 0);
		cr_assert(waitpid(pids[i], &st, 0) == pids[i]);
		cr_expect(a.err == 0, "worker %d deref: %s", i,
		          strerror(a.err));
		cr_expect(a.len == len && a.sum == want,
		          "worker %d: len %zu sum %llx, want %llx", i, a.len,
		          (unsigned long long)a.sum, (unsigned long long)want);
		cr_expect(a.sh_err == 0, "sharing: %s", strerror(a.sh_err));
		cr_expect(a.sh.pages == len / 4096 && a.sh.shared == a.sh.pages,
		          "worker %d: %zu of %zu pages shared (%zu exclusive)",
		          i, a.sh.shared, a.sh.pages, a.sh.exclusive);
		cr_expect(a.flags & FORKSHIM_SHARED);
		if (use_alloc)
			cr_expect(a.same_addr,
			          "worker %d: not at the "
			          "freezer's address",
			          i);
		close(to[i][0]);
		close(to[i][1]);
		close(from[i][0]);
		close(from[i][1]);
	}
	cr_assert(forkshim_thaw(h) == 0);
	if (!use_alloc) {
		cr_assert(forkshim_release(mine) == 0);
		munmap(p, len);
	}
}

Test(shared, late_children_deref_alloc)
{
	late_children(1);
}

Test(shared, late_children_deref_copy)
{
	late_children(0);
}

Test(shared, private_region_stays_enoent_in_late_child)
{
	int fds[2], st;
	pid_t pid;
	unsigned char *p = mmap(NULL, 4 * MIB, PROT_READ | PROT_WRITE,
	                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	forkshim_handle h;
	int err = 0;

	forkshim_api(1);
	cr_assert(pipe(fds) == 0);
	pid = fork();
	if (pid == 0) {
		if (read_all(fds[0], &h, sizeof(h)) < 0)
			_exit(91);
		_exit(forkshim_deref(h, NULL) == NULL && errno == ENOENT ? 0
		                                                         : 1);
	}
	fill(p, 4 * MIB, 1);
	h = forkshim_freeze(p, 4 * MIB, "private", 0);
	cr_assert(h != 0);
	write_all(fds[1], &h, sizeof(h));
	cr_assert(waitpid(pid, &st, 0) == pid);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	          "a private region resolved in a late child");
	cr_assert(forkshim_thaw(h) == 0);
	(void)err;
}

/* ---- exec'd workers ---- */

Test(shared, exec_worker_imports_by_token)
{
	size_t len = 16 * MIB + 123;
	unsigned char *p = forkshim_alloc(len, "exec");
	struct forkshim_token tok;
	forkshim_handle h;
	struct imported r;

	cr_assert(p != NULL);
	fill(p, len, 5);
	h = forkshim_freeze(p, len, "exec", FORKSHIM_SHARED);
	cr_assert(h != 0, "%s", strerror(errno));
	cr_assert(forkshim_export(h, &tok) == 0, "%s", strerror(errno));
	r = import_in_worker(&tok, NULL, 0);
	cr_expect(r.err == 0, "import: %s", strerror(r.err));
	cr_expect(r.len == len && r.sum == checksum(p, len));
	r = import_in_worker(&tok, NULL, 1);
	cr_expect(r.err == 0, "same-address import: %s", strerror(r.err));
	cr_expect(r.len == len && r.sum == checksum(p, len));
	cr_expect(r.addr == (uintptr_t)p,
	          "same-address import at %#lx, the freezer's is %p", r.addr,
	          (void *)p);
	cr_assert(forkshim_thaw(h) == 0);
}

Test(shared, copy_freeze_exports_and_imports_here)
{
	size_t len = 3 * MIB + 17;
	unsigned char *buf = malloc(len + 64), *p = buf + 13;
	struct forkshim_token tok;
	const void *a, *b;
	size_t got = 0;
	forkshim_handle h;
	struct imported r;

	cr_assert(buf != NULL);
	fill(p, len, 9);
	h = forkshim_freeze(p, len, "copy", FORKSHIM_SHARED);
	cr_assert(h != 0, "%s", strerror(errno));
	cr_assert(forkshim_deref(h, NULL) == p,
	          "the freezer keeps its address");
	cr_assert(forkshim_export(h, &tok) == 0);
	a = forkshim_import(&tok, 0, &got);
	cr_assert(a != NULL, "%s", strerror(errno));
	cr_expect(got == len && checksum(a, got) == checksum(p, len));
	b = forkshim_import(&tok, 0, NULL);
	cr_expect(a == b, "the same token twice: the same address");
	cr_expect(forkshim_release(a) == 0 && forkshim_release(b) == 0);
	cr_expect(forkshim_release(a) == -1 && errno == EINVAL);
	r = import_in_worker(&tok, NULL, 0);
	cr_expect(r.err == 0 && r.sum == checksum(p, len));
	cr_assert(forkshim_thaw(h) == 0);
	free(buf);
}

/* ---- huge pages ---- */

/* shmem_enabled's chosen word ("never", "advise", ...), or "" unread. */
static void shmem_setting(char *out, size_t size)
{
	char buf[128] = "";
	FILE *f =
	    fopen("/sys/kernel/mm/transparent_hugepage/shmem_enabled", "r");
	char *a, *b;

	out[0] = '\0';
	if (f == NULL)
		return;
	if (fgets(buf, sizeof(buf), f) != NULL &&
	    (a = strchr(buf, '[')) != NULL && (b = strchr(a, ']')) != NULL &&
	    (size_t)(b - a) < size) {
		memcpy(out, a + 1, (size_t)(b - a - 1));
		out[b - a - 1] = '\0';
	}
	fclose(f);
}

/* kB of the mapping holding addr that /proc/self/smaps says are mapped by
 * PMDs (ShmemPmdMapped, FilePmdMapped, AnonHugePages); -1 not found. */
static long pmd_mapped_kib(const void *addr)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	long kib = -1, v;
	int in = 0;

	cr_assert(f != NULL);
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long lo, hi;
		char key[64];

		/* A mapping's first line ("lo-hi perms ..."): no field name
		 * is hex digits and a dash. */
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
			if (in)
				break;
			in = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
			if (in)
				kib = 0;
			continue;
		}
		if (in && sscanf(line, "%63[^:]: %ld kB", key, &v) == 2 &&
		    (strcmp(key, "ShmemPmdMapped") == 0 ||
		     strcmp(key, "FilePmdMapped") == 0 ||
		     strcmp(key, "AnonHugePages") == 0))
			kib += v;
	}
	fclose(f);
	return kib;
}

/* Where shmem huge pages are allowed, a big shared region (forkshim_alloc
 * or a copy from an odd address) is mapped by PMDs in the freezer and in
 * an import: its data is laid out congruent to its address modulo 2 MiB,
 * and its pages are made huge (MADV_HUGEPAGE before the populate, or the
 * copy's prefill with "advise").  Skipped where they are not. */
Test(shared, big_region_is_mapped_with_huge_pages)
{
	size_t len = 24 * MIB + 17, want_kib = (24 / 2 - 2) * 2048;
	unsigned char *buf, *p, *a;
	struct forkshim_token tok;
	forkshim_handle h;
	char set[32];
	long kib;

	shmem_setting(set, sizeof(set));
	if (set[0] == '\0' || strcmp(set, "never") == 0 ||
	    strcmp(set, "deny") == 0)
		cr_skip_test("shmem huge pages are off (transparent_hugepage/"
		             "shmem_enabled: %s): nothing to check",
		             set[0] ? set : "unreadable");

	/* forkshim_alloc: the freezer's own mapping, then an import. */
	p = forkshim_alloc(len, "huge-alloc");
	cr_assert(p != NULL, "%s", strerror(errno));
	fill(p, len, 21);
	h = forkshim_freeze(p, len, "huge-alloc", FORKSHIM_SHARED);
	cr_assert(h != 0, "%s", strerror(errno));
	uint64_t sum = checksum(p, len);
	kib = pmd_mapped_kib(p);
	cr_expect(kib >= (long)want_kib,
	          "shmem_enabled %s: the freezer's alloc mapping has %ld kB "
	          "PMD-mapped of %zu kB",
	          set, kib, len / 1024);
	cr_assert(forkshim_export(h, &tok) == 0);
	a = (unsigned char *)forkshim_import(&tok, 0, NULL);
	cr_assert(a != NULL, "%s", strerror(errno));
	cr_expect(checksum(a, len) == sum);
	kib = pmd_mapped_kib(a);
	cr_expect(kib >= (long)want_kib,
	          "shmem_enabled %s: an import of an alloc'd region has %ld "
	          "kB PMD-mapped of %zu kB",
	          set, kib, len / 1024);
	cr_expect(forkshim_release(a) == 0);
	cr_assert(forkshim_thaw(h) == 0);

	/* A copy of ordinary memory at an odd address. */
	buf = malloc(len + 64);
	cr_assert(buf != NULL);
	p = buf + 13;
	fill(p, len, 22);
	h = forkshim_freeze(p, len, "huge-copy", FORKSHIM_SHARED);
	cr_assert(h != 0, "%s", strerror(errno));
	cr_assert(forkshim_export(h, &tok) == 0);
	a = (unsigned char *)forkshim_import(&tok, 0, NULL);
	cr_assert(a != NULL, "%s", strerror(errno));
	cr_expect(checksum(a, len) == checksum(p, len));
	kib = pmd_mapped_kib(a);
	cr_expect(kib >= (long)want_kib,
	          "shmem_enabled %s: an import of a copied region has %ld kB "
	          "PMD-mapped of %zu kB",
	          set, kib, len / 1024);
	cr_expect(forkshim_release(a) == 0);
	cr_assert(forkshim_thaw(h) == 0);
	free(buf);
}

/* ---- tokens that must map nothing ---- */

/* The token's check, as shim/shared.c computes it: a test of the secret
 * itself needs a token whose only fault is its secret. */
static uint64_t t_mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static void recheck(struct forkshim_token *t)
{
	uint64_t h = 0x6a09e667f3bcc908ull, w;
	uint32_t c;

	for (size_t i = 0; i < 60; i += 4) {
		uint32_t v;

		memcpy(&v, t->bytes + i, 4);
		w = v;
		h = t_mix(h ^ w ^ (uint64_t)i << 40);
	}
	c = (uint32_t)(h >> 32) ^ (uint32_t)h;
	memcpy(t->bytes + 60, &c, 4);
}

static forkshim_handle frozen_token(size_t len, struct forkshim_token *tok,
                                    unsigned char **out)
{
	unsigned char *p = forkshim_alloc(len, "errs");
	forkshim_handle h;

	cr_assert(p != NULL);
	fill(p, len, 11);
	h = forkshim_freeze(p, len, "errs", FORKSHIM_SHARED);
	cr_assert(h != 0);
	cr_assert(forkshim_export(h, tok) == 0);
	if (out != NULL)
		*out = p;
	return h;
}

Test(shared, flipped_secret_is_ebadf)
{
	struct forkshim_token tok, bad;
	forkshim_handle h = frozen_token(MIB, &tok, NULL);
	struct imported r;

	for (int byte = 40; byte < 56; byte += 5) { /* the secret */
		bad = tok;
		bad.bytes[byte] ^= 0x10;
		r = import_in_worker(&bad, NULL, 0);
		cr_expect(r.err == EBADF && r.maps_added == 0,
		          "raw flip: %s, %d maps", strerror(r.err),
		          r.maps_added);
		recheck(&bad);
		r = import_in_worker(&bad, NULL, 0);
		cr_expect(r.err == EBADF && r.maps_added == 0,
		          "flip with a valid check: %s, %d maps",
		          strerror(r.err), r.maps_added);
		cr_expect(forkshim_import(&bad, 0, NULL) == NULL &&
		          errno == EBADF);
	}
	r = import_in_worker(&tok, NULL, 0);
	cr_expect(r.err == 0, "the real token: %s", strerror(r.err));
	cr_assert(forkshim_thaw(h) == 0);
}

Test(shared, thawed_is_estale)
{
	struct forkshim_token tok;
	forkshim_handle h = frozen_token(MIB, &tok, NULL);
	struct imported r;

	cr_assert(forkshim_thaw(h) == 0);
	r = import_in_worker(&tok, NULL, 0);
	cr_expect(r.err == ESTALE && r.maps_added == 0, "%s, %d maps",
	          strerror(r.err), r.maps_added);
	cr_expect(forkshim_import(&tok, 0, NULL) == NULL && errno == ESTALE);

	/* A replay once the holder's descriptor number names another region
	 * (the next one frozen takes it): import checks the object, not the
	 * number, so the old token is still stale. */
	struct forkshim_token next;
	forkshim_handle h2 = frozen_token(MIB, &next, NULL);
	int32_t fd_old, fd_new;

	memcpy(&fd_old, tok.bytes + 8, 4); /* the holder's descriptor */
	memcpy(&fd_new, next.bytes + 8, 4);
	cr_assert(fd_old == fd_new, "descriptor %d not reused (%d)", fd_old,
	          fd_new);
	r = import_in_worker(&tok, NULL, 0);
	cr_expect(r.err == ESTALE && r.maps_added == 0,
	          "after its descriptor was reused: %s, %d maps",
	          strerror(r.err), r.maps_added);
	cr_expect(forkshim_import(&tok, 0, NULL) == NULL && errno == ESTALE);
	cr_assert(forkshim_thaw(h2) == 0);
}

/* An owner of its own (exec'd: a line of its own), that ends on a line
 * of input. */
struct owner {
	pid_t pid;
	int in;
	struct forkshim_token tok;
	unsigned long long sum;
};

static struct owner start_owner(const char *mib, int as_nobody, int nodump)
{
	int in[2], out[2];
	struct owner o;
	char line[256], hex[2 * FORKSHIM_TOKEN_SIZE + 1];
	ssize_t n, got = 0;

	cr_assert(pipe(in) == 0 && pipe(out) == 0);
	o.pid = fork();
	cr_assert(o.pid >= 0);
	if (o.pid == 0) {
		const char *argv[10];
		int i = 0;

		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[1]);
		close(out[0]);
		if (as_nobody) {
			argv[i++] = "/usr/bin/setpriv";
			argv[i++] = "--reuid=65534";
			argv[i++] = "--regid=65534";
			argv[i++] = "--clear-groups";
		}
		argv[i++] = SHARED_WORKER;
		argv[i++] = "owner";
		argv[i++] = mib;
		if (nodump)
			argv[i++] = "nodump";
		argv[i] = NULL;
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	while (got < (ssize_t)sizeof(line) - 1 &&
	       (n = read(out[0], line + got, 1)) == 1 && line[got] != '\n')
		got++;
	line[got] = '\0';
	close(out[0]);
	cr_assert(sscanf(line, "%128s %llu", hex, &o.sum) == 2,
	          "owner said: %s", line);
	cr_assert(token_from_hex(hex, &o.tok) == 0);
	o.in = in[1];
	return o;
}

static void stop_owner(struct owner *o)
{
	int st;

	write_all(o->in, "q\n", 2);
	close(o->in);
	cr_assert(waitpid(o->pid, &st, 0) == o->pid);
}

Test(shared, dead_owner_line_is_enoent)
{
	struct owner o = start_owner("2", 0, 0);
	struct imported r = import_in_worker(&o.tok, NULL, 0);

	cr_expect(r.err == 0 && r.sum == o.sum, "while it lives: %s",
	          strerror(r.err));
	stop_owner(&o);
	r = import_in_worker(&o.tok, NULL, 0);
	cr_expect(r.err == ENOENT && r.maps_added == 0, "%s, %d maps",
	          strerror(r.err), r.maps_added);
}

Test(shared, another_user_is_eacces)
{
	struct forkshim_token tok;
	forkshim_handle h = frozen_token(MIB, &tok, NULL);
	struct imported r;

	cr_assert(getuid() == 0 || getuid() == 65534,
	          "this test switches users: run it as root");
	r = import_in_worker(&tok, "nobody", 0);
	cr_expect(r.err == EACCES && r.maps_added == 0, "%s, %d maps",
	          strerror(r.err), r.maps_added);
	cr_assert(forkshim_thaw(h) == 0);
}

Test(shared, non_dumpable_owner_is_eacces)
{
	struct owner o;
	struct imported r;

	cr_assert(getuid() == 0, "this test switches users: run it as root");
	/* The same user on both sides; root would pass the ptrace check. */
	o = start_owner("1", 1, 0);
	r = import_in_worker(&o.tok, "nobody", 0);
	cr_expect(r.err == 0 && r.sum == o.sum, "dumpable owner: %s",
	          strerror(r.err));
	stop_owner(&o);
	o = start_owner("1", 1, 1);
	r = import_in_worker(&o.tok, "nobody", 0);
	cr_expect(r.err == EACCES && r.maps_added == 0, "%s, %d maps",
	          strerror(r.err), r.maps_added);
	stop_owner(&o);
}

Test(shared, same_address_import)
{
	struct forkshim_token tok;
	unsigned char *p;
	forkshim_handle h = frozen_token(MIB, &tok, &p);
	size_t len = 4 * MIB;
	unsigned char *q = mmap(NULL, len, PROT_READ | PROT_WRITE,
	                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	const void *a;
	struct imported r;

	/* In the freezer, whose forkshim_alloc mapping is there: that one,
	 * and releasing the import leaves it mapped. */
	uint64_t sum = checksum(p, MIB);

	a = forkshim_import(&tok, FORKSHIM_SAME_ADDRESS, NULL);
	cr_expect(a == p, "%p, want %p: %s", a, p, strerror(errno));
	cr_expect(forkshim_release(a) == 0);
	cr_expect(checksum(p, MIB) == sum);
	/* An exec'd worker: at the freezer's address. */
	r = import_in_worker(&tok, NULL, 1);
	cr_expect(r.err == 0, "%s", strerror(r.err));
	cr_expect(r.addr == (uintptr_t)p, "at %#lx, the freezer's is %p",
	          r.addr, (void *)p);
	/* A copy-frozen region whose freezer's address holds its private
	 * bytes: that range is taken here. */
	fill(q, len, 4);
	forkshim_handle hq = forkshim_freeze(q, len, NULL, FORKSHIM_SHARED);
	cr_assert(hq != 0);
	cr_assert(forkshim_export(hq, &tok) == 0);
	a = forkshim_import(&tok, FORKSHIM_SAME_ADDRESS, NULL);
	cr_expect(a == NULL && errno == EADDRINUSE, "%p %s", a,
	          strerror(errno));
	cr_expect(forkshim_import(&tok, 0x80, NULL) == NULL && errno == EINVAL);
	r = import_in_worker(&tok, NULL, 1);
	cr_expect(r.err == 0 && r.len == len, "%s", strerror(r.err));
	cr_expect(r.addr == (uintptr_t)q, "at %#lx, the freezer's is %p",
	          r.addr, (void *)q);
	cr_assert(forkshim_thaw(hq) == 0);
	cr_assert(forkshim_thaw(h) == 0);
	munmap(q, len);
}

Test(shared, export_of_private_is_einval)
{
	unsigned char *p = mmap(NULL, MIB, PROT_READ | PROT_WRITE,
	                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct forkshim_token tok;
	forkshim_handle h = forkshim_freeze(p, MIB, NULL, 0);

	cr_assert(h != 0);
	cr_expect(forkshim_export(h, &tok) == -1 && errno == EINVAL);
	cr_expect(forkshim_export(h, NULL) == -1 && errno == EINVAL);
	cr_expect(forkshim_export(0, &tok) == -1 && errno == EBADF);
	cr_assert(forkshim_thaw(h) == 0);
	munmap(p, MIB);
}

/* ---- thaw: the owner lets go, importers keep their mapping ---- */

/* Mappings of this process of the memfd called name. */
static int maps_named(const char *name)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512], want[96];
	int n = 0;

	snprintf(want, sizeof(want), "/memfd:%s (deleted)", name);
	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		n += strstr(line, want) != NULL;
	if (f != NULL)
		fclose(f);
	return n;
}

static int memfd_named(const char *name);

/* The thaw of a shared region drops every reference its owner held (the
 * memfd's descriptor, the forkshim_alloc mapping): the token is stale
 * from then on.  An exec'd process that imported it before keeps its
 * mapping, every byte as it was, until it releases it (SHARED.md 7). */
Test(shared, thaw_drops_the_owners_references_and_importers_keep_theirs)
{
	size_t len = 4 * MIB + 5;
	unsigned char *p = forkshim_alloc(len, "thawed-kept");
	char hex[2 * FORKSHIM_TOKEN_SIZE + 1], line[128];
	int in[2], out[2], err = -1, st;
	unsigned long long sum = 0, again = 0;
	struct forkshim_token tok;
	forkshim_handle h;
	size_t got = 0;
	FILE *from;
	pid_t pid;

	cr_assert(p != NULL, "%s", strerror(errno));
	fill(p, len, 17);
	h = forkshim_freeze(p, len, "thawed-kept", FORKSHIM_SHARED);
	cr_assert(h != 0 && forkshim_export(h, &tok) == 0, "%s",
	          strerror(errno));
	token_to_hex(&tok, hex);
	cr_assert(pipe(in) == 0 && pipe(out) == 0);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[1]);
		close(out[0]);
		execl(SHARED_WORKER, SHARED_WORKER, "hold", hex, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	from = fdopen(out[0], "r");
	cr_assert(from != NULL);
	cr_assert(fgets(line, sizeof(line), from) != NULL, "no answer");
	cr_assert(sscanf(line, "%d %zu %llu", &err, &got, &sum) == 3 &&
	              err == 0 && got == len && sum == checksum(p, len),
	          "the importer said: %s", line);
	cr_expect(memfd_named("thawed-kept") >= 0 &&
	          maps_named("thawed-kept") == 1);

	cr_assert(forkshim_thaw(h) == 0);
	cr_expect(memfd_named("thawed-kept") < 0,
	          "the owner still holds the memfd's descriptor after thaw");
	cr_expect(maps_named("thawed-kept") == 0,
	          "the owner still maps the region after thaw");
	cr_expect(forkshim_import(&tok, 0, NULL) == NULL && errno == ESTALE,
	          "import after thaw: %s", strerror(errno));

	write_all(in[1], "q\n", 2);
	cr_expect(fgets(line, sizeof(line), from) != NULL &&
	              sscanf(line, "%llu", &again) == 1 && again == sum,
	          "the importer's bytes after the owner's thaw: %s", line);
	fclose(from);
	close(in[1]);
	cr_assert(waitpid(pid, &st, 0) == pid);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "importer %#x", st);
}

/* ---- results back, from a child that exited ---- */

Test(shared, result_from_exited_child_to_parent_and_sibling)
{
	size_t len = 8 * MIB;
	int tok_pipe[2], sib_in[2], sib_out[2], st;
	struct forkshim_token tok;
	pid_t sibling, child;
	uint64_t want;

	forkshim_api(1);
	cr_assert(pipe(tok_pipe) == 0 && pipe(sib_in) == 0 &&
	          pipe(sib_out) == 0);
	/* The sibling exists before the result does. */
	sibling = fork();
	cr_assert(sibling >= 0);
	if (sibling == 0) {
		struct forkshim_token t;
		size_t n = 0;
		const void *q;
		uint64_t a[2] = {0, 0};

		if (read_all(sib_in[0], &t, sizeof(t)) < 0)
			_exit(91);
		q = forkshim_import(&t, 0, &n);
		a[0] = q == NULL ? (uint64_t)errno : 0;
		a[1] = q == NULL ? 0 : checksum(q, n);
		write_all(sib_out[1], a, sizeof(a));
		_exit(0);
	}
	child = fork();
	cr_assert(child >= 0);
	if (child == 0) {
		unsigned char *p = forkshim_alloc(len, "result");
		forkshim_handle h;
		struct forkshim_token t;

		if (p == NULL)
			_exit(92);
		fill(p, len, 21);
		h = forkshim_freeze(p, len, "result", FORKSHIM_SHARED);
		if (h == 0 || forkshim_export(h, &t) != 0)
			_exit(93);
		write_all(tok_pipe[1], &t, sizeof(t));
		_exit(0);
	}
	cr_assert(read_all(tok_pipe[0], &tok, sizeof(tok)) == 0);
	cr_assert(waitpid(child, &st, 0) == child);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	{
		unsigned char *ref = malloc(len);

		fill(ref, len, 21);
		want = checksum(ref, len);
		free(ref);
	}
	size_t n = 0;
	const void *q = forkshim_import(&tok, 0, &n);

	cr_assert(q != NULL, "parent import after the child was reaped: %s",
	          strerror(errno));
	cr_expect(n == len && checksum(q, n) == want);
	write_all(sib_in[1], &tok, sizeof(tok));
	uint64_t a[2];

	cr_assert(read_all(sib_out[0], a, sizeof(a)) == 0);
	cr_assert(waitpid(sibling, &st, 0) == sibling);
	cr_expect(a[0] == 0, "sibling import: %s", strerror((int)a[0]));
	cr_expect(a[1] == want);
	/* An exec'd process too. */
	struct imported r = import_in_worker(&tok, NULL, 0);

	cr_expect(r.err == 0 && r.sum == want, "exec'd: %s", strerror(r.err));
	cr_expect(forkshim_release(q) == 0);
}

/* The same, but the sibling imports while the child is a zombie: exited,
 * its descriptors closed, and the root (this process) has neither reaped
 * it nor called into forkshim since, so it has not collected the
 * descriptor the child handed it at freeze. */
static int is_zombie(pid_t pid)
{
	char path[64], buf[256], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p != NULL && p[1] == ' ' && p[2] == 'Z';
}

Test(shared, sibling_imports_result_of_a_zombie_before_the_root_collects)
{
	size_t len = 4 * MIB;
	int tok_pipe[2], sib_out[2], st;
	pid_t sibling, child;
	uint64_t a[3], want;

	forkshim_api(1);
	cr_assert(pipe(tok_pipe) == 0 && pipe(sib_out) == 0);
	sibling = fork();
	cr_assert(sibling >= 0);
	if (sibling == 0) {
		struct forkshim_token t;
		pid_t from;
		size_t n = 0;
		const void *q;
		uint64_t r[3] = {0, 0, 0};

		if (read_all(tok_pipe[0], &from, sizeof(from)) < 0 ||
		    read_all(tok_pipe[0], &t, sizeof(t)) < 0)
			_exit(91);
		for (int i = 0; i < 20000 && !is_zombie(from); i++)
			usleep(1000);
		r[2] = (uint64_t)is_zombie(from);
		q = forkshim_import(&t, 0, &n);
		r[0] = q == NULL ? (uint64_t)errno : 0;
		r[1] = q == NULL ? 0 : checksum(q, n);
		write_all(sib_out[1], r, sizeof(r));
		_exit(0);
	}
	child = fork();
	cr_assert(child >= 0);
	if (child == 0) {
		unsigned char *p = forkshim_alloc(len, "zombie's result");
		forkshim_handle h;
		struct forkshim_token t;
		pid_t self = getpid();

		if (p == NULL)
			_exit(92);
		fill(p, len, 33);
		h = forkshim_freeze(p, len, "zombie's result", FORKSHIM_SHARED);
		if (h == 0 || forkshim_export(h, &t) != 0)
			_exit(93);
		write_all(tok_pipe[1], &self, sizeof(self));
		write_all(tok_pipe[1], &t, sizeof(t));
		_exit(0);
	}
	/* No wait and no forkshim call until the sibling has answered. */
	int got = read_all(sib_out[0], a, sizeof(a));

	cr_assert(waitpid(child, &st, 0) == child);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %#x", st);
	cr_assert(waitpid(sibling, &st, 0) == sibling);
	cr_assert(got == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	          "sibling %#x", st);
	cr_assert(a[2] == 1, "the child was not seen as a zombie");
	{
		unsigned char *ref = malloc(len);

		fill(ref, len, 33);
		want = checksum(ref, len);
		free(ref);
	}
	cr_expect(a[0] == 0, "sibling import before the root collected: %s",
	          strerror((int)a[0]));
	cr_expect(a[1] == want);
}

/* ---- capacity ---- */

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	while (d != NULL && readdir(d) != NULL)
		n++;
	if (d != NULL)
		closedir(d);
	return n;
}

/* A process holds at most 4096 shared regions and allocations (each
 * keeps its memfd's descriptor, so RLIMIT_NOFILE usually ends it sooner):
 * the next forkshim_alloc answers ENOMEM and changes nothing (no
 * descriptor, no mapping left behind); a thaw makes room again. */
Test(shared, the_4097th_shared_region_is_enomem_and_changes_nothing)
{
	enum { CAP = 4096 };
	struct rlimit rl;
	static forkshim_handle h[CAP];
	char *p;
	int fds;

	cr_assert(getrlimit(RLIMIT_NOFILE, &rl) == 0);
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < CAP + 600)
		cr_skip_test("RLIMIT_NOFILE's hard limit %lu is below %d",
		             (unsigned long)rl.rlim_max, CAP + 600);
	rl.rlim_cur = CAP + 600;
	cr_assert(setrlimit(RLIMIT_NOFILE, &rl) == 0);
	for (int i = 0; i < CAP; i++) {
		p = forkshim_alloc(4096, "cap");
		cr_assert(p != NULL, "alloc %d: %s", i, strerror(errno));
		p[0] = (char)i;
		h[i] = forkshim_freeze(p, 4096, "cap", FORKSHIM_SHARED);
		cr_assert(h[i] != 0, "freeze %d: %s", i, strerror(errno));
	}
	fds = open_fds();
	errno = 0;
	p = forkshim_alloc(4096, "one too many");
	cr_expect(p == NULL && errno == ENOMEM, "4097th: %p %s", (void *)p,
	          strerror(errno));
	cr_expect(open_fds() == fds, "descriptors %d, were %d", open_fds(),
	          fds);
	cr_assert(forkshim_thaw(h[7]) == 0);
	p = forkshim_alloc(4096, "room again");
	cr_expect(p != NULL, "after a thaw: %s", strerror(errno));
}

/* ---- the copy of ordinary memory ---- */

/* A shared freeze of ordinary memory copies it into the memfd (through a
 * pipe from 256 KiB on, see fill_data in shim/shared.c): every byte of an
 * odd address and length arrives, a read-only source is copied as well,
 * and a source with an unreadable page in the middle is EFAULT and leaves
 * nothing behind (no descriptor, no region). */
Test(shared, a_copy_arrives_whole_and_an_unreadable_source_is_efault)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE), len = 3 * MIB + 5;
	unsigned char *m, *p, *a;
	struct forkshim_token tok;
	forkshim_handle h;
	size_t n = 0;
	int fds;

	m = mmap(NULL, 4 * MIB, PROT_READ | PROT_WRITE,
	         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert(m != MAP_FAILED);
	p = m + 13;
	fill(p, len, 31);
	cr_assert(mprotect(m, 4 * MIB, PROT_READ) == 0);
	h = forkshim_freeze(p, len, "copy-ro", FORKSHIM_SHARED);
	cr_assert(h != 0, "a read-only source: %s", strerror(errno));
	cr_assert(forkshim_export(h, &tok) == 0);
	a = (unsigned char *)forkshim_import(&tok, 0, &n);
	cr_assert(a != NULL, "%s", strerror(errno));
	cr_expect(n == len && memcmp(a, p, len) == 0,
	          "the copy differs from its source (%zu of %zu bytes)", n,
	          len);
	cr_expect(forkshim_release(a) == 0);
	cr_assert(forkshim_thaw(h) == 0);

	cr_assert(mprotect(m + 2 * MIB + ps, ps, PROT_NONE) == 0);
	fds = open_fds();
	errno = 0;
	h = forkshim_freeze(p, len, "copy-hole", FORKSHIM_SHARED);
	cr_expect(h == 0 && errno == EFAULT, "a PROT_NONE page: %#llx %s",
	          (unsigned long long)h, strerror(errno));
	cr_expect(open_fds() == fds, "descriptors %d, were %d", open_fds(),
	          fds);
	cr_expect(forkshim_find(p, 1) == 0, "a region was left behind");
	munmap(m, 4 * MIB);
}

/* ---- immutability ---- */

Test(shared, every_write_path_fails_in_owner_and_importer)
{
	struct forkshim_token tok;
	unsigned char *p;
	forkshim_handle h = frozen_token(2 * MIB, &tok, &p);
	char hex[2 * FORKSHIM_TOKEN_SIZE + 1], out[64];
	const char *argv[4] = {SHARED_WORKER, "write", hex, NULL};
	int wrote, st;

	wrote = write_paths(p, 2 * MIB);
	cr_expect(wrote == 0, "the owner wrote through paths %#x", wrote);
	token_to_hex(&tok, hex);
	st = run_worker(argv, out, sizeof(out));
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%#x %s", st, out);
	cr_expect(atoi(out) == 0, "the importer wrote through paths %#x",
	          atoi(out));
	cr_assert(forkshim_thaw(h) == 0);
}

/* With the guard on, an importer's write is stopped and reported. */
/* Runs the worker with FORKSHIM_GUARD=guard and args; its stderr into
 * err; its status. */
static int scribbler(const char *guard, const char *const *args, char *err,
                     size_t size)
{
	int fds[2], st;
	ssize_t n, got = 0;
	pid_t pid;

	cr_assert(pipe(fds) == 0);
	pid = fork();
	if (pid == 0) {
		dup2(fds[1], 2);
		setenv("FORKSHIM_GUARD", guard, 1);
		unsetenv("FORKSHIM_REPORT");
		execv(SHARED_WORKER, (char *const *)args);
		_exit(127);
	}
	close(fds[1]);
	while ((n = read(fds[0], err + got, size - 1 - (size_t)got)) > 0)
		got += n;
	err[got] = '\0';
	close(fds[0]);
	cr_assert(waitpid(pid, &st, 0) == pid);
	return st;
}

/* A write to a shared region is stopped (SIGSEGV) and reported in every
 * process that maps it, whatever the guard's mode: the owner (its
 * forkshim_alloc memory, in its table), a child born before the freeze
 * (late deref) and an exec'd importer.  Audit records nothing for it
 * (there is no copy on write to audit): the owner's and the late child's
 * writes went unreported under FORKSHIM_GUARD=audit before. */
Test(shared, guard_reports_a_write_in_an_importer)
{
	static const char *const modes[] = {"protect", "audit"};
	struct forkshim_token tok;
	forkshim_handle h;
	char hex[2 * FORKSHIM_TOKEN_SIZE + 1], err[8192];
	unsigned char *p = forkshim_alloc(MIB, "scribbled");

	cr_assert(p != NULL);
	fill(p, MIB, 2);
	h = forkshim_freeze(p, MIB, "scribbled", FORKSHIM_SHARED);
	cr_assert(h != 0 && forkshim_export(h, &tok) == 0);
	token_to_hex(&tok, hex);
	for (int m = 0; m < 2; m++) {
		const char *const importer[] = {SHARED_WORKER, "scribble", hex,
		                                NULL};
		const char *const owner[] = {SHARED_WORKER, "scribble-own",
		                             NULL};
		const char *const late[] = {SHARED_WORKER, "scribble-own",
		                            "late", NULL};
		const char *const *runs[] = {importer, owner, late};
		const char *names[] = {"an exec'd importer", "the owner",
		                       "a late child"};
		const char *want[] = {"write to shared frozen region "
		                      "\"scribbled\"",
		                      "write to shared frozen region "
		                      "\"own-scribbled\"",
		                      "write to shared frozen region "
		                      "\"own-scribbled\""};

		for (int k = 0; k < 3; k++) {
			int st = scribbler(modes[m], runs[k], err, sizeof(err));

			cr_expect(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV,
			          "%s, guard %s: status %#x", names[k],
			          modes[m], st);
			cr_expect(strstr(err, want[k]) != NULL,
			          "%s, guard %s: stderr: %s", names[k],
			          modes[m], err);
		}
	}
	cr_assert(forkshim_thaw(h) == 0);
}

/* The descriptor of this process that names memfd `name` (inherited). */
static int memfd_named(const char *name)
{
	char path[64], target[256], want[128];
	int n = snprintf(want, sizeof(want), "/memfd:%s (deleted)", name);

	for (int fd = 0; fd < 4096; fd++) {
		ssize_t r;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		r = readlink(path, target, sizeof(target) - 1);
		if (r == n && memcmp(target, want, (size_t)n) == 0)
			return fd;
	}
	return -1;
}

/* A child forked by another thread between alloc and freeze does not
 * stop the freeze (the writable mapping is not inherited: freeze used to
 * answer EBUSY until that child exited); the child finds the range free
 * and maps the frozen region there.  A process that maps the memfd
 * writable itself does stop it: EBUSY, and nothing changes. */
Test(shared, alloc_release_and_busy_freeze)
{
	unsigned char *p = forkshim_alloc(MIB, "busy"), *q;
	int fds[2], back[2], st, fd;
	forkshim_handle h;
	uint64_t want;
	pid_t pid;
	char c;

	cr_assert(p != NULL);
	cr_expect(forkshim_alloc(0, NULL) == NULL && errno == EINVAL);
	fill(p, MIB, 7);
	want = checksum(p, MIB);
	cr_assert(pipe(fds) == 0 && pipe(back) == 0);
	pid = fork();
	if (pid == 0) { /* born between alloc and freeze */
		const void *at;
		size_t len = 0;

		if (read_all(fds[0], &h, sizeof(h)) < 0)
			_exit(2);
		at = forkshim_deref(h, &len);
		if (at != p || len != MIB || checksum(at, len) != want)
			_exit(1);
		/* The alloc was the parent's: not this child's to release
		 * (it used to unmap the deref's mapping here). */
		if (forkshim_release(p) != -1 || errno != EINVAL)
			_exit(2);
		_exit(checksum(at, len) == want ? 0 : 3);
	}
	h = forkshim_freeze(p, MIB, "busy", FORKSHIM_SHARED);
	cr_expect(h != 0, "freeze with a child born after alloc: errno %d",
	          errno);
	write_all(fds[1], &h, sizeof(h));
	cr_assert(waitpid(pid, &st, 0) == pid);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	          "the child's late deref at the alloc's address: %#x", st);
	cr_expect(forkshim_thaw(h) == 0);

	q = forkshim_alloc(MIB, "busy2");
	cr_assert(q != NULL);
	pid = fork();
	if (pid == 0) { /* maps it writable, on purpose */
		fd = memfd_named("busy2");
		if (fd < 0 || mmap(NULL, MIB, PROT_READ | PROT_WRITE,
		                   MAP_SHARED, fd, 4096) == MAP_FAILED)
			_exit(1);
		write_all(back[1], "r", 1);
		read(fds[0], &c, 1);
		_exit(0);
	}
	cr_assert(read_all(back[0], &c, 1) == 0, "the child could not map it");
	cr_expect(forkshim_freeze(q, MIB, NULL, FORKSHIM_SHARED) == 0 &&
	          errno == EBUSY);
	q[0] = 1; /* still ours, still writable */
	write_all(fds[1], "x", 1);
	cr_assert(waitpid(pid, &st, 0) == pid);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	cr_expect(forkshim_release(q) == 0);
	cr_expect(memfd_named("busy2") < 0 && maps_named("busy2") == 0,
	          "released, never frozen: still a descriptor (%d) or a "
	          "mapping (%d)",
	          memfd_named("busy2"), maps_named("busy2"));
	cr_expect(forkshim_release(q) == -1 && errno == EINVAL);
}

/* The shim makes its own mappings for shared regions (the registry of
 * what a process froze, the family directory, the import records) before
 * a region's: made after it, mmap put them below the region, a gigabyte
 * away from everything else a fork copies, and a process holding 1 GiB
 * forked 9-14% slower than one holding a plain memfd as big
 * (scripts/bench/shared --only fork).  A fresh worker (no holes among its
 * mappings for them to fill) allocates, freezes and imports 64 MiB and
 * counts the new mappings below each region. */
Test(shared, first_alloc_and_import_put_no_mapping_of_ours_below_the_region)
{
	const char *argv[] = {SHARED_WORKER, "layout", NULL};
	char out[512];
	int st, below_alloc = -1, below_import = -1;

	st = run_worker(argv, out, sizeof(out));
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	          "worker status %#x, said %s", st, out);
	cr_assert(sscanf(out, "%d %d", &below_alloc, &below_import) == 2,
	          "worker said: %s", out);
	cr_expect(below_alloc == 0,
	          "%d new mapping(s) below the region after alloc and freeze",
	          below_alloc);
	cr_expect(below_import == 0,
	          "%d new mapping(s) below the region after its import",
	          below_import);
}

/* ---- reports ---- */

/* Runs `shared_worker MODE` (worker.c) under FORKSHIM_REPORT=dir and reads
 * its "pids P... bad N" line into pids[0..n): bad must be 0.  A worker's
 * "grandchild G" line, if any, gives pids[n] (pids holds n + 1). */
static void run_reported(const char *mode, const char *dir, int *pids, int n)
{
	char out[4096];
	int fds[2], st, bad = -1, at = 0, k = 0;
	ssize_t r, got = 0;
	const char *s;
	pid_t pid;

	cr_assert(pipe(fds) == 0);
	pid = fork();
	if (pid == 0) {
		dup2(fds[1], 1);
		setenv("FORKSHIM_REPORT", dir, 1);
		unsetenv("FORKSHIM_GUARD");
		execl(SHARED_WORKER, SHARED_WORKER, mode, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	while ((r = read(fds[0], out + got, sizeof(out) - 1 - (size_t)got)) > 0)
		got += r;
	out[got] = '\0';
	close(fds[0]);
	cr_assert(waitpid(pid, &st, 0) == pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: status %#x: %s",
	          mode, st, out);
	s = strstr(out, "pids ");
	cr_assert(s != NULL, "%s", out);
	s += 5;
	while (k < n && sscanf(s, "%d%n", &pids[k], &at) == 1) {
		s += at;
		k++;
	}
	cr_assert(k == n && sscanf(s, " bad %d", &bad) == 1 && bad == 0, "%s",
	          out);
	s = strstr(out, "grandchild ");
	if (s != NULL)
		sscanf(s, "grandchild %d", &pids[n]);
}

/* pid's report lists the shared region `name` once, with its memfd's
 * identity (the same as every other process's: memfd keeps the first
 * one seen) and nothing exclusive: every resident page shared, and all
 * 1024 resident when the process read it all (full). */
static void expect_shared_line(const char *dir, int pid, const char *who,
                               const char *name, int full, char *memfd,
                               size_t size)
{
	char path[128], want[96], *text, *m, *r;
	unsigned long long res = 0, shr = 0, exc = 0;

	snprintf(path, sizeof(path), "%s/report-%d.jsonl", dir, pid);
	text = host_read_file(path, NULL);
	cr_assert(text != NULL, "%s: no report %s", who, path);
	snprintf(want, sizeof(want), "\"name\":\"%s\"", name);
	m = strstr(text, "\"memfd\":\"");
	r = strstr(text, want);
	if (r != NULL) {
		cr_expect(strstr(r + 1, want) == NULL, "%s: twice: %s", who,
		          text);
		r = strstr(r, "\"resident\":");
	}
	cr_expect(r != NULL && m != NULL &&
	              sscanf(r,
	                     "\"resident\":%llu,\"shared\":%llu,"
	                     "\"exclusive\":%llu",
	                     &res, &shr, &exc) == 3,
	          "%s: %s", who, text);
	cr_expect(exc == 0 && shr == res && (!full || res == 1024),
	          "%s: resident %llu shared %llu exclusive %llu", who, res, shr,
	          exc);
	if (m != NULL) {
		char id[64] = "";

		sscanf(m + 9, "%63[0-9:]", id);
		cr_expect(memfd[0] == '\0' || strcmp(id, memfd) == 0,
		          "%s: memfd %s, not %s", who, id, memfd);
		snprintf(memfd, size, "%s", id);
	}
	free(text);
}

/* `forkshim report --json dir` shows one shared region, mapped by
 * mapped_by processes, nothing copied, 100% shared. */
static void expect_family(const char *dir, int mapped_by)
{
	const char *const argv[] = {SHARED_LAUNCHER, "report", "--json", dir,
	                            NULL};
	char json[16384], want[128];
	const char *at;
	int st = run_worker(argv, json, sizeof(json));

	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
	at = strstr(json, "\"memfd\":");
	cr_expect(at != NULL && strstr(at + 1, "\"memfd\":") == NULL,
	          "one shared region: %s", json);
	snprintf(want, sizeof(want),
	         "\"mapped_by\":%d,\"copied_pages\":0,"
	         "\"copied_bytes\":0,\"shared_percent\":100.00",
	         mapped_by);
	cr_expect(strstr(json, want) != NULL, "%s", json);
}

/* The per-process reports and `forkshim report` of a family around one
 * shared region (worker.c, do_family): every process that maps it has
 * its line, with the memfd's identity and nothing exclusive; the family
 * report shows it once, mapped by the owner, a late child, an exec'd
 * importer and a forked child, nothing copied, 100% shared. */
Test(shared, reports_count_every_process_that_maps_a_shared_region)
{
	static const char *const who[] = {"owner", "late child",
	                                  "exec'd importer", "forked child"};
	char dir[] = "/tmp/forkshim-shared-report-XXXXXX", memfd[64] = "";
	int pids[5];

	cr_assert(mkdtemp(dir) != NULL);
	run_reported("family", dir, pids, 4);
	/* The owner's read-only mapping was made at its freeze and it did
	 * not read the region since; the others read it all. */
	for (int i = 0; i < 4; i++)
		expect_shared_line(dir, pids[i], who[i], "family", i > 0, memfd,
		                   sizeof(memfd));
	expect_family(dir, 4);
	host_rmtree(dir);
}

/* Late children whose parent had frozen nothing when it forked them (it
 * had only called forkshim_api: no report was armed to inherit) report
 * the region they map: by plain deref (ending with exit()), by
 * forkshim_info (ending with _exit), by import; a child of the deref'ing
 * one that only reads what it inherited (and _exits) reports it too.  The one
 * that never touches it writes no report, and `forkshim report` counts the five
 * processes that map it. */
Test(shared, late_children_of_an_unarmed_parent_report_what_they_map)
{
	static const char *const who[] = {"owner",
	                                  "late child (deref, exit)",
	                                  "late child (info, _exit)",
	                                  "late child (import)",
	                                  "untouched",
	                                  "grandchild (inherited)"};
	char dir[] = "/tmp/forkshim-late-report-XXXXXX", memfd[64] = "",
	     path[128];
	int pids[6] = {0};

	cr_assert(mkdtemp(dir) != NULL);
	run_reported("late-family", dir, pids, 5);
	cr_assert(pids[5] > 0, "no grandchild said its pid");
	for (int i = 0; i < 6; i++) {
		char *text;

		if (i == 4)
			continue;
		expect_shared_line(dir, pids[i], who[i], "late-family", i > 0,
		                   memfd, sizeof(memfd));
		snprintf(path, sizeof(path), "%s/report-%d.jsonl", dir,
		         pids[i]);
		text = host_read_file(path, NULL);
		cr_expect(text != NULL &&
		              strstr(text, i == 2 || i == 5
		                               ? "\"how\":\"_exit\""
		                               : "\"how\":\"exit\"") != NULL,
		          "%s: %s", who[i], text);
		free(text);
	}
	snprintf(path, sizeof(path), "%s/report-%d.jsonl", dir, pids[4]);
	cr_expect(access(path, F_OK) != 0, "%s wrote %s", who[4], path);
	expect_family(dir, 5);
	host_rmtree(dir);
}

/* ---- no leaks after kill -9 ---- */

/* A /proc/meminfo field ("Shmem:", "MemAvailable:") in kB. */
static long meminfo_kib(const char *field)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[128];
	size_t n = strlen(field);
	long v = -1;

	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, field, n) == 0 &&
		    sscanf(line + n, "%ld kB", &v) == 1)
			break;
	if (f != NULL)
		fclose(f);
	return v;
}

/* Whether any process still holds or maps the memfd inode ino. */
static int inode_in_use(unsigned long ino)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	char path[300], line[512], target[256], want[64];
	int used = 0;

	snprintf(want, sizeof(want), " %lu ", ino);
	while (d != NULL && !used && (de = readdir(d)) != NULL) {
		FILE *f;
		DIR *fds;
		struct dirent *fe;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/maps", de->d_name);
		f = fopen(path, "r");
		while (f != NULL && fgets(line, sizeof(line), f) != NULL)
			if (strstr(line, "/memfd:leak") && strstr(line, want))
				used = 1;
		if (f != NULL)
			fclose(f);
		snprintf(path, sizeof(path), "/proc/%s/fd", de->d_name);
		fds = opendir(path);
		while (fds != NULL && !used && (fe = readdir(fds)) != NULL) {
			struct stat st;
			char fp[600];

			snprintf(fp, sizeof(fp), "%s/%s", path, fe->d_name);
			if (readlink(fp, target, sizeof(target)) > 0 &&
			    stat(fp, &st) == 0 && st.st_ino == ino &&
			    strstr(target, "memfd:leak"))
				used = 1;
		}
		if (fds != NULL)
			closedir(fds);
	}
	if (d != NULL)
		closedir(d);
	return used;
}

/* One family: a root that freezes 256 MiB shared and a child that
 * imports it; kill -9 of the group.  Returns 1 when Shmem fell by 3/4 of
 * it between just before the kill and the moment no process holds the
 * memfd any more, which is checked in every case (the kernel freed it). */
static int kill_9_once(size_t len)
{
	int ready[2], kready[2], st;
	pid_t root;
	long base, held, after = -1, avail_base, avail_held, avail_after;
	long kib = (long)(len / 1024);
	unsigned long ino = 0;
	char c;

	/* Two pipes: the root's inode and the child's "imported" come in
	 * either order. */
	cr_assert(pipe(ready) == 0);
	cr_assert(pipe(kready) == 0);
	base = meminfo_kib("Shmem:");
	avail_base = meminfo_kib("MemAvailable:");
	root = fork();
	cr_assert(root >= 0);
	if (root == 0) {
		unsigned char *p;
		forkshim_handle h;
		struct forkshim_token t;
		pid_t kid;

		setpgid(0, 0);
		p = forkshim_alloc(len, "leak");
		if (p == NULL)
			_exit(91);
		fill(p, len, 1);
		h = forkshim_freeze(p, len, "leak", FORKSHIM_SHARED);
		if (h == 0 || forkshim_export(h, &t) != 0)
			_exit(92);
		kid = fork();
		if (kid == 0) {
			const void *q = forkshim_import(&t, 0, NULL);

			if (q == NULL)
				_exit(93);
			write_all(kready[1], "k", 1);
			for (;;)
				pause();
		}
		{
			FILE *m = fopen("/proc/self/maps", "r");
			char line[512];
			unsigned long i = 0;

			while (m != NULL && fgets(line, sizeof(line), m))
				if (strstr(line, "/memfd:leak") &&
				    sscanf(line, "%*s %*s %*s %*s %lu", &i) ==
				        1)
					break;
			if (m != NULL)
				fclose(m);
			write_all(ready[1], &i, sizeof(i));
		}
		for (;;)
			pause();
	}
	if (read(ready[0], &ino, sizeof(ino)) != sizeof(ino) ||
	    read(kready[0], &c, 1) != 1 || ino == 0) {
		kill(-root, SIGKILL);
		waitpid(root, &st, 0);
		cr_assert_fail("the family did not start (status %#x)", st);
	}
	held = meminfo_kib("Shmem:");
	avail_held = meminfo_kib("MemAvailable:");
	if (!inode_in_use(ino)) {
		kill(-root, SIGKILL);
		waitpid(root, &st, 0);
		cr_assert_fail("the family's memfd (inode %lu) is not found",
		               ino);
	}
	cr_assert(kill(-root, SIGKILL) == 0);
	cr_assert(waitpid(root, &st, 0) == root);
	/* The kernel frees a killed family's memory after waitpid returns
	 * (the reparented grandchild, the last fput): seconds, here. */
	for (int i = 0; i < 600 && inode_in_use(ino); i++)
		usleep(50000);
	cr_assert(!inode_in_use(ino), "a process still holds the memfd");
	/* And the counters a moment to follow (freed pages reach
	 * MemAvailable through per-cpu lists): up to 2 s. */
	for (int i = 0; i < 40; i++) {
		after = meminfo_kib("Shmem:");
		avail_after = meminfo_kib("MemAvailable:");
		if (after - base <= kib / 8 &&
		    avail_base - avail_after <= kib / 8)
			break;
		usleep(50000);
	}
	close(ready[0]);
	close(ready[1]);
	close(kready[0]);
	close(kready[1]);
	cr_log_info("Shmem %ld kB before, %ld kB holding, %ld kB after; "
	            "MemAvailable %ld / %ld / %ld kB",
	            base, held, after, avail_base, avail_held, avail_after);
	/* Shmem falls by the region while the family holds it, and Shmem
	 * and MemAvailable come back after the kill.  This test runs alone
	 * in the suite (RUN_SERIAL), but the machine's other processes move
	 * the figures meanwhile: Shmem by less than 1 MiB in these seconds
	 * here (judged within 1/4 of the region), MemAvailable by up to
	 * 470 MiB in a quiet run (page cache: judged within 3/4; a leaked
	 * region would take all of it).  How far
	 * MemAvailable falls while the family holds the region is only
	 * logged: the kernel's estimate counts clean page cache, which the
	 * region's pages may displace, so it fell by 0.32 GiB for 1 GiB
	 * held in one run on a loaded machine. */
	return held - base >= kib * 3 / 4 && held - after >= kib * 3 / 4 &&
	       after - base <= kib / 4 &&
	       avail_base - avail_after <= kib * 3 / 4;
}

Test(shared, kill_9_of_family_frees_shmem, .timeout = 240)
{
	/* The 1 GiB.  Three tries: a try fails when something else
	 * on the machine moved 256 MiB in the same seconds. */
	int ok = 0;

	for (int attempt = 0; attempt < 3 && !ok; attempt++)
		ok = kill_9_once(1024 * MIB);
	cr_expect(ok, "Shmem did not fall by 1 GiB while the family held it, "
	              "or Shmem and MemAvailable did not come back after the "
	              "kill, in 3 tries (see the log)");
}
