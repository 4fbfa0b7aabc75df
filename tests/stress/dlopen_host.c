/* dlopen_host: a plugin host that loads the shim itself, over and over.
 *
 * Usage: dlopen_host LIBFORKSHIM CYCLES
 *
 * Not linked against libforkshim and started without LD_PRELOAD.  Each
 * cycle dlopens the shim (RTLD_LOCAL and RTLD_GLOBAL in turn), freezes,
 * derefs, finds and thaws a buffer through forkshim_api, forks a child
 * every tenth cycle that derefs a handle frozen in the first cycle, and
 * dlcloses the shim again.  The shim is linked -z nodelete: it must stay
 * mapped, keep its table (the first handle stays valid throughout), and
 * leave mappings and descriptors where they were after the first cycle.
 * Prints "dlopen: cycles N forks F" and exits 0, or explains and exits 1. */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "forkshim.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZER_MAPS 1 /* its allocator maps memory as it goes */
#endif

typedef const struct forkshim_api *(*api_fn)(unsigned);

static char first_buf[4096], cycle_buf[4096];

static int count_lines(const char *path)
{
	FILE *f = fopen(path, "r");
	int n = 0, c;

	if (f == NULL)
		return -1;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (d == NULL)
		return -1;
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

static int fail(int cycle, const char *what)
{
	printf("dlopen: cycle %d: %s (errno %d)\n", cycle, what, errno);
	return 1;
}

int main(int argc, char **argv)
{
	forkshim_handle first = 0;
	int cycles, forks = 0, maps = 0, fds = 0;

	alarm(50);
	if (argc != 3 || (cycles = atoi(argv[2])) <= 0) {
		fprintf(stderr, "usage: %s LIBFORKSHIM CYCLES\n", argv[0]);
		return 2;
	}
	if (dlopen(argv[1], RTLD_NOW | RTLD_NOLOAD) != NULL)
		return fail(0, "the shim is loaded before the first dlopen");
	for (int i = 0; i < cycles; i++) {
		int mode = RTLD_NOW | (i % 2 ? RTLD_GLOBAL : RTLD_LOCAL);
		void *lib = dlopen(argv[1], mode);
		const struct forkshim_api *api;
		forkshim_handle h;
		api_fn get;
		size_t len;

		if (lib == NULL) {
			printf("dlopen: cycle %d: %s\n", i, dlerror());
			return 1;
		}
		*(void **)&get = dlsym(lib, "forkshim_api");
		api = get != NULL ? get(FORKSHIM_ABI_VERSION) : NULL;
		if (api == NULL)
			return fail(i, "no forkshim_api");
		if (i == 0) {
			first = api->freeze(first_buf, sizeof(first_buf),
			                    "first", 0);
			if (first == 0)
				return fail(i, "first freeze");
		}
		if (api->deref(first, &len) != first_buf ||
		    len != sizeof(first_buf))
			return fail(i, "the first handle no longer derefs");
		h = api->freeze(cycle_buf, 100 + (size_t)i % 3000, "cycle", 0);
		if (h == 0 || api->deref(h, NULL) != cycle_buf ||
		    api->find(cycle_buf + 50, 1) != h)
			return fail(i, "freeze, deref or find");
		if (i % 10 == 0) {
			int status;
			pid_t pid = fork();

			if (pid == 0)
				_exit(api->deref(first, NULL) == first_buf &&
				              api->deref(h, NULL) == cycle_buf
				          ? 0
				          : 1);
			if (pid < 0 || waitpid(pid, &status, 0) != pid ||
			    status != 0)
				return fail(i, "a forked child's deref");
			forks++;
		}
		if (api->thaw(h) != 0)
			return fail(i, "thaw");
		if (dlclose(lib) != 0)
			return fail(i, "dlclose");
		if (dlopen(argv[1], RTLD_NOW | RTLD_NOLOAD) == NULL)
			return fail(i, "unloaded by dlclose (not nodelete)");
		dlclose(lib); /* the NOLOAD reference */
		if (i == 0) {
			maps = count_lines("/proc/self/maps");
			fds = count_fds();
		}
	}
#ifndef SANITIZER_MAPS
	if (count_lines("/proc/self/maps") != maps)
		return fail(cycles, "mappings changed after the first cycle");
#else
	(void)maps;
#endif
	if (count_fds() != fds)
		return fail(cycles,
		            "descriptors changed after the first cycle");
	printf("dlopen: cycles %d forks %d\n", cycles, forks);
	return 0;
}
