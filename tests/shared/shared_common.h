/* Helpers of the shared-region tests and their worker program: the byte
 * pattern, a checksum, tokens in hex, the memfd mappings of this process,
 * and every way to write a frozen shared region. */
#ifndef SHARED_COMMON_H
#define SHARED_COMMON_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "forkshim.h"

static inline void fill(unsigned char *p, size_t len, unsigned seed)
{
	uint64_t *w = (uint64_t *)p;

	for (size_t i = 0; i < len / 8; i++)
		w[i] = (i + 1) * 0x9e3779b97f4a7c15ull ^ seed;
	for (size_t i = len / 8 * 8; i < len; i++)
		p[i] = (unsigned char)(i ^ seed);
}

static inline uint64_t checksum(const void *p, size_t len)
{
	const unsigned char *b = p;
	uint64_t a = 1, s = 0, w;
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		memcpy(&w, b + i, 8);
		a += w;
		s += a;
	}
	for (; i < len; i++) {
		a += b[i];
		s += a;
	}
	return a ^ (s << 1) ^ len;
}

static inline void token_to_hex(const struct forkshim_token *t, char *out)
{
	static const char d[] = "0123456789abcdef";

	for (int i = 0; i < FORKSHIM_TOKEN_SIZE; i++) {
		out[2 * i] = d[t->bytes[i] >> 4];
		out[2 * i + 1] = d[t->bytes[i] & 15];
	}
	out[2 * FORKSHIM_TOKEN_SIZE] = '\0';
}

static inline int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static inline int token_from_hex(const char *s, struct forkshim_token *t)
{
	if (strlen(s) != 2 * FORKSHIM_TOKEN_SIZE)
		return -1;
	for (int i = 0; i < FORKSHIM_TOKEN_SIZE; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		t->bytes[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

/* Mappings of this process backed by a region memfd (not the directory). */
static inline int memfd_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int n = 0;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, "/memfd:") != NULL &&
		    strstr(line, "forkshim-dir") == NULL)
			n++;
	fclose(f);
	return n;
}

enum {
	WROTE_STORE = 1,
	WROTE_MPROTECT = 2,
	WROTE_FD = 4,
	WROTE_PWRITE = 8,
	WROTE_MEM = 16,
	WROTE_BYTES = 32 /* the checksum changed */
};

/* Tries every write path on [p, p+len) of a frozen shared region: a store
 * (in a forked child: it must die of SIGSEGV), mprotect to writable, a
 * write through /proc/self/fd/N of each memfd this process holds (and of
 * the mapping's own file, through /proc/self/map_files), pwrite on them,
 * and a write through /proc/self/mem.  Returns the WROTE_* bits of the
 * paths that did not fail (0: every one was refused). */
static inline int write_paths(const void *p, size_t len)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	uintptr_t base = (uintptr_t)p / pg * pg;
	uint64_t before = checksum(p, len);
	int wrote = 0, st = 0, fd;
	char path[300], target[256];
	pid_t pid = fork();

	if (pid == 0) {
		signal(SIGSEGV, SIG_DFL);
		*(volatile unsigned char *)p = 1;
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFSIGNALED(st) ||
	    WTERMSIG(st) != SIGSEGV)
		wrote |= WROTE_STORE;
	if (mprotect((void *)base, pg, PROT_READ | PROT_WRITE) == 0)
		wrote |= WROTE_MPROTECT;

	/* Every memfd descriptor this process has, and the mapping's file. */
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int fds[64], n = 0;

	while (d != NULL && (de = readdir(d)) != NULL && n < 62) {
		ssize_t k;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
		k = readlink(path, target, sizeof(target) - 1);
		if (k <= 0)
			continue;
		target[k] = '\0';
		if (strstr(target, "/memfd:") != NULL &&
		    strstr(target, "forkshim-dir") == NULL)
			fds[n++] = atoi(de->d_name);
	}
	if (d != NULL)
		closedir(d);
	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx",
	         (unsigned long)base, (unsigned long)(base + pg));
	{
		FILE *m = fopen("/proc/self/maps", "r");
		char line[512];
		unsigned long a, b;

		while (m != NULL && fgets(line, sizeof(line), m) != NULL)
			if (sscanf(line, "%lx-%lx", &a, &b) == 2 && a <= base &&
			    base < b) {
				snprintf(path, sizeof(path),
				         "/proc/self/map_files/%lx-%lx", a, b);
				break;
			}
		if (m != NULL)
			fclose(m);
	}
	fd = open(path, O_RDWR);
	if (fd >= 0)
		fds[n++] = fd;
	for (int i = 0; i < n; i++) {
		char c = 1;

		if (pwrite(fds[i], &c, 1, 4096) >= 0)
			wrote |= WROTE_PWRITE;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fds[i]);
		int w = open(path, O_WRONLY);

		if (w >= 0) {
			if (lseek(w, 4096, SEEK_SET) == 4096 &&
			    write(w, &c, 1) >= 0)
				wrote |= WROTE_FD;
			close(w);
		}
	}
	if (fd >= 0)
		close(fd);
	fd = open("/proc/self/mem", O_RDWR);
	if (fd >= 0) {
		char c = 1;

		if (pwrite(fd, &c, 1, (off_t)(uintptr_t)p) >= 0)
			wrote |= WROTE_MEM;
		close(fd);
	}
	if (checksum(p, len) != before)
		wrote |= WROTE_BYTES;
	return wrote;
}

#endif
