/* fuzz_handles: arbitrary 64-bit values against arbitrary table states.
 *
 * The input is a list of 9-byte steps: an operation byte and a 64-bit
 * value.  Operations freeze and thaw regions of a 16-slot pool (so the
 * table's slots fill, empty, and come back with new generations; run with
 * FORKSHIM_MAX_REGIONS=32, which run.sh sets, the slots are reused
 * constantly) and throw values at deref, thaw, info, visible and find: raw
 * values, live handles with bits flipped, values aimed at real slots.
 * Every answer is checked against a model:
 *   a value equal to a live handle resolves to exactly its region; any other
 *   value fails with EBADF, ENOENT or ESTALE and changes nothing;
 *   0, a slot past the capacity and generation 0 are EBADF;
 *   a handle this process thawed (kept across inputs) is ESTALE for ever.
 * Each input ends by thawing what it froze. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forkshim.h"

#define REGIONS 16
#define SPAN 4096
#define GRAVE 256 /* thawed handles remembered */
#define SLOT_BITS 24
#define GEN_MASK 0xffffull

static unsigned char pool[REGIONS * SPAN] __attribute__((aligned(4096)));
static struct {
	forkshim_handle h;
	size_t len;
	unsigned freezes;
} live[REGIONS];
static forkshim_handle grave[GRAVE];
static unsigned grave_next;
static size_t capacity = 1u << 20;

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "fuzz_handles: " __VA_ARGS__);         \
			fputc('\n', stderr);                                   \
			abort();                                               \
		}                                                              \
	} while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *cap = getenv("FORKSHIM_MAX_REGIONS");

	(void)argc;
	(void)argv;
	if (cap != NULL && atol(cap) > 0)
		capacity = (size_t)atol(cap);
	return 0;
}

static int live_index(forkshim_handle v)
{
	for (int k = 0; k < REGIONS; k++)
		if (live[k].h != 0 && live[k].h == v)
			return k;
	return -1;
}

static int buried(forkshim_handle v)
{
	for (unsigned i = 0; i < GRAVE; i++)
		if (grave[i] != 0 && grave[i] == v)
			return 1;
	return 0;
}

/* What the table must say about v; checks deref and info. */
static void judge(forkshim_handle v)
{
	int k = live_index(v);
	struct forkshim_info info;
	size_t len = 0;
	const void *p;
	int err;

	errno = 0;
	p = forkshim_deref(v, &len);
	err = errno;
	if (k >= 0) {
		CHECK(p == pool + k * SPAN && len == live[k].len,
		      "live %#llx: deref %p len %zu errno %d",
		      (unsigned long long)v, p, len, err);
		CHECK(forkshim_info(v, &info) == 0 &&
		          info.freezes == live[k].freezes && info.addr == p &&
		          info.len == len,
		      "live %#llx: info", (unsigned long long)v);
		return;
	}
	CHECK(p == NULL, "%#llx resolved to %p; no live region has it",
	      (unsigned long long)v, p);
	CHECK(err == EBADF || err == ENOENT || err == ESTALE, "%#llx: errno %d",
	      (unsigned long long)v, err);
	if (v == 0 || (v & ((1ull << SLOT_BITS) - 1)) >= capacity ||
	    ((v >> SLOT_BITS) & GEN_MASK) == 0)
		CHECK(err == EBADF, "malformed %#llx: errno %d, not EBADF",
		      (unsigned long long)v, err);
	else if (buried(v))
		CHECK(err == ESTALE, "thawed %#llx: errno %d, not ESTALE",
		      (unsigned long long)v, err);
	errno = 0;
	CHECK(forkshim_info(v, &info) == -1 && errno == err,
	      "%#llx: info errno %d, deref %d", (unsigned long long)v, errno,
	      err);
	errno = 0;
	CHECK(forkshim_visible(v, 0) == -1 && errno == err,
	      "%#llx: visible errno %d, deref %d", (unsigned long long)v, errno,
	      err);
}

static void bury(forkshim_handle h)
{
	grave[grave_next++ % GRAVE] = h;
}

static void freeze(int k, size_t len)
{
	forkshim_handle h;

	errno = 0;
	h = forkshim_freeze(pool + k * SPAN, len, "fuzz", 0);
	if (live[k].h != 0 && live[k].len == len) {
		CHECK(h == live[k].h, "identical refreeze gave %#llx errno %d",
		      (unsigned long long)h, errno);
		live[k].freezes++;
	} else if (live[k].h != 0) {
		CHECK(h == 0 && errno == EEXIST, "overlap: %#llx errno %d",
		      (unsigned long long)h, errno);
	} else if (h == 0) {
		/* Only a full table may refuse. */
		CHECK(errno == ENOMEM && capacity <= REGIONS, "freeze errno %d",
		      errno);
	} else {
		CHECK(live_index(h) < 0 && !buried(h),
		      "a fresh handle %#llx was handed out before",
		      (unsigned long long)h);
		live[k].h = h;
		live[k].len = len;
		live[k].freezes = 1;
	}
}

static void thaw(forkshim_handle v)
{
	int k = live_index(v), rc, err;

	if (k < 0) {
		errno = 0;
		forkshim_deref(v, NULL);
		err = errno;
		errno = 0;
		rc = forkshim_thaw(v);
		CHECK(rc == -1 && errno == err,
		      "thaw of dead %#llx: %d errno %d, deref said %d",
		      (unsigned long long)v, rc, errno, err);
		return;
	}
	CHECK(forkshim_thaw(v) == 0, "thaw of live %#llx: errno %d",
	      (unsigned long long)v, errno);
	if (--live[k].freezes == 0) {
		bury(v);
		live[k].h = 0;
	}
	judge(v);
}

static void find(int k, uint64_t v)
{
	size_t off = (size_t)(v % SPAN), len = 1 + (size_t)(v >> 16) % SPAN;
	forkshim_handle h;

	if (off + len > SPAN)
		len = SPAN - off;
	errno = 0;
	h = forkshim_find(pool + k * SPAN + off, len);
	if (live[k].h != 0 && off + len <= live[k].len)
		CHECK(h == live[k].h, "find in region %d: %#llx errno %d", k,
		      (unsigned long long)h, errno);
	else
		CHECK(h == 0 && errno == ENOENT,
		      "find outside regions: %#llx errno %d",
		      (unsigned long long)h, errno);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	for (size_t at = 0; at + 9 <= size; at += 9) {
		uint64_t v;
		int k;

		memcpy(&v, data + at + 1, sizeof(v));
		k = (int)(v % REGIONS);
		switch (data[at] % 8) {
		case 0:
			freeze(k, 1 + (size_t)(v >> 8) % SPAN);
			break;
		case 1:
			if (live[k].h != 0)
				thaw(live[k].h);
			break;
		case 2:
			judge(v);
			break;
		case 3: /* a live (or dead) handle with bits flipped */
			judge((live[k].h ? live[k].h : grave[v % GRAVE]) ^
			      (v >> 4));
			break;
		case 4:
			thaw(v);
			break;
		case 5: /* aimed at a real slot */
			judge((v & ~((1ull << SLOT_BITS) - 1)) |
			      (v % (capacity < 64 ? capacity : 64)));
			break;
		case 6:
			find(k, v >> 4);
			break;
		default:
			judge(grave[v % GRAVE]);
		}
	}
	for (int k = 0; k < REGIONS; k++)
		while (live[k].h != 0)
			thaw(live[k].h);
	return 0;
}
