/* forkshim_api, forkshim_version and the header-only client. */
#include <ctype.h>
#include <dlfcn.h>
#include <limits.h>
#include <spawn.h>
#include <stddef.h>
#include <stdio.h>

#include "common.h"
#include "forkshim_client.h"

static void *exported(const char *name)
{
	void *sym = dlsym(RTLD_DEFAULT, name);

	cr_assert(sym != NULL, "%s is not exported", name);
	return sym;
}

Test(api, version_one_table_has_its_version_and_size)
{
	const struct forkshim_api *api = forkshim_api(FORKSHIM_ABI_VERSION);

	cr_assert(api != NULL, "forkshim_api(1): %s", strerror(errno));
	cr_expect(api->abi_version == 1, "abi_version %u", api->abi_version);
	cr_expect(api->size == sizeof(struct forkshim_api), "size %zu",
	          api->size);
	cr_expect(forkshim_api(1) == api, "the table is not a constant");
}

/* A table member is the function itself and the one the library exports
 * under its name. */
#define EXPECT_MEMBER(api, member, fn)                                         \
	do {                                                                   \
		cr_expect((api)->member == fn);                                \
		cr_expect((void *)(api)->member == exported(#fn));             \
	} while (0)

Test(api, every_pointer_is_the_exported_function)
{
	const struct forkshim_api *api = forkshim_api(1);

	cr_assert(api != NULL);
	EXPECT_MEMBER(api, freeze, forkshim_freeze);
	EXPECT_MEMBER(api, thaw, forkshim_thaw);
	EXPECT_MEMBER(api, deref, forkshim_deref);
	EXPECT_MEMBER(api, find, forkshim_find);
	EXPECT_MEMBER(api, visible, forkshim_visible);
	EXPECT_MEMBER(api, info, forkshim_info);
	EXPECT_MEMBER(api, sharing, forkshim_sharing);
	EXPECT_MEMBER(api, version, forkshim_version);
}

/* SHARED.md's names: fixed values, and the four functions appended to the
 * version 1 table after version, in this order, each the exported one. */
Test(api, shared_region_names_and_their_table_members)
{
	const struct forkshim_api *api = forkshim_api(1);
	size_t at =
	    offsetof(struct forkshim_api, version) + sizeof(api->version);

	cr_expect(FORKSHIM_SHARED == 0x2u && FORKSHIM_SAME_ADDRESS == 0x1u &&
	          FORKSHIM_TOKEN_SIZE == 64 &&
	          sizeof(struct forkshim_token) == FORKSHIM_TOKEN_SIZE);
	cr_expect(offsetof(struct forkshim_api, alloc) == at);
	cr_expect(offsetof(struct forkshim_api, export_token) ==
	          at + sizeof(void (*)(void)));
	cr_expect(offsetof(struct forkshim_api, import_token) ==
	          at + 2 * sizeof(void (*)(void)));
	cr_expect(offsetof(struct forkshim_api, release) ==
	          at + 3 * sizeof(void (*)(void)));
	cr_assert(api != NULL);
	EXPECT_MEMBER(api, alloc, forkshim_alloc);
	EXPECT_MEMBER(api, export_token, forkshim_export);
	EXPECT_MEMBER(api, import_token, forkshim_import);
	EXPECT_MEMBER(api, release, forkshim_release);
}

Test(api, table_functions_work_end_to_end)
{
	const struct forkshim_api *api = forkshim_api(1);
	unsigned char *p = map_pages(1);
	struct forkshim_info info;
	struct forkshim_sharing sh;
	forkshim_handle h;
	size_t len = 0;

	cr_assert(api != NULL);
	h = api->freeze(p, 10, "via table", 0);
	cr_assert(h != 0);
	cr_expect(api->deref(h, &len) == p && len == 10);
	cr_expect(api->find(p + 3, 2) == h);
	cr_expect(api->visible(h, 0) == 1);
	cr_expect(api->info(h, &info) == 0 && info.len == 10);
	cr_expect(api->sharing(h, &sh) == 0 && sh.pages == 1);
	cr_expect(forkshim_deref(h, NULL) == p, "the table's freeze is not "
	                                        "the library's");
	cr_expect(api->thaw(h) == 0);
	errno = 0;
	cr_expect(forkshim_deref(h, NULL) == NULL && errno == ESTALE);
	cr_expect(strcmp(api->version(), forkshim_version()) == 0);
}

Test(api, other_versions_fail_with_enosys)
{
	static const unsigned versions[] = {0, 2, 3, 100, UINT_MAX};

	for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
		errno = 0;
		cr_expect(forkshim_api(versions[i]) == NULL,
		          "forkshim_api(%u) gave a table", versions[i]);
		cr_expect(errno == ENOSYS, "forkshim_api(%u): errno %d",
		          versions[i], errno);
	}
}

Test(api, version_string_is_major_minor_patch)
{
	const char *v = forkshim_version();
	char want[32];
	int n = 0;
	unsigned a, b, c;

	cr_assert(v != NULL);
	cr_expect(strcmp(v, "0.1.0") == 0, "version \"%s\"", v);
	cr_expect(sscanf(v, "%u.%u.%u%n", &a, &b, &c, &n) == 3 && v[n] == '\0',
	          "\"%s\" is not MAJOR.MINOR.PATCH", v);
	for (const char *s = v; *s; s++)
		cr_expect(isdigit((unsigned char)*s) || *s == '.',
		          "\"%s\" has a stray character", v);
	snprintf(want, sizeof want, "%d.%d.%d", FORKSHIM_VERSION_MAJOR,
	         FORKSHIM_VERSION_MINOR, FORKSHIM_VERSION_PATCH);
	cr_expect(strcmp(v, want) == 0, "\"%s\" disagrees with the header's %s",
	          v, want);
}

Test(client, get_returns_the_version_one_table_when_the_shim_is_loaded)
{
	const struct forkshim_api *api = forkshim_client_get();

	cr_expect(api != NULL);
	cr_expect(api == forkshim_api(FORKSHIM_ABI_VERSION));
}

/* The helper links no shim: it prints what forkshim_client_get() found
 * with preload as its LD_PRELOAD, and forkshim_client_has_shared(). */
static void expect_probe(const char *preload, const char *want)
{
	char preload_var[4096], line[128] = "";
	char *argv[] = {UNIT_HELPER, "probe", NULL};
	char *envp[] = {preload_var, NULL};
	posix_spawn_file_actions_t fa;
	int fds[2], status;
	pid_t pid;
	FILE *f;

	snprintf(preload_var, sizeof preload_var, "LD_PRELOAD=%s", preload);
	cr_assert(pipe(fds) == 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
	posix_spawn_file_actions_addclose(&fa, fds[0]);
	cr_assert(posix_spawn(&pid, UNIT_HELPER, &fa, NULL, argv, envp) == 0);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[1]);
	f = fdopen(fds[0], "r");
	cr_assert(f != NULL);
	if (fgets(line, sizeof line, f) == NULL)
		line[0] = '\0';
	fclose(f);
	cr_assert(waitpid(pid, &status, 0) == pid);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	cr_expect(strncmp(line, want, strlen(want)) == 0,
	          "helper said \"%s\", expected \"%s\"", line, want);
}

Test(client, get_returns_null_without_the_shim)
{
	expect_probe("", "absent\n");
}

Test(client, get_finds_a_preloaded_shim)
{
	expect_probe(FORKSHIM_PRELOAD, "present 1 0.1.0 shared 1\n");
}

/* An older shim's table ends at version: the client still gets it (the
 * ABI 1 functions work) and has_shared says no, so the plugin serializes
 * (tests/unit/old_table.c stands in for that shim's table). */
Test(client, an_older_shim_is_found_without_the_shared_functions)
{
	expect_probe(UNIT_OLD_TABLE_PRELOAD, "present 1 0.1.0 shared 0\n");
}
