/* run_host.c: the one runner of hosts under test (see run_host.h).
 *
 * Built once per build directory with the shim's path and the sanitizer
 * settings compiled in (tests/CMakeLists.txt): FORKSHIM_LIB, the shim as
 * built; FORKSHIM_SANITIZER_RT, the sanitizer runtime ("" in a plain
 * build); FORKSHIM_SAN_ENV0 to FORKSHIM_SAN_ENV3, the options a host gets
 * in a sanitizer build (VAR=value each). */
#include "run_host.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef FORKSHIM_LIB
#error "FORKSHIM_LIB: the shim as built (tests/CMakeLists.txt)"
#endif
#ifndef FORKSHIM_SANITIZER_RT
#error "FORKSHIM_SANITIZER_RT: the sanitizer runtime, or \"\""
#endif

static const char *const sanitizer_options[] = {
#ifdef FORKSHIM_SAN_ENV0
    FORKSHIM_SAN_ENV0,
#endif
#ifdef FORKSHIM_SAN_ENV1
    FORKSHIM_SAN_ENV1,
#endif
#ifdef FORKSHIM_SAN_ENV2
    FORKSHIM_SAN_ENV2,
#endif
#ifdef FORKSHIM_SAN_ENV3
    FORKSHIM_SAN_ENV3,
#endif
#ifdef FORKSHIM_SAN_ENV4
#error "more than 4 FORKSHIM_SANITIZER_OPTIONS: add them here"
#endif
    NULL};

/* ---- environments ---- */

static void env_push(struct host_env *e, const char *text, size_t len)
{
	if (e->n >= HOST_ENV_MAX || len + 1 > sizeof(e->text) - e->used) {
		fprintf(stderr, "run_host: environment full at %.*s\n",
		        (int)len, text);
		abort();
	}
	memcpy(e->text + e->used, text, len);
	e->text[e->used + len] = '\0';
	e->vars[e->n++] = e->text + e->used;
	e->vars[e->n] = NULL;
	e->used += len + 1;
}

static bool has_preload(const struct host_env *e)
{
	for (size_t i = 0; i < e->n; i++)
		if (strncmp(e->vars[i], "LD_PRELOAD=", 11) == 0)
			return true;
	return false;
}

void host_env_add(struct host_env *e, const char *fmt, ...)
{
	const char *rt = FORKSHIM_SANITIZER_RT;
	char var[HOST_ENV_TEXT];
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(var, sizeof(var), fmt, ap);
	va_end(ap);
	if (len < 0 || (size_t)len >= sizeof(var))
		len = sizeof(var); /* env_push reports it */
	if (rt[0] != '\0' && strncmp(var, "LD_PRELOAD=", 11) == 0) {
		/* A sanitizer build: its runtime stays first. */
		char with_rt[HOST_ENV_TEXT];
		int n = snprintf(with_rt, sizeof(with_rt), "LD_PRELOAD=%s:%s",
		                 rt, var + 11);

		if (n < 0 || (size_t)n >= sizeof(with_rt))
			n = sizeof(with_rt);
		env_push(e, with_rt, (size_t)n);
		return;
	}
	env_push(e, var, (size_t)len);
}

const char *const *host_env_plain(struct host_env *e)
{
	e->n = 0;
	e->used = 0;
	e->vars[0] = NULL;
	host_env_add(e, "PATH=/usr/local/bin:/usr/bin:/bin");
	host_env_add(e, "LC_ALL=C");
	return e->vars;
}

const char *const *host_env_shim(struct host_env *e)
{
	host_env_plain(e);
	host_env_add(e, "LD_PRELOAD=%s", FORKSHIM_LIB);
	host_env_sanitizer(e);
	return e->vars;
}

void host_env_sanitizer(struct host_env *e)
{
	for (size_t i = 0; sanitizer_options[i] != NULL; i++)
		host_env_add(e, "%s", sanitizer_options[i]);
}

void host_env_runtime(struct host_env *e)
{
	const char *rt = FORKSHIM_SANITIZER_RT;
	char var[HOST_ENV_TEXT];
	int n;

	if (rt[0] == '\0' || has_preload(e))
		return;
	n = snprintf(var, sizeof(var), "LD_PRELOAD=%s", rt);
	env_push(e, var,
	         n < 0 || (size_t)n >= sizeof(var) ? sizeof(var) : (size_t)n);
}

/* ---- runs ---- */

/* Grows by doubling: a host's 50 MB of output in 4 KiB reads is linear,
 * also under ASan, whose realloc copies and poisons every time. */
int host_buf_append(struct host_buf *b, const char *src, size_t n)
{
	if (b->data == NULL || b->len + n + 1 > b->cap) {
		size_t cap = b->cap > 4096 ? b->cap : 4096;
		char *grown;

		while (cap < b->len + n + 1)
			cap *= 2;
		grown = realloc(b->data, cap);
		if (grown == NULL)
			return -1;
		b->data = grown;
		b->cap = cap;
	}
	memcpy(b->data + b->len, src, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

double host_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(struct host_run *r, const char *what, int err)
{
	snprintf(r->error, sizeof(r->error), "run_host: %s: %s", what,
	         strerror(err));
	return -1;
}

int host_drain(int out_fd, int err_fd, struct host_run *r, double deadline)
{
	struct pollfd fds[2] = {{.fd = out_fd, .events = POLLIN},
	                        {.fd = err_fd, .events = POLLIN}};
	struct host_buf *dst[2] = {&r->out, &r->err};
	char chunk[4096];
	int done = 1;

	while (done > 0 && (fds[0].fd >= 0 || fds[1].fd >= 0)) {
		double left = deadline - host_now();
		int n;

		if (left <= 0) {
			done = 0;
			break;
		}
		n = poll(fds, 2, (int)(left * 1000) + 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			done = fail(r, "poll", errno);
			break;
		}
		for (int i = 0; i < 2; i++) {
			ssize_t got;

			if (fds[i].fd < 0 || fds[i].revents == 0)
				continue;
			got = read(fds[i].fd, chunk, sizeof(chunk));
			if (got > 0) {
				if (host_buf_append(dst[i], chunk,
				                    (size_t)got) != 0)
					done = fail(r, "collecting output",
					            ENOMEM);
			} else if (got == 0 || errno != EINTR) {
				close(fds[i].fd);
				fds[i].fd = -1;
			}
		}
	}
	for (int i = 0; i < 2; i++)
		if (fds[i].fd >= 0)
			close(fds[i].fd);
	return done;
}

#ifdef __SANITIZE_ADDRESS__
/* ASan's warning about a noreturn call on a stack it does not know: three
 * lines on stderr, not the program's. */
static void drop_asan_stack_warnings(struct host_buf *b)
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
#endif

static int spawn(struct host_run *r, const char *const argv[],
                 const struct host_opts *o, int out, int err)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t all;
	int rc;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, out, 1);
	posix_spawn_file_actions_adddup2(&fa, err, 2);
	if (o->cwd != NULL)
		posix_spawn_file_actions_addchdir_np(&fa, o->cwd);
	posix_spawnattr_init(&attr);
	/* Own process group, so a timeout can take the whole tree down;
	 * default signal dispositions, whatever the driver set. */
	sigfillset(&all);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setflags(&attr,
	                         POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF);
	rc = posix_spawn(&r->pid, argv[0], &fa, &attr, (char *const *)argv,
	                 (char *const *)o->envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	return rc;
}

int host_run(struct host_run *r, const char *const argv[],
             const struct host_opts *o)
{
	double deadline = host_now() + (o->timeout_s ? o->timeout_s : 30);
	int out[2], err[2];
	int rc, drained;

	memset(r, 0, sizeof(*r));
	if (o->envp == NULL) {
		snprintf(r->error, sizeof(r->error),
		         "run_host: no environment given (host_env_*)");
		return -1;
	}
	if (host_buf_append(&r->out, "", 0) != 0 ||
	    host_buf_append(&r->err, "", 0) != 0)
		return fail(r, "collecting output", ENOMEM);
	if (pipe2(out, O_CLOEXEC) != 0)
		return fail(r, "pipe", errno);
	if (pipe2(err, O_CLOEXEC) != 0) {
		rc = errno;
		close(out[0]);
		close(out[1]);
		return fail(r, "pipe", rc);
	}
	rc = spawn(r, argv, o, out[1], err[1]);
	close(out[1]);
	close(err[1]);
	if (rc != 0) {
		close(out[0]);
		close(err[0]);
		snprintf(r->error, sizeof(r->error),
		         "run_host: cannot start %s: %s", argv[0],
		         strerror(rc));
		return -1;
	}

	drained = host_drain(out[0], err[0], r, deadline);
	if (drained <= 0) {
		r->timed_out = drained == 0;
		kill(-r->pid, SIGKILL);
	}
	while (waitpid(r->pid, &r->status, 0) < 0)
		if (errno != EINTR)
			return fail(r, "waitpid", errno);
	if (drained < 0)
		return -1;
#ifdef __SANITIZE_ADDRESS__
	if (!o->keep_asan_warnings)
		drop_asan_stack_warnings(&r->err);
#endif
	return 0;
}

void host_run_free(struct host_run *r)
{
	free(r->out.data);
	free(r->err.data);
	memset(r, 0, sizeof(*r));
}

bool host_exited_with(const struct host_run *r, int code)
{
	return !r->timed_out && WIFEXITED(r->status) &&
	       WEXITSTATUS(r->status) == code;
}

bool host_died_of(const struct host_run *r, int sig)
{
	return !r->timed_out && WIFSIGNALED(r->status) &&
	       WTERMSIG(r->status) == sig;
}

/* ---- what a host leaves behind ---- */

char *host_read_file(const char *path, size_t *len)
{
	struct host_buf b = {0};
	char chunk[4096];
	ssize_t got;
	int fd = open(path, O_RDONLY | O_CLOEXEC), err;

	if (fd < 0)
		return NULL;
	if (host_buf_append(&b, "", 0) != 0)
		goto nomem;
	while ((got = read(fd, chunk, sizeof(chunk))) != 0) {
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			goto fail;
		if (host_buf_append(&b, chunk, (size_t)got) != 0)
			goto nomem;
	}
	close(fd);
	if (len != NULL)
		*len = b.len;
	return b.data;
nomem:
	errno = ENOMEM;
fail:
	err = errno;
	close(fd);
	free(b.data);
	errno = err;
	return NULL;
}

static int rm_one(const char *path, const struct stat *st, int type,
                  struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	remove(path);
	return 0;
}

void host_rmtree(const char *dir)
{
	if (dir != NULL)
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
