/* audit: the audit record files (contract in audit.h).  Called by the
 * guard (configure, child, finish: normal context) and its fault handler
 * (first_write: a signal handler, so no malloc, no stdio, no lock on that
 * path); calls jsonl, trace, config, owned, procpage (was it our child?)
 * and log only. */
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

#include "config.h"
#include "jsonl.h"
#include "log.h"
#include "owned.h"
#include "procpage.h"
#include "trace.h"

#define LINE_MAX_BYTES 12288
#define NAME_BYTES 64
/* The largest audit file symbolized: a first-write record is 1 to 4 KiB,
 * so this is tens of thousands of records, far more than anyone reads;
 * and it bounds what audit_finish allocates inside the host at its exit
 * (the file, then one entry per frame). */
#define READ_MAX (64u << 20)

enum { FILE_NONE, FILE_OPENING, FILE_OPEN, FILE_LOG };

static int configured;
static int use_dir;   /* FORKSHIM_REPORT accepted */
static int64_t since; /* this process began (jsonl_open_ours) */
static struct {
	pid_t pid; /* the process these fields belong to */
	int phase;
	struct owned o;
	char name[NAME_BYTES];
	int said; /* a failed write was said */
} me = {0, FILE_NONE, OWNED_NONE, "", 0};
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

static void put_py(struct jb *b, const struct pyframe *py, size_t n)
{
	if (n == 0)
		return;
	put(b, ",\"py\":[");
	for (size_t i = 0; i < n; i++) {
		put(b, i ? ",{\"file\":" : "{\"file\":");
		put_str(b, py[i].file);
		put(b, ",\"line\":");
		put_u(b, py[i].line, 10);
		put(b, ",\"function\":");
		put_str(b, py[i].func);
		put(b, "}");
	}
	put(b, "]");
}

/* ---- the file ---- */

void audit_configure(const char *d)
{
	configured = 1;
	use_dir = d != NULL;
	since = config.loaded;
}

void audit_child(void)
{
	if (owned_still(&me.o))
		close(me.o.fd); /* the parent's file */
	me.o.fd = -1;
	me.phase = FILE_NONE;
	me.name[0] = '\0';
	me.said = 0;
	me.pid = getpid();
	since = jsonl_now();
}

/* Creates this process's file and writes its first line. */
static int open_file(void)
{
	pid_t pid = getpid();

	if (!use_dir)
		return -1;
	if (jsonl_create(&me.o, "audit-", pid, me.name, sizeof(me.name),
	                 O_APPEND) != 0) {
		log_error("cannot create an audit file in FORKSHIM_REPORT=%s "
		          "(errno %d): records go to the log",
		          config.report_dir, errno);
		return -1;
	}

	char line[TRACE_PATH_MAX + 256], exe[TRACE_PATH_MAX];
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
	write_all(&me.o, line, (size_t)(b.p - line));
	return 0;
}

/* Whether records go to the file (1) or to the log (0). */
static int record_to_file(void)
{
	int phase = __atomic_load_n(&me.phase, __ATOMIC_ACQUIRE);

	if (phase == FILE_NONE &&
	    __atomic_compare_exchange_n(&me.phase, &phase, FILE_OPENING, 0,
	                                __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		int ok = open_file() == 0;

		__atomic_store_n(&me.phase, ok ? FILE_OPEN : FILE_LOG,
		                 __ATOMIC_RELEASE);
		return ok;
	}
	while ((phase = __atomic_load_n(&me.phase, __ATOMIC_ACQUIRE)) ==
	       FILE_OPENING)
		sched_yield();
	return phase == FILE_OPEN;
}

/* A record the file did not take: the descriptor is not the file's any
 * more (the program closed it, or put its own file on the number), so
 * records go to the log from now on; or the write failed (a full disk).
 * Said once. */
static void write_failed(int err)
{
	if (err == EBADF)
		__atomic_store_n(&me.phase, FILE_LOG, __ATOMIC_RELEASE);
	if (__atomic_exchange_n(&me.said, 1, __ATOMIC_RELAXED))
		return;
	if (err == EBADF)
		log_error("the audit file %s/%s is no longer open in this "
		          "process (descriptor %d was closed or now names "
		          "another file): its records go to the log from now "
		          "on",
		          config.report_dir, me.name, me.o.fd);
	else
		log_error("an audit record could not be written to %s/%s "
		          "(errno %d)",
		          config.report_dir, me.name, err);
}

/* Prepends the log's prefix to the record at rec (len bytes), in the
 * room left before it; returns the start. */
static char *log_prefixed(char *rec, size_t room)
{
	char pre[64];
	struct jb p = {pre, pre + sizeof(pre)};
	size_t n;

	put(&p, "forkshim[");
	put_u(&p, (uint64_t)getpid(), 10);
	put(&p, "]: audit ");
	n = (size_t)(p.p - pre);
	if (n > room)
		n = room;
	memcpy(rec - n, pre, n);
	return rec - n;
}

void audit_first_write(const struct audit_write *w)
{
	char line[LINE_MAX_BYTES];
	char *rec = line + 64; /* room for the log's prefix */
	struct jb b = {rec, line + sizeof(line) - 8};
	int to_file = record_to_file();

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
	put_py(&b, w->py, w->npy);
	put_frames(&b, "frames", w->frames, w->nframes, 0);
	put_frames(&b, "frozen_at", w->frozen_at, w->nfrozen, 1);
	b.end = line + sizeof(line);
	put(&b, "}\n");
	if (to_file) {
		if (write_all(&me.o, rec, (size_t)(b.p - rec)) == 0)
			return;
		int err = errno;

		write_failed(err);
		if (err != EBADF)
			return; /* said; the log is no place for the rest */
	}
	if (log_threshold >= LOG_WARN) {
		char *start = log_prefixed(rec, 64);

		log_write(start, (size_t)(b.p - start));
	}
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
	size_t cap = 1, n = 0;
	char *o;

	/* As long as the string, not the rest of the file (a strlen here
	 * made symbolizing a file quadratic in its size). */
	for (const char *e = s; *e && *e != '"'; e++, cap++)
		if (*e == '\\' && e[1])
			e++, cap++;
	o = malloc(cap);

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

/* The whole file (its size known, at most READ_MAX), NUL-terminated. */
static char *slurp(int fd, uint64_t size)
{
	char *buf = malloc((size_t)size + 1);
	size_t n = 0;

	while (buf != NULL && n < size) {
		ssize_t r = pread(fd, buf + n, (size_t)size - n, (off_t)n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	if (buf != NULL)
		buf[n] = '\0';
	return buf;
}

/* Appends the symbol lines of every frame in the file name of the report
 * directory, if it is one this process may touch (jsonl_open_ours).  The
 * modules looked in are this process's own: a module path of the file is
 * only a key into them (trace_known_module). */
static void symbolize_file(const char *name)
{
	size_t n = 0, cap = 0;
	uint64_t size;
	int fd = jsonl_open_ours(name, 1, since, READ_MAX, &size);
	char *text, *ln, *next, *end, own[TRACE_PATH_MAX];
	struct frame_ref *refs = NULL;
	struct owned of;
	const char *s;
	int symbols = 0, known = 0;

	if (fd < 0) {
		if (errno == EFBIG)
			log_warn("the audit file %s/%s is larger than %u MiB: "
			         "it keeps its addresses, without symbols",
			         config.report_dir, name, READ_MAX >> 20);
		return;
	}
	text = slurp(fd, size);
	if (text == NULL || owned_record(&of, fd) != 0) {
		free(text);
		close(fd);
		return;
	}
	/* Line by line, each cut at its newline: a search never runs over
	 * the rest of the file (quadratic, and slower still under ASan's
	 * string checks). */
	end = text + strlen(text);
	for (ln = text; ln < end; ln = next) {
		char *nl = memchr(ln, '\n', (size_t)(end - ln));

		next = nl != NULL ? nl + 1 : end;
		if (nl != NULL)
			*nl = '\0';
		if (strncmp(ln, "{\"type\":\"symbolized\"", 20) == 0)
			goto out;
		for (s = ln; (s = strstr(s, "{\"i\":")) != NULL;) {
			struct frame_ref r = {NULL, 0,
			                      strtoul(s + 5, NULL, 10) != 0};
			const char *m = strstr(s, "\"module\":\"");
			const char *o;

			if (m == NULL ||
			    (m = read_string(m + 10, &r.module)) == NULL)
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
				struct frame_ref *more =
				    realloc(refs, (cap = cap ? cap * 2 : 256) *
				                      sizeof(*refs));

				if (more == NULL) {
					free(r.module);
					break;
				}
				refs = more;
			}
			refs[n++] = r;
		}
	}
	if (n == 0)
		goto out;
	qsort(refs, n, sizeof(*refs), ref_cmp);
	for (size_t i = 0; i < n; i++) {
		char line[TRACE_PATH_MAX + 512], fn[256];
		struct jb b = {line, line + sizeof(line) - 4};
		uint64_t within;

		if (i > 0 && ref_cmp(&refs[i], &refs[i - 1]) == 0 &&
		    refs[i].ret == refs[i - 1].ret)
			continue;
		/* Sorted by module: one look-up per module. */
		if (i == 0 || strcmp(refs[i].module, refs[i - 1].module) != 0)
			known = trace_known_module(refs[i].module, own,
			                           sizeof(own));
		if (!known)
			continue;
		if (!trace_symbol(own, refs[i].offset - (uint64_t)refs[i].ret,
		                  fn, sizeof(fn), &within))
			continue;
		put(&b, "{\"type\":\"symbol\",\"module\":");
		put_str(&b, own);
		put(&b, ",\"offset\":");
		put_hex(&b, refs[i].offset);
		put(&b, ",\"function\":");
		put_str(&b, fn);
		put(&b, ",\"function_offset\":");
		put_u(&b, within + (uint64_t)refs[i].ret, 10);
		put(&b, "}\n");
		if (write_all(&of, line, (size_t)(b.p - line)) != 0)
			goto out;
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
		write_all(&of, line, (size_t)(b.p - line));
	}
out:
	if (owned_still(&of))
		close(fd);
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

/* The pid of a name "audit-PID.jsonl" or "audit-PID-N.jsonl", or 0. */
static pid_t pid_of_name(const char *name)
{
	const char *s = name + 6;
	long pid = 0;

	if (strncmp(name, "audit-", 6) != 0 || *s < '1' || *s > '9')
		return 0;
	for (; *s >= '0' && *s <= '9' && pid < (1l << 31); s++)
		pid = pid * 10 + (*s - '0');
	if (*s == '-')
		for (s++; *s >= '0' && *s <= '9'; s++)
			;
	return strcmp(s, ".jsonl") == 0 && pid < (1l << 31) ? (pid_t)pid : 0;
}

/* The files of children of ours that ended without their symbols: only
 * the names of pids this process forked (procpage_was_child), and of those
 * only files jsonl_open_ours accepts (symbolize_file). */
static void symbolize_children(void)
{
	int dirfd = config_report_fd(), fd;
	DIR *d;
	struct dirent *e;

	if (dirfd < 0)
		return;
	fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	d = fd >= 0 ? fdopendir(fd) : NULL;
	if (d == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((e = readdir(d)) != NULL) {
		pid_t pid = pid_of_name(e->d_name);

		if (pid == 0 || strcmp(e->d_name, me.name) == 0 ||
		    !procpage_was_child(pid) || !has_ended(pid))
			continue;
		symbolize_file(e->d_name);
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
		symbolize_file(me.name);
	if (use_dir)
		symbolize_children();
	errno = saved;
}

/* exit() runs this after the atexit handlers registered before us. */
__attribute__((destructor)) static void audit_at_unload(void)
{
	if (configured)
		audit_finish();
}
