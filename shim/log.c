/* log: the log lines (contract in log.h).  Called by every module, from
 * any context, the fork path and signal handlers included: write(2) and a
 * stack buffer only, no malloc, no lock, errno kept.  Calls nothing of the
 * shim. */
#include "log.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

int log_threshold = LOG_WARN;
int log_fd = 2;

struct out {
	char *p, *end;
	int escape; /* control bytes in %s arguments as \xNN (log lines) */
};

static void put_char(struct out *o, char c)
{
	if (o->p < o->end)
		*o->p++ = c;
}

static void put_str(struct out *o, const char *s)
{
	if (s == NULL)
		s = "(null)";
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (o->escape && (c < 0x20 || c == 0x7f)) {
			/* A value from the environment must not start a
			 * line of its own (or move the terminal). */
			put_char(o, '\\');
			put_char(o, 'x');
			put_char(o, "0123456789abcdef"[c >> 4]);
			put_char(o, "0123456789abcdef"[c & 15]);
		} else {
			put_char(o, *s);
		}
	}
}

static void put_unsigned(struct out *o, unsigned long long v, unsigned base)
{
	char digits[24];
	int n = 0;

	do {
		digits[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v != 0);
	while (n > 0)
		put_char(o, digits[--n]);
}

static void put_signed(struct out *o, long long v)
{
	if (v < 0) {
		put_char(o, '-');
		put_unsigned(o, 0ULL - (unsigned long long)v, 10);
	} else {
		put_unsigned(o, (unsigned long long)v, 10);
	}
}

static size_t format(char *buf, size_t size, int escape, const char *fmt,
                     va_list ap)
{
	struct out o = {buf, buf + size - 1, escape};

	for (; *fmt; fmt++) {
		int longs = 0, sized = 0;

		if (*fmt != '%') {
			put_char(&o, *fmt);
			continue;
		}
		fmt++;
		while (*fmt == 'l') {
			longs++;
			fmt++;
		}
		if (*fmt == 'z') {
			sized = 1;
			fmt++;
		}
		switch (*fmt) {
		case 's':
			put_str(&o, va_arg(ap, const char *));
			break;
		case 'c':
			put_char(&o, (char)va_arg(ap, int));
			break;
		case 'd':
			if (sized)
				put_signed(&o, va_arg(ap, ssize_t));
			else if (longs)
				put_signed(&o, longs > 1 ? va_arg(ap, long long)
				                         : va_arg(ap, long));
			else
				put_signed(&o, va_arg(ap, int));
			break;
		case 'u':
		case 'x': {
			unsigned base = *fmt == 'x' ? 16 : 10;

			if (sized)
				put_unsigned(&o, va_arg(ap, size_t), base);
			else if (longs > 1)
				put_unsigned(&o, va_arg(ap, unsigned long long),
				             base);
			else if (longs)
				put_unsigned(&o, va_arg(ap, unsigned long),
				             base);
			else
				put_unsigned(&o, va_arg(ap, unsigned), base);
			break;
		}
		case 'p':
			put_str(&o, "0x");
			put_unsigned(&o, (uintptr_t)va_arg(ap, void *), 16);
			break;
		case '%':
			put_char(&o, '%');
			break;
		case '\0':
			fmt--;
			break;
		default:
			put_char(&o, '%');
			put_char(&o, *fmt);
		}
	}
	*o.p = '\0';
	return (size_t)(o.p - buf);
}

size_t log_format(char *buf, size_t size, const char *fmt, va_list ap)
{
	return format(buf, size, 0, fmt, ap);
}

static size_t format_into(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	n = log_format(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char buf[1024];
	int saved = errno;
	size_t n;
	va_list ap;

	if (level == LOG_OFF || (int)level > log_threshold)
		return;
	/* The pid comes from the kernel each time: a cached one would be the
	 * parent's in a child made by _Fork or clone. */
	n = format_into(buf, sizeof(buf), "forkshim[%d]: ", (int)getpid());
	va_start(ap, fmt);
	n += format(buf + n, sizeof(buf) - n - 1, 1, fmt, ap);
	va_end(ap);
	buf[n++] = '\n';
	for (size_t done = 0; done < n;) {
		ssize_t w = write(log_fd, buf + done, n - done);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		done += (size_t)w;
	}
	errno = saved;
}
