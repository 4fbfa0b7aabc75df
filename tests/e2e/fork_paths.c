/* fork_paths: every way of making a child, one mode per run.
 *
 * Usage: fork_paths MODE [ROUNDS]
 *
 * Handle modes (the shim must be preloaded): fork, forkpty, daemon, _Fork,
 * sys_fork, clone, sys_clone.  A buffer is frozen, then a busy thread
 * starts freezing and thawing in a loop (so the shim's lock may be held at
 * the moment of birth), then for each round a child is made that way.  The
 * child derefs the handle frozen before its birth and checks the bytes,
 * gets ENOENT for a handle the parent froze after its birth (sent down a
 * pipe), freezes a buffer of its own, derefs and finds it, has a grandchild
 * deref both, thaws it and gets ESTALE.  It reports up a pipe: its
 * failures, one line each, or "ok".
 * The parent checks forkshim_visible(): 1/0 for fork and forkpty children,
 * ESRCH for the ones the shim cannot see (_Fork, raw syscalls, clone).
 * For daemon, a forked helper calls daemon(1, 1) and the daemon is the
 * child that reports back.  Prints "MODE: N rounds ok" and exits 0, and
 * how many births happened while the busy thread was inside the shim.
 *
 * Pass-through modes (with or without the shim): vfork_exec, posix_spawn,
 * system, popen.  They print what their children did and their statuses;
 * the driver compares the output of runs with and without the shim. */
#include <errno.h>
#include <pthread.h>
#include <pty.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "forkshim_client.h"
#include "io.h"

extern char **environ;

#define BEFORE_LEN (3 * 4096 + 17)
#define CHILD_LEN 777
#define AFTER_LEN 300
#define BUSY_LEN 8192
#define CHILD_STACK (256 * 1024)

static const struct forkshim_api *api;
static unsigned char before_buf[BEFORE_LEN];
static unsigned char child_buf[CHILD_LEN];
static unsigned char after_buf[AFTER_LEN];
static unsigned char busy_buf[BUSY_LEN];
static forkshim_handle h_before;

static atomic_int busy_stop;
static _Atomic unsigned long busy_ops, busy_failures;
static atomic_int busy_inside; /* the busy thread is in freeze or thaw */

static unsigned char pattern_byte(size_t i, unsigned seed)
{
	return (unsigned char)(i * 7 + seed + (i >> 8));
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = pattern_byte(i, seed);
}

static int matches(const unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != pattern_byte(i, seed))
			return 0;
	return 1;
}

/* ---- the busy thread: keeps the shim's table lock warm ---- */

static void *busy(void *arg)
{
	(void)arg;
	while (!atomic_load(&busy_stop)) {
		forkshim_handle h;
		int thawed;

		atomic_store(&busy_inside, 1);
		h = api->freeze(busy_buf, BUSY_LEN, "busy", 0);
		thawed = h != 0 && api->thaw(h) == 0;
		atomic_store(&busy_inside, 0);
		if (!thawed)
			atomic_fetch_add(&busy_failures, 1);
		atomic_fetch_add(&busy_ops, 1);
	}
	return NULL;
}

static pthread_t start_busy(void)
{
	pthread_t t;

	atomic_store(&busy_stop, 0);
	atomic_store(&busy_ops, 0);
	if (pthread_create(&t, NULL, busy, NULL) != 0) {
		perror("fork_paths: pthread_create");
		exit(2);
	}
	while (atomic_load(&busy_ops) < 100)
		sched_yield();
	return t;
}

static void stop_busy(pthread_t t)
{
	atomic_store(&busy_stop, 1);
	pthread_join(t, NULL);
}

/* ---- in the child: async-signal-safe calls only ---- */

static const char *mode_name;
static int child_failures;
static int report_fd = 2; /* the child's pipe up (a forkpty child's stderr
                             is the terminal, which nobody reads) */

static void child_fails(const char *what)
{
	char line[200];
	int n = 0;

	child_failures++;
	for (const char *s = mode_name; *s && n < 60; s++)
		line[n++] = *s;
	line[n++] = ':';
	line[n++] = ' ';
	for (const char *s = what; *s && n < 190; s++)
		line[n++] = *s;
	line[n++] = '\n';
	(void)!write(report_fd, line, (size_t)n);
}

/* Not glibc's fork(): its atfork handlers would take locks that threads of
 * the parent, absent here, may have held at a _Fork or clone. */
static pid_t raw_fork(void)
{
	return (pid_t)syscall(SYS_clone, SIGCHLD, 0, NULL, NULL, 0);
}

static int uses_glibc_fork(const char *mode)
{
	return strcmp(mode, "fork") == 0 || strcmp(mode, "forkpty") == 0 ||
	       strcmp(mode, "daemon") == 0;
}

/* The grandchild inherits the handle of the parent and the child's own. */
static void check_grandchild(forkshim_handle h_child)
{
	pid_t pid = uses_glibc_fork(mode_name) ? fork() : raw_fork();
	int status;

	if (pid < 0) {
		child_fails("cannot make a grandchild");
		return;
	}
	if (pid == 0) {
		size_t len = 0;
		const unsigned char *p = api->deref(h_before, &len);
		int ok =
		    p == before_buf && len == BEFORE_LEN && matches(p, len, 1);

		p = api->deref(h_child, &len);
		ok = ok && p == child_buf && len == CHILD_LEN &&
		     matches(p, len, 2);
		_exit(ok ? 0 : 1);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			child_fails("cannot reap the grandchild");
			return;
		}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		child_fails("grandchild cannot deref both handles");
}

static void child_main(int down, int up)
{
	forkshim_handle h_child, h_after;
	struct forkshim_info info;
	const unsigned char *p;
	size_t len = 0;
	/* Our copy of the flag says whether the busy thread was inside the
	 * shim at our birth (then its lock may have been held). */
	int busy_at_birth = atomic_load(&busy_inside);

	report_fd = up;
	alarm(10); /* a deadlock in the shim ends here, as SIGALRM */
	p = api->deref(h_before, &len);
	if (p == NULL)
		child_fails("handle frozen before birth does not deref");
	else if (p != before_buf || len != BEFORE_LEN)
		child_fails("handle frozen before birth: wrong region");
	else if (!matches(p, len, 1))
		child_fails("handle frozen before birth: wrong bytes");

	if (read_all(down, &h_after, sizeof(h_after)) != 0) {
		child_fails("no post-birth handle on the pipe");
	} else {
		errno = 0;
		if (api->deref(h_after, NULL) != NULL || errno != ENOENT)
			child_fails("handle frozen after birth: not ENOENT");
	}

	fill(child_buf, CHILD_LEN, 2);
	h_child = api->freeze(child_buf, CHILD_LEN, "child", 0);
	if (h_child == 0) {
		child_fails("freeze in the child failed");
	} else {
		p = api->deref(h_child, &len);
		if (p != child_buf || len != CHILD_LEN)
			child_fails("child's own handle: wrong deref");
		if (api->find(child_buf + 100, 10) != h_child)
			child_fails("child's own region: find failed");
		if (api->info(h_child, &info) != 0 ||
		    info.owner != (pid_t)syscall(SYS_getpid))
			child_fails(
			    "child's own region: owner is not the child");
		check_grandchild(h_child);
		if (api->thaw(h_child) != 0)
			child_fails("child's own handle: thaw failed");
		errno = 0;
		if (api->deref(h_child, NULL) != NULL || errno != ESTALE)
			child_fails("child's thawed handle: not ESTALE");
	}
	if (child_failures == 0)
		(void)!write(up, busy_at_birth ? "ok busy\n" : "ok\n",
		             busy_at_birth ? 8 : 3);
	_exit(child_failures == 0 ? 0 : 1);
}

/* ---- in the parent: make the child the way the mode says ---- */

struct child_args {
	int down, up;
};

static int clone_entry(void *arg)
{
	struct child_args *a = arg;

	child_main(a->down, a->up);
	return 1;
}

static pid_t make_child(const char *mode, int down, int up, int *pty_fd)
{
	static struct child_args args;
	pid_t pid;

	if (strcmp(mode, "fork") == 0) {
		pid = fork();
	} else if (strcmp(mode, "forkpty") == 0) {
		pid = forkpty(pty_fd, NULL, NULL, NULL);
	} else if (strcmp(mode, "_Fork") == 0) {
		pid = _Fork();
	} else if (strcmp(mode, "sys_fork") == 0) {
#ifdef SYS_fork
		pid = (pid_t)syscall(SYS_fork);
#else
		pid = raw_fork();
#endif
	} else if (strcmp(mode, "sys_clone") == 0) {
		pid = raw_fork();
	} else if (strcmp(mode, "clone") == 0) {
		static char *stack;

		if (stack == NULL)
			stack = malloc(CHILD_STACK);
		if (stack == NULL)
			return -1;
		args.down = down;
		args.up = up;
		/* A copy of the memory (no CLONE_VM), on a stack of its own. */
		return clone(clone_entry, stack + CHILD_STACK, SIGCHLD, &args);
	} else if (strcmp(mode, "daemon") == 0) {
		/* A forked helper calls daemon(), the daemon it leaves behind
		 * is the child.  The helper gets a busy thread of its own, so
		 * the fork inside daemon() may meet the lock held too. */
		pid = fork();
		if (pid != 0)
			return pid;
		(void)start_busy();
		if (daemon(1, 1) != 0)
			_exit(3);
		pid = 0;
	} else {
		fprintf(stderr, "fork_paths: unknown mode %s\n", mode);
		exit(2);
	}
	if (pid == 0)
		child_main(down, up);
	return pid;
}

/* Everything the child wrote up the pipe until it closed, NUL-terminated. */
static ssize_t read_report(int fd, char *buf, size_t size)
{
	size_t done = 0;

	for (;;) {
		ssize_t got = read(fd, buf + done, size - 1 - done);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		done += (size_t)got;
		if (done == size - 1)
			break;
	}
	buf[done] = '\0';
	return (ssize_t)done;
}

static int run_handle_mode(const char *mode, int rounds)
{
	int raw = strcmp(mode, "_Fork") == 0 || strcmp(mode, "sys_fork") == 0 ||
	          strcmp(mode, "clone") == 0 || strcmp(mode, "sys_clone") == 0;
	int failures = 0, busy_births = 0;
	pthread_t busy_thread;

	api = forkshim_client_get();
	if (api == NULL) {
		fprintf(stderr, "%s: the shim is not loaded\n", mode);
		return 2;
	}
	fill(before_buf, BEFORE_LEN, 1);
	fill(after_buf, AFTER_LEN, 3);
	h_before = api->freeze(before_buf, BEFORE_LEN, "before", 0);
	if (h_before == 0) {
		perror("fork_paths: freeze");
		return 2;
	}
	busy_thread = start_busy();

	for (int r = 0; r < rounds; r++) {
		int down[2], up[2], pty_fd = -1, status, vis_before, vis_after;
		int err_before;
		forkshim_handle h_after;
		char report[4096];
		ssize_t said;
		pid_t pid;

		if (pipe(down) != 0 || pipe(up) != 0) {
			perror("fork_paths: pipe");
			return 2;
		}
		fflush(NULL);
		pid = make_child(mode, down[0], up[1], &pty_fd);
		if (pid < 0) {
			fprintf(stderr, "%s: cannot make a child: %s\n", mode,
			        strerror(errno));
			return 2;
		}
		close(down[0]);
		close(up[1]);

		h_after = api->freeze(after_buf, AFTER_LEN, "after", 0);
		errno = 0;
		vis_before = api->visible(h_before, pid);
		err_before = errno;
		vis_after = api->visible(h_after, pid);
		if (h_after == 0 || write(down[1], &h_after, sizeof(h_after)) !=
		                        sizeof(h_after))
			failures++;
		close(down[1]);

		said = read_report(up[0], report, sizeof(report));
		if (strcmp(report, "ok busy\n") == 0) {
			busy_births++;
		} else if (strcmp(report, "ok\n") != 0) {
			fprintf(stderr, "%s: round %d: child said:\n%s", mode,
			        r, said > 0 ? report : "nothing\n");
			failures++;
		}
		close(up[0]);
		while (waitpid(pid, &status, 0) < 0)
			if (errno != EINTR) {
				perror("fork_paths: waitpid");
				return 2;
			}
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "%s: round %d: status 0x%x\n", mode, r,
			        (unsigned)status);
			failures++;
		}
		if (pty_fd >= 0)
			close(pty_fd);

		if (raw && (vis_before != -1 || err_before != ESRCH)) {
			fprintf(stderr,
			        "%s: visible() of a child the shim cannot see: "
			        "%d, errno %d (want -1, ESRCH)\n",
			        mode, vis_before, err_before);
			failures++;
		}
		if (!raw && (vis_before != 1 || vis_after != 0)) {
			fprintf(stderr,
			        "%s: visible(before, child) %d (want 1), "
			        "visible(after, child) %d (want 0)\n",
			        mode, vis_before, vis_after);
			failures++;
		}
		if (h_after != 0 && api->thaw(h_after) != 0)
			failures++;
	}

	stop_busy(busy_thread);
	if (atomic_load(&busy_failures) != 0) {
		fprintf(stderr, "%s: busy thread saw %lu failures\n", mode,
		        atomic_load(&busy_failures));
		failures++;
	}
	if (api->thaw(h_before) != 0)
		failures++;
	if (failures == 0)
		printf("%s: %d rounds ok\n", mode, rounds);
	else
		printf("%s: %d failures\n", mode, failures);
	/* How often the case that matters happened: not a pass condition. */
	printf("%s: busy thread inside the shim at %d of %d births\n", mode,
	       busy_births, rounds);
	return failures == 0 ? 0 : 1;
}

/* ---- pass-through modes: same output with and without the shim ---- */

static int wait_status(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return status;
}

static void say_status(const char *what, int status)
{
	if (status != -1 && WIFEXITED(status))
		printf("%s: exit %d\n", what, WEXITSTATUS(status));
	else
		printf("%s: status 0x%x\n", what, (unsigned)status);
	fflush(stdout);
}

static void run_vfork_exec(void)
{
	char *echo[] = {"echo", "hi", NULL};
	char *sh[] = {"sh", "-c", "echo from sh; exit 7", NULL};
	pid_t pid;

	pid = vfork();
	if (pid == 0) {
		execve("/bin/echo", echo, environ);
		_exit(127);
	}
	say_status("vfork echo", wait_status(pid));
	pid = vfork();
	if (pid == 0) {
		execve("/bin/sh", sh, environ);
		_exit(127);
	}
	say_status("vfork sh", wait_status(pid));
}

static void run_posix_spawn(void)
{
	char *echo[] = {"echo", "hi", NULL};
	char *sh[] = {"sh", "-c", "echo spawned; echo to stderr >&2; exit 4",
	              NULL};
	pid_t pid;
	int rc;

	rc = posix_spawn(&pid, "/bin/echo", NULL, NULL, echo, environ);
	say_status("posix_spawn echo", rc == 0 ? wait_status(pid) : -1);
	rc = posix_spawnp(&pid, "sh", NULL, NULL, sh, environ);
	say_status("posix_spawnp sh", rc == 0 ? wait_status(pid) : -1);
}

static void run_system(void)
{
	say_status("system echo", system("echo hi"));
	say_status("system sh", system("echo out; echo err >&2; exit 3"));
}

static void run_popen(void)
{
	char line[100] = "";
	FILE *p;

	p = popen("echo hi", "r");
	if (p != NULL && fgets(line, sizeof(line), p) != NULL)
		printf("popen read: %s", line);
	say_status("popen r", p != NULL ? pclose(p) : -1);
	p = popen("cat; exit 2", "w");
	if (p != NULL)
		fputs("written to cat\n", p);
	say_status("popen w", p != NULL ? pclose(p) : -1);
}

static int run_passthrough_mode(const char *mode)
{
	/* With the shim, do it in a process that has a frozen region and a
	 * busy thread; none of that may show in the output. */
	const struct forkshim_api *shim = forkshim_client_get();
	forkshim_handle h = 0;
	pthread_t busy_thread = (pthread_t)0;
	int failures = 0;
	size_t len;

	if (shim != NULL) {
		api = shim;
		fill(before_buf, BEFORE_LEN, 1);
		h = api->freeze(before_buf, BEFORE_LEN, "before", 0);
		failures += h == 0;
		busy_thread = start_busy();
	}
	fflush(stdout);
	if (strcmp(mode, "vfork_exec") == 0) {
		run_vfork_exec();
	} else if (strcmp(mode, "posix_spawn") == 0) {
		run_posix_spawn();
	} else if (strcmp(mode, "system") == 0) {
		run_system();
	} else if (strcmp(mode, "popen") == 0) {
		run_popen();
	} else {
		fprintf(stderr, "fork_paths: unknown mode %s\n", mode);
		return 2;
	}
	if (shim != NULL) {
		stop_busy(busy_thread);
		failures += atomic_load(&busy_failures) != 0;
		failures += api->deref(h, &len) != before_buf;
		failures += api->thaw(h) != 0;
	}
	if (failures != 0)
		fprintf(stderr, "%s: the shim's table went wrong\n", mode);
	return failures == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	const char *passthrough[] = {"vfork_exec", "posix_spawn", "system",
	                             "popen"};
	int rounds = argc > 2 ? atoi(argv[2]) : 20;

	alarm(50);
	if (argc < 2) {
		fprintf(stderr, "usage: %s MODE [ROUNDS]\n", argv[0]);
		return 2;
	}
	mode_name = argv[1];
	for (size_t i = 0; i < sizeof(passthrough) / sizeof(*passthrough); i++)
		if (strcmp(argv[1], passthrough[i]) == 0)
			return run_passthrough_mode(argv[1]);
	return run_handle_mode(argv[1], rounds);
}
