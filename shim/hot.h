/* hot: the mark of the code on the fork path (the fork and wait wrappers,
 * _exit, _Exit, and the parts of init, table and procpage they call).
 * Besides gcc's and clang's hot attribute, the functions get a section of
 * that name of their own, whatever the optimisation level (the compilers
 * make .text.hot sections only when optimising and reordering), and
 * hot.ld puts it first in the library, before the symbol tables (see
 * fork.c). */
#ifndef FORKSHIM_HOT_H
#define FORKSHIM_HOT_H

#define FORKSHIM_HOT __attribute__((hot, section(".text.hot.forkshim")))

#endif
