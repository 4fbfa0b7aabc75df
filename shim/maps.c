/* maps: parsing /proc/self/maps (contract in maps.h): no malloc, no lock,
 * no stdio. */
#include "maps.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const char *parse_hex(const char *s, uint64_t *v)
{
	*v = 0;
	for (;; s++) {
		unsigned d;

		if (*s >= '0' && *s <= '9')
			d = (unsigned)(*s - '0');
		else if (*s >= 'a' && *s <= 'f')
			d = (unsigned)(*s - 'a' + 10);
		else
			return s;
		*v = *v << 4 | d;
	}
}

static int parse_area(const char *line, struct maps_area *a)
{
	const char *s = parse_hex(line, &a->start);

	if (*s != '-')
		return -1;
	s = parse_hex(s + 1, &a->end);
	if (s[0] != ' ' || !s[1] || !s[2] || !s[3] || !s[4])
		return -1;
	a->prot = (s[1] == 'r' ? PROT_READ : 0) |
	          (s[2] == 'w' ? PROT_WRITE : 0) |
	          (s[3] == 'x' ? PROT_EXEC : 0);
	a->private_ = s[4] == 'p';
	return 0;
}

long maps_each(void (*fn)(const struct maps_area *, void *), void *arg)
{
	char buf[8192];
	size_t have = 0;
	long lines = 0;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	for (;;) {
		ssize_t r = read(fd, buf + have, sizeof(buf) - 1 - have);
		char *line = buf, *nl;

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		have += (size_t)r;
		buf[have] = '\0';
		while ((nl = memchr(line, '\n', have - (size_t)(line - buf)))) {
			struct maps_area a;

			*nl = '\0';
			if (parse_area(line, &a) == 0)
				fn(&a, arg);
			lines++;
			line = nl + 1;
		}
		have -= (size_t)(line - buf);
		memmove(buf, line, have);
		if (have == sizeof(buf) - 1)
			have = 0; /* a line longer than the buffer: drop it */
	}
	close(fd);
	return lines;
}
