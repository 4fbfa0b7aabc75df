/* transparency_make: `make -j2` builds a small generated C tree (generated
 * sources, pattern rules, a recursive make for a static library, the
 * compiler and the archiver as children) the same way under the launcher.
 *
 * Each run gets its own copy of the tree.  With two jobs, the order of the
 * recipes' lines is not fixed even without the shim, so the build's stdout
 * is compared as a sorted list of lines; its stderr, its exit status, the
 * program it links (byte for byte) and that program's output are compared
 * as they are. */
#include <criterion/criterion.h>

#include "tp_run.h"

TestSuite(make, .fini = tp_cleanup);

#define N_BUILD_LINES 21 /* GEN x9, CC x10, AR, LINK */

static const char makefile[] =
    "PARTS := $(foreach i,1 2 3 4 5 6 7 8,part$(i))\n"
    "OBJS := main.o $(PARTS:=.o)\n"
    "\n"
    "all: prog\n"
    "\n"
    "prog: $(OBJS) lib/libextra.a\n"
    "\t@echo \"LINK $@\"\n"
    "\t@$(CC) -o $@ $(OBJS) lib/libextra.a\n"
    "\n"
    "%.o: %.c config.h\n"
    "\t@echo \"CC $<\"\n"
    "\t@$(CC) -O1 -c -o $@ $<\n"
    "\n"
    "part%.c: gen-part.sh\n"
    "\t@echo \"GEN $@\"\n"
    "\t@sh gen-part.sh $* > $@\n"
    "\n"
    "config.h:\n"
    "\t@echo \"GEN $@\"\n"
    "\t@printf '#define MAGIC %d\\n' 37 > $@\n"
    "\n"
    "lib/libextra.a: config.h\n"
    "\t@$(MAKE) --no-print-directory -C lib\n"
    "\n"
    "run: prog\n"
    "\t@./prog\n"
    "\n"
    "fail: prog\n"
    "\t@./prog --fail\n"
    "\n"
    ".PHONY: all run fail\n"
    ".SECONDARY:\n"; /* keep the generated part*.c */

static const char lib_makefile[] = "libextra.a: extra.o\n"
                                   "\t@echo \"AR lib/$@\"\n"
                                   "\t@ar rcD $@ extra.o\n"
                                   "\n"
                                   "extra.o: extra.c ../config.h\n"
                                   "\t@echo \"CC lib/$<\"\n"
                                   "\t@$(CC) -O1 -I.. -c -o $@ $<\n";

static const char gen_part[] =
    "echo '#include \"config.h\"'\n"
    "echo \"int part$1(void) { return $1 * MAGIC + $(printf '%d' $1); }\"\n";

static const char main_c[] =
    "#include <stdio.h>\n"
    "#include <string.h>\n"
    "#include \"config.h\"\n"
    "int part1(void), part2(void), part3(void), part4(void);\n"
    "int part5(void), part6(void), part7(void), part8(void);\n"
    "int extra(int);\n"
    "int main(int argc, char **argv)\n"
    "{\n"
    "\tint (*parts[])(void) = {part1, part2, part3, part4,\n"
    "\t                        part5, part6, part7, part8};\n"
    "\tint sum = 0;\n"
    "\tfor (int i = 0; i < 8; i++) {\n"
    "\t\tprintf(\"part%d = %d\\n\", i + 1, parts[i]());\n"
    "\t\tsum += parts[i]();\n"
    "\t}\n"
    "\tprintf(\"sum = %d, extra = %d\\n\", sum, extra(sum));\n"
    "\tif (argc > 1 && strcmp(argv[1], \"--fail\") == 0) {\n"
    "\t\tfprintf(stderr, \"prog: failing on purpose\\n\");\n"
    "\t\treturn 3;\n"
    "\t}\n"
    "\treturn 0;\n"
    "}\n";

static const char extra_c[] = "#include \"config.h\"\n"
                              "int extra(int x) { return x % MAGIC; }\n";

static const char expected_run[] = "part1 = 38\n"
                                   "part2 = 76\n"
                                   "part3 = 114\n"
                                   "part4 = 152\n"
                                   "part5 = 190\n"
                                   "part6 = 228\n"
                                   "part7 = 266\n"
                                   "part8 = 304\n"
                                   "sum = 1368, extra = 36\n";

static char *make_tree(void)
{
	char *dir, *p;

	if (access(TP_MAKE, X_OK) != 0)
		cr_skip_test("no make program (%s)", TP_MAKE);
	dir = tp_mkdtemp();

	p = tp_path(dir, "lib");
	cr_assert_eq(mkdir(p, 0755), 0);
	free(p);
	static const struct {
		const char *name, *text;
	} files[] = {{"Makefile", makefile},
	             {"lib/Makefile", lib_makefile},
	             {"gen-part.sh", gen_part},
	             {"main.c", main_c},
	             {"lib/extra.c", extra_c}};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		p = tp_path(dir, files[i].name);
		tp_write_file(p, files[i].text, 0644);
		free(p);
	}
	return dir;
}

/* make [-j2 -O] TARGET in dir, behind the launcher (with extra launcher
 * options) or not. */
static void run_make(struct host_run *r, const char *dir, bool jobs,
                     const char *target, bool launched,
                     const char *const launcher_opts[])
{
	const char *const argv_jobs[] = {TP_MAKE,     "-j2",  "-O",
	                                 "CC=" TP_CC, target, NULL};
	const char *const argv_one[] = {TP_MAKE, "-s", "CC=" TP_CC, target,
	                                NULL};
	const char *const *argv = jobs ? argv_jobs : argv_one;
	const struct tp_opts o = {.cwd = dir, .timeout_s = 60};

	if (launched)
		tp_launched(r, launcher_opts, argv, &o);
	else
		tp_run(r, argv, &o);
}

static int cmp_lines(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The lines of text, sorted, joined again; *n their number. */
static char *sorted_lines(const char *text, size_t *n)
{
	char *copy = strdup(text), *rest = copy, *line, **lines = NULL;
	struct host_buf out = {0};
	size_t count = 0;

	cr_assert_not_null(copy);
	while ((line = strsep(&rest, "\n")) != NULL) {
		if (*line == '\0' && rest == NULL)
			break;
		lines = realloc(lines, (count + 1) * sizeof(*lines));
		cr_assert_not_null(lines);
		lines[count++] = line;
	}
	qsort(lines, count, sizeof(*lines), cmp_lines);
	cr_assert_eq(host_buf_append(&out, "", 0), 0);
	for (size_t i = 0; i < count; i++) {
		cr_assert_eq(host_buf_append(&out, lines[i], strlen(lines[i])),
		             0);
		cr_assert_eq(host_buf_append(&out, "\n", 1), 0);
	}
	free(lines);
	free(copy);
	*n = count;
	return out.data;
}

/* As tp_expect_same, with stdout compared as sorted lines. */
static void expect_same_build(const struct host_run *plain,
                              const struct host_run *shim)
{
	size_t n_plain, n_shim;
	char *a = sorted_lines(plain->out.data, &n_plain);
	char *b = sorted_lines(shim->out.data, &n_shim);

	tp_expect_same_status(plain, shim);
	cr_expect_str_eq(b, a, "build output differs (sorted lines)");
	cr_expect_str_eq(shim->err.data, plain->err.data, "stderr differs");
	free(a);
	free(b);
}

static void expect_same_file(const char *dir_a, const char *dir_b,
                             const char *name)
{
	char *pa = tp_path(dir_a, name), *pb = tp_path(dir_b, name);
	size_t la, lb;
	char *a = tp_read_file(pa, &la), *b = tp_read_file(pb, &lb);

	cr_expect(la == lb && memcmp(a, b, la) == 0,
	          "%s differs: %zu bytes without the launcher, %zu with", name,
	          la, lb);
	free(a);
	free(b);
	free(pa);
	free(pb);
}

/* The plain build of a fresh tree, checked against what it must print. */
static void build_plain(struct host_run *r, const char *dir)
{
	size_t n;
	char *sorted;

	run_make(r, dir, true, "all", false, NULL);
	cr_assert(host_exited_with(r, 0), "without the launcher: " HOST_RUN_FMT,
	          HOST_RUN_ARGS(*r));
	sorted = sorted_lines(r->out.data, &n);
	cr_assert_eq(n, N_BUILD_LINES, "build output:\n%s", r->out.data);
	cr_assert(strstr(r->out.data, "AR lib/libextra.a\n"));
	cr_assert(strstr(r->out.data, "LINK prog\n"));
	cr_assert_str_empty(r->err.data);
	free(sorted);
}

Test(make, parallel_build_is_the_same_under_the_launcher)
{
	char *plain_dir = make_tree(), *shim_dir = make_tree();
	struct host_run plain, shim;

	build_plain(&plain, plain_dir);
	run_make(&shim, shim_dir, true, "all", true, NULL);
	expect_same_build(&plain, &shim);
	expect_same_file(plain_dir, shim_dir, "prog");
	expect_same_file(plain_dir, shim_dir, "lib/libextra.a");
	host_run_free(&plain);
	host_run_free(&shim);

	/* The program the build made, run by make itself. */
	run_make(&plain, plain_dir, false, "run", false, NULL);
	cr_assert(host_exited_with(&plain, 0), HOST_RUN_FMT,
	          HOST_RUN_ARGS(plain));
	cr_assert_str_eq(plain.out.data, expected_run);
	run_make(&shim, shim_dir, false, "run", true, NULL);
	tp_expect_same(&plain, &shim);
	host_run_free(&plain);
	host_run_free(&shim);
	tp_rmtree(plain_dir);
	tp_rmtree(shim_dir);
}

Test(make, failing_parallel_build_fails_the_same_under_the_launcher)
{
	char *plain_dir = make_tree(), *shim_dir = make_tree();
	struct host_run plain, shim;

	run_make(&plain, plain_dir, true, "fail", false, NULL);
	cr_assert(host_exited_with(&plain, 2), HOST_RUN_FMT,
	          HOST_RUN_ARGS(plain));
	cr_assert(strstr(plain.err.data, "prog: failing on purpose\n"),
	          HOST_RUN_FMT, HOST_RUN_ARGS(plain));
	cr_assert(strstr(plain.err.data, "fail] Error 3"), HOST_RUN_FMT,
	          HOST_RUN_ARGS(plain));
	run_make(&shim, shim_dir, true, "fail", true, NULL);
	expect_same_build(&plain, &shim);
	host_run_free(&plain);
	host_run_free(&shim);
	tp_rmtree(plain_dir);
	tp_rmtree(shim_dir);
}

Test(make, parallel_build_makes_the_library_log_nothing)
{
	char *plain_dir = make_tree(), *shim_dir = make_tree();
	char *log_dir = tp_mkdtemp(), *log = tp_path(log_dir, "shim.log");
	const char *const log_opts[] = {"--log", "info", "--log-file", log,
	                                NULL};
	struct host_run plain, shim;
	size_t len;
	char *text;

	build_plain(&plain, plain_dir);
	run_make(&shim, shim_dir, true, "all", true, log_opts);
	expect_same_build(&plain, &shim);
	text = tp_read_file(log, &len);
	cr_expect_eq(len, 0, "the library logged:\n%s", text);
	free(text);
	host_run_free(&plain);
	host_run_free(&shim);
	free(log);
	tp_rmtree(log_dir);
	tp_rmtree(plain_dir);
	tp_rmtree(shim_dir);
}
