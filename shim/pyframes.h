/* pyframes: the Python stack of the thread a signal interrupted, when the
 * process is a CPython interpreter, the way faulthandler takes it.
 *
 * pyframes_init() runs when the guard is enabled (normal context, once):
 * it looks up _Py_DumpTraceback, PyGILState_GetThisThreadState and
 * Py_IsInitialized with dlsym(RTLD_DEFAULT).  In a process that is not a
 * CPython interpreter (any one missing) it stops there: no descriptor, no
 * memory, nothing on the fork path.  In CPython it makes a non-blocking
 * pipe, kept on high descriptor numbers (owned.h), and registers an
 * atfork child handler that gives each forked child a pipe of its own.
 * Without a descriptor to spare (EMFILE), writers come without Python
 * lines.
 *
 * pyframes_from_signal() is async-signal-safe (dlsym'd calls that read
 * only, write, read, fstat; no malloc, no Python code): when the
 * interpreter is initialized and this thread has a thread state
 * (PyGILState_GetThisThreadState; none, as in a thread Python never saw:
 * no frames), _Py_DumpTraceback writes the thread's traceback into the
 * pipe, and the innermost frames are read back and parsed.  Like
 * faulthandler, it reads the frames as they are: a frame the interrupted
 * thread is changing (a call or return half done) may read inconsistent
 * (a line of ??? or a frame missing); CPython's dump checks each pointer
 * it follows for NULL only.  One thread at a time (a spin that gives up
 * after a while: that writer has no Python lines); a pipe the program
 * closed or reused is left alone.  Strings are what the dump printed:
 * printable ASCII (others as \xNN), cut at 500 characters by CPython and
 * at the sizes below here. */
#ifndef FORKSHIM_PYFRAMES_H
#define FORKSHIM_PYFRAMES_H

#include <stddef.h>
#include <stdint.h>

#define PYFRAMES_MAX 8
#define PYFRAME_FILE 192
#define PYFRAME_FUNC 64

struct pyframe {
	uint32_t line; /* 0 when the dump said ??? */
	char file[PYFRAME_FILE];
	char func[PYFRAME_FUNC];
};

void pyframes_init(void);
/* Frames innermost first, at most max; 0 when none. */
size_t pyframes_from_signal(struct pyframe *out, size_t max);

#endif
