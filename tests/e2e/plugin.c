/* plugin.c: a plugin that hands a buffer to a forked worker.
 *
 * Built as a MODULE that never links against libforkshim: it reaches the
 * shim only through forkshim_client_get() (dlsym of "forkshim_api" in the
 * global scope), so it works exactly when the host was started with the
 * shim preloaded.  With the shim, the worker gets an 8-byte handle over a
 * pipe and derefs it; without, the plugin falls back to sending the bytes.
 * Every line it prints is part of what the e2e_plugin driver checks. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "forkshim_client.h"
#include "io.h"

#define BUFFER_LEN (256u * 1024u + 123u) /* bigger than a pipe's capacity */

static unsigned char pattern_byte(size_t i)
{
	return (unsigned char)(i * 131u + 7u + (i >> 9));
}

static void fill_pattern(unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = pattern_byte(i);
}

/* Index of the first byte that breaks the pattern, or n. */
static size_t pattern_mismatch(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != pattern_byte(i))
			return i;
	return n;
}

/* Worker side of the handle path: exit status 0 when the handle resolves to
 * the parent's buffer, its length and its bytes. */
static int worker_deref(const struct forkshim_api *api, int fd,
                        const void *expect)
{
	forkshim_handle h;
	const unsigned char *p;
	size_t len = 0, bad;

	if (read_all(fd, &h, sizeof(h)) != 0) {
		fprintf(stderr, "worker: no handle on the pipe\n");
		return 1;
	}
	p = api->deref(h, &len);
	if (p == NULL) {
		fprintf(stderr, "worker: deref failed: %s\n", strerror(errno));
		return 1;
	}
	if ((const void *)p != expect || len != BUFFER_LEN) {
		fprintf(stderr, "worker: deref gave %p+%zu, want %p+%u\n",
		        (const void *)p, len, expect, BUFFER_LEN);
		return 1;
	}
	bad = pattern_mismatch(p, len);
	if (bad != len) {
		fprintf(stderr, "worker: byte %zu differs\n", bad);
		return 1;
	}
	return 0;
}

/* Worker side of the fallback: the bytes themselves come over the pipe. */
static int worker_receive(int fd)
{
	unsigned char *copy;
	size_t len, bad;

	if (read_all(fd, &len, sizeof(len)) != 0 || len != BUFFER_LEN) {
		fprintf(stderr, "worker: bad length on the pipe\n");
		return 1;
	}
	copy = malloc(len);
	if (copy == NULL || read_all(fd, copy, len) != 0) {
		fprintf(stderr, "worker: short read on the pipe\n");
		return 1;
	}
	bad = pattern_mismatch(copy, len);
	if (bad != len) {
		fprintf(stderr, "worker: byte %zu differs\n", bad);
		return 1;
	}
	free(copy);
	return 0;
}

/* Reaps the worker and reports it; 0 when it exited 0. */
static int report_worker(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			printf("worker: waitpid failed: %s\n", strerror(errno));
			return 1;
		}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		printf("worker: ok\n");
		return 0;
	}
	printf("worker: failed (status 0x%x)\n", (unsigned)status);
	return 1;
}

static int share_by_handle(const struct forkshim_api *api,
                           const unsigned char *buf)
{
	forkshim_handle h;
	int fds[2], failed = 0, vis;
	size_t len;
	pid_t pid;

	printf("path: handle\n");
	h = api->freeze(buf, BUFFER_LEN, "e2e-plugin", 0);
	if (h == 0) {
		printf("freeze: failed: %s\n", strerror(errno));
		return 1;
	}
	if (pipe(fds) != 0)
		return 1;
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		close(fds[1]);
		_exit(worker_deref(api, fds[0], buf));
	}
	close(fds[0]);
	/* A worker that has not exited yet, or a zombie: both are live. */
	vis = api->visible(h, pid);
	printf("visible to worker: %d\n", vis);
	failed |= vis != 1;
	failed |= write_all(fds[1], &h, sizeof(h)) != 0;
	close(fds[1]);
	failed |= report_worker(pid);

	failed |= api->thaw(h) != 0;
	errno = 0;
	if (api->deref(h, &len) == NULL && errno == ESTALE) {
		printf("after thaw: ESTALE\n");
	} else {
		printf("after thaw: handle still resolves\n");
		failed = 1;
	}
	return failed;
}

static int share_by_pipe(const unsigned char *buf)
{
	size_t len = BUFFER_LEN;
	int fds[2], failed = 0;
	pid_t pid;

	printf("path: pipe\n");
	if (pipe(fds) != 0)
		return 1;
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		close(fds[1]);
		_exit(worker_receive(fds[0]));
	}
	close(fds[0]);
	failed |= write_all(fds[1], &len, sizeof(len)) != 0;
	failed |= write_all(fds[1], buf, len) != 0;
	close(fds[1]);
	failed |= report_worker(pid);
	return failed;
}

/* The plugin's one entry point: 0 when the worker saw the right bytes. */
__attribute__((visibility("default"))) int forkshim_e2e_plugin_run(void)
{
	const struct forkshim_api *api = forkshim_client_get();
	unsigned char *buf = malloc(BUFFER_LEN);
	int failed;

	if (buf == NULL)
		return 1;
	fill_pattern(buf, BUFFER_LEN);
	if (api != NULL) {
		printf("forkshim: present %s\n", api->version());
		failed = share_by_handle(api, buf);
	} else {
		printf("forkshim: absent\n");
		failed = share_by_pipe(buf);
	}
	free(buf);
	fflush(stdout);
	return failed ? 1 : 0;
}
