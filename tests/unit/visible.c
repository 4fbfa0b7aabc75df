/* forkshim_visible: which live children can deref a handle. */
#include <limits.h>
#include <pty.h>
#include <spawn.h>
#include <stdio.h>

#include "common.h"

static unsigned char *mem;

static forkshim_handle freeze_at(size_t off, const char *name)
{
	forkshim_handle h = forkshim_freeze(mem + off, 16, name, 0);

	cr_assert(h != 0, "freeze %s: %s", name, strerror(errno));
	return h;
}

static void setup(void)
{
	mem = map_pages(1);
}

static void expect_esrch(forkshim_handle h, pid_t pid, const char *what)
{
	errno = 0;
	cr_expect(forkshim_visible(h, pid) == -1, "%s: not -1", what);
	cr_expect(errno == ESRCH, "%s: errno %d, expected ESRCH", what, errno);
}

TestSuite(visible, .init = setup);

Test(visible, child_forked_after_the_freeze_sees_it)
{
	forkshim_handle h = freeze_at(0, "h");
	struct child c = child_start(body_wait, NULL);

	cr_expect(forkshim_visible(h, c.pid) == 1);
	child_finish(&c);
}

Test(visible, child_forked_before_the_freeze_does_not)
{
	struct child c = child_start(body_wait, NULL);
	forkshim_handle h = freeze_at(0, "h");

	cr_expect(forkshim_visible(h, c.pid) == 0, "errno %d", errno);
	child_finish(&c);
}

Test(visible, identical_refreeze_after_the_birth_keeps_it_visible)
{
	forkshim_handle h = freeze_at(0, "h");
	struct child c = child_start(body_wait, NULL);

	cr_assert(forkshim_freeze(mem, 16, "h", 0) == h);
	cr_expect(forkshim_visible(h, c.pid) == 1);
	cr_assert(forkshim_thaw(h) == 0);
	cr_expect(forkshim_visible(h, c.pid) == 1,
	          "one of two thaws made it invisible");
	child_finish(&c);
}

Test(visible, region_thawed_and_frozen_again_after_the_birth_is_not)
{
	forkshim_handle old = freeze_at(0, "h"), now;
	struct child c = child_start(body_wait, NULL);

	cr_assert(forkshim_thaw(old) == 0);
	now = freeze_at(0, "h");
	cr_expect(forkshim_visible(now, c.pid) == 0, "errno %d", errno);
	errno = 0;
	cr_expect(forkshim_visible(old, c.pid) == -1 && errno == ESTALE,
	          "the thawed handle: errno %d", errno);
	child_finish(&c);
}

Test(visible, pid_zero_without_children_is_one)
{
	forkshim_handle h = freeze_at(0, "h");

	cr_expect(forkshim_visible(h, 0) == 1, "errno %d", errno);
}

Test(visible, pid_zero_with_one_child_follows_that_child)
{
	forkshim_handle before = freeze_at(0, "before");
	struct child c = child_start(body_wait, NULL);
	forkshim_handle after = freeze_at(16, "after");

	cr_expect(forkshim_visible(before, 0) == 1);
	cr_expect(forkshim_visible(after, 0) == 0);
	child_finish(&c);
}

Test(visible, pid_zero_with_two_children_needs_both)
{
	forkshim_handle both = freeze_at(0, "both");
	struct child c1 = child_start(body_wait, NULL);
	forkshim_handle second = freeze_at(16, "second only");
	struct child c2 = child_start(body_wait, NULL);
	forkshim_handle none = freeze_at(32, "neither");

	cr_expect(forkshim_visible(both, c1.pid) == 1);
	cr_expect(forkshim_visible(both, c2.pid) == 1);
	cr_expect(forkshim_visible(both, 0) == 1);
	cr_expect(forkshim_visible(second, c1.pid) == 0);
	cr_expect(forkshim_visible(second, c2.pid) == 1);
	cr_expect(forkshim_visible(second, 0) == 0);
	cr_expect(forkshim_visible(none, c1.pid) == 0);
	cr_expect(forkshim_visible(none, c2.pid) == 0);
	cr_expect(forkshim_visible(none, 0) == 0);
	child_finish(&c1);
	child_finish(&c2);
}

Test(visible, reaped_child_is_esrch_and_stops_counting)
{
	struct child early = child_start(body_wait, NULL);
	forkshim_handle h = freeze_at(0, "h");
	struct child late = child_start(body_wait, NULL);

	cr_assert(forkshim_visible(h, 0) == 0);
	cr_assert(child_finish(&early) == 0);
	expect_esrch(h, early.pid, "reaped child");
	cr_expect(forkshim_visible(h, 0) == 1,
	          "the reaped child still counts for pid 0");
	cr_expect(forkshim_visible(h, late.pid) == 1);
	cr_assert(child_finish(&late) == 0);
	expect_esrch(h, late.pid, "second reaped child");
	cr_expect(forkshim_visible(h, 0) == 1, "no children left");
}

Test(visible, zombie_child_still_counts)
{
	struct child c = child_start(body_wait, NULL);
	forkshim_handle h = freeze_at(0, "h");
	siginfo_t si;

	child_close(&c);
	memset(&si, 0, sizeof si);
	cr_assert(waitid(P_PID, (id_t)c.pid, &si, WEXITED | WNOWAIT) == 0);
	cr_assert(si.si_pid == c.pid, "child did not exit");
	errno = 0;
	cr_expect(forkshim_visible(h, c.pid) == 0, "zombie: errno %d", errno);
	cr_expect(forkshim_visible(h, 0) == 0, "zombie left pid 0's count");
	cr_assert(waitpid(c.pid, NULL, 0) == c.pid);
	expect_esrch(h, c.pid, "reaped zombie");
	cr_expect(forkshim_visible(h, 0) == 1);
}

/* The grandchild's pid, sent up by its parent, which stays alive. */
static void body_grandparent_of(int in, int out, void *arg)
{
	struct child gc = child_spawn(body_wait, NULL);

	(void)arg;
	put(out, &gc.pid, sizeof gc.pid);
	body_wait(in, out, NULL);
	child_finish(&gc);
}

Test(visible, pid_that_is_not_our_child_is_esrch)
{
	forkshim_handle h = freeze_at(0, "h");
	struct child c = child_start(body_grandparent_of, NULL);
	pid_t grandchild;

	expect_esrch(h, 1, "init");
	expect_esrch(h, getpid(), "ourselves");
	expect_esrch(h, getppid(), "our parent");
	expect_esrch(h, -1, "-1");
	expect_esrch(h, INT_MAX, "INT_MAX");
	cr_assert(get(c.from, &grandchild, sizeof grandchild) == 0);
	cr_assert(grandchild > 0);
	expect_esrch(h, grandchild, "a grandchild");
	cr_expect(forkshim_visible(h, c.pid) == 1, "the child itself");
	cr_expect(child_finish(&c) == 0);
}

Test(visible, posix_spawn_child_is_esrch)
{
	forkshim_handle h = freeze_at(0, "h");
	char *argv[] = {UNIT_HELPER, "wait", NULL};
	char *envp[] = {NULL};
	posix_spawn_file_actions_t fa;
	int fds[2];
	pid_t pid;

	cr_assert(pipe2(fds, O_CLOEXEC) == 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[0], 0);
	cr_assert(posix_spawn(&pid, UNIT_HELPER, &fa, NULL, argv, envp) == 0);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[0]);
	expect_esrch(h, pid, "posix_spawn child");
	cr_expect(forkshim_visible(h, 0) == 1,
	          "the spawned child counts for pid 0");
	close(fds[1]);
	cr_assert(waitpid(pid, NULL, 0) == pid);
}

Test(visible, invalid_handle_gives_its_deref_errno)
{
	forkshim_handle stale = freeze_at(0, "stale");
	struct child c;

	cr_assert(forkshim_thaw(stale) == 0);
	c = child_start(body_wait, NULL);
	errno = 0;
	cr_expect(forkshim_visible(0, c.pid) == -1 && errno == EBADF,
	          "0 for a live child: errno %d", errno);
	errno = 0;
	cr_expect(forkshim_visible(0, 0) == -1 && errno == EBADF,
	          "0 for pid 0: errno %d", errno);
	errno = 0;
	cr_expect(forkshim_visible(stale, c.pid) == -1 && errno == ESTALE,
	          "thawed for a live child: errno %d", errno);
	errno = 0;
	cr_expect(forkshim_visible(stale, 0) == -1 && errno == ESTALE,
	          "thawed for pid 0: errno %d", errno);
	child_finish(&c);
}

static void body_visible_received(int in, int out, void *arg)
{
	forkshim_handle h;
	int r[2];

	(void)arg;
	if (get(in, &h, sizeof h) != 0)
		_exit(2);
	errno = 0;
	r[0] = forkshim_visible(h, 0);
	r[1] = errno;
	put(out, r, sizeof r);
}

Test(visible, handle_frozen_after_the_birth_is_enoent_in_the_child)
{
	struct child c = child_start(body_visible_received, NULL);
	forkshim_handle h = freeze_at(0, "late");
	int r[2];

	put(c.to, &h, sizeof h);
	cr_assert(get(c.from, r, sizeof r) == 0);
	cr_expect(r[0] == -1 && r[1] == ENOENT, "in the child: %d, errno %d",
	          r[0], r[1]);
	cr_expect(child_finish(&c) == 0);
}

Test(visible, forkpty_child_counts_like_a_fork_child)
{
	forkshim_handle before = freeze_at(0, "before"), after;
	int master, up[2];
	struct answer a;
	pid_t pid;

	cr_assert(pipe(up) == 0);
	pid = forkpty(&master, NULL, NULL, NULL);
	cr_assert(pid >= 0, "forkpty: %s", strerror(errno));
	if (pid == 0) {
		char b;

		close(up[0]);
		a = ask(before, 0);
		put(up[1], &a, sizeof a);
		/* Wait for the test to hang up the pty. */
		while (read(0, &b, 1) > 0)
			;
		_exit(0);
	}
	close(up[1]);
	after = freeze_at(16, "after");
	cr_assert(get(up[0], &a, sizeof a) == 0, "forkpty child died");
	cr_expect(a.addr == mem && a.len == 16,
	          "deref in the forkpty child: "
	          "%p errno %d",
	          a.addr, a.err);
	cr_expect(forkshim_visible(before, pid) == 1);
	cr_expect(forkshim_visible(after, pid) == 0);
	cr_expect(forkshim_visible(after, 0) == 0);
	close(master);
	close(up[0]);
	kill(pid, SIGKILL);
	cr_assert(waitpid(pid, NULL, 0) == pid);
}
