/* report: the per-process report files (contract in report.h).  Called
 * by api (configure at init, arm after a freeze, mapped after a late
 * deref or info), fork's wait wrappers (reaped), the exit
 * paths it wraps (_exit, _Exit, on_exit) and, through signals_watch's
 * callback, the signal handlers; calls signals, table's and shared's
 * readers, sharing,
 * jsonl (the report directory's files), config, owned, interpose and
 * log.  The signal, _exit and wait paths
 * allocate nothing and use no stdio; errno is kept. */
#include "report.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "config.h"
#include "hot.h"
#include "interpose.h"
#include "jsonl.h"
#include "log.h"
#include "shared.h"
#include "sharing.h"
#include "signals.h"
#include "table.h"

#define PATH_BYTES (CONFIG_PATH_MAX + 64)
#define NAME_BYTES 64

enum how { HOW_EXIT, HOW__EXIT, HOW_SIGNAL, HOW_KILLED };
static const char *const how_names[] = {"exit", "_exit", "signal", "killed"};

typedef void (*exit_fn)(int);

static exit_fn real__exit, real__Exit;

/* Inherited by children with the rest of our memory: a child of an armed
 * process is armed.  self/ppid/birth are set again in each child. */
static int armed;
static int64_t since;      /* this process began (jsonl_open_ours) */
static pid_t said_failure; /* the process that said a report failed */
static pid_t self, parent;
static uint64_t birth;
static pid_t ending; /* the process that began writing its report */
static pid_t ended;  /* the process whose report is complete */
/* The process that mapped a shared region by late deref or info while
 * unarmed (report_mapped): its report is armed on its way out
 * (late_arm).  A child made by fork() maps what its parent mapped, and
 * takes it over (report_child); one made without the atfork handlers keeps
 * its parent's pid here, which is not its own. */
static pid_t pending;

/* The terminating signals whose SIG_DFL we stand in for (signals_watch). */
static const int fatal_signals[] = {
    SIGHUP,  SIGINT,    SIGQUIT, SIGILL,  SIGTRAP, SIGABRT, SIGBUS,    SIGFPE,
    SIGUSR1, SIGSEGV,   SIGUSR2, SIGPIPE, SIGALRM, SIGTERM, SIGSTKFLT, SIGXCPU,
    SIGXFSZ, SIGVTALRM, SIGPROF, SIGIO,   SIGPWR,  SIGSYS,
};
static int lock_word; /* arming */

void report_resolve(void)
{
	*(void **)&real__exit = interpose_real("_exit", INTERPOSE_OPTIONAL);
	*(void **)&real__Exit = interpose_real("_Exit", INTERPOSE_OPTIONAL);
}

/* ---- the file ---- */

/* Each write_* returns 0, or -1 with errno when a line could not be
 * written (the disk is full, the descriptor is not ours any more). */
static int write_process(const struct owned *o, pid_t pid, pid_t ppid,
                         uint64_t b, pid_t by)
{
	char line[PATH_BYTES + 256], exe[PATH_BYTES];
	struct jb j = {line, line + sizeof(line) - 4};
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	exe[n > 0 ? n : 0] = '\0';
	put(&j, "{\"type\":\"process\",\"format\":");
	put_u(&j, REPORT_FORMAT, 10);
	put_key_u(&j, "pid", (uint64_t)pid);
	put_key_u(&j, "ppid", (uint64_t)ppid);
	put_key_u(&j, "birth", b);
	put(&j, ",\"exe\":");
	put_str(&j, exe);
	put_key_u(&j, "page_size", (uint64_t)getpagesize());
	if (by != 0)
		put_key_u(&j, "reported_by", (uint64_t)by);
	put(&j, "}\n");
	return write_all(o, line, (size_t)(j.p - line));
}

/* One region line.  A shared region's (memfd: its identity) pages are
 * sealed shared memory, never copied: every resident one counts as shared,
 * whoever else maps it at this moment (pagemap's exclusive bit says only
 * that no other process maps that page now). */
static int write_region(const struct owned *o, int pm, forkshim_handle h,
                        const struct forkshim_info *info, int memfd,
                        uint64_t dev, uint64_t ino)
{
	char line[512];
	struct jb j = {line, line + sizeof(line) - 4};
	struct forkshim_sharing s;

	if (pm < 0 || sharing_count_fd(pm, info->addr, info->len, &s) != 0)
		memset(&s, 0, sizeof(s));
	if (memfd) {
		s.shared = s.resident;
		s.exclusive = 0;
	}
	put(&j, "{\"type\":\"region\",\"name\":");
	put_str(&j, info->name);
	put(&j, ",\"handle\":");
	put_hex(&j, h);
	put(&j, ",\"addr\":");
	put_hex(&j, (uint64_t)(uintptr_t)info->addr);
	put_key_u(&j, "size", info->len);
	put_key_u(&j, "owner", (uint64_t)info->owner);
	put_key_u(&j, "pages", s.pages);
	put_key_u(&j, "resident", s.resident);
	put_key_u(&j, "shared", s.shared);
	put_key_u(&j, "exclusive", s.exclusive);
	put_key_u(&j, "swapped", s.swapped);
	if (memfd) {
		put(&j, ",\"memfd\":\"");
		put_u(&j, dev, 10);
		put(&j, ":");
		put_u(&j, ino, 10);
		put(&j, "\"");
	}
	if (info->flags & FORKSHIM_OBSERVE)
		put_key_u(&j, "flags", info->flags);
	put(&j, "}\n");
	return write_all(o, line, (size_t)(j.p - line));
}

/* Whether this process's table holds forkshim_alloc memory of memfd
 * (dev, ino): its line is written already. */
static int in_table(uint64_t dev, uint64_t ino)
{
	uint32_t slot = 0;
	forkshim_handle h;
	uint64_t d, i;

	while ((h = table_next(&slot)) != 0)
		if (shared_identity(h, &d, &i) && d == dev && i == ino)
			return 1;
	return 0;
}

/* The table's regions, then the shared regions mapped here by import or
 * late deref (every importer is a process that maps it). */
static int write_regions(const struct owned *o)
{
	int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC), r = 0;
	uint32_t slot = 0;
	forkshim_handle h;
	struct forkshim_info info;
	uint64_t dev = 0, ino = 0;

	while (r == 0 && (h = table_next(&slot)) != 0) {
		int memfd = shared_identity(h, &dev, &ino);

		if (table_info(h, &info) == 0)
			r = write_region(o, pm, h, &info, memfd, dev, ino);
	}
	slot = 0;
	while (r == 0 && shared_next_mapped(&slot, &info, &h, &dev, &ino))
		if (!in_table(dev, ino))
			r = write_region(o, pm, h, &info, 1, dev, ino);
	if (pm >= 0)
		close(pm);
	return r;
}

static int write_end(const struct owned *o, enum how how, int status, int sig)
{
	char line[128];
	struct jb j = {line, line + sizeof(line) - 4};

	put(&j, "{\"type\":\"end\",\"how\":\"");
	put(&j, how_names[how]);
	put(&j, "\"");
	put_key_u(&j, "status", (uint64_t)(status & 0xff));
	put_key_u(&j, "signal", (uint64_t)sig);
	put(&j, "}\n");
	return write_all(o, line, (size_t)(j.p - line));
}

/* Once per process, on the log: a full disk, a directory gone. */
static void failed(pid_t pid, const char *name, int err)
{
	if (__atomic_exchange_n(&said_failure, pid, __ATOMIC_RELAXED) == pid)
		return;
	log_error("a report could not be written in FORKSHIM_REPORT=%s "
	          "(%s, errno %d); no more are said to fail here",
	          config.report_dir, name[0] ? name : "no file made", err);
}

/* A process that maps a shared region late, on its way out (any context:
 * no lock, no allocation): born before its line froze anything, or it
 * would be armed already. */
static void late_arm(pid_t pid)
{
	parent = getppid();
	birth = 0;
	since = config.loaded;
	__atomic_store_n(&self, pid, __ATOMIC_RELEASE);
}

/* This process's report, once, whichever way it ends first. */
static void report_end(enum how how, int status, int sig)
{
	pid_t pid, seen;
	char name[NAME_BYTES] = "";
	sigset_t all, old;
	struct owned o = OWNED_NONE;
	int saved = errno;

	if (!__atomic_load_n(&armed, __ATOMIC_ACQUIRE) &&
	    !__atomic_load_n(&pending, __ATOMIC_ACQUIRE))
		return;
	pid = (pid_t)syscall(SYS_getpid);
	if (pid != __atomic_load_n(&self, __ATOMIC_ACQUIRE)) {
		if (pid != __atomic_load_n(&pending, __ATOMIC_ACQUIRE))
			return; /* a vfork or _Fork child, or too early */
		late_arm(pid);
	}
	/* From the claim to the end line no signal may interrupt this
	 * thread: a fatal one's handler would wait here for itself.  On the
	 * _exit path the mask stays, up to the end. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	seen = __atomic_load_n(&ending, __ATOMIC_ACQUIRE);
	if (seen == pid ||
	    !__atomic_compare_exchange_n(&ending, &seen, pid, 0,
	                                 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		/* Another thread is writing it: let it finish first. */
		while (__atomic_load_n(&ended, __ATOMIC_ACQUIRE) != pid &&
		       __atomic_load_n(&ending, __ATOMIC_ACQUIRE) == pid)
			sched_yield();
		if (how != HOW__EXIT)
			pthread_sigmask(SIG_SETMASK, &old, NULL);
		errno = saved;
		return;
	}
	if (jsonl_create(&o, "report-", pid, name, sizeof(name), 0) != 0 ||
	    write_process(&o, pid, parent, birth, 0) != 0 ||
	    write_regions(&o) != 0 || write_end(&o, how, status, sig) != 0)
		failed(pid, name, errno);
	if (name[0] != '\0' && owned_still(&o))
		close(o.fd);
	__atomic_store_n(&ended, pid, __ATOMIC_RELEASE);
	if (how != HOW__EXIT)
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = saved;
}

static void on_exit_hook(int status, void *arg)
{
	(void)arg;
	report_end(HOW_EXIT, status, 0);
}

/* ---- exit paths ---- */

#define EXPORT __attribute__((visibility("default")))

/* _exit and _Exit, hot with the fork wrappers (fork.c, hot.ld): a
 * child made by fork runs them, and faults in every page of ours it runs.
 * Unarmed, they only pass through; before init (a process that never
 * forked, froze or waited) they find the real function on the way out. */
static inline __attribute__((always_inline, noreturn)) void
leave(exit_fn fn, const char *name, int status)
{
	if (__atomic_load_n(&armed, __ATOMIC_ACQUIRE) ||
	    __atomic_load_n(&pending, __ATOMIC_ACQUIRE))
		report_end(HOW__EXIT, status, 0);
	if (fn == NULL)
		*(void **)&fn = dlsym(RTLD_NEXT, name);
	if (fn != NULL)
		fn(status);
	for (;;)
		syscall(SYS_exit_group, status);
}

EXPORT FORKSHIM_HOT void _exit(int status)
{
	leave(real__exit, "_exit", status);
}

EXPORT FORKSHIM_HOT void _Exit(int status)
{
	leave(real__Exit != NULL ? real__Exit : real__exit, "_Exit", status);
}

/* ---- fatal signals and arming ---- */

static void lock(sigset_t *saved)
{
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, saved);
	while (__atomic_exchange_n(&lock_word, 1, __ATOMIC_ACQUIRE))
		sched_yield();
}

static void unlock(const sigset_t *saved)
{
	__atomic_store_n(&lock_word, 0, __ATOMIC_RELEASE);
	pthread_sigmask(SIG_SETMASK, saved, NULL);
}

/* Our handler of a watched signal, before the default action kills. */
static void dying(int sig)
{
	report_end(HOW_SIGNAL, 0, sig);
}

/* The child of an armed process is armed: its report is its own. */
static void arm_child(void)
{
	parent = getppid();
	birth = table_line_freezes();
	since = jsonl_now();
	/* Last: a signal before this finds the parent's pid and leaves the
	 * report to the parent's wait. */
	__atomic_store_n(&self, (pid_t)syscall(SYS_getpid), __ATOMIC_RELEASE);
}

void report_arm(void)
{
	sigset_t saved;

	if (__atomic_load_n(&armed, __ATOMIC_ACQUIRE) || config.secure ||
	    config.report_dir == NULL || !signals_ready())
		return;
	lock(&saved);
	if (armed) {
		unlock(&saved);
		return;
	}
	/* The process began before its first freeze: since its load. */
	since = config.loaded;
	parent = getppid();
	birth = 0;
	__atomic_store_n(&self, (pid_t)syscall(SYS_getpid), __ATOMIC_RELEASE);
	signals_watch(fatal_signals, sizeof(fatal_signals) / sizeof(int),
	              dying);
	__atomic_store_n(&armed, 1, __ATOMIC_RELEASE);
	unlock(&saved);
	on_exit(on_exit_hook, NULL);
}

/* ---- a late mapping ---- */

void report_mapped(void)
{
	pid_t pid;

	if (config.report_dir == NULL || config.secure)
		return;
	pid = (pid_t)syscall(SYS_getpid);
	if (__atomic_load_n(&pending, __ATOMIC_ACQUIRE) != pid)
		__atomic_store_n(&pending, pid, __ATOMIC_RELEASE);
}

/* Every fork() child of a process with reports on (hot: it runs in each,
 * from the pages its first fault maps, hot.ld).  The arming lock is
 * free in it: another thread of the parent may have held it at the fork,
 * and the child would then spin in its own first freeze for ever.  The
 * child of an armed process is armed (arm_child), and the child of one
 * that maps a region late maps it too.  This handler is registered at
 * load, while the process has one thread: glibc runs in a child only the
 * handlers registered before its fork began running the prepare
 * handlers, so one registered by the first arming (as arm_child was)
 * could miss a child that another thread forked during that arming
 * (report_family, a_child_forked_while_its_parent_arms_can_arm). */
static FORKSHIM_HOT void report_child(void)
{
	if (lock_word != 0) /* no store (a copy-on-write fault) otherwise */
		lock_word = 0;
	if (__atomic_load_n(&armed, __ATOMIC_ACQUIRE))
		arm_child();
	if (__atomic_load_n(&pending, __ATOMIC_ACQUIRE) != 0)
		__atomic_store_n(&pending, (pid_t)syscall(SYS_getpid),
		                 __ATOMIC_RELEASE);
}

/* The exit hook registered here serves late mappers only, and runs after
 * every exit handler the program registers.  report_arm registers it once
 * more: an armed process's report is written before the handlers the
 * program registered before arming (which may thaw what it lists); the
 * second call returns at once. */
void report_configure(void)
{
	if (config.secure || config.report_dir == NULL)
		return;
	pthread_atfork(NULL, NULL, report_child);
	signals_watch_at_load(); /* report_arm watches the fatal signals */
	on_exit(on_exit_hook, NULL);
}

/* ---- a child that died without its report ---- */

/* Whether the file name is pid's report of dying of sig, child of ours:
 * 1 yes, 0 no (also a file that is not ours to read: another user's, a
 * FIFO, an old one), -1 no such file (the names end here).  Only its
 * first and last bytes are read, whatever its size. */
static int reports_death(const char *name, pid_t pid, int sig)
{
	char head[512], tail[160], want[64];
	struct jb j = {want, want + sizeof(want) - 1};
	uint64_t size;
	int fd = jsonl_open_ours(name, 0, since, UINT64_MAX, &size);
	ssize_t n, m;

	if (fd < 0)
		return errno == ENOENT ? -1 : 0;
	n = pread(fd, head, sizeof(head) - 1, 0);
	m = size > sizeof(tail) - 1 ? (ssize_t)sizeof(tail) - 1 : (ssize_t)size;
	m = m > 0 ? pread(fd, tail, (size_t)m, (off_t)size - m) : 0;
	close(fd);
	head[n > 0 ? n : 0] = '\0';
	tail[m > 0 ? m : 0] = '\0';
	put(&j, ",\"pid\":");
	put_u(&j, (uint64_t)pid, 10);
	put_key_u(&j, "ppid", (uint64_t)self);
	*j.p = '\0';
	if (strstr(head, want) == NULL)
		return 0;
	j.p = want;
	put(&j, "\"how\":\"signal\",\"status\":0");
	put_key_u(&j, "signal", (uint64_t)sig);
	put(&j, "}");
	*j.p = '\0';
	return strstr(tail, want) != NULL;
}

void report_reaped(pid_t pid, int sig, uint64_t b)
{
	char name[NAME_BYTES] = "";
	struct owned o = OWNED_NONE;
	int saved = errno;

	/* Born before any freeze: it had no table, so nothing to report. */
	if (!__atomic_load_n(&armed, __ATOMIC_ACQUIRE) || b == 0 ||
	    (pid_t)syscall(SYS_getpid) != self)
		return;
	for (int n = 0; n < JSONL_NAMES; n++) {
		int r;

		jsonl_name(name, sizeof(name), "report-", pid, n);
		r = reports_death(name, pid, sig);
		if (r < 0)
			break;
		if (r > 0) {
			errno = saved;
			return;
		}
	}
	name[0] = '\0';
	if (jsonl_create(&o, "report-", pid, name, sizeof(name), 0) != 0 ||
	    write_process(&o, pid, self, b, self) != 0 ||
	    write_end(&o, HOW_KILLED, 0, sig) != 0)
		failed(self, name, errno);
	if (name[0] != '\0' && owned_still(&o))
		close(o.fd);
	errno = saved;
}
