/* audit: the audit record files (contract in audit.h).  Called by the
 * guard (configure, child, finish: normal context) and its fault handler
 * (first_write: a signal handler, so no malloc, no stdio, no lock on that
 * path); calls jsonl, trace and log only. */
#include "audit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "jsonl.h"
#include "log.h"
#include "trace.h"

#define DIR_MAX 4096
#define LINE_MAX_BYTES 12288

enum { FILE_NONE, FILE_OPENING, FILE_OPEN, FILE_LOG };

static int configured;
static char dir[DIR_MAX]; /* "" when FORKSHIM_REPORT is not set */
static struct {
	pid_t pid; /* the process these fields belong to */
	int phase;
	int fd;
	char path[DIR_MAX + 64];
} me = {0, FILE_NONE, -1, ""};
static pid_t finished; /* the process whose audit_finish ran */

/* "i" is the frame's depth: 0 the faulting instruction, the others return
 * addresses (frozen_at starts at 1: its first frame is the return into
 * the code that called forkshim_freeze). */
static void put_frames(struct jb *b, const char *key, const uint64_t *ips,
                       size_t n, size_t first_depth)
{
	put(b, ",\"");
	put(b, key);
	put(b, "\":[");
	for (size_t i = 0; i < n; i++) {
		char path[TRACE_PATH_MAX];
		uint64_t off = 0;

		/* Whole frames only: stop while a long path still fits. */
		if (b->end - b->p < TRACE_PATH_MAX + 96)
			break;
		if (!trace_module(ips[i], path, sizeof(path), &off))
			path[0] = '\0';
		put(b, i ? ",{\"i\":" : "{\"i\":");
		put_u(b, i + first_depth, 10);
		put(b, ",\"ip\":");
		put_hex(b, ips[i]);
		put(b, ",\"module\":");
		put_str(b, path);
		put(b, ",\"offset\":");
		put_hex(b, off);
		put(b, "}");
	}
	put(b, "]");
}

/* ---- the file ---- */

void audit_configure(const char *d)
{
	configured = 1;
	if (d != NULL && strlen(d) < DIR_MAX)
		strcpy(dir, d);
	else if (d != NULL)
		log_warn("FORKSHIM_REPORT is longer than %d bytes: audit "
		         "records go to the log",
		         DIR_MAX - 1);
}

void audit_child(void)
{
	if (me.fd >= 0)
		close(me.fd); /* the parent's file */
	me.fd = -1;
	me.phase = FILE_NONE;
	me.path[0] = '\0';
	me.pid = getpid();
}

/* Creates this process's file and writes its first line. */
static int open_file(void)
{
	pid_t pid = getpid();
	int fd = -1;

	if (dir[0] != '\0')
		fd = jsonl_create(dir, "audit-", pid, me.path, sizeof(me.path),
		                  O_APPEND);
	if (fd < 0) {
		if (dir[0] != '\0')
			log_error("cannot create an audit file in %s (errno "
			          "%d): records go to the log",
			          dir, errno);
		return -1;
	}

	char line[DIR_MAX + 256], exe[TRACE_PATH_MAX];
	struct jb b = {line, line + sizeof(line) - 4};
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	exe[n > 0 ? n : 0] = '\0';
	put(&b, "{\"type\":\"process\",\"pid\":");
	put_u(&b, (uint64_t)pid, 10);
	put(&b, ",\"ppid\":");
	put_u(&b, (uint64_t)getppid(), 10);
	put(&b, ",\"exe\":");
	put_str(&b, exe);
	put(&b, "}\n");
	write_all(fd, line, (size_t)(b.p - line));
	return fd;
}

/* The fd records go to, or -1 for the log. */
static int record_fd(void)
{
	int phase = __atomic_load_n(&me.phase, __ATOMIC_ACQUIRE);

	if (phase == FILE_NONE &&
	    __atomic_compare_exchange_n(&me.phase, &phase, FILE_OPENING, 0,
	                                __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		me.fd = open_file();
		__atomic_store_n(&me.phase, me.fd >= 0 ? FILE_OPEN : FILE_LOG,
		                 __ATOMIC_RELEASE);
		return me.fd;
	}
	while ((phase = __atomic_load_n(&me.phase, __ATOMIC_ACQUIRE)) ==
	       FILE_OPENING)
		sched_yield();
	return phase == FILE_OPEN ? me.fd : -1;
}

void audit_first_write(const struct audit_write *w)
{
	char line[LINE_MAX_BYTES];
	struct jb b = {line, line + sizeof(line) - 8};
	int fd = record_fd();

	if (fd < 0) {
		put(&b, "forkshim[");
		put_u(&b, (uint64_t)getpid(), 10);
		put(&b, "]: audit ");
	}
	put(&b, "{\"type\":\"first_write\",\"pid\":");
	put_u(&b, (uint64_t)getpid(), 10);
	put(&b, ",\"tid\":");
	put_u(&b, (uint64_t)syscall(SYS_gettid), 10);
	put(&b, ",\"region\":");
	put_str(&b, w->info->name);
	put(&b, ",\"handle\":");
	put_hex(&b, w->handle);
	put(&b, ",\"owner\":");
	put_u(&b, (uint64_t)w->info->owner, 10);
	put(&b, ",\"region_addr\":");
	put_hex(&b, (uint64_t)(uintptr_t)w->info->addr);
	put(&b, ",\"region_len\":");
	put_u(&b, w->info->len, 10);
	put(&b, ",\"addr\":");
	put_hex(&b, w->addr);
	put(&b, ",\"offset\":");
	put_u(&b, w->addr - (uint64_t)(uintptr_t)w->info->addr, 10);
	put(&b, ",\"page\":");
	put_u(&b, w->page, 10);
	put(&b, ",\"page_addr\":");
	put_hex(&b, w->page_addr);
	put_frames(&b, "frames", w->frames, w->nframes, 0);
	put_frames(&b, "frozen_at", w->frozen_at, w->nfrozen, 1);
	b.end = line + sizeof(line);
	put(&b, "}\n");
	if (fd >= 0)
		write_all(fd, line, (size_t)(b.p - line));
	else if (log_threshold >= LOG_WARN)
		write_all(log_fd, line, (size_t)(b.p - line));
}

/* ---- at exit: symbols ---- */

struct frame_ref {
	char *module;
	uint64_t offset;
	int ret; /* a return address: look the call up, one byte before */
};

static int ref_cmp(const void *a, const void *b)
{
	const struct frame_ref *x = a, *y = b;
	int c = strcmp(x->module, y->module);

	if (c != 0)
		return c;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Reads a JSON string starting after its opening quote into out (malloc);
 * returns the position after the closing quote, or NULL. */
static const char *read_string(const char *s, char **out)
{
	size_t cap = strlen(s) + 1, n = 0;
	char *o = malloc(cap);

	if (o == NULL)
		return NULL;
	for (; *s && *s != '"'; s++) {
		if (*s == '\\' && s[1] == 'u' && s[2] && s[3] && s[4] && s[5]) {
			char hex[5] = {s[2], s[3], s[4], s[5], 0};

			o[n++] = (char)strtoul(hex, NULL, 16);
			s += 5;
		} else if (*s == '\\' && s[1]) {
			o[n++] = *++s;
		} else {
			o[n++] = *s;
		}
	}
	o[n] = '\0';
	if (*s != '"') {
		free(o);
		return NULL;
	}
	*out = o;
	return s + 1;
}

static char *slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	size_t cap = 1 << 16, n = 0;
	char *buf;

	if (fd < 0)
		return NULL;
	buf = malloc(cap + 1);
	while (buf != NULL) {
		ssize_t r = read(fd, buf + n, cap - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		if (n == cap) {
			char *more = realloc(buf, cap * 2 + 1);

			if (more == NULL)
				break;
			buf = more;
			cap *= 2;
		}
	}
	close(fd);
	if (buf != NULL)
		buf[n] = '\0';
	*len = n;
	return buf;
}

/* Appends the symbol lines of every frame in the file at path. */
static void symbolize_file(const char *path)
{
	size_t len = 0, n = 0, cap = 0;
	char *text = slurp(path, &len);
	struct frame_ref *refs = NULL;
	const char *s;
	int fd, symbols = 0;

	if (text == NULL)
		return;
	if (strstr(text, "{\"type\":\"symbolized\"") != NULL)
		goto out;
	for (s = text; (s = strstr(s, "{\"i\":")) != NULL;) {
		struct frame_ref r = {NULL, 0, strtoul(s + 5, NULL, 10) != 0};
		const char *m = strstr(s, "\"module\":\"");
		const char *o;

		if (m == NULL || (m = read_string(m + 10, &r.module)) == NULL)
			break;
		o = strstr(m, "\"offset\":\"0x");
		if (o == NULL) {
			free(r.module);
			break;
		}
		r.offset = strtoull(o + 12, NULL, 16);
		s = o + 12;
		if (r.module[0] == '\0') {
			free(r.module);
			continue;
		}
		if (n == cap) {
			struct frame_ref *more = realloc(
			    refs, (cap = cap ? cap * 2 : 256) * sizeof(*refs));

			if (more == NULL) {
				free(r.module);
				break;
			}
			refs = more;
		}
		refs[n++] = r;
	}
	if (n == 0)
		goto out;
	qsort(refs, n, sizeof(*refs), ref_cmp);
	fd = open(path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		char line[DIR_MAX + 512], name[256];
		struct jb b = {line, line + sizeof(line) - 4};
		uint64_t within;

		if (i > 0 && ref_cmp(&refs[i], &refs[i - 1]) == 0 &&
		    refs[i].ret == refs[i - 1].ret)
			continue;
		if (!trace_symbol(refs[i].module,
		                  refs[i].offset - (uint64_t)refs[i].ret, name,
		                  sizeof(name), &within))
			continue;
		put(&b, "{\"type\":\"symbol\",\"module\":");
		put_str(&b, refs[i].module);
		put(&b, ",\"offset\":");
		put_hex(&b, refs[i].offset);
		put(&b, ",\"function\":");
		put_str(&b, name);
		put(&b, ",\"function_offset\":");
		put_u(&b, within + (uint64_t)refs[i].ret, 10);
		put(&b, "}\n");
		write_all(fd, line, (size_t)(b.p - line));
		symbols++;
	}
	{
		char line[128];
		struct jb b = {line, line + sizeof(line) - 4};

		put(&b, "{\"type\":\"symbolized\",\"by\":");
		put_u(&b, (uint64_t)getpid(), 10);
		put(&b, ",\"symbols\":");
		put_u(&b, (uint64_t)symbols, 10);
		put(&b, "}\n");
		write_all(fd, line, (size_t)(b.p - line));
	}
	close(fd);
out:
	for (size_t i = 0; i < n; i++)
		free(refs[i].module);
	free(refs);
	free(text);
}

/* Whether pid has ended (gone, or a zombie). */
static int has_ended(pid_t pid)
{
	char path[64], stat[256];
	int fd;
	ssize_t n;

	if (kill(pid, 0) < 0 && errno == ESRCH)
		return 1;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 1;
	n = read(fd, stat, sizeof(stat) - 1);
	close(fd);
	if (n <= 0)
		return 1;
	stat[n] = '\0';
	const char *paren = strrchr(stat, ')');

	return paren != NULL && paren[1] == ' ' && paren[2] == 'Z';
}

/* The files of children of ours that ended without their symbols. */
static void symbolize_children(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	pid_t self = getpid();

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		char path[DIR_MAX + 300], head[512];
		const char *p;
		int fd;
		ssize_t n;
		long pid, ppid;

		if (strncmp(e->d_name, "audit-", 6) != 0 ||
		    strstr(e->d_name, ".jsonl") == NULL)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (strcmp(path, me.path) == 0)
			continue;
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue;
		n = read(fd, head, sizeof(head) - 1);
		close(fd);
		if (n <= 0)
			continue;
		head[n] = '\0';
		p = strstr(head, "\"pid\":");
		pid = p ? strtol(p + 6, NULL, 10) : 0;
		p = strstr(head, "\"ppid\":");
		ppid = p ? strtol(p + 7, NULL, 10) : 0;
		if (ppid == self && pid > 0 && has_ended((pid_t)pid))
			symbolize_file(path);
	}
	closedir(d);
}

void audit_finish(void)
{
	int saved = errno;
	pid_t self = getpid();

	if (finished == self)
		return;
	finished = self;
	if (me.pid == self && me.phase == FILE_OPEN)
		symbolize_file(me.path);
	if (dir[0] != '\0')
		symbolize_children();
	errno = saved;
}

/* exit() runs this after the atexit handlers registered before us. */
__attribute__((destructor)) static void audit_at_unload(void)
{
	if (configured)
		audit_finish();
}
