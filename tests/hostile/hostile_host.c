/* The hostile-environment tests' host program (tests/hostile): an ordinary
 * program run with the shim preloaded, whose neighbours (the driver, as a
 * second user) or whose own habits (closing every descriptor, reusing its
 * environment block, unmapping frozen memory) try to turn the shim against
 * it.  It reaches the shim through forkshim_client.h.  One mode per run:
 *
 *   scan [forge MODULE OFFSET | huge]
 *                prints "pid P" and "secret OFFSET" (hostile_secret's ELF
 *                offset), waits for a line on stdin, freezes "scan" (2
 *                pages) and forks a child that writes page 0 in
 *                hostile_dirty() (its first write: an audit record) and
 *                leaves with _exit; with forge the child first appends a
 *                frame naming MODULE+OFFSET to its own audit file, with
 *                huge it makes that file 1 GiB long (a hole).  The parent
 *                waits, prints "child C exited 0" and exits (the audit's
 *                exit-time scan of the directory runs then)
 *   reap         freezes 1 page, forks a child that pauses, prints "child
 *                C", waits for a line on stdin, kills the child with
 *                SIGKILL and reaps it (the report of a killed child is
 *                written then), prints "reaped C signal 9"
 *   family       freezes "family" (2 pages), forks a child that writes
 *                page 0 and exits; prints "pid P", "child C exited 0"
 *   title zero|copy OTHER
 *                as family, but first reuses the environment block as
 *                setproctitle does: zero clears every byte of it, copy
 *                writes OTHER over FORKSHIM_REPORT's value (in place)
 *   reuse log-close|log-dup|audit|stderr DATA [LOGPATH]
 *                freezes "reuse" (4 pages), forks a child that behaves as
 *                a daemon: log-close closes every descriptor from 3 and
 *                opens DATA (it gets the lowest number); log-dup also
 *                puts DATA on the number the shim's log file (LOGPATH) has;
 *                audit first writes page 0 (the audit file is opened),
 *                then closes every descriptor from 3, opens DATA and puts
 *                it on the audit file's number too; stderr closes 2 and
 *                opens DATA there.  Then the child writes "host data 1",
 *                writes pages 1 and 2 of the region (audit records), writes
 *                "host data 2" and exits; the parent prints "child exited
 *                0"
 *   remap anon|file|part|hostprot|plain
 *                freezes "remap" (4 pages) with the FORKSHIM_GUARD flag,
 *                then: anon unmaps it and maps 4 read-only anonymous pages
 *                at the same address; file the same with a private
 *                read-only mapping of /proc/self/exe; part unmaps pages 2
 *                and 3 only and maps them read-only again; hostprot makes
 *                the pages PROT_NONE itself; plain nothing.  Then thaws and
 *                prints "page N PERMS" (from /proc/self/maps) for pages 0
 *                and 2 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "forkshim_client.h"

#define NOINLINE __attribute__((noinline, noclone))

static const struct forkshim_api *api;
static size_t ps;

static void fail(const char *what)
{
	printf("FAIL: %s (errno %d)\n", what, errno);
	fflush(stdout);
	exit(1);
}

/* The function whose name a forged frame asks the shim to look up in a
 * copy of this program only root may read. */
NOINLINE void hostile_secret(void)
{
	__asm__ volatile("" ::: "memory");
}

NOINLINE void hostile_dirty(volatile unsigned char *p)
{
	p[0]++;
}

static unsigned char *pages(size_t n)
{
	unsigned char *p = mmap(NULL, n * ps, PROT_READ | PROT_WRITE,
	                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		fail("mmap");
	memset(p, 0x5a, n * ps);
	return p;
}

static forkshim_handle freeze(const void *p, size_t n, const char *name,
                              unsigned flags)
{
	forkshim_handle h = api->freeze(p, n * ps, name, flags);

	if (h == 0)
		fail("freeze");
	return h;
}

static void wait_line(void)
{
	char c;

	while (read(0, &c, 1) == 1 && c != '\n')
		;
}

static int wait_child(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			fail("waitpid");
	return st;
}

static void say(const char *fmt, long v)
{
	printf(fmt, v);
	fflush(stdout);
}

/* ---- scan ---- */

static void forge_frame(const char *module, const char *offset)
{
	char path[4200];
	const char *dir = getenv("FORKSHIM_REPORT");
	FILE *f;

	snprintf(path, sizeof(path), "%s/audit-%d.jsonl", dir, (int)getpid());
	f = fopen(path, "a");
	if (f == NULL)
		_exit(20);
	fprintf(f,
	        "{\"type\":\"first_write\",\"pid\":%d,\"frames\":[{\"i\":0,"
	        "\"ip\":\"0x1\",\"module\":\"%s\",\"offset\":\"%s\"}]}\n",
	        (int)getpid(), module, offset);
	fclose(f);
}

static void grow_own_file(void)
{
	char path[4200];

	snprintf(path, sizeof(path), "%s/audit-%d.jsonl",
	         getenv("FORKSHIM_REPORT"), (int)getpid());
	if (truncate(path, 1l << 30) != 0)
		_exit(21);
}

static int do_scan(int argc, char **argv)
{
	Dl_info info;
	unsigned char *p;
	pid_t pid;

	if (dladdr((void *)hostile_secret, &info) == 0)
		fail("dladdr");
	say("pid %ld\n", (long)getpid());
	say("secret 0x%lx\n",
	    (long)((uintptr_t)hostile_secret - (uintptr_t)info.dli_fbase));
	wait_line();
	p = pages(2);
	freeze(p, 2, "scan", 0);
	pid = fork();
	if (pid < 0)
		fail("fork");
	if (pid == 0) {
		hostile_dirty(p);
		if (argc > 4 && strcmp(argv[2], "forge") == 0)
			forge_frame(argv[3], argv[4]);
		if (argc > 2 && strcmp(argv[2], "huge") == 0)
			grow_own_file();
		_exit(0);
	}
	say("child %ld exited ", (long)pid);
	say("%ld\n", (long)WEXITSTATUS(wait_child(pid)));
	return 0;
}

/* ---- reap ---- */

static int do_reap(void)
{
	unsigned char *p = pages(1);
	pid_t pid;
	int st;

	freeze(p, 1, "reap", 0);
	pid = fork();
	if (pid < 0)
		fail("fork");
	if (pid == 0) {
		for (;;)
			pause();
	}
	say("child %ld\n", (long)pid);
	wait_line();
	kill(pid, SIGKILL);
	st = wait_child(pid);
	say("reaped %ld ", (long)pid);
	say("signal %ld\n", WIFSIGNALED(st) ? (long)WTERMSIG(st) : -1l);
	return 0;
}

/* ---- family, title ---- */

static int family(void)
{
	unsigned char *p = pages(2);
	pid_t pid;

	say("pid %ld\n", (long)getpid());
	freeze(p, 2, "family", 0);
	pid = fork();
	if (pid < 0)
		fail("fork");
	if (pid == 0) {
		hostile_dirty(p);
		exit(0);
	}
	say("child %ld exited ", (long)pid);
	say("%ld\n", (long)WEXITSTATUS(wait_child(pid)));
	return 0;
}

extern char **environ;

static int do_title(int argc, char **argv)
{
	char *value = getenv("FORKSHIM_REPORT");

	if (value == NULL || argc < 3)
		fail("title: no FORKSHIM_REPORT");
	if (strcmp(argv[2], "zero") == 0) {
		/* setproctitle's way: argv and environ are one block. */
		char *start = argv[0], *end = argv[0];

		for (char **e = environ; *e != NULL; e++)
			if (*e + strlen(*e) + 1 > end)
				end = *e + strlen(*e) + 1;
		for (int i = 0; i < argc; i++)
			if (argv[i] + strlen(argv[i]) + 1 > end)
				end = argv[i] + strlen(argv[i]) + 1;
		memset(start, 0, (size_t)(end - start));
		/* Our own copy of environ is gone too: keep the mode. */
		return family();
	}
	if (argc < 4 || strlen(argv[3]) > strlen(value))
		fail("title copy: OTHER longer than the value");
	strcpy(value, argv[3]);
	return family();
}

/* ---- reuse ---- */

static int find_fd(const char *needle)
{
	for (int fd = 0; fd < 65536; fd++) {
		char link[64], target[4200];
		ssize_t n;

		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		n = readlink(link, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		if (strstr(target, needle) != NULL)
			return fd;
	}
	return -1;
}

static void put(int fd, const char *s)
{
	if (write(fd, s, strlen(s)) != (ssize_t)strlen(s))
		_exit(30);
}

static int do_reuse(int argc, char **argv)
{
	unsigned char *p = pages(4);
	const char *kind = argc > 2 ? argv[2] : "";
	const char *data = argc > 3 ? argv[3] : "/dev/null";
	pid_t pid;
	int fd, st;

	freeze(p, 4, "reuse", 0);
	pid = fork();
	if (pid < 0)
		fail("fork");
	if (pid == 0) {
		int shim = -1;

		if (strcmp(kind, "audit") == 0) {
			hostile_dirty(p);
			shim = find_fd("/audit-");
		} else if (strcmp(kind, "log-dup") == 0 && argc > 4) {
			shim = find_fd(argv[4]);
		}
		if (strcmp(kind, "stderr") == 0) {
			close(2);
		} else {
			/* close_range(3, ~0U, 0), as daemons do. */
			syscall(SYS_close_range, 3u, ~0u, 0u);
		}
		fd = open(data, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd < 0)
			_exit(31);
		if (shim >= 0 && shim != fd && dup2(fd, shim) != shim)
			_exit(32);
		put(fd, "host data 1\n");
		hostile_dirty(p + ps);
		hostile_dirty(p + 2 * ps);
		put(fd, "host data 2\n");
		exit(0);
	}
	st = wait_child(pid);
	say("child exited %ld\n", WIFEXITED(st) ? (long)WEXITSTATUS(st) : -1l);
	return 0;
}

/* ---- remap ---- */

static void print_perms(const unsigned char *page, int n)
{
	char line[512];
	FILE *f = fopen("/proc/self/maps", "r");
	uintptr_t a = (uintptr_t)page;

	if (f == NULL)
		fail("maps");
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long lo, hi;
		char perms[8];

		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 &&
		    lo <= a && a < hi) {
			printf("page %d %s\n", n, perms);
			fclose(f);
			fflush(stdout);
			return;
		}
	}
	fclose(f);
	printf("page %d unmapped\n", n);
	fflush(stdout);
}

static void newcomer(unsigned char *at, size_t n, int fd)
{
	void *q = mmap(at, n * ps, PROT_READ,
	               MAP_PRIVATE | MAP_FIXED_NOREPLACE |
	                   (fd < 0 ? MAP_ANONYMOUS : 0),
	               fd, 0);

	if (q != at)
		fail("newcomer mmap");
}

static int do_remap(int argc, char **argv)
{
	const char *how = argc > 2 ? argv[2] : "plain";
	unsigned char *p = pages(4);
	forkshim_handle h = freeze(p, 4, "remap", FORKSHIM_GUARD);

	if (strcmp(how, "anon") == 0) {
		munmap(p, 4 * ps);
		newcomer(p, 4, -1);
	} else if (strcmp(how, "file") == 0) {
		int fd = open("/proc/self/exe", O_RDONLY);

		munmap(p, 4 * ps);
		newcomer(p, 4, fd);
		close(fd);
	} else if (strcmp(how, "part") == 0) {
		munmap(p + 2 * ps, 2 * ps);
		newcomer(p + 2 * ps, 2, -1);
	} else if (strcmp(how, "hostprot") == 0) {
		if (mprotect(p, 4 * ps, PROT_NONE) != 0)
			fail("mprotect");
	}
	if (api->thaw(h) != 0)
		fail("thaw");
	print_perms(p, 0);
	print_perms(p + 2 * ps, 2);
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";

	ps = (size_t)sysconf(_SC_PAGESIZE);
	api = forkshim_client_get();
	if (api == NULL)
		fail("no shim");
	if (strcmp(mode, "scan") == 0)
		return do_scan(argc, argv);
	if (strcmp(mode, "reap") == 0)
		return do_reap();
	if (strcmp(mode, "family") == 0)
		return family();
	if (strcmp(mode, "title") == 0)
		return do_title(argc, argv);
	if (strcmp(mode, "reuse") == 0)
		return do_reuse(argc, argv);
	if (strcmp(mode, "remap") == 0)
		return do_remap(argc, argv);
	fprintf(stderr, "usage: hostile_host MODE ...\n");
	return 2;
}
