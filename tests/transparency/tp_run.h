/* tp_run.h: run a real program, with or without the forkshim launcher, and
 * keep everything it did (tests/run_host.h).
 *
 * A run never inherits the driver's environment: it gets the fixed PATH and
 * locale of host_env_plain plus what the test adds (an LD_PRELOAD of its
 * own gets the sanitizer runtime first in a sanitizer build, and without
 * one the runtime alone, for the launcher to keep first), and stderr is
 * compared byte for byte, ASan's lines included.  tp_launched() is the
 * same command line behind `forkshim --`.  Header-only, one copy per
 * driver. */
#ifndef TP_RUN_H
#define TP_RUN_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "run_host.h"

#define TP_MAX_ARGS 64
#define TP_MAX_ENV 16

/* What a run gets: the fixed environment plus `extra` (NULL-terminated,
 * may be NULL), the working directory (NULL: the driver's), a timeout. */
struct tp_opts {
	const char *const *extra_env;
	const char *cwd;
	int timeout_s;
};

static inline void tp_run(struct host_run *r, const char *const argv[],
                          const struct tp_opts *o)
{
	struct host_env e;

	host_env_plain(&e);
	for (size_t i = 0; o->extra_env && o->extra_env[i]; i++) {
		cr_assert_lt(i, TP_MAX_ENV, "too many variables");
		host_env_add(&e, "%s", o->extra_env[i]);
	}
	host_env_runtime(&e);
	host_env_sanitizer(&e);
	HOST_RUN(r, argv, .envp = e.vars, .cwd = o->cwd,
	         .timeout_s = o->timeout_s, .keep_asan_warnings = true);
}

/* The same command line behind the launcher: forkshim [opts...] -- argv. */
static inline void tp_launched(struct host_run *r, const char *const opts[],
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

/* The run with the launcher finished, with the same exit status (or
 * signal) as without. */
static inline void tp_expect_same_status(const struct host_run *plain,
                                         const struct host_run *shim)
{
	cr_expect(!shim->timed_out, "with the launcher: " HOST_RUN_FMT,
	          HOST_RUN_ARGS(*shim));
	cr_expect_eq(shim->status, plain->status,
	             "exit status 0x%x with the launcher, 0x%x without\n"
	             "with: " HOST_RUN_FMT,
	             (unsigned)shim->status, (unsigned)plain->status,
	             HOST_RUN_ARGS(*shim));
}

/* The comparison every transparency test makes: same exit status (or
 * signal), same stdout, same stderr, byte for byte. */
static inline void tp_expect_same(const struct host_run *plain,
                                  const struct host_run *shim)
{
	tp_expect_same_status(plain, shim);
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

static inline void tp_rmtree(char *dir)
{
	if (dir == NULL)
		return;
	host_rmtree(dir);
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
	char *text = host_read_file(path, len);

	cr_assert_not_null(text, "%s: %s", path, strerror(errno));
	return text;
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
                                       const struct host_run *plain)
{
	char *dir = tp_mkdtemp(), *log = tp_path(dir, "shim.log"), *text;
	const char *const opts[] = {"--log", "info", "--log-file", log, NULL};
	struct host_run shim;
	size_t len;

	tp_launched(&shim, opts, argv, o);
	tp_expect_same(plain, &shim);
	text = tp_read_file(log, &len);
	cr_expect_eq(len, 0, "the library logged:\n%s", text);
	free(text);
	host_run_free(&shim);
	free(log);
	tp_rmtree(dir);
}

#endif
