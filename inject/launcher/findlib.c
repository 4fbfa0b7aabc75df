#include "findlib.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef FORKSHIM_LIB_NAME
#error "FORKSHIM_LIB_NAME: the library's file name (its SONAME)"
#endif
#ifndef FORKSHIM_LIB_REL_INSTALLED
#error "FORKSHIM_LIB_REL_INSTALLED: the libdir relative to the bindir"
#endif
#ifndef FORKSHIM_LIB_REL_BUILD
#error "FORKSHIM_LIB_REL_BUILD: the shim's build dir relative to ours"
#endif

/* 0 when path is a readable regular file, else an errno value. */
static int readable_file(const char *path)
{
	struct stat st;

	if (stat(path, &st) != 0)
		return errno;
	if (!S_ISREG(st.st_mode))
		return S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
	return access(path, R_OK) == 0 ? 0 : errno;
}

/* An absolute name for the file at path: its directory canonical, its own
 * name kept (libforkshim.so.1 stays the SONAME link it is, not the file
 * libforkshim.so.0.1.0 it points to). malloc'd, or NULL. */
static char *absolute(const char *path)
{
	char dir[PATH_MAX], resolved[PATH_MAX], *out;
	const char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : path;

	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	if (realpath(dir, resolved) == NULL)
		return NULL;
	if (asprintf(&out, "%s%s%s", resolved,
	             strcmp(resolved, "/") == 0 ? "" : "/", name) < 0)
		return NULL;
	return out;
}

/* The directory holding the launcher's own file, or NULL. */
static char *self_dir(void)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	if (n <= 0)
		return NULL;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (slash == NULL)
		return NULL;
	*slash = '\0';
	return strdup(exe[0] ? exe : "/");
}

char *findlib_locate(const char *explicit_path, char *why, size_t why_len)
{
	static const char *const rel[] = {FORKSHIM_LIB_REL_INSTALLED,
	                                  FORKSHIM_LIB_REL_BUILD};
	char path[PATH_MAX];
	char *dir, *found;
	int err;

	if (explicit_path != NULL) {
		err = readable_file(explicit_path);
		found = err ? NULL : absolute(explicit_path);
		if (found == NULL)
			snprintf(why, why_len, "%s: %s", explicit_path,
			         strerror(err ? err : errno));
		return found;
	}
	dir = self_dir();
	if (dir == NULL) {
		snprintf(why, why_len,
		         "cannot read /proc/self/exe to find " FORKSHIM_LIB_NAME
		         " next to forkshim (%s); give it with --lib PATH",
		         strerror(errno));
		return NULL;
	}
	for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s/%s", dir, rel[i],
		         FORKSHIM_LIB_NAME);
		if (readable_file(path) == 0 && (found = absolute(path))) {
			free(dir);
			return found;
		}
	}
	snprintf(why, why_len,
	         "%s is neither in %s/%s nor in %s/%s; give it with --lib PATH",
	         FORKSHIM_LIB_NAME, dir, rel[0], dir, rel[1]);
	free(dir);
	return NULL;
}

char *findlib_search_path(const char *command)
{
	const char *path = getenv("PATH");
	char *copy, *rest, *dir;
	bool denied = false;

	if (*command == '\0') {
		errno = ENOENT;
		return NULL;
	}
	if (strchr(command, '/') != NULL) {
		if (access(command, F_OK) != 0)
			return NULL;
		return strdup(command);
	}
	if (path == NULL)
		path = "/bin:/usr/bin";
	copy = rest = strdup(path);
	if (copy == NULL)
		return NULL;
	while ((dir = strsep(&rest, ":")) != NULL) {
		char candidate[PATH_MAX];
		struct stat st;

		if (snprintf(candidate, sizeof(candidate), "%s%s%s",
		             *dir ? dir : "", *dir ? "/" : "",
		             command) >= (int)sizeof(candidate))
			continue;
		if (stat(candidate, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		if (access(candidate, X_OK) != 0) {
			denied = true;
			continue;
		}
		free(copy);
		return strdup(candidate);
	}
	free(copy);
	errno = denied ? EACCES : ENOENT;
	return NULL;
}
