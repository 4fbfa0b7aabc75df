#include "ldsearch.h"

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <unistd.h>

#include <elf.h>

#ifndef FORKSHIM_MULTIARCH
#define FORKSHIM_MULTIARCH ""
#endif

struct cache_entry {
	char *name, *path;
};

struct search {
	const struct elf_obj *program;
	const char *const *names;
	size_t n_names;
	struct ld_set *set;
	struct elf_obj interp; /* the program interpreter, when readable */
	bool have_interp;
	struct cache_entry *cache; /* `ldconfig -p`, read at first use */
	size_t n_cache;
	bool cache_read;
};

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (p == NULL) {
		fputs("forkshim: out of memory\n", stderr);
		exit(2);
	}
	return p;
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s);

	if (d == NULL) {
		fputs("forkshim: out of memory\n", stderr);
		exit(2);
	}
	return d;
}

/* The object at index i of the set, -1 meaning the program. */
static const struct elf_obj *object(const struct search *s, int i)
{
	return i < 0 ? s->program : &s->set->libs[i].obj;
}

static void read_cache(struct search *s)
{
	static const char *const ldconfig[] = {"/sbin/ldconfig",
	                                       "/usr/sbin/ldconfig"};
	char cmd[64], line[PATH_MAX + 256];
	FILE *p = NULL;

	s->cache_read = true;
	for (size_t i = 0; i < 2 && p == NULL; i++) {
		if (access(ldconfig[i], X_OK) != 0)
			continue;
		snprintf(cmd, sizeof(cmd), "%s -p 2>/dev/null", ldconfig[i]);
		p = popen(cmd, "re");
	}
	if (p == NULL)
		return;
	/* "\tlibz.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libz.so.1" */
	while (fgets(line, sizeof(line), p) != NULL) {
		char *name = line, *arrow = strstr(line, ") => "), *end;

		if (line[0] != '\t' || arrow == NULL)
			continue;
		name++;
		end = strchr(name, ' ');
		if (end == NULL)
			continue;
		*end = '\0';
		arrow += 5;
		arrow[strcspn(arrow, "\n")] = '\0';
		s->cache =
		    xrealloc(s->cache, (s->n_cache + 1) * sizeof(*s->cache));
		s->cache[s->n_cache].name = xstrdup(name);
		s->cache[s->n_cache].path = xstrdup(arrow);
		s->n_cache++;
	}
	pclose(p);
}

/* Accepts `path` when it is an ELF file the program can load. */
static bool try_path(struct search *s, const char *path, struct elf_obj *out)
{
	struct stat st;
	char why[256];

	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return false;
	if (elfobj_read(path, s->names, s->n_names, out, why, sizeof(why)) !=
	    ELFOBJ_OK)
		return false;
	if (out->elfclass == s->program->elfclass &&
	    out->machine == s->program->machine)
		return true;
	elfobj_free(out);
	return false;
}

static const char *lib_token(void)
{
	if (FORKSHIM_MULTIARCH[0] != '\0')
		return "lib/" FORKSHIM_MULTIARCH;
	return sizeof(void *) == 8 ? "lib64" : "lib";
}

/* Copies `src` into dst, expanding the loader's dynamic string tokens. */
static bool expand(const char *src, const struct elf_obj *owner, char *dst,
                   size_t len)
{
	static const char *const tokens[] = {"ORIGIN", "LIB", "PLATFORM"};
	char origin[PATH_MAX];
	size_t n = 0;

	snprintf(origin, sizeof(origin), "%s", owner->real);
	while (*src) {
		const char *value = NULL;
		size_t skip = 0;

		if (*src == '$') {
			for (size_t t = 0; t < 3 && value == NULL; t++) {
				size_t tl = strlen(tokens[t]);

				if (strncmp(src + 1, tokens[t], tl) == 0)
					skip = 1 + tl;
				else if (src[1] == '{' &&
				         strncmp(src + 2, tokens[t], tl) == 0 &&
				         src[2 + tl] == '}')
					skip = 3 + tl;
				else
					continue;
				if (t == 0)
					value = dirname(origin);
				else if (t == 1)
					value = lib_token();
				else
					value = (const char *)getauxval(
					    AT_PLATFORM);
				if (value == NULL)
					return false;
			}
		}
		if (value != NULL) {
			size_t vl = strlen(value);

			if (n + vl >= len)
				return false;
			memcpy(dst + n, value, vl);
			n += vl;
			src += skip;
		} else {
			if (n + 1 >= len)
				return false;
			dst[n++] = *src++;
		}
	}
	dst[n] = '\0';
	return true;
}

/* Tries name in each directory of a ':'-separated list. */
static bool try_dirs(struct search *s, const char *list,
                     const struct elf_obj *owner, const char *name,
                     struct elf_obj *out)
{
	char *copy = xstrdup(list), *rest = copy, *dir;
	bool found = false;

	/* strsep, not strtok: an empty entry means the current directory, as
	 * it does for the loader. */
	while (!found && (dir = strsep(&rest, ":")) != NULL) {
		char expanded[PATH_MAX], path[PATH_MAX];

		if (!expand(*dir ? dir : ".", owner, expanded,
		            sizeof(expanded)))
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", expanded, name) >=
		    (int)sizeof(path))
			continue;
		found = try_path(s, path, out);
	}
	free(copy);
	return found;
}

static bool try_cache(struct search *s, const char *name, struct elf_obj *out)
{
	if (!s->cache_read)
		read_cache(s);
	for (size_t i = 0; i < s->n_cache; i++)
		if (strcmp(s->cache[i].name, name) == 0 &&
		    try_path(s, s->cache[i].path, out))
			return true;
	return false;
}

static bool try_default(struct search *s, const char *name, struct elf_obj *out)
{
	char dirs[256];

	if (FORKSHIM_MULTIARCH[0] != '\0')
		snprintf(dirs, sizeof(dirs),
		         "/lib/%s:/usr/lib/%s:/lib:/usr/lib:/lib64:/usr/lib64",
		         FORKSHIM_MULTIARCH, FORKSHIM_MULTIARCH);
	else
		snprintf(dirs, sizeof(dirs), "/lib:/usr/lib:/lib64:/usr/lib64");
	return try_dirs(s, dirs, s->program, name, out);
}

/* The loader's search order for `name` needed by object `loader`. */
static const char *find(struct search *s, const char *name, int loader,
                        struct elf_obj *out)
{
	const struct elf_obj *req = object(s, loader);
	const char *env;

	/* The loader itself is loaded already, under its SONAME. */
	if (s->have_interp && s->interp.soname != NULL &&
	    strcmp(name, s->interp.soname) == 0 &&
	    try_path(s, s->program->interp, out))
		return "the program interpreter";
	if (strchr(name, '/') != NULL) {
		char path[PATH_MAX];

		return expand(name, req, path, sizeof(path)) &&
		               try_path(s, path, out)
		           ? "path"
		           : NULL;
	}
	if (req->runpath == NULL) {
		for (int i = loader;; i = s->set->libs[i].loader) {
			const struct elf_obj *o = object(s, i);

			if (o->rpath != NULL && o->runpath == NULL &&
			    try_dirs(s, o->rpath, o, name, out))
				return "RPATH";
			if (i < 0)
				break;
		}
	}
	env = getenv("LD_LIBRARY_PATH");
	if (env != NULL && *env != '\0' &&
	    try_dirs(s, env, s->program, name, out))
		return "LD_LIBRARY_PATH";
	if (req->runpath != NULL && try_dirs(s, req->runpath, req, name, out))
		return "RUNPATH";
	if (req->nodeflib)
		return NULL;
	if (try_cache(s, name, out))
		return "ld.so.cache";
	if (try_default(s, name, out))
		return "default directories";
	return NULL;
}

/* Whether `name` is already loaded, as the loader decides it: the same
 * DT_NEEDED string or SONAME. */
static bool loaded_by_name(const struct search *s, const char *name)
{
	for (size_t i = 0; i < s->set->n; i++) {
		const struct ld_lib *l = &s->set->libs[i];

		if (strcmp(l->name, name) == 0 ||
		    (l->found && l->obj.soname != NULL &&
		     strcmp(l->obj.soname, name) == 0))
			return true;
	}
	return false;
}

static bool loaded_by_path(const struct search *s, const char *real)
{
	for (size_t i = 0; i < s->set->n; i++)
		if (s->set->libs[i].found &&
		    strcmp(s->set->libs[i].obj.real, real) == 0)
			return true;
	return false;
}

void ld_resolve(const struct elf_obj *program, const char *const *names,
                size_t n_names, struct ld_set *set)
{
	struct search s = {
	    .program = program, .names = names, .n_names = n_names, .set = set};

	memset(set, 0, sizeof(*set));
	if (program->interp != NULL)
		s.have_interp = try_path(&s, program->interp, &s.interp);
	/* set->n grows while we walk it: that is the breadth-first queue. */
	for (int i = -1; i < (int)set->n; i++) {
		if (i >= 0 && !set->libs[i].found)
			continue;
		/* object(&s, i) again each time: appending moves set->libs. */
		for (size_t k = 0; k < object(&s, i)->n_needed; k++) {
			const char *name = object(&s, i)->needed[k];
			struct elf_obj found;
			const char *how;
			struct ld_lib *l;

			if (loaded_by_name(&s, name))
				continue;
			how = find(&s, name, i, &found);
			if (how != NULL && loaded_by_path(&s, found.real)) {
				elfobj_free(&found);
				continue;
			}
			set->libs = xrealloc(set->libs,
			                     (set->n + 1) * sizeof(*set->libs));
			l = &set->libs[set->n++];
			memset(l, 0, sizeof(*l));
			l->name = xstrdup(name);
			l->loader = i;
			l->found = how != NULL;
			l->how = how;
			if (how != NULL)
				l->obj = found;
		}
	}
	if (s.have_interp)
		elfobj_free(&s.interp);
	for (size_t i = 0; i < s.n_cache; i++) {
		free(s.cache[i].name);
		free(s.cache[i].path);
	}
	free(s.cache);
}

void ld_set_free(struct ld_set *set)
{
	for (size_t i = 0; i < set->n; i++) {
		free(set->libs[i].name);
		if (set->libs[i].found)
			elfobj_free(&set->libs[i].obj);
	}
	free(set->libs);
	memset(set, 0, sizeof(*set));
}
