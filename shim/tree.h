/* tree: the address index of frozen regions, a copy-on-write B+tree.
 *
 * Writers (tree_insert, tree_remove, tree_lookup_locked) are serialised by
 * the caller (the table lock).  They never modify a node a reader may hold:
 * every change copies the path from the leaf to the root and publishes the
 * new root with one atomic store.  Replaced nodes wait in a FIFO "limbo"
 * for TREE_GRACE further write operations before they are reused.
 *
 * tree_lookup is the reader: lock-free, allocation-free, async-signal-safe.
 * It reads the write counter before and after its descent; if fewer than
 * TREE_GRACE writes began meanwhile, no node it read can have been reused,
 * so its answer is one the tree gave at some instant of the call.  Else it
 * retries (some writer made progress).  A reader interrupting a writer on its
 * own thread sees the old or the new root, both complete.
 *
 * All state lives in caller-provided memory (struct tree_state is part of
 * the table's journalled state), so a child forked mid-write can roll back
 * by restoring that struct. */
#ifndef FORKSHIM_TREE_H
#define FORKSHIM_TREE_H

#include <stddef.h>
#include <stdint.h>

#define TREE_FANOUT 32
#define TREE_MIN 8
#define TREE_GRACE 64
#define TREE_MAX_HEIGHT 24

/* Keys first, in whole cache lines; unused keys are UINT64_MAX, so a reader
 * searches all of them without reading the count.  A leaf keeps each
 * region's end and handle side by side: one more line per lookup. */
struct tree_node {
	uint64_t key[TREE_FANOUT]; /* leaf: region start; inner: child's min */
	union {
		struct {
			uint64_t end, handle;
		} l[TREE_FANOUT];
		uint32_t child[TREE_FANOUT];
	} u;
	uint32_t count;
	uint32_t leaf;
} __attribute__((aligned(64)));

struct tree_limbo {
	uint32_t node;
	uint32_t pad;
	uint64_t op; /* the write operation that replaced it */
};

struct tree_state {
	uint64_t rootword;  /* root node | height << 32; read by readers */
	uint64_t ops;       /* write operations begun; read by readers */
	uint64_t node_bump; /* nodes [1, node_bump) have been handed out */
	uint64_t limbo_head, limbo_tail;
};

/* Nodes [0, head_nodes) live in the head array (small, beside the rest of
 * the caller's state), the others in nodes, indexed from 0 too (its first
 * entries unused), which the caller provides with tree_provide() before a
 * write that tree_wants_more() says may need it.  Until then the limbo is
 * head_limbo, a ring of head_limbo_len >= head_nodes positions; from then
 * on limbo, max_nodes positions.  max_nodes counts all nodes; node 0 is
 * never used. */
struct tree {
	struct tree_state *st;
	struct tree_node *nodes; /* NULL until provided */
	struct tree_limbo *limbo;
	struct tree_node *head;
	struct tree_limbo *head_limbo;
	uint32_t head_nodes, head_limbo_len;
	uint32_t max_nodes;
};

struct tree_entry {
	uint64_t start, end, handle;
};

/* Nodes needed for `regions` live regions, with the limbo's slack. */
size_t tree_nodes_for(size_t regions);

/* Whether the next write may need a node past the head. */
int tree_wants_more(const struct tree *t);
/* Provides nodes and limbo (max_nodes each), under the writers' lock,
 * outside a write: moves the limbo's entries there and publishes nodes for
 * the readers. */
void tree_provide(struct tree *t, struct tree_node *nodes,
                  struct tree_limbo *limbo);

/* Reader: the entry with the greatest start <= addr. 1 found, 0 none. */
int tree_lookup(const struct tree *t, uint64_t addr, struct tree_entry *out);
/* The same for a writer holding the lock (no retry needed). */
int tree_lookup_locked(const struct tree *t, uint64_t addr,
                       struct tree_entry *out);
/* Adds an entry whose start is not in the tree. 0, or -1 with ENOMEM and
 * nothing changed. */
int tree_insert(struct tree *t, const struct tree_entry *e);
/* Removes the entry starting at start (which must be present). 0, or -1
 * with ENOMEM and nothing changed. */
int tree_remove(struct tree *t, uint64_t start);

#endif
