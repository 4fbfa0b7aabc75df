/* bench_sharing: what counting a region's pages costs, per page, with the
 * two ways the kernel offers, in the same run:
 *
 *   pread    /proc/self/pagemap, 512 entries a read (what sharing.c does):
 *            present, swapped and the exclusively-mapped bit 56 per page.
 *   scan     the PAGEMAP_SCAN ioctl (Linux 6.7+) on the same file, asked
 *            for PAGE_IS_PRESENT | PAGE_IS_SWAPPED runs: resident and
 *            swapped counts only; it has no category for "mapped by this
 *            process only", so it cannot split shared from exclusive.
 *
 * Three layouts of a region (default 1 GiB): every page resident and
 * shared with a live child; 1 page in 64 resident; nothing resident.  And
 * forkshim_sharing itself on each, when the shim is preloaded.
 *
 *   bench_sharing [--mib N] [--rounds R]
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "forkshim_client.h"
#include "pmscan.h"

struct counts {
	size_t resident, shared, exclusive, swapped;
};

static size_t page;

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int by_pread(int fd, uintptr_t a, size_t pages, struct counts *c)
{
	enum { BATCH = 512 };
	uint64_t pm[BATCH];

	memset(c, 0, sizeof(*c));
	for (size_t p = 0; p < pages;) {
		size_t want = pages - p < BATCH ? pages - p : BATCH;
		ssize_t got =
		    pread(fd, pm, want * 8, (off_t)((a / page + p) * 8));

		if (got <= 0)
			return -1;
		for (size_t i = 0; i < (size_t)got / 8; i++) {
			if (pm[i] & PM_PRESENT) {
				c->resident++;
				if (pm[i] & PM_EXCLUSIVE)
					c->exclusive++;
				else
					c->shared++;
			} else if (pm[i] & PM_SWAPPED) {
				c->swapped++;
			}
		}
		p += (size_t)got / 8;
	}
	return 0;
}

static int by_scan(int fd, uintptr_t a, size_t pages, struct counts *c)
{
	struct pmscan_region vec[256];
	struct pmscan_arg arg;
	uint64_t end = a + pages * page;

	memset(c, 0, sizeof(*c));
	memset(&arg, 0, sizeof(arg));
	arg.size = sizeof(arg);
	arg.start = a;
	arg.end = end;
	arg.vec = (uintptr_t)vec;
	arg.vec_len = 256;
	arg.category_anyof_mask = PMSCAN_PRESENT | PMSCAN_SWAPPED;
	arg.return_mask = PMSCAN_PRESENT | PMSCAN_SWAPPED;
	for (;;) {
		long n = ioctl(fd, PMSCAN_IOCTL, &arg);

		if (n < 0)
			return -1;
		for (long i = 0; i < n; i++) {
			size_t k = (vec[i].end - vec[i].start) / page;

			if (vec[i].categories & PMSCAN_PRESENT)
				c->resident += k;
			else
				c->swapped += k;
		}
		if (arg.walk_end >= end)
			return 0;
		arg.start = arg.walk_end;
	}
}

static double
best_ns_per_page(int (*fn)(int, uintptr_t, size_t, struct counts *), int fd,
                 uintptr_t a, size_t pages, int rounds, struct counts *c)
{
	double best = 1e300;

	for (int r = 0; r < rounds; r++) {
		double t0 = now_ns();

		if (fn(fd, a, pages, c) != 0)
			return -1;
		double t = now_ns() - t0;

		if (t < best)
			best = t;
	}
	return best / (double)pages;
}

static const struct forkshim_api *api;
static forkshim_handle handle;

static void layout(const char *title, int fd, uintptr_t a, size_t pages,
                   int rounds)
{
	struct counts p, s;
	double tp = best_ns_per_page(by_pread, fd, a, pages, rounds, &p);
	double ts = best_ns_per_page(by_scan, fd, a, pages, rounds, &s);

	printf("%-34s pread %6.2f ns/page (%5.1f ms/GiB)  ", title, tp,
	       tp * 262144 / 1e6);
	if (ts < 0)
		printf("scan unavailable (errno %d)\n", errno);
	else
		printf("scan %6.2f ns/page  scan/pread %.3f\n", ts, ts / tp);
	printf("  %-32s pread: resident %zu shared %zu exclusive %zu; scan: "
	       "resident %zu%s\n",
	       "", p.resident, p.shared, p.exclusive, s.resident,
	       ts >= 0 && s.resident != p.resident ? "  DIFFERENT" : "");
	if (handle != 0) {
		struct forkshim_sharing sh;
		double best = 1e300;

		for (int r = 0; r < rounds; r++) {
			double t0 = now_ns();

			if (api->sharing(handle, &sh) != 0)
				return;
			double t = now_ns() - t0;

			if (t < best)
				best = t;
		}
		best /= (double)pages;
		printf("  %-32s forkshim_sharing %6.2f ns/page (%5.1f ms/GiB), "
		       "sharing/pread %.3f: resident %zu shared %zu exclusive "
		       "%zu\n",
		       "", best, best * 262144 / 1e6, best / tp, sh.resident,
		       sh.shared, sh.exclusive);
	}
}

int main(int argc, char **argv)
{
	size_t mib = 1024;
	int rounds = 7, fd, ctl[2];
	char *m;
	pid_t child;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--mib") == 0 && i + 1 < argc)
			mib = strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: %s [--mib N] [--rounds R]\n",
			        argv[0]);
			return 2;
		}
	}
	page = (size_t)sysconf(_SC_PAGESIZE);
	size_t len = mib << 20, pages = len / page;

	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
	         -1, 0);
	if (m == MAP_FAILED)
		return perror("mmap"), 1;
	madvise(m, len, MADV_NOHUGEPAGE); /* 4 KiB entries: the worst case */
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return perror("pagemap"), 1;
	printf("region %zu MiB, %zu pages of %zu bytes, best of %d rounds\n",
	       mib, pages, page, rounds);

	for (size_t i = 0; i < len; i += page)
		m[i] = 1;
	/* Frozen before the fork: see the README on freezing shared pages. */
	api = forkshim_client_get();
	if (api != NULL)
		handle = api->freeze(m, len, "bench", 0);
	if (pipe(ctl) != 0)
		return perror("pipe"), 1;
	child = fork();
	if (child == 0) {
		char b;

		close(ctl[1]);
		(void)!read(ctl[0], &b, 1); /* hold the pages until told */
		_exit(0);
	}
	close(ctl[0]);
	layout("all resident, shared with a child", fd, (uintptr_t)m, pages,
	       rounds);

	close(ctl[1]);
	waitpid(child, NULL, 0);

	for (size_t i = 0; i < len; i += page)
		if ((i / page) % 64 != 0)
			madvise(m + i, page, MADV_DONTNEED);
	layout("1 page in 64 resident", fd, (uintptr_t)m, pages, rounds);
	madvise(m, len, MADV_DONTNEED);
	layout("nothing resident", fd, (uintptr_t)m, pages, rounds);
	return 0;
}
