/* The unit tests' helper program.  It never links libforkshim: it reaches
 * the shim, when preloaded, through forkshim_client.h.
 *
 *   probe        prints "absent" or "present ABI VERSION"
 *   wait         reads stdin to its end
 *   idle         forks once; prints the child's pid
 *   freeze N     freezes N regions, prints "handle HEX" for each
 *   capacity N   freezes N+1 distinct regions and reports on the table
 *   cycle N      freezes and thaws one region N times, checking that old
 *                handles stay stale; with FORKSHIM_MAX_REGIONS=2 every
 *                freeze reuses the same slot */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "forkshim_client.h"

static const struct forkshim_api *api;

static unsigned char *region_memory(size_t len)
{
	unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
	                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(2);
	}
	memset(p, 0x33, len);
	return p;
}

static int do_idle(void)
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return 1;
	if (pid == 0) {
		if (api != NULL)
			api->version();
		_exit(0);
	}
	printf("child %d\n", (int)pid);
	if (waitpid(pid, &status, 0) != pid || status != 0)
		return 1;
	return 0;
}

static int do_freeze(size_t n)
{
	unsigned char *p = region_memory(n * 64);

	if (api == NULL)
		return 3;
	for (size_t i = 0; i < n; i++) {
		forkshim_handle h = api->freeze(p + 64 * i, 64, "helper", 0);

		if (h == 0)
			return 4;
		printf("handle %llx\n", (unsigned long long)h);
	}
	return 0;
}

/* One line per freeze ("freeze I ERRNO"), then whether the live regions
 * still answer right ("intact 1"), whether the failed range stayed out
 * ("find ERRNO"), and whether a thaw makes room ("refreeze ERRNO"). */
static int do_capacity(size_t n)
{
	unsigned char *p = region_memory((n + 1) * 16);
	forkshim_handle *h = calloc(n + 1, sizeof *h);
	int intact = 1, last_err = 0;

	if (api == NULL || h == NULL) {
		free(h);
		return 3;
	}
	for (size_t i = 0; i <= n; i++) {
		errno = 0;
		h[i] = api->freeze(p + 16 * i, 16, "cap", 0);
		printf("freeze %zu %d\n", i + 1, h[i] != 0 ? 0 : errno);
		if (h[i] == 0)
			last_err = 1;
	}
	for (size_t i = 0; i < n; i++) {
		struct forkshim_info info;
		size_t len = 0;

		if (h[i] == 0 || api->deref(h[i], &len) != p + 16 * i ||
		    len != 16 || api->find(p + 16 * i, 16) != h[i] ||
		    api->info(h[i], &info) != 0 || info.freezes != 1)
			intact = 0;
	}
	printf("intact %d\n", intact);
	if (last_err && h[n] == 0) {
		errno = 0;
		printf("find %d\n", api->find(p + 16 * n, 16) == 0 ? errno : 0);
		if (api->thaw(h[0]) != 0) {
			free(h);
			return 5;
		}
		errno = 0;
		printf("refreeze %d\n",
		       api->freeze(p + 16 * n, 16, "cap", 0) != 0 ? 0 : errno);
	}
	free(h);
	return 0;
}

/* Prints "resolved K" (old handles that named a region: must be 0),
 * "not_estale K" (old handles failing otherwise than ESTALE) and the first
 * bad case as "first CYCLE OLD_CYCLE ERRNO". */
static int do_cycle(size_t n)
{
	enum { KEEP = 48 };
	unsigned char *p = region_memory(64);
	forkshim_handle keep[KEEP], prev = 0;
	size_t kept = 0, resolved = 0, not_estale = 0, keep_cycle[KEEP];
	long first[3] = {-1, -1, 0};

	if (api == NULL)
		return 3;
	for (size_t i = 0; i < n; i++) {
		forkshim_handle h = api->freeze(p, 16, "cycle", 0);

		if (h == 0 || api->deref(h, NULL) != p)
			return 4;
		for (size_t k = 0; k <= kept; k++) {
			forkshim_handle old = k < kept ? keep[k] : prev;
			const void *q;

			if (old == 0)
				continue;
			errno = 0;
			q = api->deref(old, NULL);
			if (q == NULL && errno == ESTALE)
				continue;
			if (q != NULL)
				resolved++;
			else
				not_estale++;
			if (first[0] < 0) {
				first[0] = (long)i;
				first[1] = k < kept ? (long)keep_cycle[k]
				                    : (long)i - 1;
				first[2] = q != NULL ? 0 : errno;
			}
		}
		if (api->thaw(h) != 0)
			return 5;
		/* The first handles, and those around each 2^16 boundary. */
		if (kept < KEEP && (i < 16 || (i + 8) % 65536 < 16)) {
			keep_cycle[kept] = i;
			keep[kept++] = h;
		}
		prev = h;
	}
	printf("resolved %zu\nnot_estale %zu\nfirst %ld %ld %ld\n", resolved,
	       not_estale, first[0], first[1], first[2]);
	return 0;
}

int main(int argc, char **argv)
{
	int rc = 64;

	api = forkshim_client_get();
	if (argc >= 2 && strcmp(argv[1], "probe") == 0) {
		if (api == NULL)
			printf("absent\n");
		else
			printf("present %u %s shared %d\n", api->abi_version,
			       api->version(), forkshim_client_has_shared(api));
		rc = 0;
	} else if (argc >= 2 && strcmp(argv[1], "wait") == 0) {
		char b;

		while (read(0, &b, 1) > 0)
			;
		rc = 0;
	} else if (argc >= 2 && strcmp(argv[1], "idle") == 0) {
		rc = do_idle();
	} else if (argc >= 3 && strcmp(argv[1], "freeze") == 0) {
		rc = do_freeze(strtoul(argv[2], NULL, 10));
	} else if (argc >= 3 && strcmp(argv[1], "cycle") == 0) {
		rc = do_cycle(strtoul(argv[2], NULL, 10));
	} else if (argc >= 3 && strcmp(argv[1], "capacity") == 0) {
		rc = do_capacity(strtoul(argv[2], NULL, 10));
	}
	fflush(stdout);
	return rc;
}
