/* launcher_cli: the `forkshim` launcher as a user meets it.
 *
 * It brings the library into an unmodified python3 (reached through
 * ctypes.CDLL(None)), keeps what LD_PRELOAD held, turns its options into
 * the FORKSHIM_* variables, refuses bad ones with exit status 2, says 127
 * for a missing command or library and 126 for a command it cannot run,
 * and passes the command's own exit status and fatal signal through,
 * since it execs.  It finds the library in the build tree and in an
 * installed tree (`cmake --install` into a temporary prefix). */
#include <criterion/criterion.h>
#include <libgen.h>
#include <limits.h>

#include "tp_run.h"

TestSuite(launcher, .fini = tp_cleanup);

static const struct tp_opts opts = {.timeout_s = 30};

/* freezes a buffer, forks, and has the child deref the handle */
static const char ctypes_script[] =
    "import ctypes, os, sys\n"
    "lib = ctypes.CDLL(None, use_errno=True)\n"
    "try:\n"
    "    version = lib.forkshim_version\n"
    "except AttributeError:\n"
    "    print('forkshim symbols not found')\n"
    "    sys.exit(3)\n"
    "version.restype = ctypes.c_char_p\n"
    "freeze = lib.forkshim_freeze\n"
    "freeze.restype = ctypes.c_uint64\n"
    "freeze.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p,\n"
    "                   ctypes.c_uint]\n"
    "deref = lib.forkshim_deref\n"
    "deref.restype = ctypes.c_void_p\n"
    "deref.argtypes = [ctypes.c_uint64, ctypes.POINTER(ctypes.c_size_t)]\n"
    "visible = lib.forkshim_visible\n"
    "visible.argtypes = [ctypes.c_uint64, ctypes.c_int]\n"
    "print('version', version().decode())\n"
    "buf = ctypes.create_string_buffer(b'handed over by handle', 64)\n"
    "h = freeze(ctypes.addressof(buf), 64, b'launcher-test', 0)\n"
    "if h == 0:\n"
    "    print('freeze failed, errno', ctypes.get_errno())\n"
    "    sys.exit(1)\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    n = ctypes.c_size_t()\n"
    "    p = deref(h, ctypes.byref(n))\n"
    "    ok = (p == ctypes.addressof(buf) and n.value == 64 and\n"
    "          ctypes.string_at(p, 21) == b'handed over by handle')\n"
    "    os._exit(0 if ok else 1)\n"
    "print('visible to the child', visible(h, pid))\n"
    "_, st = os.waitpid(pid, 0)\n"
    "print('child deref', 'ok' if st == 0 else 'failed')\n";

static const char ctypes_expected[] = "version 0.1.0\n"
                                      "visible to the child 1\n"
                                      "child deref ok\n";

/* freezes three regions: with --max-regions 2 the third must fail */
static const char max_regions_script[] =
    "import ctypes, errno\n"
    "lib = ctypes.CDLL(None, use_errno=True)\n"
    "lib.forkshim_freeze.restype = ctypes.c_uint64\n"
    "lib.forkshim_freeze.argtypes = [ctypes.c_void_p, ctypes.c_size_t,\n"
    "                                ctypes.c_char_p, ctypes.c_uint]\n"
    "bufs = [ctypes.create_string_buffer(32) for _ in range(3)]\n"
    "for i, b in enumerate(bufs):\n"
    "    h = lib.forkshim_freeze(ctypes.addressof(b), 32, None, 0)\n"
    "    e = ctypes.get_errno()\n"
    "    print('freeze', i + 1, 'ok' if h else errno.errorcode[e])\n";

/* The library the launcher finds in the build tree: the shim's directory
 * and its SONAME, e.g. <build>/shim/libforkshim.so.1. */
static char *built_lib(void)
{
	char dir[PATH_MAX], real[PATH_MAX], *out;

	snprintf(dir, sizeof(dir), "%s", FORKSHIM_LIB);
	cr_assert_not_null(realpath(dirname(dir), real));
	cr_assert_geq(asprintf(&out, "%s/%s", real, TP_LIB_NAME), 0);
	return out;
}

static void launch(struct tp_run *r, const char *const argv[])
{
	const char *full[TP_MAX_ARGS] = {TP_LAUNCHER};
	size_t n = 1;

	while (*argv)
		full[n++] = *argv++;
	full[n] = NULL;
	tp_run(r, full, &opts);
}

Test(launcher, python_reaches_the_shim_through_ctypes)
{
	const char *const argv[] = {"/usr/bin/python3", "-I", "-c",
	                            ctypes_script, NULL};
	struct tp_run r;

	tp_launched(&r, NULL, argv, &opts);
	cr_expect(tp_exited_with(&r, 0), TP_RUN_FMT, TP_RUN_ARGS(r));
	cr_expect_str_eq(r.out.data, ctypes_expected);
	cr_expect_str_empty(r.err.data);
	tp_run_free(&r);

	/* and the same script, without the launcher, finds nothing */
	tp_run(&r, argv, &opts);
	cr_expect(tp_exited_with(&r, 3), TP_RUN_FMT, TP_RUN_ARGS(r));
	cr_expect_str_eq(r.out.data, "forkshim symbols not found\n");
	tp_run_free(&r);
}

Test(launcher, help_mentions_every_option)
{
	static const char *const mentions[] = {
	    "Usage: forkshim [OPTIONS] [--] COMMAND [ARGS...]",
	    "forkshim doctor COMMAND",
	    "--lib PATH",
	    "--log LEVEL",
	    "--log-file PATH",
	    "--max-regions N",
	    "--guard MODE",
	    "--report DIR",
	    "-h, --help",
	    "--version",
	    "off, error, warn",
	    "127",
	    "126"};
	const char *const help_long[] = {"--help", NULL};
	const char *const help_short[] = {"-h", NULL};
	struct tp_run r, r2;

	launch(&r, help_long);
	cr_expect(tp_exited_with(&r, 0), TP_RUN_FMT, TP_RUN_ARGS(r));
	cr_expect_str_empty(r.err.data);
	for (size_t i = 0; i < sizeof(mentions) / sizeof(mentions[0]); i++)
		cr_expect(strstr(r.out.data, mentions[i]),
		          "--help does not mention \"%s\":\n%s", mentions[i],
		          r.out.data);
	launch(&r2, help_short);
	cr_expect(tp_exited_with(&r2, 0));
	cr_expect_str_eq(r2.out.data, r.out.data);
	tp_run_free(&r);
	tp_run_free(&r2);
}

Test(launcher, version_names_the_launcher_and_the_library)
{
	const char *const argv[] = {"--version", NULL};
	char *lib = built_lib(), *expected;
	struct tp_run r;

	cr_assert_geq(asprintf(&expected,
	                       "forkshim 0.1.0\n"
	                       "libforkshim 0.1.0, ABI 1: %s\n",
	                       lib),
	              0);
	launch(&r, argv);
	cr_expect(tp_exited_with(&r, 0), TP_RUN_FMT, TP_RUN_ARGS(r));
	cr_expect_str_eq(r.out.data, expected);
	cr_expect_str_empty(r.err.data);
	tp_run_free(&r);
	free(expected);
	free(lib);
}

/* Each bad invocation: exit 2, nothing run, a message naming the problem
 * and pointing to --help. */
Test(launcher, bad_options_exit_with_2_and_say_why)
{
	static const struct {
		const char *argv[6];
		const char *says;
	} cases[] = {
	    {{"--bogus", "true"}, "unknown option '--bogus'"},
	    {{"-x", "true"}, "unknown option '-x'"},
	    {{"--log"}, "option '--log' needs a value"},
	    {{"--log", "loud", "true"},
	     "'loud' is not one of off, error, warn, info, debug"},
	    {{"--max-regions", "0", "true"}, "--max-regions: '0'"},
	    {{"--max-regions", "-1", "true"}, "--max-regions: '-1'"},
	    {{"--max-regions", "12abc", "true"}, "--max-regions: '12abc'"},
	    {{"--max-regions", "16777217", "true"},
	     "is not a count from 1 to 16777216"},
	    {{"--max-regions", "99999999999999999999999", "true"},
	     "is not a count from 1 to 16777216"},
	    {{"--log-file", "/nonexistent/dir/shim.log", "true"},
	     "--log-file /nonexistent/dir/shim.log: No such file"},
	    {{"--log-file", "", "true"}, "--log-file: empty path"},
	    {{"--guard", "bogus", "true"},
	     "--guard: 'bogus' is not one of off, protect, audit"},
	    {{"--report", "/dev/null", "true"}, "--report /dev/null: "},
	    {{NULL}, "no COMMAND given"},
	    {{"--log", "info"}, "no COMMAND given"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tp_run r;

		launch(&r, cases[i].argv);
		cr_expect(tp_exited_with(&r, 2), "case %zu: " TP_RUN_FMT, i,
		          TP_RUN_ARGS(r));
		cr_expect_str_empty(r.out.data, "case %zu", i);
		cr_expect(strncmp(r.err.data, "forkshim: ", 10) == 0 &&
		              strstr(r.err.data, cases[i].says) &&
		              strstr(r.err.data, "Try 'forkshim --help'"),
		          "case %zu: expected \"%s\" in:\n%s", i, cases[i].says,
		          r.err.data);
		tp_run_free(&r);
	}
}

Test(launcher, missing_command_exits_with_127)
{
	const char *const by_name[] = {"--", "forkshim-no-such-command", NULL};
	const char *const by_path[] = {"/nonexistent/command", NULL};
	struct tp_run r;

	launch(&r, by_name);
	cr_expect(tp_exited_with(&r, 127), TP_RUN_FMT, TP_RUN_ARGS(r));
	cr_expect_str_eq(r.err.data, "forkshim: forkshim-no-such-command: "
	                             "command not found\n");
	tp_run_free(&r);
	launch(&r, by_path);
	cr_expect(tp_exited_with(&r, 127), TP_RUN_FMT, TP_RUN_ARGS(r));
	cr_expect_str_eq(r.err.data, "forkshim: /nonexistent/command: No such "
	                             "file or directory\n");
	tp_run_free(&r);
}

Test(launcher, command_that_cannot_be_executed_exits_with_126)
{
	char *dir = tp_mkdtemp(), *file = tp_path(dir, "not-executable");
	const char *const on_file[] = {file, NULL};
	const char *const on_dir[] = {dir, NULL};
	struct tp_run r;

	tp_write_file(file, "echo should not run\n", 0644);
	launch(&r, on_file);
	cr_expect(tp_exited_with(&r, 126), TP_RUN_FMT, TP_RUN_ARGS(r));
	cr_expect(strstr(r.err.data, "Permission denied"), TP_RUN_FMT,
	          TP_RUN_ARGS(r));
	cr_expect_str_empty(r.out.data);
	tp_run_free(&r);
	launch(&r, on_dir);
	cr_expect(tp_exited_with(&r, 126), TP_RUN_FMT, TP_RUN_ARGS(r));
	tp_run_free(&r);
	free(file);
	tp_rmtree(dir);
}

Test(launcher, missing_library_exits_with_127_before_running_anything)
{
	char *dir = tp_mkdtemp(), *marker = tp_path(dir, "ran"), *cmd;
	struct tp_run r;

	cr_assert_geq(asprintf(&cmd, "touch %s", marker), 0);
	const char *const argv[] = {
	    "--lib", "/nonexistent/libforkshim.so", "/bin/sh", "-c", cmd, NULL};
	launch(&r, argv);
	cr_expect(tp_exited_with(&r, 127), TP_RUN_FMT, TP_RUN_ARGS(r));
	cr_expect_str_eq(r.err.data,
	                 "forkshim: library not found: "
	                 "/nonexistent/libforkshim.so: No such file or "
	                 "directory\n");
	cr_expect_neq(access(marker, F_OK), 0, "the command ran");
	tp_run_free(&r);
	free(cmd);
	free(marker);
	tp_rmtree(dir);
}

Test(launcher, launcher_copied_away_from_the_library_exits_with_127)
{
	char *dir = tp_mkdtemp(), *copy = tp_path(dir, "forkshim");
	size_t len;
	char *bytes = tp_read_file(TP_LAUNCHER, &len);
	int fd = open(copy, O_WRONLY | O_CREAT | O_CLOEXEC, 0755);
	const char *const argv[] = {copy, "--", "/bin/true", NULL};
	struct tp_run r;

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, bytes, len), (ssize_t)len);
	cr_assert_eq(close(fd), 0);
	tp_run(&r, argv, &opts);
	cr_expect(tp_exited_with(&r, 127), TP_RUN_FMT, TP_RUN_ARGS(r));
	cr_expect(strstr(r.err.data, "forkshim: library not found: ") &&
	              strstr(r.err.data, "give it with --lib PATH"),
	          TP_RUN_FMT, TP_RUN_ARGS(r));
	tp_run_free(&r);
	free(bytes);
	free(copy);
	tp_rmtree(dir);
}

/* In a sanitizer build tp_run puts its runtime first in LD_PRELOAD. */
static const char *san_first(void)
{
	return FORKSHIM_SANITIZER_RT[0] != '\0' ? FORKSHIM_SANITIZER_RT ":"
	                                        : "";
}

Test(launcher, existing_ld_preload_stays_after_the_library)
{
	const char *const env[] = {"LD_PRELOAD=" TP_FORKER_LIB, NULL};
	const struct tp_opts with_env = {.extra_env = env, .timeout_s = 30};
	const char *const show[] = {"/bin/sh", "-c",
	                            "printf '%s\\n' \"$LD_PRELOAD\"", NULL};
	const char *const maps[] = {"/bin/cat", "/proc/self/maps", NULL};
	char real_forker[PATH_MAX], *lib = built_lib(), *expected;
	struct tp_run r;

	cr_assert_not_null(realpath(TP_FORKER_LIB, real_forker));
	cr_assert_geq(
	    asprintf(&expected, "%s%s:%s\n", san_first(), lib, TP_FORKER_LIB),
	    0);
	tp_launched(&r, NULL, show, &with_env);
	cr_expect(tp_exited_with(&r, 0), TP_RUN_FMT, TP_RUN_ARGS(r));
	cr_expect_str_eq(r.out.data, expected);
	tp_run_free(&r);

	/* and the loader did load both */
	tp_launched(&r, NULL, maps, &with_env);
	cr_expect(tp_exited_with(&r, 0), TP_RUN_FMT, TP_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "/libforkshim.so"), "%s", r.out.data);
	cr_expect(strstr(r.out.data, real_forker), "%s", r.out.data);
	cr_expect_str_empty(r.err.data);
	tp_run_free(&r);

	/* without a previous value, no stray colon */
	free(expected);
	cr_assert_geq(asprintf(&expected, "%s%s\n", san_first(), lib), 0);
	tp_launched(&r, NULL, show, &opts);
	cr_expect_str_eq(r.out.data, expected);
	tp_run_free(&r);
	free(expected);
	free(lib);
}

/* ASan's runtime must be the first library of a process: one already in
 * LD_PRELOAD (how an uninstrumented host is run under ASan) stays first,
 * the library comes right after it, the rest after that. */
Test(launcher, sanitizer_runtime_in_ld_preload_stays_first)
{
	char var[PATH_MAX + 64], *lib = built_lib(), *expected;
	const char *const env[] = {var, "ASAN_OPTIONS=detect_leaks=0", NULL};
	const struct tp_opts with_env = {.extra_env = env, .timeout_s = 30};
	const char *const show[] = {"/bin/sh", "-c",
	                            "printf '%s\\n' \"$LD_PRELOAD\"", NULL};
	struct tp_run r;

	if (TP_ASAN_RT[0] == '\0')
		cr_skip_test("no libasan.so for this compiler");
	snprintf(var, sizeof(var), "LD_PRELOAD=%s %s", TP_ASAN_RT,
	         TP_FORKER_LIB);
	cr_assert_geq(asprintf(&expected, "%s%s:%s:%s\n", san_first(),
	                       TP_ASAN_RT, lib, TP_FORKER_LIB),
	              0);
	tp_launched(&r, NULL, show, &with_env);
	cr_expect(tp_exited_with(&r, 0), TP_RUN_FMT, TP_RUN_ARGS(r));
	cr_expect_str_eq(r.out.data, expected);
	cr_expect(strstr(r.err.data, "does not come first") == NULL, "%s",
	          r.err.data);
	tp_run_free(&r);
	free(expected);
	free(lib);
}

Test(launcher, options_become_the_library_s_variables)
{
	char *dir = tp_mkdtemp(), *expected;
	const char *const opts_given[] = {
	    "--log",         "info",    "--log-file", "relative.log",
	    "--max-regions", "8",       "--guard",    "audit",
	    "--report",      "reports", NULL};
	const char *const show[] = {
	    "/bin/sh", "-c",
	    "printf '%s\\n' \"$FORKSHIM_LOG\" \"$FORKSHIM_LOG_FILE\" "
	    "\"$FORKSHIM_MAX_REGIONS\" \"$FORKSHIM_GUARD\" "
	    "\"$FORKSHIM_REPORT\"; test -d reports",
	    NULL};
	const struct tp_opts in_dir = {.cwd = dir, .timeout_s = 30};
	char real[PATH_MAX];
	struct tp_run r;

	cr_assert_not_null(realpath(dir, real));
	cr_assert_geq(asprintf(&expected,
	                       "info\n%s/relative.log\n8\naudit\n%s/reports\n",
	                       real, real),
	              0);
	tp_launched(&r, opts_given, show, &in_dir);
	cr_expect(tp_exited_with(&r, 0), TP_RUN_FMT, TP_RUN_ARGS(r));
	cr_expect_str_eq(r.out.data, expected,
	                 "relative --log-file and --report are made absolute, "
	                 "the report directory is made");
	tp_run_free(&r);
	free(expected);
	tp_rmtree(dir);
}

Test(launcher, max_regions_reaches_the_library)
{
	const char *const limit[] = {"--max-regions", "2", NULL};
	const char *const argv[] = {"/usr/bin/python3", "-I", "-c",
	                            max_regions_script, NULL};
	struct tp_run r;

	tp_launched(&r, limit, argv, &opts);
	cr_expect(tp_exited_with(&r, 0), TP_RUN_FMT, TP_RUN_ARGS(r));
	cr_expect_str_eq(r.out.data, "freeze 1 ok\nfreeze 2 ok\n"
	                             "freeze 3 ENOMEM\n");
	tp_run_free(&r);
}

Test(launcher, log_file_receives_the_library_s_lines)
{
	char *dir = tp_mkdtemp(), *log = tp_path(dir, "shim.log"), *text;
	const char *const debug[] = {"--log", "debug", "--log-file", log, NULL};
	const char *const argv[] = {"/bin/sh", "-c", "/bin/true; /bin/true",
	                            NULL};
	struct tp_run r;
	size_t len, lines = 0;

	tp_launched(&r, debug, argv, &opts);
	cr_expect(tp_exited_with(&r, 0), TP_RUN_FMT, TP_RUN_ARGS(r));
	cr_expect_str_empty(r.err.data, "the log went to stderr");
	text = tp_read_file(log, &len);
	cr_expect_gt(len, 0, "nothing logged at debug level");
	for (char *line = text; *line; lines++) {
		char *end = strchr(line, '\n');
		int pid_len = 0;

		cr_expect(sscanf(line, "forkshim[%*d]: %n", &pid_len) == 0 &&
		              pid_len > 0,
		          "not a log line: %s", line);
		if (end == NULL)
			break;
		line = end + 1;
	}
	/* one shell and two /bin/true each load the library */
	cr_expect_geq(lines, 3, "log:\n%s", text);
	free(text);
	tp_run_free(&r);
	free(log);
	tp_rmtree(dir);
}

Test(launcher, exit_status_is_the_command_s)
{
	static const int codes[] = {0, 1, 42, 255};

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		char cmd[32];
		const char *const argv[] = {"/bin/sh", "-c", cmd, NULL};
		struct tp_run r;

		snprintf(cmd, sizeof(cmd), "exit %d", codes[i]);
		tp_launched(&r, NULL, argv, &opts);
		cr_expect(tp_exited_with(&r, codes[i]), TP_RUN_FMT,
		          TP_RUN_ARGS(r));
		tp_run_free(&r);
	}
}

Test(launcher, signal_that_kills_the_command_reaches_the_parent)
{
	static const int sigs[] = {SIGTERM, SIGKILL, SIGUSR1};

	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		char cmd[32];
		const char *const argv[] = {"/bin/sh", "-c", cmd, NULL};
		struct tp_run r;

		snprintf(cmd, sizeof(cmd), "kill -%d $$", sigs[i]);
		tp_launched(&r, NULL, argv, &opts);
		cr_expect(!r.timed_out && WIFSIGNALED(r.status) &&
		              WTERMSIG(r.status) == sigs[i],
		          "signal %d: " TP_RUN_FMT, sigs[i], TP_RUN_ARGS(r));
		tp_run_free(&r);
	}
}

Test(launcher, command_runs_in_the_launcher_s_own_process)
{
	const char *const argv[] = {"/bin/sh", "-c", "echo $$", NULL};
	struct tp_run r;

	tp_launched(&r, NULL, argv, &opts);
	cr_expect(tp_exited_with(&r, 0), TP_RUN_FMT, TP_RUN_ARGS(r));
	cr_expect_eq(atoi(r.out.data), r.pid, "forkshim did not exec: %s",
	             r.out.data);
	tp_run_free(&r);
}

Test(launcher, arguments_after_the_command_belong_to_the_command)
{
	const char *const after_dashes[] = {"--",    "/bin/echo", "--help",
	                                    "--log", "x",         NULL};
	const char *const no_dashes[] = {"/bin/echo", "--version", "-h", NULL};
	struct tp_run r;

	launch(&r, after_dashes);
	cr_expect_str_eq(r.out.data, "--help --log x\n");
	tp_run_free(&r);
	launch(&r, no_dashes);
	cr_expect_str_eq(r.out.data, "--version -h\n");
	tp_run_free(&r);
}

Test(launcher, installed_launcher_finds_the_installed_library)
{
	char *prefix = tp_mkdtemp(), real[PATH_MAX];
	char *bin, *lib, *man, *expected, *link_dir, *link;
	const char *const install[] = {TP_CMAKE,   "--install", TP_BUILD_DIR,
	                               "--prefix", prefix,      NULL};
	struct tp_run r;

	if (TP_INSTALL_LIBDIR[0] == '/' || TP_INSTALL_BINDIR[0] == '/')
		cr_skip_test("absolute install dirs: nothing to relocate");
	tp_run(&r, install, &opts);
	cr_assert(tp_exited_with(&r, 0), "cmake --install: " TP_RUN_FMT,
	          TP_RUN_ARGS(r));
	tp_run_free(&r);
	cr_assert_not_null(realpath(prefix, real));
	cr_assert_geq(asprintf(&bin, "%s/%s/forkshim", real, TP_INSTALL_BINDIR),
	              0);
	cr_assert_geq(
	    asprintf(&lib, "%s/%s/%s", real, TP_INSTALL_LIBDIR, TP_LIB_NAME),
	    0);
	cr_assert_geq(
	    asprintf(&man, "%s/%s/man1/forkshim.1.gz", real, TP_INSTALL_MANDIR),
	    0);
	cr_expect_eq(access(bin, X_OK), 0, "%s not installed", bin);
	cr_expect_eq(access(lib, R_OK), 0, "%s not installed", lib);
	cr_expect_eq(access(man, R_OK), 0, "%s not installed", man);

	cr_assert_geq(asprintf(&expected,
	                       "forkshim 0.1.0\nlibforkshim 0.1.0, ABI 1: %s\n",
	                       lib),
	              0);
	const char *const version[] = {bin, "--version", NULL};
	tp_run(&r, version, &opts);
	cr_expect(tp_exited_with(&r, 0), TP_RUN_FMT, TP_RUN_ARGS(r));
	cr_expect_str_eq(r.out.data, expected);
	tp_run_free(&r);

	/* through a symbolic link elsewhere: /proc/self/exe is the file */
	link_dir = tp_path(real, "elsewhere");
	link = tp_path(link_dir, "fs");
	cr_assert_eq(mkdir(link_dir, 0755), 0);
	cr_assert_eq(symlink(bin, link), 0);
	const char *const via_link[] = {
	    link, "--", "/usr/bin/python3", "-I", "-c", ctypes_script, NULL};
	tp_run(&r, via_link, &opts);
	cr_expect(tp_exited_with(&r, 0), TP_RUN_FMT, TP_RUN_ARGS(r));
	cr_expect_str_eq(r.out.data, ctypes_expected);
	tp_run_free(&r);

	free(bin);
	free(lib);
	free(man);
	free(expected);
	free(link);
	free(link_dir);
	tp_rmtree(prefix);
}
