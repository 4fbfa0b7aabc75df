#include "doctor.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <pwd.h>
#include <grp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <elf.h>

#include "elfobj.h"
#include "findlib.h"
#include "ldsearch.h"

#define MAX_INTERPRETERS 4 /* Linux follows #! this deep */

/* What a child made through each import means for the shim. */
enum kind {
	SEEN,   /* wrapped by the shim: visible() knows the child */
	UNSEEN, /* a real fork the shim does not wrap */
	EXECS,  /* the child execs at once */
	RAW,    /* syscall(): could be a raw fork */
};

static const struct {
	const char *name;
	enum kind kind;
} fork_fns[] = {
    {"fork", SEEN},    {"forkpty", SEEN},      {"_Fork", UNSEEN},
    {"clone", UNSEEN}, {"clone3", UNSEEN},     {"daemon", UNSEEN},
    {"vfork", EXECS},  {"posix_spawn", EXECS}, {"posix_spawnp", EXECS},
    {"system", EXECS}, {"popen", EXECS},       {"syscall", RAW},
};
#define N_FNS (sizeof(fork_fns) / sizeof(fork_fns[0]))

static const char *const kind_meaning[] = {
    [SEEN] = "the shim wraps it: visible() sees these children",
    [UNSEEN] = "children inherit the table, but visible() cannot see them",
    [EXECS] = "children exec at once: nothing to hand over",
    [RAW] = "a fork made through it works, but visible() cannot see it",
};

enum verdict { V_NONE, V_OK, V_LIMITED, V_CANNOT, V_ERROR };

static const char *const verdict_word[] = {[V_NONE] = "error",
                                           [V_OK] = "ok",
                                           [V_LIMITED] = "limited",
                                           [V_CANNOT] = "cannot",
                                           [V_ERROR] = "error"};

struct doctor {
	enum verdict verdict;
	char line[2048]; /* the verdict, after "forkshim doctor: WORD: " */
	FILE *details;
	char *details_buf;
	size_t details_len;
	const char *fn_names[N_FNS];
	struct elf_obj reference; /* the shim's file, or ours */
	bool have_reference;
};

__attribute__((format(printf, 3, 4))) static void
detail(struct doctor *d, const char *label, const char *fmt, ...)
{
	va_list ap;

	fprintf(d->details, "  %-13s", label);
	va_start(ap, fmt);
	vfprintf(d->details, fmt, ap);
	va_end(ap);
	fputc('\n', d->details);
}

static void vdecide(struct doctor *d, enum verdict v, const char *fmt,
                    va_list ap)
{
	if (d->verdict != V_NONE)
		return;
	d->verdict = v;
	vsnprintf(d->line, sizeof(d->line), fmt, ap);
}

/* The first verdict given stands: reasons are examined worst first. */
__attribute__((format(printf, 3, 4))) static void
decide(struct doctor *d, enum verdict v, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vdecide(d, v, fmt, ap);
	va_end(ap);
}

/* The program could not be examined; returns -1. */
__attribute__((format(printf, 2, 3))) static int fail(struct doctor *d,
                                                      const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vdecide(d, V_ERROR, fmt, ap);
	va_end(ap);
	return -1;
}

static const char *type_name(const struct elf_obj *o)
{
	switch (o->type) {
	case ET_EXEC:
		return "executable";
	case ET_DYN:
		if (o->interp != NULL)
			return "position-independent executable";
		return o->soname ? "shared object" : "static-pie executable";
	default:
		return NULL;
	}
}

static void join(char *buf, size_t len, const char *sep, const char *s)
{
	size_t used = strlen(buf);

	snprintf(buf + used, len - used, "%s%s", used ? sep : "", s);
}

/* Set-ID bits and file capabilities: either puts the loader in
 * secure-execution mode, where LD_PRELOAD is ignored. */
static void check_secure(struct doctor *d, const char *path,
                         const struct stat *st, const char *subject)
{
	bool suid = st->st_mode & S_ISUID;
	/* S_ISGID without group execute is mandatory locking, not set-ID */
	bool sgid = (st->st_mode & S_ISGID) && (st->st_mode & S_IXGRP);
	struct statvfs vfs;
	bool nosuid = statvfs(path, &vfs) == 0 && (vfs.f_flag & ST_NOSUID);
	ssize_t caps = getxattr(path, "security.capability", NULL, 0);

	if (suid || sgid) {
		struct passwd *pw = getpwuid(st->st_uid);
		struct group *gr = getgrgid(st->st_gid);
		const char *what = suid && sgid ? "set-user-ID and set-group-ID"
		                   : suid       ? "set-user-ID"
		                                : "set-group-ID";
		char owner[64], group[64], who[160];

		snprintf(owner, sizeof(owner), "%s",
		         pw ? pw->pw_name : "its owner");
		snprintf(group, sizeof(group), "%s",
		         gr ? gr->gr_name : "its group");
		if (suid && sgid)
			snprintf(who, sizeof(who), "%s with real group %s",
			         owner, group);
		else if (suid)
			snprintf(who, sizeof(who), "%s", owner);
		else
			snprintf(who, sizeof(who), "a user with real group %s",
			         group);
		if (nosuid) {
			detail(d, "set-ID bits",
			       "%s, without effect: its file system is mounted "
			       "nosuid",
			       what);
		} else {
			detail(d, "set-ID bits",
			       "%s: unless %s runs it, the loader is in "
			       "secure-execution mode and ignores LD_PRELOAD",
			       what, who);
			decide(d, V_CANNOT,
			       "%s is %s: the loader ignores LD_PRELOAD for it",
			       subject, what);
		}
	} else {
		detail(d, "set-ID bits", "none");
	}
	if (caps > 0 && !nosuid) {
		detail(d, "capabilities",
		       "security.capability is set: the loader is in "
		       "secure-execution mode and ignores LD_PRELOAD");
		decide(
		    d, V_CANNOT,
		    "%s has file capabilities: the loader ignores LD_PRELOAD "
		    "for it",
		    subject);
	} else if (caps > 0) {
		detail(d, "capabilities",
		       "security.capability is set, without effect: its file "
		       "system is mounted nosuid");
	} else {
		detail(d, "capabilities", "none");
	}
}

/* Shared frozen regions (FORKSHIM_SHARED) live in sealed memfds that other
 * processes reopen read-only through /proc/PID/fd: both must work here.
 * A detail only: the shim loads either way, and only shared freezes,
 * imports and late children's derefs fail without them. */
static void check_shared(struct doctor *d)
{
	int fd = memfd_create("forkshim-doctor",
	                      MFD_CLOEXEC | MFD_ALLOW_SEALING),
	    ro;
	char path[64];

	if (fd < 0) {
		detail(d, "shared",
		       "not available: memfd_create: %s (FORKSHIM_SHARED "
		       "freezes fail)",
		       strerror(errno));
		return;
	}
	if (ftruncate(fd, 4096) != 0 ||
	    fcntl(fd, F_ADD_SEALS,
	          F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW) != 0) {
		detail(d, "shared",
		       "not available: memfd seals: %s (FORKSHIM_SHARED "
		       "freezes fail)",
		       strerror(errno));
		close(fd);
		return;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ro = open(path, O_RDONLY | O_CLOEXEC);
	if (ro < 0)
		detail(d, "shared",
		       "not available: %s: %s (is /proc mounted?): late "
		       "children and exec'd workers cannot map shared regions",
		       path, strerror(errno));
	else
		detail(d, "shared",
		       "available (sealed memfds, reopened through "
		       "/proc/PID/fd); not from a program that makes itself "
		       "non-dumpable (imports: EACCES)");
	if (ro >= 0)
		close(ro);
	close(fd);
}

/* Shared regions get 2 MiB pages only where the kernel gives shmem huge
 * pages; with "never" (Debian's default) every importer maps them 4 KiB at
 * a time.  A detail: forkshim reads the setting and never changes it. */
static void check_shmem_huge(struct doctor *d)
{
	static const char knob[] =
	    "/sys/kernel/mm/transparent_hugepage/shmem_enabled";
	char buf[128] = "", *l, *r;
	FILE *f = fopen(knob, "re");

	if (f != NULL) {
		if (fgets(buf, sizeof(buf), f) == NULL)
			buf[0] = 0;
		fclose(f);
	}
	l = strchr(buf, '[');
	r = l ? strchr(l, ']') : NULL;
	if (r == NULL) {
		detail(d, "huge pages",
		       "unknown (%s unreadable): shared "
		       "regions may be mapped in 4 KiB pages",
		       knob);
		return;
	}
	*r = 0;
	if (strcmp(l + 1, "never") == 0 || strcmp(l + 1, "deny") == 0)
		detail(d, "huge pages",
		       "off for shared regions (shmem_enabled: %s): processes "
		       "that import them read 4 KiB pages; to allow 2 MiB "
		       "pages, as root: echo advise > %s",
		       l + 1, knob);
	else
		detail(d, "huge pages",
		       "on for shared regions of 4 MiB or more "
		       "(shmem_enabled: %s)",
		       l + 1);
}

/* The verdict for a program the shim can be preloaded into, from what it
 * and its libraries import. */
static void judge_imports(struct doctor *d, unsigned imports, bool go,
                          const char *subject)
{
	char seen[128] = "", unseen[128] = "", execs[128] = "";
	bool raw = false;

	for (size_t k = 0; k < N_FNS; k++) {
		if (!(imports & (1u << k)))
			continue;
		if (fork_fns[k].kind == SEEN)
			join(seen, sizeof(seen), " and ", fork_fns[k].name);
		else if (fork_fns[k].kind == UNSEEN)
			join(unseen, sizeof(unseen), ", ", fork_fns[k].name);
		else if (fork_fns[k].kind == EXECS)
			join(execs, sizeof(execs), ", ", fork_fns[k].name);
		else
			raw = true;
	}
	if (seen[0])
		decide(d, V_OK, "%s can be preloaded; it calls %s", subject,
		       seen);
	else if (unseen[0])
		decide(d, V_LIMITED,
		       "%s can be preloaded, but it forks only through %s, "
		       "which the shim does not wrap: children work, but "
		       "visible() cannot see them",
		       subject, unseen);
	else if (go)
		decide(d, V_LIMITED,
		       "%s can be preloaded, but it is a Go program, whose "
		       "runtime forks by raw syscall: children work, but "
		       "visible() cannot see them",
		       subject);
	else if (raw)
		decide(d, V_LIMITED,
		       "%s can be preloaded, but it imports no fork function, "
		       "only syscall(): children it forks by raw syscall work, "
		       "but visible() cannot see them",
		       subject);
	else if (execs[0])
		decide(d, V_OK,
		       "%s can be preloaded; it does not call fork: it starts "
		       "programs with %s, whose children exec at once (nothing "
		       "to hand over)",
		       subject, execs);
	else
		decide(d, V_OK,
		       "%s can be preloaded; it does not fork (no fork, "
		       "forkpty, _Fork, clone, vfork, posix_spawn, system, "
		       "popen or syscall import): nothing to hand over",
		       subject);
}

static void report_imports(struct doctor *d, const struct elf_obj *prog,
                           const struct ld_set *libs, unsigned *imports,
                           bool *go)
{
	*imports = prog->imports;
	*go = prog->go;
	for (size_t i = 0; i < libs->n; i++) {
		if (!libs->libs[i].found)
			continue;
		*imports |= libs->libs[i].obj.imports;
		*go |= libs->libs[i].obj.go;
	}
	for (size_t k = 0; k < N_FNS; k++) {
		char *who = NULL;
		size_t len = 0;
		FILE *f;

		if (!(*imports & (1u << k)))
			continue;
		f = open_memstream(&who, &len);
		if (prog->imports & (1u << k))
			fprintf(f, "%s", prog->real);
		for (size_t i = 0; i < libs->n; i++)
			if (libs->libs[i].found &&
			    (libs->libs[i].obj.imports & (1u << k)))
				fprintf(f, "%s%s", ftell(f) ? ", " : "",
				        libs->libs[i].obj.real);
		fclose(f);
		detail(d, fork_fns[k].name, "imported by %s", who);
		detail(d, "", "(%s)", kind_meaning[fork_fns[k].kind]);
		free(who);
	}
	if (prog->interp != NULL && !prog->has_dynsym)
		detail(d, "note",
		       "%s has no section headers: its imports are unknown",
		       prog->real);
	for (size_t i = 0; i < libs->n; i++)
		if (libs->libs[i].found && !libs->libs[i].obj.has_dynsym)
			detail(d, "note",
			       "%s has no section headers: its imports are "
			       "unknown",
			       libs->libs[i].obj.real);
	if (*go)
		detail(d, "note",
		       "built by the Go toolchain: its runtime forks by raw "
		       "syscall");
}

static int examine_elf(struct doctor *d, const char *path,
                       const struct stat *st, const char *subject)
{
	struct elf_obj prog;
	struct ld_set libs = {0};
	char why[512], desc[64], ref[64];
	unsigned imports;
	bool go;

	if (elfobj_read(path, d->fn_names, N_FNS, &prog, why, sizeof(why)) !=
	    ELFOBJ_OK)
		return fail(d, "%s", why);
	if (strcmp(prog.real, path) != 0)
		detail(d, "program", "%s -> %s", path, prog.real);
	else
		detail(d, "program", "%s", path);
	if (type_name(&prog) == NULL) {
		int type = prog.type;

		elfobj_free(&prog);
		return fail(d, "%s: an ELF file, but not a program (type %d)",
		            path, type);
	}
	detail(d, "format", "ELF %s %s, %s",
	       elfobj_describe(&prog, desc, sizeof(desc)), type_name(&prog),
	       prog.interp ? "dynamically linked" : "statically linked");
	if (d->have_reference && (prog.elfclass != d->reference.elfclass ||
	                          prog.machine != d->reference.machine)) {
		elfobj_describe(&d->reference, ref, sizeof(ref));
		detail(d, "note", "the shim is built for %s", ref);
		decide(d, V_CANNOT,
		       "%s is a %s program and the shim is %s: the loader "
		       "cannot preload it there",
		       subject, desc, ref);
	}
	if (prog.interp == NULL) {
		detail(d, "interpreter",
		       "none: no dynamic loader runs, so nothing reads "
		       "LD_PRELOAD");
		decide(d, V_CANNOT,
		       "%s is statically linked: LD_PRELOAD cannot bring the "
		       "shim into it",
		       subject);
	} else {
		detail(d, "interpreter", "%s", prog.interp);
	}
	check_secure(d, path, st, subject);
	if (prog.interp != NULL) {
		ld_resolve(&prog, d->fn_names, N_FNS, &libs);
		if (prog.n_needed == 0)
			detail(d, "libraries", "none needed");
		for (size_t i = 0; i < libs.n; i++) {
			const struct ld_lib *l = &libs.libs[i];
			const char *by = l->loader < 0
			                     ? prog.real
			                     : libs.libs[l->loader].obj.real;

			if (l->found) {
				detail(d, "library", "%s => %s (%s)", l->name,
				       l->obj.path, l->how);
				continue;
			}
			detail(d, "library", "%s => not found (needed by %s)",
			       l->name, by);
			decide(d, V_CANNOT,
			       "%s needs %s, which the loader cannot find: it "
			       "would not start",
			       subject, l->name);
		}
	}
	report_imports(d, &prog, &libs, &imports, &go);
	judge_imports(d, imports, go, subject);
	if (prog.interp != NULL)
		detail(d, "note",
		       "libraries it opens later with dlopen are not examined");
	ld_set_free(&libs);
	elfobj_free(&prog);
	return 0;
}

static int examine(struct doctor *d, const char *path, const char *subject,
                   int depth);

/* A #! script: the kernel runs its interpreter, which is what the shim
 * must be preloaded into. */
static int examine_script(struct doctor *d, const char *path, char *head,
                          const struct stat *st, const char *subject, int depth)
{
	char *line = head + 2, *interp, *arg, *end, *next = NULL;
	char *target, *sub;
	int rc;

	line[strcspn(line, "\n")] = '\0';
	interp = line + strspn(line, " \t");
	end = interp + strcspn(interp, " \t");
	arg = end + strspn(end, " \t");
	*end = '\0';
	for (end = arg + strlen(arg); end > arg && strchr(" \t", end[-1]);)
		*--end = '\0';
	if (*interp == '\0')
		return fail(d, "%s: its #! line names no interpreter", path);
	detail(d, "script", "%s: #!%s%s%s", path, interp, *arg ? " " : "", arg);
	if (st->st_mode & (S_ISUID | S_ISGID))
		detail(d, "note",
		       "set-ID bits on a script have no effect on Linux");
	if (depth >= MAX_INTERPRETERS)
		return fail(d, "%s: more than %d levels of #! interpreters",
		            path, MAX_INTERPRETERS);
	target = interp;
	/* `#!/usr/bin/env NAME` runs NAME from PATH: that is the program. */
	if (strcmp(basename(interp), "env") == 0 && *arg) {
		if (strncmp(arg, "-S", 2) == 0) {
			arg += 2 + strspn(arg + 2, " \t");
			arg[strcspn(arg, " \t")] = '\0';
		}
		if (*arg && *arg != '-' && strchr(arg, '=') == NULL) {
			next = findlib_search_path(arg);
			if (next == NULL)
				return fail(d,
				            "%s: its interpreter %s runs %s, "
				            "which is not in PATH",
				            path, interp, arg);
			detail(d, "env", "runs %s: %s", arg, next);
			target = next;
		}
	}
	if (asprintf(&sub, "%s runs %s, which", subject, target) < 0)
		return fail(d, "out of memory");
	rc = examine(d, target, sub, depth + 1);
	free(sub);
	free(next);
	return rc;
}

static int examine(struct doctor *d, const char *path, const char *subject,
                   int depth)
{
	char head[257];
	struct stat st;
	ssize_t n;
	char *sub;
	int fd, rc;

	if (stat(path, &st) != 0)
		return fail(d, "%s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return fail(d, "%s: not a regular file", path);
	if (access(path, X_OK) != 0)
		return fail(d, "%s: cannot be executed: %s", path,
		            strerror(errno));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(d, "%s: %s", path, strerror(errno));
	n = read(fd, head, sizeof(head) - 1);
	close(fd);
	if (n < 0)
		return fail(d, "%s: %s", path, strerror(errno));
	head[n] = '\0';
	if (n >= 2 && head[0] == '#' && head[1] == '!')
		return examine_script(d, path, head, &st, subject, depth);
	if (n >= SELFMAG && memcmp(head, ELFMAG, SELFMAG) == 0)
		return examine_elf(d, path, &st, subject);
	/* What execvp does with ENOEXEC. */
	detail(d, "format",
	       "%s: neither ELF nor #!: execvp runs it with /bin/sh", path);
	if (depth >= MAX_INTERPRETERS)
		return fail(d, "%s: more than %d levels of interpreters", path,
		            MAX_INTERPRETERS);
	if (asprintf(&sub, "%s runs /bin/sh, which", subject) < 0)
		return fail(d, "out of memory");
	rc = examine(d, "/bin/sh", sub, depth + 1);
	free(sub);
	return rc;
}

static void usage(FILE *to)
{
	fputs("Usage: forkshim doctor COMMAND\n"
	      "\n"
	      "Says whether libforkshim can work in COMMAND (looked up in PATH "
	      "as\n"
	      "execvp does): reads its ELF file, through #! interpreters, and "
	      "the\n"
	      "libraries the loader would load with it.  One verdict line, "
	      "then the\n"
	      "details.\n"
	      "\n"
	      "  ok       the shim loads; visible() sees the children it "
	      "makes with\n"
	      "           fork() or forkpty(), if it makes any\n"
	      "  limited  the shim loads and children work, but visible() "
	      "cannot\n"
	      "           see them (raw syscall, _Fork or clone forks)\n"
	      "  cannot   LD_PRELOAD cannot bring the shim in (statically "
	      "linked,\n"
	      "           set-user-ID, set-group-ID, file capabilities, "
	      "another\n"
	      "           machine, a missing library)\n"
	      "\n"
	      "Exit status: 0 ok or limited, 1 cannot, 2 usage or examination "
	      "errors.\n",
	      to);
}

int doctor_main(int argc, char **argv)
{
	static const struct option options[] = {{"help", no_argument, 0, 'h'},
	                                        {0, 0, 0, 0}};
	struct doctor d = {.verdict = V_NONE};
	char why[1024];
	char *path, *lib;
	int opt, rc;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+h", options, NULL)) != -1) {
		if (opt == 'h') {
			usage(stdout);
			return DOCTOR_OK;
		}
		fprintf(stderr,
		        "forkshim doctor: unknown option '%s'\n"
		        "Try 'forkshim doctor --help' for more information.\n",
		        argv[optind - 1]);
		return DOCTOR_ERROR;
	}
	if (optind >= argc) {
		fputs("forkshim doctor: no COMMAND given\n"
		      "Try 'forkshim doctor --help' for more information.\n",
		      stderr);
		return DOCTOR_ERROR;
	}
	for (size_t k = 0; k < N_FNS; k++)
		d.fn_names[k] = fork_fns[k].name;
	d.details = open_memstream(&d.details_buf, &d.details_len);
	if (d.details == NULL) {
		perror("forkshim doctor");
		return DOCTOR_ERROR;
	}

	/* The shim's own class and machine is what a program must match. */
	lib = findlib_locate(NULL, why, sizeof(why));
	d.have_reference =
	    elfobj_read(lib ? lib : "/proc/self/exe", NULL, 0, &d.reference,
	                why, sizeof(why)) == ELFOBJ_OK;

	path = findlib_search_path(argv[optind]);
	if (path == NULL)
		fail(&d, "%s: %s", argv[optind],
		     errno == ENOENT && !strchr(argv[optind], '/')
		         ? "command not found"
		         : strerror(errno));
	else
		examine(&d, path, path, 0);

	check_shared(&d);
	check_shmem_huge(&d);
	if (lib != NULL)
		detail(&d, "shim", "%s (what forkshim preloads)", lib);
	else
		detail(&d, "shim", "not found: %s", why);
	fclose(d.details);
	if (d.verdict == V_NONE)
		decide(&d, V_ERROR, "no verdict");
	/* An error is a message, not a report: stderr. */
	fprintf(d.verdict == V_ERROR ? stderr : stdout,
	        "forkshim doctor: %s: %s\n%s", verdict_word[d.verdict], d.line,
	        d.details_buf);
	rc = d.verdict == V_ERROR    ? DOCTOR_ERROR
	     : d.verdict == V_CANNOT ? DOCTOR_CANNOT
	                             : DOCTOR_OK;
	free(d.details_buf);
	free(path);
	free(lib);
	if (d.have_reference)
		elfobj_free(&d.reference);
	return rc;
}
