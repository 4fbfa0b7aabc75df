/* plugin_host.c: an ordinary program that loads a plugin with dlopen().
 *
 * It knows nothing about forkshim and does not link against it; whether the
 * shim is there depends only on how it was started.  It says so, runs the
 * plugin's entry point and exits with its result (2 for usage or load
 * errors). */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int shim_is_mapped(void)
{
	char line[4096];
	int found = 0;
	FILE *maps = fopen("/proc/self/maps", "r");

	if (maps == NULL)
		return -1;
	while (fgets(line, sizeof(line), maps) != NULL)
		if (strstr(line, "libforkshim") != NULL)
			found = 1;
	fclose(maps);
	return found;
}

int main(int argc, char **argv)
{
	int (*run)(void);
	void *plugin;
	int rc;

	alarm(30); /* a hang must end the run, not the test suite */
	if (argc != 2) {
		fprintf(stderr, "usage: %s PLUGIN.so\n", argv[0]);
		return 2;
	}
	printf("host: libforkshim mapped: %s\n",
	       shim_is_mapped() == 1 ? "yes" : "no");
	plugin = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (plugin == NULL) {
		fprintf(stderr, "host: %s\n", dlerror());
		return 2;
	}
	*(void **)&run = dlsym(plugin, "forkshim_e2e_plugin_run");
	if (run == NULL) {
		fprintf(stderr, "host: %s\n", dlerror());
		return 2;
	}
	rc = run();
	printf("host: plugin returned %d\n", rc);
	dlclose(plugin);
	return rc;
}
