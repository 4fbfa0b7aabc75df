/* audit: the per-process record file of FORKSHIM_GUARD=audit, in JSON
 * Lines, one object a line:
 *
 *   {"type":"process","pid":P,"ppid":Q,"exe":"PATH"}            first line
 *   {"type":"first_write","pid":P,"tid":T,"region":"NAME",
 *    "handle":"0x..","owner":O,"region_addr":"0x..","region_len":N,
 *    "addr":"0x..","offset":N,"page":K,"page_addr":"0x..",
 *    "py":[PYFRAME...],"frames":[FRAME...],"frozen_at":[FRAME...]}
 *   {"type":"symbol","module":"PATH","offset":"0x..",
 *    "function":"NAME","function_offset":N}                     at exit
 *   {"type":"symbolized","by":PID,"symbols":N}                  last line
 *
 * FRAME is {"i":I,"ip":"0x..","module":"PATH","offset":"0x.."}, I its
 * depth: 0 is the writing instruction (first of "frames"), every other
 * frame a return address ("frozen_at" starts at 1, in the caller of
 * forkshim_freeze); "offset" is the ELF virtual address in the module
 * ("module" is "" when unknown).  A symbol line names the function of a
 * (module, offset) pair seen in the frames, looked up one byte back for
 * a return address.
 *
 * PYFRAME is {"file":"PATH","line":N,"function":"NAME"}, innermost first:
 * the Python stack of the writing thread when the process is CPython
 * (pyframes.h; line 0 when CPython could not tell).  "py" is absent from
 * records of processes that are not, or of threads without a Python
 * thread state; readers of older files find no "py" and show C frames
 * only.
 *
 * audit_configure() copies FORKSHIM_REPORT when the guard is enabled.
 * audit_child() makes a new process forget its parent's file (atfork
 * child).  audit_first_write() is called by the SIGSEGV handler and is
 * async-signal-safe: the process's file, FORKSHIM_REPORT/audit-PID.jsonl
 * (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600), is created at its first record,
 * and every record is one write(2), on disk before the write it describes
 * goes on, so a process that leaves with _exit keeps its records.  Without
 * FORKSHIM_REPORT, or when the file cannot be made, records go to the log.
 *
 * audit_finish() runs at exit (atexit and a destructor, normal context):
 * it appends the symbol lines to this process's file and to the files of
 * children of this process that have ended without doing so (a pool
 * worker leaving with _exit): a (module, offset) pair means the same in
 * any process.  It touches only audit-PID*.jsonl of a PID this process
 * forked (procpage_was_child) that jsonl_open_ours accepts (a regular file of
 * the user, made since this process began, at most 64 MiB: a larger one
 * is named on the log and left without symbols), and looks symbols up
 * only in modules loaded in this process (trace_known_module): a module
 * path in a file is a key, never a path it opens.
 *
 * The file's descriptor is kept high and checked before each record
 * (owned.h): once the program has closed it or reused its number, the
 * shim says so once and records go to the log. */
#ifndef FORKSHIM_AUDIT_H
#define FORKSHIM_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "forkshim.h"
#include "pyframes.h"

struct audit_write {
	forkshim_handle handle;
	const struct forkshim_info *info;
	uint64_t addr;      /* the faulting address */
	uint64_t page_addr; /* its page */
	uint64_t page;      /* the page's index in the region's first page */
	const uint64_t *frames;
	size_t nframes;
	const uint64_t *frozen_at;
	size_t nfrozen;
	const struct pyframe *py; /* the writing thread's Python stack */
	size_t npy;
};

void audit_configure(const char *dir);
void audit_child(void);
void audit_first_write(const struct audit_write *w);
void audit_finish(void);

#endif
