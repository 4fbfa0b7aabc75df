/* handle: the 64-bit handle, its fields, and the keys its tag proves.
 *
 *   bits  0..23  slot   index in the table (capacity <= 2^24)
 *   bits 24..39  gen    how many times this process's line has filled the
 *                       slot, 1..65535 (0 is never produced)
 *   bits 40..63  tag    24 bits of a keyed hash of (key, slot, gen), never 0
 *
 * A process makes tags with one 64-bit key at a time.  A child starts a
 * segment of its own with a fresh random key before its first freeze; a
 * parent that forked since its last freeze, or a slot whose generation
 * wraps, moves to the next key of its segment, key' = next(key).  So no two
 * processes of a family ever share a key, and the keys of a process's line
 * are exactly: for each ancestor, the first `count` keys of its segment as
 * they stood at the fork towards us, then our own.  A handle whose tag
 * matches one of those keys for its slot and gen was made in this line.
 * The check costs one hash per key of the line; memory is one segment per
 * generation of the family.  All functions here are read-only or pure:
 * async-signal-safe. */
#ifndef FORKSHIM_HANDLE_H
#define FORKSHIM_HANDLE_H

#include <stdint.h>

#include "forkshim.h"

#define HANDLE_SLOT_BITS 24
#define HANDLE_GEN_BITS 16
#define HANDLE_TAG_BITS 24
#define HANDLE_SLOT_MASK ((1ull << HANDLE_SLOT_BITS) - 1)
#define HANDLE_GEN_MAX ((1u << HANDLE_GEN_BITS) - 1)
#define LINE_DEPTH 64 /* segments kept: generations of the family */

struct lineage {
	uint32_t depth;   /* segments in use; the last one is ours */
	uint32_t dropped; /* older segments forgotten past LINE_DEPTH */
	struct {
		uint64_t first; /* the segment's first key */
		uint64_t count; /* keys of it in this line */
	} seg[LINE_DEPTH];
};

static inline uint32_t handle_slot(forkshim_handle h)
{
	return (uint32_t)(h & HANDLE_SLOT_MASK);
}

static inline uint32_t handle_gen(forkshim_handle h)
{
	return (uint32_t)(h >> HANDLE_SLOT_BITS) & HANDLE_GEN_MAX;
}

static inline uint32_t handle_tag(forkshim_handle h)
{
	return (uint32_t)(h >> (HANDLE_SLOT_BITS + HANDLE_GEN_BITS));
}

static inline forkshim_handle handle_make(uint32_t slot, uint32_t gen,
                                          uint32_t tag)
{
	return (forkshim_handle)slot |
	       (forkshim_handle)gen << HANDLE_SLOT_BITS |
	       (forkshim_handle)tag << (HANDLE_SLOT_BITS + HANDLE_GEN_BITS);
}

/* The tag a process with `key` gives to (slot, gen). Never 0. */
uint32_t handle_tag_for(uint64_t key, uint32_t slot, uint32_t gen);

/* The key after `key` in a segment. */
uint64_t handle_next_key(uint64_t key);

/* Whether the tag of h was made with one of the line's keys. */
int handle_made_in_line(const struct lineage *line, forkshim_handle h);

/* MurmurHash3's finaliser (every input bit flips each output bit with
 * probability close to 1/2); pure, signal-safe. */
uint64_t handle_mix(uint64_t x);

/* A fresh random key (getrandom, or a mix of clocks and ids). */
uint64_t handle_new_key(void);

#endif
