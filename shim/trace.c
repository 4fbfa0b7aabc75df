/* trace: backtraces, modules and symbols (contract in trace.h).  Called
 * by the guard (init, refresh, here), its fault handler and audit
 * (from_signal, module, symbol: async-signal-safe, no malloc, no lock);
 * calls nothing of the shim. */
#include "trace.h"

#define UNW_LOCAL_ONLY
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <libunwind.h>
#include <link.h>
#include <string.h>
#include <unistd.h>

#define MAP_SEGS 2048
#define MAP_MODS 1024

/* The executable segments of the loaded modules, sorted by address.  A
 * seqlock: the writer makes seq odd while it rebuilds; a reader that sees
 * it odd or moved retries a few times, then falls back to dl_iterate_phdr
 * (a handler may have interrupted the writer on its own thread). */
struct modmap {
	uint32_t seq;
	uint32_t nseg;
	uint32_t nmod;
	uint32_t self; /* the shim's own module */
	unsigned long long adds, subs;
	struct {
		uint64_t lo, hi, bias;
		uint32_t mod, pad;
	} seg[MAP_SEGS];
	char name[MAP_MODS][TRACE_PATH_MAX];
};

static struct modmap *map;
static int unwinder_ok;

/* libunwind is opened when the guard is first enabled, not linked: a
 * process that never guards loads neither it nor liblzma, and its forks
 * copy none of their mappings.  The unw_* names are macros for the
 * UNW_LOCAL_ONLY entry points (_ULx86_64_step and so on). */
#define UNW_NAME2(x) #x
#define UNW_NAME(x) UNW_NAME2(x)

static struct {
	__typeof__(unw_backtrace) *backtrace;
	__typeof__(unw_init_local2) *init_local2;
	__typeof__(unw_get_reg) *get_reg;
	__typeof__(unw_step) *step;
	__typeof__(unw_set_caching_policy) *set_caching_policy;
	unw_addr_space_t *local_addr_space;
} unw;

static int unwinder_open(void)
{
	void *lib = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);

	if (lib == NULL)
		lib = dlopen("libunwind.so", RTLD_NOW | RTLD_LOCAL);
	if (lib == NULL)
		return -1;
	*(void **)&unw.backtrace = dlsym(lib, "unw_backtrace");
	*(void **)&unw.init_local2 = dlsym(lib, UNW_NAME(unw_init_local2));
	*(void **)&unw.get_reg = dlsym(lib, UNW_NAME(unw_get_reg));
	*(void **)&unw.step = dlsym(lib, UNW_NAME(unw_step));
	*(void **)&unw.set_caching_policy =
	    dlsym(lib, UNW_NAME(unw_set_caching_policy));
	unw.local_addr_space = dlsym(lib, UNW_NAME(unw_local_addr_space));
	return unw.backtrace && unw.init_local2 && unw.get_reg && unw.step &&
	               unw.set_caching_policy && unw.local_addr_space
	           ? 0
	           : -1;
}

/* ---- the module map ---- */

static void copy_name(char *dst, const char *src, size_t size)
{
	size_t n = 0;

	if (size == 0)
		return;
	for (; src[n] && n + 1 < size; n++)
		dst[n] = src[n];
	dst[n] = '\0';
}

/* The main program is the module with an empty name. */
static void module_name(const char *dlpi_name, char *out, size_t size)
{
	if (dlpi_name != NULL && dlpi_name[0] != '\0') {
		copy_name(out, dlpi_name, size);
		return;
	}
	ssize_t n = readlink("/proc/self/exe", out, size - 1);

	out[n > 0 ? n : 0] = '\0';
}

static int add_module(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct modmap *m = arg;
	uint32_t mod = m->nmod;

	(void)size;
	if (mod >= MAP_MODS)
		return 1;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X) ||
		    m->nseg >= MAP_SEGS)
			continue;
		m->seg[m->nseg].lo = info->dlpi_addr + ph->p_vaddr;
		m->seg[m->nseg].hi = m->seg[m->nseg].lo + ph->p_memsz;
		m->seg[m->nseg].bias = info->dlpi_addr;
		m->seg[m->nseg].mod = mod;
		if (m->seg[m->nseg].lo <= (uint64_t)(uintptr_t)trace_init &&
		    (uint64_t)(uintptr_t)trace_init < m->seg[m->nseg].hi)
			m->self = mod;
		m->nseg++;
	}
	module_name(info->dlpi_name, m->name[mod], TRACE_PATH_MAX);
	m->nmod++;
	return 0;
}

static int read_counters(struct dl_phdr_info *info, size_t size, void *arg)
{
	unsigned long long *c = arg;

	(void)size;
	c[0] = info->dlpi_adds;
	c[1] = info->dlpi_subs;
	return 1;
}

void trace_refresh(void)
{
	unsigned long long c[2] = {0, 0};

	if (map == NULL)
		return;
	dl_iterate_phdr(read_counters, c);
	if (map->nseg != 0 && c[0] == map->adds && c[1] == map->subs)
		return;
	__atomic_store_n(&map->seq, map->seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	map->nseg = 0;
	map->nmod = 0;
	map->self = UINT32_MAX;
	dl_iterate_phdr(add_module, map);
	/* Few segments: an insertion sort by start address. */
	for (uint32_t i = 1; i < map->nseg; i++) {
		__typeof__(map->seg[0]) s = map->seg[i];
		uint32_t j = i;

		for (; j > 0 && map->seg[j - 1].lo > s.lo; j--)
			map->seg[j] = map->seg[j - 1];
		map->seg[j] = s;
	}
	map->adds = c[0];
	map->subs = c[1];
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	__atomic_store_n(&map->seq, map->seq + 1, __ATOMIC_RELEASE);
}

/* Index of the segment holding ip, or -1 (the map must be stable). */
static int find_seg(uint64_t ip)
{
	int lo = 0, hi = (int)__atomic_load_n(&map->nseg, __ATOMIC_RELAXED);

	if (hi > MAP_SEGS)
		return -1;
	while (lo < hi) {
		int mid = (lo + hi) / 2;

		if (map->seg[mid].hi <= ip)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < (int)map->nseg && map->seg[lo].lo <= ip ? lo : -1;
}

struct lookup {
	uint64_t ip;
	char *path;
	size_t size;
	uint64_t offset;
	int found;
};

static int lookup_module(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct lookup *l = arg;

	(void)size;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uint64_t lo = info->dlpi_addr + ph->p_vaddr;

		if (ph->p_type == PT_LOAD && lo <= l->ip &&
		    l->ip < lo + ph->p_memsz) {
			module_name(info->dlpi_name, l->path, l->size);
			l->offset = l->ip - info->dlpi_addr;
			l->found = 1;
			return 1;
		}
	}
	return 0;
}

int trace_module(uint64_t ip, char *path, size_t size, uint64_t *offset)
{
	for (int tries = 0; map != NULL && tries < 4; tries++) {
		uint32_t seq = __atomic_load_n(&map->seq, __ATOMIC_ACQUIRE);
		int i;

		if (seq & 1)
			continue;
		i = find_seg(ip);
		if (i >= 0) {
			uint32_t mod = map->seg[i].mod;

			*offset = ip - map->seg[i].bias;
			if (mod < MAP_MODS)
				copy_name(path, map->name[mod], size);
		}
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&map->seq, __ATOMIC_RELAXED) != seq)
			continue;
		if (i >= 0)
			return 1;
		break;
	}
	struct lookup l = {ip, path, size, 0, 0};

	dl_iterate_phdr(lookup_module, &l);
	*offset = l.offset;
	return l.found;
}

/* Whether ip is in the shim itself. */
static int is_self(uint64_t ip)
{
	uint32_t seq = __atomic_load_n(&map->seq, __ATOMIC_ACQUIRE);
	int i;

	if (seq & 1)
		return 0;
	i = find_seg(ip);
	return i >= 0 && map->seg[i].mod == map->self;
}

/* ---- unwinding ---- */

size_t trace_map_size(void)
{
	return sizeof(struct modmap);
}

int trace_init(void *map_memory)
{
	void *warm[8];

	map = map_memory;
	trace_refresh();
	if (!unwinder_ok && unwinder_open() < 0)
		return -1;
	/* Per-thread caches: no global cache lock for a handler to meet. */
	unw.set_caching_policy(*unw.local_addr_space, UNW_CACHE_PER_THREAD);
	unwinder_ok = unw.backtrace(warm, 8) > 0;
	return unwinder_ok ? 0 : -1;
}

size_t trace_here(uint64_t *ips, size_t max)
{
	void *raw[TRACE_FRAMES + 16];
	int n, skip = 0;
	size_t out = 0;

	if (!unwinder_ok || map == NULL)
		return 0;
	n = unw.backtrace(raw, TRACE_FRAMES + 16);
	while (skip < n && is_self((uint64_t)(uintptr_t)raw[skip]))
		skip++;
	for (int i = skip; i < n && out < max; i++)
		ips[out++] = (uint64_t)(uintptr_t)raw[i];
	return out;
}

size_t trace_from_signal(void *ucontext, uint64_t *ips, size_t max)
{
	unw_cursor_t c;
	size_t n = 0;

	if (!unwinder_ok || unw.init_local2(&c, (unw_context_t *)ucontext,
	                                    UNW_INIT_SIGNAL_FRAME) < 0)
		return 0;
	do {
		unw_word_t ip;

		if (unw.get_reg(&c, UNW_REG_IP, &ip) < 0 || ip == 0)
			break;
		ips[n++] = ip;
	} while (n < max && unw.step(&c) > 0);
	return n;
}

/* ---- symbols: an ELF reader made of pread ---- */

static int read_at(int fd, void *buf, size_t n, uint64_t off)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = pread(fd, (char *)buf + done, n - done,
		                  (off_t)(off + done));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		done += (size_t)r;
	}
	return 0;
}

struct best {
	uint64_t value;
	uint32_t name;
	uint32_t strtab; /* section index of its string table */
	int found;
};

/* Scans one symbol table for the function containing addr. */
static void scan_symbols(int fd, const Elf64_Shdr *sh, uint64_t addr,
                         struct best *b)
{
	enum { CHUNK = 128 };
	Elf64_Sym sym[CHUNK];
	uint64_t count = sh->sh_size / sizeof(Elf64_Sym);

	if (sh->sh_entsize != sizeof(Elf64_Sym))
		return;
	for (uint64_t i = 0; i < count; i += CHUNK) {
		uint64_t n = count - i < CHUNK ? count - i : CHUNK;

		if (read_at(fd, sym, n * sizeof(Elf64_Sym),
		            sh->sh_offset + i * sizeof(Elf64_Sym)) < 0)
			return;
		for (uint64_t k = 0; k < n; k++) {
			const Elf64_Sym *s = &sym[k];
			int type = ELF64_ST_TYPE(s->st_info);

			if ((type != STT_FUNC && type != STT_GNU_IFUNC) ||
			    s->st_shndx == SHN_UNDEF || s->st_name == 0 ||
			    addr < s->st_value ||
			    addr - s->st_value >= s->st_size)
				continue;
			if (!b->found || s->st_value > b->value) {
				b->value = s->st_value;
				b->name = s->st_name;
				b->strtab = sh->sh_link;
				b->found = 1;
			}
		}
	}
}

int trace_symbol(const char *path, uint64_t offset, char *name, size_t size,
                 uint64_t *within)
{
	Elf64_Ehdr eh;
	Elf64_Shdr sh;
	struct best b = {0, 0, 0, 0};
	int fd, ok = 0;

	if (path == NULL || path[0] != '/' || size == 0)
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (read_at(fd, &eh, sizeof(eh), 0) < 0 ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_shentsize != sizeof(Elf64_Shdr))
		goto out;
	/* .symtab names static functions too; .dynsym is what a stripped
	 * module keeps. */
	for (int pass = 0; pass < 2 && !b.found; pass++) {
		for (unsigned i = 0; i < eh.e_shnum; i++) {
			if (read_at(fd, &sh, sizeof(sh),
			            eh.e_shoff + (uint64_t)i * sizeof(sh)) < 0)
				goto out;
			if (sh.sh_type == (pass == 0 ? SHT_SYMTAB : SHT_DYNSYM))
				scan_symbols(fd, &sh, offset, &b);
		}
	}
	if (!b.found || b.strtab >= eh.e_shnum ||
	    read_at(fd, &sh, sizeof(sh),
	            eh.e_shoff + (uint64_t)b.strtab * sizeof(sh)) < 0)
		goto out;
	/* The name ends at its NUL or at the end of the table. */
	size_t want = size - 1;

	if (b.name >= sh.sh_size)
		goto out;
	if (want > sh.sh_size - b.name)
		want = sh.sh_size - b.name;
	if (read_at(fd, name, want, sh.sh_offset + b.name) < 0)
		goto out;
	name[want] = '\0';
	*within = offset - b.value;
	ok = name[0] != '\0';
out:
	close(fd);
	return ok;
}
