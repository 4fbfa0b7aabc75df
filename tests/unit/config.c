/* The environment read at load: FORKSHIM_MAX_REGIONS, FORKSHIM_LOG,
 * FORKSHIM_LOG_FILE, FORKSHIM_GUARD.  Each test runs the helper program
 * with the shim preloaded and an explicit environment. */
#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "common.h"

struct run {
	pid_t pid;
	int status;
	char out[8192];
	char err[8192];
};

static char dir[64];
static char log_path[128];

static void setup(void)
{
	strcpy(dir, "/tmp/forkshim-unit-XXXXXX");
	cr_assert(mkdtemp(dir) != NULL);
	snprintf(log_path, sizeof log_path, "%s/log", dir);
}

static void teardown(void)
{
	char path[160];

	snprintf(path, sizeof path, "%s/target", dir);
	unlink(path);
	unlink(log_path);
	rmdir(dir);
}

/* Reads fd to its end, keeping what fits in buf. */
static void slurp(int fd, char *buf, size_t size)
{
	size_t n = 0;
	char sink[4096];

	for (;;) {
		char *to = n + 1 < size ? buf + n : sink;
		size_t room = n + 1 < size ? size - 1 - n : sizeof sink;
		ssize_t r = read(fd, to, room);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (to != sink)
			n += (size_t)r;
	}
	buf[n] = '\0';
}

/* Runs `helper MODE [ARG]` with LD_PRELOAD and the given NULL-ended list
 * of VAR=value strings, and nothing else, in its environment. */
static void run_helper(struct run *r, const char *mode, const char *arg, ...)
{
	char preload[4096];
	char *envp[16],
	    *argv[] = {UNIT_HELPER, (char *)mode, (char *)arg, NULL};
	posix_spawn_file_actions_t fa;
	int out[2], err[2], n = 0;
	va_list ap;
	const char *var;

	snprintf(preload, sizeof preload, "LD_PRELOAD=%s", FORKSHIM_PRELOAD);
	envp[n++] = preload;
	va_start(ap, arg);
	while ((var = va_arg(ap, const char *)) != NULL && n < 15)
		envp[n++] = (char *)var;
	va_end(ap);
	envp[n] = NULL;
	cr_assert(pipe(out) == 0 && pipe(err) == 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, err[1], 2);
	posix_spawn_file_actions_addclose(&fa, out[0]);
	posix_spawn_file_actions_addclose(&fa, err[0]);
	cr_assert(posix_spawn(&r->pid, UNIT_HELPER, &fa, NULL, argv, envp) ==
	          0);
	posix_spawn_file_actions_destroy(&fa);
	close(out[1]);
	close(err[1]);
	/* Small outputs: stdout is read to its end before stderr fills. */
	slurp(out[0], r->out, sizeof r->out);
	slurp(err[0], r->err, sizeof r->err);
	close(out[0]);
	close(err[0]);
	cr_assert(waitpid(r->pid, &r->status, 0) == r->pid);
	cr_assert(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0,
	          "helper %s ended with %#x; stderr: %s", mode, r->status,
	          r->err);
}

/* The log file's text; "" when it does not exist. */
static void read_log(char *buf, size_t size)
{
	int fd = open(log_path, O_RDONLY);

	buf[0] = '\0';
	if (fd < 0) {
		cr_assert(errno == ENOENT);
		return;
	}
	slurp(fd, buf, size);
	close(fd);
}

/* Expects every line of text to start with forkshim[PID]: for one of the
 * pids given (0 ends the list); returns the number of lines. */
static int expect_prefixed(const char *text, const char *what, pid_t a, pid_t b)
{
	int lines = 0;

	for (const char *s = text; *s;) {
		const char *nl = strchr(s, '\n');
		int pid = -1, n = 0;

		cr_expect(nl != NULL, "%s: unterminated line \"%s\"", what, s);
		if (nl == NULL)
			break;
		cr_expect(
		    sscanf(s, "forkshim[%d]: %n", &pid, &n) == 1 && n > 0 &&
		        (pid == a || (b != 0 && pid == b)),
		    "%s: line without the prefix forkshim[%d]: : \"%.*s\"",
		    what, (int)a, (int)(nl - s), s);
		lines++;
		s = nl + 1;
	}
	return lines;
}

/* Lines of text mentioning either word. */
static int lines_mentioning(const char *text, const char *w1, const char *w2)
{
	int count = 0;

	for (const char *s = text; *s;) {
		const char *nl = strchr(s, '\n');
		size_t len = nl ? (size_t)(nl - s) : strlen(s);
		char line[1024];

		snprintf(line, sizeof line, "%.*s", (int)len, s);
		if (strstr(line, w1) != NULL || strstr(line, w2) != NULL)
			count++;
		s += len + (nl != NULL);
	}
	return count;
}

static pid_t child_of(const struct run *r)
{
	int pid = 0;

	cr_assert(sscanf(r->out, "child %d", &pid) == 1, "helper output \"%s\"",
	          r->out);
	return pid;
}

TestSuite(config, .init = setup, .fini = teardown);

/* ---- FORKSHIM_MAX_REGIONS ---------------------------------------------- */

static int out_value(const struct run *r, const char *fmt_key)
{
	const char *s = strstr(r->out, fmt_key);
	int v = -1;

	cr_assert(s != NULL, "no \"%s\" in \"%s\"", fmt_key, r->out);
	cr_assert(sscanf(s + strlen(fmt_key), "%d", &v) == 1);
	return v;
}

Test(config, max_regions_8_makes_the_9th_live_freeze_fail_with_enomem)
{
	struct run r;
	char key[32];

	run_helper(&r, "capacity", "8", "FORKSHIM_MAX_REGIONS=8", NULL);
	for (int i = 1; i <= 8; i++) {
		snprintf(key, sizeof key, "freeze %d ", i);
		cr_expect(out_value(&r, key) == 0, "freeze %d failed: %s", i,
		          r.out);
	}
	cr_expect(out_value(&r, "freeze 9 ") == ENOMEM,
	          "9th freeze: errno %d, expected ENOMEM",
	          out_value(&r, "freeze 9 "));
	cr_expect(out_value(&r, "intact ") == 1,
	          "the table changed after the ENOMEM: %s", r.out);
	cr_expect(out_value(&r, "find ") == ENOENT,
	          "the refused range is findable");
	cr_expect(out_value(&r, "refreeze ") == 0,
	          "a thaw did not make room: %s", r.out);
}

Test(config, bad_max_regions_is_reported_and_the_default_used)
{
	struct run r;
	char log[8192], var[160];

	snprintf(var, sizeof var, "FORKSHIM_LOG_FILE=%s", log_path);
	run_helper(&r, "capacity", "8", "FORKSHIM_MAX_REGIONS=lots", var, NULL);
	cr_expect(out_value(&r, "freeze 9 ") == 0,
	          "the 9th freeze failed under the default capacity: %s",
	          r.out);
	read_log(log, sizeof log);
	expect_prefixed(log, "log file", r.pid, 0);
	cr_expect(lines_mentioning(log, "FORKSHIM_MAX_REGIONS", "lots") == 1,
	          "the bad value is not reported once: \"%s\"", log);
}

/* With two slots, each freeze refills the same slot: 140,000 cycles go
 * past any 16-bit generation twice, and no old handle may come back. */
Test(config, old_handles_stay_estale_through_140000_reuses_of_one_slot)
{
	struct run r;

	run_helper(&r, "cycle", "140000", "FORKSHIM_MAX_REGIONS=2", NULL);
	cr_expect(out_value(&r, "resolved ") == 0,
	          "old handles named the new region: %s", r.out);
	cr_expect(out_value(&r, "not_estale ") == 0,
	          "old handles failed otherwise than ESTALE "
	          "(first: cycle, old cycle, errno): %s",
	          r.out);
}

/* ---- reports of bad values --------------------------------------------- */

Test(config, bad_guard_value_is_reported_once_in_the_log_file)
{
	struct run r;
	char log[8192], var[160];
	int lines;

	snprintf(var, sizeof var, "FORKSHIM_LOG_FILE=%s", log_path);
	run_helper(&r, "idle", NULL, "FORKSHIM_GUARD=bogus", var, NULL);
	read_log(log, sizeof log);
	lines = expect_prefixed(log, "log file", r.pid, child_of(&r));
	cr_expect(lines >= 1, "nothing was logged");
	cr_expect(lines_mentioning(log, "FORKSHIM_GUARD", "bogus") == 1,
	          "reported %d times: \"%s\"",
	          lines_mentioning(log, "FORKSHIM_GUARD", "bogus"), log);
	cr_expect(r.err[0] == '\0', "stderr is not empty: \"%s\"", r.err);
}

Test(config, bad_guard_value_is_reported_on_stderr_without_a_log_file)
{
	struct run r;

	run_helper(&r, "idle", NULL, "FORKSHIM_GUARD=bogus", NULL);
	expect_prefixed(r.err, "stderr", r.pid, child_of(&r));
	cr_expect(lines_mentioning(r.err, "FORKSHIM_GUARD", "bogus") == 1,
	          "stderr: \"%s\"", r.err);
}

Test(config, log_off_silences_the_report)
{
	struct run r;
	char log[8192], var[160];

	snprintf(var, sizeof var, "FORKSHIM_LOG_FILE=%s", log_path);
	run_helper(&r, "idle", NULL, "FORKSHIM_GUARD=bogus", "FORKSHIM_LOG=off",
	           var, NULL);
	read_log(log, sizeof log);
	cr_expect(log[0] == '\0', "logged with FORKSHIM_LOG=off: \"%s\"", log);
	cr_expect(r.err[0] == '\0', "stderr with FORKSHIM_LOG=off: \"%s\"",
	          r.err);
}

Test(config, unknown_log_level_is_reported)
{
	struct run r;
	char log[8192], var[160];

	snprintf(var, sizeof var, "FORKSHIM_LOG_FILE=%s", log_path);
	run_helper(&r, "idle", NULL, "FORKSHIM_LOG=loud", var, NULL);
	read_log(log, sizeof log);
	expect_prefixed(log, "log file", r.pid, child_of(&r));
	cr_expect(lines_mentioning(log, "FORKSHIM_LOG", "loud") == 1,
	          "log: \"%s\"", log);
}

Test(config, valid_values_are_not_reported)
{
	struct run r;
	char log[8192], var[160];

	snprintf(var, sizeof var, "FORKSHIM_LOG_FILE=%s", log_path);
	run_helper(&r, "idle", NULL, "FORKSHIM_GUARD=off", "FORKSHIM_LOG=warn",
	           "FORKSHIM_MAX_REGIONS=100", var, NULL);
	read_log(log, sizeof log);
	cr_expect(log[0] == '\0', "logged: \"%s\"", log);
	cr_expect(r.err[0] == '\0', "stderr: \"%s\"", r.err);
}

Test(config, every_line_carries_the_prefix_at_debug_level)
{
	struct run r;
	char log[8192], var[160];

	snprintf(var, sizeof var, "FORKSHIM_LOG_FILE=%s", log_path);
	run_helper(&r, "freeze", "3", "FORKSHIM_LOG=debug", var, NULL);
	read_log(log, sizeof log);
	expect_prefixed(log, "debug log", r.pid, 0);
	run_helper(&r, "idle", NULL, "FORKSHIM_LOG=debug",
	           "FORKSHIM_GUARD=bogus", NULL);
	expect_prefixed(r.err, "debug stderr", r.pid, child_of(&r));
	cr_expect(lines_mentioning(r.err, "FORKSHIM_GUARD", "bogus") >= 1);
}

Test(config, log_file_that_is_a_symlink_is_not_followed)
{
	struct run r;
	char target[160], var[160], text[256];
	int fd;

	snprintf(target, sizeof target, "%s/target", dir);
	fd = open(target, O_CREAT | O_WRONLY, 0600);
	cr_assert(fd >= 0);
	close(fd);
	cr_assert(symlink(target, log_path) == 0);
	snprintf(var, sizeof var, "FORKSHIM_LOG_FILE=%s", log_path);
	run_helper(&r, "idle", NULL, "FORKSHIM_GUARD=bogus", var, NULL);
	fd = open(target, O_RDONLY);
	cr_assert(fd >= 0);
	slurp(fd, text, sizeof text);
	close(fd);
	cr_expect(text[0] == '\0', "written through the symlink: \"%s\"", text);
}

/* Runs the idle helper with one variable set and the log in a file, and
 * reads that log into buf. */
static void run_logged(struct run *r, const char *value, char *buf, size_t size)
{
	char var[160];

	snprintf(var, sizeof var, "FORKSHIM_LOG_FILE=%s", log_path);
	unlink(log_path);
	run_helper(r, "idle", NULL, value, var, NULL);
	read_log(buf, size);
}

/* Counts past SIZE_MAX, and SIZE_MAX itself, are counts above the limit,
 * not "not a positive count". */
Test(config, huge_max_regions_is_reported_as_above_the_limit)
{
	static const char *const values[] = {
	    "FORKSHIM_MAX_REGIONS=18446744073709551615",
	    "FORKSHIM_MAX_REGIONS=18446744073709551616",
	    "FORKSHIM_MAX_REGIONS=99999999999999999999999999",
	};
	struct run r;
	char log[8192];

	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		run_logged(&r, values[i], log, sizeof log);
		cr_expect(strstr(log, "above the limit") != NULL &&
		              strstr(log, "not a positive count") == NULL,
		          "%s: \"%s\"", values[i], log);
	}
}

/* A value with a newline or other control bytes must not start a line of
 * its own in the log: every line keeps the prefix, the bytes are escaped. */
Test(config, control_bytes_in_values_are_escaped_in_the_log)
{
	static const char *const values[] = {
	    "FORKSHIM_GUARD=bad\nforged line",
	    "FORKSHIM_LOG=loud\r\n\x1b[2Jnext",
	    "FORKSHIM_MAX_REGIONS=12\n34",
	    "FORKSHIM_REPORT=/nonexistent\n\tdir",
	};
	struct run r;
	char log[8192];

	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		run_logged(&r, values[i], log, sizeof log);
		cr_expect(
		    expect_prefixed(log, values[i], r.pid, child_of(&r)) == 1,
		    "%s: not one line: \"%s\"", values[i], log);
		cr_expect(
		    strchr(log, '\r') == NULL && strchr(log, '\x1b') == NULL &&
		        strchr(log, '\t') == NULL,
		    "%s: control bytes logged as such: \"%s\"", values[i], log);
		cr_expect(strstr(log, "\\x0a") != NULL,
		          "%s: the newline is not shown escaped: \"%s\"",
		          values[i], log);
	}
}
