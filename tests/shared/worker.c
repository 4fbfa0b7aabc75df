/* shared_worker: a program of its own (not forked from the tests), started
 * by exec with a token in argv.  Linked against libforkshim.
 *
 *   shared_worker import HEX [same]   imports the token, checksums the
 *       bytes, releases; prints "errno len sum memfd_maps_added address"
 *   shared_worker owner MiB [nodump]  allocates MiB, fills it with the
 *       test pattern, freezes it shared, prints "HEX sum", then waits for
 *       a line on stdin and exits (so its line ends)
 *   shared_worker hold HEX            imports, prints "errno len sum", waits
 *       for a line on stdin, prints the bytes' checksum again, releases
 *   shared_worker write HEX           imports and tries every write path;
 *       prints the WROTE_* bits of those that wrote (0: none)
 *   shared_worker scribble HEX        imports and stores one byte
 *   shared_worker family              a family under FORKSHIM_REPORT around
 *       one shared region (do_family); prints "pids ... bad N"
 *   shared_worker late-family         the same with every worker forked
 *       before anything was frozen (do_late_family)
 *   shared_worker layout              allocates, freezes and imports 64
 *       MiB; prints how many new mappings lay below the region after
 *       the freeze and after the import (each named on stderr) */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "forkshim.h"
#include "shared_common.h"

static int do_import(const char *hex, int same, int keep)
{
	struct forkshim_token tok;
	int before = memfd_maps(), err = 0;
	size_t len = 0;
	uint64_t sum = 0;
	const void *p;

	if (token_from_hex(hex, &tok) < 0) {
		printf("%d 0 0 0 0\n", EINVAL);
		return 0;
	}
	p = forkshim_import(&tok, same ? FORKSHIM_SAME_ADDRESS : 0, &len);
	if (p == NULL) {
		err = errno;
		printf("%d 0 0 %d 0\n", err, memfd_maps() - before);
		return 0;
	}
	sum = checksum(p, len);
	if (!keep && forkshim_release(p) != 0)
		err = -errno;
	printf("%d %zu %llu %d %#lx\n", err, len, (unsigned long long)sum,
	       memfd_maps() - before, (unsigned long)(uintptr_t)p);
	return 0;
}

static int do_hold(const char *hex)
{
	struct forkshim_token tok;
	size_t len = 0;
	const void *p;
	char line[16];

	if (token_from_hex(hex, &tok) < 0)
		return 2;
	p = forkshim_import(&tok, 0, &len);
	printf("%d %zu %llu\n", p == NULL ? errno : 0, len,
	       p == NULL ? 0ull : (unsigned long long)checksum(p, len));
	fflush(stdout);
	if (p == NULL || fgets(line, sizeof(line), stdin) == NULL)
		return 0;
	printf("%llu\n", (unsigned long long)checksum(p, len));
	return forkshim_release(p) == 0 ? 0 : 3;
}

static int do_owner(size_t mib, int nodump)
{
	size_t len = mib << 20;
	struct forkshim_token tok;
	unsigned char *p;
	char hex[2 * FORKSHIM_TOKEN_SIZE + 1], line[16];
	forkshim_handle h;

	if (nodump)
		prctl(PR_SET_DUMPABLE, 0);
	p = forkshim_alloc(len, "owner");
	if (p == NULL)
		return 2;
	fill(p, len, 7);
	h = forkshim_freeze(p, len, "owner", FORKSHIM_SHARED);
	if (h == 0 || forkshim_export(h, &tok) != 0)
		return 3;
	token_to_hex(&tok, hex);
	printf("%s %llu\n", hex, (unsigned long long)checksum(p, len));
	fflush(stdout);
	if (fgets(line, sizeof(line), stdin) == NULL)
		return 0;
	return 0;
}

static int do_write(const char *hex)
{
	struct forkshim_token tok;
	size_t len = 0;
	const void *p;

	if (token_from_hex(hex, &tok) < 0)
		return 2;
	p = forkshim_import(&tok, 0, &len);
	if (p == NULL)
		return 3;
	printf("%d\n", write_paths(p, len));
	return 0;
}

/* Imports and writes one byte: it must die of SIGSEGV (with the guard on,
 * after its report). */
static int do_scribble(const char *hex)
{
	struct forkshim_token tok;
	size_t len = 0;
	unsigned char *p;

	if (token_from_hex(hex, &tok) < 0)
		return 2;
	p = (unsigned char *)forkshim_import(&tok, 0, &len);
	if (p == NULL)
		return 3;
	p[len / 2] = 1;
	return 4;
}

/* Freezes 1 MiB of forkshim_alloc memory shared and writes one byte of
 * it: here (the owner), or in a child forked before the freeze that
 * resolves it by plain deref ("late").  The writer must die of SIGSEGV. */
static int do_scribble_own(int late)
{
	unsigned char *p = forkshim_alloc(1 << 20, "own-scribbled");
	forkshim_handle h;
	int fds[2], st;
	pid_t pid = -1;

	if (p == NULL || pipe(fds) != 0)
		return 2;
	if (late) {
		pid = fork();
		if (pid == 0) {
			unsigned char *q;

			if (read(fds[0], &h, sizeof(h)) != sizeof(h))
				_exit(2);
			q = (unsigned char *)forkshim_deref(h, NULL);
			if (q == NULL)
				_exit(3);
			q[100] = 1;
			_exit(4);
		}
	}
	fill(p, 1 << 20, 3);
	h = forkshim_freeze(p, 1 << 20, "own-scribbled", FORKSHIM_SHARED);
	if (h == 0)
		return 3;
	if (!late) {
		p[100] = 1;
		return 4;
	}
	if (write(fds[1], &h, sizeof(h)) != sizeof(h) ||
	    waitpid(pid, &st, 0) != pid)
		return 5;
	if (WIFSIGNALED(st))
		raise(WTERMSIG(st)); /* the child's death, as ours */
	return 6;
}

/* A family under FORKSHIM_REPORT around one 4 MiB shared region: this
 * process allocates (which arms its report), forks a late child, fills
 * and freezes, execs an importer (this program, "import HEX keep") and
 * forks a child that inherits the region; each maps it at its exit.
 * Prints "pids OWNER LATE IMPORTER CHILD" and each one's check. */
static int do_family(const char *self)
{
	size_t len = 4 << 20, n = 0;
	unsigned char *p = forkshim_alloc(len, "family");
	struct forkshim_token tok;
	char hex[2 * FORKSHIM_TOKEN_SIZE + 1];
	forkshim_handle h;
	uint64_t sum;
	int fds[2], bad = 0, st;
	pid_t late, imp, kid;

	if (p == NULL || pipe(fds) != 0)
		return 2;
	late = fork();
	if (late == 0) {
		const void *q;

		if (read(fds[0], &h, sizeof(h)) != sizeof(h) ||
		    read(fds[0], &sum, sizeof(sum)) != sizeof(sum))
			_exit(2);
		q = forkshim_deref(h, &n);
		_exit(q != NULL && n == len && checksum(q, n) == sum ? 0 : 3);
	}
	fill(p, len, 11);
	sum = checksum(p, len);
	h = forkshim_freeze(p, len, "family", FORKSHIM_SHARED);
	if (h == 0 || forkshim_export(h, &tok) != 0)
		return 3;
	token_to_hex(&tok, hex);
	if (write(fds[1], &h, sizeof(h)) != sizeof(h) ||
	    write(fds[1], &sum, sizeof(sum)) != sizeof(sum))
		return 4;
	fflush(stdout);
	imp = fork();
	if (imp == 0) {
		execl(self, self, "import", hex, "keep", (char *)NULL);
		_exit(127);
	}
	kid = fork();
	if (kid == 0)
		_exit(forkshim_deref(h, &n) == p && checksum(p, len) == sum
		          ? 0
		          : 3);
	for (int i = 0; i < 3; i++) {
		pid_t w = wait(&st);

		if (w < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			bad++;
	}
	printf("pids %d %d %d %d bad %d\n", (int)getpid(), (int)late, (int)imp,
	       (int)kid, bad);
	return bad ? 5 : 0;
}

/* One worker of do_late_family, forked before anything existed: it waits
 * for the handle, the checksum and the token, then resolves the region
 * its own way and ends its own way. */
static void late_worker(int how, int in)
{
	struct forkshim_token tok;
	struct forkshim_info info;
	forkshim_handle h;
	uint64_t sum;
	size_t n = 0;
	const void *q = NULL;
	pid_t g;
	int st;

	if (read(in, &h, sizeof(h)) != sizeof(h) ||
	    read(in, &sum, sizeof(sum)) != sizeof(sum) ||
	    read(in, &tok, sizeof(tok)) != sizeof(tok))
		_exit(2);
	switch (how) {
	case 0: /* plain deref, then a child that only reads what it
	         * inherited; exit() */
		q = forkshim_deref(h, &n);
		if (q == NULL || checksum(q, n) != sum)
			_exit(3);
		g = fork();
		if (g == 0)
			_exit(checksum(q, n) == sum ? 0 : 3);
		if (g < 0 || waitpid(g, &st, 0) != g || st != 0)
			exit(4);
		printf("grandchild %d\n", (int)g);
		exit(0);
	case 1: /* forkshim_info maps it too; _exit */
		if (forkshim_info(h, &info) != 0 ||
		    checksum(info.addr, info.len) != sum)
			_exit(3);
		_exit(0);
	case 2: /* import by token; return from main */
		q = forkshim_import(&tok, 0, &n);
		if (q == NULL || checksum(q, n) != sum)
			exit(3);
		exit(0);
	default: /* never touches it */
		exit(0);
	}
}

/* A family under FORKSHIM_REPORT whose four workers were forked when
 * their parent had only said it uses forkshim (forkshim_api): none of
 * them inherits an armed report.  Three map the region late (deref and a
 * child of that, info, import), one never touches it. */
static int do_late_family(void)
{
	size_t len = 4 << 20;
	struct forkshim_token tok;
	unsigned char *p;
	forkshim_handle h;
	uint64_t sum;
	int cmd[4][2], bad = 0, st;
	pid_t kids[4];

	if (forkshim_api(1) == NULL)
		return 2;
	for (int i = 0; i < 4; i++) {
		if (pipe(cmd[i]) != 0 || (kids[i] = fork()) < 0)
			return 2;
		if (kids[i] == 0)
			late_worker(i, cmd[i][0]);
	}
	p = forkshim_alloc(len, "late-family");
	if (p == NULL)
		return 3;
	fill(p, len, 13);
	sum = checksum(p, len);
	h = forkshim_freeze(p, len, "late-family", FORKSHIM_SHARED);
	if (h == 0 || forkshim_export(h, &tok) != 0)
		return 3;
	for (int i = 0; i < 4; i++)
		if (write(cmd[i][1], &h, sizeof(h)) != sizeof(h) ||
		    write(cmd[i][1], &sum, sizeof(sum)) != sizeof(sum) ||
		    write(cmd[i][1], &tok, sizeof(tok)) != sizeof(tok))
			return 4;
	for (int i = 0; i < 4; i++)
		if (waitpid(kids[i], &st, 0) != kids[i] || !WIFEXITED(st) ||
		    WEXITSTATUS(st) != 0)
			bad++;
	printf("pids %d %d %d %d %d bad %d\n", (int)getpid(), (int)kids[0],
	       (int)kids[1], (int)kids[2], (int)kids[3], bad);
	return bad ? 5 : 0;
}

/* The ranges of this process's mappings; their count. */
static size_t maps_now(uintptr_t (*r)[2], size_t max)
{
	static char buf[1 << 16];
	size_t n = 0, got = 0;
	ssize_t k;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	while (got < sizeof(buf) - 1 &&
	       (k = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)k;
	close(fd);
	buf[got] = '\0';
	for (char *l = buf; l != NULL && *l && n < max; l = strchr(l, '\n')) {
		unsigned long a, b;

		if (*l == '\n')
			l++;
		if (sscanf(l, "%lx-%lx", &a, &b) == 2) {
			r[n][0] = a;
			r[n][1] = b;
			n++;
		}
	}
	return n;
}

/* The mappings in `after` but not in `before` that lie below `at`. */
static int new_below(uintptr_t (*before)[2], size_t nb, uintptr_t (*after)[2],
                     size_t na, uintptr_t at, const char *what)
{
	int below = 0;

	for (size_t i = 0; i < na; i++) {
		int old = 0;

		for (size_t j = 0; j < nb && !old; j++)
			old = after[i][0] == before[j][0] &&
			      after[i][1] == before[j][1];
		if (old || after[i][0] >= at)
			continue;
		below++;
		fprintf(stderr, "%s: new mapping %#lx-%#lx below %#lx\n", what,
		        (unsigned long)after[i][0], (unsigned long)after[i][1],
		        (unsigned long)at);
	}
	return below;
}

static int do_layout(void)
{
	static uintptr_t before[4096][2], after[4096][2];
	size_t len = 64 << 20, nb, na;
	struct forkshim_token tok;
	int below_alloc, below_import;
	unsigned char *p;
	const void *q;
	forkshim_handle h;

	nb = maps_now(before, 4096);
	p = forkshim_alloc(len, "layout");
	if (p == NULL)
		return 3;
	fill(p, len, 9);
	h = forkshim_freeze(p, len, "layout", FORKSHIM_SHARED);
	if (h == 0 || forkshim_export(h, &tok) != 0)
		return 4;
	na = maps_now(after, 4096);
	below_alloc = new_below(before, nb, after, na, (uintptr_t)p, "alloc");
	nb = maps_now(before, 4096);
	q = forkshim_import(&tok, 0, NULL);
	if (q == NULL || q == p)
		return 5;
	na = maps_now(after, 4096);
	below_import = new_below(before, nb, after, na,
	                         (uintptr_t)q & ~(uintptr_t)4095, "import");
	if (checksum(q, len) != checksum(p, len) || forkshim_release(q) != 0 ||
	    forkshim_thaw(h) != 0)
		return 6;
	printf("%d %d\n", below_alloc, below_import);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 3 && strcmp(argv[1], "import") == 0)
		return do_import(argv[2], argc > 3 && !strcmp(argv[3], "same"),
		                 argc > 3 && !strcmp(argv[3], "keep"));
	if (argc >= 3 && strcmp(argv[1], "owner") == 0)
		return do_owner(strtoul(argv[2], NULL, 10),
		                argc > 3 && !strcmp(argv[3], "nodump"));
	if (argc >= 3 && strcmp(argv[1], "hold") == 0)
		return do_hold(argv[2]);
	if (argc >= 3 && strcmp(argv[1], "write") == 0)
		return do_write(argv[2]);
	if (argc >= 3 && strcmp(argv[1], "scribble") == 0)
		return do_scribble(argv[2]);
	if (argc >= 2 && strcmp(argv[1], "family") == 0)
		return do_family(argv[0]);
	if (argc >= 2 && strcmp(argv[1], "late-family") == 0)
		return do_late_family();
	if (argc >= 2 && strcmp(argv[1], "scribble-own") == 0)
		return do_scribble_own(argc > 2 && !strcmp(argv[2], "late"));
	if (argc >= 2 && strcmp(argv[1], "layout") == 0)
		return do_layout();
	fprintf(stderr, "usage: shared_worker import|owner|write ARG\n");
	return 2;
}
