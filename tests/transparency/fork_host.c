/* tp_fork_host: what a program sees of fork, with or without the shim
 * preloaded (issue 13).  It does not link libforkshim; with the shim
 * preloaded it reaches it through dlsym.
 *
 *   tp_fork_host atfork   registers pthread_atfork handlers and forks once.
 *       Each handler prints the signal mask it runs with and whether a
 *       raise() inside it ran the signal's handler before returning; the
 *       child handler blocks SIGUSR1 and the child prints whether it is
 *       still blocked once fork has returned; a thread made by the child
 *       handler prints its mask.  The same output is expected with and
 *       without the shim.
 *   tp_fork_host sigign N  freezes a page (with the shim), ignores SIGCHLD
 *       and forks N children that _exit at once, in batches of N/50; prints
 *       "batch I US" (parent CPU time, user + system, per fork in batch I)
 *       and "flat FIRST LAST RATIO": medians of the first and last 5
 *       batches.
 *   tp_fork_host faults N  a forkshim user (with the shim it asks for the
 *       API and freezes a page) forks and reaps N children at each of 8
 *       stack depths, 512 bytes apart; prints "faults P" (the fewest
 *       minor faults per fork+waitpid the parent took at any depth: a
 *       fork path whose frames end near a page boundary writes one stack
 *       page more after the fork, at some depths and not others).
 *   tp_fork_host stack 0|1  forks and reaps children (with 1 and the shim,
 *       first asks for the API and freezes a page), and prints "stack B":
 *       the most bytes of stack below the caller's frame that one
 *       fork+waitpid wrote (a pattern laid below the frame, then looked
 *       for).  After a fork the parent's stack pages are copy-on-write:
 *       every further byte of depth is that much more chance, over stack
 *       placements, of one more fault per fork.
 *   tp_fork_host layout   (needs the shim) prints "fork_page P exit_page E
 *       Exit_page X lookup_page L library NAME": the pages of the fork,
 *       _exit and _Exit the program binds to, and the last page a lazy
 *       binding of _exit or _Exit reads in that library's symbol tables
 *       (its hash table, symbol, name and version entry), counted from
 *       the start of the library that holds them.
 *   tp_fork_host segments (needs the shim) prints "wx_loads N relro R": how
 *       many of the shim's loadable segments are both writable and
 *       executable, and whether it has a RELRO segment (1 or 0).
 *   tp_fork_host order    a plugin's order: asks for the API, then
 *       registers pthread_atfork handlers whose prepare handler freezes a
 *       page and whose parent handler thaws it, then forks before any
 *       freeze of its own; prints "prepare freeze ok|errno N" and "parent
 *       thaw ok|errno N" (needs the shim).
 *   tp_fork_host idle     neither freezes nor forks: prints what of the
 *       shim's memory this process has: "shim yes|no", "shim_bss_pages N"
 *       (pages of the shim's writable segment past what the loader writes:
 *       its .bss), "shim_bss_touched N" (how many of them are in memory,
 *       from /proc/self/pagemap) and "wipeonfork_maps N" (mappings advised
 *       MADV_WIPEONFORK, as the shim's per-process page is).
 *   tp_fork_host table    a forkshim user (needs the shim) asks for the
 *       API and forks once (what a first fork makes is there), then
 *       freezes one page and forks again; prints "copied_maps_added N"
 *       (private mappings not advised MADV_WIPEONFORK: the ones whose page
 *       tables every fork copies and every child's exit frees) and
 *       "pte_kib_added K" (VmPTE) that the freeze and fork added. */
#include <alloca.h>
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <stdint.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t got_usr2;

static void on_usr2(int sig)
{
	(void)sig;
	got_usr2++;
}

/* What the parent's handler saw, printed once the child is reaped: the
 * child's lines and the parent's then come in one order. */
static char later[1024];

static void say(int defer, const char *fmt, const char *who, const char *what)
{
	size_t used = strlen(later);

	if (defer)
		snprintf(later + used, sizeof(later) - used, fmt, who, what);
	else
		printf(fmt, who, what);
}

/* The calling thread's mask, as /proc/thread-self/status shows it. */
static void print_mask(const char *who, int defer)
{
	char line[256];
	FILE *f = fopen("/proc/thread-self/status", "r");

	if (f == NULL) {
		say(defer, "%s: %s\n", who, "no status");
		return;
	}
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "SigBlk:", 7) == 0)
			say(defer, "%s %s", who, line);
	fclose(f);
}

/* Whether raise() ran the handler before it returned. */
static void print_raise(const char *who, int defer)
{
	sig_atomic_t before = got_usr2;

	raise(SIGUSR2);
	say(defer, "%s raise ran the handler: %s\n", who,
	    got_usr2 != before ? "yes" : "no");
}

static void *child_thread(void *arg)
{
	(void)arg;
	print_mask("child handler's thread", 0);
	return NULL;
}

static void prepare(void)
{
	print_mask("prepare", 0);
	print_raise("prepare", 0);
}

static void parent(void)
{
	print_mask("parent", 1);
	print_raise("parent", 1);
}

static void child(void)
{
	sigset_t usr1;
	pthread_t th;

	print_mask("child", 0);
	print_raise("child", 0);
	if (pthread_create(&th, NULL, child_thread, NULL) == 0)
		pthread_join(th, NULL);
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);
}

static int run_atfork(void)
{
	struct sigaction sa;
	sigset_t now;
	int status;
	pid_t pid;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr2;
	sigaction(SIGUSR2, &sa, NULL);
	pthread_atfork(prepare, parent, child);
	setvbuf(stdout, NULL, _IONBF, 0);
	pid = fork();
	if (pid == 0) {
		pthread_sigmask(SIG_SETMASK, NULL, &now);
		printf("child after fork: SIGUSR1 %s\n",
		       sigismember(&now, SIGUSR1) ? "blocked" : "open");
		print_mask("child after fork", 0);
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid || status != 0)
		return 1;
	fputs(later, stdout);
	print_mask("parent after fork", 0);
	return 0;
}

static double cpu_us(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static int compare(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median5(const double *v)
{
	double c[5];

	memcpy(c, v, sizeof(c));
	qsort(c, 5, sizeof(c[0]), compare);
	return c[2];
}

#define BATCHES 50

static int run_sigign(long n)
{
	static char page[4096] __attribute__((aligned(4096)));
	unsigned long (*freeze)(const void *, size_t, const char *, unsigned);
	double per[BATCHES], first, last;
	long batch = n / BATCHES;

	*(void **)&freeze = dlsym(RTLD_DEFAULT, "forkshim_freeze");
	if (freeze != NULL && freeze(page, sizeof(page), "page", 0) == 0)
		return 1;
	signal(SIGCHLD, SIG_IGN);
	for (int b = 0; b < BATCHES; b++) {
		double t = cpu_us();

		for (long i = 0; i < batch; i++) {
			pid_t pid = fork();

			if (pid == 0)
				_exit(0);
			if (pid < 0)
				return 1;
		}
		per[b] = (cpu_us() - t) / (double)batch;
		printf("batch %d %.1f\n", b, per[b]);
	}
	first = median5(per);
	last = median5(per + BATCHES - 5);
	printf("flat %.1f %.1f %.3f\n", first, last, last / first);
	return 0;
}

static unsigned long (*order_freeze)(const void *, size_t, const char *,
                                     unsigned);
static int (*order_thaw)(unsigned long);
static unsigned long order_handle;
static int order_errno[2];

static void order_prepare(void)
{
	static char page[4096] __attribute__((aligned(4096)));

	order_handle = order_freeze(page, sizeof(page), "prepare", 0);
	order_errno[0] = order_handle == 0 ? errno : 0;
}

static void order_parent(void)
{
	order_errno[1] = order_handle == 0          ? -1
	                 : order_thaw(order_handle) ? errno
	                                            : 0;
}

static int run_order(void)
{
	const void *(*api)(unsigned);
	int status;
	pid_t pid;

	*(void **)&api = dlsym(RTLD_DEFAULT, "forkshim_api");
	*(void **)&order_freeze = dlsym(RTLD_DEFAULT, "forkshim_freeze");
	*(void **)&order_thaw = dlsym(RTLD_DEFAULT, "forkshim_thaw");
	if (api == NULL || order_freeze == NULL || order_thaw == NULL ||
	    api(1) == NULL)
		return 1;
	pthread_atfork(order_prepare, order_parent, NULL);
	pid = fork();
	if (pid == 0)
		_exit(0);
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return 1;
	for (int i = 0; i < 2; i++) {
		if (order_errno[i] == 0)
			printf("%s ok\n", i ? "parent thaw" : "prepare freeze");
		else
			printf("%s errno %d\n",
			       i ? "parent thaw" : "prepare freeze",
			       order_errno[i]);
	}
	return 0;
}

#define DEPTHS 8

/* Minor faults of this process per fork+waitpid of n children. */
__attribute__((noinline)) static double faults_per_fork(long n)
{
	struct rusage a, b;

	getrusage(RUSAGE_SELF, &a);
	for (long i = 0; i < n; i++) {
		int status;
		pid_t pid = fork();

		if (pid == 0)
			_exit(0);
		if (pid < 0 || waitpid(pid, &status, 0) != pid)
			return -1;
	}
	getrusage(RUSAGE_SELF, &b);
	return (double)(b.ru_minflt - a.ru_minflt) / (double)n;
}

/* The same, `depth` bytes further down the stack: the pad is this
 * frame's, above the frames that run after the fork, so they move down
 * with it and span the same number of bytes. */
__attribute__((noinline)) static double faults_at(long n, int depth)
{
	volatile char *pad = alloca((size_t)depth + 1);
	double f;

	pad[0] = 0;
	f = faults_per_fork(n);
	pad[0] = 1; /* the pad lives until the forks are done */
	return f;
}

static int run_faults(long n)
{
	static char page[4096] __attribute__((aligned(4096)));
	const void *(*api)(unsigned);
	unsigned long (*freeze)(const void *, size_t, const char *, unsigned);
	double fewest = -1;

	*(void **)&api = dlsym(RTLD_DEFAULT, "forkshim_api");
	*(void **)&freeze = dlsym(RTLD_DEFAULT, "forkshim_freeze");
	if (api != NULL && api(1) == NULL)
		return 1;
	if (freeze != NULL && freeze(page, sizeof(page), "page", 0) == 0)
		return 1;
	for (int d = 0; d < DEPTHS; d++) {
		double f;

		faults_at(3, d * 512); /* its first forks map what they use */
		f = faults_at(n, d * 512);
		if (f < 0)
			return 1;
		if (fewest < 0 || f < fewest)
			fewest = f;
	}
	printf("faults %.3f\n", fewest);
	return 0;
}

#define STACK_PROBE 16384
#define STACK_MARK 0xa5

/* Lays the pattern in the STACK_PROBE bytes below this frame's locals,
 * forks and reaps a child, and answers how far down the pattern was
 * overwritten, from the pattern's top (0: not at all). */
__attribute__((noinline)) static long stack_written(void)
{
	volatile char here;
	volatile char *top = (volatile char *)((uintptr_t)&here - 256), *p;
	int status;
	pid_t pid;

	for (p = top - STACK_PROBE; p < top; p++)
		*p = (char)STACK_MARK;
	pid = fork();
	if (pid == 0)
		_exit(0);
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	for (p = top - STACK_PROBE; p < top && *p == (char)STACK_MARK; p++)
		;
	return top - p;
}

static int run_stack(int use)
{
	static char page[4096] __attribute__((aligned(4096)));
	const void *(*api)(unsigned);
	unsigned long (*freeze)(const void *, size_t, const char *, unsigned);
	long most = 0;

	*(void **)&api = dlsym(RTLD_DEFAULT, "forkshim_api");
	*(void **)&freeze = dlsym(RTLD_DEFAULT, "forkshim_freeze");
	if (use && api != NULL && api(1) == NULL)
		return 1;
	if (use && freeze != NULL && freeze(page, sizeof(page), "page", 0) == 0)
		return 1;
	/* The first calls bind fork and waitpid (the loader's resolver takes
	 * kilobytes of stack) and make what a first fork makes. */
	for (int i = 0; i < 3; i++)
		if (stack_written() < 0)
			return 1;
	for (int i = 0; i < 8; i++) {
		long b = stack_written();

		if (b < 0)
			return 1;
		if (b > most)
			most = b;
	}
	printf("stack %ld\n", most);
	return 0;
}

struct lookup {
	uintptr_t base;
	const ElfW(Sym) * sym[2]; /* _exit's and _Exit's symbols */
	uintptr_t last;           /* the last byte binding them reads */
};

/* An address from the dynamic section: glibc relocates them in place. */
static uintptr_t dyn_ptr(uintptr_t base, ElfW(Addr) p)
{
	return p < base ? base + p : p;
}

static int find_tables(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct lookup *k = arg;
	uintptr_t hash = 0, symtab = 0, strtab = 0, versym = 0;

	(void)size;
	if (info->dlpi_addr != k->base)
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type != PT_DYNAMIC)
			continue;
		for (const ElfW(Dyn) *d =
		         (const ElfW(Dyn) *)(k->base + ph->p_vaddr);
		     d->d_tag != DT_NULL; d++) {
			uintptr_t v = dyn_ptr(k->base, d->d_un.d_ptr);

			if (d->d_tag == DT_GNU_HASH || d->d_tag == DT_HASH)
				hash = hash > v ? hash : v;
			else if (d->d_tag == DT_SYMTAB)
				symtab = v;
			else if (d->d_tag == DT_STRTAB)
				strtab = v;
			else if (d->d_tag == DT_VERSYM)
				versym = v;
		}
	}
	if (hash == 0 || symtab == 0 || strtab == 0)
		return 0;
	k->last = hash;
	for (int i = 0; i < 2; i++) {
		const ElfW(Sym) *sym = k->sym[i];
		uintptr_t idx = (uintptr_t)(sym - (const ElfW(Sym) *)symtab);
		const char *name = (const char *)strtab + sym->st_name;
		uintptr_t end[3] = {(uintptr_t)(sym + 1) - 1,
		                    (uintptr_t)name + strlen(name),
		                    versym == 0 ? 0 : versym + 2 * idx + 1};

		for (int j = 0; j < 3; j++)
			if (end[j] > k->last)
				k->last = end[j];
	}
	return 1;
}

static int run_layout(void)
{
	void *f = dlsym(RTLD_DEFAULT, "fork");
	void *e = dlsym(RTLD_DEFAULT, "_exit");
	void *x = dlsym(RTLD_DEFAULT, "_Exit");
	struct lookup k = {0};
	Dl_info fi, ei, xi;

	if (f == NULL || e == NULL || x == NULL || dladdr(f, &fi) == 0 ||
	    dladdr1(e, &ei, (void **)&k.sym[0], RTLD_DL_SYMENT) == 0 ||
	    dladdr1(x, &xi, (void **)&k.sym[1], RTLD_DL_SYMENT) == 0 ||
	    fi.dli_fbase != ei.dli_fbase || fi.dli_fbase != xi.dli_fbase ||
	    k.sym[0] == NULL || k.sym[1] == NULL)
		return 1;
	k.base = (uintptr_t)fi.dli_fbase;
	if (dl_iterate_phdr(find_tables, &k) != 1)
		return 1;
	printf("fork_page %ld exit_page %ld Exit_page %ld lookup_page %ld "
	       "library %s\n",
	       (long)(((uintptr_t)f - k.base) / 4096),
	       (long)(((uintptr_t)e - k.base) / 4096),
	       (long)(((uintptr_t)x - k.base) / 4096),
	       (long)((k.last - k.base) / 4096), fi.dli_fname);
	return 0;
}

struct segments {
	uintptr_t base;
	int wx, relro;
};

static int count_segments(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct segments *g = arg;

	(void)size;
	if (info->dlpi_addr != g->base)
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_W) &&
		    (ph->p_flags & PF_X))
			g->wx++;
		if (ph->p_type == PT_GNU_RELRO)
			g->relro = 1;
	}
	return 1;
}

/* Found by a symbol only the shim defines: under a sanitizer, fork is the
 * runtime's. */
static int run_segments(void)
{
	void *v = dlsym(RTLD_DEFAULT, "forkshim_version");
	struct segments g = {0};
	Dl_info vi;

	if (v == NULL || dladdr(v, &vi) == 0)
		return 1;
	g.base = (uintptr_t)vi.dli_fbase;
	if (dl_iterate_phdr(count_segments, &g) != 1)
		return 1;
	printf("wx_loads %d relro %d library %s\n", g.wx, g.relro,
	       vi.dli_fname);
	return 0;
}

struct shim_bss {
	const char *path;
	uintptr_t file_end, end; /* of the writable segment, in memory */
};

static int find_bss(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct shim_bss *b = arg;
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);

	(void)size;
	if (info->dlpi_name == NULL || strcmp(info->dlpi_name, b->path) != 0)
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t start = info->dlpi_addr + ph->p_vaddr;

		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_W))
			continue;
		/* The loader writes the file-backed part (relocations, the
		 * zeroed tail of .bss on .data's last page): the pages after
		 * it are ours alone. */
		b->file_end = (start + ph->p_filesz + page - 1) & ~(page - 1);
		b->end = (start + ph->p_memsz + page - 1) & ~(page - 1);
	}
	return 1;
}

/* Pages of [from, to) present in memory (written, or read once). */
static long present_pages(uintptr_t from, uintptr_t to)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	FILE *f = fopen("/proc/self/pagemap", "rb");
	long n = 0;

	if (f == NULL)
		return -1;
	for (uintptr_t a = from; a < to; a += page) {
		uint64_t e = 0;

		if (fseek(f, (long)(a / page * sizeof(e)), SEEK_SET) != 0 ||
		    fread(&e, sizeof(e), 1, f) != 1) {
			n = -1;
			break;
		}
		n += (long)(e >> 63);
	}
	fclose(f);
	return n;
}

static int run_idle(void)
{
	void *api = dlsym(RTLD_DEFAULT, "forkshim_api");
	struct shim_bss b = {NULL, 0, 0};
	char line[512];
	long wipe = 0, touched = -1;
	Dl_info info;
	FILE *f;

	if (api != NULL && dladdr(api, &info) && info.dli_fname != NULL) {
		b.path = info.dli_fname;
		dl_iterate_phdr(find_bss, &b);
		if (b.end > b.file_end)
			touched = present_pages(b.file_end, b.end);
	}
	f = fopen("/proc/self/smaps", "r");
	if (f == NULL)
		return 1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "VmFlags:", 8) == 0 &&
		    strstr(line, " wf") != NULL)
			wipe++;
	fclose(f);
	printf("shim %s\nshim_bss_pages %ld\nshim_bss_touched %ld\n"
	       "wipeonfork_maps %ld\n",
	       api != NULL ? "yes" : "no",
	       (long)((b.end - b.file_end) / (uintptr_t)sysconf(_SC_PAGESIZE)),
	       touched, wipe);
	return 0;
}

/* Private mappings not advised MADV_WIPEONFORK, and VmPTE in KiB. */
static int copied_maps(long *maps, long *pte_kib)
{
	char line[512];
	int private = 0;
	FILE *f = fopen("/proc/self/smaps", "r");

	*maps = 0;
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char perms[8];

		if (sscanf(line, "%*x-%*x %7s", perms) == 1 &&
		    strchr(line, '-') < strchr(line, ' '))
		private = perms[3] == 'p';
		else if (strncmp(line, "VmFlags:", 8) == 0) *maps +=
		    private && strstr(line, " wf") == NULL;
	}
	fclose(f);
	f = fopen("/proc/self/status", "r");
	*pte_kib = -1;
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmPTE: %ld kB", pte_kib) == 1)
			break;
	fclose(f);
	return *pte_kib < 0 ? -1 : 0;
}

static int fork_once(void)
{
	int status;
	pid_t pid = fork();

	if (pid == 0)
		_exit(0);
	return pid > 0 && waitpid(pid, &status, 0) == pid && status == 0 ? 0
	                                                                 : -1;
}

static int run_table(void)
{
	static char page[4096] __attribute__((aligned(4096)));
	const void *(*api)(unsigned);
	unsigned long (*freeze)(const void *, size_t, const char *, unsigned);
	long maps0, pte0, maps1, pte1;

	*(void **)&api = dlsym(RTLD_DEFAULT, "forkshim_api");
	*(void **)&freeze = dlsym(RTLD_DEFAULT, "forkshim_freeze");
	if (api == NULL || freeze == NULL || api(1) == NULL)
		return 1;
	if (fork_once() < 0 || copied_maps(&maps0, &pte0) < 0)
		return 1;
	if (freeze(page, sizeof(page), "page", 0) == 0 || fork_once() < 0 ||
	    copied_maps(&maps1, &pte1) < 0)
		return 1;
	printf("copied_maps_added %ld\npte_kib_added %ld\n", maps1 - maps0,
	       pte1 - pte0);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "atfork") == 0)
		return run_atfork();
	if (argc == 3 && strcmp(argv[1], "sigign") == 0)
		return run_sigign(atol(argv[2]));
	if (argc == 2 && strcmp(argv[1], "order") == 0)
		return run_order();
	if (argc == 3 && strcmp(argv[1], "faults") == 0)
		return run_faults(atol(argv[2]));
	if (argc == 3 && strcmp(argv[1], "stack") == 0)
		return run_stack(atoi(argv[2]));
	if (argc == 2 && strcmp(argv[1], "layout") == 0)
		return run_layout();
	if (argc == 2 && strcmp(argv[1], "segments") == 0)
		return run_segments();
	if (argc == 2 && strcmp(argv[1], "idle") == 0)
		return run_idle();
	if (argc == 2 && strcmp(argv[1], "table") == 0)
		return run_table();
	fprintf(
	    stderr,
	    "usage: tp_fork_host atfork | sigign N | faults N | stack 0|1 | "
	    "order | idle | table\n");
	return 2;
}
