#include "report.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "escape.h"

#define FORMAT_KNOWN 1 /* the newest report format this reader knows */
#define TOP_WRITERS 3
#define BAR 40

/* Bounds (report.h). */
#define FILE_BYTES_MAX (1ull << 30)
#define LINE_BYTES_MAX (1u << 20)
#define SIZE_BYTES_MAX (1ull << 57) /* 5-level paging's user space */
#define PAGE_SIZE_MIN 4096ull
#define PAGE_SIZE_MAX (1ull << 30)

#define NONE SIZE_MAX

struct proc {
	unsigned long long pid, ppid, birth, page_size, reported_by;
	unsigned long long status, sig;
	char *how;
	char *exe;
	int has_views, views_skipped;
};

struct view {
	size_t region, proc;
	unsigned long long pages, resident, shared, exclusive, swapped;
};

struct site {
	size_t region;
	char *name;
	unsigned long long pages;
	char *py_file, *py_func; /* its Python frame, or NULL */
	unsigned long long py_line;
	char *c_site; /* its C frame's words */
};

struct region {
	char *name, *handle, *addr;
	char *memfd; /* a shared region's memfd identity, or NULL */
	unsigned long long owner, size, pages, page_size;
	size_t pieces;      /* an observed object's ranges; 1 otherwise */
	struct view *views; /* into run.views, once loaded */
	size_t nviews;
	struct site *sites; /* into run.sites, once loaded */
	size_t nsites;
	unsigned long long copied; /* pages, over the processes not owning it */
	unsigned long long others; /* those processes */
	unsigned long long others_pages;
	size_t last_proc; /* the process of its last view, or NONE */
	size_t next_same; /* the next region of its handle and owner, or NONE */
};

/* ---- a hash table of byte strings to indexes ---- */

struct map_slot {
	char *key; /* NULL: free */
	size_t len, value;
	uint64_t hash;
};

struct map {
	struct map_slot *slots;
	size_t cap, n; /* cap a power of two, n < cap * 3 / 4 */
};

static void oom(void)
{
	fputs("forkshim report: out of memory\n", stderr);
	exit(2);
}

static void *xrealloc(void *p, size_t n, size_t size)
{
	void *q = n > SIZE_MAX / size ? NULL : realloc(p, n * size);

	if (q == NULL)
		oom();
	return q;
}

/* Room for one more in an array of *cap, doubling. */
static void *more(void *p, size_t n, size_t *cap, size_t size)
{
	if (n < *cap)
		return p;
	*cap = *cap ? *cap * 2 : 16;
	return xrealloc(p, *cap, size);
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s != NULL ? s : "");

	if (d == NULL)
		oom();
	return d;
}

static uint64_t hash_of(const char *key, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)key[i]) * 0x100000001b3ull;
	return h ^ (h >> 29);
}

static struct map_slot *map_slot(const struct map *m, const char *key,
                                 size_t len, uint64_t h)
{
	size_t i = (size_t)h & (m->cap - 1);

	while (m->slots[i].key != NULL &&
	       (m->slots[i].hash != h || m->slots[i].len != len ||
	        memcmp(m->slots[i].key, key, len) != 0))
		i = (i + 1) & (m->cap - 1);
	return &m->slots[i];
}

/* The value of key, or NONE. */
static size_t map_get(const struct map *m, const char *key, size_t len)
{
	const struct map_slot *s;

	if (m->cap == 0)
		return NONE;
	s = map_slot(m, key, len, hash_of(key, len));
	return s->key != NULL ? s->value : NONE;
}

/* Adds key (not there yet) with value. */
static void map_put(struct map *m, const char *key, size_t len, size_t value)
{
	struct map_slot *s;
	uint64_t h = hash_of(key, len);

	if ((m->n + 1) * 4 >= m->cap * 3) {
		struct map old = *m;

		m->cap = m->cap ? m->cap * 2 : 64;
		m->slots = calloc(m->cap, sizeof(*m->slots));
		if (m->slots == NULL)
			oom();
		for (size_t i = 0; i < old.cap; i++)
			if (old.slots[i].key != NULL)
				*map_slot(m, old.slots[i].key, old.slots[i].len,
				          old.slots[i].hash) = old.slots[i];
		free(old.slots);
	}
	s = map_slot(m, key, len, h);
	s->key = malloc(len ? len : 1);
	if (s->key == NULL)
		oom();
	memcpy(s->key, key, len);
	s->len = len;
	s->hash = h;
	s->value = value;
	m->n++;
}

static void map_free(struct map *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->slots[i].key);
	free(m->slots);
	memset(m, 0, sizeof(*m));
}

/* A key of several strings (jansson's strings hold no NUL, so the NULs
 * between them keep keys apart), in a buffer of the caller's. */
struct key {
	char *buf;
	size_t len, cap;
};

static void key_add(struct key *k, const char *s)
{
	size_t n = strlen(s) + 1;

	if (k->len + n > k->cap) {
		k->cap = (k->len + n) * 2;
		k->buf = xrealloc(k->buf, k->cap, 1);
	}
	memcpy(k->buf + k->len, s, n);
	k->len += n;
}

static void key_num(struct key *k, unsigned long long v)
{
	char num[24];

	snprintf(num, sizeof(num), "%llu", v);
	key_add(k, num);
}

/* ---- the run ---- */

struct run {
	FILE *err;
	struct proc *procs;
	size_t nprocs, cprocs;
	struct region *regions;
	size_t nregions, cregions;
	struct view *views;
	size_t nviews, cviews;
	struct site *sites;
	size_t nsites, csites;
	struct map by_key;   /* handle, owner, addr: the region */
	struct map by_group; /* handle, owner: the first such region */
	struct map by_site;  /* region, site: the site */
	struct key key;
	size_t reports, audits, skipped;
};

static void skip(struct run *r, const char *path, const char *why)
{
	fputs("forkshim report: ", r->err);
	escape_term(r->err, path);
	fputs(": skipped: ", r->err);
	escape_term(r->err, why);
	fputc('\n', r->err);
	r->skipped++;
}

/* ---- reading a file, one line at a time, within the bounds ---- */

struct reader {
	int fd;
	char *buf;
	size_t cap, len, start;
	unsigned long long total;
	size_t lineno;
	int eof;
};

/* 0 with the reader ready, or -1 with *why: the file must be a regular
 * file, not a link, and not larger than the bound.  O_NONBLOCK: a FIFO
 * never blocks the open. */
static int reader_open(struct reader *rd, int dirfd, const char *name,
                       char *why, size_t whylen)
{
	struct stat st;

	memset(rd, 0, sizeof(*rd));
	rd->fd =
	    openat(dirfd, name,
	           O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (rd->fd < 0) {
		if (errno == ELOOP)
			snprintf(why, whylen, "a symbolic link");
		else
			snprintf(why, whylen, "cannot read: %s",
			         strerror(errno));
		return -1;
	}
	if (fstat(rd->fd, &st) != 0) {
		snprintf(why, whylen, "cannot read: %s", strerror(errno));
	} else if (!S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "not a regular file");
	} else if ((unsigned long long)st.st_size > FILE_BYTES_MAX) {
		snprintf(why, whylen, "larger than %llu MiB",
		         FILE_BYTES_MAX >> 20);
	} else {
		return 0;
	}
	close(rd->fd);
	rd->fd = -1;
	return -1;
}

static void reader_close(struct reader *rd)
{
	if (rd->fd >= 0)
		close(rd->fd);
	free(rd->buf);
	memset(rd, 0, sizeof(*rd));
	rd->fd = -1;
}

/* 1 with the next line (NUL-terminated, without its newline) in *line and
 * its length in *len, 0 at the end, -1 with *why. */
static int reader_line(struct reader *rd, char **line, size_t *len, char *why,
                       size_t whylen)
{
	for (;;) {
		char *nl =
		    rd->start < rd->len
		        ? memchr(rd->buf + rd->start, '\n', rd->len - rd->start)
		        : NULL;
		size_t have = rd->len - rd->start;
		ssize_t got;

		if (nl != NULL || (have > LINE_BYTES_MAX)) {
			size_t n =
			    nl ? (size_t)(nl - (rd->buf + rd->start)) : have;

			rd->lineno++;
			if (n > LINE_BYTES_MAX) {
				snprintf(why, whylen,
				         "line %zu is longer than %u KiB",
				         rd->lineno, LINE_BYTES_MAX >> 10);
				return -1;
			}
			*line = rd->buf + rd->start;
			*len = n;
			(*line)[n] = '\0';
			rd->start += n + 1;
			return 1;
		}
		if (rd->eof) {
			if (have == 0)
				return 0;
			snprintf(why, whylen,
			         "truncated: line %zu has no end of line",
			         rd->lineno + 1);
			return -1;
		}
		if (rd->start > 0) {
			memmove(rd->buf, rd->buf + rd->start, have);
			rd->len = have;
			rd->start = 0;
		}
		if (rd->cap - rd->len < 65536) {
			rd->cap = rd->cap ? rd->cap * 2 : 65536 * 2;
			rd->buf = xrealloc(rd->buf, rd->cap, 1);
		}
		got = read(rd->fd, rd->buf + rd->len, rd->cap - rd->len - 1);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			snprintf(why, whylen, "cannot read: %s",
			         strerror(errno));
			return -1;
		}
		if (got == 0)
			rd->eof = 1;
		rd->len += (size_t)got;
		rd->total += (unsigned long long)got;
		if (rd->total > FILE_BYTES_MAX) { /* it grew since fstat */
			snprintf(why, whylen, "larger than %llu MiB",
			         FILE_BYTES_MAX >> 20);
			return -1;
		}
	}
}

/* The next line as a JSON object: 1, 0 at the end, -1 with *why. */
static int next_object(struct reader *rd, json_t **v, char *why, size_t whylen)
{
	json_error_t error;
	char *line;
	size_t len;
	int rc = reader_line(rd, &line, &len, why, whylen);

	*v = NULL;
	if (rc <= 0)
		return rc;
	*v = json_loadb(line, len, JSON_REJECT_DUPLICATES, &error);
	if (*v == NULL) {
		snprintf(why, whylen, "line %zu is not a JSON object: %s",
		         rd->lineno, error.text);
		return -1;
	}
	if (!json_is_object(*v)) {
		json_decref(*v);
		*v = NULL;
		snprintf(why, whylen, "line %zu is not a JSON object",
		         rd->lineno);
		return -1;
	}
	return 1;
}

/* ---- fields ---- */

static const char *jstr(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

/* The member as a non-negative integer: 1, or 0 (and *out 0) when absent
 * or not one. */
static int ju(const json_t *obj, const char *key, unsigned long long *out)
{
	const json_t *v = json_object_get(obj, key);

	*out = 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return 0;
	*out = (unsigned long long)json_integer_value(v);
	return 1;
}

static unsigned long long ju0(const json_t *obj, const char *key)
{
	unsigned long long v;

	ju(obj, key, &v);
	return v;
}

static int is_type(const json_t *v, const char *type)
{
	const char *t = jstr(v, "type");

	return t != NULL && strcmp(t, type) == 0;
}

/* The first line's check: 0, or -1 with *why. */
static int check_head(const json_t *head, int need_format, char *why,
                      size_t whylen)
{
	const json_t *fmt = json_object_get(head, "format");
	unsigned long long pid, f;

	if (!is_type(head, "process") || !ju(head, "pid", &pid) || pid == 0) {
		snprintf(why, whylen,
		         "not a forkshim file (no process line first)");
		return -1;
	}
	if (fmt == NULL && need_format) {
		snprintf(why, whylen, "not a forkshim report (no format)");
		return -1;
	}
	if (fmt != NULL) {
		if (!ju(head, "format", &f) || f == 0) {
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

/* A region line of a file being read, kept until the file is known
 * whole. */
struct staged {
	char *name, *handle, *addr;
	char *memfd; /* "DEV:INO" of a shared region, or NULL */
	unsigned long long owner, size, pages, resident, shared, exclusive,
	    swapped, flags;
	/* An observed object (FORKSHIM_OBSERVE): its ranges of one name and
	 * owner added up into the first; the others' handles. */
	char **aliases;
	size_t pieces, naliases, caliases;
	int folded; /* added into another */
};

#define FLAG_OBSERVE 0x4ull /* forkshim.h's FORKSHIM_OBSERVE */

static int stage_region(const json_t *v, struct staged *s)
{
	int ok;

	memset(s, 0, sizeof(*s));
	ok = jstr(v, "handle") != NULL && jstr(v, "addr") != NULL &&
	     jstr(v, "name") != NULL;
	ok &= ju(v, "size", &s->size);
	ok &= ju(v, "owner", &s->owner);
	ok &= ju(v, "pages", &s->pages);
	ok &= ju(v, "resident", &s->resident);
	ok &= ju(v, "shared", &s->shared);
	ok &= ju(v, "exclusive", &s->exclusive);
	ok &= ju(v, "swapped", &s->swapped);
	if (!ok)
		return 0;
	s->flags = ju0(v, "flags");
	s->pieces = 1;
	s->name = xstrdup(jstr(v, "name"));
	s->handle = xstrdup(jstr(v, "handle"));
	s->addr = xstrdup(jstr(v, "addr"));
	if (jstr(v, "memfd") != NULL)
		s->memfd = xstrdup(jstr(v, "memfd"));
	return 1;
}

static void staged_free(struct staged *s)
{
	free(s->name);
	free(s->handle);
	free(s->addr);
	free(s->memfd);
	for (size_t i = 0; i < s->naliases; i++)
		free(s->aliases[i]);
	free(s->aliases);
}

/* Adds each observed range into the first of its name and owner in the
 * file: one object, one entry.  A sum that would overflow stays apart. */
static void fold_observed(struct run *r, struct staged *st, size_t n)
{
	struct map first = {0};

	for (size_t i = 0; i < n; i++) {
		struct staged *s = &st[i], *f;
		unsigned long long sum[6];
		size_t fi;

		if (!(s->flags & FLAG_OBSERVE))
			continue;
		r->key.len = 0;
		key_add(&r->key, s->name);
		key_num(&r->key, s->owner);
		fi = map_get(&first, r->key.buf, r->key.len);
		if (fi == NONE) {
			map_put(&first, r->key.buf, r->key.len, i);
			continue;
		}
		f = &st[fi];
		if (__builtin_add_overflow(f->size, s->size, &sum[0]) ||
		    __builtin_add_overflow(f->pages, s->pages, &sum[1]) ||
		    __builtin_add_overflow(f->resident, s->resident, &sum[2]) ||
		    __builtin_add_overflow(f->shared, s->shared, &sum[3]) ||
		    __builtin_add_overflow(f->exclusive, s->exclusive,
		                           &sum[4]) ||
		    __builtin_add_overflow(f->swapped, s->swapped, &sum[5]))
			continue;
		f->size = sum[0];
		f->pages = sum[1];
		f->resident = sum[2];
		f->shared = sum[3];
		f->exclusive = sum[4];
		f->swapped = sum[5];
		f->pieces++;
		f->aliases = more(f->aliases, f->naliases, &f->caliases,
		                  sizeof(*f->aliases));
		f->aliases[f->naliases++] = s->handle;
		s->handle = NULL;
		s->folded = 1;
	}
	map_free(&first);
}

/* Why a region's figures cannot be (into why), or 0 when they can. */
static int figures_wrong(const struct staged *s, unsigned long long page_size,
                         char *why, size_t whylen)
{
	unsigned long long least = s->size / page_size;

	least += s->size % page_size != 0;
	if (s->owner == 0 || s->owner > INT32_MAX)
		snprintf(why, whylen, "owner %llu is not a pid", s->owner);
	else if (s->size == 0 || s->size > SIZE_BYTES_MAX)
		snprintf(why, whylen, "size %llu is not a region's", s->size);
	else if (s->pages < least || s->pages > least + s->pieces)
		snprintf(why, whylen, "pages %llu do not cover size %llu",
		         s->pages, s->size);
	else if (s->resident > s->pages)
		snprintf(why, whylen, "resident %llu > pages %llu", s->resident,
		         s->pages);
	else if (s->shared > s->resident ||
	         s->exclusive > s->resident - s->shared)
		snprintf(why, whylen,
		         "shared %llu + exclusive %llu > "
		         "resident %llu",
		         s->shared, s->exclusive, s->resident);
	else if (s->swapped > s->pages - s->resident)
		snprintf(why, whylen,
		         "resident %llu + swapped %llu > pages "
		         "%llu",
		         s->resident, s->swapped, s->pages);
	else
		return 0;
	return 1;
}

static void skip_region(struct run *r, const char *path, const struct staged *s,
                        const char *why)
{
	fputs("forkshim report: ", r->err);
	escape_term(r->err, path);
	fputs(": region \"", r->err);
	escape_term(r->err, s->name);
	fputs("\" (handle ", r->err);
	escape_term(r->err, s->handle);
	fputs("): skipped: ", r->err);
	escape_term(r->err, why);
	fputc('\n', r->err);
}

static size_t region_for(struct run *r, const struct staged *s,
                         unsigned long long page_size)
{
	size_t gi, first;
	struct region *g;

	/* A shared region is one memfd, whatever address each process maps
	 * it at and whether it knows its handle (an importer by token may
	 * not). */
	r->key.len = 0;
	if (s->memfd != NULL) {
		key_add(&r->key, "memfd");
		key_add(&r->key, s->memfd);
	} else {
		key_add(&r->key, s->handle);
	}
	key_num(&r->key, s->owner);
	if (s->memfd == NULL)
		key_add(&r->key, s->addr);
	gi = map_get(&r->by_key, r->key.buf, r->key.len);
	if (gi != NONE) {
		g = &r->regions[gi];
		if (strcmp(g->handle, "0x0") == 0 &&
		    strcmp(s->handle, "0x0") != 0) {
			free(g->handle);
			g->handle = xstrdup(s->handle);
		}
		return gi;
	}
	gi = r->nregions;
	map_put(&r->by_key, r->key.buf, r->key.len, gi);
	r->regions =
	    more(r->regions, r->nregions, &r->cregions, sizeof(*r->regions));
	g = &r->regions[r->nregions++];
	memset(g, 0, sizeof(*g));
	g->name = xstrdup(s->name);
	g->handle = xstrdup(s->handle);
	g->addr = xstrdup(s->addr);
	g->memfd = s->memfd != NULL ? xstrdup(s->memfd) : NULL;
	g->owner = s->owner;
	g->size = s->size;
	g->pages = s->pages;
	g->page_size = page_size;
	g->pieces = s->pieces;
	g->last_proc = NONE;
	/* Chained to the others of its handle and owner (audit records name
	 * no address). */
	r->key.len = 0;
	key_add(&r->key, s->handle);
	key_num(&r->key, s->owner);
	first = map_get(&r->by_group, r->key.buf, r->key.len);
	if (first == NONE) {
		map_put(&r->by_group, r->key.buf, r->key.len, gi);
		g->next_same = NONE;
	} else {
		g->next_same = r->regions[first].next_same;
		r->regions[first].next_same = gi;
	}
	return gi;
}

/* Adds one process's view of a region, or skips it with a message. */
static void add_view(struct run *r, const char *path, size_t pi,
                     const struct staged *s)
{
	unsigned long long ps = r->procs[pi].page_size, sum, bytes;
	char why[160];
	struct region *g;
	size_t gi;

	r->procs[pi].views_skipped = 1; /* until it is added */
	if (figures_wrong(s, ps, why, sizeof(why))) {
		skip_region(r, path, s, why);
		return;
	}
	gi = region_for(r, s, ps);
	g = &r->regions[gi];
	if (g->size != s->size || g->pages != s->pages || g->page_size != ps) {
		snprintf(why, sizeof(why),
		         "size %llu, %llu pages of %llu bytes: another report "
		         "has %llu, %llu of %llu",
		         s->size, s->pages, ps, g->size, g->pages,
		         g->page_size);
		skip_region(r, path, s, why);
		return;
	}
	if (g->last_proc == pi) {
		skip_region(r, path, s, "reported twice by this process");
		return;
	}
	if (r->procs[pi].pid != g->owner) {
		/* The totals the table shows must add up in 64 bits. */
		if (__builtin_add_overflow(g->copied, s->exclusive, &sum) ||
		    __builtin_mul_overflow(sum, ps, &bytes) ||
		    __builtin_add_overflow(g->others_pages, s->pages, &sum)) {
			skip_region(r, path, s,
			            "the region's totals would overflow");
			return;
		}
		/* Sealed shared memory is never copied. */
		if (g->memfd == NULL)
			g->copied += s->exclusive;
		g->others++;
		g->others_pages += s->pages;
	}
	/* Audit records name an observed object's ranges by their own
	 * handles. */
	for (size_t i = 0; i < s->naliases; i++) {
		r->key.len = 0;
		key_add(&r->key, s->aliases[i]);
		key_num(&r->key, s->owner);
		if (map_get(&r->by_group, r->key.buf, r->key.len) == NONE) {
			map_put(&r->by_group, r->key.buf, r->key.len, gi);
			/* region_for chained nothing to it */
		}
	}
	g->last_proc = pi;
	r->procs[pi].has_views = 1;
	r->procs[pi].views_skipped = 0;
	r->views = more(r->views, r->nviews, &r->cviews, sizeof(*r->views));
	r->views[r->nviews++] = (struct view){
	    .region = gi,
	    .proc = pi,
	    .pages = s->pages,
	    .resident = s->resident,
	    .shared = s->shared,
	    .exclusive = s->exclusive,
	    .swapped = s->swapped,
	};
}

static void read_report(struct run *r, int dirfd, const char *name,
                        const char *path)
{
	struct reader rd;
	struct staged *staged = NULL;
	size_t nstaged = 0, cstaged = 0, lines = 0;
	char why[256], head_why[160] = "";
	int rc, lacks = 0, last_is_end = 0, ps_bad = 0;
	struct proc p;
	json_t *v;

	memset(&p, 0, sizeof(p));
	if (reader_open(&rd, dirfd, name, why, sizeof(why)) != 0) {
		skip(r, path, why);
		return;
	}
	while ((rc = next_object(&rd, &v, why, sizeof(why))) > 0) {
		lines++;
		if (lines == 1) {
			if (check_head(v, 1, head_why, sizeof(head_why)) == 0) {
				p.pid = ju0(v, "pid");
				p.ppid = ju0(v, "ppid");
				p.birth = ju0(v, "birth");
				if (!ju(v, "page_size", &p.page_size) ||
				    p.page_size == 0)
					p.page_size = 4096;
				ps_bad = p.page_size < PAGE_SIZE_MIN ||
				         p.page_size > PAGE_SIZE_MAX ||
				         (p.page_size & (p.page_size - 1));
				p.reported_by = ju0(v, "reported_by");
				p.exe = xstrdup(jstr(v, "exe"));
			}
		} else if (head_why[0] == '\0') {
			last_is_end =
			    is_type(v, "end") && jstr(v, "how") != NULL;
			if (last_is_end) {
				free(p.how);
				p.how = xstrdup(jstr(v, "how"));
				p.status = ju0(v, "status");
				p.sig = ju0(v, "signal");
			} else if (is_type(v, "region") && !lacks) {
				staged = more(staged, nstaged, &cstaged,
				              sizeof(*staged));
				if (stage_region(v, &staged[nstaged]))
					nstaged++;
				else
					lacks = 1;
			}
		}
		json_decref(v);
	}
	reader_close(&rd);
	if (rc == 0) {
		rc = -1;
		if (lines == 0)
			snprintf(why, sizeof(why), "empty");
		else if (head_why[0] != '\0')
			snprintf(why, sizeof(why), "%s", head_why);
		else if (ps_bad)
			snprintf(why, sizeof(why),
			         "page_size %llu is not a page size",
			         p.page_size);
		else if (lines < 2 || !last_is_end)
			snprintf(why, sizeof(why), "truncated: no end line");
		else if (lacks)
			snprintf(why, sizeof(why),
			         "a region line lacks a field");
		else
			rc = 0;
	}
	if (rc != 0) {
		skip(r, path, why);
		free(p.how);
		free(p.exe);
	} else {
		size_t pi = r->nprocs;

		r->procs =
		    more(r->procs, r->nprocs, &r->cprocs, sizeof(*r->procs));
		r->procs[r->nprocs++] = p;
		r->reports++;
		fold_observed(r, staged, nstaged);
		for (size_t i = 0; i < nstaged; i++)
			if (!staged[i].folded)
				add_view(r, path, pi, &staged[i]);
	}
	for (size_t i = 0; i < nstaged; i++)
		staged_free(&staged[i]);
	free(staged);
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

/* A first write of a file being read: its regions' key and the module
 * and offset of its writer's frame (NULL: no backtrace). */
struct pending {
	char *handle;
	unsigned long long owner;
	char *module, *offset;
	int frames;
	char *py_file, *py_func; /* the innermost Python frame, or NULL */
	unsigned long long py_line;
};

/* The writing thread's innermost Python frame ("py", innermost first),
 * when the process was CPython. */
static void pick_python(const json_t *rec, struct pending *w)
{
	const json_t *f = json_array_get(json_object_get(rec, "py"), 0);

	if (jstr(f, "file") == NULL || jstr(f, "function") == NULL)
		return;
	w->py_file = xstrdup(jstr(f, "file"));
	w->py_func = xstrdup(jstr(f, "function"));
	w->py_line = ju0(f, "line");
}

/* The writer's call site: the first frame outside the C library, the
 * loader and the shim (a memcpy is not the news). */
static void pick_frame(const json_t *rec, struct pending *w)
{
	const json_t *frames = json_object_get(rec, "frames");
	const json_t *pick = NULL;
	size_t n = json_array_size(frames);

	w->frames = n > 0;
	if (n == 0)
		return;
	for (size_t i = 0; i < n && pick == NULL; i++) {
		const char *m = jstr(json_array_get(frames, i), "module");

		if (m != NULL && *m != '\0' && !is_runtime(m))
			pick = json_array_get(frames, i);
	}
	if (pick == NULL)
		pick = json_array_get(frames, 0);
	if (jstr(pick, "module") != NULL)
		w->module = xstrdup(jstr(pick, "module"));
	if (jstr(pick, "offset") != NULL)
		w->offset = xstrdup(jstr(pick, "offset"));
}

/* The site's words: "function (module)" when a symbol line names it,
 * else "module+offset" (malloc). */
static char *site_name(struct run *r, const struct pending *w,
                       const struct map *symbols, char *const *functions)
{
	const char *m = w->module, *o = w->offset, *fn = NULL, *base;
	char *out;
	size_t fi;

	if (!w->frames)
		return xstrdup("(no backtrace)");
	if (m != NULL && o != NULL) {
		r->key.len = 0;
		key_add(&r->key, m);
		key_add(&r->key, o);
		fi = map_get(symbols, r->key.buf, r->key.len);
		fn = fi != NONE ? functions[fi] : NULL;
	}
	base = m ? strrchr(m, '/') : NULL;
	base = base ? base + 1 : (m && *m ? m : "?");
	if ((fn != NULL ? asprintf(&out, "%s (%s)", fn, base)
	                : asprintf(&out, "%s+%s", base, o ? o : "?")) < 0)
		oom();
	return out;
}

/* "worker.py:42 in score()": the file's last part (malloc). */
static char *python_words(const struct pending *w)
{
	const char *base = strrchr(w->py_file, '/');
	char *out;

	base = base && base[1] ? base + 1 : w->py_file;
	if (asprintf(&out, "%s:%llu in %s()", base, w->py_line, w->py_func) < 0)
		oom();
	return out;
}

/* A site is its Python line and its C frame: "worker.py:42 in score()
 * via PyNumber_Add (python3.11)", or the C frame alone. */
static void add_site(struct run *r, size_t gi, const struct pending *w,
                     const char *c_site)
{
	char *py = w->py_file != NULL ? python_words(w) : NULL;
	char *name = py;
	size_t si;

	if (py != NULL) {
		if (asprintf(&name, "%s via %s", py, c_site) < 0)
			oom();
		free(py);
	}
	r->key.len = 0;
	key_num(&r->key, gi);
	key_add(&r->key, name != NULL ? name : c_site);
	si = map_get(&r->by_site, r->key.buf, r->key.len);
	if (si != NONE) {
		r->sites[si].pages++;
		free(name);
		return;
	}
	map_put(&r->by_site, r->key.buf, r->key.len, r->nsites);
	r->sites = more(r->sites, r->nsites, &r->csites, sizeof(*r->sites));
	r->sites[r->nsites++] = (struct site){
	    .region = gi,
	    .name = name != NULL ? name : xstrdup(c_site),
	    .pages = 1,
	    .py_file = w->py_file != NULL ? xstrdup(w->py_file) : NULL,
	    .py_func = w->py_func != NULL ? xstrdup(w->py_func) : NULL,
	    .py_line = w->py_line,
	    .c_site = xstrdup(c_site),
	};
}

static void read_audit(struct run *r, int dirfd, const char *name,
                       const char *path)
{
	struct reader rd;
	struct pending *w = NULL;
	size_t nw = 0, cw = 0, nfn = 0, cfn = 0, lines = 0;
	struct map symbols = {0};
	char **functions = NULL;
	char why[256], head_why[160] = "";
	int rc;
	json_t *v;

	if (reader_open(&rd, dirfd, name, why, sizeof(why)) != 0) {
		skip(r, path, why);
		return;
	}
	while ((rc = next_object(&rd, &v, why, sizeof(why))) > 0) {
		const char *m, *o, *fn;

		if (++lines == 1) {
			check_head(v, 0, head_why, sizeof(head_why));
		} else if (head_why[0] != '\0') {
			/* read on: a broken line still says so first */
		} else if (is_type(v, "first_write") &&
		           jstr(v, "handle") != NULL) {
			w = more(w, nw, &cw, sizeof(*w));
			memset(&w[nw], 0, sizeof(*w));
			w[nw].handle = xstrdup(jstr(v, "handle"));
			w[nw].owner = ju0(v, "owner");
			pick_frame(v, &w[nw]);
			pick_python(v, &w[nw]);
			nw++;
		} else if (is_type(v, "symbol") &&
		           (m = jstr(v, "module")) != NULL &&
		           (o = jstr(v, "offset")) != NULL &&
		           (fn = jstr(v, "function")) != NULL) {
			r->key.len = 0;
			key_add(&r->key, m);
			key_add(&r->key, o);
			if (map_get(&symbols, r->key.buf, r->key.len) == NONE) {
				map_put(&symbols, r->key.buf, r->key.len, nfn);
				functions = more(functions, nfn, &cfn,
				                 sizeof(*functions));
				functions[nfn++] = xstrdup(fn);
			}
		}
		json_decref(v);
	}
	reader_close(&rd);
	if (rc == 0 && lines == 0) {
		rc = -1;
		snprintf(why, sizeof(why), "empty");
	} else if (rc == 0 && head_why[0] != '\0') {
		rc = -1;
		snprintf(why, sizeof(why), "%s", head_why);
	}
	if (rc != 0)
		skip(r, path, why);
	else
		r->audits++;
	for (size_t i = 0; i < nw; i++) {
		if (rc == 0) {
			char *site = site_name(r, &w[i], &symbols, functions);
			size_t gi;

			r->key.len = 0;
			key_add(&r->key, w[i].handle);
			key_num(&r->key, w[i].owner);
			gi = map_get(&r->by_group, r->key.buf, r->key.len);
			for (; gi != NONE; gi = r->regions[gi].next_same)
				add_site(r, gi, &w[i], site);
			free(site);
		}
		free(w[i].handle);
		free(w[i].module);
		free(w[i].offset);
		free(w[i].py_file);
		free(w[i].py_func);
	}
	free(w);
	for (size_t i = 0; i < nfn; i++)
		free(functions[i]);
	free(functions);
	map_free(&symbols);
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
	return r->procs[w->proc].pid == g->owner || g->memfd != NULL
	           ? 0
	           : w->exclusive;
}

/* qsort, also of an empty array (whose pointer may be NULL, which qsort
 * may not be given). */
static void sort(void *base, size_t n, size_t size,
                 int (*cmp)(const void *, const void *))
{
	if (n > 1)
		qsort(base, n, size, cmp);
}

/* By region, then most copied first, then by pid. */
static int view_cmp(const void *a, const void *b)
{
	const struct view *x = a, *y = b;
	const struct region *g = &sort_run->regions[x->region];
	unsigned long long cx, cy, px, py;

	if (x->region != y->region)
		return x->region < y->region ? -1 : 1;
	cx = view_copied(sort_run, g, x);
	cy = view_copied(sort_run, g, y);
	px = sort_run->procs[x->proc].pid;
	py = sort_run->procs[y->proc].pid;
	if (cx != cy)
		return cx < cy ? 1 : -1;
	return px < py ? -1 : px > py;
}

static int region_cmp(const void *a, const void *b)
{
	const struct region *x = a, *y = b;
	unsigned long long cx = x->copied * x->page_size;
	unsigned long long cy = y->copied * y->page_size;
	int c;

	if (cx != cy)
		return cx < cy ? 1 : -1;
	if (x->size != y->size)
		return x->size < y->size ? 1 : -1;
	if ((c = strcmp(x->name, y->name)) != 0 ||
	    (c = strcmp(x->handle, y->handle)) != 0)
		return c;
	if (x->owner != y->owner)
		return x->owner < y->owner ? -1 : 1;
	return strcmp(x->addr, y->addr);
}

/* By region, then most pages first, then by name. */
static int site_cmp(const void *a, const void *b)
{
	const struct site *x = a, *y = b;

	if (x->region != y->region)
		return x->region < y->region ? -1 : 1;
	if (x->pages != y->pages)
		return x->pages < y->pages ? 1 : -1;
	return strcmp(x->name, y->name);
}

static void run_free(struct run *r)
{
	for (size_t i = 0; i < r->nprocs; i++) {
		free(r->procs[i].how);
		free(r->procs[i].exe);
	}
	for (size_t i = 0; i < r->nregions; i++) {
		free(r->regions[i].name);
		free(r->regions[i].handle);
		free(r->regions[i].addr);
		free(r->regions[i].memfd);
	}
	for (size_t i = 0; i < r->nsites; i++) {
		free(r->sites[i].name);
		free(r->sites[i].py_file);
		free(r->sites[i].py_func);
		free(r->sites[i].c_site);
	}
	free(r->procs);
	free(r->regions);
	free(r->views);
	free(r->sites);
	map_free(&r->by_key);
	map_free(&r->by_group);
	map_free(&r->by_site);
	free(r->key.buf);
	memset(r, 0, sizeof(*r));
}

static int load(struct run *r, const char *dirpath, FILE *err)
{
	int dirfd;
	DIR *d;
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, cap = 0;

	memset(r, 0, sizeof(*r));
	r->err = err;
	dirfd = open(dirpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NONBLOCK);
	d = dirfd >= 0 ? fdopendir(dirfd) : NULL;
	if (d == NULL) {
		fputs("forkshim report: ", err);
		escape_term(err, dirpath);
		fprintf(err, ": %s\n", strerror(errno));
		if (dirfd >= 0)
			close(dirfd);
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		if ((strncmp(e->d_name, "report-", 7) != 0 &&
		     strncmp(e->d_name, "audit-", 6) != 0) ||
		    !has_suffix(e->d_name, ".jsonl"))
			continue;
		names = more(names, n, &cap, sizeof(*names));
		names[n++] = xstrdup(e->d_name);
	}
	sort(names, n, sizeof(*names), name_cmp);
	/* Reports first: audit records are matched to their regions. */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < n; i++) {
			int audit = names[i][0] == 'a';
			char *path;

			if (audit != pass)
				continue;
			if (asprintf(&path, "%s/%s", dirpath, names[i]) < 0)
				oom();
			if (audit)
				read_audit(r, dirfd, names[i], path);
			else
				read_report(r, dirfd, names[i], path);
			free(path);
		}
	closedir(d);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);

	/* Each region's views and sites, in their order, side by side. */
	sort_run = r;
	sort(r->views, r->nviews, sizeof(*r->views), view_cmp);
	sort(r->sites, r->nsites, sizeof(*r->sites), site_cmp);
	for (size_t i = 0; i < r->nviews; i++) {
		struct region *g = &r->regions[r->views[i].region];

		if (g->nviews++ == 0)
			g->views = &r->views[i];
	}
	for (size_t i = 0; i < r->nsites; i++) {
		struct region *g = &r->regions[r->sites[i].region];

		if (g->nsites++ == 0)
			g->sites = &r->sites[i];
	}
	sort(r->regions, r->nregions, sizeof(*r->regions), region_cmp);
	sort_run = NULL; /* only for the sorts: r is the caller's */
	return 0;
}

/* ---- words ---- */

static void size_text(unsigned long long bytes, char *out, size_t size)
{
	static const char *const units[] = {"B",   "KiB", "MiB",
	                                    "GiB", "TiB", "PiB"};
	double v = (double)bytes;
	int u = 0;

	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, size, "%llu B", bytes);
	else
		snprintf(out, size, "%.1f %s", v, units[u]);
}

/* How the process ended, escaped, on out, padded to width. */
static void put_ended(FILE *out, const struct proc *p, int width,
                      size_t (*esc)(FILE *, const char *))
{
	const char *how = p->how ? p->how : "?";
	int killed = strcmp(how, "killed") == 0;
	long n;

	if (killed || strcmp(how, "signal") == 0) {
		const char *abbrev = p->sig > 0 && p->sig < 65
		                         ? sigabbrev_np((int)p->sig)
		                         : NULL;

		if (abbrev != NULL)
			n = fprintf(out, "%sSIG%s", killed ? "killed, " : "",
			            abbrev);
		else
			n = fprintf(out, "%ssignal %llu",
			            killed ? "killed, " : "", p->sig);
	} else {
		n = (long)esc(out, how) + fprintf(out, " %llu", p->status);
	}
	if (n < width)
		fprintf(out, "%*s", (int)(width - n), "");
}

/* Percent of the non-owning processes' pages still shared: copied is at
 * most others_pages (each view's exclusive is at most its pages), so
 * 0 to 100, or -1 when no other process reported it. */
static double shared_percent(const struct region *g)
{
	if (g->others_pages == 0)
		return -1;
	return 100.0 * (double)(g->others_pages - g->copied) /
	       (double)g->others_pages;
}

static void put_json_string(FILE *out, const char *s)
{
	fputc('"', out);
	escape_json(out, s);
	fputc('"', out);
}

/* ---- the table ---- */

/* shared as '=', then the rest of the resident pages as mark, then what
 * is not resident as '.', over BAR columns. */
static void bar(FILE *out, const struct view *w, char mark)
{
	unsigned long long pages = w->pages ? w->pages : 1;
	unsigned long long rest = w->resident - w->shared;
	/* No overflow: the figures are checked (pages <= 2^45 + 1). */
	int c = (int)((rest * BAR + pages - 1) / pages);
	int s = (int)((w->shared * BAR) / pages);
	char text[BAR + 3];

	if (c > BAR)
		c = BAR;
	if (s > BAR - c)
		s = BAR - c;
	text[0] = '[';
	for (int i = 0; i < BAR; i++)
		text[i + 1] = i < s ? '=' : i < s + c ? mark : '.';
	text[BAR + 1] = ']';
	text[BAR + 2] = '\0';
	fputs(text, out);
}

static void print_table(const struct run *r, const char *dir, FILE *out)
{
	size_t unreported = 0;

	fputs("forkshim report ", out);
	escape_term(out, dir);
	fprintf(out, ": %zu process%s, %zu region%s, %zu audit file%s",
	        r->nprocs, r->nprocs == 1 ? "" : "es", r->nregions,
	        r->nregions == 1 ? "" : "s", r->audits,
	        r->audits == 1 ? "" : "s");
	if (r->skipped)
		fprintf(out, ", %zu file%s skipped", r->skipped,
		        r->skipped == 1 ? "" : "s");
	fprintf(out, "\n");
	for (size_t i = 0; i < r->nregions; i++) {
		const struct region *g = &r->regions[i];
		char size[32], cost[32];
		double pct = shared_percent(g);

		size_text(g->size, size, sizeof(size));
		size_text(g->copied * g->page_size, cost, sizeof(cost));
		fprintf(out, "\n%zu. \"", i + 1);
		escape_term(out, g->name);
		fprintf(out, "\"  %s, %llu page%s, frozen by %llu (handle ",
		        size, g->pages, g->pages == 1 ? "" : "s", g->owner);
		escape_term(out, g->handle);
		if (g->pieces > 1)
			fprintf(out, " and %zu more: an object's ranges",
			        g->pieces - 1);
		fprintf(out, ")\n");
		if (g->memfd != NULL) {
			fputs("   sealed shared memory (memfd ", out);
			escape_term(out, g->memfd);
			fprintf(out,
			        "), nothing copied: mapped by %zu process%s, "
			        "%llu besides its owner; ",
			        g->nviews, g->nviews == 1 ? "" : "es",
			        g->others);
		} else
			fprintf(out,
			        "   mapped by %zu process%s; copied %llu "
			        "page%s (%s) "
			        "in %llu other%s; ",
			        g->nviews, g->nviews == 1 ? "" : "es",
			        g->copied, g->copied == 1 ? "" : "s", cost,
			        g->others, g->others == 1 ? "" : "s");
		if (pct < 0)
			fprintf(out, "no other process reported it\n");
		else
			fprintf(out, "%.1f%% still shared\n", pct);
		fprintf(out, "   %8s %8s %-14s %7s %7s  %s\n", "pid", "parent",
		        "ended", "copied", "shared",
		        "= shared  # copied  - owner's own  . not resident");
		for (size_t k = 0; k < g->nviews; k++) {
			const struct view *w = &g->views[k];
			const struct proc *p = &r->procs[w->proc];
			unsigned long long copied = view_copied(r, g, w);
			char col[24];

			if (p->pid == g->owner)
				snprintf(col, sizeof(col), "owner");
			else
				snprintf(col, sizeof(col), "%llu", copied);
			fprintf(out, "   %8llu %8llu ", p->pid, p->ppid);
			put_ended(out, p, 14, escape_term);
			fprintf(out, " %7s %7llu  ", col, w->shared);
			bar(out, w, p->pid == g->owner ? '-' : '#');
			fprintf(out, "\n");
		}
		if (g->nsites > 0) {
			fprintf(out, "   top writers (first writes, pages):");
			for (size_t k = 0; k < g->nsites && k < TOP_WRITERS;
			     k++) {
				fprintf(out, "%s ", k ? "," : "");
				escape_term(out, g->sites[k].name);
				fprintf(out, " %llu", g->sites[k].pages);
			}
			fprintf(out, "\n");
		}
	}
	for (size_t i = 0; i < r->nprocs; i++) {
		const struct proc *p = &r->procs[i];

		if (p->has_views)
			continue;
		if (unreported++ == 0)
			fprintf(out, "\nprocesses without region figures:\n");
		fprintf(out, "   %8llu %8llu ", p->pid, p->ppid);
		put_ended(out, p, 14, escape_term);
		fprintf(out, " %s\n",
		        p->reported_by ? "(reported by its parent: it could "
		                         "not write its own)"
		        : p->views_skipped ? "(its figures were skipped)"
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
		put_json_string(out, g->name);
		fprintf(out, ",\"handle\":");
		put_json_string(out, g->handle);
		fprintf(out, ",\"addr\":");
		put_json_string(out, g->addr);
		if (g->memfd != NULL) {
			fprintf(out, ",\"memfd\":");
			put_json_string(out, g->memfd);
		}
		fprintf(out,
		        ",\"owner\":%llu,\"size\":%llu,\"pages\":%llu,"
		        "\"page_size\":%llu,\"mapped_by\":%zu,"
		        "\"copied_pages\":%llu,\"copied_bytes\":%llu,",
		        g->owner, g->size, g->pages, g->page_size, g->nviews,
		        g->copied, g->copied * g->page_size);
		if (g->pieces > 1)
			fprintf(out, "\"ranges\":%zu,", g->pieces);
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
			put_json_string(out, p->how ? p->how : "");
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
			const struct site *t = &g->sites[k];

			fprintf(out, "%s{\"site\":", k ? "," : "");
			put_json_string(out, t->name);
			fprintf(out, ",\"pages\":%llu", t->pages);
			/* A Python line: its frame, and the C frame apart. */
			if (t->py_file != NULL) {
				fprintf(out, ",\"c_site\":");
				put_json_string(out, t->c_site);
				fprintf(out, ",\"python\":{\"file\":");
				put_json_string(out, t->py_file);
				fprintf(out, ",\"line\":%llu,\"function\":",
				        t->py_line);
				put_json_string(out, t->py_func);
				fprintf(out, "}");
			}
			fprintf(out, "}");
		}
		fprintf(out, "]}");
	}
	fprintf(out, "],\"without_figures\":[");
	for (size_t i = 0, n = 0; i < r->nprocs; i++) {
		const struct proc *p = &r->procs[i];

		if (p->has_views)
			continue;
		fprintf(out, "%s{\"pid\":%llu,\"ppid\":%llu,\"how\":",
		        n++ ? "," : "", p->pid, p->ppid);
		put_json_string(out, p->how ? p->how : "");
		fprintf(
		    out,
		    ",\"status\":%llu,\"signal\":%llu,\"reported_by\":%llu}",
		    p->status, p->sig, p->reported_by);
	}
	fprintf(out, "]}\n");
}

/* ---- --svg ---- */

static void print_svg(const struct run *r, FILE *out)
{
	enum { W = 760, LEFT = 190, BARW = 520, ROW = 22, HEAD = 44 };
	unsigned long long height = 60, y = 40;

	for (size_t i = 0; i < r->nregions; i++)
		height +=
		    HEAD + ROW * (unsigned long long)r->regions[i].nviews + 16;
	fprintf(out,
	        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
	        "height=\"%llu\" font-family=\"sans-serif\" "
	        "font-size=\"12\">\n"
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

		size_text(g->size, size, sizeof(size));
		size_text(g->copied * g->page_size, cost, sizeof(cost));
		y += HEAD - 10;
		fprintf(out, "<text x=\"10\" y=\"%llu\" font-weight=\"bold\">",
		        y);
		escape_xml(out, g->name);
		/* The top writers as the name's tooltip: the drawing's layout
		 * stays as it is. */
		for (size_t k = 0; k < g->nsites && k < TOP_WRITERS; k++) {
			fputs(k ? ", "
			        : "<title>top writers (first writes, "
			          "pages): ",
			      out);
			escape_xml(out, g->sites[k].name);
			fprintf(out, " %llu", g->sites[k].pages);
		}
		if (g->nsites > 0)
			fputs("</title>", out);
		fprintf(out, "</text><text x=\"%d\" y=\"%llu\">%s; %s copied",
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

			fprintf(out, "<text x=\"20\" y=\"%llu\">pid %llu (",
			        y + 11, p->pid);
			put_ended(out, p, 0, escape_xml);
			fprintf(out,
			        ")</text>\n"
			        "<rect x=\"%d\" y=\"%llu\" width=\"%d\" "
			        "height=\"14\" fill=\"#eceff1\" "
			        "stroke=\"#b0bec5\"/>\n"
			        "<rect x=\"%d\" y=\"%llu\" width=\"%.1f\" "
			        "height=\"14\" fill=\"#4caf50\"/>\n"
			        "<rect x=\"%.1f\" y=\"%llu\" width=\"%.1f\" "
			        "height=\"14\" fill=\"%s\"><title>%llu page%s "
			        "%s</title></rect>\n",
			        LEFT, y, BARW, LEFT, y, sx, LEFT + sx, y, cx,
			        own ? "#90a4ae" : "#e65100", w->exclusive,
			        w->exclusive == 1 ? "" : "s",
			        own ? "its own" : "copied");
			y += ROW;
		}
		y += 6;
	}
	fprintf(out, "</svg>\n");
}

static int write_svg(const struct run *r, const char *path)
{
	FILE *out = fopen(path, "we");

	if (out == NULL) {
		fputs("forkshim report: --svg ", stderr);
		escape_term(stderr, path);
		fprintf(stderr, ": %s\n", strerror(errno));
		return -1;
	}
	__fsetlocking(out, FSETLOCKING_BYCALLER);
	print_svg(r, out);
	if (fclose(out) != 0) {
		fputs("forkshim report: --svg ", stderr);
		escape_term(stderr, path);
		fprintf(stderr, ": %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- the command ---- */

int report_render(const char *dir, FILE *table, FILE *json, FILE *svg,
                  FILE *err)
{
	struct run r;

	if (load(&r, dir, err) != 0)
		return -1;
	if (r.nprocs == 0) {
		run_free(&r);
		return 0;
	}
	if (table != NULL)
		print_table(&r, dir, table);
	if (json != NULL)
		print_json(&r, json);
	if (svg != NULL)
		print_svg(&r, svg);
	run_free(&r);
	return 1;
}

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
    "Files that are truncated, foreign, of a newer format, not regular "
    "files,\n"
    "symbolic links, larger than 1 GiB or with a line over 1 MiB are "
    "skipped\n"
    "with a message, and so is a region whose figures cannot be.  Strings "
    "from\n"
    "the files are shown escaped.  Exit status: 0 shown, 1 no readable "
    "report\n"
    "in DIR, 2 bad usage.\n";

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
			fputs("forkshim report: unknown option '", stderr);
			escape_term(stderr, argv[i]);
			fputs("'\nTry 'forkshim report --help'.\n", stderr);
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
	/* One thread: no lock per character written. */
	__fsetlocking(stdout, FSETLOCKING_BYCALLER);
	__fsetlocking(stderr, FSETLOCKING_BYCALLER);
	if (load(&r, dir, stderr) != 0)
		return 2;
	if (r.nprocs == 0) {
		fputs("forkshim report: ", stderr);
		escape_term(stderr, dir);
		fputs(": no readable report\n", stderr);
		run_free(&r);
		return 1;
	}
	if (json)
		print_json(&r, stdout);
	else
		print_table(&r, dir, stdout);
	if (svg != NULL && write_svg(&r, svg) != 0) {
		run_free(&r);
		return 2;
	}
	run_free(&r);
	return 0;
}
