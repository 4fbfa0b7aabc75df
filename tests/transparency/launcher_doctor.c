/* launcher_doctor: `forkshim doctor COMMAND` gives the right verdict.
 *
 * ok for python3 and bash (they call fork), cannot for a static program,
 * a set-user-ID or set-group-ID copy, a copy with file capabilities and a
 * program whose library the loader cannot find, limited for a program that
 * forks by raw syscall only (as Go programs do); #! scripts are judged by
 * their interpreter, libraries are found where the loader finds them
 * (RUNPATH, LD_LIBRARY_PATH), and where the doctor says a program works,
 * the real loader agrees. */
#include <criterion/criterion.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>

#include "tp_run.h"

TestSuite(doctor, .fini = tp_cleanup);

static const struct tp_opts opts = {.timeout_s = 30};

static void doctor(struct host_run *r, const char *command,
                   const char *const extra_env[])
{
	const char *const argv[] = {TP_LAUNCHER, "doctor", command, NULL};
	const struct tp_opts o = {.extra_env = extra_env, .timeout_s = 30};

	tp_run(r, argv, &o);
}

/* The first line of the output. */
static char *verdict(const struct host_run *r)
{
	return strndup(r->out.data, strcspn(r->out.data, "\n"));
}

/* Every line after the verdict is an indented detail. */
static void expect_details_indented(const struct host_run *r)
{
	const char *line = strchr(r->out.data, '\n');

	cr_expect_not_null(line, "no details:\n%s", r->out.data);
	for (; line && line[1]; line = strchr(line + 1, '\n'))
		cr_expect(strncmp(line + 1, "  ", 2) == 0,
		          "not a detail line: %.60s", line + 1);
}

static void expect_verdict(const struct host_run *r, int code,
                           const char *prefix)
{
	char *v = verdict(r);

	cr_expect(host_exited_with(r, code), HOST_RUN_FMT, HOST_RUN_ARGS(*r));
	cr_expect(strncmp(v, prefix, strlen(prefix)) == 0,
	          "verdict \"%s\", expected it to start with \"%s\"", v,
	          prefix);
	cr_expect_str_empty(r->err.data);
	expect_details_indented(r);
	free(v);
}

/* A copy of a built dynamic program that calls fork, in dir. */
static char *copy_of_fork_server(const char *dir, const char *name)
{
	char *copy = tp_path(dir, name), *bytes;
	size_t len;
	int fd;

	bytes = tp_read_file(TP_FORK_SERVER, &len);
	fd = open(copy, O_WRONLY | O_CREAT | O_CLOEXEC, 0755);
	cr_assert_geq(fd, 0, "%s: %s", copy, strerror(errno));
	cr_assert_eq(write(fd, bytes, len), (ssize_t)len);
	cr_assert_eq(close(fd), 0);
	free(bytes);
	return copy;
}

static bool mounted_nosuid(const char *path)
{
	struct statvfs vfs;

	return statvfs(path, &vfs) == 0 && (vfs.f_flag & ST_NOSUID);
}

Test(doctor, python3_can_be_preloaded_and_calls_fork)
{
	struct host_run r;

	doctor(&r, "/usr/bin/python3", NULL);
	expect_verdict(&r, 0,
	               "forkshim doctor: ok: /usr/bin/python3 can be "
	               "preloaded; it calls fork");
	cr_expect(strstr(r.out.data, "\n  fork         imported by "), "%s",
	          r.out.data);
	cr_expect(strstr(r.out.data, "\n  library      libc.so.6 => "), "%s",
	          r.out.data);
	/* This machine has memfds with seals and /proc. */
	cr_expect(strstr(r.out.data, "\n  shared       available ("), "%s",
	          r.out.data);
	cr_expect(strstr(r.out.data, "not from a program that makes itself "
	                             "non-dumpable (imports: EACCES)\n"),
	          "%s", r.out.data);
	host_run_free(&r);
}

/* Runs argv (the doctor on python3, somewhere shared regions cannot
 * work): the verdict is unchanged (the shim itself loads) and the shared
 * line says "not available: " followed by why and each of the
 * fragments. */
static void expect_shared_unavailable(const char *const argv[], const char *why,
                                      const char *const fragments[])
{
	char want[256];
	struct host_run r;

	tp_run(&r, argv, &opts);
	expect_verdict(&r, 0,
	               "forkshim doctor: ok: /usr/bin/python3 can be "
	               "preloaded; it calls fork");
	snprintf(want, sizeof(want), "\n  shared       not available: %s", why);
	cr_expect(strstr(r.out.data, want), "%s", r.out.data);
	for (size_t i = 0; fragments[i] != NULL; i++)
		cr_expect(strstr(r.out.data, fragments[i]), "no \"%s\" in:\n%s",
		          fragments[i], r.out.data);
	host_run_free(&r);
}

/* Where shared regions cannot work, the doctor says so and why.  Without
 * memfd_create (a seccomp profile, as some containers have): */
Test(doctor, says_shared_regions_are_unavailable_without_memfd)
{
	const char *const argv[] = {TP_NOMEMFD, TP_LAUNCHER, "doctor",
	                            "/usr/bin/python3", NULL};
	const char *const fragments[] = {"(FORKSHIM_SHARED freezes fail)\n",
	                                 NULL};

	expect_shared_unavailable(
	    argv, "memfd_create: Function not implemented", fragments);
}

/* ... and without /proc (unmounted in a mount namespace of its own):
 * late children and exec'd workers reopen a region through
 * /proc/PID/fd. */
Test(doctor, says_shared_regions_are_unavailable_without_proc)
{
	const char *const argv[] = {
	    "/usr/bin/unshare",
	    "-m",
	    "--propagation",
	    "private",
	    "/bin/sh",
	    "-c",
	    "umount -l /proc && exec \"$0\" doctor /usr/bin/python3",
	    TP_LAUNCHER,
	    NULL};
	const char *const fragments[] = {
	    "(is /proc mounted?): late children and exec'd workers cannot map "
	    "shared regions\n",
	    NULL};

	if (FORKSHIM_SANITIZER_RT[0] != '\0')
		cr_skip_test("a sanitizer's runtime needs /proc");
	if (getuid() != 0 || access(argv[0], X_OK) != 0)
		cr_skip_test("unmounting /proc needs root and unshare(1)");
	expect_shared_unavailable(argv, "/proc/self/fd/", fragments);
}

/* The shmem huge page setting, read here too: where it is off, the doctor
 * says how to turn it on. */
Test(doctor, says_whether_shared_regions_get_huge_pages)
{
	struct host_run r;
	char buf[128] = "", want[160];
	FILE *f =
	    fopen("/sys/kernel/mm/transparent_hugepage/shmem_enabled", "re");
	char *l, *e;

	cr_assert_not_null(f, "no shmem_enabled on this kernel");
	cr_assert_not_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	l = strchr(buf, '[');
	e = l ? strchr(l, ']') : NULL;
	cr_assert_not_null(e, "%s", buf);
	*e = 0;
	doctor(&r, "/usr/bin/python3", NULL);
	expect_verdict(&r, 0,
	               "forkshim doctor: ok: /usr/bin/python3 can be "
	               "preloaded; it calls fork");
	if (strcmp(l + 1, "never") == 0 || strcmp(l + 1, "deny") == 0) {
		snprintf(want, sizeof(want),
		         "\n  huge pages   off for shared regions "
		         "(shmem_enabled: %s)",
		         l + 1);
		cr_expect(strstr(r.out.data, want), "%s", r.out.data);
		cr_expect(strstr(r.out.data,
		                 "as root: echo advise > /sys/kernel/mm/"
		                 "transparent_hugepage/shmem_enabled\n"),
		          "%s", r.out.data);
	} else {
		snprintf(want, sizeof(want),
		         "\n  huge pages   on for shared regions of 4 MiB or "
		         "more (shmem_enabled: %s)\n",
		         l + 1);
		cr_expect(strstr(r.out.data, want), "%s", r.out.data);
	}
	host_run_free(&r);
}

Test(doctor, bash_found_in_path_can_be_preloaded_and_calls_fork)
{
	struct host_run r;
	char *v;

	doctor(&r, "bash", NULL);
	expect_verdict(&r, 0, "forkshim doctor: ok: /");
	v = verdict(&r);
	cr_expect(strstr(v, "/bash can be preloaded; it calls fork"), "%s", v);
	free(v);
	host_run_free(&r);
}

Test(doctor, make_that_only_spawns_is_ok_with_nothing_to_hand_over)
{
	struct host_run r;
	char *v;

	if (access(TP_MAKE, X_OK) != 0)
		cr_skip_test("no make program (%s)", TP_MAKE);
	doctor(&r, TP_MAKE, NULL);
	expect_verdict(&r, 0, "forkshim doctor: ok: ");
	v = verdict(&r);
	cr_expect(strstr(v, "it does not call fork: it starts programs with "
	                    "posix_spawn"),
	          "%s", v);
	free(v);
	host_run_free(&r);
}

Test(doctor, static_program_cannot_be_preloaded)
{
	const char *const where[] = {TP_CC, "-print-file-name=libc.a", NULL};
	char *dir, *prog, *v;
	struct host_run r;

	tp_run(&r, where, &opts);
	r.out.data[strcspn(r.out.data, "\n")] = '\0';
	if (!host_exited_with(&r, 0) || r.out.data[0] != '/' ||
	    access(r.out.data, R_OK) != 0) {
		host_run_free(&r);
		cr_skip_test("no libc.a for %s: cannot build a static program "
		             "(Debian: libc6-dev)",
		             TP_CC);
	}
	host_run_free(&r);
	dir = tp_mkdtemp();
	prog = tp_path(dir, "static_fork");
	const char *const build[] = {TP_CC,
	                             "-static",
	                             "-o",
	                             prog,
	                             FORKSHIM_SOURCE_DIR
	                             "/tests/transparency/static_fork.c",
	                             NULL};
	tp_run(&r, build, &opts);
	cr_assert(host_exited_with(&r, 0), "cc -static: " HOST_RUN_FMT,
	          HOST_RUN_ARGS(r));
	host_run_free(&r);

	doctor(&r, prog, NULL);
	v = verdict(&r);
	cr_expect(host_exited_with(&r, 1), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(strstr(v, "forkshim doctor: cannot: ") == v &&
	              strstr(v, "/static_fork is statically linked"),
	          "%s", v);
	cr_expect(strstr(r.out.data, "statically linked\n"), "%s", r.out.data);
	expect_details_indented(&r);
	free(v);
	host_run_free(&r);
	free(prog);
	tp_rmtree(dir);
}

Test(doctor, set_user_id_copy_cannot_be_preloaded)
{
	char *dir = tp_mkdtemp(), *copy = copy_of_fork_server(dir, "server");
	struct host_run r;
	char *v;

	/* the copy as built is fine ... */
	doctor(&r, copy, NULL);
	expect_verdict(&r, 0, "forkshim doctor: ok: ");
	host_run_free(&r);

	/* ... until it is set-user-ID */
	cr_assert_eq(chmod(copy, 04755), 0);
	doctor(&r, copy, NULL);
	v = verdict(&r);
	if (mounted_nosuid(copy)) {
		expect_verdict(&r, 0, "forkshim doctor: ok: ");
		cr_expect(strstr(r.out.data, "mounted nosuid"), "%s",
		          r.out.data);
	} else {
		expect_verdict(&r, 1, "forkshim doctor: cannot: ");
		cr_expect(strstr(v,
		                 "/server is set-user-ID: the loader ignores "
		                 "LD_PRELOAD for it"),
		          "%s", v);
	}
	free(v);
	host_run_free(&r);
	free(copy);
	tp_rmtree(dir);
}

Test(doctor, set_group_id_copy_cannot_be_preloaded)
{
	char *dir = tp_mkdtemp(), *copy = copy_of_fork_server(dir, "server");
	struct host_run r;
	char *v;

	if (mounted_nosuid(copy))
		cr_skip_test("%s is on a nosuid file system", dir);
	cr_assert_eq(chmod(copy, 02755), 0);
	doctor(&r, copy, NULL);
	expect_verdict(&r, 1, "forkshim doctor: cannot: ");
	v = verdict(&r);
	cr_expect(strstr(v, "/server is set-group-ID"), "%s", v);
	free(v);
	host_run_free(&r);

	/* set-group-ID without group execute is mandatory locking, no
	 * set-ID at all */
	cr_assert_eq(chmod(copy, 02745), 0);
	doctor(&r, copy, NULL);
	expect_verdict(&r, 0, "forkshim doctor: ok: ");
	host_run_free(&r);
	free(copy);
	tp_rmtree(dir);
}

Test(doctor, copy_with_file_capabilities_cannot_be_preloaded)
{
	char *dir = tp_mkdtemp(), *copy = copy_of_fork_server(dir, "server");
	/* vfs_cap_data revision 2: effective, cap_net_bind_service (10) */
	const unsigned int caps[5] = {0x02000001u, 1u << 10, 0, 0, 0};
	struct host_run r;
	char *v;

	if (setxattr(copy, "security.capability", caps, sizeof(caps), 0) != 0)
		cr_skip_test("cannot set file capabilities here (%s): needs "
		             "root or CAP_SETFCAP",
		             strerror(errno));
	if (mounted_nosuid(copy))
		cr_skip_test("%s is on a nosuid file system", dir);
	doctor(&r, copy, NULL);
	expect_verdict(&r, 1, "forkshim doctor: cannot: ");
	v = verdict(&r);
	cr_expect(strstr(v, "/server has file capabilities"), "%s", v);
	free(v);
	host_run_free(&r);
	free(copy);
	tp_rmtree(dir);
}

Test(doctor, raw_syscall_forker_is_limited_and_its_children_work)
{
	const char *const argv[] = {TP_RAWFORK, NULL};
	struct host_run r;
	char *v;

	doctor(&r, TP_RAWFORK, NULL);
	expect_verdict(
	    &r, 0, "forkshim doctor: limited: " TP_RAWFORK " can be preloaded");
	v = verdict(&r);
	cr_expect(strstr(v, "children it forks by raw syscall work, but "
	                    "visible() cannot see them"),
	          "%s", v);
	cr_expect(strstr(r.out.data, "\n  syscall      imported by "), "%s",
	          r.out.data);
	cr_expect_null(strstr(r.out.data, "\n  fork "), "%s", r.out.data);
	free(v);
	host_run_free(&r);

	/* and indeed: under the launcher its child works */
	tp_launched(&r, NULL, argv, &opts);
	cr_expect(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect_str_eq(r.out.data, "child exit status 7\n");
	host_run_free(&r);
}

Test(doctor, fork_in_a_library_found_through_runpath_counts)
{
	struct host_run r;

	doctor(&r, TP_VIA_LIB, NULL);
	expect_verdict(&r, 0,
	               "forkshim doctor: ok: " TP_VIA_LIB
	               " can be preloaded; it calls fork");
	cr_expect(strstr(r.out.data, "libtp_forker.so => " TP_FORKER_DIR
	                             "/libtp_forker.so (RUNPATH)"),
	          "%s", r.out.data);
	cr_expect(strstr(r.out.data, "fork         imported by "), "%s",
	          r.out.data);
	host_run_free(&r);
}

Test(doctor, library_the_loader_cannot_find_means_cannot)
{
	const char *const env[] = {"LD_LIBRARY_PATH=" TP_FORKER_DIR, NULL};
	const char *const argv[] = {TP_VIA_LIB_NORPATH, NULL};
	const struct tp_opts with_env = {.extra_env = env, .timeout_s = 30};
	struct host_run r;

	doctor(&r, TP_VIA_LIB_NORPATH, NULL);
	expect_verdict(&r, 1,
	               "forkshim doctor: cannot: " TP_VIA_LIB_NORPATH
	               " needs libtp_forker.so, which the loader "
	               "cannot find");
	host_run_free(&r);
	/* the loader agrees: it does not start */
	tp_run(&r, argv, &opts);
	cr_expect(host_exited_with(&r, 127), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	host_run_free(&r);

	/* with LD_LIBRARY_PATH, both the doctor and the loader find it */
	doctor(&r, TP_VIA_LIB_NORPATH, env);
	expect_verdict(&r, 0,
	               "forkshim doctor: ok: " TP_VIA_LIB_NORPATH
	               " can be preloaded; it calls fork");
	cr_expect(strstr(r.out.data, "(LD_LIBRARY_PATH)"), "%s", r.out.data);
	host_run_free(&r);
	tp_run(&r, argv, &with_env);
	cr_expect(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	host_run_free(&r);
}

Test(doctor, script_is_judged_by_its_interpreter)
{
	char *dir = tp_mkdtemp(), *direct = tp_path(dir, "direct.sh");
	char *via_env = tp_path(dir, "via-env.sh"),
	     *bare = tp_path(dir, "bare");
	char *to_raw = tp_path(dir, "to-raw"), *text, *v, *want;
	struct host_run r;

	tp_write_file(direct, "#!/bin/bash -e\necho hi\n", 0755);
	tp_write_file(via_env, "#!/usr/bin/env bash\necho hi\n", 0755);
	tp_write_file(bare, "echo no interpreter line\n", 0755);
	cr_assert_geq(asprintf(&text, "#!%s\n", TP_RAWFORK), 0);
	tp_write_file(to_raw, text, 0755);

	doctor(&r, direct, NULL);
	expect_verdict(&r, 0, "forkshim doctor: ok: ");
	cr_assert_geq(asprintf(&want,
	                       "%s runs /bin/bash, which can be "
	                       "preloaded; it calls fork",
	                       direct),
	              0);
	v = verdict(&r);
	cr_expect(strstr(v, want), "%s", v);
	free(v);
	free(want);
	cr_expect(strstr(r.out.data, "#!/bin/bash -e"), "%s", r.out.data);
	host_run_free(&r);

	doctor(&r, via_env, NULL);
	expect_verdict(&r, 0, "forkshim doctor: ok: ");
	cr_assert_geq(asprintf(&want, "%s runs /usr/bin/env, which", via_env),
	              0);
	v = verdict(&r);
	cr_expect_null(strstr(v, want), "env itself is not the program: %s", v);
	cr_expect(strstr(v, "/bash, which can be preloaded; it calls fork"),
	          "%s", v);
	free(v);
	free(want);
	host_run_free(&r);

	/* no #! and not ELF: execvp hands it to /bin/sh */
	doctor(&r, bare, NULL);
	expect_verdict(&r, 0, "forkshim doctor: ok: ");
	v = verdict(&r);
	cr_expect(strstr(v, "runs /bin/sh, which can be preloaded"), "%s", v);
	free(v);
	host_run_free(&r);

	doctor(&r, to_raw, NULL);
	expect_verdict(&r, 0, "forkshim doctor: limited: ");
	host_run_free(&r);

	free(text);
	free(direct);
	free(via_env);
	free(bare);
	free(to_raw);
	tp_rmtree(dir);
}

Test(doctor, what_cannot_be_examined_exits_with_2)
{
	char *dir = tp_mkdtemp(), *plain = tp_path(dir, "not-executable");
	const char *const no_command[] = {TP_LAUNCHER, "doctor", NULL};
	const char *const bad_option[] = {TP_LAUNCHER, "doctor", "--bogus",
	                                  "bash", NULL};
	const char not_found[] =
	    "forkshim doctor: error: "
	    "forkshim-no-such-command: command not found\n";
	struct host_run r;

	doctor(&r, "forkshim-no-such-command", NULL);
	cr_expect(host_exited_with(&r, 2), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect_str_empty(r.out.data);
	cr_expect(strncmp(r.err.data, not_found, strlen(not_found)) == 0, "%s",
	          r.err.data);
	host_run_free(&r);

	tp_write_file(plain, "echo hi\n", 0644);
	doctor(&r, plain, NULL);
	cr_expect(host_exited_with(&r, 2), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(strstr(r.err.data, "cannot be executed"), "%s", r.err.data);
	host_run_free(&r);

	doctor(&r, dir, NULL);
	cr_expect(host_exited_with(&r, 2), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(strstr(r.err.data, "not a regular file"), "%s", r.err.data);
	host_run_free(&r);

	tp_run(&r, no_command, &opts);
	cr_expect(host_exited_with(&r, 2), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(strstr(r.err.data, "no COMMAND given"), "%s", r.err.data);
	host_run_free(&r);

	tp_run(&r, bad_option, &opts);
	cr_expect(host_exited_with(&r, 2), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	host_run_free(&r);
	free(plain);
	tp_rmtree(dir);
}

Test(doctor, help_explains_the_verdicts)
{
	const char *const argv[] = {TP_LAUNCHER, "doctor", "--help", NULL};
	struct host_run r;

	tp_run(&r, argv, &opts);
	cr_expect(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "Usage: forkshim doctor COMMAND"));
	cr_expect(strstr(r.out.data, "  ok "));
	cr_expect(strstr(r.out.data, "  limited "));
	cr_expect(strstr(r.out.data, "  cannot "));
	host_run_free(&r);
}
