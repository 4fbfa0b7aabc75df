/* fork_server: a multi-threaded server that forks a child per request.
 *
 *   fork_server wait|sigchld
 *
 * Listens on 127.0.0.1 (an ephemeral port); ACCEPTORS threads accept and
 * fork one child per connection, which reads "N\n", answers, and exits
 * with N % 7.  CLIENTS threads in the same process send REQUESTS requests
 * each and check the answers.  `wait` reaps each child with waitpid(pid)
 * in the accepting thread; `sigchld` reaps them all with waitpid(-1,
 * WNOHANG) in a SIGCHLD handler, while other threads keep forking.  The
 * summary it prints depends on nothing but the requests: any difference
 * under the shim is the shim's. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define ACCEPTORS 3
#define CLIENTS 4
#define REQUESTS 40 /* per client */
#define TOTAL (CLIENTS * REQUESTS)

static int listen_fd;
static struct sockaddr_in addr;
static int use_sigchld;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int exit_counts[8]; /* children's exit codes, plus [7]: other */
static int answered_ok;
static int bad_answers;
/* Updated by the SIGCHLD handler, which may run in two threads at once. */
static int reaped_by_handler;
static int handler_codes[7];
static int handler_other;

static long request_value(int client, int i)
{
	return (long)client * 1000 + i * 37 + 11;
}

static void answer(long n, char *buf, size_t len)
{
	snprintf(buf, len, "%ld squared is %ld, %ld mod 7 is %ld\n", n, n * n,
	         n, n % 7);
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t put = write(fd, p, n);

		if (put < 0 && errno == EINTR)
			continue;
		if (put <= 0)
			return -1;
		p += put;
		n -= (size_t)put;
	}
	return 0;
}

/* Reads until EOF (the peer closes) or the buffer is full. */
static ssize_t read_all(int fd, char *buf, size_t len)
{
	size_t got = 0;

	while (got < len - 1) {
		ssize_t n = read(fd, buf + got, len - 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	return (ssize_t)got;
}

/* In the child: async-signal-safe work only, as after any fork in a
 * threaded process. */
static void serve(int conn)
{
	char req[64], reply[128];
	long n;

	if (read_all(conn, req, sizeof(req)) <= 0)
		_exit(100);
	n = strtol(req, NULL, 10);
	answer(n, reply, sizeof(reply));
	if (write_all(conn, reply, strlen(reply)) < 0)
		_exit(101);
	_exit((int)(n % 7));
}

static void count_exit(int status)
{
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;

	pthread_mutex_lock(&lock);
	exit_counts[code >= 0 && code < 7 ? code : 7]++;
	pthread_mutex_unlock(&lock);
}

static void on_sigchld(int sig)
{
	int saved = errno, status;
	pid_t pid;

	(void)sig;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;

		if (code >= 0 && code < 7)
			__atomic_fetch_add(&handler_codes[code], 1,
			                   __ATOMIC_RELAXED);
		else
			__atomic_fetch_add(&handler_other, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&reaped_by_handler, 1, __ATOMIC_RELEASE);
	}
	errno = saved;
}

static void *acceptor(void *arg)
{
	(void)arg;
	for (;;) {
		int conn = accept(listen_fd, NULL, NULL);
		pid_t pid;

		if (conn < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return NULL; /* shut down: done */
		}
		pid = fork();
		if (pid == 0) {
			close(listen_fd);
			serve(conn);
		}
		close(conn);
		if (pid < 0) {
			perror("fork");
			continue;
		}
		if (!use_sigchld) {
			int status;

			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			count_exit(status);
		}
	}
}

static void *client(void *arg)
{
	int id = (int)(long)arg;

	for (int i = 0; i < REQUESTS; i++) {
		long n = request_value(id, i);
		char req[64], got[256], want[128];
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int ok;

		snprintf(req, sizeof(req), "%ld\n", n);
		answer(n, want, sizeof(want));
		if (fd < 0 ||
		    connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
		    write_all(fd, req, strlen(req)) < 0 ||
		    shutdown(fd, SHUT_WR) < 0) {
			perror("client");
			ok = 0;
		} else {
			ok = read_all(fd, got, sizeof(got)) > 0 &&
			     strcmp(got, want) == 0;
		}
		if (fd >= 0)
			close(fd);
		pthread_mutex_lock(&lock);
		if (ok)
			answered_ok++;
		else
			bad_answers++;
		pthread_mutex_unlock(&lock);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t acceptors[ACCEPTORS], clients[CLIENTS];
	socklen_t alen = sizeof(addr);
	int expected[7] = {0}, mismatch = 0, reaped;

	if (argc != 2 ||
	    (strcmp(argv[1], "wait") != 0 && strcmp(argv[1], "sigchld") != 0)) {
		fprintf(stderr, "usage: fork_server wait|sigchld\n");
		return 2;
	}
	use_sigchld = strcmp(argv[1], "sigchld") == 0;
	if (use_sigchld) {
		struct sigaction sa = {.sa_handler = on_sigchld,
		                       .sa_flags = SA_RESTART | SA_NOCLDSTOP};

		sigemptyset(&sa.sa_mask);
		sigaction(SIGCHLD, &sa, NULL);
	}
	listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	addr.sin_port = 0;
	if (listen_fd < 0 ||
	    bind(listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(listen_fd, 128) < 0 ||
	    getsockname(listen_fd, (struct sockaddr *)&addr, &alen) < 0) {
		perror("fork_server: listen on 127.0.0.1");
		return 2;
	}
	for (int i = 0; i < ACCEPTORS; i++)
		pthread_create(&acceptors[i], NULL, acceptor, NULL);
	for (int i = 0; i < CLIENTS; i++)
		pthread_create(&clients[i], NULL, client, (void *)(long)i);
	for (int i = 0; i < CLIENTS; i++)
		pthread_join(clients[i], NULL);
	/* Every request was answered: wake the acceptors out of accept(). */
	shutdown(listen_fd, SHUT_RDWR);
	for (int i = 0; i < ACCEPTORS; i++)
		pthread_join(acceptors[i], NULL);
	close(listen_fd);

	if (use_sigchld) {
		sigset_t set, old;

		/* Children that answered may not have been reaped yet. */
		sigemptyset(&set);
		sigaddset(&set, SIGCHLD);
		for (;;) {
			pthread_sigmask(SIG_BLOCK, &set, &old);
			reaped = __atomic_load_n(&reaped_by_handler,
			                         __ATOMIC_ACQUIRE);
			if (reaped >= TOTAL)
				break;
			sigsuspend(&old);
			pthread_sigmask(SIG_SETMASK, &old, NULL);
		}
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		for (int c = 0; c < 7; c++)
			exit_counts[c] = __atomic_load_n(&handler_codes[c],
			                                 __ATOMIC_RELAXED);
		exit_counts[7] =
		    __atomic_load_n(&handler_other, __ATOMIC_RELAXED);
	}

	for (int c = 0; c < CLIENTS; c++)
		for (int i = 0; i < REQUESTS; i++)
			expected[request_value(c, i) % 7]++;
	printf("mode %s: %d requests, %d answered right, %d wrong\n", argv[1],
	       TOTAL, answered_ok, bad_answers);
	printf("children's exit codes:");
	for (int c = 0; c < 7; c++) {
		printf(" %d:%d", c, exit_counts[c]);
		mismatch |= exit_counts[c] != expected[c];
	}
	printf(", other: %d\n", exit_counts[7]);
	fprintf(stderr, "fork_server: done\n");
	return answered_ok == TOTAL && !mismatch && exit_counts[7] == 0 ? 0 : 1;
}
