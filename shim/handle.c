#include "handle.h"

#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* MurmurHash3's finaliser: every input bit flips each output bit with
 * probability close to 1/2. Keys are secret random values; the handles only
 * have to resist accidents, not an attacker reading our memory. */
static uint64_t mix(uint64_t x)
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
	uint64_t x = mix(key ^ mix(((uint64_t)gen << 32 | slot) + key));
	uint32_t tag = (uint32_t)(x >> (64 - HANDLE_TAG_BITS));

	return tag != 0 ? tag : 1;
}

int handle_made_in_line(const struct keyring *ring, forkshim_handle h)
{
	uint64_t count = __atomic_load_n(&ring->count, __ATOMIC_ACQUIRE);
	uint64_t first = count > HANDLE_KEYS ? count - HANDLE_KEYS : 0;

	for (uint64_t i = first; i < count; i++) {
		uint64_t key = __atomic_load_n(&ring->key[i % HANDLE_KEYS],
		                               __ATOMIC_RELAXED);

		if (handle_tag_for(key, handle_slot(h), handle_gen(h)) ==
		    handle_tag(h))
			return 1;
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
	key = mix((uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 30);
	key = mix(key ^ (uint64_t)getpid() ^ (uint64_t)(uintptr_t)&key);
	return key != 0 ? key : 1;
}
