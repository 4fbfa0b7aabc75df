/* findlib: where the launcher finds libforkshim, and PATH lookup.
 *
 * Without --lib, the library is looked for relative to the launcher's own
 * file (/proc/self/exe, so symlinks to the launcher do not matter): first
 * the installed layout (<prefix>/bin/forkshim ->
 * <prefix>/<libdir>/libforkshim.so.1, the relative path baked in at build
 * time), then the build tree (<build>/inject/launcher/forkshim ->
 * <build>/shim/libforkshim.so.1). */
#ifndef FORKSHIM_FINDLIB_H
#define FORKSHIM_FINDLIB_H

#include <stddef.h>

/* The absolute path of the library to preload (malloc'd), or NULL with the
 * reason in `why`: `explicit_path` (from --lib, may be NULL) is not a
 * readable file, or no library is next to the launcher (`why` names the
 * places tried). */
char *findlib_locate(const char *explicit_path, char *why, size_t why_len);

/* COMMAND looked up as execvp looks it up: as is when it has a '/', else
 * in each $PATH entry (default "/bin:/usr/bin") the first executable
 * regular file.  malloc'd, or NULL with errno ENOENT or EACCES. */
char *findlib_search_path(const char *command);

#endif
