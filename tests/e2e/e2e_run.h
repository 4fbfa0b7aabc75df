/* e2e_run.h: start a host program as a real process and collect what it did.
 *
 * The end-to-end drivers never let a host inherit their own environment:
 * each run gets an explicit envp, with or without LD_PRELOAD of the shim.
 * e2e_run() captures stdout and stderr completely (until EOF on both, so
 * output of a daemonised grandchild still holding them is included), then
 * reaps the host.  A run that has not finished after timeout_s seconds is
 * killed with its process group and reported as timed_out: a hang is a
 * failure, never a stuck test.  Header-only, one copy per driver. */
#ifndef E2E_RUN_H
#define E2E_RUN_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "preload.h"

#define E2E_PATH "PATH=/usr/local/bin:/usr/bin:/bin"

/* Environments: fixed, so a test means the same thing on every machine. */
__attribute__((unused)) static const char *const e2e_env_shim[] = {
    FORKSHIM_PRELOAD_VAR, E2E_PATH, "LC_ALL=C", SANITIZER_ENV NULL};
__attribute__((unused)) static const char *const e2e_env_plain[] = {
    E2E_PATH, "LC_ALL=C", NULL};

struct e2e_buf {
	char *data; /* NUL-terminated */
	size_t len;
};

struct e2e_run {
	int status; /* as from waitpid */
	bool timed_out;
	struct e2e_buf out;
	struct e2e_buf err;
};

static inline void e2e_buf_append(struct e2e_buf *b, const char *src, size_t n)
{
	char *grown = realloc(b->data, b->len + n + 1);

	cr_assert_not_null(grown, "out of memory collecting output");
	memcpy(grown + b->len, src, n);
	b->len += n;
	grown[b->len] = '\0';
	b->data = grown;
}

static inline double e2e_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Reads both pipes to EOF; false when the deadline passed first. */
static inline bool e2e_drain(int out_fd, int err_fd, struct e2e_run *r,
                             double deadline)
{
	struct pollfd fds[2] = {{.fd = out_fd, .events = POLLIN},
	                        {.fd = err_fd, .events = POLLIN}};
	struct e2e_buf *dst[2] = {&r->out, &r->err};
	char chunk[4096];

	while (fds[0].fd >= 0 || fds[1].fd >= 0) {
		double left = deadline - e2e_now();
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
				e2e_buf_append(dst[i], chunk, (size_t)got);
			} else if (got == 0 || errno != EINTR) {
				close(fds[i].fd);
				fds[i].fd = -1;
			}
		}
	}
	return true;
}

/* ASan's warning about a noreturn call on a stack it does not know (a
 * clone() child's, say): three lines on stderr, not the program's. */
static inline void e2e_drop_asan_stack_warnings(struct e2e_buf *b)
{
	static const char *const lines[] = {
	    "WARNING: ASan is ignoring requested __asan_handle_no_return",
	    "False positive error reports may follow",
	    "For details see https://github.com/google/sanitizers/issues/189"};
	size_t out = 0;

	for (size_t at = 0; at < b->len;) {
		const char *nl = memchr(b->data + at, '\n', b->len - at);
		size_t len =
		    nl ? (size_t)(nl - (b->data + at)) + 1 : b->len - at;
		bool drop = false;

		for (size_t i = 0; i < 3 && !drop; i++)
			drop = memmem(b->data + at, len, lines[i],
			              strlen(lines[i])) != NULL;
		if (!drop) {
			memmove(b->data + out, b->data + at, len);
			out += len;
		}
		at += len;
	}
	b->len = out;
	b->data[out] = '\0';
}

static inline void e2e_run(struct e2e_run *r, const char *const argv[],
                           const char *const envp[], int timeout_s)
{
	double deadline = e2e_now() + timeout_s;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int out[2], err[2];
	pid_t pid;
	int rc;

	memset(r, 0, sizeof(*r));
	e2e_buf_append(&r->out, "", 0);
	e2e_buf_append(&r->err, "", 0);
	cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(err, O_CLOEXEC), 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, err[1], 2);
	posix_spawnattr_init(&attr);
	/* Own process group, so a timeout can take the whole tree down. */
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
	rc = posix_spawn(&pid, argv[0], &fa, &attr, (char *const *)argv,
	                 (char *const *)envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(out[1]);
	close(err[1]);
	cr_assert_eq(rc, 0, "cannot start %s: %s", argv[0], strerror(rc));

	if (!e2e_drain(out[0], err[0], r, deadline)) {
		r->timed_out = true;
		kill(-pid, SIGKILL);
		close(out[0]);
		close(err[0]);
	}
	while (waitpid(pid, &r->status, 0) < 0)
		cr_assert_eq(errno, EINTR, "waitpid: %s", strerror(errno));
#ifdef __SANITIZE_ADDRESS__
	e2e_drop_asan_stack_warnings(&r->err);
#endif
}

static inline void e2e_run_free(struct e2e_run *r)
{
	free(r->out.data);
	free(r->err.data);
	memset(r, 0, sizeof(*r));
}

/* True when the run ended by exit(code), not by a signal or a timeout. */
static inline bool e2e_exited_with(const struct e2e_run *r, int code)
{
	return !r->timed_out && WIFEXITED(r->status) &&
	       WEXITSTATUS(r->status) == code;
}

/* A readable account of a run, for failure messages. */
#define E2E_RUN_FMT "status 0x%x%s\n--- stdout ---\n%s--- stderr ---\n%s"
#define E2E_RUN_ARGS(r)                                                        \
	(unsigned)(r).status, (r).timed_out ? " (timed out, killed)" : "",     \
	    (r).out.data, (r).err.data

#endif
