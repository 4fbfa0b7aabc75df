/* interpose: finding the real definitions of the functions we wrap.
 *
 * interpose_real() is called once per symbol, from the constructor, never
 * on a hot path: the next definition after ours (RTLD_NEXT) when we are
 * preloaded, the C library's when we were dlopen'd.  It never returns one
 * of our own definitions.  A required symbol that cannot be found is
 * logged as an error, an optional one at debug level. */
#ifndef FORKSHIM_INTERPOSE_H
#define FORKSHIM_INTERPOSE_H

enum interpose_need { INTERPOSE_OPTIONAL, INTERPOSE_REQUIRED };

void *interpose_real(const char *name, enum interpose_need need);

#endif
