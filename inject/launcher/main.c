/* forkshim: run a command with libforkshim preloaded.
 *
 *   forkshim [OPTIONS] [--] COMMAND [ARGS...]
 *   forkshim doctor COMMAND
 *   forkshim report [--json] [--svg FILE] DIR
 *
 * The launcher finds the library (findlib.h), prepends it to LD_PRELOAD,
 * turns its options into the FORKSHIM_* variables the library reads at
 * load, and execs COMMAND, so the exit status and any fatal signal are
 * COMMAND's own.  Its own failures use the shell's codes: 127 COMMAND or
 * the library not found, 126 COMMAND found but not executable, 2 bad
 * usage. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "doctor.h"
#include "findlib.h"
#include "forkshim.h"
#include "report.h"

#define EXIT_USAGE 2
#define EXIT_CANNOT_EXEC 126
#define EXIT_NOT_FOUND 127

/* The library's own ceiling for FORKSHIM_MAX_REGIONS: a handle's slot
 * field is 24 bits (CONFIG_MAX_REGIONS in shim/config.h). */
#define MAX_REGIONS_LIMIT (1u << 24)

#ifndef FORKSHIM_LAUNCHER_VERSION
#define FORKSHIM_LAUNCHER_VERSION "unknown"
#endif

enum {
	OPT_LIB = 256,
	OPT_LOG,
	OPT_LOG_FILE,
	OPT_MAX_REGIONS,
	OPT_GUARD,
	OPT_REPORT,
	OPT_VERSION,
};

static const struct option options[] = {
    {"lib", required_argument, 0, OPT_LIB},
    {"log", required_argument, 0, OPT_LOG},
    {"log-file", required_argument, 0, OPT_LOG_FILE},
    {"max-regions", required_argument, 0, OPT_MAX_REGIONS},
    {"guard", required_argument, 0, OPT_GUARD},
    {"report", required_argument, 0, OPT_REPORT},
    {"help", no_argument, 0, 'h'},
    {"version", no_argument, 0, OPT_VERSION},
    {0, 0, 0, 0},
};

static const char help_text[] =
    "Usage: forkshim [OPTIONS] [--] COMMAND [ARGS...]\n"
    "       forkshim doctor COMMAND\n"
    "       forkshim report [--json] [--svg FILE] DIR\n"
    "\n"
    "Runs COMMAND with libforkshim preloaded, so that the regions it "
    "freezes\n"
    "can be handed to its forked children by handle.  The library is "
    "prepended\n"
    "to LD_PRELOAD (what was there stays), and forkshim execs COMMAND.\n"
    "\n"
    "Options:\n"
    "  --lib PATH         preload this libforkshim instead of the one "
    "next to\n"
    "                     forkshim (installed, or in the build tree)\n"
    "  --log LEVEL        FORKSHIM_LOG: off, error, warn (the default), "
    "info, debug\n"
    "  --log-file PATH    FORKSHIM_LOG_FILE: append the log to PATH, not "
    "stderr\n"
    "  --max-regions N    FORKSHIM_MAX_REGIONS: at most N regions frozen "
    "at once\n"
    "                     per process, 1 to 16777216 (default 1048576)\n"
    "  --guard MODE       FORKSHIM_GUARD: off (the default), protect (a "
    "write\n"
    "                     into a frozen region stops the program with a "
    "report),\n"
    "                     audit (record which code dirtied frozen pages "
    "in children)\n"
    "  --report DIR       FORKSHIM_REPORT: every process that saw a "
    "frozen region\n"
    "                     writes a report there when it ends (with "
    "--guard audit,\n"
    "                     the audit records too); DIR is made (mode "
    "0700) if\n"
    "                     missing, else must be yours and not writable "
    "by group\n"
    "                     or others\n"
    "  -h, --help         show this help and exit\n"
    "  --version          show the launcher's and the library's versions "
    "and exit\n"
    "\n"
    "forkshim doctor COMMAND reads COMMAND's ELF file and the libraries it "
    "needs\n"
    "and says whether the shim can work in it: exit 0 it can, 1 it cannot,\n"
    "2 it could not tell.  'forkshim doctor --help' explains the verdicts.\n"
    "\n"
    "forkshim report DIR shows, per frozen region, how much of it stayed "
    "shared\n"
    "in each process of a run made with --report DIR ('forkshim report "
    "--help').\n"
    "\n"
    "Exit status: COMMAND's own (forkshim execs it); 127 when COMMAND or "
    "the\n"
    "library is not found; 126 when COMMAND cannot be executed; 2 for bad\n"
    "options.  A command named doctor or report runs as 'forkshim -- "
    "doctor',\n"
    "'forkshim -- report'.\n"
    "See forkshim(1).\n";

__attribute__((noreturn, format(printf, 1, 2))) static void
usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("forkshim: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'forkshim --help' for more information.\n", stderr);
	exit(EXIT_USAGE);
}

static const char *check_level(const char *v)
{
	static const char *const levels[] = {"off", "error", "warn", "info",
	                                     "debug"};

	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
		if (strcmp(v, levels[i]) == 0)
			return v;
	usage_error("--log: '%s' is not one of off, error, warn, info, debug",
	            v);
}

static const char *check_max_regions(const char *v)
{
	unsigned long n = 0;

	for (const char *p = v; *p; p++) {
		if (*p < '0' || *p > '9' || n > MAX_REGIONS_LIMIT) {
			n = 0;
			break;
		}
		n = n * 10 + (unsigned long)(*p - '0');
	}
	if (n == 0 || n > MAX_REGIONS_LIMIT)
		usage_error("--max-regions: '%s' is not a count from 1 to %u",
		            v, MAX_REGIONS_LIMIT);
	return v;
}

/* The log file as an absolute path, since COMMAND may change directory
 * before a child execs and loads the library again; opened once here with
 * the library's own flags, so a path it cannot use fails now. */
static char *check_log_file(const char *v)
{
	char cwd[PATH_MAX], *abs;
	int fd;

	if (*v == '\0')
		usage_error("--log-file: empty path");
	if (v[0] == '/') {
		abs = strdup(v);
	} else {
		if (getcwd(cwd, sizeof(cwd)) == NULL)
			usage_error("--log-file %s: cannot get the current "
			            "directory: %s",
			            v, strerror(errno));
		if (asprintf(&abs, "%s/%s", cwd, v) < 0)
			abs = NULL;
	}
	if (abs == NULL)
		usage_error("out of memory");
	fd = open(abs, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW,
	          0600);
	if (fd < 0)
		usage_error("--log-file %s: %s", v, strerror(errno));
	close(fd);
	return abs;
}

static const char *check_guard(const char *v)
{
	if (strcmp(v, "off") != 0 && strcmp(v, "protect") != 0 &&
	    strcmp(v, "audit") != 0)
		usage_error("--guard: '%s' is not one of off, protect, audit",
		            v);
	return v;
}

/* The report directory, absolute (the command may change directory).
 * The rule, the shim's too: a missing DIR is made with mode 0700 (its
 * parent must exist); an existing one must be a directory, not a symbolic
 * link, owned by the effective uid and not writable by group or others,
 * since every file in it is read and written on the user's behalf. */
static char *check_report_dir(const char *v)
{
	char cwd[PATH_MAX], *abs;
	struct stat st;
	uid_t me = geteuid();

	if (*v == '\0')
		usage_error("--report: empty path");
	if (v[0] == '/')
		abs = strdup(v);
	else if (getcwd(cwd, sizeof(cwd)) == NULL ||
	         asprintf(&abs, "%s/%s", cwd, v) < 0)
		abs = NULL;
	if (abs == NULL)
		usage_error("--report %s: %s", v, strerror(errno));
	if (mkdir(abs, 0700) != 0 && errno != EEXIST)
		usage_error("--report %s: %s", v, strerror(errno));
	if (lstat(abs, &st) != 0)
		usage_error("--report %s: %s", v, strerror(errno));
	if (S_ISLNK(st.st_mode) || !S_ISDIR(st.st_mode) || st.st_uid != me ||
	    (st.st_mode & 022) != 0)
		usage_error(
		    "--report %s: %s is %s, owned by uid %u, mode %04o; a "
		    "report directory must be a directory owned by you (uid "
		    "%u) and not writable by group or others (or a path that "
		    "does not exist yet: it is made with mode 0700)",
		    v, abs,
		    S_ISLNK(st.st_mode)    ? "a symbolic link"
		    : !S_ISDIR(st.st_mode) ? "not a directory"
		    : st.st_uid != me      ? "not yours"
		                           : "writable by group or others",
		    (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777),
		    (unsigned)me);
	return abs;
}

static char *locate_or_exit(const char *lib_opt)
{
	char why[PATH_MAX + 256];
	char *lib = findlib_locate(lib_opt, why, sizeof(why));

	if (lib == NULL) {
		fprintf(stderr, "forkshim: library not found: %s\n", why);
		exit(EXIT_NOT_FOUND);
	}
	/* The loader splits LD_PRELOAD at spaces and colons. */
	if (strpbrk(lib, " :\t") != NULL) {
		fprintf(stderr,
		        "forkshim: %s: a path with a space or a colon cannot "
		        "be preloaded\n",
		        lib);
		exit(lib_opt ? EXIT_USAGE : EXIT_NOT_FOUND);
	}
	return lib;
}

static int print_version(const char *lib_opt)
{
	const struct forkshim_api *(*api)(unsigned);
	const char *(*version)(void);
	const struct forkshim_api *table;
	char *lib;
	void *h;

	printf("forkshim %s\n", FORKSHIM_LAUNCHER_VERSION);
	fflush(stdout);
	lib = locate_or_exit(lib_opt);
	/* Only the version is wanted here, not the library's log at load
	 * (reports about the caller's FORKSHIM_* variables, say). */
	setenv("FORKSHIM_LOG", "off", 1);
	h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		fprintf(stderr, "forkshim: cannot load %s: %s\n", lib,
		        dlerror());
		return EXIT_NOT_FOUND;
	}
	*(void **)&version = dlsym(h, "forkshim_version");
	*(void **)&api = dlsym(h, "forkshim_api");
	if (version == NULL || api == NULL) {
		fprintf(stderr, "forkshim: %s is not libforkshim\n", lib);
		return EXIT_NOT_FOUND;
	}
	table = api(FORKSHIM_ABI_VERSION);
	if (table != NULL)
		printf("libforkshim %s, ABI %u: %s\n", version(),
		       table->abi_version, lib);
	else
		printf("libforkshim %s, without ABI %d: %s\n", version(),
		       FORKSHIM_ABI_VERSION, lib);
	free(lib);
	return 0;
}

/* The length of the sanitizer runtimes LD_PRELOAD starts with (ASan's
 * must be the first library of a process: they stay in front of us). */
static size_t sanitizer_prefix(const char *list)
{
	static const char *const runtimes[] = {"libasan.", "libtsan.",
	                                       "libhwasan.", "libclang_rt."};
	size_t keep = 0, at = 0;

	for (;;) {
		size_t start = at + strspn(list + at, ": ");
		size_t len = strcspn(list + start, ": ");
		const char *base = list + start;
		int runtime = 0;

		if (len == 0)
			return keep;
		for (size_t i = len; i > 0; i--)
			if (base[i - 1] == '/') {
				base += i;
				break;
			}
		for (size_t i = 0; i < sizeof(runtimes) / sizeof(*runtimes);
		     i++)
			runtime |= strncmp(base, runtimes[i],
			                   strlen(runtimes[i])) == 0;
		if (!runtime)
			return keep;
		keep = at = start + len;
	}
}

static void prepend_preload(const char *lib)
{
	const char *old = getenv("LD_PRELOAD");
	size_t keep = old != NULL ? sanitizer_prefix(old) : 0;
	char *value;

	if (old == NULL || *old == '\0') {
		value = strdup(lib);
	} else {
		int n;

		if (keep == 0)
			n = asprintf(&value, "%s:%s", lib, old);
		else if (old[keep] == '\0')
			n = asprintf(&value, "%s:%s", old, lib);
		else /* old[keep] is a separator */
			n = asprintf(&value, "%.*s:%s:%s", (int)keep, old, lib,
			             old + keep + 1);
		if (n < 0)
			value = NULL;
	}
	if (value == NULL || setenv("LD_PRELOAD", value, 1) != 0) {
		perror("forkshim: LD_PRELOAD");
		exit(EXIT_USAGE);
	}
	free(value);
}

int main(int argc, char **argv)
{
	const char *lib_opt = NULL, *log = NULL, *max_regions = NULL;
	const char *guard = NULL;
	char *log_file = NULL, *report = NULL, *lib;
	int opt, err, version = 0;

	if (argc >= 2 && strcmp(argv[1], "doctor") == 0)
		return doctor_main(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "report") == 0)
		return report_main(argc - 1, argv + 1);

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+:h", options, NULL)) != -1) {
		switch (opt) {
		case OPT_LIB:
			lib_opt = optarg;
			break;
		case OPT_LOG:
			log = check_level(optarg);
			break;
		case OPT_LOG_FILE:
			free(log_file);
			log_file = check_log_file(optarg);
			break;
		case OPT_MAX_REGIONS:
			max_regions = check_max_regions(optarg);
			break;
		case OPT_GUARD:
			guard = check_guard(optarg);
			break;
		case OPT_REPORT:
			free(report);
			report = check_report_dir(optarg);
			break;
		case 'h':
			fputs(help_text, stdout);
			return 0;
		case OPT_VERSION:
			version = 1;
			break;
		case ':':
			usage_error("option '%s' needs a value",
			            argv[optind - 1]);
		default:
			if (optopt != 0)
				usage_error("unknown option '-%c'", optopt);
			usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (version)
		return print_version(lib_opt);
	if (optind >= argc)
		usage_error("no COMMAND given");

	lib = locate_or_exit(lib_opt);
	prepend_preload(lib);
	if ((log && setenv("FORKSHIM_LOG", log, 1) != 0) ||
	    (log_file && setenv("FORKSHIM_LOG_FILE", log_file, 1) != 0) ||
	    (max_regions &&
	     setenv("FORKSHIM_MAX_REGIONS", max_regions, 1) != 0) ||
	    (guard && setenv("FORKSHIM_GUARD", guard, 1) != 0) ||
	    (report && setenv("FORKSHIM_REPORT", report, 1) != 0)) {
		perror("forkshim: setenv");
		return EXIT_USAGE;
	}

	execvp(argv[optind], &argv[optind]);
	err = errno;
	if (err == ENOENT && strchr(argv[optind], '/') == NULL)
		fprintf(stderr, "forkshim: %s: command not found%s\n",
		        argv[optind],
		        strcmp(argv[optind], "doctor") == 0
		            ? " (for the doctor, write 'forkshim doctor "
		              "COMMAND')"
		            : "");
	else
		fprintf(stderr, "forkshim: %s: %s\n", argv[optind],
		        strerror(err));
	return err == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_EXEC;
}
