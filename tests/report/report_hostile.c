/* `forkshim report` on report directories another user could write into
 * (issue 14, classes 6 and 8).  Strings from the files reach the terminal
 * escaped (no ESC, no CR, no forged line), --json is valid JSON and --svg
 * well-formed XML whatever the names hold; a FIFO and a symlink to
 * /dev/zero planted by a second, unprivileged user (nobody, through
 * setpriv) are skipped without blocking; a file or a line over the bounds
 * is skipped with a message naming it; 100,000 distinct regions are all
 * shown, each with its own figures; figures that cannot be (shared above
 * resident, resident above pages, values near 2^64) skip their region with
 * a message naming the file and the region, and no percent shown is above
 * 100.  Every run is bounded by a timeout: a report that blocks fails. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "../guard/guard_run.h"

static char dir[64];

static void setup(void)
{
	guard_mkdir(dir, sizeof(dir));
}

static void teardown(void)
{
	host_rmtree(dir);
}

TestSuite(hostile, .init = setup, .fini = teardown, .timeout = 240);

static void report(struct host_run *r, const char *a, const char *b,
                   const char *c, int timeout_s)
{
	const char *argv[] = {REPORT_LAUNCHER, "report", a, b, c, NULL};
	struct host_env e;

	HOST_RUN(r, argv, .envp = guard_env(&e, NULL, NULL, 0),
	         .timeout_s = timeout_s);
}

static void put(const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	cr_assert_not_null(f, "%s", path);
	fputs(text, f);
	cr_assert_eq(fclose(f), 0);
}

/* An owner (pid 100) and a child (101) of one region named name (a JSON
 * string's inside, as written into the file), the child with an audit
 * record whose writer is function fn. */
static void family(const char *name, const char *fn, const char *how)
{
	char text[4096];

	snprintf(text, sizeof(text),
	         "{\"type\":\"process\",\"format\":1,\"pid\":100,\"ppid\":1,"
	         "\"birth\":0,\"exe\":\"/usr/bin/host\",\"page_size\":4096}\n"
	         "{\"type\":\"region\",\"name\":\"%s\",\"handle\":\"0x1\","
	         "\"addr\":\"0x7f0000000000\",\"size\":16384,\"owner\":100,"
	         "\"pages\":4,\"resident\":4,\"shared\":4,\"exclusive\":0,"
	         "\"swapped\":0}\n"
	         "{\"type\":\"end\",\"how\":\"exit\",\"status\":0,\"signal\":0}"
	         "\n",
	         name);
	put("report-100.jsonl", text);
	snprintf(
	    text, sizeof(text),
	    "{\"type\":\"process\",\"format\":1,\"pid\":101,\"ppid\":100,"
	    "\"birth\":1,\"exe\":\"/usr/bin/host\",\"page_size\":4096}\n"
	    "{\"type\":\"region\",\"name\":\"%s\",\"handle\":\"0x1\","
	    "\"addr\":\"0x7f0000000000\",\"size\":16384,\"owner\":100,"
	    "\"pages\":4,\"resident\":4,\"shared\":3,\"exclusive\":1,"
	    "\"swapped\":0}\n"
	    "{\"type\":\"end\",\"how\":\"%s\",\"status\":0,\"signal\":0}\n",
	    name, how);
	put("report-101.jsonl", text);
	snprintf(
	    text, sizeof(text),
	    "{\"type\":\"process\",\"pid\":101,\"ppid\":100,\"exe\":\"/x\"}\n"
	    "{\"type\":\"first_write\",\"handle\":\"0x1\",\"owner\":100,"
	    "\"frames\":[{\"i\":0,\"ip\":\"0x1\",\"module\":\"/usr/bin/"
	    "host\",\"offset\":\"0x10\"}]}\n"
	    "{\"type\":\"symbol\",\"module\":\"/usr/bin/host\",\"offset\":"
	    "\"0x10\",\"function\":\"%s\",\"function_offset\":0}\n",
	    fn);
	put("audit-101.jsonl", text);
}

/* Whether s holds a byte the terminal would act on: C0 controls but the
 * newline, DEL, or C1 controls (raw, or as UTF-8). */
static bool has_control(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p < 0x20 && *p != '\n') || *p == 0x7f ||
		    (*p >= 0x80 && *p < 0xa0))
			return true;
		if (*p == 0xc2 && p[1] >= 0x80 && p[1] < 0xa0)
			return true;
	}
	return false;
}

/* A name that moves the cursor, clears the screen, returns the carriage,
 * starts a forged line, sends a C1 CSI (U+009B) and a right-to-left
 * override. */
#define EVIL "ok\\u001b[2J\\r\\nforged line\\u009b31m\\u202eevil\\u0007"

Test(hostile, strings_reach_the_terminal_escaped)
{
	struct host_run r;

	family(EVIL, "fn\\u001b]0;title\\u0007", "exit\\u001b[31m");
	report(&r, dir, NULL, NULL, 30);
	cr_assert(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(!has_control(r.out.data), "raw control bytes in:\n%s",
	          r.out.data);
	cr_expect(strstr(r.out.data, "\nforged line") == NULL, "%s",
	          r.out.data);
	cr_expect(strstr(r.out.data, "\\u202e") != NULL &&
	              strstr(r.out.data, "\\x1b[2J") != NULL &&
	              strstr(r.out.data, "\\r\\nforged line") != NULL,
	          "the name shown escaped:\n%s", r.out.data);
	cr_expect(strstr(r.out.data, "fn\\x1b]0;title\\x07 (host)") != NULL,
	          "the writer shown escaped:\n%s", r.out.data);
	host_run_free(&r);
}

/* A name that is itself a file name: every message naming a file shows
 * it escaped too. */
Test(hostile, file_names_in_messages_are_escaped)
{
	struct host_run r;

	family("plain", "f", "exit");
	put("report-9\x1b[2J\r.jsonl", "not json\n");
	report(&r, dir, NULL, NULL, 30);
	cr_assert(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(!has_control(r.err.data), "raw control bytes in:\n%s",
	          r.err.data);
	cr_expect(strstr(r.err.data, "report-9\\x1b[2J\\r.jsonl: skipped") !=
	              NULL,
	          "%s", r.err.data);
	host_run_free(&r);
}

/* Runs a python3 check on a file: exit 0 or the failure is shown. */
static void python_check(const char *code, const char *path)
{
	const char *argv[] = {"/usr/bin/python3", "-I", "-c", code, path, NULL};
	struct host_env e;
	struct host_run r;

	HOST_RUN(&r, argv, .envp = guard_env(&e, NULL, NULL, 0),
	         .timeout_s = 30);
	cr_expect(host_exited_with(&r, 0), "%s: " HOST_RUN_FMT, path,
	          HOST_RUN_ARGS(r));
	host_run_free(&r);
}

static void save(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

/* Invalid UTF-8 in a name (a raw 0xff byte): the line is not JSON, the
 * file is skipped and --json stays valid; control characters, escaped in
 * the file, stay escaped in --json. */
Test(hostile, json_output_is_valid_json)
{
	static const char strict[] =
	    "import json, sys\n"
	    "text = open(sys.argv[1], 'rb').read().decode('utf-8')\n"
	    "v = json.loads(text)\n"
	    "assert any('forged' in g['name'] for g in v['regions'])\n"
	    "assert not any(ord(c) < 32 for c in text[:-1]), 'raw control'\n";
	char path[] = "/tmp/forkshim-json-XXXXXX";
	int fd = mkstemp(path);
	struct host_run r;

	cr_assert(fd >= 0);
	close(fd);
	family(EVIL, "f\\u001b", "exit\\u0000");
	put("report-102.jsonl",
	    "{\"type\":\"process\",\"format\":1,\"pid\":102,\"ppid\":100,"
	    "\"birth\":1,\"exe\":\"/x\xff\",\"page_size\":4096}\n"
	    "{\"type\":\"end\",\"how\":\"exit\xc0\",\"status\":0,"
	    "\"signal\":0}\n");
	report(&r, "--json", dir, NULL, 30);
	cr_assert(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	save(path, r.out.data);
	python_check(strict, path);
	cr_expect(strstr(r.err.data, "report-102.jsonl: skipped") != NULL, "%s",
	          r.err.data);
	unlink(path);
	host_run_free(&r);
}

Test(hostile, svg_is_well_formed_xml)
{
	static const char parse[] =
	    "import sys, xml.etree.ElementTree as E\n"
	    "t = E.parse(sys.argv[1])\n"
	    "assert not any(e.tag.endswith('script') for e in t.iter())\n";
	char path[] = "/tmp/forkshim-svg-XXXXXX";
	int fd = mkstemp(path);
	struct host_run r;

	cr_assert(fd >= 0);
	close(fd);
	family("<script>alert(1)</script>&\\\"\\u0001", "f",
	       "</text><script>x</script>");
	report(&r, "--svg", path, dir, 30);
	cr_assert(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	python_check(parse, path);
	unlink(path);
	host_run_free(&r);
}

/* ---- files another user plants ---- */

Test(hostile, a_fifo_and_a_link_to_dev_zero_from_another_user_are_skipped)
{
	char script[512];
	struct host_run r;

	if (geteuid() != 0)
		cr_skip_test("needs root to act as a second user");
	family("plain", "f", "exit");
	/* A shared directory another user can write into. */
	cr_assert_eq(chmod(dir, 01777), 0);
	snprintf(script, sizeof(script),
	         "set -e; cd %s; mkfifo report-666.jsonl; "
	         "ln -s /dev/zero report-667.jsonl; mkfifo audit-668.jsonl; "
	         "ln -s /dev/zero audit-669.jsonl",
	         dir);
	guard_as_nobody(script);
	report(&r, dir, NULL, NULL, 20);
	cr_assert(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(strstr(r.out.data, "2 processes, 1 region") != NULL, "%s",
	          r.out.data);
	cr_expect(strstr(r.err.data, "report-666.jsonl: skipped: not a "
	                             "regular file") != NULL &&
	              strstr(r.err.data, "report-667.jsonl: skipped: a "
	                                 "symbolic link") != NULL &&
	              strstr(r.err.data, "audit-668.jsonl: skipped: not a "
	                                 "regular file") != NULL &&
	              strstr(r.err.data, "audit-669.jsonl: skipped: a "
	                                 "symbolic link") != NULL,
	          "%s", r.err.data);
	host_run_free(&r);
}

/* A sparse file of 2 GiB and a 2 MiB line: skipped by their sizes, not
 * read into memory. */
Test(hostile, a_huge_file_and_a_long_line_are_skipped)
{
	char path[256];
	struct host_run r;
	FILE *f;
	int fd;

	family("plain", "f", "exit");
	snprintf(path, sizeof(path), "%s/report-700.jsonl", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	cr_assert(fd >= 0);
	cr_assert_eq(ftruncate(fd, 2LL << 30), 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/audit-701.jsonl", dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("{\"type\":\"process\",\"pid\":701,\"ppid\":1,\"exe\":\"", f);
	for (int i = 0; i < 2 << 20; i++)
		fputc('a', f);
	fputs("\"}\n", f);
	fclose(f);
	report(&r, dir, NULL, NULL, 60);
	cr_assert(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	cr_expect(strstr(r.err.data, "report-700.jsonl: skipped: larger "
	                             "than") != NULL &&
	              strstr(r.err.data, "audit-701.jsonl: skipped: line 1 "
	                                 "is longer than") != NULL,
	          "%s", r.err.data);
	host_run_free(&r);
}

/* ---- many regions ---- */

#define MANY 100000

/* Owner 100 and child 101 of MANY regions; the child copied i % 5 pages
 * of region i. */
static void many_regions(void)
{
	for (int pid = 100; pid <= 101; pid++) {
		char path[256];
		FILE *f;

		snprintf(path, sizeof(path), "%s/report-%d.jsonl", dir, pid);
		f = fopen(path, "w");
		cr_assert_not_null(f);
		fprintf(f,
		        "{\"type\":\"process\",\"format\":1,\"pid\":%d,"
		        "\"ppid\":1,\"exe\":\"/h\",\"page_size\":4096}\n",
		        pid);
		for (int i = 0; i < MANY; i++) {
			int ex = pid == 101 ? i % 5 : 0;

			fprintf(f,
			        "{\"type\":\"region\",\"name\":\"r%d\","
			        "\"handle\":\"0x%x\",\"addr\":\"0x%x000\","
			        "\"size\":32768,\"owner\":100,\"pages\":8,"
			        "\"resident\":8,\"shared\":%d,\"exclusive\":%d,"
			        "\"swapped\":0}\n",
			        i, i + 1, i + 1, 8 - ex, ex);
		}
		fputs("{\"type\":\"end\",\"how\":\"exit\",\"status\":0,"
		      "\"signal\":0}\n",
		      f);
		fclose(f);
	}
}

/* Lines of text holding needle, found line by line with lengths: strstr
 * or strchr over the rest of 50 MB for each line is quadratic under ASan
 * (its interceptors measure the whole rest every time). */
static int lines_with(const char *text, const char *needle)
{
	size_t nlen = strlen(needle);
	const char *end = text + strlen(text);
	int n = 0;

	for (const char *line = text; line < end;) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		size_t len = nl ? (size_t)(nl - line) : (size_t)(end - line);

		n += memmem(line, len, needle, nlen) != NULL;
		line += len + 1;
	}
	return n;
}

Test(hostile, a_hundred_thousand_regions_are_all_shown_right, .timeout = 800)
{
	/* The table (some 50 MB) goes to a file: collected from a pipe it
	 * would cost the test more than the report. */
	static const char script[] = "exec \"$0\" report \"$1\" > \"$2\"";
	char out[128];
	const char *argv[] = {"/bin/sh", "-c", script, REPORT_LAUNCHER,
	                      dir,       out,  NULL};
	struct host_env e;
	struct host_run r;
	char *table;

	many_regions();
	snprintf(out, sizeof(out), "%s/table.txt", dir);
	/* Generous: a sanitizer build on a loaded machine; the quadratic
	 * reader did not finish in 120 s here. */
	HOST_RUN(&r, argv, .envp = guard_env(&e, NULL, NULL, 0),
	         .timeout_s = 600);
	cr_assert(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	table = host_read_file(out, NULL);
	cr_assert_not_null(table);
	cr_expect(strstr(table, "2 processes, 100000 regions") != NULL,
	          "%.300s", table);
	/* Region i copied i % 5 pages in the child. */
	cr_expect(
	    lines_with(table, "copied 4 pages (16.0 KiB) in "
	                      "1 other; 50.0% still shared") == MANY / 5 &&
	        lines_with(table, "copied 0 pages (0 B) in 1 "
	                          "other; 100.0% still shared") == MANY / 5 &&
	        lines_with(table, "mapped by 2 processes") == MANY,
	    "%.600s", table);
	free(table);
	host_run_free(&r);
}

/* ---- figures that cannot be ---- */

/* Each region line of the child is wrong in one way; the owner's are
 * right.  The region is skipped with a message; percent never above
 * 100. */
Test(hostile, impossible_figures_skip_their_region)
{
	static const struct {
		const char *name, *figures, *says;
	} bad[] = {
	    {"shared-above-resident",
	     "\"pages\":4,\"resident\":2,\"shared\":3,\"exclusive\":0",
	     "shared 3 + exclusive 0 > resident 2"},
	    {"resident-above-pages",
	     "\"pages\":4,\"resident\":9,\"shared\":0,\"exclusive\":9",
	     "resident 9 > pages 4"},
	    {"near-2^63",
	     "\"pages\":4,\"resident\":4,\"shared\":0,"
	     "\"exclusive\":9223372036854775807",
	     "shared 0 + exclusive 9223372036854775807 > resident 4"},
	    {"pages-not-of-its-size",
	     "\"pages\":400,\"resident\":4,\"shared\":0,\"exclusive\":4",
	     "pages 400 do not cover size 16384"},
	};
	char text[8192], *at = text;
	struct host_run r;

	family("good", "f", "exit");
	at += sprintf(at, "{\"type\":\"process\",\"format\":1,\"pid\":102,"
	                  "\"ppid\":100,\"exe\":\"/h\",\"page_size\":4096}\n");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		at +=
		    sprintf(at,
		            "{\"type\":\"region\",\"name\":\"%s\","
		            "\"handle\":\"0x1\",\"addr\":\"0x7f0000000000\","
		            "\"size\":16384,\"owner\":100,%s,\"swapped\":0}\n",
		            bad[i].name, bad[i].figures);
	sprintf(at, "{\"type\":\"end\",\"how\":\"exit\",\"status\":0,"
	            "\"signal\":0}\n");
	put("report-102.jsonl", text);
	/* 2^64 - 1 is not a JSON integer jansson reads: the file goes. */
	put("report-103.jsonl",
	    "{\"type\":\"process\",\"format\":1,\"pid\":103,\"ppid\":100,"
	    "\"exe\":\"/h\",\"page_size\":4096}\n"
	    "{\"type\":\"region\",\"name\":\"n\",\"handle\":\"0x1\",\"addr\":"
	    "\"0x7f0000000000\",\"size\":16384,\"owner\":100,\"pages\":4,"
	    "\"resident\":4,\"shared\":18446744073709551615,\"exclusive\":0,"
	    "\"swapped\":0}\n"
	    "{\"type\":\"end\",\"how\":\"exit\",\"status\":0,\"signal\":0}\n");
	report(&r, dir, NULL, NULL, 30);
	cr_assert(host_exited_with(&r, 0), HOST_RUN_FMT, HOST_RUN_ARGS(r));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char says[256];

		snprintf(says, sizeof(says),
		         "/report-102.jsonl: region \"%s\" (handle 0x1): "
		         "skipped: %s\n",
		         bad[i].name, bad[i].says);
		cr_expect(strstr(r.err.data, says) != NULL,
		          "expected \"%s\" in:\n%s", says, r.err.data);
	}
	cr_expect(strstr(r.err.data, "/report-103.jsonl: skipped: line 2") !=
	              NULL,
	          "%s", r.err.data);
	/* The good region, as its two good reports show it; the process
	 * with only bad figures stays a process. */
	cr_expect(strstr(r.out.data, "mapped by 2 processes; copied 1 page "
	                             "(4.0 KiB) in 1 other; 75.0% still "
	                             "shared") != NULL,
	          "%s", r.out.data);
	for (const char *p = r.out.data; (p = strstr(p, "% still")) != NULL;
	     p++) {
		const char *num = p;

		while (num > r.out.data &&
		       (num[-1] == '.' || (num[-1] >= '0' && num[-1] <= '9')))
			num--;
		cr_expect(strtod(num, NULL) <= 100.0, "%s", r.out.data);
	}
	host_run_free(&r);
}
