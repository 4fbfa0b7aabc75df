/* init: the library's one-time start-up (config, log, table, fork hooks).
 *
 * It runs from the constructor; every entry point calls ensure_init() first,
 * which costs one load once initialisation is done, so code that reaches us
 * before our constructor (another library's constructor) still works.  The
 * sigaction/signal wrappers do not: a sanitizer runtime's start-up calls
 * them, and they pass through until init is done (guard.c). */
#ifndef FORKSHIM_INIT_H
#define FORKSHIM_INIT_H

void forkshim_ensure_init(void);

#endif
