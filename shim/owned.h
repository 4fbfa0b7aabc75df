/* owned: descriptors the shim keeps open inside the host (the log file,
 * the report directory, an audit file), and how it knows they are still
 * its own.
 *
 * A host may close any descriptor and get the same number back for a file
 * of its own (daemons close them all), or put one of its files on our
 * number with dup2.  So each kept descriptor is moved to a high number
 * (F_DUPFD_CLOEXEC from owned_base, away from the numbers open() hands out
 * first) and its identity (st_dev, st_ino) is recorded; before every use,
 * owned_still() asks fstat whether the number still names that file.
 * Everything here is a system call or two: async-signal-safe, no malloc,
 * no lock; errno may change.  Calls nothing of the shim. */
#ifndef FORKSHIM_OWNED_H
#define FORKSHIM_OWNED_H

#include <stdint.h>

struct owned {
	int fd; /* -1: none */
	uint64_t dev, ino;
};

#define OWNED_NONE                                                             \
	{                                                                      \
		-1, 0, 0                                                       \
	}

/* Chooses the high number, from RLIMIT_NOFILE (at load). */
void owned_init(void);

/* Records fd's identity as it is, without moving it (stderr).  0, or -1
 * when fd is not open (o->fd is -1 then). */
int owned_record(struct owned *o, int fd);

/* Moves fd to a high number (fd itself is closed; when no high number is
 * free it stays where it is) and records it.  0, or -1 (fd closed). */
int owned_adopt(struct owned *o, int fd);

/* 1 while o's number still names the file recorded, else 0. */
int owned_still(const struct owned *o);

/* Takes every free number below the high one (on /dev/null, at most max
 * of them, into held) so that descriptors a library opens meanwhile land
 * high: libunwind keeps a pipe as bare numbers and, inside the SIGSEGV
 * handler, reads from and writes to them (and closes and reopens them when
 * a read fails).  Returns how many; owned_release_low closes them. */
int owned_hold_low(int *held, int max);
void owned_release_low(const int *held, int n);

#endif
