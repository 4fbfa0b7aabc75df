/* tp_run.h: run a real program, with or without the forkshim launcher, and
 * keep everything it did.
 *
 * A run never inherits the driver's environment: it gets tp_env (a fixed
 * PATH and locale) plus what the test adds, and /dev/null as stdin.
 * tp_run() reads stdout and stderr to EOF (so output of grandchildren still
 * holding them counts), then reaps the program; a run still going after
 * its timeout is killed with its whole process group and reported as timed
 * out.  tp_launched() is the same command line behind `forkshim --`.
 * Header-only, one copy per driver. */
#ifndef TP_RUN_H
#define TP_RUN_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "preload.h"

#define TP_PATH "PATH=/usr/local/bin:/usr/bin:/bin"
#define TP_MAX_ARGS 64
#define TP_MAX_ENV 16

struct tp_buf {
	char *data; /* NUL-terminated */
	size_t len;
};

struct tp_run {
	pid_t pid;
	int status; /* as from waitpid */
	bool timed_out;
	struct tp_buf out;
	struct tp_buf err;
};

/* What a run gets: the fixed environment plus `extra` (NULL-terminated,
 * may be NULL), the working directory (NULL: the driver's), a timeout. */
struct tp_opts {
	const char *const *extra_env;
	const char *cwd;
	int timeout_s;
};

static inline void tp_buf_append(struct tp_buf *b, const char *src, size_t n)
{
	char *grown = realloc(b->data, b->len + n + 1);

	cr_assert_not_null(grown, "out of memory collecting output");
	memcpy(grown + b->len, src, n);
	b->len += n;
	grown[b->len] = '\0';
	b->data = grown;
}

static inline double tp_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Reads both pipes to EOF; false when the deadline passed first. */
static inline bool tp_drain(int out_fd, int err_fd, struct tp_run *r,
                            double deadline)
{
	struct pollfd fds[2] = {{.fd = out_fd, .events = POLLIN},
	                        {.fd = err_fd, .events = POLLIN}};
	struct tp_buf *dst[2] = {&r->out, &r->err};
	char chunk[4096];

	while (fds[0].fd >= 0 || fds[1].fd >= 0) {
		double left = deadline - tp_now();
		int n;

		if (left <= 0)
			return false;
		n = poll(fds, 2, (int)(left * 1000) + 1);
		if (n < 0 && errno == EINTR)
			continue;
		cr_assert_geq(n, 0, "poll: %s", strerror(errno));
		for (int i = 0; i < 2; i++) {
			ssize_t got;

			if (fds[i].fd < 0 || fds[i].revents == 0)
				continue;
			got = read(fds[i].fd, chunk, sizeof(chunk));
			if (got > 0) {
				tp_buf_append(dst[i], chunk, (size_t)got);
			} else if (got == 0 || errno != EINTR) {
				close(fds[i].fd);
				fds[i].fd = -1;
			}
		}
	}
	return true;
}

static inline void tp_run(struct tp_run *r, const char *const argv[],
                          const struct tp_opts *o)
{
	static const char *const san[] = {SANITIZER_ENV NULL};
	const char *envp[TP_MAX_ENV + 6] = {TP_PATH, "LC_ALL=C"};
	const char *rt = FORKSHIM_SANITIZER_RT;
	char preload[4096] = "";
	double deadline = tp_now() + (o->timeout_s ? o->timeout_s : 30);
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	size_t n_env = 2;
	int out[2], err[2];
	int rc;

	for (size_t i = 0; o->extra_env && o->extra_env[i]; i++) {
		cr_assert_lt(n_env, TP_MAX_ENV + 2, "too many variables");
		if (rt[0] != '\0' &&
		    strncmp(o->extra_env[i], "LD_PRELOAD=", 11) == 0) {
			/* A sanitizer build: its runtime stays first. */
			snprintf(preload, sizeof(preload), "LD_PRELOAD=%s:%s",
			         rt, o->extra_env[i] + 11);
			envp[n_env++] = preload;
		} else {
			envp[n_env++] = o->extra_env[i];
		}
	}
	if (rt[0] != '\0' && preload[0] == '\0') {
		snprintf(preload, sizeof(preload), "LD_PRELOAD=%s", rt);
		envp[n_env++] = preload;
	}
	for (size_t i = 0; san[i] != NULL; i++)
		envp[n_env++] = san[i];
	envp[n_env] = NULL;
	memset(r, 0, sizeof(*r));
	tp_buf_append(&r->out, "", 0);
	tp_buf_append(&r->err, "", 0);
	cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(err, O_CLOEXEC), 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, err[1], 2);
	if (o->cwd != NULL)
		posix_spawn_file_actions_addchdir_np(&fa, o->cwd);
	posix_spawnattr_init(&attr);
	/* Own process group, so a timeout can take the whole tree down;
	 * default signal dispositions, whatever the runner set. */
	sigset_t all;
	sigfillset(&all);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setflags(&attr,
	                         POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF);
	rc = posix_spawn(&r->pid, argv[0], &fa, &attr, (char *const *)argv,
	                 (char *const *)envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(out[1]);
	close(err[1]);
	cr_assert_eq(rc, 0, "cannot start %s: %s", argv[0], strerror(rc));

	if (!tp_drain(out[0], err[0], r, deadline)) {
		r->timed_out = true;
		kill(-r->pid, SIGKILL);
		close(out[0]);
		close(err[0]);
	}
	while (waitpid(r->pid, &r->status, 0) < 0)
		cr_assert_eq(errno, EINTR, "waitpid: %s", strerror(errno));
}

/* The same command line behind the launcher: forkshim [opts...] -- argv. */
static inline void tp_launched(struct tp_run *r, const char *const opts[],
                               const char *const argv[],
                               const struct tp_opts *o)
{
	const char *full[TP_MAX_ARGS] = {TP_LAUNCHER};
	size_t n = 1;

	for (size_t i = 0; opts && opts[i]; i++)
		full[n++] = opts[i];
	full[n++] = "--";
	for (size_t i = 0; argv[i]; i++) {
		cr_assert_lt(n, TP_MAX_ARGS - 1, "too many arguments");
		full[n++] = argv[i];
	}
	full[n] = NULL;
	tp_run(r, full, o);
}

static inline void tp_run_free(struct tp_run *r)
{
	free(r->out.data);
	free(r->err.data);
	memset(r, 0, sizeof(*r));
}

/* True when the run ended by exit(code), not by a signal or a timeout. */
static inline bool tp_exited_with(const struct tp_run *r, int code)
{
	return !r->timed_out && WIFEXITED(r->status) &&
	       WEXITSTATUS(r->status) == code;
}

/* A readable account of a run, for failure messages. */
#define TP_RUN_FMT "status 0x%x%s\n--- stdout ---\n%s--- stderr ---\n%s"
#define TP_RUN_ARGS(r)                                                         \
	(unsigned)(r).status, (r).timed_out ? " (timed out, killed)" : "",     \
	    (r).out.data, (r).err.data

/* The comparison every transparency test makes: same exit status (or
 * signal), same stdout, same stderr, byte for byte. */
static inline void tp_expect_same(const struct tp_run *plain,
                                  const struct tp_run *shim)
{
	cr_expect(!shim->timed_out, "with the launcher: " TP_RUN_FMT,
	          TP_RUN_ARGS(*shim));
	cr_expect_eq(shim->status, plain->status,
	             "exit status 0x%x with the launcher, 0x%x without\n"
	             "with: " TP_RUN_FMT,
	             (unsigned)shim->status, (unsigned)plain->status,
	             TP_RUN_ARGS(*shim));
	cr_expect(shim->out.len == plain->out.len &&
	              memcmp(shim->out.data, plain->out.data, plain->out.len) ==
	                  0,
	          "stdout differs\n--- without ---\n%s--- with ---\n%s",
	          plain->out.data, shim->out.data);
	cr_expect(shim->err.len == plain->err.len &&
	              memcmp(shim->err.data, plain->err.data, plain->err.len) ==
	                  0,
	          "stderr differs\n--- without ---\n%s--- with ---\n%s",
	          plain->err.data, shim->err.data);
}

/* ---- temporary directories and files ---- */

/* Directories made by tp_mkdtemp and not removed yet: tp_cleanup, each
 * suite's .fini, removes them also after a failed assertion ended the
 * test early. */
static char *tp_dirs[16];

static inline char *tp_mkdtemp(void)
{
	char *dir = strdup("/tmp/forkshim-tp-XXXXXX");

	cr_assert_not_null(dir);
	cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
	for (size_t i = 0; i < sizeof(tp_dirs) / sizeof(tp_dirs[0]); i++)
		if (tp_dirs[i] == NULL) {
			tp_dirs[i] = dir;
			break;
		}
	return dir;
}

static inline int tp_rm_one(const char *path, const struct stat *st, int type,
                            struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

static inline void tp_rmtree(char *dir)
{
	if (dir == NULL)
		return;
	nftw(dir, tp_rm_one, 16, FTW_DEPTH | FTW_PHYS);
	for (size_t i = 0; i < sizeof(tp_dirs) / sizeof(tp_dirs[0]); i++)
		if (tp_dirs[i] == dir)
			tp_dirs[i] = NULL;
	free(dir);
}

__attribute__((unused)) static void tp_cleanup(void)
{
	for (size_t i = 0; i < sizeof(tp_dirs) / sizeof(tp_dirs[0]); i++)
		tp_rmtree(tp_dirs[i]);
}

static inline void tp_write_file(const char *path, const char *text,
                                 mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	size_t len = strlen(text);

	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	cr_assert_eq(write(fd, text, len), (ssize_t)len, "%s: %s", path,
	             strerror(errno));
	cr_assert_eq(close(fd), 0);
	cr_assert_eq(chmod(path, mode), 0); /* past the umask */
}

/* The whole file, NUL-terminated (malloc'd); *len its size. */
static inline char *tp_read_file(const char *path, size_t *len)
{
	struct tp_buf b = {0};
	char chunk[4096];
	ssize_t got;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	tp_buf_append(&b, "", 0);
	while ((got = read(fd, chunk, sizeof(chunk))) > 0)
		tp_buf_append(&b, chunk, (size_t)got);
	close(fd);
	if (len != NULL)
		*len = b.len;
	return b.data;
}

static inline char *tp_path(const char *dir, const char *name)
{
	char *p;

	cr_assert_geq(asprintf(&p, "%s/%s", dir, name), 0);
	return p;
}

/* Runs argv behind `forkshim --log info --log-file LOG`: the output must
 * be `plain`'s, and the library must have logged nothing (no error,
 * warning or notice for an ordinary program).  LOG is a fresh file in a
 * temporary directory. */
static inline void tp_expect_quiet_log(const char *const argv[],
                                       const struct tp_opts *o,
                                       const struct tp_run *plain)
{
	char *dir = tp_mkdtemp(), *log = tp_path(dir, "shim.log"), *text;
	const char *const opts[] = {"--log", "info", "--log-file", log, NULL};
	struct tp_run shim;
	size_t len;

	tp_launched(&shim, opts, argv, o);
	tp_expect_same(plain, &shim);
	text = tp_read_file(log, &len);
	cr_expect_eq(len, 0, "the library logged:\n%s", text);
	free(text);
	tp_run_free(&shim);
	free(log);
	tp_rmtree(dir);
}

#endif
