/* handle: the 64-bit handle, its fields, and the lineage keys its tag proves.
 *
 *   bits  0..23  slot   index in the table (capacity <= 2^24)
 *   bits 24..39  gen    how many times this process's line has filled the
 *                       slot, 1..65535 (0 is never produced)
 *   bits 40..63  tag    24 bits of a keyed hash of (key, slot, gen), never 0
 *
 * Each process uses one random 64-bit key at a time and takes a fresh one
 * before its first freeze after a fork (parent) or after its birth (child),
 * so no two processes of a family make tags with the same key.  The keys of
 * a process's line (its ancestors' keys up to each fork on the way to it,
 * and its own) sit in a ring of HANDLE_KEYS; a handle whose tag matches one
 * of them for its slot and gen was made in this line.  All functions here
 * are pure or read-only: async-signal-safe. */
#ifndef FORKSHIM_HANDLE_H
#define FORKSHIM_HANDLE_H

#include <stdint.h>

#include "forkshim.h"

#define HANDLE_SLOT_BITS 24
#define HANDLE_GEN_BITS 16
#define HANDLE_TAG_BITS 24
#define HANDLE_SLOT_MASK ((1ull << HANDLE_SLOT_BITS) - 1)
#define HANDLE_GEN_MAX ((1u << HANDLE_GEN_BITS) - 1)
#define HANDLE_KEYS 256

struct keyring {
	uint64_t count; /* keys ever pushed; the newest is current */
	uint64_t key[HANDLE_KEYS];
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

/* Whether the tag of h was made with one of the line's keys. */
int handle_made_in_line(const struct keyring *ring, forkshim_handle h);

/* A fresh random key (getrandom, or a mix of clocks and ids). */
uint64_t handle_new_key(void);

#endif
