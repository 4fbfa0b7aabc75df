/* config: the FORKSHIM_* environment (contract in config.h).  Called by
 * init once, in normal context (and by the tests and the fuzzer through
 * config_parse_count); calls log and owned only.  config_load runs in
 * normal context; config_report_fd from any (fstat, open, fcntl).  It
 * allocates nothing; the strings it keeps are copies, never pointers into
 * the environment. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "owned.h"

struct config config = {
    .guard = GUARD_OFF,
    .max_regions = CONFIG_DEFAULT_REGIONS,
};

/* Copies of the values kept past load (never pointers into environ: hosts
 * reuse that block for their process title). */
static char report_path[CONFIG_PATH_MAX];
static char log_path[CONFIG_PATH_MAX];
static struct owned dir_id = OWNED_NONE;
static int dir_lost;

static const char *const level_names[] = {"off", "error", "warn", "info",
                                          "debug"};
static const char *const guard_names[] = {"off", "protect", "audit"};

static int lookup(const char *value, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(value, names[i]) == 0)
			return i;
	return -1;
}

int config_parse_count(const char *s, size_t *out)
{
	size_t v = 0;
	int over = 0;

	if (s == NULL || *s == '\0') {
		errno = EINVAL;
		return -1;
	}
	for (; *s; s++) {
		size_t d = (size_t)(*s - '0');

		if (*s < '0' || *s > '9') {
			errno = EINVAL;
			return -1;
		}
		if (v > SIZE_MAX / 10 ||
		    (v == SIZE_MAX / 10 && d > SIZE_MAX % 10))
			over = 1;
		else
			v = v * 10 + d;
	}
	if (over) {
		errno = ERANGE;
		return -1;
	}
	*out = v;
	return 0;
}

/* Copies v into buf; 0, or -1 when it does not fit. */
static int copy_value(char *buf, const char *v)
{
	size_t n = strlen(v);

	if (n >= CONFIG_PATH_MAX)
		return -1;
	memcpy(buf, v, n + 1);
	return 0;
}

/* The report directory's rule: a directory of the effective user that
 * nobody else may write into. */
static int dir_acceptable(const struct stat *st)
{
	return S_ISDIR(st->st_mode) && st->st_uid == geteuid() &&
	       (st->st_mode & 022) == 0;
}

static void octal_mode(char out[8], unsigned mode)
{
	for (int i = 3; i >= 0; i--, mode >>= 3)
		out[i] = (char)('0' + (mode & 7));
	out[4] = '\0';
}

static void refuse_dir(const char *v, const char *why)
{
	log_error("FORKSHIM_REPORT=%s %s: not used, no reports are written "
	          "(audit records go to the log); it must be an existing "
	          "directory, not a symlink, owned by uid %u (the user this "
	          "process runs as) and not writable by group or others: "
	          "make it with mktemp -d or mkdir -m 700",
	          v, why, (unsigned)geteuid());
}

/* Opens FORKSHIM_REPORT's directory at load, or says why not. */
static void open_report_dir(const char *v)
{
	struct stat st;
	char mode[8];
	int fd;

	if (dir_id.fd >= 0) /* loaded again (tests): the old one goes */
		close(dir_id.fd);
	dir_id.fd = -1;
	config.report_dir = NULL;
	if (copy_value(report_path, v) != 0) {
		log_error("FORKSHIM_REPORT is longer than %d bytes: no "
		          "reports; audit records go to the log",
		          CONFIG_PATH_MAX - 1);
		return;
	}
	if (lstat(v, &st) == 0 && S_ISLNK(st.st_mode)) {
		refuse_dir(v, "is a symlink");
		return;
	}
	fd = open(v, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		if (fd >= 0)
			close(fd);
		refuse_dir(v, errno == ENOENT    ? "does not exist"
		              : errno == ENOTDIR ? "is not a directory"
		                                 : "cannot be opened");
		return;
	}
	if (!dir_acceptable(&st)) {
		octal_mode(mode, (unsigned)(st.st_mode & 07777));
		close(fd);
		log_error("FORKSHIM_REPORT=%s is owned by uid %u, mode %s: not "
		          "used, no reports are written (audit records go to "
		          "the log); it must be a directory owned by uid %u "
		          "(the user this process runs as) and not writable by "
		          "group or others (chmod go-w), made with mktemp -d "
		          "or mkdir -m 700",
		          v, (unsigned)st.st_uid, mode, (unsigned)geteuid());
		return;
	}
	if (owned_adopt(&dir_id, fd) != 0)
		return;
	dir_lost = 0;
	config.report_dir = report_path;
}

int config_report_fd(void)
{
	struct owned again;
	struct stat st;
	int fd;

	if (config.report_dir == NULL)
		return -1;
	if (owned_still(&dir_id))
		return dir_id.fd;
	if (__atomic_load_n(&dir_lost, __ATOMIC_RELAXED))
		return -1;
	/* Closed by the program (a daemon closing everything): the path
	 * again, if it still names the very same directory, still private. */
	fd = open(report_path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0 && fstat(fd, &st) == 0 && dir_acceptable(&st) &&
	    (uint64_t)st.st_dev == dir_id.dev &&
	    (uint64_t)st.st_ino == dir_id.ino && owned_adopt(&again, fd) == 0) {
		dir_id = again;
		return again.fd;
	}
	if (fd >= 0)
		close(fd);
	if (!__atomic_exchange_n(&dir_lost, 1, __ATOMIC_RELAXED))
		log_error("FORKSHIM_REPORT=%s: the directory is no longer open "
		          "in this process and its path names another "
		          "directory now: no more reports",
		          report_path);
	return -1;
}

void config_load(void)
{
	const char *v;
	int i;

	if (getauxval(AT_SECURE)) {
		config.secure = 1;
		return;
	}
	{
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME_COARSE, &ts);
		config.loaded = (int64_t)ts.tv_sec - 1;
	}
	owned_init();
	log_record_stderr();
	/* The log goes first, so the reports below reach the right place. */
	v = secure_getenv("FORKSHIM_LOG");
	if (v != NULL) {
		i = lookup(v, level_names, 5);
		if (i >= 0)
			log_threshold = i;
	}
	const char *bad_level = (v != NULL && i < 0) ? v : NULL;

	v = secure_getenv("FORKSHIM_LOG_FILE");
	if (v != NULL && *v != '\0') {
		int fd = open(
		    v, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW,
		    0600);
		struct owned o;

		if (fd >= 0 && copy_value(log_path, v) != 0)
			log_path[0] = '\0';
		if (fd >= 0 && owned_adopt(&o, fd) == 0)
			log_set_file(&o, log_path);
		else
			log_error(
			    "FORKSHIM_LOG_FILE=%s: cannot open (errno %d); "
			    "logging to stderr",
			    v, errno);
	}
	if (bad_level != NULL)
		log_warn(
		    "FORKSHIM_LOG=%s is not one of off, error, warn, info, "
		    "debug; using warn",
		    bad_level);

	v = secure_getenv("FORKSHIM_GUARD");
	if (v != NULL) {
		i = lookup(v, guard_names, 3);
		if (i < 0)
			log_warn(
			    "FORKSHIM_GUARD=%s is not one of off, protect, "
			    "audit; using off",
			    v);
		else
			config.guard = (enum guard_mode)i;
	}

	v = secure_getenv("FORKSHIM_REPORT");
	if (v != NULL && *v != '\0')
		open_report_dir(v);

	v = secure_getenv("FORKSHIM_MAX_REGIONS");
	if (v != NULL) {
		size_t n;

		/* Digits past SIZE_MAX are a count too, above the limit. */
		if (config_parse_count(v, &n) < 0)
			n = errno == ERANGE ? SIZE_MAX : 0;
		if (n == 0) {
			log_warn("FORKSHIM_MAX_REGIONS=%s is not a positive "
			         "count; using %u",
			         v, CONFIG_DEFAULT_REGIONS);
		} else if (n > CONFIG_MAX_REGIONS) {
			log_warn("FORKSHIM_MAX_REGIONS=%s is above the limit; "
			         "using %u",
			         v, CONFIG_MAX_REGIONS);
			config.max_regions = CONFIG_MAX_REGIONS;
		} else {
			config.max_regions = n;
		}
	}
}
