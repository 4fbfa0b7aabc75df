/* The report directory itself (issue 14, classes 3 and 5, and a full
 * disk).  FORKSHIM_REPORT must name a directory, not a symlink, owned by
 * the process's user and writable by nobody else; otherwise the shim says
 * so once and writes no reports, and the program runs unchanged.  A
 * directory another user made first (README's old /tmp/demo) with a FIFO
 * planted in it is the attack.  The value is the one at load, whatever
 * the host does to its environment block later (setproctitle).  A full
 * disk is said once per process on the log. */
#include <criterion/criterion.h>
#include <sys/mman.h>
#include <sys/mount.h>

#include "hostile_run.h"

static const char *const family_argv[] = {HOSTILE_HOST, "family", NULL};

struct plant {
	char dir[128];
};

/* As nobody: a directory of its own anyone may write, and a FIFO in it
 * where the audit's exit-time scan looks. */
static int make_trap(void *arg)
{
	struct plant *p = arg;
	char fifo[256];

	snprintf(p->dir, sizeof(p->dir), "/tmp/forkshim-trap-XXXXXX");
	if (mkdtemp(p->dir) == NULL || chmod(p->dir, 0777) != 0)
		return 1;
	snprintf(fifo, sizeof(fifo), "%s/audit-1.jsonl", p->dir);
	return mkfifo(fifo, 0666);
}

static void run_family(struct hr *h, const char *dir, const char *guard)
{
	char report[256], gd[64];
	const char *extra[3] = {report, NULL, NULL};
	struct host_env envp;

	snprintf(report, sizeof(report), "FORKSHIM_REPORT=%s", dir);
	if (guard != NULL) {
		snprintf(gd, sizeof(gd), "FORKSHIM_GUARD=%s", guard);
		extra[1] = gd;
	}
	hr_run(h, family_argv, hr_env(&envp, extra), 15);
}

/* The program's own lines are the same as without the shim. */
static void expect_family_ran(const struct hr *h)
{
	cr_expect(host_exited_with(&h->r, 0), HOST_RUN_FMT,
	          HOST_RUN_ARGS(h->r));
	cr_expect(strstr(h->r.out.data, "exited 0\n") != NULL, "%s",
	          h->r.out.data);
}

static int count(const char *text, const char *needle)
{
	int n = 0;

	for (const char *s = text; (s = strstr(s, needle)) != NULL; s++)
		n++;
	return n;
}

static void expect_refused(const struct hr *h, const char *dir,
                           const char *owner, const char *mode)
{
	char needle[300];

	snprintf(needle, sizeof(needle), "FORKSHIM_REPORT=%s", dir);
	cr_expect(strstr(h->r.err.data, needle) != NULL, "no %s in:\n%s",
	          needle, h->r.err.data);
	cr_expect(strstr(h->r.err.data, owner) != NULL, "no %s in:\n%s", owner,
	          h->r.err.data);
	cr_expect(strstr(h->r.err.data, mode) != NULL, "no %s in:\n%s", mode,
	          h->r.err.data);
	/* Said once, by the process that loaded it (the child inherits). */
	cr_expect(count(h->r.err.data, needle) <= 1, "said more than once:\n%s",
	          h->r.err.data);
}

Test(dir, another_users_directory_is_refused_and_its_fifo_never_opened)
{
	/* Shared: the name is the one nobody's mkdtemp chose. */
	struct plant *shared =
	    mmap(NULL, sizeof(struct plant), PROT_READ | PROT_WRITE,
	         MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct plant p;
	struct hr h;

	hr_need_root();
	cr_assert_neq(shared, MAP_FAILED);
	cr_assert_eq(hr_as_nobody(make_trap, shared), 0, "nobody's trap");
	p = *shared;
	munmap(shared, sizeof(*shared));
	run_family(&h, p.dir, "audit");
	cr_expect(!h.r.timed_out, "hung (a FIFO opened?): " HOST_RUN_FMT,
	          HOST_RUN_ARGS(h.r));
	expect_family_ran(&h);
	expect_refused(&h, p.dir, "uid 65534", "mode 0777");
	cr_expect_eq(hr_count(p.dir, "report-"), 0, "reports written there");
	cr_expect_eq(hr_count(p.dir, "audit-"), 1, "audit files written there");
	hr_rmdir(p.dir);
}

static void expect_mode_refused(mode_t mode, const char *shown)
{
	char dir[64];
	struct hr h;

	hr_mkdtemp(dir, sizeof(dir), "mode");
	cr_assert_eq(chmod(dir, mode), 0);
	run_family(&h, dir, "audit");
	expect_family_ran(&h);
	expect_refused(&h, dir, "uid 0", shown);
	cr_expect_eq(hr_count(dir, "report-") + hr_count(dir, "audit-"), 0,
	             "files written into a mode %s directory", shown);
	hr_rmdir(dir);
}

Test(dir, group_or_world_writable_directories_are_refused)
{
	hr_need_root();
	expect_mode_refused(01777, "mode 1777");
	expect_mode_refused(0770, "mode 0770");
	expect_mode_refused(0702, "mode 0702");
}

Test(dir, a_symlink_is_refused)
{
	char dir[64], link[128];
	struct hr h;

	hr_mkdtemp(dir, sizeof(dir), "target");
	snprintf(link, sizeof(link), "%s-link", dir);
	cr_assert_eq(symlink(dir, link), 0);
	run_family(&h, link, "audit");
	expect_family_ran(&h);
	cr_expect(strstr(h.r.err.data, link) != NULL &&
	              strstr(h.r.err.data, "symlink") != NULL,
	          "%s", h.r.err.data);
	cr_expect_eq(hr_count(dir, "report-") + hr_count(dir, "audit-"), 0);
	unlink(link);
	hr_rmdir(dir);
}

Test(dir, a_private_directory_of_the_user_gets_the_reports)
{
	char dir[64];
	struct hr h;

	hr_mkdtemp(dir, sizeof(dir), "own");
	cr_assert_eq(chmod(dir, 0755), 0); /* readable by others is fine */
	run_family(&h, dir, "audit");
	expect_family_ran(&h);
	cr_expect_str_empty(h.r.err.data);
	cr_expect_eq(hr_count(dir, "report-"), 2);
	cr_expect_eq(hr_count(dir, "audit-"), 1);
	hr_rmdir(dir);
}

/* ---- the environment block reused (setproctitle) ---- */

static void remove_at_root(const char *out, const char *prefix)
{
	const char *s = strstr(out, prefix);
	char path[64];

	if (s == NULL)
		return;
	snprintf(path, sizeof(path), "/report-%ld.jsonl",
	         strtol(s + strlen(prefix), NULL, 10));
	cr_expect(access(path, F_OK) != 0, "a report went to %s", path);
	unlink(path);
}

Test(environ, a_value_overwritten_in_place_is_not_followed)
{
	char dir[64], other[64];
	const char *argv[] = {HOSTILE_HOST, "title", "copy", other, NULL};
	char report[128];
	const char *extra[] = {report, NULL};
	struct host_env envp;
	struct hr h;

	hr_mkdtemp(dir, sizeof(dir), "title");
	hr_mkdtemp(other, sizeof(other), "title");
	snprintf(report, sizeof(report), "FORKSHIM_REPORT=%s", dir);
	hr_run(&h, argv, hr_env(&envp, extra), 15);
	expect_family_ran(&h);
	cr_expect_eq(hr_count(other, "report-"), 0,
	             "reports followed the new title");
	cr_expect_eq(hr_count(dir, "report-"), 2);
	hr_rmdir(dir);
	hr_rmdir(other);
}

Test(environ, a_zeroed_environment_block_sends_nothing_to_the_root)
{
	char dir[64];
	const char *argv[] = {HOSTILE_HOST, "title", "zero", NULL};
	char report[128];
	const char *extra[] = {report, NULL};
	struct host_env envp;
	struct hr h;

	hr_mkdtemp(dir, sizeof(dir), "zero");
	snprintf(report, sizeof(report), "FORKSHIM_REPORT=%s", dir);
	hr_run(&h, argv, hr_env(&envp, extra), 15);
	expect_family_ran(&h);
	remove_at_root(h.r.out.data, "pid ");
	remove_at_root(h.r.out.data, "child ");
	cr_expect_eq(hr_count(dir, "report-"), 2);
	hr_rmdir(dir);
}

/* ---- a full disk ---- */

Test(disk, a_report_that_cannot_be_written_is_said_once_per_process)
{
	char dir[64], filler[128];
	char buf[4096];
	struct hr h;
	int fd, said = 0;

	hr_need_root();
	hr_mkdtemp(dir, sizeof(dir), "full");
	if (mount("tmpfs", dir, "tmpfs", 0, "size=64k,mode=0700") != 0) {
		rmdir(dir);
		cr_skip_test("cannot mount a tmpfs: %s", strerror(errno));
	}
	snprintf(filler, sizeof(filler), "%s/filler", dir);
	fd = open(filler, O_WRONLY | O_CREAT, 0600);
	cr_assert_geq(fd, 0);
	memset(buf, 'x', sizeof(buf));
	while (write(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
	run_family(&h, dir, NULL);
	expect_family_ran(&h);
	for (const char *s = h.r.err.data;
	     (s = strstr(s, "report could not be written")) != NULL; s++)
		said++;
	cr_expect_eq(said, 2, "parent and child should each say it once:\n%s",
	             h.r.err.data);
	umount(dir);
	rmdir(dir);
}
