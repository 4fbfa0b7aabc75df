/* init: the library's one-time start-up.
 *
 * It runs from the constructor only when the environment asks for
 * something at load (FORKSHIM_GUARD, FORKSHIM_LOG, FORKSHIM_LOG_FILE,
 * FORKSHIM_MAX_REGIONS); otherwise the constructor reads the environment
 * and returns, so that a process that never forks or freezes maps and
 * writes nothing of ours, and calls nothing of libc's that a program
 * without us would not (issue 13: the atfork handlers go in at init,
 * fork.h).  Every entry point that may need it calls
 * forkshim_ensure_init() first, which costs one load once initialisation
 * is done, so code that reaches us before our constructor (another
 * library's constructor, a .preinit_array function) still works.  Two
 * steps, each once (pthread_once), errno kept:
 *   core    what needs no environment: a table of the default size,
 *           then init_modules.core() (the procpage is mapped at the first
 *           fork or freeze: table_procpage);
 *   config  once libc has the environment: config_load, the table's
 *           capacity, then init_modules.config().
 * The sigaction/signal wrappers do not call it until they must (a
 * sanitizer runtime's start-up calls them): see signals.h.
 *
 * init calls down only (config, procpage, table, log).  The modules above
 * it (fork, signals, guard, report) are started through init_modules,
 * which the top of the library (api.c) defines: init never names them, so
 * they may call forkshim_ensure_init() without a circle. */
#ifndef FORKSHIM_INIT_H
#define FORKSHIM_INIT_H

#define INIT_STR2(x) #x
#define INIT_STR(x) INIT_STR2(x)
/* "MAJOR.MINOR.PATCH", forkshim_version()'s answer. */
#define INIT_VERSION                                                           \
	INIT_STR(FORKSHIM_VERSION_MAJOR)                                       \
	"." INIT_STR(FORKSHIM_VERSION_MINOR) "." INIT_STR(                     \
	    FORKSHIM_VERSION_PATCH)

struct init_modules {
	void (*core)(void);   /* real symbols, table hooks */
	void (*config)(void); /* what reads config */
};

/* Defined by api.c. */
extern const struct init_modules init_modules;

void forkshim_ensure_init(void);

#endif
