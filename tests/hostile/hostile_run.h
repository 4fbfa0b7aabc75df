/* hostile_run.h: what the hostile drivers share.
 *
 * A host runs as a real process with an explicit environment (the shim
 * preloaded) and a pipe on its stdin, so that a driver can read what it
 * printed first (its pid, a child's pid), act as the attacker meanwhile,
 * and then let it go on.  Everything waits against one deadline: a hang
 * (a FIFO the shim opened, a read that never ends) is killed with the
 * process group and reported as timed_out, never a stuck test.
 *
 * The attacker is a second user: hr_as_nobody() runs a function in a
 * forked process that has dropped to nobody/nogroup (uid and gid 65534, no
 * supplementary groups).  The tests need root to do that (CI runs them as
 * root); elsewhere they are skipped. */
#ifndef HOSTILE_RUN_H
#define HOSTILE_RUN_H

#include <dirent.h>
#include <grp.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "run_host.h"

#define HR_NOBODY 65534

struct hr {
	pid_t pid;
	int in, out, err;
	double deadline;
	struct host_run r;
	struct rusage ru;
};

/* envp: the shim (the sanitizer runtime first), PATH, LC_ALL and the
 * extra FORKSHIM_* given (NULL ended), in e. */
static inline const char *const *hr_env(struct host_env *e,
                                        const char *const *extra)
{
	host_env_shim(e);
	for (int i = 0; extra != NULL && extra[i] != NULL; i++)
		host_env_add(e, "%s", extra[i]);
	return e->vars;
}

static inline void hr_start(struct hr *h, const char *const argv[],
                            const char *const envp[], int timeout_s)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int in[2], out[2], err[2], rc;

	memset(h, 0, sizeof(*h));
	h->deadline = host_now() + timeout_s;
	host_buf_append(&h->r.out, "", 0);
	host_buf_append(&h->r.err, "", 0);
	cr_assert_eq(pipe2(in, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(err, O_CLOEXEC), 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, err[1], 2);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
	rc = posix_spawn(&h->pid, argv[0], &fa, &attr, (char *const *)argv,
	                 (char *const *)envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(in[0]);
	close(out[1]);
	close(err[1]);
	h->in = in[1];
	h->out = out[0];
	h->err = err[0];
	cr_assert_eq(rc, 0, "cannot start %s: %s", argv[0], strerror(rc));
}

/* Reads stdout until a line starting with prefix has come; returns the
 * number after the prefix, or -1 (deadline, EOF). */
static inline long hr_wait_for(struct hr *h, const char *prefix)
{
	for (;;) {
		const char *s = h->r.out.data;
		struct pollfd p = {.fd = h->out, .events = POLLIN};
		char chunk[4096];
		ssize_t got;
		double left;

		for (const char *l = s; l != NULL && *l;) {
			const char *nl = strchr(l, '\n');

			if (nl == NULL)
				break;
			if (strncmp(l, prefix, strlen(prefix)) == 0)
				return strtol(l + strlen(prefix), NULL, 0);
			l = nl + 1;
		}
		left = h->deadline - host_now();
		if (left <= 0 || poll(&p, 1, (int)(left * 1000) + 1) <= 0)
			return -1;
		got = read(h->out, chunk, sizeof(chunk));
		if (got <= 0)
			return -1;
		host_buf_append(&h->r.out, chunk, (size_t)got);
	}
}

static inline void hr_go(struct hr *h)
{
	cr_assert_eq(write(h->in, "go\n", 3), 3);
}

/* Lets the host finish (closing its stdin), collects its output and
 * status (and rusage); kills the group at the deadline. */
static inline void hr_finish(struct hr *h)
{
	close(h->in);
	int drained = host_drain(h->out, h->err, &h->r, h->deadline);

	cr_assert_geq(drained, 0, "%s", h->r.error);
	if (drained == 0) {
		h->r.timed_out = true;
		kill(-h->pid, SIGKILL);
	}
	while (wait4(h->pid, &h->r.status, 0, &h->ru) < 0)
		cr_assert_eq(errno, EINTR, "wait4: %s", strerror(errno));
	kill(-h->pid, SIGKILL); /* anything of its family left behind */
}

static inline void hr_run(struct hr *h, const char *const argv[],
                          const char *const envp[], int timeout_s)
{
	hr_start(h, argv, envp, timeout_s);
	hr_finish(h);
}

/* ---- the second user ---- */

static inline void hr_need_root(void)
{
	if (geteuid() != 0)
		cr_skip_test("needs root (to act as a second user)");
}

/* Runs fn(arg) as nobody in a child; returns its exit status (0: fn
 * returned 0). */
static inline int hr_as_nobody(int (*fn)(void *), void *arg)
{
	pid_t pid = fork();
	int st;

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		if (setgroups(0, NULL) != 0 ||
		    setresgid(HR_NOBODY, HR_NOBODY, HR_NOBODY) != 0 ||
		    setresuid(HR_NOBODY, HR_NOBODY, HR_NOBODY) != 0)
			_exit(99);
		_exit(fn(arg) == 0 ? 0 : 1);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- files ---- */

static inline void hr_mkdtemp(char *dir, size_t size, const char *what)
{
	snprintf(dir, size, "/tmp/forkshim-%s-XXXXXX", what);
	cr_assert_not_null(mkdtemp(dir));
}

/* Removes dir and everything in it (one level; chmods it back first). */
static inline void hr_rmdir(const char *dir)
{
	DIR *d;
	struct dirent *e;
	char path[4200];

	if (dir[0] == '\0')
		return;
	chmod(dir, 0700);
	d = opendir(dir);
	while (d != NULL && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	if (d != NULL)
		closedir(d);
	rmdir(dir);
}

/* Files in dir whose names start with prefix. */
static inline int hr_count(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	cr_assert_not_null(d, "opendir %s", dir);
	while ((e = readdir(d)) != NULL)
		n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
	closedir(d);
	return n;
}

/* The whole regular file (malloc, NUL-terminated), or NULL. */
static inline char *hr_slurp(const char *path)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	char *buf;
	ssize_t n = 0;

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > (64 << 20)) {
		close(fd);
		return NULL;
	}
	buf = calloc(1, (size_t)st.st_size + 1);
	cr_assert_not_null(buf);
	while (n < st.st_size) {
		ssize_t r = read(fd, buf + n, (size_t)(st.st_size - n));

		if (r <= 0)
			break;
		n += r;
	}
	close(fd);
	return buf;
}

#endif
