/* handle: the handle's keys and tags (contract in handle.h).  Called by
 * the table; calls nothing of the shim.  Pure or read-only, no allocation,
 * no lock: async-signal-safe. */
#include "handle.h"

#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* MurmurHash3's finaliser: every input bit flips each output bit with
 * probability close to 1/2. Keys are secret random values; the handles only
 * have to resist accidents, not an attacker reading our memory. */
uint64_t handle_mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

uint32_t handle_tag_for(uint64_t key, uint32_t slot, uint32_t gen)
{
	uint64_t x =
	    handle_mix(key ^ handle_mix(((uint64_t)gen << 32 | slot) + key));
	uint32_t tag = (uint32_t)(x >> (64 - HANDLE_TAG_BITS));

	return tag != 0 ? tag : 1;
}

uint64_t handle_next_key(uint64_t key)
{
	return handle_mix(key + 0x9e3779b97f4a7c15ull);
}

int handle_made_in_line(const struct lineage *line, forkshim_handle h)
{
	uint32_t depth = __atomic_load_n(&line->depth, __ATOMIC_ACQUIRE);

	for (uint32_t i = 0; i < depth && i < LINE_DEPTH; i++) {
		uint64_t key =
		    __atomic_load_n(&line->seg[i].first, __ATOMIC_RELAXED);
		uint64_t count =
		    __atomic_load_n(&line->seg[i].count, __ATOMIC_ACQUIRE);

		for (uint64_t k = 0; k < count; k++) {
			if (handle_tag_for(key, handle_slot(h),
			                   handle_gen(h)) == handle_tag(h))
				return 1;
			key = handle_next_key(key);
		}
	}
	return 0;
}

uint64_t handle_new_key(void)
{
	uint64_t key = 0;
	struct timespec ts;

	if (getrandom(&key, sizeof(key), GRND_NONBLOCK) == sizeof(key) &&
	    key != 0)
		return key;
	/* No entropy yet (early boot): clocks, pid and an address differ
	 * between any two processes that could exchange handles. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	key = handle_mix((uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 30);
	key = handle_mix(key ^ (uint64_t)getpid() ^ (uint64_t)(uintptr_t)&key);
	return key != 0 ? key : 1;
}
