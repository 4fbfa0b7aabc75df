/* config: the FORKSHIM_* environment (contract in config.h).  Called by
 * init once, in normal context (and by the tests and the fuzzer through
 * config_parse_count); calls log only.  Normal context only; it
 * allocates nothing (the strings it keeps are the environment's). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>

#include "log.h"

struct config config = {
    .guard = GUARD_OFF,
    .max_regions = CONFIG_DEFAULT_REGIONS,
};

static const char *const level_names[] = {"off", "error", "warn", "info",
                                          "debug"};
static const char *const guard_names[] = {"off", "protect", "audit"};

static int lookup(const char *value, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(value, names[i]) == 0)
			return i;
	return -1;
}

int config_parse_count(const char *s, size_t *out)
{
	size_t v = 0;
	int over = 0;

	if (s == NULL || *s == '\0') {
		errno = EINVAL;
		return -1;
	}
	for (; *s; s++) {
		size_t d = (size_t)(*s - '0');

		if (*s < '0' || *s > '9') {
			errno = EINVAL;
			return -1;
		}
		if (v > SIZE_MAX / 10 ||
		    (v == SIZE_MAX / 10 && d > SIZE_MAX % 10))
			over = 1;
		else
			v = v * 10 + d;
	}
	if (over) {
		errno = ERANGE;
		return -1;
	}
	*out = v;
	return 0;
}

void config_load(void)
{
	const char *v;
	int i;

	if (getauxval(AT_SECURE)) {
		config.secure = 1;
		return;
	}
	/* The log goes first, so the reports below reach the right place. */
	v = secure_getenv("FORKSHIM_LOG");
	if (v != NULL) {
		i = lookup(v, level_names, 5);
		if (i >= 0)
			log_threshold = i;
	}
	const char *bad_level = (v != NULL && i < 0) ? v : NULL;

	v = secure_getenv("FORKSHIM_LOG_FILE");
	if (v != NULL && *v != '\0') {
		int fd = open(
		    v, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW,
		    0600);

		if (fd >= 0)
			log_fd = fd;
		else
			log_error(
			    "FORKSHIM_LOG_FILE=%s: cannot open (errno %d); "
			    "logging to stderr",
			    v, errno);
	}
	if (bad_level != NULL)
		log_warn(
		    "FORKSHIM_LOG=%s is not one of off, error, warn, info, "
		    "debug; using warn",
		    bad_level);

	v = secure_getenv("FORKSHIM_GUARD");
	if (v != NULL) {
		i = lookup(v, guard_names, 3);
		if (i < 0)
			log_warn(
			    "FORKSHIM_GUARD=%s is not one of off, protect, "
			    "audit; using off",
			    v);
		else
			config.guard = (enum guard_mode)i;
	}

	v = secure_getenv("FORKSHIM_REPORT");
	if (v != NULL && *v != '\0') {
		struct stat st;

		if (stat(v, &st) == 0 && S_ISDIR(st.st_mode))
			config.report_dir = v;
		else
			log_warn("FORKSHIM_REPORT=%s is not a directory: no "
			         "reports; audit records go to the log",
			         v);
	}

	v = secure_getenv("FORKSHIM_MAX_REGIONS");
	if (v != NULL) {
		size_t n;

		/* Digits past SIZE_MAX are a count too, above the limit. */
		if (config_parse_count(v, &n) < 0)
			n = errno == ERANGE ? SIZE_MAX : 0;
		if (n == 0) {
			log_warn("FORKSHIM_MAX_REGIONS=%s is not a positive "
			         "count; using %u",
			         v, CONFIG_DEFAULT_REGIONS);
		} else if (n > CONFIG_MAX_REGIONS) {
			log_warn("FORKSHIM_MAX_REGIONS=%s is above the limit; "
			         "using %u",
			         v, CONFIG_MAX_REGIONS);
			config.max_regions = CONFIG_MAX_REGIONS;
		} else {
			config.max_regions = n;
		}
	}
}
