/* config: the FORKSHIM_* environment, read once at init.
 *
 * config_load() runs in the constructor, before any other module starts; it
 * reads the environment with secure_getenv, reports each unknown value once
 * and keeps the default, and opens FORKSHIM_LOG_FILE.  In secure-execution
 * mode (AT_SECURE) it reads nothing and opens nothing.  After it returns,
 * `config` is read-only.  Every value kept is a copy: hosts reuse the
 * environment block for their process title.
 *
 * FORKSHIM_REPORT must be an existing directory, not a symlink, owned by
 * the effective uid and not writable by group or others; config_load opens
 * it (O_DIRECTORY|O_NOFOLLOW) and keeps the descriptor (owned.h), or logs
 * one error saying why not and leaves report_dir NULL.  config_report_fd()
 * is that descriptor while it is still the directory's; when the program
 * closed it, the path is opened again if it names the same directory
 * (device, inode) still acceptable; else -1, said once.  It is
 * async-signal-safe (fstat, open, fcntl). */
#ifndef FORKSHIM_CONFIG_H
#define FORKSHIM_CONFIG_H

#include <stddef.h>
#include <stdint.h>

enum guard_mode { GUARD_OFF, GUARD_PROTECT, GUARD_AUDIT };

#define CONFIG_DEFAULT_REGIONS (1u << 20)
#define CONFIG_MAX_REGIONS (1u << 24) /* the handle's slot field */
#define CONFIG_PATH_MAX 4096

struct config {
	int secure;             /* AT_SECURE: pass-through */
	enum guard_mode guard;  /* FORKSHIM_GUARD */
	const char *report_dir; /* FORKSHIM_REPORT (a copy), NULL: none or
	                           refused */
	size_t max_regions;     /* FORKSHIM_MAX_REGIONS */
	int64_t loaded;         /* CLOCK_REALTIME at load, in seconds, less
	                           one (file times are coarser) */
};

extern struct config config;

void config_load(void);
int config_report_fd(void);

/* Parses a decimal count; returns 0 and stores it, or -1 with errno ERANGE
 * (digits only, above SIZE_MAX) or EINVAL. For tests and the fuzzer as much
 * as for config_load. */
int config_parse_count(const char *s, size_t *out);

#endif
