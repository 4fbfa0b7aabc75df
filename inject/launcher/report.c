#include "report.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

#define FORMAT_KNOWN 1 /* the newest report format this reader knows */
#define TOP_WRITERS 3
#define BAR 40

struct proc {
	unsigned long long pid, ppid, birth, page_size, reported_by;
	unsigned long long status, sig;
	char how[16];
	char *exe;
};

struct view {
	size_t proc;
	unsigned long long pages, resident, shared, exclusive, swapped;
};

struct site {
	char *name;
	unsigned long long pages;
};

struct region {
	char *name, *handle, *addr;
	unsigned long long owner, size, pages, page_size;
	struct view *views;
	size_t nviews;
	struct site *sites;
	size_t nsites;
	unsigned long long copied; /* pages, over the processes not owning it */
	unsigned long long others; /* those processes */
	unsigned long long others_pages;
};

struct run {
	struct proc *procs;
	size_t nprocs;
	struct region *regions;
	size_t nregions;
	size_t reports, audits, skipped;
};

static void *grow(void *p, size_t n, size_t size)
{
	void *q = realloc(p, (n + 1) * size);

	if (q == NULL) {
		fputs("forkshim report: out of memory\n", stderr);
		exit(2);
	}
	return q;
}

static char *dup_or_empty(const char *s)
{
	char *d = strdup(s != NULL ? s : "");

	if (d == NULL) {
		fputs("forkshim report: out of memory\n", stderr);
		exit(2);
	}
	return d;
}

static void skip(struct run *r, const char *path, const char *why)
{
	fprintf(stderr, "forkshim report: %s: skipped: %s\n", path, why);
	r->skipped++;
}

/* ---- reading a file into parsed lines ---- */

struct lines {
	struct json **v;
	size_t n;
};

static void lines_free(struct lines *l)
{
	for (size_t i = 0; i < l->n; i++)
		json_free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* 0, or -1 with *why set: every line must be one JSON object. */
static int read_lines(const char *path, struct lines *l, char *why,
                      size_t whylen)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int rc = 0;

	l->v = NULL;
	l->n = 0;
	if (f == NULL) {
		snprintf(why, whylen, "cannot read: %s", strerror(errno));
		return -1;
	}
	while ((len = getline(&line, &cap, f)) > 0) {
		struct json *v;

		if (line[len - 1] != '\n') {
			snprintf(why, whylen,
			         "truncated: line %zu has no end of line",
			         l->n + 1);
			rc = -1;
			break;
		}
		line[len - 1] = '\0';
		v = json_parse(line);
		if (v == NULL || v->type != JSON_OBJ) {
			json_free(v);
			snprintf(why, whylen, "line %zu is not a JSON object",
			         l->n + 1);
			rc = -1;
			break;
		}
		l->v = grow(l->v, l->n, sizeof(*l->v));
		l->v[l->n++] = v;
	}
	free(line);
	fclose(f);
	if (rc == 0 && l->n == 0) {
		snprintf(why, whylen, "empty");
		rc = -1;
	}
	if (rc != 0)
		lines_free(l);
	return rc;
}

static int is_type(const struct json *v, const char *type)
{
	const char *t = json_str(v, "type");

	return t != NULL && strcmp(t, type) == 0;
}

/* The first line's format check: 0, or -1 with *why. */
static int check_head(const struct lines *l, int need_format, char *why,
                      size_t whylen)
{
	const struct json *head = l->v[0];
	const struct json *fmt = json_get(head, "format");
	int ok;

	if (!is_type(head, "process") || !json_u(head, "pid", &ok) || !ok) {
		snprintf(why, whylen,
		         "not a forkshim file (no process line "
		         "first)");
		return -1;
	}
	if (fmt == NULL && need_format) {
		snprintf(why, whylen, "not a forkshim report (no format)");
		return -1;
	}
	if (fmt != NULL) {
		unsigned long long f = json_u(head, "format", &ok);

		if (!ok || f == 0) {
			snprintf(why, whylen, "bad format value");
			return -1;
		}
		if (f > FORMAT_KNOWN) {
			snprintf(why, whylen,
			         "format %llu is newer than this forkshim "
			         "reads (%d)",
			         f, FORMAT_KNOWN);
			return -1;
		}
	}
	return 0;
}

/* ---- report files ---- */

static struct region *region_for(struct run *r, const struct json *v)
{
	const char *handle = json_str(v, "handle");
	const char *addr = json_str(v, "addr");
	unsigned long long owner = json_u(v, "owner", NULL);
	struct region *g;

	for (size_t i = 0; i < r->nregions; i++) {
		g = &r->regions[i];
		if (strcmp(g->handle, handle) == 0 && g->owner == owner &&
		    strcmp(g->addr, addr) == 0)
			return g;
	}
	r->regions = grow(r->regions, r->nregions, sizeof(*r->regions));
	g = &r->regions[r->nregions++];
	memset(g, 0, sizeof(*g));
	g->name = dup_or_empty(json_str(v, "name"));
	g->handle = dup_or_empty(handle);
	g->addr = dup_or_empty(addr);
	g->owner = owner;
	g->size = json_u(v, "size", NULL);
	g->pages = json_u(v, "pages", NULL);
	return g;
}

static int region_line_ok(const struct json *v)
{
	static const char *const nums[] = {"size",     "owner",  "pages",
	                                   "resident", "shared", "exclusive",
	                                   "swapped"};
	int ok;

	if (json_str(v, "handle") == NULL || json_str(v, "addr") == NULL ||
	    json_str(v, "name") == NULL)
		return 0;
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		json_u(v, nums[i], &ok);
		if (!ok)
			return 0;
	}
	return 1;
}

static void read_report(struct run *r, const char *path)
{
	struct lines l;
	char why[160];
	const struct json *end;
	struct proc p;
	size_t pi;
	int ok = 1;

	if (read_lines(path, &l, why, sizeof(why)) != 0 ||
	    check_head(&l, 1, why, sizeof(why)) != 0) {
		lines_free(&l);
		skip(r, path, why);
		return;
	}
	end = l.v[l.n - 1];
	if (l.n < 2 || !is_type(end, "end") || json_str(end, "how") == NULL) {
		lines_free(&l);
		skip(r, path, "truncated: no end line");
		return;
	}
	for (size_t i = 1; i + 1 < l.n && ok; i++)
		if (is_type(l.v[i], "region"))
			ok = region_line_ok(l.v[i]);
	if (!ok) {
		lines_free(&l);
		skip(r, path, "a region line lacks a field");
		return;
	}
	memset(&p, 0, sizeof(p));
	p.pid = json_u(l.v[0], "pid", NULL);
	p.ppid = json_u(l.v[0], "ppid", NULL);
	p.birth = json_u(l.v[0], "birth", NULL);
	p.page_size = json_u(l.v[0], "page_size", NULL);
	if (p.page_size == 0)
		p.page_size = 4096;
	p.reported_by = json_u(l.v[0], "reported_by", NULL);
	p.exe = dup_or_empty(json_str(l.v[0], "exe"));
	snprintf(p.how, sizeof(p.how), "%s", json_str(end, "how"));
	p.status = json_u(end, "status", NULL);
	p.sig = json_u(end, "signal", NULL);
	pi = r->nprocs;
	r->procs = grow(r->procs, r->nprocs, sizeof(*r->procs));
	r->procs[r->nprocs++] = p;
	r->reports++;
	for (size_t i = 1; i + 1 < l.n; i++) {
		const struct json *v = l.v[i];
		struct region *g;
		struct view w;

		if (!is_type(v, "region"))
			continue; /* a line of a later minor addition */
		g = region_for(r, v);
		g->page_size = p.page_size;
		w.proc = pi;
		w.pages = json_u(v, "pages", NULL);
		w.resident = json_u(v, "resident", NULL);
		w.shared = json_u(v, "shared", NULL);
		w.exclusive = json_u(v, "exclusive", NULL);
		w.swapped = json_u(v, "swapped", NULL);
		g->views = grow(g->views, g->nviews, sizeof(*g->views));
		g->views[g->nviews++] = w;
	}
	lines_free(&l);
}

/* ---- audit files ---- */

static int is_runtime(const char *module)
{
	static const char *const skip_mods[] = {"/libc.so", "/ld-linux",
	                                        "/libforkshim", "linux-vdso"};

	for (size_t i = 0; i < sizeof(skip_mods) / sizeof(skip_mods[0]); i++)
		if (strstr(module, skip_mods[i]) != NULL)
			return 1;
	return 0;
}

static const char *symbol_of(const struct lines *l, const char *module,
                             const char *offset)
{
	for (size_t i = 0; i < l->n; i++) {
		const char *m = json_str(l->v[i], "module");
		const char *o = json_str(l->v[i], "offset");

		if (is_type(l->v[i], "symbol") && m && o &&
		    strcmp(m, module) == 0 && strcmp(o, offset) == 0)
			return json_str(l->v[i], "function");
	}
	return NULL;
}

/* The writer's call site: the first frame outside the C library, the
 * loader and the shim (a memcpy is not the news), by function name. */
static void site_of(const struct lines *l, const struct json *rec, char *out,
                    size_t size)
{
	const struct json *frames = json_get(rec, "frames");
	const struct json *pick = NULL;

	snprintf(out, size, "(no backtrace)");
	if (frames == NULL || frames->type != JSON_ARR || frames->n == 0)
		return;
	for (size_t i = 0; i < frames->n && pick == NULL; i++) {
		const char *m = json_str(frames->items[i], "module");

		if (m != NULL && *m != '\0' && !is_runtime(m))
			pick = frames->items[i];
	}
	if (pick == NULL)
		pick = frames->items[0];

	const char *m = json_str(pick, "module");
	const char *o = json_str(pick, "offset");
	const char *fn = m && o ? symbol_of(l, m, o) : NULL;
	const char *base = m ? strrchr(m, '/') : NULL;

	base = base ? base + 1 : (m && *m ? m : "?");
	if (fn != NULL)
		snprintf(out, size, "%s (%s)", fn, base);
	else
		snprintf(out, size, "%s+%s", base, o ? o : "?");
}

static void add_site(struct region *g, const char *name)
{
	for (size_t i = 0; i < g->nsites; i++)
		if (strcmp(g->sites[i].name, name) == 0) {
			g->sites[i].pages++;
			return;
		}
	g->sites = grow(g->sites, g->nsites, sizeof(*g->sites));
	g->sites[g->nsites].name = dup_or_empty(name);
	g->sites[g->nsites++].pages = 1;
}

static void read_audit(struct run *r, const char *path)
{
	struct lines l;
	char why[160];

	if (read_lines(path, &l, why, sizeof(why)) != 0 ||
	    check_head(&l, 0, why, sizeof(why)) != 0) {
		lines_free(&l);
		skip(r, path, why);
		return;
	}
	r->audits++;
	for (size_t i = 1; i < l.n; i++) {
		const struct json *v = l.v[i];
		const char *handle = json_str(v, "handle");
		unsigned long long owner = json_u(v, "owner", NULL);
		char site[512];

		if (!is_type(v, "first_write") || handle == NULL)
			continue;
		site_of(&l, v, site, sizeof(site));
		for (size_t k = 0; k < r->nregions; k++)
			if (strcmp(r->regions[k].handle, handle) == 0 &&
			    r->regions[k].owner == owner)
				add_site(&r->regions[k], site);
	}
	lines_free(&l);
}

/* ---- the run ---- */

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static const struct run *sort_run;

static unsigned long long
view_copied(const struct run *r, const struct region *g, const struct view *w)
{
	return r->procs[w->proc].pid == g->owner ? 0 : w->exclusive;
}

static const struct region *sort_region;

/* qsort, also of an empty array (whose pointer may be NULL, which qsort
 * may not be given). */
static void sort(void *base, size_t n, size_t size,
                 int (*cmp)(const void *, const void *))
{
	if (n > 1)
		qsort(base, n, size, cmp);
}

static int view_cmp(const void *a, const void *b)
{
	const struct view *x = a, *y = b;
	unsigned long long cx = view_copied(sort_run, sort_region, x);
	unsigned long long cy = view_copied(sort_run, sort_region, y);
	unsigned long long px = sort_run->procs[x->proc].pid;
	unsigned long long py = sort_run->procs[y->proc].pid;

	if (cx != cy)
		return cx < cy ? 1 : -1;
	return px < py ? -1 : px > py;
}

static int region_cmp(const void *a, const void *b)
{
	const struct region *x = a, *y = b;
	int c;

	if (x->copied * x->page_size != y->copied * y->page_size)
		return x->copied * x->page_size < y->copied * y->page_size ? 1
		                                                           : -1;
	if (x->size != y->size)
		return x->size < y->size ? 1 : -1;
	c = strcmp(x->name, y->name);
	return c != 0 ? c : strcmp(x->handle, y->handle);
}

static int site_cmp(const void *a, const void *b)
{
	const struct site *x = a, *y = b;

	if (x->pages != y->pages)
		return x->pages < y->pages ? 1 : -1;
	return strcmp(x->name, y->name);
}

static int load(struct run *r, const char *dirpath)
{
	DIR *d = opendir(dirpath);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0;

	memset(r, 0, sizeof(*r));
	if (d == NULL) {
		fprintf(stderr, "forkshim report: %s: %s\n", dirpath,
		        strerror(errno));
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		if ((strncmp(e->d_name, "report-", 7) != 0 &&
		     strncmp(e->d_name, "audit-", 6) != 0) ||
		    !has_suffix(e->d_name, ".jsonl"))
			continue;
		names = grow(names, n, sizeof(*names));
		if (asprintf(&names[n++], "%s/%s", dirpath, e->d_name) < 0)
			exit(2);
	}
	closedir(d);
	sort(names, n, sizeof(*names), name_cmp);
	/* Reports first: audit records are matched to their regions. */
	for (size_t i = 0; i < n; i++)
		if (strstr(strrchr(names[i], '/'), "/report-"))
			read_report(r, names[i]);
	for (size_t i = 0; i < n; i++)
		if (strstr(strrchr(names[i], '/'), "/audit-"))
			read_audit(r, names[i]);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);

	sort_run = r;
	for (size_t i = 0; i < r->nregions; i++) {
		struct region *g = &r->regions[i];

		for (size_t k = 0; k < g->nviews; k++) {
			if (r->procs[g->views[k].proc].pid == g->owner)
				continue;
			g->copied += g->views[k].exclusive;
			g->others++;
			g->others_pages += g->views[k].pages;
		}
		sort_region = g;
		sort(g->views, g->nviews, sizeof(*g->views), view_cmp);
		sort(g->sites, g->nsites, sizeof(*g->sites), site_cmp);
	}
	sort(r->regions, r->nregions, sizeof(*r->regions), region_cmp);
	sort_run = NULL; /* only for the sorts: r is the caller's */
	sort_region = NULL;
	return 0;
}

/* ---- words ---- */

static void size_text(unsigned long long bytes, char *out, size_t size)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)bytes;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, size, "%llu B", bytes);
	else
		snprintf(out, size, "%.1f %s", v, units[u]);
}

static void ended_text(const struct proc *p, char *out, size_t size)
{
	const char *abbrev =
	    p->sig > 0 && p->sig < 65 ? sigabbrev_np((int)p->sig) : NULL;
	char sig[24];

	if (abbrev != NULL)
		snprintf(sig, sizeof(sig), "SIG%s", abbrev);
	else
		snprintf(sig, sizeof(sig), "signal %llu", p->sig);
	if (strcmp(p->how, "signal") == 0)
		snprintf(out, size, "%s", sig);
	else if (strcmp(p->how, "killed") == 0)
		snprintf(out, size, "killed, %s", sig);
	else
		snprintf(out, size, "%s %llu", p->how, p->status);
}

/* A region's size and the memory its copies cost, as words. */
static void region_sizes(const struct region *g, char size[32], char cost[32])
{
	size_text(g->size, size, 32);
	size_text(g->copied * g->page_size, cost, 32);
}

/* Percent of the non-owning processes' pages still shared. */
static double shared_percent(const struct region *g)
{
	if (g->others_pages == 0)
		return -1;
	return 100.0 * (double)(g->others_pages - g->copied) /
	       (double)g->others_pages;
}

static void json_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

static void xml_text(FILE *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '<')
			fputs("&lt;", out);
		else if (*s == '>')
			fputs("&gt;", out);
		else if (*s == '&')
			fputs("&amp;", out);
		else if (*s == '"')
			fputs("&quot;", out);
		else if ((unsigned char)*s >= 0x20)
			fputc(*s, out);
	}
}

static int proc_without_figures(const struct run *r, size_t i)
{
	for (size_t k = 0; k < r->nregions; k++)
		for (size_t j = 0; j < r->regions[k].nviews; j++)
			if (r->regions[k].views[j].proc == i)
				return 0;
	return 1;
}

/* ---- the table ---- */

/* shared as '=', then the rest of the resident pages as mark, then what
 * is not resident as '.', over BAR columns. */
static void bar(FILE *out, const struct view *w, char mark)
{
	unsigned long long pages = w->pages ? w->pages : 1;
	unsigned long long rest = w->resident - w->shared;
	int c = (int)((rest * BAR + pages - 1) / pages);
	int s = (int)((w->shared * BAR) / pages);

	if (c > BAR)
		c = BAR;
	if (s > BAR - c)
		s = BAR - c;
	fputc('[', out);
	for (int i = 0; i < BAR; i++)
		fputc(i < s ? '=' : i < s + c ? mark : '.', out);
	fputc(']', out);
}

static void print_table(const struct run *r, const char *dir)
{
	size_t unreported = 0;

	printf("forkshim report %s: %zu process%s, %zu region%s, %zu audit "
	       "file%s",
	       dir, r->nprocs, r->nprocs == 1 ? "" : "es", r->nregions,
	       r->nregions == 1 ? "" : "s", r->audits,
	       r->audits == 1 ? "" : "s");
	if (r->skipped)
		printf(", %zu file%s skipped", r->skipped,
		       r->skipped == 1 ? "" : "s");
	printf("\n");
	for (size_t i = 0; i < r->nregions; i++) {
		const struct region *g = &r->regions[i];
		char size[32], cost[32];
		double pct = shared_percent(g);

		region_sizes(g, size, cost);
		printf("\n%zu. \"%s\"  %s, %llu page%s, frozen by %llu "
		       "(handle %s)\n",
		       i + 1, g->name, size, g->pages, g->pages == 1 ? "" : "s",
		       g->owner, g->handle);
		printf("   mapped by %zu process%s; copied %llu page%s (%s) "
		       "in %llu other%s; ",
		       g->nviews, g->nviews == 1 ? "" : "es", g->copied,
		       g->copied == 1 ? "" : "s", cost, g->others,
		       g->others == 1 ? "" : "s");
		if (pct < 0)
			printf("no other process reported it\n");
		else
			printf("%.1f%% still shared\n", pct);
		printf("   %8s %8s %-14s %7s %7s  %s\n", "pid", "parent",
		       "ended", "copied", "shared",
		       "= shared  # copied  - owner's own  . not resident");
		for (size_t k = 0; k < g->nviews; k++) {
			const struct view *w = &g->views[k];
			const struct proc *p = &r->procs[w->proc];
			unsigned long long copied = view_copied(r, g, w);
			char ended[48], col[16];

			ended_text(p, ended, sizeof(ended));
			if (p->pid == g->owner)
				snprintf(col, sizeof(col), "owner");
			else
				snprintf(col, sizeof(col), "%llu", copied);
			printf("   %8llu %8llu %-14s %7s %7llu  ", p->pid,
			       p->ppid, ended, col, w->shared);
			bar(stdout, w, p->pid == g->owner ? '-' : '#');
			printf("\n");
		}
		if (g->nsites > 0) {
			printf("   top writers (first writes, pages):");
			for (size_t k = 0; k < g->nsites && k < TOP_WRITERS;
			     k++)
				printf("%s %s %llu", k ? "," : "",
				       g->sites[k].name, g->sites[k].pages);
			printf("\n");
		}
	}
	for (size_t i = 0; i < r->nprocs; i++) {
		const struct proc *p = &r->procs[i];
		char ended[48];

		if (!proc_without_figures(r, i))
			continue;
		if (unreported++ == 0)
			printf("\nprocesses without region figures:\n");
		ended_text(p, ended, sizeof(ended));
		printf("   %8llu %8llu %-14s %s\n", p->pid, p->ppid, ended,
		       p->reported_by ? "(reported by its parent: it could "
		                        "not write its own)"
		                      : "(saw no frozen region)");
	}
}

/* ---- --json ---- */

static void print_json(const struct run *r, FILE *out)
{
	fprintf(out,
	        "{\"format\":%d,\"processes\":%zu,\"skipped\":%zu,"
	        "\"regions\":[",
	        FORMAT_KNOWN, r->nprocs, r->skipped);
	for (size_t i = 0; i < r->nregions; i++) {
		const struct region *g = &r->regions[i];
		double pct = shared_percent(g);

		fprintf(out, "%s{\"name\":", i ? "," : "");
		json_string(out, g->name);
		fprintf(out, ",\"handle\":");
		json_string(out, g->handle);
		fprintf(out, ",\"addr\":");
		json_string(out, g->addr);
		fprintf(out,
		        ",\"owner\":%llu,\"size\":%llu,\"pages\":%llu,"
		        "\"page_size\":%llu,\"mapped_by\":%zu,"
		        "\"copied_pages\":%llu,\"copied_bytes\":%llu,",
		        g->owner, g->size, g->pages, g->page_size, g->nviews,
		        g->copied, g->copied * g->page_size);
		if (pct < 0)
			fprintf(out, "\"shared_percent\":null");
		else
			fprintf(out, "\"shared_percent\":%.2f", pct);
		fprintf(out, ",\"processes\":[");
		for (size_t k = 0; k < g->nviews; k++) {
			const struct view *w = &g->views[k];
			const struct proc *p = &r->procs[w->proc];

			fprintf(out,
			        "%s{\"pid\":%llu,\"ppid\":%llu,\"owner\":%s,"
			        "\"how\":",
			        k ? "," : "", p->pid, p->ppid,
			        p->pid == g->owner ? "true" : "false");
			json_string(out, p->how);
			fprintf(out,
			        ",\"status\":%llu,\"signal\":%llu,"
			        "\"pages\":%llu,\"resident\":%llu,"
			        "\"shared\":%llu,\"exclusive\":%llu,"
			        "\"swapped\":%llu,\"copied\":%llu}",
			        p->status, p->sig, w->pages, w->resident,
			        w->shared, w->exclusive, w->swapped,
			        view_copied(r, g, w));
		}
		fprintf(out, "],\"writers\":[");
		for (size_t k = 0; k < g->nsites; k++) {
			fprintf(out, "%s{\"site\":", k ? "," : "");
			json_string(out, g->sites[k].name);
			fprintf(out, ",\"pages\":%llu}", g->sites[k].pages);
		}
		fprintf(out, "]}");
	}
	fprintf(out, "],\"without_figures\":[");
	for (size_t i = 0, n = 0; i < r->nprocs; i++) {
		const struct proc *p = &r->procs[i];

		if (!proc_without_figures(r, i))
			continue;
		fprintf(out, "%s{\"pid\":%llu,\"ppid\":%llu,\"how\":",
		        n++ ? "," : "", p->pid, p->ppid);
		json_string(out, p->how);
		fprintf(
		    out,
		    ",\"status\":%llu,\"signal\":%llu,\"reported_by\":%llu}",
		    p->status, p->sig, p->reported_by);
	}
	fprintf(out, "]}\n");
}

/* ---- --svg ---- */

static int write_svg(const struct run *r, const char *path)
{
	enum { W = 760, LEFT = 190, BARW = 520, ROW = 22, HEAD = 44 };
	FILE *out = fopen(path, "we");
	int y = 40, height = 60;

	if (out == NULL) {
		fprintf(stderr, "forkshim report: --svg %s: %s\n", path,
		        strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < r->nregions; i++)
		height += HEAD + ROW * (int)r->regions[i].nviews + 16;
	fprintf(out,
	        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
	        "height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n"
	        "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
	        "<text x=\"10\" y=\"20\" font-size=\"15\" "
	        "font-weight=\"bold\">forkshim: frozen regions, shared "
	        "against copied, per process</text>\n"
	        "<rect x=\"%d\" y=\"28\" width=\"10\" height=\"10\" "
	        "fill=\"#4caf50\"/><text x=\"%d\" y=\"37\">shared</text>\n"
	        "<rect x=\"%d\" y=\"28\" width=\"10\" height=\"10\" "
	        "fill=\"#e65100\"/><text x=\"%d\" y=\"37\">copied</text>\n"
	        "<rect x=\"%d\" y=\"28\" width=\"10\" height=\"10\" "
	        "fill=\"#90a4ae\"/><text x=\"%d\" y=\"37\">owner's "
	        "own</text>\n"
	        "<rect x=\"%d\" y=\"28\" width=\"10\" height=\"10\" "
	        "fill=\"#eceff1\" stroke=\"#b0bec5\"/><text x=\"%d\" "
	        "y=\"37\">not resident</text>\n",
	        W, height, LEFT, LEFT + 14, LEFT + 80, LEFT + 94, LEFT + 160,
	        LEFT + 174, LEFT + 260, LEFT + 274);
	for (size_t i = 0; i < r->nregions; i++) {
		const struct region *g = &r->regions[i];
		char size[32], cost[32];
		double pct = shared_percent(g);

		region_sizes(g, size, cost);
		y += HEAD - 10;
		fprintf(out, "<text x=\"10\" y=\"%d\" font-weight=\"bold\">",
		        y);
		xml_text(out, g->name);
		fprintf(out, "</text><text x=\"%d\" y=\"%d\">%s; %s copied",
		        LEFT, y, size, cost);
		if (pct >= 0)
			fprintf(out, "; %.1f%% still shared", pct);
		fprintf(out, "</text>\n");
		y += 10;
		for (size_t k = 0; k < g->nviews; k++) {
			const struct view *w = &g->views[k];
			const struct proc *p = &r->procs[w->proc];
			unsigned long long pages = w->pages ? w->pages : 1;
			int own = p->pid == g->owner;
			double sx = (double)BARW * (double)w->shared / pages;
			double cx = (double)BARW * (double)w->exclusive / pages;
			char ended[48];

			ended_text(p, ended, sizeof(ended));
			fprintf(out,
			        "<text x=\"20\" y=\"%d\">pid %llu (%s)</text>\n"
			        "<rect x=\"%d\" y=\"%d\" width=\"%d\" "
			        "height=\"14\" fill=\"#eceff1\" "
			        "stroke=\"#b0bec5\"/>\n"
			        "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" "
			        "height=\"14\" fill=\"#4caf50\"/>\n"
			        "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" "
			        "height=\"14\" fill=\"%s\"><title>%llu page%s "
			        "%s</title></rect>\n",
			        y + 11, p->pid, ended, LEFT, y, BARW, LEFT, y,
			        sx, LEFT + sx, y, cx,
			        own ? "#90a4ae" : "#e65100", w->exclusive,
			        w->exclusive == 1 ? "" : "s",
			        own ? "its own" : "copied");
			y += ROW;
		}
		y += 6;
	}
	fprintf(out, "</svg>\n");
	if (fclose(out) != 0) {
		fprintf(stderr, "forkshim report: --svg %s: %s\n", path,
		        strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- the command ---- */

static const char report_help[] =
    "Usage: forkshim report [--json] [--svg FILE] DIR\n"
    "\n"
    "Reads the per-process reports (report-PID.jsonl) and audit records\n"
    "(audit-PID.jsonl) that a run under 'forkshim --report DIR' left in "
    "DIR,\n"
    "and shows per frozen region: its size, the processes that mapped "
    "it, the\n"
    "pages each copied, the percent still shared and the top writers "
    "(from\n"
    "--guard audit), regions that cost most memory first.\n"
    "\n"
    "  --json      print the figures as one JSON object instead\n"
    "  --svg FILE  also draw them (shared against copied, per process) "
    "into FILE\n"
    "\n"
    "Files that are truncated, foreign or of a newer format are skipped "
    "with a\n"
    "message.  Exit status: 0 shown, 1 no readable report in DIR, 2 bad "
    "usage.\n";

int report_main(int argc, char **argv)
{
	const char *dir = NULL, *svg = NULL;
	int json = 0;
	struct run r;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = 1;
		} else if (strcmp(argv[i], "--svg") == 0 && i + 1 < argc) {
			svg = argv[++i];
		} else if (strcmp(argv[i], "-h") == 0 ||
		           strcmp(argv[i], "--help") == 0) {
			fputs(report_help, stdout);
			return 0;
		} else if (argv[i][0] == '-' && strcmp(argv[i], "--") != 0) {
			fprintf(stderr,
			        "forkshim report: unknown option '%s'\nTry "
			        "'forkshim report --help'.\n",
			        argv[i]);
			return 2;
		} else {
			if (strcmp(argv[i], "--") == 0 && i + 1 < argc)
				i++;
			if (dir != NULL) {
				fputs("forkshim report: one DIR only\n",
				      stderr);
				return 2;
			}
			dir = argv[i];
		}
	}
	if (dir == NULL) {
		fputs("forkshim report: no DIR given\nTry 'forkshim report "
		      "--help'.\n",
		      stderr);
		return 2;
	}
	if (load(&r, dir) != 0)
		return 2;
	if (r.nprocs == 0) {
		fprintf(stderr, "forkshim report: %s: no readable report\n",
		        dir);
		return 1;
	}
	if (json)
		print_json(&r, stdout);
	else
		print_table(&r, dir);
	if (svg != NULL && write_svg(&r, svg) != 0)
		return 2;
	return 0;
}
