/* config: the FORKSHIM_* environment, read once at init.
 *
 * config_load() runs in the constructor, before any other module starts; it
 * reads the environment with secure_getenv, reports each unknown value once
 * and keeps the default, and opens FORKSHIM_LOG_FILE.  In secure-execution
 * mode (AT_SECURE) it reads nothing and opens nothing.  After it returns,
 * `config` is read-only. */
#ifndef FORKSHIM_CONFIG_H
#define FORKSHIM_CONFIG_H

#include <stddef.h>

enum guard_mode { GUARD_OFF, GUARD_PROTECT, GUARD_AUDIT };

#define CONFIG_DEFAULT_REGIONS (1u << 20)
#define CONFIG_MAX_REGIONS (1u << 24) /* the handle's slot field */

struct config {
	int secure;             /* AT_SECURE: pass-through */
	enum guard_mode guard;  /* FORKSHIM_GUARD */
	const char *report_dir; /* FORKSHIM_REPORT, NULL for none */
	size_t max_regions;     /* FORKSHIM_MAX_REGIONS */
};

extern struct config config;

void config_load(void);

/* Parses a decimal count; returns 0 and stores it, or -1 with errno ERANGE
 * (digits only, above SIZE_MAX) or EINVAL. For tests and the fuzzer as much
 * as for config_load. */
int config_parse_count(const char *s, size_t *out);

#endif
