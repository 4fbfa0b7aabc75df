/* run_host.h: start a host program as a real process, with the shim
 * preloaded or not, and keep everything it did.  The one runner of the
 * test drivers (tests/e2e, tests/guard, tests/report, tests/stress,
 * tests/transparency) and of the guard benchmark (scripts/bench/guard);
 * run_host.c, the static library forkshim_run_host.
 *
 * A host never inherits its driver's environment: it gets an explicit envp,
 * built with host_env_* (a fixed PATH and locale, the shim in LD_PRELOAD if
 * asked, what the test adds), /dev/null as stdin, default signal
 * dispositions and a process group of its own.  host_run() reads stdout
 * and stderr to EOF (so output of a daemonised grandchild still holding
 * them counts), then reaps the host.  A run not finished after its timeout
 * is killed with its whole process group and reported as timed out: a hang
 * is a failure, never a stuck test.
 *
 * Sanitizer builds (tests/sanitize.sh): ASan must be the first library of
 * every process it is in, so an LD_PRELOAD given to host_env_add gets the
 * sanitizer runtime (FORKSHIM_SANITIZER_RT, tests/CMakeLists.txt) in front,
 * and host_env_sanitizer adds the options such a host gets (python3 and the
 * other hosts we did not build leak by design).  In a plain build both add
 * nothing.
 *
 * No Criterion here (the benchmark links it too): host_run() reports what
 * went wrong in r->error; HOST_RUN() is the call of a Criterion driver,
 * failing the test with that message. */
#ifndef FORKSHIM_TESTS_RUN_HOST_H
#define FORKSHIM_TESTS_RUN_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* ---- environments ---- */

#define HOST_ENV_MAX 24
#define HOST_ENV_TEXT 8192

/* An envp under construction: vars is NULL-terminated at every step.  It
 * holds its own copies of the strings added.  Running out of room is a
 * mistake in a test: host_env_add says so on stderr and aborts. */
struct host_env {
	const char *vars[HOST_ENV_MAX + 1];
	size_t n;
	char text[HOST_ENV_TEXT];
	size_t used;
};

/* PATH=/usr/local/bin:/usr/bin:/bin and LC_ALL=C only: the same meaning on
 * every machine.  Returns e->vars. */
const char *const *host_env_plain(struct host_env *e);

/* host_env_plain, then LD_PRELOAD of the shim as built (the sanitizer
 * runtime first) and host_env_sanitizer.  Returns e->vars. */
const char *const *host_env_shim(struct host_env *e);

/* Adds one VAR=value, formatted as printf does.  LD_PRELOAD=x becomes
 * LD_PRELOAD=RT:x in a sanitizer build. */
void host_env_add(struct host_env *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The sanitizer options of a host (nothing in a plain build). */
void host_env_sanitizer(struct host_env *e);

/* In a sanitizer build without an LD_PRELOAD yet: LD_PRELOAD=RT, so that a
 * launcher adding the shim keeps the runtime first. */
void host_env_runtime(struct host_env *e);

/* ---- runs ---- */

struct host_buf {
	char *data; /* NUL-terminated */
	size_t len;
	size_t cap; /* bytes allocated at data (0: none yet) */
};

struct host_run {
	pid_t pid;
	int status; /* as from waitpid */
	bool timed_out;
	struct host_buf out;
	struct host_buf err;
	char error[256]; /* why host_run returned -1 */
};

struct host_opts {
	const char *const *envp; /* the whole environment: host_env_* */
	const char *cwd;         /* NULL: the caller's */
	int timeout_s;           /* 0: 30 */
	/* In an ASan build the three lines of ASan's warning about a noreturn
	 * call on a stack it does not know (a clone() child's, say) are taken
	 * out of stderr: they are not the program's.  true keeps them (the
	 * transparency drivers compare stderr byte for byte). */
	bool keep_asan_warnings;
};

/* Runs argv[0] (a path: no PATH search) with o.  0 with *r filled (free it
 * with host_run_free), or -1 with r->error saying why: a pipe, the spawn,
 * memory or the wait failed (the host, if started, is killed and reaped). */
int host_run(struct host_run *r, const char *const argv[],
             const struct host_opts *o);
void host_run_free(struct host_run *r);

/* True when the run ended by exit(code), not by a signal or a timeout. */
bool host_exited_with(const struct host_run *r, int code);
/* True when the run ended by signal sig, not by a timeout. */
bool host_died_of(const struct host_run *r, int sig);

/* Reads two pipes (a host's stdout and stderr) into r->out and r->err to
 * EOF: 1, 0 when the deadline (host_now() seconds) passed first, -1 with
 * r->error on a failure.  Both are closed on return.  For drivers that
 * start a host themselves to talk to it on its stdin (tests/hostile). */
int host_drain(int out_fd, int err_fd, struct host_run *r, double deadline);

/* Seconds on the monotonic clock. */
double host_now(void);

/* Appends n bytes to b (kept NUL-terminated); -1 when out of memory. */
int host_buf_append(struct host_buf *b, const char *src, size_t n);

/* ---- what a host leaves behind ---- */

/* The whole file, NUL-terminated (malloc), its size in *len (len may be
 * NULL); NULL with errno set when it cannot be read. */
char *host_read_file(const char *path, size_t *len);

/* Removes dir and everything below it, following no link: a test's
 * clean-up, quiet about what is not there. */
void host_rmtree(const char *dir);

/* A readable account of a run, for failure messages. */
#define HOST_RUN_FMT "status 0x%x%s\n--- stdout ---\n%s--- stderr ---\n%s"
#define HOST_RUN_ARGS(r)                                                       \
	(unsigned)(r).status, (r).timed_out ? " (timed out, killed)" : "",     \
	    (r).out.data, (r).err.data

/* In a Criterion driver: host_run, or the test fails with the reason.
 *   HOST_RUN(&r, argv, .envp = host_env_shim(&e), .timeout_s = 30); */
#define HOST_RUN(r, argv, ...)                                                 \
	cr_assert_eq(                                                          \
	    host_run((r), (argv), &(const struct host_opts){__VA_ARGS__}), 0,  \
	    "%s", (r)->error)

#endif
