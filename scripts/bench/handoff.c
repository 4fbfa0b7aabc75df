/* handoff: forkshim's demo.  A parent fills a 256 MiB buffer and gives it
 * to 2 forked workers twice: once as a forkshim handle (8 bytes down a
 * pipe; the worker derefs it and reads the bytes it already shares with
 * the parent), once as the bytes themselves down a pipe.  Each worker
 * checksums the whole buffer; both ways must give the parent's checksum.
 *
 * Run it with the shim preloaded:
 *   LD_PRELOAD=/path/to/libforkshim.so handoff [MiB]
 * Without the shim it says so and only does the pipe copy. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "forkshim_client.h"

#ifndef FORKSHIM_BENCH_LIB
#define FORKSHIM_BENCH_LIB "libforkshim.so"
#endif

#define WORKERS 2
#define MIB (1UL << 20)
#define CHUNK MIB

struct result {       /* what a worker reports, times from CLOCK_MONOTONIC */
	double ready; /* it holds the whole buffer */
	double done;  /* and has checksummed it */
	uint64_t sum;
	int error; /* errno of what failed, 0 when all went well */
};

struct worker {
	pid_t pid;
	int to;   /* the parent writes the handle or the bytes here */
	int from; /* the worker answers here: one byte, then a result */
};

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "handoff: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* Fletcher-style, so that position matters, then mixed; fast enough to be
 * bound by memory. */
static uint64_t checksum(const void *p, size_t len)
{
	const uint64_t *w = p;
	uint64_t a = 0, b = 0;

	for (size_t i = 0; i < len / sizeof(*w); i++) {
		a += w[i];
		b += a;
	}
	a ^= b * 0x9e3779b97f4a7c15ULL;
	a = (a ^ (a >> 30)) * 0xbf58476d1ce4e5b9ULL;
	a = (a ^ (a >> 27)) * 0x94d049bb133111ebULL;
	return a ^ (a >> 31);
}

static int read_full(int fd, void *buf, size_t len)
{
	for (size_t got = 0; got < len;) {
		ssize_t n = read(fd, (char *)buf + got, len - got);

		if (n == 0)
			errno = EPIPE;
		if (n <= 0 && !(n < 0 && errno == EINTR))
			return -1;
		if (n > 0)
			got += (size_t)n;
	}
	return 0;
}

/* In a worker: gets the buffer as a handle (api != NULL) or as bytes. */
static void work(const struct forkshim_api *api, int in, int out, size_t size)
{
	struct result res = {0};
	const void *data = NULL;

	if (api == NULL) {
		data = mmap(NULL, size, PROT_READ | PROT_WRITE,
		            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (data == MAP_FAILED)
			_exit(1);
	}
	if (write(out, "w", 1) != 1) /* waiting */
		_exit(1);
	if (api) {
		forkshim_handle h;
		size_t len = 0;

		if (read_full(in, &h, sizeof(h)) != 0)
			res.error = errno;
		else if ((data = api->deref(h, &len)) == NULL)
			res.error = errno;
		else if (len != size)
			res.error = EMSGSIZE;
	} else if (read_full(in, (void *)data, size) != 0) {
		res.error = errno;
	}
	res.ready = now_ns();
	if (res.error == 0)
		res.sum = checksum(data, size);
	res.done = now_ns();
	_exit(write(out, &res, sizeof(res)) == sizeof(res) ? 0 : 1);
}

static void start_workers(struct worker *w, const struct forkshim_api *api,
                          size_t size)
{
	for (int i = 0; i < WORKERS; i++) {
		int to[2], from[2];
		char byte;

		if (pipe2(to, O_CLOEXEC) != 0 || pipe2(from, O_CLOEXEC) != 0)
			die("pipe");
		/* A larger pipe is what a serious copier would use. */
		fcntl(to[1], F_SETPIPE_SZ, (int)MIB);
		w[i].pid = fork();
		if (w[i].pid < 0)
			die("fork");
		if (w[i].pid == 0) {
			for (int j = 0; j < i; j++) {
				close(w[j].to);
				close(w[j].from);
			}
			close(to[1]);
			close(from[0]);
			work(api, to[0], from[1], size);
		}
		close(to[0]);
		close(from[1]);
		w[i].to = to[1];
		w[i].from = from[0];
		if (read_full(w[i].from, &byte, 1) != 0)
			die("worker start");
	}
}

/* The bytes of buf down every worker's pipe, in chunks, to whichever is
 * ready to take more, so the workers receive side by side. */
static void send_bytes(struct worker *w, const char *buf, size_t size)
{
	size_t sent[WORKERS] = {0};
	struct pollfd fds[WORKERS];
	int left = WORKERS;

	for (int i = 0; i < WORKERS; i++) {
		fcntl(w[i].to, F_SETFL, O_NONBLOCK);
		fds[i].fd = w[i].to;
		fds[i].events = POLLOUT;
	}
	while (left > 0) {
		if (poll(fds, WORKERS, -1) < 0 && errno != EINTR)
			die("poll");
		for (int i = 0; i < WORKERS; i++) {
			size_t n =
			    size - sent[i] < CHUNK ? size - sent[i] : CHUNK;
			ssize_t put;

			if (fds[i].fd < 0 || !(fds[i].revents & POLLOUT))
				continue;
			put = write(w[i].to, buf + sent[i], n);
			if (put < 0 && errno != EAGAIN && errno != EINTR)
				die("write to worker");
			if (put > 0)
				sent[i] += (size_t)put;
			if (sent[i] == size) {
				fds[i].fd = -1;
				left--;
			}
		}
	}
}

struct timing {
	double handoff, total; /* ns until the slower worker got there */
	int sums_match;
};

/* Gives buf to WORKERS fresh workers as the handle h (when api is set) or
 * as bytes, and waits for them. */
static struct timing hand_over(const struct forkshim_api *api,
                               forkshim_handle h, const char *buf, size_t size,
                               uint64_t expect)
{
	struct worker w[WORKERS];
	struct timing t = {0, 0, 1};
	double t0;

	start_workers(w, api, size);
	t0 = now_ns();
	if (api) {
		for (int i = 0; i < WORKERS; i++)
			if (write(w[i].to, &h, sizeof(h)) != sizeof(h))
				die("write to worker");
	} else {
		send_bytes(w, buf, size);
	}
	for (int i = 0; i < WORKERS; i++) {
		struct result res;
		int status;

		if (read_full(w[i].from, &res, sizeof(res)) != 0)
			die("worker result");
		if (waitpid(w[i].pid, &status, 0) != w[i].pid)
			die("waitpid");
		close(w[i].to);
		close(w[i].from);
		if (res.error) {
			errno = res.error;
			die(api ? "worker deref" : "worker read");
		}
		if (res.ready - t0 > t.handoff)
			t.handoff = res.ready - t0;
		if (res.done - t0 > t.total)
			t.total = res.done - t0;
		if (res.sum != expect)
			t.sums_match = 0;
	}
	return t;
}

int main(int argc, char **argv)
{
	const struct forkshim_api *api = forkshim_client_get();
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 256;
	size_t size = mib * MIB;
	struct timing shim = {0, 0, 1}, copy;
	forkshim_handle h = 0;
	uint64_t *buf, expect;

	if (argc > 2 || mib == 0) {
		fprintf(stderr, "usage: handoff [MiB, default 256]\n");
		return 2;
	}
	buf = mmap(NULL, size, PROT_READ | PROT_WRITE,
	           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		die("mmap");
	for (size_t i = 0; i < size / sizeof(*buf); i++)
		buf[i] = i * 0x2545f4914f6cdd1dULL;
	expect = checksum(buf, size);

	printf("forkshim hand-off demo: %d workers each get the same %zu MiB "
	       "buffer\n",
	       WORKERS, mib);
	if (api) {
		printf("  shim %s loaded\n\n", api->version());
		h = api->freeze(buf, size, "handoff.buffer", 0);
		if (h == 0)
			die("forkshim_freeze");
		shim = hand_over(api, h, NULL, size, expect);
		if (api->thaw(h) != 0)
			die("forkshim_thaw");
	} else {
		printf(
		    "  forkshim is NOT loaded: only the pipe copy is measured."
		    " To see the hand-off:\n"
		    "    LD_PRELOAD=%s %s\n\n",
		    FORKSHIM_BENCH_LIB, argv[0]);
	}
	copy = hand_over(NULL, 0, (const char *)buf, size, expect);

	printf("                    hand-off    total (with checksum)\n");
	if (api)
		printf("  forkshim handle %9.2f ms %9.2f ms\n",
		       shim.handoff / 1e6, shim.total / 1e6);
	printf("  pipe copy       %9.2f ms %9.2f ms\n", copy.handoff / 1e6,
	       copy.total / 1e6);
	if (api)
		printf("  pipe / handle   %9.0fx   %9.1fx\n",
		       copy.handoff / shim.handoff, copy.total / shim.total);
	printf("  (until the slower of the %d workers got there)\n", WORKERS);
	if (shim.sums_match && copy.sums_match) {
		printf("  checksums: all %d workers match the parent "
		       "(%016" PRIx64 ")\n",
		       api ? 2 * WORKERS : WORKERS, expect);
		return 0;
	}
	printf("  checksums: MISMATCH (%s)\n",
	       !shim.sums_match ? "forkshim handle" : "pipe copy");
	return 1;
}
