/* preload.h: what a host started with the shim preloaded gets.
 *
 * FORKSHIM_PRELOAD (tests/CMakeLists.txt) is the value of LD_PRELOAD: the
 * shim, or in a sanitizer build (tests/sanitize.sh) the sanitizer runtime
 * first and then the shim, since ASan must be the first library of every
 * process it is in (the instrumented shim needs it).  SANITIZER_ENV is the
 * sanitizer options such a host gets (an initializer fragment, "A", "B",
 * or nothing): python3 and the other hosts we did not build leak by
 * design. */
#ifndef FORKSHIM_TESTS_PRELOAD_H
#define FORKSHIM_TESTS_PRELOAD_H

#define FORKSHIM_PRELOAD_VAR "LD_PRELOAD=" FORKSHIM_PRELOAD
/* FORKSHIM_SANITIZER_RT: the runtime alone, "" in a plain build. */

#if defined(FORKSHIM_SAN_ENV0) && defined(FORKSHIM_SAN_ENV1)
#define SANITIZER_ENV FORKSHIM_SAN_ENV0, FORKSHIM_SAN_ENV1,
#elif defined(FORKSHIM_SAN_ENV0)
#define SANITIZER_ENV FORKSHIM_SAN_ENV0,
#else
#define SANITIZER_ENV
#endif

#endif
