/* pyframes: a CPython thread's stack from a signal handler (contract in
 * pyframes.h).  Called by the guard (init) and its fault handler
 * (from_signal); calls owned only. */
#include "pyframes.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "owned.h"

/* The dump's first frames: 8 lines of at most ~1 KiB (CPython cuts each
 * string at 500 characters) fit; the rest of it is drained unread. */
#define READ_BYTES 4096
#define SPINS 2000

typedef void (*dump_fn)(int fd, void *tstate);
typedef void *(*tstate_fn)(void);
typedef int (*initialized_fn)(void);

static dump_fn dump;
static tstate_fn this_tstate;
static initialized_fn initialized;
static struct owned rd = OWNED_NONE, wr = OWNED_NONE;
static pid_t owner; /* the process the pipe is of */
static int busy;

static int make_pipe(void)
{
	int fds[2];

	rd.fd = -1;
	wr.fd = -1;
	if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0)
		return -1;
	if (owned_adopt(&rd, fds[0]) != 0) {
		close(fds[1]);
		return -1;
	}
	if (owned_adopt(&wr, fds[1]) != 0) {
		close(rd.fd);
		rd.fd = -1;
		return -1;
	}
	__atomic_store_n(&owner, (pid_t)syscall(SYS_getpid), __ATOMIC_RELEASE);
	return 0;
}

/* The parent's pipe is the parent's: a child dumping into it would mix
 * its stack with the parent's. */
static void child(void)
{
	__atomic_store_n(&owner, 0, __ATOMIC_RELEASE);
	busy = 0; /* a thread the child does not have may have held it */
	if (owned_still(&rd))
		close(rd.fd);
	if (owned_still(&wr))
		close(wr.fd);
	make_pipe();
}

void pyframes_init(void)
{
	static int done;

	if (done)
		return;
	done = 1;
	*(void **)&dump = dlsym(RTLD_DEFAULT, "_Py_DumpTraceback");
	*(void **)&this_tstate =
	    dlsym(RTLD_DEFAULT, "PyGILState_GetThisThreadState");
	*(void **)&initialized = dlsym(RTLD_DEFAULT, "Py_IsInitialized");
	if (dump == NULL || this_tstate == NULL || initialized == NULL) {
		dump = NULL;
		return; /* not CPython: nothing made */
	}
	make_pipe();
	pthread_atfork(NULL, NULL, child);
}

/* ---- parsing "  File \"PATH\", line N in FUNC" ---- */

static void copy_span(char *dst, size_t size, const char *s, const char *e)
{
	size_t n = (size_t)(e - s) < size - 1 ? (size_t)(e - s) : size - 1;

	memcpy(dst, s, n);
	dst[n] = '\0';
}

/* The last occurrence of needle in [s, e), or NULL. */
static const char *last_in(const char *s, const char *e, const char *needle)
{
	size_t n = strlen(needle);
	const char *hit = NULL;

	for (const char *p = s; p + n <= e; p++)
		if (memcmp(p, needle, n) == 0)
			hit = p;
	return hit;
}

static int parse_line(const char *s, const char *e, struct pyframe *f)
{
	static const char head[] = "  File ";
	const char *at, *in, *p;

	if ((size_t)(e - s) < sizeof(head) ||
	    memcmp(s, head, sizeof(head) - 1) != 0)
		return 0;
	s += sizeof(head) - 1;
	/* The path may hold anything but a newline: the last ", line "
	 * ends it. */
	at = last_in(s, e, ", line ");
	if (at == NULL)
		return 0;
	if (*s == '"' && at > s && at[-1] == '"')
		copy_span(f->file, sizeof(f->file), s + 1, at - 1);
	else
		copy_span(f->file, sizeof(f->file), s, at);
	f->line = 0;
	for (p = at + 7; p < e && *p >= '0' && *p <= '9'; p++)
		if (f->line < 100000000u)
			f->line = f->line * 10 + (uint32_t)(*p - '0');
	in = p;
	while (in < e && *in != ' ')
		in++;
	if (e - in < 4 || memcmp(in, " in ", 4) != 0)
		return 0;
	copy_span(f->func, sizeof(f->func), in + 4, e);
	return 1;
}

/* ---- in the handler ---- */

static void drain(char *buf, size_t size)
{
	while (read(rd.fd, buf, size) > 0)
		;
}

size_t pyframes_from_signal(struct pyframe *out, size_t max)
{
	char buf[READ_BYTES];
	size_t have = 0, n = 0;
	void *tstate;
	int idle = 0, spins = 0;

	if (dump == NULL || max == 0 ||
	    __atomic_load_n(&owner, __ATOMIC_ACQUIRE) !=
	        (pid_t)syscall(SYS_getpid) ||
	    !initialized())
		return 0;
	tstate = this_tstate();
	if (tstate == NULL)
		return 0; /* a thread without a Python thread state */
	while (!__atomic_compare_exchange_n(
	    &busy, &idle, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
		idle = 0;
		if (++spins > SPINS)
			return 0;
		sched_yield();
	}
	if (!owned_still(&rd) || !owned_still(&wr))
		goto out;
	drain(buf, sizeof(buf)); /* what an interrupted dump left */
	dump(wr.fd, tstate);
	while (have < sizeof(buf) - 1) {
		ssize_t r = read(rd.fd, buf + have, sizeof(buf) - 1 - have);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		have += (size_t)r;
	}
	/* Complete lines only: the last one may be cut. */
	for (const char *s = buf, *end = buf + have; s < end && n < max;) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));

		if (nl == NULL)
			break;
		if (parse_line(s, nl, &out[n]))
			n++;
		s = nl + 1;
	}
	drain(buf, sizeof(buf)); /* the outer frames, unread */
out:
	__atomic_store_n(&busy, 0, __ATOMIC_RELEASE);
	return n;
}
