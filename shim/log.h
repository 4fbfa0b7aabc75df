/* log: "forkshim[PID]: " lines written with write(2).
 *
 * log_msg formats into a stack buffer with its own small formatter (%s %c %d
 * %u %x %p %zu %zd %ld %lu %lx %llu %%) and never allocates, so it may be
 * called from the fork path and from signal handlers.  errno is preserved.
 * Messages above the configured level are dropped.  Control bytes in %s
 * arguments are written as \xNN, so every line keeps its prefix.
 *
 * The log is descriptor 2 as it was at load (log_record_stderr), or the
 * FORKSHIM_LOG_FILE config opened (log_set_file).  Before each line the
 * log checks that its descriptor still names that file (owned.h): once the
 * program has closed it or put something else on its number, nothing more
 * is written to it, and a lost log file is said once on stderr if stderr
 * is still the one the process started with.  A log_fd assigned directly
 * (tests, the fuzzer) is taken as it is at the next line. */
#ifndef FORKSHIM_LOG_H
#define FORKSHIM_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum log_level { LOG_OFF, LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

extern int log_threshold; /* messages with level <= log_threshold pass */
extern int log_fd;

struct owned;
void log_record_stderr(void);
void log_set_file(const struct owned *o, const char *name);
/* Writes raw bytes to the log (audit records without FORKSHIM_REPORT). */
void log_write(const char *buf, size_t n);

void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Formats like log_msg into buf (always NUL-terminated); returns length. */
size_t log_format(char *buf, size_t size, const char *fmt, va_list ap);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
