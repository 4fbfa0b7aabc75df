/* guard_run.h: what the guard drivers share.  Hosts run as real processes
 * (tests/run_host.h) with an explicit environment: the shim preloaded, and
 * FORKSHIM_GUARD / FORKSHIM_REPORT as each test asks.  Audit tests get a
 * fresh report directory and read the JSON Lines files left in it with
 * plain string searches (the format is ours: see shim/audit.h). */
#ifndef GUARD_RUN_H
#define GUARD_RUN_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "run_host.h"

/* guard NULL: FORKSHIM_GUARD unset; report NULL: FORKSHIM_REPORT unset;
 * preload 0: without the shim (the sanitizer options all the same). */
static inline const char *const *guard_env(struct host_env *e,
                                           const char *guard,
                                           const char *report, int preload)
{
	if (preload) {
		host_env_shim(e);
	} else {
		host_env_plain(e);
		host_env_sanitizer(e);
	}
	if (guard != NULL)
		host_env_add(e, "FORKSHIM_GUARD=%s", guard);
	if (report != NULL)
		host_env_add(e, "FORKSHIM_REPORT=%s", report);
	return e->vars;
}

/* Occurrences of needle in text. */
static inline int guard_count(const char *text, const char *needle)
{
	int n = 0;

	for (const char *s = text; (s = strstr(s, needle)) != NULL; s++)
		n++;
	return n;
}

/* Whether the first line at or after from that contains prefix also
 * contains needle after it. */
static inline bool guard_line_has(const char *from, const char *prefix,
                                  const char *needle)
{
	const char *s = from ? strstr(from, prefix) : NULL;
	const char *end = s ? strchr(s, '\n') : NULL;
	const char *hit = s ? strstr(s, needle) : NULL;

	return hit != NULL && (end == NULL || hit < end);
}

/* Runs script with /bin/sh as user and group nobody (65534), without the
 * shim; asserts it exited 0. */
static inline void guard_as_nobody(const char *script)
{
	const char *argv[] = {"/usr/bin/setpriv",
	                      "--reuid=65534",
	                      "--regid=65534",
	                      "--clear-groups",
	                      "/bin/sh",
	                      "-c",
	                      script,
	                      NULL};
	struct host_env e;
	struct host_run r;

	HOST_RUN(&r, argv, .envp = guard_env(&e, NULL, NULL, 0),
	         .timeout_s = 30);
	cr_assert(host_exited_with(&r, 0), "as nobody: %s: " HOST_RUN_FMT,
	          script, HOST_RUN_ARGS(r));
	host_run_free(&r);
}

/* ---- report directories ---- */

static inline void guard_mkdir(char *dir, size_t size)
{
	snprintf(dir, size, "/tmp/forkshim-guard-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

/* The audit files of a directory: their names (up to max), and how many. */
static inline int guard_reports(const char *dir, char names[][64], int max)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	cr_assert_not_null(d, "opendir %s", dir);
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, "audit-", 6) != 0)
			continue;
		if (n < max && strlen(e->d_name) < 64)
			memcpy(names[n], e->d_name, strlen(e->d_name) + 1);
		n++;
	}
	closedir(d);
	return n;
}

/* first_write records of a file for (region, page). */
static inline int guard_records(const char *text, const char *region, int page)
{
	char needle[160];
	int n = 0;

	snprintf(needle, sizeof(needle), "\"region\":\"%s\"", region);
	for (const char *s = text; (s = strstr(s, needle)) != NULL; s++) {
		const char *p = strstr(s, "\"page\":");
		const char *end = strchr(s, '\n');

		if (p != NULL && (end == NULL || p < end) &&
		    atoi(p + 7) == page)
			n++;
	}
	return n;
}

/* Whether a symbol line names the function. */
static inline bool guard_names_function(const char *text, const char *fn)
{
	char needle[160];

	snprintf(needle, sizeof(needle), "\"function\":\"%s\"", fn);
	return strstr(text, needle) != NULL;
}

#endif
