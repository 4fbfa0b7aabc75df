/* A tiny library the Python guard tests load with ctypes: a C function
 * with a name of its own writes into memory, so that reports can be
 * checked for it. */
#include <stddef.h>

__attribute__((visibility("default"), noinline)) void
guard_py_scribble(unsigned char *p, size_t offset, int value)
{
	((volatile unsigned char *)p)[offset] = (unsigned char)value;
}
