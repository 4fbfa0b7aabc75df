/* The address index under many regions: find and overlap checks agree with
 * a plain model through inserts in every order and thaws that merge and
 * split tree nodes.  (A search that could not reach a node's last key once
 * made every 32nd region invisible to find and let overlaps in.) */
#include "common.h"

#include <stdlib.h>

enum { UNIT = 64, COUNT = 20000 };

static unsigned char *arena;
static forkshim_handle handles[COUNT];

static void setup(void)
{
	arena = map_pages(COUNT * UNIT / page_size() + 1);
	memset(handles, 0, sizeof(handles));
}

static void teardown(void)
{
	for (size_t i = 0; i < COUNT; i++)
		if (handles[i] != 0)
			forkshim_thaw(handles[i]);
	unmap_pages(arena, COUNT * UNIT / page_size() + 1);
}

TestSuite(index, .init = setup, .fini = teardown);

/* Region i is [arena + i*UNIT, +UNIT/2): the gaps between regions must
 * never be found. */
static void freeze_one(size_t i)
{
	handles[i] = forkshim_freeze(arena + i * UNIT, UNIT / 2, NULL, 0);
	cr_assert(handles[i] != 0, "freeze %zu: %s", i, strerror(errno));
}

static size_t check_model(void)
{
	size_t wrong = 0;

	for (size_t i = 0; i < COUNT; i++) {
		forkshim_handle in = forkshim_find(arena + i * UNIT + 3, 5);
		forkshim_handle gap =
		    forkshim_find(arena + i * UNIT + UNIT / 2, 1);

		if (in != handles[i] || (handles[i] == 0 && errno != ENOENT))
			wrong++;
		if (gap != 0 || errno != ENOENT)
			wrong++;
	}
	return wrong;
}

static size_t *shuffled(unsigned seed)
{
	size_t *order = malloc(COUNT * sizeof(*order));

	cr_assert(order != NULL);
	for (size_t i = 0; i < COUNT; i++)
		order[i] = i;
	srand(seed);
	for (size_t i = COUNT - 1; i > 0; i--) {
		size_t j = (size_t)rand() % (i + 1), tmp = order[i];

		order[i] = order[j];
		order[j] = tmp;
	}
	return order;
}

Test(index, find_sees_every_region_frozen_in_address_order)
{
	for (size_t i = 0; i < COUNT; i++)
		freeze_one(i);
	cr_expect_eq(check_model(), 0);
}

Test(index, find_sees_every_region_frozen_in_reverse_order)
{
	for (size_t i = COUNT; i-- > 0;)
		freeze_one(i);
	cr_expect_eq(check_model(), 0);
}

Test(index, find_agrees_with_the_model_through_random_freezes_and_thaws)
{
	size_t *order = shuffled(7);

	for (size_t i = 0; i < COUNT; i++)
		freeze_one(order[i]);
	cr_expect_eq(check_model(), 0, "after random freezes");
	/* Thaw two thirds in another random order: nodes merge and share. */
	free(order);
	order = shuffled(11);
	for (size_t i = 0; i < COUNT * 2 / 3; i++) {
		cr_assert_eq(forkshim_thaw(handles[order[i]]), 0);
		handles[order[i]] = 0;
	}
	cr_expect_eq(check_model(), 0, "after random thaws");
	for (size_t i = 0; i < COUNT * 2 / 3; i += 2)
		freeze_one(order[i]);
	cr_expect_eq(check_model(), 0, "after refreezing half of them");
	free(order);
}

Test(index, overlaps_are_refused_next_to_every_region)
{
	size_t accepted = 0;

	for (size_t i = 0; i < COUNT; i++)
		freeze_one(i);
	for (size_t i = 0; i < COUNT; i++) {
		/* Straddles the end of region i into its gap. */
		forkshim_handle h = forkshim_freeze(arena + i * UNIT + UNIT / 4,
		                                    UNIT / 2, NULL, 0);

		if (h != 0 || errno != EEXIST) {
			accepted++;
			if (h != 0)
				forkshim_thaw(h);
		}
	}
	cr_expect_eq(accepted, 0, "%zu overlapping freezes were not EEXIST",
	             accepted);
}
