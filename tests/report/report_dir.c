/* The report directory rule (issue 14, class 3), at the launcher:
 * `forkshim --report DIR` makes a missing DIR with mode 0700 (its parent
 * must exist) and refuses, with exit status 2 and a message naming the
 * directory, its owner and mode and what would make it acceptable, an
 * existing DIR that is a symbolic link, not a directory, not owned by the
 * effective uid, or writable by group or others.  The attack: a second,
 * unprivileged user (nobody, through setpriv) makes the directory first,
 * or a link in its place. */
#include <criterion/criterion.h>
#include <sys/stat.h>

#include "../guard/guard_run.h"

static char base[64];

static void setup(void)
{
	guard_mkdir(base, sizeof(base));
	/* So that nobody can make things in it, as in /tmp. */
	cr_assert_eq(chmod(base, 01777), 0);
}

static void rm_rf(const char *path)
{
	const char *argv[] = {"/bin/rm", "-rf", path, NULL};
	struct host_env e;
	struct host_run r;

	HOST_RUN(&r, argv, .envp = guard_env(&e, NULL, NULL, 0),
	         .timeout_s = 30);
	host_run_free(&r);
}

static void teardown(void)
{
	rm_rf(base);
}

TestSuite(report_dir, .init = setup, .fini = teardown, .timeout = 120);

/* forkshim --report path -- sh -c 'echo "$FORKSHIM_REPORT"' */
static void launch(struct host_run *r, const char *path)
{
	const char *argv[] = {REPORT_LAUNCHER,
	                      "--report",
	                      path,
	                      "--",
	                      "/bin/sh",
	                      "-c",
	                      "echo \"$FORKSHIM_REPORT\"",
	                      NULL};
	struct host_env e;

	host_env_plain(&e);
	host_env_sanitizer(&e);
	host_env_runtime(&e);
	HOST_RUN(r, argv, .envp = e.vars, .timeout_s = 30);
}

static void in_base(char *out, size_t size, const char *name)
{
	snprintf(out, size, "%s/%s", base, name);
}

/* Refused: exit 2, nothing run, a message with each of says. */
static void refused(const char *path, const char *const says[])
{
	struct host_run r;

	launch(&r, path);
	cr_expect(host_exited_with(&r, 2), "%s: " HOST_RUN_FMT, path,
	          HOST_RUN_ARGS(r));
	cr_expect_str_empty(r.out.data, "%s: the command ran", path);
	for (int i = 0; says[i] != NULL; i++)
		cr_expect(strstr(r.err.data, says[i]) != NULL,
		          "%s: expected \"%s\" in:\n%s", path, says[i],
		          r.err.data);
	host_run_free(&r);
}

Test(report_dir, a_missing_directory_is_made_0700)
{
	char path[128], line[160];
	struct stat st;
	struct host_run r;

	in_base(path, sizeof(path), "reports");
	launch(&r, path);
	cr_assert(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	snprintf(line, sizeof(line), "%s\n", path);
	cr_expect_str_eq(r.out.data, line);
	cr_assert_eq(lstat(path, &st), 0);
	cr_expect(S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0700 &&
	              st.st_uid == geteuid(),
	          "mode %o uid %u", st.st_mode, st.st_uid);
	host_run_free(&r);
	/* And, now ours and private, it is accepted as it is. */
	launch(&r, path);
	cr_expect(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	host_run_free(&r);
}

Test(report_dir, a_missing_parent_is_an_error_not_made)
{
	char path[128];
	struct stat st;

	in_base(path, sizeof(path), "no/such/reports");
	refused(path, (const char *const[]){"--report ", "no/such/reports: ",
	                                    "No such file or directory", NULL});
	in_base(path, sizeof(path), "no");
	cr_expect_neq(lstat(path, &st), 0, "a parent was made");
}

Test(report_dir, a_directory_another_user_made_first_is_refused)
{
	char path[128], script[256], uid[64], want[128];

	if (geteuid() != 0)
		cr_skip_test("needs root to act as a second user");
	in_base(path, sizeof(path), "demo");
	/* Even private to nobody, it is not ours: nobody could read and
	 * replace what we write. */
	snprintf(script, sizeof(script), "mkdir -m 0700 %s", path);
	guard_as_nobody(script);
	snprintf(uid, sizeof(uid), "owned by uid 65534");
	snprintf(want, sizeof(want),
	         "owned by you (uid %u) and not writable by group or others",
	         geteuid());
	refused(path,
	        (const char *const[]){path, uid, "mode 0700", want, NULL});
}

Test(report_dir, a_world_writable_directory_is_refused)
{
	char path[128], owner[64];

	snprintf(owner, sizeof(owner), "owned by uid %u", geteuid());
	in_base(path, sizeof(path), "shared");
	cr_assert_eq(mkdir(path, 0700), 0);
	cr_assert_eq(chmod(path, 0777), 0);
	refused(path, (const char *const[]){path, owner, "mode 0777",
	                                    "writable by group "
	                                    "or others",
	                                    NULL});
	/* Sticky, like /tmp: still refused (another user's files in it
	 * would be read). */
	cr_assert_eq(chmod(path, 01777), 0);
	refused(path, (const char *const[]){path, "mode 1777", NULL});
	cr_assert_eq(chmod(path, 0770), 0);
	refused(path, (const char *const[]){path, "mode 0770", NULL});
}

Test(report_dir, a_symbolic_link_is_refused_even_to_our_own_directory)
{
	char path[128], target[128], script[320];

	if (geteuid() != 0)
		cr_skip_test("needs root to act as a second user");
	in_base(target, sizeof(target), "ours");
	cr_assert_eq(mkdir(target, 0700), 0);
	in_base(path, sizeof(path), "link");
	snprintf(script, sizeof(script), "ln -s %s %s", target, path);
	guard_as_nobody(script);
	refused(path, (const char *const[]){path, "a symbolic link", NULL});
}

Test(report_dir, a_file_is_refused)
{
	char path[128];
	FILE *f;

	in_base(path, sizeof(path), "file");
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fclose(f);
	refused(path, (const char *const[]){path, "not a directory", NULL});
}
