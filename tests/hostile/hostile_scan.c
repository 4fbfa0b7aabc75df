/* Files in the report directory (issue 14, classes 1 and 2).  At exit an
 * audited process symbolizes the audit files of its children that ended
 * without doing it, and a parent reaping a killed child looks for the
 * child's report of that death.  A FIFO must not hang either; a huge
 * (sparse) file must not make it allocate without bound; a file another
 * user made, or one no child of this process made, must be neither read
 * nor written; and module paths are the process's own, never a file's: a
 * forged frame naming a module only root may read gets no symbol.  The
 * directory is the victim's own (0700); the attacker (nobody) plants while
 * the directory is briefly opened up, as one left writable before would
 * have let it. */
#include <criterion/criterion.h>

#include "hostile_run.h"

static char dir[64], secret_dir[64], secret[128];

static void setup(void)
{
	hr_mkdtemp(dir, sizeof(dir), "scan");
	secret_dir[0] = '\0';
}

static void teardown(void)
{
	hr_rmdir(dir);
	hr_rmdir(secret_dir);
}

TestSuite(scan, .init = setup, .fini = teardown, .timeout = 60);

struct plant {
	const char *name;
	const char *head; /* NULL: a FIFO */
	off_t size;       /* made this long (a hole) */
};

static int plant_one(void *arg)
{
	const struct plant *p = arg;
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, p->name);
	if (p->head == NULL)
		return mkfifo(path, 0666);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0666);
	if (fd < 0 || write(fd, p->head, strlen(p->head)) < 0)
		return 1;
	if (p->size > 0 && ftruncate(fd, p->size) != 0)
		return 1;
	return close(fd);
}

/* As nobody, into the victim's directory opened up for the moment. */
static void plant_as_nobody(const struct plant *p)
{
	cr_assert_eq(chmod(dir, 0777), 0);
	cr_assert_eq(hr_as_nobody(plant_one, (void *)p), 0, "plant %s",
	             p->name);
	cr_assert_eq(chmod(dir, 0700), 0);
}

static void plant_as_root(const struct plant *p)
{
	cr_assert_eq(plant_one((void *)p), 0, "plant %s", p->name);
}

static char *path_of(const char *name)
{
	static char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return path;
}

/* A copy of the host only root may read: the forged frames name it. */
static void make_secret(void)
{
	char cmd[512];

	hr_mkdtemp(secret_dir, sizeof(secret_dir), "secret");
	snprintf(secret, sizeof(secret), "%s/module", secret_dir);
	snprintf(cmd, sizeof(cmd), "cp %s %s && chmod 0700 %s", HOSTILE_HOST,
	         secret, secret);
	cr_assert_eq(system(cmd), 0);
}

static void start_scan(struct hr *h, const char *const *argv, long *pid,
                       long *off)
{
	char report[128];
	const char *extra[] = {"FORKSHIM_GUARD=audit", report, NULL};
	struct host_env envp;

	snprintf(report, sizeof(report), "FORKSHIM_REPORT=%s", dir);
	hr_start(h, argv, hr_env(&envp, extra), 15);
	*pid = hr_wait_for(h, "pid ");
	*off = hr_wait_for(h, "secret ");
	cr_assert_gt(*pid, 0, "host did not start: %s", h->r.err.data);
}

static void expect_ran(const struct hr *h)
{
	cr_expect(!h->r.timed_out, "hung: " HOST_RUN_FMT, HOST_RUN_ARGS(h->r));
	cr_expect(host_exited_with(&h->r, 0), HOST_RUN_FMT,
	          HOST_RUN_ARGS(h->r));
	cr_expect(strstr(h->r.out.data, "exited 0\n") != NULL, "%s",
	          h->r.out.data);
}

/* The real child's own file still gets its symbols (what held). */
static void expect_child_symbolized(const struct hr *h)
{
	char name[64], *text;
	long child = hr_wait_for((struct hr *)h, "child ");

	snprintf(name, sizeof(name), "audit-%ld.jsonl", child);
	text = hr_slurp(path_of(name));
	cr_assert_not_null(text, "no %s", name);
	cr_expect(strncmp(text, "{\"type\":\"process\",", 18) == 0 &&
	              strstr(text, "{\"type\":\"first_write\",") != NULL,
	          "the child's records are not intact:\n%s", text);
	cr_expect(strstr(text, "\"function\":\"hostile_dirty\"") != NULL,
	          "the child's own file lost its symbols:\n%s", text);
	cr_expect(strstr(text, "hostile_secret") == NULL, "%s", text);
	free(text);
}

Test(scan, fifos_are_never_opened_for_reading)
{
	const char *argv[] = {HOSTILE_HOST, "scan", NULL};
	struct plant theirs = {"audit-1.jsonl", NULL, 0};
	struct plant ours = {"audit-2-1.jsonl", NULL, 0};
	struct hr h;
	long pid, off;

	hr_need_root();
	start_scan(&h, argv, &pid, &off);
	plant_as_nobody(&theirs);
	plant_as_root(&ours);
	hr_go(&h);
	hr_finish(&h);
	expect_ran(&h);
	expect_child_symbolized(&h);
}

Test(scan, a_huge_sparse_file_is_not_read)
{
	const char *argv[] = {HOSTILE_HOST, "scan", NULL};
	char head[256];
	struct plant p = {"audit-3.jsonl", head, 1l << 30};
	struct hr h;
	long pid, off;

	hr_need_root();
	start_scan(&h, argv, &pid, &off);
	snprintf(head, sizeof(head),
	         "{\"type\":\"process\",\"pid\":2147483646,\"ppid\":%ld,"
	         "\"exe\":\"x\"}\n",
	         pid);
	plant_as_nobody(&p);
	hr_go(&h);
	hr_finish(&h);
	expect_ran(&h);
	cr_expect_lt(h.ru.ru_maxrss, 256 * 1024,
	             "peak resident %ld KiB: the file was read",
	             h.ru.ru_maxrss);
}

Test(scan, a_huge_file_of_a_real_child_is_skipped_with_a_message)
{
	const char *argv[] = {HOSTILE_HOST, "scan", "huge", NULL};
	struct hr h;
	long pid, off;

	start_scan(&h, argv, &pid, &off);
	hr_go(&h);
	hr_finish(&h);
	expect_ran(&h);
	cr_expect_lt(h.ru.ru_maxrss, 256 * 1024,
	             "peak resident %ld KiB: the file was read",
	             h.ru.ru_maxrss);
	cr_expect(strstr(h.r.err.data, "larger than") != NULL,
	          "no message naming the file:\n%s", h.r.err.data);
}

/* A file naming this process as its parent, with a frame in a module
 * only root may read: the other user's, and one of the user's own that no
 * child of this process made.  Neither may be read, opened for writing, or
 * grow. */
Test(scan, files_no_child_of_ours_made_are_left_alone)
{
	const char *argv[] = {HOSTILE_HOST, "scan", NULL};
	char head[1024], head2[1024];
	struct plant theirs = {"audit-4.jsonl", head, 0};
	struct plant stale = {"audit-5.jsonl", head2, 0};
	struct hr h;
	long pid, off;
	char *a, *b;

	hr_need_root();
	make_secret();
	start_scan(&h, argv, &pid, &off);
	snprintf(head, sizeof(head),
	         "{\"type\":\"process\",\"pid\":2147483645,\"ppid\":%ld,"
	         "\"exe\":\"x\"}\n{\"type\":\"first_write\",\"frames\":[{"
	         "\"i\":0,\"ip\":\"0x1\",\"module\":\"%s\",\"offset\":\"0x%lx\""
	         "}]}\n",
	         pid, secret, off);
	snprintf(head2, sizeof(head2), "%s", head); /* the same, by the user */
	plant_as_nobody(&theirs);
	plant_as_root(&stale);
	hr_go(&h);
	hr_finish(&h);
	expect_ran(&h);
	a = hr_slurp(path_of("audit-4.jsonl"));
	b = hr_slurp(path_of("audit-5.jsonl"));
	cr_assert(a != NULL && b != NULL);
	cr_expect_str_eq(a, head, "the other user's file was written");
	cr_expect_str_eq(b, head2, "a file no child made was written");
	free(a);
	free(b);
	expect_child_symbolized(&h);
}

/* A real child's file with a frame naming a module the process does not
 * have: no symbol line comes from that path. */
Test(scan, module_paths_come_from_the_process_not_the_file)
{
	char offset[32];
	const char *argv[] = {HOSTILE_HOST, "scan", "forge",
	                      secret,       offset, NULL};
	struct hr h;
	long pid, off;
	char name[64], *text;

	make_secret();
	/* The offset is the same in every run of the same binary: ask a
	 * first run, then forge with it. */
	start_scan(&h, (const char *[]){HOSTILE_HOST, "scan", NULL}, &pid,
	           &off);
	hr_go(&h);
	hr_finish(&h);
	host_run_free(&h.r);
	snprintf(offset, sizeof(offset), "0x%lx", off);
	start_scan(&h, argv, &pid, &off);
	hr_go(&h);
	hr_finish(&h);
	expect_ran(&h);
	snprintf(name, sizeof(name), "audit-%ld.jsonl",
	         hr_wait_for(&h, "child "));
	text = hr_slurp(path_of(name));
	cr_assert_not_null(text);
	cr_expect(strstr(text, "\"function\":\"hostile_secret\"") == NULL,
	          "a module named by the file was read:\n%s", text);
	cr_expect(strstr(text, "\"function\":\"hostile_dirty\"") != NULL, "%s",
	          text);
	free(text);
}

/* ---- the report of a killed child ---- */

static void start_reap(struct hr *h, long *child)
{
	const char *argv[] = {HOSTILE_HOST, "reap", NULL};
	char report[128];
	const char *extra[] = {report, NULL};
	struct host_env envp;

	snprintf(report, sizeof(report), "FORKSHIM_REPORT=%s", dir);
	hr_start(h, argv, hr_env(&envp, extra), 15);
	*child = hr_wait_for(h, "child ");
	cr_assert_gt(*child, 0, "host did not start: %s", h->r.err.data);
}

static void expect_reaped(const struct hr *h, long child)
{
	char needle[64];

	cr_expect(!h->r.timed_out, "hung: " HOST_RUN_FMT, HOST_RUN_ARGS(h->r));
	cr_expect(host_exited_with(&h->r, 0), HOST_RUN_FMT,
	          HOST_RUN_ARGS(h->r));
	snprintf(needle, sizeof(needle), "reaped %ld signal 9\n", child);
	cr_expect(strstr(h->r.out.data, needle) != NULL, "%s", h->r.out.data);
}

Test(scan, a_fifo_in_place_of_a_childs_report_does_not_hang_the_wait)
{
	char name[64];
	struct plant p = {name, NULL, 0};
	struct hr h;
	long child;
	char *text;

	hr_need_root();
	start_reap(&h, &child);
	snprintf(name, sizeof(name), "report-%ld.jsonl", child);
	plant_as_nobody(&p);
	hr_go(&h);
	hr_finish(&h);
	expect_reaped(&h, child);
	snprintf(name, sizeof(name), "report-%ld-1.jsonl", child);
	text = hr_slurp(path_of(name));
	cr_expect(text != NULL && strstr(text, "\"how\":\"killed\"") != NULL,
	          "no report of the killed child: %s", text ? text : "none");
	free(text);
}

Test(scan, another_users_report_does_not_speak_for_our_child)
{
	char name[64], head[512];
	struct plant p = {name, head, 0};
	struct hr h;
	long child;
	char *text;

	hr_need_root();
	start_reap(&h, &child);
	snprintf(name, sizeof(name), "report-%ld.jsonl", child);
	snprintf(head, sizeof(head),
	         "{\"type\":\"process\",\"format\":1,\"pid\":%ld,\"ppid\":%ld,"
	         "\"birth\":1,\"exe\":\"x\",\"page_size\":4096}\n"
	         "{\"type\":\"end\",\"how\":\"signal\",\"status\":0,"
	         "\"signal\":9}\n",
	         child, (long)h.pid);
	plant_as_nobody(&p);
	hr_go(&h);
	hr_finish(&h);
	expect_reaped(&h, child);
	snprintf(name, sizeof(name), "report-%ld-1.jsonl", child);
	text = hr_slurp(path_of(name));
	cr_expect(text != NULL && strstr(text, "\"how\":\"killed\"") != NULL,
	          "the forged report was believed");
	free(text);
}
