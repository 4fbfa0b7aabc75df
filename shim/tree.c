/* tree: the copy-on-write B+tree of region addresses (contract in
 * tree.h).  Called by the table only (writers under its lock, the lookup
 * lock-free from any context); calls nothing of the shim.  No malloc: its
 * nodes live in the table's mapping. */
#include "tree.h"

#include <errno.h>
#include <string.h>

#define LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define ROOT(rw) ((uint32_t)(rw))
#define HEIGHT(rw) ((uint32_t)((rw) >> 32))

size_t tree_nodes_for(size_t regions)
{
	/* Non-root nodes keep at least TREE_MIN entries, except the one right
	 * split per level that appends make; limbo holds at most the nodes of
	 * TREE_GRACE operations. */
	size_t leaves = regions / TREE_MIN + TREE_MAX_HEIGHT;

	return leaves + leaves / (TREE_MIN - 1) +
	       (size_t)TREE_GRACE * (2 * TREE_MAX_HEIGHT + 4) + 64;
}

/* Index of the last key <= x in key[0..count), or -1. */
static int last_le(const uint64_t *key, uint32_t count, uint64_t x)
{
	int lo = 0, hi = (int)count; /* answer in [lo-1, hi-1] */

	while (lo < hi) {
		int mid = (lo + hi) / 2;

		if (LOAD(&key[mid]) <= x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo - 1;
}

/* How many of a node's keys are <= x: a branch-free binary search over all
 * TREE_FANOUT keys (the unused ones are UINT64_MAX). */
static unsigned keys_le(const uint64_t *key, uint64_t x)
{
	unsigned base = 0;

	for (unsigned half = TREE_FANOUT / 2; half > 0; half /= 2)
		base += LOAD(&key[base + half - 1]) <= x ? half : 0;
	/* The halves add up to TREE_FANOUT - 1: the last key is still open. */
	return base + (LOAD(&key[base]) <= x);
}

/* A node's lines are fetched all at once, before the search needs them:
 * keys and children (inner), or keys and every end/handle pair (leaf), so
 * a level costs about one memory latency instead of two. */
static void prefetch_node(const struct tree_node *node, int leaf)
{
	const char *p = (const char *)node;
	size_t len =
	    leaf ? sizeof(*node)
	         : offsetof(struct tree_node, u) + sizeof(node->u.child);

	for (size_t off = 0; off < len; off += 64)
		__builtin_prefetch(p + off);
}

/* Node n, or NULL when it lies past the head and the rest is not there
 * (only a reader going through reused nodes can ask for one). */
static struct tree_node *node_at(const struct tree *t, uint32_t n)
{
	struct tree_node *rest;

	if (n < t->head_nodes)
		return &t->head[n];
	rest = __atomic_load_n(&t->nodes, __ATOMIC_ACQUIRE);
	return rest != NULL ? &rest[n] : NULL;
}

/* Limbo position i (writers only).  Until the rest is provided the limbo
 * is the head's ring: it holds retired nodes, each once, so no more than
 * the nodes handed out, which are head nodes. */
static struct tree_limbo *limbo_at(const struct tree *t, uint64_t i)
{
	if (t->limbo != NULL)
		return &t->limbo[i % t->max_nodes];
	return &t->head_limbo[i % t->head_limbo_len];
}

int tree_wants_more(const struct tree *t)
{
	/* A write takes at most 2 * height + 3 nodes (node_reserve's need). */
	uint64_t need = 2 * (uint64_t)HEIGHT(t->st->rootword) + 3;

	return t->nodes == NULL && t->max_nodes > t->head_nodes &&
	       t->st->node_bump + need > t->head_nodes;
}

void tree_provide(struct tree *t, struct tree_node *nodes,
                  struct tree_limbo *limbo)
{
	const struct tree_state *st = t->st;

	for (uint64_t i = st->limbo_head; i != st->limbo_tail; i++)
		limbo[i % t->max_nodes] = t->head_limbo[i % t->head_limbo_len];
	t->limbo = limbo;
	__atomic_store_n(&t->nodes, nodes, __ATOMIC_RELEASE);
}

/* Descends from rootword; every value read is checked, so a descent through
 * reused nodes stays in bounds (the caller discards its answer). */
static int descend(const struct tree *t, uint64_t rw, uint64_t addr,
                   struct tree_entry *out)
{
	uint32_t n = ROOT(rw), height = HEIGHT(rw);

	if (n == 0 || n >= t->max_nodes || height == 0 ||
	    height > TREE_MAX_HEIGHT)
		return 0;
	for (uint32_t level = 1;; level++) {
		const struct tree_node *node = node_at(t, n);
		unsigned i;

		if (node == NULL)
			return 0;
		prefetch_node(node, level == height);
		i = keys_le(node->key, addr);
		if (i == 0)
			return 0;
		i--;
		if (level == height) {
			out->start = LOAD(&node->key[i]);
			out->end = LOAD(&node->u.l[i].end);
			out->handle = LOAD(&node->u.l[i].handle);
			return 1;
		}
		n = LOAD(&node->u.child[i]);
		if (n == 0 || n >= t->max_nodes)
			return 0;
	}
}

int tree_lookup(const struct tree *t, uint64_t addr, struct tree_entry *out)
{
	for (;;) {
		uint64_t before =
		    __atomic_load_n(&t->st->ops, __ATOMIC_ACQUIRE);
		uint64_t rw =
		    __atomic_load_n(&t->st->rootword, __ATOMIC_ACQUIRE);
		int found = descend(t, rw, addr, out);

		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (LOAD(&t->st->ops) - before < TREE_GRACE)
			return found;
	}
}

int tree_lookup_locked(const struct tree *t, uint64_t addr,
                       struct tree_entry *out)
{
	return descend(t, t->st->rootword, addr, out);
}

/* ---- writer side ---- */

/* A node being rebuilt, with room for one entry too many. */
struct wide {
	uint32_t count;
	uint32_t leaf;
	uint64_t key[TREE_FANOUT * 2];
	uint64_t a[TREE_FANOUT * 2]; /* leaf: end; inner: child */
	uint64_t b[TREE_FANOUT * 2]; /* leaf: handle */
};

static void load_wide(const struct tree *t, uint32_t n, struct wide *w)
{
	const struct tree_node *node = node_at(t, n);

	w->count = node->count;
	w->leaf = node->leaf;
	for (uint32_t i = 0; i < w->count; i++) {
		w->key[i] = node->key[i];
		if (w->leaf) {
			w->a[i] = node->u.l[i].end;
			w->b[i] = node->u.l[i].handle;
		} else {
			w->a[i] = node->u.child[i];
			w->b[i] = 0;
		}
	}
}

static void wide_insert(struct wide *w, uint32_t pos, uint64_t key, uint64_t a,
                        uint64_t b)
{
	size_t tail = (w->count - pos) * sizeof(uint64_t);

	memmove(&w->key[pos + 1], &w->key[pos], tail);
	memmove(&w->a[pos + 1], &w->a[pos], tail);
	memmove(&w->b[pos + 1], &w->b[pos], tail);
	w->key[pos] = key;
	w->a[pos] = a;
	w->b[pos] = b;
	w->count++;
}

static void wide_remove(struct wide *w, uint32_t pos)
{
	size_t tail = (w->count - pos - 1) * sizeof(uint64_t);

	memmove(&w->key[pos], &w->key[pos + 1], tail);
	memmove(&w->a[pos], &w->a[pos + 1], tail);
	memmove(&w->b[pos], &w->b[pos + 1], tail);
	w->count--;
}

static void wide_append(struct wide *w, const struct wide *from)
{
	for (uint32_t i = 0; i < from->count; i++)
		wide_insert(w, w->count, from->key[i], from->a[i], from->b[i]);
}

static uint32_t node_alloc(struct tree *t)
{
	struct tree_state *st = t->st;

	if (st->limbo_head != st->limbo_tail) {
		struct tree_limbo *l = limbo_at(t, st->limbo_head);

		if (l->op + TREE_GRACE <= st->ops) {
			st->limbo_head++;
			return l->node;
		}
	}
	return (uint32_t)st->node_bump++; /* node_reserve made sure */
}

static void node_retire(struct tree *t, uint32_t n)
{
	struct tree_state *st = t->st;
	struct tree_limbo *l = limbo_at(t, st->limbo_tail);

	l->node = n;
	l->op = st->ops;
	st->limbo_tail++;
}

/* Whether `need` nodes can be allocated by the operation about to begin. */
static int node_reserve(const struct tree *t, uint32_t need)
{
	const struct tree_state *st = t->st;
	uint64_t have = t->max_nodes - st->node_bump;
	uint64_t next_op = st->ops + 1;

	for (uint64_t i = st->limbo_head; i != st->limbo_tail && have < need;
	     i++) {
		if (limbo_at(t, i)->op + TREE_GRACE > next_op)
			break;
		have++;
	}
	return have >= need;
}

/* Writes w[from, to) into a fresh node. */
static uint32_t emit(struct tree *t, const struct wide *w, uint32_t from,
                     uint32_t to)
{
	uint32_t n = node_alloc(t);
	struct tree_node *node = node_at(t, n);

	/* Readers may still be descending through this node's last life; they
	 * read it with atomic loads and discard what they read. */
	node->count = to - from;
	node->leaf = w->leaf;
	for (uint32_t i = to - from; i < TREE_FANOUT; i++)
		__atomic_store_n(&node->key[i], UINT64_MAX, __ATOMIC_RELAXED);
	for (uint32_t i = from; i < to; i++) {
		__atomic_store_n(&node->key[i - from], w->key[i],
		                 __ATOMIC_RELAXED);
		if (w->leaf) {
			__atomic_store_n(&node->u.l[i - from].end, w->a[i],
			                 __ATOMIC_RELAXED);
			__atomic_store_n(&node->u.l[i - from].handle, w->b[i],
			                 __ATOMIC_RELAXED);
		} else {
			__atomic_store_n(&node->u.child[i - from],
			                 (uint32_t)w->a[i], __ATOMIC_RELAXED);
		}
	}
	return n;
}

static void begin_op(struct tree *t)
{
	__atomic_store_n(&t->st->ops, t->st->ops + 1, __ATOMIC_RELEASE);
	/* Node stores of this operation must not become visible before the
	 * readers can see that it began. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static void publish(struct tree *t, uint32_t root, uint32_t height)
{
	__atomic_store_n(&t->st->rootword,
	                 (uint64_t)root | (uint64_t)height << 32,
	                 __ATOMIC_RELEASE);
}

struct path {
	uint32_t node[TREE_MAX_HEIGHT];
	uint32_t pos[TREE_MAX_HEIGHT];
};

/* Records the inner nodes above the leaf for `key`; returns the leaf. */
static uint32_t walk(const struct tree *t, uint64_t key, struct path *p)
{
	uint32_t n = ROOT(t->st->rootword), height = HEIGHT(t->st->rootword);

	for (uint32_t level = 0; level + 1 < height; level++) {
		const struct tree_node *node = node_at(t, n);
		int i = last_le(node->key, node->count, key);

		if (i < 0)
			i = 0;
		p->node[level] = n;
		p->pos[level] = (uint32_t)i;
		n = node->u.child[i];
	}
	return n;
}

int tree_insert(struct tree *t, const struct tree_entry *e)
{
	uint32_t height = HEIGHT(t->st->rootword);
	uint32_t left, right = 0, level;
	struct path p;
	struct wide w;
	int at_end;

	if (height >= TREE_MAX_HEIGHT - 1 || !node_reserve(t, 2 * height + 3)) {
		errno = ENOMEM;
		return -1;
	}
	begin_op(t);
	if (height == 0) {
		w.count = 0;
		w.leaf = 1;
		wide_insert(&w, 0, e->start, e->end, e->handle);
		publish(t, emit(t, &w, 0, 1), 1);
		return 0;
	}
	uint32_t leaf = walk(t, e->start, &p);

	load_wide(t, leaf, &w);
	uint32_t pos = (uint32_t)(last_le(w.key, w.count, e->start) + 1);

	at_end = pos == w.count;
	wide_insert(&w, pos, e->start, e->end, e->handle);
	node_retire(t, leaf);
	for (level = height;; level--) {
		/* Appending in address order fills nodes completely. */
		if (w.count > TREE_FANOUT) {
			uint32_t cut = at_end ? TREE_FANOUT : w.count / 2;

			left = emit(t, &w, 0, cut);
			right = emit(t, &w, cut, w.count);
		} else {
			left = emit(t, &w, 0, w.count);
			right = 0;
		}
		if (level == 1)
			break;
		uint32_t parent = p.node[level - 2];
		uint32_t ppos = p.pos[level - 2];

		load_wide(t, parent, &w);
		at_end = at_end && ppos + 1 == w.count;
		w.key[ppos] = node_at(t, left)->key[0];
		w.a[ppos] = left;
		if (right != 0)
			wide_insert(&w, ppos + 1, node_at(t, right)->key[0],
			            right, 0);
		node_retire(t, parent);
	}
	if (right != 0) {
		w.count = 0;
		w.leaf = 0;
		wide_insert(&w, 0, node_at(t, left)->key[0], left, 0);
		wide_insert(&w, 1, node_at(t, right)->key[0], right, 0);
		publish(t, emit(t, &w, 0, 2), height + 1);
	} else {
		publish(t, left, height);
	}
	return 0;
}

int tree_remove(struct tree *t, uint64_t start)
{
	uint32_t height = HEIGHT(t->st->rootword);
	struct path p;
	struct wide w, sib;

	if (height == 0) {
		errno = ENOENT;
		return -1;
	}
	if (!node_reserve(t, 2 * height + 2)) {
		errno = ENOMEM;
		return -1;
	}
	uint32_t node = walk(t, start, &p);

	load_wide(t, node, &w);
	int i = last_le(w.key, w.count, start);

	if (i < 0 || w.key[i] != start) {
		errno = ENOENT;
		return -1;
	}
	begin_op(t);
	wide_remove(&w, (uint32_t)i);
	for (uint32_t level = height; level > 1; level--) {
		uint32_t parent = p.node[level - 2];
		uint32_t pos = p.pos[level - 2];
		struct wide up;

		load_wide(t, parent, &up);
		node_retire(t, node);
		if (w.count == 0) {
			wide_remove(&up, pos);
		} else if (w.count < TREE_MIN && up.count > 1) {
			/* Join with a neighbour: merge, or share evenly. */
			uint32_t lo = pos > 0 ? pos - 1 : pos;
			uint32_t other = (uint32_t)up.a[pos > 0 ? pos - 1 : 1];

			load_wide(t, other, &sib);
			node_retire(t, other);
			if (pos > 0) {
				wide_append(&sib, &w);
				w = sib;
			} else {
				wide_append(&w, &sib);
			}
			if (w.count <= TREE_FANOUT) {
				uint32_t n = emit(t, &w, 0, w.count);

				wide_remove(&up, lo + 1);
				up.key[lo] = w.key[0];
				up.a[lo] = n;
			} else {
				uint32_t cut = w.count / 2;
				uint32_t n1 = emit(t, &w, 0, cut);
				uint32_t n2 = emit(t, &w, cut, w.count);

				up.key[lo] = w.key[0];
				up.a[lo] = n1;
				up.key[lo + 1] = w.key[cut];
				up.a[lo + 1] = n2;
			}
		} else {
			up.key[pos] = w.key[0];
			up.a[pos] = emit(t, &w, 0, w.count);
		}
		w = up;
		node = parent;
	}
	node_retire(t, node);
	if (w.count == 0)
		publish(t, 0, 0);
	else if (!w.leaf && w.count == 1)
		publish(t, (uint32_t)w.a[0], height - 1);
	else
		publish(t, emit(t, &w, 0, w.count), height);
	return 0;
}
