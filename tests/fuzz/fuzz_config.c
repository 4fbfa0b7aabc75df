/* fuzz_config: the configuration parser and the log formatter.
 *
 * Linked with the shim's config.c and log.c themselves (not the library:
 * these functions are hidden there).  The input is split at NUL bytes into
 * up to six strings:
 *   [0] config_parse_count, against a reference: a non-empty string of
 *       decimal digits whose value fits size_t parses to that value, one
 *       past SIZE_MAX is refused with ERANGE, any other string with
 *       EINVAL (and FORKSHIM_MAX_REGIONS then reads "above the limit");
 *   [1..4] FORKSHIM_LOG, FORKSHIM_GUARD, FORKSHIM_MAX_REGIONS and
 *       FORKSHIM_REPORT (an empty string: unset) for config_load: the log
 *       level and the capacity come out as documented, and whatever it
 *       reports arrives as whole "forkshim[PID]: " lines, at most one per
 *       variable, none below the warn level;
 *   [5] an argument for log_format, whose output must equal snprintf's for
 *       the conversions the two share, cut to every buffer size. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "fuzz_config: " __VA_ARGS__);          \
			fputc('\n', stderr);                                   \
			abort();                                               \
		}                                                              \
	} while (0)

static struct config defaults;
static int log_pipe[2];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	defaults = config;
	if (pipe2(log_pipe, O_NONBLOCK | O_CLOEXEC) != 0)
		abort();
	return 0;
}

/* The reference parser: 0 and the value; -1 (not a count) or -2 (digits
 * only, above SIZE_MAX). */
static int reference_count(const char *s, size_t *out)
{
	unsigned __int128 v = 0;
	int over = 0;

	if (*s == '\0')
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (unsigned)(*s - '0');
		if (v > SIZE_MAX) {
			over = 1;
			v = SIZE_MAX;
		}
	}
	if (over)
		return -2;
	*out = (size_t)v;
	return 0;
}

static void check_count(const char *s)
{
	size_t want = 0, got = 0;
	int w = reference_count(s, &want), g = config_parse_count(s, &got);
	int err = errno;

	CHECK((w == 0) == (g == 0),
	      "config_parse_count(\"%.40s\") = %d, "
	      "expected %d",
	      s, g, w);
	CHECK(g != 0 || got == want, "config_parse_count(\"%.40s\") = %zu", s,
	      got);
	CHECK(g == 0 || err == (w == -2 ? ERANGE : EINVAL),
	      "config_parse_count(\"%.40s\"): errno %d", s, err);
}

static void set_or_unset(const char *name, const char *value)
{
	if (*value == '\0')
		unsetenv(name);
	else
		setenv(name, value, 1);
}

static int level_of(const char *v)
{
	static const char *names[] = {"off", "error", "warn", "info", "debug"};

	for (int i = 0; i < 5; i++)
		if (strcmp(v, names[i]) == 0)
			return i;
	return LOG_WARN;
}

static void check_load(const char *level, const char *guard,
                       const char *regions, const char *report)
{
	char out[16384], prefix[32];
	size_t n, want, plen;
	ssize_t got;
	int lines = 0;

	set_or_unset("FORKSHIM_LOG", level);
	set_or_unset("FORKSHIM_GUARD", guard);
	set_or_unset("FORKSHIM_MAX_REGIONS", regions);
	set_or_unset("FORKSHIM_REPORT", report);
	unsetenv("FORKSHIM_LOG_FILE");
	config = defaults;
	log_threshold = LOG_WARN;
	log_fd = log_pipe[1];
	config_load();
	log_fd = 2;

	CHECK(log_threshold == (*level ? level_of(level) : LOG_WARN),
	      "FORKSHIM_LOG=%.40s gave level %d", level, log_threshold);
	int parsed = *regions ? reference_count(regions, &want) : -1;

	if (parsed == -2)
		want = CONFIG_MAX_REGIONS; /* a count above the limit */
	else if (parsed != 0 || want == 0)
		want = CONFIG_DEFAULT_REGIONS;
	else if (want > CONFIG_MAX_REGIONS)
		want = CONFIG_MAX_REGIONS;
	CHECK(config.max_regions == want,
	      "FORKSHIM_MAX_REGIONS=%.40s gave %zu, expected %zu", regions,
	      config.max_regions, want);

	got = read(log_pipe[0], out, sizeof(out) - 1);
	n = got > 0 ? (size_t)got : 0;
	out[n] = '\0';
	plen = (size_t)snprintf(prefix, sizeof(prefix),
	                        "forkshim[%d]: ", (int)getpid());
	for (const char *p = out; *p;) {
		const char *end = strchr(p, '\n');

		CHECK(strncmp(p, prefix, plen) == 0, "a line without %s: %.80s",
		      prefix, p);
		CHECK(end != NULL, "an unfinished line: %.80s", p);
		CHECK(end - p < 1024, "a line of %zu bytes", (size_t)(end - p));
		lines++;
		p = end + 1;
	}
	CHECK(lines <= 4, "%d lines for four variables", lines);
	/* Only a refused report directory is an error (the others warn). */
	CHECK(lines == 0 || log_threshold >= LOG_WARN ||
	          (log_threshold == LOG_ERROR && lines == 1 && *report),
	      "%d lines at level %d", lines, log_threshold);
}

static void expect_same(const char *fmt, ...)
{
	char mine[300], libc[300];
	va_list ap, ap2;

	for (size_t size = 1; size <= sizeof(mine);
	     size += size < 40 ? 1 : 37) {
		size_t n;
		int m;

		va_start(ap, fmt);
		va_copy(ap2, ap);
		n = log_format(mine, size, fmt, ap);
		m = vsnprintf(libc, size, fmt, ap2);
		va_end(ap2);
		va_end(ap);
		CHECK(m >= 0, "vsnprintf");
		CHECK(n == strlen(mine) && n < size,
		      "log_format length %zu for size %zu", n, size);
		CHECK(strcmp(mine, libc) == 0,
		      "log_format(\"%s\", size %zu) gave \"%s\", snprintf "
		      "\"%s\"",
		      fmt, size, mine, libc);
	}
}

static void check_format(const char *s, const uint8_t *raw, size_t rawlen)
{
	long long ll = 0;

	memcpy(&ll, raw, rawlen < sizeof(ll) ? rawlen : sizeof(ll));
	expect_same("%s", s);
	expect_same("[%s] %d %u %x", s, (int)ll, (unsigned)ll, (unsigned)ll);
	expect_same("%ld %lu %lx %zu %zd", (long)ll, (unsigned long)ll,
	            (unsigned long)ll, (size_t)ll, (ssize_t)ll);
	expect_same("%lld %llu %% %c", ll, (unsigned long long)ll,
	            (int)(ll & 0x7f) | 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 1);
	const char *part[6] = {"", "", "", "", "", ""};
	size_t at = 0;
	int n = 0;

	if (copy == NULL)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	while (n < 6 && at <= size) {
		part[n++] = copy + at;
		at += strlen(copy + at) + 1;
	}
	check_count(part[0]);
	check_load(part[1], part[2], part[3], part[4]);
	check_format(part[5], data, size);
	free(copy);
	return 0;
}
