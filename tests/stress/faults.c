/* Fault injection: what the shim does when the system says no.
 *
 *   fork fails with EAGAIN (RLIMIT_NPROC, which binds only an unprivileged
 *   user: as root the scenario runs in a forked helper that becomes
 *   nobody): -1 with errno kept, no lock left held, the next fork works,
 *   and no record of the failed fork is left behind;
 *   the table cannot grow past its head (the few regions it keeps in
 *   the shim's own memory) because its mapping cannot be made (RLIMIT_AS,
 *   or the process at vm.max_map_count): the head fills, the next freeze
 *   is ENOMEM, nothing changed, and the freeze works once memory is there;
 *   a plugin host dlopens and dlcloses the shim 1,000 times;
 *   a set-user-ID copy of a host that links the shim ignores FORKSHIM_*;
 *   the environment is read even when the first call into the shim comes
 *   from a .preinit_array, before libc has set its environment up.
 *
 * Each scenario runs in a forked child with an alarm and exits with a
 * code that names the first thing that went wrong. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "forkshim.h"
#include "in_child.h"

#define NOBODY 65534
#define SKIP 77
#define MANY_THREADS 80 /* more than the shim's PROC_FORKING_MAX (64) */

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif

static char region[3][8192];

/* Runs body in a forked child with an alarm; returns its wait status. */
static int in_child(int (*body)(void))
{
	return in_child_alarmed(body, 20);
}

static void expect_exit0(int status, const char *what)
{
	if (WIFEXITED(status) && WEXITSTATUS(status) == SKIP)
		cr_skip_test("%s: this machine cannot run it", what);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: %s %d",
	          what,
	          WIFSIGNALED(status) ? "killed by signal (14: deadlock)"
	                              : "failed at step",
	          WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
}

/* As root: become nobody, for whom RLIMIT_NPROC holds. */
static int unprivileged(void)
{
	if (getuid() != 0)
		return 0;
	if (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 ||
	    setuid(NOBODY) != 0)
		return -1;
	return 0;
}

/* Sets the soft limit on processes (at most the hard one, which stays). */
static int nproc(rlim_t soft)
{
	struct rlimit r;

	if (getrlimit(RLIMIT_NPROC, &r) != 0)
		return -1;
	r.rlim_cur = soft < r.rlim_max ? soft : r.rlim_max;
	return setrlimit(RLIMIT_NPROC, &r);
}

/* ---- fork failing with EAGAIN ---- */

static int fork_fails_then_works(void)
{
	forkshim_handle h, h2;
	int status;
	pid_t pid;

	if (unprivileged() != 0 || nproc(RLIM_INFINITY) != 0)
		return SKIP;
	h = forkshim_freeze(region[0], sizeof(region[0]), "kept", 0);
	if (h == 0)
		return 1;
	if (nproc(0) != 0)
		return SKIP;
	for (int i = 0; i < 3; i++) {
		errno = 0;
		if (fork() != -1)
			_exit(0); /* the limit did not hold: a new child */
		if (errno != EAGAIN)
			return 2;
	}
	/* A lock left held would hang here (the alarm reports it). */
	h2 = forkshim_freeze(region[1], 100, "after", 0);
	if (h2 == 0 || forkshim_thaw(h2) != 0)
		return 3;
	if (forkshim_deref(h, NULL) != region[0] || forkshim_visible(h, 0) != 1)
		return 4;
	if (nproc(RLIM_INFINITY) != 0)
		return 5;
	pid = fork();
	if (pid == 0)
		_exit(forkshim_deref(h, NULL) == region[0] ? 0 : 1);
	if (pid < 0)
		return 6;
	if (forkshim_visible(h, pid) != 1)
		return 7;
	if (waitpid(pid, &status, 0) != pid || status != 0)
		return 8;
	return 0;
}

Test(fork_failure, eagain_keeps_errno_frees_the_lock_and_the_next_fork_works,
     .timeout = 30)
{
	expect_exit0(in_child(fork_fails_then_works), "EAGAIN");
}

static pthread_barrier_t many_go, many_failed, many_end;
static _Atomic int many_wrong;

static void *fail_a_fork(void *arg)
{
	pid_t pid;

	(void)arg;
	pthread_barrier_wait(&many_go);
	errno = 0;
	pid = fork();
	if (pid == 0)
		_exit(0);
	if (pid != -1 || errno != EAGAIN)
		many_wrong++;
	pthread_barrier_wait(&many_failed);
	pthread_barrier_wait(&many_end); /* stay alive */
	return NULL;
}

/* Threads whose forks failed, still alive; then a fork that works: its
 * child must count for visible() like any other. */
static int many_failed_forks_then_one_works(void)
{
	pthread_t th[MANY_THREADS];
	forkshim_handle h;
	int status, v;
	pid_t pid;

	if (unprivileged() != 0 || nproc(RLIM_INFINITY) != 0)
		return SKIP;
	h = forkshim_freeze(region[0], sizeof(region[0]), "kept", 0);
	if (h == 0)
		return 1;
	pthread_barrier_init(&many_go, NULL, MANY_THREADS + 1);
	pthread_barrier_init(&many_failed, NULL, MANY_THREADS + 1);
	pthread_barrier_init(&many_end, NULL, MANY_THREADS + 1);
	for (int i = 0; i < MANY_THREADS; i++)
		if (pthread_create(&th[i], NULL, fail_a_fork, NULL) != 0)
			return 2;
	if (nproc(0) != 0)
		return SKIP;
	pthread_barrier_wait(&many_go);
	pthread_barrier_wait(&many_failed);
	if (many_wrong != 0)
		return 3;
	if (nproc(RLIM_INFINITY) != 0)
		return 4;
	pid = fork();
	if (pid == 0)
		_exit(forkshim_deref(h, NULL) == region[0] ? 0 : 1);
	if (pid < 0)
		return 5;
	v = forkshim_visible(h, pid);
	if (waitpid(pid, &status, 0) != pid || status != 0)
		return 6;
	pthread_barrier_wait(&many_end);
	for (int i = 0; i < MANY_THREADS; i++)
		pthread_join(th[i], NULL);
	return v == 1 ? 0 : 7; /* 7: visible() said the child cannot */
}

Test(fork_failure, failed_forks_of_many_threads_leave_no_stale_birth_records,
     .timeout = 30)
{
	expect_exit0(in_child(many_failed_forks_then_one_works),
	             "failed forks in 80 threads, then a fork");
}

/* ---- the table cannot be mapped ---- */

static long maps_count(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	long n = 0;
	int c;

	if (f == NULL)
		return -1;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

/* Freezes small regions until one fails: the table's head fills without
 * a mapping, then the freeze that needs one must fail with ENOMEM.  0, or
 * the step that went wrong. */
static char head_fill[4096][64];

static int fill_the_head(void)
{
	for (size_t i = 0; i < sizeof(head_fill) / sizeof(head_fill[0]); i++) {
		errno = 0;
		if (forkshim_freeze(head_fill[i], sizeof(head_fill[i]), NULL,
		                    0) == 0)
			return i > 0 && errno == ENOMEM ? 0 : 3;
	}
	return 3; /* the whole table fitted in the head */
}

/* After a freeze failed with ENOMEM: nothing there, the lock free, the
 * same answer again, no mapping left behind. */
static int nothing_changed(long maps_before)
{
	int status;
	pid_t pid;

	errno = 0;
	if (forkshim_find(region[0], 1) != 0 || errno != ENOENT)
		return 11;
	errno = 0;
	if (forkshim_freeze(region[0], 100, "again", 0) != 0 || errno != ENOMEM)
		return 12;
	if (maps_count() != maps_before)
		return 13;
	pid = fork();
	if (pid == 0)
		_exit(0);
	if (pid < 0 || waitpid(pid, &status, 0) != pid || status != 0)
		return 14;
	return 0;
}

/* Then, with memory there: the freeze works and the table is new. */
static int works_now(void)
{
	struct forkshim_info info;
	forkshim_handle h;

	h = forkshim_freeze(region[0], sizeof(region[0]), "now", 0);
	if (h == 0)
		return 21;
	if (forkshim_deref(h, NULL) != region[0] ||
	    forkshim_find(region[0] + 10, 1) != h)
		return 22;
	if (forkshim_info(h, &info) != 0 || info.freezes != 1 ||
	    strcmp(info.name, "now") != 0)
		return 23;
	return forkshim_thaw(h) == 0 ? 0 : 24;
}

static long vm_size_kib(void)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmSize: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

static int table_under_rlimit_as(void)
{
	struct rlimit r;
	long kib = vm_size_kib(), maps;
	forkshim_handle h;
	int rc;

	if (kib < 0)
		return 1;
	/* 32 MiB more than now: the table needs far more address space. */
	r.rlim_cur = ((rlim_t)kib << 10) + (32u << 20);
	r.rlim_max = RLIM_INFINITY;
	if (setrlimit(RLIMIT_AS, &r) != 0)
		return 2;
	maps = maps_count();
	rc = fill_the_head();
	if (rc != 0)
		return rc;
	errno = 0;
	h = forkshim_freeze(region[0], sizeof(region[0]), "first", 0);
	if (h != 0 || errno != ENOMEM)
		return 3;
	rc = nothing_changed(maps);
	if (rc != 0)
		return rc;
	r.rlim_cur = RLIM_INFINITY;
	if (setrlimit(RLIMIT_AS, &r) != 0)
		return 4;
	return works_now();
}

Test(table_create,
     freeze_past_the_head_under_rlimit_as_is_enomem_and_changes_nothing,
     .timeout = 30)
{
#ifdef UNDER_SANITIZER
	cr_skip_test("sanitizers reserve terabytes: RLIMIT_AS cannot be used");
#endif
	expect_exit0(in_child(table_under_rlimit_as), "RLIMIT_AS");
}

static int table_at_the_map_count_limit(void)
{
	long max = 0, used, maps, pages;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
	char *block;
	int rc;

	if (f == NULL || fscanf(f, "%ld", &max) != 1 || max > 1000000)
		return SKIP;
	fclose(f);
	used = maps_count();
	/* Every other page PROT_NONE: one mapping per page. */
	pages = 2 * (max - used) + 2;
	block = mmap(NULL, (size_t)pages * page, PROT_READ,
	             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (block == MAP_FAILED)
		return 1;
	for (long i = 1; i < pages; i += 2)
		if (mprotect(block + i * page, page, PROT_NONE) != 0)
			break; /* at the limit, or one short of it */
	/* A split needs two new mappings: fill what is left with single
	 * pages that cannot merge (protections alternate). */
	for (int i = 0; i < 64; i++)
		if (mmap(NULL, page, i % 2 ? PROT_READ : PROT_NONE,
		         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
		         0) == MAP_FAILED)
			break;
	if (mmap(NULL, 1u << 20, PROT_READ | PROT_WRITE,
	         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
	         0) != MAP_FAILED)
		return 2; /* not at the limit: the test is wrong */
	maps = maps_count();
	rc = fill_the_head();
	if (rc != 0)
		return rc;
	errno = 0;
	if (forkshim_freeze(region[0], sizeof(region[0]), "first", 0) != 0 ||
	    errno != ENOMEM)
		return 3;
	rc = nothing_changed(maps);
	if (rc != 0)
		return rc;
	munmap(block, (size_t)pages * page);
	return works_now();
}

Test(table_create,
     freeze_past_the_head_at_the_map_count_limit_is_enomem_changes_nothing,
     .timeout = 30)
{
	expect_exit0(in_child(table_at_the_map_count_limit),
	             "vm.max_map_count");
}

/* ---- a plugin host, and a set-user-ID host ---- */

/* Reads fd to its end (or until size - 1 bytes), NUL-terminated. */
static void read_all(int fd, char *buf, size_t size)
{
	size_t got = 0;
	ssize_t n;

	while (got < size - 1 &&
	       ((n = read(fd, buf + got, size - 1 - got)) > 0 ||
	        (n < 0 && errno == EINTR)))
		if (n > 0)
			got += (size_t)n;
	buf[got] = '\0';
}

/* Runs argv with envp; its stdout and stderr end up in out/err (short
 * outputs: each fits in a pipe, so reading one after the other is safe). */
static int run(const char *const argv[], const char *const envp[], char *out,
               size_t out_size, char *err, size_t err_size)
{
	int o[2], e[2], status;
	posix_spawn_file_actions_t fa;
	pid_t pid;

	cr_assert_eq(pipe(o), 0);
	cr_assert_eq(pipe(e), 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, o[1], 1);
	posix_spawn_file_actions_adddup2(&fa, e[1], 2);
	posix_spawn_file_actions_addclose(&fa, o[0]);
	posix_spawn_file_actions_addclose(&fa, e[0]);
	cr_assert_eq(posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv,
	                         (char *const *)envp),
	             0, "cannot start %s", argv[0]);
	posix_spawn_file_actions_destroy(&fa);
	close(o[1]);
	close(e[1]);
	read_all(o[0], out, out_size);
	read_all(e[0], err, err_size);
	close(o[0]);
	close(e[0]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	return status;
}

/* The variables a sanitizer build needs (ASan must not see leaks of
 * uninstrumented hosts, TSan not die after a multithreaded fork). */
static void pass_sanitizer_env(const char **envp, int *n)
{
	static const char *names[] = {"ASAN_OPTIONS", "UBSAN_OPTIONS",
	                              "LSAN_OPTIONS", "TSAN_OPTIONS"};
	static char vars[4][512];

	for (int i = 0; i < 4; i++) {
		const char *v = getenv(names[i]);

		if (v == NULL)
			continue;
		snprintf(vars[i], sizeof(vars[i]), "%s=%s", names[i], v);
		envp[(*n)++] = vars[i];
	}
}

Test(dlopen, shim_survives_a_thousand_dlopen_dlclose_cycles, .timeout = 60)
{
	const char *argv[] = {FAULTS_DLOPEN_HOST, FORKSHIM_LIB, "1000", NULL};
	const char *envp[8] = {"PATH=/usr/bin:/bin"};
	char out[4096], err[4096];
	int n = 1, status;

	pass_sanitizer_env(envp, &n);
	envp[n] = NULL;
	status = run(argv, envp, out, sizeof(out), err, sizeof(err));
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	          "status %#x\nstdout: %s\nstderr: %s", status, out, err);
	cr_expect(strstr(out, "dlopen: cycles 1000 forks 100\n") != NULL,
	          "stdout: %s", out);
	cr_expect_str_empty(err);
}

Test(config, environment_is_read_when_a_preinit_array_calls_the_shim_first,
     .timeout = 30)
{
	const char *argv[] = {FAULTS_EARLY_HOST, NULL};
	const char *envp[8] = {"PATH=/usr/bin:/bin", "FORKSHIM_MAX_REGIONS=2"};
	char out[4096], err[4096];
	int n = 2, status;

	pass_sanitizer_env(envp, &n);
	envp[n] = NULL;
	status = run(argv, envp, out, sizeof(out), err, sizeof(err));
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	          "status %#x\nstdout: %s\nstderr: %s", status, out, err);
	cr_expect(strstr(out, "freezes: 2 errno 12\n") != NULL,
	          "FORKSHIM_MAX_REGIONS=2 was not read: %s", out);
}

static char secure_dir[] = "/tmp/forkshim-secure-XXXXXX";
static char secure_copy[128], secure_logs[128];

static void secure_cleanup(void)
{
	char cmd[256];

	if (secure_dir[sizeof(secure_dir) - 2] == 'X')
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", secure_dir);
	if (system(cmd) != 0)
		cr_log_warn("could not remove %s", secure_dir);
}

/* A set-user-ID copy of secure_host owned by daemon (uid 1), in a
 * directory anyone may enter; logs/ is writable by anyone, so a log file
 * the shim wrongly opened would be there. */
static void secure_setup(void)
{
	char cmd[2048];
	struct statvfs vfs;

#ifdef UNDER_SANITIZER
	cr_skip_test("LeakSanitizer cannot run in a set-user-ID process");
#endif
	if (getuid() != 0)
		cr_skip_test("needs root to make a set-user-ID copy");
	cr_assert_not_null(mkdtemp(secure_dir));
	snprintf(secure_copy, sizeof(secure_copy), "%s/secure_host",
	         secure_dir);
	snprintf(secure_logs, sizeof(secure_logs), "%s/logs", secure_dir);
	snprintf(cmd, sizeof(cmd),
	         "cp %s %s && chown 1:1 %s && chmod 4755 %s && chmod 755 %s "
	         "&& mkdir -m 1777 %s",
	         FAULTS_SECURE_HOST, secure_copy, secure_copy, secure_copy,
	         secure_dir, secure_logs);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	cr_assert_eq(statvfs(secure_dir, &vfs), 0);
	if (vfs.f_flag & ST_NOSUID)
		cr_skip_test("%s is mounted nosuid", secure_dir);
}

Test(secure, setuid_copy_ignores_the_environment_and_creates_no_file,
     .init = secure_setup, .fini = secure_cleanup, .timeout = 30)
{
	char log_var[256], report_var[256], out[4096], err[4096];
	const char *argv[] = {secure_copy, NULL};
	const char *envp[] = {
	    "FORKSHIM_LOG=debug",   log_var,    "FORKSHIM_MAX_REGIONS=2",
	    "FORKSHIM_GUARD=bogus", report_var, NULL};
	int o[2], e[2], status, entries = 0;
	pid_t pid;
	DIR *d;

	snprintf(log_var, sizeof(log_var), "FORKSHIM_LOG_FILE=%s/log",
	         secure_logs);
	snprintf(report_var, sizeof(report_var), "FORKSHIM_REPORT=%s",
	         secure_logs);
	cr_assert_eq(pipe(o), 0);
	cr_assert_eq(pipe(e), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dup2(o[1], 1);
		dup2(e[1], 2);
		if (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 ||
		    setuid(NOBODY) != 0)
			_exit(SKIP);
		execve(argv[0], (char *const *)argv, (char *const *)envp);
		_exit(127);
	}
	close(o[1]);
	close(e[1]);
	read_all(o[0], out, sizeof(out));
	read_all(e[0], err, sizeof(err));
	close(o[0]);
	close(e[0]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	if (WIFEXITED(status) && WEXITSTATUS(status) == SKIP)
		cr_skip_test("cannot become nobody");
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	          "status %#x\nstdout: %s\nstderr: %s", status, out, err);
	cr_expect(strstr(out, "secure: 1\n") != NULL, "not AT_SECURE: %s", out);
	cr_expect(strstr(out, "freezes: 3\n") != NULL,
	          "FORKSHIM_MAX_REGIONS=2 was read: %s", out);
	cr_expect(strstr(out, "child: ok\n") != NULL, "stdout: %s", out);
	cr_expect_str_empty(err, "the environment was read: %s", err);
	d = opendir(secure_logs);
	cr_assert_not_null(d);
	for (struct dirent *de; (de = readdir(d)) != NULL;)
		entries += de->d_name[0] != '.';
	closedir(d);
	cr_expect_eq(entries, 0, "the shim created files in %s", secure_logs);
}
