/* fuzz_tokens: arbitrary 64-byte tokens and bit flips of real ones must
 * map nothing (SHARED.md: a forged, corrupted or replayed token never maps
 * anything).
 *
 * At start-up the target freezes two shared regions (one by forkshim_alloc,
 * one by a copy) and keeps their tokens, and a third it thaws (a replay).
 * Each input is a mode byte, then either a raw token (the next 64 bytes,
 * padded with zeros) or a list of bit positions to flip in one of the real
 * tokens.  Every import must fail with EBADF, ESTALE or ENOENT and add no
 * mapping, unless the bytes are exactly a live real token, which must map
 * its region's bytes (then it is released).  The mappings are counted from
 * /proc/self/maps every 64 inputs and at the end of each real import. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "forkshim.h"

#define LEN (64 * 1024 + 5)

static struct forkshim_token live[2], dead;
static unsigned char *bytes[2];
static int maps_at_start = -1;
static unsigned long inputs;

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "fuzz_tokens: " __VA_ARGS__);          \
			fputc('\n', stderr);                                   \
			abort();                                               \
		}                                                              \
	} while (0)

static int maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int n = 0;

	CHECK(f != NULL, "cannot read /proc/self/maps");
	while (fgets(line, sizeof(line), f) != NULL)
		n++;
	fclose(f);
	return n;
}

static void make(int i, int by_alloc, struct forkshim_token *tok)
{
	unsigned char *p;
	forkshim_handle h;

	if (by_alloc) {
		p = forkshim_alloc(LEN, "fuzz");
	} else {
		p = mmap(NULL, LEN, PROT_READ | PROT_WRITE,
		         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		CHECK(p != MAP_FAILED, "mmap");
	}
	CHECK(p != NULL, "forkshim_alloc: %s", strerror(errno));
	for (size_t k = 0; k < LEN; k++)
		p[k] = (unsigned char)(k * 31 + (size_t)i);
	h = forkshim_freeze(p, LEN, "fuzz", FORKSHIM_SHARED);
	CHECK(h != 0, "freeze shared: %s", strerror(errno));
	CHECK(forkshim_export(h, tok) == 0, "export: %s", strerror(errno));
	if (i >= 0)
		bytes[i] = p;
	else
		CHECK(forkshim_thaw(h) == 0, "thaw");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	make(0, 1, &live[0]);
	make(1, 0, &live[1]);
	make(-1, 1, &dead);
	return 0;
}

static void try_token(const struct forkshim_token *t)
{
	int real = -1;
	size_t len = 0;
	const void *p;
	int before = (inputs % 64 == 0) ? maps() : -1;

	for (int i = 0; i < 2; i++)
		if (memcmp(t, &live[i], sizeof(*t)) == 0)
			real = i;
	p = forkshim_import(t, 0, &len);
	if (real >= 0) {
		CHECK(p != NULL, "a real token failed: %s", strerror(errno));
		CHECK(len == LEN && memcmp(p, bytes[real], LEN) == 0,
		      "a real token mapped other bytes");
		CHECK(forkshim_release(p) == 0, "release");
		return;
	}
	CHECK(p == NULL, "a forged token mapped %p (%zu bytes)", p, len);
	CHECK(errno == EBADF || errno == ESTALE || errno == ENOENT,
	      "a forged token: errno %d", errno);
	if (before >= 0)
		CHECK(maps() == before, "a failed import left a mapping");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct forkshim_token t;

	inputs++;
	if (size == 0)
		return 0;
	memset(&t, 0, sizeof(t));
	switch (data[0] % 4) {
	case 0: /* a raw token */
		memcpy(t.bytes, data + 1,
		       size - 1 < sizeof(t) ? size - 1 : sizeof(t));
		break;
	case 1: /* the thawed token, with flips */
	case 2: /* a live token, with flips */
	case 3:
		t = data[0] % 4 == 1 ? dead : live[data[0] % 4 - 2];
		for (size_t i = 1; i < size; i++)
			t.bytes[(data[i] >> 3) % sizeof(t)] ^=
			    (unsigned char)(1u << (data[i] & 7));
		break;
	}
	try_token(&t);
	if (maps_at_start < 0)
		maps_at_start = maps();
	return 0;
}
